#!/bin/sh
# vqgan.sh - train the VQGAN teacher in stream mode, then evaluate it.
# Called by pipelines/vqgan.mk; every setting comes from the environment:
#   RUN DATA_TRAIN DATA_TEST CHANNELS STEPS BATCH LR WARMUP CKPT_EVERY SEED
#   LOSSES (loss terms) GAN_START THREADS BIN; VQ_SET (extra --set of vq)
# The run itself is pipelines/train.sh's (resumable, bit-exact).
. "$(dirname "$0")/lib.sh"
PATH="$BIN:$PATH"
mkdir -p "$RUN/init" "$RUN/ckpt"
ARCH="--arch vqgan-tiny --set channels=$CHANNELS"
init_once "$RUN/init/encode.safetensors" encode $ARCH --seed "$SEED"
init_once "$RUN/init/vq.safetensors" vq --arch vqgan-tiny --seed "$((SEED + 1))" ${VQ_SET:-}
init_once "$RUN/init/decode.safetensors" decode $ARCH --seed "$((SEED + 2))"

OPT="--lr $LR --betas 0.9,0.99 --wd 1e-4 --schedule cosine --warmup $WARMUP --total $STEPS --end-lr $(echo "$LR" | awk '{print $1/10}') --clip 1.0"
RUN=$RUN FEED="$DATA_TRAIN" CHAIN="encode:encode vq:vq decode:decode" \
    LOSS="$LOSSES --gan-start $GAN_START" OPT="$OPT" TITLE="VQGAN ($(basename "$RUN"))" \
    sh "$(dirname "$0")/train.sh"

# held-out evaluation with the EMA weights (upstream evaluates EMA weights)
encode -w "$RUN/encode.ema.safetensors" -j "$THREADS" < "$DATA_TEST" |
    vq -w "$RUN/vq.ema.safetensors" -j "$THREADS" |
    decode -w "$RUN/decode.ema.safetensors" -j "$THREADS" | tz drop latent,quant -o "$RUN/test-recon.tz"
loss mse psnr ssim --eval < "$RUN/test-recon.tz" > "$RUN/eval.tsv"
tz head -n 1 "$RUN/test-recon.tz" | patch2img -f image,recon --grid "$RUN/recon.png" --cols 16 --rows 4
code_usage "$RUN/test-recon.tz" "$(st_meta "$RUN/vq.ema.safetensors" codes)" >> "$RUN/eval.tsv"
echo "vqgan: $(tr '\t\n' '= ' < "$RUN/eval.tsv")"
