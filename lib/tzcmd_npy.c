/* tzcmd_npy.c - `tz npy -d DIR [FIELD...]`: each field concatenated over
 * all records (along dim 0; scalars stacked) into DIR/FIELD.npy.
 *
 * NPY format 1.0: "\x93NUMPY", 1, 0, u16 LE header length, then a Python
 * dict literal {'descr': .., 'fortran_order': False, 'shape': (..), }
 * padded with spaces and ending in '\n' so that the data starts at a
 * multiple of 64. The leading dim is known only at the end, so the header
 * is reserved with room for the largest one and rewritten in place before
 * the file is committed (atomically, io.h). BF16, which numpy lacks, is
 * written as '<f4' (exact).
 */
#include "tzcmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_FILES_MAX 48 /* io.h registers each open temporary; keep well below its limit */

struct npy_out {
    const char *field;
    struct io_out out;
    enum st_dtype dtype;
    int scalar;          /* the field is a scalar in each record: stacked */
    int ndim;            /* of the array written: record rank, or 1 for scalars */
    int64_t shape[ST_MAX_DIMS]; /* shape[0] grows */
    size_t header;       /* reserved header bytes */
};

static const char *npy_descr(enum st_dtype dt)
{
    static const char *const d[ST_DTYPE_COUNT] = {
        [ST_BOOL] = "|b1", [ST_U8] = "|u1",  [ST_I8] = "|i1",  [ST_I16] = "<i2", [ST_U16] = "<u2",
        [ST_F16] = "<f2",  [ST_BF16] = "<f4", [ST_I32] = "<i4", [ST_U32] = "<u4", [ST_F32] = "<f4",
        [ST_F64] = "<f8",  [ST_I64] = "<i8", [ST_U64] = "<u8",
    };
    return d[dt];
}

/* The full header (magic to '\n') for shape, padded to total bytes (0: to
 * the next multiple of 64). Returns its length. */
static size_t npy_header(char *buf, size_t cap, const struct npy_out *f, const int64_t *shape,
                         size_t total)
{
    char dict[512];
    size_t k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                        npy_descr(f->dtype));
    for (int d = 0; d < f->ndim; d++) k += snprintf(dict + k, sizeof dict - k, "%lld, ", (long long)shape[d]);
    if (f->ndim > 1) k -= 2; /* "(3,)" for one dim, "(3, 4)" for more */
    else k -= 1;
    k += snprintf(dict + k, sizeof dict - k, "), }");
    TP_ASSERT(k < sizeof dict);
    size_t n = total ? total : (10 + k + 1 + 63) / 64 * 64;
    TP_ASSERT(n <= cap && 10 + k + 1 <= n && n - 10 <= 65535);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((n - 10) & 0xff);
    buf[9] = (char)((n - 10) >> 8);
    memcpy(buf + 10, dict, k);
    memset(buf + 10 + k, ' ', n - 10 - k - 1);
    buf[n - 1] = '\n';
    return n;
}

/* "a/b" -> "a_b"; a leading '.' becomes '_' so nothing is hidden or escapes
 * DIR; -1 if the name is too long for a file name. */
static int safe_name(const char *field, char *buf, size_t cap)
{
    size_t n = strlen(field);
    if (n == 0 || n + 5 > cap) return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = field[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '-' || (ch == '.' && i > 0);
        buf[i] = ok ? ch : '_';
    }
    memcpy(buf + n, ".npy", 5);
    return 0;
}

static void npy_open(struct npy_out *f, const char *dir, const struct st_tensor *t)
{
    char base[256], path[4096];
    if (safe_name(f->field, base, sizeof base) != 0) die("field '%s': name too long for a file", f->field);
    snprintf(path, sizeof path, "%s/%s", dir, base);
    /* a symlink at the name is replaced, never written through (it could
     * lead to a FIFO or device outside DIR, which io_out_open writes in place) */
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) && unlink(path) != 0)
        die("%s: %s", path, strerror(errno));
    f->dtype = t->dtype;
    f->scalar = t->ndim == 0;
    f->ndim = f->scalar ? 1 : t->ndim;
    memcpy(f->shape, t->shape, sizeof f->shape);
    f->shape[0] = 0;
    if (io_out_open(&f->out, path) != 0) die_err();
    /* reserve room for the largest leading dim */
    int64_t big[ST_MAX_DIMS];
    memcpy(big, f->shape, sizeof big);
    big[0] = INT64_MAX;
    char hdr[1024];
    f->header = npy_header(hdr, sizeof hdr, f, big, 0);
    if (io_write_all(f->out.fd, hdr, f->header, io_out_name(&f->out)) != 0) die_err();
}

