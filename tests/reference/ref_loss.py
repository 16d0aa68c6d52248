"""ref_loss.py - PyTorch reference fixtures for lib/loss.c (tests/unit/test_loss.c).

Usage: /usr/bin/python3 tests/reference/ref_loss.py OUTDIR

Writes OUTDIR/loss.safetensors. Each loss gets a prefix:
  mlm.*    upstream MLMLoss (bytedance/1d-tokenizer modeling/modules/losses.py):
           CrossEntropyLoss(label_smoothing=0.1, reduction="none") over
           logits [B,T,V], weight 1 on masked and 0.1 on unmasked tokens,
           sum(w l) / (sum(w) + 1e-8); correct_tokens on masked tokens only,
           per sample then averaged. Fields: logits, targets (I32), mask (U8),
           loss, acc, dlogits (d loss / d logits).
  ce.*     nn.CrossEntropyLoss() defaults (mean, no smoothing): logits,
           targets, loss, dlogits.
  mse.*, l1.*   F.mse_loss / F.l1_loss(pred, target): pred, target, loss, dpred.
  hinge_d.*     upstream hinge_d_loss(real, fake): real, fake, loss, dreal, dfake.
  hinge_g.*     -mean(fake): fake, loss, dfake.
Scalars are stored as shape [1] F32.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402


def scalar(x):
    return x.detach().reshape(1).float()


def mlm(out, g):
    B, T, V = 3, 7, 11
    targets = torch.randint(0, V, (B, T), generator=g)
    # push about half the targets up so the accuracy is neither 0 nor 1
    hit = (torch.rand(B, T, 1, generator=g) < 0.5).float()
    logits = torch.randn(B, T, V, generator=g) * 2 + 4 * hit * F.one_hot(targets, V)
    mask = (torch.rand(B, T, generator=g) < 0.5)
    mask[:, 0] = True          # every sample has a masked token, as upstream's n >= 1
    mask[0, 1] = False
    logits.requires_grad_(True)
    # upstream MLMLoss.forward, transcribed
    inputs = logits.permute(0, 2, 1)  # b n c -> b c n
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1, reduction="none")
    loss = crit(inputs, targets)
    weights = mask.to(loss)
    loss_weights = (1.0 - weights) * 0.1 + weights
    loss = (loss * loss_weights).sum() / (loss_weights.sum() + 1e-8)
    correct = ((torch.argmax(inputs, dim=1) == targets) * weights).sum(dim=1) / (weights.sum(1) + 1e-8)
    loss.backward()
    out.update({"mlm.logits": logits, "mlm.targets": targets.int(), "mlm.mask": mask.to(torch.uint8),
                "mlm.loss": scalar(loss), "mlm.acc": scalar(correct.mean()),
                "mlm.dlogits": logits.grad})


def ce(out, g):
    N, V = 9, 6
    logits = (torch.randn(N, V, generator=g) * 3).requires_grad_(True)
    targets = torch.randint(0, V, (N,), generator=g)
    loss = torch.nn.CrossEntropyLoss()(logits, targets)
    loss.backward()
    out.update({"ce.logits": logits, "ce.targets": targets.int(), "ce.loss": scalar(loss),
                "ce.dlogits": logits.grad})


def elementwise(out, g):
    shape = (2, 3, 4, 5)
    for name, fn in (("mse", F.mse_loss), ("l1", F.l1_loss)):
        pred = torch.rand(shape, generator=g).requires_grad_(True)
        target = torch.rand(shape, generator=g)
        loss = fn(pred, target)
        loss.backward()
        out.update({name + ".pred": pred, name + ".target": target, name + ".loss": scalar(loss),
                    name + ".dpred": pred.grad})


def hinge(out, g):
    real = (torch.randn(2, 1, 4, 4, generator=g) * 1.5).requires_grad_(True)
    fake = (torch.randn(3, 1, 4, 4, generator=g) * 1.5).requires_grad_(True)
    # upstream hinge_d_loss
    loss = 0.5 * (torch.mean(F.relu(1.0 - real)) + torch.mean(F.relu(1.0 + fake)))
    loss.backward()
    out.update({"hinge_d.real": real, "hinge_d.fake": fake, "hinge_d.loss": scalar(loss),
                "hinge_d.dreal": real.grad, "hinge_d.dfake": fake.grad})
    fake = torch.randn(2, 1, 4, 4, generator=g).requires_grad_(True)
    loss = -torch.mean(fake)
    loss.backward()
    out.update({"hinge_g.fake": fake, "hinge_g.loss": scalar(loss), "hinge_g.dfake": fake.grad})


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    out = {}
    mlm(out, g)
    ce(out, g)
    elementwise(out, g)
    hinge(out, g)
    stio.save(os.path.join(outdir, "loss.safetensors"), stio.tensors_from_torch(out),
              {"format": "pt"})


if __name__ == "__main__":
    main()
