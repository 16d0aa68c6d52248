"""ref_conv.py - PyTorch reference fixtures for the conv side of tokpipe:
conv2d, GroupNorm, pools, the blur, the MaskGIT-VQGAN ResnetBlock and one
NLayerDiscriminator stage (tests/unit/test_{conv2d,groupnorm,pool,resblock,
discblock}.c).

Usage: /usr/bin/python3 tests/reference/ref_conv.py OUTDIR

Each fixture OUTDIR/<name>.safetensors holds the input "x", the parameters
under upstream's state_dict names, the forward output "out", a random
output gradient "dout", and the gradients of L = sum(out * dout) as
"<name>.grad" for x and every parameter; __metadata__ gives the dimensions.
The modules are written as upstream's (bytedance/1d-tokenizer modeling/
modules/maskgit_vqgan.py and discriminator.py), the ResnetBlock shortcut
quirk included.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402


class Conv2dSame(nn.Conv2d):
    """upstream: TF 'SAME' padding with F.pad, then an unpadded conv"""

    def calc_same_pad(self, i, k, s, d):
        return max((math.ceil(i / s) - 1) * s + (k - 1) * d + 1 - i, 0)

    def forward(self, x):
        ih, iw = x.size()[-2:]
        pad_h = self.calc_same_pad(ih, self.kernel_size[0], self.stride[0], self.dilation[0])
        pad_w = self.calc_same_pad(iw, self.kernel_size[1], self.stride[1], self.dilation[1])
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


class ResnetBlock(nn.Module):
    """upstream's, dropout (p=0) left out; note the shortcut applied to h"""

    def __init__(self, in_channels, out_channels=None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels_ = in_channels if out_channels is None else out_channels
        self.norm1 = nn.GroupNorm(num_groups=32, num_channels=in_channels, eps=1e-6, affine=True)
        self.conv1 = Conv2dSame(in_channels, self.out_channels_, kernel_size=3, bias=False)
        self.norm2 = nn.GroupNorm(num_groups=32, num_channels=self.out_channels_, eps=1e-6, affine=True)
        self.conv2 = Conv2dSame(self.out_channels_, self.out_channels_, kernel_size=3, bias=False)
        if self.in_channels != self.out_channels_:
            self.nin_shortcut = Conv2dSame(self.out_channels_, self.out_channels_, kernel_size=1, bias=False)

    def forward(self, hidden_states):
        residual = hidden_states
        hidden_states = self.conv1(F.silu(self.norm1(hidden_states)))
        hidden_states = self.conv2(F.silu(self.norm2(hidden_states)))
        if self.in_channels != self.out_channels_:
            residual = self.nin_shortcut(hidden_states)
        return hidden_states + residual


class BlurBlock(nn.Module):
    """upstream's: padding computed for k=4, s=2 whatever the kernel"""

    def __init__(self, kernel=(1, 3, 3, 1)):
        super().__init__()
        kernel = torch.tensor(kernel, dtype=torch.float32, requires_grad=False)
        kernel = kernel[None, :] * kernel[:, None]
        kernel /= kernel.sum()
        self.register_buffer("kernel", kernel.unsqueeze(0).unsqueeze(0))

    def calc_same_pad(self, i, k, s):
        return max((math.ceil(i / s) - 1) * s + (k - 1) + 1 - i, 0)

    def forward(self, x):
        ic, ih, iw = x.size()[-3:]
        pad_h = self.calc_same_pad(ih, 4, 2)
        pad_w = self.calc_same_pad(iw, 4, 2)
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        weight = self.kernel.expand(ic, -1, -1, -1)
        return F.conv2d(input=x, weight=weight, stride=2, groups=x.shape[1])


def disc_stage(cin, cout):
    """one entry of NLayerDiscriminator.blocks (blur_resample=True, kernel 4)"""
    return nn.Sequential(Conv2dSame(cin, cout, kernel_size=3), BlurBlock((1, 3, 3, 1)),
                         nn.GroupNorm(32, cout), nn.LeakyReLU(negative_slope=0.1))


def randomize(module, gen):
    """Non-trivial values for every parameter (GroupNorm's 1/0 included)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "2.weight":
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))


def run(outdir, name, fn, x, params, meta, extra=None):
    """Forward fn(x), backward with a random dout, save everything."""
    x = x.clone().requires_grad_(True)
    out = fn(x)
    dout = torch.randn(out.shape, generator=GEN)
    (out * dout).sum().backward()
    t = {"x": x, "out": out, "dout": dout, "x.grad": x.grad}
    for k, p in params.items():
        t[k] = p
        if p.grad is not None:
            t[k + ".grad"] = p.grad
    t.update(extra or {})
    stio.save(os.path.join(outdir, name + ".safetensors"), stio.tensors_from_torch(t),
              {k: str(v) for k, v in meta.items()})


def conv_fixture(outdir, name, B, C, H, W, OC, KH, KW, sh, sw, pads, groups, bias):
    pt, pb, pl, pr = pads
    w = (0.3 * torch.randn(OC, C // groups, KH, KW, generator=GEN)).requires_grad_(True)
    b = (0.3 * torch.randn(OC, generator=GEN)).requires_grad_(True) if bias else None
    params = {"weight": w}
    if bias:
        params["bias"] = b

    def fn(x):
        return F.conv2d(F.pad(x, [pl, pr, pt, pb]), w, b, stride=(sh, sw), groups=groups)

    meta = dict(B=B, C=C, H=H, W=W, OC=OC, KH=KH, KW=KW, stride_h=sh, stride_w=sw,
                pad_top=pt, pad_bottom=pb, pad_left=pl, pad_right=pr, groups=groups, bias=int(bias))
    run(outdir, name, fn, torch.randn(B, C, H, W, generator=GEN), params, meta)


def same_pads(H, W, K, s):
    def one(i):
        t = max((math.ceil(i / s) - 1) * s + K - i, 0)
        return t // 2, t - t // 2
    return one(H) + one(W)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)

    # conv2d: 3x3 SAME s1 + bias; 4x4 s2 asymmetric pad; 1x1; depthwise
    # (SAME s2, multiplier 1); grouped; 5x5 SAME s1 on an odd, non-square map
    conv_fixture(outdir, "conv_same3", 2, 5, 6, 7, 4, 3, 3, 1, 1, same_pads(6, 7, 3, 1), 1, True)
    conv_fixture(outdir, "conv_k4s2", 2, 3, 9, 8, 5, 4, 4, 2, 2, (1, 2, 0, 1), 1, False)
    conv_fixture(outdir, "conv_1x1", 3, 6, 4, 5, 7, 1, 1, 1, 1, (0, 0, 0, 0), 1, True)
    conv_fixture(outdir, "conv_dw", 2, 6, 7, 8, 6, 3, 3, 2, 2, same_pads(7, 8, 3, 2), 6, True)
    conv_fixture(outdir, "conv_grp", 2, 4, 5, 6, 6, 3, 3, 1, 2, (1, 1, 0, 2), 2, False)
    conv_fixture(outdir, "conv_same5", 1, 3, 7, 5, 2, 5, 5, 1, 1, same_pads(7, 5, 5, 1), 1, True)

    # GroupNorm: 4 groups of 2 channels, eps 1e-6, affine
    gn = nn.GroupNorm(4, 8, eps=1e-6)
    with torch.no_grad():
        gn.weight.copy_(1.0 + 0.3 * torch.randn(8, generator=GEN))
        gn.bias.copy_(0.3 * torch.randn(8, generator=GEN))
    run(outdir, "groupnorm", gn, 1.5 + 2.0 * torch.randn(2, 8, 5, 3, generator=GEN),
        dict(gn.named_parameters()), dict(B=2, C=8, H=5, W=3, G=4, eps=1e-6))

    # pools
    run(outdir, "pool_avg", lambda x: F.avg_pool2d(x, kernel_size=2, stride=2),
        torch.randn(2, 3, 7, 6, generator=GEN), {}, dict(B=2, C=3, H=7, W=6))
    run(outdir, "pool_up", lambda x: F.interpolate(x, scale_factor=2.0, mode="nearest"),
        torch.randn(2, 3, 3, 4, generator=GEN), {}, dict(B=2, C=3, H=3, W=4))
    run(outdir, "pool_amax_down", nn.AdaptiveMaxPool2d((3, 4)),
        torch.randn(2, 3, 7, 10, generator=GEN), {}, dict(B=2, C=3, H=7, W=10, OH=3, OW=4))
    run(outdir, "pool_amax_up", nn.AdaptiveMaxPool2d((8, 7)),
        torch.randn(1, 2, 5, 3, generator=GEN), {}, dict(B=1, C=2, H=5, W=3, OH=8, OW=7))
    blur = BlurBlock()
    run(outdir, "pool_blur", blur, torch.randn(2, 3, 8, 7, generator=GEN), {},
        dict(B=2, C=3, H=8, W=7), {"kernel": blur.kernel})

    # ResnetBlock, both cases, upstream's G=32 / eps 1e-6
    for name, cin, cout in (("resblock_same", 32, 32), ("resblock_shortcut", 32, 64)):
        blk = ResnetBlock(cin, cout)
        randomize(blk, GEN)
        run(outdir, name, blk, torch.randn(2, cin, 5, 6, generator=GEN),
            dict(blk.named_parameters()), dict(B=2, C=cin, OC=cout, H=5, W=6))

    # one discriminator stage; state_dict names are the Sequential indices
    st = disc_stage(16, 64)
    randomize(st, GEN)
    run(outdir, "discblock", st, torch.randn(2, 16, 8, 7, generator=GEN),
        dict(st.named_parameters()), dict(B=2, C=16, OC=64, H=8, W=7),
        {"1.kernel": st.state_dict()["1.kernel"]})


GEN = torch.Generator().manual_seed(1234)

if __name__ == "__main__":
    main()
