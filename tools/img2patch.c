/* img2patch - images (PNG files, directories, archives, IDX) to a .tz stream.
 *
 * Each record holds one batch: `image` F32 [B,C,H,W] in [0,1], with -p P
 * also `patch` F32 [B,N,P*P*C], `label` I32 [B] when the samples have
 * labels, and the sample keys in __metadata__["keys"] (a JSON array).
 *
 * Samples are read in order (or all read, then shuffled with --shuffle),
 * decoded and augmented B at a time in parallel, each sample's random
 * choices drawn from (seed, its position in the sample order), so the output
 * does not depend on -j. See man/man1/img2patch.1.
 */
#include "cli.h"
#include "imgops.h"
#include "imgsrc.h"
#include "io.h"
#include "rng.h"
#include "st.h"
#include "tz.h"

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cmdline {
    char **inputs;
    int ninputs;
    const char *out;
    int force;
    long batch;
    int patch;
    struct img_aug aug;
    int channels;
    float bg[3];
    int shuffle;
    uint64_t seed;
    long limit;
    const char **labels;
    int nlabels;
    const char *labelmap;
    const char *member;
    int progress;
    int level;
    int skip_bad;
};

static void usage(void)
{
    printf("Usage: %s [options] INPUT... [-o OUT.tz]\n"
           "Read PNG files, directories, archives (tar, tar.gz, zip; WebDataset KEY.png +\n"
           "KEY.cls) or IDX files, and write batches of images as a .tz stream.\n\n"
           "  -o FILE              output file (default stdout)\n"
           "  -f                   write to stdout even if it is a terminal\n"
           "  -b N                 images per record (default 64; the last may be short)\n"
           "  -p P                 also write `patch` [B,N,P*P*C] for patch size P\n"
           "  --size HxW|N         output size: centre crop or pad to it\n"
           "  --resize             first resize (aspect kept) to cover --size\n"
           "  --resize-mode MODE   area (default) or bilinear\n"
           "  --crop MODE          center (default) or random placement of the crop/pad\n"
           "  --pad N              pad N zero pixels on every side first\n"
           "  --flip               mirror left-right with probability 1/2\n"
           "  --channels 1|3       convert to gray or RGB (default: the first image's)\n"
           "  --background R,G,B   colour (0-255) under transparent pixels (default 0,0,0)\n"
           "  --shuffle            shuffle the sample order (seeded)\n"
           "  --seed N             seed for --shuffle, --crop random, --flip (default 0)\n"
           "  --limit N            stop after N images\n"
           "  --labels IDX         labels for an IDX image input (once per IDX input)\n"
           "  --label-map FILE     labels by key from KEY<TAB>LABEL lines; others left out\n"
           "  --member GLOB        only archive/directory members matching GLOB\n"
           "  --skip-bad           skip unreadable samples (counted at the end)\n"
           "  -l LEVEL             zstd level (default %d; -1 after a record that hardly\n"
           "                       compresses, or on a pipe; stored below 1.1x at -1)\n"
           "  -j N                 threads (default: all cores)\n"
           "  --progress           progress and images/s on stderr\n"
           "  -h, --version        this help; the version\n",
           tp_progname, TZ_LEVEL_DEFAULT);
    exit(0);
}

static void parse_size(const char *s, int *h, int *w)
{
    char *x = strchr(s, 'x');
    if (!x) {
        *h = *w = (int)cli_long("--size", s, 1, 16384);
        return;
    }
    char hs[32];
    if ((size_t)(x - s) >= sizeof hs) die_usage("--size: '%s' is not HxW", s);
    memcpy(hs, s, x - s);
    hs[x - s] = 0;
    *h = (int)cli_long("--size", hs, 1, 16384);
    *w = (int)cli_long("--size", x + 1, 1, 16384);
}

static void parse_background(const char *s, float bg[3])
{
    char buf[64], *save = NULL, *tok;
    if (strlen(s) >= sizeof buf) die_usage("--background: '%s' is not R,G,B", s);
    strcpy(buf, s);
    int k = 0;
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (k == 3) die_usage("--background: '%s' is not R,G,B", s);
        bg[k++] = (float)cli_long("--background", tok, 0, 255) / 255.0f;
    }
    if (k != 3) die_usage("--background: '%s' is not R,G,B", s);
}

