//! `wasi:http` outbound requests. wasmtime-wasi-http implements the interface; this module is
//! its send hook: the host, not the guest, decides where a request may go ([`http_policy`]),
//! connects to the address it checked (no second DNS lookup for a rebinding to exploit) and
//! caps the response body. The `host` header and hop-by-hop headers are wasmtime-wasi-http's
//! forbidden headers: a guest cannot set them.

use std::{
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks, WasiHttpView, io::TokioIo,
};

use serde::Deserialize;
use wasmtime::component::Linker;

use super::{
    Offer, Policy,
    denials::Denials,
    http_policy::{self, AllowedOrigin, Scheme},
    tls::{self, TlsClient},
};

/// The manifest section that grants this capability.
pub const SECTION: &str = "http";

pub const OFFER: Offer = Offer {
    prefix: "wasi:http/",
    policy: Policy::Grant {
        section: SECTION,
        how: "outbound HTTP is not granted: add [http] allow = [\"https://host[:port]\"] to \
              the plugin's manifest",
    },
};

/// The manifest's `[http]` table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    allow: Vec<String>,
    max_response_kb: Option<u64>,
    max_request_kb: Option<u64>,
    #[serde(default)]
    ca_certs: Vec<std::path::PathBuf>,
}

/// Response bytes one request may read when the manifest does not say: 1 MiB.
const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1 << 20;
/// Request body bytes one request may send when the manifest does not say: 1 MiB.
const DEFAULT_MAX_REQUEST_BYTES: u64 = 1 << 20;

impl HttpSection {
    /// Checks the table; CA files are relative to `base` (the manifest's directory).
    pub fn grant(self, base: &std::path::Path) -> Result<HttpGrant, String> {
        if self.allow.is_empty() {
            return Err(
                "http.allow is empty: list origins such as \"https://api.example.com\", \
                 or remove [http]"
                    .into(),
            );
        }
        let allow = self
            .allow
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                http_policy::parse_origin(entry).map_err(|e| format!("http.allow[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_response_bytes = match self.max_response_kb {
            Some(0) => return Err("http.max_response_kb must be at least 1".into()),
            Some(kb) => kb.saturating_mul(1024),
            None => DEFAULT_MAX_RESPONSE_BYTES,
        };
        let max_request_bytes = match self.max_request_kb {
            Some(0) => return Err("http.max_request_kb must be at least 1".into()),
            Some(kb) => kb.saturating_mul(1024),
            None => DEFAULT_MAX_REQUEST_BYTES,
        };
        let ca_files: Vec<std::path::PathBuf> =
            self.ca_certs.iter().map(|f| base.join(f)).collect();
        let tls = tls::client(&ca_files).map_err(|e| format!("http.ca_certs: {e}"))?;
        Ok(HttpGrant {
            allow,
            max_response_bytes,
            max_request_bytes,
            tls,
            ca_files,
        })
    }
}

/// What a manifest's `[http]` table grants.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpGrant {
    pub allow: Vec<AllowedOrigin>,
    /// Response body bytes one request may read.
    pub max_response_bytes: u64,
    /// Request body bytes one request may send.
    pub max_request_bytes: u64,
    /// Who HTTPS trusts: the Mozilla roots plus the manifest's `ca_certs`...
    pub tls: TlsClient,
    /// ...read from these files.
    pub ca_files: Vec<std::path::PathBuf>,
}

/// Connect timeout when the guest sets none: a plugin waiting on a dead host should fail, not
/// sit on its deadline.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// The per-store hooks; `None` grant: every request is denied.
#[derive(Default)]
pub struct HttpHooks {
    grant: Option<Arc<HttpGrant>>,
    denials: Denials,
}

/// The HTTP capability's part of a store. `wasi:http` also needs the store's resource table,
/// so the store's [`WasiHttpView`] lends both.
pub struct HttpState {
    pub ctx: WasiHttpCtx,
    pub hooks: HttpHooks,
}

