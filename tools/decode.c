/* decode - quantized latents to pixels: the VQGAN decoder, or TiTok's 1-D
 * decoder (proxy-code logits, and pixels through the VQGAN decoder), as a
 * training stage. All the work is lib/stage.c's and the modules'. */
#include "stage.h"
#include "titok.h"
#include "vqgan.h"

static const struct module_ops *const ops[] = {&vqgan_decoder_ops, &titok_decoder_ops, NULL};

static const char *const presets[][2] = {
    {"vqgan-tiny", "arch=vqgan-decoder channels=1 resolution=32 hidden=32 mult=1,1,2 res_blocks=1 z=32"},
    {"vqgan-f16-256", "arch=vqgan-decoder channels=3 resolution=256 hidden=128 mult=1,1,2,2,4 res_blocks=2 z=256"},
    TITOK_DECODER_PRESETS,
    {NULL, NULL},
};

static const struct stage_tool tool = {
    .name = "decode",
    .summary = "Decode quantized latents to images (MaskGIT-VQGAN decoder, or TiTok's 1-D decoder).",
    .ops = ops,
    .presets = presets,
    .fields = "fields: vqgan: reads quant F32 [B,h,w,z]; writes recon F32 [B,C,H,W];\n"
              "        backward reads recon.grad, writes quant.grad.\n"
              "        titok: reads quant F32 [B,K,D]; writes logits F32 [B,h,w,V] and\n"
              "        (pixel=1) recon F32 [B,C,H,W]; backward reads logits.grad and/or\n"
              "        recon.grad, writes quant.grad.\n",
};

int main(int argc, char **argv) { return stage_main(&tool, argc, argv); }
