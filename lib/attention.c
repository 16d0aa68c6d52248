/* attention.c - multi-head self-attention (see attention.h). */
#include "attention.h"
#include "attention_tile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "chunks.h"
#include "dropout.h"
#include "err.h"
#include "linear.h"
#include "softmax.h"

size_t attention_acts_floats(int B, int T, int C, int NH, int dropout)
{
    size_t BT = (size_t)B * T, att = (size_t)B * NH * T * T;
    return BT * 3 * C + att + (dropout ? att : 0) + BT * C;
}

float *attention_acts_point(struct attention_acts *a, float *mem, int B, int T,
                            int C, int NH, int dropout)
{
    size_t BT = (size_t)B * T, att = (size_t)B * NH * T * T;
    a->qkv = mem;
    mem += BT * 3 * C;
    a->att = mem;
    mem += att;
    a->att_drop = dropout ? mem : NULL;
    mem += dropout ? att : 0;
    a->y = mem;
    return mem + BT * C;
}

struct attention_acts attention_acts_slice(const struct attention_acts *a, int b0, int T, int C, int NH)
{
    const size_t r = (size_t)b0 * T, tt = (size_t)b0 * NH * T * T;
    struct attention_acts v = *a;
    v.qkv += r * 3 * C, v.att += tt, v.y += r * C;
    if (v.att_drop) v.att_drop += tt;
    return v;
}

void attention_forward(float *out, struct attention_acts *acts, const float *inp,
                       const struct attention_params *w, int B, int T, int C,
                       int NH, float p, uint64_t seed)
{
    const int chunks = chunk_count(B, (size_t)T, ATTENTION_CHUNK_ROWS);
    if (chunks < 2) {
        attention_forward_at(out, acts, inp, w, B, T, C, NH, p, seed, 0);
        return;
    }
    const size_t row = (size_t)T * C;
#pragma omp parallel for schedule(static) num_threads(chunk_threads(chunks))
    for (int c = 0; c < chunks; c++) {
        int b0, nb;
        chunk_range(B, chunks, c, &b0, &nb);
        struct attention_acts v = attention_acts_slice(acts, b0, T, C, NH);
        attention_forward_at(out + b0 * row, &v, inp + b0 * row, w, nb, T, C, NH, p, seed, b0);
    }
}

void attention_forward_at(float *out, struct attention_acts *acts, const float *inp,
                          const struct attention_params *w, int B, int T, int C,
                          int NH, float p, uint64_t seed, int b0)
{
    linear_forward(acts->qkv, inp, w->in_proj_weight, w->in_proj_bias, B * T, C, 3 * C);
    attention_mix_forward(acts, B, T, C, NH, p, seed, b0);
    linear_forward(out, acts->y, w->out_proj_weight, w->out_proj_bias, B * T, C, C);
}

/* A thread's copies of one head's operands for the tiles (attention_tile.h):
 * three [T][HD] row blocks and one [HD][Tp] transposed; NULL where sgemm
 * runs the heads. */
struct head_copies {
    float *mem, *r[3], *cols;
};

static struct head_copies head_copies_new(int T, int HD)
{
    struct head_copies h = {0};
    if (!attention_tile_applies(T, HD)) return h;
    const size_t rows = (size_t)T * HD;
    h.mem = tp_malloc(sizeof(float) * (3 * rows + attention_tile_cols_floats(T, HD)));
    for (int i = 0; i < 3; i++) h.r[i] = h.mem + i * rows;
    h.cols = h.mem + 3 * rows;
    return h;
}

void attention_mix_forward(struct attention_acts *acts, int B, int T, int C, int NH, float p, uint64_t seed, int b0)
{
    TP_ASSERT(C % NH == 0);
    TP_ASSERT(p == 0.0f || (p > 0.0f && p <= 1.0f && acts->att_drop));
    int HD = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HD);
    size_t TT = (size_t)T * T;
