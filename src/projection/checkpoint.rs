//! Projection checkpoints: the projection's history on disk, folded up to a segment boundary, so
//! that otsd neither replays nor holds its whole history.
//!
//! Everything here is a rebuildable cache, never a source of truth: `otsctl replay` rebuilds it
//! from the log alone, and a checkpoint that is missing, damaged, from another version, from another
//! calendar or for another log is ignored (with a warning) and the log is replayed in full.
//!
//! Files under `DIR/projection/`, all append-only but `index`, `digests` and `checkpoint`:
//!
//! - `rounds`: the round table, [`ROUND_LEN`] bytes per round (layout in [`super::table`]).
//! - `index`: commitment -> round, an on-disk hash table (layout in [`super::index`]).
//! - `digests`: submitted digest -> round, an on-disk hash table (layout in [`super::digests`]).
//!   Unlike `index` it cannot be rebuilt from `rounds` (which holds no digests): a `digests` that
//!   does not match its checkpoint makes the checkpoint unusable, and the log is replayed.
//!   Both tables grow 2x at 3/4 full without being mapped in whole: `digests` by rehashing its
//!   own slots in steps released behind the sweep, `index` from `rounds` in parts, each round's
//!   key first spilled to its part's file under `index.spill/` (scratch, removed after, and at
//!   load when a kill left it).
//! - `index.pending/`, `digests.pending/`: a bulk rebuild's entries held back from the two tables
//!   until its next commit, one file per part of each table (see [`super::pending`]); scratch,
//!   removed after each commit, and at load when a kill left them.
//! - `txs`: final stamping transactions, [`TX_LEN`] bytes each, in round order ([`super::table`]).
//! - `proofs`: per final transaction, `has_head u8 | log head (32) | proof tail | CRC-32 of the
//!   three | the tip tree's levels from [`super::tiptree::LOW_LEVELS`] up, 32 bytes per node`. The
//!   proof tail is the serialized timestamp from the tip on: transaction, block, attestation.
//! - `checkpoint`: the snapshot naming how much of each file it covers, replaced atomically
//!   (`.tmp`, fsync, rename, directory fsync) after the other files are synced:
//!
//! ```text
//! offset size
//!      0    8  magic "OTSDCKPT"
//!      8    4  version, u32 LE (2)
//!     12    4  min_confirmations the fold used, u32 LE
//!     16    8  next_seq: first sequence number not folded, u64 LE (a segment's first_seq)
//!     24   32  public chain value after the last record before next_seq (that segment's header)
//!     56   32  HMAC chain value, likewise
//!     88    8  rounds in `rounds`, u64 LE
//!     96   32  rounds chain: c(0) = 0^32, c(k+1) = SHA-256(c(k) || block k), over the complete
//!              blocks of ROUND_BLOCK rounds
//!    128   32  SHA-256(rounds chain || the rounds after the last complete block)
//!    160    8  entries in `txs`, u64 LE
//!    168    8  bytes of `proofs`, u64 LE
//!    176    8  slots of `index` (a power of two), u64 LE
//!    184    8  entries in `index`, u64 LE
//!    192    8  last round of the last entry of `txs` plus one (0: none), u64 LE
//!    200    8  salt of `index`, u64 LE
//!    208    8  slots of `digests` (a power of two), u64 LE
//!    216    8  entries in `digests`, u64 LE
//!    224    8  salt of `digests`, u64 LE
//!    232    4  body length, u32 LE
//!    236    n  body: the rest of the projection (digest count, stamper state, digest samples),
//!              packed CBOR
//!  236+n   32  HMAC-SHA256 under the checkpoint key over bytes 0 .. 236+n
//! ```
//!
//! The checkpoint key is `HMAC-SHA256(log key, "otsd checkpoint v1")`, so only the holder of the
//! calendar's `hmac-key` can make a checkpoint otsd accepts, as for the log itself. The chain values
//! tie the snapshot to one log: the segment named `next_seq` must carry them in its header.
//!
//! Crash safety: the files are written and synced before the snapshot that names them, and bytes
//! past what the snapshot names are leftovers of an interrupted flush: load cuts them off (the
//! index's leftover slots are skipped and reused, see [`super::index`]). A SIGKILL or power cut at
//! any point leaves the previous checkpoint or the new one, and the log tail after it is folded
//! again at start.
//!
//! Checks at load, bounded so that start-up does not read history: the snapshot's HMAC; file
//! sizes; the rounds chain over the whole table when it holds at most [`FULL_VERIFY_ROUNDS`]
//! rounds, else the last incomplete block; every index slot when the table holds at most as many,
//! and every digest index slot when it holds at most [`FULL_VERIFY_DIGEST_SLOTS`]; the
//! commitments of 64 rounds spread over the table looked up in the index, and the 32 digests
//! the snapshot names (the newest appended, a few per append) looked up in the digest index (the
//! salted slot checks alone pass one foreign table in 256). A snapshot written before those
//! samples has none; its digest index is checked as before, and the next snapshot names some.
//!
//! Version changes: 3 added the digest index (header bytes 208..232, the body moved to 236) and
//! the fee, time and height of each `txs` entry. A version 2 checkpoint is refused with a warning
//! and the log replayed once, which writes version 3.
//! Older damage is caught on read by the per-entry checks (see [`super::history`]).
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::digests::{self, BufSlots, DigestIndexError};
use super::history::{
    Extent, History, HistoryError, DIGESTS_FILE, INDEX_FILE, PROOFS_FILE, PROOF_HEAD_LEN,
    ROUNDS_FILE, TXS_FILE,
};
use super::index::{self, FileSlots, IndexError, MapSlots};
use super::pending::{self, Pending, Step};
use super::proofcache::ProofCache;
pub use super::table::ROUND_LEN;
use super::table::{decode_round, encode_round, TxEntry, TX_LEN};
use super::tiptree::{self, CHUNK};
use super::{Projection, Stamps};
use crate::calendar::commitment::Commitment;
use crate::events::codec;
use crate::log::atomic::write_atomically;
use crate::log::chain::ChainState;
use crate::log::mmap::{prefetch_byte, MappedMut};
use crate::log::{Head, LogKey};
use crate::ots::merkle::Hash;

/// Name of the projection directory inside the calendar directory.
pub const PROJECTION_DIR: &str = "projection";
/// Largest snapshot body accepted (the stamper state is small; this bounds a damaged length).
pub const MAX_BODY_LEN: usize = 256 << 20;
/// Rounds per block of the rounds chain (1 MiB).
pub const ROUND_BLOCK: u64 = 16_384;
/// Up to this many rounds (64 MiB of table), load verifies the whole round table and index.
pub const FULL_VERIFY_ROUNDS: u64 = 1 << 20;
/// Rounds read per step when the table is read in bulk (4 MiB).
const READ_ROUNDS: u64 = 65_536;
/// Slots of the digest index swept per step when it grows (16 MiB): the resident pages of a
/// growing table are bounded by a few steps.
const GROW_STEP_SLOTS: u64 = (16 << 20) / digests::SLOT_LEN as u64;
/// Slots of the commitment index filled per part when it is rebuilt (16 MiB).
const INDEX_PART_SLOTS: u64 = (16 << 20) / 8;
/// The most parts a rebuilt index is filled in (each has a spill file and its buffer).
const MAX_INDEX_PARTS: u64 = 256;
/// Rounds whose commitments a load looks up in the index (see `CheckpointFiles::sample_index`).
const INDEX_SAMPLE: u64 = 64;
/// Digests the snapshot names for a load to look up in the digest index (see
/// `CheckpointFiles::sample_digests`), the newest kept, and how many each append adds.
const DIGEST_SAMPLE: usize = 32;
const DIGEST_SAMPLE_PER_APPEND: usize = 4;
/// Where a rebuild in parts spills the rounds' keys.
const INDEX_SPILL_DIR: &str = "index.spill";
/// Index and digest index entries a bulk rebuild holds back until its next commit (scratch, see
/// [`super::pending`]).
const PENDING_INDEX_DIR: &str = "index.pending";
const PENDING_DIGESTS_DIR: &str = "digests.pending";
/// Bytes of a table filled at a time from held-back entries.
const PENDING_PART_BYTES: u64 = 16 << 20;
/// Bulk inserts prefetch the home slot of the key this many inserts ahead: enough to overlap
/// several cache and TLB misses, few enough that the lines are still cached when used.
const PREFETCH_AHEAD: usize = 16;

const SNAPSHOT_FILE: &str = "checkpoint";
const ALL_FILES: [&str; 6] = [
    SNAPSHOT_FILE,
    ROUNDS_FILE,
    INDEX_FILE,
    TXS_FILE,
    PROOFS_FILE,
    DIGESTS_FILE,
];
/// Up to this many slots (32 MiB), load checks every slot of the digest index.
pub const FULL_VERIFY_DIGEST_SLOTS: u64 = 1 << 21;
const MAGIC: &[u8; 8] = b"OTSDCKPT";
const VERSION: u32 = 3;
const FIXED_LEN: usize = 236;
const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("encoding the checkpoint: {0}")]
    Codec(#[from] codec::CodecError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("{}: {source}", path.display())]
    Index { path: PathBuf, source: IndexError },
    #[error("{}: {source}", path.display())]
    Digests {
        path: PathBuf,
        source: DigestIndexError,
    },
}

/// The byte offset of digest index slot `slot` (or the length of `slot` slots).
fn slot_offset(slot: u64) -> usize {
    (slot * digests::SLOT_LEN as u64) as usize
}

fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> CheckpointError + 'p {
    move |source| CheckpointError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct Body {
    digests_total: u64,
    open_digests: u32,
    stamps: Stamps,
    /// Digests in the digest index (SHA-256, round), which a load looks up: a table of other
    /// digests fails however its slots are salted. Absent from checkpoints written before it.
    #[serde(default)]
    digest_samples: Vec<(digests::DigestHash, u64)>,
}

/// The digest index keys of a run of digests, worked out ahead of [`CheckpointFiles::append_keyed`]:
/// `keys[i]` is the key of the digest whose SHA-256 is `hashes[i]`, in a table salted `salt`.
#[derive(Debug, Clone, Copy)]
pub struct DigestKeys<'a> {
    pub salt: u64,
    pub hashes: &'a [digests::DigestHash],
    pub keys: &'a [digests::Key],
}

/// A checkpoint read from disk: the projection and the log position it stands for.
#[derive(Debug)]
pub struct Loaded {
    pub view: Projection,
    /// `next_seq` and the chain values the segment named `next_seq` must carry.
    pub at: Head,
}

/// The files of one projection directory: the single writer of its history.
#[derive(Debug)]
pub struct CheckpointFiles {
    dir: PathBuf,
    key: [u8; 32],
    extent: Extent,
    /// Rounds chain over the complete blocks of `rounds`.
    chain: [u8; 32],
    /// SHA-256 state over `chain` and the rounds of the incomplete block so far.
    block: Option<Sha256>,
    archived_through: Option<u64>,
    /// Log head the current snapshot stands for.
    at: Option<Head>,
    /// Map the index for inserts (bulk rebuilds) instead of one `pwrite` per slot.
    bulk: bool,
    /// Rounds and digests a bulk rebuild expects to fold in all (see [`Self::expect`]): the
    /// least a table is made for when it is created or grown.
    expected: (u64, u64),
    /// A grown digest index waits in `digests.tmp` for the snapshot that names it.
    digests_grown: bool,
    /// Bytes were appended since the last snapshot (see [`CheckpointFiles::append`]).
    appended: bool,
    /// The bulk path's writable maps of `index` and `digests`, kept from one append to the next
    /// (dropped whenever a table file is replaced), so that a page faults once per commit rather
    /// than once per segment. Page cache, bounded by the tables' size.
    index_map: Option<MappedMut>,
    digests_map: Option<MappedMut>,
    damaged: Arc<AtomicBool>,
    /// The proof parts of final transactions, shared by every history of these files.
    proof_cache: Arc<ProofCache>,
    /// The newest [`DIGEST_SAMPLE`] digests appended, named by the next snapshot.
    digest_samples: Vec<(digests::DigestHash, u64)>,
    /// Whether `index` / `digests` were built by this process (no leftover of an interrupted
    /// flush in them): only then may a bulk rebuild hold entries back for them.
    clean: (bool, bool),
    /// Entries of appended rounds held back from `index` and `digests` until the next commit
    /// fills them in (see [`Self::append_held_back`]).
    pending: Option<(Pending, Pending)>,
    /// Appended rounds are missing from the indexes: held back, or a fill failed half-way.
    unindexed: bool,
}

impl CheckpointFiles {
    /// The files under `dir` (created on the first write), starting with no usable checkpoint.
    pub fn new(dir: &Path, log_key: &LogKey) -> CheckpointFiles {
        CheckpointFiles {
            dir: dir.to_path_buf(),
            key: checkpoint_key(log_key),
            extent: Extent::default(),
            chain: [0; 32],
            block: None,
            archived_through: None,
            at: None,
            bulk: false,
            expected: (0, 0),
            digests_grown: false,
            appended: false,
            index_map: None,
            digests_map: None,
            damaged: Arc::default(),
            proof_cache: Arc::default(),
            digest_samples: Vec::new(),
            clean: (false, false),
            pending: None,
            unindexed: false,
        }
    }

