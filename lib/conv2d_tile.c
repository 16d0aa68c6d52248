/* conv2d_tile.c - forward convolution at stride 1 by register tiles (see
 * conv2d_tile.h). A tile is R consecutive outputs of one row times NV
 * vectors of output channels: NV*R accumulators, and for each (c, kh, kw)
 * NV weight vectors loaded and R input values broadcast. The kernel is
 * compiled for AVX-512 and for AVX2 + FMA (conv2d_tile_impl.h, by function
 * attributes, so the rest of the build keeps its flags: valgrind runs no
 * AVX-512) and chosen by what the CPU says it has. */
#include "conv2d_tile.h"
#include "chunks.h"

#include <string.h>

#include "blas.h"
#include "cli.h"
#include "err.h"
#include "simd.h"

/* Where a tile reads and writes. x: the padded image at channel 0, at the
 * tile's first input (row oh, column ow0); w: the packed weights of its
 * channel block, [K][NV*VL]; out: its first output in the row buffer
 * ([NV*VL][OW], at column ow0). */
struct tile_at {
    const float *x, *w;
    float *out;
};

/* The geometry every tile of one call shares. */
struct tile_geom {
    size_t plane, P, K; /* floats in a padded input plane (the copy holds C), in an output plane; C*KH*KW */
    size_t cs, rs;      /* the padded copy's channel and row strides (pad_image) */
    int Wp, OH, OW, C, KH, KW;
    int accumulate; /* add to out (beta 1) instead of writing it */
};

/* One image's work: its padded copy, its output, the packed weights, and
 * the thread's row buffer. */
struct rows_job {
    const struct tile_geom *g;
    const float *xp, *wpack;
    float *out, *row;
    int nv; /* channel vectors per tile: 4, 2, or 1 (vectors_per_tile) */
};

/* Output row oh of channels [oc0, oc0+n) from the row buffer. */
static void row_out(const struct rows_job *j, int oc0, int n, int oh)
{
    const struct tile_geom *g = j->g;
    for (int o = 0; o < n; o++) {
        float *dst = j->out + (size_t)(oc0 + o) * g->P + (size_t)oh * g->OW;
        const float *src = j->row + (size_t)o * g->OW;
        if (g->accumulate)
            for (int i = 0; i < g->OW; i++) dst[i] += src[i];
        else
            memcpy(dst, src, (size_t)g->OW * sizeof(float));
    }
}

typedef void rows_fn(const struct rows_job *j, int ob, int oh0, int oh1);

/* Where a weight-gradient tile reads and adds. x: the padded plane of its
 * input channel; dT: its channel block of dout^T ([P][NV*VL]); dw: its
 * first (oc, c, tap) in dW ([OC][K]); off: each tap's offset in x. */
struct dw_at {
    const float *x, *dT;
    float *dw;
    int off[24];
};

/* One image's weight gradient: its padded copy, dout^T, where to add. */
struct dw_job {
    const struct tile_geom *g;
    const float *xp, *dT;
    float *dw;
    int nv, OC;
};

typedef void dw_fn(const struct dw_job *j);

/* Where a position tile reads and writes (conv2d_ptile_impl.h). x: the
 * padded image; w: its channel block's packed weights, [K][R]; out: the
 * block's first output plane; xoff, qoff: each position vector's first
 * input (padded) and output position. */
#define PT_RMAX 4
#define PT_NVMAX 12
#define PT_NV_OF(r) ((r) == 4 ? 3 : (r) == 3 ? 4 : (r) == 2 ? 5 : 12) /* about 12 accumulators */
struct ptile_at {
    const float *x, *w;
    float *out;
    size_t xoff[PT_NVMAX], qoff[PT_NVMAX];
};

/* One image's position tiles: its padded copy, output, the packed weights. */
struct ptile_job {
    const struct tile_geom *g;
    const float *xp, *wpack;
    float *out;
    int OC;
};

typedef void ptile_fn(const struct ptile_job *j, int part, int parts);
typedef void pdw_fn(const struct tile_geom *g, const float *xp, const float *dout, float *dw, int OC);

#define TILE_CAT_(a, b) a##b
#define TILE_CAT(a, b) TILE_CAT_(a, b)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define TILE_VL 16
#define TILE_ACC 24 /* 32 registers less the weights and the broadcast value */
#define TILE_NVMAX 4
#define TILE_TARGET __attribute__((target("avx512f")))
#define TILE_ROWS rows_avx512
#define TILE_DW dw_avx512
#include "simd_avx512.h"
#include "conv2d_tile_impl.h"

