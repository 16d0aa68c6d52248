/* test_maskgit.c - MaskGIT's masking and decoding arithmetic: the masked
 * counts of the schedules (a table computed with numpy), training masks
 * (exact counts, at least one, seeded), whole decoding runs against
 * upstream's loops on the same logits and noise (tests/reference/
 * ref_sampler.py: TiTok's ImageBert.generate, JAX's parallel_decode, and an
 * editing run from step 2), the seeded Gumbel draws, guidance scales, and
 * the region masks' margin rule on hand cases. */
#include "test.h"

#include "cli.h"
#include "maskgit.h"

/* ---- schedules ---- */

static void test_schedule_table(void **state)
{
    (void)state;
    /* floor(K gamma((t+1)/8)), t = 0..7, from numpy in double */
    static const int want[2][2][8] = {
        {{29, 26, 24, 21, 18, 14, 10, 0}, {31, 29, 26, 22, 17, 12, 6, 0}},  /* K = 32: arccos, cosine */
        {{58, 53, 48, 42, 36, 29, 20, 0}, {62, 59, 53, 45, 35, 24, 12, 0}}, /* K = 64 */
    };
    for (int k = 0; k < 2; k++)
        for (int s = 0; s < 2; s++)
            for (int t = 0; t < 8; t++) {
                int got = maskgit_sample_count(s ? MASKGIT_COSINE : MASKGIT_ARCCOS, t, 8, 32 << k);
                if (got != want[k][s][t])
                    fail_msg("K %d %s step %d: %d masked, want %d", 32 << k, s ? "cosine" : "arccos", t, got,
                             want[k][s][t]);
            }
    assert_true(maskgit_gamma(MASKGIT_ARCCOS, 1.0) == 1e-6 && maskgit_gamma(MASKGIT_COSINE, 0.0) == 1.0);
    assert_true(fabs(maskgit_gamma(MASKGIT_LINEAR, 0.25) - 0.75) < 1e-15);
    assert_int_equal(maskgit_schedule_parse("cosine"), MASKGIT_COSINE);
    assert_int_equal(maskgit_semantics_parse("jax"), MASKGIT_JAX);
    assert_int_equal(maskgit_guidance_parse("power-cosine"), MASKGIT_CFG_POWER_COSINE);
    assert_int_equal(maskgit_schedule_parse("cos"), -1);
    assert_non_null(strstr(tp_err(), "'cos'"));
}

static void test_train_count(void **state)
{
    (void)state;
    /* round half to even (torch.round): 32 * 0.515625 = 16.5 */
    assert_int_equal(maskgit_train_count(MASKGIT_TITOK, MASKGIT_LINEAR, 0.484375, 32), 16);
    assert_int_equal(maskgit_train_count(MASKGIT_JAX, MASKGIT_LINEAR, 0.484375, 32), 17);
    /* at least one; all at u = 0 */
    assert_int_equal(maskgit_train_count(MASKGIT_TITOK, MASKGIT_ARCCOS, 0.9999999, 32), 1);
    assert_int_equal(maskgit_train_count(MASKGIT_TITOK, MASKGIT_ARCCOS, 0.0, 32), 32);
    /* arccos(0.5) / (pi/2) = 2/3: 21.33 of 32 */
    assert_int_equal(maskgit_train_count(MASKGIT_TITOK, MASKGIT_ARCCOS, 0.5, 32), 21);
    assert_int_equal(maskgit_train_count(MASKGIT_JAX, MASKGIT_COSINE, 0.5, 64), 46); /* ceil(45.25) */
}

enum { TB = 8, TK = 32, TV = 1024 };

static void train_once(int32_t *ids, uint8_t *mask, int32_t *label, const int32_t *tokens,
                       enum maskgit_semantics sem, enum maskgit_schedule sch, uint64_t seed)
{
    struct maskgit_train_opts o = {sem, sch, 0.1f};
    for (int b = 0; b < TB; b++) label[b] = b;
    maskgit_train_mask(ids, mask, label, tokens, TB, TK, TV, &o, seed);
}

