/* png.c - PNG decode/encode in memory over libpng (see png.h).
 *
 * libpng reports errors by longjmp. All state that must survive the jump
 * lives in a struct reached through a pointer (never in locals of the
 * function that called setjmp), so nothing is indeterminate afterwards.
 */
#include "png.h"
#include "err.h"

/* <png.h> would find this directory's png.h first (-Ilib): name libpng's. */
#include <libpng16/png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

struct pngstate {
    const unsigned char *in;   /* decode: the file image */
    size_t in_n, in_pos;
    unsigned char *out;        /* encode: growing file image */
    size_t out_n, out_cap;
    unsigned char *px;         /* decode: pixel buffer */
    png_bytep *rows;
    char msg[256];
};

static void on_error(png_structp png, png_const_charp msg)
{
    struct pngstate *s = png_get_error_ptr(png);
    if (!s->msg[0]) snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (a bad sRGB profile, an ancillary CRC) do not change pixels. */
static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void on_read(png_structp png, png_bytep dst, size_t n)
{
    struct pngstate *s = png_get_io_ptr(png);
    if (n > s->in_n - s->in_pos) {
        snprintf(s->msg, sizeof s->msg, "truncated PNG (%zu bytes)", s->in_n);
        png_error(png, s->msg);
    }
    memcpy(dst, s->in + s->in_pos, n);
    s->in_pos += n;
}

int png_check_size(int64_t w, int64_t h)
{
    if (w <= 0 || h <= 0)
        return tp_err_set("image is %lldx%lld", (long long)w, (long long)h);
    if (w > PNG_MAX_SIDE)
        return tp_err_set("width %lld is over the limit of %d (PNG_MAX_SIDE)", (long long)w, PNG_MAX_SIDE);
    if (h > PNG_MAX_SIDE)
        return tp_err_set("height %lld is over the limit of %d (PNG_MAX_SIDE)", (long long)h, PNG_MAX_SIDE);
    if (w * h > PNG_MAX_PIXELS)
        return tp_err_set("%lldx%lld pixels is over the limit of %lld (PNG_MAX_PIXELS)",
                          (long long)w, (long long)h, (long long)PNG_MAX_PIXELS);
    return 0;
}

/* Everything between setjmp and the end of libpng use; 0 or -1 (s->msg). */
static int decode_run(png_structp png, png_infop info, struct pngstate *s,
                      struct png_pixels *out)
{
    if (setjmp(png_jmpbuf(png))) return -1;
    png_set_read_fn(png, s, on_read);
    /* our own limits give the message; libpng's default would cut first */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, type;
    png_get_IHDR(png, info, &w, &h, &depth, &type, NULL, NULL, NULL);
    if (png_check_size(w, h) != 0) {
        snprintf(s->msg, sizeof s->msg, "%s", tp_err());
        return -1;
    }
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16 && HOST_LE) png_set_swap(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info), d = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    TP_ASSERT(c >= 1 && c <= 4 && (d == 8 || d == 16) && rowbytes == (size_t)w * c * d / 8);
    s->px = tp_malloc(rowbytes * h);
    s->rows = tp_malloc(sizeof(png_bytep) * h);
    for (png_uint_32 y = 0; y < h; y++) s->rows[y] = s->px + rowbytes * y;
    png_read_image(png, s->rows);
    png_read_end(png, NULL);
    out->w = (int)w;
    out->h = (int)h;
    out->c = c;
    out->depth = d;
    return 0;
}

int png_decode(struct png_pixels *out, const void *buf, size_t n)
{
    memset(out, 0, sizeof *out);
    if (n < 8 || png_sig_cmp((png_const_bytep)buf, 0, 8) != 0)
        return tp_err_set(n == 0 ? "empty file, not a PNG" : "not a PNG file");
    struct pngstate s = {.in = buf, .in_n = n};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    TP_ASSERT(png && info);
    int rc = decode_run(png, info, &s, out);
    png_destroy_read_struct(&png, &info, NULL);
    free(s.rows);
    if (rc != 0) {
        free(s.px);
        memset(out, 0, sizeof *out);
        return tp_err_set("%s", s.msg[0] ? s.msg : "corrupt PNG");
    }
    out->px = s.px;
    return 0;
}

void png_pixels_free(struct png_pixels *p)
{
    free(p->px);
    p->px = NULL;
}

