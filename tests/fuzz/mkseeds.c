/* mkseeds.c - write the seed corpora of the fuzz targets, one directory
 * per target under DIR:
 *   tz/      valid streams with and without seek tables, several dtypes,
 *            empty records
 *   st/      the safetensors blobs inside them
 *   png/     PNGs of every colour type and depth: gray 1/8/16 bit, gray +
 *            alpha, RGB, RGBA, 16-bit RGBA, palette with tRNS, interlaced
 *   imgsrc/  (fuzz_imgsrc.c layout: an option byte, optional labels)
 *            tar, tar.gz, zip, cpio archives of WebDataset samples (good,
 *            bad label, no png, repeated extension, nested keys), IDX
 *            images with and without labels, gzipped IDX, a single PNG
 *   flags/   command lines of every tool (NUL-separated arguments)
 * Usage: mkseeds DIR */
#include <archive.h>
#include <archive_entry.h>
#include <libpng16/png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "err.h"
#include "io.h"
#include "st.h"
#include "tz.h"

/* the project's png.h (encoder) under another name than libpng's */
#include "../../lib/png.h"

static const char *dir;

static void put(const char *target, const char *name, const void *buf, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    if (io_write_file_atomic(path, buf, n) != 0) {
        fprintf(stderr, "mkseeds: %s\n", tp_err());
        exit(1);
    }
}

/* ---- tz, st ----------------------------------------------------------------------- */

static struct st *record(int k)
{
    struct st *s = st_new();
    if (k == 0) return s;
    float *x = st_put_v(s, "image", ST_F32, 4, (int64_t)k, (int64_t)1, (int64_t)2, (int64_t)2)->data;
    for (int i = 0; i < 4 * k; i++) x[i] = i / 7.0f;
    int32_t *l = st_put_v(s, "label", ST_I32, 1, (int64_t)k)->data;
    for (int i = 0; i < k; i++) l[i] = i;
    st_put_v(s, "mask", ST_U8, 2, (int64_t)k, (int64_t)3);
    if (k > 2) st_put_v(s, "scalar", ST_F64, 0);
    st_meta_set(s, "keys", "[\"a\",\"b\"]");
    return s;
}

static void seeds_tz_st(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tz", dir);
    mkdir(path, 0755);
    for (int f = 0; f < 4; f++) {
        snprintf(path, sizeof path, "%s/tz/seed%d.tz", dir, f);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        struct tz_writer *w = tz_writer_open(fd, path, f + 1, f % 2);
        for (int k = 0; k <= f; k++) {
            struct st *s = record(k);
            tz_writer_put(w, s);
            st_free(s);
        }
        tz_writer_close(w);
        close(fd);
    }
    for (int k = 0; k < 4; k++) {
        struct st *s = record(k);
        void *buf;
        size_t n;
        st_serialize(s, &buf, &n);
        snprintf(path, sizeof path, "seed%d.safetensors", k);
        put("st", path, buf, n);
        free(buf);
        st_free(s);
    }
}

/* ---- png ---------------------------------------------------------------------------- */

struct membuf {
    unsigned char *p;
    size_t n, cap;
};

static void mem_write(png_structp png, png_bytep src, size_t n)
{
    struct membuf *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) m->p = tp_realloc(m->p, m->cap = 2 * (m->n + n));
    memcpy(m->p + m->n, src, n);
    m->n += n;
}

static void mem_flush(png_structp png) { (void)png; }

/* A w x h PNG of colour type `type` and `depth` through libpng directly
 * (palette, low depths, tRNS and interlacing, which png_encode never
 * writes); rows of a simple pattern. */
static void png_raw(const char *name, int w, int h, int type, int depth, int interlace, int trns)
{
    struct membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) abort();
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, w, h, depth, type, interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
        png_set_PLTE(png, info, pal, 4);
    }
    if (trns && type == PNG_COLOR_TYPE_PALETTE) {
        png_byte a[2] = {0, 128};
        png_set_tRNS(png, info, a, 2, NULL);
    } else if (trns) {
        png_color_16 c = {0};
        png_set_tRNS(png, info, NULL, 0, &c);
    }
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    size_t rowbytes = png_get_rowbytes(png, info);
    unsigned char *row = tp_malloc(rowbytes);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < h; y++) {
            for (size_t i = 0; i < rowbytes; i++) row[i] = (unsigned char)(i * 37 + y * 11);
            if (type == PNG_COLOR_TYPE_PALETTE)
                for (size_t i = 0; i < rowbytes; i++) row[i] &= depth == 8 ? 3 : 0x33;
            png_write_row(png, row);
        }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    put("png", name, m.p, m.n);
    free(m.p);
}

