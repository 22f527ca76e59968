#!/usr/bin/env bash
# Intake throughput of otsd with and without `--ship-to s3://...` (issue 12: shipping must not cost
# more than 10% of intake), against a real S3-compatible server (s3s-fs) on loopback.
#
#   tools/ship-bench.sh [--duration SECONDS] [--rounds N] [--concurrency C] [--bin-dir DIR]
#
# Takes otsd, otsctl and otsd-loadgen from --bin-dir (default target/release; build them first with
# `cargo build --release --bin otsd --bin otsctl --bin otsd-loadgen`) and s3s-fs from
# tools/setup-s3.sh. Each round runs otsd on a fresh calendar twice, without and with --ship-to
# (the order alternates between rounds, so a drift of the machine's load hits both alike), each
# under otsd-loadgen (keep-alive, --concurrency connections) for --duration seconds, and prints
# digests/s per run, the medians and the difference. The load generator shares the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=15
rounds=3
concurrency=64
bin_dir=target/release
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --concurrency) concurrency="$2"; shift 2 ;;
        --bin-dir) bin_dir="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
for b in otsd otsctl otsd-loadgen; do
    [ -x "$bin_dir/$b" ] || { echo "no $bin_dir/$b: build it first" >&2; exit 1; }
done
eval "$(tools/setup-s3.sh)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
s3_pid=""
otsd_pid=""
cleanup() {
    [ -n "$otsd_pid" ] && kill "$otsd_pid" 2>/dev/null || true
    [ -n "$s3_pid" ] && kill "$s3_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

s3_port=$(free_port)
mkdir -p "$work/s3/bench"
"$S3S_FS" --host 127.0.0.1 --port "$s3_port" --access-key bench --secret-key bench-secret \
    "$work/s3" >/dev/null 2>&1 &
s3_pid=$!
export AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" AWS_ACCESS_KEY_ID=bench \
    AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true

# thread_cpu PID: "SHIPPER_TICKS ALL_TICKS", CPU time of otsd's shipper thread and of all of otsd.
thread_cpu() {
    local t comm stat ship=0 all=0
    for t in /proc/"$1"/task/*; do
        comm=$(cat "$t/comm" 2>/dev/null) || continue
        stat=($(sed 's/.*) //' "$t/stat" 2>/dev/null)) || continue
        all=$((all + stat[11] + stat[12]))
        [ "$comm" = otsd-shipper ] && ship=$((ship + stat[11] + stat[12]))
    done
    echo "$ship $all"
}

# run MODE N: one otsd on a fresh calendar under load; prints digests/s.
run() {
    local mode=$1 n=$2 port cal extra=()
    port=$(free_port)
    cal="$work/cal-$mode-$n"
    "$bin_dir/otsctl" init "$cal" --uri "http://127.0.0.1:$port" \
        --donation-addr bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080 >/dev/null
    [ "$mode" = ship ] && extra=(--ship-to "s3://bench/run-$n")
    "$bin_dir/otsd" -c "$cal" --rpc-address 127.0.0.1 --rpc-port "$port" --btc-regtest -q \
        "${extra[@]}" 2>"$work/otsd-$mode-$n.log" &
    otsd_pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    "$bin_dir/otsd-loadgen" --target "127.0.0.1:$port" --concurrency "$concurrency" \
        --duration "$duration" | sed -n 's/.*summary.* rate=\([0-9]*\).*/\1/p'
    thread_cpu "$otsd_pid" >>"$work/cpu-$mode"
    kill -TERM "$otsd_pid"
    wait "$otsd_pid" || true
    otsd_pid=""
    if [ "$mode" = ship ] && grep -q "failed; retrying" "$work/otsd-$mode-$n.log"; then
        echo "shipping failed in run $n:" >&2
        cat "$work/otsd-$mode-$n.log" >&2
        exit 1
    fi
}

off=()
on=()
for n in $(seq "$rounds"); do
    if [ $((n % 2)) = 1 ]; then order="off ship"; else order="ship off"; fi
    for mode in $order; do
        rate=$(run "$mode" "$n")
        echo "round $n  $mode  $rate digests/s"
        if [ "$mode" = ship ]; then on+=("$rate"); else off+=("$rate"); fi
    done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m_off=$(median "${off[@]}")
m_on=$(median "${on[@]}")
echo "median without shipping: $m_off digests/s; with --ship-to: $m_on digests/s"
awk -v a="$m_off" -v b="$m_on" 'BEGIN { printf "difference: %+.1f%%\n", (b - a) * 100 / a }'
awk '{ s += $1; a += $2 } END { printf "shipper thread CPU: %.2f s of otsd'"'"'s %.2f s (%.1f%%) in the runs with --ship-to\n", s / 100, a / 100, s * 100 / a }' "$work/cpu-ship"
