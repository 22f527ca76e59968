#!/usr/bin/env bash
# Benchmarks a fresh calendar on this machine and prints a table of figures.
#
#   tools/bench-calendar.sh [--duration SECONDS] [--port PORT] [--ten-million] [--keep] [--no-build]
#
# Builds release binaries (with --no-build, takes those in target/release as they are), copies them
# aside (so a concurrent build cannot swap them mid-run), creates a calendar in a temporary
# directory, starts otsd on loopback and runs, each for --duration seconds (default 10):
#   1. otsd-loadgen, concurrency 1, keep-alive        (latency p50/p99; then 1000 GET /timestamp)
#   2. otsd-loadgen, concurrency 256, keep-alive      (then 1000 GET /timestamp)
#   3. otsd-loadgen, concurrency 256, a new connection per request
#   4. wrk -t2 -c256 with tools/wrk-digest.lua        (installs wrk with apt-get if missing)
# and with --ten-million, 10M verified digests at concurrency 256. For each run it reports digests
# per round (= digests per fsync) from the info page, and otsd's RSS before and after. otsd gets
# SIGTERM at the end. The load generators share the machine with otsd: figures are for both.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10
port=14799
ten_million=0
keep=0
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --ten-million) ten_million=1; shift ;;
        --keep) keep=1; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

uri="http://127.0.0.1:$port"
donation=bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080

install_wrk() {
    command -v wrk >/dev/null && return
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing wrk" >&2
    $sudo apt-get install -y wrk >/dev/null 2>&1 ||
        { $sudo apt-get update >/dev/null && $sudo apt-get install -y wrk >/dev/null; }
}

install_wrk
if [ "$build" -eq 1 ]; then
    cargo build --release --bin otsd --bin otsctl --bin otsd-loadgen >&2
fi

work=$(mktemp -d /tmp/otsd-bench.XXXXXX)
bin="$work/bin"
mkdir "$bin"
cp target/release/otsd target/release/otsctl target/release/otsd-loadgen "$bin/"
otsd_pid=""
cleanup() {
    if [ -n "$otsd_pid" ] && kill -0 "$otsd_pid" 2>/dev/null; then
        kill -TERM "$otsd_pid"
        wait "$otsd_pid" || echo "otsd exited with status $?" >&2
    fi
    if [ "$keep" -eq 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

"$bin/otsctl" init "$work/cal" --uri "$uri" --donation-addr "$donation" >&2
"$bin/otsd" -c "$work/cal" --rpc-address 127.0.0.1 --rpc-port "$port" --btc-regtest --intake-only \
    >"$work/otsd.log" 2>&1 &
otsd_pid=$!

info_field() { # info_field NAME: a numeric field of the info page JSON
    curl -s -H 'Accept: application/json' "$uri/" |
        grep -o "\"$1\": *[0-9]*" | grep -o '[0-9]*$'
}
rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$otsd_pid/status"; }
summary_field() { # summary_field FILE KEY [NTH summary line]
    grep '^summary' "$1" | sed -n "${3:-1}p" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
ms() { awk -v us="${1:-0}" 'BEGIN { printf "%.2f", us / 1000 }'; }

for _ in $(seq 100); do
    info_field digests_total >/dev/null 2>&1 && break
    kill -0 "$otsd_pid" 2>/dev/null || { cat "$work/otsd.log" >&2; exit 1; }
    sleep 0.1
done

rows=()
failed=0
# run NAME COMMAND...: runs one load, prints its output, appends a table row.
run() {
    local name="$1"; shift
    local out="$work/$name.out" d0 r0 d1 r1 rc=0
    d0=$(info_field digests_total); r0=$(info_field rounds_total)
    echo "== $name: $*"
    "$@" >"$out" 2>&1 || rc=$?
    cat "$out"
    d1=$(info_field digests_total); r1=$(info_field rounds_total)
    [ "$rc" -eq 0 ] || failed=1
    local per_round
    per_round=$(awk -v d=$((d1 - d0)) -v r=$((r1 - r0)) 'BEGIN { printf "%.1f", r ? d / r : 0 }')
    local rate p50 p99 p999 max errors
    rate=$(summary_field "$out" rate); p50=$(summary_field "$out" p50_us)
    p99=$(summary_field "$out" p99_us); p999=$(summary_field "$out" p999_us)
    max=$(summary_field "$out" max_us); errors=$(summary_field "$out" errors)
    rows+=("$(printf '%-22s %10s %8s %8s %8s %8s %7s %8s %6s' "$name" "$rate" "$(ms "$p50")" \
        "$(ms "$p99")" "${p999:+$(ms "$p999")}" "$(ms "$max")" "$errors" "$per_round" "$rc")")
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" \
    "$( [ -r /proc/pressure/cpu ] && head -1 /proc/pressure/cpu)"
rss_start=$(rss_mib)
loadgen=("$bin/otsd-loadgen" --target "127.0.0.1:$port" --uri "$uri" --duration "$duration")
run c1-keepalive "${loadgen[@]}" --concurrency 1 --timestamp-check 1000
run c256-keepalive "${loadgen[@]}" --concurrency 256 --timestamp-check 1000
run c256-new-conn "${loadgen[@]}" --concurrency 256 --new-connection
run wrk-c256-t2 wrk -t2 -c256 -d"${duration}s" -s tools/wrk-digest.lua "$uri"
rss_after=$(rss_mib)
if [ "$ten_million" -eq 1 ]; then
    run 10M-c256-keepalive "$bin/otsd-loadgen" --target "127.0.0.1:$port" --uri "$uri" \
        --concurrency 256 --requests 10000000 --duration 3600
fi
rss_end=$(rss_mib)

echo
echo "== figures (ms; rate in acknowledged digests/s; per-round = digests per fsync)"
printf '%-22s %10s %8s %8s %8s %8s %7s %8s %6s\n' run rate p50 p99 p99.9 max errors \
    per-round exit
printf '%s\n' "${rows[@]}"
echo "otsd RSS: ${rss_start} MiB at start, ${rss_after} MiB after the ${duration} s runs," \
    "${rss_end} MiB at the end ($(info_field digests_total) digests in $(info_field rounds_total) rounds)"
echo "machine after: load average $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$failed"
