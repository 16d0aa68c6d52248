"""ref_titok.py - PyTorch reference fixtures for lib/titok*.c (tests/unit/test_titok.c).

Usage: /usr/bin/python3 tests/reference/ref_titok.py OUTDIR

TiTokEncoder and TiTokDecoder transcribed from bytedance/1d-tokenizer
(modeling/modules/blocks.py; the config object replaced by arguments, the
forward passes as upstream's with the legacy reshape, and the part both
repeat there, embeddings to ln_post, written once in ViT), TiTok's
stage-2 pixel path (modeling/titok.py TiTok.decode: softmax over the proxy
codes, einsum with pixel_quantize.embedding.weight, the MaskGIT-VQGAN
Decoder of modeling/modules/maskgit_vqgan.py). The ResidualAttentionBlock,
Conv2dSame and ResnetBlock are the ones ref_block.py and ref_conv.py check.

Fixtures, each OUTDIR/<name>.safetensors with the architecture as
__metadata__ (what tokpipe's weights file would hold), every parameter
under its upstream state_dict name with random values, the input, the
output, a random output gradient "<out>.grad", and the gradients of
L = sum(out * <out>.grad) as "<input>.grad" and "<param>.grad":
  titok_enc_legacy, titok_enc_new   image [B,C,R,R] -> latent [B,K,D]
                                    (upstream's [B,D,1,K] as the quantizer
                                    flattens it), legacy=1 and 0
  titok_dec                         quant [B,K,D] -> logits [B,h,w,V]
                                    (upstream's [B,V,h,w] as NHWC)
  titok_dec_pixel                   the same plus recon [B,C,R',R'], with
                                    gradients on both logits and recon
  titok_dec_pixel_l2                the same with pixel_l2=1: the codebook
                                    rows F.normalize'd (a teacher trained
                                    with the L2-normalised quantizer)
Sizes: B=2, C=3, R=8, patch 4 (2x2 grid), width 16, 2 blocks, 2 heads,
K=4 tokens, D=5, V=64 proxy codes; pixel decoder hidden 32, mult 1,2,
1 res block, z 8, 3 channels, 4x4 output.

titok_counts: parameter counts of the upstream presets, from instances of
the transcribed modules (the blocks counted once per width and multiplied
by the depth, so that the 300M-parameter sizes are never allocated), as
metadata "<preset>.<part>" for parts latent_tokens, encoder, decoder,
pixel_quantize, pixel_decoder.
"""
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402
from ref_block import ResidualAttentionBlock  # noqa: E402
from ref_conv import Conv2dSame, ResnetBlock  # noqa: E402


def _expand_token(token, batch_size: int):
    return token.unsqueeze(0).expand(batch_size, -1, -1)


