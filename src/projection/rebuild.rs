//! Rebuilding the projection from the log at start-up, and keeping its checkpoint current.
//!
//! Start-up folds the log onto the newest valid checkpoint (or onto nothing): first the sealed
//! segments after the checkpoint into the *base* projection, which stands at a segment boundary and
//! is written back as the new checkpoint, then the active segment into a copy of it, the *live*
//! projection otsd serves from. After start-up a [`Checkpointer`] thread keeps folding each
//! segment the writer seals into the base and checkpoints it, so a restart (even after a crash)
//! replays at most the active segment and what was sealed in the last second.
//!
//! Everything is read through the verifying [`Reader`]: CRCs, both chains and seals are checked on
//! every segment folded. The checkpoint itself is trusted only after its HMAC, its round-table hash
//! and its chain values (which the next segment's header must carry) all match.
//!
//! A rebuild of many sealed segments (`otsctl replay`, a start without a checkpoint) runs on two
//! threads: one verifies the next segment and reads its events ahead of the fold (see
//! [`super::ahead`]) while the other folds the one before and appends it to the checkpoint files;
//! a snapshot names those files every [`BULK_COMMIT_INTERVAL`] and at the end, so a rebuild
//! interrupted in between starts again from the last snapshot. Between snapshots the rounds go to
//! the round table at once, but their index entries are held back by table part and filled in
//! at the snapshot (see [`super::pending`]): a rebuild that cannot write a snapshot while entries
//! are held back stops with an error, since what it folded since the last one is not indexed
//! (with nothing held back, it goes on in memory without writing, as before).
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use super::ahead::{verified_ahead, Ahead, EventAhead};
use super::checkpoint::CheckpointFiles;
use super::Projection;
use crate::events::codec;
use crate::events::view::EventView;
use crate::events::Event;
use crate::log::{ChainState, Head, LogError, LogKey, Reader};

/// How often the checkpointer looks for newly sealed segments.
pub const CHECKPOINT_POLL: Duration = Duration::from_secs(1);

/// How often a rebuild writes a snapshot while it folds many sealed segments: the work an
/// interrupted rebuild loses. Each snapshot fills the index entries held back since the last one
/// into the tables, sweeping them whole, and syncs them; after a commit that took longer than a
/// tenth of this, the next waits nine times as long as it took.
pub const BULK_COMMIT_INTERVAL: Duration = Duration::from_secs(30);

/// Why the projection could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("event log seq {seq}: {problem}")]
    Fold { seq: u64, problem: String },
    #[error("projection checkpoint: {0}")]
    Checkpoint(String),
}

/// How a rebuild went.
#[derive(Debug, Clone, Default)]
pub struct RebuildStats {
    /// Where the checkpoint it started from stood, if one was used.
    pub checkpoint_seq: Option<u64>,
    /// Why an existing checkpoint was not used.
    pub checkpoint_ignored: Option<String>,
    /// Events folded from the log (not counting those the checkpoint covered).
    pub events_folded: u64,
    pub segments_read: u64,
    /// Whether a new checkpoint was written.
    pub checkpoint_written: bool,
    /// Why writing it stopped, if it did.
    pub checkpoint_error: Option<String>,
    pub elapsed: Duration,
}

/// The result of a rebuild.
#[derive(Debug)]
pub struct Rebuilt {
    /// The fold of the whole log: what otsd serves.
    pub live: Projection,
    /// The fold up to `at`, the start of the active segment.
    pub base: Projection,
    pub at: Head,
    pub files: CheckpointFiles,
    pub stats: RebuildStats,
}

/// What to do with checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildOptions {
    /// Start from the checkpoint if it is valid.
    pub use_checkpoint: bool,
    /// Write a checkpoint when sealed segments were folded.
    pub write_checkpoint: bool,
}

/// Folds `log_dir` into a projection, starting from the checkpoint in `projection_dir`.
/// `progress(seq)` is called for each event folded.
pub fn rebuild(
    log_dir: &Path,
    projection_dir: &Path,
    key: &LogKey,
    min_confirmations: u32,
    opts: RebuildOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Rebuilt, RebuildError> {
    let keys = Keys {
        chain: Some(key),
        checkpoint: key,
    };
    rebuild_with(
        log_dir,
        projection_dir,
        keys,
        min_confirmations,
        opts,
        progress,
    )
}

/// The keys of a rebuild: the HMAC chain's, if it is to be verified (a mirror without the
/// calendar's `hmac-key` verifies only CRCs and the public hash chain), and the one the checkpoint
/// files are authenticated with (derived from the calendar's key, or a mirror's own).
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    pub chain: Option<&'a LogKey>,
    pub checkpoint: &'a LogKey,
}

