#!/bin/sh
# record_drift.sh - does a reader's resident memory stay flat when record
# sizes drift? `loss ce` over N records of bench/record_drift.c (TiTok stage
# 1's shapes, the metadata one byte longer at steps 10, 100, 1000), its RSS
# read every 0.2 s. Prints "rss_kb first last max" and the growth after the
# first 10% of the run. A heap that takes each new longest record at its
# exact size grows by a record's size at some of them (soak.md).
#   sh bench/record_drift.sh [N]   (1200; BENCH_BIN: build/bench)
set -eu
cd "$(dirname "$0")/.."
N=${1:-1200}
B=${BENCH_BIN:-build/bench}
export OMP_WAIT_POLICY=passive
W=$(mktemp -d /tmp/drift.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkfifo "$W/in"
"$B/record_drift" "$N" > "$W/in" &
bin/loss ce -j 2 -i "$W/in" > /dev/null &
pid=$!
while kill -0 $pid 2>/dev/null; do
    awk '/^VmRSS/ { print $2 }' /proc/$pid/status 2>/dev/null || true
    sleep 0.2
done > "$W/rss"
wait
awk '{ r[NR] = $1; if ($1 > mx) mx = $1 }
     END { a = r[int(NR / 10) + 1]
           printf "rss_kb first %d last %d max %d; after 10%% of the run %d, growth since %+d KB (%d samples)\n",
               r[1], r[NR], mx, a, r[NR] - a, NR }' "$W/rss"
