#!/bin/sh
# train_split.sh - where a vqgan-tiny training step (batch B) goes, in step
# mode and stream mode: process start and weight loading, stream I/O and
# compression, compute. Called by bench/run.sh; prints markdown.
#   train_split.sh BENCH_BIN DATA.tz STEPS B
set -eu
BB=$1 DATA=$2 N=$3 B=$4
PATH="$(pwd)/bin:$PATH"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", 1000 * (b - a) / n }'; }
for m in encode vq decode; do $m --init -w "$W/$m.st" --arch vqgan-tiny --seed 1 2>/dev/null; done
tz head -n 8 "$DATA" 2>/dev/null | tz batch "$B" 2>/dev/null | tz head -n "$N" -o "$W/data.tz" 2>/dev/null

# process start + weight loading: each tool on an empty stream, as many
# times as a step-mode step starts it (3 forward, 1 loss, 3 backward, 3 optim)
: > "$W/empty.tz"
t0=$(now)
for i in 1 2 3 4 5; do
    for m in encode vq decode; do $m -w "$W/$m.st" < "$W/empty.tz" > /dev/null; done
    loss mse < "$W/empty.tz" > /dev/null
    for m in encode vq decode; do $m -w "$W/$m.st" --backward "$W/empty.tz" -g "$W/$m.g0" < "$W/empty.tz" > /dev/null; done
    for m in encode vq decode; do optim -w "$W/$m.st" -g "$W/$m.g0" -s "$W/$m.s0" --lr 0 > /dev/null 2>&1 || true; done
done
t1=$(now)
starts=$(ms "$t0" "$t1" 5)
for m in encode vq decode; do $m --init -w "$W/$m.st" --arch vqgan-tiny --seed 1 2>/dev/null; rm -f "$W/$m.s0"; done

# step mode
cp "$W/encode.st" "$W/e0.st"; cp "$W/vq.st" "$W/v0.st"; cp "$W/decode.st" "$W/d0.st"
t0=$(now)
i=0
while [ $i -lt "$N" ]; do
    tz slice $i:$((i + 1)) "$W/data.tz" > "$W/in.tz"
    encode -w "$W/encode.st" --training < "$W/in.tz" > "$W/lat.tz"
    vq -w "$W/vq.st" --training < "$W/lat.tz" > "$W/q.tz"
    decode -w "$W/decode.st" --training < "$W/q.tz" > "$W/out.tz"
    loss mse < "$W/out.tz" > "$W/g.tz"
    decode -w "$W/decode.st" --backward "$W/q.tz" -g "$W/d.g" < "$W/g.tz" > "$W/qg.tz"
    vq -w "$W/vq.st" --backward "$W/lat.tz" -g "$W/v.g" < "$W/qg.tz" > "$W/lg.tz"
    encode -w "$W/encode.st" --backward "$W/in.tz" -g "$W/e.g" < "$W/lg.tz" > /dev/null
    optim -w "$W/encode.st" -g "$W/e.g" -s "$W/e.s" > /dev/null
    optim -w "$W/vq.st" -g "$W/v.g" -s "$W/v.s" > /dev/null
    optim -w "$W/decode.st" -g "$W/d.g" -s "$W/d.s" > /dev/null
    i=$((i + 1))
done
t1=$(now)
step=$(ms "$t0" "$t1" "$N")

# stream mode: the marginal cost of a step inside a run of N+4 steps, from
# the loss stage's log (its records 3 to N+3), so that the once-per-run
# process starts and first-step allocations, measured above, are not folded
# into the per-step figure (as bench_train leaves out its warm-up step). The
# machine is a VM whose timings vary by 20-30% run to run: in-process and
# stream runs alternate, REPS times, and the medians are compared.
stream_ms() { # steps -> ms per step over the last steps-3
    cp "$W/e0.st" "$W/encode.st"; cp "$W/v0.st" "$W/vq.st"; cp "$W/d0.st" "$W/decode.st"
    rm -f "$W/ga" "$W/gb" "$W/gc" "$W/loss.tsv"; mkfifo "$W/ga" "$W/gb" "$W/gc"
    tz head -n "$1" "$W/data.tz" > "$W/part.tz"
    encode -w "$W/encode.st" --train --grad-in "$W/gc" < "$W/part.tz" |
        vq -w "$W/vq.st" --train --grad-in "$W/gb" --grad-out "$W/gc" |
        decode -w "$W/decode.st" --train --grad-in "$W/ga" --grad-out "$W/gb" |
        loss mse --log "$W/loss.tsv" > "$W/ga"
    sh bench/log_ms.sh "$W/loss.tsv" 3
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
REPS=${BENCH_REPS:-3}
tz head -n 8 "$DATA" 2>/dev/null | tz batch "$B" 2>/dev/null | tz head -n $((N + 5)) -o "$W/data.tz" 2>/dev/null
: > "$W/inproc"; : > "$W/stream"
r=0
while [ $r -lt "$REPS" ]; do
    "$BB/bench_train" "$DATA" "$N" "$B" 1 | sed -n 's/^ms_per_step //p' >> "$W/inproc"
    stream_ms $((N + 4)) >> "$W/stream"
    r=$((r + 1))
done
compute=$(median < "$W/inproc")
stream=$(median < "$W/stream")
spread_c=$(sort -n "$W/inproc" | tr '\n' ' ')
spread_s=$(sort -n "$W/stream" | tr '\n' ' ')

echo "| mode | ms per step | compute (in-process) | the rest | share of the rest |"
echo "|---|---|---|---|---|"
awk -v c="$compute" -v s="$step" -v t="$stream" -v p="$starts" 'BEGIN {
    printf "| in-process (lib/chain.c) | %.1f | %.1f | 0 | 0%% |\n", c, c
    printf "| step mode (10 processes per step) | %.1f | %.1f | %.1f | %.0f%% |\n", s, c, s - c, 100 * (s - c) / s
    printf "| stream mode (4 processes per run) | %.1f | %.1f | %.1f | %.0f%% |\n", t, c, t - c, 100 * (t - c) / t
    printf "\nIn step mode, starting the 10 processes of a step and loading their weights\n"
    printf "(measured on empty streams) costs %.1f ms of the %.1f ms: %.0f%%. In stream mode the\n", p, s, 100 * p / s
    printf "processes start once per run; what is left over compute is stream I/O, zstd and\n"
    printf "waiting between stages.\n" }'
echo
echo "In-process and stream mode alternated $REPS times; medians above. In-process ms per step,"
echo "sorted: $spread_c; stream mode (marginal ms per step): $spread_s."