static void test_train_mask(void **state)
{
    (void)state;
    tp_threads_set(2);
    int32_t tokens[TB * TK], ids[TB * TK], ids2[TB * TK], label[TB], label2[TB];
    uint8_t mask[TB * TK], mask2[TB * TK];
    struct rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < TB * TK; i++) tokens[i] = (int32_t)rng_below(&r, TV);
    long dropped = 0, masked = 0, n = 0;
    for (uint64_t seed = 0; seed < 250; seed++) {
        int jax = seed % 2;
        train_once(ids, mask, label, tokens, jax ? MASKGIT_JAX : MASKGIT_TITOK, jax ? MASKGIT_COSINE : MASKGIT_ARCCOS,
                   seed);
        for (int b = 0; b < TB; b++) {
            double u = rng_hash_uniform(rng_hash(seed, 0), (uint64_t)b);
            double x = jax ? TK * cos(M_PI / 2 * u) : TK * acos(u) / (M_PI / 2);
            int want = jax ? (int)ceil(x) : (int)nearbyint(x), count = 0;
            if (want < 1) want = 1;
            for (int k = 0; k < TK; k++) {
                int i = b * TK + k;
                count += mask[i];
                if (ids[i] != (mask[i] ? TV : tokens[i]))
                    fail_msg("seed %d sample %d position %d: id %d mask %d token %d", (int)seed, b, k, ids[i], mask[i],
                             tokens[i]);
            }
            if (count != want) fail_msg("seed %d sample %d: %d masked, want %d", (int)seed, b, count, want);
            assert_true(label[b] == b || label[b] == -1);
            if (!jax) {
                dropped += label[b] < 0;
                masked += count;
                n++;
            }
        }
    }
    /* 1000 TiTok samples: E[arccos(u)/(pi/2)] = 2/pi, 10% null labels */
    double frac = (double)masked / (n * TK), drop = (double)dropped / n;
    if (fabs(frac - 2 / M_PI) > 0.03) fail_msg("mean masked fraction %g, want about %g", frac, 2 / M_PI);
    if (drop < 0.07 || drop > 0.13) fail_msg("label dropout rate %g, want about 0.1", drop);
    /* the same seed gives the same mask; another seed another */
    train_once(ids, mask, label, tokens, MASKGIT_TITOK, MASKGIT_ARCCOS, 77);
    train_once(ids2, mask2, label2, tokens, MASKGIT_TITOK, MASKGIT_ARCCOS, 77);
    assert_memory_equal(ids, ids2, sizeof ids);
    assert_memory_equal(mask, mask2, sizeof mask);
    assert_memory_equal(label, label2, sizeof label);
    train_once(ids2, mask2, label2, tokens, MASKGIT_TITOK, MASKGIT_ARCCOS, 78);
    assert_memory_not_equal(mask, mask2, sizeof mask);
    /* in place (ids aliasing tokens), without labels */
    memcpy(ids2, tokens, sizeof ids2);
    struct maskgit_train_opts o = {MASKGIT_TITOK, MASKGIT_ARCCOS, 0.1f};
    maskgit_train_mask(ids2, mask2, NULL, ids2, TB, TK, TV, &o, 77);
    assert_memory_equal(ids, ids2, sizeof ids);
}

/* ---- the sampler against upstream's loops ---- */

