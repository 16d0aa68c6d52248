/* imagebert.h - TiTok's MaskGIT generator (ImageBert, bytedance/1d-tokenizer
 * modeling/maskgit.py) as a module (module.h): an HF BertModel over
 * [class token, K image tokens] and an untied lm_head.
 *
 * Dimensions: B batch, K image tokens, T = K+1 positions, W width, L
 * layers, NH heads, F MLP width, V codebook size (the logits' width), NC
 * classes. Vocabulary (V + NC + 2 rows): codes 0..V-1, mask V, class c at
 * V+1+c, the null class (classifier-free guidance) at V+NC+1.
 *
 *   tok    = [class token, ids]                     [B,T]
 *   x      = word[tok] + token_type[0] + position[t]
 *   h0     = dropout(LayerNorm(x))                  eps 1e-12
 *   h_l    = BertLayer(h_{l-1}), l = 1..L           block.h BLOCK_POST_LN, erf GELU
 *   logits = lm_head(h_L[:, 1:])                    position 0 (the class) dropped
 * Dropout (training only): hidden `dropout` after the embeddings and in
 * every layer, `attn_drop` on attention probabilities; masks from s =
 * module_seed(record, IMAGEBERT_SALT): the embeddings' is rng_hash(s, 0)
 * (dropout.h), layer l's block seed rng_hash(s, l) (block.h's sites).
 *
 * Names (upstream's state_dict; lm_head hangs off the BertModel):
 *   model.embeddings.{word_embeddings,position_embeddings,token_type_embeddings}.weight
 *     [V+NC+2,W] [T,W] [2,W]; model.embeddings.LayerNorm.{weight,bias}
 *   model.encoder.layer.N.* (block.h's BERT names)
 *   model.lm_head.{weight,bias} [V,W] [V]
 * Init as HF's post_init: Linear and Embedding N(0, 0.02), biases 0, LN (1,0).
 *
 * Architecture metadata: arch=imagebert, width, layers, heads, mlp, codes,
 * classes, tokens, dropout (0.1), attn_drop (0.1).
 *
 * Fields: reads ids I32 [B,K] or [B,h,w] (h*w = K, raster order; V is the
 * mask) and label I32 [B] (absent or < 0: the null class); writes logits
 * F32 [B,K,V] or [B,h,w,V]. Backward reads logits.grad and writes nothing
 * (ids are integers). Upstream drops labels inside forward with
 * probability 0.1 in training; here the mask tool does (label := -1).
 *
 * Guidance (inference only, train = 0), from the record's metadata:
 * guidance G (0: none), guidance_schedule constant | linear (default) |
 * power-cosine, guidance_pow (3), sample_step s, sample_steps T. When the
 * scale (maskgit.h maskgit_cfg_scale) is not 0 the batch runs twice in one
 * pass, with the labels and with the null class, and the logits are
 * combined as maskgit.h says.
 *
 * Inference runs each distinct sample of a record once: samples with the
 * same ids and class token (every sample of a class at a sampling run's
 * first step, where all ids are the mask) get the logits of the first of
 * them, copied (the same bits with the tile kernels, linear_tile.h).
 * The first layer's qkv is made once per distinct (token, position) of
 * the batch (block.h block_alike). Under guidance lm_head, being linear,
 * runs once per sample on the two passes' hidden states combined as the
 * logits would be (its bias once): the same logits to float rounding, at
 * half the head's products.
 */
#ifndef TP_IMAGEBERT_H
#define TP_IMAGEBERT_H

#include "module.h"

#define IMAGEBERT_SALT 0x696d6167656265ull /* "imagebe" */

struct imagebert_cfg {
    int codes, classes, tokens; /* V, NC, K */
    int width, layers, heads, mlp;
    float dropout, attn_drop;
};

int imagebert_cfg_from_meta(struct imagebert_cfg *c, const struct st *meta);
/* Add the parameter table (names, shapes, init) to p without allocating. */
void imagebert_params_add(struct params *p, const struct imagebert_cfg *c);

extern const struct module_ops imagebert_ops;
/* {name, "k=v ..."} pairs ending with {NULL, NULL}: the transformer's presets. */
extern const char *const imagebert_presets[][2];

#endif
