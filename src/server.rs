//! Wiring of a running calendar: open the log, replay it into the projection, then run the writer,
//! the aggregator and the HTTP server until a shutdown signal, and close everything in order.
//!
//! Shutdown order matters for "nothing acknowledged is lost": stop accepting connections, let open
//! requests get their answers (the aggregator still runs), then close the aggregator's queue and
//! drain it, and finally close the log writer, which fsyncs whatever it still holds.
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::aggregator::{self, AggregatorOptions, Intake, RoundSealer};
use crate::calendar::dir::{CalendarDir, DirError};
use crate::events::Event;
use crate::http::{self, server::ServerOptions, AppState};
use crate::log::{codec, LogError, LogKey, Reader, Writer, WriterHandle, WriterOptions};
use crate::projection::Projection;
use crate::stamper::driver::{self, DriverConfig};
use crate::stamper::key::{StamperKey, StamperKeyLoadError};

/// Everything `otsd` needs to run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub calendar_dir: PathBuf,
    pub rpc_address: String,
    pub rpc_port: u16,
    /// "mainnet", "testnet" or "regtest".
    pub network: String,
    /// Digests that may wait for a round before `POST /digest` answers 503.
    pub max_pending: usize,
    pub min_round_interval: Duration,
    pub segment_size: u64,
    /// `--btc-min-confirmations`: when proofs are final.
    pub min_confirmations: u32,
    /// The stamper, when a Bitcoin node is configured.
    pub stamper: Option<DriverConfig>,
    pub http: ServerOptions,
}

/// Why the calendar could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("calendar directory: {0}")]
    Dir(#[from] DirError),
    #[error("event log: {0}")]
    Log(#[from] LogError),
    #[error("event log seq {seq}: {problem}")]
    Replay { seq: u64, problem: String },
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

/// Folds the whole log into a fresh projection, verifying CRCs and both chains on the way.
pub fn replay(log_dir: &Path, key: LogKey) -> Result<Projection, ServeError> {
    replay_into(log_dir, key, Projection::default())
}

/// Folds the whole log into `view` (an empty projection with its settings).
pub fn replay_into(
    log_dir: &Path,
    key: LogKey,
    mut view: Projection,
) -> Result<Projection, ServeError> {
    let started = Instant::now();
    let reader = Reader::open(log_dir, Some(key))?;
    let mut problem: Option<(u64, String)> = None;
    reader.for_each_from(0, |seq, payload| {
        if problem.is_some() {
            return;
        }
        let applied = codec::decode::<Event>(payload)
            .map_err(|e| e.to_string())
            .and_then(|ev| view.apply(seq, &ev).map_err(|e| e.to_string()));
        if let Err(e) = applied {
            problem = Some((seq, e));
        }
    })?;
    if let Some((seq, problem)) = problem {
        return Err(ServeError::Replay { seq, problem });
    }
    tracing::info!(
        rounds = view.next_round(),
        digests = view.digests_total(),
        events = view.next_seq(),
        "replayed the log in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    Ok(view)
}

/// A started calendar: where it listens, and how to wait for it.
pub struct Running {
    pub addr: SocketAddr,
    pub done: tokio::task::JoinHandle<Result<(), ServeError>>,
}

/// Starts the calendar; it runs until `shutdown` resolves.
pub async fn start(
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, ServeError> {
    let dir = CalendarDir::load(&cfg.calendar_dir)?;
    let key = LogKey::derive(&dir.hmac_key);
    let opts = WriterOptions {
        segment_size: cfg.segment_size,
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
    tracing::info!(
        "opened the log in {}; next sequence number {}",
        dir.log_dir().display(),
        recovery.next_seq
    );
    let stamper_key =
        StamperKey::from_bytes(&dir.stamper_key()?).map_err(StamperKeyLoadError::from)?;
    let projection = Projection::new(cfg.min_confirmations);
    let view = Arc::new(RwLock::new(replay_into(&dir.log_dir(), key, projection)?));
    let writer = WriterHandle::spawn(writer, 64);
    let stamper_submitter = writer.submitter();

    let bind = format!("{}:{}", cfg.rpc_address, cfg.rpc_port);
    let listener = http::server::bind(&bind)
        .await
        .map_err(|source| ServeError::Bind {
            addr: bind.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr: bind, source })?;

    let (intake, queue, intake_state) = Intake::new(cfg.max_pending);
    let sealer = RoundSealer::new(&dir.uri, &dir.hmac_key)
        .ok_or_else(|| ServeError::Uri(dir.uri.clone()))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let agg_opts = AggregatorOptions {
        min_round_interval: cfg.min_round_interval,
    };
    let agg = tokio::spawn(aggregator::run(
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
        cfg.network.clone(),
    );
    let bitcoin_status = state.bitcoin_status.clone();
    let (stamper_stop, stamper_stop_rx) = tokio::sync::watch::channel(false);
    let stamper = cfg.stamper.clone().map(|scfg| {
        tokio::spawn(driver::run(
            scfg,
            stamper_key,
            stamper_submitter,
            state.view.clone(),
            bitcoin_status,
            stamper_stop_rx,
        ))
    });
    if stamper.is_none() {
        tracing::warn!("no --btc-rpc: commitments are not stamped into Bitcoin");
    }
    tracing::info!(%addr, uri = %dir.uri, "calendar listening");

    let done = tokio::spawn(async move {
        http::server::serve(listener, state, cfg.http.clone(), shutdown).await;
        intake.begin_shutdown();
        let _ = stamper_stop.send(true);
        if let Some(stamper) = stamper {
            let _ = stamper.await;
        }
        let _ = stop_tx.send(());
        let writer = agg.await.map_err(|e| ServeError::Replay {
            seq: 0,
            problem: format!("aggregator task: {e}"),
        })?;
        writer.close()?;
        tracing::info!("log closed cleanly; goodbye");
        Ok(())
    });
    Ok(Running { addr, done })
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
