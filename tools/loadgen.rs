//! `otsd-loadgen`: drives a calendar's `POST /digest` and verifies every answer.
//!
//! Design:
//! - Each of `--concurrency` workers (a tokio task) speaks a minimal HTTP/1.1 over a `TcpStream`,
//!   reusing its read and write buffers. With keep-alive a worker keeps one connection; with
//!   `--new-connection` it connects for every request and sends `Connection: close`, as the `ots`
//!   client does. Latency runs from connect (or first byte written) to the last byte read.
//! - Answers are copied into batches and handed to verifier threads, so decoding and replaying a
//!   proof does not throttle the load. The report waits until every answer has been verified:
//!   a digest counts as acknowledged only if its answer is a valid timestamp on it with exactly one
//!   pending attestation on a 44-byte commitment.
//! - `--timestamp-check N` then asks `GET /timestamp/<commitment>` for N sampled commitments and
//!   expects `404 Pending confirmation in Bitcoin blockchain`.
//! - Everything is bounded: run time, request count, concurrency, head and body sizes. Only
//!   loopback targets, unless `--allow-remote`.
//!
//! The process exits non-zero if any request failed or any answer was wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Buf, BytesMut};
use clap::Parser;
use otsd::ots::{Attestation, Timestamp};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Longest run.
const MAX_DURATION_SECS: f64 = 3600.0;
/// Run time when neither `--duration` nor `--requests` is given.
const DEFAULT_DURATION_SECS: f64 = 10.0;
/// Most requests in one run.
const MAX_REQUESTS: u64 = 100_000_000;
/// Most `--threads`.
const MAX_THREADS: usize = 1024;
/// Most concurrent connections.
const MAX_CONCURRENCY: usize = 10_000;
/// Most commitments sampled for `--timestamp-check`.
const MAX_TIMESTAMP_CHECK: usize = 1_000_000;
/// The calendar accepts digests of 1..=64 bytes.
const MAX_DIGEST_LEN: usize = 64;
/// Longest response head we read.
const MAX_HEAD_LEN: usize = 16 * 1024;
/// Longest response body we read.
const MAX_BODY_LEN: usize = 1 << 20;
/// Length of the message a pending attestation sits on: time(4) || root(32) || mac(8).
const COMMITMENT_LEN: usize = 44;
/// Answers per batch handed to a verifier.
const BATCH_LEN: usize = 256;
/// Batches queued per verifier before workers wait for it.
const BATCHES_QUEUED: usize = 256;
/// Pause after a failed connect, so a dead server does not turn into a busy loop.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// What the calendar answers for a commitment not yet in a block.
const PENDING_TEXT: &str = "Pending confirmation in Bitcoin blockchain";

