//! Logging through `tracing`: to stderr, and optionally appended to a file; and the [`StatusBoard`]
//! where a background task posts its latest status for the info page; the Prometheus [`metrics`].
pub mod metrics;

use std::path::Path;

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber with human-readable lines. `verbosity` is `-v` count minus `-q`
/// count; `RUST_LOG` overrides.
pub fn init(verbosity: i32, file: Option<&Path>) -> std::io::Result<()> {
    init_with(verbosity, file, false)
}

/// As [`init`]; with `json`, every line (on stderr and in the file) is one JSON object with
/// `timestamp`, `level`, `target`, `fields` (the message and its fields) and `span`s.
pub fn init_with(verbosity: i32, file: Option<&Path>, json: bool) -> std::io::Result<()> {
    let level = match verbosity {
        i32::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = if json {
        fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    } else {
        fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    };
    let file_layer = match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let writer = std::sync::Mutex::new(f);
            Some(if json {
                fmt::layer()
                    .json()
                    .with_writer(writer)
                    .with_filter(filter())
                    .boxed()
            } else {
                fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer)
                    .with_filter(filter())
                    .boxed()
            })
        }
        None => None,
    };
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .try_init();
    Ok(())
}

/// Shared, JSON-shaped status a background task (the stamper) posts for the info page: written by
/// the task, read by [`crate::http`], so neither knows the other's types.
pub type StatusBoard = std::sync::Arc<std::sync::Mutex<Option<serde_json::Value>>>;
