//! Shared test harness: a real `otsd` process on a fresh calendar directory, and a tiny raw HTTP/1.1
//! client (raw, so tests can also send malformed, slow and chunked requests).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub mod bitcoind;
pub mod legacy;
pub mod pypeer;

pub const URI: &str = "http://127.0.0.1:14788";
pub const DONATION: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// A fresh calendar directory (`DIR/calendar`) made with `otsctl init`.
pub fn new_calendar() -> tempfile::TempDir {
    calendar_with_uri(URI)
}

/// A fresh calendar directory whose pending attestations carry `uri`.
pub fn calendar_with_uri(uri: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let cal = dir.path().join("calendar");
    let out = Command::new(env!("CARGO_BIN_EXE_otsctl"))
        .args([
            "init",
            cal.to_str().unwrap(),
            "--uri",
            uri,
            "--donation-addr",
            DONATION,
        ])
        .output()
        .expect("run otsctl init");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "otsctl init failed: {stderr}");
    dir
}

/// A running `otsd` child process.
pub struct Otsd {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// The thread copying otsd's stderr; joined on stop so the log is complete.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Otsd {
    /// Starts otsd on `calendar` (the directory holding uri/hmac-key), on a free loopback port.
    pub fn start(calendar: &Path, extra: &[&str]) -> Otsd {
        Otsd::start_env(calendar, extra, &[])
    }

    /// As [`Otsd::start`], with extra environment variables. Without `--btc-rpc` in `extra` the
    /// calendar runs `--intake-only` (it would otherwise look for a node through the test
    /// machine's ~/.bitcoin/bitcoin.conf); see [`Otsd::start_discovering`].
    pub fn start_env(calendar: &Path, extra: &[&str], env: &[(&str, &str)]) -> Otsd {
        let intake_only = !extra.contains(&"--btc-rpc") && !extra.contains(&"--intake-only");
        let mut all: Vec<&str> = extra.to_vec();
        if intake_only {
            all.push("--intake-only");
        }
        Otsd::start_discovering(calendar, &all, env)
    }

    /// As [`Otsd::start_env`], but without `--btc-rpc` otsd finds its node as the Python otsd
    /// (through `$HOME/.bitcoin/bitcoin.conf`: set HOME in `env`).
    pub fn start_discovering(calendar: &Path, extra: &[&str], env: &[(&str, &str)]) -> Otsd {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otsd"))
            .envs(env.iter().copied())
            .arg("-c")
            .arg(calendar)
            .args(["--rpc-address", "127.0.0.1", "--btc-regtest"])
            .args(if extra.contains(&"--rpc-port") {
                &[][..]
            } else {
                &["--rpc-port", "0"][..]
            })
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn otsd");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .split("addr=")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().ok());
                }
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
            }
            let _ = tx.send(None);
        });
        let Some(addr) = rx.recv_timeout(Duration::from_secs(60)).ok().flatten() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("otsd did not start:\n{}", log.lock().unwrap());
        };
        Otsd {
            child,
            addr,
            stderr: log,
            reader: Some(reader),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let status = self.child.wait().expect("wait otsd");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let log = self.stderr.lock().unwrap().clone();
        assert!(
            status.success(),
            "otsd exited with {status} after SIGTERM:\n{log}"
        );
        log
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Otsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw request bytes on a new connection and reads the response to EOF.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).expect("write request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    parse(&buf)
        .unwrap_or_else(|| panic!("unparseable response: {:?}", String::from_utf8_lossy(&buf)))
}

/// Parses one HTTP/1.1 response with a Content-Length (or read to EOF).
pub fn parse(buf: &[u8]) -> Option<Response> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        body.truncate(len.1.parse().ok()?);
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

