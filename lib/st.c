/* st.c - safetensors parse/validate/write (see st.h for the layout and the
 * checks). */
#include "st.h"
#include "err.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const dtype_names[ST_DTYPE_COUNT] = {
    "BOOL", "U8", "I8", "I16", "U16", "F16", "BF16",
    "I32", "U32", "F32", "F64", "I64", "U64",
};
static const size_t dtype_sizes[ST_DTYPE_COUNT] = {1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};

const char *st_dtype_name(enum st_dtype dt)
{
    return (unsigned)dt < ST_DTYPE_COUNT ? dtype_names[dt] : "?";
}

int st_dtype_parse(const char *s)
{
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(s, dtype_names[i]) == 0) return i;
    return -1;
}

size_t st_dtype_size(enum st_dtype dt) { return dtype_sizes[dt]; }

int64_t st_numel(const struct st_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

char *st_shape_str(const struct st_tensor *t, char *buf, size_t n)
{
    size_t k = 0;
    k += snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

struct st *st_new(void) { return tp_calloc(1, sizeof(struct st)); }

/* Owned data for t: made and freed at every record, so a record buffer's
 * (tp_malloc_record_aligned) */
static void tensor_alloc(struct st_tensor *t) { t->data = tp_malloc_record_aligned(t->nbytes, &t->mem); }

static void tensor_clear(struct st_tensor *t)
{
    free(t->name);
    free(t->mem);
    memset(t, 0, sizeof *t);
}

void st_free(struct st *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) tensor_clear(&s->t[i]);
    free(s->t);
    for (int i = 0; i < s->nmeta; i++) {
        free(s->meta_key[i]);
        free(s->meta_val[i]);
    }
    free(s->meta_key);
    free(s->meta_val);
    if (s->blob_block)
        free(s->blob_block);
    else if (s->blob) {
        if (s->blob_mapped) munmap(s->blob, s->blob_size);
        else free(s->blob);
    }
    free(s);
}

/* ---- lookup and edit ----------------------------------------------------- */

struct st_tensor *st_find(const struct st *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->t[i].name, name) == 0) return &s->t[i];
    return NULL;
}

struct st_tensor *st_require(const struct st *s, const char *name, enum st_dtype dt, int ndim)
{
    struct st_tensor *t = st_find(s, name);
    if (!t) {
        tp_err_set("missing field '%s'", name);
        return NULL;
    }
    if (t->dtype != dt) {
        tp_err_set("field '%s': dtype %s, expected %s", name, st_dtype_name(t->dtype),
                   st_dtype_name(dt));
        return NULL;
    }
    if (ndim >= 0 && t->ndim != ndim) {
        char b[128];
        tp_err_set("field '%s': shape %s has %d dimensions, expected %d", name,
                   st_shape_str(t, b, sizeof b), t->ndim, ndim);
        return NULL;
    }
    return t;
}

static struct st_tensor *slot_for(struct st *s, const char *name)
{
    struct st_tensor *t = st_find(s, name);
    if (t) {
        char *keep = t->name;
        t->name = NULL;
        free(t->mem);
        memset(t, 0, sizeof *t);
        t->name = keep;
        return t;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->t = tp_realloc(s->t, s->cap * sizeof *s->t);
    }
    t = &s->t[s->n++];
    memset(t, 0, sizeof *t);
    t->name = tp_strdup(name);
    return t;
}

/* The slot for name with dtype and shape set; data not yet attached. */
static struct st_tensor *slot_shaped(struct st *s, const char *name, enum st_dtype dt, int ndim,
                                     const int64_t *shape)
{
    TP_ASSERT(ndim >= 0 && ndim <= ST_MAX_DIMS && (unsigned)dt < ST_DTYPE_COUNT);
    struct st_tensor *t = slot_for(s, name);
    t->dtype = dt;
    t->ndim = ndim;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        TP_ASSERT(shape[i] >= 0);
        t->shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    t->nbytes = n * dtype_sizes[dt];
    return t;
}

struct st_tensor *st_put(struct st *s, const char *name, enum st_dtype dt, int ndim,
                         const int64_t *shape)
{
    struct st_tensor *t = slot_shaped(s, name, dt, ndim, shape);
    tensor_alloc(t);
    memset(t->data, 0, t->nbytes);
    return t;
}

