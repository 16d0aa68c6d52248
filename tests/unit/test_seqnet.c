/* test_seqnet.c - training a convolutional chain in chunks of images
 * (seqnet.c: each chunk forward and back on one thread, its weight
 * gradients in a buffer of its own, added in order): the same bits at 1
 * and 2 threads, and the values of the images run one at a time (outputs
 * and input gradients to float rounding, weight gradients summed over the
 * images in double). Every layer kind is in the chain, and the batch (5)
 * splits into uneven chunks. */
#include "test.h"
#include "cli.h"
#include "seqnet.h"

#define B 5
#define C0 2
#define HW 8

struct net {
    struct seqnet s;
    struct params p;
};

static void build(struct net *n)
{
    seqnet_init(&n->s, C0, HW, HW);
    params_init_table(&n->p);
    seqnet_conv(&n->s, &n->p, "conv_in.", 32, 3, 1);
    seqnet_res(&n->s, &n->p, "res0.", 32);
    seqnet_pool(&n->s);
    seqnet_res(&n->s, &n->p, "res1.", 64);
    seqnet_up(&n->s);
    seqnet_gn(&n->s, &n->p, "norm_out.", 32, 1e-6f);
    seqnet_silu(&n->s);
    seqnet_conv(&n->s, &n->p, "conv_out.", 1, 3, 1);
    params_alloc(&n->p);
    params_fill_init(&n->p, 3);
    seqnet_bind(&n->s, &n->p);
}

static void drop(struct net *n)
{
    seqnet_free(&n->s);
    params_free(&n->p);
}

static float *randoms(size_t count, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    float *x = tp_malloc(count * sizeof(float));
    fill_uniform(&r, x, count, -0.5f, 0.5f);
    return x;
}

enum { IN1 = C0 * HW * HW, OUT1 = HW * HW };

/* One training forward and backward over the batch at `threads`: the
 * output, the input gradient and the weight gradients. */
struct result {
    float out[B * OUT1], dinp[B * IN1];
    float *grad;
    size_t ngrad;
};

static void run_batch(struct result *r, int threads, const float *inp, const float *dout)
{
    struct net n;
    build(&n);
    tp_threads_set(threads);
    const float *out = seqnet_forward(&n.s, inp, B, 1);
    memcpy(r->out, out, sizeof r->out);
    memset(r->dinp, 0, sizeof r->dinp);
    seqnet_backward(&n.s, r->dinp, dout, inp);
    r->ngrad = n.p.total;
    r->grad = tp_malloc(r->ngrad * sizeof(float));
    memcpy(r->grad, n.p.grad, r->ngrad * sizeof(float));
    drop(&n);
}

static void test_threads_same_bits(void **state)
{
    (void)state;
    float *inp = randoms(B * IN1, 1), *dout = randoms(B * OUT1, 2);
    struct result *a = tp_malloc(sizeof *a), *b = tp_malloc(sizeof *b);
    run_batch(a, 1, inp, dout);
    run_batch(b, 2, inp, dout);
    assert_memory_equal(a->out, b->out, sizeof a->out);
    assert_memory_equal(a->dinp, b->dinp, sizeof a->dinp);
    assert_int_equal(a->ngrad, b->ngrad);
    assert_memory_equal(a->grad, b->grad, a->ngrad * sizeof(float));
    free(a->grad), free(b->grad), free(a), free(b), free(inp), free(dout);
}

static void test_equals_images_one_at_a_time(void **state)
{
    (void)state;
    float *inp = randoms(B * IN1, 3), *dout = randoms(B * OUT1, 4);
    struct result *a = tp_malloc(sizeof *a);
    run_batch(a, 2, inp, dout);
    struct net n;
    build(&n);
    double *gsum = calloc(n.p.total, sizeof(double));
    for (int b = 0; b < B; b++) {
        memset(n.p.grad, 0, n.p.total * sizeof(float));
        const float *out = seqnet_forward(&n.s, inp + b * IN1, 1, 1);
        check_close("out", out, a->out + b * OUT1, OUT1, 1e-6, 1e-5);
        float dinp[IN1] = {0};
        seqnet_backward(&n.s, dinp, dout + b * OUT1, inp + b * IN1);
        check_close("dinp", dinp, a->dinp + b * IN1, IN1, 1e-6, 1e-5);
        for (size_t i = 0; i < n.p.total; i++) gsum[i] += n.p.grad[i];
    }
    float *want = tp_malloc(n.p.total * sizeof(float));
    double gmax = 0;
    for (size_t i = 0; i < n.p.total; i++) want[i] = (float)gsum[i], gmax = fmax(gmax, fabs(gsum[i]));
    assert_true(gmax > 1e-2); /* the gradients are not all zero */
    check_close("grad", a->grad, want, n.p.total, 1e-5 * gmax, 1e-5);
    drop(&n);
    free(want), free(gsum), free(a->grad), free(a), free(inp), free(dout);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_same_bits),
        cmocka_unit_test(test_equals_images_one_at_a_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
