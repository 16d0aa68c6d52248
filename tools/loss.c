/* loss - the loss stage of a training pipeline: reads predictions, writes
 * the gradient stream of the prediction, logs the loss values (TSV).
 *
 *   loss KIND[:WEIGHT]... [--pred F] [--target F] [--log FILE] < pred.tz > pred.grad.tz
 *   loss --eval METRIC... [--fd-ref REF.safetensors] [--fd-out STATS.safetensors] < pred.tz
 *
 * The arithmetic is lib/objective.c's (and lib/loss.c's). */
#include "ckpt.h"
#include "cli.h"
#include "io.h"
#include "objective.h"
#include "optim_cli.h"
#include "tz.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_COLS 32

struct cmdline {
    struct objective obj;
    const char *in, *out, *target_file, *log;
    long steps, start_step;
    int level, threads, progress, eval;
    /* the gan term's critic */
    const char *disc, *disc_state, *disc_widths, *ckpt_dir, *perceptual;
    /* the fd metric: reference statistics, where to write this stream's */
    const char *fd_ref, *fd_out;
    long ckpt_every;
    struct gan_cfg gan;
};

enum { O_PRED = 0x100, O_TARGET, O_MASK, O_SMOOTH, O_UNMASKED, O_TARGET_FILE, O_LOG, O_STEPS,
       O_START, O_PROGRESS, O_EVAL, O_VERSION, O_DISC, O_DISC_STATE, O_DISC_WIDTHS, O_GAN_START,
       O_LECAM, O_DFACTOR, O_CKPT_DIR, O_CKPT_EVERY, O_PERCEPTUAL, O_FD_REF, O_FD_OUT };

static const struct option options[] = {
    {"pred", required_argument, 0, O_PRED},
    {"target", required_argument, 0, O_TARGET},
    {"mask", required_argument, 0, O_MASK},
    {"label-smoothing", required_argument, 0, O_SMOOTH},
    {"unmasked-weight", required_argument, 0, O_UNMASKED},
    {"target-file", required_argument, 0, O_TARGET_FILE},
    {"log", required_argument, 0, O_LOG},
    {"steps", required_argument, 0, O_STEPS},
    {"start-step", required_argument, 0, O_START},
    {"progress", no_argument, 0, O_PROGRESS},
    {"eval", no_argument, 0, O_EVAL},
    {"version", no_argument, 0, O_VERSION},
    {"help", no_argument, 0, 'h'},
    {"disc", required_argument, 0, O_DISC},
    {"perceptual", required_argument, 0, O_PERCEPTUAL},
    {"disc-state", required_argument, 0, O_DISC_STATE},
    {"disc-widths", required_argument, 0, O_DISC_WIDTHS},
    {"gan-start", required_argument, 0, O_GAN_START},
    {"lecam", required_argument, 0, O_LECAM},
    {"disc-factor", required_argument, 0, O_DFACTOR},
    {"ckpt-dir", required_argument, 0, O_CKPT_DIR},
    {"ckpt-every", required_argument, 0, O_CKPT_EVERY},
    {"fd-ref", required_argument, 0, O_FD_REF},
    {"fd-out", required_argument, 0, O_FD_OUT},
    {0, 0, 0, 0},
};

