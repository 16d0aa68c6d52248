/* test_conv2d.c - conv2d: SAME padding rule, backward against finite
 * differences on several configurations, the sgemm paths and the register
 * tiles (each vector width the CPU has) against the direct loops (including
 * chunked im2col), the PyTorch reference, and bit-identical results across
 * runs at 2 threads and across thread counts. */
#include "gradcheck.h"
#include "cli.h"
#include "conv2d.h"
#include "conv2d_tile.h"
#include "simd.h"

#include <cblas.h>
#include <omp.h>

struct conv_case {
    struct conv2d_shape s;
    float *x, *w, *b, *out, *r;   /* b NULL: no bias */
    float *dx, *dw, *db;
};

static struct conv_case case_new(struct conv2d_shape s, int bias, uint64_t seed)
{
    struct rng g;
    rng_seed(&g, seed);
    struct conv_case c = {.s = s};
    size_t ni = conv2d_inp_numel(&s), no = conv2d_out_numel(&s), nw = conv2d_weight_numel(&s);
    c.x = tp_malloc(ni * sizeof(float));
    c.w = tp_malloc(nw * sizeof(float));
    c.out = tp_malloc(no * sizeof(float));
    c.r = tp_malloc(no * sizeof(float));
    c.dx = tp_calloc(ni, sizeof(float));
    c.dw = tp_calloc(nw, sizeof(float));
    fill_uniform(&g, c.x, ni, -1, 1);
    fill_uniform(&g, c.w, nw, -0.5f, 0.5f);
    fill_uniform(&g, c.r, no, -1, 1);
    if (bias) {
        c.b = tp_malloc(s.OC * sizeof(float));
        c.db = tp_calloc(s.OC, sizeof(float));
        fill_uniform(&g, c.b, s.OC, -0.5f, 0.5f);
    }
    return c;
}

static void case_free(struct conv_case *c)
{
    free(c->x), free(c->w), free(c->b), free(c->out), free(c->r);
    free(c->dx), free(c->dw), free(c->db);
}

static double conv_loss(void *ctx)
{
    struct conv_case *c = ctx;
    conv2d_forward(c->out, c->x, c->w, c->b, &c->s);
    return gc_dot(c->out, c->r, conv2d_out_numel(&c->s));
}

static void gradcheck_shape(struct conv2d_shape s, int bias)
{
    struct conv_case c = case_new(s, bias, 7);
    conv2d_forward(c.out, c.x, c.w, c.b, &s);
    conv2d_backward(c.dx, c.dw, c.db, c.r, c.x, c.w, &s);
    gc_check("dinp", c.x, c.dx, conv2d_inp_numel(&s), conv_loss, &c, 1e-2f, 1e-3);
    gc_check("dweight", c.w, c.dw, conv2d_weight_numel(&s), conv_loss, &c, 1e-2f, 1e-3);
    if (bias) gc_check("dbias", c.b, c.db, s.OC, conv_loss, &c, 1e-2f, 1e-3);
    /* backward accumulates: a second call into the gradients doubles them */
    size_t ni = conv2d_inp_numel(&s), nw = conv2d_weight_numel(&s);
    float *acc = tp_malloc((ni > nw ? ni : nw) * sizeof(float));
    float *want = tp_malloc((ni > nw ? ni : nw) * sizeof(float));
    const float *got[3] = {c.dx, c.dw, c.db};
    size_t n[3] = {ni, nw, bias ? (size_t)s.OC : 0};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < n[k]; i++) acc[i] = got[k][i], want[i] = 2 * got[k][i];
        conv2d_backward(k == 0 ? acc : NULL, k == 1 ? acc : NULL, k == 2 && bias ? acc : NULL,
                        c.r, c.x, c.w, &s);
        check_close("accumulated", acc, want, n[k], 1e-6, 1e-5);
    }
    free(acc);
    free(want);
    case_free(&c);
}

