//! Shipping the log into a bucket ([`super::bucket`]): once (`otsctl ship DIR --to s3://...`) or
//! continuously (`otsd --ship-to s3://...`, through [`super::continuous`]).
//!
//! A [`BucketShipper`] follows the log as the mirror reader does: it verifies every record (CRC,
//! public chain, and the HMAC chain with the calendar's key) before shipping it, and ships nothing
//! that does not verify. Each [`BucketShipper::step`]:
//! - uploads each newly sealed segment as one object, reads it back to check length and SHA-256,
//!   and then never touches it again (a sealed segment already in the index is not even read);
//! - uploads what the open segment gained since the last step as one small tail object;
//! - writes the index last, then deletes the tail objects of segments it sealed, and compacts an
//!   open segment's tail objects into one when there are more than [`MAX_TAIL_OBJECTS`].
//!
//! Between steps it keeps its place in the open segment, so a step reads and verifies only the
//! new bytes. Given the writer's durable head, it ships only records that are durable (and a seal
//! only once the next segment exists), so the bucket never holds a record a crash could still
//! take back. As the directory shipper, it never overwrites the bucket with something that does
//! not extend it: a sealed segment whose local length differs, or an open one whose shipped
//! prefix does not match, is a [`ShipError::Conflict`].
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::bucket::{Bucket, BucketUrl, TailObject, MAX_TAIL_OBJECTS};
use super::mirror::IndexEntry;
use super::ship::{ShipError, Shipped};
use crate::calendar::dir::CalendarDir;
use crate::log::scan::{FileSource, SegmentScan, Stop};
use crate::log::segment::{list_segments, segment_name};
use crate::log::{LogError, LogKey};

/// What one step did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepReport {
    pub mirror: String,
    pub shipped: Vec<Shipped>,
    /// Sealed segments already in the bucket, untouched.
    pub unchanged: u64,
    /// Segments the bucket's index lists.
    pub segments: u64,
    /// Tail objects folded into one by a compaction.
    pub compacted: u64,
}

/// The open segment being followed.
struct Open {
    first_seq: u64,
    path: PathBuf,
    file: File,
    src: FileSource,
    scan: SegmentScan,
    /// Verified records not shipped yet: (end offset, next sequence number after them).
    unshipped: VecDeque<(u64, u64)>,
    /// Bytes of the segment in the bucket, and their SHA-256 so far.
    shipped_len: u64,
    shipped_sha: Sha256,
    /// Tail objects in the bucket for this segment.
    tail_objects: usize,
}

/// Ships one calendar's log into one bucket, step by step.
pub struct BucketShipper {
    log_dir: PathBuf,
    key: LogKey,
    bucket: Bucket,
    /// The bucket's index as last read or written.
    index: BTreeMap<u64, IndexEntry>,
    /// Sealed segments below this were checked against the local log.
    checked_below: u64,
    open: Option<Open>,
}

impl BucketShipper {
    /// Loads the calendar (its key verifies the HMAC chain) and the bucket's index.
    pub async fn open(calendar: &Path, url: &BucketUrl) -> Result<BucketShipper, ShipError> {
        let dir = CalendarDir::load(calendar).map_err(|e| ShipError::Source(e.into()))?;
        let bucket = Bucket::open(url)?;
        let index = bucket.index().await?;
        Ok(BucketShipper {
            log_dir: dir.log_dir(),
            key: LogKey::derive(&dir.hmac_key),
            bucket,
            index: index.into_iter().map(|e| (e.first_seq, e)).collect(),
            checked_below: 0,
            open: None,
        })
    }

    /// Where it ships to.
    pub fn url(&self) -> &BucketUrl {
        &self.bucket.url
    }

