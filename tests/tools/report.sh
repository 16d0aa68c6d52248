#!/bin/sh
# This script tests: pipelines/report.sh
# Also requires: tz patch2img; chromium (Debian's package, `make deps`) for
# the browser check
# The demo report from a synthetic chain of run directories: the figures in
# report.md are the values of the runs' eval.tsv files, formatted; a missing
# figure prints "-"; every image is copied next to the report; report.html
# loads in headless Chromium from disk with every image loaded.
REPORT_SH="$(cd "$(dirname "$0")/../../pipelines" && pwd)/report.sh"
. "$(dirname "$0")/lib.sh"

png() { tz make --field image:F32:4x1x8x8=rand:"$2" | patch2img --grid "$1" --cols 2; }
mkdir -p vq t1 t2 m1 m2 cls m1/s m2/s edit/inpaint-x edit/outpaint-x edit/edit-c1-x
tz make --field image:F32:5x1x8x8 -o test.tz
printf 'mse\t0.01\npsnr\t20.123\nssim\t0.7111\ncodes_used\t454\nperplexity\t336.57\n' > vq/eval.tsv
printf 'ce\t1.9\nacc\t0.41419\n' > t1/eval.tsv
printf 'psnr\t16.37\nssim\t0.503\npsnr_stage1_argmax\t15.5\nssim_stage1_argmax\t0.45\npsnr_stage1_soft\t16.01\ncodes_used\t1000\nperplexity\t900.4\n' > t2/eval.tsv
printf 'acc\t0.34\n' > m1/eval.tsv
printf 'acc\t0.30\n' > m2/eval.tsv
printf 'test_acc\t0.9\n' > cls/eval.tsv
printf 'images_per_s\t41.26\nsteps\t8\nguidance\t2\n' > m1/s/speed.tsv
printf 'rfd_vqgan\t3.14159\ngfd_1d\t12.5\ngfd_1d_floor\t8.421\nclass_acc_1d\t0.8\nfd_test_train\t0.25\n' > eval.tsv
for d in vq t1 t2 m1 m2 cls; do
    printf 'steps=10\nbatch=4\n' > $d/config
    echo 7 > $d/train-seconds
done
png vq/recon.png 1; png t2/recon.png 2; png m1/s/samples.png 3; png m2/s/samples.png 4
png vq/loss.png 5; png t1/loss.png 6; png edit/inpaint-x/grid.png 7; png edit/outpaint-x/grid.png 8
png edit/edit-c1-x/grid.png 9

ok "report" env OUT=out DATA=synthetic DATA_TEST=test.tz VQGAN_RUN=vq TITOK1_RUN=t1 TITOK2_RUN=t2 \
    MG1_RUN=m1 MG2_RUN=m2 SAMPLE1=m1/s SAMPLE2=m2/s EDIT=edit EVAL=eval.tsv CLS_RUN=cls sh "$REPORT_SH"
row() { grep -F "| $1 " out/report.md | head -1; }
eq "VQGAN row" "$(row 'VQGAN teacher (8x8)')" "| VQGAN teacher (8x8) | 64 | 20.12 | 0.711 | 454 | 336.6 | 3.14 |"
eq "stage-1 argmax row" "$(row 'TiTok stage 1, argmax codes through the teacher')" \
    "| TiTok stage 1, argmax codes through the teacher | 32 | 15.50 | 0.450 | 1000 | 900.4 | - |"
eq "stage-1 soft row: a missing figure is -" "$(row 'TiTok stage 1, soft codes through the teacher')" \
    "| TiTok stage 1, soft codes through the teacher | 32 | 16.01 | - |  |  | - |"
eq "generator row" "$(row 'TiTok 1D')" "| TiTok 1D | 32 | 0.340 | 12.50 | 8.42 | 0.800 | 41.3 |"
eq "timing row" "$(row 'MaskGIT 2D')" "| MaskGIT 2D | 10 | 4 | 7 |"
has_md() { if grep -qF -- "$2" out/report.md; then _ok "$1"; else _no "$1" "no '$2' in report.md"; fi; }
has_md "proxy-code accuracy" "proxy-code accuracy 0.414"
has_md "the FD floor" "against the training set: FD 0.25."
has_md "the classifier's own accuracy" "accuracy on real test images is 0.900."
has_md "not ImageNet FIDs" "not comparable with published FIDs"
eq "images copied" "$(ls out/img | tr '\n' ' ')" \
    "edit.png inpaint.png loss-titok1.png loss-vqgan.png outpaint.png samples-1d.png samples-2d.png titok-recon.png vqgan-recon.png "
eq "the same images in both reports" "$(grep -o 'img/[a-z0-9-]*\.png' out/report.html | sort -u | wc -l)" \
    "$(grep -o 'img/[a-z0-9-]*\.png' out/report.md | sort -u | wc -l)"
eq "a missing plot is said" "$(grep -c 'loss curves: m1: not made' out/report.md)" "1"
no_file "no temporary left" out/report.md.tmp

# the HTML from disk in a browser: its script counts images that did not load
if command -v chromium >/dev/null 2>&1; then
    dom=$(timeout 60 chromium --headless --no-sandbox --disable-gpu --allow-file-access-from-files \
        --virtual-time-budget=5000 --dump-dom "file://$T/out/report.html" 2>/dev/null)
    eq "chromium: images in the page" "$(echo "$dom" | sed -n 's/.*data-images="\([0-9]*\)".*/\1/p')" "9"
    eq "chromium: every image loads" "$(echo "$dom" | sed -n 's/.*data-broken="\([0-9]*\)".*/\1/p')" "0"
    # and a broken image is noticed (the check can fail)
    rm out/img/samples-2d.png
    dom=$(timeout 60 chromium --headless --no-sandbox --disable-gpu --allow-file-access-from-files \
        --virtual-time-budget=5000 --dump-dom "file://$T/out/report.html" 2>/dev/null)
    eq "chromium: a missing image is counted" "$(echo "$dom" | sed -n 's/.*data-broken="\([0-9]*\)".*/\1/p')" "1"
else
    _skip=$((_skip + 1)); echo "SKIP chromium not installed (make deps installs it)"
fi
done_tests
