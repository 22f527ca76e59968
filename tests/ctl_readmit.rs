//! `otsctl readmit`: commitments that clients hold in their `.ots` files go back into a calendar
//! that lost its log, if and only if their MAC is the calendar's. Files are stamped by the real
//! `ots` client ($OTS_BIN); the full path to a complete proof runs against a regtest bitcoind.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::path::Path;
use std::process::Command;

use bitcoincore_rpc::RpcApi;
use common::bitcoind::Bitcoind;
use common::{
    calendar_with_uri, free_port, fund_stamper, get, run, served_calendar, wait_for, OtsClient,
    Otsd,
};
use otsd::events::Event;
use otsd::ots::{Attestation, DetachedTimestampFile, Timestamp};
use serde_json::Value;

fn otsctl(args: &[&str]) -> (bool, String) {
    run(Command::new(env!("CARGO_BIN_EXE_otsctl")).args(args))
}

/// `otsctl readmit CAL FILES... --json`: (success, the JSON report).
fn readmit(cal: &Path, files: &[&Path], extra: &[&str]) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_otsctl"))
        .arg("readmit")
        .arg(cal)
        .args(files)
        .arg("--json")
        .args(extra)
        .output()
        .expect("run otsctl readmit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

/// The commitment under the first pending attestation of a `.ots` file.
fn commitment_in(ots: &Path) -> Vec<u8> {
    let file = DetachedTimestampFile::from_bytes(&std::fs::read(ots).expect("read .ots"))
        .expect("parse .ots");
    let atts = file.timestamp.all_attestations();
    let (msg, _) = atts
        .iter()
        .find(|(_, a)| matches!(a, Attestation::Pending { .. }))
        .expect("a pending attestation");
    msg.to_vec()
}

/// The outcome of each entry of a report, as (file name, outcome, reason or status).
fn outcomes(report: &Value) -> Vec<(String, String, String)> {
    report["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let file = Path::new(e["file"].as_str().expect("file"));
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let why = e["reason"].as_str().or(e["status"].as_str()).unwrap_or("");
            (
                name,
                e["outcome"].as_str().unwrap().to_owned(),
                why.to_owned(),
            )
        })
        .collect()
}

fn entry(name: &str, outcome: &str, why: &str) -> (String, String, String) {
    (name.to_owned(), outcome.to_owned(), why.to_owned())
}

/// The calendar loses its whole log; its directory (uri, hmac-key) survives.
fn lose_log(cal: &Path) {
    std::fs::rename(cal.join("log"), cal.join("log.lost")).expect("move the log away");
}

fn port_of(otsd: &Otsd) -> String {
    otsd.addr.port().to_string()
}

/// Copies `ots` to `to` with the first byte of the commitment's MAC flipped in the `append` that
/// adds it, so the file still parses and names the calendar but its MAC is wrong.
fn alter_mac(ots: &Path, to: &Path) {
    let mac = commitment_in(ots)[36..].to_vec();
    let mut bytes = std::fs::read(ots).expect("read");
    let at = bytes
        .windows(mac.len())
        .position(|w| w == mac)
        .expect("the MAC is in the file");
    bytes[at] ^= 0x01;
    std::fs::write(to, bytes).expect("write altered copy");
}

/// A detached timestamp on a 32-byte digest with our pending attestation directly on it (no
/// calendar ever answers that way: the message is not a commitment).
fn write_short_message_file(uri: &str, to: &Path) {
    let mut timestamp = Timestamp::new(vec![0x42; 32]);
    timestamp
        .attestations
        .insert(Attestation::pending(uri).expect("uri"));
    let file = DetachedTimestampFile {
        file_hash_op: otsd::ots::Op::Sha256,
        timestamp,
    };
    std::fs::write(to, file.to_bytes().expect("encode")).expect("write");
}

