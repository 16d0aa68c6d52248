/* block.c - pre-LN ViT and post-LN BERT transformer blocks (see block.h). */
#include "block.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act.h"
#include "chunks.h"
#include "dropout.h"
#include "err.h"
#include "layernorm.h"
#include "linear.h"
#include "linear_tile.h"

/* One walk over the parameters in memory order serves the spec table and
 * the pointers: each entry may fill a spec (tab) and point a field (p). */
struct walk {
    struct param_spec *tab;
    struct block_params *p;
    float *mem;
    int n;
    size_t off;
};

static void put(struct walk *w, const char *name, int64_t d0, int64_t d1,
                enum param_init init, float **field)
{
    size_t numel = (size_t)d0 * (d1 ? (size_t)d1 : 1);
    if (w->tab) {
        struct param_spec *e = &w->tab[w->n];
        TP_ASSERT(w->n < BLOCK_MAX_PARAMS && strlen(name) < sizeof e->name);
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", name);
        e->ndim = d1 ? 2 : 1;
        e->shape[0] = d0;
        e->shape[1] = d1;
        e->offset = w->off;
        e->numel = numel;
        e->init = init;
        e->a = init == INIT_NORMAL ? BLOCK_INIT_STD : 0.0f;
    }
    if (w->p && field) *field = w->mem + w->off;
    w->n++;
    w->off += numel;
}

/* name.weight [d0,d1] N(0, 0.02) and name.bias [d0] zeros (a Linear) */
static void put_linear(struct walk *w, const char *name, int64_t d0, int64_t d1, float **wf,
                       float **bf)
{
    char n[64];
    snprintf(n, sizeof n, "%s.weight", name);
    put(w, n, d0, d1, INIT_NORMAL, wf);
    snprintf(n, sizeof n, "%s.bias", name);
    put(w, n, d0, 0, INIT_ZEROS, bf);
}

/* name.weight [C] ones and name.bias [C] zeros (a LayerNorm) */
static void put_norm(struct walk *w, const char *name, int64_t C, float **wf, float **bf)
{
    char n[64];
    snprintf(n, sizeof n, "%s.weight", name);
    put(w, n, C, 0, INIT_ONES, wf);
    snprintf(n, sizeof n, "%s.bias", name);
    put(w, n, C, 0, INIT_ZEROS, bf);
}

/* field of w->p, or NULL when only the table is wanted */
#define FIELD(x) (w->p ? &w->p->x : NULL)

static void walk_pre(struct walk *w, int64_t C, int64_t F)
{
    put_norm(w, "ln_1", C, FIELD(ln1_w), FIELD(ln1_b));
    put(w, "attn.in_proj_weight", 3 * C, C, INIT_XAVIER, FIELD(attn.in_proj_weight));
    put(w, "attn.in_proj_bias", 3 * C, 0, INIT_ZEROS, FIELD(attn.in_proj_bias));
    put_linear(w, "attn.out_proj", C, C, FIELD(attn.out_proj_weight), FIELD(attn.out_proj_bias));
    put_norm(w, "ln_2", C, FIELD(ln2_w), FIELD(ln2_b));
    put_linear(w, "mlp.c_fc", F, C, FIELD(fc_w), FIELD(fc_b));
    put_linear(w, "mlp.c_proj", C, F, FIELD(proj_w), FIELD(proj_b));
}

static void walk_post(struct walk *w, int64_t C, int64_t F)
{
    /* query, key, value back to back: the packed in_proj (attention.h) */
    static const char *qkv[3] = {"query", "key", "value"};
    char n[64];
    for (int i = 0; i < 6; i++) {
        snprintf(n, sizeof n, "attention.self.%s.%s", qkv[i % 3], i < 3 ? "weight" : "bias");
        float **first = i == 0 ? FIELD(attn.in_proj_weight) : i == 3 ? FIELD(attn.in_proj_bias) : NULL;
        put(w, n, C, i < 3 ? C : 0, i < 3 ? INIT_NORMAL : INIT_ZEROS, first);
    }
    put_linear(w, "attention.output.dense", C, C, FIELD(attn.out_proj_weight),
               FIELD(attn.out_proj_bias));
    put_norm(w, "attention.output.LayerNorm", C, FIELD(ln1_w), FIELD(ln1_b));
    put_linear(w, "intermediate.dense", F, C, FIELD(fc_w), FIELD(fc_b));
    put_linear(w, "output.dense", C, F, FIELD(proj_w), FIELD(proj_b));
    put_norm(w, "output.LayerNorm", C, FIELD(ln2_w), FIELD(ln2_b));
}

#undef FIELD

static struct walk walk(const struct block_cfg *cfg, struct param_spec *tab,
                        struct block_params *p, float *mem)
{
    struct walk w = {tab, p, mem, 0, 0};
    if (cfg->kind == BLOCK_PRE_LN)
        walk_pre(&w, cfg->C, cfg->F);
    else
        walk_post(&w, cfg->C, cfg->F);
    return w;
}

int block_param_specs(struct param_spec *tab, const struct block_cfg *cfg)
{
    return walk(cfg, tab, NULL, NULL).n;
}

size_t block_param_floats(const struct block_cfg *cfg) { return walk(cfg, NULL, NULL, NULL).off; }

size_t block_params_add(struct params *p, const char *prefix, const struct block_cfg *cfg)
{
    struct param_spec tab[BLOCK_MAX_PARAMS];
    int n = block_param_specs(tab, cfg);
    size_t base = p->total;
    for (int i = 0; i < n; i++) {
        size_t off = params_add(p, prefix, tab[i].name, tab[i].ndim, tab[i].shape, tab[i].init,
                                tab[i].a);
        TP_ASSERT(off == base + tab[i].offset);
    }
    return base;
}

void block_params_point(struct block_params *p, float *mem, const struct block_cfg *cfg)
{
    walk(cfg, NULL, p, mem);
}

size_t block_acts_floats(const struct block_cfg *cfg, int B, int T, int train)
{
    size_t BT = (size_t)B * T, C = cfg->C, F = cfg->F;
    int dropout = train && cfg->attn_drop > 0.0f;
    return 4 * BT * C + 4 * BT + 2 * BT * F +
           attention_acts_floats(B, T, cfg->C, cfg->NH, dropout);
}

