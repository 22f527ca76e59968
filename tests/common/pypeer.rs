//! The real Python otsd (`../shared/peers/opentimestamps-server`, v0.7.1) as a test peer, stamping
//! through `../shared/tools/wallet-shim.py` (wallet RPCs answered with one local key, everything
//! else forwarded) against a test's regtest [`Bitcoind`]. Both run under `$OTS_PYTHON`, the venv
//! `tools/setup-clients.sh` fills with the server's requirements.
//!
//! The server finds its node as python-bitcoinlib does: through `$HOME/.bitcoin/bitcoin.conf`, here
//! a private HOME pointing at the shim. A test needing it fails loudly when the peer or Python is
//! missing: a skipped interop test would pass without testing anything.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::bitcoind::{Bitcoind, RPC_PASSWORD, RPC_USER};
use super::{free_port, get, repo_path, required_env, wait_for, Response};

/// The shared folder beside the repository (peers, tools).
pub fn shared_path(rel: &str) -> PathBuf {
    let p = repo_path("../shared").join(rel);
    assert!(
        p.exists(),
        "{} is missing: the Python peer tests need the shared/ folder beside the repository",
        p.display()
    );
    p
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The wallet shim in front of a node.
pub struct WalletShim {
    _proc: Proc,
    pub port: u16,
    pub address: String,
}

impl WalletShim {
    /// Starts the shim (its key in `dir`), funds its address with 110 mined blocks.
    pub fn start(node: &Bitcoind, dir: &Path) -> WalletShim {
        let python = required_env("OTS_PYTHON");
        let script = shared_path("tools/wallet-shim.py");
        let key = dir.join("shim-key.json");
        let port = free_port();
        let common = |c: &mut Command| {
            c.arg(&script)
                .args(["--node-url", &node.rpc_url()])
                .args(["--node-user", RPC_USER, "--node-password", RPC_PASSWORD])
                .arg("--key-file")
                .arg(&key);
        };
        let mut cmd = Command::new(&python);
        common(&mut cmd);
        let out = cmd
            .arg("--print-address")
            .output()
            .expect("run the wallet shim");
        assert!(
            out.status.success(),
            "wallet shim: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let address = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let mut cmd = Command::new(&python);
        common(&mut cmd);
        let child = cmd
            .args(["--port", &port.to_string()])
            .arg("--log-file")
            .arg(dir.join("shim.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the wallet shim");
        let shim = WalletShim {
            _proc: Proc(child),
            port,
            address,
        };
        let _: serde_json::Value = node.rpc(
            "generatetoaddress",
            &[110.into(), shim.address.clone().into()],
        );
        wait_for("the wallet shim", 30, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        shim
    }
}

/// A Python calendar directory and, while running, the Python otsd serving it.
pub struct PythonOtsd {
    pub calendar: PathBuf,
    pub home: PathBuf,
    pub port: u16,
    proc: Option<Proc>,
    log: PathBuf,
}

impl PythonOtsd {
    /// Creates the calendar directory (`uri`, `donation_addr`, a 32-byte `hmac-key` with a trailing
    /// newline, which Python keeps as part of the key) and the private HOME pointing at `shim`.
    pub fn create(dir: &Path, uri: &str, shim: &WalletShim) -> PythonOtsd {
        let calendar = dir.join("python-calendar");
        let home = dir.join("python-home");
        std::fs::create_dir_all(&calendar).unwrap();
        std::fs::create_dir_all(home.join(".bitcoin")).unwrap();
        std::fs::write(calendar.join("uri"), format!("{uri}\n")).unwrap();
        std::fs::write(
            calendar.join("donation_addr"),
            format!("{}\n", shim.address),
        )
        .unwrap();
        let mut key = [0x5au8; 32].to_vec();
        key.push(b'\n');
        std::fs::write(calendar.join("hmac-key"), key).unwrap();
        std::fs::write(
            home.join(".bitcoin/bitcoin.conf"),
            format!(
                "rpcconnect=127.0.0.1\nrpcport={}\nrpcuser={RPC_USER}\nrpcpassword={RPC_PASSWORD}\n",
                shim.port
            ),
        )
        .unwrap();
        PythonOtsd {
            calendar,
            log: dir.join("python-otsd.log"),
            home,
            port: free_port(),
            proc: None,
        }
    }

    /// Starts the server and waits until it answers.
    pub fn start(&mut self) {
        assert!(self.proc.is_none(), "the Python otsd is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(required_env("OTS_PYTHON"))
            .arg(shared_path("peers/opentimestamps-server/otsd"))
            .args(["--btc-regtest", "-c"])
            .arg(&self.calendar)
            .args([
                "--rpc-port",
                &self.port.to_string(),
                "--rpc-address",
                "127.0.0.1",
            ])
            .args(["--btc-min-tx-interval", "1", "--debug-file"])
            .arg(self.home.join("debug.log"))
            .env("HOME", &self.home)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn the Python otsd");
        self.proc = Some(Proc(child));
        wait_for("the Python otsd to answer", 60, || {
            if let Some(Proc(c)) = self.proc.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("the Python otsd exited with {status}:\n{}", self.log_text());
                }
            }
            std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()
        });
    }

    /// Stops the server (SIGKILL: the Python otsd has no clean shutdown; its journal is fsync'd
    /// per round and each LevelDB batch is written with sync).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn get(&self, path: &str) -> Response {
        get(self.addr(), path, "")
    }

    pub fn log_text(&self) -> String {
        let mut s = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Ok(f) = std::fs::File::open(self.home.join("debug.log")) {
            let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
            let from = lines.len().saturating_sub(40);
            s.push_str(&lines[from..].join("\n"));
        }
        s
    }

    /// The journal's records, 44 bytes each.
    pub fn journal(&self) -> Vec<[u8; 44]> {
        let bytes = std::fs::read(self.calendar.join("journal")).unwrap_or_default();
        bytes
            .chunks_exact(44)
            .map(|c| c.try_into().unwrap())
            .collect()
    }

    /// Appends a record `time || root || 00×8` as the Python `convert-old-journal-to-new` tool
    /// rewrote pre-2016 records (the server must be stopped).
    pub fn append_legacy_record(&self, time: u32, root: [u8; 32]) -> Vec<u8> {
        assert!(self.proc.is_none(), "stop the Python otsd first");
        let mut record = time.to_be_bytes().to_vec();
        record.extend_from_slice(&root);
        let legacy = record.clone();
        record.extend_from_slice(&[0; 8]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.calendar.join("journal"))
            .unwrap();
        std::io::Write::write_all(&mut f, &record).unwrap();
        f.sync_all().unwrap();
        legacy
    }
}

/// Polls until the Python otsd serves a complete proof for `commitment`.
pub fn wait_complete(py: &PythonOtsd, node: &Bitcoind, commitment: &[u8], secs: u64) {
    let path = format!("/timestamp/{}", hex::encode(commitment));
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let r = py.get(&path);
        if r.status == 200 {
            return;
        }
        let last = r.text();
        assert!(
            std::time::Instant::now() < deadline,
            "the Python otsd never completed {}: {last}\n{}",
            hex::encode(commitment),
            py.log_text()
        );
        node.mine(1);
        std::thread::sleep(Duration::from_millis(700));
    }
}
