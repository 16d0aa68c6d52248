/* clones.h - TP_CLONES before a function compiles it twice, for AVX-512
 * and for the build's own flags, and the loader picks one by what the CPU
 * reports (gcc's target_clones, an ifunc; the OpenMP bodies inside are
 * cloned with it). For elementwise loops that are no faster than their
 * vectors are wide: GELU, SiLU, the normalisations. Element by element the
 * two clones compute the same values (no reduction changes order: lanesum.h
 * fixes it), so results do not depend on the clone. valgrind reports no
 * AVX-512 and runs the other. */
#ifndef TP_CLONES_H
#define TP_CLONES_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(TP_NO_CLONES)
#define TP_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define TP_CLONES
#endif

#endif
