/* mask - MaskGIT's masking stage (no weights): training masks, one step of
 * iterative decoding, the first all-masked record of a sampling run, and
 * region masks for inpainting, outpainting and editing, and the blended
 * composite of an edit's decoded image over its input.
 *
 *   mask --train --vocab V [--semantics S] [--schedule S] [--class-dropout P]
 *   mask --sample [--step t] [--steps T] [--semantics S] [--temperature X] ...
 *   mask --sample --loop FIFO --from START.tz [options]   (every step, one process)
 *   mask --init-sample (--tokens K | --grid g) --vocab V -n N [-b B] [labels] [decode]
 *   mask (--box x,y,w,h --image-size S | --mask-png F) --vocab V [labels] [decode]
 *   mask --composite [--blur R] [--grey V]
 *
 * The arithmetic is lib/maskgit.c's and lib/composite.c's; this file moves
 * record fields. */
#include "batch.h"
#include "cli.h"
#include "composite.h"
#include "io.h"
#include "maskgit.h"
#include "module.h"
#include "png.h"
#include "rng.h"
#include "tz.h"

#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* salts of module_seed: the training masks and the sampler's noise */
#define SALT_TRAIN 0x6d61736b747261ull
#define SALT_SAMPLE 0x6d61736b73616dull

enum mode { M_NONE, M_TRAIN, M_SAMPLE, M_INIT, M_REGION, M_COMPOSITE };

struct cmdline {
    enum mode mode;
    const char *in, *out;
    const char *loop, *from; /* --sample --loop FIFO --from START.tz */
    long in_flight;          /* --loop: records in flight, 1 or 2 */
    int level, threads, progress;
    long vocab, seed;
    int sem, schedule; /* -1: the semantics' default */
    double class_dropout, temperature;
    int anneal, noise; /* anneal -1: the semantics' default */
    long step, steps, start_step;
    double guidance, guidance_pow;
    const char *guidance_schedule;
    long tokens, grid, n, batch, klass, classes;
    int null_class;
    int box[4], has_box, outside;
    const char *mask_png;
    long image_size;
    double blur, grey; /* --composite; blur NAN: the patch size - 1 */
};

enum {
    O_TRAIN = 0x100, O_SAMPLE, O_INIT, O_VOCAB, O_SEMANTICS, O_SCHEDULE, O_CLASS_DROPOUT, O_SEED, O_STEP,
    O_STEPS, O_START_STEP, O_TEMPERATURE, O_ANNEAL, O_NO_ANNEAL, O_NO_NOISE, O_GUIDANCE, O_GSCHED, O_GPOW,
    O_TOKENS, O_GRID, O_CLASS, O_CLASSES, O_NULL, O_BOX, O_MASK_PNG, O_IMAGE_SIZE, O_OUTSIDE, O_PROGRESS,
    O_VERSION, O_COMPOSITE, O_BLUR, O_GREY, O_LOOP, O_FROM, O_IN_FLIGHT,
};

