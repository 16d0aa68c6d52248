/* test_imagebert.c - the MaskGIT generator module: logits and every
 * parameter gradient against PyTorch (tests/reference/ref_imagebert.py:
 * evaluation, training with tokpipe's dropout masks, guided inference in
 * three schedules), guidance as the hand combination of two unguided
 * passes, finite differences through the whole model, 2D ids, the
 * parameter table (upstream names, the L-32 generator's 177.2M), input
 * errors, and identical bits on repeated runs at 2 threads. */
#include "test.h"
#include "gradcheck.h"

#include "blas.h"
#include "cli.h"
#include "imagebert.h"
#include "linear_tile.h"
#include "simd.h"
#include "maskgit.h"

/* Metadata from "k=v k=v ..." (the presets' syntax). */
static struct st *meta_kv(const char *kv)
{
    struct st *meta = st_new();
    assert_int_equal(st_meta_apply_kv(meta, kv, ' '), 0);
    return meta;
}

static void build(struct module *m, const char *kv)
{
    struct st *meta = meta_kv(kv);
    if (module_build(m, (const struct module_ops *const[]){&imagebert_ops, NULL}, meta) != 0)
        fail_msg("%s", tp_err());
    st_free(meta);
}

#define REF_ARCH "arch=imagebert codes=13 classes=3 tokens=6 width=16 layers=2 heads=2 mlp=32"

/* A record with ids [B,K] (or dims), labels and a seed. */
static struct st *record(const int32_t *ids, const int32_t *label, int B, int K, long seed)
{
    struct st *r = st_new();
    memcpy(st_put_v(r, "ids", ST_I32, 2, (int64_t)B, (int64_t)K)->data, ids, sizeof(int32_t) * B * K);
    if (label) memcpy(st_put_v(r, "label", ST_I32, 1, (int64_t)B)->data, label, sizeof(int32_t) * B);
    st_meta_set_long(r, "seed", seed);
    return r;
}

static float *logits_of(struct st *rec) { return st_require(rec, "logits", ST_F32, 3)->data; }

/* The fixture's weights ("p.NAME") into the module by upstream name. */
static void load_ref_weights(struct module *m, const struct st *s)
{
    struct st *w = st_new();
    for (int i = 0; i < s->n; i++)
        if (strncmp(s->t[i].name, "p.", 2) == 0)
            st_put_ref(w, s->t[i].name + 2, ST_F32, s->t[i].ndim, s->t[i].shape, s->t[i].data);
    if (params_load(&m->params, w, 0) != 0) fail_msg("%s", tp_err());
    st_free(w);
}

static struct st *ref_record(const struct st *s, const char *c, long seed)
{
    char name[64];
    snprintf(name, sizeof name, "%s.ids", c);
    struct st_tensor *ids = st_require(s, name, ST_I32, 2);
    snprintf(name, sizeof name, "%s.label", c);
    struct st_tensor *lab = st_require(s, name, ST_I32, 1);
    assert_non_null(ids);
    assert_non_null(lab);
    return record(ids->data, lab->data, (int)ids->shape[0], (int)ids->shape[1], seed);
}

/* The fixture, and a module of arch with its weights. */
static struct st *ref_module(struct module *m, const char *arch)
{
    struct st *s = ref_load("imagebert");
    build(m, arch);
    load_ref_weights(m, s);
    return s;
}

/* Forward (train) and backward of a fixture case; logits and every gradient compared. */
static void check_train_case(const char *arch, const char *c)
{
    struct module m;
    struct st *s = ref_module(&m, arch);
    struct st *rec = ref_record(s, c, 4242);
    if (m.ops->forward(&m, rec, 1) != 0) fail_msg("%s", tp_err());
    char name[160];
    snprintf(name, sizeof name, "%s.logits", c);
    size_t nl = 3 * 6 * 13;
    check_close(name, logits_of(rec), ref_f32(s, name, nl), nl, 1e-4, 1e-3);
    struct st *g = st_new(), *ig = st_new();
    snprintf(name, sizeof name, "%s.dlogits", c);
    memcpy(st_put_v(g, "logits.grad", ST_F32, 3, (int64_t)3, (int64_t)6, (int64_t)13)->data, ref_f32(s, name, nl),
           sizeof(float) * nl);
    if (m.ops->backward(&m, g, ig) != 0) fail_msg("%s", tp_err());
    assert_int_equal(ig->n, 0); /* ids get no gradient */
    for (int i = 0; i < m.params.n; i++) {
        const struct param_spec *e = &m.params.spec[i];
        snprintf(name, sizeof name, "%s.g.%s", c, e->name);
        check_close(name, m.params.grad + e->offset, ref_f32(s, name, e->numel), e->numel, 1e-4, 1e-3);
    }
    st_free(g), st_free(ig), st_free(rec);
    module_free(&m);
    st_free(s);
}