#define TILE_VL 8
#define TILE_ACC 12 /* of 16 */
#define TILE_NVMAX 2 /* four would leave tiles of 3 positions */
#define TILE_TARGET __attribute__((target("avx2,fma")))
#define TILE_ROWS rows_avx2
#define TILE_DW dw_avx2
#include "simd_avx2.h"
#include "conv2d_tile_impl.h"

#define PT_CAT TILE_CAT
#define PT_VL 8
#define PT_TARGET __attribute__((target("avx2,fma")))
#define PT_ROWS ptile_avx2
#include "simd_avx2.h"
#include "conv2d_ptile_impl.h"

static rows_fn *rows_for(int vl)
{
    return vl == 16 ? rows_avx512 : vl == 8 ? rows_avx2 : NULL;
}

static dw_fn *dw_for(int vl)
{
    return vl == 16 ? dw_avx512 : vl == 8 ? dw_avx2 : NULL;
}

static ptile_fn *ptile_for(int vl) { return vl == 8 ? ptile_avx2 : NULL; }
static pdw_fn *pdw_for(int vl) { return vl == 8 ? pdw_ptile_avx2 : NULL; }

#else

static rows_fn *rows_for(int vl) { (void)vl; return NULL; }
static dw_fn *dw_for(int vl) { (void)vl; return NULL; }
static ptile_fn *ptile_for(int vl) { (void)vl; return NULL; }
static pdw_fn *pdw_for(int vl) { (void)vl; return NULL; }

#endif

/* The forward by position tiles: with AVX2 (measured there; the AVX-512
 * build keeps the channel tiles it was tuned with), output rows of whole
 * vectors. */
static int position_tiles(const struct conv2d_shape *s, int vl)
{
    return ptile_for(vl) && s->OW % vl == 0;
}

/* the channel tiles: output channels in whole vectors, enough terms */
static int channel_tiles(const struct conv2d_shape *s, int vl)
{
    return vl > 0 && s->OC % vl == 0 && s->C * s->KH * s->KW >= CONV2D_TILE_K_MIN;
}

static int plain_conv(const struct conv2d_shape *s)
{
    return s->stride_h == 1 && s->stride_w == 1 && s->groups == 1;
}

int conv2d_tile_applies(const struct conv2d_shape *s)
{
    const int vl = simd_vl();
    return plain_conv(s) && (position_tiles(s, vl) || channel_tiles(s, vl));
}

/* the same shapes as the forward: the channel tiles' gradient where they
 * apply, else the position vectors' */
int conv2d_tile_dweight_applies(const struct conv2d_shape *s) { return conv2d_tile_applies(s); }

/* g for the position tiles: the padded copy in rows of channels, so that
 * a tile's inputs (every channel's rows oh..oh+KH-1) lie together, not each
 * channel's on a page of its own (32x32: planes of 4.6 KB); 1-6% faster
 * (bench/levers.md) */
static void rows_of_channels(struct tile_geom *g)
{
    g->cs = (size_t)g->Wp;
    g->rs = (size_t)g->C * g->Wp;
}

/* xp = the image surrounded by the shape's zero padding, element (c, h, w)
 * of the padded image at c*cs + h*rs + w: [C][Hp][Wp] (cs = Hp*Wp, rs =
 * Wp) or [Hp][C][Wp] (cs = Wp, rs = C*Wp). Each padded row written once
 * (zeros, the row, zeros), rather than a memset of the whole under the copy. */
static void pad_image(float *xp, const float *in, const struct conv2d_shape *s, size_t cs, size_t rs)
{
    const int Hp = s->H + s->pad_top + s->pad_bottom, Wp = s->W + s->pad_left + s->pad_right;
    for (int c = 0; c < s->C; c++)
        for (int h = 0; h < Hp; h++) {
            float *d = xp + (size_t)c * cs + (size_t)h * rs;
            const int ih = h - s->pad_top;
            if (ih < 0 || ih >= s->H) {
                memset(d, 0, (size_t)Wp * sizeof(float));
                continue;
            }
            for (int i = 0; i < s->pad_left; i++) d[i] = 0.0f;
            memcpy(d + s->pad_left, in + ((size_t)c * s->H + ih) * s->W, (size_t)s->W * sizeof(float));
            for (int i = s->pad_left + s->W; i < Wp; i++) d[i] = 0.0f;
        }
}

