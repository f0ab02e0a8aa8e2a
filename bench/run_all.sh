#!/bin/sh
# Every figure of docs/PERFORMANCE.md, one run each, one after the other (about 10 minutes, most of it
# the 1M-recipient run). Output goes to ${OUT:-bench-results}/<name>.txt; each script prints a
# SUMMARY line. Run from the repository root with the venv's python:  sh bench/run_all.sh
set -u
PY=${PYTHON:-python}
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
run() {
    name=$1; shift
    echo "== $name: $*"
    "$PY" "$@" > "$OUT/$name.txt" 2>&1
    echo "   exit $? -> $OUT/$name.txt"
    grep '^SUMMARY' "$OUT/$name.txt" || tail -5 "$OUT/$name.txt"
}
run cli_start            bench/cli_start.py --runs 15
run lateness             bench/lateness.py --messages 500 --window 60
run lateness_big         bench/lateness.py --messages 500 --window 60 --big 100000
run throughput_100k      bench/dispatch_throughput.py --recipients 100000
run throughput_100k_thread bench/dispatch_throughput.py --recipients 100000 --fake thread --no-db-floor
run throughput_latency   bench/dispatch_throughput.py --recipients 100000 --latency 150ms --concurrency 8 --no-db-floor
run peer_apprise         bench/peer_apprise.py --recipients 10000
run fault_drills         bench/fault_drills.py --recipients 100000 --kills 10 --fault-recipients 100000
run throughput_1m        bench/dispatch_throughput.py --recipients 1000000
run throughput_1m_k8     bench/dispatch_throughput.py --recipients 1000000 --latency 150ms --concurrency 8 --no-db-floor --no-sequential-floor
run throughput_1m_k8_shuffled bench/dispatch_throughput.py --recipients 1000000 --latency 150ms --concurrency 8 --no-db-floor --no-sequential-floor --shuffled
