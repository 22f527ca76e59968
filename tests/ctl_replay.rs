//! The projection is a rebuildable cache of the log: after a workload, every API answer is the same
//! byte for byte whether otsd serves from the live projection, from a checkpoint `otsctl replay`
//! rebuilt from the log alone, from a full replay at start-up, or from the checkpoint otsd itself
//! kept current. Checkpoints that are damaged, foreign or folded with other settings are ignored
//! with a warning saying why, and change no answer. Small (1 MiB) segments make the workloads cross
//! segment boundaries, where checkpoints are taken.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::bitcoind::Bitcoind;
use common::{commitment_of, fund_stamper, new_calendar, otsctl, Otsd};
use serde_json::Value;

/// otsd's smallest segment (`--segment-size-mib` is at least 1).
const SEGMENT_ARGS: [&str; 2] = ["--segment-size-mib", "1"];
/// Digests posted per batch of a workload.
const BATCH: u32 = 1200;
/// The answer to `GET /timestamp` for a pending commitment.
const PENDING: &str = "Pending confirmation in Bitcoin blockchain";

/// One HTTP/1.1 connection kept alive for many requests (the workloads send thousands).
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// An answer as a client sees it: status, every header but `Date`, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Conn {
            reader: BufReader::new(s.try_clone().expect("clone socket")),
            writer: s,
        }
    }

    fn request(&mut self, method: &str, path: &str, headers: &str, body: &[u8]) -> Answer {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Like [`Conn::request`], but an error when the server is gone.
    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> std::io::Result<Answer> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.writer.write_all(&req)?;
        self.read_answer()
    }

    fn read_answer(&mut self) -> std::io::Result<Answer> {
        let mut status = 0;
        let mut headers = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(code) = l.strip_prefix("HTTP/1.1 ") {
                status = code[..3].parse().expect("status code");
            } else if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body)?;
        headers.retain(|(k, _)| k != "date");
        headers.sort();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// A 64-byte digest unique to (phase, worker, i).
fn digest(phase: u8, worker: u8, i: u32) -> Vec<u8> {
    let mut d = vec![phase; 64];
    d[1] = worker;
    d[2..6].copy_from_slice(&i.to_be_bytes());
    d
}

/// Posts [`BATCH`] digests from `workers` clients at once; returns the commitments answered.
fn post_batch(addr: SocketAddr, phase: u8, batch: u32, workers: u8) -> BTreeSet<Vec<u8>> {
    let per_worker = BATCH / u32::from(workers);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    let mut conn = Conn::open(addr);
                    (0..per_worker)
                        .map(|i| {
                            let d = digest(phase, w, batch * per_worker + i);
                            let a = conn.request("POST", "/digest", "", &d);
                            assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
                            commitment_of(&d, &a.body)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    })
}

/// Posts batches of digests from `workers` clients until the log has at least `segments` segment
/// files.
fn post_until_segments(
    otsd: &Otsd,
    cal: &Path,
    phase: u8,
    workers: u8,
    segments: usize,
) -> BTreeSet<Vec<u8>> {
    let mut all = BTreeSet::new();
    let mut batch = 0;
    while segment_starts(cal).len() < segments {
        assert!(batch < 200, "the log never grew to {segments} segments");
        all.extend(post_batch(otsd.addr, phase, batch, workers));
        batch += 1;
    }
    all
}

