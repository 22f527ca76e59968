//! The calendar's Prometheus metrics, exposed at `GET /metrics` (OpenMetrics text, which Prometheus
//! scrapes natively) through the `prometheus-client` crate.
//!
//! Two kinds of figures:
//! - *events*, counted where they happen: digests accepted and refused (by reason), rounds and
//!   their sizes, log commit latency, HTTP answers by status, stamper broadcasts and errors (by
//!   kind);
//! - *state*, set from the projection, the intake and the log directory just before each scrape
//!   (by [`crate::http`]), so they are never stale and cost nothing between scrapes.
//!
//! Names follow the Prometheus conventions: `otsd_` prefix, the unit in the name, `_total` on
//! counters (added by the encoder). Label values come from fixed sets (reasons, kinds, status
//! codes), so the number of series is bounded.
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// A label set with one label whose value comes from a fixed set of names.
pub type Reason = [(&'static str, &'static str); 1];
/// The `code` label of HTTP answers.
pub type Code = [(&'static str, u16); 1];
/// A gauge holding a float.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric of one running calendar (tests run several in one process, so there is no global).
pub struct Metrics {
    registry: Registry,
    // Intake and rounds.
    pub digests_accepted: Counter,
    pub digests_refused: Family<Reason, Counter>,
    pub rounds: Counter,
    pub round_digests: Histogram,
    pub round_commit: Histogram,
    pub intake_queue: Gauge,
    // The log and the projection.
    pub log_bytes: Gauge,
    pub log_segments: Gauge,
    pub log_next_seq: Gauge,
    pub digests_total: Gauge,
    pub rounds_sealed: Gauge,
    pub pending_rounds: Gauge,
    pub pending_oldest_age: FloatGauge,
    pub newest_complete_round_age: FloatGauge,
    pub blocks_since_final_anchor: Gauge,
    pub checkpoint_seq: Gauge,
    // The stamper.
    pub stamper_broadcasts: Counter,
    pub stamper_errors: Family<Reason, Counter>,
    pub stamper_last_broadcast: Gauge,
    pub stamper_feerate: FloatGauge,
    pub stamper_fee: Gauge,
    pub stamper_confirmations: Gauge,
    pub stamper_balance: Gauge,
    pub stamper_best_height: Gauge,
    pub next_tx_due: Gauge,
    // A mirror's follower (`--mirror-of`) and a primary's shipper (`--ship-to`).
    pub mirror_lag: FloatGauge,
    pub mirror_fork: Gauge,
    pub mirror_unreachable: Gauge,
    pub ship_last_success: FloatGauge,
    pub ship_lag: FloatGauge,
    pub ship_failures: Counter,
    // HTTP and alarms.
    pub http_responses: Family<Code, Counter>,
    pub alarms: Family<Reason, Gauge>,
    pub up_since: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric under the `otsd_` prefix.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("otsd"),
            digests_accepted: Counter::default(),
            digests_refused: Family::default(),
            rounds: Counter::default(),
            // 1, 2, 4, ... 65536 digests (MAX_ROUND_DIGESTS).
            round_digests: Histogram::new(exponential_buckets(1.0, 2.0, 17)),
            // 50 µs .. about 3 s.
            round_commit: Histogram::new(exponential_buckets(0.000_05, 2.0, 17)),
            intake_queue: Gauge::default(),
            log_bytes: Gauge::default(),
            log_segments: Gauge::default(),
            log_next_seq: Gauge::default(),
            digests_total: Gauge::default(),
            rounds_sealed: Gauge::default(),
            pending_rounds: Gauge::default(),
            pending_oldest_age: FloatGauge::default(),
            newest_complete_round_age: FloatGauge::default(),
            blocks_since_final_anchor: Gauge::default(),
            checkpoint_seq: Gauge::default(),
            stamper_broadcasts: Counter::default(),
            stamper_errors: Family::default(),
            stamper_last_broadcast: Gauge::default(),
            stamper_feerate: FloatGauge::default(),
            stamper_fee: Gauge::default(),
            stamper_confirmations: Gauge::default(),
            stamper_balance: Gauge::default(),
            stamper_best_height: Gauge::default(),
            next_tx_due: Gauge::default(),
            mirror_lag: FloatGauge::default(),
            mirror_fork: Gauge::default(),
            mirror_unreachable: Gauge::default(),
            ship_last_success: FloatGauge::default(),
            ship_lag: FloatGauge::default(),
            ship_failures: Counter::default(),
            http_responses: Family::default(),
            alarms: Family::default(),
            up_since: Gauge::default(),
        };
        m.register();
        m.up_since.set(unix_now() as i64);
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "digests_accepted",
            "Digests accepted by POST /digest (answered after fsync)",
            self.digests_accepted.clone(),
        );
        r.register(
            "digests_refused",
            "Digests refused by POST /digest, by reason",
            self.digests_refused.clone(),
        );
        r.register(
            "rounds",
            "Rounds sealed and made durable by this process",
            self.rounds.clone(),
        );
        r.register(
            "round_digests",
            "Digests per round",
            self.round_digests.clone(),
        );
        r.register_with_unit(
            "round_commit",
            "Time from handing a round to the log writer to its write and fdatasync returning",
            Unit::Seconds,
            self.round_commit.clone(),
        );
        r.register(
            "intake_queue_digests",
            "Digests queued for the next round",
            self.intake_queue.clone(),
        );
        r.register_with_unit(
            "log",
            "Size of the log's segment files",
            Unit::Bytes,
            self.log_bytes.clone(),
        );
        r.register(
            "log_segments",
            "Log segment files",
            self.log_segments.clone(),
        );
        r.register(
            "log_next_seq",
            "Next event sequence number of the log",
            self.log_next_seq.clone(),
        );
        r.register(
            "projection_digests",
            "Digests in the calendar's whole history",
            self.digests_total.clone(),
        );
        r.register(
            "projection_rounds",
            "Rounds in the calendar's whole history",
            self.rounds_sealed.clone(),
        );
        r.register(
            "pending_rounds",
            "Rounds no mined stamping transaction covers yet",
            self.pending_rounds.clone(),
        );
        r.register_with_unit(
            "pending_oldest_age",
            "Age of the oldest pending round (0 when none)",
            Unit::Seconds,
            self.pending_oldest_age.clone(),
        );
        r.register_with_unit(
            "newest_complete_round_age",
            "Age of the newest round whose proof is complete (final in Bitcoin); -1 when none",
            Unit::Seconds,
            self.newest_complete_round_age.clone(),
        );
        r.register(
            "blocks_since_final_anchor",
            "Blocks between the best block and the newest final stamping transaction; -1 when not known (not yet kept across checkpoints)",
            self.blocks_since_final_anchor.clone(),
        );
        r.register(
            "checkpoint_seq",
            "Sequence number the projection's checkpoint was written at on start-up; -1 when none",
            self.checkpoint_seq.clone(),
        );
        r.register(
            "stamper_broadcasts",
            "Stamping transactions (and fee bumps) broadcast by this process",
            self.stamper_broadcasts.clone(),
        );
        r.register(
            "stamper_errors",
            "Stamper ticks that failed, by kind",
            self.stamper_errors.clone(),
        );
        r.register_with_unit(
            "stamper_last_broadcast_timestamp",
            "Unix time of this process's last broadcast; 0 when none",
            Unit::Seconds,
            self.stamper_last_broadcast.clone(),
        );
        r.register(
            "stamper_feerate_sat_per_vbyte",
            "Fee rate of the newest stamping transaction not yet final; 0 when none",
            self.stamper_feerate.clone(),
        );
        r.register(
            "stamper_fee_satoshis",
            "Fee of the newest stamping transaction not yet final; 0 when none",
            self.stamper_fee.clone(),
        );
        r.register(
            "stamper_confirmations",
            "Confirmations of the newest mined stamping transaction not yet final; 0 when none",
            self.stamper_confirmations.clone(),
        );
        r.register(
            "stamper_balance_satoshis",
            "Change of the newest mined stamping transaction: the coin the next cycle spends",
            self.stamper_balance.clone(),
        );
        r.register(
            "stamper_best_height",
            "Best block height the stamper has seen",
            self.stamper_best_height.clone(),
        );
        r.register_with_unit(
            "stamper_next_tx_due_timestamp",
            "Unix time at which the next stamping cycle may start; 0 when unknown",
            Unit::Seconds,
            self.next_tx_due.clone(),
        );
        r.register_with_unit(
            "mirror_lag",
            "Mirror: time since it last had everything its source had; -1 before that, or when not a mirror",
            Unit::Seconds,
            self.mirror_lag.clone(),
        );
        r.register(
            "mirror_fork_refused",
            "Mirror: 1 when the source rewrote history and following stopped (see the info page)",
            self.mirror_fork.clone(),
        );
        r.register(
            "mirror_source_unreachable",
            "Mirror: 1 while its source (primary or bucket) cannot be read",
            self.mirror_unreachable.clone(),
        );
        r.register_with_unit(
            "ship_last_success_timestamp",
            "--ship-to: Unix time of the last step that shipped everything durable; 0 when none",
            Unit::Seconds,
            self.ship_last_success.clone(),
        );
        r.register_with_unit(
            "ship_lag",
            "--ship-to: time since the last successful ship step (the bucket is at most this behind); -1 when none",
            Unit::Seconds,
            self.ship_lag.clone(),
        );
        r.register(
            "ship_failures",
            "--ship-to: ship steps that failed (bucket unreachable, credentials, refused prefix)",
            self.ship_failures.clone(),
        );
        r.register(
            "http_responses",
            "HTTP answers, by status code",
            self.http_responses.clone(),
        );
        r.register(
            "alarm",
            "1 when the named alarm is raised (see GET /readyz)",
            self.alarms.clone(),
        );
        r.register_with_unit(
            "start_time",
            "Unix time this process started",
            Unit::Seconds,
            self.up_since.clone(),
        );
    }

    /// Counts a refused digest.
    pub fn refused(&self, reason: &'static str) {
        self.digests_refused
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// Counts a failed stamper tick.
    pub fn stamper_error(&self, kind: &'static str) {
        self.stamper_errors.get_or_create(&[("kind", kind)]).inc();
    }

    /// Counts an HTTP answer.
    pub fn http_response(&self, code: u16) {
        self.http_responses.get_or_create(&[("code", code)]).inc();
    }

    /// Raises or clears an alarm.
    pub fn alarm(&self, name: &'static str, raised: bool) {
        self.alarms
            .get_or_create(&[("alarm", name)])
            .set(i64::from(raised));
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            return format!("# encoding failed: {e}\n# EOF\n");
        }
        out
    }
}

/// The `Content-Type` of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Seconds since the Unix epoch, with the fraction.
pub fn unix_now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_prefix_units_and_total() {
        let m = Metrics::new();
        m.digests_accepted.inc();
        m.refused("queue_full");
        m.round_commit.observe(0.002);
        m.http_response(404);
        let text = m.encode();
        assert!(text.contains("otsd_digests_accepted_total 1"), "{text}");
        assert!(
            text.contains("otsd_digests_refused_total{reason=\"queue_full\"} 1"),
            "{text}"
        );
        assert!(text.contains("otsd_round_commit_seconds_count 1"), "{text}");
        assert!(
            text.contains("otsd_http_responses_total{code=\"404\"} 1"),
            "{text}"
        );
        assert!(text.contains("# UNIT otsd_log_bytes bytes"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
