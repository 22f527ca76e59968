//! Prints replay, start-up, memory and proof-serving figures on a large calendar: the figures of
//! issues "replay and start-up on a log of 10 million digests" and "history at real scale".
//!
//! Creates (once, then reuses) a calendar in `--dir` whose log holds `--digests` digests in rounds
//! of `--round-size`, written through the real writer and round sealer. With `--tx-rounds` (the
//! default), its rounds are also covered by synthetic but valid stamping transactions: each a real
//! signed transaction whose OP_RETURN tip is the Merkle tip of its rounds, broadcast, confirmed in a
//! block with another transaction and buried under six blocks, so it is final; their sizes are
//! drawn between `--tx-rounds MIN,MAX` rounds (all but the newest rounds end up covered). Then:
//! - `otsctl replay` in process: the whole log read, verified, folded and written to
//!   `DIR/projection`; rounds/s and digests/s end to end;
//! - otsd start-up (the `otsd` binary next to this one) with the checkpoint, until it accepts
//!   connections, and its resident memory (VmRSS) then;
//! - `GET /timestamp` of random historical commitments: latency percentiles one at a time from a
//!   warm page cache, then cold (the calendar's files dropped from the page cache with
//!   `posix_fadvise(DONTNEED)`, which touches no one else's cache), and proofs/s from
//!   `--concurrency` keep-alive connections; RSS after that load;
//! - start-up without a checkpoint (a full replay that writes one), unless `--skip-full`.
//!
//! `cargo build --release && target/release/replay-bench [--dir D] [--digests N] [--round-size R]
//! [--tx-rounds MIN,MAX | --tx-rounds 0] [--build-threads T] [--build-only] [--skip-replay]
//! [--runs K] [--requests N] [--concurrency C] [--client-threads T] [--seconds S]
//! [--mixed-seconds S] [--skip-full]`
//!
//! The 100-million-round calendar (about 40 GB): build it once with
//! `replay-bench --dir D --digests 100000000 --round-size 1 --build-only`, then measure it (again)
//! with `replay-bench --dir D --digests 100000000 --round-size 1 --skip-replay --skip-full
//! --mixed-seconds 600` (the same `--digests`, `--round-size` and `--tx-rounds` find the calendar
//! already made; `--skip-replay` keeps its projection, so only the first measuring run replays).
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bitcoin::hashes::Hash as _;
use otsd::aggregator::RoundSealer;
use otsd::audit::replay::{replay, Output};
use otsd::calendar::dir::CalendarDir;
use otsd::events::{codec, Event};
use otsd::log::{LogKey, Writer, WriterOptions};
use otsd::ots::merkle::Hash;
use otsd::projection::checkpoint::PROJECTION_DIR;
use otsd::projection::table::{decode_round, ROUND_LEN};
use otsd::projection::tiptree;
use otsd::stamper::key::{Coin, StamperKey};
use rand::{Rng, RngCore, SeedableRng};

