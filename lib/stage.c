/* stage.c - the trainable-tool driver: init, forward, step-mode backward,
 * stream-mode training (see stage.h). */
#include "stage.h"
#include "ckpt.h"
#include "cli.h"
#include "io.h"
#include "optim_cli.h"
#include "tz.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SETS 64

struct opts {
    const char *weights, *in, *out;
    int init;
    const char *arch;
    const char *sets[MAX_SETS];
    int nsets;
    const char *froms[MAX_SETS];
    int nfroms;
    long seed;
    int training;
    const char *backward_in, *grad_file;
    int train;
    const char *grad_in, *grad_out, *state, *ema;
    double ema_decay;
    const char *ckpt_dir;
    long ckpt_every, start_step;
    struct optim_cfg ocfg;
    int level, threads, progress;
};

enum {
    O_INIT = 0x100, O_ARCH, O_SET, O_SEED, O_TRAINING, O_BACKWARD, O_TRAIN, O_GRAD_IN,
    O_GRAD_OUT, O_EMA, O_EMA_DECAY, O_CKPT_DIR, O_CKPT_EVERY, O_START_STEP, O_PROGRESS,
    O_VERSION, O_INIT_FROM,
};

static const struct option stage_options[] = {
    {"weights", required_argument, 0, 'w'},
    {"input", required_argument, 0, 'i'},
    {"output", required_argument, 0, 'o'},
    {"grad", required_argument, 0, 'g'},
    {"state", required_argument, 0, 's'},
    {"level", required_argument, 0, 'l'},
    {"threads", required_argument, 0, 'j'},
    {"help", no_argument, 0, 'h'},
    {"init", no_argument, 0, O_INIT},
    {"arch", required_argument, 0, O_ARCH},
    {"set", required_argument, 0, O_SET},
    {"seed", required_argument, 0, O_SEED},
    {"init-from", required_argument, 0, O_INIT_FROM},
    {"training", no_argument, 0, O_TRAINING},
    {"backward", required_argument, 0, O_BACKWARD},
    {"train", no_argument, 0, O_TRAIN},
    {"grad-in", required_argument, 0, O_GRAD_IN},
    {"grad-out", required_argument, 0, O_GRAD_OUT},
    {"ema", required_argument, 0, O_EMA},
    {"ema-decay", required_argument, 0, O_EMA_DECAY},
    {"ckpt-dir", required_argument, 0, O_CKPT_DIR},
    {"ckpt-every", required_argument, 0, O_CKPT_EVERY},
    {"start-step", required_argument, 0, O_START_STEP},
    {"progress", no_argument, 0, O_PROGRESS},
    {"version", no_argument, 0, O_VERSION},
    {0, 0, 0, 0},
};

_Noreturn static void usage(const struct stage_tool *t)
{
    printf("usage: %s -w W.safetensors [options] < in.tz > out.tz\n%s\n\n", t->name, t->summary);
    printf("modes:\n"
           "  --init               create -w with --arch PRESET, --set k=v..., --seed S;\n"
           "                       --init-from FILE[:OLD=NEW] copies the tensors of FILE\n"
           "                       (names starting OLD renamed to NEW) that the model has\n"
           "  (default)            forward each record (inference)\n"
           "  --training           forward in training mode (step mode)\n"
           "  --backward IN.tz     recompute the forward of IN.tz, read output gradients on\n"
           "                       stdin, write input gradients, sum weight gradients into -g\n"
           "  --train              stream mode: forward, read --grad-in, backward, write\n"
           "                       --grad-out, update in-process, checkpoint\n"
           "options:\n"
           "  -w, --weights FILE   the model (safetensors; architecture in its metadata)\n"
           "  -i FILE, -o FILE     input and output streams (stdin, stdout)\n"
           "  -g, --grad FILE      weight gradients written by --backward\n"
           "  -s, --state FILE     optimizer state (stream mode; created if absent)\n"
           "  --grad-in FIFO       gradients of the outputs (stream mode)\n"
           "  --grad-out FIFO      gradients of the inputs (stream mode)\n"
           "  --ema FILE           EMA weights (stream mode), --ema-decay D (0.999)\n"
           "  --ckpt-dir DIR       checkpoints every --ckpt-every N steps\n"
           "  --start-step S       resume from DIR's checkpoint of step S\n"
           "  -l N                 zstd level of written streams (-1; 3 after a record\n"
           "                       that compresses even so, token ids, except on a pipe;\n"
           "                       stored after one below 1.1x)\n"
           "  -j N                 threads (all cores)\n"
           "  --progress           progress on stderr\n"
           "  -h, --version\n");
    if (t->presets) {
        printf("presets (--arch):\n");
        for (int i = 0; t->presets[i][0]; i++) printf("  %-18s %s\n", t->presets[i][0], t->presets[i][1]);
    }
    printf("%s\n%s", optim_cli_usage, t->fields ? t->fields : "");
    exit(0);
}

