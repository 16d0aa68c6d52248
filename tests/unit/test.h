/* test.h - what unit tests share: cmocka, float comparisons that print the
 * first mismatches and the max difference, and PyTorch reference fixtures.
 *
 * Reference fixtures are safetensors files written by tests/reference/ref_*.py
 * into $TP_REF_DIR; a test that needs one is skipped (and says so) when it is
 * missing, which happens only where python3-torch is not installed.
 */
#ifndef TP_TEST_H
#define TP_TEST_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "err.h"
#include "params.h"
#include "rng.h"
#include "st.h"

/* Fail unless |got-want| <= atol + rtol*|want| everywhere. */
static inline void check_close_(const char *what, const float *got,
                                const float *want, size_t n, double atol,
                                double rtol, const char *file, int line)
{
    double maxdiff = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= maxdiff)) maxdiff = d;   /* NaN-proof */
        if (!(d <= atol + rtol * fabs((double)want[i]))) {
            if (bad < 5)
                print_error("%s[%zu]: got %.7g want %.7g\n", what, i, got[i], want[i]);
            bad++;
        }
    }
    if (bad) {
        print_error("%s: %zu of %zu differ, max diff %.3g (atol %g rtol %g)\n",
                    what, bad, n, maxdiff, atol, rtol);
        _fail(file, line);
    }
}
#define check_close(what, got, want, n, atol, rtol) \
    check_close_(what, got, want, n, atol, rtol, __FILE__, __LINE__)

/* A fresh directory for a group's files (tmpdir), removed afterwards:
 * cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown). */
static char tmpdir[64];

static inline int tmpdir_setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/tp_test_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int tmpdir_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Fill with uniform values in [lo,hi). */
static inline void fill_uniform(struct rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(r);
}

/* Random parameters for finite differences: norms' weights (INIT_ONES)
 * around 1, everything else around 0. */
static inline void fill_params(struct params *p, struct rng *r)
{
    for (int i = 0; i < p->n; i++) {
        const struct param_spec *e = &p->spec[i];
        float lo = e->init == INIT_ONES ? 0.7f : -0.5f;
        fill_uniform(r, p->data + e->offset, e->numel, lo, lo + 1.0f);
    }
}

/* Load $TP_REF_DIR/name.safetensors, or skip the test if it is absent. */
static inline struct st *ref_load(const char *name)
{
    const char *dir = getenv("TP_REF_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir ? dir : "build/ref", name);
    struct st *s = NULL;
    if (st_load(&s, path) != 0) {
        printf("SKIP %s: %s (python3-torch missing?)\n", name, tp_err());
        skip();
    }
    return s;
}

/* A tensor of a reference fixture, which must exist and be F32. */
static inline float *ref_f32(struct st *s, const char *name, size_t expect_numel)
{
    struct st_tensor *t = st_require(s, name, ST_F32, -1);
    if (!t) fail_msg("%s", tp_err());
    if (expect_numel && (size_t)st_numel(t) != expect_numel)
        fail_msg("%s: %lld elements, expected %zu", name, (long long)st_numel(t), expect_numel);
    return t->data;
}

#endif
