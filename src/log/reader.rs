//! Reading and verifying the log: [`Reader`] for whole-log iteration (sealed segments through
//! `mmap`, the active one through `pread`), [`Tail`] for following the active segment as it grows.
use std::fs::File;
use std::path::{Path, PathBuf};

use super::chain::{Head, LogKey};
use super::error::{io_at, Corruption, LogError};
use super::mmap::Mapped;
use super::record::{self, Record, RecordType};
use super::scan::{FileSource, SegmentScan, Source, Stop};
use super::segment::{list_segments, segment_name, SegmentHeader, HEADER_LEN};

/// Reads a log directory; every call sees the segments present at that moment.
#[derive(Debug, Clone)]
pub struct Reader {
    dir: PathBuf,
    key: Option<LogKey>,
}

/// Delivers the events of a batch record with sequence number `>= from`.
fn deliver(rec: &Record<'_>, from: u64, f: &mut impl FnMut(u64, &[u8])) {
    if rec.record_type != RecordType::Batch || rec.first_seq + u64::from(rec.count) <= from {
        return;
    }
    record::for_each_event(rec.payload, rec.count, |k, ev| {
        let seq = rec.first_seq + u64::from(k);
        if seq >= from {
            f(seq, ev);
        }
    });
}

impl Reader {
    /// `key`: `Some` also verifies the HMAC chain; `None` verifies the public hash chain and CRCs.
    pub fn open(dir: &Path, key: Option<LogKey>) -> Result<Reader, LogError> {
        list_segments(dir)?;
        Ok(Reader {
            dir: dir.to_path_buf(),
            key,
        })
    }

    /// Calls `f(seq, event)` for every event with `seq >= from`, in order, verifying CRCs, chains
    /// and seals of every segment from the one holding `from` on. Returns the next sequence number.
    ///
    /// The chain values carried in the header of the first segment read are trusted; start at 0 to
    /// verify the whole log.
    pub fn for_each_from(&self, from: u64, mut f: impl FnMut(u64, &[u8])) -> Result<u64, LogError> {
        Ok(self
            .walk(from, &mut |rec| deliver(rec, from, &mut f))?
            .next_seq)
    }

    /// Like [`Reader::for_each_from`], record by record: `f` gets each record, verified like every
    /// other read, from the first holding an event with `seq >= from`: its type, `first_seq`,
    /// `count`, payload, and the public chain value `hash` after it. Seal records are passed
    /// too (count 0): the chain advances over them.
    pub fn for_each_record_from(
        &self,
        from: u64,
        mut f: impl FnMut(&Record<'_>),
    ) -> Result<u64, LogError> {
        let mut on_record = |rec: &Record<'_>| {
            if rec.first_seq + u64::from(rec.count) > from || rec.first_seq >= from {
                f(rec);
            }
        };
        Ok(self.walk(from, &mut on_record)?.next_seq)
    }

    /// Verifies the whole log from its first record; returns its head.
    pub fn verify(&self) -> Result<Head, LogError> {
        self.walk(0, &mut |_| {})
    }

    /// The head of the log, verifying only the last segment (trusting its header's carried values).
    pub fn head(&self) -> Result<Head, LogError> {
        self.walk(u64::MAX, &mut |_| {})
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// First sequence numbers of the segments present, ascending. Every segment but the last is
    /// sealed and durable: the writer fsyncs a seal before it creates the next segment.
    pub fn segments(&self) -> Result<Vec<u64>, LogError> {
        list_segments(&self.dir)
    }

    /// Verifies the one segment named for `first_seq`, whose header must continue `at` (the head
    /// after the previous segment's seal, or genesis; a gap or other chain values are a
    /// discontinuity), and calls `f(seq, event)` for each of its events. A `sealed` segment must
    /// end with its seal; otherwise it is read as the active segment (a torn tail ends it).
    /// Returns the head after the segment's last record.
    pub fn read_segment_from(
        &self,
        first_seq: u64,
        at: Head,
        sealed: bool,
        mut f: impl FnMut(u64, &[u8]),
    ) -> Result<Head, LogError> {
        let mut deliver_all = |rec: &Record<'_>| deliver(rec, 0, &mut f);
        let scan = self.read_segment(first_seq, sealed, Some(at), &mut deliver_all)?;
        Ok(head_of(&scan))
    }

    /// Verifies the sealed segment named for `first_seq` as [`Reader::read_segment_from`] does,
    /// delivering nothing: its events are read afterwards from the returned [`VerifiedSegment`],
    /// possibly on another thread, while the next segment is verified.
    pub fn verify_sealed(&self, first_seq: u64, at: Head) -> Result<VerifiedSegment, LogError> {
        let path = self.dir.join(segment_name(first_seq));
        let map = Mapped::sealed(&path)?;
        let mut src: &[u8] = &map;
        let scan = self.scan(&mut src, &path, first_seq, true, Some(at), &mut |_| {})?;
        Ok(VerifiedSegment {
            map,
            path,
            head: head_of(&scan),
        })
    }

    /// Starts reading the segment named for `first_seq` into the page cache without waiting
    /// (`posix_fadvise(WILLNEED)`): a reader that goes through segments in order asks for the
    /// next one before verifying this one, so that the disk works while it does. Advice only.
    pub fn prefetch(&self, first_seq: u64) {
        if let Ok(file) = File::open(self.dir.join(segment_name(first_seq))) {
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::WillNeed);
        }
    }

