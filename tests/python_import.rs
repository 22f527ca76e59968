//! `otsctl import-otsd` against a calendar made by the real Python otsd (v0.7.1, run from
//! `../shared/peers/opentimestamps-server` with `../shared/tools/wallet-shim.py` over a real regtest
//! node): confirmed rounds in two stamping transactions (the second after a restart), legacy 36-byte
//! journal records appended as the Python conversion tool wrote them (one stamped by Python, one
//! left pending), and pending commitments including one a real `ots stamp` client holds.
//!
//! After the import, otsd must answer every `GET /timestamp` exactly as the Python server did
//! (status, Content-Type, Cache-Control, body), `otsctl verify` (also against the node) must pass,
//! and once otsd's stamper has anchored the pending commitments, the client's original `.ots`
//! file must upgrade (`ots upgrade`) and verify (`ots verify`) against the node.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::path::Path;
use std::time::Duration;

use common::bitcoind::Bitcoind;
use common::pypeer::{wait_complete, PythonOtsd, WalletShim};
use common::{free_port, get, otsctl, post_digest, wait_for, OtsClient, Otsd, Response};

/// What a comparison looks at.
fn summary(r: &Response) -> (u16, Option<String>, Option<String>, Vec<u8>) {
    (
        r.status,
        r.header("Content-Type").map(str::to_owned),
        r.header("Cache-Control").map(str::to_owned),
        r.body.clone(),
    )
}

/// Posts each digest in its own aggregation round (the Python server seals one per second).
fn post_rounds(py: &PythonOtsd, digests: &[&[u8]]) -> Vec<Vec<u8>> {
    digests
        .iter()
        .map(|d| {
            let r = post_digest(py.addr(), d);
            assert_eq!(
                r.status,
                200,
                "POST /digest to the Python otsd: {}",
                r.text()
            );
            std::thread::sleep(Duration::from_millis(1100));
            common::commitment_of(d, &r.body)
        })
        .collect()
}

/// The request paths to compare: every journal record (legacy ones also in their padded form,
/// which Python does not find), one complete record in upper case, and bad input.
fn probe_paths(py: &PythonOtsd) -> Vec<String> {
    let mut paths = Vec::new();
    for record in py.journal() {
        let legacy = record[36..].iter().all(|&b| b == 0);
        let key = if legacy { &record[..36] } else { &record[..] };
        paths.push(format!("/timestamp/{}", hex::encode(key)));
        if legacy {
            paths.push(format!("/timestamp/{}", hex::encode(record)));
        }
    }
    let first = py.journal()[0];
    paths.push(format!("/timestamp/{}", hex::encode_upper(first)));
    paths.push(format!("/timestamp/{}", hex::encode([0x77u8; 44])));
    paths.push("/timestamp/abc".into());
    paths.push("/timestamp/zz".into());
    paths.push(format!("/timestamp/{}?x=1", hex::encode(first)));
    paths.push("/timestamp/".into());
    paths.push("/no/such/path".into());
    paths.push("/digest".into());
    // Fewer than 1000 records: chunk 0 is not complete, as is any chunk past the end.
    paths.push("/experimental/backup/0".into());
    paths.push("/experimental/backup/x".into());
    paths
}

/// The stamping transaction in the node's mempool whose OP_RETURN carries `tip`, if any.
fn mempool_has_tip(node: &Bitcoind, tip: &[u8]) -> bool {
    let txids: Vec<String> = node.rpc("getrawmempool", &[]);
    let op_return = format!("6a20{}", hex::encode(tip));
    txids.iter().any(|t| {
        let raw: String = node.rpc("getrawtransaction", &[serde_json::json!(t)]);
        raw.contains(&op_return)
    })
}

/// `GET /tip` until it answers 200 (a stamping transaction is in flight).
fn tip_in_flight(addr: std::net::SocketAddr, who: &str) -> Response {
    wait_for(
        &format!("{who}'s stamping transaction (GET /tip)"),
        120,
        || {
            let r = get(addr, "/tip", "");
            (r.status == 200).then_some(r)
        },
    )
}

