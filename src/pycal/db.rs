//! The Python calendar's LevelDB `db`, read-only, and the `GET /timestamp` answers it gives.
//!
//! Every row is one node of the proof graph: the key is the node's message, the value
//! `varuint n_att, n_att × attestation, varuint n_ops, n_ops × op`; a child's message is the op
//! applied to the key (child keys are not stored). The Python server answers `GET /timestamp/<C>`
//! by rebuilding the tree below `C` row by row and serializing it canonically (attestations, then
//! ops, each sorted; `ff` before every item but the last; `00` before an attestation). A missing
//! row anywhere makes the whole answer "not found"; a row that does not parse, repeats an item or
//! is empty makes the Python request die without an answer. [`ProofDb::answer`] gives the same
//! bytes, or says which of the two failures happened.
//!
//! Speed: rows are read with point look-ups, and the serialization of every node is memoized, so
//! the nodes shared by many commitments (every node above a transaction's tip, the inner nodes of
//! its tree) are read once while their commitments come in journal order. The memo is bounded by
//! [`MEMO_BYTES`] and simply dropped when full: the worst case is reading a node again.
//!
//! rusty-leveldb opens tables only under `NNNNNN.ldb` names and, like any LevelDB, rewrites files
//! when it opens a database, so [`copy_db`] copies the database first, renaming `.sst` tables.
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rusty_leveldb::{LdbIterator, Options, DB};

use crate::ots::ser::Reader;
use crate::ots::{Attestation, Op};

/// Serialized bytes kept in the memo before it is dropped.
pub const MEMO_BYTES: usize = 128 << 20;
/// Deepest tree followed (Python's own recursion limit is 1000 frames).
pub const MAX_DEPTH: usize = 512;
/// LevelDB block cache.
const BLOCK_CACHE_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("LevelDB {}: {why}", path.display())]
    Level { why: String, path: PathBuf },
}

/// Copies the LevelDB directory `src` into `dst` (which must not exist), renaming `*.sst` tables
/// to `*.ldb`. Returns the bytes copied.
pub fn copy_db(src: &Path, dst: &Path) -> Result<u64, DbError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DbError::Io { path, source }
    };
    std::fs::create_dir(dst).map_err(io(dst))?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        if !entry.file_type().map_err(io(&entry.path()))?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let name = match name.strip_suffix(".sst") {
            Some(stem) => format!("{stem}.ldb"),
            None => name,
        };
        bytes += std::fs::copy(entry.path(), dst.join(&name)).map_err(io(&entry.path()))?;
    }
    Ok(bytes)
}

/// What the Python server would answer for one commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `200`: the serialized timestamp.
    Complete(Rc<[u8]>),
    /// A row on the tree is missing (the server says "not found", or pending from the journal).
    Missing { key: Vec<u8> },
    /// A row the server cannot use: its request dies without an answer.
    Bad { key: Vec<u8>, why: String },
}

/// The copied database, opened for look-ups.
pub struct ProofDb {
    db: DB,
    path: PathBuf,
    memo: HashMap<Box<[u8]>, Rc<[u8]>>,
    memo_bytes: usize,
    /// Rows read (a row read again after the memo was dropped counts again).
    pub rows_read: u64,
    /// Every key read, for counting the rows no journal commitment reaches.
    reached: Bloom,
}

impl ProofDb {
    /// Opens the copy at `path`; `expected_rows` sizes the filter of reached keys.
    pub fn open(path: &Path, expected_rows: u64) -> Result<ProofDb, DbError> {
        let opts = Options {
            create_if_missing: false,
            block_cache_capacity_bytes: BLOCK_CACHE_BYTES,
            ..Options::default()
        };
        let db = DB::open(path, opts).map_err(|e| DbError::Level {
            why: e.to_string(),
            path: path.into(),
        })?;
        Ok(ProofDb {
            db,
            path: path.to_owned(),
            memo: HashMap::new(),
            memo_bytes: 0,
            rows_read: 0,
            reached: Bloom::new(expected_rows),
        })
    }

