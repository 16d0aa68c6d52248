/* vqgan.h - the MaskGIT-VQGAN encoder and decoder as modules (module.h),
 * upstream layout and names (bytedance/1d-tokenizer modeling/modules/
 * maskgit_vqgan.py, a port of the JAX original):
 *
 *   encoder: conv_in 3x3 (no bias) -> per level i: res_blocks ResnetBlocks
 *            to hidden*mult[i], 2x2 average pool after every level but the
 *            last -> res_blocks mid blocks -> GroupNorm(32, 1e-6) -> SiLU
 *            -> conv_out 1x1 (bias) to z channels
 *   decoder: conv_in 3x3 (bias) -> mid blocks -> per level i from the last
 *            to 0: res_blocks blocks to hidden*mult[i], then (i > 0) nearest
 *            x2 and upsample_conv 3x3 (bias) -> GroupNorm -> SiLU ->
 *            conv_out 3x3 (bias) to the image channels
 * All convs SAME-padded; no attention. The ResnetBlock shortcut quirk is
 * resblock.h's.
 *
 * Names: "encoder.*" and "decoder.*" as upstream's state_dict, so the
 * encode, vq and decode weight files together are upstream's MaskGIT-VQGAN
 * ("quantize.embedding.weight" is vq's).
 *
 * Architecture metadata (weights' __metadata__): arch (vqgan-encoder |
 * vqgan-decoder), channels, resolution, hidden, mult (comma list, one per
 * level), res_blocks, z.
 *
 * Fields: encoder reads image F32 [B,C,H,W], writes latent F32 [B,h,w,z];
 * decoder reads quant F32 [B,h,w,z], writes recon F32 [B,C,H,W]. Backward:
 * latent.grad -> (nothing: the image needs no gradient); recon.grad ->
 * quant.grad.
 */
#ifndef TP_VQGAN_H
#define TP_VQGAN_H

#include "module.h"

#define VQGAN_MAX_LEVELS 8

struct vqgan_cfg {
    int channels, resolution, hidden, nlevels, res_blocks, z;
    int mult[VQGAN_MAX_LEVELS];
};

int vqgan_cfg_from_meta(struct vqgan_cfg *c, const struct st *meta);
/* The same with every key prefixed by kp: "pixel_" reads pixel_channels,
 * pixel_resolution, ... (TiTok's pixel decoder, titok.h). */
int vqgan_cfg_from_meta_keys(struct vqgan_cfg *c, const struct st *meta, const char *kp);

struct seqnet;
/* The decoder's layers, seqnet_init'ed into s, with parameters appended to
 * p under prefix + upstream's names: "decoder." (vqgan-decoder) or
 * "pixel_decoder." (TiTok's stage-2 decoder). The caller allocates p and
 * binds s (seqnet_bind). */
void vqgan_decoder_net(struct seqnet *s, struct params *p, const struct vqgan_cfg *c, const char *prefix);

extern const struct module_ops vqgan_encoder_ops;
extern const struct module_ops vqgan_decoder_ops;

#endif