static void parse(const struct stage_tool *t, struct opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->level = TZ_LEVEL_AUTO_FLOATS;
    o->ema_decay = 0.999;
    o->seed = 0;
    optim_cfg_init(&o->ocfg);
    struct option all[64];
    int n = options_append(all, 0, stage_options);
    options_append(all, n, optim_cli_options);
    int c;
    while ((c = getopt_long(argc, argv, "w:i:o:g:s:l:j:h", all, NULL)) != -1) {
        if (optim_cli_parse(&o->ocfg, c, optarg)) continue;
        switch (c) {
        case 'w': o->weights = optarg; break;
        case 'i': o->in = optarg; break;
        case 'o': o->out = optarg; break;
        case 'g': o->grad_file = optarg; break;
        case 's': o->state = optarg; break;
        case 'l': o->level = (int)cli_long("-l", optarg, -7, 19); break;
        case 'j': o->threads = (int)cli_long("-j", optarg, 1, 1024); break;
        case 'h': usage(t);
        case O_INIT: o->init = 1; break;
        case O_ARCH: o->arch = optarg; break;
        case O_SET:
            if (o->nsets == MAX_SETS) die_usage("--set: at most %d", MAX_SETS);
            if (!strchr(optarg, '=')) die_usage("--set: '%s' is not KEY=VALUE", optarg);
            o->sets[o->nsets++] = optarg;
            break;
        case O_SEED: o->seed = cli_long("--seed", optarg, 0, 1L << 62); break;
        case O_INIT_FROM:
            if (o->nfroms == MAX_SETS) die_usage("--init-from: at most %d", MAX_SETS);
            o->froms[o->nfroms++] = optarg;
            break;
        case O_TRAINING: o->training = 1; break;
        case O_BACKWARD: o->backward_in = optarg; break;
        case O_TRAIN: o->train = 1; break;
        case O_GRAD_IN: o->grad_in = optarg; break;
        case O_GRAD_OUT: o->grad_out = optarg; break;
        case O_EMA: o->ema = optarg; break;
        case O_EMA_DECAY: o->ema_decay = cli_double("--ema-decay", optarg, 0, 1); break;
        case O_CKPT_DIR: o->ckpt_dir = optarg; break;
        case O_CKPT_EVERY: o->ckpt_every = cli_long("--ckpt-every", optarg, 1, 1L << 40); break;
        case O_START_STEP: o->start_step = cli_long("--start-step", optarg, 0, 1L << 40); break;
        case O_PROGRESS: o->progress = 1; break;
        case O_VERSION: cli_version();
        default: die_usage("unknown option");
        }
    }
    if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
    if (!o->weights) die_usage("-w WEIGHTS is required");
    int modes = o->init + (o->backward_in != NULL) + o->train;
    if (modes > 1) die_usage("--init, --backward and --train exclude each other");
    if (o->train && !o->grad_in) die_usage("--train needs --grad-in FIFO");
    if (o->start_step && !o->ckpt_dir) die_usage("--start-step needs --ckpt-dir");
    if ((o->ckpt_every > 0) != (o->ckpt_dir != NULL) && o->ckpt_every)
        die_usage("--ckpt-every needs --ckpt-dir");
    if (o->init && !o->arch) die_usage("--init needs --arch PRESET");
}

