//! One handler per endpoint, and the single place where errors become status codes.
//!
//! Status codes, bodies and `Cache-Control` values follow the Python otsd's `rpc.py`, except where
//! this server is stricter (empty digests are refused, overload is a `503` instead of a hang).
use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use warp::http::{header, Response, StatusCode};
use warp::reply::Response as WarpResponse;
use warp::Reply;

use super::{
    health, info, metrics, status, AppState, BODY_TIMEOUT, MAX_COMMITMENT_HEX, MAX_DIGEST_LEN,
};
use crate::aggregator::SubmitError;
use crate::projection::{Projection, Status};

const TEXT: &str = "text/plain";
const OCTETS: &str = "application/octet-stream";

/// `POST /digest`: queue the digest, answer once its round is durable.
pub async fn post_digest(
    length: Option<String>,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
    state: Arc<AppState>,
) -> WarpResponse {
    let m = &state.ops.metrics;
    if let Some(mirror) = state.mirror.get() {
        m.refused("mirror");
        return mirror_refusal(&mirror.primary);
    }
    let Some(length) = length.and_then(|l| l.trim().parse::<u64>().ok()) else {
        m.refused("bad_length");
        return text(StatusCode::BAD_REQUEST, "invalid Content-Length", None);
    };
    if length > MAX_DIGEST_LEN {
        m.refused("too_long");
        return text(StatusCode::BAD_REQUEST, "digest too long", None);
    }
    if length == 0 {
        m.refused("empty");
        return text(StatusCode::BAD_REQUEST, "digest empty", None);
    }
    let digest = match tokio::time::timeout(BODY_TIMEOUT, read_body(body, length)).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            m.refused("body_mismatch");
            return text(
                StatusCode::BAD_REQUEST,
                "body does not match Content-Length",
                None,
            );
        }
        Err(_) => {
            m.refused("body_timeout");
            return text(StatusCode::REQUEST_TIMEOUT, "body too slow", None);
        }
    };
    let answer = match state.intake.submit(digest) {
        Ok(rx) => rx.await.unwrap_or(Err(SubmitError::ShuttingDown)),
        Err(e) => Err(e),
    };
    match answer {
        Ok(bytes) => octets(bytes, None),
        Err(e) => {
            m.refused(refusal_reason(&e));
            error_reply(&e)
        }
    }
}

/// A mirror takes no digests: `503`, naming the primary to submit to instead.
fn mirror_refusal(primary: &str) -> WarpResponse {
    let body =
        format!("this calendar is a read-only mirror of {primary}; submit digests to the primary");
    text(StatusCode::SERVICE_UNAVAILABLE, &body, None)
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

/// The `reason` label of a refusal by the intake.
fn refusal_reason(e: &SubmitError) -> &'static str {
    match e {
        SubmitError::QueueFull => "queue_full",
        SubmitError::ShuttingDown => "shutting_down",
        SubmitError::LogUnavailable(_) => "log_unavailable",
        SubmitError::LogBusy(_) => "log_busy",
    }
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
pub fn get_timestamp(
    hex_commitment: String,
    query: Option<String>,
    state: Arc<AppState>,
) -> WarpResponse {
    const FOREVER: &str = "public, max-age=31536000";
    let commitment = match hex::decode(&hex_commitment) {
        Ok(c) if hex_commitment.len() <= MAX_COMMITMENT_HEX && query.is_none() => c,
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "commitment must be hex-encoded bytes",
                Some(FOREVER),
            )
        }
    };
    let status = Projection::status_shared(&state.view, &commitment);
    match status {
        Status::Pending { .. } => text(
            StatusCode::NOT_FOUND,
            "Pending confirmation in Bitcoin blockchain",
            Some("public, max-age=60"),
        ),
        Status::Mined { txid, .. } => {
            let mut display = txid;
            display.reverse();
            // The configured total, as the Python server prints it (not the number still needed).
            let reason = format!(
                "Timestamped by transaction {}; waiting for {} confirmations",
                hex::encode(display),
                state.read_view().stamps().state.min_confirmations
            );
            text(StatusCode::NOT_FOUND, &reason, Some("public, max-age=60"))
        }
        Status::Complete { proof, .. } => octets(Bytes::from(proof), Some(FOREVER)),
        Status::Imported { seal_seq, .. } => match imported_proof(&state, seal_seq) {
            Ok(proof) => octets(Bytes::from(proof), Some(FOREVER)),
            Err(why) => {
                tracing::error!(seal_seq, "cannot serve an imported proof: {why}");
                text(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None)
            }
        },
        Status::Unknown => text(
            StatusCode::NOT_FOUND,
            "Not found",
            Some("public, max-age=60"),
        ),
        Status::Unavailable(_) => {
            let mut resp = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "proof history unavailable; the operator has been told",
                None,
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
            resp
        }
    }
}