/* A PNG through the project's encoder: c channels, depth 8 or 16. */
static unsigned char *png_ours(size_t *n, int w, int h, int c, int depth)
{
    size_t bytes = (size_t)w * h * c * depth / 8;
    unsigned char *px = tp_malloc(bytes);
    for (size_t i = 0; i < bytes; i++) px[i] = (unsigned char)(i * 29);
    void *buf;
    if (png_encode(&buf, n, px, w, h, c, depth) != 0) abort();
    free(px);
    return buf;
}

static void seeds_png(void)
{
    for (int c = 1; c <= 4; c++)
        for (int d = 8; d <= 16; d += 8) {
            size_t n;
            unsigned char *b = png_ours(&n, 5, 3, c, d);
            char name[64];
            snprintf(name, sizeof name, "c%d_d%d.png", c, d);
            put("png", name, b, n);
            free(b);
        }
    png_raw("gray1.png", 9, 3, PNG_COLOR_TYPE_GRAY, 1, 0, 0);
    png_raw("gray4_trns.png", 5, 4, PNG_COLOR_TYPE_GRAY, 4, 0, 1);
    png_raw("gray16_trns.png", 3, 3, PNG_COLOR_TYPE_GRAY, 16, 0, 1);
    png_raw("pal2_trns.png", 7, 2, PNG_COLOR_TYPE_PALETTE, 2, 0, 1);
    png_raw("pal8.png", 4, 4, PNG_COLOR_TYPE_PALETTE, 8, 0, 0);
    png_raw("rgb8_adam7.png", 9, 9, PNG_COLOR_TYPE_RGB, 8, 1, 0);
    png_raw("rgb16_trns.png", 3, 2, PNG_COLOR_TYPE_RGB, 16, 0, 1);
    png_raw("ga8_adam7.png", 6, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 1, 0);
}

/* ---- imgsrc --------------------------------------------------------------------------- */

struct member {
    const char *name;
    const void *data;
    size_t n;
};

/* An archive in memory: format/filter by name ("tar", "tar.gz", "zip",
 * "cpio", "raw.gz" for one gzipped file). */
static unsigned char *archive_of(size_t *n, const char *kind, const struct member *m, int nm)
{
    size_t cap = 1 << 20;
    unsigned char *buf = tp_malloc(cap);
    struct archive *a = archive_write_new();
    if (!strcmp(kind, "zip")) archive_write_set_format_zip(a);
    else if (!strcmp(kind, "cpio")) archive_write_set_format_cpio_newc(a);
    else if (!strcmp(kind, "raw.gz")) archive_write_set_format_raw(a);
    else archive_write_set_format_pax_restricted(a);
    if (strstr(kind, ".gz")) archive_write_add_filter_gzip(a);
    archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open_memory(a, buf, cap, n) != ARCHIVE_OK) abort();
    for (int i = 0; i < nm; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_size(e, (la_int64_t)m[i].n);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        if (archive_write_header(a, e) != ARCHIVE_OK) abort();
        if (m[i].n && archive_write_data(a, m[i].data, m[i].n) != (la_ssize_t)m[i].n) abort();
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK) abort();
    archive_write_free(a);
    return buf;
}

/* An imgsrc seed: option byte, optional labels file, input. */
static void put_imgsrc(const char *name, int opt, const void *labels, size_t nl,
                       const void *in, size_t n)
{
    unsigned char *b = tp_malloc(3 + nl + n);
    size_t k = 0;
    b[k++] = (unsigned char)(opt | (labels ? 1 : 0));
    if (labels) {
        b[k++] = nl & 0xff;
        b[k++] = (nl >> 8) & 0xff;
        memcpy(b + k, labels, nl);
        k += nl;
    }
    memcpy(b + k, in, n);
    put("imgsrc", name, b, k + n);
    free(b);
}

