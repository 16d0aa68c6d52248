#!/bin/sh
# This script tests: mask pipelines/edit.sh
# Also requires: encode vq decode transformer tz img2patch patch2img
# MaskGIT's editing recipe through the tools on tiny random-init models
# (pipelines/edit.sh, which make inpaint/outpaint/edit run): the tokens
# outside the latent box (1-token margin) come through decoding unchanged,
# no mask token is left, the labels are the image's own, the target class or
# absent (the null class), the composite equals the input bit for bit far
# from the box and the raw decode deep inside it, and lies between them on
# the seam; the grid has the four rows; the same seed gives the same bytes
# and another seed other tokens; a failing stage fails the run with no grid.
# Then mask --composite alone: --blur 0 is the hard mask, and bad inputs.
EDIT_SH="$(cd "$(dirname "$0")/../../pipelines" && pwd)/edit.sh"
. "$(dirname "$0")/lib.sh"

V=64
ARCH="--arch vqgan-tiny --set channels=1 --set z=8"
mkdir w
ok "init encode" encode --init -w w/encode.ema.safetensors $ARCH --seed 1
ok "init vq" vq --init -w w/vq.ema.safetensors --arch vqgan-tiny --set dim=8 --set codes=$V --seed 2
ok "init decode" decode --init -w w/decode.ema.safetensors $ARCH --seed 3
ok "init transformer" transformer --init -w w/transformer.ema.safetensors --arch maskgit-tiny --set codes=$V \
    --set width=32 --set mlp=64 --set layers=2 --set heads=2 --set tokens=64 --set classes=3 --seed 4
ok "test images" tz make --field image:F32:6x1x32x32=rand:3 --field label:I32:6=0,1,2,0,1,2 --keys img -o data.tz
ok "unlabelled PNGs" sh -c 'tz make --field image:F32:3x1x32x32=rand:5 --keys u | patch2img -d pngs'

# run OUT KIND BOX [VAR=VALUE...]: pipelines/edit.sh as edit.mk calls it
run() {
    out=$1 kind=$2 box=$3; shift 3
    env KIND=$kind CLASS= IMAGE= DATA_TEST=data.tz N=4 SIZE=32 CHANNELS=1 BACKGROUND=0,0,0 BOX=$box VOCAB=$V \
        VQGAN=w MASKGIT=w STEPS=12 START=2 SEED=1 THREADS=2 BIN="$TP_BIN" OUT=$out "$@" sh "$EDIT_SH"
}

# py "what" <<EOF ... EOF: a numpy check that prints ok
py() {
    if PYTHONPATH="$REF_PY" "$PYTHON" - >"$T/.py" 2>&1 && [ "$(tail -1 "$T/.py")" = ok ]; then _ok "$1"
    else _no "$1" "$(tail -3 "$T/.py")"; fi
}

# the numpy checks of a run: DIR, the latent box rows/cols [lo,hi), outside
# (1: outpainting), the labels wanted (a list, or None: no label field)
check_run() {
    dir=$1 lo=$2 hi=$3 outside=$4 labels=$5
    rm -rf "n_$dir" "t_$dir"
    tz npy -d "n_$dir" -i "$dir/edit.tz" && tz npy -d "t_$dir" -i "$dir/tokens.tz"
    py "$dir: tokens outside the box+margin unchanged, no mask left, labels, composite" <<EOF
import numpy as np, os
d = {k[:-4]: np.load(f"n_$dir/{k}") for k in os.listdir("n_$dir")}
tok = np.load("t_$dir/ids.npy")
ids, reg = d["ids"], d["region"]
box = np.zeros((8, 8), bool); box[$lo:$hi, $lo:$hi] = True
if $outside: box = ~box
assert (reg == box[None].astype(np.uint8)).all(), reg[0]
assert (ids[:, ~box] == tok[:, ~box]).all(), "tokens outside the region changed"
assert ids.min() >= 0 and ids.max() < $V, "a mask token is left"
assert (ids[:, box] != tok[:, box]).any(), "nothing was regenerated"
want = $labels
if want is None: assert "label" not in d, d.keys()
else: assert (d["label"] == np.array(want)).all(), d["label"]
# the blend mask of mask(1): the region's pixels, Gaussian sigma 3, window 9
px = np.kron(box, np.ones((4, 4), bool))
pad = np.pad(px, 9, mode="edge")
win_all = np.ones_like(px); win_any = np.zeros_like(px)
for dy in range(-9, 10):
    for dx in range(-9, 10):
        s = pad[9 + dy:9 + dy + 32, 9 + dx:9 + dx + 32]
        win_all &= s; win_any |= s
img, raw, rec, grey = d["image"][:, 0], d["recon_raw"][:, 0], d["recon"][:, 0], d["image_masked"][:, 0]
far, deep = ~win_any, win_all
assert (rec[:, far] == img[:, far]).all(), "composite differs from the input far from the box"
assert (rec[:, deep] == raw[:, deep]).all(), "composite differs from the decode deep in the box"
seam = ~far & ~deep
lo_, hi_ = np.minimum(img, raw) - 1e-6, np.maximum(img, raw) + 1e-6
assert ((rec >= lo_) & (rec <= hi_))[:, seam].all(), "composite outside [input, decode] on the seam"
assert (grey[:, px] == 0.5).all() and (grey[:, ~px] == img[:, ~px]).all()
print("ok")
EOF
}

