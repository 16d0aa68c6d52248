/* tzcmd_common.c - what the tz subcommands share (see tzcmd.h): option
 * parsing with the common options, reading FILE... (or stdin) as one
 * stream of records, atomic stream and text outputs. */
#include "tzcmd.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { OPT_PROGRESS = 0x100 };

static const struct option common_long[] = {
    {"output", required_argument, NULL, 'o'},
    {"level", required_argument, NULL, 'l'},
    {"threads", required_argument, NULL, 'j'},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"help", no_argument, NULL, 'h'},
};
#define NCOMMON ((int)(sizeof common_long / sizeof common_long[0]))

void tzc_init(struct tzc *c, int argc, char **argv, const char *usage, const char *shortopts,
              const struct option *longopts)
{
    (void)argc;
    memset(c, 0, sizeof *c);
    c->cmd = argv[0];
    c->usage = usage;
    c->level = TZ_LEVEL_AUTO;
    /* leading ':' makes a missing argument distinguishable from an unknown option */
    snprintf(c->shortopts, sizeof c->shortopts, ":ho:l:j:%s", shortopts ? shortopts : "");
    int n = 0;
    for (int i = 0; i < NCOMMON; i++) c->longopts[n++] = common_long[i];
    for (int i = 0; longopts && longopts[i].name; i++) {
        TP_ASSERT(n + 1 < (int)(sizeof c->longopts / sizeof c->longopts[0]));
        c->longopts[n++] = longopts[i];
    }
    memset(&c->longopts[n], 0, sizeof c->longopts[n]);
    optind = 1;
    opterr = 0;
}

int tzc_getopt(struct tzc *c, int argc, char **argv)
{
    for (;;) {
        int o = getopt_long(argc, argv, c->shortopts, c->longopts, NULL);
        switch (o) {
        case 'h':
            fputs(c->usage, stdout);
            exit(0);
        case 'o':
            c->out_path = optarg;
            break;
        case 'l':
            c->level = (int)cli_long("-l", optarg, -7, 22);
            break;
        case 'j':
            tp_threads_set((int)cli_long("-j", optarg, 0, 4096));
            break;
        case OPT_PROGRESS:
            c->progress = 1;
            break;
        case ':':
            die_usage("%s: option '%s' needs an argument", c->cmd, argv[optind - 1]);
        case '?':
            die_usage("%s: unknown option '%s'", c->cmd, argv[optind - 1]);
        default:
            return o;
        }
    }
}

const char *tzc_parse_simple(struct tzc *c, int argc, char **argv, const char *what)
{
    while (tzc_getopt(c, argc, argv) != -1) continue; /* no options of its own */
    if (!what) return NULL;
    if (optind >= argc) die_usage("%s: missing %s", c->cmd, what);
    return argv[optind++];
}

void tzc_dtypes_str(unsigned mask, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int d = 0; d < ST_DTYPE_COUNT; d++)
        if (mask & (1u << d))
            k += snprintf(buf + k, k < n ? n - k : 0, "%s%s", k ? "|" : "", st_dtype_name(d));
}

void tzc_inputs(struct tzc *c, int argc, char **argv)
{
    static char *stdin_only[] = {"-", NULL};
    if (optind < argc) {
        c->files = argv + optind;
        c->nfiles = argc - optind;
    } else {
        c->files = stdin_only;
        c->nfiles = 1;
    }
    progress_init(&c->pg, "records", -1, c->progress);
}

int tzc_file_next(struct tzc *c)
{
    if (c->r) tz_reader_close(c->r);
    c->r = NULL;
    if (c->fi >= c->nfiles) return 0;
    c->r = tz_reader_open_path(c->files[c->fi++]);
    if (!c->r) die_err();
    return 1;
}

int tzc_file_rec(struct tzc *c, struct st **rec)
{
    int rc = tz_reader_next(c->r, rec);
    if (rc < 0) die_err(); /* the message names the file and the record */
    if (rc > 0) progress_step(&c->pg, 1);
    return rc;
}

int tzc_next(struct tzc *c, struct st **rec)
{
    for (;;) {
        if (!c->r && !tzc_file_next(c)) return 0;
        if (tzc_file_rec(c, rec)) return 1;
        tz_reader_close(c->r);
        c->r = NULL;
    }
}

const char *tzc_name(const struct tzc *c) { return c->r ? tz_reader_name(c->r) : "stdin"; }

long tzc_index(const struct tzc *c) { return c->r ? tz_reader_index(c->r) - 1 : -1; }

void tzc_die_rec(const struct tzc *c)
{
    die("%s: record %ld: %s", tzc_name(c), tzc_index(c), tp_err());
}

void tzc_out_open(struct tzc *c)
{
    if (io_out_open(&c->out, c->out_path) != 0) die_err();
    if (isatty(c->out.fd))
        die("%s: refusing to write a binary stream to a terminal (use -o FILE or a pipe)",
            c->cmd);
    /* a seek table only where it can describe the whole file: a regular file
     * we write from its start (not `>>` onto something else) */
    struct stat sb;
    int seekable = fstat(c->out.fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
                   lseek(c->out.fd, 0, SEEK_CUR) == 0;
    c->w = tz_writer_open(c->out.fd, io_out_name(&c->out), c->level, seekable);
}

void tzc_put(struct tzc *c, const struct st *rec)
{
    if (tz_writer_put(c->w, rec) != 0) die_err();
}

void tzc_out_close(struct tzc *c)
{
    struct tz_writer *w = c->w;
    c->w = NULL;
    if (tz_writer_close(w) != 0) die_err();
    if (io_out_commit(&c->out) != 0) die_err();
}

FILE *tzc_text_open(struct tzc *c)
{
    if (!c->out_path) return c->text = stdout;
    if (io_out_open(&c->out, c->out_path) != 0) die_err();
    int fd = dup(c->out.fd);
    c->text = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!c->text) die("%s: %s", c->out_path, strerror(errno));
    return c->text;
}

void tzc_text_close(struct tzc *c)
{
    const char *name = c->out_path ? c->out_path : "stdout";
    if (fflush(c->text) != 0 || ferror(c->text)) die("%s: write error: %s", name, strerror(errno));
    if (c->text != stdout) {
        if (fclose(c->text) != 0) die("%s: write error: %s", name, strerror(errno));
        if (io_out_commit(&c->out) != 0) die_err();
    }
    c->text = NULL;
}

void tzc_finish(struct tzc *c)
{
    if (c->r) tz_reader_close(c->r);
    c->r = NULL;
    progress_end(&c->pg);
}

char **tzc_split_list(const char *s, int *n)
{
    size_t len = strlen(s);
    int k = 1;
    for (const char *p = s; *p; p++) k += *p == ',';
    /* the pointers, then one copy of the string cut at the commas */
    char **v = tp_malloc((size_t)(k + 1) * sizeof *v + len + 1);
    char *buf = (char *)(v + k + 1);
    memcpy(buf, s, len + 1);
    int i = 0;
    for (char *p = buf;;) {
        char *end = strchr(p, ',');
        if (end) *end = 0;
        if (!*p) die_usage("empty name in the list '%s'", s);
        v[i++] = p;
        if (!end) break;
        p = end + 1;
    }
    v[i] = NULL;
    *n = i;
    return v;
}

int tzc_rename_fields(struct st *rec, char *const *from, char *const *to, int n)
{
    int renamed = 0;
    for (int i = 0; i < n; i++) {
        struct st_tensor *t = st_find(rec, from[i]);
        if (!t) continue;
        st_put_copy(rec, to[i], t);
        st_remove(rec, from[i]);
        renamed++;
    }
    return renamed;
}
