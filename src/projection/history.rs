//! The projection's history on disk, read side: the rounds, the commitment index and the final
//! stamping transactions up to the last checkpoint, read with `pread` (no map, so nothing of it
//! counts in otsd's resident memory; the page cache keeps the working set).
//!
//! A [`History`] is immutable: it answers for the rounds and transactions its checkpoint covers,
//! and the checkpointer publishes a new one after each checkpoint (see [`super::checkpoint`]).
//! Files only grow past what a `History` covers while it lives, so readers never lock.
//!
//! Every entry read is checked (CRC of round and transaction entries, CRC-8 of index slots, the
//! recomputed tip against the stored one). A failed check is [`HistoryError::Damaged`]: the answer
//! is refused (HTTP 503), never guessed, and the shared damage flag makes the checkpointer drop
//! the checkpoint so that the next start rebuilds from the log.
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use super::digests::{self, DigestHash, DigestIndexError};
use super::index::{self, FileSlots, IndexError};
use super::proofcache::{ProofCache, TxDirectory, TxProof, MAX_TX_SAMPLES, UPPER_NODES};
use super::table::{decode_round, TxEntry, ROUND_LEN, TX_LEN};
use super::tiptree::{self, CHUNK};
use super::{Commitment, RoundEntry};
use crate::ots::merkle::{Hash, MerkleTree, Side};
use crate::ots::path::PathWriter;

pub(crate) const ROUNDS_FILE: &str = "rounds";
pub(crate) const INDEX_FILE: &str = "index";
pub(crate) const TXS_FILE: &str = "txs";
pub(crate) const PROOFS_FILE: &str = "proofs";
pub(crate) const DIGESTS_FILE: &str = "digests";

/// Most archived transactions [`History::fees_since`] reads: a week of one a minute.
pub const MAX_FEE_SCAN: u64 = 7 * 24 * 60;

/// Bytes before the proof tail in a `proofs` record: has_head (1) and head (32).
pub(crate) const PROOF_HEAD_LEN: u64 = 33;

/// Why the history could not answer.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("projection history damaged: {0}")]
    Damaged(String),
    #[error("reading projection history {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the on-disk files hold, as a checkpoint names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extent {
    pub rounds: u64,
    pub txs: u64,
    pub proofs_len: u64,
    pub index_slots: u64,
    pub index_entries: u64,
    pub index_salt: u64,
    /// The digest index ([`super::digests`]): slots, entries and salt.
    pub digest_slots: u64,
    pub digest_entries: u64,
    pub digest_salt: u64,
}

/// The history up to a checkpoint.
#[derive(Debug)]
pub struct History {
    dir: PathBuf,
    rounds: File,
    index: File,
    txs: File,
    proofs: File,
    digests: File,
    extent: Extent,
    /// Last round of the last archived transaction.
    archived_through: Option<u64>,
    damaged: Arc<AtomicBool>,
    /// The `txs` table sampled in memory, made at the first look-up (bounded: see
    /// [`super::proofcache`]).
    txdir: OnceLock<Arc<TxDirectory>>,
    /// Shared proof parts of final transactions, shared with the histories before and after this
    /// one (bounded: see [`super::proofcache`]).
    cache: Arc<ProofCache>,
}

fn hash_of(b: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(b);
    h
}

fn open(dir: &Path, name: &str) -> Result<File, HistoryError> {
    let path = dir.join(name);
    File::open(&path).map_err(|source| HistoryError::Io { path, source })
}

impl History {
    /// Opens the files of `dir` covering `extent`; `cache` is the calendar directory's
    /// [`ProofCache`].
    pub(crate) fn open(
        dir: &Path,
        extent: Extent,
        archived_through: Option<u64>,
        damaged: Arc<AtomicBool>,
        cache: Arc<ProofCache>,
    ) -> Result<History, HistoryError> {
        Ok(History {
            dir: dir.to_path_buf(),
            rounds: open(dir, ROUNDS_FILE)?,
            index: open(dir, INDEX_FILE)?,
            txs: open(dir, TXS_FILE)?,
            proofs: open(dir, PROOFS_FILE)?,
            digests: open(dir, DIGESTS_FILE)?,
            extent,
            archived_through,
            damaged,
            txdir: OnceLock::new(),
            cache,
        })
    }

