#!/bin/sh
# This script tests: encode (the vit-classifier module) loss (the acc and fd
# metrics) pipelines/eval.sh
# Also requires: img2patch tz optim
# The accuracy metric on hand-made logits (ties, records of different sizes);
# the fd metric: a stream against its own statistics is 0, against another
# stream it equals numpy's Frechet distance of the exported features; the
# classifier trained through pipelines/train.sh (encode:cls, loss ce on the
# labels) learns a task a glance solves; pipelines/eval.sh train and score;
# usage and data errors.
REPO=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/lib.sh"

# ---- acc ----
# logits of 2 records (3 and 1 samples), labels: right, wrong, tie (first max
# wins: class 0 = right); then right: 3 of 4 over samples (a mean of the
# records' means would say (2/3 + 1) / 2)
ok "logits" tz make --field logits:F32:3x3=1,2,0,5,1,0,4,4,1 --field label:I32:3=1,1,0 -o a.tz
ok "logits 2" tz make --field logits:F32:1x3=0,0,9 --field label:I32:1=2 -o b.tz
tz cat a.tz b.tz > ab.tz
ok "loss --eval acc" loss --eval acc -i ab.tz
eq "accuracy over samples" "$(awk '$1 == "acc" {print $2}' "$T/.out")" 0.75
ok "acc with --target" sh -c 'tz make --field logits:F32:2x2=1,0,0,1 --field y:I32:2=0,0 | loss --eval acc --target y'
eq "acc of field y" "$(awk '$1 == "acc" {print $2}' "$T/.out")" 0.5
bad "acc is a metric" 2 loss acc -i ab.tz
ok "labels out of step" tz make --field logits:F32:3x3 --field label:I32:2 -o c.tz
bad "label shape" 1 loss --eval acc -i c.tz
has "names the field" "'label'"

# ---- fd ----
"$PYTHON" - <<'PY'
import sys, struct, gzip
import numpy as np
rng = np.random.default_rng(3)
# 8x8 gray images: class 0 bright on the left half, class 1 on the right
def images(n, seed):
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, n)
    x = r.random((n, 8, 8)) * 0.3
    for i in range(n):
        x[i, :, (0 if y[i] == 0 else 4):(4 if y[i] == 0 else 8)] += 0.7
    return (x * 255).astype(np.uint8), y.astype(np.uint8)
