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
//! into row files (scratch files beside the copy, or memory) and a hash index over them
//! ([`ProofDb::build`]). The table is read-only afterwards and shared by the threads that rebuild
//! the answers ([`super::walk`]).
//!
//! rusty-leveldb opens tables only under `NNNNNN.ldb` names and, like any LevelDB, rewrites files
//! when it opens a database, so [`copy_db`] makes a copy first: tables, which LevelDB never
//! changes once written, are hard-linked (renamed `.sst` to `.ldb`), the other files copied.
//! rusty-leveldb then opens the copy once, which writes any rows still in the write-ahead log into
//! a table and deletes the tables no longer live, so that afterwards the copy's `.ldb` files are
//! exactly the database.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rusty_leveldb::{Options, DB};
use sha2::Digest;

use crate::log::mmap::{Mapped, MappedMut};

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
/// An index slot, little-endian: 0 when empty, else `fingerprint << ENTRY_BITS | entry + 1`, where
/// `entry = row file << ROW_FILE_SHIFT | offset` and the fingerprint is the low [`FP_BITS`] bits of
/// the key's hash, so that a probe reads a row only when its fingerprint matches (nearly always
/// the row looked for).
const SLOT: usize = 8;
const ROW_FILE_SHIFT: u32 = 40;
const ENTRY_BITS: u32 = 44;
const FP_BITS: u32 = 64 - ENTRY_BITS;
/// Most threads reading tables and building the index.
pub const MAX_THREADS: usize = 8;
/// LevelDB's type byte of a deletion.
const DELETION: u64 = 0;

/// The database's rows: every table read into row files (scratch files beside the copy), and an
/// open-addressing hash index over them (a scratch file too, at most 3/4 full), both mapped. The
/// index is split into a power-of-two number of parts by the hash's top bits, one per building
/// thread; probing wraps inside a part. When a key has several versions (overwritten in a newer
/// table) the one with the highest sequence number wins, and a deletion hides the key, as in
/// LevelDB.
pub struct ProofDb {
    row_files: Vec<Store>,
    index: StoreMut,
    slot_bits: u32,
    part_bits: u32,
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

/// Geometry of the index: `slot_bits` bits of slot number, the top `part_bits` of them the part.
#[derive(Clone, Copy)]
struct Probe {
    slot_bits: u32,
    part_bits: u32,
}

impl Probe {
    fn first(self, hash: u64) -> usize {
        (hash >> (64 - self.slot_bits)) as usize
    }
    fn next(self, slot: usize) -> usize {
        let mask = (1usize << (self.slot_bits - self.part_bits)) - 1;
        (slot & !mask) | ((slot + 1) & mask)
    }
    fn part_len(self) -> usize {
        1 << (self.slot_bits - self.part_bits)
    }
    fn part_of(self, hash: u64) -> usize {
        if self.part_bits == 0 {
            0
        } else {
            (hash >> (64 - self.part_bits)) as usize
        }
    }
}

fn read_slot(index: &[u8], slot: usize) -> u64 {
    u64::from_le_bytes(
        index[slot * SLOT..(slot + 1) * SLOT]
            .try_into()
            .unwrap_or_default(),
    )
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
        settle(copy)?;
        let tables = live_tables(copy)?;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_THREADS);
        progress.total.store(tables.len() as u64, Ordering::Relaxed);
        let table_bytes: u64 = tables.iter().map(|(_, len)| len).sum();
        let in_memory = table_bytes.saturating_mul(ROW_TABLE_EXPANSION) <= budget;
        let read = read_tables(&tables, scratch, threads, in_memory, &progress.read)?;
        let entries: u64 = read.iter().map(|(_, n)| n).sum();
        let row_bytes: u64 = read.iter().map(|(s, _)| s.len() as u64).sum();
        let row_files: Vec<Store> = read.into_iter().map(|(s, _)| s).collect();
        let part_bits = usize::BITS - 1 - threads.leading_zeros();
        let wanted = (entries as usize).saturating_mul(4) / 3 + 1;
        let slot_bits = (usize::BITS - wanted.leading_zeros()).max(6 + part_bits);
        let index_bytes = (SLOT as u64) << slot_bits;
        let mut index = if row_bytes.saturating_add(index_bytes) <= budget {
            StoreMut::Memory(vec![0; index_bytes as usize])
        } else {
            StoreMut::File(index_file(scratch, index_bytes)?)
        };
        let probe = Probe {
            slot_bits,
            part_bits,
        };
        let rows = fill_index(&mut index, &row_files, probe);
        Ok(ProofDb {
            row_files,
            index,
            slot_bits,
            part_bits,
            rows,
        })
    }
}

