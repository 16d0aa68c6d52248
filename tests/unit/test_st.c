/* test_st.c - safetensors: round trip, writer layout, and every check of
 * the strict reader. */
#include "test.h"
#include "io.h"

#include <unistd.h>

/* Build a blob from a header string and a data size (zero-filled data). */
static void *blob_of(const char *header, size_t data, size_t *size)
{
    size_t n = strlen(header);
    unsigned char *b = calloc(1, 8 + n + data + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    *size = 8 + n + data;
    return b;
}

static void expect_reject(const char *header, size_t data, const char *needle)
{
    size_t size;
    void *b = blob_of(header, data, &size);
    struct st *s = NULL;
    int rc = st_parse(&s, b, size, 0);
    if (rc == 0) {
        st_free(s);
        fail_msg("accepted: %s", header);
    }
    if (!strstr(tp_err(), needle)) fail_msg("error '%s' lacks '%s'", tp_err(), needle);
    free(b);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct st *s = st_new();
    struct st_tensor *a = st_put_v(s, "image", ST_F32, 4, (int64_t)2, (int64_t)1, (int64_t)3, (int64_t)3);
    float *x = a->data;
    for (int i = 0; i < 18; i++) x[i] = i * 0.5f - 3;
    struct st_tensor *l = st_put_v(s, "label", ST_I32, 1, (int64_t)2);
    ((int32_t *)l->data)[0] = 7;
    ((int32_t *)l->data)[1] = -1;
    st_put_v(s, "mask", ST_U8, 2, (int64_t)2, (int64_t)5);
    st_put_v(s, "empty", ST_F32, 2, (int64_t)0, (int64_t)4);
    st_put_v(s, "scalar", ST_F64, 0);
    st_meta_set(s, "keys", "[\"a\",\"b\\\"q\"]");
    st_meta_set(s, "seed", "42");
    void *buf;
    size_t n;
    st_serialize(s, &buf, &n);
    assert_int_equal(n, st_serialized_size(s));
    /* header length is a multiple of 8 and padded with spaces */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | ((unsigned char *)buf)[i];
    assert_int_equal(hl % 8, 0);
    assert_int_equal(((char *)buf)[8], '{');
    struct st *r = NULL;
    assert_int_equal(st_parse(&r, buf, n, 0), 0);
    assert_int_equal(r->n, 5);
    struct st_tensor *ra = st_require(r, "image", ST_F32, 4);
    assert_non_null(ra);
    assert_memory_equal(ra->data, x, 18 * sizeof(float));
    assert_int_equal(((int32_t *)st_find(r, "label")->data)[1], -1);
    assert_int_equal(st_numel(st_find(r, "empty")), 0);
    assert_int_equal(st_find(r, "scalar")->ndim, 0);
    assert_string_equal(st_meta_get(r, "keys"), "[\"a\",\"b\\\"q\"]");
    assert_string_equal(st_meta_get(r, "format"), "pt");
    long seed;
    assert_int_equal(st_meta_get_long(r, "seed", &seed), 0);
    assert_int_equal(seed, 42);
    /* each tensor aligned to its element size (writer sorts widest first) */
    for (int i = 0; i < r->n; i++)
        assert_int_equal((uintptr_t)r->t[i].data % st_dtype_size(r->t[i].dtype), 0);
    assert_null(st_require(r, "image", ST_I32, -1));
    assert_non_null(strstr(tp_err(), "dtype F32, expected I32"));
    assert_null(st_require(r, "nope", ST_F32, -1));
    assert_non_null(strstr(tp_err(), "missing field 'nope'"));
    st_free(r);
    st_free(s);
}

static void test_writer_order(void **state)
{
    (void)state;
    /* widest dtype first, then by name: U8 "a" after F32 "z" */
    struct st *s = st_new();
    st_put_v(s, "a", ST_U8, 1, (int64_t)3);
    st_put_v(s, "z", ST_F32, 1, (int64_t)1);
    st_put_v(s, "b", ST_F32, 1, (int64_t)1);
    void *buf;
    size_t n;
    st_serialize(s, &buf, &n);
    const char *h = (char *)buf + 8;
    const char *pb = strstr(h, "\"b\""), *pz = strstr(h, "\"z\""), *pa = strstr(h, "\"a\"");
    assert_true(pb && pz && pa && pb < pz && pz < pa);
    assert_non_null(strstr(h, "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"));
    free(buf);
    /* put_order: widest first, then as put */
    s->put_order = 1;
    st_serialize(s, &buf, &n);
    h = (char *)buf + 8;
    pb = strstr(h, "\"b\""), pz = strstr(h, "\"z\""), pa = strstr(h, "\"a\"");
    assert_true(pb && pz && pa && pz < pb && pb < pa);
    assert_non_null(strstr(h, "\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"));
    free(buf);
    st_free(s);
}

static void test_reject(void **state)
{
    (void)state;
    expect_reject("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "cover 8 data bytes");
    expect_reject("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "buffer has 12");
    expect_reject("{\"x\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype");
    expect_reject("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "8 data bytes for 3");
    expect_reject("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8, "overflows");
    expect_reject("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,8]}}", 8, "non-negative");
    expect_reject("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 8, "overlap");
    expect_reject("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap");
    expect_reject("{\"x\":1,\"x\":2}", 0, "not valid JSON");
    expect_reject("{\"x\":{\"dtype\":\"F32\"", 0, "not valid JSON");
    expect_reject("[1,2]", 0, "not a JSON object");
    expect_reject("{\"__metadata__\":{\"a\":1}}", 0, "not a string");
    /* header length past the end, and over the limit */
    unsigned char b[16] = {0};
    b[0] = 100;
    struct st *s;
    assert_int_equal(st_parse(&s, b, 16, 0), -1);
    assert_non_null(strstr(tp_err(), "only 8 bytes follow"));
    memset(b, 0, 8);
    b[7] = 0x10; /* 2^60 */
    assert_int_equal(st_parse(&s, b, 16, 0), -1);
    assert_non_null(strstr(tp_err(), "exceeds the limit"));
    assert_int_equal(st_parse(&s, b, 4, 0), -1);
}

static void test_nul_padding_rejected(void **state)
{
    (void)state;
    size_t size;
    unsigned char *b = blob_of("{}      ", 0, &size);
    b[10] = 0;
    struct st *s;
    assert_int_equal(st_parse(&s, b, size, 0), -1);
    free(b);
}

static void test_misaligned_copy(void **state)
{
    (void)state;
    /* a U8 of 1 byte then an F32: the F32 sits at an odd offset */
    const char *h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1,5]}}";
    size_t size;
    unsigned char *blob = blob_of(h, 5, &size);
    float v = 1.5f;
    memcpy(blob + 8 + strlen(h) + 1, &v, 4);
    struct st *s;
    assert_int_equal(st_parse(&s, blob, size, 0), 0);
    struct st_tensor *t = st_find(s, "b");
    assert_int_equal((uintptr_t)t->data % 4, 0);
    assert_true(*(float *)t->data == 1.5f);
    st_free(s);
}

static void test_save_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/tp_st_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    struct st *s = st_new();
    float *w = st_put_v(s, "encoder.weight", ST_F32, 2, (int64_t)3, (int64_t)2)->data;
    for (int i = 0; i < 6; i++) w[i] = (float)i;
    st_meta_set(s, "arch", "test");
    assert_int_equal(st_save(s, path), 0);
    struct st *r;
    assert_int_equal(st_load(&r, path), 0);
    assert_memory_equal(st_find(r, "encoder.weight")->data, w, 24);
    assert_string_equal(st_meta_get(r, "arch"), "test");
    /* a mapped file can be modified in memory without touching the file */
    ((float *)st_find(r, "encoder.weight")->data)[0] = 99;
    struct st *r2;
    assert_int_equal(st_load(&r2, path), 0);
    assert_true(((float *)st_find(r2, "encoder.weight")->data)[0] == 0);
    st_free(r2);
    st_free(r);
    st_free(s);
    assert_int_equal(st_load(&r, "/nonexistent/x.safetensors"), -1);
    assert_non_null(strstr(tp_err(), "/nonexistent/x.safetensors"));
    /* no temporary left behind */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 1 && rm -rf %s", dir, dir);
    assert_int_equal(system(cmd), 0);
}

static void test_put_replace_remove(void **state)
{
    (void)state;
    struct st *s = st_new();
    st_put_v(s, "a", ST_F32, 1, (int64_t)4);
    st_put_v(s, "b", ST_F32, 1, (int64_t)4);
    st_put_v(s, "a", ST_I32, 1, (int64_t)2);
    assert_int_equal(s->n, 2);
    assert_int_equal(st_find(s, "a")->dtype, ST_I32);
    struct st_tensor *c = st_put_copy(s, "c", st_find(s, "b"));
    assert_int_equal(c->nbytes, 16);
    assert_int_equal(st_remove(s, "a"), 0);
    assert_int_equal(st_remove(s, "a"), -1);
    assert_int_equal(s->n, 2);
    st_meta_set(s, "k", "1");
    st_meta_set(s, "k", "2");
    assert_string_equal(st_meta_get(s, "k"), "2");
    st_meta_remove(s, "k");
    assert_null(st_meta_get(s, "k"));
    st_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_writer_order),
        cmocka_unit_test(test_reject),
        cmocka_unit_test(test_nul_padding_rejected),
        cmocka_unit_test(test_misaligned_copy),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_put_replace_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