/// As [`rebuild`], with separate [`Keys`].
pub fn rebuild_with(
    log_dir: &Path,
    projection_dir: &Path,
    keys: Keys<'_>,
    min_confirmations: u32,
    opts: RebuildOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Rebuilt, RebuildError> {
    let key = keys.checkpoint;
    let started = Instant::now();
    let reader = Reader::open(log_dir, keys.chain.cloned())?;
    let segs = reader.segments()?;
    let mut files = CheckpointFiles::new(projection_dir, key);
    let mut stats = RebuildStats::default();
    if !opts.use_checkpoint && opts.write_checkpoint {
        // Written from nothing: whatever the directory held is replaced.
        files
            .remove()
            .map_err(|e| RebuildError::Checkpoint(e.to_string()))?;
    }
    let genesis = || {
        (
            Projection::new(min_confirmations),
            Head {
                next_seq: 0,
                chain: ChainState::GENESIS,
            },
        )
    };
    let (mut base, mut at) = genesis();
    if opts.use_checkpoint {
        match files.load(min_confirmations) {
            Ok(Some(loaded)) => match matches_log(&reader, &segs, &loaded.at) {
                Ok(()) => {
                    stats.checkpoint_seq = Some(loaded.at.next_seq);
                    (base, at) = (loaded.view, loaded.at);
                }
                Err(why) => {
                    // Forget the loaded files too: the next write must not append this log's
                    // rounds to another log's.
                    files = CheckpointFiles::new(projection_dir, key);
                    stats.checkpoint_ignored = Some(why);
                }
            },
            Ok(None) => {}
            Err(e) => {
                files = CheckpointFiles::new(projection_dir, key);
                stats.checkpoint_ignored = Some(e.to_string());
            }
        }
        if let Some(why) = &stats.checkpoint_ignored {
            tracing::warn!("ignoring the projection checkpoint ({why}); replaying the whole log");
        }
    }
    let mut fold = Folder::new(progress);
    let start = segs.iter().position(|&s| s == at.next_seq).unwrap_or(0);
    let sealed_end = segs.len().saturating_sub(1);
    let mut writing = opts.write_checkpoint;
    files.set_bulk(true);
    base.set_fold_only(writing);
    let sealed = &segs[start.min(sealed_end)..sealed_end];
    // Sequence number after the last sealed segment: the first of the active one.
    let sealed_events = segs.get(sealed_end).copied().unwrap_or(0);
    let mut committed = Instant::now();
    let mut interval = BULK_COMMIT_INTERVAL;
    let mut write = |files: &mut CheckpointFiles,
                     base: &mut Projection,
                     ahead: &Ahead,
                     at: Head,
                     last: bool| {
        // Each sealed segment goes to disk at once, so a rebuild holds at most one in memory;
        // a snapshot names them every BULK_COMMIT_INTERVAL (and at the end).
        let (rounds, digests) = expected_totals(base, at.next_seq, sealed_events);
        files.expect(rounds, digests);
        files.append_keyed(base, ahead.digest_keys())?;
        if last || files.needs_commit() || committed.elapsed() >= interval {
            let started = Instant::now();
            files.commit(base, at)?;
            committed = Instant::now();
            tracing::info!(
                next_seq = at.next_seq,
                "projection snapshot written in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            // A commit sweeps both tables whole (3 GiB at 100 million rounds), however few
            // entries it fills in: never more than a tenth of the time.
            interval = BULK_COMMIT_INTERVAL.max(9 * started.elapsed());
        }
        Ok::<(), super::checkpoint::CheckpointError>(())
    };
    let mut folded = 0;
    let key_salt = AtomicU64::new(files.digest_salt().unwrap_or(0));
    let drop_cached = larger_than_half_of_memory(log_dir, sealed);
    at = verified_ahead::<RebuildError>(&reader, sealed, at, &key_salt, drop_cached, |ahead| {
        let at = fold.ahead(&mut base, ahead)?;
        folded += 1;
        if writing {
            match write(&mut files, &mut base, ahead, at, folded == sealed.len()) {
                Ok(()) => {
                    stats.checkpoint_written = true;
                    // The verifying thread works out the digests' keys from now on.
                    key_salt.store(files.digest_salt().unwrap_or(0), Ordering::Release);
                }
                Err(e) if files.unindexed() => {
                    // Rounds folded since the last snapshot are in the files but not in their
                    // indexes: what this fold would serve is incomplete.
                    return Err(RebuildError::Checkpoint(format!(
                        "{e}; the rebuild stops (rounds since its last snapshot are not indexed); \
                         fix that and run it again"
                    )));
                }
                Err(e) => {
                    tracing::warn!("cannot write the projection checkpoint: {e}");
                    stats.checkpoint_error = Some(e.to_string());
                    writing = false;
                }
            }
        }
        Ok(at)
    })?;
    if writing && stats.checkpoint_seq.is_none() && !stats.checkpoint_written {
        match files.write(&mut base, at) {
            Ok(()) => stats.checkpoint_written = true,
            Err(e) => {
                tracing::warn!("cannot write the projection checkpoint: {e}");
                stats.checkpoint_error = Some(e.to_string());
            }
        }
    }
    files.set_bulk(false);
    let mut live = base.clone();
    live.set_fold_only(false);
    if let Some(&last) = segs.last().filter(|&&s| s >= at.next_seq) {
        fold.segment(&reader, &mut live, last, at, false)?;
    }
    stats.events_folded = fold.events;
    stats.segments_read = fold.segments;
    stats.elapsed = started.elapsed();
    Ok(Rebuilt {
        live,
        base,
        at,
        files,
        stats,
    })
}

/// The rounds and digests a bulk rebuild standing at `next_seq` (with `view` folded up to it)
/// will have folded at `end_seq`: what it folded so far, scaled by the events still to come. No
/// margin: a table sized a little too small grows once near the end, while one a power of two
/// too large doubles the random writes of the whole rebuild (a tenth more made the two indexes
/// of 100M rounds 6 GiB instead of 3, over the kernel's dirty limit). It never exceeds one round
/// or digest per event, so a wrong guess costs at most a table sized for the log's event count.
fn expected_totals(view: &Projection, next_seq: u64, end_seq: u64) -> (u64, u64) {
    if next_seq == 0 || end_seq <= next_seq {
        return (0, 0);
    }
    let scale = |n: u64| {
        let n = n as f64 * end_seq as f64 / next_seq as f64;
        (n as u64).min(end_seq)
    };
    (scale(view.next_round()), scale(view.digests_total()))
}

/// Whether the segments `sealed` of the log in `log_dir` (each sized as the first) take more than
/// half of the machine's memory: a rebuild then reads each only once, and keeping them in the
/// page cache would push out the projection's tables (3 GiB at 100 million rounds) it is filling,
/// which it then reads back from disk. A smaller log stays cached, for the next reader.
fn larger_than_half_of_memory(log_dir: &Path, sealed: &[u64]) -> bool {
    let Some(segment) = sealed.first().and_then(|&first| {
        std::fs::metadata(log_dir.join(crate::log::segment::segment_name(first))).ok()
    }) else {
        return false;
    };
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kib| kib * 1024);
    memory.is_some_and(|memory| segment.len().saturating_mul(sealed.len() as u64) > memory / 2)
}

/// Checks that a checkpoint standing at `at` belongs to this log: a segment starts at its
/// `next_seq` and carries its chain values (or it stands at the genesis of an empty log).
fn matches_log(reader: &Reader, segs: &[u64], at: &Head) -> Result<(), String> {
    if !segs.contains(&at.next_seq) {
        return Err(format!(
            "no log segment starts at its seq {}: the log is shorter or another one",
            at.next_seq
        ));
    }
    let header = reader
        .segment_header(at.next_seq)
        .map_err(|e| e.to_string())?;
    if header.prev != at.chain {
        return Err(format!(
            "the log's chain at seq {} differs: it was made for another log",
            at.next_seq
        ));
    }
    Ok(())
}

/// Decodes and folds events, keeping the first problem.
struct Folder<'a> {
    progress: &'a mut dyn FnMut(u64),
    events: u64,
    segments: u64,
}

