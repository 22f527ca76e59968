//! The short fault matrix of the test suite: `tools/fault-matrix/main.rs` with small counts (a few
//! minutes); every row must survive every injection. The chain rows need the real `bitcoind`
//! (`$BITCOIND`) and `ots` client (`$OTS_BIN`) that `tools/test.sh` sets up, and fail without them.
//! The full run is in the README.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
use std::process::Command;

/// Every row of the matrix, by the name it prints.
const ROWS: [&str; 20] = [
    "process crash",
    "power cut",
    "fsync/write EIO",
    "sealed damage",
    "torn tail",
    "parser: .ots file",
    "parser: log reader",
    "parser: segment header",
    "parser: event codec",
    "parser: Python db proof row",
    "parser: Python journal",
    "panic in the fold",
    "fsync EIO through otsd",
    "otsd crash under load",
    "abuse: slowloris sockets",
    "abuse: 10x overload",
    "abuse: fuzzed requests",
    "reorgs",
    "node faults",
    "ALL SURVIVED",
];

#[test]
fn the_short_fault_matrix_survives_every_injection() {
    let seed: u64 = std::env::var("OTSD_FAULT_MATRIX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let out = Command::new(env!("CARGO_BIN_EXE_fault-matrix"))
        .args(["--seed", &seed.to_string()])
        .args(["--cuts", "150", "--eio", "150", "--damage", "1000"])
        .args(["--kills", "20", "--parser-runs", "30000"])
        .args([
            "--otsd-kills",
            "10",
            "--otsd-eio",
            "3",
            "--fold-panics",
            "2",
        ])
        .args(["--slowloris", "1000", "--overload-secs", "2"])
        .args(["--fuzz-requests", "2000"])
        .args(["--reorgs", "3", "--node-faults", "3"])
        .output()
        .expect("run fault-matrix");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "seed {seed} (rerun with OTSD_FAULT_MATRIX_SEED={seed}):\n{stdout}\n{stderr}"
    );
    for row in ROWS {
        assert!(stdout.contains(row), "row {row} missing:\n{stdout}");
    }
}
