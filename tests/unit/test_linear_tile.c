/* test_linear_tile.c - the tile kernel's product against direct loops in
 * double, at every vector width the CPU has, over row counts that leave
 * every tile remainder, with and without bias, residual and GELU; the
 * residual read from out itself; the transposed pack of the input
 * gradients; and a chunk's rows giving the bits of the whole batch's. */
#include "test.h"
#include "act.h"
#include "linear_tile.h"
#include "rng.h"
#include "simd.h"

/* want = act(x W^T + bias + add) in double, then rounded */
static void direct(float *want, const float *x, const float *w, const float *bias, const float *add, int BT, int C,
                   int OC, enum linear_tile_act act)
{
    for (int r = 0; r < BT; r++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) s += (double)x[(size_t)r * C + c] * w[(size_t)o * C + c];
            if (add) s += add[(size_t)r * OC + o];
            float f = (float)s;
            want[(size_t)r * OC + o] = act == LINEAR_TILE_GELU ? act_gelu(f) : act == LINEAR_TILE_GELU_TANH ? act_gelu_tanh(f) : f;
        }
}

static void one_shape(int BT, int C, int OC, int with_bias, int with_add, enum linear_tile_act act)
{
    struct rng r;
    rng_seed(&r, (uint64_t)(BT * 131 + C * 7 + OC));
    size_t nx = (size_t)BT * C, nw = (size_t)OC * C, no = (size_t)BT * OC;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *packed = malloc(nw * 4), *bias = malloc((size_t)OC * 4);
    float *add = malloc(no * 4), *out = malloc(no * 4), *want = malloc(no * 4);
    fill_uniform(&r, x, nx, -1, 1);
    fill_uniform(&r, w, nw, -0.2f, 0.2f);
    fill_uniform(&r, bias, OC, -1, 1);
    fill_uniform(&r, add, no, -2, 2);
    assert_int_equal(linear_tile_packed_floats(C, OC), nw);
    linear_tile_pack(packed, w, C, OC);
    direct(want, x, w, with_bias ? bias : NULL, with_add ? add : NULL, BT, C, OC, act);
    linear_tile_forward(out, x, packed, with_bias ? bias : NULL, with_add ? add : NULL, BT, C, OC, act);
    /* float sums of C terms of size up to 0.2 against double: C ulps of the
     * partial sums at most, far less in practice */
    check_close("tile", out, want, no, 2e-6 * C, 1e-5);
    if (with_add) { /* the residual read from out itself, as the blocks do */
        memcpy(out, add, no * 4);
        linear_tile_forward(out, x, packed, with_bias ? bias : NULL, out, BT, C, OC, act);
        check_close("tile, add in place", out, want, no, 2e-6 * C, 1e-5);
    }
    free(x), free(w), free(packed), free(bias), free(add), free(out), free(want);
}

/* fn at each vector width the CPU has a kernel for; skipped where none */
static void at_each_width(void (*fn)(void))
{
    const int widths[] = {16, 8};
    int ran = 0;
    for (int i = 0; i < 2; i++) {
        if (widths[i] > simd_cpu_vl()) continue;
        simd_set_vl(widths[i]);
        fn();
        ran++;
    }
    simd_set_vl(-1);
    if (!ran) skip();
}

static void shapes(void)
{
    for (int bt = 1; bt <= 13; bt++) one_shape(bt, 32, 64, 1, 0, LINEAR_TILE_NONE);
    one_shape(33, 256, 192, 1, 1, LINEAR_TILE_NONE);
    one_shape(35, 96, 128, 0, 0, LINEAR_TILE_NONE);
    one_shape(17, 64, 256, 1, 0, LINEAR_TILE_GELU);
    one_shape(19, 64, 64, 1, 1, LINEAR_TILE_GELU_TANH);
    one_shape(7, 1024, 64, 1, 1, LINEAR_TILE_NONE);
}

static void test_shapes(void **state)
{
    (void)state;
    at_each_width(shapes);
}