static void check_run(struct st *s, const char *c, enum maskgit_semantics sem, int start, int steps,
                      float temp, int anneal)
{
    enum { B = 3, K = 8, V = 11 };
    char name[64];
    snprintf(name, sizeof name, "%s.ids0", c);
    struct st_tensor *t0 = st_require(s, name, ST_I32, 2);
    snprintf(name, sizeof name, "%s.ids", c);
    struct st_tensor *want = st_require(s, name, ST_I32, 3);
    assert_non_null(t0);
    assert_non_null(want);
    int S = steps - start;
    snprintf(name, sizeof name, "%s.logits", c);
    const float *lg = ref_f32(s, name, (size_t)S * B * K * V);
    snprintf(name, sizeof name, "%s.gchoice", c);
    const float *gc = ref_f32(s, name, (size_t)S * B * K * V);
    snprintf(name, sizeof name, "%s.gconf", c);
    const float *gf = ref_f32(s, name, (size_t)S * B * K);
    int32_t ids[B * K], masked0[B] = {0};
    uint8_t mask[B * K];
    memcpy(ids, t0->data, sizeof ids);
    for (int i = 0; i < B * K; i++) masked0[i / K] += ids[i] == V;
    struct maskgit_sample_opts o = {sem, sem == MASKGIT_TITOK ? MASKGIT_ARCCOS : MASKGIT_COSINE, 0, steps, temp,
                                    anneal, 1};
    for (int i = 0; i < S; i++) {
        o.step = start + i;
        struct maskgit_noise nz = {0, gc + (size_t)i * B * K * V, gf + (size_t)i * B * K, 0};
        maskgit_sample_step(ids, mask, lg + (size_t)i * B * K * V, masked0, B, K, V, &o, &nz);
        const int32_t *w = (const int32_t *)want->data + (size_t)i * B * K;
        for (int j = 0; j < B * K; j++) {
            if (ids[j] != w[j]) fail_msg("%s step %d: ids[%d] = %d, upstream %d", c, o.step, j, ids[j], w[j]);
            assert_int_equal(mask[j], ids[j] == V);
        }
    }
    for (int j = 0; j < B * K; j++) assert_true(ids[j] >= 0 && ids[j] < V); /* nothing left masked */
}

static void test_sampler_ref(void **state)
{
    (void)state;
    tp_threads_set(2);
    struct st *s = ref_load("sampler");
    check_run(s, "titok", MASKGIT_TITOK, 0, 5, 9.5f, 1);
    check_run(s, "titok_plain", MASKGIT_TITOK, 0, 4, 1.0f, 0);
    check_run(s, "jax", MASKGIT_JAX, 0, 5, 4.5f, 0);
    check_run(s, "jax_edit", MASKGIT_JAX, 2, 6, 4.5f, 0);
    /* the seeded draws are the formula's, computed independently in numpy */
    const float *g = ref_f32(s, "gumbel.values", 64);
    float got[64];
    for (int i = 0; i < 64; i++) got[i] = maskgit_gumbel(12345, (uint64_t)i);
    check_close("gumbel", got, g, 64, 1e-6, 1e-6);
    st_free(s);
}

/* Without noise a step is an argmax, and keeps the most confident. */
static void test_sampler_no_noise(void **state)
{
    (void)state;
    enum { K = 4, V = 3 };
    /* position 0 known (id 2); 1..3 masked; argmax ids 1, 0, 2 with logits 5, 2, 9 */
    const float logits[K * V] = {0, 0, 0, 1, 5, 0, 2, 1, 0, 0, 1, 9};
    int32_t ids[K] = {2, V, V, V};
    uint8_t mask[K];
    struct maskgit_sample_opts o = {MASKGIT_TITOK, MASKGIT_LINEAR, 0, 4, 9.5f, 0, 0};
    struct maskgit_noise nz = {1, NULL, NULL, 0};
    /* step 0 of 4: floor(4 * 0.75) = 3, clamped to #masked - 1 = 2: the lowest two re-masked */
    maskgit_sample_step(ids, mask, logits, NULL, 1, K, V, &o, &nz);
    const int32_t want[K] = {2, V, V, 2};
    assert_memory_equal(ids, want, sizeof want);
    const uint8_t wm[K] = {0, 1, 1, 0};
    assert_memory_equal(mask, wm, sizeof wm);
    /* the last step fills everything */
    o.step = 3;
    maskgit_sample_step(ids, mask, logits, NULL, 1, K, V, &o, &nz);
    const int32_t last[K] = {2, 1, 0, 2};
    assert_memory_equal(ids, last, sizeof last);
    /* JAX confidence is log p: the chosen ids have p 1/3 (the flat row 0, id 0), .976, .665, .9996 */
    int32_t j[K] = {V, V, V, V};
    const int32_t m0[1] = {K};
    o = (struct maskgit_sample_opts){MASKGIT_JAX, MASKGIT_LINEAR, 1, 4, 4.5f, 0, 0};
    maskgit_sample_step(j, mask, logits, m0, 1, K, V, &o, &nz);
    /* floor(4 * 0.5) = 2 re-masked: the two least probable, positions 0 and 2 */
    const int32_t jw[K] = {V, 1, V, 2};
    assert_memory_equal(j, jw, sizeof jw);
}

