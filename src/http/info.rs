//! The info page at `GET /`.
//!
//! The JSON form (`Accept: application/json`) is a stable schema; fields are only ever added:
//!
//! ```text
//! {
//!   "version": "0.1.0",                 // otsd version
//!   "uri": "https://...",               // the calendar URI in pending attestations
//!   "donation_address": "bc1...",
//!   "network": "mainnet" | "testnet" | "regtest",
//!   "accepting": true,                  // false while shutting down or if the log failed
//!   "refusal": null | "reason",         // why digests are refused, when they are
//!   "queued_digests": 0,                // digests waiting for the next round
//!   "digests_total": 123,               // digests accepted since the calendar began
//!   "rounds_total": 45,
//!   "pending_commitments": 45,          // commitments no mined stamping tx covers yet
//!   "tip": null | "hex",                // tip of the newest unmined stamping transaction (GET /tip)
//!   "latest_round": null | {"round": 44, "time": 1700000000, "digests": 3, "commitment": "hex"},
//!   "log_next_seq": 170,                // next event-log sequence number
//!   "bitcoin": null,                    // stamper status, once the stamper runs
//!   "stamping": {...},                  // progress: see `health::Snapshot` (pending rounds,
//!                                       // oldest pending, transaction in flight, alarms, ...)
//!   "max_fee_sat": null | 100000,       // --btc-max-fee
//!   "mined": [{"txid": "hex", "height": 800000, "confirmations": 3, "first_round": 1,
//!              "last_round": 9, "final": false, "fee_sat": 1500, "feerate_sat_per_vb": 9.9}],
//!                                       // newest first, at most MINED_SHOWN
//!   "fees_in_last_week": "12,345",      // as the Python otsd: satoshis, with thousands commas
//!   "fees_in_last_week_sat": 12345,     // the same as a number; null if the history cannot answer
//!   "txs_in_last_week": 7,              // the mined stamping transactions those fees paid for
//!   // the Python otsd's other fields, with its meanings (see `info_python` for the value types):
//!   "txs_waiting_for_confirmation": 1, "most_recent_tx": null | "txid", "prior_versions": 0,
//!   "best_block": null | "hash", "block_height": null | 800000, "balance": null | 12345,
//!   "address": "bc1...", "transactions": [{"txid", "confirmations", "fee", "feerate",
//!   "blockheight"}], "time_between_transactions": null | "6.0 hours" | "N/A",
//!   "lightning_invoice": null | "lnbc...", "explorer_url": null | "https://mempool.space"
//! }
//! ```
//!
//! "The last week" is the mined stamping transactions whose newest round was sealed in the last
//! 7 × 24 hours (see [`crate::projection::Projection::fees_since`]).
use serde::Serialize;

use super::health::Snapshot;
use super::info_python::{self, Inputs, PythonFields};
use super::AppState;
use crate::anchor::state::StamperState;

/// "The last week" of `fees_in_last_week`.
pub const WEEK_SECS: u64 = 7 * 24 * 3600;

/// `n` with commas between thousands, as Python's `f"{n:,}"`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Most stamping transactions listed on the page.
pub const MINED_SHOWN: usize = 10;

/// A mined stamping transaction still in the projection.
#[derive(Debug, Serialize)]
pub struct MinedTx {
    /// Display byte order.
    pub txid: String,
    pub height: u32,
    pub confirmations: u32,
    pub first_round: u64,
    pub last_round: u64,
    #[serde(rename = "final")]
    pub final_: bool,
    pub fee_sat: u64,
    pub feerate_sat_per_vb: f64,
}

/// Everything the info page shows.
#[derive(Debug, Serialize)]
pub struct Info {
    pub version: &'static str,
    pub uri: String,
    pub donation_address: String,
    pub network: String,
    pub accepting: bool,
    pub refusal: Option<String>,
    pub queued_digests: usize,
    pub digests_total: u64,
    pub rounds_total: u64,
    pub pending_commitments: usize,
    pub tip: Option<String>,
    pub latest_round: Option<LatestRound>,
    pub log_next_seq: u64,
    pub bitcoin: Option<serde_json::Value>,
    pub stamping: Snapshot,
    pub max_fee_sat: Option<u64>,
    pub mined: Vec<MinedTx>,
    pub fees_in_last_week: String,
    pub fees_in_last_week_sat: Option<u64>,
    pub txs_in_last_week: Option<u64>,
    /// The stamper's funding address, as it reports it.
    pub stamper_address: Option<String>,
    /// `null`, or on a mirror: `{"primary": URL, "lag_ms": .., "next_seq": .., "fork": null|{..}, ..}`.
    pub mirror: Option<serde_json::Value>,
    #[serde(skip)]
    pub explorer_url: Option<String>,
    /// The Python otsd's fields, with their meanings ([`super::info_python`]).
    #[serde(flatten)]
    pub python: PythonFields,
}

