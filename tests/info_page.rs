//! The HTML info page in a real headless browser (Debian's `chromium`, `$CHROMIUM`, installed by
//! tools/setup-ops.sh), on a calendar stamping on a real `bitcoind -regtest`: the rendered DOM
//! shows the figures, times in UTC with how long ago (added by the page's script, so this also
//! checks that it runs), the transaction in flight linked to the
//! explorer, and both QR codes; a screenshot is written to target/info-page.png for the record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::process::Command;

use bitcoincore_rpc::RpcApi;
use common::bitcoind::Bitcoind;
use common::{free_port, post_digest, required_env, wait_for, Otsd};

/// Runs headless chromium on `url` with `extra` flags and a fresh profile; returns stdout.
fn chromium(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(required_env("CHROMIUM"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn info_page_renders_in_chromium() {
    let node = Bitcoind::start();
    let port = free_port();
    let dir = common::calendar_with_uri(&format!("http://127.0.0.1:{port}"));
    let cal = dir.path().join("calendar");
    common::fund_stamper(&node, &cal);
    let mut args = vec!["--rpc-port".to_owned(), port.to_string()];
    args.extend(node.stamper_args());
    args.extend([
        "--explorer-url".to_owned(),
        "https://explorer.example/".to_owned(),
    ]);
    let invoice = "lnbc1pjinfopageinvoicewithoutamount0qqqqq";
    let invoice_file = dir.path().join("ln-invoice");
    std::fs::write(&invoice_file, format!("{invoice}\n")).unwrap();
    args.extend([
        "--lightning-invoice-file".to_owned(),
        invoice_file.to_str().unwrap().to_owned(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let otsd = Otsd::start(&cal, &args);
    for i in 0..3u8 {
        assert_eq!(post_digest(otsd.addr, &[i; 32]).status, 200);
    }
    let txid = wait_for("the stamping tx", 60, || {
        node.client.get_raw_mempool().unwrap().first().copied()
    });
    node.mine(1);
    wait_for("the mined transaction on the page", 30, || {
        let r = common::get(otsd.addr, "/", "");
        r.text()
            .contains("Recent stamping transactions")
            .then_some(())
    });
    // Everything so far is covered by mined transactions; one more digest gives a pending round
    // with an age and, once the stamper sends, a transaction in flight.
    assert_eq!(post_digest(otsd.addr, &[9; 32]).status, 200);
    wait_for("a new stamping tx", 60, || {
        let pool = node.client.get_raw_mempool().unwrap();
        pool.iter().find(|t| **t != txid).copied()
    });
    wait_for("the tx in flight on the page", 30, || {
        let r = common::get(otsd.addr, "/", "");
        r.text().contains("sat/vB").then_some(())
    });

    let url = otsd.url() + "/";
    let dom = chromium(&url, &["--dump-dom"]);
    for needed in [
        "OpenTimestamps calendar server",
        "Accepting digests.",
        "Digests accepted</th><td>4</td>",
        "id=\"pending\">",
        "id=\"oldest-pending\">sealed <time data-unix=",
        " UTC</time> (",
        " ago)",
        &format!("href=\"https://explorer.example/tx/{txid}\""),
        "sat/vB",
        "% of --btc-max-fee (100000 sat)",
        "Recent stamping transactions",
        "waiting for confirmations",
        "id=\"funding-qr\"><svg",
        "id=\"donation-qr\"><svg",
        "Stamping pays from <code>bcrt1",
        "id=\"lightning-qr\"><svg",
        &format!("href=\"lightning:{invoice}\""),
        "Fees of the last week</th><td id=\"fees-week\">",
        " sat in 1 mined transaction<",
        "<th>Fee</th><th>Fee rate</th>",
    ] {
        assert!(
            dom.contains(needed),
            "the rendered page lacks {needed:?}:\n{dom}"
        );
    }
    assert!(!dom.contains("Alarm:"), "{dom}");
    assert!(
        !dom.contains("id=\"pending\">0<"),
        "a round is pending: {dom}"
    );

    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/info-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,1600",
        ],
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    otsd.stop();
}
