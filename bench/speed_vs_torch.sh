#!/bin/sh
# speed_vs_torch.sh - the tools against PyTorch (bench/torch_ref.py) on the
# same models, weights (--init, seeded), data, batch sizes and seeds, in one
# run and one environment: training steps in stream mode (issue 9),
# MaskGIT sampling with guidance for 1D and 2D tokens (issue 6), TiTok
# encoding, and how cost grows: TiTok stage 1 steps against batch, latent
# tokens and image size, the upstream 256x256 tokenizers forward (table and
# bench/scaling.png). Called by bench/run.sh; prints markdown.
#   speed_vs_torch.sh [REPS [N1 [N2]]]      (3, 3, 11)
# Each measurement is repeated REPS times, the two sides interleaved (the
# order alternates), and reported as the median with the range. Training
# steps are the marginal cost inside one run of N2 steps, on both sides:
# (time at the end of step N2 - time at the end of step N1) / (N2 - N1), for
# tokpipe from the loss stage's log, so that process starts and the first
# steps' allocation are reported apart (and their spread between runs does
# not reach the per-step figure). Environment: SPEED_THREADS (2), PYTHON (/usr/bin/python3),
# SPEED_KEEP=DIR keeps the work directory there; SPEED_SCALING=0 skips the
# growth section, SPEED_SCALE_REPS (1), SPEED_SCALE_BATCH, _TOKENS, _SIZE,
# _UPSTREAM change its points, SPEED_PLOT its PNG (bench/scaling.png).
set -eu
cd "$(dirname "$0")/.."
REPS=${1:-3} N1=${2:-3} N2=${3:-11}
J=${SPEED_THREADS:-2}
PY=${PYTHON:-/usr/bin/python3}
REF="$PY $(pwd)/bench/torch_ref.py"
export OMP_WAIT_POLICY=passive
if [ -n "${SPEED_KEEP:-}" ]; then W=$SPEED_KEEP; rm -rf "$W"; mkdir -p "$W"
else W=$(mktemp -d /tmp/speed.XXXXXX); trap 'rm -rf "$W"' EXIT; fi
# a private copy of the tools: a rebuild of bin/ during the run cannot touch it
mkdir -p "$W/bin"
cp bin/* "$W/bin/"
PATH="$W/bin:$PATH"
I=$W/init
R=$W/results.tsv
: > "$R"
now() { date +%s.%N; }
say() { echo "speed_vs_torch: $*" >&2; }
# T NAME CMD...: run CMD, its peak RSS (KB) to $W/rss/NAME
T() { _n=$1; shift; /usr/bin/time -f %M -o "$W/rss/$_n" "$@"; }
rss_sum() { for f in "$W"/rss/*; do tail -1 "$f"; done | awk '{ s += $1 } END { printf "%.0f", s / 1024 }'; }
fail() { echo "speed_vs_torch: $*" >&2; exit 1; }
# every process of the last pipeline ran and exited 0 (time(1) notes anything else)
rss_ok() {
    for f in "$W"/rss/*; do
        if [ ! -s "$f" ] || grep -q -v '^[0-9][0-9]*$' "$f"; then fail "$1: $(basename "$f"): $(head -1 "$f")"; fi
    done
}
res() { echo "$*" | tr ' ' '\t' >> "$R"; }

LOAD0=$(cut -d' ' -f1 /proc/loadavg)

# ---- weights (the tools' --init) and data -----------------------------------
mkdir -p "$I" "$W/rss"
{
encode --init -w "$I/vqgan-encode.st" --arch vqgan-tiny --seed 1
vq --init -w "$I/vqgan-vq.st" --arch vqgan-tiny --seed 2
decode --init -w "$I/vqgan-decode.st" --arch vqgan-tiny --seed 3
encode --init -w "$I/titok-encode.st" --arch titok-tiny --seed 11
vq --init -w "$I/titok-vq.st" --arch titok-tiny --seed 12
decode --init -w "$I/titok-decode.st" --arch titok-tiny --seed 13
decode --init -w "$I/titok2-decode.st" --arch titok-tiny-pixel --seed 14
transformer --init -w "$I/maskgit-1d.st" --arch maskgit-tiny --seed 21
transformer --init -w "$I/maskgit-2d.st" --arch maskgit-tiny --set tokens=64 --seed 22
} 2>/dev/null
NIMG=$((N2 * 32))
[ $NIMG -ge 1024 ] || NIMG=1024
if [ -f data/fmnist-train.tz ]; then
    DATA="Fashion-MNIST (padded to 32x32)"
    tz head --samples $NIMG data/fmnist-train.tz | tz batch 32 -o "$W/img.tz"
else
    DATA="uniform noise images (no data/fmnist-train.tz)"
    tz make --field image:F32:32x1x32x32=rand:1 --records $((NIMG / 32)) -o "$W/img.tz"
fi
recs=$((NIMG / 32))
# proxy codes for TiTok stage 1 and tokens for MaskGIT: random ids (the weights are random too)
tz make --field target:I32:32x8x8=rand:3 --records $recs -o "$W/target.tz"
tz merge "$W/img.tz" "$W/target.tz" -o "$W/t1.tz"
tz make --field ids:I32:64x32=rand:5 --field label:I32:64=0,1,2,3,4,5,6,7,8,9 --records $recs -o "$W/mg.tz"
# the batches the tools' runs see (tz feed), for the PyTorch side
tz feed -b 32 --steps $N2 --seed 1 "$W/img.tz" | tz npy -d "$W/npy-img" image
tz feed -b 32 --steps $N2 --seed 1 "$W/t1.tz" | tz npy -d "$W/npy-t1" image target
tz feed -b 64 --steps $N2 --seed 1 "$W/mg.tz" | tz npy -d "$W/npy-mg" ids label
tz npy -d "$W/npy-enc" -i "$W/img.tz" image
: > "$W/empty.tz"

# ---- training steps -----------------------------------------------------------
# TiTok stage 1's weights (directory), batch and stream; the scaling section
# changes them
TD=$I TB=32 T1=$W/t1.tz
# the optimizer flags of pipelines/*.sh at a constant learning rate, clip 1, EMA
opt_of() {
    case $1 in
    vqgan|titok1) echo "--lr 5e-4 --betas 0.9,0.99 --wd 1e-4 --clip 1.0" ;;
    titok2) echo "--lr 2e-4 --betas 0.9,0.999 --wd 1e-4 --clip 1.0" ;;
    maskgit) echo "--lr 5e-4 --betas 0.9,0.96 --wd 0.03 --clip 1.0" ;;
    esac
}
# stage NAME GRADIN [GRADOUT]: the stream-mode flags of a trained stage
stage() {
    echo "-w $r/$1.st -s $r/$1.state --ema $r/$1.ema --train -j $J $OPT --grad-in $r/$2${3:+ --grad-out $r/$3}"
}
# ours MODEL STEPS: one stream-mode run from the initial weights (as
# pipelines/train.sh wires it); prints its wall seconds; peak RSS per process in rss/
ours() {
    m=$1 n=$2 r=$W/run
    rm -rf "$r" "$W/rss"; mkdir -p "$r" "$W/rss"
    # every stage appends its matrix products' GFLOP here at exit (lib/blas.h)
    export TP_FLOPS="$W/flops.$n"; rm -f "$TP_FLOPS"
    mkfifo "$r/g1" "$r/g2" "$r/g3"
    OPT=$(opt_of "$m")
    case $m in
    vqgan) cp "$I/vqgan-encode.st" "$r/encode.st"; cp "$I/vqgan-vq.st" "$r/vq.st"; cp "$I/vqgan-decode.st" "$r/decode.st" ;;
    titok1) cp "$TD/titok-encode.st" "$r/encode.st"; cp "$TD/titok-vq.st" "$r/vq.st"; cp "$TD/titok-decode.st" "$r/decode.st" ;;
    titok2) cp "$I/titok2-decode.st" "$r/decode.st" ;;
    maskgit) cp "$I/maskgit-1d.st" "$r/transformer.st" ;;
    esac
    t0=$(now)
    case $m in
    vqgan)
        T feed tz feed -b 32 --steps "$n" --seed 1 "$W/img.tz" |
            T encode encode $(stage encode g3) | T vq vq $(stage vq g2 g3) |
            T decode decode $(stage decode g1 g2) | T loss loss mse --log "$r/loss.tsv" -j "$J" > "$r/g1" ;;
    titok1)
        T feed tz feed -b "$TB" --steps "$n" --seed 1 "$T1" |
            T encode encode $(stage encode g3) | T vq vq $(stage vq g2 g3) |
            T decode decode $(stage decode g1 g2) | T loss loss ce --log "$r/loss.tsv" -j "$J" > "$r/g1" ;;
    titok2)
        T feed tz feed -b 32 --steps "$n" --seed 1 "$W/img.tz" |
            T encode encode -w "$I/titok-encode.st" -j "$J" | T vq vq -w "$I/titok-vq.st" -j "$J" |
            T decode decode $(stage decode g1) | T loss loss mse --log "$r/loss.tsv" -j "$J" > "$r/g1" ;;
    maskgit)
        T feed tz feed -b 64 --steps "$n" --seed 1 "$W/mg.tz" | T mask mask --train --vocab 1024 |
            T transformer transformer $(stage transformer g1) |
            T loss loss ce --label-smoothing 0.1 --unmasked-weight 0.1 --log "$r/loss.tsv" -j "$J" > "$r/g1" ;;
    esac
    t1=$(now)
    rss_ok "train $m, $n steps"
    for f in "$r"/*.st; do [ "$n" = 0 ] || [ -f "${f%.st}.ema" ] || fail "train $m: no EMA weights written"; done
    echo "$t0 $t1" | awk '{ printf "%.4f", $2 - $1 }'
}
# log_ms FROM: ms per step in the last run's loss log, from its record FROM on
log_ms() { sh bench/log_ms.sh "$W/run/loss.tsv" "$1" || fail "no loss log past record $1"; }
# per_step COL N1 N2: column COL of the TP_FLOPS lines (2: GFLOP, 3: zstd
# seconds), summed over the processes, per step: (run of N2 - run of N1) / (N2 - N1)
per_step() {
    awk -v a="$W/flops.$2" -v c="$1" -v n1="$2" -v n2="$3" '
        FILENAME == a { s1 += $c; next } { s2 += $c } END { printf "%.3f", (s2 - s1) / (n2 - n1) }' "$W/flops.$2" "$W/flops.$3"
}
# per_step_tools COL N1 N2: "TOOL value-per-step" lines, the value in thousandths
per_step_tools() {
    awk -v a="$W/flops.$2" -v c="$1" -v n1="$2" -v n2="$3" '
        FILENAME == a { s1[$1] += $c; next } { s2[$1] += $c }
        END { for (t in s2) printf "%s %.2f\n", t, 1000 * (s2[t] - s1[t]) / (n2 - n1) }' "$W/flops.$2" "$W/flops.$3"
}
torch_train() {  # MODEL NPY B [N1 N2 [ARGS]]: prints "wall marginal_ms rss_mb"
    t0=$(now)
    /usr/bin/time -f %M -o "$W/rss.torch" $REF train "$1" --dir "$TD" --data "$W/$2" -b "$3" \
        --steps "${4:-$N1},${5:-$N2}" -j "$J" ${6:-} > "$W/torch.out"
    t1=$(now)
    echo "$t0 $t1 $(sed -n 's/^marginal_ms //p' "$W/torch.out") $(tail -1 "$W/rss.torch")" |
        awk '{ printf "%.4f %.2f %.0f", $2 - $1, $3, $4 / 1024 }'
}
for m in vqgan titok1 titok2 maskgit; do
    case $m in vqgan|titok2) npy=npy-img b=32 ;; titok1) npy=npy-t1 b=32 ;; maskgit) npy=npy-mg b=64 ;; esac
    rep=1
    while [ $rep -le "$REPS" ]; do
        say "train $m, repetition $rep of $REPS"
        if [ $((rep % 2)) = 0 ]; then tt=$(torch_train $m $npy $b); fi
        s0=$(ours $m 0)
        s1=$(ours $m "$N1")
        ours $m "$N2" > /dev/null # its loss log gives the marginal ms
        rss=$(rss_sum)
        ms=$(log_ms $((N1 - 1)))
        if [ $((rep % 2)) = 1 ]; then tt=$(torch_train $m $npy $b); fi
        set -- $tt
        # ours: marginal ms, fixed s (T(N1) - N1 marginal), start s (0 steps), RSS MB;
        # torch: marginal ms, fixed s (wall of N2 steps - N2 marginal), RSS MB
        # the model's GFLOP per step: the matrix products of N2 steps less those of N1
        gf=$(per_step 2 "$N1" "$N2")
        per_step_tools 3 "$N1" "$N2" | while read -r tool ms; do res "ztool $m-$tool $ms"; done
        res "train $m $(echo "$s0 $s1 $ms $N1" | awk '{
            m = $3 / 1000; printf "%.2f %.3f %.3f", $3, $2 - $4 * m, $1 }') $rss $2 $(echo "$1 $2 $N2" |
            awk '{ printf "%.3f", $1 - $3 * $2 / 1000 }') $3 $gf"
        rep=$((rep + 1))
    done
done

# ---- sampling and encoding ----------------------------------------------------
SN=64 SSTEPS=8 SG=2
ours_sample() {  # KIND: prints "sample_s decode_s"
    k=$1 r=$W/run
    rm -rf "$r"; mkdir -p "$r"
    if [ "$k" = 1d ]; then init="--tokens 32"; else init="--grid 8"; fi
    t0=$(now)
    mask --init-sample $init --vocab 1024 -n $SN --classes 10 --steps $SSTEPS --guidance $SG -o "$r/ids-0.tz"
    ( . pipelines/lib.sh; decode_loop "$r/ids-0.tz" "$r/ids-$SSTEPS.tz" "-w $I/maskgit-$k.st -j $J" "--seed 7" )
    t1=$(now)
    if [ "$k" = 1d ]; then
        vq -w "$I/titok-vq.st" -j "$J" < "$r/ids-$SSTEPS.tz" | decode -w "$I/titok2-decode.st" -j "$J" > "$r/samples.tz"
    else
        vq -w "$I/vqgan-vq.st" -j "$J" < "$r/ids-$SSTEPS.tz" | decode -w "$I/vqgan-decode.st" -j "$J" > "$r/samples.tz"
    fi
    t2=$(now)
    # every token decided, every image decoded
    max=$(tz stats --field ids "$r/ids-$SSTEPS.tz" | awk 'NR == 2 { print $5 }')
    n=$(tz info "$r/samples.tz" | sed -n '1s/.* records, \([0-9]*\) samples.*/\1/p')
    if [ "$(echo "$max" | awk '{ print ($1 < 1024) }')" != 1 ] || [ "$n" != $SN ]; then
        fail "sampling $k: max id $max, $n samples"
    fi
    echo "$t0 $t1 $t2" | awk '{ printf "%.4f %.4f", $2 - $1, $3 - $2 }'
}
starts_sample() {  # KIND: the loop's process starts on empty streams, seconds
    k=$1
    t0=$(now)
    mask --init-sample --tokens 32 --vocab 1024 -n 1 --steps $SSTEPS > /dev/null
    ( . pipelines/lib.sh; decode_loop "$W/empty.tz" "$W/starts.tz" "-w $I/maskgit-$k.st -j $J" "--seed 7" )
    t1=$(now)
    echo "$t0 $t1" | awk '{ printf "%.4f", $2 - $1 }'
}
for k in 1d 2d; do
    rep=1
    while [ $rep -le "$REPS" ]; do
        say "sample $k, repetition $rep of $REPS"
        [ $((rep % 2)) = 0 ] && $REF sample $k --dir "$I" -n $SN --steps $SSTEPS --guidance $SG -j "$J" > "$W/torch.out"
        o=$(ours_sample $k)
        st=$(starts_sample $k)
        [ $((rep % 2)) = 1 ] && $REF sample $k --dir "$I" -n $SN --steps $SSTEPS --guidance $SG -j "$J" > "$W/torch.out"
        res "sample $k $o $st $(sed -n 's/^sample_s //p' "$W/torch.out") $(sed -n 's/^decode_s //p' "$W/torch.out")" \
            "$(sed -n 's/^cold_sample_s //p' "$W/torch.out") $(sed -n 's/^cold_decode_s //p' "$W/torch.out")"
        rep=$((rep + 1))
    done
