#!/bin/bash
# Write man1/{encode,vq,decode}.1: per-tool text here, shared sections from
# stage-options.roff. Run from the top directory: sh man/src/stage-pages.sh
# ${1^^} below is bash's: under another shell, re-run with bash before any page is touched
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -e
cd "$(dirname "$0")/.."
gen() { # name summary description presets fields examples
cat > man1/$1.1 <<EOF
.TH ${1^^} 1 "2026-11" "tokpipe 0.1.0" "tokpipe manual"
.SH NAME
$1 \\- $2
.SH SYNOPSIS
.B $1
.BI \\-w " W.safetensors"
.RI [ options ]
.RI < " in.tz" " > " out.tz
.br
.B $1
.B \\-\\-init
.BI \\-w " W.safetensors"
.BI \\-\\-arch " PRESET"
.RB [ \\-\\-set
.IR KEY = VALUE ]...
.br
.B $1
.BI \\-w " W"
.BI \\-\\-backward " in.tz"
.BI \\-g " W.grad"
.RI < " out.grad.tz" " > " in.grad.tz
.br
.B $1
.BI \\-w " W"
.B \\-\\-train
.BI \\-\\-grad\\-in " FIFO"
.RB [ \\-\\-grad\\-out
.IR FIFO ]
.RI [ "optimizer options" ]
.SH DESCRIPTION
$3
.PP
$1 is one stage of a training pipeline (DESIGN.md section 4); the modes below
are common to the trainable tools
.BR encode (1),
.BR vq (1)
and
.BR decode (1).
$(cat src/stage-options.roff)
.SH PRESETS
$4
.SH FIELDS
$5
.SH EXAMPLES
.nf
$6
.fi
.SH SEE ALSO
.BR encode (1),
.BR vq (1),
.BR decode (1),
.BR loss (1),
.BR optim (1),
.BR tz (1),
.BR tz (5)
EOF
}
gen encode "encode images to latents (the MaskGIT-VQGAN encoder or TiTok's 1-D encoder), or classify them" \
"The weights' arch selects the model.
.PP
.B vqgan-encoder
runs the MaskGIT-VQGAN encoder: conv_in 3x3, at every level res_blocks ResnetBlocks (GroupNorm 32, eps 1e-6, SiLU, SAME 3x3 convs, with upstream's shortcut quirk when the width changes) and a 2x2 average pool after every level but the last, mid blocks, GroupNorm, SiLU, conv_out 1x1. Tensor names are upstream's (encoder.conv_in.weight, encoder.down.I.block.J.norm1.weight, ...), so the weight files of encode, vq and decode together form upstream's state_dict.
.PP
.B titok-encoder
runs TiTok's encoder (bytedance/1d-tokenizer TiTokEncoder): patch_embed (Conv2d, kernel = stride = patch) gives one token per patch; [class_embedding, patches] + positional_embedding, followed by the K learned latent_tokens + latent_token_positional_embedding, go through ln_pre, the pre-LN ViT blocks (LayerNorm eps 1e-5, torch MultiheadAttention, MLP 4x width with exact GELU) and ln_post on the last K rows, then conv_out 1x1 to token_size channels. With legacy=1 (the default, as upstream's released TiTok-S-128/B-64/L-32) the [K,width] rows are reinterpreted as [width,K] before conv_out, as upstream's reshape does; legacy=0 projects each token. Metadata: channels, resolution, patch, width, layers, heads (head size width/heads), tokens (K), token_size (D), legacy. Names are upstream's: latent_tokens, encoder.patch_embed.weight, encoder.transformer.I.attn.in_proj_weight, ...; init as upstream's _init_weights.
.PP
.B vit-classifier
is the evaluation's image classifier (lib/classifier.c): TiTok's encoder with no latent tokens and a head, i.e. the layout of CLIP's VisionTransformer. patch_embed gives one token per patch; [class_embedding, patches] + positional_embedding go through ln_pre, the same pre-LN ViT blocks and ln_post on the class token, which is written as the features; head (Linear width to classes) gives the logits. It trains as any stage (loss ce --target label on its logits; pipelines/eval.mk, make classifier), and its features are what loss(1)'s fd metric compares (FID-like distances, not ImageNet FIDs: see loss(1)). Metadata: channels, resolution, patch, width, layers, heads, classes. Names: class_embedding, positional_embedding, patch_embed.weight, ln_pre.weight, transformer.I.attn.in_proj_weight, ..., ln_post.weight, head.weight, head.bias; init as TiTok's encoder." \
".TP
.B vqgan-tiny
channels=1 resolution=32 hidden=32 mult=1,1,2 res_blocks=1 z=32: 32x32 images to 8x8 latents (use --set channels=3 for colour data).
.TP
.B vqgan-f16-256
channels=3 resolution=256 hidden=128 mult=1,1,2,2,4 res_blocks=2 z=256: upstream's f16 tokenizer.
.TP
.B titok-tiny
channels=1 resolution=32 patch=4 width=256 layers=4 heads=4 tokens=32 token_size=16 legacy=1: 32x32 images to 32 tokens of 16 (vq --arch titok-tiny quantizes them).
.TP
.BR titok-s-128 \", \" titok-b-64 \", \" titok-l-32
upstream's legacy configs, channels=3 resolution=256 patch=16 token_size=12 and width/layers/heads/tokens 512/8/8/128, 768/12/12/64, 1024/24/16/32 (25.9M, 86.0M, 303.4M parameters).
.TP
.B vit-classifier
channels=1 resolution=32 patch=8 width=128 layers=4 heads=4 classes=10: 32x32 images, 16 patches, 0.8M parameters (--set channels=3 --set classes=9 for the emoji). Patch 8, not 4: a step costs about a quarter, and in the same time patch 8 reached 87.5% test accuracy on Fashion-MNIST (1500 steps of 64) where patch 4 reached 82.8% (600 steps)." \
"Reads
.B image
F32 [B,C,H,W]; writes
.B latent
F32 [B,h,w,z] (vqgan-encoder) or [B,K,D] (titok-encoder: the K token vectors in upstream's order). Backward reads
.BR latent.grad
(the image gets no gradient).
.PP
vit-classifier writes
.B features
F32 [B,width] (the class token after ln_post) and
.B logits
F32 [B,classes]; backward reads
.B logits.grad
and/or
.BR features.grad .
Every other field passes through (label rides along)." \
"encode --init -w enc.st --arch vqgan-tiny --seed 1
img2patch -b 32 imgs/ | encode -w enc.st | vq -w vq.st > tokens.tz
encode --init -w titok-enc.st --arch titok-tiny --seed 1
img2patch -b 32 imgs/ | encode -w titok-enc.st | vq -w titok-vq.st | tz pick ids,label > tokens1d.tz
encode --init -w cls.st --arch vit-classifier --seed 1
encode -w cls.st < test.tz | loss --eval ce acc --target label fd --fd-out test.fd.st"

gen decode "decode quantized latents to images (the MaskGIT-VQGAN decoder or TiTok's 1-D decoder)" \
"The weights' arch selects the model.
.PP
.B vqgan-decoder
runs the MaskGIT-VQGAN decoder: conv_in 3x3, mid blocks, at every level from the deepest res_blocks ResnetBlocks then (but at the last) nearest x2 upsampling and upsample_conv 3x3, GroupNorm, SiLU, conv_out 3x3. Names are upstream's (decoder.*).
.PP
.B titok-decoder
runs TiTok's decoder (bytedance/1d-tokenizer TiTokDecoder, the legacy proxy-code head): decoder_embed (Linear token_size to width) + latent_token_positional_embedding for the K tokens; [class_embedding, mask_token repeated grid*grid times] + positional_embedding; the sequence [cls, masks, tokens] through ln_pre, the pre-LN ViT blocks and ln_post on the mask rows; then ffn: conv 1x1 width to 2 width, tanh, conv 1x1 to proxy_codes logits per grid position (stage 1 trains them with cross-entropy against the teacher's codes). With pixel=1 (stage 2, inference) the logits go on through a softmax, a weighted sum of the rows of the teacher's codebook pixel_quantize.embedding.weight [proxy_codes,pixel_z] (trainable, as upstream) and the MaskGIT-VQGAN decoder under pixel_decoder.* to pixels; the record then gets recon alone, not the logits (an intermediate of 16 MB a batch of 64), and backward reads recon.grad (and logits.grad if given). Metadata: resolution, patch, grid (default resolution/patch), width, layers, heads, tokens, token_size, proxy_codes, pixel, pixel_l2 (default 0; 1 weights the L2-normalised rows of the codebook, as a teacher whose quantizer has l2=1 looks its codes up; upstream's teacher has none), and the VQGAN decoder's keys prefixed pixel_ (pixel_channels, pixel_resolution, pixel_hidden, pixel_mult, pixel_res_blocks, pixel_z); its latent grid must be grid x grid. Names are upstream's: decoder.*, pixel_quantize.embedding.weight, pixel_decoder.*, so the teacher's quantize.embedding.weight and decoder.* load there renamed." \
".TP
.B vqgan-tiny
channels=1 resolution=32 hidden=32 mult=1,1,2 res_blocks=1 z=32
.TP
.B vqgan-f16-256
channels=3 resolution=256 hidden=128 mult=1,1,2,2,4 res_blocks=2 z=256
.TP
.B titok-tiny
resolution=32 patch=4 width=256 layers=4 heads=4 tokens=32 token_size=16 proxy_codes=1024: 8x8 logits over vqgan-tiny's 1024 codes.
.TP
.B titok-tiny-pixel
titok-tiny with pixel=1 and vqgan-tiny's decoder: pixel_channels=1 pixel_resolution=32 pixel_hidden=32 pixel_mult=1,1,2 pixel_res_blocks=1 pixel_z=32.
.TP
.BR titok-s-128 \", \" titok-b-64 \", \" titok-l-32
upstream's legacy configs (resolution=256 patch=16 token_size=12 proxy_codes=1024; 27.0M, 88.1M, 306.8M parameters).
.TP
.BR titok-s-128-pixel \", \" titok-b-64-pixel \", \" titok-l-32-pixel
the same with pixel=1 and upstream's f16 MaskGIT-VQGAN decoder (pixel_channels=3 pixel_resolution=256 pixel_hidden=128 pixel_mult=1,1,2,2,4 pixel_res_blocks=2 pixel_z=256)." \
"vqgan-decoder reads
.B quant
F32 [B,h,w,z] and writes
.B recon
F32 [B,C,H,W] (not clamped; patch2img clamps); backward reads
.BR recon.grad ,
writes
.BR quant.grad .
.PP
titok-decoder reads
.B quant
F32 [B,K,D] and writes
.B logits
F32 [B,grid,grid,proxy_codes] (loss ce compares them with the teacher's ids [B,grid,grid] in field target) and, with pixel=1, also
.B recon
F32 [B,C,H,W]. Backward reads
.B logits.grad
and/or (pixel=1)
.BR recon.grad ,
writes
.BR quant.grad .
Every other field passes through." \
"vq -w vq.st < tokens.tz | decode -w dec.st | patch2img -f recon --grid out.png --cols 8
decode --init -w titok-dec.st --arch titok-tiny-pixel --seed 2
vq -w titok-vq.st < tokens1d.tz | decode -w titok-dec.st | patch2img -f recon --grid out.png"

gen vq "quantize latents to codebook entries, or ids back to vectors" \
"Finds for every vector of the last dimension of
.B latent
the nearest row of the codebook quantize.embedding.weight [codes,dim] by squared distance (ties to the lowest index, as torch.argmin), with TiTok's L2 normalisation of both sides when l2=1. The output uses the straight-through estimator. The commitment loss beta*mean((sg(zq)-z)^2) and the codebook loss mean((zq-sg(z))^2), times the quantizer weight, add their gradients in backward; their values, the batch's code usage and perplexity go into the record's metadata (loss.vq_commit, loss.vq_codebook, vq.used, vq.perplexity), which loss(1) logs.
.PP
Dead codes: codes no batch picks stop learning (their rows get no gradient); the dead codes of a batch are codes minus vq.used, and a run's evaluation counts the codes the whole test set uses. The remedy tokpipe uses is the L2-normalised variant (l2=1, TiTok's): nearest neighbours by cosine similarity keep the codes on the unit sphere next to the normalised latents, so none drift out of reach. Measured on Fashion-MNIST (vqgan-tiny, 300 steps): the plain quantizer used 25 of 1024 codes on 512 test images (perplexity 18), l2=1 used 454 (perplexity 337) and reconstructed better (PSNR 19.3 against 18.9 dB); make vqgan sets it. A teacher trained with l2=1 must be looked up normalised by TiTok's pixel path too (decode's pixel_l2=1)." \
".TP
.B vqgan-tiny
codes=1024 dim=32 l2=0 beta=0.25
.TP
.B vqgan-f16-256
codes=1024 dim=256 l2=0 beta=0.25
.TP
.B titok-tiny
codes=1024 dim=16 l2=1 beta=0.25
.TP
.BR titok-s-128 \", \" titok-b-64 \", \" titok-l-32
codes=4096 dim=12 l2=1 beta=0.25: upstream's codebook for encode's presets of these names" \
"Reads
.B latent
F32 [...,dim]; writes
.B quant
F32 [...,dim] and
.B ids
I32 [...]. A record without
.B latent
but with
.B ids
is looked up instead: ids to
.BR quant .
Backward reads
.BR quant.grad ,
writes
.BR latent.grad ." \
"encode -w enc.st < x.tz | vq -w vq.st | tz pick ids,label > tokens.tz
vq -w vq.st < tokens.tz | decode -w dec.st > recon.tz"

