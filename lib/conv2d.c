/* conv2d.c - 2-D convolution forward/backward: 1x1 sgemm, im2col + sgemm,
 * and direct loops (see conv2d.h for the contract and dimension names).
 * Below, K = (C/G)*KH*KW is the reduction length of one output value and
 * P = OH*OW the number of output positions per image. */
#include "conv2d.h"

#include <string.h>

#include "blas.h"
#include "chunks.h"
#include "cli.h"
#include "conv2d_tile.h"
#include "err.h"


void conv2d_same_pad(int n, int k, int stride, int *before, int *after)
{
    TP_ASSERT(n > 0 && k > 0 && stride > 0);
    int total = ((n + stride - 1) / stride - 1) * stride + k - n;
    if (total < 0) total = 0;
    *before = total / 2;
    *after = total - total / 2;
}

void conv2d_shape_finish(struct conv2d_shape *s)
{
    TP_ASSERT(s->B > 0 && s->C > 0 && s->H > 0 && s->W > 0);
    TP_ASSERT(s->OC > 0 && s->KH > 0 && s->KW > 0);
    TP_ASSERT(s->stride_h > 0 && s->stride_w > 0);
    TP_ASSERT(s->pad_top >= 0 && s->pad_bottom >= 0 && s->pad_left >= 0 && s->pad_right >= 0);
    TP_ASSERT(s->groups > 0 && s->C % s->groups == 0 && s->OC % s->groups == 0);
    int hp = s->H + s->pad_top + s->pad_bottom, wp = s->W + s->pad_left + s->pad_right;
    TP_ASSERT(hp >= s->KH && wp >= s->KW);
    s->OH = (hp - s->KH) / s->stride_h + 1;
    s->OW = (wp - s->KW) / s->stride_w + 1;
}

struct conv2d_shape conv2d_shape_same(int B, int C, int H, int W, int OC,
                                      int KH, int KW, int stride, int groups)
{
    struct conv2d_shape s = {.B = B, .C = C, .H = H, .W = W, .OC = OC, .KH = KH,
                             .KW = KW, .stride_h = stride, .stride_w = stride,
                             .groups = groups};
    conv2d_same_pad(H, KH, stride, &s.pad_top, &s.pad_bottom);
    conv2d_same_pad(W, KW, stride, &s.pad_left, &s.pad_right);
    conv2d_shape_finish(&s);
    return s;
}

size_t conv2d_inp_numel(const struct conv2d_shape *s)
{
    return (size_t)s->B * s->C * s->H * s->W;
}

size_t conv2d_out_numel(const struct conv2d_shape *s)
{
    return (size_t)s->B * s->OC * s->OH * s->OW;
}

size_t conv2d_weight_numel(const struct conv2d_shape *s)
{
    return (size_t)s->OC * (s->C / s->groups) * s->KH * s->KW;
}

/* Output indices o in [*lo,*hi) whose input index o*stride + off lies in
 * [0,n_in); off = kernel tap - leading pad. */
