/* bench_train.c - the compute of a vqgan-tiny training step, in one process
 * (lib/chain.c: no pipes, no compression, no process starts), so bench/run.sh
 * can split the step time of the tools into compute and the rest.
 *
 * Usage: bench_train DATA.tz STEPS BATCH CHANNELS
 * Prints "ms_per_step N" over STEPS steps after one warm-up step. */
#include <stdio.h>
#include <stdlib.h>

#include "chain.h"
#include "cli.h"
#include "tz.h"
#include "vqgan.h"
#include "vqmod.h"

static struct st *meta_of(const char *const *kv)
{
    struct st *m = st_new();
    for (; kv[0]; kv += 2) st_meta_set(m, kv[0], kv[1]);
    return m;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_train DATA.tz STEPS BATCH CHANNELS\n");
        return 2;
    }
    cli_init(argc, argv);
    int steps = atoi(argv[2]);
    if (steps < 1) die_usage("STEPS must be 1 or more");
    const char *B = argv[3], *ch = argv[4];
    tp_threads_set(0);
    const char *enc[] = {"arch", "vqgan-encoder", "channels", ch, "resolution", "32", "hidden", "32",
                         "mult", "1,1,2", "res_blocks", "1", "z", "32", NULL};
    const char *dec[] = {"arch", "vqgan-decoder", "channels", ch, "resolution", "32", "hidden", "32",
                         "mult", "1,1,2", "res_blocks", "1", "z", "32", NULL};
    const char *vqm[] = {"arch", "vq", "codes", "1024", "dim", "32", NULL};
    const struct module_ops *const eo[] = {&vqgan_encoder_ops, NULL}, *const vo[] = {&vq_module_ops, NULL},
                                  *const dof[] = {&vqgan_decoder_ops, NULL};
    struct module m[3];
    struct st *metas[3] = {meta_of(enc), meta_of(vqm), meta_of(dec)};
    const struct module_ops *const *ops[3] = {eo, vo, dof};
    for (int k = 0; k < 3; k++) {
        if (module_build(&m[k], ops[k], metas[k]) != 0) {
            fprintf(stderr, "bench_train: %s\n", tp_err());
            return 1;
        }
        params_fill_init(&m[k].params, 1 + (uint64_t)k);
    }
    struct optim_cfg oc;
    optim_cfg_init(&oc);
    struct optim *opt = optim_new(&oc);
    struct objective obj;
    objective_init(&obj);
    objective_add(&obj, "mse");
    struct chain c;
    struct module *mp[3] = {&m[0], &m[1], &m[2]};
    chain_init(&c, mp, 3, opt, &obj);
    /* batches of BATCH images from the start of the data */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "tz head -n 8 %s 2>/dev/null | tz batch %s 2>/dev/null | tz head -n %d", argv[1], B,
             steps + 1);
    FILE *f = popen(cmd, "r");
    if (!f) die("popen: %s", cmd);
    struct tz_reader *r = tz_reader_open(fileno(f), "data");
    struct st *rec;
    double t0 = 0;
    int n = 0, rc;
    while ((rc = tz_reader_next(r, &rec)) == 1) {
        if (n == 1) t0 = tp_now(); /* the first step allocates: not counted */
        if (chain_step(&c, rec) != 0) {
            fprintf(stderr, "bench_train: %s\n", tp_err());
            return 1;
        }
        st_free(rec);
        n++;
    }
    double t = tp_now() - t0;
    if (rc < 0) die_err();
    tz_reader_close(r);
    /* a time over fewer steps than asked (tz missing from PATH, short data) is no figure */
    if (pclose(f) != 0 || n != steps + 1) die("%s: %d batches of the %d asked (is tz on PATH?)", argv[1], n, steps + 1);
    printf("ms_per_step %.1f\n", 1e3 * t / (n - 1));
    chain_free(&c);
    for (int k = 0; k < 3; k++) module_free(&m[k]), st_free(metas[k]);
    optim_free(opt);
    return 0;
}
