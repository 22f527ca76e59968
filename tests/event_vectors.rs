//! Events encoded before a variant was added, or before the compact encoding, must keep decoding
//! to the same events: the codec is packed (variants and fields by index), so new variants go at
//! the end of `enum Event` only.
//! - `tests/vectors/events-v1.json` holds one event of each variant as encoded by the first
//!   version (written with `cargo test --test event_vectors -- --ignored
//!   generate_events_v1_vectors`, never regenerated; a new variant gets its own pinned test below).
//! - `tests/vectors/events-compact.json` holds the same events and two more (a seal as otsd writes
//!   it, a transaction with a log head) in the compact encoding (`generate_events_compact_vectors`,
//!   never regenerated): what `codec::encode` writes since then.
//! - `common/legacy.rs` is the encoder before the compact one; every event it writes must decode.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
use std::path::{Path, PathBuf};

#[path = "common/legacy.rs"]
mod legacy;

use otsd::events::codec;
use otsd::events::{Event, LogHead};
use serde_json::{json, Value};

fn vectors() -> PathBuf {
    vectors_named("events-v1.json")
}

fn vectors_named(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

/// One event of each variant of format v1, with distinct field values.
fn v1_events() -> Vec<Event> {
    vec![
        Event::DigestSubmitted {
            digest: vec![0xd1; 32],
            nonce: [0x0e; 16],
        },
        Event::RoundSealed {
            round: 7,
            time: 1_700_000_000,
            root: [0x52; 32],
            mac: [0x3a; 8],
            commitment: vec![0xc0; 44],
            digests: 1,
        },
        Event::TxBroadcast {
            txid: [0x71; 32],
            raw_tx: vec![0x02, 0, 0, 0, 0xaa, 0xbb],
            tip: [0x7e; 32],
            first_round: 3,
            last_round: 7,
            fee_sat: 1234,
            feerate_sat_per_kvb: 1000,
            input_sat: 50_000,
            height: 800_000,
            replaces: Some([0x72; 32]),
            log_head: None,
        },
        Event::TxConfirmed {
            txid: [0x71; 32],
            block_hash: [0xb1; 32],
            height: 800_001,
            block_txids: [[0x01; 32], [0x71; 32]].concat(),
        },
        Event::BlockSeen {
            height: 800_002,
            hash: [0xb2; 32],
        },
        Event::Reorg {
            fork_height: 800_000,
            old_tip: [0xb2; 32],
            new_tip: [0xb3; 32],
        },
    ]
}

#[test]
#[ignore = "writes the committed fixture; run by hand only"]
fn generate_events_v1_vectors() {
    let path = vectors();
    assert!(!path.exists(), "refusing to overwrite {}", path.display());
    let events: Vec<Value> = v1_events()
        .iter()
        .map(|e| json!({"debug": format!("{e:?}"), "hex": hex::encode(legacy::encode(e))}))
        .collect();
    let text = serde_json::to_string_pretty(&json!({ "events": events })).expect("json");
    std::fs::write(&path, text + "\n").expect("write");
}

/// The events of [`v1_events`], then a seal whose commitment is `time || root || mac` (as every
/// seal otsd writes; the v1 one is not) and a transaction with a log head and no replaced txid.
fn compact_events() -> Vec<Event> {
    let mut events = v1_events();
    let (time, root, mac) = (1_700_000_000u32, [0x52; 32], [0x3a; 8]);
    events.push(Event::RoundSealed {
        round: 7,
        time,
        root,
        mac,
        commitment: [&time.to_be_bytes()[..], &root, &mac].concat(),
        digests: 1,
    });
    events.push(Event::TxBroadcast {
        txid: [0x71; 32],
        raw_tx: vec![0x02, 0, 0, 0, 0xaa, 0xbb],
        tip: [0x7e; 32],
        first_round: 3,
        last_round: 7,
        fee_sat: 1234,
        feerate_sat_per_kvb: 1000,
        input_sat: 50_000,
        height: 800_000,
        replaces: None,
        log_head: Some(LogHead {
            next_seq: 42,
            hash: [0x4b; 32],
        }),
    });
    events
}

#[test]
#[ignore = "writes the committed fixture; run by hand only"]
fn generate_events_compact_vectors() {
    let path = vectors_named("events-compact.json");
    assert!(!path.exists(), "refusing to overwrite {}", path.display());
    let events: Vec<Value> = compact_events()
        .iter()
        .map(|e| json!({"debug": format!("{e:?}"), "hex": hex::encode(codec::encode(e).expect("encode"))}))
        .collect();
    let text = serde_json::to_string_pretty(&json!({ "events": events })).expect("json");
    std::fs::write(&path, text + "\n").expect("write");
}

/// The hex strings of a fixture file.
fn fixture(name: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(vectors_named(name)).expect("read the fixture");
    let doc: Value = serde_json::from_str(&text).expect("parse the fixture");
    doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|v| hex::decode(v["hex"].as_str().expect("hex")).expect("hex"))
        .collect()
}

