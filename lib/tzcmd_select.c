/* tzcmd_select.c - subcommands that pass a selection of records or fields
 * through: tz head, slice, cat, pick, drop, rename. */
#include "batch.h"
#include "tzcmd.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_SAMPLES = 0x200 };

int tzcmd_head(int argc, char **argv)
{
    static const struct option lo[] = {{"samples", required_argument, NULL, OPT_SAMPLES}, {0}};
    struct tzc c;
    long n = 10;
    int samples = 0;
    tzc_init(&c, argc, argv,
             "usage: tz head [-n N | --samples N] [-o FILE] [FILE...]\n"
             "The first N records (default 10), or the first N samples (the last record cut\n"
             "to fit, keys included). Stops reading once it has them.\n",
             "n:", lo);
    for (int o; (o = tzc_getopt(&c, argc, argv)) != -1;) {
        if (o == 'n') n = cli_long("-n", optarg, 0, LONG_MAX);
        if (o == OPT_SAMPLES) {
            n = cli_long("--samples", optarg, 0, LONG_MAX);
            samples = 1;
        }
    }
    tzc_inputs(&c, argc, argv);
    tzc_out_open(&c);
    struct st *rec;
    while (n > 0 && tzc_next(&c, &rec)) {
        long k = samples ? batch_samples(rec) : 1;
        if (k < 0) tzc_die_rec(&c);
        if (k > n) {
            struct st *cut = batch_slice(rec, 0, n);
            if (!cut) tzc_die_rec(&c);
            st_free(rec);
            rec = cut;
            k = n;
        }
        tzc_put(&c, rec);
        st_free(rec);
        n -= k;
    }
    tzc_finish(&c);
    tzc_out_close(&c);
    return 0;
}

/* "A:B", "A:", ":B" or "A" (just record A) into [*a, *b); b = -1: to the end. */
static void parse_range(const char *s, long *a, long *b)
{
    const char *colon = strchr(s, ':');
    char buf[64];
    if (strlen(s) >= sizeof buf) die_usage("slice: bad range '%s'", s);
    if (!colon) {
        *a = cli_long("slice", s, 0, LONG_MAX - 1);
        *b = *a + 1;
        return;
    }
    memcpy(buf, s, (size_t)(colon - s));
    buf[colon - s] = 0;
    *a = buf[0] ? cli_long("slice", buf, 0, LONG_MAX) : 0;
    *b = colon[1] ? cli_long("slice", colon + 1, 0, LONG_MAX) : -1;
    if (*b >= 0 && *b < *a) die_usage("slice: range '%s' ends before it starts", s);
}

int tzcmd_slice(int argc, char **argv)
{
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz slice A:B [-o FILE] [FILE...]\n"
             "Records A (counted from 0) up to B, excluded; 'A:' to the end, ':B' from the\n"
             "start, 'A' just record A. With one input file that has a seek table it seeks to\n"
             "A instead of decompressing the records before it.\n",
             "", NULL);
    long a, b;
    parse_range(tzc_parse_simple(&c, argc, argv, "range A:B"), &a, &b);
    tzc_inputs(&c, argc, argv);
    tzc_out_open(&c);
    long i = 0;
    if (c.nfiles == 1 && strcmp(c.files[0], "-") != 0 && tzc_file_next(&c)) {
        long count = tz_reader_count(c.r);
        if (count >= 0 && a >= count) b = i = a; /* past the end: nothing to read */
        else if (count >= 0 && a > 0) {
            if (tz_reader_seek(c.r, a) != 0) die_err();
            i = a;
        }
    }
    struct st *rec;
    for (; (b < 0 || i < b) && tzc_next(&c, &rec); i++) {
        if (i >= a) tzc_put(&c, rec);
        st_free(rec);
    }
    tzc_finish(&c);
    tzc_out_close(&c);
    return 0;
}

