/* batch.c - records as batches of samples (see batch.h for the rules).
 *
 * Everything is built on batch_gather: a record assembled from a list of
 * (record, sample) references, one row copy per batched field and sample.
 * The batch structure of a record (B, its keys, which fields are batched) is
 * derived once per record and call, and only for records a reference
 * points into.
 */
#include "batch.h"
#include "err.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The batch structure of one record. */
struct dims {
    long n;                 /* samples */
    int has_dim;            /* a field of rank >= 1, or keys */
    json_t *keys;           /* parsed "keys", NULL if absent */
    unsigned char *batched; /* per field of the record */
};

static void dims_free(struct dims *d)
{
    if (d->keys) json_decref(d->keys);
    free(d->batched);
    memset(d, 0, sizeof *d);
}

static int dims_get(struct dims *d, const struct st *rec)
{
    memset(d, 0, sizeof *d);
    d->batched = tp_calloc(rec->n ? rec->n : 1, 1);
    const char *kv = st_meta_get(rec, "keys");
    int ranked = 0;
    for (int i = 0; i < rec->n; i++) ranked += rec->t[i].ndim >= 1;
    if (kv) {
        json_error_t je;
        d->keys = json_loads(kv, 0, &je);
        if (!json_is_array(d->keys)) {
            dims_free(d);
            return tp_err_set("metadata 'keys' is not a JSON array");
        }
        d->n = (long)json_array_size(d->keys);
        d->has_dim = 1;
    } else {
        /* the leading dim most fields share; the first such field on a tie */
        int best = 0;
        for (int i = 0; i < rec->n; i++) {
            if (rec->t[i].ndim < 1) continue;
            int c = 0;
            for (int j = 0; j < rec->n; j++)
                c += rec->t[j].ndim >= 1 && rec->t[j].shape[0] == rec->t[i].shape[0];
            if (c > best) {
                best = c;
                d->n = (long)rec->t[i].shape[0];
            }
        }
        d->has_dim = ranked > 0;
    }
    int nb = 0;
    for (int i = 0; i < rec->n; i++) {
        d->batched[i] = rec->t[i].ndim >= 1 && rec->t[i].shape[0] == d->n;
        nb += d->batched[i];
    }
    if (d->keys && ranked > 0 && nb == 0) {
        long n = d->n;
        dims_free(d);
        return tp_err_set("metadata 'keys' has %ld entries but no field has %ld rows", n, n);
    }
    return 0;
}

long batch_samples(const struct st *rec)
{
    struct dims d;
    if (dims_get(&d, rec) != 0) return -1;
    long n = d.n;
    dims_free(&d);
    return n;
}

int batch_has_dim(const struct st *rec)
{
    struct dims d;
    if (dims_get(&d, rec) != 0) return -1;
    int h = d.has_dim;
    dims_free(&d);
    return h;
}

int batch_field_is_batched(const struct st *rec, const struct st_tensor *t)
{
    struct dims d;
    if (dims_get(&d, rec) != 0) return -1;
    int i = (int)(t - rec->t);
    TP_ASSERT(i >= 0 && i < rec->n);
    int b = d.batched[i];
    dims_free(&d);
    return b;
}

static int trailing_equal(const struct st_tensor *x, const struct st_tensor *y)
{
    if (x->ndim != y->ndim) return 0;
    for (int k = 1; k < x->ndim; k++)
        if (x->shape[k] != y->shape[k]) return 0;
    return 1;
}

/* One direction of the check: every batched field of a is batched in b
 * with the same dtype and trailing dims. */
static int fields_covered(const struct st *a, const struct dims *da, const struct st *b,
                          const struct dims *db)
{
    for (int i = 0; i < a->n; i++) {
        if (!da->batched[i]) continue;
        const struct st_tensor *x = &a->t[i];
        const struct st_tensor *y = st_find(b, x->name);
        if (!y) return tp_err_set("field '%s' is missing from one of the records", x->name);
        if (!db->batched[y - b->t])
            return tp_err_set("field '%s' is batched in one record and per-record in another",
                              x->name);
        if (x->dtype != y->dtype)
            return tp_err_set("field '%s': dtype %s does not match %s", x->name,
                              st_dtype_name(y->dtype), st_dtype_name(x->dtype));
        if (!trailing_equal(x, y)) {
            char sx[160], sy[160];
            return tp_err_set("field '%s': shape %s does not match %s after the batch dim",
                              x->name, st_shape_str(y, sy, sizeof sy),
                              st_shape_str(x, sx, sizeof sx));
        }
    }
    return 0;
}

static int dims_compatible(const struct st *a, const struct dims *da, const struct st *b,
                           const struct dims *db)
{
    if ((da->keys == NULL) != (db->keys == NULL))
        return tp_err_set("metadata 'keys' is present in one record and absent in another");
    if (fields_covered(a, da, b, db) != 0) return -1;
    return fields_covered(b, db, a, da);
}

int batch_compatible(const struct st *a, const struct st *b)
{
    struct dims da, db;
    if (dims_get(&da, a) != 0) return -1;
    if (dims_get(&db, b) != 0) {
        dims_free(&da);
        return -1;
    }
    int rc = dims_compatible(a, &da, b, &db);
    dims_free(&da);
    dims_free(&db);
    return rc;
}

/* Per-record state of a gather: dims, computed on first use, and where each
 * batched field of the base record lives in this record. */
