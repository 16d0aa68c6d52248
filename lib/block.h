/* block.h - transformer blocks: TiTok's pre-LN ViT block and HF BERT's
 * post-LN layer (TiTok's ImageBert generator), forward and backward.
 *
 * Dimensions: B batch, T sequence, C width, NH heads, F MLP hidden width
 * (4C upstream); BT = B*T rows of [BT,C] activations.
 *
 * BLOCK_PRE_LN (ResidualAttentionBlock, modeling/modules/blocks.py):
 *   r1  = x + drop(attn(ln_1(x)))
 *   out = r1 + drop(c_proj(gelu(c_fc(ln_2(r1)))))
 * BLOCK_POST_LN (transformers BertLayer):
 *   a   = LN1(x + drop(attn(x)))                 attention.output.LayerNorm
 *   out = LN2(a + drop(out.dense(gelu(intermediate.dense(a)))))
 * attn is attention.h's (BERT's attention.output.dense is its out_proj).
 * Upstream values: pre-LN eps 1e-5, no dropout; post-LN eps 1e-12, hidden
 * and attention dropout 0.1 in training; both exact (erf) GELU. JAX
 * MaskGIT is post-LN with tanh GELU (gelu_tanh = 1).
 *
 * Dropout runs only when forward/backward get train = 1. Masks come from
 * the caller's seed: site s in {0 attention probabilities, 1 attention
 * output, 2 MLP output} uses rng_hash(seed, s), element i of the site's
 * tensor dropout_scale(p, that, i) (dropout.h).
 *
 * Parameters: one contiguous run of block_param_floats() floats. The
 * order inside it is the order of block_param_specs and block_params_add,
 * which is upstream's state_dict order except that BERT's query, key and
 * value weights come back to back, then their three biases, to form the
 * packed attn.in_proj_weight/bias of attention.h:
 *   pre-LN:  ln_1, attn.in_proj_weight/bias, attn.out_proj, ln_2, mlp.c_fc,
 *            mlp.c_proj (exactly upstream's order)
 *   post-LN: attention.self.{query,key,value}.weight, then .bias,
 *            attention.output.dense, attention.output.LayerNorm,
 *            intermediate.dense, output.dense, output.LayerNorm
 * Init (G.13 of upstream.md): LayerNorm (1,0), biases 0, Linear weights
 * N(0, 0.02) (TiTok's torch trunc_normal_(std=0.02) cuts at +-2 absolute,
 * 100 std, so it is this normal; BERT's normal_), and the pre-LN block's
 * packed in_proj_weight Xavier-uniform over [3C,C] (torch MHA's own init,
 * which TiTok's _init_weights does not touch).
 *
 * Backward accumulates (+=) into dinp and the fields of dw; dinp, dw or
 * any field of dw may be NULL. It takes a second block_acts as scratch for
 * the activation gradients (sized with train = 0), clobbered.
 *
 * Chunks. A sequence's rows never meet another sequence's, so forward and
 * backward cut the batch into chunks of whole sequences (their forward
 * products and input gradients by linear_tile.h's tiles where the widths
 * allow, the weights packed once per call; the weight gradients by sgemm),
 * about BLOCK_CHUNK_ROWS rows each, an even count of them, that the threads
 * take whole with single-threaded products: between two products a chunk's
 * activations are still in the core's cache (a batch's went to memory and
 * back at every elementwise pass), and the threads meet once per call, not
 * at every product. The forward writes each chunk's activations into its
 * slice of acts; the backward sums the parameter gradients of its chunks in
 * BLOCK_DW_PARTS fixed parts, each its own run in chunk order, then adds
 * the parts in order (dw must then be one run as block_params_point lays
 * it, else the batch goes whole), and the chunks keep their own scratch.
 * The cut depends on B and T alone, so results do not depend on the thread
 * count (tested), except for a single sequence, which goes whole with the
 * threads inside its products (OpenBLAS's Haswell kernels round by their
 * thread count). They match a whole batch's to OpenBLAS's rounding, which
 * its Haswell and small-matrix kernels make depend on the row count, and to
 * the order of the parameter-gradient sums. A chunk's dropout masks are
 * those of its place in the batch (dropout_forward_at,
 * attention_forward_at): the same as the whole batch's.
 */
#ifndef TP_BLOCK_H
#define TP_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "attention.h"
#include "linear_tile.h"
#include "params.h"

enum block_kind { BLOCK_PRE_LN, BLOCK_POST_LN };

