//! Opening a calendar's log for the tools, with or without its key.
use std::path::{Path, PathBuf};

use crate::calendar::dir::{CalendarDir, DirError, LOG_DIR};
use crate::log::{LogError, LogKey, Reader};

/// Why a tool could not run at all (problems found in the log are reports, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{}: no log directory", .0.display())]
    NoLog(PathBuf),
    #[error("invalid hex: {0}")]
    BadHex(String),
    #[error("unknown event type {0}")]
    BadType(String),
    #[error("replay stopped: {0}")]
    Replay(#[from] super::replay::ReplayStopped),
    #[error("{}: already holds a checkpoint; choose an empty directory", .0.display())]
    Exists(PathBuf),
    #[error("projection checkpoint: {0}")]
    Checkpoint(#[from] crate::projection::checkpoint::CheckpointError),
    #[error("Bitcoin Core at {0}")]
    Node(String),
    #[error("{0}")]
    NoHeadProof(String),
}

/// A calendar's log, and its key when the tool was given one.
#[derive(Debug)]
pub struct LogSource {
    pub log_dir: PathBuf,
    pub reader: Reader,
    /// The calendar's `hmac-key`: verifies the HMAC chain and commitment MACs.
    pub hmac_key: Option<Vec<u8>>,
}

impl LogSource {
    /// Opens `DIR/log`; with `use_key`, loads the calendar (and its key) first.
    pub fn open(calendar: &Path, use_key: bool) -> Result<LogSource, ToolError> {
        let hmac_key = if use_key {
            Some(CalendarDir::load(calendar)?.hmac_key)
        } else {
            None
        };
        let log_dir = calendar.join(LOG_DIR);
        if !log_dir.is_dir() {
            return Err(ToolError::NoLog(log_dir));
        }
        let reader = Reader::open(&log_dir, hmac_key.as_deref().map(LogKey::derive))?;
        Ok(LogSource {
            log_dir,
            reader,
            hmac_key,
        })
    }

    /// First sequence numbers of the segments present, ascending.
    pub fn segments(&self) -> Result<Vec<u64>, ToolError> {
        Ok(self.reader.segments()?)
    }
}

/// Parses `--commitment` / `--digest` hex.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, ToolError> {
    hex::decode(s.trim()).map_err(|e| ToolError::BadHex(format!("{s}: {e}")))
}
