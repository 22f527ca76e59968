//! Wiring of a running calendar: open the log, replay it into the projection, then run the writer,
//! the aggregator and the HTTP server until a shutdown signal, and close everything in order.
//!
//! Shutdown order matters for "nothing acknowledged is lost": stop accepting connections, let open
//! requests get their answers (the aggregator still runs), then close the aggregator's queue and
//! drain it, and finally close the log writer, which fsyncs whatever it still holds.
pub mod dev;
pub mod mirror;
pub mod systemd;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::aggregator::{self, AggregatorOptions, Intake, RoundSealer};
use crate::calendar::dir::{CalendarDir, DirError, HISTORY_MARKER};
use crate::http::{self, AppState, OpsConfig};
use crate::log::segment::list_segments;
use crate::log::{LogError, LogKey, Writer, WriterHandle, WriterOptions};
use crate::projection::checkpoint::PROJECTION_DIR;
use crate::projection::rebuild::{rebuild, Checkpointer, RebuildError, RebuildOptions, Rebuilt};
use crate::projection::Projection;
use crate::replica::continuous::ContinuousShipper;
use crate::stamper::driver;
use crate::stamper::key::{StamperKey, StamperKeyLoadError};
use crate::telemetry::metrics::Metrics;

pub use crate::config::{OpsOptions, ServeConfig};

