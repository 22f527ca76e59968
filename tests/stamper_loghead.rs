//! The calendar timestamps its own history: every stamping transaction's tip also commits to the
//! log's public chain head, `otsctl verify` checks the recorded heads and tips, `otsctl prove-head`
//! writes a standard .ots proof of a head that the real `ots` client verifies against the regtest
//! node, and `otsctl verify --btc-rpc` checks the confirmations against the node's best chain.
//! Needs `$BITCOIND` and `$OTS_BIN` (see tests/common/bitcoind.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::path::{Path, PathBuf};

use bitcoincore_rpc::RpcApi;
use otsd::events::codec;
use otsd::events::{Event, LogHead};
use otsd::log::record::RecordType;
use otsd::log::Reader;
use serde_json::{json, Value};

use common::bitcoind::Bitcoind;
use common::{
    calendar_with_uri, commitment_of, free_port, fund_stamper, get, otsctl, post_digest,
    verify_json, wait_for, Otsd,
};

/// A calendar (in `dir/calendar`) whose funded stamper talks to `node`.
fn funded_calendar(node: &Bitcoind) -> (tempfile::TempDir, PathBuf, Otsd) {
    let port = free_port().to_string();
    let dir = calendar_with_uri(&format!("http://127.0.0.1:{port}"));
    let cal = dir.path().join("calendar");
    fund_stamper(node, &cal);
    let mut args = vec!["--rpc-port".to_owned(), port];
    args.extend(node.stamper_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let otsd = Otsd::start(&cal, &args);
    (dir, cal, otsd)
}

/// Submits a few digests, lets the stamper send, mines the transaction and 5 more blocks, and
/// waits until the complete proof is served; returns the mined block's height.
fn stamp_a_round(node: &Bitcoind, otsd: &Otsd) -> u64 {
    let digest = [0x5a; 32];
    let answer = post_digest(otsd.addr, &digest);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let path = format!(
        "/timestamp/{}",
        hex::encode(commitment_of(&digest, &answer.body))
    );
    wait_for("the stamping tx", 30, || {
        let pool: Vec<bitcoin::Txid> = node.rpc("getrawmempool", &[]);
        (!pool.is_empty()).then_some(())
    });
    let height = node.height() + 1;
    node.mine(6);
    wait_for("the complete proof", 60, || {
        (get(otsd.addr, &path, "").status == 200).then_some(())
    });
    height
}

/// Every event of the calendar's log, with its sequence number.
fn events(cal: &Path) -> Vec<(u64, Event)> {
    let reader = Reader::open(&cal.join("log"), None).expect("log");
    let mut out = Vec::new();
    reader
        .for_each_from(0, |seq, ev| {
            out.push((seq, codec::decode(ev).expect("event")))
        })
        .expect("read log");
    out
}

/// The public chain values after every record, by the `next_seq` they end at.
fn chain_points(cal: &Path) -> Vec<(u64, [u8; 32])> {
    let reader = Reader::open(&cal.join("log"), None).expect("log");
    let mut out = vec![(0, [0; 32])];
    reader
        .for_each_record_from(0, |rec| {
            out.push((rec.first_seq + u64::from(rec.count), rec.hash));
            assert!(rec.record_type == RecordType::Batch || rec.count == 0);
        })
        .expect("read log");
    out
}

fn broadcasts(cal: &Path) -> Vec<(u64, Event)> {
    events(cal)
        .into_iter()
        .filter(|(_, e)| matches!(e, Event::TxBroadcast { .. }))
        .collect()
}

fn log_head_of(event: &Event) -> LogHead {
    let Event::TxBroadcast { log_head, .. } = event else {
        panic!("not a broadcast: {event:?}");
    };
    log_head.expect("the broadcast records a log head")
}

fn problems<'a>(report: &'a Value, check: &str) -> Vec<&'a Value> {
    report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter(|p| p["check"] == check)
        .collect()
}

