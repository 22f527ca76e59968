//! Logging through `tracing`: to stderr, and optionally to a debug file rotated by size as the
//! Python otsd's ([`rotate`]); and the [`StatusBoard`] where a background task posts its latest
//! status for the info page; the Prometheus [`metrics`].
pub mod metrics;
pub mod rotate;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

pub use rotate::{RotatingFile, Rotation};

/// `--debug-file` and its companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugFile {
    pub path: PathBuf,
    pub rotation: Rotation,
    /// `--debug-file-gmtime`: time stamps in UTC rather than local time.
    pub gmtime: bool,
}

/// Installs the global subscriber with human-readable lines. `verbosity` is `-v` count minus `-q`
/// count; `RUST_LOG` overrides.
pub fn init(verbosity: i32, file: Option<&Path>) -> std::io::Result<()> {
    let file = file.map(|path| DebugFile {
        path: path.to_owned(),
        rotation: Rotation {
            max_bytes: 0,
            backup_count: 0,
        },
        gmtime: true,
    });
    init_with(verbosity, file.as_ref(), false)
}

/// As [`init`]; with `json`, every line (on stderr and in the file) is one JSON object with
/// `timestamp`, `level`, `target`, `fields` (the message and its fields) and `span`s. The debug
/// file's human lines start with the Python otsd's time stamp (`2026-12-02 14:11:49,123`).
pub fn init_with(verbosity: i32, file: Option<&DebugFile>, json: bool) -> std::io::Result<()> {
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
        Some(f) => {
            let writer = Mutex::new(RotatingFile::open(&f.path, f.rotation)?);
            let timer = PythonTime { utc: f.gmtime };
            Some(if json {
                fmt::layer()
                    .json()
                    .with_writer(writer)
                    .with_filter(filter())
                    .boxed()
            } else {
                fmt::layer()
                    .with_ansi(false)
                    .with_timer(timer)
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

/// The Python otsd's `asctime`: `YYYY-MM-DD HH:MM:SS,mmm`, local time unless `utc`.
#[derive(Debug, Clone, Copy)]
pub struct PythonTime {
    pub utc: bool,
}

/// The `asctime` format string.
const ASCTIME: &str = "%Y-%m-%d %H:%M:%S,%3f";

impl FormatTime for PythonTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        if self.utc {
            write!(w, "{}", chrono::Utc::now().format(ASCTIME))
        } else {
            write!(w, "{}", chrono::Local::now().format(ASCTIME))
        }
    }
}

/// Shared, JSON-shaped status a background task (the stamper) posts for the info page: written by
/// the task, read by [`crate::http`], so neither knows the other's types.
pub type StatusBoard = std::sync::Arc<std::sync::Mutex<Option<serde_json::Value>>>;
