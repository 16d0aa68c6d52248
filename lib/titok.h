/* titok.h - TiTok's 1-D tokenizer encoder and decoder (bytedance/1d-tokenizer
 * modeling/titok.py, modeling/modules/blocks.py TiTokEncoder/TiTokDecoder)
 * as models over one parameter table and as modules (module.h) for the
 * encode and decode tools.
 *
 * Dimensions: B batch; C image channels, R image side (H = W = R), P patch,
 * G = R/P patch grid, N = G*G patches; E ViT width, L blocks, NH heads
 * (head size E/NH, MLP 4E); K latent tokens, D token size; T sequence
 * length (1 + N + K in both); V proxy codes (the teacher's codebook size),
 * Dv the teacher's code dimension.
 *
 * Encoder ("titok-encoder", fields image F32 [B,C,R,R] -> latent F32 [B,K,D]):
 *   patch_embed Conv2d C->E, kernel = stride = P, bias -> [cls, N patches]
 *   + positional_embedding [N+1,E]; latent_tokens [K,E] (TiTok's own
 *   parameter, top-level name) + latent_token_positional_embedding [K,E];
 *   sequence [cls, patches, latents] -> ln_pre -> L pre-LN blocks (block.h)
 *   -> the last K rows -> ln_post -> conv_out 1x1 E->D with bias.
 *   legacy = 1 (upstream's default and its released S-128/B-64/L-32): the
 *   [B,K,E] rows are reinterpreted as [B,E,K,1] before conv_out (a reshape,
 *   not a transpose), so token k mixes slices of every latent row; 0: the
 *   correct per-token projection. latent[b,k,:] is upstream's output
 *   [B,D,1,K] at [b,:,0,k]: the rows the quantizer sees, in its order.
 *
 * Decoder ("titok-decoder", quant F32 [B,K,D] -> logits F32 [B,h,w,V]):
 *   decoder_embed Linear D->E + latent_token_positional_embedding; mask_token
 *   repeated N = h*w times (h = w = grid, default R/P), [cls, masks] +
 *   positional_embedding; sequence [cls, masks, latents] -> ln_pre -> blocks
 *   -> rows 1..N -> ln_post -> the legacy head ffn: conv1x1 E->2E, tanh,
 *   conv1x1 2E->V (upstream's proxy-code logits, [B,V,h,w] there, NHWC
 *   here so that `loss ce` reads them against ids [B,h,w]).
 *   pixel = 1 (stage 2, inference): softmax over V, weighted sum of the rows
 *   of pixel_quantize.embedding.weight [V,Dv] (trainable), the
 *   MaskGIT-VQGAN decoder (vqgan.h) under pixel_decoder.* -> recon F32
 *   [B,C',R',R'] (logits are written too). Not clamped, as upstream.
 *   Only the legacy (proxy-code) head exists; upstream's non-legacy RGB
 *   head (the later single-stage weights) is not implemented.
 *
 * Backward: encoder latent.grad -> parameter gradients (the module writes no
 * image.grad; titok_enc_backward can); decoder logits.grad and/or (pixel)
 * recon.grad -> quant.grad and parameter gradients. Accumulates (+=).
 *
 * Names are upstream's state_dict: latent_tokens and encoder.* (encode's
 * file), decoder.* then pixel_quantize.embedding.weight and pixel_decoder.*
 * (decode's), so the files with vq's quantize.embedding.weight form
 * upstream's TiTok checkpoint. Init as TiTok._init_weights: Linear/Conv
 * weights N(0, 0.02) (trunc_normal_ cut at +-2 absolute), biases 0,
 * LayerNorm (1, 0), embeddings and tokens E^-0.5 N(0,1), MHA in_proj
 * Xavier; the pixel part as upstream's modules (it is normally loaded from
 * the teacher).
 *
 * Metadata: arch, resolution, patch, width, layers, heads, tokens,
 * token_size; encoder: channels (upstream hard-codes 3), legacy (default 1);
 * decoder: grid (default resolution/patch), proxy_codes (upstream hard-codes
 * 1024), pixel (default 0) and, when 1, the VQGAN
 * decoder's keys with a pixel_ prefix (pixel_channels, pixel_resolution,
 * pixel_hidden, pixel_mult, pixel_res_blocks, pixel_z = Dv), whose latent
 * grid must be h x w; pixel_l2 (default 0) = 1 weights L2-normalised codebook
 * rows, as the teacher's quantizer with l2=1 looks its codes up (upstream's
 * teacher has no normalisation).
 */
#ifndef TP_TITOK_H
#define TP_TITOK_H

#include <stddef.h>

#include "block.h"
#include "linear_tile.h"
#include "module.h"
#include "seqnet.h"
#include "vqgan.h"