static void valid_range(int n_out, int n_in, int stride, int off, int *lo, int *hi)
{
    int l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int h = n_in - off <= 0 ? 0 : (n_in - off + stride - 1) / stride;
    if (h > n_out) h = n_out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

static void bias_forward(float *out, const float *bias, int B, int OC, size_t P)
{
#pragma omp parallel for collapse(2) if ((size_t)B * OC * P > PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++)
        for (int oc = 0; oc < OC; oc++) {
            float *o = out + ((size_t)b * OC + oc) * P;
#pragma omp simd
            for (size_t p = 0; p < P; p++) o[p] += bias[oc];
        }
}

/* dbias[oc] += sum over b, p of dout; each thread owns some oc. */
static void bias_backward(float *dbias, const float *dout, int B, int OC, size_t P)
{
#pragma omp parallel for if ((size_t)B * OC * P > PAR_MIN) schedule(static)
    for (int oc = 0; oc < OC; oc++) {
        double sum = 0;
        for (int b = 0; b < B; b++) {
            const float *d = dout + ((size_t)b * OC + oc) * P;
            for (size_t p = 0; p < P; p++) sum += d[p];
        }
        dbias[oc] += (float)sum;
    }
}

static int is_pointwise(const struct conv2d_shape *s)
{
    return s->KH == 1 && s->KW == 1 && s->stride_h == 1 && s->stride_w == 1 &&
           s->pad_top == 0 && s->pad_bottom == 0 && s->pad_left == 0 &&
           s->pad_right == 0 && s->groups == 1;
}

/* one input channel per group, several groups: a product per group would be
 * a KH*KW dot, so direct loops win */
static int is_depthwise(const struct conv2d_shape *s)
{
    return s->groups > 1 && s->C == s->groups;
}

/* ---- direct loops ------------------------------------------------------ */

enum tap_op {
    TAP_FORWARD, /* out += w * in */
    TAP_DINP,    /* in += w * out  (in is dinp, out is dout) */
    TAP_DWEIGHT, /* dw += out * in (out is dout), in double */
};

/* One (input plane, output plane) pair through the KHxKW taps of kernel w,
 * visiting for each tap only the outputs whose input lies inside the plane
 * (padding contributes nothing). in/out are written only by the op that
 * says so; the others read them. */
static void plane_taps(enum tap_op op, const struct conv2d_shape *s, const float *w,
                       float *in, float *out, double *dw)
{
    for (int kh = 0; kh < s->KH; kh++) {
        int oh0, oh1;
        valid_range(s->OH, s->H, s->stride_h, kh - s->pad_top, &oh0, &oh1);
        for (int kw = 0; kw < s->KW; kw++) {
            int ow0, ow1;
            valid_range(s->OW, s->W, s->stride_w, kw - s->pad_left, &ow0, &ow1);
            const int k = kh * s->KW + kw;
            for (int oh = oh0; oh < oh1; oh++) {
                float *irow = in + (size_t)(oh * s->stride_h + kh - s->pad_top) * s->W;
                float *orow = out + (size_t)oh * s->OW;
                const int shift = kw - s->pad_left, sw = s->stride_w;
                if (op == TAP_FORWARD) {
                    for (int ow = ow0; ow < ow1; ow++) orow[ow] += w[k] * irow[ow * sw + shift];
                } else if (op == TAP_DINP) {
                    for (int ow = ow0; ow < ow1; ow++) irow[ow * sw + shift] += w[k] * orow[ow];
                } else {
                    double acc = 0;
                    for (int ow = ow0; ow < ow1; ow++) acc += (double)orow[ow] * irow[ow * sw + shift];
                    dw[k] += acc;
                }
            }
        }
    }
}

void conv2d_forward_direct(float *out, const float *inp, const float *weight,
                           const float *bias, const struct conv2d_shape *s)
{
    const int Cg = s->C / s->groups, OCg = s->OC / s->groups, KK = s->KH * s->KW;
    const size_t P = (size_t)s->OH * s->OW, HW = (size_t)s->H * s->W;
    /* one output plane (b, oc) per iteration: the thread owns it */
#pragma omp parallel for collapse(2) if (conv2d_out_numel(s) * Cg * KK > PAR_MIN) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int oc = 0; oc < s->OC; oc++) {
            float *o = out + ((size_t)b * s->OC + oc) * P;
            const float fill = bias ? bias[oc] : 0.0f;
            for (size_t p = 0; p < P; p++) o[p] = fill;
            for (int c = 0; c < Cg; c++) {
                /* read only (TAP_FORWARD writes out) */
                float *in = (float *)inp + ((size_t)b * s->C + (size_t)(oc / OCg) * Cg + c) * HW;
                plane_taps(TAP_FORWARD, s, weight + ((size_t)oc * Cg + c) * KK, in, o, NULL);
            }
        }
}

void conv2d_backward_direct(float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp,
                            const float *weight, const struct conv2d_shape *s)
{
    const int Cg = s->C / s->groups, OCg = s->OC / s->groups, KK = s->KH * s->KW;
    const size_t P = (size_t)s->OH * s->OW, HW = (size_t)s->H * s->W;
    const size_t work = conv2d_out_numel(s) * Cg * KK;
    if (dbias) bias_backward(dbias, dout, s->B, s->OC, P);
    if (dinp) {
        /* one input plane (b, c) per iteration: every output channel of c's
         * group scatters into it from this thread only */
#pragma omp parallel for collapse(2) if (work > PAR_MIN) schedule(static)
        for (int b = 0; b < s->B; b++)
            for (int c = 0; c < s->C; c++) {
                const int g = c / Cg;
                for (int oc = g * OCg; oc < (g + 1) * OCg; oc++) {
                    float *d = (float *)dout + ((size_t)b * s->OC + oc) * P; /* read only */
                    plane_taps(TAP_DINP, s, weight + ((size_t)oc * Cg + c % Cg) * KK,
                               dinp + ((size_t)b * s->C + c) * HW, d, NULL);
                }
            }
    }
    if (dweight) {
        /* one weight row (oc, ci) per iteration, summed over b in double */
#pragma omp parallel for collapse(2) if (work > PAR_MIN) schedule(static)
        for (int oc = 0; oc < s->OC; oc++)
            for (int ci = 0; ci < Cg; ci++) {
                double acc[KK];
                for (int k = 0; k < KK; k++) acc[k] = 0;
                for (int b = 0; b < s->B; b++) {
                    /* both read only under TAP_DWEIGHT */
                    float *in = (float *)inp + ((size_t)b * s->C + (size_t)(oc / OCg) * Cg + ci) * HW;
                    float *d = (float *)dout + ((size_t)b * s->OC + oc) * P;
                    plane_taps(TAP_DWEIGHT, s, NULL, in, d, acc);
                }
                float *dw = dweight + ((size_t)oc * Cg + ci) * KK;
                for (int k = 0; k < KK; k++) dw[k] += (float)acc[k];
            }
    }
}