    /// Inserts through a map of the index (fast for many rounds at once, but the pages touched
    /// count in the process's memory until the flush ends): for rebuilds.
    pub fn set_bulk(&mut self, bulk: bool) {
        self.bulk = bulk;
        self.expected = (0, 0);
        self.drop_maps();
    }

    /// Tells a bulk rebuild how many rounds and digests it will have appended by its end (an
    /// estimate; it may change from one append to the next): a table created or grown from now
    /// on is made large enough for them at once, instead of doubling again and again, each time
    /// rewriting the whole table and, for the digest index, forcing a commit. Too low an estimate
    /// only means a growth later; the rebuild's caller keeps it from being far too high.
    pub fn expect(&mut self, rounds: u64, digests: u64) {
        if self.bulk {
            self.expected = (rounds, digests);
        }
    }

    fn drop_maps(&mut self) {
        self.index_map = None;
        self.digests_map = None;
    }

    /// The projection directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log head of the last snapshot written or loaded.
    pub fn at(&self) -> Option<Head> {
        self.at
    }

    /// Whether a reader of this history found damage (the checkpointer then stops and drops the
    /// checkpoint).
    pub fn damage_flag(&self) -> Arc<AtomicBool> {
        self.damaged.clone()
    }

    /// Reads the checkpoint, if there is one. `Ok(None)`: none on disk. An error names what is
    /// wrong with it; the caller replays the log instead.
    pub fn load(&mut self, min_confirmations: u32) -> Result<Option<Loaded>, CheckpointError> {
        self.drop_maps();
        let path = self.dir.join(SNAPSHOT_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path)(e)),
        };
        let invalid = |why: String| CheckpointError::Invalid {
            path: path.clone(),
            why,
        };
        let snap = Snapshot::decode(&bytes, &self.key).map_err(invalid)?;
        if snap.min_confirmations != min_confirmations {
            return Err(invalid(format!(
                "made with --btc-min-confirmations {}, otsd runs with {min_confirmations}",
                snap.min_confirmations
            )));
        }
        let body: Body = codec::decode(snap.body).map_err(|e| invalid(e.to_string()))?;
        self.check_sizes(&snap.extent)?;
        let block = self.verify_rounds(&snap)?;
        self.verify_txs(&snap.extent)?;
        self.extent = snap.extent;
        // Tables from disk may hold leftovers of an interrupted flush: no entry is held back
        // for them until this process rebuilds them.
        self.clean = (false, false);
        self.pending = None;
        self.unindexed = false;
        self.chain = snap.rounds_chain;
        self.block = Some(block);
        self.archived_through = snap.archived_through;
        self.cut_leftovers()?;
        self.verify_index()?;
        self.verify_digests()?;
        self.sample_digests(&body.digest_samples)?;
        self.digest_samples = body.digest_samples;
        self.at = Some(snap.at);
        let history = self.history()?;
        let view = Projection::restore(
            history,
            body.digests_total,
            body.open_digests,
            snap.at.next_seq,
            body.stamps,
        );
        Ok(Some(Loaded { view, at: snap.at }))
    }

    fn history(&self) -> Result<Arc<History>, CheckpointError> {
        Ok(Arc::new(History::open(
            &self.dir,
            self.extent,
            self.archived_through,
            self.damaged.clone(),
            self.proof_cache.clone(),
        )?))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn check_sizes(&self, e: &Extent) -> Result<(), CheckpointError> {
        let need = [
            (ROUNDS_FILE, e.rounds * ROUND_LEN as u64),
            (TXS_FILE, e.txs * TX_LEN as u64),
            (PROOFS_FILE, e.proofs_len),
        ];
        for (name, len) in need {
            let path = self.path(name);
            let size = fs::metadata(&path).map_err(io("stat", &path))?.len();
            if size < len {
                let what = if name == ROUNDS_FILE {
                    "round table does not match its checkpoint: "
                } else {
                    ""
                };
                return Err(CheckpointError::Invalid {
                    path,
                    why: format!("{what}holds {size} bytes, the checkpoint names {len}"),
                });
            }
        }
        Ok(())
    }

    /// The rounds chain and tail hash, over the whole table when it is small, else over its tail.
    /// Returns the hash state over the incomplete block, to continue from.
    fn verify_rounds(&self, snap: &Snapshot<'_>) -> Result<Sha256, CheckpointError> {
        let path = self.path(ROUNDS_FILE);
        let file = File::open(&path).map_err(io("open", &path))?;
        let blocks = snap.extent.rounds / ROUND_BLOCK;
        let chain_ok = if snap.extent.rounds <= FULL_VERIFY_ROUNDS {
            chain_blocks(&file, &path, [0; 32], 0, blocks)? == snap.rounds_chain
        } else {
            true
        };
        let from = blocks * ROUND_BLOCK;
        let mut buf = vec![0u8; ((snap.extent.rounds - from) as usize) * ROUND_LEN];
        file.read_exact_at(&mut buf, from * ROUND_LEN as u64)
            .map_err(io("read", &path))?;
        let block = Sha256::new()
            .chain_update(snap.rounds_chain)
            .chain_update(&buf);
        if !chain_ok || <[u8; 32]>::from(block.clone().finalize()) != snap.rounds_tail {
            return Err(CheckpointError::Invalid {
                path,
                why: "round table does not match its checkpoint".into(),
            });
        }
        Ok(block)
    }

    /// Feeds rounds appended from `first` on into the rounds chain.
    fn chain_rounds(&mut self, mut bytes: &[u8], first: u64) {
        let mut round = first;
        while !bytes.is_empty() {
            let room = ((ROUND_BLOCK - round % ROUND_BLOCK) as usize) * ROUND_LEN;
            let take = room.min(bytes.len());
            let chain = self.chain;
            self.block
                .get_or_insert_with(|| Sha256::new().chain_update(chain))
                .update(&bytes[..take]);
            round += (take / ROUND_LEN) as u64;
            bytes = &bytes[take..];
            if round.is_multiple_of(ROUND_BLOCK) {
                if let Some(block) = self.block.take() {
                    self.chain = block.finalize().into();
                }
            }
        }
    }

    fn verify_txs(&self, e: &Extent) -> Result<(), CheckpointError> {
        let path = self.path(TXS_FILE);
        let first = e.txs.saturating_sub(FULL_VERIFY_ROUNDS / 16);
        let mut buf = vec![0u8; ((e.txs - first) as usize) * TX_LEN];
        let file = File::open(&path).map_err(io("open", &path))?;
        file.read_exact_at(&mut buf, first * TX_LEN as u64)
            .map_err(io("read", &path))?;
        let mut end = 0;
        for (i, b) in buf.chunks_exact(TX_LEN).enumerate() {
            let tx = TxEntry::decode(b).ok_or_else(|| CheckpointError::Invalid {
                path: path.clone(),
                why: format!("transaction {} fails its CRC", first + i as u64),
            })?;
            if tx.offset + PROOF_HEAD_LEN + u64::from(tx.tail_len) + 4 > e.proofs_len
                || tx.first_round < end
            {
                return Err(CheckpointError::Invalid {
                    path: path.clone(),
                    why: format!(
                        "transaction {} does not fit the checkpoint",
                        first + i as u64
                    ),
                });
            }
            end = tx.last_round + 1;
        }
        Ok(())
    }

    /// Cuts bytes past the extent off the append-only files (an interrupted flush).
    fn cut_leftovers(&self) -> Result<(), CheckpointError> {
        let e = &self.extent;
        for (name, len) in [
            (ROUNDS_FILE, e.rounds * ROUND_LEN as u64),
            (TXS_FILE, e.txs * TX_LEN as u64),
            (PROOFS_FILE, e.proofs_len),
        ] {
            let path = self.path(name);
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io("open", &path))?;
            if file.metadata().map_err(io("stat", &path))?.len() > len {
                file.set_len(len).map_err(io("truncate", &path))?;
                file.sync_all().map_err(io("fsync", &path))?;
            }
        }
        let _ = fs::remove_file(self.path("index.tmp"));
        for scratch in [INDEX_SPILL_DIR, PENDING_INDEX_DIR, PENDING_DIGESTS_DIR] {
            let _ = fs::remove_dir_all(self.path(scratch));
        }
        self.finish_digests_swap(e.digest_slots)
    }

    /// A grown digest index is written to `digests.tmp` and renamed over `digests` only after the
    /// snapshot naming its size is durable, so that a crash leaves the old table with the old
    /// snapshot. At load (`slots`: the snapshot's), a `digests.tmp` of the size the snapshot names
    /// completes that rename; any other is a leftover and removed.
    fn finish_digests_swap(&self, slots: u64) -> Result<(), CheckpointError> {
        let tmp = self.path("digests.tmp");
        let Ok(meta) = fs::metadata(&tmp) else {
            return Ok(());
        };
        if meta.len() == slots * digests::SLOT_LEN as u64 {
            fs::rename(&tmp, self.path(DIGESTS_FILE)).map_err(io("rename", &tmp))?;
        } else {
            fs::remove_file(&tmp).map_err(io("remove", &tmp))?;
        }
        sync_dir(&self.dir)
    }

    /// Checks the digest index against the extent (every slot when small). It cannot be rebuilt
    /// without the log: a mismatch makes the checkpoint unusable.
    fn verify_digests(&self) -> Result<(), CheckpointError> {
        let path = self.path(DIGESTS_FILE);
        let e = &self.extent;
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let invalid = |why: String| CheckpointError::Invalid {
            path: path.clone(),
            why: format!("digest index does not match its checkpoint: {why}"),
        };
        if size != e.digest_slots * digests::SLOT_LEN as u64 || !e.digest_slots.is_power_of_two() {
            return Err(invalid(format!(
                "holds {size} bytes for {} slots",
                e.digest_slots
            )));
        }
        if e.digest_slots <= FULL_VERIFY_DIGEST_SLOTS {
            let bytes = fs::read(&path).map_err(io("read", &path))?;
            match digests::scan(&bytes, e.digest_salt) {
                Ok(used) if used >= e.digest_entries => {}
                Ok(used) => {
                    return Err(invalid(format!(
                        "{used} slots in use, the checkpoint names {}",
                        e.digest_entries
                    )))
                }
                Err(err) => return Err(invalid(err.to_string())),
            }
        }
        Ok(())
    }

    /// Looks up the digests the snapshot names in the digest index: each must be found at its
    /// round or an earlier one. The salted slot check passes a table whose salt differs from
    /// ours by a CRC-8 codeword (one in 256), and large tables are not scanned at load; a table
    /// of other digests fails here whatever its salt.
    fn sample_digests(
        &self,
        samples: &[(digests::DigestHash, u64)],
    ) -> Result<(), CheckpointError> {
        let e = &self.extent;
        if samples.is_empty() || e.digest_slots == 0 {
            return Ok(());
        }
        let path = self.path(DIGESTS_FILE);
        let file = File::open(&path).map_err(io("open", &path))?;
        let slots = digests::FileSlots {
            file: &file,
            slots: e.digest_slots,
        };
        for (h, round) in samples {
            let key = digests::Key::new(h, e.digest_salt);
            let why = match digests::find(&slots, key, e.digest_salt, e.rounds) {
                Ok(Some(at)) if at <= *round => continue,
                Ok(_) => format!("a digest of round {round} is not in it"),
                Err(err) => err.to_string(),
            };
            return Err(CheckpointError::Invalid {
                path,
                why: format!("digest index does not match its checkpoint: {why}"),
            });
        }
        Ok(())
    }

    /// Keeps a few of the digests just appended (spread over them) as the newest samples.
    fn note_digest_samples(&mut self, new: &[(digests::DigestHash, u64)]) {
        let step = new.len().div_ceil(DIGEST_SAMPLE_PER_APPEND).max(1);
        self.digest_samples
            .extend(new.iter().step_by(step).take(DIGEST_SAMPLE_PER_APPEND));
        let extra = self.digest_samples.len().saturating_sub(DIGEST_SAMPLE);
        self.digest_samples.drain(..extra);
    }

    /// Checks the index against the extent (every slot when small); rebuilds it from the round
    /// table, which is verified, when it does not match.
    fn verify_index(&mut self) -> Result<(), CheckpointError> {
        let path = self.path(INDEX_FILE);
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut problem = None;
        if size != self.extent.index_slots * 8 || !self.extent.index_slots.is_power_of_two() {
            problem = Some(format!(
                "holds {size} bytes for {} slots",
                self.extent.index_slots
            ));
        } else if self.extent.index_slots <= 2 * FULL_VERIFY_ROUNDS {
            let bytes = fs::read(&path).map_err(io("read", &path))?;
            match index::scan(&bytes, self.extent.index_salt) {
                Ok(used) if used >= self.extent.index_entries => {}
                Ok(used) => {
                    problem = Some(format!(
                        "{used} slots in use, the checkpoint names {}",
                        self.extent.index_entries
                    ))
                }
                Err(e) => problem = Some(e.to_string()),
            }
        }
        if problem.is_none() {
            problem = self.sample_index(&path)?;
        }
        if let Some(why) = problem {
            tracing::warn!(
                "projection index {} does not match its checkpoint ({why}); rebuilding it from the \
                 round table",
                path.display()
            );
            self.rebuild_index(self.extent.rounds)?;
        }
        Ok(())
    }

    /// Looks up the commitments of [`INDEX_SAMPLE`] rounds spread over the round table in the
    /// index; returns what is wrong when one is not found at its round (or an earlier one with
    /// the same commitment). The salted slot check alone passes another table whose salt differs
    /// from ours by a CRC-8 codeword (one table in 256: the check is linear in the salt); a table
    /// of other rounds fails here whatever its salt.
    fn sample_index(&self, path: &Path) -> Result<Option<String>, CheckpointError> {
        let rounds = self.extent.rounds;
        if rounds == 0 {
            return Ok(None);
        }
        let file = File::open(path).map_err(io("open", path))?;
        let rounds_path = self.path(ROUNDS_FILE);
        let table = File::open(&rounds_path).map_err(io("open", &rounds_path))?;
        let slots = FileSlots {
            file: &file,
            slots: self.extent.index_slots,
            salt: self.extent.index_salt,
        };
        let samples = INDEX_SAMPLE.min(rounds);
        for k in 0..samples {
            let r = k * rounds / samples + (rounds - 1) / samples / 2;
            let c = read_round_entry(&table, &rounds_path, r)?.commitment;
            match index::find(&slots, &c, rounds, |x| read_commitment(&table, x)) {
                Ok(Some(at)) if at <= r => {}
                Ok(_) => return Ok(Some(format!("round {r}'s commitment is not in it"))),
                Err(e) => return Ok(Some(e.to_string())),
            }
        }
        Ok(None)
    }

    /// Writes the rounds and final transactions `view` folded since the last write, syncs them,
    /// then replaces the snapshot atomically; `view` then serves them from disk. A crash at any
    /// point leaves the previous checkpoint or the new one, never a mix.
    pub fn write(&mut self, view: &mut Projection, at: Head) -> Result<(), CheckpointError> {
        self.append(view)?;
        self.commit(view, at)
    }

    /// The first half of [`Self::write`]: appends what `view` folded since the last append to
    /// the files, unsynced, and `view` then serves it from them (its memory is freed). Until
    /// [`Self::commit`] names them, the appended bytes are leftovers to a load, which cuts them
    /// off or skips them: a bulk rebuild appends every segment but commits only now and then, so
    /// that each flush writes the tables' dirty pages once for many segments.
    pub fn append(&mut self, view: &mut Projection) -> Result<(), CheckpointError> {
        self.append_keyed(view, None)
    }

    /// [`Self::append`], with the digests' keys in the digest index worked out ahead (by a
    /// rebuild's verifying thread): a key is taken from `ahead` only for the same digest hash and
    /// salt, else computed here.
    pub fn append_keyed(
        &mut self,
        view: &mut Projection,
        ahead: Option<DigestKeys<'_>>,
    ) -> Result<(), CheckpointError> {
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        if self.digests_grown {
            return Err(CheckpointError::Invalid {
                path: self.dir.clone(),
                why: "appending before the grown digest index was committed".into(),
            });
        }
        if view.history_rounds() != self.extent.rounds || (self.at.is_none() && !self.appended) {
            if view.history_rounds() != 0 {
                return Err(CheckpointError::Invalid {
                    path: self.dir.clone(),
                    why: "the projection was not loaded from these files".into(),
                });
            }
            // A fresh start: nothing on disk belongs to this projection.
            self.remove()?;
        }
        for name in [ROUNDS_FILE, INDEX_FILE, TXS_FILE, PROOFS_FILE, DIGESTS_FILE] {
            let path = self.path(name);
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(io("create", &path))?;
        }
        if self.extent.index_slots == 0 {
            self.rebuild_index(0)?;
        }
        let before = self.extent.rounds;
        self.appended = true;
        let end = before + view.recent_rounds().len() as u64;
        let new = self.new_digests(view, before, end);
        if self.bulk && self.clean.0 && self.extent.digest_slots == 0 && !new.is_empty() {
            // The first digest table is made empty (with room for these), so that the first
            // digests are held back for it as later ones are: inserted one by one they would map
            // in the whole new commitment index (a gigabyte at 100 million rounds).
            self.grow_digests_for(before, &[], new.len() as u64)?;
        }
        if self.holding_back() {
            self.append_held_back(view, &new, ahead)?;
        } else if self.bulk && self.digests_fit(&new) {
            self.append_rounds_beside_digests(view, &new, ahead)?;
        } else {
            self.append_rounds(view)?;
            self.append_digests(before, &new, ahead)?;
        }
        self.archive_final(view)?;
        if !self.digests_grown {
            // A grown digest index is not in place before the commit: adopted there.
            view.adopt(self.history()?);
        }
        Ok(())
    }

    /// Whether appended bytes wait for a [`Self::commit`].
    pub fn uncommitted(&self) -> bool {
        self.appended
    }

    /// Whether the next [`Self::append`] must wait for a [`Self::commit`]: a grown digest index
    /// replaces the old one only once a snapshot names it.
    pub fn needs_commit(&self) -> bool {
        self.digests_grown
    }

    /// The second half of [`Self::write`]: syncs what was appended (the maps' dirty pages too),
    /// then replaces the snapshot atomically with one for `view` at `at`, the log position the
    /// appends reached.
    pub fn commit(&mut self, view: &mut Projection, at: Head) -> Result<(), CheckpointError> {
        self.fill_held_back()?;
        for name in [ROUNDS_FILE, INDEX_FILE, TXS_FILE, PROOFS_FILE, DIGESTS_FILE] {
            let path = self.path(name);
            File::open(&path)
                .and_then(|f| f.sync_data())
                .map_err(io("fdatasync", &path))?;
        }
        self.write_snapshot(view, at)?;
        self.appended = false;
        if std::mem::take(&mut self.digests_grown) {
            self.digests_map = None;
            self.finish_digests_swap(self.extent.digest_slots)?;
        }
        let history = self.history()?;
        view.adopt(history);
        Ok(())
    }

    fn open_rw(&self, name: &str) -> Result<(File, PathBuf), CheckpointError> {
        let path = self.path(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("open", &path))?;
        Ok((file, path))
    }

    /// Appends the view's rounds to `rounds`, the rounds chain, and the index.
    fn append_rounds(&mut self, view: &Projection) -> Result<(), CheckpointError> {
        let new = view.recent_rounds();
        if new.is_empty() {
            return Ok(());
        }
        let first = self.extent.rounds;
        let file = self.write_rounds(new)?;
        let end = self.extent.rounds;

        let entries = self.extent.index_entries + new.len() as u64;
        if index::overfull(entries, self.extent.index_slots) {
            return self.rebuild_index(end);
        }
        let (index_file, index_path) = self.open_rw(INDEX_FILE)?;
        let commitment_of = |r: u64| -> Result<Commitment, IndexError> {
            if r >= first {
                return new
                    .get((r - first) as usize)
                    .map(|e| e.commitment)
                    .ok_or(IndexError::Round(format!("round {r} past the table")));
            }
            read_commitment(&file, r)
        };
        let mut added = 0;
        let res = if self.bulk {
            let map = match self.index_map.take() {
                Some(map) => self.index_map.insert(map),
                None => {
                    self.index_map
                        .insert(MappedMut::whole(&index_file, &index_path).map_err(|e| {
                            io("mmap", &index_path)(std::io::Error::other(e.to_string()))
                        })?)
                }
            };
            let mut slots = MapSlots(map, self.extent.index_salt);
            let n = self.extent.index_slots;
            let mut res = Ok(());
            for (i, r) in new.iter().enumerate() {
                if let Some(next) = new.get(i + PREFETCH_AHEAD) {
                    prefetch_byte(slots.0, index::home(&next.commitment, n) as usize * 8);
                }
                match index::insert(&mut slots, &r.commitment, first + i as u64, commitment_of) {
                    Ok(a) => added += u64::from(a),
                    Err(e) => {
                        res = Err(e);
                        break;
                    }
                }
            }
            // No msync: the commit's fdatasync writes the map's dirty pages, once for all the
            // appends before it.
            res
        } else {
            let mut slots = FileSlots {
                file: &index_file,
                slots: self.extent.index_slots,
                salt: self.extent.index_salt,
            };
            new.iter().enumerate().try_for_each(|(i, r)| {
                index::insert(&mut slots, &r.commitment, first + i as u64, commitment_of)
                    .map(|a| added += u64::from(a))
            })
        };
        res.map_err(|source| CheckpointError::Index {
            path: index_path,
            source,
        })?;
        self.extent.index_entries += added;
        Ok(())
    }

    /// Appends `new` to `rounds` and the rounds chain; returns the table, open for reading.
    fn write_rounds(&mut self, new: &[super::RoundEntry]) -> Result<File, CheckpointError> {
        let first = self.extent.rounds;
        let (file, path) = self.open_rw(ROUNDS_FILE)?;
        let mut buf = Vec::with_capacity(new.len() * ROUND_LEN);
        for r in new {
            encode_round(r, &mut buf);
        }
        file.set_len(first * ROUND_LEN as u64)
            .map_err(io("truncate", &path))?;
        file.write_all_at(&buf, first * ROUND_LEN as u64)
            .map_err(io("write", &path))?;
        if self.bulk {
            // The round table is only appended to: its new pages go to disk now, while the
            // rebuild folds on, rather than all at the next commit's fdatasync (at the end of a
            // replay, most of the projection's bytes).
            start_writeback(&file, first * ROUND_LEN as u64, buf.len() as u64);
        }
        self.chain_rounds(&buf, first);
        self.extent.rounds = first + new.len() as u64;
        Ok(file)
    }

    /// Whether appends hold index entries back for the next commit (a bulk rebuild into tables
    /// it built itself; see [`super::pending`]).
    fn holding_back(&self) -> bool {
        self.bulk
            && self.clean == (true, true)
            && self.extent.index_slots > 0
            && self.extent.digest_slots > 0
    }

    /// A bulk rebuild's append: the rounds go to `rounds` at once, their commitments' and
    /// digests' entries to the part files of the tables' slots they belong in, which the next
    /// [`Self::commit`] fills in part by part. Until then the appended rounds are in the files
    /// but not in the indexes, so a rebuild that cannot commit must not serve them (see
    /// [`Self::unindexed`]).
    fn append_held_back(
        &mut self,
        view: &Projection,
        new: &[(digests::DigestHash, u64)],
        ahead: Option<DigestKeys<'_>>,
    ) -> Result<(), CheckpointError> {
        let rounds = view.recent_rounds();
        let first = self.extent.rounds;
        self.write_rounds(rounds)?;
        self.unindexed = true;
        // The direct path's whole-table maps are not used from here on: their pages would count
        // in this process's memory (a gigabyte at 100 million rounds) until the end.
        self.drop_maps();
        let (mut held_index, mut held_digests) = match self.pending.take() {
            Some(p) => p,
            None => self.hold_back()?,
        };
        let index_dir = held_index.dir().to_path_buf();
        for (i, r) in rounds.iter().enumerate() {
            let packed = (first + i as u64) | (index::fingerprint(&r.commitment) << 40);
            held_index
                .push(index::key_bits(&r.commitment), packed)
                .map_err(io("write", &index_dir))?;
        }
        let salt = self.extent.digest_salt;
        let digests_dir = held_digests.dir().to_path_buf();
        for (key, &(_, round)) in keys_of(new, ahead, salt).iter().zip(new) {
            if round >= digests::MAX_ROUNDS {
                return Err(CheckpointError::Digests {
                    path: self.path(DIGESTS_FILE),
                    source: DigestIndexError::TooManyRounds(round),
                });
            }
            held_digests
                .push(key.home, round | (u64::from(key.check) << 40))
                .map_err(io("write", &digests_dir))?;
        }
        self.pending = Some((held_index, held_digests));
        Ok(())
    }

    /// Starts holding entries back for both tables as they are now.
    fn hold_back(&self) -> Result<(Pending, Pending), CheckpointError> {
        let open = |name: &str, slots: u64, slot_len: u64| {
            let dir = self.path(name);
            let part = pending::part_slots(slots, slot_len, PENDING_PART_BYTES);
            Pending::create(&dir, slots, part).map_err(io("create", &dir))
        };
        Ok((
            open(PENDING_INDEX_DIR, self.extent.index_slots, 8)?,
            open(
                PENDING_DIGESTS_DIR,
                self.extent.digest_slots,
                digests::SLOT_LEN as u64,
            )?,
        ))
    }

    /// Whether appended rounds are missing from the indexes (held back for a commit, or a fill
    /// that failed): the files then answer wrongly for them until a commit succeeds, and a
    /// rebuild that gives up writing cannot serve what it folded.
    pub fn unindexed(&self) -> bool {
        self.unindexed
    }

    /// Fills the entries held back since the last commit into both tables, on two threads,
    /// growing a table first if they would overfill it.
    fn fill_held_back(&mut self) -> Result<(), CheckpointError> {
        let Some((held_index, held_digests)) = self.pending.take() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let held = (held_index.entries(), held_digests.entries());
        let index_entries = self.extent.index_entries + held_index.entries();
        let held_index = if index::overfull(index_entries, self.extent.index_slots) {
            // Rebuilt from `rounds`, which holds every appended round: nothing is held back.
            pending::remove_dir(held_index.dir()).map_err(io("remove", held_index.dir()))?;
            self.rebuild_index(self.extent.rounds)?;
            None
        } else {
            Some(held_index)
        };
        let digest_entries = self.extent.digest_entries + held_digests.entries();
        if digests::overfull(digest_entries, self.extent.digest_slots) {
            if self.digests_grown {
                return Err(CheckpointError::Invalid {
                    path: self.path("digests.tmp"),
                    why: "held-back digests overfill a digest index not yet committed".into(),
                });
            }
            self.grow_digests_for(self.extent.rounds, &[], held_digests.entries())?;
        }
        // A grown table waits in `digests.tmp` for the snapshot that names it.
        let digests_target = if self.digests_grown {
            "digests.tmp"
        } else {
            DIGESTS_FILE
        };
        let index_path = self.path(INDEX_FILE);
        let rounds_path = self.path(ROUNDS_FILE);
        let digests_path = self.path(digests_target);
        let e = self.extent;
        let (index_added, digests_added) = std::thread::scope(|scope| {
            let helper = std::thread::Builder::new()
                .name("otsd-digests".into())
                .spawn_scoped(scope, || {
                    fill_digests(&digests_path, e.digest_slots, e.digest_salt, held_digests)
                });
            let index_added = match held_index {
                Some(held) => {
                    fill_index(&index_path, &rounds_path, e.index_slots, e.index_salt, held)
                }
                None => Ok(0),
            };
            let digests_added = match helper {
                Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err(spawn) => Err(io("spawn", &digests_path)(spawn)),
            };
            (index_added, digests_added)
        });
        self.extent.index_entries += index_added?;
        self.extent.digest_entries += digests_added?;
        if self.digests_grown {
            // Synced by the commit only once it is renamed over `digests`.
            File::open(&digests_path)
                .and_then(|f| f.sync_data())
                .map_err(io("fdatasync", &digests_path))?;
        }
        self.unindexed = false;
        tracing::info!(
            index = held.0,
            digests = held.1,
            index_slots = e.index_slots,
            digest_slots = self.extent.digest_slots,
            "filled the held-back index entries in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The salt of the digest index, once there is one.
    pub fn digest_salt(&self) -> Option<u64> {
        (self.extent.digest_slots > 0).then_some(self.extent.digest_salt)
    }

    /// The digests `view` folded into rounds `before..end` (those being appended), in round
    /// order; a few are kept as the snapshot's samples.
    fn new_digests(
        &mut self,
        view: &Projection,
        before: u64,
        end: u64,
    ) -> Vec<(digests::DigestHash, u64)> {
        let new: Vec<_> = view
            .recent_digests()
            .into_iter()
            .filter(|&(_, r)| r >= before && r < end)
            .collect();
        self.note_digest_samples(&new);
        new
    }

    /// Whether `new` goes into the digest index as it is (no first table, no growth).
    fn digests_fit(&self, new: &[(digests::DigestHash, u64)]) -> bool {
        let entries = self.extent.digest_entries + new.len() as u64;
        self.extent.digest_slots > 0
            && !new.is_empty()
            && !digests::overfull(entries, self.extent.digest_slots)
    }

    /// The bulk path's map of the digest index, kept from one append to the next.
    fn take_digests_map(&mut self) -> Result<MappedMut, CheckpointError> {
        if let Some(map) = self.digests_map.take() {
            return Ok(map);
        }
        let (file, path) = self.open_rw(DIGESTS_FILE)?;
        MappedMut::whole(&file, &path)
            .map_err(|e| io("mmap", &path)(std::io::Error::other(e.to_string())))
    }

    /// A bulk rebuild's [`Self::append_rounds`] and the inserts of `new` into the digest index
    /// (which [`Self::digests_fit`]), on two threads: the files, maps and extent fields each
    /// touches are its own. The digest index is as much work as the rounds and their index, and
    /// the fold's thread, not the verifying one, is a rebuild's bottleneck.
    fn append_rounds_beside_digests(
        &mut self,
        view: &Projection,
        new: &[(digests::DigestHash, u64)],
        ahead: Option<DigestKeys<'_>>,
    ) -> Result<(), CheckpointError> {
        let mut map = self.take_digests_map()?;
        let (salt, slots) = (self.extent.digest_salt, self.extent.digest_slots);
        let (rounds, inserted) = std::thread::scope(|scope| {
            let helper = std::thread::Builder::new()
                .name("otsd-digests".into())
                .spawn_scoped(scope, || insert_keyed(&mut map, new, ahead, salt, slots));
            let rounds = self.append_rounds(view);
            let inserted = helper
                .ok()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            (rounds, inserted)
        });
        // No thread to spare: in turn.
        let inserted = inserted.unwrap_or_else(|| insert_keyed(&mut map, new, ahead, salt, slots));
        self.digests_map = Some(map);
        rounds?;
        let added = inserted.map_err(|source| CheckpointError::Digests {
            path: self.path(DIGESTS_FILE),
            source,
        })?;
        self.extent.digest_entries += added;
        Ok(())
    }

    /// Adds `new`, the digests of the rounds just appended (rounds `before..`), to the digest
    /// index.
    fn append_digests(
        &mut self,
        before: u64,
        new: &[(digests::DigestHash, u64)],
        ahead: Option<DigestKeys<'_>>,
    ) -> Result<(), CheckpointError> {
        let entries = self.extent.digest_entries + new.len() as u64;
        if self.extent.digest_slots == 0 || digests::overfull(entries, self.extent.digest_slots) {
            return self.grow_digests(before, new);
        }
        if new.is_empty() {
            return Ok(());
        }
        let salt = self.extent.digest_salt;
        let (file, path) = self.open_rw(DIGESTS_FILE)?;
        let digests_err = |source| CheckpointError::Digests {
            path: path.clone(),
            source,
        };
        let mut added = 0;
        if self.bulk {
            let mut map = self.take_digests_map()?;
            let inserted = insert_keyed(&mut map, new, ahead, salt, self.extent.digest_slots);
            self.digests_map = Some(map);
            added = inserted.map_err(digests_err)?;
        } else {
            // The batch sorted by home slot sweeps the table once, through a map whose pages are
            // released behind the sweep: a page is faulted in once for all the batch's digests
            // on it, instead of a pread and a pwrite per digest, and otsd's resident size stays
            // at a step. Out of round order, a slot in use is never reused (see
            // digests::insert_unordered); the commit's fdatasync writes the dirty pages.
            let n = self.extent.digest_slots;
            let mut keyed: Vec<(digests::Key, u64)> = new
                .iter()
                .map(|(h, r)| (digests::Key::new(h, salt), *r))
                .collect();
            keyed.sort_by_key(|(k, r)| (k.home & (n - 1), *r));
            let mut map = MappedMut::whole(&file, &path)
                .map_err(|e| io("mmap", &path)(std::io::Error::other(e.to_string())))?;
            let mut released = 0;
            for (key, round) in keyed {
                let behind = (key.home & (n - 1)).saturating_sub(GROW_STEP_SLOTS);
                if behind >= released + GROW_STEP_SLOTS {
                    map.release(slot_offset(released), slot_offset(behind - released));
                    released = behind;
                }
                let fresh = digests::insert_unordered(&mut BufSlots(&mut map), key, round, salt)
                    .map_err(digests_err)?;
                added += u64::from(fresh);
            }
        }
        self.extent.digest_entries += added;
        Ok(())
    }

    /// Writes `digests.tmp`, large enough for the entries of rounds `< valid` and `new`: the
    /// old table's slots rehashed (same salt; a new one for the first table), then `new`
    /// inserted. It replaces `digests` once the snapshot is written (see
    /// [`Self::finish_digests_swap`]).
    fn grow_digests(
        &mut self,
        valid: u64,
        new: &[(digests::DigestHash, u64)],
    ) -> Result<(), CheckpointError> {
        self.grow_digests_for(valid, new, 0)
    }

    /// [`Self::grow_digests`], with room for `held` more entries (held back, filled in next).
    fn grow_digests_for(
        &mut self,
        valid: u64,
        new: &[(digests::DigestHash, u64)],
        held: u64,
    ) -> Result<(), CheckpointError> {
        self.digests_map = None;
        if self.extent.digest_slots == 0 {
            self.extent.digest_salt = index::new_salt();
        }
        let salt = self.extent.digest_salt;
        let needed = self.extent.digest_entries + new.len() as u64 + held;
        let slots = digests::slots_for(needed).max(fitting(self.expected.1));
        let tmp = self.path("digests.tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        let len = slots * digests::SLOT_LEN as u64;
        file.set_len(len).map_err(io("size", &tmp))?;
        let _ = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len);
        let digests_err = |source| CheckpointError::Digests {
            path: tmp.clone(),
            source,
        };
        let mut added = 0;
        {
            let mut map = MappedMut::whole(&file, &tmp)
                .map_err(|e| io("mmap", &tmp)(std::io::Error::other(e.to_string())))?;
            // Both tables are swept in steps and each step's pages are released behind the
            // sweep, so otsd's resident size stays near a few steps, not the two tables (4 GiB
            // and 2 GiB at 100 million digests). The pages stay in the page cache.
            let mut at = 0;
            while at < slots {
                let end = (at + GROW_STEP_SLOTS).min(slots);
                BufSlots(&mut map).clear_range(salt, at..end);
                map.release(slot_offset(at), slot_offset(end - at));
                at = end;
            }
            let old_slots = self.extent.digest_slots;
            if old_slots > 0 {
                let (old, old_path) = self.open_rw(DIGESTS_FILE)?;
                let mut old_map = MappedMut::whole(&old, &old_path)
                    .map_err(|e| io("mmap", &old_path)(std::io::Error::other(e.to_string())))?;
                // Slot i of the old table lands at or after (its home modulo old_slots) plus a
                // multiple of old_slots in the new one (digests::rehash_range): a step of slack
                // behind the sweep covers displaced entries. A page released too early is only
                // mapped again when touched.
                let mut at = 0;
                while at < old_slots {
                    let end = (at + GROW_STEP_SLOTS).min(old_slots);
                    added += digests::rehash_range(
                        &BufSlots(&mut old_map),
                        &mut BufSlots(&mut map),
                        salt,
                        valid,
                        at..end,
                    )
                    .map_err(digests_err)?;
                    old_map.release(slot_offset(at), slot_offset(end - at));
                    let (done, behind) = (
                        at.saturating_sub(GROW_STEP_SLOTS),
                        end.saturating_sub(GROW_STEP_SLOTS),
                    );
                    for part in (0..slots).step_by(old_slots as usize) {
                        map.release(slot_offset(part + done), slot_offset(behind - done));
                    }
                    at = end;
                }
            }
            map.flush().map_err(io("msync", &tmp))?;
        }
        // The new digests go in through the file, not the map: one slot read each would map in
        // the 16 pages around it, and a segment's worth of them the whole table.
        let mut to = digests::FileSlots { file: &file, slots };
        for (h, r) in new {
            added += u64::from(
                digests::insert(&mut to, digests::Key::new(h, salt), *r, salt)
                    .map_err(digests_err)?,
            );
        }
        file.sync_all().map_err(io("fsync", &tmp))?;
        sync_dir(&self.dir)?;
        self.extent.digest_slots = slots;
        self.extent.digest_entries = added;
        self.digests_grown = true;
        self.clean.1 = true;
        Ok(())
    }

    /// Builds `index` anew (twice as large as needed) from rounds `0..rounds` of the table.
    fn rebuild_index(&mut self, rounds: u64) -> Result<(), CheckpointError> {
        self.rebuild_index_in_parts(rounds, INDEX_PART_SLOTS)
    }

    /// [`Self::rebuild_index`], filling a table larger than `part_slots` slots one part at a
    /// time, so that only about two parts of it are mapped in at once: the rounds are read in
    /// order once and each one's key goes to a spill file of its part (`index.spill/`, 16 bytes
    /// a round), then each part is filled from its file and released behind. A commitment's
    /// rounds all go to the part of its home slot, in order, so a repeated commitment keeps its
    /// first round as in a build in round order.
    fn rebuild_index_in_parts(
        &mut self,
        rounds: u64,
        part_slots: u64,
    ) -> Result<(), CheckpointError> {
        self.index_map = None;
        let slots = index::slots_for(rounds).max(fitting(self.expected.0));
        let tmp = self.path("index.tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        file.set_len(slots * 8).map_err(io("size", &tmp))?;
        let _ = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, slots * 8);
        let rounds_path = self.path(ROUNDS_FILE);
        let table = File::open(&rounds_path).map_err(io("open", &rounds_path))?;
        let salt = index::new_salt();
        let index_err = |source| CheckpointError::Index {
            path: tmp.clone(),
            source,
        };
        // Whether rounds `a` and `b` hold one commitment: asked only when 80 bits match.
        let same = |a: u64, b: u64| -> Result<bool, IndexError> {
            Ok(read_commitment(&table, a)? == read_commitment(&table, b)?)
        };
        let part_slots = part_slots.max(slots / MAX_INDEX_PARTS).min(slots);
        let mut added = 0;
        {
            let mut map = MappedMut::whole(&file, &tmp)
                .map_err(|e| io("mmap", &tmp)(std::io::Error::other(e.to_string())))?;
            let mut at = 0;
            while at < slots {
                let end = (at + part_slots).min(slots);
                MapSlots(&mut map, salt).clear_range(at..end);
                map.release((at * 8) as usize, ((end - at) * 8) as usize);
                at = end;
            }
            if part_slots == slots {
                let mut first = 0;
                while first < rounds {
                    let end = (first + READ_ROUNDS).min(rounds);
                    let chunk = read_rounds(&table, &rounds_path, first, end)?;
                    for (i, c) in chunk.iter().enumerate() {
                        if let Some(next) = chunk.get(i + PREFETCH_AHEAD) {
                            prefetch_byte(&map, index::home(next, slots) as usize * 8);
                        }
                        let round = first + i as u64;
                        let fresh = index::insert_new(
                            &mut MapSlots(&mut map, salt),
                            index::key_bits(c),
                            index::fingerprint(c),
                            round,
                            |r| same(r, round),
                        )
                        .map_err(index_err)?;
                        added += u64::from(fresh);
                    }
                    first = end;
                }
            }
            map.flush().map_err(io("msync", &tmp))?;
        }
        if part_slots < slots {
            let spill = self.path(INDEX_SPILL_DIR);
            let held = self.spill_index_keys(&spill, &table, rounds, slots, part_slots)?;
            added = fill_index(&tmp, &rounds_path, slots, salt, held)?;
        }
        file.sync_all().map_err(io("fsync", &tmp))?;
        let path = self.path(INDEX_FILE);
        fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
        sync_dir(&self.dir)?;
        self.extent.index_slots = slots;
        self.extent.index_entries = added;
        self.extent.index_salt = salt;
        self.clean.0 = true;
        Ok(())
    }

    /// Reads rounds `0..rounds` of the table in order and holds each one's index entry back in
    /// the spill file of the part of the new table (of `slots` slots, parts of `part_slots`) its
    /// home slot is in (see [`super::pending`]). The spill files are scratch: not synced, removed
    /// once drained, and by the next rebuild or a [`Self::remove`] after a crash.
    fn spill_index_keys(
        &self,
        spill: &Path,
        table: &File,
        rounds: u64,
        slots: u64,
        part_slots: u64,
    ) -> Result<Pending, CheckpointError> {
        let mut held = Pending::create(spill, slots, part_slots).map_err(io("create", spill))?;
        let rounds_path = self.path(ROUNDS_FILE);
        let mut first = 0;
        while first < rounds {
            let end = (first + READ_ROUNDS).min(rounds);
            let chunk = read_rounds(table, &rounds_path, first, end)?;
            for (i, c) in chunk.iter().enumerate() {
                let packed = (first + i as u64) | (index::fingerprint(c) << 40);
                held.push(index::key_bits(c), packed)
                    .map_err(io("write", spill))?;
            }
            first = end;
        }
        Ok(held)
    }

    /// Moves the view's final stamping transactions to `txs` and `proofs`.
    fn archive_final(&mut self, view: &mut Projection) -> Result<(), CheckpointError> {
        let final_through = view.stamps.state.final_through;
        let ready: Vec<(u64, super::stamps::Mined)> = view
            .stamps
            .archivable(final_through, self.archived_through)
            .map(|(f, m)| (f, m.clone()))
            .collect();
        if ready.is_empty() {
            return Ok(());
        }
        let (rounds, rounds_path) = self.open_rw(ROUNDS_FILE)?;
        let (txs, txs_path) = self.open_rw(TXS_FILE)?;
        let (proofs, proofs_path) = self.open_rw(PROOFS_FILE)?;
        txs.set_len(self.extent.txs * TX_LEN as u64)
            .map_err(io("truncate", &txs_path))?;
        proofs
            .set_len(self.extent.proofs_len)
            .map_err(io("truncate", &proofs_path))?;
        for (first, mined) in ready {
            if mined.last_round >= self.extent.rounds {
                break;
            }
            let (record, tip) = proof_record(&rounds, &rounds_path, first, &mined)?;
            let time = read_round_entry(&rounds, &rounds_path, mined.last_round)?.time;
            let entry = TxEntry {
                first_round: first,
                last_round: mined.last_round,
                tip,
                offset: self.extent.proofs_len,
                tail_len: (record.tail_len) as u32,
                fee_sat: mined.fee_sat,
                time,
                height: mined.proof.height,
            };
            proofs
                .write_all_at(&record.bytes, self.extent.proofs_len)
                .map_err(io("write", &proofs_path))?;
            let mut b = Vec::with_capacity(TX_LEN);
            entry.encode(&mut b);
            txs.write_all_at(&b, self.extent.txs * TX_LEN as u64)
                .map_err(io("write", &txs_path))?;
            self.extent.proofs_len += record.bytes.len() as u64;
            self.extent.txs += 1;
            self.archived_through = Some(mined.last_round);
        }
        Ok(())
    }

    fn write_snapshot(&mut self, view: &Projection, at: Head) -> Result<(), CheckpointError> {
        let chain = self.chain;
        let block = self.block.clone();
        let rounds_tail = block
            .unwrap_or_else(|| Sha256::new().chain_update(chain))
            .finalize()
            .into();
        let (digests_total, open_digests, stamps) = view.checkpoint_parts();
        let mut stamps = stamps.clone();
        stamps.forget_archived(self.archived_through);
        let body = codec::encode(&Body {
            digests_total,
            open_digests,
            stamps,
            digest_samples: self.digest_samples.clone(),
        })?;
        let snap = Snapshot {
            min_confirmations: view.min_confirmations(),
            at,
            extent: self.extent,
            rounds_chain: self.chain,
            rounds_tail,
            archived_through: self.archived_through,
            body: &body,
        };
        let bytes = snap.encode(&self.key);
        write_atomically(&self.dir, SNAPSHOT_FILE, &bytes).map_err(|e| CheckpointError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        })?;
        self.at = Some(at);
        Ok(())
    }

    /// Removes the checkpoint files (a full replay follows).
    pub fn remove(&mut self) -> Result<(), CheckpointError> {
        for name in ALL_FILES
            .iter()
            .copied()
            .chain(["index.tmp", "digests.tmp", "checkpoint.tmp"])
        {
            let path = self.dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &path)(e)),
            }
        }
        for scratch in [INDEX_SPILL_DIR, PENDING_INDEX_DIR, PENDING_DIGESTS_DIR] {
            let dir = self.path(scratch);
            pending::remove_dir(&dir).map_err(io("remove", &dir))?;
        }
        self.extent = Extent::default();
        self.clean = (false, false);
        self.pending = None;
        self.unindexed = false;
        self.digest_samples.clear();
        self.chain = [0; 32];
        self.block = None;
        self.archived_through = None;
        self.at = None;
        self.digests_grown = false;
        self.appended = false;
        self.drop_maps();
        Ok(())
    }

    /// Removes only the snapshot, so that the next start rebuilds everything from the log.
    pub fn drop_snapshot(&mut self) -> Result<(), CheckpointError> {
        let path = self.path(SNAPSHOT_FILE);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &path)(e)),
        }
    }
}