# grid.png read back: [1,1,H,W] = 4 rows, COLS columns of 32 px, 2 px apart
grid_shape() {
    img2patch "$1/grid.png" | tz info - | sed -n 's/^  image  *F32  *\(\[[0-9,]*\]\).*/\1/p'
}

# ---- inpainting: each image's own class ----
ok "inpaint" run in inpaint 8,8,16,16
check_run in 1 7 0 "[0, 1, 2, 0]"
eq "the grid: input, masked, decode, composite rows of 4" "$(grid_shape in)" "[1,1,138,138]"
eq "one composite PNG per image" "$(ls in/png/*.png | wc -l)" 4
eq "no work files left" "$(ls -d in/work 2>/dev/null)" ""
ok "inpaint again" run in2 inpaint 8,8,16,16
eq "the same seed gives the same stream" "$(cmp in/edit.tz in2/edit.tz && echo same)" same
eq "and the same grid" "$(cmp in/grid.png in2/grid.png && echo same)" same
ok "inpaint, another seed" run in3 inpaint 8,8,16,16 SEED=2
tz npy -d s1 -i in/edit.tz ids && tz npy -d s2 -i in3/edit.tz ids
eq "another seed gives other tokens" "$(test -s s1/ids.npy && test -s s2/ids.npy && { cmp -s s1/ids.npy s2/ids.npy || echo differ; })" differ

# ---- editing to class 2, a corner box: pixels far from it stay the input's ----
ok "edit CLASS=2" run ed edit 0,0,4,4 CLASS=2
check_run ed 0 2 0 "[2, 2, 2, 2]"

# ---- outpainting PNGs without labels: the null class ----
ok "outpaint PNGs" run op outpaint 12,12,8,8 IMAGE=pngs
check_run op 2 6 1 None
eq "a column per image" "$(grid_shape op)" "[1,1,138,104]"

# ---- failures ----
bad_run() { "$@" >/dev/null 2>"$T/.err"; echo $?; }
eq "an unknown kind is a usage error" "$(bad_run run x bogus 8,8,16,16)" 2
mkdir w2 && cp w/encode.ema.safetensors w/vq.ema.safetensors w/decode.ema.safetensors w2/
eq "a failing stage fails the run" "$(bad_run run fail inpaint 8,8,16,16 MASKGIT=w2)" 1
no_file "and leaves no grid" fail/grid.png

# ---- mask --composite alone ----
mask --blur 0 --composite < ed/edit.tz > hard.tz 2>/dev/null
ok "--blur 0" test -s hard.tz
tz npy -d h -i hard.tz
py "--blur 0: the decode inside the region's pixels, the input elsewhere, exactly" <<EOF
import numpy as np
img, raw, rec = (np.load(f"h/{k}.npy")[:, 0] for k in ("image", "recon_raw", "recon"))
px = np.kron(np.load("h/region.npy").astype(bool), np.ones((1, 4, 4), bool))
assert (rec[px] == raw[px]).all() and (rec[~px] == img[~px]).all()
print("ok")
EOF
tz drop region < ed/edit.tz > noreg.tz
bad "no region field" 1 mask --composite -i noreg.tz -o bad.tz
has "names the field" "'region'"
no_file "no output" bad.tz
tz make --field image:F32:2x1x30x30 --field recon:F32:2x1x30x30 --field region:U8:2x8x8=1 > g30.tz
bad "an image not a multiple of the grid" 1 mask --composite -i g30.tz -o bad.tz
tz make --field image:F32:2x1x32x32 --field recon:F32:2x3x32x32 --field region:U8:2x64=1 > ch.tz
bad "recon and image shapes differ" 1 mask --composite -i ch.tz -o bad.tz
tz make --field image:F32:2x1x32x32 --field recon:F32:2x1x32x32 --field region:U8:2x60=1 > k60.tz
bad "a region that is not a square grid" 1 mask --composite -i k60.tz -o bad.tz
bad "--composite excludes --train" 2 mask --composite --train --vocab 4
bad "a negative --blur" 2 mask --composite --blur -1
no_file "no output on failures" bad.tz
done_tests
