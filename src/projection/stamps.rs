//! The Bitcoin side of the projection: which rounds which transaction stamped, where it was mined,
//! and what is needed to write each round's complete proof.
//!
//! Folded from `TxBroadcast`, `BlockSeen`, `TxConfirmed` and `Reorg`. The stamper's own view
//! ([`StamperState`]) is part of this fold, so the stamper reads its state from the projection like
//! every other reader and a replay rebuilds both.
//!
//! Memory: the raw transactions of cycles not yet final (a few hundred bytes each) and one
//! [`TxProof`] (about 400 bytes) per mined stamping transaction; nothing per round or per digest.
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::anchor::proof::{ProofError, TxProof};
use crate::anchor::state::{Hash32, StamperState};
use crate::events::{Event, LogHead};

/// A sent transaction, kept until its cycle is final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Sent {
    no_witness: Vec<u8>,
    tip: Hash32,
    first_round: u64,
    last_round: u64,
    log_head: Option<LogHead>,
}

/// A mined stamping transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mined {
    pub txid: Hash32,
    pub last_round: u64,
    pub proof: TxProof,
    /// The log head the tip also commits to (its last leaf).
    pub log_head: Option<LogHead>,
    /// Fee paid, satoshis (0 in checkpoints written before it was kept).
    #[serde(default)]
    pub fee_sat: u64,
}

