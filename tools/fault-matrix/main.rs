//! The fault matrix (issue 13): injects faults into the event log, the parsers, a running `otsd`
//! and its Bitcoin node, and prints, per row, how many injections there were and how many the
//! calendar survived. Exits 1 if any row has a failure. `tests/fault_matrix.rs` runs a short
//! version in the test suite; the README has the table of a full run.
//!
//! ```text
//! cargo build --release --bins   # the rows against otsd run the sibling otsd and otsctl
//! target/release/fault-matrix [--seed S] [--cuts N] [--eio N] [--damage N] [--kills N]
//!     [--parser-runs N] [--otsd-kills N] [--otsd-eio N] [--fold-panics N] [--slowloris N]
//!     [--overload-secs N] [--fuzz-requests N] [--reorgs N] [--node-faults N]
//! ```
//!
//! A count of 0 leaves its row out. The chain rows need `$BITCOIND` (or the cache of
//! `tools/build-bitcoind.sh`) and `$OTS_BIN` (`tools/setup-clients.sh`) and fail without them.
//!
//! Rows on the log alone (what "survived" means):
//! - `process crash`: a child process (this binary) appends group commits through the real
//!   `Writer` and prints each acknowledged sequence number; it is SIGKILLed at a seeded random
//!   instant, the log is reopened: every acknowledged event is there, intact, nothing after it is
//!   garbage. Also reports the p99 reopen (recovery) time.
//! - `power cut`: `FaultStorage` keeps written and durable (fsync'd) bytes apart. Cut number k
//!   fails the k-th sync (of a group commit, a seal, a new segment or the directory) and keeps only
//!   what was durable: the log opens, holds every acknowledged event and nothing else.
//! - `fsync/write EIO`: a failing fsync or a write failing midway: the batch is not acknowledged,
//!   the writer is poisoned (refuses all later appends) and a reopen holds exactly the
//!   acknowledged events.
//! - `sealed damage`: a bit flip, a zeroed 4 KiB block, two swapped 4 KiB blocks, or a truncation in
//!   a sealed segment: the reader reports an error (detected) and never returns a wrong event.
//! - `torn tail`: garbage or a cut in the unacknowledged tail of the active segment: the writer
//!   repairs it on open, keeping every acknowledged event.
//! - `parser: ...` ([`parsers`]): one row per parser of untrusted bytes: no panic, no hang.
//!
//! Rows against a running `otsd` ([`daemon_rows`], [`abuse`]; failpoints: `src/failpoint.rs`):
//! - `panic in the fold`: the daemon aborts; a restart replays the log and knows every
//!   acknowledged digest.
//! - `fsync EIO through otsd`: a clear `503`, the failed round never acknowledged, the writer
//!   poisoned, every acknowledged digest there after a restart.
//! - `otsd crash under load`: SIGKILL at random instants under HTTP load: 0 acknowledged digests
//!   lost; restart time percentiles.
//! - `abuse: ...`: slowloris sockets, a 10x overload, fuzzed requests.
//!
//! Rows against a real regtest node ([`chain_rows`]): `reorgs` (checked with the real
//! `ots verify`) and `node faults` (SIGSTOP, restart, lost mempool).
mod abuse;
mod chain_rows;
mod daemon_rows;
mod harness;
mod parsers;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use otsd::log::{FaultStorage, Faults, LogError, LogKey, Reader, Writer, WriterOptions};
use rand::{rngs::StdRng, Rng, SeedableRng};

const CHILD_FLAG: &str = "--child-writer";
const SEGMENT_SIZE: u64 = 8192;
/// Kills of the process-crash row that share one log.
const KILLS_PER_LOG: u64 = 100;

