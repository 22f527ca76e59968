//! What an operator's monitor needs: a [`Snapshot`] of the calendar's progress (pending rounds,
//! the stamper, the newest complete proof), the alarms raised from it, and the `GET /healthz` and
//! `GET /readyz` answers.
//!
//! - `/healthz`: `200` whenever the process serves HTTP; the body lists the alarms.
//! - `/readyz`: `200` when the log is writable, intake is open and the stamper reaches its node
//!   (or is deliberately off, without `--btc-rpc`); else `503`. The body says why, and lists the
//!   alarms too.
//!
//! Alarms (also `otsd_alarm{alarm=...}` in `/metrics`):
//! - `pending_too_old`: the oldest pending round is older than `--alarm-pending-secs` (default:
//!   two `--btc-min-tx-interval`s), while the stamper runs;
//! - `stamper_cannot_pay`: the stamper's last tick failed for lack of money (fund the address);
//! - `node_unreachable`: the stamper's last tick could not reach Bitcoin Core.
use serde::Serialize;

use super::AppState;
use crate::anchor::state::StamperState;
use crate::stamper::driver::{KIND_CANNOT_PAY, KIND_NODE_UNREACHABLE};
use crate::stamper::policy::STAMP_TX_VSIZE;
use crate::telemetry::metrics::unix_now;

/// Alarm names, as in the JSON bodies and the `alarm` label.
pub const PENDING_TOO_OLD: &str = "pending_too_old";
pub const STAMPER_CANNOT_PAY: &str = "stamper_cannot_pay";
pub const NODE_UNREACHABLE: &str = "node_unreachable";
const ALL_ALARMS: [&str; 3] = [PENDING_TOO_OLD, STAMPER_CANNOT_PAY, NODE_UNREACHABLE];

/// The newest stamping transaction, in flight or mined and not yet final.
#[derive(Debug, Clone, Serialize)]
pub struct InFlight {
    /// Display byte order (as explorers show it).
    pub txid: String,
    pub first_round: u64,
    pub last_round: u64,
    pub fee_sat: u64,
    pub feerate_sat_per_vb: f64,
    /// Best height when it was sent.
    pub sent_at_height: u32,
    /// 0 until mined.
    pub confirmations: u32,
}

/// The calendar's progress at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When it was taken (not serialized: the info page's JSON stays a function of the state).
    #[serde(skip)]
    pub now: u64,
    pub pending_rounds: u64,
    /// Time of the oldest pending round.
    pub oldest_pending_time: Option<u32>,
    /// Time of the newest round whose proof is complete.
    pub newest_complete_time: Option<u32>,
    /// Height of the block holding the newest final stamping transaction.
    pub final_anchor_height: Option<u32>,
    pub best_height: Option<u32>,
    pub in_flight: Option<InFlight>,
    /// Change of the newest mined stamping transaction: what the next cycle spends.
    pub balance_sat: Option<u64>,
    pub stamper_enabled: bool,
    pub stamper_error: Option<String>,
    pub stamper_error_kind: Option<String>,
    /// Unix time the next stamping cycle may start (0: as soon as rounds are pending).
    pub next_tx_at: Option<u64>,
    pub alarms: Vec<&'static str>,
}

impl Snapshot {
    /// Reads the projection and the stamper's status board.
    pub fn take(state: &AppState) -> Snapshot {
        let now = unix_now();
        let board = crate::sync::lock(&state.bitcoin_status).clone();
        let text = |k: &str| {
            board
                .as_ref()
                .and_then(|b| b[k].as_str().map(str::to_owned))
        };
        let view = state.read_view();
        let stamps = view.stamps();
        let first = view.first_pending_round();
        // Round times come from the projection's history (on disk); a read error leaves the
        // figure unknown rather than failing the page.
        let time_of = |r: u64| view.round(r).ok().flatten().map(|e| e.time);
        let best_height = stamps.state.tip().map(|t| t.0);
        let mut s = Snapshot {
            now,
            pending_rounds: view.next_round().saturating_sub(first),
            oldest_pending_time: (first < view.next_round())
                .then(|| time_of(first))
                .flatten(),
            // From the folded stamper state (kept in the checkpoint), so a replay shows the same.
            newest_complete_time: stamps.state.final_through.and_then(time_of),
            final_anchor_height: stamps.state.final_height,
            best_height,
            in_flight: in_flight(&stamps.state, best_height, |t| {
                stamps.raw_tx(t).map(<[u8]>::len)
            }),
            balance_sat: stamps.change_coin().map(|c| c.1),
            stamper_enabled: state.ops.stamper_enabled,
            stamper_error: text("error"),
            stamper_error_kind: text("error_kind"),
            next_tx_at: board.as_ref().and_then(|b| b["next_tx_at"].as_u64()),
            alarms: Vec::new(),
        };
        s.alarms = s.raise(state.ops.pending_alarm_secs);
        s
    }

    /// Seconds since the oldest pending round was sealed.
    pub fn oldest_pending_age(&self) -> Option<u64> {
        self.oldest_pending_time
            .map(|t| self.now.saturating_sub(u64::from(t)))
    }

