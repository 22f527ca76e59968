//! Nothing acknowledged is lost: a `200` to `POST /digest` survives SIGKILL at any moment, and a
//! SIGTERM under load shuts down cleanly, answering what it accepted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{commitment_of, get, new_calendar, try_post_digest, Otsd};

#[test]
fn sigkill_and_sigterm_under_load_lose_no_answered_digest() {
    let dir = new_calendar();
    let cal = dir.path().join("calendar");
    let mut answered: Vec<Vec<u8>> = Vec::new();
    for kill in 0..3 {
        let otsd = Otsd::start(&cal, &[]);
        let addr = otsd.addr;
        let stop = AtomicBool::new(false);
        let got: Vec<Vec<u8>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..16u8)
                .map(|w| {
                    let stop = &stop;
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        let mut i = 0u32;
                        while !stop.load(Ordering::Relaxed) {
                            let digest = [&[kill, w][..], &i.to_be_bytes()[..]].concat();
                            i += 1;
                            match try_post_digest(addr, &digest) {
                                Some(r) if r.status == 200 => {
                                    mine.push(commitment_of(&digest, &r.body))
                                }
                                _ => std::thread::sleep(Duration::from_millis(5)),
                            }
                        }
                        mine
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(1500 + 300 * u64::from(kill)));
            if kill == 1 {
                let log = otsd.stop();
                assert!(
                    log.contains("log closed cleanly"),
                    "SIGTERM under load:\n{log}"
                );
            } else {
                otsd.kill();
            }
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        assert!(
            got.len() > 100,
            "the load was real: {} answers before kill {kill}",
            got.len()
        );
        answered.extend(got);

        let otsd = Otsd::start(&cal, &[]);
        let mut unknown = 0;
        for c in &answered {
            let r = get(otsd.addr, &format!("/timestamp/{}", hex::encode(c)), "");
            if r.text() != "Pending confirmation in Bitcoin blockchain" {
                unknown += 1;
            }
        }
        assert_eq!(
            unknown,
            0,
            "after stop {kill} (SIGTERM for 1, else SIGKILL), {unknown} of {} answered commitments were lost",
            answered.len()
        );
        otsd.stop();
    }
}

/// Runs `otsd -c CAL` on a free port expecting it to refuse to start (within 30 s; a started
/// otsd is killed and the test fails); returns its output.
fn otsd_refuses(cal: &std::path::Path) -> String {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_otsd"))
        .arg("-c")
        .arg(cal)
        .args([
            "--rpc-address",
            "127.0.0.1",
            "--rpc-port",
            "0",
            "--btc-regtest",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn otsd");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait otsd").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("otsd output");
            panic!(
                "otsd started instead of refusing:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("otsd output");
    assert!(!out.status.success(), "otsd exited 0");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Issue 13 hole 1: a calendar that has had history whose `log/` is gone (moved away, an
/// unmounted disk, a mistaken `rm`) used to start a new log at round 0 without a word. It must
/// refuse, name what is missing and the recovery command; a hand-made new calendar still starts.
#[test]
fn a_calendar_whose_log_is_missing_refuses_to_start() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let otsd = common::Otsd::start(&cal, &[]);
    for i in 0..5u8 {
        assert_eq!(common::post_digest(otsd.addr, &[i; 32]).status, 200);
    }
    otsd.stop();
    let moved = dir.path().join("log-elsewhere");
    std::fs::rename(cal.join("log"), &moved).expect("move the log away");
    let out = otsd_refuses(&cal);
    assert!(out.contains("otsctl recover"), "{out}");
    assert!(
        out.contains(&cal.join("log").display().to_string()),
        "{out}"
    );
    assert!(!cal.join("log").join("00000000000000000000.seg").exists());
    // Also with the projection gone: the marker written at the log's creation still says so.
    std::fs::remove_dir_all(cal.join("projection")).expect("rm projection");
    std::fs::create_dir(cal.join("log")).expect("an empty mount point");
    let out = otsd_refuses(&cal);
    assert!(out.contains("otsctl recover"), "{out}");
    // Putting the log back is the recovery.
    std::fs::remove_dir(cal.join("log")).expect("rmdir");
    std::fs::rename(&moved, cal.join("log")).expect("move back");
    let otsd = common::Otsd::start(&cal, &[]);
    assert_eq!(common::post_digest(otsd.addr, &[9; 32]).status, 200);
    otsd.stop();
}

/// The Python README's way of making a calendar: `uri`, `donation_addr` and `hmac-key` by hand.
#[test]
fn a_hand_made_new_calendar_starts_a_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cal = dir.path().join("calendar");
    std::fs::create_dir(&cal).expect("mkdir");
    std::fs::write(cal.join("uri"), format!("{}\n", common::URI)).expect("uri");
    std::fs::write(cal.join("donation_addr"), common::DONATION).expect("addr");
    std::fs::write(cal.join("hmac-key"), [7u8; 32]).expect("key");
    let otsd = common::Otsd::start(&cal, &[]);
    assert_eq!(common::post_digest(otsd.addr, &[1; 32]).status, 200);
    otsd.stop();
}
