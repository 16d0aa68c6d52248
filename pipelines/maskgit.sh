#!/bin/sh
# maskgit.sh - MaskGIT (maskgit-tiny, ImageBert layout) trained on TiTok's 1D
# tokens or the VQGAN's 2D tokens: masked-token cross-entropy with label
# smoothing 0.1 and weight 0.1 on unmasked tokens, AdamW betas (0.9, 0.96),
# weight decay 0.03 (upstream's generator recipe), then masked-token
# accuracy on the test tokens. Called by pipelines/maskgit.mk with:
#   RUN TOKENS_TRAIN TOKENS_TEST K CLASSES STEPS BATCH LR WARMUP CKPT_EVERY SEED THREADS BIN
. "$(dirname "$0")/lib.sh"
PATH="$BIN:$PATH"
mkdir -p "$RUN/init"
init_once "$RUN/init/transformer.safetensors" transformer --arch maskgit-tiny --set tokens=$K \
    --set classes=$CLASSES --seed "$SEED"
OPT="--lr $LR --betas 0.9,0.96 --wd 0.03 --schedule cosine --warmup $WARMUP --total $STEPS --end-lr $(echo "$LR" | awk '{print $1/10}') --clip 1.0"
RUN=$RUN FEED="$TOKENS_TRAIN" PREFILTER="mask --train --vocab 1024" CHAIN="transformer:transformer" \
    LOSS="ce --label-smoothing 0.1 --unmasked-weight 0.1" OPT="$OPT" TITLE="MaskGIT ($(basename "$RUN"))" \
    sh "$(dirname "$0")/train.sh"
# held-out: the same masking (seeded), accuracy on the masked tokens
n=$(samples_of "$TOKENS_TEST")
tz feed -b 256 --steps $(( (n + 255) / 256 )) --no-shuffle "$TOKENS_TEST" | tz head --samples "$n" |
    mask --train --vocab 1024 --class-dropout 0 --seed 99 |
    transformer -w "$RUN/transformer.ema.safetensors" -j "$THREADS" |
    loss ce --label-smoothing 0.1 --unmasked-weight 0.1 --eval > "$RUN/eval.tsv"
echo "maskgit: $(tr '\t\n' '= ' < "$RUN/eval.tsv")"
