//! Bounded in-memory caches of the history's read path (`GET /timestamp` of archived rounds), so
//! that a proof costs a handful of `pread`s instead of one per tree level and per step of a
//! binary search.
//!
//! - [`TxDirectory`]: the `txs` table sampled every `stride` entries, at most [`MAX_TX_SAMPLES`]
//!   entries (about 6 MiB), so finding the transaction of a round is a search in memory plus, once
//!   the table has more than [`MAX_TX_SAMPLES`] transactions, one read of `stride` entries. One per
//!   [`super::History`], built at its first look-up.
//! - [`ProofCache`]: per final transaction, what every proof of its rounds shares: the proof
//!   record's log head and tail, and the upper levels of its tip tree from the lowest one with at
//!   most [`UPPER_NODES`] nodes (at most 256 KiB a transaction). Shared by the successive
//!   histories of one calendar directory; at most [`MAX_CACHE_BYTES`] and [`MAX_CACHED_TXS`]
//!   transactions, the least recently used evicted first.
//!
//! Nothing cached is trusted more than the disk: every proof built from it must still lead to its
//! transaction's tip (checked per request), and entries are keyed by where their record is and by
//! the transaction's rounds and tip, so a rebuilt history never meets another's entries.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::table::TxEntry;
use crate::ots::merkle::Hash;

/// Most `txs` entries a [`TxDirectory`] holds.
pub const MAX_TX_SAMPLES: u64 = 1 << 16;
/// The lowest cached tree level is the first with at most this many nodes (128 KiB).
pub const UPPER_NODES: u64 = 4096;
/// Most bytes of cached transactions (their upper levels and proof tails).
pub const MAX_CACHE_BYTES: usize = 32 << 20;
/// Most transactions cached.
pub const MAX_CACHED_TXS: usize = 4096;
/// A proof tail longer than this (a huge stamping transaction) is read per request, not cached.
pub const MAX_CACHED_TAIL: usize = 64 << 10;

/// The `txs` table in memory, every `stride`th entry.
#[derive(Debug)]
pub struct TxDirectory {
    pub stride: u64,
    pub samples: Vec<TxEntry>,
}

impl TxDirectory {
    /// The directory of a table of `txs` entries, keeping at most `max_samples` of them;
    /// `read(first, end)` reads entries `first..end` (checked).
    pub fn build<E>(
        txs: u64,
        max_samples: u64,
        mut read: impl FnMut(u64, u64) -> Result<Vec<TxEntry>, E>,
    ) -> Result<TxDirectory, E> {
        let stride = txs.div_ceil(max_samples.max(1)).max(1);
        let mut samples = Vec::with_capacity(txs.div_ceil(stride) as usize);
        let step = stride * 1024;
        let mut at = 0;
        while at < txs {
            let run = read(at, (at + step).min(txs))?;
            samples.extend(run.into_iter().step_by(stride as usize));
            at += step;
        }
        Ok(TxDirectory { stride, samples })
    }

    /// The entry whose rounds start at or before `round` (the only one that can cover it), of a
    /// table of `txs` entries: from memory, or past the samples with one `read` of the entries
    /// after the sample.
    pub fn find<E>(
        &self,
        round: u64,
        txs: u64,
        read: impl FnOnce(u64, u64) -> Result<Vec<TxEntry>, E>,
    ) -> Result<Option<TxEntry>, E> {
        let Some(k) = self
            .samples
            .partition_point(|t| t.first_round <= round)
            .checked_sub(1)
        else {
            return Ok(None);
        };
        if self.stride == 1 {
            return Ok(Some(self.samples[k]));
        }
        let first = k as u64 * self.stride;
        let run = read(first, (first + self.stride).min(txs))?;
        let at = run.partition_point(|t| t.first_round <= round);
        Ok(at.checked_sub(1).map(|i| run[i]))
    }
}

/// What all proofs of one final transaction share.
#[derive(Debug)]
pub struct TxProof {
    /// The log head the tip commits to after the rounds, if any (the tree's last leaf).
    pub log_head: Option<Hash>,
    /// The proof tail: transaction, block branch, attestation.
    pub tail: Vec<u8>,
    /// Stored level (see [`super::tiptree`]) of `upper[0]`.
    pub first_level: usize,
    /// The stored levels from `first_level` up, lowest first, as in the `proofs` record.
    pub upper: Vec<Hash>,
    last_use: AtomicU64,
}

impl TxProof {
    pub fn new(
        log_head: Option<Hash>,
        tail: Vec<u8>,
        first_level: usize,
        upper: Vec<Hash>,
    ) -> Self {
        TxProof {
            log_head,
            tail,
            first_level,
            upper,
            last_use: AtomicU64::new(0),
        }
    }

    fn bytes(&self) -> usize {
        self.tail.len() + self.upper.len() * 32 + std::mem::size_of::<TxProof>()
    }
}

