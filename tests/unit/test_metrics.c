/* test_metrics.c - PSNR and SSIM: exact hand cases and an independent
 * numpy computation on random images. */
#include "test.h"
#include "metrics.h"

static void test_hand_cases(void **state)
{
    (void)state;
    enum { N = 2 * 1 * 12 * 12 };
    float t[N], p[N];
    for (int i = 0; i < N; i++) t[i] = 0.25f + 0.5f * (float)(i % 7) / 7, p[i] = t[i];
    assert_true(metric_psnr(p, t, 2, 1, 12, 12) == 100);
    assert_true(fabs(metric_ssim(p, t, 2, 1, 12, 12) - 1) < 1e-12);
    for (int i = 0; i < N; i++) p[i] = t[i] + 0.1f;
    assert_true(fabs(metric_psnr(p, t, 2, 1, 12, 12) - 20) < 1e-5); /* mse 0.01 */
    /* constant planes: SSIM = (2ab + C1) / (a^2 + b^2 + C1) */
    for (int i = 0; i < N; i++) t[i] = 0.3f, p[i] = 0.6f;
    double a = 0.6f, b = 0.3f, c1 = 1e-4;
    assert_true(fabs(metric_ssim(p, t, 2, 1, 12, 12) - (2 * a * b + c1) / (a * a + b * b + c1)) < 1e-9);
    /* predictions are clamped: 1.7 counts as 1 */
    for (int i = 0; i < N; i++) t[i] = 1, p[i] = 1.7f;
    assert_true(metric_psnr(p, t, 2, 1, 12, 12) == 100);
}

static void test_against_numpy(void **state)
{
    (void)state;
    struct st *s = ref_load("metrics");
    struct st_tensor *p = st_require(s, "pred", ST_F32, 4);
    assert_non_null(p);
    int B = (int)p->shape[0], C = (int)p->shape[1], H = (int)p->shape[2], W = (int)p->shape[3];
    const float *t = ref_f32(s, "target", (size_t)B * C * H * W);
    const double *psnr = st_require(s, "psnr", ST_F64, 1)->data, *ssim = st_require(s, "ssim", ST_F64, 1)->data;
    double gp = metric_psnr(p->data, t, B, C, H, W), gs = metric_ssim(p->data, t, B, C, H, W);
    if (fabs(gp - psnr[0]) > 1e-4 || fabs(gs - ssim[0]) > 1e-5)
        fail_msg("psnr %.8f want %.8f, ssim %.8f want %.8f", gp, psnr[0], gs, ssim[0]);
    st_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_cases),
        cmocka_unit_test(test_against_numpy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
