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
//! Speed: every table file is read straight from its bytes ([`super::ldb`]), several at once,
//! each thread decoding its tables' rows straight into its own row file (a scratch file beside
//! the copy, or anonymous memory on huge pages); then the same threads insert the rows they read,
//! and only those, into one shared hash index ([`ProofDb::build`]). The table is read-only
//! afterwards and shared by the threads that rebuild the answers ([`super::walk`]).
//!
//! rusty-leveldb opens tables only under `NNNNNN.ldb` names and, like any LevelDB, rewrites files
//! when it opens a database, so [`copy_db`] makes a copy first: tables, which LevelDB never
//! changes once written, are hard-linked (renamed `.sst` to `.ldb`), the other files copied.
//! rusty-leveldb then opens the copy once, which writes any rows still in the write-ahead log into
//! a table and deletes the tables no longer live, so that afterwards the copy's `.ldb` files are
//! exactly the database.
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rusty_leveldb::{Options, DB};
use sha2::Digest;

use crate::log::mmap::{prefetch, Anon, Mapped, Slots};

use crate::ots::ser::Reader;
use crate::ots::{Attestation, Op};

/// Deepest tree followed (Python's own recursion limit is 1000 frames).
pub const MAX_DEPTH: usize = 512;

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

/// Copies the LevelDB directory `src` into `dst` (which must not exist): tables are hard-linked
/// (copied when the link fails, e.g. across file systems), `*.sst` renamed to `*.ldb`, the other
/// files copied. Returns the bytes copied and the bytes linked.
pub fn copy_db(src: &Path, dst: &Path) -> Result<(u64, u64), DbError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DbError::Io { path, source }
    };
    std::fs::create_dir(dst).map_err(io(dst))?;
    let (mut copied, mut linked) = (0, 0);
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        if !entry.file_type().map_err(io(&entry.path()))?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let (name, table) = match name.strip_suffix(".sst") {
            Some(stem) => (format!("{stem}.ldb"), true),
            None => (name.clone(), name.ends_with(".ldb")),
        };
        let to = dst.join(&name);
        if table && std::fs::hard_link(entry.path(), &to).is_ok() {
            linked += entry.metadata().map_err(io(&entry.path()))?.len();
            continue;
        }
        copied += std::fs::copy(entry.path(), &to).map_err(io(&entry.path()))?;
    }
    Ok((copied, linked))
}

/// Bytes before a row's key in a row file: `u64 LE sequence << 8 | type, u32 LE key length,
/// u32 LE value length`.
const ROW_HEAD: usize = 16;
/// An index slot (a `u64`, little-endian in the scratch file): 0 when empty, else
/// `fingerprint << ENTRY_BITS | entry + 1`, where `entry = row file << ROW_FILE_SHIFT | offset`
/// and the fingerprint is the low [`FP_BITS`] bits of the key's hash, so that a probe reads a row
/// only when its fingerprint matches (nearly always the row looked for).
const SLOT: usize = 8;
const ROW_FILE_SHIFT: u32 = 40;
/// Most row files (what `ENTRY_BITS - ROW_FILE_SHIFT` bits can number, the `+ 1` included).
const MAX_ROW_FILES: usize = 15;
/// Index insertions in flight per building thread: each slot is prefetched this many rows ahead.
const INSERT_AHEAD: usize = 16;
const ENTRY_BITS: u32 = 44;
const FP_BITS: u32 = 64 - ENTRY_BITS;
/// Most threads reading tables and building the index.
pub const MAX_THREADS: usize = 8;
/// LevelDB's type byte of a deletion.
const DELETION: u64 = 0;

/// The database's rows: every table read into row files (scratch files beside the copy, mapped,
/// or anonymous memory), and an open-addressing hash index over them (likewise, at most 3/4
/// full; linear probing). When a key has several versions (overwritten in a newer table) the one
/// with the highest sequence number wins, and a deletion hides the key, as in LevelDB.
pub struct ProofDb {
    row_files: Vec<Store>,
    index: Slots,
    slot_bits: u32,
    /// Keys with a value.
    rows: usize,
}

