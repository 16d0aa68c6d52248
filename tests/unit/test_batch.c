/* test_batch.c - lib/batch.c: sample counts, batched vs per-record fields,
 * slice, concat and gather values, keys carried, and the errors that name
 * the field. */
#include "test.h"

#include "batch.h"

/* An F32 field whose element i is base + i. */
static struct st_tensor *put_f32(struct st *s, const char *name, float base, int ndim, ...)
{
    int64_t shape[ST_MAX_DIMS];
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++) shape[i] = va_arg(ap, int64_t);
    va_end(ap);
    struct st_tensor *t = st_put(s, name, ST_F32, ndim, shape);
    float *x = t->data;
    for (int64_t i = 0; i < st_numel(t); i++) x[i] = base + (float)i;
    return t;
}

static struct st_tensor *put_i32(struct st *s, const char *name, int32_t base, int64_t n)
{
    struct st_tensor *t = st_put_v(s, name, ST_I32, 1, n);
    for (int64_t i = 0; i < n; i++) ((int32_t *)t->data)[i] = base + (int32_t)i;
    return t;
}

/* image [B,2] = base.., label [B] = ibase.., codebook [5,4] per-record,
 * step scalar per-record, keys "k<kbase+i>" if kbase >= 0. */
static struct st *mkrec(long B, float base, int32_t ibase, int kbase)
{
    struct st *s = st_new();
    put_f32(s, "image", base, 2, (int64_t)B, (int64_t)2);
    put_i32(s, "label", ibase, B);
    put_f32(s, "codebook", base + 1000, 2, (int64_t)5, (int64_t)4);
    put_f32(s, "step", base + 2000, 0);
    st_meta_set(s, "seed", base == 0 ? "first" : "second");
    if (kbase >= 0) {
        char buf[512] = "[";
        for (long i = 0; i < B; i++)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s\"k%ld\"", i ? "," : "", kbase + i);
        strcat(buf, "]");
        st_meta_set(s, "keys", buf);
    }
    return s;
}

static void expect_err(const char *needle)
{
    if (!strstr(tp_err(), needle)) fail_msg("error '%s' does not contain '%s'", tp_err(), needle);
}

static void test_samples_mode(void **state)
{
    (void)state;
    struct st *r = mkrec(3, 0, 0, -1);
    assert_int_equal(batch_samples(r), 3);
    assert_int_equal(batch_has_dim(r), 1);
    assert_int_equal(batch_field_is_batched(r, st_find(r, "image")), 1);
    assert_int_equal(batch_field_is_batched(r, st_find(r, "label")), 1);
    assert_int_equal(batch_field_is_batched(r, st_find(r, "codebook")), 0);
    assert_int_equal(batch_field_is_batched(r, st_find(r, "step")), 0);
    st_free(r);
    /* a tie between leading dims: the first field's wins */
    struct st *t = st_new();
    put_f32(t, "a", 0, 1, (int64_t)2);
    put_f32(t, "b", 0, 1, (int64_t)7);
    assert_int_equal(batch_samples(t), 2);
    st_free(t);
}

static void test_samples_keys(void **state)
{
    (void)state;
    /* keys say B = 5: codebook [5,4] is the batched one, image/label not */
    struct st *r = mkrec(3, 0, 0, -1);
    st_meta_set(r, "keys", "[1,2,3,4,5]");
    assert_int_equal(batch_samples(r), 5);
    assert_int_equal(batch_field_is_batched(r, st_find(r, "codebook")), 1);
    assert_int_equal(batch_field_is_batched(r, st_find(r, "image")), 0);
    /* keys that match no field */
    st_meta_set(r, "keys", "[1,2]");
    assert_int_equal(batch_samples(r), -1);
    expect_err("no field has 2 rows");
    /* keys that are not an array */
    st_meta_set(r, "keys", "{\"a\":1}");
    assert_int_equal(batch_samples(r), -1);
    expect_err("'keys' is not a JSON array");
    st_meta_set(r, "keys", "[1,2");
    assert_int_equal(batch_samples(r), -1);
    assert_null(batch_slice(r, 0, 1));
    st_free(r);
}

static void test_no_dim(void **state)
{
    (void)state;
    struct st *s = st_new();
    put_f32(s, "loss", 1, 0);
    assert_int_equal(batch_samples(s), 0);
    assert_int_equal(batch_has_dim(s), 0);
    st_meta_set(s, "keys", "[\"x\",\"y\"]"); /* keys alone give a batch */
    assert_int_equal(batch_samples(s), 2);
    assert_int_equal(batch_has_dim(s), 1);
    st_free(s);
    /* an empty batch is still a batch */
    struct st *e = st_new();
    put_f32(e, "image", 0, 2, (int64_t)0, (int64_t)3);
    assert_int_equal(batch_samples(e), 0);
    assert_int_equal(batch_has_dim(e), 1);
    st_free(e);
}

