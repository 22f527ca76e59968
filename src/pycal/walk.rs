//! The Python server's `GET /timestamp` answers rebuilt from the row table ([`ProofDb`]), for
//! `otsctl import-otsd`: one [`Walker`] per thread, each answering the commitments of one journal
//! chunk at a time.
//!
//! The Python server rebuilds the tree below a commitment row by row and serializes it
//! canonically (attestations, then ops, each sorted; `ff` before every item but the last; `00`
//! before an attestation). A missing row anywhere makes the whole answer "not found"; a row that
//! does not parse, repeats an item or is empty makes the Python request die without an answer.
//! [`Walker::answer`] gives the same bytes, or says which of the two failures happened.
//!
//! An answer is split where [`tree_end`] splits it: the *tree* part (`sha256`, and
//! `append`/`prepend` of 32 bytes), different for every commitment, and the rest, from the first
//! other node on (normally the stamping transaction's tip) up to the block header attestation,
//! which all commitments of a transaction share. The walker follows the tree part row by row (the
//! fast path: rows of one such op, nearly every row) and rebuilds the rest once per chunk for
//! each node where a tree part ends ([`End`]). The tree part from each 64-byte node (the
//! concatenation two children share) to its end is memoized, so that every inner node of a
//! transaction's tree is read once per chunk while its commitments come in journal order.
//!
//! Before a batch of commitments is walked, [`Walker::warm`] brings the rows their walks will
//! read into the cache, level by level: every key of a level is hashed and its index slot
//! prefetched, then every slot's row prefetched, then the rows read and the next level's keys
//! computed. The cache misses of a level overlap instead of stalling the walk one at a time. It
//! only reads; the answers do not depend on it.
//!
//! Memory: the memo, the arena of tree parts it points into and the ends are cleared by
//! [`Walker::reset`] at every chunk, so they are bounded by a chunk's commitments. The bitmap of
//! rows read is one bit per index slot.
use std::collections::HashMap;

use super::db::{parse_node, single_op, ProofDb, MAX_DEPTH};
use crate::log::mmap::prefetch;

/// Length of the memoized nodes: the concatenation of two 32-byte hashes.
const MEMO_KEY: usize = 64;
/// Commitments warmed at once ([`Walker::warm`]): the few cache lines each of their rows takes
/// stay in the core's own cache until they are walked.
pub const WARM_BATCH: usize = 256;
/// Tree levels warmed above each commitment (a Python stamping transaction of a million
/// commitments has 20).
const WARM_LEVELS: usize = 40;

/// Why a commitment has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// A row on the tree is missing (the server says "not found"; pending from the journal).
    Missing,
    /// A row the server cannot use (its request dies without an answer).
    Bad { key: Vec<u8>, why: String },
}

/// A commitment's answer: `tree ++ extra ++ suffix`. `tree ++ extra` is the part before
/// [`tree_end`]; `suffix` is shared by every commitment whose walk ended at the same node, `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof<'w> {
    pub tree: &'w [u8],
    pub extra: &'w [u8],
    pub suffix: &'w [u8],
    pub end: u32,
}

/// The answer below a node where a tree part ends, split at [`tree_end`].
type End = Result<(Vec<u8>, Vec<u8>), Fail>;

/// The memo's hasher: its keys are hash concatenations, so their first 8 bytes are hash enough.
#[derive(Default, Clone, Copy)]
struct FirstWord;

impl std::hash::BuildHasher for FirstWord {
    type Hasher = WordHasher;
    fn build_hasher(&self) -> WordHasher {
        WordHasher(0)
    }
}

struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut w = [0u8; 8];
        let n = bytes.len().min(8);
        w[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(w);
    }
}

/// Rebuilds answers from a shared row table (see the module doc).
pub struct Walker<'t> {
    db: &'t ProofDb,
    /// 64-byte node -> its tree part to the end (`arena[at..at + len]`) and the end.
    memo: HashMap<[u8; MEMO_KEY], (u32, u32, u32), FirstWord>,
    arena: Vec<u8>,
    /// End node -> index in `ends`.
    end_ids: HashMap<Vec<u8>, u32>,
    ends: Vec<End>,
    /// One bit per index slot: the rows read.
    reached: Vec<u64>,
    /// Rows read (a row read again in another chunk counts again).
    pub rows_read: u64,
    tree: Vec<u8>,
    marks: Vec<([u8; MEMO_KEY], usize)>,
    cur: Vec<u8>,
    next: Vec<u8>,
    /// [`Walker::warm`]'s keys of a level (at most [`MEMO_KEY`] bytes: longer ones are not
    /// warmed), of the next level, and the hashes of a level's keys.
    warm_keys: Vec<([u8; MEMO_KEY], u8)>,
    warm_next: Vec<([u8; MEMO_KEY], u8)>,
    warm_hashes: Vec<u64>,
}