/// The index hash of a key: its last and first 8 bytes and its length, mixed (keys are hashes,
/// or a time followed by hashes).
fn key_hash(key: &[u8]) -> u64 {
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        let n = b.len().min(8);
        w[..n].copy_from_slice(&b[..n]);
        u64::from_le_bytes(w)
    };
    let tail = &key[key.len().saturating_sub(8)..];
    let mut x = word(tail) ^ word(key).rotate_left(29) ^ (key.len() as u64).rotate_left(47);
    x = (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 32)
}

/// A row of a row file: key, tag, value.
fn row_in(file: &[u8], offset: usize) -> (&[u8], u64, &[u8]) {
    let d = &file[offset..];
    let tag = u64::from_le_bytes(d[..8].try_into().unwrap_or_default());
    let klen = u32::from_le_bytes(d[8..12].try_into().unwrap_or_default()) as usize;
    let vlen = u32::from_le_bytes(d[12..16].try_into().unwrap_or_default()) as usize;
    let k = &d[ROW_HEAD..ROW_HEAD + klen];
    (k, tag, &d[ROW_HEAD + klen..ROW_HEAD + klen + vlen])
}

/// Geometry of the index: `slot_bits` bits of slot number, taken from the hash's top bits.
#[derive(Clone, Copy)]
struct Probe {
    slot_bits: u32,
}

impl Probe {
    fn first(self, hash: u64) -> usize {
        (hash >> (64 - self.slot_bits)) as usize
    }
    fn next(self, slot: usize) -> usize {
        (slot + 1) & ((1usize << self.slot_bits) - 1)
    }
}

fn read_slot(index: &[AtomicU64], slot: usize) -> u64 {
    u64::from_le(index[slot].load(Ordering::Relaxed))
}

impl ProofDb {
    /// Reads every row of the LevelDB copy at `copy` into row files and a hash index in
    /// `scratch`, and maps them, counting the tables in `progress` (for a display on another
    /// thread). Row files and index are kept in memory instead when they fit in `budget` bytes
    /// (see [`memory_budget`]).
    pub fn build(
        copy: &Path,
        scratch: &Path,
        progress: &TableProgress,
        budget: u64,
    ) -> Result<ProofDb, DbError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_THREADS);
        ProofDb::build_with(
            copy,
            scratch,
            progress,
            budget,
            threads,
            ROW_TABLE_EXPANSION,
        )
    }

    /// [`ProofDb::build`] with `threads` threads, reserving memory for `expansion` bytes of rows
    /// per byte of table.
    fn build_with(
        copy: &Path,
        scratch: &Path,
        progress: &TableProgress,
        budget: u64,
        threads: usize,
        expansion: u64,
    ) -> Result<ProofDb, DbError> {
        settle(copy)?;
        let tables = live_tables(copy)?;
        progress.total.store(tables.len() as u64, Ordering::Relaxed);
        let table_bytes: u64 = tables.iter().map(|(_, len)| len).sum();
        let row_estimate = table_bytes.saturating_mul(expansion);
        let in_memory = row_estimate <= budget;
        let reserve = in_memory.then_some(row_estimate as usize);
        let read = read_tables(&tables, scratch, threads, reserve, &progress.read)?;
        let entries: u64 = read.iter().flatten().map(|(_, n)| n).sum();
        let row_bytes: u64 = read.iter().flatten().map(|(s, _)| s.len() as u64).sum();
        let mut owned = Vec::with_capacity(read.len());
        let mut row_files = Vec::new();
        for files in read {
            owned.push(row_files.len()..row_files.len() + files.len());
            row_files.extend(files.into_iter().map(|(s, _)| s));
        }
        if row_files.len() > MAX_ROW_FILES {
            return Err(DbError::Level {
                why: format!("more than {MAX_ROW_FILES} row files"),
                path: scratch.to_owned(),
            });
        }
        let wanted = (entries as usize).saturating_mul(4) / 3 + 1;
        let slot_bits = (usize::BITS - wanted.leading_zeros()).max(6);
        let index_bytes = (SLOT as u64) << slot_bits;
        let index = if row_bytes.saturating_add(index_bytes) <= budget {
            Slots::anonymous(1 << slot_bits).map_err(|source| DbError::Io {
                path: scratch.to_owned(),
                source,
            })?
        } else {
            index_file(scratch, index_bytes)?
        };
        let probe = Probe { slot_bits };
        let rows = fill_index(&index, &row_files, &owned, probe);
        Ok(ProofDb {
            row_files,
            index,
            slot_bits,
            rows,
        })
    }
}

