#!/bin/sh
# soak.sh - the long run of issue 8: the demo's training pipelines at FACTOR
# times their steps, the resident memory (RSS) of every process of the run
# sampled throughout (does it stay flat?), and a few steps of the same
# pipelines with every stage under valgrind's memcheck (leaks, invalid
# reads and writes, uninitialised values). Prints markdown for
# bench/reliability.md. `make soak` runs it.
#   sh bench/soak.sh [FACTOR [PIPELINE...]]  (10; vqgan maskgit-2d titok1 titok2 maskgit-1d)
# PIPELINE: vqgan (encode, vq, decode, loss with perceptual and GAN terms),
# titok1, titok2 (the TiTok stages), maskgit-1d, maskgit-2d (transformer,
# mask); each needs the VQGAN, and the TiTok and 1D MaskGIT ones the
# stages before them (the demo's chain): they run in the order given, and
# make trains what a pipeline needs if it has not run. Runs go to
# runs/*-soak (and *-memcheck, on the QUICK subsets); a second call resumes
# or reuses them.
# Environment: SOAK_PERIOD (seconds between RSS samples, 10), RSS=0 skips
# the long runs, MEMCHECK=0 the memcheck part, MEMCHECK_STEPS (3), DATA
# (fmnist).
set -eu
cd "$(dirname "$0")/.."
FACTOR=${1:-10}
[ $# -gt 0 ] && shift
PIPES=${*:-vqgan maskgit-2d titok1 titok2 maskgit-1d}
PERIOD=${SOAK_PERIOD:-10}
DATA=${DATA:-fmnist}
W=$(mktemp -d /tmp/soak.XXXXXX)
trap 'rm -rf "$W"' EXIT
say() { echo "soak: $*" >&2; }

# the make targets and step variables of each pipeline
target() {
    case $1 in
    vqgan) echo "vqgan VQGAN_STEPS" ;;
    titok1) echo "titok-stage1 TITOK1_STEPS" ;;
    titok2) echo "titok-stage2 TITOK2_STEPS" ;;
    maskgit-1d) echo "maskgit MASKGIT_STEPS TOKENS=1d" ;;
    maskgit-2d) echo "maskgit MASKGIT_STEPS TOKENS=2d" ;;
    *) echo "soak.sh: unknown pipeline '$1' (vqgan titok1 titok2 maskgit-1d maskgit-2d)" >&2; exit 2 ;;
    esac
}
# the demo's value of a make variable
demo_value() { make -s --no-print-directory DATA="$DATA" ${2:-} -f Makefile -f - soak-print <<EOF
soak-print: ; @echo \$($1)
EOF
}

