//! `GET /status/<hex>`: where a commitment stands, as JSON a user (or a client) can act on.
//!
//! ```text
//! {
//!   "commitment": "hex",
//!   "state": "unknown" | "pending" | "in_transaction" | "complete" | "unavailable" (503),
//!   "round": 12 | null,
//!   "round_time": 1700000000 | null,    // when the round was sealed (unix seconds)
//!   "txid": "hex" | null,               // the mined stamping transaction (display order)
//!   "confirmations": 2 | null,
//!   "confirmations_needed": 6,          // --btc-min-confirmations
//!   "expected_complete_at": 1700003600 | null,   // estimate (unix seconds); null when unknown
//!   "detail": "human sentence"
//! }
//! ```
//!
//! The lookup is by commitment (what a pending attestation names, and what `GET /timestamp/`
//! takes). A submitted digest is not looked up: the projection keeps nothing per digest (see
//! [`crate::projection`]), and an on-disk digest index is not built yet; `otsctl inspect --digest`
//! finds a digest by scanning the log.
use serde::Serialize;

use super::health::Snapshot;
use super::AppState;
use crate::anchor::state::StamperState;
use crate::projection::Status;

/// The `state` when the on-disk history could not answer (served with `503`).
pub const UNAVAILABLE: &str = "unavailable";

/// Seconds per Bitcoin block, for estimates.
pub const BLOCK_INTERVAL_SECS: u64 = 600;

/// The `/status/<hex>` answer.
#[derive(Debug, Serialize)]
pub struct CommitmentStatus {
    pub commitment: String,
    pub state: &'static str,
    pub round: Option<u64>,
    pub round_time: Option<u32>,
    pub txid: Option<String>,
    pub confirmations: Option<u32>,
    pub confirmations_needed: u32,
    pub expected_complete_at: Option<u64>,
    pub detail: String,
}

/// Looks `commitment` up.
pub fn lookup(state: &AppState, commitment: &[u8]) -> CommitmentStatus {
    let snap = Snapshot::take(state);
    let status = crate::projection::Projection::status_shared(&state.view, commitment);
    let view = state.read_view();
    let needed = view.min_confirmations();
    let round = match &status {
        Status::Unknown | Status::Unavailable(_) => None,
        Status::Pending { round }
        | Status::Mined { round, .. }
        | Status::Complete { round, .. }
        | Status::Imported { round, .. } => Some(*round),
    };
    let mut s = CommitmentStatus {
        commitment: hex::encode(commitment),
        state: "unknown",
        round,
        round_time: round
            .and_then(|r| view.round(r).ok().flatten())
            .map(|r| r.time),
        txid: None,
        confirmations: None,
        confirmations_needed: needed,
        expected_complete_at: None,
        detail: "not issued by this calendar".to_owned(),
    };
    let blocks = |n: u32| u64::from(n) * BLOCK_INTERVAL_SECS;
    match status {
        Status::Unknown => {}
        Status::Unavailable(why) => {
            s.state = UNAVAILABLE;
            s.detail = format!("the calendar's history cannot answer now: {why}");
        }
        Status::Pending { .. } => {
            s.state = "pending";
            let due = snap.next_tx_at.unwrap_or(0).max(snap.now);
            s.expected_complete_at = snap.stamper_enabled.then(|| due + blocks(needed));
            s.detail = if snap.stamper_enabled {
                "waiting for a stamping transaction to be mined".to_owned()
            } else {
                "pending; this calendar is not stamping (no Bitcoin node configured)".to_owned()
            };
        }
        Status::Mined { txid, .. } => {
            let confs = view
                .stamps()
                .state
                .cycles
                .iter()
                .filter_map(|c| c.confirmed)
                .find(|c| c.txid == txid)
                .zip(snap.best_height)
                .map(|(c, tip)| StamperState::confirmations(c.height, tip))
                .unwrap_or(0);
            let mut display = txid;
            display.reverse();
            s.state = "in_transaction";
            s.txid = Some(hex::encode(display));
            s.confirmations = Some(confs);
            s.expected_complete_at = Some(snap.now + blocks(needed.saturating_sub(confs)));
            s.detail = format!("mined, {confs} of {needed} confirmations");
        }
        Status::Complete { .. } | Status::Imported { .. } => {
            s.state = "complete";
            s.detail = "complete: GET /timestamp/<commitment> returns the proof".to_owned();
        }
    }
    s
}
