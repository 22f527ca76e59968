//! The aggregator: turns submitted digests into rounds and answers them only once durable.
//!
//! Rounds are group commits, not clock ticks. The aggregator takes everything that is queued, seals it
//! into one round (nonces, Merkle tree, time, MAC), hands the round's events to the log writer as one
//! batch, and waits for the fsync. While that fsync runs, new digests queue up for the next round, so
//! a lightly loaded calendar answers in about one fsync and a heavily loaded one amortises each fsync
//! over many digests. The next round is sealed while the previous one syncs (at most
//! [`MAX_ROUNDS_IN_FLIGHT`] rounds are with the writer), and the writer runs one fdatasync at a time.
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

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::events::codec;
use crate::events::Event;
use crate::log::{Ack, LogError, WriterHandle, WriterState};
use crate::projection::Projection;
use crate::telemetry::metrics::Metrics;

/// Largest number of digests sealed into one round.
pub const MAX_ROUND_DIGESTS: usize = 65_536;

/// How the aggregator paces rounds.
#[derive(Debug, Clone)]
pub struct AggregatorOptions {
    /// Minimum time between the starts of two rounds (zero: seal as soon as the writer is free).
    pub min_round_interval: Duration,
    /// Where rounds, their sizes and their commit latency are counted.
    pub metrics: Arc<Metrics>,
}

/// Rounds handed to the log writer and not yet answered: one being written and fsync'd, one
/// waiting behind it. The writer thread still runs one fdatasync at a time; the second slot only
/// lets the next round be sealed while the previous one syncs, so its fsync starts at once.
pub const MAX_ROUNDS_IN_FLIGHT: usize = 2;

/// A round handed to the writer, waiting for its fsync.
struct InFlight {
    round: u64,
    ack: Ack,
    /// When the round was handed to the writer.
    submitted: Instant,
    events: Vec<Event>,
    answers: Vec<Bytes>,
    subs: Vec<Submission>,
    _slot: OwnedSemaphorePermit,
}

/// Runs the aggregation loop until `stop` fires (or every [`Intake`] is dropped), then seals what is
/// still queued, waits for it to be answered and returns the writer.
pub async fn run(
    mut queue: mpsc::Receiver<Submission>,
    stop: oneshot::Receiver<()>,
    writer: WriterHandle,
    mut sealer: RoundSealer,
    view: Arc<RwLock<Projection>>,
    intake: Arc<intake::IntakeState>,
    opts: AggregatorOptions,
) -> WriterHandle {
    let slots = Arc::new(Semaphore::new(MAX_ROUNDS_IN_FLIGHT));
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let completer = tokio::spawn(complete_rounds(
        done_rx,
        view.clone(),
        intake.clone(),
        writer.state(),
        opts.metrics.clone(),
    ));
    let mut next_round = read_view(&view).next_round();
    let mut last_start: Option<Instant> = None;
    let mut stop = std::pin::pin!(stop);
    let mut stopping = false;
    let mut stall_check = tokio::time::interval(STALL_CHECK);
    loop {
        let first = tokio::select! {
            s = queue.recv() => match s { Some(s) => s, None => break },
            _ = &mut stop, if !stopping => {
                // No new submissions from here on; the ones already queued are still sealed.
                queue.close();
                stopping = true;
                continue;
            }
            // While idle too: the stamper's appends wait for the resume.
            _ = stall_check.tick(), if writer.is_stalled() => {
                next_round = resync(&slots, &writer, &view).await.unwrap_or(next_round);
                continue;
            }
        };
        pace(&mut queue, last_start, opts.min_round_interval).await;
        if writer.is_stalled() {
            next_round = resync(&slots, &writer, &view).await.unwrap_or(next_round);
        }
        // Waiting for a slot lets digests pile up for this round while earlier ones sync.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        last_start = Some(Instant::now());
        let subs = drain(first, &mut queue);
        if let Some(round) = seal_and_submit(&writer, &mut sealer, next_round, subs, &intake, slot)
        {
            next_round += 1;
            let _ = done_tx.send(round);
        }
    }
    drop(done_tx);
    if completer.await.is_err() {
        tracing::error!("the round completer task panicked");
    }
    writer
}

/// How often an idle aggregator checks whether the log writer stalled.
const STALL_CHECK: Duration = Duration::from_secs(1);

/// After an append failed without writing anything (the writer is stalled), waits until no round
/// is in flight (each has been answered or refused), takes the next round number from the
/// projection (refused rounds are numbered again) and resumes the writer. `None` if the slots
/// are closed.
async fn resync(
    slots: &Arc<Semaphore>,
    writer: &WriterHandle,
    view: &Arc<RwLock<Projection>>,
) -> Option<u64> {
    let all = slots
        .clone()
        .acquire_many_owned(MAX_ROUNDS_IN_FLIGHT as u32)
        .await
        .ok()?;
    let next = read_view(view).next_round();
    writer.resume();
    drop(all);
    Some(next)
}

