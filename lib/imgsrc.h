/* imgsrc.h - where images come from: PNG files, directories, archives, IDX.
 *
 * One input (a path, or "-" for stdin) yields a sequence of samples:
 *   - a PNG file: one sample, key = basename up to its first dot;
 *   - a directory: every regular file below it, walked recursively in
 *     byte-wise sorted order (symlinked files followed, symlinked
 *     directories not), named by the path relative to the directory;
 *   - an archive libarchive reads (tar, tar.gz/bz2/xz/zst, zip, ...):
 *     its regular-file members in archive order;
 *   - an IDX file (MNIST style, u8 [N,H,W], raw or gzip): one sample per
 *     image, key = "BASE/NNNNNN" (BASE: basename up to its first dot),
 *     labels from a labels IDX file (u8 [N]) when given.
 * Directory and archive members are grouped into samples the WebDataset
 * way: the key is the member path up to the first dot of its basename, the
 * extension the rest, lowercased; consecutive members with the same key form
 * one sample; names without such a dot and top-level "__*" names are
 * skipped. A sample needs exactly one "png" member; "cls" holds an ASCII
 * decimal label (surrounding whitespace allowed); other extensions are
 * ignored. An optional label map ("KEY<TAB>LABEL" lines) labels samples by
 * key instead, and samples it does not list are left out.
 *
 * Errors come in two kinds. A bad sample (unreadable PNG, a member over the
 * size limit, a sample without a png, a bad .cls, a repeated extension) is
 * returned as an item with `bad` set, so a caller may skip it; decoding
 * errors come from imgsrc_decode. Anything that stops the input (missing
 * file, corrupt archive, truncated IDX) makes imgsrc_open/imgsrc_next fail.
 * Messages name the input and the member: "data.tar: b.png: not a PNG file".
 */
#ifndef TP_IMGSRC_H
#define TP_IMGSRC_H

#include <stddef.h>
#include <stdint.h>

#include "imgops.h"

#define IMGSRC_MAX_MEMBER ((size_t)64 << 20)      /* bytes per png/cls member */
#define IMGSRC_MAX_LABELS ((size_t)1 << 31)       /* bytes of a labels IDX file */

struct imgsrc;
struct imgsrc_labelmap;

struct imgsrc_opts {
    const char *member_glob;                 /* fnmatch(3) on member paths; NULL: all */
    const char *labels_idx;                  /* labels for an IDX image input */
    const struct imgsrc_labelmap *labelmap;  /* NULL: labels from .cls */
};

enum imgsrc_kind {
    IMGSRC_PNG,     /* data is a PNG file image */
    IMGSRC_GRAY8    /* data is h*w 8-bit gray pixels */
};

struct imgsrc_item {
    char *key;
    char *where;             /* "INPUT: MEMBER" or "INPUT", for messages */
    enum imgsrc_kind kind;
    int h, w;                /* IMGSRC_GRAY8 */
    unsigned char *data;
    size_t n;
    int has_label;
    int32_t label;
    char *bad;               /* non-NULL: why this sample cannot be used */
};

/* Open an input; NULL with a message on failure. */
struct imgsrc *imgsrc_open(const char *path, const struct imgsrc_opts *o);
/* 1: *it filled (free with imgsrc_item_free); 0: end; -1: error. */
int imgsrc_next(struct imgsrc *s, struct imgsrc_item *it);
/* 1 if the input turned out to be an IDX file (it used opts.labels_idx). */
int imgsrc_is_idx(const struct imgsrc *s);
/* Samples left out because the label map does not list them. */
long imgsrc_unmapped(const struct imgsrc *s);
void imgsrc_close(struct imgsrc *s);
void imgsrc_item_free(struct imgsrc_item *it);

/* Decode an item to a float image (png.h conventions; channels 0: the
 * source's own, 1 or 3: converted; bg: background for alpha). */
int imgsrc_decode(struct img *out, const struct imgsrc_item *it, int channels,
                  const float bg[3]);

/* Label map: lines "KEY<TAB>LABEL" (the last tab splits), '#' comments and
 * empty lines ignored, labels int32. NULL with a message on error. */
struct imgsrc_labelmap *imgsrc_labelmap_load(const char *path);
void imgsrc_labelmap_free(struct imgsrc_labelmap *m);

#endif
