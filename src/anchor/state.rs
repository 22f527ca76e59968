//! What the stamper knows, as a pure fold over its own log events (`TxBroadcast`, `BlockSeen`,
//! `TxConfirmed`, `Reorg`). Replaying the log rebuilds it exactly; nothing here does I/O.
//!
//! Rounds are stamped in *cycles*: a cycle starts with one transaction covering every pending round
//! and continues with replace-by-fee bumps (same input, tip over more rounds, higher fee) until one of
//! its transactions is mined. Invariants:
//! - every transaction of a cycle spends the same input, so at most one of them can confirm;
//! - bumps only grow the covered range, and every cycle starts right after what the previous cycle's
//!   *confirmed* transaction covered, so no round is left uncovered;
//! - a reorg that disconnects a cycle's confirmation makes the cycle unconfirmed again, watching all
//!   its transactions: the same transaction being mined again later is handled like a first
//!   confirmation (the Python stamper's FIXME), and if it is the newest cycle it is bumped as usual.
//!
//! Memory is bounded: cycles are dropped once final, and only the last [`MAX_TRACKED_BLOCKS`] block
//! hashes are kept for reorg detection.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::Event;

/// Block hashes kept for finding the fork point of a reorg; deeper reorgs are not followed.
pub const MAX_TRACKED_BLOCKS: u32 = 288;

pub type Hash32 = [u8; 32];

/// One transaction handed to Bitcoin Core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentTx {
    pub txid: Hash32,
    pub first_round: u64,
    pub last_round: u64,
    pub fee_sat: u64,
    pub input_sat: u64,
    /// Best height when sent; a bump waits for a block above it.
    pub height: u32,
}

/// Where a cycle's transaction was mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub txid: Hash32,
    pub height: u32,
    pub block_hash: Hash32,
}

/// A transaction and its replace-by-fee bumps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cycle {
    pub txs: Vec<SentTx>,
    pub confirmed: Option<Confirmation>,
}

impl Cycle {
    /// The newest transaction (a cycle always has at least one).
    #[allow(
        clippy::expect_used,
        reason = "the fold opens a cycle with its first transaction and never empties one (checkpoints are MAC-checked)"
    )]
    pub fn latest(&self) -> &SentTx {
        self.txs.last().expect("a cycle starts with a transaction")
    }

    /// The last round this cycle is known to stamp: its mined transaction's, else its newest one's.
    pub fn covered_through(&self) -> u64 {
        match self.confirmed {
            Some(c) => self
                .tx(&c.txid)
                .map_or(self.latest().last_round, |t| t.last_round),
            None => self.latest().last_round,
        }
    }

    pub fn tx(&self, txid: &Hash32) -> Option<&SentTx> {
        self.txs.iter().find(|t| &t.txid == txid)
    }
}

/// The stamper's folded state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StamperState {
    /// Best chain as seen, height -> hash, the newest [`MAX_TRACKED_BLOCKS`] only.
    pub blocks: BTreeMap<u32, Hash32>,
    /// Cycles not yet final, oldest first.
    pub cycles: Vec<Cycle>,
    /// Last round stamped by a cycle that is final and dropped.
    pub final_through: Option<u64>,
    /// Height of the block that holds the newest final cycle's transaction.
    #[serde(default)]
    pub final_height: Option<u32>,
    /// Confirmations needed before a cycle is final (at least 1).
    pub min_confirmations: u32,
}

impl StamperState {
    pub fn new(min_confirmations: u32) -> Self {
        StamperState {
            min_confirmations: min_confirmations.max(1),
            ..Default::default()
        }
    }

    /// Best (height, hash) seen.
    pub fn tip(&self) -> Option<(u32, Hash32)> {
        self.blocks.iter().next_back().map(|(h, b)| (*h, *b))
    }

    /// The first round no transaction covers yet.
    pub fn next_unstamped_round(&self) -> u64 {
        let through = self
            .cycles
            .iter()
            .map(Cycle::covered_through)
            .chain(self.final_through)
            .max();
        through.map_or(0, |r| r + 1)
    }

    /// The first round no *mined* stamping transaction covers: the rounds from here on are the
    /// pending commitments of `/tip` and the info page. As in the Python stamper, a round leaves
    /// the pending set when a transaction covering it is mined (a reorg puts it back), not when
    /// it is only broadcast: an unconfirmed transaction is replaced by one whose tip covers these
    /// rounds and newer ones.
    pub fn first_unmined_round(&self) -> u64 {
        let through = self
            .cycles
            .iter()
            .filter(|c| c.confirmed.is_some())
            .map(Cycle::covered_through)
            .chain(self.final_through)
            .max();
        through.map_or(0, |r| r + 1)
    }

    /// The newest cycle if it still waits to be mined (the only one that may be bumped).
    pub fn open_cycle(&self) -> Option<&Cycle> {
        self.cycles.last().filter(|c| c.confirmed.is_none())
    }

