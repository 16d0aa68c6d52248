/* composite.h - the blended composite of MaskGIT's editing (google-research
 * maskgit inference.py, composite_outputs; upstream.md C.5): the token-grid
 * region mask, resized to the image and blurred by a Gaussian, blends the
 * generated image into the input,
 *
 *     out = gen m + in (1 - m),
 *
 * so that pixels deep inside the regenerated region are the generated ones
 * and pixels far from it the input's, bit for bit, with a soft seam between.
 *
 * Dimensions: C channels, H,W the image's height and width, GH,GW the token
 * grid (H and W multiples of GH and GW: a token covers a PH x PW patch, PH =
 * H/GH, PW = W/GW). Images are F32 [C,H,W]; a region is U8 [GH,GW] in raster
 * order, nonzero = regenerated (the `mask` of a region mask, before
 * decoding); a blend mask m is F32 [H,W] in [0,1].
 *
 * The blend mask: nearest-neighbour upsampling of the region (each token
 * fills its patch), then a separable Gaussian of standard deviation sigma
 * pixels with weights exp(-k^2 / (2 sigma^2)) for |k| <= ceil(3 sigma),
 * normalised to sum 1, the image's border pixels replicated, sums in double.
 * Upstream blurs with a radius of S/16 - 1 for S x S images at 16 pixels
 * per token (one patch less one pixel), read here as the standard deviation
 * (PIL's GaussianBlur radius); the tools default to PH - 1. sigma = 0 gives
 * the hard mask. Where the whole window of a pixel lies inside the region m
 * is exactly 1, where it misses the region exactly 0.
 *
 * Departure from upstream: its mask is an 8-bit image (quantised to 1/255);
 * here it stays float and the kernel is the exact truncated Gaussian. */
#ifndef TP_COMPOSITE_H
#define TP_COMPOSITE_H

#include <stdint.h>

/* The kernel's half-width: ceil(3 sigma), 0 for sigma 0. */
int composite_radius(double sigma);

/* m [H,W] := the region [GH,GW] upsampled and blurred (above). */
void composite_mask(float *m, const uint8_t *region, int GH, int GW, int H, int W, double sigma);

/* out [C,H,W] := gen m + in (1 - m), m [H,W] shared by the channels. out may
 * alias in or gen. */
void composite_blend(float *out, const float *in, const float *gen, const float *m, int C, int H, int W);

/* out [C,H,W] := value inside the hard (upsampled, unblurred) region, in
 * elsewhere: what the model was given, for display. out may alias in. */
void composite_grey(float *out, const float *in, const uint8_t *region, int GH, int GW, int C, int H, int W,
                    float value);

#endif