/// A scratch file of `len` zero bytes for the index, allocated and mapped.
fn index_file(scratch: &Path, len: u64) -> Result<Slots, DbError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DbError::Io { path, source }
    };
    let index_path = scratch.join("rows.index");
    {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&index_path)
            .map_err(io(&index_path))?;
        rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len).map_err(|e| {
            DbError::Io {
                path: index_path.clone(),
                source: e.into(),
            }
        })?;
        Slots::scratch(&file, &index_path).map_err(|e| DbError::Io {
            path: index_path.clone(),
            source: std::io::Error::other(e.to_string()),
        })
    }
}

impl ProofDb {
    /// Rows in the database.
    pub fn rows(&self) -> u64 {
        self.rows as u64
    }

    fn probe(&self) -> Probe {
        Probe {
            slot_bits: self.slot_bits,
        }
    }

    /// Index slots: a slot number is below this.
    pub fn slots(&self) -> usize {
        1 << self.slot_bits
    }

    /// The row of `key`: its slot and value (`None` for no row, or a deleted one).
    pub fn lookup(&self, key: &[u8]) -> Option<(usize, &[u8])> {
        let probe = self.probe();
        let hash = key_hash(key);
        let fp = fingerprint(hash);
        let mut slot = probe.first(hash);
        loop {
            let v = read_slot(&self.index, slot);
            if v == 0 {
                return None;
            }
            if v >> ENTRY_BITS == fp {
                let (file, offset) = entry_of(v);
                let (k, tag, value) = row_in(&self.row_files[file], offset);
                if k == key {
                    return (tag & 0xff != DELETION).then_some((slot, value));
                }
            }
            slot = probe.next(slot);
        }
    }

    /// The first step of a look-up split in steps, so that a loop over many keys overlaps their
    /// cache misses: the key's hash and its first index slot, prefetched.
    pub fn warm_slot(&self, key: &[u8]) -> (u64, usize) {
        let hash = key_hash(key);
        let slot = self.probe().first(hash);
        prefetch(&self.index[slot]);
        (hash, slot)
    }

    /// The second step, once the slot is in the cache: prefetches the row that the first slot
    /// with the hash's fingerprint names (nearly always the key's row). [`ProofDb::lookup`] then
    /// finds everything in the cache.
    pub fn warm_row(&self, hash: u64) {
        let probe = self.probe();
        let fp = fingerprint(hash);
        let mut slot = probe.first(hash);
        loop {
            let v = read_slot(&self.index, slot);
            if v == 0 {
                return;
            }
            if v >> ENTRY_BITS == fp {
                let (file, offset) = entry_of(v);
                if let Some(row) = self.row_files.get(file).and_then(|f| f.get(offset..)) {
                    if let Some(b) = row.first() {
                        prefetch(b);
                    }
                    if let Some(b) = row.get(64) {
                        prefetch(b);
                    }
                }
                return;
            }
            slot = probe.next(slot);
        }
    }

    /// Rows whose slot is not set in `reached` (one bit per slot, [`ProofDb::slots`] bits).
    pub fn unreached(&self, reached: &[u64]) -> u64 {
        let set: u64 = reached.iter().map(|w| u64::from(w.count_ones())).sum();
        (self.rows as u64).saturating_sub(set)
    }
}

fn fingerprint(hash: u64) -> u64 {
    hash & ((1 << FP_BITS) - 1)
}