struct Args {
    dir: PathBuf,
    digests: u64,
    round_size: u64,
    /// Rounds per stamping transaction, drawn in this range; `None`: no transactions.
    tx_rounds: Option<(u64, u64)>,
    runs: u32,
    requests: usize,
    concurrency: usize,
    seconds: u64,
    skip_full: bool,
    /// Use the projection already in `--dir` instead of running `otsctl replay` first.
    skip_replay: bool,
    /// Threads sealing rounds while the log is written.
    build_threads: usize,
    /// Client threads of the concurrent GET load.
    client_threads: usize,
    /// Seconds of mixed load (GETs, statuses and POSTs) with RSS sampled; 0: none.
    mixed_seconds: u64,
    /// Stop after building the calendar.
    build_only: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        dir: std::env::temp_dir().join("otsd-replay-bench"),
        digests: 10_000_000,
        round_size: 24,
        tx_rounds: Some((20_000, 2_000_000)),
        runs: 3,
        requests: 20_000,
        concurrency: 64,
        seconds: 10,
        skip_full: false,
        skip_replay: false,
        build_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        client_threads: 1,
        mixed_seconds: 0,
        build_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--skip-full" => {
                args.skip_full = true;
                continue;
            }
            "--skip-replay" | "--reuse" => {
                args.skip_replay = true;
                continue;
            }
            "--build-only" => {
                args.build_only = true;
                continue;
            }
            _ => {}
        }
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value),
            "--digests" => args.digests = value.parse()?,
            "--round-size" => {
                args.round_size = value.parse()?;
                anyhow::ensure!(args.round_size >= 1, "--round-size must be at least 1");
            }
            "--tx-rounds" if value == "0" => args.tx_rounds = None,
            "--tx-rounds" => {
                let (lo, hi) = value
                    .split_once(',')
                    .context("--tx-rounds MIN,MAX (or 0)")?;
                args.tx_rounds = Some((lo.parse()?, hi.parse()?));
                anyhow::ensure!(
                    1 <= lo.parse::<u64>()? && lo.parse::<u64>()? <= hi.parse::<u64>()?,
                    "--tx-rounds MIN,MAX needs 1 <= MIN <= MAX"
                );
            }
            "--runs" => args.runs = value.parse()?,
            "--requests" => args.requests = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--build-threads" => args.build_threads = value.parse()?,
            "--client-threads" => {
                args.client_threads = value.parse()?;
                anyhow::ensure!(
                    args.client_threads >= 1,
                    "--client-threads must be at least 1"
                );
            }
            "--mixed-seconds" => args.mixed_seconds = value.parse()?,
            _ => anyhow::bail!(
                "unknown flag {flag} (--dir, --digests, --round-size, --tx-rounds, --runs, \
                 --requests, --concurrency, --client-threads, --seconds, --mixed-seconds, \
                 --build-threads, --build-only, --skip-replay, --skip-full)"
            ),
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = prepare(&args)?;
    println!("log: {} bytes", dir_size(&dir.log_dir())?);
    print_log_bytes_per_round(&dir)?;
    if args.build_only {
        return Ok(());
    }
    let proj = dir.path.join(PROJECTION_DIR);
    let reuse = args.skip_replay && proj.join("checkpoint").exists();
    if reuse {
        println!(
            "--skip-replay: using the projection already in {}",
            proj.display()
        );
    } else {
        let mut sink = |_: &otsd::log::Progress| {};
        let threads = ThreadCpu::start();
        let (_, s) = replay(&args.dir, &Output::InPlace, 6, &mut sink)?;
        let by_thread = threads.stop();
        println!(
            "otsctl replay (full, in process, writes the projection): {} events, {} digests, {} \
             rounds in {:.3} s: {:.2}M rounds/s, {:.2}M digests/s, {:.2}M events/s",
            s.events,
            s.digests,
            s.rounds,
            s.seconds,
            s.rounds as f64 / s.seconds / 1e6,
            s.digests_per_second / 1e6,
            s.events_per_second / 1e6
        );
        // The bound: the fold runs on one thread in round order, so its CPU time per round is
        // the least time a round can take; the whole replay's CPU time over two cores is another.
        let rounds = s.rounds.max(1) as f64;
        for (name, (user, sys)) in &by_thread {
            println!(
                "  thread {name}: {user:.2} s user + {sys:.2} s system = {:.3} us/round",
                (user + sys) / rounds * 1e6
            );
        }
        let total: f64 = by_thread.values().map(|(u, k)| u + k).sum();
        println!(
            "  all threads: {total:.2} s CPU = {:.3} us/round; on 2 cores at best {:.2}M rounds/s",
            total / rounds * 1e6,
            2.0 * rounds / total / 1e6
        );
    }
    let rounds = std::fs::metadata(proj.join("rounds")).map_or(0, |m| m.len()) / ROUND_LEN as u64;
    for name in ["rounds", "index", "digests", "txs", "proofs", "checkpoint"] {
        let len = std::fs::metadata(proj.join(name)).map_or(0, |m| m.len());
        println!(
            "projection/{name}: {len} bytes ({:.1} bytes/round, {:.1} bytes/digest)",
            len as f64 / rounds.max(1) as f64,
            len as f64 / args.digests.max(1) as f64
        );
    }
    let otsd = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join("otsd");
    for run in 1..=args.runs {
        let (t, rss) = start_up(&otsd, &dir, |_| Ok(()))?;
        println!(
            "otsd start-up with the checkpoint, run {run}: {:.3} s, RSS {:.1} MiB",
            t.as_secs_f64(),
            rss as f64 / 1024.0
        );
    }
    let sample = sample_commitments(&proj, args.requests)?;
    start_up(&otsd, &dir, |addr| {
        serve_figures(&args, &dir, addr, &sample)
    })?;
    if !args.skip_full {
        std::fs::remove_dir_all(&proj)?;
        let (t, rss) = start_up(&otsd, &dir, |_| Ok(()))?;
        println!(
            "otsd start-up without a checkpoint (full replay, writes one): {:.3} s, RSS {:.1} MiB",
            t.as_secs_f64(),
            rss as f64 / 1024.0
        );
        let (t, rss) = start_up(&otsd, &dir, |_| Ok(()))?;
        println!(
            "otsd start-up from that checkpoint: {:.3} s, RSS {:.1} MiB",
            t.as_secs_f64(),
            rss as f64 / 1024.0
        );
    }
    Ok(())
}

