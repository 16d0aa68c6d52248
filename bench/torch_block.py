"""torch_block.py - the PyTorch reference of bench_layers' ViT block:
TiTok's ResidualAttentionBlock (pre-LN, nn.MultiheadAttention, exact GELU)
at the titok-tiny shape, forward + backward, best of REPS, 2 threads.
Prints the milliseconds."""
import sys
import time

import torch
from torch import nn

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)
B, T, C, NH = 32, 97, 256, 4


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C)
        self.attn = nn.MultiheadAttention(C, NH)
        self.ln_2 = nn.LayerNorm(C)
        self.mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C))

    def forward(self, x):  # x: [T, B, C] as upstream feeds nn.MultiheadAttention
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


m = Block()
x = torch.randn(T, B, C, requires_grad=True)
dy = torch.randn(T, B, C)
best = 1e30
for i in range(reps + 1):
    t0 = time.perf_counter()
    y = m(x)
    y.backward(dy)
    t = time.perf_counter() - t0
    if i > 0:
        best = min(best, t)
print(f"{best * 1e3:.3f}")
