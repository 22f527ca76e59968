//! The short fault matrix of the test suite: `tools/fault-matrix/main.rs` with small counts (a few
//! seconds); every row must survive every injection. The full run is in the README.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
use std::process::Command;

#[test]
fn the_short_fault_matrix_survives_every_injection() {
    let seed: u64 = std::env::var("OTSD_FAULT_MATRIX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let out = Command::new(env!("CARGO_BIN_EXE_fault-matrix"))
        .args(["--seed", &seed.to_string()])
        .args(["--cuts", "150", "--eio", "150", "--damage", "1000"])
        .args(["--kills", "20", "--parser-runs", "50000"])
        .output()
        .expect("run fault-matrix");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "seed {seed} (rerun with OTSD_FAULT_MATRIX_SEED={seed}):\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ALL SURVIVED"), "{stdout}");
    for row in [
        "process crash",
        "power cut",
        "fsync/write EIO",
        "sealed damage",
        "torn tail",
        "parsers",
    ] {
        assert!(
            stdout.contains(&format!("| {row}")),
            "row {row} missing:\n{stdout}"
        );
    }
}
