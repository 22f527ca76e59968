//! The single writer: group commit of batches with one write and one `fdatasync`, segment roll-over,
//! preallocation, and poisoning on any write or sync failure.
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::chain::{ChainState, Head, LogKey};
use super::error::{io_at, LogError};
use super::record::{self, RecordType, MAX_EVENT_LEN, MAX_RECORD_LEN};
use super::recovery::{self, Recovery};
use super::segment::{segment_name, Seal, SegmentHeader, HEADER_LEN, SEAL_RECORD_LEN};
use super::storage::{write_all_at, FsStorage, Storage, StorageFile};

/// Default target size of a segment. The projection checkpoints at segment boundaries, so this
/// also bounds what otsd holds in memory and folds at start (the active segment): 16 MiB is about
/// 50,000 one-digest rounds, a tenth of a second of start-up.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;
/// Default of [`WriterOptions::max_group_bytes`].
pub const DEFAULT_MAX_GROUP_BYTES: u64 = 32 << 20;
/// Smallest accepted segment size.
pub const MIN_SEGMENT_SIZE: u64 = 4096;

/// Options of [`Writer::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// Target size of a segment: it is sealed before a group that would make it larger is appended.
    /// Segments are preallocated to this size.
    pub segment_size: u64,
    /// Most bytes of events a [`super::WriterHandle`] gathers into one group commit (a single larger
    /// batch still goes alone).
    pub max_group_bytes: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            max_group_bytes: DEFAULT_MAX_GROUP_BYTES,
        }
    }
}

/// The sequence numbers a batch received: `first .. first + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    pub first: u64,
    pub count: u32,
}

/// The segment being appended to, and the chain state after its last record.
#[derive(Debug)]
pub(crate) struct Active {
    pub file: Box<dyn StorageFile>,
    pub path: PathBuf,
    /// Write position: the end of the last record.
    pub offset: u64,
    /// Bytes preallocated.
    pub allocated: u64,
    pub chain: ChainState,
    pub next_seq: u64,
    pub record_count: u64,
    pub event_count: u64,
    /// SHA-256 of bytes `0 .. offset`, for the seal.
    pub sha256: Sha256,
}

/// Creates a segment through a `.tmp` file: header, preallocation, fsync, rename, directory fsync.
pub(crate) fn create_segment(
    storage: &dyn Storage,
    first_seq: u64,
    prev: ChainState,
    size: u64,
) -> Result<Active, LogError> {
    let name = segment_name(first_seq);
    let tmp = format!("{name}.tmp");
    let path = storage.path(&name);
    let tmp_path = storage.path(&tmp);
    let io = |op| io_at(op, &tmp_path);
    let header = SegmentHeader { first_seq, prev }.encode();
    let mut file = storage.create(&tmp).map_err(io("create"))?;
    // A `.tmp` file is never part of the log: if it cannot even be filled (a full disk), it is
    // removed again and nothing of the log has changed.
    let filled = write_all_at(file.as_mut(), &header, 0)
        .map_err(io("write"))
        .and_then(|()| file.allocate(size).map_err(io("preallocate")));
    if let Err(e) = filled {
        drop(file);
        if let Err(rm) = storage.remove(&tmp) {
            tracing::warn!(error = %rm, "cannot remove {}", tmp_path.display());
        }
        return Err(e);
    }
    file.sync_all().map_err(io("fsync"))?;
    storage.rename(&tmp, &name).map_err(io("rename"))?;
    storage
        .sync_dir()
        .map_err(|e| LogError::io("fsync directory of", &path, e))?;
    let mut sha256 = Sha256::new();
    sha256.update(header);
    Ok(Active {
        file,
        path,
        offset: HEADER_LEN as u64,
        allocated: size,
        chain: prev,
        next_seq: first_seq,
        record_count: 0,
        event_count: 0,
        sha256,
    })
}

