//! The stamper against a real `bitcoind -regtest` (needs `$BITCOIND`; see tests/common/bitcoind.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::process::Command;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoincore_rpc::RpcApi;
use common::bitcoind::{address_for, miner_address, Bitcoind};
use common::{commitment_of, free_port, get, post_digest, stamper_address, wait_for, Otsd};

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
    let (dir, otsd, _) = funded_calendar_args(node, extra);
    (dir, otsd)
}

/// As [`funded_calendar`], also returning otsd's arguments to restart it with.
fn funded_calendar_args(node: &Bitcoind, extra: &[&str]) -> (tempfile::TempDir, Otsd, Vec<String>) {
    let (dir, otsd, args, _) = calendar_on(node, true, extra);
    (dir, otsd, args)
}

/// A calendar on `node`, its stamper key funded with one mature coinbase if `fund`; also returns
/// otsd's arguments and the key's address.
fn calendar_on(
    node: &Bitcoind,
    fund: bool,
    extra: &[&str],
) -> (tempfile::TempDir, Otsd, Vec<String>, bitcoin::Address) {
    let port = free_port();
    let dir = common::calendar_with_uri(&format!("http://127.0.0.1:{port}"));
    let cal = dir.path().join("calendar");
    let addr = stamper_address(&cal);
    if fund {
        node.mine_to(1, &addr);
        node.mine(100);
    }
    let mut args = vec!["--rpc-port".to_owned(), port.to_string()];
    args.extend(node.stamper_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let otsd = start_otsd(&cal, &args);
    (dir, otsd, args, addr)
}

fn start_otsd(cal: &std::path::Path, args: &[String]) -> Otsd {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Otsd::start(cal, &args)
}

/// Submits a digest and returns the path of its commitment's `/timestamp`.
fn submit(otsd: &Otsd, digest: &[u8]) -> (Vec<u8>, String) {
    let answer = post_digest(otsd.addr, digest);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let commitment = commitment_of(digest, &answer.body);
    let path = format!("/timestamp/{}", hex::encode(&commitment));
    (commitment, path)
}

/// Waits for the complete proof of `commitment` and checks that it ends, with a Bitcoin
/// attestation, at the Merkle root of the best chain's block at that height; returns the height.
fn assert_complete_proof(node: &Bitcoind, otsd: &Otsd, commitment: &[u8], path: &str) -> u64 {
    let proof = wait_for("the complete proof", 60, || {
        let r = get(otsd.addr, path, "");
        (r.status == 200).then_some(r.body)
    });
    let ts = otsd::ots::Timestamp::from_bytes(&proof, commitment.to_vec()).expect("proof parses");
    let atts = ts.all_attestations();
    assert_eq!(atts.len(), 1);
    let otsd::ots::attestation::Attestation::Bitcoin { height } = atts[0].1 else {
        panic!("not a Bitcoin attestation: {:?}", atts[0].1);
    };
    let hash = node.client.get_block_hash(*height).unwrap();
    let header = node.client.get_block_header_info(&hash).unwrap();
    assert_eq!(atts[0].0, &header.merkle_root.to_byte_array()[..]);
    *height
}

fn pending_commitments(otsd: &Otsd) -> u64 {
    let info = get(otsd.addr, "/", "Accept: application/json\r\n");
    let info: serde_json::Value = serde_json::from_slice(&info.body).expect("info JSON");
    info["pending_commitments"]
        .as_u64()
        .expect("pending_commitments")
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
    // Broadcast, not mined: the commitment is still pending, and the tip is the transaction's
    // OP_RETURN payload (as the Python server's `GET /tip`).
    assert_eq!(pending_commitments(&otsd), 1);
    let tx = node
        .client
        .get_raw_transaction(&txid, None)
        .expect("the stamping tx");
    let op_return = tx
        .output
        .iter()
        .find_map(|o| o.script_pubkey.as_bytes().strip_prefix(&[0x6a, 0x20][..]))
        .expect("an OP_RETURN output");
    // The broadcast is recorded just after `sendrawtransaction` returns.
    let tip = wait_for("the tip of the broadcast", 30, || {
        let r = get(otsd.addr, "/tip", "");
        (r.status == 200).then_some(r)
    });
    assert_eq!(tip.body.as_slice(), op_return);
    assert_eq!(tip.header("cache-control"), Some("public, max-age=10"));

    let block = node.mine(1)[0];
    wait_for("the confirmation to be seen", 30, || {
        let r = get(otsd.addr, &path, "");
        (r.text() == format!("Timestamped by transaction {txid}; waiting for 6 confirmations"))
            .then_some(())
    });
    // Mined: no longer pending, as in the Python stamper.
    assert_eq!(pending_commitments(&otsd), 0);
    assert_eq!(get(otsd.addr, "/tip", "").status, 404);
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
    let node = Bitcoind::start();
    let (dir, otsd) = funded_calendar(&node, &[]);
    let ots = common::OtsClient::new(&dir.path().join("home"));
    let url = otsd.url();
    let proof = ots.stamp(&url, dir.path(), "hello.txt", b"Hello, Bitcoin!\n");
    wait_for("the stamping tx", 30, || mempool(&node).first().copied());
    node.mine(6);
    let proof_s = proof.to_str().unwrap();
    wait_for("ots upgrade to complete the proof", 60, || {
        let (ok, out) = ots.run(&["--btc-regtest", "-l", &url, "upgrade", proof_s]);
        (ok && out.contains("Success")).then_some(())
    });
    let node_url = node.url_with_auth();
    let (ok, out) = ots.verify_regtest(&node_url, proof_s);
    assert!(ok, "ots verify: {out}");
    assert!(out.contains("Success! Bitcoin block"), "{out}");
    otsd.stop();
}

#[test]
fn fee_bump_replaces_and_proofs_point_to_the_mined_tx() {
    let node = Bitcoind::start();
    let (_dir, otsd) = funded_calendar(&node, &[]);
    let (ca, pa) = submit(&otsd, &[1; 32]);
    let first = wait_for("the first tx", 30, || mempool(&node).first().copied());
    let (cb, pb) = submit(&otsd, &[2; 32]);
    // A block without our transaction: the stamper bumps it, covering the new round too.
    let _: serde_json::Value = node.rpc(
        "generateblock",
        &[miner_address().to_string().into(), serde_json::json!([])],
    );
    let second = wait_for("the replacement", 30, || {
        let m = mempool(&node);
        (m.len() == 1 && m[0] != first).then(|| m[0])
    });
    let entry: serde_json::Value = node.rpc("getmempoolentry", &[second.to_string().into()]);
    assert!(entry["fees"]["base"].as_f64().unwrap() > 0.0, "{entry}");
    node.mine(1);
    wait_for("the replacement mined", 30, || {
        let r = get(otsd.addr, &pb, "");
        r.text().contains(&second.to_string()).then_some(())
    });
    assert!(get(otsd.addr, &pa, "").text().contains(&second.to_string()));
    node.mine(5);
    let ha = assert_complete_proof(&node, &otsd, &ca, &pa);
    let hb = assert_complete_proof(&node, &otsd, &cb, &pb);
    assert_eq!(ha, hb);
    otsd.stop();
}

#[test]
fn reorg_before_final_still_ends_in_valid_proofs() {
    let node = Bitcoind::start();
    let (_dir, otsd) = funded_calendar(&node, &[]);
    let (c, p) = submit(&otsd, &[3; 32]);
    let txid = wait_for("the tx", 30, || mempool(&node).first().copied());
    let mined = node.mine(2);
    wait_for("the confirmation", 30, || {
        get(otsd.addr, &p, "")
            .text()
            .contains(&txid.to_string())
            .then_some(())
    });
    // Undo both blocks: the transaction goes back to the mempool, the round back to pending.
    node.client.invalidate_block(&mined[0]).unwrap();
    wait_for("the round back to pending", 30, || {
        (get(otsd.addr, &p, "").text() == "Pending confirmation in Bitcoin blockchain")
            .then_some(())
    });
    node.mine_to(6, &address_for(7));
    let h = assert_complete_proof(&node, &otsd, &c, &p);
    // The proof points into the new chain, not the invalidated blocks.
    let at = node.client.get_block_hash(h).unwrap();
    assert!(
        !mined.contains(&at),
        "proof points into an invalidated block"
    );
    otsd.stop();
}

/// Found by the fault matrix's reorg row: when the stamper sees the reorg and the competing chain
/// that mines its transaction again in one poll, it must find the transaction there. Before, it
/// only searched the new blocks for transactions that were unconfirmed before the reorg, so the
/// round stayed pending for good while the stamper re-sent a transaction already mined
/// (`bad-txns-inputs-missingorspent`). otsd is paused (SIGSTOP) during the reorg, so that the
/// stamper sees it all at once.
#[test]
fn a_reorg_that_mines_the_transaction_again_in_one_poll_is_followed() {
    let node = Bitcoind::start();
    let (_dir, otsd) = funded_calendar(&node, &[]);
    let (c, p) = submit(&otsd, &[12; 32]);
    let txid = wait_for("the tx", 30, || mempool(&node).first().copied());
    let mined = node.mine(2);
    wait_for("the confirmation", 30, || {
        get(otsd.addr, &p, "")
            .text()
            .contains(&txid.to_string())
            .then_some(())
    });
    let pid = otsd.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    node.client.invalidate_block(&mined[0]).unwrap();
    let other = address_for(9).to_string();
    let _: serde_json::Value = node.rpc("generateblock", &[other.into(), serde_json::json!([])]);
    let again = node.mine_to(6, &address_for(9));
    let block: serde_json::Value = node.rpc("getblock", &[again[0].to_string().into()]);
    assert!(
        block["tx"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == &txid.to_string()),
        "the competing chain mines the transaction again: {block}"
    );
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    let h = assert_complete_proof(&node, &otsd, &c, &p);
    assert_eq!(node.client.get_block_hash(h).unwrap(), again[0]);
    otsd.stop();
}

#[test]
fn restart_mid_cycle_still_ends_in_valid_proofs() {
    let node = Bitcoind::start();
    let (dir, otsd, args) = funded_calendar_args(&node, &[]);
    let (c, p) = submit(&otsd, &[4; 32]);
    wait_for("the tx", 30, || mempool(&node).first().copied());
    otsd.kill();
    node.mine(6);
    let otsd = start_otsd(&dir.path().join("calendar"), &args);
    assert_complete_proof(&node, &otsd, &c, &p);
    otsd.stop();
}

#[test]
fn without_coins_it_reports_keeps_serving_and_stamps_once_funded() {
    let node = Bitcoind::start();
    node.mine(101);
    let (_dir, otsd, _, addr) = calendar_on(&node, false, &[]);
    let (c, p) = submit(&otsd, &[5; 32]);
    let status = wait_for("the stamper to report missing coins", 30, || {
        let info = get(otsd.addr, "/", "Accept: application/json\r\n");
        let info: serde_json::Value = serde_json::from_slice(&info.body).ok()?;
        let err = info["bitcoin"]["error"].as_str()?.to_owned();
        err.contains("no spendable coins").then_some(err)
    });
    assert!(status.contains(&addr.to_string()), "{status}");
    // Intake is unaffected.
    submit(&otsd, &[6; 32]);
    node.mine_to(1, &addr);
    node.mine(100);
    wait_for("the stamping tx once funded", 30, || {
        mempool(&node).first().copied()
    });
    node.mine(6);
    assert_complete_proof(&node, &otsd, &c, &p);
    otsd.stop();
}

#[test]
fn a_thousand_digests_across_many_rounds_all_complete() {
    let node = Bitcoind::start();
    let (_dir, otsd) = funded_calendar(&node, &["--min-round-interval-ms", "5"]);
    let addr = otsd.addr;
    let mined_once = std::sync::atomic::AtomicBool::new(false);
    let commitments = common::in_parallel(8, 125, |t, i| {
        if t == 0 && i == 60 && !mined_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            node.mine(1);
        }
        let mut digest = [0u8; 32];
        digest[..4].copy_from_slice(&t.to_be_bytes());
        digest[4..8].copy_from_slice(&i.to_be_bytes());
        let answer = post_digest(addr, &digest);
        assert_eq!(answer.status, 200, "{}", answer.text());
        let c = commitment_of(&digest, &answer.body);
        let path = format!("/timestamp/{}", hex::encode(&c));
        (c, path)
    });
    assert_eq!(commitments.len(), 1000);
    let mut unique = commitments.clone();
    unique.sort();
    unique.dedup();
    assert!(unique.len() > 1, "digests spread over several rounds");
    // Mine until every round is final (later rounds need a second cycle).
    wait_for("every round final", 120, || {
        node.mine(1);
        std::thread::sleep(Duration::from_millis(200));
        unique
            .iter()
            .all(|(_, p)| get(otsd.addr, p, "").status == 200)
            .then_some(())
    });
    for (c, p) in &unique {
        assert_complete_proof(&node, &otsd, c, p);
    }
    otsd.stop();
}

