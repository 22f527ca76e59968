//! Projections: pure folds over the log's events into the indexes the API serves.
//!
//! The fold itself touches no disk, HTTP or RPC. [`Projection::apply`] is called with every event
//! in log order, at start-up by replay and afterwards by the aggregator and the stamper for each
//! durable batch, so the in-memory view is always exactly what a replay of the log would give.
//! Its only files are the rebuildable [`checkpoint`] of the fold, which [`rebuild`] loads at
//! start-up and keeps current while otsd runs.
//!
//! Memory is bounded, history lives on disk. Rounds up to the last checkpoint (a segment
//! boundary) are served from the files of [`checkpoint`] through [`History`]: the round table, an
//! on-disk hash index commitment -> round, another submitted digest -> round ([`digests`]), and
//! per final stamping transaction its fee, proof tail and
//! the upper levels of its tip tree ([`tiptree`]), all read with `pread`. Memory holds only the
//! rounds sealed since the checkpoint (at most a segment's worth: one [`RoundEntry`] and a hash-map
//! slot each, about 130 bytes, and the SHA-256 of each of their digests with its round, about 50 to
//! 80 bytes a digest), the stamper's state and the mined transactions not yet final. A
//! cache outside the folded state keeps the tip trees of the [`TIP_TREES_CACHED`] most recently
//! served transactions that became final since the checkpoint (or of every final transaction, in
//! a projection without history: the `otsctl` tools that fold a log in memory).
//!
//! `GET /timestamp` of a historical commitment costs an index probe (one or two slots), a round
//! entry, a search of the final transactions in memory, one read of [`tiptree::CHUNK`] round
//! entries, one read of an aligned run of chunk nodes (512 bytes for two million rounds) and the
//! upper tree levels from a bounded cache ([`proofcache`]: at most 32 MiB); [`Projection::status_shared`]
//! does those reads without holding the projection's lock.
pub mod ahead;
pub mod checkpoint;
pub mod digests;
pub mod history;
pub mod index;
pub mod pending;
pub mod proofcache;
pub mod rebuild;
pub mod stamps;
pub mod table;
pub mod tiptree;

pub use stamps::{RoundStamp, Stamps};

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

pub use history::{History, HistoryError};

use crate::calendar::commitment::{commitment_time, Commitment};
use crate::events::Event;
use crate::ots::MerkleTree;
use digests::{digest_hash, DigestHash};

/// What the projection keeps per round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundEntry {
    pub commitment: Commitment,
    pub time: u32,
    pub digests: u32,
    /// Sequence number of the round's `RoundSealed` event.
    pub seal_seq: u64,
}

/// What the calendar knows about a commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Never issued by this calendar.
    Unknown,
    /// Issued in `round`, not yet in a mined Bitcoin transaction.
    Pending { round: u64 },
    /// Mined in `txid` (internal byte order), waiting for more confirmations.
    Mined { round: u64, txid: [u8; 32] },
    /// Final: the complete proof, serialized as the timestamp on the commitment.
    Complete { round: u64, proof: Vec<u8> },
    /// The on-disk history could not answer (damage or an I/O error, logged): the answer is
    /// refused rather than guessed.
    Unavailable(String),
    /// Imported from a Python calendar with its complete proof, which is kept only in the
    /// `CommitmentImported` event at `seal_seq` (read it from the log to serve it).
    Imported { round: u64, seal_seq: u64 },
}

/// An event that does not fit the history so far.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProjectionError {
    #[error("seq {seq}: round {got} sealed, expected round {expected}")]
    RoundOutOfOrder { seq: u64, got: u64, expected: u64 },
    #[error("seq {seq}: round {round} seals {claimed} digests but {seen} precede it")]
    DigestCount {
        seq: u64,
        round: u64,
        claimed: u32,
        seen: u32,
    },
    #[error("seq {seq}: round {round} has a commitment of {len} bytes")]
    BadCommitment { seq: u64, round: u64, len: usize },
}

