/* module.h - a trainable stage of a model (encoder, quantizer, decoder,
 * transformer) as the stage driver (stage.h) runs it.
 *
 * A module reads the fields it needs from a record, adds or replaces its
 * outputs and leaves every other field alone (DESIGN.md section 2). In
 * training its forward keeps what backward needs; backward reads the
 * gradients of its outputs ("X.grad" fields of the gradient record),
 * accumulates parameter gradients into params.grad and puts the gradients
 * of its inputs into a new record.
 *
 * Randomness comes from the record's "seed" metadata (module_seed), so a
 * backward pass recomputed in another process sees exactly the forward it
 * differentiates.
 */
#ifndef TP_MODULE_H
#define TP_MODULE_H

#include <stdint.h>

#include "params.h"
#include "st.h"

struct module;

struct module_ops {
    const char *arch;  /* the "arch" metadata value this module builds */
    /* Build the parameter table (m->params, allocated) and private state
     * from the architecture metadata; -1 and a message on a bad value. */
    int (*build)(struct module *m, const struct st *meta);
    /* Forward one record in place; train = 1 keeps activations. */
    int (*forward)(struct module *m, struct st *rec, int train);
    /* Backward of the last forward: grad holds "OUT.grad" fields; put
     * "IN.grad" fields into in_grad; accumulate into m->params.grad. */
    int (*backward)(struct module *m, const struct st *grad, struct st *in_grad);
    /* Losses and statistics of the last forward to append to the record's
     * metadata ("loss.NAME" keys are logged by the loss tool); may be NULL. */
    void (*annotate)(struct module *m, struct st *rec);
    void (*destroy)(struct module *m);
};

struct module {
    const struct module_ops *ops;
    struct params params;
    struct st *meta;  /* architecture metadata, saved with the weights */
    void *impl;
};

/* Build a module from weights metadata: find the ops whose arch matches
 * meta's "arch" among the NULL-terminated list. */
int module_build(struct module *m, const struct module_ops *const *ops_list,
                 const struct st *meta);
void module_free(struct module *m);

/* The record's seed ("seed" metadata, 0 if absent) mixed with a salt that
 * differs per module and use, so stages draw independent streams. */
uint64_t module_seed(const struct st *rec, uint64_t salt);

/* Batch size of a field that must exist with the given dtype and rank. */
struct st_tensor *module_input(const struct st *rec, const char *name, int dtype, int ndim);

#endif
