//! The primary's (or a mirror's) own log, published read-only: the mirror index and byte ranges of
//! segments, never beyond the last durable record. The HTTP side is `crate::http::log_feed`.
//!
//! What is published is exactly what `log/` holds: segment files byte for byte (records carry
//! the public hash-chain values and the HMAC tags, never a key). The `hmac-key`, `stamper-key` and
//! every other file of the calendar directory stay home.
//!
//! Sealed segments never change: their index line (length, SHA-256) is computed once and kept
//! (one line per segment: bounded by the number of segments). The active segment's SHA-256 is kept
//! as a running hash and extended as the durable end moves, so a poll of the index reads only the
//! bytes appended since the previous one.
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::mirror::{render_index, IndexEntry};
use crate::http::log_feed::{FeedError, FeedSlice, LogFeed};
use crate::log::segment::{list_segments, parse_segment_name, segment_name};
use crate::log::{DurableEnd, LogError};

/// Why a segment or the index could not be served.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Not a segment of this log, or not durable yet.
    #[error("no such segment")]
    NotFound,
    /// The range starts at or after the end of what is published (`len`).
    #[error("range starts beyond the {len} published bytes")]
    Unsatisfiable { len: u64 },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Serves one log directory.
#[derive(Debug)]
pub struct Publisher {
    dir: PathBuf,
    end: DurableEnd,
    sealed: Mutex<BTreeMap<u64, IndexEntry>>,
    /// Running hash of the active segment: (segment, bytes hashed, state).
    open: Mutex<Option<(u64, u64, Sha256)>>,
}

impl Publisher {
    /// Publishes the segments of `dir` up to `end`.
    pub fn new(dir: &Path, end: DurableEnd) -> Publisher {
        Publisher {
            dir: dir.to_path_buf(),
            end,
            sealed: Mutex::new(BTreeMap::new()),
            open: Mutex::new(None),
        }
    }

    /// The mirror index (`segments.txt`) of what is durable now.
    pub fn index(&self) -> Result<String, PublishError> {
        let end = self.end.get();
        let mut entries = Vec::new();
        for first_seq in list_segments(&self.dir)? {
            if first_seq > end.segment {
                break;
            }
            if first_seq < end.segment {
                entries.push(self.sealed_entry(first_seq)?);
            } else {
                entries.push(self.open_entry(first_seq, end.offset)?);
            }
        }
        Ok(render_index(&entries))
    }

    /// Bytes `start ..` of segment `first_seq`, at most `len` of them (`None`: to the end; a
    /// segment is bounded by the writer's segment size).
    pub fn read(
        &self,
        first_seq: u64,
        start: u64,
        len: Option<u64>,
    ) -> Result<FeedSlice, PublishError> {
        let end = self.end.get();
        if first_seq > end.segment {
            return Err(PublishError::NotFound);
        }
        let path = self.dir.join(segment_name(first_seq));
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PublishError::NotFound)
            }
            Err(source) => return Err(PublishError::Io { path, source }),
        };
        let sealed = first_seq < end.segment;
        let total = if sealed {
            file.metadata().map_err(io(&path))?.len()
        } else {
            end.offset
        };
        if start >= total {
            return Err(PublishError::Unsatisfiable { len: total });
        }
        let n = (total - start).min(len.unwrap_or(u64::MAX));
        let mut bytes = vec![0u8; n as usize];
        file.read_exact_at(&mut bytes, start).map_err(io(&path))?;
        Ok(FeedSlice {
            bytes,
            start,
            total,
            sealed,
        })
    }

    fn sealed_entry(&self, first_seq: u64) -> Result<IndexEntry, PublishError> {
        if let Some(e) = crate::sync::lock(&self.sealed).get(&first_seq) {
            return Ok(e.clone());
        }
        let path = self.dir.join(segment_name(first_seq));
        let len = std::fs::metadata(&path).map_err(io(&path))?.len();
        let mut sha = Sha256::new();
        hash_range(&path, 0, len, &mut sha)?;
        let entry = IndexEntry {
            first_seq,
            len,
            sha256: sha.finalize().into(),
            sealed: true,
        };
        crate::sync::lock(&self.sealed).insert(first_seq, entry.clone());
        Ok(entry)
    }

    fn open_entry(&self, first_seq: u64, len: u64) -> Result<IndexEntry, PublishError> {
        let mut open = crate::sync::lock(&self.open);
        let (from, mut sha) = match open.take() {
            Some((seg, hashed, sha)) if seg == first_seq && hashed <= len => (hashed, sha),
            _ => (0, Sha256::new()),
        };
        let path = self.dir.join(segment_name(first_seq));
        hash_range(&path, from, len, &mut sha)?;
        let digest = sha.clone().finalize().into();
        *open = Some((first_seq, len, sha));
        Ok(IndexEntry {
            first_seq,
            len,
            sha256: digest,
            sealed: false,
        })
    }
}

impl LogFeed for Publisher {
    fn index(&self) -> Result<String, FeedError> {
        Publisher::index(self).map_err(feed_error)
    }

    fn read(&self, name: &str, start: u64, len: Option<u64>) -> Result<FeedSlice, FeedError> {
        let first_seq = match parse_segment_name(&self.dir, name) {
            Ok(Some(s)) => s,
            _ => return Err(FeedError::NotFound),
        };
        Publisher::read(self, first_seq, start, len).map_err(feed_error)
    }
}

fn feed_error(e: PublishError) -> FeedError {
    match e {
        PublishError::NotFound => FeedError::NotFound,
        PublishError::Unsatisfiable { len } => FeedError::Unsatisfiable { len },
        other => FeedError::Failed(other.to_string()),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Feeds bytes `from .. to` of `path` into `sha`.
fn hash_range(path: &Path, from: u64, to: u64, sha: &mut Sha256) -> Result<(), PublishError> {
    if from >= to {
        return Ok(());
    }
    let file = File::open(path).map_err(io(path))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let n = (to - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], at).map_err(io(path))?;
        sha.update(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}
