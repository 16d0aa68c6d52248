/* params.c - parameter tables, buffers, init, load/save (see params.h). */
#include "params.h"
#include "err.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Buffers of a megabyte or more come straight from mmap: zero pages, mapped
 * in only when written (gradients: a tool that only runs forward never
 * touches them) or all at once (values: init or loading writes them whole,
 * and one page fault at a time is slow on this kind of virtual machine).
 * Zeroing both with memset took 40% of the start of a sampling step. */
#ifdef __SANITIZE_ADDRESS__
#define ZERO_MAP_MIN SIZE_MAX /* the sanitizer checks only malloc'd buffers */
#else
#define ZERO_MAP_MIN ((size_t)1 << 20)
#endif

/* bytes of zero pages, not populated (faulted in as they are touched, or
 * replaced untouched by a mapped load), advised onto huge pages; at: where
 * (MAP_FIXED, replacing what is there), or NULL */
static void *zero_pages(void *at, size_t bytes)
{
    void *p = mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED : 0), -1, 0);
    if (p == MAP_FAILED || (at && p != at)) tp_out_of_memory(bytes);
    tp_advise_huge(p, bytes);
    return p;
}

static float *zeroed_floats(size_t n)
{
    size_t bytes = n * sizeof(float);
    if (bytes < ZERO_MAP_MIN) {
        float *p = tp_aligned_alloc(bytes);
        memset(p, 0, bytes);
        return p;
    }
    return zero_pages(NULL, bytes);
}

static void free_floats(float *p, size_t n)
{
    if (!p) return;
    if (n * sizeof(float) < ZERO_MAP_MIN) free(p);
    else munmap(p, n * sizeof(float));
}

void params_init_table(struct params *p) { memset(p, 0, sizeof *p); }

void params_free(struct params *p)
{
    free(p->spec);
    free_floats(p->data, p->total);
    free_floats(p->grad, p->total);
    memset(p, 0, sizeof *p);
}

size_t params_add(struct params *p, const char *prefix, const char *name, int ndim,
                  const int64_t *shape, enum param_init init, float a)
{
    TP_ASSERT(!p->data && ndim >= 0 && ndim <= 4);
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->spec = tp_realloc(p->spec, p->cap * sizeof *p->spec);
    }
    struct param_spec *s = &p->spec[p->n++];
    memset(s, 0, sizeof *s);
    int k = snprintf(s->name, sizeof s->name, "%s%s", prefix ? prefix : "", name);
    TP_ASSERT(k > 0 && (size_t)k < sizeof s->name);
    s->ndim = ndim;
    s->numel = 1;
    for (int i = 0; i < ndim; i++) {
        s->shape[i] = shape[i];
        s->numel *= (size_t)shape[i];
    }
    s->offset = p->total;
    s->init = init;
    s->a = a;
    p->total += s->numel;
    return s->offset;
}

void params_alloc(struct params *p)
{
    /* data is written whole by init or a copying load; not populated, since
     * a mapped load replaces its pages (populated, 11 of a 27 ms transformer
     * start went to pages thrown away) */
    p->data = zeroed_floats(p->total);
    p->grad = zeroed_floats(p->total);
}

void params_drop_grad(struct params *p)
{
    free_floats(p->grad, p->total);
    p->grad = NULL;
}

/* fan_in / fan_out as torch computes them: dim 1 (times the receptive
 * field) and dim 0. */
static void fans(const struct param_spec *s, double *fan_in, double *fan_out)
{
    double rf = 1;
    for (int i = 2; i < s->ndim; i++) rf *= (double)s->shape[i];
    *fan_in = s->ndim >= 2 ? (double)s->shape[1] * rf : (double)s->numel;
    *fan_out = s->ndim >= 2 ? (double)s->shape[0] * rf : (double)s->numel;
}

void params_fill_init(struct params *p, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < p->n; i++) {
        const struct param_spec *s = &p->spec[i];
        float *x = p->data + s->offset;
        double fi, fo;
        fans(s, &fi, &fo);
        for (size_t j = 0; j < s->numel; j++) {
            switch (s->init) {
            case INIT_ZEROS: x[j] = 0; break;
            case INIT_ONES: x[j] = 1; break;
            case INIT_NORMAL: x[j] = s->a * rng_normal(&r); break;
            case INIT_TRUNC_NORMAL: x[j] = s->a * rng_trunc_normal(&r, -2, 2); break;
            case INIT_UNIFORM: x[j] = s->a * (2 * rng_uniform(&r) - 1); break;
            case INIT_XAVIER: x[j] = (float)sqrt(6.0 / (fi + fo)) * (2 * rng_uniform(&r) - 1); break;
            case INIT_KAIMING: x[j] = (float)(1.0 / sqrt(fi)) * (2 * rng_uniform(&r) - 1); break;
            }
        }
    }
    params_changed(p);
}

