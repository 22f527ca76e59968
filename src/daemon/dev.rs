//! `otsd --dev`: a throw-away local calendar for client developers, in one command.
//!
//! Creates a calendar directory in a temporary directory, starts a regtest `bitcoind` (from
//! `$BITCOIND`, else the `tools/build-bitcoind.sh` cache, else building it with that script first,
//! progress on stderr), funds the stamper key by mining, mines a block every `block_interval`, and
//! returns the configuration to serve with. Everything is removed and the node stopped when the
//! returned [`DevCalendar`] is dropped.
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoincore_rpc::{Auth, Client, RpcApi};

use crate::bitcoind::regtest::{cached_bitcoind, free_port, RegtestNode, RegtestOptions};
use crate::calendar::dir::CalendarDir;
use crate::stamper::key::StamperKey;

/// Blocks mined to the calendar key at start: one coinbase, matured by 100 more.
const FUNDING_BLOCKS: u64 = 101;
const RPC_USER: &str = "otsd-dev";

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("no bitcoind: {0}")]
    NoBitcoind(String),
    #[error("bitcoind: {0}")]
    Node(String),
    #[error("calendar: {0}")]
    Calendar(String),
    #[error(transparent)]
    Serve(#[from] crate::daemon::ServeError),
    #[error("task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running dev setup; dropping it stops the miner and the node and deletes the directories.
pub struct DevCalendar {
    pub calendar_dir: PathBuf,
    /// `http://USER:PASS@127.0.0.1:PORT/`
    pub node_url: String,
    stop_miner: Arc<AtomicBool>,
    /// Dropped after the miner is told to stop: stops the node, removes its datadir.
    _node: RegtestNode,
    _tmp: tempfile::TempDir,
}

impl Drop for DevCalendar {
    fn drop(&mut self) {
        self.stop_miner.store(true, Ordering::Release);
    }
}

/// The bitcoind to run: `$BITCOIND`, the tools script's cache (`$OTSD_CACHE` or
/// `~/.cache/otsd`), or a fresh build by that script (compiled into the binary).
pub fn find_bitcoind() -> Result<PathBuf, DevError> {
    if let Some(p) = std::env::var_os("BITCOIND").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(cached) = cached_bitcoind() {
        return Ok(cached);
    }
    // The script is compiled into the binary, so an installed `otsd` (cargo install) builds
    // without the source tree; it caches under $OTSD_CACHE like the checked-out script.
    let dir = tempfile::tempdir().map_err(|e| DevError::NoBitcoind(e.to_string()))?;
    let script = dir.path().join("build-bitcoind.sh");
    std::fs::write(&script, BUILD_SCRIPT)
        .map_err(|e| DevError::NoBitcoind(format!("{}: {e}", script.display())))?;
    eprintln!(
        "otsd --dev: no bitcoind found; building one (about 7 minutes; set BITCOIND to skip)"
    );
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            DevError::NoBitcoind(format!("bash {}: {e}; set BITCOIND", script.display()))
        })?;
    if !out.status.success() {
        return Err(DevError::NoBitcoind(
            "building bitcoind failed (see above); set BITCOIND".to_owned(),
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok(PathBuf::from(dir).join("bitcoind"))
}

/// `tools/build-bitcoind.sh`, as compiled in.
const BUILD_SCRIPT: &str = include_str!("../../tools/build-bitcoind.sh");

fn port() -> Result<u16, DevError> {
    free_port().map_err(|e| DevError::Node(format!("no free port: {e}")))
}

/// Sets everything up; `http_port` is where the calendar will listen (its `uri`).
pub fn start(http_port: u16, block_interval: Duration) -> Result<DevCalendar, DevError> {
    let bitcoind = find_bitcoind()?;
    let tmp = tempfile::tempdir().map_err(|e| DevError::Calendar(e.to_string()))?;
    let calendar_dir = tmp.path().join("calendar");
    let uri = format!("http://127.0.0.1:{http_port}");
    let dir = CalendarDir::init(
        &calendar_dir,
        &uri,
        "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
    )
    .map_err(|e| DevError::Calendar(e.to_string()))?;
    let key = dir
        .stamper_key()
        .map_err(|e| DevError::Calendar(e.to_string()))
        .and_then(|k| StamperKey::from_bytes(&k).map_err(|e| DevError::Calendar(e.to_string())))?;
    let opts = RegtestOptions {
        user: RPC_USER.into(),
        password: hex::encode(rand::random::<[u8; 16]>()),
        extra_args: Vec::new(),
    };
    let node = RegtestNode::start(&bitcoind, &opts).map_err(|e| DevError::Node(e.to_string()))?;
    let addr = key.address(bitcoin::Network::Regtest);
    node.client
        .generate_to_address(FUNDING_BLOCKS, &addr)
        .map_err(|e| DevError::Node(format!("funding: {e}")))?;
    let stop_miner = Arc::new(AtomicBool::new(false));
    let miner = Client::new(&node.rpc_url(), Auth::UserPass(opts.user, opts.password))
        .map_err(|e| DevError::Node(e.to_string()))?;
    spawn_miner(miner, addr, block_interval, stop_miner.clone());
    Ok(DevCalendar {
        calendar_dir,
        node_url: node.url_with_auth(),
        stop_miner,
        _node: node,
        _tmp: tmp,
    })
}

/// Mines a block every `interval` until `stop` is set.
fn spawn_miner(client: Client, addr: bitcoin::Address, interval: Duration, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(interval);
            if stop.load(Ordering::Acquire) {
                break;
            }
            if let Err(e) = client.generate_to_address(1, &addr) {
                tracing::warn!("dev miner: {e}");
            }
        }
    });
}

/// Runs `otsd --dev` until SIGTERM/SIGINT: sets up, prints the `ots` commands, serves.
/// `serve_config(calendar_dir, port, node_url)` builds the configuration from the command line
/// (see [`crate::config::dev_serve_config`]); `block_interval_ms` is validated by the parser.
pub async fn run(
    rpc_port: u16,
    block_interval_ms: u64,
    serve_config: impl FnOnce(PathBuf, u16, &str) -> crate::daemon::ServeConfig,
) -> Result<(), DevError> {
    let port = match rpc_port {
        0 => port()?,
        p => p,
    };
    let interval = Duration::from_millis(block_interval_ms);
    let dev = tokio::task::spawn_blocking(move || start(port, interval)).await??;
    let cfg = serve_config(dev.calendar_dir.clone(), port, &dev.node_url);
    let running = crate::daemon::start(cfg, crate::daemon::shutdown_signal()).await?;
    let url = format!("http://127.0.0.1:{port}");
    // Written, not println!: a reader that closed our stdout must not panic (and so abort) otsd.
    let banner = writeln!(
        std::io::stdout().lock(),
        "otsd --dev: calendar {url} on a regtest node, a block every {:.1} s\n\
         \n  ots stamp -c {url} -m 1 FILE\n\
         \n  ots --btc-regtest -l {url} upgrade FILE.ots\n\
         \n  ots --btc-regtest --bitcoin-node {} verify FILE.ots\n",
        interval.as_secs_f64(),
        dev.node_url
    );
    if let Err(e) = banner {
        tracing::warn!("could not print the --dev banner to stdout: {e}");
    }
    let result = running.done.await;
    tokio::task::spawn_blocking(move || drop(dev)).await?;
    result??;
    Ok(())
}
