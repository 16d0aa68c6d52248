/* tzcmd_batch.c - subcommands that regroup samples: tz batch (re-batch to N
 * per record) and tz shuffle (seeded shuffle buffer, or an exact shuffle of
 * record order through the seek table).
 *
 * Samples are never copied out of their records until they are written:
 * both keep (record, sample) references and build each output record with
 * batch_gather, so the batch structure is always that of the input records.
 */
#include "batch.h"
#include "rng.h"
#include "tzcmd.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The record just read must have a batch dimension and match the one
 * before it (prev may be NULL). Dies naming the record. */
static void check_record(struct tzc *c, const struct st *prev, const struct st *rec)
{
    int h = batch_has_dim(rec);
    if (h < 0) tzc_die_rec(c);
    if (h == 0) {
        tp_err_set("no batch dimension (no field of rank >= 1 and no keys)");
        tzc_die_rec(c);
    }
    if (prev && batch_compatible(prev, rec) != 0) tzc_die_rec(c);
}

/* ---- tz batch ------------------------------------------------------------ */

struct queue {
    struct st **rec;
    long *n;   /* samples of each */
    int len, cap;
    long off;  /* samples of rec[0] already written */
    long avail;
};

static void queue_emit(struct tzc *c, struct queue *q, long k)
{
    struct batch_ref *refs = tp_malloc((size_t)k * sizeof *refs);
    int r = 0;
    long i = q->off;
    for (long j = 0; j < k; j++) {
        while (i >= q->n[r]) r++, i = 0;
        refs[j] = (struct batch_ref){r, i++};
    }
    struct st *out = batch_gather(q->rec, q->len, refs, k);
    if (!out) die("%s: %s", tzc_name(c), tp_err());
    tzc_put(c, out);
    st_free(out);
    free(refs);
    q->avail -= k;
    /* the records before r are all written, and r too if i reached its end */
    int done = r + (i >= q->n[r]);
    q->off = i >= q->n[r] ? 0 : i;
    for (int d = 0; d < done; d++) st_free(q->rec[d]);
    memmove(q->rec, q->rec + done, (size_t)(q->len - done) * sizeof *q->rec);
    memmove(q->n, q->n + done, (size_t)(q->len - done) * sizeof *q->n);
    q->len -= done;
}

int tzcmd_batch(int argc, char **argv)
{
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz batch N [-o FILE] [FILE...]\n"
             "Re-batch the samples to N per record (the last one shorter), keys included.\n"
             "Per-record fields and metadata come from the record of each batch's first\n"
             "sample.\n",
             "", NULL);
    long N = cli_long("batch", tzc_parse_simple(&c, argc, argv, "N"), 1, LONG_MAX);
    tzc_inputs(&c, argc, argv);
    tzc_out_open(&c);
    struct queue q = {0};
    struct st *rec;
    while (tzc_next(&c, &rec)) {
        check_record(&c, q.len ? q.rec[q.len - 1] : NULL, rec);
        long n = batch_samples(rec);
        if (q.len == q.cap) {
            q.cap = q.cap ? 2 * q.cap : 16;
            q.rec = tp_realloc(q.rec, (size_t)q.cap * sizeof *q.rec);
            q.n = tp_realloc(q.n, (size_t)q.cap * sizeof *q.n);
        }
        q.rec[q.len] = rec;
        q.n[q.len++] = n;
        q.avail += n;
        while (q.avail >= N) queue_emit(&c, &q, N);
    }
    if (q.avail > 0) queue_emit(&c, &q, q.avail);
    for (int i = 0; i < q.len; i++) st_free(q.rec[i]);
    free(q.rec);
    free(q.n);
    tzc_finish(&c);
    tzc_out_close(&c);
    return 0;
}

/* ---- tz shuffle ---------------------------------------------------------- */

/* Records with samples still buffered; a slot is freed when no reference
 * (and no hold) is left. */
struct pool {
    struct st **rec;
    long *live;
    int n, cap;
};

static int pool_add(struct pool *p, struct st *rec, long refs)
{
    int s = 0;
    while (s < p->n && p->rec[s]) s++;
    if (s == p->n) {
        if (p->n == p->cap) {
            p->cap = p->cap ? 2 * p->cap : 64;
            p->rec = tp_realloc(p->rec, (size_t)p->cap * sizeof *p->rec);
            p->live = tp_realloc(p->live, (size_t)p->cap * sizeof *p->live);
        }
        p->n++;
    }
    p->rec[s] = rec;
    p->live[s] = refs;
    return s;
}

static void pool_release(struct pool *p, int s)
{
    if (--p->live[s] == 0) {
        st_free(p->rec[s]);
        p->rec[s] = NULL;
    }
}

struct shuf {
    struct tzc *c;
    struct pool pool;
    struct batch_ref *out; /* samples waiting to be written */
    long nout, bout;
};

static void shuf_flush(struct shuf *s)
{
    if (s->nout == 0) return;
    struct st *rec = batch_gather(s->pool.rec, s->pool.n, s->out, s->nout);
    if (!rec) die("%s: %s", tzc_name(s->c), tp_err());
    tzc_put(s->c, rec);
    st_free(rec);
    for (long j = 0; j < s->nout; j++) pool_release(&s->pool, s->out[j].rec);
    s->nout = 0;
}

