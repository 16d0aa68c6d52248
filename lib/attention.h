/* attention.h - multi-head self-attention, torch nn.MultiheadAttention
 * layout, bidirectional (no mask).
 *
 * Dimensions: B batch, T sequence, C width (embed_dim), NH heads,
 * HD = C/NH head size. Input and output are [B,T,C] (batch first: TiTok
 * permutes to torch's [T,B,C] and back, which is the same arithmetic).
 *   qkv = inp @ in_proj_weight^T + in_proj_bias     [B,T,3C]: q | k | v
 *   att[b,h] = softmax(q_h k_h^T / sqrt(HD))        [B,NH,T,T]
 *   y[b,:,h*HD:(h+1)*HD] = dropout(att[b,h]) @ v_h  [B,T,C]
 *   out = y @ out_proj_weight^T + out_proj_bias
 * Head h of q is columns [h*HD,(h+1)*HD) of the q part, as in torch.
 *
 * Weight layout: in_proj_weight [3C,C] packs the q, k, v projections as
 * consecutive [C,C] blocks, in_proj_bias [3C] likewise. HF BERT keeps them
 * as three tensors (attention.self.{query,key,value}.{weight,bias}); a model
 * loading BERT weights places query, key and value weights back to back in
 * its parameter buffer (and the three biases likewise), so the same packed
 * kernel serves (block.h's parameter table gives those offsets).
 * in_proj_bias may be NULL (UViT has no qkv bias); out_proj_bias too.
 *
 * Attention-probability dropout (HF BERT, p = 0.1 in training) is optional:
 * the mask of element i of att is dropout_scale(p, seed, i) (dropout.h),
 * and the dropped probabilities are kept in acts.att_drop, which exists
 * only when the activations were sized with dropout on.
 *
 * Work is split over (batch, head) pairs; each pair's products run on one
 * thread, by AVX2 register tiles where attention_tile_applies (short
 * sequences, attention_tile.h) and else as sgemm calls (OpenBLAS does not
 * nest inside an OpenMP region), writing only that pair's slices, so
 * results are deterministic.
 *
 * attention_forward and attention_backward cut the batch into chunks of
 * whole sequences (chunks.h, about ATTENTION_CHUNK_ROWS rows) that the
 * threads take whole, as block.h's blocks do: each chunk's activations in
 * their slice of acts, the weight gradients summed in ATTENTION_DW_PARTS
 * fixed parts, a chunk's dropout masks those of its place in the batch.
 * The _at forms are one chunk's (or a whole batch's) work.
 */
#ifndef TP_ATTENTION_H
#define TP_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#define ATTENTION_CHUNK_ROWS 512
#define ATTENTION_DW_PARTS 2

struct attention_params {
    float *in_proj_weight;  /* [3C,C] */
    float *in_proj_bias;    /* [3C] or NULL */
    float *out_proj_weight; /* [C,C] */
    float *out_proj_bias;   /* [C] or NULL */
};

/* What forward saves for backward. Backward also takes a second instance
 * as scratch for the gradients of qkv, att and y (att_drop unused there). */
struct attention_acts {
    float *qkv;      /* [B,T,3C] projected inputs */
    float *att;      /* [B,NH,T,T] softmax probabilities */
    float *att_drop; /* [B,NH,T,T] after dropout, or NULL (no dropout) */
    float *y;        /* [B,T,C] heads concatenated, input of out_proj */
};

/* The activations of sequences b0.. of a batch laid out by
 * attention_acts_point: a slice of each field (a chunk's, chunks.h). */
struct attention_acts attention_acts_slice(const struct attention_acts *a, int b0, int T, int C, int NH);

/* Floats the activations take; dropout != 0 adds att_drop. */
size_t attention_acts_floats(int B, int T, int C, int NH, int dropout);
/* Point the fields into mem (attention_acts_floats of it); returns the
 * first float after them. */
float *attention_acts_point(struct attention_acts *a, float *mem, int B, int T,
                            int C, int NH, int dropout);

/* p: attention-probability dropout (0 = off, needs acts->att_drop if > 0);
 * seed: its mask. */
void attention_forward(float *out, struct attention_acts *acts, const float *inp,
                       const struct attention_params *w, int B, int T, int C,
                       int NH, float p, uint64_t seed);

/* Accumulates into dinp [B,T,C] and the non-NULL fields of dw (any field or
 * dinp may be NULL). scratch: sized like acts (dropout 0 suffices), clobbered.
 * p and seed must be the forward's. */
void attention_backward(float *dinp, struct attention_params *dw,
                        struct attention_acts *scratch, const float *dout,
                        const float *inp, const struct attention_params *w,
                        const struct attention_acts *acts, int B, int T, int C,
                        int NH, float p, uint64_t seed);
/* The same over sequences b0.. of a larger batch (a chunk of it): the
 * probabilities' dropout masks are that batch's (the head index bh of
 * the masks counts from b0 * NH). */
void attention_forward_at(float *out, struct attention_acts *acts, const float *inp,
                          const struct attention_params *w, int B, int T, int C,
                          int NH, float p, uint64_t seed, int b0);
/* attention_forward_at's middle, from acts->qkv (the input projection's
 * output, biases in) to acts->y (the heads' outputs side by side, before
 * out_proj): for callers that run the two projections themselves
 * (block_stack_infer's tiles). */
void attention_mix_forward(struct attention_acts *acts, int B, int T, int C, int NH, float p,
                           uint64_t seed, int b0);
/* Its backward: from scratch->y (the gradient of acts->y) to scratch->qkv
 * (written, not added), through the heads; p, seed and b0 the forward's. */
void attention_mix_backward(struct attention_acts *scratch, const struct attention_acts *acts, int B, int T, int C,
                            int NH, float p, uint64_t seed, int b0);
void attention_backward_at(float *dinp, struct attention_params *dw,
                           struct attention_acts *scratch, const float *dout,
                           const float *inp, const struct attention_params *w,
                           const struct attention_acts *acts, int B, int T, int C,
                           int NH, float p, uint64_t seed, int b0);

#endif
