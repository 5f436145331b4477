//! Logging setup: `tracing` to stderr, human-readable or JSON, filtered by `RUST_LOG`; and
//! OpenTelemetry traces over OTLP when configured.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource, trace::SdkTracerProvider,
    trace::span_processor_with_async_runtime::BatchSpanProcessor,
};
use tracing_subscriber::{EnvFilter, filter::Targets, fmt, prelude::*};

#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl LogFormat {
    /// As `--log-format` takes it: how the daemon tells its child processes.
    pub fn as_arg(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

/// Installs the global subscriber. Default filter: info for this worker and its plugins,
/// warnings from dependencies. With an OTLP endpoint, the worker's own spans (one per
/// invocation, see [`crate::temporal::activity`]) are also exported as OpenTelemetry traces
/// over OTLP/HTTP (JSON), whatever `RUST_LOG` says. Must run inside a Tokio runtime when
/// exporting: the batch exporter runs on it.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> Result<Option<Tracing>, String> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,mlx_worker=info,mlx_runtime=info"));
    let (provider, otel) = match otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            let provider = otlp_provider(endpoint)?;
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("mlx-worker"))
                .with_filter(
                    Targets::new()
                        .with_target("mlx_worker", tracing::Level::INFO)
                        .with_target("mlx_runtime", tracing::Level::INFO),
                );
            (Some(provider), Some(layer))
        }
    };
    let human = (format == LogFormat::Human).then(|| {
        fmt::layer()
            .with_writer(std::io::stderr)
            // Colour codes only help a terminal; in a log file they are noise.
            .with_ansi(std::io::stderr().is_terminal())
    });
    let json =
        (format == LogFormat::Json).then(|| fmt::layer().json().with_writer(std::io::stderr));
    let result = tracing_subscriber::registry()
        .with(otel)
        .with(human.with_filter(filter.clone()))
        .with(json.with_filter(filter))
        .try_init();
    // Tests install a subscriber more than once per process; the first one wins.
    let _ = result;
    Ok(provider.map(Tracing))
}

/// The trace exporter; [`Tracing::shutdown`] sends what is still buffered.
pub struct Tracing(SdkTracerProvider);

impl Tracing {
    pub fn shutdown(self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("warning: flushing traces failed: {e}");
        }
    }
}

fn otlp_provider(endpoint: &str) -> Result<SdkTracerProvider, String> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url.clone())
        .build()
        .map_err(|e| format!("OTLP exporter for {url}: {e}"))?;
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(Resource::builder().with_service_name("mlx-worker").build())
        .build())
}
