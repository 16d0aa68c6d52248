/* fuzz_imgsrc.c - libFuzzer target: image inputs (lib/imgsrc.c): archives
 * through libarchive (tar, zip, gzip, ... and the WebDataset grouping of
 * their members), IDX image files with an optional IDX labels file, and
 * single PNG files; every usable sample is decoded.
 *
 * Input: byte 0 holds options: bit 0 a labels file follows (2 bytes
 * little-endian length L, then L bytes); bit 1 a member glob ("*"); bit 2
 * decode to 3 channels (else the source's). The rest is the input file.
 * Both are given to imgsrc_open as /proc/self/fd/N of memory files.
 * Samples over 4 Mpixel are read but not decoded (fuzz_png covers that). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "imgsrc.h"

static int memfile(const uint8_t *data, size_t n, char *path, size_t pn)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0) abort();
    if (n && write(fd, data, n) != (ssize_t)n) abort();
    snprintf(path, pn, "/proc/self/fd/%d", fd);
    return fd;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* At most 4 Mpixel (by the IHDR for PNG): the limits themselves allow
 * images whose float copy would pass the fuzzer's 2 GB of RSS. */
static int small(const struct imgsrc_item *it)
{
    if (it->kind == IMGSRC_GRAY8) return (int64_t)it->h * it->w <= (1 << 22);
    return it->n >= 24 && (uint64_t)be32(it->data + 16) * be32(it->data + 20) <= (1 << 22);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int opt = data[0];
    data++, size--;
    char lpath[64], path[64];
    int lfd = -1;
    struct imgsrc_opts o = {0};
    if (opt & 1) {
        if (size < 2) return 0;
        size_t l = data[0] | (size_t)data[1] << 8;
        data += 2, size -= 2;
        if (l > size) return 0;
        lfd = memfile(data, l, lpath, sizeof lpath);
        o.labels_idx = lpath;
        data += l, size -= l;
    }
    if (opt & 2) o.member_glob = "*";
    int fd = memfile(data, size, path, sizeof path);
    struct imgsrc *s = imgsrc_open(path, &o);
    if (s) {
        static const float bg[3] = {1, 1, 1};
        struct imgsrc_item it;
        for (int i = 0; i < 256 && imgsrc_next(s, &it) == 1; i++) {
            struct img im;
            if (!it.bad && small(&it) && imgsrc_decode(&im, &it, opt & 4 ? 3 : 0, bg) == 0)
                img_free(&im);
            imgsrc_item_free(&it);
        }
        imgsrc_close(s);
    }
    close(fd);
    if (lfd >= 0) close(lfd);
    return 0;
}
