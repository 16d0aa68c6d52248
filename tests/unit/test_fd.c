/* test_fd.c - feature statistics and the Frechet distance (lib/fd.c):
 * means, covariances and the distance against numpy (tests/reference/
 * ref_classifier.py's fd fixture, whose distance comes from the general
 * eigenvalues of S1 S2, not our symmetric route); the statistics do not
 * depend on how the rows are batched; FD(X, X) = 0; the closed form for
 * diagonal covariances; a file round trip; errors. */
#include "test.h"

#include "fd.h"

/* Statistics of x [n,D] added in batches of `batch` rows. */
static void stats_of(struct fd_stats *s, const float *x, int n, int D, int batch)
{
    fd_stats_init(s);
    for (int i = 0; i < n; i += batch) {
        int b = n - i < batch ? n - i : batch;
        assert_int_equal(fd_stats_add(s, x + (size_t)i * D, b, D), 0);
    }
    assert_int_equal(s->n, n);
}

static void check_close_d(const char *what, const double *got, const double *want, size_t n, double tol)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i]))))
            fail_msg("%s[%zu]: got %.12g want %.12g", what, i, got[i], want[i]);
}

static double *f64(struct st *s, const char *name)
{
    struct st_tensor *t = st_require(s, name, ST_F64, -1);
    if (!t) fail_msg("%s", tp_err());
    return t->data;
}

static void test_ref(void **state)
{
    (void)state;
    struct st *s = ref_load("fd");
    struct st_tensor *x1 = st_require(s, "x1", ST_F32, 2), *x2 = st_require(s, "x2", ST_F32, 2);
    assert_non_null(x1);
    assert_non_null(x2);
    int D = (int)x1->shape[1];
    double want;
    assert_int_equal(st_meta_get_double(s, "fd", &want), 0);
    struct fd_stats a, b;
    stats_of(&a, x1->data, (int)x1->shape[0], D, 64);
    stats_of(&b, x2->data, (int)x2->shape[0], D, 37);
    double *mu1 = tp_malloc(D * sizeof(double)), *s1 = tp_malloc((size_t)D * D * sizeof(double));
    double *mu2 = tp_malloc(D * sizeof(double)), *s2 = tp_malloc((size_t)D * D * sizeof(double));
    assert_int_equal(fd_stats_moments(&a, mu1, s1), 0);
    assert_int_equal(fd_stats_moments(&b, mu2, s2), 0);
    check_close_d("mu1", mu1, f64(s, "mu1"), D, 1e-12);
    check_close_d("sigma1", s1, f64(s, "sigma1"), (size_t)D * D, 1e-11);
    check_close_d("mu2", mu2, f64(s, "mu2"), D, 1e-12);
    check_close_d("sigma2", s2, f64(s, "sigma2"), (size_t)D * D, 1e-11);
    double fd = fd_distance(mu1, s1, mu2, s2, D);
    printf("fd %.12g numpy %.12g\n", fd, want);
    assert_true(fabs(fd - want) <= 1e-9 * want);
    /* symmetric in its arguments */
    assert_true(fabs(fd_distance(mu2, s2, mu1, s1, D) - want) <= 1e-9 * want);
    free(mu1), free(s1), free(mu2), free(s2);
    fd_stats_free(&a);
    fd_stats_free(&b);
    st_free(s);
}

/* Random rows with a large common offset: the batched merge keeps the
 * digits that one batch's two-pass statistics have. */
static void test_batching(void **state)
{
    (void)state;
    int n = 1000, D = 9;
    float *x = tp_malloc((size_t)n * D * sizeof(float));
    struct rng r;
    rng_seed(&r, 4);
    fill_uniform(&r, x, (size_t)n * D, 1000.0f, 1001.0f);
    struct fd_stats one, many, ones;
    stats_of(&one, x, n, D, n);
    stats_of(&many, x, n, D, 7);
    stats_of(&ones, x, n, D, 1);
    check_close_d("mean (batches of 7)", many.mean, one.mean, D, 1e-13);
    check_close_d("m2 (batches of 7)", many.m2, one.m2, (size_t)D * D, 1e-10);
    check_close_d("m2 (rows one by one)", ones.m2, one.m2, (size_t)D * D, 1e-10);
    /* the variance of U(0,1) is 1/12 */
    for (int d = 0; d < D; d++) assert_true(fabs(one.m2[d * D + d] / (n - 1) - 1.0 / 12) < 0.015);
    fd_stats_free(&one), fd_stats_free(&many), fd_stats_free(&ones);
    free(x);
}

