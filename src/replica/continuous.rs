//! `otsd --ship-to s3://BUCKET/PREFIX`: ships the log into a bucket while otsd runs.
//!
//! A thread of its own (with a small async runtime for the object store) runs a
//! [`BucketShipper`] step every `--ship-interval-ms`, shipping what is durable, so the bucket is at
//! most about one interval plus one upload behind. Intake never waits on it: it only reads the
//! log's files and where the writer's log is durable ([`DurableEnd`]). A failed step (bucket unreachable, credentials) is
//! logged (once per distinct error) and retried with a fresh shipper, which reads the bucket's
//! index again; nothing is ever lost by a failure, the next good step catches up. At shutdown,
//! after the log is closed, one last step ships everything.
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bucket::{BucketError, BucketUrl};
use super::bucket_ship::BucketShipper;
use super::ship::ShipError;
use crate::log::DurableEnd;
use crate::telemetry::metrics::{unix_now_f64, Metrics};

/// Default `--ship-interval-ms`.
pub const DEFAULT_SHIP_INTERVAL: Duration = Duration::from_millis(1000);

/// Where and how often to ship.
#[derive(Debug, Clone)]
pub struct ShipTo {
    pub url: BucketUrl,
    pub interval: Duration,
}

/// The running shipper thread.
pub struct ContinuousShipper {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ContinuousShipper {
    /// Starts shipping the log of `calendar`; `durable` is where the writer's log is durable. Each
    /// step's
    /// outcome goes to `metrics` (`otsd_ship_*`).
    pub fn spawn(
        calendar: PathBuf,
        to: ShipTo,
        durable: DurableEnd,
        metrics: Arc<Metrics>,
    ) -> Result<ContinuousShipper, BucketError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BucketError::Runtime)?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("otsd-shipper".into())
            .spawn(move || run(&runtime, &calendar, &to, &durable, &metrics, &stopped))
            .map_err(BucketError::Runtime)?;
        Ok(ContinuousShipper { stop, thread })
    }

    /// Ships what is left (call after the log is closed) and stops; blocks until done.
    pub fn finish(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the shipper thread panicked");
        }
    }
}

fn run(
    runtime: &tokio::runtime::Runtime,
    calendar: &std::path::Path,
    to: &ShipTo,
    durable: &DurableEnd,
    metrics: &Metrics,
    stopped: &mpsc::Receiver<()>,
) {
    tracing::info!(
        every_ms = to.interval.as_millis() as u64,
        "shipping the log to {}",
        to.url
    );
    let mut shipper: Option<BucketShipper> = None;
    let mut last_error = String::new();
    loop {
        let last = matches!(
            stopped.recv_timeout(to.interval),
            Ok(()) | Err(RecvTimeoutError::Disconnected)
        );
        let head = (!last).then(|| durable.get().next_seq);
        let started = Instant::now();
        let started_unix = unix_now_f64();
        match runtime.block_on(step(&mut shipper, calendar, to, head)) {
            Ok(()) => {
                // Everything durable when the step began is in the bucket now.
                metrics.ship_last_success.set(started_unix);
                if !last_error.is_empty() {
                    tracing::info!("shipping to {} works again", to.url);
                    last_error.clear();
                }
                tracing::debug!(ms = started.elapsed().as_millis() as u64, "shipped");
            }
            Err(e) => {
                metrics.ship_failures.inc();
                shipper = None;
                let msg = e.to_string();
                if msg != last_error {
                    tracing::warn!(error = %msg, "shipping to {} failed; retrying", to.url);
                    last_error = msg;
                }
            }
        }
        if last {
            return;
        }
    }
}

async fn step(
    shipper: &mut Option<BucketShipper>,
    calendar: &std::path::Path,
    to: &ShipTo,
    durable_next_seq: Option<u64>,
) -> Result<(), ShipError> {
    if shipper.is_none() {
        *shipper = Some(BucketShipper::open(calendar, &to.url).await?);
    }
    if let Some(s) = shipper.as_mut() {
        s.step(durable_next_seq).await?;
    }
    Ok(())
}