done
rep=1
while [ $rep -le "$REPS" ]; do
    say "encode, repetition $rep of $REPS"
    [ $((rep % 2)) = 0 ] && $REF encode --dir "$I" --data "$W/npy-enc" -b 32 -j "$J" > "$W/torch.out"
    t0=$(now)
    encode -w "$I/titok-encode.st" -j "$J" < "$W/img.tz" | vq -w "$I/titok-vq.st" -j "$J" > "$W/ids.tz"
    t1=$(now)
    encode -w "$I/titok-encode.st" -j "$J" < "$W/empty.tz" | vq -w "$I/titok-vq.st" -j "$J" > /dev/null
    t2=$(now)
    [ "$(tz info "$W/ids.tz" | sed -n '1s/.* records, \([0-9]*\) samples.*/\1/p')" = $NIMG ] || fail "encode: ids missing"
    [ $((rep % 2)) = 1 ] && $REF encode --dir "$I" --data "$W/npy-enc" -b 32 -j "$J" > "$W/torch.out"
    res "encode titok $(echo "$t0 $t1 $t2 $NIMG" | awk '{ printf "%.2f %.4f", $4 / ($2 - $1), $3 - $2 }') \
$(sed -n 's/^images_s //p' "$W/torch.out")"
    rep=$((rep + 1))