/// A stamping event the fold refused; see [`Projection::apply_checked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampProblem {
    pub seq: u64,
    pub detail: String,
}

impl std::fmt::Display for StampProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seq {}: {}", self.seq, self.detail)
    }
}

/// Most tip trees kept in the proof cache: clients ask about recent transactions.
pub const TIP_TREES_CACHED: usize = 8;

/// Key of a cached tip tree: (first round, last round, txid) of a final stamping transaction.
type TipKey = (u64, u64, [u8; 32]);

/// A small cache of the Merkle trees of final transactions' tips, so that serving a complete proof
/// costs a path walk instead of rehashing every commitment the transaction covers. Not part of the
/// folded state: a clone starts empty, and a fold never reads it.
#[derive(Default)]
struct TipTrees(std::sync::Mutex<Vec<(TipKey, std::sync::Arc<MerkleTree>)>>);

impl TipTrees {
    fn get_or_build(
        &self,
        key: TipKey,
        build: impl FnOnce() -> Option<MerkleTree>,
    ) -> Option<std::sync::Arc<MerkleTree>> {
        let mut cache = crate::sync::lock(&self.0);
        if let Some(i) = cache.iter().position(|(k, _)| *k == key) {
            let hit = cache.remove(i);
            cache.push(hit.clone());
            return Some(hit.1);
        }
        // Built under the lock: concurrent readers of the same transaction wait for one build.
        let tree = std::sync::Arc::new(build()?);
        if cache.len() >= TIP_TREES_CACHED {
            cache.remove(0);
        }
        cache.push((key, tree.clone()));
        Some(tree)
    }
}

impl Clone for TipTrees {
    fn clone(&self) -> Self {
        TipTrees::default()
    }
}

impl std::fmt::Debug for TipTrees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TipTrees")
    }
}

/// The calendar's state as folded from its log.
///
/// Rounds up to the last checkpoint live on disk in [`History`] (when the projection was loaded
/// from or written to a checkpoint); the rounds after it, at most a segment's worth, in memory.
/// A projection without history (the `otsctl` tools that fold a log or a replica) keeps
/// everything in memory.
#[derive(Debug, Default, Clone)]
pub struct Projection {
    /// Rounds `base..`, sealed since the history's end.
    rounds: Vec<RoundEntry>,
    base: u64,
    by_commitment: HashMap<Commitment, u64, BuildHasherDefault<CommitmentHasher>>,
    /// SHA-256 of each digest submitted since the history's end, with its round, in log order:
    /// what the next checkpoint writes to the digest index. Kept by a fold-only projection.
    digest_log: Vec<(DigestHash, u64)>,
    /// The same digests, first round of each, for look-ups: kept by a projection that answers.
    /// Both are bounded like `rounds`: a segment's worth (about 40 and 50 bytes a digest).
    by_digest: HashMap<DigestHash, u64>,
    /// Whether digests are kept at all: by the projections otsd serves and checkpoints from
    /// ([`Projection::new`], [`Projection::restore`]), not by the auditors' in-memory folds
    /// ([`Projection::default`]), whose memory would grow with every digest of the log.
    track_digests: bool,
    history: Option<Arc<History>>,
    /// Keep no commitment map for the rounds in memory: a projection that only folds into
    /// checkpoints (the checkpointer's, a rebuild's) never answers look-ups.
    fold_only: bool,
    digests_total: u64,
    /// DigestSubmitted events seen since the last RoundSealed.
    open_digests: u32,
    next_seq: u64,
    stamps: Stamps,
    tip_trees: TipTrees,
}

impl Projection {
    /// An empty projection whose proofs are final after `min_confirmations` (`--btc-min-confirmations`),
    /// keeping the digests for the digest index.
    pub fn new(min_confirmations: u32) -> Projection {
        Projection {
            stamps: Stamps::new(min_confirmations),
            track_digests: true,
            ..Projection::default()
        }
    }

