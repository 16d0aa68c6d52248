/* optim - one optimizer update of a weights file from gradient files.
 *
 * Loads W (weights), G... (gradients, averaged when several: gradient
 * accumulation), STATE (created when absent) and the EMA file (created
 * when absent), checks them all, then runs lib/optim.c's optim_step and
 * optim_ema_update: the same code and arithmetic the training tools run
 * in-process in stream mode. Every output is written to a temporary file
 * and fsync'd before the first is renamed into place, so a failure leaves
 * all inputs as they were. See man/man1/optim.1.
 */
#include "cli.h"
#include "io.h"
#include "optim.h"
#include "optim_cli.h"
#include "st.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cmdline {
    const char *weights, *state, *ema;
    const char **grads;
    int ngrads;
    struct optim_cfg cfg;   /* the shared optimizer flags (optim_cli.h) */
    double ema_decay;
};

static void usage(void)
{
    printf("Usage: %s -w W.safetensors -g G.safetensors [-g G2 ...] -s STATE.safetensors [options]\n"
           "Apply one optimizer update to W with the gradients G (averaged when several),\n"
           "keeping the optimizer state in STATE (created when absent). Prints one line:\n"
           "step=N lr=X grad_norm=X update_norm=X\n\n"
           "  -w, --weights FILE   weights, updated in place (atomically)\n"
           "  -g, --grad FILE      gradients with the weights' names; repeat to average\n"
           "  -s, --state FILE     optimizer state: NAME.exp_avg, NAME.exp_avg_sq\n"
           "                       (NAME.momentum_buffer with --sgd), metadata step\n"
           "  --ema FILE           also update EMA weights in FILE (created from W)\n"
           "  --ema-decay X        EMA decay cap (0.999)\n"
           "  -j N                 threads (all cores)\n"
           "  -h, --version        this help; the version\n%s",
           tp_progname, optim_cli_usage);
    exit(0);
}

static void parse_cmdline(int argc, char **argv, struct cmdline *cl)
{
    enum { O_EMA = 256, O_EMADECAY, O_VERSION };
    static const struct option own[] = {
        {"weights", 1, 0, 'w'}, {"grad", 1, 0, 'g'},       {"state", 1, 0, 's'},
        {"ema", 1, 0, O_EMA},   {"ema-decay", 1, 0, O_EMADECAY},
        {"version", 0, 0, O_VERSION}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct option opts[64];
    options_append(opts, options_append(opts, 0, own), optim_cli_options);
    memset(cl, 0, sizeof *cl);
    optim_cfg_init(&cl->cfg);
    cl->ema_decay = 0.999;
    cl->grads = tp_calloc(argc, sizeof(char *));
    int c, threads = 0;
    while ((c = getopt_long(argc, argv, "w:g:s:j:h", opts, NULL)) != -1) {
        if (optim_cli_parse(&cl->cfg, c, optarg)) continue;
        switch (c) {
        case 'w': cl->weights = optarg; break;
        case 'g': cl->grads[cl->ngrads++] = optarg; break;
        case 's': cl->state = optarg; break;
        case 'j': threads = (int)cli_long("-j", optarg, 1, 4096); break;
        case 'h': usage(); break;
        case O_EMA: cl->ema = optarg; break;
        case O_EMADECAY: cl->ema_decay = cli_double("--ema-decay", optarg, 0, 1); break;
        case O_VERSION: cli_version(); break;
        default: die_usage("unknown option");
        }
    }
    if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
    if (!cl->weights) die_usage("missing -w WEIGHTS");
    if (!cl->ngrads) die_usage("missing -g GRADS");
    if (!cl->state) die_usage("missing -s STATE");
    const char *outs[3] = {cl->weights, cl->state, cl->ema};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3 + cl->ngrads; j++) {
            const char *b = j < 3 ? outs[j] : cl->grads[j - 3];
            if (outs[i] && b && j != i && strcmp(outs[i], b) == 0)
                die_usage("'%s' is given twice", b);
        }
    tp_threads_set(threads);
}

/* Load path; NULL when it does not exist (the first step). */
static struct st *load_if_there(const char *path)
{
    struct stat sb;
    struct st *s = NULL;
    if (stat(path, &sb) != 0 && errno == ENOENT) return NULL;
    if (st_load(&s, path) != 0) die_err();
    return s;
}

