//! Segment files: names, the header, the seal payload, and the [`Verifier`] that checks a segment's
//! records in order (sequence numbers, public hash chain, HMAC chain, seal).
//!
//! Mirrors "Segment file" in `log-format/README.md`.
use std::path::{Path, PathBuf};

use super::chain::{ChainState, LogKey};
use super::error::{io_at, Corruption, LogError};
use super::record::{self, read_32, read_u16, read_u32, read_u64, Record, RecordType};

/// `"OTSDLOG\0"`.
pub const MAGIC: [u8; 8] = *b"OTSDLOG\0";
/// The format version this code writes and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;
pub const MAGIC_OFFSET: usize = 0;
pub const VERSION_OFFSET: usize = 8;
pub const HEADER_LEN_OFFSET: usize = 10;
pub const HEADER_RESERVED_OFFSET: usize = 12;
pub const HEADER_FIRST_SEQ_OFFSET: usize = 16;
pub const HEADER_PREV_HASH_OFFSET: usize = 24;
pub const HEADER_PREV_TAG_OFFSET: usize = 56;
pub const HEADER_RESERVED2_OFFSET: usize = 88;
pub const HEADER_CRC_OFFSET: usize = 92;
/// Length of the segment header; the first record starts here.
pub const HEADER_LEN: usize = 96;

pub const SEAL_RECORD_COUNT_OFFSET: usize = 0;
pub const SEAL_EVENT_COUNT_OFFSET: usize = 8;
pub const SEAL_LAST_HASH_OFFSET: usize = 16;
pub const SEAL_LAST_TAG_OFFSET: usize = 48;
pub const SEAL_SEGMENT_SHA256_OFFSET: usize = 80;
/// Length of a seal record's payload.
pub const SEAL_PAYLOAD_LEN: usize = 112;
/// Length of a whole seal record.
pub const SEAL_RECORD_LEN: usize = record::MIN_RECORD_LEN + SEAL_PAYLOAD_LEN;

/// Suffix of segment file names.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// Suffix of a segment being created; never part of the log.
pub const TMP_SUFFIX: &str = ".seg.tmp";
const NAME_DIGITS: usize = 20;

/// The file name of the segment whose first sequence number is `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:0NAME_DIGITS$}{SEGMENT_SUFFIX}")
}

/// Parses a segment file name; `Ok(None)` for names that are not segments at all.
pub fn parse_segment_name(dir: &Path, name: &str) -> Result<Option<u64>, LogError> {
    let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
        return Ok(None);
    };
    let valid = stem.len() == NAME_DIGITS && stem.bytes().all(|b| b.is_ascii_digit());
    match stem.parse::<u64>() {
        Ok(seq) if valid => Ok(Some(seq)),
        _ => Err(LogError::BadSegmentName {
            path: dir.join(name),
        }),
    }
}