pub fn get(addr: SocketAddr, path: &str, extra_headers: &str) -> Response {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra_headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

pub fn post_digest(addr: SocketAddr, digest: &[u8]) -> Response {
    let mut req = format!(
        "POST /digest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        digest.len()
    )
    .into_bytes();
    req.extend_from_slice(digest);
    raw(addr, &req)
}

/// Path of a file in the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// An environment variable the test command sets; missing means the harness was not run: fail loudly.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through tools/test.sh (the README's test command), which installs the real clients and bitcoind")
    })
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A calendar whose uri is the address it will be served on, so clients can upgrade against it.
pub fn served_calendar() -> (tempfile::TempDir, Otsd) {
    let port = free_port();
    let dir = calendar_with_uri(&format!("http://127.0.0.1:{port}"));
    let otsd = Otsd::start(
        &dir.path().join("calendar"),
        &["--rpc-port", &port.to_string()],
    );
    (dir, otsd)
}

/// Runs a command, returning (success, stdout + stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Like [`post_digest`], but `None` instead of a panic when the server is gone.
pub fn try_post_digest(addr: SocketAddr, digest: &[u8]) -> Option<Response> {
    let mut req = format!(
        "POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        digest.len()
    )
    .into_bytes();
    req.extend_from_slice(digest);
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(&req).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    parse(&buf)
}

/// The 44-byte commitment an answer's pending attestation is on.
pub fn commitment_of(digest: &[u8], answer: &[u8]) -> Vec<u8> {
    let ts = otsd::ots::Timestamp::from_bytes(answer, digest.to_vec())
        .expect("answer parses as a timestamp");
    let atts = ts.all_attestations();
    assert_eq!(atts.len(), 1, "exactly one attestation");
    atts[0].0.to_vec()
}

/// The real `ots` client ($OTS_BIN), run with its own HOME so its cache starts empty.
pub struct OtsClient {
    bin: String,
    home: PathBuf,
}

impl OtsClient {
    pub fn new(home: &Path) -> OtsClient {
        OtsClient {
            bin: required_env("OTS_BIN"),
            home: home.to_owned(),
        }
    }

    /// Runs `ots ARGS`, returning (success, stdout + stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        run(Command::new(&self.bin).env("HOME", &self.home).args(args))
    }

    /// Runs `ots verify PROOF` on regtest against the node at `node_url` (with credentials).
    pub fn verify_regtest(&self, node_url: &str, proof: &str) -> (bool, String) {
        self.run(&["--btc-regtest", "--bitcoin-node", node_url, "verify", proof])
    }

    /// Writes `contents` to `dir/name`, stamps it on the calendar at `url` alone, and returns the
    /// path of the proof it wrote; panics with the client's output if stamping fails.
    pub fn stamp(&self, url: &str, dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
        let file = dir.join(name);
        std::fs::write(&file, contents).expect("write file to stamp");
        let (ok, out) = self.run(&["stamp", "-c", url, "-m", "1", file.to_str().unwrap()]);
        let proof = dir.join(format!("{name}.ots"));
        assert!(ok && proof.exists(), "ots stamp failed:\n{out}");
        proof
    }
}

/// Runs `f(worker, i)` for `i in 0..per_worker` on each of `workers` threads at once, and returns
/// every result, worker by worker.
pub fn in_parallel<T: Send>(
    workers: u32,
    per_worker: u32,
    f: impl Fn(u32, u32) -> T + Sync,
) -> Vec<T> {
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| s.spawn(move || (0..per_worker).map(|i| f(w, i)).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread"))
            .collect()
    })
}

/// Block hash and height at which [`stamped_round_events`] confirms its transaction.
pub const STAMPED_BLOCK: ([u8; 32], u32) = ([0x22; 32], 101);