/* Presets shared by the encode and decode tools (and the tests that check
 * them). titok-tiny is DESIGN.md section 8's; s-128, b-64, l-32 are
 * upstream's legacy configs (upstream.md A.2, A.5); -pixel adds the stage-2
 * pixel path with the matching VQGAN decoder (vqgan-tiny's, the f16 one). */
#define TITOK_TINY "resolution=32 patch=4 width=256 layers=4 heads=4 tokens=32 token_size=16"
#define TITOK_S128 "resolution=256 patch=16 width=512 layers=8 heads=8 tokens=128 token_size=12"
#define TITOK_B64 "resolution=256 patch=16 width=768 layers=12 heads=12 tokens=64 token_size=12"
#define TITOK_L32 "resolution=256 patch=16 width=1024 layers=24 heads=16 tokens=32 token_size=12"
#define TITOK_PIXEL_TINY \
    " pixel=1 pixel_channels=1 pixel_resolution=32 pixel_hidden=32 pixel_mult=1,1,2 pixel_res_blocks=1 pixel_z=32"
#define TITOK_PIXEL_F16 \
    " pixel=1 pixel_channels=3 pixel_resolution=256 pixel_hidden=128 pixel_mult=1,1,2,2,4" \
    " pixel_res_blocks=2 pixel_z=256"
#define TITOK_ENC(cfg, ch) "arch=titok-encoder channels=" ch " legacy=1 " cfg
#define TITOK_DEC(cfg) "arch=titok-decoder proxy_codes=1024 " cfg

#define TITOK_ENCODER_PRESETS                              \
    {"titok-tiny", TITOK_ENC(TITOK_TINY, "1")},            \
    {"titok-s-128", TITOK_ENC(TITOK_S128, "3")},           \
    {"titok-b-64", TITOK_ENC(TITOK_B64, "3")},             \
    {"titok-l-32", TITOK_ENC(TITOK_L32, "3")}

#define TITOK_DECODER_PRESETS                                          \
    {"titok-tiny", TITOK_DEC(TITOK_TINY)},                             \
    {"titok-tiny-pixel", TITOK_DEC(TITOK_TINY) TITOK_PIXEL_TINY},      \
    {"titok-s-128", TITOK_DEC(TITOK_S128)},                            \
    {"titok-s-128-pixel", TITOK_DEC(TITOK_S128) TITOK_PIXEL_F16},      \
    {"titok-b-64", TITOK_DEC(TITOK_B64)},                              \
    {"titok-b-64-pixel", TITOK_DEC(TITOK_B64) TITOK_PIXEL_F16},        \
    {"titok-l-32", TITOK_DEC(TITOK_L32)},                              \
    {"titok-l-32-pixel", TITOK_DEC(TITOK_L32) TITOK_PIXEL_F16}

struct titok_cfg {
    int C, R, P, G, N;   /* image channels, side, patch; grid and N = G*G */
    int E, L, NH, K, D;  /* width, blocks, heads, tokens, token size */
    int legacy;          /* encoder: upstream's reshape before conv_out */
    int V, pixel;        /* decoder: proxy codes, pixel path on */
    int pixel_l2;        /* the codebook rows L2-normalised (a teacher with l2=1) */
    struct vqgan_cfg pix;
};

/* Parse the metadata of arch "titok-encoder" (dec = 0) or "titok-decoder". */
int titok_cfg_from_meta(struct titok_cfg *c, const struct st *meta, int dec);

/* params_add of a top-level name with its shape spelled out. */
size_t titok_param(struct params *p, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                   enum param_init init, float a);

/* The sequence both build, x [B,T,E] with T = 1+N+K:
 *   x[b,0]     = cls + pos[0]
 *   x[b,1+n]   = mid[b*mb + n*mn + i*me] (over i < E) + pos[1+n]
 *   x[b,1+N+k] = tok[b*tb + k*E + i] + tpos[k]
 * (encoder: mid the patch embeddings [B,E,N], tok latent_tokens, tb = 0;
 * decoder: mid the mask token, mb = mn = 0, tok the embedded tokens). */
void titok_seq_build(float *x, int B, int N, int K, int E, const float *cls, const float *pos, const float *mid,
                     size_t mb, size_t mn, size_t me, const float *tok, size_t tb, const float *tpos);

/* The ViT trunk both share: x [B,T,E] -> ln_pre -> L blocks -> ln_post on
 * rows [row0, row0+nrows) of every sequence -> out [B,nrows,E].
 * Parameters prefix + ln_pre.*, transformer.I.*, ln_post.* in that order. */
