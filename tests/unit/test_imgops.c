/* test_imgops.c - image geometry on tiny hand-computed images: area and
 * bilinear resize, crop/pad offsets and values, flip, channel conversion,
 * patchify index layout and its inverse, and the seeded per-sample
 * pipeline (order of steps, determinism, flip rate). */
#include "test.h"
#include "imgops.h"

static void test_resize_area(void **state)
{
    (void)state;
    /* 4x4 -> 2x2: means of 2x2 blocks */
    const float x[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    const float want[4] = {3.5f, 5.5f, 11.5f, 13.5f};
    float out[16];
    img_resize_area(out, x, 1, 4, 4, 2, 2);
    check_close("area 4x4->2x2", out, want, 4, 1e-6, 0);
    /* 1x3 -> 1x2: each output covers 1.5 inputs: (a + b/2)/1.5, (b/2 + c)/1.5 */
    const float r[3] = {0.3f, 0.6f, 0.9f};
    const float wr[2] = {(0.3f + 0.3f) / 1.5f, (0.3f + 0.9f) / 1.5f};
    img_resize_area(out, r, 1, 1, 3, 1, 2);
    check_close("area 3->2", out, wr, 2, 1e-6, 0);
    /* 1x2 -> 1x4 (upsampling): a a b b */
    const float u[2] = {0.25f, 0.75f}, wu[4] = {0.25f, 0.25f, 0.75f, 0.75f};
    img_resize_area(out, u, 1, 1, 2, 1, 4);
    check_close("area 2->4", out, wu, 4, 1e-7, 0);
    /* a constant image stays constant for any sizes (weights sum to 1) */
    float c[7 * 5 * 2], o[3 * 4 * 2], w[3 * 4 * 2];
    for (int i = 0; i < 70; i++) c[i] = 0.3f;
    for (int i = 0; i < 24; i++) w[i] = 0.3f;
    img_resize_area(o, c, 2, 7, 5, 3, 4);
    check_close("area keeps constants", o, w, 24, 1e-6, 0);
}

static void test_resize_bilinear(void **state)
{
    (void)state;
    /* 1x2 -> 1x4 with half-pixel centres: sources -0.25(clamped), .25, .75, 1.25(clamped) */
    const float a = 0.2f, b = 0.6f, x[2] = {a, b};
    const float want[4] = {a, 0.75f * a + 0.25f * b, 0.25f * a + 0.75f * b, b};
    float out[16];
    img_resize_bilinear(out, x, 1, 1, 2, 1, 4);
    check_close("bilinear 2->4", out, want, 4, 1e-6, 0);
    /* 1x4 -> 1x2: sources 0.5 and 2.5, no antialiasing */
    const float y[4] = {0, 0.4f, 0.8f, 1}, wy[2] = {0.2f, 0.9f};
    img_resize_bilinear(out, y, 1, 1, 4, 1, 2);
    check_close("bilinear 4->2", out, wy, 2, 1e-6, 0);
    /* 2x2 -> 4x4 is separable: out[i][j] = sum wy[i][k] wx[j][l] x[k][l] */
    const float z[4] = {0, 1, 0.5f, 0.25f};
    const float w1[4][2] = {{1, 0}, {0.75f, 0.25f}, {0.25f, 0.75f}, {0, 1}};
    float wz[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            float s = 0;
            for (int k = 0; k < 2; k++)
                for (int l = 0; l < 2; l++) s += w1[i][k] * w1[j][l] * z[k * 2 + l];
            wz[i * 4 + j] = s;
        }
    img_resize_bilinear(out, z, 1, 2, 2, 4, 4);
    check_close("bilinear 2x2->4x4", out, wz, 16, 1e-6, 0);
}

static void test_crop_pad(void **state)
{
    (void)state;
    /* 2 channels of 3x3: crop the bottom-right 2x2 */
    float x[18], out[32];
    for (int i = 0; i < 18; i++) x[i] = (float)i;
    const float wc[8] = {4, 5, 7, 8, 13, 14, 16, 17};
    img_crop_pad(out, x, 2, 3, 3, 1, 1, 2, 2, -1);
    check_close("crop", out, wc, 8, 0, 0);
    /* pad one row above, one column left, to 4x4 (channel 0 only) */
    const float wp[16] = {-1, -1, -1, -1, -1, 0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8};
    img_crop_pad(out, x, 1, 3, 3, -1, -1, 4, 4, -1);
    check_close("pad", out, wp, 16, 0, 0);
    /* crop one axis, pad the other */
    const float wm[6] = {-1, 3, 4, -1, 6, 7};
    img_crop_pad(out, x, 1, 3, 3, 1, -1, 2, 3, -1);
    check_close("crop rows, pad columns", out, wm, 6, 0, 0);
    /* offsets: centre puts the smaller margin first, padding negative */
    assert_int_equal(img_crop_offset(28, 32, 0, 0), -2);
    assert_int_equal(img_crop_offset(29, 32, 0, 0), -1);
    assert_int_equal(img_crop_offset(35, 32, 0, 0), 1);
    assert_int_equal(img_crop_offset(32, 32, 1, 12345), 0);
    /* random: every position reachable, none outside */
    int seen[4] = {0};
    for (uint64_t u = 0; u < 64; u++) {
        int k = img_crop_offset(8, 5, 1, u * 0x9e3779b97f4a7c15ull);
        assert_true(k >= 0 && k <= 3);
        seen[k] = 1;
        int p = img_crop_offset(5, 8, 1, u * 0x9e3779b97f4a7c15ull);
        assert_true(p >= -3 && p <= 0);
    }
    assert_true(seen[0] && seen[1] && seen[2] && seen[3]);
}

static void test_flip_channels(void **state)
{
    (void)state;
    float x[6] = {1, 2, 3, 4, 5, 6};   /* 2 rows of 3 */
    const float wf[6] = {3, 2, 1, 6, 5, 4};
    img_flip_h(x, 1, 2, 3);
    check_close("flip odd width", x, wf, 6, 0, 0);
    float e[4] = {1, 2, 3, 4};
    const float we[4] = {2, 1, 4, 3};
    img_flip_h(e, 2, 1, 2);
    check_close("flip even width, 2 channels", e, we, 4, 0, 0);
    const float g[2] = {0.25f, 1};
    float rgb[6];
    const float wrgb[6] = {0.25f, 1, 0.25f, 1, 0.25f, 1};
    img_channels(rgb, 3, g, 1, 1, 2);
    check_close("gray to RGB", rgb, wrgb, 6, 0, 0);
    const float c[6] = {1, 0, 0, 1, 0, 0};   /* pixels red and green */
    float l[2];
    const float wl[2] = {IMG_LUMA_R, IMG_LUMA_G};
    img_channels(l, 1, c, 3, 1, 2);
    check_close("RGB to gray (luma)", l, wl, 2, 1e-7, 0);
}

static void test_patchify(void **state)
{
    (void)state;
    enum { B = 2, C = 3, H = 4, W = 6, P = 2, GW = W / P, N = (H / P) * GW, D = C * P * P };
    float x[B * C * H * W], p[B * N * D], back[B * C * H * W];
    struct rng r;
    rng_seed(&r, 5);
    fill_uniform(&r, x, B * C * H * W, 0, 1);
    img_patchify(p, x, B, C, H, W, P);
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++)
                for (int i = 0; i < P; i++)
                    for (int j = 0; j < P; j++) {
                        int py = n / GW, px = n % GW;
                        float want = x[((b * C + c) * H + py * P + i) * W + px * P + j];
                        float got = p[(b * N + n) * D + c * P * P + i * P + j];
                        if (got != want)
                            fail_msg("patch[%d,%d,%d] = %g, want image[%d,%d,%d,%d] = %g", b, n,
                                     c * P * P + i * P + j, got, b, c, py * P + i, px * P + j, want);
                    }
    img_unpatchify(back, p, B, C, H, W, P);
    check_close("unpatchify(patchify(x))", back, x, B * C * H * W, 0, 0);
}