_Noreturn static void usage(void)
{
    printf("usage: loss KIND[:WEIGHT]... [options] < pred.tz > pred.grad.tz\n"
           "Compute a weighted sum of losses per record, write d(loss)/d(pred) as PRED.grad,\n"
           "and log the values.\n\n"
           "kinds:\n"
           "  mse, l1              pred (recon) against target (image), F32, same shape\n"
           "  ce                   pred (logits) F32 [...,V] against target (target) I32 [...]\n"
           "  perceptual           feature distance in the frozen network of --perceptual FILE\n"
           "  gan                  the adversarial term (critic below), from --gan-start\n"
           "  psnr, ssim           metrics of pred against target images (with --eval only)\n"
           "  acc                  metric: argmax of pred (logits) against target (label)\n"
           "  fd                   metric: Frechet distance of pred (features) F32 [B,D]\n"
           "                       over the stream to --fd-ref's statistics\n"
           "options:\n"
           "  --pred F, --target F  field names\n"
           "  --mask F             ce: U8 field, 1 = masked (weight 1), 0 = unmasked (mask)\n"
           "  --label-smoothing X  ce: label smoothing (0)\n"
           "  --unmasked-weight X  ce: weight of unmasked positions (1)\n"
           "  --target-file T.tz   take the target fields from this stream, record by record\n"
           "  --log FILE           append: step, each loss, total, upstream losses and lr, seconds\n"
           "  --start-step S       resuming: drop log lines of step S and later first\n"
           "  --steps N            steps expected (for the progress ETA)\n"
           "  --eval               no gradient stream: print the mean of each loss at the end\n"
           "  --fd-ref FILE        fd: the reference statistics (mu, sigma) to compare with\n"
           "  --fd-out FILE        fd: write this stream's feature statistics there\n"
           "  -i FILE, -o FILE, -l LEVEL, -j N, --progress, -h, --version\n"
           "the gan term (upstream's stage-2 adversarial loss, its critic trained here):\n"
           "  --disc FILE          the critic's weights (created, upstream init, if absent)\n"
           "  --disc-state FILE    its AdamW state and LeCam EMAs (created if absent)\n"
           "  --disc-widths LIST   widths of a new critic (32,32,64,128; upstream 128,128,256,512)\n"
           "  --gan-start N        first step with the adversarial terms (20000)\n"
           "  --lecam X            LeCam weight (0.001); --disc-factor X (1)\n"
           "  --ckpt-dir DIR, --ckpt-every N   the critic's checkpoints, named as the stages'\n"
           "  --start-step S       also resumes the critic from DIR's step S\n"
           "the critic's optimizer (defaults: upstream stage 2):\n%s",
           optim_cli_usage);
    exit(0);
}

static void parse(struct cmdline *c, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    objective_init(&c->obj);
    c->level = TZ_LEVEL_AUTO_FLOATS; /* gradients are floats */
    gan_cfg_init(&c->gan);
    c->gan.g_weight = 0; /* set by a gan term */
    struct option all[64];
    int n = options_append(all, 0, options);
    options_append(all, n, optim_cli_options);
    int o;
    while ((o = getopt_long(argc, argv, "i:o:l:j:h", all, NULL)) != -1) {
        if (optim_cli_parse(&c->gan.d_opt, o, optarg)) continue;
        switch (o) {
        case O_DISC: c->disc = optarg; break;
        case O_PERCEPTUAL: c->perceptual = optarg; break;
        case O_DISC_STATE: c->disc_state = optarg; break;
        case O_DISC_WIDTHS: c->disc_widths = optarg; break;
        case O_GAN_START: c->gan.start_step = cli_long("--gan-start", optarg, 0, 1L << 40); break;
        case O_LECAM: c->gan.lecam_weight = cli_double("--lecam", optarg, 0, 1e6); break;
        case O_DFACTOR: c->gan.d_factor = cli_double("--disc-factor", optarg, 0, 1e6); break;
        case O_CKPT_DIR: c->ckpt_dir = optarg; break;
        case O_CKPT_EVERY: c->ckpt_every = cli_long("--ckpt-every", optarg, 1, 1L << 40); break;
        case O_FD_REF: c->fd_ref = optarg; break;
        case O_FD_OUT: c->fd_out = optarg; break;
        case 'i': c->in = optarg; break;
        case 'o': c->out = optarg; break;
        case 'l': c->level = (int)cli_long("-l", optarg, -7, 19); break;
        case 'j': c->threads = (int)cli_long("-j", optarg, 1, 1024); break;
        case 'h': usage();
        case O_PRED: c->obj.pred = optarg; break;
        case O_TARGET: c->obj.target = optarg; break;
        case O_MASK: c->obj.mask = optarg; break;
        case O_SMOOTH: c->obj.smoothing = (float)cli_double("--label-smoothing", optarg, 0, 1); break;
        case O_UNMASKED: c->obj.unmasked_weight = (float)cli_double("--unmasked-weight", optarg, 0, 1e6); break;
        case O_TARGET_FILE: c->target_file = optarg; break;
        case O_LOG: c->log = optarg; break;
        case O_STEPS: c->steps = cli_long("--steps", optarg, 0, 1L << 40); break;
        case O_START: c->start_step = cli_long("--start-step", optarg, 0, 1L << 40); break;
        case O_PROGRESS: c->progress = 1; break;
        case O_EVAL: c->eval = c->obj.eval_only = 1; break;
        case O_VERSION: cli_version();
        default: die_usage("unknown option");
        }
    }
    if (optind == argc) die_usage("no loss terms (e.g. 'loss mse')");
    for (; optind < argc; optind++)
        if (objective_add(&c->obj, argv[optind]) != 0) die_usage("%s", tp_err());
    for (int k = 0; k < c->obj.n; k++)
        if (c->obj.t[k].kind == OBJ_GAN) {
            if (!c->disc) die_usage("the gan term needs --disc FILE");
            c->gan.g_weight = c->obj.t[k].weight;
            struct optim *check = optim_new(&c->gan.d_opt); /* bad settings: before any file is made */
            if (!check) die_usage("%s", tp_err());
            optim_free(check);
        }
    if (c->ckpt_every && !c->ckpt_dir) die_usage("--ckpt-every needs --ckpt-dir");
    int has_fd = 0;
    for (int k = 0; k < c->obj.n; k++) {
        enum obj_kind kind = c->obj.t[k].kind;
        has_fd |= kind == OBJ_FD;
        if ((kind == OBJ_FD || kind == OBJ_ACC) && !c->eval)
            die_usage("%s is a metric: use --eval", objective_term_name(&c->obj, k));
    }
    if (has_fd && !c->fd_ref && !c->fd_out) die_usage("the fd term needs --fd-ref FILE and/or --fd-out FILE");
    if (!has_fd && (c->fd_ref || c->fd_out)) die_usage("--fd-ref and --fd-out go with the fd term");
    for (int k = 0; k < c->obj.n; k++)
        if (c->obj.t[k].kind == OBJ_PERCEPTUAL) {
            if (!c->perceptual) die_usage("the perceptual term needs --perceptual FILE");
            if (perceptual_load(&c->obj.perc, c->perceptual) != 0) die_err();
        }
}