static void test_ref_eval(void **state)
{
    (void)state;
    /* dropout 0: training arithmetic equals evaluation, which has gradients in the fixture */
    check_train_case(REF_ARCH " dropout=0 attn_drop=0", "eval");
    /* configured dropout is ignored with train = 0 */
    struct module m;
    struct st *s = ref_module(&m, REF_ARCH " dropout=0.2 attn_drop=0.25");
    struct st *rec = ref_record(s, "eval", 4242);
    if (m.ops->forward(&m, rec, 0) != 0) fail_msg("%s", tp_err());
    check_close("eval.logits (train 0)", logits_of(rec), ref_f32(s, "eval.logits", 234), 234, 1e-4, 1e-3);
    st_free(rec);
    module_free(&m);
    st_free(s);
}

static void test_ref_dropout(void **state)
{
    (void)state;
    check_train_case(REF_ARCH " dropout=0.2 attn_drop=0.25", "drop");
}

static void test_ref_guidance(void **state)
{
    (void)state;
    struct module m;
    struct st *s = ref_module(&m, REF_ARCH);
    static const char *const kinds[] = {"constant", "linear", "power-cosine"};
    for (int k = 0; k < 3; k++) {
        char c[32], name[64];
        snprintf(c, sizeof c, "cfg_%s", kinds[k]);
        struct st *rec = ref_record(s, c, 1);
        st_meta_set(rec, "guidance", "4.5");
        st_meta_set(rec, "guidance_schedule", kinds[k]);
        st_meta_set(rec, "guidance_pow", "3");
        st_meta_set(rec, "sample_step", "2");
        st_meta_set(rec, "sample_steps", "8");
        if (m.ops->forward(&m, rec, 0) != 0) fail_msg("%s", tp_err());
        snprintf(name, sizeof name, "%s.logits", c);
        check_close(name, logits_of(rec), ref_f32(s, name, 234), 234, 1e-4, 1e-3);
        st_free(rec);
    }
    module_free(&m);
    st_free(s);
}

/* ---- guidance by hand ---- */

enum { B = 2, K = 4, V = 7 };
#define TINY "arch=imagebert codes=7 classes=2 tokens=4 width=8 layers=2 heads=2 mlp=16"

static void tiny_inputs(int32_t *ids, int32_t *label)
{
    static const int32_t i0[B * K] = {7, 3, 0, 7, 6, 7, 7, 1};
    static const int32_t l0[B] = {1, 0};
    memcpy(ids, i0, sizeof i0);
    memcpy(label, l0, sizeof l0);
}