/* ---- init ------------------------------------------------------------------ */

/* --init-from FILE[:OLD=NEW]: overwrite the parameters that FILE has (after
 * renaming the prefix OLD to NEW), checking shapes; report what was taken.
 * This is how a model starts from parts of others (TiTok stage 2: its
 * stage-1 decoder, the teacher's codebook and pixel decoder). */
static void init_from(struct module *m, const char *spec)
{
    char *path = tp_strdup(spec), *old = NULL, *new = NULL;
    char *colon = strrchr(path, ':');
    if (colon && strchr(colon, '=')) {
        *colon = 0;
        old = colon + 1;
        new = strchr(old, '=');
        *new++ = 0;
    }
    struct st *w;
    if (st_load(&w, path) != 0) die_err();
    long taken = 0;
    char name[256];
    for (int i = 0; i < w->n; i++) {
        const struct st_tensor *t = &w->t[i];
        if (old) {
            size_t k = strlen(old);
            if (strncmp(t->name, old, k) != 0) continue;
            snprintf(name, sizeof name, "%s%s", new, t->name + k);
        } else {
            snprintf(name, sizeof name, "%s", t->name);
        }
        const struct param_spec *p = params_find(&m->params, name);
        if (!p) continue;
        if (t->dtype != ST_F32 || (size_t)st_numel(t) != p->numel || t->ndim != p->ndim ||
            memcmp(t->shape, p->shape, sizeof(int64_t) * (size_t)p->ndim) != 0)
            die("%s: tensor '%s' does not fit parameter '%s'", path, t->name, name);
        memcpy(m->params.data + p->offset, t->data, p->numel * sizeof(float));
        taken++;
    }
    params_changed(&m->params);
    if (taken == 0) die("%s: no tensor of it is a parameter of this model", path);
    fprintf(stderr, "%s: %ld tensors from %s\n", tp_progname, taken, spec);
    st_free(w);
    free(path);
}

static int do_init(const struct stage_tool *t, const struct opts *o)
{
    struct st *meta = st_new();
    const char *preset = NULL;
    for (int i = 0; t->presets && t->presets[i][0]; i++)
        if (strcmp(t->presets[i][0], o->arch) == 0) preset = t->presets[i][1];
    if (preset) st_meta_apply_kv(meta, preset, ' ');
    else st_meta_set(meta, "arch", o->arch); /* a bare architecture with its defaults */
    for (int i = 0; i < o->nsets; i++) st_meta_apply_kv(meta, o->sets[i], '\1');
    struct module m;
    if (module_build(&m, t->ops, meta) != 0) die("%s: %s", o->weights, tp_err());
    params_fill_init(&m.params, (uint64_t)o->seed);
    for (int i = 0; i < o->nfroms; i++) init_from(&m, o->froms[i]);
    st_meta_set_long(m.meta, "init_seed", o->seed);
    if (params_save(&m.params, o->weights, m.meta) != 0) die_err();
    fprintf(stderr, "%s: %s: %s, %zu parameters\n", t->name, o->weights,
            st_meta_get(m.meta, "arch"), m.params.total);
    module_free(&m);
    st_free(meta);
    return 0;
}

/* ---- shared ------------------------------------------------------------------ */

static void load_module(const struct stage_tool *t, struct module *m, const char *path)
{
    struct st *w;
    if (st_load(&w, path) != 0) die_err();
    if (module_build(m, t->ops, w) != 0) die("%s: %s", path, tp_err());
    if (params_load_file(&m->params, w, path) != 0) die("%s: %s", path, tp_err());
}