#[derive(Parser, Debug)]
#[command(
    name = "otsd-loadgen",
    about = "POST random digests to an OpenTimestamps calendar and verify every answer"
)]
struct Args {
    /// Calendar address, host:port.
    #[arg(long, default_value_t = format!("127.0.0.1:{}", otsd::cli::otsd::DEFAULT_RPC_PORT))]
    target: String,
    /// Connections (workers) in flight at once.
    #[arg(short, long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to run [default: 10, or 3600 when --requests is given].
    #[arg(short, long)]
    duration: Option<f64>,
    /// Stop after this many requests in all.
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// A new TCP connection per request, with `Connection: close` (as the `ots` client does).
    #[arg(long)]
    new_connection: bool,
    /// Expect this URI in every pending attestation.
    #[arg(long)]
    uri: Option<String>,
    /// Afterwards GET /timestamp/<commitment> for this many sampled commitments.
    #[arg(long, default_value_t = 0)]
    timestamp_check: usize,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Length of the random digests.
    #[arg(long, default_value_t = 32)]
    digest_len: usize,
    /// Tokio worker threads [default: available parallelism].
    #[arg(long)]
    threads: Option<usize>,
    /// Verifier threads.
    #[arg(long, default_value_t = 1)]
    verifiers: usize,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    allow_remote: bool,
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("otsd-loadgen: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Runs the load and the checks; `Ok(false)` if anything failed.
fn run(args: &Args) -> Result<bool> {
    let config = Config::from_args(args)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(run_async(Arc::new(config)))
}

async fn run_async(config: Arc<Config>) -> Result<bool> {
    let load = run_load(&config).await?;
    let load_ok = load.print(&config);
    let sample = load.sample;
    let check_ok = match config.timestamp_check {
        0 => true,
        n => run_timestamp_check(&config, sample, n).await.print(),
    };
    Ok(load_ok && check_ok)
}

/// Validated settings shared by all workers.
struct Config {
    addr: SocketAddr,
    host: String,
    concurrency: usize,
    deadline_after: Duration,
    requests: u64,
    new_connection: bool,
    uri: Option<String>,
    timestamp_check: usize,
    timeout: Duration,
    digest_len: usize,
    verifiers: usize,
}

impl Config {
    fn from_args(args: &Args) -> Result<Config> {
        let duration = args.duration.unwrap_or(match args.requests {
            Some(_) => MAX_DURATION_SECS,
            None => DEFAULT_DURATION_SECS,
        });
        check_range("--duration", duration, 0.001, MAX_DURATION_SECS)?;
        let requests = args.requests.unwrap_or(MAX_REQUESTS);
        check_range("--requests", requests, 1, MAX_REQUESTS)?;
        check_range("--concurrency", args.concurrency, 1, MAX_CONCURRENCY)?;
        check_range("--digest-len", args.digest_len, 1, MAX_DIGEST_LEN)?;
        check_range(
            "--timestamp-check",
            args.timestamp_check,
            0,
            MAX_TIMESTAMP_CHECK,
        )?;
        check_range("--timeout-ms", args.timeout_ms, 1, 600_000)?;
        check_range("--verifiers", args.verifiers, 1, 64)?;
        if let Some(threads) = args.threads {
            check_range("--threads", threads, 1, MAX_THREADS)?;
        }
        Ok(Config {
            addr: resolve(&args.target, args.allow_remote)?,
            host: args.target.clone(),
            concurrency: args.concurrency,
            deadline_after: Duration::from_secs_f64(duration),
            requests,
            new_connection: args.new_connection,
            uri: args.uri.clone(),
            timestamp_check: args.timestamp_check,
            timeout: Duration::from_millis(args.timeout_ms),
            digest_len: args.digest_len,
            verifiers: args.verifiers,
        })
    }

    /// The request head for `POST /digest`; the digest follows it.
    fn digest_head(&self) -> Vec<u8> {
        let close = if self.new_connection {
            "Connection: close\r\n"
        } else {
            ""
        };
        format!(
            "POST /digest HTTP/1.1\r\nHost: {}\r\nUser-Agent: otsd-loadgen\r\n\
             Accept: application/vnd.opentimestamps.v1\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{close}Content-Length: {}\r\n\r\n",
            self.host, self.digest_len
        )
        .into_bytes()
    }

    fn mode(&self) -> &'static str {
        if self.new_connection {
            "new-connection"
        } else {
            "keep-alive"
        }
    }
}

fn check_range<T: PartialOrd + fmt::Display>(name: &str, value: T, min: T, max: T) -> Result<()> {
    if value < min || value > max {
        bail!("{name} {value} is outside {min}..={max}");
    }
    Ok(())
}

/// Resolves `target`, refusing anything but loopback unless `allow_remote`.
fn resolve(target: &str, allow_remote: bool) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .with_context(|| format!("resolving {target} (expected host:port)"))?
        .collect();
    let addr = *addrs.first().context("target resolves to no address")?;
    if !allow_remote && !addrs.iter().all(|a| a.ip().is_loopback()) {
        bail!("{target} is not a loopback address; pass --allow-remote to load it anyway");
    }
    Ok(addr)
}

// ---------------------------------------------------------------------------------------------
// Failures

/// Why a request did not yield an acknowledged digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Fail {
    Connect,
    /// Connection reset or aborted by the peer, or a write to a closed socket.
    Reset,
    /// The server closed the connection before the whole answer arrived.
    Eof,
    Timeout,
    Status(u16),
    /// Not a well-formed HTTP/1.1 response within our limits.
    Protocol,
    BadAnswer(&'static str),
    Io(std::io::ErrorKind),
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Connect => write!(f, "connect"),
            Fail::Reset => write!(f, "reset"),
            Fail::Eof => write!(f, "closed early"),
            Fail::Timeout => write!(f, "timeout"),
            Fail::Status(code) => write!(f, "bad status {code}"),
            Fail::Protocol => write!(f, "bad http"),
            Fail::BadAnswer(why) => write!(f, "bad answer: {why}"),
            Fail::Io(kind) => write!(f, "io: {kind}"),
        }
    }
}

fn io_fail(e: std::io::Error) -> Fail {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe => Fail::Reset,
        UnexpectedEof => Fail::Eof,
        kind => Fail::Io(kind),
    }
}

/// Counts of failures by kind.
#[derive(Debug, Default, Clone)]
struct Failures(BTreeMap<Fail, u64>);

impl Failures {
    fn add(&mut self, fail: Fail) {
        *self.0.entry(fail).or_default() += 1;
    }

    fn merge(&mut self, other: &Failures) {
        for (fail, n) in &other.0 {
            *self.0.entry(*fail).or_default() += n;
        }
    }

    fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// One line per kind: the named kinds always, the others when they occurred.
    fn print(&self) {
        for kind in [Fail::Connect, Fail::Reset, Fail::Timeout] {
            println!(
                "  {:<28}{}",
                kind.to_string(),
                self.0.get(&kind).unwrap_or(&0)
            );
        }
        for (kind, n) in &self.0 {
            if !matches!(kind, Fail::Connect | Fail::Reset | Fail::Timeout) {
                println!("  {:<28}{n}", kind.to_string());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// The parts of a response head we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    framing: Framing,
    /// The server will close the connection after this response.
    close: bool,
}

/// Parses a response head (status line and headers, without the final blank line).
fn parse_head(head: &[u8]) -> Result<Head, Fail> {
    let text = std::str::from_utf8(head).map_err(|_| Fail::Protocol)?;
    let mut lines = text.split("\r\n");
    let (version, status) = parse_status_line(lines.next().unwrap_or(""))?;
    let mut parsed = Head {
        status,
        framing: Framing::UntilClose,
        close: version == "HTTP/1.0",
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(Fail::Protocol)?;
        apply_header(&mut parsed, name.trim(), value.trim())?;
    }
    if no_body(status) {
        parsed.framing = Framing::Length(0);
    }
    Ok(parsed)
}

fn parse_status_line(line: &str) -> Result<(&str, u16), Fail> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().filter(|v| v.starts_with("HTTP/1."));
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    match (version, status) {
        (Some(version), Some(status)) if (100..1000).contains(&status) => Ok((version, status)),
        _ => Err(Fail::Protocol),
    }
}

fn apply_header(head: &mut Head, name: &str, value: &str) -> Result<(), Fail> {
    if name.eq_ignore_ascii_case("content-length") && head.framing != Framing::Chunked {
        let len = value.parse::<usize>().map_err(|_| Fail::Protocol)?;
        head.framing = Framing::Length(len);
    } else if name.eq_ignore_ascii_case("transfer-encoding") {
        if !value.eq_ignore_ascii_case("chunked") {
            return Err(Fail::Protocol);
        }
        head.framing = Framing::Chunked;
    } else if name.eq_ignore_ascii_case("connection") {
        head.close = value.eq_ignore_ascii_case("close");
    }
    Ok(())
}

fn no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One HTTP/1.1 connection with reused buffers. Generic so tests can run it over a pipe.
struct Conn<S> {
    stream: S,
    buf: BytesMut,
    body: Vec<u8>,
}

impl Conn<TcpStream> {
    async fn connect(addr: SocketAddr) -> Result<Self, Fail> {
        let stream = TcpStream::connect(addr).await.map_err(|_| Fail::Connect)?;
        stream.set_nodelay(true).map_err(io_fail)?;
        Ok(Conn::new(stream))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
            body: Vec::with_capacity(4 * 1024),
        }
    }

    /// Sends `request` and reads one response, whose body is then in `self.body`.
    async fn round_trip(&mut self, request: &[u8]) -> Result<Head, Fail> {
        self.stream.write_all(request).await.map_err(io_fail)?;
        let head_end = self.read_until(b"\r\n\r\n", MAX_HEAD_LEN).await?;
        let head = parse_head(&self.buf[..head_end])?;
        self.buf.advance(head_end + 4);
        self.body.clear();
        match head.framing {
            Framing::Length(len) => self.read_body(len).await?,
            Framing::Chunked => self.read_chunked().await?,
            Framing::UntilClose => self.read_to_close().await?,
        }
        Ok(head)
    }

    /// Reads more bytes into `buf`; the end of the stream is an error.
    async fn fill(&mut self) -> Result<(), Fail> {
        self.buf.reserve(4096);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(Fail::Eof),
            Ok(_) => Ok(()),
            Err(e) => Err(io_fail(e)),
        }
    }

    /// The offset of `delim` in `buf`, reading until it appears within `max` bytes.
    async fn read_until(&mut self, delim: &[u8], max: usize) -> Result<usize, Fail> {
        let mut from = 0;
        loop {
            if let Some(pos) = find(&self.buf[from..], delim) {
                return Ok(from + pos);
            }
            if self.buf.len() > max {
                return Err(Fail::Protocol);
            }
            from = self.buf.len().saturating_sub(delim.len() - 1);
            self.fill().await?;
        }
    }

    /// Moves `len` bytes from `buf` to `body`, reading as needed.
    async fn read_body(&mut self, len: usize) -> Result<(), Fail> {
        if self.body.len() + len > MAX_BODY_LEN {
            return Err(Fail::Protocol);
        }
        while self.buf.len() < len {
            self.fill().await?;
        }
        self.body.extend_from_slice(&self.buf[..len]);
        self.buf.advance(len);
        Ok(())
    }

    async fn read_chunked(&mut self) -> Result<(), Fail> {
        loop {
            let line_end = self.read_until(b"\r\n", MAX_HEAD_LEN).await?;
            let size = parse_chunk_size(&self.buf[..line_end])?;
            self.buf.advance(line_end + 2);
            if size == 0 {
                return self.skip_trailers().await;
            }
            self.read_body(size).await?;
            let crlf = self.read_until(b"\r\n", 0).await?;
            if crlf != 0 {
                return Err(Fail::Protocol);
            }
            self.buf.advance(2);
        }
    }

