/* test_perceptual.c - the perceptual loss (perceptual.h) and its layers
 * (perc_ops.h, perc_vgg.h, perc_convnext.h): parameter tables of the full
 * upstream networks, gradients against finite differences for every
 * architecture (narrow random networks, gray and RGB inputs), PyTorch
 * references (ref_perceptual.py: upstream's LPIPS at full VGG16 width, a
 * narrow torchvision ConvNeXt behind the 224 antialiased resize, the default
 * net, the resize itself), loading and its errors, determinism and batch
 * chunking, and training the default network on a tiny synthetic set. */
#include <fcntl.h>
#include <unistd.h>

#include "gradcheck.h"
#include "imgops.h"
#include "perc_impl.h"
#include "perc_ops.h"
#include "perceptual.h"
#include "tz.h"

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* metadata from "key", "value", ..., NULL */
static struct st *meta_of(const char *const *kv)
{
    struct st *m = st_new();
    for (; kv[0]; kv += 2) st_meta_set(m, kv[0], kv[1]);
    return m;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* Replace every weight of a file with random values that keep activations
 * O(1): He-normal matrices, norms near 1, small biases, LPIPS heads and
 * layer scales in visible ranges. */
static void randomise_file(const char *path, uint64_t seed)
{
    struct st *w = NULL;
    if (st_load(&w, path) != 0) fail_msg("%s", tp_err());
    struct rng g;
    rng_seed(&g, seed);
    for (int i = 0; i < w->n; i++) {
        struct st_tensor *t = &w->t[i];
        float *x = t->data;
        const size_t n = st_numel(t);
        const size_t len = strlen(t->name);
        if (strncmp(t->name, "scaling_layer", 13) == 0) continue;
        for (size_t j = 0; j < n; j++) {
            if (len > 11 && strcmp(t->name + len - 11, "layer_scale") == 0)
                x[j] = 0.3f + 0.7f * rng_uniform(&g);
            else if (strncmp(t->name, "lin", 3) == 0)
                x[j] = 0.2f + 0.8f * rng_uniform(&g);
            else if (t->ndim >= 2)
                x[j] = rng_normal(&g) * sqrtf(2.0f * t->shape[0] / (float)n);
            else if (strcmp(t->name + len - 6, "weight") == 0)
                x[j] = 1.0f + 0.2f * (rng_uniform(&g) - 0.5f);
            else
                x[j] = 0.2f * (rng_uniform(&g) - 0.5f);
        }
    }
    if (st_save(w, path) != 0) fail_msg("%s", tp_err());
    st_free(w);
}

static struct perceptual *random_net(const char *file, const char *const *kv, uint64_t seed)
{
    struct st *m = meta_of(kv);
    const char *path = tmp_path(file);
    if (perceptual_create(path, m, seed) != 0) fail_msg("%s", tp_err());
    st_free(m);
    randomise_file(path, seed + 1);
    struct perceptual *p;
    if (perceptual_load(&p, path) != 0) fail_msg("%s", tp_err());
    return p;
}

/* a target and a prediction near it, in [0,1] */
static void images(struct rng *g, float *pred, float *target, size_t n)
{
    fill_uniform(g, target, n, 0, 1);
    for (size_t i = 0; i < n; i++) pred[i] = 0.7f * target[i] + 0.3f * rng_uniform(g);
}

/* ---- parameter tables of the full networks ---------------------------------- */

struct want {
    const char *name;
    int ndim;
    int64_t d[4];
};

/* Every listed parameter exists with that shape (the list ends at NULL). */
static void check_specs(const struct perceptual *p, const struct want *w)
{
    for (; w->name; w++) {
        const struct param_spec *s = params_find(&p->params, w->name);
        if (!s) fail_msg("no parameter %s", w->name);
        assert_int_equal(s->ndim, w->ndim);
        for (int i = 0; i < w->ndim; i++)
            if (s->shape[i] != w->d[i])
                fail_msg("%s: dim %d is %lld, want %lld", w->name, i, (long long)s->shape[i], (long long)w->d[i]);
    }
}

static void build_arch(struct perceptual *p, const char *arch)
{
    struct st *m = meta_of((const char *[]){"arch", arch, NULL});
    assert_int_equal(perc_build(p, m), 0);
    st_free(m);
}

static void test_tables(void **state)
{
    (void)state;
    struct perceptual p;
    build_arch(&p, "convnext-s");
    /* torchvision convnext_small: 50,223,688 parameters in 344 tensors */
    assert_int_equal(p.params.total, 50223688);
    assert_int_equal(p.params.n, 344);
    check_specs(&p, (const struct want[]){
        {"features.0.0.weight", 4, {96, 3, 4, 4}},        {"features.0.1.bias", 1, {96}},
        {"features.1.0.layer_scale", 3, {96, 1, 1}},      {"features.1.2.block.0.weight", 4, {96, 1, 7, 7}},
        {"features.2.0.weight", 1, {96}},                 {"features.2.1.weight", 4, {192, 96, 2, 2}},
        {"features.5.26.block.3.weight", 2, {1536, 384}}, {"features.5.26.block.5.bias", 1, {384}},
        {"features.6.1.weight", 4, {768, 384, 2, 2}},     {"features.7.2.block.2.weight", 1, {768}},
        {"classifier.0.weight", 1, {768}},                {"classifier.2.weight", 2, {1000, 768}},
        {NULL, 0, {0}}});
    assert_null(params_find(&p.params, "features.5.27.layer_scale"));
    assert_int_equal(p.resize, 224);
    params_free(&p.params);

    build_arch(&p, "lpips-vgg16");
    /* torchvision vgg16().features: 14,714,688; LPIPS heads 64+128+256+512+512 */
    assert_int_equal(p.params.total, 14714688 + 1472);
    assert_int_equal(p.vgg.ntap, 5);
    const int taps[5] = {3, 8, 15, 22, 29}; /* relu1_2 .. relu5_3 */
    for (int k = 0; k < 5; k++) assert_int_equal(p.vgg.index[p.vgg.tap[k]] + 1, taps[k]);
    check_specs(&p, (const struct want[]){
        {"features.0.weight", 4, {64, 3, 3, 3}}, {"features.28.weight", 4, {512, 512, 3, 3}},
        {"features.17.bias", 1, {512}},          {"lin2.model.1.weight", 4, {1, 256, 1, 1}},
        {NULL, 0, {0}}});
    assert_null(params_find(&p.params, "features.30.weight"));
    assert_true(p.shift[0] == -0.030f && p.scale[2] == 0.450f && p.vgg.slope == 0);
    assert_int_equal(perc_vgg_min_side(&p.vgg), 16);
    params_free(&p.params);

    build_arch(&p, "tokpipe-percep");
    check_specs(&p, (const struct want[]){
        {"features.0.weight", 4, {32, 1, 3, 3}},   {"features.3.weight", 4, {64, 32, 3, 3}},
        {"features.6.weight", 4, {128, 64, 3, 3}}, {"features.9.weight", 4, {128, 128, 3, 3}},
        {"lin3.model.1.weight", 4, {1, 128, 1, 1}}, {"classifier.weight", 2, {10, 128}},
        {NULL, 0, {0}}});
    assert_true(p.net_c == 1 && p.vgg.slope == PERC_DEFAULT_SLOPE && p.shift[0] == 0 && p.scale[0] == 1);
    params_free(&p.params);
}

/* ---- layers ----------------------------------------------------------------- */

struct opctx {
    int kind; /* 0 maxpool, 1 resize */
    int B, C, H, W;
    struct resize_aa rs;
    float *x, *out, *r, *tmp;
    int32_t *idx;
    size_t nout;
};

static double op_loss(void *c)
{
    struct opctx *o = c;
    if (o->kind == 0) maxpool2_forward(o->out, o->idx, o->x, o->B, o->C, o->H, o->W);
    else resize_aa_forward(o->out, o->tmp, o->x, &o->rs, o->B * o->C);
    return gc_dot(o->out, o->r, o->nout);
}

static void test_maxpool_grad(void **state)
{
    (void)state;
    struct rng g;
    rng_seed(&g, 5);
    struct opctx o = {.kind = 0, .B = 2, .C = 3, .H = 7, .W = 6};
    const size_t nin = 2 * 3 * 7 * 6;
    o.nout = 2 * 3 * 3 * 3;
    o.x = tp_malloc(nin * sizeof(float));
    o.out = tp_malloc(o.nout * sizeof(float));
    o.r = tp_malloc(o.nout * sizeof(float));
    o.idx = tp_malloc(o.nout * sizeof(int32_t));
    float *dx = tp_calloc(nin, sizeof(float));
    fill_uniform(&g, o.x, nin, -1, 1);
    fill_uniform(&g, o.r, o.nout, -1, 1);
    op_loss(&o);
    /* the window max of plane 0, output (1,2): rows 2-3, columns 4-5 */
    float m = o.x[2 * 6 + 4];
    for (int k = 1; k < 4; k++) m = fmaxf(m, o.x[(2 + k / 2) * 6 + 4 + k % 2]);
    assert_true(o.out[1 * 3 + 2] == m);
    maxpool2_backward(dx, o.r, o.idx, o.B, o.C, o.H, o.W);
    gc_check("maxpool2 dinp", o.x, dx, nin, op_loss, &o, 1e-3f, 1e-2);
    /* the odd last row gets nothing */
    for (int j = 0; j < 6; j++) assert_true(dx[6 * 6 + j] == 0);
    free(o.x), free(o.out), free(o.r), free(o.idx), free(dx);
}

static void test_resize_grad(void **state)
{
    (void)state;
    struct rng g;
    rng_seed(&g, 6);
    /* (H,W) -> (OH,OW): down x up, up x down, identity x up */
    const int sz[3][4] = {{9, 7, 4, 11}, {5, 12, 13, 5}, {6, 6, 6, 10}};
    for (int t = 0; t < 3; t++) {
        struct opctx o = {.kind = 1, .B = 2, .C = 1, .H = sz[t][0], .W = sz[t][1]};
        resize_aa_init(&o.rs, o.H, o.W, sz[t][2], sz[t][3]);
        const size_t nin = (size_t)2 * o.H * o.W;
        o.nout = (size_t)2 * sz[t][2] * sz[t][3];
        o.x = tp_malloc(nin * sizeof(float));
        o.out = tp_malloc(o.nout * sizeof(float));
        o.r = tp_malloc(o.nout * sizeof(float));
        o.tmp = tp_malloc(resize_aa_tmp_numel(&o.rs, 2) * sizeof(float));
        float *dx = tp_calloc(nin, sizeof(float));
        fill_uniform(&g, o.x, nin, 0, 1);
        fill_uniform(&g, o.r, o.nout, -1, 1);
        /* a constant image stays constant (weights sum to 1) */
        for (size_t i = 0; i < nin; i++) dx[i] = 0.25f;
        resize_aa_forward(o.out, o.tmp, dx, &o.rs, 2);
        for (size_t i = 0; i < o.nout; i++) assert_float_equal(o.out[i], 0.25f, 1e-6);
        memset(dx, 0, nin * sizeof(float));
        resize_aa_backward(dx, o.tmp, o.r, &o.rs, 2);
        gc_check("resize_aa dinp", o.x, dx, nin, op_loss, &o, 1e-2f, 1e-3);
        resize_aa_free(&o.rs);
        free(o.x), free(o.out), free(o.r), free(o.tmp), free(dx);
    }
}

static void test_channels(void **state)
{
    (void)state;
    struct rng g;
    rng_seed(&g, 7);
    const int B = 2, HW = 10;
    const int pairs[3][2] = {{1, 3}, {3, 1}, {3, 3}};
    for (int t = 0; t < 3; t++) {
        const int C = pairs[t][0], OC = pairs[t][1];
        float x[2 * 3 * 10], y[2 * 3 * 10], out[2 * 3 * 10], dx[2 * 3 * 10] = {0};
        fill_uniform(&g, x, (size_t)B * C * HW, -1, 1);
        fill_uniform(&g, y, (size_t)B * OC * HW, -1, 1);
        for (int b = 0; b < B; b++) img_channels(out + b * OC * HW, OC, x + b * C * HW, C, 1, HW);
        channels_backward(dx, C, y, OC, B, HW);
        /* <A x, y> == <x, A^T y> */
        double l = gc_dot(out, y, (size_t)B * OC * HW), r = gc_dot(x, dx, (size_t)B * C * HW);
        assert_true(fabs(l - r) < 1e-5);
    }
}

/* ---- loss gradients against finite differences ----------------------------- */

struct gctx {
    struct perceptual *p;
    float *pred, *target;
    int B, C, H, W;
    float F;
};

static double g_loss(void *c)
{
    struct gctx *x = c;
    return x->F * perceptual_loss(x->p, NULL, x->pred, x->target, x->B, x->C, x->H, x->W, 1.0f);
}

/* d loss / d pred against finite differences, the loss scaled so that the
 * largest gradient is 1 (then gc_check's tolerance is relative to it). The
 * step is small (1e-4) because ReLU gates and max-pool choices near a
 * point put kinks in the loss that gc_check cannot tell from curvature at
 * larger steps; measured worst errors at 1e-4 are 1.4e-3 (LPIPS), 3e-4
 * (default net) and 2e-3 (ConvNeXt) against the tolerance 1e-2. */
static void grad_check(const char *what, struct perceptual *p, int B, int C, int H, int W,
                       uint64_t seed)
{
    struct rng g;
    rng_seed(&g, seed);
    const size_t n = (size_t)B * C * H * W;
    struct gctx x = {.p = p, .B = B, .C = C, .H = H, .W = W, .F = 1};
    x.pred = tp_malloc(n * sizeof(float));
    x.target = tp_malloc(n * sizeof(float));
    float *d = tp_calloc(n, sizeof(float));
    images(&g, x.pred, x.target, n);
    const double l = perceptual_loss(p, d, x.pred, x.target, B, C, H, W, 1.0f);
    const double gmax = max_abs(d, n);
    assert_true(l > 0 && isfinite(l) && gmax > 0);
    x.F = (float)(1.0 / gmax);
    memset(d, 0, n * sizeof(float));
    perceptual_loss(p, d, x.pred, x.target, B, C, H, W, x.F);
    gc_check(what, x.pred, d, n, g_loss, &x, 1e-4f, 1e-2);
    /* the same images give loss 0 and no gradient */
    memset(d, 0, n * sizeof(float));
    assert_true(perceptual_loss(p, d, x.target, x.target, B, C, H, W, 1.0f) == 0);
    assert_true(max_abs(d, n) == 0);
    free(x.pred), free(x.target), free(d);
}

static void test_grad_lpips(void **state)
{
    (void)state;
    struct perceptual *p = random_net("lpips.safetensors",
                                      (const char *[]){"arch", "lpips-vgg16", "cfg", "6,M,8,8,M,10", NULL}, 11);
    assert_string_equal(perceptual_arch(p), "lpips-vgg16");
    grad_check("lpips-vgg16 rgb", p, 2, 3, 8, 9, 12);
    grad_check("lpips-vgg16 gray", p, 2, 1, 8, 8, 13);
    perceptual_free(p);
}

static void test_grad_percep(void **state)
{
    (void)state;
    struct perceptual *p = random_net(
        "percep.safetensors", (const char *[]){"arch", "tokpipe-percep", "cfg", "6,M,8,M,8", "in_channels", "1", NULL}, 21);
    grad_check("tokpipe-percep gray", p, 2, 1, 8, 8, 22);
    grad_check("tokpipe-percep rgb (luma)", p, 1, 3, 9, 8, 23);
    perceptual_free(p);
}

static void test_grad_convnext(void **state)
{
    (void)state;
    struct perceptual *p = random_net("convnext.safetensors",
                                      (const char *[]){"arch", "convnext-s", "dims", "4,6,8,8", "depths", "1,1,2,1",
                                                       "num_classes", "5", "resize", "40", NULL},
                                      31);
    grad_check("convnext-s rgb, resized up", p, 2, 3, 20, 24, 32);
    grad_check("convnext-s gray, resized down", p, 1, 1, 50, 44, 33);
    perceptual_free(p);
    p = random_net("convnext0.safetensors",
                   (const char *[]){"arch", "convnext-s", "dims", "4,4,4,4", "depths", "1,1,1,1", "num_classes",
                                    "3", "resize", "0", NULL},
                   34);
    grad_check("convnext-s, no resize", p, 1, 3, 32, 32, 35);
    perceptual_free(p);
}

/* ---- PyTorch references ------------------------------------------------------- */

/* The fixture's weights (every tensor but ref.*) and metadata as a net. */
static struct perceptual *fixture_net(struct st *f)
{
    struct st *w = st_new();
    for (int i = 0; i < f->nmeta; i++) st_meta_set(w, f->meta_key[i], f->meta_val[i]);
    for (int i = 0; i < f->n; i++)
        if (strncmp(f->t[i].name, "ref.", 4) != 0)
            st_put_ref(w, f->t[i].name, f->t[i].dtype, f->t[i].ndim, f->t[i].shape, f->t[i].data);
    struct perceptual *p;
    if (perceptual_from_st(&p, w) != 0) fail_msg("%s", tp_err());
    st_free(w);
    return p;
}

static void reference(const char *name, double grad_tol)
{
    struct st *f = ref_load(name);
    struct perceptual *p = fixture_net(f);
    struct st_tensor *t = st_require(f, "ref.pred", ST_F32, 4);
    assert_non_null(t);
    const int B = (int)t->shape[0], C = (int)t->shape[1], H = (int)t->shape[2], W = (int)t->shape[3];
    const size_t n = (size_t)B * C * H * W;
    float *d = tp_calloc(n, sizeof(float));
    const float *want = ref_f32(f, "ref.pred_grad", n);
    float loss = (float)perceptual_loss(p, d, ref_f32(f, "ref.pred", n), ref_f32(f, "ref.target", n), B, C,
                                        H, W, 1.0f);
    printf("%s: loss %.7g (torch %.7g), max |grad| %.3g\n", name, loss, ref_f32(f, "ref.loss", 1)[0],
           max_abs(want, n));
    check_close("loss", &loss, ref_f32(f, "ref.loss", 1), 1, 0, 2e-5);
    check_close("pred.grad", d, want, n, grad_tol * max_abs(want, n), 1e-3);
    free(d);
    perceptual_free(p);
    st_free(f);
}

static void test_ref_lpips(void **state)
{
    (void)state;
    reference("perceptual_lpips", 1e-4); /* upstream's names: net.sliceK.N.* */
}

static void test_ref_convnext(void **state)
{
    (void)state;
    reference("perceptual_convnext", 1e-4);
}

static void test_ref_percep(void **state)
{
    (void)state;
    reference("perceptual_percep", 1e-4);
}

static void test_ref_resize(void **state)
{
    (void)state;
    struct st *f = ref_load("perceptual_resize");
    const int sizes[3][2] = {{61, 50}, {16, 20}, {19, 44}};
    const char *names[3] = {"up", "down", "mixed"};
    const size_t nin = 2 * 3 * 37 * 29;
    const float *x = ref_f32(f, "x", nin);
    char key[64];
    for (int t = 0; t < 3; t++) {
        struct resize_aa rs;
        resize_aa_init(&rs, 37, 29, sizes[t][0], sizes[t][1]);
        const size_t nout = (size_t)6 * sizes[t][0] * sizes[t][1];
        float *out = tp_malloc(nout * sizeof(float)), *dx = tp_calloc(nin, sizeof(float));
        float *tmp = tp_malloc(resize_aa_tmp_numel(&rs, 6) * sizeof(float));
        resize_aa_forward(out, tmp, x, &rs, 6);
        check_close(names[t], out, ref_f32(f, names[t], nout), nout, 1e-6, 1e-6);
        snprintf(key, sizeof key, "%s.r", names[t]);
        resize_aa_backward(dx, tmp, ref_f32(f, key, nout), &rs, 6);
        snprintf(key, sizeof key, "%s.x_grad", names[t]);
        check_close(key, dx, ref_f32(f, key, nin), nin, 1e-5, 1e-5);
        resize_aa_free(&rs);
        free(out), free(dx), free(tmp);
    }
    struct resize_aa rs;
    resize_aa_init(&rs, 32, 32, 224, 224);
    float *out = tp_malloc(224 * 224 * sizeof(float)), *tmp = tp_malloc(resize_aa_tmp_numel(&rs, 1) * sizeof(float));
    resize_aa_forward(out, tmp, ref_f32(f, "x224", 32 * 32), &rs, 1);
    check_close("32 -> 224", out, ref_f32(f, "y224", 224 * 224), 224 * 224, 1e-6, 1e-6);
    resize_aa_free(&rs);
    free(out), free(tmp);
    st_free(f);
}

/* ---- loading, errors, determinism -------------------------------------------- */

static void expect_load_error(const struct st *w, const char *needle)
{
    struct perceptual *p = (struct perceptual *)1;
    assert_int_equal(perceptual_from_st(&p, w), -1);
    assert_null(p);
    if (!strstr(tp_err(), needle)) fail_msg("error '%s' does not say '%s'", tp_err(), needle);
}

static void test_load_errors(void **state)
{
    (void)state;
    struct perceptual *p = random_net("alias.safetensors",
                                      (const char *[]){"arch", "lpips-vgg16", "cfg", "4,M,4", NULL}, 41);
    /* the same weights under LPIPS's own names, without arch: inferred */
    struct st *w = NULL;
    assert_int_equal(st_load(&w, tmp_path("alias.safetensors")), 0);
    struct st *a = st_new();
    st_meta_set(a, "cfg", "4,M,4");
    for (int i = 0; i < w->n; i++) {
        char name[128];
        const struct st_tensor *t = &w->t[i];
        if (strcmp(t->name, "features.0.weight") == 0 || strcmp(t->name, "features.0.bias") == 0)
            snprintf(name, sizeof name, "net.slice1.%s", t->name + 9);
        else if (strncmp(t->name, "features.", 9) == 0)
            snprintf(name, sizeof name, "net.slice2.%s", t->name + 9);
        else
            snprintf(name, sizeof name, "%s", t->name);
        st_put_ref(a, name, t->dtype, t->ndim, t->shape, t->data);
    }
    st_put_v(a, "classifier.6.weight", ST_F32, 2, 3, 4); /* torchvision's head: ignored */
    struct perceptual *q;
    assert_int_equal(perceptual_from_st(&q, a), 0);
    assert_string_equal(perceptual_arch(q), "lpips-vgg16");
    struct rng g;
    rng_seed(&g, 42);
    float x[3 * 6 * 6], y[3 * 6 * 6];
    images(&g, x, y, 108);
    const double l1 = perceptual_loss(p, NULL, x, y, 1, 3, 6, 6, 1), l2 = perceptual_loss(q, NULL, x, y, 1, 3, 6, 6, 1);
    assert_true(l1 > 0 && l1 == l2);
    /* shapes the network cannot take */
    assert_true(isnan(perceptual_loss(q, NULL, x, y, 1, 2, 6, 6, 1)));
    assert_non_null(strstr(tp_err(), "1 or 3"));
    assert_true(isnan(perceptual_loss(q, NULL, x, y, 1, 3, 1, 6, 1)));
    assert_non_null(strstr(tp_err(), "at least 2x2"));
    perceptual_free(q);
    perceptual_free(p);
    st_free(a);

    /* errors */
    st_meta_set(w, "arch", "resnet");
    expect_load_error(w, "arch 'resnet'");
    st_meta_set(w, "arch", "lpips-vgg16");
    st_meta_set(w, "cfg", "4,M,M,4");
    expect_load_error(w, "a pool must follow a conv");
    st_meta_set(w, "cfg", "4,M,5");
    expect_load_error(w, "features.3.weight");
    st_meta_set(w, "cfg", "4,M,4");
    st_remove(w, "lin1.model.1.weight");
    expect_load_error(w, "lin1.model.1.weight");
    st_meta_set(w, "arch", "tokpipe-percep");
    st_meta_set(w, "in_channels", "2");
    expect_load_error(w, "in_channels=2");
    st_free(w);

    p = random_net("extra.safetensors", (const char *[]){"arch", "tokpipe-percep", "cfg", "4,M,4", NULL}, 43);
    perceptual_free(p);
    assert_int_equal(st_load(&w, tmp_path("extra.safetensors")), 0);
    st_put_v(w, "features.9.weight", ST_F32, 1, 4);
    expect_load_error(w, "'features.9.weight' is not a parameter of tokpipe-percep");
    st_remove(w, "features.9.weight");
    st_meta_set(w, "slope", "x");
    expect_load_error(w, "slope");
    st_free(w);
    struct perceptual *r;
    assert_int_equal(perceptual_load(&r, tmp_path("missing.safetensors")), -1);
    assert_non_null(strstr(tp_err(), "missing.safetensors"));
}

static void test_deterministic_chunks(void **state)
{
    (void)state;
    const char *nets[2][12] = {
        {"arch", "tokpipe-percep", "cfg", "8,M,8", "in_channels", "3", NULL},
        {"arch", "convnext-s", "dims", "4,4,8,8", "depths", "1,1,1,1", "num_classes", "4", "resize", "32", NULL},
    };
    for (int k = 0; k < 2; k++) {
        struct perceptual *p = random_net("det.safetensors", nets[k], 51 + k);
        struct rng g;
        rng_seed(&g, 52);
        const int B = 3, C = 3, H = 12, W = 12;
        const size_t n = (size_t)B * C * H * W, per = n / B;
        float *x = tp_malloc(n * sizeof(float)), *y = tp_malloc(n * sizeof(float));
        float *d1 = tp_calloc(n, sizeof(float)), *d2 = tp_calloc(n, sizeof(float));
        float *d3 = tp_calloc(n, sizeof(float));
        images(&g, x, y, n);
        const double l1 = perceptual_loss(p, d1, x, y, B, C, H, W, 1), l2 = perceptual_loss(p, d2, x, y, B, C, H, W, 1);
        assert_true(l1 == l2);
        assert_memory_equal(d1, d2, n * sizeof(float));
        /* the batch loss is the mean of the images' losses; the gradient
         * of image i is its own gradient / B */
        double sum = 0;
        for (int i = 0; i < B; i++)
            sum += perceptual_loss(p, d3 + i * per, x + i * per, y + i * per, 1, C, H, W, 1.0f / B);
        assert_true(fabs(sum / B - l1) <= 1e-6 * l1);
        check_close("per-image gradient", d3, d1, n, 1e-6 * max_abs(d1, n), 1e-4);
        free(x), free(y), free(d1), free(d2), free(d3);
        perceptual_free(p);
    }
}

/* ---- training the default network ---------------------------------------------- */

/* A labelled stream: class 0 has vertical stripes, class 1 horizontal
 * ones, at random phases, plus noise; records of 16 images of 1x12x12. */
static void write_stripes(const char *path, int nrec, int seek, uint64_t seed)
{
    struct rng g;
    rng_seed(&g, seed);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    struct tz_writer *w = tz_writer_open(fd, path, 1, seek);
    assert_non_null(w);
    for (int r = 0; r < nrec; r++) {
        struct st *rec = st_new();
        float *img = st_put_v(rec, "image", ST_F32, 4, 16, 1, 12, 12)->data;
        int32_t *lab = st_put_v(rec, "label", ST_I32, 1, 16)->data;
        for (int i = 0; i < 16; i++) {
            lab[i] = (int)rng_below(&g, 2);
            const int phase = (int)rng_below(&g, 4);
            for (int h = 0; h < 12; h++)
                for (int x = 0; x < 12; x++)
                    img[(i * 12 + h) * 12 + x] =
                        0.6f * (((lab[i] ? h : x) + phase) % 4 < 2) + 0.4f * rng_uniform(&g);
        }
        assert_int_equal(tz_writer_put(w, rec), 0);
        st_free(rec);
    }
    assert_int_equal(tz_writer_close(w), 0);
    close(fd);
}

static void test_train(void **state)
{
    (void)state;
    const char *data = tmp_path("stripes.tz"), *out = tmp_path("trained.safetensors");
    write_stripes(data, 6, 1, 61);
    struct perc_train_cfg c;
    perc_train_cfg_init(&c);
    c.cfg = "8,M,16";
    c.batch = 16;
    c.warmup = 5;
    c.lr = 1e-2;
    c.test = data;
    assert_int_equal(perceptual_train(data, out, 60, 7, &c), 0);
    struct st *w = NULL;
    assert_int_equal(st_load(&w, out), 0);
    assert_string_equal(st_meta_get(w, "arch"), "tokpipe-percep");
    assert_string_equal(st_meta_get(w, "num_classes"), "2");
    assert_string_equal(st_meta_get(w, "train_steps"), "60");
    double acc;
    assert_int_equal(st_meta_get_double(w, "test_acc", &acc), 0);
    long n;
    double acc2;
    assert_int_equal(perceptual_accuracy(out, data, &acc2, &n), 0);
    printf("stripes: accuracy %.3f on %ld images after 60 steps\n", acc2, n);
    assert_true(acc == acc2 && n == 96);
    assert_true(acc > 0.95);
    /* the LPIPS heads were frozen at 1 */
    const struct st_tensor *lin = st_find(w, "lin1.model.1.weight");
    for (int i = 0; i < 16; i++) assert_true(((float *)lin->data)[i] == 1.0f);
    st_free(w);
    /* the same seed gives the same bits */
    const char *out2 = tmp_path("trained2.safetensors");
    c.test = NULL;
    assert_int_equal(perceptual_train(data, out2, 60, 7, &c), 0);
    struct st *a = NULL, *b = NULL;
    assert_int_equal(st_load(&a, out), 0);
    assert_int_equal(st_load(&b, out2), 0);
    const struct st_tensor *ta = st_find(a, "features.3.weight"), *tb = st_find(b, "features.3.weight");
    assert_memory_equal(ta->data, tb->data, ta->nbytes);
    st_free(a), st_free(b);
    /* a stream without a seek table cannot be sampled; no output appears */
    const char *noseek = tmp_path("noseek.tz"), *none = tmp_path("none.safetensors");
    write_stripes(noseek, 2, 0, 62);
    assert_int_equal(perceptual_train(noseek, none, 5, 7, &c), -1);
    if (!strstr(tp_err(), "seek")) fail_msg("%s", tp_err());
    assert_int_equal(access(none, F_OK), -1);
    assert_int_equal(perceptual_accuracy(out, tmp_path("absent.tz"), &acc, &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_maxpool_grad),
        cmocka_unit_test(test_resize_grad),
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_grad_lpips),
        cmocka_unit_test(test_grad_percep),
        cmocka_unit_test(test_grad_convnext),
        cmocka_unit_test(test_ref_resize),
        cmocka_unit_test(test_ref_percep),
        cmocka_unit_test(test_ref_convnext),
        cmocka_unit_test(test_ref_lpips),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_deterministic_chunks),
        cmocka_unit_test(test_train),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
