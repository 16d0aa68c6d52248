/* test_seqnet.c - the convolutional chains (the VQGAN encoder and decoder)
 * in inference, where the layers take turns with two output buffers: the
 * same bits as a training forward, at any batch and in any order of
 * training and inference forwards, and a training step after inference
 * computes the gradients a fresh module does. */
#include "test.h"
#include "cli.h"
#include "module.h"
#include "vqgan.h"

static const struct module_ops *const enc_ops[] = {&vqgan_encoder_ops, NULL};
static const struct module_ops *const dec_ops[] = {&vqgan_decoder_ops, NULL};

struct net {
    const struct module_ops *const *ops;
    const char *meta, *in, *out; /* input field, output field */
    int64_t in_shape[3];         /* per sample */
};

static const struct net nets[] = {
    {enc_ops, "arch=vqgan-encoder channels=1 resolution=16 hidden=32 mult=1,2 res_blocks=2 z=8", "image", "latent",
     {1, 16, 16}},
    {dec_ops, "arch=vqgan-decoder channels=1 resolution=16 hidden=32 mult=1,2 res_blocks=2 z=8", "quant", "recon",
     {8, 8, 8}},
};

static void build(struct module *m, const struct net *n)
{
    struct st *meta = st_new();
    assert_int_equal(st_meta_apply_kv(meta, n->meta, ' '), 0);
    assert_int_equal(module_build(m, n->ops, meta), 0);
    params_fill_init(&m->params, 5);
    st_free(meta);
}

static struct st *input(const struct net *n, int B, uint64_t seed)
{
    struct st *r = st_new();
    struct st_tensor *t = st_put_v(r, n->in, ST_F32, 4, (int64_t)B, n->in_shape[0], n->in_shape[1], n->in_shape[2]);
    float *x = t->data;
    for (int64_t i = 0; i < st_numel(t); i++) x[i] = rng_hash_uniform(seed, (uint64_t)i) - 0.5f;
    return r;
}

/* the output of one forward, copied */
static float *run(struct module *m, const struct net *n, int B, uint64_t seed, int train, size_t *len)
{
    struct st *r = input(n, B, seed);
    assert_int_equal(m->ops->forward(m, r, train), 0);
    struct st_tensor *o = st_find(r, n->out);
    assert_non_null(o);
    *len = (size_t)st_numel(o);
    float *c = tp_malloc(*len * sizeof(float));
    memcpy(c, o->data, *len * sizeof(float));
    st_free(r);
    return c;
}

/* a training forward and backward (the gradient of sum(out * w), w fixed):
 * the weight gradients, copied */
static float *train_step(struct module *m, const struct net *n, int B)
{
    struct st *r = input(n, B, 11);
    assert_int_equal(m->ops->forward(m, r, 1), 0);
    struct st_tensor *o = st_find(r, n->out);
    char gname[64];
    snprintf(gname, sizeof gname, "%s.grad", n->out);
    struct st *g = st_new(), *ig = st_new();
    struct st_tensor *gt = st_put(g, gname, ST_F32, o->ndim, o->shape);
    float *gd = gt->data;
    for (int64_t i = 0; i < st_numel(gt); i++) gd[i] = rng_hash_uniform(12, (uint64_t)i) - 0.5f;
    params_zero_grad(&m->params);
    assert_int_equal(m->ops->backward(m, g, ig), 0);
    float *c = tp_malloc(m->params.total * sizeof(float));
    memcpy(c, m->params.grad, m->params.total * sizeof(float));
    st_free(r), st_free(g), st_free(ig);
    return c;
}

static void test_inference_layout(void **state)
{
    (void)state;
    tp_threads_set(2);
    for (size_t k = 0; k < sizeof nets / sizeof nets[0]; k++) {
        const struct net *n = &nets[k];
        struct module a, b;
        build(&a, n);
        build(&b, n);
        size_t len, l2;
        /* inference at B 3, then 5, then 3 again; training at 3 */
        float *inf3 = run(&a, n, 3, 1, 0, &len);
        float *inf5 = run(&a, n, 5, 2, 0, &l2);
        float *again = run(&a, n, 3, 1, 0, &l2);
        float *tr3 = run(&b, n, 3, 1, 1, &l2);
        assert_memory_equal(inf3, again, len * sizeof(float));
        assert_memory_equal(inf3, tr3, len * sizeof(float));
        /* B 5 in training gives what inference gave */
        float *tr5 = run(&b, n, 5, 2, 1, &l2);
        assert_memory_equal(inf5, tr5, l2 * sizeof(float));
        /* inference after training (the training layout serves it) */
        float *after = run(&b, n, 3, 1, 0, &l2);
        assert_memory_equal(inf3, after, len * sizeof(float));
        /* a training step on a that has only run inference == on a fresh one */
        struct module c;
        build(&c, n);
        float *ga = train_step(&a, n, 4), *gc = train_step(&c, n, 4);
        assert_memory_equal(ga, gc, a.params.total * sizeof(float));
        double norm = 0;
        for (size_t i = 0; i < a.params.total; i++) norm += (double)ga[i] * ga[i];
        assert_true(norm > 0);
        free(inf3), free(inf5), free(again), free(tr3), free(tr5), free(after), free(ga), free(gc);
        module_free(&a), module_free(&b), module_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inference_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