/// First sequence numbers of the log's segments, in order.
fn segment_starts(cal: &Path) -> Vec<u64> {
    let mut starts: Vec<u64> = std::fs::read_dir(cal.join("log"))
        .expect("log dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    starts.sort();
    starts
}

/// The `next_seq` the checkpoint in `projection` stands at (bytes 16..24 of `checkpoint`).
fn checkpoint_seq(projection: &Path) -> u64 {
    let bytes = std::fs::read(projection.join("checkpoint")).expect("a checkpoint file");
    u64::from_le_bytes(bytes[16..24].try_into().unwrap())
}

/// Every GET answer worth comparing: `/timestamp/` of each commitment and of unknown ones, `/tip`,
/// and the info page as JSON and HTML. Keyed by request.
type Snapshot = BTreeMap<String, Answer>;

fn snapshot(addr: SocketAddr, commitments: &BTreeSet<Vec<u8>>) -> Snapshot {
    let mut requests: Vec<(String, &str)> = commitments
        .iter()
        .map(|c| (format!("/timestamp/{}", hex::encode(c)), ""))
        .collect();
    let some = commitments.iter().next().expect("a commitment");
    let mut flipped = some.clone();
    flipped[40] ^= 1;
    for unknown in [
        hex::encode(flipped),
        hex::encode([0x42; 44]),
        hex::encode([0x42; 32]),
        "zz".to_owned(),
    ] {
        requests.push((format!("/timestamp/{unknown}"), ""));
    }
    requests.push(("/tip".to_owned(), ""));
    requests.push(("/".to_owned(), "Accept: application/json\r\n"));
    requests.push(("/".to_owned(), ""));
    let chunk = requests.len().div_ceil(4);
    std::thread::scope(|s| {
        let parts: Vec<_> = requests
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut conn = Conn::open(addr);
                    part.iter()
                        .map(|(path, headers)| {
                            let key = format!("GET {path} [{}]", headers.trim());
                            (key, conn.request("GET", path, headers, b""))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("snapshot worker"))
            .collect()
    })
}

/// Panics naming the first few requests answered differently in `got` than in `want`.
fn assert_same(want: &Snapshot, got: &Snapshot, what: &str) {
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "{what}: different requests"
    );
    let diffs: Vec<String> = want
        .iter()
        .filter(|(k, a)| got[*k] != **a)
        .map(|(k, a)| {
            let b = &got[k];
            format!(
                "{k}:\n  want {} {:?} {:?}\n  got  {} {:?} {:?}",
                a.status,
                a.headers,
                String::from_utf8_lossy(&a.body[..a.body.len().min(200)]),
                b.status,
                b.headers,
                String::from_utf8_lossy(&b.body[..b.body.len().min(200)]),
            )
        })
        .collect();
    assert!(
        diffs.is_empty(),
        "{what}: {} of {} answers differ, first ones:\n{}",
        diffs.len(),
        want.len(),
        diffs[..diffs.len().min(5)].join("\n")
    );
}

/// The info page as JSON, from a snapshot.
fn info(snap: &Snapshot) -> Value {
    let a = &snap["GET / [Accept: application/json]"];
    serde_json::from_slice(&a.body).expect("info JSON")
}

/// The line otsd logs after rebuilding its projection.
fn rebuilt_line(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains("rebuilt the projection"))
        .unwrap_or_else(|| panic!("no rebuild line in otsd's log:\n{log}"))
}

/// Asserts that otsd's start-up used the checkpoint standing at `seq`.
fn assert_used_checkpoint(log: &str, seq: u64) {
    let line = rebuilt_line(log);
    assert!(
        line.contains(&format!("checkpoint=Some({seq})")),
        "expected a start from the checkpoint at seq {seq}: {line}"
    );
    assert!(!log.contains("ignoring the projection checkpoint"), "{log}");
}

/// Asserts that otsd's start-up replayed the whole log.
fn assert_full_replay(log: &str) {
    let line = rebuilt_line(log);
    assert!(
        line.contains("checkpoint=None"),
        "expected a full replay: {line}"
    );
}

/// `otsctl replay CAL --json EXTRA...`, which must succeed; returns its summary.
fn replay_json(cal: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["replay", cal.to_str().unwrap(), "--json", "--no-bar"];
    args.extend_from_slice(extra);
    let (ok, out, err) = otsctl(&args);
    assert!(ok, "otsctl {args:?}:\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Starts otsd (small segments, no stamper), snapshots, stops; returns the snapshot and its log.
/// No stamper, so that nothing but the projection decides the answers: a stamper would append
/// events of its own (a new transaction for the pending rounds) and report the node's state in
/// the info page, so answers would change between runs for reasons other than the replay.
fn serve_and_snapshot(cal: &Path, commitments: &BTreeSet<Vec<u8>>) -> (Snapshot, String) {
    let otsd = Otsd::start(cal, &SEGMENT_ARGS);
    let snap = snapshot(otsd.addr, commitments);
    (snap, otsd.stop())
}

fn projection(cal: &Path) -> PathBuf {
    cal.join("projection")
}

fn remove_projection(cal: &Path) {
    std::fs::remove_dir_all(projection(cal)).expect("remove the projection");
}

/// A calendar after a workload (no stamper) that spans `segments` segments; otsd has stopped.
fn calendar_with_workload(segments: usize) -> (tempfile::TempDir, PathBuf, BTreeSet<Vec<u8>>) {
    let dir = new_calendar();
    let cal = dir.path().join("calendar");
    let otsd = Otsd::start(&cal, &SEGMENT_ARGS);
    let commitments = post_until_segments(&otsd, &cal, 1, 8, segments);
    otsd.stop();
    (dir, cal, commitments)
}

/// Runs otsd with a stamper on `node` until every one of `commitments` has its complete proof.
fn stamp_until_final(node: &Bitcoind, cal: &Path, commitments: &BTreeSet<Vec<u8>>) {
    let stamper = node.stamper_args();
    let mut args = SEGMENT_ARGS.to_vec();
    args.extend(stamper.iter().map(String::as_str));
    let otsd = Otsd::start(cal, &args);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn = Conn::open(otsd.addr);
    let mut waiting: Vec<&Vec<u8>> = commitments.iter().collect();
    while !waiting.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} commitments still not final",
            waiting.len()
        );
        let pool: Vec<bitcoin::Txid> = node.rpc("getrawmempool", &[]);
        if !pool.is_empty() {
            node.mine(6);
        }
        std::thread::sleep(Duration::from_millis(200));
        waiting.retain(|c| {
            let path = format!("/timestamp/{}", hex::encode(c));
            conn.request("GET", &path, "", b"").status != 200
        });
    }
    otsd.stop();
}

