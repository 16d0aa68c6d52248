#!/bin/bash
# Write man1/{encode,vq,decode}.1: per-tool text here, shared sections from
# stage-options.roff. Run from the top directory: sh man/src/stage-pages.sh
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
gen encode "encode images to latents (the MaskGIT-VQGAN encoder)" \
"Runs the MaskGIT-VQGAN encoder: conv_in 3x3, at every level res_blocks ResnetBlocks (GroupNorm 32, eps 1e-6, SiLU, SAME 3x3 convs, with upstream's shortcut quirk when the width changes) and a 2x2 average pool after every level but the last, mid blocks, GroupNorm, SiLU, conv_out 1x1. Tensor names are upstream's (encoder.conv_in.weight, encoder.down.I.block.J.norm1.weight, ...), so the weight files of encode, vq and decode together form upstream's state_dict." \
".TP
.B vqgan-tiny
channels=1 resolution=32 hidden=32 mult=1,1,2 res_blocks=1 z=32: 32x32 images to 8x8 latents (use --set channels=3 for colour data).
.TP
.B vqgan-f16-256
channels=3 resolution=256 hidden=128 mult=1,1,2,2,4 res_blocks=2 z=256: upstream's f16 tokenizer." \
"Reads
.B image
F32 [B,C,H,W]; writes
.B latent
F32 [B,h,w,z]. Backward reads
.BR latent.grad .
Every other field passes through." \
"encode --init -w enc.st --arch vqgan-tiny --seed 1
img2patch -b 32 imgs/ | encode -w enc.st | vq -w vq.st > tokens.tz"

gen decode "decode quantized latents to images (the MaskGIT-VQGAN decoder)" \
"Runs the MaskGIT-VQGAN decoder: conv_in 3x3, mid blocks, at every level from the deepest res_blocks ResnetBlocks then (but at the last) nearest x2 upsampling and upsample_conv 3x3, GroupNorm, SiLU, conv_out 3x3. Names are upstream's (decoder.*)." \
".TP
.B vqgan-tiny
channels=1 resolution=32 hidden=32 mult=1,1,2 res_blocks=1 z=32
.TP
.B vqgan-f16-256
channels=3 resolution=256 hidden=128 mult=1,1,2,2,4 res_blocks=2 z=256" \
"Reads
.B quant
F32 [B,h,w,z]; writes
.B recon
F32 [B,C,H,W] (not clamped; patch2img clamps). Backward reads
.BR recon.grad ,
writes
.BR quant.grad ." \
"vq -w vq.st < tokens.tz | decode -w dec.st | patch2img -f recon --grid out.png --cols 8"

gen vq "quantize latents to codebook entries, or ids back to vectors" \
"Finds for every vector of the last dimension of
.B latent
the nearest row of the codebook quantize.embedding.weight [codes,dim] by squared distance (ties to the lowest index, as torch.argmin), with TiTok's L2 normalisation of both sides when l2=1. The output uses the straight-through estimator. The commitment loss beta*mean((sg(zq)-z)^2) and the codebook loss mean((zq-sg(z))^2), times the quantizer weight, add their gradients in backward; their values, the batch's code usage and perplexity go into the record's metadata (loss.vq_commit, loss.vq_codebook, vq.used, vq.perplexity), which loss(1) logs.
.PP
Dead codes: codes no batch picks stop learning (their rows get no gradient). Watch vq.used in the log; the remedies are a lower learning rate for the codebook, the L2-normalised variant (l2=1, TiTok's), or re-initialising the codebook from encoder outputs (--init a new vq file, then train)." \
".TP
.B vqgan-tiny
codes=1024 dim=32 l2=0 beta=0.25
.TP
.B vqgan-f16-256
codes=1024 dim=256 l2=0 beta=0.25
.TP
.B titok-tiny
codes=1024 dim=16 l2=1 beta=0.25" \
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