static void test_guidance_by_hand(void **state)
{
    (void)state;
    struct module m;
    build(&m, TINY);
    params_fill_init(&m.params, 3);
    /* larger weights than the init, so that passes differ visibly */
    for (size_t i = 0; i < m.params.total; i++) m.params.data[i] *= 10;
    int32_t ids[B * K], label[B], null[B] = {-1, -1};
    tiny_inputs(ids, label);
    size_t n = B * K * V;
    struct st *rc = record(ids, label, B, K, 0), *ru = record(ids, null, B, K, 0);
    assert_int_equal(m.ops->forward(&m, rc, 0), 0);
    assert_int_equal(m.ops->forward(&m, ru, 0), 0);
    const float *c = logits_of(rc), *u = logits_of(ru);
    assert_memory_not_equal(c, u, sizeof(float) * n);
    struct {
        const char *kind, *step;
        double scale; /* by hand: g 2.0, step of 4, pow 2 */
        int pc;
    } cases[] = {{"constant", "0", 2.0, 0},       {"linear", "1", 0.25 * 2.0, 0},
                 {"linear", "0", 0.0, 0},          {"power-cosine", "2", 1.0 * (1 - cos(M_PI * 0.25)) / 2 + 1, 1},
                 {"power-cosine", "0", 1.0, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        struct st *r = record(ids, label, B, K, 0);
        st_meta_set(r, "guidance", "2");
        st_meta_set(r, "guidance_schedule", cases[k].kind);
        st_meta_set(r, "guidance_pow", "2");
        st_meta_set(r, "sample_step", cases[k].step);
        st_meta_set(r, "sample_steps", "4");
        assert_int_equal(m.ops->forward(&m, r, 0), 0);
        float want[B * K * V];
        for (size_t i = 0; i < n; i++) {
            float s = (float)cases[k].scale, d = c[i] - u[i];
            want[i] = cases[k].scale == 0 ? c[i] : (cases[k].pc ? u[i] : c[i]) + d * s;
        }
        /* the batched passes round a little differently from separate ones */
        check_close(cases[k].kind, logits_of(r), want, n, 1e-5, 1e-4);
        st_free(r);
    }
    st_free(rc), st_free(ru);
    module_free(&m);
}

/* Inference keeps fewer buffers than training (the layers' input,
 * block_stack_infer's chunks with the head on each): the same
 * bits whatever ran before it, a guided step after a training forward or
 * after an unguided step included. */
static void test_inference_after_training(void **state)
{
    (void)state;
    struct module a, b;
    /* without dropout, the training forward's logits are inference's */
    build(&a, TINY " dropout=0 attn_drop=0"), build(&b, TINY " dropout=0 attn_drop=0");
    params_fill_init(&a.params, 3), params_fill_init(&b.params, 3);
    int32_t ids[B * K], label[B];
    tiny_inputs(ids, label);
    size_t n = B * K * V;
    struct st *guided[2];
    for (int k = 0; k < 2; k++) {
        guided[k] = record(ids, label, B, K, 0);
        st_meta_set(guided[k], "guidance", "2");
        st_meta_set(guided[k], "guidance_schedule", "constant");
    }
    struct st *plain = record(ids, label, B, K, 0), *tr = record(ids, label, B, K, 0);
    assert_int_equal(a.ops->forward(&a, guided[0], 0), 0);
    assert_int_equal(b.ops->forward(&b, tr, 1), 0);
    assert_int_equal(b.ops->forward(&b, plain, 0), 0);
    assert_int_equal(b.ops->forward(&b, guided[1], 0), 0);
    assert_memory_equal(logits_of(guided[0]), logits_of(guided[1]), sizeof(float) * n);
    assert_memory_equal(logits_of(tr), logits_of(plain), sizeof(float) * n);
    assert_memory_not_equal(logits_of(plain), logits_of(guided[0]), sizeof(float) * n);
    st_free(guided[0]), st_free(guided[1]), st_free(plain), st_free(tr);
    module_free(&a), module_free(&b);
}

/* Widths the tiles take (linear_tile.h: 64 codes, width 64, 3 x 64 and
 * 128 wide products), at each vector width the CPU has: inference (blocks
 * and head by tiles) against the training forward without dropout (sgemm
 * throughout), guided and not. */
static void test_inference_tiles(void **state)
{
    (void)state;
    enum { TB = 3, TK = 5, TV = 64 };
    const int widths[] = {16, 8};
    int ran = 0;
    for (int w = 0; w < 2; w++) {
        if (widths[w] > simd_cpu_vl()) continue;
        simd_set_vl(widths[w]);
        assert_true(linear_tile_packed_floats(64, TV) > 0);
        struct module m;
        build(&m, "arch=imagebert codes=64 classes=3 tokens=5 width=64 layers=2 heads=2 mlp=128 dropout=0 attn_drop=0");
        params_fill_init(&m.params, 4);
        for (size_t i = 0; i < m.params.total; i++) m.params.data[i] += 0.02f * (float)((i * 7919) % 13) / 13;
        int32_t ids[TB * TK], label[TB] = {2, 0, 1}, null[TB] = {-1, -1, -1};
        for (int i = 0; i < TB * TK; i++) ids[i] = i % 3 == 0 ? TV : (i * 37) % TV; /* some masked */
        size_t n = (size_t)TB * TK * TV;
        struct st *tc = record(ids, label, TB, TK, 0), *tu = record(ids, null, TB, TK, 0);
        struct st *ic = record(ids, label, TB, TK, 0), *g = record(ids, label, TB, TK, 0);
        assert_int_equal(m.ops->forward(&m, tc, 1), 0);
        assert_int_equal(m.ops->forward(&m, tu, 1), 0);
        assert_int_equal(m.ops->forward(&m, ic, 0), 0);
        check_close("tiles", logits_of(ic), logits_of(tc), n, 1e-5, 1e-4);
        st_meta_set(g, "guidance", "2");
        st_meta_set(g, "guidance_schedule", "constant");
        assert_int_equal(m.ops->forward(&m, g, 0), 0);
        float *want = tp_malloc(n * sizeof(float));
        const float *c = logits_of(tc), *u = logits_of(tu);
        for (size_t i = 0; i < n; i++) want[i] = c[i] + 2.0f * (c[i] - u[i]);
        check_close("tiles, guided", logits_of(g), want, n, 1e-4, 1e-4);
        free(want);
        st_free(tc), st_free(tu), st_free(ic), st_free(g);
        module_free(&m);
        ran++;
    }
    simd_set_vl(-1);
    if (!ran) skip();
}

/* logits_at=masked: the logits of the masked positions, with the bits of
 * logits_at=all where the tiles run (within sgemm's rounding of another
 * row count where they do not), and 0 at every other position; guided and
 * not, a sample with every position masked and one with none among them.
 * Any other value is refused. */
static void test_logits_masked(void **state)
{
    (void)state;
    enum { TB = 4, TK = 5, TV = 64 };
    const int widths[] = {16, 8, 0};
    for (int w = 0; w < 3; w++) {
        if (widths[w] > simd_cpu_vl()) continue;
        simd_set_vl(widths[w]);
        struct module m;
        build(&m, "arch=imagebert codes=64 classes=3 tokens=5 width=64 layers=2 heads=2 mlp=128 dropout=0");
        params_fill_init(&m.params, 5);
        int32_t ids[TB * TK], label[TB] = {2, 0, 1, 2};
        for (int i = 0; i < TB * TK; i++) { /* sample 1 all masked, sample 3 none */
            const int b = i / TK;
            ids[i] = b == 1 || (b != 3 && i % 2 == 0) ? TV : (i * 37) % TV;
        }
        for (int guided = 0; guided < 2; guided++) {
            struct st *all = record(ids, label, TB, TK, 0), *msk = record(ids, label, TB, TK, 0);
            st_meta_set(all, "logits_at", "all");
            st_meta_set(msk, "logits_at", "masked");
            for (int k = 0; k < 2 && guided; k++) {
                st_meta_set(k ? msk : all, "guidance", "3");
                st_meta_set(k ? msk : all, "guidance_schedule", "constant");
            }
            assert_int_equal(m.ops->forward(&m, all, 0), 0);
            assert_int_equal(m.ops->forward(&m, msk, 0), 0);
            const float *a = logits_of(all), *g = logits_of(msk);
            for (int i = 0; i < TB * TK; i++) {
                const float *ai = a + (size_t)i * TV, *gi = g + (size_t)i * TV;
                if (ids[i] != TV)
                    for (int v = 0; v < TV; v++) assert_true(gi[v] == 0.0f);
                else if (widths[w])
                    assert_memory_equal(gi, ai, sizeof(float) * TV);
                else
                    check_close("masked, sgemm", gi, ai, TV, 1e-5, 1e-5);
            }
            st_free(all), st_free(msk);
        }
        struct st *bad = record(ids, label, TB, TK, 0);
        st_meta_set(bad, "logits_at", "some");
        assert_int_not_equal(m.ops->forward(&m, bad, 0), 0);
        assert_non_null(strstr(tp_err(), "logits_at"));
        st_free(bad);
        module_free(&m);
    }
    simd_set_vl(-1);
}

/* The packed weights kept between inference calls follow the weights (a
 * step's params_changed) and the vector width: the same bits as a module
 * that packs them afresh. */
static void infer_logits(struct module *m, const int32_t *ids, const int32_t *label, float *out, size_t n)
{
    struct st *r = record(ids, label, 3, 5, 0);
    assert_int_equal(m->ops->forward(m, r, 0), 0);
    memcpy(out, logits_of(r), n * sizeof(float));
    st_free(r);
}

static void test_pack_cache(void **state)
{
    (void)state;
    enum { TB = 3, TK = 5, TV = 64 };
    const char *arch = "arch=imagebert codes=64 classes=3 tokens=5 width=64 layers=2 heads=2 mlp=128 dropout=0";
    const size_t n = (size_t)TB * TK * TV;
    int32_t ids[TB * TK], label[TB] = {1, 2, 0};
    for (int i = 0; i < TB * TK; i++) ids[i] = i % 4 == 0 ? TV : (i * 29) % TV;
    float *first = tp_malloc(n * sizeof(float)), *again = tp_malloc(n * sizeof(float));
    float *fresh = tp_malloc(n * sizeof(float));
    struct module m, f;
    build(&m, arch);
    params_fill_init(&m.params, 9);
    simd_set_vl(simd_cpu_vl());
    infer_logits(&m, ids, label, first, n);
    infer_logits(&m, ids, label, again, n);
    assert_memory_equal(first, again, n * sizeof(float));
    /* an optimizer step's worth of change */
    for (size_t i = 0; i < m.params.total; i++) m.params.data[i] *= 1.0f + 0.01f * (float)(i % 7);
    params_changed(&m.params);
    infer_logits(&m, ids, label, again, n);
    build(&f, arch);
    memcpy(f.params.data, m.params.data, m.params.total * sizeof(float));
    params_changed(&f.params);
    infer_logits(&f, ids, label, fresh, n);
    assert_memory_equal(again, fresh, n * sizeof(float));
    assert_memory_not_equal(first, again, n * sizeof(float));
    /* another width: packed again for it */
    if (simd_cpu_vl() == 16) {
        simd_set_vl(8);
        infer_logits(&m, ids, label, again, n);
        module_free(&f);
        build(&f, arch);
        memcpy(f.params.data, m.params.data, m.params.total * sizeof(float));
        params_changed(&f.params);
        infer_logits(&f, ids, label, fresh, n);
        assert_memory_equal(again, fresh, n * sizeof(float));
    }
    simd_set_vl(-1);
    module_free(&m), module_free(&f);
    free(first), free(again), free(fresh);
}

/* ---- finite differences through the whole model ---- */

struct gc {
    struct module m;
    struct st *rec;
    float r[B * K * V];
};

static double gc_loss(void *v)
{
    struct gc *t = v;
    if (t->m.ops->forward(&t->m, t->rec, 1) != 0) fail_msg("%s", tp_err());
    return gc_dot(logits_of(t->rec), t->r, B * K * V);
}

static void test_gradcheck(void **state)
{
    (void)state;
    static struct gc t;
    build(&t.m, TINY " dropout=0.2 attn_drop=0.3");
    struct rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < t.m.params.n; i++) {
        const struct param_spec *e = &t.m.params.spec[i];
        float lo = e->init == INIT_ONES ? 0.7f : -0.5f;
        fill_uniform(&r, t.m.params.data + e->offset, e->numel, lo, lo + 1.0f);
    }
    int32_t ids[B * K], label[B];
    tiny_inputs(ids, label);
    label[1] = -1;
    t.rec = record(ids, label, B, K, 99);
    fill_uniform(&r, t.r, B * K * V, -1, 1);
    gc_loss(&t);
    struct st *g = st_new(), *ig = st_new();
    memcpy(st_put_v(g, "logits.grad", ST_F32, 3, (int64_t)B, (int64_t)K, (int64_t)V)->data, t.r, sizeof t.r);
    assert_int_equal(t.m.ops->backward(&t.m, g, ig), 0);
    for (int i = 0; i < t.m.params.n; i++) {
        const struct param_spec *e = &t.m.params.spec[i];
        gc_check(e->name, t.m.params.data + e->offset, t.m.params.grad + e->offset, e->numel, gc_loss, &t, 1e-2f,
                 3e-2);
    }
    st_free(g), st_free(ig), st_free(t.rec);
    module_free(&t.m);
}

