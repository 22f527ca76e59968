//! The command lines of `otsd` and `otsctl`: `--help` works, and out-of-range flag values are refused
//! by the parser with a message naming the flag and the accepted range (never clamped silently).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
use std::process::{Command, Output};

use clap::Parser;
use otsd::cli::{OtsctlArgs, OtsdArgs};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"))
}

/// The parser's message for `otsd ARGS`, which must be refused.
fn otsd_refusal(args: &[&str]) -> String {
    let argv = std::iter::once("otsd").chain(args.iter().copied());
    match OtsdArgs::try_parse_from(argv) {
        Ok(parsed) => panic!("otsd {args:?} was accepted: {parsed:?}"),
        Err(e) => e.to_string(),
    }
}

fn otsctl_refusal(args: &[&str]) -> String {
    let argv = std::iter::once("otsctl").chain(args.iter().copied());
    match OtsctlArgs::try_parse_from(argv) {
        Ok(parsed) => panic!("otsctl {args:?} was accepted: {parsed:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

#[test]
fn both_command_definitions_pass_clap_s_own_checks() {
    use clap::CommandFactory;
    OtsdArgs::command().debug_assert();
    OtsctlArgs::command().debug_assert();
}

#[test]
fn otsd_help_lists_flags_with_their_defaults() {
    let out = run(env!("CARGO_BIN_EXE_otsd"), &["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "otsd --help failed: {help}");
    assert_mentions(
        &help,
        &[
            "--btc-testnet",
            "--btc-regtest",
            "--btc-rpc <URL>",
            "without it the node is found as the Python otsd finds it",
            "~/.bitcoin/bitcoin.conf",
            "--intake-only",
            "--max-pending <N>",
            "[default: 100000]",
            "--max-queued-digests <N>",
            "--debug-file <FILE>",
            "--debug-file-max-size <BYTES>",
            "[default: 10000000]",
            "--debug-file-backup-count <N>",
            "[default: 10]",
            "--debug-file-gmtime",
            "--lightning-invoice-file <FILE>",
            "--explorer-url <URL>",
            "[default: https://mempool.space]",
            "--btc-rpc-cookie <FILE>",
            "--btc-min-relay-feerate <FEERATE>",
            "[default: 1]",
            "--btc-max-fee <FEE>",
            "[default: 0.001]",
            "[default: 14788]",
            "[default: 16384]",
            "[default: 16]",
            "[default: 1008]",
            "[default: 21600]",
            "--btc-min-confirmations <N>",
            "[default: 6]",
        ],
    );
}

#[test]
fn otsctl_help_and_subcommand_help_work() {
    let out = run(env!("CARGO_BIN_EXE_otsctl"), &["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "otsctl --help failed: {help}");
    assert_mentions(
        &help,
        &["verify", "inspect", "replay", "recover", "prove-head"],
    );

    let out = run(env!("CARGO_BIN_EXE_otsctl"), &["verify", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "otsctl verify --help failed: {help}");
    assert_mentions(
        &help,
        &[
            "--from <SEQ>",
            "the log is still read from its start",
            "--to <SEQ>",
            "also check that every confirmation",
            "--btc-rpc-cookie <FILE>",
        ],
    );

    let out = run(env!("CARGO_BIN_EXE_otsctl"), &["address", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "otsctl address --help failed: {help}");
    assert_mentions(
        &help,
        &["Show the testnet address", "Show the regtest address"],
    );

    let out = run(env!("CARGO_BIN_EXE_otsctl"), &["replay", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "otsctl replay --help failed: {help}");
    assert_mentions(&help, &["otsd's --btc-min-confirmations", "[default: 6]"]);
}

#[test]
fn an_invalid_value_stops_the_binary_with_status_2_before_anything_starts() {
    let out = run(
        env!("CARGO_BIN_EXE_otsd"),
        &["-c", "/nonexistent/calendar", "--segment-size-mib", "0"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_mentions(&stderr, &["--segment-size-mib", "0 is not in 1..="]);
}

#[test]
fn zero_and_huge_sizes_and_limits_are_refused() {
    assert_mentions(
        &otsd_refusal(&["--segment-size-mib", "0"]),
        &["--segment-size-mib <MIB>", "0 is not in 1..=1048576"],
    );
    assert_mentions(
        &otsd_refusal(&["--segment-size-mib", "18446744073709551615"]),
        &["--segment-size-mib <MIB>", "is not in 1..=1048576"],
    );
    assert_mentions(
        &otsd_refusal(&["--max-connections", "0"]),
        &["--max-connections <N>", "0 is not in 1..=1000000"],
    );
    assert_mentions(
        &otsd_refusal(&["--max-queued-digests", "0"]),
        &["--max-queued-digests <N>", "0 is not in 1..=10000000"],
    );
    assert_mentions(
        &otsd_refusal(&["--max-pending", "0"]),
        &["--max-pending <N>", "0 is not in 1..=100000000"],
    );
    assert_mentions(
        &otsd_refusal(&["--debug-file-backup-count", "10001"]),
        &["--debug-file-backup-count <N>", "10001 is not in 0..=10000"],
    );
    assert_mentions(
        &otsd_refusal(&["--header-timeout", "0"]),
        &["--header-timeout <SECONDS>", "0 is not in 1..=3600"],
    );
    assert_mentions(
        &otsd_refusal(&["--btc-rpc-timeout", "0"]),
        &["--btc-rpc-timeout <SECONDS>", "0 is not in 1..=86400"],
    );
}

#[test]
fn too_short_intervals_are_refused_rather_than_raised() {
    assert_mentions(
        &otsd_refusal(&["--btc-poll-interval-ms", "9"]),
        &["--btc-poll-interval-ms <MS>", "9 is not in 10..=3600000"],
    );
    assert_mentions(
        &otsd_refusal(&["--dev", "--dev-block-interval-ms", "99"]),
        &["--dev-block-interval-ms <MS>", "99 is not in 100..=3600000"],
    );
    assert_mentions(
        &otsd_refusal(&["--min-round-interval-ms", "3600001"]),
        &[
            "--min-round-interval-ms <MS>",
            "3600001 is not in 0..=3600000",
        ],
    );
    assert_mentions(
        &otsd_refusal(&["--btc-min-tx-interval", "18446744073709551615"]),
        &["--btc-min-tx-interval <SECONDS>", "is not in 0..=31536000"],
    );
}

#[test]
fn negative_and_non_numeric_fees_are_refused() {
    assert_mentions(
        &otsd_refusal(&["--btc-max-fee=-0.1"]),
        &["--btc-max-fee <FEE>", "-0.1 is not in 0..=21000000 BTC"],
    );
    assert_mentions(
        &otsd_refusal(&["--btc-max-fee", "NaN"]),
        &["--btc-max-fee <FEE>", "NaN is not in 0..=21000000 BTC"],
    );
    assert_mentions(
        &otsd_refusal(&["--btc-min-relay-feerate=-1"]),
        &[
            "--btc-min-relay-feerate <FEERATE>",
            "-1 is not in 0..=1000000 sat/vB",
        ],
    );
    assert_mentions(
        &otsd_refusal(&["--btc-min-relay-feerate", "cheap"]),
        &[
            "--btc-min-relay-feerate <FEERATE>",
            "\"cheap\" is not a number of sat/vB",
        ],
    );
}

#[test]
fn confirmation_flags_are_refused_out_of_range_in_both_binaries() {
    assert_mentions(
        &otsd_refusal(&["--btc-min-confirmations", "1"]),
        &["--btc-min-confirmations <N>", "1 is not in 2.."],
    );
    assert_mentions(
        &otsctl_refusal(&["replay", "DIR", "--btc-min-confirmations", "1"]),
        &["--btc-min-confirmations <N>", "1 is not in 2.."],
    );
    assert_mentions(
        &otsd_refusal(&["--btc-conf-target", "1009"]),
        &["--btc-conf-target <N>", "1009 is not in 1..=1008"],
    );
}

#[test]
fn shared_groups_keep_their_rules_in_both_binaries() {
    let both_networks = ["--btc-testnet", "--btc-regtest"];
    assert_mentions(
        &otsd_refusal(&both_networks),
        &["--btc-testnet", "cannot be used with", "--btc-regtest"],
    );
    let address: Vec<&str> = ["address", "DIR"]
        .into_iter()
        .chain(both_networks)
        .collect();
    assert_mentions(
        &otsctl_refusal(&address),
        &["--btc-testnet", "cannot be used with", "--btc-regtest"],
    );
    assert_mentions(
        &otsd_refusal(&["--intake-only", "--btc-rpc", "http://127.0.0.1:1/"]),
        &["--intake-only", "cannot be used with", "--btc-rpc <URL>"],
    );
    assert_mentions(
        &otsd_refusal(&["--btc-rpc-cookie", "/cookie"]),
        &["--btc-rpc <URL>", "required"],
    );
    assert_mentions(
        &otsctl_refusal(&["verify", "DIR", "--btc-rpc-cookie", "/cookie"]),
        &["--btc-rpc <URL>", "required"],
    );
    assert_mentions(
        &otsctl_refusal(&["inspect", "DIR", "--from=-1"]),
        &["--from <SEQ>", "invalid digit"],
    );
}

#[test]
fn valid_values_at_the_edges_of_their_ranges_are_accepted() {
    let args = OtsdArgs::try_parse_from([
        "otsd",
        "--segment-size-mib",
        "1",
        "--max-connections",
        "1",
        "--max-pending",
        "1",
        "--max-queued-digests",
        "1",
        "--debug-file-max-size",
        "0",
        "--debug-file-backup-count",
        "0",
        "--header-timeout",
        "1",
        "--btc-poll-interval-ms",
        "10",
        "--btc-max-fee",
        "0",
        "--btc-min-relay-feerate",
        "0",
        "--btc-min-confirmations",
        "2",
    ])
    .expect("values at the lower edges are valid");
    assert_eq!(args.segment_size_mib, 1);
    assert_eq!(args.btc_max_fee.sat, 0);
    assert_eq!(args.btc_min_relay_feerate.sat_per_kvb, 0);
}

#[test]
fn a_repeated_otsd_flag_is_no_error_and_the_last_one_wins_as_with_python_argparse() {
    let args = OtsdArgs::try_parse_from([
        "otsd",
        "--rpc-port",
        "1",
        "--rpc-port",
        "2",
        "--btc-regtest",
        "--btc-regtest",
        "--max-pending",
        "5",
        "--max-pending",
        "7",
    ])
    .expect("repeated flags are accepted");
    assert_eq!(args.rpc_port, 2);
    assert!(args.network.btc_regtest);
    assert_eq!(args.max_pending, 7);
}
