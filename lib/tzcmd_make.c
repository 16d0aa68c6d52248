/* tzcmd_make.c - `tz make`: synthesise records from field specifications,
 * for tests and benchmarks.
 *
 *   --field NAME:DTYPE:SHAPE[=FILL]   SHAPE "2x3x4" (or "2,3,4"; empty for a
 *                                     scalar); FILL one of
 *     V[,V...]   values cycled over the elements of the whole stream
 *                (numbers, nan, inf); default 0
 *     iota       0, 1, 2, ... counted over the whole stream
 *     rand:SEED  floats uniform in [0,1); integers uniform in [0,256)
 *                ([0,128) for I8, {0,1} for BOOL)
 * Element i of record r has the global index r*numel + i, so every record
 * differs and a sample can be recognised after shuffles.
 */
#include "rng.h"
#include "tzcmd.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum fill_kind { FILL_LIST, FILL_IOTA, FILL_RAND };

struct spec {
    char name[256];
    enum st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    enum fill_kind kind;
    double *vals;
    int nvals;
    struct rng rng;
};

static int64_t spec_numel(const struct spec *s)
{
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= s->shape[d];
    return n;
}

static void parse_fill(struct spec *s, const char *fill, const char *arg)
{
    if (strcmp(fill, "iota") == 0) {
        s->kind = FILL_IOTA;
        return;
    }
    if (strncmp(fill, "rand:", 5) == 0) {
        s->kind = FILL_RAND;
        rng_seed(&s->rng, (uint64_t)cli_long("--field rand", fill + 5, 0, LONG_MAX));
        return;
    }
    s->kind = FILL_LIST;
    s->nvals = 1;
    for (const char *p = fill; *p; p++) s->nvals += *p == ',';
    s->vals = tp_malloc((size_t)s->nvals * sizeof *s->vals);
    const char *p = fill;
    for (int i = 0; i < s->nvals; i++) {
        char *end;
        s->vals[i] = strtod(p, &end); /* accepts nan and inf, wanted for tests */
        if (end == p || (*end && *end != ',')) die_usage("--field '%s': bad fill value near '%s'", arg, p);
        p = end + 1;
    }
}

static void parse_spec(struct spec *s, const char *arg)
{
    memset(s, 0, sizeof *s);
    char buf[1024];
    if (strlen(arg) >= sizeof buf) die_usage("--field: specification too long");
    strcpy(buf, arg);
    char *dt = strchr(buf, ':');
    char *shape = dt ? strchr(dt + 1, ':') : NULL;
    if (!dt || !shape || dt == buf || dt - buf >= (long)sizeof s->name)
        die_usage("--field '%s': want NAME:DTYPE:SHAPE[=FILL]", arg);
    *dt++ = 0;
    *shape++ = 0;
    strcpy(s->name, buf);
    int d = st_dtype_parse(dt);
    if (d < 0) die_usage("--field '%s': unknown dtype '%s'", arg, dt);
    s->dtype = d;
    char *fill = strchr(shape, '=');
    if (fill) *fill++ = 0;
    for (char *p = shape; *p;) {
        if (s->ndim == ST_MAX_DIMS) die_usage("--field '%s': more than %d dims", arg, ST_MAX_DIMS);
        char *end = p + strcspn(p, "x,");
        char c = *end;
        *end = 0;
        s->shape[s->ndim++] = cli_long("--field shape", p, 0, INT_MAX);
        if (!c) break;
        p = end + 1;
    }
    /* 2^36 bytes per field and record is far beyond any test or benchmark */
    double bytes = (double)st_dtype_size(s->dtype);
    for (int k = 0; k < s->ndim; k++) bytes *= (double)s->shape[k];
    if (bytes > (double)((int64_t)1 << 36)) die_usage("--field '%s': too large", arg);
    parse_fill(s, fill ? fill : "0", arg);
}