struct Args {
    seed: u64,
    cuts: u64,
    eio: u64,
    damage: u64,
    kills: u64,
    parser_runs: u64,
    otsd_kills: u64,
    otsd_eio: u64,
    fold_panics: u64,
    reorgs: u64,
    node_faults: u64,
    slowloris: u64,
    overload_secs: u64,
    fuzz_requests: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        seed: rand::thread_rng().gen(),
        cuts: 1000,
        eio: 1000,
        damage: 10_000,
        kills: 1000,
        parser_runs: 10_000_000,
        otsd_kills: 1000,
        otsd_eio: 100,
        fold_panics: 20,
        reorgs: 100,
        node_faults: 9,
        slowloris: 10_000,
        overload_secs: 10,
        fuzz_requests: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: u64 = it
            .next()
            .ok_or_else(|| anyhow!("{flag} needs a value"))?
            .parse()
            .with_context(|| format!("{flag}: not a number"))?;
        let field = match flag.as_str() {
            "--seed" => &mut a.seed,
            "--cuts" => &mut a.cuts,
            "--eio" => &mut a.eio,
            "--damage" => &mut a.damage,
            "--kills" => &mut a.kills,
            "--parser-runs" => &mut a.parser_runs,
            "--otsd-kills" => &mut a.otsd_kills,
            "--otsd-eio" => &mut a.otsd_eio,
            "--fold-panics" => &mut a.fold_panics,
            "--reorgs" => &mut a.reorgs,
            "--node-faults" => &mut a.node_faults,
            "--slowloris" => &mut a.slowloris,
            "--overload-secs" => &mut a.overload_secs,
            "--fuzz-requests" => &mut a.fuzz_requests,
            _ => bail!("unknown option {flag}; see the doc comment of tools/fault-matrix/main.rs"),
        };
        *field = value;
    }
    Ok(a)
}

/// One row of the table.
pub struct Row {
    pub fault: &'static str,
    pub injected: u64,
    pub survived: u64,
    pub note: String,
}

impl Row {
    /// A row with nothing survived yet.
    pub fn new(fault: &'static str, injected: u64) -> Row {
        Row {
            fault,
            injected,
            survived: 0,
            note: String::new(),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD_FLAG) {
        return child_writer(args.get(2), args.get(3));
    }
    let a = parse_args()?;
    println!(
        "fault matrix, seed {} (rerun with --seed {})",
        a.seed, a.seed
    );
    let mut rows = Vec::new();
    let started = Instant::now();
    let mut run = |count: u64, f: &dyn Fn() -> anyhow::Result<Vec<Row>>| -> anyhow::Result<()> {
        if count == 0 {
            return Ok(());
        }
        let t = Instant::now();
        let mut group = f()?;
        let what = if group.len() > 1 {
            " for these rows"
        } else {
            ""
        };
        if let Some(last) = group.last_mut() {
            last.note
                .push_str(&format!(" ({:.0} s{what})", t.elapsed().as_secs_f64()));
        }
        for r in group {
            eprintln!(
                "row done: | {} | {} | {} | {} |",
                r.fault, r.injected, r.survived, r.note
            );
            rows.push(r);
        }
        Ok(())
    };
    run(a.kills, &|| Ok(vec![process_crash(a.seed, a.kills)?]))?;
    run(a.cuts, &|| Ok(vec![power_cut(a.seed, a.cuts)?]))?;
    run(a.eio, &|| Ok(vec![eio(a.seed, a.eio)?]))?;
    run(a.damage, &|| {
        let (sealed, torn) = damage(a.seed, a.damage)?;
        Ok(vec![sealed, torn])
    })?;
    run(a.parser_runs, &|| Ok(parsers::rows(a.seed, a.parser_runs)))?;
    run(a.fold_panics, &|| {
        Ok(vec![daemon_rows::fold_panic(a.seed, a.fold_panics)?])
    })?;
    run(a.otsd_eio, &|| {
        Ok(vec![daemon_rows::otsd_eio(a.seed, a.otsd_eio)?])
    })?;
    run(a.otsd_kills, &|| {
        Ok(vec![daemon_rows::otsd_crash(a.seed, a.otsd_kills)?])
    })?;
    run(a.slowloris + a.overload_secs + a.fuzz_requests, &|| {
        abuse::rows(a.seed, a.slowloris, a.overload_secs, a.fuzz_requests)
    })?;
    run(a.reorgs, &|| {
        Ok(vec![chain_rows::reorgs(a.seed, a.reorgs)?])
    })?;
    run(a.node_faults, &|| {
        Ok(vec![chain_rows::node_faults(a.seed, a.node_faults)?])
    })?;
    println!();
    println!("| fault | injected | survived | notes |");
    println!("|---|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.fault, r.injected, r.survived, r.note
        );
    }
    println!("\n{:.1} s in all", started.elapsed().as_secs_f64());
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.survived != r.injected)
        .map(|r| r.fault)
        .collect();
    if !failed.is_empty() {
        bail!("rows with failures: {}", failed.join(", "));
    }
    println!("ALL SURVIVED");
    Ok(())
}