# RSS of every process whose arguments name the run: "seconds pid rss_kb tool"
sample_rss() { # RUNDIR OUT: until the file $W/stop appears
    t0=$(date +%s)
    while [ ! -e "$W/stop" ]; do
        now=$(($(date +%s) - t0))
        ps -eo pid=,rss=,comm=,args= | awk -v t="$now" -v r="$1/" \
            'index($0, r) && $3 != "sh" && $3 != "make" && $3 != "ps" && $3 != "awk" && $3 != "pkill" { print t, $1, $2, $3 }' |
        while read -r t pid rss comm; do
            # the part of RSS in transparent huge pages: khugepaged collapsing
            # a buffer's small pages into 2 MiB ones raises RSS with no leak
            huge=$(awk '/^AnonHugePages:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null) || huge=
            echo "$t $pid $rss $comm ${huge:-0}"
        done >> "$2"
        sleep "$PERIOD"
    done
}

if [ "${RSS:-1}" != 0 ]; then
echo "### RSS over long runs ($FACTOR x the demo's steps)"
echo
echo "| pipeline | steps | seconds | process | RSS after 10% of the run (MB) | at the end (MB) | max (MB) | growth after 10% | of it, huge pages (MB) | growth without them | growth over the last fifth |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for p in $PIPES; do
    set -- $(target "$p")
    tgt=$1 var=$2 extra=${3:-}
    steps=$(( $(demo_value "$var" "$extra") * FACTOR ))
    suffix=$DATA-soak
    run=runs/$p-$suffix
    say "$p: $steps steps in $run (RSS every $PERIOD s)"
    rm -f "$W/stop"; : > "$W/rss"
    sample_rss "$run" "$W/rss" &
    sampler=$!
    t0=$(date +%s)
    make -s --no-print-directory DATA="$DATA" RUN_SUFFIX="$suffix" $extra \
        VQGAN_STEPS=$(( $(demo_value VQGAN_STEPS) * FACTOR )) \
        TITOK1_STEPS=$(( $(demo_value TITOK1_STEPS) * FACTOR )) \
        TITOK2_STEPS=$(( $(demo_value TITOK2_STEPS) * FACTOR )) \
        MASKGIT_STEPS=$steps "$tgt" >&2
    t1=$(date +%s)
    touch "$W/stop"; wait "$sampler"
    cp "$W/rss" "$run/rss-samples.txt" # seconds pid rss_kb tool huge_kb
    # per process (pid): the sample at 10% of its life, the last, the max
    awk -v p="$p" -v n="$steps" -v s=$((t1 - t0)) '
        { k = $2; if (!(k in first)) { first[k] = $1; tool[k] = $4 } last[k] = $1
          t[k, ++cnt[k]] = $1; r[k, cnt[k]] = $3; h[k, cnt[k]] = $5; if ($3 > mx[k]) mx[k] = $3 }
        END { for (k in cnt) { if (cnt[k] < 5) continue
                at = first[k] + (last[k] - first[k]) / 10
                for (i = 1; i <= cnt[k] && t[k, i] < at; i++) ; e = r[k, cnt[k]]; b = r[k, i]
                dh = h[k, cnt[k]] - h[k, i]
                # a stage that switches on later (the GAN at --gan-start, 75% of
                # the steps) grows once: the last fifth shows whether it keeps on
                fifth = first[k] + (last[k] - first[k]) * 4 / 5
                for (j = 1; j <= cnt[k] && t[k, j] < fifth; j++) ; m = r[k, j]
                printf "| %s | %d | %d | %s | %.1f | %.1f | %.1f | %+.1f%% | %+.1f | %+.1f%% | %+.1f%% |\n", p, n, s, tool[k],
                    b / 1024, e / 1024, mx[k] / 1024, 100 * (e - b) / b, dh / 1024, 100 * (e - b - dh) / b,
                    100 * (e - m) / m } }' "$W/rss" | sort
done
echo
echo "RSS sampled every $PERIOD s with ps(1) for each process whose arguments name the run"
echo "directory; processes that lived for fewer than 5 samples are left out. Huge pages:"
echo "AnonHugePages of /proc/PID/smaps_rollup (buffers of 2 MiB and more are advised onto"
echo "transparent huge pages, and khugepaged collapses their small pages over time)."
fi

[ "${MEMCHECK:-1}" = 0 ] && exit 0
echo
echo "### Memcheck: every stage of a few training steps under valgrind"
echo
VG="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect"
VG="$VG --error-exitcode=99 --log-file=$W/vg/%p.log"
mkdir -p "$W/vg"
n=${MEMCHECK_STEPS:-3}
echo "| pipeline | steps (batch 4, QUICK data) | processes checked | processes with errors |"
echo "|---|---|---|---|"
for p in $PIPES; do
    set -- $(target "$p")
    tgt=$1 extra=${3:-}
    rm -f "$W"/vg/*.log
    say "$p: $n steps under memcheck"
    # (the earlier pipelines of the chain ran under it already, in this order)
    STAGE_WRAP="$VG" make -s --no-print-directory DATA="$DATA" QUICK=1 RUN_SUFFIX="$DATA-memcheck" $extra \
        VQGAN_STEPS=$n TITOK1_STEPS=$n TITOK2_STEPS=$n MASKGIT_STEPS=$n VQGAN_BATCH=4 TITOK_BATCH=4 \
        MASKGIT_BATCH=4 "$tgt" >&2 || true
    procs=$(ls "$W"/vg | wc -l)
    bad=$(for f in "$W"/vg/*.log; do [ ! -s "$f" ] || echo "$f"; done | wc -l)
    echo "| $p | $n | $procs | $bad |"
    for f in "$W"/vg/*.log; do
        [ -s "$f" ] || continue
        echo; echo '```'; head -30 "$f"; echo '```'
    done
done
echo
echo "valgrind $(valgrind --version | sed 's/valgrind-//'), --leak-check=full; definite and indirect leaks"
echo "count as errors (the \"possibly lost\" blocks are the thread stacks of libgomp's pool)."
