//! [`WriterHandle`]: the writer on its own OS thread. Everything queued while the previous write and
//! `fdatasync` ran becomes the next group commit, so one fsync acknowledges many batches.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::chain::Head;
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
    poisoned: Arc<AtomicBool>,
    head: DurableHead,
}

/// The head after the last durable record, updated by the writer thread after each group commit.
type DurableHead = Arc<Mutex<Head>>;

fn read_head(head: &DurableHead) -> Head {
    *head.lock().unwrap_or_else(|p| p.into_inner())
}

impl WriterHandle {
    /// Starts the writer thread with a queue of `queue_capacity` batches.
    pub fn spawn(writer: Writer, queue_capacity: usize) -> WriterHandle {
        let (tx, rx) = mpsc::sync_channel(queue_capacity.max(1));
        let poisoned = Arc::new(AtomicBool::new(false));
        let head = Arc::new(Mutex::new(writer.head()));
        let (flag, shared) = (poisoned.clone(), head.clone());
        let thread = std::thread::Builder::new()
            .name("otsd-log-writer".into())
            .spawn(move || run(writer, rx, &flag, &shared));
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
            poisoned,
            head,
        }
    }

    /// The head after the last durable record (what a reader of the log would recompute).
    pub fn head(&self) -> Head {
        read_head(&self.head)
    }

    /// Queues a batch without blocking. The receiver resolves once the batch is durable, or with the
    /// error; after a failure every later call errors with [`LogError::Poisoned`].
    pub fn submit(&self, batch: Vec<Vec<u8>>) -> Result<Ack, LogError> {
        submit(self.tx.as_ref(), &self.poisoned, batch)
    }

    /// A second, cloneable way in for another appender (the stamper). The writer thread ends only
    /// when every submitter is dropped, so drop them before [`WriterHandle::close`].
    pub fn submitter(&self) -> Submitter {
        Submitter {
            tx: self.tx.clone(),
            poisoned: self.poisoned.clone(),
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
    poisoned: Arc<AtomicBool>,
    head: DurableHead,
}

impl Submitter {
    /// As [`WriterHandle::submit`].
    pub fn submit(&self, batch: Vec<Vec<u8>>) -> Result<Ack, LogError> {
        submit(self.tx.as_ref(), &self.poisoned, batch)
    }

    /// As [`WriterHandle::head`].
    pub fn head(&self) -> Head {
        read_head(&self.head)
    }
}

fn submit(
    tx: Option<&SyncSender<Job>>,
    poisoned: &AtomicBool,
    batch: Vec<Vec<u8>>,
) -> Result<Ack, LogError> {
    if poisoned.load(Ordering::Acquire) {
        return Err(LogError::Poisoned);
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
    poisoned: &AtomicBool,
    head: &DurableHead,
) -> Result<(), LogError> {
    while let Ok(first) = rx.recv() {
        let mut jobs = gather(first, &rx, writer.options().max_group_bytes);
        let batches: Vec<Vec<Vec<u8>>> = jobs
            .iter_mut()
            .map(|j| std::mem::take(&mut j.batch))
            .collect();
        let result = writer.append_batches(&batches);
        if writer.is_poisoned() {
            poisoned.store(true, Ordering::Release);
        }
        // Published before the replies, so whoever learns that its batch is durable sees a head
        // at least as new.
        *head.lock().unwrap_or_else(|p| p.into_inner()) = writer.head();
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