static struct tile_geom geom_of(const struct conv2d_shape *s, float beta)
{
    const int Wp = s->W + s->pad_left + s->pad_right;
    const size_t plane = (size_t)(s->H + s->pad_top + s->pad_bottom) * Wp;
    return (struct tile_geom){.plane = plane,
                              .P = (size_t)s->OH * s->OW,
                              .K = (size_t)s->C * s->KH * s->KW,
                              .cs = plane, .rs = (size_t)Wp, /* [C][Hp][Wp] */
                              .Wp = Wp, .OH = s->OH, .OW = s->OW,
                              .C = s->C, .KH = s->KH, .KW = s->KW,
                              .accumulate = beta != 0.0f};
}

/* Channel vectors per tile: as many as OC holds whole, up to max (4 or 2)
 * and four only with AVX-512 (a tile of 4 vectors x 6 positions loads 4
 * weights and broadcasts 6 inputs for 24 FMAs; 2 x 8 broadcast 8 for 16);
 * with AVX2 four would leave tiles of 3 positions. */
static int vectors_per_tile(const struct conv2d_shape *s, int vl, int max)
{
    if (max >= 4 && vl == 16 && s->OC % (4 * vl) == 0) return 4;
    return s->OC % (2 * vl) == 0 ? 2 : 1;
}

/* One image's share of a forward: part `part` of `parts` of its work,
 * from its padded copy xp into out (the image's output planes). */
struct fwd_plan {
    const struct tile_geom *g;
    const float *wpack;
    rows_fn *rows; /* the channel tiles, or */
    ptile_fn *ptile; /* the position tiles */
    int nv, OC;
};

static void image_forward(const struct fwd_plan *f, const float *xp, float *out, float *row,
                          int part, int parts)
{
    if (f->ptile) {
        const struct ptile_job j = {f->g, xp, f->wpack, out, f->OC};
        f->ptile(&j, part, parts);
        return;
    }
    const struct rows_job j = {f->g, xp, f->wpack, out, row, f->nv};
    const int OH = f->g->OH, items = f->OC / (f->nv * simd_vl()) * OH; /* (channel block, row) */
    for (int i = (int)((long)items * part / parts); i < (int)((long)items * (part + 1) / parts); i++)
        f->rows(&j, i / OH, i % OH, i % OH + 1);
}

/* The packed weights of either kind of tile, blocks of n channels (the
 * last block may be short: the position tiles' of fewer than 4):
 * wpack[block*n*K + k*r + o] = weight[block*n + o][k], r the block's
 * channels. */
static float *pack_weights(const float *weight, int OC, size_t K, int n)
{
    float *wpack = tp_aligned_alloc((size_t)OC * K * sizeof(float));
    for (int b0 = 0; b0 < OC; b0 += n) {
        const int r = OC - b0 < n ? OC - b0 : n;
        for (size_t k = 0; k < K; k++)
            for (int o = 0; o < r; o++) wpack[(size_t)b0 * K + k * r + o] = weight[((size_t)b0 + o) * K + k];
    }
    return wpack;
}