float *block_acts_point(struct block_acts *a, float *mem, const struct block_cfg *cfg,
                        int B, int T, int train)
{
    size_t BT = (size_t)B * T, C = cfg->C, F = cfg->F;
    int dropout = train && cfg->attn_drop > 0.0f;
    a->ln1 = mem, mem += BT * C;
    a->ln1_mean = mem, mem += BT;
    a->ln1_rstd = mem, mem += BT;
    mem = attention_acts_point(&a->attn, mem, B, T, cfg->C, cfg->NH, dropout);
    a->res1 = mem, mem += BT * C;
    a->ln2 = mem, mem += BT * C;
    a->ln2_mean = mem, mem += BT;
    a->ln2_rstd = mem, mem += BT;
    a->fc = mem, mem += BT * F;
    a->fc_act = mem, mem += BT * F;
    a->res2 = mem, mem += BT * C;
    return mem;
}

/* ---- weights packed for the tiles (linear_tile.h) ---------------------------- */

/* A block's four weight matrices packed for the tiles. */
struct block_packs {
    float *qkv, *out, *fc, *proj;
};

/* floats of one block's packs, for the forward's products or (transposed)
 * the input gradients' (dinp = dout W: linear_tile_pack_t), in the same
 * layout; 0 when the tiles do not take all four */
static size_t packs_floats(const struct block_cfg *cfg, int transposed)
{
    const int C = cfg->C, F = cfg->F;
    const int dims[4][2] = {{C, 3 * C}, {C, C}, {C, F}, {F, C}}; /* each matrix's C, OC */
    size_t sum = 0;
    for (int i = 0; i < 4; i++) {
        const size_t n = transposed ? linear_tile_packed_floats(dims[i][1], dims[i][0])
                                    : linear_tile_packed_floats(dims[i][0], dims[i][1]);
        if (!n) return 0;
        sum += n;
    }
    return sum;
}

size_t block_stack_packed_floats(const struct block_cfg *cfg, int L) { return (size_t)L * packs_floats(cfg, 0); }

/* each block's four matrices in mem: the layout block_stack_pack writes */
static void packs_point(struct block_packs *k, const float *mem, int L, const struct block_cfg *cfg)
{
    const int C = cfg->C, F = cfg->F;
    float *m = (float *)mem;
    for (int l = 0; l < L; l++) {
        k[l].qkv = m, m += (size_t)3 * C * C;
        k[l].out = m, m += (size_t)C * C;
        k[l].fc = m, m += (size_t)F * C;
        k[l].proj = m, m += (size_t)C * F;
    }
}

/* The 4L matrices of L blocks packed by pack (linear_tile_pack, or
 * linear_tile_pack_t for the input gradients), in parallel. */
static void pack_blocks(float *packed, const struct block_params *w, int L, const struct block_cfg *cfg,
                        void (*pack)(float *, const float *, int, int))
{
    const int C = cfg->C, F = cfg->F;
    TP_ASSERT(packs_floats(cfg, pack == linear_tile_pack_t) > 0);
    struct block_packs *k = tp_malloc(L * sizeof *k);
    packs_point(k, packed, L, cfg);
#pragma omp parallel for schedule(dynamic)
    for (int j = 0; j < 4 * L; j++) {
        const struct block_params *p = &w[j / 4];
        const struct block_packs *q = &k[j / 4];
        switch (j % 4) {
        case 0: pack(q->qkv, p->attn.in_proj_weight, C, 3 * C); break;
        case 1: pack(q->out, p->attn.out_proj_weight, C, C); break;
        case 2: pack(q->fc, p->fc_w, C, F); break;
        default: pack(q->proj, p->proj_w, F, C); break;
        }
    }
    free(k);
}

/* The 4L matrices shared among the threads, where sgemm packed the
 * weights again for every chunk. */
void block_stack_pack(float *packed, const struct block_params *w, int L, const struct block_cfg *cfg)
{
    pack_blocks(packed, w, L, cfg, linear_tile_pack);
}

/* A buffer made and freed at every call: tp_aligned_alloc's posix_memalign
 * grew the heap into fresh pages at every call (a ViT block's forward and
 * backward: 71-77 ms against 55-58 without the packs). */
static float *per_call_floats(size_t n, void **block)
{
    return tp_malloc_record_aligned(n * sizeof(float), block);
}

/* One pass over a batch or a chunk of it: the dropout sites (block.h) and
 * their probabilities; b0, the first sequence of a chunk (block.h, Chunks),
 * whose masks are those of its place in the batch; and the weights packed
 * for the tiles, for the forward's products (k) or the backward's input
 * gradients (kt), NULL for sgemm. */
struct pass {
    float attn, hidden;
    uint64_t s_probs, s_attn, s_mlp;
    int b0;
    const struct block_packs *k, *kt;
    int row0, nrows; /* nrows > 0: the rows a caller reads (block_forward_rows) */
};

static struct pass pass_of(const struct block_cfg *cfg, int train, uint64_t seed)
{
    struct pass d = {train ? cfg->attn_drop : 0.0f, train ? cfg->drop : 0.0f,
                     rng_hash(seed, 0), rng_hash(seed, 1), rng_hash(seed, 2), 0, NULL, NULL, 0, 0};
    return d;
}

/* The pass of block_forward_rows: the rows apply to pre-LN blocks without
 * hidden dropout (whose masks are laid over every row); others run whole. */
static struct pass pass_rows(const struct block_cfg *cfg, int train, uint64_t seed, int T, int row0, int nrows)
{
    struct pass d = pass_of(cfg, train, seed);
    TP_ASSERT(nrows == 0 || (row0 >= 0 && nrows >= 1 && row0 + nrows <= T));
    if (nrows < T && cfg->kind == BLOCK_PRE_LN && d.hidden <= 0.0f) d.row0 = row0, d.nrows = nrows;
    return d;
}

/* The gather may run in place: each row moves to an index no larger than
 * its own, in order. */
void block_rows_gather(float *compact, const float *full, int B, int T, int row0, int n, int C)
{
    const size_t len = (size_t)n * C;
    for (int b = 0; b < B; b++)
        memmove(compact + (size_t)b * len, full + ((size_t)b * T + row0) * C, sizeof(float) * len);
}

