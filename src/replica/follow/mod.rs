//! Following a live log: the engine of `otsd --mirror-of URL`.
//!
//! A loop on its own thread asks the [`source::LogSource`] for the bytes after the end of the
//! [`local::LocalCopy`], verifies them, stores them durably, and only then folds their events into
//! the projection the mirror serves from. Short polling: when a read brings nothing new the loop
//! sleeps `poll` (100 ms by default) and asks again; while catching up it asks at once, and while
//! following a busy primary live it pauses [`TAIL_PAUSE`] between reads. Each
//! poll is one plain `GET` with `Range`, which any static server, proxy or CDN can answer; the
//! figures in the README show the lag this gives.
//!
//! Refusals: a record that does not extend the copy, a segment the primary no longer has, a
//! segment shorter on the primary than here, or a sealed segment whose hash differs in the
//! primary's index is a fork: logged as an error with segment, offset and sequence numbers, shown
//! on the info page, and following stops; the copy is kept and served. An unreachable primary is
//! retried with a growing pause (at most [`MAX_BACKOFF`]), and the loop catches up when it answers.
pub mod bucket_source;
pub mod local;
pub mod source;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use self::local::{Fork, LocalCopy};
use self::source::{Fetched, LogSource};
use crate::log::segment::{list_segments, segment_name};
use crate::projection::rebuild::fold_one;
use crate::projection::Projection;
use crate::telemetry::StatusBoard;

/// Default pause after a poll that brought nothing new.
pub const DEFAULT_POLL: Duration = Duration::from_millis(100);
/// Pause after a read that brought the source's newest bytes, so that under steady load the
/// mirror stores (and fsyncs) a few dozen times a second rather than after every group commit
/// of the primary, which shares nothing with it but may share a disk.
pub const TAIL_PAUSE: Duration = Duration::from_millis(25);
/// Longest pause between attempts while the source is unreachable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Polls that bring only an unverifiable record before it is reported as damage.
pub const STUCK_REPORT: u32 = 20;
/// Most bytes of a partial record kept while reading on (the largest record the log allows).
pub const MAX_CARRY: u64 = crate::log::record::MAX_RECORD_LEN as u64;

/// What the follower needs.
pub struct Follow {
    pub source: Box<dyn LogSource>,
    pub copy: LocalCopy,
    pub view: Arc<RwLock<Projection>>,
    pub status: StatusBoard,
    pub poll: Duration,
}

