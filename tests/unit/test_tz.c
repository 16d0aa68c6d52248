/* test_tz.c - .tz streams: round trip through a pipe and a file, seek
 * table, skippable frames, and every fault named with its record index. */
#include "test.h"
#include "io.h"
#include "tz.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct st *make_record(int i)
{
    struct st *s = st_new();
    float *x = st_put_v(s, "image", ST_F32, 2, (int64_t)3, (int64_t)(4 + i))->data;
    for (int k = 0; k < 3 * (4 + i); k++) x[k] = (float)(i * 100 + k);
    st_meta_set_long(s, "index", i);
    return s;
}


static void write_stream(const char *path, int nrec, int seek)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    struct tz_writer *w = tz_writer_open(fd, path, 3, seek);
    for (int i = 0; i < nrec; i++) {
        struct st *r = make_record(i);
        assert_int_equal(tz_writer_put(w, r), 0);
        st_free(r);
    }
    assert_int_equal(tz_writer_count(w), nrec);
    assert_int_equal(tz_writer_close(w), 0);
    close(fd);
}

static void check_record(struct st *r, int i)
{
    long idx;
    assert_int_equal(st_meta_get_long(r, "index", &idx), 0);
    assert_int_equal(idx, i);
    struct st_tensor *t = st_require(r, "image", ST_F32, 2);
    assert_non_null(t);
    assert_int_equal(t->shape[1], 4 + i);
    assert_true(((float *)t->data)[2] == (float)(i * 100 + 2));
}

static void test_file_round_trip_and_seek(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/a.tz", tmpdir);
    write_stream(path, 5, 1);
    struct tz_reader *r = tz_reader_open_path(path);
    assert_non_null(r);
    struct st *rec;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tz_reader_next(r, &rec), 1);
        check_record(rec, i);
        st_free(rec);
    }
    assert_int_equal(tz_reader_next(r, &rec), 0); /* the seek table is skipped */
    assert_int_equal(tz_reader_count(r), 5);
    assert_int_equal(tz_reader_seek(r, 3), 0);
    assert_int_equal(tz_reader_next(r, &rec), 1);
    check_record(rec, 3);
    st_free(rec);
    assert_int_equal(tz_reader_seek(r, 0), 0);
    assert_int_equal(tz_reader_next(r, &rec), 1);
    check_record(rec, 0);
    st_free(rec);
    assert_int_equal(tz_reader_seek(r, 9), -1);
    tz_reader_close(r);
    /* the zstd CLI accepts it */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "zstd -q -t %s", path);
    assert_int_equal(system(cmd), 0);
}

static void test_empty_and_pipe(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/empty.tz", tmpdir);
    write_stream(path, 0, 1);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    struct tz_reader *r = tz_reader_open_path(path);
    struct st *rec;
    assert_int_equal(tz_reader_next(r, &rec), 0);
    tz_reader_close(r);
    /* through a pipe: a writer thread is not needed for small records */
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct tz_writer *w = tz_writer_open(p[1], "pipe", 1, 0);
    struct st *s = make_record(1);
    assert_int_equal(tz_writer_put(w, s), 0);
    st_free(s);
    assert_int_equal(tz_writer_close(w), 0);
    close(p[1]);
    r = tz_reader_open(p[0], "pipe");
    assert_int_equal(tz_reader_next(r, &rec), 1);
    check_record(rec, 1);
    st_free(rec);
    assert_int_equal(tz_reader_next(r, &rec), 0);
    assert_int_equal(tz_reader_count(r), -1);
    tz_reader_close(r);
    close(p[0]);
}

/* Read a whole file, apply a change, and expect an error mentioning needle. */
static void expect_fault(const char *name, void (*mutate)(unsigned char *, size_t *),
                         const char *needle, long want_index)
{
    char path[128], bad[160];
    snprintf(path, sizeof path, "%s/ok.tz", tmpdir);
    write_stream(path, 3, 0);
    void *buf;
    size_t n;
    assert_int_equal(io_slurp(path, 1 << 20, &buf, &n), 0);
    mutate(buf, &n);
    snprintf(bad, sizeof bad, "%s/%s.tz", tmpdir, name);
    assert_int_equal(io_write_file_atomic(bad, buf, n), 0);
    free(buf);
    struct tz_reader *r = tz_reader_open_path(bad);
    struct st *rec;
    int rc;
    while ((rc = tz_reader_next(r, &rec)) == 1) st_free(rec);
    assert_int_equal(rc, -1);
    if (!strstr(tp_err(), needle)) fail_msg("%s: error '%s' lacks '%s'", name, tp_err(), needle);
    char idx[64];
    snprintf(idx, sizeof idx, "record %ld:", want_index);
    if (!strstr(tp_err(), idx) || !strstr(tp_err(), bad))
        fail_msg("%s: error '%s' does not name %s and the file", name, tp_err(), idx);
    tz_reader_close(r);
}