    /// The Bitcoin side: stamping transactions, confirmations, and the stamper's folded state.
    pub fn stamps(&self) -> &Stamps {
        &self.stamps
    }

    /// Folds in a `DigestSubmitted` at `seq` without its fields (they are not part of the state).
    pub fn count_digest(&mut self, seq: u64) {
        self.next_seq = seq + 1;
        self.open_digests += 1;
    }

    /// Notes a submitted digest (by its SHA-256, which `hash` gives) as part of the round being
    /// collected.
    fn note_digest(&mut self, hash: impl FnOnce() -> DigestHash) {
        if !self.track_digests {
            return;
        }
        let h = hash();
        let round = self.next_round();
        if self.fold_only {
            self.digest_log.push((h, round));
        } else {
            self.by_digest.entry(h).or_insert(round);
        }
    }

    fn fold_digest(&mut self, seq: u64, hash: impl FnOnce() -> DigestHash) {
        self.note_digest(hash);
        self.count_digest(seq);
    }

    /// Folds in a `DigestSubmitted` at `seq` from its digest alone, as [`Self::apply`] does (the
    /// replay's borrowed [`crate::events::view::EventView`]).
    pub fn apply_digest(&mut self, seq: u64, digest: &[u8]) {
        self.apply_digest_hash(seq, || digest_hash(digest));
    }

    /// [`Self::apply_digest`] from the digest's SHA-256, which `hash` gives when the projection
    /// keeps digests (a replay computes it on another thread ahead of the fold).
    pub fn apply_digest_hash(&mut self, seq: u64, hash: impl FnOnce() -> DigestHash) {
        crate::failpoint::before_fold(seq);
        self.fold_digest(seq, hash);
    }

    /// Folds in a `RoundSealed` at `seq` from the fields the fold keeps, as [`Self::apply`] does.
    pub fn apply_seal(
        &mut self,
        seq: u64,
        round: u64,
        time: u32,
        commitment: &[u8],
        digests: u32,
    ) -> Result<(), ProjectionError> {
        crate::failpoint::before_fold(seq);
        self.next_seq = seq + 1;
        self.seal(seq, round, time, commitment, digests)
    }

    /// Folds one event in. A stamping event that cannot be proven is logged and left out (see
    /// [`Projection::apply_checked`]); only an event that breaks the round order is an error.
    pub fn apply(&mut self, seq: u64, event: &Event) -> Result<(), ProjectionError> {
        if let Some(problem) = self.apply_checked(seq, event)? {
            // Written by our stamper after checking; the rounds stay pending rather than stopping
            // the calendar from starting. `otsctl verify` reports it as a problem.
            tracing::error!(seq, "{problem}");
        }
        Ok(())
    }

    /// Folds one event in, returning the problem with a stamping event the fold refused (left
    /// out, its rounds stay pending): a `TxBroadcast` covering rounds not sealed, a `TxConfirmed`
    /// whose transaction does not carry its tip or is not in its block. Auditors report these.
    pub fn apply_checked(
        &mut self,
        seq: u64,
        event: &Event,
    ) -> Result<Option<StampProblem>, ProjectionError> {
        crate::failpoint::before_fold(seq);
        self.next_seq = seq + 1;
        match event {
            Event::DigestSubmitted { digest, .. } => {
                self.fold_digest(seq, || digest_hash(digest));
                Ok(None)
            }
            Event::RoundSealed {
                round,
                time,
                commitment,
                digests,
                ..
            } => self
                .seal(seq, *round, *time, commitment, *digests)
                .map(|()| None),
            Event::CommitmentReadmitted { round, commitment } => self
                .seal(
                    seq,
                    *round,
                    commitment_time(commitment).unwrap_or(0),
                    commitment,
                    0,
                )
                .map(|()| None),
            Event::CommitmentImported {
                round, commitment, ..
            } => {
                let stored = match commitment.len() {
                    crate::calendar::legacy::LEGACY_LEN => {
                        crate::calendar::legacy::stored_form(commitment).map(|c| c.to_vec())
                    }
                    _ => None,
                };
                let stored = stored.as_deref().unwrap_or(commitment);
                self.seal(seq, *round, commitment_time(stored).unwrap_or(0), stored, 0)?;
                Ok(self.stamps.apply(event).err().map(|e| StampProblem {
                    seq,
                    detail: format!("imported commitment: {e}"),
                }))
            }
            Event::TxBroadcast {
                first_round,
                last_round,
                ..
            } if first_round > last_round || *last_round >= self.next_round() => {
                Ok(Some(StampProblem {
                    seq,
                    detail: format!(
                        "TxBroadcast covers rounds {first_round}..={last_round}, but only {} \
                         rounds are sealed: refused",
                        self.next_round()
                    ),
                }))
            }
            other => Ok(self.stamps.apply(other).err().map(|e| StampProblem {
                seq,
                detail: format!("stamping event cannot be proven: {e}"),
            })),
        }
    }