/* A new EMA file: the weights' metadata (the architecture) and no tensor
 * yet; optim_ema_update copies each tensor from the updated weights, as
 * the first EMA update does anyway (decay 0) and as stream mode does. */
static struct st *ema_new(const struct st *w)
{
    struct st *e = st_new();
    for (int i = 0; i < w->nmeta; i++) st_meta_set(e, w->meta_key[i], w->meta_val[i]);
    return e;
}

/* The update a file records next to the state's, if both are there; why
 * says what a difference means. */
static void check_same_step(const struct st *s, const char *path, const struct st *state,
                            const char *state_path, const char *why)
{
    long a, b;
    if (!st_meta_get(s, "step") || !st_meta_get(state, "step")) return;
    if (st_meta_get_long(s, "step", &a) != 0 || st_meta_get_long(state, "step", &b) != 0)
        die("%s: %s", path, tp_err());
    if (a != b)
        die("%s: step %ld, but %s has step %ld (%s)", path, a, state_path, b, why);
}

/* Write every file to its temporary name and fsync it, then rename them
 * all: any failure before the renames leaves every input as it was. */
static void save_all(const struct st *const *sets, const char *const *paths, int n)
{
    struct io_out out[3];
    TP_ASSERT(n <= 3);
    for (int i = 0; i < n; i++) {
        void *buf;
        size_t size;
        if (st_serialize(sets[i], &buf, &size) != 0) die("%s: %s", paths[i], tp_err());
        if (io_out_open(&out[i], paths[i]) != 0) die_err();
        int rc = io_write_all(out[i].fd, buf, size, paths[i]);
        free(buf);
        if (rc != 0) die_err();
        if (fsync(out[i].fd) != 0 && errno != EINVAL) die("%s: fsync: %s", paths[i], strerror(errno));
    }
    for (int i = 0; i < n; i++)
        if (io_out_commit(&out[i]) != 0) die_err();
}

int main(int argc, char **argv)
{
    cli_init(argc, argv);
    struct cmdline cl;
    parse_cmdline(argc, argv, &cl);
    struct optim *o = optim_new(&cl.cfg);
    if (!o) die_usage("%s", tp_err());

    struct st *w, *g = NULL;
    if (st_load(&w, cl.weights) != 0) die_err();
    w->put_order = 1; /* written back in the order it came in (params_load_file) */
    for (int i = 0; i < cl.ngrads; i++) {
        struct st *gi;
        if (st_load(&gi, cl.grads[i]) != 0) die_err();
        if (optim_check_grads(o, w, gi) != 0) die("%s: %s", cl.grads[i], tp_err());
        if (!g) {
            g = gi;
            continue;
        }
        if (optim_grads_accumulate(g, gi) != 0) die("%s: %s", cl.grads[i], tp_err());
        st_free(gi);
    }
    optim_grads_average(g, cl.ngrads);
    if (cl.ngrads > 1 && optim_check_finite(g) != 0)
        die("%s: the average overflows: %s", cl.grads[0], tp_err());

    struct st *state = load_if_there(cl.state), *ema = NULL;
    if (!state) state = st_new();
    if (optim_check_state(o, w, state) != 0) die("%s: %s", cl.state, tp_err());
    check_same_step(w, cl.weights, state, cl.state,
                    "an interrupted update? restore both from one checkpoint");
    if (cl.ema) {
        ema = load_if_there(cl.ema);
        if (!ema) ema = ema_new(w);
        ema->put_order = 1;
        check_same_step(ema, cl.ema, state, cl.state, "--ema left out of some updates?");
    }

    struct optim_report r;
    if (optim_step(o, w, g, state, &r) != 0) die("%s: %s", cl.weights, tp_err());
    if (ema && optim_ema_update(o, ema, w, r.step, cl.ema_decay) != 0)
        die("%s: %s", cl.ema, tp_err());

    const struct st *sets[3] = {w, state, ema};
    const char *paths[3] = {cl.weights, cl.state, cl.ema};
    save_all(sets, paths, ema ? 3 : 2);
    printf("step=%ld lr=%.9g grad_norm=%.9g update_norm=%.9g\n", r.step, r.lr, r.grad_norm,
           r.update_norm);
    if (fflush(stdout) != 0 || ferror(stdout)) die("stdout: %s", strerror(errno));

    st_free(w), st_free(g), st_free(state), st_free(ema);
    optim_free(o);
    free(cl.grads);
    return 0;
}
