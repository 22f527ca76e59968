//! `otsctl recover`: rebuilds a lost or damaged calendar log from a replica that is not trusted.
//!
//! The calendar directory keeps the trusted `hmac-key`; its log may be missing, truncated or
//! damaged. [`super::merge`] finds the longest log, from genesis, whose every record verifies under
//! the calendar's key, taking local records wherever they verify and replica records only where they
//! do not. The result is written to `DIR/log.recovering` (sealed segments that are whole local
//! files are hard-linked, not copied), fsynced, then exchanged atomically with `DIR/log`
//! (`renameat2(RENAME_EXCHANGE)`), and the previous log is moved to `DIR/log.before-recover-<unix
//! time>`: it is never deleted. The log's writer lock is held throughout, so recover refuses to run
//! while otsd does. If the merge would change nothing, nothing is touched.
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::merge::{self, MergeError, Origin, Piece, Rejection, SegmentOut};
use super::mirror::Replica;
use crate::calendar::dir::{CalendarDir, DirError};
use crate::log::atomic;
use crate::log::segment::segment_name;
use crate::log::storage::LOCK_FILE;
use crate::log::Progress;
use crate::log::{FsStorage, LogError, LogKey};

/// Where the new log is built, inside the calendar directory (same file system as `log`).
pub const BUILD_DIR: &str = "log.recovering";
/// Prefix of the name the previous log is moved to.
pub const ASIDE_PREFIX: &str = "log.before-recover-";

/// Options of [`recover`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Only report what would be done.
    pub dry_run: bool,
}

/// Records and events taken from one copy.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    pub records: u64,
    pub events: u64,
}

/// What recover found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub calendar: PathBuf,
    pub replica: String,
    pub dry_run: bool,
    /// The recovered log, in order: which sequence numbers came from which copy.
    pub kept: Vec<Piece>,
    pub from_local: Totals,
    pub from_replica: Totals,
    /// Sequence number the next event will get.
    pub next_seq: u64,
    pub segments: u64,
    /// Everything either copy offered that is not in the recovered log.
    pub rejected: Vec<Rejection>,
    /// The log was replaced (with `dry_run`: would be).
    pub changed: bool,
    /// Where the previous log now is.
    pub moved_aside: Option<PathBuf>,
}

impl Report {
    /// Nothing was rejected.
    pub fn is_clean(&self) -> bool {
        self.rejected.is_empty()
    }
}

/// Why recover could not run (what it found in the copies is in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error("{0} (refusing to recover while otsd runs on this calendar)")]
    Locked(LogError),
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error("{} exists, left by an interrupted recover (a partial new log, or the previous log if \
        it stopped during the swap): check it, move it away, and run recover again", .0.display())]
    Leftover(PathBuf),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> RecoverError + 'a {
    move |source| RecoverError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Recovers the log of the calendar at `calendar` from `replica`.