static const struct option options[] = {
    {"train", no_argument, 0, O_TRAIN},
    {"sample", no_argument, 0, O_SAMPLE},
    {"init-sample", no_argument, 0, O_INIT},
    {"vocab", required_argument, 0, O_VOCAB},
    {"semantics", required_argument, 0, O_SEMANTICS},
    {"schedule", required_argument, 0, O_SCHEDULE},
    {"class-dropout", required_argument, 0, O_CLASS_DROPOUT},
    {"seed", required_argument, 0, O_SEED},
    {"step", required_argument, 0, O_STEP},
    {"steps", required_argument, 0, O_STEPS},
    {"start-step", required_argument, 0, O_START_STEP},
    {"temperature", required_argument, 0, O_TEMPERATURE},
    {"softmax-anneal", no_argument, 0, O_ANNEAL},
    {"no-softmax-anneal", no_argument, 0, O_NO_ANNEAL},
    {"no-noise", no_argument, 0, O_NO_NOISE},
    {"guidance", required_argument, 0, O_GUIDANCE},
    {"guidance-schedule", required_argument, 0, O_GSCHED},
    {"guidance-pow", required_argument, 0, O_GPOW},
    {"tokens", required_argument, 0, O_TOKENS},
    {"grid", required_argument, 0, O_GRID},
    {"class", required_argument, 0, O_CLASS},
    {"classes", required_argument, 0, O_CLASSES},
    {"null", no_argument, 0, O_NULL},
    {"box", required_argument, 0, O_BOX},
    {"mask-png", required_argument, 0, O_MASK_PNG},
    {"image-size", required_argument, 0, O_IMAGE_SIZE},
    {"outside", no_argument, 0, O_OUTSIDE},
    {"composite", no_argument, 0, O_COMPOSITE},
    {"blur", required_argument, 0, O_BLUR},
    {"grey", required_argument, 0, O_GREY},
    {"loop", required_argument, 0, O_LOOP},
    {"from", required_argument, 0, O_FROM},
    {"in-flight", required_argument, 0, O_IN_FLIGHT},
    {"progress", no_argument, 0, O_PROGRESS},
    {"version", no_argument, 0, O_VERSION},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

_Noreturn static void usage(void)
{
    printf("usage: mask --train --vocab V [options] < ids.tz > masked.tz\n"
           "       mask --sample [--step t --steps T] [options] < logits.tz > ids.tz\n"
           "       transformer -w W < FIFO | mask --sample --loop FIFO --from ids.tz [options] > out.tz\n"
           "       mask --init-sample (--tokens K | --grid g) --vocab V -n N [options] > ids.tz\n"
           "       mask (--box x,y,w,h --image-size S | --mask-png F) --vocab V [options] < ids.tz > ids.tz\n"
           "       mask --composite [--blur R] [--grey V] < decoded.tz > out.tz\n"
           "MaskGIT masking: training masks, one decoding step, the first record of a\n"
           "sampling run, region masks (inpainting, outpainting, editing), the blended\n"
           "composite of an edit.\n\n"
           "training (ids -> ids with masks, target, mask; labels dropped to -1):\n"
           "  --vocab V            codebook size: ids are 0..V-1, the mask is V\n"
           "  --semantics S        titok (round(K gamma(u)), at least 1) or jax (ceil) (titok)\n"
           "  --schedule S         arccos, cosine or linear (titok: arccos, jax: cosine)\n"
           "  --class-dropout P    probability of the null class (0.1)\n"
           "sampling (logits, ids -> ids; logits dropped):\n"
           "  --step t, --steps T  this step of T (default: the record's sample_step(s))\n"
           "  --semantics S        titok (ImageBert.generate) or jax (parallel_decode) (titok)\n"
           "  --schedule S         as above, the number left masked after each step\n"
           "  --temperature X      titok: randomize_temperature (9.5); jax: choice temperature (4.5)\n"
           "  --[no-]softmax-anneal  titok: logits / (0.5 + 0.8 (1 - ratio)) (on)\n"
           "  --no-noise           no Gumbel noise: argmax and plain confidence\n"
           "  --seed S             mixed with each record's seed and the step (0)\n"
           "  --loop FIFO          every step in one process: records from --from go round\n"
           "                       through FIFO (the transformer's input) until decoded\n"
           "  --from FILE          the records to decode with --loop (mask --init-sample's)\n"
           "  --in-flight N        --loop: 2 halves of each record go round at once, the\n"
           "                       transformer on one while mask samples the other (2);\n"
           "                       1: each record whole, the processes taking turns\n"
           "first record, region masks:\n"
           "  --tokens K | --grid g  ids [N,K] or [N,g,g] (region masks: g from the ids)\n"
           "  -n N, -b B           samples, per record (B = N)\n"
           "  --class c | --classes C | --null   labels c, i mod C, or -1 (null; default)\n"
           "  --box x,y,w,h        pixel box, 1-token margin (MaskGIT's editing rule)\n"
           "  --mask-png FILE      tokens whose patch has any nonzero pixel\n"
           "  --image-size S       pixels per side of the image the box is in\n"
           "  --outside            mask the outside instead (outpainting)\n"
           "decoding metadata (first record, region masks), read by transformer and mask:\n"
           "  --steps T, --start-step s, --guidance G, --guidance-schedule constant|linear|\n"
           "  power-cosine (linear), --guidance-pow P (3)\n"
           "composite (image, recon, region -> recon blended, recon_raw, image_masked):\n"
           "  --blur R             Gaussian sigma in pixels (the patch size - 1; 0: hard)\n"
           "  --grey V             value of the region in image_masked (0.5)\n"
           "  -i FILE, -o FILE, -l LEVEL, -j N, --progress, -h, --version\n");
    exit(0);
}

static void set_mode(struct cmdline *c, enum mode m)
{
    if (c->mode != M_NONE && c->mode != m)
        die_usage("--train, --sample, --init-sample, region masks and --composite exclude each other");
    c->mode = m;
}

static void parse_box(struct cmdline *c, const char *s)
{
    char tail;
    if (sscanf(s, "%d,%d,%d,%d%c", &c->box[0], &c->box[1], &c->box[2], &c->box[3], &tail) != 4 || c->box[0] < 0 ||
        c->box[1] < 0 || c->box[2] < 1 || c->box[3] < 1)
        die_usage("--box: '%s' is not x,y,w,h (x, y >= 0; w, h >= 1)", s);
    c->has_box = 1;
}

static int parse_enum(const char *opt, const char *s, int (*fn)(const char *))
{
    int v = fn(s);
    if (v < 0) die_usage("%s: %s", opt, tp_err());
    return v;
}

static void parse(struct cmdline *c, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    c->level = TZ_LEVEL_AUTO;
    c->in_flight = 2;
    c->vocab = c->step = c->steps = c->start_step = c->tokens = c->grid = c->n = c->batch = -1;
    c->classes = c->image_size = -1;
    c->klass = LONG_MIN;
    c->sem = c->schedule = c->anneal = -1;
    c->class_dropout = 0.1;
    c->temperature = c->guidance = c->guidance_pow = c->blur = NAN;
    c->grey = 0.5;
    c->noise = 1;
    int o;
    while ((o = getopt_long(argc, argv, "i:o:l:j:n:b:h", options, NULL)) != -1) {
        switch (o) {
        case 'i': c->in = optarg; break;
        case 'o': c->out = optarg; break;
        case 'l': c->level = (int)cli_long("-l", optarg, -7, 19); break;
        case 'j': c->threads = (int)cli_long("-j", optarg, 1, 1024); break;
        case 'n': c->n = cli_long("-n", optarg, 1, 1L << 30); break;
        case 'b': c->batch = cli_long("-b", optarg, 1, 1L << 20); break;
        case 'h': usage();
        case O_TRAIN: set_mode(c, M_TRAIN); break;
        case O_SAMPLE: set_mode(c, M_SAMPLE); break;
        case O_INIT: set_mode(c, M_INIT); break;
        case O_VOCAB: c->vocab = cli_long("--vocab", optarg, 1, 1L << 24); break;
        case O_SEMANTICS: c->sem = parse_enum("--semantics", optarg, maskgit_semantics_parse); break;
        case O_SCHEDULE: c->schedule = parse_enum("--schedule", optarg, maskgit_schedule_parse); break;
        case O_CLASS_DROPOUT: c->class_dropout = cli_double("--class-dropout", optarg, 0, 1); break;
        case O_SEED: c->seed = cli_long("--seed", optarg, 0, LONG_MAX); break;
        case O_STEP: c->step = cli_long("--step", optarg, 0, 1L << 20); break;
        case O_STEPS: c->steps = cli_long("--steps", optarg, 1, 1L << 20); break;
        case O_START_STEP: c->start_step = cli_long("--start-step", optarg, 0, 1L << 20); break;
        case O_TEMPERATURE: c->temperature = cli_double("--temperature", optarg, 0, 1e6); break;
        case O_ANNEAL: c->anneal = 1; break;
        case O_NO_ANNEAL: c->anneal = 0; break;
        case O_NO_NOISE: c->noise = 0; break;
        case O_GUIDANCE: c->guidance = cli_double("--guidance", optarg, 0, 1e6); break;
        case O_GSCHED:
            parse_enum("--guidance-schedule", optarg, maskgit_guidance_parse);
            c->guidance_schedule = optarg;
            break;
        case O_GPOW: c->guidance_pow = cli_double("--guidance-pow", optarg, 0, 1e3); break;
        case O_TOKENS: c->tokens = cli_long("--tokens", optarg, 1, 1L << 20); break;
        case O_GRID: c->grid = cli_long("--grid", optarg, 1, 1L << 10); break;
        case O_CLASS: c->klass = cli_long("--class", optarg, 0, INT_MAX); break;
        case O_CLASSES: c->classes = cli_long("--classes", optarg, 1, INT_MAX); break;
        case O_NULL: c->null_class = 1; break;
        case O_BOX: set_mode(c, M_REGION), parse_box(c, optarg); break;
        case O_MASK_PNG: set_mode(c, M_REGION), c->mask_png = optarg; break;
        case O_IMAGE_SIZE: c->image_size = cli_long("--image-size", optarg, 1, PNG_MAX_SIDE); break;
        case O_OUTSIDE: c->outside = 1; break;
        case O_COMPOSITE: set_mode(c, M_COMPOSITE); break;
        case O_BLUR: c->blur = cli_double("--blur", optarg, 0, 1e3); break;
        case O_GREY: c->grey = cli_double("--grey", optarg, 0, 1); break;
        case O_LOOP: c->loop = optarg; break;
        case O_FROM: c->from = optarg; break;
        case O_IN_FLIGHT: c->in_flight = cli_long("--in-flight", optarg, 1, 2); break;
        case O_PROGRESS: c->progress = 1; break;
        case O_VERSION: cli_version();
        default: die_usage("unknown option");
        }
    }
    if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
    if (c->mode == M_NONE) die_usage("one of --train, --sample, --init-sample, --box, --mask-png, --composite is required");
    if (c->mode != M_SAMPLE && c->mode != M_COMPOSITE && c->vocab < 0) die_usage("--vocab V (the codebook size) is required");
    if ((c->klass != LONG_MIN) + (c->classes > 0) + c->null_class > 1) die_usage("--class, --classes and --null exclude each other");
    if (c->mode == M_INIT) {
        if ((c->tokens > 0) == (c->grid > 0)) die_usage("--init-sample needs one of --tokens K and --grid g");
        if (c->n < 0) die_usage("--init-sample needs -n N");
    }
    if (c->mode == M_REGION) {
        if (c->has_box && c->mask_png) die_usage("--box and --mask-png exclude each other");
        if (c->has_box && c->image_size < 0) die_usage("--box needs --image-size S");
    }
    if ((c->loop || c->from) && c->mode != M_SAMPLE) die_usage("--loop and --from go with --sample");
    if (c->in_flight != 2 && !c->loop) die_usage("--in-flight goes with --loop");
    if (!c->loop != !c->from) die_usage("--loop FIFO and --from FILE go together");
    if (c->loop) {
        struct stat sb;
        if (c->step >= 0 || c->steps > 0) die_usage("--loop takes the steps from the records, not --step or --steps");
        if (stat(c->loop, &sb) != 0 || !S_ISFIFO(sb.st_mode))
            die_usage("--loop: '%s' is not a FIFO (make it with mkfifo)", c->loop);
    }
    if (c->mode == M_SAMPLE && c->step >= 0 && c->steps > 0 && c->step >= c->steps)
        die_usage("--step %ld is not below --steps %ld", c->step, c->steps);
    if (c->steps > 0 && c->start_step >= c->steps)
        die_usage("--start-step %ld is not below --steps %ld", c->start_step, c->steps);
    if (c->sem < 0) c->sem = MASKGIT_TITOK;
    if (c->schedule < 0) c->schedule = c->sem == MASKGIT_JAX ? MASKGIT_COSINE : MASKGIT_ARCCOS;
    if (isnan(c->temperature)) c->temperature = c->sem == MASKGIT_JAX ? 4.5 : 9.5;
    if (c->anneal < 0) c->anneal = c->sem == MASKGIT_TITOK;
}

/* ---- fields ---------------------------------------------------------------- */

/* ids I32 [B,K] or [B,h,w]: its data, B and K. */
static int32_t *ids_of(struct st *rec, int64_t *B, int64_t *K, struct st_tensor **t)
{
    struct st_tensor *ids = st_require(rec, "ids", ST_I32, -1);
    if (!ids) return NULL;
    if (ids->ndim < 2 || ids->ndim > 3 || ids->shape[0] < 1 || st_numel(ids) == 0) {
        tp_err_set("field 'ids': expected [B,K] or [B,h,w]");
        return NULL;
    }
    *B = ids->shape[0], *K = st_numel(ids) / ids->shape[0];
    if (t) *t = ids;
    return ids->data;
}

/* Every id a code below V, or (mask_ok) also the mask V. */
static int check_ids(const int32_t *ids, int64_t n, int64_t K, long V, int mask_ok)
{
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] > V - !mask_ok) {
            char what[64];
            if (mask_ok) snprintf(what, sizeof what, "in [0,%ld] (%ld = the mask)", V, V);
            else snprintf(what, sizeof what, "a code below %ld", V);
            return tp_err_set("field 'ids': id %d of sample %lld is not %s", (int)ids[i], (long long)(i / K), what);
        }
    return 0;
}

