//! `mirror-bench`: the figures of live mirroring (`otsd --mirror-of`), measured on real `otsd`
//! processes over loopback HTTP (the `otsd` and `otsctl` binaries next to this one).
//!
//! 1. intake throughput of a primary without a mirror, then with a mirror following it
//!    (`--concurrency` keep-alive connections posting digests as fast as answered, `--seconds`
//!    each);
//! 2. mirror lag at each of `--rates` digests/s: paced load on the primary, and every 50 ms a probe
//!    digest whose commitment is then polled on the mirror (`GET /timestamp`, every millisecond)
//!    until the mirror serves it; lag = first served on the mirror - acknowledged by the primary;
//!    p50, p99 and max, with the rate actually reached;
//! 3. the primary's CPU cost of a follower: at `--cost-rate` digests/s (paced, so both runs do the
//!    same work), the CPU seconds the primary process used per acknowledged digest without a
//!    mirror, then with a mirror following it (and the mirror's own CPU). On a machine where the
//!    mirror shares the primary's cores, the throughput runs of (1) measure the contest for those
//!    cores; this measures what a follower costs the primary itself, which is what remains when the
//!    mirror runs on its own host, as deployed. A CPU-bound primary's intake ceiling scales with
//!    1 / (CPU per digest), so the change in that figure is the intake change a follower causes;
//! 4. with `--catchup-mib N`: a calendar whose log holds at least N MiB, written through the real
//!    writer and round sealer, served by a primary; a mirror starts from nothing and the time until
//!    it holds the whole log gives MiB/s and events/s.
//!
//! `cargo build --release --bins && target/release/mirror-bench [--dir D] [--seconds S]
//! [--concurrency C] [--rates 1000,20000] [--cost-rate 5000] [--catchup-mib 1024]
//! [--primary-cpus LIST] [--mirror-nice N] [--repeat N]`. Everything lives under `--dir` (default: a temporary directory),
//! removed at the end unless `--keep`.
//!
//! `--primary-cpus 0` starts the primary under `taskset -c 0`. Run the bench itself under
//! `taskset -c 1` and the mirror and the load generator share core 1 while the primary has core
//! 0 to itself: on a two-core machine this is the closest stand-in for a mirror on its own host.
//! `--mirror-nice 19` starts the mirror under `nice -n 19`: it then takes only the cycles the
//! load generator leaves on their shared core, so the intake runs measure what following costs
//! the primary (the mirror's requests), not the load generator's lost cycles. Each paired run
//! with the mirror says how long it took to catch up after the load stopped, which shows it was
//! following, not starved.
//! `--repeat N` (N > 1) adds N pairs of intake runs in alternating order, the mirror paused
//! (SIGSTOP) for the runs without it, and prints the medians.
//! Each intake line also says how many cores the primary used, so a run where the load generator
//! (not the primary) was the limit shows itself.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use otsd::aggregator::RoundSealer;
use otsd::calendar::dir::CalendarDir;
use otsd::events::codec;
use otsd::log::{LogKey, Writer, WriterOptions};
use rand::RngCore;

