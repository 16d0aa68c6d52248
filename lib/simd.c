/* simd.c - the vector width of the tile kernels (see simd.h). */
#include "simd.h"
#include "err.h"

static int vl_forced = -1; /* simd_set_vl; -1: what the CPU has */

int simd_cpu_vl(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("avx512f")) return 16;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 8;
#endif
    return 0;
}

int simd_vl(void) { return vl_forced >= 0 ? vl_forced : simd_cpu_vl(); }

void simd_set_vl(int vl)
{
    TP_ASSERT(vl == -1 || vl == 0 || vl == 8 || vl == 16);
    TP_ASSERT(vl <= simd_cpu_vl());
    vl_forced = vl;
}
