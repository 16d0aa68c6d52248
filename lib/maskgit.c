/* maskgit.c - masking schedules, training masks, the sampler step,
 * guidance and region masks (see maskgit.h). */
#include "maskgit.h"
#include "chunks.h"
#include "err.h"
#include "rng.h"
#include "softmax.h"
#include "vmath.h"
#include "clones.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *s, const char *const *names, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return tp_err_set("unknown %s '%s'", what, s);
}

int maskgit_schedule_parse(const char *s)
{
    static const char *const names[] = {"arccos", "cosine", "linear"};
    return parse(s, names, 3, "schedule (arccos, cosine, linear)");
}

int maskgit_semantics_parse(const char *s)
{
    static const char *const names[] = {"titok", "jax"};
    return parse(s, names, 2, "semantics (titok, jax)");
}

int maskgit_guidance_parse(const char *s)
{
    static const char *const names[] = {"constant", "linear", "power-cosine"};
    return parse(s, names, 3, "guidance schedule (constant, linear, power-cosine)");
}

double maskgit_gamma(enum maskgit_schedule s, double r)
{
    double g = s == MASKGIT_ARCCOS ? acos(r) / (M_PI * 0.5) : s == MASKGIT_COSINE ? cos(M_PI * 0.5 * r) : 1.0 - r;
    return g < 1e-6 ? 1e-6 : g > 1.0 ? 1.0 : g;
}

int maskgit_train_count(enum maskgit_semantics sem, enum maskgit_schedule s, double u, int K)
{
    double x = K * maskgit_gamma(s, u);
    int n = (int)(sem == MASKGIT_JAX ? ceil(x) : nearbyint(x));
    return n < 1 ? 1 : n > K ? K : n;
}

int maskgit_sample_count(enum maskgit_schedule s, int step, int steps, int n0)
{
    double ratio = 1.0 * (step + 1) / steps;
    return (int)floor(n0 * maskgit_gamma(s, ratio));
}

void maskgit_train_mask(int32_t *ids, uint8_t *mask, int32_t *label, const int32_t *tokens,
                        int B, int K, int V, const struct maskgit_train_opts *o, uint64_t seed)
{
    uint64_t su = rng_hash(seed, 0), sp = rng_hash(seed, 1), sl = rng_hash(seed, 2);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        int64_t *perm = tp_malloc(sizeof(int64_t) * (size_t)K);
        struct rng r;
        rng_seed(&r, rng_hash(sp, (uint64_t)b));
        rng_permutation(&r, perm, K);
        int n = maskgit_train_count(o->sem, o->schedule, rng_hash_uniform(su, (uint64_t)b), K);
        int32_t *id = ids + (size_t)b * K;
        uint8_t *m = mask + (size_t)b * K;
        if (id != tokens + (size_t)b * K) memcpy(id, tokens + (size_t)b * K, sizeof(int32_t) * K);
        memset(m, 0, (size_t)K);
        for (int i = 0; i < n; i++) {
            m[perm[i]] = 1;
            id[perm[i]] = V;
        }
        if (label && rng_hash_uniform(sl, (uint64_t)b) < o->label_drop) label[b] = -1;
        free(perm);
    }
}

/* In double, as the reference sampler draws it; vm_log, not libm's, so that
 * gumbel_row's loop vectorises (its floats equal libm's for every u: the
 * two logs were 40% of a sampling step of the mask tool). Always inlined:
 * once vm_log was, GCC called this per element from gumbel_row's clones,
 * and the noise was 70% of mask's time again. */
VM_INLINE float gumbel_of(double u)
{
    double a = -vm_log(u > 1e-20 ? u : 1e-20);
    return (float)-vm_log(a > 1e-20 ? a : 1e-20);
}

VM_INLINE float gumbel(uint64_t seed, uint64_t i) { return gumbel_of(rng_hash_uniform(seed, i)); }

float maskgit_gumbel(uint64_t seed, uint64_t i) { return gumbel(seed, i); }

/* g[v] = the draw of index base + v, v < V */
TP_CLONES static void gumbel_row(float *g, uint64_t seed, uint64_t base, int V)
{
#pragma omp simd
    for (int v = 0; v < V; v++) g[v] = gumbel(seed, base + (uint64_t)v);
}