/* Append one record's tensor; dies naming the record on a mismatch. */
static void npy_append(struct npy_out *f, struct tzc *c, const struct st_tensor *t)
{
    int ok = t->dtype == f->dtype && (t->ndim == 0) == f->scalar && (f->scalar || t->ndim == f->ndim);
    for (int d = 1; ok && d < t->ndim; d++) ok = t->shape[d] == f->shape[d];
    if (!ok) {
        char s[160];
        tp_err_set("field '%s': %s %s does not continue the %s array of the first record",
                   f->field, st_dtype_name(t->dtype), st_shape_str(t, s, sizeof s),
                   st_dtype_name(f->dtype));
        tzc_die_rec(c);
    }
    const char *name = io_out_name(&f->out);
    if (t->dtype == ST_BF16) {
        size_t n = (size_t)st_numel(t);
        float *tmp = tp_malloc(n * sizeof *tmp);
        for (size_t i = 0; i < n; i++) tmp[i] = (float)tzn_get(ST_BF16, t->data, i);
        if (io_write_all(f->out.fd, tmp, n * sizeof *tmp, name) != 0) die_err();
        free(tmp);
    } else if (io_write_all(f->out.fd, t->data, t->nbytes, name) != 0) {
        die_err();
    }
    f->shape[0] += t->ndim ? t->shape[0] : 1;
}

static void npy_commit(struct npy_out *f)
{
    char hdr[1024];
    npy_header(hdr, sizeof hdr, f, f->shape, f->header);
    if (pwrite(f->out.fd, hdr, f->header, 0) != (ssize_t)f->header)
        die("%s: write error: %s", io_out_name(&f->out), strerror(errno));
    if (io_out_commit(&f->out) != 0) die_err();
}

int tzcmd_npy(int argc, char **argv)
{
    static const struct option lo[] = {{"dir", required_argument, NULL, 'd'}, {0}};
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz npy -d DIR [-i FILE]... [FIELD...] < stream\n"
             "Write each FIELD (default: every field of the first record) concatenated over\n"
             "all records along dim 0 (scalars stacked) to DIR/FIELD.npy (NPY 1.0; characters\n"
             "other than letters, digits, '.', '_' and '-' become '_'). Inputs: -i FILE, any\n"
             "number of times, else stdin. Every record must have every field, with the dtype\n"
             "and trailing dims of the first.\n",
             "d:i:", lo);
    const char *dir = NULL;
    char *inputs[256];
    int nin = 0;
    for (int o; (o = tzc_getopt(&c, argc, argv)) != -1;) {
        if (o == 'd') dir = optarg;
        if (o == 'i') {
            if (nin == 255) die_usage("npy: too many -i");
            inputs[nin++] = optarg;
        }
    }
    if (!dir) die_usage("npy: -d DIR is required");
    if (c.out_path) die_usage("npy: writes into DIR, not -o");
    int nf = argc - optind;
    char **fields = argv + optind;
    inputs[nin] = NULL;
    /* inputs come from -i, since the positional arguments are fields */
    c.files = nin ? inputs : (char *[]){"-", NULL};
    c.nfiles = nin ? nin : 1;
    progress_init(&c.pg, "records", -1, c.progress);
    if (io_mkdirs(dir) != 0) die_err();
    struct npy_out *f = NULL;
    struct st *rec;
    long nrec = 0;
    while (tzc_next(&c, &rec)) {
        if (nrec++ == 0) {
            if (nf == 0) {
                nf = rec->n;
                fields = tp_malloc((size_t)(nf ? nf : 1) * sizeof *fields);
                for (int i = 0; i < nf; i++) fields[i] = tp_strdup(rec->t[i].name);
            }
            if (nf > NPY_FILES_MAX) die("%s: %d fields, at most %d at once: name them", tzc_name(&c), nf, NPY_FILES_MAX);
            f = tp_calloc((size_t)(nf ? nf : 1), sizeof *f);
            for (int i = 0; i < nf; i++) {
                f[i].field = fields[i];
                char a[256], b[256];
                for (int j = 0; j < i; j++)
                    if (safe_name(fields[i], a, sizeof a) == 0 && safe_name(fields[j], b, sizeof b) == 0 && !strcmp(a, b))
                        die_usage("npy: fields '%s' and '%s' map to the same file %s", fields[j], fields[i], a);
            }
        }
        for (int i = 0; i < nf; i++) {
            const struct st_tensor *t = st_find(rec, fields[i]);
            if (!t) {
                tp_err_set("missing field '%s'", fields[i]);
                tzc_die_rec(&c);
            }
            if (nrec == 1) npy_open(&f[i], dir, t);
            npy_append(&f[i], &c, t);
        }
        st_free(rec);
    }
    tzc_finish(&c);
    if (nrec == 0 && nf > 0) die("%s: no records, so no dtype or shape for '%s'", tzc_name(&c), fields[0]);
    for (int i = 0; i < nf && nrec > 0; i++) npy_commit(&f[i]);
    if (fields != argv + optind) {
        for (int i = 0; i < nf; i++) free(fields[i]);
        free(fields);
    }
    free(f);
    return 0;
}