static void test_same(void **state)
{
    (void)state;
    int n = 400, D = 32;
    float *x = tp_malloc((size_t)n * D * sizeof(float));
    struct rng r;
    rng_seed(&r, 8);
    fill_uniform(&r, x, (size_t)n * D, -3, 3);
    struct fd_stats s;
    stats_of(&s, x, n, D, 100);
    double *mu = tp_malloc(D * sizeof(double)), *sg = tp_malloc((size_t)D * D * sizeof(double));
    assert_int_equal(fd_stats_moments(&s, mu, sg), 0);
    double fd = fd_distance(mu, sg, mu, sg, D);
    assert_true(fd >= 0 && fd < 1e-9);
    /* a shift of the mean by v adds |v|^2 and nothing else */
    double *mu2 = tp_malloc(D * sizeof(double));
    for (int d = 0; d < D; d++) mu2[d] = mu[d] + (d % 2 ? 0.5 : -0.25);
    double want = D / 2 * (0.25 + 0.0625);
    assert_true(fabs(fd_distance(mu, sg, mu2, sg, D) - want) < 1e-9);
    free(mu), free(mu2), free(sg), free(x);
    fd_stats_free(&s);
}

/* Diagonal covariances a, b: FD = |mu1-mu2|^2 + sum (sqrt a_i - sqrt b_i)^2;
 * and a rank-deficient one (a zero variance) is still fine. */
static void test_diagonal(void **state)
{
    (void)state;
    int D = 6;
    double mu1[6] = {0, 1, 2, 3, 4, 5}, mu2[6] = {1, 1, 1, 1, 1, 1}, a[6] = {1, 4, 0.25, 9, 2, 0},
           b[6] = {4, 1, 1, 9, 0.5, 3};
    double s1[36] = {0}, s2[36] = {0}, want = 0;
    for (int i = 0; i < D; i++) {
        s1[i * D + i] = a[i], s2[i * D + i] = b[i];
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(a[i]) - sqrt(b[i])) * (sqrt(a[i]) - sqrt(b[i]));
    }
    double fd = fd_distance(mu1, s1, mu2, s2, D);
    printf("diagonal: fd %.15g closed form %.15g\n", fd, want);
    assert_true(fabs(fd - want) < 1e-10 * want);
}

static void test_file(void **state)
{
    (void)state;
    int n = 50, D = 5;
    float x[250];
    struct rng r;
    rng_seed(&r, 3);
    fill_uniform(&r, x, (size_t)n * D, 0, 1);
    struct fd_stats s;
    stats_of(&s, x, n, D, 16);
    char path[128];
    snprintf(path, sizeof path, "%s/s.safetensors", tmpdir);
    struct st *meta = st_new();
    st_meta_set(meta, "field", "features");
    assert_int_equal(fd_stats_save(&s, path, meta), 0);
    st_free(meta);
    struct fd_ref ref;
    assert_int_equal(fd_ref_load(&ref, path), 0);
    assert_int_equal(ref.D, D);
    assert_int_equal(ref.n, n);
    double mu[5], sg[25];
    assert_int_equal(fd_stats_moments(&s, mu, sg), 0);
    assert_memory_equal(ref.mu, mu, sizeof mu);
    assert_memory_equal(ref.sigma, sg, sizeof sg);
    fd_ref_free(&ref);
    fd_stats_free(&s);
    /* not a statistics file */
    struct st *w = st_new();
    st_put_v(w, "mu", ST_F32, 1, (int64_t)5);
    assert_int_equal(st_save(w, path), 0);
    st_free(w);
    assert_int_equal(fd_ref_load(&ref, path), -1);
    assert_non_null(strstr(tp_err(), "'mu'"));
}

static void test_errors(void **state)
{
    (void)state;
    struct fd_stats s;
    fd_stats_init(&s);
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(fd_stats_add(&s, x, 2, 4), 0);
    double mu[4], sg[16];
    assert_int_equal(fd_stats_moments(&s, mu, sg), 0);
    assert_int_equal(fd_stats_add(&s, x, 4, 2), -1);
    assert_non_null(strstr(tp_err(), "size 2, expected 4"));
    x[5] = NAN;
    assert_int_equal(fd_stats_add(&s, x, 2, 4), -1);
    assert_non_null(strstr(tp_err(), "not finite"));
    assert_int_equal(s.n, 2);
    fd_stats_free(&s);
    fd_stats_init(&s);
    assert_int_equal(fd_stats_add(&s, x, 1, 4), 0);
    assert_int_equal(fd_stats_moments(&s, mu, sg), -1); /* one row: no covariance */
    fd_stats_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref),      cmocka_unit_test(test_batching), cmocka_unit_test(test_same),
        cmocka_unit_test(test_diagonal), cmocka_unit_test(test_file),     cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
