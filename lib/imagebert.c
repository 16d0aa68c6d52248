/* imagebert.c - the MaskGIT generator module (see imagebert.h). */
#include "imagebert.h"
#include "block.h"
#include "chunks.h"
#include "dropout.h"
#include "embedding.h"
#include "err.h"
#include "layernorm.h"
#include "linear.h"
#include "linear_tile.h"
#include "maskgit.h"
#include "xxh64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const imagebert_presets[][2] = {
    {"maskgit-tiny", "arch=imagebert width=256 layers=6 heads=4 mlp=1024 codes=1024 classes=10 tokens=32 "
                     "dropout=0.1 attn_drop=0.1"},
    {"generator-titok-l32", "arch=imagebert width=768 layers=24 heads=16 mlp=3072 codes=4096 classes=1000 "
                            "tokens=32 dropout=0.1 attn_drop=0.1"},
    {"generator-titok-b64", "arch=imagebert width=768 layers=24 heads=16 mlp=3072 codes=4096 classes=1000 "
                            "tokens=64 dropout=0.1 attn_drop=0.1"},
    {NULL, NULL},
};

static int meta_int(const struct st *m, const char *key, long lo, long hi, int *out)
{
    long v;
    if (st_meta_get_long(m, key, &v) != 0) return -1;
    if (v < lo || v > hi) return tp_err_set("metadata '%s': %ld is out of range [%ld, %ld]", key, v, lo, hi);
    *out = (int)v;
    return 0;
}

static int meta_prob(const struct st *m, const char *key, float *out)
{
    double v = 0.1;
    if (st_meta_get(m, key) && st_meta_get_double(m, key, &v) != 0) return -1;
    if (!(v >= 0 && v < 1)) return tp_err_set("metadata '%s': %g is not in [0, 1)", key, v);
    *out = (float)v;
    return 0;
}

int imagebert_cfg_from_meta(struct imagebert_cfg *c, const struct st *meta)
{
    memset(c, 0, sizeof *c);
    if (meta_int(meta, "codes", 2, 1 << 20, &c->codes) || meta_int(meta, "classes", 0, 1 << 20, &c->classes) ||
        meta_int(meta, "tokens", 1, 1 << 16, &c->tokens) || meta_int(meta, "width", 1, 1 << 16, &c->width) ||
        meta_int(meta, "layers", 1, 1024, &c->layers) || meta_int(meta, "heads", 1, 1024, &c->heads) ||
        meta_int(meta, "mlp", 1, 1 << 18, &c->mlp) || meta_prob(meta, "dropout", &c->dropout) ||
        meta_prob(meta, "attn_drop", &c->attn_drop))
        return -1;
    if (c->width % c->heads)
        return tp_err_set("width %d is not a multiple of heads %d", c->width, c->heads);
    return 0;
}

static struct block_cfg block_cfg_of(const struct imagebert_cfg *c)
{
    return (struct block_cfg){BLOCK_POST_LN, c->width, c->heads, c->mlp, LN_EPS_BERT, 0, c->dropout,
                              c->attn_drop};
}

void imagebert_params_add(struct params *p, const struct imagebert_cfg *c)
{
    const char *e = "model.embeddings.";
    int64_t W = c->width, word[2] = {c->codes + c->classes + 2, W}, pos[2] = {c->tokens + 1, W},
            tt[2] = {2, W}, head[2] = {c->codes, W}, vec[1] = {W}, hb[1] = {c->codes};
    params_add(p, e, "word_embeddings.weight", 2, word, INIT_NORMAL, 0.02f);
    params_add(p, e, "position_embeddings.weight", 2, pos, INIT_NORMAL, 0.02f);
    params_add(p, e, "token_type_embeddings.weight", 2, tt, INIT_NORMAL, 0.02f);
    params_add(p, e, "LayerNorm.weight", 1, vec, INIT_ONES, 0);
    params_add(p, e, "LayerNorm.bias", 1, vec, INIT_ZEROS, 0);
    struct block_cfg bc = block_cfg_of(c);
    char prefix[64];
    for (int l = 0; l < c->layers; l++) {
        snprintf(prefix, sizeof prefix, "model.encoder.layer.%d.", l);
        block_params_add(p, prefix, &bc);
    }
    params_add(p, "model.", "lm_head.weight", 2, head, INIT_NORMAL, 0.02f);
    params_add(p, "model.", "lm_head.bias", 1, hb, INIT_ZEROS, 0);
}

