/* conv2d_ptile_impl.h - the position-tile kernels of conv2d_tile.c for one
 * instruction set, included once per set that uses them. A forward tile is
 * R output channels times NV vectors of positions along output rows: R*NV
 * accumulators; for each (c, kh, kw) NV input vectors loaded (unaligned,
 * straight from the padded image) and R weights broadcast. The sums leave
 * as whole vectors of an output row, with no transposition. The weight
 * gradient by position vectors (pdw_*) is here too. The includer defines:
 *   PT_VL      floats in a vector register (OW must be a multiple)
 *   PT_TARGET  the function attribute that enables the set
 *   PT_ROWS    the name of the forward function (ptile_fn's type); the
 *              weight gradient's is pdw_ PT_ROWS (pdw_fn's type)
 *   PT_CAT     token pasting
 * and includes simd_avx512.h or simd_avx2.h (the vector operations) right
 * before; this file undefines all of them at its end. */

/* One tile; R and NV compile-time constants at each call site (always
 * inlined into the cases below), so acc stays in registers. */
static inline __attribute__((always_inline)) PT_TARGET void
PT_CAT(ptile_, PT_ROWS)(const int R, const int NV, const struct ptile_at *at,
                        const struct tile_geom *g)
{
    vec acc[PT_RMAX][PT_NVMAX];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 12
        for (int v = 0; v < NV; v++) acc[r][v] = VZERO();
    const float *w = at->w;
    for (int c = 0; c < g->C; c++)
        for (int kh = 0; kh < g->KH; kh++) {
            const size_t o = (size_t)c * g->cs + (size_t)kh * g->rs;
            for (int kw = 0; kw < g->KW; kw++, w += R) {
                vec xv[PT_NVMAX];
#pragma GCC unroll 12
                for (int v = 0; v < NV; v++) xv[v] = VLOAD(at->x + at->xoff[v] + o + kw);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    const vec wb = VBCAST(w[r]);
#pragma GCC unroll 12
                    for (int v = 0; v < NV; v++) acc[r][v] = VFMA(xv[v], wb, acc[r][v]);
                }
            }
        }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 12
        for (int v = 0; v < NV; v++) {
            float *o = at->out + (size_t)r * g->P + at->qoff[v];
            VSTORE(o, g->accumulate ? VADD(VLOAD(o), acc[r][v]) : acc[r][v]);
        }
}

#define PT_CASE(r, nv) \
    case nv: PT_CAT(ptile_, PT_ROWS)(r, nv, at, g); break;

/* R channels (1 to 4) and NV vectors (1 to PT_NV_OF(R)) as constants */
static PT_TARGET void PT_CAT(prun_, PT_ROWS)(int r, int nv, const struct ptile_at *at,
                                             const struct tile_geom *g)
{
    switch (r) {
    case 4: switch (nv) { PT_CASE(4, 1) PT_CASE(4, 2) PT_CASE(4, 3) default: TP_ASSERT(0); } break;
    case 3: switch (nv) { PT_CASE(3, 1) PT_CASE(3, 2) PT_CASE(3, 3) PT_CASE(3, 4) default: TP_ASSERT(0); } break;
    case 2: switch (nv) { PT_CASE(2, 1) PT_CASE(2, 2) PT_CASE(2, 3) PT_CASE(2, 4) PT_CASE(2, 5) default: TP_ASSERT(0); } break;
    case 1: switch (nv) { PT_CASE(1, 1) PT_CASE(1, 2) PT_CASE(1, 3) PT_CASE(1, 4) PT_CASE(1, 5) PT_CASE(1, 6)
                          PT_CASE(1, 7) PT_CASE(1, 8) PT_CASE(1, 9) PT_CASE(1, 10) PT_CASE(1, 11) PT_CASE(1, 12)
                          default: TP_ASSERT(0); } break;
    default: TP_ASSERT(0);
    }
}

#undef PT_CASE

/* Part `part` of `parts` of one image's position tiles (tiles of
 * PT_NV_OF of the first block's channels, as even as can be), each through
 * every channel block while its inputs are in L1: the blocks' weights
 * stream by in order. */