class ViT(nn.Module):
    """What upstream's TiTokEncoder and TiTokDecoder write twice, once here:
    the embeddings, ln_pre, the blocks (on LND, as upstream), ln_post."""

    def vit_init(self, grid_size, width, num_layers, num_heads, num_latent_tokens, mask_token):
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(1, width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid_size ** 2 + 1, width))
        if mask_token:
            self.mask_token = nn.Parameter(scale * torch.randn(1, 1, width))
        self.latent_token_positional_embedding = nn.Parameter(scale * torch.randn(num_latent_tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.ModuleList()
        for i in range(num_layers):
            self.transformer.append(ResidualAttentionBlock(width, num_heads, mlp_ratio=4.0))
        self.ln_post = nn.LayerNorm(width)

    def blocks(self, x):
        x = self.ln_pre(x)
        x = x.permute(1, 0, 2)  # NLD -> LND
        for i in range(self.num_layers):
            x = self.transformer[i](x)
        return x.permute(1, 0, 2)  # LND -> NLD


class TiTokEncoder(ViT):
    def __init__(self, channels, image_size, patch_size, width, num_layers, num_heads,
                 num_latent_tokens, token_size, is_legacy):
        super().__init__()
        self.image_size = image_size
        self.patch_size = patch_size
        self.grid_size = self.image_size // self.patch_size
        self.num_latent_tokens = num_latent_tokens
        self.token_size = token_size
        self.is_legacy = is_legacy
        self.width, self.num_layers, self.num_heads = width, num_layers, num_heads
        # upstream hard-codes in_channels=3; tokpipe's data may be gray
        self.patch_embed = nn.Conv2d(
            in_channels=channels, out_channels=self.width,
            kernel_size=self.patch_size, stride=self.patch_size, bias=True)
        self.vit_init(self.grid_size, width, num_layers, num_heads, num_latent_tokens, False)
        self.conv_out = nn.Conv2d(self.width, self.token_size, kernel_size=1, bias=True)

    def forward(self, pixel_values, latent_tokens):
        batch_size = pixel_values.shape[0]
        x = pixel_values
        x = self.patch_embed(x)
        x = x.reshape(x.shape[0], x.shape[1], -1)
        x = x.permute(0, 2, 1)  # shape = [*, grid ** 2, width]
        x = torch.cat([_expand_token(self.class_embedding, x.shape[0]).to(x.dtype), x], dim=1)
        x = x + self.positional_embedding.to(x.dtype)  # shape = [*, grid ** 2 + 1, width]
        latent_tokens = _expand_token(latent_tokens, x.shape[0]).to(x.dtype)
        latent_tokens = latent_tokens + self.latent_token_positional_embedding.to(x.dtype)
        x = torch.cat([x, latent_tokens], dim=1)
        x = self.blocks(x)
        latent_tokens = x[:, 1 + self.grid_size ** 2:]
        latent_tokens = self.ln_post(latent_tokens)
        # fake 2D shape
        if self.is_legacy:
            latent_tokens = latent_tokens.reshape(batch_size, self.width, self.num_latent_tokens, 1)
        else:
            # Fix legacy problem.
            latent_tokens = latent_tokens.reshape(
                batch_size, self.num_latent_tokens, self.width, 1).permute(0, 2, 1, 3)
        latent_tokens = self.conv_out(latent_tokens)
        latent_tokens = latent_tokens.reshape(batch_size, self.token_size, 1, self.num_latent_tokens)
        return latent_tokens


class TiTokDecoder(ViT):
    """The legacy (proxy-code) head; proxy_codes is upstream's hard-coded 1024."""

    def __init__(self, grid_size, width, num_layers, num_heads, num_latent_tokens, token_size,
                 proxy_codes):
        super().__init__()
        self.grid_size = grid_size
        self.num_latent_tokens = num_latent_tokens
        self.token_size = token_size
        self.width, self.num_layers, self.num_heads = width, num_layers, num_heads
        self.decoder_embed = nn.Linear(self.token_size, self.width, bias=True)
        self.vit_init(grid_size, width, num_layers, num_heads, num_latent_tokens, True)
        self.ffn = nn.Sequential(
            nn.Conv2d(self.width, 2 * self.width, 1, padding=0, bias=True),
            nn.Tanh(),
            nn.Conv2d(2 * self.width, proxy_codes, 1, padding=0, bias=True),
        )
        self.conv_out = nn.Identity()

    def forward(self, z_quantized):
        N, C, H, W = z_quantized.shape
        assert H == 1 and W == self.num_latent_tokens, f"{H}, {W}, {self.num_latent_tokens}"
        x = z_quantized.reshape(N, C * H, W).permute(0, 2, 1)  # NLD
        x = self.decoder_embed(x)
        batchsize, seq_len, _ = x.shape
        mask_tokens = self.mask_token.repeat(batchsize, self.grid_size ** 2, 1).to(x.dtype)
        mask_tokens = torch.cat([_expand_token(self.class_embedding, mask_tokens.shape[0]).to(mask_tokens.dtype),
                                 mask_tokens], dim=1)
        mask_tokens = mask_tokens + self.positional_embedding.to(mask_tokens.dtype)
        x = x + self.latent_token_positional_embedding[:seq_len]
        x = torch.cat([mask_tokens, x], dim=1)
        x = self.blocks(x)
        x = x[:, 1:1 + self.grid_size ** 2]  # remove cls embed
        x = self.ln_post(x)
        # N L D -> N D H W
        x = x.permute(0, 2, 1).reshape(batchsize, self.width, self.grid_size, self.grid_size)
        x = self.ffn(x.contiguous())
        x = self.conv_out(x)
        return x


class UpsamplingBlock(nn.Module):
    def __init__(self, hidden_channels, channel_mult, num_res_blocks, block_idx):
        super().__init__()
        if block_idx == len(channel_mult) - 1:
            block_in = hidden_channels * channel_mult[-1]
        else:
            block_in = hidden_channels * channel_mult[block_idx + 1]
        block_out = hidden_channels * channel_mult[block_idx]
        res_blocks = []
        for _ in range(num_res_blocks):
            res_blocks.append(ResnetBlock(block_in, block_out))
            block_in = block_out
        self.block = nn.ModuleList(res_blocks)
        self.add_upsample = block_idx != 0
        if self.add_upsample:
            self.upsample_conv = Conv2dSame(block_out, block_out, kernel_size=3)

    def forward(self, hidden_states):
        for res_block in self.block:
            hidden_states = res_block(hidden_states)
        if self.add_upsample:
            hidden_states = F.interpolate(hidden_states, scale_factor=2.0, mode="nearest")
            hidden_states = self.upsample_conv(hidden_states)
        return hidden_states


class PixelDecoder(nn.Module):
    """maskgit_vqgan.Decoder"""

    def __init__(self, num_channels, hidden_channels, channel_mult, num_res_blocks, z_channels):
        super().__init__()
        n = len(channel_mult)
        block_in = hidden_channels * channel_mult[n - 1]
        self.conv_in = Conv2dSame(z_channels, block_in, kernel_size=3)
        self.mid = nn.ModuleList([ResnetBlock(block_in, block_in) for _ in range(num_res_blocks)])
        upsample_blocks = []
        for i_level in reversed(range(n)):
            upsample_blocks.append(UpsamplingBlock(hidden_channels, channel_mult, num_res_blocks, i_level))
        self.up = nn.ModuleList(list(reversed(upsample_blocks)))  # reverse to get consistent order
        block_out = hidden_channels * channel_mult[0]
        self.norm_out = nn.GroupNorm(num_groups=32, num_channels=block_out, eps=1e-6, affine=True)
        self.conv_out = Conv2dSame(block_out, num_channels, kernel_size=3)

    def forward(self, hidden_states):
        hidden_states = self.conv_in(hidden_states)
        for block in self.mid:
            hidden_states = block(hidden_states)
        for block in reversed(self.up):
            hidden_states = block(hidden_states)
        hidden_states = self.norm_out(hidden_states)
        hidden_states = F.silu(hidden_states)
        return self.conv_out(hidden_states)


class PixelQuantizer(nn.Module):
    """maskgit_vqgan.VectorQuantizer: only its codebook is used here"""

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        self.embedding.weight.data.uniform_(-1.0 / num_embeddings, 1.0 / num_embeddings)


class TiTokDec(nn.Module):
    """TiTok's decode(): decoder.*, and with pixel pixel_quantize.* and pixel_decoder.*"""

    def __init__(self, dec, pixel=None, l2=False):
        super().__init__()
        self.decoder = dec
        self.l2 = l2
        if pixel:
            self.pixel_quantize = PixelQuantizer(pixel["V"], pixel["z"])
            self.pixel_decoder = PixelDecoder(pixel["channels"], pixel["hidden"], pixel["mult"],
                                              pixel["res_blocks"], pixel["z"])

    def forward(self, z_quantized):
        logits = self.decoder(z_quantized)
        if not hasattr(self, "pixel_decoder"):
            return logits, None
        codebook = self.pixel_quantize.embedding.weight
        if self.l2:
            codebook = F.normalize(codebook, dim=-1)
        quantized_states = torch.einsum('nchw,cd->ndhw', logits.softmax(1), codebook)
        return logits, self.pixel_decoder(quantized_states)


B, C, R, P, E, L, NH, K, D, V = 2, 3, 8, 4, 16, 2, 2, 4, 5, 64
PIX = dict(V=V, channels=3, hidden=32, mult=[1, 2], res_blocks=1, z=8)
GEN = torch.Generator().manual_seed(2024)


def randn(*shape):
    return torch.randn(*shape, generator=GEN)


def randomize(module):
    """Random values for every parameter, norms around 1."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            norm = any(s in name for s in ("ln_", "norm")) and name.endswith("weight")
            p.copy_(1.0 + 0.3 * randn(p.shape) if norm else 0.3 * randn(p.shape))


def save(outdir, name, meta, tensors, params):
    t = dict(tensors)
    for k, p in params:
        t[k] = p
        t[k + ".grad"] = p.grad
    stio.save(os.path.join(outdir, name + ".safetensors"), stio.tensors_from_torch(t),
              {k: str(v) for k, v in meta.items()})


def enc_fixture(outdir, legacy):
    torch.manual_seed(0)
    enc = TiTokEncoder(C, R, P, E, L, NH, K, D, legacy)
    latent_tokens = nn.Parameter(randn(K, E))
    randomize(enc)
    image = torch.rand(B, C, R, R, generator=GEN).requires_grad_()
    z = enc(image, latent_tokens)                       # [B,D,1,K]
    latent = z.permute(0, 2, 3, 1).reshape(B, K, D)     # the quantizer's rows
    dlat = randn(B, K, D)
    (latent * dlat).sum().backward()
    meta = dict(arch="titok-encoder", channels=C, resolution=R, patch=P, width=E, layers=L, heads=NH,
                tokens=K, token_size=D, legacy=int(legacy))
    params = [("latent_tokens", latent_tokens)] + [("encoder." + n, p) for n, p in enc.named_parameters()]
    save(outdir, "titok_enc_" + ("legacy" if legacy else "new"), meta,
         {"image": image, "latent": latent, "latent.grad": dlat, "image.grad": image.grad}, params)


def dec_fixture(outdir, pixel, l2=False):
    torch.manual_seed(1)
    G = R // P
    m = TiTokDec(TiTokDecoder(G, E, L, NH, K, D, V), PIX if pixel else None, l2)
    randomize(m)
    quant = randn(B, K, D).requires_grad_()
    z = quant.permute(0, 2, 1).reshape(B, D, 1, K)      # upstream's [B,D,1,K]
    logits, recon = m(z)
    logits = logits.permute(0, 2, 3, 1)                 # [B,h,w,V]
    dlog = randn(*logits.shape)
    loss = (logits * dlog).sum()
    t = {"quant": quant, "logits": logits, "logits.grad": dlog}
    meta = dict(arch="titok-decoder", resolution=R, patch=P, width=E, layers=L, heads=NH, tokens=K,
                token_size=D, proxy_codes=V, pixel=int(pixel))
    if pixel:
        drec = randn(*recon.shape)
        loss = loss + (recon * drec).sum()
        t.update({"recon": recon, "recon.grad": drec})
        meta.update({"pixel_" + k: (",".join(map(str, v)) if k == "mult" else v)
                     for k, v in PIX.items() if k != "V"})
        meta["pixel_resolution"] = G * 2 ** (len(PIX["mult"]) - 1)
        meta["pixel_l2"] = int(l2)
    loss.backward()
    t["quant.grad"] = quant.grad
    name = "titok_dec_pixel_l2" if l2 else "titok_dec_pixel" if pixel else "titok_dec"
    save(outdir, name, meta, t, list(m.named_parameters()))


# upstream.md A.2/A.5 (and DESIGN.md section 8 for tiny): channels, side,
# patch, width, depth, heads, tokens, token size; the pixel decoders are
# vqgan-tiny's and upstream's f16 MaskGIT-VQGAN
PRESETS = {
    "titok-tiny": (1, 32, 4, 256, 4, 4, 32, 16),
    "titok-s-128": (3, 256, 16, 512, 8, 8, 128, 12),
    "titok-b-64": (3, 256, 16, 768, 12, 12, 64, 12),
    "titok-l-32": (3, 256, 16, 1024, 24, 16, 32, 12),
}
PIXEL = {
    "titok-tiny": dict(V=1024, channels=1, hidden=32, mult=[1, 1, 2], res_blocks=1, z=32),
    "f16": dict(V=1024, channels=3, hidden=128, mult=[1, 1, 2, 2, 4], res_blocks=2, z=256),
}


def numel(m):
    return sum(p.numel() for p in m.parameters())


def counts(outdir):
    meta = {}
    blocks = {}
    for name, (ch, res, patch, w, depth, heads, k, d) in PRESETS.items():
        if w not in blocks:
            blocks[w] = numel(ResidualAttentionBlock(w, heads))
        enc = TiTokEncoder(ch, res, patch, w, 0, heads, k, d, True)
        dec = TiTokDecoder(res // patch, w, 0, heads, k, d, 1024)
        meta[name + ".latent_tokens"] = k * w
        meta[name + ".encoder"] = numel(enc) + depth * blocks[w]
        meta[name + ".decoder"] = numel(dec) + depth * blocks[w]
    for name, pix in PIXEL.items():
        meta[name + ".pixel_quantize"] = numel(PixelQuantizer(pix["V"], pix["z"]))
        meta[name + ".pixel_decoder"] = numel(PixelDecoder(pix["channels"], pix["hidden"], pix["mult"],
                                                           pix["res_blocks"], pix["z"]))
    stio.save(os.path.join(outdir, "titok_counts.safetensors"), {"_": torch.zeros(1).numpy()}, meta)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    enc_fixture(outdir, True)
    enc_fixture(outdir, False)
    dec_fixture(outdir, False)
    dec_fixture(outdir, True)
    dec_fixture(outdir, True, l2=True)
    counts(outdir)


if __name__ == "__main__":
    main()
