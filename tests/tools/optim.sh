#!/bin/sh
# optim.sh - the optim tool: two AdamW steps (the second averaging two
# gradient files and clipping) give bit for bit what lib/optim.c's
# arithmetic gives, replayed in numpy float32 in the library's operation
# order; the EMA file likewise; the step line; freezing; SGD state; and
# refusals (missing file, gradient name or shape mismatch, NaN gradient,
# optimizer mismatch, interrupted update, usage errors) that exit 1 (or 2)
# with one line and leave every file as it was.
. "$(dirname "$0")/lib.sh"

if ! "$PYTHON" -c 'import numpy' 2>/dev/null; then
    skip_test "optim: python3-numpy missing"
    done_tests
    exit
fi

cat >ref.py <<'EOF'
import math, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import stio

f32 = np.float32
NO_DECAY = ("ln", "bias", "latent_tokens", "mask_token", "embedding", "norm", "gamma", "embed")


def make():
    rng = np.random.default_rng(5)
    shapes = {"enc.fc.weight": (6, 8), "enc.fc.bias": (6,), "latent_tokens": (4, 8),
              "enc.ln.weight": (8,), "dec.conv.weight": (3, 2, 3, 3)}
    w = {n: rng.uniform(-1, 1, s).astype(f32) for n, s in shapes.items()}
    w["enc.counter"] = np.array([3, 4], dtype=np.int32)
    stio.save("w.safetensors", w, {"arch": "toy", "format": "pt"})
    g = lambda: {n: rng.normal(0, 0.1, s).astype(f32) for n, s in shapes.items()}
    for k in ("g1", "g2"):
        stio.save(k + ".safetensors", g())
    bad = g()
    bad["enc.fc.extra"] = np.zeros(3, f32)
    stio.save("gname.safetensors", bad)
    bad = g()
    bad["enc.fc.bias"] = np.zeros(7, f32)
    stio.save("gshape.safetensors", bad)
    bad = g()
    bad["enc.fc.weight"][2, 3] = np.nan
    stio.save("gnan.safetensors", bad)


def sumsq(arrs):   # lib/optim.c: per tensor in order, elements in order, in double
    total = 0.0
    for a in arrs:
        s = 0.0
        for x in a.ravel():
            s += float(x) * float(x)
        total += s
    return total


def adamw_step(w, g, st, t, lr, wd, b1, b2, eps, clip):
    names = [n for n in w if w[n].dtype == f32]
    norm = math.sqrt(sumsq([g[n] for n in names]))
    if clip > 0:
        c = (f32(1) / (f32(norm) + f32(1e-6))) * f32(clip)
        if c < 1:
            g = {n: g[n] * c for n in names}
    upd = []
    for n in names:
        decays = w[n].ndim >= 2 and not any(k in n for k in NO_DECAY)
        p0 = w[n]
        m = st.get(n + ".exp_avg", np.zeros_like(p0))
        v = st.get(n + ".exp_avg_sq", np.zeros_like(p0))
        p = p0 * f32(1.0 - lr * (wd if decays else 0.0))
        m = m * f32(b1) + f32(1.0 - b1) * g[n]
        v = v * f32(b2) + (f32(1.0 - b2) * g[n]) * g[n]
        denom = np.sqrt(v) / f32(math.sqrt(1.0 - b2 ** t)) + f32(eps)
        p = p + (f32(-(lr / (1.0 - b1 ** t))) * m) / denom
        st[n + ".exp_avg"], st[n + ".exp_avg_sq"] = m, v
        upd.append(p.astype(np.float64) - p0.astype(np.float64))
        w[n] = p
    un = 0.0
    for d in upd:
        for x in d.ravel():
            un += x * x
    return "step=%d lr=%.9g grad_norm=%.9g update_norm=%.9g" % (t, lr, norm, math.sqrt(un))


