//! `otsctl verify` against a clean calendar after real submissions, and against logs with planted
//! damage: a flipped bit in a sealed segment, a forged MAC, a wrong root, a wrong digest count, a
//! confirmation without a broadcast.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::path::{Path, PathBuf};

use otsd::calendar::dir::CalendarDir;
use otsd::calendar::mac::CommitmentMac;
use otsd::events::codec;
use otsd::events::Event;
use otsd::log::segment::{segment_name, segments_in};
use otsd::log::{LogKey, WriterOptions};
use otsd::ots::answer::nonce_leaf;
use otsd::ots::MerkleTree;
use serde_json::Value;

use common::{otsctl, record_spans, verify_json};

/// How to damage one round of [`write_calendar_log`].
#[derive(Clone, Copy, PartialEq)]
enum Plant {
    Nothing,
    ForgedMac,
    WrongRoot,
    ClaimsOneMore,
}

/// Writes `rounds` rounds of three digests each, one batch per round, straight through the log
/// writer with the calendar's key; round `bad` is damaged as `plant` says. Segments are small so
/// the log has several. Returns the seal sequence numbers.
fn write_calendar_log(cal: &Path, rounds: u64, bad: u64, plant: Plant) -> Vec<u64> {
    let dir = CalendarDir::load(cal).expect("calendar");
    let mut mac = CommitmentMac::new(&dir.hmac_key);
    let opts = WriterOptions {
        segment_size: 4096,
        ..WriterOptions::default()
    };
    let mut w = common::open_writer(&dir.log_dir(), LogKey::derive(&dir.hmac_key), opts);
    let mut seals = Vec::new();
    for round in 0..rounds {
        let digests: Vec<Event> = (0..3u8)
            .map(|i| Event::DigestSubmitted {
                digest: vec![round as u8, i, 7, 7],
                nonce: [i; 16],
            })
            .collect();
        let leaves = digests
            .iter()
            .map(|e| match e {
                Event::DigestSubmitted { digest, nonce } => nonce_leaf(digest, nonce),
                _ => unreachable!(),
            })
            .collect();
        let mut root = *MerkleTree::new(leaves).expect("leaves").root();
        let time = 1_700_000_000 + round as u32;
        let mut m = mac.mac(time, &root);
        let mut count = 3;
        if round == bad {
            match plant {
                Plant::ForgedMac => m[0] ^= 1,
                Plant::WrongRoot => root[5] ^= 0x10,
                Plant::ClaimsOneMore => count += 1,
                Plant::Nothing => {}
            }
        }
        let mut commitment = time.to_be_bytes().to_vec();
        commitment.extend_from_slice(&root);
        commitment.extend_from_slice(&m);
        let seal = Event::RoundSealed {
            round,
            time,
            root,
            mac: m,
            commitment,
            digests: count,
        };
        let mut batch: Vec<Vec<u8>> = digests.iter().map(|e| codec::encode(e).unwrap()).collect();
        batch.push(codec::encode(&seal).unwrap());
        let range = w.append_batches(&[batch]).expect("append");
        seals.push(range[0].first + 3);
    }
    seals
}

fn problems(report: &Value) -> &Vec<Value> {
    report["problems"].as_array().expect("problems")
}

#[test]
fn a_clean_calendar_after_real_submissions_verifies() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let otsd = common::Otsd::start(&cal, &[]);
    for i in 0..20u8 {
        let resp = common::post_digest(otsd.addr, &[i; 32]);
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    otsd.stop();
    let (ok, report) = verify_json(&cal, &[]);
    assert!(ok, "{report}");
    assert!(problems(&report).is_empty(), "{report}");
    assert_eq!(report["digests"], 20);
    let rounds = report["rounds"].as_u64().unwrap();
    assert!(rounds >= 1);
    assert_eq!(report["macs_checked"].as_u64(), Some(rounds));
    assert_eq!(report["roots_checked"].as_u64(), Some(rounds));
    assert_eq!(report["events"].as_u64(), Some(20 + rounds));
    assert_eq!(report["keyed"], true);

    let (ok, out, _) = otsctl(&["verify", cal.to_str().unwrap()]);
    assert!(ok);
    assert!(out.contains("OK: no problems found"), "{out}");
    assert!(out.contains("20 digests"), "{out}");
}

