#!/bin/sh
# This script tests: encode decode loss (backward at tool level)
# Also requires: tz, zstd, python3 with numpy
# The gradients the tools write (decode --backward: quant.grad; -g: weight
# gradients of encode and decode) against central finite differences of the
# loss computed by running the tools forward on perturbed inputs and weights.
# vq is left out on purpose: its backward is the straight-through estimator,
# not the derivative of its piecewise-constant forward (test_vq checks it
# against PyTorch instead).
. "$(dirname "$0")/lib.sh"

ARCH="--arch vqgan-tiny --set resolution=8 --set hidden=32 --set mult=1,2 --set z=4"
ok "init encode" encode --init -w enc.st $ARCH --seed 3
ok "init decode" decode --init -w dec.st $ARCH --seed 4

"$PYTHON" - "$REF_PY" <<'PY' > gc.out 2>&1
import os, subprocess, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import stio

rng = np.random.default_rng(0)

def write_tz(path, tensors, meta=None):
    with open(path + ".raw", "wb") as f:
        f.write(stio.dumps(tensors, meta))
    subprocess.run(["zstd", "-q", "-f", "--check", path + ".raw", "-o", path], check=True)
    os.remove(path + ".raw")

def read_tz(path):
    raw = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    return stio.loads(raw)[0]

def run(cmd):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout

def loss_of(pipeline):
    out = run(pipeline + " | loss mse --eval")
    return float(dict(l.split("\t") for l in out.strip().split("\n"))["mse"])

image = rng.random((2, 1, 8, 8)).astype(np.float32)
quant = (0.5 * rng.standard_normal((2, 4, 4, 4))).astype(np.float32)
write_tz("q.tz", {"quant": quant, "image": image})
write_tz("x.tz", {"image": image})

worst = 0.0
def check(what, analytic, numeric):
    global worst
    err = abs(analytic - numeric) / max(1e-3, abs(analytic), abs(numeric))
    worst = max(worst, err)
    print("%-36s analytic %+.6e numeric %+.6e err %.2e" % (what, analytic, numeric, err))

# decode: d loss / d quant through decode --backward
run("decode -w dec.st --training < q.tz > out.tz && loss mse < out.tz > g.tz")
run("decode -w dec.st --backward q.tz -g dec.grad < g.tz > qg.tz")
qg = read_tz("qg.tz")["quant.grad"]
eps = 1e-2
for idx in [(0, 0, 0, 0), (0, 1, 3, 3), (1, 2, 1, 2), (1, 3, 0, 1)]:
    vals = []
    for s in (+1, -1):
        q = quant.copy(); q[idx] += s * eps
        write_tz("qp.tz", {"quant": q, "image": image})
        vals.append(loss_of("decode -w dec.st < qp.tz"))
    check("decode quant%s" % (idx,), qg[idx], (vals[0] - vals[1]) / (2 * eps))

# weight gradients: -g of decode, and of encode through the whole chain
def weight_check(tool, wfile, gfile, names, pipeline):
    w, meta = stio.load(wfile)
    g, _ = stio.load(gfile)
    for name in names:
        flat = w[name].reshape(-1)
        for j in [0, flat.size // 2, flat.size - 1]:
            vals = []
            for s in (+1, -1):
                w2 = {k: v.copy() for k, v in w.items()}
                w2[name].reshape(-1)[j] += s * eps
                stio.save("wp.st", w2, meta)
                vals.append(loss_of(pipeline.replace(wfile, "wp.st")))
            check("%s %s[%d]" % (tool, name, j), g[name].reshape(-1)[j], (vals[0] - vals[1]) / (2 * eps))

weight_check("decode", "dec.st", "dec.grad", ["decoder.conv_out.weight", "decoder.mid.0.conv1.weight",
             "decoder.norm_out.weight"], "decode -w dec.st < q.tz")
# encode's weights through encode | decode(quant := latent): rename with tz feed
chain = "encode -w enc.st --training < x.tz | tz feed -b 2 --steps 1 --no-shuffle --rename latent=quant | decode -w dec.st"
run(chain + " > out2.tz && loss mse < out2.tz > g2.tz")
run("encode -w enc.st --training < x.tz | tz feed -b 2 --steps 1 --no-shuffle --rename latent=quant > q2.tz")
run("decode -w dec.st --backward q2.tz < g2.tz > qg2.tz")
run("tz feed -b 2 --steps 1 --no-shuffle --rename quant.grad=latent.grad qg2.tz > lg2.tz")
run("encode -w enc.st --backward x.tz -g enc.grad < lg2.tz > /dev/null")
weight_check("encode", "enc.st", "enc.grad", ["encoder.conv_in.weight", "encoder.conv_out.bias",
             "encoder.down.0.block.0.norm1.weight"], chain)
print("WORST %.3e" % worst)
PY
rc=$?
cat gc.out
eq "finite differences ran" "$rc" 0
worst=$(sed -n 's/^WORST //p' gc.out)
# float32 forward passes: central differences agree to a few 1e-3
eq "every tool gradient within 1e-2 of finite differences" \
    "$(awk -v w="${worst:-1}" 'BEGIN { print (w < 1e-2) ? "yes" : "no: " w }')" yes
done_tests