/// The fewest slots (a power of two) that `entries` do not overfill: the size a table reaches by
/// growing as they are added (both indexes grow at the same load).
fn fitting(entries: u64) -> u64 {
    if entries == 0 {
        return 0;
    }
    let least = entries
        .saturating_mul(index::MAX_LOAD_DEN)
        .div_ceil(index::MAX_LOAD_NUM);
    least.next_power_of_two()
}

/// Inserts `new` into the digest index mapped whole in `map` (`slots` slots salted `salt`), in
/// round order, each key taken from `ahead` when it was worked out there for the same digest and
/// salt; returns how many entries were added. The commit's fdatasync writes the dirty pages.
fn insert_keyed(
    map: &mut MappedMut,
    new: &[(digests::DigestHash, u64)],
    ahead: Option<DigestKeys<'_>>,
    salt: u64,
    slots: u64,
) -> Result<u64, digests::DigestIndexError> {
    let keys = keys_of(new, ahead, salt);
    let mut table = BufSlots(map);
    let mask = slots - 1;
    let mut added = 0;
    for (i, (&key, &(_, r))) in keys.iter().zip(new).enumerate() {
        if let Some(next) = keys.get(i + PREFETCH_AHEAD) {
            prefetch_byte(table.0, (next.home & mask) as usize * digests::SLOT_LEN);
        }
        added += u64::from(digests::insert(&mut table, key, r, salt)?);
    }
    Ok(added)
}