static void cut_end(unsigned char *b, size_t *n) { (void)b; *n -= 7; }
static void flip_middle(unsigned char *b, size_t *n) { b[*n - 20] ^= 0x40; }
static void garbage_tail(unsigned char *b, size_t *n) { memcpy(b + *n, "xy", 2); *n += 2; }
static void not_zstd(unsigned char *b, size_t *n) { (void)n; b[0] = 'P'; }

static void test_faults(void **state)
{
    (void)state;
    expect_fault("truncated", cut_end, "truncated", 2);
    expect_fault("flipped", flip_middle, "corrupted", 2);
    expect_fault("tail", garbage_tail, "truncated frame", 3);
    expect_fault("notzstd", not_zstd, "not a zstd frame", 0);
}

static void test_size_limit(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/big.tz", tmpdir);
    write_stream(path, 1, 0);
    setenv("TZ_MAX_RECORD", "16", 1);
    struct tz_reader *r = tz_reader_open_path(path);
    struct st *rec;
    assert_int_equal(tz_reader_next(r, &rec), -1);
    assert_non_null(strstr(tp_err(), "over the limit of 16"));
    tz_reader_close(r);
    unsetenv("TZ_MAX_RECORD");
}

static void test_skippable_and_concat(void **state)
{
    (void)state;
    /* cat a.tz b.tz: the inner seek table is skipped, the outer one is
     * not trusted for seeking (sizes do not add up) */
    char a[128], b[128], c[128], cmd[512];
    snprintf(a, sizeof a, "%s/ca.tz", tmpdir);
    snprintf(b, sizeof b, "%s/cb.tz", tmpdir);
    snprintf(c, sizeof c, "%s/cc.tz", tmpdir);
    write_stream(a, 2, 1);
    write_stream(b, 3, 1);
    snprintf(cmd, sizeof cmd, "cat %s %s > %s", a, b, c);
    assert_int_equal(system(cmd), 0);
    struct tz_reader *r = tz_reader_open_path(c);
    struct st *rec;
    int n = 0;
    while (tz_reader_next(r, &rec) == 1) {
        check_record(rec, n < 2 ? n : n - 2);
        st_free(rec);
        n++;
    }
    assert_int_equal(n, 5);
    assert_int_equal(tz_reader_count(r), -1);
    tz_reader_close(r);
}

/* Stream mode relies on this: a record is returned as soon as its frame is
 * complete, while the writer keeps the pipe open (no read-ahead). */
static void test_no_read_ahead(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct tz_writer *w = tz_writer_open(p[1], "pipe", 3, 0);
    struct st *s = st_new(); /* the smallest record there is */
    assert_int_equal(tz_writer_put(w, s), 0);
    st_free(s);
    struct tz_reader *r = tz_reader_open(p[0], "pipe");
    struct st *rec;
    alarm(10); /* a hang fails the test instead of the suite */
    assert_int_equal(tz_reader_next(r, &rec), 1);
    alarm(0);
    assert_int_equal(rec->n, 0);
    st_free(rec);
    tz_writer_close(w);
    close(p[1]);
    assert_int_equal(tz_reader_next(r, &rec), 0);
    tz_reader_close(r);
    close(p[0]);
}

/* A record of 16384 floats: noise (hardly compresses) or zeros. */
static struct st *level_record(int noise)
{
    struct st *s = st_new();
    uint32_t *x = st_put_v(s, "x", ST_F32, 1, (int64_t)16384)->data;
    uint32_t h = 12345;
    for (int k = 0; k < 16384; k++) {
        h = h * 1664525u + 1013904223u;
        x[k] = noise ? 0x3f800000u | (h >> 9) : 0; /* [1, 2) with a random mantissa */
    }
    return s;
}

/* The compressed size of each record of kinds[] (1 noise, 0 zeros) at level,
 * written to a file or a pipe (drained into the file by a child), and the
 * records read back. */
