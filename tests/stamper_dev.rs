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
    let (ok, out) = ots.verify_regtest(&node_url, proof);
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

/// An `otsd` copied away from the source tree (as `cargo install` leaves it), with `$BITCOIND`
/// unset and `$HOME` empty, finds bitcoind in the cache `$OTSD_CACHE` names (the layout of
/// tools/build-bitcoind.sh, here holding a link to the real `$BITCOIND`) and serves.
#[test]
fn installed_dev_finds_bitcoind_through_otsd_cache() {
    let real = required_env("BITCOIND");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let bin_dir = cache.join("bitcoin-core-kernel-sys-0.4.1/bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(&real, bin_dir.join("bitcoind")).unwrap();
    let installed = tmp.path().join("bin/otsd");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_otsd"), &installed).unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let port = free_port();
    let mut child = Command::new(&installed)
        .args(["--dev", "--rpc-port", &port.to_string()])
        .env_remove("BITCOIND")
        .env("HOME", &home)
        .env("OTSD_CACHE", &cache)
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(tmp.path().join("otsd.stderr")).unwrap())
        .spawn()
        .expect("spawn the installed otsd --dev");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let started = stdout
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("otsd --dev: calendar "));
    let r = common::get(format!("127.0.0.1:{port}").parse().unwrap(), "/readyz", "");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(started, "otsd --dev did not start from the cache");
    assert_eq!(r.status, 200, "{}", r.text());
    let stderr = std::fs::read_to_string(tmp.path().join("otsd.stderr")).unwrap_or_default();
    assert!(status.success(), "{status}; otsd's stderr:\n{stderr}");
}
