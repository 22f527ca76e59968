//! `otsctl inspect` (dumps by range and type, look-ups of a digest or commitment) and `otsctl
//! replay`, on a calendar after real submissions and on a log with stamping events.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::path::Path;

use common::otsctl;
use otsd::calendar::dir::CalendarDir;
use serde_json::Value;

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A submitted digest and the calendar's answer.
type Submission = (Vec<u8>, Vec<u8>);

/// A calendar with `n` digests submitted to a real otsd; returns the digests and their answers.
fn served(n: u8) -> (tempfile::TempDir, Vec<Submission>) {
    let dir = common::new_calendar();
    let otsd = common::Otsd::start(&dir.path().join("calendar"), &[]);
    let answers = (0..n)
        .map(|i| {
            let digest = vec![i ^ 0x5a; 32];
            let resp = common::post_digest(otsd.addr, &digest);
            assert_eq!(resp.status, 200, "{}", resp.text());
            (digest, resp.body)
        })
        .collect();
    otsd.stop();
    (dir, answers)
}

#[test]
fn dumps_events_by_range_and_type() {
    let (dir, _) = served(5);
    let cal = dir.path().join("calendar");
    let cal = cal.to_str().unwrap();
    let (ok, out, _) = otsctl(&["inspect", cal, "--json"]);
    assert!(ok, "{out}");
    let all = json_lines(&out);
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..all.len() as u64).collect::<Vec<_>>());
    let digests = all
        .iter()
        .filter(|e| e["type"] == "DigestSubmitted")
        .count();
    assert_eq!(digests, 5);

    let (ok, out, _) = otsctl(&["inspect", cal, "--json", "--type", "roundsealed"]);
    assert!(ok);
    let seals = json_lines(&out);
    assert!(!seals.is_empty());
    assert!(seals.iter().all(|e| e["type"] == "RoundSealed"));
    assert_eq!(seals[0]["event"]["round"], 0);

    let (ok, out, _) = otsctl(&["inspect", cal, "--from", "1", "--to", "2"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("1 ") && lines[1].starts_with("2 "),
        "{out}"
    );

    let (ok, _, _) = otsctl(&["inspect", cal, "--type", "NoSuchEvent"]);
    assert!(!ok, "an unknown type is refused");
}

#[test]
fn finds_a_digest_and_its_commitment() {
    let (dir, answers) = served(4);
    let cal = dir.path().join("calendar");
    let cal = cal.to_str().unwrap();
    let (digest, answer) = &answers[2];
    let commitment = common::commitment_of(digest, answer);
    let (ok, out, _) = otsctl(&["inspect", cal, "--json", "--digest", &hex::encode(digest)]);
    assert!(ok, "{out}");
    let by_digest: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(by_digest["found"], true);
    assert_eq!(
        by_digest["commitment"].as_str(),
        Some(hex::encode(&commitment).as_str())
    );
    assert_eq!(by_digest["status"], "pending");
    assert!(by_digest["digest_seq"].as_u64().unwrap() < by_digest["seal_seq"].as_u64().unwrap());

    let (ok, out, _) = otsctl(&[
        "inspect",
        cal,
        "--json",
        "--commitment",
        &hex::encode(&commitment),
    ]);
    assert!(ok, "{out}");
    let by_commitment: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(by_commitment["round"], by_digest["round"]);
    assert_eq!(by_commitment["seal_seq"], by_digest["seal_seq"]);

    let (ok, out, _) = otsctl(&["inspect", cal, "--commitment", &hex::encode(&commitment)]);
    assert!(ok);
    assert!(
        out.contains(&hex::encode(&commitment)) && out.contains("pending"),
        "{out}"
    );

    let (ok, out, _) = otsctl(&["inspect", cal, "--digest", &hex::encode([0xee; 32])]);
    assert!(!ok, "an unknown digest is not found");
    assert!(out.contains("not found"), "{out}");
}

/// A log with one round, a broadcast covering it and its confirmation.
fn stamped_log(cal: &Path) -> ([u8; 32], [u8; 32]) {
    let dir = CalendarDir::load(cal).expect("calendar");
    let (events, txid) = common::stamped_round_events(&dir.hmac_key);
    common::append_events(cal, &events);
    (txid, common::STAMPED_BLOCK.0)
}

fn reversed_hex(mut b: [u8; 32]) -> String {
    b.reverse();
    hex::encode(b)
}

#[test]
fn a_look_up_names_the_transaction_and_block() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let (txid, block) = stamped_log(&cal);
    let cal = cal.to_str().unwrap();
    let (ok, out, _) = otsctl(&[
        "inspect",
        cal,
        "--json",
        "--digest",
        &hex::encode([3u8; 32]),
    ]);
    assert!(ok, "{out}");
    let loc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(loc["round"], 0);
    assert_eq!(
        loc["broadcasts"][0].as_str(),
        Some(reversed_hex(txid).as_str())
    );
    assert_eq!(loc["txid"].as_str(), Some(reversed_hex(txid).as_str()));
    assert_eq!(
        loc["block_hash"].as_str(),
        Some(reversed_hex(block).as_str())
    );
    assert_eq!(loc["block_height"], 101);

    let (ok, out, _) = otsctl(&["verify", cal, "--json"]);
    assert!(ok, "a confirmation after its broadcast is in order: {out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["broadcasts"], 1);
    assert_eq!(report["confirmations"], 1);
}

#[test]
fn replay_summarizes_the_fold() {
    let (dir, _) = served(6);
    let cal = dir.path().join("calendar");
    let (ok, out, _) = otsctl(&["replay", cal.to_str().unwrap(), "--json"]);
    assert!(ok, "{out}");
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["digests"], 6);
    let rounds = s["rounds"].as_u64().unwrap();
    assert!(rounds >= 1);
    assert_eq!(s["events"].as_u64(), Some(6 + rounds));
    assert!(s["events_per_second"].as_f64().unwrap() > 0.0);
    let (ok, out, _) = otsctl(&["replay", cal.to_str().unwrap()]);
    assert!(ok);
    assert!(out.contains("6 digests"), "{out}");
}
