/* chain.c - in-process training steps (see chain.h). */
#include "chain.h"
#include "err.h"

void chain_init(struct chain *c, struct module **m, int n, struct optim *opt, struct objective *obj)
{
    TP_ASSERT(n > 0 && n <= CHAIN_MAX);
    c->n = n;
    c->opt = opt;
    c->obj = obj;
    for (int k = 0; k < n; k++) {
        c->m[k] = m[k];
        c->wv[k] = st_new(), c->gv[k] = st_new(), c->state[k] = st_new();
        params_view(&m[k]->params, c->wv[k], 0);
        params_view(&m[k]->params, c->gv[k], 1);
    }
}

void chain_free(struct chain *c)
{
    for (int k = 0; k < c->n; k++) st_free(c->wv[k]), st_free(c->gv[k]), st_free(c->state[k]);
    c->n = 0;
}

int chain_step(struct chain *c, struct st *rec)
{
    for (int k = 0; k < c->n; k++) params_zero_grad(&c->m[k]->params);
    for (int k = 0; k < c->n; k++)
        if (c->m[k]->ops->forward(c->m[k], rec, 1) != 0) return -1;
    struct st *g = st_new();
    int rc = objective_eval(c->obj, rec, g);
    for (int k = c->n - 1; k >= 0 && rc == 0; k--) {
        struct st *ig = st_new();
        rc = c->m[k]->ops->backward(c->m[k], g, ig);
        st_free(g);
        g = ig;
    }
    st_free(g);
    for (int k = 0; k < c->n && rc == 0; k++) {
        struct optim_report rep;
        rc = optim_step(c->opt, c->wv[k], c->gv[k], c->state[k], &rep);
        params_changed(&c->m[k]->params);
    }
    return rc;
}
