/* conv2d_tile_impl.h - the tile kernel of conv2d_tile.c for one instruction
 * set, included once per set. The includer defines:
 *   TILE_VL      floats in a vector register
 *   TILE_ACC     registers the accumulators may take
 *   TILE_NVMAX   channel vectors a tile may take: 4 or 2
 *   TILE_TARGET  the function attribute that enables the set
 *   TILE_ROWS    the name of the function this defines (rows_fn's type)
 *   TILE_DW      the name of the weight-gradient function (dw_fn's type)
 * and includes simd_avx512.h or simd_avx2.h (the vector operations) right
 * before; this file undefines all of them at its end. */

#define TILE_RMAX4 (TILE_ACC / 4) /* positions (or taps) per tile with four channel vectors */
#define TILE_RMAX2 (TILE_ACC / 2) /* with two */
#define TILE_RMAX1 TILE_ACC       /* with one */

/* TILE_DISPATCH(C, nv, n): a switch calling C(nv, n) with nv (1, 2 or 4)
 * and n (1..TILE_RMAXnv) as constants, so that each case is its own unrolled
 * kernel. C(nv, n) expands to "case n: ...; break;". */
#define TILE_1_6(C, nv) C(nv, 1) C(nv, 2) C(nv, 3) C(nv, 4) C(nv, 5) C(nv, 6)
#define TILE_7_12(C, nv) C(nv, 7) C(nv, 8) C(nv, 9) C(nv, 10) C(nv, 11) C(nv, 12)
#define TILE_13_24(C, nv) C(nv, 13) C(nv, 14) C(nv, 15) C(nv, 16) C(nv, 17) C(nv, 18) \
    C(nv, 19) C(nv, 20) C(nv, 21) C(nv, 22) C(nv, 23) C(nv, 24)
#if TILE_ACC == 24
#define TILE_CASES4(C) TILE_1_6(C, 4)
#define TILE_CASES2(C) TILE_1_6(C, 2) TILE_7_12(C, 2)
#define TILE_CASES1(C) TILE_1_6(C, 1) TILE_7_12(C, 1) TILE_13_24(C, 1)
#elif TILE_ACC == 12
#define TILE_CASES4(C) C(4, 1) C(4, 2) C(4, 3)
#define TILE_CASES2(C) TILE_1_6(C, 2)
#define TILE_CASES1(C) TILE_1_6(C, 1) TILE_7_12(C, 1)
#else
#error "TILE_ACC: 24 or 12"
#endif
#define TILE_DISPATCH(C, nv, n)                          \
    do {                                                 \
        if (TILE_NVMAX == 4 && (nv) == 4)                \
            switch (n) { TILE_CASES4(C) default: TP_ASSERT(0); } \
        else if ((nv) == 2)                              \
            switch (n) { TILE_CASES2(C) default: TP_ASSERT(0); } \
        else                                             \
            switch (n) { TILE_CASES1(C) default: TP_ASSERT(0); } \
    } while (0)

/* dst[o * stride + i] = (or +=, add) lane o % VL of acc[o / VL][i] for
 * o < NV*VL, i < N: the lanes are channels and dst's rows are channels, so
 * the registers go out through a transposing buffer. */
static inline __attribute__((always_inline)) TILE_TARGET void
TILE_CAT(spill_, TILE_ROWS)(const int NV, const int N, vec acc[4][TILE_RMAX1], float *dst,
                            size_t stride, int add)
{
    float t[TILE_RMAX1][4 * TILE_VL];
#pragma GCC unroll 24
    for (int i = 0; i < N; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) VSTORE(t[i] + v * TILE_VL, acc[v][i]);
    for (int o = 0; o < NV * TILE_VL; o++) {
        float *d = dst + (size_t)o * stride;
        if (add)
            for (int i = 0; i < N; i++) d[i] += t[i][o];
        else
            for (int i = 0; i < N; i++) d[i] = t[i][o];
    }
}

/* One tile, NV and R compile-time constants at each call site (always
 * inlined into the cases below), so acc stays in registers. */
static inline __attribute__((always_inline)) TILE_TARGET void
TILE_CAT(tile_, TILE_ROWS)(const int NV, const int R, const struct tile_at *at,
                           const struct tile_geom *g)
{
    vec acc[4][TILE_RMAX1];
#pragma GCC unroll 24
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[v][r] = VZERO();
    const float *w = at->w;
    for (int c = 0; c < g->C; c++)
        for (int kh = 0; kh < g->KH; kh++) {
            const float *row = at->x + (size_t)c * g->cs + (size_t)kh * g->rs;
            for (int kw = 0; kw < g->KW; kw++, w += NV * TILE_VL) {
                vec wv[4];
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++) wv[v] = VLOAD(w + v * TILE_VL);
                /* Each tap broadcasts its inputs from memory. Seeing that tap
                 * kw+1 reads tap kw's inputs shifted by one, the compiler kept
                 * them in registers and broadcast register to register: with
                 * 12 accumulators that spilled, and such a broadcast takes a
                 * vector pipe an FMA could use (a load-broadcast takes only a
                 * load port). Hiding where x comes from stops it. */
                const float *x = row + kw;
                __asm__("" : "+r"(x));
#pragma GCC unroll 24
                for (int r = 0; r < R; r++) {
                    const vec xv = VBCAST(x[r]);
#pragma GCC unroll 4
                    for (int v = 0; v < NV; v++) acc[v][r] = VFMA(wv[v], xv, acc[v][r]);
                }
            }
        }
    TILE_CAT(spill_, TILE_ROWS)(NV, R, acc, at->out, (size_t)g->OW, 0);
}

