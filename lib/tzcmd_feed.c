/* tzcmd_feed.c - tz feed: the data source of a training run.
 *
 * Step s of a run is the batch of samples at positions [s*B, (s+1)*B) of an
 * endless sequence: epoch e is a permutation of all samples drawn from
 * rng_hash(seed, e) (or the file order with --no-shuffle), and epochs follow
 * one another (a batch may straddle two). Each record carries "step", "epoch"
 * and "seed" = rng_hash(seed, step + 2^40) in its metadata, the randomness the
 * stages draw from. The batch of a step depends only on (data, B, seed,
 * step), so a run resumed at step S (--start-step) sees exactly the batches
 * an uninterrupted run would have.
 *
 * --hflip mirrors the "image" of each sample left-right with probability
 * 1/2, drawn from rng_hash(seed, step + 2^41) per sample: data augmentation
 * that a resumed run repeats exactly.
 *
 * The data set is held in memory (decompressed) so any sample is reachable;
 * --max-memory bounds it.
 */
#include "batch.h"
#include "imgops.h"
#include "rng.h"
#include "tzcmd.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* above the common options' codes (tzcmd_common.c) */
enum { O_STEPS = 0x200, O_START, O_SEED, O_NOSHUF, O_RENAME, O_MAXMEM, O_HFLIP };

static const struct option feed_opts[] = {
    {"batch", required_argument, 0, 'b'},
    {"steps", required_argument, 0, O_STEPS},
    {"start-step", required_argument, 0, O_START},
    {"seed", required_argument, 0, O_SEED},
    {"no-shuffle", no_argument, 0, O_NOSHUF},
    {"rename", required_argument, 0, O_RENAME},
    {"max-memory", required_argument, 0, O_MAXMEM},
    {"hflip", no_argument, 0, O_HFLIP},
    {0, 0, 0, 0},
};

#define MAX_RENAMES 16

/* Mirror the image of sample i of a batch when bit 0 of rng_hash(key, i) is set. */
static int flip_images(struct st *batch, uint64_t key)
{
    struct st_tensor *im = st_require(batch, "image", ST_F32, 4);
    if (!im) return -1;
    int64_t B = im->shape[0], C = im->shape[1], H = im->shape[2], W = im->shape[3];
    if (C > INT_MAX || H > INT_MAX || W > INT_MAX) return tp_err_set("field 'image': too large to flip");
    float *x = im->data;
    for (int64_t i = 0; i < B; i++)
        if (rng_hash(key, (uint64_t)i) & 1) img_flip_h(x + i * C * H * W, (int)C, (int)H, (int)W);
    return 0;
}

