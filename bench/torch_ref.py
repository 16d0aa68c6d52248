"""torch_ref.py - the PyTorch side of bench/speed_vs_torch.sh: the same
models, weights, data, batch sizes and seeds as the tools, timed in one
process with Debian's python3-torch.

Usage: /usr/bin/python3 bench/torch_ref.py COMMAND [options]
  train MODEL --dir D --data NPYDIR -b B --steps N1,N2
      MODEL vqgan | titok1 | titok2 | maskgit: N2 training steps (forward,
      loss, backward, clip, AdamW, EMA) on the batches of NPYDIR (the rows
      of step s are [sB, (s+1)B), what `tz feed` gave the tools).
      Prints marginal_ms = (t(N2) - t(N1)) / (N2 - N1), t(n) the time at
      the end of step n, and setup_s (import, weights) and first_ms.
  sample 1d|2d --dir D -n N --steps T --guidance G
      ImageBert.generate (arccos schedule, Gumbel-max, softmax-temperature
      annealing, linear guidance ramp, the conditional and null-class
      passes in one batch) from all-masked tokens of classes i mod 10, then
      the ids to pixels (1d: TiTok's l2 codebook and stage-2 decoder; 2d:
      the VQGAN codebook and decoder). Run twice in the process; prints the
      seconds of each (cold_*, then the warm run sample_s, decode_s).
  encode --dir D --data NPYDIR -b B [--decode]
      TiTok encoder + quantizer (no grad) over the images of NPYDIR in
      batches of B, after one warm-up batch; prints images_s. --decode:
      the decoder to proxy-code logits too (the tokenizer's forward).
Common: --titok K=V,... (train, encode): titok-tiny's configuration with
these keys changed (image_size, num_latent_tokens, width, codes, ...).
All: -j THREADS (2). Weights are read by name from D/*.safetensors,
the files the tools were given (--init): every model's state_dict loads
strictly, so a name or shape that differs is an error.

The modules are the transcriptions tests/reference/ checks the tools
against (ref_titok.py, ref_vq.py, ref_conv.py, ref_imagebert.py,
ref_sampler.py, ref_optim.py); ImageBert and the sampler step are used
through their module constants, which are set here to maskgit-tiny's, and
ImageBert's dropout is torch's (the tools draw theirs from a hash; the
same work per element). The VQGAN encoder, which no fixture needs, is
written here as upstream's maskgit_vqgan.Encoder.
"""
import argparse
import math
import os
import sys
import time

T_START = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import ref_imagebert as rib  # noqa: E402
import ref_sampler as rsa  # noqa: E402
import stio  # noqa: E402
from ref_conv import Conv2dSame, ResnetBlock  # noqa: E402
from ref_optim import EMA, exclude  # noqa: E402
from ref_titok import PixelDecoder, TiTokDec, TiTokDecoder, TiTokEncoder  # noqa: E402
from ref_vq import VectorQuantizer  # noqa: E402

# the reference configurations (DESIGN.md section 8, the tools' presets)
VQGAN_TINY = dict(channels=1, hidden=32, mult=[1, 1, 2], res_blocks=1, z=32)
TITOK_TINY = dict(channels=1, image_size=32, patch_size=4, width=256, num_layers=4, num_heads=4,
                  num_latent_tokens=32, token_size=16, codes=1024)
# the TiTok configuration in use: titok-tiny, or what --titok K=V,... changes of it
TITOK = dict(TITOK_TINY)
PIXEL_TINY = dict(V=1024, channels=1, hidden=32, mult=[1, 1, 2], res_blocks=1, z=32)
CODES, CLASSES = 1024, 10
# the optimizer flags of pipelines/{vqgan,titok,maskgit}.sh (constant lr)
OPT = {"vqgan": dict(lr=5e-4, betas=(0.9, 0.99), wd=1e-4),
       "titok1": dict(lr=5e-4, betas=(0.9, 0.99), wd=1e-4),
       "titok2": dict(lr=2e-4, betas=(0.9, 0.999), wd=1e-4),
       "maskgit": dict(lr=5e-4, betas=(0.9, 0.96), wd=0.03)}
CLIP, EMA_DECAY = 1.0, 0.999


