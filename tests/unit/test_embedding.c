/* test_embedding.c - token lookup and position embeddings: rows copied, id
 * checks, table gradient equal (bit for bit) to a serial sum over tokens at
 * any thread count, finite differences for both backwards. */
#include "test.h"
#include "gradcheck.h"

#include <omp.h>

#include "cli.h"
#include "embedding.h"

enum { B = 2, T = 5, N = B * T, V = 7, C = 40 }; /* C past one 32-channel task */

/* ids with repeats, so the table gradient has sums to get right */
static const int32_t ids[N] = {3, 0, 3, 6, 1, 3, 0, 2, 6, 3};

static void test_forward_and_check(void **state)
{
    (void)state;
    float table[V * C], out[N * C];
    struct rng r;
    rng_seed(&r, 1);
    fill_uniform(&r, table, V * C, -1, 1);
    embedding_forward(out, ids, table, N, V, C);
    for (int n = 0; n < N; n++) assert_memory_equal(out + n * C, table + ids[n] * C, sizeof(float) * C);
    assert_int_equal(embedding_check_ids(ids, N, V), 0);
    int32_t bad[3] = {0, 7, 1};
    assert_int_equal(embedding_check_ids(bad, 3, V), -1);
    assert_string_equal(tp_err(), "id 7 at position 1 outside [0,7)");
    bad[1] = -1;
    assert_int_equal(embedding_check_ids(bad, 3, V), -1);
    assert_string_equal(tp_err(), "id -1 at position 1 outside [0,7)");
}

/* Large enough (N*C past the threading threshold) to run on 2 threads. */
static void test_backward_serial_any_threads(void **state)
{
    (void)state;
    enum { LN = 700, LV = 50, LC = 72 };
    int32_t *lids = tp_malloc(sizeof(int32_t) * LN);
    float *dout = tp_malloc(sizeof(float) * LN * LC), *want = tp_malloc(sizeof(float) * LV * LC);
    float *got = tp_malloc(sizeof(float) * LV * LC), *g = tp_malloc(sizeof(float) * LV * LC);
    struct rng r;
    rng_seed(&r, 2);
    for (int n = 0; n < LN; n++) lids[n] = (int32_t)rng_below(&r, LV);
    fill_uniform(&r, dout, LN * LC, -1, 1);
    fill_uniform(&r, want, LV * LC, -1, 1);
    memcpy(got, want, sizeof(float) * LV * LC);
    for (int n = 0; n < LN; n++)
        for (int c = 0; c < LC; c++) want[lids[n] * LC + c] += dout[n * LC + c];
    int keep = omp_get_max_threads();
    for (int th = 1; th <= 2; th++) {
        memcpy(g, got, sizeof(float) * LV * LC);
        tp_threads_set(th);
        embedding_backward(g, dout, lids, LN, LV, LC);
        assert_memory_equal(g, want, sizeof(float) * LV * LC);
    }
    tp_threads_set(keep);
    free(lids), free(dout), free(want), free(got), free(g);
}

struct ctx {
    float table[V * C], pos[T * C], emb[N * C], out[N * C], r[N * C];
};

static double loss(void *p)
{
    struct ctx *c = p;
    embedding_forward(c->emb, ids, c->table, N, V, C);
    embedding_pos_forward(c->out, c->emb, c->pos, B, T, C);
    return gc_dot(c->out, c->r, N * C);
}

static void test_gradcheck(void **state)
{
    (void)state;
    struct ctx c;
    struct rng r;
    rng_seed(&r, 3);
    fill_uniform(&r, c.table, V * C, -1, 1);
    fill_uniform(&r, c.pos, T * C, -1, 1);
    fill_uniform(&r, c.r, N * C, -1, 1);
    float demb[N * C] = {0}, dtable[V * C] = {0}, dpos[T * C] = {0};
    embedding_pos_backward(demb, dpos, c.r, B, T, C);
    embedding_backward(dtable, demb, ids, N, V, C);
    gc_check("dtable", c.table, dtable, V * C, loss, &c, 1e-2f, 1e-3);
    gc_check("dpos", c.pos, dpos, T * C, loss, &c, 1e-2f, 1e-3);
}

/* Position add in place, and dinp = dout (accumulated). */
static void test_pos_inplace(void **state)
{
    (void)state;
    float x[N * C], want[N * C], pos[T * C], d[N * C];
    struct rng r;
    rng_seed(&r, 4);
    fill_uniform(&r, x, N * C, -1, 1);
    fill_uniform(&r, pos, T * C, -1, 1);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T * C; i++) want[b * T * C + i] = x[b * T * C + i] + pos[i];
    embedding_pos_forward(x, x, pos, B, T, C);
    assert_memory_equal(x, want, sizeof x);
    for (int i = 0; i < N * C; i++) d[i] = 1.0f;
    embedding_pos_backward(d, NULL, x, B, T, C);
    for (int i = 0; i < N * C; i++) want[i] = 1.0f + x[i];
    assert_memory_equal(d, want, sizeof d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_and_check),
        cmocka_unit_test(test_backward_serial_any_threads),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_pos_inplace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
