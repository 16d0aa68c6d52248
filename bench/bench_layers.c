/* bench_layers.c - forward+backward speed of each layer against this
 * machine's sgemm peak, measured in the same run.
 *
 * Usage: bench_layers [REPS]
 * Prints markdown table rows: layer, shape, GFLOP per fwd+bwd, ms, GFLOP/s,
 * share of the sgemm peak, and (for the matrix layers) share of the raw
 * sgemm calls of the same shapes: the layer's own calls, recorded and
 * replayed alone (convolutions: the products of im2col). Times are the best of REPS runs (a
 * matrix layer's runs each followed by a replay of its calls); the
 * peak is the best of the sgemm 1024^3 runs made before and between the
 * layers' runs.
 * FLOPs count multiply-adds as 2; backward of a matmul is 2x its forward.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "blas.h"
#include "block.h"
#include "cli.h"
#include "conv2d.h"
#include "groupnorm.h"
#include "layernorm.h"
#include "linear.h"
#include "params.h"
#include "resblock.h"
#include "rng.h"

static int reps = 5;

static float *buf(size_t n, struct rng *r)
{
    float *p = tp_aligned_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform(r) - 0.5f;
    return p;
}

/* The layer's best time over REPS runs (after one warm-up), each run right
 * after a run of the sgemm 1024^3 that gives the peak: the machine (a
 * shared virtual one) drifts by 20% within minutes, and the peak is the
 * best of all those runs, measured while the layers were. */
#define BEST(expr) BEST_THEN(expr, (void)0)
/* The same with `then` after each run, untimed (rep_ > 0: a timed one) */
#define BEST_THEN(expr, then)                             \
    ({                                                    \
        double best_ = 1e30;                              \
        for (int rep_ = 0; rep_ < reps + 1; rep_++) {     \
            peak_run();                                   \
            double t0_ = tp_now();                        \
            expr;                                         \
            double t_ = tp_now() - t0_;                   \
            if (rep_ > 0 && t_ < best_) best_ = t_;       \
            then;                                         \
        }                                                 \
        best_;                                            \
    })

/* C[M,N] = A[M,K] B[K,N], row-major, no transposes */
static double sgemm_once(int M, int N, int K, const float *a, const float *b, float *c)
{
    double t0 = tp_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, a, K, b, N, 0, c, N);
    return tp_now() - t0;
}

static double sgemm_time(int M, int N, int K, struct rng *r)
{
    float *a = buf((size_t)M * K, r), *b = buf((size_t)K * N, r), *c = buf((size_t)M * N, r);
    double best = 1e30;
    for (int rep = 0; rep < reps + 1; rep++) {
        double t = sgemm_once(M, N, K, a, b, c);
        if (rep > 0 && t < best) best = t;
    }
    free(a), free(b), free(c);
    return best;
}

/* The time of a layer's own sgemm calls alone (recorded by tp_sgemm_record
 * during one run of `expr`), replayed as the layer made them: the calls
 * made inside a parallel region in a parallel loop, one thread's product
 * beside the other's, the rest one after another with the threads inside
 * sgemm; each call on buffers of its own sizes (BEST_WITH_SGEMM). */
#define MAX_CALLS 4096
static struct tp_sgemm_call calls[MAX_CALLS];

static void call_once(const struct tp_sgemm_call *c, const float *a, const float *b, float *out)
{
    cblas_sgemm(CblasRowMajor, c->ta ? CblasTrans : CblasNoTrans, c->tb ? CblasTrans : CblasNoTrans, c->M, c->N,
                c->K, 1, a, c->lda, b, c->ldb, c->accumulate ? 1 : 0, out, c->ldc);
}

/* A recorded run's calls on buffers of their own sizes, replayed (once:
 * its time) and freed. */
struct replay {
    int n;
    float **a, **b, **c;
};

static struct replay replay_new(int n, struct rng *r)
{
    TP_ASSERT(n <= MAX_CALLS);
    struct replay rp = {n, malloc(n * sizeof(float *)), malloc(n * sizeof(float *)), malloc(n * sizeof(float *))};
    for (int i = 0; i < n; i++) {
        const struct tp_sgemm_call *k = &calls[i];
        rp.a[i] = buf((size_t)(k->ta ? k->K : k->M) * k->lda, r);
        rp.b[i] = buf((size_t)(k->tb ? k->N : k->K) * k->ldb, r);
        rp.c[i] = buf((size_t)k->M * k->ldc, r);
    }
    return rp;
}