/// Why the calendar could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("calendar directory: {0}")]
    Dir(#[from] DirError),
    #[error("event log: {0}")]
    Log(#[from] LogError),
    #[error("event log seq {seq}: {problem}")]
    Replay { seq: u64, problem: String },
    #[error(
        "{}: no log segments, but this calendar has had a history ({evidence}). Refusing to \
         start a new log, which would answer `Not found` for every commitment issued so far. Is \
         the disk mounted, is -c right? Restore the log from a backup, or rebuild it from a \
         mirror with `otsctl recover {} --from MIRROR` (otsd stopped). Only to start a new \
         history on purpose: remove {} and {}/",
        log_dir.display(),
        calendar.display(),
        calendar.join(HISTORY_MARKER).display(),
        calendar.join(PROJECTION_DIR).display()
    )]
    LogMissing {
        calendar: PathBuf,
        log_dir: PathBuf,
        evidence: String,
    },
    #[error("--ship-to: {0}")]
    Ship(#[from] crate::replica::bucket::BucketError),
    #[error("{0}")]
    Role(String),
    #[error("uri {0:?} is not valid in a pending attestation")]
    Uri(String),
    #[error("stamper key: {0}")]
    StamperKey(#[from] StamperKeyLoadError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Rebuilds the projection from the checkpoint in `DIR/projection` and the log after it,
/// verifying CRCs and both chains of every segment read.
pub fn replay(
    dir: &CalendarDir,
    key: &LogKey,
    min_confirmations: u32,
) -> Result<Rebuilt, ServeError> {
    let opts = RebuildOptions {
        use_checkpoint: true,
        write_checkpoint: true,
    };
    let rebuilt = rebuild(
        &dir.log_dir(),
        &dir.path.join(PROJECTION_DIR),
        key,
        min_confirmations,
        opts,
        &mut |_| {},
    )
    .map_err(|e| match e {
        RebuildError::Fold { seq, problem } => ServeError::Replay { seq, problem },
        RebuildError::Log(e) => ServeError::Log(e),
        RebuildError::Checkpoint(problem) => ServeError::Replay { seq: 0, problem },
    })?;
    let s = &rebuilt.stats;
    let view = &rebuilt.live;
    tracing::info!(
        rounds = view.next_round(),
        digests = view.digests_total(),
        events = view.next_seq(),
        checkpoint = ?s.checkpoint_seq,
        folded = s.events_folded,
        "rebuilt the projection in {:.3} s ({} events from the checkpoint, {} replayed from {} segments)",
        s.elapsed.as_secs_f64(),
        s.checkpoint_seq.unwrap_or(0),
        s.events_folded,
        s.segments_read,
    );
    Ok(rebuilt)
}

/// A started calendar: where it listens, and how to wait for it.
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `--metrics-address` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub done: tokio::task::JoinHandle<Result<(), ServeError>>,
}

/// Starts the calendar; it runs until `shutdown` resolves. The steps, in order: open the log,
/// load the projection, listen, spawn the tasks; then, after `shutdown`, [`Tasks::shut_down`].
pub async fn start(
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, ServeError> {
    if let Some(primary) = cfg.replica.mirror_of.clone() {
        return mirror::start(cfg, primary, shutdown).await;
    }
    crate::replica::role::check_primary_dir(&cfg.calendar_dir)
        .map_err(|e| ServeError::Role(e.to_string()))?;
    let dir = CalendarDir::load(&cfg.calendar_dir)?;
    let key = LogKey::derive(&dir.hmac_key);
    let writer = open_log(&dir, &key, cfg.segment_size)?;
    let stamper_key =
        StamperKey::from_bytes(&dir.stamper_key()?).map_err(StamperKeyLoadError::from)?;
    let (view, checkpointer, checkpoint_seq) = load_projection(&dir, &key, cfg.min_confirmations)?;
    let writer = WriterHandle::spawn(writer, 64);
    let durable_end = writer.durable_end();
    let (listener, addr) = listen(&cfg).await?;
    let ops_listener = listen_ops(&cfg).await?;
    let ops = ops_config(&cfg, &dir, checkpoint_seq);
    let metrics = ops.metrics.clone();
    let tasks = spawn(&cfg, &dir, stamper_key, writer, view, checkpointer, ops)?;
    let shipper = start_shipper(&cfg, durable_end.clone(), metrics)?;
    if cfg.replica.publish_log {
        let feed = crate::replica::publish::Publisher::new(&dir.log_dir(), durable_end);
        let _ = tasks.state.log_feed.set(Arc::new(feed));
    }
    tracing::info!(%addr, uri = %dir.uri, "calendar listening");
    let notifier = Arc::new(systemd::Notifier::from_env());
    let (stopped_tx, stopped_rx) = tokio::sync::watch::channel(false);
    let metrics_addr = match ops_listener {
        Some((l, a)) => {
            tracing::info!(addr = %a, "serving /metrics, /healthz and /readyz");
            let stopped = wait_true(stopped_rx.clone());
            tokio::spawn(http::server::serve_ops(
                l,
                tasks.state.clone(),
                cfg.http.clone(),
                stopped,
            ));
            Some(a)
        }
        None => None,
    };
    notifier.ready(&format!("listening on {addr}"));
    let service = spawn_service_status(notifier.clone(), tasks.state.clone(), stopped_rx);
    let shutdown = {
        let notifier = notifier.clone();
        async move {
            shutdown.await;
            notifier.stopping("shutting down: answering open requests, then closing the log");
            let _ = stopped_tx.send(true);
        }
    };
    let done = tokio::spawn(async move {
        http::server::serve(listener, tasks.state.clone(), cfg.http.clone(), shutdown).await;
        let result = tasks.shut_down().await;
        if let Some(shipper) = shipper {
            // The log is closed: one last step ships all of it.
            let _ = tokio::task::spawn_blocking(move || shipper.finish()).await;
        }
        service.abort();
        notifier.status(match &result {
            Ok(()) => "stopped; log closed cleanly",
            Err(_) => "stopped with an error",
        });
        result
    });
    Ok(Running {
        addr,
        metrics_addr,
        done,
    })
}

/// Starts `--ship-to` shipping, if asked for.
fn start_shipper(
    cfg: &ServeConfig,
    durable: crate::log::DurableEnd,
    metrics: Arc<Metrics>,
) -> Result<Option<ContinuousShipper>, ServeError> {
    let Some(to) = cfg.ship_to.clone() else {
        return Ok(None);
    };
    let shipper = ContinuousShipper::spawn(cfg.calendar_dir.clone(), to, durable, metrics)?;
    Ok(Some(shipper))
}

/// Resolves once `rx` holds `true` (or its sender is gone).
async fn wait_true(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Sends `STATUS=` every few seconds and `WATCHDOG=1` as systemd asks, until `stopped`.
fn spawn_service_status(
    notifier: Arc<systemd::Notifier>,
    state: Arc<AppState>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let watchdog = systemd::watchdog_interval();
    let period = watchdog
        .map_or(STATUS_PERIOD, |w| (w / 2).min(STATUS_PERIOD))
        .max(Duration::from_millis(10));
    tokio::spawn(async move {
        if !notifier.is_active() {
            return;
        }
        let mut stop = std::pin::pin!(wait_true(stopped));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                () = &mut stop => return,
            }
            if watchdog.is_some() {
                notifier.watchdog();
            }
            notifier.status(&status_line(&state));
        }
    })
}

/// How often `STATUS=` is refreshed.
const STATUS_PERIOD: Duration = Duration::from_secs(5);

/// One line for `systemctl status`.
fn status_line(state: &AppState) -> String {
    let snap = http::health::Snapshot::take(state);
    let view = state.read_view();
    let mut line = format!(
        "{} digests in {} rounds; {} rounds pending",
        view.digests_total(),
        view.next_round(),
        snap.pending_rounds
    );
    if let Some(age) = snap.oldest_pending_age() {
        line += &format!(" (oldest {age} s)");
    }
    if !snap.alarms.is_empty() {
        line += &format!("; ALARM: {}", snap.alarms.join(", "));
    }
    line
}

/// The operator-facing settings of the HTTP side.
fn ops_config(cfg: &ServeConfig, dir: &CalendarDir, checkpoint_seq: Option<u64>) -> OpsConfig {
    let policy = cfg.stamper.as_ref().map(|s| s.policy);
    let interval = policy.map_or(6 * 60 * 60, |p| p.min_tx_interval_secs);
    OpsConfig {
        metrics: Arc::new(Metrics::new()),
        log_dir: Some(dir.log_dir()),
        metrics_on_api: cfg.ops.metrics_address.is_none(),
        stamper_enabled: cfg.stamper.is_some(),
        pending_alarm_secs: cfg.ops.pending_alarm_secs.unwrap_or(2 * interval.max(60)),
        max_fee_sat: policy.map(|p| p.max_fee_sat),
        min_tx_interval_secs: interval,
        explorer_url: cfg.ops.explorer_url.clone(),
        lightning_invoice_file: cfg.ops.lightning_invoice_file.clone(),
        backup_cache: Some(dir.path.join(http::backup::CACHE_DIR)),
        checkpoint_seq,
    }
}

/// Binds the `--metrics-address` listener, if one is asked for.
async fn listen_ops(cfg: &ServeConfig) -> Result<Option<(TcpListener, SocketAddr)>, ServeError> {
    match cfg.ops.metrics_address.clone() {
        Some(bind) => bind_to(bind).await.map(Some),
        None => Ok(None),
    }
}

/// Opens the log for writing, repairing a torn tail (logged). A log is created only for a
/// calendar that never had one ([`refuse_lost_history`]); once it exists, the history marker says
/// so for good.
fn open_log(dir: &CalendarDir, key: &LogKey, segment_size: u64) -> Result<Writer, ServeError> {
    refuse_lost_history(dir)?;
    let opts = WriterOptions {
        segment_size,
        ..WriterOptions::default()
    };
    let (writer, recovery) = Writer::open(&dir.log_dir(), key.clone(), opts)?;
    if recovery.truncated_bytes > 0 {
        tracing::warn!(
            "repaired a torn tail: dropped {} bytes after offset {} of {:?} (an unacknowledged write)",
            recovery.truncated_bytes,
            recovery.offset,
            recovery.segment
        );
    }
    dir.mark_history()?;
    tracing::info!(
        "opened the log in {}; next sequence number {}",
        dir.log_dir().display(),
        recovery.next_seq
    );
    Ok(writer)
}

/// The live view, its checkpointer, and the sequence number the checkpoint on disk was at.
type LoadedProjection = (Arc<RwLock<Projection>>, Checkpointer, Option<u64>);

/// Errors if the log has no segment (missing directory, empty mount point) although the calendar
/// has had a history: the history marker, or a projection checkpoint (calendars older than the
/// marker).
fn refuse_lost_history(dir: &CalendarDir) -> Result<(), ServeError> {
    let log_dir = dir.log_dir();
    let has_segments = log_dir.exists() && !list_segments(&log_dir)?.is_empty();
    if has_segments {
        return Ok(());
    }
    let projection = dir.path.join(PROJECTION_DIR);
    let evidence = if dir.has_had_history() {
        format!("{} exists", dir.path.join(HISTORY_MARKER).display())
    } else if std::fs::read_dir(&projection).is_ok_and(|mut d| d.next().is_some()) {
        format!("{} holds a projection of it", projection.display())
    } else {
        return Ok(());
    };
    Err(ServeError::LogMissing {
        calendar: dir.path.clone(),
        log_dir,
        evidence,
    })
}

/// The live projection, rebuilt by [`replay`], and the checkpointer that keeps its checkpoint
/// current from then on.
fn load_projection(
    dir: &CalendarDir,
    key: &LogKey,
    min_confirmations: u32,
) -> Result<LoadedProjection, ServeError> {
    let mut rebuilt = replay(dir, key, min_confirmations)?;
    let checkpoint_seq = rebuilt.stats.checkpoint_seq;
    let view = Arc::new(RwLock::new(std::mem::take(&mut rebuilt.live)));
    let checkpointer = Checkpointer::spawn(&dir.log_dir(), key, rebuilt, view.clone());
    Ok((view, checkpointer, checkpoint_seq))
}

/// Binds the HTTP listener.
async fn listen(cfg: &ServeConfig) -> Result<(TcpListener, SocketAddr), ServeError> {
    bind_to(format!("{}:{}", cfg.rpc_address, cfg.rpc_port)).await
}

/// Binds `bind` and reads back the address it got (port 0 picks a free one).
async fn bind_to(bind: String) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = http::server::bind(&bind)
        .await
        .map_err(|source| ServeError::Bind {
            addr: bind.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr: bind, source })?;
    Ok((listener, addr))
}

