#!/bin/sh
# This script tests: mask transformer
# Also requires: tz loss optim
# MaskGIT through the tools on tiny shapes: training masks (targets, mask
# ids, counts, seeds), one training step in step mode and the same two steps
# in stream mode giving identical weights, a full sampling run of T = 4
# steps ending with no mask left (the schedule's counts on the way,
# reproducible, deterministic without noise), guidance from the record's
# metadata, the JAX semantics from the record's step, region masks (box
# margin rule, outside, a mask PNG), and bad inputs.
. "$(dirname "$0")/lib.sh"

V=256
ARCH="--arch maskgit-tiny --set codes=$V --set width=32 --set mlp=64 --set layers=2 --set heads=2 --set tokens=16 --set classes=3"
OPT="--lr 1e-3 --betas 0.9,0.96 --wd 0.03"
ok "init" transformer --init -w g.st $ARCH --seed 1
cp g.st step.st; cp g.st stream.st
ok "ids" tz make --field ids:I32:8x16=rand:1 --field label:I32:8=0,1,2,0,1,2,0,1 --records 2 --meta seed=7 -o ids.tz

# py "what" <<EOF ... EOF: a numpy check that prints ok
py() {
    if PYTHONPATH="$REF_PY" "$PYTHON" - >"$T/.py" 2>&1 && [ "$(tail -1 "$T/.py")" = ok ]; then _ok "$1"
    else _no "$1" "$(tail -3 "$T/.py")"; fi
}

# ---- training masks ----
ok "mask --train" mask --train --vocab $V -i ids.tz -o m.tz
ok "zstd -t accepts the stream" zstd -tq m.tz
mask --train --vocab $V < ids.tz > m2.tz
eq "the same records give the same masks" "$(cmp m.tz m2.tz && echo same)" same
mask --train --vocab $V --seed 5 < ids.tz > m3.tz
eq "--seed changes them" "$(cmp -s m.tz m3.tz || echo differ)" differ
tz npy -d in -i ids.tz && tz npy -d tr -i m.tz
py "target = ids, masked = V exactly where mask, 1..K masked, labels kept or -1" <<EOF
import numpy as np
d = {k: np.load(f"tr/{k}.npy") for k in ("ids", "target", "mask", "label")}
ids0, lab0 = np.load("in/ids.npy"), np.load("in/label.npy")
assert (d["target"] == ids0).all() and d["mask"].dtype == np.uint8
assert ((d["ids"] == $V) == (d["mask"] == 1)).all()
assert (d["ids"][d["mask"] == 0] == ids0[d["mask"] == 0]).all()
n = d["mask"].sum(1)
assert n.min() >= 1 and n.max() <= 16 and len(set(n.tolist())) > 1, n
assert ((d["label"] == lab0) | (d["label"] == -1)).all()
print("ok")
EOF
zstd -dcq m.tz > m.raw
py "a record reads back with an independent safetensors reader" <<EOF
import mkimages
recs = mkimages.split_records(open("m.raw", "rb").read())
t, meta = recs[0]
assert len(recs) == 2 and t["mask"].shape == (8, 16) and t["ids"].dtype.name == "int32", t.keys()
print("ok")
EOF

# ---- one training step, step mode; two, step mode against stream mode ----
i=0
while [ $i -lt 2 ]; do
    tz slice $i:$((i + 1)) m.tz > in.tz
    transformer -w step.st --training -j 2 < in.tz > out.tz &&
    loss ce --label-smoothing 0.1 --unmasked-weight 0.1 --log step.tsv < out.tz > gr.tz &&
    transformer -w step.st --backward in.tz -g step.grad -j 2 < gr.tz > ig.tz &&
    optim -w step.st -g step.grad -s step.state $OPT >/dev/null || { _no "step mode step $i" failed; break; }
    if [ $i -eq 0 ]; then
        tz npy -d o -i out.tz
        py "logits [8,16,V], a finite loss near log V, a nonzero finite gradient" <<EOF