/* ---- im2col + sgemm ---------------------------------------------------- */

/* A chunk of output positions p0..p0+n-1 split at output-row boundaries:
 * segment i holds positions (oh, ow0..ow1-1), at columns j0.. of the chunk. */
struct colseg {
    int oh, ow0, ow1;
    size_t j0;
};

/* Fill sg (room for n/OW + 2 entries); returns the number of segments. */
static size_t col_segments(struct colseg *sg, const struct conv2d_shape *s, size_t p0, size_t n)
{
    size_t k = 0;
    for (size_t j = 0; j < n; k++) {
        const size_t p = p0 + j;
        sg[k].oh = (int)(p / s->OW);
        sg[k].ow0 = (int)(p % s->OW);
        sg[k].ow1 = (size_t)(s->OW - sg[k].ow0) < n - j ? s->OW : sg[k].ow0 + (int)(n - j);
        sg[k].j0 = j;
        j += (size_t)(sg[k].ow1 - sg[k].ow0);
    }
    return k;
}

/* For tap (kh, kw) over segment g: the input row it reads (-1 if that row is
 * padding) and the outputs [*a, *e) whose input column lies in the image
 * ([lo, hi) from valid_range for kw). Input column of ow: ow*stride_w + kw - pad_left. */
static int seg_span(const struct conv2d_shape *s, const struct colseg *g, int kh,
                    int lo, int hi, int *a, int *e)
{
    const int ih = g->oh * s->stride_h + kh - s->pad_top;
    *a = lo > g->ow0 ? lo : g->ow0;
    *e = hi < g->ow1 ? hi : g->ow1;
    if (*e < *a) *e = *a;
    return ih >= 0 && ih < s->H ? ih : -1;
}

/* col[r][j] for r = (c*KH + kh)*KW + kw over the Cg channels of one group
 * of one image (in = its first channel), j over the chunk's positions.
 * Padding reads as 0: each segment is zeros, a copy (a contiguous one at
 * stride 1), zeros. */
static void im2col(float *col, const float *in, const struct conv2d_shape *s,
                   const struct colseg *sg, size_t nseg, size_t n)
{
    const int Cg = s->C / s->groups, KK = s->KH * s->KW;
    const size_t HW = (size_t)s->H * s->W;
#pragma omp parallel for if ((size_t)Cg * KK * n > PAR_MIN) schedule(static)
    for (int r = 0; r < Cg * KK; r++) {
        const int c = r / KK, kh = r % KK / s->KW, kw = r % s->KW;
        const float *plane = in + (size_t)c * HW;
        int lo, hi;
        valid_range(s->OW, s->W, s->stride_w, kw - s->pad_left, &lo, &hi);
        for (size_t i = 0; i < nseg; i++) {
            const struct colseg *g = &sg[i];
            float *d = col + (size_t)r * n + g->j0; /* d[ow - ow0] is output (oh, ow) */
            int a, e;
            const int ih = seg_span(s, g, kh, lo, hi, &a, &e);
            if (ih < 0) a = e = g->ow1;
            for (int ow = g->ow0; ow < a; ow++) d[ow - g->ow0] = 0.0f;
            const float *row = plane + (size_t)(ih < 0 ? 0 : ih) * s->W;
            if (s->stride_w == 1 && a < e)
                memcpy(d + (a - g->ow0), row + a + kw - s->pad_left, (size_t)(e - a) * sizeof(float));
            else
                for (int ow = a; ow < e; ow++)
                    d[ow - g->ow0] = row[ow * s->stride_w + kw - s->pad_left];
            for (int ow = e; ow < g->ow1; ow++) d[ow - g->ow0] = 0.0f;
        }
    }
}

