#!/bin/sh
# vqgan.sh - train the VQGAN teacher in stream mode, then evaluate it.
# Called by pipelines/vqgan.mk; every setting comes from the environment:
#   RUN DATA_TRAIN DATA_TEST CHANNELS STEPS BATCH LR WARMUP CKPT_EVERY SEED
#   LOSSES (loss terms) GAN_START THREADS BIN
# A killed run resumes from the newest checkpoint all stages finished and ends
# with the weights an uninterrupted run would have.
. "$(dirname "$0")/lib.sh"
PATH="$BIN:$PATH"
mkdir -p "$RUN/init" "$RUN/ckpt"
ARCH="--arch vqgan-tiny --set channels=$CHANNELS"
init_once "$RUN/init/encode.safetensors" encode $ARCH --seed "$SEED"
init_once "$RUN/init/vq.safetensors" vq --arch vqgan-tiny --seed "$((SEED + 1))"
init_once "$RUN/init/decode.safetensors" decode $ARCH --seed "$((SEED + 2))"

STAGES="encode vq decode"
case " $LOSSES " in *" gan"*) STAGES="$STAGES loss" ;; esac
S=$(resume_step "$RUN/ckpt" $STAGES)
if [ "$S" -eq 0 ]; then
    for m in encode vq decode; do cp "$RUN/init/$m.safetensors" "$RUN/$m.safetensors"; done
    rm -f "$RUN/log.tsv" "$RUN"/*.state.safetensors "$RUN"/*.ema.safetensors "$RUN/disc.safetensors"
else
    echo "vqgan: resuming at step $S of $STEPS"
fi
OPT="--lr $LR --betas 0.9,0.99 --wd 1e-4 --schedule cosine --warmup $WARMUP --total $STEPS --end-lr $(echo "$LR" | awk '{print $1/10}') --clip 1.0"
COMMON="--train -j $THREADS --ckpt-every $CKPT_EVERY --start-step $S $OPT"
fifos "$RUN" g_recon g_quant g_latent
stage() { # tool, extra args
    m=$1; shift
    "$m" -w "$RUN/$m.safetensors" -s "$RUN/$m.state.safetensors" --ema "$RUN/$m.ema.safetensors" \
        --ckpt-dir "$RUN/ckpt/$m" $COMMON "$@"
}
t0=$(date +%s)
tz feed -b "$BATCH" --steps "$STEPS" --start-step "$S" --seed "$SEED" "$DATA_TRAIN" |
    stage encode --grad-in "$RUN/g_latent" |
    stage vq --grad-in "$RUN/g_quant" --grad-out "$RUN/g_latent" |
    stage decode --grad-in "$RUN/g_recon" --grad-out "$RUN/g_quant" |
    loss $LOSSES --log "$RUN/log.tsv" --start-step "$S" --steps "$STEPS" --progress -j "$THREADS" \
        --disc "$RUN/disc.safetensors" --disc-state "$RUN/disc.state.safetensors" --gan-start "$GAN_START" \
        --ckpt-dir "$RUN/ckpt/loss" --ckpt-every "$CKPT_EVERY" \
        --lr "$LR" --betas 0.9,0.99 --schedule cosine --warmup "$WARMUP" --total "$STEPS" --clip 1.0 \
        > "$RUN/g_recon"
t1=$(date +%s)
rm -f "$RUN/g_recon" "$RUN/g_quant" "$RUN/g_latent"
echo "$((t1 - t0))" > "$RUN/train-seconds"
plot_log "$RUN/log.tsv" "$RUN/loss.png" "VQGAN ($(basename "$RUN"))"

# held-out evaluation with the EMA weights (upstream evaluates EMA weights)
encode -w "$RUN/encode.ema.safetensors" -j "$THREADS" < "$DATA_TEST" |
    vq -w "$RUN/vq.ema.safetensors" -j "$THREADS" |
    decode -w "$RUN/decode.ema.safetensors" -j "$THREADS" -o "$RUN/test-recon.tz"
loss mse psnr ssim --eval < "$RUN/test-recon.tz" > "$RUN/eval.tsv"
tz head -n 1 "$RUN/test-recon.tz" | patch2img -f image,recon --grid "$RUN/recon.png" --cols 16 --rows 4
tz npy -i "$RUN/test-recon.tz" -d "$RUN/npy" ids
"${PYTHON:-/usr/bin/python3}" - "$RUN" <<'PY' >> "$RUN/eval.tsv"
import sys, numpy as np
ids = np.load(sys.argv[1] + "/npy/ids.npy").ravel()
counts = np.bincount(ids, minlength=1024)
p = counts[counts > 0] / ids.size
print("codes_used\t%d" % (counts > 0).sum())
print("perplexity\t%.2f" % np.exp(-(p * np.log(p)).sum()))
PY
rm -rf "$RUN/npy"
echo "vqgan: $(tr '\t\n' '= ' < "$RUN/eval.tsv")"