    fn raise(&self, pending_alarm_secs: u64) -> Vec<&'static str> {
        let kind = self.stamper_error_kind.as_deref();
        let mut alarms = Vec::new();
        if self.stamper_enabled
            && self
                .oldest_pending_age()
                .is_some_and(|age| age > pending_alarm_secs)
        {
            alarms.push(PENDING_TOO_OLD);
        }
        if kind == Some(KIND_CANNOT_PAY) {
            alarms.push(STAMPER_CANNOT_PAY);
        }
        if kind == Some(KIND_NODE_UNREACHABLE) {
            alarms.push(NODE_UNREACHABLE);
        }
        alarms
    }
}

/// Weight of a P2WPKH input's witness with a 72-byte signature, plus the segwit marker and flag.
const P2WPKH_WITNESS_WU: u64 = 2 + 1 + 1 + 72 + 1 + 33;

/// Virtual size of a stamping transaction whose raw form without witness is `base` bytes.
/// Our transactions spend one P2WPKH input, whose witness weighs at most P2WPKH_WITNESS_WU;
/// the logged raw transaction gives the base size while it is kept, else the usual size.
pub fn vsize_of(base: Option<usize>) -> u64 {
    base.map(|base| (base as u64 * 4 + P2WPKH_WITNESS_WU).div_ceil(4))
        .unwrap_or(STAMP_TX_VSIZE)
}

/// The newest transaction of the newest cycle, if any.
fn in_flight(
    state: &StamperState,
    best: Option<u32>,
    raw_len: impl Fn(&[u8; 32]) -> Option<usize>,
) -> Option<InFlight> {
    let cycle = state.cycles.last()?;
    let tx = match cycle.confirmed {
        Some(c) => cycle.tx(&c.txid).unwrap_or(cycle.latest()),
        None => cycle.latest(),
    };
    let vsize = vsize_of(raw_len(&tx.txid));
    let mut display = tx.txid;
    display.reverse();
    Some(InFlight {
        txid: hex::encode(display),
        first_round: tx.first_round,
        last_round: tx.last_round,
        fee_sat: tx.fee_sat,
        feerate_sat_per_vb: tx.fee_sat as f64 / vsize.max(1) as f64,
        sent_at_height: tx.height,
        confirmations: match (cycle.confirmed, best) {
            (Some(c), Some(tip)) => StamperState::confirmations(c.height, tip),
            _ => 0,
        },
    })
}

/// One readiness check.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The body of `/healthz` and `/readyz`.
#[derive(Debug, Serialize)]
pub struct HealthBody {
    pub status: &'static str,
    pub checks: Vec<Check>,
    pub alarms: Vec<&'static str>,
}

/// `/readyz`'s checks.
pub fn readiness(state: &AppState, snap: &Snapshot) -> Vec<Check> {
    let refusal = state.intake.refusal();
    let log_ok = !matches!(
        refusal,
        Some(crate::aggregator::SubmitError::LogUnavailable(_))
    );
    let node = match (snap.stamper_enabled, snap.stamper_error_kind.as_deref()) {
        (false, _) => (true, "stamper off (no --btc-rpc)".to_owned()),
        (true, Some(KIND_NODE_UNREACHABLE)) => {
            (false, snap.stamper_error.clone().unwrap_or_default())
        }
        (true, _) => match snap.best_height {
            Some(h) => (true, format!("node reachable, best height {h}")),
            None => (true, "stamper starting".to_owned()),
        },
    };
    vec![
        Check {
            name: "log",
            ok: log_ok,
            detail: match (&refusal, log_ok) {
                (Some(r), false) => r.to_string(),
                _ => "writable".to_owned(),
            },
        },
        Check {
            name: "intake",
            ok: refusal.is_none(),
            detail: match &refusal {
                None => "accepting digests".to_owned(),
                Some(r) => r.to_string(),
            },
        },
        Check {
            name: "stamper",
            ok: node.0,
            detail: node.1,
        },
    ]
}

/// `GET /healthz` (`ready == false`) or `GET /readyz` (`ready == true`): (ok, body).
pub fn answer(state: &AppState, ready: bool) -> (bool, HealthBody) {
    let snap = Snapshot::take(state);
    record_alarms(state, &snap);
    let checks = if ready {
        readiness(state, &snap)
    } else {
        vec![Check {
            name: "http",
            ok: true,
            detail: "serving".to_owned(),
        }]
    };
    let ok = checks.iter().all(|c| c.ok);
    let status = match (ok, ready) {
        (true, true) => "ready",
        (true, false) => "alive",
        (false, _) => "not ready",
    };
    (
        ok,
        HealthBody {
            status,
            checks,
            alarms: snap.alarms,
        },
    )
}

/// Mirrors the alarms into `otsd_alarm`.
pub fn record_alarms(state: &AppState, snap: &Snapshot) {
    for name in ALL_ALARMS {
        state.ops.metrics.alarm(name, snap.alarms.contains(&name));
    }
}