/// Where a round stands in Bitcoin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundStamp<'a> {
    /// In no mined transaction (yet, or any more after a reorg).
    Pending,
    /// Mined, with fewer than the required confirmations.
    Mined { txid: &'a Hash32 },
    /// Mined and final: the proof can be served.
    Final { first_round: u64, mined: &'a Mined },
    /// Imported with the complete proof of the Python calendar it came from, which is served as is.
    Imported,
}

/// Python otsd's `--btc-min-confirmations` default.
pub const DEFAULT_MIN_CONFIRMATIONS: u32 = 6;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stamps {
    pub state: StamperState,
    sent: HashMap<Hash32, Sent>,
    /// Mined transactions by first round.
    mined: BTreeMap<u64, Mined>,
    /// Change output of the newest mined stamping transaction: (txid, value, height). The next
    /// cycle spends it, so coins are found from the log and no UTXO scan is needed after the first.
    change: Option<(Hash32, u64, u32)>,
    /// Rounds imported with a complete proof (`CommitmentImported`), as ranges last round by
    /// first round: one range per run of complete rounds in the imported journal.
    #[serde(default)]
    imported: BTreeMap<u64, u64>,
}

impl Default for Stamps {
    fn default() -> Self {
        Stamps::new(DEFAULT_MIN_CONFIRMATIONS)
    }
}

impl Stamps {
    pub fn new(min_confirmations: u32) -> Stamps {
        Stamps {
            state: StamperState::new(min_confirmations),
            sent: HashMap::new(),
            mined: BTreeMap::new(),
            change: None,
            imported: BTreeMap::new(),
        }
    }

    /// Folds one event; a confirmation that cannot be proven is an error (the stamper wrote it).
    pub fn apply(&mut self, event: &Event) -> Result<(), ProofError> {
        let mut result = Ok(());
        match event {
            Event::TxBroadcast {
                txid,
                raw_tx,
                tip,
                first_round,
                last_round,
                log_head,
                ..
            } => {
                let no_witness = strip_witness(raw_tx).unwrap_or_else(|| raw_tx.clone());
                self.sent.insert(
                    *txid,
                    Sent {
                        no_witness,
                        tip: *tip,
                        first_round: *first_round,
                        last_round: *last_round,
                        log_head: *log_head,
                    },
                );
            }
            Event::TxConfirmed {
                txid,
                height,
                block_txids,
                ..
            } => result = self.on_confirmed(txid, *height, block_txids),
            Event::CommitmentImported {
                round,
                proof: Some(_),
                ..
            } => self.on_imported(*round),
            Event::Reorg { fork_height, .. } => {
                // Final transactions are out of the stamper's cycles and deeper than it follows
                // reorgs; only the others are undone.
                let open: std::collections::HashSet<Hash32> = self
                    .state
                    .cycles
                    .iter()
                    .flat_map(|c| c.txs.iter().map(|t| t.txid))
                    .collect();
                if self.change.is_some_and(|(_, _, h)| h > *fork_height) {
                    self.change = None;
                }
                self.mined
                    .retain(|_, m| m.proof.height <= *fork_height || !open.contains(&m.txid));
            }
            _ => {}
        }
        self.state.apply(event);
        if matches!(event, Event::BlockSeen { .. } | Event::TxConfirmed { .. }) {
            self.prune_sent();
        }
        result
    }

    fn on_confirmed(&mut self, txid: &Hash32, height: u32, txids: &[u8]) -> Result<(), ProofError> {
        let Some(sent) = self.sent.get(txid) else {
            // A repeat after the cycle went final (its raw transaction is pruned) changes nothing;
            // auditors check the recorded block against the proof.
            if self.mined.values().any(|m| m.txid == *txid) {
                return Ok(());
            }
            return Err(ProofError::TxNotInBlock);
        };
        let proof = TxProof::new(&sent.no_witness, &sent.tip, txids, height)?;
        let sent_tx = self.state.cycles.iter().find_map(|c| c.tx(txid));
        let fee_sat = sent_tx.map_or(0, |t| t.fee_sat);
        let change = sent_tx.map(|t| t.input_sat.saturating_sub(t.fee_sat));
        if let Some(value) = change {
            if self.change.is_none_or(|(_, _, h)| h <= height) {
                self.change = Some((*txid, value, height));
            }
        }
        self.mined.insert(
            sent.first_round,
            Mined {
                txid: *txid,
                last_round: sent.last_round,
                proof,
                log_head: sent.log_head,
                fee_sat,
            },
        );
        Ok(())
    }

    fn on_imported(&mut self, round: u64) {
        if let Some(last) = self.imported.values_mut().next_back() {
            if *last + 1 == round {
                *last = round;
                return;
            }
        }
        self.imported.insert(round, round);
    }

    /// Drops raw transactions of cycles that are final (only mined proofs are needed then).
    fn prune_sent(&mut self) {
        let live: std::collections::HashSet<&Hash32> = self
            .state
            .cycles
            .iter()
            .flat_map(|c| c.txs.iter().map(|t| &t.txid))
            .collect();
        self.sent.retain(|txid, _| live.contains(txid));
    }

    /// The tip (OP_RETURN payload) of the newest stamping transaction not yet mined: the Python
    /// server's `GET /tip` (its `unconfirmed_txs[-1]`).
    pub fn unconfirmed_tip(&self) -> Option<Hash32> {
        let txid = self.state.open_cycle()?.latest().txid;
        self.sent.get(&txid).map(|s| s.tip)
    }

    /// A sent transaction of a cycle not yet final, serialized without witness.
    pub fn raw_tx(&self, txid: &Hash32) -> Option<&[u8]> {
        self.sent.get(txid).map(|s| s.no_witness.as_slice())
    }

    /// The change output (txid, vout 0, value in sat) of the newest mined stamping transaction.
    pub fn change_coin(&self) -> Option<(Hash32, u64)> {
        self.change.map(|(txid, value, _)| (txid, value))
    }

    /// Mined stamping transactions still standing, by first round, oldest first; with whether
    /// each is final.
    pub fn mined(&self) -> impl DoubleEndedIterator<Item = (u64, &Mined, bool)> {
        let tip = self.state.tip().map_or(0, |t| t.0);
        self.mined
            .iter()
            .map(move |(first, m)| (*first, m, self.state.is_final(m.proof.height, tip)))
    }

    /// Mined transactions that are final and out of the stamper's cycles (`last_round <=
    /// final_through`), after `archived_through`, in round order: what a checkpoint moves to disk.
    pub(crate) fn archivable(
        &self,
        final_through: Option<u64>,
        archived_through: Option<u64>,
    ) -> impl Iterator<Item = (u64, &Mined)> {
        let from = archived_through.map_or(0, |r| r + 1);
        self.mined
            .range(from..)
            .take_while(move |(_, m)| final_through.is_some_and(|f| m.last_round <= f))
            .map(|(first, m)| (*first, m))
    }

    /// Drops the mined transactions a checkpoint archived (rounds up to `archived_through`).
    pub(crate) fn forget_archived(&mut self, archived_through: Option<u64>) {
        if let Some(through) = archived_through {
            self.mined.retain(|_, m| m.last_round > through);
        }
    }

    /// Where `round` stands.
    pub fn round(&self, round: u64) -> RoundStamp<'_> {
        if let Some((_, &last)) = self.imported.range(..=round).next_back() {
            if round <= last {
                return RoundStamp::Imported;
            }
        }
        let Some((first, mined)) = self.mined.range(..=round).next_back() else {
            return RoundStamp::Pending;
        };
        if round > mined.last_round {
            return RoundStamp::Pending;
        }
        let tip = self.state.tip().map_or(0, |t| t.0);
        if self.state.is_final(mined.proof.height, tip) {
            RoundStamp::Final {
                first_round: *first,
                mined,
            }
        } else {
            RoundStamp::Mined { txid: &mined.txid }
        }
    }
}

