#!/bin/sh
# report.sh - the demo's report: OUT/report.md and OUT/report.html (the same
# content; the HTML opens from disk, its images are copied next to it).
# Called by pipelines/report.mk with:
#   OUT DATA DATA_TRAIN DATA_TEST VQGAN_RUN TITOK1_RUN TITOK2_RUN MG1_RUN MG2_RUN (run directories)
#   SAMPLE1 SAMPLE2 (sample directories of MaskGIT 1D and 2D), EDIT (editing
#   outputs, optional), EVAL (OUT/eval.tsv: Frechet distances and classifier
#   accuracies, optional), CLS_RUN (the classifier's run, optional)
# Every figure comes from a file a stage wrote; a missing one prints "-".
. "$(dirname "$0")/lib.sh"
mkdir -p "$OUT/img"
MD=$OUT/report.md.tmp HTML=$OUT/report.html.tmp
: > "$MD"
: > "$HTML"

# kv FILE KEY [FORMAT]: the value of KEY in a KEY<TAB>VALUE file, or "-"
kv() {
    v=$(awk -F'\t' -v k="$2" '$1 == k { print $2; exit }' "$1" 2>/dev/null)
    if [ -z "$v" ]; then echo "-"; else awk -v v="$v" -v f="${3:-%.4g}" 'BEGIN { printf f "\n", v }'; fi
}
secs() { if [ -f "$1/train-seconds" ]; then cat "$1/train-seconds"; else echo "-"; fi; }
steps() { sed -n 's/^steps=//p' "$1/config" 2>/dev/null || echo "-"; }
batch() { sed -n 's/^batch=//p' "$1/config" 2>/dev/null || echo "-"; }
esc() { sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g'; }

h() { # LEVEL TEXT
    printf '%s %s\n\n' "$(printf '%*s' "$1" '' | tr ' ' '#')" "$2" >> "$MD"
    printf '<h%d>%s</h%d>\n' "$1" "$(echo "$2" | esc)" "$1" >> "$HTML"
}
p() {
    printf '%s\n\n' "$*" >> "$MD"
    printf '<p>%s</p>\n' "$(echo "$*" | esc | sed 's/`\([^`]*\)`/<code>\1<\/code>/g')" >> "$HTML"
}
# table: rows on stdin, cells separated by "|", the first row the header
table() {
    awk -F'|' -v md="$MD" -v html="$HTML" '
        function e(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
        NR == 1 { print "<table>" >> html }
        {
            line = "|"; row = "<tr>"; tag = NR == 1 ? "th" : "td"
            for (i = 1; i <= NF; i++) { line = line " " $i " |"; row = row "<" tag ">" e($i) "</" tag ">" }
            print line >> md; print row "</tr>" >> html
            if (NR == 1) { sep = "|"; for (i = 1; i <= NF; i++) sep = sep "---|"; print sep >> md }
        }
        END { print "" >> md; print "</table>" >> html }'
}
# img SRC NAME CAPTION: copy SRC to OUT/img/NAME and show it (if SRC exists)
img() {
    [ -f "$1" ] || { p "($3: not made)"; return 0; }
    cp "$1" "$OUT/img/$2"
    printf '![%s](img/%s)\n\n' "$3" "$2" >> "$MD"
    printf '<figure><img src="img/%s" alt="%s"><figcaption>%s</figcaption></figure>\n' "$2" "$3" "$(echo "$3" | esc)" >> "$HTML"
}

cat >> "$HTML" <<'EOF'
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tokpipe demo report</title>
<style>
body { font-family: sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
img { image-rendering: pixelated; max-width: 100%; border: 1px solid #ddd; }
figure { margin: 1em 0; }
</style>
<script>
// for tests and readers: how many images failed to load
window.addEventListener("load", function () {
  var bad = 0, all = document.images;
  for (var i = 0; i < all.length; i++) if (!all[i].complete || all[i].naturalWidth === 0) bad++;
  document.body.setAttribute("data-images", all.length);
  document.body.setAttribute("data-broken", bad);
});
</script>
</head><body>
EOF

h 1 "tokpipe demo report ($DATA)"
p "Made by \`make demo\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), on $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)). Held-out figures are on the data set's test split ($(samples_of "$DATA_TEST") images); models are evaluated with their EMA weights."
[ "${DATA_TRAIN:-}" != "$DATA_TEST" ] || p "This data set has no held-out split: the figures below are on training images, so they measure fit, not generalisation, and the test set against the training set is 0 by construction."
p "The Frechet distances below use the features of a small classifier this project trains on the same data set's labels, not Inception-v3 on ImageNet: they compare models within this report only and are not comparable with published FIDs, which also use 50,000 samples at 256x256. Lower is better; the test set against the training set gives the floor."

h 2 "Tokenizers: TiTok (32 tokens) against the VQGAN (64 tokens)"
{
    echo "model|tokens per image|PSNR (dB)|SSIM|codes used (test set)|perplexity|rFD"
    echo "VQGAN teacher (8x8)|64|$(kv "$VQGAN_RUN/eval.tsv" psnr %.2f)|$(kv "$VQGAN_RUN/eval.tsv" ssim %.3f)|$(kv "$VQGAN_RUN/eval.tsv" codes_used %d)|$(kv "$VQGAN_RUN/eval.tsv" perplexity %.1f)|$(kv "$EVAL" rfd_vqgan %.2f)"
    echo "TiTok stage 1, argmax codes through the teacher|32|$(kv "$TITOK2_RUN/eval.tsv" psnr_stage1_argmax %.2f)|$(kv "$TITOK2_RUN/eval.tsv" ssim_stage1_argmax %.3f)|$(kv "$TITOK2_RUN/eval.tsv" codes_used %d)|$(kv "$TITOK2_RUN/eval.tsv" perplexity %.1f)|$(kv "$EVAL" rfd_titok_argmax %.2f)"
    echo "TiTok stage 1, soft codes through the teacher|32|$(kv "$TITOK2_RUN/eval.tsv" psnr_stage1_soft %.2f)|$(kv "$TITOK2_RUN/eval.tsv" ssim_stage1_soft %.3f)|||$(kv "$EVAL" rfd_titok_soft %.2f)"
    echo "TiTok stage 2 (decoder fine-tuned on pixels)|32|$(kv "$TITOK2_RUN/eval.tsv" psnr %.2f)|$(kv "$TITOK2_RUN/eval.tsv" ssim %.3f)|||$(kv "$EVAL" rfd_titok %.2f)"
} | table
p "TiTok stage 1 predicts the teacher's codes from its 32 tokens: held-out proxy-code accuracy $(kv "$TITOK1_RUN/eval.tsv" acc %.3f), cross-entropy $(kv "$TITOK1_RUN/eval.tsv" ce %.3f). The test set against the training set: FD $(kv "$EVAL" fd_test_train %.2f)."
img "$VQGAN_RUN/recon.png" vqgan-recon.png "VQGAN: test images (odd rows) over their reconstructions"
img "$TITOK2_RUN/recon.png" titok-recon.png "TiTok: rows of inputs, stage 1 argmax codes, stage 1 soft codes, stage 2"

h 2 "Generators: MaskGIT on 1D against 2D tokens"
{
    echo "tokens|per image|masked-token accuracy|gFD|gFD floor|classifier accuracy on class-conditional samples|sampling images/s"
    echo "TiTok 1D|32|$(kv "$MG1_RUN/eval.tsv" acc %.3f)|$(kv "$EVAL" gfd_1d %.2f)|$(kv "$EVAL" gfd_1d_floor %.2f)|$(kv "$EVAL" class_acc_1d %.3f)|$(kv "$SAMPLE1/speed.tsv" images_per_s %.1f)"
    echo "VQGAN 2D|64|$(kv "$MG2_RUN/eval.tsv" acc %.3f)|$(kv "$EVAL" gfd_2d %.2f)|$(kv "$EVAL" gfd_2d_floor %.2f)|$(kv "$EVAL" class_acc_2d %.3f)|$(kv "$SAMPLE2/speed.tsv" images_per_s %.1f)"
} | table
p "Samples: $(kv "$SAMPLE1/speed.tsv" images %d) per token kind, $(kv "$SAMPLE1/speed.tsv" steps %d) decoding steps, guidance $(kv "$SAMPLE1/speed.tsv" guidance %g); a column per class. The gFD floor is what as many real training images score against the test set: a few hundred samples cannot score below it. Images/s count the whole loop of processes (transformer and mask per step, then the tokenizer's decoder) on this machine. The classifier's accuracy on real test images is $(kv "$CLS_RUN/eval.tsv" test_acc %.3f)."
img "$SAMPLE1/samples.png" samples-1d.png "MaskGIT on TiTok's 32 tokens: samples, one column per class"
img "$SAMPLE2/samples.png" samples-2d.png "MaskGIT on the VQGAN's 8x8 tokens: samples, one column per class"

if [ -n "${EDIT:-}" ] && [ -d "$EDIT" ]; then
    h 2 "Inpainting, outpainting, class-conditional editing (2D tokens)"
    p "MaskGIT's editing recipe on test images: the pixel box becomes a token box with a one-token margin, the tokens there are masked, decoding runs from step 2 of 12, and the result is blended into the input with a blurred mask."
    for k in inpaint outpaint edit; do
        f=$(ls "$EDIT"/$k*/grid.png 2>/dev/null | head -1)
        [ -n "$f" ] && img "$f" "$k.png" "$k: rows of inputs, masked inputs, decoded, blended"
    done
fi

h 2 "Training"
{
    echo "stage|steps|batch|seconds"
    for r in "$VQGAN_RUN:VQGAN teacher" "$TITOK1_RUN:TiTok stage 1" "$TITOK2_RUN:TiTok stage 2" \
             "$MG1_RUN:MaskGIT 1D" "$MG2_RUN:MaskGIT 2D" "${CLS_RUN:-none}:classifier"; do
        d=${r%%:*} name=${r#*:}
        [ -d "$d" ] && echo "$name|$(steps "$d")|$(batch "$d")|$(secs "$d")"
    done
} | table
for r in "$VQGAN_RUN:vqgan" "$TITOK1_RUN:titok1" "$TITOK2_RUN:titok2" "$MG1_RUN:maskgit-1d" "$MG2_RUN:maskgit-2d"; do
    d=${r%%:*}
    img "$d/loss.png" "loss-${r#*:}.png" "loss curves: $(basename "$d")"
done
echo "</body></html>" >> "$HTML"
mv "$MD" "$OUT/report.md"
mv "$HTML" "$OUT/report.html"
echo "report: $OUT/report.md, $OUT/report.html"
