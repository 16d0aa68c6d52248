# lib.sh - sourced by the training scripts of pipelines/: what every stream-
# mode run shares.
#
#   resume_step CKPT_DIR STAGE...  newest step every stage has a finished
#                                  checkpoint of (0 if none)
#   fifos DIR NAME...              fresh FIFOs DIR/NAME
#   release_fifo FIFO SECONDS      hold FIFO open (both ends) a while in the
#                                  background: a process blocked in opening
#                                  it, whose partner died first, gets
#                                  through and sees the end of its stream
#   init_once FILE TOOL ARGS...    TOOL --init -w FILE ARGS unless FILE exists
#                                  from the same command and --init-from
#                                  files (FILE.args)
#   samples_of STREAM              the number of samples in a stream
#   st_meta FILE KEY               a metadata value of a safetensors file
#   code_usage STREAM CODES        "codes_used N" and "perplexity P" lines for
#                                  the ids field of a stream (the whole stream)
#   plot_log LOG PNG TITLE         loss curves (gnuplot) if gnuplot is there
#   decode_loop IN OUT TARGS MARGS iterative decoding of the records of IN
#                                  (mask --init-sample's or region masks')
#                                  to OUT: one transformer (arguments TARGS)
#                                  and one mask --sample (MARGS) for all the
#                                  steps, the records going round through
#                                  the FIFO OUT.loop (mask(1), --loop)
set -eu

resume_step() {
    ck=$1 first=$2; shift
    for step in $(ls "$ck/$first" 2>/dev/null | sed -n 's/^step-\([0-9]*\)\.done$/\1/p' | sort -rn); do
        all=1
        for s in "$@"; do [ -f "$ck/$s/step-$step.done" ] || all=; done
        if [ -n "$all" ]; then echo "$step" | sed 's/^0*\([0-9]\)/\1/'; return; fi
    done
    echo 0
}

# samples in a stream (tz info's first line: "NAME: R records, S samples")
samples_of() {
    tz info "$1" | sed -n '1s/.* records, \([0-9]*\) samples.*/\1/p'
}

# the header is JSON after an 8-byte little-endian length; our writer puts
# __metadata__ first with string values
st_meta() {
    n=$(od -An -t u8 -N8 "$1" | tr -d ' ')
    tail -c +9 "$1" | head -c "$n" | sed -n 's/.*"'"$2"'":"\([^"]*\)".*/\1/p'
}

code_usage() {
    d=$(mktemp -d)
    tz npy -i "$1" -d "$d" ids
    "${PYTHON:-/usr/bin/python3}" - "$d/ids.npy" "$2" <<'PY'
import sys, numpy as np
ids = np.load(sys.argv[1]).ravel()
counts = np.bincount(ids, minlength=int(sys.argv[2]))
p = counts[counts > 0] / ids.size
print("codes_used\t%d" % (counts > 0).sum())
print("perplexity\t%.2f" % np.exp(-(p * np.log(p)).sum()))
PY
    rm -rf "$d"
}

fifos() {
    d=$1; shift
    for f in "$@"; do rm -f "$d/$f"; mkfifo "$d/$f"; done
}

release_fifo() {
    ( exec 9<>"$1"; sleep "$2" ) &
}

decode_loop() {
    loop=$2.loop rc=0
    rm -f "$loop" && mkfifo "$loop"
    # a mask that fails before it opens the FIFO leaves the transformer
    # blocked in opening it
    transformer $3 < "$loop" |
        { mask --sample $4 --loop "$loop" --from "$1" -o "$2" || { rc=$?; release_fifo "$loop" 1; exit $rc; }; } ||
        rc=$?
    rm -f "$loop"
    return $rc
}

init_once() {
    f=$1 tool=$2; shift 2
    args="$tool $*"
    prev=
    for a in "$@"; do   # the parts a model starts from count as arguments too
        [ "$prev" != --init-from ] || args="$args $(cksum < "${a%%:*}")"
        prev=$a
    done
    [ -f "$f" ] && [ -f "$f.args" ] && [ "$(cat "$f.args")" = "$args" ] && return 0
    "$tool" --init -w "$f" "$@"
    echo "$args" > "$f.args"
}

plot_log() {
    log=$1 png=$2 title=$3
    command -v gnuplot >/dev/null 2>&1 || { echo "plot: gnuplot not installed, $png not made"; return 0; }
    [ -s "$log" ] || return 0
    cols=$(head -1 "$log" | tr '\t' '\n' | grep -n -v -E '^(step|seconds|lr\..*|vq\..*|gan\..*|acc|epoch)$' | cut -d: -f1 | tr '\n' ' ')
    plot=
    for c in $cols; do
        plot="${plot:+$plot, }'$log' using 1:$c with lines title columnhead($c)"
    done
    gnuplot <<EOF
set terminal pngcairo size 900,500 noenhanced
set output '$png.tmp'
set title '$title'
set xlabel 'step'
set logscale y
set key outside right
set datafile separator '\t'
plot $plot
EOF
    mv "$png.tmp" "$png"
}
