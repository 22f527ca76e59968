//! Verifying one record at a time against a chain state, for tools that rebuild a log from several
//! copies of it (`otsctl recover`): at each position they try every copy and keep the first record
//! that continues the chain.
//!
//! Unlike [`super::scan`], nothing here decides torn tail versus damage: every record that does not
//! verify is a [`Fault`], and the caller decides what to do with the copy it came from. The checks
//! are exactly those of [`super::segment::Verifier`] (sequence number, payload, public hash chain,
//! HMAC chain, seal), applied to a clone so a failed candidate leaves the state untouched.
use std::path::Path;

use sha2::{Digest, Sha256};

use super::error::{Corruption, LogError};
use super::record::{self, FrameError, FIRST_SEQ_OFFSET};
use super::segment::{SegmentHeader, Verifier, HEADER_LEN};

/// Why the bytes at a position of one copy are not the next record of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The copy ends here (end of file, or a zero length: the unwritten part of a segment).
    End,
    /// The framing or CRC is wrong (`claimed_seq` when at least the prefix could be read).
    Frame {
        error: FrameError,
        claimed_seq: Option<u64>,
    },
    /// The frame and CRC are valid, but the record does not continue the chain.
    Chain { kind: Corruption, claimed_seq: u64 },
}

/// The verification state at a position of the log being rebuilt: the verifier of the current
/// segment and the SHA-256 of the segment's bytes so far (for its seal).
#[derive(Debug, Clone)]
pub struct Position {
    pub verifier: Verifier,
    pub sha256: Sha256,
    /// Offset of the next record in the segment.
    pub offset: u64,
}

impl Position {
    /// The start of the segment whose header is `header` (its encoding is the segment's first bytes).
    pub fn segment_start(path: &Path, header: &SegmentHeader, key: super::LogKey) -> Position {
        let mut sha256 = Sha256::new();
        sha256.update(header.encode());
        Position {
            verifier: Verifier::new(path.to_path_buf(), header, Some(key)),
            sha256,
            offset: HEADER_LEN as u64,
        }
    }

    /// True once the segment's seal has been accepted.
    pub fn sealed(&self) -> bool {
        self.verifier.sealed
    }

    /// Checks the record at `self.offset` of `segment` (a copy's whole segment file). On success,
    /// returns the record's length and the position after it; `self` is unchanged either way.
    pub fn try_next(&self, segment: &[u8]) -> Result<(usize, Position), Fault> {
        let start = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let buf = segment.get(start..).unwrap_or_default();
        let claimed_seq = buf
            .get(FIRST_SEQ_OFFSET..FIRST_SEQ_OFFSET + 8)
            .map(|b| record::read_u64(b, 0));
        let rec = match record::parse(buf) {
            Ok(rec) => rec,
            Err(FrameError::End) => return Err(Fault::End),
            Err(FrameError::Incomplete) if buf.iter().all(|&b| b == 0) => return Err(Fault::End),
            Err(error) => return Err(Fault::Frame { error, claimed_seq }),
        };
        let mut next = self.clone();
        let digest = || self.sha256.clone().finalize().into();
        if let Err(e) = next.verifier.check(&rec, self.offset, digest) {
            let kind = match e {
                LogError::Corrupt { kind, .. } => kind,
                _ => Corruption::BadLength,
            };
            let claimed_seq = rec.first_seq;
            return Err(Fault::Chain { kind, claimed_seq });
        }
        next.sha256.update(rec.bytes);
        next.offset += rec.len() as u64;
        Ok((rec.len(), next))
    }
}

/// Checks that a copy of a segment starts with exactly the header the log expects there; returns
/// what is wrong otherwise (a header is not authenticated, so it must match the chain state).
pub fn check_header(segment: &[u8], expected: &SegmentHeader, path: &Path) -> Result<(), LogError> {
    let decoded = SegmentHeader::decode(segment, path)?;
    if decoded != *expected {
        return Err(LogError::corrupt(path, 0, Corruption::Discontinuity));
    }
    Ok(())
}