/* Seeded noise: the same seed the same ids, another seed others; parts of
 * a batch the ids of the whole. */
static void test_sampler_seeded(void **state)
{
    (void)state;
    enum { B = 4, K = 32, V = 64 };
    float *logits = tp_malloc(sizeof(float) * B * K * V);
    struct rng r;
    rng_seed(&r, 5);
    fill_uniform(&r, logits, (size_t)B * K * V, -1, 1);
    int32_t a[B * K], b[B * K], c[B * K];
    for (int sem = 0; sem < 2; sem++) {
        struct maskgit_sample_opts o = {sem, sem ? MASKGIT_COSINE : MASKGIT_ARCCOS, 0, 8, 4.5f, 1, 1};
        int32_t m0[B] = {K, K, K, K};
        for (int i = 0; i < B * K; i++) a[i] = b[i] = c[i] = V;
        struct maskgit_noise n1 = {7, NULL, NULL, 0}, n2 = {8, NULL, NULL, 0};
        maskgit_sample_step(a, NULL, logits, m0, B, K, V, &o, &n1);
        maskgit_sample_step(b, NULL, logits, m0, B, K, V, &o, &n1);
        maskgit_sample_step(c, NULL, logits, m0, B, K, V, &o, &n2);
        assert_memory_equal(a, b, sizeof a);
        assert_memory_not_equal(a, c, sizeof a);
        /* the batch in two parts (1 + 3 samples), each drawing at its samples'
         * places: the whole batch's ids */
        for (int i = 0; i < B * K; i++) b[i] = V;
        struct maskgit_noise p1 = {7, NULL, NULL, 1};
        maskgit_sample_step(b, NULL, logits, m0, 1, K, V, &o, &n1);
        maskgit_sample_step(b + K, NULL, logits + (size_t)K * V, m0, B - 1, K, V, &o, &p1);
        assert_memory_equal(a, b, sizeof a);
        int left = 0;
        for (int i = 0; i < K; i++) left += a[i] == V;
        assert_int_equal(left, maskgit_sample_count(o.schedule, 0, 8, K));
    }
    free(logits);
}

/* The bound the sampler takes for a bucket of draws holds for every one of
 * the 2^24 uniforms, and is the bucket's largest draw plus the margin. */
static void test_gumbel_bound(void **state)
{
    (void)state;
    long loose = 0;
    for (uint32_t j = 0; j < 1u << 24; j++) {
        const float u = (float)j * (1.0f / 16777216.0f), g = maskgit_gumbel_of(u), hi = maskgit_gumbel_bound(u);
        if (!(g <= hi)) fail_msg("u = %u 2^-24: draw %.9g above its bound %.9g", j, g, hi);
        loose += hi - g > 1e-4f && (j & 4095) == 4095;
    }
    assert_int_equal(loose, 0); /* at the bucket's end the bound is the draw plus 2^-17 */
    assert_true(maskgit_gumbel_of(0.0f) < -3.8f && maskgit_gumbel_of(0.0f) > -3.9f); /* u clamped at 1e-20 */
}

/* The sampler's drawn noise, which it draws only for the codes that can
 * win, picks what drawing all of them picks: the same draws given as the
 * hook's arrays. Rows flat, spread, peaked, with two equal huge logits
 * (scores that round to a tie: the first code wins) and one with a NaN
 * (drawn in full), every step (the last one's noise scaled by 0). */
