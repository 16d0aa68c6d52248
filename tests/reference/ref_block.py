"""ref_block.py - PyTorch reference fixtures for lib/block.c (tests/unit/test_block.c).

Usage: /usr/bin/python3 tests/reference/ref_block.py OUTDIR

Writes OUTDIR/block.safetensors, B=2, T=5, W=16, NH=2, MLP width 64, three
cases by prefix:
  vit.*       TiTok's ResidualAttentionBlock exactly as upstream
              (bytedance/1d-tokenizer modeling/modules/blocks.py: pre-LN,
              torch nn.MultiheadAttention on [T,B,W], exact GELU, eps 1e-5).
  bert.*      a BertLayer with HF transformers' module structure and names
              (post-LN, exact GELU, eps 1e-12), written here in plain torch
              since transformers is not installed; evaluation (no dropout).
  bertdrop.*  the same layer in training: hidden dropout 0.2 and
              attention-probability dropout 0.25 whose masks are tokpipe's
              (lib/dropout.h over lib/rng.c's rng_hash, reimplemented below),
              seed SEED.
Fields per case: x [B,T,W], dout (the output gradient), out, dx, and for
every parameter p.<state_dict name> and g.<state_dict name> (its gradient).
Parameters are random (not upstream's init) so that every term matters.
"""
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

B, T, W, NH, F = 2, 5, 16, 2, 64
HD = W // NH
SEED = 12345
P_HIDDEN, P_ATTN = 0.2, 0.25

U64 = np.uint64


def rng_hash(seed, i):
    """lib/rng.c rng_hash(seed, i) for a uint64 array i (wrapping arithmetic)."""
    x = U64(seed) ^ (i * U64(0xd1b54a32d192ed03))
    z = x + U64(0x9e3779b97f4a7c15)
    z = (z ^ (z >> U64(30))) * U64(0xbf58476d1ce4e5b9)
    z = (z ^ (z >> U64(27))) * U64(0x94d049bb133111eb)
    return z ^ (z >> U64(31))


def site_seed(seed, site):
    return int(rng_hash(seed, np.array([site], dtype=U64))[0])


def dropout(x, p, seed, site):
    """lib/dropout.h: keep element i iff rng_hash_uniform(s, i) >= p, s the site's seed."""
    if p == 0:
        return x
    n = x.numel()
    u = (rng_hash(site_seed(seed, site), np.arange(n, dtype=U64)) >> U64(40)).astype(np.float32)
    u *= np.float32(1.0 / 16777216.0)
    scale = np.float32(1.0) / (np.float32(1.0) - np.float32(p))
    mask = np.where(u >= np.float32(p), scale, np.float32(0)).astype(np.float32)
    return x * torch.from_numpy(mask).view_as(x)


class ResidualAttentionBlock(nn.Module):
    """Upstream's, with the default mlp_ratio 4 (F = 4W)."""

    def __init__(self, d_model, n_head, mlp_ratio=4.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_2 = nn.LayerNorm(d_model)
        mlp_width = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(d_model, mlp_width)),
            ("gelu", nn.GELU()),
            ("c_proj", nn.Linear(mlp_width, d_model)),
        ]))

    def forward(self, x):
        x = x + self.attn(*(3 * [self.ln_1(x)]), need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Drop:
    """Dropout at the sites of lib/block.h: 0 probabilities, 1 attention output, 2 MLP output."""

    def __init__(self, p_hidden, p_attn, seed):
        self.p = {0: p_attn, 1: p_hidden, 2: p_hidden}
        self.seed = seed

    def __call__(self, x, site):
        return dropout(x, self.p[site], self.seed, site)


class BertSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(W, W)
        self.key = nn.Linear(W, W)
        self.value = nn.Linear(W, W)

    def forward(self, x, drop):
        def heads(t):
            return t.view(B, T, NH, HD).permute(0, 2, 1, 3)
        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        probs = (q @ k.transpose(-1, -2) / math.sqrt(HD)).softmax(-1)
        probs = drop(probs, 0)
        return (probs @ v).permute(0, 2, 1, 3).reshape(B, T, W)


class DenseAddNorm(nn.Module):
    """HF's BertSelfOutput (fin = W, dropout site 1) and BertOutput (fin = F, site 2),
    which are the same module: LayerNorm(dropout(dense(h)) + inp)."""

    def __init__(self, fin, site):
        super().__init__()
        self.dense = nn.Linear(fin, W)
        self.LayerNorm = nn.LayerNorm(W, eps=1e-12)
        self.site = site

    def forward(self, h, inp, drop):
        return self.LayerNorm(drop(self.dense(h), self.site) + inp)


class BertAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.self = BertSelfAttention()
        self.output = DenseAddNorm(W, 1)

    def forward(self, x, drop):
        return self.output(self.self(x, drop), x, drop)


class BertIntermediate(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(W, F)
        self.intermediate_act_fn = nn.GELU()

    def forward(self, x):
        return self.intermediate_act_fn(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = BertAttention()
        self.intermediate = BertIntermediate()
        self.output = DenseAddNorm(F, 2)

    def forward(self, x, drop):
        a = self.attention(x, drop)
        return self.output(self.intermediate(a), a, drop)


def randomize(module, g):
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=g) * 0.3
            is_norm = "ln_" in name or "LayerNorm" in name
            p.copy_(1 + r if is_norm and name.endswith("weight") else r)


def case(tag, module, run, g):
    randomize(module, g)
    x = torch.randn(B, T, W, generator=g).requires_grad_()
    dout = torch.randn(B, T, W, generator=g)
    out = run(x)
    (out * dout).sum().backward()
    d = {f"{tag}.x": x, f"{tag}.dout": dout, f"{tag}.out": out, f"{tag}.dx": x.grad}
    for name, p in module.named_parameters():
        d[f"{tag}.p.{name}"] = p
        d[f"{tag}.g.{name}"] = p.grad
    return d


def main():
    outdir = sys.argv[1]
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    vit = ResidualAttentionBlock(W, NH)
    t = case("vit", vit, lambda x: vit(x.permute(1, 0, 2)).permute(1, 0, 2), g)
    bert = BertLayer()
    t.update(case("bert", bert, lambda x: bert(x, Drop(0, 0, SEED)), g))
    bertd = BertLayer()
    t.update(case("bertdrop", bertd, lambda x: bertd(x, Drop(P_HIDDEN, P_ATTN, SEED)), g))
    meta = {"B": B, "T": T, "W": W, "NH": NH, "F": F, "seed": SEED,
            "p_hidden": P_HIDDEN, "p_attn": P_ATTN}
    stio.save(os.path.join(outdir, "block.safetensors"), stio.tensors_from_torch(t), meta)


if __name__ == "__main__":
    main()
