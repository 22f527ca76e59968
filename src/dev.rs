//! `otsd --dev`: a throw-away local calendar for client developers, in one command.
//!
//! Creates a calendar directory in a temporary directory, starts a regtest `bitcoind` (from
//! `$BITCOIND`, else the `tools/build-bitcoind.sh` cache, else building it with that script first,
//! progress on stderr), funds the stamper key by mining, mines a block every `block_interval`, and
//! returns the configuration to serve with. Everything is removed and the node stopped when the
//! returned [`DevCalendar`] is dropped.
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoincore_rpc::{Auth, Client, RpcApi};

use crate::calendar::dir::CalendarDir;
use crate::stamper::key::StamperKey;

/// How long the node may take to answer RPC after start.
const NODE_STARTUP: Duration = Duration::from_secs(60);
/// Blocks mined to the calendar key at start: one coinbase, matured by 100 more.
const FUNDING_BLOCKS: u64 = 101;
/// Version directory of the tools script's cache.
const CACHE_BIN: &str = ".cache/otsd/bitcoin-core-kernel-sys-0.4.1/bin/bitcoind";
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
    Serve(#[from] crate::server::ServeError),
    #[error("task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running dev setup; dropping it stops the miner and the node and deletes the directories.
pub struct DevCalendar {
    pub calendar_dir: PathBuf,
    /// `http://USER:PASS@127.0.0.1:PORT/`
    pub node_url: String,
    node: Child,
    client: Arc<Client>,
    stop_miner: Arc<AtomicBool>,
    _tmp: tempfile::TempDir,
}

impl Drop for DevCalendar {
    fn drop(&mut self) {
        self.stop_miner.store(true, Ordering::Release);
        let _ = self.client.stop();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.node.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.node.kill();
        let _ = self.node.wait();
    }
}

/// The bitcoind to run: `$BITCOIND`, the tools script's cache, or a fresh build by that script.
pub fn find_bitcoind() -> Result<PathBuf, DevError> {
    if let Some(p) = std::env::var_os("BITCOIND").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let cached = PathBuf::from(home).join(CACHE_BIN);
        if cached.is_file() {
            return Ok(cached);
        }
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/build-bitcoind.sh");
    eprintln!(
        "otsd --dev: no bitcoind found; building one with {} (about 7 minutes)",
        script.display()
    );
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| DevError::NoBitcoind(format!("{}: {e}; set BITCOIND", script.display())))?;
    if !out.status.success() {
        return Err(DevError::NoBitcoind(format!(
            "{} failed; set BITCOIND",
            script.display()
        )));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok(PathBuf::from(dir).join("bitcoind"))
}

fn free_port() -> Result<u16, DevError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| DevError::Node(format!("no free port: {e}")))
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
    let (rpc_port, p2p_port) = (free_port()?, free_port()?);
    let password = hex::encode(rand::random::<[u8; 16]>());
    let datadir = tmp.path().join("bitcoind");
    std::fs::create_dir_all(&datadir).map_err(|e| DevError::Node(e.to_string()))?;
    let node = Command::new(&bitcoind)
        .args(["-regtest", "-listen=0", "-server=1", "-rpcbind=127.0.0.1"])
        .args([
            "-rpcallowip=127.0.0.1",
            "-fallbackfee=0.0001",
            "-printtoconsole=0",
        ])
        .arg(format!("-datadir={}", datadir.display()))
        .arg(format!("-rpcport={rpc_port}"))
        .arg(format!("-port={p2p_port}"))
        .arg(format!("-rpcuser={RPC_USER}"))
        .arg(format!("-rpcpassword={password}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| DevError::Node(format!("{}: {e}", bitcoind.display())))?;
    let client = Client::new(
        &format!("http://127.0.0.1:{rpc_port}/"),
        Auth::UserPass(RPC_USER.into(), password.clone()),
    )
    .map_err(|e| DevError::Node(e.to_string()))?;
    let mut dev = DevCalendar {
        calendar_dir,
        node_url: format!("http://{RPC_USER}:{password}@127.0.0.1:{rpc_port}/"),
        node,
        client: Arc::new(client),
        stop_miner: Arc::new(AtomicBool::new(false)),
        _tmp: tmp,
    };
    dev.wait_ready()?;
    let addr = key.address(bitcoin::Network::Regtest);
    dev.client
        .generate_to_address(FUNDING_BLOCKS, &addr)
        .map_err(|e| DevError::Node(format!("funding: {e}")))?;
    spawn_miner(
        dev.client.clone(),
        addr,
        block_interval,
        dev.stop_miner.clone(),
    );
    Ok(dev)
}

impl DevCalendar {
    fn wait_ready(&mut self) -> Result<(), DevError> {
        let deadline = Instant::now() + NODE_STARTUP;
        loop {
            if let Ok(Some(status)) = self.node.try_wait() {
                return Err(DevError::Node(format!("exited with {status}")));
            }
            match self.client.get_block_count() {
                Ok(_) => return Ok(()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => return Err(DevError::Node(format!("not ready: {e}"))),
            }
        }
    }
}

/// Mines a block every `interval` until `stop` is set.
fn spawn_miner(
    client: Arc<Client>,
    addr: bitcoin::Address,
    interval: Duration,
    stop: Arc<AtomicBool>,
) {
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

/// Runs `otsd --dev` until SIGTERM/SIGINT: sets up, prints the `ots` commands, serves. `port` is
/// `--rpc-port` (0 picks a free one); `config` builds the configuration from the calendar
/// directory, the port and the node's URL (see [`crate::config::dev_serve_config`]).
pub async fn run(
    port: u16,
    interval: Duration,
    config: impl FnOnce(PathBuf, u16, &str) -> crate::server::ServeConfig,
) -> Result<(), DevError> {
    let port = match port {
        0 => free_port()?,
        p => p,
    };
    let dev = tokio::task::spawn_blocking(move || start(port, interval)).await??;
    let cfg = config(dev.calendar_dir.clone(), port, &dev.node_url);
    let running = crate::server::start(cfg, crate::server::shutdown_signal()).await?;
    let url = format!("http://127.0.0.1:{port}");
    println!(
        "otsd --dev: calendar {url} on a regtest node, a block every {:.1} s\n\
         \n  ots stamp -c {url} -m 1 FILE\n\
         \n  ots --btc-regtest -l {url} upgrade FILE.ots\n\
         \n  ots --btc-regtest --bitcoin-node {} verify FILE.ots\n",
        interval.as_secs_f64(),
        dev.node_url
    );
    let result = running.done.await;
    tokio::task::spawn_blocking(move || drop(dev)).await?;
    result??;
    Ok(())
}
