/* test_attention_tile.c - a head's products by tiles (attention_tile.h)
 * against direct loops in double, over T that leave every row and vector
 * remainder, with strided outputs whose entries past T must stay as they
 * were (the masked stores); the compact copies, the transposed one padded
 * with zeros; and attention's forward and backward with the tiles against
 * the sgemm heads, and its gradients against finite differences. Skipped
 * where the CPU has no AVX2. */
#include "test.h"
#include "gradcheck.h"

#include "attention.h"
#include "attention_tile.h"
#include "cli.h"
#include "rng.h"
#include "simd.h"

#define SENTINEL 12345.0f

/* the tiles on for the test (AVX2 width), or the test skipped */
static void tiles_on(void)
{
    if (simd_cpu_vl() < 8) skip();
    simd_set_vl(8);
}

/* out rows of stride ld >= n: the first n entries of row i compared with
 * want[i*n..], the rest must still be SENTINEL */
static void check_rows(const char *what, const float *out, int ld, const double *want, int rows, int n)
{
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < n; j++) {
            const double w = want[(size_t)i * n + j], g = out[(size_t)i * ld + j];
            if (fabs(g - w) > 1e-5 + 1e-5 * fabs(w)) fail_msg("%s[%d][%d] = %.9g, want %.9g", what, i, j, g, w);
        }
        for (int j = n; j < ld; j++)
            if (out[(size_t)i * ld + j] != SENTINEL) fail_msg("%s[%d][%d] written past %d", what, i, j, n);
    }
}

static float *filled(struct rng *r, size_t n, float lo, float hi)
{
    float *x = malloc(n * sizeof(float));
    fill_uniform(r, x, n, lo, hi);
    return x;
}

static void one_shape(int T, int HD)
{
    struct rng r;
    rng_seed(&r, (uint64_t)(T * 97 + HD));
    const int ld = 3 * HD + 5; /* strided sources, as qkv's rows */
    const int Tp = (T + 7) / 8 * 8, lds = T + 3, ldo = HD + 5;
    const size_t nout = (size_t)T * (lds > ldo ? lds : ldo);
    float *a = filled(&r, (size_t)T * ld, -1, 1), *b = filled(&r, (size_t)T * ld, -1, 1);
    float *p = filled(&r, (size_t)T * T, 0, 1);
    float *ac = malloc(sizeof(float) * T * HD), *bc = malloc(sizeof(float) * T * HD);
    float *bt = malloc(sizeof(float) * attention_tile_cols_floats(T, HD));
    float *out = malloc(sizeof(float) * nout);
    double *want = malloc(sizeof(double) * (size_t)T * (T > HD ? T : HD));
    assert_int_equal(attention_tile_cols_floats(T, HD), (size_t)HD * Tp);

    /* the copies */
    attention_tile_rows(ac, a, ld, T, HD);
    attention_tile_rows(bc, b, ld, T, HD);
    for (size_t i = 0; i < attention_tile_cols_floats(T, HD); i++) bt[i] = SENTINEL;
    attention_tile_cols(bt, b, ld, T, HD);
    for (int j = 0; j < T; j++)
        for (int d = 0; d < HD; d++) {
            assert_true(ac[j * HD + d] == a[(size_t)j * ld + d]);
            assert_true(bt[(size_t)d * Tp + j] == b[(size_t)j * ld + d]);
        }
    for (int d = 0; d < HD; d++)
        for (int j = T; j < Tp; j++) assert_true(bt[(size_t)d * Tp + j] == 0.0f);

    /* abt: 0.7 a b^T into rows of stride lds */
    for (size_t i = 0; i < nout; i++) out[i] = SENTINEL;
    attention_tile_abt(out, lds, ac, bt, T, HD, 0.7f);
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) {
            double s = 0;
            for (int d = 0; d < HD; d++) s += (double)a[(size_t)i * ld + d] * b[(size_t)j * ld + d];
            want[(size_t)i * T + j] = 0.7 * s;
        }
    check_rows("abt", out, lds, want, T, T);

    /* px and ptx: into rows of stride HD + 5 */
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < nout; i++) out[i] = SENTINEL;
        if (t == 0)
            attention_tile_px(out, ldo, p, bc, T, HD, -1.3f);
        else
            attention_tile_ptx(out, ldo, p, bc, T, HD, -1.3f);
        for (int i = 0; i < T; i++)
            for (int d = 0; d < HD; d++) {
                double s = 0;
                for (int j = 0; j < T; j++)
                    s += (double)(t == 0 ? p[(size_t)i * T + j] : p[(size_t)j * T + i]) * b[(size_t)j * ld + d];
                want[(size_t)i * HD + d] = -1.3 * s;
            }
        check_rows(t == 0 ? "px" : "ptx", out, ldo, want, T, HD);
    }
    free(a), free(b), free(p), free(ac), free(bc), free(bt), free(out), free(want);
}

static void test_products(void **state)
{
    (void)state;
    tiles_on();
    const int hds[] = {8, 16, 24, 64};
    for (int h = 0; h < 4; h++)
        for (int T = 1; T <= 19; T++) one_shape(T, hds[h]);
    one_shape(33, 64);
    one_shape(97, 64);
    one_shape(ATTENTION_TILE_TMAX, 32);
    simd_set_vl(-1);
}

static void test_applies(void **state)
{
    (void)state;
    tiles_on();
    assert_true(attention_tile_applies(97, 64));
    assert_true(attention_tile_applies(ATTENTION_TILE_TMAX, 8));
    assert_false(attention_tile_applies(ATTENTION_TILE_TMAX + 1, 64));
    assert_false(attention_tile_applies(33, 12)); /* HD not whole vectors */
    simd_set_vl(0);
    assert_false(attention_tile_applies(33, 64));
    simd_set_vl(-1);
}

