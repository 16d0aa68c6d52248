/* imgops.c - image geometry and channel conversion (see imgops.h). */
#include "imgops.h"
#include "err.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Parallelise only when a call has enough work to pay for the threads. */
#define IMGOPS_PAR_MIN 65536

void img_alloc(struct img *im, int c, int h, int w)
{
    TP_ASSERT(c > 0 && h > 0 && w > 0);
    im->c = c;
    im->h = h;
    im->w = w;
    im->data = tp_aligned_alloc((size_t)c * h * w * sizeof(float));
}

void img_free(struct img *im)
{
    free(im->data);
    im->data = NULL;
}

/* ---- resize ------------------------------------------------------------------ */

/* Box-filter weights along one axis. Output pixel o covers input interval
 * [o*in/out, (o+1)*in/out); in units of 1/out pixel that is [o*in, (o+1)*in)
 * and input pixel i is [i*out, (i+1)*out), so the overlaps are exact
 * integers and the weights overlap/in sum to 1. */
struct taps {
    int k;          /* taps per output (max) */
    int *start;     /* [out] first input index */
    int *count;     /* [out] taps used */
    double *w;      /* [out*k] */
};

static void taps_area(struct taps *t, int in, int out)
{
    t->k = in / out + 2;
    t->start = tp_malloc(sizeof(int) * out);
    t->count = tp_malloc(sizeof(int) * out);
    t->w = tp_calloc((size_t)out * t->k, sizeof(double));
    for (int o = 0; o < out; o++) {
        int64_t lo = (int64_t)o * in, hi = (int64_t)(o + 1) * in;
        int i0 = (int)(lo / out), i1 = (int)((hi - 1) / out);
        t->start[o] = i0;
        t->count[o] = i1 - i0 + 1;
        TP_ASSERT(t->count[o] <= t->k);
        for (int i = i0; i <= i1; i++) {
            int64_t a = lo > (int64_t)i * out ? lo : (int64_t)i * out;
            int64_t b = hi < (int64_t)(i + 1) * out ? hi : (int64_t)(i + 1) * out;
            t->w[(size_t)o * t->k + (i - i0)] = (double)(b - a) / in;
        }
    }
}

/* Bilinear taps: source coordinate (o+0.5)*in/out - 0.5, clamped at 0, and
 * the right neighbour clamped at in-1 (PyTorch's align_corners=False). */
static void taps_bilinear(struct taps *t, int in, int out)
{
    t->k = 2;
    t->start = tp_malloc(sizeof(int) * out);
    t->count = tp_malloc(sizeof(int) * out);
    t->w = tp_calloc((size_t)out * 2, sizeof(double));
    double scale = (double)in / out;
    for (int o = 0; o < out; o++) {
        double src = (o + 0.5) * scale - 0.5;
        if (src < 0) src = 0;
        int i0 = (int)src;
        if (i0 > in - 1) i0 = in - 1;
        double f = src - i0;
        t->start[o] = i0;
        t->count[o] = i0 + 1 < in ? 2 : 1;
        t->w[2 * o] = t->count[o] == 2 ? 1 - f : 1;
        t->w[2 * o + 1] = t->count[o] == 2 ? f : 0;
    }
}

static void taps_free(struct taps *t)
{
    free(t->start);
    free(t->count);
    free(t->w);
}

