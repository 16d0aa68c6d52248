/* imgsrc.c - image inputs: PNG files, directories, archives, IDX (see imgsrc.h).
 *
 * Everything that is not a directory goes through libarchive with every
 * filter, every format and the raw format enabled: an archive is read as
 * such; anything else comes out as one raw entry (gunzipped if it was
 * gzipped) whose first bytes say PNG or IDX. Directory and archive inputs
 * produce members (name + data), which a WebDataset grouper turns into
 * samples; only png and cls members are read into memory, with a size cap.
 */
#include "imgsrc.h"
#include "err.h"
#include "io.h"
#include "png.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum mode { M_DIR, M_ARCHIVE, M_PNG, M_IDX };

struct member {
    char *name;
    unsigned char *data;
    size_t n;
    char *err;   /* this member could not be read (the sample is bad) */
};

struct imgsrc {
    char *name;          /* the input as messages show it */
    char *base;          /* basename up to its first dot */
    enum mode mode;
    struct imgsrc_opts o;
    int done;
    /* directory */
    char *dir;
    char **files;
    long nfiles, ifile, filecap;
    /* archive / raw */
    struct archive *a;
    struct archive_entry *first;   /* header read by open, not yet consumed */
    unsigned char peek[16];
    size_t npeek, peekpos;
    struct member pending;
    int has_pending;
    /* IDX */
    long idx_n, idx_i;
    int idx_h, idx_w;
    uint8_t *labels;
    long unmapped;
};

struct labelmap_entry {
    char *key;
    int32_t label;
};

struct imgsrc_labelmap {
    long n;
    struct labelmap_entry *e;   /* sorted by key */
};

static char *fmt(const char *f, ...) TP_PRINTF(1, 2);
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    int n = vasprintf(&s, f, ap);
    va_end(ap);
    TP_ASSERT(n >= 0);
    return s;
}