#[test]
fn events_v1_still_decode_to_the_same_events_and_are_now_written_compact() {
    let old = fixture("events-v1.json");
    let compact = fixture("events-compact.json");
    let events = v1_events();
    assert_eq!(old.len(), events.len());
    for ((old, compact), event) in old.iter().zip(&compact).zip(&events) {
        assert_eq!(
            &codec::decode::<Event>(old).expect("a v1 event decodes"),
            event
        );
        assert_eq!(&codec::encode(event).expect("encode"), compact, "{event:?}");
        // Equal only for the nonce of bytes below 24, one byte each either way.
        assert!(compact.len() <= old.len(), "{event:?}");
    }
}

#[test]
fn compact_events_decode_and_encode_the_same() {
    let fixed = fixture("events-compact.json");
    let events = compact_events();
    assert_eq!(fixed.len(), events.len());
    for (bytes, event) in fixed.iter().zip(&events) {
        assert_eq!(&codec::decode::<Event>(bytes).expect("decode"), event);
        assert_eq!(&codec::encode(event).expect("encode"), bytes, "{event:?}");
    }
}

#[test]
fn the_legacy_encoder_is_the_v1_encoder_and_all_it_writes_decodes() {
    for (bytes, event) in fixture("events-v1.json").iter().zip(&v1_events()) {
        assert_eq!(&legacy::encode(event), bytes, "{event:?}");
    }
    let (mut old_len, mut new_len) = (0, 0);
    for event in compact_events() {
        let old = legacy::encode(&event);
        assert_eq!(codec::decode::<Event>(&old).expect("decode"), event);
        old_len += old.len();
        new_len += codec::encode(&event).expect("encode").len();
    }
    assert!(new_len + 200 < old_len, "{new_len} {old_len}");
}

/// The worked example of `log-format/README.md`: one round of one digest, before and after.
#[test]
fn one_digest_round_worked_example_is_pinned() {
    let nonce: [u8; 16] = std::array::from_fn(|i| 0x11 * i as u8);
    let digest = Event::DigestSubmitted {
        digest: vec![0xd1; 32],
        nonce,
    };
    let (time, root, mac) = (1_700_000_000u32, [0x52; 32], [0x3a; 8]);
    let seal = Event::RoundSealed {
        round: 7,
        time,
        root,
        mac,
        commitment: [&time.to_be_bytes()[..], &root, &mac].concat(),
        digests: 1,
    };
    let d1 = "d1".repeat(32);
    let digest_old = format!(
        "a100a2005820{d1}0190001118221833184418551866187718881899\
         18aa18bb18cc18dd18ee18ff"
    );
    let digest_new = format!("a100a2005820{d1}015000112233445566778899aabbccddeeff");
    let seal_old = format!(
        "a101a60007011a6553f10002 9820{} 0388{} 04582c6553f100{}{} 0501",
        "1852".repeat(32),
        "183a".repeat(8),
        "52".repeat(32),
        "3a".repeat(8)
    )
    .replace(' ', "");
    let seal_new = format!(
        "a101a50007011a6553f100025820{}03483a3a3a3a3a3a3a3a0501",
        "52".repeat(32)
    );
    for (event, old, new, (old_len, new_len)) in [
        (&digest, digest_old, digest_new, (70, 56)),
        (&seal, seal_old, seal_new, (145, 58)),
    ] {
        let (old, new) = (hex::decode(old).unwrap(), hex::decode(new).unwrap());
        assert_eq!((old.len(), new.len()), (old_len, new_len));
        assert_eq!(legacy::encode(event), old);
        assert_eq!(codec::encode(event).unwrap(), new);
        assert_eq!(&codec::decode::<Event>(&old).unwrap(), event);
        assert_eq!(&codec::decode::<Event>(&new).unwrap(), event);
    }
}