    fn seal(
        &mut self,
        seq: u64,
        round: u64,
        time: u32,
        commitment: &[u8],
        digests: u32,
    ) -> Result<(), ProjectionError> {
        let expected = self.next_round();
        if round != expected {
            return Err(ProjectionError::RoundOutOfOrder {
                seq,
                got: round,
                expected,
            });
        }
        let seen = std::mem::take(&mut self.open_digests);
        if seen != digests {
            return Err(ProjectionError::DigestCount {
                seq,
                round,
                claimed: digests,
                seen,
            });
        }
        let commitment: Commitment =
            commitment
                .try_into()
                .map_err(|_| ProjectionError::BadCommitment {
                    seq,
                    round,
                    len: commitment.len(),
                })?;
        // The first round with a commitment keeps it: a repeat (a readmission of a commitment
        // the log still had) must not turn a stamped commitment back into a pending one. A first
        // round in the history wins over this one when looked up (see `round_of`).
        if !self.fold_only {
            self.by_commitment.entry(commitment).or_insert(round);
        }
        self.rounds.push(RoundEntry {
            commitment,
            time,
            digests,
            seal_seq: seq,
        });
        self.digests_total += u64::from(digests);
        Ok(())
    }

    /// The first round holding `c`: the history's first, else the memory's.
    fn round_of(&self, c: &Commitment) -> Result<Option<u64>, HistoryError> {
        if let Some(h) = &self.history {
            if let Some(r) = h.find(c)? {
                return Ok(Some(r));
            }
        }
        Ok(self.by_commitment.get(c).copied())
    }

    /// Status of a commitment (any byte string a client may ask about). A legacy commitment is
    /// found by its 36 bytes only, as the Python server finds it ([`crate::calendar::legacy`]).
    pub fn status(&self, commitment: &[u8]) -> Status {
        let Some(key) = crate::calendar::legacy::stored_form(commitment) else {
            return Status::Unknown;
        };
        match self.round_of(&key) {
            Ok(Some(round)) => self.round_status(round),
            Ok(None) => Status::Unknown,
            Err(e) => Status::Unavailable(e.to_string()),
        }
    }

    /// [`Self::status`] of the projection behind `view`, holding its lock only for memory
    /// look-ups: the disk reads (index, round table, archived proofs) run without it, so a
    /// cold page cache never makes the aggregator or the stamper wait for the lock.
    pub fn status_shared(view: &RwLock<Projection>, commitment: &[u8]) -> Status {
        let Some(key) = crate::calendar::legacy::stored_form(commitment) else {
            return Status::Unknown;
        };
        let read = || crate::sync::read(view);
        let mut searched: Option<Arc<History>> = None;
        // A checkpoint can move rounds from memory to a newer history between the two looks;
        // the loop then searches that history too.
        for _ in 0..4 {
            let history = read().history.clone();
            let Some(h) = history.filter(|h| !searched.as_ref().is_some_and(|s| Arc::ptr_eq(s, h)))
            else {
                let v = read();
                return match v.by_commitment.get(&key) {
                    Some(&round) => v.round_status(round),
                    None if v.history.as_ref().map(Arc::as_ptr)
                        != searched.as_ref().map(Arc::as_ptr) =>
                    {
                        continue
                    }
                    None => Status::Unknown,
                };
            };
            match h.find(&key) {
                Err(e) => return Status::Unavailable(e.to_string()),
                Ok(Some(round))
                    if h.archived_through().is_some_and(|t| round <= t)
                        && !matches!(read().stamps.round(round), RoundStamp::Imported) =>
                {
                    return archived_status(&h, round)
                }
                Ok(Some(round)) => return read().round_status(round),
                Ok(None) => searched = Some(h),
            }
        }
        Status::Unavailable("the projection changed under four look-ups in a row".into())
    }

