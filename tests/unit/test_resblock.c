/* test_resblock.c - the MaskGIT-VQGAN ResnetBlock: parameter table,
 * backward against finite differences (both shortcut cases), the PyTorch
 * reference written as upstream's module (quirk included), and identical
 * bits across runs at 2 threads. */
#include "gradcheck.h"
#include "resblock.h"

#include <cblas.h>
#include <omp.h>

/* A block with its weights, gradients and activations in three buffers. */
struct rb {
    struct resblock_cfg cfg;
    struct convnet_param p[RESBLOCK_MAX_PARAMS];
    int np;
    size_t nw, nin, nout;
    float *wbuf, *dwbuf, *actbuf, *x, *out, *r, *dx;
    struct resblock_weights w, dw;
    struct resblock_acts a;
};

static void rb_init(struct rb *b, struct resblock_cfg cfg, uint64_t seed)
{
    struct rng g;
    rng_seed(&g, seed);
    memset(b, 0, sizeof *b);
    b->cfg = cfg;
    b->np = resblock_params(b->p, cfg.C, cfg.OC);
    b->nw = resblock_weights_point(&b->w, NULL, cfg.C, cfg.OC);
    b->wbuf = tp_malloc(b->nw * sizeof(float));
    b->dwbuf = tp_calloc(b->nw, sizeof(float));
    resblock_weights_point(&b->w, b->wbuf, cfg.C, cfg.OC);
    resblock_weights_point(&b->dw, b->dwbuf, cfg.C, cfg.OC);
    b->actbuf = tp_malloc(resblock_acts_size(&cfg) * sizeof(float));
    resblock_acts_point(&b->a, b->actbuf, &cfg);
    b->nin = (size_t)cfg.B * cfg.C * cfg.H * cfg.W;
    b->nout = (size_t)cfg.B * cfg.OC * cfg.H * cfg.W;
    b->x = tp_malloc(b->nin * sizeof(float));
    b->dx = tp_calloc(b->nin, sizeof(float));
    b->out = tp_malloc(b->nout * sizeof(float));
    b->r = tp_malloc(b->nout * sizeof(float));
    fill_uniform(&g, b->x, b->nin, -1, 1);
    fill_uniform(&g, b->r, b->nout, -1, 1);
    fill_uniform(&g, b->wbuf, b->nw, -0.3f, 0.3f);
    /* GroupNorm scales near 1, as trained ones are */
    for (int i = 0; i < cfg.C; i++) b->w.norm1_weight[i] += 1;
    for (int i = 0; i < cfg.OC; i++) b->w.norm2_weight[i] += 1;
}

static void rb_free(struct rb *b)
{
    free(b->wbuf), free(b->dwbuf), free(b->actbuf);
    free(b->x), free(b->out), free(b->r), free(b->dx);
}

static double rb_loss(void *ctx)
{
    struct rb *b = ctx;
    resblock_forward(b->out, &b->a, b->x, &b->w, &b->cfg);
    return gc_dot(b->out, b->r, b->nout);
}

static void test_params(void **state)
{
    (void)state;
    struct convnet_param p[RESBLOCK_MAX_PARAMS];
    static const char *names[] = {"norm1.weight", "norm1.bias", "conv1.weight", "norm2.weight",
                                  "norm2.bias", "conv2.weight", "nin_shortcut.weight"};
    assert_int_equal(resblock_params(p, 64, 64), 6);
    assert_int_equal(resblock_params(p, 64, 128), 7);
    for (int i = 0; i < 7; i++) assert_string_equal(p[i].name, names[i]);
    assert_true(p[2].ndim == 4 && p[2].shape[0] == 128 && p[2].shape[1] == 64 &&
                p[2].shape[2] == 3 && p[2].shape[3] == 3);
    assert_true(p[6].ndim == 4 && p[6].shape[0] == 128 && p[6].shape[1] == 128 &&
                p[6].shape[2] == 1 && p[6].shape[3] == 1);
    struct resblock_weights w;
    size_t n = resblock_weights_point(&w, NULL, 64, 128);
    assert_int_equal(n, 64 + 64 + 128 * 64 * 9 + 128 + 128 + 128 * 128 * 9 + 128 * 128);
    float *base = tp_malloc(n * sizeof(float));
    resblock_weights_point(&w, base, 64, 128);
    assert_ptr_equal(w.conv1_weight, base + 128);
    assert_ptr_equal(w.nin_shortcut_weight, base + n - 128 * 128);
    resblock_weights_point(&w, base, 64, 64);
    assert_null(w.nin_shortcut_weight);
    free(base);
}