void block_rows_put(float *full, const float *compact, int B, int T, int row0, int n, int C, int add)
{
    const size_t len = (size_t)n * C;
    for (int b = 0; b < B; b++) {
        float *f = full + ((size_t)b * T + row0) * C;
        if (add)
            add_inplace(f, compact + (size_t)b * len, len);
        else
            memcpy(f, compact + (size_t)b * len, sizeof(float) * len);
    }
}

/* out = inp W^T + bias, W [OC,C]: by tiles from W's pack, else sgemm */
static void lin_forward(float *out, const float *inp, const float *weight, const float *packed,
                        const float *bias, int BT, int C, int OC)
{
    if (packed)
        linear_tile_forward(out, inp, packed, bias, NULL, BT, C, OC, LINEAR_TILE_NONE);
    else
        linear_forward(out, inp, weight, bias, BT, C, OC);
}

/* linear_backward, dinp (+= dout W) by tiles from W's transposed pack where
 * given; the weight gradient stays sgemm's */
static void lin_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *weight, const float *packed_t, int BT, int C, int OC, int fresh)
{
    if (packed_t && dinp) { /* fresh: written, not added (no zeros to clear and read first) */
        linear_tile_forward(dinp, dout, packed_t, NULL, fresh ? NULL : dinp, BT, OC, C, LINEAR_TILE_NONE);
        dinp = NULL;
    } else if (dinp && fresh) {
        memset(dinp, 0, sizeof(float) * (size_t)BT * C);
    }
    linear_backward(dinp, dweight, dbias, dout, inp, weight, BT, C, OC);
}

/* attention_forward_at, its two projections by tiles when packed */
static void attn_forward(float *out, struct attention_acts *a, const float *inp, const struct attention_params *w,
                         const struct block_cfg *cfg, int B, int T, struct pass dr)
{
    const int C = cfg->C;
    if (!dr.k) {
        attention_forward_at(out, a, inp, w, B, T, C, cfg->NH, dr.attn, dr.s_probs, dr.b0);
        return;
    }
    lin_forward(a->qkv, inp, w->in_proj_weight, dr.k->qkv, w->in_proj_bias, B * T, C, 3 * C);
    attention_mix_forward(a, B, T, C, cfg->NH, dr.attn, dr.s_probs, dr.b0);
    lin_forward(out, a->y, w->out_proj_weight, dr.k->out, w->out_proj_bias, B * T, C, C);
}

/* attention_backward_at, its two projections' input gradients by tiles when
 * packed; fresh: dinp holds nothing yet (written, not added to) */
static void attn_backward(float *dinp, struct attention_params *dw, struct attention_acts *d, const float *dout,
                          const float *inp, const struct attention_params *w, const struct attention_acts *a,
                          const struct block_cfg *cfg, int B, int T, struct pass dr, int fresh)
{
    const int C = cfg->C, BT = B * T;
    if (!dr.kt) {
        if (fresh && dinp) memset(dinp, 0, sizeof(float) * (size_t)BT * C);
        attention_backward_at(dinp, dw, d, dout, inp, w, a, B, T, C, cfg->NH, dr.attn, dr.s_probs, dr.b0);
        return;
    }
    lin_backward(d->y, dw ? dw->out_proj_weight : NULL, dw ? dw->out_proj_bias : NULL, dout, a->y,
                 w->out_proj_weight, dr.kt->out, BT, C, C, 1);
    attention_mix_backward(d, a, B, T, C, cfg->NH, dr.attn, dr.s_probs, dr.b0);
    lin_backward(dinp, dw ? dw->in_proj_weight : NULL, dw ? dw->in_proj_bias : NULL, d->qkv, inp,
                 w->in_proj_weight, dr.kt->qkv, BT, C, 3 * C, fresh);
}

/* out[BT,C] = c_proj(gelu(c_fc(inp))), hidden saved in a->fc, a->fc_act. */
static void mlp_forward(float *out, struct block_acts *a, const float *inp,
                        const struct block_params *w, const struct block_cfg *cfg, int BT,
                        const struct block_packs *k)
{
    int C = cfg->C, F = cfg->F;
    size_t n = (size_t)BT * F;
    if (k) { /* the biases in the tiles */
        lin_forward(a->fc, inp, w->fc_w, k->fc, w->fc_b, BT, C, F);
        if (cfg->gelu_tanh)
            gelu_tanh_forward(a->fc_act, a->fc, n);
        else
            gelu_forward(a->fc_act, a->fc, n);
        lin_forward(out, a->fc_act, w->proj_w, k->proj, w->proj_b, BT, F, C);
        return;
    }
    if (cfg->gelu_tanh) {
        linear_forward(a->fc, inp, w->fc_w, w->fc_b, BT, C, F);
        gelu_tanh_forward(a->fc_act, a->fc, n);
    } else { /* the bias in GELU's pass: one pass less over the widest activation */
        linear_forward(a->fc, inp, w->fc_w, NULL, BT, C, F);
        gelu_bias_forward(a->fc_act, a->fc, w->fc_b, BT, F);
    }
    linear_forward(out, a->fc_act, w->proj_w, w->proj_b, BT, F, C);
}

#define G(field) (dw ? dw->field : NULL)

static void mlp_backward(float *dinp, struct block_params *dw, struct block_acts *d,
                         const float *dout, const float *inp, const struct block_params *w,
                         const struct block_acts *a, const struct block_cfg *cfg, int BT,
                         const struct block_packs *kt, int fresh)
{
    int C = cfg->C, F = cfg->F;
    size_t n = (size_t)BT * F;
    lin_backward(d->fc_act, G(proj_w), G(proj_b), dout, a->fc_act, w->proj_w, kt ? kt->proj : NULL, BT, F, C, 1);
    gelu_backward_inplace(d->fc_act, a->fc, n, cfg->gelu_tanh); /* now fc's gradient */
    lin_backward(dinp, G(fc_w), G(fc_b), d->fc_act, inp, w->fc_w, kt ? kt->fc : NULL, BT, C, F, fresh);
}

/* dout through a hidden dropout site ([BT,C], its first element the
 * batch's element first): dout itself when off, else in tmp. */
static const float *drop_back(float *tmp, const float *dout, size_t n, float p, uint64_t seed, uint64_t first)
{
    if (p <= 0.0f) return dout;
    memset(tmp, 0, sizeof(float) * n);
    dropout_backward_at(tmp, dout, n, p, seed, first);
    return tmp;
}