static void test_slice(void **state)
{
    (void)state;
    struct st *r = mkrec(4, 0, 10, 100);
    struct st *s = batch_slice(r, 1, 2);
    assert_non_null(s);
    const struct st_tensor *img = st_find(s, "image");
    assert_int_equal(img->shape[0], 2);
    assert_int_equal(img->shape[1], 2);
    float want[4] = {2, 3, 4, 5};
    check_close("image", img->data, want, 4, 0, 0);
    const int32_t *lab = st_find(s, "label")->data;
    assert_int_equal(lab[0], 11);
    assert_int_equal(lab[1], 12);
    /* per-record fields and metadata pass through */
    const struct st_tensor *cb = st_find(s, "codebook");
    assert_int_equal(cb->shape[0], 5);
    assert_true(((float *)cb->data)[19] == 1019.0f);
    assert_int_equal(st_find(s, "step")->ndim, 0);
    assert_string_equal(st_meta_get(s, "keys"), "[\"k101\",\"k102\"]");
    assert_string_equal(st_meta_get(s, "seed"), "first");
    assert_int_equal(batch_samples(s), 2);
    st_free(s);
    /* empty slice at the end is fine, past it is not */
    s = batch_slice(r, 4, 0);
    assert_non_null(s);
    assert_int_equal(st_find(s, "image")->shape[0], 0);
    assert_string_equal(st_meta_get(s, "keys"), "[]");
    st_free(s);
    assert_null(batch_slice(r, 3, 2));
    expect_err("out of range");
    st_free(r);
}

static void test_concat(void **state)
{
    (void)state;
    struct st *a = mkrec(3, 0, 0, 0), *b = mkrec(2, 100, 50, 3);
    struct st *recs[2] = {a, b};
    struct st *c = batch_concat(recs, 2);
    assert_non_null(c);
    assert_int_equal(batch_samples(c), 5);
    float want[10] = {0, 1, 2, 3, 4, 5, 100, 101, 102, 103};
    check_close("image", st_find(c, "image")->data, want, 10, 0, 0);
    const int32_t *lab = st_find(c, "label")->data;
    int32_t wl[5] = {0, 1, 2, 50, 51};
    for (int i = 0; i < 5; i++) assert_int_equal(lab[i], wl[i]);
    assert_string_equal(st_meta_get(c, "keys"), "[\"k0\",\"k1\",\"k2\",\"k3\",\"k4\"]");
    /* per-record fields and metadata from the first record */
    assert_true(*(float *)st_find(c, "step")->data == 2000.0f);
    assert_string_equal(st_meta_get(c, "seed"), "first");
    st_free(c);
    st_free(a);
    st_free(b);
}

static void test_concat_errors(void **state)
{
    (void)state;
    struct st *a = mkrec(3, 0, 0, -1), *b = mkrec(2, 0, 0, -1);
    struct st *recs[2] = {a, b};
    /* dtype */
    st_put_v(b, "label", ST_I64, 1, (int64_t)2);
    assert_null(batch_concat(recs, 2));
    expect_err("field 'label': dtype I64 does not match I32");
    put_i32(b, "label", 0, 2);
    /* trailing dims */
    put_f32(b, "image", 0, 2, (int64_t)2, (int64_t)3);
    assert_null(batch_concat(recs, 2));
    expect_err("field 'image': shape [2,3] does not match [3,2]");
    assert_int_equal(batch_compatible(a, b), -1);
    put_f32(b, "image", 0, 2, (int64_t)2, (int64_t)2);
    assert_int_equal(batch_compatible(a, b), 0);
    /* a missing field, either way round */
    st_remove(b, "label");
    assert_null(batch_concat(recs, 2));
    expect_err("field 'label' is missing");
    put_i32(b, "label", 0, 2);
    put_i32(b, "extra", 0, 2);
    assert_int_equal(batch_compatible(a, b), -1);
    expect_err("field 'extra'");
    st_remove(b, "extra");
    /* keys on one side only */
    st_meta_set(b, "keys", "[\"p\",\"q\"]");
    assert_null(batch_concat(recs, 2));
    expect_err("'keys' is present in one record and absent in another");
    st_free(a);
    st_free(b);
}

static void test_gather(void **state)
{
    (void)state;
    struct st *a = mkrec(3, 0, 0, 0), *b = mkrec(2, 100, 50, 3);
    struct st *recs[3] = {a, NULL, b}; /* unreferenced entries are not read */
    struct batch_ref refs[4] = {{2, 1}, {0, 0}, {2, 0}, {0, 2}};
    struct st *g = batch_gather(recs, 3, refs, 4);
    assert_non_null(g);
    float want[8] = {102, 103, 0, 1, 100, 101, 4, 5};
    check_close("image", st_find(g, "image")->data, want, 8, 0, 0);
    assert_string_equal(st_meta_get(g, "keys"), "[\"k4\",\"k0\",\"k3\",\"k2\"]");
    /* per-record fields and metadata come from the first sample's record */
    assert_true(*(float *)st_find(g, "step")->data == 2100.0f);
    assert_string_equal(st_meta_get(g, "seed"), "second");
    st_free(g);
    struct batch_ref bad[1] = {{0, 3}};
    assert_null(batch_gather(recs, 3, bad, 1));
    expect_err("sample 3 out of range");
    st_free(a);
    st_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples_mode), cmocka_unit_test(test_samples_keys),
        cmocka_unit_test(test_no_dim),       cmocka_unit_test(test_slice),
        cmocka_unit_test(test_concat),       cmocka_unit_test(test_concat_errors),
        cmocka_unit_test(test_gather),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