done

# ---- how cost grows (issue 9) ------------------------------------------------------
# TiTok stage 1 training steps against batch, latent tokens and image size, and
# the upstream 256x256 tokenizers forward only. SPEED_SCALING=0 skips it.
SCALE=${SPEED_SCALING:-1}
SREPS=${SPEED_SCALE_REPS:-1} SN1=2 SN2=6
SBATCH=${SPEED_SCALE_BATCH:-8 16 32 64 128} STOKENS=${SPEED_SCALE_TOKENS:-32 64 128}
SSIZE=${SPEED_SCALE_SIZE:-32 64} UPSTREAM=${SPEED_SCALE_UPSTREAM:-titok-s-128 titok-b-64 titok-l-32} UPB=4 UPN=8
# scale_point B K S: titok-tiny with K tokens on S x S images, batch B, both
# sides (once: the axes share their middle point)
scale_point() {
    [ ! -e "$W/scale-done-$1-$2-$3" ] || return 0
    touch "$W/scale-done-$1-$2-$3"
    TB=$1 TD=$W/scale-init-$2-$3 T1=$W/scale-$3.tz
    if [ ! -d "$TD" ]; then
        mkdir -p "$TD"
        encode --init -w "$TD/titok-encode.st" --arch titok-tiny --set tokens=$2 --set resolution=$3 --seed 11
        vq --init -w "$TD/titok-vq.st" --arch titok-tiny --seed 12
        decode --init -w "$TD/titok-decode.st" --arch titok-tiny --set tokens=$2 --set resolution=$3 --seed 13
    fi 2>/dev/null
    # random images and proxy codes (the weights are random too)
    [ -f "$T1" ] || tz make --field image:F32:32x1x$3x$3=rand:1 --field target:I32:32x$(($3 / 4))x$(($3 / 4))=rand:3 \
        --records $(( (SN2 * 128 + 31) / 32 )) -o "$T1"
    npy=scale-npy-$1-$2-$3
    tz feed -b "$TB" --steps $SN2 --seed 1 "$T1" | tz npy -d "$W/$npy" image target
    rep=1
    while [ $rep -le "$SREPS" ]; do
        say "scaling: titok1 batch $1, $2 tokens, ${3}x$3, repetition $rep of $SREPS"
        targs="--titok num_latent_tokens=$2,image_size=$3"
        [ $((rep % 2)) = 0 ] && tt=$(torch_train titok1 "$npy" "$TB" $SN1 $SN2 "$targs")
        ours titok1 $SN1 > /dev/null # the GFLOP per step: the difference of two runs' counts
        ours titok1 $SN2 > /dev/null
        [ $((rep % 2)) = 1 ] && tt=$(torch_train titok1 "$npy" "$TB" $SN1 $SN2 "$targs")
        gf=$(per_step 2 $SN1 $SN2)
        # ms/step from the loss's log of the longer run: between its records 1 and
        # SN2-1, so that neither the starts nor the first step (allocation) count
        # (the difference of two runs' wall times carried their starts' spread)
        ms=$(log_ms 1)
        res "scale $1-$2-$3 $ms $(echo "$tt" | cut -d' ' -f2) $gf"
        rep=$((rep + 1))
    done
    rm -rf "$W/$npy"
    TD=$I TB=32 T1=$W/t1.tz
}
# up_point ARCH: the tokenizer's forward (encode | vq | decode to proxy-code logits), both sides
up_point() {
    d=$W/up-$1
    mkdir -p "$d"
    encode --init -w "$d/titok-encode.st" --arch "$1" --seed 11 2>/dev/null
    vq --init -w "$d/titok-vq.st" --arch "$1" --seed 12 2>/dev/null
    decode --init -w "$d/titok-decode.st" --arch "$1" --seed 13 2>/dev/null
    if [ ! -f "$W/up.tz" ]; then
        tz make --field image:F32:${UPB}x3x256x256=rand:1 --records $((UPN / UPB)) -o "$W/up.tz"
        tz npy -d "$W/npy-up" -i "$W/up.tz" image
    fi
    case $1 in
    titok-s-128) cfg=width=512,num_layers=8,num_heads=8,num_latent_tokens=128 ;;
    titok-b-64) cfg=width=768,num_layers=12,num_heads=12,num_latent_tokens=64 ;;
    titok-l-32) cfg=width=1024,num_layers=24,num_heads=16,num_latent_tokens=32 ;;
    esac
    cfg=$cfg,channels=3,image_size=256,patch_size=16,token_size=12,codes=4096
    rep=1
    while [ $rep -le "$SREPS" ]; do
        say "scaling: $1 forward, repetition $rep of $SREPS"
        [ $((rep % 2)) = 0 ] && $REF encode --decode --dir "$d" --data "$W/npy-up" -b $UPB -j "$J" --titok "$cfg" > "$W/torch.out"
        t0=$(now)
        encode -w "$d/titok-encode.st" -j "$J" < "$W/up.tz" | vq -w "$d/titok-vq.st" -j "$J" |
            decode -w "$d/titok-decode.st" -j "$J" > "$W/up-out.tz"
        t1=$(now)
        encode -w "$d/titok-encode.st" -j "$J" < "$W/empty.tz" | vq -w "$d/titok-vq.st" -j "$J" |
            decode -w "$d/titok-decode.st" -j "$J" > /dev/null
        t2=$(now)
        [ "$(tz info "$W/up-out.tz" | sed -n '1s/.* records, \([0-9]*\) samples.*/\1/p')" = $UPN ] || fail "$1: logits missing"
        [ $((rep % 2)) = 1 ] && $REF encode --decode --dir "$d" --data "$W/npy-up" -b $UPB -j "$J" --titok "$cfg" > "$W/torch.out"
        res "up $1 $(echo "$t0 $t1 $t2" | awk -v n=$UPN '{ printf "%.3f %.3f %.3f", n / ($2 - $1), $3 - $2, n / ($2 - $1 - ($3 - $2)) }') \
$(sed -n 's/^images_s //p' "$W/torch.out")"
        rep=$((rep + 1))
    done
    rm -rf "$d" "$W/up-out.tz"
}
if [ "$SCALE" != 0 ]; then
    for b in $SBATCH; do scale_point $b 32 32; done
    for k in $STOKENS; do scale_point 32 $k 32; done
    for sz in $SSIZE; do scale_point 32 32 $sz; done
    for a in $UPSTREAM; do up_point $a; done