/// The proof of an imported commitment: the `proof` of its `CommitmentImported` event in the log,
/// followed by the `ProofSuffixImported` it names, if any.
pub(crate) fn imported_proof(state: &AppState, seq: u64) -> Result<Vec<u8>, String> {
    use crate::events::Event;
    let reader = state.log.get().ok_or("no log reader")?;
    let read = |seq: u64| -> Result<Event, String> {
        let event = reader
            .read_event(seq)
            .map_err(|e| e.to_string())?
            .ok_or(format!("event {seq} is not in the log"))?;
        crate::events::codec::decode::<Event>(&event).map_err(|e| e.to_string())
    };
    match read(seq)? {
        Event::CommitmentImported {
            proof: Some(head),
            suffix_seq,
            ..
        } => match suffix_seq.map(read).transpose()? {
            None => Ok(head),
            Some(Event::ProofSuffixImported { bytes }) => {
                Ok(crate::events::joined_proof(&head, Some(&bytes)))
            }
            Some(_) => Err("the proof suffix event is not a ProofSuffixImported".into()),
        },
        _ => Err("the event is not a complete imported commitment".into()),
    }
}

/// `GET /tip`, as the Python server: the tip (OP_RETURN payload) of the newest stamping
/// transaction not yet mined, `404` with an empty body when there is none.
pub fn get_tip(state: Arc<AppState>) -> WarpResponse {
    match current_tip(&state) {
        Some(tip) => octets(Bytes::from(tip.to_vec()), Some("public, max-age=10")),
        None => with_headers(
            Response::new(Vec::new().into()),
            StatusCode::NOT_FOUND,
            TEXT,
            None,
        ),
    }
}

fn current_tip(state: &AppState) -> Option<[u8; 32]> {
    state.read_view().stamps().unconfirmed_tip()
}

/// `GET /`: the info page, as HTML or (with `Accept: application/json`) as JSON.
pub fn get_index(accept: Option<String>, state: Arc<AppState>) -> WarpResponse {
    let tip = current_tip(&state).map(|t| t.to_vec());
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

/// `GET /metrics`.
pub fn get_metrics(state: Arc<AppState>) -> WarpResponse {
    let body = metrics::scrape(&state);
    let mut resp = Response::new(body.into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(crate::telemetry::metrics::CONTENT_TYPE),
    );
    no_store(resp)
}

/// `GET /healthz` (`ready == false`) and `GET /readyz` (`ready == true`).
pub fn get_health(ready: bool, state: Arc<AppState>) -> WarpResponse {
    let (ok, body) = health::answer(&state, ready);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    no_store(json(code, &body))
}

/// `GET /status/<hex>`.
pub fn get_status(hex_commitment: String, state: Arc<AppState>) -> WarpResponse {
    match hex::decode(&hex_commitment) {
        Ok(c) if hex_commitment.len() <= MAX_COMMITMENT_HEX => {
            let found = status::lookup(&state, &c);
            if found.state == status::UNAVAILABLE {
                return no_store(json(StatusCode::SERVICE_UNAVAILABLE, &found));
            }
            let mut resp = json(StatusCode::OK, &found);
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("public, max-age=10"),
            );
            resp
        }
        _ => text(
            StatusCode::BAD_REQUEST,
            "commitment must be hex-encoded bytes",
            None,
        ),
    }
}

fn json(code: StatusCode, body: &impl serde::Serialize) -> WarpResponse {
    let body = serde_json::to_string(body).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    let mut resp = Response::new(body.into());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn no_store(mut resp: WarpResponse) -> WarpResponse {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
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
        return Ok(not_found());
    }
    tracing::debug!("unhandled rejection: {r:?}");
    Ok(text(StatusCode::BAD_REQUEST, "bad request", None))
}

/// A POST to any path but `/digest`, as the Python server answers it.
pub fn post_not_found() -> WarpResponse {
    text(
        StatusCode::NOT_FOUND,
        "not found",
        Some("public, max-age=3600"),
    )
}

/// An unknown path, as the Python server answers it.
pub fn not_found() -> WarpResponse {
    text(
        StatusCode::NOT_FOUND,
        "Not found",
        Some("public, max-age=3600"),
    )
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