/* The label field if present (else *out = NULL): I32 [B]. */
static int labels_of(struct st *rec, int64_t B, int32_t **out)
{
    struct st_tensor *l = st_find(rec, "label");
    *out = NULL;
    if (!l) return 0;
    if (!(l = st_require(rec, "label", ST_I32, 1))) return -1;
    if (l->shape[0] != B)
        return tp_err_set("field 'label': %lld labels for %lld samples", (long long)l->shape[0], (long long)B);
    *out = l->data;
    return 0;
}

/* A U8 field shaped like ids (replacing one of that name). */
static uint8_t *put_mask(struct st *rec, const struct st_tensor *ids)
{
    int64_t shape[ST_MAX_DIMS];
    memcpy(shape, ids->shape, sizeof shape);
    return st_put(rec, "mask", ST_U8, ids->ndim, shape)->data;
}

/* The labels of samples first..first+B-1 under --class/--classes/--null. */
static void put_labels(const struct cmdline *c, struct st *rec, int64_t B, int64_t first)
{
    int32_t *l = st_put_v(rec, "label", ST_I32, 1, B)->data;
    for (int64_t b = 0; b < B; b++)
        l[b] = c->klass != LONG_MIN ? (int32_t)c->klass : c->classes > 0 ? (int32_t)((first + b) % c->classes) : -1;
}