fi

# ---- tables ---------------------------------------------------------------------
# stat KIND NAME COL: "median (min-max)" of column COL over the repetitions
med() {
    awk -F'\t' -v k="$1" -v n="$2" -v c="$3" -v f="${4:-%.1f}" '$1 == k && $2 == n { v[++m] = $c }
        END { for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
              md = (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
              printf f, md; if (m > 1) printf " (" f "-" f ")", v[1], v[m] }' "$R"
}
# ratio KIND NAME A B: the ratio of columns A / B per repetition (each pair measured back
# to back), "median (min-max)"
ratio() {
    awk -F'\t' -v OFS='\t' -v k="$1" -v n="$2" -v a="$3" -v b="$4" '$1 == k && $2 == n { print "ratio", "r", $a / $b }' "$R" > "$R.r"
    (R=$R.r; med ratio r 3 %.2f)
}
echo "Median over $REPS repetitions, (min-max) in brackets; the two sides interleaved (their order alternates"
echo "per repetition), $J threads each, the same OMP_WAIT_POLICY and OPENBLAS_CORETYPE. Load average (1 min)"
echo "at the start of this section $LOAD0, at its end $(cut -d' ' -f1 /proc/loadavg): the machine is shared, and a loaded"
echo "machine slows both sides unevenly, so the ratios are only as good as the spreads. Ratios are the median of"
echo "the per-repetition ratios (each pair measured back to back). PyTorch $($PY -c 'import torch; print(torch.__version__)')"
echo "(Debian's python3-torch: oneDNN for convolutions, the system's OpenBLAS for matrix products)"
echo "with the transcriptions of tests/reference/ (bench/torch_ref.py); both sides start from the same"
echo "\`--init\` weights and see the same batches ($DATA; random proxy codes and tokens)."
echo
echo "### Training steps (issue 9): stream mode against PyTorch"
echo
PEAK=${SPEED_PEAK:-}
echo "| model | batch | tokpipe ms/step | PyTorch ms/step | tokpipe / PyTorch (target <= 0.7) | tokpipe fixed s | tokpipe 0-step run s | PyTorch fixed s | tokpipe peak RSS MB | PyTorch peak RSS MB | model GFLOP/step | tokpipe GFLOP/s${PEAK:+ (of peak)} | PyTorch GFLOP/s${PEAK:+ (of peak)} |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
# the model FLOP rate per repetition: 3 ours, 4 PyTorch's (GFLOP/s)
awk -F'\t' -v OFS='\t' '$1 == "train" && $10 > 0 { print "tflop", $2, 1000 * $10 / $3, 1000 * $10 / $7 }' "$R" >> "$R"
# share KIND NAME COL: the median FLOP rate as a share of the sgemm peak
share() { [ -n "$PEAK" ] && med "$1" "$2" "$3" | awk -v p="$PEAK" '{ printf " (%.0f%%)", 100 * $1 / p }'; }
for m in vqgan titok1 titok2 maskgit; do
    case $m in
    vqgan) name="VQGAN vqgan-tiny (L2 + VQ)" b=32 ;;
    titok1) name="TiTok stage 1 titok-tiny (proxy-code CE + VQ)" b=32 ;;
    titok2) name="TiTok stage 2 titok-tiny-pixel (L2; encoder, VQ frozen)" b=32 ;;
    maskgit) name="MaskGIT maskgit-tiny, 32 tokens (masked CE)" b=64 ;;
    esac
    echo "| $name | $b | $(med train $m 3) | $(med train $m 7) | $(ratio train $m 3 7) | $(med train $m 4 %.2f) | $(med train $m 5 %.2f) | $(med train $m 8 %.2f) | $(med train $m 6 %.0f) | $(med train $m 9 %.0f) | $(med train $m 10 %.2f) | $(med tflop $m 3)$(share tflop $m 3) | $(med tflop $m 4)$(share tflop $m 4) |"
