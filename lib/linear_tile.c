/* linear_tile.c - a linear layer's inference product by register tiles
 * (see linear_tile.h). The kernel is compiled for AVX-512 and for AVX2 +
 * FMA (linear_tile_impl.h, by function attributes, as conv2d_tile.c) and
 * chosen by simd_vl(). */
#include "linear_tile.h"

#include "act.h"
#include "blas.h"
#include "err.h"
#include "simd.h"

#include <stdlib.h>
#include <string.h>

#define LT_RMAX 6 /* rows per tile: 6 x 4 accumulators of 32 AVX-512 registers (6 x 2 of AVX2's 16) */

/* where one tile reads and writes */
struct lt_at {
    const float *x, *w, *bias, *add;
    float *out;
};

/* one call's operands */
struct lt_call {
    float *out;
    const float *inp, *packed, *bias, *add;
    int BT, C, OC;
    enum linear_tile_act act;
};

typedef void rows_fn(const struct lt_call *k);

#define LT_CAT_(a, b) a##b
#define LT_CAT(a, b) LT_CAT_(a, b)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define LT_VL 16
#define LT_NV 4
#define LT_TARGET __attribute__((target("avx512f")))
#define LT_ROWS rows_avx512
#include "simd_avx512.h"
#include "linear_tile_impl.h"

#define LT_VL 8
#define LT_NV 2
#define LT_TARGET __attribute__((target("avx2,fma")))
#define LT_ROWS rows_avx2
#include "simd_avx2.h"
#include "linear_tile_impl.h"

static rows_fn *rows_for(int vl) { return vl == 16 ? rows_avx512 : vl == 8 ? rows_avx2 : NULL; }

#else

static rows_fn *rows_for(int vl) { (void)vl; return NULL; }

#endif

/* outputs per panel at vector width vl: 4 vectors of AVX-512, 2 of AVX2 */
static int panel_width(int vl) { return vl == 16 ? 64 : vl == 8 ? 16 : 0; }

size_t linear_tile_packed_floats(int C, int OC)
{
    const int pw = panel_width(simd_vl()); /* 0 where no kernel is built: simd_vl() is 0 there */
    return pw && OC % pw == 0 ? (size_t)C * OC : 0;
}

void linear_tile_pack(float *packed, const float *weight, int C, int OC)
{
    const int pw = panel_width(simd_vl());
    TP_ASSERT(pw > 0 && OC % pw == 0);
    for (int p = 0; p < OC / pw; p++)
        for (int j = 0; j < pw; j++) {
            const float *wr = weight + (size_t)(p * pw + j) * C;
            float *d = packed + (size_t)p * C * pw + j;
            for (int c = 0; c < C; c++) d[(size_t)c * pw] = wr[c];
        }
}

void linear_tile_pack_t(float *packed, const float *weight, int C, int OC)
{
    const int pw = panel_width(simd_vl());
    TP_ASSERT(pw > 0 && C % pw == 0);
    for (int p = 0; p < C / pw; p++)
        for (int k = 0; k < OC; k++)
            memcpy(packed + ((size_t)p * OC + k) * pw, weight + (size_t)k * C + (size_t)p * pw, sizeof(float) * pw);
}

void linear_tile_forward(float *out, const float *inp, const float *packed, const float *bias,
                         const float *add, int BT, int C, int OC, enum linear_tile_act act)
{
    rows_fn *fn = rows_for(simd_vl());
    TP_ASSERT(fn && OC % panel_width(simd_vl()) == 0 && BT >= 0 && C >= 1);
    const struct lt_call k = {out, inp, packed, bias, add, BT, C, OC, act};
    tp_product_count(BT, OC, C, add != NULL);
    fn(&k);
}

float *linear_tile_cache_get(struct linear_tile_cache *c, size_t n, unsigned long version, int *stale)
{
    *stale = !c->mem || c->floats != n || c->version != version || c->vl != simd_vl();
    if (c->mem && c->floats != n) linear_tile_cache_free(c);
    if (!c->mem) c->mem = tp_aligned_alloc(n * sizeof(float)), c->floats = n;
    c->version = version, c->vl = simd_vl();
    return c->mem;
}

void linear_tile_cache_free(struct linear_tile_cache *c)
{
    free(c->mem);
    memset(c, 0, sizeof *c);
}

const float *linear_tile_cached(struct linear_tile_cache *c, const float *weight, int C, int OC,
                                unsigned long version)
{
    const size_t n = linear_tile_packed_floats(C, OC);
    if (!n) return NULL;
    int stale;
    float *p = linear_tile_cache_get(c, n, version, &stale);
    if (stale) linear_tile_pack(p, weight, C, OC);
    return p;
}