static char *dupn(const char *s, size_t n)
{
    char *d = tp_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* WebDataset key: the path up to the first dot of the basename, which must
 * not be the basename's first character. Returns the key length, or -1 if
 * the name has no key (it is skipped). */
static long key_len(const char *name)
{
    const char *b = strrchr(name, '/');
    b = b ? b + 1 : name;
    const char *dot = strchr(b, '.');
    if (!dot || dot == b) return -1;
    return dot - name;
}

static int ext_is(const char *name, const char *ext)
{
    long k = key_len(name);
    return k >= 0 && strcasecmp(name + k + 1, ext) == 0;
}

static char *basename_key(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strcspn(b, ".");
    return n ? dupn(b, n) : tp_strdup(b);
}

static int accept_member(const struct imgsrc *s, const char *name)
{
    if (key_len(name) < 0 || strncmp(name, "__", 2) == 0) return 0;
    return !s->o.member_glob || fnmatch(s->o.member_glob, name, 0) == 0;
}

static void member_free(struct member *m)
{
    free(m->name);
    free(m->data);
    free(m->err);
    memset(m, 0, sizeof *m);
}

/* ---- directories ---------------------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_file(struct imgsrc *s, char *rel)
{
    if (s->nfiles == s->filecap) {
        s->filecap = s->filecap ? 2 * s->filecap : 256;
        s->files = tp_realloc(s->files, sizeof(char *) * s->filecap);
    }
    s->files[s->nfiles++] = rel;
}

/* Depth-first, each directory's entries in strcmp order. */
static int walk(struct imgsrc *s, const char *rel)
{
    char *path = rel[0] ? fmt("%s/%s", s->dir, rel) : tp_strdup(s->dir);
    DIR *d = opendir(path);
    if (!d) {
        tp_err_errno("%s", path);
        free(path);
        return -1;
    }
    char **names = NULL;
    long n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (n == cap) names = tp_realloc(names, sizeof(char *) * (cap = cap ? 2 * cap : 64));
        names[n++] = tp_strdup(de->d_name);
    }
    closedir(d);
    free(path);
    if (n) qsort(names, n, sizeof(char *), name_cmp);
    int rc = 0;
    for (long i = 0; i < n; i++) {
        char *child = rel[0] ? fmt("%s/%s", rel, names[i]) : tp_strdup(names[i]);
        char *full = fmt("%s/%s", s->dir, child);
        struct stat st;
        if (rc == 0 && lstat(full, &st) != 0) rc = tp_err_errno("%s", full);
        if (rc == 0 && S_ISLNK(st.st_mode) && stat(full, &st) != 0) st.st_mode = 0; /* dangling */
        int reg = rc == 0 && S_ISREG(st.st_mode);
        if (rc == 0 && S_ISDIR(st.st_mode)) rc = walk(s, child);   /* lstat: never a symlink */
        if (reg) add_file(s, child);
        else free(child);
        free(full);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Read a png/cls member file; a file over the cap is a member error. */
static int dir_load(struct imgsrc *s, struct member *m)
{
    char *full = fmt("%s/%s", s->dir, m->name);
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int rc = 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = tp_err_errno("%s", full);
    } else if ((uint64_t)st.st_size > IMGSRC_MAX_MEMBER) {
        m->err = fmt("%lld bytes is over the limit of %zu (IMGSRC_MAX_MEMBER)",
                     (long long)st.st_size, IMGSRC_MAX_MEMBER);
    } else {
        void *buf;
        rc = io_slurp_fd(fd, full, IMGSRC_MAX_MEMBER + 1, &buf, &m->n);
        m->data = buf;
    }
    if (fd >= 0) close(fd);
    free(full);
    return rc;
}

static int dir_next_member(struct imgsrc *s, struct member *m)
{
    while (s->ifile < s->nfiles) {
        const char *rel = s->files[s->ifile++];
        if (!accept_member(s, rel)) continue;
        m->name = tp_strdup(rel);
        if ((ext_is(rel, "png") || ext_is(rel, "cls")) && dir_load(s, m) != 0) return -1;
        return 1;
    }
    return 0;
}

/* ---- archives -------------------------------------------------------------------- */

static int ar_fatal(struct imgsrc *s, const char *member)
{
    const char *e = archive_error_string(s->a);
    if (member) return tp_err_set("%s: %s: %s", s->name, member, e ? e : "read error");
    return tp_err_set("%s: %s", s->name, e ? e : "read error");
}

/* Read the current entry's data (cap IMGSRC_MAX_MEMBER); a member that is
 * too large or unreadable (ARCHIVE_FAILED) is a member error, a fatal
 * archive error stops the input. Sizes from headers are only trusted to
 * refuse early, never to allocate. */
static int ar_load(struct imgsrc *s, struct archive_entry *e, struct member *m)
{
    if (archive_entry_size_is_set(e) && (uint64_t)archive_entry_size(e) > IMGSRC_MAX_MEMBER) {
        m->err = fmt("%lld bytes is over the limit of %zu (IMGSRC_MAX_MEMBER)",
                     (long long)archive_entry_size(e), IMGSRC_MAX_MEMBER);
        return 0;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = tp_malloc(cap);
    for (;;) {
        la_ssize_t k = archive_read_data(s->a, buf + n, cap - n);
        if (k == 0) break;
        if (k == ARCHIVE_FATAL) {
            free(buf);
            return ar_fatal(s, m->name);
        }
        if (k < 0) {
            const char *es = archive_error_string(s->a);
            m->err = fmt("%s", es ? es : "unreadable member");
            free(buf);
            return 0;
        }
        n += (size_t)k;
        if (n > IMGSRC_MAX_MEMBER) {
            m->err = fmt("over the limit of %zu bytes (IMGSRC_MAX_MEMBER)", IMGSRC_MAX_MEMBER);
            free(buf);
            return 0;
        }
        if (n == cap) {
            cap = cap * 2 > IMGSRC_MAX_MEMBER + 1 ? IMGSRC_MAX_MEMBER + 1 : cap * 2;
            buf = tp_realloc(buf, cap);
        }
    }
    m->data = buf;
    m->n = n;
    return 0;
}

static int ar_next_member(struct imgsrc *s, struct member *m)
{
    for (;;) {
        struct archive_entry *e = s->first;
        int r = ARCHIVE_OK;
        if (e) s->first = NULL;
        else r = archive_read_next_header(s->a, &e);
        if (r == ARCHIVE_EOF) return 0;
        if (r == ARCHIVE_FATAL) return ar_fatal(s, NULL);
        const char *name = archive_entry_pathname(e);
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {   /* FAILED/RETRY: this entry is lost */
            const char *es = archive_error_string(s->a);
            m->name = tp_strdup(name && key_len(name) >= 0 ? name : "unreadable.member");
            m->err = fmt("%s", es ? es : "unreadable member");
            return 1;
        }
        if (archive_entry_filetype(e) != AE_IFREG || !name || !accept_member(s, name)) continue;
        m->name = tp_strdup(name);
        if ((ext_is(name, "png") || ext_is(name, "cls")) && ar_load(s, e, m) != 0) return -1;
        return 1;
    }
}

/* Raw entries: bytes from the peek buffer first. Returns the count (short
 * only at the end of the data) or -1. */
static long raw_read(struct imgsrc *s, void *dst, size_t n)
{
    unsigned char *d = dst;
    size_t got = 0;
    while (got < n && s->peekpos < s->npeek) d[got++] = s->peek[s->peekpos++];
    while (got < n) {
        la_ssize_t k = archive_read_data(s->a, d + got, n - got);
        if (k < 0) return ar_fatal(s, NULL);
        if (k == 0) break;
        got += (size_t)k;
    }
    return (long)got;
}

static struct archive *ar_open(const char *path, const char *name)
{
    struct archive *a = archive_read_new();
    TP_ASSERT(a);
    archive_read_support_filter_all(a);
    archive_read_support_format_all(a);
    archive_read_support_format_raw(a);   /* last resort: bids lowest */
    int r = strcmp(path, "-") == 0 ? archive_read_open_fd(a, STDIN_FILENO, 1 << 16)
                                   : archive_read_open_filename(a, path, 1 << 16);
    if (r != ARCHIVE_OK) {
        const char *e = archive_error_string(a);
        tp_err_set("%s: %s", name, e ? e : "cannot open");
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* ---- IDX ----------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int idx_magic(const unsigned char *p, size_t n)
{
    return n >= 4 && p[0] == 0 && p[1] == 0 &&
           (p[2] == 0x08 || p[2] == 0x09 || (p[2] >= 0x0B && p[2] <= 0x0E)) &&
           p[3] >= 1 && p[3] <= 4;
}

static int idx_check_type(const char *name, const unsigned char *h, int ndim, const char *what)
{
    if (h[2] != 0x08)
        return tp_err_set("%s: IDX element type 0x%02x: %s must be unsigned bytes (0x08)",
                          name, h[2], what);
    if (h[3] != ndim)
        return tp_err_set("%s: IDX with %d dimension%s: %s need %d", name, h[3],
                          h[3] == 1 ? "" : "s", what, ndim);
    return 0;
}

/* The whole labels file (u8 [N], raw or gzip) into s->labels. */
static int idx_load_labels(struct imgsrc *s, const char *path)
{
    struct archive *a = ar_open(path, path);
    if (!a) return -1;
    struct archive_entry *e;
    int r = archive_read_next_header(a, &e), rc = 0;
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    if (r == ARCHIVE_EOF) rc = tp_err_set("%s: empty labels file", path);
    else if (r < ARCHIVE_WARN) rc = tp_err_set("%s: %s", path, archive_error_string(a));
    else if (archive_format(a) != ARCHIVE_FORMAT_RAW)
        rc = tp_err_set("%s: an archive, not an IDX labels file", path);
    while (rc == 0) {
        if (n == cap) {
            if (cap > IMGSRC_MAX_LABELS) {
                rc = tp_err_set("%s: over the limit of %zu bytes (IMGSRC_MAX_LABELS)", path,
                                IMGSRC_MAX_LABELS);
                break;
            }
            cap = cap ? 2 * cap : 1 << 16;
            buf = tp_realloc(buf, cap);
        }
        la_ssize_t k = archive_read_data(a, buf + n, cap - n);
        if (k < 0) rc = tp_err_set("%s: %s", path, archive_error_string(a));
        if (k <= 0) break;
        n += (size_t)k;
    }
    archive_read_free(a);
    if (rc == 0 && !idx_magic(buf, n)) rc = tp_err_set("%s: not an IDX file", path);
    if (rc == 0) rc = idx_check_type(path, buf, 1, "labels");
    if (rc == 0 && n < 8) rc = tp_err_set("%s: truncated IDX header", path);
    if (rc == 0 && be32(buf + 4) != (uint64_t)s->idx_n)
        rc = tp_err_set("%s: %u labels for %ld images in %s", path, be32(buf + 4), s->idx_n, s->name);
    if (rc == 0 && n != 8 + (size_t)s->idx_n)
        rc = tp_err_set("%s: %zu bytes, expected %zu for %ld labels", path, n,
                        8 + (size_t)s->idx_n, s->idx_n);
    if (rc == 0) {
        s->labels = tp_malloc(s->idx_n ? (size_t)s->idx_n : 1);
        memcpy(s->labels, buf + 8, (size_t)s->idx_n);
    }
    free(buf);
    return rc;
}

static int idx_open(struct imgsrc *s)
{
    unsigned char h[16];
    long k = raw_read(s, h, 4);
    if (k < 0) return -1;
    if (idx_check_type(s->name, h, 3, "images") != 0) return -1;
    k = raw_read(s, h + 4, 12);
    if (k < 0) return -1;
    if (k < 12) return tp_err_set("%s: truncated IDX header", s->name);
    uint32_t n = be32(h + 4), hh = be32(h + 8), ww = be32(h + 12);
    if (n > INT32_MAX) return tp_err_set("%s: %u images is over the limit of %d (INT32_MAX)", s->name, n, INT32_MAX);
    if (png_check_size(ww, hh) != 0) return tp_err_prefix("%s", s->name);
    s->idx_n = n;
    s->idx_h = (int)hh;
    s->idx_w = (int)ww;
    s->mode = M_IDX;
    if (s->o.labels_idx && idx_load_labels(s, s->o.labels_idx) != 0) return -1;
    return 0;
}

static int idx_next(struct imgsrc *s, struct imgsrc_item *it)
{
    if (s->idx_i == s->idx_n) {
        unsigned char extra;
        long k = s->done ? 0 : raw_read(s, &extra, 1);
        s->done = 1;
        if (k < 0) return -1;
        if (k > 0) return tp_err_set("%s: data after the last of %ld images", s->name, s->idx_n);
        return 0;
    }
    size_t n = (size_t)s->idx_h * s->idx_w;
    it->data = tp_malloc(n);
    long k = raw_read(s, it->data, n);
    if (k < 0 || (size_t)k < n) {
        free(it->data);
        it->data = NULL;
        if (k < 0) return -1;
        return tp_err_set("%s: truncated IDX file: image %ld of %ld is incomplete", s->name,
                          s->idx_i, s->idx_n);
    }
    it->kind = IMGSRC_GRAY8;
    it->n = n;
    it->h = s->idx_h;
    it->w = s->idx_w;
    it->key = fmt("%s/%06ld", s->base, s->idx_i);
    it->where = fmt("%s: image %ld", s->name, s->idx_i);
    if (s->labels) {
        it->has_label = 1;
        it->label = s->labels[s->idx_i];
    }
    s->idx_i++;
    return 1;
}

/* ---- opening -------------------------------------------------------------------- */

/* A raw (non-archive) file: a PNG or an IDX file, judged by its first bytes. */
static int raw_open(struct imgsrc *s)
{
    long k = raw_read(s, s->peek, 8);
    if (k < 0) return -1;
    s->npeek = (size_t)k;
    s->peekpos = 0;
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (k == 8 && memcmp(s->peek, sig, 8) == 0) {
        s->mode = M_PNG;
        return 0;
    }
    if (idx_magic(s->peek, s->npeek)) return idx_open(s);
    return tp_err_set("%s: %s", s->name, k == 0 ? "empty input" : "not a PNG, IDX or archive file");
}

struct imgsrc *imgsrc_open(const char *path, const struct imgsrc_opts *o)
{
    struct imgsrc *s = tp_calloc(1, sizeof *s);
    int is_stdin = strcmp(path, "-") == 0;
    s->o = *o;
    s->name = tp_strdup(is_stdin ? "stdin" : path);
    s->base = basename_key(s->name);
    struct stat st;
    int rc = 0;
    if (!is_stdin && stat(path, &st) != 0) {
        rc = tp_err_errno("%s", path);
    } else if (!is_stdin && S_ISDIR(st.st_mode)) {
        s->mode = M_DIR;
        s->dir = tp_strdup(path);
        rc = walk(s, "");
    } else if (!is_stdin && S_ISREG(st.st_mode) && st.st_size == 0) {
        rc = tp_err_set("%s: empty file", path);
    } else if (!(s->a = ar_open(path, s->name))) {
        rc = -1;
    } else {
        int r = archive_read_next_header(s->a, &s->first);
        if (r == ARCHIVE_EOF) {
            s->first = NULL;
            s->mode = M_ARCHIVE;   /* an empty archive: no samples */
            s->done = 1;
        } else if (r == ARCHIVE_FATAL) {
            rc = ar_fatal(s, NULL);
        } else if (archive_format(s->a) == ARCHIVE_FORMAT_RAW) {
            s->first = NULL;
            rc = raw_open(s);
        } else {
            s->mode = M_ARCHIVE;
        }
    }
    if (rc != 0) {
        imgsrc_close(s);
        return NULL;
    }
    return s;
}

void imgsrc_close(struct imgsrc *s)
{
    if (!s) return;
    if (s->a) archive_read_free(s->a);
    for (long i = 0; i < s->nfiles; i++) free(s->files[i]);
    free(s->files);
    free(s->dir);
    member_free(&s->pending);
    free(s->labels);
    free(s->name);
    free(s->base);
    free(s);
}

int imgsrc_is_idx(const struct imgsrc *s) { return s->mode == M_IDX; }
long imgsrc_unmapped(const struct imgsrc *s) { return s->unmapped; }

void imgsrc_item_free(struct imgsrc_item *it)
{
    free(it->key);
    free(it->where);
    free(it->data);
    free(it->bad);
    memset(it, 0, sizeof *it);
}

/* ---- samples ---------------------------------------------------------------------- */

static const struct labelmap_entry *labelmap_find(const struct imgsrc_labelmap *m, const char *key);

/* With a label map: label the item, or count it as left out and return 0. */
static int map_label(struct imgsrc *s, const char *key, struct imgsrc_item *it)
{
    const struct labelmap_entry *e = labelmap_find(s->o.labelmap, key);
    if (!e) {
        s->unmapped++;
        return 0;
    }
    it->has_label = 1;
    it->label = e->label;
    return 1;
}

static int next_member(struct imgsrc *s, struct member *m)
{
    memset(m, 0, sizeof *m);
    int r = s->mode == M_DIR ? dir_next_member(s, m) : ar_next_member(s, m);
    if (r < 0) member_free(m);   /* a fatal error mid-member: the caller gets nothing */
    return r;
}

static int parse_cls(const struct member *m, int32_t *label)
{
    char buf[32];
    if (m->n == 0 || m->n >= sizeof buf) return -1;
    memcpy(buf, m->data, m->n);
    buf[m->n] = 0;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') end++;
    if (errno || end == buf || *end || v < INT32_MIN || v > INT32_MAX) return -1;
    *label = (int32_t)v;
    return 0;
}

/* One sample from its members. Returns 1, or 0 if the label map leaves it out. */
static int make_item(struct imgsrc *s, struct member *g, long ng, char *key, struct imgsrc_item *it)
{
    const struct member *png = NULL, *cls = NULL, *badm = NULL;
    const char *why = NULL;
    char *dup = NULL;
    for (long i = 0; i < ng; i++) {
        const char *ext = g[i].name + strlen(key) + 1;
        for (long j = 0; j < i && !dup; j++)
            if (strcasecmp(ext, g[j].name + strlen(key) + 1) == 0)
                dup = fmt("duplicate file name %s.%s in one sample", key, ext);
        if (dup && !badm) {
            badm = &g[i];
            why = dup;
        }
        if (g[i].err && !badm) {
            badm = &g[i];
            why = g[i].err;
        }
        if (ext_is(g[i].name, "png") && !png) png = &g[i];
        if (ext_is(g[i].name, "cls") && !cls) cls = &g[i];
    }
    if (s->o.labelmap) {
        if (!map_label(s, key, it)) {
            free(dup);
            free(key);
            return 0;
        }
    } else if (cls && !badm) {
        it->has_label = 1;
        if (parse_cls(cls, &it->label) != 0) {
            badm = cls;
            why = "not an ASCII decimal 32-bit integer label";
        }
    }
    if (!png && !badm) {
        badm = &g[0];
        why = "not a PNG image (no .png file in its sample)";
    }
    it->key = key;
    it->where = fmt("%s: %s", s->name, (badm ? badm : png)->name);
    if (badm) {
        it->bad = tp_strdup(why);
    } else {
        struct member *p = (struct member *)png;
        it->kind = IMGSRC_PNG;
        it->data = p->data;
        it->n = p->n;
        p->data = NULL;
    }
    free(dup);
    return 1;
}

static int png_file_next(struct imgsrc *s, struct imgsrc_item *it)
{
    if (s->done) return 0;
    s->done = 1;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = tp_malloc(cap);
    for (;;) {
        long k = raw_read(s, buf + n, cap - n);
        if (k < 0) {
            free(buf);
            return -1;
        }
        n += (size_t)k;
        if (n > IMGSRC_MAX_MEMBER) {   /* the bytes read, not the buffer, against the limit */
            free(buf);
            return tp_err_set("%s: over the limit of %zu bytes (IMGSRC_MAX_MEMBER)", s->name,
                              IMGSRC_MAX_MEMBER);
        }
        if (n < cap) break;
        buf = tp_realloc(buf, cap *= 2);
    }
    if (s->o.labelmap && !map_label(s, s->base, it)) {
        free(buf);
        return 0;
    }
    it->key = tp_strdup(s->base);
    it->where = tp_strdup(s->name);
    it->kind = IMGSRC_PNG;
    it->data = buf;
    it->n = n;
    return 1;
}

int imgsrc_next(struct imgsrc *s, struct imgsrc_item *it)
{
    memset(it, 0, sizeof *it);
    if (s->mode == M_IDX) return idx_next(s, it);
    if (s->mode == M_PNG) return png_file_next(s, it);
    for (;;) {
        struct member *g = NULL;
        long ng = 0;
        int r = 1;
        if (s->has_pending) {
            g = tp_malloc(sizeof *g);
            g[ng++] = s->pending;
            memset(&s->pending, 0, sizeof s->pending);
            s->has_pending = 0;
        } else if (!s->done) {
            struct member m;
            r = next_member(s, &m);
            if (r == 1) {
                g = tp_malloc(sizeof *g);
                g[ng++] = m;
            }
        } else {
            r = 0;
        }
        if (r <= 0) {
            s->done = 1;
            return r;
        }
        long kl = key_len(g[0].name);
        /* consecutive members with the same key join the sample */
        for (;;) {
            struct member m;
            r = next_member(s, &m);
            if (r <= 0) {
                s->done = 1;
                break;
            }
            if (key_len(m.name) == kl && strncmp(m.name, g[0].name, kl) == 0) {
                g = tp_realloc(g, sizeof *g * (ng + 1));
                g[ng++] = m;
            } else {
                s->pending = m;
                s->has_pending = 1;
                break;
            }
        }
        int got = 0;
        if (r >= 0) got = make_item(s, g, ng, dupn(g[0].name, kl), it);
        for (long i = 0; i < ng; i++) member_free(&g[i]);
        free(g);
        if (r < 0) return -1;
        if (got) return 1;
    }
}

/* ---- decoding and label maps ------------------------------------------------------- */

int imgsrc_decode(struct img *out, const struct imgsrc_item *it, int channels, const float bg[3])
{
    TP_ASSERT(!it->bad);
    if (it->kind == IMGSRC_PNG) return png_read_img(out, it->data, it->n, channels, bg);
    int c = channels == 3 ? 3 : 1;
    size_t n = (size_t)it->h * it->w;
    img_alloc(out, c, it->h, it->w);
    for (size_t i = 0; i < n; i++) out->data[i] = it->data[i] / 255.0f;
    for (int k = 1; k < c; k++) memcpy(out->data + k * n, out->data, n * sizeof(float));
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct labelmap_entry *)a)->key, ((const struct labelmap_entry *)b)->key);
}

static const struct labelmap_entry *labelmap_find(const struct imgsrc_labelmap *m, const char *key)
{
    struct labelmap_entry k = {.key = (char *)key};
    return m->n ? bsearch(&k, m->e, m->n, sizeof k, entry_cmp) : NULL;
}

struct imgsrc_labelmap *imgsrc_labelmap_load(const char *path)
{
    void *buf;
    size_t n;
    if (io_slurp(path, (size_t)1 << 30, &buf, &n) != 0) return NULL;
    struct imgsrc_labelmap *m = tp_calloc(1, sizeof *m);
    long cap = 0, lineno = 0;
    char *text = tp_realloc(buf, n + 1), *line = text, *next;
    text[n] = 0;
    int rc = 0;
    for (; rc == 0 && line < text + n; line = next) {
        next = strchr(line, '\n');
        next = next ? (*next = 0, next + 1) : text + n;
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (len == 0 || line[0] == '#') continue;
        char *tab = strrchr(line, '\t'), *end;
        long v = 0;
        if (tab) {
            errno = 0;
            v = strtol(tab + 1, &end, 10);
        }
        if (!tab || tab == line || errno || end == tab + 1 || *end || v < INT32_MIN || v > INT32_MAX) {
            rc = tp_err_set("%s: line %ld: expected KEY<TAB>LABEL (32-bit integer)", path, lineno);
            break;
        }
        if (m->n == cap) m->e = tp_realloc(m->e, sizeof *m->e * (cap = cap ? 2 * cap : 1024));
        m->e[m->n].key = dupn(line, tab - line);
        m->e[m->n++].label = (int32_t)v;
    }
    free(text);
    if (rc == 0) {
        if (m->n) qsort(m->e, m->n, sizeof *m->e, entry_cmp);
        for (long i = 1; i < m->n && rc == 0; i++)
            if (strcmp(m->e[i - 1].key, m->e[i].key) == 0)
                rc = tp_err_set("%s: key '%s' is listed twice", path, m->e[i].key);
    }
    if (rc != 0) {
        imgsrc_labelmap_free(m);
        return NULL;
    }
    return m;
}

void imgsrc_labelmap_free(struct imgsrc_labelmap *m)
{
    if (!m) return;
    for (long i = 0; i < m->n; i++) free(m->e[i].key);
    free(m->e);
    free(m);
}
