"""ref_vq.py - PyTorch reference fixtures for lib/vq.c (tests/unit/test_vq.c).

Usage: /usr/bin/python3 tests/reference/ref_vq.py OUTDIR

Writes OUTDIR/vq_l2.safetensors (use_l2_norm True, TiTok) and
OUTDIR/vq_raw.safetensors (use_l2_norm False). The module is upstream's
VectorQuantizer (bytedance/1d-tokenizer modeling/quantizer/quantizer.py)
forward, transcribed without einops/accelerate (clustering_vq off). z enters
as [B,C,H,W] = [B,D,1,T] (T tokens) as in TiTok; the fixture stores it flattened the way
upstream flattens it, b h w c -> (b h w) c, which is lib/vq.c's [N,D].

Fields: "z" [N,D]; "quantize.embedding.weight" [K,D] (TiTok's state_dict
name); "zq" [N,D] (z_quantized, flattened); "ids" I32 [N]; "commitment_loss",
"codebook_loss" ([1]); "dzq" [N,D], the random output gradient; and, for
L = QW * quantizer_loss + sum(zq * dzq) with QW = metadata quantizer_weight,
"z.grad" [N,D] and "quantize.embedding.weight.grad" [K,D].
Metadata: beta (commitment_cost), quantizer_weight, l2.
The draw is redone until every row's nearest code beats the second by 1e-3,
so float rounding cannot flip an id.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402


class VectorQuantizer(torch.nn.Module):
    def __init__(self, codebook_size, token_size, commitment_cost=0.25, use_l2_norm=False):
        super().__init__()
        self.codebook_size = codebook_size
        self.token_size = token_size
        self.commitment_cost = commitment_cost
        self.embedding = torch.nn.Embedding(codebook_size, token_size)
        self.embedding.weight.data.uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        self.use_l2_norm = use_l2_norm

    def forward(self, z):
        z = z.float()
        z = z.permute(0, 2, 3, 1).contiguous()          # b c h w -> b h w c
        z_flattened = z.reshape(-1, z.shape[-1])         # (b h w) c
        if self.use_l2_norm:
            z_flattened = torch.nn.functional.normalize(z_flattened, dim=-1)
            embedding = torch.nn.functional.normalize(self.embedding.weight, dim=-1)
        else:
            embedding = self.embedding.weight
        d = torch.sum(z_flattened**2, dim=1, keepdim=True) + \
            torch.sum(embedding**2, dim=1) - 2 * \
            torch.einsum('bd,dn->bn', z_flattened, embedding.T)
        min_encoding_indices = torch.argmin(d, dim=1)
        z_quantized = self.get_codebook_entry(min_encoding_indices).view(z.shape)
        if self.use_l2_norm:
            z_quantized = torch.nn.functional.normalize(z_quantized, dim=-1)
            z = torch.nn.functional.normalize(z, dim=-1)
        commitment_loss = self.commitment_cost * torch.mean((z_quantized.detach() - z) ** 2)
        codebook_loss = torch.mean((z_quantized - z.detach()) ** 2)
        loss = commitment_loss + codebook_loss
        z_quantized = z + (z_quantized - z).detach()
        z_quantized = z_quantized.permute(0, 3, 1, 2).contiguous()
        return z_quantized, dict(quantizer_loss=loss, commitment_loss=commitment_loss,
                                 codebook_loss=codebook_loss,
                                 min_encoding_indices=min_encoding_indices, d=d)

    def get_codebook_entry(self, indices):
        z_quantized = self.embedding(indices)
        if self.use_l2_norm:
            z_quantized = torch.nn.functional.normalize(z_quantized, dim=-1)
        return z_quantized


def margin_ok(d):
    top2 = torch.topk(d, 2, dim=1, largest=False).values
    return bool((top2[:, 1] - top2[:, 0] > 1e-3).all())


def fixture(outdir, name, l2, seed):
    B, D, T, codes = 3, 8, 5, 16      # z [B,D,1,T]: N = B*T = 15 tokens of size D
    beta, qw = 0.25, 1.5
    g = torch.Generator().manual_seed(seed)
    while True:
        vq = VectorQuantizer(codes, D, beta, l2)
        with torch.no_grad():
            # the codebook of a trained model is not near 0: spread it out
            vq.embedding.weight.copy_(torch.rand(codes, D, generator=g) * 2 - 1)
        z = (torch.randn(B, D, 1, T, generator=g)).requires_grad_(True)
        zq, res = vq(z)
        if margin_ok(res["d"].detach()):
            break
    dzq = torch.randn(zq.shape, generator=g)
    total = qw * res["quantizer_loss"] + (zq * dzq).sum()
    total.backward()

    def flat(t):  # [B,D,1,T] -> [(B 1 T), D]
        return t.detach().permute(0, 2, 3, 1).reshape(-1, D).contiguous()

    out = {"z": flat(z), "quantize.embedding.weight": vq.embedding.weight.detach(),
           "zq": flat(zq), "ids": res["min_encoding_indices"].int(),
           "commitment_loss": res["commitment_loss"].detach().reshape(1),
           "codebook_loss": res["codebook_loss"].detach().reshape(1),
           "dzq": flat(dzq), "z.grad": flat(z.grad),
           "quantize.embedding.weight.grad": vq.embedding.weight.grad}
    stio.save(os.path.join(outdir, name + ".safetensors"), stio.tensors_from_torch(out),
              {"beta": beta, "quantizer_weight": qw, "l2": int(l2)})


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    fixture(outdir, "vq_l2", True, 11)
    fixture(outdir, "vq_raw", False, 12)


if __name__ == "__main__":
    main()
