#!/usr/bin/env bash
# The project's test command (README.md, .ci/run). Works on a fresh Debian machine:
#   1. builds (once, cached by version) bitcoind + bitcoin-cli from the Bitcoin Core source in the
#      crates.io package libbitcoinkernel-sys, for the tests that run a real regtest node;
#   2. installs the real OpenTimestamps clients (PyPI opentimestamps-client and opentimestamps,
#      npm javascript-opentimestamps) into a cache;
#   3. installs Debian's nginx, chromium and systemd-analyze when missing (tools/setup-ops.sh), for
#      the tests of contrib/nginx, the info page in a real browser and contrib/systemd, and builds
#      the S3-compatible server s3s-fs once (tools/setup-s3.sh) for the object-storage tests;
#   4. runs the whole Rust test suite, which drives those clients, that node and those tools.
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
eval "$(tools/setup-ops.sh)"
export NGINX CHROMIUM SYSTEMD_ANALYZE
eval "$(tools/setup-s3.sh)"
export S3S_FS

# cargo's last "test result" line is the (empty) doc-test run; close with the whole count instead.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
