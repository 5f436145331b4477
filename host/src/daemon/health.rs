//! Liveness and readiness over HTTP, for orchestrators and load balancers:
//! `GET /healthz` answers 200 while the process serves requests at all; `GET /readyz` answers
//! 200 once the worker is connected to Temporal with its plugins loaded, and 503 before that
//! and while it drains on shutdown. The body says which condition is missing. `GET /plugins`
//! lists what the worker serves (name, version, digest, operations with their schemas; never
//! a manifest's grants), for the pipelines page and for people: read-only, like the rest.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use mlx_runtime::plugin::registry::PluginRegistry;
use tokio::net::TcpListener;

/// What readiness is made of; set by the daemon as it starts and stops.
#[derive(Debug, Default)]
pub struct Health {
    /// Set once the plugins directory is loaded; its contents follow reloads.
    pub plugins: std::sync::OnceLock<Arc<PluginRegistry>>,
    pub plugins_loaded: AtomicBool,
    pub connected: AtomicBool,
    pub draining: AtomicBool,
}

impl Health {
    /// Ready, or the first reason not to be.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.draining.load(Ordering::SeqCst) {
            return Err("shutting down");
        }
        if !self.plugins_loaded.load(Ordering::SeqCst) {
            return Err("loading plugins");
        }
        if !self.connected.load(Ordering::SeqCst) {
            return Err("connecting to Temporal");
        }
        Ok(())
    }
}

/// Binds `addr` now (so a bad address fails at start) and serves until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let server = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, say: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let health = health.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let health = health.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&req, &health)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    Ok((bound, server))
}

fn answer(req: &Request<Incoming>, health: &Health) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "ok\n".to_string()),
        "/readyz" => match health.readiness() {
            Ok(()) => (StatusCode::OK, "ready\n".to_string()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        "/plugins" => match health.plugins.get() {
            Some(registry) => (StatusCode::OK, plugins_json(registry).to_string()),
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: loading plugins\n".to_string(),
            ),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "try /healthz, /readyz or /plugins\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// What the worker serves, sorted by name. Schemas as the plugin declared them (JSON).
pub fn plugins_json(registry: &PluginRegistry) -> serde_json::Value {
    let mut plugins = registry.plugins();
    plugins.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    let schema = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text).unwrap_or(serde_json::Value::Null)
    };
    serde_json::json!({
        "plugins": plugins.iter().map(|p| serde_json::json!({
            "name": p.info.name,
            "version": p.info.version,
            "description": p.info.description,
            "digest": p.digest,
            "operations": p.info.operations.iter().map(|o| serde_json::json!({
                "name": o.name,
                "description": o.description,
                "input_schema": schema(&o.input_schema),
                "output_schema": schema(&o.output_schema),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_loaded_connected_and_not_draining() {
        let health = Health::default();
        assert_eq!(health.readiness(), Err("loading plugins"));
        health.plugins_loaded.store(true, Ordering::SeqCst);
        assert_eq!(health.readiness(), Err("connecting to Temporal"));
        health.connected.store(true, Ordering::SeqCst);
        assert_eq!(health.readiness(), Ok(()));
        health.draining.store(true, Ordering::SeqCst);
        assert_eq!(health.readiness(), Err("shutting down"));
    }
}