struct src {
    int ready;
    struct dims d;
    const struct st_tensor **field; /* indexed like the base record's fields */
};

static int src_ready(struct src *s, const struct st *rec, const struct st *base,
                     const struct src *sb)
{
    if (s->ready) return 0;
    if (dims_get(&s->d, rec) != 0) return -1;
    s->ready = 1;
    if (sb && sb != s && dims_compatible(base, &sb->d, rec, &s->d) != 0) return -1;
    s->field = tp_calloc(base->n ? base->n : 1, sizeof *s->field);
    for (int i = 0; i < base->n; i++)
        s->field[i] = rec == base ? &base->t[i] : st_find(rec, base->t[i].name);
    return 0;
}

static size_t row_bytes(const struct st_tensor *t)
{
    size_t n = st_dtype_size(t->dtype);
    for (int k = 1; k < t->ndim; k++) n *= (size_t)t->shape[k];
    return n;
}

static void copy_meta(struct st *out, const struct st *base, const struct src *sb,
                      const struct src *srcs, const struct batch_ref *refs, long n)
{
    for (int m = 0; m < base->nmeta; m++) {
        if (strcmp(base->meta_key[m], "keys") != 0) {
            st_meta_set(out, base->meta_key[m], base->meta_val[m]);
            continue;
        }
        json_t *arr = json_array();
        for (long j = 0; j < n; j++)
            json_array_append(arr, json_array_get(srcs[refs[j].rec].d.keys, (size_t)refs[j].i));
        char *s = json_dumps(arr, JSON_COMPACT);
        TP_ASSERT(s != NULL && sb->d.keys != NULL);
        st_meta_set(out, "keys", s);
        free(s);
        json_decref(arr);
    }
}

struct st *batch_gather(struct st *const *recs, int nrec, const struct batch_ref *refs, long n)
{
    TP_ASSERT(nrec >= 1 && n >= 0);
    int b = n > 0 ? refs[0].rec : 0;
    TP_ASSERT(b >= 0 && b < nrec);
    const struct st *base = recs[b];
    struct src *srcs = tp_calloc((size_t)nrec, sizeof *srcs);
    struct st *out = NULL;
    if (src_ready(&srcs[b], base, base, NULL) != 0) goto done;
    for (long j = 0; j < n; j++) {
        int r = refs[j].rec;
        TP_ASSERT(r >= 0 && r < nrec);
        if (src_ready(&srcs[r], recs[r], base, &srcs[b]) != 0) goto done;
        if (refs[j].i < 0 || refs[j].i >= srcs[r].d.n) {
            tp_err_set("sample %ld out of range (%ld samples)", refs[j].i, srcs[r].d.n);
            goto done;
        }
    }
    out = st_new();
    for (int f = 0; f < base->n; f++) {
        const struct st_tensor *t = &base->t[f];
        if (!srcs[b].d.batched[f]) {
            st_put_copy(out, t->name, t);
            continue;
        }
        int64_t shape[ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        shape[0] = n;
        struct st_tensor *o = st_put(out, t->name, t->dtype, t->ndim, shape);
        size_t rb = row_bytes(t);
        char *dst = o->data;
        for (long j = 0; j < n; j++) {
            const struct st_tensor *s = srcs[refs[j].rec].field[f];
            memcpy(dst + (size_t)j * rb, (const char *)s->data + (size_t)refs[j].i * rb, rb);
        }
    }
    copy_meta(out, base, &srcs[b], srcs, refs, n);
done:
    for (int r = 0; r < nrec; r++) {
        if (srcs[r].ready) dims_free(&srcs[r].d);
        free(srcs[r].field);
    }
    free(srcs);
    return out;
}

struct st *batch_slice(const struct st *rec, long i0, long n)
{
    long total = batch_samples(rec);
    if (total < 0) return NULL;
    if (i0 < 0 || n < 0 || i0 > total || n > total - i0) {
        tp_err_set("samples [%ld,%ld) out of range (%ld samples)", i0, i0 + n, total);
        return NULL;
    }
    struct batch_ref *refs = tp_malloc((size_t)(n ? n : 1) * sizeof *refs);
    for (long j = 0; j < n; j++) refs[j] = (struct batch_ref){0, i0 + j};
    struct st *const one[1] = {(struct st *)rec}; /* gather only reads it */
    struct st *out = batch_gather(one, 1, refs, n);
    free(refs);
    return out;
}

struct st *batch_concat(struct st *const *recs, int nrec)
{
    TP_ASSERT(nrec >= 1);
    long total = 0;
    long *cnt = tp_malloc((size_t)nrec * sizeof *cnt);
    for (int r = 0; r < nrec; r++) {
        cnt[r] = batch_samples(recs[r]);
        if (cnt[r] < 0) {
            free(cnt);
            return NULL;
        }
        total += cnt[r];
    }
    /* a record with no samples still has to be compatible: check it here,
     * since no reference will point into it */
    for (int r = 1; r < nrec; r++)
        if (batch_compatible(recs[0], recs[r]) != 0) {
            free(cnt);
            return NULL;
        }
    struct batch_ref *refs = tp_malloc((size_t)(total ? total : 1) * sizeof *refs);
    long k = 0;
    for (int r = 0; r < nrec; r++)
        for (long i = 0; i < cnt[r]; i++) refs[k++] = (struct batch_ref){r, i};
    struct st *out = batch_gather(recs, nrec, refs, total);
    free(refs);
    free(cnt);
    return out;
}
