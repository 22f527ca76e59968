//! [`WriterHandle`]: the writer on its own OS thread. Everything queued while the previous write and
//! `fdatasync` ran becomes the next group commit, so one fsync acknowledges many batches.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::chain::Head;
use super::durable::DurableEnd;
use super::error::LogError;
use super::writer::{validate_batch, SeqRange, Writer};

/// Most batches gathered into one group commit.
pub const MAX_GROUP_BATCHES: usize = 65_536;

/// The reply to a submitted batch: its sequence numbers once durable, or the error.
pub type Ack = oneshot::Receiver<Result<SeqRange, LogError>>;

struct Job {
    batch: Vec<Vec<u8>>,
    size: u64,
    reply: oneshot::Sender<Result<SeqRange, LogError>>,
}

/// A [`Writer`] running on its own thread, fed through a bounded queue.
#[derive(Debug)]
pub struct WriterHandle {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<Result<(), LogError>>>,
    flags: Flags,
    head: DurableHead,
    end: DurableEnd,
}

/// What the writer thread tells submitters without a round trip.
#[derive(Debug, Clone, Default)]
struct Flags {
    /// Set after a failed write or sync; for good.
    poisoned: Arc<AtomicBool>,
    /// Set after a failed append that wrote nothing; cleared by [`WriterHandle::resume`].
    stalled: Arc<AtomicBool>,
}

/// Whether the writer is poisoned or stalled, readable without the handle.
#[derive(Debug, Clone)]
pub struct WriterState(Flags);

impl WriterState {
    /// As [`WriterHandle::is_poisoned`].
    pub fn is_poisoned(&self) -> bool {
        self.0.poisoned.load(Ordering::Acquire)
    }

    /// As [`WriterHandle::is_stalled`].
    pub fn is_stalled(&self) -> bool {
        self.0.stalled.load(Ordering::Acquire)
    }
}

/// The head after the last durable record, updated by the writer thread after each group commit.
type DurableHead = Arc<Mutex<Head>>;

fn read_head(head: &DurableHead) -> Head {
    *crate::sync::lock(head)
}

impl WriterHandle {
    /// Starts the writer thread with a queue of `queue_capacity` batches.
    pub fn spawn(writer: Writer, queue_capacity: usize) -> WriterHandle {
        let (tx, rx) = mpsc::sync_channel(queue_capacity.max(1));
        let flags = Flags::default();
        let head = Arc::new(Mutex::new(writer.head()));
        let end = DurableEnd::new(writer.end_position());
        let (shared_flags, shared) = (flags.clone(), head.clone());
        let shared_end = end.clone();
        let thread = std::thread::Builder::new()
            .name("otsd-log-writer".into())
            .spawn(move || run(writer, rx, &shared_flags, &shared, &shared_end));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the log writer thread");
                None
            }
        };
        WriterHandle {
            tx: thread.as_ref().map(|_| tx),
            thread,
            flags,
            head,
            end,
        }
    }

    /// Where the durable part of the log ends (segment, offset and next sequence number), kept
    /// current by the writer thread after each group commit: for tasks that follow the log from
    /// its files and must never go beyond it (the log publisher, the `--ship-to` shipper).
    pub fn durable_end(&self) -> DurableEnd {
        self.end.clone()
    }

    /// A cloneable view of [`WriterHandle::is_poisoned`] and [`WriterHandle::is_stalled`].
    pub fn state(&self) -> WriterState {
        WriterState(self.flags.clone())
    }

    /// True once a write or sync failed: nothing is accepted until the log is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.flags.poisoned.load(Ordering::Acquire)
    }

    /// True after an append failed without writing anything (e.g. a full disk): appends are refused
    /// with [`LogError::Stalled`] until [`WriterHandle::resume`].
    pub fn is_stalled(&self) -> bool {
        self.flags.stalled.load(Ordering::Acquire)
    }

    /// Accepts appends again after a stall. The owner calls it once none of its batches numbered
    /// after the failed one is still queued (the aggregator: no round in flight).
    pub fn resume(&self) {
        if self.flags.stalled.swap(false, Ordering::AcqRel) {
            tracing::info!("log writer resumed after a stall");
        }
    }

    /// The head after the last durable record (what a reader of the log would recompute).
    pub fn head(&self) -> Head {
        read_head(&self.head)
    }

    /// Queues a batch without blocking. The receiver resolves once the batch is durable, or with the
    /// error; after a failure every later call errors with [`LogError::Poisoned`].
    pub fn submit(&self, batch: Vec<Vec<u8>>) -> Result<Ack, LogError> {
        submit(self.tx.as_ref(), &self.flags, batch)
    }

    /// A second, cloneable way in for another appender (the stamper). The writer thread ends only
    /// when every submitter is dropped, so drop them before [`WriterHandle::close`].
    pub fn submitter(&self) -> Submitter {
        Submitter {
            tx: self.tx.clone(),
            flags: self.flags.clone(),
            head: self.head.clone(),
        }
    }

    /// Stops accepting, commits what is queued, joins the thread. Errors if the writer was poisoned.
    pub fn close(mut self) -> Result<(), LogError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LogError> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| LogError::Closed)?,
            None => Ok(()),
        }
    }
}