static struct tz_reader *open_in(const char *path)
{
    struct tz_reader *r = tz_reader_open_path(path);
    if (!r) die_err();
    return r;
}

static void open_out(struct tz_out *o, const char *path, int level)
{
    if (!path && isatty(STDOUT_FILENO)) die_usage("refusing to write a stream to a terminal (use -o)");
    if (tz_out_open(o, path, level) != 0) die_err();
}

/* Read the next record; die naming the stream on an error. */
static int next(struct tz_reader *r, struct st **rec)
{
    int rc = tz_reader_next(r, rec);
    if (rc < 0) die_err();
    return rc;
}

static void copy_step_meta(struct st *dst, const struct st *src)
{
    static const char *const keys[] = {"step", "seed"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *v = st_meta_get(src, keys[i]);
        if (v) st_meta_set(dst, keys[i], v);
    }
}

/* ---- forward and step-mode backward ----------------------------------------- */

static int do_forward(const struct stage_tool *t, const struct opts *o)
{
    struct module m;
    load_module(t, &m, o->weights);
    struct tz_reader *r = open_in(o->in);
    struct tz_out out;
    open_out(&out, o->out, o->level);
    struct progress p;
    progress_init(&p, "records", tz_reader_count(r), o->progress);
    struct st *rec;
    while (next(r, &rec) == 1) {
        if (m.ops->forward(&m, rec, o->training) != 0)
            die("%s: record %ld: %s", tz_reader_name(r), tz_reader_index(r) - 1, tp_err());
        if (m.ops->annotate) m.ops->annotate(&m, rec);
        if (tz_out_put(&out, rec) != 0) die_err();
        st_free(rec);
        progress_step(&p, 1);
    }
    progress_end(&p);
    if (tz_out_close(&out) != 0) die_err();
    tz_reader_close(r);
    module_free(&m);
    return 0;
}

static int do_backward(const struct stage_tool *t, const struct opts *o)
{
    struct module m;
    load_module(t, &m, o->weights);
    struct tz_reader *in = open_in(o->backward_in);
    struct tz_reader *gr = open_in(o->in);
    struct tz_out out;
    open_out(&out, o->out, o->level);
    struct st *rec, *grad;
    long n = 0;
    while (next(in, &rec) == 1) {
        if (next(gr, &grad) != 1)
            die("%s: ended at record %ld before %s", tz_reader_name(gr), n, tz_reader_name(in));
        if (m.ops->forward(&m, rec, 1) != 0)
            die("%s: record %ld: %s", tz_reader_name(in), n, tp_err());
        struct st *ig = st_new();
        copy_step_meta(ig, rec);
        if (m.ops->backward(&m, grad, ig) != 0)
            die("%s: record %ld: %s", tz_reader_name(gr), n, tp_err());
        if (tz_out_put(&out, ig) != 0) die_err();
        st_free(ig);
        st_free(rec);
        st_free(grad);
        n++;
    }
    if (next(gr, &grad) == 1) die("%s: more records than %s", tz_reader_name(gr), tz_reader_name(in));
    if (tz_out_close(&out) != 0) die_err();
    if (o->grad_file) {
        struct st *g = st_new();
        params_view(&m.params, g, 1);
        st_meta_set_long(g, "records", n);
        if (st_save(g, o->grad_file) != 0) die_err();
        st_free(g);
    }
    tz_reader_close(in);
    tz_reader_close(gr);
    module_free(&m);
    return 0;
}

/* ---- stream mode ---------------------------------------------------------------- */

static void save_st_or_die(const struct st *s, const char *path)
{
    if (st_save(s, path) != 0) die_err();
}