pub fn recover(
    calendar: &Path,
    replica: &Replica,
    opts: Options,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report, RecoverError> {
    let dir = CalendarDir::load(calendar)?;
    let key = LogKey::derive(&dir.hmac_key);
    let log_dir = dir.log_dir();
    if opts.dry_run {
        let outcome = merge::merge(key, &log_dir, replica, &mut |_| Ok(()), progress)?;
        return Ok(report(calendar, replica, opts, outcome, None));
    }
    let _lock = FsStorage::new_locked(&log_dir).map_err(RecoverError::Locked)?;
    let build = calendar.join(BUILD_DIR);
    if build.exists() {
        // Left by an interrupted recover: a partial build, or (interrupted right after the
        // exchange) the previous log itself. Never delete it; let the operator look.
        return Err(RecoverError::Leftover(build));
    }
    fs::create_dir(&build).map_err(io_err("create", &build))?;
    let mut sink = |seg: SegmentOut| write_segment(&build, seg).map_err(|e| e.to_string());
    let outcome = match merge::merge(key, &log_dir, replica, &mut sink, progress) {
        Ok(o) => o,
        Err(e) => {
            // Our own partial build of this run; nothing was swapped.
            let _ = fs::remove_dir_all(&build);
            return Err(e.into());
        }
    };
    if !changes(&outcome) {
        fs::remove_dir_all(&build).map_err(io_err("remove", &build))?;
        return Ok(report(calendar, replica, opts, outcome, None));
    }
    sync_dir(&build)?;
    let aside = swap(calendar, &build, &log_dir)?;
    Ok(report(calendar, replica, opts, outcome, aside))
}

fn changes(outcome: &merge::Outcome) -> bool {
    outcome.local_unused || outcome.pieces.iter().any(|p| p.source == Origin::Replica)
}

fn report(
    calendar: &Path,
    replica: &Replica,
    opts: Options,
    outcome: merge::Outcome,
    moved_aside: Option<PathBuf>,
) -> Report {
    let totals = |source| {
        let mut t = Totals::default();
        for p in outcome.pieces.iter().filter(|p| p.source == source) {
            t.records += p.records;
            t.events += p.next_seq - p.first_seq;
        }
        t
    };
    Report {
        calendar: calendar.to_owned(),
        replica: replica.describe(),
        dry_run: opts.dry_run,
        from_local: totals(Origin::Local),
        from_replica: totals(Origin::Replica),
        changed: changes(&outcome),
        next_seq: outcome.next_seq,
        segments: outcome.segments,
        kept: outcome.pieces,
        rejected: outcome.rejected,
        moved_aside,
    }
}

/// Writes one merged segment into the build directory: a hard link to the local file when it is
/// identical and sealed (sealed segments are never written again), else a fsynced copy.
fn write_segment(build: &Path, seg: SegmentOut) -> Result<(), RecoverError> {
    let path = build.join(segment_name(seg.first_seq));
    if let Some(local) = &seg.same_as_local {
        if fs::hard_link(local, &path).is_ok() {
            return Ok(());
        }
    }
    let file = fs::File::create(&path).map_err(io_err("create", &path))?;
    std::io::Write::write_all(&mut &file, &seg.bytes).map_err(io_err("write", &path))?;
    file.sync_all().map_err(io_err("fsync", &path))
}

fn sync_dir(dir: &Path) -> Result<(), RecoverError> {
    atomic::sync_dir(dir).map_err(|e| io_err(e.op, &e.path)(e.source))
}

/// Puts `build` in place of `log_dir` and moves the previous log aside; returns where it went
/// (`None` when it held no data: it did not exist before recover locked it).
fn swap(calendar: &Path, build: &Path, log_dir: &Path) -> Result<Option<PathBuf>, RecoverError> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let aside = aside_name(calendar);
    if renameat_with(CWD, build, CWD, log_dir, RenameFlags::EXCHANGE).is_ok() {
        fs::rename(build, &aside).map_err(io_err("rename", build))?;
    } else {
        // A file system without RENAME_EXCHANGE: two renames (the lock keeps otsd out meanwhile).
        fs::rename(log_dir, &aside).map_err(io_err("rename", log_dir))?;
        fs::rename(build, log_dir).map_err(io_err("rename", build))?;
    }
    sync_dir(calendar)?;
    if holds_no_data(&aside) {
        fs::remove_dir_all(&aside).map_err(io_err("remove", &aside))?;
        return Ok(None);
    }
    Ok(Some(aside))
}

/// `DIR/log.before-recover-<unix time>`, with a suffix if that exists already.
fn aside_name(calendar: &Path) -> PathBuf {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = calendar.join(format!("{ASIDE_PREFIX}{now}"));
    let mut path = base.clone();
    let mut n = 1;
    while path.exists() {
        path = PathBuf::from(format!("{}.{n}", base.display()));
        n += 1;
    }
    path
}

/// True for a directory holding nothing but the writer's lock file.
fn holds_no_data(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .all(|e| e.file_name().to_str() == Some(LOCK_FILE))
    })
}

/// The human report.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "recover {} from {}{}\n",
        r.calendar.display(),
        r.replica,
        if r.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    for p in &r.kept {
        let source = match p.source {
            Origin::Local => "local",
            Origin::Replica => "replica",
        };
        let what = match p.next_seq - p.first_seq {
            0 => format!("a seal record at seq {}", p.first_seq),
            n => format!(
                "seq {}..={} ({n} events in {} records)",
                p.first_seq,
                p.next_seq - 1,
                p.records
            ),
        };
        out.push_str(&format!("  kept {what} from {source}\n"));
    }
    out.push_str(&format!(
        "  recovered log: {} events (next seq {}) in {} segments: {} events from local, {} from the replica\n",
        r.next_seq, r.next_seq, r.segments, r.from_local.events, r.from_replica.events
    ));
    out.push_str(&render_rejected(&r.rejected));
    out.push_str(&match (&r.moved_aside, r.changed, r.dry_run) {
        (_, false, _) if r.kept.is_empty() => {
            "  nothing authentic to recover: the log was left as it was\n".into()
        }
        (_, false, _) => "  the local log is authentic and complete, and the replica adds nothing: left as it was\n".into(),
        (_, true, true) => "  the log would be replaced\n".into(),
        (Some(p), true, false) => format!("  log replaced; the previous log is kept in {}\n", p.display()),
        (None, true, false) => "  log replaced (there was no previous log)\n".into(),
    });
    out
}

fn render_rejected(rejected: &[Rejection]) -> String {
    if rejected.is_empty() {
        return "  nothing rejected\n".into();
    }
    let mut out = format!("  rejected {}:\n", rejected.len());
    for j in rejected {
        let source = match j.source {
            Origin::Local => "local",
            Origin::Replica => "replica",
        };
        let claims = j
            .claimed_seq
            .map(|c| format!(" (record claims seq {c})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "    {source} {} offset {} seq {}{claims}: {}: {}\n",
            j.segment,
            j.offset,
            j.seq,
            serde_json::to_value(j.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            j.detail
        ));
    }
    out
}