/* ---- shapes, table, errors, determinism ---- */

static void test_ids_2d(void **state)
{
    (void)state;
    struct module m;
    build(&m, TINY);
    params_fill_init(&m.params, 5);
    int32_t ids[B * K], label[B];
    tiny_inputs(ids, label);
    struct st *flat = record(ids, label, B, K, 0), *grid = st_new();
    memcpy(st_put_v(grid, "ids", ST_I32, 3, (int64_t)B, (int64_t)2, (int64_t)2)->data, ids, sizeof ids);
    memcpy(st_put_v(grid, "label", ST_I32, 1, (int64_t)B)->data, label, sizeof label);
    assert_int_equal(m.ops->forward(&m, flat, 0), 0);
    assert_int_equal(m.ops->forward(&m, grid, 0), 0);
    struct st_tensor *lg = st_require(grid, "logits", ST_F32, 4);
    assert_non_null(lg);
    assert_true(lg->shape[1] == 2 && lg->shape[2] == 2 && lg->shape[3] == V);
    assert_memory_equal(lg->data, logits_of(flat), sizeof(float) * B * K * V);
    /* no label field: every sample is the null class */
    int32_t null[B] = {-1, -1};
    struct st *nl = record(ids, NULL, B, K, 0), *ml = record(ids, null, B, K, 0);
    assert_int_equal(m.ops->forward(&m, nl, 0), 0);
    assert_int_equal(m.ops->forward(&m, ml, 0), 0);
    assert_memory_equal(logits_of(nl), logits_of(ml), sizeof(float) * B * K * V);
    st_free(flat), st_free(grid), st_free(nl), st_free(ml);
    module_free(&m);
}

