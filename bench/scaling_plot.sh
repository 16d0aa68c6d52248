#!/bin/sh
# scaling_plot.sh - the PNG of TiTok stage 1's step time against batch,
# latent tokens and image size (bench/speed_vs_torch.sh, How cost grows).
#   sh bench/scaling_plot.sh DAT PNG THREADS
# DAT: one line per point, "batch tokens image tokpipe_ms pytorch_ms".
# Each panel takes the points where the other two are at 32, sorted along
# its own axis (a line through points in measurement order breaks).
set -eu
DAT=$1 PNG=$2 J=$3
T=$(mktemp -d /tmp/scaling.XXXXXX)
trap 'rm -rf "$T"' EXIT
awk '$2 == 32 && $3 == 32' "$DAT" | sort -n -k1,1 -u > "$T/batch"
awk '$1 == 32 && $3 == 32' "$DAT" | sort -n -k2,2 -u > "$T/tokens"
awk '$1 == 32 && $2 == 32' "$DAT" | sort -n -k3,3 -u > "$T/image"
gnuplot <<GP
set terminal pngcairo size 1200,400 noenhanced
set output '$T/out.png'
set multiplot layout 1,3 title 'TiTok stage 1 training step, tokpipe and PyTorch ($J threads)'
set ylabel 'ms per step'
set key top left
set logscale x 2
set logscale y
set offsets graph 0.05, graph 0.05, 0, 0
set xlabel 'batch (32 tokens, 32x32)'
plot '$T/batch' using 1:4 with linespoints title 'tokpipe', '' using 1:5 with linespoints title 'PyTorch'
set xlabel 'latent tokens (batch 32, 32x32)'
plot '$T/tokens' using 2:4 with linespoints title 'tokpipe', '' using 2:5 with linespoints title 'PyTorch'
set xlabel 'image side (batch 32, 32 tokens)'
plot '$T/image' using 3:4 with linespoints title 'tokpipe', '' using 3:5 with linespoints title 'PyTorch'
unset multiplot
GP
mv "$T/out.png" "$PNG"