/* Upper bounds of the draws by buckets of their uniform: u is one of 2^24
 * values j 2^-24 (rng_hash_uniform: the hash's top 24 bits), and the noise
 * grows with u, so a bucket's largest j bounds it. The margin (4 ulps at
 * the largest draw, 16.6) covers the logs' last-bit wobble;
 * tests/unit/test_maskgit.c checks the bound against every j. */
#define GUMBEL_BUCKET_BITS 12
#define GUMBEL_BOUND_MARGIN 0x1p-17f
static float gumbel_bound[1 << GUMBEL_BUCKET_BITS];
static int gumbel_bound_ready;

static void gumbel_bounds_make(void)
{
    if (__atomic_load_n(&gumbel_bound_ready, __ATOMIC_ACQUIRE)) return;
#pragma omp critical(maskgit_gumbel_bound)
    if (!gumbel_bound_ready) {
        const int shift = 24 - GUMBEL_BUCKET_BITS;
        for (int b = 0; b < 1 << GUMBEL_BUCKET_BITS; b++) {
            const float u = (float)(((b + 1) << shift) - 1) * (1.0f / 16777216.0f);
            gumbel_bound[b] = gumbel_of(u) + GUMBEL_BOUND_MARGIN;
        }
        __atomic_store_n(&gumbel_bound_ready, 1, __ATOMIC_RELEASE);
    }
}

float maskgit_gumbel_of(float u) { return gumbel_of(u); }

float maskgit_gumbel_bound(float u)
{
    gumbel_bounds_make();
    return gumbel_bound[(uint32_t)(u * 16777216.0f) >> (24 - GUMBEL_BUCKET_BITS)];
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Noise of element i of a step: the hook's array, a seeded draw (of
 * index at), or none. */
static float noise_at(const float *given, uint64_t seed, uint64_t i, uint64_t at, int on)
{
    if (!on) return 0.0f;
    return given ? given[i] : gumbel(seed, at);
}

/* A code's score: TiTok's annealed logit a plus tau times its noise n,
 * JAX's n + a (tau 1). Rounding is monotone, so a bound on n bounds the
 * score. */
VM_INLINE float score(int titok, float a, float tau, float n) { return titok ? a + tau * n : n + a; }

/* a logit as the score takes it: TiTok's annealed by st, JAX's as is */
VM_INLINE float annealed(int titok, float x, float st) { return titok ? x / st : x; }

/* the chosen code's confidence before noise: TiTok's annealed logit a,
 * JAX's log-probability */
static float confidence(int titok, float a, const float *x, int best, int V)
{
    return titok ? a : x[best] - logsumexp_row(x, V);
}

/* Sample one position: the chosen id and its confidence before noise,
 * from every code's score with the row's noise (NULL: none); the first
 * best wins. */
static int32_t choose_all(float *conf, const float *x, int V, int titok, float tau, float st, const float *noise)
{
    int best = 0;
    float bestv = -INFINITY, bestx = 0;
    for (int v = 0; v < V; v++) {
        float a = annealed(titok, x[v], st);
        float val = score(titok, a, tau, noise ? noise[v] : 0.0f);
        if (val > bestv || v == 0) {
            bestv = val, best = v, bestx = a;
        }
    }
    *conf = confidence(titok, bestx, x, best, V);
    return best;
}

/* up[v] = code v's score with its bucket's bound in place of its draw
 * (index base + v, scale s); returns 0 if a logit is not finite */
TP_CLONES static int bound_row(float *up, const float *x, int V, int titok, float st, float s, uint64_t seed,
                               uint64_t base)
{
    int finite = 1;
#pragma omp simd reduction(&& : finite)
    for (int v = 0; v < V; v++) {
        const float a = annealed(titok, x[v], st);
        const uint32_t j = (uint32_t)(rng_hash(seed, base + (uint64_t)v) >> (64 - GUMBEL_BUCKET_BITS));
        up[v] = score(titok, a, s, gumbel_bound[j]);
        finite = finite && isfinite(a);
    }
    return finite;
}

/* The first v >= from with up[v] >= t, or n: blocks where none is are
 * passed by one vector test (a scalar scan of the row was half the time of
 * choose_bounded). */
