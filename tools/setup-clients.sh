#!/usr/bin/env bash
# setup-clients.sh - install the reference OpenTimestamps clients that otsd's
# interoperability tests drive, into a cache dir, idempotently.
#
# Usage:  eval "$(tools/setup-clients.sh)"
#
# Installs under ${OTSD_CACHE:-$HOME/.cache/otsd}/clients/:
#   py-<key>/  a Python virtualenv with
#       opentimestamps-client  - the `ots` command (stamp/info/upgrade/verify)
#       opentimestamps         - python-opentimestamps, used by
#                                tests/python/check_responses.py
#     and all their dependencies pinned (python-bitcoinlib, pycryptodomex,
#     GitPython, ...), so a new upstream release cannot break the tests.
#   js-<key>/  an npm project (tests/js/package.json + package-lock.json +
#     tests/js/fs-stub/) with javascript-opentimestamps 0.4.5 in node_modules,
#     used by tests/js/stamp.js and tests/js/info.js.
#
# Why package.json has npm "overrides": javascript-opentimestamps 0.4.5 does
# not install as published.
#   * It depends on "fs": "0.0.1-security", the registry's empty security
#     placeholder for the name "fs". It is replaced by tests/js/fs-stub, a
#     one-line local package (module.exports = require('node:fs')); node's
#     built-in fs is what the library actually uses.
#   * Through web3 0.18/0.20 it depends on bignumber.js as a git tarball,
#     which cannot be fetched here (only package registries are reachable)
#     and is not reproducible anyway. It is pinned to bignumber.js 2.4.0
#     from the registry, the release that fork was based on.
# npm runs with --ignore-scripts: the only install script is keccak's native
# build, which is optional (it falls back to pure JS).
#
# <key> is CLIENTS_VERSION below (plus the python version for the venv, and a
# hash of the tests/js manifests for the npm dir), so bumping a pin or editing
# tests/js/package*.json re-installs; a finished install is marked with
# .complete and is reused as is, so a second run takes well under a second.
#
# stdout: only `export` lines to eval:
#   OTS_BIN     the venv's `ots`
#   OTS_PYTHON  the venv's python (has python-opentimestamps)
#   OTS_JS_DIR  the dir whose node_modules has javascript-opentimestamps
# stderr: progress. Needs python3 (>= 3.8, with venv), node >= 18 and npm.
# Environment: OTSD_CACHE (cache root), PYTHON (interpreter, default python3).
set -euo pipefail

# Bump when any pin below changes.
CLIENTS_VERSION="2026-11-23.1"
PY_PINS=(
  opentimestamps-client==0.7.2
  opentimestamps==0.4.5
  python-bitcoinlib==0.12.2
  pycryptodomex==3.24.2
  GitPython==3.2.1
  gitdb==4.0.12
  smmap==5.0.3
  appdirs==1.4.4
  PySocks==1.7.1
)

log() { printf 'setup-clients: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JS_SRC="$ROOT/tests/js"
CACHE="${OTSD_CACHE:-$HOME/.cache/otsd}/clients"
PYTHON="${PYTHON:-python3}"
mkdir -p "$CACHE"

# Serialize concurrent runs (e.g. parallel test jobs) on the same cache.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.lock"
  flock 9
fi

# ---------------------------------------------------------------- python ---
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
PY_VER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 8))' \
  || die "python >= 3.8 needed, $PYTHON is $PY_VER"
PY_DIR="$CACHE/py-$CLIENTS_VERSION-py$PY_VER"

if [[ -f "$PY_DIR/.complete" ]]; then
  log "python clients: cached in $PY_DIR"
