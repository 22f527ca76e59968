//! Progress reports for long reads: at most one per [`PROGRESS_INTERVAL`], and at least one per
//! [`PROGRESS_EVERY_EVENTS`] events, whichever comes first.
use std::time::{Duration, Instant};

/// Longest time between two progress reports.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Most events between two progress reports.
pub const PROGRESS_EVERY_EVENTS: u64 = 1 << 22;
/// The clock is read once per this many events, to keep it off the hot path.
const CLOCK_EVERY_EVENTS: u64 = 4096;

/// Where a long read stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Events read so far.
    pub events: u64,
    /// Sequence number of the last event read.
    pub seq: u64,
    pub elapsed: Duration,
}

impl Progress {
    /// Events per second so far.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Counts events and calls the sink when a report is due.
pub(crate) struct Ticker<'a> {
    started: Instant,
    last_report: Instant,
    events: u64,
    since_report: u64,
    sink: &'a mut dyn FnMut(&Progress),
}

impl<'a> Ticker<'a> {
    pub(crate) fn new(sink: &'a mut dyn FnMut(&Progress)) -> Ticker<'a> {
        let now = Instant::now();
        Ticker {
            started: now,
            last_report: now,
            events: 0,
            since_report: 0,
            sink,
        }
    }

    pub(crate) fn tick(&mut self, seq: u64) {
        self.events += 1;
        self.since_report += 1;
        if !self.since_report.is_multiple_of(CLOCK_EVERY_EVENTS)
            && self.since_report < PROGRESS_EVERY_EVENTS
        {
            return;
        }
        let now = Instant::now();
        if self.since_report >= PROGRESS_EVERY_EVENTS || now - self.last_report >= PROGRESS_INTERVAL
        {
            self.last_report = now;
            self.since_report = 0;
            let p = self.progress(seq);
            (self.sink)(&p);
        }
    }

    pub(crate) fn progress(&self, seq: u64) -> Progress {
        Progress {
            events: self.events,
            seq,
            elapsed: self.started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_at_least_every_progress_every_events() {
        let mut reports = Vec::new();
        let mut sink = |p: &Progress| reports.push((p.events, p.seq));
        {
            let mut ticker = Ticker::new(&mut sink);
            for seq in 0..2 * PROGRESS_EVERY_EVENTS {
                ticker.tick(seq);
            }
        }
        assert!(reports.len() >= 2, "{reports:?}");
        assert_eq!(reports.last().map(|r| r.0), Some(2 * PROGRESS_EVERY_EVENTS));
        assert!(reports
            .windows(2)
            .all(|w| w[1].0 - w[0].0 <= PROGRESS_EVERY_EVENTS));
    }

    #[test]
    fn a_short_read_reports_nothing() {
        let mut reports = 0;
        let mut sink = |_: &Progress| reports += 1;
        {
            let mut ticker = Ticker::new(&mut sink);
            for seq in 0..1000 {
                ticker.tick(seq);
            }
        }
        assert_eq!(reports, 0);
    }
}