#pragma omp parallel
    {
        struct head_copies hc = head_copies_new(T, HD);
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH;
            const float *q = acts->qkv + (size_t)b * T * C3 + h * HD;
            const float *k = q + C, *v = q + 2 * C;
            float *att = acts->att + bh * TT, *y = acts->y + (size_t)b * T * C + h * HD;
            if (hc.mem) { /* att = scale q k^T */
                attention_tile_rows(hc.r[0], q, C3, T, HD);
                attention_tile_cols(hc.cols, k, C3, T, HD);
                attention_tile_abt(att, T, hc.r[0], hc.cols, T, HD, scale);
            } else { /* [T,HD] x [HD,T] */
                tp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, scale, q, C3, k, C3, 0.0f, att, T);
            }
            for (int t = 0; t < T; t++) softmax_probs_row(att + (size_t)t * T, att + (size_t)t * T, T);
            const float *pv = att;
            if (p > 0.0f) {
                float *ad = acts->att_drop + bh * TT;
                const uint64_t first = ((uint64_t)b0 * NH + (uint64_t)bh) * TT;
                for (size_t i = 0; i < TT; i++) ad[i] = att[i] * dropout_scale(p, seed, first + i);
                pv = ad;
            }
            /* y_h = att @ v: [T,T] x [T,HD], into columns h*HD.. of y */
            if (hc.mem) {
                attention_tile_rows(hc.r[1], v, C3, T, HD);
                attention_tile_px(y, C, pv, hc.r[1], T, HD, 1.0f);
            } else {
                tp_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, 1.0f, pv, T, v, C3, 0.0f, y, C);
            }
        }
        free(hc.mem);
    }
}

/* Gradients of one (batch, head) pair: from dy_h to the q, k, v slices of
 * dqkv (written, not added: the pairs tile dqkv exactly); hc: the
 * thread's copies for the tiles (hc->mem NULL: sgemm). */
static void head_backward(struct attention_acts *d, const struct attention_acts *a, int b, int h, int T, int C,
                          int NH, float p, uint64_t seed, int b0, const struct head_copies *hc)
{
    int HD = C / NH, C3 = 3 * C, bh = b * NH + h;
    float scale = 1.0f / sqrtf((float)HD);
    size_t TT = (size_t)T * T;
    size_t qoff = (size_t)b * T * C3 + h * HD;
    const float *q = a->qkv + qoff, *k = q + C, *v = q + 2 * C;
    float *dq = d->qkv + qoff, *dk = dq + C, *dv = dq + 2 * C;
    const float *P = a->att + bh * TT;
    const float *Pd = p > 0.0f ? a->att_drop + bh * TT : P;
    const float *dy = d->y + (size_t)b * T * C + h * HD;
    float *dP = d->att + bh * TT;

    /* dv = Pd^T @ dy; dPd = dy @ v^T */
    float *dyc = hc->r[0], *kc = hc->r[1], *qc = hc->r[2];
    if (hc->mem) {
        attention_tile_rows(dyc, dy, C, T, HD);
        attention_tile_cols(hc->cols, v, C3, T, HD);
        attention_tile_ptx(dv, C3, Pd, dyc, T, HD, 1.0f);
        attention_tile_abt(dP, T, dyc, hc->cols, T, HD, 1.0f);
    } else {
        tp_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, 1.0f, Pd, T, dy, C, 0.0f, dv, C3);
        tp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, 1.0f, dy, C, v, C3, 0.0f, dP, T);
    }
    if (p > 0.0f)
        for (size_t i = 0; i < TT; i++) dP[i] *= dropout_scale(p, seed, ((uint64_t)b0 * NH + (uint64_t)bh) * TT + i);
    /* through the softmax, in place: dP becomes the gradient of the scores */
    for (int t = 0; t < T; t++) softmax_row_backward_inplace(dP + (size_t)t * T, P + (size_t)t * T, T);
    /* scores = scale * q k^T: dq = scale * dS @ k; dk = scale * dS^T @ q */
    if (hc->mem) {
        attention_tile_rows(kc, k, C3, T, HD);
        attention_tile_rows(qc, q, C3, T, HD);
        attention_tile_px(dq, C3, dP, kc, T, HD, scale);
        attention_tile_ptx(dk, C3, dP, qc, T, HD, scale);
    } else {
        tp_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, scale, dP, T, k, C3, 0.0f, dq, C3);
        tp_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, scale, dP, T, q, C3, 0.0f, dk, C3);
    }
}