/* Decoding metadata for the transformer and mask --sample; logits_at:
 * --sample reads the logits of masked positions alone, so the transformer
 * need not make the others (transformer(1)). */
static void put_decode_meta(const struct cmdline *c, struct st *rec)
{
    st_meta_set(rec, "logits_at", "masked");
    if (c->steps > 0) {
        st_meta_set_long(rec, "sample_steps", c->steps);
        st_meta_set_long(rec, "sample_step", c->start_step > 0 ? c->start_step : 0);
    } else if (c->start_step >= 0) {
        st_meta_set_long(rec, "sample_step", c->start_step);
    }
    if (!isnan(c->guidance)) st_meta_set_double(rec, "guidance", c->guidance);
    if (c->guidance_schedule) st_meta_set(rec, "guidance_schedule", c->guidance_schedule);
    if (!isnan(c->guidance_pow)) st_meta_set_double(rec, "guidance_pow", c->guidance_pow);
}

/* ---- the modes, one record each -------------------------------------------- */

static int do_train(const struct cmdline *c, struct st *rec)
{
    int64_t B, K;
    struct st_tensor *t;
    int32_t *ids = ids_of(rec, &B, &K, &t);
    if (!ids) return -1;
    if (check_ids(ids, B * K, K, c->vocab, 0) != 0) return -1;
    int32_t *label;
    if (labels_of(rec, B, &label) != 0) return -1;
    st_put_copy(rec, "target", t); /* t may move: nothing below uses it */
    uint8_t *m = put_mask(rec, st_find(rec, "ids"));
    struct maskgit_train_opts o = {c->sem, c->schedule, (float)c->class_dropout};
    uint64_t seed = rng_hash(module_seed(rec, SALT_TRAIN), (uint64_t)c->seed);
    maskgit_train_mask(ids, m, label, ids, (int)B, (int)K, (int)c->vocab, &o, seed);
    return 0;
}

