/* maskgit.h - MaskGIT's masking and iterative-decoding arithmetic as pure
 * functions over arrays: schedules, training masks, one sampler step in
 * TiTok's and in JAX MaskGIT's semantics, classifier-free guidance, region
 * masks. The mask tool is their command line; the transformer module uses
 * the guidance functions.
 *
 * Dimensions: B samples, K image tokens per sample (h*w for a 2D grid, in
 * raster order), V codebook size. Ids are 0..V-1 and the mask token is V
 * (TiTok's layout, upstream.md G.7); logits are [B,K,V].
 *
 * Schedules gamma(r), r in [0,1], the fraction of tokens still masked,
 * clamped to [1e-6, 1] and computed in double (as numpy does for TiTok):
 *   arccos  arccos(r) / (pi/2)     TiTok, training and sampling
 *   cosine  cos(pi/2 r)            JAX MaskGIT (which computes in float32:
 *                                  at an exact integer, e.g. 64 cos(pi/3),
 *                                  it may count one less than double does)
 *   linear  1 - r
 *
 * Training masks (maskgit_train_mask), per sample b of a record with seed s:
 *   u = rng_hash_uniform(rng_hash(s, 0), b)
 *   TiTok: n = round(K gamma(u)) (half to even, torch.round), at least 1
 *   JAX:   n = ceil(K gamma(u)) (the paper's count; the loop is unreleased)
 *   the first n positions of rng_permutation seeded rng_hash(rng_hash(s, 1), b)
 *   are masked (TiTok: argsort of uniform noise, the same distribution);
 *   label := -1 (the null class) where rng_hash_uniform(rng_hash(s, 2), b) < p.
 *
 * One sampling step (maskgit_sample_step), step t of T, ratio = (t+1)/T,
 * per sample; masked = positions holding V before the step:
 *   TiTok (modeling/maskgit.py ImageBert.generate):
 *     tau = temperature (1 - ratio); if softmax_anneal, logits /= 0.5 + 0.8 (1 - ratio)
 *     sampled = argmax(logits + tau G)         (Gumbel-max, first max wins)
 *     conf = logits[sampled] + tau G'          (the annealed raw logit)
 *     n = floor(K gamma(ratio)) clamped to [1, #masked - 1]
 *     re-mask conf <= sorted(conf)[n-1]
 *   JAX (maskgit/libml/parallel_decode.py decode):
 *     sampled = argmax(logits + G)             (jax.random.categorical)
 *     conf = log softmax(logits)[sampled] + temperature (1 - ratio) G'
 *     n = floor(masked0 gamma(ratio)) clamped to [1, #masked - 1]
 *     re-mask conf < sorted(conf)[n]
 *   Both: only masked positions take the sample; known positions have
 *   confidence +inf; at the last step (t = T-1) nothing is re-masked (the
 *   output is the sample, as TiTok's loop and JAX's final_seqs[:, -1]). A
 *   sample with no masked position is left as it is (TiTok would re-mask
 *   everything there). TiTok clamps n with sample 0's count for the whole
 *   batch; here each sample uses its own (the same when all started alike).
 *   G and G' are independent standard Gumbel draws -log(-log(U)), both logs
 *   clamped at 1e-20 as TiTok's; noise = 0 drops them (deterministic).
 *
 * Guidance (TiTok generate): two passes, with the class and with the null
 * class, combined as
 *   constant, linear:  cond + s (cond - uncond)
 *   power-cosine:      uncond + s (cond - uncond)
 * with s = maskgit_cfg_scale(); s = 0 means the conditional pass alone.
 */
#ifndef TP_MASKGIT_H
#define TP_MASKGIT_H

#include <stddef.h>
#include <stdint.h>

enum maskgit_schedule { MASKGIT_ARCCOS, MASKGIT_COSINE, MASKGIT_LINEAR };
enum maskgit_semantics { MASKGIT_TITOK, MASKGIT_JAX };
enum maskgit_guidance { MASKGIT_CFG_CONSTANT, MASKGIT_CFG_LINEAR, MASKGIT_CFG_POWER_COSINE };

/* Names to values: "arccos", "cosine", "linear"; "titok", "jax";
 * "constant", "linear", "power-cosine". -1 and a message if unknown. */
int maskgit_schedule_parse(const char *s);
int maskgit_semantics_parse(const char *s);
int maskgit_guidance_parse(const char *s);

