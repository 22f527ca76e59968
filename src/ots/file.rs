//! Detached timestamp files (`.ots`): what clients keep beside the file they timestamped.
//!
//! Layout: the 31-byte magic [`HEADER_MAGIC`], one byte major version (1), the file hash operation
//! (a hash op tag), the file's digest (as long as that hash's output), then the timestamp tree for
//! that digest. Nothing may follow. Newer major versions are refused with a clear error.

use super::error::{DecodeError, EncodeError};
use super::op::Op;
use super::ser::Reader;
use super::timestamp::Timestamp;

/// Chosen by python-opentimestamps to be legible in a hexdump yet read as binary data.
pub const HEADER_MAGIC: &[u8; 31] =
    b"\x00OpenTimestamps\x00\x00Proof\x00\xbf\x89\xe2\xe8\x84\xe8\x92\x94";
pub const MAJOR_VERSION: u8 = 1;

/// A detached timestamp: the hash operation applied to the file, and the proof for its digest
/// (`timestamp.msg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachedTimestampFile {
    pub file_hash_op: Op,
    pub timestamp: Timestamp,
}

impl DetachedTimestampFile {
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let tag = self.file_hash_op.tag();
        if self.file_hash_op.digest_len() != Some(self.timestamp.msg.len()) {
            return Err(EncodeError::BadFileDigest { tag });
        }
        out.extend_from_slice(HEADER_MAGIC);
        out.push(MAJOR_VERSION);
        out.push(tag);
        out.extend_from_slice(&self.timestamp.msg);
        self.timestamp.write(out)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.write(&mut out)?;
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        match r.read_bytes(HEADER_MAGIC.len()) {
            Ok(magic) if magic == HEADER_MAGIC => {}
            _ => return Err(DecodeError::BadMagic),
        }
        let version = r.read_u8()?;
        if version != MAJOR_VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let file_hash_op = Op::read_hash_op(&mut r)?;
        let digest_len = file_hash_op.digest_len().unwrap_or_default();
        let digest = r.read_bytes(digest_len)?.to_vec();
        let timestamp = Timestamp::read(&mut r, digest)?;
        r.expect_end()?;
        Ok(DetachedTimestampFile {
            file_hash_op,
            timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ots::attestation::Attestation;

    fn sample() -> DetachedTimestampFile {
        let mut timestamp = Timestamp::new(vec![0xaa; 32]);
        timestamp
            .attestations
            .insert(Attestation::Bitcoin { height: 1 });
        DetachedTimestampFile {
            file_hash_op: Op::Sha256,
            timestamp,
        }
    }

    #[test]
    fn roundtrips() {
        let bytes = sample().to_bytes().unwrap();
        assert_eq!(bytes[..31], HEADER_MAGIC[..]);
        assert_eq!(bytes[31..33], [1, 0x08]);
        assert_eq!(DetachedTimestampFile::from_bytes(&bytes).unwrap(), sample());
    }

    #[test]
    fn refuses_bad_header_version_op_and_trailing_bytes() {
        let good = sample().to_bytes().unwrap();
        let mut bad = good.clone();
        bad[0] = 1;
        assert_eq!(
            DetachedTimestampFile::from_bytes(&bad),
            Err(DecodeError::BadMagic)
        );
        bad = good.clone();
        bad[31] = 2;
        assert_eq!(
            DetachedTimestampFile::from_bytes(&bad),
            Err(DecodeError::UnsupportedVersion { version: 2 })
        );
        bad = good.clone();
        bad[32] = 0xf0;
        assert!(matches!(
            DetachedTimestampFile::from_bytes(&bad),
            Err(DecodeError::NotAHashOp { tag: 0xf0, .. })
        ));
        bad = good;
        bad.push(0);
        assert!(matches!(
            DetachedTimestampFile::from_bytes(&bad),
            Err(DecodeError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn digest_length_must_match_hash() {
        let mut file = sample();
        file.file_hash_op = Op::Sha1;
        assert_eq!(
            file.to_bytes(),
            Err(EncodeError::BadFileDigest { tag: 0x02 })
        );
    }
}
