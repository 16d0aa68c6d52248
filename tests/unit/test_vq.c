/* test_vq.c - vector quantizer: ties, chunked sgemm distances against a
 * naive double loop, lookup, usage statistics, the backward (straight-
 * through, commitment and codebook terms, L2 on and off) against finite
 * differences, upstream's VectorQuantizer in PyTorch, and bit-identical
 * repeated runs at 2 threads. */
#include "gradcheck.h"
#include "vq.h"

#include <omp.h>

/* ---- forward ------------------------------------------------------------- */

static void test_ties_lowest_index(void **state)
{
    (void)state;
    float cb[6] = {1, 0, -1, 0, 1, 0};   /* codes 0 and 2 are equal */
    float z[4] = {0, 0.5f, 0.9f, 0.1f};  /* row 0 equidistant from 0 and 1; row 1 nearest 0 == 2 */
    float zq[4];
    int32_t ids[2];
    vq_forward(zq, ids, z, cb, 2, 2, 3, 0);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 0);
    float want[4] = {1, 0, 1, 0};
    check_close("zq", zq, want, 4, 0, 0);
}

static void test_chunks_against_naive(void **state)
{
    (void)state;
    enum { N = 2 * VQ_CHUNK + 37, D = 6, K = 50 };
    struct rng g;
    rng_seed(&g, 21);
    float *z = tp_malloc(N * D * sizeof(float)), *cb = tp_malloc(K * D * sizeof(float));
    float *zq = tp_malloc(N * D * sizeof(float));
    int32_t *ids = tp_malloc(N * sizeof(int32_t));
    fill_uniform(&g, z, N * D, -1, 1);
    fill_uniform(&g, cb, K * D, -1, 1);
    for (int l2 = 0; l2 < 2; l2++) {
        double mse = vq_forward(zq, ids, z, cb, N, D, K, l2), want_mse = 0;
        int compared = 0;
        for (int n = 0; n < N; n++) {
            double zn[D], zz = 0, best = INFINITY, second = INFINITY, ebest[D];
            int arg = -1;
            for (int j = 0; j < D; j++) zz += (double)z[n * D + j] * z[n * D + j];
            for (int j = 0; j < D; j++) zn[j] = l2 ? z[n * D + j] / sqrt(zz) : z[n * D + j];
            for (int k = 0; k < K; k++) {
                double e[D], ee = 0, d = 0;
                for (int j = 0; j < D; j++) ee += (double)cb[k * D + j] * cb[k * D + j];
                for (int j = 0; j < D; j++) {
                    e[j] = l2 ? cb[k * D + j] / sqrt(ee) : cb[k * D + j];
                    d += (zn[j] - e[j]) * (zn[j] - e[j]);
                }
                if (d < best) {
                    second = best, best = d, arg = k;
                    memcpy(ebest, e, sizeof e);
                } else if (d < second) {
                    second = d;
                }
            }
            for (int j = 0; j < D; j++) want_mse += (ebest[j] - zn[j]) * (ebest[j] - zn[j]);
            if (second - best < 1e-4) continue;   /* float rounding may pick either */
            compared++;
            assert_int_equal(ids[n], arg);
            float ef[D];
            for (int j = 0; j < D; j++) ef[j] = (float)ebest[j];
            check_close("zq", zq + n * D, ef, D, 1e-6, 1e-6);
        }
        assert_true(compared > N - 5);
        assert_true(fabs(mse - want_mse / (N * D)) < 1e-6 * want_mse / (N * D));
    }
    free(z), free(cb), free(zq), free(ids);
}

static void test_lookup(void **state)
{
    (void)state;
    float cb[6] = {3, 4, 0, 2, 1, 0};
    int32_t ids[3] = {2, 0, 1};
    float out[6];
    assert_int_equal(vq_lookup(out, ids, cb, 3, 2, 3, 0), 0);
    float raw[6] = {1, 0, 3, 4, 0, 2};
    check_close("raw", out, raw, 6, 0, 0);
    assert_int_equal(vq_lookup(out, ids, cb, 3, 2, 3, 1), 0);
    float unit[6] = {1, 0, 0.6f, 0.8f, 0, 1};
    check_close("l2", out, unit, 6, 1e-7, 0);
    int32_t bad[2] = {1, 3};
    memset(out, 0, sizeof out);
    assert_int_equal(vq_lookup(out, bad, cb, 2, 2, 3, 0), -1);
    assert_non_null(strstr(tp_err(), "position 1: id 3"));
    assert_true(out[0] == 0 && out[1] == 0);
}