/// The most recent round.
#[derive(Debug, Serialize)]
pub struct LatestRound {
    pub round: u64,
    pub time: u32,
    pub digests: u32,
    pub commitment: String,
}

impl Info {
    /// Takes a consistent snapshot of the calendar's state.
    pub fn gather(state: &AppState, tip: Option<Vec<u8>>) -> Info {
        let refusal = state.intake.refusal().map(|e| e.to_string());
        let stamping = Snapshot::take(state);
        let bitcoin = crate::sync::lock(&state.bitcoin_status).clone();
        let stamper_address = bitcoin
            .as_ref()
            .and_then(|b| b["address"].as_str())
            .filter(|a| !a.contains(' '))
            .map(str::to_owned);
        let view = state.read_view();
        let mined = mined_txs(&view, stamping.best_height);
        let pending_commitments = view.pending_count() as usize;
        let since = stamping.now.saturating_sub(WEEK_SECS);
        let week = view
            .fees_since(u32::try_from(since).unwrap_or(u32::MAX))
            .ok();
        let python = PythonFields::from_state(
            &view.stamps().state,
            Inputs {
                mined: &mined,
                balance_sat: stamping.balance_sat,
                donation_address: &state.donation_addr,
                lightning_invoice: state
                    .ops
                    .lightning_invoice_file
                    .as_deref()
                    .and_then(info_python::read_lightning_invoice),
                explorer_url: state.ops.explorer_url.clone(),
                txs_in_last_week: week.map(|w| w.1),
            },
        );
        Info {
            version: env!("CARGO_PKG_VERSION"),
            uri: state.uri.clone(),
            donation_address: state.donation_addr.clone(),
            network: state.network.clone(),
            accepting: refusal.is_none(),
            refusal,
            queued_digests: state.intake.queued(),
            digests_total: view.digests_total(),
            rounds_total: view.next_round(),
            pending_commitments,
            tip: tip.map(hex::encode),
            latest_round: view.latest_round().map(|(round, r)| LatestRound {
                round,
                time: r.time,
                digests: r.digests,
                commitment: hex::encode(r.commitment),
            }),
            log_next_seq: view.next_seq(),
            bitcoin,
            stamping,
            max_fee_sat: state.ops.max_fee_sat,
            mined,
            fees_in_last_week: week.map_or("unknown".to_owned(), |w| thousands(w.0)),
            fees_in_last_week_sat: week.map(|w| w.0),
            txs_in_last_week: week.map(|w| w.1),
            stamper_address,
            mirror: mirror_status(state),
            explorer_url: state.ops.explorer_url.clone(),
            python,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_html(&self) -> String {
        super::info_page::render(self)
    }
}

/// The mined stamping transactions not yet final (newest first, at most [`MINED_SHOWN`]), from
/// the folded stamper state, which a replay restores exactly; final ones leave the state.
fn mined_txs(view: &crate::projection::Projection, best: Option<u32>) -> Vec<MinedTx> {
    let state = &view.stamps().state;
    state
        .cycles
        .iter()
        .rev()
        .filter_map(|c| {
            let conf = c.confirmed?;
            let tx = c.tx(&conf.txid)?;
            let mut display = conf.txid;
            display.reverse();
            let confirmations = best.map_or(0, |tip| StamperState::confirmations(conf.height, tip));
            let vsize = super::health::vsize_of(view.stamps().raw_tx(&conf.txid).map(<[u8]>::len));
            Some(MinedTx {
                txid: hex::encode(display),
                height: conf.height,
                confirmations,
                first_round: tx.first_round,
                last_round: tx.last_round,
                final_: state.is_final(conf.height, best.unwrap_or(0)),
                fee_sat: tx.fee_sat,
                feerate_sat_per_vb: tx.fee_sat as f64 / vsize.max(1) as f64,
            })
        })
        .take(MINED_SHOWN)
        .collect()
}

/// On a mirror: its primary and the follower's latest status (lag, position, fork).
fn mirror_status(state: &AppState) -> Option<serde_json::Value> {
    let mirror = state.mirror.get()?;
    let mut status = crate::sync::lock(&mirror.status)
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(map) = status.as_object_mut() {
        map.insert("primary".into(), mirror.primary.clone().into());
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_as_python_formats_them() {
        for (n, want) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(super::thousands(n), want);
        }
    }
}
