//! A mirror following a log from object storage (`otsd --mirror-of s3://BUCKET/PREFIX`), as
//! `otsd --ship-to` or `otsctl ship --to` writes it (layout in `log-format/mirror.md`).
//!
//! The bucket is listed through its index and read by byte range; as from any source, nothing it
//! returns is trusted (the follower verifies every record).
use super::source::{Fetched, LogSource, MAX_READ_LEN};
use crate::replica::bucket::{Bucket, BucketError, BucketUrl};
use crate::replica::mirror::{IndexEntry, ReplicaError};

/// A bucket mirror, read by the follower's thread on a runtime of its own (made on first use, so
/// that it is made and dropped on that thread, never inside the daemon's runtime).
pub struct BucketSource {
    url: BucketUrl,
    conn: Option<(tokio::runtime::Runtime, Bucket)>,
    /// The newest listing: where each segment ends and whether it is sealed.
    entries: Vec<IndexEntry>,
}

impl BucketSource {
    pub fn new(url: BucketUrl) -> BucketSource {
        BucketSource {
            url,
            conn: None,
            entries: Vec::new(),
        }
    }

    fn run<T>(
        &mut self,
        op: impl AsyncFnOnce(&Bucket) -> Result<T, BucketError>,
    ) -> Result<T, ReplicaError> {
        let (rt, bucket) = match &mut self.conn {
            Some(conn) => conn,
            conn @ None => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(BucketError::Runtime)?;
                conn.insert((rt, Bucket::open(&self.url)?))
            }
        };
        Ok(rt.block_on(op(bucket))?)
    }
}

impl LogSource for BucketSource {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn index(&mut self) -> Result<Vec<IndexEntry>, ReplicaError> {
        let entries = self.run(async |b| b.index().await)?;
        self.entries = entries.clone();
        Ok(entries)
    }

    fn read_from(&mut self, first_seq: u64, offset: u64) -> Result<Fetched, ReplicaError> {
        // The follower lists once and then reads on: the listing is read again before every
        // read that would reach the end of the segment as last listed (one GET per poll while
        // following live; none while catching up on sealed segments).
        let listed_beyond = |entries: &[IndexEntry]| {
            entries.iter().any(|e| {
                e.first_seq == first_seq
                    && (e.sealed || e.len > offset.saturating_add(MAX_READ_LEN))
            })
        };
        if !listed_beyond(&self.entries) {
            self.index()?;
        }
        let Some(entry) = self.entries.iter().find(|e| e.first_seq == first_seq) else {
            return Ok(Fetched::Missing);
        };
        if offset >= entry.len {
            return Ok(Fetched::Ends { len: entry.len });
        }
        let entry = entry.clone();
        let end = entry.len.min(offset + MAX_READ_LEN);
        let bytes = self.run(async |b| b.read_range(&entry, offset..end).await)?;
        Ok(Fetched::Bytes(bytes))
    }
}