    fn round_status(&self, round: u64) -> Status {
        let imported = matches!(self.stamps.round(round), RoundStamp::Imported);
        if let Some(h) = &self.history {
            if !imported && h.archived_through().is_some_and(|t| round <= t) {
                return archived_status(h, round);
            }
        }
        match self.stamps.round(round) {
            RoundStamp::Imported => match self.round(round) {
                Ok(Some(r)) => Status::Imported {
                    round,
                    seal_seq: r.seal_seq,
                },
                Ok(None) => Status::Unknown,
                Err(e) => Status::Unavailable(e.to_string()),
            },
            RoundStamp::Pending => Status::Pending { round },
            RoundStamp::Mined { txid } => Status::Mined { round, txid: *txid },
            RoundStamp::Final { first_round, mined } => {
                let last = mined.last_round;
                let head = mined.log_head.as_ref().map(|h| h.hash);
                let tree = self
                    .tip_trees
                    .get_or_build((first_round, last, mined.txid), || {
                        let commitments = self.round_commitments(first_round, last).ok()?;
                        crate::anchor::proof::tip_tree(
                            commitments.iter().map(|c| &c[..]),
                            head.as_ref(),
                        )
                    });
                let mut proof = Vec::new();
                let written = tree
                    .ok_or(crate::anchor::proof::ProofError::Empty)
                    .and_then(|tree| {
                        crate::anchor::proof::write_commitment_proof(
                            &mut proof,
                            &tree,
                            (last - first_round + 1) as usize,
                            (round - first_round) as usize,
                            &mined.proof,
                        )
                    });
                match written {
                    Ok(()) => Status::Complete { round, proof },
                    Err(_) => Status::Pending { round },
                }
            }
        }
    }

    /// Number of the next round to seal.
    pub fn next_round(&self) -> u64 {
        self.base + self.rounds.len() as u64
    }

    /// The next log sequence number after everything folded so far.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Round `round`, from memory or from the history.
    pub fn round(&self, round: u64) -> Result<Option<RoundEntry>, HistoryError> {
        if round >= self.base {
            return Ok(self.rounds.get((round - self.base) as usize).cloned());
        }
        match &self.history {
            Some(h) => h.round(round).map(Some),
            None => Ok(None),
        }
    }

    /// The most recent round, if any.
    pub fn latest_round(&self) -> Option<(u64, RoundEntry)> {
        let last = self.next_round().checked_sub(1)?;
        self.round(last).ok().flatten().map(|r| (last, r))
    }

    /// Commitments of the rounds no mined stamping transaction covers yet, oldest first
    /// (see [`crate::anchor::state::StamperState::first_unmined_round`]).
    pub fn pending_commitments(&self) -> Result<Vec<Commitment>, HistoryError> {
        self.round_commitments(self.first_pending_round(), u64::MAX)
    }

    /// How many [`Self::pending_commitments`] there are.
    pub fn pending_count(&self) -> u64 {
        self.next_round()
            .saturating_sub(self.first_pending_round().min(self.next_round()))
    }

    /// The first round of [`Self::pending_commitments`].
    pub fn first_pending_round(&self) -> u64 {
        self.stamps.state.first_unmined_round()
    }

