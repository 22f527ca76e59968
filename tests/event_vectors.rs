//! Events encoded before a variant was added must keep decoding to the same events: the codec is
//! packed (variants and fields by index), so new variants go at the end of `enum Event` only.
//! `tests/vectors/events-v1.json` holds one event of each variant as encoded by the first version
//! (written with `cargo test --test event_vectors -- --ignored generate_events_v1_vectors`, never
//! regenerated; a new variant gets its own pinned test below).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
use std::path::{Path, PathBuf};

use otsd::events::codec;
use otsd::events::Event;
use serde_json::{json, Value};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/events-v1.json")
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
        .map(|e| json!({"debug": format!("{e:?}"), "hex": hex::encode(codec::encode(e).expect("encode"))}))
        .collect();
    let text = serde_json::to_string_pretty(&json!({ "events": events })).expect("json");
    std::fs::write(&path, text + "\n").expect("write");
}

#[test]
fn events_v1_still_decode_and_encode_the_same() {
    let text = std::fs::read_to_string(vectors()).expect("read events-v1.json");
    let doc: Value = serde_json::from_str(&text).expect("parse events-v1.json");
    let fixed = doc["events"].as_array().expect("events");
    let events = v1_events();
    assert_eq!(fixed.len(), events.len());
    for (v, event) in fixed.iter().zip(&events) {
        let bytes = hex::decode(v["hex"].as_str().expect("hex")).expect("hex");
        let decoded: Event = codec::decode(&bytes).expect("a v1 event decodes");
        assert_eq!(&decoded, event);
        assert_eq!(codec::encode(event).expect("encode"), bytes, "{event:?}");
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
