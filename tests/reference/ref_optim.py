"""ref_optim.py - PyTorch reference fixtures for lib/optim.c (tests/unit/test_optim.c).

Usage: /usr/bin/python3 tests/reference/ref_optim.py OUTDIR

Ten steps of torch.optim.AdamW / torch.optim.SGD on a few tensors named like
TiTok's state_dict, with upstream's parameter groups (bytedance/1d-tokenizer
utils/train_utils.py create_optimizer: no weight decay for ndim < 2 and names
containing ln|bias|latent_tokens|mask_token|embedding|norm|gamma|embed), its
LambdaLR schedules (utils/lr_schedulers.py, stepped after each optimizer
step), torch.nn.utils.clip_grad_norm_ and its EMAModel (modeling/modules/
ema_model.py, warm-up decay). Files OUTDIR/optim_<case>.safetensors:

  w.NAME          the weights before the first step
  g.T.NAME        the gradient of step T (0..9), drawn independently of w
  out.NAME        the weights after ten steps
  state.NAME.exp_avg, state.NAME.exp_avg_sq | state.NAME.momentum_buffer
  ema.NAME        (when metadata ema_decay is set) EMA weights after ten steps
  lr [10]         the learning rate each step used
  grad_norm [10]  clip_grad_norm_'s total norm (when metadata clip is set)
Metadata: optimizer, lr, beta1, beta2, eps, wd, momentum, schedule, warmup,
total, end_lr, clip, ema_decay, steps.

optim_clip.safetensors: g.NAME, clipped.NAME (clip_grad_norm_ with max_norm
0.5) and total_norm [1].
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

SHAPES = {
    "encoder.ln_pre.weight": (8,),
    "encoder.transformer.0.mlp.c_fc.weight": (6, 8),
    "encoder.transformer.0.mlp.c_fc.bias": (6,),
    "latent_tokens": (4, 8),
    "decoder.ffn.0.weight": (5, 4, 1, 1),
    "decoder.decoder_embed.weight": (8, 3),
    "decoder.ffn.2.alpha": (8,),
}
STEPS = 10


def exclude(n, p):  # upstream create_optimizer
    return (p.ndim < 2 or "ln" in n or "bias" in n or 'latent_tokens' in n
            or 'mask_token' in n or 'embedding' in n or 'norm' in n or 'gamma' in n or 'embed' in n)


def cosine_lambda(warmup, total, base_lr, end_lr, num_cycles=0.5):  # upstream, verbatim logic
    def lr_lambda(current_step):
        if current_step < warmup:
            return float(current_step) / float(max(1, warmup))
        progress = float(current_step - warmup) / float(max(1, total - warmup))
        ratio = max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))
        return (end_lr + (base_lr - end_lr) * ratio) / base_lr
    return lr_lambda


def constant_lambda(warmup):
    return lambda s: float(s) / float(max(1, warmup)) if s < warmup else 1.0


class EMA:  # upstream EMAModel with decay max, use_ema_warmup False
    def __init__(self, params, decay):
        self.shadow = [p.clone().detach() for p in params]
        self.decay = decay
        self.optimization_step = 0

    def get_decay(self, optimization_step):
        step = max(0, optimization_step - 0 - 1)
        if step <= 0:
            return 0.0
        return min((1 + step) / (10 + step), self.decay)

    @torch.no_grad()
    def step(self, params):
        self.optimization_step += 1
        one_minus_decay = 1 - self.get_decay(self.optimization_step)
        for s, p in zip(self.shadow, params):
            s.sub_(one_minus_decay * (s - p))


def run(outdir, case, g, opt="adamw", lr=1e-2, betas=(0.9, 0.99), eps=1e-8, wd=0.1,
        momentum=0.9, schedule="constant", warmup=0, total=0, end_lr=1e-5, clip=0.0,
        ema_decay=0.0):
    names = list(SHAPES)
    params = {n: torch.nn.Parameter(torch.rand(SHAPES[n], generator=g) * 2 - 1) for n in names}
    out = {"w." + n: params[n].detach().clone() for n in names}
    groups = [{"params": [params[n] for n in names if exclude(n, params[n])], "weight_decay": 0.0},
              {"params": [params[n] for n in names if not exclude(n, params[n])], "weight_decay": wd}]
    if opt == "adamw":
        o = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    else:
        o = torch.optim.SGD(groups, lr=lr, momentum=momentum)
    lam = cosine_lambda(warmup, total, lr, end_lr) if schedule == "cosine" else constant_lambda(warmup)
    sched = torch.optim.lr_scheduler.LambdaLR(o, lam)
    ema = EMA(params.values(), ema_decay) if ema_decay else None
    lrs, norms = [], []
    for t in range(STEPS):
        size = 0.2 + 3.0 * torch.rand(1, generator=g).item()   # some steps clip, some do not
        for n in names:
            grad = (torch.randn(SHAPES[n], generator=g) * size * 0.06).float()
            out["g.%d.%s" % (t, n)] = grad.clone()
            params[n].grad = grad
        if clip > 0:
            norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), clip)))
        lrs.append(o.param_groups[0]["lr"])
        o.step()
        sched.step()
        if ema:
            ema.step(params.values())
    for n in names:
        out["out." + n] = params[n].detach()
        st = o.state[params[n]]
        for k in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
            if k in st:
                out["state.%s.%s" % (n, k)] = st[k]
        if ema:
            out["ema." + n] = ema.shadow[names.index(n)]
    out["lr"] = torch.tensor(lrs, dtype=torch.float32)
    if norms:
        out["grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    meta = {"optimizer": opt, "lr": repr(lr), "beta1": repr(betas[0]), "beta2": repr(betas[1]),
            "eps": repr(eps), "wd": repr(wd), "momentum": repr(momentum), "schedule": schedule,
            "warmup": warmup, "total": total, "end_lr": repr(end_lr), "clip": repr(clip),
            "ema_decay": repr(ema_decay), "steps": STEPS}
    stio.save(os.path.join(outdir, "optim_%s.safetensors" % case), stio.tensors_from_torch(out), meta)


def clip_case(outdir, g):
    params = [torch.nn.Parameter(torch.zeros(SHAPES[n])) for n in SHAPES]
    out = {}
    for n, p in zip(SHAPES, params):
        p.grad = torch.randn(SHAPES[n], generator=g)
        out["g." + n] = p.grad.clone()
    total = torch.nn.utils.clip_grad_norm_(params, 0.5)
    for n, p in zip(SHAPES, params):
        out["clipped." + n] = p.grad
    out["total_norm"] = total.reshape(1)
    stio.save(os.path.join(outdir, "optim_clip.safetensors"), stio.tensors_from_torch(out),
              {"clip": "0.5"})


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_default_dtype(torch.float32)
    g = torch.Generator().manual_seed(2024)
    run(outdir, "adamw", g, ema_decay=0.5)
    run(outdir, "adamw_nowd", g, betas=(0.9, 0.999), wd=0.0)
    run(outdir, "adamw_cosine", g, wd=0.05, schedule="cosine", warmup=3, total=10, end_lr=1e-3,
        clip=1.0)
    run(outdir, "sgd", g, opt="sgd", lr=0.05, momentum=0.9, wd=0.01)
    clip_case(outdir, g)


if __name__ == "__main__":
    main()