static size_t idx(unsigned char *out, int ndim, const int *dims)
{
    size_t k = 0, n = 1;
    out[k++] = 0, out[k++] = 0, out[k++] = 8, out[k++] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++) {
        out[k++] = 0, out[k++] = 0, out[k++] = (unsigned char)(dims[d] >> 8), out[k++] = dims[d] & 0xff;
        n *= (size_t)dims[d];
    }
    for (size_t i = 0; i < n; i++) out[k++] = (unsigned char)(i * 7);
    return k;
}

static void seeds_imgsrc(void)
{
    size_t np, nq;
    unsigned char *p = png_ours(&np, 4, 3, 1, 8), *q = png_ours(&nq, 2, 2, 4, 8);
    const struct member good[] = {
        {"s000.png", p, np}, {"s000.cls", "3\n", 2}, {"s001.png", q, nq}, {"s001.cls", "7", 1},
        {"train/s002.png", p, np}, {"train/s002.json", "{}", 2}, {"__meta__.txt", "x", 1},
    };
    const struct member bad[] = {
        {"a.png", p, np}, {"a.cls", "x9", 2}, {"b.cls", "1", 1}, {"c.png", p, np}, {"c.PNG", q, nq},
        {"d.png", "not a png", 9}, {".hidden", "", 0}, {"noext", "z", 1}, {"e.png", p, np},
    };
    static const char *kinds[] = {"tar", "tar.gz", "zip", "cpio"};
    for (int i = 0; i < 4; i++) {
        size_t n;
        char name[64];
        unsigned char *a = archive_of(&n, kinds[i], good, 7);
        snprintf(name, sizeof name, "good.%s", kinds[i]);
        put_imgsrc(name, i & 2 ? 4 : 0, NULL, 0, a, n);
        free(a);
        a = archive_of(&n, kinds[i], bad, 9);
        snprintf(name, sizeof name, "bad.%s", kinds[i]);
        put_imgsrc(name, i & 1 ? 2 : 0, NULL, 0, a, n);
        free(a);
    }
    unsigned char im[64], lab[64];
    size_t ni = idx(im, 3, (int[]){3, 4, 5}), nl = idx(lab, 1, (int[]){3});
    put_imgsrc("idx", 0, NULL, 0, im, ni);
    put_imgsrc("idx_labels", 4, lab, nl, im, ni);
    put_imgsrc("idx_labels_short", 0, lab, nl - 1, im, ni);
    size_t n;
    struct member one = {"imgs", im, ni};
    unsigned char *gz = archive_of(&n, "raw.gz", &one, 1);
    put_imgsrc("idx.gz", 0, NULL, 0, gz, n);
    struct member onel = {"labs", lab, nl};
    unsigned char *gzl = archive_of(&nl, "raw.gz", &onel, 1);
    put_imgsrc("idx.gz_labels.gz", 0, gzl, nl, gz, n);
    free(gz);
    free(gzl);
    put_imgsrc("single.png", 4, NULL, 0, q, nq);
    free(p);
    free(q);
}

/* ---- flags ------------------------------------------------------------------------------ */

