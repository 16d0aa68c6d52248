/* vqmod.h - the vector quantizer as a module (the `vq` tool): upstream's
 * VectorQuantizer around vq.h's kernels.
 *
 * Parameters: quantize.embedding.weight [codes, dim], init U(-1/codes,
 * 1/codes) as upstream. Metadata: arch=vq, codes, dim, l2 (0/1: TiTok
 * normalises both sides), beta (commitment cost, 0.25), weight (quantizer
 * loss weight, 1.0): the loss is weight * (beta * commitment + codebook).
 *
 * Fields: reads latent F32 [..., dim], writes quant F32 (same shape) and
 * ids I32 (shape without the last dim). A record without latent but with
 * ids is looked up instead (ids -> quant), which is how sampled tokens
 * reach a decoder. Backward: quant.grad -> latent.grad (straight through
 * plus the commitment term); the codebook gets the codebook term.
 * Metadata added: loss.vq_commit, loss.vq_codebook (unweighted means),
 * vq.used and vq.perplexity of the batch.
 */
#ifndef TP_VQMOD_H
#define TP_VQMOD_H

#include "module.h"

extern const struct module_ops vq_module_ops;

#endif