#[test]
fn answers_are_identical_after_otsctl_replay_a_full_replay_and_a_restart_from_the_checkpoint() {
    let node = Bitcoind::start();
    let dir = new_calendar();
    let cal = dir.path().join("calendar");
    fund_stamper(&node, &cal);

    // A workload over two segments, stamped and final; then more, left pending, over a third.
    // Serving a complete proof costs time in the number of rounds its transaction covers, so the
    // stamped rounds are few and large: 60 clients at once, a round every 20 ms at most.
    let mut args = SEGMENT_ARGS.to_vec();
    args.extend_from_slice(&["--min-round-interval-ms", "20"]);
    let otsd = Otsd::start(&cal, &args);
    let stamped = post_until_segments(&otsd, &cal, 1, 60, 2);
    otsd.stop();
    stamp_until_final(&node, &cal, &stamped);
    let otsd = Otsd::start(&cal, &SEGMENT_ARGS);
    let pending = post_until_segments(&otsd, &cal, 2, 8, 3);
    let all: BTreeSet<Vec<u8>> = stamped.union(&pending).cloned().collect();
    let live = snapshot(otsd.addr, &all);
    otsd.stop();

    let starts = segment_starts(&cal);
    let active = *starts.last().unwrap();
    let info_live = info(&live);
    let complete = |c: &Vec<u8>| {
        let a = &live[&format!("GET /timestamp/{} []", hex::encode(c))];
        a.status == 200 && a.header("content-type") == Some("application/octet-stream")
    };
    assert!(stamped.iter().all(complete), "stamped rounds are final");
    assert!(
        pending.iter().all(|c| {
            let a = &live[&format!("GET /timestamp/{} []", hex::encode(c))];
            (a.status, a.body.as_slice()) == (404, PENDING.as_bytes())
        }),
        "later rounds are pending"
    );
    assert_eq!(info_live["rounds_total"], all.len() as u64);
    assert_eq!(info_live["pending_commitments"], pending.len() as u64);
    assert!(
        live["GET /tip []"].status == 404,
        "no stamper, so no unmined stamping transaction and no tip (as the Python server)"
    );
    // The running checkpointer and the shutdown kept the checkpoint at the active segment.
    assert_eq!(checkpoint_seq(&projection(&cal)), active);

    // (a) otsctl replay rebuilds the checkpoint from the log alone; otsd starts from it.
    remove_projection(&cal);
    let summary = replay_json(&cal, &[]);
    assert_eq!(summary["rounds"], info_live["rounds_total"], "{summary}");
    assert_eq!(summary["digests"], info_live["digests_total"], "{summary}");
    assert_eq!(summary["next_seq"], info_live["log_next_seq"], "{summary}");
    assert_eq!(summary["events"], info_live["log_next_seq"], "{summary}");
    assert_eq!(summary["segments"], starts.len() as u64, "{summary}");
    assert_eq!(summary["checkpoint_seq"], active, "{summary}");
    assert_eq!(
        summary["checkpoint"],
        projection(&cal).to_str().unwrap(),
        "{summary}"
    );
    let (after_replay, log) = serve_and_snapshot(&cal, &all);
    assert_used_checkpoint(&log, active);
    assert_same(&live, &after_replay, "after otsctl replay");

    // (b) no projection at all: otsd replays the whole log.
    remove_projection(&cal);
    let (after_full, log) = serve_and_snapshot(&cal, &all);
    assert_full_replay(&log);
    assert!(!log.contains("ignoring the projection checkpoint"), "{log}");
    assert_same(&live, &after_full, "after a full replay");

    // (c) from the checkpoint (b) wrote.
    assert_eq!(checkpoint_seq(&projection(&cal)), active);
    let (from_checkpoint, log) = serve_and_snapshot(&cal, &all);
    assert_used_checkpoint(&log, active);
    assert_same(
        &live,
        &from_checkpoint,
        "after a restart from otsd's checkpoint",
    );
}

