//! Issue 13 hole 7: shutdown does not wait for a stamper RPC longer than
//! `otsd::daemon::STAMPER_STOP_GRACE`, which is below the systemd unit's `TimeoutStopSec`. The
//! hanging node is a real regtest bitcoind paused with SIGSTOP (it accepts the connection and never
//! answers), with `--btc-rpc-timeout 300`: before, SIGTERM waited the whole RPC timeout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::bitcoind::Bitcoind;
use otsd::daemon::STAMPER_STOP_GRACE;

/// `TimeoutStopSec` of `contrib/systemd/otsd.service`.
fn unit_stop_timeout() -> Duration {
    let unit = std::fs::read_to_string(common::repo_path("contrib/systemd/otsd.service"))
        .expect("systemd unit");
    let secs = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().parse().ok())
        .expect("TimeoutStopSec in the unit");
    Duration::from_secs(secs)
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn sigterm_does_not_wait_for_a_hanging_stamper_rpc() {
    let stop_timeout = unit_stop_timeout();
    assert!(
        STAMPER_STOP_GRACE + Duration::from_secs(10) <= stop_timeout,
        "the grace must leave room for draining and closing the log"
    );
    let node = Bitcoind::start();
    node.mine(1);
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    signal(node.pid(), "-STOP");
    let mut args = node.stamper_args();
    args.extend(["--btc-rpc-timeout".to_owned(), "300".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let otsd = common::Otsd::start(&cal, &args);
    assert_eq!(common::post_digest(otsd.addr, &[5; 32]).status, 200);
    // The stamper's first look at the node is now stuck in an RPC.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let log = otsd.stop();
    let took = started.elapsed();
    signal(node.pid(), "-CONT");
    assert!(
        took < STAMPER_STOP_GRACE + Duration::from_secs(5),
        "shutdown took {took:?}:\n{log}"
    );
    assert!(took < stop_timeout, "{took:?}");
    assert!(log.contains("cancelling it"), "{log}");
    assert!(log.contains("log closed cleanly"), "{log}");
}