impl<'a> Folder<'a> {
    fn new(progress: &'a mut dyn FnMut(u64)) -> Folder<'a> {
        Folder {
            progress,
            events: 0,
            segments: 0,
        }
    }

    /// Folds a verified sealed segment, read ahead ([`Ahead`]), into `view`; returns the head
    /// after it.
    fn ahead(&mut self, view: &mut Projection, ahead: &Ahead) -> Result<Head, RebuildError> {
        let mut problem: Option<(u64, String)> = None;
        ahead.for_each(|seq, event| {
            self.events += 1;
            (self.progress)(seq);
            if problem.is_none() {
                let folded = match event {
                    EventAhead::Digest(h) => {
                        view.apply_digest_hash(seq, || *h);
                        Ok(())
                    }
                    EventAhead::Seal(s) => view
                        .apply_seal(seq, s.round, s.time, &s.commitment, s.digests)
                        .map_err(|e| e.to_string()),
                    EventAhead::Other(payload) => fold_one(view, seq, payload),
                };
                problem = folded.err().map(|e| (seq, e));
            }
        });
        self.segments += 1;
        match problem {
            Some((seq, problem)) => Err(RebuildError::Fold { seq, problem }),
            None => Ok(ahead.head),
        }
    }

    /// Runs `read`, which hands every event of one segment to the callback it is given, folding
    /// each into `view` (after the first problem, events are only counted); returns the head
    /// `read` returns, or the first problem with its seq.
    fn fold_each(
        &mut self,
        view: &mut Projection,
        read: impl FnOnce(&mut dyn FnMut(u64, &[u8])) -> Result<Head, LogError>,
    ) -> Result<Head, RebuildError> {
        let mut problem: Option<(u64, String)> = None;
        let progress = &mut self.progress;
        let events = &mut self.events;
        let head = read(&mut |seq, payload| {
            *events += 1;
            progress(seq);
            if problem.is_none() {
                if let Err(e) = fold_one(view, seq, payload) {
                    problem = Some((seq, e));
                }
            }
        })?;
        self.segments += 1;
        match problem {
            Some((seq, problem)) => Err(RebuildError::Fold { seq, problem }),
            None => Ok(head),
        }
    }

    /// Folds the segment starting at `at` into `view`; returns the head after it.
    fn segment(
        &mut self,
        reader: &Reader,
        view: &mut Projection,
        first_seq: u64,
        at: Head,
        sealed: bool,
    ) -> Result<Head, RebuildError> {
        self.fold_each(view, |deliver| {
            reader.read_segment_from(first_seq, at, sealed, deliver)
        })
    }
}

/// Decodes one event and folds it in: the two events of every round through their borrowed
/// [`EventView`] (no copy, no allocation), any other through the whole [`Event`].
pub fn fold_one(view: &mut Projection, seq: u64, payload: &[u8]) -> Result<(), String> {
    match EventView::read(payload) {
        // Digests are decoded too: the digest index keeps each one's SHA-256.
        Ok(EventView::DigestSubmitted { digest, .. }) => {
            view.apply_digest(seq, digest);
            Ok(())
        }
        Ok(event) => {
            let mut buf = [0; 44];
            match event.seal(&mut buf) {
                Some(s) => view
                    .apply_seal(seq, s.round, s.time, s.commitment, s.digests)
                    .map_err(|e| e.to_string()),
                None => Err("a digest event read as a seal".into()),
            }
        }
        Err(_) => {
            let event = codec::decode::<Event>(payload).map_err(|e| e.to_string())?;
            view.apply(seq, &event).map_err(|e| e.to_string())
        }
    }
}

/// Keeps the checkpoint current while otsd runs: folds every newly sealed segment into the base
/// projection and writes it. Errors are logged and checkpointing stops; otsd keeps serving (the
/// next start replays more of the log).
pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

/// The nice value of the checkpoint thread (on Linux, `setpriority` with no pid sets the calling
/// thread's, not the process's).
const CHECKPOINT_NICE: i32 = 10;

impl Checkpointer {
    /// Starts the thread from a rebuild's base projection; each checkpoint it writes is handed to
    /// `live`, which then serves those rounds from disk and drops them from memory.
    pub fn spawn(
        log_dir: &Path,
        key: &LogKey,
        rebuilt: Rebuilt,
        live: Arc<RwLock<Projection>>,
    ) -> Checkpointer {
        Checkpointer::spawn_with(log_dir, Some(key), rebuilt, live)
    }