#[test]
fn unreachable_node_is_reported_and_intake_goes_on() {
    let dead = format!("http://u:p@127.0.0.1:{}/", free_port());
    let port = free_port();
    let dir = common::calendar_with_uri(&format!("http://127.0.0.1:{port}"));
    let otsd = Otsd::start(
        &dir.path().join("calendar"),
        &[
            "--rpc-port",
            &port.to_string(),
            "--btc-rpc",
            &dead,
            "--btc-poll-interval-ms",
            "100",
        ],
    );
    submit(&otsd, &[8; 32]);
    let err = wait_for("the RPC error on the info page", 30, || {
        let info = get(otsd.addr, "/", "Accept: application/json\r\n");
        let info: serde_json::Value = serde_json::from_slice(&info.body).ok()?;
        info["bitcoin"]["error"].as_str().map(str::to_owned)
    });
    assert!(err.contains("Bitcoin Core"), "{err}");
    let (_, p) = submit(&otsd, &[9; 32]);
    assert_eq!(
        get(otsd.addr, &p, "").text(),
        "Pending confirmation in Bitcoin blockchain"
    );
    otsd.stop();
}

#[test]
fn the_next_cycle_spends_the_previous_change() {
    let node = Bitcoind::start();
    let (_dir, otsd) = funded_calendar(&node, &[]);
    let (_, pa) = submit(&otsd, &[10; 32]);
    let first = wait_for("the first tx", 30, || mempool(&node).first().copied());
    node.mine(1);
    wait_for("the first tx mined", 30, || {
        get(otsd.addr, &pa, "")
            .text()
            .contains(&first.to_string())
            .then_some(())
    });
    let (cb, pb) = submit(&otsd, &[11; 32]);
    let second = wait_for("the second cycle's tx", 30, || {
        mempool(&node).first().copied()
    });
    let tx: serde_json::Value = node.rpc(
        "getrawtransaction",
        &[second.to_string().into(), true.into()],
    );
    assert_eq!(tx["vin"][0]["txid"], first.to_string(), "{tx}");
    assert_eq!(tx["vin"][0]["vout"], 0, "{tx}");
    node.mine(6);
    assert_complete_proof(&node, &otsd, &cb, &pb);
    otsd.stop();
}
