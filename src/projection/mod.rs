//! Projections: pure folds over the log's events into the indexes the API serves.
//!
//! Nothing here touches disk, HTTP or RPC. [`Projection::apply`] is called with every event in log
//! order, at start-up by replay and afterwards by the aggregator for each durable round, so the
//! in-memory view is always exactly what a replay of the log would give.
//!
//! Memory: one [`RoundEntry`] (about 70 bytes) per round plus a hash-map slot per commitment; nothing
//! per digest. Under load a round holds hundreds of digests, so ten million digests need a few
//! tens of thousands of entries.
mod tip;

pub use tip::merkle_tip;

use std::collections::HashMap;

use crate::events::Event;

/// Length of a calendar commitment: 4-byte time, 32-byte Merkle root, 8-byte MAC.
pub const COMMITMENT_LEN: usize = 44;

/// A commitment as stored in the index.
pub type Commitment = [u8; COMMITMENT_LEN];

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
    /// Issued in `round`, not yet in a confirmed Bitcoin transaction.
    Pending { round: u64 },
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

/// The calendar's state as folded from its log.
#[derive(Debug, Default)]
pub struct Projection {
    rounds: Vec<RoundEntry>,
    by_commitment: HashMap<Commitment, u64>,
    digests_total: u64,
    /// DigestSubmitted events seen since the last RoundSealed.
    open_digests: u32,
    next_seq: u64,
}

impl Projection {
    /// Folds one event in.
    pub fn apply(&mut self, seq: u64, event: &Event) -> Result<(), ProjectionError> {
        self.next_seq = seq + 1;
        match event {
            Event::DigestSubmitted { .. } => {
                self.open_digests += 1;
                Ok(())
            }
            Event::RoundSealed {
                round,
                time,
                commitment,
                digests,
                ..
            } => self.seal(seq, *round, *time, commitment, *digests),
            _ => Ok(()),
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
        self.by_commitment.insert(commitment, round);
        self.rounds.push(RoundEntry {
            commitment,
            time,
            digests,
            seal_seq: seq,
        });
        self.digests_total += u64::from(digests);
        Ok(())
    }

    /// Status of a commitment (any byte string a client may ask about).
    pub fn status(&self, commitment: &[u8]) -> Status {
        let Ok(key) = Commitment::try_from(commitment) else {
            return Status::Unknown;
        };
        match self.by_commitment.get(&key) {
            Some(&round) => Status::Pending { round },
            None => Status::Unknown,
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

    /// Commitments not yet confirmed in Bitcoin, oldest first.
    pub fn pending_commitments(&self) -> impl ExactSizeIterator<Item = &Commitment> {
        self.rounds.iter().map(|r| &r.commitment)
    }

    /// Total digests accepted.
    pub fn digests_total(&self) -> u64 {
        self.digests_total
    }
}
