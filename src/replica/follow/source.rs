//! Where a mirror follows a log from: a small [`LogSource`] (the index, and the bytes of a segment
//! from an offset), so that other stores (object storage) can be plugged in beside [`HttpSource`].
//!
//! Nothing a source returns is trusted: the follower verifies every byte before storing it.
use super::super::http::{self, HttpError};
use super::super::mirror::{parse_index, IndexEntry, ReplicaError, INDEX_FILE, MAX_INDEX_LEN};
use crate::log::segment::segment_name;

/// Most bytes asked for in one read (a source may send fewer).
pub const MAX_READ_LEN: u64 = 8 << 20;

/// What reading a segment from an offset gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// Bytes from the offset asked for (possibly none if the source sends nothing new).
    Bytes(Vec<u8>),
    /// The source's copy of the segment is only `len` bytes long, no longer than the offset.
    Ends { len: u64 },
    /// The source does not have the segment (yet).
    Missing,
}

/// A copy of a log that can be read while it grows.
pub trait LogSource: Send {
    /// For logs and the info page.
    fn describe(&self) -> String;
    /// The source's segment listing.
    fn index(&mut self) -> Result<Vec<IndexEntry>, ReplicaError>;
    /// Bytes of segment `first_seq` from `offset` on (at most [`MAX_READ_LEN`]).
    fn read_from(&mut self, first_seq: u64, offset: u64) -> Result<Fetched, ReplicaError>;
}

/// A log published over plain HTTP (`otsd`'s `GET /log/`, or any static server with `Range`).
#[derive(Debug, Clone)]
pub struct HttpSource {
    /// The base URL, without a trailing slash: `http://HOST:PORT/log`.
    base: String,
}

impl HttpSource {
    /// `url` is the base of the published log (`http://HOST/log/`); a calendar's root URL
    /// (no path) gets `/log` appended.
    pub fn new(url: &str) -> HttpSource {
        let base = url.trim_end_matches('/');
        let base = base
            .strip_suffix(INDEX_FILE)
            .unwrap_or(base)
            .trim_end_matches('/');
        let has_path = base
            .strip_prefix("http://")
            .is_some_and(|rest| rest.contains('/'));
        let base = if has_path {
            base.to_owned()
        } else {
            format!("{base}/log")
        };
        HttpSource { base }
    }

    /// The base URL of the log.
    pub fn base(&self) -> &str {
        &self.base
    }
}

impl LogSource for HttpSource {
    fn describe(&self) -> String {
        self.base.clone()
    }

    fn index(&mut self) -> Result<Vec<IndexEntry>, ReplicaError> {
        let url = format!("{}/{INDEX_FILE}", self.base);
        let text = http::get(&url, MAX_INDEX_LEN)?;
        parse_index(&String::from_utf8_lossy(&text), &url)
    }

    fn read_from(&mut self, first_seq: u64, offset: u64) -> Result<Fetched, ReplicaError> {
        let url = format!("{}/{}", self.base, segment_name(first_seq));
        let range = format!("Range: bytes={offset}-{}\r\n", offset + MAX_READ_LEN - 1);
        let answer = http::request(&url, &range, MAX_READ_LEN)?;
        match answer.status {
            206 => {
                let start = content_range_start(answer.header("content-range"));
                if start != Some(offset) {
                    return Err(bad(&url, "206 for another range than asked").into());
                }
                Ok(Fetched::Bytes(answer.body))
            }
            // A server ignoring Range sends the whole file.
            200 => Ok(match answer.body.get(offset as usize..) {
                Some(rest) => Fetched::Bytes(rest.to_vec()),
                None => Fetched::Ends {
                    len: answer.body.len() as u64,
                },
            }),
            416 => match content_range_total(answer.header("content-range")) {
                Some(len) => Ok(Fetched::Ends { len }),
                None => Err(bad(&url, "416 without Content-Range: bytes */LEN").into()),
            },
            404 => Ok(Fetched::Missing),
            status => Err(HttpError::Status { url, status }.into()),
        }
    }
}

fn bad(url: &str, problem: &str) -> HttpError {
    HttpError::Protocol {
        url: url.to_owned(),
        problem: problem.to_owned(),
    }
}

/// `bytes A-B/LEN` -> A.
fn content_range_start(value: Option<&str>) -> Option<u64> {
    let spec = value?.trim().strip_prefix("bytes ")?;
    spec.split_once('-')?.0.trim().parse().ok()
}

/// `bytes */LEN` or `bytes A-B/LEN` -> LEN.
fn content_range_total(value: Option<&str>) -> Option<u64> {
    value?.rsplit_once('/')?.1.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_and_content_ranges() {
        assert_eq!(HttpSource::new("http://h:1").base(), "http://h:1/log");
        assert_eq!(HttpSource::new("http://h:1/").base(), "http://h:1/log");
        assert_eq!(HttpSource::new("http://h:1/log/").base(), "http://h:1/log");
        assert_eq!(
            HttpSource::new("http://h:1/m/segments.txt").base(),
            "http://h:1/m"
        );
        assert_eq!(content_range_start(Some("bytes 10-19/100")), Some(10));
        assert_eq!(content_range_total(Some("bytes */100")), Some(100));
        assert_eq!(content_range_total(Some("bytes 0-1/x")), None);
    }
}