static const char *const cmdlines[] = {
    "encode -w w.st --init --arch vqgan-tiny --set hidden=32 --set mult=1,2 --seed 5 -j 2",
    "vq -w w.st --init --arch vqgan-tiny --set dim=8 --set codes=64",
    "decode -w w.st --training -j 2 -i in.tz -o out.tz -l 3",
    "decode -w w.st --backward q.tz -g dec.grad -j 2",
    "transformer -w w.st --init --arch maskgit-tiny --init-from a.st:old.=new.",
    "encode -w w.st -s s.st --train --grad-in g1 --grad-out g2 --ema e.st --ema-decay 0.99 "
    "--ckpt-dir ck --ckpt-every 2 --start-step 2 --progress",
    "vq -w w.st --train --grad-in g --lr 1e-3 --warmup 2 --schedule cosine --total 4 --clip 1.0 "
    "--betas 0.9,0.99 --eps 1e-8 --wd 0.1 --end-lr 1e-5 --freeze ^enc",
    "decode -w w.st --train --grad-in g --sgd --momentum 0.9 --schedule constant",
    "encode --version",
    "vq -h",
    "img2patch -b 2 --labels labs-idx1-ubyte imgs-idx3-ubyte -o idx.tz",
    "img2patch --size 8x10 --resize --resize-mode bilinear --crop random --pad 2 --flip "
    "--channels 3 --background 0,0,255 g8.png -o sz.tz",
    "img2patch --shuffle --seed 1 --limit 3 --member train_s00* --label-map map.tsv "
    "--skip-bad --progress -p 2 -l 5 -j 1 -f shard.tar",
    "img2patch --size 4 --crop center a.png",
    "patch2img -d out -f image g.tz",
    "patch2img --grid g.png --cols 4 --rows 2 --pad 1 --pad-value 0.5 -f image,recon -i in.tz",
    "patch2img --tar out.tar --progress -i in.tz",
    "loss mse --pred recon --target image --mask mask -o g.tz",
    "loss ce --label-smoothing 0.1 --unmasked-weight 0.1 --log log.tsv --steps 10 --start-step 2",
    "loss mse gan:0.1 --gan-start 1 --lr 1e-3 --warmup 1 --schedule cosine --total 4 --disc d.st "
    "--disc-state d.state --disc-widths 8,16 --lecam 0.001 --disc-factor 1 --ckpt-dir ck --ckpt-every 2",
    "loss mse perceptual:0.1 --perceptual p.st --target-file t.tz --eval --progress",
    "mask --train --vocab 64 --seed 3 --class-dropout 0.1 --tokens 32 -i in.tz -o out.tz",
    "mask --sample --seed 7 --step 1 --steps 8 --temperature 1.0 --guidance 3 --guidance-pow 1 "
    "--guidance-schedule linear --schedule cosine --no-noise --semantics jax",
    "mask --init-sample --tokens 16 --vocab 64 -n 6 -b 4 --classes 3 --steps 4 --guidance 2 --seed 3",
    "mask --init-sample --grid 8 --vocab 64 -n 2 --class 1 --null --steps 4 --start-step 1",
    "mask --box 5,9,10,6 --image-size 32 --vocab 64 --outside --class 2 --steps 12 --start-step 2",
    "mask --mask-png m.png --vocab 64 -i g8.tz -o png.tz",
    "optim -w w.st -g a.grad -g b.grad -s s.st --ema e.st --ema-decay 0.999 --lr 1e-3 --warmup 2 "
    "--schedule cosine --total 4 --clip 1.0 --sgd --momentum 0.5 -j 1",
    "optim -w w.st -g g.st -s w.st",
    "tz info --json a.tz b.tz",
    "tz check -o r.txt a.tz",
    "tz head -n 2 --samples 3 -o h.tz a.tz",
    "tz slice 2:4 -l 19 a.tz",
    "tz slice :3 --progress",
    "tz cat -o c.tz -l -7 -j 2 a.tz b.tz",
    "tz batch 4 a.tz",
    "tz shuffle --seed 1 --buffer 8 --batch 2 --records a.tz",
    "tz pick image,label a.tz",
    "tz drop mask a.tz",
    "tz merge --no-clobber a.tz -",
    "tz stats --field image,label a.tz",
    "tz argmax logits:ids a.tz",
    "tz npy -d out -i a.tz -i b.tz image label",
    "tz meta --set k=v --delete x --get y a.tz",
    "tz make --field image:F32:2x1x4x4=rand:3 --field label:I32:2=iota --field m:U8:=1,nan,inf "
    "--records 3 --keys k --meta step=1",
    "tz feed -b 4 --steps 10 --start-step 2 --seed 5 --no-shuffle --rename image=x "
    "--max-memory 1000000 data.tz",
    "tz -h",
    "tz make -h",
};

static void seeds_flags(void)
{
    for (size_t i = 0; i < sizeof cmdlines / sizeof cmdlines[0]; i++) {
        char buf[1024], name[32];
        size_t n = strlen(cmdlines[i]);
        memcpy(buf, cmdlines[i], n);
        for (size_t k = 0; k < n; k++)
            if (buf[k] == ' ') buf[k] = 0;
        snprintf(name, sizeof name, "cmd%02zu", i);
        put("flags", name, buf, n);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkseeds DIR\n");
        return 2;
    }
    dir = argv[1];
    mkdir(dir, 0755);
    seeds_tz_st();
    seeds_png();
    seeds_imgsrc();
    seeds_flags();
    return 0;
}
