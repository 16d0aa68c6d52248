/* encode - image to latent: the VQGAN encoder (the 2-D teacher) or TiTok's
 * 1-D encoder, as a training stage; also image to features and class
 * logits (the evaluation's ViT classifier). All the work is lib/stage.c's
 * and the modules'. */
#include "classifier.h"
#include "stage.h"
#include "titok.h"
#include "vqgan.h"

static const struct module_ops *const ops[] = {&vqgan_encoder_ops, &titok_encoder_ops, &classifier_ops, NULL};

static const char *const presets[][2] = {
    {"vqgan-tiny", "arch=vqgan-encoder channels=1 resolution=32 hidden=32 mult=1,1,2 res_blocks=1 z=32"},
    {"vqgan-f16-256", "arch=vqgan-encoder channels=3 resolution=256 hidden=128 mult=1,1,2,2,4 res_blocks=2 z=256"},
    TITOK_ENCODER_PRESETS,
    {"vit-classifier", CLASSIFIER_TINY},
    {NULL, NULL},
};

static const struct stage_tool tool = {
    .name = "encode",
    .summary = "Encode images to latents (MaskGIT-VQGAN encoder, or TiTok's 1-D encoder),\n"
               "or classify them (the ViT classifier of the evaluation).",
    .ops = ops,
    .presets = presets,
    .fields = "fields: reads image F32 [B,C,H,W]; writes latent F32 [B,h,w,z] (vqgan)\n"
              "        or [B,K,D] (titok); backward reads latent.grad.\n"
              "        vit-classifier: writes features F32 [B,width] and logits F32\n"
              "        [B,classes]; backward reads logits.grad and/or features.grad.\n",
};

int main(int argc, char **argv) { return stage_main(&tool, argc, argv); }