/* Separable resize: rows first into tmp [C,H,OW], then columns. */
static void resize_sep(float *out, const float *inp, int C, int H, int W, int OH,
                       int OW, const struct taps *tx, const struct taps *ty)
{
    float *tmp = tp_malloc(sizeof(float) * C * H * OW);
#pragma omp parallel for if ((long)C * H * OW > IMGOPS_PAR_MIN) schedule(static)
    for (int r = 0; r < C * H; r++) {
        const float *src = inp + (size_t)r * W;
        float *dst = tmp + (size_t)r * OW;
        for (int o = 0; o < OW; o++) {
            const double *w = tx->w + (size_t)o * tx->k;
            const float *s = src + tx->start[o];
            double acc = 0;
            for (int k = 0; k < tx->count[o]; k++) acc += w[k] * s[k];
            dst[o] = (float)acc;
        }
    }
#pragma omp parallel for if ((long)C * OH * OW > IMGOPS_PAR_MIN) schedule(static)
    for (int r = 0; r < C * OH; r++) {
        int c = r / OH, o = r % OH;
        const double *w = ty->w + (size_t)o * ty->k;
        const float *s = tmp + ((size_t)c * H + ty->start[o]) * OW;
        float *dst = out + (size_t)r * OW;
        for (int x = 0; x < OW; x++) {
            double acc = 0;
            for (int k = 0; k < ty->count[o]; k++) acc += w[k] * s[(size_t)k * OW + x];
            dst[x] = (float)acc;
        }
    }
    free(tmp);
}

static void resize(float *out, const float *inp, int C, int H, int W, int OH, int OW,
                   void (*taps)(struct taps *, int, int))
{
    struct taps tx, ty;
    taps(&tx, W, OW);
    taps(&ty, H, OH);
    resize_sep(out, inp, C, H, W, OH, OW, &tx, &ty);
    taps_free(&tx);
    taps_free(&ty);
}

void img_resize_area(float *out, const float *inp, int C, int H, int W, int OH, int OW)
{
    resize(out, inp, C, H, W, OH, OW, taps_area);
}

void img_resize_bilinear(float *out, const float *inp, int C, int H, int W, int OH, int OW)
{
    resize(out, inp, C, H, W, OH, OW, taps_bilinear);
}

/* ---- crop, pad, flip, channels -------------------------------------------------- */

void img_crop_pad(float *out, const float *inp, int C, int H, int W, int y0,
                  int x0, int OH, int OW, float value)
{
#pragma omp parallel for if ((long)C * OH * OW > IMGOPS_PAR_MIN) schedule(static)
    for (int r = 0; r < C * OH; r++) {
        int c = r / OH, y = r % OH, sy = y + y0;
        float *dst = out + (size_t)r * OW;
        if (sy < 0 || sy >= H) {
            for (int x = 0; x < OW; x++) dst[x] = value;
            continue;
        }
        const float *src = inp + ((size_t)c * H + sy) * W;
        for (int x = 0; x < OW; x++) {
            int sx = x + x0;
            dst[x] = sx >= 0 && sx < W ? src[sx] : value;
        }
    }
}

int img_crop_offset(int in, int out, int random, uint64_t u)
{
    int slack = in >= out ? in - out : out - in;
    int k = random ? (int)(u % ((uint64_t)slack + 1)) : slack / 2;
    return in >= out ? k : -k;
}

void img_flip_h(float *x, int C, int H, int W)
{
#pragma omp parallel for if ((long)C * H * W > IMGOPS_PAR_MIN) schedule(static)
    for (int r = 0; r < C * H; r++) {
        float *row = x + (size_t)r * W;
        for (int i = 0, j = W - 1; i < j; i++, j--) {
            float t = row[i];
            row[i] = row[j];
            row[j] = t;
        }
    }
}

void img_channels(float *out, int OC, const float *inp, int C, int H, int W)
{
    size_t n = (size_t)H * W;
    if (OC == C) {
        memcpy(out, inp, sizeof(float) * n * C);
    } else if (C == 1 && OC == 3) {
        for (int c = 0; c < 3; c++) memcpy(out + c * n, inp, sizeof(float) * n);
    } else if (C == 3 && OC == 1) {
        for (size_t i = 0; i < n; i++)
            out[i] = IMG_LUMA_R * inp[i] + IMG_LUMA_G * inp[n + i] + IMG_LUMA_B * inp[2 * n + i];
    } else {
        TP_ASSERT(!"img_channels: unsupported conversion");
    }
}

/* ---- patches ------------------------------------------------------------------ */

