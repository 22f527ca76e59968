//! Log mirrors: the index file `otsctl ship` writes, and reading a mirror's segments from a
//! directory, a plain-HTTP URL or a bucket ([`super::bucket`]) for `otsctl recover`.
//!
//! A mirror is a flat directory of segment files (named as in the log) plus [`INDEX_FILE`], one line
//! per segment: `NAME LENGTH SHA256 sealed|open`. The index is only a listing and a convenience for
//! `sha256sum`-style checks: nothing read from a mirror is trusted; `recover` verifies every record
//! against the calendar's HMAC chain.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::bucket::{self, Bucket, BucketError, BucketUrl};
use super::http::{self, HttpError};
use crate::log::segment::{list_segments, parse_segment_name};
use crate::log::LogError;

/// Name of a mirror's index file.
pub const INDEX_FILE: &str = "segments.txt";
/// First line of the index.
pub const INDEX_HEADER: &str = "# otsd log mirror v1: name length sha256 state";
/// Largest index accepted from a mirror.
pub const MAX_INDEX_LEN: u64 = 4 << 20;
/// Largest segment accepted from a mirror (segments are about `--segment-size-mib`, 16 MiB by
/// default; one oversized group can make one larger).
pub const MAX_SEGMENT_LEN: u64 = 1 << 30;

/// One line of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub first_seq: u64,
    pub len: u64,
    pub sha256: [u8; 32],
    /// Ends with its seal: will never change again.
    pub sealed: bool,
}

/// Why a mirror could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: line {line}: {problem}")]
    BadIndex {
        origin: String,
        line: usize,
        problem: String,
    },
    #[error("{}: {len} bytes, larger than the limit of {MAX_SEGMENT_LEN}", path.display())]
    TooLarge { path: PathBuf, len: u64 },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{}: no such replica directory", .0.display())]
    Missing(PathBuf),
    #[error(transparent)]
    Bucket(#[from] BucketError),
}

/// Renders the index, segments in order.
pub fn render_index(entries: &[IndexEntry]) -> String {
    let mut out = format!("{INDEX_HEADER}\n");
    for e in entries {
        let state = if e.sealed { "sealed" } else { "open" };
        out.push_str(&format!(
            "{} {} {} {state}\n",
            crate::log::segment::segment_name(e.first_seq),
            e.len,
            hex::encode(e.sha256)
        ));
    }
    out
}

/// Parses an index; `origin` names it in errors.
pub fn parse_index(text: &str, origin: &str) -> Result<Vec<IndexEntry>, ReplicaError> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |problem: &str| ReplicaError::BadIndex {
            origin: origin.to_owned(),
            line: i + 1,
            problem: problem.to_owned(),
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, len, sha, state] = fields[..] else {
            return Err(bad("expected: name length sha256 sealed|open"));
        };
        let first_seq = parse_segment_name(Path::new(origin), name)
            .ok()
            .flatten()
            .ok_or_else(|| bad("not a segment file name"))?;
        let sha256 = hex::decode(sha)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad("sha256 is not 64 hex digits"))?;
        entries.push(IndexEntry {
            first_seq,
            len: len.parse().map_err(|_| bad("length is not a number"))?,
            sha256,
            sealed: match state {
                "sealed" => true,
                "open" => false,
                _ => return Err(bad("state is neither sealed nor open")),
            },
        });
    }
    entries.sort_by_key(|e| e.first_seq);
    Ok(entries)
}

/// Where `recover` reads a copy of the log from.
#[derive(Debug, Clone)]
pub enum Replica {
    /// A directory of segments: a mirror, a copy of a log directory, or a calendar directory
    /// (then its `log/` is used).
    Dir(PathBuf),
    /// The base URL of a mirror served over plain HTTP; its index lists the segments.
    Url(String),
    /// `s3://BUCKET/PREFIX`: a mirror in object storage ([`super::bucket`]); checked when used.
    Bucket(BucketReplica),
}

impl Replica {
    /// `http://...` is a URL, `s3://...` a bucket; anything else a directory.
    pub fn parse(from: &str) -> Replica {
        if BucketUrl::is_bucket_url(from) {
            return Replica::Bucket(BucketReplica {
                url: from.to_owned(),
                index: OnceLock::new(),
            });
        }
        if from.starts_with("http://") || from.starts_with("https://") {
            let base = from.trim_end_matches('/');
            let base = base.strip_suffix(INDEX_FILE).unwrap_or(base);
            return Replica::Url(base.trim_end_matches('/').to_owned());
        }
        let dir = PathBuf::from(from);
        let log = dir.join(crate::calendar::dir::LOG_DIR);
        if !has_segments(&dir) && has_segments(&log) {
            return Replica::Dir(log);
        }
        Replica::Dir(dir)
    }

