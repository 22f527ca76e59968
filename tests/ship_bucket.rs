//! Mirrors in object storage: `otsctl ship --to s3://`, `otsd --ship-to s3://` and `otsctl recover
//! --from s3://`, against a real S3-compatible server over HTTP on loopback: the `s3s-fs` binary
//! from crates.io, which tools/test.sh installs and names in `S3S_FS` (a test fails loudly without
//! it). The server keeps each object as a file under its root, so the tests can see whether a
//! sealed object was written again, and damage one as bit rot in a bucket would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::record_spans;
use otsd::calendar::dir::CalendarDir;
use otsd::calendar::mac::CommitmentMac;
use otsd::events::codec;
use otsd::events::Event;
use otsd::log::segment::segment_name;
use otsd::log::{LogKey, Reader, WriterOptions};
use otsd::ots::answer::nonce_leaf;
use otsd::ots::MerkleTree;
use otsd::replica::bucket::{self, Bucket, BucketUrl};
use serde_json::Value;

const ACCESS_KEY: &str = "otsd-test-access";
const SECRET_KEY: &str = "otsd-test-secret-key";
const BUCKET: &str = "mirrors";

/// A running `s3s-fs` with one empty bucket, stopped on drop.
struct S3Server {
    child: Child,
    port: u16,
    root: tempfile::TempDir,
}

impl S3Server {
    fn start() -> S3Server {
        S3Server::start_on(common::free_port())
    }

    fn start_on(port: u16) -> S3Server {
        let bin = common::required_env("S3S_FS");
        assert!(Path::new(&bin).is_file(), "S3S_FS={bin} is not a file");
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join(BUCKET)).unwrap();
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Server { child, port, root }
    }

    /// The `AWS_*` variables otsd and otsctl find the server with.
    fn env(&self) -> Vec<(&'static str, String)> {
        s3_env(self.port)
    }

    /// The file the server keeps object `key` of the bucket in.
    fn object_file(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// A client of the bucket at `prefix`, through the library (the same reader `recover` uses).
    fn bucket(&self, prefix: &str) -> Bucket {
        for (k, v) in self.env() {
            std::env::set_var(k, v);
        }
        Bucket::open(&BucketUrl::parse(&format!("s3://{BUCKET}/{prefix}")).unwrap()).unwrap()
    }
}

/// The `AWS_*` variables that name an S3 server on loopback `port`.
fn s3_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url(prefix: &str) -> String {
    format!("s3://{BUCKET}/{prefix}")
}

/// Runs `otsctl ARGS` with the server's environment: (exit code, stdout, stderr).
fn otsctl(s3: &S3Server, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_otsctl"))
        .envs(s3.env())
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

fn ship(s3: &S3Server, cal: &Path, prefix: &str) -> Value {
    let to = url(prefix);
    let (code, out, err) = otsctl(s3, &["ship", cal.to_str().unwrap(), "--to", &to, "--json"]);
    assert_eq!(code, 0, "ship failed: {out}\n{err}");
    json(&out, &err)
}

fn recover(s3: &S3Server, cal: &Path, prefix: &str) -> (i32, Value) {
    let from = url(prefix);
    let args = ["recover", cal.to_str().unwrap(), "--from", &from, "--json"];
    let (code, out, err) = otsctl(s3, &args);
    (code, json(&out, &err))
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

fn assert_verifies(cal: &Path) {
    let (ok, out, err) = common::otsctl(&["verify", cal.to_str().unwrap()]);
    assert!(ok, "verify after recover: {out}\n{err}");
}

/// Appends rounds `rounds` (three digests and the seal, one batch each) with the calendar's key,
/// in 4 KiB segments, so the log has several.
fn write_rounds(cal: &Path, rounds: std::ops::Range<u64>) {
    write_rounds_in(cal, rounds, 4096);
}

/// As [`write_rounds`], in segments of `segment_size` bytes.
fn write_rounds_in(cal: &Path, rounds: std::ops::Range<u64>, segment_size: u64) {
    let dir = CalendarDir::load(cal).expect("calendar");
    let mut mac = CommitmentMac::new(&dir.hmac_key);
    let opts = WriterOptions {
        segment_size,
        ..WriterOptions::default()
    };
    let mut w = common::open_writer(&dir.log_dir(), LogKey::derive(&dir.hmac_key), opts);
    for round in rounds {
        let digests: Vec<(Vec<u8>, [u8; 16])> = (0..3u8)
            .map(|i| {
                // 32 bytes, as clients send: a round takes about as many bytes of log as it did
                // before the compact event encoding, so the segment counts below hold.
                let mut digest = vec![round as u8, i, 7];
                digest.resize(32, 0xd1);
                (digest, [i; 16])
            })
            .collect();
        let leaves = digests.iter().map(|(d, n)| nonce_leaf(d, n)).collect();
        let root = *MerkleTree::new(leaves).expect("leaves").root();
        let time = 1_700_000_000 + round as u32;
        let m = mac.mac(time, &root);
        let commitment = [&time.to_be_bytes()[..], &root[..], &m[..]].concat();
        let mut batch: Vec<Vec<u8>> = digests
            .into_iter()
            .map(|(digest, nonce)| {
                codec::encode(&Event::DigestSubmitted { digest, nonce }).unwrap()
            })
            .collect();
        let seal = Event::RoundSealed {
            round,
            time,
            root,
            mac: m,
            commitment,
            digests: 3,
        };
        batch.push(codec::encode(&seal).unwrap());
        w.append_batches(&[batch]).expect("append");
    }
}

/// The shipped report's entries, by segment name: (new bytes, sealed).
fn shipped(report: &Value) -> BTreeMap<String, (u64, bool)> {
    report["shipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["segment"].as_str().unwrap().to_owned(),
                (
                    s["new_bytes"].as_u64().unwrap(),
                    s["sealed"].as_bool().unwrap(),
                ),
            )
        })
        .collect()
}

