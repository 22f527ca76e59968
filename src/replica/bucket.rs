//! A log mirror in object storage (Amazon S3 or any S3-compatible store): its layout, the client,
//! and reading it back for `otsctl recover --from s3://BUCKET/PREFIX`.
//!
//! Layout under `s3://BUCKET/PREFIX/` (log-format/README.md, "Mirrors in object storage"):
//!
//! | key                          | what                                                         |
//! |------------------------------|--------------------------------------------------------------|
//! | `segments.txt`               | the index, the same format as a mirror directory's           |
//! | `SEGMENT`                    | a sealed segment, whole: uploaded once, read back to verify  |
//! | `tail/SEGMENT/OFFSET`        | bytes `OFFSET..` of the open segment (OFFSET: 20 digits)     |
//!
//! The index is written after the objects it lists, so it never lists bytes the bucket lacks; an
//! open segment's bytes are the tail objects concatenated in offset order, cut at the index's
//! length. Tail objects may overlap (a compaction rewrites `OFFSET` 0 with the whole prefix and
//! then deletes the others); the overlapping bytes are identical. Nothing read is trusted: `recover`
//! verifies every record against the calendar's HMAC chain.
//!
//! Credentials, region and endpoint come from the usual `AWS_*` environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` for an
//! S3-compatible store, `AWS_ALLOW_HTTP=true` for a plain-HTTP one).
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use super::mirror::MAX_SEGMENT_LEN;
use super::mirror::{parse_index, render_index, IndexEntry, INDEX_FILE, MAX_INDEX_LEN};
use crate::log::segment::segment_name;

/// Scheme of bucket URLs.
pub const SCHEME: &str = "s3://";
/// Folder of the open segment's tail objects.
pub const TAIL_DIR: &str = "tail";
/// Width of the zero-padded offset naming a tail object.
pub const OFFSET_DIGITS: usize = 20;
/// The shipper compacts an open segment's tail objects into one when there are more than this.
pub const MAX_TAIL_OBJECTS: usize = 64;
/// Most tail objects a reader accepts for one segment (a shipper keeps far fewer).
pub const MAX_TAIL_OBJECTS_READ: usize = 10_000;
/// Times an open segment is read when its tail objects change meanwhile (a compaction, a seal).
const TAIL_READ_TRIES: usize = 3;
/// Pause before reading an open segment again.
const TAIL_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Why the bucket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("{0}: expected s3://BUCKET or s3://BUCKET/PREFIX")]
    BadUrl(String),
    #[error("{url}: {source}")]
    Store {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{url}: {len} bytes, larger than the limit of {limit}")]
    TooLarge { url: String, len: u64, limit: u64 },
    #[error("{url}: reads back as {got_len} bytes with sha256 {got}, not the {want_len} bytes with sha256 {want} uploaded")]
    Verify {
        url: String,
        got_len: u64,
        got: String,
        want_len: u64,
        want: String,
    },
    #[error("{url}: {problem}")]
    Layout { url: String, problem: String },
    #[error("cannot start an async runtime for the object store: {0}")]
    Runtime(std::io::Error),
}

impl BucketError {
    /// True when an object is missing.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            BucketError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }
}

/// `s3://BUCKET/PREFIX`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketUrl {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl BucketUrl {
    /// True for strings that name a bucket rather than a directory or an HTTP URL.
    pub fn is_bucket_url(s: &str) -> bool {
        s.starts_with(SCHEME)
    }

    /// Parses `s3://BUCKET[/PREFIX][/]`; a trailing `/segments.txt` is dropped.
    pub fn parse(url: &str) -> Result<BucketUrl, BucketError> {
        let bad = || BucketError::BadUrl(url.to_owned());
        let rest = url.strip_prefix(SCHEME).ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        let rest = rest.strip_suffix(INDEX_FILE).unwrap_or(rest);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = !bucket.is_empty()
            && bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        let prefix = prefix.trim_matches('/');
        if !bucket_ok || prefix.split('/').any(|p| p == "." || p == "..") {
            return Err(bad());
        }
        Ok(BucketUrl {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The key of `name` under the prefix.
    fn key(&self, name: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(name)
        } else {
            Key::from(format!("{}/{name}", self.prefix))
        }
    }

    /// The key of the tail object of segment `first_seq` starting at `offset`.
    fn tail_key(&self, first_seq: u64, offset: u64) -> Key {
        self.key(&format!(
            "{TAIL_DIR}/{}/{offset:0OFFSET_DIGITS$}",
            segment_name(first_seq)
        ))
    }

    /// The folder of segment `first_seq`'s tail objects.
    fn tail_folder(&self, first_seq: u64) -> Key {
        self.key(&format!("{TAIL_DIR}/{}", segment_name(first_seq)))
    }

    /// `s3://BUCKET/KEY`, for reports.
    pub fn object_url(&self, key: &Key) -> String {
        format!("{SCHEME}{}/{key}", self.bucket)
    }
}

impl fmt::Display for BucketUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix.as_str() {
            "" => write!(f, "{SCHEME}{}", self.bucket),
            p => write!(f, "{SCHEME}{}/{p}", self.bucket),
        }
    }
}

