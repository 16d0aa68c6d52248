/* perc_sharpen.c - does the perceptual loss sharpen reconstructions? The
 * same small convolutional autoencoder is trained from the same init on
 * the same batches with L2 alone and with L2 + w * perceptual, for each w
 * given, and its reconstructions of held-out images are measured.
 *
 * Usage: perc_sharpen [options] TRAIN.tz TEST.tz PERCEP.safetensors
 *   --steps N     updates per run (1500)        --batch N   images per update (32)
 *   --weights L   perceptual weights, comma-separated, 0 = L2 alone ("0,0.1,1")
 *   --train N     training images read from TRAIN.tz (16384)
 *   --test N      held-out images from TEST.tz (1000)
 *   --latent N    latent channels of the 8x8 bottleneck (2)
 *   --seed N      init and batch order (0)      -j N        threads
 *   --dump PFX    write the first 16 held-out reconstructions of each run to
 *                 PFX-w<W>.tz (and the originals to PFX-target.tz) for patch2img
 *
 * Autoencoder (seqnet.h, 3x3 SAME convs with bias, SiLU): C -> 16, pool,
 * 16 -> 32, pool, 32 -> latent (H/4 x W/4), then latent -> 32, up, 32 -> 16,
 * up, 16 -> C. AdamW lr 2e-3, betas (0.9, 0.999), no weight decay, cosine
 * to 2e-5 after 50 warmup steps.
 *
 * Measures on the held-out images, reconstructions clamped to [0,1]:
 *   PSNR      mean over images of 10 log10(1 / MSE)
 *   SSIM      Wang et al., Gaussian window 11 / sigma 1.5, C1 = 0.01^2,
 *             C2 = 0.03^2, over the window positions inside the image
 *   grad      sum |forward differences|^2 of the reconstructions over the
 *             same for the originals (1: as much edge energy; blur < 1)
 *   HF        the same ratio for the 5-point Laplacian (finer detail)
 *   percep    the perceptual distance itself (the trained objective of the
 *             w > 0 runs, so not an independent judge; shown for scale)
 * Prints a markdown table, one row per run.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "loss.h"
#include "optim.h"
#include "params.h"
#include "perceptual.h"
#include "seqnet.h"
#include "tz.h"

struct set {
    int C, H, W;
    long n;
    float *x;
};

static void load_images(struct set *s, const char *path, long want)
{
    struct tz_reader *r = tz_reader_open_path(path);
    if (!r) die_err();
    struct st *rec;
    int rc;
    memset(s, 0, sizeof *s);
    while (s->n < want && (rc = tz_reader_next(r, &rec)) == 1) {
        const struct st_tensor *t = st_require(rec, "image", ST_F32, 4);
        if (!t) die("%s: %s", path, tp_err());
        if (!s->x) {
            s->C = (int)t->shape[1], s->H = (int)t->shape[2], s->W = (int)t->shape[3];
            s->x = tp_malloc((size_t)want * s->C * s->H * s->W * sizeof(float));
        }
        const size_t per = (size_t)s->C * s->H * s->W;
        if ((size_t)(st_numel(t) / t->shape[0]) != per) die("%s: images of different sizes", path);
        long k = t->shape[0] < want - s->n ? t->shape[0] : want - s->n;
        memcpy(s->x + s->n * per, t->data, k * per * sizeof(float));
        s->n += k;
        st_free(rec);
    }
    if (rc < 0) die_err();
    tz_reader_close(r);
    if (s->n == 0) die("%s: no images", path);
}

static void ae_build(struct seqnet *net, struct params *p, int C, int H, int W, int latent)
{
    params_init_table(p);
    seqnet_init(net, C, H, W);
    seqnet_conv(net, p, "enc.0.", 16, 3, 1), seqnet_silu(net), seqnet_pool(net);
    seqnet_conv(net, p, "enc.1.", 32, 3, 1), seqnet_silu(net), seqnet_pool(net);
    seqnet_conv(net, p, "enc.2.", latent, 3, 1);
    seqnet_conv(net, p, "dec.0.", 32, 3, 1), seqnet_silu(net), seqnet_up(net);
    seqnet_conv(net, p, "dec.1.", 16, 3, 1), seqnet_silu(net), seqnet_up(net);
    seqnet_conv(net, p, "dec.2.", C, 3, 1);
    params_alloc(p);
    seqnet_bind(net, p);
}

/* ---- measures ------------------------------------------------------------- */

static double ssim_plane(const float *a, const float *b, int H, int W)
{
    double g[11], gs = 0;
    for (int i = 0; i < 11; i++) gs += g[i] = exp(-(i - 5) * (i - 5) / (2 * 1.5 * 1.5));
    const double C1 = 1e-4, C2 = 9e-4;
    double sum = 0;
    int cnt = 0;
    for (int y = 0; y + 11 <= H; y++)
        for (int x = 0; x + 11 <= W; x++) {
            double ma = 0, mb = 0, va = 0, vb = 0, cab = 0;
            for (int i = 0; i < 11; i++)
                for (int j = 0; j < 11; j++) {
                    const double w = g[i] * g[j] / (gs * gs), u = a[(y + i) * W + x + j], v = b[(y + i) * W + x + j];
                    ma += w * u, mb += w * v, va += w * u * u, vb += w * v * v, cab += w * u * v;
                }
            va -= ma * ma, vb -= mb * mb, cab -= ma * mb;
            sum += (2 * ma * mb + C1) * (2 * cab + C2) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
            cnt++;
        }
    return sum / cnt;
}