/// The modification times of the server's files for the sealed objects under `prefix`.
fn sealed_objects(s3: &S3Server, prefix: &str) -> BTreeMap<String, SystemTime> {
    let dir = s3.object_file(prefix);
    fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                .map(|e| {
                    let mtime = e.metadata().unwrap().modified().unwrap();
                    (e.file_name().to_string_lossy().into_owned(), mtime)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ship_and_recover_round_trip_through_a_bucket_and_sealed_objects_are_uploaded_once() {
    let s3 = S3Server::start();
    let tmp = common::new_calendar();
    let cal = tmp.path().join("calendar");
    write_rounds(&cal, 0..40);
    let segs = fs::read_dir(cal.join("log")).unwrap().count() - 1;
    assert!(segs >= 3, "several segments, the last open: {segs}");

    let first = ship(&s3, &cal, "cal");
    let sealed: Vec<_> = shipped(&first)
        .into_iter()
        .filter(|(_, (_, s))| *s)
        .collect();
    assert_eq!(sealed.len(), segs - 1, "{first:#}");
    let objects = sealed_objects(&s3, "cal");
    assert_eq!(objects.len(), segs - 1, "one object per sealed segment");
    let tail_dir = s3.object_file("cal/tail");
    assert_eq!(
        fs::read_dir(&tail_dir).unwrap().count(),
        1,
        "one open segment"
    );

    // Again with nothing new: nothing shipped, no sealed object written again.
    std::thread::sleep(Duration::from_millis(20));
    let again = ship(&s3, &cal, "cal");
    assert!(shipped(&again).is_empty(), "{again:#}");
    assert_eq!(again["unchanged"], (segs - 1) as u64, "{again:#}");
    assert_eq!(sealed_objects(&s3, "cal"), objects);

    // More rounds: only the new bytes go up, the old sealed objects stay as they were.
    write_rounds(&cal, 40..60);
    let more = ship(&s3, &cal, "cal");
    assert!(!shipped(&more).is_empty(), "{more:#}");
    let now = sealed_objects(&s3, "cal");
    for (name, mtime) in &objects {
        assert_eq!(now.get(name), Some(mtime), "{name} was written again");
    }
    // Sealed segments leave no tail objects behind; the open one has its tail.
    let tails: Vec<_> = fs::read_dir(&tail_dir)
        .unwrap()
        .flatten()
        .filter(|e| fs::read_dir(e.path()).unwrap().count() > 0)
        .collect();
    assert_eq!(tails.len(), 1, "{tails:?}");

    // The index lists every segment with its length and SHA-256, the same format as a directory.
    let index = fs::read_to_string(s3.object_file("cal/segments.txt")).unwrap();
    assert!(index.starts_with("# otsd log mirror v1"), "{index}");
    let entries = bucket::block_on(async { s3.bucket("cal").index().await })
        .unwrap()
        .unwrap();
    assert_eq!(
        entries.len(),
        fs::read_dir(cal.join("log")).unwrap().count() - 1
    );

    let before = events(&cal);
    fs::remove_dir_all(cal.join("log")).unwrap();
    let (code, report) = recover(&s3, &cal, "cal");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["rejected"], Value::Array(vec![]), "{report:#}");
    assert_eq!(events(&cal), before, "the recovered log is the shipped log");
    assert_verifies(&cal);
}

#[test]
fn damaged_objects_in_the_bucket_are_detected_on_recover() {
    let s3 = S3Server::start();
    let tmp = common::new_calendar();
    let cal = tmp.path().join("calendar");
    write_rounds(&cal, 0..40);
    ship(&s3, &cal, "cal");
    let before = events(&cal);

    // Bit rot in the second sealed segment.
    let name = segment_name(before[0].0);
    let mut objects: Vec<String> = sealed_objects(&s3, "cal").into_keys().collect();
    objects.sort();
    assert_eq!(objects[0], name);
    let object = s3.object_file(&format!("cal/{}", objects[1]));
    let mut bytes = fs::read(&object).unwrap();
    let spans = record_spans(&bytes);
    let (off, _) = spans[2];
    let damaged_seq = otsd::log::record::parse(&bytes[off..]).unwrap().first_seq;
    bytes[off + 40] ^= 0x01;
    fs::write(&object, &bytes).unwrap();

    fs::remove_dir_all(cal.join("log")).unwrap();
    let (code, report) = recover(&s3, &cal, "cal");
    assert_eq!(code, 2, "{report:#}");
    let first = &report["rejected"][0];
    assert_eq!(first["source"], "replica", "{report:#}");
    assert_eq!(first["reason"], "bad_crc", "{report:#}");
    assert_eq!(first["offset"], off as u64, "{report:#}");
    assert!(
        first["segment"].as_str().unwrap().ends_with(&objects[1]),
        "names the object: {report:#}"
    );
    assert_eq!(report["next_seq"], damaged_seq, "{report:#}");
    assert_eq!(events(&cal), before[..damaged_seq as usize].to_vec());
    assert_verifies(&cal);

    // Put the sealed object right; now cut the open segment's tail object short: recover keeps
    // everything before the cut, and says what it rejected.
    bytes[off + 40] ^= 0x01;
    fs::write(&object, &bytes).unwrap();
    let tail = s3.object_file("cal/tail");
    let seg_dir = fs::read_dir(&tail)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let part = fs::read_dir(&seg_dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let part_bytes = fs::read(&part).unwrap();
    let spans = record_spans(&part_bytes);
    let (off, len) = spans[spans.len() / 2];
    let cut_seq = otsd::log::record::parse(&part_bytes[off..])
        .unwrap()
        .first_seq;
    fs::write(&part, &part_bytes[..off + len / 2]).unwrap();
    fs::remove_dir_all(cal.join("log")).unwrap();
    let (code, report) = recover(&s3, &cal, "cal");
    assert_eq!(code, 2, "{report:#}");
    let first = &report["rejected"][0];
    assert_eq!(first["reason"], "torn_tail", "{report:#}");
    assert_eq!(first["offset"], off as u64, "{report:#}");
    assert_eq!(report["next_seq"], cut_seq, "{report:#}");
    assert_eq!(events(&cal), before[..cut_seq as usize].to_vec());
    assert_verifies(&cal);
}

#[test]
fn many_small_ships_compact_the_open_segments_tail_objects() {
    let s3 = S3Server::start();
    let tmp = common::new_calendar();
    let cal = tmp.path().join("calendar");
    let tail_objects = || {
        let dir = s3.object_file(&format!("cal/tail/{}", segment_name(0)));
        fs::read_dir(dir).map_or(0, |d| d.count())
    };
    let mut most = 0;
    for round in 0..(bucket::MAX_TAIL_OBJECTS as u64 + 6) {
        write_rounds_in(&cal, round..round + 1, 1 << 20);
        let report = ship(&s3, &cal, "cal");
        assert_eq!(shipped(&report).len(), 1, "{report:#}");
        most = most.max(tail_objects());
    }
    assert_eq!(
        most,
        bucket::MAX_TAIL_OBJECTS,
        "never more than the limit after a ship"
    );
    assert!(tail_objects() < 8, "{} tail objects left", tail_objects());
    let before = events(&cal);
    fs::remove_dir_all(cal.join("log")).unwrap();
    let (code, report) = recover(&s3, &cal, "cal");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(events(&cal), before);
}

/// `otsd-loadgen` against `addr` for `secs` seconds, in the background.
fn loadgen(addr: std::net::SocketAddr, secs: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_otsd-loadgen"))
        .args(["--target", &addr.to_string(), "--concurrency", "32"])
        .args(["--duration", &secs.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run otsd-loadgen")
}

/// A digest no other test or run uses.
fn probe_digest(i: u32) -> [u8; 32] {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut d = [0x5au8; 32];
    d[..16].copy_from_slice(&nanos.to_be_bytes());
    d[16..20].copy_from_slice(&i.to_be_bytes());
    d
}

/// Where the bucket's copy of the log ends now: (first seq of the last segment, its length).
fn bucket_end(b: &Bucket) -> (u64, u64) {
    let index = bucket::block_on(async { b.index().await })
        .unwrap()
        .unwrap();
    index.last().map_or((0, 0), |e| (e.first_seq, e.len))
}

/// True if the bucket holds `needle` after `mark` (from [`bucket_end`]); reads only what was
/// shipped since, so that measuring the lag does not load the machine. A read racing with a
/// seal (the tail objects just deleted) counts as not yet.
fn bucket_has_after(b: &Bucket, mark: (u64, u64), needle: &[u8]) -> bool {
    let read = async {
        let mut bytes = Vec::new();
        for e in b.index().await?.iter().filter(|e| e.first_seq >= mark.0) {
            let from = if e.first_seq == mark.0 { mark.1 } else { 0 };
            bytes.extend(b.read_range(e, from..e.len).await?);
        }
        Ok::<_, bucket::BucketError>(bytes)
    };
    match bucket::block_on(read).unwrap() {
        Ok(bytes) => contains(&bytes, needle),
        Err(bucket::BucketError::Layout { .. }) => false,
        Err(e) => panic!("{e}"),
    }
}

/// The value of the unlabelled series `name` in `/metrics` at `addr`.
fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let text = common::get(addr, "/metrics", "").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn continuous_shipping_keeps_the_bucket_seconds_behind_under_load_and_recovers_every_answer() {
    let s3 = S3Server::start();
    let tmp = common::new_calendar();
    let cal = tmp.path().join("calendar");
    let env: Vec<(&str, String)> = s3.env();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let to = url("live");
    let args = [
        "--ship-to",
        &to,
        "--ship-interval-ms",
        "500",
        "--segment-size-mib",
        "1",
    ];
    let otsd = common::Otsd::start_env(&cal, &args, &env_refs);
    let mut load = loadgen(otsd.addr, 300);

    // Under load, submit a probe digest now and then, and time from its acknowledgement until
    // the bucket holds it; for at least 10 s, and until a segment was sealed under load (1 MiB
    // segments: how long that takes depends on the machine's speed).
    let b = s3.bucket("live");
    let mut lags = Vec::new();
    let mut probes = Vec::new();
    let mut sealed_mid_run = BTreeMap::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) || sealed_mid_run.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "no segment sealed after 4 minutes of load"
        );
        std::thread::sleep(Duration::from_millis(500));
        let mark = bucket_end(&b);
        let digest = probe_digest(probes.len() as u32);
        let resp = common::post_digest(otsd.addr, &digest);
        assert_eq!(resp.status, 200, "{}", resp.text());
        let acked = Instant::now();
        common::wait_for("the bucket to hold the probe", 30, || {
            bucket_has_after(&b, mark, &digest).then_some(())
        });
        lags.push(acked.elapsed());
        probes.push((digest, common::commitment_of(&digest, &resp.body)));
        if sealed_mid_run.is_empty() {
            sealed_mid_run = sealed_objects(&s3, "live");
        }
    }
    assert!(
        load.try_wait().unwrap().is_none(),
        "otsd-loadgen stopped early"
    );
    load.kill().unwrap();
    load.wait().unwrap();
    lags.sort();
    eprintln!(
        "bucket lag over {} probes under load: p50 {:?}, max {:?}",
        lags.len(),
        lags[lags.len() / 2],
        lags.last().unwrap()
    );
    assert!(lags.len() >= 5, "{lags:?}");
    assert!(
        *lags.last().unwrap() < Duration::from_secs(5),
        "the bucket fell more than a few seconds behind: {lags:?}"
    );

    let answer = |addr, c: &[u8]| {
        let r = common::get(addr, &format!("/timestamp/{}", hex::encode(c)), "");
        (r.status, r.body)
    };
    let answers: Vec<_> = probes.iter().map(|p| answer(otsd.addr, &p.1)).collect();
    // The shipper's figures in /metrics: a recent successful step, no failure.
    let lag = metric(otsd.addr, "otsd_ship_lag_seconds");
    assert!((0.0..5.0).contains(&lag), "ship lag {lag}");
    assert!(metric(otsd.addr, "otsd_ship_last_success_timestamp_seconds") > 1.7e9);
    assert_eq!(metric(otsd.addr, "otsd_ship_failures_total"), 0.0);
    let log = otsd.stop();
    assert!(!log.contains("failed; retrying"), "{log}");

    // Sealed segments were uploaded once, and some were sealed under load.
    assert!(
        !sealed_mid_run.is_empty(),
        "no segment was sealed under load"
    );
    let sealed_end = sealed_objects(&s3, "live");
    for (name, mtime) in &sealed_mid_run {
        assert_eq!(
            sealed_end.get(name),
            Some(mtime),
            "{name} was written again"
        );
    }

    // Lose the calendar's log and projection; the bucket brings every event and answer back.
    let before = events(&cal);
    fs::remove_dir_all(cal.join("log")).unwrap();
    fs::remove_dir_all(cal.join("projection")).unwrap();
    let (code, report) = recover(&s3, &cal, "live");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(events(&cal), before, "the bucket holds the whole log");
    let otsd = common::Otsd::start(&cal, &[]);
    let after: Vec<_> = probes.iter().map(|p| answer(otsd.addr, &p.1)).collect();
    assert_eq!(after, answers, "every answer is the same after recover");
    assert!(
        answers.iter().all(|a| a.0 == 404),
        "pending answers: {answers:?}"
    );
    otsd.stop();
}

#[test]
fn an_unreachable_bucket_never_holds_up_intake_and_is_caught_up_when_it_returns() {
    let port = common::free_port();
    let tmp = common::new_calendar();
    let cal = tmp.path().join("calendar");
    let env = s3_env(port);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let to = url("late");
    let args = ["--ship-to", &to, "--ship-interval-ms", "200"];
    let otsd = common::Otsd::start_env(&cal, &args, &env_refs);
    let mut digests = Vec::new();
    for i in 0..20u32 {
        let digest = probe_digest(i);
        let started = Instant::now();
        let resp = common::post_digest(otsd.addr, &digest);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(started.elapsed() < Duration::from_secs(2), "intake waited");
        digests.push(digest);
    }
    common::wait_for("the failure to be logged", 30, || {
        otsd.stderr
            .lock()
            .unwrap()
            .contains("failed; retrying")
            .then_some(())
    });
    assert!(metric(otsd.addr, "otsd_ship_failures_total") >= 1.0);
    assert_eq!(
        metric(otsd.addr, "otsd_ship_lag_seconds"),
        -1.0,
        "nothing shipped"
    );
    let s3 = S3Server::start_on(port);
    let b = s3.bucket("late");
    common::wait_for("the bucket to catch up", 30, || {
        digests
            .iter()
            .all(|d| bucket_has_after(&b, (0, 0), d))
            .then_some(())
    });
    common::wait_for("a successful ship step in /metrics", 30, || {
        (metric(otsd.addr, "otsd_ship_lag_seconds") >= 0.0).then_some(())
    });
    assert!(metric(otsd.addr, "otsd_ship_lag_seconds") < 5.0);
    let log = otsd.stop();
    assert!(log.contains("works again"), "{log}");
    let before = events(&cal);
    fs::remove_dir_all(cal.join("log")).unwrap();
    let (code, report) = recover(&s3, &cal, "late");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(events(&cal), before);
}

/// A mirror can follow a calendar through the bucket its `--ship-to` fills, as well as from the
/// primary itself: the mirror serves the same answers as the primary, refuses submissions, and
/// without the calendar's uri (a bucket has no info page) it refuses to start and says why.
#[test]
fn a_mirror_follows_the_calendar_through_its_bucket() {
    let s3 = S3Server::start();
    let tmp = common::new_calendar();
    let cal = tmp.path().join("calendar");
    let env: Vec<(&str, String)> = s3.env();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let to = url("followed");
    let primary = common::Otsd::start_env(
        &cal,
        &["--ship-to", &to, "--ship-interval-ms", "200"],
        &env_refs,
    );

    let mdir = tmp.path().join("mirror");
    fs::create_dir_all(&mdir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_otsd"))
        .envs(env_refs.iter().copied())
        .args([
            "-c",
            mdir.to_str().unwrap(),
            "--rpc-port",
            "0",
            "--mirror-of",
            &to,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("needs the calendar's uri"),
        "{err}"
    );
    for f in ["uri", "donation_addr"] {
        fs::copy(cal.join(f), mdir.join(f)).unwrap();
    }
    let mirror = common::Otsd::start_env(
        &mdir,
        &["--mirror-of", &to, "--mirror-poll-ms", "100"],
        &env_refs,
    );

    let answer = |addr, c: &[u8]| {
        let r = common::get(addr, &format!("/timestamp/{}", hex::encode(c)), "");
        (r.status, r.body)
    };
    let mut commitments = Vec::new();
    for i in 0..40u32 {
        let digest = probe_digest(1000 + i);
        let resp = common::post_digest(primary.addr, &digest);
        assert_eq!(resp.status, 200, "{}", resp.text());
        commitments.push(common::commitment_of(&digest, &resp.body));
    }
    let expected: Vec<_> = commitments
        .iter()
        .map(|c| answer(primary.addr, c))
        .collect();
    assert!(expected.iter().all(|a| a.0 == 404 && !a.1.is_empty()));
    let started = Instant::now();
    loop {
        let got: Vec<_> = commitments.iter().map(|c| answer(mirror.addr, c)).collect();
        if got == expected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the mirror did not serve every answer from the bucket within 60 s: {:?}\nmirror log:\n{}",
            got.iter().map(|a| a.0).collect::<Vec<_>>(),
            mirror.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "mirror through the bucket caught up in {:?}",
        started.elapsed()
    );
    let unknown = answer(mirror.addr, &[7u8; 32]);
    assert_eq!(unknown, answer(primary.addr, &[7u8; 32]));
    let refused = common::post_digest(mirror.addr, &[1u8; 32]);
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.text().contains(&to), "{}", refused.text());
    let mlog = mirror.stop();
    assert!(!mlog.contains("FORK"), "{mlog}");
    primary.stop();
}

/// The bucket half of the failover drill: a primary under load ships continuously to the bucket
/// while a mirror follows the bucket; the primary is SIGKILLed and its `log/` and `projection/`
/// deleted (its secrets stay, as an operator keeps them apart); `otsctl recover` rebuilds it from
/// the bucket; the rebuilt primary starts, answers every acknowledged commitment the bucket held,
/// ships on into the same prefix, and the mirror follows that without a fork.
///
/// What is asserted about the digests the bucket lacks: continuous shipping copies only what is
/// durable, every `--ship-interval-ms`, so the digests acknowledged in the last interval (plus one
/// upload) before the kill may be missing from the bucket, and so from the rebuilt primary. Every
/// commitment acknowledged more than 5 s before the kill (the bound the continuous-shipping test
/// holds the bucket to) must be served; the lacking ones are counted and printed with the age of
/// the oldest. A primary directory that survives the kill would keep them (they were fsync'd); the
/// bucket is the copy for losing the disk, and for that the bound is what shipping promises.
#[test]
fn bucket_failover_drill_sigkill_recover_and_the_bucket_mirror_follows_on() {
    let s3 = S3Server::start();
    let tmp = common::new_calendar();
    let cal = tmp.path().join("calendar");
    let env: Vec<(&str, String)> = s3.env();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let to = url("drill");
    let interval_ms = 500;
    let interval = interval_ms.to_string();
    let args = [
        "--ship-to",
        &to,
        "--ship-interval-ms",
        &interval,
        "--segment-size-mib",
        "1",
    ];
    let p = common::Otsd::start_env(&cal, &args, &env_refs);
    let mdir = tmp.path().join("mirror");
    fs::create_dir_all(&mdir).unwrap();
    for f in ["uri", "donation_addr"] {
        fs::copy(cal.join(f), mdir.join(f)).unwrap();
    }
    let m = common::Otsd::start_env(
        &mdir,
        &["--mirror-of", &to, "--mirror-poll-ms", "100"],
        &env_refs,
    );

    // Under load (8 connections, each acknowledged digest timed), then SIGKILL.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let (addr, pid) = (p.addr, p.child.id().to_string());
    let mut killed_at = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let digest: [u8; 32] = rand::random();
                    match common::try_post_digest(addr, &digest) {
                        Some(r) if r.status == 200 => acknowledged
                            .lock()
                            .unwrap()
                            .push((common::commitment_of(&digest, &r.body), Instant::now())),
                        _ => return,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(6));
        killed_at = Instant::now();
        let killed = Command::new("kill").args(["-KILL", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -KILL otsd");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    p.kill();
    fs::remove_dir_all(cal.join("log")).unwrap();
    fs::remove_dir_all(cal.join("projection")).unwrap();
    let acknowledged = acknowledged.into_inner().unwrap();
    eprintln!(
        "bucket drill: {} digests acknowledged under load in 6 s; primary SIGKILLed, log/ and \
         projection/ deleted in {:.2} s",
        acknowledged.len(),
        killed_at.elapsed().as_secs_f64()
    );
    assert!(acknowledged.len() > 100, "load ran");

    let t = Instant::now();
    let (code, report) = recover(&s3, &cal, "drill");
    assert_eq!(code, 0, "{report:#}");
    eprintln!(
        "bucket drill: otsctl recover from the bucket: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_verifies(&cal);

    let t = Instant::now();
    let p = common::Otsd::start_env(&cal, &args, &env_refs);
    eprintln!(
        "bucket drill: the rebuilt primary started in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut lacking = Vec::new();
    for (c, acked) in &acknowledged {
        let r = common::get(p.addr, &format!("/timestamp/{}", hex::encode(c)), "");
        if r.text() == "Pending confirmation in Bitcoin blockchain" {
            continue;
        }
        assert_eq!(r.status, 404, "{}", r.text());
        lacking.push(killed_at.saturating_duration_since(*acked));
    }
    let oldest = lacking.iter().max().copied().unwrap_or_default();
    eprintln!(
        "bucket drill: the rebuilt primary serves {} of {} acknowledged commitments (checked in \
         {:.2} s); the bucket lacked {} acknowledged in the last {:.2} s before the kill \
         (ship interval {interval_ms} ms)",
        acknowledged.len() - lacking.len(),
        acknowledged.len(),
        t.elapsed().as_secs_f64(),
        lacking.len(),
        oldest.as_secs_f64()
    );
    assert!(
        oldest < Duration::from_secs(5),
        "the bucket lacks a digest acknowledged {oldest:?} before the kill"
    );

    // The rebuilt primary takes digests and ships them into the same prefix; the mirror, which
    // followed the old primary's shipping, follows on without a fork.
    let t = Instant::now();
    let mut fresh = Vec::new();
    for i in 0..20u32 {
        let digest = probe_digest(5000 + i);
        let r = common::post_digest(p.addr, &digest);
        assert_eq!(r.status, 200, "{}", r.text());
        fresh.push(common::commitment_of(&digest, &r.body));
    }
    common::wait_for(
        "the mirror to serve the rebuilt primary's digests",
        60,
        || {
            fresh
                .iter()
                .all(|c| {
                    let path = format!("/timestamp/{}", hex::encode(c));
                    common::get(m.addr, &path, "").text()
                        == "Pending confirmation in Bitcoin blockchain"
                })
                .then_some(())
        },
    );
    eprintln!(
        "bucket drill: the mirror served the rebuilt primary's new digests {:.2} s after they \
         were acknowledged",
        t.elapsed().as_secs_f64()
    );
    for (c, _) in acknowledged.iter().step_by(17) {
        let path = format!("/timestamp/{}", hex::encode(c));
        let (pr, mr) = (
            common::get(p.addr, &path, ""),
            common::get(m.addr, &path, ""),
        );
        assert_eq!((pr.status, &pr.body), (mr.status, &mr.body), "{path}");
    }
    assert_eq!(metric(m.addr, "otsd_mirror_fork_refused"), 0.0);
    assert_eq!(metric(p.addr, "otsd_ship_failures_total"), 0.0);
    let mlog = m.stop();
    assert!(!mlog.contains("FORK"), "{mlog}");
    let log = p.stop();
    assert!(!log.contains("failed; retrying"), "{log}");
}
