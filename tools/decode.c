/* decode - quantized latents to pixels: the VQGAN decoder, as a training
 * stage. All the work is lib/stage.c's and the modules'. */
#include "stage.h"
#include "vqgan.h"

static const struct module_ops *const ops[] = {&vqgan_decoder_ops, NULL};

static const char *const presets[][2] = {
    {"vqgan-tiny", "arch=vqgan-decoder channels=1 resolution=32 hidden=32 mult=1,1,2 res_blocks=1 z=32"},
    {"vqgan-f16-256", "arch=vqgan-decoder channels=3 resolution=256 hidden=128 mult=1,1,2,2,4 res_blocks=2 z=256"},
    {NULL, NULL},
};

static const struct stage_tool tool = {
    .name = "decode",
    .summary = "Decode quantized latents to images (MaskGIT-VQGAN decoder).",
    .ops = ops,
    .presets = presets,
    .fields = "fields: reads quant F32 [B,h,w,z]; writes recon F32 [B,C,H,W];\n"
              "        backward reads recon.grad, writes quant.grad.\n",
};

int main(int argc, char **argv) { return stage_main(&tool, argc, argv); }
