//! The log's error type. Every variant that concerns bytes on disk names the segment and offset.
use std::{io, path::PathBuf, sync::Arc};

/// What is wrong with bytes that fail verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// The segment header's magic bytes are wrong.
    BadMagic,
    /// A reserved field is not zero, or the header length is not the one of this version.
    BadHeader,
    /// A CRC-32 does not match.
    BadCrc,
    /// A record length is out of bounds, or its payload does not parse.
    BadLength,
    /// A record's sequence number is not the expected one.
    BadSequence,
    /// The public hash chain value does not match.
    BadHash,
    /// The HMAC chain value does not match.
    BadTag,
    /// A seal record disagrees with the segment it seals.
    BadSeal,
    /// A segment that is not the last one has no seal, or bytes follow a seal.
    MissingSeal,
    /// The file ends inside a record of a sealed segment.
    Truncated,
    /// A segment header disagrees with its file name or the previous segment.
    Discontinuity,
}

/// Errors of the event log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// Bytes on disk failed verification.
    #[error("log corrupt: {kind:?} in {} at offset {offset}", segment.display())]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        kind: Corruption,
    },
    /// The segment was written by a newer format version.
    #[error("{}: format version {found} is newer than the supported {supported}", segment.display())]
    UnsupportedVersion {
        segment: PathBuf,
        found: u16,
        supported: u16,
    },
    /// A record with a valid checksum has a type this version does not know.
    #[error("{}: unknown record type {record_type} at offset {offset}", segment.display())]
    UnknownRecordType {
        segment: PathBuf,
        offset: u64,
        record_type: u8,
    },
    /// An I/O operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// An earlier write or fsync failed; the writer accepts nothing until the log is reopened.
    #[error("log writer is poisoned by an earlier I/O failure; reopen the log")]
    Poisoned,
    /// A batch holds no events.
    #[error("a batch must hold at least one event")]
    EmptyBatch,
    /// A framed batch payload does not hold exactly its count of events.
    #[error("a framed batch payload does not hold exactly its {count} events")]
    MalformedBatch { count: u32 },
    /// An event or a batch is larger than the format allows.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: u64,
        max: u64,
    },
    /// The writer thread's queue is full; try again later.
    #[error("log writer queue is full")]
    QueueFull,
    /// An earlier append failed without writing anything (e.g. no space for the next segment);
    /// the writer refuses appends until its owner resumes it ([`super::WriterHandle::resume`]),
    /// so that no batch lands after a refused one its owner numbered before it. Try again later.
    #[error("log writer stalled after a failed append that wrote nothing; try again later")]
    Stalled,
    /// The writer thread has stopped.
    #[error("log writer has stopped")]
    Closed,
    /// The options are out of range.
    #[error("invalid log option: {0}")]
    InvalidOption(&'static str),
    /// A directory entry looks like a segment but its name does not parse.
    #[error("{}: not a valid segment file name", path.display())]
    BadSegmentName { path: PathBuf },
}

impl LogError {
    /// Whether the log is unchanged and a later attempt may succeed: the error neither poisoned
    /// the writer nor means it has stopped. (An I/O error is transient only if the writer is not
    /// poisoned; check [`super::WriterHandle::is_poisoned`].)
    pub fn is_try_later(&self) -> bool {
        matches!(self, LogError::QueueFull | LogError::Stalled)
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> LogError {
        LogError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn corrupt(segment: impl Into<PathBuf>, offset: u64, kind: Corruption) -> LogError {
        LogError::Corrupt {
            segment: segment.into(),
            offset,
            kind,
        }
    }
}

/// `map_err` helper: an I/O error of `op` on `path`.
pub(crate) fn io_at<'a>(
    op: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |e| LogError::io(op, path, e)
}
