"""ref_disc.py - PyTorch reference fixtures for lib/disc.c and lib/gan.c
(tests/unit/test_disc.c, tests/unit/test_gan.c).

Usage: /usr/bin/python3 tests/reference/ref_disc.py OUTDIR

The modules are transcriptions of upstream (bytedance/1d-tokenizer):
NLayerDiscriminator of modeling/modules/discriminator.py (Conv2dSame and
BlurBlock come from ref_conv.py, the same transcription the stage tests
use; the pool side is a parameter here, 16 upstream), and the discriminator
half of ReconstructionLoss_Stage2 (modeling/modules/losses.py) with the
clip + AdamW step of utils/train_utils.py.

disc_tiny.safetensors     1 channel, hidden 32, 2 stages, 2 images 72x70
                          (the pool downsamples 18x18 -> 16x16)
disc_default.safetensors  upstream's default critic, one 3x32x32 image
                          (the pool repeats 4x4 -> 16x16)
    x, every state_dict entry (blur kernels included), out (the logits),
    dout (random), x.grad and <param>.grad of L = sum(out * dout);
    __metadata__: B, H, W and the architecture as disc.h writes it.
gan.safetensors           a tiny critic (1 channel, hidden 32, 2 stages,
                          2 images 16x16) trained 3 steps from the state_dict
                          stored under plain names; per step k:
    s<k>.real, s<k>.fake          the batches
    s<k>.g_loss, s<k>.fake.grad   weighted generator term and its gradient
    s<k>.d_loss, s<k>.hinge, s<k>.lecam, s<k>.logits_real, s<k>.logits_fake,
    s<k>.ema_real, s<k>.ema_fake  (after the update)
    s<k>.<param>.grad             critic gradients before clipping
    final.<param>                 weights after the 3 updates
    __metadata__: the gan_cfg values and the first global step.
Scalars are stored as shape [1] F32.
"""
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402
from ref_conv import BlurBlock, Conv2dSame  # noqa: E402


class NLayerDiscriminator(nn.Module):
    """upstream's, blur_resample=True with the (1,3,3,1) kernel"""

    def __init__(self, num_channels=3, hidden_channels=128, num_stages=3, pool=16):
        super().__init__()
        mult = (1,) + tuple(2 ** t for t in range(num_stages))
        self.block_in = nn.Sequential(Conv2dSame(num_channels, hidden_channels, kernel_size=5),
                                      nn.LeakyReLU(negative_slope=0.1))
        blocks = []
        for i in range(num_stages):
            cin, cout = hidden_channels * mult[i], hidden_channels * mult[i + 1]
            blocks.append(nn.Sequential(Conv2dSame(cin, cout, kernel_size=3), BlurBlock((1, 3, 3, 1)),
                                        nn.GroupNorm(32, cout), nn.LeakyReLU(negative_slope=0.1)))
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveMaxPool2d((pool, pool))
        self.to_logits = nn.Sequential(Conv2dSame(cout, cout, 1), nn.LeakyReLU(negative_slope=0.1),
                                       Conv2dSame(cout, 1, kernel_size=5))
        self.widths = [hidden_channels * m for m in mult]
        self.meta = dict(arch="nlayer-discriminator", channels=num_channels, groups=32, pool=pool,
                         widths=",".join(str(w) for w in self.widths))

    def forward(self, x):
        h = self.block_in(x)
        for block in self.blocks:
            h = block(h)
        return self.to_logits(self.pool(h))


def hinge_d_loss(logits_real, logits_fake):
    return 0.5 * (torch.mean(F.relu(1.0 - logits_real)) + torch.mean(F.relu(1.0 + logits_fake)))


def compute_lecam_loss(real_mean, fake_mean, ema_real_mean, ema_fake_mean):
    loss = torch.mean(torch.pow(F.relu(real_mean - ema_fake_mean), 2))
    loss += torch.mean(torch.pow(F.relu(ema_real_mean - fake_mean), 2))
    return loss


def randomize_norms(d, gen):
    """Torch's default init for the convs, non-trivial GroupNorm affines."""
    with torch.no_grad():
        for m in d.modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.copy_(1.0 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))


def scalar(x):
    return torch.as_tensor(x).detach().reshape(1).float()


def disc_fixture(outdir, name, d, x):
    x = x.clone().requires_grad_(True)
    out = d(x)
    dout = torch.randn(out.shape, generator=GEN)
    (out * dout).sum().backward()
    t = {"x": x, "out": out, "dout": dout, "x.grad": x.grad}
    t.update(d.state_dict())
    for k, p in d.named_parameters():
        t[k + ".grad"] = p.grad
    B, _, H, W = x.shape
    stio.save(os.path.join(outdir, name + ".safetensors"), stio.tensors_from_torch(t),
              dict(d.meta, B=B, H=H, W=W))


