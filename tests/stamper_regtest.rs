//! The stamper against a real `bitcoind -regtest` (needs `$BITCOIND`; see tests/common/bitcoind.rs).
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoincore_rpc::RpcApi;
use common::bitcoind::{miner_address, Bitcoind};
use common::{commitment_of, free_port, get, post_digest, run, Otsd};

#[test]
fn node_starts_and_mines() {
    let node = Bitcoind::start();
    assert_eq!(node.height(), 0);
    let hashes = node.mine(101);
    assert_eq!(hashes.len(), 101);
    assert_eq!(node.height(), 101);
    assert_eq!(node.client.get_best_block_hash().unwrap(), hashes[100]);
    // The first coinbase is mature and spendable by the miner key.
    let scan: serde_json::Value = node.rpc(
        "scantxoutset",
        &[
            "start".into(),
            serde_json::json!([format!("addr({})", miner_address())]),
        ],
    );
    assert_eq!(scan["success"], true, "{scan}");
    assert_eq!(
        scan["unspents"].as_array().map(Vec::len),
        Some(101),
        "{scan}"
    );
    let port = node.rpc_port;
    drop(node);
    // Drop stopped the node: nothing listens on its RPC port any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// A calendar served on a free port whose stamper talks to `node`; the stamper key is funded with
/// one mature coinbase.
fn funded_calendar(node: &Bitcoind, extra: &[&str]) -> (tempfile::TempDir, Otsd) {
    let port = free_port();
    let uri = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("tempdir");
    let cal = dir.path().join("calendar");
    let cal_s = cal.to_str().unwrap();
    let (ok, out) = run(Command::new(env!("CARGO_BIN_EXE_otsctl")).args([
        "init",
        cal_s,
        "--uri",
        &uri,
        "--donation-addr",
        common::DONATION,
    ]));
    assert!(ok, "otsctl init: {out}");
    let (ok, out) =
        run(Command::new(env!("CARGO_BIN_EXE_otsctl")).args(["address", cal_s, "--btc-regtest"]));
    assert!(ok, "otsctl address: {out}");
    let addr: bitcoin::Address = out
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse::<bitcoin::Address<_>>()
        .expect("an address")
        .require_network(bitcoin::Network::Regtest)
        .expect("a regtest address");
    node.mine_to(1, &addr);
    node.mine(100);
    let mut args = vec![
        "--rpc-port".to_owned(),
        port.to_string(),
        "--btc-rpc".to_owned(),
        node.url_with_auth(),
        "--btc-poll-interval-ms".to_owned(),
        "100".to_owned(),
        "--btc-min-tx-interval".to_owned(),
        "0".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let otsd = Otsd::start(&cal, &args);
    (dir, otsd)
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `secs` seconds.
fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mempool(node: &Bitcoind) -> Vec<bitcoin::Txid> {
    node.client.get_raw_mempool().expect("getrawmempool")
}

#[test]
fn stamps_a_commitment_and_serves_the_complete_proof() {
    let node = Bitcoind::start();
    let (_dir, otsd) = funded_calendar(&node, &[]);
    let digest = [0x5a; 32];
    let answer = post_digest(otsd.addr, &digest);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let commitment = commitment_of(&digest, &answer.body);
    let path = format!("/timestamp/{}", hex::encode(&commitment));

    let txid = wait_for("the stamping tx in the mempool", 30, || {
        mempool(&node).first().copied()
    });
    let r = get(otsd.addr, &path, "");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "Pending confirmation in Bitcoin blockchain");

    let block = node.mine(1)[0];
    wait_for("the confirmation to be seen", 30, || {
        let r = get(otsd.addr, &path, "");
        (r.text() == format!("Timestamped by transaction {txid}; waiting for 5 confirmations"))
            .then_some(())
    });
    node.mine(5);
    let proof = wait_for("the complete proof", 30, || {
        let r = get(otsd.addr, &path, "");
        (r.status == 200).then_some(r.body)
    });
    let ts = otsd::ots::Timestamp::from_bytes(&proof, commitment).expect("proof parses");
    let atts = ts.all_attestations();
    assert_eq!(atts.len(), 1);
    let header = node.client.get_block_header_info(&block).unwrap();
    assert_eq!(
        atts[0].1,
        &otsd::ots::attestation::Attestation::Bitcoin {
            height: header.height as u64
        }
    );
    let mut root = header.merkle_root.to_byte_array();
    assert_eq!(
        atts[0].0,
        &root[..],
        "proof ends at the block's merkle root"
    );
    root.reverse();
    let info = get(otsd.addr, "/", "Accept: application/json\r\n");
    let info: serde_json::Value = serde_json::from_slice(&info.body).expect("info JSON");
    assert!(
        info["bitcoin"]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("bcrt1q")),
        "{info}"
    );
    assert_eq!(info["bitcoin"]["error"], serde_json::Value::Null, "{info}");
    otsd.stop();
}

#[test]
fn ots_client_upgrades_and_verifies_against_the_node() {
    let ots = common::required_env("OTS_BIN");
    let node = Bitcoind::start();
    let (dir, otsd) = funded_calendar(&node, &[]);
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, b"Hello, Bitcoin!\n").unwrap();
    let home = dir.path().join("home");
    let ots_cmd = |args: &[&str]| {
        let mut c = Command::new(&ots);
        c.env("HOME", &home).args(args);
        c
    };
    let url = otsd.url();
    let (ok, out) = run(&mut ots_cmd(&[
        "stamp",
        "-c",
        &url,
        "-m",
        "1",
        file.to_str().unwrap(),
    ]));
    assert!(ok, "ots stamp: {out}");
    let proof = dir.path().join("hello.txt.ots");
    wait_for("the stamping tx", 30, || mempool(&node).first().copied());
    node.mine(6);
    let proof_s = proof.to_str().unwrap();
    wait_for("ots upgrade to complete the proof", 60, || {
        let (ok, out) = run(&mut ots_cmd(&[
            "--btc-regtest",
            "-l",
            &url,
            "upgrade",
            proof_s,
        ]));
        (ok && out.contains("Success")).then_some(())
    });
    let (ok, out) = run(&mut ots_cmd(&[
        "--btc-regtest",
        "--bitcoin-node",
        &node.url_with_auth(),
        "verify",
        proof_s,
    ]));
    assert!(ok, "ots verify: {out}");
    assert!(out.contains("Success! Bitcoin block"), "{out}");
    otsd.stop();
}
