//! Walking a segment's records in order and deciding where it ends, per the corruption policy of
//! `log-format/README.md`: strict for sealed segments, torn-tail tolerant for the active one.
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::error::{Corruption, LogError};
use super::record::{self, FrameError, Record};
use super::segment::{SegmentHeader, Verifier, HEADER_LEN};

/// Random access to a segment's bytes.
pub trait Source {
    /// Bytes `offset .. offset + len`, or `None` if the segment is shorter.
    fn get(&mut self, offset: u64, len: usize) -> io::Result<Option<&[u8]>>;
    /// The segment's current length.
    fn size(&self) -> u64;
}

impl Source for &[u8] {
    fn get(&mut self, offset: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        Ok(start
            .checked_add(len)
            .and_then(|end| <[u8]>::get(self, start..end)))
    }

    fn size(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

/// How much a [`FileSource`] reads ahead.
pub const READ_WINDOW: usize = 256 << 10;

/// Reads a file that may be growing (the active segment) with `pread`, through a read-ahead window.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    len: u64,
    window_start: u64,
    window: Vec<u8>,
}

impl FileSource {
    pub fn new(file: File) -> io::Result<FileSource> {
        let len = file.metadata()?.len();
        Ok(FileSource {
            file,
            len,
            window_start: 0,
            window: Vec::new(),
        })
    }

    /// Forgets cached bytes and re-reads the length, to see what the writer appended since.
    pub fn refresh(&mut self) -> io::Result<()> {
        self.len = self.file.metadata()?.len();
        self.window.clear();
        Ok(())
    }
}

impl Source for FileSource {
    fn get(&mut self, offset: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let end = offset.saturating_add(len as u64);
        if end > self.len {
            return Ok(None);
        }
        let cached =
            offset >= self.window_start && end <= self.window_start + self.window.len() as u64;
        if !cached {
            let want = (len.max(READ_WINDOW) as u64).min(self.len - offset) as usize;
            self.window.resize(want, 0);
            self.file.read_exact_at(&mut self.window, offset)?;
            self.window_start = offset;
        }
        let start = (offset - self.window_start) as usize;
        Ok(Some(&self.window[start..start + len]))
    }

    fn size(&self) -> u64 {
        self.len
    }
}

/// Where a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// At a seal record; `offset` is the end of the seal.
    Sealed { offset: u64 },
    /// At the end of the written records (a zero length or the end of the file).
    End { offset: u64 },
    /// At the remains of an unfinished write (active segment only).
    Torn { offset: u64 },
}

impl Stop {
    /// The offset just after the last valid record.
    pub fn offset(&self) -> u64 {
        match *self {
            Stop::Sealed { offset } | Stop::End { offset } | Stop::Torn { offset } => offset,
        }
    }
}

/// A segment being walked: its verifier, the running SHA-256 of its bytes, and the position.
#[derive(Debug, Clone)]
pub struct SegmentScan {
    pub verifier: Verifier,
    pub sha256: Sha256,
    pub offset: u64,
    /// False for sealed segments: any anomaly is an error.
    pub active: bool,
}

impl SegmentScan {
    /// Reads the header of the segment at `path` named for `first_seq`, and prepares the walk.
    pub fn start<S: Source>(
        src: &mut S,
        path: &Path,
        first_seq: u64,
        key: Option<super::chain::LogKey>,
        active: bool,
    ) -> Result<(SegmentScan, SegmentHeader), LogError> {
        let bytes = src
            .get(0, HEADER_LEN)
            .map_err(|e| LogError::io("read", path, e))?
            .ok_or_else(|| LogError::corrupt(path, 0, Corruption::Truncated))?;
        let header = SegmentHeader::decode(bytes, path)?;
        let mut sha256 = Sha256::new();
        sha256.update(bytes);
        if header.first_seq != first_seq {
            return Err(LogError::corrupt(path, 0, Corruption::Discontinuity));
        }
        let verifier = Verifier::new(path.to_path_buf(), &header, key);
        let scan = SegmentScan {
            verifier,
            sha256,
            offset: HEADER_LEN as u64,
            active,
        };
        Ok((scan, header))
    }