struct block_cfg {
    enum block_kind kind;
    int C, NH, F;     /* width, heads, MLP hidden width */
    float eps;        /* LayerNorm eps */
    int gelu_tanh;    /* 0: exact erf GELU; 1: tanh approximation */
    float drop;       /* hidden dropout after attention and after the MLP */
    float attn_drop;  /* dropout on attention probabilities */
};

struct block_params {
    float *ln1_w, *ln1_b;          /* [C] pre: ln_1; post: attention.output.LayerNorm */
    struct attention_params attn;  /* [3C,C] [3C] [C,C] [C] */
    float *ln2_w, *ln2_b;          /* [C] pre: ln_2; post: output.LayerNorm */
    float *fc_w, *fc_b;            /* [F,C] [F] c_fc / intermediate.dense */
    float *proj_w, *proj_b;        /* [C,F] [C] c_proj / output.dense */
};

struct block_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* [BT,C] [BT] [BT] LN1 output and stats */
    struct attention_acts attn;
    float *res1;                      /* [BT,C] x + drop(attn): LN2 input (pre) / LN1 input (post) */
    float *ln2, *ln2_mean, *ln2_rstd; /* [BT,C] [BT] [BT] LN2 output (pre only) and stats */
    float *fc, *fc_act;               /* [BT,F] MLP hidden before / after GELU */
    float *res2;                      /* [BT,C] post: a + drop(mlp), LN2 input; pre: backward scratch */
};

#define BLOCK_MAX_PARAMS 16
#define BLOCK_INIT_STD 0.02f

/* The block's parameters in memory order with names relative to the block,
 * offsets relative to its first float, and init; returns the count. */
int block_param_specs(struct param_spec *tab, const struct block_cfg *cfg);
size_t block_param_floats(const struct block_cfg *cfg);
/* Append the block's parameters to a model's table as prefix + name (e.g.
 * "encoder.transformer.3."); returns the offset of the block's first float,
 * the mem to give block_params_point (p->data + it, or p->grad + it). */
size_t block_params_add(struct params *p, const char *prefix, const struct block_cfg *cfg);
void block_params_point(struct block_params *p, float *mem, const struct block_cfg *cfg);

/* train = 1 adds room for attention-probability dropout (if cfg->attn_drop). */
size_t block_acts_floats(const struct block_cfg *cfg, int B, int T, int train);
float *block_acts_point(struct block_acts *a, float *mem, const struct block_cfg *cfg,
                        int B, int T, int train);

/* out [BT,C] must not alias inp. */
void block_forward(float *out, struct block_acts *acts, const float *inp,
                   const struct block_params *w, const struct block_cfg *cfg,
                   int B, int T, int train, uint64_t seed);
void block_backward(float *dinp, struct block_params *dw, struct block_acts *scratch,
                    const float *dout, const float *inp, const struct block_params *w,
                    const struct block_acts *acts, const struct block_cfg *cfg,
                    int B, int T, int train, uint64_t seed);
/* The same where the caller reads rows [row0, row0+nrows) of each
 * sequence's output alone (TiTok's last block: the encoder's latent
 * tokens, the decoder's grid): attention runs over every row, since all of
 * them are keys and values, and out_proj, ln_2 and the MLP over the kept
 * rows alone, in the first B*nrows rows of their fields of acts. out is
 * written at the kept rows only; the backward reads dout there only (the
 * other rows' gradient is taken as zero), with the forward's acts and the
 * same row0, nrows. A pre-LN block without hidden dropout in this pass;
 * others, and nrows 0 or T, run whole (every row written). With the tiles a
 * kept row has the bits of block_forward's; the parameter gradients match
 * block_backward's with dout zero elsewhere to the order of their sums. */
void block_forward_rows(float *out, struct block_acts *acts, const float *inp, const struct block_params *w,
                        const struct block_cfg *cfg, int B, int T, int train, uint64_t seed, int row0, int nrows);
void block_backward_rows(float *dinp, struct block_params *dw, struct block_acts *scratch, const float *dout,
                         const float *inp, const struct block_params *w, const struct block_acts *acts,
                         const struct block_cfg *cfg, int B, int T, int train, uint64_t seed, int row0, int nrows);

/* Rows [row0, row0+n) of each of B sequences of T rows in full [B*T,C]
 * and their compact copy [B*n,C] (the kept rows above; a model's slice of
 * its sequences): gathered into compact, which may be full itself (in
 * place), or put into full (add: added onto what is there). */