static void fill_tensor(struct spec *s, struct st_tensor *t, long r)
{
    int64_t n = spec_numel(s);
    for (int64_t i = 0; i < n; i++) {
        int64_t g = (int64_t)r * n + i;
        double v;
        if (s->kind == FILL_IOTA) v = (double)g;
        else if (s->kind == FILL_LIST) v = s->vals[g % s->nvals];
        else if (tzn_is_float(s->dtype)) v = rng_uniform(&s->rng);
        else v = (double)rng_below(&s->rng, s->dtype == ST_BOOL ? 2 : s->dtype == ST_I8 ? 128 : 256);
        tzn_set(s->dtype, t->data, (size_t)i, v);
    }
}

enum { OPT_FIELD = 0x200, OPT_RECORDS, OPT_KEYS, OPT_META };
#define MAKE_MAX 64

int tzcmd_make(int argc, char **argv)
{
    static const struct option lo[] = {
        {"field", required_argument, NULL, OPT_FIELD},
        {"records", required_argument, NULL, OPT_RECORDS},
        {"keys", required_argument, NULL, OPT_KEYS},
        {"meta", required_argument, NULL, OPT_META},
        {0},
    };
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz make --field NAME:DTYPE:SHAPE[=FILL]... [--records N] [--keys PREFIX]\n"
             "               [--meta K=V]... [-o FILE]\n"
             "Synthesise N records (default 1). SHAPE: 2x3x4 (empty: a scalar). FILL: V[,V...]\n"
             "cycled over the stream's elements (nan, inf allowed; default 0), 'iota' (0, 1,\n"
             "... over the stream), or 'rand:SEED' (floats in [0,1), integers in [0,256)).\n"
             "--keys: sample keys PREFIX0, PREFIX1, ... (samples = the first field's dim 0).\n",
             "", lo);
    static struct spec specs[MAKE_MAX];
    char *meta[MAKE_MAX];
    int nspec = 0, nmeta = 0;
    long records = 1;
    const char *keys = NULL;
    for (int o; (o = tzc_getopt(&c, argc, argv)) != -1;) {
        if (o == OPT_FIELD) {
            if (nspec == MAKE_MAX) die_usage("make: at most %d fields", MAKE_MAX);
            parse_spec(&specs[nspec++], optarg);
        }
        if (o == OPT_RECORDS) records = cli_long("--records", optarg, 0, LONG_MAX);
        if (o == OPT_KEYS) keys = optarg;
        if (o == OPT_META) {
            if (nmeta == MAKE_MAX) die_usage("make: at most %d --meta", MAKE_MAX);
            if (!strchr(optarg, '=') || optarg[0] == '=') die_usage("make: --meta wants K=V, got '%s'", optarg);
            meta[nmeta++] = optarg;
        }
    }
    if (optind < argc) die_usage("make: unexpected argument '%s'", argv[optind]);
    if (nspec == 0) die_usage("make: no --field given");
    if (keys && specs[0].ndim == 0) die_usage("make: --keys needs a first field of rank >= 1");
    tzc_out_open(&c);
    progress_init(&c.pg, "records", records, c.progress);
    for (long r = 0; r < records; r++) {
        struct st *rec = st_new();
        for (int m = 0; m < nmeta; m++) {
            char *eq = strchr(meta[m], '=');
            *eq = 0; /* split K=V in place, restored below */
            st_meta_set(rec, meta[m], eq + 1);
            *eq = '=';
        }
        if (keys) {
            json_t *a = json_array();
            int64_t b = specs[0].shape[0];
            for (int64_t i = 0; i < b; i++) {
                char k[600];
                snprintf(k, sizeof k, "%s%lld", keys, (long long)(r * b + i));
                json_t *js = json_string(k);
                if (!js) die_usage("make: --keys '%s' is not UTF-8", keys);
                json_array_append_new(a, js);
            }
            char *s = json_dumps(a, JSON_COMPACT);
            st_meta_set(rec, "keys", s);
            free(s);
            json_decref(a);
        }
        for (int i = 0; i < nspec; i++) {
            struct st_tensor *t = st_put(rec, specs[i].name, specs[i].dtype, specs[i].ndim, specs[i].shape);
            fill_tensor(&specs[i], t, r);
        }
        tzc_put(&c, rec);
        st_free(rec);
        progress_step(&c.pg, 1);
    }
    for (int i = 0; i < nspec; i++) free(specs[i].vals);
    progress_end(&c.pg);
    tzc_out_close(&c);
    return 0;
}
