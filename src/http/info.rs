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
//!   "bitcoin": null                     // stamper status, once the stamper runs
//! }
//! ```
use serde::Serialize;

use super::AppState;

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
        let view = state.read_view();
        let pending_commitments = view.pending_count() as usize;
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
            bitcoin: crate::sync::lock(&state.bitcoin_status).clone(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_html(&self) -> String {
        let latest = match &self.latest_round {
            Some(r) => format!(
                "#{} at {} with {} digests, commitment <code>{}</code>",
                r.round, r.time, r.digests, r.commitment
            ),
            None => "none yet".to_owned(),
        };
        let status = match &self.refusal {
            None => "accepting digests".to_owned(),
            Some(why) => format!("NOT accepting digests: {}", escape(why)),
        };
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>OpenTimestamps calendar</title></head><body>\n\
             <h1>OpenTimestamps calendar server</h1>\n\
             <p>Version {version} (otsd, Rust). Network: {network}. Status: {status}.</p>\n\
             <p>Calendar URI: <code>{uri}</code></p>\n\
             <p>Pending commitments: {pending}<br>Digests accepted: {digests}<br>Rounds: {rounds}<br>\
             Queued digests: {queued}<br>Latest round: {latest}<br>Tip: <code>{tip}</code><br>\
             Log next sequence number: {seq}</p>\n\
             <p>Bitcoin: {bitcoin}</p>\n\
             <h2>Donations</h2><p>Address: <code>{addr}</code></p>\n{qr}\n\
             <p>Machine-readable: request this page with <code>Accept: application/json</code>.</p>\n\
             </body></html>\n",
            version = self.version,
            network = escape(&self.network),
            uri = escape(&self.uri),
            pending = self.pending_commitments,
            digests = self.digests_total,
            rounds = self.rounds_total,
            queued = self.queued_digests,
            tip = self.tip.as_deref().unwrap_or("none"),
            seq = self.log_next_seq,
            bitcoin = self.bitcoin.as_ref().map_or("status not known yet".to_owned(), |b| escape(&b.to_string())),
            addr = escape(&self.donation_address),
            qr = qr_svg(&format!("bitcoin:{}", self.donation_address)),
        )
    }
}

fn qr_svg(data: &str) -> String {
    match qrcode::QrCode::new(data.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(160, 160)
            .build(),
        Err(_) => String::new(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
