/* bench_conv.c - the convolution paths side by side on the VQGAN's shapes:
 * the register tiles (lib/conv2d_tile.c) at each vector width the CPU has,
 * and im2col + sgemm (tiles off), each checked against the direct loops.
 *
 * Usage: bench_conv [REPS]
 * Prints one markdown row per shape and path: forward, dinp and dweight,
 * each the best of REPS runs in ms and GFLOP/s, and the largest difference
 * from conv2d_forward_direct / conv2d_backward_direct. B = 32, 3x3, SAME. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conv2d.h"
#include "conv2d_tile.h"
#include "simd.h"
#include "err.h"
#include "rng.h"

static float *buf(size_t n, struct rng *r)
{
    float *p = tp_aligned_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform(r) - 0.5f;
    return p;
}

static double maxdiff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

int main(int argc, char **argv)
{
    cli_init(argc, argv);
    tp_threads_set(0);
    int reps = argc > 1 ? atoi(argv[1]) : 10;
    if (reps < 1) die_usage("REPS must be 1 or more");
    /* C, OC, H: the vqgan-tiny levels (32x32 at 32, 16x16, 8x8 at 64),
     * one 16x16 at 64, the decoder's last conv to one channel */
    static const int shapes[][3] = {{32, 32, 32}, {32, 32, 16}, {64, 64, 8}, {64, 64, 16}, {32, 1, 32},
                                    {1, 32, 32}, {2, 32, 32}, {4, 32, 32}, {8, 32, 32}};
    printf("| shape | path | fwd ms | GFLOP/s | dinp ms | GFLOP/s | dweight ms | GFLOP/s | max diff |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    struct rng r;
    rng_seed(&r, 1);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int C = shapes[k][0], OC = shapes[k][1], H = shapes[k][2];
        struct conv2d_shape s = conv2d_shape_same(32, C, H, H, OC, 3, 3, 1, 1);
        size_t ni = conv2d_inp_numel(&s), no = conv2d_out_numel(&s), nw = conv2d_weight_numel(&s);
        float *x = buf(ni, &r), *w = buf(nw, &r), *dy = buf(no, &r);
        float *y = tp_aligned_alloc(no * sizeof(float)), *yr = tp_aligned_alloc(no * sizeof(float));
        float *dx = tp_calloc(ni, sizeof(float)), *dxr = tp_calloc(ni, sizeof(float));
        float *dw = tp_calloc(nw, sizeof(float)), *dwr = tp_calloc(nw, sizeof(float));
        conv2d_forward_direct(yr, x, w, NULL, &s);
        conv2d_backward_direct(dxr, dwr, NULL, dy, x, w, &s);
        const double gf = 2.0 * s.B * OC * C * 9 * H * H / 1e9;
        const int widths[] = {16, 8, 0};
        for (int i = 0; i < 3; i++) {
            if (widths[i] > simd_cpu_vl()) continue;
            simd_set_vl(widths[i]);
            double best[3] = {1e30, 1e30, 1e30}, diff = 0;
            for (int rep = 0; rep < reps; rep++) {
                memset(dx, 0, ni * sizeof(float));
                memset(dw, 0, nw * sizeof(float));
                double t0 = tp_now();
                conv2d_forward(y, x, w, NULL, &s);
                double t1 = tp_now();
                conv2d_backward(dx, NULL, NULL, dy, x, w, &s);
                double t2 = tp_now();
                conv2d_backward(NULL, dw, NULL, dy, x, w, &s);
                double t3 = tp_now();
                best[0] = fmin(best[0], t1 - t0), best[1] = fmin(best[1], t2 - t1), best[2] = fmin(best[2], t3 - t2);
                if (rep == 0)
                    diff = fmax(maxdiff(y, yr, no), fmax(maxdiff(dx, dxr, ni), maxdiff(dw, dwr, nw)));
            }
            char path[32];
            if (widths[i]) snprintf(path, sizeof path, "tiles, %d floats", widths[i]);
            else snprintf(path, sizeof path, "im2col + sgemm");
            printf("| B32 %d->%d %dx%d | %s | %.2f | %.0f | %.2f | %.0f | %.2f | %.0f | %.2g |\n", C, OC, H, H, path,
                   best[0] * 1e3, gf / best[0], best[1] * 1e3, gf / best[1], best[2] * 1e3, gf / best[2], diff);
        }
        simd_set_vl(-1);
        free(x), free(w), free(dy), free(y), free(yr), free(dx), free(dxr), free(dw), free(dwr);
    }
    return 0;
}
