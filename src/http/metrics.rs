//! `GET /metrics`: sets the state gauges of [`crate::telemetry::metrics::Metrics`] from the
//! projection, the intake and the log directory, then encodes everything.
use super::health::{record_alarms, Snapshot};
use super::AppState;
use crate::log::segment::{list_segments, segment_name};
use crate::telemetry::metrics::unix_now_f64;

/// The exposition body, with the state gauges current.
pub fn scrape(state: &AppState) -> String {
    let m = &state.ops.metrics;
    let snap = Snapshot::take(state);
    record_alarms(state, &snap);
    m.intake_queue.set(state.intake.queued() as i64);
    {
        let view = state.read_view();
        m.log_next_seq.set(view.next_seq() as i64);
        m.digests_total.set(view.digests_total() as i64);
        m.rounds_sealed.set(view.next_round() as i64);
    }
    m.pending_rounds.set(snap.pending_rounds as i64);
    m.pending_oldest_age
        .set(snap.oldest_pending_age().unwrap_or(0) as f64);
    m.newest_complete_round_age.set(
        snap.newest_complete_time
            .map_or(-1.0, |t| snap.now.saturating_sub(u64::from(t)) as f64),
    );
    m.blocks_since_final_anchor
        .set(match (snap.best_height, snap.final_anchor_height) {
            (Some(best), Some(h)) => i64::from(best.saturating_sub(h)),
            _ => -1,
        });
    m.checkpoint_seq
        .set(state.ops.checkpoint_seq.map_or(-1, |s| s as i64));
    m.stamper_best_height
        .set(snap.best_height.map_or(0, i64::from));
    m.stamper_balance
        .set(snap.balance_sat.map_or(0, |b| b as i64));
    let tx = snap.in_flight.as_ref();
    m.stamper_fee.set(tx.map_or(0, |t| t.fee_sat as i64));
    m.stamper_feerate
        .set(tx.map_or(0.0, |t| t.feerate_sat_per_vb));
    m.stamper_confirmations
        .set(tx.map_or(0, |t| i64::from(t.confirmations)));
    if let Some(dir) = &state.ops.log_dir {
        let (segments, bytes) = log_files(dir);
        m.log_segments.set(segments);
        m.log_bytes.set(bytes);
    }
    replica_gauges(state);
    m.encode()
}

/// The mirror's follower figures (from its status board) and the shipper's lag, as of now.
fn replica_gauges(state: &AppState) {
    let m = &state.ops.metrics;
    let now = unix_now_f64();
    let shipped = m.ship_last_success.get();
    m.ship_lag.set(if shipped > 0.0 {
        (now - shipped).max(0.0)
    } else {
        -1.0
    });
    let status = state
        .mirror
        .get()
        .and_then(|mi| crate::sync::lock(&mi.status).clone());
    let Some(status) = status else {
        m.mirror_lag.set(-1.0);
        return;
    };
    let caught_up = status["caught_up_unix_ms"].as_u64();
    m.mirror_lag
        .set(caught_up.map_or(-1.0, |ms| (now - ms as f64 / 1000.0).max(0.0)));
    m.mirror_fork.set(i64::from(!status["fork"].is_null()));
    m.mirror_unreachable
        .set(i64::from(!status["unreachable_since"].is_null()));
}

/// Number and total size of the segment files in `dir` (the active one is preallocated, so this
/// is disk used, not bytes of records).
fn log_files(dir: &std::path::Path) -> (i64, i64) {
    let Ok(seqs) = list_segments(dir) else {
        return (0, 0);
    };
    let bytes = seqs
        .iter()
        .filter_map(|s| std::fs::metadata(dir.join(segment_name(*s))).ok())
        .map(|m| m.len() as i64)
        .sum();
    (seqs.len() as i64, bytes)
}