/// Where the log's bytes go, per round: record frames, event length prefixes, and the events by
/// kind (the stamping events are spread over all rounds); read from the log itself, so an older
/// log (written before the compact event encoding) is measured as it is.
fn print_log_bytes_per_round(dir: &CalendarDir) -> anyhow::Result<()> {
    let reader = otsd::log::Reader::open(&dir.log_dir(), None)?;
    let (mut frames, mut prefixes) = (0u64, 0u64);
    let mut kinds: std::collections::BTreeMap<&'static str, u64> = Default::default();
    let (mut rounds, mut failed) = (0u64, None);
    reader.for_each_record_from(0, |rec| {
        frames += (rec.len() - rec.payload.len()) as u64;
        prefixes += 4 * u64::from(rec.count);
        otsd::log::record::for_each_event(rec.payload, rec.count, |_, ev| {
            let kind = match codec::decode::<Event>(ev) {
                Ok(Event::DigestSubmitted { .. }) => "DigestSubmitted",
                Ok(Event::RoundSealed { .. }) => "RoundSealed",
                Ok(_) => "stamping events",
                Err(e) => {
                    failed.get_or_insert(e);
                    "undecodable"
                }
            };
            rounds += u64::from(kind == "RoundSealed");
            *kinds.entry(kind).or_default() += ev.len() as u64;
        });
    })?;
    if let Some(e) = failed {
        anyhow::bail!("an event of the log does not decode: {e}");
    }
    let headers = (reader.segments()?.len() * otsd::log::segment::HEADER_LEN) as u64;
    let per = |n: u64| n as f64 / rounds.max(1) as f64;
    let total = frames + prefixes + headers + kinds.values().sum::<u64>();
    let mut line = format!(
        "log bytes per round: {:.1} = record frames {:.1} (seals included) + length prefixes {:.1} \
         + segment headers {:.1}",
        per(total),
        per(frames),
        per(prefixes),
        per(headers)
    );
    for (kind, n) in &kinds {
        line += &format!(" + {kind} {:.1}", per(*n));
    }
    println!("{line}");
    Ok(())
}