/* The adjoint of im2col: din (the group's first channel) += col scattered
 * back. Parallel over channels: the rows of one channel, and so all writes
 * to its plane, belong to one thread and are added in a fixed order. */
static void col2im_add(float *din, const float *col, const struct conv2d_shape *s,
                       const struct colseg *sg, size_t nseg, size_t n)
{
    const int Cg = s->C / s->groups, KK = s->KH * s->KW;
    const size_t HW = (size_t)s->H * s->W;
#pragma omp parallel for if ((size_t)Cg * KK * n > PAR_MIN) schedule(static)
    for (int c = 0; c < Cg; c++) {
        float *plane = din + (size_t)c * HW;
        for (int k = 0; k < KK; k++) {
            const int kh = k / s->KW, kw = k % s->KW;
            int lo, hi;
            valid_range(s->OW, s->W, s->stride_w, kw - s->pad_left, &lo, &hi);
            for (size_t i = 0; i < nseg; i++) {
                const struct colseg *g = &sg[i];
                const float *src = col + ((size_t)c * KK + k) * n + g->j0;
                int a, e;
                const int ih = seg_span(s, g, kh, lo, hi, &a, &e);
                if (ih < 0) continue;
                float *row = plane + (size_t)ih * s->W;
                for (int ow = a; ow < e; ow++)
                    row[ow * s->stride_w + kw - s->pad_left] += src[ow - g->ow0];
            }
        }
    }
}

/* Output positions per chunk, so that a [K, chunk] column fits the bound. */
static size_t chunk_len(size_t K, size_t P, size_t bound)
{
    size_t n = bound / K;
    if (n < 1) n = 1;
    return n < P ? n : P;
}

/* Scratch of one worker: a column chunk and its row segments. */
struct colbuf {
    float *col;
    struct colseg *sg;
    size_t nmax;
};

static struct colbuf colbuf_new(const struct conv2d_shape *s, size_t K, size_t bound)
{
    struct colbuf c;
    c.nmax = chunk_len(K, (size_t)s->OH * s->OW, bound);
    c.col = tp_aligned_alloc(K * c.nmax * sizeof(float));
    c.sg = tp_malloc((c.nmax / s->OW + 2) * sizeof *c.sg);
    return c;
}

static void colbuf_free(struct colbuf *c)
{
    free(c->sg);
    free(c->col);
}

/* Both directions of the im2col path for image b, all groups, over column
 * chunks: forward when out is given (writes out, or adds to it when
 * out_beta is 1), backward otherwise (accumulates into dinp and/or dw from
 * dout; dw is [OC, K], the weight's layout). */
static void image_pass(float *out, float out_beta, float *dinp, float *dw, const float *dout,
                       const float *inp, const float *weight, const struct conv2d_shape *s,
                       int b, struct colbuf *cb)
{
    const int G = s->groups, Cg = s->C / G, OCg = s->OC / G;
    const size_t K = (size_t)Cg * s->KH * s->KW, P = (size_t)s->OH * s->OW;
    const size_t HW = (size_t)s->H * s->W;
    float *col = cb->col;
    for (int g = 0; g < G; g++) {
        const float *in = inp + ((size_t)b * s->C + (size_t)g * Cg) * HW;
        const size_t oo = ((size_t)b * s->OC + (size_t)g * OCg) * P; /* o or d offset */
        const float *w = weight + (size_t)g * OCg * K;
        for (size_t p0 = 0; p0 < P; p0 += cb->nmax) {
            const size_t n = P - p0 < cb->nmax ? P - p0 : cb->nmax;
            const size_t nseg = col_segments(cb->sg, s, p0, n);
            if (out || dw) im2col(col, in, s, cb->sg, nseg, n);
            if (out) { /* o[OCg, n] (row stride P) = W_g[OCg, K] @ col[K, n] */
                tp_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OCg, (int)n, (int)K,
                         1.0f, w, (int)K, col, (int)n, out_beta, out + oo + p0, (int)P);
                continue;
            }
            if (dw) /* dW_g[OCg, K] += d[OCg, n] @ col[K, n]^T */
                tp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OCg, (int)K, (int)n,
                         1.0f, dout + oo + p0, (int)P, col, (int)n,
                         1.0f, dw + (size_t)g * OCg * K, (int)K);
            if (dinp) {
                /* dcol[K, n] = W_g[OCg, K]^T @ d[OCg, n], reusing col */
                tp_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)n, OCg,
                         1.0f, w, (int)K, dout + oo + p0, (int)P, 0.0f, col, (int)n);
                col2im_add(dinp + ((size_t)b * s->C + (size_t)g * Cg) * HW, col, s, cb->sg, nseg, n);
            }
        }
    }
}