struct titok_trunk {
    struct block_cfg bc;
    int L, T, row0, nrows;
    size_t off_pre, off_post, *off_blk;   /* parameter offsets */
    float *pre_w, *pre_b, *dpre_w, *dpre_b, *post_w, *post_b, *dpost_w, *dpost_b;
    struct block_params *bp, *dbp;        /* [L] */
    int B;                                /* batch the buffers hold (0: none) */
    int train;                            /* ... with every block's activations */
    float *mem;                           /* the activations, one block */
    float *xs;                            /* [L+1][B,T,E]: ln_pre out, block outs (inference: 2) */
    float *pre_mean, *pre_rstd;           /* [B*T] */
    float *sel, *post_mean, *post_rstd;   /* [B*nrows,E] ln_post input, stats */
    float *out, *dsel, *g0, *g1;          /* [B*nrows,E] x2, [B,T,E] x2 */
    struct block_acts *acts, scratch;
    uint8_t *keep;                        /* [B*T] inference: the rows ln_post reads (block_tail.keep) */
    const struct params *params;          /* bound: their version says when pk is stale */
    struct linear_tile_cache pk;          /* inference: the blocks' weights packed (block_stack_pack) */
};

void titok_trunk_init(struct titok_trunk *t, struct params *p, const char *prefix, const struct titok_cfg *c,
                      int T, int row0, int nrows);
void titok_trunk_bind(struct titok_trunk *t, const struct params *p);
void titok_trunk_free(struct titok_trunk *t);
/* Returns out [B,nrows,E], valid until the next forward; x stays the
 * caller's and must be given again to backward. */
const float *titok_trunk_forward(struct titok_trunk *t, const float *x, int B, int train);
/* dx (may be NULL) += the gradient at x; dout [B,nrows,E]. */
void titok_trunk_backward(struct titok_trunk *t, float *dx, const float *dout, const float *x);

/* acc[i,e] += sum_b x[b,t0+i,e] for i < n: per-position sums over the batch
 * (rows of [B,T,E]), each thread owning elements of acc. */
void titok_sum_batch(float *acc, const float *x, int B, int T, int E, int t0, int n);

struct titok_enc {
    struct titok_cfg c;
    struct titok_trunk tr;
    size_t off_lat, off_cls, off_pos, off_lpos, off_pw, off_pb, off_cw, off_cb;
    float *data, *grad;          /* the bound parameter buffers */
    int B;                       /* batch the buffers hold */
    float *img;                  /* [B,C,R,R] copy of the input */
    float *pe, *dpe;             /* [B,E,N] patch_embed output, its gradient */
    float *x, *dx;               /* [B,T,E] trunk input, its gradient */
    float *dpost;                /* [B,K,E] */
};

/* Parse meta and append the parameters to p; alloc = 1 then allocates p
 * and points the model into it (0: the table only, for counting). -1 on a
 * bad value. */
int titok_enc_init(struct titok_enc *e, struct params *p, const struct st *meta, int alloc);
void titok_enc_free(struct titok_enc *e);
/* latent [B,K,D] from image [B,C,R,R] (copied). */
void titok_enc_forward(struct titok_enc *e, float *latent, const float *image, int B, int train);
/* Gradients of the last forward from dlatent [B,K,D]; dimage may be NULL. */
void titok_enc_backward(struct titok_enc *e, float *dimage, const float *dlatent);

struct titok_dec {
    struct titok_cfg c;
    struct titok_trunk tr;
    size_t off_cls, off_pos, off_mask, off_lpos, off_ew, off_eb, off_f0w, off_f0b, off_f2w, off_f2b, off_cb;
    float *data, *grad;
    struct seqnet pixnet;        /* pixel_decoder (pixel = 1) */
    int B;
    float *q, *emb, *demb;       /* [B,K,D] input copy; [B,K,E] decoder_embed out, gradient */
    float *x, *dx;               /* [B,T,E] */
    float *h1, *h2, *dh1, *dh2;  /* [B*N,2E] ffn hidden before / after tanh */
    float *dpost, *sums;         /* [B*N,E]; [N+1,E] batch sums */
    float *dlog;                 /* [B*N,V] logits gradient */
    float *probs, *dprobs;       /* [B*N,V] pixel: softmax, its gradient */
    float *qz, *qz_nchw, *dqz, *dqz_nchw; /* [B*N,Dv] soft codebook vectors, NHWC and NCHW */
    float *cbn, *cbnorm, *dcbn;  /* pixel_l2: [V,Dv] normalised rows, [V] norms, [V,Dv] gradient */
};

int titok_dec_init(struct titok_dec *d, struct params *p, const struct st *meta, int alloc);
void titok_dec_free(struct titok_dec *d);
/* logits [B,h,w,V] and (pixel = 1; else NULL) recon [B,C',R',R'] from
 * quant [B,K,D] (copied). train: keep what backward needs. */
void titok_dec_forward(struct titok_dec *d, float *logits, float *recon, const float *quant, int B, int train);
/* From dlogits and/or drecon (either may be NULL): dquant (may be NULL). */
void titok_dec_backward(struct titok_dec *d, float *dquant, const float *dlogits, const float *drecon);

extern const struct module_ops titok_encoder_ops;
extern const struct module_ops titok_decoder_ops;

#endif