static void shuf_emit(struct shuf *s, struct batch_ref r)
{
    s->out[s->nout++] = r;
    if (s->nout == s->bout) shuf_flush(s);
}

static void shuffle_samples(struct tzc *c, uint64_t seed, long M, long bout)
{
    struct rng rng;
    rng_seed(&rng, seed);
    struct shuf s = {.c = c, .bout = bout};
    struct batch_ref *buf = tp_malloc((size_t)M * sizeof *buf);
    long nbuf = 0;
    int prev = -1; /* slot of the previous record, held for the schema check */
    struct st *rec;
    while (tzc_next(c, &rec)) {
        check_record(c, prev >= 0 ? s.pool.rec[prev] : NULL, rec);
        long n = batch_samples(rec);
        if (!s.out) {
            if (s.bout == 0) s.bout = n;
            if (s.bout == 0) die("%s: record 0 has no samples: give --batch N", tzc_name(c));
            s.out = tp_malloc((size_t)s.bout * sizeof *s.out);
        }
        int slot = pool_add(&s.pool, rec, n + 1); /* +1: held until the next record */
        if (prev >= 0) pool_release(&s.pool, prev);
        prev = slot;
        for (long i = 0; i < n; i++) {
            struct batch_ref r = {slot, i};
            if (nbuf < M) {
                buf[nbuf++] = r;
                continue;
            }
            long j = (long)rng_below(&rng, (uint64_t)M);
            shuf_emit(&s, buf[j]);
            buf[j] = r;
        }
    }
    /* drain what is left in a random order */
    int64_t *perm = tp_malloc((size_t)(nbuf ? nbuf : 1) * sizeof *perm);
    rng_permutation(&rng, perm, nbuf);
    for (long k = 0; k < nbuf; k++) shuf_emit(&s, buf[perm[k]]);
    shuf_flush(&s);
    if (prev >= 0) pool_release(&s.pool, prev);
    free(perm);
    free(buf);
    free(s.out);
    free(s.pool.rec);
    free(s.pool.live);
}

/* Exact shuffle of the record order of one seekable file. */
static void shuffle_records(struct tzc *c, uint64_t seed)
{
    if (c->nfiles != 1 || strcmp(c->files[0], "-") == 0)
        die_usage("shuffle: --records needs exactly one input file");
    tzc_file_next(c);
    long n = tz_reader_count(c->r);
    if (n < 0)
        die("%s: --records needs a seek table (write the stream to a file with tz)",
            tz_reader_name(c->r));
    struct rng rng;
    rng_seed(&rng, seed);
    int64_t *perm = tp_malloc((size_t)(n ? n : 1) * sizeof *perm);
    rng_permutation(&rng, perm, n);
    for (long k = 0; k < n; k++) {
        struct st *rec;
        if (tz_reader_seek(c->r, (long)perm[k]) != 0) die_err();
        if (!tzc_file_rec(c, &rec)) die("%s: record %lld: missing", tz_reader_name(c->r), (long long)perm[k]);
        tzc_put(c, rec);
        st_free(rec);
    }
    free(perm);
}

enum { OPT_SEED = 0x200, OPT_BUFFER, OPT_BATCH, OPT_RECORDS };

int tzcmd_shuffle(int argc, char **argv)
{
    static const struct option lo[] = {
        {"seed", required_argument, NULL, OPT_SEED},
        {"buffer", required_argument, NULL, OPT_BUFFER},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"records", no_argument, NULL, OPT_RECORDS},
        {0},
    };
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz shuffle --seed S [--buffer M] [--batch N] [-o FILE] [FILE...]\n"
             "       tz shuffle --seed S --records [-o FILE] FILE\n"
             "Shuffle samples through a buffer of M samples (default 4096; a buffer at least\n"
             "as large as the stream gives a uniform shuffle), written N per record (default:\n"
             "the sample count of the first record). --records shuffles the order of whole\n"
             "records exactly, seeking through the seek table of FILE. Same seed, same order.\n",
             "", lo);
    long seed = -1, M = 4096, bout = 0;
    int records = 0;
    for (int o; (o = tzc_getopt(&c, argc, argv)) != -1;) {
        if (o == OPT_SEED) seed = cli_long("--seed", optarg, 0, LONG_MAX);
        if (o == OPT_BUFFER) M = cli_long("--buffer", optarg, 1, LONG_MAX / 64);
        if (o == OPT_BATCH) bout = cli_long("--batch", optarg, 1, LONG_MAX / 64);
        if (o == OPT_RECORDS) records = 1;
    }
    if (seed < 0) die_usage("shuffle: --seed S is required");
    tzc_inputs(&c, argc, argv);
    tzc_out_open(&c);
    if (records) shuffle_records(&c, (uint64_t)seed);
    else shuffle_samples(&c, (uint64_t)seed, M, bout);
    tzc_finish(&c);
    tzc_out_close(&c);
    return 0;
}
