//! `otsctl ship`: copies the calendar's log segments into a mirror directory, incrementally, for
//! `otsctl recover --from` to use after a loss. A mirror served by any static HTTP server is a URL
//! replica.
//!
//! Safe to run from cron while otsd runs: it only reads the calendar, through the same segment scan
//! as the log reader (CRCs, both chains, seals), and ships only what verifies: the active segment up
//! to its last complete record. Each file is written as `.tmp`, fsynced and renamed; the index
//! ([`super::mirror::INDEX_FILE`]) is written last, so a mirror's index never lists bytes it lacks.
//!
//! A sealed segment listed in the mirror's index with the same length is skipped without being read
//! again (sealed segments never change). The mirror is never overwritten with something that does
//! not extend it: a sealed segment whose local length differs, or an open one whose shipped bytes
//! are not a prefix of the local ones, stops ship with an error (the calendar is damaged or was
//! rebuilt; run `otsctl verify`), so bit rot on the calendar can never destroy the good copy.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::mirror::{parse_index, render_index, IndexEntry, ReplicaError, INDEX_FILE};
use crate::audit::{LogSource, ToolError};
use crate::log::atomic;
use crate::log::scan::{SegmentScan, Stop};
use crate::log::segment::segment_name;
use crate::log::{LogError, LogKey};

/// One segment copied by this run.
#[derive(Debug, Clone, Serialize)]
pub struct Shipped {
    pub segment: String,
    /// Length of the mirror's copy now.
    pub len: u64,
    /// Bytes added to the mirror by this run.
    pub new_bytes: u64,
    pub sealed: bool,
}

/// What ship did.
#[derive(Debug, Clone, Serialize)]
pub struct ShipReport {
    pub mirror: PathBuf,
    pub shipped: Vec<Shipped>,
    /// Segments already in the mirror, unchanged.
    pub unchanged: u64,
    /// Segments the mirror's index lists.
    pub segments: u64,
}