    /// As [`Checkpointer::spawn`]; `chain_key: None` verifies the log without the HMAC chain (a
    /// mirror without the calendar's key; the checkpoint key travels in `rebuilt.files`).
    pub fn spawn_with(
        log_dir: &Path,
        chain_key: Option<&LogKey>,
        rebuilt: Rebuilt,
        live: Arc<RwLock<Projection>>,
    ) -> Checkpointer {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let reader = Reader::open(log_dir, chain_key.cloned());
        let (base, at, files) = (rebuilt.base, rebuilt.at, rebuilt.files);
        let thread = std::thread::Builder::new()
            .name("otsd-checkpoint".into())
            .spawn(move || {
                // Background work: while the cores are busy, digests waiting for their fsync go
                // first. The thread still gets its share (about a tenth of a busy core at nice
                // 10), and all it wants when they are not.
                if let Err(e) = rustix::process::setpriority_process(None, CHECKPOINT_NICE) {
                    tracing::debug!("checkpoint thread keeps its priority: {e}");
                }
                match reader {
                    Ok(reader) => run(reader, base, at, files, &live, &flag),
                    Err(e) => tracing::error!("checkpointer cannot read the log: {e}"),
                }
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!("cannot start the checkpoint thread: {e}");
                None
            }
        };
        Checkpointer { stop, thread }
    }