/// Row file and offset of a non-empty slot value.
fn entry_of(v: u64) -> (usize, usize) {
    let e = (v & ((1 << ENTRY_BITS) - 1)) - 1;
    (
        (e >> ROW_FILE_SHIFT) as usize,
        (e & ((1 << ROW_FILE_SHIFT) - 1)) as usize,
    )
}

/// The fast path for a row of exactly one `sha256`, `append` or `prepend` and no attestation
/// (what the Python stamper writes for all but the attested root): writes the child message
/// into `child` and returns the length of the op's encoding (after the two count bytes). `None`
/// for anything else, including arguments or results out of the wire format's bounds.
pub(crate) fn single_op(value: &[u8], key: &[u8], child: &mut Vec<u8>) -> Option<usize> {
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

/// Opens the copy once with rusty-leveldb and closes it: rows still in the write-ahead log go into
/// a new table, and tables no longer live are deleted.
fn settle(copy: &Path) -> Result<(), DbError> {
    let level = |e: rusty_leveldb::Status| DbError::Level {
        why: e.to_string(),
        path: copy.to_owned(),
    };
    let opts = Options {
        create_if_missing: false,
        reuse_logs: false,
        ..Options::default()
    };
    let mut db = DB::open(copy, opts).map_err(level)?;
    db.close().map_err(level)
}

/// Tables read so far, and in all (0 until they are listed).
#[derive(Debug, Default)]
pub struct TableProgress {
    pub read: AtomicU64,
    pub total: AtomicU64,
}

/// The `.ldb` tables of the settled copy, largest first (so threads finish together).
fn live_tables(copy: &Path) -> Result<Vec<(PathBuf, u64)>, DbError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DbError::Io { path, source }
    };
    let mut tables = Vec::new();
    for entry in std::fs::read_dir(copy).map_err(io(copy))? {
        let entry = entry.map_err(io(copy))?;
        if entry.file_name().to_string_lossy().ends_with(".ldb") {
            let len = entry.metadata().map_err(io(&entry.path()))?.len();
            tables.push((entry.path(), len));
        }
    }
    tables.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(tables)
}

/// Reads `tables` with `threads` threads, each into its own row files (`scratch/rows.N`, or
/// anonymous memory reserving `reserve` bytes when given); returns each thread's row files and
/// their rows.
fn read_tables(
    tables: &[(PathBuf, u64)],
    scratch: &Path,
    threads: usize,
    reserve: Option<usize>,
    read: &AtomicU64,
) -> Result<Vec<Vec<(Store, u64)>>, DbError> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let next = &next;
                let path = scratch.join(format!("rows.{t}"));
                s.spawn(move || read_some(tables, next, path, reserve, read))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(DbError::Level {
                        why: "a table reading thread panicked".into(),
                        path: scratch.to_owned(),
                    })
                })
            })
            .collect()
    })
}

/// One reading thread: takes the next table until none is left, and decodes its rows straight
/// into the thread's row file (a new one when the memory reserved is full).
fn read_some(
    tables: &[(PathBuf, u64)],
    next: &AtomicUsize,
    path: PathBuf,
    reserve: Option<usize>,
    read: &AtomicU64,
) -> Result<Vec<(Store, u64)>, DbError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DbError::Io { path, source }
    };
    let mut done = Vec::new();
    let mut out = Sink::open(&path, reserve).map_err(io(&path))?;
    let mut bytes = Vec::new();
    let mut failed = None;
    while let Some((table, _)) = tables.get(next.fetch_add(1, Ordering::Relaxed)) {
        bytes.clear();
        File::open(table)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io(table))?;
        super::ldb::for_each_entry(&bytes, table, &mut |e| {
            if failed.is_some() {
                return;
            }
            let written = out.row(e.tag, e.key, e.value).and_then(|room| {
                if room {
                    return Ok(());
                }
                let need = ROW_HEAD + e.key.len() + e.value.len();
                let fresh = Sink::open(&path, reserve.map(|r| r.max(2 * need)))?;
                done.push(std::mem::replace(&mut out, fresh).finish());
                match out.row(e.tag, e.key, e.value)? {
                    true => Ok(()),
                    false => Err(std::io::Error::other("no room for a row in fresh memory")),
                }
            });
            if let Err(e) = written {
                failed = Some(e);
            }
        })
        .map_err(|e| DbError::Level {
            why: e.to_string(),
            path: table.clone(),
        })?;
        if let Some(source) = failed.take() {
            return Err(DbError::Io { path, source });
        }
        read.fetch_add(1, Ordering::Relaxed);
        if out.len() >= 1 << ROW_FILE_SHIFT {
            return Err(DbError::Level {
                why: "a row file outgrew its 40-bit offsets".into(),
                path,
            });
        }
    }
    done.push(out.finish());
    done.into_iter().map(|r| r.map_err(io(&path))).collect()
}