/* y = drop(y) + x: a residual branch joining the stream */
static void drop_add(float *y, const float *x, size_t n, float p, uint64_t seed, uint64_t first)
{
    if (p > 0.0f) dropout_forward_at(y, y, n, p, seed, first);
    add_inplace(y, x, n);
}

static void pre_forward(float *out, struct block_acts *a, const float *x,
                        const struct block_params *w, const struct block_cfg *cfg,
                        int B, int T, struct pass dr)
{
    int BT = B * T, C = cfg->C;
    size_t n = (size_t)BT * C;
    const uint64_t first = (uint64_t)dr.b0 * T * C; /* the chunk's first element */
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, BT, C, cfg->eps);
    attn_forward(a->res1, &a->attn, a->ln1, &w->attn, cfg, B, T, dr);
    drop_add(a->res1, x, n, dr.hidden, dr.s_attn, first);
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, w->ln2_w, w->ln2_b, BT, C, cfg->eps);
    mlp_forward(out, a, a->ln2, w, cfg, BT, dr.k);
    drop_add(out, a->res1, n, dr.hidden, dr.s_mlp, first);
}

static void pre_backward(float *dinp, struct block_params *dw, struct block_acts *d,
                         const float *dout, const float *x, const struct block_params *w,
                         const struct block_acts *a, const struct block_cfg *cfg, int B,
                         int T, struct pass dr)
{
    int BT = B * T, C = cfg->C;
    size_t n = (size_t)BT * C;
    const uint64_t first = (uint64_t)dr.b0 * T * C; /* the chunk's first element */
    const float *dm = drop_back(d->res2, dout, n, dr.hidden, dr.s_mlp, first);
    mlp_backward(d->ln2, dw, d, dm, a->ln2, w, a, cfg, BT, dr.kt, 1);
    memcpy(d->res1, dout, sizeof(float) * n); /* the residual path */
    layernorm_backward(d->res1, G(ln2_w), G(ln2_b), d->ln2, a->res1, w->ln2_w, a->ln2_mean,
                       a->ln2_rstd, BT, C);
    const float *da = drop_back(d->res2, d->res1, n, dr.hidden, dr.s_attn, first);
    attn_backward(d->ln1, dw ? &dw->attn : NULL, &d->attn, da, a->ln1, &w->attn, &a->attn, cfg, B, T, dr, 1);
    layernorm_backward(dinp, G(ln1_w), G(ln1_b), d->ln1, x, w->ln1_w, a->ln1_mean, a->ln1_rstd,
                       BT, C);
    if (dinp) add_inplace(dinp, d->res1, n);
}

/* pre_forward where the caller reads rows [row0, row0+nrows) of each
 * sequence alone (dr.nrows > 0): attention over every row (all of them are
 * keys and values), out_proj, ln_2 and the MLP over those M = B*nrows rows,
 * compact in the first M rows of res1, ln2, fc, fc_act (and of attn.y, the
 * heads' outputs gathered in place); out written at those rows only. With
 * the tiles a row's sums are the whole block's: the same bits there. */
static void pre_forward_rows(float *out, struct block_acts *a, const float *x, const struct block_params *w,
                             const struct block_cfg *cfg, int B, int T, struct pass dr)
{
    const int BT = B * T, C = cfg->C, M = B * dr.nrows;
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, BT, C, cfg->eps);
    lin_forward(a->attn.qkv, a->ln1, w->attn.in_proj_weight, dr.k ? dr.k->qkv : NULL, w->attn.in_proj_bias, BT, C,
                3 * C);
    attention_mix_forward(&a->attn, B, T, C, cfg->NH, dr.attn, dr.s_probs, dr.b0);
    block_rows_gather(a->attn.y, a->attn.y, B, T, dr.row0, dr.nrows, C);
    block_rows_gather(a->res1, x, B, T, dr.row0, dr.nrows, C);
    lin_forward(a->res2, a->attn.y, w->attn.out_proj_weight, dr.k ? dr.k->out : NULL, w->attn.out_proj_bias, M, C, C);
    add_inplace(a->res1, a->res2, (size_t)M * C); /* x + attn, as drop_add's attn + x */
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, w->ln2_w, w->ln2_b, M, C, cfg->eps);
    mlp_forward(a->res2, a, a->ln2, w, cfg, M, dr.k);
    add_inplace(a->res2, a->res1, (size_t)M * C);
    block_rows_put(out, a->res2, B, T, dr.row0, dr.nrows, C, 0);
}

/* Its backward: dout read at the kept rows alone (the others' gradient is
 * zero); the MLP, ln_2 and out_proj over the M rows, attention and its
 * input projection over all. */
static void pre_backward_rows(float *dinp, struct block_params *dw, struct block_acts *d, const float *dout,
                              const float *x, const struct block_params *w, const struct block_acts *a,
                              const struct block_cfg *cfg, int B, int T, struct pass dr)
{
    const int BT = B * T, C = cfg->C, M = B * dr.nrows;
    block_rows_gather(d->res2, dout, B, T, dr.row0, dr.nrows, C);
    mlp_backward(d->ln2, dw, d, d->res2, a->ln2, w, a, cfg, M, dr.kt, 1);
    memcpy(d->res1, d->res2, sizeof(float) * (size_t)M * C); /* the residual path */
    layernorm_backward(d->res1, G(ln2_w), G(ln2_b), d->ln2, a->res1, w->ln2_w, a->ln2_mean, a->ln2_rstd, M, C);
    lin_backward(d->res2, G(attn.out_proj_weight), G(attn.out_proj_bias), d->res1, a->attn.y,
                 w->attn.out_proj_weight, dr.kt ? dr.kt->out : NULL, M, C, C, 1);
    memset(d->attn.y, 0, sizeof(float) * (size_t)BT * C);
    block_rows_put(d->attn.y, d->res2, B, T, dr.row0, dr.nrows, C, 0);
    attention_mix_backward(&d->attn, &a->attn, B, T, C, cfg->NH, dr.attn, dr.s_probs, dr.b0);
    lin_backward(d->ln1, G(attn.in_proj_weight), G(attn.in_proj_bias), d->attn.qkv, a->ln1, w->attn.in_proj_weight,
                 dr.kt ? dr.kt->qkv : NULL, BT, C, 3 * C, 1);
    layernorm_backward(dinp, G(ln1_w), G(ln1_b), d->ln1, x, w->ln1_w, a->ln1_mean, a->ln1_rstd, BT, C);
    if (dinp) block_rows_put(dinp, d->res1, B, T, dr.row0, dr.nrows, C, 1);
}