void png_pixels_to_img(struct img *out, const struct png_pixels *p, int channels,
                       const float bg[3])
{
    int c = p->c, color = c >= 3, alpha = c == 2 || c == 4;
    int oc = channels ? channels : (color ? 3 : 1);
    TP_ASSERT(oc == 1 || oc == 3);
    img_alloc(out, oc, p->h, p->w);
    size_t n = (size_t)p->h * p->w;
    const uint8_t *p8 = p->px;
    const uint16_t *p16 = p->px;
    float scale = p->depth == 16 ? 65535.0f : 255.0f;
    float bgl = IMG_LUMA_R * bg[0] + IMG_LUMA_G * bg[1] + IMG_LUMA_B * bg[2];
    for (size_t i = 0; i < n; i++) {
        float v[4] = {0};
        for (int k = 0; k < c; k++)
            v[k] = (p->depth == 16 ? p16[i * c + k] : p8[i * c + k]) / scale;
        float a = alpha ? v[c - 1] : 1.0f;
        if (oc == 3) {
            for (int k = 0; k < 3; k++) {
                float x = color ? v[k] : v[0];
                out->data[k * n + i] = alpha ? a * x + (1 - a) * bg[k] : x;
            }
        } else {
            float x = color ? IMG_LUMA_R * v[0] + IMG_LUMA_G * v[1] + IMG_LUMA_B * v[2] : v[0];
            out->data[i] = alpha ? a * x + (1 - a) * bgl : x;
        }
    }
}

int png_read_img(struct img *out, const void *buf, size_t n, int channels, const float bg[3])
{
    struct png_pixels p;
    if (png_decode(&p, buf, n) != 0) return -1;
    png_pixels_to_img(out, &p, channels, bg);
    png_pixels_free(&p);
    return 0;
}

/* ---- encoding ------------------------------------------------------------------ */

static void on_write(png_structp png, png_bytep src, size_t n)
{
    struct pngstate *s = png_get_io_ptr(png);
    if (s->out_n + n > s->out_cap) {
        while (s->out_n + n > s->out_cap) s->out_cap = s->out_cap ? 2 * s->out_cap : 4096;
        s->out = tp_realloc(s->out, s->out_cap);
    }
    memcpy(s->out + s->out_n, src, n);
    s->out_n += n;
}

static void on_flush(png_structp png) { (void)png; }

static int encode_run(png_structp png, png_infop info, struct pngstate *s,
                      const void *px, int w, int h, int c, int depth)
{
    static const int types[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    if (setjmp(png_jmpbuf(png))) return -1;
    png_set_write_fn(png, s, on_write, on_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, types[c - 1],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    if (depth == 16 && HOST_LE) png_set_swap(png);
    size_t rowbytes = (size_t)w * c * depth / 8;
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)px + rowbytes * y);
    png_write_end(png, NULL);
    return 0;
}

int png_encode(void **buf, size_t *n, const void *px, int w, int h, int c, int depth)
{
    TP_ASSERT(c >= 1 && c <= 4 && (depth == 8 || depth == 16));
    struct pngstate s = {0};
    if (png_check_size(w, h) != 0) return tp_err_prefix("cannot write PNG");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    TP_ASSERT(png && info);
    int rc = encode_run(png, info, &s, px, w, h, c, depth);
    png_destroy_write_struct(&png, &info);
    if (rc != 0) {
        free(s.out);
        return tp_err_set("cannot write PNG: %s", s.msg);
    }
    *buf = s.out;
    *n = s.out_n;
    return 0;
}

void png_img_to_u8(uint8_t *px, const float *inp, int C, int H, int W)
{
    size_t n = (size_t)H * W;
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < n; i++) {
            float x = inp[c * n + i];
            x = x > 0 ? (x < 1 ? x : 1) : 0;   /* NaN fails x > 0: 0 */
            px[i * C + c] = (uint8_t)(x * 255.0f + 0.5f);
        }
}

int png_encode_img(void **buf, size_t *n, const float *inp, int C, int H, int W)
{
    if (C < 1 || C > 4) return tp_err_set("cannot write PNG: %d channels (1 to 4 allowed)", C);
    uint8_t *px = tp_malloc((size_t)C * H * W);
    png_img_to_u8(px, inp, C, H, W);
    int rc = png_encode(buf, n, px, W, H, C, 8);
    free(px);
    return rc;
}