/* ---- the module ---------------------------------------------------------- */

/* Weights (or gradients): pointers into one parameter buffer. */
struct ib_w {
    float *word, *pos, *tt, *ln_w, *ln_b, *head_w, *head_b;
    struct block_params *layer; /* [L] */
};

struct ib {
    struct imagebert_cfg c;
    struct block_cfg bc;
    int V, NV, K, T, W, L; /* NV: vocabulary rows */
    struct ib_w w, dw;
    /* the last forward: R rows (2B with guidance), train, seed */
    int R, train;
    uint64_t seed;
    int cap_R, cap_train; /* what the buffers below are sized for */
    int32_t *tok;         /* [R,T] */
    uint8_t *keep;        /* [R,T] inference under logits_at=masked: the rows lm_head reads */
    float *x, *mean, *rstd; /* [R,T,W] embedding sum (LayerNorm input), [R*T] stats */
    float *h;             /* [L+1][R,T,W]: h0 (after dropout) .. hL; inference: h0 */
    float *hk;            /* [R*K,W] hL without position 0: lm_head's input (training) */
    float *acts;          /* block activations: L of them (training) */
    struct block_acts *a; /* [L] */
    /* backward scratch (training size) */
    float *dh, *dx, *dhk, *sm;
    struct block_acts s;
    /* inference: the blocks' and the head's weights packed for the tiles,
     * kept while the weights stay */
    struct linear_tile_cache pk_blocks, pk_head;
};

static void point_w(struct ib_w *w, float *mem, const struct params *p, const struct ib *ib)
{
    w->word = mem + params_find(p, "model.embeddings.word_embeddings.weight")->offset;
    w->pos = mem + params_find(p, "model.embeddings.position_embeddings.weight")->offset;
    w->tt = mem + params_find(p, "model.embeddings.token_type_embeddings.weight")->offset;
    w->ln_w = mem + params_find(p, "model.embeddings.LayerNorm.weight")->offset;
    w->ln_b = mem + params_find(p, "model.embeddings.LayerNorm.bias")->offset;
    w->head_w = mem + params_find(p, "model.lm_head.weight")->offset;
    w->head_b = mem + params_find(p, "model.lm_head.bias")->offset;
    w->layer = tp_calloc((size_t)ib->L, sizeof *w->layer);
    char name[96];
    for (int l = 0; l < ib->L; l++) {
        snprintf(name, sizeof name, "model.encoder.layer.%d.attention.self.query.weight", l);
        block_params_point(&w->layer[l], mem + params_find(p, name)->offset, &ib->bc);
    }
}

static void free_bufs(struct ib *ib)
{
    free(ib->tok), free(ib->keep), free(ib->x), free(ib->mean), free(ib->rstd), free(ib->h), free(ib->hk);
    free(ib->acts), free(ib->dh), free(ib->dx), free(ib->dhk), free(ib->sm);
    ib->tok = NULL, ib->keep = NULL, ib->x = ib->mean = ib->rstd = ib->h = ib->hk = ib->acts = NULL;
    ib->dh = ib->dx = ib->dhk = ib->sm = NULL;
    ib->cap_R = 0, ib->cap_train = 0;
}

static void ib_destroy(struct module *m)
{
    struct ib *ib = m->impl;
    if (!ib) return;
    free_bufs(ib);
    linear_tile_cache_free(&ib->pk_blocks), linear_tile_cache_free(&ib->pk_head);
    free(ib->w.layer), free(ib->dw.layer), free(ib->a);
    free(ib);
    m->impl = NULL;
}

static int ib_build(struct module *m, const struct st *meta)
{
    struct ib *ib = tp_calloc(1, sizeof *ib);
    m->impl = ib;
    if (imagebert_cfg_from_meta(&ib->c, meta) != 0) return -1;
    const struct imagebert_cfg *c = &ib->c;
    ib->bc = block_cfg_of(c);
    ib->V = c->codes, ib->NV = c->codes + c->classes + 2, ib->K = c->tokens, ib->T = c->tokens + 1;
    ib->W = c->width, ib->L = c->layers;
    imagebert_params_add(&m->params, c);
    params_alloc(&m->params);
    point_w(&ib->w, m->params.data, &m->params, ib);
    point_w(&ib->dw, m->params.grad, &m->params, ib);
    ib->a = tp_calloc((size_t)ib->L, sizeof *ib->a);
    return 0;
}

