//! `otsctl replay`: rebuilds the projection from the log alone, as otsd does at start-up without a
//! checkpoint, writes it as a fresh checkpoint (in place under `DIR/projection`, or into another
//! directory), and reports what it holds and how fast the fold ran.
//!
//! The checkpoint otsd starts from is thereby always rebuildable: delete `DIR/projection`, or run
//! this, and the next start uses a projection made from nothing but the log. In place it takes the
//! log's writer lock (otsd's checkpointer writes those files while otsd runs); `--out DIR2` writes
//! elsewhere beside a running otsd, and the files can be moved into place while otsd is stopped.
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{LogSource, ToolError};
use crate::calendar::dir::CalendarDir;
use crate::log::progress::{Progress, Ticker};
use crate::log::{LogKey, Reader};
use crate::projection::checkpoint::PROJECTION_DIR;
use crate::projection::rebuild::{fold_one, rebuild, RebuildError, RebuildOptions};
use crate::projection::Projection;

/// What a replay folded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub events: u64,
    pub rounds: u64,
    pub digests: u64,
    pub next_seq: u64,
    pub segments: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub digests_per_second: f64,
    /// Where the checkpoint was written, if it was.
    pub checkpoint: Option<PathBuf>,
    /// Sequence number the checkpoint stands at (the start of the active segment).
    pub checkpoint_seq: Option<u64>,
}

/// Why a replay stopped: an event that does not decode or does not fit the history.
#[derive(Debug, thiserror::Error)]
#[error("seq {seq}: {detail}")]
pub struct ReplayStopped {
    pub seq: u64,
    pub detail: String,
}

/// Where the rebuilt projection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Replace `DIR/projection`.
    InPlace,
    /// Write into this directory (created; must not hold a checkpoint already).
    Into(PathBuf),
    /// Write nothing: only fold and report.
    Nowhere,
}

/// The number of events in the log, for a progress bar (reads only the last segment).
pub fn log_events(calendar: &Path) -> Result<u64, ToolError> {
    let dir = CalendarDir::load(calendar)?;
    let reader = Reader::open(&dir.log_dir(), None)?;
    Ok(reader.head()?.next_seq)
}

/// Folds the whole log of `calendar` into a fresh projection (ignoring any checkpoint) and writes it
/// to `output`. `min_confirmations` must be otsd's `--btc-min-confirmations` for otsd to use it.
pub fn replay(
    calendar: &Path,
    output: &Output,
    min_confirmations: u32,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Projection, Summary), ToolError> {
    let dir = CalendarDir::load(calendar)?;
    let log_dir = dir.log_dir();
    if !log_dir.is_dir() {
        return Err(ToolError::NoLog(log_dir));
    }
    let key = LogKey::derive(&dir.hmac_key);
    let target = match output {
        Output::InPlace | Output::Nowhere => dir.path.join(PROJECTION_DIR),
        Output::Into(p) => p.clone(),
    };
    if let Output::Into(p) = output {
        if p.join("checkpoint").exists() {
            return Err(ToolError::Exists(p.clone()));
        }
    }
    // otsd's checkpointer writes DIR/projection while it runs: replacing it in place needs the
    // log's writer lock, which otsd holds (`--out` and `--dry-run` may run beside otsd).
    let _lock = match output {
        Output::InPlace => Some(crate::log::FsStorage::new_locked(&log_dir)?),
        _ => None,
    };
    let opts = RebuildOptions {
        use_checkpoint: false,
        write_checkpoint: *output != Output::Nowhere,
    };
    let mut ticker = Ticker::new(progress);
    let rebuilt = rebuild(
        &log_dir,
        &target,
        &key,
        min_confirmations,
        opts,
        &mut |seq| ticker.tick(seq),
    )
    .map_err(|e| match e {
        RebuildError::Fold { seq, problem } => ToolError::Replay(ReplayStopped {
            seq,
            detail: problem,
        }),
        RebuildError::Log(e) => ToolError::Log(e),
        RebuildError::Checkpoint(problem) => ToolError::Replay(ReplayStopped {
            seq: 0,
            detail: format!("writing the projection: {problem}"),
        }),
    })?;
    if *output != Output::Nowhere {
        if let Some(why) = &rebuilt.stats.checkpoint_error {
            return Err(ToolError::Replay(ReplayStopped {
                seq: rebuilt.at.next_seq,
                detail: format!("writing the projection to {}: {why}", target.display()),
            }));
        }
    }
    let view = rebuilt.live;
    let p = ticker.progress(view.next_seq().saturating_sub(1));
    let mut summary = Summary {
        events: p.events,
        rounds: view.next_round(),
        digests: view.digests_total(),
        next_seq: view.next_seq(),
        segments: rebuilt.stats.segments_read,
        seconds: p.elapsed.as_secs_f64(),
        events_per_second: p.rate(),
        digests_per_second: view.digests_total() as f64 / p.elapsed.as_secs_f64().max(1e-9),
        checkpoint: None,
        checkpoint_seq: None,
    };
    if *output != Output::Nowhere {
        summary.checkpoint = Some(target);
        summary.checkpoint_seq = Some(rebuilt.at.next_seq);
    }
    Ok((view, summary))
}

/// Folds every event of an opened log (with or without its key) into a fresh projection, with
/// the default `--btc-min-confirmations`; writes nothing. For tools that read a replica.
pub fn fold_source(
    source: &LogSource,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Projection, ToolError> {
    let mut view = Projection::default();
    let mut stopped: Option<ReplayStopped> = None;
    let mut ticker = Ticker::new(progress);
    source.reader.for_each_from(0, |seq, payload| {
        ticker.tick(seq);
        if stopped.is_none() {
            stopped = fold_one(&mut view, seq, payload)
                .err()
                .map(|detail| ReplayStopped { seq, detail });
        }
    })?;
    match stopped {
        Some(s) => Err(ToolError::Replay(s)),
        None => Ok(view),
    }
}

/// The human summary.
pub fn render(s: &Summary) -> String {
    let mut out = format!(
        "replayed {} events from {} segments (next seq {}): {} rounds, {} digests in {:.3}s, \
         {:.0} events/s, {:.0} digests/s\n",
        s.events,
        s.segments,
        s.next_seq,
        s.rounds,
        s.digests,
        s.seconds,
        s.events_per_second,
        s.digests_per_second
    );
    if let (Some(path), Some(seq)) = (&s.checkpoint, s.checkpoint_seq) {
        out.push_str(&format!(
            "wrote the projection checkpoint (up to seq {seq}) to {}\n",
            path.display()
        ));
    }
    out
}
