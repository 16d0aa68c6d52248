/* simd_avx2.h - the vector operations the register-tile kernels are
 * written in, for AVX2 + FMA: included right before a kernel header
 * (conv2d_tile_impl.h, linear_tile_impl.h, ...), which undefines them at
 * its end (simd_undef.h). The functions that use them carry
 * __attribute__((target("avx2,fma"))). */
#include <immintrin.h>

#define vec __m256
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VBCAST(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