/// Raw requests beyond `GET /timestamp`: bad digests and unknown paths, as the differential.
fn raw_requests() -> Vec<Vec<u8>> {
    let post = |path: &str, body: &[u8]| {
        let mut r = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    vec![
        post("/digest", &[7u8; 65]),
        post("/no/such/path", b"x"),
        // No Content-Length. (A non-numeric one makes the Python request die without an
        // answer, where otsd answers 400: not compared.)
        b"POST /digest HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
    ]
}

fn import(py: &PythonOtsd, cal: &Path) -> serde_json::Value {
    let (ok, out, err) = otsctl(&[
        "import-otsd",
        py.calendar.to_str().unwrap(),
        cal.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "import-otsd failed:\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn imported_python_calendar_answers_as_python_and_completes_pending_proofs() {
    let node = Bitcoind::start();
    let dir = tempfile::tempdir().unwrap();
    let shim = WalletShim::start(&node, dir.path());
    let otsd_port = free_port();
    let uri = format!("http://127.0.0.1:{otsd_port}");
    let mut py = PythonOtsd::create(dir.path(), &uri, &shim);

    // First stamping transaction: three rounds.
    py.start();
    let python_no_tip = summary(&py.get("/tip"));
    assert_eq!(python_no_tip.0, 404, "nothing in flight yet");
    let a = post_rounds(&py, &[b"round a0", b"round a1", b"round a2"]);
    // Its tip, while the transaction waits in the mempool (nothing mines before wait_complete).
    let python_tip = tip_in_flight(py.addr(), "the Python otsd");
    assert!(
        mempool_has_tip(&node, &python_tip.body),
        "Python's tip is its OP_RETURN"
    );
    for c in &a {
        wait_complete(&py, &node, c, 180);
    }
    // A legacy record, stamped by Python after its restart with the next rounds.
    py.stop();
    let legacy_done = py.append_legacy_record(1_400_000_000, [0x1e; 32]);
    py.start();
    let b = post_rounds(&py, &[b"round b0", b"round b1"]);
    for c in b.iter().chain([&legacy_done]) {
        wait_complete(&py, &node, c, 180);
    }
    // Pending: two rounds, and a real client's file; no block is mined from here on.
    let c = post_rounds(&py, &[b"round c0", b"round c1"]);
    let ots = OtsClient::new(&dir.path().join("client-home"));
    let client_file = ots.stamp(
        &py.url(),
        dir.path(),
        "pending.txt",
        b"stamped on the Python calendar\n",
    );
    // A pending legacy record, then the Python server again to take its answers.
    py.stop();
    let legacy_pending = py.append_legacy_record(1_400_000_001, [0x2e; 32]);
    py.start();
    let paths = probe_paths(&py);
    let python: Vec<_> = paths.iter().map(|p| summary(&py.get(p))).collect();
    let python_raw: Vec<_> = raw_requests()
        .iter()
        .map(|r| summary(&common::raw(py.addr(), r)))
        .collect();
    py.stop();
    assert_eq!(
        python.iter().filter(|r| r.0 == 200).count(),
        a.len() + b.len() + 2,
        "{paths:?}"
    );

    let cal = dir.path().join("otsd-calendar");
    let report = import(&py, &cal);
    let records = py.journal().len() as u64;
    assert_eq!(report["commitments"], records, "{report}");
    assert_eq!(
        report["complete"],
        (a.len() + b.len() + 1) as u64,
        "{report}"
    );
    assert_eq!(report["pending"], (c.len() + 2) as u64, "{report}");
    assert_eq!(report["legacy"], 2, "{report}");
    assert_eq!(report["bad_macs"], 0, "{report}");
    assert_eq!(report["torn_tail_records"], 0, "{report}");
    assert_eq!(report["unreached_rows"], 0, "{report}");
    assert!(report["db_rows"].as_u64().unwrap() > 20, "{report}");
    // Running it again into an existing calendar is refused.
    let (ok, _, err) = otsctl(&[
        "import-otsd",
        py.calendar.to_str().unwrap(),
        cal.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("already exists"), "{err}");

    // Same answers as the Python server, byte for byte.
    let port = otsd_port.to_string();
    let otsd = Otsd::start(&cal, &["--rpc-port", &port]);
    assert_eq!(
        summary(&get(otsd.addr, "/tip", "")),
        python_no_tip,
        "GET /tip with nothing in flight"
    );
    for (path, expected) in paths.iter().zip(&python) {
        let ours = summary(&get(otsd.addr, path, ""));
        assert_eq!(&ours, expected, "GET {path}");
    }
    for (request, expected) in raw_requests().iter().zip(&python_raw) {
        let ours = summary(&common::raw(otsd.addr, request));
        assert_eq!(&ours, expected, "{}", String::from_utf8_lossy(request));
    }
    otsd.stop();
    let (ok, v) = common::verify_json(&cal, &[]);
    assert!(ok, "otsctl verify: {v}");
    assert_eq!(v["imported"], records, "{v}");
    assert_eq!(
        v["imported_complete"],
        (a.len() + b.len() + 1) as u64,
        "{v}"
    );
    let (ok, v) = common::verify_json(&cal, &["--btc-rpc", &node.url_with_auth()]);
    assert!(ok, "otsctl verify --btc-rpc: {v}");
    assert!(
        v["node_imported_roots_checked"].as_u64().unwrap() >= 2,
        "two blocks: {v}"
    );

    // otsd stamps the pending ones; the client's original file then upgrades and verifies.
    common::fund_stamper(&node, &cal);
    let mut args = node.stamper_args();
    args.extend(["--rpc-port".into(), port.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let otsd = Otsd::start(&cal, &args);
    let our_tip = tip_in_flight(otsd.addr, "otsd");
    let head = |r: &Response| {
        let (status, ctype, cache, _) = summary(r);
        (status, ctype, cache)
    };
    assert_eq!(
        head(&our_tip),
        head(&python_tip),
        "GET /tip in flight: status and headers as Python's"
    );
    assert_eq!(our_tip.body.len(), 32);
    assert!(
        mempool_has_tip(&node, &our_tip.body),
        "otsd's tip is its OP_RETURN"
    );
    let complete = |commitment: &[u8]| {
        let r = get(
            otsd.addr,
            &format!("/timestamp/{}", hex::encode(commitment)),
            "",
        );
        (r.status == 200).then_some(r.body)
    };
    wait_for(
        "otsd's stamping transaction and its confirmations",
        120,
        || {
            node.mine(1);
            complete(&c[1]).and(complete(&legacy_pending))
        },
    );
    let proof = complete(&legacy_pending).unwrap();
    let ts =
        otsd::ots::Timestamp::from_bytes(&proof, legacy_pending.clone()).expect("legacy proof");
    assert!(matches!(
        ts.all_attestations()[..],
        [(_, otsd::ots::Attestation::Bitcoin { .. })]
    ));
    let file = client_file.to_str().unwrap();
    let (ok, out) = ots.run(&["--btc-regtest", "-l", &uri, "upgrade", file]);
    assert!(ok && out.contains("Success"), "ots upgrade: {out}");
    let (ok, out) = ots.verify_regtest(&node.url_with_auth(), file);
    assert!(
        ok && out.contains("Success! Bitcoin block"),
        "ots verify: {out}"
    );
    // Imported proofs are still Python's bytes.
    for (path, expected) in paths.iter().zip(&python).filter(|(_, r)| r.0 == 200) {
        assert_eq!(
            &summary(&get(otsd.addr, path, "")),
            expected,
            "GET {path} after stamping"
        );
    }
    let served: Vec<_> = paths
        .iter()
        .map(|p| summary(&get(otsd.addr, p, "")))
        .collect();
    otsd.stop();
    let (ok, v) = common::verify_json(&cal, &["--btc-rpc", &node.url_with_auth()]);
    assert!(ok, "otsctl verify after stamping: {v}");
    // otsctl replay rebuilds the projection from the log alone: the same answers after it.
    let (ok, out, err) = otsctl(&["replay", cal.to_str().unwrap()]);
    assert!(ok, "otsctl replay: {out}{err}");
    let otsd = Otsd::start(&cal, &["--rpc-port", &port]);
    for (path, expected) in paths.iter().zip(&served) {
        assert_eq!(
            &summary(&get(otsd.addr, path, "")),
            expected,
            "GET {path} after replay"
        );
    }
    otsd.stop();
}
