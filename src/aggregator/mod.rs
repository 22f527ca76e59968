//! The aggregator: turns submitted digests into rounds and answers them only once durable.
//!
//! Rounds are group commits, not clock ticks. The aggregator takes everything that is queued, seals it
//! into one round (nonces, Merkle tree, time, MAC), hands the round's events to the log writer as one
//! batch, and waits for the fsync. While that fsync runs, new digests queue up for the next round, so
//! a lightly loaded calendar answers in about one fsync and a heavily loaded one amortises each fsync
//! over many digests. At most one round is in flight, so at most one fdatasync is.
//!
//! Invariant: no request is answered before the log reports its round durable, and the projection
//! learns of a round before any of its requests is answered, so `GET /timestamp` knows a commitment
//! from the instant its `POST /digest` was answered.
mod intake;
mod round;

pub use intake::{Intake, Submission, SubmitError};
pub use round::{RoundSealer, SealedRound};

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::events::Event;
use crate::log::{codec, WriterHandle};
use crate::projection::Projection;

/// Largest number of digests sealed into one round.
pub const MAX_ROUND_DIGESTS: usize = 65_536;

/// How the aggregator paces rounds.
#[derive(Debug, Clone)]
pub struct AggregatorOptions {
    /// Minimum time between the starts of two rounds (zero: seal as soon as the writer is free).
    pub min_round_interval: Duration,
}

/// Runs the aggregation loop until `stop` fires (or every [`Intake`] is dropped), then seals what is
/// still queued and returns the writer.
pub async fn run(
    mut queue: mpsc::Receiver<Submission>,
    stop: oneshot::Receiver<()>,
    writer: WriterHandle,
    mut sealer: RoundSealer,
    view: Arc<RwLock<Projection>>,
    intake: Arc<intake::IntakeState>,
    opts: AggregatorOptions,
) -> WriterHandle {
    let mut last_start: Option<Instant> = None;
    let mut stop = std::pin::pin!(stop);
    let mut stopping = false;
    loop {
        let first = tokio::select! {
            s = queue.recv() => match s { Some(s) => s, None => break },
            _ = &mut stop, if !stopping => {
                // No new submissions from here on; the ones already queued are still sealed.
                queue.close();
                stopping = true;
                continue;
            }
        };
        pace(&mut queue, last_start, opts.min_round_interval).await;
        last_start = Some(Instant::now());
        let mut subs = vec![first];
        while subs.len() < MAX_ROUND_DIGESTS {
            match queue.try_recv() {
                Ok(s) => subs.push(s),
                Err(_) => break,
            }
        }
        let round_no = read_view(&view).next_round();
        commit_round(&writer, &mut sealer, round_no, subs, &view, &intake).await;
    }
    writer
}

async fn pace(queue: &mut mpsc::Receiver<Submission>, last: Option<Instant>, min: Duration) {
    if let Some(last) = last {
        let due = last + min;
        if due > Instant::now() && !queue.is_closed() {
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

async fn commit_round(
    writer: &WriterHandle,
    sealer: &mut RoundSealer,
    round_no: u64,
    subs: Vec<Submission>,
    view: &Arc<RwLock<Projection>>,
    intake: &intake::IntakeState,
) {
    // Digests queued before a shutdown are still sealed; only a poisoned log refuses them.
    if let Some(reason) = intake.poisoned() {
        return refuse_all(subs, reason);
    }
    let digests: Vec<&[u8]> = subs.iter().map(|s| s.digest.as_slice()).collect();
    let sealed = sealer.seal(round_no, unix_now(), &digests);
    let batch = match encode(&sealed.events) {
        Ok(b) => b,
        Err(e) => return fail(intake, subs, format!("encoding round {round_no}: {e}")),
    };
    let durable = match writer.submit(batch) {
        Ok(rx) => rx.await,
        Err(e) => {
            return fail(
                intake,
                subs,
                format!("log writer refused round {round_no}: {e}"),
            )
        }
    };
    let range = match durable {
        Ok(Ok(range)) => range,
        Ok(Err(e)) => {
            return fail(
                intake,
                subs,
                format!("log write of round {round_no} failed: {e}"),
            )
        }
        Err(_) => return fail(intake, subs, "log writer stopped".to_owned()),
    };
    apply(view, range.first, &sealed.events);
    tracing::debug!(
        round = round_no,
        digests = subs.len(),
        first_seq = range.first,
        "round durable"
    );
    for (sub, answer) in subs.into_iter().zip(sealed.answers) {
        let _ = sub.reply.send(Ok(answer));
    }
}

fn encode(events: &[Event]) -> Result<Vec<Vec<u8>>, codec::CodecError> {
    events.iter().map(codec::encode).collect()
}

fn apply(view: &Arc<RwLock<Projection>>, first_seq: u64, events: &[Event]) {
    let mut view = view.write().unwrap_or_else(|p| p.into_inner());
    for (i, ev) in events.iter().enumerate() {
        if let Err(e) = view.apply(first_seq + i as u64, ev) {
            // The aggregator built these events itself; a refusal is a bug, not bad input.
            tracing::error!("projection refused a round the aggregator built: {e}");
        }
    }
}

fn read_view(view: &Arc<RwLock<Projection>>) -> std::sync::RwLockReadGuard<'_, Projection> {
    view.read().unwrap_or_else(|p| p.into_inner())
}

fn fail(intake: &intake::IntakeState, subs: Vec<Submission>, why: String) {
    tracing::error!("{why}; refusing all further digests until otsd is restarted");
    intake.poison(why);
    let reason = intake.poisoned().unwrap_or(SubmitError::ShuttingDown);
    refuse_all(subs, reason)
}

fn refuse_all(subs: Vec<Submission>, reason: SubmitError) {
    for sub in subs {
        let _ = sub.reply.send(Err(reason.clone()));
    }
}

fn unix_now() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}
