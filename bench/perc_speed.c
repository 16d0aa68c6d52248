/* perc_speed.c - what the perceptual loss costs: loss and input gradient
 * of each architecture at its real size, with freshly initialised weights
 * (perceptual_create; the cost does not depend on the values).
 *
 * Usage: perc_speed [-j N] [REPS]      (best of REPS runs, default 2)
 * Prints a markdown table: network, batch, image size, ms per call of
 * perceptual_loss with the gradient, ms per image, and the activation
 * memory one image holds. Weights files go to $TMPDIR (default /tmp) and
 * are removed; convnext-s writes 200 MB there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "perc_impl.h"
#include "perceptual.h"
#include "rng.h"

struct cfg {
    const char *arch;
    int B, C, H;
};

static void bench(const struct cfg *c, int reps)
{
    char path[4096];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/perc_speed.%d.safetensors", dir ? dir : "/tmp", (int)getpid());
    struct st *m = st_new();
    st_meta_set(m, "arch", c->arch);
    struct perceptual *p;
    if (perceptual_create(path, m, 1) != 0 || perceptual_load(&p, path) != 0) die_err();
    unlink(path);
    st_free(m);
    const size_t n = (size_t)c->B * c->C * c->H * c->H;
    float *x = tp_malloc(n * sizeof(float)), *y = tp_malloc(n * sizeof(float)), *d = tp_calloc(n, sizeof(float));
    struct rng g;
    rng_seed(&g, 2);
    for (size_t i = 0; i < n; i++) x[i] = rng_uniform(&g), y[i] = rng_uniform(&g);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = tp_now();
        perceptual_loss(p, d, x, y, c->B, c->C, c->H, c->H, 1.0f);
        double t = tp_now() - t0;
        if (t < best) best = t;
    }
    const size_t acts = p->kind == PERC_CONVNEXT ? perc_convnext_acts_numel(&p->cnx, 1, p->resize)
                                                 : 2 * perc_vgg_acts_numel(&p->vgg, 1, c->H, c->H);
    printf("| %s | %d | %dx%dx%d%s | %.0f | %.1f | %.0f |\n", c->arch, c->B, c->C, c->H, c->H,
           p->kind == PERC_CONVNEXT ? " -> 3x224x224" : "", best * 1e3, best * 1e3 / c->B,
           acts * sizeof(float) / 1e6);
    fflush(stdout);
    free(x), free(y), free(d);
    perceptual_free(p);
}

int main(int argc, char **argv)
{
    cli_init(argc, argv);
    int o;
    while ((o = getopt(argc, argv, "j:")) != -1) {
        if (o == 'j') tp_threads_set((int)cli_long("-j", optarg, 1, 1024));
        else die_usage("unknown option");
    }
    const int reps = optind < argc ? (int)cli_long("REPS", argv[optind], 1, 1000) : 2;
    static const struct cfg cfgs[] = {
        {PERC_DEFAULT_ARCH, 32, 1, 32},
        {"lpips-vgg16", 32, 1, 32},
        {"lpips-vgg16", 1, 3, 224},
        {"convnext-s", 1, 1, 32},
        {"convnext-s", 2, 3, 256},
    };
    printf("| network | batch | images | ms per call | ms per image | activations MB per image |\n");
    printf("|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) bench(&cfgs[i], reps);
    return 0;
}
