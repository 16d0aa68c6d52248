/* test_pool.c - avgpool2, upsample2, adaptive max pool, blur: backward
 * against finite differences, PyTorch references for output and input
 * gradient, and the edge rules (odd sizes, ties, NaN, the blur's padding). */
#include "gradcheck.h"
#include "pool.h"

/* One layer behind a uniform interface. */
struct op {
    const char *name;
    void (*fwd)(struct op *o, float *out, const float *x);
    void (*bwd)(struct op *o, float *dx, const float *dout);
    int B, C, H, W, OH, OW;
    int32_t *idx; /* adaptive max pool: argmax of the last forward */
};

static void avg_fwd(struct op *o, float *out, const float *x) { avgpool2_forward(out, x, o->B, o->C, o->H, o->W); }
static void avg_bwd(struct op *o, float *dx, const float *d) { avgpool2_backward(dx, d, o->B, o->C, o->H, o->W); }
static void up_fwd(struct op *o, float *out, const float *x) { upsample2_forward(out, x, o->B, o->C, o->H, o->W); }
static void up_bwd(struct op *o, float *dx, const float *d) { upsample2_backward(dx, d, o->B, o->C, o->H, o->W); }
static void blur_fwd(struct op *o, float *out, const float *x) { blur_forward(out, x, o->B, o->C, o->H, o->W); }
static void blur_bwd(struct op *o, float *dx, const float *d) { blur_backward(dx, d, o->B, o->C, o->H, o->W); }
static void amax_fwd(struct op *o, float *out, const float *x)
{
    adaptive_maxpool_forward(out, o->idx, x, o->B, o->C, o->H, o->W, o->OH, o->OW);
}
static void amax_bwd(struct op *o, float *dx, const float *d)
{
    adaptive_maxpool_backward(dx, d, o->idx, o->B, o->C, o->H, o->W, o->OH, o->OW);
}

static struct op op_make(const char *kind, int B, int C, int H, int W, int OH, int OW)
{
    struct op o = {.name = kind, .B = B, .C = C, .H = H, .W = W, .OH = OH, .OW = OW};
    if (!strcmp(kind, "avg")) {
        o.fwd = avg_fwd, o.bwd = avg_bwd, o.OH = H / 2, o.OW = W / 2;
    } else if (!strcmp(kind, "up")) {
        o.fwd = up_fwd, o.bwd = up_bwd, o.OH = 2 * H, o.OW = 2 * W;
    } else if (!strcmp(kind, "blur")) {
        struct conv2d_shape s = blur_shape(B, C, H, W);
        o.fwd = blur_fwd, o.bwd = blur_bwd, o.OH = s.OH, o.OW = s.OW;
    } else {
        o.fwd = amax_fwd, o.bwd = amax_bwd;
    }
    o.idx = tp_malloc((size_t)B * C * o.OH * o.OW * sizeof(int32_t));
    return o;
}

struct gc_ctx {
    struct op *o;
    float *x, *out, *r;
    size_t nout;
};

static double op_loss(void *p)
{
    struct gc_ctx *c = p;
    c->o->fwd(c->o, c->out, c->x);
    return gc_dot(c->out, c->r, c->nout);
}

/* Finite differences on dinp; returns dinp (caller frees) for extra checks. */
static float *gradcheck_op(struct op o)
{
    struct rng g;
    rng_seed(&g, 9);
    size_t nin = (size_t)o.B * o.C * o.H * o.W, nout = (size_t)o.B * o.C * o.OH * o.OW;
    float *x = tp_malloc(nin * sizeof(float)), *dx = tp_calloc(nin, sizeof(float));
    struct gc_ctx c = {&o, x, tp_malloc(nout * sizeof(float)), tp_malloc(nout * sizeof(float)), nout};
    fill_uniform(&g, x, nin, -1, 1);
    fill_uniform(&g, c.r, nout, -1, 1);
    op_loss(&c);
    o.bwd(&o, dx, c.r);
    /* eps well below the gaps between random values: no argmax switches */
    gc_check(o.name, x, dx, nin, op_loss, &c, 1e-4f, 1e-3);
    /* backward accumulates */
    float *twice = tp_malloc(nin * sizeof(float));
    for (size_t i = 0; i < nin; i++) twice[i] = 2 * dx[i];
    op_loss(&c);
    o.bwd(&o, dx, c.r);
    check_close("accumulated", dx, twice, nin, 1e-6, 1e-5);
    for (size_t i = 0; i < nin; i++) dx[i] *= 0.5f;
    free(x), free(c.out), free(c.r), free(twice), free(o.idx);
    return dx;
}

static void test_grad_avgpool(void **state)
{
    (void)state;
    free(gradcheck_op(op_make("avg", 2, 3, 6, 8, 0, 0)));
    /* odd sizes: the last row and column are not read, so get no gradient */
    float *dx = gradcheck_op(op_make("avg", 1, 2, 5, 7, 0, 0));
    for (int c = 0; c < 2; c++)
        for (int h = 0; h < 5; h++)
            for (int w = 0; w < 7; w++)
                if (h == 4 || w == 6) assert_true(dx[(c * 5 + h) * 7 + w] == 0.0f);
                else assert_true(dx[(c * 5 + h) * 7 + w] != 0.0f);
    free(dx);
}

static void test_grad_upsample(void **state)
{
    (void)state;
    free(gradcheck_op(op_make("up", 2, 3, 3, 5, 0, 0)));
}

