//! Rows against a running `otsd` under HTTP load: SIGKILL at random instants, an EIO from
//! `fdatasync` (the `log-fdatasync-eio` failpoint, on the real filesystem), and a panic in the
//! fold (the `fold-panic-seq` failpoint, which the abort-on-panic policy must turn into an abort).
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::harness::{self, all_known, init_calendar, load, ms, percentile, Acked, Daemon};
use crate::{Row, TempDir};

/// Load workers posting digests while a fault is injected.
const WORKERS: u32 = 4;
/// Longest a row waits for a fault to show (an EIO's 503, a panic's abort).
const FAULT_TIMEOUT: Duration = Duration::from_secs(60);

fn failure(row: &mut Row, what: String) {
    if row.note.contains("FIRST FAILURE") {
        return;
    }
    row.note.push_str(&format!("; FIRST FAILURE: {what}"));
}

/// Runs `load` on `d` while `during` runs on this thread; returns what the load saw.
fn under_load<T>(
    d_addr: std::net::SocketAddr,
    tag: u64,
    during: impl FnOnce() -> T,
) -> (harness::LoadResult, T) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let h = s.spawn(|| load(d_addr, WORKERS, tag, Duration::ZERO, &stop));
        let out = during();
        stop.store(true, Ordering::Relaxed);
        (h.join().unwrap_or_default(), out)
    })
}