struct st_tensor *st_put_ref(struct st *s, const char *name, enum st_dtype dt, int ndim,
                             const int64_t *shape, void *data)
{
    struct st_tensor *t = slot_shaped(s, name, dt, ndim, shape);
    t->data = data;
    t->mem = NULL;
    return t;
}

struct st_tensor *st_put_v(struct st *s, const char *name, enum st_dtype dt, int ndim, ...)
{
    int64_t shape[ST_MAX_DIMS];
    va_list ap;
    TP_ASSERT(ndim >= 0 && ndim <= ST_MAX_DIMS);
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++) shape[i] = va_arg(ap, int64_t);
    va_end(ap);
    return st_put(s, name, dt, ndim, shape);
}

struct st_tensor *st_put_copy(struct st *s, const char *name, const struct st_tensor *src)
{
    /* src may live in s and move when s->t grows: copy what we need first */
    int64_t shape[ST_MAX_DIMS];
    enum st_dtype dt = src->dtype;
    int ndim = src->ndim;
    const void *data = src->data;
    size_t nbytes = src->nbytes;
    memcpy(shape, src->shape, sizeof shape);
    if (st_find(s, name) == src) return (struct st_tensor *)src;
    struct st_tensor *t = st_put(s, name, dt, ndim, shape);
    memcpy(t->data, data, nbytes);
    return t;
}

int st_remove(struct st *s, const char *name)
{
    struct st_tensor *t = st_find(s, name);
    if (!t) return -1;
    int i = (int)(t - s->t);
    tensor_clear(t);
    memmove(&s->t[i], &s->t[i + 1], (s->n - i - 1) * sizeof *s->t);
    s->n--;
    return 0;
}

const char *st_meta_get(const struct st *s, const char *key)
{
    for (int i = 0; i < s->nmeta; i++)
        if (strcmp(s->meta_key[i], key) == 0) return s->meta_val[i];
    return NULL;
}

void st_meta_set(struct st *s, const char *key, const char *val)
{
    for (int i = 0; i < s->nmeta; i++)
        if (strcmp(s->meta_key[i], key) == 0) {
            free(s->meta_val[i]);
            s->meta_val[i] = tp_strdup(val);
            return;
        }
    if (s->nmeta == s->metacap) {
        s->metacap = s->metacap ? 2 * s->metacap : 8;
        s->meta_key = tp_realloc(s->meta_key, s->metacap * sizeof(char *));
        s->meta_val = tp_realloc(s->meta_val, s->metacap * sizeof(char *));
    }
    s->meta_key[s->nmeta] = tp_strdup(key);
    s->meta_val[s->nmeta] = tp_strdup(val);
    s->nmeta++;
}

void st_meta_remove(struct st *s, const char *key)
{
    for (int i = 0; i < s->nmeta; i++)
        if (strcmp(s->meta_key[i], key) == 0) {
            free(s->meta_key[i]);
            free(s->meta_val[i]);
            memmove(&s->meta_key[i], &s->meta_key[i + 1], (s->nmeta - i - 1) * sizeof(char *));
            memmove(&s->meta_val[i], &s->meta_val[i + 1], (s->nmeta - i - 1) * sizeof(char *));
            s->nmeta--;
            return;
        }
}

int st_meta_apply_kv(struct st *s, const char *kvlist, char sep)
{
    char *copy = tp_strdup(kvlist), *save = NULL;
    char seps[2] = {sep, 0};
    int rc = 0;
    for (char *kv = strtok_r(copy, seps, &save); kv; kv = strtok_r(NULL, seps, &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            rc = tp_err_set("'%s' is not KEY=VALUE", kv);
            continue;
        }
        *eq = 0;
        st_meta_set(s, kv, eq + 1);
    }
    free(copy);
    return rc;
}

int st_meta_get_long(const struct st *s, const char *key, long *out)
{
    const char *v = st_meta_get(s, key);
    if (!v) return tp_err_set("metadata '%s' is missing", key);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end) return tp_err_set("metadata '%s': '%s' is not an integer", key, v);
    *out = x;
    return 0;
}

int st_meta_get_double(const struct st *s, const char *key, double *out)
{
    const char *v = st_meta_get(s, key);
    if (!v) return tp_err_set("metadata '%s' is missing", key);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end) return tp_err_set("metadata '%s': '%s' is not a number", key, v);
    *out = x;
    return 0;
}

