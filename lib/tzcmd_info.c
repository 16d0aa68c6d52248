/* tzcmd_info.c - `tz info` (what a stream holds) and `tz check` (is every
 * record valid), one report per input file. */
#include "batch.h"
#include "tzcmd.h"

#include <jansson.h>
#include <string.h>

/* What one field looks like over all records of a file. */
struct field_sum {
    char *name;
    unsigned dtypes; /* bit per dtype seen */
    int rank_min, rank_max;
    int64_t smin[ST_MAX_DIMS], smax[ST_MAX_DIMS];
    uint64_t bytes;
    long records;
};

struct file_sum {
    long records, samples;
    int nf;
    struct field_sum *f;
    int nmeta;
    char **meta; /* metadata keys in order of first appearance */
    long seek_count;
    uint64_t bytes_in, bytes_out;
};

static void sum_field(struct file_sum *s, const struct st_tensor *t)
{
    struct field_sum *f = NULL;
    for (int i = 0; i < s->nf && !f; i++)
        if (strcmp(s->f[i].name, t->name) == 0) f = &s->f[i];
    if (!f) {
        s->f = tp_realloc(s->f, (size_t)(s->nf + 1) * sizeof *s->f);
        f = &s->f[s->nf++];
        memset(f, 0, sizeof *f);
        f->name = tp_strdup(t->name);
        f->rank_min = f->rank_max = t->ndim;
        memcpy(f->smin, t->shape, sizeof f->smin);
        memcpy(f->smax, t->shape, sizeof f->smax);
    }
    f->dtypes |= 1u << t->dtype;
    if (t->ndim < f->rank_min) f->rank_min = t->ndim;
    if (t->ndim > f->rank_max) f->rank_max = t->ndim;
    for (int k = 0; k < t->ndim; k++) {
        if (t->shape[k] < f->smin[k]) f->smin[k] = t->shape[k];
        if (t->shape[k] > f->smax[k]) f->smax[k] = t->shape[k];
    }
    f->bytes += t->nbytes;
    f->records++;
}

static void sum_record(struct file_sum *s, const struct st *rec)
{
    for (int i = 0; i < rec->n; i++) sum_field(s, &rec->t[i]);
    for (int m = 0; m < rec->nmeta; m++) {
        int seen = 0;
        for (int k = 0; k < s->nmeta && !seen; k++) seen = strcmp(s->meta[k], rec->meta_key[m]) == 0;
        if (seen) continue;
        s->meta = tp_realloc(s->meta, (size_t)(s->nmeta + 1) * sizeof *s->meta);
        s->meta[s->nmeta++] = tp_strdup(rec->meta_key[m]);
    }
}

static void file_sum_free(struct file_sum *s)
{
    for (int i = 0; i < s->nf; i++) free(s->f[i].name);
    for (int i = 0; i < s->nmeta; i++) free(s->meta[i]);
    free(s->f);
    free(s->meta);
}

/* Read the current file of c into s, validating keys on the way. */
static void summarize(struct tzc *c, struct file_sum *s)
{
    memset(s, 0, sizeof *s);
    struct st *rec;
    while (tzc_file_rec(c, &rec)) {
        long n = batch_samples(rec);
        if (n < 0) tzc_die_rec(c);
        s->records++;
        s->samples += n;
        sum_record(s, rec);
        st_free(rec);
    }
    s->seek_count = tz_reader_count(c->r);
    s->bytes_in = tz_reader_bytes_in(c->r);
    s->bytes_out = tz_reader_bytes_out(c->r);
}

static void shape_range_str(const struct field_sum *f, char *buf, size_t n)
{
    if (f->rank_min != f->rank_max) {
        snprintf(buf, n, "rank %d..%d", f->rank_min, f->rank_max);
        return;
    }
    size_t k = snprintf(buf, n, "[");
    for (int d = 0; d < f->rank_min && k < n; d++) {
        if (f->smin[d] == f->smax[d]) k += snprintf(buf + k, n - k, "%s%lld", d ? "," : "", (long long)f->smin[d]);
        else k += snprintf(buf + k, n - k, "%s%lld..%lld", d ? "," : "", (long long)f->smin[d], (long long)f->smax[d]);
    }
    if (k < n) snprintf(buf + k, n - k, "]");
}

static void print_text(FILE *out, const char *name, const struct file_sum *s)
{
    fprintf(out, "%s: %ld records, %ld samples\n", name, s->records, s->samples);
    fprintf(out, "  bytes: %llu compressed, %llu decompressed", (unsigned long long)s->bytes_in,
            (unsigned long long)s->bytes_out);
    if (s->bytes_in) fprintf(out, ", ratio %.2f", (double)s->bytes_out / (double)s->bytes_in);
    fprintf(out, "\n  seek table: %s\n", s->seek_count >= 0 ? "yes" : "no");
    if (s->nf) {
        int wn = 5;
        for (int i = 0; i < s->nf; i++)
            if ((int)strlen(s->f[i].name) > wn) wn = (int)strlen(s->f[i].name);
        fprintf(out, "  %-*s  %-6s %-24s %12s %8s\n", wn, "field", "dtype", "shape", "bytes", "records");
        for (int i = 0; i < s->nf; i++) {
            char dt[128], sh[256];
            tzc_dtypes_str(s->f[i].dtypes, dt, sizeof dt);
            shape_range_str(&s->f[i], sh, sizeof sh);
            fprintf(out, "  %-*s  %-6s %-24s %12llu %8ld\n", wn, s->f[i].name, dt, sh,
                    (unsigned long long)s->f[i].bytes, s->f[i].records);
        }
    }
    fprintf(out, "  metadata:");
    for (int i = 0; i < s->nmeta; i++) fprintf(out, "%s %s", i ? "," : "", s->meta[i]);
    fprintf(out, "\n");
}