static void test_usage(void **state)
{
    (void)state;
    int32_t ids[4] = {0, 0, 1, 3};
    int64_t counts[4] = {0};
    vq_count(counts, ids, 4, 4);
    vq_count(counts, ids, 2, 4);   /* accumulates: two more 0s */
    assert_true(counts[0] == 4 && counts[1] == 1 && counts[2] == 0 && counts[3] == 1);
    struct vq_usage u;
    vq_usage_stats(&u, counts, 4);
    assert_int_equal(u.total, 6);
    assert_int_equal(u.used, 3);
    assert_int_equal(u.dead, 1);
    double p[3] = {4 / 6.0, 1 / 6.0, 1 / 6.0}, h = 0;
    for (int i = 0; i < 3; i++) h -= p[i] * log(p[i]);
    assert_true(fabs(u.perplexity - exp(h)) < 1e-12);
    int64_t none[3] = {0};
    vq_usage_stats(&u, none, 3);
    assert_true(u.perplexity == 0 && u.dead == 3);
}

/* ---- backward against finite differences ----------------------------------- */

struct vcase {
    int64_t N;
    int D, K, l2;
    float *z, *cb, *zq, *r;
    int32_t *ids;
    float cs, bs;   /* commit_scale, codebook_scale */
};

/* sum over rows of zn . r, zn the (normalised) z, in double */
static double zn_dot_r(const struct vcase *c)
{
    double s = 0;
    for (int64_t n = 0; n < c->N; n++) {
        const float *z = c->z + n * c->D;
        double nn = 0, d = 0;
        for (int j = 0; j < c->D; j++) nn += (double)z[j] * z[j];
        nn = c->l2 ? sqrt(nn) : 1.0;
        for (int j = 0; j < c->D; j++) d += z[j] / nn * c->r[n * c->D + j];
        s += d;
    }
    return s;
}

/* As a function of z: the commitment term and the straight-through path
 * (the codebook is a constant here). */
static double loss_z(void *ctx)
{
    struct vcase *c = ctx;
    double mse = vq_forward(c->zq, c->ids, c->z, c->cb, c->N, c->D, c->K, c->l2);
    return c->cs * mse + zn_dot_r(c);
}

/* As a function of the codebook: the codebook term (z is a constant). */
static double loss_cb(void *ctx)
{
    struct vcase *c = ctx;
    return c->bs * vq_forward(c->zq, c->ids, c->z, c->cb, c->N, c->D, c->K, c->l2);
}

static void gradcheck_l2(int l2)
{
    struct vcase c = {.N = 12, .D = 5, .K = 7, .l2 = l2, .cs = 0.75f, .bs = 1.5f};
    struct rng g;
    rng_seed(&g, 40 + l2);
    size_t nz = c.N * c.D, nc = c.K * c.D;
    c.z = tp_malloc(nz * sizeof(float));
    c.r = tp_malloc(nz * sizeof(float));
    c.zq = tp_malloc(nz * sizeof(float));
    c.cb = tp_malloc(nc * sizeof(float));
    c.ids = tp_malloc(c.N * sizeof(int32_t));
    fill_uniform(&g, c.z, nz, -1, 1);
    fill_uniform(&g, c.r, nz, -1, 1);
    fill_uniform(&g, c.cb, nc, -1, 1);
    float *dz = tp_calloc(nz, sizeof(float)), *dcb = tp_calloc(nc, sizeof(float));
    vq_forward(c.zq, c.ids, c.z, c.cb, c.N, c.D, c.K, l2);
    vq_backward(dz, dcb, c.r, c.z, c.cb, c.ids, c.N, c.D, c.K, l2, c.cs, c.bs);
    gc_check("dz", c.z, dz, nz, loss_z, &c, 1e-3f, 1e-2);
    gc_check("dcodebook", c.cb, dcb, nc, loss_cb, &c, 1e-3f, 1e-2);
    /* unused codes get no gradient */
    int64_t counts[7] = {0};
    vq_count(counts, c.ids, c.N, c.K);
    for (int k = 0; k < c.K; k++)
        if (!counts[k])
            for (int j = 0; j < c.D; j++) assert_true(dcb[k * c.D + j] == 0);
    /* backward accumulates, NULLs skip */
    float *dz2 = tp_calloc(nz, sizeof(float));
    memcpy(dz2, dz, nz * sizeof(float));
    vq_backward(dz2, NULL, c.r, c.z, c.cb, c.ids, c.N, c.D, c.K, l2, c.cs, c.bs);
    for (size_t i = 0; i < nz; i++) dz[i] *= 2;
    check_close("accumulated", dz2, dz, nz, 1e-7, 1e-6);
    free(c.z), free(c.r), free(c.zq), free(c.cb), free(c.ids), free(dz), free(dcb), free(dz2);
}