    async fn skip_trailers(&mut self) -> Result<(), Fail> {
        loop {
            let line_end = self.read_until(b"\r\n", MAX_HEAD_LEN).await?;
            self.buf.advance(line_end + 2);
            if line_end == 0 {
                return Ok(());
            }
        }
    }

    async fn read_to_close(&mut self) -> Result<(), Fail> {
        loop {
            let len = self.buf.len();
            self.read_body(len).await?;
            match self.fill().await {
                Err(Fail::Eof) => return Ok(()),
                other => other?,
            }
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<usize, Fail> {
    let text = std::str::from_utf8(line).map_err(|_| Fail::Protocol)?;
    let hex = text.split(';').next().unwrap_or("").trim();
    usize::from_str_radix(hex, 16).map_err(|_| Fail::Protocol)
}

// ---------------------------------------------------------------------------------------------
// Latency histogram

/// Values below this are counted exactly; above, with `1 / SUB_BUCKETS` relative precision.
const EXACT: u64 = 1024;
const SUB_BUCKETS: u64 = 512;
/// Buckets up to 2^40 µs (12 days); larger values land in the last one.
const BUCKETS: usize = (EXACT + 30 * SUB_BUCKETS) as usize;

/// A log-linear histogram of latencies in microseconds (HdrHistogram's idea, 3 digits).
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn bucket_of(value: u64) -> usize {
    if value < EXACT {
        return value as usize;
    }
    let exp = 63 - u64::from(value.leading_zeros());
    let shift = exp - 9;
    let index = EXACT + (exp - 10) * SUB_BUCKETS + ((value >> shift) - SUB_BUCKETS);
    (index as usize).min(BUCKETS - 1)
}

/// The largest value that falls in bucket `index`.
fn bucket_high(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT {
        return index;
    }
    let exp = (index - EXACT) / SUB_BUCKETS + 10;
    let mantissa = (index - EXACT) % SUB_BUCKETS + SUB_BUCKETS;
    ((mantissa + 1) << (exp - 9)) - 1
}

impl Histogram {
    fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket_of(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1), at most the largest recorded value.
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_high(index).min(self.max);
            }
        }
        self.max
    }
}

fn fmt_micros(micros: u64) -> String {
    match micros {
        0..=9_999 => format!("{:.3} ms", micros as f64 / 1000.0),
        10_000..=999_999 => format!("{:.1} ms", micros as f64 / 1000.0),
        _ => format!("{:.2} s", micros as f64 / 1e6),
    }
}

// ---------------------------------------------------------------------------------------------
// Verification

/// Answers of one worker, copied out of its read buffer for a verifier.
struct Batch {
    digest_len: usize,
    digests: Vec<u8>,
    bodies: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    fn new(digest_len: usize) -> Self {
        Batch {
            digest_len,
            digests: Vec::with_capacity(BATCH_LEN * digest_len),
            bodies: Vec::with_capacity(BATCH_LEN * 512),
            ends: Vec::with_capacity(BATCH_LEN),
        }
    }

    fn push(&mut self, digest: &[u8], body: &[u8]) {
        self.digests.extend_from_slice(digest);
        self.bodies.extend_from_slice(body);
        self.ends.push(self.bodies.len());
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.digests
            .chunks_exact(self.digest_len)
            .zip(starts.zip(&self.ends))
            .map(|(digest, (start, end))| (digest, &self.bodies[start..*end]))
    }
}

/// Checks an answer to `POST /digest` for `digest`; returns the commitment it attests.
fn verify(digest: &[u8], body: &[u8], uri: Option<&str>) -> Result<[u8; COMMITMENT_LEN], Fail> {
    let timestamp =
        Timestamp::from_bytes(body, digest.to_vec()).map_err(|_| Fail::BadAnswer("decode"))?;
    let attestations = timestamp.all_attestations();
    let [(msg, attestation)] = attestations.as_slice() else {
        return Err(Fail::BadAnswer("not exactly one attestation"));
    };
    let Attestation::Pending { uri: got } = attestation else {
        return Err(Fail::BadAnswer("not a pending attestation"));
    };
    let commitment = <[u8; COMMITMENT_LEN]>::try_from(*msg)
        .map_err(|_| Fail::BadAnswer("commitment not 44 bytes"))?;
    if uri.is_some_and(|want| want != got) {
        return Err(Fail::BadAnswer("wrong calendar uri"));
    }
    Ok(commitment)
}

/// What one verifier found.
#[derive(Default)]
struct Verified {
    ok: u64,
    failures: Failures,
    /// A uniform sample (reservoir) of the commitments it saw.
    sample: Vec<[u8; COMMITMENT_LEN]>,
}

