/* test_params.c - parameter tables: offsets, init statistics, load errors
 * naming the tensor, save/load round trip through views, weights files
 * mapped in place. */
#include "test.h"
#include "params.h"

#include <stdio.h>
#include <unistd.h>

static void build(struct params *p)
{
    params_init_table(p);
    int64_t w[2] = {64, 32}, b[1] = {64}, c[4] = {8, 4, 3, 3};
    assert_int_equal(params_add(p, "enc.", "fc.weight", 2, w, INIT_TRUNC_NORMAL, 0.02f), 0);
    assert_int_equal(params_add(p, "enc.", "fc.bias", 1, b, INIT_ZEROS, 0), 2048);
    assert_int_equal(params_add(p, "enc.", "ln.weight", 1, b, INIT_ONES, 0), 2112);
    params_add(p, "", "conv.weight", 4, c, INIT_KAIMING, 0);
    params_add(p, "", "codebook", 2, w, INIT_UNIFORM, 0.5f);
    params_add(p, "", "xav", 2, w, INIT_XAVIER, 0);
    params_alloc(p);
}

static void test_init(void **state)
{
    (void)state;
    struct params p;
    build(&p);
    assert_int_equal(p.total, 2048 + 64 + 64 + 288 + 2048 + 2048);
    params_fill_init(&p, 7);
    const float *fc = p.data;
    double s = 0, s2 = 0, mx = 0;
    for (int i = 0; i < 2048; i++) {
        s += fc[i];
        s2 += fc[i] * fc[i];
        if (fabs(fc[i]) > mx) mx = fabs(fc[i]);
    }
    assert_true(mx <= 0.04 + 1e-7);                 /* truncated at 2 std */
    double sd = sqrt(s2 / 2048 - (s / 2048) * (s / 2048));
    assert_true(sd > 0.015 && sd < 0.02);             /* truncation shrinks std to 0.88 */
    assert_true(p.data[2048] == 0 && p.data[2112] == 1);
    const float *conv = p.data + params_find(&p, "conv.weight")->offset;
    for (int i = 0; i < 288; i++) assert_true(fabsf(conv[i]) <= 1 / sqrtf(36) + 1e-6f);
    const float *cb = p.data + params_find(&p, "codebook")->offset;
    for (int i = 0; i < 2048; i++) assert_true(fabsf(cb[i]) <= 0.5f);
    const float *xa = p.data + params_find(&p, "xav")->offset;
    for (int i = 0; i < 2048; i++) assert_true(fabsf(xa[i]) <= sqrtf(6.0f / 96) + 1e-6f);
    /* the same seed gives the same bits */
    struct params q;
    build(&q);
    params_fill_init(&q, 7);
    assert_memory_equal(p.data, q.data, p.total * sizeof(float));
    assert_int_equal(params_count(&p, "enc."), 2048 + 128);
    params_free(&q);
    params_free(&p);
}

static void test_save_load(void **state)
{
    (void)state;
    char path[] = "/tmp/tp_params_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    struct params p, q;
    build(&p);
    params_fill_init(&p, 1);
    struct st *meta = st_new();
    st_meta_set(meta, "arch", "demo");
    assert_int_equal(params_save(&p, path, meta), 0);
    struct st *w;
    assert_int_equal(st_load(&w, path), 0);
    assert_string_equal(st_meta_get(w, "arch"), "demo");
    build(&q);
    assert_int_equal(params_load(&q, w, 0), 0);
    assert_memory_equal(p.data, q.data, p.total * sizeof(float));
    /* a wrong shape names the tensor and both shapes */
    struct st_tensor *t = st_find(w, "enc.fc.bias");
    t->shape[0] = 63;
    t->nbytes = 63 * 4;
    assert_int_equal(params_load(&q, w, 0), -1);
    assert_non_null(strstr(tp_err(), "tensor 'enc.fc.bias': shape [63], the architecture needs [64]"));
    t->shape[0] = 64;
    st_put_v(w, "stray", ST_F32, 1, (int64_t)1);
    assert_int_equal(params_load(&q, w, 0), -1);
    assert_non_null(strstr(tp_err(), "'stray' is not a parameter"));
    assert_int_equal(params_load(&q, w, 1), 0);
    st_remove(w, "codebook");
    assert_int_equal(params_load(&q, w, 1), -1);
    assert_non_null(strstr(tp_err(), "missing field 'codebook'"));
    /* grad views point into the grad buffer */
    struct st *g = st_new();
    params_view(&q, g, 1);
    ((float *)st_find(g, "xav")->data)[3] = 5;
    assert_true(q.grad[params_find(&q, "xav")->offset + 3] == 5);
    params_zero_grad(&q);
    assert_true(q.grad[params_find(&q, "xav")->offset + 3] == 0);
    st_free(g);
    st_free(w);
    st_free(meta);
    params_free(&p);
    params_free(&q);
    unlink(path);
}