int tzcmd_feed(int argc, char **argv)
{
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz feed -b B --steps N [--start-step S] [--seed S] [--no-shuffle]\n"
             "               [--hflip] [--rename OLD=NEW]... [-o FILE] DATA.tz...\n"
             "Emit the batches of training steps S..N-1: epochs of seeded permutations of\n"
             "all samples, B per step, with step, epoch and seed in each record's metadata.\n"
             "The batch of a step depends only on the data, B, the seed and the step, so a\n"
             "resumed run (--start-step) sees what an uninterrupted one would.\n"
             "  --hflip             mirror each sample's image left-right with probability 1/2\n"
             "                      (seeded by the seed and the step)\n"
             "  --max-memory BYTES  limit on the decompressed data held (8 GiB)\n",
             "b:", feed_opts);
    long B = 0, steps = -1, start = 0;
    uint64_t seed = 0, maxmem = (uint64_t)8 << 30;
    int shuffle = 1, nren = 0, hflip = 0;
    char *from[MAX_RENAMES], *to[MAX_RENAMES];
    int o;
    while ((o = tzc_getopt(&c, argc, argv)) != -1) {
        switch (o) {
        case 'b': B = cli_long("-b", optarg, 1, INT_MAX); break;
        case O_STEPS: steps = cli_long("--steps", optarg, 0, LONG_MAX); break;
        case O_START: start = cli_long("--start-step", optarg, 0, LONG_MAX); break;
        case O_SEED: seed = (uint64_t)cli_long("--seed", optarg, 0, LONG_MAX); break;
        case O_NOSHUF: shuffle = 0; break;
        case O_HFLIP: hflip = 1; break;
        case O_MAXMEM: maxmem = (uint64_t)cli_long("--max-memory", optarg, 1, LONG_MAX); break;
        case O_RENAME: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || !eq[1]) die_usage("--rename: '%s' is not OLD=NEW", optarg);
            if (nren == MAX_RENAMES) die_usage("--rename: at most %d", MAX_RENAMES);
            from[nren] = tp_strdup(optarg);
            from[nren][eq - optarg] = 0;
            to[nren] = from[nren] + (eq - optarg) + 1;
            nren++;
            break;
        }
        }
    }
    if (B == 0) die_usage("-b B is required");
    if (steps < 0) die_usage("--steps N is required");
    if (start > steps) die_usage("--start-step %ld is past --steps %ld", start, steps);
    tzc_inputs(&c, argc, argv);

    /* the whole data set, and a table of (record, sample) references */
    struct st **recs = NULL;
    int nrec = 0, cap = 0;
    struct batch_ref *all = NULL;
    long nsamp = 0, scap = 0;
    uint64_t bytes = 0;
    struct st *rec;
    while (tzc_next(&c, &rec)) {
        long n = batch_samples(rec);
        if (n < 0) tzc_die_rec(&c);
        if (nrec && batch_compatible(recs[0], rec) != 0) tzc_die_rec(&c);
        for (int i = 0; i < rec->n; i++) bytes += rec->t[i].nbytes;
        if (bytes > maxmem) die("%s: the data set exceeds --max-memory (%llu bytes)", tzc_name(&c),
                                (unsigned long long)maxmem);
        if (nrec == cap) recs = tp_realloc(recs, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *recs);
        if (nrec == INT_MAX) die("%s: too many records", tzc_name(&c));
        recs[nrec] = rec;
        for (long i = 0; i < n; i++) {
            if (nsamp == scap) all = tp_realloc(all, (size_t)(scap = scap ? 2 * scap : 1024) * sizeof *all);
            all[nsamp++] = (struct batch_ref){nrec, i};
        }
        nrec++;
    }
    if (nsamp == 0 && start < steps) die("%s: no samples to feed", tzc_name(&c));
    tzc_out_open(&c);
    int64_t *perm = tp_malloc((size_t)(nsamp ? nsamp : 1) * sizeof *perm);
    struct batch_ref *refs = tp_malloc((size_t)B * sizeof *refs);
    long cur_epoch = -1;
    for (long s = start; s < steps; s++) {
        long epoch0 = 0;
        for (long j = 0; j < B; j++) {
            /* position in the endless sequence; unsigned to survive large steps */
            unsigned long long pos = (unsigned long long)s * (unsigned long long)B + (unsigned long long)j;
            long epoch = (long)(pos / (unsigned long long)nsamp), k = (long)(pos % (unsigned long long)nsamp);
            if (j == 0) epoch0 = epoch;
            if (epoch != cur_epoch) {
                struct rng r;
                rng_seed(&r, rng_hash(seed, (uint64_t)epoch));
                if (shuffle) rng_permutation(&r, perm, nsamp);
                else
                    for (long i = 0; i < nsamp; i++) perm[i] = i;
                cur_epoch = epoch;
            }
            refs[j] = all[perm[k]];
        }
        struct st *out = batch_gather(recs, nrec, refs, B);
        if (!out) die("%s", tp_err());
        tzc_rename_fields(out, from, to, nren);
        if (hflip && flip_images(out, rng_hash(seed, (uint64_t)s + (1ull << 41))) != 0) die("%s", tp_err());
        st_meta_set_long(out, "step", s);
        st_meta_set_long(out, "epoch", epoch0);
        char sv[32];
        snprintf(sv, sizeof sv, "%llu", (unsigned long long)rng_hash(seed, (uint64_t)s + (1ull << 40)));
        st_meta_set(out, "seed", sv);
        tzc_put(&c, out);
        st_free(out);
    }
    tzc_out_close(&c);
    tzc_finish(&c);
    for (int i = 0; i < nrec; i++) st_free(recs[i]);
    for (int i = 0; i < nren; i++) free(from[i]);
    free(recs), free(all), free(perm), free(refs);
    return 0;
}