import numpy as np, stio
lg = np.load("o/logits.npy")
assert lg.shape == (8, 16, $V) and np.isfinite(lg).all()
rows = [l.split("\t") for l in open("step.tsv").read().split("\n")[1:] if l]
loss = float(rows[0][1])
assert abs(loss - np.log($V)) < 1.0, loss
g, _ = stio.load("step.grad")
assert all(np.isfinite(v).all() for v in g.values())
assert np.abs(g["model.lm_head.weight"]).max() > 0 and np.abs(g["model.embeddings.word_embeddings.weight"]).max() > 0
print("ok")
EOF
    fi
    i=$((i + 1))
done
eq "step mode ran 2 steps" "$i" 2
eq "training changed the weights" "$(cmp -s g.st step.st || echo changed)" changed
rm -f gfifo; mkfifo gfifo
transformer -w stream.st -s stream.state --train --grad-in gfifo -j 2 $OPT < m.tz |
    loss ce --label-smoothing 0.1 --unmasked-weight 0.1 > gfifo
eq "stream mode ran" "$?" 0
eq "weights: stream mode == step mode" "$(cmp stream.st step.st && echo same)" same

# ---- sampling ----
# sample OUT [mask options]: init, then 4 steps of transformer | mask --sample
sample() {
    out=$1; shift
    mask --init-sample --tokens 16 --vocab $V -n 6 -b 4 --classes 3 --steps 4 --guidance 2 --seed 3 > cur.tz || return 1
    for t in 0 1 2 3; do
        transformer -w step.st -j 2 < cur.tz | mask --sample --step $t --steps 4 "$@" > nxt.tz || return 1
        mv nxt.tz cur.tz
        tz npy -d "s$t" -i cur.tz || return 1
    done
    mv cur.tz "$out"
}
ok "a sampling run of 4 steps" sample run1.tz
py "masked after each step: 13, 10, 7, then none; every id a code" <<EOF
import numpy as np
for t, want in enumerate((13, 10, 7, 0)):
    m, ids = np.load(f"s{t}/mask.npy"), np.load(f"s{t}/ids.npy")
    assert (m.sum(1) == want).all() and ((ids == $V) == (m == 1)).all(), (t, m.sum(1))
assert (ids >= 0).all() and (ids < $V).all()
assert (np.load("s3/label.npy") == [0, 1, 2, 0, 1, 2]).all()
print("ok")
EOF
eq "no logits left in the output" "$(tz info run1.tz | grep -c '^  logits ')" 0
eq "the last record says step 4 of 4" "$(tz meta run1.tz | tail -1 | grep -c '"sample_step":"4"')" 1
ok "the same run again" sample run2.tz
eq "sampling is reproducible" "$(cmp run1.tz run2.tz && echo same)" same
ok "a run with another seed" sample run3.tz --seed 9
eq "--seed changes the samples" "$(cmp -s run1.tz run3.tz || echo differ)" differ
ok "--no-noise" sample nn1.tz --no-noise
ok "--no-noise, another seed" sample nn2.tz --no-noise --seed 9
eq "--no-noise is deterministic" "$(cmp nn1.tz nn2.tz && echo same)" same
# every step in one process: the records go round through a FIFO
mask --init-sample --tokens 16 --vocab $V -n 6 -b 4 --classes 3 --steps 4 --guidance 2 --seed 3 > l0.tz
mkfifo lp
ok "--loop: 4 steps of 2 records with one transformer and one mask" \
    timeout 120 sh -c 'transformer -w step.st -j 2 < lp | mask --sample --loop lp --from l0.tz -o loop.tz'
eq "--loop gives the bits of 4 rounds of processes" "$(cmp loop.tz run1.tz && echo same)" same
ok "--loop --in-flight 1: each record whole, one at a time" \
    timeout 120 sh -c 'transformer -w step.st -j 2 < lp | mask --sample --loop lp --from l0.tz --in-flight 1 -o loop1.tz'
eq "--in-flight 1: the same bits as two halves in flight" "$(cmp loop1.tz run1.tz && echo same)" same
mask --init-sample --tokens 16 --vocab $V -n 5 -b 5 --classes 3 --steps 3 --seed 4 > l5.tz
cp l5.tz r5.tz
for t in 0 1 2; do transformer -w step.st < r5.tz | mask --sample --step $t --steps 3 > nxt.tz; mv nxt.tz r5.tz; done
ok "--loop: a record of 5 samples, halved (2 + 3)" \
    timeout 120 sh -c 'transformer -w step.st < lp | mask --sample --loop lp --from l5.tz -o o5.tz'
