/* test_png.c - PNG decode/encode: round trips of every channel count and
 * depth, palette/tRNS, low bit depths and interlacing (written here with
 * libpng directly), float conversion and alpha compositing values, 8-bit
 * quantisation, and errors: not a PNG, truncation at every length, a bad
 * CRC, the size limits. */
#include "test.h"
#include "png.h"

#include <libpng16/png.h>

static void fill_px(struct rng *r, void *px, size_t n, int depth)
{
    for (size_t i = 0; i < n; i++) {
        if (depth == 16) ((uint16_t *)px)[i] = (uint16_t)rng_below(r, 65536);
        else ((uint8_t *)px)[i] = (uint8_t)rng_below(r, 256);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 1);
    for (int depth = 8; depth <= 16; depth += 8)
        for (int c = 1; c <= 4; c++) {
            int w = 7, h = 5;
            size_t n = (size_t)w * h * c, bytes = n * depth / 8;
            void *px = malloc(bytes);
            fill_px(&r, px, n, depth);
            void *buf;
            size_t len;
            assert_int_equal(png_encode(&buf, &len, px, w, h, c, depth), 0);
            struct png_pixels p;
            assert_int_equal(png_decode(&p, buf, len), 0);
            assert_int_equal(p.w, w);
            assert_int_equal(p.h, h);
            assert_int_equal(p.c, c);
            assert_int_equal(p.depth, depth);
            assert_memory_equal(p.px, px, bytes);
            png_pixels_free(&p);
            free(buf);
            free(px);
        }
}

/* A PNG written with libpng itself, for what png_encode does not write. */
struct membuf {
    unsigned char *p;
    size_t n;
};

static void mem_write(png_structp png, png_bytep d, size_t n)
{
    struct membuf *m = png_get_io_ptr(png);
    m->p = realloc(m->p, m->n + n);
    memcpy(m->p + m->n, d, n);
    m->n += n;
}

static void mem_flush(png_structp png) { (void)png; }

static struct membuf write_raw(int w, int h, int depth, int type, int interlace,
                               const unsigned char *rows, size_t rowbytes,
                               const png_color *pal, int npal, const png_byte *trns, int ntrns)
{
    struct membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng write failed");
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, w, h, depth, type, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    png_bytep rp[64];
    for (int y = 0; y < h; y++) rp[y] = (png_bytep)rows + rowbytes * y;
    png_write_image(png, rp);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return m;
}