/// One tail object of an open segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailObject {
    pub offset: u64,
    pub len: u64,
}

/// How hard one request to the bucket is retried. object_store's default (10 retries within 3
/// minutes) would hold the shipper or a follower on one object for minutes while the bucket is
/// down; they have their own retry loop (the next interval or poll), so one request gives up after
/// at most 3 quick retries within 10 s. A single attempt is still bounded by the client's request
/// timeout (30 s unless `AWS_TIMEOUT` says otherwise).
fn retry_policy() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
    }
}

/// A connection to a bucket mirror.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub url: BucketUrl,
    store: Arc<dyn ObjectStore>,
}

impl Bucket {
    /// Connects to `url` with credentials and endpoint from the `AWS_*` environment variables.
    pub fn open(url: &BucketUrl) -> Result<Bucket, BucketError> {
        install_tls_provider();
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(&url.bucket)
            .with_retry(retry_policy())
            .build()
            .map_err(|source| BucketError::Store {
                url: url.to_string(),
                source,
            })?;
        Ok(Bucket {
            url: url.clone(),
            store: Arc::new(store),
        })
    }

    fn store_err(&self, key: &Key) -> impl FnOnce(object_store::Error) -> BucketError {
        let url = self.url.object_url(key);
        move |source| BucketError::Store { url, source }
    }

    /// Reads object `key` whole, refusing more than `limit` bytes.
    async fn get(&self, key: &Key, limit: u64) -> Result<Bytes, BucketError> {
        let result = self.store.get(key).await.map_err(self.store_err(key))?;
        if result.meta.size > limit {
            return Err(BucketError::TooLarge {
                url: self.url.object_url(key),
                len: result.meta.size,
                limit,
            });
        }
        result.bytes().await.map_err(self.store_err(key))
    }

    async fn put(&self, key: &Key, bytes: Bytes) -> Result<(), BucketError> {
        let payload = PutPayload::from_bytes(bytes);
        self.store
            .put(key, payload)
            .await
            .map(|_| ())
            .map_err(self.store_err(key))
    }

    async fn delete(&self, key: &Key) -> Result<(), BucketError> {
        match self.store.delete(key).await {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other.map_err(self.store_err(key)),
        }
    }