static struct conv2d_shape shape_pad(int B, int C, int H, int W, int OC, int KH, int KW,
                                     int sh, int sw, int pt, int pb, int pl, int pr, int G)
{
    struct conv2d_shape s = {B, C, H, W, OC, KH, KW, sh, sw, pt, pb, pl, pr, G, 0, 0};
    conv2d_shape_finish(&s);
    return s;
}

static void test_same_pad(void **state)
{
    (void)state;
    static const int cases[][5] = {/* n, k, s, before, after */
                                   {7, 3, 1, 1, 1}, {8, 4, 2, 1, 1}, {7, 4, 2, 1, 2},
                                   {5, 1, 1, 0, 0}, {6, 5, 1, 2, 2}, {4, 2, 2, 0, 0},
                                   {5, 2, 2, 0, 1}, {16, 5, 1, 2, 2}, {1, 4, 2, 1, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int a, b;
        conv2d_same_pad(cases[i][0], cases[i][1], cases[i][2], &a, &b);
        if (a != cases[i][3] || b != cases[i][4])
            fail_msg("same_pad(n=%d,k=%d,s=%d) = (%d,%d), want (%d,%d)", cases[i][0],
                     cases[i][1], cases[i][2], a, b, cases[i][3], cases[i][4]);
    }
    struct conv2d_shape s = conv2d_shape_same(1, 2, 7, 9, 3, 4, 4, 2, 1);
    assert_int_equal(s.OH, 4); /* ceil(7/2) */
    assert_int_equal(s.OW, 5);
}

static void test_grad_same3_bias(void **state)
{
    (void)state;
    gradcheck_shape(conv2d_shape_same(2, 3, 5, 6, 4, 3, 3, 1, 1), 1);
}

static void test_grad_k4s2_asym(void **state)
{
    (void)state;
    gradcheck_shape(shape_pad(2, 3, 7, 8, 5, 4, 4, 2, 2, 1, 2, 0, 1, 1), 0);
}

static void test_grad_1x1(void **state)
{
    (void)state;
    gradcheck_shape(conv2d_shape_same(2, 5, 3, 4, 6, 1, 1, 1, 1), 1);   /* sgemm path */
    gradcheck_shape(conv2d_shape_same(2, 5, 3, 4, 6, 1, 1, 1, 1), 0);
    gradcheck_shape(shape_pad(1, 4, 5, 5, 3, 1, 1, 2, 2, 0, 0, 0, 0, 1), 1); /* strided 1x1 */
}

static void test_grad_depthwise(void **state)
{
    (void)state;
    gradcheck_shape(conv2d_shape_same(2, 4, 7, 6, 4, 3, 3, 2, 4), 1);
    gradcheck_shape(conv2d_shape_same(2, 3, 5, 5, 6, 4, 4, 2, 3), 0); /* multiplier 2 */
}

static void test_grad_groups(void **state)
{
    (void)state;
    gradcheck_shape(shape_pad(2, 4, 5, 6, 6, 3, 3, 1, 2, 1, 1, 0, 2, 2), 0);
    gradcheck_shape(shape_pad(1, 6, 4, 4, 3, 2, 3, 1, 1, 0, 1, 1, 1, 3), 1);
}

/* The dispatching forward/backward against the direct loops. */
static void compare_direct(struct conv2d_shape s, double tol)
{
    struct conv_case c = case_new(s, 1, 11);
    size_t ni = conv2d_inp_numel(&s), no = conv2d_out_numel(&s), nw = conv2d_weight_numel(&s);
    float *out2 = tp_malloc(no * sizeof(float));
    float *dx2 = tp_calloc(ni, sizeof(float)), *dw2 = tp_calloc(nw, sizeof(float));
    float *db2 = tp_calloc(s.OC, sizeof(float));
    /* accumulation: both start from the same non-zero gradient */
    for (size_t i = 0; i < ni; i++) c.dx[i] = dx2[i] = 0.25f;
    conv2d_forward(c.out, c.x, c.w, c.b, &s);
    conv2d_forward_direct(out2, c.x, c.w, c.b, &s);
    check_close("out", c.out, out2, no, tol, tol);
    conv2d_backward(c.dx, c.dw, c.db, c.r, c.x, c.w, &s);
    conv2d_backward_direct(dx2, dw2, db2, c.r, c.x, c.w, &s);
    check_close("dinp", c.dx, dx2, ni, tol, tol);
    check_close("dweight", c.dw, dw2, nw, tol, tol);
    check_close("dbias", c.db, db2, s.OC, tol, tol);
    free(out2), free(dx2), free(dw2), free(db2);
    case_free(&c);
}

static void test_paths_agree(void **state)
{
    (void)state;
    compare_direct(conv2d_shape_same(2, 8, 9, 7, 6, 3, 3, 1, 1), 1e-5);
    compare_direct(shape_pad(2, 5, 9, 8, 7, 4, 4, 2, 2, 1, 2, 0, 1, 1), 1e-5);
    compare_direct(conv2d_shape_same(3, 16, 5, 6, 12, 1, 1, 1, 1), 1e-5);
    compare_direct(shape_pad(2, 6, 7, 6, 4, 3, 3, 1, 2, 1, 1, 0, 2, 2), 1e-5);
    compare_direct(conv2d_shape_same(2, 1, 9, 8, 5, 3, 3, 1, 1), 1e-5); /* one input channel */
    /* stride 1: dinp as a convolution of dout, here with uneven pads, an
     * even kernel height and groups; and a pad of KH or more, where col2im
     * stays */
    compare_direct(shape_pad(3, 6, 7, 5, 4, 2, 3, 1, 1, 1, 0, 2, 0, 2), 1e-5);
    compare_direct(shape_pad(2, 3, 5, 5, 4, 3, 3, 1, 1, 3, 0, 0, 3, 1), 1e-5);
    /* K*P = 576 * 16384 > CONV2D_COL_FLOATS: three column chunks, the
     * boundaries falling inside output rows */
    struct conv2d_shape big = conv2d_shape_same(1, 64, 128, 128, 8, 3, 3, 1, 1);
    assert_true((size_t)64 * 9 * 128 * 128 > CONV2D_COL_FLOATS);
    simd_set_vl(0); /* the tiles off: im2col's chunks */
    compare_direct(big, 1e-4);
    simd_set_vl(-1);
    /* With AVX2 the tiles take it (OC 8, OW 128): each weight gradient is
     * one float sum over 16384 positions in order, against the oracle's
     * double: 6e-4 off at one of 4608 values */
    compare_direct(big, 2e-3);
}

/* The register tiles (conv2d_tile.c) at each vector width the CPU has, and
 * with them off (im2col) on the same shapes: OC of one, two and four
 * vectors (a tile's) and of an odd number of them, rows cut into uneven runs, uneven pads and
 * an even kernel, one image (its rows shared among threads), more taps
 * than a tile holds (5x5), dinp through the tiles (C a multiple of 16),
 * and shapes the channel tiles leave to im2col: fewer output channels than a vector,
 * fewer than CONV2D_TILE_K_MIN terms per output (one input channel).
 * With AVX2, rows of whole vectors (OW 8, 16, 24) take the position tiles:
 * channel blocks of 4 and a short last one (OC 1, 2, 3, 5, 6, 7), tiles of
 * 1 to 12 vectors across rows, one image (its tiles shared), K = 9; and
 * their weight gradients by position vectors where the channel tiles'
 * do not apply, taps in groups (5x5). */
static void test_tile_paths(void **state)
{
    (void)state;
    tp_threads_set(2);
    const struct conv2d_shape shapes[] = {
        conv2d_shape_same(2, 8, 9, 7, 32, 3, 3, 1, 1),
        conv2d_shape_same(3, 5, 6, 30, 16, 3, 3, 1, 1),
        shape_pad(2, 6, 7, 5, 48, 2, 3, 1, 1, 1, 0, 2, 0, 1),
        conv2d_shape_same(1, 4, 5, 13, 64, 3, 3, 1, 1),
        conv2d_shape_same(2, 3, 8, 8, 32, 5, 5, 1, 1),
        conv2d_shape_same(2, 16, 6, 6, 32, 3, 3, 1, 1),
        conv2d_shape_same(2, 64, 5, 7, 128, 3, 3, 1, 1), /* four vectors a tile: two blocks, dinp too */
        conv2d_shape_same(2, 1, 9, 8, 16, 3, 3, 1, 1),
        conv2d_shape_same(3, 32, 8, 11, 1, 3, 3, 1, 1), /* OC below a vector: im2col */
        shape_pad(1, 5, 6, 7, 3, 2, 3, 1, 1, 1, 0, 2, 0, 1),
        /* rows of whole AVX2 vectors */
        conv2d_shape_same(3, 32, 8, 16, 1, 3, 3, 1, 1),  /* one channel: 12-vector tiles */
        conv2d_shape_same(2, 6, 5, 24, 2, 3, 3, 1, 1),
        conv2d_shape_same(2, 7, 3, 8, 3, 3, 3, 1, 1),
        conv2d_shape_same(2, 9, 7, 16, 7, 3, 3, 1, 1),   /* a block of 4 and one of 3 */
        conv2d_shape_same(1, 10, 9, 8, 13, 3, 3, 1, 1),  /* one image: tiles shared */
        shape_pad(2, 4, 6, 8, 6, 2, 3, 1, 1, 1, 0, 2, 0, 1),
        conv2d_shape_same(2, 1, 8, 8, 5, 3, 3, 1, 1),    /* K = 9 */
        conv2d_shape_same(2, 3, 8, 16, 8, 5, 5, 1, 1),
        conv2d_shape_same(2, 4, 6, 8, 3, 5, 5, 1, 1),    /* dweight by positions: 25 taps, groups of 9, 8, 8 */
    };
    const int widths[] = {16, 8, 0};
    int ran = 0;
    for (int i = 0; i < 3; i++) {
        if (widths[i] > simd_cpu_vl()) continue;
        simd_set_vl(widths[i]);
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            const struct conv2d_shape *t = &shapes[k];
            const int vl = widths[i];
            const int channel = vl > 0 && t->OC % vl == 0 && t->C * t->KH * t->KW >= CONV2D_TILE_K_MIN;
            const int position = vl == 8 && t->OW % 8 == 0;
            assert_int_equal(conv2d_tile_applies(t), channel || position);
            assert_int_equal(conv2d_tile_dweight_applies(t), channel || position);
            compare_direct(shapes[k], 1e-5);
        }
        ran += widths[i] > 0;
    }
    simd_set_vl(-1);
    /* a stride of 2, or groups, never take the tiles */
    struct conv2d_shape ok = conv2d_shape_same(2, 32, 8, 8, 32, 3, 3, 1, 1);
    struct conv2d_shape strided = conv2d_shape_same(2, 32, 8, 8, 32, 3, 3, 2, 1);
    struct conv2d_shape grouped = conv2d_shape_same(2, 32, 8, 8, 32, 3, 3, 1, 2);
    assert_int_equal(conv2d_tile_applies(&ok), simd_cpu_vl() > 0);
    assert_false(conv2d_tile_applies(&strided));
    assert_false(conv2d_tile_applies(&grouped));
    assert_false(conv2d_tile_dweight_applies(&strided));
    print_message("tile widths tested: %d\n", ran);
}

