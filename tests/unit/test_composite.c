/* test_composite.c - the blended composite of MaskGIT's editing: the blend
 * mask is exactly 1 deep inside the region and exactly 0 far from it, rises
 * monotonically across the seam as the discrete Gaussian's cumulative sum,
 * is symmetric about the region's edge, replicates the image border, is the
 * hard upsampled region at sigma 0 (rectangular grids too); the blend takes
 * the generated pixels where m = 1 and the input's where m = 0, bit for bit,
 * in every channel; the greyed input marks exactly the region's patches. */
#include "test.h"
#include "composite.h"

/* 64x64 image, 16x16 grid (4-pixel patches), tokens [4,12)^2 regenerated:
 * pixels [16,48)^2. */
#define S 64
#define G 16
static void centre_region(uint8_t *reg)
{
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) reg[i * G + j] = i >= 4 && i < 12 && j >= 4 && j < 12;
}

static void test_radius(void **state)
{
    (void)state;
    assert_int_equal(composite_radius(0), 0);
    assert_int_equal(composite_radius(0.5), 2);
    assert_int_equal(composite_radius(1), 3);
    assert_int_equal(composite_radius(3), 9);
}

static void test_mask_centre_far_seam(void **state)
{
    (void)state;
    uint8_t reg[G * G];
    centre_region(reg);
    static float m[S * S];
    const double sigma = 3; /* patch 4 - 1; window 9 */
    composite_mask(m, reg, G, G, S, S, sigma);
    /* exact 1 where the 19x19 window is inside, exact 0 where it misses */
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int in = y >= 16 + 9 && y < 48 - 9 && x >= 16 + 9 && x < 48 - 9;
            int out = y < 16 - 9 || y >= 48 + 9 || x < 16 - 9 || x >= 48 + 9;
            if (in) assert_true(m[y * S + x] == 1.0f);
            if (out) assert_true(m[y * S + x] == 0.0f);
            assert_true(m[y * S + x] >= 0.0f && m[y * S + x] <= 1.0f);
        }
    /* row 32 crosses a straight edge at x = 16 (the column window is all
     * inside): m(x) = sum of the weights w_k with x + k >= 16 */
    double w[19], sum = 0;
    for (int k = -9; k <= 9; k++) sum += w[k + 9] = exp(-(double)k * k / (2 * sigma * sigma));
    float want[33], got[33];
    for (int x = 0; x <= 32; x++) {
        double a = 0;
        for (int k = -9; k <= 9; k++) a += x + k >= 16 ? w[k + 9] / sum : 0;
        want[x] = (float)a;
        got[x] = m[32 * S + x];
    }
    check_close("seam of row 32", got, want, 33, 1e-6, 0);
    /* monotone across the seam, strictly inside it */
    for (int x = 1; x <= 32; x++) assert_true(got[x] >= got[x - 1]);
    for (int x = 8; x <= 24; x++) assert_true(got[x] > got[x - 1]);
    /* symmetric about the edge between pixels 15 and 16 */
    for (int d = 0; d < 10; d++) assert_true(fabs(got[16 + d] + got[15 - d] - 1.0) < 1e-6);
    /* and the same along the columns and the other edges */
    for (int x = 0; x < S; x++) {
        assert_true(fabs(m[x * S + 32] - m[32 * S + x]) < 1e-7);
        assert_true(fabs(m[32 * S + x] - m[32 * S + (S - 1 - x)]) < 1e-7);
    }
}

static void test_mask_border_replicated(void **state)
{
    (void)state;
    /* outpainting-like: the top four token rows (pixels 0..15) regenerated;
     * the border replicates, so row 0 is 1 (zero padding would halve it) */
    uint8_t reg[G * G];
    for (int i = 0; i < G * G; i++) reg[i] = i < 4 * G;
    static float m[S * S];
    composite_mask(m, reg, G, G, S, S, 3);
    for (int x = 0; x < S; x++) {
        assert_true(m[x] == 1.0f);
        assert_true(m[6 * S + x] == 1.0f);          /* window rows 0..15 */
        assert_true(m[7 * S + x] < 1.0f);           /* reaches row 16 */
        assert_true(m[25 * S + x] == 0.0f);         /* window rows 16..34 */
        assert_true(fabs(m[15 * S + x] + m[16 * S + x] - 1.0) < 1e-6);
    }
}

static void test_mask_hard_rectangular(void **state)
{
    (void)state;
    /* a 2x4 grid on a 4x16 image: patches 2 high, 4 wide; sigma 0 = the
     * upsampled region itself */
    const uint8_t reg[8] = {1, 0, 0, 1, 0, 1, 0, 0};
    float m[64];
    composite_mask(m, reg, 2, 4, 4, 16, 0);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 16; x++) assert_true(m[y * 16 + x] == (float)reg[(y / 2) * 4 + x / 4]);
}

static void test_blend(void **state)
{
    (void)state;
    uint8_t reg[G * G];
    centre_region(reg);
    static float m[S * S], in[3 * S * S], gen[3 * S * S], out[3 * S * S];
    composite_mask(m, reg, G, G, S, S, 3);
    struct rng r;
    rng_seed(&r, 5);
    fill_uniform(&r, in, 3 * S * S, 0, 1);
    fill_uniform(&r, gen, 3 * S * S, 0, 1);
    composite_blend(out, in, gen, m, 3, S, S);
    int inner = 0, outer = 0, seam = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < S * S; i++) {
            float o = out[c * S * S + i], a = in[c * S * S + i], b = gen[c * S * S + i];
            if (m[i] == 1.0f) assert_true(o == b), inner++;
            else if (m[i] == 0.0f) assert_true(o == a), outer++;
            else {
                assert_true(fabs(o - (b * m[i] + a * (1 - m[i]))) < 1e-6);
                assert_true(o >= fminf(a, b) - 1e-6f && o <= fmaxf(a, b) + 1e-6f);
                seam++;
            }
        }
    assert_true(inner > 0 && outer > 0 && seam > 0);
    /* out may alias gen */
    static float g2[3 * S * S];
    memcpy(g2, gen, sizeof g2);
    composite_blend(g2, in, g2, m, 3, S, S);
    assert_memory_equal(g2, out, sizeof out);
}

static void test_grey(void **state)
{
    (void)state;
    const uint8_t reg[4] = {0, 1, 0, 0}; /* 2x2 grid on 4x4: the top right patch */
    float in[2 * 16], out[2 * 16];
    for (int i = 0; i < 32; i++) in[i] = (float)i / 32;
    composite_grey(out, in, reg, 2, 2, 2, 4, 4, 0.5f);
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++) {
                int j = (c * 4 + y) * 4 + x;
                assert_true(out[j] == (y < 2 && x >= 2 ? 0.5f : in[j]));
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_radius),
        cmocka_unit_test(test_mask_centre_far_seam),
        cmocka_unit_test(test_mask_border_replicated),
        cmocka_unit_test(test_mask_hard_rectangular),
        cmocka_unit_test(test_blend),
        cmocka_unit_test(test_grey),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