eq "halves of 2 and 3: the bits of 3 rounds of processes" "$(cmp o5.tz r5.tz && echo same)" same
ok "decode_loop (pipelines/lib.sh)" timeout 120 sh -c ". '$PIPELINES/lib.sh'; decode_loop l0.tz dl.tz '-w step.st -j 2' ''"
eq "decode_loop: the same bits" "$(cmp dl.tz run1.tz && echo same)" same
eq "decoding records ask for the masked positions' logits" "$(tz meta --get logits_at l0.tz | sort -u)" masked
transformer -w step.st < l0.tz | mask --sample > l1.tz # some ids known
transformer -w step.st < l1.tz | tz pick logits,ids | tz npy -d lm
tz meta --set logits_at=all l1.tz | transformer -w step.st | tz pick logits,ids | tz npy -d la
py "logits_at=masked: 0 where the id is known, all's logits at masked positions" <<EOF
import numpy as np
m, a, ids = np.load("lm/logits.npy"), np.load("la/logits.npy"), np.load("lm/ids.npy")
known = ids != $V
assert known.any() and (~known).any()
assert (m[known] == 0).all() and (a[known] != 0).any()
assert np.allclose(m[~known], a[~known], rtol=1e-5, atol=1e-5), abs(m[~known] - a[~known]).max()
print("ok")
EOF
tz meta --set logits_at=all l0.tz > la0.tz
ok "--loop over records that ask for every position's logits" \
    timeout 120 sh -c 'transformer -w step.st -j 2 < lp | mask --sample --loop lp --from la0.tz -o loopa.tz'
eq "logits_at=all: the same samples" "$(tz pick ids,label loopa.tz | tz meta --delete logits_at | md5sum)" \
    "$(tz pick ids,label run1.tz | tz meta --delete logits_at | md5sum)"
tz meta --set logits_at=some l0.tz > lbad.tz
bad "logits_at neither all nor masked" 1 transformer -w step.st -i lbad.tz
has "names the key" "metadata 'logits_at'"
no_file "decode_loop removes its FIFO" dl.tz.loop
timeout 60 sh -c 'transformer -w missing.st < lp | mask --sample --loop lp --from l0.tz -o f1.tz' 2>f1.err
rc=$?
eq "--loop: a transformer that cannot start fails the loop (no hang)" "$([ $rc -ne 0 ] && [ $rc -ne 124 ] && echo failed)" failed
no_file "--loop: no output after it" f1.tz
tz make --field ids:I32:2x16=300 | tz meta --set sample_step=0 --set sample_steps=4 > b0.tz
timeout 60 sh -c 'transformer -w step.st < lp | mask --sample --loop lp --from b0.tz -o f2.tz' 2>f2.err
eq "--loop: a transformer that fails on a record fails the loop" "$?" 1
eq "--loop: the error names the record" "$(grep -c 'record 0 of b0.tz: the stream ended before its last step' f2.err)" 1
no_file "--loop: no output after it" f2.tz
timeout 60 sh -c ". '$PIPELINES/lib.sh'; decode_loop missing.tz f3.tz '-w step.st' ''" 2>/dev/null
rc=$?
eq "decode_loop: a mask that fails before the FIFO opens does not hang" "$([ $rc -ne 0 ] && [ $rc -ne 124 ] && echo failed)" failed
no_file "decode_loop: no output" f3.tz
no_file "decode_loop: no FIFO left" f3.tz.loop
bad "--loop without --from" 2 mask --sample --loop lp
bad "--loop on a regular file" 2 mask --sample --loop l0.tz --from l0.tz
has "names what is wrong" "is not a FIFO"
bad "--loop with --steps" 2 mask --sample --loop lp --from l0.tz --steps 4
bad "--from without --sample" 2 mask --train --vocab $V --loop lp --from l0.tz
bad "--in-flight 3" 2 mask --sample --loop lp --from l0.tz --in-flight 3
bad "--in-flight without --loop" 2 mask --sample --in-flight 1

