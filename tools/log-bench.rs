//! Prints log figures: durable append rate and latency by batch size, a plain `fdatasync` loop on the
//! same disk for reference, and replay speed verifying CRC and both chains.
//!
//! `cargo run --release --bin log-bench -- [--dir /tmp/x] [--replay-events 10000000] [--seconds 3]`
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use otsd::log::{LogKey, Reader, Writer, WriterOptions};

const EVENT_LEN: usize = 64;

struct Args {
    dir: PathBuf,
    replay_events: u64,
    seconds: f64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        dir: std::env::temp_dir().join(format!("otsd-log-bench-{}", std::process::id())),
        replay_events: 10_000_000,
        seconds: 3.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value),
            "--replay-events" => args.replay_events = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            _ => anyhow::bail!("unknown flag {flag}"),
        }
    }
    Ok(args)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn report(name: &str, mut lat: Vec<Duration>, events: u64, elapsed: Duration) {
    lat.sort_unstable();
    println!(
        "{name:<28} {:>12.0} events/s  {:>8} ops  p50 {:>8.3} ms  p99 {:>8.3} ms",
        events as f64 / elapsed.as_secs_f64(),
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
    );
}

fn fdatasync_loop(dir: &Path, seconds: f64) -> anyhow::Result<()> {
    let path = dir.join("fdatasync-reference");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, 64 << 20)?;
    file.sync_all()?;
    let (mut lat, start, mut off) = (Vec::new(), Instant::now(), 0u64);
    while start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        file.write_at(&[0xa5; EVENT_LEN], off)?;
        file.sync_data()?;
        lat.push(t.elapsed());
        off += EVENT_LEN as u64;
    }
    let n = lat.len() as u64;
    report("pwrite 64 B + fdatasync", lat, n, start.elapsed());
    std::fs::remove_file(path)?;
    Ok(())
}

fn appends(dir: &Path, key: &LogKey, batch_size: usize, seconds: f64) -> anyhow::Result<()> {
    let dir = dir.join(format!("append-{batch_size}"));
    let (mut w, _) = Writer::open(&dir, key.clone(), WriterOptions::default())?;
    let batch = vec![vec![vec![0x5a; EVENT_LEN]; batch_size]];
    let (mut lat, start) = (Vec::new(), Instant::now());
    while start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        w.append_batches(&batch)?;
        lat.push(t.elapsed());
    }
    let events = lat.len() as u64 * batch_size as u64;
    report(
        &format!("durable batch of {batch_size}"),
        lat,
        events,
        start.elapsed(),
    );
    drop(w);
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

fn replay(dir: &Path, key: &LogKey, events: u64) -> anyhow::Result<()> {
    let dir = dir.join("replay");
    let (mut w, _) = Writer::open(&dir, key.clone(), WriterOptions::default())?;
    let t = Instant::now();
    let mut seq = 0u64;
    while seq < events {
        let n = 4096.min(events - seq);
        let batch: Vec<Vec<u8>> = (seq..seq + n)
            .map(|s| {
                let mut e = vec![0u8; EVENT_LEN];
                e[..8].copy_from_slice(&s.to_le_bytes());
                e
            })
            .collect();
        w.append_batches(&[batch])?;
        seq += n;
    }
    drop(w);
    let bytes: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "wrote {events} events ({:.0} MB on disk incl. preallocation) in {:.2} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    for (name, k) in [
        ("replay, CRC+hash+HMAC", Some(key.clone())),
        ("replay, CRC+hash", None),
    ] {
        let reader = Reader::open(&dir, k)?;
        let (mut n, mut payload, t) = (0u64, 0u64, Instant::now());
        let next = reader.for_each_from(0, |_, ev| {
            n += 1;
            payload += ev.len() as u64;
        })?;
        let s = t.elapsed().as_secs_f64();
        anyhow::ensure!(n == events && next == events, "replay saw {n} events");
        let log_bytes = n * (EVENT_LEN as u64 + 4);
        println!(
            "{name:<28} {:>12.0} events/s  {:>8.0} MB/s of records  ({n} events in {s:.3} s, payload {:.0} MB)",
            n as f64 / s,
            log_bytes as f64 / 1e6 / s,
            payload as f64 / 1e6
        );
    }
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.dir)?;
    println!(
        "log-bench in {} ({} byte events)",
        args.dir.display(),
        EVENT_LEN
    );
    let key = LogKey::derive(b"log-bench key");
    fdatasync_loop(&args.dir, args.seconds)?;
    for batch_size in [1, 64, 4096] {
        appends(&args.dir, &key, batch_size, args.seconds)?;
    }
    replay(&args.dir, &key, args.replay_events)?;
    std::fs::remove_dir_all(&args.dir)?;
    Ok(())
}