/* The transposed pack: dinp += dout W (a layer's input gradient, W
 * [OC,C]) against direct loops in double, adding onto dinp in place, over
 * row counts that leave every tile remainder; and the pack itself: panel p,
 * row k is W's row k at columns p*PW.. */
static void one_transposed(int BT, int C, int OC)
{
    struct rng r;
    rng_seed(&r, (uint64_t)(BT * 31 + C + OC));
    const size_t nd = (size_t)BT * OC, nw = (size_t)OC * C, ni = (size_t)BT * C;
    float *dout = malloc(nd * 4), *w = malloc(nw * 4), *packed = malloc(nw * 4);
    float *dinp = malloc(ni * 4), *want = malloc(ni * 4);
    fill_uniform(&r, dout, nd, -1, 1);
    fill_uniform(&r, w, nw, -0.2f, 0.2f);
    fill_uniform(&r, dinp, ni, -2, 2);
    for (int i = 0; i < BT; i++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int o = 0; o < OC; o++) s += (double)dout[(size_t)i * OC + o] * w[(size_t)o * C + c];
            want[(size_t)i * C + c] = (float)(s + dinp[(size_t)i * C + c]);
        }
    assert_int_equal(linear_tile_packed_floats(OC, C), nw);
    linear_tile_pack_t(packed, w, C, OC);
    const int pw = simd_vl() == 16 ? 64 : 16;
    for (int p = 0; p < C / pw; p++)
        for (int k = 0; k < OC; k += 7)
            assert_memory_equal(packed + ((size_t)p * OC + k) * pw, w + (size_t)k * C + (size_t)p * pw, pw * 4);
    linear_tile_forward(dinp, dout, packed, NULL, dinp, BT, OC, C, LINEAR_TILE_NONE);
    check_close("transposed", dinp, want, ni, 2e-6 * OC, 1e-5);
    free(dout), free(w), free(packed), free(dinp), free(want);
}

static void transposed(void)
{
    for (int bt = 1; bt <= 7; bt++) one_transposed(bt, 64, 48);
    one_transposed(33, 256, 768); /* qkv's input gradient at maskgit-tiny's width */
    one_transposed(13, 1024, 256);
}

static void test_transposed(void **state)
{
    (void)state;
    at_each_width(transposed);
}

/* rows are independent: a chunk of the batch gives the bits of its rows in
 * the whole batch's product */
static void test_chunk_bits(void **state)
{
    (void)state;
    if (!simd_cpu_vl()) skip();
    enum { BT = 66, C = 128, OC = 128 };
    static float x[BT * C], w[OC * C], packed[OC * C], bias[OC], whole[BT * OC], part[BT * OC];
    struct rng r;
    rng_seed(&r, 3);
    fill_uniform(&r, x, BT * C, -1, 1);
    fill_uniform(&r, w, OC * C, -0.1f, 0.1f);
    fill_uniform(&r, bias, OC, -1, 1);
    linear_tile_pack(packed, w, C, OC);
    linear_tile_forward(whole, x, packed, bias, NULL, BT, C, OC, LINEAR_TILE_GELU);
    linear_tile_forward(part, x, packed, bias, NULL, 29, C, OC, LINEAR_TILE_GELU);
    linear_tile_forward(part + 29 * OC, x + 29 * C, packed, bias, NULL, BT - 29, C, OC, LINEAR_TILE_GELU);
    assert_memory_equal(part, whole, sizeof whole);
}

static void test_applies(void **state)
{
    (void)state;
    int vl = simd_cpu_vl();
    assert_int_equal(linear_tile_packed_floats(256, 768), vl ? (size_t)256 * 768 : 0);
    assert_int_equal(linear_tile_packed_floats(256, 72), 0); /* not a multiple of any panel */
    if (vl == 16) assert_int_equal(linear_tile_packed_floats(256, 48), 0); /* of AVX2's, not AVX-512's */
    simd_set_vl(0);
    assert_int_equal(linear_tile_packed_floats(256, 768), 0);
    simd_set_vl(-1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_transposed),
        cmocka_unit_test(test_chunk_bits),
        cmocka_unit_test(test_applies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
