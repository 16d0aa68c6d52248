/* vqmod.c - the quantizer module (see vqmod.h). */
#include "vqmod.h"
#include "err.h"
#include "vq.h"

#include <stdlib.h>
#include <string.h>

struct vqm {
    int K, D, l2;
    double beta, weight;
    float *codebook, *dcodebook;
    /* saved by forward */
    int64_t N;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    float *z;
    int32_t *ids;
    double mse;
    int used;
    double perplexity;
    int lookup; /* the last forward was an ids lookup */
};

static int vqm_build(struct module *m, const struct st *meta)
{
    struct vqm *v = tp_calloc(1, sizeof *v);
    m->impl = v;
    long K, D, l2 = 0;
    double beta = 0.25, weight = 1.0;
    if (st_meta_get_long(meta, "codes", &K) || st_meta_get_long(meta, "dim", &D)) return -1;
    if (st_meta_get(meta, "l2") && st_meta_get_long(meta, "l2", &l2)) return -1;
    if (st_meta_get(meta, "beta") && st_meta_get_double(meta, "beta", &beta)) return -1;
    if (st_meta_get(meta, "weight") && st_meta_get_double(meta, "weight", &weight)) return -1;
    if (K < 2 || K > (1 << 24) || D < 1 || D > 65536) return tp_err_set("codes %ld or dim %ld out of range", K, D);
    v->K = (int)K, v->D = (int)D, v->l2 = l2 != 0, v->beta = beta, v->weight = weight;
    int64_t shape[2] = {K, D};
    params_add(&m->params, "", "quantize.embedding.weight", 2, shape, INIT_UNIFORM, 1.0f / (float)K);
    params_alloc(&m->params);
    v->codebook = m->params.data;
    v->dcodebook = m->params.grad;
    return 0;
}

static void vqm_destroy(struct module *m)
{
    struct vqm *v = m->impl;
    if (!v) return;
    free(v->z);
    free(v->ids);
    free(v);
    m->impl = NULL;
}

static int vqm_lookup(struct vqm *v, struct st *rec)
{
    struct st_tensor *ids = st_require(rec, "ids", ST_I32, -1);
    if (!ids) return tp_err_set("neither 'latent' nor 'ids' in the record");
    int64_t shape[ST_MAX_DIMS];
    memcpy(shape, ids->shape, sizeof shape);
    shape[ids->ndim] = v->D;
    struct st_tensor *q = st_put(rec, "quant", ST_F32, ids->ndim + 1, shape);
    v->lookup = 1;
    return vq_lookup(q->data, ids->data, v->codebook, st_numel(ids), v->D, v->K, v->l2);
}

static int vqm_forward(struct module *m, struct st *rec, int train)
{
    (void)train;
    struct vqm *v = m->impl;
    struct st_tensor *lat = st_find(rec, "latent");
    if (!lat) return vqm_lookup(v, rec);
    if (!(lat = st_require(rec, "latent", ST_F32, -1))) return -1;
    if (lat->ndim < 2 || lat->shape[lat->ndim - 1] != v->D)
        return tp_err_set("field 'latent': last dimension must be the code dim %d", v->D);
    int64_t N = st_numel(lat) / v->D;
    if (N != v->N) {
        free(v->z);
        free(v->ids);
        v->z = tp_aligned_alloc((size_t)N * v->D * sizeof(float));
        v->ids = tp_aligned_alloc((size_t)N * sizeof(int32_t));
        v->N = N;
    }
    v->lookup = 0;
    v->ndim = lat->ndim;
    memcpy(v->shape, lat->shape, sizeof v->shape);
    memcpy(v->z, lat->data, (size_t)N * v->D * sizeof(float));
    struct st_tensor *q = st_put(rec, "quant", ST_F32, lat->ndim, lat->shape);
    struct st_tensor *ids = st_put(rec, "ids", ST_I32, v->ndim - 1, v->shape);
    v->mse = vq_forward(q->data, v->ids, v->z, v->codebook, N, v->D, v->K, v->l2);
    memcpy(ids->data, v->ids, (size_t)N * sizeof(int32_t));
    int64_t *counts = tp_calloc((size_t)v->K, sizeof(int64_t));
    vq_count(counts, v->ids, N, v->K);
    struct vq_usage u;
    vq_usage_stats(&u, counts, v->K);
    free(counts);
    v->used = u.used;
    v->perplexity = u.perplexity;
    return 0;
}

static void vqm_annotate(struct module *m, struct st *rec)
{
    struct vqm *v = m->impl;
    if (v->lookup) return;
    st_meta_set_double(rec, "loss.vq_commit", v->mse);
    st_meta_set_double(rec, "loss.vq_codebook", v->mse);
    st_meta_set_long(rec, "vq.used", v->used);
    st_meta_set_double(rec, "vq.perplexity", v->perplexity);
}

static int vqm_backward(struct module *m, const struct st *grad, struct st *in_grad)
{
    struct vqm *v = m->impl;
    if (v->lookup) return tp_err_set("no gradient through an ids lookup");
    struct st_tensor *g = st_require(grad, "quant.grad", ST_F32, v->ndim);
    if (!g) return -1;
    for (int i = 0; i < v->ndim; i++)
        if (g->shape[i] != v->shape[i]) return tp_err_set("field 'quant.grad': shape does not match the forward's");
    struct st_tensor *lg = st_put(in_grad, "latent.grad", ST_F32, v->ndim, v->shape);
    vq_backward(lg->data, v->dcodebook, g->data, v->z, v->codebook, v->ids, v->N, v->D, v->K, v->l2,
                (float)(v->weight * v->beta), (float)v->weight);
    return 0;
}

const struct module_ops vq_module_ops = {
    .arch = "vq",
    .build = vqm_build,
    .forward = vqm_forward,
    .backward = vqm_backward,
    .annotate = vqm_annotate,
    .destroy = vqm_destroy,
};