static void post_forward(float *out, struct block_acts *a, const float *x,
                         const struct block_params *w, const struct block_cfg *cfg,
                         int B, int T, struct pass dr)
{
    int BT = B * T, C = cfg->C;
    size_t n = (size_t)BT * C;
    const uint64_t first = (uint64_t)dr.b0 * T * C; /* the chunk's first element */
    attn_forward(a->res1, &a->attn, x, &w->attn, cfg, B, T, dr);
    drop_add(a->res1, x, n, dr.hidden, dr.s_attn, first);
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->res1, w->ln1_w, w->ln1_b, BT, C, cfg->eps);
    mlp_forward(a->res2, a, a->ln1, w, cfg, BT, dr.k);
    drop_add(a->res2, a->ln1, n, dr.hidden, dr.s_mlp, first);
    layernorm_forward(out, a->ln2_mean, a->ln2_rstd, a->res2, w->ln2_w, w->ln2_b, BT, C, cfg->eps);
}

static void post_backward(float *dinp, struct block_params *dw, struct block_acts *d,
                          const float *dout, const float *x, const struct block_params *w,
                          const struct block_acts *a, const struct block_cfg *cfg, int B,
                          int T, struct pass dr)
{
    int BT = B * T, C = cfg->C;
    size_t n = (size_t)BT * C;
    const uint64_t first = (uint64_t)dr.b0 * T * C; /* the chunk's first element */
    memset(d->res2, 0, sizeof(float) * n);
    layernorm_backward(d->res2, G(ln2_w), G(ln2_b), dout, a->res2, w->ln2_w, a->ln2_mean,
                       a->ln2_rstd, BT, C);
    memcpy(d->ln1, d->res2, sizeof(float) * n); /* the residual path */
    const float *dm = drop_back(d->ln2, d->res2, n, dr.hidden, dr.s_mlp, first);
    mlp_backward(d->ln1, dw, d, dm, a->ln1, w, a, cfg, BT, dr.kt, 0);
    memset(d->res1, 0, sizeof(float) * n);
    layernorm_backward(d->res1, G(ln1_w), G(ln1_b), d->ln1, a->res1, w->ln1_w, a->ln1_mean,
                       a->ln1_rstd, BT, C);
    if (dinp) add_inplace(dinp, d->res1, n);
    const float *da = drop_back(d->res2, d->res1, n, dr.hidden, dr.s_attn, first);
    attn_backward(dinp, dw ? &dw->attn : NULL, &d->attn, da, x, &w->attn, &a->attn, cfg, B, T, dr, 0);
}

/* One pass over a batch (or a chunk of one) on the calling thread's team. */
static void run_forward(float *out, struct block_acts *a, const float *x, const struct block_params *w,
                        const struct block_cfg *cfg, int B, int T, struct pass dr)
{
    if (dr.nrows)
        pre_forward_rows(out, a, x, w, cfg, B, T, dr);
    else if (cfg->kind == BLOCK_PRE_LN)
        pre_forward(out, a, x, w, cfg, B, T, dr);
    else
        post_forward(out, a, x, w, cfg, B, T, dr);
}

static void run_backward(float *dinp, struct block_params *dw, struct block_acts *scratch,
                         const float *dout, const float *inp, const struct block_params *w,
                         const struct block_acts *acts, const struct block_cfg *cfg, int B, int T,
                         struct pass dr)
{
    if (dr.nrows)
        pre_backward_rows(dinp, dw, scratch, dout, inp, w, acts, cfg, B, T, dr);
    else if (cfg->kind == BLOCK_PRE_LN)
        pre_backward(dinp, dw, scratch, dout, inp, w, acts, cfg, B, T, dr);
    else
        post_backward(dinp, dw, scratch, dout, inp, w, acts, cfg, B, T, dr);
}

/* Chunks of about BLOCK_CHUNK_ROWS rows (chunks.h) */
static int chunks_of(int B, int T) { return chunk_count(B, (size_t)T, BLOCK_CHUNK_ROWS); }

/* The activations of sequences b0.. of a batch laid out by block_acts_point:
 * every field holds whole sequences' rows (or their heads' T x T
 * probabilities) in order, so a chunk's are a slice of each. */
static struct block_acts acts_slice(const struct block_acts *a, const struct block_cfg *cfg, int b0, int T)
{
    size_t r = (size_t)b0 * T, C = cfg->C, F = cfg->F;
    struct block_acts v = *a;
    v.ln1 += r * C, v.ln1_mean += r, v.ln1_rstd += r;
    v.attn = attention_acts_slice(&a->attn, b0, T, cfg->C, cfg->NH);
    v.res1 += r * C, v.res2 += r * C;
    v.ln2 += r * C, v.ln2_mean += r, v.ln2_rstd += r;
    v.fc += r * F, v.fc_act += r * F;
    return v;
}

/* The first float of the parameter run p points into, if every field of p
 * is where block_params_point puts it; else NULL. */
static float *params_base(const struct block_params *p, const struct block_cfg *cfg)
{
    float *base = cfg->kind == BLOCK_PRE_LN ? p->ln1_w : p->attn.in_proj_weight;
    if (!base) return NULL;
    struct block_params chk;
    block_params_point(&chk, base, cfg);
    return memcmp(&chk, p, sizeof chk) == 0 ? base : NULL;
}

void block_forward(float *out, struct block_acts *acts, const float *inp,
                   const struct block_params *w, const struct block_cfg *cfg,
                   int B, int T, int train, uint64_t seed)
{
    block_forward_rows(out, acts, inp, w, cfg, B, T, train, seed, 0, 0);
}

void block_backward(float *dinp, struct block_params *dw, struct block_acts *scratch,
                    const float *dout, const float *inp, const struct block_params *w,
                    const struct block_acts *acts, const struct block_cfg *cfg,
                    int B, int T, int train, uint64_t seed)
{
    block_backward_rows(dinp, dw, scratch, dout, inp, w, acts, cfg, B, T, train, seed, 0, 0);
}