/// The running tasks, and what stops them.
pub struct Tasks {
    state: Arc<AppState>,
    intake: Intake,
    stop_aggregator: tokio::sync::oneshot::Sender<()>,
    aggregator: tokio::task::JoinHandle<WriterHandle>,
    stop_stamper: tokio::sync::watch::Sender<bool>,
    stamper: Option<tokio::task::JoinHandle<()>>,
    checkpointer: Checkpointer,
}

/// Spawns the aggregator and, when a node is configured, the stamper.
fn spawn(
    cfg: &ServeConfig,
    dir: &CalendarDir,
    stamper_key: StamperKey,
    writer: WriterHandle,
    view: Arc<RwLock<Projection>>,
    checkpointer: Checkpointer,
    ops: OpsConfig,
) -> Result<Tasks, ServeError> {
    let stamper_submitter = writer.submitter();
    let (intake, queue, intake_state) = Intake::new(cfg.max_queued_digests);
    let sealer = RoundSealer::new(&dir.uri, &dir.hmac_key)
        .ok_or_else(|| ServeError::Uri(dir.uri.clone()))?;
    let (stop_aggregator, stop_rx) = tokio::sync::oneshot::channel();
    let metrics = ops.metrics.clone();
    let agg_opts = AggregatorOptions {
        min_round_interval: cfg.min_round_interval,
        metrics: metrics.clone(),
    };
    let aggregator = tokio::spawn(aggregator::run(
        queue,
        stop_rx,
        writer,
        sealer,
        view.clone(),
        intake_state,
        agg_opts,
    ));
    let state = AppState::new(
        intake.clone(),
        view,
        dir.uri.clone(),
        dir.donation_addr.clone(),
        cfg.network.name().to_owned(),
        ops,
    );
    let _ = state
        .log
        .set(crate::log::Reader::open(&dir.log_dir(), None)?);
    let (stop_stamper, stamper_stop_rx) = tokio::sync::watch::channel(false);
    let stamper = cfg.stamper.clone().map(|scfg| {
        tokio::spawn(driver::run(
            scfg,
            stamper_key,
            stamper_submitter,
            state.view.clone(),
            state.bitcoin_status.clone(),
            metrics,
            stamper_stop_rx,
        ))
    });
    if stamper.is_none() {
        tracing::warn!("no --btc-rpc: commitments are not stamped into Bitcoin");
    }
    Ok(Tasks {
        state,
        intake,
        stop_aggregator,
        aggregator,
        stop_stamper,
        stamper,
        checkpointer,
    })
}