/// Bytes of row table per byte of LevelDB table, at most (Snappy's ratio on proof rows is about
/// 1.6, and each row gets a 16-byte head).
const ROW_TABLE_EXPANSION: u64 = 3;

/// Memory the row table and its index may take: half of `MemAvailable` (0 when unknown). Over it
/// they are scratch files, mapped (the page cache holds what fits); under it they are ordinary
/// memory, which the kernel cannot drop and read back under another program's memory pressure.
pub fn memory_budget() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024 / 2)
}

/// Where a reading thread writes its rows: a scratch file, or anonymous memory.
enum Sink {
    File(BufWriter<File>, PathBuf, u64, u64),
    Memory(Anon, usize, u64),
}

impl Sink {
    fn open(path: &Path, reserve: Option<usize>) -> std::io::Result<Sink> {
        Ok(match reserve {
            Some(len) => Sink::Memory(Anon::new(len.max(1 << 20))?, 0, 0),
            None => Sink::File(
                BufWriter::with_capacity(1 << 20, File::create(path)?),
                path.to_owned(),
                0,
                0,
            ),
        })
    }

    /// Bytes written.
    fn len(&self) -> u64 {
        match self {
            Sink::File(_, _, len, _) => *len,
            Sink::Memory(_, len, _) => *len as u64,
        }
    }

    /// Appends a row: its head, key and value; `false` when the memory reserved has no room left
    /// for it (nothing is written then).
    fn row(&mut self, tag: u64, key: &[u8], value: &[u8]) -> std::io::Result<bool> {
        let mut head = [0u8; ROW_HEAD];
        head[..8].copy_from_slice(&tag.to_le_bytes());
        head[8..12].copy_from_slice(&(key.len() as u32).to_le_bytes());
        head[12..].copy_from_slice(&(value.len() as u32).to_le_bytes());
        let n = ROW_HEAD + key.len() + value.len();
        match self {
            Sink::File(f, _, len, rows) => {
                f.write_all(&head)?;
                f.write_all(key)?;
                f.write_all(value)?;
                *len += n as u64;
                *rows += 1;
            }
            Sink::Memory(m, len, rows) => {
                let Some(room) = m.get_mut(*len..*len + n) else {
                    return Ok(false);
                };
                room[..ROW_HEAD].copy_from_slice(&head);
                room[ROW_HEAD..ROW_HEAD + key.len()].copy_from_slice(key);
                room[ROW_HEAD + key.len()..].copy_from_slice(value);
                *len += n;
                *rows += 1;
            }
        }
        Ok(true)
    }

    /// The finished row file and its rows.
    fn finish(self) -> std::io::Result<(Store, u64)> {
        match self {
            Sink::Memory(m, len, rows) => Ok((Store::Memory(m, len), rows)),
            Sink::File(mut f, path, _, rows) => {
                f.flush()?;
                drop(f);
                let map =
                    Mapped::scratch(&path).map_err(|e| std::io::Error::other(e.to_string()))?;
                Ok((Store::File(map), rows))
            }
        }
    }
}

/// A row file: mapped scratch file, or anonymous memory (its first `len` bytes).
enum Store {
    File(Mapped),
    Memory(Anon, usize),
}

impl std::ops::Deref for Store {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Store::File(m) => m,
            Store::Memory(m, len) => &m[..*len],
        }
    }
}

