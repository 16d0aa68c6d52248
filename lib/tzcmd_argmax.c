/* tzcmd_argmax.c - tz argmax: the index of the largest entry along the last
 * dimension of a float field, as int32 ids (e.g. proxy-code logits to the
 * codes a decoder of ids takes). */
#include "tzcmd.h"

#include <string.h>

/* The first largest entry wins, as torch.argmax; NaN is never the largest. */
static void argmax_rows(int32_t *ids, const float *x, int64_t rows, int64_t n)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *v = x + r * n;
        int64_t best = 0;
        for (int64_t j = 1; j < n; j++)
            if (v[j] > v[best] || (v[best] != v[best] && v[j] == v[j])) best = j;
        ids[r] = (int32_t)best;
    }
}

int tzcmd_argmax(int argc, char **argv)
{
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz argmax FIELD[:OUT] [-o FILE] [FILE...]\n"
             "Add OUT (default ids): int32, the index of the largest entry of the F32 field\n"
             "FIELD along its last dimension (the first one on ties); the other fields pass.\n",
             "", NULL);
    char spec[256];
    const char *arg = tzc_parse_simple(&c, argc, argv, "FIELD[:OUT]");
    if (strlen(arg) >= sizeof spec) die_usage("argmax: '%s' is too long", arg);
    strcpy(spec, arg);
    char *out_name = strchr(spec, ':');
    if (out_name) *out_name++ = 0;
    else out_name = "ids";
    if (!spec[0] || !out_name[0]) die_usage("argmax: '%s' is not FIELD[:OUT]", arg);
    tzc_inputs(&c, argc, argv);
    tzc_out_open(&c);
    struct st *rec;
    while (tzc_next(&c, &rec)) {
        const struct st_tensor *x = st_require(rec, spec, ST_F32, -1);
        if (!x || x->ndim < 1 || x->shape[x->ndim - 1] < 1) {
            if (x) tp_err_set("field '%s': needs a last dimension of at least 1", spec);
            tzc_die_rec(&c);
        }
        int64_t n = x->shape[x->ndim - 1], shape[ST_MAX_DIMS];
        int ndim = x->ndim - 1;
        memcpy(shape, x->shape, sizeof shape);
        struct st_tensor *ids = st_put(rec, out_name, ST_I32, ndim, shape);
        x = st_find(rec, spec); /* st_put may move the tensor table */
        argmax_rows(ids->data, x->data, st_numel(ids), n);
        tzc_put(&c, rec);
        st_free(rec);
    }
    tzc_finish(&c);
    tzc_out_close(&c);
    return 0;
}
