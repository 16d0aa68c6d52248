#!/bin/sh
# make bench: every benchmark in one run, written to bench/results.md.
# Baselines are measured in the same run: this machine's sgemm peak, the
# zstd command on the same bytes, PyTorch (Debian's python3-torch) on the
# same shapes. Both sides run in the best setup for this machine (issue 9):
# OMP_WAIT_POLICY=passive (PyTorch's OpenMP threads otherwise spin against
# OpenBLAS's) and OpenBLAS's kernels for the CPU it detects: the
# environment's OPENBLAS_CORETYPE (Haswell here: AVX2 on an AVX-512 CPU) is
# unset, and only the sgemm peak is measured with it too, for the record.
# BENCH_CORETYPE=NAME runs everything with that core type instead.
# BENCH_REPS (10): the layers' runs; BENCH_SPEED_REPS (5): the repetitions of
# each comparison with PyTorch; BENCH_SPEED_STEPS ("3 11"): the steps N1 N2
# of its training runs (ms/step over steps N1..N2 of the N2-step run). About
# 21 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
B=${BENCH_BIN:-build/bench}
export OMP_WAIT_POLICY=passive
env_coretype=${OPENBLAS_CORETYPE:-}
case ${BENCH_CORETYPE:-auto} in
auto) unset OPENBLAS_CORETYPE ;;
*) export OPENBLAS_CORETYPE=$BENCH_CORETYPE ;;
esac
out=bench/results.md.tmp
reps=${BENCH_REPS:-10}
{
echo "# tokpipe benchmarks"
echo
echo "Written by \`make bench\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto (OpenBLAS detects the CPU)}, OMP_WAIT_POLICY=passive, best of $reps runs."
echo
echo "## Layers: forward + backward against the sgemm peak (issue 3)"
echo
"$B/bench_layers" "$reps" | grep -v '^VIT_BLOCK_MS' | tee /tmp/bench_layers.$$
echo
echo "Of same-shape sgemm: the time of the layer's own sgemm calls alone over the layer's time."
echo "The calls are recorded during one run of the layer (tp_sgemm_record, lib/blas.h) and"
echo "replayed on buffers of their sizes, the ones made inside a parallel region in parallel as"
echo "the layer made them, a replay right after each run of the layer (both bests come from the same"
echo "moments of the machine); above 100%, the layer beats its products alone (its data stays in"
echo "cache between them). The convolutions call no sgemm (register tiles, lib/conv2d_tile.c):"
echo "theirs are the products im2col would make, an image at a time, for forward, dinp and"
echo "dweight. The ViT block's forward products and input gradients run by register tiles"
echo "(lib/linear_tile.c): each is recorded as the sgemm call that would make it (tp_product_count),"
echo "so its column replays all of its products. The 1024^3 peak is the best run of the whole table; it moves by up to 20%"
echo "between runs on this shared machine, while the layers' times move less."
if [ -n "$env_coretype" ] && [ "$env_coretype" != "${OPENBLAS_CORETYPE:-}" ]; then
    echo
    echo "With the environment's OPENBLAS_CORETYPE=$env_coretype instead: $(OPENBLAS_CORETYPE=$env_coretype \
        "$B/bench_layers" "$reps" | grep '^sgemm peak')."
fi
vit=$("$B/bench_layers" "$reps" | sed -n 's/^VIT_BLOCK_MS //p')
echo
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    tb=$(/usr/bin/python3 bench/torch_block.py "$reps" "$(nproc)")
    echo "Pre-LN ViT block (titok-tiny: B=32, T=97, W=256, 4 heads), forward + backward:"
    echo "tokpipe $vit ms, PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') $tb ms:"
    /usr/bin/python3 -c "print(f'tokpipe takes {float($vit)/float($tb):.2f}x the time of PyTorch (below 1: faster).')"
else
    echo "PyTorch not installed: the ViT block comparison was skipped."
fi
echo
echo "## Streams: .tz write and read against the zstd command (issue 2)"
echo
if [ -f data/fmnist-test.tz ]; then
    echo "| stream | level | records | MB | ratio | write MB/s | zstd -c MB/s | write vs zstd | read MB/s | zstd -dc MB/s | read vs zstd |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    tmp=$(mktemp -d)
    for lvl in 1 3 9; do "$B/bench_tz" data/fmnist-test.tz $lvl "$tmp"; done
    # floats that hardly compress: MaskGIT's logits (random weights), batch 64 x 32 tokens
    bin/transformer --init -w "$tmp/mg.st" --arch maskgit-tiny --seed 21 2>/dev/null
    bin/tz make --field ids:I32:64x32=rand:5 --field label:I32:64=0 --records 6 |
        bin/transformer -w "$tmp/mg.st" -l 1 -o "$tmp/logits.tz"
    for lvl in 3 -1; do "$B/bench_tz" "$tmp/logits.tz" $lvl "$tmp" | sed "s|$tmp/||"; done
    rm -rf "$tmp"
    echo
    echo "MB are 10^6 bytes of decompressed records; the zstd command compresses the same"
    echo "bytes (the records concatenated) single-threaded at the same level. logits.tz: MaskGIT's"
    echo "logits (maskgit-tiny, random weights, 64 x 32 tokens x 1024 a record), the floats the tools"
    echo "write at level -1 after the first record (tz(5), Compression levels)."
    echo
    echo "## img2patch on Fashion-MNIST (issue 2)"
    echo
    t0=$(date +%s.%N)
    bin/img2patch -b 256 --pad 2 --labels /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz \
        /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz > /dev/null
    t1=$(date +%s.%N)
    /usr/bin/python3 -c "t=$t1-$t0; print(f'60000 images (IDX, gzip, padded to 32x32, batches of 256, zstd level 3) in {t:.2f} s: {60000/t:.0f} images/s.')"
    echo
    echo "## A VQGAN training step: process boundaries against compute (issue 4)"
    echo
    echo "vqgan-tiny, batch 32, Fashion-MNIST, L2 loss; the mean over ${BENCH_TRAIN_STEPS:-16} steps:"
    echo
    sh bench/train_split.sh "$B" data/fmnist-train.tz "${BENCH_TRAIN_STEPS:-16}" 32
else
    echo "No data: run \`make data\` first for the stream, img2patch and training figures."
fi
echo
echo "## The tools against PyTorch: training steps, sampling, encoding (issues 6 and 9)"
echo
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    SPEED_PEAK=$(sed -n 's/^sgemm peak[^:]*: \([0-9.]*\) GFLOP.*/\1/p' /tmp/bench_layers.$$) \
        sh bench/speed_vs_torch.sh "${BENCH_SPEED_REPS:-5}" ${BENCH_SPEED_STEPS:-3 11}
else
    echo "PyTorch not installed: the comparison was skipped."
fi
echo
cat bench/levers.md
echo
sh bench/runs.sh
} > "$out"
mv "$out" bench/results.md
echo "bench: wrote bench/results.md"
