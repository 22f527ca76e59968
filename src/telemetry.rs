//! Logging through `tracing`: to stderr, and optionally appended to a file; and the [`StatusBoard`]
//! where a background task posts its latest status for the info page.
use std::path::Path;

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber. `verbosity` is `-v` count minus `-q` count; `RUST_LOG` overrides.
pub fn init(verbosity: i32, file: Option<&Path>) -> std::io::Result<()> {
    let level = match verbosity {
        i32::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_filter(filter());
    let file_layer = match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            Some(
                fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(f))
                    .with_filter(filter()),
            )
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