void block_rows_gather(float *compact, const float *full, int B, int T, int row0, int n, int C);
void block_rows_put(float *full, const float *compact, int B, int T, int row0, int n, int C, int add);

/* Inference through L blocks (weights w[0..L-1], one cfg): out [B*T,C] =
 * block L-1 of ... block 0 of inp, out not aliasing inp, dropout off. Each
 * chunk goes through every block on its thread's own small buffers before
 * the next, so that its activations stay in cache from one block to the
 * next, and no batch-sized activations are needed. A thread left without
 * a chunk takes the second half of another's sequences (whole units) at
 * that one's next block boundary, so that a core the host slows does not
 * keep the other waiting for the rest of a chunk. Where the tiles run (see
 * below), a row's sums are the same in a piece as in the whole chunk, and
 * so are its bits; sgemm's chunks stay whole.
 * Where linear_tile.h's kernels take all four products (C, 3C and F
 * multiples of their panel width), the weights are packed once (per call,
 * or kept by the caller: block_stack_pack) and each chunk's products run
 * by tiles, with the biases, GELU and the
 * residuals inside them: no sgemm packing per chunk, no passes of their
 * own. Those sums run in another order than sgemm's, so inference then
 * matches the training forward to float rounding (tests/unit/test_block.c),
 * not bit for bit; it still gives the same bits at any thread count. */
#define BLOCK_CHUNK_ROWS 512
#define BLOCK_DW_PARTS 2
/* What a model does next with a chunk's output, on the chunk's thread while
 * the output is in its cache (a head, say), instead of block_stack_infer
 * writing it to out: fn(ctx, y, s0, ns, rows, nr, scratch) with y [ns*T,C]
 * the outputs of sequences [s0, s0+ns), scratch ns * seq_floats floats of
 * the thread's own, once for each chunk or piece of one. Both hold whole
 * units of `unit` sequences (a guided sample's two passes, side by side);
 * B is a multiple of it.
 * keep: NULL, or per row of the batch [B*T] nonzero where fn reads the
 * output. The last block then runs its attention over every row (they are
 * all keys and values) and the rest of it (out_proj, the norms, the MLP)
 * on the kept rows alone, and fn gets y [nr,C]: those rows in order, rows
 * their indices in the chunk (s*T + t for position t of sequence s0+s).
 * Where a chunk keeps every row, rows is NULL and nr = ns*T, as without
 * keep. With the tiles, a kept row has the bits it has without keep. */
struct block_tail {
    void (*fn)(void *ctx, const float *y, int s0, int ns, const int *rows, int nr, float *scratch);
    void *ctx;
    int unit;
    size_t seq_floats;
    const uint8_t *keep;
};
/* Rows of the input that are the same (imagebert's first block input is
 * a function of the token and its position): of [B*T] each row's index
 * among nd distinct rows, first [nd] a row of each. The first block's
 * products before attention (qkv, and pre-LN's norm) are a function of the
 * row alone: where the tiles run they are made once per distinct row and
 * copied, the same bits; elsewhere alike is ignored. */
struct block_alike {
    const int *of, *first;
    int nd;
};
/* tail NULL: out as above; else out is not written (may be NULL).
 * packed: block_stack_pack's of w, kept by the caller between calls
 * (linear_tile_cache), or NULL to pack them for this call where the tiles
 * apply; ignored where they do not. */
void block_stack_infer(float *out, const float *inp, const struct block_params *w, const float *packed, int L,
                       const struct block_cfg *cfg, int B, int T, const struct block_alike *alike,
                       const struct block_tail *tail);
/* Test hook: with on, block_stack_infer hands over half of a piece at
 * every block boundary, whether or not a thread waits for work (a single
 * thread then takes its own pieces back). */
void block_stack_split_always(int on);
/* Floats of L blocks' weights packed for the tiles: 0 where they do not
 * take all four products (block_stack_infer runs sgemm then). */
size_t block_stack_packed_floats(const struct block_cfg *cfg, int L);
/* packed = the four matrices of the L blocks w, packed (linear_tile_pack). */
void block_stack_pack(float *packed, const struct block_params *w, int L, const struct block_cfg *cfg);
/* The same from c, packed into it when stale (version: w's params');
 * NULL where the tiles do not apply. */
const float *block_stack_cached(struct linear_tile_cache *c, const struct block_params *w, int L,
                                const struct block_cfg *cfg, unsigned long version);

#endif