static long step_arg(const struct st *rec, long opt, const char *key)
{
    long v;
    if (opt >= 0) return opt;
    if (!st_meta_get(rec, key)) return tp_err_set("no --%s and no '%s' in the record", key + 7, key);
    return st_meta_get_long(rec, key, &v) != 0 ? -1 : v;
}

/* One decoding step of a record: 1 when it was the last, 0 when more follow,
 * -1 on error. */
/* One step on rec, whose samples are those from `first` on of the batch
 * their noise is drawn for (a part of a record, sample_loop). */
static int do_sample(const struct cmdline *c, struct st *rec, long first)
{
    struct st_tensor *lt = st_require(rec, "logits", ST_F32, -1), *t;
    if (!lt) return -1;
    int64_t B, K;
    int32_t *ids = ids_of(rec, &B, &K, &t);
    if (!ids) return -1;
    int64_t V = lt->shape[lt->ndim - 1];
    if (lt->ndim != t->ndim + 1 || st_numel(lt) != B * K * V || V < 1)
        return tp_err_set("fields 'logits' and 'ids': expected logits [ids shape, V]");
    for (int d = 0; d < t->ndim; d++)
        if (lt->shape[d] != t->shape[d]) return tp_err_set("fields 'logits' and 'ids': shapes differ");
    if (check_ids(ids, B * K, K, (long)V, 1) != 0) return -1;
    long step = step_arg(rec, c->step, "sample_step"), steps = step_arg(rec, c->steps, "sample_steps");
    if (step < 0 || steps < 0) return -1;
    if (steps < 1 || step >= steps) return tp_err_set("step %ld is not in [0, steps %ld)", step, steps);
    const float *logits = lt->data;
    struct st_tensor *m0 = st_find(rec, "masked0");
    if (m0 && (!(m0 = st_require(rec, "masked0", ST_I32, 1)) || m0->shape[0] != B))
        return tp_err_set("field 'masked0': expected I32 [%lld]", (long long)B);
    if (!m0) { /* the first step of this decode: what is masked now was masked at the start */
        int32_t *n0 = st_put_v(rec, "masked0", ST_I32, 1, B)->data;
        for (int64_t i = 0; i < B * K; i++) n0[i / K] += ids[i] == V;
    }
    const int32_t *masked0 = st_find(rec, "masked0")->data;
    uint8_t *m = put_mask(rec, st_find(rec, "ids"));
    struct maskgit_sample_opts o = {c->sem, c->schedule, (int)step, (int)steps, (float)c->temperature,
                                    c->anneal, c->noise};
    struct maskgit_noise nz = {rng_hash(rng_hash(module_seed(rec, SALT_SAMPLE), (uint64_t)c->seed), (uint64_t)step),
                               NULL, NULL, first};
    maskgit_sample_step(ids, m, logits, masked0, (int)B, (int)K, (int)V, &o, &nz);
    st_remove(rec, "logits");
    st_meta_set_long(rec, "sample_step", step + 1);
    st_meta_set_long(rec, "sample_steps", steps);
    return step + 1 == steps;
}