/// The digest index keys of `new` in a table salted `salt`, each taken from `ahead` when it was
/// worked out there for the same digest and salt.
fn keys_of(
    new: &[(digests::DigestHash, u64)],
    ahead: Option<DigestKeys<'_>>,
    salt: u64,
) -> Vec<digests::Key> {
    let mut ahead = ahead
        .filter(|a| a.salt == salt)
        .map(|a| a.hashes.iter().zip(a.keys));
    let mut key = |h: &digests::DigestHash| match ahead.as_mut().and_then(Iterator::next) {
        Some((ah, &k)) if ah == h => k,
        _ => digests::Key::new(h, salt),
    };
    new.iter().map(|(h, _)| key(h)).collect()
}

/// Fills the commitment index at `path` (`slots` slots salted `salt`) with the entries `held`
/// back for it, part by part (see [`super::pending`]); returns how many were added.
/// `rounds_path` is the round table, read when 80 bits of two commitments match.
fn fill_index(
    path: &Path,
    rounds_path: &Path,
    slots: u64,
    salt: u64,
    held: Pending,
) -> Result<u64, CheckpointError> {
    let table = File::open(rounds_path).map_err(io("open", rounds_path))?;
    fill_table(path, slots, 8, held, |map, key, packed| {
        let round = packed & index::MAX_ROUNDS;
        let same = |r: u64| -> Result<bool, IndexError> {
            Ok(read_commitment(&table, r)? == read_commitment(&table, round)?)
        };
        index::insert_new(&mut MapSlots(map, salt), key, packed >> 40, round, same).map_err(
            |source| CheckpointError::Index {
                path: path.to_path_buf(),
                source,
            },
        )
    })
}

