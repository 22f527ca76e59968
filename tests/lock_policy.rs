//! Issue 13 hole 5: the lock-poisoning policy (`src/sync.rs`): a panic while a lock is held stops
//! the process, and no lock in `src/` goes around that policy (before, about 18 places took the
//! guard out of a poisoned lock and served on).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::{Arc, Mutex, RwLock};

const CHILD_ENV: &str = "OTSD_LOCK_POLICY_CHILD";

/// The child: a fold panics while holding the view's write lock; the next reader must not get a
/// half-applied view. Run only by the parent (ignored in a normal run, so it cannot pass there).
#[test]
#[ignore = "child process of a_panic_while_a_lock_is_held_stops_the_process"]
fn lock_policy_child() {
    assert!(
        std::env::var(CHILD_ENV).is_ok(),
        "run by the parent test only"
    );
    let view = Arc::new(RwLock::new(vec![1u64]));
    let folding = view.clone();
    let _ = std::thread::spawn(move || {
        let mut v = otsd::sync::write(&folding);
        v.push(2);
        panic!("a bug in the middle of a fold");
    })
    .join();
    let v = otsd::sync::read(&view);
    println!("SERVED {v:?}");
    let m = Mutex::new(0);
    drop(otsd::sync::lock(&m));
}

#[test]
fn a_panic_while_a_lock_is_held_stops_the_process() {
    let out = Command::new(std::env::current_exe().expect("current exe"))
        .args([
            "--exact",
            "lock_policy_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("SERVED"),
        "a poisoned view was served: {stdout}"
    );
    assert_eq!(
        out.status.signal(),
        Some(6),
        "expected SIGABRT, got {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("poisoned by a panic"), "{stderr}");
}

/// Every lock in `src/` goes through `otsd::sync` (the one place that decides what a poisoned lock
/// means); nothing takes the guard out of a `PoisonError` or unwraps a lock result.
#[test]
fn no_lock_in_src_goes_around_the_policy() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let forbidden = [
        "into_inner())",
        "PoisonError",
        ".lock().unwrap()",
        ".lock().expect(",
        ".read().unwrap()",
        ".write().unwrap()",
    ];
    let mut found = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("list src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("src/sync.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            for (i, line) in text.lines().enumerate() {
                if forbidden.iter().any(|f| line.contains(f)) {
                    found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "locks that bypass otsd::sync:\n{}",
        found.join("\n")
    );
}

/// The policy end to end: a panic in the fold of a running otsd (the `fold-panic-seq` failpoint)
/// aborts the daemon, which therefore never answers from the half-applied view; restarted without
/// the failpoint, it replays the log, the event whose fold panicked included, and knows every
/// digest it acknowledged.
#[test]
fn a_panic_in_the_fold_aborts_a_running_otsd_and_a_restart_replays_the_log() {
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    // Event 0 is the first digest; each round is a digest and its seal: event 5 is the third seal.
    let mut otsd = common::Otsd::start_env(&cal, &[], &[("OTSD_FAILPOINTS", "fold-panic-seq=5")]);
    let mut acked = Vec::new();
    for i in 0..20u8 {
        match common::try_post_digest(otsd.addr, &[i; 32]) {
            Some(r) if r.status == 200 => acked.push(common::commitment_of(&[i; 32], &r.body)),
            _ => break,
        }
    }
    let status = otsd.child.wait().expect("wait otsd");
    assert_eq!(status.signal(), Some(6), "expected SIGABRT, got {status:?}");
    let log = otsd.stderr.lock().unwrap().clone();
    assert!(log.contains("failpoint fold-panic-seq=5"), "{log}");
    assert!(acked.len() < 20, "otsd went on answering after the panic");
    drop(otsd);

    let otsd = common::Otsd::start(&cal, &[]);
    for c in &acked {
        let r = common::get(otsd.addr, &format!("/timestamp/{}", hex::encode(c)), "");
        assert_eq!(r.text(), "Pending confirmation in Bitcoin blockchain");
    }
    // The log holds the event whose fold panicked, and the restarted fold went past it.
    let r = common::post_digest(otsd.addr, &[0xaa; 32]);
    assert_eq!(r.status, 200, "{}", r.text());
    otsd.stop();
}