static void test_grad_adaptive_maxpool(void **state)
{
    (void)state;
    free(gradcheck_op(op_make("amax", 2, 3, 7, 10, 3, 4)));  /* uneven bins */
    free(gradcheck_op(op_make("amax", 1, 2, 5, 3, 8, 7)));   /* OH > H: bins repeat */
    free(gradcheck_op(op_make("amax", 2, 2, 32, 32, 16, 16))); /* upstream's 2x2 case */
}

static void test_grad_blur(void **state)
{
    (void)state;
    free(gradcheck_op(op_make("blur", 2, 3, 8, 8, 0, 0)));
    free(gradcheck_op(op_make("blur", 1, 2, 7, 5, 0, 0)));
}

static void test_adaptive_maxpool_rules(void **state)
{
    (void)state;
    /* 1x1x5x5 -> 2x2: bins rows [0,3) and [2,5), columns alike */
    float x[25] = {0};
    float out[4];
    int32_t idx[4];
    adaptive_maxpool_forward(out, idx, x, 1, 1, 5, 5, 2, 2);
    /* all equal: the first element of each bin wins */
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 2);
    assert_int_equal(idx[2], 2 * 5);
    assert_int_equal(idx[3], 2 * 5 + 2);
    x[2 * 5 + 2] = 1; /* the centre is in all four bins */
    adaptive_maxpool_forward(out, idx, x, 1, 1, 5, 5, 2, 2);
    for (int i = 0; i < 4; i++) assert_int_equal(idx[i], 12);
    float dx[25] = {0}, d[4] = {1, 2, 3, 4};
    adaptive_maxpool_backward(dx, d, idx, 1, 1, 5, 5, 2, 2);
    assert_true(dx[12] == 10.0f);
    x[1] = NAN; /* NaN wins its bin (PyTorch's rule) */
    adaptive_maxpool_forward(out, idx, x, 1, 1, 5, 5, 2, 2);
    assert_true(isnan(out[0]));
    assert_int_equal(idx[0], 1);
    assert_true(out[1] == 1.0f);
}

static void test_blur_padding(void **state)
{
    (void)state;
    float k[16], sum = 0;
    blur_kernel(k);
    for (int i = 0; i < 16; i++) sum += k[i];
    assert_true(fabsf(sum - 1) < 1e-6f);
    assert_true(k[0] == 1.0f / 64 && k[5] == 9.0f / 64 && k[1] == 3.0f / 64);
    struct conv2d_shape s = blur_shape(1, 1, 8, 7);
    assert_int_equal(s.pad_top, 1);    /* even: 1 each side */
    assert_int_equal(s.pad_bottom, 1);
    assert_int_equal(s.pad_left, 1);   /* odd: 1 before, 2 after */
    assert_int_equal(s.pad_right, 2);
    assert_int_equal(s.OH, 4);
    assert_int_equal(s.OW, 4);
    /* a constant image stays constant away from the zero padding */
    float x[64], out[16];
    for (int i = 0; i < 64; i++) x[i] = 2.0f;
    blur_forward(out, x, 1, 1, 8, 8);
    assert_true(fabsf(out[1 * 4 + 1] - 2.0f) < 1e-6f);
    assert_true(fabsf(out[0] - 2.0f * 49 / 64) < 1e-6f); /* corner: taps 3,3,1 x 3,3,1 inside */
}

/* Output and input gradient of an op against a fixture. */
static void check_fixture(const char *name, const char *kind)
{
    struct st *f = ref_load(name);
    long B, C, H, W, OH = 0, OW = 0;
    if (st_meta_get_long(f, "B", &B) || st_meta_get_long(f, "C", &C) ||
        st_meta_get_long(f, "H", &H) || st_meta_get_long(f, "W", &W))
        fail_msg("%s: %s", name, tp_err());
    if (!strcmp(kind, "amax") && (st_meta_get_long(f, "OH", &OH) || st_meta_get_long(f, "OW", &OW)))
        fail_msg("%s: %s", name, tp_err());
    struct op o = op_make(kind, B, C, H, W, OH, OW);
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * o.OH * o.OW;
    float *out = tp_malloc(nout * sizeof(float)), *dx = tp_calloc(nin, sizeof(float));
    o.fwd(&o, out, ref_f32(f, "x", nin));
    check_close(name, out, ref_f32(f, "out", nout), nout, 1e-4, 1e-3);
    o.bwd(&o, dx, ref_f32(f, "dout", nout));
    check_close("x.grad", dx, ref_f32(f, "x.grad", nin), nin, 1e-4, 1e-3);
    if (!strcmp(kind, "blur")) {
        float k[16];
        blur_kernel(k);
        check_close("kernel", k, ref_f32(f, "kernel", 16), 16, 0, 1e-7);
    }
    free(out), free(dx), free(o.idx);
    st_free(f);
}

static void test_reference(void **state)
{
    (void)state;
    check_fixture("pool_avg", "avg");
    check_fixture("pool_up", "up");
    check_fixture("pool_amax_down", "amax");
    check_fixture("pool_amax_up", "amax");
    check_fixture("pool_blur", "blur");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_avgpool),
        cmocka_unit_test(test_grad_upsample),
        cmocka_unit_test(test_grad_adaptive_maxpool),
        cmocka_unit_test(test_grad_blur),
        cmocka_unit_test(test_adaptive_maxpool_rules),
        cmocka_unit_test(test_blur_padding),
        cmocka_unit_test(test_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
