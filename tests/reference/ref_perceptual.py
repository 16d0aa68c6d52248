"""ref_perceptual.py - PyTorch reference fixtures for the perceptual loss
(lib/perceptual.h; tests/unit/test_perceptual.c).

Usage: /usr/bin/python3 tests/reference/ref_perceptual.py OUTDIR

Each fixture OUTDIR/perceptual_<name>.safetensors holds the network's
weights under upstream's state_dict names with its tokpipe metadata ("arch"
and the size keys), so the C test loads it as a weights file once the
"ref.*" tensors are left out: ref.pred and ref.target [B,C,H,W] in [0,1],
ref.loss (the upstream module's value, mean over the batch) and
ref.pred_grad (d loss / d pred).

  lpips     upstream TiTok's LPIPS (modeling/modules/lpips.py: input*2-1,
            ScalingLayer, VGG16 slices, normalize_tensor, NetLinLayer,
            spatial_average), full VGG16 widths at 32x32, random weights
            (He-normal convs, heads U(0,1)); names as that module's
            state_dict: net.sliceK.N.*, lin*.model.1.weight, scaling_layer.*;
            the prediction is drawn until no pre-activation and no max-pool
            runner-up lies within 1e-6 (relative) of its gate: with 400k
            ReLUs, float32 rounding flips about one gate per random input,
            which changes the gradient by 1e-3 of its max on both sides
  convnext  upstream's PerceptualLoss("convnext_s") arithmetic (antialiased
            bilinear resize to 224, ImageNet mean/std, logits MSE) on a
            narrow transcription of torchvision's convnext_small (widths
            8,16,24,32, depths 2,2,3,2, 10 classes; torchvision's module
            names); torchvision is not installed here, and a full ConvNeXt-S
            fixture would be 200 MB
  percep    the project's default net (tokpipe-percep): VGG-style
            32,M,64,M,128,M,128, LeakyReLU(0.1), LPIPS distance with
            all-ones heads, gray 32x32
  resize    F.interpolate(bilinear, antialias=True) up and down, and its
            input gradient, for lib/perc_ops.c
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]


def make_layers(cfg, in_ch, slope):
    """torchvision's vgg make_layers (no batch norm): conv, relu, ... M"""
    layers, c = [], in_ch
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(c, v, kernel_size=3, padding=1))
            layers.append(nn.ReLU() if slope == 0 else nn.LeakyReLU(slope))
            c = v
    return layers


def tap_ends(layers):
    """module indices after which LPIPS taps: before each pool, and the end"""
    ends = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
    return ends + [len(layers)]


class Slices(nn.Module):
    """upstream's vgg16 wrapper: slice k holds features[a:b] under their
    torchvision indices"""

    def __init__(self, layers):
        super().__init__()
        self.n = 0
        start = 0
        for k, end in enumerate(tap_ends(layers)):
            s = nn.Sequential()
            for i in range(start, end):
                s.add_module(str(i), layers[i])
            setattr(self, "slice%d" % (k + 1), s)
            self.n += 1
            start = end

    def forward(self, x):
        outs = []
        for k in range(self.n):
            x = getattr(self, "slice%d" % (k + 1))(x)
            outs.append(x)
        return outs


class NetLinLayer(nn.Module):
    def __init__(self, chn_in):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(chn_in, 1, 1, stride=1, padding=0, bias=False))


class ScalingLayer(nn.Module):
    def __init__(self, shift, scale):
        super().__init__()
        self.register_buffer("shift", torch.tensor(shift)[None, :, None, None])
        self.register_buffer("scale", torch.tensor(scale)[None, :, None, None])

    def forward(self, inp):
        return (inp - self.shift) / self.scale


def normalize_tensor(x, eps=1e-10):
    norm_factor = torch.sqrt(torch.sum(x ** 2, dim=1, keepdim=True))
    return x / (norm_factor + eps)


def spatial_average(x, keepdim=True):
    return x.mean([2, 3], keepdim=keepdim)


class LPIPS(nn.Module):
    """upstream TiTok's LPIPS.forward, the net and widths as parameters"""

    def __init__(self, net, chns, shift, scale):
        super().__init__()
        self.scaling_layer = ScalingLayer(shift, scale)
        self.chns = chns
        self.net = net
        for k, c in enumerate(chns):
            setattr(self, "lin%d" % k, NetLinLayer(c))

    def forward(self, input, target):
        input = input * 2. - 1.
        target = target * 2. - 1.
        in0_input, in1_input = (self.scaling_layer(input), self.scaling_layer(target))
        outs0, outs1 = self.net(in0_input), self.net(in1_input)
        feats0, feats1, diffs = {}, {}, {}
        lins = [getattr(self, "lin%d" % k) for k in range(len(self.chns))]
        for kk in range(len(self.chns)):
            feats0[kk], feats1[kk] = normalize_tensor(outs0[kk]), normalize_tensor(outs1[kk])
            diffs[kk] = (feats0[kk] - feats1[kk]) ** 2
        res = [spatial_average(lins[kk].model(diffs[kk]), keepdim=True) for kk in range(len(self.chns))]
        val = res[0]
        for l in range(1, len(self.chns)):
            val += res[l]
        return val