/* At AVX2 the position tiles and the channel tiles sum each output in the
 * same order: the same bits where both apply (OW a multiple of 8 makes the
 * position tiles take it; OW 12 leaves it to the channel tiles, so the
 * comparison runs the same image content at two widths of padding). */
static void test_position_tiles_same_bits(void **state)
{
    (void)state;
    if (simd_cpu_vl() < 8) {
        print_message("no AVX2: skipped\n");
        return;
    }
    tp_threads_set(2);
    simd_set_vl(8);
    /* the left 8 columns of a 12-wide image, padded with zeros to its right,
     * convolved SAME: output columns 0..7 see the same inputs in both (the
     * wider image's columns 8..11 are zeros, as the narrower's padding) */
    struct conv2d_shape a = conv2d_shape_same(2, 16, 6, 8, 16, 3, 3, 1, 1);
    struct conv2d_shape b = conv2d_shape_same(2, 16, 6, 12, 16, 3, 3, 1, 1);
    assert_true(conv2d_tile_applies(&a) && conv2d_tile_applies(&b));
    struct rng r;
    rng_seed(&r, 5);
    float *xa = tp_calloc(conv2d_inp_numel(&a), sizeof(float)), *xb = tp_calloc(conv2d_inp_numel(&b), sizeof(float));
    float *w = tp_malloc(conv2d_weight_numel(&a) * sizeof(float));
    for (size_t i = 0; i < conv2d_weight_numel(&a); i++) w[i] = rng_uniform(&r) - 0.5f;
    for (int p = 0; p < a.B * a.C * a.H; p++)
        for (int x = 0; x < 8; x++) xa[(size_t)p * 8 + x] = xb[(size_t)p * 12 + x] = rng_uniform(&r) - 0.5f;
    float *oa = tp_malloc(conv2d_out_numel(&a) * sizeof(float)), *ob = tp_malloc(conv2d_out_numel(&b) * sizeof(float));
    conv2d_forward(oa, xa, w, NULL, &a);
    conv2d_forward(ob, xb, w, NULL, &b);
    for (int p = 0; p < a.B * a.OC * a.OH; p++)
        assert_memory_equal(oa + (size_t)p * 8, ob + (size_t)p * 12, 8 * sizeof(float));
    simd_set_vl(-1);
    free(xa), free(xb), free(w), free(oa), free(ob);
}

