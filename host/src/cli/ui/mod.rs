//! `mlx-worker ui`: a web page for pipeline runs, served from the binary (the page, its script
//! and style are embedded: no CDN, no fetch elsewhere). It is a Temporal client like `pipeline`:
//! runs come from visibility, a run from the same look as `pipeline status` (describe + the
//! `status` query), and buttons go through the workflow's signals and updates, so a refused
//! update shows the workflow's own reason.
//!
//! Safe by default: every request needs the token (`MLX_UI_TOKEN`, else one made at start and
//! printed in the address, as Jupyter does: loopback is shared by every local user and reachable
//! by DNS rebinding), compared in constant time; off loopback the token must be set explicitly.
//! The browser keeps it in a `SameSite=Strict`, `HttpOnly` cookie, and mutating requests also
//! carry a per-start CSRF value from the page in a header a cross-site form cannot send.

use std::{net::SocketAddr, process::ExitCode, sync::Arc};

use super::{CliError, ConnectArgs};

mod api;
mod catalog;
mod files;
mod http;
mod step;

#[derive(Debug, clap::Args)]
pub struct UiArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Where to serve the page. Loopback by default; any other address needs MLX_UI_TOKEN.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The address of Temporal's Web UI, for links to a run's history [default: none].
    #[arg(long, env = "MLX_TEMPORAL_UI")]
    pub temporal_ui: Option<String>,
    /// The workers' artifacts root (`worker.artifacts_dir`, on this machine or a shared
    /// filesystem): the page then shows the SVG plots and loss curves steps wrote there.
    #[arg(long, env = "MLX_ARTIFACTS_DIR")]
    pub artifacts_dir: Option<std::path::PathBuf>,
    /// A worker's health endpoint (`worker.health_address`), e.g. http://10.0.0.5:9090, whose
    /// `/plugins` the Plugins view shows; repeat for each worker (plain HTTP).
    #[arg(long = "worker", env = "MLX_UI_WORKERS", value_delimiter = ',')]
    pub workers: Vec<url::Url>,
}

/// What every request handler shares.
pub(crate) struct Ui {
    pub client: temporalio_client::Client,
    pub token: String,
    pub csrf: String,
    /// Prefix of a run's page in Temporal's UI (namespace included), or empty.
    pub temporal_ui: String,
    pub artifacts_dir: Option<std::path::PathBuf>,
    pub workers: Vec<url::Url>,
    /// Failed runs' failing steps, by run id (step.rs).
    pub failing: std::sync::Mutex<std::collections::HashMap<String, Option<String>>>,
}

/// A secret of 244 random bits (two v4 UUIDs), as text fit for a URL and a header.
fn secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The token from `MLX_UI_TOKEN`, else a fresh one; refused when the address is not loopback
/// and none was set.
fn token_for(listen: &SocketAddr, from_env: Option<String>) -> Result<String, CliError> {
    match from_env.filter(|t| !t.is_empty()) {
        Some(token) if token.len() < 16 => Err(CliError::Usage(
            "MLX_UI_TOKEN is shorter than 16 characters: use a long random value".into(),
        )),
        Some(token) => Ok(token),
        None if listen.ip().is_loopback() => Ok(secret()),
        None => Err(CliError::Usage(format!(
            "--listen {listen} is not a loopback address: set MLX_UI_TOKEN to a long random \
             value (people open the page with ?token=VALUE once)"
        ))),
    }
}

pub async fn run(args: UiArgs) -> Result<ExitCode, CliError> {
    let token = token_for(&args.listen, std::env::var("MLX_UI_TOKEN").ok())?;
    let client = args.connect.client().await?;
    let namespace = temporalio_client::NamespacedClient::namespace(&client).to_string();
    let temporal_ui = args
        .temporal_ui
        .map(|base| {
            format!(
                "{}/namespaces/{namespace}/workflows/",
                base.trim_end_matches('/')
            )
        })
        .unwrap_or_default();
    let ui = Arc::new(Ui {
        client,
        token,
        csrf: secret(),
        temporal_ui,
        artifacts_dir: args.artifacts_dir,
        workers: args.workers,
        failing: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::Local(format!("cannot listen on {}: {e}", args.listen)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::Local(format!("cannot listen on {}: {e}", args.listen)))?;
    println!("pipelines UI: http://{bound}/?token={}", ui.token);
    tokio::select! {
        () = http::serve(listener, ui) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_loopback_the_token_must_be_set_and_long() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let everywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let made = token_for(&loopback, None).unwrap();
        assert_eq!(made.len(), 64);
        assert_ne!(made, token_for(&loopback, None).unwrap());
        assert!(matches!(
            token_for(&everywhere, None),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            token_for(&everywhere, Some("short".into())),
            Err(CliError::Usage(_))
        ));
        let set = "a-long-enough-random-token".to_string();
        assert_eq!(token_for(&everywhere, Some(set.clone())).unwrap(), set);
    }
}