/// Verifies batches until every sender is gone; keeps up to `keep` commitments.
fn verifier(mut rx: mpsc::Receiver<Batch>, uri: Option<String>, keep: usize) -> Verified {
    let mut verified = Verified::default();
    let mut rng = StdRng::from_entropy();
    while let Some(batch) = rx.blocking_recv() {
        for (digest, body) in batch.iter() {
            match verify(digest, body, uri.as_deref()) {
                Ok(commitment) => {
                    verified.ok += 1;
                    reservoir_add(
                        &mut verified.sample,
                        keep,
                        verified.ok,
                        commitment,
                        &mut rng,
                    );
                }
                Err(fail) => verified.failures.add(fail),
            }
        }
    }
    verified
}

/// Algorithm R: keeps a uniform sample of `keep` out of the `seen` items offered so far.
fn reservoir_add<T>(sample: &mut Vec<T>, keep: usize, seen: u64, item: T, rng: &mut impl Rng) {
    if sample.len() < keep {
        sample.push(item);
        return;
    }
    let slot = rng.gen_range(0..seen);
    if let Some(place) = usize::try_from(slot).ok().and_then(|s| sample.get_mut(s)) {
        *place = item;
    }
}

// ---------------------------------------------------------------------------------------------
// Load

/// Shared request budget: a deadline and a request count.
struct Budget {
    deadline: Instant,
    limit: u64,
    issued: AtomicU64,
}

impl Budget {
    fn take(&self) -> bool {
        Instant::now() < self.deadline && self.issued.fetch_add(1, Ordering::Relaxed) < self.limit
    }
}

/// What one worker measured.
#[derive(Default)]
struct WorkerStats {
    requests: u64,
    connections: u64,
    latency: Histogram,
    failures: Failures,
}

/// Everything the load phase found, after verification.
struct LoadReport {
    elapsed: Duration,
    verify_lag: Duration,
    requests: u64,
    connections: u64,
    acknowledged: u64,
    latency: Histogram,
    failures: Failures,
    sample: Vec<[u8; COMMITMENT_LEN]>,
}

async fn run_load(config: &Arc<Config>) -> Result<LoadReport> {
    let start = Instant::now();
    let budget = Arc::new(Budget {
        deadline: start + config.deadline_after,
        limit: config.requests,
        issued: AtomicU64::new(0),
    });
    let (senders, verifiers) = start_verifiers(config);
    let workers: Vec<_> = (0..config.concurrency)
        .map(|i| {
            let tx = senders[i % senders.len()].clone();
            tokio::spawn(worker(config.clone(), budget.clone(), tx))
        })
        .collect();
    drop(senders);
    let mut stats = WorkerStats::default();
    for handle in workers {
        let one = handle.await.context("load worker panicked")?;
        stats.requests += one.requests;
        stats.connections += one.connections;
        stats.latency.merge(&one.latency);
        stats.failures.merge(&one.failures);
    }
    let elapsed = start.elapsed();
    let verified = join_verifiers(verifiers, config.timestamp_check).await?;
    Ok(LoadReport {
        elapsed,
        verify_lag: start.elapsed() - elapsed,
        requests: stats.requests,
        connections: stats.connections,
        acknowledged: verified.ok,
        latency: stats.latency,
        failures: {
            let mut all = stats.failures;
            all.merge(&verified.failures);
            all
        },
        sample: verified.sample,
    })
}

type VerifierHandle = std::thread::JoinHandle<Verified>;

fn start_verifiers(config: &Config) -> (Vec<mpsc::Sender<Batch>>, Vec<VerifierHandle>) {
    (0..config.verifiers)
        .map(|_| {
            let (tx, rx) = mpsc::channel(BATCHES_QUEUED);
            let uri = config.uri.clone();
            let keep = config.timestamp_check;
            (tx, std::thread::spawn(move || verifier(rx, uri, keep)))
        })
        .unzip()
}

/// Waits for the verifiers and merges what they found, keeping `keep` sampled commitments.
async fn join_verifiers(handles: Vec<VerifierHandle>, keep: usize) -> Result<Verified> {
    let joined = tokio::task::spawn_blocking(move || {
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("verifier panicked")))
            .collect::<Result<Vec<_>>>()
    })
    .await
    .context("joining verifiers")??;
    let mut all = Verified::default();
    for one in joined {
        all.ok += one.ok;
        all.failures.merge(&one.failures);
        all.sample.extend(one.sample);
    }
    all.sample.shuffle(&mut StdRng::from_entropy());
    all.sample.truncate(keep);
    Ok(all)
}