void st_meta_set_long(struct st *s, const char *key, long v)
{
    char b[32];
    snprintf(b, sizeof b, "%ld", v);
    st_meta_set(s, key, b);
}

void st_meta_set_double(struct st *s, const char *key, double v)
{
    char b[40];
    snprintf(b, sizeof b, "%.17g", v);
    st_meta_set(s, key, b);
}

/* ---- parse ----------------------------------------------------------------- */

struct span {
    uint64_t begin, end;
    int idx;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Parse one tensor entry of the header into t (no data yet). */
static int parse_entry(struct st_tensor *t, const char *name, json_t *v, uint64_t off[2])
{
    if (!json_is_object(v)) return tp_err_set("tensor '%s': entry is not an object", name);
    json_t *jd = json_object_get(v, "dtype");
    json_t *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo))
        return tp_err_set("tensor '%s': needs dtype, shape and data_offsets", name);
    if (json_object_size(v) != 3)
        return tp_err_set("tensor '%s': unexpected keys in entry", name);
    int dt = st_dtype_parse(json_string_value(jd));
    if (dt < 0) return tp_err_set("tensor '%s': unknown dtype '%s'", name, json_string_value(jd));
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return tp_err_set("tensor '%s': %zu dimensions, at most %d supported (ST_MAX_DIMS)", name, nd,
                          ST_MAX_DIMS);
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return tp_err_set("tensor '%s': shape entries must be non-negative integers", name);
        uint64_t x = (uint64_t)json_integer_value(d);
        t->shape[i] = (int64_t)x;
        if (x != 0 && numel > UINT64_MAX / x) overflow = 1;
        else numel *= x;
    }
    if (overflow || numel > (UINT64_MAX >> 4))
        return tp_err_set("tensor '%s': shape product overflows", name);
    if (json_array_size(jo) != 2) return tp_err_set("tensor '%s': data_offsets needs 2 entries", name);
    for (int i = 0; i < 2; i++) {
        json_t *d = json_array_get(jo, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return tp_err_set("tensor '%s': data_offsets must be non-negative integers", name);
        off[i] = (uint64_t)json_integer_value(d);
    }
    if (off[1] < off[0]) return tp_err_set("tensor '%s': data_offsets end before begin", name);
    uint64_t nbytes = numel * dtype_sizes[dt];
    if (off[1] - off[0] != nbytes)
        return tp_err_set("tensor '%s': %llu data bytes for %llu elements of %s", name,
                          (unsigned long long)(off[1] - off[0]), (unsigned long long)numel,
                          dtype_names[dt]);
    t->dtype = dt;
    t->ndim = (int)nd;
    t->nbytes = nbytes;
    return 0;
}

int st_parse(struct st **out, void *blob, size_t size, int mapped)
{
    if (size < 8) return tp_err_set("safetensors: %zu bytes, too short for a header", size);
    uint64_t n = 0;
    const unsigned char *b = blob;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
    if (n > ST_MAX_HEADER)
        return tp_err_set("safetensors: header length %llu exceeds the limit of %u bytes (ST_MAX_HEADER)",
                          (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return tp_err_set("safetensors: header length %llu but only %zu bytes follow",
                          (unsigned long long)n, size - 8);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)b + 8, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return tp_err_set("safetensors: header is not valid JSON: %s", jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return tp_err_set("safetensors: header is not a JSON object");
    }
    struct st *s = st_new();
    size_t nt = json_object_size(root);
    struct span *spans = tp_calloc(nt ? nt : 1, sizeof *spans);
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                rc = tp_err_set("safetensors: __metadata__ is not an object");
                break;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = tp_err_set("safetensors: metadata '%s' is not a string", mk);
                    break;
                }
                st_meta_set(s, mk, json_string_value(mv));
            }
            if (rc) break;
            continue;
        }
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 16;
            s->t = tp_realloc(s->t, s->cap * sizeof *s->t);
        }
        struct st_tensor *t = &s->t[s->n];
        memset(t, 0, sizeof *t);
        uint64_t off[2];
        if (parse_entry(t, key, v, off) != 0) {
            rc = -1;
            break;
        }
        t->name = tp_strdup(key);
        spans[s->n].begin = off[0];
        spans[s->n].end = off[1];
        spans[s->n].idx = s->n;
        s->n++;
    }
    json_decref(root);
    uint64_t data_size = size - 8 - n;
    if (rc == 0) {
        /* the tensors, by offset, must tile the data buffer exactly */
        qsort(spans, s->n, sizeof *spans, span_cmp);
        uint64_t pos = 0;
        for (int i = 0; i < s->n && rc == 0; i++) {
            if (spans[i].begin != pos)
                rc = tp_err_set("safetensors: tensor '%s' starts at %llu, expected %llu (%s)",
                                s->t[spans[i].idx].name, (unsigned long long)spans[i].begin,
                                (unsigned long long)pos, spans[i].begin < pos ? "overlap" : "gap");
            pos = spans[i].end;
        }
        if (rc == 0 && pos != data_size)
            rc = tp_err_set("safetensors: tensors cover %llu data bytes but the buffer has %llu",
                            (unsigned long long)pos, (unsigned long long)data_size);
    }
    if (rc != 0) {
        free(spans);
        s->blob = NULL;
        st_free(s);
        return -1;
    }
    char *data = (char *)blob + 8 + n;
    for (int i = 0; i < s->n; i++) {
        struct st_tensor *t = &s->t[spans[i].idx];
        char *p = data + spans[i].begin;
        size_t al = dtype_sizes[t->dtype];
        if (((uintptr_t)p % al) != 0) {
            /* misaligned (foreign writers): copy so typed access is defined */
            tensor_alloc(t);
            memcpy(t->data, p, t->nbytes);
        } else {
            t->data = p;
        }
    }
    free(spans);
    s->blob = blob;
    s->blob_size = size;
    s->blob_mapped = mapped;
    *out = s;
    return 0;
}