def ema_step(e, w, t, cap):
    s = t - 1
    d = 0.0 if s <= 0 else min((1 + s) / (10 + s), cap)
    for n in w:
        e[n] = e[n] - f32(1.0 - d) * (e[n] - w[n]) if w[n].dtype == f32 else w[n].copy()


def check():
    w, _ = stio.load("w0.safetensors")
    e = {n: a.copy() for n, a in w.items()}
    st = {}
    g1, _ = stio.load("g1.safetensors")
    g2, _ = stio.load("g2.safetensors")
    line1 = adamw_step(w, g1, st, 1, 0.01, 0.1, 0.9, 0.99, 1e-8, 0.0)
    ema_step(e, w, 1, 0.5)
    avg = {n: (g1[n] + g2[n]) / f32(2) for n in g1}
    line2 = adamw_step(w, avg, st, 2, 0.01, 0.1, 0.9, 0.99, 1e-8, 0.05)
    ema_step(e, w, 2, 0.5)
    lines = [open(p).read().strip() for p in ("out1.txt", "out2.txt")]
    if lines != [line1, line2]:
        return "lines %s, want %s" % (lines, [line1, line2])
    for path, want in (("w.safetensors", w), ("s.safetensors", st), ("e.safetensors", e)):
        got, meta = stio.load(path)
        if meta.get("step") != "2":
            return "%s: metadata step %s" % (path, meta.get("step"))
        if sorted(got) != sorted(want):
            return "%s: names %s, want %s" % (path, sorted(got), sorted(want))
        for n in want:
            if got[n].dtype != want[n].dtype or got[n].tobytes() != want[n].tobytes():
                return "%s: '%s' differs, max %g" % (path, n, np.abs(got[n] - want[n]).max())
    if stio.load("w.safetensors")[1].get("arch") != "toy":
        return "weights metadata lost"
    return "ok"


def same(a, b):   # the tensors two files hold with identical bytes
    x, _ = stio.load(a)
    y, _ = stio.load(b)
    return ",".join(sorted(n for n in x if x[n].tobytes() == y[n].tobytes()))


cmd = sys.argv[2]
if cmd == "make":
    make()
elif cmd == "check":
    print(check())
elif cmd == "same":
    print(same(sys.argv[3], sys.argv[4]))
elif cmd == "meta":
    print(stio.load(sys.argv[3])[1].get(sys.argv[4]))
EOF
ref() { "$PYTHON" ref.py "$REF_PY" "$@"; }

ref make
cp w.safetensors w0.safetensors
ADAM="--lr 0.01 --wd 0.1 --betas 0.9,0.99 --eps 1e-8 --ema e.safetensors --ema-decay 0.5"

# ---- two steps, bit for bit -------------------------------------------------
# shellcheck disable=SC2086
ok "step 1 creates state and EMA" optim -w w.safetensors -g g1.safetensors -s s.safetensors $ADAM
cp "$T/.out" out1.txt
# shellcheck disable=SC2086
ok "step 2 averages two gradient files, clips" \
    optim -w w.safetensors -g g1.safetensors -g g2.safetensors -s s.safetensors $ADAM --clip 0.05 -j 2
cp "$T/.out" out2.txt
eq "one line on stdout" "$(wc -l <out2.txt)" "1"
eq "step 2 line" "$(cut -d' ' -f1-2 out2.txt)" "step=2 lr=0.01"
eq "tool equals the library arithmetic (weights, state, EMA, line)" "$(ref check)" "ok"
ok "state readable by an independent safetensors reader" "$PYTHON" "$REF_PY/stio.py" s.safetensors
no_file "no temporary left" "$T/nothing"