#[test]
fn readmits_client_commitments_after_losing_the_log() {
    let (dir, otsd) = served_calendar();
    let cal = dir.path().join("calendar");
    let url = otsd.url();
    let ots = OtsClient::new(&dir.path().join("home"));
    let a = ots.stamp(&url, dir.path(), "a.txt", b"file a\n");
    let b = ots.stamp(&url, dir.path(), "b.txt", b"file b\n");
    let a_copy = dir.path().join("a-copy.txt.ots");
    std::fs::copy(&a, &a_copy).expect("copy");

    // otsd holds the log's lock: readmit refuses to write, a dry run still reports.
    let (ok, out) = otsctl(&["readmit", cal.to_str().unwrap(), a.to_str().unwrap()]);
    assert!(!ok, "readmit while otsd runs must fail:\n{out}");
    assert!(out.contains("locked") && out.contains("stop otsd"), "{out}");
    let (ok, report) = readmit(&cal, &[&a], &["--dry-run"]);
    assert!(ok, "{report}");
    assert_eq!(
        outcomes(&report),
        [entry("a.txt.ots", "already_known", "pending")]
    );
    let port = port_of(&otsd);
    otsd.stop();

    lose_log(&cal);
    let (ok, report) = readmit(&cal, &[&a, &b, &a_copy], &[]);
    assert!(ok, "{report}");
    assert_eq!(
        outcomes(&report),
        [
            entry("a.txt.ots", "accepted", ""),
            entry("b.txt.ots", "accepted", ""),
            entry("a-copy.txt.ots", "already_known", "accepted"),
        ]
    );
    assert_eq!(report["entries"][0]["round"], 0);
    assert_eq!(report["entries"][1]["round"], 1);
    assert_eq!(report["first_seq"], 0);

    // A second run changes nothing and is not an error.
    let (ok, report) = readmit(&cal, &[&b], &[]);
    assert!(ok, "{report}");
    assert_eq!(
        outcomes(&report),
        [entry("b.txt.ots", "already_known", "pending")]
    );
    assert_eq!(report["entries"][0]["round"], 1);
    assert_eq!(report["first_seq"], Value::Null);

    let otsd = Otsd::start(&cal, &["--rpc-port", &port]);
    for file in [&a, &b] {
        let path = format!("/timestamp/{}", hex::encode(commitment_in(file)));
        let r = get(otsd.addr, &path, "");
        assert_eq!(r.status, 404);
        assert_eq!(r.text(), "Pending confirmation in Bitcoin blockchain");
    }
    let (_, up) = ots.run(&["-l", &url, "upgrade", a.to_str().unwrap()]);
    assert!(
        up.contains("Pending confirmation in Bitcoin blockchain"),
        "ots upgrade sees the readmitted commitment as pending:\n{up}"
    );
    // New digests get the rounds after the readmitted ones.
    let c = ots.stamp(&url, dir.path(), "c.txt", b"file c\n");
    otsd.stop();
    let (ok, report) = readmit(&cal, &[&c], &[]);
    assert!(ok, "{report}");
    assert_eq!(report["entries"][0]["round"], 2);

    let (ok, out) = otsctl(&["verify", cal.to_str().unwrap(), "--json"]);
    assert!(ok, "verify after readmit:\n{out}");
    let v: Value = serde_json::from_str(&out).expect("verify JSON");
    assert_eq!(v["readmitted"], 2);
    assert_eq!(v["rounds"], 1);
    assert_eq!(v["macs_checked"], 3);

    let commitment = hex::encode(commitment_in(&b));
    let (ok, out) = otsctl(&[
        "inspect",
        cal.to_str().unwrap(),
        "--commitment",
        &commitment,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("1 (readmitted at seq 1)"), "{out}");
    assert!(out.contains("pending"), "{out}");
    let (ok, out) = otsctl(&[
        "inspect",
        cal.to_str().unwrap(),
        "--type",
        "CommitmentReadmitted",
    ]);
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains(&format!(
            "CommitmentReadmitted commitment={commitment} round=1"
        )),
        "{out}"
    );
}