/* ---- the critic ------------------------------------------------------------------ */

/* Open the critic: from the checkpoint of the start step when resuming,
 * else from --disc, created for the data's channels if it does not exist. */
static void critic_open(struct cmdline *c, int channels)
{
    char w[4096], s[4096];
    if (c->start_step > 0 && c->ckpt_dir) {
        ckpt_path(w, sizeof w, c->ckpt_dir, c->start_step, "weights.safetensors");
        ckpt_path(s, sizeof s, c->ckpt_dir, c->start_step, "state.safetensors");
    } else {
        snprintf(w, sizeof w, "%s", c->disc);
        snprintf(s, sizeof s, "%s", c->disc_state ? c->disc_state : "");
        if (access(c->disc, F_OK) != 0) {
            struct st *meta = st_new();
            st_meta_set(meta, "arch", "nlayer-discriminator");
            st_meta_set_long(meta, "channels", channels);
            st_meta_set(meta, "widths", c->disc_widths ? c->disc_widths : "32,32,64,128");
            if (disc_init_file(c->disc, meta, 1) != 0) die_err();
            st_free(meta);
        }
    }
    if (gan_open(&c->obj.gan, w, s[0] ? s : NULL, &c->gan) != 0) die_err();
}

static void critic_checkpoint(const struct cmdline *c, long done)
{
    char w[4096], s[4096];
    ckpt_path(w, sizeof w, c->ckpt_dir, done, "weights.safetensors");
    ckpt_path(s, sizeof s, c->ckpt_dir, done, "state.safetensors");
    if (gan_save(c->obj.gan, w, s) != 0 || ckpt_finish(c->ckpt_dir, done, c->ckpt_every) != 0) die_err();
}

/* ---- the TSV log ---------------------------------------------------------------- */

struct logf {
    FILE *f;
    int ncols;
    char *cols[MAX_COLS]; /* metadata columns, fixed by the first record */
    double t0;
};

static int keep_key(const char *k)
{
    return strncmp(k, "loss.", 5) == 0 || strncmp(k, "lr.", 3) == 0 || strncmp(k, "vq.", 3) == 0 ||
           strncmp(k, "gan.", 4) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Keep the header and the lines of steps before `start` (a resumed run
 * logs the later ones again), rewriting the file atomically. */
static void log_truncate(const char *path, long start)
{
    void *buf;
    size_t n;
    if (access(path, F_OK) != 0) return;
    if (io_slurp(path, (size_t)1 << 32, &buf, &n) != 0) die_err();
    char *out = tp_malloc(n + 1), *p = buf, *end = (char *)buf + n;
    size_t k = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break; /* a partial last line from a kill: drop it */
        size_t len = (size_t)(nl - p) + 1;
        char *e;
        long step = strtol(p, &e, 10);
        if (e == p || step < start) {
            memcpy(out + k, p, len);
            k += len;
        }
        p = nl + 1;
    }
    if (io_write_file_atomic(path, out, k) != 0) die_err();
    free(out);
    free(buf);
}