static void check_fixture(const char *name)
{
    struct st *f = ref_load(name);
    long v[15];
    static const char *keys[15] = {"B", "C", "H", "W", "OC", "KH", "KW", "stride_h", "stride_w",
                                   "pad_top", "pad_bottom", "pad_left", "pad_right", "groups", "bias"};
    for (int i = 0; i < 15; i++)
        if (st_meta_get_long(f, keys[i], &v[i])) fail_msg("%s: %s", name, tp_err());
    struct conv2d_shape s = shape_pad(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8],
                                      v[9], v[10], v[11], v[12], v[13]);
    size_t ni = conv2d_inp_numel(&s), no = conv2d_out_numel(&s), nw = conv2d_weight_numel(&s);
    float *x = ref_f32(f, "x", ni), *w = ref_f32(f, "weight", nw);
    float *b = v[14] ? ref_f32(f, "bias", s.OC) : NULL;
    float *out = tp_malloc(no * sizeof(float)), *dx = tp_calloc(ni, sizeof(float));
    float *dw = tp_calloc(nw, sizeof(float)), *db = tp_calloc(s.OC, sizeof(float));
    conv2d_forward(out, x, w, b, &s);
    check_close(name, out, ref_f32(f, "out", no), no, 1e-4, 1e-3);
    conv2d_backward(dx, dw, b ? db : NULL, ref_f32(f, "dout", no), x, w, &s);
    check_close("x.grad", dx, ref_f32(f, "x.grad", ni), ni, 1e-4, 1e-3);
    check_close("weight.grad", dw, ref_f32(f, "weight.grad", nw), nw, 1e-4, 1e-3);
    if (b) check_close("bias.grad", db, ref_f32(f, "bias.grad", s.OC), s.OC, 1e-4, 1e-3);
    free(out), free(dx), free(dw), free(db);
    st_free(f);
}

