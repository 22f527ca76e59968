//! The heart of `otsctl recover`: the longest authentic log that the local copy and a replica
//! together hold, record by record from genesis.
//!
//! At every position of the log (segment, offset), the record of each copy is checked against the
//! chain state reached so far with the calendar's key ([`crate::log::splice::Position`]). The local
//! record is taken whenever it verifies; the replica's only where the local one does not (missing,
//! damaged, torn). So the local authentic data is always what is kept, and a replica can only fill
//! what the local copy lacks. Where both verify but differ, the histories forked (only a holder of
//! the key can do that): the local record is kept, a conflict is reported, and the replica is not
//! used from there on. The merge ends where no copy continues the chain. Because headers are not
//! authenticated, a copy's segment header must equal the one the chain state dictates.
//!
//! Every record a copy offers that is not taken and is not the same as the one taken is reported
//! (once per run of bad records, as the records after a bad one are usually misaligned too).
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::mirror::{self, Replica, ReplicaError};
use crate::log::progress::PROGRESS_INTERVAL;
use crate::log::record::FrameError;
use crate::log::segment::{segment_name, SegmentHeader};
use crate::log::splice::{check_header, Fault, Position};
use crate::log::Progress;
use crate::log::{ChainState, Corruption, LogError, LogKey};

/// Which copy a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Local,
    Replica,
}

/// Why something a copy offered was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The segment header is damaged, or does not continue the chain.
    BadHeader,
    /// A record's CRC does not match: damaged bytes.
    BadCrc,
    /// A record's length, type or payload framing is invalid.
    BadFrame,
    /// The copy ends inside a record.
    TornTail,
    /// The record's sequence number is not the next one: a dropped or reordered record.
    SequenceGap,
    /// The public hash chain does not continue.
    HashChainMismatch,
    /// The HMAC chain does not verify under the calendar's key.
    HmacChainMismatch,
    /// A seal record disagrees with its segment.
    BadSeal,
    /// An authentic record that differs from the local authentic one: the histories forked.
    Conflict,
    /// A segment after the end of the authentic log.
    Unreachable,
    /// The segment could not be read or downloaded.
    Unreadable,
}

impl Reason {
    /// What the reason means for an operator.
    pub fn explain(self) -> &'static str {
        match self {
            Reason::BadHeader => "segment header damaged or not continuing the chain",
            Reason::BadCrc => "CRC mismatch: damaged bytes",
            Reason::BadFrame => "invalid record framing",
            Reason::TornTail => "the copy ends inside this record (truncated or torn tail)",
            Reason::SequenceGap => "unexpected sequence number: a record dropped or out of order",
            Reason::HashChainMismatch => "public hash chain broken: altered, reordered or dropped",
            Reason::HmacChainMismatch => {
                "HMAC chain fails under this calendar's key: forged or altered, out of order, \
                 or from another calendar"
            }
            Reason::BadSeal => "seal record disagrees with its segment",
            Reason::Conflict => {
                "authentic but different from the local record: the histories forked; the local \
                 record is kept and the replica is not used from here on"
            }
            Reason::Unreachable => "follows the end of the authentic log",
            Reason::Unreadable => "could not be read",
        }
    }
}

/// One thing a copy offered that was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub source: Origin,
    /// The segment file or URL.
    pub segment: String,
    pub offset: u64,
    /// The sequence number due at this position.
    pub seq: u64,
    /// The sequence number the record claims, when its frame could be read.
    pub claimed_seq: Option<u64>,
    pub reason: Reason,
    pub detail: String,
}

/// A run of consecutive records taken from one copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Piece {
    pub source: Origin,
    pub first_seq: u64,
    /// One past the last event.
    pub next_seq: u64,
    /// Batch and seal records.
    pub records: u64,
}

/// A finished segment of the merged log.
#[derive(Debug)]
pub struct SegmentOut {
    pub first_seq: u64,
    pub bytes: Vec<u8>,
    /// The whole local file, when the segment is sealed and identical to it (a hard link will do).
    pub same_as_local: Option<PathBuf>,
}

/// What the merge produced, besides the segments.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub pieces: Vec<Piece>,
    pub rejected: Vec<Rejection>,
    pub next_seq: u64,
    pub segments: u64,
    /// Some local bytes that were not all zeros were not used (damage, torn tail, unreachable).
    pub local_unused: bool,
}

/// Why the merge could not run.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error("writing the recovered log: {0}")]
    Sink(String),
}

/// One copy of the log and where its merge stands in the current segment.
struct Side<'a> {
    origin: Origin,
    store: Store<'a>,
    listed: Vec<u64>,
    segment: Option<Vec<u8>>,
    in_bad_run: bool,
    forked: bool,
}

enum Store<'a> {
    Local(&'a Path),
    Remote(&'a Replica),
}

impl Store<'_> {
    fn location(&self, first_seq: u64) -> String {
        match self {
            Store::Local(d) => d.join(segment_name(first_seq)).display().to_string(),
            Store::Remote(r) => r.location(first_seq),
        }
    }

    fn load(&self, first_seq: u64) -> Result<Option<Vec<u8>>, ReplicaError> {
        match self {
            Store::Local(d) => mirror::read_segment(d, first_seq),
            Store::Remote(r) => r.segment(first_seq),
        }
    }
}