static void log_open(struct logf *l, const struct cmdline *c, const struct st *first)
{
    memset(l, 0, sizeof *l);
    l->t0 = tp_now();
    if (!c->log) return;
    log_truncate(c->log, c->start_step);
    for (int i = 0; i < first->nmeta && l->ncols < MAX_COLS; i++)
        if (keep_key(first->meta_key[i])) l->cols[l->ncols++] = tp_strdup(first->meta_key[i]);
    qsort(l->cols, l->ncols, sizeof(char *), cmp_str);
    struct stat sb;
    int fresh = stat(c->log, &sb) != 0 || sb.st_size == 0;
    l->f = fopen(c->log, "a");
    if (!l->f) die("%s: cannot open the log", c->log);
    if (fresh) {
        fprintf(l->f, "step");
        for (int k = 0; k < c->obj.n; k++) fprintf(l->f, "\t%s", objective_term_name(&c->obj, k));
        fprintf(l->f, "\ttotal");
        if (c->obj.t[0].kind == OBJ_CE) fprintf(l->f, "\tacc");
        for (int i = 0; i < l->ncols; i++) fprintf(l->f, "\t%s", l->cols[i]);
        fprintf(l->f, "\tseconds\n");
    }
}

static void log_row(struct logf *l, const struct cmdline *c, const struct st *rec, long step)
{
    if (!l->f) return;
    fprintf(l->f, "%ld", step);
    for (int k = 0; k < c->obj.n; k++) fprintf(l->f, "\t%.6g", c->obj.t[k].value);
    fprintf(l->f, "\t%.6g", c->obj.total);
    if (c->obj.t[0].kind == OBJ_CE) fprintf(l->f, "\t%.6g", c->obj.acc);
    for (int i = 0; i < l->ncols; i++) {
        const char *v = st_meta_get(rec, l->cols[i]);
        fprintf(l->f, "\t%s", v ? v : "nan");
    }
    fprintf(l->f, "\t%.3f\n", tp_now() - l->t0);
    if (fflush(l->f) != 0) die("%s: write error", c->log);
}

static void log_close(struct logf *l, const char *path)
{
    if (l->f && fclose(l->f) != 0) die("%s: write error", path);
    for (int i = 0; i < l->ncols; i++) free(l->cols[i]);
}

/* ---- the fd metric --------------------------------------------------------------- */

/* Write this stream's statistics (--fd-out); the distance to the reference,
 * or NAN without one. */
static double fd_finish(const struct cmdline *c, const struct fd_ref *ref)
{
    struct fd_stats *s = c->obj.fd;
    const char *stream = c->in ? c->in : "stdin";
    if (s->n < 2) die("%s: %lld feature vectors: the fd needs at least 2", stream, (long long)s->n);
    if (c->fd_out) {
        struct st *meta = st_new();
        st_meta_set(meta, "field", c->obj.pred ? c->obj.pred : "features");
        if (fd_stats_save(s, c->fd_out, meta) != 0) die_err();
        st_free(meta);
    }
    if (!ref) return NAN;
    size_t D = (size_t)s->D;
    double *mu = tp_malloc(D * sizeof(double)), *sigma = tp_malloc(D * D * sizeof(double));
    if (fd_stats_moments(s, mu, sigma) != 0) die_err();
    double fd = fd_distance(mu, sigma, ref->mu, ref->sigma, s->D);
    if (isnan(fd)) die("fd: %s", tp_err());
    free(mu);
    free(sigma);
    return fd;
}