/// Latency percentiles (warm, cold), proofs/s at concurrency, and RSS after that load.
fn serve_figures(
    args: &Args,
    dir: &CalendarDir,
    (addr, pid): (SocketAddr, u32),
    sample: &[Vec<u8>],
) -> anyhow::Result<()> {
    let mut conn = Conn::open(addr)?;
    let statuses = one_by_one(&mut conn, sample)?.1;
    let (warm, _) = one_by_one(&mut conn, sample)?;
    println!(
        "GET /timestamp, {} random historical commitments ({} complete proofs, {} pending), warm: {}",
        sample.len(),
        statuses.0,
        statuses.1,
        percentiles(warm)
    );
    let dropped = drop_cache(&dir.path)?;
    let cold_n = sample.len().min(2000);
    let (cold, _) = one_by_one(&mut conn, &sample[sample.len() - cold_n..])?;
    println!(
        "GET /timestamp, {cold_n} others, cold ({:.0} MiB of calendar files dropped from the page \
         cache first): {}",
        dropped as f64 / (1 << 20) as f64,
        percentiles(cold)
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let digests: Vec<[u8; 32]> = (0..sample.len())
        .map(|_| digest_at(rng.gen_range(0..args.digests)))
        .collect();
    let by_digest = |conn: &mut Conn, digests: &[[u8; 32]]| -> anyhow::Result<Vec<u64>> {
        let mut lat = Vec::with_capacity(digests.len());
        for d in digests {
            let t = Instant::now();
            let status = conn.get(&format!("/status/{}", hex::encode(d)))?;
            lat.push(t.elapsed().as_micros() as u64);
            anyhow::ensure!(status == 200, "GET /status/<digest> answered {status}");
        }
        Ok(lat)
    };
    by_digest(&mut conn, &digests)?;
    println!(
        "GET /status/<digest>, {} random historical digests, warm: {}",
        digests.len(),
        percentiles(by_digest(&mut conn, &digests)?)
    );
    drop_cache(&dir.path)?;
    let cold: Vec<[u8; 32]> = (0..cold_n)
        .map(|_| digest_at(rng.gen_range(0..args.digests)))
        .collect();
    println!(
        "GET /status/<digest>, {cold_n} others, cold: {}",
        percentiles(by_digest(&mut conn, &cold)?)
    );
    // The cold look-ups above left the page cache cold: the load below is measured warm, as the
    // latencies first were (cold, it measures the disk's random reads).
    let (warmed, took) = warm_cache(&dir.path)?;
    println!(
        "page cache warmed again: {:.0} MiB of projection files read in {took:.1} s",
        warmed as f64 / (1 << 20) as f64
    );
    let (cpu_client, cpu_otsd) = (cpu_seconds("self")?, cpu_seconds(&pid.to_string())?);
    let (load, secs) = hammer(args, addr, sample, args.seconds, false, |_| Ok(()))?;
    let client = cpu_seconds("self")? - cpu_client;
    let server = cpu_seconds(&pid.to_string())? - cpu_otsd;
    println!(
        "GET /timestamp at concurrency {} ({} client threads): {} answers in {secs:.1} s: {:.0} \
         proofs/s; latency under that load {}; CPU: otsd {:.2} cores ({:.1} µs a proof), this \
         client {:.2} cores ({:.1} µs a proof); {}",
        args.concurrency,
        args.client_threads,
        load.proofs,
        load.proofs as f64 / secs,
        percentiles(load.latencies.iter().map(|&l| u64::from(l)).collect()),
        server / secs,
        server * 1e6 / load.proofs.max(1) as f64,
        client / secs,
        client * 1e6 / load.proofs.max(1) as f64,
        load_average()
    );
    println!(
        "otsd RSS after that load: {:.1} MiB",
        rss_kib(pid)? as f64 / 1024.0
    );
    if args.mixed_seconds > 0 {
        mixed(args, addr, pid, sample)?;
    }
    Ok(())
}

/// Requests each commitment in turn; latencies in µs and (complete, pending) counts.
fn one_by_one(conn: &mut Conn, sample: &[Vec<u8>]) -> anyhow::Result<(Vec<u64>, (u64, u64))> {
    let mut lat = Vec::with_capacity(sample.len());
    let (mut complete, mut pending) = (0, 0);
    for c in sample {
        let t = Instant::now();
        let status = conn.get(&format!("/timestamp/{}", hex::encode(c)))?;
        lat.push(t.elapsed().as_micros() as u64);
        match status {
            200 => complete += 1,
            404 => pending += 1,
            s => anyhow::bail!("GET /timestamp answered {s}"),
        }
    }
    Ok((lat, (complete, pending)))
}

fn percentiles(mut lat: Vec<u64>) -> String {
    lat.sort_unstable();
    let at = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    format!(
        "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

/// What a connection of the concurrent load asks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ask {
    Timestamp,
    Status,
    Post,
}

/// Answers of the concurrent load: per kind, and latencies (µs) of the proofs.
#[derive(Default)]
struct Load {
    proofs: u64,
    statuses: u64,
    posts: u64,
    latencies: Vec<u32>,
}

/// `concurrency` keep-alive connections asking for random commitments for `seconds`, driven by
/// `--client-threads` threads (each an event loop over its share of the connections, so that the
/// client spends its CPU on requests rather than on switching between 64 threads). With `mixed`,
/// one connection in eight posts digests and one in eight asks `/status` of random digests.
/// `during` runs beside the load (the RSS sampler).
fn hammer(
    args: &Args,
    addr: SocketAddr,
    sample: &[Vec<u8>],
    seconds: u64,
    mixed: bool,
    during: impl FnOnce(&AtomicBool) -> anyhow::Result<()>,
) -> anyhow::Result<(Load, f64)> {
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let threads = args.client_threads.min(args.concurrency).max(1);
    let loads = std::thread::scope(|s| -> anyhow::Result<Vec<Load>> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let stop = &stop;
                let conns: Vec<usize> = (t..args.concurrency).step_by(threads).collect();
                s.spawn(move || -> anyhow::Result<Load> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .build()?;
                    rt.block_on(async {
                        let tasks: Vec<_> = conns
                            .into_iter()
                            .map(|w| {
                                let ask = match w % 8 {
                                    0 if mixed => Ask::Post,
                                    1 if mixed => Ask::Status,
                                    _ => Ask::Timestamp,
                                };
                                async_conn(addr, sample, w, ask, args.digests, stop)
                            })
                            .collect();
                        let mut total = Load::default();
                        for r in futures_util::future::join_all(tasks).await {
                            let l = r?;
                            total.proofs += l.proofs;
                            total.statuses += l.statuses;
                            total.posts += l.posts;
                            total.latencies.extend(l.latencies);
                        }
                        Ok(total)
                    })
                })
            })
            .collect();
        let side = during(&stop);
        std::thread::sleep(Duration::from_secs(seconds).saturating_sub(started.elapsed()));
        stop.store(true, Ordering::Relaxed);
        side?;
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow::anyhow!("worker panicked"))?)
            .collect()
    })?;
    let mut total = Load::default();
    for l in loads {
        total.proofs += l.proofs;
        total.statuses += l.statuses;
        total.posts += l.posts;
        total.latencies.extend(l.latencies);
    }
    Ok((total, started.elapsed().as_secs_f64()))
}

