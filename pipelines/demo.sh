#!/bin/sh
# demo.sh - run the demo's stages in order, each a make call, with a
# progress line before each: the stage, the time so far and an estimate of
# the time left. Called by pipelines/demo.mk:
#   sh pipelines/demo.sh "NAME|MAKE ARGUMENTS|SECONDS" ...
# SECONDS is what the stage took in the measured default run (README); the
# estimate scales the seconds of the stages left by how fast the finished
# ones went against theirs. Stages already up to date (make -q) are passed
# over in silence, so a second `make demo` prints nothing of them.
# Environment: MAKE (the make to call; demo.mk passes its own, with the
# job server of make -jN).
set -eu
MAKE=${MAKE:-make}
todo=
for s in "$@"; do
    args=$(echo "$s" | cut -d'|' -f2)
    # shellcheck disable=SC2086
    if ! $MAKE -q --no-print-directory $args >/dev/null 2>&1; then todo="$todo$s
"; fi
done
[ -n "$todo" ] || exit 0
n=$(printf '%s' "$todo" | grep -c .)
left=$(printf '%s' "$todo" | awk -F'|' '{ s += $3 } END { print s }')
t0=$(date +%s) done_w=0 k=0
minutes() { awk -v s="$1" 'BEGIN { printf (s < 60 ? "%d s" : "%.0f min"), (s < 60 ? s : s / 60) }'; }
printf '%s' "$todo" | while IFS='|' read -r name args w; do
    k=$((k + 1))
    el=$(($(date +%s) - t0))
    if [ "$done_w" -gt 0 ]; then eta=$(awk -v l="$left" -v e="$el" -v d="$done_w" 'BEGIN { printf "%d", l * e / d }')
    else eta=$left; fi
    echo "demo: [$k/$n] $name: $(minutes "$el") so far, about $(minutes "$eta") left"
    # shellcheck disable=SC2086
    $MAKE --no-print-directory $args
    done_w=$((done_w + w)) left=$((left - w))
done
echo "demo: done in $(minutes $(($(date +%s) - t0)))"
