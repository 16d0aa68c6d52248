/* simd.h - which vector width the register-tile kernels (conv2d_tile.c,
 * linear_tile.c) compile in use: 16 floats with AVX-512, 8 with AVX2 + FMA,
 * as the CPU says at run time, or 0 (none: the callers take sgemm). */
#ifndef TP_SIMD_H
#define TP_SIMD_H

/* what the CPU has: 16, 8 or 0 */
int simd_cpu_vl(void);
/* what the kernels use: simd_set_vl's, else what the CPU has */
int simd_vl(void);
/* For tests and benchmarks: vectors of vl floats (16, 8; 0 turns the tile
 * kernels off), at most what the CPU has; -1 goes back to what it has. */
void simd_set_vl(int vl);

#endif