/// `--mixed-seconds` of mixed load: of `--concurrency` connections, one in eight posts digests
/// (new rounds, so the projection checkpoints as it goes), one in eight asks `/status` of random
/// digests, the others ask for random historical proofs; otsd's RSS is sampled every second (a
/// growing index table is swept in seconds).
fn mixed(args: &Args, addr: SocketAddr, pid: u32, sample: &[Vec<u8>]) -> anyhow::Result<()> {
    let rss_start = rss_kib(pid)?;
    let mut rss_max = rss_start;
    let seconds = args.mixed_seconds;
    let (load, secs) = hammer(args, addr, sample, seconds, true, |stop| {
        let started = Instant::now();
        let mut last_print = Instant::now();
        while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(seconds) {
            std::thread::sleep(
                Duration::from_secs(1)
                    .min(Duration::from_secs(seconds).saturating_sub(started.elapsed())),
            );
            let rss = rss_kib(pid)?;
            rss_max = rss_max.max(rss);
            if last_print.elapsed() >= Duration::from_secs(60) {
                last_print = Instant::now();
                println!(
                    "  ... mixed load {:.0} s: otsd RSS {:.1} MiB",
                    started.elapsed().as_secs_f64(),
                    rss as f64 / 1024.0
                );
            }
        }
        Ok(())
    })?;
    println!(
        "mixed load for {secs:.0} s at concurrency {}: {:.0} proofs/s (latency {}), {:.0} \
         statuses/s, {:.0} digests posted/s; otsd RSS {:.1} MiB before, at most {:.1} MiB \
         during, {:.1} MiB after; {}",
        args.concurrency,
        load.proofs as f64 / secs,
        percentiles(load.latencies.iter().map(|&l| u64::from(l)).collect()),
        load.statuses as f64 / secs,
        load.posts as f64 / secs,
        rss_start as f64 / 1024.0,
        rss_max as f64 / 1024.0,
        rss_kib(pid)? as f64 / 1024.0,
        load_average()
    );
    Ok(())
}

/// The load average, to print beside figures measured on shared cores.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "load average unknown".into(),
        |l| {
            let f: Vec<&str> = l.split_whitespace().take(3).collect();
            format!("load average {}", f.join(" "))
        },
    )
}

