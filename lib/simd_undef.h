/* simd_undef.h - the end of a kernel header: the vector operations of
 * simd_avx512.h or simd_avx2.h undefined, for the next instruction set. */
#undef vec
#undef VZERO
#undef VLOAD
#undef VBCAST
#undef VFMA
#undef VADD
#undef VSTORE
