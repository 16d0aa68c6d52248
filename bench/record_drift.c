/* record_drift.c - N records shaped like TiTok stage 1's loss input (logits
 * 32x64x1024, target ids), written to stdout as a .tz stream: a step number
 * in the metadata (one byte longer at 10, 100, 1000) and a compressibility
 * that varies record by record, as a training run's do. bench/record_drift.sh
 * drives `loss ce` with it to see whether a reader's resident memory stays
 * flat when record sizes drift.
 *   record_drift [N]   (1200) */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rng.h"
#include "st.h"
#include "tz.h"

int main(int argc, char **argv)
{
    cli_init(argc, argv);
    long n = argc > 1 ? atol(argv[1]) : 1200;
    struct tz_writer *w = tz_writer_open(1, "stdout", TZ_LEVEL_AUTO, 0);
    for (long r = 0; r < n; r++) {
        struct st *s = st_new();
        struct st_tensor *l = st_put_v(s, "logits", ST_F32, 3, 32, 64, 1024);
        struct st_tensor *t = st_put_v(s, "target", ST_I32, 2, 32, 64);
        float *x = l->data;
        int32_t *y = t->data;
        /* mantissa bits kept: 8 to 23, so the compressed size varies */
        int bits = 8 + (int)(rng_hash(1, (uint64_t)r) % 16);
        uint32_t keep = ~((1u << (23 - bits)) - 1);
        for (int64_t i = 0; i < st_numel(l); i++) {
            float v = 4.0f * rng_hash_uniform(2 + (uint64_t)r, (uint64_t)i) - 2.0f;
            uint32_t u;
            memcpy(&u, &v, 4);
            u &= keep;
            memcpy(&x[i], &u, 4);
        }
        for (int64_t i = 0; i < st_numel(t); i++) y[i] = (int32_t)(rng_hash(3 + (uint64_t)r, (uint64_t)i) % 1024);
        st_meta_set_long(s, "step", r);
        if (tz_writer_put(w, s) != 0) die_err();
        st_free(s);
    }
    if (tz_writer_close(w) != 0) die_err();
    return 0;
}