class VQGANEncoder(nn.Module):
    """upstream modeling/modules/maskgit_vqgan.py Encoder (with its DownsamplingBlock:
    ResnetBlocks, then 2x2 average pooling but at the last level)"""

    def __init__(self, channels, hidden, mult, res_blocks, z):
        super().__init__()
        self.conv_in = Conv2dSame(channels, hidden, kernel_size=3, bias=False)
        in_mult = (1,) + tuple(mult)
        self.down = nn.ModuleList()
        for i in range(len(mult)):
            level = nn.Module()
            block_in, block_out = hidden * in_mult[i], hidden * mult[i]
            blocks = []
            for _ in range(res_blocks):
                blocks.append(ResnetBlock(block_in, block_out))
                block_in = block_out
            level.block = nn.ModuleList(blocks)
            self.down.append(level)
        self.mid = nn.ModuleList([ResnetBlock(block_out, block_out) for _ in range(res_blocks)])
        self.norm_out = nn.GroupNorm(num_groups=32, num_channels=block_out, eps=1e-6, affine=True)
        self.conv_out = Conv2dSame(block_out, z, kernel_size=1)

    def forward(self, x):
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            for b in level.block:
                h = b(h)
            if i != len(self.down) - 1:
                h = F.avg_pool2d(h, kernel_size=2, stride=2)
        for b in self.mid:
            h = b(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def load(module, *files):
    """Our weights files, by name, into module (strict)."""
    sd = {}
    for f in files:
        t, _ = stio.load(f)
        sd.update({k: torch.from_numpy(v) for k, v in t.items()})
    module.load_state_dict(sd, strict=True)
    return module


class VQGAN(nn.Module):
    def __init__(self, d):
        super().__init__()
        c = VQGAN_TINY
        self.encoder = VQGANEncoder(c["channels"], c["hidden"], c["mult"], c["res_blocks"], c["z"])
        self.quantize = VectorQuantizer(CODES, c["z"], 0.25, False)
        self.decoder = PixelDecoder(c["channels"], c["hidden"], c["mult"], c["res_blocks"], c["z"])
        load(self, f"{d}/vqgan-encode.st", f"{d}/vqgan-vq.st", f"{d}/vqgan-decode.st")

    def loss(self, batch):
        x = batch["image"]
        zq, res = self.quantize(self.encoder(x))
        return F.mse_loss(self.decoder(zq), x) + res["quantizer_loss"]


class TiTokEnc(nn.Module):
    """TiTok's latent_tokens + encoder + quantize (l2-normalised codebook)"""

    def __init__(self, d):
        super().__init__()
        t = TITOK
        self.latent_tokens = nn.Parameter(torch.zeros(t["num_latent_tokens"], t["width"]))
        self.encoder = TiTokEncoder(t["channels"], t["image_size"], t["patch_size"], t["width"], t["num_layers"],
                                    t["num_heads"], t["num_latent_tokens"], t["token_size"], True)
        self.quantize = VectorQuantizer(t["codes"], t["token_size"], 0.25, True)
        load(self, f"{d}/titok-encode.st", f"{d}/titok-vq.st")

    def forward(self, x):
        return self.quantize(self.encoder(x, self.latent_tokens))


def titok_decoder(pixel):
    t = TITOK
    g = t["image_size"] // t["patch_size"]
    return TiTokDec(TiTokDecoder(g, t["width"], t["num_layers"], t["num_heads"], t["num_latent_tokens"],
                                 t["token_size"], CODES), PIXEL_TINY if pixel else None)


class TiTok1(nn.Module):
    """stage 1: image -> tokens -> the proxy codes (CE) + the quantizer's loss"""

    def __init__(self, d):
        super().__init__()
        self.enc = TiTokEnc(d)
        self.dec = load(titok_decoder(False), f"{d}/titok-decode.st")

    def loss(self, batch):
        zq, res = self.enc(batch["image"])
        logits, _ = self.dec(zq)                           # [B,V,h,w]
        return F.cross_entropy(logits, batch["target"]) + res["quantizer_loss"]


class TiTok2(nn.Module):
    """stage 2: frozen encoder and quantizer; the decoder to pixels, L2"""

    def __init__(self, d):
        super().__init__()
        self.enc = TiTokEnc(d).eval().requires_grad_(False)
        self.dec = load(titok_decoder(True), f"{d}/titok2-decode.st")

    def loss(self, batch):
        x = batch["image"]
        with torch.no_grad():
            zq, _ = self.enc(x)
        _, recon = self.dec(zq)
        return F.mse_loss(recon, x)


def imagebert_globals(K, train):
    """ref_imagebert.py's constants for maskgit-tiny with K tokens; dropout is torch's."""
    rib.V, rib.NC, rib.K, rib.W, rib.L, rib.NH, rib.FF = CODES, CLASSES, K, 256, 6, 4, 1024
    rib.T, rib.HD = K + 1, 256 // 4
    rib.P_HIDDEN, rib.P_ATTN = 0.1, 0.1
    rib.dropout = lambda t, p, seed, site: F.dropout(t, p, training=True) if train and p else t
    rsa.V, rsa.K = CODES, K


def imagebert_params(path, grad):
    t, meta = stio.load(path)
    return {k: torch.from_numpy(v).requires_grad_(grad) for k, v in t.items()}, meta


class MaskGIT:
    """upstream's generator step: masking_input_tokens (arccos, exact counts), 10%
    null-class dropout, ImageBert, MLMLoss (smoothing 0.1, unmasked weight 0.1)"""

    def __init__(self, d):
        self.P, meta = imagebert_params(f"{d}/maskgit-1d.st", True)
        imagebert_globals(int(meta["tokens"]), True)

    def train(self):
        return self

    def named_parameters(self):
        return self.P.items()

    def loss(self, batch):
        ids, label = batch["ids"].long(), batch["label"].long()
        B, K = ids.shape
        r = torch.zeros(B).uniform_(0, 1.0)
        n = (K * torch.acos(r).div(math.pi * 0.5).clamp(1e-6, 1.0)).round().clamp(min=1)
        mask = torch.rand(B, K).argsort(dim=-1) < n.view(B, 1)
        masked = torch.where(mask, CODES, ids)
        label = torch.where(torch.rand(B) < 0.1, torch.full_like(label, -1), label)
        logits = rib.image_bert(self.P, masked, label, True)
        loss = F.cross_entropy(logits.permute(0, 2, 1), ids, label_smoothing=0.1, reduction="none")
        w = mask.to(loss) + (1.0 - mask.to(loss)) * 0.1
        loss = (loss * w).sum() / (w.sum() + 1e-8)
        with torch.no_grad():  # the accuracy the loss tool logs
            (((logits.argmax(-1) == ids) * mask).sum(1) / (mask.sum(1) + 1e-8)).mean()
        return loss


MODELS = {"vqgan": VQGAN, "titok1": TiTok1, "titok2": TiTok2, "maskgit": MaskGIT}


def batches(data, B, steps, fields):
    arrs = {f: np.load(os.path.join(data, f + ".npy")) for f in fields}
    out = []
    for s in range(steps):
        b = {}
        for f, a in arrs.items():
            t = torch.from_numpy(np.ascontiguousarray(a[s * B:(s + 1) * B]))
            b[f] = t.long() if t.dtype == torch.int32 else t
        out.append(b)
    return out


def cmd_train(a):
    n1, n2 = (int(v) for v in a.steps.split(","))
    t0 = time.perf_counter()
    model = MODELS[a.model](a.dir).train()
    fields = {"vqgan": ["image"], "titok1": ["image", "target"], "titok2": ["image"],
              "maskgit": ["ids", "label"]}[a.model]
    data = batches(a.data, a.b, n2, fields)
    o = OPT[a.model]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    groups = [{"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
              {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": o["wd"]}]
    opt = torch.optim.AdamW(groups, lr=o["lr"], betas=o["betas"], eps=1e-8)
    ema = EMA(params, EMA_DECAY)
    setup = time.perf_counter() - t0
    marks = [time.perf_counter()]
    for s in range(n2):
        opt.zero_grad(set_to_none=True)
        loss = model.loss(data[s])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        ema.step(params)
        if not math.isfinite(loss.item()):
            sys.exit("torch_ref: non-finite loss")
        marks.append(time.perf_counter())
    print(f"marginal_ms {1e3 * (marks[n2] - marks[n1]) / (n2 - n1):.2f}")
    print(f"first_ms {1e3 * (marks[1] - marks[0]):.2f}")
    print(f"setup_s {t0 - T_START + setup:.3f}")


@torch.no_grad()
def generate(P, K, n, steps, guidance, g):
    """ImageBert.generate (the tools' defaults: randomize_temperature 9.5, softmax
    annealing, linear guidance); step 0 runs the conditional pass alone, as the
    tools do, since its guidance scale is 0 and the null pass would not count."""
    ids = torch.full((n, K), CODES, dtype=torch.long)
    label = torch.arange(n) % CLASSES
    null = torch.full_like(label, -1)
    for step in range(steps):
        scale = step / steps * guidance
        if scale != 0:
            both = rib.image_bert(P, torch.cat([ids, ids]), torch.cat([label, null]), False)
            cond, uncond = both[:n], both[n:]
            logits = cond + (cond - uncond) * scale
        else:
            logits = rib.image_bert(P, ids, label, False)
        gch, gcf = rsa.gumbel(logits.shape, g), rsa.gumbel(logits.shape[:2], g)
        ids = rsa.titok_step(ids, logits, step, steps, 9.5, True, gch, gcf)
    return ids


def cmd_sample(a):
    d = a.dir
    P, meta = imagebert_params(f"{d}/maskgit-{a.kind}.st", False)
    K = int(meta["tokens"])
    imagebert_globals(K, False)
    if a.kind == "1d":
        cb, _ = stio.load(f"{d}/titok-vq.st")
        dec = load(titok_decoder(True), f"{d}/titok2-decode.st").eval()

        def decode(ids):
            z = F.normalize(torch.from_numpy(cb["quantize.embedding.weight"]), dim=-1)[ids]  # [N,K,D]
            return dec(z.permute(0, 2, 1).reshape(ids.shape[0], -1, 1, K))[1]
    else:
        cb, _ = stio.load(f"{d}/vqgan-vq.st")
        c = VQGAN_TINY
        dec = PixelDecoder(c["channels"], c["hidden"], c["mult"], c["res_blocks"], c["z"])
        sd = {k[len("decoder."):]: torch.from_numpy(v) for k, v in stio.load(f"{d}/vqgan-decode.st")[0].items()}
        dec.load_state_dict(sd, strict=True)
        dec.eval()
        g8 = int(round(math.sqrt(K)))

        def decode(ids):
            z = torch.from_numpy(cb["quantize.embedding.weight"])[ids]  # [N,K,z]
            return dec(z.view(ids.shape[0], g8, g8, -1).permute(0, 3, 1, 2))
    res = []
    for run in range(2):
        g = torch.Generator().manual_seed(7)
        t0 = time.perf_counter()
        ids = generate(P, K, a.n, a.steps, a.guidance, g)
        t1 = time.perf_counter()
        with torch.no_grad():
            recon = decode(ids)
        t2 = time.perf_counter()
        assert recon.shape[0] == a.n and int((ids == CODES).sum()) == 0
        res.append((t1 - t0, t2 - t1))
    print(f"cold_sample_s {res[0][0]:.4f}")
    print(f"cold_decode_s {res[0][1]:.4f}")
    print(f"sample_s {res[1][0]:.4f}")
    print(f"decode_s {res[1][1]:.4f}")


def cmd_encode(a):
    enc = TiTokEnc(a.dir).eval()
    dec = load(titok_decoder(False), f"{a.dir}/titok-decode.st").eval() if a.decode else None
    x = torch.from_numpy(np.load(os.path.join(a.data, "image.npy")))
    n = x.shape[0]
    with torch.no_grad():
        def run(b):
            zq, res = enc(b)
            if dec is not None:
                dec(zq)
        run(x[:a.b])
        t0 = time.perf_counter()
        for i in range(0, n, a.b):
            run(x[i:i + a.b])
        t = time.perf_counter() - t0
    print(f"images_s {n / t:.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("model", choices=sorted(MODELS))
    tr.add_argument("--steps", default="2,10")
    sa = sub.add_parser("sample")
    sa.add_argument("kind", choices=["1d", "2d"])
    sa.add_argument("-n", type=int, default=64)
    sa.add_argument("--steps", type=int, default=8)
    sa.add_argument("--guidance", type=float, default=2.0)
    en = sub.add_parser("encode")
    en.add_argument("--decode", action="store_true")
    for s in (tr, sa, en):
        s.add_argument("--dir", required=True)
        s.add_argument("-j", type=int, default=2)
    for s in (tr, en):
        s.add_argument("--data")
        s.add_argument("-b", type=int, default=32)
        s.add_argument("--titok", default="", help="K=V,... changes of titok-tiny's configuration")
    a = p.parse_args()
    for kv in filter(None, getattr(a, "titok", "").split(",")):
        k, v = kv.split("=")
        if k not in TITOK:
            sys.exit(f"torch_ref: --titok: no key {k}")
        TITOK[k] = int(v)
    torch.set_num_threads(a.j)
    torch.manual_seed(0)
    {"train": cmd_train, "sample": cmd_sample, "encode": cmd_encode}[a.cmd](a)


if __name__ == "__main__":
    main()