/* The token mask of a region for a g x g grid (cached per g). */
static const uint8_t *region_tokens(const struct cmdline *c, int g)
{
    static uint8_t *m;
    static int mg;
    if (m && mg == g) return m;
    free(m);
    m = tp_malloc((size_t)g * g), mg = g;
    if (c->has_box) {
        if (c->image_size % g) die("--image-size %ld is not a multiple of the %d-token grid", c->image_size, g);
        maskgit_box_mask(m, g, (int)c->image_size, c->box[0], c->box[1], c->box[2], c->box[3], c->outside);
        return m;
    }
    void *buf;
    size_t n;
    struct png_pixels px;
    if (io_slurp(c->mask_png, (size_t)1 << 30, &buf, &n) != 0) die_err();
    if (png_decode(&px, buf, n) != 0) die("%s: %s", c->mask_png, tp_err());
    free(buf);
    if (px.w % g || px.h % g) die("%s: %dx%d is not a multiple of the %d-token grid", c->mask_png, px.w, px.h, g);
    uint8_t *on = tp_calloc((size_t)px.w * px.h, 1);
    for (size_t i = 0; i < (size_t)px.w * px.h * px.c; i++)
        on[i / px.c] |= px.depth == 16 ? ((uint16_t *)px.px)[i] != 0 : ((uint8_t *)px.px)[i] != 0;
    maskgit_pixel_mask(m, g, on, px.h, px.w, c->outside);
    free(on);
    png_pixels_free(&px);
    return m;
}

static int do_region(const struct cmdline *c, struct st *rec)
{
    int64_t B, K;
    struct st_tensor *t;
    int32_t *ids = ids_of(rec, &B, &K, &t);
    if (!ids) return -1;
    int g = t->ndim == 3 ? (int)t->shape[1] : (int)lround(sqrt((double)K));
    if (c->grid > 0 && c->grid != g) return tp_err_set("field 'ids': not a %ld x %ld grid", c->grid, c->grid);
    if ((int64_t)g * g != K || (t->ndim == 3 && t->shape[1] != t->shape[2]))
        return tp_err_set("field 'ids': %lld tokens are not a square grid", (long long)K);
    if (check_ids(ids, B * K, K, c->vocab, 1) != 0) return -1;
    uint8_t *m = put_mask(rec, t);
    maskgit_apply_region(ids, m, region_tokens(c, g), (int)B, (int)K, (int)c->vocab);
    for (int64_t i = 0; i < B * K; i++) m[i] = ids[i] == c->vocab; /* masks already there count too */
    if (c->klass != LONG_MIN || c->classes > 0 || c->null_class) put_labels(c, rec, B, 0);
    put_decode_meta(c, rec);
    /* decoding rewrites mask; the composite needs the region after it */
    st_put_copy(rec, "region", st_find(rec, "mask"));
    return 0;
}

/* recon := the decoded image blended over the input by the region's blurred
 * mask (lib/composite.h); recon_raw := recon before; image_masked := the
 * input with the region grey. */
static int do_composite(const struct cmdline *c, struct st *rec)
{
    struct st_tensor *im = st_require(rec, "image", ST_F32, 4), *rc = st_require(rec, "recon", ST_F32, 4);
    struct st_tensor *rg = st_require(rec, "region", ST_U8, -1);
    if (!im || !rc || !rg) return -1;
    int64_t B = im->shape[0], C = im->shape[1], H = im->shape[2], W = im->shape[3];
    for (int d = 0; d < 4; d++)
        if (rc->shape[d] != im->shape[d]) return tp_err_set("fields 'recon' and 'image': shapes differ");
    if (rg->ndim < 2 || rg->ndim > 3 || rg->shape[0] != B)
        return tp_err_set("field 'region': expected U8 [%lld,h,w] or [%lld,K]", (long long)B, (long long)B);
    int64_t gh = rg->ndim == 3 ? rg->shape[1] : lround(sqrt((double)rg->shape[1]));
    int64_t gw = rg->ndim == 3 ? rg->shape[2] : gh;
    if (gh < 1 || gw < 1 || gh * gw * B != st_numel(rg))
        return tp_err_set("field 'region': %lld tokens are not a square grid", (long long)rg->shape[1]);
    if (H % gh || W % gw)
        return tp_err_set("field 'image': %lldx%lld is not a multiple of the %lldx%lld token grid", (long long)H,
                          (long long)W, (long long)gh, (long long)gw);
    int64_t ph = H / gh < W / gw ? H / gh : W / gw;
    double sigma = isnan(c->blur) ? (double)(ph - 1) : c->blur;
    int64_t shape[ST_MAX_DIMS];
    memcpy(shape, im->shape, sizeof shape);
    st_put_copy(rec, "recon_raw", rc);
    st_put(rec, "image_masked", ST_F32, 4, shape); /* pointers into rec move: find them again */
    const float *in = st_find(rec, "image")->data;
    const uint8_t *region = st_find(rec, "region")->data;
    float *out = st_find(rec, "recon")->data, *grey = st_find(rec, "image_masked")->data;
    float *m = tp_malloc(sizeof(float) * (size_t)(H * W));
    size_t n = (size_t)(C * H * W), k = (size_t)(gh * gw);
    for (int64_t b = 0; b < B; b++) {
        composite_mask(m, region + b * k, (int)gh, (int)gw, (int)H, (int)W, sigma);
        composite_blend(out + b * n, in + b * n, out + b * n, m, (int)C, (int)H, (int)W);
        composite_grey(grey + b * n, in + b * n, region + b * k, (int)gh, (int)gw, (int)C, (int)H, (int)W,
                       (float)c->grey);
    }
    free(m);
    return 0;
}