/* ---- main ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    cli_init(argc, argv);
    struct cmdline c;
    parse(&c, argc, argv);
    tp_threads_set(c.threads);
    struct tz_reader *r = tz_reader_open_path(c.in);
    if (!r) die_err();
    struct tz_reader *tr = NULL;
    if (c.target_file && !(tr = tz_reader_open_path(c.target_file))) die_err();
    struct tz_out out = {0};
    if (!c.eval) {
        if (!c.out && isatty(STDOUT_FILENO)) die_usage("refusing to write a stream to a terminal (use -o)");
        if (tz_out_open(&out, c.out, c.level) != 0) die_err();
    }
    struct fd_stats fds;
    struct fd_ref ref = {0};
    fd_stats_init(&fds);
    if (c.fd_ref || c.fd_out) c.obj.fd = &fds;
    /* the reference fixes the feature size: a stream that differs fails at its first record */
    if (c.fd_ref && (fd_ref_load(&ref, c.fd_ref) != 0 || fd_stats_add(&fds, NULL, 0, ref.D) != 0)) die_err();
    struct logf lg = {0};
    struct progress p;
    progress_init(&p, "steps", c.steps > c.start_step ? c.steps - c.start_step : -1, c.progress);
    double sums[OBJ_MAX_TERMS + 1] = {0}, acc_sum = 0;
    long acc_n = 0;
    long n = 0, last_step = -1;
    struct st *rec;
    int rc;
    while ((rc = tz_reader_next(r, &rec)) == 1) {
        if (tr) {
            struct st *t;
            int k = tz_reader_next(tr, &t);
            if (k < 0) die_err();
            if (k == 0) die("%s: ended before %s", c.target_file, tz_reader_name(r));
            for (int i = 0; i < t->n; i++) st_put_copy(rec, t->t[i].name, &t->t[i]);
            st_free(t);
        }
        long step = n;
        const char *sv = st_meta_get(rec, "step");
        if (sv) step = strtol(sv, NULL, 10);
        last_step = step;
        if (c.gan.g_weight > 0 && !c.obj.gan) {
            struct st_tensor *img = st_find(rec, c.obj.target ? c.obj.target : "image");
            critic_open(&c, img && img->ndim == 4 ? (int)img->shape[1] : 3);
            if (c.ckpt_dir && io_mkdirs(c.ckpt_dir) != 0) die_err();
        }
        struct st *g = st_new();
        if (objective_eval(&c.obj, rec, g) != 0)
            die("%s: record %ld: %s", tz_reader_name(r), tz_reader_index(r) - 1, tp_err());
        if (!isfinite(c.obj.total))
            die("%s: record %ld: the loss is not finite (%g)", tz_reader_name(r), tz_reader_index(r) - 1, c.obj.total);
        if (c.obj.gan) {
            st_meta_set_double(rec, "gan.loss_disc", c.obj.drep.loss);
            st_meta_set_double(rec, "gan.logits_real", c.obj.drep.logits_real);
            st_meta_set_double(rec, "gan.logits_fake", c.obj.drep.logits_fake);
            if (c.ckpt_every && (step + 1) % c.ckpt_every == 0) critic_checkpoint(&c, step + 1);
        }
        if (n == 0) log_open(&lg, &c, rec);
        log_row(&lg, &c, rec, step);
        for (int k = 0; k < c.obj.n; k++) sums[k] += c.obj.t[k].value;
        sums[OBJ_MAX_TERMS] += c.obj.total;
        if (!isnan(c.obj.acc)) acc_sum += c.obj.acc, acc_n++;
        if (out.w && tz_out_put(&out, g) != 0) die_err();
        st_free(g);
        st_free(rec);
        n++;
        snprintf(p.note, sizeof p.note, "loss %.4g", c.obj.total);
        progress_step(&p, 1);
    }
    if (rc < 0) die_err();
    /* a mean over no records is no figure: a script must not read NaN as a score */
    if (c.eval && n == 0) die("%s: no records to evaluate", tz_reader_name(r));
    progress_end(&p);
    /* the last step is a checkpoint too, as the stages' */
    if (c.obj.gan && c.ckpt_every && n > 0 && last_step + 1 > c.start_step && (last_step + 1) % c.ckpt_every != 0)
        critic_checkpoint(&c, last_step + 1);
    log_close(&lg, c.log);
    if (c.obj.gan) {
        if (gan_save(c.obj.gan, c.disc, c.disc_state) != 0) die_err();
        gan_free(c.obj.gan);
    }
    if (c.obj.perc) perceptual_free(c.obj.perc);
    if (out.w && tz_out_close(&out) != 0) die_err();
    if (c.eval) {
        double fd = c.obj.fd ? fd_finish(&c, c.fd_ref ? &ref : NULL) : NAN;
        int acc_term = 0;
        for (int k = 0; k < c.obj.n; k++) {
            enum obj_kind kind = c.obj.t[k].kind;
            if (kind == OBJ_FD) {
                if (c.fd_ref) printf("fd\t%.10g\n", fd);
                continue;
            }
            double v = n ? sums[k] / n : NAN;
            if (kind == OBJ_ACC) { /* over samples, not a mean of the records' means */
                acc_term = 1;
                v = c.obj.acc_seen ? (double)c.obj.acc_right / (double)c.obj.acc_seen : NAN;
            }
            printf("%s\t%.10g\n", objective_term_name(&c.obj, k), v);
        }
        printf("total\t%.10g\n", n ? sums[OBJ_MAX_TERMS] / n : NAN);
        if (acc_n && !acc_term) printf("acc\t%.10g\n", acc_sum / acc_n);
        printf("records\t%ld\n", n);
    }
    fd_stats_free(&fds);
    fd_ref_free(&ref);
    tz_reader_close(r);
    if (tr) tz_reader_close(tr);
    return 0;
}