static void test_augment(void **state)
{
    (void)state;
    /* 1x2x4 ramp, cover 2x2 by area resize -> 1x2 (aspect 2:4 kept), then pad to 2x2 */
    struct img im;
    img_alloc(&im, 1, 2, 4);
    const float x[8] = {0, 0.25f, 0.5f, 0.75f, 0, 0.25f, 0.5f, 0.75f};
    memcpy(im.data, x, sizeof x);
    struct img_aug a = {.out_h = 2, .out_w = 2, .resize = IMG_RESIZE_AREA};
    img_augment(&im, &a, 0, 0);
    /* resize covers 2x2: scale max(2/2, 2/4) = 1 -> stays 2x4; centre crop cols 1..2 */
    assert_int_equal(im.h, 2);
    assert_int_equal(im.w, 2);
    const float wc[4] = {0.25f, 0.5f, 0.25f, 0.5f};
    check_close("resize-cover then centre crop", im.data, wc, 4, 1e-7, 0);
    img_free(&im);

    /* 4x8 -> cover 2x2: scale 0.5 -> 2x4 area means, centre crop -> 2x2 */
    img_alloc(&im, 1, 4, 8);
    for (int i = 0; i < 32; i++) im.data[i] = (float)(i % 8);
    img_augment(&im, &a, 0, 0);
    const float wr[4] = {2.5f, 4.5f, 2.5f, 4.5f};
    check_close("downscale then crop", im.data, wr, 4, 1e-6, 0);
    img_free(&im);

    /* pad 2 then centre-crop/pad to 5x5 from 1x1: pad gives 5x5 already */
    img_alloc(&im, 1, 1, 1);
    im.data[0] = 1;
    struct img_aug p = {.out_h = 5, .out_w = 5, .pad = 2, .pad_value = 0};
    img_augment(&im, &p, 0, 0);
    assert_int_equal(im.h, 5);
    for (int i = 0; i < 25; i++) assert_float_equal(im.data[i], i == 12 ? 1 : 0, 0);
    img_free(&im);

    /* random crop and flip: a pure function of (seed, index) */
    struct img_aug rnd = {.out_h = 2, .out_w = 2, .crop_random = 1, .flip = 1};
    float first[4];
    int differs = 0, flips = 0;
    for (uint64_t idx = 0; idx < 40; idx++) {
        struct img u, v;
        img_alloc(&u, 1, 4, 4);
        img_alloc(&v, 1, 4, 4);
        for (int i = 0; i < 16; i++) u.data[i] = v.data[i] = (float)i;
        img_augment(&u, &rnd, 9, idx);
        img_augment(&v, &rnd, 9, idx);
        assert_memory_equal(u.data, v.data, 4 * sizeof(float));
        if (idx == 0) memcpy(first, u.data, sizeof first);
        else differs |= memcmp(first, u.data, sizeof first) != 0;
        flips += u.data[0] > u.data[1];   /* a crop of the ramp is decreasing only if flipped */
        img_free(&u);
        img_free(&v);
    }
    assert_true(differs);
    assert_true(flips > 8 && flips < 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_area),
        cmocka_unit_test(test_resize_bilinear),
        cmocka_unit_test(test_crop_pad),
        cmocka_unit_test(test_flip_channels),
        cmocka_unit_test(test_patchify),
        cmocka_unit_test(test_augment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