/* The im2col path over the batch. With several images, the images are
 * shared among the threads, each with its own scratch and
 * single-threaded sgemm calls (OpenBLAS runs on one thread inside a parallel
 * region): these products are small (K and OC of tens to hundreds), and
 * splitting each of them between threads cost more than it gave. */
static void im2col_pass(float *out, float out_beta, float *dinp, float *dweight,
                        const float *dout, const float *inp, const float *weight,
                        const struct conv2d_shape *s)
{
    const size_t K = (size_t)(s->C / s->groups) * s->KH * s->KW, WN = (size_t)s->OC * K;
    if (s->B == 1) { /* one image: the threads work inside each product */
        struct colbuf cb = colbuf_new(s, K, CONV2D_COL_FLOATS);
        image_pass(out, out_beta, dinp, dweight, dout, inp, weight, s, 0, &cb);
        colbuf_free(&cb);
        return;
    }
    const int T = tp_threads() < s->B ? tp_threads() : s->B;
    const int parts = s->B < CONV2D_DW_PARTS ? s->B : CONV2D_DW_PARTS;
    float *partial = dweight ? tp_calloc((size_t)parts * WN, sizeof(float)) : NULL;
#pragma omp parallel num_threads(T)
    {
        struct colbuf cb = colbuf_new(s, K, CONV2D_COL_FLOATS / (size_t)T);
#pragma omp for schedule(static)
        for (int part = 0; part < parts; part++) {
            const int b0 = (int)((long)s->B * part / parts), b1 = (int)((long)s->B * (part + 1) / parts);
            for (int b = b0; b < b1; b++)
                image_pass(out, out_beta, dinp, partial ? partial + (size_t)part * WN : NULL,
                           dout, inp, weight, s, b, &cb);
        }
        colbuf_free(&cb);
    }
    if (partial) {
        chunk_parts_add(dweight, partial, parts, WN, WN);
        free(partial);
    }
}

/* out = (out_beta ? out : 0) + the convolution without bias, by the tiles
 * where they apply, else by im2col + sgemm. */
static void forward_tile_or_im2col(float *out, float out_beta, const float *inp,
                                   const float *weight, const struct conv2d_shape *s)
{
    if (conv2d_tile_applies(s))
        conv2d_tile_forward(out, out_beta, inp, weight, s);
    else
        im2col_pass(out, out_beta, NULL, NULL, NULL, inp, weight, s);
}

/* At stride 1, dinp is itself a convolution: of dout, with the kernel
 * flipped and its channel axes swapped within each group, the padding
 * mirrored (KH-1-pad). That gathers dout with im2col instead of scattering
 * a column matrix back with col2im_add, which cost twice as much. Returns 0
 * where it does not apply (stride > 1, or a pad of KH or more). */
static int dinp_as_conv(float *dinp, const float *dout, const float *weight,
                        const struct conv2d_shape *s)
{
    if (s->stride_h != 1 || s->stride_w != 1 || s->pad_top >= s->KH || s->pad_bottom >= s->KH ||
        s->pad_left >= s->KW || s->pad_right >= s->KW)
        return 0;
    struct conv2d_shape t = {.B = s->B, .C = s->OC, .H = s->OH, .W = s->OW, .OC = s->C,
                             .KH = s->KH, .KW = s->KW, .stride_h = 1, .stride_w = 1,
                             .pad_top = s->KH - 1 - s->pad_top, .pad_bottom = s->KH - 1 - s->pad_bottom,
                             .pad_left = s->KW - 1 - s->pad_left, .pad_right = s->KW - 1 - s->pad_right,
                             .groups = s->groups};
    conv2d_shape_finish(&t);
    TP_ASSERT(t.OH == s->H && t.OW == s->W);
    const int G = s->groups, Cg = s->C / G, OCg = s->OC / G, KK = s->KH * s->KW;
    /* wt[c][j][k'] = weight[g*OCg + j][c - g*Cg][KK-1-k'], g the group of c */
    float *wt = tp_aligned_alloc(conv2d_weight_numel(s) * sizeof(float));
    for (int c = 0; c < s->C; c++) {
        const int g = c / Cg;
        for (int j = 0; j < OCg; j++) {
            const float *w = weight + ((size_t)(g * OCg + j) * Cg + (size_t)(c - g * Cg)) * KK;
            float *d = wt + ((size_t)c * OCg + j) * KK;
            for (int k = 0; k < KK; k++) d[k] = w[KK - 1 - k];
        }
    }
    forward_tile_or_im2col(dinp, 1.0f, dout, wt, &t);
    free(wt);
    return 1;
}

