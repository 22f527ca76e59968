//! The committed format-v1 log in `tests/vectors/log-v1/` must keep reading to the same events and
//! head. Regenerate it (only when the format version changes, into a new directory!) with
//! `cargo test --test log_vectors -- --ignored generate_log_v1_vectors`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
use std::path::{Path, PathBuf};

use otsd::log::{LogKey, Reader, Writer, WriterOptions};
use serde_json::{json, Value};

/// The calendar `hmac-key` the vectors are keyed with.
const CALENDAR_HMAC_KEY: &[u8] = b"otsd log-v1 test vector hmac-key";

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/log-v1")
}

fn vector_events() -> Vec<Vec<Vec<u8>>> {
    let mut batches = vec![vec![vec![]], vec![b"hello".to_vec(), b"world".to_vec()]];
    for i in 0..12u32 {
        let batch = (0..(i % 4 + 1))
            .map(|k| vec![(i * 7 + k) as u8; (i * 37 + k * 11) as usize % 300])
            .collect();
        batches.push(batch);
    }
    batches
}

#[test]
#[ignore = "writes the committed fixture; run by hand only"]
fn generate_log_v1_vectors() {
    let root = vectors();
    let log = root.join("log");
    assert!(
        !log.exists(),
        "refusing to overwrite committed vectors in {}",
        log.display()
    );
    let key = LogKey::derive(CALENDAR_HMAC_KEY);
    let (mut w, _) = Writer::open(
        &log,
        key.clone(),
        WriterOptions {
            segment_size: 4096,
            ..WriterOptions::default()
        },
    )
    .expect("open");
    for batch in vector_events() {
        w.append_batches(&[batch]).expect("append");
    }
    let head = w.head();
    drop(w);
    std::fs::remove_file(log.join("LOCK")).expect("remove lock file");
    let events: Vec<Value> = vector_events()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(seq, ev)| json!({"seq": seq, "hex": hex::encode(ev)}))
        .collect();
    let expected = json!({
        "calendar_hmac_key_hex": hex::encode(CALENDAR_HMAC_KEY),
        "log_key_hex": hex::encode(key.as_bytes()),
        "head": {
            "next_seq": head.next_seq,
            "hash_hex": hex::encode(head.chain.hash),
            "tag_hex": hex::encode(head.chain.tag),
        },
        "events": events,
    });
    let text = serde_json::to_string_pretty(&expected).expect("json");
    std::fs::write(root.join("expected.json"), text + "\n").expect("write expected.json");
}

fn expected() -> Value {
    let text =
        std::fs::read_to_string(vectors().join("expected.json")).expect("read expected.json");
    serde_json::from_str(&text).expect("parse expected.json")
}

#[test]
fn log_v1_vectors_still_read() {
    let exp = expected();
    let key = LogKey::derive(CALENDAR_HMAC_KEY);
    assert_eq!(
        hex::encode(key.as_bytes()),
        exp["log_key_hex"],
        "key derivation changed"
    );
    let log = vectors().join("log");
    for key in [Some(key), None] {
        let mut got = Vec::new();
        let reader = Reader::open(&log, key).expect("open vectors");
        let next = reader
            .for_each_from(0, |seq, ev| {
                got.push(json!({"seq": seq, "hex": hex::encode(ev)}))
            })
            .expect("read vectors");
        assert_eq!(Value::Array(got), exp["events"]);
        assert_eq!(json!(next), exp["head"]["next_seq"]);
        let head = reader.verify().expect("verify vectors");
        assert_eq!(hex::encode(head.chain.hash), exp["head"]["hash_hex"]);
        assert_eq!(hex::encode(head.chain.tag), exp["head"]["tag_hex"]);
    }
    let segments = std::fs::read_dir(&log).expect("ls").count();
    assert!(segments >= 2, "the vectors include a sealed segment");
}

#[test]
fn log_v1_segment_header_layout_is_pinned() {
    let first = std::fs::read(vectors().join("log/00000000000000000000.seg")).expect("read");
    // magic "OTSDLOG\0", version 1, header length 96, reserved 0, first_seq 0.
    assert_eq!(
        hex::encode(&first[..24]),
        "4f5453444c4f470001006000000000000000000000000000"
    );
}

#[test]
fn log_v1_vectors_accept_new_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(vectors().join("log")).expect("ls") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    let key = LogKey::derive(CALENDAR_HMAC_KEY);
    let (mut w, rec) = Writer::open(
        dir.path(),
        key.clone(),
        WriterOptions {
            segment_size: 4096,
            ..WriterOptions::default()
        },
    )
    .expect("open");
    assert_eq!(rec.truncated_bytes, 0);
    let next = expected()["head"]["next_seq"].as_u64().expect("next_seq");
    assert_eq!(
        w.append_batches(&[vec![b"more".to_vec()]]).expect("append")[0].first,
        next
    );
    drop(w);
    let n = Reader::open(dir.path(), Some(key))
        .expect("reader")
        .for_each_from(0, |_, _| {})
        .expect("read");
    assert_eq!(n, next + 1);
}
