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
//! Speed: the rows are first read in key order into a sorted table ([`ProofDb::build`]), then
//! looked up by binary search, and the serialization of every node is memoized, so
//! the nodes shared by many commitments (every node above a transaction's tip, the inner nodes of
//! its tree) are read once while their commitments come in journal order. The memo is bounded by
//! [`MEMO_BYTES`] and simply dropped when full: the worst case is reading a node again.
//!
//! rusty-leveldb opens tables only under `NNNNNN.ldb` names and, like any LevelDB, rewrites files
//! when it opens a database, so [`copy_db`] copies the database first, renaming `.sst` tables.
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rusty_leveldb::{LdbIterator, Options, DB};
use sha2::Digest;

use crate::log::mmap::Mapped;

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

/// Entries of the row index between two in-memory fences.
const FENCE_EVERY: usize = 1024;
/// Bytes per index entry: the key's first 8 bytes (big-endian, zero-padded) and the row's offset.
const INDEX_ENTRY: usize = 16;

/// The database's rows, read once in key order from the copy into a flat table and its index
/// (scratch files beside the copy), then looked up by binary search through memory maps.
/// rusty-leveldb's own point look-ups cost about 16 µs each (every level's table is searched, and
/// py-leveldb writes no Bloom filters); a sequential pass and a sorted table cost about 1 µs per row.
pub struct ProofDb {
    data: Mapped,
    index: Mapped,
    /// Key prefix of every [`FENCE_EVERY`]th index entry.
    fences: Vec<u64>,
    rows: usize,
    /// One bit per row: read while answering (exact count of rows no commitment reaches).
    reached: Vec<u64>,
    memo: HashMap<Box<[u8]>, Rc<[u8]>>,
    memo_bytes: usize,
    /// Rows read (a row read again after the memo was dropped counts again).
    pub rows_read: u64,
}