done
echo
echo "ms/step is the marginal cost inside one run of $N2 steps: (time at the end of step $N2 - time at the end"
echo "of step $N1) / $((N2 - N1)); for tokpipe a stream-mode run of the whole pipeline (tz feed | stages | loss,"
echo "gradients through FIFOs), the times from the loss stage's log (its records of those steps, \`loss --log\`),"
echo "for PyTorch timestamps inside its process. (Until session 13 tokpipe's figure was the difference of"
echo "two runs' wall times, $N2 steps less $N1: the spread of two runs' starts, up to 1.5 s, reached it.)"
echo "A step is forward, loss, backward,"
echo "gradient clipping at 1.0, AdamW (the betas and weight decay of pipelines/*.sh, constant learning"
echo "rate) and the EMA update, on both sides; tokpipe clips each stage's gradients on its own, PyTorch"
echo "all of them together. The perceptual and adversarial terms of the real VQGAN and stage-2 runs"
echo "are left out on both sides. Fixed cost: for tokpipe the time of $N1 steps minus $N1 marginal steps"
echo "(process starts, weight loading, the first steps' allocation, writing weights, state and EMA at"
echo "the end), and apart a run of 0 steps (starts, loading, writing); for PyTorch the wall time"
echo "of its process minus $N2 marginal steps (interpreter start, import torch, weight loading, the"
echo "first steps' warm-up). Peak RSS: for tokpipe the sum over the pipeline's processes (tz feed, the"
echo "stages, loss; shared library pages are counted once per process), for PyTorch its process."
echo "Model GFLOP/step: the matrix products (2 M N K per sgemm call or register-tile product;"
echo "convolutions as im2col products, attention's two) that the tools asked for in a step, counted by lib/blas.h"
echo "(TP_FLOPS) over the same runs (since session 13 the tiles' products too: TiTok stage 2's frozen encoder"
echo "adds its forward); the elementwise work is left out. The same count divided by each"
echo "side's ms/step gives the FLOP rates${PEAK:+, and their share of this run's sgemm peak ($PEAK GFLOP/s, 1024^3, $J threads)}."
echo
echo "### Stream compression per tool: zstd ms per step (issue 9)"
echo
echo "| model | tokpipe ms/step | tz feed | mask | encode | vq | decode | transformer | loss | all tools | share of the step |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for m in vqgan titok1 titok2 maskgit; do
    row="| $m | $(med train $m 3) |"
    for t in tz mask encode vq decode transformer loss; do
        if grep -q "^ztool	$m-$t	" "$R"; then v=$(med ztool "$m-$t" 3 %.1f); else v=-; fi
        row="$row $v |"
    done
    # the sum over the tools per repetition, and its share of that repetition's step
    tot=$(awk -F'\t' -v m="$m" '$1 == "ztool" && index($2, m "-") == 1 { s += $3; n[$2]++ } END { k = 0; for (i in n) k = n[i]; printf "%.1f", k ? s / k : 0 }' "$R")
    echo "$row $tot | $(med train $m 3 | awk -v z="$tot" '{ printf "%.1f%%", 100 * z / $1 }') |"