/* gamma(r), clamped to [1e-6, 1]. */
double maskgit_gamma(enum maskgit_schedule s, double r);
/* Training: tokens to mask out of K for the uniform draw u. */
int maskgit_train_count(enum maskgit_semantics sem, enum maskgit_schedule s, double u, int K);
/* Sampling: floor(n0 gamma((step+1)/steps)), before the clamp to
 * [1, #masked - 1]: the number left masked after the step. */
int maskgit_sample_count(enum maskgit_schedule s, int step, int steps, int n0);

struct maskgit_train_opts {
    enum maskgit_semantics sem;
    enum maskgit_schedule schedule;
    float label_drop; /* probability of the null class (0.1) */
};

/* ids [B,K] := tokens with the masked positions set to V; mask [B,K] := 1
 * there, 0 elsewhere; label [B] (may be NULL) := -1 where dropped. ids may
 * alias tokens. */
void maskgit_train_mask(int32_t *ids, uint8_t *mask, int32_t *label, const int32_t *tokens,
                        int B, int K, int V, const struct maskgit_train_opts *o, uint64_t seed);

struct maskgit_sample_opts {
    enum maskgit_semantics sem;
    enum maskgit_schedule schedule;
    int step, steps;     /* 0 <= step < steps */
    float temperature;   /* TiTok randomize_temperature; JAX choice_temperature */
    int softmax_anneal;  /* TiTok: logits / (0.5 + 0.8 (1 - ratio)) */
    int noise;           /* 0: no Gumbel noise */
};

/* The Gumbel draws of a step: the token choice's G of element (b,k,v) is
 * choice[(b*K+k)*V+v] if choice is given (a test hook for upstream's own
 * noise), else maskgit_gumbel(rng_hash(seed, 0), that index); the
 * confidence's G' of (b,k) likewise from conf or rng_hash(seed, 1). The
 * drawn ones are those of sample first + b: a part of a batch draws what
 * the whole would at its samples. */
struct maskgit_noise {
    uint64_t seed;
    const float *choice; /* [B,K,V] or NULL */
    const float *conf;   /* [B,K] or NULL */
    int64_t first;
};

/* -log(-log(u)), u = rng_hash_uniform(seed, i), logs clamped at 1e-20. */
float maskgit_gumbel(uint64_t seed, uint64_t i);
/* The draw of uniform u (one of rng_hash_uniform's j 2^-24), and the upper
 * bound the sampler takes for the draws of u's bucket (maskgit.c). */
float maskgit_gumbel_of(float u);
float maskgit_gumbel_bound(float u);

/* One decoding step in place: ids [B,K] (V = masked); mask [B,K] (may be
 * NULL) := 1 where masked after the step; logits [B,K,V]; masked0 [B] the
 * number masked when decoding began (JAX only; may be NULL for TiTok). */
void maskgit_sample_step(int32_t *ids, uint8_t *mask, const float *logits, const int32_t *masked0,
                         int B, int K, int V, const struct maskgit_sample_opts *o,
                         const struct maskgit_noise *nz);

/* The guidance scale at step of steps for guidance g: constant g; linear
 * (step/steps) g; power-cosine (g-1) (1 - cos(pi (step/steps)^pw)) / 2 + 1. */
double maskgit_cfg_scale(enum maskgit_guidance k, double g, int step, int steps, double pw);
/* out [rows,V] from cond and uncond [rows,V] as above, each with bias [V]
 * added first (a head's, which its product left out; NULL: none); uncond
 * NULL: cond + bias, no guidance. out may alias cond or uncond. */
void maskgit_cfg_combine(float *out, const float *cond, const float *uncond, const float *bias, int rows,
                         int V, enum maskgit_guidance k, float scale);

/* Region masks on a g x g token grid of an S x S image (raster order).
 * Box (x,y,w,h) in pixels, upstream's 1-token margin (MaskGIT inference.py),
 * p = S/g:  rows [max(0, y/p - 1), min(g, h/p + y/p + 1)),
 *           cols [max(0, x/p - 1), min(g, x/p + w/p + 1))
 * m [g*g] := 1 inside, 0 outside (reversed with outside = 1). */
void maskgit_box_mask(uint8_t *m, int g, int S, int x, int y, int w, int h, int outside);
/* Pixel mask px [H,W] (nonzero = region), H and W multiples of g: token
 * (i,j) := 1 if any pixel of its patch is nonzero (no margin). */
void maskgit_pixel_mask(uint8_t *m, int g, const uint8_t *px, int H, int W, int outside);
/* ids := V and mask := 1 where m [K] is set, for each of B samples. */
void maskgit_apply_region(int32_t *ids, uint8_t *mask, const uint8_t *m, int B, int K, int V);

#endif
