#!/bin/sh
# train.sh - one stream-mode training run: tz feed | stages | loss, gradients
# back through FIFOs, checkpoints, resume. Every model's recipe calls it.
#
# Environment:
#   RUN         run directory: RUN/NAME.safetensors (+ .state, .ema), RUN/ckpt/,
#               RUN/log.tsv, RUN/loss.png
#   FEED        arguments of `tz feed` after -b/--steps/--seed (inputs, --rename ...)
#   PREFILTER   a command between the feed and the stages (optional; e.g. mask --train)
#   CHAIN       the stages in order, "TOOL:NAME" (trained) or "TOOL:NAME:frozen"
#               (forward only; frozen stages must come first). RUN/init/NAME.safetensors
#               must exist: the weights a fresh run starts from.
#   LOSS        arguments of `loss` (terms and options; a gan term gets the critic
#               files and checkpoints here)
#   STEPS BATCH SEED CKPT_EVERY THREADS BIN
#   OPT         optimizer flags of the trained stages (and of the critic)
#   TITLE       plot title
#   STAGE_WRAP  a command put before the feed, each stage, the loss and a
#               one-command PREFILTER (optional; valgrind ... in bench/soak.sh)
# A killed run resumes from the newest step all trained stages (and the critic)
# finished, and ends with the bits an uninterrupted run would have.
. "$(dirname "$0")/lib.sh"
PATH="$BIN:$PATH"
mkdir -p "$RUN/ckpt"
# the run directory as an absolute path in every command of the run, so that
# abort_run's pattern names this run's processes and no one else's (a
# relative RUN=run matched any command line containing "run/")
RUN=$(cd "$RUN" && pwd)
trained= frozen_done=
for s in $CHAIN; do
    name=$(echo "$s" | cut -d: -f2)
    case "$s" in *:frozen) [ -z "$trained" ] || { echo "train.sh: frozen $name after a trained stage" >&2; exit 2; } ;;
                 *) trained="$trained $name" ;; esac
done
case " $LOSS " in *" gan"*) ckstages="$trained loss" ;; *) ckstages=$trained ;; esac
# a run resumes only with the configuration it started with: the settings and
# the weights and data it starts from (a changed recipe, teacher or data set
# starts over)
config=$(printf '%s\n' "steps=$STEPS" "batch=$BATCH" "seed=$SEED" "feed=$FEED" "prefilter=${PREFILTER:-}" \
    "chain=$CHAIN" "loss=$LOSS" "opt=$OPT"; for s in $CHAIN; do cksum < "$RUN/init/$(echo "$s" | cut -d: -f2).safetensors"; done
    for f in $FEED; do [ ! -f "$f" ] || cksum < "$f"; done)
if [ -d "$RUN/ckpt" ] && [ "$(cat "$RUN/config" 2>/dev/null)" != "$config" ] && [ -n "$(ls "$RUN/ckpt")" ]; then
    echo "$(basename "$RUN"): the configuration changed: starting over"
    rm -rf "$RUN/ckpt"
fi
mkdir -p "$RUN/ckpt"
echo "$config" > "$RUN/config.tmp" && mv "$RUN/config.tmp" "$RUN/config"
S=$(resume_step "$RUN/ckpt" $ckstages)
if [ "$S" -eq 0 ]; then
    for n in $trained; do cp "$RUN/init/$n.safetensors" "$RUN/$n.safetensors"; done
    rm -f "$RUN/log.tsv" "$RUN"/*.state.safetensors "$RUN"/*.ema.safetensors "$RUN/disc.safetensors"
else
    echo "$(basename "$RUN"): resuming at step $S of $STEPS"
fi

# FIFO k carries the gradient of trained stage k's output (k = 1..)
ntr=$(echo $trained | wc -w)
k=0
for n in $trained; do k=$((k + 1)); fifos "$RUN" "g$k"; done
# A stage that fails takes the run down instead of leaving the others
# waiting: the processes of this run (their arguments name $RUN/) are
# stopped, and each gradient FIFO is held open for a moment, so that a stage
# blocked in opening one (its partner died first) gets through and sees the
# end of its stream.
abort_run() {
    touch "$RUN/.failed"
    pkill -TERM -f "$(printf '%s/' "$RUN" | sed 's/[][\\.*^$+?(){}|]/\\&/g')" 2>/dev/null || true
    for f in "$RUN"/g[0-9]*; do [ ! -p "$f" ] || release_fifo "$f" 2; done
}
rm -f "$RUN/.failed"
cmd="{ ${STAGE_WRAP:-} tz feed -b $BATCH --steps $STEPS --start-step $S --seed $SEED $FEED || abort_run; }"
case "${PREFILTER:-}" in
"") ;;
*"|"*) cmd="$cmd | { $PREFILTER || abort_run; }" ;;
*) cmd="$cmd | { ${STAGE_WRAP:-} $PREFILTER || abort_run; }" ;;
esac
k=0
for s in $CHAIN; do
    tool=$(echo "$s" | cut -d: -f1) name=$(echo "$s" | cut -d: -f2)
    case "$s" in
    *:frozen) cmd="$cmd | { ${STAGE_WRAP:-} $tool -w $RUN/init/$name.safetensors -j $THREADS || abort_run; }" ;;
    *)  k=$((k + 1))
        gout=; [ $k -gt 1 ] && gout="--grad-out $RUN/g$((k - 1))"
        cmd="$cmd | { ${STAGE_WRAP:-} $tool -w $RUN/$name.safetensors -s $RUN/$name.state.safetensors --ema $RUN/$name.ema.safetensors \
            --train -j $THREADS --ckpt-dir $RUN/ckpt/$name --ckpt-every $CKPT_EVERY --start-step $S $OPT \
            --grad-in $RUN/g$k $gout || abort_run; }" ;;
    esac
done
cmd="$cmd | { ${STAGE_WRAP:-} loss $LOSS --log $RUN/log.tsv --start-step $S --steps $STEPS --progress -j $THREADS \
    --disc $RUN/disc.safetensors --disc-state $RUN/disc.state.safetensors \
    --ckpt-dir $RUN/ckpt/loss --ckpt-every $CKPT_EVERY $OPT || abort_run; } > $RUN/g$ntr"
t0=$(date +%s)
eval "$cmd" || true
if [ -f "$RUN/.failed" ]; then
    rm -f "$RUN/.failed"
    echo "$(basename "$RUN"): a stage failed (its error is above); the run stopped" >&2
    exit 1
fi
t1=$(date +%s)
k=0
for n in $trained; do k=$((k + 1)); rm -f "$RUN/g$k"; done
# wall time of the training, added up over resumed runs
prev=0
[ "$S" -gt 0 ] && [ -f "$RUN/train-seconds" ] && prev=$(cat "$RUN/train-seconds")
echo "$((prev + t1 - t0))" > "$RUN/train-seconds"
plot_log "$RUN/log.tsv" "$RUN/loss.png" "${TITLE:-$(basename "$RUN")}"