static void parse_cmdline(int argc, char **argv, struct cmdline *cl)
{
    enum { O_SIZE = 256, O_RESIZE, O_RMODE, O_CROP, O_PAD, O_FLIP, O_CHANNELS, O_BG,
           O_SHUFFLE, O_SEED, O_LIMIT, O_LABELS, O_LABELMAP, O_MEMBER, O_PROGRESS,
           O_SKIP, O_VERSION };
    static const struct option opts[] = {
        {"size", 1, 0, O_SIZE},        {"resize", 0, 0, O_RESIZE},
        {"resize-mode", 1, 0, O_RMODE}, {"crop", 1, 0, O_CROP},
        {"pad", 1, 0, O_PAD},          {"flip", 0, 0, O_FLIP},
        {"channels", 1, 0, O_CHANNELS}, {"background", 1, 0, O_BG},
        {"shuffle", 0, 0, O_SHUFFLE},  {"seed", 1, 0, O_SEED},
        {"limit", 1, 0, O_LIMIT},      {"labels", 1, 0, O_LABELS},
        {"label-map", 1, 0, O_LABELMAP}, {"member", 1, 0, O_MEMBER},
        {"progress", 0, 0, O_PROGRESS}, {"skip-bad", 0, 0, O_SKIP},
        {"version", 0, 0, O_VERSION},  {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    memset(cl, 0, sizeof *cl);
    cl->batch = 64;
    cl->level = TZ_LEVEL_AUTO;
    cl->limit = -1;
    cl->aug.resize = IMG_RESIZE_NONE;
    enum img_resize mode = IMG_RESIZE_AREA;
    int resize = 0, crop_set = 0, threads = 0;
    cl->labels = tp_calloc(argc, sizeof(char *));
    int c;
    while ((c = getopt_long(argc, argv, "o:fb:p:l:j:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': cl->out = optarg; break;
        case 'f': cl->force = 1; break;
        case 'b': cl->batch = cli_long("-b", optarg, 1, 1 << 20); break;
        case 'p': cl->patch = (int)cli_long("-p", optarg, 1, 4096); break;
        case 'l': cl->level = (int)cli_long("-l", optarg, -7, 19); break;
        case 'j': threads = (int)cli_long("-j", optarg, 1, 4096); break;
        case 'h': usage(); break;
        case O_SIZE: parse_size(optarg, &cl->aug.out_h, &cl->aug.out_w); break;
        case O_RESIZE: resize = 1; break;
        case O_RMODE:
            if (!strcmp(optarg, "area")) mode = IMG_RESIZE_AREA;
            else if (!strcmp(optarg, "bilinear")) mode = IMG_RESIZE_BILINEAR;
            else die_usage("--resize-mode: '%s' is not area or bilinear", optarg);
            break;
        case O_CROP:
            if (!strcmp(optarg, "center") || !strcmp(optarg, "centre")) cl->aug.crop_random = 0;
            else if (!strcmp(optarg, "random")) cl->aug.crop_random = 1;
            else die_usage("--crop: '%s' is not center or random", optarg);
            crop_set = 1;
            break;
        case O_PAD: cl->aug.pad = (int)cli_long("--pad", optarg, 0, 4096); break;
        case O_FLIP: cl->aug.flip = 1; break;
        case O_CHANNELS:
            cl->channels = (int)cli_long("--channels", optarg, 1, 3);
            if (cl->channels == 2) die_usage("--channels: 2 is not 1 or 3");
            break;
        case O_BG: parse_background(optarg, cl->bg); break;
        case O_SHUFFLE: cl->shuffle = 1; break;
        case O_SEED: cl->seed = (uint64_t)cli_long("--seed", optarg, 0, LONG_MAX); break;
        case O_LIMIT: cl->limit = cli_long("--limit", optarg, 1, LONG_MAX); break;
        case O_LABELS: cl->labels[cl->nlabels++] = optarg; break;
        case O_LABELMAP: cl->labelmap = optarg; break;
        case O_MEMBER: cl->member = optarg; break;
        case O_PROGRESS: cl->progress = 1; break;
        case O_SKIP: cl->skip_bad = 1; break;
        case O_VERSION: cli_version(); break;
        default: die_usage("unknown option");
        }
    }
    if (resize && !cl->aug.out_h) die_usage("--resize needs --size");
    if (crop_set && !cl->aug.out_h) die_usage("--crop needs --size");
    if (resize) cl->aug.resize = mode;
    if (cl->patch && cl->aug.out_h && (cl->aug.out_h % cl->patch || cl->aug.out_w % cl->patch))
        die_usage("-p %d: --size %dx%d is not a multiple of the patch size", cl->patch,
                  cl->aug.out_h, cl->aug.out_w);
    if (optind == argc) die_usage("no input (give PNG files, directories, archives or IDX files)");
    cl->inputs = argv + optind;
    cl->ninputs = argc - optind;
    tp_threads_set(threads);
}

/* ---- batching --------------------------------------------------------------------- */

struct run {
    const struct cmdline *cl;
    struct tz_writer *w;
    struct progress pg;
    int C, H, W, labelled;       /* set by the first good image (labelled -1 until then) */
    uint64_t index;              /* position in the sample order: the random draws */
    long accepted, skipped, records;
    /* items waiting to be decoded, and decoded images waiting for a record */
    struct imgsrc_item *items;
    int nitems;
    struct img *ready;
    char **keys;
    int32_t *lab;
    int nready;
};

static void emit(struct run *r, int n)
{
    const struct cmdline *cl = r->cl;
    struct st *rec = st_new();
    struct st_tensor *im = st_put_v(rec, "image", ST_F32, 4, (int64_t)n, (int64_t)r->C,
                                    (int64_t)r->H, (int64_t)r->W);
    size_t per = (size_t)r->C * r->H * r->W;
    json_t *keys = json_array();
    for (int i = 0; i < n; i++) {
        memcpy((float *)im->data + per * i, r->ready[i].data, per * sizeof(float));
        json_t *k = json_string(r->keys[i]);
        if (!k) {   /* not UTF-8: keep the key readable as JSON */
            for (char *p = r->keys[i]; *p; p++)
                if ((unsigned char)*p >= 0x80) *p = '?';
            k = json_string(r->keys[i]);
        }
        json_array_append_new(keys, k);
    }
    char *ks = json_dumps(keys, JSON_COMPACT);
    st_meta_set(rec, "keys", ks);
    free(ks);
    json_decref(keys);
    if (r->labelled) {
        struct st_tensor *l = st_put_v(rec, "label", ST_I32, 1, (int64_t)n);
        memcpy(l->data, r->lab, n * sizeof(int32_t));
    }
    if (cl->patch) {
        int P = cl->patch, N = (r->H / P) * (r->W / P);
        struct st_tensor *p = st_put_v(rec, "patch", ST_F32, 3, (int64_t)n, (int64_t)N,
                                       (int64_t)r->C * P * P);
        img_patchify(p->data, im->data, n, r->C, r->H, r->W, P);
        st_meta_set_long(rec, "patch_size", P);
        st_meta_set_long(rec, "channels", r->C);
        st_meta_set_long(rec, "height", r->H);
        st_meta_set_long(rec, "width", r->W);
    }
    if (tz_writer_put(r->w, rec) != 0) die_err();
    st_free(rec);
    for (int i = 0; i < n; i++) {
        img_free(&r->ready[i]);
        free(r->keys[i]);
    }
    memmove(r->ready, r->ready + n, sizeof *r->ready * (r->nready - n));
    memmove(r->keys, r->keys + n, sizeof *r->keys * (r->nready - n));
    memmove(r->lab, r->lab + n, sizeof *r->lab * (r->nready - n));
    r->nready -= n;
    r->records++;
    progress_step(&r->pg, n);
}

static int bad_sample(struct run *r, const char *where, const char *what)
{
    if (!r->cl->skip_bad) die("%s: %s", where, what);
    r->skipped++;
    return 0;
}

/* Check a decoded image against the stream's shape and label kind. */
static int fits(struct run *r, const struct img *im, const struct imgsrc_item *it)
{
    char what[256];
    if (r->labelled < 0) {
        r->H = im->h;
        r->W = im->w;
        r->labelled = it->has_label;
        int P = r->cl->patch;
        if (P && (r->H % P || r->W % P))
            die("%s: image is %dx%d, not a multiple of the patch size %d (use --size)",
                it->where, r->H, r->W, P);
    }
    if (im->h != r->H || im->w != r->W) {
        snprintf(what, sizeof what, "image is %dx%d, earlier images are %dx%d (use --size)",
                 im->h, im->w, r->H, r->W);
        return bad_sample(r, it->where, what);
    }
    if (it->has_label != r->labelled)
        return bad_sample(r, it->where, it->has_label ? "has a label, earlier samples have none"
                                                      : "has no label, earlier samples have one");
    return 1;
}

/* Decode and augment the pending items in parallel, then take the good ones
 * in order and write every full record. */
static void flush(struct run *r, int last)
{
    const struct cmdline *cl = r->cl;
    int n = r->nitems;
    if (n > 0 && !r->C) {
        /* the stream's channel count: asked for, or the first image's own */
        r->C = cl->channels;
        for (int i = 0; i < n && !r->C; i++) {
            struct img im;
            if (r->items[i].bad || imgsrc_decode(&im, &r->items[i], 0, cl->bg) != 0) continue;
            r->C = im.c;
            img_free(&im);
        }
    }
    struct img *ims = tp_calloc(n ? n : 1, sizeof *ims);
    char **errs = tp_calloc(n ? n : 1, sizeof *errs);
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < n; i++) {
        const struct imgsrc_item *it = &r->items[i];
        if (it->bad) continue;
        if (imgsrc_decode(&ims[i], it, r->C, cl->bg) != 0) {
            errs[i] = tp_strdup(tp_err());
            continue;
        }
        img_augment(&ims[i], &cl->aug, cl->seed, r->index + i);
    }
    r->index += n;
    for (int i = 0; i < n; i++) {
        struct imgsrc_item *it = &r->items[i];
        int ok = 0;
        if (cl->limit >= 0 && r->accepted >= cl->limit) ok = 0;   /* past --limit: unseen */
        else if (it->bad) bad_sample(r, it->where, it->bad);
        else if (errs[i]) bad_sample(r, it->where, errs[i]);
        else ok = fits(r, &ims[i], it);
        if (ok) {
            r->ready[r->nready] = ims[i];
            r->keys[r->nready] = it->key;
            r->lab[r->nready] = it->label;
            it->key = NULL;
            r->nready++;
            r->accepted++;
        } else if (ims[i].data) {
            img_free(&ims[i]);
        }
        free(errs[i]);
        imgsrc_item_free(it);
        while (r->nready >= cl->batch) emit(r, (int)cl->batch);
    }
    r->nitems = 0;
    free(ims);
    free(errs);
    if (last && r->nready > 0) emit(r, r->nready);
}

/* Take one item (ownership moves); returns 0 once --limit is reached. */
static int feed(struct run *r, struct imgsrc_item *it)
{
    r->items[r->nitems++] = *it;
    if (r->nitems == r->cl->batch) flush(r, 0);
    return r->cl->limit < 0 || r->accepted < r->cl->limit;
}

/* ---- inputs ------------------------------------------------------------------------ */

struct inputs {
    const struct cmdline *cl;
    struct imgsrc_opts o;
    int next_labels;
    long unmapped;
};

static struct imgsrc *input_open(struct inputs *in, const char *path)
{
    const struct cmdline *cl = in->cl;
    in->o.labels_idx = in->next_labels < cl->nlabels ? cl->labels[in->next_labels] : NULL;
    struct imgsrc *s = imgsrc_open(path, &in->o);
    if (!s) die_err();
    if (imgsrc_is_idx(s) && in->o.labels_idx) in->next_labels++;
    return s;
}

static void input_done(struct inputs *in, struct imgsrc *s, const char *path, long n)
{
    long um = imgsrc_unmapped(s);
    in->unmapped += um;
    imgsrc_close(s);
    if (n == 0 && um) die("%s: no images (%ld samples not in the label map)", path, um);
    if (n == 0) die("%s: no images", strcmp(path, "-") ? path : "stdin");
}

static void read_all(struct run *r, struct inputs *in)
{
    const struct cmdline *cl = r->cl;
    struct imgsrc_item *all = NULL, it;
    long nall = 0, cap = 0;
    int more = 1;
    for (int k = 0; k < cl->ninputs && more; k++) {
        struct imgsrc *s = input_open(in, cl->inputs[k]);
        long n = 0;
        int rc;
        while (more && (rc = imgsrc_next(s, &it)) == 1) {
            n++;
            if (cl->shuffle) {
                if (nall == cap) all = tp_realloc(all, sizeof *all * (cap = cap ? 2 * cap : 1024));
                all[nall++] = it;
            } else {
                more = feed(r, &it);
            }
        }
        if (more && rc < 0) die_err();
        input_done(in, s, cl->inputs[k], n);
    }
    if (cl->shuffle) {
        /* one generator for the order, apart from the per-sample draws */
        struct rng g;
        rng_seed(&g, rng_hash(cl->seed, UINT64_MAX));
        int64_t *perm = tp_malloc(sizeof(int64_t) * (nall ? nall : 1));
        rng_permutation(&g, perm, nall);
        long i = 0;
        for (; i < nall && more; i++) more = feed(r, &all[perm[i]]);
        for (; i < nall; i++) imgsrc_item_free(&all[perm[i]]);
        free(perm);
        free(all);
    }
}

int main(int argc, char **argv)
{
    cli_init(argc, argv);
    struct cmdline cl;
    parse_cmdline(argc, argv, &cl);

    struct inputs in = {.cl = &cl};
    in.o.member_glob = cl.member;
    struct imgsrc_labelmap *map = NULL;
    if (cl.labelmap && !(map = imgsrc_labelmap_load(cl.labelmap))) die_err();
    in.o.labelmap = map;

    struct io_out out;
    if ((!cl.out || !strcmp(cl.out, "-")) && isatty(STDOUT_FILENO) && !cl.force)
        die("refusing to write binary data to a terminal (use -o FILE, a pipe, or -f)");
    if (io_out_open(&out, cl.out) != 0) die_err();
    struct stat st;
    int seekable = fstat(out.fd, &st) == 0 && S_ISREG(st.st_mode);

    struct run r = {.cl = &cl, .labelled = -1};
    r.w = tz_writer_open(out.fd, io_out_name(&out), cl.level, seekable);
    r.items = tp_malloc(sizeof *r.items * cl.batch);
    r.ready = tp_malloc(sizeof *r.ready * 2 * cl.batch);
    r.keys = tp_malloc(sizeof *r.keys * 2 * cl.batch);
    r.lab = tp_malloc(sizeof *r.lab * 2 * cl.batch);
    progress_init(&r.pg, "images", -1, cl.progress);

    read_all(&r, &in);
    flush(&r, 1);
    if (r.accepted == 0) die("no images (all %ld samples were bad)", r.skipped);
    if (in.next_labels < cl.nlabels)
        die("--labels given %d times for %d IDX inputs", cl.nlabels, in.next_labels);
    if (tz_writer_close(r.w) != 0) die_err();
    if (io_out_commit(&out) != 0) die_err();
    progress_end(&r.pg);
    if (r.skipped) warnmsg("skipped %ld bad samples (--skip-bad)", r.skipped);
    if (in.unmapped) warnmsg("left out %ld samples not in the label map", in.unmapped);

    imgsrc_labelmap_free(map);
    free(r.items);
    free(r.ready);
    free(r.keys);
    free(r.lab);
    free(cl.labels);
    return 0;
}
