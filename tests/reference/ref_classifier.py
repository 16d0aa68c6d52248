"""ref_classifier.py - PyTorch reference fixtures for lib/classifier.c and
lib/fd.c (tests/unit/test_classifier.c, tests/unit/test_fd.c).

Usage: /usr/bin/python3 tests/reference/ref_classifier.py OUTDIR

classifier.safetensors: the evaluation ViT written in plain torch: patch_embed
(Conv2d, kernel = stride = patch), [class_embedding, patches] +
positional_embedding, ln_pre, pre-LN ResidualAttentionBlocks (ref_block.py's,
upstream TiTok's, on LND), ln_post of the class token = features, head
(Linear) = logits. Every parameter under tokpipe's name with random values
(norms around 1), the input image, the outputs features [B,E] and logits
[B,V], random output gradients features.grad and logits.grad, and the
gradients of L = sum(features * features.grad) + sum(logits * logits.grad) as
image.grad and <param>.grad. Metadata: the architecture, as a weights file.
Sizes: B=3, C=2, R=8, patch 4 (2x2 grid, T=5), width 16, 2 blocks, 2 heads,
V=5 classes.

fd.safetensors: two sets of random features with different means and
covariances, x1 [N1,D] and x2 [N2,D] (F32, in that dtype), their means and
covariances in double (np.cov), and the Frechet distance computed
independently of lib/fd.c: tr (S1 S2)^(1/2) as the sum of the square roots of
the eigenvalues of the non-symmetric product S1 S2 (numpy's general eig), as
metadata "fd" (repr of a double).
"""
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402
from ref_block import ResidualAttentionBlock  # noqa: E402


class ViTClassifier(nn.Module):
    def __init__(self, channels, image_size, patch_size, width, num_layers, num_heads, classes):
        super().__init__()
        grid = image_size // patch_size
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(1, width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid ** 2 + 1, width))
        self.patch_embed = nn.Conv2d(channels, width, kernel_size=patch_size, stride=patch_size, bias=True)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.ModuleList([ResidualAttentionBlock(width, num_heads, mlp_ratio=4.0)
                                          for _ in range(num_layers)])
        self.ln_post = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, image):
        x = self.patch_embed(image)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B,N,E]
        cls = self.class_embedding.unsqueeze(0).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)  # NLD -> LND
        for block in self.transformer:
            x = block(x)
        features = self.ln_post(x[0])  # the class token
        return features, self.head(features)


B, C, R, P, E, L, NH, V = 3, 2, 8, 4, 16, 2, 2, 5
GEN = torch.Generator().manual_seed(77)


def randn(*shape):
    return torch.randn(*shape, generator=GEN)


def classifier_fixture(outdir):
    torch.manual_seed(3)
    m = ViTClassifier(C, R, P, E, L, NH, V)
    with torch.no_grad():
        for name, p in m.named_parameters():
            norm = "ln_" in name and name.endswith("weight")
            p.copy_(1.0 + 0.3 * randn(p.shape) if norm else 0.3 * randn(p.shape))
    image = torch.rand(B, C, R, R, generator=GEN).requires_grad_()
    features, logits = m(image)
    df, dl = randn(*features.shape), randn(*logits.shape)
    ((features * df).sum() + (logits * dl).sum()).backward()
    t = {"image": image, "features": features, "logits": logits, "features.grad": df, "logits.grad": dl,
         "image.grad": image.grad}
    for k, p in m.named_parameters():
        t[k] = p
        t[k + ".grad"] = p.grad
    meta = dict(arch="vit-classifier", channels=C, resolution=R, patch=P, width=E, layers=L, heads=NH,
                classes=V)
    stio.save(os.path.join(outdir, "classifier.safetensors"), stio.tensors_from_torch(t),
              {k: str(v) for k, v in meta.items()})


def fd_fixture(outdir):
    rng = np.random.default_rng(5)
    D, N1, N2 = 12, 700, 500
    a1, a2 = rng.standard_normal((D, D)), rng.standard_normal((D, D)) * 0.5
    x1 = (rng.standard_normal((N1, D)) @ a1 + 0.3).astype(np.float32)
    x2 = (rng.standard_normal((N2, D)) @ a2 + rng.standard_normal(D)).astype(np.float32)
    mu1, mu2 = x1.astype(np.float64).mean(0), x2.astype(np.float64).mean(0)
    s1, s2 = np.cov(x1.astype(np.float64), rowvar=False), np.cov(x2.astype(np.float64), rowvar=False)
    ev = np.linalg.eigvals(s1 @ s2)
    assert np.abs(ev.imag).max() < 1e-8 * np.abs(ev).max()
    fd = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev.real, 0, None)).sum()
    stio.save(os.path.join(outdir, "fd.safetensors"),
              {"x1": x1, "x2": x2, "mu1": mu1, "mu2": mu2, "sigma1": s1, "sigma2": s2},
              {"fd": repr(float(fd))})


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    classifier_fixture(outdir)
    fd_fixture(outdir)


if __name__ == "__main__":
    main()