/// Key of a cached transaction: its record's offset in `proofs`, its rounds and its tip.
type Key = (u64, u64, u64, [u8; 32]);

fn key(tx: &TxEntry) -> Key {
    (tx.offset, tx.first_round, tx.last_round, tx.tip)
}

/// The cache of [`TxProof`]s; see the module doc for its bounds.
#[derive(Debug, Default)]
pub struct ProofCache {
    map: RwLock<Cached>,
    tick: AtomicU64,
}

#[derive(Debug, Default)]
struct Cached {
    by_tx: HashMap<Key, Arc<TxProof>>,
    bytes: usize,
}

impl ProofCache {
    /// The cached proof parts of `tx`, if any. Takes the read lock only for the look-up.
    pub fn get(&self, tx: &TxEntry) -> Option<Arc<TxProof>> {
        let hit = crate::sync::read(&self.map).by_tx.get(&key(tx)).cloned()?;
        hit.last_use
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(hit)
    }

    /// Caches `parts` for `tx` (unless its tail is too long to), evicting the least recently used
    /// transactions to stay within the bounds.
    pub fn insert(&self, tx: &TxEntry, parts: Arc<TxProof>) {
        if parts.tail.len() > MAX_CACHED_TAIL {
            return;
        }
        parts
            .last_use
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let mut c = crate::sync::write(&self.map);
        let need = parts.bytes();
        while !c.by_tx.is_empty()
            && (c.bytes + need > MAX_CACHE_BYTES || c.by_tx.len() >= MAX_CACHED_TXS)
        {
            let oldest = c
                .by_tx
                .iter()
                .min_by_key(|(_, p)| p.last_use.load(Ordering::Relaxed))
                .map(|(k, _)| *k);
            if let Some(p) = oldest.and_then(|k| c.by_tx.remove(&k)) {
                c.bytes -= p.bytes();
            }
        }
        if let Some(old) = c.by_tx.insert(key(tx), parts) {
            c.bytes -= old.bytes();
        }
        c.bytes += need;
    }

    /// Bytes and transactions cached.
    pub fn usage(&self) -> (usize, usize) {
        let c = crate::sync::read(&self.map);
        (c.bytes, c.by_tx.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(i: u64) -> TxEntry {
        TxEntry {
            first_round: i * 10,
            last_round: i * 10 + 9,
            tip: [i as u8; 32],
            offset: i * 1000,
            tail_len: 10,
            fee_sat: 0,
            time: 0,
            height: 0,
        }
    }

    #[test]
    fn the_cache_stays_within_its_bounds_and_keeps_the_recently_used() {
        let cache = ProofCache::default();
        let big = || Arc::new(TxProof::new(None, vec![0; 10], 0, vec![[0; 32]; 8192]));
        let per = big().bytes();
        let fits = MAX_CACHE_BYTES / per;
        for i in 0..fits as u64 + 10 {
            cache.insert(&tx(i), big());
            // Transaction 0 is asked for all along: it stays.
            assert!(cache.get(&tx(0)).is_some(), "i={i}");
            assert!(cache.usage().0 <= MAX_CACHE_BYTES);
        }
        assert_eq!(cache.usage().1, fits);
        assert!(
            cache.get(&tx(1)).is_none(),
            "the least recently used went first"
        );
        assert!(cache.get(&tx(fits as u64 + 9)).is_some());
        // Another tip at the same place is another transaction.
        let mut other = tx(0);
        other.tip = [99; 32];
        assert!(cache.get(&other).is_none());
        // A tail too long to cache is not.
        cache.insert(
            &tx(5000),
            Arc::new(TxProof::new(None, vec![0; MAX_CACHED_TAIL + 1], 0, vec![])),
        );
        assert!(cache.get(&tx(5000)).is_none());
    }

    #[test]
    fn the_directory_finds_the_entry_before_a_round_sampled_or_not() {
        let table: Vec<TxEntry> = (1..=100).map(tx).collect();
        let read = |first: u64, end: u64| -> Result<Vec<TxEntry>, ()> {
            Ok(table[first as usize..end as usize].to_vec())
        };
        for max in [1000, 100, 7, 1] {
            let dir = TxDirectory::build(100, max, read).unwrap();
            assert!(dir.samples.len() as u64 <= max, "max={max}");
            assert_eq!(dir.stride, 100u64.div_ceil(max).max(1));
            assert_eq!(dir.find(9, 100, read).unwrap(), None, "max={max}");
            for round in [10, 19, 20, 555, 1009, 5000] {
                let want = table.iter().rev().find(|t| t.first_round <= round).copied();
                assert_eq!(
                    dir.find(round, 100, read).unwrap(),
                    want,
                    "max={max} r={round}"
                );
            }
        }
        let empty = TxDirectory::build(0, 10, read).unwrap();
        assert_eq!(empty.find(5, 0, read).unwrap(), None);
    }
}
