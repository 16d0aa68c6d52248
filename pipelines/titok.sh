#!/bin/sh
# titok.sh - TiTok stage 1 (proxy codes) or stage 2 (decoder on pixels),
# trained in stream mode by pipelines/train.sh, then evaluated.
# Called by pipelines/titok.mk with STAGE=1|2 and:
#   RUN TEACHER (the VQGAN run dir) S1 (stage 1's run dir, for stage 2)
#   DATA_TRAIN DATA_TEST CHANNELS STEPS BATCH LR WARMUP CKPT_EVERY SEED
#   LOSSES GAN_START THREADS BIN PYTHON
. "$(dirname "$0")/lib.sh"
PATH="$BIN:$PATH"
mkdir -p "$RUN/init"
ENDLR=$(echo "$LR" | awk '{print $1/10}')
if [ "$STAGE" = 1 ]; then
    # the images with the teacher's codes as targets (proxy codes), made once
    [ -f "$RUN/train.tz" ] || tz merge "$DATA_TRAIN" "$TEACHER/tokens-train.tz" -o "$RUN/train.tz"
    init_once "$RUN/init/encode.safetensors" encode --arch titok-tiny --set channels=$CHANNELS --seed "$SEED"
    init_once "$RUN/init/vq.safetensors" vq --arch titok-tiny --seed "$((SEED + 1))"
    init_once "$RUN/init/decode.safetensors" decode --arch titok-tiny --set channels=$CHANNELS --seed "$((SEED + 2))"
    # upstream stage 1: AdamW betas (0.9, 0.99), wd 1e-4, warmup + cosine to end lr, clip 1
    OPT="--lr $LR --betas 0.9,0.99 --wd 1e-4 --schedule cosine --warmup $WARMUP --total $STEPS --end-lr $ENDLR --clip 1.0"
    RUN=$RUN FEED="--rename ids=target $RUN/train.tz" CHAIN="encode:encode vq:vq decode:decode" \
        LOSS="$LOSSES" OPT="$OPT" TITLE="TiTok stage 1 ($(basename "$RUN"))" sh "$(dirname "$0")/train.sh"
    # held-out proxy-code accuracy and loss
    # every test image once: batches of 256, the last one short
    tz merge "$DATA_TEST" "$TEACHER/tokens-test.tz" |
        tz feed -b 256 --steps $(( ($(samples_of "$DATA_TEST") + 255) / 256 )) --no-shuffle --rename ids=target |
        tz head --samples "$(samples_of "$DATA_TEST")" |
        encode -w "$RUN/encode.ema.safetensors" -j "$THREADS" | vq -w "$RUN/vq.ema.safetensors" -j "$THREADS" |
        decode -w "$RUN/decode.ema.safetensors" -j "$THREADS" | loss ce --eval > "$RUN/eval.tsv"
else
    # stage 2: frozen encoder and quantizer; the decoder grows the teacher's
    # codebook and pixel decoder (upstream: pixel_quantize., pixel_decoder.)
    cp "$S1/encode.ema.safetensors" "$RUN/init/encode.safetensors"
    cp "$S1/vq.ema.safetensors" "$RUN/init/vq.safetensors"
    init_once "$RUN/init/decode.safetensors" decode --arch titok-tiny-pixel --set channels=$CHANNELS \
        --set pixel_channels=$CHANNELS --seed "$SEED" \
        --init-from "$S1/decode.ema.safetensors" \
        --init-from "$TEACHER/vq.ema.safetensors:quantize.=pixel_quantize." \
        --init-from "$TEACHER/decode.ema.safetensors:decoder.=pixel_decoder."
    # upstream stage 2: AdamW betas (0.9, 0.999), wd 1e-4
    OPT="--lr $LR --betas 0.9,0.999 --wd 1e-4 --schedule cosine --warmup $WARMUP --total $STEPS --end-lr $ENDLR --clip 1.0"
    RUN=$RUN FEED="$DATA_TRAIN" CHAIN="encode:encode:frozen vq:vq:frozen decode:decode" \
        LOSS="$LOSSES --gan-start $GAN_START" OPT="$OPT" TITLE="TiTok stage 2 ($(basename "$RUN"))" \
        sh "$(dirname "$0")/train.sh"
    encode -w "$RUN/init/encode.safetensors" -j "$THREADS" < "$DATA_TEST" | vq -w "$RUN/init/vq.safetensors" -j "$THREADS" |
        decode -w "$RUN/decode.ema.safetensors" -j "$THREADS" -o "$RUN/test-recon.tz"
    loss mse psnr ssim --eval < "$RUN/test-recon.tz" > "$RUN/eval.tsv"
    tz head -n 1 "$RUN/test-recon.tz" | patch2img -f image,recon --grid "$RUN/recon.png" --cols 16 --rows 4
fi
echo "titok stage $STAGE: $(tr '\t\n' '= ' < "$RUN/eval.tsv")"