/* ---- main ---------------------------------------------------------------------- */

static void out_open(struct tz_out *o, const struct cmdline *c)
{
    if (!c->out && isatty(STDOUT_FILENO)) die_usage("refusing to write a stream to a terminal (use -o)");
    if (tz_out_open(o, c->out, c->level) != 0) die_err();
}

static void out_put(struct tz_out *o, const struct st *rec)
{
    if (tz_out_put(o, rec) != 0) die_err();
}

static void out_close(struct tz_out *o)
{
    if (tz_out_close(o) != 0) die_err();
}

static void init_sample(const struct cmdline *c, struct tz_out *o)
{
    int64_t B = c->batch > 0 ? c->batch : c->n, K = c->tokens > 0 ? c->tokens : c->grid * c->grid;
    for (int64_t first = 0, r = 0; first < c->n; first += B, r++) {
        int64_t nb = c->n - first < B ? c->n - first : B;
        struct st *rec = st_new();
        struct st_tensor *t = c->grid > 0 ? st_put_v(rec, "ids", ST_I32, 3, nb, (int64_t)c->grid, (int64_t)c->grid)
                                          : st_put_v(rec, "ids", ST_I32, 2, nb, K);
        int32_t *ids = t->data;
        for (int64_t i = 0; i < nb * K; i++) ids[i] = (int32_t)c->vocab;
        put_labels(c, rec, nb, first);
        char sv[32];
        snprintf(sv, sizeof sv, "%llu", (unsigned long long)rng_hash((uint64_t)c->seed, (uint64_t)r));
        st_meta_set(rec, "seed", sv);
        put_decode_meta(c, rec);
        out_put(o, rec);
        st_free(rec);
    }
}

/* --sample --loop: each record of --from goes round (FIFO -> transformer ->
 * stdin) until its last step, then to the output. A record of two samples
 * or more goes round as two halves, both in flight: the transformer works on
 * one while this tool samples the other, where one at a time left each
 * process idle while the other worked. A half's noise is drawn at its
 * samples' places in the whole record (maskgit_noise.first), and the
 * transformer's logits of a sample do not depend on the others, so the
 * output is the same bits as one record going round whole.
 *
 * Deadlock: the transformer blocks writing logits to us while we block
 * writing a record into a full FIFO. A record shares the FIFO only if two
 * of them fit in it (the FIFO made 1 MiB where the system allows, tz.h): then the
 * FIFO holds at most the one the transformer has yet to read and the one we
 * write. A record too big for that goes round alone. Closing the FIFO ends
 * the transformer's input, and so this tool's. */

#define LOOP_HEADER_BYTES (16 << 10) /* a record's JSON header and framing, at most */

/* a record of --from on its way round, in one or two parts */
struct start {
    long index;
    int parts, left; /* parts not yet at their last step */
    struct st *done[2];
};

/* a part in the FIFO or the transformer, in the order they went in */
struct flight {
    struct start *s;
    int k;       /* part k of s */
    long first;  /* its first sample in s's record */
    int shared;  /* small enough to share the FIFO */
};

/* A bound on the bytes in the FIFO of a part of n of the B samples of rec:
 * its share of the fields, those the first step adds (mask [n,K] u8,
 * masked0 [n] i32), the header; zstd's worst case. */
static size_t part_bytes(const struct st *rec, long B, long n)
{
    const struct st_tensor *ids = st_find(rec, "ids");
    size_t bytes = st_serialized_size(rec) / (size_t)B * (size_t)n + LOOP_HEADER_BYTES;
    if (ids) bytes += (size_t)(st_numel(ids) / B + 4) * (size_t)n;
    return bytes + bytes / 128;
}

/* what the FIFO holds (its writer made it TZ_PIPE_BYTES where allowed) */
static size_t fifo_capacity(int fd)
{
    int n = fcntl(fd, F_GETPIPE_SZ);
    return n > 0 ? (size_t)n : 0;
}