for name, n, seed in (("train", 512, 1), ("test", 128, 2)):
    x, y = images(n, seed)
    with gzip.open(name + "-images.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 8, 8) + x.tobytes())
    with gzip.open(name + "-labels.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + y.tobytes())
PY
ok "train images" img2patch -b 64 --labels train-labels.gz train-images.gz -o train.tz
ok "test images" img2patch -b 32 --labels test-labels.gz test-images.gz -o test.tz
SMALL="--set channels=1 --set resolution=8 --set patch=4 --set width=16 --set layers=1 --set heads=2 --set classes=2"
ok "init" encode --init -w cls.st --arch vit-classifier $SMALL --seed 1
ok "features" encode -w cls.st -j 2 -i test.tz -o f.tz
eq "features [32,16]" "$(tz info f.tz | awk '$1 == "features" {print $3}')" "[32,16]"
eq "logits [32,2]" "$(tz info f.tz | awk '$1 == "logits" {print $3}')" "[32,2]"
ok "fd --fd-out" loss --eval fd --fd-out s.st -i f.tz
eq "no fd line without a reference" "$(grep -c '^fd' "$T/.out")" 0
ok "fd of the same stream" loss --eval fd --fd-ref s.st -i f.tz
eq "is 0" "$(awk '$1 == "fd" {print ($2 < 1e-6) ? "zero" : $2}' "$T/.out")" zero
ok "train features" encode -w cls.st -j 2 -i train.tz -o g.tz
ok "fd of another stream" loss --eval fd acc --fd-ref s.st -i g.tz
fd=$(awk '$1 == "fd" {print $2}' "$T/.out")
ok "export features" sh -c 'tz npy -d n1 -i f.tz features && tz npy -d n2 -i g.tz features'
cat > fd.py <<'PY'
import sys
import numpy as np
a, b = np.load("n1/features.npy").astype(np.float64), np.load("n2/features.npy").astype(np.float64)
s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
ev = np.linalg.eigvals(s1 @ s2).real.clip(0)
want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(ev).sum()
got = float(sys.argv[1])
# FD is a difference of traces: its rounding is relative to them, not to
# the difference, which is small here (1.3e-7 of traces of 5.7e-5; the
# tool and numpy 1.9e-13 apart)
scale = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2)
print(got, want, scale)
sys.exit(0 if abs(got - want) <= 1e-7 * scale and want > 0 else 1)
PY
ok "fd equals numpy's" "$PYTHON" fd.py "$fd"
bad "fd is a metric" 2 loss fd --fd-ref s.st -i f.tz
bad "fd needs a reference or an output" 2 loss --eval fd -i f.tz
bad "--fd-ref without fd" 2 loss --eval acc --fd-ref s.st -i f.tz
bad "missing reference" 1 loss --eval fd --fd-ref nope.st -i f.tz
bad "features of another size" 1 loss --eval fd --fd-ref s.st --pred logits -i f.tz
has "says the sizes" "size 2, expected 16"
ok "one feature vector" tz make --field features:F32:1x4 -o one.tz
bad "fd of one feature vector" 1 loss --eval fd --fd-out one.st -i one.tz
no_file "no statistics from one vector" one.st

# ---- training through the pipeline, then eval.sh ----
RUN=run
mkdir -p $RUN/init
cp cls.st $RUN/init/cls.safetensors
ok "train.sh (encode:cls, loss ce on label)" env RUN=$RUN FEED=train.tz CHAIN=encode:cls \
    LOSS="ce --target label" OPT="--lr 3e-3 --warmup 2 --schedule cosine --total 40 --wd 0" \
    STEPS=40 BATCH=32 SEED=1 CKPT_EVERY=20 THREADS=2 BIN="$TP_BIN" sh "$REPO/pipelines/train.sh"
ok "trained: test accuracy" \
    sh -c "encode -w $RUN/cls.ema.safetensors -j 2 -i test.tz | loss --eval ce acc --target label"
acc=$(awk '$1 == "acc" {print $2}' "$T/.out")
eq "above 0.9 (was $acc)" "$(echo "$acc" | awk '{print ($1 ~ /^[0-9.]+$/ && $1 + 0 > 0.9) ? "yes" : "no"}')" yes

ok "eval.sh train" env SET="$SMALL" RUN=cr DATA_TRAIN=train.tz DATA_TEST=test.tz CHANNELS=1 CLASSES=2 \
    STEPS=40 BATCH=32 LR=3e-3 WARMUP=2 CKPT_EVERY=20 SEED=1 THREADS=2 BIN="$TP_BIN" sh "$REPO/pipelines/eval.sh" train
eq "eval.tsv keys" "$(cut -f1 cr/eval.tsv | tr '\n' ' ')" "test_acc test_ce fd_train_test "
ok "test statistics" test -s cr/test.fd.safetensors
# the test set scored as a "reconstruction" of itself: fd 0; labels kept
ok "eval.sh score (field image)" env CLASSIFIER=cr STREAM=test.tz FIELD=image LABEL=label THREADS=2 BIN="$TP_BIN" \
    sh "$REPO/pipelines/eval.sh" score
eq "fd 0" "$(awk '$1 == "fd" {print ($2 < 1e-6) ? "zero" : $2}' "$T/.out")" zero
eq "acc = test_acc" "$(awk '$1 == "acc" {print $2}' "$T/.out")" "$(awk '$1 == "test_acc" {print $2}' cr/eval.tsv)"
eq "and is a number" "$(awk '$1 == "acc" {print ($2 ~ /^[0-9.]+$/) ? "yes" : $2}' "$T/.out")" yes
# another field renamed to image: flat dark images, far from the test set
ok "recon field" sh -c 'tz make --field recon:F32:40x1x8x8=0.1 -o dark.tz'
ok "eval.sh score (field recon)" env CLASSIFIER=cr STREAM=dark.tz THREADS=2 BIN="$TP_BIN" \
    sh "$REPO/pipelines/eval.sh" score
eq "one fd line, no acc" "$(cut -f1 "$T/.out" | tr '\n' ' ')" "fd "
# the floor: 40 real images (here the test set's first, in the reference too)
ok "eval.sh score with FLOOR" env CLASSIFIER=cr STREAM=dark.tz FLOOR=test.tz THREADS=2 BIN="$TP_BIN" \
    sh "$REPO/pipelines/eval.sh" score
eq "fd, fd_floor" "$(cut -f1 "$T/.out" | tr '\n' ' ')" "fd fd_floor "
eq "the floor is below the dark images' fd" \
    "$(awk '$1 == "fd" {f = $2} $1 == "fd_floor" {print ($2 < f / 10) ? "yes" : $2 " vs " f}' "$T/.out")" yes
eq "fd > 1" "$(awk '$1 == "fd" {print ($2 > 1) ? "yes" : $2}' "$T/.out")" yes
done_tests