int st_parse_block(struct st **out, void *block, void *blob, size_t size)
{
    if (st_parse(out, blob, size, 0) != 0) return -1;
    (*out)->blob_block = block;
    return 0;
}

int st_load(struct st **out, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tp_err_errno("%s", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return tp_err_errno("%s", path);
    }
    if (!S_ISREG(sb.st_mode)) {
        /* a pipe or device: read it whole */
        void *buf;
        size_t n;
        int rc = io_slurp_fd(fd, path, (size_t)1 << 40, &buf, &n);
        close(fd);
        if (rc) return rc;
        if (st_parse(out, buf, n, 0) != 0) {
            free(buf);
            return tp_err_prefix("%s", path);
        }
        return 0;
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return tp_err_set("%s: %zu bytes, too short for a safetensors file", path, size);
    }
    /* populated at once: the loader reads every page, and one fault per page
     * costs more than the copy on this kind of virtual machine. Populated
     * read-only, the pages are the page cache's own; populating a writable
     * private map copies every page first. Writable afterwards: a write
     * copies its page then. */
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return tp_err_errno("%s: mmap", path);
    if (mprotect(map, size, PROT_READ | PROT_WRITE) != 0) {
        munmap(map, size);
        return tp_err_errno("%s: mprotect", path);
    }
    if (st_parse(out, map, size, 1) != 0) {
        munmap(map, size);
        return tp_err_prefix("%s", path);
    }
    (*out)->file_dev = (uint64_t)sb.st_dev, (*out)->file_ino = (uint64_t)sb.st_ino;
    return 0;
}