    /// The bucket's index, segments in order (empty for a new mirror).
    pub async fn index(&self) -> Result<Vec<IndexEntry>, BucketError> {
        let key = self.url.key(INDEX_FILE);
        let text = match self.get(&key, MAX_INDEX_LEN).await {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let origin = self.url.object_url(&key);
        parse_index(&String::from_utf8_lossy(&text), &origin).map_err(|e| BucketError::Layout {
            url: origin,
            problem: e.to_string(),
        })
    }

    /// Replaces the index.
    pub async fn put_index(&self, entries: &[IndexEntry]) -> Result<(), BucketError> {
        let text = render_index(entries);
        self.put(&self.url.key(INDEX_FILE), Bytes::from(text)).await
    }

    /// Uploads a sealed segment and reads it back to check its length and SHA-256.
    pub async fn put_sealed(&self, first_seq: u64, bytes: Bytes) -> Result<(), BucketError> {
        let key = self.url.key(&segment_name(first_seq));
        let want: [u8; 32] = Sha256::digest(&bytes).into();
        let len = bytes.len() as u64;
        self.put(&key, bytes).await?;
        self.check_object(&key, len, &want).await
    }

    /// Ok if the sealed segment `first_seq` is in the bucket with this length and SHA-256.
    pub async fn check_sealed(
        &self,
        first_seq: u64,
        len: u64,
        sha256: &[u8; 32],
    ) -> Result<(), BucketError> {
        self.check_object(&self.url.key(&segment_name(first_seq)), len, sha256)
            .await
    }

    async fn check_object(&self, key: &Key, len: u64, want: &[u8; 32]) -> Result<(), BucketError> {
        let got = self.get(key, MAX_SEGMENT_LEN).await?;
        let got_sha: [u8; 32] = Sha256::digest(&got).into();
        if got.len() as u64 == len && &got_sha == want {
            return Ok(());
        }
        Err(BucketError::Verify {
            url: self.url.object_url(key),
            got_len: got.len() as u64,
            got: hex::encode(got_sha),
            want_len: len,
            want: hex::encode(want),
        })
    }

    /// Uploads bytes `offset..` of the open segment `first_seq`.
    pub async fn put_tail(
        &self,
        first_seq: u64,
        offset: u64,
        bytes: Bytes,
    ) -> Result<(), BucketError> {
        self.put(&self.url.tail_key(first_seq, offset), bytes).await
    }

    /// The tail objects of segment `first_seq`, by offset. Other names in the folder are an error.
    pub async fn tail_objects(&self, first_seq: u64) -> Result<Vec<TailObject>, BucketError> {
        let folder = self.url.tail_folder(first_seq);
        let metas: Vec<_> = self
            .store
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(self.store_err(&folder))?;
        let mut objects = Vec::with_capacity(metas.len());
        for meta in metas {
            let name = meta.location.filename().unwrap_or_default();
            let offset = name
                .parse()
                .ok()
                .filter(|_| name.len() == OFFSET_DIGITS)
                .ok_or_else(|| BucketError::Layout {
                    url: self.url.object_url(&meta.location),
                    problem: "not a tail object (expected a 20-digit offset)".into(),
                })?;
            objects.push(TailObject {
                offset,
                len: meta.size,
            });
        }
        objects.sort_by_key(|o| o.offset);
        Ok(objects)
    }

    /// Deletes the tail objects of segment `first_seq` listed in `objects`.
    pub async fn delete_tail(
        &self,
        first_seq: u64,
        objects: &[TailObject],
    ) -> Result<(), BucketError> {
        for o in objects {
            self.delete(&self.url.tail_key(first_seq, o.offset)).await?;
        }
        Ok(())
    }

    /// The bytes of the segment `entry` describes: the sealed object, or the open segment's tail
    /// objects put together, up to `entry.len`. Not verified against `entry.sha256` (the caller
    /// verifies records, which says more). An open segment sealed meanwhile (its tail objects
    /// deleted) is read from its sealed object; tail objects that stay incomplete (a gap, a short
    /// object) give the bytes before the gap, with a warning, as a truncated file would.
    pub async fn read_segment(&self, entry: &IndexEntry) -> Result<Vec<u8>, BucketError> {
        let sealed_key = self.url.key(&segment_name(entry.first_seq));
        if entry.sealed {
            return Ok(self.get(&sealed_key, MAX_SEGMENT_LEN).await?.to_vec());
        }
        let mut tries = 0;
        loop {
            let problem = match self.read_tail(entry.first_seq, 0..entry.len).await {
                Ok((bytes, None)) => return Ok(bytes),
                Ok((bytes, Some(problem))) if tries + 1 == TAIL_READ_TRIES => {
                    tracing::warn!("{}", self.layout(entry.first_seq, problem));
                    return Ok(bytes);
                }
                Ok((_, Some(problem))) => self.layout(entry.first_seq, problem),
                Err(e) if e.is_not_found() && tries + 1 < TAIL_READ_TRIES => e,
                Err(e) => return Err(e),
            };
            match self.get(&sealed_key, MAX_SEGMENT_LEN).await {
                Ok(bytes) => return Ok(bytes.to_vec()),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            tracing::debug!("{problem}; reading again");
            tries += 1;
            tokio::time::sleep(TAIL_RETRY_PAUSE).await;
        }
    }

    /// Bytes `range` of the segment `entry` describes (for a follower reading what is new); an
    /// incomplete tail is an error.
    pub async fn read_range(
        &self,
        entry: &IndexEntry,
        range: Range<u64>,
    ) -> Result<Vec<u8>, BucketError> {
        let range = range.start.min(entry.len)..range.end.min(entry.len);
        if entry.sealed {
            let key = self.url.key(&segment_name(entry.first_seq));
            let bytes = self
                .store
                .get_range(&key, range)
                .await
                .map_err(self.store_err(&key))?;
            return Ok(bytes.to_vec());
        }
        match self.read_tail(entry.first_seq, range).await? {
            (bytes, None) => Ok(bytes),
            (_, Some(problem)) => Err(self.layout(entry.first_seq, problem)),
        }
    }

    /// Bytes `range` of the open segment `first_seq`, from its tail objects; if they do not cover
    /// the range, the bytes up to the first gap and what is wrong.
    async fn read_tail(
        &self,
        first_seq: u64,
        range: Range<u64>,
    ) -> Result<(Vec<u8>, Option<String>), BucketError> {
        let objects = self.tail_objects(first_seq).await?;
        if objects.len() > MAX_TAIL_OBJECTS_READ {
            return Err(self.layout(first_seq, format!("{} tail objects", objects.len())));
        }
        let mut out = Vec::new();
        let mut pos = range.start;
        for o in objects {
            if pos >= range.end {
                break;
            }
            if o.offset + o.len <= pos {
                continue;
            }
            if o.offset > pos {
                return Ok((out, Some(format!("no tail object holds offset {pos}"))));
            }
            let key = self.url.tail_key(first_seq, o.offset);
            let bytes = self.get(&key, MAX_SEGMENT_LEN).await?;
            let end = range.end.min(o.offset + bytes.len() as u64).max(pos);
            let from = usize::try_from(pos - o.offset).unwrap_or(usize::MAX);
            let to = usize::try_from(end - o.offset).unwrap_or(usize::MAX);
            let part = bytes.get(from..to).unwrap_or_default();
            out.extend_from_slice(part);
            pos += part.len() as u64;
        }
        if pos < range.end {
            let problem = format!(
                "the tail objects end at offset {pos}, the index says {}",
                range.end
            );
            return Ok((out, Some(problem)));
        }
        Ok((out, None))
    }

    fn layout(&self, first_seq: u64, problem: String) -> BucketError {
        BucketError::Layout {
            url: self.url.object_url(&self.url.tail_folder(first_seq)),
            problem,
        }
    }
}

/// Makes ring the process's TLS provider (for `https://` endpoints), once; a provider installed
/// before is kept.
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs `fut` to completion from synchronous code (`otsctl`), on a runtime of its own; from inside
/// an async runtime, on a thread of its own, since a runtime cannot block inside another.
pub fn block_on<T: Send>(fut: impl Future<Output = T> + Send) -> Result<T, BucketError> {
    let run = move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(fut))
            .map_err(BucketError::Runtime)
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return run();
    }
    std::thread::scope(|s| {
        s.spawn(run)
            .join()
            .unwrap_or_else(|_| Err(BucketError::Runtime(std::io::Error::other("panicked"))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        let p = |s: &str| BucketUrl::parse(s).ok();
        let b = |bucket: &str, prefix: &str| {
            Some(BucketUrl {
                bucket: bucket.into(),
                prefix: prefix.into(),
            })
        };
        assert_eq!(p("s3://b"), b("b", ""));
        assert_eq!(p("s3://b/"), b("b", ""));
        assert_eq!(p("s3://b/cal/one/"), b("b", "cal/one"));
        assert_eq!(p("s3://b/cal/segments.txt"), b("b", "cal"));
        assert_eq!(p("s3://"), None);
        assert_eq!(p("s3://b/../x"), None);
        assert_eq!(p("http://b/x"), None);
        let u = BucketUrl::parse("s3://b/cal").unwrap();
        assert_eq!(u.to_string(), "s3://b/cal");
        assert_eq!(
            u.tail_key(7, 42).to_string(),
            format!("cal/tail/{}/00000000000000000042", segment_name(7))
        );
    }
}