#[test]
fn the_calendar_timestamps_its_own_history_and_the_ots_client_verifies_it() {
    let node = Bitcoind::start();
    let (dir, cal, otsd) = funded_calendar(&node);
    let height = stamp_a_round(&node, &otsd);
    otsd.stop();

    // The broadcast names a head that is a point of the log's public chain before it.
    let sent = broadcasts(&cal);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (seq, ref event) = sent[0];
    let head = log_head_of(event);
    assert!(
        head.next_seq <= seq && head.next_seq > 0,
        "{head:?} at {seq}"
    );
    assert!(
        chain_points(&cal).contains(&(head.next_seq, head.hash)),
        "{head:?} is not on the chain"
    );

    let (ok, report) = verify_json(&cal, &["--no-key"]);
    assert!(ok, "{report:#}");
    assert_eq!(report["heads_checked"], 1, "{report:#}");

    // A standard .ots proof of the head, checked by the real client against the regtest node.
    let ots_file = dir.path().join("head.ots");
    let (ok, out, err) = otsctl(&[
        "prove-head",
        cal.to_str().unwrap(),
        "-o",
        ots_file.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "prove-head: {out}\n{err}");
    let proven: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(proven["next_seq"], head.next_seq);
    assert_eq!(proven["hash"], hex::encode(head.hash));
    assert_eq!(proven["height"], height);
    let client = common::OtsClient::new(&dir.path().join("home"));
    let node_url = node.url_with_auth();
    let hash_hex = hex::encode(head.hash);
    let ots_s = ots_file.to_str().unwrap();
    let verify = |digest: &str| {
        client.run(&[
            "--btc-regtest",
            "--bitcoin-node",
            &node_url,
            "verify",
            "-d",
            digest,
            ots_s,
        ])
    };
    let (ok, out) = verify(&hash_hex);
    assert!(ok, "ots verify: {out}");
    assert!(
        out.contains(&format!("Success! Bitcoin block {height} attests")),
        "{out}"
    );
    // The proof is for that head only.
    let (ok, out) = verify(&hex::encode([0x11; 32]));
    assert!(!ok || !out.contains("Success!"), "{out}");

    // --seq picks the head covering that event; nothing covers events after the newest head.
    let (ok, _, err) = otsctl(&[
        "prove-head",
        cal.to_str().unwrap(),
        "--seq",
        &head.next_seq.to_string(),
        "-o",
        ots_s,
    ]);
    assert!(!ok, "no head covers seq {}", head.next_seq);
    assert!(err.contains("no final stamping transaction"), "{err}");
}

#[test]
fn verify_reports_a_planted_wrong_head_and_a_wrong_tip() {
    let node = Bitcoind::start();
    let (_dir, cal, otsd) = funded_calendar(&node);
    stamp_a_round(&node, &otsd);
    otsd.stop();
    let (seq, real) = broadcasts(&cal).pop().expect("a broadcast");
    let head = log_head_of(&real);
    let Event::TxBroadcast {
        first_round,
        last_round,
        ..
    } = real
    else {
        unreachable!()
    };
    let planted = |head: LogHead, new_tip: [u8; 32]| {
        let mut event = real.clone();
        if let Event::TxBroadcast { tip, log_head, .. } = &mut event {
            (*tip, *log_head) = (new_tip, Some(head));
        }
        event
    };
    let forged_head = LogHead {
        hash: [0x42; 32],
        ..head
    };
    // A head that is not the log's chain value (with the tip recomputed to match it, as a forger
    // rewriting history would), then the real head with a tip that does not commit to it.
    let commitments: Vec<Vec<u8>> = events(&cal)
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::RoundSealed {
                round, commitment, ..
            } if (first_round..=last_round).contains(&round) => Some(commitment),
            _ => None,
        })
        .collect();
    let forged_tip = otsd::anchor::proof::stamp_tip(
        commitments.iter().map(Vec::as_slice),
        Some(&forged_head.hash),
    )
    .unwrap();
    let next = events(&cal).last().map(|(s, _)| s + 1).unwrap();
    common::append_events(&cal, &[planted(forged_head, forged_tip)]);
    common::append_events(&cal, &[planted(head, [0x24; 32])]);
    assert_ne!(seq, next);

    let (ok, report) = verify_json(&cal, &[]);
    assert!(!ok, "{report:#}");
    let heads = problems(&report, "head");
    assert_eq!(heads.len(), 1, "{report:#}");
    assert_eq!(heads[0]["seq"], next);
    assert!(
        heads[0]["detail"]
            .as_str()
            .unwrap()
            .contains("this log's public chain there is"),
        "{report:#}"
    );
    let tips = problems(&report, "tip");
    assert_eq!(tips.len(), 1, "{report:#}");
    assert_eq!(tips[0]["seq"], next + 1);
    assert_eq!(report["heads_checked"], 2, "{report:#}");
}

#[test]
fn verify_against_the_node_reports_a_confirmation_no_longer_in_the_best_chain() {
    let node = Bitcoind::start();
    let (_dir, cal, otsd) = funded_calendar(&node);
    let height = stamp_a_round(&node, &otsd);
    otsd.stop();
    let rpc = node.url_with_auth();
    let (ok, report) = verify_json(&cal, &["--btc-rpc", &rpc]);
    assert!(ok, "{report:#}");
    assert_eq!(report["node_confirmations_checked"], 1, "{report:#}");

    // The block is invalidated and a competing one mined without the transaction.
    let block = node.client.get_block_hash(height).unwrap().to_string();
    let _: Value = node.rpc("invalidateblock", &[json!(block)]);
    let miner = common::bitcoind::miner_address().to_string();
    let _: Value = node.rpc("generateblock", &[json!(miner), json!([])]);
    let (ok, report) = verify_json(&cal, &["--btc-rpc", &rpc]);
    assert!(!ok, "{report:#}");
    let confirmed_seq = events(&cal)
        .iter()
        .find(|(_, e)| matches!(e, Event::TxConfirmed { .. }))
        .map(|(s, _)| *s)
        .expect("a confirmation");
    let bad = problems(&report, "node");
    assert_eq!(bad.len(), 1, "{report:#}");
    assert_eq!(bad[0]["seq"], confirmed_seq);
    let detail = bad[0]["detail"].as_str().unwrap();
    assert!(detail.contains("not in the node's best chain"), "{detail}");
    assert!(detail.contains(&block), "{detail}");
    // Without the node the log itself is still consistent.
    let (ok, report) = verify_json(&cal, &[]);
    assert!(ok, "{report:#}");
    assert_eq!(report["node_confirmations_checked"], Value::Null);

    // A node that does not answer is an error, never "verified".
    let port = free_port();
    let (ok, out, err) = otsctl(&[
        "verify",
        cal.to_str().unwrap(),
        "--btc-rpc",
        &format!("http://u:secret@127.0.0.1:{port}/"),
    ]);
    assert!(!ok, "{out}");
    assert!(!out.contains("OK"), "{out}");
    assert!(
        err.contains("Bitcoin Core at") && !err.contains("secret"),
        "{err}"
    );
}