    /// Ships what is new. `durable_next_seq`: the writer's durable head, when a writer is running
    /// (records from it on, and the last segment's seal, wait); `None` when nothing is being
    /// written (everything on disk is durable).
    pub async fn step(&mut self, durable_next_seq: Option<u64>) -> Result<StepReport, ShipError> {
        let segs = list_segments(&self.log_dir).map_err(|e| ShipError::Source(e.into()))?;
        let mut report = StepReport {
            mirror: self.bucket.url.to_string(),
            ..StepReport::default()
        };
        let mut sealed_now = Vec::new();
        let mut changed = false;
        for (i, &first_seq) in segs.iter().enumerate() {
            let is_last = i + 1 == segs.len();
            if let Some(e) = self.index.get(&first_seq).filter(|e| e.sealed) {
                if first_seq >= self.checked_below {
                    let path = self.log_dir.join(segment_name(first_seq));
                    let len = std::fs::metadata(&path).map_err(io("stat", &path))?.len();
                    if len != e.len {
                        return Err(conflict(&path, e.len, len));
                    }
                }
                report.unchanged += 1;
                continue;
            }
            let outcome = self.follow(first_seq, is_last, durable_next_seq).await?;
            if let Some(shipped) = outcome {
                changed = true;
                if shipped.sealed {
                    sealed_now.push(first_seq);
                }
                report.shipped.push(shipped);
            }
        }
        self.checked_below = self
            .index
            .iter()
            .take_while(|(_, e)| e.sealed)
            .last()
            .map_or(0, |(s, _)| s + 1);
        report.segments = self.index.len() as u64;
        if changed {
            let entries: Vec<IndexEntry> = self.index.values().cloned().collect();
            self.bucket.put_index(&entries).await?;
        }
        for first_seq in sealed_now {
            let objects = self.bucket.tail_objects(first_seq).await?;
            self.bucket.delete_tail(first_seq, &objects).await?;
        }
        report.compacted = self.compact().await?;
        Ok(report)
    }

    /// Verifies and ships what segment `first_seq` gained; `None` if nothing.
    async fn follow(
        &mut self,
        first_seq: u64,
        is_last: bool,
        durable: Option<u64>,
    ) -> Result<Option<Shipped>, ShipError> {
        let mut open = match self.open.take() {
            Some(o) if o.first_seq == first_seq => o,
            _ => self.start(first_seq, is_last).await?,
        };
        let stop = advance(&mut open)?;
        // Everything before the last segment is durable: the writer fsyncs a seal before it
        // creates the next segment (the durable head may be published a moment later).
        let limit = match durable {
            Some(next_seq) if is_last => next_seq,
            _ => u64::MAX,
        };
        let mut ship_to = open.shipped_len;
        while let Some(&(end, next_seq)) = open.unshipped.front() {
            if next_seq > limit {
                break;
            }
            ship_to = end;
            open.unshipped.pop_front();
        }
        let sealed = matches!(stop, Stop::Sealed { .. })
            && open.unshipped.is_empty()
            && (!is_last || durable.is_none());
        if !is_last && !sealed {
            return Err(ShipError::Damaged {
                segment: open.path.clone(),
                source: LogError::corrupt(
                    &open.path,
                    stop.offset(),
                    crate::log::error::Corruption::Truncated,
                ),
            });
        }
        let result = if sealed {
            self.ship_sealed(&open, stop.offset()).await?
        } else {
            self.ship_tail(&mut open, ship_to).await?
        };
        if !sealed {
            self.open = Some(open);
        }
        Ok(result)
    }

    /// Starts following segment `first_seq`: verifies it from its start, and checks that what the
    /// bucket holds of it (per the index) is a prefix of it.
    async fn start(&self, first_seq: u64, is_last: bool) -> Result<Open, ShipError> {
        let path = self.log_dir.join(segment_name(first_seq));
        let file = File::open(&path).map_err(io("open", &path))?;
        let mut src = FileSource::new(file.try_clone().map_err(io("open", &path))?)
            .map_err(io("read", &path))?;
        let (scan, _) =
            SegmentScan::start(&mut src, &path, first_seq, Some(self.key.clone()), is_last)
                .map_err(|source| ShipError::Damaged {
                    segment: path.clone(),
                    source,
                })?;
        let mut open = Open {
            first_seq,
            path,
            file,
            src,
            scan,
            unshipped: VecDeque::new(),
            shipped_len: 0,
            shipped_sha: Sha256::new(),
            tail_objects: 0,
        };
        if let Some(old) = self.index.get(&first_seq) {
            advance(&mut open)?;
            let verified = open.scan.offset;
            let prefix = read_at(&open.file, &open.path, 0, old.len.min(verified))?;
            let sha: [u8; 32] = Sha256::digest(&prefix).into();
            if old.len > verified || sha != old.sha256 {
                return Err(conflict(&open.path, old.len, verified));
            }
            open.shipped_sha.update(&prefix);
            open.shipped_len = old.len;
            open.unshipped.retain(|&(end, _)| end > old.len);
            open.tail_objects = self.bucket.tail_objects(first_seq).await?.len();
        }
        Ok(open)
    }