/// Why ship stopped.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Source(#[from] ToolError),
    #[error("{} does not verify, not shipping it (run `otsctl verify`): {source}", segment.display())]
    Damaged {
        segment: PathBuf,
        #[source]
        source: LogError,
    },
    #[error("{}: the mirror's copy ({mirror_len} bytes) is not a prefix of the local segment ({local_len} bytes); not overwriting it (the calendar is damaged or was rebuilt: run `otsctl verify`)", segment.display())]
    Conflict {
        segment: PathBuf,
        mirror_len: u64,
        local_len: u64,
    },
    #[error(transparent)]
    Index(#[from] ReplicaError),
    #[error(transparent)]
    Bucket(#[from] super::bucket::BucketError),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ShipError + 'a {
    move |source| ShipError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Ships the log of the calendar at `calendar` into the directory `mirror` (created if needed).
pub fn ship(calendar: &Path, mirror: &Path) -> Result<ShipReport, ShipError> {
    let source = LogSource::open(calendar, true)?;
    let key = source.hmac_key.as_deref().map(LogKey::derive);
    fs::create_dir_all(mirror).map_err(io_err("create", mirror))?;
    let mut index = read_index(mirror)?;
    let segs = source.segments()?;
    let mut report = ShipReport {
        mirror: mirror.to_owned(),
        shipped: Vec::new(),
        unchanged: 0,
        segments: 0,
    };
    let mut prev: Option<SegmentScan> = None;
    for (i, &first_seq) in segs.iter().enumerate() {
        let path = source.log_dir.join(segment_name(first_seq));
        let old = index.get(&first_seq).cloned();
        if let Some(old) = old.as_ref().filter(|o| o.sealed) {
            let local_len = fs::metadata(&path).map_err(io_err("stat", &path))?.len();
            if local_len != old.len {
                return Err(conflict(&path, old.len, local_len));
            }
            report.unchanged += 1;
            prev = None;
            continue;
        }
        let (scan, bytes, sealed) = verified_prefix(
            &path,
            first_seq,
            i + 1 == segs.len(),
            key.clone(),
            prev.as_ref(),
        )?;
        prev = Some(scan);
        let entry = IndexEntry {
            first_seq,
            len: bytes.len() as u64,
            sha256: Sha256::digest(&bytes).into(),
            sealed,
        };
        match &old {
            Some(o) if !extends(o, &bytes) => return Err(conflict(&path, o.len, entry.len)),
            Some(o) if o.len == entry.len && !sealed => report.unchanged += 1,
            _ => {
                write_atomically(mirror, &segment_name(first_seq), &bytes)?;
                report.shipped.push(Shipped {
                    segment: segment_name(first_seq),
                    len: entry.len,
                    new_bytes: entry.len - old.as_ref().map_or(0, |o| o.len),
                    sealed,
                });
            }
        }
        index.insert(first_seq, entry);
    }
    let entries: Vec<IndexEntry> = index.into_values().collect();
    report.segments = entries.len() as u64;
    write_atomically(mirror, INDEX_FILE, render_index(&entries).as_bytes())?;
    Ok(report)
}

fn conflict(path: &Path, mirror_len: u64, local_len: u64) -> ShipError {
    ShipError::Conflict {
        segment: path.to_owned(),
        mirror_len,
        local_len,
    }
}

/// True if the mirror's copy described by `old` is a prefix of `bytes`.
fn extends(old: &IndexEntry, bytes: &[u8]) -> bool {
    let prefix = usize::try_from(old.len).ok().and_then(|n| bytes.get(..n));
    prefix.is_some_and(|p| <[u8; 32]>::from(Sha256::digest(p)) == old.sha256)
}

/// The mirror's index, by first sequence number (empty for a new mirror).
fn read_index(mirror: &Path) -> Result<BTreeMap<u64, IndexEntry>, ShipError> {
    let path = mirror.join(INDEX_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let entries = parse_index(&text, &path.display().to_string())?;
    Ok(entries.into_iter().map(|e| (e.first_seq, e)).collect())
}

/// Reads and verifies a local segment; returns its scan and its bytes up to the last valid record
/// (the seal of a sealed segment), and whether it is sealed.
fn verified_prefix(
    path: &Path,
    first_seq: u64,
    is_last: bool,
    key: Option<LogKey>,
    prev: Option<&SegmentScan>,
) -> Result<(SegmentScan, Vec<u8>, bool), ShipError> {
    let mut bytes = fs::read(path).map_err(io_err("read", path))?;
    let damaged = |source| ShipError::Damaged {
        segment: path.to_owned(),
        source,
    };
    let mut src = bytes.as_slice();
    let (mut scan, header) =
        SegmentScan::start(&mut src, path, first_seq, key, is_last).map_err(damaged)?;
    if let Some(prev) = prev {
        prev.verifier
            .check_continues(&header, path)
            .map_err(damaged)?;
    }
    let stop = scan.run(&mut src, |_| {}).map_err(damaged)?;
    let sealed = matches!(stop, Stop::Sealed { .. });
    bytes.truncate(usize::try_from(stop.offset()).unwrap_or(usize::MAX));
    Ok((scan, bytes, sealed))
}

/// [`atomic::write_atomically`], with the ship's error.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ShipError> {
    atomic::write_atomically(dir, name, bytes).map_err(|e| ShipError::Io {
        op: e.op,
        path: e.path,
        source: e.source,
    })
}

/// The human report.
pub fn render(r: &ShipReport) -> String {
    render_shipped(r.mirror.display(), &r.shipped, r.segments, r.unchanged)
}

/// The human report of one shipping step into any mirror (a directory here, a bucket in
/// [`super::bucket_ship`]): a line per segment shipped, then the totals.
pub fn render_shipped(
    mirror: impl std::fmt::Display,
    shipped: &[Shipped],
    segments: u64,
    unchanged: u64,
) -> String {
    let mut out = String::new();
    for s in shipped {
        out.push_str(&format!(
            "shipped {} ({} new bytes, {} in all, {})\n",
            s.segment,
            s.new_bytes,
            s.len,
            if s.sealed { "sealed" } else { "open" }
        ));
    }
    out.push_str(&format!(
        "mirror {mirror}: {segments} segments, {} shipped now, {unchanged} unchanged\n",
        shipped.len(),
    ));
    out
}