static void checkpoint(const struct opts *o, struct module *m, struct st *state, struct st *ema, long step)
{
    char path[4096];
    struct st *w = st_new();
    for (int i = 0; i < m->meta->nmeta; i++) st_meta_set(w, m->meta->meta_key[i], m->meta->meta_val[i]);
    st_meta_set_long(w, "step", step);
    params_view(&m->params, w, 0);
    ckpt_path(path, sizeof path, o->ckpt_dir, step, "weights.safetensors");
    save_st_or_die(w, path);
    ckpt_path(path, sizeof path, o->ckpt_dir, step, "state.safetensors");
    save_st_or_die(state, path);
    if (ema) {
        ckpt_path(path, sizeof path, o->ckpt_dir, step, "ema.safetensors");
        save_st_or_die(ema, path);
    }
    if (ckpt_finish(o->ckpt_dir, step, o->ckpt_every) != 0) die_err();
    st_free(w);
}

/* An st loaded from path, or a new empty one if the file does not exist. */
static struct st *load_or_empty(const char *path)
{
    struct st *s;
    if (path && access(path, F_OK) == 0) {
        if (st_load(&s, path) != 0) die_err();
        return s;
    }
    return st_new();
}

/* Own copies of every tensor: a loaded (mapped) st becomes writable and
 * independent of its file. */
static struct st *st_own_copy(const struct st *src)
{
    struct st *s = st_new();
    for (int i = 0; i < src->nmeta; i++) st_meta_set(s, src->meta_key[i], src->meta_val[i]);
    for (int i = 0; i < src->n; i++) st_put_copy(s, src->t[i].name, &src->t[i]);
    return s;
}

static int open_fifo(const char *path, int flags)
{
    int fd;
    do fd = open(path, flags | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) die("%s: %s", path, strerror(errno));
    return fd;
}

