//! The Python calendar's own output (tests/vectors/python-otsd.json, a copy of
//! shared/vectors/python-otsd.json): journal commitments and `POST /digest` answers.
//!
//! Every commitment's MAC must verify under the calendar's key, and every answer must decode,
//! re-encode to the same bytes, lead from the digest to a commitment whose MAC verifies, and be
//! exactly what our linear writer produces for the same nonce, time, MAC and URI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]

use std::path::PathBuf;

use otsd::calendar::commitment::{split_commitment, COMMITMENT_LEN};
use otsd::calendar::mac::CommitmentMac;
use otsd::ots::answer::{nonce_leaf, write_answer, RoundTail, NONCE_LEN};
use otsd::ots::path::serialize_path;
use otsd::ots::{Attestation, MerkleTree, Op, Timestamp};
use serde_json::Value;

fn vector_files() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let copy = root.join("tests/vectors/python-otsd.json");
    let shared = root.join("../shared/vectors/python-otsd.json");
    let mut files = vec![copy];
    if shared.exists() {
        files.push(shared);
    }
    files
}

fn load(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hex_field(v: &Value, key: &str) -> Vec<u8> {
    let s = v[key].as_str().unwrap_or_else(|| panic!("missing {key}"));
    hex::decode(s).unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn commitment(bytes: &[u8]) -> [u8; COMMITMENT_LEN] {
    bytes
        .try_into()
        .unwrap_or_else(|_| panic!("commitment of {} bytes", bytes.len()))
}

/// The operations of a proof that must be a single chain, and the node at its end.
fn linear_chain(t: &Timestamp) -> (Vec<Op>, &Timestamp) {
    let mut ops = Vec::new();
    let mut node = t;
    while let Some((op, child)) = node.ops.iter().next() {
        assert_eq!(node.ops.len(), 1, "answer must be linear");
        assert!(node.attestations.is_empty(), "attestation before the end");
        ops.push(op.clone());
        node = child;
    }
    (ops, node)
}

#[test]
fn journal_commitments_verify() {
    for path in vector_files() {
        let v = load(&path);
        let mut mac = CommitmentMac::new(&hex_field(&v, "hmac_key"));
        let commitments = v["commitments"].as_array().expect("commitments");
        assert!(!commitments.is_empty());
        for c in commitments {
            let bytes = hex::decode(c.as_str().expect("hex")).expect("hex");
            let c = commitment(&bytes);
            assert!(mac.verify(&c), "{}: {}", path.display(), hex::encode(c));
            let (time, root, _) = split_commitment(&c);
            assert_eq!(mac.commitment(time, &root), c);
        }
        let mut other = CommitmentMac::new(&[0; 32]);
        let first = hex::decode(commitments[0].as_str().expect("hex")).expect("hex");
        assert!(
            !other.verify(&commitment(&first)),
            "a wrong key must not verify"
        );
    }
}

#[test]
fn answers_roundtrip_and_lead_to_verified_commitments() {
    for path in vector_files() {
        let v = load(&path);
        let uri = v["uri"].as_str().expect("uri");
        let mut mac = CommitmentMac::new(&hex_field(&v, "hmac_key"));
        let answers = v["answers"].as_array().expect("answers");
        assert!(!answers.is_empty());
        for answer in answers {
            assert_eq!(answer["status"], 200);
            check_answer(answer, uri, &mut mac);
        }
    }
}

fn check_answer(answer: &Value, uri: &str, mac: &mut CommitmentMac) {
    let digest = hex_field(answer, "digest");
    let response = hex_field(answer, "response");
    let proof = Timestamp::from_bytes(&response, digest.clone()).expect("python answer decodes");
    assert_eq!(
        proof.to_bytes().expect("encodes"),
        response,
        "re-encoding differs"
    );

    let attestations = proof.all_attestations();
    assert_eq!(attestations.len(), 1);
    let (msg, attestation) = attestations[0];
    assert_eq!(attestation, &Attestation::pending(uri).expect("valid uri"));
    let c = commitment(msg);
    assert!(mac.verify(&c), "answer commitment MAC");

    let (ops, _) = linear_chain(&proof);
    let [Op::Append(nonce), Op::Sha256, Op::Prepend(time_arg), Op::Append(tag)] = ops.as_slice()
    else {
        panic!("unexpected answer shape {ops:?}");
    };
    let nonce: [u8; NONCE_LEN] = nonce.as_slice().try_into().expect("16-byte nonce");
    let (time, root, mac_bytes) = split_commitment(&c);
    assert_eq!(&time.to_be_bytes()[..], time_arg.as_slice());
    assert_eq!(tag.as_slice(), mac_bytes);
    assert_eq!(
        nonce_leaf(&digest, &nonce),
        root,
        "single-digest round root"
    );

    let mut ours = Vec::new();
    serialize_path(&ops, attestation, &mut ours);
    assert_eq!(ours, response, "serialize_path");

    let tree = MerkleTree::new(vec![root]).expect("one leaf");
    let tail = RoundTail::new(time, &mac.mac(time, &root), attestation);
    let mut answer_bytes = Vec::new();
    write_answer(
        &mut answer_bytes,
        &nonce,
        tree.path(0).expect("leaf 0"),
        &tail,
    );
    assert_eq!(answer_bytes, response, "write_answer");
}
