#!/usr/bin/env bash
# Builds bitcoind and bitcoin-cli from the Bitcoin Core source that ships inside the crates.io package
# libbitcoinkernel-sys, caches them by package version, and prints the directory that holds them.
#
#   tools/build-bitcoind.sh            # build if needed, print the bin directory on stdout
#
# Progress goes to stderr. The cache lives under ${OTSD_CACHE:-~/.cache/otsd}; a second run is instant.
set -euo pipefail

# Everything runs inside main, so bash has parsed the whole file before it starts building.
main() {

KERNEL_SYS_VERSION=0.4.1
cache_root=${OTSD_CACHE:-"$HOME/.cache/otsd"}
bin_dir="$cache_root/bitcoin-core-kernel-sys-$KERNEL_SYS_VERSION/bin"

say() { echo "build-bitcoind: $*" >&2; }

if [[ -x "$bin_dir/bitcoind" && -x "$bin_dir/bitcoin-cli" ]]; then
  echo "$bin_dir"
  exit 0
fi

need_pkgs=()
for p in cmake libboost-dev libevent-dev pkg-config g++ make; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  say "installing build dependencies: ${need_pkgs[*]}"
  sudo_cmd=""
  [[ $(id -u) -eq 0 ]] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_pkgs[@]}" >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y "${need_pkgs[@]}" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say "fetching libbitcoinkernel-sys $KERNEL_SYS_VERSION source through cargo"
mkdir -p "$work/fetch/src"
cat >"$work/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-bitcoin-core"
version = "0.0.0"
edition = "2021"
[dependencies]
libbitcoinkernel-sys = "=$KERNEL_SYS_VERSION"
TOML
touch "$work/fetch/src/lib.rs"
cargo fetch --manifest-path "$work/fetch/Cargo.toml" >&2
src=$(cargo metadata --manifest-path "$work/fetch/Cargo.toml" --format-version 1 \
  | python3 -c 'import json,sys
m=json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="libbitcoinkernel-sys"))')
src="$(dirname "$src")/bitcoin"
[[ -f "$src/CMakeLists.txt" ]] || { say "no Bitcoin Core source at $src"; exit 1; }

jobs=$(nproc)
say "configuring Bitcoin Core from $src"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_DAEMON=ON -DBUILD_CLI=ON -DENABLE_WALLET=OFF -DWITH_EMBEDDED_ASMAP=OFF \
  -DBUILD_TESTS=OFF -DBUILD_BENCH=OFF -DBUILD_FUZZ_BINARY=OFF -DBUILD_KERNEL_LIB=OFF \
  -DBUILD_TX=OFF -DBUILD_UTIL=OFF -DBUILD_WALLET_TOOL=OFF -DENABLE_IPC=OFF -DWITH_ZMQ=OFF \
  -DBUILD_GUI=OFF >"$work/configure.log" 2>&1 || { cat "$work/configure.log" >&2; exit 1; }

say "building bitcoind and bitcoin-cli with $jobs jobs (about 7 minutes on 2 cores)"
cmake --build "$work/build" -j "$jobs" --target bitcoind bitcoin-cli 2>&1 \
  | grep --line-buffered -E '^\[ *[0-9]+%\]' | awk 'NR % 25 == 1 { print; fflush() }' >&2
[[ -x "$work/build/bin/bitcoind" ]] || { say "build failed"; exit 1; }

mkdir -p "$bin_dir.tmp"
cp "$work/build/bin/bitcoind" "$work/build/bin/bitcoin-cli" "$bin_dir.tmp/"
rm -rf "$bin_dir" && mv "$bin_dir.tmp" "$bin_dir"
say "installed $("$bin_dir/bitcoind" -version | head -1) in $bin_dir"
echo "$bin_dir"
}

main "$@"