    fn err(&self, kind: Corruption) -> LogError {
        LogError::corrupt(&self.verifier.path, self.offset, kind)
    }

    /// Verifies records from the current position on, calling `on_record` for each (batch or
    /// seal) once verified, until the segment ends. Returns where and why it stopped; may be called again on a growing file.
    pub fn run<S: Source>(
        &mut self,
        src: &mut S,
        mut on_record: impl FnMut(&Record<'_>),
    ) -> Result<Stop, LogError> {
        loop {
            if self.verifier.sealed {
                return self.after_seal(src);
            }
            let offset = self.offset;
            match self.next_record(src)? {
                Ok(rec) => {
                    let sha = &self.sha256;
                    self.verifier
                        .check(&rec, offset, || sha.clone().finalize().into())?;
                    self.sha256.update(rec.bytes);
                    self.offset += rec.len() as u64;
                    on_record(&rec);
                }
                Err(stop) => return Ok(stop),
            }
        }
    }

    fn next_record<'s, S: Source>(
        &self,
        src: &'s mut S,
    ) -> Result<Result<Record<'s>, Stop>, LogError> {
        let path = &self.verifier.path;
        let io_err = |e| LogError::io("read", path, e);
        let avail = src.size().saturating_sub(self.offset);
        let end = Stop::End {
            offset: self.offset,
        };
        if avail == 0 {
            return Ok(Err(end));
        }
        let prefix = src
            .get(self.offset, avail.min(4) as usize)
            .map_err(io_err)?;
        let len = match prefix.map(record::frame_len) {
            Some(Ok(len)) => len,
            Some(Err(FrameError::End)) | None => return Ok(Err(end)),
            Some(Err(e)) => return self.invalid(src, e, None).map(Err),
        };
        if (len as u64) > avail {
            return self
                .invalid(src, FrameError::Incomplete, Some(len))
                .map(Err);
        }
        let checked = match src.get(self.offset, len).map_err(io_err)? {
            Some(bytes) => record::check(bytes),
            None => Err(FrameError::Incomplete),
        };
        if let Err(e) = checked {
            return self.invalid(src, e, Some(len)).map(Err);
        }
        match src.get(self.offset, len).map_err(io_err)? {
            Some(bytes) => Ok(Ok(record::view(bytes))),
            None => Err(self.err(Corruption::Truncated)),
        }
    }

    /// Decides what an invalid record at the current offset means.
    fn invalid<S: Source>(
        &self,
        src: &mut S,
        error: FrameError,
        declared_len: Option<usize>,
    ) -> Result<Stop, LogError> {
        match error {
            FrameError::UnknownType(t) => {
                return Err(LogError::UnknownRecordType {
                    segment: self.verifier.path.clone(),
                    offset: self.offset,
                    record_type: t,
                })
            }
            FrameError::BadContent => return Err(self.err(Corruption::BadLength)),
            _ => {}
        }
        let kind = match error {
            FrameError::BadCrc => Corruption::BadCrc,
            FrameError::Incomplete if !self.active => Corruption::Truncated,
            _ => Corruption::BadLength,
        };
        if !self.active || self.valid_record_follows(src, declared_len) {
            return Err(self.err(kind));
        }
        Ok(Stop::Torn {
            offset: self.offset,
        })
    }

    /// True if a whole record with a valid CRC starts right after the declared end of the invalid
    /// one: then the invalid record is damage in the middle, not the remains of the last write.
    fn valid_record_follows<S: Source>(&self, src: &mut S, declared_len: Option<usize>) -> bool {
        let Some(len) = declared_len else {
            return false;
        };
        let next = self.offset + len as u64;
        let avail = src.size().saturating_sub(next);
        let Ok(Some(prefix)) = src.get(next, avail.min(4) as usize) else {
            return false;
        };
        let Ok(next_len) = record::frame_len(prefix) else {
            return false;
        };
        matches!(src.get(next, next_len), Ok(Some(b)) if record::parse(b).is_ok())
    }

    fn after_seal<S: Source>(&self, src: &mut S) -> Result<Stop, LogError> {
        if !self.active && src.size() != self.offset {
            return Err(self.err(Corruption::MissingSeal));
        }
        Ok(Stop::Sealed {
            offset: self.offset,
        })
    }
}
