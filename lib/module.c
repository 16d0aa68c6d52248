/* module.c - building modules from weights metadata (see module.h). */
#include "module.h"
#include "err.h"
#include "rng.h"

#include <stdlib.h>
#include <string.h>

int module_build(struct module *m, const struct module_ops *const *ops_list, const struct st *meta)
{
    memset(m, 0, sizeof *m);
    const char *arch = st_meta_get(meta, "arch");
    if (!arch) return tp_err_set("no 'arch' in the weights' metadata");
    for (; *ops_list; ops_list++)
        if (strcmp((*ops_list)->arch, arch) == 0) break;
    if (!*ops_list) return tp_err_set("architecture '%s' is not one this tool runs", arch);
    m->ops = *ops_list;
    m->meta = st_new();
    for (int i = 0; i < meta->nmeta; i++) st_meta_set(m->meta, meta->meta_key[i], meta->meta_val[i]);
    st_meta_remove(m->meta, "step");
    params_init_table(&m->params);
    if (m->ops->build(m, m->meta) != 0) {
        module_free(m);
        return -1;
    }
    TP_ASSERT(m->params.data != NULL);
    return 0;
}

void module_free(struct module *m)
{
    if (m->ops && m->ops->destroy) m->ops->destroy(m);
    params_free(&m->params);
    st_free(m->meta);
    memset(m, 0, sizeof *m);
}

uint64_t module_seed(const struct st *rec, uint64_t salt)
{
    const char *s = st_meta_get(rec, "seed");
    uint64_t seed = s ? strtoull(s, NULL, 10) : 0;
    return rng_hash(seed, salt);
}

struct st_tensor *module_input(const struct st *rec, const char *name, int dtype, int ndim)
{
    return st_require(rec, name, (enum st_dtype)dtype, ndim);
}
