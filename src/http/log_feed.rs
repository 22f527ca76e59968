//! `GET /log/segments.txt` and `GET /log/<segment>`: the calendar's log, published read-only so
//! that mirrors can follow it and `otsctl recover --from http://HOST/log/` can rebuild from it.
//!
//! The bytes come from a [`LogFeed`] (the daemon plugs in `crate::replica::publish::Publisher`):
//! never beyond the last durable record. Sealed segments are immutable and cached for a year by
//! any proxy or CDN; the index and the active segment are `no-cache`. Ranges: one `bytes=A-B` or
//! `bytes=A-` range per request (`206`), `416` with `Content-Range: bytes */LEN` past the end.
//! Off with `otsd --no-publish-log` (then `/log/` is an unknown path).
use std::sync::Arc;

use warp::http::{header, HeaderValue, Response, StatusCode};
use warp::reply::Response as WarpResponse;
use warp::Reply;

use super::AppState;

/// `Cache-Control` of a sealed segment: it never changes.
pub const SEALED_CACHE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of the index and the active segment: they grow.
pub const OPEN_CACHE: &str = "no-cache";

/// Largest range one response carries; a client asks again from where it got to. Requests
/// without `Range` get the whole segment (bounded by the segment size), as `otsctl recover` wants.
pub const MAX_RANGE_LEN: u64 = 8 << 20;

/// A part of a segment to send.
#[derive(Debug)]
pub struct FeedSlice {
    pub bytes: Vec<u8>,
    /// Offset of `bytes[0]` in the segment.
    pub start: u64,
    /// Published length of the whole segment.
    pub total: u64,
    /// Immutable from now on.
    pub sealed: bool,
}

/// Why a part of the log cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("no such segment")]
    NotFound,
    #[error("range starts beyond the {len} published bytes")]
    Unsatisfiable { len: u64 },
    #[error("{0}")]
    Failed(String),
}

/// What `/log/` serves from.
pub trait LogFeed: Send + Sync + std::fmt::Debug {
    /// The mirror index (`segments.txt`) of the durable log.
    fn index(&self) -> Result<String, FeedError>;
    /// Bytes of segment file `name` from `start`, at most `len` of them (the feed may send fewer).
    fn read(&self, name: &str, start: u64, len: Option<u64>) -> Result<FeedSlice, FeedError>;
}

/// `GET /log/segments.txt` or `GET /log/<segment>` (with an optional `Range`).
pub async fn get_log(name: String, range: Option<String>, state: Arc<AppState>) -> WarpResponse {
    let Some(feed) = state.log_feed.get().cloned() else {
        return super::handlers::not_found();
    };
    let answer = tokio::task::spawn_blocking(move || serve(&*feed, &name, range.as_deref())).await;
    answer.unwrap_or_else(|e| failed(&e.to_string()))
}

fn serve(feed: &dyn LogFeed, name: &str, range: Option<&str>) -> WarpResponse {
    if name == INDEX_NAME {
        return match feed.index() {
            Ok(text) => reply(StatusCode::OK, text.into_bytes(), "text/plain", OPEN_CACHE),
            Err(e) => error(&e),
        };
    }
    let (start, len) = match range.map(parse_range) {
        None => (0, None),
        Some(Some((start, len))) => (start, Some(len.unwrap_or(MAX_RANGE_LEN).min(MAX_RANGE_LEN))),
        Some(None) => {
            return plain(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "only one bytes=A-B range",
            )
        }
    };
    match feed.read(name, start, len) {
        Ok(slice) => segment_reply(slice, range.is_some()),
        Err(e) => error(&e),
    }
}

/// The index's file name: the mirror format's `INDEX_FILE` (`crate::replica::mirror`), which
/// `otsctl recover --from URL` fetches.
pub const INDEX_NAME: &str = "segments.txt";

/// `bytes=A-B` or `bytes=A-` into a start and a length.
fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    match b.trim() {
        "" => Some((start, None)),
        b => {
            let end: u64 = b.parse().ok()?;
            (end >= start).then(|| (start, Some(end - start + 1)))
        }
    }
}

fn segment_reply(slice: FeedSlice, ranged: bool) -> WarpResponse {
    let cache = if slice.sealed {
        SEALED_CACHE
    } else {
        OPEN_CACHE
    };
    let whole = slice.start == 0 && slice.bytes.len() as u64 == slice.total;
    let last = (slice.start + slice.bytes.len() as u64).saturating_sub(1);
    let content_range = format!("bytes {}-{last}/{}", slice.start, slice.total);
    let status = if ranged || !whole {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut resp = reply(status, slice.bytes, "application/octet-stream", cache);
    if status == StatusCode::PARTIAL_CONTENT {
        insert(&mut resp, header::CONTENT_RANGE, &content_range);
    }
    resp
}

fn error(e: &FeedError) -> WarpResponse {
    match e {
        FeedError::NotFound => super::handlers::not_found(),
        FeedError::Unsatisfiable { len } => {
            let mut resp = plain(StatusCode::RANGE_NOT_SATISFIABLE, &e.to_string());
            insert(&mut resp, header::CONTENT_RANGE, &format!("bytes */{len}"));
            resp
        }
        FeedError::Failed(why) => failed(why),
    }
}

fn failed(why: &str) -> WarpResponse {
    tracing::error!("serving the log: {why}");
    plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the log")
}

fn plain(status: StatusCode, body: &str) -> WarpResponse {
    reply(status, body.as_bytes().to_vec(), "text/plain", OPEN_CACHE)
}

fn reply(status: StatusCode, body: Vec<u8>, ctype: &str, cache: &str) -> WarpResponse {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    insert(&mut resp, header::CONTENT_TYPE, ctype);
    insert(&mut resp, header::CACHE_CONTROL, cache);
    insert(&mut resp, header::ACCEPT_RANGES, "bytes");
    resp.into_response()
}

fn insert(resp: &mut WarpResponse, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_or_are_refused() {
        assert_eq!(parse_range("bytes=10-"), Some((10, None)));
        assert_eq!(parse_range("bytes=10-19"), Some((10, Some(10))));
        assert_eq!(parse_range("bytes=10-9"), None);
        assert_eq!(parse_range("bytes=-5"), None);
        assert_eq!(parse_range("bytes=1-2,5-6"), None);
        assert_eq!(parse_range("items=1-2"), None);
    }
}
