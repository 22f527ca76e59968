//! When to send, bump or wait: a pure function of the folded [`StamperState`], the configuration and
//! the observations the driver passes in (time, best height, fee estimates, sealed rounds).
//!
//! The behaviour follows the Python stamper:
//! - a cycle's first transaction pays `max(estimatesmartfee(conf_target) or relay fee, min relay)`
//!   per vbyte, and only once `min_tx_interval` (randomized, see [`next_tx_time`]) has passed since
//!   the previous cycle was mined;
//! - while unconfirmed, every new block brings a replacement that covers all rounds sealed so far and
//!   pays `max(relay fee, min relay)` per vbyte more than the one it replaces (BIP 125 rule 4);
//! - nothing is sent when the fee would exceed `max_fee_sat` or leave less than [`DUST_SAT`] change.
use crate::anchor::state::{Hash32, StamperState};

/// Upper bound of a stamping transaction's virtual size: one P2WPKH input (72-byte signature), a
/// P2WPKH change output and a 32-byte OP_RETURN output (weight 610).
pub const STAMP_TX_VSIZE: u64 = 153;
/// Smallest change output we create (P2WPKH dust limit at 3 sat/vB).
pub const DUST_SAT: u64 = 294;

/// The stamper's flags (Python otsd's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StamperConfig {
    /// `--btc-conf-target`: blocks, for the first transaction's fee estimate.
    pub conf_target: u16,
    /// `--btc-min-relay-feerate`, in sat per 1000 vbytes.
    pub min_relay_sat_per_kvb: u64,
    /// `--btc-max-fee`, in satoshis.
    pub max_fee_sat: u64,
    /// `--btc-min-tx-interval`, seconds.
    pub min_tx_interval_secs: u64,
    /// `--btc-min-confirmations`.
    pub min_confirmations: u32,
    /// `--max-pending`: most commitments (rounds) one stamping transaction covers, as the Python
    /// otsd's cap; later rounds wait for the next cycle.
    pub max_pending: u64,
}

impl StamperConfig {
    /// The Python otsd's defaults (and those of `otsd`'s flags).
    pub const DEFAULT: StamperConfig = StamperConfig {
        conf_target: 1008,
        min_relay_sat_per_kvb: 1000,
        max_fee_sat: 100_000,
        min_tx_interval_secs: 6 * 60 * 60,
        min_confirmations: crate::projection::stamps::DEFAULT_MIN_CONFIRMATIONS,
        max_pending: 100_000,
    };
}

impl Default for StamperConfig {
    fn default() -> Self {
        StamperConfig::DEFAULT
    }
}

/// What the driver observed just before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Unix time, seconds.
    pub now: u64,
    /// Best block height.
    pub height: u32,
    /// Newest sealed round, if any.
    pub last_sealed_round: Option<u64>,
    /// `estimatesmartfee(conf_target)`, sat/kvB, when the node has an estimate.
    pub estimate_sat_per_kvb: Option<u64>,
    /// The node's relay fee (`getnetworkinfo.relayfee`), sat/kvB.
    pub relay_sat_per_kvb: u64,
    /// Not before this time may a new cycle start (see [`next_tx_time`]).
    pub next_tx_at: u64,
}

/// A transaction to build, sign and broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxPlan {
    pub first_round: u64,
    pub last_round: u64,
    pub fee_sat: u64,
    pub feerate_sat_per_kvb: u64,
    /// nLockTime: the best height.
    pub locktime: u32,
    /// The transaction replaced, with its input value; `None` starts a cycle on a fresh coin, which
    /// the driver must check with [`fits_coin`].
    pub replaces: Option<(Hash32, u64)>,
}

/// Why nothing is sent now (normal waiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    NothingPending,
    /// `min_tx_interval` since the last mined cycle has not passed.
    Interval {
        until: u64,
    },
    /// The open cycle's newest transaction has not seen a new block yet.
    NextBlock,
}

/// Why the stamper cannot send although it should (shown on the info page; retried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    MaxFeeReached { fee_sat: u64, max_fee_sat: u64 },
    OutOfMoney { input_sat: u64, fee_sat: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Wait(Wait),
    Send(TxPlan),
    Blocked(Blocked),
}

