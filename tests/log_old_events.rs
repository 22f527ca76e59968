//! A calendar whose log was written before the compact event encoding (`common/legacy.rs`: fixed
//! arrays as arrays of integers, every seal with its commitment) reads as the same calendar written
//! since: the same events, the same `otsctl verify` counts, and otsd serves the same answers. Its
//! log is larger by the bytes the compact encoding saves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use otsd::calendar::dir::CalendarDir;
use otsd::calendar::mac::CommitmentMac;
use otsd::events::{codec, Event};
use otsd::log::{LogKey, Reader, WriterOptions};
use otsd::ots::answer::nonce_leaf;
use otsd::ots::MerkleTree;

use common::{get, new_calendar, stamped_round_events, verify_json, Otsd};

/// Round 0 stamped and final (its transaction confirmed under six blocks), then `rounds` rounds
/// of three digests, one batch each. Returns the batches and every round's commitment.
fn calendar_events(hmac_key: &[u8], rounds: u64) -> (Vec<Vec<Event>>, BTreeSet<Vec<u8>>) {
    let (mut first, _) = stamped_round_events(hmac_key);
    first.extend((100..=107).map(|height| Event::BlockSeen {
        height,
        hash: [height as u8; 32],
    }));
    let mut batches = vec![first];
    let mut mac = CommitmentMac::new(hmac_key);
    for round in 1..=rounds {
        let mut batch: Vec<Event> = (0..3u8)
            .map(|i| Event::DigestSubmitted {
                digest: vec![round as u8, i, 0xd1, 0xd1],
                nonce: [i.wrapping_mul(0x5b); 16],
            })
            .collect();
        let leaves = batch
            .iter()
            .map(|e| match e {
                Event::DigestSubmitted { digest, nonce } => nonce_leaf(digest, nonce),
                _ => unreachable!(),
            })
            .collect();
        let root = *MerkleTree::new(leaves).unwrap().root();
        let time = 1_700_000_000 + round as u32;
        let commitment = mac.commitment(time, &root);
        batch.push(Event::RoundSealed {
            round,
            time,
            root,
            mac: commitment[36..].try_into().unwrap(),
            commitment: commitment.to_vec(),
            digests: 3,
        });
        batches.push(batch);
    }
    let commitments = batches
        .iter()
        .flatten()
        .filter_map(|e| match e {
            Event::RoundSealed { commitment, .. } => Some(commitment.clone()),
            _ => None,
        })
        .collect();
    (batches, commitments)
}

/// Writes `batches` to the calendar's log, each event encoded by `encode`; small segments, so the
/// log has several sealed ones.
fn write_log(cal: &Path, batches: &[Vec<Event>], encode: fn(&Event) -> Vec<u8>) {
    let dir = CalendarDir::load(cal).unwrap();
    let opts = WriterOptions {
        segment_size: 4096,
        ..WriterOptions::default()
    };
    let mut w = common::open_writer(&dir.log_dir(), LogKey::derive(&dir.hmac_key), opts);
    for batch in batches {
        w.append_batches(&[batch.iter().map(encode).collect()])
            .unwrap();
    }
}

/// Every event of the log, decoded, and the bytes of all of them.
fn read_events(cal: &Path) -> (Vec<Event>, usize) {
    let (mut events, mut bytes) = (Vec::new(), 0);
    let reader = Reader::open(&CalendarDir::load(cal).unwrap().log_dir(), None).unwrap();
    reader
        .for_each_from(0, |_, ev| {
            bytes += ev.len();
            events.push(codec::decode(ev).expect("every event decodes"));
        })
        .unwrap();
    (events, bytes)
}

type Answers = BTreeMap<(&'static str, Vec<u8>), (u16, Vec<u8>)>;

/// `GET /timestamp/` and `GET /status/` of each commitment: (status, body).
fn answers(cal: &Path, commitments: &BTreeSet<Vec<u8>>) -> Answers {
    let otsd = Otsd::start(cal, &[]);
    let mut got = Answers::new();
    for c in commitments {
        for path in ["timestamp", "status"] {
            let r = get(otsd.addr, &format!("/{path}/{}", hex::encode(c)), "");
            got.insert((path, c.clone()), (r.status, r.body));
        }
    }
    otsd.stop();
    got
}

#[test]
fn a_log_written_before_the_compact_encoding_reads_verifies_and_serves_the_same() {
    let dir = new_calendar();
    let old = dir.path().join("calendar");
    let new_dir = new_calendar();
    let new = new_dir.path().join("calendar");
    let hmac_key = std::fs::read(old.join("hmac-key")).unwrap();
    std::fs::write(new.join("hmac-key"), &hmac_key).unwrap();

    let (batches, commitments) = calendar_events(&hmac_key, 60);
    write_log(&old, &batches, common::legacy::encode);
    write_log(&new, &batches, |e| codec::encode(e).unwrap());

    let written: Vec<Event> = batches.concat();
    let (old_events, old_bytes) = read_events(&old);
    let (new_events, new_bytes) = read_events(&new);
    assert_eq!(
        old_events, written,
        "the old log decodes to the events written"
    );
    assert_eq!(new_events, written);
    // 60 rounds of three digests: per digest at least 2 bytes of nonce, per seal 46 of commitment
    // and 30 of root and MAC.
    assert!(
        old_bytes >= new_bytes + 60 * (3 * 2 + 46 + 30),
        "old {old_bytes} B, new {new_bytes} B"
    );

    let (ok_old, mut report_old) = verify_json(&old, &[]);
    let (ok_new, mut report_new) = verify_json(&new, &[]);
    assert!(ok_old && ok_new, "{report_old}\n{report_new}");
    assert_eq!(
        report_old["problems"],
        serde_json::json!([]),
        "{report_old}"
    );
    assert_eq!(report_old["rounds"], 61, "{report_old}");
    assert_eq!(report_old["macs_checked"], 61, "{report_old}");
    assert_eq!(report_old["proofs_checked"], 1, "{report_old}");
    // Chain heads (they hash the record bytes) and timings differ; every count is the same.
    for key in ["head_hash", "seconds"] {
        report_old[key].take();
        report_new[key].take();
    }
    assert_eq!(report_old, report_new);

    let old_answers = answers(&old, &commitments);
    let status = |path, want| {
        let n = old_answers
            .iter()
            .filter(|((p, _), (s, _))| *p == path && *s == want);
        n.count()
    };
    // Round 0's complete proof; the other rounds are pending (404, as the Python server does).
    assert_eq!(
        (status("timestamp", 200), status("timestamp", 404)),
        (1, 60)
    );
    assert_eq!(status("status", 200), 61);
    assert_eq!(old_answers, answers(&new, &commitments));
}
