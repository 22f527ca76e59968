//! The `otsctl` commands, one thin file each: parse the arguments, call [`crate::audit`],
//! [`crate::replica`] or [`crate::calendar`], and return a [`Report`] (what to print and the exit
//! status). `src/bin/otsctl.rs` prints the report and exits with its code; nothing here exits.
//!
//! | command      | file            | library                                   |
//! |--------------|-----------------|-------------------------------------------|
//! | `init`       | [`init`]        | [`crate::calendar::dir::CalendarDir`]     |
//! | `address`    | [`address`]     | [`crate::stamper::key::funding_address`]  |
//! | `verify`     | [`verify`]      | [`crate::audit::verify`]                  |
//! | `inspect`    | [`inspect`]     | [`crate::audit::inspect`]                 |
//! | `replay`     | [`replay`]      | [`crate::audit::replay`]                  |
//! | `ship`       | [`ship`]        | [`crate::replica::ship`]                  |
//! | `recover`    | [`recover`]     | [`crate::replica::recover`]               |
//! | `readmit`    | [`readmit`]     | [`crate::replica::readmit`]               |
//! | `prove-head` | [`prove_head`]  | [`crate::audit::prove_head`]              |
//! | `import-otsd`| [`import_otsd`] | [`crate::pycal::importer`]                |
//! | `promote`    | [`promote`]     | [`crate::replica::role`]                  |
pub mod address;
pub mod import_otsd;
pub mod init;
pub mod inspect;
pub mod promote;
pub mod prove_head;
pub mod readmit;
pub mod recover;
pub mod replay;
pub mod ship;
pub mod verify;

use serde::Serialize;

use crate::cli::OtsctlCommand;
use crate::log::Progress;

/// What a command has to say: the text for stdout and the process exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub stdout: String,
    pub exit_code: i32,
}

impl Report {
    /// `value` as pretty JSON (with `--json`) or as `text(value)`; exit status 0.
    pub fn new<T: Serialize>(
        json: bool,
        value: &T,
        text: impl FnOnce(&T) -> String,
    ) -> Result<Report, CtlError> {
        let stdout = if json {
            serde_json::to_string_pretty(value)? + "\n"
        } else {
            text(value)
        };
        Ok(Report::text(stdout))
    }

    /// Plain text, exit status 0.
    pub fn text(stdout: String) -> Report {
        Report {
            stdout,
            exit_code: 0,
        }
    }

    /// Exit with `code` unless `clean`: problems found are a report, not an error.
    pub fn failing_unless(self, clean: bool, code: i32) -> Report {
        let exit_code = if clean { self.exit_code } else { code };
        Report { exit_code, ..self }
    }
}

/// Why a command could not run at all (exit status 1). The message says what was being done; the
/// cause is its [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{doing}")]
    While {
        doing: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Tool(#[from] crate::audit::ToolError),
    #[error(transparent)]
    Dir(#[from] crate::calendar::dir::DirError),
    #[error(transparent)]
    StamperKey(#[from] crate::stamper::key::StamperKeyLoadError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Names what was being done when an error happened.
pub(crate) trait While<T> {
    fn doing(self, what: impl Into<String>) -> Result<T, CtlError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> While<T> for Result<T, E> {
    fn doing(self, what: impl Into<String>) -> Result<T, CtlError> {
        self.map_err(|e| CtlError::While {
            doing: what.into(),
            source: Box::new(e),
        })
    }
}

/// Runs one `otsctl` command.
pub fn run(command: OtsctlCommand) -> Result<Report, CtlError> {
    match command {
        OtsctlCommand::Init(a) => init::run(a),
        OtsctlCommand::Address(a) => address::run(a),
        OtsctlCommand::Verify(a) => verify::run(a),
        OtsctlCommand::Inspect(a) => inspect::run(a),
        OtsctlCommand::Replay(a) => replay::run(a),
        OtsctlCommand::Ship(a) => ship::run(a),
        OtsctlCommand::Recover(a) => recover::run(a),
        OtsctlCommand::Readmit(a) => readmit::run(a),
        OtsctlCommand::ProveHead(a) => prove_head::run(a),
        OtsctlCommand::ImportOtsd(a) => import_otsd::run(a),
        OtsctlCommand::Promote(a) => promote::run(a),
    }
}

/// Progress of a long read, on stderr.
pub fn print_progress(p: &Progress) {
    eprintln!(
        "... {} events (seq {}) in {:.1}s, {:.0} events/s",
        p.events,
        p.seq,
        p.elapsed.as_secs_f64(),
        p.rate()
    );
}
