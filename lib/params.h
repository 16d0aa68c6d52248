/* params.h - a model's parameters: one table of upstream state_dict names
 * and shapes drives one contiguous buffer of values and one of gradients
 * (llm.c's layout), their initialisation, loading from and saving to
 * safetensors, and the views the optimizer works on.
 *
 * A model adds its parameters in the order its layers point into memory
 * (each layer's *_point helper lays its own weights out consecutively), so
 * the offset params_add returns for a layer's first weight is where that
 * layer's pointers start.
 */
#ifndef TP_PARAMS_H
#define TP_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "st.h"

enum param_init {
    INIT_ZEROS,
    INIT_ONES,
    INIT_NORMAL,        /* N(0, a^2) */
    INIT_TRUNC_NORMAL,  /* N(0, a^2) cut at +-2a: JAX MaskGIT's truncated normal. (TiTok's
                         * trunc_normal_(std=0.02) cuts at +-2 absolute, 100 std:
                         * that is INIT_NORMAL.) */
    INIT_UNIFORM,       /* U(-a, a) */
    INIT_XAVIER,        /* U(-b, b), b = sqrt(6 / (fan_in + fan_out)) */
    INIT_KAIMING,       /* torch's default for Linear/Conv weights: U(-1/sqrt(fan_in), +) */
};

struct param_spec {
    char name[112];
    int ndim;
    int64_t shape[4];
    size_t offset, numel; /* in floats */
    enum param_init init;
    float a;
};

struct params {
    int n, cap;
    struct param_spec *spec;
    size_t total;   /* floats */
    float *data;    /* [total] values */
    float *grad;    /* [total] gradients (accumulated by backward passes) */
    /* Moves whenever data is written (load, init, an optimizer step): what
     * is made from the values and kept between calls (weights packed for
     * the tiles, linear_tile.h) is remade when it moved. */
    unsigned long version;
};

void params_init_table(struct params *p);
void params_free(struct params *p);
/* Append "prefix" + "name"; returns its offset in floats. */
size_t params_add(struct params *p, const char *prefix, const char *name, int ndim,
                  const int64_t *shape, enum param_init init, float a);
/* Allocate data and grad (zeroed) once the table is complete. */
void params_alloc(struct params *p);
/* Free grad, for frozen parameters that never get gradients. */
void params_drop_grad(struct params *p);
/* Fill data by each spec's init, drawing in table order from one stream. */
void params_fill_init(struct params *p, uint64_t seed);
/* Copy values by name from w; every spec must be present as F32 of the same
 * shape. Tensors of w not in the table are an error unless allow_extra. */
int params_load(struct params *p, const struct st *w, int allow_extra);
/* params_load(p, w, 0) for w, the file at path as st_load mapped it; frees
 * w. Where the file holds the table's tensors one after another in its
 * order from a page on (as params_save writes a megabyte or more), and path
 * is still w's file (its inode), the file's pages are mapped in place of
 * data's, private (a write copies its page): a copy of 21 MB of weights was
 * 30 ms of a transformer's start. */
int params_load_file(struct params *p, struct st *w, const char *path);
/* Views: tensors named as the table, referring to data (or grad). A view
 * of data is written in the table's order (st.put_order: params_load_file
 * maps such a file). */
void params_view(const struct params *p, struct st *out, int grad);
/* Save data (with metadata copied from meta, may be NULL) atomically. */
int params_save(const struct params *p, const char *path, const struct st *meta);
void params_zero_grad(struct params *p);
/* Say data was written (by anything but init and load, which say it). */
static inline void params_changed(struct params *p) { p->version++; }
const struct param_spec *params_find(const struct params *p, const char *name);
/* Number of scalar parameters whose name starts with prefix ("" for all). */
size_t params_count(const struct params *p, const char *prefix);

#endif