/* ---- attention with the tiles ------------------------------------------------------- */

struct run {
    int B, T, C, NH;
    float p;
    float *x, *w, *out, *dinp, *dw, *am, *sm, *r;
    struct attention_params wp, dwp;
    struct attention_acts a, s;
};

static void run_new(struct run *u, int B, int T, int C, int NH, float p, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    const size_t n = (size_t)B * T * C, wn = 4 * (size_t)C * C + 4 * (size_t)C;
    memset(u, 0, sizeof *u);
    u->B = B, u->T = T, u->C = C, u->NH = NH, u->p = p;
    u->x = filled(&r, n, -1, 1), u->w = filled(&r, wn, -0.3f, 0.3f), u->r = filled(&r, n, -1, 1);
    u->out = malloc(n * sizeof(float)), u->dinp = malloc(n * sizeof(float)), u->dw = malloc(wn * sizeof(float));
    u->wp = (struct attention_params){u->w, u->w + 3 * C * C, u->w + 3 * C * C + 3 * C, u->w + 4 * C * C + 3 * C};
    u->dwp = (struct attention_params){u->dw, u->dw + 3 * C * C, u->dw + 3 * C * C + 3 * C, u->dw + 4 * C * C + 3 * C};
    u->am = malloc(sizeof(float) * attention_acts_floats(B, T, C, NH, p > 0));
    u->sm = malloc(sizeof(float) * attention_acts_floats(B, T, C, NH, 0));
    attention_acts_point(&u->a, u->am, B, T, C, NH, p > 0);
    attention_acts_point(&u->s, u->sm, B, T, C, NH, 0);
}

static void run_free(struct run *u)
{
    free(u->x), free(u->w), free(u->r), free(u->out), free(u->dinp), free(u->dw), free(u->am), free(u->sm);
}

static double run_loss(void *v)
{
    struct run *u = v;
    attention_forward(u->out, &u->a, u->x, &u->wp, u->B, u->T, u->C, u->NH, u->p, 9);
    return gc_dot(u->out, u->r, (size_t)u->B * u->T * u->C);
}

static void run_backward(struct run *u)
{
    const size_t n = (size_t)u->B * u->T * u->C, wn = 4 * (size_t)u->C * u->C + 4 * (size_t)u->C;
    run_loss(u);
    memset(u->dinp, 0, n * sizeof(float));
    memset(u->dw, 0, wn * sizeof(float));
    attention_backward(u->dinp, &u->dwp, &u->s, u->r, u->x, &u->wp, &u->a, u->B, u->T, u->C, u->NH, u->p, 9);
}

/* the tiles' forward and gradients against the sgemm heads' */
static void against_sgemm(int B, int T, int C, int NH, float p)
{
    struct run u;
    run_new(&u, B, T, C, NH, p, (uint64_t)(T + C));
    const size_t n = (size_t)B * T * C, wn = 4 * (size_t)C * C + 4 * (size_t)C, na = (size_t)B * NH * T * T;
    float *out = malloc(n * sizeof(float)), *dinp = malloc(n * sizeof(float)), *dw = malloc(wn * sizeof(float));
    float *att = malloc(na * sizeof(float));
    simd_set_vl(0);
    assert_false(attention_tile_applies(T, C / NH));
    run_backward(&u);
    memcpy(out, u.out, n * sizeof(float)), memcpy(dinp, u.dinp, n * sizeof(float));
    memcpy(dw, u.dw, wn * sizeof(float)), memcpy(att, u.a.att, na * sizeof(float));
    tiles_on();
    assert_true(attention_tile_applies(T, C / NH));
    run_backward(&u);
    check_close("att", u.a.att, att, na, 1e-6, 1e-4);
    check_close("out", u.out, out, n, 1e-5, 1e-4);
    check_close("dinp", u.dinp, dinp, n, 1e-5, 1e-4);
    check_close("dw", u.dw, dw, wn, 1e-4, 1e-4);
    simd_set_vl(-1);
    free(out), free(dinp), free(dw), free(att);
    run_free(&u);
}

static void test_against_sgemm(void **state)
{
    (void)state;
    tiles_on();
    tp_threads_set(2);
    against_sgemm(4, 33, 256, 4, 0.0f); /* MaskGIT's 1D tokens */
    against_sgemm(3, 97, 128, 2, 0.1f); /* TiTok's trunk, dropout on the probabilities */
    against_sgemm(2, 13, 48, 3, 0.0f);  /* HD 16, T leaving a part vector */
}

static void gradcheck(float p)
{
    tiles_on();
    struct run u;
    run_new(&u, 2, 11, 16, 2, p, 4); /* HD 8: one vector, T 11: a part one */
    assert_true(attention_tile_applies(11, 8));
    run_backward(&u);
    const int C = u.C;
    gc_check("dinp", u.x, u.dinp, (size_t)u.B * u.T * C, run_loss, &u, 1e-2f, 1e-2);
    gc_check("din_proj_weight", u.wp.in_proj_weight, u.dwp.in_proj_weight, 3 * C * C, run_loss, &u, 1e-2f, 1e-2);
    gc_check("dout_proj_weight", u.wp.out_proj_weight, u.dwp.out_proj_weight, C * C, run_loss, &u, 1e-2f, 1e-2);
    run_free(&u);
    simd_set_vl(-1);
}

static void test_gradcheck(void **state) { (void)state; gradcheck(0.0f); }
static void test_gradcheck_dropout(void **state) { (void)state; gradcheck(0.3f); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_products),
        cmocka_unit_test(test_applies),
        cmocka_unit_test(test_against_sgemm),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_gradcheck_dropout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