void block_forward_rows(float *out, struct block_acts *acts, const float *inp, const struct block_params *w,
                        const struct block_cfg *cfg, int B, int T, int train, uint64_t seed, int row0, int nrows)
{
    TP_ASSERT(out != inp);
    struct pass dr = pass_rows(cfg, train, seed, T, row0, nrows);
    const int chunks = chunks_of(B, T);
    if (chunks < 2) {
        run_forward(out, acts, inp, w, cfg, B, T, dr);
        return;
    }
    const size_t row = (size_t)T * cfg->C, npk = packs_floats(cfg, 0);
    /* the chunks' products by tiles, the weights packed once for all of them
     * (sgemm packed them again for every chunk) */
    void *block = NULL;
    float *pk = npk ? per_call_floats(npk, &block) : NULL;
    struct block_packs k;
    if (pk) {
        block_stack_pack(pk, w, 1, cfg);
        packs_point(&k, pk, 1, cfg);
        dr.k = &k;
    }
#pragma omp parallel for schedule(static) num_threads(chunk_threads(chunks))
    for (int c = 0; c < chunks; c++) {
        int b0, nb;
        chunk_range(B, chunks, c, &b0, &nb);
        struct block_acts v = acts_slice(acts, cfg, b0, T);
        struct pass dc = dr;
        dc.b0 = b0;
        run_forward(out + b0 * row, &v, inp + b0 * row, w, cfg, nb, T, dc);
    }
    free(block);
}

static void backward_pass(float *dinp, struct block_params *dw, struct block_acts *scratch, const float *dout,
                          const float *inp, const struct block_params *w, const struct block_acts *acts,
                          const struct block_cfg *cfg, int B, int T, struct pass dr);

void block_backward_rows(float *dinp, struct block_params *dw, struct block_acts *scratch, const float *dout,
                         const float *inp, const struct block_params *w, const struct block_acts *acts,
                         const struct block_cfg *cfg, int B, int T, int train, uint64_t seed, int row0, int nrows)
{
    const struct pass dr = pass_rows(cfg, train, seed, T, row0, nrows);
    float *masked = NULL;
    if (nrows && nrows < T && !dr.nrows) { /* whole: dout zero past the rows, as promised */
        const size_t len = (size_t)nrows * cfg->C;
        masked = tp_calloc((size_t)B * T * cfg->C, sizeof(float));
        for (int b = 0; b < B; b++) {
            const size_t at = ((size_t)b * T + row0) * cfg->C;
            memcpy(masked + at, dout + at, sizeof(float) * len);
        }
        dout = masked;
    }
    backward_pass(dinp, dw, scratch, dout, inp, w, acts, cfg, B, T, dr);
    free(masked);
}

static void backward_pass(float *dinp, struct block_params *dw, struct block_acts *scratch, const float *dout,
                          const float *inp, const struct block_params *w, const struct block_acts *acts,
                          const struct block_cfg *cfg, int B, int T, struct pass dr)
{
    const int chunks = chunks_of(B, T);
    float *base = dw ? params_base(dw, cfg) : NULL;
    if (chunks < 2 || (dw && !base)) {
        run_backward(dinp, dw, scratch, dout, inp, w, acts, cfg, B, T, dr);
        return;
    }
    /* each part sums its chunks' parameter gradients in order into its own
     * run, and the parts are added in order: the same bits at any thread
     * count */
    const int parts = BLOCK_DW_PARTS < chunks ? BLOCK_DW_PARTS : chunks;
    const int seqs = (B + chunks - 1) / chunks;
    const size_t row = (size_t)T * cfg->C, np = block_param_floats(cfg);
    const size_t nscratch = block_acts_floats(cfg, seqs, T, 0), npk = packs_floats(cfg, 1);
    float *partial = base ? tp_calloc((size_t)parts * np, sizeof(float)) : NULL;
    /* the input gradients by tiles, as the forward's products */
    void *block = NULL;
    float *pk = npk ? per_call_floats(npk, &block) : NULL;
    struct block_packs kt;
    if (pk) {
        pack_blocks(pk, w, 1, cfg, linear_tile_pack_t);
        packs_point(&kt, pk, 1, cfg);
        dr.kt = &kt;
    }
#pragma omp parallel num_threads(chunk_threads(parts))
    {
        void *sm_block;
        float *sm = per_call_floats(nscratch, &sm_block);
#pragma omp for schedule(static)
        for (int p = 0; p < parts; p++) {
            struct block_params pdw;
            if (partial) block_params_point(&pdw, partial + (size_t)p * np, cfg);
            for (int c = chunks * p / parts; c < chunks * (p + 1) / parts; c++) {
                int b0, nb;
                chunk_range(B, chunks, c, &b0, &nb);
                struct block_acts s, v = acts_slice(acts, cfg, b0, T);
                block_acts_point(&s, sm, cfg, nb, T, 0);
                struct pass dc = dr;
                dc.b0 = b0;
                run_backward(dinp ? dinp + b0 * row : NULL, partial ? &pdw : NULL, &s, dout + b0 * row,
                             inp + b0 * row, w, &v, cfg, nb, T, dc);
            }
        }
        free(sm_block);
    }
    (void)scratch; /* the chunks keep their own */
    free(block);
    if (partial) {
        chunk_parts_add(base, partial, parts, np, np);
        free(partial);
    }
}

/* ---- inference by tiles (linear_tile.h) ------------------------------------------------ */

const float *block_stack_cached(struct linear_tile_cache *c, const struct block_params *w, int L,
                                const struct block_cfg *cfg, unsigned long version)
{
    const size_t n = block_stack_packed_floats(cfg, L);
    if (!n) return NULL;
    int stale;
    float *p = linear_tile_cache_get(c, n, version, &stale);
    if (stale) block_stack_pack(p, w, L, cfg);
    return p;
}

/* dst [n,C] = the rows `rows` of src [.,C] */
static void gather_rows(float *dst, const float *src, const int *rows, int n, int C)
{
    for (int i = 0; i < n; i++) memcpy(dst + (size_t)i * C, src + (size_t)rows[i] * C, sizeof(float) * C);
}

/* qkv [n,3C] of the rows x [n,C] by tiles (pre-LN: of their norm, into
 * a->ln1) */
static void qkv_forward(float *qkv, struct block_acts *a, const float *x, const struct block_params *w,
                        const struct block_packs *k, const struct block_cfg *cfg, int n)
{
    const int C = cfg->C, pre = cfg->kind == BLOCK_PRE_LN;
    if (pre) layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, n, C, cfg->eps);
    linear_tile_forward(qkv, pre ? a->ln1 : x, k->qkv, w->attn.in_proj_bias, NULL, n, C, 3 * C, LINEAR_TILE_NONE);
}

