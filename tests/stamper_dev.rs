//! `otsd --dev` end to end with the real `ots` client (needs `$BITCOIND` and `$OTS_BIN`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, required_env, OtsClient};

#[test]
fn dev_calendar_stamps_upgrades_and_verifies() {
    required_env("BITCOIND");
    required_env("OTS_BIN");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_otsd"))
        .args([
            "--dev",
            "--rpc-port",
            &port.to_string(),
            "--dev-block-interval-ms",
            "300",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn otsd --dev");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut node_url = None;
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(rest) = line
            .trim()
            .strip_prefix("ots --btc-regtest --bitcoin-node ")
        {
            node_url = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let node_url = node_url.expect("otsd --dev printed the ots verify command");
    let dir = tempfile::tempdir().unwrap();
    let ots = OtsClient::new(&dir.path().join("home"));
    let url = format!("http://127.0.0.1:{port}");
    let proof = ots.stamp(&url, dir.path(), "dev.txt", b"otsd --dev\n");
    let proof = proof.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (ok, out) = ots.run(&["--btc-regtest", "-l", &url, "upgrade", proof]);
        if ok && out.contains("Success") {
            break;
        }
        assert!(Instant::now() < deadline, "upgrade never completed: {out}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (ok, out) = ots.run(&[
        "--btc-regtest",
        "--bitcoin-node",
        &node_url,
        "verify",
        proof,
    ]);
    assert!(
        ok && out.contains("Success! Bitcoin block"),
        "ots verify: {out}"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "otsd --dev exited with {status}");
}
