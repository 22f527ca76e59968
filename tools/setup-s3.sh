#!/usr/bin/env bash
# Installs the S3-compatible server the object-storage tests (tests/ship_bucket.rs) run for real:
# `s3s-fs` from crates.io (an S3 server keeping objects as files), built once with
# `cargo install --locked` into ${OTSD_CACHE:-$HOME/.cache/otsd}/s3s-fs-<version>/ and reused.
# 0.14.1 is the newest release that builds with the project's Rust (1.95; 0.17 needs 1.96).
#
# Usage:  eval "$(tools/setup-s3.sh)"      stdout: `S3S_FS=...` only; progress on stderr.
set -euo pipefail

S3S_FS_VERSION=0.14.1
cache=${OTSD_CACHE:-$HOME/.cache/otsd}/s3s-fs-$S3S_FS_VERSION
bin=$cache/bin/s3s-fs
if [[ ! -x $bin || ! -e $cache/.complete ]]; then
  echo "setup-s3: building s3s-fs $S3S_FS_VERSION into $cache (once)" >&2
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  CARGO_TARGET_DIR=$build cargo install s3s-fs --version "$S3S_FS_VERSION" --locked \
    --features binary --root "$cache" >&2
  touch "$cache/.complete"
fi
echo "S3S_FS=$bin"
