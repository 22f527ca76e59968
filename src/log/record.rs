//! Record framing: `length | type | reserved | first_seq | count | payload | hash | tag | crc32`.
//!
//! Mirrors "Record framing" in `log-format/README.md`. Parsing checks the frame and CRC only;
//! sequence numbers and chains are checked by [`crate::log::segment::Verifier`], which knows the
//! previous record.
use super::chain::{ChainState, LogKey};

/// Offset of the `length` field (u32 LE): the whole record's length in bytes.
pub const LENGTH_OFFSET: usize = 0;
/// Offset of the `type` field (u8).
pub const TYPE_OFFSET: usize = 4;
/// Offset of the three reserved bytes, which must be zero.
pub const RESERVED_OFFSET: usize = 5;
/// Offset of `first_seq` (u64 LE).
pub const FIRST_SEQ_OFFSET: usize = 8;
/// Offset of `count` (u32 LE), the number of events.
pub const COUNT_OFFSET: usize = 16;
/// Offset of the payload; also the length of the fixed prefix.
pub const PAYLOAD_OFFSET: usize = 20;
/// Width of the hash and tag fields.
pub const CHAIN_VALUE_LEN: usize = 32;
/// Width of the CRC-32.
pub const CRC_LEN: usize = 4;
/// Bytes after the payload: hash, tag, crc.
pub const TRAILER_LEN: usize = 2 * CHAIN_VALUE_LEN + CRC_LEN;
/// The smallest possible record: no payload.
pub const MIN_RECORD_LEN: usize = PAYLOAD_OFFSET + TRAILER_LEN;
/// The largest record a reader accepts.
pub const MAX_RECORD_LEN: usize = 256 << 20;
/// The largest event.
pub const MAX_EVENT_LEN: usize = 16 << 20;
/// Width of an event's length prefix in a batch payload.
pub const EVENT_LEN_PREFIX: usize = 4;

/// The kind of a record (`type` byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// A batch of events committed together.
    Batch = 1,
    /// The seal that ends a segment.
    Seal = 2,
}

impl RecordType {
    fn from_byte(b: u8) -> Option<RecordType> {
        match b {
            1 => Some(RecordType::Batch),
            2 => Some(RecordType::Seal),
            _ => None,
        }
    }
}

/// Why bytes are not a valid record, before any chain check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is zero: the end of the written part of a segment.
    End,
    /// Fewer bytes are available than the frame needs.
    Incomplete,
    /// The length is out of bounds.
    BadLength,
    /// The CRC does not match.
    BadCrc,
    /// CRC is valid, but reserved bytes are not zero or the payload does not parse.
    BadContent,
    /// CRC is valid, but the type is unknown.
    UnknownType(u8),
}

/// A record whose frame and CRC are valid, borrowed from the segment bytes.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The whole record, frame included.
    pub bytes: &'a [u8],
    pub record_type: RecordType,
    pub first_seq: u64,
    pub count: u32,
    /// Bytes `0 .. len - TRAILER_LEN`, the input of the chain step.
    pub body: &'a [u8],
    pub payload: &'a [u8],
    pub hash: [u8; 32],
    pub tag: [u8; 32],
}

impl Record<'_> {
    /// The whole record's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a record has at least its frame.
    pub fn is_empty(&self) -> bool {
        false
    }
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn read_32(b: &[u8], at: usize) -> [u8; 32] {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[at..at + 32]);
    a
}

/// Reads the length field of the record starting at `buf[0]`, checking its bounds.
pub fn frame_len(buf: &[u8]) -> Result<usize, FrameError> {
    if buf.len() < 4 {
        return Err(FrameError::Incomplete);
    }
    let len = read_u32(buf, LENGTH_OFFSET) as usize;
    if len == 0 {
        return Err(FrameError::End);
    }
    if !(MIN_RECORD_LEN..=MAX_RECORD_LEN).contains(&len) {
        return Err(FrameError::BadLength);
    }
    Ok(len)
}

/// Parses and CRC-checks the record starting at `buf[0]`.
pub fn parse(buf: &[u8]) -> Result<Record<'_>, FrameError> {
    check(buf)?;
    Ok(view(buf))
}