static void sizes_to(int level, const int *kinds, int n, uint64_t *csize, int on_pipe)
{
    char path[128];
    snprintf(path, sizeof path, "%s/lv.tz", tmpdir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), pfd[2] = {-1, -1};
    pid_t child = -1;
    if (on_pipe) {
        assert_int_equal(pipe(pfd), 0);
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            close(pfd[1]);
            char buf[65536];
            ssize_t k;
            while ((k = read(pfd[0], buf, sizeof buf)) > 0)
                if (write(fd, buf, (size_t)k) != k) _exit(1);
            _exit(k == 0 ? 0 : 1);
        }
        close(pfd[0]);
    }
    struct tz_writer *w = tz_writer_open(on_pipe ? pfd[1] : fd, path, level, 0);
    uint64_t prev = 0;
    for (int i = 0; i < n; i++) {
        struct st *r = level_record(kinds[i]);
        assert_int_equal(tz_writer_put(w, r), 0);
        st_free(r);
        csize[i] = tz_writer_bytes_out(w) - prev;
        prev = tz_writer_bytes_out(w);
    }
    assert_int_equal(tz_writer_close(w), 0);
    if (on_pipe) {
        int status;
        close(pfd[1]);
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    close(fd);
    struct tz_reader *rd = tz_reader_open_path(path);
    struct st *rec;
    for (int i = 0; i < n; i++) {
        assert_int_equal(tz_reader_next(rd, &rec), 1);
        struct st *want = level_record(kinds[i]);
        assert_memory_equal(st_find(rec, "x")->data, st_find(want, "x")->data, 16384 * 4);
        st_free(want);
        st_free(rec);
    }
    assert_int_equal(tz_reader_next(rd, &rec), 0);
    tz_reader_close(rd);
}

static void sizes_at(int level, const int *kinds, int n, uint64_t *csize)
{
    sizes_to(level, kinds, n, csize, 0);
}

/* A record stored: the frame header (10 bytes), a 3-byte header per block
 * of 128 KiB, the record, the checksum. */
static uint64_t stored_size(void)
{
    struct st *r = level_record(1);
    size_t n = st_serialized_size(r);
    st_free(r);
    return 10 + 3 * ((n + (128 << 10) - 1) / (128 << 10)) + n + 4;
}

/* What each record of an adaptive stream must be: 'D' level 3, 'F' level
 * -1, 'S' stored. */
static void expect_modes(const char *what, const uint64_t *got, const char *modes, const int *kinds)
{
    int n = (int)strlen(modes);
    uint64_t *fast = tp_malloc(n * sizeof *fast), *fixed = tp_malloc(n * sizeof *fixed), st = stored_size();
    sizes_at(TZ_LEVEL_FAST, kinds, n, fast);
    sizes_at(TZ_LEVEL_DEFAULT, kinds, n, fixed);
    for (int i = 0; i < n; i++) {
        uint64_t want = modes[i] == 'D' ? fixed[i] : modes[i] == 'F' ? fast[i] : st;
        if (got[i] != want) fail_msg("%s: record %d: %llu bytes, want %llu (mode %c)", what, i,
                                     (unsigned long long)got[i], (unsigned long long)want, modes[i]);
    }
    free(fast), free(fixed);
}

/* TZ_LEVEL_AUTO on a file: level 3 first; noise compresses below 1.25x
 * there, so -1 next; below 1.1x at -1, stored; a probe at -1 every 16th
 * record of the stored mode; zeros at a probe bring level 3 back, and the
 * noise after them goes down the same way. */
static void test_auto_level(void **state)
{
    (void)state;
    const char *modes = "DFSSSSSSSSSSSSSSSFSSSSSSSSSSSSSSSFDFS";
    enum { N = 37 };
    int kinds[N];
    for (int i = 0; i < N; i++) kinds[i] = i != 33; /* zeros at the second probe */
    uint64_t a[N], fixed[N], fast[N];
    sizes_at(TZ_LEVEL_AUTO, kinds, N, a);
    expect_modes("auto", a, modes, kinds);
    /* on noise level 3 compresses a little, -1 not at all: stored is as small */
    sizes_at(TZ_LEVEL_DEFAULT, kinds, N, fixed);
    sizes_at(TZ_LEVEL_FAST, kinds, N, fast);
    assert_true(fixed[0] < fast[0] && fast[0] + 8 > stored_size());
    /* an explicit level is kept for every record */
    for (int i = 1; i < N; i++)
        if (kinds[i]) assert_int_equal(fixed[i], fixed[0]), assert_int_equal(fast[i], fast[0]);
}