    /// Advises the kernel that the segment named for `first_seq` will not be read again soon:
    /// its pages no process maps leave the page cache (`posix_fadvise(DONTNEED)`). A bulk
    /// rebuild reads each segment once, and a log larger than memory streaming through the cache
    /// would push out the tables the rebuild writes, which it then reads back from disk. Advice
    /// only: nothing changes but what the cache holds.
    pub fn drop_cached(&self, first_seq: u64) {
        if let Ok(file) = File::open(self.dir.join(segment_name(first_seq))) {
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
        }
    }

    /// The decoded header of the segment named for `first_seq`.
    pub fn segment_header(&self, first_seq: u64) -> Result<SegmentHeader, LogError> {
        let path = self.dir.join(segment_name(first_seq));
        let mut file = File::open(&path).map_err(io_at("open", &path))?;
        let mut buf = [0u8; HEADER_LEN];
        std::io::Read::read_exact(&mut file, &mut buf)
            .map_err(|_| LogError::corrupt(&path, 0, Corruption::Truncated))?;
        SegmentHeader::decode(&buf, &path)
    }

    /// A follower of the log from sequence number `from`.
    pub fn tail(&self, from: u64) -> Tail {
        Tail {
            dir: self.dir.clone(),
            key: self.key.clone(),
            from,
            pos: None,
        }
    }