static int first_reaching(const float *up, int from, int n, float t)
{
    int v = from;
    for (; v + 16 <= n; v += 16) {
        int any = 0;
#pragma omp simd reduction(| : any)
        for (int j = 0; j < 16; j++) any |= up[v + j] >= t;
        if (any) break;
    }
    for (; v < n; v++)
        if (up[v] >= t) return v;
    return n;
}

/* choose_all's choice for drawn noise without drawing every code's: the
 * two logs of a draw were 64% of mask's time, while one code or a few can
 * win. Each code's score is bounded from its hash alone (bound_row); the
 * code of the highest bound, drawn, scores some S, and only the codes
 * whose bound reaches the best score so far (S at first) are drawn, in
 * order: every code that scores the maximum is among them, and the first
 * of them wins, as in choose_all. -1 where a logit is not finite (choose_all
 * decides then). */
static int32_t choose_bounded(float *conf, const float *x, int V, int titok, float tau, float st, uint64_t gseed,
                              uint64_t at, float *up)
{
    if (!bound_row(up, x, V, titok, st, tau, gseed, at)) return -1;
    float top = up[0];
#pragma omp simd reduction(max : top)
    for (int v = 1; v < V; v++) top = up[v] > top ? up[v] : top;
    const int v0 = first_reaching(up, 0, V, top);
    const float a0 = annealed(titok, x[v0], st);
    float bestv = score(titok, a0, tau, gumbel(gseed, at + (uint64_t)v0)), bestx = a0;
    int best = v0;
    for (int v = first_reaching(up, 0, V, bestv); v < V; v = first_reaching(up, v + 1, V, bestv)) {
        if (v == v0) continue;
        const float a = annealed(titok, x[v], st);
        const float val = score(titok, a, tau, gumbel(gseed, at + (uint64_t)v));
        if (val > bestv || (val == bestv && v < best)) bestv = val, best = v, bestx = a;
    }
    *conf = confidence(titok, bestx, x, best, V);
    return best;
}

/* The choice noise of a position's V codes: the hook's (g, from base),
 * else drawn from index at, only where it can decide (choose_bounded) or
 * in full into scratch [V] (a logit not finite). Noise scaled by 0
 * (TiTok's last step) is no noise: the same scores. */
static int32_t choose(float *conf, const float *x, int V, const struct maskgit_sample_opts *o, float tau,
                      float st, const float *g, uint64_t gseed, uint64_t base, uint64_t at, float *scratch)
{
    const int titok = o->sem == MASKGIT_TITOK;
    const float *noise = NULL;
    if (o->noise && g) {
        noise = g + base;
    } else if (o->noise && (!titok || tau > 0)) {
        int32_t id = choose_bounded(conf, x, V, titok, tau, st, gseed, at, scratch);
        if (id >= 0) return id;
        gumbel_row(scratch, gseed, at, V), noise = scratch;
    }
    return choose_all(conf, x, V, titok, tau, st, noise);
}