# ---- refusals leave every file as it was --------------------------------------
for f in w s e; do cp $f.safetensors $f.keep; done
unchanged() {
    for f in w s e; do
        if ! cmp -s $f.safetensors $f.keep; then echo "$f changed"; return; fi
    done
    echo same
}
bad "missing weights file" 1 optim -w nope.safetensors -g g1.safetensors -s s.safetensors
eq "message names the file" "$(cat "$T/.err")" "optim: nope.safetensors: No such file or directory"
bad "missing gradient file" 1 optim -w w.safetensors -g nope.safetensors -s s.safetensors
bad "gradient name mismatch" 1 optim -w w.safetensors -g gname.safetensors -s s.safetensors
eq "message names file and tensor" "$(cat "$T/.err")" \
    "optim: gname.safetensors: gradient 'enc.fc.extra': no weight of that name"
bad "gradient shape mismatch" 1 optim -w w.safetensors -g g1.safetensors -g gshape.safetensors -s s.safetensors
bad "NaN gradient" 1 optim -w w.safetensors -g gnan.safetensors -s s.safetensors --ema e.safetensors
eq "NaN message" "$(cat "$T/.err")" "optim: gnan.safetensors: gradient 'enc.fc.weight': element 19 is NaN"
bad "SGD on an AdamW state" 1 optim -w w.safetensors -g g1.safetensors -s s.safetensors --sgd
eq "files unchanged after refusals" "$(unchanged)" "same"
no_file "no temporary after refusals" "$T/nothing"
"$PYTHON" - "$REF_PY" <<'EOF'
import sys; sys.path.insert(0, sys.argv[1]); import stio
t, m = stio.load("s.safetensors"); m["step"] = "1"; stio.save("s1.safetensors", t, m)
EOF
bad "interrupted update detected" 1 optim -w w.safetensors -g g1.safetensors -s s1.safetensors
eq "interrupted message" "$(cat "$T/.err")" \
    "optim: w.safetensors: step 2, but s1.safetensors has step 1 (an interrupted update? restore both from one checkpoint)"
eq "files unchanged" "$(unchanged)" "same"

# ---- usage errors: exit 2 ---------------------------------------------------------
bad "no gradient" 2 optim -w w.safetensors -s s.safetensors
bad "cosine without --total" 2 optim -w w.safetensors -g g1.safetensors -s s.safetensors --schedule cosine
bad "bad betas" 2 optim -w w.safetensors -g g1.safetensors -s s.safetensors --betas 0.9
bad "bad freeze regex" 2 optim -w w.safetensors -g g1.safetensors -s s.safetensors --freeze 'enc.('
bad "same file twice" 2 optim -w w.safetensors -g g1.safetensors -s w.safetensors
bad "unknown option" 2 optim -w w.safetensors -g g1.safetensors -s s.safetensors --bogus
eq "files unchanged after usage errors" "$(unchanged)" "same"
ok "-h" optim -h
ok "--version" optim --version

# ---- freezing, SGD, schedule --------------------------------------------------------
cp w0.safetensors wf.safetensors
ok "frozen step" optim -w wf.safetensors -g g1.safetensors -s sf.safetensors --freeze '^latent_tokens$'
eq "only the frozen tensor (and the I32 buffer) unchanged" \
    "$(ref same w0.safetensors wf.safetensors)" "enc.counter,latent_tokens"
cp w0.safetensors wsgd.safetensors
ok "SGD step" optim -w wsgd.safetensors -g g1.safetensors -s ssgd.safetensors --sgd --momentum 0.9 --lr 0.1
eq "SGD state" "$(ref meta ssgd.safetensors optimizer)" "sgd"
cp w0.safetensors wc.safetensors
ok "cosine warmup: first update has lr 0" \
    optim -w wc.safetensors -g g1.safetensors -s sc.safetensors --schedule cosine --warmup 2 --total 10
eq "lr 0 line" "$(cut -d' ' -f1-2 "$T/.out")" "step=1 lr=0"
eq "lr 0 leaves the weights" "$(ref same w0.safetensors wc.safetensors)" \
    "dec.conv.weight,enc.counter,enc.fc.bias,enc.fc.weight,enc.ln.weight,latent_tokens"

done_tests
