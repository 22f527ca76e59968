//! `GET /status/<hex>`: where a commitment, or a submitted digest, stands, as JSON a user (or a
//! client) can act on.
//!
//! ```text
//! {
//!   "commitment": "hex",                // the round's commitment (the one asked for, or the
//!                                       // one of the digest's round)
//!   "found_by": "commitment" | "digest" | null,
//!   "digest": "hex" | null,             // the digest asked for, when found as one
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
//! The hex is first looked up as a commitment (what a pending attestation names, and what
//! `GET /timestamp/` takes), then as a digest a client submitted (`POST /digest`), through the
//! digest index ([`crate::projection::digests`]: on disk up to the last checkpoint, in memory
//! after it). A digest submitted more than once is reported in its first round.
use serde::Serialize;

use super::health::Snapshot;
use super::AppState;
use super::MAX_DIGEST_LEN;
use crate::anchor::state::StamperState;
use crate::projection::{HistoryError, Projection, Status};

/// The `state` when the on-disk history could not answer (served with `503`).
pub const UNAVAILABLE: &str = "unavailable";

/// Seconds per Bitcoin block, for estimates.
pub const BLOCK_INTERVAL_SECS: u64 = 600;

/// The `/status/<hex>` answer.
#[derive(Debug, Serialize)]
pub struct CommitmentStatus {
    pub commitment: String,
    pub found_by: Option<&'static str>,
    pub digest: Option<String>,
    pub state: &'static str,
    pub round: Option<u64>,
    pub round_time: Option<u32>,
    pub txid: Option<String>,
    pub confirmations: Option<u32>,
    pub confirmations_needed: u32,
    pub expected_complete_at: Option<u64>,
    pub detail: String,
}

/// Looks `asked` up as a commitment, else as a submitted digest.
pub fn lookup(state: &AppState, asked: &[u8]) -> CommitmentStatus {
    let snap = Snapshot::take(state);
    let mut status = Projection::status_shared(&state.view, asked);
    let mut found_by = (status != Status::Unknown).then_some("commitment");
    let mut digest = None;
    let mut commitment = asked.to_vec();
    if status == Status::Unknown && (1..=MAX_DIGEST_LEN).contains(&(asked.len() as u64)) {
        match digest_commitment(state, asked) {
            Ok(Some(c)) => {
                status = Projection::status_shared(&state.view, &c);
                found_by = Some("digest");
                digest = Some(hex::encode(asked));
                commitment = c.to_vec();
            }
            Ok(None) => {}
            Err(e) => status = Status::Unavailable(e.to_string()),
        }
    }
    let mut s = describe(&snap, state, &commitment, status);
    s.found_by = found_by;
    s.digest = digest;
    s
}

/// The commitment of the round `digest` was first submitted in, if any.
fn digest_commitment(
    state: &AppState,
    digest: &[u8],
) -> Result<Option<crate::calendar::commitment::Commitment>, HistoryError> {
    let Some(round) = Projection::digest_round_shared(&state.view, digest)? else {
        return Ok(None);
    };
    let entry = state.read_view().round(round)?;
    Ok(entry.map(|e| e.commitment))
}

/// The answer for `commitment`, whose status is `status`.
fn describe(
    snap: &Snapshot,
    state: &AppState,
    commitment: &[u8],
    status: Status,
) -> CommitmentStatus {
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
        found_by: None,
        digest: None,
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
