//! `GET /experimental/backup/<N>`, as the Python otsd serves it to its `otsd-backup` mirrors
//! (chunk format in [`crate::pycal::backup`]):
//!
//! - `200`, `application/octet-stream`, `Cache-Control: public, max-age=31536000`, the chunk's
//!   bytes, once all of its 1000 rounds have complete proofs;
//! - `404`, `text/plain`, `public, max-age=60`, empty body, for a chunk not complete yet, beyond
//!   the last round, or a number Python's `int()` would not read (or past six digits).
//!
//! A complete chunk never changes, so it is built once and kept in `DIR/backup_cache/` under
//! Python's names (`001/001234`), written to a temporary file, synced and renamed; a cache file
//! can always be deleted (it is built again). Building reads 1000 proofs from the projection and
//! the log, so it runs on a blocking thread, one build at a time: concurrent requests for a chunk
//! wait for the first and then read its cache file (Python builds them concurrently, and can cache
//! a chunk mixed from two, see the format notes). Memory: one chunk's nodes (a few hundred KB).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use warp::http::{header, Response, StatusCode};
use warp::reply::Response as WarpResponse;
use warp::Reply;

use super::AppState;
use crate::calendar::legacy::client_message;
use crate::ots::timestamp::Timestamp;
use crate::projection::{Projection, Status};
use crate::pycal::backup::{cache_rel_path, parse_chunk, ChunkBuilder, PAGING};

/// The cache directory's name in the calendar directory (Python's).
pub const CACHE_DIR: &str = "backup_cache";

/// One chunk build at a time, process-wide.
static BUILDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Why a chunk is not served.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// Not all of its rounds exist or have complete proofs yet (a `404`, as in Python).
    #[error("round {0} is not complete")]
    Incomplete(u64),
    /// Something is wrong on our side (a `500`, logged).
    #[error("round {round}: {problem}")]
    Broken { round: u64, problem: String },
    #[error("backup cache {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The handler.
pub async fn get_backup(chunk: String, state: Arc<AppState>) -> WarpResponse {
    let Some(n) = parse_chunk(&chunk) else {
        return not_found();
    };
    let Some(dir) = state.ops.backup_cache.clone() else {
        return not_found();
    };
    let path = dir.join(cache_rel_path(n));
    if let Ok(bytes) = std::fs::read(&path) {
        return found(bytes);
    }
    let _one_at_a_time = BUILDING.lock().await;
    let built = tokio::task::spawn_blocking(move || {
        if let Ok(bytes) = std::fs::read(&path) {
            return Ok(bytes);
        }
        let bytes = build_chunk(&state, n)?;
        write_cache(&path, &bytes)?;
        tracing::info!(
            chunk = n,
            bytes = bytes.len(),
            "backup chunk built and cached"
        );
        Ok(bytes)
    })
    .await;
    match built {
        Ok(Ok(bytes)) => found(bytes),
        Ok(Err(ChunkError::Incomplete(_))) => not_found(),
        Ok(Err(e)) => {
            tracing::error!(chunk = n, "backup chunk: {e}");
            internal_error()
        }
        Err(e) => {
            tracing::error!(chunk = n, "backup chunk task: {e}");
            internal_error()
        }
    }
}

/// The bytes of chunk `n`, newest round first as Python goes (an incomplete chunk fails fast).
pub fn build_chunk(state: &AppState, n: u64) -> Result<Vec<u8>, ChunkError> {
    let mut builder = ChunkBuilder::default();
    let first = n * PAGING;
    for round in (first..first + PAGING).rev() {
        let entry = state
            .read_view()
            .round(round)
            .map_err(|e| broken(round, e))?
            .ok_or(ChunkError::Incomplete(round))?;
        let msg = client_message(&entry.commitment);
        let proof = match Projection::status_shared(&state.view, msg) {
            Status::Complete { proof, .. } => proof,
            Status::Imported { seal_seq, .. } => {
                super::handlers::imported_proof(state, seal_seq).map_err(|e| broken(round, e))?
            }
            Status::Unavailable(e) => return Err(broken(round, e)),
            _ => return Err(ChunkError::Incomplete(round)),
        };
        let tree = Timestamp::from_bytes(&proof, msg.to_vec()).map_err(|e| broken(round, e))?;
        builder.add(&tree);
    }
    Ok(builder.finish())
}

fn broken(round: u64, e: impl std::fmt::Display) -> ChunkError {
    ChunkError::Broken {
        round,
        problem: e.to_string(),
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
fn write_cache(path: &Path, bytes: &[u8]) -> Result<(), ChunkError> {
    let err = |source| ChunkError::Cache {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

fn found(bytes: Vec<u8>) -> WarpResponse {
    reply(
        StatusCode::OK,
        Bytes::from(bytes),
        "application/octet-stream",
        "public, max-age=31536000",
    )
}

fn not_found() -> WarpResponse {
    reply(
        StatusCode::NOT_FOUND,
        Bytes::new(),
        "text/plain",
        "public, max-age=60",
    )
}

fn internal_error() -> WarpResponse {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        Bytes::from_static(b"internal error"),
        "text/plain",
        "no-store",
    )
}

fn reply(
    status: StatusCode,
    body: Bytes,
    ctype: &'static str,
    cache: &'static str,
) -> WarpResponse {
    let mut r: WarpResponse = Response::new(body.into());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(cache),
    );
    r.into_response()
}
