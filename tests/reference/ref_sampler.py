"""ref_sampler.py - reference decoding runs for lib/maskgit.c's sampler step (tests/unit/test_maskgit.c).

Usage: /usr/bin/python3 tests/reference/ref_sampler.py OUTDIR

Writes OUTDIR/sampler.safetensors: whole decoding runs of upstream's loops,
transcribed step for step, on given logits and given Gumbel noise, so that
the C step fed the same logits and noise (maskgit.h's test hook) must give
the same ids after every step.
  titok:  bytedance/1d-tokenizer modeling/maskgit.py ImageBert.generate after
          its logits (guidance is the transformer's): Gumbel-max at
          randomize_temperature (1 - ratio), softmax temperature annealing,
          confidence = the chosen annealed logit + noise, arccos schedule
          over K, re-mask conf <= sorted[mask_len - 1], none at the last step.
  titok_plain: the same without annealing at temperature 1 (README demo).
  jax:    google-research/maskgit libml/parallel_decode.py decode's loop body:
          categorical = argmax(logits + G), confidence log softmax + choice
          temperature (1 - ratio) G', cosine schedule over the masks at the
          start, re-mask conf < sorted[mask_len]; the result is the last
          step's pre-masking sample (final_seqs[:, -1]).
  jax_edit: the same from step 2 of 6 with some tokens known (editing).
Per case <c>: ids0 [B,K] (start), logits [S,B,K,V], gchoice [S,B,K,V],
gconf [S,B,K] (standard Gumbel, -log(-log(U)) clamped as TiTok), ids [S,B,K]
after each step, meta start/steps/temperature. The schedules are computed in
double as numpy does (JAX itself uses float32).
gumbel.values [64]: maskgit_gumbel(GUMBEL_SEED, i), from rng_hash in numpy.
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402
from ref_block import rng_hash  # noqa: E402

B, K, V = 3, 8, 11
GUMBEL_SEED = 12345


def gumbel(shape, g):
    """TiTok's gumbel_noise: -log(-log(U)) with log(t.clamp(min=1e-20))."""
    def log(t, eps=1e-20):
        return torch.log(t.clamp(min=eps))
    return -log(-log(torch.rand(shape, generator=g)))


def titok_step(ids, logits, step, steps, temp, anneal, gchoice, gconf):
    """The loop body of ImageBert.generate from its logits on, with the noise given."""
    mask_token_id, image_seq_len = V, K
    ratio = 1. * (step + 1) / steps
    annealed_temp = temp * (1.0 - ratio)
    is_mask = (ids == mask_token_id)
    if anneal:
        softmax_temperature = 0.5 + 0.8 * (1 - ratio)
        logits = logits / softmax_temperature
    sampled_ids = (logits + annealed_temp * gchoice).argmax(dim=-1)
    sampled_logits = torch.squeeze(torch.gather(logits, dim=-1, index=torch.unsqueeze(sampled_ids, -1)), -1)
    sampled_ids = torch.where(is_mask, sampled_ids, ids)
    sampled_logits = torch.where(is_mask, sampled_logits, +np.inf).float()
    mask_ratio = np.arccos(ratio) / (math.pi * 0.5)
    mask_len = torch.Tensor([np.floor(image_seq_len * mask_ratio)])
    mask_len = torch.maximum(torch.Tensor([1]), torch.minimum(torch.sum(is_mask, dim=-1, keepdims=True) - 1,
                                                              mask_len))[0].squeeze()
    confidence = sampled_logits + annealed_temp * gconf
    sorted_confidence, _ = torch.sort(confidence, axis=-1)
    cut_off = sorted_confidence[:, mask_len.long() - 1:mask_len.long()]
    masking = (confidence <= cut_off)
    if step == steps - 1:
        return sampled_ids
    return torch.where(masking, mask_token_id, sampled_ids)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def jax_step(cur_ids, logits, step, num_iter, unknown0, choice_temperature, gchoice, gconf):
    """decode's loop_body_fn (numpy); returns (next ids, this step's sample)."""
    mask_token_id = V
    sampled_ids = np.argmax(gchoice + logits, axis=-1)  # jax.random.categorical
    unknown_map = cur_ids == mask_token_id
    sampled_ids = np.where(unknown_map, sampled_ids, cur_ids)
    ratio = 1. * (step + 1) / num_iter
    mask_ratio = np.clip(math.cos(math.pi / 2. * ratio), 1e-6, 1.)  # mask_schedule 'cosine'
    probs = softmax(logits)
    selected_probs = np.take_along_axis(probs, sampled_ids[..., None], -1)[..., 0]
    selected_probs = np.where(unknown_map, selected_probs, np.float32(np.inf))
    mask_len = np.floor(unknown0 * mask_ratio)[:, None]
    mask_len = np.maximum(1, np.minimum(np.sum(unknown_map, axis=-1, keepdims=True) - 1, mask_len))
    # mask_by_random_topk
    with np.errstate(divide="ignore"):
        confidence = np.log(selected_probs) + np.float32(choice_temperature * (1. - ratio)) * gconf
    sorted_confidence = np.sort(confidence, axis=-1)
    cut_off = np.take_along_axis(sorted_confidence, mask_len.astype(np.int32), axis=-1)
    masking = confidence < cut_off
    return np.where(masking, mask_token_id, sampled_ids), sampled_ids


