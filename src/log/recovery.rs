//! Opening a log for writing: removing unfinished segment creations, scanning the active segment,
//! truncating a torn tail, finishing an interrupted roll-over.
//!
//! The policy is the one of `log-format/README.md`, "Corruption policy"; the scan in
//! [`super::scan`] decides torn tail versus damage, this module acts on the decision.
use std::path::PathBuf;

use super::chain::{ChainState, LogKey};
use super::error::{io_at, LogError};
use super::scan::{SegmentScan, Stop};
use super::segment::{segment_name, segments_in, TMP_SUFFIX};
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
    let Some(&first_seq) = segments_in(&dir, &names)?.last() else {
        let active = create_segment(storage, 0, ChainState::GENESIS, opts.segment_size)?;
        return Ok((active, recovery));
    };
    let active = scan_active(storage, first_seq, key, opts, &mut recovery)?;
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
    let (mut scan, _) = SegmentScan::start(&mut src, &path, first_seq, Some(key.clone()), true)?;
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