/* TZ_LEVEL_AUTO_FLOATS: the fast level first, then as TZ_LEVEL_AUTO. */
static void test_auto_floats(void **state)
{
    (void)state;
    const char *modes = "FSSSSSSSSSSSSSSSFDFSS";
    enum { N = 21 };
    int kinds[N];
    for (int i = 0; i < N; i++) kinds[i] = i != 16; /* zeros at the first probe */
    uint64_t a[N];
    sizes_at(TZ_LEVEL_AUTO_FLOATS, kinds, N, a);
    expect_modes("auto floats", a, modes, kinds);
}

/* On a pipe both adaptive levels keep below level 3, even for records that
 * compress (zeros); an explicit level is kept. */
static void test_auto_on_pipe(void **state)
{
    (void)state;
    const char *modes = "FFSSSSSSSSSSSSSSSFF";
    enum { N = 19 };
    int kinds[N];
    for (int i = 0; i < N; i++) kinds[i] = i % 3 == 1; /* zeros, noise, zeros, ... */
    uint64_t a[N], af[N], fixed[N], fixed_pipe[N];
    sizes_to(TZ_LEVEL_AUTO, kinds, N, a, 1);
    expect_modes("auto on a pipe", a, modes, kinds);
    sizes_to(TZ_LEVEL_AUTO_FLOATS, kinds, N, af, 1);
    expect_modes("auto floats on a pipe", af, modes, kinds);
    sizes_at(TZ_LEVEL_DEFAULT, kinds, N, fixed);
    sizes_to(TZ_LEVEL_DEFAULT, kinds, N, fixed_pipe, 1);
    for (int i = 0; i < N; i++) assert_int_equal(fixed_pipe[i], fixed[i]);
}

/* Stored records of any size and any number of tensors read back the same
 * (the checksum runs across the pieces, the blocks cut across tensors):
 * after a noise record at -1 the writer stores, and zstd checks each one. */
static struct st *odd_record(int i)
{
    static const size_t sizes[][3] = {{0, 0, 0}, {1, 0, 0}, {7, 33, 0}, {131072 - 80, 5, 0},
                                      {300001, 31, 64}, {131072, 131072, 1}};
    struct st *s = level_record(1);
    uint32_t h = 777u + (uint32_t)i;
    for (int k = 0; k < 3 && sizes[i][k]; k++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", k);
        unsigned char *d = st_put_v(s, name, ST_U8, 1, (int64_t)sizes[i][k])->data;
        for (size_t j = 0; j < sizes[i][k]; j++) h = h * 1664525u + 1013904223u, d[j] = (unsigned char)(h >> 24);
    }
    return s;
}

/* the zstd CLI takes the file */
static void zstd_accepts(const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "zstd -q -t %s", path);
    assert_int_equal(system(cmd), 0);
}

/* r's next record holds want's tensors, byte for byte; want freed */
static void next_is(struct tz_reader *r, struct st *want)
{
    struct st *rec;
    assert_int_equal(tz_reader_next(r, &rec), 1);
    assert_int_equal(rec->n, want->n);
    for (int k = 0; k < want->n; k++) {
        struct st_tensor *a = st_find(rec, want->t[k].name);
        assert_non_null(a);
        assert_int_equal(a->nbytes, want->t[k].nbytes);
        if (a->nbytes) assert_memory_equal(a->data, want->t[k].data, a->nbytes);
    }
    st_free(rec), st_free(want);
}

