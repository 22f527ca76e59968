//! The front door of the aggregator: a bounded queue that HTTP handlers push digests into.
//!
//! Pushing never waits: a full queue is an immediate [`SubmitError::QueueFull`], which the HTTP layer
//! turns into `503` with `Retry-After`, so overload is visible instead of a hang.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// A digest waiting for its round, and where its answer goes.
pub struct Submission {
    pub digest: Vec<u8>,
    pub reply: oneshot::Sender<Result<Bytes, SubmitError>>,
}

/// Why a digest was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("pending queue full")]
    QueueFull,
    #[error("shutting down")]
    ShuttingDown,
    #[error("calendar log unavailable")]
    LogUnavailable(String),
    /// The log refused a round without writing anything (no space for the next segment, its
    /// writer's queue full): the calendar is fine, try again later.
    #[error("calendar log cannot take digests right now; try again later")]
    LogBusy(String),
}

/// Shared refusal state: shutting down, or the log writer poisoned.
#[derive(Default)]
pub struct IntakeState {
    shutting_down: AtomicBool,
    poisoned: Mutex<Option<String>>,
}

impl IntakeState {
    /// Why new digests are refused right now, if they are.
    pub fn refusal(&self) -> Option<SubmitError> {
        if let Some(e) = self.poisoned() {
            return Some(e);
        }
        self.shutting_down
            .load(Ordering::Acquire)
            .then_some(SubmitError::ShuttingDown)
    }

    /// The log failure that stopped intake, if any.
    pub fn poisoned(&self) -> Option<SubmitError> {
        let why = crate::sync::lock(&self.poisoned).clone();
        why.map(SubmitError::LogUnavailable)
    }

    pub(crate) fn poison(&self, why: String) {
        *crate::sync::lock(&self.poisoned) = Some(why);
    }
}

/// A cheap, clonable handle for submitting digests.
#[derive(Clone)]
pub struct Intake {
    queue: mpsc::Sender<Submission>,
    state: Arc<IntakeState>,
}

impl Intake {
    /// A new intake with room for `capacity` queued digests, and the receiving end for the aggregator.
    pub fn new(capacity: usize) -> (Intake, mpsc::Receiver<Submission>, Arc<IntakeState>) {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        let state = Arc::new(IntakeState::default());
        (
            Intake {
                queue,
                state: state.clone(),
            },
            rx,
            state,
        )
    }

    /// Queues a digest; the receiver resolves with the serialized timestamp once its round is durable.
    pub fn submit(
        &self,
        digest: Vec<u8>,
    ) -> Result<oneshot::Receiver<Result<Bytes, SubmitError>>, SubmitError> {
        if let Some(why) = self.state.refusal() {
            return Err(why);
        }
        let (reply, rx) = oneshot::channel();
        match self.queue.try_send(Submission { digest, reply }) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(_)) => Err(SubmitError::QueueFull),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::ShuttingDown),
        }
    }

    /// Digests queued and not yet taken into a round.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Refuses new digests from now on; queued ones are still sealed and answered.
    pub fn begin_shutdown(&self) {
        self.state.shutting_down.store(true, Ordering::Release);
    }

    /// Why new digests are refused right now, if they are.
    pub fn refusal(&self) -> Option<SubmitError> {
        self.state.refusal()
    }
}