static size_t preset_params(const char *name)
{
    struct st *meta = NULL;
    for (int i = 0; imagebert_presets[i][0]; i++)
        if (strcmp(imagebert_presets[i][0], name) == 0) meta = meta_kv(imagebert_presets[i][1]);
    if (!meta) fail_msg("no preset %s", name);
    struct imagebert_cfg c;
    if (imagebert_cfg_from_meta(&c, meta) != 0) fail_msg("%s", tp_err());
    struct params p;
    params_init_table(&p);
    imagebert_params_add(&p, &c);
    size_t n = p.total;
    params_free(&p);
    st_free(meta);
    return n;
}

static void test_table(void **state)
{
    (void)state;
    /* upstream's L-32 generator: 177.2M (upstream.md C.8) */
    assert_int_equal(preset_params("generator-titok-l32"), 177202432);
    assert_int_equal(preset_params("generator-titok-b64"), 177202432 + 32 * 768);
    /* maskgit-tiny: embeddings (1024+10+2)x256 + 33x256 + 2x256 + 512, 6 layers, head */
    size_t layer = 4 * 256 * 256 + 2 * 1024 * 256 + 9 * 256 + 1024;
    assert_int_equal(preset_params("maskgit-tiny"), 1036 * 256 + 33 * 256 + 512 + 512 + 6 * layer + 1024 * 256 + 1024);
    struct module m;
    build(&m, TINY);
    const struct params *p = &m.params;
    assert_string_equal(p->spec[0].name, "model.embeddings.word_embeddings.weight");
    assert_int_equal(p->spec[0].shape[0], 7 + 2 + 2);
    assert_int_equal(p->spec[0].init, INIT_NORMAL);
    assert_true(p->spec[0].a == 0.02f);
    const struct param_spec *e = params_find(p, "model.embeddings.position_embeddings.weight");
    assert_true(e && e->shape[0] == K + 1 && e->shape[1] == 8);
    e = params_find(p, "model.embeddings.token_type_embeddings.weight");
    assert_true(e && e->shape[0] == 2);
    assert_non_null(params_find(p, "model.encoder.layer.1.output.LayerNorm.bias"));
    assert_null(params_find(p, "model.encoder.layer.2.output.LayerNorm.bias"));
    e = params_find(p, "model.lm_head.weight");
    assert_true(e && e->shape[0] == V && e->shape[1] == 8 && e->init == INIT_NORMAL);
    assert_string_equal(p->spec[p->n - 1].name, "model.lm_head.bias");
    assert_int_equal(p->spec[p->n - 1].init, INIT_ZEROS);
    module_free(&m);
}

