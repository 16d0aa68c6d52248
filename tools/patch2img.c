/* patch2img - a .tz stream back to PNG files: a directory, a tar, or a grid.
 *
 * Reads `image` F32 [B,C,H,W] (or `patch` F32 [B,N,P*P*C] with patch_size,
 * channels, height, width in __metadata__, or any F32 [B,C,H,W] field with
 * -f), clamps to [0,1] and writes 8-bit PNGs (x*255 rounded). Names come
 * from __metadata__["keys"], made safe (no absolute paths, no "..", no
 * symlinks followed), else "RECORD-SAMPLE". A `label` I32 [B] field is
 * written beside each image as KEY.cls (WebDataset), so img2patch reads the
 * result back with its labels. Every file is written to a temporary name
 * and renamed. See man/man1/patch2img.1.
 */
#include "cli.h"
#include "imgops.h"
#include "io.h"
#include "png.h"
#include "st.h"
#include "tz.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cmdline {
    const char *input;
    const char *field;
    const char *dir, *tar, *grid;
    int cols, rows, pad;
    float pad_value;
    int progress;
};

static void usage(void)
{
    printf("Usage: %s [options] (-d DIR | --tar FILE | --grid FILE --cols C) [INPUT.tz]\n"
           "Write the images of a .tz stream as PNG files.\n\n"
           "  -i FILE           input stream (default stdin)\n"
           "  -f FIELD          F32 [B,C,H,W] field to write (default image, or patch);\n"
           "                    with --grid, -f A,B puts each row of A over the same row of B\n"
           "  -d DIR            DIR/KEY.png for each sample (and KEY.cls with labels)\n"
           "  --tar FILE        the same as members of a tar file (- for stdout)\n"
           "  --grid FILE       one PNG with the images in a grid\n"
           "  --cols C          grid columns\n"
           "  --rows R          grid rows (default: enough for every image)\n"
           "  --pad P           grid spacing in pixels (default 2)\n"
           "  --pad-value V     grid spacing value in [0,1] (default 0)\n"
           "  --progress        progress on stderr\n"
           "  -h, --version     this help; the version\n",
           tp_progname);
    exit(0);
}

