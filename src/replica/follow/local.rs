//! The mirror's own copy of the log: `DIR/log/`, segment files byte for byte as the primary wrote
//! them, extended only with bytes that verified (CRC, public hash chain, HMAC chain with the key,
//! seals, segment continuity) and made durable before anything is folded or served from them.
//!
//! The copy is a log like any other: `otsctl verify` reads it, the projection is rebuilt from it on
//! start-up, and it is published again under `GET /log/`. On restart it resumes from its own last
//! valid record (a torn tail from a crash mid-append is cut, logged).
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::log::record::{self, Record, RecordType, FIRST_SEQ_OFFSET};
use crate::log::scan::{FileSource, SegmentScan, Source, Stop};
use crate::log::segment::{list_segments, segment_name, SegmentHeader, HEADER_LEN};
use crate::log::{ChainState, Corruption, DurableEnd, EndPosition, Head, LogError, LogKey};

/// A primary's bytes that do not extend the copy: the copy is kept, following stops.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fork {
    /// Segment (first sequence number) and offset in it where the histories part.
    pub segment: u64,
    pub offset: u64,
    /// The sequence number the copy expects next.
    pub our_next_seq: u64,
    /// What the primary's record there claims, when it could be read.
    pub their_seq: Option<u64>,
    pub problem: String,
}

impl std::fmt::Display for Fork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the primary's segment {} at offset {} does not extend this mirror's copy (next seq \
             here {}, the primary's record there claims seq {}): {}",
            segment_name(self.segment),
            self.offset,
            self.our_next_seq,
            self.their_seq.map_or("?".to_owned(), |s| s.to_string()),
            self.problem
        )
    }
}

/// What one [`LocalCopy::append`] took in.
#[derive(Debug, Default)]
pub struct Appended {
    /// Bytes verified and stored.
    pub bytes: u64,
    /// The events of the stored batch records, in order.
    pub events: Vec<(u64, Vec<u8>)>,
    /// Bytes left over at the end: an incomplete or invalid record (asked for again next time).
    pub leftover: u64,
    /// Set when the bytes after the stored ones do not extend the copy.
    pub fork: Option<Fork>,
}

/// Where the copy stands.
#[derive(Debug)]
enum At {
    /// Inside segment `scan` (open for appending).
    Segment { file: File, scan: Box<SegmentScan> },
    /// After a seal (or at genesis): the next segment's header must carry `head`.
    Between { head: Head },
}

/// The verified local copy of a followed log.
#[derive(Debug)]
pub struct LocalCopy {
    dir: PathBuf,
    key: Option<LogKey>,
    at: At,
    end: DurableEnd,
}