static void expect_error(struct module *m, struct st *rec, int train, const char *text)
{
    assert_int_equal(m->ops->forward(m, rec, train), -1);
    if (!strstr(tp_err(), text)) fail_msg("error '%s' does not mention '%s'", tp_err(), text);
    st_free(rec);
}

static void test_errors(void **state)
{
    (void)state;
    struct module m;
    build(&m, TINY);
    int32_t ids[B * K], label[B];
    tiny_inputs(ids, label);
    ids[5] = V + 1;
    expect_error(&m, record(ids, label, B, K, 0), 0, "field 'ids': id 8 of sample 1");
    ids[5] = -1;
    expect_error(&m, record(ids, label, B, K, 0), 0, "outside [0,7]");
    tiny_inputs(ids, label);
    label[0] = 2;
    expect_error(&m, record(ids, label, B, K, 0), 0, "field 'label'");
    tiny_inputs(ids, label);
    expect_error(&m, record(ids, label, 1, B * K, 0), 0, "[B,4]");
    struct st *r = record(ids, label, B, K, 0);
    st_meta_set(r, "guidance", "3");
    expect_error(&m, r, 0, "sampling step");
    r = record(ids, label, B, K, 0);
    st_meta_set(r, "guidance", "3");
    st_meta_set(r, "guidance_schedule", "cosine");
    expect_error(&m, r, 0, "guidance_schedule");
    /* backward after an inference forward, and with a gradient of another shape */
    r = record(ids, label, B, K, 0);
    assert_int_equal(m.ops->forward(&m, r, 0), 0);
    struct st *g = st_new(), *ig = st_new();
    st_put_v(g, "logits.grad", ST_F32, 3, (int64_t)B, (int64_t)K, (int64_t)V);
    assert_int_equal(m.ops->backward(&m, g, ig), -1);
    assert_int_equal(m.ops->forward(&m, r, 1), 0);
    st_put_v(g, "logits.grad", ST_F32, 3, (int64_t)B, (int64_t)K, (int64_t)(V - 1));
    assert_int_equal(m.ops->backward(&m, g, ig), -1);
    assert_non_null(strstr(tp_err(), "logits.grad"));
    st_free(g), st_free(ig), st_free(r);
    module_free(&m);
}

