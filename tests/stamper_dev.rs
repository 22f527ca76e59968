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

/// `cargo install --path . --debug --root TMP` (into this build's target directory, so only what
/// changed is compiled) gives `otsd` and `otsctl` that run; the installed `otsd --dev`, away from
/// the source tree, with `$BITCOIND` unset and `$HOME` empty, finds bitcoind in the cache
/// `$OTSD_CACHE` names (the layout of tools/build-bitcoind.sh, here holding a link to the real
/// `$BITCOIND`) and serves.
#[test]
fn installed_dev_finds_bitcoind_through_otsd_cache() {
    let real = required_env("BITCOIND");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let bin_dir = cache.join("bitcoin-core-kernel-sys-0.4.1/bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(&real, bin_dir.join("bitcoind")).unwrap();
    let root = tmp.path().join("root");
    cargo_install(&root);
    let installed = root.join("bin/otsd");
    for (bin, needle) in [
        (&installed, "--btc-rpc"),
        (&root.join("bin/otsctl"), "replay"),
    ] {
        let out = Command::new(bin).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && help.contains(needle),
            "{bin:?} --help: {help}"
        );
    }
    let cal = tmp.path().join("cal");
    let out = Command::new(root.join("bin/otsctl"))
        .args(["init", cal.to_str().unwrap(), "--uri", "http://127.0.0.1:1"])
        .args([
            "--donation-addr",
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && cal.join("hmac-key").exists(),
        "installed otsctl init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// Most time `cargo install` may take: it compiles only the crate itself when this test's target
/// directory is up to date, but a shared machine can be slow.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(1200);

/// Runs `cargo install --path . --debug --root ROOT --locked --offline` with this build's target
/// directory, failing loudly on an error or after [`INSTALL_TIMEOUT`].
fn cargo_install(root: &std::path::Path) {
    let target_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let log = root.with_extension("log");
    let mut child = Command::new(cargo)
        .args([
            "install",
            "--path",
            env!("CARGO_MANIFEST_DIR"),
            "--debug",
            "--locked",
        ])
        .args(["--offline", "--root"])
        .arg(root)
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("run cargo install");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > INSTALL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success() && started.elapsed() <= INSTALL_TIMEOUT,
        "cargo install ({status}, {:.0} s):\n{stderr}",
        started.elapsed().as_secs_f64()
    );
}