/// Submits batches to a [`WriterHandle`]'s thread; see [`WriterHandle::submitter`].
#[derive(Debug, Clone)]
pub struct Submitter {
    tx: Option<SyncSender<Job>>,
    flags: Flags,
    head: DurableHead,
}

impl Submitter {
    /// As [`WriterHandle::submit`].
    pub fn submit(&self, batch: Vec<Vec<u8>>) -> Result<Ack, LogError> {
        submit(self.tx.as_ref(), &self.flags, batch)
    }

    /// As [`WriterHandle::head`].
    pub fn head(&self) -> Head {
        read_head(&self.head)
    }
}

fn submit(
    tx: Option<&SyncSender<Job>>,
    flags: &Flags,
    batch: Vec<Vec<u8>>,
) -> Result<Ack, LogError> {
    if flags.poisoned.load(Ordering::Acquire) {
        return Err(LogError::Poisoned);
    }
    if flags.stalled.load(Ordering::Acquire) {
        return Err(LogError::Stalled);
    }
    let size = validate_batch(&batch)?;
    let tx = tx.ok_or(LogError::Closed)?;
    let (reply, ack) = oneshot::channel();
    match tx.try_send(Job { batch, size, reply }) {
        Ok(()) => Ok(ack),
        Err(TrySendError::Full(_)) => Err(LogError::QueueFull),
        Err(TrySendError::Disconnected(_)) => Err(LogError::Closed),
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "log writer stopped with an error");
        }
    }
}

fn run(
    mut writer: Writer,
    rx: Receiver<Job>,
    flags: &Flags,
    head: &DurableHead,
    end: &DurableEnd,
) -> Result<(), LogError> {
    while let Ok(first) = rx.recv() {
        let mut jobs = gather(first, &rx, writer.options().max_group_bytes);
        // Checked here, not only at submit: a job queued before the stall is refused as well.
        if flags.stalled.load(Ordering::Acquire) {
            reply(jobs, Err(LogError::Stalled));
            continue;
        }
        let batches: Vec<Vec<Vec<u8>>> = jobs
            .iter_mut()
            .map(|j| std::mem::take(&mut j.batch))
            .collect();
        let result = writer.append_batches(&batches);
        if writer.is_poisoned() {
            flags.poisoned.store(true, Ordering::Release);
        } else if result.is_err() {
            // Nothing was written; set before the replies, so whoever learns of the failure
            // finds the writer stalled.
            flags.stalled.store(true, Ordering::Release);
        }
        // Published before the replies, so whoever learns that its batch is durable sees a head
        // at least as new.
        *crate::sync::lock(head) = writer.head();
        if !writer.is_poisoned() {
            end.set(writer.end_position());
        }
        reply(jobs, result);
    }
    if writer.is_poisoned() {
        return Err(LogError::Poisoned);
    }
    Ok(())
}

/// Takes `first` and whatever else is queued, within the group limits.
fn gather(first: Job, rx: &Receiver<Job>, max_bytes: u64) -> Vec<Job> {
    let mut bytes = first.size;
    let mut jobs = vec![first];
    while bytes < max_bytes && jobs.len() < MAX_GROUP_BATCHES {
        match rx.try_recv() {
            Ok(job) => {
                bytes += job.size;
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
    jobs
}

fn reply(jobs: Vec<Job>, result: Result<Vec<SeqRange>, LogError>) {
    match result {
        Ok(ranges) => {
            for (job, range) in jobs.into_iter().zip(ranges) {
                // The submitter may have stopped waiting; the batch is durable regardless.
                let _ = job.reply.send(Ok(range));
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}
