//! Prints replay and start-up figures on a large calendar: the issue's "log of 10 million digests:
//! replay time and start-up time".
//!
//! Creates (once, then reuses) a calendar in `--dir` whose log holds `--digests` digests in rounds
//! of `--round-size`, written through the real writer and round sealer. Then measures:
//! - `otsctl replay` in process: the whole log read, verified (CRC, both chains, seals), decoded and
//!   folded, digests/s end to end, and the checkpoint written;
//! - otsd start-up (the `otsd` binary next to this one) until it accepts connections, with the
//!   checkpoint, and without it (a full replay, which writes the checkpoint again).
//!
//! `cargo build --release && target/release/replay-bench [--dir D] [--digests N] [--round-size R]`
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use otsd::aggregator::RoundSealer;
use otsd::audit::replay::{replay, Output};
use otsd::calendar::dir::CalendarDir;
use otsd::events::codec;
use otsd::log::{LogKey, Writer, WriterOptions};
use otsd::projection::checkpoint::PROJECTION_DIR;
use rand::RngCore;

struct Args {
    dir: PathBuf,
    digests: u64,
    round_size: u64,
    runs: u32,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        dir: std::env::temp_dir().join("otsd-replay-bench"),
        digests: 10_000_000,
        round_size: 24,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
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
            "--runs" => args.runs = value.parse()?,
            _ => anyhow::bail!("unknown flag {flag} (--dir, --digests, --round-size, --runs)"),
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = prepare(&args)?;
    let mut sink = |_: &otsd::log::Progress| {};
    let (_, s) = replay(&args.dir, &Output::InPlace, 6, &mut sink)?;
    println!(
        "otsctl replay (full, in process): {} events, {} digests, {} rounds in {:.3} s: \
         {:.2}M digests/s, {:.2}M events/s",
        s.events,
        s.digests,
        s.rounds,
        s.seconds,
        s.digests_per_second / 1e6,
        s.events_per_second / 1e6
    );
    let otsd = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join("otsd");
    for run in 1..=args.runs {
        let t = start_up(&otsd, &dir)?;
        println!(
            "otsd start-up with the checkpoint, run {run}: {:.3} s",
            t.as_secs_f64()
        );
    }
    std::fs::remove_dir_all(dir.path.join(PROJECTION_DIR))?;
    let t = start_up(&otsd, &dir)?;
    println!(
        "otsd start-up without a checkpoint (full replay, writes one): {:.3} s",
        t.as_secs_f64()
    );
    let t = start_up(&otsd, &dir)?;
    println!(
        "otsd start-up from that checkpoint: {:.3} s",
        t.as_secs_f64()
    );
    Ok(())
}

/// Creates the calendar and its log unless it already holds enough digests.
fn prepare(args: &Args) -> anyhow::Result<CalendarDir> {
    if args.dir.join("hmac-key").exists() {
        let dir = CalendarDir::load(&args.dir)?;
        let mut sink = |_: &otsd::log::Progress| {};
        let (view, _) = replay(&args.dir, &Output::Nowhere, 6, &mut sink)?;
        if view.digests_total() >= args.digests {
            println!(
                "reusing {} ({} digests)",
                args.dir.display(),
                view.digests_total()
            );
            return Ok(dir);
        }
        std::fs::remove_dir_all(&args.dir)?;
    }
    let dir = CalendarDir::init(
        &args.dir,
        "http://bench.invalid",
        "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
    )?;
    let key = LogKey::derive(&dir.hmac_key);
    let (mut writer, _) = Writer::open(&dir.log_dir(), key, WriterOptions::default())?;
    let mut sealer = RoundSealer::new(&dir.uri, &dir.hmac_key).context("uri")?;
    let mut rng = rand::thread_rng();
    let started = Instant::now();
    let (mut written, mut round) = (0u64, 0u64);
    let time = 1_763_900_000u32;
    while written < args.digests {
        let mut group = Vec::new();
        for _ in 0..256 {
            let n = args.round_size.min(args.digests - written) as usize;
            if n == 0 {
                break;
            }
            let digests: Vec<[u8; 32]> = (0..n)
                .map(|_| {
                    let mut d = [0u8; 32];
                    rng.fill_bytes(&mut d);
                    d
                })
                .collect();
            let refs: Vec<&[u8]> = digests.iter().map(|d| &d[..]).collect();
            let sealed = sealer.seal(round, time + (round / 1000) as u32, &refs);
            let batch = sealed
                .events
                .iter()
                .map(codec::encode)
                .collect::<Result<Vec<_>, _>>()?;
            group.push(batch);
            written += n as u64;
            round += 1;
        }
        writer.append_batches(&group)?;
    }
    drop(writer);
    println!(
        "wrote {written} digests in {round} rounds to {} in {:.1} s",
        args.dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(dir)
}

/// Starts otsd on `dir` and returns how long until it accepted a connection; then stops it.
fn start_up(otsd: &Path, dir: &CalendarDir) -> anyhow::Result<Duration> {
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
        if started.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("otsd did not listen within 120 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = started.elapsed();
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()?;
    child.0.wait()?;
    Ok(took)
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
