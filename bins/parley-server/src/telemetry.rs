//! Logging: `tracing` to stderr, pretty or one JSON object per line.

use crate::settings::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; later calls do nothing). `RUST_LOG` overrides
/// `level`.
pub fn init(format: LogFormat, level: &str) {
    // actix-server announces its workers and listener at info; Parley's own "ready" line says
    // what matters, so actix-server speaks up only for warnings unless asked otherwise.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("actix_server=warn,{level}")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into a file or a journal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}