/* ---- 1x1, stride 1, no padding: the input already is the column matrix */

static void forward_pointwise(float *out, const float *inp, const float *weight,
                              const struct conv2d_shape *s)
{
    const size_t P = (size_t)s->H * s->W;
    for (int b = 0; b < s->B; b++)
        tp_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->OC, (int)P, s->C,
                 1.0f, weight, s->C, inp + (size_t)b * s->C * P, (int)P,
                 0.0f, out + (size_t)b * s->OC * P, (int)P);
}

static void backward_pointwise(float *dinp, float *dweight, const float *dout,
                               const float *inp, const float *weight,
                               const struct conv2d_shape *s)
{
    const size_t P = (size_t)s->H * s->W;
    for (int b = 0; b < s->B; b++) {
        const float *d = dout + (size_t)b * s->OC * P;
        if (dweight) /* dW[OC, C] += d[OC, P] @ inp_b[C, P]^T */
            tp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->OC, s->C, (int)P,
                     1.0f, d, (int)P, inp + (size_t)b * s->C * P, (int)P,
                     1.0f, dweight, s->C);
        if (dinp) /* dinp_b[C, P] += W[OC, C]^T @ d[OC, P] */
            tp_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->C, (int)P, s->OC,
                     1.0f, weight, s->C, d, (int)P,
                     1.0f, dinp + (size_t)b * s->C * P, (int)P);
    }
}

/* ---- dispatch ---------------------------------------------------------- */

void conv2d_forward(float *out, const float *inp, const float *weight,
                    const float *bias, const struct conv2d_shape *s)
{
    if (is_depthwise(s)) {
        conv2d_forward_direct(out, inp, weight, bias, s);
        return;
    }
    if (is_pointwise(s))
        forward_pointwise(out, inp, weight, s);
    else
        forward_tile_or_im2col(out, 0.0f, inp, weight, s);
    if (bias) bias_forward(out, bias, s->B, s->OC, (size_t)s->OH * s->OW);
}

void conv2d_backward(float *dinp, float *dweight, float *dbias,
                     const float *dout, const float *inp, const float *weight,
                     const struct conv2d_shape *s)
{
    if (is_depthwise(s)) {
        conv2d_backward_direct(dinp, dweight, dbias, dout, inp, weight, s);
        return;
    }
    if (dbias) bias_backward(dbias, dout, s->B, s->OC, (size_t)s->OH * s->OW);
    if (is_pointwise(s))
        backward_pointwise(dinp, dweight, dout, inp, weight, s);
    else {
        if (dinp && dinp_as_conv(dinp, dout, weight, s)) dinp = NULL;
        if (dweight && conv2d_tile_dweight_applies(s)) {
            conv2d_tile_dweight(dweight, dout, inp, s);
            dweight = NULL;
        }
        if (dinp || dweight) im2col_pass(NULL, 0.0f, dinp, dweight, dout, inp, weight, s);
    }
}

/* ---- parameter tables -------------------------------------------------- */

struct convnet_param convnet_param(const char *name, int ndim, int64_t d0,
                                   int64_t d1, int64_t d2, int64_t d3)
{
    TP_ASSERT(ndim >= 1 && ndim <= 4);
    struct convnet_param p = {.name = name, .ndim = ndim, .shape = {d0, d1, d2, d3}, .numel = 1};
    for (int i = 0; i < ndim; i++) {
        TP_ASSERT(p.shape[i] > 0);
        p.numel *= (size_t)p.shape[i];
    }
    for (int i = ndim; i < 4; i++) p.shape[i] = 0;
    return p;
}

size_t convnet_params_point(float **const *slots, const struct convnet_param *params,
                            int n, float *base)
{
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (base) *slots[i] = base + off;
        off += params[i].numel;
    }
    return off;
}
