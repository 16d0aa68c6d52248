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
v=runs/vqgan-fmnist/eval.tsv t=runs/titok2-fmnist/eval.tsv r=runs/demo/eval.tsv
if [ -f "$v" ] && [ -f "$t" ]; then
    # get FILE KEY [FORMAT]: a value of an eval.tsv, "-" where it is missing
    get() { awk -F'\t' -v k="$2" -v f="${3:-%.3f}" '$1 == k { printf f, $2; ok = 1 } END { if (!ok) printf "-" }' "$1" 2>/dev/null || printf -- -; }
    echo "| tokenizer (held-out) | tokens per image | PSNR dB | SSIM | rFD | codes used | perplexity |"
    echo "|---|---|---|---|---|---|---|"
    echo "| VQGAN teacher | 64 | $(get $v psnr) | $(get $v ssim) | $(get $r rfd_vqgan %.2f) | $(get $v codes_used %d) | $(get $v perplexity %.0f) |"
    echo "| TiTok stage 1, argmax codes through the teacher | 32 | $(get $t psnr_stage1_argmax) | $(get $t ssim_stage1_argmax) | $(get $r rfd_titok_argmax %.2f) | $(get $t codes_used %d) | $(get $t perplexity %.0f) |"
    echo "| TiTok stage 1, soft codes through the teacher | 32 | $(get $t psnr_stage1_soft) | $(get $t ssim_stage1_soft) | $(get $r rfd_titok_soft %.2f) | | |"
    echo "| TiTok stage 2 | 32 | $(get $t psnr) | $(get $t ssim) | $(get $r rfd_titok %.2f) | | |"
    echo
    awk -F'\t' 'FNR == 1 { f++ } f == 1 && $1 == "psnr" { v = $2 } f == 2 && $1 == "psnr" { t = $2 }
        END { if (v > t) printf "On the same test images the VQGAN with 64 tokens reconstructs better: %.2f dB PSNR against\n%.2f dB for TiTok stage 2 with 32 tokens, so at this budget the paper'"'"'s claim (32 1D tokens\nas good as a 2D grid) does not reproduce.", v, t
              else printf "On the same test images TiTok stage 2 with 32 tokens reconstructs as well or better: %.2f dB\nPSNR against %.2f dB for the VQGAN with 64 tokens.", t, v
              printf " rFD is the Frechet distance of the reconstructions to the test set in the\nevaluation classifier'"'"'s features (the report'"'"'s; lower is better). The runs are those of `make demo`\n(their steps and seconds above).\n" }' "$v" "$t"
else
    echo "No finished VQGAN and TiTok stage-2 runs: \`make demo\` makes them."
fi
echo
echo "Test figures are on held-out images (the demo's runs: the first 2000 of the Fashion-MNIST"
echo "test set, TEST_SAMPLES; the 1-hour VQGAN run: all 10,000) with EMA"
echo "weights; PSNR/SSIM of reconstructions clamped to [0,1]; acc is proxy-code accuracy"
echo "(TiTok stage 1) or masked-token accuracy (MaskGIT)."