static json_t *shape_json(const int64_t *shape, int n)
{
    json_t *a = json_array();
    for (int d = 0; d < n; d++) json_array_append_new(a, json_integer(shape[d]));
    return a;
}

static void print_json(FILE *out, const char *name, const struct file_sum *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(name));
    json_object_set_new(o, "records", json_integer(s->records));
    json_object_set_new(o, "samples", json_integer(s->samples));
    json_object_set_new(o, "compressed_bytes", json_integer((json_int_t)s->bytes_in));
    json_object_set_new(o, "decompressed_bytes", json_integer((json_int_t)s->bytes_out));
    json_object_set_new(o, "ratio", s->bytes_in ? json_real((double)s->bytes_out / (double)s->bytes_in)
                                                : json_null());
    json_object_set_new(o, "seek_table", json_boolean(s->seek_count >= 0));
    json_t *fa = json_array();
    for (int i = 0; i < s->nf; i++) {
        const struct field_sum *f = &s->f[i];
        char dt[128];
        tzc_dtypes_str(f->dtypes, dt, sizeof dt);
        json_t *fo = json_object();
        json_object_set_new(fo, "name", json_string(f->name));
        json_object_set_new(fo, "dtype", json_string(dt));
        json_object_set_new(fo, "rank_min", json_integer(f->rank_min));
        json_object_set_new(fo, "rank_max", json_integer(f->rank_max));
        int same = f->rank_min == f->rank_max;
        json_object_set_new(fo, "shape_min", same ? shape_json(f->smin, f->rank_min) : json_null());
        json_object_set_new(fo, "shape_max", same ? shape_json(f->smax, f->rank_min) : json_null());
        json_object_set_new(fo, "bytes", json_integer((json_int_t)f->bytes));
        json_object_set_new(fo, "records", json_integer(f->records));
        json_array_append_new(fa, fo);
    }
    json_object_set_new(o, "fields", fa);
    json_t *ma = json_array();
    for (int i = 0; i < s->nmeta; i++) json_array_append_new(ma, json_string(s->meta[i]));
    json_object_set_new(o, "metadata_keys", ma);
    if (json_dumpf(o, out, JSON_COMPACT) != 0) die("write error");
    fputc('\n', out);
    json_decref(o);
}

enum { OPT_JSON = 0x200 };

int tzcmd_info(int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, NULL, OPT_JSON}, {0}};
    struct tzc c;
    int json = 0;
    tzc_init(&c, argc, argv,
             "usage: tz info [--json] [FILE...]\n"
             "Per file: records, samples, fields (dtype, shape ranges, bytes), compressed and\n"
             "decompressed bytes, whether it has a seek table, metadata keys. --json: one JSON\n"
             "object per file, one per line.\n",
             "", lo);
    for (int o; (o = tzc_getopt(&c, argc, argv)) != -1;)
        if (o == OPT_JSON) json = 1;
    tzc_inputs(&c, argc, argv);
    FILE *out = tzc_text_open(&c);
    while (tzc_file_next(&c)) {
        struct file_sum s;
        summarize(&c, &s);
        if (json) print_json(out, tz_reader_name(c.r), &s);
        else print_text(out, tz_reader_name(c.r), &s);
        file_sum_free(&s);
    }
    tzc_finish(&c);
    tzc_text_close(&c);
    return 0;
}

int tzcmd_check(int argc, char **argv)
{
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz check [FILE...]\n"
             "Read and validate every record of each file (frames, checksums, safetensors\n"
             "headers, sample keys, the seek table). Prints 'FILE: N records OK'; on the first\n"
             "fault prints 'tz: FILE: record N: what' and exits 1.\n",
             "", NULL);
    tzc_parse_simple(&c, argc, argv, NULL);
    tzc_inputs(&c, argc, argv);
    FILE *out = tzc_text_open(&c);
    while (tzc_file_next(&c)) {
        struct file_sum s;
        summarize(&c, &s);
        if (s.seek_count >= 0 && s.seek_count != s.records)
            die("%s: seek table lists %ld records but the stream has %ld", tz_reader_name(c.r),
                s.seek_count, s.records);
        fprintf(out, "%s: %ld records OK\n", tz_reader_name(c.r), s.records);
        file_sum_free(&s);
    }
    tzc_finish(&c);
    tzc_text_close(&c);
    return 0;
}