static float *falloc(size_t n) { return tp_aligned_alloc(n * sizeof(float)); }

/* Buffers for R rows; training keeps every layer's activations, inference
 * only the layers' input (block_stack_infer's chunks keep their own
 * activations, and the head's logits; lm_tail). */
static void reserve(struct ib *ib, int R, int train)
{
    if (R <= ib->cap_R && (!train || ib->cap_train)) return;
    if (R < ib->cap_R) R = ib->cap_R;
    train = train || ib->cap_train;
    free_bufs(ib);
    size_t BT = (size_t)R * ib->T, n = BT * ib->W;
    ib->tok = tp_malloc(BT * sizeof(int32_t));
    ib->keep = tp_malloc(BT);
    ib->x = falloc(n), ib->mean = falloc(BT), ib->rstd = falloc(BT);
    ib->h = falloc(n * (size_t)(train ? ib->L + 1 : 1));
    ib->hk = ib->acts = NULL;
    if (train) {
        ib->hk = falloc((size_t)R * ib->K * ib->W);
        ib->acts = falloc(block_acts_floats(&ib->bc, R, ib->T, train) * (size_t)ib->L);
        ib->dh = falloc(2 * n), ib->dx = falloc(n), ib->dhk = falloc((size_t)R * ib->K * ib->W);
        ib->sm = falloc(block_acts_floats(&ib->bc, R, ib->T, 0));
    }
    ib->cap_R = R, ib->cap_train = train;
}

/* The guidance of this record: its scale, 0 for none. */
static int guidance_of(const struct st *rec, enum maskgit_guidance *kind, double *scale)
{
    *scale = 0;
    *kind = MASKGIT_CFG_LINEAR;
    const char *g = st_meta_get(rec, "guidance");
    if (!g) return 0;
    double G, pw = 3.0;
    long s = 0, T = 1;
    if (st_meta_get_double(rec, "guidance", &G) != 0) return -1;
    const char *ks = st_meta_get(rec, "guidance_schedule");
    if (ks) {
        int k = maskgit_guidance_parse(ks);
        if (k < 0) return tp_err_prefix("metadata 'guidance_schedule'");
        *kind = (enum maskgit_guidance)k;
    }
    if (st_meta_get(rec, "guidance_pow") && st_meta_get_double(rec, "guidance_pow", &pw) != 0) return -1;
    if (*kind != MASKGIT_CFG_CONSTANT) {
        if (st_meta_get_long(rec, "sample_step", &s) != 0 || st_meta_get_long(rec, "sample_steps", &T) != 0)
            return tp_err_prefix("guidance schedule '%s' needs the sampling step", ks ? ks : "linear");
        if (T < 1 || s < 0 || s >= T) return tp_err_set("sample_step %ld is not in [0, sample_steps %ld)", s, T);
    }
    *scale = maskgit_cfg_scale(*kind, G, (int)s, (int)T, pw);
    return 0;
}

/* Whether the record asks for the logits of its masked positions alone
 * (metadata logits_at, imagebert.h). */
static int masked_only(const struct st *rec, int *on)
{
    const char *v = st_meta_get(rec, "logits_at");
    *on = v && strcmp(v, "masked") == 0;
    if (v && !*on && strcmp(v, "all") != 0)
        return tp_err_set("metadata 'logits_at': '%s' is neither 'all' nor 'masked'", v);
    return 0;
}

/* keep: the rows lm_head reads under logits_at=masked, those of the mask
 * token (never the class position) */
static void fill_keep(struct ib *ib, int R)
{
    const int T = ib->T;
    for (size_t i = 0; i < (size_t)R * T; i++) ib->keep[i] = i % T != 0 && ib->tok[i] == ib->V;
}

