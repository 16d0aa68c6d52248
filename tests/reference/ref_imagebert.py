"""ref_imagebert.py - PyTorch reference fixtures for lib/imagebert.c (tests/unit/test_imagebert.c).

Usage: /usr/bin/python3 tests/reference/ref_imagebert.py OUTDIR

Writes OUTDIR/imagebert.safetensors. The model is TiTok's generator, ImageBert
(bytedance/1d-tokenizer modeling/maskgit.py): an HF BertModel (word + position
+ token_type row 0 embeddings, LayerNorm eps 1e-12, dropout; post-LN
BertLayers with exact GELU) over [class token, ids], then model.lm_head on
positions 1.., written here in plain torch (transformers is not installed)
over a dict of upstream's state_dict names. Shapes: codes V=13, classes NC=3,
tokens K=6, width 16, 2 layers, 2 heads, MLP 32, batch 3; ids include the
mask id V, labels include -1 (the null class, V+NC+1).

Fields: p.<name> the weights (random, not upstream's init, so every term
matters), shared by every case; per case <c>.ids, <c>.label, <c>.logits and,
for the training cases, <c>.dlogits and <c>.g.<name> (the gradients).
  eval.*   train = 0
  drop.*   training with hidden dropout 0.2 and attention dropout 0.25 whose
           masks are tokpipe's (lib/dropout.h over rng_hash, ref_block.py):
           s = rng_hash(SEED, IMAGEBERT_SALT), embeddings rng_hash(s, 0),
           layer l (1-based) block seed rng_hash(s, l)
  cfg_constant.*, cfg_linear.*, cfg_power-cosine.*
           inference with guidance 4.5 at sampling step 2 of 8 (pow 3),
           combined as ImageBert.generate does.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402
from ref_block import dropout, site_seed  # noqa: E402

V, NC, K, W, L, NH, FF, B = 13, 3, 6, 16, 2, 2, 32, 3
T, HD = K + 1, W // NH
SEED = 4242
SALT = 0x696d6167656265  # lib/imagebert.h IMAGEBERT_SALT
P_HIDDEN, P_ATTN = 0.2, 0.25
GUIDANCE, STEP, STEPS, POW = 4.5, 2, 8, 3.0


def shapes():
    e, s = "model.embeddings.", {}
    s[e + "word_embeddings.weight"] = (V + NC + 2, W)
    s[e + "position_embeddings.weight"] = (T, W)
    s[e + "token_type_embeddings.weight"] = (2, W)
    s[e + "LayerNorm.weight"] = (W,)
    s[e + "LayerNorm.bias"] = (W,)
    for l in range(L):
        p = f"model.encoder.layer.{l}."
        for n in ("query", "key", "value"):
            s[p + f"attention.self.{n}.weight"] = (W, W)
            s[p + f"attention.self.{n}.bias"] = (W,)
        for n, fin, fout in (("attention.output.dense", W, W), ("intermediate.dense", W, FF),
                             ("output.dense", FF, W)):
            s[p + n + ".weight"] = (fout, fin)
            s[p + n + ".bias"] = (fout,)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            s[p + n + ".weight"] = (W,)
            s[p + n + ".bias"] = (W,)
    s["model.lm_head.weight"] = (V, W)
    s["model.lm_head.bias"] = (V,)
    return s


def lin(P, name, x):
    return F.linear(x, P[name + ".weight"], P[name + ".bias"])


def norm(P, name, x):
    return F.layer_norm(x, (W,), P[name + ".weight"], P[name + ".bias"], eps=1e-12)


def bert_layer(P, pre, x, drop):
    """HF BertLayer: BertSelfAttention, BertSelfOutput, BertIntermediate, BertOutput."""
    def heads(t):
        return t.view(x.shape[0], T, NH, HD).permute(0, 2, 1, 3)
    q, k, v = (heads(lin(P, pre + f"attention.self.{n}", x)) for n in ("query", "key", "value"))
    probs = drop((q @ k.transpose(-1, -2) / math.sqrt(HD)).softmax(-1), 0)
    ctx = (probs @ v).permute(0, 2, 1, 3).reshape(x.shape[0], T, W)
    a = norm(P, pre + "attention.output.LayerNorm", drop(lin(P, pre + "attention.output.dense", ctx), 1) + x)
    h = F.gelu(lin(P, pre + "intermediate.dense", a))
    return norm(P, pre + "output.LayerNorm", drop(lin(P, pre + "output.dense", h), 2) + a)


def image_bert(P, ids, label, train):
    """ImageBert.forward without its label dropout (cond_drop_prob 0): labels < 0 are the null class."""
    cond = torch.where(label >= 0, label + V + 1, torch.full_like(label, V + NC + 1))
    tok = torch.cat([cond.view(-1, 1), ids.view(ids.shape[0], -1)], dim=1)
    e = "model.embeddings."
    x = P[e + "word_embeddings.weight"][tok] + P[e + "token_type_embeddings.weight"][0]
    x = x + P[e + "position_embeddings.weight"][torch.arange(T)]
    s = site_seed(SEED, SALT)
    ph, pa = (P_HIDDEN, P_ATTN) if train else (0, 0)
    h = dropout(norm(P, e + "LayerNorm", x), ph, s, 0)
    for l in range(L):
        sl = site_seed(s, l + 1)
        h = bert_layer(P, f"model.encoder.layer.{l}.", h,
                       lambda t, site, sl=sl: dropout(t, pa if site == 0 else ph, sl, site))
    return lin(P, "model.lm_head", h[:, 1:])


def guided(P, ids, label, kind):
    """The logits of ImageBert.generate at step STEP of STEPS (newer upstream: constant,
    linear, power-cosine)."""
    if kind == "power-cosine":
        scale_step = (1 - torch.cos(((STEP / STEPS) ** (torch.ones(1) * POW)) * torch.pi)) * 1 / 2
        cfg_scale = (GUIDANCE - 1) * scale_step + 1
    else:
        cfg_scale = GUIDANCE if kind == "constant" else STEP / STEPS * GUIDANCE
    cond = image_bert(P, ids, label, False)
    uncond = image_bert(P, ids, torch.full_like(label, -1), False)
    if kind == "power-cosine":
        return uncond + (cond - uncond) * cfg_scale
    return cond + (cond - uncond) * cfg_scale


def main():
    outdir = sys.argv[1]
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    P = {}
    for name, shp in shapes().items():
        r = torch.randn(shp, generator=g) * 0.3
        P[name] = (1 + r if "LayerNorm.weight" in name else r).requires_grad_()
    out = {"p." + n: t for n, t in P.items()}
    ids = torch.randint(0, V + 1, (B, K), generator=g, dtype=torch.int32)
    ids[0, :3] = V
    label = torch.tensor([1, -1, 2], dtype=torch.int32)
    for case, train in (("eval", False), ("drop", True)):
        for t in P.values():
            t.grad = None
        logits = image_bert(P, ids.long(), label.long(), train)
        dlogits = torch.randn(logits.shape, generator=g)
        (logits * dlogits).sum().backward()
        out.update({f"{case}.ids": ids, f"{case}.label": label, f"{case}.logits": logits,
                    f"{case}.dlogits": dlogits})
        out.update({f"{case}.g.{n}": t.grad for n, t in P.items()})
    with torch.no_grad():
        for kind in ("constant", "linear", "power-cosine"):
            out[f"cfg_{kind}.ids"] = ids
            out[f"cfg_{kind}.label"] = label
            out[f"cfg_{kind}.logits"] = guided(P, ids.long(), label.long(), kind)
    meta = {"seed": SEED, "guidance": GUIDANCE, "sample_step": STEP, "sample_steps": STEPS,
            "guidance_pow": POW, "p_hidden": P_HIDDEN, "p_attn": P_ATTN}
    stio.save(os.path.join(outdir, "imagebert.safetensors"), stio.tensors_from_torch(out), meta)


if __name__ == "__main__":
    main()