done
echo
echo "Each tool's CPU seconds in zstd (compressing its output records, decompressing its inputs, the"
echo "gradient streams included), per marginal step as the training table's, from the TP_FLOPS lines"
echo "of the same runs; the levels are the tools' defaults (tz(5), Compression levels). \"all tools\" is"
echo "the mean over the repetitions of the sum; the stages run one after the other within a step, so"
echo "it is time on the step's path."
echo
echo "### MaskGIT sampling (issue 6): $SSTEPS steps, guidance $SG (linear ramp), batch $SN, random weights"
echo
echo "| tokens | tokpipe sampling img/s | PyTorch sampling img/s | ratio (target >= 1.5) | tokpipe decoding img/s | PyTorch decoding img/s | ratio | tokpipe total img/s | PyTorch total img/s | ratio | tokpipe loop's process starts ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for k in 1d 2d; do
    # images/s per repetition: 3-5 ours sampling, decoding, total; 6-8 PyTorch's; 9 the
    # loop's starts (ms); 10-11 PyTorch's cold run
    awk -F'\t' -v OFS='\t' -v n=$SN -v k=$k '$1 == "sample" && $2 == k {
        print "simg", k, n/$3, n/$4, n/($3+$4), n/$6, n/$7, n/($6+$7), 1000*$5, n/$8, n/$9 }' "$R" >> "$R"
    case $k in 1d) name="1D, 32 (TiTok; decoder: titok-tiny-pixel)" ;; 2d) name="2D, 8x8 (VQGAN vqgan-tiny)" ;; esac
    echo "| $name | $(med simg $k 3) | $(med simg $k 6) | $(ratio simg $k 3 6) | $(med simg $k 4) | $(med simg $k 7) | $(ratio simg $k 4 7) | $(med simg $k 5) | $(med simg $k 8) | $(ratio simg $k 5 8) | $(med simg $k 9 %.0f) |"
