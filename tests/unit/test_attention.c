/* test_attention.c - multi-head self-attention: forward against a naive
 * double-precision version (with and without biases, with dropout on the
 * probabilities), every gradient against finite differences, and the
 * same bits on repeated runs at 2 threads. */
#include "test.h"
#include "gradcheck.h"

#include "attention.h"
#include "cli.h"
#include "dropout.h"

enum { B = 2, T = 5, C = 8, NH = 2, HD = C / NH, BT = B * T };

struct ctx {
    float inp[BT * C], in_w[3 * C * C], in_b[3 * C], out_w[C * C], out_b[C];
    float out[BT * C], r[BT * C];
    struct attention_params w;
    struct attention_acts a;
    float *mem;
    float p;
    uint64_t seed;
};

static double loss(void *v)
{
    struct ctx *c = v;
    attention_forward(c->out, &c->a, c->inp, &c->w, B, T, C, NH, c->p, c->seed);
    return gc_dot(c->out, c->r, BT * C);
}

static void setup(struct ctx *c, uint64_t seed, float p)
{
    struct rng r;
    rng_seed(&r, seed);
    fill_uniform(&r, c->inp, BT * C, -1, 1);
    fill_uniform(&r, c->in_w, 3 * C * C, -0.6f, 0.6f);
    fill_uniform(&r, c->in_b, 3 * C, -0.3f, 0.3f);
    fill_uniform(&r, c->out_w, C * C, -0.5f, 0.5f);
    fill_uniform(&r, c->out_b, C, -0.3f, 0.3f);
    fill_uniform(&r, c->r, BT * C, -1, 1);
    c->w = (struct attention_params){c->in_w, c->in_b, c->out_w, c->out_b};
    c->p = p;
    c->seed = 77;
    c->mem = tp_malloc(sizeof(float) * attention_acts_floats(B, T, C, NH, p > 0));
    float *end = attention_acts_point(&c->a, c->mem, B, T, C, NH, p > 0);
    assert_true(end == c->mem + attention_acts_floats(B, T, C, NH, p > 0));
}

/* out and probabilities from plain loops in double */
static void naive(struct ctx *c, const float *in_b, const float *out_b, float *out,
                  float *att)
{
    double qkv[BT * 3 * C], y[BT * C];
    for (int i = 0; i < BT; i++)
        for (int o = 0; o < 3 * C; o++) {
            double s = in_b ? in_b[o] : 0;
            for (int k = 0; k < C; k++) s += (double)c->inp[i * C + k] * c->in_w[o * C + k];
            qkv[i * 3 * C + o] = s;
        }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                double s[T], m = -1e300, z = 0;
                for (int u = 0; u < T; u++) {
                    s[u] = 0;
                    for (int d = 0; d < HD; d++)
                        s[u] += qkv[(b * T + t) * 3 * C + h * HD + d] *
                                qkv[(b * T + u) * 3 * C + C + h * HD + d];
                    s[u] /= sqrt(HD);
                    if (s[u] > m) m = s[u];
                }
                for (int u = 0; u < T; u++) z += (s[u] = exp(s[u] - m));
                for (int d = 0; d < HD; d++) y[(b * T + t) * C + h * HD + d] = 0;
                for (int u = 0; u < T; u++) {
                    size_t ai = (((size_t)b * NH + h) * T + t) * T + u;
                    att[ai] = (float)(s[u] / z);
                    double pd = s[u] / z * dropout_scale(c->p, c->seed, ai);
                    for (int d = 0; d < HD; d++)
                        y[(b * T + t) * C + h * HD + d] += pd * qkv[(b * T + u) * 3 * C + 2 * C + h * HD + d];
                }
            }
    for (int i = 0; i < BT; i++)
        for (int o = 0; o < C; o++) {
            double s = out_b ? out_b[o] : 0;
            for (int k = 0; k < C; k++) s += y[i * C + k] * c->out_w[o * C + k];
            out[i * C + o] = (float)s;
        }
}

static void check_forward(float p)
{
    struct ctx c;
    setup(&c, 1, p);
    float want[BT * C], att[B * NH * T * T];
    naive(&c, c.in_b, c.out_b, want, att);
    loss(&c);
    check_close("out", c.out, want, BT * C, 1e-5, 1e-4);
    check_close("att", c.a.att, att, B * NH * T * T, 1e-6, 1e-4);
    if (p > 0) {
        size_t dropped = 0;
        for (size_t i = 0; i < B * NH * T * T; i++) {
            float wd = c.a.att[i] * dropout_scale(p, c.seed, i);
            if (c.a.att_drop[i] != wd) fail_msg("att_drop[%zu] = %g, want %g", i, c.a.att_drop[i], wd);
            dropped += wd == 0.0f;
        }
        if (dropped == 0) fail_msg("p=%g dropped nothing", p);
    }
    /* without biases */
    naive(&c, NULL, NULL, want, att);
    c.w.in_proj_bias = c.w.out_proj_bias = NULL;
    loss(&c);
    check_close("out, no bias", c.out, want, BT * C, 1e-5, 1e-4);
    free(c.mem);
}

static void test_forward(void **state) { (void)state; check_forward(0.0f); }
static void test_forward_dropout(void **state) { (void)state; check_forward(0.3f); }