static void test_sampler_bounded(void **state)
{
    (void)state;
    tp_threads_set(2);
    enum { B = 6, K = 16, V = 1000 };
    float *logits = tp_malloc(sizeof(float) * B * K * V), *choice = tp_malloc(sizeof(float) * B * K * V);
    float conf[B * K];
    struct rng r;
    rng_seed(&r, 11);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++) {
            float *x = logits + ((size_t)b * K + k) * V;
            const int kind = (b * K + k) % 5;
            fill_uniform(&r, x, V, kind == 0 ? 0.0f : -1.0f, kind == 0 ? 0.0f : kind == 1 ? 1.0f : 20.0f);
            if (kind == 3) x[3] = x[700] = 1e8f;
        }
    logits[((size_t)2 * K + 5) * V + 17] = NAN;
    const uint64_t seed = 99, sc = rng_hash(seed, 0), sf = rng_hash(seed, 1);
    for (size_t i = 0; i < (size_t)B * K * V; i++) choice[i] = maskgit_gumbel(sc, i);
    for (int i = 0; i < B * K; i++) conf[i] = maskgit_gumbel(sf, (uint64_t)i);
    for (int sem = 0; sem < 2; sem++) {
        int32_t a[B * K], h[B * K], m0[B];
        uint8_t ma[B * K], mh[B * K];
        for (int i = 0; i < B * K; i++) a[i] = h[i] = V;
        for (int b = 0; b < B; b++) m0[b] = K;
        for (int step = 0; step < 6; step++) {
            struct maskgit_sample_opts o = {sem, MASKGIT_COSINE, step, 6, sem ? 4.5f : 9.5f, 1, 1};
            struct maskgit_noise drawn = {seed, NULL, NULL, 0}, given = {seed, choice, conf, 0};
            maskgit_sample_step(a, ma, logits, m0, B, K, V, &o, &drawn);
            maskgit_sample_step(h, mh, logits, m0, B, K, V, &o, &given);
            for (int i = 0; i < B * K; i++)
                if (a[i] != h[i]) fail_msg("sem %d step %d: id[%d] %d drawn, %d given", sem, step, i, a[i], h[i]);
            assert_memory_equal(ma, mh, sizeof ma);
        }
        for (int i = 0; i < B * K; i++) assert_true(a[i] >= 0 && a[i] < V);
    }
    free(logits);
    free(choice);
}

/* ---- guidance and region masks ---- */

static void test_cfg(void **state)
{
    (void)state;
    assert_true(maskgit_cfg_scale(MASKGIT_CFG_CONSTANT, 4.5, 3, 8, 3) == 4.5);
    assert_true(maskgit_cfg_scale(MASKGIT_CFG_LINEAR, 4.5, 0, 8, 3) == 0.0);
    assert_true(maskgit_cfg_scale(MASKGIT_CFG_LINEAR, 4.5, 2, 8, 3) == 1.125);
    assert_true(maskgit_cfg_scale(MASKGIT_CFG_POWER_COSINE, 6.9, 0, 64, 3) == 1.0);
    /* (g-1)(1 - cos(pi/8))/2 + 1 at s/T = 1/2, p = 3 */
    double pc = 5.9 * (1 - cos(M_PI / 8)) / 2 + 1;
    assert_true(fabs(maskgit_cfg_scale(MASKGIT_CFG_POWER_COSINE, 6.9, 32, 64, 3) - pc) < 1e-12);
    const float c[3] = {1, 2, -1}, u[3] = {0.5f, 2, 1};
    float out[3];
    maskgit_cfg_combine(out, c, u, NULL, 1, 3, MASKGIT_CFG_LINEAR, 2.0f);
    const float w1[3] = {2, 2, -5}; /* c + 2 (c - u) */
    assert_memory_equal(out, w1, sizeof w1);
    maskgit_cfg_combine(out, c, u, NULL, 1, 3, MASKGIT_CFG_POWER_COSINE, 2.0f);
    const float w2[3] = {1.5f, 2, -3}; /* u + 2 (c - u) */
    assert_memory_equal(out, w2, sizeof w2);
    /* a bias on both before: (c + b) + 2 (c - u) by rows of 3 and 1 */
    const float b3[3] = {0.25f, -4, 8}, w3[3] = {2.25f, -2, 3};
    maskgit_cfg_combine(out, c, u, b3, 1, 3, MASKGIT_CFG_LINEAR, 2.0f);
    assert_memory_equal(out, w3, sizeof w3);
    const float b1[1] = {0.25f}, w4[3] = {2.25f, 2.25f, -4.75f};
    maskgit_cfg_combine(out, c, u, b1, 3, 1, MASKGIT_CFG_LINEAR, 2.0f);
    assert_memory_equal(out, w4, sizeof w4);
    /* no uncond: cond + bias */
    const float w5[3] = {1.25f, -2, 7};
    maskgit_cfg_combine(out, c, NULL, b3, 1, 3, MASKGIT_CFG_LINEAR, 2.0f);
    assert_memory_equal(out, w5, sizeof w5);
}