impl LocalCopy {
    /// Opens the copy in `dir` (created if missing), resuming after its last valid record.
    pub fn open(dir: &Path, key: Option<LogKey>) -> Result<LocalCopy, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io("create", dir, e))?;
        let genesis = Head {
            next_seq: 0,
            chain: ChainState::GENESIS,
        };
        let mut copy = LocalCopy {
            dir: dir.to_path_buf(),
            key,
            at: At::Between { head: genesis },
            end: DurableEnd::default(),
        };
        if let Some(&last) = list_segments(dir)?.last() {
            copy.resume(last)?;
        }
        Ok(copy)
    }

    fn resume(&mut self, first_seq: u64) -> Result<(), LogError> {
        let path = self.dir.join(segment_name(first_seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io("open", &path, e))?;
        let mut src = FileSource::new(
            file.try_clone()
                .map_err(|e| LogError::io("open", &path, e))?,
        )
        .map_err(|e| LogError::io("stat", &path, e))?;
        let (mut scan, _) = SegmentScan::start(&mut src, &path, first_seq, self.key.clone(), true)?;
        let stop = scan.run(&mut src, |_| {})?;
        if stop.offset() < src.size() {
            tracing::warn!(
                "mirror copy: cut {} bytes after offset {} of {} (an append interrupted by a crash)",
                src.size() - stop.offset(),
                stop.offset(),
                path.display()
            );
            file.set_len(stop.offset())
                .and_then(|()| file.sync_all())
                .map_err(|e| LogError::io("truncate", &path, e))?;
        }
        self.end.set(EndPosition {
            segment: first_seq,
            offset: stop.offset(),
            next_seq: scan.verifier.next_seq,
        });
        self.at = match stop {
            Stop::Sealed { .. } => At::Between {
                head: head_of(&scan),
            },
            _ => At::Segment {
                file,
                scan: Box::new(scan),
            },
        };
        Ok(())
    }

    /// The copy's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the durable copy ends (shared with the publisher of the copy).
    pub fn durable_end(&self) -> DurableEnd {
        self.end.clone()
    }

    /// The segment to read next and the offset to read it from.
    pub fn want(&self) -> (u64, u64) {
        match &self.at {
            At::Segment { scan, .. } => (first_seq_of(scan), scan.offset),
            At::Between { head } => (head.next_seq, 0),
        }
    }

    /// The copy's last bytes, which the source must still hold at the same place before anything
    /// after them is taken: the trailer of the last record (its public chain value commits to the
    /// whole history before it), or the segment header if no record follows it yet. Empty between
    /// segments (the next header is checked against the seal instead).
    pub fn overlap(&self) -> Result<Vec<u8>, LogError> {
        let At::Segment { file, scan } = &self.at else {
            return Ok(Vec::new());
        };
        let k = if scan.offset > HEADER_LEN as u64 {
            record::TRAILER_LEN as u64
        } else {
            HEADER_LEN as u64
        };
        let mut buf = vec![0u8; k as usize];
        file.read_exact_at(&mut buf, scan.offset - k)
            .map_err(|e| LogError::io("read", &scan.verifier.path, e))?;
        Ok(buf)
    }

    /// The sequence number of the next event the copy expects.
    pub fn next_seq(&self) -> u64 {
        match &self.at {
            At::Segment { scan, .. } => scan.verifier.next_seq,
            At::Between { head } => head.next_seq,
        }
    }

    /// Verifies `bytes` (segment and offset as [`LocalCopy::want`] said), stores the valid prefix
    /// durably, and returns its events. A record that does not extend the copy is a [`Fork`]
    /// (returned in [`Appended::fork`]); what verified before it is stored first.
    pub fn append(&mut self, bytes: &[u8]) -> Result<Appended, LogError> {
        let mut rest = bytes;
        if let At::Between { head } = self.at {
            if rest.len() < HEADER_LEN {
                return Ok(Appended {
                    leftover: rest.len() as u64,
                    ..Appended::default()
                });
            }
            if let Some(fork) = self.start_segment(head, &rest[..HEADER_LEN])? {
                return Ok(Appended {
                    fork: Some(fork),
                    ..Appended::default()
                });
            }
            rest = &rest[HEADER_LEN..];
        }
        let At::Segment { file, scan } = &mut self.at else {
            return Ok(Appended::default());
        };
        let first_seq = first_seq_of(scan);
        let base = scan.offset;
        let mut src = Window { base, bytes: rest };
        let mut events = Vec::new();
        let result = scan.run(&mut src, |rec| collect(rec, &mut events));
        let stored = scan.offset - base;
        let path = scan.verifier.path.clone();
        file.write_all_at(&rest[..stored as usize], base)
            .and_then(|()| file.sync_data())
            .map_err(|e| LogError::io("write", &path, e))?;
        self.end.set(EndPosition {
            segment: first_seq,
            offset: scan.offset,
            next_seq: scan.verifier.next_seq,
        });
        let mut appended = Appended {
            bytes: stored,
            events,
            leftover: rest.len() as u64 - stored,
            fork: None,
        };
        match result {
            Ok(Stop::Sealed { .. }) => {
                file.sync_all()
                    .map_err(|e| LogError::io("fsync", &path, e))?;
                self.at = At::Between {
                    head: head_of(scan),
                };
                Ok(appended)
            }
            Ok(_) => Ok(appended),
            Err(LogError::Corrupt { kind, offset, .. }) if is_chain_break(kind) => {
                let their_seq = rest
                    .get((offset - base) as usize + FIRST_SEQ_OFFSET..)
                    .filter(|b| b.len() >= 8)
                    .map(|b| record::read_u64(b, 0));
                appended.fork = Some(Fork {
                    segment: first_seq,
                    offset,
                    our_next_seq: scan.verifier.next_seq,
                    their_seq,
                    problem: format!("{kind:?}"),
                });
                Ok(appended)
            }
            Err(e) => {
                if appended.bytes > 0 {
                    tracing::warn!("mirror: stored {} bytes before: {e}", appended.bytes);
                }
                Err(e)
            }
        }
    }

    /// Checks a new segment's header against the head after the previous seal, and creates the
    /// segment file with it (through a `.tmp` file, fsynced, renamed).
    fn start_segment(&mut self, head: Head, header: &[u8]) -> Result<Option<Fork>, LogError> {
        let path = self.dir.join(segment_name(head.next_seq));
        let decoded = SegmentHeader::decode(header, &path)?;
        if decoded.first_seq != head.next_seq || decoded.prev != head.chain {
            return Ok(Some(Fork {
                segment: head.next_seq,
                offset: 0,
                our_next_seq: head.next_seq,
                their_seq: Some(decoded.first_seq),
                problem: "the segment header does not continue the previous seal".into(),
            }));
        }
        let tmp = path.with_extension("tmp");
        let io = |op, e| LogError::io(op, &tmp, e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io("create", e))?;
        file.write_all_at(header, 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| io("write", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
        crate::log::atomic::sync_dir(&self.dir)
            .map_err(|e| LogError::io("fsync", &self.dir, std::io::Error::other(e.to_string())))?;
        let mut src = Window {
            base: 0,
            bytes: header,
        };
        let (scan, _) = SegmentScan::start(&mut src, &path, head.next_seq, self.key.clone(), true)?;
        self.end.set(EndPosition {
            segment: head.next_seq,
            offset: HEADER_LEN as u64,
            next_seq: head.next_seq,
        });
        self.at = At::Segment {
            file,
            scan: Box::new(scan),
        };
        Ok(None)
    }
}

/// Kinds of verification failure that mean "another history", not a transfer problem.
fn is_chain_break(kind: Corruption) -> bool {
    matches!(
        kind,
        Corruption::BadSequence
            | Corruption::BadHash
            | Corruption::BadTag
            | Corruption::BadSeal
            | Corruption::MissingSeal
            | Corruption::Discontinuity
    )
}

fn collect(rec: &Record<'_>, events: &mut Vec<(u64, Vec<u8>)>) {
    if rec.record_type != RecordType::Batch {
        return;
    }
    record::for_each_event(rec.payload, rec.count, |k, ev| {
        events.push((rec.first_seq + u64::from(k), ev.to_vec()));
    });
}

fn head_of(scan: &SegmentScan) -> Head {
    Head {
        next_seq: scan.verifier.next_seq,
        chain: scan.verifier.chain,
    }
}

/// The segment a scan walks (its file name's number).
fn first_seq_of(scan: &SegmentScan) -> u64 {
    scan.verifier
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| crate::log::segment::parse_segment_name(Path::new(""), n).ok())
        .flatten()
        .unwrap_or(0)
}

/// Bytes `base ..` of a segment, as fetched: a [`Source`] for the scanner.
struct Window<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl Source for Window<'_> {
    fn get(&mut self, offset: u64, len: usize) -> std::io::Result<Option<&[u8]>> {
        let Some(start) = offset.checked_sub(self.base) else {
            return Ok(None);
        };
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        Ok(start
            .checked_add(len)
            .and_then(|end| self.bytes.get(start..end)))
    }

    fn size(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Writer, WriterOptions};

    /// A log of `batches` one-event batches in 4 KiB segments, written by the real writer.
    fn log(dir: &Path, key: &LogKey, tag: u8, batches: usize) {
        let opts = WriterOptions {
            segment_size: 4096,
            ..WriterOptions::default()
        };
        let (mut w, _) = Writer::open(dir, key.clone(), opts).expect("writer");
        for i in 0..batches {
            let event = vec![tag, (i % 251) as u8, 7, 7, 7, 7, 7, 7, 7, 7];
            w.append_batches(&[vec![event; 3]]).expect("append");
        }
    }

    /// Feeds `src`'s bytes to `copy` in chunks of at most `chunk` bytes, as a follower would,
    /// until the copy stops advancing (the zeros of a preallocated tail end it).
    fn follow(copy: &mut LocalCopy, src: &Path, chunk: usize) -> (u64, Option<Fork>) {
        let (mut events, mut n) = (0, chunk);
        loop {
            let before = copy.want();
            let (seg, off) = before;
            let Ok(bytes) = std::fs::read(src.join(segment_name(seg))) else {
                return (events, None);
            };
            let off = off as usize;
            let take = &bytes[off.min(bytes.len())..bytes.len().min(off + n)];
            let got = copy.append(take).expect("append");
            events += got.events.len() as u64;
            if got.fork.is_some() {
                return (events, got.fork);
            }
            if copy.want() != before {
                n = chunk;
            } else if off + n < bytes.len() {
                // Less than a record (or a header): ask for more, as the follower does.
                n *= 2;
            } else {
                return (events, None);
            }
        }
    }

    #[test]
    fn a_copy_taken_in_pieces_is_the_log_byte_for_byte_and_resumes() {
        let key = LogKey::from_bytes([3; 32]);
        let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        log(src.path(), &key, 1, 200);
        let mut copy = LocalCopy::open(dst.path(), Some(key.clone())).unwrap();
        let (events, fork) = follow(&mut copy, src.path(), 97);
        assert_eq!(fork, None);
        assert_eq!(events, 600);
        assert_eq!(copy.next_seq(), 600);
        let segs = list_segments(src.path()).unwrap();
        assert!(segs.len() > 3, "several sealed segments");
        for s in &segs[..segs.len() - 1] {
            let name = segment_name(*s);
            assert_eq!(
                std::fs::read(src.path().join(&name)).unwrap(),
                std::fs::read(dst.path().join(&name)).unwrap(),
                "{name}"
            );
        }
        // A torn tail (a crash mid-append) is cut on reopening; the copy resumes after it.
        let (last, end) = copy.want();
        drop(copy);
        let path = dst.path().join(segment_name(last));
        let f = OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &f, &[9; 10]).unwrap();
        let copy = LocalCopy::open(dst.path(), Some(key)).unwrap();
        assert_eq!(copy.want(), (last, end));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), end);
    }

    #[test]
    fn another_history_is_a_fork_with_its_position() {
        let key = LogKey::from_bytes([3; 32]);
        let (a, b, dst) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        log(a.path(), &key, 1, 10);
        log(b.path(), &key, 2, 30);
        let mut copy = LocalCopy::open(dst.path(), Some(key)).unwrap();
        follow(&mut copy, a.path(), 1 << 20);
        let held = copy.next_seq();
        let (_, fork) = follow(&mut copy, b.path(), 1 << 20);
        let fork = fork.expect("a fork");
        assert_eq!(fork.our_next_seq, held);
        assert_eq!(fork.problem, "BadHash");
        assert_eq!(copy.next_seq(), held, "nothing of the other history taken");
    }
}
