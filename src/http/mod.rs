//! The HTTP API, compatible with the Python otsd: `POST /digest`, `GET /timestamp/<hex>`, `GET /tip`
//! and the info page at `GET /`.
//!
//! - [`filters`]: routing (warp filters), nothing else.
//! - [`handlers`]: one function per endpoint; they talk to the [`crate::aggregator::Intake`] and read the
//!   [`crate::projection::Projection`]. Every error is mapped to a status code in [`handlers::error_reply`]
//!   and [`handlers::rejection`].
//! - [`info`]: the info page model, rendered as HTML or as JSON (schema in its module docs).
//! - [`server`]: the hyper server with the timeouts and limits warp's own server lacks.
pub mod filters;
pub mod handlers;
pub mod info;
pub mod server;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::aggregator::Intake;
use crate::projection::Projection;

/// Longest digest accepted by `POST /digest` (as the Python server).
pub const MAX_DIGEST_LEN: u64 = 64;
/// Time allowed for a request body to arrive once its headers have.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest hex commitment looked up by `GET /timestamp/` (longer ones cannot be ours).
pub const MAX_COMMITMENT_HEX: usize = 2 * 4096;

/// Everything the handlers need, shared by all connections.
pub struct AppState {
    pub intake: Intake,
    pub view: Arc<RwLock<Projection>>,
    pub uri: String,
    pub donation_addr: String,
    pub network: String,
    /// The stamper's latest status (JSON), shown on the info page.
    pub bitcoin_status: crate::telemetry::StatusBoard,
    /// The calendar's log, read for the proofs that live only there (imported commitments). Set
    /// once at start-up; without it such a proof is answered with a `500`.
    pub log: std::sync::OnceLock<crate::log::Reader>,
}

impl AppState {
    pub fn new(
        intake: Intake,
        view: Arc<RwLock<Projection>>,
        uri: String,
        donation_addr: String,
        network: String,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            intake,
            view,
            uri,
            donation_addr,
            network,
            bitcoin_status: Default::default(),
            log: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn read_view(&self) -> std::sync::RwLockReadGuard<'_, Projection> {
        crate::sync::read(&self.view)
    }
}
