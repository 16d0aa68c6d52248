/* tzcmd.h - the subcommands of the `tz` tool and what they share.
 *
 * This is tool code (it calls die(), cli.h) kept in lib/ so that tools/tz.c
 * stays a thin dispatcher and each file has one concern:
 *   tzcmd_common.c  options, input iteration over FILE... (or stdin), output
 *   tzcmd_info.c    info, check
 *   tzcmd_select.c  head, slice, cat, pick, drop, rename
 *   tzcmd_batch.c   batch, shuffle
 *   tzcmd_merge.c   merge
 *   tzcmd_meta.c    meta
 *   tzcmd_stats.c   stats
 *   tzcmd_npy.c     npy
 *   tzcmd_make.c    make
 *   tzcmd_feed.c    feed (the data source of training runs)
 *   tzcmd_argmax.c  argmax
 *   tzcmd_num.c     element values of any dtype as double, and back
 * Each tzcmd_X(argc, argv) gets argv[0] == "X" and returns the exit code.
 */
#ifndef TP_TZCMD_H
#define TP_TZCMD_H

#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "io.h"
#include "st.h"
#include "tz.h"

struct tzc {
    const char *cmd;       /* subcommand, for messages */
    const char *usage;     /* printed by -h */
    /* common options */
    const char *out_path;  /* -o; NULL: stdout */
    int level;             /* -l */
    int progress;          /* --progress */
    /* inputs: files[0..nfiles), "-" for stdin */
    char **files;
    int nfiles, fi;
    struct tz_reader *r;
    /* output */
    struct io_out out;
    struct tz_writer *w;
    FILE *text;
    struct progress pg;
    /* getopt tables: the subcommand's merged with the common ones */
    char shortopts[64];
    struct option longopts[32];
};

/* Set up c for subcommand argv[0]; usage is its -h text. */
void tzc_init(struct tzc *c, int argc, char **argv, const char *usage, const char *shortopts,
              const struct option *longopts);
/* getopt_long over the merged tables. Common options (-o -l -j --progress
 * -h) are handled here; anything else is returned; -1 at the end. An
 * unknown option is a usage error. */
int tzc_getopt(struct tzc *c, int argc, char **argv);
/* For a command with only the common options: parse them; then, if what
 * is not NULL, return the next argument (a usage error names what if it is
 * missing). */
const char *tzc_parse_simple(struct tzc *c, int argc, char **argv, const char *what);
/* "F32|I32" for a set of dtypes (bit d for dtype d). */
void tzc_dtypes_str(unsigned mask, char *buf, size_t n);
/* Inputs are argv[optind..argc) ("-" or none: stdin). */
void tzc_inputs(struct tzc *c, int argc, char **argv);

/* The next record of the concatenated inputs: 1, or 0 at the end. Dies
 * with "file: record N: what" on a fault. */
int tzc_next(struct tzc *c, struct st **rec);
/* File by file: open the next input as c->r (1), or 0 when none is left;
 * then its records one by one (1, 0 at the end of this file). */
int tzc_file_next(struct tzc *c);
int tzc_file_rec(struct tzc *c, struct st **rec);
/* The file and index of the record tzc_next returned last. */
const char *tzc_name(const struct tzc *c);
long tzc_index(const struct tzc *c);
/* Die with "file: record N: " + the current lib/ error. */
_Noreturn void tzc_die_rec(const struct tzc *c);

/* Stream output (-o FILE atomically, with a seek table; else stdout). */
void tzc_out_open(struct tzc *c);
void tzc_put(struct tzc *c, const struct st *rec);
void tzc_out_close(struct tzc *c);

/* Text output (-o FILE atomically, else stdout). */
FILE *tzc_text_open(struct tzc *c);
void tzc_text_close(struct tzc *c);

/* Close the input, end progress. */
void tzc_finish(struct tzc *c);

/* Split "a,b,c" into a NULL-terminated malloc'd array (one allocation). */
char **tzc_split_list(const char *s, int *n);
/* Rename the fields from[i] to to[i] that the record has (a field named
 * to[i] is replaced); returns how many were there. */
int tzc_rename_fields(struct st *rec, char *const *from, char *const *to, int n);

int tzcmd_info(int argc, char **argv);
int tzcmd_check(int argc, char **argv);
int tzcmd_head(int argc, char **argv);
int tzcmd_slice(int argc, char **argv);
int tzcmd_cat(int argc, char **argv);
int tzcmd_pick(int argc, char **argv);
int tzcmd_drop(int argc, char **argv);
int tzcmd_rename(int argc, char **argv);
int tzcmd_batch(int argc, char **argv);
int tzcmd_shuffle(int argc, char **argv);
int tzcmd_merge(int argc, char **argv);
int tzcmd_meta(int argc, char **argv);
int tzcmd_stats(int argc, char **argv);
int tzcmd_npy(int argc, char **argv);
int tzcmd_make(int argc, char **argv);
int tzcmd_feed(int argc, char **argv);
int tzcmd_argmax(int argc, char **argv);

/* tzcmd_num.c: element i of a buffer of dtype dt as a double, and back
 * (integers round to nearest and saturate; NaN becomes 0). */
double tzn_get(enum st_dtype dt, const void *p, size_t i);
void tzn_set(enum st_dtype dt, void *p, size_t i, double v);
int tzn_is_float(enum st_dtype dt);

#endif