/// Every file of `dir` with its bytes (empty if `dir` does not exist).
fn dir_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| {
            let e = e.expect("dir entry");
            let bytes = std::fs::read(e.path()).expect("read file");
            (e.file_name().into_string().expect("utf-8 name"), bytes)
        })
        .collect()
}

#[test]
fn replay_out_writes_elsewhere_dry_run_writes_nothing_and_out_refuses_an_existing_checkpoint() {
    let (dir, cal, commitments) = calendar_with_workload(2);
    let active = *segment_starts(&cal).last().unwrap();
    let (want, log) = serve_and_snapshot(&cal, &commitments);
    assert_used_checkpoint(&log, active);
    let proj = projection(&cal);
    let before = dir_bytes(&proj);
    assert!(before.contains_key("checkpoint") && before.contains_key("rounds"));

    let other = dir.path().join("other");
    let other_s = other.to_str().unwrap();
    let summary = replay_json(&cal, &["--out", other_s]);
    assert_eq!(summary["checkpoint"], other_s, "{summary}");
    assert_eq!(summary["checkpoint_seq"], active, "{summary}");
    let written = dir_bytes(&other);
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        ["checkpoint", "digests", "index", "proofs", "rounds", "txs"],
        "{other:?}"
    );
    assert_eq!(dir_bytes(&proj), before, "DIR/projection was touched");
    // The round table otsd grew by appending is the one replay writes at once.
    assert_eq!(written["rounds"], before["rounds"]);

    let summary = replay_json(&cal, &["--dry-run"]);
    assert_eq!(summary["checkpoint"], Value::Null, "{summary}");
    assert_eq!(summary["rounds"], commitments.len() as u64, "{summary}");
    assert_eq!(
        dir_bytes(&proj),
        before,
        "--dry-run wrote into DIR/projection"
    );
    remove_projection(&cal);
    replay_json(&cal, &["--dry-run"]);
    assert!(!proj.exists(), "--dry-run created DIR/projection");

    let (ok, out, err) = otsctl(&["replay", cal.to_str().unwrap(), "--out", other_s]);
    assert!(!ok, "--out over an existing checkpoint succeeded: {out}");
    assert!(
        err.contains(other_s) && err.contains("already holds a checkpoint"),
        "{err}"
    );
    assert_eq!(dir_bytes(&other), written, "the refused --out was touched");

    // The checkpoint written elsewhere serves identically once moved into place.
    std::fs::rename(&other, &proj).expect("move the checkpoint in");
    let (got, log) = serve_and_snapshot(&cal, &commitments);
    assert_used_checkpoint(&log, active);
    assert_same(&want, &got, "from the --out checkpoint");
}

/// Flips one bit of `path` at `offset`.
fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset] ^= 0x10;
    std::fs::write(path, bytes).expect("write");
}

/// Replaces the calendar's projection with the files of `from`.
fn copy_projection(from: &Path, cal: &Path) {
    remove_projection(cal);
    std::fs::create_dir(projection(cal)).expect("create projection");
    for (name, bytes) in dir_bytes(from) {
        std::fs::write(projection(cal).join(name), bytes).expect("copy");
    }
}

/// Another calendar's projection directory, after a workload with large rounds over two segments;
/// with `key_of` it shares that calendar's hmac-key (so its checkpoint's HMAC verifies).
fn other_projection(key_of: Option<&Path>) -> (tempfile::TempDir, PathBuf) {
    let dir = new_calendar();
    let cal = dir.path().join("calendar");
    if let Some(src) = key_of {
        std::fs::copy(src.join("hmac-key"), cal.join("hmac-key")).expect("copy the hmac-key");
    }
    let mut args = SEGMENT_ARGS.to_vec();
    args.extend_from_slice(&["--min-round-interval-ms", "20"]);
    let otsd = Otsd::start(&cal, &args);
    post_until_segments(&otsd, &cal, 3, 60, 2);
    otsd.stop();
    assert!(checkpoint_seq(&projection(&cal)) > 0);
    (dir, projection(&cal))
}