/* ids in [0,V] (V the mask), labels below the class count */
static int check_inputs(const struct ib *ib, const struct st_tensor *ids, const struct st_tensor *lab, int B)
{
    const int32_t *id = ids->data, *lb = lab ? lab->data : NULL;
    const int V = ib->V, K = ib->K, NC = ib->c.classes;
    for (long i = 0; i < (long)B * K; i++)
        if (id[i] < 0 || id[i] > V)
            return tp_err_set("field 'ids': id %d of sample %ld outside [0,%d] (%d = mask)", (int)id[i], i / K, V, V);
    for (int b = 0; b < B; b++)
        if (lb && lb[b] >= NC) return tp_err_set("field 'label': %d of sample %d is not below %d classes", (int)lb[b], b, NC);
    return 0;
}

/* The class token of sample b's pass p: its label in pass 0, else (and
 * for labels < 0, or none) the null class. */
static int32_t class_token(const struct ib *ib, const int32_t *lb, int b, int p)
{
    return p == 0 && lb && lb[b] >= 0 ? ib->V + 1 + lb[b] : ib->V + ib->c.classes + 1;
}

/* Inference runs each distinct sample once: samples with the same ids and
 * class token (every sample of a class at a sampling run's first step,
 * where all ids are the mask) have the same logits, row by row the same
 * sums. pick[u] = the first sample of distinct sample u, of[b] = b's u (u
 * <= b); returns the count U. An open-addressing table of the samples'
 * hashes, compared in full on a hit. */
static int distinct_samples(const struct ib *ib, const int32_t *id, const int32_t *lb, int B, int *pick, int *of)
{
    const int K = ib->K;
    int cap = 16;
    while (cap < 2 * B) cap *= 2;
    int *slot = tp_malloc((size_t)cap * sizeof *slot);
    uint64_t *hash = tp_malloc((size_t)B * sizeof *hash);
    for (int i = 0; i < cap; i++) slot[i] = -1;
    int U = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *row = id + (size_t)b * K, cls = class_token(ib, lb, b, 0);
        hash[b] = xxh64(row, sizeof(int32_t) * K, (uint64_t)cls);
        int i = (int)(hash[b] & (uint64_t)(cap - 1));
        for (; slot[i] >= 0; i = (i + 1) & (cap - 1)) {
            const int a = pick[slot[i]];
            if (hash[a] == hash[b] && class_token(ib, lb, a, 0) == cls &&
                memcmp(id + (size_t)a * K, row, sizeof(int32_t) * K) == 0)
                break;
        }
        if (slot[i] < 0) slot[i] = U, pick[U++] = b;
        of[b] = slot[i];
    }
    free(slot), free(hash);
    return U;
}

/* tok rows of the samples pick[0..U): pass 0 with the labels, pass 1
 * (guidance) with the null class, a sample's passes side by side (lm_tail
 * takes them together). */
static void fill_tokens(struct ib *ib, const int32_t *id, const int32_t *lb, const int *pick, int U, int passes)
{
    const int K = ib->K, T = ib->T;
    for (int u = 0; u < U; u++)
        for (int p = 0; p < passes; p++) {
            int32_t *t = ib->tok + ((size_t)u * passes + p) * T;
            t[0] = class_token(ib, lb, pick[u], p);
            memcpy(t + 1, id + (size_t)pick[u] * K, sizeof(int32_t) * K);
        }
}

/* The logits of distinct sample u, at out's slot u, to every sample b of
 * it (of[b] = u <= b; from the last sample down, so that a slot is read
 * before it is written). */
static void spread_logits(float *out, const int *of, int B, size_t n)
{
    for (int b = B - 1; b >= 0; b--)
        if (of[b] != b) memcpy(out + (size_t)b * n, out + (size_t)of[b] * n, sizeof(float) * n);
}

/* h0's rows alike (block_alike): a row of h0 is a function of its token
 * and position, so the first layer's qkv is made once per pair (the
 * masked positions of every sample, both passes' shared ids). of and
 * first hold R*T ints each. */
static void alike_rows(struct block_alike *al, const struct ib *ib, int R, int *of, int *first)
{
    const int T = ib->T;
    int *seen = tp_malloc((size_t)ib->NV * T * sizeof *seen);
    for (size_t i = 0; i < (size_t)ib->NV * T; i++) seen[i] = -1;
    int nd = 0;
    for (int i = 0; i < R * T; i++) {
        int *s = &seen[(size_t)ib->tok[i] * T + i % T];
        if (*s < 0) first[nd] = i, *s = nd++;
        of[i] = *s;
    }
    free(seen);
    al->of = of, al->first = first, al->nd = nd;
}