/// [`fill_index`] for the digest index at `path` (`slots` slots salted `salt`): the entries'
/// rounds need no other file.
fn fill_digests(path: &Path, slots: u64, salt: u64, held: Pending) -> Result<u64, CheckpointError> {
    let slot_len = digests::SLOT_LEN as u64;
    fill_table(path, slots, slot_len, held, |map, home, packed| {
        let key = digests::Key {
            home,
            check: (packed >> 40) as u16,
        };
        let round = packed & index::MAX_ROUNDS;
        digests::insert_unordered(&mut BufSlots(map), key, round, salt).map_err(|source| {
            CheckpointError::Digests {
                path: path.to_path_buf(),
                source,
            }
        })
    })
}

/// Feeds the entries `held` back for the table at `path` (`slots` slots of `slot_len` bytes) to
/// `insert(map, home, packed)` through a writable map of the whole table, part by part: the next
/// part is read ahead, the slots each entry goes to prefetched, and each part's pages unmapped
/// once no later entry goes there. Returns how many `insert` added. The commit's fdatasync
/// writes the pages, which stay in the page cache for the next fill: dropping a filled part's
/// clean pages (`posix_fadvise(DONTNEED)`, as the round table's are) made the next commit read
/// the whole table back from disk, 46 s of a 100-million-round replay.
fn fill_table(
    path: &Path,
    slots: u64,
    slot_len: u64,
    held: Pending,
    mut insert: impl FnMut(&mut [u8], u64, u64) -> Result<bool, CheckpointError>,
) -> Result<u64, CheckpointError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("open", path))?;
    let mut map = MappedMut::whole(&file, path)
        .map_err(|err| io("mmap", path)(std::io::Error::other(err.to_string())))?;
    let bytes = |r: &std::ops::Range<u64>| (r.start * slot_len, (r.end - r.start) * slot_len);
    let mut added = 0;
    held.drain(
        slots,
        |err| io("read", path)(err),
        |step| {
            match step {
                Step::Entries(entries) => {
                    for (i, &(home, packed)) in entries.iter().enumerate() {
                        if let Some(next) = entries.get(i + PREFETCH_AHEAD) {
                            let at = (next.0 & (slots - 1)) * slot_len;
                            prefetch_byte(&map, at as usize);
                        }
                        added += u64::from(insert(&mut map, home, packed)?);
                    }
                }
                Step::Done(r) => {
                    let (at, len) = bytes(&r);
                    map.release(at as usize, len as usize);
                }
                Step::Ahead(r) => {
                    let (at, len) = bytes(&r);
                    read_ahead(&file, at, len);
                }
            }
            Ok(())
        },
    )?;
    Ok(added)
}