static PT_TARGET void PT_ROWS(const struct ptile_job *j, int part, int parts)
{
    const struct tile_geom *g = j->g;
    const int NB = (j->OC + 3) / 4, nvmax = PT_NV_OF(j->OC < 4 ? j->OC : 4);
    const int per_row = g->OW / PT_VL, NQ = g->OH * per_row, tiles = (NQ + nvmax - 1) / nvmax;
    struct ptile_at at = {.x = j->xp};
    const int t0 = (int)((long)tiles * part / parts), t1 = (int)((long)tiles * (part + 1) / parts);
    for (int i = t0; i < t1; i++) {
        const int nv = NQ / tiles + (i < NQ % tiles), q = i * (NQ / tiles) + (i < NQ % tiles ? i : NQ % tiles);
        for (int v = 0; v < nv; v++) {
            const int oh = (q + v) / per_row, ow = (q + v) % per_row * PT_VL;
            at.xoff[v] = (size_t)oh * g->rs + (size_t)ow;
            at.qoff[v] = (size_t)oh * g->OW + (size_t)ow;
        }
        for (int ob = 0; ob < NB; ob++) {
            const int r = j->OC - 4 * ob < 4 ? j->OC - 4 * ob : 4;
            at.w = j->wpack + (size_t)4 * ob * g->K;
            at.out = j->out + (size_t)4 * ob * g->P;
            PT_CAT(prun_, PT_ROWS)(r, nv, &at, g);
        }
    }
}

/* ---- weight gradient of a few output channels ------------------------- */

/* dW of one output channel and TN taps of one input channel over one
 * image: acc[t] += dout's vector at p times the input's at p + off[t], for
 * every position vector p; the lanes summed in order at the end, added to
 * dw[t]. x: the channel's padded rows (stride g->rs); d: the channel's
 * output plane. */
static inline __attribute__((always_inline)) PT_TARGET void
PT_CAT(pdwtile_, PT_ROWS)(const int TN, const float *x, const float *d, float *dw, const size_t *off,
                          const struct tile_geom *g)
{
    vec acc[PT_NVMAX];
#pragma GCC unroll 12
    for (int t = 0; t < TN; t++) acc[t] = VZERO();
    for (int oh = 0; oh < g->OH; oh++) {
        const float *xr = x + (size_t)oh * g->rs, *dr = d + (size_t)oh * g->OW;
        for (int ow = 0; ow < g->OW; ow += PT_VL) {
            const vec dv = VLOAD(dr + ow);
#pragma GCC unroll 12
            for (int t = 0; t < TN; t++) acc[t] = VFMA(dv, VLOAD(xr + ow + off[t]), acc[t]);
        }
    }
#pragma GCC unroll 12
    for (int t = 0; t < TN; t++) {
        float lane[PT_VL], sum = 0.0f;
        VSTORE(lane, acc[t]);
        for (int i = 0; i < PT_VL; i++) sum += lane[i];
        dw[t] += sum;
    }
}

#define PDW_CASE(tn) \
    case tn: PT_CAT(pdwtile_, PT_ROWS)(tn, x, d, dw, off, g); break;

/* One image's weight gradient into dw ([OC][C][KH][KW]) by position
 * vectors: for each output and input channel, the taps in groups of at
 * most PT_NVMAX, as even as can be. xp: the padded image, rows of channels
 * (g->cs, g->rs); dout: the image's output planes. */
static PT_TARGET void PT_CAT(pdw_, PT_ROWS)(const struct tile_geom *g, const float *xp, const float *dout,
                                            float *dwt, int OC)
{
    const int KK = g->KH * g->KW, groups = (KK + PT_NVMAX - 1) / PT_NVMAX;
    size_t *offs = tp_malloc((size_t)KK * sizeof *offs); /* each tap's offset in the padded rows */
    for (int t = 0; t < KK; t++) offs[t] = (size_t)(t / g->KW) * g->rs + (size_t)(t % g->KW);
    for (int oc = 0; oc < OC; oc++)
        for (int c = 0; c < g->C; c++)
            for (int i = 0, t0 = 0; i < groups; i++) {
                const int tn = KK / groups + (i < KK % groups);
                const float *x = xp + (size_t)c * g->cs, *d = dout + (size_t)oc * g->P;
                float *dw = dwt + ((size_t)oc * g->C + c) * KK + t0;
                const size_t *off = offs + t0;
                switch (tn) {
                    PDW_CASE(1) PDW_CASE(2) PDW_CASE(3) PDW_CASE(4) PDW_CASE(5) PDW_CASE(6)
                    PDW_CASE(7) PDW_CASE(8) PDW_CASE(9) PDW_CASE(10) PDW_CASE(11) PDW_CASE(12)
                default: TP_ASSERT(0);
                }
                t0 += tn;
            }
    free(offs);
}

#undef PDW_CASE

#undef PT_CAT
#undef PT_VL
#undef PT_TARGET
#undef PT_ROWS
#include "simd_undef.h"