/// The first sequence numbers of the segments in directory `dir`, sorted: the one listing of a
/// segment directory (the log's readers, the tools, mirrors).
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_at("list", dir))? {
        let entry = entry.map_err(io_at("list", dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    segments_in(dir, &names)
}

/// The first sequence numbers of the segments among `names`, sorted.
pub fn segments_in(dir: &Path, names: &[String]) -> Result<Vec<u64>, LogError> {
    let mut seqs = Vec::new();
    for name in names {
        if let Some(seq) = parse_segment_name(dir, name)? {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// The decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub first_seq: u64,
    /// Chain values carried over from the previous segment.
    pub prev: ChainState,
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[MAGIC_OFFSET..VERSION_OFFSET].copy_from_slice(&MAGIC);
        h[VERSION_OFFSET..HEADER_LEN_OFFSET].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[HEADER_LEN_OFFSET..HEADER_RESERVED_OFFSET]
            .copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        h[HEADER_FIRST_SEQ_OFFSET..HEADER_PREV_HASH_OFFSET]
            .copy_from_slice(&self.first_seq.to_le_bytes());
        h[HEADER_PREV_HASH_OFFSET..HEADER_PREV_TAG_OFFSET].copy_from_slice(&self.prev.hash);
        h[HEADER_PREV_TAG_OFFSET..HEADER_RESERVED2_OFFSET].copy_from_slice(&self.prev.tag);
        let crc = crc32fast::hash(&h[..HEADER_CRC_OFFSET]);
        h[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes and checks the header at the start of `buf`, read from `path`.
    ///
    /// Magic and version are checked before the CRC: a newer version may lay out the rest differently.
    pub fn decode(buf: &[u8], path: &Path) -> Result<SegmentHeader, LogError> {
        let bad = |kind| LogError::corrupt(path, 0, kind);
        if buf.len() < HEADER_LEN {
            return Err(bad(Corruption::Truncated));
        }
        if buf[MAGIC_OFFSET..VERSION_OFFSET] != MAGIC {
            return Err(bad(Corruption::BadMagic));
        }
        let version = read_u16(buf, VERSION_OFFSET);
        if version > FORMAT_VERSION {
            return Err(LogError::UnsupportedVersion {
                segment: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if crc32fast::hash(&buf[..HEADER_CRC_OFFSET]) != read_u32(buf, HEADER_CRC_OFFSET) {
            return Err(bad(Corruption::BadCrc));
        }
        let reserved_ok = read_u32(buf, HEADER_RESERVED_OFFSET) == 0
            && read_u32(buf, HEADER_RESERVED2_OFFSET) == 0;
        if version == 0 || read_u16(buf, HEADER_LEN_OFFSET) as usize != HEADER_LEN || !reserved_ok {
            return Err(bad(Corruption::BadHeader));
        }
        Ok(SegmentHeader {
            first_seq: read_u64(buf, HEADER_FIRST_SEQ_OFFSET),
            prev: ChainState {
                hash: read_32(buf, HEADER_PREV_HASH_OFFSET),
                tag: read_32(buf, HEADER_PREV_TAG_OFFSET),
            },
        })
    }
}

/// The decoded payload of a seal record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seal {
    pub record_count: u64,
    pub event_count: u64,
    /// Chain values after the last batch record, before the seal.
    pub last: ChainState,
    /// SHA-256 of the segment bytes before the seal record.
    pub segment_sha256: [u8; 32],
}

impl Seal {
    /// Appends the seal payload to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.record_count.to_le_bytes());
        out.extend_from_slice(&self.event_count.to_le_bytes());
        out.extend_from_slice(&self.last.hash);
        out.extend_from_slice(&self.last.tag);
        out.extend_from_slice(&self.segment_sha256);
    }

    /// Decodes a seal payload.
    pub fn decode(payload: &[u8]) -> Option<Seal> {
        (payload.len() == SEAL_PAYLOAD_LEN).then(|| Seal {
            record_count: read_u64(payload, SEAL_RECORD_COUNT_OFFSET),
            event_count: read_u64(payload, SEAL_EVENT_COUNT_OFFSET),
            last: ChainState {
                hash: read_32(payload, SEAL_LAST_HASH_OFFSET),
                tag: read_32(payload, SEAL_LAST_TAG_OFFSET),
            },
            segment_sha256: read_32(payload, SEAL_SEGMENT_SHA256_OFFSET),
        })
    }
}

/// Checks the records of one segment in order, starting right after its header.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub path: PathBuf,
    key: Option<LogKey>,
    /// Chain values after the last verified record.
    pub chain: ChainState,
    /// Sequence number the next batch must start at.
    pub next_seq: u64,
    pub record_count: u64,
    pub event_count: u64,
    /// Set once the seal record has been verified.
    pub sealed: bool,
}

impl Verifier {
    /// Starts verifying the segment at `path` whose header is `header`.
    pub fn new(path: PathBuf, header: &SegmentHeader, key: Option<LogKey>) -> Verifier {
        Verifier {
            path,
            key,
            chain: header.prev,
            next_seq: header.first_seq,
            record_count: 0,
            event_count: 0,
            sealed: false,
        }
    }

    fn err(&self, offset: u64, kind: Corruption) -> LogError {
        LogError::corrupt(&self.path, offset, kind)
    }

    /// Verifies `rec`, found at `offset`. `segment_sha256` yields the digest of the segment bytes
    /// before `offset`; it is only called for a seal record.
    pub fn check(
        &mut self,
        rec: &Record<'_>,
        offset: u64,
        segment_sha256: impl FnOnce() -> [u8; 32],
    ) -> Result<(), LogError> {
        if self.sealed {
            return Err(self.err(offset, Corruption::MissingSeal));
        }
        if rec.first_seq != self.next_seq {
            return Err(self.err(offset, Corruption::BadSequence));
        }
        match rec.record_type {
            RecordType::Batch => self.check_batch(rec, offset)?,
            RecordType::Seal => self.check_seal(rec, offset, segment_sha256())?,
        }
        self.advance_chain(rec, offset)
    }

    fn check_batch(&self, rec: &Record<'_>, offset: u64) -> Result<(), LogError> {
        if !record::payload_is_valid(rec.payload, rec.count) {
            return Err(self.err(offset, Corruption::BadLength));
        }
        Ok(())
    }

    fn check_seal(&self, rec: &Record<'_>, offset: u64, digest: [u8; 32]) -> Result<(), LogError> {
        let expected = Seal {
            record_count: self.record_count,
            event_count: self.event_count,
            last: self.chain,
            segment_sha256: digest,
        };
        match Seal::decode(rec.payload) {
            Some(seal) if rec.count == 0 && seal == expected => Ok(()),
            _ => Err(self.err(offset, Corruption::BadSeal)),
        }
    }

    fn advance_chain(&mut self, rec: &Record<'_>, offset: u64) -> Result<(), LogError> {
        let hash = self.chain.next_hash(rec.body);
        if hash != rec.hash {
            return Err(self.err(offset, Corruption::BadHash));
        }
        if let Some(key) = &self.key {
            if self.chain.next_tag(key, &hash) != rec.tag {
                return Err(self.err(offset, Corruption::BadTag));
            }
        }
        self.chain = ChainState { hash, tag: rec.tag };
        match rec.record_type {
            RecordType::Batch => {
                self.next_seq += u64::from(rec.count);
                self.record_count += 1;
                self.event_count += u64::from(rec.count);
            }
            RecordType::Seal => self.sealed = true,
        }
        Ok(())
    }

    /// Checks that `next` (the following segment's header, read from `next_path`) continues this one.
    pub fn check_continues(&self, next: &SegmentHeader, next_path: &Path) -> Result<(), LogError> {
        if !self.sealed {
            return Err(self.err(0, Corruption::MissingSeal));
        }
        if next.first_seq != self.next_seq || next.prev != self.chain {
            return Err(LogError::corrupt(next_path, 0, Corruption::Discontinuity));
        }
        Ok(())
    }
}