impl HttpState {
    /// No grant: every request is refused before any connection is made.
    pub fn new(grant: Option<Arc<HttpGrant>>, denials: Denials) -> Self {
        Self {
            ctx: WasiHttpCtx::new(),
            hooks: HttpHooks { grant, denials },
        }
    }
}

pub fn add_to_linker<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// Largest single write to a request body: with one buffered chunk, what a guest can make the
/// host hold per request before the connection drains it (wasmtime-wasi-http's default is
/// 1 MiB).
const BODY_CHUNK_BYTES: usize = 64 << 10;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        let grant = self.grant.clone();
        let denials = self.denials.clone();
        Box::new(async move {
            let Some(grant) = grant else {
                denials.record("outbound HTTP: the plugin's manifest has no [http] table".into());
                return Err(Error::HttpRequestDenied);
            };
            let response = send(&grant, &denials, request, options).await?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK_BYTES
    }
}

async fn send(
    grant: &HttpGrant,
    denials: &Denials,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<http::Response<WasiBody>, Error> {
    let uri = request.uri().clone();
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        _ => return Err(Error::HttpProtocolError),
    };
    let host = uri
        .host()
        .ok_or(Error::HttpRequestUriInvalid)?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    });
    let refuse = |denied: http_policy::Denied| {
        denials.record(format!("outbound HTTP: {denied}"));
        Error::HttpRequestDenied
    };
    http_policy::allowed(&grant.allow, scheme, &host, port).map_err(refuse)?;
    let resolved: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| Error::DnsError {
                rcode: None,
                info_code: None,
            })?
            .map(|a| a.ip())
            .collect(),
    };
    let addr = http_policy::check(&grant.allow, scheme, &host, port, &resolved).map_err(refuse)?;

    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(|_| Error::ConnectionRefused)?;
    // Streamed, never buffered whole: the cap stops a guest from pushing unbounded bytes out.
    let limit = grant.max_request_bytes;
    let mut request = request.map(|body| {
        http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).map_err(
            move |e| match e.downcast::<Error>() {
                Ok(e) => *e,
                Err(_) => Error::HttpRequestBodySize(Some(limit)),
            },
        )
    });
    // The connection is already to the right host: the request line carries the path only.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let response = match scheme {
        Scheme::Http => exchange(TokioIo::new(tcp), request).await?,
        Scheme::Https => {
            let connector = tokio_rustls::TlsConnector::from(grant.tls.0.clone());
            let name = match host.parse::<IpAddr>() {
                Ok(ip) => rustls::pki_types::ServerName::from(ip),
                Err(_) => rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|_| Error::HttpRequestUriInvalid)?,
            };
            // The handshake counts as connecting: a peer that never answers must not hold the
            // plugin until its deadline.
            let tls = tokio::time::timeout(connect_timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(Error::Tls)?;
            exchange(TokioIo::new(tls), request).await?
        }
    };
    tracing::info!(
        target: "mlx_worker::guest",
        status = response.status().as_u16(),
        "outbound HTTP {scheme:?} {host}:{port}"
    );
    let limit = grant.max_response_bytes;
    Ok(response.map(|incoming| {
        CappedBody {
            incoming,
            left: limit,
            limit,
        }
        .boxed_unsync()
    }))
}

async fn exchange<I, B>(io: I, request: http::Request<B>) -> Result<http::Response<Incoming>, Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body<Data = Bytes, Error = Error> + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(Error::from)?;
    // Drives the socket; ends when the response body is finished or dropped with the store.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(request).await.map_err(Error::from)
}

/// A response body that fails once more than `limit` bytes arrive: a guest must not be able
/// to make the host buffer an unbounded download.
struct CappedBody {
    incoming: Incoming,
    left: u64,
    limit: u64,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |d| d.len() as u64);
                if size > self.left {
                    return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(self.limit)))));
                }
                self.left -= size;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