/* A table of a megabyte or more: params_save begins its data on a page of
 * the file, and params_load_file maps the file's pages in place of the
 * values (seen in /proc/self/maps), private: a write does not reach the
 * file. A file replaced after st_load, or holding the tensors in another
 * order, gives the values st_load read, by copy. */
static void big_table(struct params *p)
{
    params_init_table(p);
    int64_t w[2] = {512, 1024}, b[1] = {512};
    params_add(p, "", "fc.weight", 2, w, INIT_TRUNC_NORMAL, 0.02f);
    params_add(p, "", "fc.bias", 1, b, INIT_UNIFORM, 0.5f);
    params_alloc(p);
}

#ifdef __SANITIZE_ADDRESS__
#define MAPS 0 /* params.c: buffers are malloc'd for the sanitizer, never mapped */
#else
#define MAPS 1
#endif

static int mapped_from(const void *addr, const char *path)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t)addr >= lo && (uintptr_t)addr < hi)
            found = strstr(line, path) != NULL;
    }
    if (f) fclose(f);
    return found;
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/tp_params_XXXXXX";
    close(mkstemp(path));
    struct params p, q;
    big_table(&p);
    params_fill_init(&p, 3);
    assert_int_equal(params_save(&p, path, NULL), 0);
    FILE *f = fopen(path, "rb");
    unsigned char len[8];
    assert_int_equal(fread(len, 1, 8, f), 8);
    fclose(f);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len[i];
    assert_int_equal((8 + n) % ST_PAGE, 0);
    struct st *w;
    assert_int_equal(st_load(&w, path), 0);
    big_table(&q);
    assert_int_equal(params_load_file(&q, w, path), 0);
    assert_memory_equal(p.data, q.data, p.total * sizeof(float));
    assert_int_equal(mapped_from(q.data, path), MAPS);
    q.data[5] = 123.0f; /* private */
    assert_int_equal(st_load(&w, path), 0);
    assert_true(((float *)st_find(w, "fc.weight")->data)[5] == p.data[5]);
    params_free(&q);
    /* the file replaced after st_load: w's values */
    struct params r;
    big_table(&r);
    params_fill_init(&r, 4);
    assert_int_equal(params_save(&r, path, NULL), 0);
    big_table(&q);
    assert_int_equal(params_load_file(&q, w, path), 0);
    assert_memory_equal(p.data, q.data, p.total * sizeof(float));
    assert_false(mapped_from(q.data, path));
    params_free(&q);
    /* another order: copied */
    struct st *o = st_new();
    st_put_ref(o, "fc.bias", ST_F32, 1, (int64_t[]){512}, r.data + params_find(&r, "fc.bias")->offset);
    st_put_ref(o, "fc.weight", ST_F32, 2, (int64_t[]){512, 1024}, r.data);
    assert_int_equal(st_save(o, path), 0);
    st_free(o);
    assert_int_equal(st_load(&w, path), 0);
    big_table(&q);
    assert_int_equal(params_load_file(&q, w, path), 0);
    assert_memory_equal(r.data, q.data, r.total * sizeof(float));
    assert_false(mapped_from(q.data, path));
    /* a wrong shape is still an error */
    assert_int_equal(params_save(&r, path, NULL), 0);
    assert_int_equal(st_load(&w, path), 0);
    st_find(w, "fc.bias")->shape[0] = 511;
    params_free(&q);
    big_table(&q);
    assert_int_equal(params_load_file(&q, w, path), -1);
    assert_non_null(strstr(tp_err(), "tensor 'fc.bias': shape [511]"));
    params_free(&p), params_free(&q), params_free(&r);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