else
  log "python clients: installing into $PY_DIR"
  rm -rf "$PY_DIR"
  if ! "$PYTHON" -m venv "$PY_DIR" >&2; then
    # Debian's own python3 ships venv separately.
    rm -rf "$PY_DIR"
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      log "venv unavailable; installing python3-venv"
      apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
      "$PYTHON" -m venv "$PY_DIR" >&2
    else
      die "'$PYTHON -m venv' failed (install python3-venv)"
    fi
  fi
  "$PY_DIR/bin/python" -m pip install -q --disable-pip-version-check \
    --no-input "${PY_PINS[@]}" >&2
  "$PY_DIR/bin/ots" --version >/dev/null \
    || die "ots does not run in $PY_DIR"
  "$PY_DIR/bin/python" -c 'import opentimestamps.core.timestamp, bitcoin' \
    || die "python-opentimestamps does not import in $PY_DIR"
  touch "$PY_DIR/.complete"
fi

# ------------------------------------------------------- python peer otsd ---
# The Python calendar server (../shared/peers/opentimestamps-server) runs as a test peer
# (tests/python_import.rs): its own requirements, into the same venv. leveldb 0.201 is the
# binding the server imports; it builds from source with g++ (Python <= 3.11).
PEER_VERSION="2026-12-02.2"
PEER_PINS=(
  leveldb==0.201
  pystache==0.6.8
  simplejson==3.16.0
  qrcode==6.1
  requests==2.32.3
  pillow==10.4.0
)
if [[ -f "$PY_DIR/.complete-peer-$PEER_VERSION" ]]; then
  log "python peer otsd requirements: cached in $PY_DIR"
elif [[ $("$PYTHON" -c 'import sys; print(int(sys.version_info < (3, 12)))') == 1 ]]; then
  log "python peer otsd requirements: installing into $PY_DIR"
  if ! command -v g++ >/dev/null 2>&1 && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >&2 && apt-get install -y -qq g++ >&2
  fi
  "$PY_DIR/bin/python" -m pip install -q --disable-pip-version-check \
    --no-input "${PEER_PINS[@]}" >&2
  "$PY_DIR/bin/python" -c 'import leveldb, pystache, simplejson, qrcode, requests, PIL' \
    || die "the python peer otsd's requirements do not import in $PY_DIR"
  touch "$PY_DIR/.complete-peer-$PEER_VERSION"
else
  log "python peer otsd: needs python <= 3.11 for leveldb 0.201; the peer tests will fail"
fi

# -------------------------------------------------------------------- js ---
command -v node >/dev/null 2>&1 || die "node not found"
command -v npm >/dev/null 2>&1 || die "npm not found"
for f in package.json package-lock.json fs-stub/package.json fs-stub/index.js; do
  [[ -f "$JS_SRC/$f" ]] || die "missing $JS_SRC/$f"
done
JS_HASH=$(cd "$JS_SRC" && cat package.json package-lock.json fs-stub/package.json fs-stub/index.js \
  | sha256sum | cut -c1-12)
JS_DIR="$CACHE/js-$CLIENTS_VERSION-$JS_HASH"

if [[ -f "$JS_DIR/.complete" ]]; then
  log "javascript client: cached in $JS_DIR"
else
  log "javascript client: installing into $JS_DIR"
  rm -rf "$JS_DIR"
  mkdir -p "$JS_DIR/fs-stub"
  cp "$JS_SRC/package.json" "$JS_SRC/package-lock.json" "$JS_DIR/"
  cp "$JS_SRC/fs-stub/package.json" "$JS_SRC/fs-stub/index.js" "$JS_DIR/fs-stub/"
  (cd "$JS_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  (cd "$JS_DIR" && node --no-deprecation -e '
      const O = require("javascript-opentimestamps");
      for (const k of ["stamp", "info", "DetachedTimestampFile", "Ops", "Notary"])
        if (!O[k]) throw new Error("javascript-opentimestamps lacks " + k);
      const v = require("javascript-opentimestamps/package.json").version;
      if (v !== "0.4.5") throw new Error("javascript-opentimestamps is " + v);
    ') || die "javascript-opentimestamps does not load in $JS_DIR"
  touch "$JS_DIR/.complete"
fi

printf 'export OTS_BIN=%q\n' "$PY_DIR/bin/ots"
printf 'export OTS_PYTHON=%q\n' "$PY_DIR/bin/python"
printf 'export OTS_JS_DIR=%q\n' "$JS_DIR"
