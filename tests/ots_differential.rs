//! Differential test against python-opentimestamps on malformed input
//! (tests/vectors/python-differential.json, from tests/vectors/gen_python_differential.py):
//! mutated real proofs and format-shaped random bytes. For each, we must accept exactly what
//! python accepts, re-serialize it to the same bytes and leave the same number of bytes unread.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]

use std::path::PathBuf;

use otsd::ots::ser::Reader;
use otsd::ots::Timestamp;
use serde_json::Value;

fn corpus() -> Vec<Value> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/python-differential.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_str(&text) {
        Ok(Value::Array(cases)) => cases,
        other => panic!("{}: not a JSON array: {other:?}", path.display()),
    }
}

fn hex_field(case: &Value, key: &str) -> Vec<u8> {
    hex::decode(case[key].as_str().expect("hex string")).expect("hex")
}

/// What we make of one input: the canonical re-serialization and unread byte count.
fn ours(case: &Value) -> Option<(String, u64)> {
    let input = hex_field(case, "input");
    let mut r = Reader::new(&input);
    let t = Timestamp::read(&mut r, hex_field(case, "msg")).ok()?;
    let bytes = t.to_bytes().expect("decoded trees are never empty");
    Some((hex::encode(bytes), r.remaining() as u64))
}

/// What python made of it.
fn python(case: &Value) -> Option<(String, u64)> {
    assert!(case.get("crash").is_none(), "python crashed on {case}");
    let ok = case.get("ok")?.as_str().expect("hex");
    Some((ok.to_owned(), case["rest"].as_u64().expect("rest")))
}

#[test]
fn accepts_and_reencodes_exactly_what_python_does() {
    let cases = corpus();
    let accepted = cases.iter().filter(|c| c.get("ok").is_some()).count();
    assert!(
        cases.len() >= 400 && accepted >= 50,
        "corpus too thin: {accepted}/{}",
        cases.len()
    );
    for case in &cases {
        assert_eq!(ours(case), python(case), "input {}", case["input"]);
    }
}
