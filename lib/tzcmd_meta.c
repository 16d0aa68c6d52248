/* tzcmd_meta.c - `tz meta`: print each record's __metadata__, get one key,
 * or rewrite the stream with keys set or deleted. */
#include "batch.h"
#include "tzcmd.h"

#include <jansson.h>
#include <string.h>

enum { OPT_SET = 0x200, OPT_GET, OPT_DELETE };

#define META_EDITS_MAX 64

int tzcmd_meta(int argc, char **argv)
{
    static const struct option lo[] = {
        {"set", required_argument, NULL, OPT_SET},
        {"get", required_argument, NULL, OPT_GET},
        {"delete", required_argument, NULL, OPT_DELETE},
        {0},
    };
    struct tzc c;
    tzc_init(&c, argc, argv,
             "usage: tz meta [FILE...]                  each record's metadata, a JSON object a line\n"
             "       tz meta --get KEY [FILE...]        KEY's value in each record, one a line\n"
             "       tz meta --set K=V... --delete K... [-o FILE] [FILE...]\n"
             "                                          the stream with metadata changed\n"
             "--set and --delete may be repeated; a record without KEY is an error for --get.\n"
             "A changed 'keys' must still be a JSON array matching the batch.\n",
             "", lo);
    const char *get = NULL;
    char *set[META_EDITS_MAX], *del[META_EDITS_MAX];
    int nset = 0, ndel = 0;
    for (int o; (o = tzc_getopt(&c, argc, argv)) != -1;) {
        if (o == OPT_GET) get = optarg;
        if ((o == OPT_SET || o == OPT_DELETE) && nset + ndel == META_EDITS_MAX)
            die_usage("meta: at most %d --set/--delete", META_EDITS_MAX);
        if (o == OPT_SET) {
            if (!strchr(optarg, '=') || optarg[0] == '=') die_usage("meta: --set wants K=V, got '%s'", optarg);
            set[nset++] = optarg;
        }
        if (o == OPT_DELETE) del[ndel++] = optarg;
    }
    int edit = nset + ndel > 0;
    if (get && edit) die_usage("meta: --get cannot be combined with --set/--delete");
    tzc_inputs(&c, argc, argv);
    FILE *text = NULL;
    if (edit) tzc_out_open(&c);
    else text = tzc_text_open(&c);
    struct st *rec;
    while (tzc_next(&c, &rec)) {
        if (get) {
            const char *v = st_meta_get(rec, get);
            if (!v) {
                tp_err_set("no metadata '%s'", get);
                tzc_die_rec(&c);
            }
            fprintf(text, "%s\n", v);
        } else if (!edit) {
            json_t *o = json_object();
            for (int m = 0; m < rec->nmeta; m++)
                json_object_set_new(o, rec->meta_key[m], json_string(rec->meta_val[m]));
            if (json_dumpf(o, text, JSON_COMPACT) != 0) die("stdout: write error");
            fputc('\n', text);
            json_decref(o);
        } else {
            for (int i = 0; i < nset; i++) {
                char *eq = strchr(set[i], '=');
                *eq = 0; /* K=V split in place, restored below */
                st_meta_set(rec, set[i], eq + 1);
                *eq = '=';
            }
            for (int i = 0; i < ndel; i++) st_meta_remove(rec, del[i]);
            if (batch_samples(rec) < 0) tzc_die_rec(&c);
            tzc_put(&c, rec);
        }
        st_free(rec);
    }
    tzc_finish(&c);
    if (edit) tzc_out_close(&c);
    else tzc_text_close(&c);
    return 0;
}