int tzcmd_cat(int argc, char **argv)
{
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz cat [-o FILE] [-l LEVEL] [FILE...]\n"
             "The records of every FILE in order, as one stream (recompressed at LEVEL, with\n"
             "a seek table when the output is a file).\n",
             "", NULL);
    tzc_parse_simple(&c, argc, argv, NULL);
    tzc_inputs(&c, argc, argv);
    tzc_out_open(&c);
    struct st *rec;
    while (tzc_next(&c, &rec)) {
        tzc_put(&c, rec);
        st_free(rec);
    }
    tzc_finish(&c);
    tzc_out_close(&c);
    return 0;
}

/* pick (keep = 1) or drop (keep = 0) the fields listed in argv[optind]. */
static int pick_or_drop(int argc, char **argv, int keep, const char *usage)
{
    struct tzc c;
    tzc_init(&c, argc, argv, usage, "", NULL);
    int nf;
    char **names = tzc_split_list(tzc_parse_simple(&c, argc, argv, "FIELD,..."), &nf);
    tzc_inputs(&c, argc, argv);
    tzc_out_open(&c);
    struct st *rec;
    while (tzc_next(&c, &rec)) {
        struct st *out = rec;
        if (keep) {
            out = st_new();
            for (int m = 0; m < rec->nmeta; m++) st_meta_set(out, rec->meta_key[m], rec->meta_val[m]);
        }
        for (int i = 0; i < nf; i++) {
            const struct st_tensor *t = st_find(rec, names[i]);
            if (!t) {
                tp_err_set("missing field '%s'", names[i]);
                tzc_die_rec(&c);
            }
            if (keep) st_put_copy(out, names[i], t);
            else st_remove(rec, names[i]);
        }
        tzc_put(&c, out);
        if (out != rec) st_free(out);
        st_free(rec);
    }
    free(names);
    tzc_finish(&c);
    tzc_out_close(&c);
    return 0;
}

int tzcmd_pick(int argc, char **argv)
{
    return pick_or_drop(argc, argv, 1,
                        "usage: tz pick FIELD[,FIELD...] [-o FILE] [FILE...]\n"
                        "Keep only the named fields (in that order) and the metadata. A record\n"
                        "without one of them is an error.\n");
}

int tzcmd_drop(int argc, char **argv)
{
    return pick_or_drop(argc, argv, 0,
                        "usage: tz drop FIELD[,FIELD...] [-o FILE] [FILE...]\n"
                        "Remove the named fields; everything else and the metadata pass through.\n"
                        "A record without one of them is an error.\n");
}

int tzcmd_rename(int argc, char **argv)
{
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz rename OLD=NEW[,OLD=NEW...] [-o FILE] [FILE...]\n"
             "Rename fields (a field already named NEW is replaced). A record without\n"
             "one of the OLD fields is an error.\n",
             "", NULL);
    int n;
    char **pairs = tzc_split_list(tzc_parse_simple(&c, argc, argv, "OLD=NEW,..."), &n);
    for (int i = 0; i < n; i++) {
        char *eq = strchr(pairs[i], '=');
        if (!eq || eq == pairs[i] || !eq[1]) {
            char what[256]; /* the list is freed first: a usage error leaves no leak */
            snprintf(what, sizeof what, "%s", pairs[i]);
            free(pairs);
            die_usage("rename: '%s' is not OLD=NEW", what);
        }
    }
    char **from = tp_calloc((size_t)n, sizeof *from), **to = tp_calloc((size_t)n, sizeof *to);
    for (int i = 0; i < n; i++) {
        char *eq = strchr(pairs[i], '=');
        *eq = 0;
        from[i] = pairs[i], to[i] = eq + 1;
    }
    tzc_inputs(&c, argc, argv);
    tzc_out_open(&c);
    struct st *rec;
    while (tzc_next(&c, &rec)) {
        for (int i = 0; i < n; i++)
            if (!st_find(rec, from[i])) {
                tp_err_set("missing field '%s'", from[i]);
                tzc_die_rec(&c);
            }
        tzc_rename_fields(rec, from, to, n);
        tzc_put(&c, rec);
        st_free(rec);
    }
    free(from), free(to), free(pairs);
    tzc_finish(&c);
    tzc_out_close(&c);
    return 0;
}