    /// Rounds `0..rounds()` are here.
    pub fn rounds(&self) -> u64 {
        self.extent.rounds
    }

    /// What the files hold.
    pub fn extent(&self) -> Extent {
        self.extent
    }

    /// Rounds up to this one are stamped by archived (final) transactions.
    pub fn archived_through(&self) -> Option<u64> {
        self.archived_through
    }

    /// Whether a read found damage.
    pub fn is_damaged(&self) -> bool {
        self.damaged.load(Ordering::Relaxed)
    }

    fn damaged(&self, what: String) -> HistoryError {
        if !self.damaged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "projection history in {} is damaged ({what}); not serving from it. The next start \
                 rebuilds it from the log (or run otsctl replay)",
                self.dir.display()
            );
        }
        HistoryError::Damaged(what)
    }

    fn read(&self, file: &File, name: &str, buf: &mut [u8], at: u64) -> Result<(), HistoryError> {
        file.read_exact_at(buf, at)
            .map_err(|source| HistoryError::Io {
                path: self.dir.join(name),
                source,
            })
    }

    /// Round `round` (which must be `< rounds()`).
    pub fn round(&self, round: u64) -> Result<RoundEntry, HistoryError> {
        Ok(self.rounds_range(round, round + 1)?.remove(0))
    }

    /// Rounds `first..end` (within `0..rounds()`), in one read.
    pub fn rounds_range(&self, first: u64, end: u64) -> Result<Vec<RoundEntry>, HistoryError> {
        let end = end.min(self.extent.rounds);
        if first >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; ((end - first) as usize) * ROUND_LEN];
        self.read(
            &self.rounds,
            ROUNDS_FILE,
            &mut buf,
            first * ROUND_LEN as u64,
        )?;
        buf.chunks_exact(ROUND_LEN)
            .enumerate()
            .map(|(i, b)| {
                decode_round(b).ok_or_else(|| {
                    self.damaged(format!("round {} fails its CRC", first + i as u64))
                })
            })
            .collect()
    }

    /// The first round holding commitment `c`, if the history has it.
    pub fn find(&self, c: &Commitment) -> Result<Option<u64>, HistoryError> {
        if self.extent.rounds == 0 {
            return Ok(None);
        }
        let slots = FileSlots {
            file: &self.index,
            slots: self.extent.index_slots,
            salt: self.extent.index_salt,
        };
        let lookup = || {
            index::find(&slots, c, self.extent.rounds, |r| {
                self.round(r)
                    .map(|e| e.commitment)
                    .map_err(|e| IndexError::Round(e.to_string()))
            })
        };
        // A slot read while the checkpointer writes its neighbour can be torn: damage only counts
        // when a second look sees it too.
        match lookup().or_else(|_| lookup()) {
            Ok(found) => Ok(found),
            Err(IndexError::Io(source)) => Err(HistoryError::Io {
                path: self.dir.join(INDEX_FILE),
                source,
            }),
            Err(e) => Err(self.damaged(e.to_string())),
        }
    }

    /// The first round a digest with SHA-256 `h` was submitted in, if the history has it.
    pub fn find_digest(&self, h: &DigestHash) -> Result<Option<u64>, HistoryError> {
        if self.extent.rounds == 0 || self.extent.digest_slots == 0 {
            return Ok(None);
        }
        let slots = digests::FileSlots {
            file: &self.digests,
            slots: self.extent.digest_slots,
        };
        let key = digests::Key::new(h, self.extent.digest_salt);
        let lookup = || digests::find(&slots, key, self.extent.digest_salt, self.extent.rounds);
        // As for the commitment index: a torn read of a slot being written is looked at twice.
        match lookup().or_else(|_| lookup()) {
            Ok(found) => Ok(found),
            Err(DigestIndexError::Io(source)) => Err(HistoryError::Io {
                path: self.dir.join(DIGESTS_FILE),
                source,
            }),
            Err(e) => Err(self.damaged(e.to_string())),
        }
    }

    /// The archived transaction covering `round`, if any: a search of the sampled table in
    /// memory, then (past [`MAX_TX_SAMPLES`] transactions) one read of the entries after the
    /// sample.
    pub fn tx_for(&self, round: u64) -> Result<Option<TxEntry>, HistoryError> {
        let dir = match self.txdir.get() {
            Some(dir) => dir.clone(),
            // Built outside the cell: two first look-ups at once both build, one copy is kept.
            None => {
                let dir = TxDirectory::build(self.extent.txs, MAX_TX_SAMPLES, |a, b| {
                    self.txs_range(a, b)
                })?;
                self.txdir.get_or_init(|| Arc::new(dir)).clone()
            }
        };
        let found = dir.find(round, self.extent.txs, |a, b| self.txs_range(a, b))?;
        Ok(found.filter(|t| round <= t.last_round))
    }

    /// Transactions `first..end` (within `0..extent.txs`), in one read.
    fn txs_range(&self, first: u64, end: u64) -> Result<Vec<TxEntry>, HistoryError> {
        let mut buf = vec![0u8; ((end - first) as usize) * TX_LEN];
        self.read(&self.txs, TXS_FILE, &mut buf, first * TX_LEN as u64)?;
        buf.chunks_exact(TX_LEN)
            .enumerate()
            .map(|(i, b)| {
                TxEntry::decode(b).ok_or_else(|| {
                    self.damaged(format!("transaction {} fails its CRC", first + i as u64))
                })
            })
            .collect()
    }

    /// Fees (satoshis) and count of the archived transactions whose time is `since` or later,
    /// read from the newest back (at most [`MAX_FEE_SCAN`] of them).
    pub fn fees_since(&self, since: u32) -> Result<(u64, u64), HistoryError> {
        let (mut fees, mut n) = (0u64, 0u64);
        for i in (self.extent.txs.saturating_sub(MAX_FEE_SCAN)..self.extent.txs).rev() {
            let tx = self.tx(i)?;
            if tx.time < since {
                break;
            }
            fees = fees.saturating_add(tx.fee_sat);
            n += 1;
        }
        Ok((fees, n))
    }

    fn tx(&self, i: u64) -> Result<TxEntry, HistoryError> {
        let mut b = [0u8; TX_LEN];
        self.read(&self.txs, TXS_FILE, &mut b, i * TX_LEN as u64)?;
        TxEntry::decode(&b).ok_or_else(|| self.damaged(format!("transaction {i} fails its CRC")))
    }

    /// What every proof of `tx` shares (its proof tail and upper tree levels), from the cache
    /// or read (in two reads) and cached.
    fn tx_proof(&self, tx: &TxEntry) -> Result<Arc<TxProof>, HistoryError> {
        if let Some(hit) = self.cache.get(tx) {
            return Ok(hit);
        }
        let mut head = vec![0u8; PROOF_HEAD_LEN as usize + tx.tail_len as usize + 4];
        self.read(&self.proofs, PROOFS_FILE, &mut head, tx.offset)?;
        let (body, crc) = head.split_at(head.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(self.damaged(format!("proof record at {} fails its CRC", tx.offset)));
        }
        let log_head: Option<Hash> = (body[0] == 1).then(|| {
            let mut h = [0u8; 32];
            h.copy_from_slice(&body[1..33]);
            h
        });
        let leaves = tx.last_round - tx.first_round + 1 + u64::from(log_head.is_some());
        let sizes = tiptree::level_sizes(leaves);
        let first_level = sizes.iter().position(|&n| n <= UPPER_NODES).unwrap_or(0);
        let starts = tiptree::level_starts(leaves);
        let nodes = starts[starts.len() - 1] - starts[first_level];
        let mut bytes = vec![0u8; nodes as usize * 32];
        let levels_at = tx.offset + PROOF_HEAD_LEN + u64::from(tx.tail_len) + 4;
        self.read(
            &self.proofs,
            PROOFS_FILE,
            &mut bytes,
            levels_at + starts[first_level] * 32,
        )?;
        let upper = bytes.chunks_exact(32).map(hash_of).collect();
        let tail = body[PROOF_HEAD_LEN as usize..].to_vec();
        let parts = Arc::new(TxProof::new(log_head, tail, first_level, upper));
        self.cache.insert(tx, parts.clone());
        Ok(parts)
    }

    /// The complete proof of `round` in the archived transaction `tx`: the round's chunk is
    /// recomputed from the round table (one read), the levels above it up to the cached ones from
    /// an aligned run of chunk nodes (one read of under 2/[`UPPER_NODES`] of that level: 16
    /// nodes, 512 bytes, for two million rounds), the upper levels come from the cache, and the
    /// result must lead to the transaction's tip.
    pub fn proof(&self, tx: &TxEntry, round: u64) -> Result<Vec<u8>, HistoryError> {
        let parts = self.tx_proof(tx)?;
        let covered = tx.last_round - tx.first_round + 1;
        let leaves = covered + u64::from(parts.log_head.is_some());
        let i = round - tx.first_round;
        let chunk_first = i / CHUNK * CHUNK;
        let chunk_end = (chunk_first + CHUNK).min(leaves);
        let entries = self.rounds_range(
            tx.first_round + chunk_first,
            tx.first_round + chunk_end.min(covered),
        )?;
        let mut chunk_leaves: Vec<Hash> = entries
            .iter()
            .map(|e| tiptree::leaf(&e.commitment))
            .collect();
        if chunk_end > covered {
            chunk_leaves.extend(parts.log_head);
        }
        let leaf = chunk_leaves[(i - chunk_first) as usize];
        let chunk = MerkleTree::new(chunk_leaves)
            .ok_or_else(|| self.damaged(format!("rounds of the transaction at {}", tx.offset)))?;
        let mut steps = tiptree::chunk_steps(&chunk, i);
        let levels_at = tx.offset + PROOF_HEAD_LEN + u64::from(tx.tail_len) + 4;
        if parts.first_level > 0 {
            // The levels below the cached ones: one read of an aligned run of chunk nodes.
            let (first, end) = tiptree::low_run(leaves, i, parts.first_level);
            let mut bytes = vec![0u8; ((end - first) * 32) as usize];
            self.read(
                &self.proofs,
                PROOFS_FILE,
                &mut bytes,
                levels_at + first * 32,
            )?;
            let run = bytes.chunks_exact(32).map(hash_of).collect();
            let tree = MerkleTree::new(run)
                .ok_or_else(|| self.damaged(format!("tree levels at {}", tx.offset)))?;
            steps.extend(tiptree::chunk_steps_at(&tree, (i / CHUNK - first) as usize));
        }
        let starts = tiptree::level_starts(leaves);
        let cached_from = starts[parts.first_level];
        for (l, j, side) in tiptree::upper_siblings(leaves, i) {
            if l < parts.first_level {
                continue;
            }
            let h = *parts
                .upper
                .get((starts[l] + j - cached_from) as usize)
                .ok_or_else(|| self.damaged(format!("tree levels at {}", tx.offset)))?;
            steps.push((side, h));
        }
        let top = steps.iter().fold(leaf, |msg, (side, sibling)| match side {
            Side::Append => crate::ots::merkle::cat_sha256(&msg, sibling),
            Side::Prepend => crate::ots::merkle::cat_sha256(sibling, &msg),
        });
        if top != tx.tip {
            return Err(self.damaged(format!(
                "the path of round {round} does not lead to its transaction's tip"
            )));
        }
        let mut out = Vec::with_capacity(64 + steps.len() * 34 + parts.tail.len());
        let mut w = PathWriter::new(&mut out);
        w.sha256();
        for (side, sibling) in &steps {
            w.step(&crate::ots::merkle::Step {
                side: *side,
                sibling,
            });
        }
        w.raw(&parts.tail);
        Ok(out)
    }
}
