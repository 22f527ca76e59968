//! The Python calendar's `journal`: fixed 44-byte records `time u32 BE || root (32) || mac (8)`,
//! no header, no checksum. A record whose MAC is eight zero bytes is a legacy 36-byte commitment
//! ([`crate::calendar::legacy`]). A file whose length is not a multiple of 44 ends in a torn
//! record (a write that never completed, so no client was answered for it): the Python reader
//! stops before it, and so does this one, counting it.
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::calendar::commitment::COMMITMENT_LEN;
use crate::calendar::legacy::{self, LEGACY_LEN};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The commitment of a 44-byte journal record as the Python server keys it: 44 bytes, or 36 for
/// a legacy record (zero MAC).
pub fn commitment(record: &[u8; COMMITMENT_LEN]) -> &[u8] {
    legacy::client_message(record)
}

/// Whether a commitment (as [`commitment`] gives it) is a legacy 36-byte one.
pub fn is_legacy(commitment: &[u8]) -> bool {
    commitment.len() == LEGACY_LEN
}

/// The journal, read by record number (several threads may read it at once).
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Whole records in the file.
    pub records: u64,
    /// Bytes of a torn last record (0: none).
    pub torn_tail_bytes: u64,
}

impl Journal {
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Ok(Journal {
            path: path.to_owned(),
            file,
            records: len / COMMITMENT_LEN as u64,
            torn_tail_bytes: len % COMMITMENT_LEN as u64,
        })
    }

    /// Reads the whole records `first ..` into `buf` (a multiple of [`COMMITMENT_LEN`] bytes, cut
    /// to the records there are); returns how many were read.
    pub fn read_records(&self, first: u64, buf: &mut Vec<u8>) -> Result<usize, JournalError> {
        let n = (buf.len() / COMMITMENT_LEN).min(self.records.saturating_sub(first) as usize);
        buf.truncate(n * COMMITMENT_LEN);
        self.file
            .read_exact_at(buf, first * COMMITMENT_LEN as u64)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(n)
    }
}

/// `journal.known-good`: the index before which the Python stamper never loads pending records
/// (decimal text; absent means 0).
pub fn known_good(calendar: &Path) -> Result<u64, JournalError> {
    let path = calendar.join("journal.known-good");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().parse().unwrap_or(0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(JournalError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_legacy_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut bytes = vec![1u8; COMMITMENT_LEN];
        let mut legacy = vec![2u8; LEGACY_LEN];
        legacy.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&legacy);
        bytes.extend_from_slice(&[3u8; 10]);
        std::fs::write(&path, &bytes).unwrap();
        let j = Journal::open(&path).unwrap();
        assert_eq!((j.records, j.torn_tail_bytes), (2, 10));
        let mut buf = vec![0u8; 8 * COMMITMENT_LEN];
        assert_eq!(j.read_records(0, &mut buf).unwrap(), 2);
        assert_eq!(buf.len(), 2 * COMMITMENT_LEN);
        let records: Vec<&[u8; COMMITMENT_LEN]> = buf
            .chunks_exact(COMMITMENT_LEN)
            .map(|r| r.try_into().unwrap())
            .collect();
        assert_eq!(commitment(records[0]), &[1u8; COMMITMENT_LEN][..]);
        assert!(!is_legacy(commitment(records[0])));
        assert_eq!(commitment(records[1]), &[2u8; LEGACY_LEN][..]);
        assert!(is_legacy(commitment(records[1])));
        let mut buf = vec![0u8; 8 * COMMITMENT_LEN];
        assert_eq!(j.read_records(1, &mut buf).unwrap(), 1);
        assert_eq!(buf, legacy);
        let mut buf = vec![0u8; COMMITMENT_LEN];
        assert_eq!(j.read_records(2, &mut buf).unwrap(), 0);
    }
}
