/* test_discblock.c - one NLayerDiscriminator stage: parameter table, output
 * size, backward against finite differences, and the PyTorch reference (an
 * nn.Sequential as upstream builds it, odd width for the blur's padding). */
#include "gradcheck.h"
#include "discblock.h"
#include "pool.h"

struct db {
    struct discblock_cfg cfg;
    struct convnet_param p[DISCBLOCK_NPARAMS];
    size_t nw, nin, nout;
    float *wbuf, *dwbuf, *actbuf, *x, *out, *r, *dx;
    struct discblock_weights w, dw;
    struct discblock_acts a;
};

static void db_init(struct db *b, struct discblock_cfg cfg, uint64_t seed)
{
    struct rng g;
    rng_seed(&g, seed);
    memset(b, 0, sizeof *b);
    b->cfg = cfg;
    discblock_params(b->p, cfg.C, cfg.OC);
    b->nw = discblock_weights_point(&b->w, NULL, cfg.C, cfg.OC);
    b->wbuf = tp_malloc(b->nw * sizeof(float));
    b->dwbuf = tp_calloc(b->nw, sizeof(float));
    discblock_weights_point(&b->w, b->wbuf, cfg.C, cfg.OC);
    discblock_weights_point(&b->dw, b->dwbuf, cfg.C, cfg.OC);
    b->actbuf = tp_malloc(discblock_acts_size(&cfg) * sizeof(float));
    discblock_acts_point(&b->a, b->actbuf, &cfg);
    int H2, W2;
    discblock_out_hw(&cfg, &H2, &W2);
    b->nin = (size_t)cfg.B * cfg.C * cfg.H * cfg.W;
    b->nout = (size_t)cfg.B * cfg.OC * H2 * W2;
    b->x = tp_malloc(b->nin * sizeof(float));
    b->dx = tp_calloc(b->nin, sizeof(float));
    b->out = tp_malloc(b->nout * sizeof(float));
    b->r = tp_malloc(b->nout * sizeof(float));
    fill_uniform(&g, b->x, b->nin, -1, 1);
    fill_uniform(&g, b->r, b->nout, -1, 1);
    fill_uniform(&g, b->wbuf, b->nw, -0.3f, 0.3f);
    for (int i = 0; i < cfg.OC; i++) b->w.norm_weight[i] += 1;
}

static void db_free(struct db *b)
{
    free(b->wbuf), free(b->dwbuf), free(b->actbuf);
    free(b->x), free(b->out), free(b->r), free(b->dx);
}

static double db_loss(void *ctx)
{
    struct db *b = ctx;
    discblock_forward(b->out, &b->a, b->x, &b->w, &b->cfg);
    return gc_dot(b->out, b->r, b->nout);
}

static void test_params(void **state)
{
    (void)state;
    struct convnet_param p[DISCBLOCK_NPARAMS];
    assert_int_equal(discblock_params(p, 128, 256), 4);
    assert_string_equal(p[0].name, "0.weight");
    assert_string_equal(p[1].name, "0.bias");
    assert_string_equal(p[2].name, "2.weight");
    assert_string_equal(p[3].name, "2.bias");
    assert_true(p[0].ndim == 4 && p[0].shape[0] == 256 && p[0].shape[1] == 128 &&
                p[0].shape[2] == 3 && p[0].shape[3] == 3);
    assert_true(p[1].ndim == 1 && p[1].shape[0] == 256);
    struct discblock_cfg c = discblock_cfg_upstream(1, 128, 256, 31, 64);
    int H2, W2;
    discblock_out_hw(&c, &H2, &W2);
    assert_int_equal(H2, 16);
    assert_int_equal(W2, 32);
    assert_int_equal(c.G, 32);
    assert_true(c.eps == 1e-5f && c.slope == 0.1f);
}

static void test_grad(void **state)
{
    (void)state;
    static struct db b;
    db_init(&b, (struct discblock_cfg){.B = 2, .C = 3, .OC = 4, .H = 7, .W = 6, .G = 2,
                                       .eps = 1e-5f, .slope = 0.1f}, 17);
    db_loss(&b);
    discblock_backward(b.dx, &b.dw, b.r, b.x, &b.w, &b.a, &b.cfg);
    gc_check("dinp", b.x, b.dx, b.nin, db_loss, &b, 1e-3f, 1e-2);
    size_t off = 0;
    for (int i = 0; i < DISCBLOCK_NPARAMS; i++) {
        gc_check(b.p[i].name, b.wbuf + off, b.dwbuf + off, b.p[i].numel, db_loss, &b, 1e-3f, 1e-2);
        off += b.p[i].numel;
    }
    db_free(&b);
}

static void test_reference(void **state)
{
    (void)state;
    struct st *f = ref_load("discblock");
    long B, C, OC, H, W;
    if (st_meta_get_long(f, "B", &B) || st_meta_get_long(f, "C", &C) ||
        st_meta_get_long(f, "OC", &OC) || st_meta_get_long(f, "H", &H) ||
        st_meta_get_long(f, "W", &W))
        fail_msg("%s", tp_err());
    static struct db b;
    db_init(&b, discblock_cfg_upstream(B, C, OC, H, W), 1);
    /* x, out, dout, x.grad, the 4 parameters and their gradients, and the
     * blur's constant buffer */
    assert_int_equal(f->n, 4 + 2 * DISCBLOCK_NPARAMS + 1);
    float k[16];
    blur_kernel(k);
    check_close("1.kernel", k, ref_f32(f, "1.kernel", 16), 16, 0, 1e-7);
    char name[64];
    size_t off = 0;
    for (int i = 0; i < DISCBLOCK_NPARAMS; i++) {
        memcpy(b.wbuf + off, ref_f32(f, b.p[i].name, b.p[i].numel), b.p[i].numel * sizeof(float));
        off += b.p[i].numel;
    }
    memcpy(b.x, ref_f32(f, "x", b.nin), b.nin * sizeof(float));
    discblock_forward(b.out, &b.a, b.x, &b.w, &b.cfg);
    check_close("out", b.out, ref_f32(f, "out", b.nout), b.nout, 1e-4, 1e-3);
    discblock_backward(b.dx, &b.dw, ref_f32(f, "dout", b.nout), b.x, &b.w, &b.a, &b.cfg);
    check_close("x.grad", b.dx, ref_f32(f, "x.grad", b.nin), b.nin, 1e-4, 1e-3);
    off = 0;
    for (int i = 0; i < DISCBLOCK_NPARAMS; i++) {
        snprintf(name, sizeof name, "%s.grad", b.p[i].name);
        check_close(name, b.dwbuf + off, ref_f32(f, name, b.p[i].numel), b.p[i].numel, 1e-4, 1e-3);
        off += b.p[i].numel;
    }
    db_free(&b);
    st_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_grad),
        cmocka_unit_test(test_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