/// Starts reading `len` bytes of `file` from `offset` into the page cache, in large requests,
/// without waiting (`posix_fadvise(WILLNEED)`): a table part about to be filled is read in one
/// sweep instead of one page fault at a time. Advice only.
fn read_ahead(file: &File, offset: u64, len: u64) {
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::WillNeed);
    }
}

/// Starts writing `len` bytes of `file` from `offset` to disk without waiting for them:
/// `posix_fadvise(DONTNEED)` starts the writeback of the dirty pages in the range (and drops
/// those already clean). Advice only: a failure changes nothing, the commit's sync still writes
/// them.
fn start_writeback(file: &File, offset: u64, len: u64) {
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
    }
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

fn checkpoint_key(log_key: &LogKey) -> [u8; 32] {
    let mut mac = new_mac(log_key.as_bytes());
    mac.update(b"otsd checkpoint v1");
    mac.finalize().into_bytes().into()
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of every length"),
    }
}

fn read_commitment(file: &File, r: u64) -> Result<Commitment, IndexError> {
    let mut b = [0u8; ROUND_LEN];
    file.read_exact_at(&mut b, r * ROUND_LEN as u64)?;
    decode_round(&b)
        .map(|e| e.commitment)
        .ok_or(IndexError::Round(format!("round {r} fails its CRC")))
}

/// Round `r` of the table, CRC-checked.
fn read_round_entry(
    file: &File,
    path: &Path,
    r: u64,
) -> Result<super::RoundEntry, CheckpointError> {
    let mut b = [0u8; ROUND_LEN];
    file.read_exact_at(&mut b, r * ROUND_LEN as u64)
        .map_err(io("read", path))?;
    decode_round(&b).ok_or_else(|| CheckpointError::Invalid {
        path: path.to_path_buf(),
        why: format!("round table does not match its checkpoint: round {r} fails its CRC"),
    })
}

/// Commitments of rounds `first..end` of the table, CRC-checked.
fn read_rounds(
    file: &File,
    path: &Path,
    first: u64,
    end: u64,
) -> Result<Vec<Commitment>, CheckpointError> {
    let mut buf = vec![0u8; ((end - first) as usize) * ROUND_LEN];
    file.read_exact_at(&mut buf, first * ROUND_LEN as u64)
        .map_err(io("read", path))?;
    buf.chunks_exact(ROUND_LEN)
        .enumerate()
        .map(|(i, b)| {
            decode_round(b)
                .map(|e| e.commitment)
                .ok_or_else(|| CheckpointError::Invalid {
                    path: path.to_path_buf(),
                    why: format!(
                        "round table does not match its checkpoint: round {} fails its CRC",
                        first + i as u64
                    ),
                })
        })
        .collect()
}

/// Continues the rounds chain over blocks `from..to` of the table.
fn chain_blocks(
    file: &File,
    path: &Path,
    mut chain: [u8; 32],
    from: u64,
    to: u64,
) -> Result<[u8; 32], CheckpointError> {
    let mut buf = vec![0u8; (ROUND_BLOCK as usize) * ROUND_LEN];
    for block in from..to {
        file.read_exact_at(&mut buf, block * ROUND_BLOCK * ROUND_LEN as u64)
            .map_err(io("read", path))?;
        chain = Sha256::new()
            .chain_update(chain)
            .chain_update(&buf)
            .finalize()
            .into();
    }
    Ok(chain)
}

/// A `proofs` record and where its tail ends.
struct ProofRecord {
    bytes: Vec<u8>,
    tail_len: usize,
}

/// Builds the `proofs` record of a final transaction from its rounds in the table, and checks
/// that the recomputed tip is the one the transaction commits to (its txid must come out).
fn proof_record(
    rounds: &File,
    path: &Path,
    first: u64,
    mined: &super::stamps::Mined,
) -> Result<(ProofRecord, Hash), CheckpointError> {
    let covered = mined.last_round - first + 1;
    let head = mined.log_head.map(|h| h.hash);
    let mut chunks: Vec<Hash> = Vec::with_capacity((covered / CHUNK + 1) as usize);
    let mut leaves: Vec<Hash> = Vec::with_capacity(CHUNK as usize);
    let mut at = first;
    while at <= mined.last_round {
        let end = (at + READ_ROUNDS).min(mined.last_round + 1);
        for c in read_rounds(rounds, path, at, end)? {
            leaves.push(tiptree::leaf(&c));
            if leaves.len() as u64 == CHUNK {
                chunks.extend(tiptree::chunk_root(std::mem::take(&mut leaves)));
            }
        }
        at = end;
    }
    leaves.extend(head);
    if !leaves.is_empty() {
        chunks.extend(tiptree::chunk_root(leaves));
    }
    let mut bytes = Vec::new();
    bytes.push(u8::from(head.is_some()));
    bytes.extend_from_slice(&head.unwrap_or([0; 32]));
    crate::anchor::proof::write_tx_tail(&mut bytes, &mined.proof);
    let tail_len = bytes.len() - PROOF_HEAD_LEN as usize;
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let tip =
        tiptree::build_levels(chunks, &mut bytes).ok_or_else(|| CheckpointError::Invalid {
            path: path.to_path_buf(),
            why: format!(
                "transaction over rounds {first}..={} is empty",
                mined.last_round
            ),
        })?;
    if crate::anchor::proof::txid_of(&mined.proof, &tip) != mined.txid {
        return Err(CheckpointError::Invalid {
            path: path.to_path_buf(),
            why: format!(
                "the rounds {first}..={} do not give the tip of their transaction",
                mined.last_round
            ),
        });
    }
    Ok((ProofRecord { bytes, tail_len }, tip))
}

/// The `checkpoint` file, decoded.
struct Snapshot<'a> {
    min_confirmations: u32,
    at: Head,
    extent: Extent,
    rounds_chain: [u8; 32],
    rounds_tail: [u8; 32],
    archived_through: Option<u64>,
    body: &'a [u8],
}

