/* linear_tile_impl.h - the tile kernel of linear_tile.c for one
 * instruction set, included once per set. The includer defines:
 *   LT_VL      floats in a vector register
 *   LT_NV      vectors in a panel (PW = LT_NV * LT_VL)
 *   LT_TARGET  the function attribute that enables the set
 *   LT_ROWS    the name of the function this defines (rows_fn's type)
 * and includes simd_avx512.h or simd_avx2.h (the vector operations) right
 * before; this file undefines all of them at its end. */

/* The activation on a tile's outputs while they are in L1; a function of
 * its own, so that the tile's accumulators keep their registers. */
static __attribute__((noinline)) LT_TARGET void LT_CAT(act_, LT_ROWS)(float *out, int R, int OC,
                                                                     enum linear_tile_act act)
{
    for (int r = 0; r < R; r++) {
        float *o = out + (size_t)r * OC;
        if (act == LINEAR_TILE_GELU) {
#pragma omp simd
            for (int j = 0; j < LT_NV * LT_VL; j++) o[j] = act_gelu(o[j]);
        } else {
            for (int j = 0; j < LT_NV * LT_VL; j++) o[j] = act_gelu_tanh(o[j]);
        }
    }
}

/* One tile of R rows (a compile-time constant at each call site, so acc
 * stays in registers): R x LT_NV accumulators. */
static inline __attribute__((always_inline)) LT_TARGET void
LT_CAT(tile_, LT_ROWS)(const int R, const struct lt_at *at, int C, int OC, enum linear_tile_act act)
{
    vec acc[LT_NV][LT_RMAX];
#pragma GCC unroll 4
    for (int v = 0; v < LT_NV; v++) {
        const vec b = at->bias ? VLOAD(at->bias + v * LT_VL) : VZERO();
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) acc[v][r] = b;
    }
    const float *w = at->w, *x = at->x;
    for (int c = 0; c < C; c++, w += LT_NV * LT_VL) {
        vec wv[LT_NV];
#pragma GCC unroll 4
        for (int v = 0; v < LT_NV; v++) wv[v] = VLOAD(w + v * LT_VL);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const vec xv = VBCAST(x[(size_t)r * C + c]);
#pragma GCC unroll 4
            for (int v = 0; v < LT_NV; v++) acc[v][r] = VFMA(wv[v], xv, acc[v][r]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        float *o = at->out + (size_t)r * OC;
#pragma GCC unroll 4
        for (int v = 0; v < LT_NV; v++) {
            vec a = acc[v][r];
            if (at->add) a = VADD(a, VLOAD(at->add + (size_t)r * OC + v * LT_VL));
            VSTORE(o + v * LT_VL, a);
        }
    }
    if (act != LINEAR_TILE_NONE) LT_CAT(act_, LT_ROWS)(at->out, R, OC, act);
}

#define LT_CASE(r) \
    case r: LT_CAT(tile_, LT_ROWS)(r, at, C, OC, act); break;

static LT_TARGET void LT_CAT(run_, LT_ROWS)(int r, const struct lt_at *at, int C, int OC, enum linear_tile_act act)
{
    switch (r) {
        LT_CASE(1) LT_CASE(2) LT_CASE(3) LT_CASE(4) LT_CASE(5) LT_CASE(6)
    default: TP_ASSERT(0);
    }
}

#undef LT_CASE

/* Panel by panel (its packed weights stay in cache while the rows go by),
 * rows in tiles of LT_RMAX and one tile of what is left. */
static LT_TARGET void LT_ROWS(const struct lt_call *k)
{
    const int PW = LT_NV * LT_VL;
    for (int p = 0; p < k->OC / PW; p++)
        for (int r0 = 0; r0 < k->BT; r0 += LT_RMAX) {
            const int r = k->BT - r0 < LT_RMAX ? k->BT - r0 : LT_RMAX;
            const size_t o = (size_t)r0 * k->OC + (size_t)p * PW;
            const struct lt_at at = {.x = k->inp + (size_t)r0 * k->C,
                                     .w = k->packed + (size_t)p * k->C * PW,
                                     .bias = k->bias ? k->bias + (size_t)p * PW : NULL,
                                     .add = k->add ? k->add + o : NULL,
                                     .out = k->out + o};
            LT_CAT(run_, LT_ROWS)(r, &at, k->C, k->OC, k->act);
        }
}

#undef LT_VL
#undef LT_NV
#undef LT_TARGET
#undef LT_ROWS
#include "simd_undef.h"