/// Fee for the stamping transaction at `sat_per_kvb`, rounded up.
pub fn fee_at(sat_per_kvb: u64) -> u64 {
    (STAMP_TX_VSIZE * sat_per_kvb).div_ceil(1000)
}

/// When the next cycle may start after one was mined at `now`: `min_tx_interval * uniform(1, 2)`,
/// randomized so that calendars drift apart; `jitter` is the caller's draw from `[0, 1)`.
pub fn next_tx_time(now: u64, cfg: &StamperConfig, jitter: f64) -> u64 {
    let factor = 1.0 + jitter.clamp(0.0, 1.0);
    now + (cfg.min_tx_interval_secs as f64 * factor) as u64
}

/// Whether a fresh coin of `value_sat` can pay `plan` and keep a change output.
pub fn fits_coin(plan: &TxPlan, value_sat: u64) -> Result<(), Blocked> {
    check_change(value_sat, plan.fee_sat)
}

fn check_change(input_sat: u64, fee_sat: u64) -> Result<(), Blocked> {
    if input_sat < fee_sat.saturating_add(DUST_SAT) {
        return Err(Blocked::OutOfMoney { input_sat, fee_sat });
    }
    Ok(())
}

fn check_max_fee(cfg: &StamperConfig, fee_sat: u64) -> Result<(), Blocked> {
    if fee_sat > cfg.max_fee_sat {
        return Err(Blocked::MaxFeeReached {
            fee_sat,
            max_fee_sat: cfg.max_fee_sat,
        });
    }
    Ok(())
}

/// The last round a transaction starting at `first` may cover under `--max-pending`.
fn cap_last(cfg: &StamperConfig, first: u64) -> u64 {
    first.saturating_add(cfg.max_pending.max(1) - 1)
}

/// Decides what to do now.
pub fn decide(state: &StamperState, cfg: &StamperConfig, obs: &Observation) -> Decision {
    let result = match state.open_cycle() {
        Some(cycle) => bump(cycle.latest(), cfg, obs),
        None => start_cycle(state, cfg, obs),
    };
    match result {
        Ok(Ok(plan)) => Decision::Send(plan),
        Ok(Err(wait)) => Decision::Wait(wait),
        Err(blocked) => Decision::Blocked(blocked),
    }
}

type Step = Result<Result<TxPlan, Wait>, Blocked>;

fn start_cycle(state: &StamperState, cfg: &StamperConfig, obs: &Observation) -> Step {
    if obs.now < obs.next_tx_at {
        return Ok(Err(Wait::Interval {
            until: obs.next_tx_at,
        }));
    }
    let first = state.next_unstamped_round();
    let last = match obs.last_sealed_round {
        Some(last) if last >= first => last.min(cap_last(cfg, first)),
        _ => return Ok(Err(Wait::NothingPending)),
    };
    let feerate = obs
        .estimate_sat_per_kvb
        .unwrap_or(obs.relay_sat_per_kvb)
        .max(cfg.min_relay_sat_per_kvb);
    let fee_sat = fee_at(feerate);
    check_max_fee(cfg, fee_sat)?;
    Ok(Ok(TxPlan {
        first_round: first,
        last_round: last,
        fee_sat,
        feerate_sat_per_kvb: feerate,
        locktime: obs.height,
        replaces: None,
    }))
}

fn bump(prev: &crate::anchor::state::SentTx, cfg: &StamperConfig, obs: &Observation) -> Step {
    if obs.height <= prev.height {
        return Ok(Err(Wait::NextBlock));
    }
    let increment = fee_at(obs.relay_sat_per_kvb.max(cfg.min_relay_sat_per_kvb));
    let fee_sat = prev.fee_sat + increment;
    check_max_fee(cfg, fee_sat)?;
    check_change(prev.input_sat, fee_sat)?;
    Ok(Ok(TxPlan {
        first_round: prev.first_round,
        last_round: obs.last_sealed_round.map_or(prev.last_round, |l| {
            l.min(cap_last(cfg, prev.first_round)).max(prev.last_round)
        }),
        fee_sat,
        feerate_sat_per_kvb: fee_sat * 1000 / STAMP_TX_VSIZE,
        locktime: obs.height,
        replaces: Some((prev.txid, prev.input_sat)),
    }))
}