static int do_train(const struct stage_tool *t, const struct opts *o)
{
    struct module m;
    char path[4096];
    struct st *state, *ema = NULL;
    long step0 = o->start_step;
    if (step0 > 0) {
        ckpt_path(path, sizeof path, o->ckpt_dir, step0, "done");
        if (access(path, F_OK) != 0) die("%s: no checkpoint of step %ld", o->ckpt_dir, step0);
        ckpt_path(path, sizeof path, o->ckpt_dir, step0, "weights.safetensors");
        load_module(t, &m, path);
        ckpt_path(path, sizeof path, o->ckpt_dir, step0, "state.safetensors");
        struct st *s = load_or_empty(path);
        state = st_own_copy(s);
        st_free(s);
        if (o->ema) {
            ckpt_path(path, sizeof path, o->ckpt_dir, step0, "ema.safetensors");
            s = load_or_empty(path);
            ema = st_own_copy(s);
            st_free(s);
        }
    } else {
        load_module(t, &m, o->weights);
        struct st *s = load_or_empty(o->state);
        state = st_own_copy(s);
        st_free(s);
        if (o->ema) {
            s = load_or_empty(o->ema);
            ema = st_own_copy(s);
            st_free(s);
        }
    }
    /* a new EMA file is a weights file: it carries the architecture */
    if (ema) ema->put_order = 1; /* weights: in the table's order, as the file it came from */
    if (ema && ema->nmeta == 0)
        for (int i = 0; i < m.meta->nmeta; i++) st_meta_set(ema, m.meta->meta_key[i], m.meta->meta_val[i]);
    if (o->ckpt_dir && io_mkdirs(o->ckpt_dir) != 0) die_err();
    struct optim *opt = optim_new(&o->ocfg);
    if (!opt) die_err();
    struct st *wv = st_new(), *gv = st_new();
    params_view(&m.params, wv, 0);
    params_view(&m.params, gv, 1);
    if (optim_check_state(opt, wv, state) != 0) die("%s: %s", o->state ? o->state : "state", tp_err());
    long step = 0;
    const char *sv = st_meta_get(state, "step");
    if (sv) step = strtol(sv, NULL, 10);
    if (step0 > 0 && step != step0) die("%s: state is at step %ld, checkpoint %ld", o->ckpt_dir, step, step0);

    /* grad-in before grad-out: see stage.h */
    int gin_fd = open_fifo(o->grad_in, O_RDONLY);
    int gout_fd = o->grad_out ? open_fifo(o->grad_out, O_WRONLY) : -1;
    struct tz_reader *gin = tz_reader_open(gin_fd, o->grad_in);
    struct tz_writer *gout = gout_fd >= 0 ? tz_writer_open(gout_fd, o->grad_out, o->level, 0) : NULL;
    struct tz_reader *in = open_in(o->in);
    struct tz_out out;
    open_out(&out, o->out, o->level);
    struct progress p;
    progress_init(&p, "steps", -1, o->progress);
    char lrkey[96];
    snprintf(lrkey, sizeof lrkey, "lr.%s", t->name);
    struct st *rec, *grad;
    while (next(in, &rec) == 1) {
        params_zero_grad(&m.params);
        if (m.ops->forward(&m, rec, 1) != 0)
            die("%s: record %ld: %s", tz_reader_name(in), tz_reader_index(in) - 1, tp_err());
        if (m.ops->annotate) m.ops->annotate(&m, rec);
        st_meta_set_double(rec, lrkey, optim_lr(&o->ocfg, step));
        if (tz_out_put(&out, rec) != 0) die_err();
        if (next(gin, &grad) != 1)
            die("%s: gradient stream ended at step %ld", o->grad_in, step);
        struct st *ig = st_new();
        copy_step_meta(ig, rec);
        if (m.ops->backward(&m, grad, ig) != 0) die("%s: step %ld: %s", o->grad_in, step, tp_err());
        if (gout && tz_writer_put(gout, ig) != 0) die_err();
        struct optim_report rep;
        if (optim_step(opt, wv, gv, state, &rep) != 0) {
            /* a refused step (a NaN gradient) is an expected exit: leave no leak behind */
            st_free(ig), st_free(grad), st_free(rec);
            die("step %ld: %s", step, tp_err());
        }
        params_changed(&m.params);
        step = rep.step;
        if (ema && optim_ema_update(opt, ema, wv, step, o->ema_decay) != 0) die_err();
        if (o->ckpt_every && step % o->ckpt_every == 0) checkpoint(o, &m, state, ema, step);
        st_free(ig);
        st_free(grad);
        st_free(rec);
        progress_step(&p, 1);
    }
    progress_end(&p);
    /* the last step is a checkpoint too, so a finished run resumes to nothing */
    if (o->ckpt_every && step > step0 && step % o->ckpt_every != 0) checkpoint(o, &m, state, ema, step);
    if (tz_out_close(&out) != 0) die_err();
    if (gout && tz_writer_close(gout) != 0) die_err();
    if (gout_fd >= 0) close(gout_fd);
    tz_reader_close(gin);
    close(gin_fd);
    tz_reader_close(in);
    /* final weights, state and EMA */
    struct st *w = st_new();
    for (int i = 0; i < m.meta->nmeta; i++) st_meta_set(w, m.meta->meta_key[i], m.meta->meta_val[i]);
    st_meta_set_long(w, "step", step);
    params_view(&m.params, w, 0);
    save_st_or_die(w, o->weights);
    if (o->state) save_st_or_die(state, o->state);
    if (ema) save_st_or_die(ema, o->ema);
    st_free(w);
    st_free(wv);
    st_free(gv);
    st_free(state);
    st_free(ema);
    optim_free(opt);
    module_free(&m);
    return 0;
}

int stage_main(const struct stage_tool *t, int argc, char **argv)
{
    cli_init(argc, argv);
    struct opts o;
    parse(t, &o, argc, argv);
    tp_threads_set(o.threads);
    if (o.init) return do_init(t, &o);
    if (o.backward_in) return do_backward(t, &o);
    if (o.train) return do_train(t, &o);
    return do_forward(t, &o);
}