/// Checks length, CRC, type and reserved bytes of the record starting at `buf[0]`.
pub fn check(buf: &[u8]) -> Result<(), FrameError> {
    let len = frame_len(buf)?;
    if buf.len() < len {
        return Err(FrameError::Incomplete);
    }
    let rec = &buf[..len];
    let crc_at = len - CRC_LEN;
    if crc32fast::hash(&rec[..crc_at]) != read_u32(rec, crc_at) {
        return Err(FrameError::BadCrc);
    }
    RecordType::from_byte(rec[TYPE_OFFSET]).ok_or(FrameError::UnknownType(rec[TYPE_OFFSET]))?;
    if rec[RESERVED_OFFSET..FIRST_SEQ_OFFSET] != [0, 0, 0] {
        return Err(FrameError::BadContent);
    }
    Ok(())
}

/// Views a record that [`check`] accepted.
///
/// # Panics
/// If `buf` was not accepted by [`check`].
pub fn view(buf: &[u8]) -> Record<'_> {
    let len = read_u32(buf, LENGTH_OFFSET) as usize;
    let rec = &buf[..len];
    let body_end = len - TRAILER_LEN;
    Record {
        bytes: rec,
        record_type: RecordType::from_byte(rec[TYPE_OFFSET]).unwrap_or(RecordType::Batch),
        first_seq: read_u64(rec, FIRST_SEQ_OFFSET),
        count: read_u32(rec, COUNT_OFFSET),
        body: &rec[..body_end],
        payload: &rec[PAYLOAD_OFFSET..body_end],
        hash: read_32(rec, body_end),
        tag: read_32(rec, body_end + CHAIN_VALUE_LEN),
    }
}

/// Iterates over the events of a batch payload; `None` marks a malformed payload.
pub fn events(payload: &[u8], count: u32) -> Option<Vec<&[u8]>> {
    let mut out = Vec::with_capacity(count as usize);
    let mut rest = payload;
    for _ in 0..count {
        let (ev, tail) = split_event(rest)?;
        out.push(ev);
        rest = tail;
    }
    rest.is_empty().then_some(out)
}

/// Calls `f` for every event of a batch payload; returns false if the payload is malformed.
pub fn for_each_event(payload: &[u8], count: u32, mut f: impl FnMut(u32, &[u8])) -> bool {
    let mut rest = payload;
    for k in 0..count {
        match split_event(rest) {
            Some((ev, tail)) => {
                f(k, ev);
                rest = tail;
            }
            None => return false,
        }
    }
    rest.is_empty()
}

/// Checks that a batch payload holds exactly `count` well-formed events.
pub fn payload_is_valid(payload: &[u8], count: u32) -> bool {
    count > 0 && for_each_event(payload, count, |_, _| {})
}

fn split_event(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    if buf.len() < EVENT_LEN_PREFIX {
        return None;
    }
    let len = read_u32(buf, 0) as usize;
    let rest = &buf[EVENT_LEN_PREFIX..];
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// The encoded length of a batch record holding `events`.
pub fn batch_len(events: &[Vec<u8>]) -> usize {
    MIN_RECORD_LEN
        + events
            .iter()
            .map(|e| EVENT_LEN_PREFIX + e.len())
            .sum::<usize>()
}

/// Appends a complete record to `out` and advances `chain` past it.
pub fn encode(
    out: &mut Vec<u8>,
    record_type: RecordType,
    first_seq: u64,
    count: u32,
    payload: impl FnOnce(&mut Vec<u8>),
    chain: &mut ChainState,
    key: &LogKey,
) {
    let start = out.len();
    out.extend_from_slice(&[0; PAYLOAD_OFFSET]);
    out[start + TYPE_OFFSET] = record_type as u8;
    out[start + FIRST_SEQ_OFFSET..start + COUNT_OFFSET].copy_from_slice(&first_seq.to_le_bytes());
    out[start + COUNT_OFFSET..start + PAYLOAD_OFFSET].copy_from_slice(&count.to_le_bytes());
    payload(out);
    let len = (out.len() - start + TRAILER_LEN) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let hash = chain.next_hash(&out[start..]);
    let tag = chain.next_tag(key, &hash);
    out.extend_from_slice(&hash);
    out.extend_from_slice(&tag);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    *chain = ChainState { hash, tag };
}

/// Appends a batch record for `events` starting at `first_seq`.
pub fn encode_batch(
    out: &mut Vec<u8>,
    first_seq: u64,
    events: &[Vec<u8>],
    chain: &mut ChainState,
    key: &LogKey,
) {
    let count = events.len() as u32;
    let payload = |out: &mut Vec<u8>| {
        for e in events {
            out.extend_from_slice(&(e.len() as u32).to_le_bytes());
            out.extend_from_slice(e);
        }
    };
    encode(
        out,
        RecordType::Batch,
        first_seq,
        count,
        payload,
        chain,
        key,
    );
}

pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
