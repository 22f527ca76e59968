//! Proofs serialized by python-opentimestamps with every operation and attestation kind
//! (tests/vectors/python-ots-fixtures.json): we must decode them, find the same attestations on
//! the same messages, and re-encode them byte for byte, branches and sort order included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]

use std::path::PathBuf;

use otsd::ots::{DetachedTimestampFile, Timestamp};
use serde_json::Value;

fn fixtures() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/python-ots-fixtures.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture json")
}

fn hex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn attestation_list(t: &Timestamp) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = t
        .all_attestations()
        .into_iter()
        .map(|(msg, a)| {
            let mut bytes = Vec::new();
            a.write(&mut bytes);
            (hex::encode(msg), hex::encode(bytes))
        })
        .collect();
    list.sort();
    list
}

#[test]
fn timestamps_roundtrip_byte_for_byte() {
    let fixtures = fixtures();
    let cases = fixtures["timestamps"].as_array().expect("timestamps");
    assert!(!cases.is_empty());
    for case in cases {
        let serialized = hex(&case["serialized"]);
        let t = Timestamp::from_bytes(&serialized, hex(&case["msg"])).expect("decodes");
        assert_eq!(t.to_bytes().expect("encodes"), serialized);
        let mut want: Vec<(String, String)> = case["attestations"]
            .as_array()
            .expect("attestations")
            .iter()
            .map(|a| {
                (
                    a["msg"].as_str().expect("msg").into(),
                    a["attestation"].as_str().expect("att").into(),
                )
            })
            .collect();
        want.sort();
        assert_eq!(attestation_list(&t), want);
    }
}

#[test]
fn detached_files_roundtrip_byte_for_byte() {
    let fixtures = fixtures();
    let files = fixtures["detached_files"]
        .as_array()
        .expect("detached_files");
    assert!(!files.is_empty());
    for file in files {
        let bytes = hex(file);
        let parsed = DetachedTimestampFile::from_bytes(&bytes).expect("decodes");
        assert_eq!(parsed.to_bytes().expect("encodes"), bytes);
    }
}