static void gradcheck(float p)
{
    struct ctx c;
    setup(&c, 2, p);
    loss(&c);
    float dinp[BT * C] = {0}, din_w[3 * C * C] = {0}, din_b[3 * C] = {0};
    float dout_w[C * C] = {0}, dout_b[C] = {0};
    struct attention_params dw = {din_w, din_b, dout_w, dout_b};
    struct attention_acts scratch;
    float *smem = tp_malloc(sizeof(float) * attention_acts_floats(B, T, C, NH, 0));
    attention_acts_point(&scratch, smem, B, T, C, NH, 0);
    attention_backward(dinp, &dw, &scratch, c.r, c.inp, &c.w, &c.a, B, T, C, NH, c.p, c.seed);
    gc_check("dinp", c.inp, dinp, BT * C, loss, &c, 1e-2f, 1e-2);
    gc_check("din_proj_weight", c.in_w, din_w, 3 * C * C, loss, &c, 1e-2f, 1e-2);
    gc_check("din_proj_bias", c.in_b, din_b, 3 * C, loss, &c, 1e-2f, 1e-2);
    gc_check("dout_proj_weight", c.out_w, dout_w, C * C, loss, &c, 1e-2f, 1e-2);
    gc_check("dout_proj_bias", c.out_b, dout_b, C, loss, &c, 1e-2f, 1e-2);
    /* dinp alone (weights' gradients skipped) gives the same dinp, added */
    float d2[BT * C];
    for (int i = 0; i < BT * C; i++) d2[i] = dinp[i];
    attention_backward(d2, NULL, &scratch, c.r, c.inp, &c.w, &c.a, B, T, C, NH, c.p, c.seed);
    for (int i = 0; i < BT * C; i++) d2[i] -= dinp[i];
    check_close("dinp again", d2, dinp, BT * C, 1e-6, 1e-5);
    free(smem);
    free(c.mem);
}

static void test_gradcheck(void **state) { (void)state; gradcheck(0.0f); }
static void test_gradcheck_dropout(void **state) { (void)state; gradcheck(0.3f); }

/* Sizes where the head loop and OpenBLAS both use the 2 threads. */
static void run_big(float *out, float *dinp, float *dw_mem, int Bb, int Tb, int Cb, int NHb)
{
    struct rng r;
    rng_seed(&r, 5);
    size_t n = (size_t)Bb * Tb * Cb, wn = 4 * (size_t)Cb * Cb + 4 * (size_t)Cb;
    float *x = tp_malloc(sizeof(float) * n), *wm = tp_malloc(sizeof(float) * wn);
    fill_uniform(&r, x, n, -1, 1);
    fill_uniform(&r, wm, wn, -0.1f, 0.1f);
    struct attention_params w = {wm, wm + 3 * Cb * Cb, wm + 3 * Cb * Cb + 3 * Cb, wm + 4 * Cb * Cb + 3 * Cb};
    struct attention_params dw = {dw_mem, dw_mem + 3 * Cb * Cb, dw_mem + 3 * Cb * Cb + 3 * Cb,
                                  dw_mem + 4 * Cb * Cb + 3 * Cb};
    struct attention_acts a, s;
    float *am = tp_malloc(sizeof(float) * attention_acts_floats(Bb, Tb, Cb, NHb, 1));
    float *sm = tp_malloc(sizeof(float) * attention_acts_floats(Bb, Tb, Cb, NHb, 0));
    attention_acts_point(&a, am, Bb, Tb, Cb, NHb, 1);
    attention_acts_point(&s, sm, Bb, Tb, Cb, NHb, 0);
    attention_forward(out, &a, x, &w, Bb, Tb, Cb, NHb, 0.1f, 3);
    memset(dinp, 0, sizeof(float) * n);
    memset(dw_mem, 0, sizeof(float) * wn);
    attention_backward(dinp, &dw, &s, out, x, &w, &a, Bb, Tb, Cb, NHb, 0.1f, 3);
    free(x), free(wm), free(am), free(sm);
}

static void test_deterministic(void **state)
{
    (void)state;
    enum { Bb = 3, Tb = 37, Cb = 96, NHb = 4 };
    size_t n = (size_t)Bb * Tb * Cb, wn = 4 * (size_t)Cb * Cb + 4 * (size_t)Cb;
    float *o1 = tp_malloc(sizeof(float) * n), *o2 = tp_malloc(sizeof(float) * n);
    float *d1 = tp_malloc(sizeof(float) * n), *d2 = tp_malloc(sizeof(float) * n);
    float *w1 = tp_malloc(sizeof(float) * wn), *w2 = tp_malloc(sizeof(float) * wn);
    tp_threads_set(2);
    run_big(o1, d1, w1, Bb, Tb, Cb, NHb);
    run_big(o2, d2, w2, Bb, Tb, Cb, NHb);
    assert_memory_equal(o1, o2, sizeof(float) * n);
    assert_memory_equal(d1, d2, sizeof(float) * n);
    assert_memory_equal(w1, w2, sizeof(float) * wn);
    free(o1), free(o2), free(d1), free(d2), free(w1), free(w2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_forward_dropout),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_gradcheck_dropout),
        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