fn log_dir(cal: &Path) -> PathBuf {
    cal.join("log")
}

#[test]
fn a_flipped_bit_in_a_sealed_segment_is_named_by_segment_and_offset() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    write_calendar_log(&cal, 40, u64::MAX, Plant::Nothing);
    let (ok, clean) = verify_json(&cal, &[]);
    assert!(ok, "{clean}");
    let seg = log_dir(&cal).join(segment_name(0));
    assert_eq!(clean["rounds"], 40);
    let names: Vec<String> = std::fs::read_dir(log_dir(&cal))
        .expect("list log")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let segments = segments_in(&log_dir(&cal), &names).expect("segments");
    assert!(segments.len() > 1, "segment 0 is sealed: {segments:?}");
    let mut bytes = std::fs::read(&seg).expect("segment 0");
    let offsets: Vec<usize> = record_spans(&bytes).into_iter().map(|(o, _)| o).collect();
    assert!(offsets.len() >= 3, "segment 0 holds several records");
    let target = offsets[1];
    bytes[target + 30] ^= 0x04;
    std::fs::write(&seg, &bytes).expect("write flipped");

    let (ok, report) = verify_json(&cal, &[]);
    assert!(!ok, "damage must fail verification");
    let p = &problems(&report)[0];
    assert_eq!(p["check"], "log");
    assert_eq!(p["segment"].as_str(), Some(segment_name(0).as_str()), "{p}");
    assert_eq!(p["offset"].as_u64(), Some(target as u64), "{p}");
    assert_eq!(
        p["seq"].as_u64(),
        Some(4),
        "the first round's 4 events read before"
    );

    let (ok, out, _) = otsctl(&["verify", cal.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains(&format!("segment {}, offset {target}", segment_name(0))),
        "{out}"
    );
    assert!(out.contains("FAILED"), "{out}");
}

#[test]
fn a_forged_mac_is_found_at_its_seal_and_only_with_the_key() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let seals = write_calendar_log(&cal, 10, 6, Plant::ForgedMac);
    let (ok, report) = verify_json(&cal, &[]);
    assert!(!ok);
    let ps = problems(&report);
    assert_eq!(ps.len(), 1, "{report}");
    assert_eq!(ps[0]["check"], "mac");
    assert_eq!(ps[0]["seq"].as_u64(), Some(seals[6]));
    assert!(ps[0]["segment"].is_string(), "{report}");
    assert_eq!(report["macs_checked"], 9);

    let (ok, report) = verify_json(&cal, &["--no-key"]);
    assert!(ok, "without the key the MAC cannot be checked: {report}");
    assert_eq!(report["keyed"], false);

    let (ok, report) = verify_json(&cal, &["--to", &(seals[6] - 1).to_string()]);
    assert!(ok, "the forged seal is outside the range: {report}");
}

#[test]
fn a_wrong_root_is_found_by_recomputing_the_tree() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let seals = write_calendar_log(&cal, 5, 2, Plant::WrongRoot);
    let (ok, report) = verify_json(&cal, &["--no-key"]);
    assert!(!ok);
    let ps = problems(&report);
    assert_eq!(ps.len(), 1, "{report}");
    assert_eq!(ps[0]["check"], "root");
    assert_eq!(ps[0]["seq"].as_u64(), Some(seals[2]));
}

#[test]
fn a_seal_claiming_more_digests_than_precede_it_breaks_the_order_rules() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let seals = write_calendar_log(&cal, 3, 0, Plant::ClaimsOneMore);
    let (ok, report) = verify_json(&cal, &[]);
    assert!(!ok);
    let first = &problems(&report)[0];
    assert_eq!(first["check"], "order", "{report}");
    assert_eq!(first["seq"].as_u64(), Some(seals[0]));
    assert!(
        first["detail"].as_str().unwrap().contains("4 digests"),
        "{first}"
    );
}

