/* xxh64.h - XXH64 (Yann Collet's xxHash, 64-bit), streaming: the content
 * checksum of a zstd frame is its low 32 bits (RFC 8878 3.1.1), which
 * tz.c writes for the frames it stores without compression. */
#ifndef TP_XXH64_H
#define TP_XXH64_H

#include <stddef.h>
#include <stdint.h>

struct xxh64 {
    uint64_t v[4], total;
    unsigned char buf[32]; /* a stripe's start, nbuf bytes */
    size_t nbuf;
};

void xxh64_init(struct xxh64 *h, uint64_t seed);
void xxh64_update(struct xxh64 *h, const void *data, size_t n);
uint64_t xxh64_digest(const struct xxh64 *h);
uint64_t xxh64(const void *data, size_t n, uint64_t seed);

#endif