/// Most connections.
const MAX_CONCURRENCY: usize = 1024;
/// Longest phase.
const MAX_SECONDS: u64 = 3600;
/// Largest response read.
const MAX_RESPONSE: usize = 1 << 20;
/// Time between lag probes.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// Longest wait for one probe to appear on the mirror.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    dir: Option<PathBuf>,
    seconds: u64,
    concurrency: usize,
    rates: Vec<u64>,
    catchup_mib: u64,
    cost_rate: u64,
    primary_cpus: Option<String>,
    mirror_nice: Option<i32>,
    repeat: usize,
    keep: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        dir: None,
        seconds: 10,
        concurrency: 64,
        rates: vec![1000, 20000],
        catchup_mib: 0,
        cost_rate: 5000,
        primary_cpus: None,
        mirror_nice: None,
        repeat: 1,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            "--seconds" => a.seconds = value()?.parse()?,
            "--concurrency" => a.concurrency = value()?.parse()?,
            "--rates" => {
                a.rates = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--catchup-mib" => a.catchup_mib = value()?.parse()?,
            "--cost-rate" => a.cost_rate = value()?.parse()?,
            "--primary-cpus" => a.primary_cpus = Some(value()?),
            "--repeat" => a.repeat = value()?.parse()?,
            "--mirror-nice" => a.mirror_nice = Some(value()?.parse()?),
            "--keep" => a.keep = true,
            "-h" | "--help" => {
                let doc = include_str!("mirror-bench.rs");
                for line in doc.lines().take_while(|l| l.starts_with("//!")) {
                    println!(
                        "{}",
                        line.trim_start_matches("//!")
                            .strip_prefix(' ')
                            .unwrap_or("")
                    );
                }
                std::process::exit(0);
            }
            other => {
                bail!("unknown argument {other}; see the doc comment of tools/mirror-bench.rs")
            }
        }
    }
    if !(1..=MAX_CONCURRENCY).contains(&a.concurrency) || !(1..=MAX_SECONDS).contains(&a.seconds) {
        bail!("--concurrency 1..={MAX_CONCURRENCY}, --seconds 1..={MAX_SECONDS}");
    }
    Ok(a)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let root = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&root)?;
    println!("mirror-bench in {}", root.display());
    throughput_and_lag(&args, &root.join("live"))?;
    if args.catchup_mib > 0 {
        catch_up(&args, &root.join("catchup"))?;
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(root.join("live"));
        let _ = std::fs::remove_dir_all(root.join("catchup"));
    }
    Ok(())
}

fn throughput_and_lag(args: &Args, root: &Path) -> anyhow::Result<()> {
    let port = free_port()?;
    let cal = init_calendar(root, port)?;
    let primary = Proc::start_on(
        &cal,
        &["--rpc-port", &port.to_string()],
        args.primary_cpus.as_deref(),
    )?;
    let (alone, cores) = hammer_measured(&primary, args)?;
    println!(
        "intake without a mirror: {:.0} digests/s ({} in {} s, {} connections; the primary used {cores:.2} cores)",
        alone.0, alone.1, args.seconds, args.concurrency
    );
    let cost_alone = cpu_cost(&primary, None, args)?;
    let mirror_dir = root.join("mirror");
    let url = format!("http://127.0.0.1:{port}");
    let nice = args.mirror_nice.map(|n| n.to_string());
    let mirror = Proc::start_with(
        &mirror_dir,
        &["--mirror-of", &url, "--rpc-port", "0"],
        None,
        nice.as_deref(),
    )?;
    wait_caught_up(primary.addr, mirror.addr, Duration::from_secs(600))?;
    let cost_with = cpu_cost(&primary, Some(&mirror), args)?;
    println!(
        "primary CPU per digest at {} digests/s: {:.1} us without a mirror ({:.0} reached), \
         {:.1} us with a mirror following ({:.0} reached): {:+.1}% CPU, so an intake ceiling {:+.1}%; \
         the mirror itself used {:.1} us per digest",
        args.cost_rate,
        cost_alone.primary_us,
        cost_alone.rate,
        cost_with.primary_us,
        cost_with.rate,
        (cost_with.primary_us / cost_alone.primary_us - 1.0) * 100.0,
        (cost_alone.primary_us / cost_with.primary_us - 1.0) * 100.0,
        cost_with.mirror_us,
    );
    wait_caught_up(primary.addr, mirror.addr, Duration::from_secs(600))?;
    let (with, cores) = hammer_measured(&primary, args)?;
    println!(
        "intake with a mirror following: {:.0} digests/s ({:+.1}%; the primary used {cores:.2} cores)",
        with.0,
        (with.0 / alone.0 - 1.0) * 100.0
    );
    if args.repeat > 1 {
        paired_intake(&primary, &mirror, args)?;
    }
    wait_caught_up(primary.addr, mirror.addr, Duration::from_secs(600))?;
    for &rate in &args.rates {
        let lags = Arc::new(Mutex::new(Vec::new()));
        let probes = {
            let lags = lags.clone();
            let (p, m) = (primary.addr, mirror.addr);
            let stop = Arc::new(AtomicBool::new(false));
            let s2 = stop.clone();
            let t = std::thread::spawn(move || probe(p, m, &s2, &lags));
            (t, stop)
        };
        let load = hammer(primary.addr, args.concurrency, args.seconds, Some(rate))?;
        probes.1.store(true, Ordering::Release);
        probes
            .0
            .join()
            .map_err(|_| anyhow::anyhow!("probe thread"))??;
        let lags = std::mem::take(&mut *lags.lock().map_err(|_| anyhow::anyhow!("lags"))?);
        println!(
            "lag at {rate} digests/s asked ({:.0} reached): {} ({} probes)",
            load.0,
            percentiles(lags.clone()),
            lags.len()
        );
    }
    mirror.stop()?;
    primary.stop()?;
    Ok(())
}

