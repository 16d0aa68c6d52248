/* fuzz_st.c - libFuzzer target: the strict safetensors parser (weights
 * files and decompressed records), then a write/parse round trip of
 * whatever it accepted, which must succeed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "st.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *blob = malloc(size ? size : 1);
    memcpy(blob, data, size);
    struct st *s;
    if (st_parse(&s, blob, size, 0) != 0) {
        free(blob);
        return 0;
    }
    void *buf;
    size_t n;
    st_serialize(s, &buf, &n);
    struct st *again;
    if (st_parse(&again, buf, n, 0) != 0) abort(); /* we must read what we write */
    if (again->n != s->n) abort();
    st_free(again);
    st_free(s);
    return 0;
}
