//! A real `bitcoind -regtest` per test: its own temporary datadir, free loopback ports, user/password
//! RPC auth, and a guaranteed shutdown (`stop` RPC, then kill) when the handle is dropped.
//!
//! The binary comes from `$BITCOIND` (set by `tools/test.sh` from `tools/build-bitcoind.sh`). A test
//! that needs a node panics with a clear message when it is not set: a silently skipped Bitcoin test
//! would be a test that cannot fail.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::key::{CompressedPublicKey, Secp256k1};
use bitcoin::{Address, BlockHash, Network, PrivateKey};
use bitcoincore_rpc::{Auth, Client, RpcApi};

/// RPC credentials of every test node.
pub const RPC_USER: &str = "otsd-test";
pub const RPC_PASSWORD: &str = "otsd-test-password";
/// How long a node may take to answer RPC after being spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts to start a node (a free port may be taken between probing and binding).
const START_ATTEMPTS: usize = 3;

/// A running regtest node.
pub struct Bitcoind {
    child: Child,
    datadir: tempfile::TempDir,
    pub rpc_port: u16,
    pub p2p_port: u16,
    pub client: Client,
}

/// Path of the `bitcoind` binary, or a panic explaining how to get one.
pub fn bitcoind_path() -> PathBuf {
    match std::env::var_os("BITCOIND") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "BITCOIND is not set: this test needs a real bitcoind. Run tools/test.sh, or \
             `export BITCOIND=$(tools/build-bitcoind.sh)/bitcoind`"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// A fixed key whose regtest P2WPKH address receives the coins the tests mine.
pub fn miner_address() -> Address {
    address_for(0x42)
}

/// The regtest P2WPKH address of the key `[seed; 32]`: mining a competing chain to another
/// address keeps its blocks from being identical to invalidated ones.
pub fn address_for(seed: u8) -> Address {
    let sk = PrivateKey::from_slice(&[seed; 32], Network::Regtest).expect("valid key");
    let pk = CompressedPublicKey::from_private_key(&Secp256k1::new(), &sk).expect("compressed");
    Address::p2wpkh(&pk, Network::Regtest)
}

impl Bitcoind {
    /// Starts a fresh regtest node and waits until it answers RPC.
    pub fn start() -> Bitcoind {
        Self::start_with(&[])
    }

    /// Like [`Bitcoind::start`], with extra `bitcoind` arguments.
    pub fn start_with(extra: &[&str]) -> Bitcoind {
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(extra) {
                Ok(node) => return node,
                Err(e) => last_err = e,
            }
        }
        panic!("bitcoind did not start after {START_ATTEMPTS} attempts: {last_err}");
    }

    fn try_start(extra: &[&str]) -> Result<Bitcoind, String> {
        let datadir = tempfile::tempdir().expect("tempdir for bitcoind");
        let (rpc_port, p2p_port) = (free_port(), free_port());
        let bin = bitcoind_path();
        let child = Command::new(&bin)
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
                "-txindex=1",
            ])
            .arg(format!("-rpcuser={RPC_USER}"))
            .arg(format!("-rpcpassword={RPC_PASSWORD}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let client = Client::new(
            &format!("http://127.0.0.1:{rpc_port}/"),
            Auth::UserPass(RPC_USER.into(), RPC_PASSWORD.into()),
        )
        .expect("RPC client");
        let mut node = Bitcoind {
            child,
            datadir,
            rpc_port,
            p2p_port,
            client,
        };
        node.wait_ready()?;
        Ok(node)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait bitcoind") {
                let mut err = String::new();
                if let Some(mut s) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut s, &mut err);
                }
                return Err(format!("bitcoind exited with {status}: {err}"));
            }
            match self.client.get_blockchain_info() {
                Ok(info) if info.chain == Network::Regtest => return Ok(()),
                Ok(info) => return Err(format!("node is on {:?}, not regtest", info.chain)),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => return Err(format!("bitcoind not ready after {STARTUP_TIMEOUT:?}: {e}")),
            }
        }
    }

    /// `http://USER:PASS@127.0.0.1:PORT/`, as `ots --bitcoin-node` wants it.
    pub fn url_with_auth(&self) -> String {
        format!(
            "http://{RPC_USER}:{RPC_PASSWORD}@127.0.0.1:{}/",
            self.rpc_port
        )
    }

    /// otsd flags for a stamper on this node that polls every 100 ms and sends at once.
    pub fn stamper_args(&self) -> Vec<String> {
        [
            "--btc-rpc",
            &self.url_with_auth(),
            "--btc-poll-interval-ms",
            "100",
            "--btc-min-tx-interval",
            "0",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// `http://127.0.0.1:PORT/`
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.rpc_port)
    }

    pub fn datadir(&self) -> &std::path::Path {
        self.datadir.path()
    }

    /// Calls any RPC, panicking with the method name on failure.
    pub fn rpc<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        args: &[serde_json::Value],
    ) -> T {
        self.client
            .call(method, args)
            .unwrap_or_else(|e| panic!("bitcoind RPC {method} {args:?}: {e}"))
    }

    /// Mines `n` blocks paying to `addr`.
    pub fn mine_to(&self, n: u64, addr: &Address) -> Vec<BlockHash> {
        self.client
            .generate_to_address(n, addr)
            .unwrap_or_else(|e| panic!("generatetoaddress {n}: {e}"))
    }

    /// Mines `n` blocks paying to [`miner_address`].
    pub fn mine(&self, n: u64) -> Vec<BlockHash> {
        self.mine_to(n, &miner_address())
    }

    pub fn height(&self) -> u64 {
        self.client.get_block_count().expect("getblockcount")
    }
}

impl Drop for Bitcoind {
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
