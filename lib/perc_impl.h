/* perc_impl.h - what perceptual.c shares with the trainer (perc_train.c):
 * the network object and its construction from metadata. Not for tools:
 * they use perceptual.h.
 *
 * Dimensions: n images of C channels (the data's) and HW positions; the
 * network takes net_c channels.
 */
#ifndef TP_PERC_IMPL_H
#define TP_PERC_IMPL_H

#include "params.h"
#include "perc_convnext.h"
#include "perc_vgg.h"
#include "perceptual.h"

enum perc_kind { PERC_LPIPS, PERC_CONVNEXT };

struct perceptual {
    char arch[32];
    enum perc_kind kind;
    struct params params;          /* weights (grad is used by training only) */
    struct perc_vgg vgg;           /* PERC_LPIPS: lpips-vgg16, tokpipe-percep */
    struct perc_convnext cnx;      /* PERC_CONVNEXT */
    int net_c;                     /* channels the network takes */
    float shift[3], scale[3];      /* LPIPS input scaling */
    int resize;                    /* convnext-s: side to resize to, 0: none */
    struct perc_vgg_acts va, vt;   /* pred and target activations */
    struct perc_convnext_acts ca;
};

/* Build the network meta describes (its "arch" and optional keys, see
 * perceptual.h): its parameter table, not yet allocated (params_alloc);
 * -1 and a message. */
int perc_build(struct perceptual *p, const struct st *meta);
/* Save weights (and the LPIPS scaling as scaling_layer.* buffers) with
 * meta's metadata, atomically. */
int perc_save(const struct perceptual *p, const char *path, const struct st *meta);
/* LPIPS input: out [n,net_c,HW] = ((2 x - 1) - shift) / scale of the
 * images [n,C,HW] converted to net_c channels. */
void perc_prep_lpips(const struct perceptual *p, float *out, const float *img, int n, int C,
                     int HW);

#endif