/// The one writer of a log directory. Not thread-safe by design; see [`super::WriterHandle`].
#[derive(Debug)]
pub struct Writer {
    storage: Box<dyn Storage>,
    key: LogKey,
    opts: WriterOptions,
    active: Active,
    /// Set when the active segment is sealed but its successor could not be created yet (a full
    /// disk): the next append creates it first. Holds the chain values after the seal record.
    successor: Option<ChainState>,
    poisoned: bool,
    /// The encoded group being committed.
    buf: Vec<u8>,
    /// The state after `buf`, applied once it is durable.
    pending: Pending,
}

#[derive(Debug, Default)]
struct Pending {
    chain: ChainState,
    next_seq: u64,
    records: u64,
}

impl Writer {
    /// Opens (creating the directory and first segment if empty) and repairs a torn tail.
    /// Takes an exclusive lock on the directory for the writer's lifetime.
    pub fn open(
        dir: &Path,
        key: LogKey,
        opts: WriterOptions,
    ) -> Result<(Writer, Recovery), LogError> {
        let storage = FsStorage::new_locked(dir)?;
        Writer::open_with(Box::new(storage), key, opts)
    }

    /// Like [`Writer::open`], on any storage (e.g. [`super::FaultStorage`] in tests).
    pub fn open_with(
        storage: Box<dyn Storage>,
        key: LogKey,
        opts: WriterOptions,
    ) -> Result<(Writer, Recovery), LogError> {
        if opts.segment_size < MIN_SEGMENT_SIZE {
            return Err(LogError::InvalidOption(
                "segment_size below MIN_SEGMENT_SIZE",
            ));
        }
        let (active, recovery) = recovery::recover(storage.as_ref(), &key, &opts)?;
        let writer = Writer {
            storage,
            key,
            opts,
            active,
            successor: None,
            poisoned: false,
            buf: Vec::new(),
            pending: Pending::default(),
        };
        Ok((writer, recovery))
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.active.next_seq
    }

    /// The chain values after the last durable record.
    pub fn head(&self) -> Head {
        Head {
            next_seq: self.active.next_seq,
            chain: self.successor.unwrap_or(self.active.chain),
        }
    }

    /// The active segment and the offset after its last durable record (after a seal: the end of
    /// the sealed segment, until the next append creates its successor).
    pub fn end_position(&self) -> super::durable::EndPosition {
        let name = self.active.path.file_name().and_then(|n| n.to_str());
        let segment = name
            .and_then(|n| super::segment::parse_segment_name(&self.active.path, n).ok())
            .flatten()
            .unwrap_or(0);
        super::durable::EndPosition {
            segment,
            offset: self.active.offset,
            next_seq: self.active.next_seq,
        }
    }

    /// The options the writer was opened with.
    pub fn options(&self) -> &WriterOptions {
        &self.opts
    }

