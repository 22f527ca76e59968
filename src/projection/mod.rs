//! Projections: pure folds over the log's events into the indexes the API serves.
//!
//! The fold itself touches no disk, HTTP or RPC. [`Projection::apply`] is called with every event
//! in log order, at start-up by replay and afterwards by the aggregator and the stamper for each
//! durable batch, so the in-memory view is always exactly what a replay of the log would give.
//! Its only files are the rebuildable [`checkpoint`] of the fold, which [`rebuild`] loads at
//! start-up and keeps current while otsd runs.
//!
//! Memory: one [`RoundEntry`] (about 70 bytes) per round plus a hash-map slot per commitment; nothing
//! per digest. Under load a round holds hundreds of digests, so ten million digests need a few
//! tens of thousands of entries. A cache outside the folded state keeps the tip trees of the
//! [`TIP_TREES_CACHED`] most recently served final transactions (64 bytes per round they cover).
pub mod checkpoint;
pub mod rebuild;
pub mod stamps;

pub use stamps::{RoundStamp, Stamps};

use std::collections::HashMap;

use crate::calendar::commitment::{commitment_time, Commitment};
use crate::events::Event;
use crate::ots::MerkleTree;

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
#[derive(Debug, Default, Clone)]
pub struct Projection {
    rounds: Vec<RoundEntry>,
    by_commitment: HashMap<Commitment, u64>,
    digests_total: u64,
    /// DigestSubmitted events seen since the last RoundSealed.
    open_digests: u32,
    next_seq: u64,
    stamps: Stamps,
    tip_trees: TipTrees,
}

impl Projection {
    /// An empty projection whose proofs are final after `min_confirmations` (`--btc-min-confirmations`).
    pub fn new(min_confirmations: u32) -> Projection {
        Projection {
            stamps: Stamps::new(min_confirmations),
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
        self.next_seq = seq + 1;
        match event {
            Event::DigestSubmitted { .. } => {
                self.count_digest(seq);
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
        let expected = self.rounds.len() as u64;
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
        // the log still had) must not turn a stamped commitment back into a pending one.
        self.by_commitment.entry(commitment).or_insert(round);
        self.rounds.push(RoundEntry {
            commitment,
            time,
            digests,
            seal_seq: seq,
        });
        self.digests_total += u64::from(digests);
        Ok(())
    }

    /// Status of a commitment (any byte string a client may ask about). A legacy commitment is
    /// found by its 36 bytes only, as the Python server finds it ([`crate::calendar::legacy`]).
    pub fn status(&self, commitment: &[u8]) -> Status {
        let Some(key) = crate::calendar::legacy::stored_form(commitment) else {
            return Status::Unknown;
        };
        let Some(&round) = self.by_commitment.get(&key) else {
            return Status::Unknown;
        };
        match self.stamps.round(round) {
            RoundStamp::Imported => Status::Imported {
                round,
                seal_seq: self.rounds[round as usize].seal_seq,
            },
            RoundStamp::Pending => Status::Pending { round },
            RoundStamp::Mined { txid } => Status::Mined { round, txid: *txid },
            RoundStamp::Final { first_round, mined } => {
                let last = mined.last_round;
                let head = mined.log_head.as_ref().map(|h| h.hash);
                let tree = self
                    .tip_trees
                    .get_or_build((first_round, last, mined.txid), || {
                        // The fold admits only transactions over sealed rounds; `get` keeps
                        // even a broken invariant from panicking a request.
                        let rounds = self.rounds.get(first_round as usize..=last as usize)?;
                        let commitments = rounds.iter().map(|r| &r.commitment[..]);
                        crate::anchor::proof::tip_tree(commitments, head.as_ref())
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
        self.rounds.len() as u64
    }

    /// The next log sequence number after everything folded so far.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The most recent round, if any.
    pub fn latest_round(&self) -> Option<(u64, &RoundEntry)> {
        self.rounds
            .last()
            .map(|r| (self.rounds.len() as u64 - 1, r))
    }

    /// Commitments of the rounds no mined stamping transaction covers yet, oldest first
    /// (see [`crate::anchor::state::StamperState::first_unmined_round`]).
    pub fn pending_commitments(&self) -> impl ExactSizeIterator<Item = &Commitment> {
        let first = self.first_pending_round().min(self.next_round()) as usize;
        self.rounds[first..].iter().map(|r| &r.commitment)
    }

    /// The first round of [`Self::pending_commitments`].
    pub fn first_pending_round(&self) -> u64 {
        self.stamps.state.first_unmined_round()
    }

    /// Commitments of rounds `first..=last` that exist, in order.
    pub fn round_commitments(&self, first: u64, last: u64) -> Vec<Commitment> {
        let end = (last.saturating_add(1)).min(self.next_round());
        (first..end)
            .map(|r| self.rounds[r as usize].commitment)
            .collect()
    }

    /// Total digests accepted.
    pub fn digests_total(&self) -> u64 {
        self.digests_total
    }

    /// Every round, oldest first (what a checkpoint stores).
    pub fn rounds(&self) -> &[RoundEntry] {
        &self.rounds
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
        rounds: Vec<RoundEntry>,
        digests_total: u64,
        open_digests: u32,
        next_seq: u64,
        stamps: Stamps,
    ) -> Projection {
        // As the fold does: a commitment that appears twice stays with its first round.
        let mut by_commitment = HashMap::with_capacity(rounds.len());
        for (i, r) in rounds.iter().enumerate() {
            by_commitment.entry(r.commitment).or_insert(i as u64);
        }
        Projection {
            rounds,
            by_commitment,
            digests_total,
            open_digests,
            next_seq,
            stamps,
            tip_trees: TipTrees::default(),
        }
    }
}