/// Fixed arrays of the wrong length, or integers out of byte range, are refused in both forms.
#[test]
fn malformed_fixed_arrays_are_refused_in_either_form() {
    let d1 = "d1".repeat(32);
    for bad in [
        format!("a100a2005820{d1}014f{}", "00".repeat(15)),
        format!("a100a2005820{d1}0151{}", "00".repeat(17)),
        format!("a100a2005820{d1}018f{}", "00".repeat(15)),
        format!("a100a2005820{d1}0190{}190100", "00".repeat(15)),
    ] {
        let bytes = hex::decode(&bad).unwrap();
        assert!(codec::decode::<Event>(&bytes).is_err(), "{bad}");
    }
}

/// `CommitmentReadmitted` came after v1: variant index 6, fields `round` then `commitment`.
#[test]
fn commitment_readmitted_encoding_is_pinned() {
    let event = Event::CommitmentReadmitted {
        round: 7,
        commitment: vec![0xc0; 44],
    };
    let bytes = codec::encode(&event).expect("encode");
    let expected = format!("a106a2000701582c{}", "c0".repeat(44));
    assert_eq!(hex::encode(&bytes), expected);
    assert_eq!(codec::decode::<Event>(&bytes).expect("decode"), event);
}

/// `CommitmentImported` came after `CommitmentReadmitted`: variant index 7, fields `round`,
/// `commitment`, then `proof` (a byte string, or null when the commitment is pending).
#[test]
fn commitment_imported_encoding_is_pinned() {
    let complete = Event::CommitmentImported {
        round: 7,
        commitment: vec![0xc0; 36],
        proof: Some(vec![0x08, 0x00]),
        suffix_seq: None,
    };
    let pending = Event::CommitmentImported {
        round: 300,
        commitment: vec![0xc1; 44],
        proof: None,
        suffix_seq: None,
    };
    for (event, expected) in [
        (
            &complete,
            format!("a107a30007015824{}02420800", "c0".repeat(36)),
        ),
        (
            &pending,
            format!("a107a30019012c01582c{}02f6", "c1".repeat(44)),
        ),
    ] {
        let bytes = codec::encode(event).expect("encode");
        assert_eq!(hex::encode(&bytes), expected);
        assert_eq!(&codec::decode::<Event>(&bytes).expect("decode"), event);
    }
}

/// `CommitmentImported`'s optional fourth field `suffix_seq` (left out when `None`, so the events
/// above keep their bytes), and `ProofSuffixImported`: variant index 8, field `bytes`.
#[test]
fn imported_proof_suffix_encoding_is_pinned() {
    let head = Event::CommitmentImported {
        round: 7,
        commitment: vec![0xc0; 36],
        proof: Some(vec![0x08, 0x00]),
        suffix_seq: Some(5),
    };
    let suffix = Event::ProofSuffixImported {
        bytes: vec![0x01, 0x02],
    };
    for (event, expected) in [
        (
            &head,
            format!("a107a40007015824{}024208000305", "c0".repeat(36)),
        ),
        (&suffix, "a108a100420102".to_string()),
    ] {
        let bytes = codec::encode(event).expect("encode");
        assert_eq!(hex::encode(&bytes), expected);
        assert_eq!(&codec::decode::<Event>(&bytes).expect("decode"), event);
    }
}