/// One connection slot: requests digests until the budget runs out.
async fn worker(config: Arc<Config>, budget: Arc<Budget>, tx: mpsc::Sender<Batch>) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut conn = None;
    let mut request = config.digest_head();
    let head_len = request.len();
    let mut rng = StdRng::from_entropy();
    let mut batch = Batch::new(config.digest_len);
    while budget.take() {
        request.truncate(head_len);
        request.resize(head_len + config.digest_len, 0);
        rng.fill_bytes(&mut request[head_len..]);
        stats.requests += 1;
        let started = Instant::now();
        let exchange = post(&mut conn, &config, &request, &mut stats);
        match tokio::time::timeout(config.timeout, exchange).await {
            Ok(Ok(close)) => {
                stats.latency.record(started.elapsed());
                if let Some(answered) = &conn {
                    batch.push(&request[head_len..], &answered.body);
                }
                if close {
                    conn = None;
                }
            }
            Ok(Err(fail)) => on_failure(&mut stats, &mut conn, fail).await,
            Err(_) => on_failure(&mut stats, &mut conn, Fail::Timeout).await,
        }
        if batch.len() >= BATCH_LEN {
            send_batch(&tx, &mut batch, config.digest_len).await;
        }
    }
    send_batch(&tx, &mut batch, config.digest_len).await;
    stats
}

async fn on_failure(stats: &mut WorkerStats, conn: &mut Option<Conn<TcpStream>>, fail: Fail) {
    stats.failures.add(fail);
    *conn = None;
    if fail == Fail::Connect {
        tokio::time::sleep(CONNECT_BACKOFF).await;
    }
}

async fn send_batch(tx: &mpsc::Sender<Batch>, batch: &mut Batch, digest_len: usize) {
    if batch.len() > 0 {
        let full = std::mem::replace(batch, Batch::new(digest_len));
        // The verifier lives until every sender is gone, so this cannot fail.
        let _ = tx.send(full).await;
    }
}

/// Posts one digest, connecting first if needed; on success the answer is in the connection's
/// body. Returns whether the server will close the connection.
async fn post(
    slot: &mut Option<Conn<TcpStream>>,
    config: &Config,
    request: &[u8],
    stats: &mut WorkerStats,
) -> Result<bool, Fail> {
    if slot.is_none() || config.new_connection {
        *slot = Some(Conn::connect(config.addr).await?);
        stats.connections += 1;
    }
    let conn = slot.as_mut().ok_or(Fail::Connect)?;
    let head = conn.round_trip(request).await?;
    match head.status {
        200 => Ok(head.close),
        status => Err(Fail::Status(status)),
    }
}

impl LoadReport {
    /// Prints the report; `true` if nothing failed.
    fn print(&self, config: &Config) -> bool {
        let secs = self.elapsed.as_secs_f64();
        let rate = self.acknowledged as f64 / secs;
        let lat = &self.latency;
        let errors = self.failures.total();
        println!(
            "target        {} ({}, concurrency {})",
            config.host,
            config.mode(),
            config.concurrency
        );
        println!(
            "requests      {} in {secs:.2} s over {} connections",
            self.requests, self.connections
        );
        println!(
            "acknowledged  {} digests, {rate:.0} digests/s (every answer verified; {:.2} s after load)",
            self.acknowledged,
            self.verify_lag.as_secs_f64()
        );
        println!(
            "latency       p50 {}  p99 {}  p99.9 {}  max {}",
            fmt_micros(lat.quantile(0.5)),
            fmt_micros(lat.quantile(0.99)),
            fmt_micros(lat.quantile(0.999)),
            fmt_micros(lat.max)
        );
        println!("errors        {errors}");
        self.failures.print();
        println!(
            "summary mode={} concurrency={} requests={} acked={} rate={rate:.0} p50_us={} \
             p99_us={} p999_us={} max_us={} errors={errors}",
            config.mode(),
            config.concurrency,
            self.requests,
            self.acknowledged,
            lat.quantile(0.5),
            lat.quantile(0.99),
            lat.quantile(0.999),
            lat.max
        );
        errors == 0 && self.acknowledged > 0 && self.acknowledged == self.requests
    }
}

// ---------------------------------------------------------------------------------------------
// GET /timestamp check

struct CheckReport {
    wanted: usize,
    checked: u64,
    elapsed: Duration,
    latency: Histogram,
    failures: Failures,
}

async fn run_timestamp_check(
    config: &Arc<Config>,
    sample: Vec<[u8; COMMITMENT_LEN]>,
    wanted: usize,
) -> CheckReport {
    let sample = Arc::new(sample);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..config.concurrency.min(sample.len()))
        .map(|_| tokio::spawn(check_worker(config.clone(), sample.clone(), next.clone())))
        .collect();
    let mut report = CheckReport {
        wanted,
        checked: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::default(),
        failures: Failures::default(),
    };
    for task in tasks {
        match task.await {
            Ok(stats) => report.add(&stats),
            Err(_) => report
                .failures
                .add(Fail::BadAnswer("check worker panicked")),
        }
    }
    report.elapsed = start.elapsed();
    report
}

