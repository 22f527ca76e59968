//! Crash test: a child process (this test binary, re-invoked with `OTSD_LOG_CRASH_DIR` set) appends
//! group commits and prints each durable sequence number; the parent kills it with SIGKILL at random
//! moments, reopens, and checks that every acknowledged event is present and intact and that nothing
//! after the tail is garbage. Reproduce a run with `OTSD_LOG_CRASH_SEED=<seed printed>`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use otsd::log::{LogKey, Reader, Writer, WriterOptions};
use rand::{rngs::StdRng, Rng, SeedableRng};

const DIR_ENV: &str = "OTSD_LOG_CRASH_DIR";
const SEED_ENV: &str = "OTSD_LOG_CRASH_SEED";
const KILLS: usize = 60;
const SEGMENT_SIZE: u64 = 64 << 10;

fn key() -> LogKey {
    LogKey::derive(b"crash test key")
}

/// The event with sequence number `seq`: recognisable, of varying length.
fn payload(seq: u64) -> Vec<u8> {
    let mut v = seq.to_le_bytes().to_vec();
    v.resize(8 + (seq % 29) as usize, (seq % 251) as u8);
    v
}

/// The child: appends forever, printing `ACK <next seq>` after each durable group. Run only by
/// the parent (`--ignored`); a normal run lists it as ignored instead of passing it vacuously, and
/// the parent fails if it ends any other way than by its SIGKILL (issue 13 hole 8).
#[test]
#[ignore = "child process of sigkill_at_random_moments_loses_no_acknowledged_event"]
fn crash_child() {
    let dir = std::env::var(DIR_ENV).expect("crash_child is run by the parent test only");
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let opts = WriterOptions {
        segment_size: SEGMENT_SIZE,
        ..WriterOptions::default()
    };
    let (mut w, _) = Writer::open(Path::new(&dir), key(), opts).expect("child open");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = std::io::stdout().lock();
    loop {
        let mut seq = w.next_seq();
        let groups: Vec<Vec<Vec<u8>>> = (0..rng.gen_range(1..4))
            .map(|_| {
                let n = rng.gen_range(1..40);
                let batch = (seq..seq + n).map(payload).collect();
                seq += n;
                batch
            })
            .collect();
        w.append_batches(&groups).expect("child append");
        writeln!(out, "ACK {}", w.next_seq()).expect("child print");
        out.flush().expect("child flush");
    }
}

/// Runs the child once, kills it after `delay`, returns the highest acknowledged next-seq.
fn run_and_kill(dir: &Path, seed: u64, delay: Duration) -> u64 {
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .env(SEED_ENV, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut stderr = child.stderr.take().expect("child stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let reader = std::thread::spawn(move || {
        let mut acked = 0u64;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("ACK ").and_then(|n| n.parse().ok()) {
                acked = n;
            }
        }
        acked
    });
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL child");
    let status = child.wait().expect("reap child");
    let acked = reader.join().expect("reader thread");
    let errors = errors.join().expect("stderr thread");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the child ended by itself ({status}) before the kill:\n{errors}"
    );
    acked
}

/// Checks the log holds exactly events `0..n` with the right contents, `n >= acked`; returns `n`.
fn check_log(dir: &Path, acked: u64, round: usize) -> u64 {
    let opts = WriterOptions {
        segment_size: SEGMENT_SIZE,
        ..WriterOptions::default()
    };
    let (w, recovery) = Writer::open(dir, key(), opts).expect("reopen after kill");
    let next = w.next_seq();
    drop(w);
    assert!(
        next >= acked,
        "round {round}: acknowledged {acked} but log ends at {next} ({recovery:?})"
    );
    let mut expected = 0u64;
    let reader = Reader::open(dir, Some(key())).expect("reader");
    let end = reader
        .for_each_from(0, |seq, ev| {
            assert_eq!(seq, expected, "round {round}: sequence gap");
            assert_eq!(
                ev,
                payload(seq).as_slice(),
                "round {round}: event {seq} garbled"
            );
            expected += 1;
        })
        .expect("verify after kill");
    assert_eq!((end, expected), (next, next), "round {round}");
    next
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_event() {
    let seed: u64 = match std::env::var(SEED_ENV).ok().and_then(|s| s.parse().ok()) {
        Some(s) => s,
        None => rand::thread_rng().gen(),
    };
    println!("crash test seed: {seed} (rerun with {SEED_ENV}={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut total_acked = 0;
    for round in 0..KILLS {
        let delay = Duration::from_micros(rng.gen_range(0..50_000));
        let acked = run_and_kill(dir.path(), rng.gen(), delay);
        let next = check_log(dir.path(), acked, round);
        total_acked = total_acked.max(acked);
        assert!(
            next >= total_acked,
            "round {round}: lost acknowledged events"
        );
    }
    assert!(total_acked > 0, "the child never acknowledged anything");
    let segments = std::fs::read_dir(dir.path()).expect("ls").count();
    println!("acknowledged {total_acked} events over {KILLS} kills, {segments} files");
}