done
echo
echo "tokpipe runs what \`make sample\` runs: mask --init-sample, then $SSTEPS rounds of transformer | mask --sample"
echo "(one record of $SN; guidance doubles the batch inside the transformer, except at step 0, whose"
echo "guidance scale is 0) with both processes started once, the record going round through a FIFO"
echo "(decode_loop, pipelines/lib.sh), then vq | decode to pixels (reported apart). The last column is the"
echo "cost of that loop's process starts alone (transformer | mask --loop on an empty stream, with weight"
echo "loading), included in the sampling figure. PyTorch: ImageBert.generate with the same weights in one process"
echo "(the null-class pass skipped at step 0 too: it does not change the result), then the codebook and"
echo "decoder; the figure is its second run in the process (warm), excluding interpreter start and import."
echo "Its first (cold) run, in img/s: 1D $(med simg 1d 10) sampling, $(med simg 1d 11) decoding; 2D $(med simg 2d 10)"
echo "sampling, $(med simg 2d 11) decoding."
echo
echo "### Encoding: titok-tiny encode + vq, batch 32"
echo
echo "| images | tokpipe img/s | PyTorch img/s | ratio (target >= 1.5) | tokpipe process starts ms |"
echo "|---|---|---|---|---|"
awk -F'\t' -v OFS='\t' '$1 == "encode" { print "eimg", "t", $3, $5, 1000 * $4 }' "$R" >> "$R"
echo "| $NIMG | $(med eimg t 3) | $(med eimg t 4) | $(ratio eimg t 3 4) | $(med eimg t 5 %.0f) |"
echo
echo "tokpipe: encode | vq over a stream of $NIMG images in records of 32 (wall time, process starts and"
echo "stream compression included; the starts alone, on an empty stream, in the last column). PyTorch:"
echo "the same batches in one process after a warm-up batch, without autograd."