static double replay_once(const struct replay *rp)
{
    double t0 = tp_now();
    for (int i = 0; i < rp->n;) {
        int j = i + 1;
        if (calls[i].in_parallel) {
            while (j < rp->n && calls[j].in_parallel) j++;
#pragma omp parallel for schedule(static)
            for (int k = i; k < j; k++) call_once(&calls[k], rp->a[k], rp->b[k], rp->c[k]);
        } else {
            call_once(&calls[i], rp->a[i], rp->b[i], rp->c[i]);
        }
        i = j;
    }
    return tp_now() - t0;
}

static void replay_free(struct replay *rp)
{
    for (int i = 0; i < rp->n; i++) free(rp->a[i]), free(rp->b[i]), free(rp->c[i]);
    free(rp->a), free(rp->b), free(rp->c);
}

/* BEST with the layer's own sgemm calls (recorded during a first run of
 * `expr`) replayed right after each of its runs, so that both bests come
 * from the same moments of the machine: one `make bench` read the ViT
 * block at 135 ms against 105 for its calls replayed a little later, 78%,
 * where runs that timed both in the same spells gave 98-102%. *ts_ gets
 * the replay's best. */
#define BEST_WITH_SGEMM(rng, ts_, expr)                                          \
    ({                                                                           \
        tp_sgemm_record(calls, MAX_CALLS);                                       \
        expr;                                                                    \
        struct replay rp_ = replay_new(tp_sgemm_record(NULL, 0), rng);           \
        double best_s_ = 1e30;                                                   \
        double best_t_ = BEST_THEN(expr, {                                       \
            double s_ = replay_once(&rp_);                                       \
            if (rep_ > 0 && s_ < best_s_) best_s_ = s_;                          \
        });                                                                      \
        replay_free(&rp_);                                                       \
        *(ts_) = best_s_;                                                        \
        best_t_;                                                                 \
    })

/* The peak: sgemm 1024^3 on buffers kept for the run, the best run kept. */
#define PN 1024
static float *pa, *pb, *pc;
static double best_peak_t = 1e30;

/* timed warm: the first run after a layer starts on caches the layer filled */
static void peak_run(void)
{
    sgemm_once(PN, PN, PN, pa, pb, pc);
    double t = sgemm_once(PN, PN, PN, pa, pb, pc);
    if (t < best_peak_t) best_peak_t = t;
}

/* Rows are printed at the end, against the best peak of the whole run. */
struct row {
    char text[160];
    double gf, sgemm_share;
};
static struct row rows[16];
static int nrows;

static void row(const char *layer, const char *shape, double flop, double t, double sgemm_t)
{
    struct row *w = &rows[nrows++];
    w->gf = flop / t / 1e9;
    w->sgemm_share = sgemm_t > 0 ? sgemm_t / t : 0;
    snprintf(w->text, sizeof w->text, "| %s | %s | %.2f | %.2f | %.1f |", layer, shape, flop / 1e9, t * 1e3, w->gf);
}

static void print_rows(void)
{
    double peak = 2.0 * PN * PN * PN / best_peak_t / 1e9;
    printf("sgemm peak (1024^3, %d threads): %.1f GFLOP/s\n\n", tp_threads(), peak);
    printf("| layer | shape | GFLOP | ms | GFLOP/s | of peak | of same-shape sgemm |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < nrows; i++) {
        const struct row *w = &rows[i];
        printf("%s %.0f%% |", w->text, 100 * w->gf / peak);
        if (w->sgemm_share > 0) printf(" %.0f%% |\n", 100 * w->sgemm_share);
        else printf(" - |\n");
    }
}

