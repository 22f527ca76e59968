//! Live mirrors (`otsd --mirror-of`) against real `otsd` primaries over loopback HTTP: following
//! under load, identical answers, `POST /digest` refused, the published log's HTTP behaviour,
//! resuming after restarts and outages, fork refusal, promotion and the single-writer guard, and
//! the failover drill (with a real regtest bitcoind for stamping).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bitcoincore_rpc::RpcApi;
use common::bitcoind::Bitcoind;
use common::{
    calendar_with_uri, commitment_of, free_port, fund_stamper, get, in_parallel, otsctl,
    post_digest, wait_for, Otsd,
};

/// A primary calendar on a fixed free port (so it can be restarted on the same URL), with 1 MiB
/// segments so that a few thousand digests seal some.
struct Primary {
    _dir: tempfile::TempDir,
    cal: PathBuf,
    port: u16,
}

impl Primary {
    fn new() -> Primary {
        let port = free_port();
        let dir = calendar_with_uri(&format!("http://127.0.0.1:{port}"));
        let cal = dir.path().join("calendar");
        Primary {
            _dir: dir,
            cal,
            port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&self, extra: &[&str]) -> Otsd {
        let port = self.port.to_string();
        let mut args = vec!["--rpc-port", &port, "--segment-size-mib", "1"];
        args.extend_from_slice(extra);
        Otsd::start(&self.cal, &args)
    }
}

fn start_mirror(dir: &Path, primary: &str, extra: &[&str]) -> Otsd {
    let mut args = vec!["--mirror-of", primary, "--mirror-poll-ms", "20"];
    args.extend_from_slice(extra);
    Otsd::start(dir, &args)
}

fn info(otsd: &Otsd) -> serde_json::Value {
    let r = get(otsd.addr, "/", "Accept: application/json\r\n");
    serde_json::from_slice(&r.body).expect("info JSON")
}

fn next_seq(otsd: &Otsd) -> u64 {
    info(otsd)["log_next_seq"].as_u64().expect("log_next_seq")
}

/// Waits until the mirror holds everything the primary has logged.
fn caught_up(primary: &Otsd, mirror: &Otsd, secs: u64) {
    let want = next_seq(primary);
    wait_for("the mirror to catch up", secs, || {
        (next_seq(mirror) >= want).then_some(())
    });
}

/// Submits `workers * each` random digests; returns (digest, commitment) of each.
fn load(otsd: &Otsd, workers: u32, each: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    in_parallel(workers, each, |_, _| {
        let digest: [u8; 32] = rand::random();
        let r = post_digest(otsd.addr, &digest);
        assert_eq!(r.status, 200, "{}", r.text());
        (digest.to_vec(), commitment_of(&digest, &r.body))
    })
}

/// `GET /timestamp/<commitment>` on both: same status, body and cache header.
fn same_answer(primary: &Otsd, mirror: &Otsd, commitment: &[u8]) {
    let path = format!("/timestamp/{}", hex::encode(commitment));
    let (p, m) = (get(primary.addr, &path, ""), get(mirror.addr, &path, ""));
    assert_eq!((p.status, &p.body), (m.status, &m.body), "{path}");
    assert_eq!(p.header("cache-control"), m.header("cache-control"));
}

/// The value of the unlabelled series `name` in the otsd's `/metrics`.
fn metric(otsd: &Otsd, name: &str) -> f64 {
    let text = get(otsd.addr, "/metrics", "").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

fn segments_txt(addr: std::net::SocketAddr) -> String {
    let r = get(addr, "/log/segments.txt", "");
    assert_eq!(r.status, 200);
    r.text()
}

#[test]
fn follows_under_load_serves_the_same_answers_and_refuses_digests() {
    let primary = Primary::new();
    let p = primary.start(&[]);
    let mdir = tempfile::tempdir().unwrap();
    let m = start_mirror(mdir.path(), &primary.url(), &[]);
    let submitted = load(&p, 8, 1500);
    caught_up(&p, &m, 60);
    for (_, c) in submitted.iter().step_by(7) {
        same_answer(&p, &m, c);
    }
    assert_eq!(
        get(m.addr, "/tip", "").status,
        get(p.addr, "/tip", "").status
    );
    let (pi, mi) = (info(&p), info(&m));
    assert_eq!(pi["digests_total"], mi["digests_total"]);
    assert_eq!(pi["uri"], mi["uri"], "the mirror serves the primary's URI");
    assert_eq!(mi["mirror"]["primary"], primary.url());
    assert!(mi["mirror"]["fork"].is_null(), "{mi}");
    assert!(get(m.addr, "/", "").text().contains("Read-only mirror of"));
    // The follower's figures in /metrics: caught up a moment ago, no fork, the primary answers.
    let lag = metric(&m, "otsd_mirror_lag_seconds");
    assert!((0.0..5.0).contains(&lag), "mirror lag {lag}");
    assert_eq!(metric(&m, "otsd_mirror_fork_refused"), 0.0);
    assert_eq!(metric(&m, "otsd_mirror_source_unreachable"), 0.0);
    assert_eq!(metric(&p, "otsd_mirror_lag_seconds"), -1.0, "not a mirror");

    let r = post_digest(m.addr, &[7; 32]);
    assert_eq!(r.status, 503);
    assert!(r.text().contains(&primary.url()), "{}", r.text());

    // The published log: the mirror's copy is byte for byte the primary's.
    let (pidx, midx) = (segments_txt(p.addr), segments_txt(m.addr));
    let sealed: Vec<&str> = pidx.lines().filter(|l| l.ends_with(" sealed")).collect();
    assert!(!sealed.is_empty(), "some segments sealed:\n{pidx}");
    for line in &sealed {
        assert!(
            midx.contains(line),
            "{line} not in the mirror's index:\n{midx}"
        );
    }
    let name = sealed[0].split(' ').next().unwrap();
    let whole = get(p.addr, &format!("/log/{name}"), "");
    assert_eq!(whole.status, 200);
    assert_eq!(
        whole.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let part = get(p.addr, &format!("/log/{name}"), "Range: bytes=10-19\r\n");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, whole.body[10..20]);
    let len = whole.body.len();
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-19/{len}").as_str())
    );
    let beyond = get(
        p.addr,
        &format!("/log/{name}"),
        &format!("Range: bytes={len}-\r\n"),
    );
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    let open = pidx.lines().last().unwrap();
    assert!(open.ends_with(" open"), "{open}");
    let open_name = open.split(' ').next().unwrap();
    let r = get(p.addr, &format!("/log/{open_name}"), "");
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert!(get(p.addr, "/log/hmac-key", "").status == 404);
    assert!(get(p.addr, "/log/../hmac-key", "").status == 404);
    m.stop();
    p.stop();
}

/// The open segment's (name, listed length) in a `/log/segments.txt`.
fn open_segment(index: &str) -> (String, u64) {
    let line = index.lines().last().expect("an index line");
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f.get(3), Some(&"open"), "{line}");
    (f[0].to_string(), f[1].parse().expect("length"))
}

