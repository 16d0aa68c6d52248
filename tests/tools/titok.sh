#!/bin/sh
# This script tests: encode decode (the titok-encoder and titok-decoder modules)
# Also requires: img2patch tz vq loss optim
# TiTok at tiny sizes through the tools. Stage 1: encode --training | vq |
# decode --training | loss ce against proxy ids (field target), then the
# backwards: the gradient files are finite and every tensor of the encoder
# and decoder gets a nonzero gradient; two steps in step mode (optim
# between) and in stream mode (FIFOs) end with the same bits. Stage 2: the
# pixel decoder (titok-tiny-pixel) trained on mse, encoder and vq frozen.
. "$(dirname "$0")/lib.sh"

# 2 records of 4 gray 32x32 images, with random proxy ids [4,8,8] as target
"$PYTHON" - <<'PY'
import numpy as np, struct, gzip
rng = np.random.default_rng(1)
imgs = (rng.random((8, 32, 32)) * 255).astype(np.uint8)
with gzip.open("imgs.idx.gz", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, 8, 32, 32) + imgs.tobytes())
PY
ok "make images" img2patch -b 4 imgs.idx.gz -o img.tz
ok "make proxy ids" tz make --field target:I32:4x8x8=rand:7 --records 2 -o ids.tz
ok "merge" tz merge -o data.tz img.tz ids.tz
SMALL="--set width=32 --set layers=1 --set heads=2 --set tokens=8 --set token_size=8"
ok "init encode" encode --init -w enc.st --arch titok-tiny $SMALL --seed 1 -j 2
ok "init vq" vq --init -w vq.st --arch titok-tiny --set dim=8 --set codes=64 --seed 2 -j 2
ok "init decode" decode --init -w dec.st --arch titok-tiny $SMALL --set proxy_codes=256 --seed 3 -j 2
ok "init decode (pixel)" decode --init -w pix.st --arch titok-tiny-pixel $SMALL --set proxy_codes=256 \
    --set pixel_hidden=32 --set pixel_z=8 --seed 4 -j 2

# one step, forward then backward, one process per stage
tz slice 0:1 data.tz > in.tz
ok "encode --training" encode -w enc.st --training -j 2 -i in.tz -o lat.tz
eq "latent is [4,8,8]" "$(tz info lat.tz | awk '$1 == "latent" {print $3}')" "[4,8,8]"
ok "vq --training" vq -w vq.st --training -j 2 -i lat.tz -o q.tz
ok "decode --training" decode -w dec.st --training -j 2 -i q.tz -o out.tz
eq "logits are [4,8,8,256]" "$(tz info out.tz | awk '$1 == "logits" {print $3}')" "[4,8,8,256]"
ok "loss ce" loss ce -i out.tz -o g.tz
ok "decode --backward" decode -w dec.st --backward q.tz -g dec.grad -j 2 -i g.tz -o qg.tz
ok "vq --backward" vq -w vq.st --backward lat.tz -g vq.grad -j 2 -i qg.tz -o lg.tz
ok "encode --backward" encode -w enc.st --backward in.tz -g enc.grad -j 2 -i lg.tz -o ig.tz
cat > check.py <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, stio
for path in sys.argv[2:]:
    t, _ = stio.load(path)
    bad = [k for k, v in t.items() if not np.isfinite(v).all()]
    zero = [k for k, v in t.items() if not np.any(v)]
    if bad or zero or not t:
        print(path, "not finite:", bad, "all zero:", zero)
        sys.exit(1)
PY
ok "encoder and decoder gradients: finite, none all zero" "$PYTHON" check.py "$REF_PY" enc.grad dec.grad

# two steps: step mode, then stream mode from the same weights
OPT="--lr 1e-3 --warmup 1 --total 2 --clip 1.0"
for m in enc vq dec; do cp $m.st step_$m.st; cp $m.st stream_$m.st; done
i=0
while [ $i -lt 2 ]; do
    tz slice $i:$((i + 1)) data.tz > in.tz
    encode -w step_enc.st --training -j 2 < in.tz > lat.tz &&
    vq -w step_vq.st --training -j 2 < lat.tz > q.tz &&
    decode -w step_dec.st --training -j 2 < q.tz > out.tz &&
    loss ce < out.tz > g.tz &&
    decode -w step_dec.st --backward q.tz -g dec.grad -j 2 < g.tz > qg.tz &&
    vq -w step_vq.st --backward lat.tz -g vq.grad -j 2 < qg.tz > lg.tz &&
    encode -w step_enc.st --backward in.tz -g enc.grad -j 2 < lg.tz > /dev/null &&
    optim -w step_enc.st -g enc.grad -s step_enc.state $OPT >/dev/null &&
    optim -w step_vq.st -g vq.grad -s step_vq.state $OPT >/dev/null &&
    optim -w step_dec.st -g dec.grad -s step_dec.state $OPT >/dev/null || { _no "step mode step $i" "failed"; break; }
    i=$((i + 1))
done
eq "step mode ran 2 steps" "$i" 2
stream() {
    rm -f g_logits g_quant g_latent; mkfifo g_logits g_quant g_latent
    encode -w stream_enc.st -s stream_enc.state --train --grad-in g_latent -j 2 $OPT < data.tz |
    vq -w stream_vq.st -s stream_vq.state --train --grad-in g_quant --grad-out g_latent -j 2 $OPT |
    decode -w stream_dec.st -s stream_dec.state --train --grad-in g_logits --grad-out g_quant -j 2 $OPT |
    loss ce > g_logits
}
ok "stream mode" stream
for m in enc vq dec; do
    eq "$m weights changed by training" "$(cmp -s $m.st stream_$m.st || echo changed)" changed
    eq "$m weights: step == stream" "$(cmp step_$m.st stream_$m.st && echo same)" same
    eq "$m state: step == stream" "$(cmp step_$m.state stream_$m.state && echo same)" same
done

# stage 2: frozen encoder and vq, the pixel decoder on mse against the image
tz slice 0:1 data.tz > in.tz
encode -w enc.st -j 2 < in.tz | vq -w vq.st -j 2 > q.tz
ok "decode (pixel) --training" decode -w pix.st --training -j 2 -i q.tz -o out.tz
eq "recon is [4,1,32,32]" "$(tz info out.tz | awk '$1 == "recon" {print $3}')" "[4,1,32,32]"
eq "the pixel decoder keeps its logits to itself" "$(tz info out.tz | awk '$1 == "logits"')" ""
ok "loss mse" loss mse -i out.tz -o g.tz
ok "decode (pixel) --backward" decode -w pix.st --backward q.tz -g pix.grad -j 2 -i g.tz -o qg.tz
ok "pixel decoder gradients: finite, none all zero" "$PYTHON" check.py "$REF_PY" pix.grad
bad "no quant field" 1 decode -w dec.st -j 2 -i lat.tz
ok "make quant [4,8,5]" tz make --field quant:F32:4x8x5 -o q5.tz
bad "quant of the wrong shape" 1 decode -w dec.st -j 2 -i q5.tz
has "the error names the field" "'quant'"
done_tests