int main(int argc, char **argv)
{
    if (argc > 1) reps = atoi(argv[1]);
    tp_threads_set(0);
    struct rng r;
    rng_seed(&r, 1);
    pa = buf((size_t)PN * PN, &r), pb = buf((size_t)PN * PN, &r), pc = buf((size_t)PN * PN, &r);
    for (int rep = 0; rep < reps + 1; rep++) peak_run();

    /* linear: titok-tiny MLP fc, B=32 T=97 C=256 -> 1024 */
    {
        int BT = 32 * 97, C = 256, OC = 1024;
        float *x = buf((size_t)BT * C, &r), *w = buf((size_t)OC * C, &r), *b = buf(OC, &r);
        float *y = buf((size_t)BT * OC, &r), *dy = buf((size_t)BT * OC, &r);
        float *dx = buf((size_t)BT * C, &r), *dw = buf((size_t)OC * C, &r), *db = buf(OC, &r);
        double ts, t = BEST_WITH_SGEMM(&r, &ts, (linear_forward(y, x, w, b, BT, C, OC),
                                                  linear_backward(dx, dw, db, dy, x, w, BT, C, OC)));
        row("linear", "3104x256 -> 1024", 6.0 * BT * C * OC, t, ts);
        free(x), free(w), free(b), free(y), free(dy), free(dx), free(dw), free(db);
    }
    double conv_sgemm_t = 0; /* the conv2d row's im2col products, for the ResBlock's */
    /* attention: B=32 T=97 C=256 NH=4 */
    {
        int B = 32, T = 97, C = 256, NH = 4;
        size_t n = (size_t)B * T * C;
        float *x = buf(n, &r), *y = buf(n, &r), *dy = buf(n, &r), *dx = buf(n, &r);
        float *wi = buf(3 * C * C, &r), *bi = buf(3 * C, &r), *wo = buf(C * C, &r), *bo = buf(C, &r);
        float *dwi = buf(3 * C * C, &r), *dbi = buf(3 * C, &r), *dwo = buf(C * C, &r), *dbo = buf(C, &r);
        struct attention_params p = {wi, bi, wo, bo}, dp = {dwi, dbi, dwo, dbo};
        struct attention_acts a, s;
        float *am = tp_aligned_alloc(attention_acts_floats(B, T, C, NH, 0) * sizeof(float));
        float *sm = tp_aligned_alloc(attention_acts_floats(B, T, C, NH, 0) * sizeof(float));
        attention_acts_point(&a, am, B, T, C, NH, 0);
        attention_acts_point(&s, sm, B, T, C, NH, 0);
        double ts, t = BEST_WITH_SGEMM(&r, &ts, (attention_forward(y, &a, x, &p, B, T, C, NH, 0, 0),
                                                  attention_backward(dx, &dp, &s, dy, x, &p, &a, B, T, C, NH, 0, 0)));
        double fwd = 2.0 * B * T * C * 4 * C + 4.0 * B * T * T * C;
        row("attention", "B32 T97 C256 NH4", 3 * fwd, t, ts);
        free(x), free(y), free(dy), free(dx), free(wi), free(bi), free(wo), free(bo);
        free(dwi), free(dbi), free(dwo), free(dbo), free(am), free(sm);
    }
    /* pre-LN ViT block, titok-tiny shape */
    {
        int B = 32, T = 97, C = 256;
        struct block_cfg cfg = {.kind = BLOCK_PRE_LN, .C = C, .NH = 4, .F = 4 * C, .eps = 1e-5f};
        struct params pr;
        params_init_table(&pr);
        block_params_add(&pr, "", &cfg);
        params_alloc(&pr);
        params_fill_init(&pr, 1);
        struct block_params w, dw;
        block_params_point(&w, pr.data, &cfg);
        block_params_point(&dw, pr.grad, &cfg);
        struct block_acts a, s;
        float *am = tp_aligned_alloc(block_acts_floats(&cfg, B, T, 1) * sizeof(float));
        float *sm = tp_aligned_alloc(block_acts_floats(&cfg, B, T, 0) * sizeof(float));
        block_acts_point(&a, am, &cfg, B, T, 1);
        block_acts_point(&s, sm, &cfg, B, T, 0);
        size_t n = (size_t)B * T * C;
        float *x = buf(n, &r), *y = buf(n, &r), *dy = buf(n, &r), *dx = buf(n, &r);
        double ts, t = BEST_WITH_SGEMM(&r, &ts, (block_forward(y, &a, x, &w, &cfg, B, T, 1, 0),
                                                  block_backward(dx, &dw, &s, dy, x, &w, &a, &cfg, B, T, 1, 0)));
        double fwd = 2.0 * B * T * (4.0 * C * C + 2.0 * C * cfg.F) + 4.0 * B * T * T * C;
        row("ViT block (pre-LN)", "B32 T97 C256 NH4", 3 * fwd, t, ts);
        printf("VIT_BLOCK_MS %.3f\n", t * 1e3); /* for run.sh, which takes it out of the table */
        params_free(&pr);
        free(am), free(sm), free(x), free(y), free(dy), free(dx);
    }
    /* conv 3x3 SAME, the vqgan-tiny middle level */
    {
        int B = 32, C = 64, H = 16;
        struct conv2d_shape cs = conv2d_shape_same(B, C, H, H, C, 3, 3, 1, 1);
        size_t n = conv2d_inp_numel(&cs), nw = conv2d_weight_numel(&cs);
        float *x = buf(n, &r), *y = buf(n, &r), *dy = buf(n, &r), *dx = buf(n, &r);
        float *w = buf(nw, &r), *dw = buf(nw, &r);
        double t = BEST((conv2d_forward(y, x, w, NULL, &cs), conv2d_backward(dx, dw, NULL, dy, x, w, &cs)));
        /* the tile kernels call no sgemm: the products of im2col instead,
         * one an image, three times (forward, dinp, dweight) */
        conv_sgemm_t = 3 * sgemm_time(C, H * H, C * 9, &r) * B;
        row("conv2d 3x3", "B32 64->64 16x16", 6.0 * B * C * C * 9 * H * H, t, conv_sgemm_t);
        free(x), free(y), free(dy), free(dx), free(w), free(dw);
    }
    /* VQGAN ResBlock */
    {
        int B = 32, C = 64, H = 16;
        struct resblock_cfg rc = resblock_cfg_upstream(B, C, C, H, H);
        struct params pr;
        params_init_table(&pr);
        int64_t sh[1] = {(int64_t)resblock_weights_point(&(struct resblock_weights){0}, NULL, C, C)};
        params_add(&pr, "", "w", 1, sh, INIT_UNIFORM, 0.05f);
        params_alloc(&pr);
        params_fill_init(&pr, 2);
        struct resblock_weights w, dw;
        resblock_weights_point(&w, pr.data, C, C);
        resblock_weights_point(&dw, pr.grad, C, C);
        for (int i = 0; i < C; i++) w.norm1_weight[i] = w.norm2_weight[i] = 1;
        struct resblock_acts a;
        float *am = tp_aligned_alloc(resblock_acts_size(&rc) * sizeof(float));
        resblock_acts_point(&a, am, &rc);
        size_t n = (size_t)B * C * H * H;
        float *x = buf(n, &r), *y = buf(n, &r), *dy = buf(n, &r), *dx = buf(n, &r);
        double t = BEST((resblock_forward(y, &a, x, &w, &rc), resblock_backward(dx, &dw, dy, x, &w, &a, &rc)));
        /* its two convolutions have the shape of the conv2d row */
        row("VQGAN ResBlock", "B32 64->64 16x16", 2 * 6.0 * B * C * C * 9 * H * H, t, 2 * conv_sgemm_t);
        params_free(&pr);
        free(am), free(x), free(y), free(dy), free(dx);
    }
    /* normalisations (memory-bound: no FLOP ratio intended) */
    {
        int BT = 32 * 97, C = 256;
        size_t n = (size_t)BT * C;
        float *x = buf(n, &r), *y = buf(n, &r), *dy = buf(n, &r), *dx = buf(n, &r);
        float *g = buf(C, &r), *b = buf(C, &r), *dg = buf(C, &r), *db = buf(C, &r);
        float *mean = buf(BT, &r), *rstd = buf(BT, &r);
        double t = BEST((layernorm_forward(y, mean, rstd, x, g, b, BT, C, 1e-5f),
                         layernorm_backward(dx, dg, db, dy, x, g, mean, rstd, BT, C)));
        row("layernorm", "3104x256", 12.0 * n, t, 0);
        int B = 32, GC = 64, HW = 256;
        float *gm = buf(B * 32, &r), *gr = buf(B * 32, &r);
        t = BEST((groupnorm_forward(y, gm, gr, x, g, b, B, GC, HW, 32, 1e-6f),
                  groupnorm_backward(dx, dg, db, dy, x, g, gm, gr, B, GC, HW, 32)));
        row("groupnorm", "B32 C64 16x16 G32", 12.0 * B * GC * HW, t, 0);
        free(x), free(y), free(dy), free(dx), free(g), free(b), free(dg), free(db), free(mean), free(rstd);
        free(gm), free(gr);
    }
    print_rows();
    free(pa), free(pb), free(pc);
    return 0;
}