class Stage2GAN:
    """The adversarial half of ReconstructionLoss_Stage2 plus the critic's
    update as train_one_epoch does it."""

    def __init__(self, d, g_weight, d_factor, lecam_weight, lecam_decay, lr, wd, clip):
        self.d = d
        self.g_weight, self.d_factor = g_weight, d_factor
        self.lecam_weight, self.lecam_decay = lecam_weight, lecam_decay
        self.ema_real_logits_mean = torch.zeros((1))
        self.ema_fake_logits_mean = torch.zeros((1))
        self.clip = clip
        named = list(d.named_parameters())
        exclude = (lambda n, p: p.ndim < 2 or "ln" in n or "bias" in n or "latent_tokens" in n
                   or "mask_token" in n or "embedding" in n or "norm" in n or "gamma" in n or "embed" in n)
        self.opt = torch.optim.AdamW(
            [{"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.},
             {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": wd}],
            lr=lr, betas=(0.9, 0.999))

    def generator(self, fake):
        fake = fake.clone().requires_grad_(True)
        for p in self.d.parameters():
            p.requires_grad = False
        loss = self.g_weight * self.d_factor * -torch.mean(self.d(fake))
        (grad,) = torch.autograd.grad(loss, fake)
        return loss, grad

    def discriminator(self, real, fake):
        for p in self.d.parameters():
            p.requires_grad = True
        logits_real = self.d(real.detach().requires_grad_(True))
        logits_fake = self.d(fake.detach())
        hinge = hinge_d_loss(logits_real, logits_fake)
        loss = self.d_factor * hinge
        lecam = compute_lecam_loss(torch.mean(logits_real), torch.mean(logits_fake),
                                   self.ema_real_logits_mean, self.ema_fake_logits_mean) * self.lecam_weight
        self.ema_real_logits_mean = (self.ema_real_logits_mean * self.lecam_decay
                                     + torch.mean(logits_real).detach() * (1 - self.lecam_decay))
        self.ema_fake_logits_mean = (self.ema_fake_logits_mean * self.lecam_decay
                                     + torch.mean(logits_fake).detach() * (1 - self.lecam_decay))
        loss = loss + lecam
        loss.backward()
        grads = {k: p.grad.clone() for k, p in self.d.named_parameters()}
        torch.nn.utils.clip_grad_norm_(self.d.parameters(), self.clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return dict(d_loss=loss, hinge=hinge, lecam=lecam, logits_real=logits_real.mean(),
                    logits_fake=logits_fake.mean(), ema_real=self.ema_real_logits_mean,
                    ema_fake=self.ema_fake_logits_mean), grads


def gan_fixture(outdir):
    d = NLayerDiscriminator(num_channels=1, hidden_channels=32, num_stages=2)
    randomize_norms(d, GEN)
    cfg = dict(g_weight=0.1, d_factor=0.8, lecam_weight=0.5, lecam_decay=0.9, lr=1e-3, wd=1e-4, clip=1.0)
    t = {k: v.clone() for k, v in d.state_dict().items()}  # state_dict() aliases the parameters
    gan = Stage2GAN(d, **cfg)
    for k in range(3):
        real = torch.rand(2, 1, 16, 16, generator=GEN)
        # fakes drift towards the real images so the logits move between steps
        fake = (0.5 * real + 0.5 * torch.rand(2, 1, 16, 16, generator=GEN)).clamp(0, 1)
        g_loss, fake_grad = gan.generator(fake)
        vals, grads = gan.discriminator(real, fake)
        p = "s%d." % k
        t.update({p + "real": real, p + "fake": fake, p + "g_loss": scalar(g_loss), p + "fake.grad": fake_grad})
        t.update({p + n: scalar(v) for n, v in vals.items()})
        t.update({p + n + ".grad": g for n, g in grads.items()})
    t.update({"final." + n: v for n, v in d.named_parameters()})
    stio.save(os.path.join(outdir, "gan.safetensors"), stio.tensors_from_torch(t),
              dict(d.meta, B=2, H=16, W=16, start_step=5, **cfg))


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    tiny = NLayerDiscriminator(num_channels=1, hidden_channels=32, num_stages=2)
    randomize_norms(tiny, GEN)
    disc_fixture(outdir, "disc_tiny", tiny, torch.rand(2, 1, 72, 70, generator=GEN))
    default = NLayerDiscriminator()
    randomize_norms(default, GEN)
    disc_fixture(outdir, "disc_default", default, torch.rand(1, 3, 32, 32, generator=GEN))
    gan_fixture(outdir)


GEN = torch.Generator().manual_seed(4321)

if __name__ == "__main__":
    main()
