/* png.h - PNG in memory: decode to pixels or float images, encode 8/16-bit.
 *
 * Decoding (libpng) accepts every PNG colour type and depth: gray 1/2/4/8/16
 * bit, gray+alpha, RGB, RGBA, palette (with or without tRNS). Low depths and
 * palettes are expanded; tRNS becomes an alpha channel. Gamma and colour
 * profile chunks are ignored: samples are taken as stored, as PIL and
 * torchvision do. Dimensions are checked against PNG_MAX_SIDE and
 * PNG_MAX_PIXELS before any pixel memory is allocated.
 *
 * Float images (imgops.h struct img, [C,H,W] in [0,1]) are sample/255 or
 * sample/65535. An alpha channel is composited on a background colour:
 * out = a*x + (1-a)*bg. Gray <-> RGB conversion (replicate / BT.601 luma)
 * happens before compositing, so a gray+alpha image on a coloured
 * background becomes that colour where transparent.
 *
 * Errors: -1 with a one-line message (tp_err) such as "truncated PNG" or
 * "width 20000 is over the limit of 16384 (PNG_MAX_SIDE)".
 */
#ifndef TP_PNG_H
#define TP_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "imgops.h"

#define PNG_MAX_SIDE 16384                 /* pixels per side */
#define PNG_MAX_PIXELS ((int64_t)1 << 26)  /* width * height */

/* 0 if a w x h image is within the limits, else -1 naming the limit. */
int png_check_size(int64_t w, int64_t h);

/* Interleaved samples, rows packed: depth 8 -> uint8_t, depth 16 ->
 * uint16_t in host byte order. c: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. */
struct png_pixels {
    int w, h, c, depth;
    void *px;
};

int png_decode(struct png_pixels *out, const void *buf, size_t n);
void png_pixels_free(struct png_pixels *p);

/* Pixels to a float image with `channels` channels (1 or 3; 0: 1 for gray
 * sources, 3 for colour ones), alpha composited on bg (RGB in [0,1]). */
void png_pixels_to_img(struct img *out, const struct png_pixels *p, int channels,
                       const float bg[3]);

/* png_decode + png_pixels_to_img. */
int png_read_img(struct img *out, const void *buf, size_t n, int channels,
                 const float bg[3]);

/* Encode interleaved pixels (c 1..4, depth 8 or 16 as in struct
 * png_pixels) into a malloc'd PNG file image. */
int png_encode(void **buf, size_t *n, const void *px, int w, int h, int c, int depth);

/* Float [C,H,W] to interleaved 8-bit: clamp to [0,1] (NaN -> 0), then
 * floor(x*255 + 0.5). */
void png_img_to_u8(uint8_t *px, const float *inp, int C, int H, int W);

/* png_img_to_u8 + png_encode (C 1..4). */
int png_encode_img(void **buf, size_t *n, const float *inp, int C, int H, int W);

#endif