/* ---- write ----------------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t n, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = tp_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_fmt(struct sbuf *b, const char *fmt, ...) TP_PRINTF(2, 3);
static void sb_fmt(struct sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)k);
}

/* a JSON string literal */
static void sb_json(struct sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sb_put(b, e, 2);
        } else if (*p < 0x20) {
            sb_fmt(b, "\\u%04x", *p);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static const struct st *sort_ctx;
static int write_order_cmp(const void *a, const void *b)
{
    const int i = *(const int *)a, j = *(const int *)b;
    const struct st_tensor *x = &sort_ctx->t[i], *y = &sort_ctx->t[j];
    if (x->dtype != y->dtype) return x->dtype > y->dtype ? -1 : 1; /* widest first */
    return sort_ctx->put_order ? (i > j) - (i < j) : strcmp(x->name, y->name);
}

/* Writer order (safetensors': dtype descending, then name; or the order the
 * tensors were put in, st.put_order). Not thread-safe only in the qsort
 * context pointer, which is set and used under one call. */
static int *write_order(const struct st *s)
{
    int *ord = tp_malloc((s->n ? s->n : 1) * sizeof(int));
    for (int i = 0; i < s->n; i++) ord[i] = i;
    sort_ctx = s;
    qsort(ord, s->n, sizeof(int), write_order_cmp);
    sort_ctx = NULL;
    return ord;
}

/* align: where the data begins in the serialization, a multiple of it */
static void build_header(const struct st *s, const int *ord, struct sbuf *h, size_t align)
{
    sb_str(h, "{\"__metadata__\":{");
    int first = 1;
    if (!st_meta_get(s, "format")) {
        sb_str(h, "\"format\":\"pt\"");
        first = 0;
    }
    for (int i = 0; i < s->nmeta; i++) {
        if (!first) sb_str(h, ",");
        first = 0;
        sb_json(h, s->meta_key[i]);
        sb_str(h, ":");
        sb_json(h, s->meta_val[i]);
    }
    sb_str(h, "}");
    uint64_t off = 0;
    for (int k = 0; k < s->n; k++) {
        const struct st_tensor *t = &s->t[ord[k]];
        sb_str(h, ",");
        sb_json(h, t->name);
        sb_fmt(h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_names[t->dtype]);
        for (int d = 0; d < t->ndim; d++) sb_fmt(h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        sb_fmt(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
               (unsigned long long)(off + t->nbytes));
        off += t->nbytes;
    }
    sb_str(h, "}");
    while ((8 + h->n) % align) sb_put(h, " ", 1);
}

static int pieces_at(const struct st *s, struct st_pieces *p, size_t align)
{
    int *ord = write_order(s);
    struct sbuf h = {0};
    build_header(s, ord, &h, align);
    /* the length, then the header, in one piece */
    unsigned char *head = tp_malloc(8 + h.n);
    for (int i = 0; i < 8; i++) head[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    memcpy(head + 8, h.p, h.n);
    free(h.p);
    p->head = head;
    p->v = tp_malloc(((size_t)s->n + 1) * sizeof *p->v);
    p->v[0] = (struct iovec){head, 8 + h.n};
    p->n = 1;
    p->total = 8 + h.n;
    for (int k = 0; k < s->n; k++) {
        const struct st_tensor *t = &s->t[ord[k]];
        if (t->nbytes) p->v[p->n++] = (struct iovec){t->data, t->nbytes};
        p->total += t->nbytes;
    }
    free(ord);
    return 0;
}

int st_pieces(const struct st *s, struct st_pieces *p) { return pieces_at(s, p, 8); }

void st_pieces_free(struct st_pieces *p)
{
    free(p->head);
    free(p->v);
    *p = (struct st_pieces){0};
}

size_t st_serialized_size(const struct st *s)
{
    struct st_pieces p;
    st_pieces(s, &p);
    size_t total = p.total;
    st_pieces_free(&p);
    return total;
}

void *st_pieces_join(const struct st_pieces *p)
{
    unsigned char *out = tp_malloc_record(p->total ? p->total : 1);
    size_t pos = 0;
    for (int i = 0; i < p->n; i++) {
        memcpy(out + pos, p->v[i].iov_base, p->v[i].iov_len);
        pos += p->v[i].iov_len;
    }
    return out;
}

/* Where st_save and st_serialize begin the data (st.h, ST_PAGE) */
static size_t file_align(const struct st *s)
{
    size_t data = 0;
    for (int i = 0; i < s->n; i++) data += s->t[i].nbytes;
    return data >= ST_PAGE_DATA_MIN ? ST_PAGE : 8;
}

int st_serialize(const struct st *s, void **buf, size_t *size)
{
    struct st_pieces p;
    pieces_at(s, &p, file_align(s));
    *buf = st_pieces_join(&p);
    *size = p.total;
    st_pieces_free(&p);
    return 0;
}

/* Header and tensors straight from their buffers to the file: a checkpoint
 * costs no copy of the weights, and no large short-lived allocation that
 * could leave the heap fragmented in a long run. */
int st_save(const struct st *s, const char *path)
{
    /* a megabyte of data or more begins on a page of the file: a loader can
     * map the values where it wants them (params_load_file) */
    struct st_pieces p;
    pieces_at(s, &p, file_align(s));
    struct io_out o;
    int rc = io_out_open(&o, path), opened = rc == 0;
    if (rc == 0) rc = io_writev_all(o.fd, p.v, p.n, path);
    if (rc == 0) rc = io_out_commit(&o);
    else if (opened) io_out_abort(&o);
    st_pieces_free(&p);
    return rc;
}