/// The time from spawning `otsd` on `cal` to its first answered `GET /`.
fn start_and_time(cal: &std::path::Path) -> anyhow::Result<(Daemon, Duration)> {
    let t = Instant::now();
    let d = Daemon::start(cal, &[], &[])?;
    loop {
        if harness::get(d.addr, "/").is_ok_and(|r| r.status == 200) {
            return Ok((d, t.elapsed()));
        }
        if t.elapsed() > harness::START_TIMEOUT {
            return Err(anyhow!("otsd listens but does not answer GET /"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- process crash under load --------------------------------------------------------------

/// SIGKILL of a real `otsd` under HTTP load at seeded random instants, `kills` times on one
/// calendar; after each restart every digest acknowledged in the life before is found, and at the
/// end every digest acknowledged in all lives.
pub fn otsd_crash(seed: u64, kills: u64) -> anyhow::Result<Row> {
    let mut rng = StdRng::seed_from_u64(seed ^ 11);
    let dir = TempDir::new()?;
    let cal = init_calendar(dir.path(), "http://127.0.0.1:1")?;
    let mut row = Row::new("otsd crash under load", kills);
    let mut restart = Vec::new();
    let mut all: Vec<Acked> = Vec::new();
    let mut d = start_and_time(&cal)?.0;
    let (mut refused, mut unanswered) = (0u64, 0u64);
    for k in 0..kills {
        let wait = Duration::from_millis(rng.gen_range(10..400));
        let (life, status) = under_load(d.addr, k, || {
            std::thread::sleep(wait);
            d.kill()
        });
        refused += life.refused.values().sum::<u64>();
        unanswered += life.unanswered;
        let (nd, took) = start_and_time(&cal)?;
        d = nd;
        restart.push(took);
        let killed = status.and_then(|s| s.signal()) == Some(9);
        let check = all_known(d.addr, &life.acked);
        match (killed, check, life.bad_answers) {
            (true, Ok(_), 0) => row.survived += 1,
            (false, _, _) => failure(&mut row, format!("kill {k}: otsd ended by itself")),
            (_, Err(e), _) => failure(&mut row, format!("kill {k}: {e}")),
            (_, _, n) => failure(
                &mut row,
                format!("kill {k}: {n} unparseable acknowledgements"),
            ),
        }
        all.extend(life.acked);
    }
    // A last restart, then every digest acknowledged in any life.
    d.kill();
    let (d, _) = start_and_time(&cal)?;
    let distinct = match all_known(d.addr, &all) {
        Ok(n) => n,
        Err(e) => {
            row.survived = 0;
            failure(&mut row, format!("final check: {e}"));
            0
        }
    };
    if d.panicked.load(Ordering::Relaxed) {
        row.survived = 0;
        failure(&mut row, "a panic in otsd's log".into());
    }
    drop(d);
    row.note = format!(
        "SIGKILL of otsd under {WORKERS} HTTP clients at a random instant 10-400 ms into each \
         life; {} digests acknowledged ({distinct} rounds), all found after each restart and \
         again at the end; {refused} refused and {unanswered} unanswered around the kills (not \
         acknowledged, so free to lose); restart to first answer p50 {}, p99 {}, max {}{}",
        all.len(),
        ms(percentile(&mut restart, 50.0)),
        ms(percentile(&mut restart, 99.0)),
        ms(percentile(&mut restart, 100.0)),
        row.note
    );
    Ok(row)
}

// ---- EIO through a running otsd ------------------------------------------------------------

/// The `k`-th `fdatasync` of a fresh calendar's log fails with EIO (failpoint, real filesystem):
/// the clients get `503 calendar log unavailable`, no acknowledgement is given for the round of
/// the failed sync, every later digest is refused (poisoned: a retry would have succeeded), and a
/// restart finds every acknowledged digest.
pub fn otsd_eio(seed: u64, n: u64) -> anyhow::Result<Row> {
    let mut rng = StdRng::seed_from_u64(seed ^ 12);
    let mut row = Row::new("fsync EIO through otsd", n);
    let mut acked_total = 0;
    for i in 0..n {
        let k: u64 = rng.gen_range(1..40);
        match one_otsd_eio(i, k) {
            Ok(acked) => {
                row.survived += 1;
                acked_total += acked;
            }
            Err(e) => failure(&mut row, format!("injection {i} (fdatasync {k}): {e}")),
        }
    }
    row.note = format!(
        "OTSD_FAILPOINTS=log-fdatasync-eio=K (K random 1..40) on a fresh calendar under \
         {WORKERS} HTTP clients: 503 `calendar log unavailable` with Retry-After, the failed \
         round never acknowledged, later digests refused (writer poisoned), {acked_total} \
         acknowledged digests all found after a restart{}",
        row.note
    );
    Ok(row)
}

fn one_otsd_eio(i: u64, k: u64) -> anyhow::Result<u64> {
    let dir = TempDir::new()?;
    let cal = init_calendar(dir.path(), "http://127.0.0.1:1")?;
    let env = [(otsd::failpoint::ENV, format!("log-fdatasync-eio={k}"))];
    let mut d = Daemon::start(&cal, &[], &env)?;
    let addr = d.addr;
    let (life, saw_503) = under_load(addr, 1_000_000 + i, || {
        let t = Instant::now();
        while t.elapsed() < FAULT_TIMEOUT {
            let probe = harness::post_digest(addr, &[0xee; 32]);
            if let Ok(r) = probe {
                if r.status == 503 {
                    return Some(r);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    });
    let r = saw_503.ok_or_else(|| anyhow!("no 503 within {FAULT_TIMEOUT:?}"))?;
    if r.text() != "calendar log unavailable" || r.header("retry-after").is_none() {
        anyhow::bail!(
            "unclear refusal: {} {:?} {:?}",
            r.status,
            r.text(),
            r.headers
        );
    }
    // Poisoned: every later digest is refused, though the next fdatasync would succeed.
    for j in 0..5u8 {
        let r = harness::post_digest(addr, &[j; 32])?;
        if r.status != 503 {
            anyhow::bail!(
                "digest {j} after the EIO answered {} {:?}",
                r.status,
                r.text()
            );
        }
    }
    if life.bad_answers > 0 {
        anyhow::bail!("{} unparseable acknowledgements", life.bad_answers);
    }
    d.kill();
    let failed_round = last_round_commitment(&cal)?;
    if let Some(c) = &failed_round {
        if life.acked.iter().any(|a| &a.commitment == c) {
            anyhow::bail!(
                "the round of the failed fdatasync ({}) was acknowledged",
                hex::encode(c)
            );
        }
    }
    let (d, _) = start_and_time(&cal)?;
    all_known(d.addr, &life.acked).map_err(|e| anyhow!(e))?;
    if d.panicked.load(Ordering::Relaxed) {
        anyhow::bail!("a panic in otsd's log");
    }
    Ok(life.acked.len() as u64)
}

/// The number of events in the calendar's log.
fn log_len(cal: &std::path::Path) -> anyhow::Result<u64> {
    let dir = otsd::calendar::dir::CalendarDir::load(cal)?;
    let key = otsd::log::LogKey::derive(&dir.hmac_key);
    let reader = otsd::log::Reader::open(&dir.log_dir(), Some(key))?;
    Ok(reader.for_each_from(0, |_, _| {})?)
}

/// The commitment of the last round sealed in the calendar's log: with the writer poisoned by the
/// failed sync, the last group commit in the file is the one whose sync failed (its bytes reached
/// the page cache), so its last round must not have been acknowledged.
fn last_round_commitment(cal: &std::path::Path) -> anyhow::Result<Option<Vec<u8>>> {
    let dir = otsd::calendar::dir::CalendarDir::load(cal)?;
    let key = otsd::log::LogKey::derive(&dir.hmac_key);
    // Open for writing first: it repairs a torn tail, as otsd would.
    drop(otsd::log::Writer::open(
        &dir.log_dir(),
        key.clone(),
        Default::default(),
    )?);
    let reader = otsd::log::Reader::open(&dir.log_dir(), Some(key))?;
    let mut last = None;
    reader.for_each_from(0, |_, payload| {
        if let Ok(otsd::events::Event::RoundSealed { commitment, .. }) =
            otsd::events::codec::decode::<otsd::events::Event>(payload)
        {
            last = Some(commitment);
        }
    })?;
    Ok(last)
}

// ---- panic in the fold ---------------------------------------------------------------------

/// A panic while folding event `s` (failpoint) must abort the running `otsd` (SIGABRT, the
/// abort-on-panic policy), and a restart without the failpoint must replay the log, event `s`
/// included, and find every acknowledged digest.
pub fn fold_panic(seed: u64, n: u64) -> anyhow::Result<Row> {
    let mut rng = StdRng::seed_from_u64(seed ^ 13);
    let mut row = Row::new("panic in the fold", n);
    for i in 0..n {
        let s: u64 = rng.gen_range(3..300);
        match one_fold_panic(i, s) {
            Ok(()) => row.survived += 1,
            Err(e) => failure(&mut row, format!("injection {i} (seq {s}): {e}")),
        }
    }
    row.note = format!(
        "OTSD_FAILPOINTS=fold-panic-seq=S (S random 3..300) under {WORKERS} HTTP clients: otsd \
         aborts (SIGABRT) instead of serving a half-applied view; restarted without the \
         failpoint it replays the log past S and knows every acknowledged digest{}",
        row.note
    );
    Ok(row)
}

fn one_fold_panic(i: u64, s: u64) -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let cal = init_calendar(dir.path(), "http://127.0.0.1:1")?;
    let env = [(otsd::failpoint::ENV, format!("fold-panic-seq={s}"))];
    let mut d = Daemon::start(&cal, &[], &env)?;
    let (life, status) = under_load(d.addr, 2_000_000 + i, || d.wait_exit(FAULT_TIMEOUT));
    let status = status.ok_or_else(|| anyhow!("otsd still runs {FAULT_TIMEOUT:?} later"))?;
    if status.signal() != Some(6) {
        anyhow::bail!("otsd ended with {status}, not SIGABRT:\n{}", d.log_text());
    }
    if !d
        .log_text()
        .contains(&format!("failpoint fold-panic-seq={s}"))
    {
        anyhow::bail!("the panic message is not in otsd's log:\n{}", d.log_text());
    }
    let events = log_len(&cal)?;
    if events <= s {
        anyhow::bail!("the log ends at {events}, before the event whose fold panicked");
    }
    let (d, _) = start_and_time(&cal)?;
    all_known(d.addr, &life.acked).map_err(|e| anyhow!(e))?;
    if d.panicked.load(Ordering::Relaxed) {
        anyhow::bail!("the restarted otsd panicked");
    }
    Ok(())
}