static void test_reference(void **state)
{
    (void)state;
    static const char *names[] = {"conv_same3", "conv_k4s2", "conv_1x1",
                                  "conv_dw", "conv_grp", "conv_same5"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) check_fixture(names[i]);
}

/* forward + backward of one shape into out/dx/dw/db (zeroed first) */
static void run_once(struct conv_case *c)
{
    size_t ni = conv2d_inp_numel(&c->s), nw = conv2d_weight_numel(&c->s);
    memset(c->dx, 0, ni * sizeof(float));
    memset(c->dw, 0, nw * sizeof(float));
    memset(c->db, 0, c->s.OC * sizeof(float));
    conv2d_forward(c->out, c->x, c->w, c->b, &c->s);
    conv2d_backward(c->dx, c->dw, c->db, c->r, c->x, c->w, &c->s);
}

/* a and b (the same case, run twice) gave the same bits; both freed */
static void assert_same_bits_and_free(struct conv_case *a, struct conv_case *b)
{
    const struct conv2d_shape *s = &a->s;
    assert_memory_equal(a->out, b->out, conv2d_out_numel(s) * sizeof(float));
    assert_memory_equal(a->dx, b->dx, conv2d_inp_numel(s) * sizeof(float));
    assert_memory_equal(a->dw, b->dw, conv2d_weight_numel(s) * sizeof(float));
    assert_memory_equal(a->db, b->db, s->OC * sizeof(float));
    case_free(a);
    case_free(b);
}