/* Embeddings and the layer norm: tok to h0. */
static void embed(struct ib *ib, int R, int train, uint64_t seed)
{
    int T = ib->T, W = ib->W, BT = R * T;
    embedding_forward(ib->x, ib->tok, ib->w.word, BT, ib->NV, W);
    embedding_pos_forward(ib->x, ib->x, ib->w.tt, BT, 1, W); /* token type 0 on every row */
    embedding_pos_forward(ib->x, ib->x, ib->w.pos, R, T, W);
    layernorm_forward(ib->h, ib->mean, ib->rstd, ib->x, ib->w.ln_w, ib->w.ln_b, BT, W, LN_EPS_BERT);
    if (train && ib->c.dropout > 0) dropout_forward(ib->h, ib->h, (size_t)BT * W, ib->c.dropout, rng_hash(seed, 0));
}

/* Training: the layers with their activations kept, then the gather of
 * positions 1..K (lm_head's input, hk) and the head. */
static void run_train(struct ib *ib, float *logits, int R, uint64_t seed)
{
    int T = ib->T, W = ib->W, K = ib->K;
    size_t n = (size_t)R * T * W;
    embed(ib, R, 1, seed);
    float *am = ib->acts;
    for (int l = 0; l < ib->L; l++) {
        am = block_acts_point(&ib->a[l], am, &ib->bc, R, T, 1);
        block_forward(ib->h + (size_t)(l + 1) * n, &ib->a[l], ib->h + (size_t)l * n, &ib->w.layer[l], &ib->bc, R,
                      T, 1, rng_hash(seed, (uint64_t)l + 1));
    }
    const float *hl = ib->h + (size_t)ib->L * n;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int r = 0; r < R; r++)
        memcpy(ib->hk + (size_t)r * K * W, hl + ((size_t)r * T + 1) * W, sizeof(float) * K * W);
    linear_forward(logits, ib->hk, ib->w.head_w, ib->w.head_b, R * K, W, ib->V);
}

/* Inference's head, on each chunk of block_stack_infer while its last
 * hidden states are in cache, each sample's K positions to out. One pass:
 * the logits of every position (the class position's 1/T of the work is
 * thrown away: per-sequence products of K rows would cost more). Guided:
 * the head is linear, so cond + s (cond - uncond) of the logits
 * (maskgit.h) is the head of that combination of the two passes' hidden
 * states, the bias once: each sample's pair of rows is combined first (W
 * floats instead of V) and the head runs once per pair, not twice. The
 * batch's hidden states and logits are never all in memory. */
struct lm_tail {
    const struct ib *ib;
    float *out; /* [B,K,V] */
    const float *head; /* lm_head.weight packed for linear_tile, or NULL: sgemm */
    int passes;
    enum maskgit_guidance kind;
    float scale;
};

/* scratch floats a sequence of a chunk may take (block_tail.seq_floats):
 * its logits, or under guidance half a pair's combined rows and logits */
static size_t lm_seq_floats(const struct ib *ib) { return (size_t)ib->T * ib->V + (size_t)ib->K * ib->W; }

/* logits [n,V] = h [n,W] lm_head^T (+ its bias) */
static void lm_head(const struct lm_tail *t, float *logits, const float *h, int n, int bias)
{
    const struct ib *ib = t->ib;
    const float *b = bias ? ib->w.head_b : NULL;
    if (t->head)
        linear_tile_forward(logits, h, t->head, b, NULL, n, ib->W, ib->V, LINEAR_TILE_NONE);
    else
        linear_forward(logits, h, ib->w.head_w, b, n, ib->W, ib->V);
}

/* Guided: the pairs of rows of the chunk's units combined into h [np,W],
 * and where each pair's logits go in out (rows NULL: every position of
 * each sample, in order; else the kept rows, which come sequence by
 * sequence, a sample's two passes keeping the same positions, never the
 * class position). Returns np. */