[ "$SCALE" != 0 ] || exit 0
echo
echo "### How cost grows (issue 9): TiTok stage 1 training steps"
echo
echo "| varied | batch | latent tokens | image | tokpipe ms/step | PyTorch ms/step | tokpipe / PyTorch | model GFLOP/step | tokpipe GFLOP/s${PEAK:+ (of peak)} |"
echo "|---|---|---|---|---|---|---|---|---|"
awk -F'\t' -v OFS='\t' '$1 == "scale" { print "sflop", $2, 1000 * $5 / $3 }' "$R" >> "$R"
srow() { # VARIED B K S
    k=$2-$3-$4
    echo "| $1 | $2 | $3 | ${4}x$4 | $(med scale $k 3) | $(med scale $k 4) | $(ratio scale $k 3 4) | $(med scale $k 5 %.2f) | $(med sflop $k 3)$(share sflop $k 3) |"
}
for b in $SBATCH; do srow batch $b 32 32; done
for k in $STOKENS; do srow tokens 32 $k 32; done
for sz in $SSIZE; do srow image 32 32 $sz; done
echo
echo "titok-tiny (width 256, 4+4 layers) with the latent tokens and image size of the row (patch 4: a"
echo "64x64 image is 256 patches), random images and proxy codes; each side as in the training table"
echo "above, $SREPS repetition(s). tokpipe's ms/step is read from the loss stage's log in a run of $SN2"
echo "steps: the time between its records 1 and $((SN2 - 1)) over $((SN2 - 2)) steps (starts and the first step's"
echo "allocation left out); PyTorch's is the marginal cost between $SN1 and $SN2 steps in one process."
echo "Runs this short put both sides above the training table's steady state at the same configuration"
echo "(batch 32: the early steps cost more on both sides), so compare the rows of this table with each"
echo "other, and ratios with ratios."
echo
echo "### The upstream 256x256 tokenizers, forward only"
echo
echo "| config | tokpipe img/s | without process starts | starts and weight loading s | PyTorch img/s | tokpipe / PyTorch (img/s) |"
echo "|---|---|---|---|---|---|"
for a in $UPSTREAM; do
    echo "| $a | $(med up $a 3 %.2f) | $(med up $a 5 %.2f) | $(med up $a 4 %.2f) | $(med up $a 6 %.2f) | $(ratio up $a 3 6) |"
done
echo
echo "encode | vq | decode (to the 1024 proxy-code logits of a 16x16 grid) over $UPN random 3x256x256 images"
echo "in batches of $UPB, random weights of the presets of those names (upstream's legacy configurations,"
echo "codebook 4096 x 12). tokpipe's figure includes its process starts and weight loading (apart in"
echo "the fourth column, measured on an empty stream); PyTorch's is after a warm-up batch, without autograd."
if command -v gnuplot >/dev/null 2>&1; then
    awk -F'\t' '$1 == "scale" { split($2, p, "-"); print p[1], p[2], p[3], $3, $4 }' "$R" > "$W/scale.dat"
    sh bench/scaling_plot.sh "$W/scale.dat" "${SPEED_PLOT:-bench/scaling.png}" "$J"
    echo
    echo "![step time against batch, tokens and image size](scaling.png)"
fi