fn prefix(key: &[u8]) -> u64 {
    let mut p = [0u8; 8];
    let n = key.len().min(8);
    p[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(p)
}

impl ProofDb {
    /// Reads every row of the LevelDB copy at `copy` in key order into `scratch/rows` and
    /// `scratch/rows.index`, and maps them. `progress(rows)` is called now and then.
    pub fn build(
        copy: &Path,
        scratch: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ProofDb, DbError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| DbError::Io { path, source }
        };
        let level = |e: rusty_leveldb::Status| DbError::Level {
            why: e.to_string(),
            path: copy.to_owned(),
        };
        let opts = Options {
            create_if_missing: false,
            block_cache_capacity_bytes: BLOCK_CACHE_BYTES,
            ..Options::default()
        };
        let mut db = DB::open(copy, opts).map_err(level)?;
        let (data_path, index_path) = (scratch.join("rows"), scratch.join("rows.index"));
        let mut data =
            BufWriter::with_capacity(1 << 20, File::create(&data_path).map_err(io(&data_path))?);
        let mut index =
            BufWriter::with_capacity(1 << 20, File::create(&index_path).map_err(io(&index_path))?);
        let mut fences = Vec::new();
        let (mut offset, mut rows) = (0u64, 0usize);
        let mut it = db.new_iter().map_err(level)?;
        while it.advance() {
            let Some((key, value)) = it.current() else {
                continue;
            };
            if rows % FENCE_EVERY == 0 {
                fences.push(prefix(&key));
            }
            index
                .write_all(&prefix(&key).to_be_bytes())
                .map_err(io(&index_path))?;
            index
                .write_all(&offset.to_le_bytes())
                .map_err(io(&index_path))?;
            let head = [
                (key.len() as u32).to_le_bytes(),
                (value.len() as u32).to_le_bytes(),
            ]
            .concat();
            for part in [&head[..], &key, &value] {
                data.write_all(part).map_err(io(&data_path))?;
            }
            offset += (head.len() + key.len() + value.len()) as u64;
            rows += 1;
            if rows % (1 << 20) == 0 {
                progress(rows as u64);
            }
        }
        drop(it);
        drop(db);
        data.flush().map_err(io(&data_path))?;
        index.flush().map_err(io(&index_path))?;
        drop((data, index));
        let mapped = |p: &Path| {
            Mapped::scratch(p).map_err(|e| DbError::Io {
                path: p.to_owned(),
                source: std::io::Error::other(e.to_string()),
            })
        };
        Ok(ProofDb {
            data: mapped(&data_path)?,
            index: mapped(&index_path)?,
            fences,
            rows,
            reached: vec![0; rows.div_ceil(64)],
            memo: HashMap::new(),
            memo_bytes: 0,
            rows_read: 0,
        })
    }

    /// Rows in the database.
    pub fn rows(&self) -> u64 {
        self.rows as u64
    }

    fn entry(&self, i: usize) -> (u64, usize) {
        let e = &self.index[i * INDEX_ENTRY..(i + 1) * INDEX_ENTRY];
        let p = u64::from_be_bytes(e[..8].try_into().unwrap_or_default());
        let o = u64::from_le_bytes(e[8..].try_into().unwrap_or_default());
        (p, o as usize)
    }

    /// Key and value of the row at `offset` of the table.
    fn row_at(&self, offset: usize) -> (&[u8], &[u8]) {
        let d = &self.data[offset..];
        let klen = u32::from_le_bytes(d[..4].try_into().unwrap_or_default()) as usize;
        let vlen = u32::from_le_bytes(d[4..8].try_into().unwrap_or_default()) as usize;
        (&d[8..8 + klen], &d[8 + klen..8 + klen + vlen])
    }

    /// The row of `key`: its number and value.
    fn lookup(&self, key: &[u8]) -> Option<(usize, &[u8])> {
        let p = prefix(key);
        let block = self.fences.partition_point(|&f| f < p).saturating_sub(1);
        let end = (self.fences.partition_point(|&f| f <= p) * FENCE_EVERY).min(self.rows);
        let (mut lo, mut hi) = (block * FENCE_EVERY, end);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.entry(mid).0 < p {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut i = lo;
        while i < self.rows {
            let (ep, offset) = self.entry(i);
            if ep != p {
                return None;
            }
            let (k, v) = self.row_at(offset);
            match k.cmp(key) {
                std::cmp::Ordering::Equal => return Some((i, v)),
                std::cmp::Ordering::Greater => return None,
                std::cmp::Ordering::Less => i += 1,
            }
        }
        None
    }

    /// The Python server's answer for `commitment` (as it keys it: 44 or 36 bytes).
    pub fn answer(&mut self, commitment: &[u8]) -> Result<Answer, DbError> {
        Ok(self.node(commitment, 0))
    }

    /// Marks a row read.
    fn reach(&mut self, row: usize) {
        self.rows_read += 1;
        self.reached[row / 64] |= 1 << (row % 64);
    }

    /// The serialization below `key`. Chains of one-op rows (nearly every row) are followed in a
    /// loop, appending each op's bytes; the serializations of the 64-byte nodes met on the way
    /// (the concatenations two children share) are memoized when the chain ends. Any other row
    /// goes through [`ProofDb::general_node`].
    fn node(&mut self, key: &[u8], depth: usize) -> Answer {
        let mut out = Vec::with_capacity(512);
        let mut marks: Vec<(Vec<u8>, usize)> = Vec::new();
        let mut cur = key.to_vec();
        let mut next = Vec::with_capacity(128);
        for level in depth.. {
            if let Some(hit) = self.memo.get(&cur[..]) {
                out.extend_from_slice(hit);
                break;
            }
            if level > MAX_DEPTH {
                return Answer::Bad {
                    key: cur,
                    why: format!("deeper than {MAX_DEPTH} nodes"),
                };
            }
            let Some((row, value)) = self.lookup(&cur) else {
                return Answer::Missing { key: cur };
            };
            let Some(op_len) = single_op(value, &cur, &mut next) else {
                match self.general_node(&cur, level) {
                    Answer::Complete(bytes) => out.extend_from_slice(&bytes),
                    other => return other,
                }
                break;
            };
            out.extend_from_slice(&value[2..2 + op_len]);
            self.reach(row);
            if cur.len() == 64 {
                marks.push((cur.clone(), out.len() - op_len));
            }
            std::mem::swap(&mut cur, &mut next);
        }
        for (k, at) in marks {
            self.remember(&k, &Rc::from(&out[at..]));
        }
        Answer::Complete(Rc::from(out))
    }

    /// Any row: attestations and ops sorted, `ff` before every item but the last.
    fn general_node(&mut self, key: &[u8], depth: usize) -> Answer {
        let bad = |why: String| Answer::Bad {
            key: key.to_vec(),
            why,
        };
        let Some((row, value)) = self.lookup(key) else {
            return Answer::Missing { key: key.to_vec() };
        };
        let parsed = parse_node(value);
        self.reach(row);
        let (atts, ops) = match parsed {
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
            match self.node(&child, depth + 1) {
                Answer::Complete(bytes) => out.extend_from_slice(&bytes),
                other => return other,
            }
        }
        Answer::Complete(Rc::from(out))
    }

    fn remember(&mut self, key: &[u8], bytes: &Rc<[u8]>) {
        if self.memo_bytes + bytes.len() > MEMO_BYTES {
            self.memo.clear();
            self.memo_bytes = 0;
        }
        self.memo_bytes += bytes.len() + key.len();
        self.memo.insert(key.into(), bytes.clone());
    }

    /// Rows no answer has read so far.
    pub fn unreached(&self) -> u64 {
        self.rows as u64
            - self
                .reached
                .iter()
                .map(|w| u64::from(w.count_ones()))
                .sum::<u64>()
    }
}

/// The fast path for a row of exactly one `sha256`, `append` or `prepend` and no attestation
/// (what the Python stamper writes for all but the attested root): writes the child message
/// into `child` and returns the length of the op's encoding (after the two count bytes). `None`
/// for anything else, including arguments or results out of the wire format's bounds.
fn single_op(value: &[u8], key: &[u8], child: &mut Vec<u8>) -> Option<usize> {
    use crate::ots::op::{
        MAX_ARG_LEN, MAX_MSG_LEN, MAX_RESULT_LEN, TAG_APPEND, TAG_PREPEND, TAG_SHA256,
    };
    if value.len() < 3 || value[0] != 0 || value[1] != 1 || key.len() > MAX_MSG_LEN {
        return None;
    }
    child.clear();
    match value[2] {
        TAG_SHA256 => {
            child.extend_from_slice(&sha2::Sha256::digest(key));
            Some(1)
        }
        tag @ (TAG_APPEND | TAG_PREPEND) => {
            let mut r = Reader::new(&value[3..]);
            let arg = r.read_varbytes(1, MAX_ARG_LEN).ok()?;
            if key.len() + arg.len() > MAX_RESULT_LEN {
                return None;
            }
            if tag == TAG_APPEND {
                child.extend_from_slice(key);
                child.extend_from_slice(arg);
            } else {
                child.extend_from_slice(arg);
                child.extend_from_slice(key);
            }
            Some(1 + r.position())
        }
        _ => None,
    }
}

/// Parses a row's value; bytes after the last op are ignored, as Python ignores them. Public for
/// the fault matrix's parser row.
pub fn parse_node(value: &[u8]) -> Result<(Vec<Attestation>, Vec<Op>), String> {
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
