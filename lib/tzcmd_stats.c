/* tzcmd_stats.c - `tz stats`: per field, over all records: count, min, max,
 * mean, std (population), NaN and Inf counts.
 *
 * Numerics: each record's field is summarised in double with two passes
 * (mean, then squared deviations from it), and the summaries are combined
 * with Chan et al.'s pairwise update, so the variance does not suffer the
 * cancellation of sum(x^2) - n*mean^2. Min, max, mean and std are over the
 * finite values; NaN and Inf are only counted.
 */
#include "tzcmd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct acc {
    char *name;
    unsigned dtypes; /* bit per dtype seen */
    uint64_t n, nan, inf;
    double min, max, mean, m2;
};

static void acc_tensor(struct acc *a, const struct st_tensor *t)
{
    size_t len = (size_t)st_numel(t);
    uint64_t k = 0, nan = 0, inf = 0;
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < len; i++) {
        double v = tzn_get(t->dtype, t->data, i);
        if (isnan(v)) nan++;
        else if (isinf(v)) inf++;
        else {
            k++;
            sum += v;
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
    }
    a->dtypes |= 1u << t->dtype;
    a->nan += nan;
    a->inf += inf;
    if (k == 0) return;
    double mean = sum / (double)k, m2 = 0;
    for (size_t i = 0; i < len; i++) {
        double v = tzn_get(t->dtype, t->data, i);
        if (isfinite(v)) m2 += (v - mean) * (v - mean);
    }
    if (a->n == 0) {
        a->min = mn;
        a->max = mx;
    }
    if (mn < a->min) a->min = mn;
    if (mx > a->max) a->max = mx;
    double n = (double)(a->n + k), delta = mean - a->mean;
    a->mean += delta * (double)k / n;
    a->m2 += m2 + delta * delta * (double)a->n * (double)k / n;
    a->n += k;
}

static struct acc *acc_find(struct acc **v, int *nv, const char *name)
{
    for (int i = 0; i < *nv; i++)
        if (strcmp((*v)[i].name, name) == 0) return &(*v)[i];
    *v = tp_realloc(*v, (size_t)(*nv + 1) * sizeof **v);
    struct acc *a = &(*v)[(*nv)++];
    memset(a, 0, sizeof *a);
    a->name = tp_strdup(name);
    return a;
}

static void print_num(FILE *out, uint64_t n, double v)
{
    if (n == 0) fprintf(out, "\tnan");
    else fprintf(out, "\t%.12g", v);
}

enum { OPT_FIELD = 0x200 };

int tzcmd_stats(int argc, char **argv)
{
    static const struct option lo[] = {{"field", required_argument, NULL, OPT_FIELD}, {0}};
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz stats [--field F[,F...]] [FILE...]\n"
             "Per field over all records, tab-separated with a header line: field, dtype,\n"
             "count of finite values, min, max, mean, std (population) of those, NaN count,\n"
             "Inf count. --field: only those fields (a record without one is an error).\n",
             "", lo);
    char **only = NULL;
    int nonly = 0;
    for (int o; (o = tzc_getopt(&c, argc, argv)) != -1;)
        if (o == OPT_FIELD) {
            free(only);
            only = tzc_split_list(optarg, &nonly);
        }
    tzc_inputs(&c, argc, argv);
    struct acc *acc = NULL;
    int nacc = 0;
    /* the named fields are reported in the order given, even if empty */
    for (int i = 0; i < nonly; i++) acc_find(&acc, &nacc, only[i]);
    struct st *rec;
    while (tzc_next(&c, &rec)) {
        for (int i = 0; i < nonly; i++) {
            const struct st_tensor *t = st_find(rec, only[i]);
            if (!t) {
                tp_err_set("missing field '%s'", only[i]);
                tzc_die_rec(&c);
            }
            acc_tensor(acc_find(&acc, &nacc, t->name), t);
        }
        for (int i = 0; !only && i < rec->n; i++) acc_tensor(acc_find(&acc, &nacc, rec->t[i].name), &rec->t[i]);
        st_free(rec);
    }
    tzc_finish(&c);
    FILE *out = tzc_text_open(&c);
    fprintf(out, "field\tdtype\tcount\tmin\tmax\tmean\tstd\tnan\tinf\n");
    for (int i = 0; i < nacc; i++) {
        const struct acc *a = &acc[i];
        char dt[128];
        tzc_dtypes_str(a->dtypes, dt, sizeof dt);
        fprintf(out, "%s\t%s\t%llu", a->name, dt, (unsigned long long)a->n);
        print_num(out, a->n, a->min);
        print_num(out, a->n, a->max);
        print_num(out, a->n, a->mean);
        print_num(out, a->n, sqrt(a->m2 / (double)(a->n ? a->n : 1)));
        fprintf(out, "\t%llu\t%llu\n", (unsigned long long)a->nan, (unsigned long long)a->inf);
        free(a->name);
    }
    free(acc);
    free(only);
    tzc_text_close(&c);
    return 0;
}