async fn check_worker(
    config: Arc<Config>,
    sample: Arc<Vec<[u8; COMMITMENT_LEN]>>,
    next: Arc<AtomicUsize>,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut conn = None;
    while let Some(commitment) = sample.get(next.fetch_add(1, Ordering::Relaxed)) {
        let request = format!(
            "GET /timestamp/{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: otsd-loadgen\r\n\r\n",
            hex::encode(commitment),
            config.host
        );
        stats.requests += 1;
        let started = Instant::now();
        let outcome =
            tokio::time::timeout(config.timeout, get_pending(&mut conn, &config, &request));
        match outcome.await.unwrap_or(Err(Fail::Timeout)) {
            Ok(()) => stats.latency.record(started.elapsed()),
            Err(fail) => on_failure(&mut stats, &mut conn, fail).await,
        }
    }
    stats
}

/// Asks for one commitment's timestamp and expects the pending answer.
async fn get_pending(
    slot: &mut Option<Conn<TcpStream>>,
    config: &Config,
    request: &str,
) -> Result<(), Fail> {
    if slot.is_none() {
        *slot = Some(Conn::connect(config.addr).await?);
    }
    let conn = slot.as_mut().ok_or(Fail::Connect)?;
    let head = conn.round_trip(request.as_bytes()).await?;
    let pending = find(&conn.body, PENDING_TEXT.as_bytes()).is_some();
    if head.close {
        *slot = None;
    }
    match (head.status, pending) {
        (404, true) => Ok(()),
        (404, false) => Err(Fail::BadAnswer("404 without the pending text")),
        (status, _) => Err(Fail::Status(status)),
    }
}

impl CheckReport {
    fn add(&mut self, stats: &WorkerStats) {
        self.checked += stats.requests;
        self.latency.merge(&stats.latency);
        self.failures.merge(&stats.failures);
    }

    /// Prints the report; `true` if every sampled commitment was pending.
    fn print(&self) -> bool {
        let rate = self.checked as f64 / self.elapsed.as_secs_f64();
        let errors = self.failures.total();
        println!(
            "timestamp     {} of {} commitments checked, {rate:.0}/s, p50 {}  p99 {}",
            self.checked,
            self.wanted,
            fmt_micros(self.latency.quantile(0.5)),
            fmt_micros(self.latency.quantile(0.99))
        );
        println!("check errors  {errors}");
        self.failures.print();
        println!(
            "summary mode=timestamp-check checked={} rate={rate:.0} errors={errors}",
            self.checked
        );
        errors == 0 && self.checked as usize == self.wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otsd::ots::answer::{nonce_leaf, write_answer, RoundTail};
    use otsd::ots::MerkleTree;

    const URI: &str = "http://127.0.0.1:14788";

    /// Answers for `digests` in one round, as the calendar builds them.
    fn answers(digests: &[[u8; 32]]) -> Vec<Vec<u8>> {
        let nonce = [7u8; 16];
        let leaves = digests.iter().map(|d| nonce_leaf(d, &nonce)).collect();
        let tree = MerkleTree::new(leaves).expect("leaves");
        let pending = Attestation::pending(URI).expect("uri");
        let tail = RoundTail::new(1_700_000_000, &[9u8; 8], &pending);
        (0..digests.len())
            .map(|i| {
                let mut out = Vec::new();
                write_answer(&mut out, &nonce, tree.path(i).expect("leaf"), &tail);
                out
            })
            .collect()
    }

    #[test]
    fn verify_accepts_calendar_answers_and_returns_the_commitment() {
        let digests = [[1u8; 32], [2u8; 32], [3u8; 32]];
        for (digest, body) in digests.iter().zip(answers(&digests)) {
            let commitment = verify(digest, &body, Some(URI)).expect("valid answer");
            assert_eq!(&commitment[..4], &1_700_000_000u32.to_be_bytes());
            assert_eq!(&commitment[36..], &[9u8; 8]);
        }
    }

    #[test]
    fn verify_rejects_bad_answers() {
        let digests = [[1u8; 32], [2u8; 32]];
        let body = &answers(&digests)[0];
        assert_eq!(
            verify(&digests[0], body, Some("http://elsewhere")),
            Err(Fail::BadAnswer("wrong calendar uri"))
        );
        assert_eq!(
            verify(&digests[0], &body[..body.len() - 1], None),
            Err(Fail::BadAnswer("decode"))
        );
        assert_eq!(
            verify(&digests[0], b"", None),
            Err(Fail::BadAnswer("decode"))
        );
    }

    #[test]
    fn verify_rejects_answers_without_a_commitment_of_44_bytes() {
        let mut body = Vec::new();
        let pending = Attestation::pending(URI).expect("uri");
        otsd::ots::path::serialize_path(&[otsd::ots::Op::Sha256], &pending, &mut body);
        assert_eq!(
            verify(&[1u8; 32], &body, None),
            Err(Fail::BadAnswer("commitment not 44 bytes"))
        );
    }

    #[test]
    fn batches_hand_back_what_was_pushed() {
        let mut batch = Batch::new(2);
        batch.push(b"ab", b"first");
        batch.push(b"cd", b"");
        batch.push(b"ef", b"third");
        let items: Vec<_> = batch.iter().collect();
        assert_eq!(
            items,
            vec![
                (&b"ab"[..], &b"first"[..]),
                (&b"cd"[..], &b""[..]),
                (&b"ef"[..], &b"third"[..])
            ]
        );
    }

    #[test]
    fn histogram_buckets_cover_their_values() {
        for value in [
            0, 1, 1023, 1024, 1025, 2047, 2048, 5_000, 123_456, 10_000_000,
        ] {
            let bucket = bucket_of(value);
            assert!(bucket_high(bucket) >= value, "{value}");
            assert!(bucket == 0 || bucket_high(bucket - 1) < value, "{value}");
            assert!(bucket_high(bucket) - value <= value / 512, "{value}");
        }
    }

    #[test]
    fn histogram_quantiles() {
        let mut hist = Histogram::default();
        for micros in 1..=1000u64 {
            hist.record(Duration::from_micros(micros));
        }
        assert_eq!(hist.quantile(0.5), 500);
        assert_eq!(hist.quantile(0.99), 990);
        assert_eq!(hist.quantile(1.0), 1000);
        let mut other = Histogram::default();
        other.record(Duration::from_millis(50));
        hist.merge(&other);
        assert_eq!(hist.max, 50_000);
        assert_eq!(hist.quantile(1.0), 50_000);
    }

    #[test]
    fn parses_heads() {
        let head = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\ncontent-type: x").unwrap();
        assert_eq!(
            head,
            Head {
                status: 200,
                framing: Framing::Length(12),
                close: false
            }
        );
        let head = parse_head(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close",
        )
        .unwrap();
        assert_eq!(
            head,
            Head {
                status: 404,
                framing: Framing::Chunked,
                close: true
            }
        );
        let head = parse_head(b"HTTP/1.0 204 No Content").unwrap();
        assert_eq!(
            head,
            Head {
                status: 204,
                framing: Framing::Length(0),
                close: true
            }
        );
        assert_eq!(parse_head(b"HTTP/2 200"), Err(Fail::Protocol));
        assert_eq!(parse_head(b"HTTP/1.1 abc"), Err(Fail::Protocol));
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nbroken"),
            Err(Fail::Protocol)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: -1"),
            Err(Fail::Protocol)
        );
    }

