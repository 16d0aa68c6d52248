/* test_groupnorm.c - GroupNorm: statistics, backward against finite
 * differences (affine and not), and the PyTorch reference. */
#include "gradcheck.h"
#include "groupnorm.h"

enum { B = 2, C = 6, HW = 5, G = 3 };
#define EPS 1e-6f

struct gn_case {
    float x[B * C * HW], w[C], b[C], out[B * C * HW], r[B * C * HW];
    float mean[B * G], rstd[B * G];
    float dx[B * C * HW], dw[C], db[C];
    int affine;
};

static double gn_loss(void *ctx)
{
    struct gn_case *c = ctx;
    groupnorm_forward(c->out, c->mean, c->rstd, c->x, c->affine ? c->w : NULL,
                      c->affine ? c->b : NULL, B, C, HW, G, EPS);
    return gc_dot(c->out, c->r, B * C * HW);
}

static void gn_setup(struct gn_case *c, int affine)
{
    struct rng g;
    rng_seed(&g, 5);
    memset(c, 0, sizeof *c);
    c->affine = affine;
    fill_uniform(&g, c->x, B * C * HW, -2, 3);
    fill_uniform(&g, c->w, C, 0.5f, 1.5f);
    fill_uniform(&g, c->b, C, -0.5f, 0.5f);
    fill_uniform(&g, c->r, B * C * HW, -1, 1);
}

static void test_statistics(void **state)
{
    (void)state;
    static struct gn_case c;
    gn_setup(&c, 1);
    gn_loss(&c);
    /* each group: saved mean and rstd match a double computation; the
     * un-affined output has mean 0 and variance var/(var+eps) */
    for (int bg = 0; bg < B * G; bg++) {
        const float *x = c.x + (size_t)bg * (C / G) * HW;
        double m = 0, v = 0;
        for (int i = 0; i < C / G * HW; i++) m += x[i];
        m /= C / G * HW;
        for (int i = 0; i < C / G * HW; i++) v += (x[i] - m) * (x[i] - m);
        v /= C / G * HW;
        assert_true(fabs(c.mean[bg] - m) < 1e-6);
        assert_true(fabs(c.rstd[bg] - 1 / sqrt(v + EPS)) < 1e-5 * c.rstd[bg]);
        for (int ch = 0; ch < C / G; ch++) {
            const int cc = bg % G * (C / G) + ch;
            for (int i = 0; i < HW; i++) {
                const size_t k = (size_t)bg * (C / G) * HW + (size_t)ch * HW + i;
                const double want = (x[ch * HW + i] - m) / sqrt(v + EPS) * c.w[cc] + c.b[cc];
                assert_true(fabs(c.out[k] - want) < 1e-5);
            }
        }
    }
}

static void gradcheck_case(int affine)
{
    static struct gn_case c;
    gn_setup(&c, affine);
    gn_loss(&c);
    groupnorm_backward(c.dx, affine ? c.dw : NULL, affine ? c.db : NULL, c.r, c.x,
                       affine ? c.w : NULL, c.mean, c.rstd, B, C, HW, G);
    gc_check("dinp", c.x, c.dx, B * C * HW, gn_loss, &c, 1e-2f, 2e-3);
    if (affine) {
        gc_check("dweight", c.w, c.dw, C, gn_loss, &c, 1e-2f, 2e-3);
        gc_check("dbias", c.b, c.db, C, gn_loss, &c, 1e-2f, 2e-3);
    }
    /* accumulation: a second call doubles every gradient (the forward
     * again first: gc_check leaves the statistics of a perturbed x) */
    gn_loss(&c);
    static struct gn_case once;
    once = c;
    groupnorm_backward(c.dx, affine ? c.dw : NULL, affine ? c.db : NULL, c.r, c.x,
                       affine ? c.w : NULL, c.mean, c.rstd, B, C, HW, G);
    for (int i = 0; i < B * C * HW; i++) once.dx[i] *= 2;
    for (int i = 0; i < C; i++) once.dw[i] *= 2, once.db[i] *= 2;
    check_close("dinp x2", c.dx, once.dx, B * C * HW, 1e-6, 1e-5);
    check_close("dweight x2", c.dw, once.dw, C, 1e-6, 1e-5);
    check_close("dbias x2", c.db, once.db, C, 1e-6, 1e-5);
}

static void test_grad_affine(void **state)
{
    (void)state;
    gradcheck_case(1);
}

static void test_grad_plain(void **state)
{
    (void)state;
    gradcheck_case(0);
}

static void test_reference(void **state)
{
    (void)state;
    struct st *f = ref_load("groupnorm");
    long b, c, h, w, g;
    double eps;
    if (st_meta_get_long(f, "B", &b) || st_meta_get_long(f, "C", &c) ||
        st_meta_get_long(f, "H", &h) || st_meta_get_long(f, "W", &w) ||
        st_meta_get_long(f, "G", &g) || st_meta_get_double(f, "eps", &eps))
        fail_msg("%s", tp_err());
    const size_t n = (size_t)b * c * h * w;
    float *x = ref_f32(f, "x", n), *wt = ref_f32(f, "weight", c), *bi = ref_f32(f, "bias", c);
    float *out = tp_malloc(n * sizeof(float)), *dx = tp_calloc(n, sizeof(float));
    float *mean = tp_malloc(b * g * sizeof(float)), *rstd = tp_malloc(b * g * sizeof(float));
    float *dw = tp_calloc(c, sizeof(float)), *db = tp_calloc(c, sizeof(float));
    groupnorm_forward(out, mean, rstd, x, wt, bi, b, c, h * w, g, (float)eps);
    check_close("out", out, ref_f32(f, "out", n), n, 1e-4, 1e-3);
    groupnorm_backward(dx, dw, db, ref_f32(f, "dout", n), x, wt, mean, rstd, b, c, h * w, g);
    check_close("x.grad", dx, ref_f32(f, "x.grad", n), n, 1e-4, 1e-3);
    check_close("weight.grad", dw, ref_f32(f, "weight.grad", c), c, 1e-4, 1e-3);
    check_close("bias.grad", db, ref_f32(f, "bias.grad", c), c, 1e-4, 1e-3);
    free(out), free(dx), free(mean), free(rstd), free(dw), free(db);
    st_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_grad_affine),
        cmocka_unit_test(test_grad_plain),
        cmocka_unit_test(test_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