/* The first block's qkv of the distinct rows (block_alike): [nd,3C], in
 * pieces of about BLOCK_CHUNK_ROWS rows across the threads; *block to
 * free (a per-call buffer: a sampling run makes one a record). */
static float *alike_qkv(const struct block_alike *al, const float *inp, const struct block_params *w,
                        const struct block_packs *k, const struct block_cfg *cfg, void **block)
{
    const int C = cfg->C, nd = al->nd, pieces = chunk_count(nd, 1, BLOCK_CHUNK_ROWS);
    float *table = per_call_floats((size_t)nd * 3 * C, block);
#pragma omp parallel num_threads(chunk_threads(pieces))
    {
        const int most = (nd + pieces - 1) / pieces;
        void *mem_block;
        float *x = per_call_floats(block_acts_floats(cfg, 1, most, 0) + (size_t)most * C, &mem_block);
        struct block_acts a;
        block_acts_point(&a, x + (size_t)most * C, cfg, 1, most, 0);
#pragma omp for schedule(static)
        for (int p = 0; p < pieces; p++) {
            int d0, n;
            chunk_range(nd, pieces, p, &d0, &n);
            gather_rows(x, inp, al->first + d0, n, C);
            qkv_forward(table + (size_t)d0 * 3 * C, &a, x, w, k, cfg, n);
        }
        free(mem_block);
    }
    return table;
}

/* pre_forward and post_forward without dropout, by tiles: GELU in c_fc's
 * tiles, each residual in the tiles of the product it joins. rows (NULL:
 * all BT): the nr rows a tail reads (block_tail.keep). Attention runs over
 * every row, since all of them are keys and values; out_proj, the norms
 * and the MLP over those rows alone, gathered into a->fc and a->ln2 (which
 * the tiles leave unused): out [nr,C]. Row by row the same sums either
 * way, so the same bits. qkv_of (NULL: made here): each row's qkv as a
 * row of qkv_table (block_alike). */
static void tiled_forward(float *out, struct block_acts *a, const float *x, const struct block_params *w,
                          const struct block_packs *k, const struct block_cfg *cfg, int B, int T,
                          const int *rows, int nr, const float *qkv_table, const int *qkv_of)
{
    const int BT = B * T, C = cfg->C, F = cfg->F;
    const enum linear_tile_act g = cfg->gelu_tanh ? LINEAR_TILE_GELU_TANH : LINEAR_TILE_GELU;
    const int pre = cfg->kind == BLOCK_PRE_LN;
    if (qkv_of)
        gather_rows(a->attn.qkv, qkv_table, qkv_of, BT, 3 * C);
    else
        qkv_forward(a->attn.qkv, a, x, w, k, cfg, BT);
    attention_mix_forward(&a->attn, B, T, C, cfg->NH, 0.0f, 0, 0);
    const float *y = a->attn.y, *resid = x;
    if (rows) {
        gather_rows(a->fc, a->attn.y, rows, nr, C);
        gather_rows(a->ln2, x, rows, nr, C);
        y = a->fc, resid = a->ln2;
    } else {
        nr = BT;
    }
    linear_tile_forward(a->res1, y, k->out, w->attn.out_proj_bias, resid, nr, C, C, LINEAR_TILE_NONE);
    if (pre) {
        layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, w->ln2_w, w->ln2_b, nr, C, cfg->eps);
        linear_tile_forward(a->fc_act, a->ln2, k->fc, w->fc_b, NULL, nr, C, F, g);
        linear_tile_forward(out, a->fc_act, k->proj, w->proj_b, a->res1, nr, F, C, LINEAR_TILE_NONE);
    } else {
        layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->res1, w->ln1_w, w->ln1_b, nr, C, cfg->eps);
        linear_tile_forward(a->fc_act, a->ln1, k->fc, w->fc_b, NULL, nr, C, F, g);
        linear_tile_forward(a->res2, a->fc_act, k->proj, w->proj_b, a->ln1, nr, F, C, LINEAR_TILE_NONE);
        layernorm_forward(out, a->ln2_mean, a->ln2_rstd, a->res2, w->ln2_w, w->ln2_b, nr, C, cfg->eps);
    }
}

/* Sequences [b0, b0 + nb) of a call from block l on, their input rows x
 * (block l's): a chunk from block 0, or part of one handed over. */
struct piece {
    const float *x;
    int l, b0, nb;
};

/* The work of a block_stack_infer call among its threads. Each takes whole
 * chunks (next) while there are any; one left without any waits, and the
 * next thread to reach a block boundary hands it the second half of its
 * chunk's sequences (at a unit boundary): the host's noise on one core then
 * costs the other part of a block, not the rest of a chunk. Only where the
 * tiles run: their sums for a row do not depend on the rows beside it, so
 * the pieces give the same bits. */
