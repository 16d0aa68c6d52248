/* vq - vector quantization of latents to codes (and codes back to
 * vectors), as a training stage. All the work is lib/stage.c's and
 * lib/vqmod.c's. */
#include "stage.h"
#include "vqmod.h"

static const struct module_ops *const ops[] = {&vq_module_ops, NULL};

static const char *const presets[][2] = {
    {"vqgan-tiny", "arch=vq codes=1024 dim=32 l2=0 beta=0.25"},
    {"vqgan-f16-256", "arch=vq codes=1024 dim=256 l2=0 beta=0.25"},
    {"titok-tiny", "arch=vq codes=1024 dim=16 l2=1 beta=0.25"},
    /* upstream's TiTok-S-128, B-64, L-32: a 4096 x 12 codebook */
    {"titok-s-128", "arch=vq codes=4096 dim=12 l2=1 beta=0.25"},
    {"titok-b-64", "arch=vq codes=4096 dim=12 l2=1 beta=0.25"},
    {"titok-l-32", "arch=vq codes=4096 dim=12 l2=1 beta=0.25"},
    {NULL, NULL},
};

static const struct stage_tool tool = {
    .name = "vq",
    .summary = "Quantize latents to the nearest codebook entries (ids), or ids back to vectors.",
    .ops = ops,
    .presets = presets,
    .fields = "fields: reads latent F32 [...,dim] (or, without it, ids I32 [...]);\n"
              "        writes quant F32 [...,dim] and ids I32 [...];\n"
              "        backward reads quant.grad, writes latent.grad.\n",
};

int main(int argc, char **argv) { return stage_main(&tool, argc, argv); }