/// The serialization without witness of a (possibly segwit) raw transaction.
fn strip_witness(raw: &[u8]) -> Option<Vec<u8>> {
    let tx: bitcoin::Transaction = bitcoin::consensus::encode::deserialize(raw).ok()?;
    Some(crate::anchor::proof::no_witness_bytes(&tx))
}

#[cfg(test)]
mod tests {
    use super::super::{Projection, Status};
    use crate::events::Event;

    #[test]
    fn imported_rounds_are_served_from_the_log_and_only_pending_ones_are_stamped() {
        let mut view = Projection::new(6);
        let legacy = |b: u8| vec![b; 36];
        let events = [
            (vec![1u8; 44], Some(vec![0x08])),
            (legacy(2), Some(vec![0x08])),
            (vec![3u8; 44], None),
            (vec![4u8; 44], Some(vec![0x08])),
            (legacy(5), None),
        ];
        for (round, (commitment, proof)) in events.iter().enumerate() {
            let ev = Event::CommitmentImported {
                round: round as u64,
                commitment: commitment.clone(),
                proof: proof.clone(),
                suffix_seq: None,
            };
            view.apply(10 + round as u64, &ev).unwrap();
        }
        assert_eq!(
            view.status(&[1; 44]),
            Status::Imported {
                round: 0,
                seal_seq: 10
            }
        );
        assert_eq!(
            view.status(&legacy(2)),
            Status::Imported {
                round: 1,
                seal_seq: 11
            }
        );
        let mut padded = legacy(2);
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(
            view.status(&padded),
            Status::Unknown,
            "Python finds legacy ones by 36 bytes"
        );
        assert_eq!(view.status(&[3; 44]), Status::Pending { round: 2 });
        assert_eq!(
            view.status(&[4; 44]),
            Status::Imported {
                round: 3,
                seal_seq: 13
            }
        );
        assert_eq!(view.status(&legacy(5)), Status::Pending { round: 4 });
        // The complete prefix is final; the stamper starts at the first pending round.
        assert_eq!(view.stamps().state.next_unstamped_round(), 2);
        assert_eq!(view.first_pending_round(), 2);
        let pending: Vec<_> = view
            .pending_commitments()
            .unwrap()
            .iter()
            .map(|c| c[0])
            .collect();
        assert_eq!(pending, vec![3, 4, 5]);
        // A padded legacy commitment is a leaf over its 36 bytes, as its client holds it.
        let stored = view.round_commitments(4, 4).unwrap()[0];
        assert_eq!(
            crate::anchor::proof::tip_leaves([&stored[..]], None),
            crate::anchor::proof::tip_leaves([&legacy(5)[..]], None)
        );
    }
}