/// The events of one stamped single-digest round (digest `[3; 32]`, nonce `[9; 16]`): its
/// `DigestSubmitted` and `RoundSealed` (MAC made with `hmac_key`), a `TxBroadcast` whose raw
/// transaction commits to the round's tip, and its `TxConfirmed` in [`STAMPED_BLOCK`]. Returns the
/// events and the txid.
pub fn stamped_round_events(hmac_key: &[u8]) -> (Vec<otsd::events::Event>, [u8; 32]) {
    use otsd::events::Event;
    use sha2::{Digest, Sha256};
    let (digest, nonce, time) = (vec![3u8; 32], [9u8; 16], 1_700_000_000);
    let root = otsd::ots::answer::nonce_leaf(&digest, &nonce);
    let commitment = otsd::calendar::mac::CommitmentMac::new(hmac_key)
        .commitment(time, &root)
        .to_vec();
    let tip = otsd::anchor::proof::stamp_tip([&commitment[..]], None).expect("tip");
    let raw_tx = [&[2, 0, 0, 0, 1][..], &tip[..], &[0, 0, 0, 0][..]].concat();
    let txid: [u8; 32] = Sha256::digest(Sha256::digest(&raw_tx)).into();
    let mac = commitment[36..].try_into().expect("8-byte mac");
    let events = vec![
        Event::DigestSubmitted { digest, nonce },
        Event::RoundSealed {
            round: 0,
            time,
            root,
            mac,
            commitment,
            digests: 1,
        },
        Event::TxBroadcast {
            txid,
            raw_tx,
            tip,
            first_round: 0,
            last_round: 0,
            fee_sat: 200,
            feerate_sat_per_kvb: 1000,
            input_sat: 10_000,
            height: 100,
            replaces: None,
            log_head: None,
        },
        Event::TxConfirmed {
            txid,
            block_hash: STAMPED_BLOCK.0,
            height: STAMPED_BLOCK.1,
            block_txids: [[0x77; 32], txid].concat(),
        },
    ];
    (events, txid)
}

/// Appends `events` as one batch to the log of the calendar at `cal`.
pub fn append_events(cal: &Path, events: &[otsd::events::Event]) {
    use otsd::events::codec;
    use otsd::log::{LogKey, WriterOptions};
    let dir = otsd::calendar::dir::CalendarDir::load(cal).expect("calendar");
    let key = LogKey::derive(&dir.hmac_key);
    let mut w = open_writer(&dir.log_dir(), key, WriterOptions::default());
    let batch: Vec<Vec<u8>> = events
        .iter()
        .map(|e| codec::encode(e).expect("encode"))
        .collect();
    w.append_batches(&[batch]).expect("append");
}

/// Appends rounds `rounds` to the calendar at `cal` with its key, each three 32-byte digests and
/// the seal in one batch, in segments of `segment_size` bytes; `salt` makes the digests of one history
/// differ from another's.
pub fn write_rounds(cal: &Path, rounds: std::ops::Range<u64>, salt: u8, segment_size: u64) {
    use otsd::events::{codec, Event};
    let dir = otsd::calendar::dir::CalendarDir::load(cal).expect("calendar");
    let mut mac = otsd::calendar::mac::CommitmentMac::new(&dir.hmac_key);
    let opts = otsd::log::WriterOptions {
        segment_size,
        ..otsd::log::WriterOptions::default()
    };
    let mut w = open_writer(
        &dir.log_dir(),
        otsd::log::LogKey::derive(&dir.hmac_key),
        opts,
    );
    for round in rounds {
        let digests: Vec<(Vec<u8>, [u8; 16])> = (0..3u8)
            .map(|i| {
                // 32 bytes, as clients send, so a round takes about as many bytes of log as it
                // did before the compact event encoding and the tests' segment counts hold.
                let mut digest = vec![round as u8, i, salt, 7];
                digest.resize(32, 0xd1);
                (digest, [i; 16])
            })
            .collect();
        let leaves = digests
            .iter()
            .map(|(d, n)| otsd::ots::answer::nonce_leaf(d, n))
            .collect();
        let root = *otsd::ots::MerkleTree::new(leaves).expect("leaves").root();
        let time = 1_700_000_000 + round as u32;
        let m = mac.mac(time, &root);
        let commitment = [&time.to_be_bytes()[..], &root[..], &m[..]].concat();
        let mut batch: Vec<Vec<u8>> = digests
            .into_iter()
            .map(|(digest, nonce)| {
                codec::encode(&Event::DigestSubmitted { digest, nonce }).expect("encode")
            })
            .collect();
        let seal = Event::RoundSealed {
            round,
            time,
            root,
            mac: m,
            commitment,
            digests: 3,
        };
        batch.push(codec::encode(&seal).expect("encode"));
        w.append_batches(&[batch]).expect("append");
    }
}

