//! What the rows against a running `otsd` share: the sibling binaries, calendars made with
//! `otsctl init`, an `otsd` child process, a raw HTTP/1.1 client (raw, so it can also send broken
//! requests), a load generator that remembers every acknowledged digest, and percentiles.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// How long an `otsd` may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Read and write timeout of one HTTP exchange.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of a daemon's stderr kept for error messages (bounded: a long run logs a lot).
const KEPT_LOG_LINES: usize = 400;

/// A binary built beside this one (`cargo build` builds every `[[bin]]` into the same directory).
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .ok_or_else(|| anyhow!("no parent of {}", exe.display()))?
        .join(name);
    if !path.is_file() {
        bail!(
            "{} not found: build all binaries (cargo build --bins)",
            path.display()
        );
    }
    Ok(path)
}

/// A loopback port free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A new calendar `DIR/calendar` whose pending attestations carry `uri` (`otsctl init`).
pub fn init_calendar(dir: &Path, uri: &str) -> anyhow::Result<PathBuf> {
    let cal = dir.join("calendar");
    let out = Command::new(sibling("otsctl")?)
        .arg("init")
        .arg(&cal)
        .args(["--uri", uri])
        .args([
            "--donation-addr",
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
        ])
        .output()?;
    if !out.status.success() {
        bail!("otsctl init: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(cal)
}

/// A running `otsd` child.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    /// The last [`KEPT_LOG_LINES`] lines of its stderr.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Whether its stderr ever had a line containing "panicked" (kept even when the lines are not).
    pub panicked: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// Starts `otsd -c CAL --btc-regtest --rpc-address 127.0.0.1 ARGS` (`--rpc-port 0` unless
    /// ARGS has one) with `env`, and waits until it listens.
    pub fn start(cal: &Path, args: &[String], env: &[(&str, String)]) -> anyhow::Result<Daemon> {
        let mut cmd = Command::new(sibling("otsd")?);
        cmd.arg("-c")
            .arg(cal)
            .args(["--btc-regtest", "--rpc-address", "127.0.0.1"]);
        if !args.iter().any(|a| a == "--rpc-port") {
            cmd.args(["--rpc-port", "0"]);
        }
        let mut child = cmd
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn otsd")?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("otsd stderr"))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let panicked = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (log2, panicked2) = (log.clone(), panicked.clone());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("addr=").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap_or("");
                    let _ = tx.send(addr.parse::<SocketAddr>().ok());
                }
                if line.contains("panicked") {
                    panicked2.store(true, Ordering::Relaxed);
                }
                let mut log = otsd::sync::lock(&log2);
                if log.len() >= KEPT_LOG_LINES {
                    log.remove(0);
                }
                log.push(line);
            }
            let _ = tx.send(None);
        });
        let addr = rx.recv_timeout(START_TIMEOUT).ok().flatten();
        let mut d = Daemon {
            child,
            addr: addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            log,
            panicked,
            reader: Some(reader),
        };
        if addr.is_none() {
            d.kill();
            bail!("otsd did not start:\n{}", d.log_text());
        }
        Ok(d)
    }

    pub fn log_text(&self) -> String {
        otsd::sync::lock(&self.log).join("\n")
    }

    /// SIGKILL, and waits.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }

    /// Waits up to `timeout` for the process to end by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `SIG<name>` to `pid` with kill(1) (no `unsafe` here).
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one HTTP/1.1 response (Content-Length, else to EOF).
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
    if let Some((_, len)) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        body.truncate(len.parse().ok()?);
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// Sends `request` on a new connection and reads the answer to EOF.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse(&buf).ok_or_else(|| std::io::Error::other("unparseable response"))
}

pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

pub fn post_digest(addr: SocketAddr, digest: &[u8]) -> std::io::Result<Response> {
    let mut req = format!(
        "POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        digest.len()
    )
    .into_bytes();
    req.extend_from_slice(digest);
    exchange(addr, &req)
}

/// The commitment an acknowledgement's pending attestation is on.
pub fn commitment_of(digest: &[u8], answer: &[u8]) -> Option<Vec<u8>> {
    let ts = otsd::ots::Timestamp::from_bytes(answer, digest.to_vec()).ok()?;
    let atts = ts.all_attestations();
    (atts.len() == 1).then(|| atts[0].0.to_vec())
}

/// Whether `otsd` at `addr` knows `commitment` (pending or complete: anything but "Not found").
pub fn knows(addr: SocketAddr, commitment: &[u8]) -> std::io::Result<bool> {
    let r = get(addr, &format!("/timestamp/{}", hex::encode(commitment)))?;
    Ok(r.status == 200 || (r.status == 404 && r.text() != "Not found"))
}

/// An acknowledged digest.
#[derive(Debug, Clone)]
pub struct Acked {
    pub commitment: Vec<u8>,
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub acked: Vec<Acked>,
    /// Latencies of the acknowledged requests.
    pub latencies: Vec<Duration>,
    /// Answers other than 200, by status.
    pub refused: std::collections::BTreeMap<u16, u64>,
    /// Requests without an answer (connection refused, reset, timeout).
    pub unanswered: u64,
    /// 200 answers that did not parse as a timestamp on the digest (must stay 0).
    pub bad_answers: u64,
}

/// `workers` threads POST fresh digests (distinct per `tag`) to `addr` until `stop` is set, each
/// waiting `pause` between requests.
pub fn load(
    addr: SocketAddr,
    workers: u32,
    tag: u64,
    pause: Duration,
    stop: &AtomicBool,
) -> LoadResult {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let results: Vec<LoadResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut r = LoadResult::default();
                    while !stop.load(Ordering::Relaxed) {
                        let n = NEXT.fetch_add(1, Ordering::Relaxed);
                        let digest = [tag.to_be_bytes(), n.to_be_bytes()].concat();
                        let t = Instant::now();
                        match post_digest(addr, &digest) {
                            Ok(a) if a.status == 200 => match commitment_of(&digest, &a.body) {
                                Some(commitment) => {
                                    r.latencies.push(t.elapsed());
                                    r.acked.push(Acked { commitment });
                                }
                                None => r.bad_answers += 1,
                            },
                            Ok(a) => *r.refused.entry(a.status).or_default() += 1,
                            Err(_) => r.unanswered += 1,
                        }
                        if !pause.is_zero() {
                            std::thread::sleep(pause);
                        }
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut all = LoadResult::default();
    for r in results {
        all.acked.extend(r.acked);
        all.latencies.extend(r.latencies);
        for (k, v) in r.refused {
            *all.refused.entry(k).or_default() += v;
        }
        all.unanswered += r.unanswered;
        all.bad_answers += r.bad_answers;
    }
    all
}

/// The `p`-th percentile (0..=100) of `v` (sorted here); zero for an empty `v`.
pub fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * p / 100.0).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Checks that `otsd` at `addr` knows every commitment in `acked` (each distinct one once).
pub fn all_known(addr: SocketAddr, acked: &[Acked]) -> Result<u64, String> {
    let mut commitments: Vec<&[u8]> = acked.iter().map(|a| a.commitment.as_slice()).collect();
    commitments.sort_unstable();
    commitments.dedup();
    for c in &commitments {
        match knows(addr, c) {
            Ok(true) => {}
            Ok(false) => return Err(format!("acknowledged commitment {} lost", hex::encode(c))),
            Err(e) => return Err(format!("GET /timestamp: {e}")),
        }
    }
    Ok(commitments.len() as u64)
}