impl<'a> Snapshot<'a> {
    fn encode(&self, key: &[u8; 32]) -> Vec<u8> {
        let e = &self.extent;
        let mut out = Vec::with_capacity(FIXED_LEN + self.body.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.min_confirmations.to_le_bytes());
        out.extend_from_slice(&self.at.next_seq.to_le_bytes());
        out.extend_from_slice(&self.at.chain.hash);
        out.extend_from_slice(&self.at.chain.tag);
        out.extend_from_slice(&e.rounds.to_le_bytes());
        out.extend_from_slice(&self.rounds_chain);
        out.extend_from_slice(&self.rounds_tail);
        for v in [
            e.txs,
            e.proofs_len,
            e.index_slots,
            e.index_entries,
            self.archived_through.map_or(0, |r| r + 1),
            e.index_salt,
            e.digest_slots,
            e.digest_entries,
            e.digest_salt,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(self.body);
        let mut mac = new_mac(key);
        mac.update(&out);
        let tag: [u8; 32] = mac.finalize().into_bytes().into();
        out.extend_from_slice(&tag);
        out
    }

    fn decode(bytes: &'a [u8], key: &[u8; 32]) -> Result<Snapshot<'a>, String> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err("not a checkpoint (bad magic or too short)".into());
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        let b32_at = |i: usize| <[u8; 32]>::try_from(&bytes[i..i + 32]).unwrap_or([0; 32]);
        let version = u32_at(8);
        if version != VERSION {
            return Err(format!(
                "checkpoint version {version}, this otsd reads {VERSION}"
            ));
        }
        if bytes.len() < FIXED_LEN + TAG_LEN {
            return Err("not a checkpoint (too short)".into());
        }
        let body_len = u32_at(232) as usize;
        if body_len > MAX_BODY_LEN || bytes.len() != FIXED_LEN + body_len + TAG_LEN {
            return Err("length does not match its header (truncated?)".into());
        }
        let signed = &bytes[..FIXED_LEN + body_len];
        let mut mac = new_mac(key);
        mac.update(signed);
        if mac.verify_slice(&bytes[FIXED_LEN + body_len..]).is_err() {
            return Err("HMAC does not verify: damaged, or made with another key".into());
        }
        let archived = u64_at(192);
        Ok(Snapshot {
            min_confirmations: u32_at(12),
            at: Head {
                next_seq: u64_at(16),
                chain: ChainState {
                    hash: b32_at(24),
                    tag: b32_at(56),
                },
            },
            extent: Extent {
                rounds: u64_at(88),
                txs: u64_at(160),
                proofs_len: u64_at(168),
                index_slots: u64_at(176),
                index_entries: u64_at(184),
                index_salt: u64_at(200),
                digest_slots: u64_at(208),
                digest_entries: u64_at(216),
                digest_salt: u64_at(224),
            },
            rounds_chain: b32_at(96),
            rounds_tail: b32_at(128),
            archived_through: archived.checked_sub(1),
            body: &bytes[FIXED_LEN..FIXED_LEN + body_len],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::commitment::COMMITMENT_LEN;
    use crate::events::Event;
    use crate::projection::Status;

    fn fold_rounds(view: &mut Projection, from: u64, to: u64) {
        let mut seq = view.next_seq();
        for round in from..to {
            view.apply(
                seq,
                &Event::DigestSubmitted {
                    digest: vec![round as u8; 32],
                    nonce: [0; 16],
                },
            )
            .unwrap();
            let mut commitment = vec![round as u8; COMMITMENT_LEN];
            commitment[4..12].copy_from_slice(&(round * 0x9E37_79B9).to_le_bytes());
            commitment[12..20].copy_from_slice(&round.to_be_bytes());
            // A non-zero MAC: a zero one would be a legacy (36-byte) commitment.
            commitment[43] = 0xa5;
            view.apply(seq + 1, &seal(round, commitment, 1)).unwrap();
            seq += 2;
        }
    }

    /// A `RoundSealed` of `round` with `commitment`, at a time `round` seconds after 2023-11-14.
    fn seal(round: u64, commitment: Vec<u8>, digests: u32) -> Event {
        Event::RoundSealed {
            round,
            time: 1_700_000_000 + round as u32,
            root: [1; 32],
            mac: [2; 8],
            commitment,
            digests,
        }
    }

    /// The digest `d` of round `r` in the digest index tests.
    fn digest(r: u64, d: u64) -> Vec<u8> {
        [r.to_le_bytes(), d.to_le_bytes()].concat()
    }

    /// Folds round `round` at `*seq` with `per_round` digests, the last repeating round 0's first
    /// digest, sealed with `commitment`.
    fn fold_repeating(
        view: &mut Projection,
        seq: &mut u64,
        round: u64,
        per_round: u64,
        commitment: Vec<u8>,
    ) {
        for d in 0..per_round {
            let digest = if d + 1 == per_round {
                digest(0, 0)
            } else {
                digest(round, d)
            };
            let ev = Event::DigestSubmitted {
                digest,
                nonce: [0; 16],
            };
            view.apply(*seq, &ev).unwrap();
            *seq += 1;
        }
        let seal = seal(round, commitment, per_round as u32);
        view.apply(*seq, &seal).unwrap();
        *seq += 1;
    }

    fn head(next_seq: u64) -> Head {
        Head {
            next_seq,
            chain: ChainState {
                hash: [7; 32],
                tag: [8; 32],
            },
        }
    }

    #[test]
    fn a_written_checkpoint_loads_back_identical_and_grows_by_appending() {
        let dir = tempfile::tempdir().unwrap();
        let key = LogKey::from_bytes([9; 32]);
        let mut files = CheckpointFiles::new(dir.path(), &key);
        let mut all = Projection::new(3);
        fold_rounds(&mut all, 0, 3000);
        let mut view = Projection::new(3);
        fold_rounds(&mut view, 0, 3);
        files.write(&mut view, head(6)).unwrap();
        fold_rounds(&mut view, 3, 3000);
        files.write(&mut view, head(6000)).unwrap();
        let size = fs::metadata(dir.path().join(ROUNDS_FILE)).unwrap().len();
        assert_eq!(size, 3000 * ROUND_LEN as u64);

        let mut again = CheckpointFiles::new(dir.path(), &key);
        let loaded = again.load(3).unwrap().expect("a checkpoint");
        assert_eq!(loaded.at, head(6000));
        assert_eq!(loaded.view.next_round(), 3000);
        assert_eq!(loaded.view.digests_total(), 3000);
        assert_eq!(loaded.view.next_seq(), 6000);
        for r in [0u64, 4, 2047, 2999] {
            let c = all.round_commitments(r, r).unwrap()[0];
            assert_eq!(loaded.view.status(&c), all.status(&c), "round {r}");
            assert_eq!(view.status(&c), all.status(&c), "round {r}");
        }
    }

    /// Digests of rounds written in several checkpoints (the table growing from 1024 slots to
    /// 8192) are found in their first round from the writer, a loaded checkpoint and a fold-only
    /// projection; a flipped bit in the digest index makes the checkpoint unusable.
    #[test]
    fn digests_are_found_across_checkpoints_and_growth() {
        let dir = tempfile::tempdir().unwrap();
        let key = LogKey::from_bytes([9; 32]);
        let mut files = CheckpointFiles::new(dir.path(), &key);
        let mut view = Projection::new(3);
        view.set_fold_only(true);
        let mut seq = 0;
        for (from, to) in [(0u64, 10u64), (10, 700), (700, 1500)] {
            for round in from..to {
                let mut commitment = vec![round as u8; COMMITMENT_LEN];
                commitment[4..12].copy_from_slice(&(round * 0x9E37_79B9).to_le_bytes());
                commitment[43] = 0xa5;
                fold_repeating(&mut view, &mut seq, round, 3, commitment);
            }
            files.write(&mut view, head(seq)).unwrap();
        }
        // Rounds folded after the last checkpoint are found in memory.
        let mut live = view.clone();
        live.set_fold_only(false);
        let extent = view.history().unwrap().extent();
        assert_eq!(extent.digest_entries, 1500 * 2);
        assert_eq!(extent.digest_slots, 8192);
        let loaded = CheckpointFiles::new(dir.path(), &key)
            .load(3)
            .unwrap()
            .unwrap()
            .view;
        for v in [&view, &live, &loaded] {
            for r in [0u64, 9, 10, 699, 700, 1499] {
                assert_eq!(v.digest_round(&digest(r, 1)).unwrap(), Some(r), "round {r}");
            }
            assert_eq!(v.digest_round(&digest(0, 0)).unwrap(), Some(0));
            assert_eq!(v.digest_round(&digest(1500, 1)).unwrap(), None);
            assert_eq!(v.digest_round(b"never").unwrap(), None);
        }
        let path = dir.path().join(DIGESTS_FILE);
        let tmp = dir.path().join("digests.tmp");
        let load_finds_digests = || {
            let loaded = CheckpointFiles::new(dir.path(), &key)
                .load(3)
                .unwrap()
                .unwrap();
            assert_eq!(
                loaded.view.digest_round(&digest(1499, 1)).unwrap(),
                Some(1499)
            );
        };
        // A crash after a grown table's snapshot, before its rename: load completes the rename.
        fs::rename(&path, &tmp).unwrap();
        fs::write(&path, vec![0u8; 4096 * digests::SLOT_LEN]).unwrap();
        load_finds_digests();
        assert!(!tmp.exists());
        // A crash while a table grows, before its snapshot: the new table is a leftover.
        fs::write(&tmp, vec![0u8; 16384 * digests::SLOT_LEN]).unwrap();
        load_finds_digests();
        assert!(!tmp.exists());
        let mut bytes = fs::read(&path).unwrap();
        bytes[4097] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let err = CheckpointFiles::new(dir.path(), &key).load(3).unwrap_err();
        assert!(err.to_string().contains("digest index"), "{err}");
    }

    /// A bulk rebuild holds index entries back from one commit to the next and fills them in
    /// part by part, growing both tables on the way (its estimate is low): every commitment and
    /// digest, repeats included, then has the round a direct build gives it, the held-back parts
    /// are gone, and the snapshot loads. Until a commit, the appended rounds are not indexed.
    #[test]
    fn a_bulk_rebuild_holding_entries_back_answers_as_direct_inserts() {
        let key = LogKey::from_bytes([9; 32]);
        // Round r's commitment is that of r % 2500: a repeat keeps its first round.
        let commitment_of = |r: u64| {
            let k = r % 2500;
            let mut c = vec![k as u8; COMMITMENT_LEN];
            c[4..12].copy_from_slice(&(k * 0x9E37_79B9).to_le_bytes());
            c[12..20].copy_from_slice(&k.to_be_bytes());
            c[43] = 0xa5;
            c
        };
        let build = |dir: &Path, bulk: bool| {
            let mut files = CheckpointFiles::new(dir, &key);
            files.set_bulk(bulk);
            files.expect(100, 200);
            let mut view = Projection::new(3);
            view.set_fold_only(true);
            let mut seq = 0;
            let mut held_back = false;
            for (batch, (from, to)) in [(0u64, 50u64), (50, 900), (900, 2000), (2000, 3000)]
                .into_iter()
                .enumerate()
            {
                for round in from..to {
                    // Two digests a round, the second one repeating round 0's first.
                    fold_repeating(&mut view, &mut seq, round, 2, commitment_of(round));
                    // Appended in steps of 100 rounds, committed after each batch.
                    if (round + 1) % 100 == 0 || round + 1 == to {
                        files.append(&mut view).unwrap();
                        held_back |= files.unindexed();
                        assert_eq!(files.unindexed(), dir.join(PENDING_INDEX_DIR).exists());
                        if files.needs_commit() {
                            files.commit(&mut view, head(seq)).unwrap();
                        }
                    }
                }
                if batch > 0 {
                    files.commit(&mut view, head(seq)).unwrap();
                    assert!(!files.unindexed());
                }
            }
            assert_eq!(held_back, bulk, "entries were held back in bulk only");
            for scratch in [PENDING_INDEX_DIR, PENDING_DIGESTS_DIR, INDEX_SPILL_DIR] {
                assert!(!dir.join(scratch).exists(), "{scratch}");
            }
            let extent = view.history().unwrap().extent();
            assert_eq!(extent.index_entries, 2500);
            assert_eq!(extent.digest_entries, 3000);
            // A repeated digest counts until it is inserted, held back or not: tables are sized
            // for the 3,000 entries and a batch's repeats.
            assert_eq!((extent.index_slots, extent.digest_slots), (4096, 8192));
            CheckpointFiles::new(dir, &key)
                .load(3)
                .unwrap()
                .unwrap()
                .view
        };
        let (bulk_dir, direct_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let bulk = build(bulk_dir.path(), true);
        let direct = build(direct_dir.path(), false);
        for r in 0..3000u64 {
            let want = direct.status(&commitment_of(r));
            assert_eq!(want, Status::Pending { round: r % 2500 }, "round {r}");
            assert_eq!(bulk.status(&commitment_of(r)), want, "round {r}");
            let got = bulk.digest_round(&digest(r, 0)).unwrap();
            assert_eq!(got, direct.digest_round(&digest(r, 0)).unwrap());
            assert_eq!(got, Some(r), "round {r}");
        }
        assert_eq!(bulk.digest_round(&digest(0, 0)).unwrap(), Some(0));
        assert_eq!(bulk.digest_round(&digest(3000, 0)).unwrap(), None);
    }

    /// A bulk rebuild killed with entries held back: the next load removes its part files and
    /// stands at its last snapshot, the rounds after it are not answered from the files, and
    /// folding them again (as a start does from the log) answers every commitment.
    #[test]
    fn held_back_entries_of_a_killed_rebuild_are_dropped_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = LogKey::from_bytes([9; 32]);
        let commitment = |view: &Projection, r: u64| view.round(r).unwrap().unwrap().commitment;
        {
            let mut files = CheckpointFiles::new(dir.path(), &key);
            files.set_bulk(true);
            files.expect(500, 500);
            let mut view = Projection::new(3);
            view.set_fold_only(true);
            for (from, to) in [(0, 50), (50, 300), (300, 500)] {
                fold_rounds(&mut view, from, to);
                files.append(&mut view).unwrap();
                if to < 500 {
                    let at = head(view.next_seq());
                    files.commit(&mut view, at).unwrap();
                }
            }
            assert!(files.unindexed());
            // Killed here: rounds 300..500 are in `rounds`, their entries only held back.
        }
        assert!(dir.path().join(PENDING_INDEX_DIR).exists());
        assert!(dir.path().join(PENDING_DIGESTS_DIR).exists());
        let mut files = CheckpointFiles::new(dir.path(), &key);
        let mut view = files.load(3).unwrap().expect("the last snapshot").view;
        assert_eq!(view.next_round(), 300);
        assert!(!dir.path().join(PENDING_INDEX_DIR).exists());
        assert!(!dir.path().join(PENDING_DIGESTS_DIR).exists());
        for r in [0, 49, 50, 299] {
            let c = commitment(&view, r);
            assert_eq!(view.status(&c), Status::Pending { round: r }, "round {r}");
        }
        fold_rounds(&mut view, 300, 500);
        let at = head(view.next_seq());
        files.write(&mut view, at).unwrap();
        let loaded = CheckpointFiles::new(dir.path(), &key)
            .load(3)
            .unwrap()
            .unwrap()
            .view;
        for r in 0..500 {
            let c = commitment(&loaded, r);
            assert_eq!(loaded.status(&c), Status::Pending { round: r }, "round {r}");
        }
    }

    /// Rounds 0..n stamped by one transaction (with a log head leaf) that becomes final: every
    /// proof served from the archived files equals the one the in-memory fold writes.
    #[test]
    fn archived_final_transactions_serve_the_same_proofs_as_memory() {
        use crate::anchor::proof::stamp_tip;
        use crate::events::LogHead;
        use crate::stamper::key::{Coin, StamperKey};
        use bitcoin::hashes::Hash as _;

        for n in [1u64, 5, 32, 33, 100, 1000] {
            let mut mem = Projection::new(1);
            fold_rounds(&mut mem, 0, n);
            let commitments = mem.round_commitments(0, n - 1).unwrap();
            let log_head = LogHead {
                next_seq: 2 * n,
                hash: [0xab; 32],
            };
            let tip = stamp_tip(commitments.iter().map(|c| &c[..]), Some(&log_head.hash)).unwrap();
            let key = StamperKey::from_bytes(&[3; 32]).unwrap();
            let coin = Coin {
                outpoint: bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array([1; 32]), 0),
                value_sat: 10_000,
            };
            let tx = key.stamp_tx(&coin, 200, &tip, 100).unwrap();
            let txid = tx.compute_txid().to_byte_array();
            let events = [
                Event::BlockSeen {
                    height: 100,
                    hash: [1; 32],
                },
                Event::TxBroadcast {
                    txid,
                    raw_tx: bitcoin::consensus::encode::serialize(&tx),
                    tip,
                    first_round: 0,
                    last_round: n - 1,
                    fee_sat: 200,
                    feerate_sat_per_kvb: 1300,
                    input_sat: 10_000,
                    height: 100,
                    replaces: None,
                    log_head: Some(log_head),
                },
                Event::BlockSeen {
                    height: 101,
                    hash: [2; 32],
                },
                Event::TxConfirmed {
                    txid,
                    block_hash: [2; 32],
                    height: 101,
                    block_txids: [[9u8; 32], txid, [8; 32]].concat(),
                },
            ];
            let mut seq = mem.next_seq();
            for ev in &events {
                mem.apply(seq, ev).unwrap();
                seq += 1;
            }
            assert_eq!(mem.stamps().state.final_through, Some(n - 1), "n={n}");

            let dir = tempfile::tempdir().unwrap();
            let key = LogKey::from_bytes([9; 32]);
            let mut disk = mem.clone();
            let mut files = CheckpointFiles::new(dir.path(), &key);
            files.write(&mut disk, head(seq)).unwrap();
            assert_eq!(disk.history().unwrap().extent().txs, 1, "n={n}");
            assert_eq!(disk.stamps().mined().count(), 0, "archived, n={n}");
            let loaded = CheckpointFiles::new(dir.path(), &key)
                .load(1)
                .unwrap()
                .unwrap()
                .view;
            for (r, c) in commitments.iter().enumerate() {
                let want = mem.status(c);
                assert!(matches!(want, Status::Complete { .. }), "n={n} r={r}");
                assert_eq!(disk.status(c), want, "n={n} r={r}");
                assert_eq!(loaded.status(c), want, "n={n} r={r}");
            }
            // The archived transaction keeps its fee, time (its newest round's) and height.
            let newest = 1_700_000_000 + (n - 1) as u32;
            for v in [&mem, &disk, &loaded] {
                assert_eq!(v.fees_since(newest).unwrap(), (200, 1), "n={n}");
                assert_eq!(v.fees_since(newest + 1).unwrap(), (0, 0), "n={n}");
            }
            let archived = disk.history().unwrap().tx_for(0).unwrap().unwrap();
            assert_eq!((archived.fee_sat, archived.height), (200, 101));
            // A flipped bit in the stored tree levels is refused, never served: here in node 1
            // of the lowest stored level, round 0's sibling there.
            let tx = loaded.history().unwrap().tx_for(0).unwrap().unwrap();
            let at = (tx.offset + PROOF_HEAD_LEN + u64::from(tx.tail_len) + 4 + 32) as usize;
            let proofs = dir.path().join(PROOFS_FILE);
            let mut bytes = fs::read(&proofs).unwrap();
            if n > CHUNK {
                bytes[at] ^= 1;
                fs::write(&proofs, &bytes).unwrap();
                // A fresh load: `loaded` serves this transaction's levels from its proof cache,
                // as read (and checked against the tip) before the damage.
                let damaged = CheckpointFiles::new(dir.path(), &key)
                    .load(1)
                    .unwrap()
                    .unwrap()
                    .view;
                let c = &commitments[0];
                assert!(
                    matches!(damaged.status(c), Status::Unavailable(_)),
                    "n={n}: {:?}",
                    damaged.status(c)
                );
                assert!(damaged.history().unwrap().is_damaged());
            }
        }
    }

    /// An index rebuilt in parts (keys spilled by part, each part filled in turn, the table
    /// released behind) answers every commitment as one built whole in round order: a repeated
    /// commitment keeps its first round, two commitments sharing the 80 bits of key and
    /// fingerprint are told apart, entries displaced across parts and around the end are found,
    /// and no spill file is left behind.
    #[test]
    fn an_index_rebuilt_in_parts_answers_as_one_built_whole() {
        const ROUNDS: u64 = 3000;
        let key = LogKey::from_bytes([9; 32]);
        let commitment = |r: u64| {
            let mut c = [0u8; COMMITMENT_LEN];
            // Homes crowded into 4099 slots from 6000 on in a table of 8192: probe chains are
            // long, cross parts and wrap around the end.
            let home = |r: u64| (r % 1500) * 0x9E37_79B9 % 4099 + 6000;
            c[4..12].copy_from_slice(&home(r).to_le_bytes());
            c[20..28].copy_from_slice(&(r % 1500).to_le_bytes());
            if r % 50 == 7 {
                // Same key and fingerprint as round r - 1, another commitment.
                c[4..12].copy_from_slice(&home(r - 1).to_le_bytes());
                c[30] = 1;
            }
            c[43] = 0xa5;
            c
        };
        let dir = tempfile::tempdir().unwrap();
        let mut files = CheckpointFiles::new(dir.path(), &key);
        let mut view = Projection::new(3);
        for round in 0..ROUNDS {
            view.apply(2 * round, &seal(round, commitment(round).to_vec(), 0))
                .unwrap();
        }
        files.write(&mut view, head(2 * ROUNDS)).unwrap();
        let first_round = |c: &Commitment| (0..ROUNDS).find(|&r| commitment(r) == *c).unwrap();
        let table = File::open(dir.path().join(ROUNDS_FILE)).unwrap();
        let slots = index::slots_for(ROUNDS);
        for part_slots in [slots, 1024, 256, 64] {
            files.rebuild_index_in_parts(ROUNDS, part_slots).unwrap();
            assert!(!dir.path().join(INDEX_SPILL_DIR).exists());
            let file = File::open(dir.path().join(INDEX_FILE)).unwrap();
            let found = FileSlots {
                file: &file,
                slots: files.extent.index_slots,
                salt: files.extent.index_salt,
            };
            assert_eq!(files.extent.index_slots, slots);
            assert_eq!(files.extent.index_entries, 1500, "parts of {part_slots}");
            for r in 0..ROUNDS {
                let c = commitment(r);
                let got = index::find(&found, &c, ROUNDS, |r| read_commitment(&table, r)).unwrap();
                assert_eq!(
                    got,
                    Some(first_round(&c)),
                    "round {r}, parts of {part_slots}"
                );
            }
            let mut other = commitment(5);
            other[31] = 9;
            let got = index::find(&found, &other, ROUNDS, |r| read_commitment(&table, r));
            assert_eq!(got.unwrap(), None);
        }
    }

    /// A kill part-way through a flush (rounds and index written, the index regrown, a half-written
    /// snapshot) leaves the previous checkpoint; catching up from it answers as a fold from scratch.
    #[test]
    fn an_interrupted_flush_leaves_the_previous_checkpoint_and_is_caught_up() {
        let key = LogKey::from_bytes([9; 32]);
        let mut all = Projection::new(3);
        fold_rounds(&mut all, 0, 3000);
        for steps in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            let mut files = CheckpointFiles::new(dir.path(), &key);
            let mut view = Projection::new(3);
            fold_rounds(&mut view, 0, 100);
            files.write(&mut view, head(200)).unwrap();
            // Step 1 inserts into the index in place (leftover slots past the checkpoint),
            // steps 2 and 3 overfill it and build a larger one.
            fold_rounds(&mut view, 100, if steps == 1 { 150 } else { 3000 });
            files.append_rounds(&view).unwrap();
            if steps >= 2 {
                files.rebuild_index(3000).unwrap();
            }
            if steps >= 3 {
                fs::write(dir.path().join("checkpoint.tmp"), b"half a snap").unwrap();
                // Killed while a rebuild in parts spilled its keys.
                let spill = dir.path().join(INDEX_SPILL_DIR);
                fs::create_dir(&spill).unwrap();
                fs::write(spill.join("3"), [7u8; 48]).unwrap();
            }
            drop(files);

            let mut files = CheckpointFiles::new(dir.path(), &key);
            let mut loaded = files
                .load(3)
                .unwrap()
                .expect("the previous checkpoint")
                .view;
            assert_eq!(loaded.next_round(), 100, "steps {steps}");
            assert!(!dir.path().join(INDEX_SPILL_DIR).exists(), "steps {steps}");
            assert_eq!(
                fs::metadata(dir.path().join(ROUNDS_FILE)).unwrap().len(),
                100 * ROUND_LEN as u64,
                "leftover rounds cut, steps {steps}"
            );
            fold_rounds(&mut loaded, 100, 3000);
            files.write(&mut loaded, head(6000)).unwrap();
            let reloaded = CheckpointFiles::new(dir.path(), &key)
                .load(3)
                .unwrap()
                .unwrap()
                .view;
            for r in (0..3000u64).step_by(37).chain([2999]) {
                let c = all.round_commitments(r, r).unwrap()[0];
                assert_eq!(loaded.status(&c), all.status(&c), "steps {steps} round {r}");
                assert_eq!(
                    reloaded.status(&c),
                    all.status(&c),
                    "steps {steps} round {r}"
                );
            }
            let unknown = [0x42; COMMITMENT_LEN];
            assert_eq!(reloaded.status(&unknown), Status::Unknown);
        }
    }

    /// A damaged or foreign index is never served: it is found at load and rebuilt from the
    /// (verified) round table.
    #[test]
    fn a_damaged_or_foreign_index_is_rebuilt_at_load() {
        let key = LogKey::from_bytes([9; 32]);
        let mut all = Projection::new(3);
        fold_rounds(&mut all, 0, 500);
        let make = |dir: &Path| {
            let mut files = CheckpointFiles::new(dir, &key);
            let mut view = Projection::new(3);
            fold_rounds(&mut view, 0, 500);
            files.write(&mut view, head(1000)).unwrap();
        };
        let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        make(dir.path());
        // Another calendar: as many rounds (an index of the same size), other commitments.
        let mut files = CheckpointFiles::new(other.path(), &key);
        let mut view = Projection::new(3);
        for round in 0..500u64 {
            let mut commitment = vec![0x5a; COMMITMENT_LEN];
            commitment[4..12].copy_from_slice(&(round * 0x7F4A_7C15).to_le_bytes());
            view.apply(round, &seal(round, commitment, 0)).unwrap();
        }
        files.write(&mut view, head(500)).unwrap();
        let index = dir.path().join(INDEX_FILE);
        let original = fs::read(&index).unwrap();
        let mut flipped = original.clone();
        flipped[8 * 77 + 3] ^= 4;
        // The other calendar's commitments in a table of our salt: every slot passes its check.
        let salt = {
            let mut files = CheckpointFiles::new(dir.path(), &key);
            files.load(3).unwrap().unwrap();
            files.extent.index_salt
        };
        let mut ours_salted = vec![0u8; original.len()];
        MapSlots(&mut ours_salted, salt).clear();
        let other_rounds = File::open(other.path().join(ROUNDS_FILE)).unwrap();
        for r in 0..500 {
            let c = read_commitment(&other_rounds, r).unwrap();
            let mut slots = MapSlots(&mut ours_salted, salt);
            index::insert(&mut slots, &c, r, |x| read_commitment(&other_rounds, x)).unwrap();
        }
        assert_eq!(index::scan(&ours_salted, salt).unwrap(), 500);
        let damages = [
            flipped,
            fs::read(other.path().join(INDEX_FILE)).unwrap(),
            vec![0; original.len()],
            ours_salted,
        ];
        for (i, bytes) in damages.into_iter().enumerate() {
            fs::write(&index, &bytes).unwrap();
            let view = CheckpointFiles::new(dir.path(), &key)
                .load(3)
                .unwrap()
                .unwrap()
                .view;
            assert!(
                fs::read(&index).unwrap() != bytes,
                "case {i}: index not rebuilt"
            );
            for r in (0..500u64).step_by(7) {
                let c = all.round_commitments(r, r).unwrap()[0];
                assert_eq!(view.status(&c), all.status(&c), "case {i} round {r}");
            }
        }
    }

    #[test]
    fn a_digest_index_of_other_digests_is_refused_whatever_its_salt() {
        let key = LogKey::from_bytes([9; 32]);
        let dir = tempfile::tempdir().unwrap();
        let mut files = CheckpointFiles::new(dir.path(), &key);
        let mut view = Projection::new(3);
        fold_rounds(&mut view, 0, 200);
        files.write(&mut view, head(400)).unwrap();
        let (slots, salt) = (files.extent.digest_slots, files.extent.digest_salt);
        // Another calendar's digests in a table of our size and salt: every slot passes its
        // check, and as many slots are in use.
        let mut foreign = vec![0u8; slot_offset(slots)];
        BufSlots(&mut foreign).clear_range(salt, 0..slots);
        for r in 0..200u64 {
            let h = digests::digest_hash(&[0x5a ^ r as u8; 31]);
            let key = digests::Key::new(&h, salt);
            digests::insert(&mut BufSlots(&mut foreign), key, r, salt).unwrap();
        }
        assert_eq!(digests::scan(&foreign, salt).unwrap(), 200);
        let path = dir.path().join(DIGESTS_FILE);
        let ours = fs::read(&path).unwrap();
        fs::write(&path, &foreign).unwrap();
        match CheckpointFiles::new(dir.path(), &key).load(3) {
            Err(CheckpointError::Invalid { why, .. }) => {
                assert!(why.contains("digest index does not match"), "{why}")
            }
            other => panic!("a foreign digest index was accepted: {other:?}"),
        }
        // Our own table back: it loads, and serves its digests.
        fs::write(&path, &ours).unwrap();
        let loaded = CheckpointFiles::new(dir.path(), &key)
            .load(3)
            .unwrap()
            .unwrap();
        assert_eq!(loaded.view.digest_round(&[7u8; 32]).unwrap(), Some(7));
    }

    #[test]
    fn a_table_sized_for_expected_entries_is_the_one_growth_would_reach() {
        for entries in [1, 3, 4, 1_000, 11_000_000, 12_582_912, 12_582_913] {
            let slots = fitting(entries);
            assert!(slots.is_power_of_two(), "{entries}");
            assert!(!index::overfull(entries, slots), "{entries}");
            assert!(!digests::overfull(entries, slots), "{entries}");
            assert!(
                index::overfull(entries, slots / 2),
                "{entries}: {slots} is too many"
            );
        }
        assert_eq!(fitting(0), 0);
    }

    #[test]
    fn a_snapshot_body_from_before_digest_samples_loads_without_them() {
        #[derive(Serialize)]
        struct Before {
            digests_total: u64,
            open_digests: u32,
            stamps: Stamps,
        }
        let before = Before {
            digests_total: 5,
            open_digests: 1,
            stamps: Stamps::new(3),
        };
        let body: Body = codec::decode(&codec::encode(&before).unwrap()).unwrap();
        assert_eq!((body.digests_total, body.open_digests), (5, 1));
        assert!(body.digest_samples.is_empty());
    }

    #[test]
    fn damage_another_key_or_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = LogKey::from_bytes([9; 32]);
        let mut files = CheckpointFiles::new(dir.path(), &key);
        let mut view = Projection::new(3);
        fold_rounds(&mut view, 0, 4);
        files.write(&mut view, head(8)).unwrap();

        let other = LogKey::from_bytes([1; 32]);
        let err = CheckpointFiles::new(dir.path(), &other)
            .load(3)
            .unwrap_err();
        assert!(err.to_string().contains("HMAC"), "{err}");
        let err = CheckpointFiles::new(dir.path(), &key).load(6).unwrap_err();
        assert!(err.to_string().contains("min-confirmations"), "{err}");

        let rounds = dir.path().join(ROUNDS_FILE);
        let mut bytes = fs::read(&rounds).unwrap();
        bytes[5] ^= 1;
        fs::write(&rounds, &bytes).unwrap();
        let err = CheckpointFiles::new(dir.path(), &key).load(3).unwrap_err();
        assert!(err.to_string().contains("round table"), "{err}");
        bytes[5] ^= 1;
        fs::write(&rounds, &bytes).unwrap();

        let snap = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = fs::read(&snap).unwrap();
        let n = bytes.len();
        bytes.truncate(n - 1);
        fs::write(&snap, &bytes).unwrap();
        assert!(CheckpointFiles::new(dir.path(), &key).load(3).is_err());

        fs::remove_file(&snap).unwrap();
        assert!(CheckpointFiles::new(dir.path(), &key)
            .load(3)
            .unwrap()
            .is_none());
    }
}