/// Inserts every row into the index, each reading thread the rows of its own row files
/// (`owned[t]`); returns the keys with a value.
fn fill_index(
    index: &Slots,
    row_files: &[Store],
    owned: &[std::ops::Range<usize>],
    probe: Probe,
) -> usize {
    std::thread::scope(|s| {
        let workers: Vec<_> = owned
            .iter()
            .map(|files| {
                let files = files.clone();
                s.spawn(move || {
                    files
                        .map(|f| insert_file(index, row_files, f, probe))
                        .sum::<isize>()
                })
            })
            .collect();
        let live: isize = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
        live.max(0) as usize
    })
}

/// Inserts the rows of row file `f`, prefetching each one's first slot [`INSERT_AHEAD`] rows
/// before it is probed; returns the change in keys with a value.
fn insert_file(index: &Slots, row_files: &[Store], f: usize, probe: Probe) -> isize {
    let file = &row_files[f];
    let mut ahead = [(0u64, 0usize); INSERT_AHEAD];
    let (mut queued, mut live) = (0usize, 0isize);
    let mut offset = 0;
    while offset < file.len() {
        let (key, _, value) = row_in(file, offset);
        let hash = key_hash(key);
        prefetch(&index[probe.first(hash)]);
        let slot = &mut ahead[queued % INSERT_AHEAD];
        if queued >= INSERT_AHEAD {
            live += insert(index, row_files, probe, slot.0, f, slot.1);
        }
        *slot = (hash, offset);
        queued += 1;
        offset += ROW_HEAD + key.len() + value.len();
    }
    for i in queued.saturating_sub(INSERT_AHEAD)..queued {
        let (hash, offset) = ahead[i % INSERT_AHEAD];
        live += insert(index, row_files, probe, hash, f, offset);
    }
    live
}