/// One keep-alive connection of [`hammer`], asking until `stop`.
async fn async_conn(
    addr: SocketAddr,
    sample: &[Vec<u8>],
    w: usize,
    ask: Ask,
    digests: u64,
    stop: &AtomicBool,
) -> anyhow::Result<Load> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
    let mut load = Load::default();
    let mut req = Vec::with_capacity(256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut i = w * 7919;
    while !stop.load(Ordering::Relaxed) {
        req.clear();
        match ask {
            Ask::Timestamp => {
                let c = &sample[i % sample.len()];
                req.extend_from_slice(b"GET /timestamp/");
                req.extend_from_slice(hex::encode(c).as_bytes());
                req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            }
            Ask::Status => {
                let d = digest_at(rng.gen_range(0..digests));
                req.extend_from_slice(b"GET /status/");
                req.extend_from_slice(hex::encode(d).as_bytes());
                req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            }
            Ask::Post => {
                req.extend_from_slice(
                    b"POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n",
                );
                let mut d = [0u8; 32];
                rng.fill_bytes(&mut d);
                req.extend_from_slice(&d);
            }
        }
        let t = Instant::now();
        stream.write_all(&req).await?;
        let (status, mut have, mut need) = (0u16, 0usize, None::<usize>);
        let mut status = status;
        loop {
            let n = stream.read(&mut buf[have..]).await?;
            anyhow::ensure!(n > 0, "connection closed");
            have += n;
            if need.is_none() {
                if let Some(end) = buf[..have].windows(4).position(|x| x == b"\r\n\r\n") {
                    let head = std::str::from_utf8(&buf[..end])?;
                    status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
                    let len = head
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                        .context("an answer without Content-Length")?;
                    anyhow::ensure!(end + 4 + len <= buf.len(), "answer too long");
                    need = Some(end + 4 + len);
                }
            }
            if need.is_some_and(|n| have >= n) {
                break;
            }
        }
        match (ask, status) {
            (Ask::Timestamp, 200 | 404) => {
                load.proofs += 1;
                load.latencies.push(t.elapsed().as_micros() as u32);
            }
            (Ask::Status, 200) => load.statuses += 1,
            (Ask::Post, 200) => load.posts += 1,
            (_, s) => anyhow::bail!("answer {s} under load"),
        }
        i += 1;
    }
    Ok(load)
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat` (`self` for ours).
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which ends at the last ')'): utime and stime are the 12th and
    // 13th, in clock ticks (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).context("utime")?.parse::<f64>()? + f.get(12).context("stime")?.parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// CPU time of this process's threads while a job runs, by thread name, sampled from
/// `/proc/self/task` every 20 ms so threads that end before the job does are counted too (up to
/// their last sample). The main thread's name is the program's.
struct ThreadCpu {
    stop: std::sync::Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<std::collections::BTreeMap<u64, (String, f64, f64)>>,
}

impl ThreadCpu {
    fn start() -> ThreadCpu {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // What the threads alive now had used before: not the job's.
        let before: std::collections::BTreeMap<u64, (String, f64, f64)> =
            task_times().into_iter().collect();
        let sampler = std::thread::spawn(move || {
            let mut seen = std::collections::BTreeMap::new();
            let me = thread_id();
            loop {
                let last = flag.load(Ordering::Acquire);
                for (tid, (name, user, sys)) in task_times() {
                    if Some(tid) != me {
                        let (u0, s0) = before.get(&tid).map_or((0.0, 0.0), |b| (b.1, b.2));
                        seen.insert(tid, (name, user - u0, sys - s0));
                    }
                }
                if last {
                    return seen;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        ThreadCpu { stop, sampler }
    }

    /// (user, system) seconds by thread name, threads of one name summed.
    fn stop(self) -> std::collections::BTreeMap<String, (f64, f64)> {
        self.stop.store(true, Ordering::Release);
        let seen = self.sampler.join().unwrap_or_default();
        let mut by_name = std::collections::BTreeMap::new();
        for (name, user, sys) in seen.into_values() {
            let e: &mut (f64, f64) = by_name.entry(name).or_default();
            e.0 += user;
            e.1 += sys;
        }
        by_name
    }
}

/// This thread's id (the tid in `/proc/self/task`).
fn thread_id() -> Option<u64> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// (tid, (name, user s, system s)) of each thread of this process now.
fn task_times() -> Vec<(u64, (String, f64, f64))> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: u64 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (head, rest) = stat.rsplit_once(')')?;
        let name = head.split_once('(')?.1.to_owned();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let user = f.get(11)?.parse::<f64>().ok()? / 100.0;
        let sys = f.get(12)?.parse::<f64>().ok()? / 100.0;
        Some((tid, (name, user, sys)))
    })
    .collect()
}

/// `n` commitments of random rounds, read from the projection's round table.
fn sample_commitments(proj: &Path, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let file = std::fs::File::open(proj.join("rounds"))?;
    let rounds = file.metadata()?.len() / ROUND_LEN as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    (0..n)
        .map(|_| {
            let mut b = [0u8; ROUND_LEN];
            file.read_exact_at(&mut b, rng.gen_range(0..rounds) * ROUND_LEN as u64)?;
            let r = decode_round(&b).context("a round entry fails its CRC")?;
            Ok(r.commitment.to_vec())
        })
        .collect()
}

/// Drops the calendar's files (log and projection) from the page cache; returns their bytes.
fn drop_cache(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for sub in ["log", PROJECTION_DIR] {
        for entry in std::fs::read_dir(dir.join(sub))? {
            let file = std::fs::File::open(entry?.path())?;
            let len = file.metadata()?.len();
            file.sync_all()?;
            rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
            total += len;
        }
    }
    Ok(total)
}

/// Reads the projection's files once, so that they are in the page cache; returns the bytes read
/// and the seconds it took.
fn warm_cache(dir: &Path) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut total = 0;
    for entry in std::fs::read_dir(dir.join(PROJECTION_DIR))? {
        let path = entry?.path();
        if path.is_file() {
            total += std::io::copy(&mut std::fs::File::open(&path)?, &mut std::io::sink())?;
        }
    }
    Ok((total, started.elapsed().as_secs_f64()))
}

fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

/// The `i`th digest of the bench calendar: random-looking, and known to the bench without
/// reading the log back (for `GET /status/<digest>`).
fn digest_at(i: u64) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::new()
        .chain_update(b"replay-bench digest")
        .chain_update(i.to_le_bytes())
        .finalize()
        .into()
}

/// What the calendar in `--dir` was made with; a different request makes it again.
fn params(args: &Args) -> String {
    format!(
        "digests {} (derived, v2) round-size {} tx-rounds {:?}\n",
        args.digests, args.round_size, args.tx_rounds
    )
}

/// Creates the calendar and its log unless it was made with the same parameters.
fn prepare(args: &Args) -> anyhow::Result<CalendarDir> {
    let marker = args.dir.join("bench-params");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(&params(args)) {
        println!("reusing {} ({})", args.dir.display(), params(args).trim());
        return Ok(CalendarDir::load(&args.dir)?);
    }
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)?;
    }
    let dir = CalendarDir::init(
        &args.dir,
        "http://bench.invalid",
        "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
    )?;
    let started = Instant::now();
    let (rounds, txs) = write_log(args, &dir)?;
    std::fs::write(&marker, params(args))?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} digests in {rounds} rounds and {txs} final stamping transactions to {} in \
         {secs:.1} s: {:.0} rounds/s, {:.0} digests/s ({} sealing threads)",
        args.digests,
        args.dir.display(),
        rounds as f64 / secs,
        args.digests as f64 / secs,
        args.build_threads.max(1)
    );
    Ok(dir)
}

/// Stamping transactions as the stamper would record them, synthetic but valid.
struct Stamping {
    key: StamperKey,
    rng: rand::rngs::StdRng,
    range: (u64, u64),
    /// Chunk roots of the rounds since the last transaction (see `tiptree`).
    chunks: Vec<Hash>,
    leaves: Vec<Hash>,
    first_round: u64,
    size: u64,
    height: u32,
    txs: u64,
}

impl Stamping {
    fn new(range: (u64, u64)) -> anyhow::Result<Stamping> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let size = rng.gen_range(range.0..=range.1);
        Ok(Stamping {
            key: StamperKey::from_bytes(&[5; 32])?,
            rng,
            range,
            chunks: Vec::new(),
            leaves: Vec::new(),
            first_round: 0,
            size,
            height: 1000,
            txs: 0,
        })
    }

    /// Notes round `round`'s commitment; returns the events of a transaction when one is due.
    fn round(&mut self, round: u64, commitment: &[u8]) -> anyhow::Result<Option<Vec<Event>>> {
        self.leaves.push(tiptree::leaf(commitment));
        if self.leaves.len() as u64 == tiptree::CHUNK {
            self.chunks
                .extend(tiptree::chunk_root(std::mem::take(&mut self.leaves)));
        }
        if round + 1 - self.first_round < self.size {
            return Ok(None);
        }
        if !self.leaves.is_empty() {
            self.chunks
                .extend(tiptree::chunk_root(std::mem::take(&mut self.leaves)));
        }
        let mut scratch = Vec::new();
        let tip = tiptree::build_levels(std::mem::take(&mut self.chunks), &mut scratch)
            .context("a transaction covers rounds")?;
        let mut outpoint_txid = [0u8; 32];
        self.rng.fill_bytes(&mut outpoint_txid);
        let coin = Coin {
            outpoint: bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array(outpoint_txid), 0),
            value_sat: 100_000,
        };
        let h = self.height;
        let tx = self.key.stamp_tx(&coin, 1_000, &tip, h)?;
        let txid = tx.compute_txid().to_byte_array();
        let block = |height: u32| {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&height.to_le_bytes());
            Event::BlockSeen { height, hash }
        };
        let mut events = vec![
            block(h),
            Event::TxBroadcast {
                txid,
                raw_tx: bitcoin::consensus::encode::serialize(&tx),
                tip,
                first_round: self.first_round,
                last_round: round,
                fee_sat: 1_000,
                feerate_sat_per_kvb: 5_000,
                input_sat: 100_000,
                height: h,
                replaces: None,
                log_head: None,
            },
            block(h + 1),
        ];
        // A block of a few thousand transactions, ours among them.
        let n = 2_000 + self.rng.gen_range(0..2_000usize);
        let at = self.rng.gen_range(0..n);
        let mut txids = vec![0u8; 32 * n];
        self.rng.fill_bytes(&mut txids);
        txids[32 * at..32 * at + 32].copy_from_slice(&txid);
        events.push(Event::TxConfirmed {
            txid,
            block_hash: match &events[2] {
                Event::BlockSeen { hash, .. } => *hash,
                _ => [0; 32],
            },
            height: h + 1,
            block_txids: txids,
        });
        events.extend((h + 2..h + 7).map(block));
        self.height = h + 7;
        self.first_round = round + 1;
        self.size = self.rng.gen_range(self.range.0..=self.range.1);
        self.txs += 1;
        Ok(Some(events))
    }
}

/// Rounds per group: sealed together by one sealing thread, appended with one `append_batches`
/// (one fdatasync), about 1.3 MiB of log in rounds of one digest.
fn group_rounds(round_size: u64) -> u64 {
    (4096 / round_size).max(16)
}

/// One sealed round: its log record (the events of its batch) and its commitment.
type SealedGroup = Vec<(Vec<Vec<u8>>, Vec<u8>)>;

/// Seals the rounds of group `g` (digests `round * round_size ..`, cut at `digests`).
fn seal_group(
    sealer: &mut RoundSealer,
    g: u64,
    args: &Args,
    rounds: u64,
    time: u32,
) -> anyhow::Result<SealedGroup> {
    let per = group_rounds(args.round_size);
    let mut out = Vec::with_capacity(per as usize);
    for round in g * per..((g + 1) * per).min(rounds) {
        let first = round * args.round_size;
        let end = (first + args.round_size).min(args.digests);
        let digests: Vec<[u8; 32]> = (first..end).map(digest_at).collect();
        let refs: Vec<&[u8]> = digests.iter().map(|d| &d[..]).collect();
        let sealed = sealer.seal(round, time + (round / 1000) as u32, &refs);
        let Some(Event::RoundSealed { commitment, .. }) = sealed.events.last() else {
            anyhow::bail!("a sealed round ends with RoundSealed");
        };
        let commitment = commitment.clone();
        let batch = sealed
            .events
            .iter()
            .map(codec::encode)
            .collect::<Result<Vec<_>, _>>()?;
        out.push((batch, commitment));
    }
    Ok(out)
}

/// Writes the log: `--digests` digests in rounds, and the stamping transactions; returns the
/// number of rounds and transactions. `--build-threads` threads seal groups of rounds (each with
/// its own sealer, as independent aggregators would) while this one chains them into the log
/// through the real writer, in round order, and makes the stamping transactions.
fn write_log(args: &Args, dir: &CalendarDir) -> anyhow::Result<(u64, u64)> {
    let key = LogKey::derive(&dir.hmac_key);
    let (mut writer, _) = Writer::open(&dir.log_dir(), key, WriterOptions::default())?;
    let mut stamping = args.tx_rounds.map(Stamping::new).transpose()?;
    let rounds = args.digests.div_ceil(args.round_size);
    let groups = rounds.div_ceil(group_rounds(args.round_size));
    let threads = args.build_threads.max(1) as u64;
    let time = 1_763_900_000u32;
    let started = Instant::now();
    let mut tick = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let mut inboxes = Vec::new();
        for t in 0..threads {
            // Two groups queued per sealer bound the memory (a few MiB each).
            let (tx, rx) = std::sync::mpsc::sync_channel::<anyhow::Result<SealedGroup>>(2);
            inboxes.push(rx);
            let mut sealer = RoundSealer::new(&dir.uri, &dir.hmac_key).context("uri")?;
            s.spawn(move || {
                for g in (t..groups).step_by(threads as usize) {
                    if tx
                        .send(seal_group(&mut sealer, g, args, rounds, time))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        for g in 0..groups {
            let group = inboxes[(g % threads) as usize]
                .recv()
                .context("a sealing thread stopped")??;
            let first = g * group_rounds(args.round_size);
            let sealed = group.len() as u64;
            let mut batches = Vec::with_capacity(group.len() + 1);
            for (i, (batch, commitment)) in group.into_iter().enumerate() {
                batches.push(batch);
                if let Some(events) = match stamping.as_mut() {
                    Some(st) => st.round(first + i as u64, &commitment)?,
                    None => None,
                } {
                    batches.push(
                        events
                            .iter()
                            .map(codec::encode)
                            .collect::<Result<Vec<_>, _>>()?,
                    );
                }
            }
            writer.append_batches(&batches)?;
            if tick.elapsed() > Duration::from_secs(10) {
                tick = Instant::now();
                let done = first + sealed;
                println!(
                    "  ... {done} rounds, {:.0} rounds/s",
                    done as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        Ok(())
    })?;
    drop(writer);
    Ok((rounds, stamping.map_or(0, |s| s.txs)))
}

/// Starts otsd on `dir`; once it accepts connections, measures its RSS and runs `then` with its
/// address and pid; then stops it. Returns the start-up time and that RSS in KiB.
fn start_up(
    otsd: &Path,
    dir: &CalendarDir,
    then: impl FnOnce((SocketAddr, u32)) -> anyhow::Result<()>,
) -> anyhow::Result<(Duration, u64)> {
    let port = free_port()?;
    let started = Instant::now();
    let child = Command::new(otsd)
        .args([
            "-c",
            &dir.path.display().to_string(),
            "--rpc-address",
            "127.0.0.1",
        ])
        .args(["--rpc-port", &port.to_string(), "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", otsd.display()))?;
    let mut child = Stop(child);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        if let Some(status) = child.0.try_wait()? {
            anyhow::bail!("otsd exited during start-up: {status}");
        }
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("otsd did not listen within 600 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = started.elapsed();
    let pid = child.0.id();
    let rss = rss_kib(pid)?;
    then((SocketAddr::from(([127, 0, 0, 1], port)), pid))?;
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    child.0.wait()?;
    Ok((took, rss))
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS in /proc/PID/status")
}

/// One HTTP/1.1 keep-alive connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// GET `path`; returns the status (the body is read and dropped).
    fn get(&mut self, path: &str) -> anyhow::Result<u16> {
        write!(self.writer, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut line = String::new();
        let (mut status, mut len) = (0u16, 0usize);
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                anyhow::bail!("connection closed");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(code) = l.strip_prefix("HTTP/1.1 ") {
                status = code.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            } else if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body)?;
        Ok(status)
    }
}

/// Kills the child if the bench fails before stopping it.
struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
