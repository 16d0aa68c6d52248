/* test_inference.c - the modules whose inference keeps fewer activations
 * than training: the convolutional chains (seqnet: the VQGAN encoder and
 * decoder, TiTok's pixel decoder) and the ViT trunks (TiTok's encoder and
 * decoder, the classifier), where the layers take turns with two output
 * buffers. The same bits as a training forward (the ViT trunks within
 * 1e-6: their inference runs in chunks of sequences, block_stack_infer,
 * and OpenBLAS's small-matrix kernels round by the row count), the same
 * bits at any batch, at 1 and 2 threads, and in any order of training and
 * inference forwards, and a training step after inference computes the
 * gradients a fresh module does. (The MaskGIT transformer's is in
 * test_imagebert.c.) */
#include "test.h"
#include "classifier.h"
#include "cli.h"
#include "module.h"
#include "titok.h"
#include "vqgan.h"

static const struct module_ops *const venc[] = {&vqgan_encoder_ops, NULL};
static const struct module_ops *const vdec[] = {&vqgan_decoder_ops, NULL};
static const struct module_ops *const tenc[] = {&titok_encoder_ops, NULL};
static const struct module_ops *const tdec[] = {&titok_decoder_ops, NULL};
static const struct module_ops *const vcls[] = {&classifier_ops, NULL};

struct net {
    const struct module_ops *const *ops;
    const char *meta, *in, *out; /* input field, output field */
    int ndim;                    /* of the input, the batch included */
    int64_t in_shape[3];         /* per sample */
    int chunked;                 /* a ViT trunk: inference by block_stack_infer */
};

#define TITOK "resolution=8 patch=4 width=16 layers=3 heads=2 tokens=4 token_size=3"
static const struct net nets[] = {
    {venc, "arch=vqgan-encoder channels=1 resolution=16 hidden=32 mult=1,2 res_blocks=2 z=8", "image", "latent", 4,
     {1, 16, 16}, 0},
    {vdec, "arch=vqgan-decoder channels=1 resolution=16 hidden=32 mult=1,2 res_blocks=2 z=8", "quant", "recon", 4,
     {8, 8, 8}, 0},
    {tenc, "arch=titok-encoder channels=2 " TITOK, "image", "latent", 4, {2, 8, 8}, 1},
    {tdec, "arch=titok-decoder proxy_codes=8 " TITOK, "quant", "logits", 3, {4, 3}, 1},
    {tdec, "arch=titok-decoder proxy_codes=8 " TITOK " pixel=1 pixel_channels=1 pixel_resolution=4 pixel_hidden=32 "
           "pixel_mult=1,2 pixel_res_blocks=1 pixel_z=4", "quant", "recon", 3, {4, 3}, 1},
    {vcls, "arch=vit-classifier channels=2 resolution=8 patch=4 width=16 layers=3 heads=2 classes=3", "image",
     "logits", 4, {2, 8, 8}, 1},
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
    int64_t shape[4] = {B, n->in_shape[0], n->in_shape[1], n->in_shape[2]};
    struct st_tensor *t = st_put(r, n->in, ST_F32, n->ndim, shape);
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

/* an inference output against a training forward's */
static void same_as_training(const struct net *n, const float *inf, const float *tr, size_t len)
{
    if (n->chunked)
        check_close(n->meta, inf, tr, len, 1e-6, 1e-5);
    else
        assert_memory_equal(inf, tr, len * sizeof(float));
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
        /* in chunks cut by the batch alone: the same bits at 1 thread */
        tp_threads_set(1);
        float *one = run(&a, n, 3, 1, 0, &l2);
        tp_threads_set(2);
        assert_memory_equal(inf3, one, len * sizeof(float));
        free(one);
        float *tr3 = run(&b, n, 3, 1, 1, &l2);
        assert_memory_equal(inf3, again, len * sizeof(float));
        same_as_training(n, inf3, tr3, len);
        /* B 5 in training gives what inference gave */
        float *tr5 = run(&b, n, 5, 2, 1, &l2);
        same_as_training(n, inf5, tr5, l2);
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