/// `--repeat` pairs of intake runs on the same primary, the order alternating between pairs:
/// without a mirror (the mirror stopped with SIGSTOP, so it sends nothing) and with it following
/// (SIGCONT, caught up first). Prints each pair and the medians: single runs on a shared machine
/// swing by more than the effect measured.
fn paired_intake(primary: &Proc, mirror: &Proc, args: &Args) -> anyhow::Result<()> {
    let signal = |sig: &str| -> anyhow::Result<()> {
        let ok = Command::new("kill")
            .args([sig, &mirror.child.id().to_string()])
            .status()?
            .success();
        anyhow::ensure!(ok, "kill {sig} of the mirror failed");
        Ok(())
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for pair in 0..args.repeat {
        let run = |following: bool| -> anyhow::Result<f64> {
            if following {
                signal("-CONT")?;
                wait_caught_up(primary.addr, mirror.addr, Duration::from_secs(600))?;
            } else {
                signal("-STOP")?;
            }
            let ((rate, _), cores) = hammer_measured(primary, args)?;
            let behind = if following {
                let t = Instant::now();
                wait_caught_up(primary.addr, mirror.addr, Duration::from_secs(600))?;
                format!(
                    "; the mirror caught up {:.0} ms after",
                    t.elapsed().as_secs_f64() * 1e3
                )
            } else {
                String::new()
            };
            println!(
                "  pair {pair}: {} a mirror: {rate:.0} digests/s (the primary used {cores:.2} cores{behind})",
                if following { "with" } else { "without" }
            );
            Ok(rate)
        };
        if pair % 2 == 0 {
            without.push(run(false)?);
            with.push(run(true)?);
        } else {
            with.push(run(true)?);
            without.push(run(false)?);
        }
    }
    signal("-CONT")?;
    wait_caught_up(primary.addr, mirror.addr, Duration::from_secs(600))?;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let (a, b) = (median(without), median(with));
    println!(
        "intake over {} alternating pairs, medians: {a:.0} digests/s without a mirror, {b:.0} with one following ({:+.1}%)",
        args.repeat,
        (b / a - 1.0) * 100.0
    );
    Ok(())
}

/// An unpaced [`hammer`] run on `primary`, and the cores the primary used meanwhile (CPU
/// seconds / wall seconds).
fn hammer_measured(primary: &Proc, args: &Args) -> anyhow::Result<((f64, u64), f64)> {
    let (c0, t0) = (cpu_seconds(primary.child.id())?, Instant::now());
    let r = hammer(primary.addr, args.concurrency, args.seconds, None)?;
    let cores = (cpu_seconds(primary.child.id())? - c0) / t0.elapsed().as_secs_f64();
    Ok((r, cores))
}

/// CPU per acknowledged digest during one paced run.
struct Cost {
    primary_us: f64,
    mirror_us: f64,
    rate: f64,
}

/// Paced load at `--cost-rate` for `--seconds`, and the CPU time the primary (and the mirror, if
/// any) used meanwhile, per acknowledged digest.
fn cpu_cost(primary: &Proc, mirror: Option<&Proc>, args: &Args) -> anyhow::Result<Cost> {
    let cpu = |p: Option<&Proc>| p.map_or(Ok(0.0), |p| cpu_seconds(p.child.id()));
    let (p0, m0) = (cpu(Some(primary))?, cpu(mirror)?);
    let (rate, n) = hammer(
        primary.addr,
        args.concurrency,
        args.seconds,
        Some(args.cost_rate),
    )?;
    if let Some(m) = mirror {
        wait_caught_up(primary.addr, m.addr, Duration::from_secs(600))?;
    }
    let (p1, m1) = (cpu(Some(primary))?, cpu(mirror)?);
    let per = |s: f64| s / n.max(1) as f64 * 1e6;
    Ok(Cost {
        primary_us: per(p1 - p0),
        mirror_us: per(m1 - m0),
        rate,
    })
}

/// User + system CPU seconds a process has used (`/proc/PID/stat`, fields 14 and 15).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after it follow its `)`.
    let rest = stat.rsplit_once(')').context("/proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).context("utime")?.parse::<f64>()? + f.get(12).context("stime")?.parse::<f64>()?;
    // /proc reports clock ticks of USER_HZ, which the Linux ABI fixes at 100.
    Ok(ticks / 100.0)
}

/// `otsctl init` a calendar whose URI is its own address.
fn init_calendar(root: &Path, port: u16) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(root)?;
    let cal = root.join("primary");
    let ok = Command::new(sibling("otsctl")?)
        .arg("init")
        .arg(&cal)
        .args(["--uri", &format!("http://127.0.0.1:{port}")])
        .args([
            "--donation-addr",
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
        ])
        .stdout(Stdio::null())
        .status()?
        .success();
    if !ok {
        bail!("otsctl init {} failed", cal.display());
    }
    Ok(cal)
}

