"""ref_metrics.py - PSNR and SSIM of random images, computed independently
with numpy (Gaussian window 11, sigma 1.5, valid positions, K1 0.01, K2 0.03,
data range 1: the formulation of Wang et al. 2004 / skimage's
gaussian_weights=True, use_sample_covariance=False)."""
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import stio  # noqa: E402


def ssim_plane(x, y):
    k = 11
    g = np.exp(-((np.arange(k) - 5) ** 2) / (2 * 1.5 ** 2))
    g /= g.sum()
    w = np.outer(g, g)
    H, W = x.shape
    out = []
    for i in range(H - k + 1):
        for j in range(W - k + 1):
            a, b = x[i:i + k, j:j + k], y[i:i + k, j:j + k]
            mx, my = (w * a).sum(), (w * b).sum()
            vx = (w * a * a).sum() - mx * mx
            vy = (w * b * b).sum() - my * my
            cxy = (w * a * b).sum() - mx * my
            c1, c2 = 0.01 ** 2, 0.03 ** 2
            out.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return np.mean(out)


rng = np.random.default_rng(0)
B, C, H, W = 3, 2, 16, 14
target = rng.random((B, C, H, W)).astype(np.float32)
pred = (target + 0.2 * rng.standard_normal((B, C, H, W))).astype(np.float32)  # some outside [0,1]
p = np.clip(pred.astype(np.float64), 0, 1)
t = target.astype(np.float64)
psnr = np.mean([10 * np.log10(1 / np.mean((p[b] - t[b]) ** 2)) for b in range(B)])
ssim = np.mean([np.mean([ssim_plane(p[b, c], t[b, c]) for c in range(C)]) for b in range(B)])
stio.save(sys.argv[1] + "/metrics.safetensors",
          {"pred": pred, "target": target, "psnr": np.array([psnr]), "ssim": np.array([ssim])})
