//! The HTTP API of a real otsd process, byte for byte where the Python otsd defines the bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use common::{get, new_calendar, post_digest, raw, Otsd, URI};
use otsd::ots::{Attestation, Timestamp};

/// Parses an answer to `POST /digest` and returns the commitment its pending attestation is on.
fn commitment_of(digest: &[u8], answer: &[u8]) -> Vec<u8> {
    let ts = Timestamp::from_bytes(answer, digest.to_vec()).expect("answer parses as a timestamp");
    assert_eq!(
        ts.to_bytes().unwrap(),
        answer,
        "answer re-serializes identically"
    );
    let atts = ts.all_attestations();
    assert_eq!(atts.len(), 1, "exactly one attestation");
    let (msg, att) = atts[0];
    assert!(
        matches!(att, Attestation::Pending { uri } if uri == URI),
        "pending attestation with our uri: {att:?}"
    );
    assert_eq!(msg.len(), 44, "commitment is time || root || mac");
    msg.to_vec()
}

#[test]
fn digest_is_answered_and_its_commitment_is_pending() {
    let dir = new_calendar();
    let cal = dir.path().join("calendar");
    let otsd = Otsd::start(&cal, &[]);
    let digest: [u8; 32] = rand::random();
    let resp = post_digest(otsd.addr, &digest);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(resp.body[0], 0xf0, "starts with append(nonce)");
    assert_eq!(&resp.body[1..2], &[16], "a 16-byte nonce");
    let commitment = commitment_of(&digest, &resp.body);

    // The MAC verifies with the calendar's key, derived as the Python server derives it.
    let key = std::fs::read(cal.join("hmac-key")).unwrap();
    let time = u32::from_be_bytes(commitment[..4].try_into().unwrap());
    let root: [u8; 32] = commitment[4..36].try_into().unwrap();
    let mac = otsd::calendar::mac::CommitmentMac::new(&key).mac(time, &root);
    assert_eq!(&commitment[36..], &mac);

    let r = get(
        otsd.addr,
        &format!("/timestamp/{}", hex::encode(&commitment)),
        "",
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "Pending confirmation in Bitcoin blockchain")
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(r.header("content-type"), Some("text/plain"));

    let mut other = commitment.clone();
    other[43] ^= 1;
    let r = get(
        otsd.addr,
        &format!("/timestamp/{}", hex::encode(&other)),
        "",
    );
    assert_eq!((r.status, r.text().as_str()), (404, "Not found"));
    otsd.stop();
}

#[test]
fn bad_requests_get_clear_errors() {
    let dir = new_calendar();
    let otsd = Otsd::start(&dir.path().join("calendar"), &[]);
    let a = otsd.addr;

    let r = post_digest(a, &[7u8; 65]);
    assert_eq!((r.status, r.text().as_str()), (400, "digest too long"));
    let r = post_digest(a, b"");
    assert_eq!((r.status, r.text().as_str()), (400, "digest empty"));
    let r = raw(
        a,
        b"POST /digest HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "invalid Content-Length")
    );
    let r = raw(a, b"POST /digest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n0\r\n\r\n");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "invalid Content-Length")
    );
    let r = raw(
        a,
        b"POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400);

    let r = get(a, "/timestamp/zz", "");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "commitment must be hex-encoded bytes")
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=31536000"));
    let r = get(a, "/timestamp/abc", "");
    assert_eq!(r.status, 400, "odd-length hex");
    let r = get(a, &format!("/timestamp/{}", "ab".repeat(5000)), "");
    assert_eq!(r.status, 400, "absurdly long commitment");

    let r = get(a, "/no/such/path", "");
    assert_eq!((r.status, r.text().as_str()), (404, "Not found"));
    let r = get(a, "/digest", "");
    assert_eq!(
        (r.status, r.text().as_str(), r.header("cache-control")),
        (404, "Not found", Some("public, max-age=3600")),
        "GET /digest is an unknown path, as in the Python otsd"
    );
    let r = raw(
        a,
        b"DELETE /tip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 405);

    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let mut s = std::net::TcpStream::connect(a).unwrap();
    use std::io::{Read, Write};
    let _ = s.write_all(huge.as_bytes());
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let status = common::parse(&buf).map(|r| r.status);
    assert_eq!(status, Some(431), "huge headers are refused");

    // Still serving after all of that.
    assert_eq!(post_digest(a, &[1u8; 32]).status, 200);
    otsd.stop();
}

#[test]
fn tip_and_info_page() {
    let dir = new_calendar();
    let otsd = Otsd::start(&dir.path().join("calendar"), &[]);
    let r = get(otsd.addr, "/tip", "");
    assert_eq!(r.status, 404, "no tip before any digest");

    let digest = [9u8; 32];
    let answer = post_digest(otsd.addr, &digest);
    let commitment = commitment_of(&digest, &answer.body);
    // As the Python server: the tip is that of the newest unmined stamping transaction, and
    // there is none without a stamper (an empty 404).
    let r = get(otsd.addr, "/tip", "");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("cache-control"), None);
    assert!(r.body.is_empty());

    let r = get(otsd.addr, "/", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("vary"), Some("Accept"));
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = r.text();
    assert!(
        html.contains(URI) && html.contains(common::DONATION) && html.contains("<svg"),
        "{html}"
    );

    let r = get(otsd.addr, "/", "Accept: application/json\r\n");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let info: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON info");
    assert_eq!(info["uri"], URI);
    assert_eq!(info["network"], "regtest");
    assert_eq!(info["digests_total"], 1);
    assert_eq!(info["pending_commitments"], 1);
    assert_eq!(info["accepting"], true);
    assert_eq!(info["latest_round"]["commitment"], hex::encode(&commitment));
    assert_eq!(
        info["tip"],
        serde_json::Value::Null,
        "no unmined stamping transaction"
    );
    otsd.stop();
}

#[test]
fn commitments_survive_restarts() {
    let dir = new_calendar();
    let cal = dir.path().join("calendar");
    let mut commitments = Vec::new();
    for round in 0..3 {
        let otsd = Otsd::start(&cal, &[]);
        for i in 0..20u8 {
            let digest = [round, i, 0xaa];
            let r = post_digest(otsd.addr, &digest);
            assert_eq!(r.status, 200);
            commitments.push(commitment_of(&digest, &r.body));
        }
        for c in &commitments {
            let r = get(otsd.addr, &format!("/timestamp/{}", hex::encode(c)), "");
            assert_eq!(
                r.text(),
                "Pending confirmation in Bitcoin blockchain",
                "after {round} restarts"
            );
        }
        let log = otsd.stop();
        assert!(
            log.contains("log closed cleanly"),
            "clean shutdown is logged:\n{log}"
        );
    }
}

#[test]
fn a_full_queue_is_a_503_with_retry_after_not_a_hang() {
    let dir = new_calendar();
    let otsd = Otsd::start(&dir.path().join("calendar"), &["--max-queued-digests", "1"]);
    let addr = otsd.addr;
    let answers = common::in_parallel(64, 10, |w, i| post_digest(addr, &[w as u8, i as u8]));
    let refused: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
    let accepted = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(refused.len() + accepted, answers.len(), "only 200 or 503");
    assert!(
        !refused.is_empty(),
        "640 concurrent digests never filled a one-digest queue"
    );
    assert!(accepted > 0, "some digests were accepted");
    for r in refused {
        assert_eq!(r.text(), "pending queue full");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    otsd.stop();
}