static void test_gradcheck_raw(void **state) { (void)state; gradcheck_l2(0); }
static void test_gradcheck_l2(void **state) { (void)state; gradcheck_l2(1); }

/* ---- PyTorch reference ---------------------------------------------------- */

static void ref_case(const char *name, int l2)
{
    struct st *s = ref_load(name);
    struct st_tensor *zt = st_require(s, "z", ST_F32, 2);
    struct st_tensor *et = st_require(s, "quantize.embedding.weight", ST_F32, 2);
    struct st_tensor *it = st_require(s, "ids", ST_I32, 1);
    assert_non_null(zt);
    assert_non_null(et);
    assert_non_null(it);
    int64_t N = zt->shape[0];
    int D = (int)zt->shape[1], K = (int)et->shape[0];
    double beta, qw;
    assert_int_equal(st_meta_get_double(s, "beta", &beta), 0);
    assert_int_equal(st_meta_get_double(s, "quantizer_weight", &qw), 0);
    float *zq = tp_malloc(N * D * sizeof(float));
    int32_t *ids = tp_malloc(N * sizeof(int32_t));
    double mse = vq_forward(zq, ids, zt->data, et->data, N, D, K, l2);
    assert_memory_equal(ids, it->data, N * sizeof(int32_t));
    check_close("zq", zq, ref_f32(s, "zq", N * D), N * D, 1e-6, 1e-6);
    float commit = (float)(beta * mse), cbl = (float)mse;
    check_close("commitment_loss", &commit, ref_f32(s, "commitment_loss", 1), 1, 0, 1e-5);
    check_close("codebook_loss", &cbl, ref_f32(s, "codebook_loss", 1), 1, 0, 1e-5);
    float *dz = tp_calloc(N * D, sizeof(float)), *dcb = tp_calloc(K * D, sizeof(float));
    vq_backward(dz, dcb, ref_f32(s, "dzq", N * D), zt->data, et->data, ids, N, D, K, l2,
                (float)(qw * beta), (float)qw);
    check_close("z.grad", dz, ref_f32(s, "z.grad", N * D), N * D, 1e-6, 1e-5);
    check_close("codebook.grad", dcb, ref_f32(s, "quantize.embedding.weight.grad", K * D),
                K * D, 1e-6, 1e-5);
    free(zq), free(ids), free(dz), free(dcb);
    st_free(s);
}

static void test_ref_l2(void **state) { (void)state; ref_case("vq_l2", 1); }
static void test_ref_raw(void **state) { (void)state; ref_case("vq_raw", 0); }

/* ---- determinism ------------------------------------------------------------ */

static void test_repeat_bit_identical(void **state)
{
    (void)state;
    enum { N = 700, D = 12, K = 300 };
    struct rng g;
    rng_seed(&g, 77);
    float *z = tp_malloc(N * D * sizeof(float)), *cb = tp_malloc(K * D * sizeof(float));
    float *r = tp_malloc(N * D * sizeof(float));
    fill_uniform(&g, z, N * D, -1, 1);
    fill_uniform(&g, cb, K * D, -1, 1);
    fill_uniform(&g, r, N * D, -1, 1);
    float *zq[2], *dz[2], *dcb[2];
    int32_t *ids[2];
    double mse[2];
    int keep = omp_get_max_threads();
    omp_set_num_threads(2);
    for (int k = 0; k < 2; k++) {
        zq[k] = tp_malloc(N * D * sizeof(float));
        ids[k] = tp_malloc(N * sizeof(int32_t));
        dz[k] = tp_calloc(N * D, sizeof(float));
        dcb[k] = tp_calloc(K * D, sizeof(float));
        mse[k] = vq_forward(zq[k], ids[k], z, cb, N, D, K, 1);
        vq_backward(dz[k], dcb[k], r, z, cb, ids[k], N, D, K, 1, 0.25f, 1.0f);
    }
    omp_set_num_threads(keep);
    assert_true(mse[0] == mse[1]);
    assert_memory_equal(ids[0], ids[1], N * sizeof(int32_t));
    assert_memory_equal(zq[0], zq[1], N * D * sizeof(float));
    assert_memory_equal(dz[0], dz[1], N * D * sizeof(float));
    assert_memory_equal(dcb[0], dcb[1], K * D * sizeof(float));
    for (int k = 0; k < 2; k++) free(zq[k]), free(ids[k]), free(dz[k]), free(dcb[k]);
    free(z), free(cb), free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ties_lowest_index),
        cmocka_unit_test(test_chunks_against_naive),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_gradcheck_raw),
        cmocka_unit_test(test_gradcheck_l2),
        cmocka_unit_test(test_ref_l2),
        cmocka_unit_test(test_ref_raw),
        cmocka_unit_test(test_repeat_bit_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