void conv2d_tile_forward(float *out, float beta, const float *inp, const float *weight,
                         const struct conv2d_shape *s)
{
    TP_ASSERT(conv2d_tile_applies(s) && (beta == 0.0f || beta == 1.0f));
    const int vl = simd_vl();
    struct tile_geom g = geom_of(s, beta);
    struct fwd_plan f = {.g = &g, .OC = s->OC};
    if (position_tiles(s, vl)) {
        rows_of_channels(&g);
        f.ptile = ptile_for(vl);
        f.wpack = pack_weights(weight, s->OC, g.K, PT_RMAX);
    } else {
        f.rows = rows_for(vl);
        f.nv = vectors_per_tile(s, vl, 4);
        f.wpack = pack_weights(weight, s->OC, g.K, f.nv * vl);
    }
    const size_t row_floats = f.rows ? (size_t)f.nv * vl * s->OW : 0;
    const int T = tp_threads();
    const size_t img_out = (size_t)s->OC * g.P, img_in = (size_t)s->C * s->H * s->W;
    if (s->B >= T) { /* the images shared among the threads */
#pragma omp parallel num_threads(T)
        {
            float *xp = tp_aligned_alloc((size_t)s->C * g.plane * sizeof(float));
            float *row = row_floats ? tp_aligned_alloc(row_floats * sizeof(float)) : NULL;
#pragma omp for schedule(static)
            for (int b = 0; b < s->B; b++) {
                pad_image(xp, inp + (size_t)b * img_in, s, g.cs, g.rs);
                image_forward(&f, xp, out + (size_t)b * img_out, row, 0, 1);
            }
            free(row);
            free(xp);
        }
    } else { /* fewer images than threads: each image's work shared */
        float *xp = tp_aligned_alloc((size_t)s->C * g.plane * sizeof(float));
        for (int b = 0; b < s->B; b++) {
            pad_image(xp, inp + (size_t)b * img_in, s, g.cs, g.rs);
#pragma omp parallel num_threads(T)
            {
                float *row = row_floats ? tp_aligned_alloc(row_floats * sizeof(float)) : NULL;
                image_forward(&f, xp, out + (size_t)b * img_out, row, team_thread(), team_size());
                free(row);
            }
        }
        free(xp);
    }
    free((float *)f.wpack);
    tp_flops_add(2 * (uint64_t)s->B * s->OC * g.P * g.K);
}

/* dT[ob][p][o] = dout[ob*nvl + o][p] for one image */
static void transpose_dout(float *dT, const float *d, int OC, size_t P, int nvl)
{
    for (int oc = 0; oc < OC; oc++) {
        float *t = dT + (size_t)(oc / nvl) * P * nvl + oc % nvl;
        const float *src = d + (size_t)oc * P;
        for (size_t p = 0; p < P; p++) t[p * nvl] = src[p];
    }
}

void conv2d_tile_dweight(float *dweight, const float *dout, const float *inp,
                         const struct conv2d_shape *s)
{
    TP_ASSERT(conv2d_tile_dweight_applies(s));
    const int vl = simd_vl();
    /* the channel tiles where they apply, else the position vectors (a few
     * output channels, or few terms) */
    dw_fn *dwf = channel_tiles(s, vl) ? dw_for(vl) : NULL;
    pdw_fn *pdw = dwf ? NULL : pdw_for(vl);
    /* at most two vectors: each tile streams its block of dout^T over all
     * positions, and four vectors' (64 KB at 16x16) leave the L1 cache
     * (B32 64->64 16x16: 1.91-2.09 ms with two, 2.05-2.16 with four) */
    const int nv = vectors_per_tile(s, vl, 2), nvl = nv * vl;
    struct tile_geom g = geom_of(s, 0.0f);
    if (pdw) rows_of_channels(&g);
    const size_t WN = (size_t)s->OC * g.K, HW = (size_t)s->H * s->W;
    /* a chunk's thread (seqnet.c): one part, its images added straight into
     * dweight in order */
    const int alone = in_chunk();
    const int parts = alone ? 1 : s->B < CONV2D_DW_PARTS ? s->B : CONV2D_DW_PARTS;
    float *partial = alone ? NULL : tp_calloc((size_t)parts * WN, sizeof(float));
#pragma omp parallel num_threads(chunk_threads(parts))
    {
        float *xp = tp_aligned_alloc((size_t)s->C * g.plane * sizeof(float));
        float *dT = dwf ? tp_aligned_alloc((size_t)s->OC * g.P * sizeof(float)) : NULL;
#pragma omp for schedule(static)
        for (int part = 0; part < parts; part++) {
            const int b0 = (int)((long)s->B * part / parts), b1 = (int)((long)s->B * (part + 1) / parts);
            float *sum = alone ? dweight : partial + (size_t)part * WN;
            for (int b = b0; b < b1; b++) {
                pad_image(xp, inp + (size_t)b * s->C * HW, s, g.cs, g.rs);
                if (pdw) {
                    pdw(&g, xp, dout + (size_t)b * s->OC * g.P, sum, s->OC);
                    continue;
                }
                transpose_dout(dT, dout + (size_t)b * s->OC * g.P, s->OC, g.P, nvl);
                const struct dw_job j = {&g, xp, dT, sum, nv, s->OC};
                dwf(&j);
            }
        }
        free(dT);
        free(xp);
    }
    if (partial) {
        chunk_parts_add(dweight, partial, parts, WN, WN);
        free(partial);
    }
    tp_flops_add(2 * (uint64_t)s->B * WN * g.P);
}