#[test]
fn refuses_what_this_calendar_did_not_issue() {
    let (dir, otsd) = served_calendar();
    let cal = dir.path().join("calendar");
    let uri = std::fs::read_to_string(cal.join("uri")).expect("uri");
    let ots = OtsClient::new(&dir.path().join("home"));
    let good = ots.stamp(&otsd.url(), dir.path(), "good.txt", b"good\n");
    otsd.stop();
    // Another calendar with its own uri, and an impostor that writes our uri under its own key.
    let (other_dir, other) = served_calendar();
    let foreign = ots.stamp(&other.url(), dir.path(), "foreign.txt", b"foreign\n");
    other.stop();
    let impostor_dir = calendar_with_uri(uri.trim());
    let impostor = Otsd::start(&impostor_dir.path().join("calendar"), &[]);
    let forged = ots.stamp(&impostor.url(), dir.path(), "forged.txt", b"forged\n");
    impostor.stop();
    assert_eq!(
        commitment_in(&forged).len(),
        44,
        "the impostor's proof has the same shape"
    );

    let altered = dir.path().join("altered.txt.ots");
    alter_mac(&good, &altered);
    let short = dir.path().join("short.ots");
    write_short_message_file(uri.trim(), &short);
    let garbage = dir.path().join("garbage.ots");
    std::fs::write(&garbage, b"not a timestamp").expect("write");
    let missing = dir.path().join("missing.ots");

    lose_log(&cal);
    let files: [&Path; 7] = [
        &altered, &foreign, &forged, &short, &garbage, &missing, &good,
    ];
    let (ok, report) = readmit(&cal, &files, &[]);
    assert!(!ok, "rejections make the exit status non-zero: {report}");
    assert_eq!(
        outcomes(&report),
        [
            entry("altered.txt.ots", "rejected", "bad_mac"),
            entry("foreign.txt.ots", "rejected", "no_pending_attestation"),
            entry("forged.txt.ots", "rejected", "bad_mac"),
            entry("short.ots", "rejected", "wrong_length"),
            entry("garbage.ots", "rejected", "parse"),
            entry("missing.ots", "rejected", "unreadable"),
            entry("good.txt.ots", "accepted", ""),
        ]
    );
    assert_eq!(
        (&report["accepted"], &report["rejected"]),
        (&Value::from(1), &Value::from(6))
    );
    let detail = report["entries"][1]["detail"].as_str().unwrap();
    assert!(detail.contains(&other_dir_uri(&other_dir)), "{detail}");

    // Only the good commitment went in, as round 0.
    let (ok, out) = otsctl(&["inspect", cal.to_str().unwrap(), "--json"]);
    assert!(ok, "{out}");
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{out}");
    assert_eq!(events[0]["type"], "CommitmentReadmitted");
    assert_eq!(
        events[0]["event"]["commitment"],
        hex::encode(commitment_in(&good))
    );

    // The human report names each file and reason.
    let (ok, out) = otsctl(&[
        "readmit",
        cal.to_str().unwrap(),
        altered.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(out.contains("rejected") && out.contains("bad MAC"), "{out}");
    assert!(
        out.contains("already known") && out.contains("round 0 (pending)"),
        "{out}"
    );
    assert!(
        out.contains("readmitted 0 commitments, 1 already known, 1 rejected"),
        "{out}"
    );
}

fn other_dir_uri(dir: &tempfile::TempDir) -> String {
    let uri = std::fs::read_to_string(dir.path().join("calendar/uri")).expect("uri");
    uri.trim().to_owned()
}

/// Readmissions that should never have been written are named by `otsctl verify`.
#[test]
fn verify_checks_readmitted_macs_and_duplicates() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let key = std::fs::read(cal.join("hmac-key")).expect("hmac-key");
    let (mut events, _) = common::stamped_round_events(&key);
    // Enough blocks that round 0's proof is complete.
    for height in 101..111 {
        events.push(Event::BlockSeen {
            height,
            hash: [height as u8; 32],
        });
    }
    let Event::RoundSealed { commitment, .. } = events[1].clone() else {
        panic!("the second event seals the round");
    };
    let mut mac = otsd::calendar::mac::CommitmentMac::new(&key);
    let fresh = mac.commitment(1_700_000_100, &[0x61; 32]).to_vec();
    let mut forged = fresh.clone();
    forged[0] ^= 1;
    common::append_events(&cal, &events);
    for (round, c) in [(1, &fresh), (2, &forged), (3, &commitment)] {
        let readmitted = Event::CommitmentReadmitted {
            round,
            commitment: c.clone(),
        };
        common::append_events(&cal, &[readmitted]);
    }
    let (ok, out) = otsctl(&["verify", cal.to_str().unwrap(), "--json"]);
    assert!(!ok, "{out}");
    let v: Value = serde_json::from_str(&out).expect("verify JSON");
    let problems: Vec<(&str, u64)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["check"].as_str().unwrap(), p["seq"].as_u64().unwrap()))
        .collect();
    // After the stamped round's events: fresh, forged, and the duplicate of round 0.
    let forged_seq = events.len() as u64 + 1;
    assert_eq!(
        problems,
        [("mac", forged_seq), ("readmit", forged_seq + 1)],
        "{v}"
    );
    let detail = v["problems"][1]["detail"].as_str().unwrap();
    assert!(detail.contains("was already round 0"), "{detail}");
    assert_eq!(v["readmitted"], 3);
    assert_eq!(v["macs_checked"], 3, "round 0, fresh and the duplicate");
    assert_eq!(
        v["proofs_checked"], 1,
        "round 0's proof is still recomputed"
    );
    // The repeat does not turn the stamped commitment back into a pending one.
    let (ok, out) = otsctl(&[
        "inspect",
        cal.to_str().unwrap(),
        "--commitment",
        &hex::encode(&commitment),
        "--json",
    ]);
    assert!(ok, "{out}");
    let loc: Value = serde_json::from_str(&out).expect("inspect JSON");
    assert_eq!(
        (&loc["round"], &loc["status"]),
        (&Value::from(0), &Value::from("complete"))
    );
}

