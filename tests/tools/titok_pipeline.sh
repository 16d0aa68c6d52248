#!/bin/sh
# This script tests: pipelines/titok.sh (through pipelines/train.sh)
# Also requires: encode vq decode loss tz patch2img
# TiTok's two stages as `make titok-stage1/2` run them, 2 steps each on 8
# images, from a teacher made by --init (untrained): stage 1 with precomputed
# proxy codes and with augmentation (mirrored images, codes on the fly); the
# held-out figures; stage 2's evaluation of the three decoders (stage-1
# argmax codes through the teacher, stage-1 soft codes, stage 2), the 1D
# tokens' code usage and the 4-row grid. Mirroring really changes the
# targets: stage 1's first loss differs between the two feeds.
PIPE="$(cd "$(dirname "$0")/../../pipelines" && pwd)"
. "$(dirname "$0")/lib.sh"

mkdir teacher
ok "images" tz make --field image:F32:8x1x32x32=rand:3 --field label:I32:8=0,1,2,3,4,5,6,7 --keys im -o data.tz
ARCH="--arch vqgan-tiny --set channels=1"
ok "teacher encode" encode --init -w teacher/encode.ema.safetensors $ARCH --seed 1
ok "teacher vq" vq --init -w teacher/vq.ema.safetensors --arch vqgan-tiny --set l2=1 --seed 2
ok "teacher decode" decode --init -w teacher/decode.ema.safetensors $ARCH --seed 3
for s in train test; do
    encode -w teacher/encode.ema.safetensors < data.tz | vq -w teacher/vq.ema.safetensors |
        tz pick ids,label -o teacher/tokens-$s.tz
done

stage() { # RUN STAGE [VAR=VALUE...]
    run=$1 st=$2; shift 2
    env TEACHER=teacher DATA_TRAIN=data.tz DATA_TEST=data.tz CHANNELS=1 BATCH=4 CKPT_EVERY=1 SEED=11 \
        THREADS=2 BIN="$TP_BIN" PYTHON="$PYTHON" RUN=$run STAGE=$st STEPS=2 LR=1e-4 WARMUP=0 "$@" \
        sh "$PIPE/titok.sh" > $run.out 2>&1
}
ok "stage 1" stage s1 1 LOSSES=ce
ok "stage 1, augmented" stage s1aug 1 LOSSES=ce AUG=1
ok "stage 2" stage s2 2 S1=s1 LOSSES=mse GAN_START=100
eq "stage 1: two steps logged" "$(tail -n +2 s1/log.tsv | wc -l)" 2
eq "stage 1 augmented: two steps logged" "$(tail -n +2 s1aug/log.tsv | wc -l)" 2
eq "stage 1 augmented: no merged copy of the data" "$(ls s1aug/train.tz 2>/dev/null)" ""
first_loss() { sed -n 2p "$1/log.tsv" | cut -f2; }
ok "augmentation changes the first loss" test "$(first_loss s1)" != "$(first_loss s1aug)"
eq "stage 1: held-out figures" "$(cut -f1 s1/eval.tsv | tr '\n' ' ')" "ce total acc records "
eq "stage 2: held-out figures" "$(cut -f1 s2/eval.tsv | tr '\n' ' ')" \
    "mse psnr ssim total records mse_stage1_argmax psnr_stage1_argmax ssim_stage1_argmax mse_stage1_soft psnr_stage1_soft ssim_stage1_soft codes_used perplexity "
# the soft decoder is stage 2's starting point: before training they differ
# only by 2 steps, but the argmax path is another decoder altogether
ok "stage 2: figures are finite numbers" awk -F'\t' '$2 + 0 != $2 { exit 1 }' s2/eval.tsv
eq "stage 2: the teacher is looked up normalised" "$(. "$PIPE/lib.sh"; st_meta s2/init/decode.safetensors pixel_l2)" 1
# 4 rows (input, argmax, soft, stage 2) of 8 images of 32 px, 2 px spacing:
# patch2img --cols 16 --rows 2: 16 columns x (2 x 4) rows of 34 px, 2 px border
eq "stage 2: grid size" "$("$PYTHON" -c "import struct; d=open('s2/recon.png','rb').read(24); print(struct.unpack('>II', d[16:24]))")" \
    "(546, 274)"
ok "a second run resumes: nothing to redo" stage s1 1 LOSSES=ce
ok "said so" grep -q "resuming at step 2 of 2" s1.out
ok "a changed recipe starts over" stage s1 1 LOSSES="ce --label-smoothing 0.1"
ok "said so" grep -q "the configuration changed: starting over" s1.out
done_tests