gen transformer "predict the logits of image tokens (the MaskGIT generator, TiTok's ImageBert)" \
"Runs TiTok's MaskGIT generator (ImageBert in bytedance/1d-tokenizer modeling/maskgit.py): an HF BertModel over the class token followed by the K image tokens, then an untied lm_head. Embeddings are word_embeddings[token] + token_type_embeddings row 0 + position_embeddings, LayerNorm (eps 1e-12) and dropout; then post-LN BertLayers (exact GELU, hidden and attention dropout in training); the logits of positions 1..K. The vocabulary is the codebook 0..codes-1, the mask token codes, the classes codes+1+label and the null class codes+classes+1. Tensor names are upstream's state_dict (model.embeddings.word_embeddings.weight, model.encoder.layer.N.attention.self.query.weight, ..., model.lm_head.weight), so a converted upstream checkpoint loads. Dropout masks come from the record's seed. Labels are not dropped here: mask --train does that (upstream drops them inside forward).
.PP
Classifier-free guidance (inference only) is read from the record's metadata, which mask --init-sample and the region masks write and mask --sample advances:
.B guidance
G (absent or 0: none),
.B guidance_schedule
constant, linear (default) or power-cosine,
.B guidance_pow
P (3),
.B sample_step
s and
.B sample_steps
T. The scale is G (constant), (s/T) G (linear: 0 at s = 0, so the first step runs the conditional pass alone) or (G-1)(1 - cos(pi (s/T)^P))/2 + 1 (power-cosine). When it is not 0 the batch runs once more with the null class, in the same pass, and the logits are cond + scale (cond - uncond), or uncond + scale (cond - uncond) for power-cosine, as ImageBert.generate combines them." \
".TP
.B maskgit-tiny
width=256 layers=6 heads=4 mlp=1024 codes=1024 classes=10 tokens=32 dropout=0.1 attn_drop=0.1 (Fashion-MNIST; --set classes=9 for the emoji, --set tokens=64 for 8x8 VQGAN tokens).
.TP
.B generator-titok-l32
width=768 layers=24 heads=16 mlp=3072 codes=4096 classes=1000 tokens=32: upstream's generator for TiTok-L-32, 177.2M parameters.
.TP
.B generator-titok-b64
the same with tokens=64 (TiTok-B-64)." \
"Reads
.B ids
I32 [B,K] or [B,h,w] (h*w = K, raster order; the mask is codes) and
.B label
I32 [B] (absent or negative: the null class); writes
.B logits
F32 [B,K,codes] or [B,h,w,codes]. Backward reads
.B logits.grad
and writes no input gradient (ids are integers). Every other field passes through." \
"transformer --init -w gen.st --arch maskgit-tiny --seed 1
mkfifo g.fifo
tz feed -b 64 --steps 1000 tokens.tz | mask --train --vocab 1024 |
  transformer -w gen.st --train --grad-in g.fifo --lr 2e-4 --betas 0.9,0.96 --wd 0.03 |
  loss ce --label-smoothing 0.1 --unmasked-weight 0.1 > g.fifo
mask --init-sample --tokens 32 --vocab 1024 --classes 10 -n 40 --steps 8 --guidance 4.5 > s.tz
for t in 0 1 2 3 4 5 6 7; do transformer -w gen.st < s.tz | mask --sample > n.tz; mv n.tz s.tz; done"