impl Tasks {
    /// Once the HTTP server has answered its open requests: refuse new digests, stop the stamper,
    /// drain the aggregator, close the log writer (which fsyncs what it holds), stop the
    /// checkpointer.
    async fn shut_down(self) -> Result<(), ServeError> {
        self.intake.begin_shutdown();
        let _ = self.stop_stamper.send(true);
        if let Some(stamper) = self.stamper {
            stop_stamper(stamper).await;
        }
        let _ = self.stop_aggregator.send(());
        let writer = self.aggregator.await.map_err(|e| ServeError::Replay {
            seq: 0,
            problem: format!("aggregator task: {e}"),
        })?;
        writer.close()?;
        self.checkpointer.stop();
        tracing::info!("log closed cleanly; goodbye");
        Ok(())
    }
}

/// Longest a shutdown waits for the stamper to finish its current step (an RPC can take up to
/// `--btc-rpc-timeout`, `scantxoutset` 10 minutes). Well below the systemd unit's
/// `TimeoutStopSec=30`, which also has to cover draining the aggregator and closing the log.
pub const STAMPER_STOP_GRACE: Duration = Duration::from_secs(10);

/// Longest `otsd` waits, once the log is closed, for blocking threads (a cancelled stamper RPC)
/// before it exits.
pub const RUNTIME_STOP_GRACE: Duration = Duration::from_secs(1);

/// Waits up to [`STAMPER_STOP_GRACE`] for the stamper, then cancels it. Cancelling is safe: the
/// stamper writes to the log only after facts (a broadcast Core accepted), and what it has not
/// written yet it redoes after the restart, as after a crash; what it already queued for the log
/// is still written, because the writer drains its queue before it closes.
async fn stop_stamper(mut stamper: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(STAMPER_STOP_GRACE, &mut stamper)
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!(
        "the stamper is still waiting for Bitcoin Core after {} s; cancelling it (it resumes \
         from the log after the restart)",
        STAMPER_STOP_GRACE.as_secs()
    );
    stamper.abort();
    let _ = stamper.await;
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; otsd will only stop when killed");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