/* edge energy (forward differences) and Laplacian energy of one plane */
static void energies(const float *a, int H, int W, double *grad, double *lap)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const double v = a[y * W + x];
            if (x + 1 < W) *grad += (a[y * W + x + 1] - v) * (a[y * W + x + 1] - v);
            if (y + 1 < H) *grad += (a[(y + 1) * W + x] - v) * (a[(y + 1) * W + x] - v);
            if (x > 0 && y > 0 && x + 1 < W && y + 1 < H) {
                const double l = a[y * W + x - 1] + a[y * W + x + 1] + a[(y - 1) * W + x] + a[(y + 1) * W + x] - 4 * v;
                *lap += l * l;
            }
        }
}

struct result {
    double psnr, ssim, grad, hf, percep, secs, train_l2, train_percep;
};

static void evaluate(struct result *res, struct seqnet *net, struct perceptual *pc, const struct set *t,
                     float *recon)
{
    const int C = t->C, H = t->H, W = t->W, bs = 100;
    const size_t per = (size_t)C * H * W;
    double psnr = 0, ssim = 0, gr = 0, gt = 0, lr = 0, lt = 0, pd = 0;
    for (long b0 = 0; b0 < t->n; b0 += bs) {
        const int n = (int)(t->n - b0 < bs ? t->n - b0 : bs);
        const float *x = t->x + b0 * per;
        const float *out = seqnet_forward(net, x, n, 0);
        float *r = recon + b0 * per;
        for (size_t i = 0; i < n * per; i++) r[i] = out[i] < 0 ? 0 : out[i] > 1 ? 1 : out[i];
        pd += n * perceptual_loss(pc, NULL, r, x, n, C, H, W, 1.0f);
        for (int i = 0; i < n; i++) {
            double mse = 0;
            for (size_t k = 0; k < per; k++) mse += (r[i * per + k] - x[i * per + k]) * (r[i * per + k] - x[i * per + k]);
            psnr += 10 * log10(1.0 / fmax(mse / per, 1e-10));
            for (int c = 0; c < C; c++) {
                const float *pa = r + i * per + (size_t)c * H * W, *pb = x + i * per + (size_t)c * H * W;
                ssim += ssim_plane(pa, pb, H, W) / C;
                energies(pa, H, W, &gr, &lr);
                energies(pb, H, W, &gt, &lt);
            }
        }
    }
    res->psnr = psnr / t->n, res->ssim = ssim / t->n;
    res->grad = gr / gt, res->hf = lr / lt, res->percep = pd / t->n;
}

static void dump(const char *pfx, const char *tag, const float *x, int C, int H, int W)
{
    char path[4096];
    snprintf(path, sizeof path, "%s-%s.tz", pfx, tag);
    struct st *rec = st_new();
    float *d = st_put_v(rec, "image", ST_F32, 4, 16, C, H, W)->data;
    memcpy(d, x, (size_t)16 * C * H * W * sizeof(float));
    FILE *f = fopen(path, "wb");
    if (!f) die("%s: cannot write", path);
    struct tz_writer *w = tz_writer_open(fileno(f), path, 3, 0);
    if (!w || tz_writer_put(w, rec) != 0 || tz_writer_close(w) != 0) die_err();
    fclose(f);
    st_free(rec);
}