# guidance: the same ids with a null label and guidance 0 differ from guided logits
mask --init-sample --tokens 16 --vocab $V -n 2 --class 1 --steps 4 --start-step 1 --guidance 3 > gi.tz
transformer -w step.st < gi.tz | tz npy -d gd
tz meta --set guidance=0 gi.tz > g0.tz
transformer -w step.st < g0.tz | tz npy -d g0
py "guidance from the record's metadata changes the logits" <<EOF
import numpy as np
assert not np.allclose(np.load("gd/logits.npy"), np.load("g0/logits.npy"))
print("ok")
EOF
# JAX semantics with the step from the record's metadata
mask --init-sample --tokens 16 --vocab $V -n 4 --steps 3 --seed 1 > j.tz
ok "JAX decoding, steps from the metadata" sh -c "for t in 0 1 2; do transformer -w step.st < j.tz | mask --sample --semantics jax > jn.tz && mv jn.tz j.tz || exit 1; done"
tz npy -d jd -i j.tz
py "JAX decoding fills every token" <<EOF
import numpy as np
ids = np.load("jd/ids.npy")
assert (ids < $V).all() and (np.load("jd/masked0.npy") == 16).all()
print("ok")
EOF

# ---- region masks ----
tz make --field ids:I32:2x8x8=rand:2 -o g8.tz
ok "--box" mask --box 5,9,10,6 --image-size 32 --vocab $V --class 2 --steps 12 --start-step 2 -i g8.tz -o box.tz
ok "--box --outside" mask --box 5,9,10,6 --image-size 32 --vocab $V --outside -i g8.tz -o out.tz
PYTHONPATH="$REF_PY" "$PYTHON" -c "
import numpy as np, mkimages
px = np.zeros((32, 32), np.uint8); px[13, 21] = 1
open('m.png', 'wb').write(mkimages.png_bytes(px))"
ok "--mask-png" mask --mask-png m.png --vocab $V -i g8.tz -o png.tz
tz npy -d bx -i box.tz && tz npy -d ou -i out.tz && tz npy -d pn -i png.tz
py "box rows 1..3 x cols 0..3 (1-token margin), its complement, one PNG token" <<EOF
import numpy as np
want = np.zeros((8, 8), np.uint8); want[1:4, 0:4] = 1
b, o, p = (np.load(f"{d}/mask.npy") for d in ("bx", "ou", "pn"))
assert b.shape == (2, 8, 8) and (b == want).all() and (o == 1 - want).all()
one = np.zeros((8, 8), np.uint8); one[3, 5] = 1
assert (p == one).all()
ids, ids0 = np.load("bx/ids.npy"), np.load("pn/ids.npy")
assert (ids[:, want == 1] == $V).all() and (np.load("bx/label.npy") == 2).all()
print("ok")
EOF
eq "--box writes the decoding metadata" "$(tz meta box.tz | grep -c '"sample_step":"2"')" 1

# ---- bad inputs ----
bad "no mode" 2 mask --vocab $V
bad "--train without --vocab" 2 mask --train -i ids.tz
bad "unknown schedule" 2 mask --train --vocab $V --schedule cos -i ids.tz
bad "ids above the vocabulary" 1 mask --train --vocab 100 -i ids.tz -o bad.tz
has "names the record" "ids.tz: record 0: field 'ids'"
no_file "no output file after a failure" bad.tz
bad "--sample without logits" 1 mask --sample --step 0 --steps 4 -i ids.tz -o bad.tz
no_file "no output file" bad.tz
transformer -w g.st < ids.tz > lg.tz
bad "--sample without a step" 1 mask --sample -i lg.tz -o bad.tz
tz make --field ids:I32:2x12=1 -o k12.tz
bad "a box on a non-square grid" 1 mask --box 0,0,4,4 --image-size 32 --vocab $V -i k12.tz -o bad.tz
tz make --field ids:I32:2x16=300 -o big.tz
bad "transformer: ids above the vocabulary" 1 transformer -w g.st -i big.tz -o bad.tz
has "names the field" "field 'ids'"
done_tests
