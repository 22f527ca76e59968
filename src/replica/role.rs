//! Who may write a history: the single-writer guard between a primary and its mirrors.
//!
//! A mirror's directory holds [`MIRROR_MARKER`] (the primary's URL). The guard is three locks:
//! - `otsd` as a primary refuses a directory with the marker, and `otsd --mirror-of` refuses a
//!   directory with a log but no marker (a primary's): a directory has one role;
//! - both take the exclusive `flock` of the log directory, so two processes never append to one
//!   copy;
//! - [`promote`] (`otsctl promote DIR`), the one explicit way from mirror to primary, needs the
//!   calendar's `hmac-key`, verifies the whole copy with it, and refuses while the old primary
//!   still answers at its URL (unless forced).
//!
//! What it does not prevent: a primary unreachable from the mirror but alive for others (a
//! network partition), or the old primary restarted later from its own disk after a promotion.
//! Two primaries then extend one history in two ways; every mirror following either refuses the
//! other's records as a fork (loudly, with seq and offsets), and `otsctl recover` keeps one
//! authentic chain, but digests acknowledged by the other would have to be put back with
//! `otsctl readmit`. Fencing the old host (power, DNS, firewall) stays the operator's job.
use std::path::{Path, PathBuf};

use super::follow::source::{HttpSource, LogSource};
use crate::calendar::dir::CalendarDir;
use crate::log::{Head, LogKey, Reader};

/// File in a calendar directory that makes it a mirror; holds the primary's URL.
pub const MIRROR_MARKER: &str = "mirror-of";
/// Written by [`promote`]: whose mirror the directory was, and when it was promoted.
pub const PROMOTED_NOTE: &str = "promoted-from";

/// Why a role change or a start was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(
        "{}: this directory is a read-only mirror of {primary}. Run it with `otsd --mirror-of \
         {primary}`, or make it the primary with `otsctl promote {}` (only once the primary is \
         lost for good)", dir.display(), dir.display()
    )]
    IsMirror { dir: PathBuf, primary: String },
    #[error(
        "{}: this directory holds a primary's log (no {MIRROR_MARKER} file); refusing to follow \
         another calendar into it. Use an empty directory for a mirror", dir.display()
    )]
    IsPrimary { dir: PathBuf },
    #[error("{}: not a mirror (no {MIRROR_MARKER} file); nothing to promote", dir.display())]
    NotMirror { dir: PathBuf },
    #[error(
        "the primary {primary} still answers ({index}); two primaries on one history would fork \
         it. Stop it first (or, if that URL now reaches some other server, use --force)"
    )]
    PrimaryAlive { primary: String, index: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("calendar directory: {0}")]
    Dir(#[from] crate::calendar::dir::DirError),
    #[error("the mirror's log does not verify with the calendar's key: {0}")]
    Log(#[from] crate::log::LogError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RoleError + '_ {
    move |source| RoleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The primary's URL if `dir` is a mirror.
pub fn mirror_of(dir: &Path) -> Result<Option<String>, RoleError> {
    let path = dir.join(MIRROR_MARKER);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Refuses to run a primary on a mirror's directory.
pub fn check_primary_dir(dir: &Path) -> Result<(), RoleError> {
    match mirror_of(dir)? {
        Some(primary) => Err(RoleError::IsMirror {
            dir: dir.to_path_buf(),
            primary,
        }),
        None => Ok(()),
    }
}

/// Makes `dir` a mirror of `primary` (creating it), or checks that it already is one. A directory
/// holding a log without the marker is a primary's and is refused.
pub fn claim_mirror_dir(dir: &Path, primary: &str) -> Result<(), RoleError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if let Some(current) = mirror_of(dir)? {
        if current != primary {
            tracing::warn!(
                "{}: was a mirror of {current}, now follows {primary}",
                dir.display()
            );
            write_marker(dir, primary)?;
        }
        return Ok(());
    }
    let log = dir.join(crate::calendar::dir::LOG_DIR);
    let has_log = crate::log::segment::list_segments(&log).is_ok_and(|s| !s.is_empty());
    if has_log {
        return Err(RoleError::IsPrimary {
            dir: dir.to_path_buf(),
        });
    }
    write_marker(dir, primary)
}

fn write_marker(dir: &Path, primary: &str) -> Result<(), RoleError> {
    crate::log::atomic::write_atomically(dir, MIRROR_MARKER, format!("{primary}\n").as_bytes())
        .map_err(|e| io(dir)(std::io::Error::other(e.to_string())))
}

/// What [`promote`] did.
#[derive(Debug)]
pub struct Promoted {
    pub primary: String,
    /// The head of the verified copy: the new primary continues from it.
    pub head: Head,
    /// Whether the old primary was checked to be unreachable (false with `force`).
    pub primary_checked: bool,
}

/// Turns the mirror in `dir` into a primary: the explicit step after the primary is lost.
pub fn promote(dir: &Path, force: bool) -> Result<Promoted, RoleError> {
    let Some(primary) = mirror_of(dir)? else {
        return Err(RoleError::NotMirror {
            dir: dir.to_path_buf(),
        });
    };
    let cal = CalendarDir::load(dir)?;
    let key = LogKey::derive(&cal.hmac_key);
    let head = Reader::open(&cal.log_dir(), Some(key))?.verify()?;
    if !force {
        if let Ok(index) = HttpSource::new(&primary).index() {
            let last = index.last().map_or("empty".to_owned(), |e| {
                format!("{} segments, the last {} bytes", index.len(), e.len)
            });
            return Err(RoleError::PrimaryAlive {
                primary,
                index: last,
            });
        }
    }
    let note = format!(
        "Promoted to primary by `otsctl promote`; it was a mirror of {primary}, at seq {}.\n",
        head.next_seq
    );
    crate::log::atomic::write_atomically(dir, PROMOTED_NOTE, note.as_bytes())
        .map_err(|e| io(dir)(std::io::Error::other(e.to_string())))?;
    let marker = dir.join(MIRROR_MARKER);
    std::fs::remove_file(&marker).map_err(io(&marker))?;
    cal.mark_history()?;
    Ok(Promoted {
        primary,
        head,
        primary_checked: !force,
    })
}