impl<'t> Walker<'t> {
    pub fn new(db: &'t ProofDb) -> Walker<'t> {
        Walker {
            db,
            memo: HashMap::default(),
            arena: Vec::new(),
            end_ids: HashMap::new(),
            ends: Vec::new(),
            reached: vec![0; db.slots().div_ceil(64)],
            rows_read: 0,
            tree: Vec::with_capacity(1024),
            marks: Vec::new(),
            cur: Vec::with_capacity(128),
            next: Vec::with_capacity(128),
            warm_keys: Vec::with_capacity(WARM_BATCH),
            warm_next: Vec::with_capacity(WARM_BATCH),
            warm_hashes: Vec::with_capacity(WARM_BATCH),
        }
    }

    /// Brings into the cache the rows that walking `commitments` will read (see the module doc):
    /// the tree part above each one, level by level, up to [`WARM_LEVELS`] levels, skipping
    /// nodes the memo already holds and a node repeated right after itself (the two children of
    /// a pair meet there).
    pub fn warm<'c>(&mut self, commitments: impl Iterator<Item = &'c [u8]>) {
        let db = self.db;
        self.warm_keys.clear();
        for c in commitments {
            if let Some(k) = short_key(c) {
                self.warm_keys.push(k);
            }
        }
        for _ in 0..WARM_LEVELS {
            if self.warm_keys.is_empty() {
                break;
            }
            self.warm_hashes.clear();
            for (k, len) in &self.warm_keys {
                let (hash, slot) = db.warm_slot(&k[..usize::from(*len)]);
                if let Some(word) = self.reached.get(slot / 64) {
                    prefetch(word);
                }
                self.warm_hashes.push(hash);
            }
            for &h in &self.warm_hashes {
                db.warm_row(h);
            }
            self.warm_next.clear();
            for (k, len) in &self.warm_keys {
                let key = &k[..usize::from(*len)];
                if key.len() == MEMO_KEY && self.memo.contains_key(k) {
                    continue;
                }
                let Some((_, value)) = db.lookup(key) else {
                    continue;
                };
                let Some(op_len) = single_op(value, key, &mut self.next) else {
                    continue;
                };
                if !is_tree_item(&value[2..2 + op_len]) {
                    continue;
                }
                let Some(child) = short_key(&self.next) else {
                    continue;
                };
                if self.warm_next.last() != Some(&child) {
                    self.warm_next.push(child);
                }
            }
            std::mem::swap(&mut self.warm_keys, &mut self.warm_next);
        }
    }

    /// Forgets the memo and the ends (at the start of each chunk; end numbers start again at 0).
    pub fn reset(&mut self) {
        self.memo.clear();
        self.arena.clear();
        self.end_ids.clear();
        self.ends.clear();
    }

    /// The bitmap of rows read (one bit per index slot), for [`ProofDb::unreached`].
    pub fn into_reached(self) -> Vec<u64> {
        self.reached
    }

    fn reach(&mut self, slot: usize) {
        self.rows_read += 1;
        self.reached[slot / 64] |= 1 << (slot % 64);
    }