# ---- torchvision convnext, transcribed ----------------------------------------

class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return torch.permute(x, self.dims)


class CNBlock(nn.Module):
    def __init__(self, dim, layer_scale):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(in_features=dim, out_features=4 * dim, bias=True),
            nn.GELU(),
            nn.Linear(in_features=4 * dim, out_features=dim, bias=True),
            Permute([0, 3, 1, 2]),
        )
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)

    def forward(self, input):
        result = self.layer_scale * self.block(input)
        result += input  # stochastic depth is the identity in eval
        return result


class ConvNeXt(nn.Module):
    def __init__(self, dims, depths, num_classes):
        super().__init__()
        norm = lambda c: LayerNorm2d(c, eps=1e-6)  # noqa: E731
        layers = [nn.Sequential(nn.Conv2d(3, dims[0], kernel_size=4, stride=4, padding=0, bias=True),
                                norm(dims[0]))]
        for s in range(4):
            layers.append(nn.Sequential(*[CNBlock(dims[s], 1e-6) for _ in range(depths[s])]))
            if s < 3:
                layers.append(nn.Sequential(norm(dims[s]),
                                            nn.Conv2d(dims[s], dims[s + 1], kernel_size=2, stride=2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(norm(dims[3]), nn.Flatten(1), nn.Linear(dims[3], num_classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


# ---- fixtures ------------------------------------------------------------------

def randomise(model, gen, heads_uniform=True):
    """weights that keep activations O(1) through depth, with visible
    biases, norms and layer scales"""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(0.3 + 0.7 * torch.rand(p.shape, generator=gen))
            elif name.startswith("lin") and heads_uniform:
                p.copy_(torch.rand(p.shape, generator=gen))
            elif p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            else:  # 1-D: norm weights around 1, biases around 0
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.2 * (torch.rand(p.shape, generator=gen) - 0.5))


def images(gen, B, C, H, W):
    """a smooth-ish target and a noisy, shifted prediction of it, in [0,1]"""
    t = torch.rand(B, C, H // 4, W // 4, generator=gen)
    t = F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)
    p = (0.8 * t + 0.2 * torch.rand(B, C, H, W, generator=gen)).clamp(0, 1)
    return p, t


def save(outdir, name, model, meta, pred, target, loss, extra=None):
    pred_grad = pred.grad
    assert torch.isfinite(pred_grad).all(), name
    tensors = stio.tensors_from_torch(model.state_dict())
    tensors.update({"ref.pred": pred.detach().numpy(), "ref.target": target.numpy(),
                    "ref.loss": np.array([loss.item()], dtype=np.float32),
                    "ref.pred_grad": pred_grad.numpy()})
    tensors.update(extra or {})
    stio.save(os.path.join(outdir, "perceptual_%s.safetensors" % name), tensors, meta)


def margin(layers, x):
    """How close the prediction's forward comes to a ReLU gate or a max-pool
    choice, relative to each layer's scale (in double): where float32
    rounding could flip one, C and torch would both be right and differ."""
    worst = 1.0
    with torch.no_grad():
        x = x.double()
        for m in layers:
            if isinstance(m, nn.MaxPool2d):
                B, C, H, W = x.shape
                w = x[:, :, :H // 2 * 2, :W // 2 * 2].reshape(B, C, H // 2, 2, W // 2, 2)
                top = w.permute(0, 1, 2, 4, 3, 5).reshape(B, C, H // 2, W // 2, 4).sort(-1).values
                gap = (top[..., 3] - top[..., 2])[top[..., 3] > 0]
                if gap.numel():
                    worst = min(worst, (gap.min() / x.abs().max()).item())
            y = m.double()(x)
            if isinstance(m, nn.Conv2d):
                worst = min(worst, (y.abs().min() / y.abs().max()).item())
            x = y
            m.float()
    return worst


def fixture_lpips(outdir, gen):
    layers = make_layers(VGG16, 3, 0)
    model = LPIPS(Slices(layers), [64, 128, 256, 512, 512], [-0.030, -0.088, -0.188], [0.458, 0.448, 0.450])
    randomise(model, gen)
    model.eval()
    for attempt in range(200):  # a prediction well clear of gates and ties
        pred, target = images(gen, 2, 3, 32, 32)
        x = model.scaling_layer(pred * 2. - 1.)
        if margin(layers, x) > 1e-6:
            print("ref_perceptual: lpips input %d is clear of gates by 1e-6" % attempt)
            break
    else:
        raise SystemExit("ref_perceptual: no well-conditioned LPIPS input found")
    pred.requires_grad_(True)
    loss = model(pred, target).mean()  # upstream: perceptual_loss.mean()
    loss.backward()
    save(outdir, "lpips", model, {"arch": "lpips-vgg16"}, pred, target, loss)


def fixture_convnext(outdir, gen):
    dims, depths, ncls = [8, 16, 24, 32], [2, 2, 3, 2], 10
    model = ConvNeXt(dims, depths, ncls)
    randomise(model, gen)
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]
    pred, target = images(gen, 2, 3, 32, 32)
    pred.requires_grad_(True)
    # upstream PerceptualLoss.forward with only convnext_s
    inp = F.interpolate(pred, size=224, mode="bilinear", align_corners=False, antialias=True)
    tgt = F.interpolate(target, size=224, mode="bilinear", align_corners=False, antialias=True)
    loss = F.mse_loss(model((inp - mean) / std), model((tgt - mean) / std), reduction="mean")
    loss.backward()
    meta = {"arch": "convnext-s", "dims": ",".join(map(str, dims)),
            "depths": ",".join(map(str, depths)), "num_classes": str(ncls), "resize": "224"}
    save(outdir, "convnext", model, meta, pred, target, loss)


class Percep(nn.Module):
    """tokpipe-percep: features (torchvision numbering), classifier, heads"""

    def __init__(self, cfg, in_ch, slope, ncls):
        super().__init__()
        layers = make_layers(cfg, in_ch, slope)
        self.features = nn.Sequential(*layers)
        self.ends = tap_ends(layers)
        chns = [layers[e - 2].out_channels for e in self.ends]
        for k, c in enumerate(chns):
            setattr(self, "lin%d" % k, NetLinLayer(c))
        self.classifier = nn.Linear(chns[-1], ncls)
        self.nt = len(chns)

    def taps(self, x):
        outs, start = [], 0
        for e in self.ends:
            for i in range(start, e):
                x = self.features[i](x)
            outs.append(x)
            start = e
        return outs

    def forward(self, input, target):
        f0, f1 = self.taps(input * 2. - 1.), self.taps(target * 2. - 1.)
        val = 0
        for k in range(self.nt):
            d = (normalize_tensor(f0[k]) - normalize_tensor(f1[k])) ** 2
            val = val + spatial_average(getattr(self, "lin%d" % k).model(d))
        return val


def fixture_percep(outdir, gen):
    cfg = [32, "M", 64, "M", 128, "M", 128]
    model = Percep(cfg, 1, 0.1, 10)
    randomise(model, gen, heads_uniform=False)
    with torch.no_grad():
        for k in range(model.nt):
            getattr(model, "lin%d" % k).model[1].weight.fill_(1.0)
    model.eval()
    pred, target = images(gen, 2, 1, 32, 32)
    pred.requires_grad_(True)
    loss = model(pred, target).mean()
    loss.backward()
    meta = {"arch": "tokpipe-percep", "cfg": ",".join(map(str, cfg)), "in_channels": "1",
            "num_classes": "10", "slope": "0.1"}
    extra = {"scaling_layer.shift": np.zeros((1, 1, 1, 1), np.float32),
             "scaling_layer.scale": np.ones((1, 1, 1, 1), np.float32)}
    save(outdir, "percep", model, meta, pred, target, loss, extra)


def fixture_resize(outdir, gen):
    out = {}
    x = torch.rand(2, 3, 37, 29, generator=gen, requires_grad=True)
    for name, size in (("up", (61, 50)), ("down", (16, 20)), ("mixed", (19, 44))):
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        r = torch.rand(y.shape, generator=gen)
        (gx,) = torch.autograd.grad((y * r).sum(), x)
        out.update({name: y.detach().numpy(), name + ".r": r.numpy(), name + ".x_grad": gx.numpy()})
    out["x"] = x.detach().numpy()
    x2 = torch.rand(1, 1, 32, 32, generator=gen)
    out["x224"] = x2.numpy()
    out["y224"] = F.interpolate(x2, size=224, mode="bilinear", align_corners=False, antialias=True).numpy()
    stio.save(os.path.join(outdir, "perceptual_resize.safetensors"), out)


def main():
    outdir = sys.argv[1]
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(20240)
    fixture_resize(outdir, gen)
    fixture_percep(outdir, gen)
    fixture_convnext(outdir, gen)
    fixture_lpips(outdir, gen)


if __name__ == "__main__":
    main()