    /// The Python server's answer for `commitment` (as it keys it: 44 or 36 bytes).
    pub fn answer(&mut self, commitment: &[u8]) -> Result<Answer, DbError> {
        self.node(commitment, 0)
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<bytes::Bytes>, DbError> {
        let snapshot = self.db.get_snapshot();
        let row = self
            .db
            .get_at(&snapshot, key)
            .map_err(|e| DbError::Level {
                why: e.to_string(),
                path: self.path.clone(),
            })?;
        if row.is_some() {
            self.rows_read += 1;
            self.reached.insert(key);
        }
        Ok(row)
    }

    fn node(&mut self, key: &[u8], depth: usize) -> Result<Answer, DbError> {
        if let Some(hit) = self.memo.get(key) {
            return Ok(Answer::Complete(hit.clone()));
        }
        let bad = |why: String| Ok(Answer::Bad {
            key: key.to_vec(),
            why,
        });
        if depth > MAX_DEPTH {
            return bad(format!("deeper than {MAX_DEPTH} nodes"));
        }
        let Some(value) = self.get(key)? else {
            return Ok(Answer::Missing { key: key.to_vec() });
        };
        let (atts, ops) = match parse_node(&value) {
            Ok(node) => node,
            Err(why) => return bad(why),
        };
        let items = atts.len() + ops.len();
        if items == 0 {
            return bad("a row with neither attestations nor operations".into());
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
            let child = match op.apply(key) {
                Ok(c) => c,
                Err(e) => return bad(format!("{} cannot apply: {e}", op.name())),
            };
            op.write(&mut out);
            match self.node(&child, depth + 1)? {
                Answer::Complete(bytes) => out.extend_from_slice(&bytes),
                other => return Ok(other),
            }
        }
        let out: Rc<[u8]> = out.into();
        self.remember(key, &out);
        Ok(Answer::Complete(out))
    }

    fn remember(&mut self, key: &[u8], bytes: &Rc<[u8]>) {
        if self.memo_bytes + bytes.len() > MEMO_BYTES {
            self.memo.clear();
            self.memo_bytes = 0;
        }
        self.memo_bytes += bytes.len() + key.len();
        self.memo.insert(key.into(), bytes.clone());
    }

    /// Walks every row; returns (rows, rows no answer read), the latter exact up to the false
    /// positives of the filter of reached keys ([`Bloom::FALSE_POSITIVE`]).
    pub fn count_unreached(&mut self) -> Result<(u64, u64), DbError> {
        let path = self.path.clone();
        let level = |e: rusty_leveldb::Status| DbError::Level {
            why: e.to_string(),
            path,
        };
        let mut it = self.db.new_iter().map_err(level)?;
        let (mut rows, mut unreached) = (0, 0);
        while it.advance() {
            if let Some((key, _)) = it.current() {
                rows += 1;
                unreached += u64::from(!self.reached.contains(&key));
            }
        }
        Ok((rows, unreached))
    }
}

/// Parses a row's value; bytes after the last op are ignored, as Python ignores them.
fn parse_node(value: &[u8]) -> Result<(Vec<Attestation>, Vec<Op>), String> {
    let mut r = Reader::new(value);
    let n = r.read_varuint().map_err(|e| e.to_string())?;
    let mut atts = Vec::new();
    for _ in 0..n {
        let att = Attestation::read(&mut r).map_err(|e| e.to_string())?;
        if atts.contains(&att) {
            return Err("a row repeats an attestation".into());
        }
        atts.push(att);
    }
    let n = r.read_varuint().map_err(|e| e.to_string())?;
    let mut ops = Vec::new();
    for _ in 0..n {
        let offset = r.position();
        let tag = r.read_u8().map_err(|e| e.to_string())?;
        let op = Op::read_after_tag(&mut r, tag, offset).map_err(|e| e.to_string())?;
        if ops.contains(&op) {
            return Err("a row repeats an operation".into());
        }
        ops.push(op);
    }
    atts.sort();
    ops.sort();
    Ok((atts, ops))
}

/// A Bloom filter of the keys read, about 16 bits per expected key (at most 256 MiB), three
/// probes: a false positive rate near 0.2% at the expected count.
struct Bloom {
    bits: Vec<u64>,
}

impl Bloom {
    /// The false positive rate at the expected number of keys.
    const FALSE_POSITIVE: f64 = 0.002;
    const MAX_WORDS: u64 = (256 << 20) / 8;

    fn new(expected: u64) -> Bloom {
        let words = (expected.max(1024) / 4).min(Bloom::MAX_WORDS);
        Bloom {
            bits: vec![0; words as usize],
        }
    }

    fn probes(&self, key: &[u8]) -> [usize; 3] {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let a = h.finish();
        let b = a.rotate_left(32) | 1;
        let n = self.bits.len() as u64 * 64;
        [0u64, 1, 2].map(|i| (a.wrapping_add(i.wrapping_mul(b)) % n) as usize)
    }

    fn insert(&mut self, key: &[u8]) {
        for bit in self.probes(key) {
            self.bits[bit / 64] |= 1 << (bit % 64);
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.probes(key)
            .iter()
            .all(|&bit| self.bits[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// The documented false positive rate of the unreached-row count.
pub fn unreached_false_positive_rate() -> f64 {
    Bloom::FALSE_POSITIVE
}