static void test_palette_trns(void **state)
{
    (void)state;
    /* 2-bit palette indices 0..3 in one row of 4 pixels: 0b00011011 */
    const png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    const png_byte trns[2] = {255, 0};   /* entry 1 transparent, 2 and 3 opaque */
    unsigned char row[1] = {0x1B};
    struct membuf m = write_raw(4, 1, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, row, 1,
                                pal, 4, trns, 2);
    struct png_pixels p;
    assert_int_equal(png_decode(&p, m.p, m.n), 0);
    assert_int_equal(p.c, 4);
    assert_int_equal(p.depth, 8);
    const uint8_t want[16] = {255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 255, 255, 10, 20, 30, 255};
    assert_memory_equal(p.px, want, 16);
    /* on a white background the transparent pixel is white */
    struct img im;
    const float white[3] = {1, 1, 1};
    png_pixels_to_img(&im, &p, 0, white);
    assert_int_equal(im.c, 3);
    const float wantf[12] = {1, 1, 0, 10 / 255.0f, 0, 1, 0, 20 / 255.0f, 0, 1, 1, 30 / 255.0f};
    check_close("palette on white", im.data, wantf, 12, 0, 0);
    img_free(&im);
    png_pixels_free(&p);
    free(m.p);
    /* gray with a tRNS colour: that gray value becomes transparent */
    png_color_16 key = {.gray = 7};
    unsigned char g[3] = {7, 8, 7};
    struct membuf k = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng write failed");
    png_set_write_fn(png, &k, mem_write, mem_flush);
    png_set_IHDR(png, info, 3, 1, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_tRNS(png, info, NULL, 0, &key);
    png_write_info(png, info);
    png_write_row(png, g);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    assert_int_equal(png_decode(&p, k.p, k.n), 0);
    const uint8_t wg[6] = {7, 0, 8, 255, 7, 0};
    assert_int_equal(p.c, 2);
    assert_memory_equal(p.px, wg, 6);
    png_pixels_free(&p);
    free(k.p);
}

static void test_low_depth_and_interlace(void **state)
{
    (void)state;
    /* 1-bit gray, 8 pixels: 10110001 -> 255,0,255,255,0,0,0,255 */
    unsigned char row[1] = {0xB1};
    struct membuf m = write_raw(8, 1, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, row, 1,
                                NULL, 0, NULL, 0);
    struct png_pixels p;
    assert_int_equal(png_decode(&p, m.p, m.n), 0);
    const uint8_t want[8] = {255, 0, 255, 255, 0, 0, 0, 255};
    assert_int_equal(p.c, 1);
    assert_memory_equal(p.px, want, 8);
    png_pixels_free(&p);
    free(m.p);
    /* Adam7-interlaced RGB 9x7 decodes to the same pixels */
    struct rng r;
    rng_seed(&r, 2);
    unsigned char px[9 * 7 * 3];
    fill_px(&r, px, sizeof px, 8);
    m = write_raw(9, 7, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, px, 27, NULL, 0, NULL, 0);
    assert_int_equal(png_decode(&p, m.p, m.n), 0);
    assert_memory_equal(p.px, px, sizeof px);
    png_pixels_free(&p);
    free(m.p);
}

static void test_float_values(void **state)
{
    (void)state;
    const uint8_t g8[3] = {0, 128, 255};
    const uint16_t g16[3] = {0, 1000, 65535};
    const float bg[3] = {0, 0, 0};
    struct png_pixels p = {.w = 3, .h = 1, .c = 1, .depth = 8, .px = (void *)g8};
    struct img im;
    png_pixels_to_img(&im, &p, 0, bg);
    const float w8[3] = {0, 128 / 255.0f, 1};
    check_close("8-bit /255", im.data, w8, 3, 0, 0);
    img_free(&im);
    p.depth = 16;
    p.px = (void *)g16;
    png_pixels_to_img(&im, &p, 3, bg);   /* gray replicated to RGB */
    const float w16[9] = {0, 1000 / 65535.0f, 1, 0, 1000 / 65535.0f, 1, 0, 1000 / 65535.0f, 1};
    assert_int_equal(im.c, 3);
    check_close("16-bit /65535, replicated", im.data, w16, 9, 0, 0);
    img_free(&im);
    /* RGB to gray: BT.601 luma */
    const uint8_t rgb[3] = {255, 0, 0};
    struct png_pixels q = {.w = 1, .h = 1, .c = 3, .depth = 8, .px = (void *)rgb};
    png_pixels_to_img(&im, &q, 1, bg);
    assert_float_equal(im.data[0], IMG_LUMA_R, 1e-7);
    img_free(&im);
}

static void test_compositing(void **state)
{
    (void)state;
    /* one RGBA pixel (255,0,0,128) and one gray+alpha pixel (255,64) */
    const uint8_t rgba[4] = {255, 0, 0, 128}, ga[2] = {255, 64};
    const float bg[3] = {0, 0, 1};
    const float a = 128 / 255.0f, b = 64 / 255.0f;
    struct png_pixels p = {.w = 1, .h = 1, .c = 4, .depth = 8, .px = (void *)rgba};
    struct img im;
    png_pixels_to_img(&im, &p, 0, bg);
    const float want[3] = {a, 0, 1 - a};
    check_close("RGBA on blue", im.data, want, 3, 1e-6, 0);
    img_free(&im);
    png_pixels_to_img(&im, &p, 1, bg);   /* gray: luma of both sides */
    float wg = a * IMG_LUMA_R + (1 - a) * IMG_LUMA_B;
    check_close("RGBA on blue, gray", im.data, &wg, 1, 1e-6, 0);
    img_free(&im);
    struct png_pixels q = {.w = 1, .h = 1, .c = 2, .depth = 8, .px = (void *)ga};
    png_pixels_to_img(&im, &q, 3, bg);   /* gray+alpha on a colour: colour shows */
    const float wq[3] = {b, b, b + (1 - b)};
    check_close("gray+alpha on blue, RGB", im.data, wq, 3, 1e-6, 0);
    img_free(&im);
    png_pixels_to_img(&im, &q, 0, bg);
    assert_int_equal(im.c, 1);
    assert_float_equal(im.data[0], b + (1 - b) * IMG_LUMA_B, 1e-6);
    img_free(&im);
}

static void test_to_u8(void **state)
{
    (void)state;
    const float x[8] = {-0.1f, 0, 0.4f / 255, 0.6f / 255, 0.5f, 1, 1.5f, NAN};
    const uint8_t want[8] = {0, 0, 0, 1, 128, 255, 255, 0};
    uint8_t got[8];
    png_img_to_u8(got, x, 1, 1, 8);
    assert_memory_equal(got, want, 8);
    /* planar [C,H,W] in, interleaved out */
    const float rgb[6] = {0, 1, 1, 0, 0.2f, 0.6f};   /* C=3, 1x2 */
    const uint8_t wrgb[6] = {0, 255, 51, 255, 0, 153};
    png_img_to_u8(got, rgb, 3, 1, 2);
    assert_memory_equal(got, wrgb, 6);
    void *buf;
    size_t n;
    assert_int_equal(png_encode_img(&buf, &n, x, 5, 1, 1), -1);
    assert_non_null(strstr(tp_err(), "5 channels"));
}

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void expect_error(const void *buf, size_t n, const char *needle)
{
    struct png_pixels p;
    if (png_decode(&p, buf, n) == 0) fail_msg("accepted %zu bytes (wanted '%s')", n, needle);
    if (needle && !strstr(tp_err(), needle)) fail_msg("error '%s' lacks '%s'", tp_err(), needle);
    assert_null(p.px);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("", 0, "not a PNG");
    expect_error("GIF89a........", 14, "not a PNG");
    uint8_t px[6 * 4];
    memset(px, 7, sizeof px);
    unsigned char *buf;
    size_t n;
    assert_int_equal(png_encode((void **)&buf, &n, px, 6, 4, 1, 8), 0);
    /* every truncation is an error, never a crash or a partial image */
    for (size_t k = 8; k < n; k++) expect_error(buf, k, NULL);
    expect_error(buf, n - 12, "truncated");
    /* a flipped bit in the IHDR data breaks its CRC */
    unsigned char *bad = malloc(n);
    memcpy(bad, buf, n);
    bad[26] ^= 1;   /* IHDR data: the compression method byte */
    expect_error(bad, n, "CRC");
    /* dimensions over the limits, with a valid CRC */
    memcpy(bad, buf, n);
    put_be32(bad + 16, 20000);
    put_be32(bad + 29, crc32_of(bad + 12, 17));
    expect_error(bad, n, "width 20000 is over the limit of 16384 (PNG_MAX_SIDE)");
    put_be32(bad + 16, 16384);
    put_be32(bad + 20, 16384);
    put_be32(bad + 29, crc32_of(bad + 12, 17));
    expect_error(bad, n, "PNG_MAX_PIXELS");
    free(bad);
    free(buf);
    assert_int_equal(png_check_size(0, 3), -1);
    assert_int_equal(png_check_size(16384, 4096), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_palette_trns),
        cmocka_unit_test(test_low_depth_and_interlace),
        cmocka_unit_test(test_float_values),
        cmocka_unit_test(test_compositing),
        cmocka_unit_test(test_to_u8),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
