//! Logs, and optionally traces exported to an OpenTelemetry collector (OTLP over HTTP).
//!
//! The same spans serve both: an HTTP request's span carries its `request_id`, a fold's span
//! (`fold_batch`) the outbox rows it folded, so a submission can be followed from its write to
//! its fold in either the log or a trace viewer.

mod batched;

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use self::batched::BatchedWriterGuard;
use crate::config::LogFormat;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up the OTLP exporter to {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("cannot start the log writer's thread: {0}")]
    LogWriter(#[source] std::io::Error),
    #[error("a global logger is already installed: {0}")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// Flushes the traces not yet exported and the log lines not yet written when dropped (at the
/// end of `main`).
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    /// Writes the last lines and ends the log writer's thread when dropped.
    log_writer: Option<BatchedWriterGuard<std::io::Stdout>>,
}

impl Telemetry {
    /// Writes the log lines still waiting (see [`LogStream::StdoutBatched`]) before the
    /// process prints a line of its own on standard output.
    pub fn write_logs_now(&self) {
        if let Some(writer) = &self.log_writer {
            writer.write_now();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("could not flush the traces: {error}");
            }
        }
    }
}

/// The traces URL of a collector's base URL (`http://host:4318` → `…/v1/traces`), as the
/// OpenTelemetry specification derives it from `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output, written by a thread of its own every 10 ms, as one write (see
    /// `telemetry/batched.rs`): for `serve` and `worker`, whose requests and folds then never wait on a
    /// write of their own.
    StdoutBatched,
    /// Standard output, each line written as it is logged: for one-shot commands, whose lines
    /// then keep their order with what the command prints.
    Stdout,
    /// For commands whose standard output is their result (`stats`, `seed`, …).
    Stderr,
}

/// Installs the global logger (and, with `otlp_endpoint`, the trace exporter). Levels come from
/// `RUST_LOG` (default `info`) and apply to both.
pub fn init(
    format: LogFormat,
    stream: LogStream,
    otlp_endpoint: Option<&str>,
) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes help a person at a terminal and litter a file or a log collector: only when
    // the log's stream is a terminal.
    let mut log_writer = None;
    let (writer, terminal) = match stream {
        LogStream::StdoutBatched => {
            let (writer, guard) =
                batched::batched(std::io::stdout()).map_err(TelemetryError::LogWriter)?;
            log_writer = Some(guard);
            (BoxMakeWriter::new(writer), std::io::stdout().is_terminal())
        }
        LogStream::Stdout => (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        ),
        LogStream::Stderr => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(terminal);
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let traces = otlp_endpoint
        .map(|endpoint| {
            let url = traces_url(endpoint);
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(url.clone())
                .build()
                .map_err(|source| TelemetryError::Exporter {
                    endpoint: url,
                    source,
                })?;
            Ok::<_, TelemetryError>(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name("tax-budget").build())
                    .build(),
            )
        })
        .transpose()?;
    let tracing_layer = traces
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("tax-budget")));
    tracing_subscriber::registry()
        .with(logs)
        .with(tracing_layer)
        .with(filter)
        .try_init()
        .map_err(TelemetryError::AlreadyInstalled)?;
    if let Some(endpoint) = otlp_endpoint {
        tracing::info!(endpoint, "exporting traces over OTLP");
    }
    Ok(Telemetry { traces, log_writer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_url_follows_the_specification() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
    }
}
