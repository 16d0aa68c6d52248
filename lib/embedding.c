/* embedding.c - token and position embeddings (see embedding.h). */
#include "embedding.h"

#include <string.h>

#include "act.h"
#include "chunks.h"
#include "err.h"

#define COLS 32        /* channels per task of the table gradient */

int embedding_check_ids(const int32_t *ids, long N, int V)
{
    for (long n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= V)
            return tp_err_set("id %d at position %ld outside [0,%d)", (int)ids[n], n, V);
    return 0;
}

void embedding_forward(float *out, const int32_t *ids, const float *table,
                       int N, int V, int C)
{
#pragma omp parallel for if ((long)N * C > PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        TP_ASSERT(ids[n] >= 0 && ids[n] < V);
        memcpy(out + (size_t)n * C, table + (size_t)ids[n] * C, sizeof(float) * C);
    }
}

void embedding_backward(float *dtable, const float *dout, const int32_t *ids,
                        int N, int V, int C)
{
    int ntask = (C + COLS - 1) / COLS;
#pragma omp parallel for if ((long)N * C > PAR_MIN) schedule(static)
    for (int task = 0; task < ntask; task++) {
        int c0 = task * COLS, w = C - c0 < COLS ? C - c0 : COLS;
        for (int n = 0; n < N; n++) {
            TP_ASSERT(ids[n] >= 0 && ids[n] < V);
            float *d = dtable + (size_t)ids[n] * C + c0;
            const float *g = dout + (size_t)n * C + c0;
            for (int j = 0; j < w; j++) d[j] += g[j];
        }
    }
}

void embedding_pos_forward(float *out, const float *inp, const float *pos,
                           int B, int T, int C)
{
    size_t TC = (size_t)T * C;
#pragma omp parallel for collapse(2) if ((long)B * TC > PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < TC; i++) out[b * TC + i] = inp[b * TC + i] + pos[i];
}

void embedding_pos_backward(float *dinp, float *dpos, const float *dout,
                            int B, int T, int C)
{
    size_t TC = (size_t)T * C;
    if (dinp) add_inplace(dinp, dout, B * TC);
    if (dpos) { /* each thread owns elements of dpos; batch summed in order */
#pragma omp parallel for if ((long)B * TC > PAR_MIN) schedule(static)
        for (size_t i = 0; i < TC; i++) {
            float s = 0;
            for (int b = 0; b < B; b++) s += dout[b * TC + i];
            dpos[i] += s;
        }
    }
}
