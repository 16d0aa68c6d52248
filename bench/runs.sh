#!/bin/sh
# runs.sh - the training runs section of bench/results.md: every finished
# run in runs/ (not QUICK ones) with its held-out figures, its loss curve as
# numbers, and TiTok-32 against the VQGAN-64 on the same test images.
# Called by bench/run.sh; prints markdown. After a new `make demo`,
#   sh bench/runs.sh
# prints the section alone.
set -eu
cd "$(dirname "$0")/.."
echo "## Training runs (the demo-sized pipelines, issues 4-6)"
echo
found=
for e in runs/*/eval.tsv; do
    [ -f "$e" ] || continue
    d=$(dirname "$e")
    case "$d" in *-quick) continue ;; esac
    found=1
    if [ ! -f "$d/log.tsv" ]; then   # the demo's report: its scores
        echo "- \`$d\` (the report's Frechet distances and class accuracies): $(tr '\t\n' '= ' < "$e")"
        continue
    fi
    steps=$(tail -1 "$d/log.tsv" | cut -f1)
    echo "- \`$d\`: $((${steps:-0} + 1)) steps in $(cat "$d/train-seconds" 2>/dev/null || echo ?) s; held-out: $(tr '\t\n' '= ' < "$e")"
done
[ -n "$found" ] || echo "No finished runs: \`make demo\` makes them."
if [ -n "$found" ]; then
    echo
    echo "Loss curves as numbers (each run's loss.png draws them): the training loss"
    echo "(\`total\` in log.tsv, the mean of 10 steps around each point) and the training"
    echo "accuracy over the last 10 steps, where the run logs one: of the proxy codes (TiTok"
    echo "stage 1), of the masked tokens (MaskGIT), of the labels (the classifier)."
    echo
    echo "| run | start | 25% | 50% | 75% | end | training accuracy, end |"
    echo "|---|---|---|---|---|---|---|"
    for e in runs/*/eval.tsv; do
        d=$(dirname "$e")
        case "$d" in *-quick) continue ;; esac
        [ -f "$d/log.tsv" ] || continue
        awk -F'\t' -v run="$d" 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
            { n++; t[n] = $col["total"]; if ("acc" in col) a[n] = $col["acc"] }
            function at(f,   c, s, k, j) { c = int(1 + f * (n - 1)); s = 0; k = 0
                for (j = c - 5; j < c + 5; j++) if (j >= 1 && j <= n) { s += t[j]; k++ }
                return s / k }
            END { if (n < 10) exit
                  acc = "-"; if ("acc" in col) { s = 0; for (j = n - 9; j <= n; j++) s += a[j]; acc = sprintf("%.3f", s / 10) }
                  printf "| `%s` | %.4g | %.4g | %.4g | %.4g | %.4g | %s |\n", run, at(0), at(0.25), at(0.5), at(0.75), at(1), acc }' "$d/log.tsv"
    done
fi
echo
echo "### TiTok with 32 tokens against the VQGAN with 64 tokens (issue 5)"
echo
v=runs/vqgan-fmnist/eval.tsv t=runs/titok2-fmnist/eval.tsv
if [ -f "$v" ] && [ -f "$t" ]; then
    get() { awk -F'\t' -v k="$2" '$1 == k { printf "%.3f", $2; f = 1 } END { if (!f) printf "-" }' "$1"; }
    echo "| tokenizer (held-out) | tokens per image | PSNR dB | SSIM | codes used | perplexity |"
    echo "|---|---|---|---|---|---|"
    echo "| VQGAN teacher | 64 | $(get $v psnr) | $(get $v ssim) | $(get $v codes_used) | $(get $v perplexity) |"
    echo "| TiTok stage 1, argmax codes through the teacher | 32 | $(get $t psnr_stage1_argmax) | $(get $t ssim_stage1_argmax) | $(get $t codes_used) | $(get $t perplexity) |"
    echo "| TiTok stage 1, soft codes through the teacher | 32 | $(get $t psnr_stage1_soft) | $(get $t ssim_stage1_soft) | | |"
    echo "| TiTok stage 2 | 32 | $(get $t psnr) | $(get $t ssim) | | |"
    echo
    echo "The same test images, the runs of \`make demo\` (their steps and seconds above)."
else
    echo "No finished VQGAN and TiTok stage-2 runs: \`make demo\` makes them."
fi
echo
echo "Test figures are on held-out images (the demo's runs: the first 2000 of the Fashion-MNIST"
echo "test set, TEST_SAMPLES; the 1-hour VQGAN run: all 10,000) with EMA"
echo "weights; PSNR/SSIM of reconstructions clamped to [0,1]; acc is proxy-code accuracy"
echo "(TiTok stage 1) or masked-token accuracy (MaskGIT)."