/* rows [t,b), cols [l,r) of a g x g mask must be set, nothing else */
static void check_box(const uint8_t *m, int g, int t, int b, int l, int r, int outside)
{
    for (int i = 0; i < g; i++)
        for (int j = 0; j < g; j++) {
            int in = i >= t && i < b && j >= l && j < r;
            if (m[i * g + j] != (in != outside)) fail_msg("token (%d,%d): %d, box rows [%d,%d) cols [%d,%d)", i, j,
                                                          m[i * g + j], t, b, l, r);
        }
}

static void test_box_mask(void **state)
{
    (void)state;
    uint8_t m[16 * 16];
    /* 256 px, 16 x 16 tokens: top 60//16-1 = 2, bottom 50//16+60//16+1 = 7, left 40//16-1 = 1,
     * right 40//16+100//16+1 = 9 */
    maskgit_box_mask(m, 16, 256, 40, 60, 100, 50, 0);
    check_box(m, 16, 2, 7, 1, 9, 0);
    maskgit_box_mask(m, 16, 256, 40, 60, 100, 50, 1);
    check_box(m, 16, 2, 7, 1, 9, 1);
    /* clamped at the borders */
    maskgit_box_mask(m, 16, 256, 0, 0, 16, 16, 0);
    check_box(m, 16, 0, 2, 0, 2, 0);
    maskgit_box_mask(m, 16, 256, 240, 240, 16, 16, 0);
    check_box(m, 16, 14, 16, 14, 16, 0);
    /* tiny: 32 px, 8 x 8 tokens (4 px each): rows [9/4-1, 6/4+9/4+1) = [1,4), cols [0, 1+2+1) */
    maskgit_box_mask(m, 8, 32, 5, 9, 10, 6, 0);
    check_box(m, 8, 1, 4, 0, 4, 0);
    /* a pixel mask: any set pixel of a 2x2 patch, no margin */
    uint8_t px[8 * 8] = {0};
    px[3 * 8 + 5] = 255;
    maskgit_pixel_mask(m, 4, px, 8, 8, 0);
    check_box(m, 4, 1, 2, 2, 3, 0);
    maskgit_pixel_mask(m, 4, px, 8, 8, 1);
    check_box(m, 4, 1, 2, 2, 3, 1);
    /* applied to a batch */
    int32_t ids[2 * 16];
    uint8_t mask[2 * 16] = {0};
    for (int i = 0; i < 32; i++) ids[i] = i;
    maskgit_pixel_mask(m, 4, px, 8, 8, 0);
    maskgit_apply_region(ids, mask, m, 2, 16, 99);
    for (int i = 0; i < 32; i++) {
        int in = i % 16 == 6;
        assert_int_equal(ids[i], in ? 99 : i);
        assert_int_equal(mask[i], in);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_table),  cmocka_unit_test(test_train_count),
        cmocka_unit_test(test_train_mask),      cmocka_unit_test(test_sampler_ref),
        cmocka_unit_test(test_sampler_no_noise), cmocka_unit_test(test_sampler_seeded),
        cmocka_unit_test(test_gumbel_bound),    cmocka_unit_test(test_sampler_bounded),
        cmocka_unit_test(test_cfg),             cmocka_unit_test(test_box_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
