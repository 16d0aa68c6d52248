/* transformer - MaskGIT's bidirectional transformer (TiTok's ImageBert) as
 * a training stage: ids and labels in, logits out. All the work is
 * lib/stage.c's and lib/imagebert.c's. */
#include "imagebert.h"
#include "stage.h"

static const struct module_ops *const ops[] = {&imagebert_ops, NULL};

static const struct stage_tool tool = {
    .name = "transformer",
    .summary = "Predict the logits of image tokens (MaskGIT generator, TiTok's ImageBert).",
    .ops = ops,
    .presets = imagebert_presets,
    .fields = "fields: reads ids I32 [B,K] or [B,h,w] (codes, mask = codes) and label I32 [B]\n"
              "        (absent or < 0: the null class); writes logits F32 [B,K,codes] (or\n"
              "        [B,h,w,codes]); backward reads logits.grad. Inference guidance from the\n"
              "        record's metadata: guidance, guidance_schedule (constant|linear|\n"
              "        power-cosine), guidance_pow, sample_step, sample_steps (set by mask).\n",
};

int main(int argc, char **argv) { return stage_main(&tool, argc, argv); }