/// `--concurrency` connections posting digests for `seconds`, paced to `rate` per second in
/// total if given; returns (digests/s, digests).
fn hammer(
    addr: SocketAddr,
    conns: usize,
    seconds: u64,
    rate: Option<u64>,
) -> anyhow::Result<(f64, u64)> {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let interval = rate.map(|r| Duration::from_secs_f64(conns as f64 / r.max(1) as f64));
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut conn = Conn::open(addr)?;
                let mut next = Instant::now();
                while Instant::now() < end {
                    if let Some(iv) = interval {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next = next.max(now - iv) + iv;
                    }
                    let (status, _) = conn.post_digest(&random_digest())?;
                    if status == 200 {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("load thread"))??;
    }
    let n = done.load(Ordering::Relaxed);
    Ok((n as f64 / start.elapsed().as_secs_f64(), n))
}

/// Every [`PROBE_EVERY`]: a digest to the primary, then its commitment polled on the mirror.
fn probe(
    primary: SocketAddr,
    mirror: SocketAddr,
    stop: &AtomicBool,
    lags: &Mutex<Vec<u64>>,
) -> anyhow::Result<()> {
    let mut p = Conn::open(primary)?;
    let mut m = Conn::open(mirror)?;
    while !stop.load(Ordering::Acquire) {
        let digest = random_digest();
        let (status, body) = p.post_digest(&digest)?;
        let acked = Instant::now();
        if status != 200 {
            continue;
        }
        let ts = otsd::ots::Timestamp::from_bytes(&body, digest.to_vec())
            .map_err(|e| anyhow::anyhow!("answer: {e:?}"))?;
        let atts = ts.all_attestations();
        let path = format!("/timestamp/{}", hex::encode(atts[0].0));
        loop {
            let (status, body) = m.get(&path)?;
            if status == 404 && body.starts_with(b"Pending") {
                break;
            }
            if acked.elapsed() > PROBE_TIMEOUT {
                bail!("the mirror did not serve a commitment within {PROBE_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let lag = acked.elapsed().as_micros() as u64;
        lags.lock().map_err(|_| anyhow::anyhow!("lags"))?.push(lag);
        std::thread::sleep(PROBE_EVERY);
    }
    Ok(())
}

fn percentiles(mut us: Vec<u64>) -> String {
    if us.is_empty() {
        return "no probes".into();
    }
    us.sort_unstable();
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

/// A log of at least `--catchup-mib` MiB; a mirror follows it from nothing.
fn catch_up(args: &Args, root: &Path) -> anyhow::Result<()> {
    let port = free_port()?;
    let cal = init_calendar(root, port)?;
    let t = Instant::now();
    let (events, bytes) = write_log(&cal, args.catchup_mib << 20)?;
    println!(
        "catch-up: wrote a log of {} MiB, {events} events, in {:.1} s",
        bytes >> 20,
        t.elapsed().as_secs_f64()
    );
    let primary = Proc::start(&cal, &["--rpc-port", &port.to_string()])?;
    let url = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    let mirror = Proc::start(
        &root.join("mirror"),
        &["--mirror-of", &url, "--rpc-port", "0"],
    )?;
    wait_caught_up(primary.addr, mirror.addr, Duration::from_secs(MAX_SECONDS))?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "catch-up from nothing: {} MiB in {secs:.1} s = {:.1} MiB/s, {:.0} events/s (mirror start \
         included)",
        bytes >> 20,
        (bytes >> 20) as f64 / secs,
        events as f64 / secs
    );
    mirror.stop()?;
    primary.stop()?;
    Ok(())
}

/// Writes rounds of 1000 random digests through the real writer until the log holds `target`
/// bytes; returns (events, bytes).
fn write_log(cal: &Path, target: u64) -> anyhow::Result<(u64, u64)> {
    let dir = CalendarDir::load(cal)?;
    let key = LogKey::derive(&dir.hmac_key);
    let (mut writer, _) = Writer::open(&dir.log_dir(), key, WriterOptions::default())?;
    let mut sealer = RoundSealer::new(&dir.uri, &dir.hmac_key).context("uri")?;
    let (mut round, mut events, mut bytes) = (0u64, 0u64, 0u64);
    let time = 1_763_900_000u32;
    while bytes < target {
        let mut group = Vec::new();
        for _ in 0..64 {
            let digests: Vec<[u8; 32]> = (0..1000).map(|_| random_digest()).collect();
            let refs: Vec<&[u8]> = digests.iter().map(|d| &d[..]).collect();
            let sealed = sealer.seal(round, time + (round / 100) as u32, &refs);
            let batch = sealed
                .events
                .iter()
                .map(codec::encode)
                .collect::<Result<Vec<_>, _>>()?;
            bytes += batch.iter().map(|e| e.len() as u64 + 4).sum::<u64>() + 88;
            events += batch.len() as u64;
            group.push(batch);
            round += 1;
        }
        writer.append_batches(&group)?;
    }
    drop(writer);
    let on_disk = otsd::log::segment::list_segments(&dir.log_dir())?
        .iter()
        .map(|&s| {
            std::fs::metadata(dir.log_dir().join(otsd::log::segment::segment_name(s)))
                .map_or(0, |m| m.len())
        })
        .sum::<u64>();
    Ok((events, on_disk.max(bytes)))
}

fn wait_caught_up(primary: SocketAddr, mirror: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let want = next_seq(primary)?;
    let t = Instant::now();
    while next_seq(mirror)? < want {
        if t.elapsed() > limit {
            bail!("the mirror did not catch up within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn next_seq(addr: SocketAddr) -> anyhow::Result<u64> {
    let mut c = Conn::open(addr)?;
    let (_, body) = c.request("GET / HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n")?;
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    v["log_next_seq"].as_u64().context("log_next_seq")
}

fn random_digest() -> [u8; 32] {
    let mut d = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut d);
    d
}

/// A keep-alive HTTP/1.1 connection with `Content-Length` bodies.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Conn {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    fn post_digest(&mut self, digest: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut req = format!(
            "POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            digest.len()
        )
        .into_bytes();
        req.extend_from_slice(digest);
        self.writer.write_all(&req)?;
        self.read_response()
    }

    fn get(&mut self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        self.request(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
    }

    fn request(&mut self, head: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        self.writer.write_all(head.as_bytes())?;
        self.read_response()
    }

    fn read_response(&mut self) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse()?;
                }
            }
        }
        if len > MAX_RESPONSE {
            bail!("response of {len} bytes");
        }
        let mut body = vec![0u8; len];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

/// An `otsd` child process (the binary next to this one) and the address it listens on.
struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Proc {
    fn start(cal: &Path, extra: &[&str]) -> anyhow::Result<Proc> {
        Proc::start_on(cal, extra, None)
    }

    /// Starts `otsd`, under `taskset -c cpus` when `cpus` is given (taskset execs otsd, so the
    /// child's pid is otsd's).
    fn start_on(cal: &Path, extra: &[&str], cpus: Option<&str>) -> anyhow::Result<Proc> {
        Proc::start_with(cal, extra, cpus, None)
    }

    /// [`Proc::start_on`], under `nice -n nice` when given (nice execs too).
    fn start_with(
        cal: &Path,
        extra: &[&str],
        cpus: Option<&str>,
        nice: Option<&str>,
    ) -> anyhow::Result<Proc> {
        let otsd = sibling("otsd")?;
        let mut prefix: Vec<String> = Vec::new();
        if let Some(cpus) = cpus {
            prefix.extend(["taskset".into(), "-c".into(), cpus.into()]);
        }
        if let Some(nice) = nice {
            prefix.extend(["nice".into(), "-n".into(), nice.into()]);
        }
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&otsd);
                c
            }
            None => Command::new(&otsd),
        };
        let mut child = cmd
            .arg("-c")
            .arg(cal)
            .args(["--rpc-address", "127.0.0.1", "--btc-regtest", "-q"])
            .args(["--max-pending", "1000000"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().context("stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        // -q hides info lines; the address is found by asking the port file instead.
        let _ = &mut lines;
        let addr = find_addr(&mut child, cal, extra)?;
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Ok(Proc { child, addr })
    }

    fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the process answers on its `--rpc-port` (an explicit one) or, for port 0, finds
/// its listening port in /proc.
fn find_addr(child: &mut Child, _cal: &Path, extra: &[&str]) -> anyhow::Result<SocketAddr> {
    let port = extra
        .iter()
        .position(|a| *a == "--rpc-port")
        .and_then(|i| extra.get(i + 1))
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(0);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(600) {
        if let Some(status) = child.try_wait()? {
            bail!("otsd exited with {status}");
        }
        let port = if port == 0 {
            listening_port(child.id())?
        } else {
            Some(port)
        };
        if let Some(port) = port {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if TcpStream::connect(addr).is_ok() {
                return Ok(addr);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("otsd did not start listening")
}

/// The TCP port process `pid` listens on (from /proc/net/tcp and its file descriptors).
fn listening_port(pid: u32) -> anyhow::Result<Option<u16>> {
    let mut inodes = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let target = std::fs::read_link(fd?.path()).unwrap_or_default();
        let t = target.to_string_lossy();
        if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
            inodes.push(inode.to_owned());
        }
    }
    let tcp = std::fs::read_to_string("/proc/net/tcp")?;
    for line in tcp.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
            let port = f[1].rsplit(':').next().unwrap_or("0");
            return Ok(u16::from_str_radix(port, 16).ok());
        }
    }
    Ok(None)
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(name))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