/// The published log never runs ahead of the durable end: with every `fdatasync` stalled for
/// 3 s (failpoint `log-fdatasync-stall-ms`), a submitted digest's records sit in the segment file
/// written but not synced. Inside the stall, `GET /log/segments.txt`, the open segment's bytes
/// (whole or by Range) and a following mirror must all stop at the old end; once its
/// `POST /digest` is answered, all of them include it.
///
/// The checks run only in the first half of the stall, timed from when the records were seen
/// written (at most one 100 ms poll after the stall began): the stall's end publishes the records
/// a moment before the answer reaches the poster, so "until the poster has its answer" is not a
/// window in which the old end is guaranteed.
#[test]
fn the_open_segment_is_published_only_up_to_the_durable_end() {
    let primary = Primary::new();
    let port = primary.port.to_string();
    let p = Otsd::start_env(
        &primary.cal,
        &["--rpc-port", &port, "--segment-size-mib", "1"],
        &[("OTSD_FAILPOINTS", "log-fdatasync-stall-ms=3000")],
    );
    let mdir = tempfile::tempdir().unwrap();
    let m = start_mirror(mdir.path(), &primary.url(), &[]);
    caught_up(&p, &m, 30);
    let before_seq = next_seq(&m);
    let (name, durable) = open_segment(&segments_txt(p.addr));
    let file = primary.cal.join("log").join(&name);
    // Segments are preallocated with zeros: written records show as non-zero bytes past the end.
    let written_past = |end: u64| {
        let bytes = std::fs::read(&file).unwrap();
        bytes[end as usize..]
            .iter()
            .rposition(|b| *b != 0)
            .map(|i| end + i as u64 + 1)
    };
    assert_eq!(written_past(durable), None);

    let addr = p.addr;
    let poster = std::thread::spawn(move || post_digest(addr, &[7u8; 32]));
    // The digest's records are written (the file grew) but their fdatasync is stalled.
    wait_for("the round to be written before its fdatasync", 10, || {
        written_past(durable).map(|_| ())
    });
    let seen_written = std::time::Instant::now();
    let mut checks = 0;
    while seen_written.elapsed() < Duration::from_millis(1500) {
        assert!(!poster.is_finished(), "answered inside the fdatasync stall");
        assert_eq!(open_segment(&segments_txt(p.addr)), (name.clone(), durable));
        let whole = get(p.addr, &format!("/log/{name}"), "");
        assert_eq!(whole.status, 200);
        assert_eq!(
            whole.body.len() as u64,
            durable,
            "served beyond the durable end"
        );
        let beyond = get(
            p.addr,
            &format!("/log/{name}"),
            &format!("Range: bytes={durable}-\r\n"),
        );
        assert_eq!(
            beyond.status, 416,
            "a Range past the durable end was answered"
        );
        assert_eq!(
            next_seq(&m),
            before_seq,
            "the mirror got a record not yet durable"
        );
        checks += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(checks >= 5, "only {checks} checks inside the stall");
    let answer = poster.join().unwrap();
    assert_eq!(answer.status, 200);

    // Once acknowledged, it is published and followed. `written_past` stops at the last non-zero
    // byte, so a record whose CRC ends in a zero byte looks a byte or more shorter than it is.
    wait_for("the durable end to move", 10, || {
        let written = written_past(durable)?;
        let (open, end) = open_segment(&segments_txt(p.addr));
        (open == name && end >= written && end > durable).then_some(end)
    });
    let whole = get(p.addr, &format!("/log/{name}"), "");
    assert!(whole.body.len() as u64 > durable);
    caught_up(&p, &m, 30);
    let commitment = commitment_of(&[7u8; 32], &answer.body);
    same_answer(&p, &m, &commitment);
    m.stop();
    p.stop();
}

#[test]
fn resumes_after_its_own_restart_and_after_the_primary_was_down() {
    let primary = Primary::new();
    let p = primary.start(&[]);
    let mdir = tempfile::tempdir().unwrap();
    let m = start_mirror(mdir.path(), &primary.url(), &[]);
    let mut all = load(&p, 4, 300);
    caught_up(&p, &m, 60);
    // The mirror stops; the primary goes on.
    m.stop();
    all.extend(load(&p, 4, 300));
    let m = start_mirror(mdir.path(), &primary.url(), &[]);
    caught_up(&p, &m, 60);
    // The primary goes away and comes back on the same URL.
    p.stop();
    std::thread::sleep(Duration::from_millis(500));
    let down = info(&m);
    assert!(
        !down["mirror"]["unreachable_since"].is_null(),
        "the mirror reports the primary unreachable: {down}"
    );
    assert_eq!(metric(&m, "otsd_mirror_source_unreachable"), 1.0);
    let lag = metric(&m, "otsd_mirror_lag_seconds");
    assert!(lag >= 0.3, "the lag grows while the primary is down: {lag}");
    let p = primary.start(&[]);
    all.extend(load(&p, 4, 300));
    caught_up(&p, &m, 60);
    wait_for("the mirror to report the primary reachable", 30, || {
        (metric(&m, "otsd_mirror_source_unreachable") == 0.0).then_some(())
    });
    let lag = metric(&m, "otsd_mirror_lag_seconds");
    assert!((0.0..5.0).contains(&lag), "caught up again: lag {lag}");
    for (_, c) in &all {
        same_answer(&p, &m, c);
    }
    assert!(info(&m)["mirror"]["fork"].is_null());
    let log = m.stop();
    assert!(log.contains("answers again"), "{log}");
    p.stop();
}

#[test]
fn a_primary_that_rewrites_history_is_refused_and_the_copy_kept() {
    let primary = Primary::new();
    let backup = tempfile::tempdir().unwrap();
    let p = primary.start(&[]);
    load(&p, 2, 50);
    p.stop();
    // The state an operator might wrongly restore later.
    copy_dir(&primary.cal, &backup.path().join("calendar"));
    let p = primary.start(&[]);
    let mdir = tempfile::tempdir().unwrap();
    let m = start_mirror(mdir.path(), &primary.url(), &[]);
    let acknowledged = load(&p, 2, 50);
    caught_up(&p, &m, 60);
    let held = next_seq(&m);
    m.stop();
    p.stop();
    // Restore the old state: the primary now writes another history after the backup's end.
    std::fs::remove_dir_all(&primary.cal).unwrap();
    copy_dir(&backup.path().join("calendar"), &primary.cal);
    let p = primary.start(&[]);
    load(&p, 2, 150);
    let m = start_mirror(mdir.path(), &primary.url(), &[]);
    let fork = wait_for("the fork to be reported", 30, || {
        let f = info(&m)["mirror"]["fork"].clone();
        (!f.is_null()).then_some(f)
    });
    assert!(fork["offset"].as_u64().is_some_and(|o| o > 0), "{fork}");
    assert_eq!(fork["our_next_seq"].as_u64(), Some(held), "{fork}");
    // The mirror keeps its copy and keeps serving every commitment it had.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(next_seq(&m), held);
    for (_, c) in &acknowledged {
        let r = get(m.addr, &format!("/timestamp/{}", hex::encode(c)), "");
        assert_eq!(r.status, 404, "pending, as before");
        assert_eq!(r.text(), "Pending confirmation in Bitcoin blockchain");
    }
    assert!(get(m.addr, "/", "").text().contains("Fork refused"));
    assert_eq!(metric(&m, "otsd_mirror_fork_refused"), 1.0);
    let log = m.stop();
    assert!(log.contains("FORK REFUSED"), "{log}");
    p.stop();
}

#[test]
fn promotion_is_explicit_and_guarded() {
    let primary = Primary::new();
    let p = primary.start(&[]);
    let mdir = tempfile::tempdir().unwrap();
    let mcal = mdir.path().join("mirror");
    std::fs::create_dir_all(&mcal).unwrap();
    std::fs::copy(primary.cal.join("hmac-key"), mcal.join("hmac-key")).unwrap();
    let m = start_mirror(&mcal, &primary.url(), &[]);
    let acknowledged = load(&p, 2, 100);
    caught_up(&p, &m, 60);

    // One role per directory.
    let (ok, out) = otsd_fails(&mcal, &["--rpc-port", "0"]);
    assert!(!ok && out.contains("read-only mirror of"), "{out}");
    let (ok, out) = otsd_fails(&primary.cal, &["--mirror-of", "http://127.0.0.1:9/"]);
    assert!(!ok && out.contains("holds a primary's log"), "{out}");
    // Not while the primary answers.
    let m_log = m.stop();
    assert!(m_log.contains("hmac_chain=true"), "{m_log}");
    let (ok, out, err) = otsctl(&["promote", mcal.to_str().unwrap()]);
    assert!(!ok && err.contains("still answers"), "{out}{err}");

    p.kill();
    let (ok, out, err) = otsctl(&["promote", mcal.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("promoted"), "{out}");
    let port = primary.port.to_string();
    let new = Otsd::start(&mcal, &["--rpc-port", &port]);
    for (_, c) in &acknowledged {
        let r = get(new.addr, &format!("/timestamp/{}", hex::encode(c)), "");
        assert_eq!(r.text(), "Pending confirmation in Bitcoin blockchain");
    }
    assert_eq!(post_digest(new.addr, &[9; 32]).status, 200);
    new.stop();
}

/// Runs otsd expecting it to refuse to start; (success, its output).
fn otsd_fails(cal: &Path, extra: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otsd"));
    cmd.arg("-c")
        .arg(cal)
        .args(["--rpc-address", "127.0.0.1", "--btc-regtest"])
        .args(extra);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn otsd");
    let out = child.wait_with_output().expect("otsd output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp")
        .success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

/// The failover drill, with a real regtest node: a primary stamping under load with a live mirror;
/// SIGKILL the primary and delete its calendar directory; the mirror serves what the primary
/// acknowledged (up to its lag); `otsctl recover` rebuilds the primary from the mirror's URL with
/// the calendar's secrets (kept apart, as an operator keeps `hmac-key` and `stamper-key`); the
/// rebuilt primary serves every commitment, stamps, and the mirror follows it without a fork.
/// Pending, mined and complete answers are compared between primary and mirror on the way.
#[test]
fn failover_drill() {
    let node = Bitcoind::start();
    let primary = Primary::new();
    fund_stamper(&node, &primary.cal);
    let secrets = tempfile::tempdir().unwrap();
    for f in ["uri", "donation_addr", "hmac-key", "stamper-key"] {
        std::fs::copy(primary.cal.join(f), secrets.path().join(f)).unwrap();
    }
    let stamper: Vec<String> = node.stamper_args();
    let stamper: Vec<&str> = stamper.iter().map(String::as_str).collect();
    let p = primary.start(&stamper);
    let mdir = tempfile::tempdir().unwrap();
    let m = start_mirror(mdir.path(), &primary.url(), &[]);

    // A first round, stamped and mined: the mirror gives the same answers at each stage.
    let first = load(&p, 1, 3);
    let (_, c0) = &first[0];
    caught_up(&p, &m, 30);
    same_answer(&p, &m, c0);
    wait_for("the stamping tx in the mempool", 60, || {
        (!node.client.get_raw_mempool().unwrap().is_empty()).then_some(())
    });
    node.mine(1);
    let path0 = format!("/timestamp/{}", hex::encode(c0));
    wait_for("the mined answer", 60, || {
        get(p.addr, &path0, "")
            .text()
            .starts_with("Timestamped by")
            .then_some(())
    });
    caught_up(&p, &m, 30);
    same_answer(&p, &m, c0);
    node.mine(5);
    wait_for("the complete proof", 60, || {
        (get(p.addr, &path0, "").status == 200).then_some(())
    });
    caught_up(&p, &m, 30);
    same_answer(&p, &m, c0);

    // Under load: acknowledged digests, then SIGKILL.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let (addr, pid) = (p.addr, p.child.id().to_string());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let digest: [u8; 32] = rand::random();
                    match common::try_post_digest(addr, &digest) {
                        Some(r) if r.status == 200 => acknowledged
                            .lock()
                            .unwrap()
                            .push(commitment_of(&digest, &r.body)),
                        _ => return,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(3));
        let killed = Command::new("kill").args(["-KILL", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -KILL otsd");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    p.kill();
    let killed = Instant::now();
    std::fs::remove_dir_all(&primary.cal).unwrap();
    let acknowledged = acknowledged.into_inner().unwrap();
    let lag = info(&m)["mirror"]["lag_ms"].clone();
    let lacking = acknowledged
        .iter()
        .filter(|c| get(m.addr, &format!("/timestamp/{}", hex::encode(c)), "").status != 404)
        .count();
    let checked = killed.elapsed();
    eprintln!(
        "drill: {} digests acknowledged under load; the mirror lacks {lacking} (lag {lag} ms); \
         checked in {:.2} s",
        acknowledged.len(),
        checked.as_secs_f64()
    );
    assert!(acknowledged.len() > 100, "load ran");
    assert!(
        lacking * 20 <= acknowledged.len(),
        "the mirror lacks {lacking} of {} acknowledged digests",
        acknowledged.len()
    );

    // Rebuild the primary from the mirror's published copy.
    let t = Instant::now();
    std::fs::create_dir_all(&primary.cal).unwrap();
    for f in ["uri", "donation_addr", "hmac-key", "stamper-key"] {
        std::fs::copy(secrets.path().join(f), primary.cal.join(f)).unwrap();
    }
    let from = format!("{}/log/", m.url());
    let (ok, out, err) = otsctl(&["recover", primary.cal.to_str().unwrap(), "--from", &from]);
    assert!(ok, "otsctl recover: {out}{err}");
    let recovered = t.elapsed();
    let t = Instant::now();
    let p = primary.start(&stamper);
    let started = t.elapsed();
    let t = Instant::now();
    for c in acknowledged.iter().chain(std::iter::once(c0)) {
        let path = format!("/timestamp/{}", hex::encode(c));
        let (pr, mr) = (get(p.addr, &path, ""), get(m.addr, &path, ""));
        assert_eq!((pr.status, &pr.body), (mr.status, &mr.body), "{path}");
    }
    let served = t.elapsed();

    // It stamps again, and the mirror follows it without a fork.
    let t = Instant::now();
    let after = load(&p, 1, 2);
    let (_, c1) = &after[0];
    let path1 = format!("/timestamp/{}", hex::encode(c1));
    // A transaction the killed primary broadcast may still be in the mempool: mine until the new
    // commitment's own proof is complete.
    wait_for("the complete proof after the recovery", 120, || {
        let r = get(p.addr, &path1, "");
        if r.status == 200 {
            return Some(());
        }
        if r.text().starts_with("Timestamped by")
            || !node.client.get_raw_mempool().unwrap().is_empty()
        {
            node.mine(1);
        }
        None
    });
    let stamped = t.elapsed();
    caught_up(&p, &m, 30);
    same_answer(&p, &m, c1);
    let mi = info(&m);
    assert!(mi["mirror"]["fork"].is_null(), "{mi}");
    eprintln!(
        "drill times: recover {:.2} s, start {:.2} s, {} answers compared in {:.2} s, stamped and \
         complete {:.2} s",
        recovered.as_secs_f64(),
        started.as_secs_f64(),
        acknowledged.len() + 1,
        served.as_secs_f64(),
        stamped.as_secs_f64()
    );
    m.stop();
    p.stop();
}
