//! A throw-away `bitcoind -regtest`: its own temporary datadir, free loopback ports, user/password
//! RPC auth, and a guaranteed shutdown (`stop` RPC, then kill) when the handle is dropped.
//!
//! `otsd --dev` runs one for client developers; the tests' `common::bitcoind` wraps one per test.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::Network;
use bitcoincore_rpc::{Auth, Client, RpcApi};

/// How long a node may take to answer RPC after being spawned.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` may take before the process is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The node's stderr, in its datadir.
const STDERR_FILE: &str = "stderr.log";
/// Where `tools/build-bitcoind.sh` caches its build, under `$HOME` (without `$OTSD_CACHE`).
pub const CACHE_BIN: &str = ".cache/otsd/bitcoin-core-kernel-sys-0.4.1/bin/bitcoind";
/// The same under the cache root (`$OTSD_CACHE`, else `$HOME/.cache/otsd`).
pub const CACHE_BIN_IN_ROOT: &str = "bitcoin-core-kernel-sys-0.4.1/bin/bitcoind";

/// Why a node could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RegtestError {
    #[error("{0}")]
    Io(String),
    #[error("spawn {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bitcoind exited with {status}: {stderr}")]
    Exited { status: String, stderr: String },
    #[error("node is on {0}, not regtest")]
    NotRegtest(String),
    #[error("bitcoind not ready after {STARTUP_TIMEOUT:?}: {0}")]
    NotReady(String),
    #[error("RPC client: {0}")]
    Client(String),
}

/// How to start a node.
#[derive(Debug, Clone)]
pub struct RegtestOptions {
    pub user: String,
    pub password: String,
    /// Further `bitcoind` arguments (`-txindex=1`, ...).
    pub extra_args: Vec<String>,
}

/// A running regtest node.
pub struct RegtestNode {
    child: Child,
    datadir: tempfile::TempDir,
    pub rpc_port: u16,
    pub p2p_port: u16,
    pub user: String,
    pub password: String,
    pub client: Client,
}

impl std::fmt::Debug for RegtestNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegtestNode")
            .field("rpc_port", &self.rpc_port)
            .field("datadir", &self.datadir.path())
            .finish()
    }
}

/// A loopback port free at the time of asking (another process may take it before bitcoind binds
/// it: callers that must not fail retry the start).
pub fn free_port() -> std::io::Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
}

/// The cached build of `tools/build-bitcoind.sh`, if there is one: under `$OTSD_CACHE` when it is
/// set (as the script does), else under `$HOME/.cache/otsd`.
pub fn cached_bitcoind() -> Option<PathBuf> {
    let cached = match std::env::var_os("OTSD_CACHE").filter(|c| !c.is_empty()) {
        Some(root) => PathBuf::from(root).join(CACHE_BIN_IN_ROOT),
        None => PathBuf::from(std::env::var_os("HOME")?).join(CACHE_BIN),
    };
    cached.is_file().then_some(cached)
}

impl RegtestNode {
    /// The node's process id (to pause it with SIGSTOP in tests of a hanging node).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `bitcoind` from `bin` and waits until it answers RPC on regtest.
    pub fn start(bin: &Path, opts: &RegtestOptions) -> Result<RegtestNode, RegtestError> {
        let datadir = tempfile::tempdir().map_err(|e| RegtestError::Io(format!("tempdir: {e}")))?;
        let port = || free_port().map_err(|e| RegtestError::Io(format!("no free port: {e}")));
        let (rpc_port, p2p_port) = (port()?, port()?);
        // To a file, not a pipe: nobody reads a long-running node's stderr, and a full pipe would
        // stall it.
        let stderr_path = datadir.path().join(STDERR_FILE);
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| RegtestError::Io(format!("{}: {e}", stderr_path.display())))?;
        let child = Command::new(bin)
            .arg("-regtest")
            .arg(format!("-datadir={}", datadir.path().display()))
            .arg(format!("-rpcport={rpc_port}"))
            .arg(format!("-port={p2p_port}"))
            .args([
                "-listen=0",
                "-server=1",
                "-rpcbind=127.0.0.1",
                "-rpcallowip=127.0.0.1",
                "-fallbackfee=0.0001",
                "-printtoconsole=0",
            ])
            .arg(format!("-rpcuser={}", opts.user))
            .arg(format!("-rpcpassword={}", opts.password))
            .args(&opts.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| RegtestError::Spawn {
                path: bin.to_owned(),
                source,
            })?;
        let client = Client::new(
            &format!("http://127.0.0.1:{rpc_port}/"),
            Auth::UserPass(opts.user.clone(), opts.password.clone()),
        );
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(RegtestError::Client(e.to_string()));
            }
        };
        let mut node = RegtestNode {
            child,
            datadir,
            rpc_port,
            p2p_port,
            user: opts.user.clone(),
            password: opts.password.clone(),
            client,
        };
        node.wait_ready()?;
        Ok(node)
    }

    fn wait_ready(&mut self) -> Result<(), RegtestError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let stderr = std::fs::read_to_string(self.datadir.path().join(STDERR_FILE))
                    .unwrap_or_default();
                let status = status.to_string();
                return Err(RegtestError::Exited { status, stderr });
            }
            match self.client.get_blockchain_info() {
                Ok(info) if info.chain == Network::Regtest => return Ok(()),
                Ok(info) => return Err(RegtestError::NotRegtest(format!("{:?}", info.chain))),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => return Err(RegtestError::NotReady(e.to_string())),
            }
        }
    }

    /// `http://USER:PASS@127.0.0.1:PORT/`, as `otsd --btc-rpc` and `ots --bitcoin-node` want it.
    pub fn url_with_auth(&self) -> String {
        format!(
            "http://{}:{}@127.0.0.1:{}/",
            self.user, self.password, self.rpc_port
        )
    }

    /// `http://127.0.0.1:PORT/`
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.rpc_port)
    }

    pub fn datadir(&self) -> &Path {
        self.datadir.path()
    }
}

impl Drop for RegtestNode {
    fn drop(&mut self) {
        let _ = self.client.stop();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
