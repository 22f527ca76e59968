//! Issue 13 hole 4 on a real, small filesystem: a tmpfs of a few MiB holding the calendar. Fill it,
//! let otsd run into the full disk at a segment roll-over: it answers 503 with `Retry-After` ("try
//! again later", not "log unavailable"), and once space is freed it takes digests again without a
//! restart; every digest it answered is still in the log afterwards.
//!
//! Mounting needs root: as root the test mounts the tmpfs itself; otherwise it re-runs itself under
//! `unshare --user --map-root-user --mount` (root in a private user and mount namespace). If neither
//! works the test fails, saying so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{commitment_of, get, try_post_digest, Otsd};

const CHILD_ENV: &str = "OTSD_FULL_DISK_CHILD";
const TMPFS_SIZE: &str = "size=4m";

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Unmounts the tmpfs when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path) -> Mount {
    let (ok, out) = common::run(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", TMPFS_SIZE, "tmpfs"])
            .arg(at),
    );
    assert!(ok, "cannot mount a tmpfs at {}: {out}", at.display());
    Mount(at.to_owned())
}

/// Writes zeros into `path` until the filesystem is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_at_roll_over_is_try_later_and_intake_resumes_when_space_is_back() {
    if !is_root() && std::env::var(CHILD_ENV).is_err() {
        let exe = std::env::current_exe().expect("current exe");
        let (ok, out) = common::run(
            Command::new("unshare")
                .args(["--user", "--map-root-user", "--mount"])
                .arg(exe)
                .args([
                    "--exact",
                    "a_full_disk_at_roll_over_is_try_later_and_intake_resumes_when_space_is_back",
                    "--nocapture",
                ])
                .env(CHILD_ENV, "1"),
        );
        assert!(
            ok,
            "the test under unshare failed (or unshare is not permitted):\n{out}"
        );
        assert!(out.contains("1 passed"), "{out}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _mount = mount_tmpfs(dir.path());
    let cal = dir.path().join("calendar");
    let (ok, out) = common::run(Command::new(env!("CARGO_BIN_EXE_otsctl")).args([
        "init",
        cal.to_str().unwrap(),
        "--uri",
        common::URI,
        "--donation-addr",
        common::DONATION,
    ]));
    assert!(ok, "{out}");
    let otsd = Otsd::start(&cal, &["--segment-size-mib", "1"]);
    // Segment 0 is preallocated (1 MiB); take the rest of the filesystem.
    let filler = dir.path().join("filler");
    fill(&filler);
    let mut answered = Vec::new();
    let mut busy = None;
    for i in 0u32..200_000 {
        let digest = sha2_of(i);
        let resp = try_post_digest(otsd.addr, &digest).expect("otsd answers");
        match resp.status {
            200 => answered.push((digest, resp.body)),
            503 => {
                busy = Some(resp);
                break;
            }
            s => panic!("unexpected {s}: {}", resp.text()),
        }
    }
    let busy = busy.expect("the roll-over ran into the full disk");
    assert!(
        busy.text().contains("try again later"),
        "a full disk is try-later, not poison: {}",
        busy.text()
    );
    assert_eq!(busy.header("retry-after"), Some("10"));
    // Still full: still try-later.
    let again = try_post_digest(otsd.addr, &sha2_of(u32::MAX)).expect("answer");
    assert_eq!(again.status, 503, "{}", again.text());
    assert!(again.text().contains("try again later"), "{}", again.text());
    // Space is back: intake resumes without a restart.
    std::fs::remove_file(&filler).expect("free space");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let digest = sha2_of(1_000_000 + answered.len() as u32);
        let resp = try_post_digest(otsd.addr, &digest).expect("answer");
        if resp.status == 200 {
            answered.push((digest, resp.body));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "intake did not resume: {}",
            resp.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = otsd.stop();
    assert!(!log.contains("poisoned"), "{log}");
    // Every answered digest is known after a restart.
    let otsd = Otsd::start(&cal, &["--segment-size-mib", "1"]);
    for (digest, answer) in &answered {
        let c = commitment_of(digest, answer);
        let r = get(otsd.addr, &format!("/timestamp/{}", hex::encode(&c)), "");
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(r.text().contains("Pending"), "{}", r.text());
    }
    otsd.stop();
    let (ok, report) = common::verify_json(&cal, &[]);
    assert!(ok, "{report}");
    println!("{} digests answered across the full disk", answered.len());
}

fn sha2_of(i: u32) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(i.to_le_bytes()).to_vec()
}