/// The full path on a regtest node: after the readmission, the stamper stamps the commitment and
/// the real `ots upgrade` completes the client's proof, which `ots verify` accepts.
#[test]
fn readmitted_commitment_is_stamped_and_upgraded() {
    let node = Bitcoind::start();
    let port = free_port().to_string();
    let dir = calendar_with_uri(&format!("http://127.0.0.1:{port}"));
    let cal = dir.path().join("calendar");
    fund_stamper(&node, &cal);
    // Stamped while no node is configured, so the lost round was never in a transaction.
    let otsd = Otsd::start(&cal, &["--rpc-port", &port]);
    let url = otsd.url();
    let ots = OtsClient::new(&dir.path().join("home"));
    let proof = ots.stamp(&url, dir.path(), "lost.txt", b"stamped before the loss\n");
    otsd.stop();

    lose_log(&cal);
    let (ok, report) = readmit(&cal, &[&proof], &[]);
    assert!(ok, "{report}");
    assert_eq!(report["accepted"], 1);

    let mut args = vec!["--rpc-port".to_owned(), port];
    args.extend(node.stamper_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let otsd = Otsd::start(&cal, &args);
    wait_for("the stamping tx", 30, || {
        let mempool = node.client.get_raw_mempool().expect("getrawmempool");
        (!mempool.is_empty()).then_some(())
    });
    node.mine(6);
    let proof_s = proof.to_str().unwrap();
    wait_for("ots upgrade to complete the proof", 60, || {
        let (ok, out) = ots.run(&["--btc-regtest", "-l", &url, "upgrade", proof_s]);
        (ok && out.contains("Success")).then_some(())
    });
    let (ok, out) = ots.verify_regtest(&node.url_with_auth(), proof_s);
    assert!(
        ok && out.contains("Success! Bitcoin block"),
        "ots verify: {out}"
    );
    otsd.stop();
    let (ok, out) = otsctl(&["verify", cal.to_str().unwrap()]);
    assert!(ok && out.contains("1 complete proofs recomputed"), "{out}");
}