static void sample_loop(const struct cmdline *c)
{
    struct tz_reader *from = tz_reader_open_path(c->from);
    if (!from) die_err();
    struct tz_out o, loop;
    out_open(&o, c);
    /* blocks until the transformer opens the FIFO for reading */
    if (tz_out_open(&loop, c->loop, c->level) != 0) die_err();
    const size_t cap = fifo_capacity(loop.io.fd);
    struct tz_reader *in = tz_reader_open_path(c->in);
    if (!in) die_err();
    struct progress p;
    progress_init(&p, "records", tz_reader_count(from), c->progress);
    /* the records on their way, oldest at act[head]: a ring, so that the
     * parts in flight keep pointing at theirs */
    struct start act[2];
    int head = 0, nact = 0, from_end = 0;
    struct flight q[2]; /* the parts in flight, in FIFO order */
    int nq = 0;
    struct st *unsent[2]; /* parts of the newest record not yet in the FIFO */
    long unsent_first[2];
    int nunsent = 0, unsent_shared = 0;
    for (;;) {
        /* fill: a part goes in alone, or beside one that shares the FIFO */
        while (nq < 2) {
            if (nunsent == 0) {
                struct st *rec;
                int rc = from_end || nact == 2 ? 0 : tz_reader_next(from, &rec);
                if (rc < 0) die_err();
                if (rc == 0) {
                    from_end |= nact < 2;
                    break;
                }
                struct start *s = &act[(head + nact++) % 2];
                long B = batch_samples(rec);
                if (B < 0) die("%s: record %ld: %s", c->from, tz_reader_index(from) - 1, tp_err());
                if (B == 0) B = 1; /* no samples: do_sample says what is wrong */
                memset(s, 0, sizeof *s);
                s->index = tz_reader_index(from) - 1;
                /* a half, or the whole of one */
                unsent_shared = c->in_flight == 2 && 2 * part_bytes(rec, B, B - B / 2) <= cap;
                s->parts = s->left = B >= 2 && unsent_shared ? 2 : 1;
                if (s->parts == 1) {
                    unsent[0] = rec, unsent_first[0] = 0;
                } else {
                    for (int k = 0; k < 2; k++) {
                        unsent_first[k] = k * B / 2;
                        unsent[k] = batch_slice(rec, unsent_first[k], (k + 1) * B / 2 - unsent_first[k]);
                        if (!unsent[k]) die("%s: record %ld: %s", c->from, s->index, tp_err());
                    }
                    st_free(rec);
                }
                nunsent = s->parts;
            }
            if (nq > 0 && !(unsent_shared && q[0].shared)) break;
            struct start *s = &act[(head + nact - 1) % 2];
            const int k = s->parts - nunsent;
            out_put(&loop, unsent[k]);
            st_free(unsent[k]);
            q[nq++] = (struct flight){s, k, unsent_first[k], unsent_shared};
            nunsent--;
        }
        if (nq == 0) break;
        struct flight f = q[0];
        q[0] = q[1], nq--;
        struct st *rec;
        int k = tz_reader_next(in, &rec);
        if (k < 0) die_err();
        if (k == 0)
            die("%s: record %ld of %s: the stream ended before its last step (did the transformer fail?)",
                tz_reader_name(in), f.s->index, c->from);
        int last = do_sample(c, rec, f.first);
        if (last < 0) die("%s: record %ld of %s: %s", tz_reader_name(in), f.s->index, c->from, tp_err());
        if (!last) { /* round again, behind the other part in flight */
            out_put(&loop, rec);
            st_free(rec);
            q[nq++] = f;
            continue;
        }
        f.s->done[f.k] = rec;
        f.s->left--;
        /* the records whose parts are all done, in order */
        while (nact > 0 && act[head].left == 0) {
            struct start *s = &act[head];
            struct st *whole = s->parts == 1 ? s->done[0] : batch_concat(s->done, 2);
            if (!whole) die("%s: record %ld: %s", c->from, s->index, tp_err());
            out_put(&o, whole);
            for (int j = 0; j < s->parts; j++) st_free(s->done[j]);
            if (s->parts > 1) st_free(whole);
            progress_step(&p, 1);
            head ^= 1, nact--;
        }
    }
    out_close(&loop);
    struct st *rec;
    int rc;
    if ((rc = tz_reader_next(in, &rec)) != 0) {
        if (rc < 0) die_err();
        die("%s: a record the loop did not send", tz_reader_name(in));
    }
    progress_end(&p);
    out_close(&o);
    tz_reader_close(in);
    tz_reader_close(from);
}

int main(int argc, char **argv)
{
    cli_init(argc, argv);
    struct cmdline c;
    parse(&c, argc, argv);
    tp_threads_set(c.threads);
    struct tz_out o;
    if (c.mode == M_INIT) {
        out_open(&o, &c);
        init_sample(&c, &o);
        out_close(&o);
        return 0;
    }
    if (c.loop) {
        sample_loop(&c);
        return 0;
    }
    struct tz_reader *r = tz_reader_open_path(c.in);
    if (!r) die_err();
    out_open(&o, &c);
    struct progress p;
    progress_init(&p, "records", tz_reader_count(r), c.progress);
    struct st *rec;
    int rc;
    while ((rc = tz_reader_next(r, &rec)) == 1) {
        int k = c.mode == M_TRAIN ? do_train(&c, rec) : c.mode == M_SAMPLE ? do_sample(&c, rec, 0)
              : c.mode == M_REGION ? do_region(&c, rec) : do_composite(&c, rec);
        if (k < 0) die("%s: record %ld: %s", tz_reader_name(r), tz_reader_index(r) - 1, tp_err());
        out_put(&o, rec);
        st_free(rec);
        progress_step(&p, 1);
    }
    if (rc < 0) die_err();
    progress_end(&p);
    out_close(&o);
    tz_reader_close(r);
    return 0;
}
