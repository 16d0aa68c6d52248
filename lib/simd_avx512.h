/* simd_avx512.h - the vector operations the register-tile kernels are
 * written in, for AVX-512: included right before a kernel header
 * (conv2d_tile_impl.h, linear_tile_impl.h, ...), which undefines them at
 * its end (simd_undef.h). The functions that use them carry
 * __attribute__((target("avx512f"))). */
#include <immintrin.h>

#define vec __m512
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VBCAST(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