static int lm_pairs(const struct lm_tail *t, float *h, float **dst, const float *y, int s0, int ns,
                    const int *rows, int nr)
{
    const struct ib *ib = t->ib;
    const int T = ib->T, K = ib->K, V = ib->V, W = ib->W;
    int np = 0;
    if (!rows) {
        for (int s = 0; s < ns; s += 2) {
            const float *c = y + ((size_t)s * T + 1) * W;
            maskgit_cfg_combine(h + (size_t)np * W, c, c + (size_t)T * W, NULL, K, W, t->kind, t->scale);
            for (int k = 0; k < K; k++) dst[np + k] = t->out + ((size_t)(s0 + s) / 2 * K + k) * V;
            np += K;
        }
        return np;
    }
    for (int i = 0; i < nr;) {
        const int s = rows[i] / T;
        int n = 0;
        while (i + n < nr && rows[i + n] / T == s) n++;
        const float *c = y + (size_t)i * W;
        maskgit_cfg_combine(h + (size_t)np * W, c, c + (size_t)n * W, NULL, n, W, t->kind, t->scale);
        for (int j = i; j < i + n; j++) {
            const int pos = rows[j] % T;
            TP_ASSERT(pos >= 1 && rows[j + n] == rows[j] + T);
            dst[np++] = t->out + ((size_t)(s0 + s) / 2 * K + pos - 1) * V;
        }
        i += 2 * n;
    }
    return np;
}

static void lm_chunk(void *ctx, const float *y, int s0, int ns, const int *rows, int nr, float *scratch)
{
    const struct lm_tail *t = ctx;
    const struct ib *ib = t->ib;
    const int T = ib->T, K = ib->K, V = ib->V, W = ib->W;
    if (nr == 0) return;
    if (t->passes == 2) {
        const int most = ns / 2 * K;
        float *h = scratch, *logits = scratch + (size_t)most * W;
        float **dst = tp_malloc((size_t)most * sizeof *dst);
        const int np = lm_pairs(t, h, dst, y, s0, ns, rows, nr);
        lm_head(t, logits, h, np, 1);
        for (int j = 0; j < np; j++) memcpy(dst[j], logits + (size_t)j * V, sizeof(float) * V);
        free(dst);
        return;
    }
    float *logits = scratch;
    lm_head(t, logits, y, nr, 1);
    for (int i = 0; i < nr; i++) {
        const int r = rows ? rows[i] : i, pos = r % T;
        if (pos) memcpy(t->out + ((size_t)(s0 + r / T) * K + pos - 1) * V, logits + (size_t)i * V, sizeof(float) * V);
    }
}

static int ib_forward(struct module *m, struct st *rec, int train)
{
    struct ib *ib = m->impl;
    int K = ib->K, V = ib->V;
    struct st_tensor *ids = st_require(rec, "ids", ST_I32, -1);
    if (!ids) return -1;
    if (ids->ndim < 2 || ids->ndim > 3 || ids->shape[0] < 1 || st_numel(ids) / ids->shape[0] != K)
        return tp_err_set("field 'ids': the transformer takes [B,%d] or [B,h,w] with h*w = %d", K, K);
    int B = (int)ids->shape[0];
    struct st_tensor *lab = st_find(rec, "label");
    if (lab && !(lab = st_require(rec, "label", ST_I32, 1))) return -1;
    if (lab && lab->shape[0] != B) return tp_err_set("field 'label': %lld labels for %d samples", (long long)lab->shape[0], B);
    enum maskgit_guidance kind = MASKGIT_CFG_LINEAR;
    double scale = 0;
    int masked = 0;
    if (!train && (guidance_of(rec, &kind, &scale) != 0 || masked_only(rec, &masked) != 0)) return -1;
    if (check_inputs(ib, ids, lab, B) != 0) return -1;
    int passes = scale != 0 ? 2 : 1;
    /* a guided run has two passes from its second step on (the first's scale
     * is 0): sized for them from the start, the buffers are made once */
    reserve(ib, !train && st_meta_get(rec, "guidance") ? 2 * B : passes * B, train);
    const int32_t *id = ids->data, *lb = lab ? lab->data : NULL;
    int *pick = tp_malloc((size_t)2 * B * sizeof *pick), *of = pick + B, U = B;
    if (train)
        for (int b = 0; b < B; b++) pick[b] = of[b] = b;
    else
        U = distinct_samples(ib, id, lb, B, pick, of);
    fill_tokens(ib, id, lb, pick, U, passes);
    const int R = passes * U;
    ib->R = R, ib->train = train, ib->seed = module_seed(rec, IMAGEBERT_SALT);
    int64_t shape[ST_MAX_DIMS];
    memcpy(shape, ids->shape, sizeof shape);
    shape[ids->ndim] = V;
    struct st_tensor *out = st_put(rec, "logits", ST_F32, ids->ndim + 1, shape);
    if (train) {
        run_train(ib, out->data, R, ib->seed);
        free(pick);
        return 0;
    }
    embed(ib, R, 0, ib->seed);
    /* the blocks and the head by tiles (block.h), their weights packed once */
    const float *blocks = block_stack_cached(&ib->pk_blocks, ib->w.layer, ib->L, &ib->bc, m->params.version);
    const float *head = linear_tile_cached(&ib->pk_head, ib->w.head_w, ib->W, V, m->params.version);
    struct lm_tail lt = {ib, out->data, head, passes, kind, (float)scale};
    if (masked) fill_keep(ib, R);
    struct block_tail tail = {lm_chunk, &lt, passes, lm_seq_floats(ib), masked ? ib->keep : NULL};
    int *alike_of = tp_malloc((size_t)2 * R * ib->T * sizeof *alike_of);
    struct block_alike al;
    alike_rows(&al, ib, R, alike_of, alike_of + (size_t)R * ib->T);
    block_stack_infer(NULL, ib->h, ib->w.layer, blocks, ib->L, &ib->bc, R, ib->T, &al, &tail);
    spread_logits(out->data, of, B, (size_t)K * V);
    free(alike_of);
    free(pick);
    return 0;
}