/// Inserts the row at `offset` of row file `f`, whose key hashes to `hash`, unless a newer
/// version of its key is there already (any thread may insert at the same time: a slot changes
/// only by compare-and-swap from the value just read); returns the change in keys with a value.
fn insert(
    index: &Slots,
    row_files: &[Store],
    probe: Probe,
    hash: u64,
    f: usize,
    offset: usize,
) -> isize {
    let (key, tag, _) = row_in(&row_files[f], offset);
    let fp = fingerprint(hash);
    let entry = (fp << ENTRY_BITS) | (((f as u64) << ROW_FILE_SHIFT | offset as u64) + 1);
    let live = |tag: u64| isize::from(tag & 0xff != DELETION);
    let mut slot = probe.first(hash);
    loop {
        let v = read_slot(index, slot);
        let old_tag = if v == 0 {
            None
        } else if v >> ENTRY_BITS != fp {
            slot = probe.next(slot);
            continue;
        } else {
            let (old_file, old_offset) = entry_of(v);
            let (k, old_tag, _) = row_in(&row_files[old_file], old_offset);
            if k != key {
                slot = probe.next(slot);
                continue;
            }
            if tag <= old_tag {
                return 0;
            }
            Some(old_tag)
        };
        let swapped = index[slot].compare_exchange(
            v.to_le(),
            entry.to_le(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        if swapped.is_ok() {
            return live(tag) - old_tag.map_or(0, live);
        }
        // Another thread changed the slot: read it again.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusty_leveldb::{LdbIterator, WriteBatch};

    fn key(i: u32) -> Vec<u8> {
        sha2::Sha256::digest(i.to_le_bytes()).to_vec()
    }

    /// Every row rusty-leveldb sees (through its own merging iterator on another copy) is what
    /// the parallel table reader and the hash index give, after overwrites in newer tables,
    /// deletions, and rows left only in the write-ahead log; with the row table in scratch files
    /// and in memory.
    #[test]
    fn rows_match_rusty_leveldb() {
        for budget in [0, u64::MAX] {
            rows_match_rusty_leveldb_with(budget);
        }
    }

    fn rows_match_rusty_leveldb_with(budget: u64) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("db");
        let opts = Options {
            compressor: 1,
            write_buffer_size: 64 << 10,
            ..Options::default()
        };
        let mut db = DB::open(&src, opts).unwrap();
        for round in 0..3u32 {
            let mut b = WriteBatch::default();
            for i in 0..4000u32 {
                b.put(
                    &key(i % (1500 + round * 1000)),
                    format!("{round}/{i}").as_bytes(),
                );
            }
            db.write(b, false).unwrap();
        }
        for i in (0..3000).step_by(7) {
            db.delete(&key(i)).unwrap();
        }
        db.put(b"short", b"in the log only").unwrap();
        db.flush().unwrap();
        drop(db);

        let (ours, truth) = (dir.path().join("ours"), dir.path().join("truth"));
        copy_db(&src, &ours).unwrap();
        copy_db(&src, &truth).unwrap();
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        let progress = TableProgress::default();
        let pdb = ProofDb::build(&ours, &scratch, &progress, budget).unwrap();
        let on_disk = scratch.join("rows.0").exists();
        assert_eq!(on_disk, budget == 0, "row files on disk");
        let tables = progress.total.load(Ordering::Relaxed);
        assert!(tables > 1, "{tables} tables");
        assert_eq!(progress.read.load(Ordering::Relaxed), tables);

        let mut truth = DB::open(&truth, Options::default()).unwrap();
        let mut it = truth.new_iter().unwrap();
        let mut rows = 0;
        while let Some((k, v)) = it.next() {
            assert_eq!(
                pdb.lookup(&k).map(|(_, v)| v),
                Some(&v[..]),
                "{}",
                hex::encode(&k)
            );
            rows += 1;
        }
        assert_eq!(pdb.rows(), rows);
        assert!(rows > 3000, "{rows}");
        assert_eq!(pdb.lookup(&key(7)), None, "a deleted key");
        assert_eq!(
            pdb.lookup(&key(8)).map(|(_, v)| v),
            Some(&b"2/3508"[..]),
            "overwritten"
        );
        assert_eq!(
            pdb.lookup(b"short").map(|(_, v)| v),
            Some(&b"in the log only"[..])
        );
        assert_eq!(pdb.lookup(b"absent"), None);
    }

    /// Rows beyond the memory reserved for a thread's rows go to further row files, and every
    /// row is still found.
    #[test]
    fn rows_beyond_the_reserve_go_to_more_row_files() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("db");
        let mut db = DB::open(&src, Options::default()).unwrap();
        let value = |i: u32| {
            let mut v = vec![0u8; 40_000];
            v[..4].copy_from_slice(&i.to_le_bytes());
            v
        };
        for i in 0..200u32 {
            db.put(&key(i), &value(i)).unwrap();
        }
        db.close().unwrap();
        drop(db);
        let copy = dir.path().join("copy");
        copy_db(&src, &copy).unwrap();
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        let progress = TableProgress::default();
        // No reserve beyond the smallest row file (1 MiB): 8 MB of rows need several.
        let pdb = ProofDb::build_with(&copy, &scratch, &progress, u64::MAX, 1, 0).unwrap();
        assert!(pdb.row_files.len() > 4, "{} row files", pdb.row_files.len());
        assert!(pdb.row_files.len() <= MAX_ROW_FILES);
        assert_eq!(pdb.rows(), 200);
        for i in 0..200u32 {
            assert_eq!(pdb.lookup(&key(i)).map(|(_, v)| v.to_vec()), Some(value(i)));
        }
    }

    /// A damaged table is an error naming it, not a panic.
    #[test]
    fn damaged_table_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("000005.ldb");
        for bytes in [vec![], vec![0u8; 100], {
            let mut b = vec![0xffu8; 200];
            b[192..].copy_from_slice(&super::super::ldb::TABLE_MAGIC.to_le_bytes());
            b
        }] {
            let e = super::super::ldb::for_each_entry(&bytes, &t, &mut |_| {}).unwrap_err();
            assert!(e.to_string().contains("000005.ldb"), "{e}");
        }
    }
}