def run(out, case, ids0, start, steps, g, step_fn):
    S = steps - start
    logits = torch.randn((S, B, K, V), generator=g) * 2
    gch, gcf = gumbel((S, B, K, V), g), gumbel((S, B, K), g)
    ids, after = ids0.clone(), []
    for i in range(S):
        ids = step_fn(ids, logits[i], start + i, gch[i], gcf[i])
        after.append(ids.clone())
    out.update({f"{case}.ids0": ids0.int(), f"{case}.logits": logits, f"{case}.gchoice": gch,
                f"{case}.gconf": gcf, f"{case}.ids": torch.stack(after).int()})


def main():
    outdir = sys.argv[1]
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    out = {}
    full = torch.full((B, K), V, dtype=torch.long)
    for case, steps, temp, anneal in (("titok", 5, 9.5, True), ("titok_plain", 4, 1.0, False)):
        run(out, case, full, 0, steps, g,
            lambda ids, lg, s, gc, gf, steps=steps, temp=temp, anneal=anneal:
            titok_step(ids, lg, s, steps, temp, anneal, gc, gf))

    def jax(ids, lg, s, gc, gf, steps, unknown0):
        nxt, sample = jax_step(ids.numpy(), lg.numpy(), s, steps, unknown0, 4.5, gc.numpy(), gf.numpy())
        return torch.from_numpy(sample if s == steps - 1 else nxt)
    run(out, "jax", full, 0, 5, g, lambda *a: jax(*a, steps=5, unknown0=np.full(B, K)))
    edit = torch.randint(0, V, (B, K), generator=g)
    edit[:, 2:7] = V
    edit[1, 0] = V
    unknown0 = (edit == V).sum(-1).numpy()
    run(out, "jax_edit", edit, 2, 6, g, lambda *a: jax(*a, steps=6, unknown0=unknown0))
    h = rng_hash(GUMBEL_SEED, np.arange(64, dtype=np.uint64))
    u = ((h >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)).astype(np.float64)
    a = -np.log(np.maximum(u, 1e-20))
    out["gumbel.values"] = (-np.log(np.maximum(a, 1e-20))).astype(np.float32)
    meta = {"B": B, "K": K, "V": V, "gumbel_seed": GUMBEL_SEED}
    stio.save(os.path.join(outdir, "sampler.safetensors"), stio.tensors_from_torch(out), meta)


if __name__ == "__main__":
    main()