    /// True after a failed write or sync.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Appends each batch as one record; all with one write and one `fdatasync`.
    /// Returns one [`SeqRange`] per batch, in order, once they are durable.
    ///
    /// Failure policy: a failed write or sync of log bytes poisons the writer (what is on disk is
    /// unknown). A failure that wrote nothing of the log (preallocating space, creating the next
    /// segment's `.tmp` file: typically a full disk) is returned without poisoning; the log is as
    /// before and a later call tries again.
    pub fn append_batches(&mut self, batches: &[Vec<Vec<u8>>]) -> Result<Vec<SeqRange>, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let size = batches
            .iter()
            .map(|b| validate_batch(b))
            .sum::<Result<u64, _>>()?;
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        self.make_room(size)?;
        let ranges = self.encode(batches);
        self.poison_on_err(Writer::commit_buf)?;
        Ok(ranges)
    }

    /// Makes room for `size` more bytes of records: seals the active segment first if they would
    /// not fit before its seal record (unless it is empty), then preallocates.
    fn make_room(&mut self, size: u64) -> Result<(), LogError> {
        if self.successor.is_none()
            && self.active.record_count > 0
            && self.active.offset + size + SEAL_RECORD_LEN as u64 > self.opts.segment_size
        {
            self.poison_on_err(Writer::seal_active)?;
        }
        self.start_successor()?;
        self.ensure_allocated(size)
    }

    /// Appends batches whose payloads are already framed as a batch record holds them (each
    /// event `u32 LE length || bytes`), one record each, with one write and **no** `fdatasync`:
    /// for a bulk writer that makes everything durable once at the end ([`Writer::sync`]) and
    /// acknowledges nothing before (`otsctl import-otsd`, into a directory it renames only when
    /// complete). A crash before [`Writer::sync`] may lose any of them; sealing a segment still
    /// syncs it. Limits and failure policy as [`Writer::append_batches`].
    pub fn append_framed_unsynced(
        &mut self,
        batches: &[(u32, Vec<u8>)],
    ) -> Result<Vec<SeqRange>, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let mut size = 0u64;
        for (count, payload) in batches {
            size += validate_framed(*count, payload)?;
        }
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        self.make_room(size)?;
        self.buf.clear();
        let mut chain = self.active.chain;
        let mut seq = self.active.next_seq;
        let mut ranges = Vec::with_capacity(batches.len());
        for (count, payload) in batches {
            let write = |out: &mut Vec<u8>| out.extend_from_slice(payload);
            record::encode(
                &mut self.buf,
                RecordType::Batch,
                seq,
                *count,
                write,
                &mut chain,
                &self.key,
            );
            ranges.push(SeqRange {
                first: seq,
                count: *count,
            });
            seq += u64::from(*count);
        }
        self.pending = Pending {
            chain,
            next_seq: seq,
            records: batches.len() as u64,
        };
        self.poison_on_err(Writer::write_buf)?;
        Ok(ranges)
    }

    /// Makes everything appended durable (`fdatasync` of the active segment).
    pub fn sync(&mut self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if self.successor.is_some() {
            return Ok(());
        }
        self.poison_on_err(|w| {
            let a = &mut w.active;
            a.file.sync_data().map_err(io_at("fdatasync", &a.path))
        })
    }

    fn poison_on_err(
        &mut self,
        op: fn(&mut Writer) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let result = op(self);
        if let Err(e) = &result {
            tracing::error!(error = %e, "log writer poisoned");
            self.poisoned = true;
        }
        result
    }

    fn ensure_allocated(&mut self, size: u64) -> Result<(), LogError> {
        let need = self.active.offset + size + SEAL_RECORD_LEN as u64;
        if need > self.active.allocated {
            let len = need.max(self.opts.segment_size);
            let a = &mut self.active;
            a.file
                .allocate(len)
                .map_err(io_at("preallocate", &a.path))?;
            self.active.allocated = len;
        }
        Ok(())
    }

    /// Encodes the batches into `self.buf`, advancing sequence numbers and chain in `self.active`
    /// only in a copy; [`Writer::commit_buf`] makes them real.
    fn encode(&mut self, batches: &[Vec<Vec<u8>>]) -> Vec<SeqRange> {
        self.buf.clear();
        let mut chain = self.active.chain;
        let mut seq = self.active.next_seq;
        let mut ranges = Vec::with_capacity(batches.len());
        for batch in batches {
            record::encode_batch(&mut self.buf, seq, batch, &mut chain, &self.key);
            let count = batch.len() as u32;
            ranges.push(SeqRange { first: seq, count });
            seq += u64::from(count);
        }
        self.pending = Pending {
            chain,
            next_seq: seq,
            records: batches.len() as u64,
        };
        ranges
    }

    /// Writes `self.buf` at the end of the active segment and syncs it; then advances the state.
    fn commit_buf(&mut self) -> Result<(), LogError> {
        let a = &mut self.active;
        write_all_at(a.file.as_mut(), &self.buf, a.offset).map_err(io_at("write", &a.path))?;
        a.file.sync_data().map_err(io_at("fdatasync", &a.path))?;
        self.advance();
        Ok(())
    }

    /// [`Writer::commit_buf`] without the sync.
    fn write_buf(&mut self) -> Result<(), LogError> {
        let a = &mut self.active;
        write_all_at(a.file.as_mut(), &self.buf, a.offset).map_err(io_at("write", &a.path))?;
        self.advance();
        Ok(())
    }

    /// Makes the state after `self.buf` (written) the writer's.
    fn advance(&mut self) {
        let a = &mut self.active;
        a.offset += self.buf.len() as u64;
        a.sha256.update(&self.buf);
        a.event_count += self.pending.next_seq - a.next_seq;
        a.record_count += self.pending.records;
        a.chain = self.pending.chain;
        a.next_seq = self.pending.next_seq;
    }

    /// Creates the segment after a sealed active one. A failure before the new segment is renamed
    /// into place changed nothing (the `.tmp` is removed) and does not poison; one after does.
    fn start_successor(&mut self) -> Result<(), LogError> {
        let Some(chain) = self.successor else {
            return Ok(());
        };
        let next = self.active.next_seq;
        let size = self.opts.segment_size;
        match create_segment(self.storage.as_ref(), next, chain, size) {
            Ok(active) => {
                self.active = active;
                self.successor = None;
                Ok(())
            }
            Err(
                e @ LogError::Io {
                    op: "create" | "write" | "preallocate",
                    ..
                },
            ) => {
                tracing::warn!(error = %e, "cannot start the next segment yet (nothing written)");
                Err(e)
            }
            Err(e) => {
                tracing::error!(error = %e, "log writer poisoned");
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Seals the active segment; [`Writer::start_successor`] then starts the next one.
    fn seal_active(&mut self) -> Result<(), LogError> {
        let a = &mut self.active;
        let seal = Seal {
            record_count: a.record_count,
            event_count: a.event_count,
            last: a.chain,
            segment_sha256: a.sha256.clone().finalize().into(),
        };
        let mut chain = a.chain;
        self.buf.clear();
        let payload = |out: &mut Vec<u8>| seal.encode_into(out);
        record::encode(
            &mut self.buf,
            RecordType::Seal,
            a.next_seq,
            0,
            payload,
            &mut chain,
            &self.key,
        );
        write_all_at(a.file.as_mut(), &self.buf, a.offset).map_err(io_at("write", &a.path))?;
        let end = a.offset + self.buf.len() as u64;
        a.file.set_len(end).map_err(io_at("truncate", &a.path))?;
        a.file.sync_all().map_err(io_at("fsync", &a.path))?;
        self.successor = Some(chain);
        Ok(())
    }
}

/// Checks a batch against the format's limits; returns its encoded length.
pub(crate) fn validate_batch(batch: &[Vec<u8>]) -> Result<u64, LogError> {
    if batch.is_empty() {
        return Err(LogError::EmptyBatch);
    }
    if let Some(e) = batch.iter().find(|e| e.len() > MAX_EVENT_LEN) {
        return Err(too_large("event", e.len(), MAX_EVENT_LEN));
    }
    let len = record::batch_len(batch);
    if len > MAX_RECORD_LEN || batch.len() > u32::MAX as usize {
        return Err(too_large("batch", len, MAX_RECORD_LEN));
    }
    Ok(len as u64)
}

/// Checks a framed batch payload (see [`Writer::append_framed_unsynced`]) against the format's
/// limits; returns its encoded length.
fn validate_framed(count: u32, payload: &[u8]) -> Result<u64, LogError> {
    if count == 0 {
        return Err(LogError::EmptyBatch);
    }
    let len = record::MIN_RECORD_LEN + payload.len();
    if len > MAX_RECORD_LEN {
        return Err(too_large("batch", len, MAX_RECORD_LEN));
    }
    let mut largest = 0;
    if !record::for_each_event(payload, count, |_, e| largest = largest.max(e.len())) {
        return Err(LogError::MalformedBatch { count });
    }
    if largest > MAX_EVENT_LEN {
        return Err(too_large("event", largest, MAX_EVENT_LEN));
    }
    Ok(len as u64)
}

fn too_large(what: &'static str, len: usize, max: usize) -> LogError {
    LogError::TooLarge {
        what,
        len: len as u64,
        max: max as u64,
    }
}
