//! The Python calendar's `journal`: fixed 44-byte records `time u32 BE || root (32) || mac (8)`,
//! no header, no checksum. A record whose MAC is eight zero bytes is a legacy 36-byte commitment
//! ([`crate::calendar::legacy`]). A file whose length is not a multiple of 44 ends in a torn
//! record (a write that never completed, so no client was answered for it): the Python reader
//! stops before it, and so does this one, counting it.
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::calendar::commitment::COMMITMENT_LEN;
use crate::calendar::legacy::{self, LEGACY_LEN};

/// Records read per `read` call (about 1.4 MB).
const READ_RECORDS: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One journal record as the Python server keys it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Journal index.
    pub index: u64,
    /// 44 bytes, or 36 for a legacy record.
    pub commitment: Vec<u8>,
}

impl Record {
    pub fn is_legacy(&self) -> bool {
        self.commitment.len() == LEGACY_LEN
    }
}

/// Reads the journal front to back.
pub struct Journal {
    path: PathBuf,
    file: BufReader<File>,
    /// Whole records in the file.
    pub records: u64,
    /// Bytes of a torn last record (0: none).
    pub torn_tail_bytes: u64,
    next: u64,
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
            file: BufReader::with_capacity(READ_RECORDS * COMMITMENT_LEN, file),
            records: len / COMMITMENT_LEN as u64,
            torn_tail_bytes: len % COMMITMENT_LEN as u64,
            next: 0,
        })
    }

    /// The next whole record, or `None` after the last one.
    pub fn next_record(&mut self) -> Result<Option<Record>, JournalError> {
        if self.next >= self.records {
            return Ok(None);
        }
        let mut buf = [0u8; COMMITMENT_LEN];
        self.file
            .read_exact(&mut buf)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })?;
        let index = self.next;
        self.next += 1;
        Ok(Some(Record {
            index,
            commitment: legacy::client_message(&buf).to_vec(),
        }))
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
        let mut j = Journal::open(&path).unwrap();
        assert_eq!((j.records, j.torn_tail_bytes), (2, 10));
        let a = j.next_record().unwrap().unwrap();
        assert_eq!((a.index, a.commitment.len(), a.is_legacy()), (0, 44, false));
        let b = j.next_record().unwrap().unwrap();
        assert_eq!(b.commitment, vec![2u8; LEGACY_LEN]);
        assert!(b.is_legacy());
        assert_eq!(j.next_record().unwrap(), None);
    }
}
