/* chain.h - a training step computed in one process: modules in order, the
 * loss, the backward passes in reverse, one optimizer update per module. The
 * same arithmetic as the tools in step and stream mode (llm.c's loop), used
 * to test them and to measure what their process boundaries cost.
 */
#ifndef TP_CHAIN_H
#define TP_CHAIN_H

#include "module.h"
#include "objective.h"
#include "optim.h"

#define CHAIN_MAX 8

struct chain {
    int n;
    struct module *m[CHAIN_MAX];
    struct st *wv[CHAIN_MAX], *gv[CHAIN_MAX], *state[CHAIN_MAX];
    struct optim *opt;
    struct objective *obj;
};

/* Views and empty optimizer states for the n modules. */
void chain_init(struct chain *c, struct module **m, int n, struct optim *opt, struct objective *obj);
void chain_free(struct chain *c);
/* One step on rec (which gets every module's outputs). -1 and tp_err(). */
int chain_step(struct chain *c, struct st *rec);

#endif