#define TILE_CASE(nv, r) \
    case r: TILE_CAT(tile_, TILE_ROWS)(nv, r, at, g); break;

static TILE_TARGET void TILE_CAT(run_, TILE_ROWS)(int nv, int r, const struct tile_at *at,
                                                  const struct tile_geom *g)
{
    TILE_DISPATCH(TILE_CASE, nv, r);
}

/* The rows [oh0, oh1) of channel block ob (nv vectors) of one image; a row
 * is cut into runs of at most TILE_RMAX positions, as even as can be. The
 * tiles write the row's channels into j->row, which is then copied out a
 * whole row at a time: storing each tile straight into the output planes
 * (4 KB apart at 32x32) evicted its own lines and cost half the time. */
static TILE_TARGET void TILE_ROWS(const struct rows_job *j, int ob, int oh0, int oh1)
{
    const struct tile_geom *g = j->g;
    const int rmax = j->nv == 4 ? TILE_RMAX4 : j->nv == 2 ? TILE_RMAX2 : TILE_RMAX1, nvl = j->nv * TILE_VL;
    const int runs = (g->OW + rmax - 1) / rmax;
    for (int oh = oh0; oh < oh1; oh++) {
        for (int i = 0, ow = 0; i < runs; i++) {
            const int r = g->OW / runs + (i < g->OW % runs);
            const struct tile_at at = {.x = j->xp + (size_t)oh * g->rs + ow,
                                       .w = j->wpack + (size_t)ob * g->K * nvl,
                                       .out = j->row + ow};
            TILE_CAT(run_, TILE_ROWS)(j->nv, r, &at, g);
            ow += r;
        }
        row_out(j, ob * nvl, nvl, oh);
    }
}

#undef TILE_CASE

/* ---- weight gradient --------------------------------------------------- */

/* dW of NV channel vectors times TN taps of one input channel, summed over
 * the positions of one image: for each position, NV vectors of dout^T
 * loaded, TN inputs broadcast. */
static inline __attribute__((always_inline)) TILE_TARGET void
TILE_CAT(dwtile_, TILE_ROWS)(const int NV, const int TN, const struct dw_at *at,
                             const struct tile_geom *g)
{
    vec acc[4][TILE_RMAX1];
#pragma GCC unroll 24
    for (int t = 0; t < TN; t++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[v][t] = VZERO();
    int off[TILE_RMAX1];
#pragma GCC unroll 24
    for (int t = 0; t < TN; t++) off[t] = at->off[t];
    const float *d = at->dT;
    for (int oh = 0; oh < g->OH; oh++) {
        const float *xrow = at->x + (size_t)oh * g->rs;
        for (int ow = 0; ow < g->OW; ow++, d += NV * TILE_VL) {
            vec dv[4];
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) dv[v] = VLOAD(d + v * TILE_VL);
#pragma GCC unroll 24
            for (int t = 0; t < TN; t++) {
                const vec xv = VBCAST(xrow[ow + off[t]]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++) acc[v][t] = VFMA(dv[v], xv, acc[v][t]);
            }
        }
    }
    TILE_CAT(spill_, TILE_ROWS)(NV, TN, acc, at->dw, g->K, 1); /* dW rows: stride K */
}

#define DW_CASE(nv, t) \
    case t: TILE_CAT(dwtile_, TILE_ROWS)(nv, t, at, g); break;

static TILE_TARGET void TILE_CAT(dwrun_, TILE_ROWS)(int nv, int tn, const struct dw_at *at,
                                                    const struct tile_geom *g)
{
    TILE_DISPATCH(DW_CASE, nv, tn);
}

/* One image's weight gradient into dw ([OC][K]): for each channel block
 * and input channel, the taps in groups of at most TILE_RMAX, as even as
 * can be. */
static TILE_TARGET void TILE_DW(const struct dw_job *j)
{
    const struct tile_geom *g = j->g;
    const int KK = g->KH * g->KW, nvl = j->nv * TILE_VL, NB = j->OC / nvl;
    const int tmax = j->nv == 4 ? TILE_RMAX4 : j->nv == 2 ? TILE_RMAX2 : TILE_RMAX1;
    const int groups = (KK + tmax - 1) / tmax;
    for (int ob = 0; ob < NB; ob++)
        for (int c = 0; c < g->C; c++)
            for (int i = 0, t0 = 0; i < groups; i++) {
                const int tn = KK / groups + (i < KK % groups);
                struct dw_at at = {.x = j->xp + (size_t)c * g->cs,
                                   .dT = j->dT + (size_t)ob * g->P * nvl,
                                   .dw = j->dw + (size_t)ob * nvl * g->K + (size_t)c * KK + t0};
                for (int t = 0; t < tn; t++)
                    at.off[t] = (int)((t0 + t) / g->KW * g->rs) + (t0 + t) % g->KW;
                TILE_CAT(dwrun_, TILE_ROWS)(j->nv, tn, &at, g);
                t0 += tn;
            }
}

#undef DW_CASE
#undef TILE_RMAX1
#undef TILE_RMAX2
#undef TILE_RMAX4
#undef TILE_1_6
#undef TILE_7_12
#undef TILE_13_24
#undef TILE_CASES1
#undef TILE_CASES2
#undef TILE_CASES4
#undef TILE_DISPATCH
/* the includer's parameters */
#undef TILE_VL
#undef TILE_ACC
#undef TILE_NVMAX
#undef TILE_TARGET
#undef TILE_ROWS
#undef TILE_DW
#include "simd_undef.h"
