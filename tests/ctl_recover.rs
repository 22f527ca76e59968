//! `otsctl ship` and `otsctl recover`: a mirror made by ship restores a lost log (from a directory
//! and over HTTP, and otsd then serves every commitment); replicas with a forged record, a reordered
//! pair, a dropped record, a truncated tail, or from another calendar are caught and only the
//! authentic prefix is kept; local authentic data is never replaced; ship is incremental and never
//! overwrites a mirror with damage.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{forge_records, record_spans};
use otsd::calendar::dir::CalendarDir;
use otsd::log::record;
use otsd::log::segment::{segment_name, HEADER_LEN};
use otsd::log::{LogKey, Reader};
use serde_json::Value;

/// Runs `otsctl ARGS`: (exit code, stdout, stderr).
fn otsctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_otsctl"))
        .args(args)
        .output()
        .expect("run otsctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(out: &str, err: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
}

fn ship(cal: &Path, mirror: &Path) -> Value {
    let (code, out, err) = otsctl(&[
        "ship",
        cal.to_str().unwrap(),
        "--to",
        mirror.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "ship failed: {out}\n{err}");
    json(&out, &err)
}

/// `otsctl recover CAL --from FROM --json`: (exit code, report).
fn recover(cal: &Path, from: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["recover", cal.to_str().unwrap(), "--from", from, "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = otsctl(&args);
    (code, json(&out, &err))
}

fn assert_verifies(cal: &Path) {
    let (code, out, err) = otsctl(&["verify", cal.to_str().unwrap()]);
    assert_eq!(code, 0, "verify after recover: {out}\n{err}");
}

/// Appends rounds `rounds` (three digests and the seal, one batch each) with the calendar's key;
/// `salt` makes the digests of one history differ from another's. Segments are small (4 KiB, about
/// twelve rounds of 32-byte digests), so the log has several.
fn write_rounds(cal: &Path, rounds: std::ops::Range<u64>, salt: u8) {
    common::write_rounds(cal, rounds, salt, 4096);
}

/// Every event of the calendar's log, verified with its key.
fn events(cal: &Path) -> Vec<(u64, Vec<u8>)> {
    let dir = CalendarDir::load(cal).expect("calendar");
    let mut out = Vec::new();
    Reader::open(&dir.log_dir(), Some(LogKey::derive(&dir.hmac_key)))
        .expect("reader")
        .for_each_from(0, |s, e| out.push((s, e.to_vec())))
        .expect("read log");
    out
}

/// A calendar with `rounds` rounds (4 events each), and a mirror shipped from it.
struct Fixture {
    _tmp: tempfile::TempDir,
    cal: PathBuf,
    mirror: PathBuf,
    events: Vec<(u64, Vec<u8>)>,
}

fn fixture(rounds: u64) -> Fixture {
    let tmp = common::new_calendar();
    let cal = tmp.path().join("calendar");
    write_rounds(&cal, 0..rounds, 0);
    let mirror = tmp.path().join("mirror");
    ship(&cal, &mirror);
    let events = events(&cal);
    Fixture {
        _tmp: tmp,
        cal,
        mirror,
        events,
    }
}

impl Fixture {
    /// Loses the calendar's log: only the key files remain.
    fn lose_log(&self) {
        fs::remove_dir_all(self.cal.join("log")).expect("remove log");
    }

    fn mirror_segment(&self, n: usize) -> PathBuf {
        let mut segs: Vec<PathBuf> = fs::read_dir(&self.mirror)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        segs.sort();
        segs[n].clone()
    }
}

fn first_seq_at(bytes: &[u8], off: usize) -> u64 {
    record::parse(&bytes[off..]).expect("record").first_seq
}

/// Rewrites a segment with `edit` applied to its records, recomputing sequence numbers (from the
/// header's), the public hash chain and CRCs as a forger without the key can; tags stay as they
/// were, because the forger cannot compute them.
fn forge(seg: &Path, edit: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let bytes = fs::read(seg).expect("read");
    let mut records: Vec<Vec<u8>> = record_spans(&bytes)
        .iter()
        .map(|&(o, l)| bytes[o..o + l].to_vec())
        .collect();
    edit(&mut records);
    let seq = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
    let prev_hash = bytes[24..56].try_into().unwrap();
    let out = forge_records(&bytes[..HEADER_LEN], seq, prev_hash, records);
    fs::write(seg, out).expect("write forged");
}

fn rejected(report: &Value) -> &Vec<Value> {
    report["rejected"].as_array().expect("rejected")
}

/// Recovers the lost log from the damaged mirror and checks: exit 2, exactly `reason` at
/// `segment`/`offset` first among the replica's rejections, the authentic prefix up to `kept_seq`
/// restored byte for byte, and verify passes.
fn lost_log_from_damaged_mirror(
    f: &Fixture,
    segment: &Path,
    offset: usize,
    reason: &str,
    kept_seq: u64,
) -> Value {
    f.lose_log();
    let (code, report) = recover(&f.cal, f.mirror.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{report:#}");
    let first = &rejected(&report)[0];
    assert_eq!(first["source"], "replica", "{report:#}");
    assert_eq!(first["reason"], reason, "{report:#}");
    assert_eq!(first["segment"], segment.to_str().unwrap(), "{report:#}");
    assert_eq!(first["offset"], offset as u64, "{report:#}");
    assert_eq!(first["seq"], kept_seq, "{report:#}");
    assert_eq!(report["next_seq"], kept_seq, "{report:#}");
    assert_eq!(report["from_replica"]["events"], kept_seq, "{report:#}");
    assert_eq!(events(&f.cal), f.events[..kept_seq as usize].to_vec());
    assert_verifies(&f.cal);
    report
}

#[test]
fn forged_record_in_the_replica_is_caught_by_the_hmac_chain() {
    let f = fixture(30);
    let seg = f.mirror_segment(1);
    let bytes = fs::read(&seg).unwrap();
    let spans = record_spans(&bytes);
    let seq = first_seq_at(&bytes, spans[2].0);
    forge(&seg, |r| r[2][record::PAYLOAD_OFFSET + 6] ^= 0xff);
    lost_log_from_damaged_mirror(&f, &seg, spans[2].0, "hmac_chain_mismatch", seq);
}

#[test]
fn reordered_pair_in_the_replica_is_caught() {
    let f = fixture(30);
    let seg = f.mirror_segment(2);
    let bytes = fs::read(&seg).unwrap();
    let spans = record_spans(&bytes);
    let seq = first_seq_at(&bytes, spans[1].0);
    forge(&seg, |r| r.swap(1, 2));
    lost_log_from_damaged_mirror(&f, &seg, spans[1].0, "hmac_chain_mismatch", seq);
}

#[test]
fn dropped_record_in_the_replica_is_a_sequence_gap() {
    let f = fixture(30);
    let seg = f.mirror_segment(1);
    let bytes = fs::read(&seg).unwrap();
    let spans = record_spans(&bytes);
    let seq = first_seq_at(&bytes, spans[1].0);
    let cut = [&bytes[..spans[1].0], &bytes[spans[2].0..]].concat();
    fs::write(&seg, cut).unwrap();
    let report = lost_log_from_damaged_mirror(&f, &seg, spans[1].0, "sequence_gap", seq);
    let claims = first_seq_at(&bytes, spans[2].0);
    assert_eq!(rejected(&report)[0]["claimed_seq"], claims, "{report:#}");
}

#[test]
fn truncated_tail_of_the_replica_keeps_everything_before_it() {
    let f = fixture(30);
    let n = fs::read_dir(&f.mirror).unwrap().count() - 2;
    let seg = f.mirror_segment(n);
    let bytes = fs::read(&seg).unwrap();
    let spans = record_spans(&bytes);
    let (off, len) = *spans.last().unwrap();
    let seq = first_seq_at(&bytes, off);
    fs::write(&seg, &bytes[..off + len / 2]).unwrap();
    lost_log_from_damaged_mirror(&f, &seg, off, "torn_tail", seq);
}

#[test]
fn replica_of_another_calendar_is_refused_entirely() {
    let f = fixture(10);
    let other = fixture(10);
    f.lose_log();
    let (code, report) = recover(&f.cal, other.mirror.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{report:#}");
    let first = &rejected(&report)[0];
    assert_eq!(first["reason"], "hmac_chain_mismatch", "{report:#}");
    assert_eq!(first["offset"], HEADER_LEN as u64);
    assert_eq!(first["seq"], 0);
    assert_eq!(report["next_seq"], 0);
    assert!(events(&f.cal).is_empty());
    assert_verifies(&f.cal);
}

#[test]
fn damaged_local_log_is_filled_from_the_replica_and_kept_aside() {
    let f = fixture(30);
    let local = f.cal.join("log").join(segment_name(0));
    let mut bytes = fs::read(&local).unwrap();
    let spans = record_spans(&bytes);
    bytes[spans[3].0 + 30] ^= 1;
    fs::write(&local, &bytes).unwrap();
    let (code, dry) = recover(&f.cal, f.mirror.to_str().unwrap(), &["--dry-run"]);
    assert_eq!((code, &dry["changed"]), (2, &Value::Bool(true)), "{dry:#}");
    assert_eq!(fs::read(&local).unwrap(), bytes, "a dry run writes nothing");
    let (code, report) = recover(&f.cal, f.mirror.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{report:#}");
    let first = &rejected(&report)[0];
    assert_eq!(
        (&first["source"], &first["reason"], &first["offset"]),
        (
            &"local".into(),
            &"bad_crc".into(),
            &(spans[3].0 as u64).into()
        ),
        "{report:#}"
    );
    assert_eq!(rejected(&report).len(), 1, "{report:#}");
    let kept = report["kept"].as_array().unwrap();
    let sources: Vec<&str> = kept.iter().map(|p| p["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["local", "replica", "local"], "{report:#}");
    assert_eq!(
        report["from_replica"]["records"], 1,
        "only the damaged record: {report:#}"
    );
    assert_eq!(events(&f.cal), f.events);
    assert_verifies(&f.cal);
    let aside = PathBuf::from(report["moved_aside"].as_str().expect("moved aside"));
    assert_eq!(
        fs::read(aside.join(segment_name(0))).unwrap(),
        bytes,
        "old log kept"
    );
}

/// Copies a calendar directory (flat files and its flat log directory).
fn copy_calendar(from: &Path, to: &Path) {
    fs::create_dir_all(to.join("log")).unwrap();
    for dir in [PathBuf::new(), PathBuf::from("log")] {
        for e in fs::read_dir(from.join(&dir)).unwrap().flatten() {
            if e.path().is_file() {
                fs::copy(e.path(), to.join(&dir).join(e.file_name())).unwrap();
            }
        }
    }
}

#[test]
fn authentic_local_data_is_never_replaced_by_a_forked_replica() {
    let f = fixture(10);
    let fork = f._tmp.path().join("fork");
    copy_calendar(&f.cal, &fork);
    write_rounds(&f.cal, 10..12, 1);
    write_rounds(&fork, 10..25, 2);
    let forked_mirror = f._tmp.path().join("forked-mirror");
    ship(&fork, &forked_mirror);
    let before = events(&f.cal);
    let (code, report) = recover(&f.cal, forked_mirror.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{report:#}");
    let conflict = &rejected(&report)[0];
    assert_eq!(conflict["reason"], "conflict", "{report:#}");
    assert_eq!(conflict["source"], "replica");
    assert_eq!(conflict["seq"], 40, "the first round after the fork");
    assert_eq!(report["from_replica"]["events"], 0, "{report:#}");
    assert_eq!(report["changed"], false, "{report:#}");
    assert_eq!(events(&f.cal), before);
    assert_verifies(&f.cal);
}

#[test]
fn ship_is_incremental_and_never_ships_damage() {
    let f = fixture(30);
    let again = ship(&f.cal, &f.mirror);
    assert!(again["shipped"].as_array().unwrap().is_empty(), "{again:#}");
    let segments = again["segments"].as_u64().unwrap();
    assert!(segments >= 3, "several segments: {again:#}");
    write_rounds(&f.cal, 30..33, 0);
    let more = ship(&f.cal, &f.mirror);
    let shipped = more["shipped"].as_array().unwrap();
    assert!(
        !shipped.is_empty() && (shipped.len() as u64) < segments,
        "only the open segment and new ones: {more:#}"
    );
    assert_eq!(
        more["unchanged"].as_u64().unwrap() + shipped.len() as u64,
        more["segments"].as_u64().unwrap()
    );
    let index = fs::read_to_string(f.mirror.join("segments.txt")).unwrap();
    assert_eq!(index.lines().filter(|l| l.ends_with(" open")).count(), 1);
    // Damage in the open segment: ship refuses and the mirror keeps its good copy.
    let last = fs::read_dir(f.cal.join("log"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .unwrap();
    let mut bytes = fs::read(&last).unwrap();
    let spans = record_spans(&bytes);
    bytes[spans[0].0 + 30] ^= 1;
    fs::write(&last, &bytes).unwrap();
    let name = last.file_name().unwrap();
    let mirrored = fs::read(f.mirror.join(name)).unwrap();
    let (code, out, err) = otsctl(&[
        "ship",
        f.cal.to_str().unwrap(),
        "--to",
        f.mirror.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("does not verify"), "{err}");
    assert_eq!(fs::read(f.mirror.join(name)).unwrap(), mirrored);
}

/// `python3 -m http.server` serving `dir` on a free port, stopped on drop.
struct StaticServer {
    child: Child,
    port: u16,
}

impl StaticServer {
    fn start(dir: &Path) -> StaticServer {
        let port = common::free_port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        StaticServer { child, port }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn lost_log_of_a_real_calendar_is_restored_from_a_url_and_served() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let otsd = common::Otsd::start(&cal, &[]);
    let mut commitments = Vec::new();
    for i in 0..12u8 {
        let digest = [i; 32];
        let resp = common::post_digest(otsd.addr, &digest);
        assert_eq!(resp.status, 200, "{}", resp.text());
        commitments.push(common::commitment_of(&digest, &resp.body));
    }
    let mirror = dir.path().join("mirror");
    ship(&cal, &mirror);
    let (code, _, err) = otsctl(&[
        "recover",
        cal.to_str().unwrap(),
        "--from",
        mirror.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "refuses while otsd runs: {err}");
    assert!(err.contains("otsd runs"), "{err}");
    otsd.stop();
    let before = events(&cal);
    fs::remove_dir_all(cal.join("log")).unwrap();
    let server = StaticServer::start(&mirror);
    let url = format!("http://127.0.0.1:{}/", server.port);
    let (code, report) = recover(&cal, &url, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert!(rejected(&report).is_empty(), "{report:#}");
    assert_eq!(
        report["moved_aside"],
        Value::Null,
        "there was no log to keep"
    );
    assert_eq!(events(&cal), before);
    assert_verifies(&cal);
    let otsd = common::Otsd::start(&cal, &[]);
    for c in &commitments {
        let path = format!("/timestamp/{}", hex::encode(c));
        let resp = common::get(otsd.addr, &path, "");
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (404, "Pending confirmation in Bitcoin blockchain"),
            "{path}"
        );
    }
    otsd.stop();
}

#[test]
fn unreachable_https_or_missing_replica_is_a_clear_error_and_leaves_nothing_behind() {
    let f = fixture(3);
    let before = events(&f.cal);
    let dead = format!("http://127.0.0.1:{}/", common::free_port());
    let missing = f.mirror.join("no-such-dir");
    for from in [
        dead.as_str(),
        "https://mirror.example.org/",
        missing.to_str().unwrap(),
    ] {
        let (code, out, err) = otsctl(&["recover", f.cal.to_str().unwrap(), "--from", from]);
        assert_eq!(code, 1, "{out}\n{err}");
        assert!(
            err.contains(from.trim_end_matches('/')),
            "names the replica: {err}"
        );
        assert!(!f.cal.join("log.recovering").exists());
    }
    assert!(
        otsctl(&["recover", f.cal.to_str().unwrap(), "--from", "https://x/"])
            .2
            .contains("only plain http://")
    );
    assert_eq!(events(&f.cal), before);
}