struct share {
    int next;    /* the next chunk (atomic) */
    int waiting; /* threads without work (atomic: read without the lock) */
    int busy;    /* threads with work; 0: the call is done */
    int offered; /* offer holds a piece */
    struct piece offer;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* what every thread of a call reads */
struct stack_call {
    float *out;
    const float *inp;
    const struct block_params *w;
    const struct block_packs *packs;
    int L, T, unit;
    const struct block_cfg *cfg;
    const struct block_tail *tail;
    const float *qkv_table;
    const struct block_alike *alike;
    struct share *sh;
};

/* a thread's memory for its pieces: activations, two hidden states, the
 * tail's scratch and the kept rows */
struct stack_mem {
    float *acts, *hid[2], *scratch;
    int *rows;
};

static int split_always; /* block_stack_split_always */

void block_stack_split_always(int on) { split_always = on; }

/* Before block l of p (input rows x): offer the second half of p's units
 * to a waiting thread, p keeping the first, where there is one, no offer
 * yet and two units or more. */
static void hand_over(struct share *sh, struct piece *p, const float *x, int l, int unit, size_t row)
{
    const int nu = p->nb / unit;
    if (nu < 2 || !(split_always || __atomic_load_n(&sh->waiting, __ATOMIC_RELAXED))) return;
    pthread_mutex_lock(&sh->mu);
    if ((sh->waiting > 0 || split_always) && !sh->offered) {
        const int keep = nu / 2 * unit;
        sh->offer = (struct piece){x + (size_t)keep * row, l, p->b0 + keep, p->nb - keep};
        sh->offered = 1;
        p->nb = keep;
        pthread_cond_signal(&sh->cv);
    }
    pthread_mutex_unlock(&sh->mu);
}

static void run_piece(const struct stack_call *k, struct stack_mem *m, struct piece p)
{
    const struct block_cfg *cfg = k->cfg;
    const int T = k->T, L = k->L;
    const size_t row = (size_t)T * cfg->C;
    const uint8_t *keep = k->tail ? k->tail->keep : NULL;
    const struct pass off = pass_of(cfg, 0, 0);
    const float *x = p.x;
    for (int l = p.l; l < L; l++) {
        /* sgemm's rounding depends on the row count: its chunks stay whole */
        if (k->packs) hand_over(k->sh, &p, x, l, k->unit, row);
        struct block_acts a;
        block_acts_point(&a, m->acts, cfg, p.nb, T, 0);
        /* the rows the tail reads, unless it reads them all */
        int nk = p.nb * T;
        const int *kept = NULL;
        if (keep && l == L - 1) {
            nk = 0;
            for (int i = 0; i < p.nb * T; i++)
                if (keep[(size_t)p.b0 * T + i]) m->rows[nk++] = i;
            kept = nk < p.nb * T ? m->rows : NULL;
        }
        float *y = l == L - 1 && !k->tail ? k->out + p.b0 * row : m->hid[l % 2];
        const int *r = l == L - 1 ? kept : NULL;
        if (k->packs) {
            const int *qkv_of = l == 0 && k->qkv_table ? k->alike->of + (size_t)p.b0 * T : NULL;
            if (!r || nk)
                tiled_forward(y, &a, x, &k->w[l], &k->packs[l], cfg, p.nb, T, r, nk, k->qkv_table, qkv_of);
        } else {
            run_forward(y, &a, x, &k->w[l], cfg, p.nb, T, off);
            if (r) /* all rows made: the kept ones gathered */
                gather_rows(a.res2, y, r, nk, cfg->C), y = a.res2;
        }
        x = y;
        if (l == L - 1 && k->tail) k->tail->fn(k->tail->ctx, x, p.b0, p.nb, kept, nk, m->scratch);
    }
}

/* A thread of the call: whole chunks, then pieces handed over, until no
 * thread has work. */
static void stack_thread(const struct stack_call *k, struct stack_mem *m, int units, int chunks)
{
    struct share *sh = k->sh;
    const size_t row = (size_t)k->T * k->cfg->C;
    for (int c; (c = __atomic_fetch_add(&sh->next, 1, __ATOMIC_RELAXED)) < chunks;) {
        int u0, nu;
        chunk_range(units, chunks, c, &u0, &nu);
        const int b0 = u0 * k->unit;
        run_piece(k, m, (struct piece){k->inp + b0 * row, 0, b0, nu * k->unit});
    }
    pthread_mutex_lock(&sh->mu);
    for (;;) {
        if (sh->offered) {
            /* its rows copied under the lock: their owner may write them
             * once it takes a piece of its own, which needs the lock. A
             * piece of this thread's own lies further on in the same
             * buffer (block l's input), hence memmove */
            struct piece p = sh->offer;
            float *x = m->hid[(p.l + 1) % 2];
            memmove(x, p.x, sizeof(float) * p.nb * row);
            p.x = x;
            sh->offered = 0;
            pthread_mutex_unlock(&sh->mu);
            run_piece(k, m, p);
            pthread_mutex_lock(&sh->mu);
            continue;
        }
        if (--sh->busy == 0) break;
        __atomic_add_fetch(&sh->waiting, 1, __ATOMIC_RELAXED);
        while (!sh->offered && sh->busy > 0) pthread_cond_wait(&sh->cv, &sh->mu);
        __atomic_sub_fetch(&sh->waiting, 1, __ATOMIC_RELAXED);
        if (sh->busy == 0) break;
        sh->busy++;
    }
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
}

void block_stack_infer(float *out, const float *inp, const struct block_params *w, const float *packed, int L,
                       const struct block_cfg *cfg, int B, int T, const struct block_alike *alike,
                       const struct block_tail *tail)
{
    const int unit = tail ? tail->unit : 1;
    TP_ASSERT(L >= 1 && B >= 1 && unit >= 1 && B % unit == 0 && (tail || out) && out != inp);
    const int units = B / unit, chunks = chunk_count(units, (size_t)unit * T, BLOCK_CHUNK_ROWS);
    const int seqs = (units + chunks - 1) / chunks * unit;
    const size_t row = (size_t)T * cfg->C, nacts = block_acts_floats(cfg, seqs, T, 0);
    const size_t ntail = tail ? seqs * tail->seq_floats : 0;
    const size_t npk = block_stack_packed_floats(cfg, L);
    float *pmem = NULL;
    void *pblock = NULL;
    if (npk && !packed) { /* packed for this call alone */
        packed = pmem = per_call_floats(npk, &pblock);
        block_stack_pack(pmem, w, L, cfg);
    }
    struct block_packs *packs = npk ? tp_malloc(L * sizeof *packs) : NULL;
    if (npk) packs_point(packs, packed, L, cfg);
    void *table_block = NULL;
    const float *qkv_table = alike && packs ? alike_qkv(alike, inp, &w[0], &packs[0], cfg, &table_block) : NULL;
    struct share sh = {.next = 0};
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.cv, NULL);
    const struct stack_call k = {out, inp, w, packs, L, T, unit, cfg, tail, qkv_table, alike, &sh};
#pragma omp parallel num_threads(chunk_threads(chunks))
    {
#pragma omp single
        sh.busy = team_size();
        void *mem_block;
        float *mem = per_call_floats(nacts + 2 * seqs * row + ntail, &mem_block);
        struct stack_mem m = {mem, {mem + nacts, mem + nacts + seqs * row}, mem + nacts + 2 * seqs * row,
                              tail && tail->keep ? tp_malloc((size_t)seqs * T * sizeof(int)) : NULL};
        stack_thread(&k, &m, units, chunks);
        free(m.rows);
        free(mem_block);
    }
    pthread_cond_destroy(&sh.cv);
    pthread_mutex_destroy(&sh.mu);
    free(table_block);
    free(packs);
    free(pblock);
}
