//! The HTTP API, compatible with the Python otsd: `POST /digest`, `GET /timestamp/<hex>`, `GET /tip`
//! and the info page at `GET /`.
//!
//! - [`filters`]: routing (warp filters), nothing else.
//! - [`handlers`]: one function per endpoint; they talk to the [`crate::aggregator::Intake`] and read the
//!   [`crate::projection::Projection`]. Every error is mapped to a status code in [`handlers::error_reply`]
//!   and [`handlers::rejection`].
//! - [`info`]: the info page model, rendered as HTML or as JSON (schema in its module docs).
//! - [`server`]: the hyper server with the timeouts and limits warp's own server lacks.
//! - [`backup`]: `GET /experimental/backup/<N>`, the Python otsd's chunks for `otsd-backup`.
//! - [`health`], [`metrics`], [`status`]: what operators and users watch: `GET /healthz`,
//!   `GET /readyz`, `GET /metrics` (Prometheus) and `GET /status/<hex>` (JSON).
//! - [`log_feed`]: `GET /log/segments.txt` and `GET /log/<segment>`, the published log mirrors
//!   follow.
pub mod backup;
pub mod filters;
pub mod handlers;
pub mod health;
pub mod info;
pub mod info_page;
pub mod info_python;
pub mod log_feed;
pub mod metrics;
pub mod server;
pub mod status;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::aggregator::Intake;
use crate::projection::Projection;
use crate::telemetry::metrics::Metrics;

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
    pub ops: OpsConfig,
    /// What `GET /log/` serves; unset: publishing is off.
    pub log_feed: std::sync::OnceLock<Arc<dyn log_feed::LogFeed>>,
    /// Set when this otsd is a read-only mirror (`--mirror-of`).
    pub mirror: std::sync::OnceLock<MirrorInfo>,
}

/// A mirror's primary and the follower's latest status (JSON, shown on the info page).
#[derive(Debug, Clone)]
pub struct MirrorInfo {
    /// The URL the mirror follows.
    pub primary: String,
    pub status: crate::telemetry::StatusBoard,
}

/// What the operator-facing endpoints need besides the calendar itself.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    pub metrics: Arc<Metrics>,
    /// The log's segment directory, for the log size figures.
    pub log_dir: Option<PathBuf>,
    /// Also serve `GET /metrics` on the API address (false when it has its own address).
    pub metrics_on_api: bool,
    /// Whether a stamper runs (`--btc-rpc`).
    pub stamper_enabled: bool,
    /// Raise `pending_too_old` when the oldest pending round is older than this.
    pub pending_alarm_secs: u64,
    /// `--btc-max-fee` in satoshis, shown against the fee of the transaction in flight.
    pub max_fee_sat: Option<u64>,
    /// `--btc-min-tx-interval`, for the expected time to completion.
    pub min_tx_interval_secs: u64,
    /// Block explorer URL prefix for transaction links (`.../tx/` is appended to it).
    pub explorer_url: Option<String>,
    /// `--lightning-invoice-file`: a Lightning invoice for donations, read at each info-page
    /// request (as the Python otsd), so the operator can replace it while otsd runs.
    pub lightning_invoice_file: Option<PathBuf>,
    /// Where `GET /experimental/backup/<N>` caches chunks (`DIR/backup_cache`); without it the
    /// endpoint answers `404`.
    pub backup_cache: Option<PathBuf>,
    /// Sequence number the projection's checkpoint was at on start-up.
    pub checkpoint_seq: Option<u64>,
}

/// Default `pending_too_old` threshold: two of the Python otsd's default transaction intervals.
pub const DEFAULT_PENDING_ALARM_SECS: u64 = 2 * 6 * 60 * 60;

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig {
            metrics: Arc::new(Metrics::new()),
            log_dir: None,
            metrics_on_api: true,
            stamper_enabled: false,
            pending_alarm_secs: DEFAULT_PENDING_ALARM_SECS,
            max_fee_sat: None,
            min_tx_interval_secs: 6 * 60 * 60,
            explorer_url: None,
            lightning_invoice_file: None,
            backup_cache: None,
            checkpoint_seq: None,
        }
    }
}

impl AppState {
    pub fn new(
        intake: Intake,
        view: Arc<RwLock<Projection>>,
        uri: String,
        donation_addr: String,
        network: String,
        ops: OpsConfig,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            intake,
            view,
            uri,
            donation_addr,
            network,
            bitcoin_status: Default::default(),
            log: std::sync::OnceLock::new(),
            ops,
            log_feed: std::sync::OnceLock::new(),
            mirror: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn read_view(&self) -> std::sync::RwLockReadGuard<'_, Projection> {
        crate::sync::read(&self.view)
    }
}