static void test_stored_shapes(void **state)
{
    (void)state;
    enum { N = 6 };
    char path[128];
    snprintf(path, sizeof path, "%s/odd.tz", tmpdir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    struct tz_writer *w = tz_writer_open(fd, path, TZ_LEVEL_AUTO_FLOATS, 1);
    uint64_t prev = 0;
    for (int i = 0; i < N; i++) {
        struct st *r = odd_record(i);
        size_t n = st_serialized_size(r);
        assert_int_equal(tz_writer_put(w, r), 0);
        st_free(r);
        uint64_t c = tz_writer_bytes_out(w) - prev;
        prev = tz_writer_bytes_out(w);
        if (i > 0) assert_int_equal(c, 10 + 3 * ((n + (128 << 10) - 1) / (128 << 10)) + n + 4);
    }
    assert_int_equal(tz_writer_close(w), 0);
    close(fd);
    zstd_accepts(path);
    struct tz_reader *r = tz_reader_open_path(path);
    assert_int_equal(tz_reader_count(r), N);
    assert_int_equal(tz_reader_seek(r, 4), 0); /* the seek table's sizes are the stored ones */
    for (int i = 4; i < N; i++) next_is(r, odd_record(i));
    tz_reader_close(r);
    r = tz_reader_open_path(path);
    struct st *rec;
    for (int i = 0; i < N; i++) assert_int_equal(tz_reader_next(r, &rec), 1), st_free(rec);
    assert_int_equal(tz_reader_next(r, &rec), 0);
    tz_reader_close(r);
}

/* Compressed records of several tensors (several pieces) bigger than the
 * writer's output buffer, incompressible ones and one of zeros, at fixed
 * levels: the same tensors back, record by record and by seek, and the zstd
 * CLI takes the file. */
static struct st *big_record(int i)
{
    struct st *s = st_new();
    uint32_t h = 99u + (uint32_t)i;
    for (int k = 0; k < 3; k++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", k);
        const int64_t n = (int64_t)(700000 + 1000 * i + 17 * k);
        unsigned char *d = st_put_v(s, name, ST_U8, 1, n)->data;
        if (i != 2)
            for (int64_t j = 0; j < n; j++) h = h * 1664525u + 1013904223u, d[j] = (unsigned char)(h >> 24);
    }
    st_meta_set_long(s, "index", i);
    return s;
}

static void test_big_compressed(void **state)
{
    (void)state;
    enum { N = 3 };
    const int levels[] = {3, TZ_LEVEL_FAST};
    for (int l = 0; l < 2; l++) {
        char path[128];
        snprintf(path, sizeof path, "%s/big%d.tz", tmpdir, l);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        struct tz_writer *w = tz_writer_open(fd, path, levels[l], 1);
        for (int i = 0; i < N; i++) {
            struct st *r = big_record(i);
            uint64_t before = tz_writer_bytes_out(w);
            assert_int_equal(tz_writer_put(w, r), 0);
            /* random bytes: more than a megabyte out; zeros: a few hundred bytes */
            if (i == 2)
                assert_true(tz_writer_bytes_out(w) - before < 4096);
            else
                assert_true(tz_writer_bytes_out(w) - before > ((uint64_t)2 << 20));
            st_free(r);
        }
        assert_int_equal(tz_writer_close(w), 0);
        close(fd);
        zstd_accepts(path);
        struct tz_reader *r = tz_reader_open_path(path);
        assert_int_equal(tz_reader_count(r), N);
        for (int pass = 0; pass < 2; pass++) {
            const int from = pass ? 1 : 0; /* then by the seek table */
            assert_int_equal(tz_reader_seek(r, from), 0);
            for (int i = from; i < N; i++) next_is(r, big_record(i));
        }
        tz_reader_close(r);
    }
}

/* A stored record is checked as a compressed one: a byte changed in its
 * data is a corrupted record (the checksum), a cut one truncated. */
static void test_stored_faults(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/st.tz", tmpdir);
    for (int cut = 0; cut < 2; cut++) {
        int kinds[2] = {1, 1};
        uint64_t c[2];
        sizes_at(TZ_LEVEL_AUTO_FLOATS, kinds, 2, c); /* the second stored */
        snprintf(path, sizeof path, "%s/lv.tz", tmpdir);
        int fd = open(path, O_RDWR);
        assert_true(fd >= 0);
        if (cut) {
            assert_int_equal(ftruncate(fd, (off_t)(c[0] + c[1] - 5)), 0);
        } else {
            unsigned char b;
            off_t at = (off_t)(c[0] + c[1] / 2);
            assert_int_equal(pread(fd, &b, 1, at), 1);
            b ^= 0x10;
            assert_int_equal(pwrite(fd, &b, 1, at), 1);
        }
        close(fd);
        struct tz_reader *r = tz_reader_open_path(path);
        struct st *rec;
        assert_int_equal(tz_reader_next(r, &rec), 1);
        st_free(rec);
        assert_int_equal(tz_reader_next(r, &rec), -1);
        assert_non_null(strstr(tp_err(), cut ? "truncated" : "corrupted"));
        assert_non_null(strstr(tp_err(), "record 1"));
        tz_reader_close(r);
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    assert_null(tz_reader_open_path("/nonexistent.tz"));
    assert_non_null(strstr(tp_err(), "/nonexistent.tz"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_round_trip_and_seek),
        cmocka_unit_test(test_empty_and_pipe),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_skippable_and_concat),
        cmocka_unit_test(test_no_read_ahead),
        cmocka_unit_test(test_auto_floats),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_auto_level),
        cmocka_unit_test(test_auto_on_pipe),
        cmocka_unit_test(test_stored_faults),
        cmocka_unit_test(test_stored_shapes),
        cmocka_unit_test(test_big_compressed),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
