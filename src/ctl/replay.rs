//! `otsctl replay`: folds the whole log into a fresh projection, as otsd does at start-up, and
//! reports what it holds and how fast the fold ran.
use serde::Serialize;

use super::progress::{Progress, Ticker};
use super::{CtlError, LogSource};
use crate::events::Event;
use crate::log::codec;
use crate::projection::Projection;

/// What a replay folded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub events: u64,
    pub rounds: u64,
    pub digests: u64,
    pub next_seq: u64,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// Why a replay stopped: an event that does not decode or does not fit the history.
#[derive(Debug, thiserror::Error)]
#[error("seq {seq}: {detail}")]
pub struct ReplayStopped {
    pub seq: u64,
    pub detail: String,
}

/// Folds every event of `source` into a fresh projection.
pub fn replay(
    source: &LogSource,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Projection, Summary), CtlError> {
    let mut view = Projection::default();
    let mut stopped: Option<ReplayStopped> = None;
    let mut ticker = Ticker::new(progress);
    let next_seq = source.reader.for_each_from(0, |seq, payload| {
        ticker.tick(seq);
        if stopped.is_none() {
            stopped = fold(&mut view, seq, payload).err();
        }
    })?;
    if let Some(s) = stopped {
        return Err(CtlError::Replay(s));
    }
    let p = ticker.progress(next_seq);
    let summary = Summary {
        events: p.events,
        rounds: view.next_round(),
        digests: view.digests_total(),
        next_seq,
        seconds: p.elapsed.as_secs_f64(),
        events_per_second: p.rate(),
    };
    Ok((view, summary))
}

fn fold(view: &mut Projection, seq: u64, payload: &[u8]) -> Result<(), ReplayStopped> {
    let stop = |detail: String| ReplayStopped { seq, detail };
    let event = codec::decode::<Event>(payload).map_err(|e| stop(e.to_string()))?;
    view.apply(seq, &event).map_err(|e| stop(e.to_string()))
}

/// The human summary.
pub fn render(s: &Summary) -> String {
    format!(
        "replayed {} events (next seq {}): {} rounds, {} digests in {:.3}s, {:.0} events/s\n",
        s.events, s.next_seq, s.rounds, s.digests, s.seconds, s.events_per_second
    )
}