static void run_once(float *logits, float *grad, size_t np, const int32_t *ids, const int32_t *label, int b, int k)
{
    struct module m;
    build(&m, "arch=imagebert codes=50 classes=4 tokens=16 width=64 layers=2 heads=4 mlp=256");
    params_fill_init(&m.params, 8);
    assert_int_equal(m.params.total, np);
    struct st *rec = record(ids, label, b, k, 31);
    assert_int_equal(m.ops->forward(&m, rec, 1), 0);
    memcpy(logits, logits_of(rec), sizeof(float) * b * k * 50);
    struct st *g = st_new(), *ig = st_new();
    struct st_tensor *t = st_put_v(g, "logits.grad", ST_F32, 3, (int64_t)b, (int64_t)k, (int64_t)50);
    struct rng r;
    rng_seed(&r, 2);
    fill_uniform(&r, t->data, (size_t)b * k * 50, -1, 1);
    assert_int_equal(m.ops->backward(&m, g, ig), 0);
    memcpy(grad, m.params.grad, sizeof(float) * np);
    st_free(g), st_free(ig), st_free(rec);
    module_free(&m);
}

/* Identical samples (ids and class token) run once in inference: a batch
 * with repeats has, sample by sample, the logits of each sample run alone
 * (the same bits with the tiles), at the cost of its distinct samples;
 * guided or not, logits at every position or the masked ones. */
static void decoding_meta(struct st *r, int guided, int masked)
{
    if (guided) st_meta_set(r, "guidance", "3"), st_meta_set(r, "guidance_schedule", "constant");
    if (masked) st_meta_set(r, "logits_at", "masked");
}