/// A fresh directory under the system temp directory, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new() -> std::io::Result<TempDir> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("otsd-fault-matrix-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key() -> LogKey {
    LogKey::derive(b"fault matrix key")
}

fn opts() -> WriterOptions {
    WriterOptions {
        segment_size: SEGMENT_SIZE,
        ..WriterOptions::default()
    }
}

/// The event with sequence number `seq`: recognisable, of varying length.
fn payload(seq: u64) -> Vec<u8> {
    let mut v = seq.to_le_bytes().to_vec();
    v.resize(8 + (seq % 61) as usize, (seq % 251) as u8);
    v
}

/// A random group of batches starting at `seq`.
fn group(rng: &mut StdRng, seq: u64) -> Vec<Vec<Vec<u8>>> {
    let mut s = seq;
    (0..rng.gen_range(1..4))
        .map(|_| {
            let n = rng.gen_range(1..30);
            let batch = (s..s + n).map(payload).collect();
            s += n;
            batch
        })
        .collect()
}

/// Checks that the log in `dir` holds exactly events `0..n` with the right contents, `n >= acked`.
fn check_dir(dir: &Path, acked: u64) -> Result<u64, String> {
    let reader = Reader::open(dir, Some(key())).map_err(|e| format!("reader: {e}"))?;
    let mut expected = 0u64;
    let mut bad = None;
    let end = reader
        .for_each_from(0, |seq, ev| {
            if bad.is_none() && (seq != expected || ev != payload(seq).as_slice()) {
                bad = Some(format!("event {seq} wrong (expected seq {expected})"));
            }
            expected += 1;
        })
        .map_err(|e| format!("read: {e}"))?;
    if let Some(b) = bad {
        return Err(b);
    }
    if end < acked {
        return Err(format!("acknowledged {acked}, log ends at {end}"));
    }
    Ok(end)
}

fn check_storage(storage: &FaultStorage, acked: u64) -> Result<u64, String> {
    let (w, _) = Writer::open_with(Box::new(storage.clone()), key(), opts())
        .map_err(|e| format!("open: {e}"))?;
    let next = w.next_seq();
    drop(w);
    let dir = TempDir::new().map_err(|e| e.to_string())?;
    storage.materialize(dir.path()).map_err(|e| e.to_string())?;
    let end = check_dir(dir.path(), acked)?;
    if end != next {
        return Err(format!("writer says {next}, reader {end}"));
    }
    Ok(end)
}

// ---- process crash -------------------------------------------------------------------------

/// The child: appends forever to `dir`, printing `ACK <next seq>` after each durable group.
fn child_writer(dir: Option<&String>, seed: Option<&String>) -> anyhow::Result<()> {
    let dir = dir.ok_or_else(|| anyhow!("{CHILD_FLAG} DIR SEED"))?;
    let seed: u64 = seed.ok_or_else(|| anyhow!("seed"))?.parse()?;
    let (mut w, _) = Writer::open(Path::new(dir), key(), opts())?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = std::io::stdout().lock();
    loop {
        let g = group(&mut rng, w.next_seq());
        w.append_batches(&g)?;
        writeln!(out, "ACK {}", w.next_seq())?;
        out.flush()?;
    }
}