static void gradcheck_block(int C, int OC)
{
    static struct rb b;
    rb_init(&b, (struct resblock_cfg){.B = 2, .C = C, .OC = OC, .H = 4, .W = 5, .G = 2, .eps = 1e-6f}, 21);
    rb_loss(&b);
    resblock_backward(b.dx, &b.dw, b.r, b.x, &b.w, &b.a, &b.cfg);
    gc_check("dinp", b.x, b.dx, b.nin, rb_loss, &b, 1e-3f, 1e-2);
    size_t off = 0;
    for (int i = 0; i < b.np; i++) {
        gc_check(b.p[i].name, b.wbuf + off, b.dwbuf + off, b.p[i].numel, rb_loss, &b, 1e-3f, 1e-2);
        off += b.p[i].numel;
    }
    rb_free(&b);
}

static void test_grad_same(void **state)
{
    (void)state;
    gradcheck_block(4, 4);
}

static void test_grad_shortcut(void **state)
{
    (void)state;
    gradcheck_block(4, 6);
}

/* Copy fixture tensors "<param><suffix>" into buf in table order. */
static void fixture_params(struct st *f, const struct rb *b, const char *suffix, float *buf)
{
    char name[128];
    size_t off = 0;
    for (int i = 0; i < b->np; i++) {
        snprintf(name, sizeof name, "%s%s", b->p[i].name, suffix);
        memcpy(buf + off, ref_f32(f, name, b->p[i].numel), b->p[i].numel * sizeof(float));
        off += b->p[i].numel;
    }
}

static void check_fixture(const char *name)
{
    struct st *f = ref_load(name);
    long B, C, OC, H, W;
    if (st_meta_get_long(f, "B", &B) || st_meta_get_long(f, "C", &C) ||
        st_meta_get_long(f, "OC", &OC) || st_meta_get_long(f, "H", &H) ||
        st_meta_get_long(f, "W", &W))
        fail_msg("%s: %s", name, tp_err());
    static struct rb b;
    rb_init(&b, resblock_cfg_upstream(B, C, OC, H, W), 1);
    /* the fixture's parameters are exactly the table: x, out, dout, and
     * each parameter with its gradient */
    assert_int_equal(f->n, 4 + 2 * b.np);
    fixture_params(f, &b, "", b.wbuf);
    memcpy(b.x, ref_f32(f, "x", b.nin), b.nin * sizeof(float));
    resblock_forward(b.out, &b.a, b.x, &b.w, &b.cfg);
    check_close(name, b.out, ref_f32(f, "out", b.nout), b.nout, 1e-4, 1e-3);
    resblock_backward(b.dx, &b.dw, ref_f32(f, "dout", b.nout), b.x, &b.w, &b.a, &b.cfg);
    check_close("x.grad", b.dx, ref_f32(f, "x.grad", b.nin), b.nin, 1e-4, 1e-3);
    float *want = tp_malloc(b.nw * sizeof(float));
    fixture_params(f, &b, ".grad", want);
    size_t off = 0;
    for (int i = 0; i < b.np; i++) {
        check_close(b.p[i].name, b.dwbuf + off, want + off, b.p[i].numel, 1e-4, 1e-3);
        off += b.p[i].numel;
    }
    free(want);
    rb_free(&b);
    st_free(f);
}

static void test_reference_same(void **state)
{
    (void)state;
    check_fixture("resblock_same");
}

static void test_reference_shortcut(void **state)
{
    (void)state;
    check_fixture("resblock_shortcut");
}

static void test_threads_deterministic(void **state)
{
    (void)state;
    omp_set_num_threads(2);
    openblas_set_num_threads(2);
    static struct rb run[2];
    for (int k = 0; k < 2; k++) {
        rb_init(&run[k], resblock_cfg_upstream(2, 32, 64, 16, 16), 4);
        rb_loss(&run[k]);
        resblock_backward(run[k].dx, &run[k].dw, run[k].r, run[k].x, &run[k].w, &run[k].a,
                          &run[k].cfg);
    }
    assert_memory_equal(run[0].out, run[1].out, run[0].nout * sizeof(float));
    assert_memory_equal(run[0].dx, run[1].dx, run[0].nin * sizeof(float));
    assert_memory_equal(run[0].dwbuf, run[1].dwbuf, run[0].nw * sizeof(float));
    rb_free(&run[0]);
    rb_free(&run[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_grad_same),
        cmocka_unit_test(test_grad_shortcut),
        cmocka_unit_test(test_reference_same),
        cmocka_unit_test(test_reference_shortcut),
        cmocka_unit_test(test_threads_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
