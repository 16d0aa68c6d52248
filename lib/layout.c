/* layout.c - NCHW <-> NHWC (see layout.h). Parallel over (b, output row). */
#include "layout.h"

#include <stddef.h>

void nchw_to_nhwc(float *out, const float *inp, int B, int C, int P)
{
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++)
            for (int c = 0; c < C; c++)
                out[((size_t)b * P + p) * C + c] = inp[((size_t)b * C + c) * P + p];
}

void nhwc_to_nchw(float *out, const float *inp, int B, int C, int P)
{
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++)
                out[((size_t)b * C + c) * P + p] = inp[((size_t)b * P + p) * C + c];
}
