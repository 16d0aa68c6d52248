#!/bin/sh
# This script tests: encode vq decode loss optim (the training protocol)
# Also requires: img2patch tz
# A few VQGAN training steps run in step mode (one process per stage per
# step, optim between) and in stream mode (FIFOs, in-process optimizer)
# end with bit-identical weights and optimizer state; a stream-mode run
# killed after a checkpoint and resumed ends identical too.
. "$(dirname "$0")/lib.sh"

# 4 tiny records of 4 gray 32x32 images each
"$PYTHON" - <<'PY'
import numpy as np, struct, gzip
rng = np.random.default_rng(0)
imgs = (rng.random((16, 32, 32)) * 255).astype(np.uint8)
with gzip.open("imgs.idx.gz", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, 16, 32, 32) + imgs.tobytes())
PY
ok "make images" sh -c 'img2patch -b 4 imgs.idx.gz | tz feed -b 4 --steps 4 --no-shuffle -o data.tz'
# the loss stage trains its own critic (gan term) from step 1: it too must
# end identical in every mode
GAN="gan:0.1 --gan-start 1 --lr 1e-3 --warmup 1 --schedule cosine --total 4"
ARCH="--arch vqgan-tiny --set hidden=32 --set mult=1,2 --set z=8"
OPT="--lr 1e-3 --warmup 2 --schedule cosine --total 4 --clip 1.0"
for m in encode vq decode; do
    case $m in vq) a="--arch vqgan-tiny --set dim=8 --set codes=64";; *) a=$ARCH;; esac
    ok "init $m" $m --init -w $m.st $a --seed 5 -j 2
    cp $m.st step_$m.st; cp $m.st stream_$m.st; cp $m.st kill_$m.st
done

# step mode
i=0
while [ $i -lt 4 ]; do
    tz slice $i:$((i + 1)) data.tz > in.tz
    encode -w step_encode.st --training -j 2 < in.tz > lat.tz &&
    vq -w step_vq.st --training -j 2 < lat.tz > q.tz &&
    decode -w step_decode.st --training -j 2 < q.tz > out.tz &&
    loss mse $GAN --disc step_disc.st --disc-state step_disc.state < out.tz > g.tz &&
    decode -w step_decode.st --backward q.tz -g dec.grad -j 2 < g.tz > qg.tz &&
    vq -w step_vq.st --backward lat.tz -g vq.grad -j 2 < qg.tz > lg.tz &&
    encode -w step_encode.st --backward in.tz -g enc.grad -j 2 < lg.tz > /dev/null &&
    optim -w step_encode.st -g enc.grad -s step_encode.state $OPT >/dev/null &&
    optim -w step_vq.st -g vq.grad -s step_vq.state $OPT >/dev/null &&
    optim -w step_decode.st -g dec.grad -s step_decode.state $OPT >/dev/null || { _no "step mode step $i" "failed"; break; }
    i=$((i + 1))
done
eq "step mode ran 4 steps" "$i" 4

# stream mode
stream() { # prefix, input, extra args
    p=$1 in=$2; shift 2
    rm -f g_recon g_quant g_latent; mkfifo g_recon g_quant g_latent
    encode -w ${p}_encode.st -s ${p}_encode.state --train --grad-in g_latent -j 2 $OPT "$@" < $in |
    vq -w ${p}_vq.st -s ${p}_vq.state --train --grad-in g_quant --grad-out g_latent -j 2 $OPT "$@" |
    decode -w ${p}_decode.st -s ${p}_decode.state --train --grad-in g_recon --grad-out g_quant -j 2 $OPT "$@" |
    loss mse $GAN --disc ${p}_disc.st --disc-state ${p}_disc.state > g_recon
}
ok "stream mode" stream stream data.tz
for m in encode vq decode; do
    eq "$m weights changed by training" "$(cmp -s $m.st stream_$m.st || echo changed)" changed
    eq "$m weights: step == stream" "$(cmp step_$m.st stream_$m.st && echo same)" same
    eq "$m state: step == stream" "$(cmp step_$m.state stream_$m.state && echo same)" same
done
eq "critic trained at steps 1..3 (3 updates)" \
    "$("$PYTHON" -c "import sys; sys.path.insert(0, '$REF_PY'); import stio; print(stio.load('step_disc.st')[1]['step'])")" 3
eq "critic: step == stream" "$(cmp step_disc.st stream_disc.st && cmp step_disc.state stream_disc.state && echo same)" same

# resume: run 2 steps with checkpoints, "kill" (stop), resume from step 2
for m in encode vq decode loss; do mkdir -p ck_$m; done
tz head -n 2 data.tz > first.tz
stream_ck() {
    rm -f g_recon g_quant g_latent; mkfifo g_recon g_quant g_latent
    encode -w kill_encode.st --train --grad-in g_latent -j 2 $OPT --ckpt-dir ck_encode --ckpt-every 2 "$@" |
    vq -w kill_vq.st --train --grad-in g_quant --grad-out g_latent -j 2 $OPT --ckpt-dir ck_vq --ckpt-every 2 "$@" |
    decode -w kill_decode.st --train --grad-in g_recon --grad-out g_quant -j 2 $OPT --ckpt-dir ck_decode --ckpt-every 2 "$@" |
    loss mse $GAN --disc kill_disc.st --disc-state kill_disc.state --ckpt-dir ck_loss --ckpt-every 2 "$@" > g_recon
}
stream_ck < first.tz; eq "stream mode, first 2 steps" "$?" 0
eq "checkpoint of step 2 done" "$(cat ck_vq/step-00000002.done)" 2
tz slice 2:4 data.tz > rest.tz
stream_ck --start-step 2 < rest.tz; eq "resumed from step 2" "$?" 0
eq "critic: resumed == uninterrupted" "$(cmp kill_disc.st stream_disc.st && echo same)" same
for m in encode vq decode; do
    eq "$m weights: resumed == uninterrupted" "$(cmp kill_$m.st stream_$m.st && echo same)" same
done
# the last step is checkpointed even off the --ckpt-every grid, so a finished
# run resumes to nothing
for m in encode vq decode loss; do rm -rf ck_$m; mkdir -p ck_$m; done
stream_ck3() {
    rm -f g_recon g_quant g_latent; mkfifo g_recon g_quant g_latent
    encode -w kill_encode.st --train --grad-in g_latent -j 2 $OPT --ckpt-dir ck_encode --ckpt-every 3 |
    vq -w kill_vq.st --train --grad-in g_quant --grad-out g_latent -j 2 $OPT --ckpt-dir ck_vq --ckpt-every 3 |
    decode -w kill_decode.st --train --grad-in g_recon --grad-out g_quant -j 2 $OPT --ckpt-dir ck_decode --ckpt-every 3 |
    loss mse $GAN --disc k3_disc.st --disc-state k3_disc.state --ckpt-dir ck_loss --ckpt-every 3 > g_recon
}
stream_ck3 < data.tz
for m in encode vq decode loss; do
    eq "$m: checkpoints of steps 3 and 4 (the last)" "$(ls ck_$m | grep -c 'done$')" 2
done
done_tests