static int ib_backward(struct module *m, const struct st *grad, struct st *in_grad)
{
    (void)in_grad;
    struct ib *ib = m->impl;
    if (!ib->train) return tp_err_set("backward needs a training forward");
    int R = ib->R, T = ib->T, W = ib->W, K = ib->K, L = ib->L, BT = R * T;
    struct st_tensor *g = st_require(grad, "logits.grad", ST_F32, -1);
    if (!g) return -1;
    if (st_numel(g) != (int64_t)R * K * ib->V)
        return tp_err_set("field 'logits.grad': %lld values, the forward's logits have %lld", (long long)st_numel(g),
                          (long long)R * K * ib->V);
    size_t n = (size_t)BT * W, nk = (size_t)R * K * W;
    memset(ib->dhk, 0, nk * sizeof(float));
    linear_backward(ib->dhk, ib->dw.head_w, ib->dw.head_b, g->data, ib->hk, ib->w.head_w, R * K, W, ib->V);
    /* scatter into positions 1..K of dh_L; the class position gets none */
    float *dcur = ib->dh, *dprev = ib->dh + n;
    memset(dcur, 0, n * sizeof(float));
#pragma omp parallel for if (n > 16384) schedule(static)
    for (int r = 0; r < R; r++)
        memcpy(dcur + ((size_t)r * T + 1) * W, ib->dhk + (size_t)r * K * W, sizeof(float) * K * W);
    block_acts_point(&ib->s, ib->sm, &ib->bc, R, T, 0);
    for (int l = L - 1; l >= 0; l--) {
        memset(dprev, 0, n * sizeof(float));
        block_backward(dprev, &ib->dw.layer[l], &ib->s, dcur, ib->h + (size_t)l * n, &ib->w.layer[l], &ib->a[l],
                       &ib->bc, R, T, 1, rng_hash(ib->seed, (uint64_t)l + 1));
        float *t = dcur;
        dcur = dprev, dprev = t;
    }
    const float *dln = dcur;
    if (ib->c.dropout > 0) {
        memset(dprev, 0, n * sizeof(float));
        dropout_backward(dprev, dcur, n, ib->c.dropout, rng_hash(ib->seed, 0));
        dln = dprev;
    }
    memset(ib->dx, 0, n * sizeof(float));
    layernorm_backward(ib->dx, ib->dw.ln_w, ib->dw.ln_b, dln, ib->x, ib->w.ln_w, ib->mean, ib->rstd, BT, W);
    embedding_backward(ib->dw.word, ib->dx, ib->tok, BT, ib->NV, W);
    embedding_pos_backward(NULL, ib->dw.tt, ib->dx, BT, 1, W);
    embedding_pos_backward(NULL, ib->dw.pos, ib->dx, R, T, W);
    return 0;
}

const struct module_ops imagebert_ops = {
    .arch = "imagebert",
    .build = ib_build,
    .forward = ib_forward,
    .backward = ib_backward,
    .destroy = ib_destroy,
};
