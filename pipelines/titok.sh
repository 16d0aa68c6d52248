#!/bin/sh
# titok.sh - TiTok stage 1 (proxy codes) or stage 2 (decoder on pixels),
# trained in stream mode by pipelines/train.sh, then evaluated.
# Called by pipelines/titok.mk with STAGE=1|2 and:
#   RUN TEACHER (the VQGAN run dir) S1 (stage 1's run dir, for stage 2)
#   DATA_TRAIN DATA_TEST CHANNELS STEPS BATCH LR WARMUP CKPT_EVERY SEED
#   LOSSES GAN_START THREADS BIN PYTHON; AUG (stage 1: non-empty mirrors the
#   training images at random, proxy codes from the teacher on the fly)
. "$(dirname "$0")/lib.sh"
PATH="$BIN:$PATH"
mkdir -p "$RUN/init"
ENDLR=$(echo "$LR" | awk '{print $1/10}')
if [ "$STAGE" = 1 ]; then
    if [ -n "${AUG:-}" ]; then
        # augmented images (mirrored at random by the feed): their proxy codes
        # come from the teacher on the fly, frozen stages ahead of TiTok's
        FEED="--hflip $DATA_TRAIN"
        PRE="encode -w $TEACHER/encode.ema.safetensors -j $THREADS | vq -w $TEACHER/vq.ema.safetensors -j $THREADS"
        PRE="$PRE | tz drop latent,quant | tz rename ids=target"
    else
        # the images with the teacher's codes as targets (proxy codes), made
        # once; the codes may cover only the first training images (TOKENS_TRAIN)
        [ "$RUN/train.tz" -nt "$TEACHER/tokens-train.tz" ] ||
            tz head --samples "$(samples_of "$TEACHER/tokens-train.tz")" "$DATA_TRAIN" |
            tz merge - "$TEACHER/tokens-train.tz" -o "$RUN/train.tz"
        FEED="--rename ids=target $RUN/train.tz" PRE=
    fi
    init_once "$RUN/init/encode.safetensors" encode --arch titok-tiny --set channels=$CHANNELS --seed "$SEED"
    init_once "$RUN/init/vq.safetensors" vq --arch titok-tiny --seed "$((SEED + 1))"
    init_once "$RUN/init/decode.safetensors" decode --arch titok-tiny --set channels=$CHANNELS --seed "$((SEED + 2))"
    # upstream stage 1: AdamW betas (0.9, 0.99), wd 1e-4, warmup + cosine to end lr, clip 1
    OPT="--lr $LR --betas 0.9,0.99 --wd 1e-4 --schedule cosine --warmup $WARMUP --total $STEPS --end-lr $ENDLR --clip 1.0"
    RUN=$RUN FEED="$FEED" PREFILTER="$PRE" CHAIN="encode:encode vq:vq decode:decode" \
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
    # a teacher with the L2-normalised quantizer looks its codes up normalised
    init_once "$RUN/init/decode.safetensors" decode --arch titok-tiny-pixel --set channels=$CHANNELS \
        --set pixel_channels=$CHANNELS --set pixel_l2="$(st_meta "$TEACHER/vq.ema.safetensors" l2)" --seed "$SEED" \
        --init-from "$S1/decode.ema.safetensors" \
        --init-from "$TEACHER/vq.ema.safetensors:quantize.=pixel_quantize." \
        --init-from "$TEACHER/decode.ema.safetensors:decoder.=pixel_decoder."
    # upstream stage 2: AdamW betas (0.9, 0.999), wd 1e-4
    OPT="--lr $LR --betas 0.9,0.999 --wd 1e-4 --schedule cosine --warmup $WARMUP --total $STEPS --end-lr $ENDLR --clip 1.0"
    RUN=$RUN FEED="$DATA_TRAIN" CHAIN="encode:encode:frozen vq:vq:frozen decode:decode" \
        LOSS="$LOSSES --gan-start $GAN_START" OPT="$OPT" TITLE="TiTok stage 2 ($(basename "$RUN"))" \
        sh "$(dirname "$0")/train.sh"
    # held-out: the 1D tokens once, then three decoders of them: stage 1's
    # argmax codes through the teacher's decoder, stage 1's soft codes through
    # it (stage 2's starting point), and stage 2
    encode -w "$RUN/init/encode.safetensors" -j "$THREADS" < "$DATA_TEST" | vq -w "$RUN/init/vq.safetensors" -j "$THREADS" |
        tz drop latent -o "$RUN/test-tokens.tz"
    decode -w "$RUN/decode.ema.safetensors" -j "$THREADS" < "$RUN/test-tokens.tz" | tz drop quant \
        -o "$RUN/test-recon.tz"
    decode -w "$S1/decode.ema.safetensors" -j "$THREADS" < "$RUN/test-tokens.tz" | tz drop quant | tz argmax logits |
        vq -w "$TEACHER/vq.ema.safetensors" | decode -w "$TEACHER/decode.ema.safetensors" -j "$THREADS" |
        tz pick recon | tz rename recon=argmax -o "$RUN/test-argmax.tz"
    decode -w "$RUN/init/decode.safetensors" -j "$THREADS" < "$RUN/test-tokens.tz" |
        tz pick recon | tz rename recon=soft -o "$RUN/test-soft.tz"
    loss mse psnr ssim --eval < "$RUN/test-recon.tz" > "$RUN/eval.tsv"
    for kind in argmax soft; do
        tz merge "$RUN/test-recon.tz" "$RUN/test-$kind.tz" | tz drop recon | tz rename "$kind=recon" |
            loss mse psnr ssim --eval | sed -n "s/^\(mse\|psnr\|ssim\)\t/\1_stage1_$kind\t/p" >> "$RUN/eval.tsv"
    done
    code_usage "$RUN/test-tokens.tz" "$(st_meta "$RUN/init/vq.safetensors" codes)" >> "$RUN/eval.tsv"
    # rows of the grid: input, stage 1 argmax, stage 1 soft, stage 2
    tz head -n 1 "$RUN/test-argmax.tz" -o "$RUN/.argmax.tz"
    tz head -n 1 "$RUN/test-soft.tz" -o "$RUN/.soft.tz"
    tz head -n 1 "$RUN/test-recon.tz" | tz merge - "$RUN/.argmax.tz" | tz merge - "$RUN/.soft.tz" |
        patch2img -f image,argmax,soft,recon --grid "$RUN/recon.png" --cols 16 --rows 2
    rm -f "$RUN/.argmax.tz" "$RUN/.soft.tz"
fi
echo "titok stage $STAGE: $(tr '\t\n' '= ' < "$RUN/eval.tsv")"