    /// Commitments of rounds `first..=last` that exist, in order.
    pub fn round_commitments(
        &self,
        first: u64,
        last: u64,
    ) -> Result<Vec<Commitment>, HistoryError> {
        let end = (last.saturating_add(1)).min(self.next_round());
        let mut out = Vec::with_capacity(end.saturating_sub(first) as usize);
        if let (Some(h), true) = (&self.history, first < self.base) {
            let disk_end = end.min(self.base);
            let mut at = first;
            while at < disk_end {
                let step = (disk_end - at).min(1 << 16);
                out.extend(h.rounds_range(at, at + step)?.iter().map(|r| r.commitment));
                at += step;
            }
        }
        let from = first.max(self.base);
        if from < end {
            let range = (from - self.base) as usize..(end - self.base) as usize;
            out.extend(self.rounds[range].iter().map(|r| r.commitment));
        }
        Ok(out)
    }

    /// Fees (satoshis) and count of the mined stamping transactions whose newest round was
    /// sealed at `since` (unix seconds) or later: archived ones from the history, the others from
    /// memory. The Python otsd's "fees used in the last week" counts its wallet's mined
    /// transactions by the time the wallet saw them; a round's time is when the calendar made it,
    /// shortly before the transaction covering it was sent.
    pub fn fees_since(&self, since: u32) -> Result<(u64, u64), HistoryError> {
        let (mut fees, mut n) = match &self.history {
            Some(h) => h.fees_since(since)?,
            None => (0, 0),
        };
        for (_, mined, _) in self.stamps.mined() {
            if self
                .round(mined.last_round)?
                .is_some_and(|r| r.time >= since)
            {
                fees = fees.saturating_add(mined.fee_sat);
                n += 1;
            }
        }
        Ok((fees, n))
    }

    /// Total digests accepted.
    pub fn digests_total(&self) -> u64 {
        self.digests_total
    }

    /// The rounds folded since the history's end, oldest first (what the next checkpoint writes).
    pub fn recent_rounds(&self) -> &[RoundEntry] {
        &self.rounds
    }

    /// Rounds on disk (0 without history).
    pub fn history_rounds(&self) -> u64 {
        self.base
    }

    /// The on-disk history, if any.
    pub fn history(&self) -> Option<&Arc<History>> {
        self.history.as_ref()
    }

    /// The `--btc-min-confirmations` this projection folds with.
    pub fn min_confirmations(&self) -> u32 {
        self.stamps.state.min_confirmations
    }

    /// The parts of the state a checkpoint stores besides the rounds.
    pub(crate) fn checkpoint_parts(&self) -> (u64, u32, &Stamps) {
        (self.digests_total, self.open_digests, &self.stamps)
    }

    /// A projection restored from a checkpoint: exactly the fold of the log up to `next_seq`.
    pub(crate) fn restore(
        history: Arc<History>,
        digests_total: u64,
        open_digests: u32,
        next_seq: u64,
        stamps: Stamps,
    ) -> Projection {
        Projection {
            rounds: Vec::new(),
            base: history.rounds(),
            by_commitment: HashMap::default(),
            digest_log: Vec::new(),
            by_digest: HashMap::new(),
            track_digests: true,
            history: Some(history),
            fold_only: false,
            digests_total,
            open_digests,
            next_seq,
            stamps,
            tip_trees: TipTrees::default(),
        }
    }

    /// A projection that only folds into checkpoints keeps no commitment map (see
    /// [`CheckpointFiles::write`](checkpoint::CheckpointFiles::write)); turning look-ups back on
    /// maps the rounds in memory again.
    pub fn set_fold_only(&mut self, fold_only: bool) {
        let digests = self.recent_digests();
        self.fold_only = fold_only;
        self.by_commitment.clear();
        self.digest_log.clear();
        self.by_digest.clear();
        if !fold_only {
            for (i, r) in self.rounds.iter().enumerate() {
                self.by_commitment
                    .entry(r.commitment)
                    .or_insert(self.base + i as u64);
            }
        }
        for (h, round) in digests {
            if fold_only {
                self.digest_log.push((h, round));
            } else {
                self.by_digest.entry(h).or_insert(round);
            }
        }
    }

