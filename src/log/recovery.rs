//! Opening a log for writing: removing unfinished segment creations, scanning the active segment,
//! truncating a torn tail, finishing an interrupted roll-over.
//!
//! The policy is the one of `log-format/README.md`, "Corruption policy"; the scan in
//! [`super::scan`] decides torn tail versus damage, this module acts on the decision.
use std::path::{Path, PathBuf};

use super::chain::{ChainState, LogKey};
use super::error::{io_at, Corruption, LogError};
use super::record::{self, RecordType};
use super::scan::{SegmentScan, Stop};
use super::segment::{
    segment_name, segments_in, Seal, SegmentHeader, HEADER_LEN, SEAL_RECORD_LEN, TMP_SUFFIX,
};
use super::storage::{read_exact_at, Storage};
use super::writer::{create_segment, Active, WriterOptions};

/// What [`super::Writer::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The active segment that was scanned (`None` for a new log).
    pub segment: Option<PathBuf>,
    /// The end of the last valid record in it.
    pub offset: u64,
    /// Bytes removed after `offset`, up to the last non-zero one (the remains of an unfinished write).
    pub truncated_bytes: u64,
    /// The sequence number the next event will get.
    pub next_seq: u64,
    /// Leftover `.seg.tmp` files removed.
    pub removed_tmp_files: usize,
    /// The active segment was sealed but its successor missing; the successor was created.
    pub completed_rollover: bool,
}

/// Brings the directory into a state the writer can append to.
pub(crate) fn recover(
    storage: &dyn Storage,
    key: &LogKey,
    opts: &WriterOptions,
) -> Result<(Active, Recovery), LogError> {
    let dir = storage.path("");
    let names = storage.list().map_err(io_at("list", &dir))?;
    let removed_tmp_files = remove_tmp_files(storage, &names)?;
    let mut recovery = Recovery {
        removed_tmp_files,
        ..Recovery::default()
    };
    let segments = segments_in(&dir, &names)?;
    let previous = segments.len().checked_sub(2).map(|i| segments[i]);
    let Some(&first_seq) = segments.last() else {
        let active = create_segment(storage, 0, ChainState::GENESIS, opts.segment_size)?;
        return Ok((active, recovery));
    };
    let active = scan_active(storage, first_seq, previous, key, opts, &mut recovery)?;
    recovery.next_seq = active.next_seq;
    Ok((active, recovery))
}

fn remove_tmp_files(storage: &dyn Storage, names: &[String]) -> Result<usize, LogError> {
    let tmp: Vec<&String> = names.iter().filter(|n| n.ends_with(TMP_SUFFIX)).collect();
    for name in &tmp {
        tracing::warn!(file = %name, "removing unfinished segment creation");
        storage
            .remove(name)
            .map_err(io_at("remove", &storage.path(name)))?;
    }
    if !tmp.is_empty() {
        storage
            .sync_dir()
            .map_err(io_at("fsync", &storage.path("")))?;
    }
    Ok(tmp.len())
}

fn scan_active(
    storage: &dyn Storage,
    first_seq: u64,
    previous: Option<u64>,
    key: &LogKey,
    opts: &WriterOptions,
    recovery: &mut Recovery,
) -> Result<Active, LogError> {
    let name = segment_name(first_seq);
    let path = storage.path(&name);
    let mut file = storage.open(&name).map_err(io_at("open", &path))?;
    let len = file.size().map_err(io_at("stat", &path))?;
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    if !read_exact_at(file.as_ref(), &mut buf, 0).map_err(io_at("read", &path))? {
        return Err(LogError::io(
            "read",
            &path,
            std::io::ErrorKind::UnexpectedEof.into(),
        ));
    }
    let mut src = buf.as_slice();
    let (mut scan, header) =
        SegmentScan::start(&mut src, &path, first_seq, Some(key.clone()), true)?;
    if let Some(previous) = previous {
        check_previous_seal(storage, previous, &header, &path, key)?;
    }
    let stop = scan.run(&mut src, |_| {})?;
    recovery.segment = Some(path.clone());
    recovery.offset = stop.offset();
    let v = &scan.verifier;
    if let Stop::Sealed { offset } = stop {
        if len != offset {
            file.set_len(offset).map_err(io_at("truncate", &path))?;
            file.sync_all().map_err(io_at("fsync", &path))?;
        }
        recovery.completed_rollover = true;
        tracing::warn!(segment = %path.display(), "completing an interrupted segment roll-over");
        return create_segment(storage, v.next_seq, v.chain, opts.segment_size);
    }
    let dropped = buf[stop.offset() as usize..]
        .iter()
        .filter(|&&b| b != 0)
        .count() as u64;
    recovery.truncated_bytes = dropped;
    let allocated = len.max(opts.segment_size);
    if dropped > 0 {
        tracing::warn!(segment = %path.display(), offset = stop.offset(), bytes = dropped,
            "truncating torn tail of the active segment");
        file.set_len(stop.offset())
            .map_err(io_at("truncate", &path))?;
    }
    file.allocate(allocated)
        .map_err(io_at("preallocate", &path))?;
    if dropped > 0 {
        file.sync_all().map_err(io_at("fsync", &path))?;
    }
    Ok(Active {
        file,
        path,
        offset: stop.offset(),
        allocated,
        chain: v.chain,
        next_seq: v.next_seq,
        record_count: v.record_count,
        event_count: v.event_count,
        sha256: scan.sha256,
    })
}

/// Checks that the segment before the active one ends with a seal whose own chain step is valid and
/// whose outcome is what the active segment's header carries. The writer does not re-verify sealed
/// segments (that is the reader's job); this keeps it from appending to a log that lost its tail
/// segment or whose active header was replaced.
fn check_previous_seal(
    storage: &dyn Storage,
    previous: u64,
    header: &SegmentHeader,
    active_path: &Path,
    key: &LogKey,
) -> Result<(), LogError> {
    let name = segment_name(previous);
    let path = storage.path(&name);
    let file = storage.open(&name).map_err(io_at("open", &path))?;
    let size = file.size().map_err(io_at("stat", &path))?;
    let at = size.saturating_sub(SEAL_RECORD_LEN as u64);
    let missing = || LogError::corrupt(&path, at, Corruption::MissingSeal);
    let mut buf = vec![0u8; SEAL_RECORD_LEN];
    if size < (HEADER_LEN + SEAL_RECORD_LEN) as u64
        || !read_exact_at(file.as_ref(), &mut buf, at).map_err(io_at("read", &path))?
    {
        return Err(missing());
    }
    let rec = record::parse(&buf).map_err(|_| missing())?;
    let seal = Seal::decode(rec.payload).ok_or_else(missing)?;
    if rec.record_type != RecordType::Seal || rec.len() != SEAL_RECORD_LEN {
        return Err(missing());
    }
    let hash = seal.last.next_hash(rec.body);
    if hash != rec.hash || seal.last.next_tag(key, &hash) != rec.tag {
        return Err(LogError::corrupt(&path, at, Corruption::BadTag));
    }
    let after = ChainState { hash, tag: rec.tag };
    if rec.first_seq != header.first_seq || after != header.prev {
        return Err(LogError::corrupt(active_path, 0, Corruption::Discontinuity));
    }
    Ok(())
}
