/* imgops.h - image geometry and channel conversion on planar float images.
 *
 * Images are contiguous F32 [C,H,W] (PyTorch layout, values in [0,1]); a
 * batch is [B,C,H,W]. Dimensions: B images, C channels, H,W input height and
 * width, OH,OW output height and width, OC output channels, P patch size,
 * N = (H/P)*(W/P) patches.
 *
 * Everything here is deterministic; the random choices of img_augment (crop
 * position, flip) come from a per-sample generator seeded by rng_hash(seed,
 * index), so they depend on the sample's index and not on thread scheduling.
 * Loops are parallelised over output rows, each thread owning its writes.
 */
#ifndef TP_IMGOPS_H
#define TP_IMGOPS_H

#include <stdint.h>

/* RGB -> gray weights (ITU-R BT.601 luma, as PIL's "L" conversion). */
#define IMG_LUMA_R 0.299f
#define IMG_LUMA_G 0.587f
#define IMG_LUMA_B 0.114f

struct img {
    int c, h, w;
    float *data;   /* [C,H,W], owned */
};

/* Allocate (uninitialised) data for a C x H x W image. */
void img_alloc(struct img *im, int c, int h, int w);
void img_free(struct img *im);

enum img_resize {
    IMG_RESIZE_NONE,
    IMG_RESIZE_AREA,      /* box filter: mean of the input area each output pixel covers */
    IMG_RESIZE_BILINEAR   /* half-pixel centres, edges clamped, no antialiasing
                           * (torch interpolate, align_corners=False) */
};

/* Resize [C,H,W] -> [C,OH,OW]. */
void img_resize_area(float *out, const float *inp, int C, int H, int W, int OH, int OW);
void img_resize_bilinear(float *out, const float *inp, int C, int H, int W, int OH, int OW);

/* out[c,y,x] = inp[c,y+y0,x+x0] where that lies inside the input, else
 * value. Positive offsets crop, negative offsets pad: one function for
 * crop, pad and "crop or pad to a size". */
void img_crop_pad(float *out, const float *inp, int C, int H, int W, int y0,
                  int x0, int OH, int OW, float value);

/* Offset along one axis for taking `out` pixels from `in` (centre: the
 * smaller margin goes before, as torchvision's CenterCrop pads). With
 * random != 0, uniform over every possible position, drawn from u. */
int img_crop_offset(int in, int out, int random, uint64_t u);

/* Mirror left-right in place. */
void img_flip_h(float *x, int C, int H, int W);

/* Channel conversion [C,H,W] -> [OC,H,W]: 1->3 replicates, 3->1 is luma,
 * C == OC copies. Other pairs are a programming error. */
void img_channels(float *out, int OC, const float *inp, int C, int H, int W);

/* Patches in raster order, each flattened in (C,P,P) order:
 * out[b, py*(W/P)+px, c*P*P + i*P + j] = inp[b, c, py*P+i, px*P+j].
 * This matches a Conv2d patch-embedding weight [D,C,P,P] viewed as [D,C*P*P].
 * H and W must be multiples of P. img_unpatchify is the inverse. */
void img_patchify(float *out, const float *inp, int B, int C, int H, int W, int P);
void img_unpatchify(float *out, const float *inp, int B, int C, int H, int W, int P);

/* What img_augment does to each sample, in this order:
 *   1. resize (if resize != NONE and out_h > 0) so the image covers
 *      out_h x out_w with its aspect ratio kept (shorter side to size);
 *   2. pad `pad` pixels of pad_value on every side;
 *   3. crop or pad to out_h x out_w (if set), centred or at a random place;
 *   4. mirror left-right with probability 1/2 (if flip). */
struct img_aug {
    int out_h, out_w;          /* 0: keep the size */
    enum img_resize resize;
    int crop_random;
    int pad;
    float pad_value;
    int flip;
};

/* Apply to *im in place (its data may be replaced). seed and index select
 * the random draws of this sample. */
void img_augment(struct img *im, const struct img_aug *a, uint64_t seed, uint64_t index);

#endif
