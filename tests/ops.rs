//! What operators watch, on a real otsd process: `/metrics` (Prometheus), `/healthz` and `/readyz`
//! with their alarms, `/status/<hex>`, and the systemd notification protocol.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use common::{commitment_of, free_port, get, new_calendar, post_digest, raw, wait_for, Otsd};

/// The value of the sample named exactly `series` (name and labels) in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

fn scrape(otsd: &Otsd) -> String {
    let r = get(otsd.addr, "/metrics", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        r.header("content-type")
    );
    r.text()
}

fn json(otsd: &Otsd, path: &str) -> (u16, serde_json::Value) {
    let r = get(otsd.addr, path, "");
    let v = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.text()));
    (r.status, v)
}

#[test]
fn metrics_move_after_real_requests() {
    let dir = new_calendar();
    let otsd = Otsd::start(&dir.path().join("calendar"), &[]);
    let before = scrape(&otsd);
    let v = |t: &str, s: &str| sample(t, s).unwrap_or_else(|| panic!("no {s} in\n{t}"));
    assert_eq!(v(&before, "otsd_digests_accepted_total"), 0.0);
    assert_eq!(v(&before, "otsd_projection_digests"), 0.0);
    assert!(v(&before, "otsd_log_segments") >= 1.0);
    assert!(v(&before, "otsd_log_bytes") > 0.0);
    for i in 0..3u8 {
        assert_eq!(post_digest(otsd.addr, &[i; 32]).status, 200);
    }
    let empty = raw(
        otsd.addr,
        b"POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(empty.status, 400);
    assert_eq!(get(otsd.addr, "/no-such-page", "").status, 404);
    let after = scrape(&otsd);
    assert_eq!(v(&after, "otsd_digests_accepted_total"), 3.0, "{after}");
    assert_eq!(
        v(&after, "otsd_digests_refused_total{reason=\"empty\"}"),
        1.0
    );
    assert_eq!(v(&after, "otsd_projection_digests"), 3.0);
    let rounds = v(&after, "otsd_rounds_total");
    assert!((1.0..=3.0).contains(&rounds), "{rounds}");
    assert_eq!(v(&after, "otsd_round_digests_count"), rounds);
    assert_eq!(v(&after, "otsd_round_digests_sum"), 3.0);
    assert_eq!(v(&after, "otsd_round_commit_seconds_count"), rounds);
    assert!(v(&after, "otsd_round_commit_seconds_sum") > 0.0);
    assert_eq!(v(&after, "otsd_pending_rounds"), rounds);
    assert!(v(&after, "otsd_log_next_seq") >= 3.0 + rounds);
    // The first scrape's own answer is counted by the time of the second.
    assert!(
        v(&after, "otsd_http_responses_total{code=\"200\"}") >= 4.0,
        "{after}"
    );
    assert_eq!(v(&after, "otsd_http_responses_total{code=\"400\"}"), 1.0);
    assert_eq!(v(&after, "otsd_http_responses_total{code=\"404\"}"), 1.0);
    assert_eq!(v(&after, "otsd_alarm{alarm=\"pending_too_old\"}"), 0.0);
    assert!(after.ends_with("# EOF\n"));
    otsd.stop();
}

#[test]
fn metrics_can_have_their_own_address() {
    let dir = new_calendar();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let otsd = Otsd::start(&dir.path().join("calendar"), &["--metrics-address", &bind]);
    assert_eq!(
        get(otsd.addr, "/metrics", "").status,
        404,
        "kept off the API"
    );
    let ops: std::net::SocketAddr = bind.parse().unwrap();
    let r = get(ops, "/metrics", "");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("otsd_digests_accepted_total 0"),
        "{}",
        r.text()
    );
    assert_eq!(get(ops, "/readyz", "").status, 200);
    assert_eq!(
        get(ops, "/timestamp/00", "").status,
        404,
        "only ops routes there"
    );
    otsd.stop();
}

#[test]
fn health_without_a_stamper_is_ready() {
    let dir = new_calendar();
    let otsd = Otsd::start(&dir.path().join("calendar"), &[]);
    let (code, live) = json(&otsd, "/healthz");
    assert_eq!(
        (code, live["status"].as_str()),
        (200, Some("alive")),
        "{live}"
    );
    let (code, ready) = json(&otsd, "/readyz");
    assert_eq!(code, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["alarms"], serde_json::json!([]));
    let stamper = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "stamper")
        .unwrap();
    assert!(
        stamper["detail"].as_str().unwrap().contains("stamper off"),
        "{ready}"
    );
    otsd.stop();
}

