/* loss - the loss stage of a training pipeline: reads predictions, writes
 * the gradient stream of the prediction, logs the loss values (TSV).
 *
 *   loss KIND[:WEIGHT]... [--pred F] [--target F] [--log FILE] < pred.tz > pred.grad.tz
 *
 * The arithmetic is lib/objective.c's (and lib/loss.c's). */
#include "cli.h"
#include "io.h"
#include "objective.h"
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
};

enum { O_PRED = 0x100, O_TARGET, O_MASK, O_SMOOTH, O_UNMASKED, O_TARGET_FILE, O_LOG, O_STEPS,
       O_START, O_PROGRESS, O_EVAL, O_VERSION };

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
           "  psnr, ssim           metrics of pred against target images (with --eval only)\n"
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
           "  -i FILE, -o FILE, -l LEVEL, -j N, --progress, -h, --version\n");
    exit(0);
}

static void parse(struct cmdline *c, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    objective_init(&c->obj);
    c->level = 1; /* gradients are floats: a low level is as small and faster */
    int o;
    while ((o = getopt_long(argc, argv, "i:o:l:j:h", options, NULL)) != -1) {
        switch (o) {
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
    return strncmp(k, "loss.", 5) == 0 || strncmp(k, "lr.", 3) == 0 || strncmp(k, "vq.", 3) == 0;
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
    struct io_out out;
    struct tz_writer *w = NULL;
    if (!c.eval) {
        if (!c.out && isatty(STDOUT_FILENO)) die_usage("refusing to write a stream to a terminal (use -o)");
        if (io_out_open(&out, c.out) != 0) die_err();
        w = tz_writer_open(out.fd, io_out_name(&out), c.level, 0);
    }
    struct logf lg = {0};
    struct progress p;
    progress_init(&p, "steps", c.steps > 0 ? c.steps : -1, c.progress);
    double sums[OBJ_MAX_TERMS + 1] = {0};
    long n = 0;
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
        struct st *g = st_new();
        if (objective_eval(&c.obj, rec, g) != 0)
            die("%s: record %ld: %s", tz_reader_name(r), tz_reader_index(r) - 1, tp_err());
        if (!isfinite(c.obj.total))
            die("%s: record %ld: the loss is not finite (%g)", tz_reader_name(r), tz_reader_index(r) - 1, c.obj.total);
        if (n == 0) log_open(&lg, &c, rec);
        log_row(&lg, &c, rec, step);
        for (int k = 0; k < c.obj.n; k++) sums[k] += c.obj.t[k].value;
        sums[OBJ_MAX_TERMS] += c.obj.total;
        if (w && tz_writer_put(w, g) != 0) die_err();
        st_free(g);
        st_free(rec);
        n++;
        snprintf(p.note, sizeof p.note, "loss %.4g", c.obj.total);
        progress_step(&p, 1);
    }
    if (rc < 0) die_err();
    progress_end(&p);
    log_close(&lg, c.log);
    if (w) {
        if (tz_writer_close(w) != 0) die_err();
        if (io_out_commit(&out) != 0) die_err();
    }
    if (c.eval) {
        for (int k = 0; k < c.obj.n; k++)
            printf("%s\t%.10g\n", objective_term_name(&c.obj, k), n ? sums[k] / n : NAN);
        printf("total\t%.10g\nrecords\t%ld\n", n ? sums[OBJ_MAX_TERMS] / n : NAN, n);
    }
    tz_reader_close(r);
    if (tr) tz_reader_close(tr);
    return 0;
}