static void parse_cmdline(int argc, char **argv, struct cmdline *cl)
{
    enum { O_TAR = 256, O_GRID, O_COLS, O_ROWS, O_PAD, O_PADV, O_PROGRESS, O_VERSION };
    static const struct option opts[] = {
        {"tar", 1, 0, O_TAR},       {"grid", 1, 0, O_GRID},         {"cols", 1, 0, O_COLS},
        {"rows", 1, 0, O_ROWS},     {"pad", 1, 0, O_PAD},           {"pad-value", 1, 0, O_PADV},
        {"progress", 0, 0, O_PROGRESS}, {"version", 0, 0, O_VERSION}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    memset(cl, 0, sizeof *cl);
    cl->pad = 2;
    int c;
    while ((c = getopt_long(argc, argv, "i:f:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': cl->input = optarg; break;
        case 'f': cl->field = optarg; break;
        case 'd': cl->dir = optarg; break;
        case 'h': usage(); break;
        case O_TAR: cl->tar = optarg; break;
        case O_GRID: cl->grid = optarg; break;
        case O_COLS: cl->cols = (int)cli_long("--cols", optarg, 1, PNG_MAX_SIDE); break;
        case O_ROWS: cl->rows = (int)cli_long("--rows", optarg, 1, PNG_MAX_SIDE); break;
        case O_PAD: cl->pad = (int)cli_long("--pad", optarg, 0, 1024); break;
        case O_PADV: cl->pad_value = (float)cli_double("--pad-value", optarg, 0, 1); break;
        case O_PROGRESS: cl->progress = 1; break;
        case O_VERSION: cli_version(); break;
        default: die_usage("unknown option");
        }
    }
    if (optind < argc) {
        if (cl->input || optind + 1 < argc) die_usage("one input only");
        cl->input = argv[optind];
    }
    if (!!cl->dir + !!cl->tar + !!cl->grid != 1) die_usage("give one of -d DIR, --tar FILE, --grid FILE");
    if (cl->field && strchr(cl->field, ',') && !cl->grid) die_usage("-f with several fields needs --grid");
    if (cl->grid && !cl->cols) die_usage("--grid needs --cols");
    if (!cl->grid && (cl->cols || cl->rows)) die_usage("--cols and --rows go with --grid");
}

/* ---- names ----------------------------------------------------------------------- */

/* A key as a relative path: "", "." and ".." components dropped, control
 * characters and backslashes replaced by '_'. NULL if nothing is left. */
static char *safe_name(const char *key)
{
    size_t n = strlen(key);
    char *out = tp_malloc(n + 1), *o = out;
    const char *p = key;
    while (*p) {
        size_t len = strcspn(p, "/");
        int skip = len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.');
        if (!skip) {
            if (o != out) *o++ = '/';
            for (size_t i = 0; i < len; i++)
                *o++ = (unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\' ? '_' : p[i];
        }
        p += len;
        if (*p == '/') p++;
    }
    *o = 0;
    if (o == out) {
        free(out);
        return NULL;
    }
    return out;
}

/* Names for the B samples of a record: safe keys, or "RECORD-SAMPLE". */
static char **record_names(const struct st *rec, long ri, int B)
{
    char **names = tp_calloc(B, sizeof(char *));
    const char *ks = st_meta_get(rec, "keys");
    json_t *arr = ks ? json_loads(ks, 0, NULL) : NULL;
    int use = arr && json_is_array(arr) && json_array_size(arr) == (size_t)B;
    for (int i = 0; i < B; i++) {
        json_t *k = use ? json_array_get(arr, i) : NULL;
        if (k && json_is_string(k)) names[i] = safe_name(json_string_value(k));
        if (!names[i]) {
            names[i] = tp_malloc(32);
            snprintf(names[i], 32, "%06ld-%04d", ri, i);
        }
    }
    json_decref(arr);
    return names;
}

/* ---- outputs --------------------------------------------------------------------- */

/* Write rel (a safe relative path) under the directory dfd without following
 * symlinks: each directory component is opened O_NOFOLLOW (created if
 * missing), the file goes to a temporary name and is renamed over rel. */
static int write_under(int dfd, const char *dirname, const char *rel, const void *buf, size_t n)
{
    char *path = tp_strdup(rel), *comp = path, *slash;
    int fd = dup(dfd), rc = 0;
    if (fd < 0) rc = tp_err_errno("%s", dirname);
    while (rc == 0 && (slash = strchr(comp, '/'))) {
        *slash = 0;
        int sub = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 && errno == ENOENT && mkdirat(fd, comp, 0755) == 0)
            sub = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            int e = errno;
            rc = e == ELOOP || e == ENOTDIR
                     ? tp_err_set("%s/%s: not a directory (symlinks are not followed)", dirname, path)
                     : tp_err_errno("%s/%s", dirname, path);
        }
        close(fd);
        fd = sub;
        *slash = '/';
        comp = slash + 1;
    }
    if (rc == 0) {
        char tmp[64], *full;
        snprintf(tmp, sizeof tmp, ".p2i.tmp.%ld", (long)getpid());
        if (asprintf(&full, "%s/%.*s%s", dirname, (int)(comp - path), path, tmp) < 0) TP_ASSERT(0);
        int out = openat(fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (out < 0) {
            rc = tp_err_errno("%s/%s", dirname, rel);
        } else {
            /* no fsync per image: the rename alone keeps a partial file
             * from ever having the final name */
            io_tmp_register(full);
            rc = io_write_all(out, buf, n, full);
            if (close(out) != 0 && rc == 0) rc = tp_err_errno("%s/%s", dirname, rel);
            if (rc == 0 && renameat(fd, tmp, fd, comp) != 0) rc = tp_err_errno("%s/%s", dirname, rel);
            if (rc != 0) unlinkat(fd, tmp, 0);
            io_tmp_unregister(full);
        }
        free(full);
    }
    if (fd >= 0) close(fd);
    free(path);
    return rc;
}

#define GRID_MAX_FIELDS 8

/* -f a,b,c into an array (one allocation); NULL field: one default field. */
static char **grid_fields(const char *field, int *n)
{
    const char *f = field ? field : "";
    size_t len = strlen(f) + 1;
    char **v = tp_malloc(GRID_MAX_FIELDS * sizeof(char *) + len);
    char *copy = (char *)(v + GRID_MAX_FIELDS);
    memcpy(copy, f, len);
    *n = 0;
    if (!field) {
        v[(*n)++] = NULL;
        return v;
    }
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == GRID_MAX_FIELDS) die_usage("-f: at most %d fields", GRID_MAX_FIELDS);
        v[(*n)++] = t;
    }
    if (*n == 0) die_usage("-f: no field named");
    return v;
}