fn drain(first: Submission, queue: &mut mpsc::Receiver<Submission>) -> Vec<Submission> {
    let mut subs = vec![first];
    while subs.len() < MAX_ROUND_DIGESTS {
        match queue.try_recv() {
            Ok(s) => subs.push(s),
            Err(_) => break,
        }
    }
    subs
}

async fn pace(queue: &mut mpsc::Receiver<Submission>, last: Option<Instant>, min: Duration) {
    if let Some(last) = last {
        let due = last + min;
        if due > Instant::now() && !queue.is_closed() {
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// Seals a round and hands it to the writer; `None` if it was refused (and its clients told so).
fn seal_and_submit(
    writer: &WriterHandle,
    sealer: &mut RoundSealer,
    round: u64,
    subs: Vec<Submission>,
    intake: &intake::IntakeState,
    slot: OwnedSemaphorePermit,
) -> Option<InFlight> {
    // Digests queued before a shutdown are still sealed; only a poisoned log refuses them.
    if let Some(reason) = intake.poisoned() {
        refuse_all(subs, reason);
        return None;
    }
    let digests: Vec<&[u8]> = subs.iter().map(|s| s.digest.as_slice()).collect();
    let sealed = sealer.seal(round, unix_now(), &digests);
    let batch = match encode(&sealed.events) {
        Ok(batch) => batch,
        Err(e) => {
            fail(intake, subs, format!("encoding round {round}: {e}"));
            return None;
        }
    };
    let submitted = match writer.submit(batch) {
        Err(e) if try_later(&e, &writer.state()) => {
            tracing::warn!("log writer cannot take round {round} now: {e}");
            refuse_all(subs, SubmitError::LogBusy(e.to_string()));
            return None;
        }
        other => other.map_err(|e| format!("log writer refused round {round}: {e}")),
    };
    match submitted {
        Ok(ack) => Some(InFlight {
            round,
            ack,
            submitted: Instant::now(),
            events: sealed.events,
            answers: sealed.answers,
            subs,
            _slot: slot,
        }),
        Err(why) => {
            fail(intake, subs, why);
            None
        }
    }
}

/// A writer error that left the log unchanged: the round's clients are told to try later and
/// intake goes on ([`resync`] renumbers). Anything else stops intake.
fn try_later(e: &LogError, writer: &WriterState) -> bool {
    e.is_try_later() || (matches!(e, LogError::Io { .. }) && !writer.is_poisoned())
}

/// Answers rounds in the order they were sealed, each only once the log reports it durable.
async fn complete_rounds(
    mut rounds: mpsc::UnboundedReceiver<InFlight>,
    view: Arc<RwLock<Projection>>,
    intake: Arc<intake::IntakeState>,
    writer: WriterState,
    metrics: Arc<Metrics>,
) {
    while let Some(r) = rounds.recv().await {
        let range = match r.ack.await {
            Ok(Ok(range)) => range,
            Ok(Err(e)) if try_later(&e, &writer) => {
                tracing::warn!("round {} not written, nothing lost: {e}", r.round);
                refuse_all(r.subs, SubmitError::LogBusy(e.to_string()));
                continue;
            }
            Ok(Err(e)) => {
                fail(
                    &intake,
                    r.subs,
                    format!("log write of round {} failed: {e}", r.round),
                );
                continue;
            }
            Err(_) => {
                fail(&intake, r.subs, "log writer stopped".to_owned());
                continue;
            }
        };
        metrics
            .round_commit
            .observe(r.submitted.elapsed().as_secs_f64());
        metrics.rounds.inc();
        metrics.round_digests.observe(r.subs.len() as f64);
        metrics.digests_accepted.inc_by(r.subs.len() as u64);
        apply(&view, range.first, &r.events);
        tracing::debug!(
            round = r.round,
            digests = r.subs.len(),
            first_seq = range.first,
            "round durable"
        );
        for (sub, answer) in r.subs.into_iter().zip(r.answers) {
            let _ = sub.reply.send(Ok(answer));
        }
    }
}

fn encode(events: &[Event]) -> Result<Vec<Vec<u8>>, codec::CodecError> {
    events.iter().map(codec::encode).collect()
}

fn apply(view: &Arc<RwLock<Projection>>, first_seq: u64, events: &[Event]) {
    let mut view = crate::sync::write(view);
    for (i, ev) in events.iter().enumerate() {
        if let Err(e) = view.apply(first_seq + i as u64, ev) {
            // The aggregator built these events itself; a refusal is a bug, not bad input.
            tracing::error!("projection refused a round the aggregator built: {e}");
        }
    }
}

fn read_view(view: &Arc<RwLock<Projection>>) -> std::sync::RwLockReadGuard<'_, Projection> {
    crate::sync::read(view)
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