    /// Folds what was sealed since the last look, checkpoints it, and stops the thread.
    pub fn stop(mut self) {
        let (lock, cvar) = &*self.stop;
        *crate::sync::lock(lock) = true;
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    reader: Reader,
    mut base: Projection,
    mut at: Head,
    mut files: CheckpointFiles,
    live: &RwLock<Projection>,
    stop: &(Mutex<bool>, Condvar),
) {
    let mut noop = |_| {};
    let damaged = files.damage_flag();
    loop {
        let stopping = {
            let (lock, cvar) = stop;
            let guard = crate::sync::lock(lock);
            let (guard, _) = cvar
                .wait_timeout_while(guard, CHECKPOINT_POLL, |stopped| !*stopped)
                .unwrap_or_else(|_| crate::sync::poisoned("the checkpointer's stop flag"));
            *guard
        };
        if damaged.load(std::sync::atomic::Ordering::Relaxed) {
            // A reader found damage: the next start must rebuild, not trust these files.
            match files.drop_snapshot() {
                Ok(()) => tracing::error!(
                    "dropped the projection checkpoint after damage; the next start replays the log"
                ),
                Err(e) => tracing::error!("cannot drop the damaged projection checkpoint: {e}"),
            }
            return;
        }
        match catch_up(&reader, &mut base, &mut at, &mut files, live, &mut noop) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(
                segments = n,
                next_seq = at.next_seq,
                "projection checkpoint written"
            ),
            Err(e) => {
                tracing::error!("checkpointer stopped: {e}; not retrying");
                return;
            }
        }
        if stopping {
            return;
        }
    }
}

/// Folds every sealed segment after `at` into `base`, checkpointing each; returns how many.
fn catch_up(
    reader: &Reader,
    base: &mut Projection,
    at: &mut Head,
    files: &mut CheckpointFiles,
    live: &RwLock<Projection>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, RebuildError> {
    let segs = reader.segments()?;
    let Some(start) = segs.iter().position(|&s| s == at.next_seq) else {
        return Ok(0);
    };
    let mut fold = Folder::new(progress);
    let sealed = &segs[start..segs.len().saturating_sub(1).max(start)];
    for &first_seq in sealed {
        *at = fold.segment(reader, base, first_seq, *at, true)?;
        files
            .write(base, *at)
            .map_err(|e| RebuildError::Checkpoint(e.to_string()))?;
        if let Some(history) = base.history() {
            let history = history.clone();
            crate::sync::write(live).adopt(history);
        }
    }
    Ok(sealed.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Writer, WriterOptions};

    /// Writes `rounds` one-digest rounds, one record each, into 4 KiB segments.
    fn write_log(dir: &Path, key: &LogKey, rounds: u64) {
        let opts = WriterOptions {
            segment_size: 4096,
            ..WriterOptions::default()
        };
        let (mut w, _) = Writer::open(dir, key.clone(), opts).unwrap();
        for round in 0..rounds {
            let mut commitment = vec![round as u8; 44];
            commitment[4..12].copy_from_slice(&(round * 0x9E37_79B9).to_le_bytes());
            commitment[43] = 0xa5;
            let events = [
                Event::DigestSubmitted {
                    digest: round.to_le_bytes().repeat(4),
                    nonce: [1; 16],
                },
                Event::RoundSealed {
                    round,
                    time: 1_700_000_000 + round as u32,
                    root: [2; 32],
                    mac: [3; 8],
                    commitment,
                    digests: 1,
                },
            ];
            let batch = events.iter().map(|e| codec::encode(e).unwrap()).collect();
            w.append_batches(&[batch]).unwrap();
        }
    }

    fn rebuild_into(log: &Path, proj: &Path, key: &LogKey) -> Result<Rebuilt, RebuildError> {
        let opts = RebuildOptions {
            use_checkpoint: false,
            write_checkpoint: true,
        };
        rebuild(log, proj, key, 6, opts, &mut |_| {})
    }

    #[test]
    fn a_bulk_rebuild_expects_the_rest_of_the_log_to_fold_like_its_start() {
        let mut view = Projection::new(6);
        let mut seq = 0;
        for round in 0..100 {
            view.apply_digest(seq, &[round as u8; 32]);
            view.apply_seal(seq + 1, round, 0, &[7; 44], 1).unwrap();
            seq += 2;
        }
        // 200 of 2,000 events folded: ten times as many rounds and digests.
        assert_eq!(expected_totals(&view, 200, 2_000), (1_000, 1_000));
        assert_eq!(expected_totals(&view, 200, 210), (105, 105));
        // Never more than one per event (as if each round had been one event, as an imported
        // one is); nothing when the end is reached or nothing was folded.
        assert_eq!(expected_totals(&view, 100, 1_000), (1_000, 1_000));
        assert_eq!(expected_totals(&view, 200, 200), (0, 0));
        assert_eq!(expected_totals(&view, 0, 2_000), (0, 0));
    }

    #[test]
    fn verifying_ahead_folds_as_one_thread_does_and_stops_at_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (log, proj) = (dir.path().join("log"), dir.path().join("projection"));
        let key = LogKey::from_bytes([5; 32]);
        write_log(&log, &key, 300);
        let reader = Reader::open(&log, Some(key.clone())).unwrap();
        let segs = reader.segments().unwrap();
        assert!(segs.len() > 4, "{segs:?}");

        let mut serial = Projection::new(6);
        reader
            .for_each_from(0, |seq, ev| fold_one(&mut serial, seq, ev).unwrap())
            .unwrap();
        let rebuilt = rebuild_into(&log, &proj, &key).unwrap();
        assert_eq!(rebuilt.stats.segments_read, segs.len() as u64);
        assert_eq!(rebuilt.at.next_seq, *segs.last().unwrap());
        let loaded = CheckpointFiles::new(&proj, &key)
            .load(6)
            .unwrap()
            .expect("the rebuild's checkpoint");
        assert_eq!(loaded.at, rebuilt.at);
        assert_eq!(rebuilt.live.digests_total(), serial.digests_total());
        // The checkpoint stands at the active segment's start: one digest per round before it.
        assert_eq!(loaded.view.digests_total(), loaded.view.next_round());
        assert!(
            loaded.view.next_round() > 250,
            "{}",
            loaded.view.next_round()
        );
        assert_eq!(rebuilt.live.next_round(), 300);
        for r in 0..300 {
            let want = serial.round(r).unwrap();
            assert_eq!(rebuilt.live.round(r).unwrap(), want, "round {r}");
            if r < loaded.view.next_round() {
                assert_eq!(loaded.view.round(r).unwrap(), want, "round {r}");
            }
            let digest = r.to_le_bytes().repeat(4);
            assert_eq!(rebuilt.live.digest_round(&digest).unwrap(), Some(r));
        }

        // One flipped bit inside the third segment's records: the rebuild stops there, naming it.
        let damaged = log.join(crate::log::segment::segment_name(segs[2]));
        let mut bytes = std::fs::read(&damaged).unwrap();
        bytes[crate::log::segment::HEADER_LEN + 30] ^= 0x04;
        std::fs::write(&damaged, bytes).unwrap();
        match rebuild_into(&log, &proj, &key) {
            Err(RebuildError::Log(LogError::Corrupt { segment, .. })) => {
                assert_eq!(segment, damaged)
            }
            other => panic!("expected damage in {}, got {other:?}", damaged.display()),
        }
    }
}