/// A scratch file of `len` zero bytes for the index, allocated and mapped.
fn index_file(scratch: &Path, len: u64) -> Result<MappedMut, DbError> {
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
        MappedMut::scratch(&file, &index_path).map_err(|e| DbError::Io {
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
            part_bits: self.part_bits,
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

/// Reads `tables` with `threads` threads, each into its own row file `scratch/rows.N`; returns
/// each row file and its rows.
fn read_tables(
    tables: &[(PathBuf, u64)],
    scratch: &Path,
    threads: usize,
    in_memory: bool,
    read: &AtomicU64,
) -> Result<Vec<(Store, u64)>, DbError> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let next = &next;
                let path = (!in_memory).then(|| scratch.join(format!("rows.{t}")));
                s.spawn(move || read_some(tables, next, path, read))
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

/// One reading thread: takes the next table until none is left.
fn read_some(
    tables: &[(PathBuf, u64)],
    next: &AtomicUsize,
    path: Option<PathBuf>,
    read: &AtomicU64,
) -> Result<(Store, u64), DbError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DbError::Io { path, source }
    };
    let mut out = match &path {
        Some(p) => Sink::File(BufWriter::with_capacity(
            1 << 20,
            File::create(p).map_err(io(p))?,
        )),
        None => Sink::Memory(Vec::new()),
    };
    let path = path.unwrap_or_default();
    let (mut rows, mut offset) = (0u64, 0u64);
    let mut failed = None;
    while let Some((table, _)) = tables.get(next.fetch_add(1, Ordering::Relaxed)) {
        let bytes = std::fs::read(table).map_err(io(table))?;
        super::ldb::for_each_entry(&bytes, table, &mut |e| {
            if failed.is_some() {
                return;
            }
            let head = [
                &e.tag.to_le_bytes()[..],
                &(e.key.len() as u32).to_le_bytes(),
                &(e.value.len() as u32).to_le_bytes(),
            ];
            let r = head
                .iter()
                .chain([&e.key, &e.value])
                .try_for_each(|part| out.write_all(part));
            if let Err(source) = r {
                failed = Some(source);
            }
            offset += (ROW_HEAD + e.key.len() + e.value.len()) as u64;
            rows += 1;
        })
        .map_err(|e| DbError::Level {
            why: e.to_string(),
            path: table.clone(),
        })?;
        if let Some(source) = failed.take() {
            return Err(DbError::Io { path, source });
        }
        read.fetch_add(1, Ordering::Relaxed);
        if offset >= 1 << ROW_FILE_SHIFT {
            return Err(DbError::Level {
                why: "a row file outgrew its 40-bit offsets".into(),
                path,
            });
        }
    }
    let store = match out {
        Sink::Memory(v) => Store::Memory(v),
        Sink::File(mut f) => {
            f.flush().map_err(io(&path))?;
            drop(f);
            Store::File(Mapped::scratch(&path).map_err(|e| DbError::Io {
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?)
        }
    };
    Ok((store, rows))
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

/// Where the reading thread writes its rows.
enum Sink {
    File(BufWriter<File>),
    Memory(Vec<u8>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Memory(v) => v.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.write_all(buf),
            Sink::Memory(v) => {
                v.extend_from_slice(buf);
                Ok(())
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Memory(_) => Ok(()),
        }
    }
}

/// A row file: mapped scratch file, or memory.
enum Store {
    File(Mapped),
    Memory(Vec<u8>),
}

impl std::ops::Deref for Store {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Store::File(m) => m,
            Store::Memory(v) => v,
        }
    }
}

/// The index: mapped scratch file, or memory.
enum StoreMut {
    File(MappedMut),
    Memory(Vec<u8>),
}

impl std::ops::Deref for StoreMut {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            StoreMut::File(m) => m,
            StoreMut::Memory(v) => v,
        }
    }
}

impl std::ops::DerefMut for StoreMut {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            StoreMut::File(m) => m,
            StoreMut::Memory(v) => v,
        }
    }
}

/// Inserts every row into the index, one thread per part, each reading all row files and taking
/// the keys of its part; returns the keys with a value.
fn fill_index(index: &mut [u8], row_files: &[Store], probe: Probe) -> usize {
    let part_bytes = probe.part_len() * SLOT;
    std::thread::scope(|s| {
        let workers: Vec<_> = index
            .chunks_mut(part_bytes)
            .enumerate()
            .map(|(part, slots)| s.spawn(move || fill_part(slots, part, row_files, probe)))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    })
}

fn fill_part(slots: &mut [u8], part: usize, row_files: &[Store], probe: Probe) -> usize {
    let base = part * probe.part_len();
    let mut live = 0isize;
    for (f, file) in row_files.iter().enumerate() {
        let mut offset = 0;
        while offset < file.len() {
            let (key, tag, value) = row_in(file, offset);
            let hash = key_hash(key);
            let fp = fingerprint(hash);
            let entry = (fp << ENTRY_BITS) | (((f as u64) << ROW_FILE_SHIFT | offset as u64) + 1);
            offset += ROW_HEAD + key.len() + value.len();
            if probe.part_of(hash) != part {
                continue;
            }
            let is_del = isize::from(tag & 0xff == DELETION);
            let mut slot = probe.first(hash);
            loop {
                let v = read_slot(slots, slot - base);
                if v == 0 {
                    slots[(slot - base) * SLOT..][..SLOT].copy_from_slice(&entry.to_le_bytes());
                    live += 1 - is_del;
                    break;
                }
                if v >> ENTRY_BITS != fp {
                    slot = probe.next(slot);
                    continue;
                }
                let (old_file, old_offset) = entry_of(v);
                let (k, old_tag, _) = row_in(&row_files[old_file], old_offset);
                if k == key {
                    if tag > old_tag {
                        let was_del = isize::from(old_tag & 0xff == DELETION);
                        slots[(slot - base) * SLOT..][..SLOT].copy_from_slice(&entry.to_le_bytes());
                        live += was_del - is_del;
                    }
                    break;
                }
                slot = probe.next(slot);
            }
        }
    }
    live.max(0) as usize
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