    /// Uploads a sealed segment (bytes `0..end`, verified) unless the bucket has it already
    /// (an earlier step stopped before writing the index), and lists it as sealed.
    async fn ship_sealed(&mut self, open: &Open, end: u64) -> Result<Option<Shipped>, ShipError> {
        let bytes = read_at(&open.file, &open.path, 0, end)?;
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        if self
            .bucket
            .check_sealed(open.first_seq, end, &sha256)
            .await
            .is_err()
        {
            self.bucket
                .put_sealed(open.first_seq, Bytes::from(bytes))
                .await?;
            tracing::info!(segment = %segment_name(open.first_seq), bytes = end,
                "shipped a sealed segment to {}", self.bucket.url);
        }
        self.index.insert(
            open.first_seq,
            IndexEntry {
                first_seq: open.first_seq,
                len: end,
                sha256,
                sealed: true,
            },
        );
        Ok(Some(Shipped {
            segment: segment_name(open.first_seq),
            len: end,
            new_bytes: end - open.shipped_len,
            sealed: true,
        }))
    }

    /// Uploads bytes `shipped_len..to` of the open segment as one tail object.
    async fn ship_tail(&mut self, open: &mut Open, to: u64) -> Result<Option<Shipped>, ShipError> {
        if to <= open.shipped_len {
            return Ok(None);
        }
        let from = open.shipped_len;
        let bytes = read_at(&open.file, &open.path, from, to - from)?;
        self.bucket
            .put_tail(open.first_seq, from, Bytes::from(bytes.clone()))
            .await?;
        open.shipped_sha.update(&bytes);
        open.shipped_len = to;
        open.tail_objects += 1;
        self.index.insert(
            open.first_seq,
            IndexEntry {
                first_seq: open.first_seq,
                len: to,
                sha256: open.shipped_sha.clone().finalize().into(),
                sealed: false,
            },
        );
        Ok(Some(Shipped {
            segment: segment_name(open.first_seq),
            len: to,
            new_bytes: to - from,
            sealed: false,
        }))
    }

    /// Folds the open segment's tail objects into one (at offset 0) when there are too many;
    /// returns how many were folded. Readers that listed the old ones retry
    /// ([`Bucket::read_segment`]).
    async fn compact(&mut self) -> Result<u64, ShipError> {
        let Some(open) = self
            .open
            .as_mut()
            .filter(|o| o.tail_objects > MAX_TAIL_OBJECTS)
        else {
            return Ok(0);
        };
        let bytes = read_at(&open.file, &open.path, 0, open.shipped_len)?;
        self.bucket
            .put_tail(open.first_seq, 0, Bytes::from(bytes))
            .await?;
        let objects: Vec<TailObject> = self
            .bucket
            .tail_objects(open.first_seq)
            .await?
            .into_iter()
            .filter(|o| o.offset > 0 && o.offset < open.shipped_len)
            .collect();
        self.bucket.delete_tail(open.first_seq, &objects).await?;
        let folded = open.tail_objects as u64;
        open.tail_objects = 1;
        Ok(folded)
    }
}

/// Verifies what the segment gained since the last call; notes each record's end.
fn advance(open: &mut Open) -> Result<Stop, ShipError> {
    let damaged = |path: &Path| {
        let segment = path.to_owned();
        move |source| ShipError::Damaged { segment, source }
    };
    open.src.refresh().map_err(io("read", &open.path))?;
    let unshipped = &mut open.unshipped;
    let mut end = open.scan.offset;
    open.scan
        .run(&mut open.src, |rec| {
            end += rec.bytes.len() as u64;
            unshipped.push_back((end, rec.first_seq + u64::from(rec.count)));
        })
        .map_err(damaged(&open.path))
}

fn read_at(file: &File, path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, ShipError> {
    let mut buf = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
    file.read_exact_at(&mut buf, offset)
        .map_err(io("read", path))?;
    Ok(buf)
}

fn conflict(path: &Path, mirror_len: u64, local_len: u64) -> ShipError {
    ShipError::Conflict {
        segment: path.to_owned(),
        mirror_len,
        local_len,
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ShipError + 'a {
    move |source| ShipError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Ships the calendar's log into the bucket once (`otsctl ship DIR --to s3://...`).
pub fn ship_once(calendar: &Path, url: &BucketUrl) -> Result<StepReport, ShipError> {
    let calendar = calendar.to_owned();
    let url = url.clone();
    super::bucket::block_on(async move {
        let mut shipper = BucketShipper::open(&calendar, &url).await?;
        shipper.step(None).await
    })?
}

/// The human report.
pub fn render(r: &StepReport) -> String {
    super::ship::render_shipped(&r.mirror, &r.shipped, r.segments, r.unchanged)
}