/// The running follower; [`Follower::stop`] ends it.
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts following on a thread of its own.
    pub fn spawn(follow: Follow) -> std::io::Result<Follower> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("otsd-mirror".into())
            .spawn(move || Loop::new(follow).run(&flag))?;
        Ok(Follower {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops after the current step (a store in progress completes).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The loop's state, mirrored on the status board.
struct Loop {
    f: Follow,
    fork: Option<Fork>,
    /// When a read last found nothing new: everything the source had then is here.
    caught_up: Option<Instant>,
    unreachable_since: Option<SystemTime>,
    last_error: Option<String>,
    failures: u32,
    stuck: u32,
    events: u64,
    /// SHA-256 of the copy's sealed segments, for the index comparison.
    sealed_sha: BTreeMap<u64, [u8; 32]>,
    index_checked: bool,
    /// Bytes read after the copy's end that do not make a whole record yet.
    carry: Vec<u8>,
    /// The last read reached the source's end (following live, not catching up).
    at_tail: bool,
}

impl Loop {
    fn new(f: Follow) -> Loop {
        Loop {
            f,
            fork: None,
            caught_up: None,
            unreachable_since: None,
            last_error: None,
            failures: 0,
            stuck: 0,
            events: 0,
            sealed_sha: BTreeMap::new(),
            index_checked: false,
            carry: Vec::new(),
            at_tail: false,
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        tracing::info!(
            source = %self.f.source.describe(),
            next_seq = self.f.copy.next_seq(),
            "mirror: following"
        );
        while !stop.load(Ordering::Acquire) {
            let pause = match self.step() {
                Ok(true) if self.at_tail => self.f.poll.min(TAIL_PAUSE),
                Ok(true) => Duration::ZERO,
                Ok(false) => self.f.poll,
                Err(e) => self.unreachable(e),
            };
            self.post();
            sleep_unless(stop, pause);
        }
    }

    /// One read; true if it brought bytes (read again at once).
    fn step(&mut self) -> Result<bool, String> {
        if self.fork.is_some() {
            return Ok(false);
        }
        if !self.index_checked {
            self.check_index()?;
            self.index_checked = true;
        }
        if !self.carry.is_empty() {
            return self.extend_carry();
        }
        let (segment, offset) = self.f.copy.want();
        let overlap = self.f.copy.overlap().map_err(|e| e.to_string())?;
        let from = offset - overlap.len() as u64;
        let asked = Instant::now();
        let fetched = self
            .f
            .source
            .read_from(segment, from)
            .map_err(|e| e.to_string())?;
        self.reachable();
        let fetched = match fetched {
            Fetched::Bytes(b) if b.len() < overlap.len() => Fetched::Ends {
                len: from + b.len() as u64,
            },
            Fetched::Bytes(b) if b[..overlap.len()] != overlap[..] => {
                self.forked(Fork {
                    segment,
                    offset: from,
                    our_next_seq: self.f.copy.next_seq(),
                    their_seq: None,
                    problem: "the primary's bytes before this mirror's end differ from its copy \
                              (another chain value: the primary rewrote its history)"
                        .into(),
                });
                return Ok(false);
            }
            Fetched::Bytes(b) => Fetched::Bytes(b[overlap.len()..].to_vec()),
            other => other,
        };
        match fetched {
            Fetched::Bytes(bytes) if !bytes.is_empty() => self.take(&bytes, asked),
            Fetched::Ends { len } if len < offset => {
                self.forked(Fork {
                    segment,
                    offset: len,
                    our_next_seq: self.f.copy.next_seq(),
                    their_seq: None,
                    problem: format!(
                        "the primary's copy of this segment is {len} bytes, this mirror holds \
                         {offset}: it lost or rewrote what follows"
                    ),
                });
                Ok(false)
            }
            Fetched::Missing if offset > 0 => {
                self.forked(Fork {
                    segment,
                    offset: 0,
                    our_next_seq: self.f.copy.next_seq(),
                    their_seq: None,
                    problem: format!(
                        "the primary does not have this segment, of which this mirror holds \
                         {offset} bytes"
                    ),
                });
                Ok(false)
            }
            _ => {
                self.caught_up = Some(asked);
                Ok(false)
            }
        }
    }

    /// Stores and folds fetched bytes.
    fn take(&mut self, bytes: &[u8], asked: Instant) -> Result<bool, String> {
        let appended = self.f.copy.append(bytes).map_err(|e| e.to_string())?;
        self.fold(&appended.events);
        if let Some(fork) = appended.fork {
            self.forked(fork);
            return Ok(false);
        }
        if appended.bytes == 0 && appended.leftover > 0 {
            // Less than one record (a record larger than one read, or a new segment's header
            // alone): keep it and read on from its end.
            if (bytes.len() as u64) < MAX_CARRY {
                self.carry = bytes.to_vec();
                return Ok(true);
            }
            self.stuck += 1;
            if self.stuck == STUCK_REPORT {
                let (segment, offset) = self.f.copy.want();
                let msg = format!(
                    "the record at offset {offset} of the primary's {} does not verify ({} polls)",
                    segment_name(segment),
                    self.stuck
                );
                tracing::error!("mirror: {msg}");
                self.last_error = Some(msg);
            }
            return Ok(false);
        }
        self.stuck = 0;
        self.at_tail = appended.leftover == 0 && (bytes.len() as u64) < source::MAX_READ_LEN / 2;
        if self.at_tail {
            self.caught_up = Some(asked);
        }
        Ok(true)
    }

    /// Reads on after a partial record kept in `carry`, and retries it with what came.
    fn extend_carry(&mut self) -> Result<bool, String> {
        let (segment, offset) = self.f.copy.want();
        let asked = Instant::now();
        let from = offset + self.carry.len() as u64;
        let fetched = self
            .f
            .source
            .read_from(segment, from)
            .map_err(|e| e.to_string())?;
        self.reachable();
        let mut bytes = std::mem::take(&mut self.carry);
        match fetched {
            Fetched::Bytes(more) if !more.is_empty() => {
                bytes.extend_from_slice(&more);
                self.take(&bytes, asked)
            }
            _ => {
                // Nothing more: the kept bytes do not make a valid record (yet); count it.
                self.stuck += 1;
                if self.stuck == STUCK_REPORT {
                    let msg = format!(
                        "the record at offset {offset} of the primary's {} does not verify",
                        segment_name(segment)
                    );
                    tracing::error!("mirror: {msg}");
                    self.last_error = Some(msg);
                }
                Ok(false)
            }
        }
    }

    fn fold(&mut self, events: &[(u64, Vec<u8>)]) {
        if events.is_empty() {
            return;
        }
        let mut view = crate::sync::write(&self.f.view);
        for (seq, payload) in events {
            if let Err(problem) = fold_one(&mut view, *seq, payload) {
                tracing::error!("mirror: event seq {seq} does not fold: {problem}");
                self.last_error = Some(format!("seq {seq}: {problem}"));
            }
        }
        self.events += events.len() as u64;
    }

    fn forked(&mut self, fork: Fork) {
        tracing::error!(
            "mirror: FORK REFUSED: {fork}. Keeping this mirror's copy (next seq {}) and serving \
             it; following stopped. Investigate the primary before anything else.",
            self.f.copy.next_seq()
        );
        self.fork = Some(fork);
    }

    /// Compares the source's sealed segments with the copy's (length and SHA-256).
    fn check_index(&mut self) -> Result<(), String> {
        let index = self.f.source.index().map_err(|e| e.to_string())?;
        let (active, _) = self.f.copy.want();
        let dir = self.copy_dir();
        let local = list_segments(&dir).map_err(|e| e.to_string())?;
        for entry in index.iter().filter(|e| e.sealed && e.first_seq < active) {
            if !local.contains(&entry.first_seq) {
                continue;
            }
            let path = dir.join(segment_name(entry.first_seq));
            let ours = match self.sealed_sha.get(&entry.first_seq) {
                Some(s) => *s,
                None => {
                    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
                    let sha: [u8; 32] = Sha256::digest(&bytes).into();
                    self.sealed_sha.insert(entry.first_seq, sha);
                    sha
                }
            };
            if ours != entry.sha256 {
                self.forked(Fork {
                    segment: entry.first_seq,
                    offset: 0,
                    our_next_seq: self.f.copy.next_seq(),
                    their_seq: None,
                    problem: "the primary's index lists this sealed segment with another SHA-256"
                        .into(),
                });
                return Ok(());
            }
        }
        Ok(())
    }

    fn copy_dir(&self) -> std::path::PathBuf {
        self.f.copy.dir().to_path_buf()
    }

    fn reachable(&mut self) {
        if let Some(since) = self.unreachable_since.take() {
            let secs = since.elapsed().map_or(0, |d| d.as_secs());
            tracing::info!("mirror: the primary answers again after {secs} s; catching up");
            self.index_checked = false;
        }
        self.failures = 0;
    }

    /// Records a failed read; returns the pause before the next attempt.
    fn unreachable(&mut self, e: String) -> Duration {
        if self.unreachable_since.is_none() {
            tracing::warn!("mirror: cannot read the primary: {e}; retrying");
            self.unreachable_since = Some(SystemTime::now());
        } else {
            tracing::debug!("mirror: still cannot read the primary: {e}");
        }
        self.last_error = Some(e);
        self.failures = self.failures.saturating_add(1);
        let pause = self.f.poll.saturating_mul(1 << self.failures.min(8));
        pause.min(MAX_BACKOFF)
    }

    /// Posts the status shown on the info page.
    fn post(&self) {
        let lag_ms = self.caught_up.map(|t| t.elapsed().as_millis() as u64);
        let unix = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        let caught_up_unix_ms = self
            .caught_up
            .and_then(|t| SystemTime::now().checked_sub(t.elapsed()))
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64);
        let status = serde_json::json!({
            "source": self.f.source.describe(),
            "next_seq": self.f.copy.next_seq(),
            "lag_ms": lag_ms,
            "caught_up_unix_ms": caught_up_unix_ms,
            "events_followed": self.events,
            "unreachable_since": self.unreachable_since.map(unix),
            "last_error": self.last_error,
            "fork": self.fork,
        });
        *crate::sync::lock(&self.f.status) = Some(status);
    }
}

fn sleep_unless(stop: &AtomicBool, pause: Duration) {
    let end = Instant::now() + pause;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}