struct sink {
    const struct cmdline *cl;
    int dfd;                  /* -d */
    struct io_out out;        /* --tar, --grid */
    struct archive *a;        /* --tar */
    float *grid;              /* --grid: collected images [n,C,H,W], sample-major:
                               * entry n is field n % nfields of sample n / nfields */
    long ngrid, gridcap;
    char **fields;            /* -f a,b: rows of a over rows of b (grid only) */
    int nfields;
    int C, H, W;
};

static void tar_add(struct sink *k, const char *name, const void *buf, size_t n)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)n);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 0, 0);   /* reproducible archives */
    if (archive_write_header(k->a, e) != ARCHIVE_OK ||
        archive_write_data(k->a, buf, n) != (la_ssize_t)n)
        die("%s: %s", io_out_name(&k->out), archive_error_string(k->a));
    archive_entry_free(e);
}

static void put_file(struct sink *k, const char *name, const void *buf, size_t n)
{
    if (k->a) tar_add(k, name, buf, n);
    else if (write_under(k->dfd, k->cl->dir, name, buf, n) != 0) die_err();
}

static void sink_open(struct sink *k, const struct cmdline *cl)
{
    memset(k, 0, sizeof *k);
    k->cl = cl;
    k->dfd = -1;
    if (cl->dir) {
        if (io_mkdirs(cl->dir) != 0) die_err();
        k->dfd = open(cl->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (k->dfd < 0) die("%s: %s", cl->dir, strerror(errno));
    } else if (cl->tar) {
        if (strcmp(cl->tar, "-") == 0 && isatty(STDOUT_FILENO))
            die("refusing to write a tar to a terminal");
        if (io_out_open(&k->out, cl->tar) != 0) die_err();
        k->a = archive_write_new();
        archive_write_set_format_pax_restricted(k->a);
        /* no padding of the last block, to a file or to stdout alike */
        archive_write_set_bytes_in_last_block(k->a, 1);
        if (archive_write_open_fd(k->a, k->out.fd) != ARCHIVE_OK)
            die("%s: %s", io_out_name(&k->out), archive_error_string(k->a));
    }
}

/* Grid of the collected images: rows*(H+pad)+pad by cols*(W+pad)+pad. */
static void grid_write(struct sink *k)
{
    const struct cmdline *cl = k->cl;
    if (k->ngrid == 0) die("%s: no images in the stream", cl->input ? cl->input : "stdin");
    int nf = k->nfields, cols = cl->cols;
    long samples = k->ngrid / nf;
    int rows = nf * (cl->rows ? cl->rows : (int)((samples + cols - 1) / cols));
    int64_t gh = (int64_t)rows * (k->H + cl->pad) + cl->pad, gw = (int64_t)cols * (k->W + cl->pad) + cl->pad;
    if (png_check_size(gw, gh) != 0) die("%s: grid: %s", cl->grid, tp_err());
    float *g = tp_malloc(sizeof(float) * k->C * gh * gw);
    for (int64_t i = 0; i < k->C * gh * gw; i++) g[i] = cl->pad_value;
    size_t per = (size_t)k->C * k->H * k->W;
    for (long n = 0; n < k->ngrid; n++) {
        long s = n / nf, row = (s / cols) * nf + n % nf;
        int64_t y0 = cl->pad + row * (int64_t)(k->H + cl->pad);
        int64_t x0 = cl->pad + (s % cols) * (int64_t)(k->W + cl->pad);
        for (int c = 0; c < k->C; c++)
            for (int y = 0; y < k->H; y++)
                memcpy(g + ((size_t)c * gh + y0 + y) * gw + x0,
                       k->grid + per * n + ((size_t)c * k->H + y) * k->W, sizeof(float) * k->W);
    }
    void *png;
    size_t n;
    if (png_encode_img(&png, &n, g, k->C, (int)gh, (int)gw) != 0) die("%s: %s", cl->grid, tp_err());
    if (io_write_file_atomic(cl->grid, png, n) != 0) die_err();
    free(png);
    free(g);
}

static void sink_close(struct sink *k)
{
    if (k->dfd >= 0) close(k->dfd);
    if (k->a) {
        if (archive_write_close(k->a) != ARCHIVE_OK)
            die("%s: %s", io_out_name(&k->out), archive_error_string(k->a));
        archive_write_free(k->a);
        if (io_out_commit(&k->out) != 0) die_err();
    }
    if (k->cl->grid) grid_write(k);
    free(k->grid);
    free(k->fields);
}

/* ---- records --------------------------------------------------------------------- */

/* The images of a record as F32 [B,C,H,W] in *x, shape in d: the field
 * asked for, or `image`, or `patch` inverted with its metadata (into *tmp,
 * which the caller frees). -1 with a message on error. */
static int record_images(const struct st *rec, const char *field, const float **x,
                         int64_t d[4], float **tmp)
{
    *tmp = NULL;
    const char *name = field ? field : st_find(rec, "image") || !st_find(rec, "patch") ? "image" : "patch";
    const struct st_tensor *t = st_find(rec, name);
    if (t && t->ndim == 3 && !strcmp(name, "patch")) {
        long P, C, H, W;
        if (st_meta_get_long(rec, "patch_size", &P) || st_meta_get_long(rec, "channels", &C) ||
            st_meta_get_long(rec, "height", &H) || st_meta_get_long(rec, "width", &W))
            return tp_err_prefix("field 'patch'");
        if (!st_require(rec, name, ST_F32, 3)) return -1;
        if (P < 1 || C < 1 || H < 1 || W < 1 || H % P || W % P || H > PNG_MAX_SIDE ||
            W > PNG_MAX_SIDE || C > 4 || t->shape[1] != (H / P) * (W / P) || t->shape[2] != C * P * P)
            return tp_err_set("field 'patch': shape [%lld,%lld,%lld] does not match patch_size %ld, "
                              "channels %ld, height %ld, width %ld",
                              (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
                              P, C, H, W);
        d[0] = t->shape[0], d[1] = C, d[2] = H, d[3] = W;
        *tmp = tp_aligned_alloc(sizeof(float) * d[0] * C * H * W);
        img_unpatchify(*tmp, t->data, (int)d[0], (int)C, (int)H, (int)W, (int)P);
        *x = *tmp;
        return 0;
    }
    if (!(t = st_require(rec, name, ST_F32, 4))) return -1;
    if (t->shape[1] < 1 || t->shape[1] > 4)
        return tp_err_set("field '%s': %lld channels (PNG takes 1 to 4)", name, (long long)t->shape[1]);
    if (t->shape[0] > 0 && png_check_size(t->shape[3], t->shape[2]) != 0)
        return tp_err_prefix("field '%s'", name);
    memcpy(d, t->shape, 4 * sizeof(int64_t));
    *x = t->data;
    return 0;
}

/* --grid: collect the record's images, every field of a sample in turn. */
static void grid_collect(struct sink *k, const struct st *rec, long ri, const char *input)
{
    int nf = k->nfields;
    const float *xs[GRID_MAX_FIELDS];
    float *tmps[GRID_MAX_FIELDS];
    int64_t d[4];
    long B = -1;
    for (int f = 0; f < nf; f++) {
        int64_t df[4];
        if (record_images(rec, k->fields[f], &xs[f], df, &tmps[f]) != 0)
            die("%s: record %ld: %s", input, ri, tp_err());
        if (f > 0 && memcmp(df, d, sizeof d) != 0)
            die("%s: record %ld: fields '%s' and '%s' differ in shape", input, ri, k->fields[0], k->fields[f]);
        memcpy(d, df, sizeof d);
        B = d[0];
    }
    int C = (int)d[1], H = (int)d[2], W = (int)d[3];
    size_t per = (size_t)C * H * W;
    if (k->ngrid > 0 && (C != k->C || H != k->H || W != k->W))
        die("%s: record %ld: images are %dx%dx%d, earlier ones %dx%dx%d", input, ri, C, H, W, k->C, k->H, k->W);
    k->C = C, k->H = H, k->W = W;
    long want = k->cl->rows ? (long)k->cl->rows * k->cl->cols * nf : -1;
    for (long i = 0; i < B && (want < 0 || k->ngrid < want); i++)
        for (int f = 0; f < nf; f++) {
            if (k->ngrid == k->gridcap) {
                k->gridcap = k->gridcap ? 2 * k->gridcap : 64;
                if ((int64_t)k->gridcap * per > ((int64_t)1 << 31))
                    die("%s: record %ld: the grid would take over 8 GB; give --rows", input, ri);
                k->grid = tp_realloc(k->grid, sizeof(float) * per * k->gridcap);
            }
            memcpy(k->grid + per * k->ngrid++, xs[f] + per * i, sizeof(float) * per);
        }
    for (int f = 0; f < nf; f++) free(tmps[f]);
}

static void put_record(struct sink *k, const struct st *rec, long ri, const char *input)
{
    if (k->cl->grid) {
        grid_collect(k, rec, ri, input);
        return;
    }
    int64_t d[4];
    float *tmp;
    const float *x = NULL;
    if (record_images(rec, k->cl->field, &x, d, &tmp) != 0)
        die("%s: record %ld: %s", input, ri, tp_err());
    int B = (int)d[0], C = (int)d[1], H = (int)d[2], W = (int)d[3];
    size_t per = (size_t)C * H * W;
    const struct st_tensor *lab = st_find(rec, "label");
    if (lab && (lab->dtype != ST_I32 || lab->ndim != 1 || lab->shape[0] != B)) lab = NULL;
    char **names = record_names(rec, ri, B);
    for (int i = 0; i < B; i++) {
        void *png;
        size_t n;
        if (png_encode_img(&png, &n, x + per * i, C, H, W) != 0)
            die("%s: record %ld: %s", input, ri, tp_err());
        char *fname = tp_malloc(strlen(names[i]) + 8);
        sprintf(fname, "%s.png", names[i]);
        put_file(k, fname, png, n);
        if (lab) {
            char cls[16];
            int len = snprintf(cls, sizeof cls, "%d", ((const int32_t *)lab->data)[i]);
            sprintf(fname, "%s.cls", names[i]);
            put_file(k, fname, cls, (size_t)len);
        }
        free(fname);
        free(png);
        free(names[i]);
    }
    free(names);
    free(tmp);
}

int main(int argc, char **argv)
{
    cli_init(argc, argv);
    struct cmdline cl;
    parse_cmdline(argc, argv, &cl);
    struct tz_reader *r = tz_reader_open_path(cl.input);
    if (!r) die_err();
    const char *input = tz_reader_name(r);
    struct sink k;
    sink_open(&k, &cl);
    k.fields = grid_fields(cl.field, &k.nfields);
    struct progress pg;
    progress_init(&pg, "records", -1, cl.progress);
    struct st *rec;
    int rc;
    while ((rc = tz_reader_next(r, &rec)) == 1) {
        put_record(&k, rec, tz_reader_index(r) - 1, input);
        st_free(rec);
        progress_step(&pg, 1);
    }
    if (rc < 0) die_err();
    sink_close(&k);
    progress_end(&pg);
    tz_reader_close(r);
    return 0;
}
