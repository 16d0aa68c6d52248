/* chunks.h - cutting a batch of B items that never meet (sequences,
 * images) into chunks that the threads take whole (block.h, seqnet.h,
 * attention.h): each chunk on one thread with single-threaded products,
 * its data in that core's cache from one step to the next.
 *
 * The cut depends on the batch alone, never on the thread count, so the
 * results do not either: chunks of about `target` units where an item is
 * `item` units (rows of a sequence, floats of an image), an even count of
 * them so that two threads get equal work, at most one chunk an item. */
#ifndef TP_CHUNKS_H
#define TP_CHUNKS_H

#include <stddef.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli.h"

/* Elements below which an OpenMP loop over them costs more than it gives:
 * the if clause of the library's elementwise loops. */
#define PAR_MIN 16384

static inline int chunk_count(int B, size_t item, size_t target)
{
    size_t per = item ? (target + item - 1) / item : 1;
    if (per == 0) per = 1;
    int n = (int)(((size_t)B + per - 1) / per);
    n += n % 2;
    return n < B ? n : B;
}

/* chunk c of n: items [*b0, *b0 + *nb) */
static inline void chunk_range(int B, int n, int c, int *b0, int *nb)
{
    *b0 = (int)((long)B * c / n);
    *nb = (int)((long)B * (c + 1) / n) - *b0;
}

/* threads for n chunks (or parts) */
static inline int chunk_threads(int n) { return tp_threads() < n ? tp_threads() : n; }

/* 1 inside a parallel region, of any size (a chunk's, at any thread count):
 * the caller is the chunk's one thread */
static inline int in_chunk(void)
{
#ifdef _OPENMP
    return omp_get_level() > 0;
#else
    return 0;
#endif
}

/* the calling thread's number in its team, and the team's size (0 and 1
 * outside a parallel region, and in a build without OpenMP) */
static inline int team_thread(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline int team_size(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* dst[i] += the parts' partial[p * stride + i], p = 0.. in order, i < n:
 * weight gradients summed part by part over fixed ranges of a batch, the
 * same bits whatever thread summed each part. */
static inline void chunk_parts_add(float *dst, const float *partial, int parts, size_t stride, size_t n)
{
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float sum = dst[i];
        for (int p = 0; p < parts; p++) sum += partial[(size_t)p * stride + i];
        dst[i] = sum;
    }
}

#endif