    /// The digests submitted since the history's end (SHA-256 of each, and its round), in round
    /// order: what the next checkpoint writes to the digest index.
    pub fn recent_digests(&self) -> Vec<(DigestHash, u64)> {
        if self.fold_only {
            return self.digest_log.clone();
        }
        let mut out: Vec<(DigestHash, u64)> =
            self.by_digest.iter().map(|(h, r)| (*h, *r)).collect();
        out.sort_by_key(|&(_, r)| r);
        out
    }

    /// The first round a digest was submitted in, from the history (on disk) or memory.
    pub fn digest_round(&self, digest: &[u8]) -> Result<Option<u64>, HistoryError> {
        let h = digest_hash(digest);
        if let Some(history) = &self.history {
            if let Some(r) = history.find_digest(&h)? {
                return Ok(Some(r));
            }
        }
        Ok(self.by_digest.get(&h).copied())
    }

    /// [`Self::digest_round`] of the projection behind `view`, reading the disk without its lock
    /// (as [`Self::status_shared`] does).
    pub fn digest_round_shared(
        view: &RwLock<Projection>,
        digest: &[u8],
    ) -> Result<Option<u64>, HistoryError> {
        let h = digest_hash(digest);
        let read = || crate::sync::read(view);
        let mut searched: Option<Arc<History>> = None;
        // A checkpoint can move digests from memory to a newer history between two looks; the
        // loop then searches that history too.
        for _ in 0..4 {
            if let Some(history) = &searched {
                if let Some(r) = history.find_digest(&h)? {
                    return Ok(Some(r));
                }
            }
            let v = read();
            let same = v.history.as_ref().map(Arc::as_ptr) == searched.as_ref().map(Arc::as_ptr);
            if same {
                return Ok(v.by_digest.get(&h).copied());
            }
            searched = v.history.clone();
        }
        Err(HistoryError::Damaged(
            "the projection changed under four look-ups in a row".into(),
        ))
    }

    /// Serves from `history` (a checkpoint of this very fold, at or behind it) what it covers,
    /// dropping those rounds and final transactions from memory.
    pub fn adopt(&mut self, history: Arc<History>) {
        let upto = history.rounds().min(self.next_round());
        if upto < self.base {
            return;
        }
        let moved = (upto - self.base) as usize;
        for r in self.rounds.drain(..moved) {
            if self
                .by_commitment
                .get(&r.commitment)
                .is_some_and(|&x| x < upto)
            {
                self.by_commitment.remove(&r.commitment);
            }
        }
        self.base = upto;
        self.digest_log.retain(|&(_, r)| r >= upto);
        self.by_digest.retain(|_, r| *r >= upto);
        self.stamps.forget_archived(history.archived_through());
        self.tip_trees = TipTrees::default();
        self.history = Some(history);
    }
}

/// A fast hash for the in-memory commitment map (FxHash-style over all bytes). Commitments are
/// made by the calendar (a MAC'd Merkle root), so no client can choose keys that collide; the
/// default SipHash cost a tenth of the fold's time.
#[derive(Default)]
pub struct CommitmentHasher(u64);

impl Hasher for CommitmentHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The status of a round an archived (final) transaction stamps.
fn archived_status(h: &History, round: u64) -> Status {
    let proof = h.tx_for(round).and_then(|tx| match tx {
        Some(tx) => h.proof(&tx, round).map(Some),
        None => Ok(None),
    });
    match proof {
        Ok(Some(proof)) => Status::Complete { round, proof },
        Ok(None) => Status::Unavailable(format!(
            "round {round} is archived but no transaction covers it"
        )),
        Err(e) => Status::Unavailable(e.to_string()),
    }
}