void attention_backward(float *dinp, struct attention_params *dw,
                        struct attention_acts *scratch, const float *dout,
                        const float *inp, const struct attention_params *w,
                        const struct attention_acts *acts, int B, int T, int C,
                        int NH, float p, uint64_t seed)
{
    const int chunks = chunk_count(B, (size_t)T, ATTENTION_CHUNK_ROWS);
    if (chunks < 2) {
        attention_backward_at(dinp, dw, scratch, dout, inp, w, acts, B, T, C, NH, p, seed, 0);
        return;
    }
    /* the weight gradients of each part's chunks in order into its own run,
     * then the parts added in order: the same bits at any thread count */
    const int parts = ATTENTION_DW_PARTS < chunks ? ATTENTION_DW_PARTS : chunks;
    const size_t row = (size_t)T * C, C2 = (size_t)C * C, np = 4 * C2 + 4 * (size_t)C;
    float *partial = dw ? tp_calloc((size_t)parts * np, sizeof(float)) : NULL;
#pragma omp parallel for schedule(static) num_threads(chunk_threads(parts))
    for (int q = 0; q < parts; q++) {
        float *m = partial ? partial + (size_t)q * np : NULL;
        struct attention_params pdw = {0};
        if (m) {
            pdw.in_proj_weight = dw->in_proj_weight ? m : NULL;
            pdw.in_proj_bias = dw->in_proj_bias ? m + 3 * C2 : NULL;
            pdw.out_proj_weight = dw->out_proj_weight ? m + 3 * C2 + 3 * C : NULL;
            pdw.out_proj_bias = dw->out_proj_bias ? m + 4 * C2 + 3 * C : NULL;
        }
        for (int c = chunks * q / parts; c < chunks * (q + 1) / parts; c++) {
            int b0, nb;
            chunk_range(B, chunks, c, &b0, &nb);
            struct attention_acts va = attention_acts_slice(acts, b0, T, C, NH),
                                 vs = attention_acts_slice(scratch, b0, T, C, NH);
            attention_backward_at(dinp ? dinp + b0 * row : NULL, m ? &pdw : NULL, &vs, dout + b0 * row,
                                  inp + b0 * row, w, &va, nb, T, C, NH, p, seed, b0);
        }
    }
    if (partial) {
        float *const fields[4] = {dw->in_proj_weight, dw->in_proj_bias, dw->out_proj_weight, dw->out_proj_bias};
        const size_t off[4] = {0, 3 * C2, 3 * C2 + 3 * C, 4 * C2 + 3 * C}, len[4] = {3 * C2, 3 * (size_t)C, C2, C};
        for (int f = 0; f < 4; f++)
            if (fields[f]) chunk_parts_add(fields[f], partial + off[f], parts, np, len[f]);
        free(partial);
    }
}

void attention_mix_backward(struct attention_acts *scratch, const struct attention_acts *acts, int B, int T, int C,
                            int NH, float p, uint64_t seed, int b0)
{
#pragma omp parallel
    {
        struct head_copies hc = head_copies_new(T, C / NH);
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * NH; bh++)
            head_backward(scratch, acts, bh / NH, bh % NH, T, C, NH, p, seed, b0, &hc);
        free(hc.mem);
    }
}

void attention_backward_at(float *dinp, struct attention_params *dw,
                           struct attention_acts *scratch, const float *dout,
                           const float *inp, const struct attention_params *w,
                           const struct attention_acts *acts, int B, int T, int C,
                           int NH, float p, uint64_t seed, int b0)
{
    TP_ASSERT(C % NH == 0);
    TP_ASSERT(p == 0.0f || (p > 0.0f && p <= 1.0f && acts->att_drop));
    int BT = B * T;
    memset(scratch->y, 0, sizeof(float) * (size_t)BT * C);
    linear_backward(scratch->y, dw ? dw->out_proj_weight : NULL, dw ? dw->out_proj_bias : NULL,
                    dout, acts->y, w->out_proj_weight, BT, C, C);
    attention_mix_backward(scratch, acts, B, T, C, NH, p, seed, b0);
    linear_backward(dinp, dw ? dw->in_proj_weight : NULL, dw ? dw->in_proj_bias : NULL,
                    scratch->qkv, inp, w->in_proj_weight, BT, C, 3 * C);
}