static void test_distinct_samples(void **state)
{
    (void)state;
    enum { DB = 6, DK = 5, DV = 64 };
    const int widths[] = {16, 8, 0};
    /* samples 0, 2 and 5 the same (all masked, label 2); 3 has 1's ids
     * under the null class (-1), 4 has 1's label and other ids: 0, 1, 3
     * and 4 distinct */
    const int src[DB] = {0, 1, 0, 1, 2, 0};
    const int32_t label[DB] = {2, 0, 2, -1, 0, 2};
    int32_t ids[DB * DK];
    for (int b = 0; b < DB; b++)
        for (int k = 0; k < DK; k++) ids[b * DK + k] = src[b] == 0 ? DV : (src[b] * 11 + k * 5) % DV;
    for (int w = 0; w < 3; w++) {
        if (widths[w] > simd_cpu_vl()) continue;
        simd_set_vl(widths[w]);
        struct module m;
        build(&m, "arch=imagebert codes=64 classes=3 tokens=5 width=64 layers=2 heads=2 mlp=128 dropout=0");
        params_fill_init(&m.params, 9);
        for (int c = 0; c < 4; c++) {
            const int guided = c & 1, masked = c >> 1;
            struct st *all = record(ids, label, DB, DK, 0);
            decoding_meta(all, guided, masked);
            const uint64_t f0 = tp_flops();
            assert_int_equal(m.ops->forward(&m, all, 0), 0);
            const uint64_t cost = tp_flops() - f0;
            for (int b = 0; b < DB; b++) {
                struct st *one = record(ids + b * DK, label + b, 1, DK, 0);
                decoding_meta(one, guided, masked);
                assert_int_equal(m.ops->forward(&m, one, 0), 0);
                const float *a = logits_of(all) + (size_t)b * DK * DV, *o = logits_of(one);
                if (widths[w])
                    assert_memory_equal(a, o, sizeof(float) * DK * DV);
                else
                    check_close("distinct, sgemm", a, o, DK * DV, 1e-5, 1e-5);
                st_free(one);
            }
            /* the cost of the batch of its distinct samples */
            int32_t did[4 * DK], dlab[4];
            const int keep[4] = {0, 1, 3, 4};
            for (int i = 0; i < 4; i++) {
                memcpy(did + i * DK, ids + keep[i] * DK, sizeof(int32_t) * DK);
                dlab[i] = label[keep[i]];
            }
            struct st *dist = record(did, dlab, 4, DK, 0);
            decoding_meta(dist, guided, masked);
            const uint64_t g0 = tp_flops();
            assert_int_equal(m.ops->forward(&m, dist, 0), 0);
            assert_true(tp_flops() - g0 == cost);
            st_free(dist);
            st_free(all);
        }
        module_free(&m);
    }
    simd_set_vl(-1);
}

static void test_deterministic(void **state)
{
    (void)state;
    tp_threads_set(2);
    enum { NB = 8, NK = 16 };
    int32_t ids[NB * NK], label[NB];
    for (int i = 0; i < NB * NK; i++) ids[i] = (i * 7) % 51;
    for (int b = 0; b < NB; b++) label[b] = b % 5 - 1;
    struct module m;
    build(&m, "arch=imagebert codes=50 classes=4 tokens=16 width=64 layers=2 heads=4 mlp=256");
    size_t np = m.params.total;
    module_free(&m);
    float *l[2], *g[2];
    for (int k = 0; k < 2; k++) {
        l[k] = tp_malloc(sizeof(float) * NB * NK * 50);
        g[k] = tp_malloc(sizeof(float) * np);
        run_once(l[k], g[k], np, ids, label, NB, NK);
    }
    assert_memory_equal(l[0], l[1], sizeof(float) * NB * NK * 50);
    assert_memory_equal(g[0], g[1], sizeof(float) * np);
    for (int k = 0; k < 2; k++) free(l[k]), free(g[k]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_eval),      cmocka_unit_test(test_ref_dropout),
        cmocka_unit_test(test_ref_guidance),  cmocka_unit_test(test_guidance_by_hand),
        cmocka_unit_test(test_inference_after_training),
        cmocka_unit_test(test_inference_tiles), cmocka_unit_test(test_pack_cache),
        cmocka_unit_test(test_logits_masked), cmocka_unit_test(test_distinct_samples),
        cmocka_unit_test(test_gradcheck),     cmocka_unit_test(test_ids_2d),
        cmocka_unit_test(test_table),         cmocka_unit_test(test_errors),
        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