fn process_crash(seed: u64, kills: u64) -> anyhow::Result<Row> {
    let mut rng = StdRng::seed_from_u64(seed ^ 1);
    let mut dir = TempDir::new()?;
    let mut total_acked = 0;
    let exe = std::env::current_exe()?;
    let (mut survived, mut max_acked) = (0, 0u64);
    let mut reopen = Vec::new();
    let mut first_failure = None;
    for round in 0..kills {
        // A fresh log every KILLS_PER_LOG kills keeps each check's full read short.
        if round > 0 && round % KILLS_PER_LOG == 0 {
            dir = TempDir::new()?;
            total_acked += max_acked;
            max_acked = 0;
        }
        let mut child = Command::new(&exe)
            .args([CHILD_FLAG, &dir.path().display().to_string()])
            .arg(rng.gen::<u64>().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("child stdout"))?;
        let reader = std::thread::spawn(move || {
            let mut acked = 0u64;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ACK ").and_then(|n| n.parse().ok()) {
                    acked = n;
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..30_000)));
        child.kill()?;
        let status = child.wait()?;
        let acked = reader.join().map_err(|_| anyhow!("reader thread"))?;
        max_acked = max_acked.max(acked);
        let t = Instant::now();
        let opened = Writer::open(dir.path(), key(), opts());
        reopen.push(t.elapsed());
        let killed = std::os::unix::process::ExitStatusExt::signal(&status) == Some(9);
        let result = match opened {
            Ok((w, _)) => {
                drop(w);
                check_dir(dir.path(), max_acked)
            }
            Err(e) => Err(format!("open: {e}")),
        };
        match result {
            Ok(_) if killed => survived += 1,
            Ok(_) => {
                first_failure.get_or_insert(format!("kill {round}: child ended by itself"));
            }
            Err(e) => {
                first_failure.get_or_insert(format!("kill {round}: {e}"));
            }
        }
    }
    reopen.sort();
    let p99 = reopen
        .get((reopen.len() * 99 / 100).min(reopen.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default();
    total_acked += max_acked;
    let mut note = format!(
        "SIGKILL of a writer process (the real Writer) at random instants in group commits and \
         roll-overs; {total_acked} events acknowledged in all, a fresh log every {KILLS_PER_LOG} \
         kills; reopen (recovery) p99 {:.1} ms",
        p99.as_secs_f64() * 1e3
    );
    if let Some(f) = first_failure {
        note.push_str(&format!("; FIRST FAILURE: {f}"));
    }
    Ok(Row {
        fault: "process crash",
        injected: kills,
        survived,
        note,
    })
}

// ---- power cut -----------------------------------------------------------------------------

/// Runs the seeded workload on fresh storage until the `cut`-th sync fails (the power goes out
/// there); returns the storage and the acknowledged next sequence number.
fn run_until_cut(seed: u64, cut: u64) -> Result<(FaultStorage, u64, bool), String> {
    let storage = FaultStorage::new();
    let (mut w, _) = Writer::open_with(Box::new(storage.clone()), key(), opts())
        .map_err(|e| format!("create: {e}"))?;
    storage.set_faults(Faults {
        fail_sync_after: Some(cut),
        ..Faults::default()
    });
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..100_000 {
        let g = group(&mut rng, w.next_seq());
        if w.append_batches(&g).is_err() {
            return Ok((storage, w.next_seq(), true));
        }
    }
    Ok((storage, w.next_seq(), false))
}

fn power_cut(seed: u64, cuts: u64) -> anyhow::Result<Row> {
    let (mut survived, mut rolls) = (0, 0);
    let mut first_failure = None;
    for cut in 0..cuts {
        let result = run_until_cut(seed ^ 2, cut).and_then(|(storage, acked, hit)| {
            if !hit {
                return Err("the workload ended before the cut".into());
            }
            rolls = storage.list_segments().len();
            let image = storage.crash();
            check_storage(&image, acked)?;
            // A killed process instead keeps the written bytes too.
            check_storage(&storage.crash_process(), acked)
        });
        match result {
            Ok(_) => survived += 1,
            Err(e) => {
                first_failure.get_or_insert(format!("cut {cut}: {e}"));
            }
        }
    }
    let mut note = format!(
        "cut at every sync 0..{cuts} (group commits, seals, new segments, directory); only \
         fsync'd bytes survive; last run spans {rolls} segments"
    );
    if let Some(f) = first_failure {
        note.push_str(&format!("; FIRST FAILURE: {f}"));
    }
    Ok(Row {
        fault: "power cut",
        injected: cuts,
        survived,
        note,
    })
}

// ---- fsync / write EIO ---------------------------------------------------------------------

fn eio(seed: u64, n: u64) -> anyhow::Result<Row> {
    let mut rng = StdRng::seed_from_u64(seed ^ 3);
    let mut survived = 0;
    let mut first_failure = None;
    for i in 0..n {
        let result = one_eio(&mut rng);
        match result {
            Ok(()) => survived += 1,
            Err(e) => {
                first_failure.get_or_insert(format!("injection {i}: {e}"));
            }
        }
    }
    let mut note = "failed fdatasync or write midway, at a random group commit: not acknowledged, \
                    writer poisoned, reopen holds exactly the acknowledged events"
        .to_owned();
    if let Some(f) = first_failure {
        note.push_str(&format!("; FIRST FAILURE: {f}"));
    }
    Ok(Row {
        fault: "fsync/write EIO",
        injected: n,
        survived,
        note,
    })
}

fn one_eio(rng: &mut StdRng) -> Result<(), String> {
    let storage = FaultStorage::new();
    let (mut w, _) =
        Writer::open_with(Box::new(storage.clone()), key(), opts()).map_err(|e| e.to_string())?;
    for _ in 0..rng.gen_range(0..60) {
        let g = group(rng, w.next_seq());
        w.append_batches(&g).map_err(|e| e.to_string())?;
    }
    let acked = w.next_seq();
    let faults = if rng.gen_bool(0.5) {
        Faults {
            fail_sync_after: Some(0),
            ..Faults::default()
        }
    } else {
        Faults {
            fail_write_after: Some(rng.gen_range(0..200)),
            ..Faults::default()
        }
    };
    storage.set_faults(faults);
    let g = group(rng, acked);
    if w.append_batches(&g).is_ok() {
        return Err("the failing append was acknowledged".into());
    }
    if w.next_seq() != acked || !w.is_poisoned() {
        return Err("not poisoned, or sequence numbers advanced".into());
    }
    storage.set_faults(Faults::default());
    if !matches!(w.append_batches(&g), Err(LogError::Poisoned)) {
        return Err("a poisoned writer accepted an append".into());
    }
    drop(w);
    let end = check_storage(&storage.crash(), acked)?;
    if end != acked {
        return Err(format!(
            "after power loss the log ends at {end}, not {acked}"
        ));
    }
    check_storage(&storage.crash_process(), acked).map(|_| ())
}

// ---- sealed damage and torn tails ----------------------------------------------------------

/// A log in a real directory with several sealed segments and an active one.
pub fn build_log(dir: &Path, seed: u64) -> anyhow::Result<u64> {
    let (mut w, _) = Writer::open(dir, key(), opts())?;
    let mut rng = StdRng::seed_from_u64(seed);
    while otsd::log::segment::list_segments(dir)?.len() < 6 {
        let g = group(&mut rng, w.next_seq());
        w.append_batches(&g)?;
    }
    Ok(w.next_seq())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

/// Damages `bytes` in one of four ways; returns its name, or `None` if nothing changed.
fn damage_bytes(rng: &mut StdRng, bytes: &mut Vec<u8>) -> Option<&'static str> {
    let before = bytes.clone();
    let len = bytes.len();
    let kind = match rng.gen_range(0..4) {
        0 => {
            let at = rng.gen_range(0..len);
            bytes[at] ^= 1 << rng.gen_range(0..8);
            "bit flip"
        }
        1 => {
            let at = rng.gen_range(0..len) / 4096 * 4096;
            let end = (at + 4096).min(len);
            bytes[at..end].fill(0);
            "zeroed 4 KiB block"
        }
        2 => {
            let blocks = len.div_ceil(4096);
            if blocks < 2 {
                return None;
            }
            let a = rng.gen_range(0..blocks - 1);
            let b = rng.gen_range(a + 1..blocks);
            let (a, b) = (a * 4096, b * 4096);
            let n = 4096.min(len - b);
            let tmp = bytes[a..a + n].to_vec();
            bytes.copy_within(b..b + n, a);
            bytes[b..b + n].copy_from_slice(&tmp);
            "swapped 4 KiB blocks"
        }
        _ => {
            bytes.truncate(rng.gen_range(0..len));
            "truncated"
        }
    };
    (*bytes != before).then_some(kind)
}

fn damage(seed: u64, n: u64) -> anyhow::Result<(Row, Row)> {
    let base = TempDir::new()?;
    let events = build_log(base.path(), seed ^ 4)?;
    let segments = otsd::log::segment::list_segments(base.path())?;
    let sealed = &segments[..segments.len() - 1];
    let mut rng = StdRng::seed_from_u64(seed ^ 5);
    let (mut injected, mut detected) = (0, 0);
    let mut kinds = std::collections::BTreeMap::new();
    let mut first_failure = None;
    let work = TempDir::new()?;
    for i in 0..n * 9 / 10 {
        for entry in std::fs::read_dir(work.path())? {
            std::fs::remove_file(entry?.path())?;
        }
        copy_dir(base.path(), work.path())?;
        let victim = sealed[rng.gen_range(0..sealed.len())];
        let path = work.path().join(otsd::log::segment::segment_name(victim));
        let mut bytes = std::fs::read(&path)?;
        let Some(kind) = damage_bytes(&mut rng, &mut bytes) else {
            continue;
        };
        std::fs::write(&path, &bytes)?;
        injected += 1;
        *kinds.entry(kind).or_insert(0u64) += 1;
        match check_dir(work.path(), 0) {
            Err(_) => detected += 1,
            Ok(end) => {
                first_failure.get_or_insert(format!(
                    "injection {i} ({kind} in segment {victim}) read back {end} events without error"
                ));
            }
        }
    }
    let mut note = format!(
        "{}; reader (CRC, chains, seal SHA-256) over {} sealed segments",
        kinds
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        sealed.len()
    );
    if let Some(f) = first_failure {
        note.push_str(&format!("; FIRST FAILURE: {f}"));
    }
    let sealed_row = Row {
        fault: "sealed damage",
        injected,
        survived: detected,
        note,
    };
    let torn = torn_tails(base.path(), events, &mut rng, n - n * 9 / 10)?;
    Ok((sealed_row, torn))
}

/// Garbage or a cut after the last acknowledged record of the active segment (what an
/// unfinished write leaves): repaired on open, every acknowledged event kept.
fn torn_tails(base: &Path, events: u64, rng: &mut StdRng, n: u64) -> anyhow::Result<Row> {
    let active = *otsd::log::segment::list_segments(base)?
        .last()
        .ok_or_else(|| anyhow!("no segment"))?;
    let name = otsd::log::segment::segment_name(active);
    let work = TempDir::new()?;
    let mut survived = 0;
    let mut first_failure = None;
    for i in 0..n {
        for entry in std::fs::read_dir(work.path())? {
            std::fs::remove_file(entry?.path())?;
        }
        copy_dir(base, work.path())?;
        // The end of the acknowledged records: reopen tells.
        let (w, rec) = Writer::open(work.path(), key(), opts())?;
        drop(w);
        let path = work.path().join(&name);
        let mut bytes = std::fs::read(&path)?;
        let end = rec.offset as usize;
        let tail: Vec<u8> = (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect();
        let stop = (end + tail.len()).min(bytes.len());
        bytes[end..stop].copy_from_slice(&tail[..stop - end]);
        std::fs::write(&path, &bytes)?;
        let result = Writer::open(work.path(), key(), opts())
            .map_err(|e| format!("open: {e}"))
            .and_then(|(w, _)| {
                drop(w);
                check_dir(work.path(), events)
            });
        match result {
            Ok(end) if end == events => survived += 1,
            Ok(end) => {
                first_failure.get_or_insert(format!("injection {i}: {end} events, not {events}"));
            }
            Err(e) => {
                first_failure.get_or_insert(format!("injection {i}: {e}"));
            }
        }
    }
    let mut note = "random bytes after the last record of the active segment: truncated on open, \
                    acknowledged events kept"
        .to_owned();
    if let Some(f) = first_failure {
        note.push_str(&format!("; FIRST FAILURE: {f}"));
    }
    Ok(Row {
        fault: "torn tail (active segment)",
        injected: n,
        survived,
        note,
    })
}