#[test]
fn a_confirmation_without_its_broadcast_is_out_of_order() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let seals = write_calendar_log(&cal, 2, u64::MAX, Plant::Nothing);
    let dir = CalendarDir::load(&cal).expect("calendar");
    let key = LogKey::derive(&dir.hmac_key);
    let mut w = common::open_writer(&dir.log_dir(), key, WriterOptions::default());
    let confirmed = Event::TxConfirmed {
        txid: [0x33; 32],
        block_hash: [0x44; 32],
        height: 7,
        block_txids: vec![0x33; 32],
    };
    w.append_batches(&[vec![codec::encode(&confirmed).unwrap()]])
        .expect("append");
    drop(w);
    let (ok, report) = verify_json(&cal, &[]);
    assert!(!ok);
    let ps = problems(&report);
    assert_eq!(ps.len(), 1, "{report}");
    assert_eq!(ps[0]["check"], "tx");
    assert_eq!(ps[0]["seq"].as_u64(), Some(seals[1] + 1));
}

#[test]
fn damage_in_two_segments_names_both_and_later_checks_go_on() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let seals = write_calendar_log(&cal, 60, 55, Plant::ForgedMac);
    let names: Vec<String> = std::fs::read_dir(log_dir(&cal))
        .expect("list log")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let segments = segments_in(&log_dir(&cal), &names).expect("segments");
    assert!(segments.len() >= 4, "{segments:?}");
    assert!(
        seals[55] > segments[2],
        "the forged seal is after the damage"
    );
    let mut flipped = Vec::new();
    for &first in &segments[..2] {
        let seg = log_dir(&cal).join(segment_name(first));
        let mut bytes = std::fs::read(&seg).expect("segment");
        let target = record_spans(&bytes)[1].0;
        bytes[target + 30] ^= 0x01;
        std::fs::write(&seg, &bytes).expect("write flipped");
        flipped.push((segment_name(first), target as u64));
    }
    let (ok, report) = verify_json(&cal, &[]);
    assert!(!ok);
    let ps = problems(&report);
    let logs: Vec<(String, u64)> = ps
        .iter()
        .filter(|p| p["check"] == "log")
        .map(|p| {
            (
                p["segment"].as_str().unwrap().to_owned(),
                p["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(logs, flipped, "{report}");
    let macs: Vec<u64> = ps
        .iter()
        .filter(|p| p["check"] == "mac")
        .map(|p| p["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(macs, vec![seals[55]], "{report}");
    assert_eq!(
        ps.len(),
        3,
        "no false root or order problems after a resume: {report}"
    );
    assert_eq!(
        report["resumed_at"],
        serde_json::json!([segments[1], segments[2]])
    );
}

/// One round stamped by a (fake, unsigned) transaction whose output carries the round's tip,
/// confirmed at height 101 in a block of two transactions, then `blocks` more blocks seen.
/// `rival`: a second, different confirmation recorded at the same height afterwards.
fn stamped_round(cal: &Path, blocks: u32, rival: bool) -> Vec<Event> {
    let dir = CalendarDir::load(cal).expect("calendar");
    let (mut events, txid) = common::stamped_round_events(&dir.hmac_key);
    for h in 101..101 + blocks {
        events.push(Event::BlockSeen {
            height: h,
            hash: [h as u8; 32],
        });
    }
    if rival {
        events.push(Event::TxConfirmed {
            txid,
            block_hash: [0x23; 32],
            height: 101,
            block_txids: [txid, [0x78; 32]].concat(),
        });
    }
    common::append_events(cal, &events);
    events
}

#[test]
fn complete_proofs_are_recomputed_to_their_block_merkle_root() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    stamped_round(&cal, 10, false);
    let (ok, report) = verify_json(&cal, &[]);
    assert!(ok, "{report}");
    assert_eq!(report["proofs_checked"], 1, "{report}");
    assert_eq!(report["confirmations"], 1);
}

#[test]
fn a_proof_that_misses_its_block_root_is_reported() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    stamped_round(&cal, 10, true);
    let (ok, report) = verify_json(&cal, &[]);
    assert!(!ok, "{report}");
    let ps = problems(&report);
    assert_eq!(ps.len(), 1, "{report}");
    assert_eq!(ps[0]["check"], "proof");
    assert_eq!(ps[0]["seq"], 1, "named at the round's seal");
    let detail = ps[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("does not reach the Merkle root of block 101"),
        "{detail}"
    );
}

/// Issue 13 hole 2: a confirmation the fold cannot prove (its txid is not among the recorded
/// block's transactions, or the tip is not in the transaction) used to be logged by the fold and
/// verified as OK.
#[test]
fn a_confirmation_whose_txid_is_not_in_its_block_is_reported() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let key = CalendarDir::load(&cal).expect("calendar").hmac_key;
    let (mut events, _) = common::stamped_round_events(&key);
    if let Event::TxConfirmed { block_txids, .. } = &mut events[3] {
        *block_txids = [[0x77; 32], [0x78; 32]].concat();
    }
    common::append_events(&cal, &events);
    let (ok, report) = verify_json(&cal, &[]);
    assert!(!ok, "{report}");
    let ps = problems(&report);
    assert!(
        ps.iter().any(|p| p["check"] == "stamp" && p["seq"] == 3),
        "{report}"
    );
    let (ok, out, _) = otsctl(&["verify", cal.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("FAILED"), "{out}");
}

#[test]
fn a_confirmation_whose_tip_is_not_in_its_transaction_is_reported() {
    use sha2::{Digest, Sha256};
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let key = CalendarDir::load(&cal).expect("calendar").hmac_key;
    let (mut events, _) = common::stamped_round_events(&key);
    let raw_tx = [&[2, 0, 0, 0, 1][..], &[0x55; 32][..], &[0, 0, 0, 0][..]].concat();
    let other: [u8; 32] = Sha256::digest(Sha256::digest(&raw_tx)).into();
    if let Event::TxBroadcast {
        txid, raw_tx: raw, ..
    } = &mut events[2]
    {
        *txid = other;
        *raw = raw_tx;
    }
    if let Event::TxConfirmed {
        txid, block_txids, ..
    } = &mut events[3]
    {
        *txid = other;
        *block_txids = [[0x77; 32], other].concat();
    }
    common::append_events(&cal, &events);
    let (ok, report) = verify_json(&cal, &[]);
    assert!(!ok, "{report}");
    assert!(
        problems(&report)
            .iter()
            .any(|p| p["check"] == "stamp" && p["seq"] == 3),
        "{report}"
    );
}

/// Issue 13 hole 3: a `TxBroadcast` claiming rounds that were never sealed used to be folded, and
/// once its confirmation was final `GET /timestamp` sliced past the sealed rounds and panicked.
/// The fold now refuses it (the round stays pending) and `otsctl verify` names it.
#[test]
fn a_broadcast_over_unsealed_rounds_is_refused_by_the_fold() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let key = CalendarDir::load(&cal).expect("calendar").hmac_key;
    let (mut events, _) = common::stamped_round_events(&key);
    if let Event::TxBroadcast { last_round, .. } = &mut events[2] {
        *last_round = 3;
    }
    for h in 101..111 {
        events.push(Event::BlockSeen {
            height: h,
            hash: [h as u8; 32],
        });
    }
    let mut view = otsd::projection::Projection::new(1);
    let mut refused = Vec::new();
    for (seq, ev) in events.iter().enumerate() {
        if let Some(p) = view.apply_checked(seq as u64, ev).expect("round order") {
            refused.push(p.seq);
        }
    }
    assert_eq!(refused.first(), Some(&2), "the broadcast is refused");
    let commitment = match &events[1] {
        Event::RoundSealed { commitment, .. } => commitment.clone(),
        _ => unreachable!(),
    };
    assert!(matches!(
        view.status(&commitment),
        otsd::projection::Status::Pending { round: 0 }
    ));
    common::append_events(&cal, &events);
    let (ok, report) = verify_json(&cal, &[]);
    assert!(!ok, "{report}");
}