    /// Txids the driver must look for in new blocks.
    pub fn watched_txids(&self) -> impl Iterator<Item = &Hash32> {
        self.cycles
            .iter()
            .filter(|c| c.confirmed.is_none())
            .flat_map(|c| c.txs.iter().map(|t| &t.txid))
    }

    /// Every transaction of a cycle not final yet, with the height its cycle is confirmed at:
    /// a reorg below that height puts the cycle back to unconfirmed, so the blocks of the
    /// competing chain must be searched for all of its transactions too ([`Self::watched_txids`]
    /// alone, taken before the reorg, would miss a transaction mined again in the new chain).
    pub fn txids_with_confirmation(&self) -> impl Iterator<Item = (Hash32, Option<u32>)> + '_ {
        self.cycles.iter().flat_map(|c| {
            let height = c.confirmed.map(|conf| conf.height);
            c.txs.iter().map(move |t| (t.txid, height))
        })
    }

    /// Applies one log event; events that are not the stamper's are ignored.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::TxBroadcast {
                txid,
                first_round,
                last_round,
                fee_sat,
                input_sat,
                height,
                replaces,
                ..
            } => {
                let tx = SentTx {
                    txid: *txid,
                    first_round: *first_round,
                    last_round: *last_round,
                    fee_sat: *fee_sat,
                    input_sat: *input_sat,
                    height: *height,
                };
                self.on_broadcast(tx, replaces.as_ref());
            }
            Event::BlockSeen { height, hash } => self.on_block(*height, *hash),
            Event::TxConfirmed {
                txid,
                block_hash,
                height,
                ..
            } => self.on_confirmed(Confirmation {
                txid: *txid,
                height: *height,
                block_hash: *block_hash,
            }),
            Event::Reorg { fork_height, .. } => self.on_reorg(*fork_height),
            Event::CommitmentImported {
                round,
                proof: Some(_),
                ..
            } => self.on_imported_complete(*round),
            _ => {}
        }
    }

    fn on_broadcast(&mut self, tx: SentTx, replaces: Option<&Hash32>) {
        let cycle = replaces.and_then(|r| {
            self.cycles
                .iter_mut()
                .rev()
                .find(|c| c.confirmed.is_none() && c.tx(r).is_some())
        });
        match cycle {
            Some(c) => c.txs.push(tx),
            None => self.cycles.push(Cycle {
                txs: vec![tx],
                confirmed: None,
            }),
        }
    }

    /// An imported round whose proof is already complete needs no stamping: when it follows every
    /// round stamped so far it counts as final (an import writes into a new calendar, in journal
    /// order, so the complete prefix of the journal is never stamped again). Complete rounds after
    /// a pending one are covered again by the first stamping transaction, which is harmless: their
    /// imported proof is what is served.
    fn on_imported_complete(&mut self, round: u64) {
        if self.cycles.is_empty() && self.next_unstamped_round() == round {
            self.final_through = Some(round);
        }
    }

    fn on_block(&mut self, height: u32, hash: Hash32) {
        self.blocks.split_off(&height);
        self.blocks.insert(height, hash);
        let keep_from = height.saturating_sub(MAX_TRACKED_BLOCKS - 1);
        self.blocks = self.blocks.split_off(&keep_from);
        self.drop_final_cycles(height);
    }

    fn on_confirmed(&mut self, conf: Confirmation) {
        if let Some(c) = self
            .cycles
            .iter_mut()
            .find(|c| c.confirmed.is_none() && c.tx(&conf.txid).is_some())
        {
            c.confirmed = Some(conf);
        }
        if let Some((tip, _)) = self.tip() {
            self.drop_final_cycles(tip);
        }
    }

    fn on_reorg(&mut self, fork_height: u32) {
        self.blocks.split_off(&(fork_height + 1));
        for c in &mut self.cycles {
            if c.confirmed.is_some_and(|conf| conf.height > fork_height) {
                c.confirmed = None;
            }
        }
    }

    /// Whether a confirmation at `height` is final with the best chain at `tip`.
    pub fn is_final(&self, height: u32, tip: u32) -> bool {
        tip >= height && tip - height + 1 >= self.min_confirmations
    }

    /// Confirmations of a transaction mined at `height` with the best chain at `tip`.
    pub fn confirmations(height: u32, tip: u32) -> u32 {
        if tip >= height {
            tip - height + 1
        } else {
            0
        }
    }

    fn drop_final_cycles(&mut self, tip: u32) {
        while let Some(c) = self.cycles.first() {
            match c.confirmed {
                Some(conf) if self.is_final(conf.height, tip) => {
                    let through = c.covered_through();
                    self.final_through = self.final_through.max(Some(through));
                    self.final_height = self.final_height.max(Some(conf.height));
                    self.cycles.remove(0);
                }
                _ => break,
            }
        }
    }
}
