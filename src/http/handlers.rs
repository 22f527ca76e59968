//! One handler per endpoint, and the single place where errors become status codes.
//!
//! Status codes, bodies and `Cache-Control` values follow the Python otsd's `rpc.py`, except where
//! this server is stricter (empty digests are refused, overload is a `503` instead of a hang).
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use warp::http::{header, Response, StatusCode};
use warp::reply::Response as WarpResponse;
use warp::Reply;

use super::{info, AppState, BODY_TIMEOUT, MAX_COMMITMENT_HEX, MAX_DIGEST_LEN};
use crate::aggregator::SubmitError;
use crate::anchor::tip::merkle_tip;
use crate::projection::Status;

const TEXT: &str = "text/plain";
const OCTETS: &str = "application/octet-stream";
/// How long `/tip` may be served from cache before it is recomputed.
const TIP_MAX_AGE: Duration = Duration::from_secs(1);
/// Up to this many pending commitments the tip is always recomputed when a round was added.
const TIP_CHEAP_COMMITMENTS: usize = 4096;

/// `POST /digest`: queue the digest, answer once its round is durable.
pub async fn post_digest(
    length: Option<String>,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
    state: Arc<AppState>,
) -> WarpResponse {
    let Some(length) = length.and_then(|l| l.trim().parse::<u64>().ok()) else {
        return text(StatusCode::BAD_REQUEST, "invalid Content-Length", None);
    };
    if length > MAX_DIGEST_LEN {
        return text(StatusCode::BAD_REQUEST, "digest too long", None);
    }
    if length == 0 {
        return text(StatusCode::BAD_REQUEST, "digest empty", None);
    }
    let digest = match tokio::time::timeout(BODY_TIMEOUT, read_body(body, length)).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return text(
                StatusCode::BAD_REQUEST,
                "body does not match Content-Length",
                None,
            )
        }
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "body too slow", None),
    };
    let answer = match state.intake.submit(digest) {
        Ok(rx) => rx.await.unwrap_or(Err(SubmitError::ShuttingDown)),
        Err(e) => Err(e),
    };
    match answer {
        Ok(bytes) => octets(bytes, None),
        Err(e) => error_reply(&e),
    }
}

/// Reads exactly `length` bytes of body, or `None` if the body is shorter, longer or broken.
async fn read_body(
    mut body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
    length: u64,
) -> Option<Vec<u8>> {
    let mut digest = Vec::with_capacity(length as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        if digest.len() + chunk.remaining() > length as usize {
            return None;
        }
        digest.extend_from_slice(chunk.chunk());
    }
    (digest.len() as u64 == length).then_some(digest)
}

/// Maps an intake refusal to its reply: always `503` with a short reason and `Retry-After`.
pub fn error_reply(e: &SubmitError) -> WarpResponse {
    let retry = match e {
        SubmitError::QueueFull => "1",
        SubmitError::ShuttingDown => "5",
        SubmitError::LogUnavailable(_) => "60",
        SubmitError::LogBusy(_) => "10",
    };
    let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, &e.to_string(), None);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static(retry));
    resp
}

/// `GET /timestamp/<hex>`.
pub fn get_timestamp(hex_commitment: String, state: Arc<AppState>) -> WarpResponse {
    const FOREVER: &str = "public, max-age=31536000";
    let commitment = match hex::decode(&hex_commitment) {
        Ok(c) if hex_commitment.len() <= MAX_COMMITMENT_HEX => c,
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "commitment must be hex-encoded bytes",
                Some(FOREVER),
            )
        }
    };
    let status = state.read_view().status(&commitment);
    match status {
        Status::Pending { .. } => text(
            StatusCode::NOT_FOUND,
            "Pending confirmation in Bitcoin blockchain",
            Some("public, max-age=60"),
        ),
        Status::Mined { txid, .. } => {
            let mut display = txid;
            display.reverse();
            let reason = format!(
                "Timestamped by transaction {}; waiting for {} confirmations",
                hex::encode(display),
                state
                    .read_view()
                    .stamps()
                    .state
                    .min_confirmations
                    .saturating_sub(1)
            );
            text(StatusCode::NOT_FOUND, &reason, Some("public, max-age=60"))
        }
        Status::Complete { proof, .. } => octets(Bytes::from(proof), Some(FOREVER)),
        Status::Unknown => text(
            StatusCode::NOT_FOUND,
            "Not found",
            Some("public, max-age=60"),
        ),
    }
}

/// The rounds a cached tip covers: (first pending, next to seal).
type TipRounds = (u64, u64);

/// The Merkle tip of the pending commitments; with many of them, recomputed at most every
/// [`TIP_MAX_AGE`].
#[derive(Default)]
pub struct TipCache {
    computed: Option<(Instant, TipRounds, Option<Vec<u8>>)>,
}

/// `GET /tip`.
pub fn get_tip(state: Arc<AppState>) -> WarpResponse {
    match current_tip(&state) {
        Some(tip) => octets(Bytes::from(tip), Some("public, max-age=10")),
        None => text(
            StatusCode::NOT_FOUND,
            "no pending commitments",
            Some("public, max-age=10"),
        ),
    }
}

fn current_tip(state: &AppState) -> Option<Vec<u8>> {
    let mut cache = crate::sync::lock(&state.tip);
    let view = state.read_view();
    let round = (view.first_pending_round(), view.next_round());
    if let Some((at, r, tip)) = &cache.computed {
        let cheap = view.pending_commitments().len() <= TIP_CHEAP_COMMITMENTS;
        if *r == round || (!cheap && at.elapsed() < TIP_MAX_AGE) {
            return tip.clone();
        }
    }
    let tip = merkle_tip(view.pending_commitments().map(|c| &c[..]));
    cache.computed = Some((Instant::now(), round, tip.clone()));
    tip
}

/// `GET /`: the info page, as HTML or (with `Accept: application/json`) as JSON.
pub fn get_index(accept: Option<String>, state: Arc<AppState>) -> WarpResponse {
    let tip = current_tip(&state);
    let model = info::Info::gather(&state, tip);
    let wants_json = accept.is_some_and(|a| a.contains("application/json"));
    let (body, content_type) = if wants_json {
        (model.to_json(), "application/json")
    } else {
        (model.to_html(), "text/html; charset=utf-8")
    };
    let mut resp = Response::new(body.into());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=5"),
    );
    h.insert(header::VARY, header::HeaderValue::from_static("Accept"));
    resp
}

/// Turns warp's rejections (no route, wrong method) into plain-text replies.
pub async fn rejection(r: warp::Rejection) -> Result<WarpResponse, Infallible> {
    if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            None,
        ));
    }
    if r.is_not_found() {
        return Ok(text(
            StatusCode::NOT_FOUND,
            "Not found",
            Some("public, max-age=3600"),
        ));
    }
    tracing::debug!("unhandled rejection: {r:?}");
    Ok(text(StatusCode::BAD_REQUEST, "bad request", None))
}

fn text(status: StatusCode, body: &str, cache: Option<&'static str>) -> WarpResponse {
    with_headers(Response::new(body.to_owned().into()), status, TEXT, cache)
}

fn octets(body: Bytes, cache: Option<&'static str>) -> WarpResponse {
    with_headers(Response::new(body.into()), StatusCode::OK, OCTETS, cache)
}

fn with_headers(
    mut resp: WarpResponse,
    status: StatusCode,
    ctype: &'static str,
    cache: Option<&'static str>,
) -> WarpResponse {
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    if let Some(cache) = cache {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static(cache),
        );
    }
    resp.into_response()
}