    fn walk(&self, from: u64, f: &mut impl FnMut(&Record<'_>)) -> Result<Head, LogError> {
        let segs = list_segments(&self.dir)?;
        let Some(start) = segs
            .iter()
            .rposition(|&s| s <= from)
            .or((!segs.is_empty()).then_some(0))
        else {
            return Ok(Head {
                next_seq: 0,
                chain: super::chain::ChainState::GENESIS,
            });
        };
        let mut prev: Option<Head> = None;
        for (i, &first_seq) in segs.iter().enumerate().skip(start) {
            let sealed = i + 1 < segs.len();
            prev = Some(head_of(&self.read_segment(first_seq, sealed, prev, f)?));
        }
        prev.ok_or(LogError::Closed)
    }

    /// Verifies the segment named for `first_seq`; with `expect`, its header must continue that
    /// head (same next sequence number and chain values). A `sealed` segment is read through mmap
    /// and must end with its seal; the active one is read with `pread` and may end torn.
    fn read_segment(
        &self,
        first_seq: u64,
        sealed: bool,
        expect: Option<Head>,
        f: &mut impl FnMut(&Record<'_>),
    ) -> Result<SegmentScan, LogError> {
        let path = self.dir.join(segment_name(first_seq));
        if sealed {
            let map = Mapped::sealed(&path)?;
            let mut src: &[u8] = &map;
            return self.scan(&mut src, &path, first_seq, sealed, expect, f);
        }
        let file = File::open(&path).map_err(io_at("open", &path))?;
        let mut src = FileSource::new(file).map_err(io_at("stat", &path))?;
        self.scan(&mut src, &path, first_seq, sealed, expect, f)
    }

    fn scan<S: Source>(
        &self,
        src: &mut S,
        path: &Path,
        first_seq: u64,
        sealed: bool,
        expect: Option<Head>,
        f: &mut impl FnMut(&Record<'_>),
    ) -> Result<SegmentScan, LogError> {
        let (mut scan, header) =
            SegmentScan::start(src, path, first_seq, self.key.clone(), !sealed)?;
        if expect.is_some_and(|e| header.first_seq != e.next_seq || header.prev != e.chain) {
            return Err(LogError::corrupt(path, 0, Corruption::Discontinuity));
        }
        let stop = scan.run(src, |rec| f(rec))?;
        if sealed && !matches!(stop, Stop::Sealed { .. }) {
            return Err(LogError::corrupt(
                path,
                stop.offset(),
                Corruption::MissingSeal,
            ));
        }
        Ok(scan)
    }
}

/// A sealed segment whose every record passed the checks of [`Reader::read_segment_from`] (CRCs,
/// sequence numbers, both chains, the seal), kept mapped so that its events can be read without
/// checking them twice. Holds one segment's map: bounded by the segment size.
#[derive(Debug)]
pub struct VerifiedSegment {
    map: Mapped,
    path: PathBuf,
    /// The head after the segment's seal.
    pub head: Head,
}

impl VerifiedSegment {
    /// Calls `f(seq, event)` for every event of the segment, in order. The records were verified
    /// in this very map, which a sealed segment's bytes never change under; the frame lengths are
    /// still bounds-checked, so a broken assumption is an error, never a panic.
    pub fn for_each_event(&self, mut f: impl FnMut(u64, &[u8])) -> Result<(), LogError> {
        let bytes: &[u8] = &self.map;
        let mut at = HEADER_LEN;
        while at < bytes.len() {
            let len = match record::frame_len(&bytes[at..]) {
                Ok(len) if len <= bytes.len() - at => len,
                _ => {
                    return Err(LogError::corrupt(
                        &self.path,
                        at as u64,
                        Corruption::BadLength,
                    ))
                }
            };
            deliver(&record::view(&bytes[at..at + len]), 0, &mut f);
            at += len;
        }
        Ok(())
    }
}

/// The head after the last record a scan verified.
fn head_of(scan: &SegmentScan) -> Head {
    Head {
        next_seq: scan.verifier.next_seq,
        chain: scan.verifier.chain,
    }
}

/// Follows the log as the writer appends: each [`Tail::poll`] delivers the events written since.
#[derive(Debug)]
pub struct Tail {
    dir: PathBuf,
    key: Option<LogKey>,
    from: u64,
    pos: Option<(FileSource, SegmentScan)>,
}

impl Tail {
    /// Delivers every new event with `seq >= from` (verified) to `f`; returns how many.
    /// An incomplete record at the end of the active segment is left for a later poll.
    pub fn poll(&mut self, mut f: impl FnMut(u64, &[u8])) -> Result<u64, LogError> {
        let mut delivered = 0u64;
        let mut count = |seq: u64, ev: &[u8]| {
            delivered += 1;
            f(seq, ev)
        };
        if self.pos.is_none() && !self.open_first()? {
            return Ok(0);
        }
        loop {
            let Some((src, scan)) = self.pos.as_mut() else {
                return Ok(delivered);
            };
            src.refresh().map_err(io_at("stat", &scan.verifier.path))?;
            let from = self.from;
            let stop = scan.run(src, |rec| deliver(rec, from, &mut count))?;
            self.from = self.from.max(scan.verifier.next_seq);
            if !matches!(stop, Stop::Sealed { .. }) || !self.open_next()? {
                return Ok(delivered);
            }
        }
    }

    /// The sequence number of the next event the tail will deliver.
    pub fn next_seq(&self) -> u64 {
        self.from
    }

    fn open_first(&mut self) -> Result<bool, LogError> {
        let segs = list_segments(&self.dir)?;
        let Some(&first_seq) = segs
            .iter()
            .rev()
            .find(|&&s| s <= self.from)
            .or(segs.first())
        else {
            return Ok(false);
        };
        self.pos = Some(self.open_segment(first_seq)?);
        Ok(true)
    }

    /// After a seal: moves to the next segment if the writer has created it yet.
    fn open_next(&mut self) -> Result<bool, LogError> {
        let Some((_, scan)) = &self.pos else {
            return Ok(false);
        };
        let next_seq = scan.verifier.next_seq;
        if !self.dir.join(segment_name(next_seq)).exists() {
            return Ok(false);
        }
        let (src, next) = self.open_segment(next_seq)?;
        scan.verifier
            .check_continues(&next_header(&next), &next.verifier.path)?;
        self.pos = Some((src, next));
        Ok(true)
    }

    fn open_segment(&self, first_seq: u64) -> Result<(FileSource, SegmentScan), LogError> {
        let path = self.dir.join(segment_name(first_seq));
        let file = File::open(&path).map_err(io_at("open", &path))?;
        let mut src = FileSource::new(file).map_err(io_at("stat", &path))?;
        let (scan, _) = SegmentScan::start(&mut src, &path, first_seq, self.key.clone(), true)?;
        Ok((src, scan))
    }
}

/// The header values a fresh scan started from (its verifier has not advanced yet).
fn next_header(scan: &SegmentScan) -> super::segment::SegmentHeader {
    super::segment::SegmentHeader {
        first_seq: scan.verifier.next_seq,
        prev: scan.verifier.chain,
    }
}
