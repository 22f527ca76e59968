#!/usr/bin/env bash
# import-bench.sh: the `otsctl import-otsd` figure. Writes (once, kept) a synthetic Python otsd
# calendar with tools/pycal-gen.rs (journal + LevelDB in the documented row format, stamping
# transactions of 1000 commitments in blocks of 1000 transactions), then imports it into a fresh
# directory and prints the import report, whose last lines give commitments/s end to end (database
# copy, row table, journal walk with MAC checks, proof rebuild, log writes and fsyncs) and the row
# table's rows/s, then the CPU time and maximum RSS. On a shared machine, compare CPU seconds: the
# wall time depends on the other load. 10M commitments need about 2.2 GB for the Python calendar,
# 3.5 GB of row table (in memory when it fits in half of MemAvailable, else in WORKDIR) and 4 GB
# of log.
#
# Usage: tools/import-bench.sh [COMMITMENTS] [WORKDIR]   (defaults: 10000000, /tmp/otsd-import-bench)
# OTSCTL=path/to/otsctl runs another build (e.g. the one before a change, for a back-to-back figure).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000000}
work=${2:-/tmp/otsd-import-bench}
nice -n 10 cargo build --release --bin pycal-gen --bin otsctl >&2
otsctl=${OTSCTL:-target/release/otsctl}
mkdir -p "$work"
src="$work/python-$n"
if [[ ! -f "$src/.complete" ]]; then
  rm -rf "$src"
  target/release/pycal-gen --dir "$src" --commitments "$n" --pending 1000 --legacy 1000
  touch "$src/.complete"
fi
rm -rf "$work/otsd" "$work/otsd.import-tmp"
sync
echo "before: $(uptime)"
/usr/bin/time -v "$otsctl" import-otsd "$src" "$work/otsd" 2> "$work/time.txt" | tee "$work/report.txt"
echo "after: $(uptime)"
grep -E "Elapsed|Maximum resident|User time|System time|Percent of CPU" "$work/time.txt"
du -sh "$src/db" "$work/otsd/log"