static void run(struct result *res, double w, const struct set *tr, const struct set *te, struct perceptual *pc,
                int steps, int batch, int latent, uint64_t seed, const char *pfx)
{
    const int C = tr->C, H = tr->H, W = tr->W;
    const size_t per = (size_t)C * H * W;
    struct seqnet net;
    struct params p;
    ae_build(&net, &p, C, H, W, latent);
    params_fill_init(&p, seed);
    struct optim_cfg oc;
    optim_cfg_init(&oc);
    oc.lr = 2e-3, oc.beta2 = 0.999, oc.wd = 0;
    oc.schedule = OPTIM_COSINE, oc.warmup = steps > 500 ? 50 : steps / 10, oc.total = steps, oc.end_lr = 2e-5;
    struct optim *o = optim_new(&oc);
    if (!o) die_err();
    struct st *wv = st_new(), *gv = st_new(), *state = st_new();
    params_view(&p, wv, 0);
    params_view(&p, gv, 1);
    float *x = tp_malloc(batch * per * sizeof(float)), *dout = tp_malloc(batch * per * sizeof(float));
    int64_t *perm = tp_malloc(tr->n * sizeof(int64_t));
    struct rng g;
    rng_seed(&g, seed + 1);
    long pos = tr->n;
    double t0 = tp_now(), l2 = 0, lp = 0;
    int win = 0;
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < batch; i++) {
            if (pos == tr->n) rng_permutation(&g, perm, tr->n), pos = 0;
            memcpy(x + i * per, tr->x + perm[pos++] * per, per * sizeof(float));
        }
        params_zero_grad(&p);
        const float *out = seqnet_forward(&net, x, batch, 1);
        memset(dout, 0, batch * per * sizeof(float));
        const double a = loss_mse(dout, out, x, batch * per, 1.0f);
        const double b = w > 0 ? perceptual_loss(pc, dout, out, x, batch, C, H, W, (float)w) : 0;
        if (!isfinite(a) || !isfinite(b)) die("step %d: loss %g %g", s, a, b);
        seqnet_backward(&net, NULL, dout, x);
        struct optim_report rep;
        if (optim_step(o, wv, gv, state, &rep) != 0) die_err();
        if (s >= steps - 100) l2 += a, lp += b, win++;
    }
    res->secs = tp_now() - t0;
    res->train_l2 = l2 / win, res->train_percep = lp / win;
    float *recon = tp_malloc(te->n * per * sizeof(float));
    evaluate(res, &net, pc, te, recon);
    if (pfx) {
        char tag[64];
        snprintf(tag, sizeof tag, "w%g", w);
        dump(pfx, tag, recon, C, H, W);
    }
    free(recon), free(x), free(dout), free(perm);
    st_free(wv), st_free(gv), st_free(state);
    optim_free(o);
    seqnet_free(&net);
    params_free(&p);
}

int main(int argc, char **argv)
{
    cli_init(argc, argv);
    long steps = 1500, batch = 32, ntrain = 16384, ntest = 1000, latent = 2, seed = 0;
    const char *weights = "0,0.1,1", *pfx = NULL;
    static const struct option opts[] = {
        {"steps", required_argument, 0, 's'}, {"batch", required_argument, 0, 'b'},
        {"weights", required_argument, 0, 'w'}, {"train", required_argument, 0, 'n'},
        {"test", required_argument, 0, 't'}, {"latent", required_argument, 0, 'l'},
        {"seed", required_argument, 0, 'S'}, {"dump", required_argument, 0, 'd'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': steps = cli_long("--steps", optarg, 1, 10000000); break;
        case 'b': batch = cli_long("--batch", optarg, 1, 4096); break;
        case 'w': weights = optarg; break;
        case 'n': ntrain = cli_long("--train", optarg, 1, 1 << 24); break;
        case 't': ntest = cli_long("--test", optarg, 16, 1 << 24); break;
        case 'l': latent = cli_long("--latent", optarg, 1, 1024); break;
        case 'S': seed = cli_long("--seed", optarg, 0, __LONG_MAX__); break;
        case 'd': pfx = optarg; break;
        case 'j': tp_threads_set((int)cli_long("-j", optarg, 1, 1024)); break;
        case 'h': printf("Usage: %s [options] TRAIN.tz TEST.tz PERCEP.safetensors (see the source)\n", tp_progname); return 0;
        default: die_usage("unknown option");
        }
    }
    if (argc - optind != 3) die_usage("expected TRAIN.tz TEST.tz PERCEP.safetensors");
    struct set tr, te;
    load_images(&tr, argv[optind], ntrain);
    load_images(&te, argv[optind + 1], ntest);
    if (te.n < 16 || te.C != tr.C || te.H != tr.H || te.W != tr.W) die("test images must match the training ones");
    struct perceptual *pc;
    if (perceptual_load(&pc, argv[optind + 2]) != 0) die_err();
    if (perceptual_check(pc, tr.C, tr.H, tr.W) != 0) die_err();
    if (pfx) dump(pfx, "target", te.x, te.C, te.H, te.W);
    printf("Autoencoder %dx%dx%d -> %ldx%dx%d -> %dx%dx%d, %ld steps of %ld, %ld training and %ld held-out images, "
           "perceptual network %s (%s).\n\n",
           tr.C, tr.H, tr.W, latent, tr.H / 4, tr.W / 4, tr.C, tr.H, tr.W, steps, batch, tr.n, te.n,
           perceptual_arch(pc), argv[optind + 2]);
    printf("| loss | PSNR dB | SSIM | grad energy | HF energy | percep dist | train L2 | train s |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (const char *s = weights; *s;) {
        char *end;
        double w = strtod(s, &end);
        if (end == s || w < 0) die_usage("--weights: expected non-negative numbers");
        struct result r;
        run(&r, w, &tr, &te, pc, (int)steps, (int)batch, (int)latent, (uint64_t)seed, pfx);
        char name[64];
        if (w > 0) snprintf(name, sizeof name, "L2 + %g perceptual", w);
        else snprintf(name, sizeof name, "L2 alone");
        printf("| %s | %.2f | %.4f | %.3f | %.3f | %.4f | %.5f | %.0f |\n", name, r.psnr, r.ssim, r.grad, r.hf,
               r.percep, r.train_l2, r.secs);
        fflush(stdout);
        s = *end == ',' ? end + 1 : end;
    }
    perceptual_free(pc);
    free(tr.x), free(te.x);
    return 0;
}