void img_patchify(float *out, const float *inp, int B, int C, int H, int W, int P)
{
    TP_ASSERT(P > 0 && H % P == 0 && W % P == 0);
    int GW = W / P, N = (H / P) * GW, D = C * P * P;
#pragma omp parallel for if ((long)B * N * D > IMGOPS_PAR_MIN) schedule(static)
    for (int bn = 0; bn < B * N; bn++) {
        int b = bn / N, n = bn % N, py = n / GW, px = n % GW;
        float *dst = out + (size_t)bn * D;
        for (int c = 0; c < C; c++)
            for (int i = 0; i < P; i++)
                memcpy(dst + (c * P + i) * P,
                       inp + (((size_t)b * C + c) * H + py * P + i) * W + px * P,
                       sizeof(float) * P);
    }
}

void img_unpatchify(float *out, const float *inp, int B, int C, int H, int W, int P)
{
    TP_ASSERT(P > 0 && H % P == 0 && W % P == 0);
    int GW = W / P, N = (H / P) * GW, D = C * P * P;
    /* parallel over output rows (b, c, y): each thread owns its writes */
#pragma omp parallel for if ((long)B * N * D > IMGOPS_PAR_MIN) schedule(static)
    for (int r = 0; r < B * C * H; r++) {
        int b = r / (C * H), c = (r / H) % C, y = r % H, py = y / P, i = y % P;
        float *dst = out + (size_t)r * W;
        for (int px = 0; px < GW; px++)
            memcpy(dst + px * P, inp + ((size_t)b * N + py * GW + px) * D + (c * P + i) * P,
                   sizeof(float) * P);
    }
}

/* ---- the per-sample pipeline -------------------------------------------------- */

static void replace(struct img *im, float *data, int h, int w)
{
    free(im->data);
    im->data = data;
    im->h = h;
    im->w = w;
}

void img_augment(struct img *im, const struct img_aug *a, uint64_t seed, uint64_t index)
{
    /* Three draws per sample, always, so that turning one option on does not
     * change the draws of the others. */
    struct rng r;
    rng_seed(&r, rng_hash(seed, index));
    uint64_t uy = rng_u64(&r), ux = rng_u64(&r);
    int flip = rng_uniform(&r) < 0.5f;
    int C = im->c;

    if (a->resize != IMG_RESIZE_NONE && a->out_h > 0) {
        /* cover out_h x out_w, aspect kept: scale by the larger ratio */
        double s = fmax((double)a->out_h / im->h, (double)a->out_w / im->w);
        int rh = (int)lround(im->h * s), rw = (int)lround(im->w * s);
        if (rh < a->out_h) rh = a->out_h;
        if (rw < a->out_w) rw = a->out_w;
        if (rh != im->h || rw != im->w) {
            float *d = tp_aligned_alloc(sizeof(float) * C * rh * rw);
            if (a->resize == IMG_RESIZE_AREA)
                img_resize_area(d, im->data, C, im->h, im->w, rh, rw);
            else
                img_resize_bilinear(d, im->data, C, im->h, im->w, rh, rw);
            replace(im, d, rh, rw);
        }
    }
    if (a->pad > 0) {
        int oh = im->h + 2 * a->pad, ow = im->w + 2 * a->pad;
        float *d = tp_aligned_alloc(sizeof(float) * C * oh * ow);
        img_crop_pad(d, im->data, C, im->h, im->w, -a->pad, -a->pad, oh, ow, a->pad_value);
        replace(im, d, oh, ow);
    }
    if (a->out_h > 0 && (im->h != a->out_h || im->w != a->out_w)) {
        int y0 = img_crop_offset(im->h, a->out_h, a->crop_random, uy);
        int x0 = img_crop_offset(im->w, a->out_w, a->crop_random, ux);
        float *d = tp_aligned_alloc(sizeof(float) * C * a->out_h * a->out_w);
        img_crop_pad(d, im->data, C, im->h, im->w, y0, x0, a->out_h, a->out_w, a->pad_value);
        replace(im, d, a->out_h, a->out_w);
    }
    if (a->flip && flip) img_flip_h(im->data, C, im->h, im->w);
}