#[test]
fn damaged_foreign_or_mismatched_checkpoints_are_ignored_with_a_warning_and_change_no_answer() {
    let (_dir, cal, commitments) = calendar_with_workload(2);
    let active = *segment_starts(&cal).last().unwrap();
    let (want, log) = serve_and_snapshot(&cal, &commitments);
    assert_used_checkpoint(&log, active);
    let (_other, foreign) = other_projection(None);
    let (_twin, same_key) = other_projection(Some(&cal));

    type Damage<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "a flipped bit in the snapshot",
            Box::new(|| flip(&projection(&cal).join("checkpoint"), 100)),
            "HMAC does not verify",
        ),
        (
            "a flipped bit in the round table",
            Box::new(|| {
                let rounds = projection(&cal).join("rounds");
                let len = std::fs::metadata(&rounds).unwrap().len() as usize;
                flip(&rounds, len / 2)
            }),
            "round table does not match its checkpoint",
        ),
        (
            "another calendar's checkpoint",
            Box::new(|| copy_projection(&foreign, &cal)),
            "made with another key",
        ),
        (
            "a checkpoint folded with --btc-min-confirmations 3",
            Box::new(|| {
                replay_json(&cal, &["--btc-min-confirmations", "3"]);
            }),
            "made with --btc-min-confirmations 3, otsd runs with 6",
        ),
        (
            "the checkpoint of another log under the same key",
            Box::new(|| copy_projection(&same_key, &cal)),
            "another",
        ),
    ];
    for (what, damage, why) in cases {
        damage();
        let (got, log) = serve_and_snapshot(&cal, &commitments);
        let warning = log
            .lines()
            .find(|l| l.contains("ignoring the projection checkpoint"))
            .unwrap_or_else(|| panic!("{what}: no warning:\n{log}"));
        assert!(
            warning.contains("WARN") && warning.contains(why),
            "{what}: {warning}"
        );
        assert_full_replay(&log);
        assert_same(&want, &got, what);
        // otsd wrote a fresh checkpoint in its place, and it serves identically.
        assert_eq!(checkpoint_seq(&projection(&cal)), active, "{what}");
        let (got, log) = serve_and_snapshot(&cal, &commitments);
        assert_used_checkpoint(&log, active);
        assert_same(
            &want,
            &got,
            &format!("{what}, then from the new checkpoint"),
        );
    }
}

#[test]
fn after_sigkill_under_load_every_answered_commitment_is_served_identically() {
    let dir = new_calendar();
    let cal = dir.path().join("calendar");
    let otsd = Otsd::start(&cal, &SEGMENT_ARGS);
    let addr = otsd.addr;
    let stop = AtomicBool::new(false);
    let answered: BTreeSet<Vec<u8>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8u8)
            .map(|w| {
                let stop = &stop;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    let mut conn = Conn::open(addr);
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let d = digest(4, w, i);
                        match conn.try_request("POST", "/digest", "", &d) {
                            Ok(a) if a.status == 200 => mine.push(commitment_of(&d, &a.body)),
                            Ok(a) => panic!("answer {}: {:?}", a.status, a.body),
                            Err(_) => break,
                        }
                    }
                    mine
                })
            })
            .collect();
        // Kill once the running otsd has checkpointed a sealed segment, mid-way through the next.
        let deadline = Instant::now() + Duration::from_secs(60);
        let checkpoint = projection(&cal).join("checkpoint");
        while !checkpoint.exists() || checkpoint_seq(&projection(&cal)) == 0 {
            assert!(
                Instant::now() < deadline,
                "no checkpoint after a sealed segment"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        otsd.kill();
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    assert!(answered.len() > 1000, "{} answers", answered.len());
    let at = checkpoint_seq(&projection(&cal));

    let (got, log) = serve_and_snapshot(&cal, &answered);
    assert_used_checkpoint(&log, at);
    let lost: Vec<_> = answered
        .iter()
        .filter(|c| {
            let a = &got[&format!("GET /timestamp/{} []", hex::encode(c))];
            (a.status, a.body.as_slice()) != (404, PENDING.as_bytes())
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered commitments are not pending",
        lost.len(),
        answered.len()
    );

    // A full replay of the same log gives the same answers.
    remove_projection(&cal);
    let (full, log) = serve_and_snapshot(&cal, &answered);
    assert_full_replay(&log);
    assert_same(&full, &got, "after SIGKILL, checkpoint against full replay");
}