static void test_threads_deterministic(void **state)
{
    (void)state;
    tp_threads_set(2);
    struct conv2d_shape shapes[3] = {conv2d_shape_same(2, 32, 24, 20, 48, 3, 3, 1, 1),
                                     conv2d_shape_same(2, 48, 24, 20, 32, 1, 1, 1, 1),
                                     conv2d_shape_same(2, 32, 24, 20, 32, 4, 4, 2, 32)};
    for (int k = 0; k < 3; k++) {
        struct conv_case a = case_new(shapes[k], 1, 3), b = case_new(shapes[k], 1, 3);
        run_once(&a);
        run_once(&b);
        assert_same_bits_and_free(&a, &b);
    }
}

/* the im2col path and the tiles share images among threads, and sum the
 * weight gradient over fixed ranges of them: the same bits at any thread
 * count (the last shape: one image, its rows shared at 2 threads) */
static void test_threads_same_bits(void **state)
{
    (void)state;
    struct conv2d_shape shapes[4] = {conv2d_shape_same(5, 16, 12, 10, 24, 3, 3, 1, 1),
                                     conv2d_shape_same(11, 8, 12, 10, 16, 4, 4, 2, 2),
                                     conv2d_shape_same(5, 16, 12, 10, 32, 3, 3, 1, 1),
                                     conv2d_shape_same(1, 16, 12, 10, 32, 3, 3, 1, 1)};
    for (int k = 0; k < 4; k++) {
        struct conv_case a = case_new(shapes[k], 1, 5), b = case_new(shapes[k], 1, 5);
        tp_threads_set(1);
        run_once(&a);
        tp_threads_set(2);
        run_once(&b);
        assert_same_bits_and_free(&a, &b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_pad),
        cmocka_unit_test(test_grad_same3_bias),
        cmocka_unit_test(test_grad_k4s2_asym),
        cmocka_unit_test(test_grad_1x1),
        cmocka_unit_test(test_grad_depthwise),
        cmocka_unit_test(test_grad_groups),
        cmocka_unit_test(test_paths_agree),
        cmocka_unit_test(test_tile_paths),
        cmocka_unit_test(test_position_tiles_same_bits),
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_threads_deterministic),
        cmocka_unit_test(test_threads_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
