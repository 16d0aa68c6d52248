/* fuzz_png.c - libFuzzer target: the PNG decoder (lib/png.c) on arbitrary
 * bytes. Whatever it accepts must convert to float images of 1 and 3
 * channels, and encode and decode again to the same pixels. Errors are the
 * expected outcome; a crash, sanitizer report or hang is a bug. Images
 * over 4 Mpixel are only decoded (conversions would pass 2 GB of RSS). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imgops.h"
#include "png.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct png_pixels p;
    if (png_decode(&p, data, size) != 0) return 0;
    if ((int64_t)p.w * p.h > (1 << 22)) {   /* decoded within the limits; the checks */
        png_pixels_free(&p);                /* below would pass the fuzzer's 2 GB */
        return 0;
    }
    static const float bg[3] = {0.25f, 0.5f, 1.0f};
    for (int ch = 0; ch <= 3; ch += 1 + (ch == 1)) {   /* 0, 1, 3 */
        struct img im;
        png_pixels_to_img(&im, &p, ch, bg);
        for (size_t i = 0; i < (size_t)im.c * im.h * im.w; i++)
            if (!(im.data[i] >= 0.0f && im.data[i] <= 1.0f)) abort();   /* out of [0,1] */
        img_free(&im);
    }
    void *buf;
    size_t n;
    if (png_encode(&buf, &n, p.px, p.w, p.h, p.c, p.depth) != 0) abort(); /* we write what we read */
    struct png_pixels q;
    if (png_decode(&q, buf, n) != 0) abort();
    size_t bytes = (size_t)p.w * p.h * p.c * (p.depth / 8);
    if (q.w != p.w || q.h != p.h || q.c != p.c || q.depth != p.depth || memcmp(q.px, p.px, bytes) != 0)
        abort();
    png_pixels_free(&q);
    free(buf);
    png_pixels_free(&p);
    return 0;
}