/// The merge in progress.
struct Merge<'a> {
    key: LogKey,
    sides: [Side<'a>; 2],
    out: Outcome,
}

/// Merges the local log in `local_dir` with `replica` from genesis; `sink` receives each finished
/// segment in order, `progress` a report after each.
pub fn merge(
    key: LogKey,
    local_dir: &Path,
    replica: &Replica,
    sink: &mut dyn FnMut(SegmentOut) -> Result<(), String>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Outcome, MergeError> {
    let local = Side::new(
        Origin::Local,
        Store::Local(local_dir),
        mirror::list_dir(local_dir)?,
    );
    let remote = Side::new(Origin::Replica, Store::Remote(replica), replica.segments()?);
    let mut m = Merge {
        key,
        sides: [local, remote],
        out: Outcome::default(),
    };
    let started = Instant::now();
    let mut last_report = started;
    let (mut first_seq, mut prev) = (0, ChainState::GENESIS);
    let mut visited = Vec::new();
    loop {
        visited.push(first_seq);
        let Some(pos) = m.segment(first_seq, prev, sink)? else {
            break;
        };
        if last_report.elapsed() >= PROGRESS_INTERVAL {
            last_report = Instant::now();
            progress(&Progress {
                events: pos.verifier.next_seq,
                seq: pos.verifier.next_seq.saturating_sub(1),
                elapsed: started.elapsed(),
            });
        }
        if !pos.sealed() {
            break;
        }
        (first_seq, prev) = (pos.verifier.next_seq, pos.verifier.chain);
    }
    m.report_unreachable(&visited);
    Ok(m.out)
}

impl<'a> Side<'a> {
    fn new(origin: Origin, store: Store<'a>, listed: Vec<u64>) -> Side<'a> {
        Side {
            origin,
            store,
            listed,
            segment: None,
            in_bad_run: false,
            forked: false,
        }
    }

    fn rejection(
        &self,
        first_seq: u64,
        at: &Position,
        reason: Reason,
        claimed: Option<u64>,
    ) -> Rejection {
        Rejection {
            source: self.origin,
            segment: self.store.location(first_seq),
            offset: at.offset,
            seq: at.verifier.next_seq,
            claimed_seq: claimed,
            reason,
            detail: reason.explain().to_owned(),
        }
    }

    /// The record bytes at `offset .. offset + len` of the loaded segment.
    fn record(&self, offset: u64, len: usize) -> &[u8] {
        let start = offset as usize;
        self.segment
            .as_deref()
            .and_then(|b| b.get(start..start + len))
            .unwrap_or_default()
    }
}

/// What a copy's bytes at a position are.
type Try = Option<Result<(usize, Position), Fault>>;

fn fault_reason(fault: Fault) -> (Reason, Option<u64>) {
    match fault {
        Fault::End => (Reason::TornTail, None),
        Fault::Frame { error, claimed_seq } => {
            let reason = match error {
                FrameError::BadCrc => Reason::BadCrc,
                FrameError::Incomplete => Reason::TornTail,
                _ => Reason::BadFrame,
            };
            (reason, claimed_seq)
        }
        Fault::Chain { kind, claimed_seq } => {
            let reason = match kind {
                Corruption::BadSequence => Reason::SequenceGap,
                Corruption::BadHash => Reason::HashChainMismatch,
                Corruption::BadTag => Reason::HmacChainMismatch,
                Corruption::BadSeal => Reason::BadSeal,
                _ => Reason::BadFrame,
            };
            (reason, Some(claimed_seq))
        }
    }
}

impl Merge<'_> {
    /// Merges segment `first_seq`, whose header carries `prev`; returns the position at its end,
    /// or `None` if no copy has it.
    fn segment(
        &mut self,
        first_seq: u64,
        prev: ChainState,
        sink: &mut dyn FnMut(SegmentOut) -> Result<(), String>,
    ) -> Result<Option<Position>, MergeError> {
        let header = SegmentHeader { first_seq, prev };
        for i in 0..self.sides.len() {
            self.load(i, &header);
        }
        if self.sides.iter().all(|s| s.segment.is_none()) {
            return Ok(None);
        }
        let path = PathBuf::from(segment_name(first_seq));
        let mut pos = Position::segment_start(&path, &header, self.key.clone());
        let mut bytes = header.encode().to_vec();
        let mut all_local = true;
        while !pos.sealed() {
            let Some((side, len, next)) = self.step(first_seq, &pos) else {
                break;
            };
            bytes.extend_from_slice(self.sides[side].record(pos.offset, len));
            self.add_to_piece(self.sides[side].origin, &pos, &next);
            all_local &= side == 0;
            pos = next;
        }
        let local = self.sides[0].segment.as_ref();
        let same_as_local = (all_local && pos.sealed() && local.map(Vec::len) == Some(bytes.len()))
            .then(|| PathBuf::from(self.sides[0].store.location(first_seq)));
        sink(SegmentOut {
            first_seq,
            bytes,
            same_as_local,
        })
        .map_err(MergeError::Sink)?;
        self.out.segments += 1;
        self.out.next_seq = pos.verifier.next_seq;
        Ok(Some(pos))
    }

    /// Loads side `i`'s copy of the segment with `header`, if it has one whose header matches.
    fn load(&mut self, i: usize, header: &SegmentHeader) {
        let first_seq = header.first_seq;
        let side = &mut self.sides[i];
        side.in_bad_run = false;
        side.segment = None;
        if side.forked || !side.listed.contains(&first_seq) {
            return;
        }
        let location = side.store.location(first_seq);
        let problem = match side.store.load(first_seq) {
            Ok(Some(bytes)) => match check_header(&bytes, header, Path::new(&location)) {
                Ok(()) => {
                    side.segment = Some(bytes);
                    return;
                }
                Err(e) => (Reason::BadHeader, header_problem(&e)),
            },
            Ok(None) => return,
            Err(e) => (Reason::Unreadable, e.to_string()),
        };
        self.out.local_unused |= side.origin == Origin::Local;
        self.out.rejected.push(Rejection {
            source: side.origin,
            segment: location,
            offset: 0,
            seq: first_seq,
            claimed_seq: None,
            reason: problem.0,
            detail: format!("{}: {}", problem.0.explain(), problem.1),
        });
    }

    /// Picks the record at `pos`: the local one if it verifies, else the replica's. Reports what
    /// the copies offer there and is not taken. Returns (side, length, position after it).
    fn step(&mut self, first_seq: u64, pos: &Position) -> Option<(usize, usize, Position)> {
        let tries: Vec<Try> = self
            .sides
            .iter()
            .map(|s| s.segment.as_deref().map(|b| pos.try_next(b)))
            .collect();
        let chosen = tries.iter().position(|t| matches!(t, Some(Ok(_))));
        let taken = chosen.and_then(|c| match &tries[c] {
            Some(Ok((len, next))) => Some((c, *len, next.clone())),
            _ => None,
        });
        for (i, t) in tries.into_iter().enumerate() {
            self.judge(i, t, taken.as_ref(), first_seq, pos);
        }
        taken
    }

    /// Reports what side `i` offered at `pos` if it is neither taken nor the same as what is.
    fn judge(
        &mut self,
        i: usize,
        offered: Try,
        taken: Option<&(usize, usize, Position)>,
        first_seq: u64,
        pos: &Position,
    ) {
        let side = &self.sides[i];
        let rejection = match offered {
            None | Some(Err(Fault::End)) => None,
            Some(Ok((len, _))) => match taken {
                Some(&(c, taken_len, _))
                    if c != i
                        && side.record(pos.offset, len)
                            != self.sides[c].record(pos.offset, taken_len) =>
                {
                    Some(side.rejection(first_seq, pos, Reason::Conflict, None))
                }
                _ => None,
            },
            Some(Err(fault)) => {
                let (reason, claimed) = fault_reason(fault);
                (!side.in_bad_run).then(|| side.rejection(first_seq, pos, reason, claimed))
            }
        };
        let bad = matches!(offered, Some(Err(f)) if f != Fault::End);
        let side = &mut self.sides[i];
        side.in_bad_run = bad;
        self.out.local_unused |= bad && side.origin == Origin::Local;
        if let Some(r) = rejection {
            if r.reason == Reason::Conflict {
                side.forked = true;
                side.segment = None;
            }
            self.out.rejected.push(r);
        }
    }

    fn add_to_piece(&mut self, source: Origin, before: &Position, after: &Position) {
        let (first, next) = (before.verifier.next_seq, after.verifier.next_seq);
        match self.out.pieces.last_mut() {
            Some(p) if p.source == source && p.next_seq == first => {
                p.next_seq = next;
                p.records += 1;
            }
            _ => self.out.pieces.push(Piece {
                source,
                first_seq: first,
                next_seq: next,
                records: 1,
            }),
        }
    }

    /// Reports every listed segment the merge never reached (after its end, or out of place).
    fn report_unreachable(&mut self, visited: &[u64]) {
        for side in &self.sides {
            if side.forked {
                continue;
            }
            for &seq in side.listed.iter().filter(|s| !visited.contains(s)) {
                self.out.local_unused |= side.origin == Origin::Local;
                self.out.rejected.push(Rejection {
                    source: side.origin,
                    segment: side.store.location(seq),
                    offset: 0,
                    seq,
                    claimed_seq: None,
                    reason: Reason::Unreachable,
                    detail: Reason::Unreachable.explain().to_owned(),
                });
            }
        }
    }
}

fn header_problem(e: &LogError) -> String {
    match e {
        LogError::Corrupt {
            kind: Corruption::Discontinuity,
            ..
        } => "its first sequence number or carried chain values are not the ones due here".into(),
        LogError::Corrupt { kind, .. } => format!("{kind:?}"),
        other => other.to_string(),
    }
}
