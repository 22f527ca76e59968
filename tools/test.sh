#!/usr/bin/env bash
# The project's test command (README.md, .ci/run). Works on a fresh Debian machine:
#   1. builds (once, cached by version) bitcoind + bitcoin-cli from the Bitcoin Core source in the
#      crates.io package libbitcoinkernel-sys, for the tests that run a real regtest node;
#   2. installs the real OpenTimestamps clients (PyPI opentimestamps-client and opentimestamps,
#      npm javascript-opentimestamps) into a cache;
#   3. runs the whole Rust test suite, which drives those clients and that node.
# Before all that, the lint gate: `cargo fmt --check` and clippy with warnings as errors (the lint
# levels are in Cargo.toml [lints] and clippy.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

bin_dir=$(tools/build-bitcoind.sh)
export BITCOIND="$bin_dir/bitcoind" BITCOIN_CLI="$bin_dir/bitcoin-cli"
eval "$(tools/setup-clients.sh)"
export OTS_BIN OTS_PYTHON OTS_JS_DIR

# cargo's last "test result" line is the (empty) doc-test run; close with the whole count instead.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