static char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

const struct param_spec *params_find(const struct params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->spec[i].name, name) == 0) return &p->spec[i];
    return NULL;
}

/* Every spec in w as F32 of its shape; no other tensor unless allow_extra. */
static int check_file(const struct params *p, const struct st *w, int allow_extra)
{
    for (int i = 0; i < p->n; i++) {
        const struct param_spec *s = &p->spec[i];
        const struct st_tensor *t = st_require(w, s->name, ST_F32, s->ndim);
        if (!t) return -1;
        for (int d = 0; d < s->ndim; d++)
            if (t->shape[d] != s->shape[d]) {
                char a[96], b[96];
                return tp_err_set("tensor '%s': shape %s, the architecture needs %s", s->name,
                                  st_shape_str(t, a, sizeof a), shape_str(b, sizeof b, s->ndim, s->shape));
            }
    }
    if (!allow_extra)
        for (int i = 0; i < w->n; i++)
            if (!params_find(p, w->t[i].name))
                return tp_err_set("tensor '%s' is not a parameter of this architecture", w->t[i].name);
    return 0;
}

int params_load(struct params *p, const struct st *w, int allow_extra)
{
    if (check_file(p, w, allow_extra) != 0) return -1;
    for (int i = 0; i < p->n; i++) {
        const struct param_spec *s = &p->spec[i];
        memcpy(p->data + s->offset, st_find(w, s->name)->data, s->numel * sizeof(float));
    }
    params_changed(p);
    return 0;
}

/* Where in the file w's values begin, if they lie as the table's (one after
 * another in its order, no other tensor) from a page on; else -1. */
static long long table_at(const struct params *p, const struct st *w)
{
    if (!w->blob_mapped || w->n != p->n || p->n == 0) return -1;
    const float *first = st_find(w, p->spec[0].name)->data;
    for (int i = 0; i < p->n; i++)
        if ((const float *)st_find(w, p->spec[i].name)->data != first + p->spec[i].offset) return -1;
    const size_t at = (size_t)((const char *)first - (const char *)w->blob);
    return at % ST_PAGE == 0 ? (long long)at : -1;
}

/* data's pages replaced by those of w's file from at; 0, or -1 with data
 * as it was (zero pages). The file at path is w's only if it is the same
 * inode: the tools replace files by a rename, never in place. */
static int map_values(struct params *p, const struct st *w, const char *path, size_t at)
{
    const size_t bytes = p->total * sizeof(float);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_dev != w->file_dev || (uint64_t)sb.st_ino != w->file_ino) {
        close(fd);
        return -1;
    }
    /* populated read-only: the page cache's own pages (st_load) */
    void *m = mmap(p->data, bytes, PROT_READ, MAP_PRIVATE | MAP_FIXED | MAP_POPULATE, fd, (off_t)at);
    close(fd);
    if (m == p->data && mprotect(m, bytes, PROT_READ | PROT_WRITE) == 0) return 0;
    /* zero pages again at the same place (the module points into them) */
    zero_pages(p->data, bytes);
    return -1;
}

int params_load_file(struct params *p, struct st *w, const char *path)
{
    int rc = check_file(p, w, 0);
    const long long at = rc == 0 ? table_at(p, w) : -1;
    const size_t bytes = p->total * sizeof(float);
    const int mapped = at >= 0 && bytes >= ZERO_MAP_MIN && (uintptr_t)p->data % ST_PAGE == 0 &&
                       map_values(p, w, path, (size_t)at) == 0;
    if (mapped)
        params_changed(p);
    else if (rc == 0)
        rc = params_load(p, w, 0);
    st_free(w);
    return rc;
}

void params_view(const struct params *p, struct st *out, int grad)
{
    float *base = grad ? p->grad : p->data;
    if (!grad) out->put_order = 1; /* the values: written in the table's order (params_load_file) */
    for (int i = 0; i < p->n; i++) {
        const struct param_spec *s = &p->spec[i];
        st_put_ref(out, s->name, ST_F32, s->ndim, s->shape, base + s->offset);
    }
}

int params_save(const struct params *p, const char *path, const struct st *meta)
{
    struct st *s = st_new();
    if (meta)
        for (int i = 0; i < meta->nmeta; i++) st_meta_set(s, meta->meta_key[i], meta->meta_val[i]);
    params_view(p, s, 0);
    int rc = st_save(s, path);
    st_free(s);
    return rc;
}

void params_zero_grad(struct params *p) { memset(p->grad, 0, p->total * sizeof(float)); }

size_t params_count(const struct params *p, const char *prefix)
{
    size_t n = 0, k = strlen(prefix);
    for (int i = 0; i < p->n; i++)
        if (strncmp(p->spec[i].name, prefix, k) == 0) n += p->spec[i].numel;
    return n;
}