void maskgit_sample_step(int32_t *ids, uint8_t *mask, const float *logits, const int32_t *masked0,
                         int B, int K, int V, const struct maskgit_sample_opts *o,
                         const struct maskgit_noise *nz)
{
    TP_ASSERT(o->step >= 0 && o->step < o->steps);
    double ratio = 1.0 * (o->step + 1) / o->steps;
    int titok = o->sem == MASKGIT_TITOK, last = o->step == o->steps - 1;
    float tau = (float)(o->temperature * (1.0 - ratio));
    float st = titok && o->softmax_anneal ? (float)(0.5 + 0.8 * (1.0 - ratio)) : 1.0f;
    uint64_t sc = rng_hash(nz->seed, 0), sf = rng_hash(nz->seed, 1);
    gumbel_bounds_make();
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        int32_t *id = ids + (size_t)b * K;
        float *conf = tp_malloc(sizeof(float) * (2 * (size_t)K + (size_t)V)), *sorted = conf + K, *gn = sorted + K;
        int nmask = 0;
        for (int k = 0; k < K; k++) {
            size_t bk = (size_t)b * K + k;
            if (id[k] != V) {
                conf[k] = INFINITY;
                continue;
            }
            nmask++;
            float c;
            const uint64_t at = (uint64_t)nz->first * K + bk; /* the draws' index */
            id[k] = choose(&c, logits + bk * V, V, o, tau, st, nz->choice, sc, bk * V, at * V, gn);
            /* the last step keeps every choice: no confidence */
            float g = last ? 0.0f : noise_at(nz->conf, sf, bk, at, o->noise);
            /* TiTok: the annealed logit plus tau G'; JAX: log p plus
             * choice_temperature (1 - ratio) G', the same product */
            conf[k] = c + tau * g;
        }
        int n0 = titok ? K : masked0[b];
        int n = maskgit_sample_count(o->schedule, o->step, o->steps, n0);
        if (n > nmask - 1) n = nmask - 1;
        if (n < 1) n = 1;
        if (!last && nmask > 0) {
            memcpy(sorted, conf, sizeof(float) * K);
            qsort(sorted, (size_t)K, sizeof(float), cmp_float);
            /* JAX's take_along_axis clamps the index (K = 1) */
            float cut = titok ? sorted[n - 1] : sorted[n < K ? n : K - 1];
            for (int k = 0; k < K; k++)
                if (titok ? conf[k] <= cut : conf[k] < cut) id[k] = V;
        }
        if (mask)
            for (int k = 0; k < K; k++) mask[(size_t)b * K + k] = id[k] == V;
        free(conf);
    }
}

double maskgit_cfg_scale(enum maskgit_guidance k, double g, int step, int steps, double pw)
{
    double s = (double)step / steps;
    switch (k) {
    case MASKGIT_CFG_CONSTANT: return g;
    case MASKGIT_CFG_LINEAR: return s * g;
    case MASKGIT_CFG_POWER_COSINE: return (g - 1.0) * (1.0 - cos(pow(s, pw) * M_PI)) * 0.5 + 1.0;
    }
    return g;
}

void maskgit_cfg_combine(float *out, const float *cond, const float *uncond, const float *bias, int rows,
                         int V, enum maskgit_guidance k, float scale)
{
    const int pc = k == MASKGIT_CFG_POWER_COSINE;
#pragma omp parallel for if ((size_t)rows * V > PAR_MIN) schedule(static)
    for (int r = 0; r < rows; r++) {
        const size_t o = (size_t)r * V;
        const float *cr = cond + o, *ur = uncond ? uncond + o : NULL;
        float *y = out + o;
#pragma omp simd
        for (int v = 0; v < V; v++) {
            float b = bias ? bias[v] : 0.0f, c = cr[v] + b;
            if (!ur) {
                y[v] = c;
                continue;
            }
            float u = ur[v] + b;
            y[v] = (pc ? u : c) + (c - u) * scale;
        }
    }
}

void maskgit_box_mask(uint8_t *m, int g, int S, int x, int y, int w, int h, int outside)
{
    int p = S / g;
    TP_ASSERT(p > 0);
    int t = y / p - 1, b = h / p + y / p + 1, l = x / p - 1, r = x / p + w / p + 1;
    if (t < 0) t = 0;
    if (l < 0) l = 0;
    if (b > g) b = g;
    if (r > g) r = g;
    for (int i = 0; i < g; i++)
        for (int j = 0; j < g; j++) m[i * g + j] = (i >= t && i < b && j >= l && j < r) != (outside != 0);
}

void maskgit_pixel_mask(uint8_t *m, int g, const uint8_t *px, int H, int W, int outside)
{
    TP_ASSERT(H % g == 0 && W % g == 0);
    int ph = H / g, pw = W / g;
    for (int i = 0; i < g; i++)
        for (int j = 0; j < g; j++) {
            int any = 0;
            for (int y = i * ph; y < (i + 1) * ph && !any; y++)
                for (int x = j * pw; x < (j + 1) * pw; x++) any |= px[(size_t)y * W + x] != 0;
            m[i * g + j] = any != (outside != 0);
        }
}

void maskgit_apply_region(int32_t *ids, uint8_t *mask, const uint8_t *m, int B, int K, int V)
{
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            if (m[k]) {
                ids[(size_t)b * K + k] = V;
                mask[(size_t)b * K + k] = 1;
            }
}