#[test]
fn unreachable_node_raises_an_alarm_and_readyz_says_why() {
    let dead = format!("http://u:p@127.0.0.1:{}/", free_port());
    let dir = new_calendar();
    let otsd = Otsd::start(
        &dir.path().join("calendar"),
        &["--btc-rpc", &dead, "--btc-poll-interval-ms", "100"],
    );
    let ready = wait_for("readyz to fail", 30, || {
        let (code, body) = json(&otsd, "/readyz");
        (code == 503).then_some(body)
    });
    assert_eq!(ready["status"], "not ready");
    assert_eq!(
        ready["alarms"],
        serde_json::json!(["node_unreachable"]),
        "{ready}"
    );
    let stamper = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "stamper")
        .unwrap();
    assert_eq!(stamper["ok"], false);
    assert!(
        stamper["detail"]
            .as_str()
            .unwrap()
            .contains("node unreachable"),
        "{ready}"
    );
    let (code, live) = json(&otsd, "/healthz");
    assert_eq!(code, 200, "the process still serves");
    assert_eq!(live["alarms"], serde_json::json!(["node_unreachable"]));
    let m = scrape(&otsd);
    assert_eq!(
        sample(&m, "otsd_alarm{alarm=\"node_unreachable\"}"),
        Some(1.0),
        "{m}"
    );
    assert!(sample(&m, "otsd_stamper_errors_total{kind=\"node_unreachable\"}").unwrap() >= 1.0);
    // Intake goes on regardless.
    assert_eq!(post_digest(otsd.addr, &[5; 32]).status, 200);
    otsd.stop();
}

#[test]
fn status_of_a_commitment() {
    let dir = new_calendar();
    let otsd = Otsd::start(&dir.path().join("calendar"), &[]);
    let digest = [7u8; 32];
    let answer = post_digest(otsd.addr, &digest);
    let commitment = commitment_of(&digest, &answer.body);
    let (code, s) = json(&otsd, &format!("/status/{}", hex::encode(&commitment)));
    assert_eq!(code, 200);
    assert_eq!(s["state"], "pending", "{s}");
    assert_eq!(s["round"], 0);
    assert_eq!(s["commitment"], hex::encode(&commitment));
    assert!(s["round_time"].as_u64().is_some());
    assert_eq!(
        s["expected_complete_at"],
        serde_json::Value::Null,
        "not stamping: no estimate"
    );
    assert!(
        s["detail"].as_str().unwrap().contains("not stamping"),
        "{s}"
    );
    let (code, s) = json(&otsd, &format!("/status/{}", "00".repeat(44)));
    assert_eq!((code, s["state"].as_str()), (200, Some("unknown")));
    assert_eq!(get(otsd.addr, "/status/xyz", "").status, 400);
    otsd.stop();
}