    /// The Python server's answer for `commitment` (as it keys it: 44 or 36 bytes).
    pub fn answer(&mut self, commitment: &[u8]) -> Result<Proof<'_>, Fail> {
        let db = self.db;
        self.tree.clear();
        self.marks.clear();
        self.cur.clear();
        self.cur.extend_from_slice(commitment);
        let mut level = 0;
        let end = loop {
            if let Ok(k) = <&[u8; MEMO_KEY]>::try_from(&self.cur[..]) {
                if let Some(&(at, len, end)) = self.memo.get(k) {
                    let (at, len) = (at as usize, len as usize);
                    self.tree.extend_from_slice(&self.arena[at..at + len]);
                    break end;
                }
            }
            if level > MAX_DEPTH {
                return Err(Fail::Bad {
                    key: self.cur.clone(),
                    why: format!("deeper than {MAX_DEPTH} nodes"),
                });
            }
            let Some((slot, value)) = db.lookup(&self.cur) else {
                return Err(Fail::Missing);
            };
            match single_op(value, &self.cur, &mut self.next) {
                Some(op_len) if is_tree_item(&value[2..2 + op_len]) => {
                    self.tree.extend_from_slice(&value[2..2 + op_len]);
                    self.reach(slot);
                    if let Ok(k) = <[u8; MEMO_KEY]>::try_from(&self.cur[..]) {
                        self.marks.push((k, self.tree.len() - op_len));
                    }
                    std::mem::swap(&mut self.cur, &mut self.next);
                    level += 1;
                }
                _ => break self.end_at(level),
            }
        };
        if !self.marks.is_empty() {
            let base = self.arena.len();
            self.arena.extend_from_slice(&self.tree);
            let len = self.tree.len();
            for (k, at) in self.marks.drain(..) {
                self.memo
                    .insert(k, ((base + at) as u32, (len - at) as u32, end));
            }
        }
        match &self.ends[end as usize] {
            Ok((extra, suffix)) => Ok(Proof {
                tree: &self.tree,
                extra,
                suffix,
                end,
            }),
            Err(fail) => Err(fail.clone()),
        }
    }

    /// The end at `self.cur` (reached at depth `level`), rebuilt the first time in a chunk.
    fn end_at(&mut self, level: usize) -> u32 {
        if let Some(&id) = self.end_ids.get(&self.cur) {
            return id;
        }
        let key = self.cur.clone();
        let end = self.node(&key, level).map(|bytes| {
            let at = tree_end(&bytes);
            (bytes[..at].to_vec(), bytes[at..].to_vec())
        });
        let id = self.ends.len() as u32;
        self.ends.push(end);
        self.end_ids.insert(key, id);
        id
    }

    /// The serialization below `key`. Chains of one-op rows are followed in a loop, appending
    /// each op's bytes; any other row goes through [`Walker::general_node`].
    fn node(&mut self, key: &[u8], depth: usize) -> Result<Vec<u8>, Fail> {
        let db = self.db;
        let mut out = Vec::with_capacity(512);
        let mut cur = key.to_vec();
        let mut next = Vec::with_capacity(128);
        for level in depth.. {
            if level > MAX_DEPTH {
                return Err(Fail::Bad {
                    key: cur,
                    why: format!("deeper than {MAX_DEPTH} nodes"),
                });
            }
            let Some((slot, value)) = db.lookup(&cur) else {
                return Err(Fail::Missing);
            };
            let Some(op_len) = single_op(value, &cur, &mut next) else {
                out.extend_from_slice(&self.general_node(&cur, level)?);
                break;
            };
            out.extend_from_slice(&value[2..2 + op_len]);
            self.reach(slot);
            std::mem::swap(&mut cur, &mut next);
        }
        Ok(out)
    }

    /// Any row: attestations and ops sorted, `ff` before every item but the last.
    fn general_node(&mut self, key: &[u8], depth: usize) -> Result<Vec<u8>, Fail> {
        let bad = |why: String| Fail::Bad {
            key: key.to_vec(),
            why,
        };
        let Some((slot, value)) = self.db.lookup(key) else {
            return Err(Fail::Missing);
        };
        let parsed = parse_node(value);
        self.reach(slot);
        let (atts, ops) = parsed.map_err(bad)?;
        let items = atts.len() + ops.len();
        if items == 0 {
            return Err(bad("a row with neither attestations nor operations".into()));
        }
        let mut out = Vec::new();
        let mut written = 0;
        for att in &atts {
            written += 1;
            if written < items {
                out.push(0xff);
            }
            out.push(0x00);
            att.write(&mut out);
        }
        for op in &ops {
            written += 1;
            if written < items {
                out.push(0xff);
            }
            let child = op
                .apply(key)
                .map_err(|e| bad(format!("{} cannot apply: {e}", op.name())))?;
            op.write(&mut out);
            out.extend_from_slice(&self.node(&child, depth + 1)?);
        }
        Ok(out)
    }
}

/// A key of at most [`MEMO_KEY`] bytes in a fixed array, with its length.
fn short_key(key: &[u8]) -> Option<([u8; MEMO_KEY], u8)> {
    let mut k = [0u8; MEMO_KEY];
    k.get_mut(..key.len())?.copy_from_slice(key);
    Some((k, key.len() as u8))
}

/// `sha256`, or an `append`/`prepend` of 32 bytes, as [`tree_end`] reads them.
fn is_tree_item(op: &[u8]) -> bool {
    use crate::ots::op::{TAG_APPEND, TAG_PREPEND, TAG_SHA256};
    match op {
        [TAG_SHA256] => true,
        [TAG_APPEND | TAG_PREPEND, 32, ..] => op.len() == 34,
        _ => false,
    }
}

/// Where the Merkle-tree part of a Python proof ends: the offset of its first item that is not a
/// `sha256` or an `append`/`prepend` of 32 bytes (the transaction's tip meets the bytes before it
/// in the transaction there). Everything from there on is the same for every commitment of the
/// transaction.
pub fn tree_end(proof: &[u8]) -> usize {
    use crate::ots::op::{TAG_APPEND, TAG_PREPEND, TAG_SHA256};
    let mut i = 0;
    while i < proof.len() {
        match proof[i] {
            TAG_SHA256 => i += 1,
            TAG_APPEND | TAG_PREPEND if proof.get(i + 1) == Some(&32) && i + 34 <= proof.len() => {
                i += 34
            }
            _ => return i,
        }
    }
    i
}
