/* tzcmd_merge.c - `tz merge A B`: zip the fields of two streams record by
 * record (A's fields, then B's; B wins a name clash unless --no-clobber). */
#include "batch.h"
#include "tzcmd.h"

#include <string.h>

enum { OPT_NO_CLOBBER = 0x200 };

/* Die naming record i of stream r. */
static _Noreturn void die_at(struct tz_reader *r, long i)
{
    die("%s: record %ld: %s", tz_reader_name(r), i, tp_err());
}

static void merge_into(struct st *a, const struct st *b, int clobber, struct tz_reader *rb, long i)
{
    for (int k = 0; k < b->n; k++) {
        if (!clobber && st_find(a, b->t[k].name)) {
            tp_err_set("field '%s' is in both streams (--no-clobber)", b->t[k].name);
            die_at(rb, i);
        }
        st_put_copy(a, b->t[k].name, &b->t[k]);
    }
    for (int m = 0; m < b->nmeta; m++) {
        const char *old = st_meta_get(a, b->meta_key[m]);
        if (!clobber && old && strcmp(old, b->meta_val[m]) != 0) {
            tp_err_set("metadata '%s' differs between the streams (--no-clobber)", b->meta_key[m]);
            die_at(rb, i);
        }
        st_meta_set(a, b->meta_key[m], b->meta_val[m]);
    }
}

int tzcmd_merge(int argc, char **argv)
{
    static const struct option lo[] = {{"no-clobber", no_argument, NULL, OPT_NO_CLOBBER}, {0}};
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz merge [--no-clobber] [-o FILE] A B\n"
             "Record i of the output has the fields and metadata of record i of A and of B\n"
             "(B wins a clash; with --no-clobber a clash is an error). Records must have the\n"
             "same number of samples, and the streams the same number of records. '-' reads\n"
             "one of them from stdin.\n",
             "", lo);
    int clobber = 1;
    for (int o; (o = tzc_getopt(&c, argc, argv)) != -1;)
        if (o == OPT_NO_CLOBBER) clobber = 0;
    if (argc - optind != 2) die_usage("merge: needs two streams A B");
    if (strcmp(argv[optind], "-") == 0 && strcmp(argv[optind + 1], "-") == 0)
        die_usage("merge: only one of A and B can be stdin");
    struct tz_reader *ra = tz_reader_open_path(argv[optind]);
    if (!ra) die_err();
    struct tz_reader *rb = tz_reader_open_path(argv[optind + 1]);
    if (!rb) die_err();
    progress_init(&c.pg, "records", -1, c.progress);
    tzc_out_open(&c);
    for (long i = 0;; i++) {
        struct st *a, *b;
        int ka = tz_reader_next(ra, &a);
        if (ka < 0) die_err();
        int kb = tz_reader_next(rb, &b);
        if (kb < 0) die_err();
        if (ka != kb) {
            struct tz_reader *ended = ka ? rb : ra, *other = ka ? ra : rb;
            die("%s: ends after %ld records, %s has more", tz_reader_name(ended), i,
                tz_reader_name(other));
        }
        if (ka == 0) break;
        long na = batch_samples(a), nb = batch_samples(b);
        if (na < 0) die_at(ra, i);
        if (nb < 0) die_at(rb, i);
        if (na != nb) {
            tp_err_set("%ld samples, %s has %ld", nb, tz_reader_name(ra), na);
            die_at(rb, i);
        }
        merge_into(a, b, clobber, rb, i);
        tzc_put(&c, a);
        st_free(a);
        st_free(b);
        progress_step(&c.pg, 1);
    }
    tz_reader_close(ra);
    tz_reader_close(rb);
    progress_end(&c.pg);
    tzc_out_close(&c);
    return 0;
}