/// `/status/<digest>` finds the round of a submitted digest: from memory, from the on-disk digest
/// index after a checkpoint and a restart, and after `otsctl replay` rebuilt that index from the
/// log alone. A digest submitted twice is reported in its first round.
#[test]
fn status_of_a_submitted_digest_from_memory_disk_and_a_replay() {
    let dir = new_calendar();
    let cal = dir.path().join("calendar");
    let args = ["--segment-size-mib", "1"];
    let otsd = Otsd::start(&cal, &args);
    let digest_of = |w: u32, i: u32| {
        let mut d = vec![0xd1; 20];
        d[..4].copy_from_slice(&w.to_be_bytes());
        d[4..8].copy_from_slice(&i.to_be_bytes());
        d
    };
    // About 200 bytes of log a round of one 20-byte digest, 123 per digest in rounds of two: 8,000
    // digests (four clients, rounds of one or two) fill more than one 1 MiB segment.
    let answered = common::in_parallel(4, 2000, |w, i| {
        let d = digest_of(w, i);
        let r = post_digest(otsd.addr, &d);
        assert_eq!(r.status, 200);
        (d.clone(), commitment_of(&d, &r.body))
    });
    let repeat = post_digest(otsd.addr, &answered[0].0);
    assert_eq!(repeat.status, 200);
    let checkpoint = cal.join("projection").join("checkpoint");
    wait_for("a checkpoint", 60, || checkpoint.exists().then_some(()));
    let check = |otsd: &Otsd, when: &str| {
        let picks = [0, 1, 1249, 2500, answered.len() - 1];
        for (d, commitment) in picks.iter().map(|&i| &answered[i]) {
            let (code, s) = json(otsd, &format!("/status/{}", hex::encode(d)));
            assert_eq!(code, 200, "{when}: {s}");
            assert_eq!(s["found_by"], "digest", "{when}: {s}");
            assert_eq!(s["digest"], hex::encode(d), "{when}");
            assert_eq!(s["commitment"], hex::encode(commitment), "{when}: {s}");
            assert_eq!(s["state"], "pending", "{when}: {s}");
            let by_commitment = json(otsd, &format!("/status/{}", hex::encode(commitment))).1;
            assert_eq!(by_commitment["round"], s["round"], "{when}");
            assert_eq!(by_commitment["found_by"], "commitment", "{when}");
        }
        let (_, s) = json(otsd, &format!("/status/{}", hex::encode(digest_of(9, 9))));
        assert_eq!(
            (s["state"].as_str(), &s["found_by"]),
            (Some("unknown"), &serde_json::Value::Null)
        );
    };
    check(&otsd, "running");
    otsd.stop();
    let otsd = Otsd::start(&cal, &args);
    check(&otsd, "restarted from the checkpoint");
    otsd.stop();
    let (ok, out, err) = common::otsctl(&["replay", cal.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let otsd = Otsd::start(&cal, &args);
    check(&otsd, "after otsctl replay");
    otsd.stop();
}

/// otsd under a pretend service manager: a datagram socket in `$NOTIFY_SOCKET`, as systemd
/// provides for `Type=notify` (systemd itself cannot run in the test environment).
#[test]
fn systemd_notify_ready_watchdog_and_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let dir = new_calendar();
    let otsd = Otsd::start_env(
        &dir.path().join("calendar"),
        &[],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let mut buf = [0u8; 4096];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    assert!(
        first.starts_with("READY=1\nSTATUS=listening on "),
        "{first}"
    );
    assert!(first.contains(&otsd.addr.to_string()), "{first}");
    // Within a second: watchdog pings (every 100 ms) and a STATUS line with figures.
    let mut seen = Vec::new();
    while !(seen.iter().any(|m: &String| m == "WATCHDOG=1")
        && seen.iter().any(|m| m.contains("rounds pending")))
    {
        seen.push(recv());
        assert!(seen.len() < 50, "{seen:?}");
    }
    let pid = otsd.child.id();
    let stopper = std::thread::spawn(move || otsd.stop());
    let stopping = loop {
        let m = recv();
        if m.starts_with("STOPPING=1") {
            break m;
        }
    };
    assert!(stopping.contains("STATUS=shutting down"), "{stopping}");
    stopper.join().unwrap();
    let last = recv();
    assert_eq!(last, "STATUS=stopped; log closed cleanly", "pid {pid}");
}

/// contrib/systemd/otsd.service passes `systemd-analyze verify` (with its binary path pointed at
/// the built otsd) and scores as hardened by `systemd-analyze security` (exposure at most 2.0).
#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let analyze = common::required_env("SYSTEMD_ANALYZE");
    let unit = std::fs::read_to_string(common::repo_path("contrib/systemd/otsd.service")).unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "TimeoutStopSec=",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/otsd",
        "User=otsd",
    ] {
        assert!(unit.contains(needed), "otsd.service lacks {needed}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("otsd.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/otsd", env!("CARGO_BIN_EXE_otsd")),
    )
    .unwrap();
    let (ok, out) = common::run(Command::new(&analyze).arg("verify").arg(&path));
    assert!(ok, "systemd-analyze verify: {out}");
    let (ok, out) = common::run(
        Command::new(&analyze)
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(&path),
    );
    assert!(ok, "systemd-analyze security: {out}");
    assert!(
        out.contains("Overall exposure level for otsd.service: 1."),
        "{out}"
    );
}

/// Against a real `bitcoind -regtest`: `/status` follows a commitment from pending through its
/// stamping transaction's confirmations to complete, and the stamper's metrics move with it.
#[test]
fn status_and_stamper_metrics_follow_a_stamp_on_regtest() {
    use bitcoincore_rpc::RpcApi;
    let node = common::bitcoind::Bitcoind::start();
    let port = free_port();
    let dir = common::calendar_with_uri(&format!("http://127.0.0.1:{port}"));
    let cal = dir.path().join("calendar");
    common::fund_stamper(&node, &cal);
    let mut args = vec!["--rpc-port".to_owned(), port.to_string()];
    args.extend(node.stamper_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let otsd = Otsd::start(&cal, &args);
    let digest = [0x11u8; 32];
    let commitment = commitment_of(&digest, &post_digest(otsd.addr, &digest).body);
    let status_path = format!("/status/{}", hex::encode(&commitment));
    let txid = wait_for("the stamping tx", 60, || {
        node.client.get_raw_mempool().unwrap().first().copied()
    });
    let (_, s) = json(&otsd, &status_path);
    assert_eq!(s["state"], "pending", "{s}");
    assert!(s["expected_complete_at"].as_u64().is_some(), "{s}");
    let m = scrape(&otsd);
    assert!(
        sample(&m, "otsd_stamper_broadcasts_total").unwrap() >= 1.0,
        "{m}"
    );
    assert!(sample(&m, "otsd_stamper_fee_satoshis").unwrap() > 0.0);
    let feerate = sample(&m, "otsd_stamper_feerate_sat_per_vbyte").unwrap();
    assert!((1.0..1000.0).contains(&feerate), "{feerate}");
    assert!(sample(&m, "otsd_stamper_last_broadcast_timestamp_seconds").unwrap() > 1.6e9);
    assert_eq!(sample(&m, "otsd_blocks_since_final_anchor"), Some(-1.0));

    node.mine(1);
    let s = wait_for("in_transaction", 30, || {
        let (_, s) = json(&otsd, &status_path);
        (s["state"] == "in_transaction").then_some(s)
    });
    assert_eq!(s["txid"], txid.to_string(), "{s}");
    assert_eq!(s["confirmations"], 1, "{s}");
    // The mined transaction's fee, as the stamper reports it, is the fee of the last week.
    let fee = sample(&scrape(&otsd), "otsd_stamper_fee_satoshis").unwrap() as u64;
    let info = {
        let r = get(otsd.addr, "/", "Accept: application/json\r\n");
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()
    };
    assert_eq!(info["fees_in_last_week_sat"], fee, "{info}");
    assert_eq!(info["txs_in_last_week"], 1, "{info}");
    assert_eq!(info["mined"][0]["fee_sat"], fee, "{info}");
    assert_eq!(s["confirmations_needed"], 6);
    assert_eq!(
        sample(&scrape(&otsd), "otsd_stamper_confirmations"),
        Some(1.0)
    );

    node.mine(5);
    wait_for("complete", 30, || {
        let (_, s) = json(&otsd, &status_path);
        (s["state"] == "complete").then_some(())
    });
    let m = scrape(&otsd);
    // Mined at H, final at H + 5 (6 confirmations), the best block.
    assert_eq!(
        sample(&m, "otsd_blocks_since_final_anchor"),
        Some(5.0),
        "{m}"
    );
    assert!(sample(&m, "otsd_newest_complete_round_age_seconds").unwrap() >= 0.0);
    assert_eq!(sample(&m, "otsd_pending_rounds"), Some(0.0));
    assert!(sample(&m, "otsd_stamper_balance_satoshis").unwrap() > 0.0);
    let (code, ready) = json(&otsd, "/readyz");
    assert_eq!(code, 200, "{ready}");
    assert!(
        ready["checks"][2]["detail"]
            .as_str()
            .unwrap()
            .contains("best height"),
        "{ready}"
    );
    let (_, by_digest) = json(&otsd, &format!("/status/{}", hex::encode(digest)));
    assert_eq!(by_digest["state"], "complete", "{by_digest}");
    assert_eq!(by_digest["found_by"], "digest", "{by_digest}");
    assert_eq!(by_digest["commitment"], hex::encode(&commitment));
    node.mine(2);
    wait_for("two more blocks since the final anchor", 30, || {
        (sample(&scrape(&otsd), "otsd_blocks_since_final_anchor") == Some(7.0)).then_some(())
    });
    otsd.stop();
}