/// Runs `otsctl ARGS`: (exit success, stdout, stderr).
pub fn otsctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_otsctl"))
        .args(args)
        .output()
        .expect("run otsctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `otsctl verify CAL --json EXTRA...`: (exit success, the JSON report).
pub fn verify_json(cal: &Path, extra: &[&str]) -> (bool, serde_json::Value) {
    let mut args = vec!["verify", cal.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let (ok, out, err) = otsctl(&args);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (ok, report)
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `secs` seconds.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The regtest address of the calendar's stamper key (`otsctl address --btc-regtest`).
pub fn stamper_address(cal: &Path) -> bitcoin::Address {
    let (ok, out, err) = otsctl(&["address", cal.to_str().unwrap(), "--btc-regtest"]);
    assert!(ok, "otsctl address: {out}{err}");
    out.lines()
        .last()
        .unwrap()
        .trim()
        .parse::<bitcoin::Address<_>>()
        .expect("an address")
        .require_network(bitcoin::Network::Regtest)
        .expect("a regtest address")
}

/// Funds the calendar's stamper key with one mature coinbase.
pub fn fund_stamper(node: &bitcoind::Bitcoind, cal: &Path) {
    node.mine_to(1, &stamper_address(cal));
    node.mine(100);
}

/// Start offsets and lengths of the records of a segment's bytes (valid up to the first bad one).
pub fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut off = otsd::log::segment::HEADER_LEN;
    while let Ok(rec) = otsd::log::record::parse(&bytes[off..]) {
        spans.push((off, rec.len()));
        off += rec.len();
    }
    spans
}

/// `header` followed by `records` renumbered from `first_seq`, with the public hash chain (from
/// `prev_hash`) and CRCs recomputed as a forger without the key can; HMAC tags are copied
/// unchanged because the forger cannot compute them.
pub fn forge_records(
    header: &[u8],
    first_seq: u64,
    prev_hash: [u8; 32],
    records: Vec<Vec<u8>>,
) -> Vec<u8> {
    use otsd::log::record;
    let mut out = header.to_vec();
    let mut seq = first_seq;
    let mut chain = otsd::log::ChainState {
        hash: prev_hash,
        tag: [0; 32],
    };
    for mut rec in records {
        let len = rec.len();
        rec[record::FIRST_SEQ_OFFSET..record::COUNT_OFFSET].copy_from_slice(&seq.to_le_bytes());
        let count = u32::from_le_bytes(rec[16..20].try_into().expect("4 bytes"));
        seq += u64::from(count);
        let body_end = len - record::TRAILER_LEN;
        chain.hash = chain.next_hash(&rec[..body_end]);
        rec[body_end..body_end + 32].copy_from_slice(&chain.hash);
        let crc = crc32fast::hash(&rec[..len - 4]);
        rec[len - 4..].copy_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&rec);
    }
    out
}

/// Opens the log writer of `log_dir` in this test process, waiting up to 5 s for its lock.
///
/// Why the wait: the lock is an `flock` on an open file, and while another test thread spawns a
/// process, the child holds a copy of this process's descriptors until it execs. A writer this
/// process has just dropped can therefore still look locked for a moment.
pub fn open_writer(
    log_dir: &Path,
    key: otsd::log::LogKey,
    opts: otsd::log::WriterOptions,
) -> otsd::log::Writer {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match otsd::log::Writer::open(log_dir, key.clone(), opts.clone()) {
            Ok((w, _)) => return w,
            Err(otsd::log::LogError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::WouldBlock
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("open the log writer: {e}"),
        }
    }
}