    /// Runs one round trip against a canned response arriving in small pieces.
    async fn exchange(response: &'static [u8]) -> (Result<Head, Fail>, Vec<u8>) {
        let (client, mut server) = tokio::io::duplex(64);
        let serve = tokio::spawn(async move {
            let mut request = [0u8; 4];
            server.read_exact(&mut request).await.expect("request");
            for piece in response.chunks(5) {
                server.write_all(piece).await.expect("response");
            }
        });
        let mut conn = Conn::new(client);
        let head = conn.round_trip(b"ping").await;
        serve.await.expect("server");
        (head, conn.body)
    }

    #[tokio::test]
    async fn reads_length_delimited_bodies() {
        let (head, body) = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").await;
        assert_eq!(head.map(|h| h.status), Ok(200));
        assert_eq!(body, b"hello");
    }

    #[tokio::test]
    async fn reads_chunked_bodies() {
        let response = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
                         7\r\nPending\r\n1;ext=1\r\n \r\n4\r\nconf\r\n0\r\nTrailer: x\r\n\r\n";
        let (head, body) = exchange(response).await;
        assert_eq!(head.map(|h| h.status), Ok(404));
        assert_eq!(body, b"Pending conf");
    }

    #[tokio::test]
    async fn reads_bodies_delimited_by_close() {
        let (head, body) = exchange(b"HTTP/1.0 200 OK\r\n\r\nuntil the end").await;
        assert_eq!(head.map(|h| h.close), Ok(true));
        assert_eq!(body, b"until the end");
    }

    #[tokio::test]
    async fn an_early_close_is_an_error() {
        let (head, _) = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort").await;
        assert_eq!(head, Err(Fail::Eof));
        let (head, _) = exchange(b"HTTP/1.1 200 OK\r\nContent-Le").await;
        assert_eq!(head, Err(Fail::Eof));
    }

    #[test]
    fn refuses_remote_targets_unless_allowed() {
        assert!(resolve("127.0.0.1:1", false).is_ok());
        assert!(resolve("[::1]:1", false).is_ok());
        assert!(resolve("192.0.2.1:1", false).is_err());
        assert!(resolve("192.0.2.1:1", true).is_ok());
    }

    #[test]
    fn reservoir_keeps_at_most_its_size() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut sample = Vec::new();
        for seen in 1..=1000u64 {
            reservoir_add(&mut sample, 10, seen, seen, &mut rng);
        }
        assert_eq!(sample.len(), 10);
        assert!(sample.iter().any(|&s| s > 10), "later items get a chance");
    }
}