    /// The replica, for reports.
    pub fn describe(&self) -> String {
        match self {
            Replica::Dir(d) => d.display().to_string(),
            Replica::Url(u) => u.clone(),
            Replica::Bucket(b) => b.url.clone(),
        }
    }

    /// Where segment `first_seq` is read from, for reports.
    pub fn location(&self, first_seq: u64) -> String {
        let name = crate::log::segment::segment_name(first_seq);
        match self {
            Replica::Dir(d) => d.join(name).display().to_string(),
            Replica::Url(u) => format!("{u}/{name}"),
            Replica::Bucket(b) => format!("{}/{name}", b.url.trim_end_matches('/')),
        }
    }

    /// First sequence numbers of the segments the replica holds, ascending.
    pub fn segments(&self) -> Result<Vec<u64>, ReplicaError> {
        match self {
            Replica::Dir(d) if !d.is_dir() => Err(ReplicaError::Missing(d.clone())),
            Replica::Dir(d) => Ok(list_dir(d)?),
            Replica::Url(u) => {
                let url = format!("{u}/{INDEX_FILE}");
                let text = http::get(&url, MAX_INDEX_LEN)?;
                let entries = parse_index(&String::from_utf8_lossy(&text), &url)?;
                Ok(entries.iter().map(|e| e.first_seq).collect())
            }
            Replica::Bucket(b) => Ok(b.index()?.iter().map(|e| e.first_seq).collect()),
        }
    }

    /// The bytes of segment `first_seq`; `None` if the replica does not have it.
    pub fn segment(&self, first_seq: u64) -> Result<Option<Vec<u8>>, ReplicaError> {
        match self {
            Replica::Dir(d) => read_segment(d, first_seq),
            Replica::Url(_) => match http::get(&self.location(first_seq), MAX_SEGMENT_LEN) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e.into()),
            },
            Replica::Bucket(b) => b.segment(first_seq),
        }
    }
}

/// A bucket replica: its URL, and its index once read (so a recover lists the bucket once and
/// reads each segment as that listing describes it).
#[derive(Debug, Clone)]
pub struct BucketReplica {
    pub url: String,
    index: OnceLock<Vec<IndexEntry>>,
}

impl BucketReplica {
    fn connect(&self) -> Result<Bucket, ReplicaError> {
        Ok(Bucket::open(&BucketUrl::parse(&self.url)?)?)
    }

    /// The bucket's index, read on first use.
    fn index(&self) -> Result<&[IndexEntry], ReplicaError> {
        if let Some(index) = self.index.get() {
            return Ok(index);
        }
        let b = self.connect()?;
        let entries = bucket::block_on(async move { b.index().await })??;
        Ok(self.index.get_or_init(|| entries))
    }

    fn segment(&self, first_seq: u64) -> Result<Option<Vec<u8>>, ReplicaError> {
        let Some(entry) = self.index()?.iter().find(|e| e.first_seq == first_seq) else {
            return Ok(None);
        };
        let (b, entry) = (self.connect()?, entry.clone());
        Ok(Some(bucket::block_on(async move {
            b.read_segment(&entry).await
        })??))
    }
}

fn has_segments(dir: &Path) -> bool {
    list_dir(dir).is_ok_and(|s| !s.is_empty())
}

/// The segments in a directory (none if it does not exist).
pub fn list_dir(dir: &Path) -> Result<Vec<u64>, ReplicaError> {
    match list_segments(dir) {
        Err(LogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(Vec::new())
        }
        other => Ok(other?),
    }
}

/// Reads segment `first_seq` of directory `dir`, within [`MAX_SEGMENT_LEN`]; `None` if absent.
pub fn read_segment(dir: &Path, first_seq: u64) -> Result<Option<Vec<u8>>, ReplicaError> {
    let path = dir.join(crate::log::segment::segment_name(first_seq));
    let io = |source| ReplicaError::Io {
        path: path.clone(),
        source,
    };
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if len > MAX_SEGMENT_LEN {
        return Err(ReplicaError::TooLarge { path, len });
    }
    std::fs::read(&path).map(Some).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips_and_names_bad_lines() {
        let entries = vec![
            IndexEntry {
                first_seq: 0,
                len: 4096,
                sha256: [1; 32],
                sealed: true,
            },
            IndexEntry {
                first_seq: 42,
                len: 200,
                sha256: [2; 32],
                sealed: false,
            },
        ];
        let text = render_index(&entries);
        assert!(text.starts_with(INDEX_HEADER));
        assert_eq!(parse_index(&text, "m").ok(), Some(entries));
        let err = parse_index("x.seg 1 00 open\n", "m")
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
