/* test_block.c - transformer blocks: forward and every gradient against
 * PyTorch (TiTok's ResidualAttentionBlock; HF BertLayer without and with
 * dropout, tests/reference/ref_block.py), finite differences through whole
 * blocks, the parameter table, initialisation, identical bits on
 * repeated runs at 2 threads, a batch in chunks against its sequences one
 * by one, and block_stack_infer's chunks against whole-batch blocks. */
#include "test.h"
#include "gradcheck.h"

#include "block.h"
#include "linear_tile.h"
#include "simd.h"
#include "blas.h"
#include "cli.h"
#include "layernorm.h"

/* A block with its parameters, gradients, activations and scratch. */
struct net {
    struct block_cfg cfg;
    int B, T, train;
    uint64_t seed;
    size_t np, n;
    struct params par; /* the block's table; pm, dm are its data and grad */
    float *pm, *dm, *am, *sm, *x, *out, *dx, *r;
    struct block_params p, dp;
    struct block_acts a, s;
};

/* prefix: the names' prefix in the parameter table */
static void net_init(struct net *t, struct block_cfg cfg, int B, int T, int train,
                     const char *prefix)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->B = B, t->T = T, t->train = train, t->seed = 12345;
    params_init_table(&t->par);
    assert_int_equal(block_params_add(&t->par, prefix, &cfg), 0);
    params_alloc(&t->par);
    t->np = block_param_floats(&cfg);
    assert_int_equal(t->par.total, t->np);
    t->n = (size_t)B * T * cfg.C;
    t->pm = t->par.data;
    t->dm = t->par.grad;
    size_t na = block_acts_floats(&cfg, B, T, train), ns = block_acts_floats(&cfg, B, T, 0);
    t->am = tp_malloc(sizeof(float) * na);
    t->sm = tp_malloc(sizeof(float) * ns);
    assert_true(block_acts_point(&t->a, t->am, &cfg, B, T, train) == t->am + na);
    assert_true(block_acts_point(&t->s, t->sm, &cfg, B, T, 0) == t->sm + ns);
    block_params_point(&t->p, t->pm, &cfg);
    block_params_point(&t->dp, t->dm, &cfg);
    t->x = tp_malloc(sizeof(float) * t->n);
    t->out = tp_malloc(sizeof(float) * t->n);
    t->dx = tp_calloc(t->n, sizeof(float));
    t->r = tp_malloc(sizeof(float) * t->n);
}

static void net_free(struct net *t)
{
    params_free(&t->par);
    free(t->am), free(t->sm);
    free(t->x), free(t->out), free(t->dx), free(t->r);
}

static void net_forward(struct net *t)
{
    block_forward(t->out, &t->a, t->x, &t->p, &t->cfg, t->B, t->T, t->train, t->seed);
}

static void net_backward(struct net *t)
{
    block_backward(t->dx, &t->dp, &t->s, t->r, t->x, &t->p, &t->a, &t->cfg, t->B, t->T,
                   t->train, t->seed);
}

static struct block_cfg cfg_vit(int C, int NH, int F)
{
    return (struct block_cfg){BLOCK_PRE_LN, C, NH, F, LN_EPS_VIT, 0, 0.0f, 0.0f};
}

static struct block_cfg cfg_bert(int C, int NH, int F, float drop, float attn_drop)
{
    return (struct block_cfg){BLOCK_POST_LN, C, NH, F, LN_EPS_BERT, 0, drop, attn_drop};
}

/* ---- against PyTorch ---- */

/* Parameters load by upstream name through params_load, as a model's do. */
static void check_ref(const char *tag, struct block_cfg cfg, int train)
{
    enum { B = 2, T = 5 };
    struct st *s = ref_load("block");
    struct net t;
    char name[160];
    snprintf(name, sizeof name, "%s.p.", tag);
    net_init(&t, cfg, B, T, train, name);
    if (params_load(&t.par, s, 1) != 0) fail_msg("%s", tp_err());
    snprintf(name, sizeof name, "%s.x", tag);
    memcpy(t.x, ref_f32(s, name, t.n), sizeof(float) * t.n);
    snprintf(name, sizeof name, "%s.dout", tag);
    memcpy(t.r, ref_f32(s, name, t.n), sizeof(float) * t.n);
    net_forward(&t);
    net_backward(&t);
    snprintf(name, sizeof name, "%s.out", tag);
    check_close(name, t.out, ref_f32(s, name, t.n), t.n, 1e-4, 1e-3);
    snprintf(name, sizeof name, "%s.dx", tag);
    check_close(name, t.dx, ref_f32(s, name, t.n), t.n, 1e-4, 1e-3);
    struct param_spec tab[BLOCK_MAX_PARAMS];
    int np = block_param_specs(tab, &cfg);
    for (int i = 0; i < np; i++) {
        struct param_spec e = tab[i];
        snprintf(name, sizeof name, "%s.g.%s", tag, e.name);
        check_close(name, t.dm + e.offset, ref_f32(s, name, e.numel), e.numel, 1e-4, 1e-3);
    }
    net_free(&t);
    st_free(s);
}

static void test_ref_vit(void **state) { (void)state; check_ref("vit", cfg_vit(16, 2, 64), 0); }
static void test_ref_bert(void **state)
{
    (void)state;
    /* dropout configured but train = 0: evaluation, as the fixture */
    check_ref("bert", cfg_bert(16, 2, 64, 0.2f, 0.25f), 0);
}
static void test_ref_bert_dropout(void **state)
{
    (void)state;
    check_ref("bertdrop", cfg_bert(16, 2, 64, 0.2f, 0.25f), 1);
}

/* ---- finite differences through whole blocks ---- */

static double loss(void *v)
{
    struct net *t = v;
    net_forward(t);
    return gc_dot(t->out, t->r, t->n);
}

static void gradcheck(struct block_cfg cfg, int train)
{
    struct net t;
    net_init(&t, cfg, 2, 3, train, "");
    struct rng r;
    rng_seed(&r, 7);
    struct param_spec tab[BLOCK_MAX_PARAMS];
    int np = block_param_specs(tab, &cfg);
    for (int i = 0; i < np; i++) {
        float lo = tab[i].init == INIT_ONES ? 0.7f : -0.5f;
        fill_uniform(&r, t.pm + tab[i].offset, tab[i].numel, lo, lo + 1.0f);
    }
    fill_uniform(&r, t.x, t.n, -1, 1);
    fill_uniform(&r, t.r, t.n, -1, 1);
    loss(&t);
    net_backward(&t);
    gc_check("dinp", t.x, t.dx, t.n, loss, &t, 1e-2f, 2e-2);
    for (int i = 0; i < np; i++)
        gc_check(tab[i].name, t.pm + tab[i].offset, t.dm + tab[i].offset, tab[i].numel, loss,
                 &t, 1e-2f, 2e-2);
    net_free(&t);
}

static void test_gradcheck_pre(void **state) { (void)state; gradcheck(cfg_vit(8, 2, 16), 0); }
static void test_gradcheck_pre_dropout(void **state)
{
    (void)state;
    struct block_cfg c = cfg_vit(8, 2, 16);
    c.drop = 0.2f, c.attn_drop = 0.3f, c.gelu_tanh = 1;
    gradcheck(c, 1);
}
static void test_gradcheck_post(void **state) { (void)state; gradcheck(cfg_bert(8, 2, 16, 0, 0), 0); }
static void test_gradcheck_post_dropout(void **state)
{
    (void)state;
    gradcheck(cfg_bert(8, 2, 16, 0.2f, 0.3f), 1);
}

/* ---- determinism ---- */

/* Two nets from one seed through forward and backward, net k at threads[k]
 * threads: the same bits. The caller frees both. */
static void twin_runs(struct net t[2], struct block_cfg cfg, int B, int T, int train, uint64_t seed,
                      const int threads[2])
{
    for (int k = 0; k < 2; k++) {
        tp_threads_set(threads[k]);
        net_init(&t[k], cfg, B, T, train, "");
        params_fill_init(&t[k].par, seed);
        struct rng r;
        rng_seed(&r, seed);
        fill_uniform(&r, t[k].x, t[k].n, -1, 1);
        fill_uniform(&r, t[k].r, t[k].n, -1, 1);
        net_forward(&t[k]);
        net_backward(&t[k]);
    }
    tp_threads_set(2);
    assert_memory_equal(t[0].out, t[1].out, sizeof(float) * t[0].n);
    assert_memory_equal(t[0].dx, t[1].dx, sizeof(float) * t[0].n);
    assert_memory_equal(t[0].dm, t[1].dm, sizeof(float) * t[0].np);
}

static void run_twice_same(struct block_cfg cfg, int train)
{
    struct net t[2];
    twin_runs(t, cfg, 2, 33, train, 3, (const int[2]){2, 2});
    net_free(&t[0]);
    net_free(&t[1]);
}

static void test_deterministic(void **state)
{
    (void)state;
    tp_threads_set(2);
    run_twice_same(cfg_vit(64, 4, 256), 0);
    run_twice_same(cfg_bert(64, 4, 256, 0.1f, 0.1f), 1);
}

/* train = 0 ignores the configured dropout; train = 1 applies it. */
static void test_train_flag(void **state)
{
    (void)state;
    struct net t[3];
    struct block_cfg off = cfg_bert(16, 2, 32, 0, 0), on = cfg_bert(16, 2, 32, 0.3f, 0.3f);
    net_init(&t[0], off, 2, 4, 1, "");
    net_init(&t[1], on, 2, 4, 0, "");
    net_init(&t[2], on, 2, 4, 1, "");
    for (int k = 0; k < 3; k++) {
        params_fill_init(&t[k].par, 9);
        struct rng r;
        rng_seed(&r, 9);
        fill_uniform(&r, t[k].x, t[k].n, -1, 1);
        net_forward(&t[k]);
    }
    assert_memory_equal(t[0].out, t[1].out, sizeof(float) * t[0].n);
    assert_memory_not_equal(t[0].out, t[2].out, sizeof(float) * t[0].n);
    for (int k = 0; k < 3; k++) net_free(&t[k]);
}

/* ---- chunks (block.h) ---- */

/* A batch of B sequences in chunks against each sequence alone (one
 * sequence goes whole): the same outputs and input gradients within 1e-5,
 * the parameter gradients (the sums over the sequences) within 1e-4; and
 * the same bits at 1 and 2 threads. */
static void chunks_same(struct block_cfg cfg, int B, int T)
{
    struct net t[2], one;
    twin_runs(t, cfg, B, T, 1, 5, (const int[2]){1, 2});
    net_init(&one, cfg, 1, T, 1, "");
    params_fill_init(&one.par, 5);
    size_t row = one.n;
    for (int b = 0; b < B; b++) {
        memcpy(one.x, t[0].x + b * row, sizeof(float) * row);
        memcpy(one.r, t[0].r + b * row, sizeof(float) * row);
        memset(one.dx, 0, sizeof(float) * row);
        net_forward(&one);
        net_backward(&one); /* dm accumulates over the sequences */
        check_close("chunk out", t[0].out + b * row, one.out, row, 1e-5, 1e-5);
        check_close("chunk dx", t[0].dx + b * row, one.dx, row, 1e-5, 1e-5);
    }
    check_close("chunk dw", t[0].dm, one.dm, t[0].np, 1e-4, 1e-4);
    net_free(&t[0]), net_free(&t[1]), net_free(&one);
}

/* TiTok's block (97 rows a sequence: 2 chunks, of 3 and 4); BERT's
 * without dropout (33 rows: 2 chunks, of 4 and 5) */
static void test_chunks(void **state)
{
    (void)state;
    chunks_same(cfg_vit(64, 4, 256), 7, 97);
    chunks_same(cfg_bert(64, 4, 256, 0, 0), 9, 33);
}

/* ---- the kept rows of the last block (block_forward_rows) ---- */

/* block_forward_rows and block_backward_rows over rows [row0, row0+n) of
 * each sequence against the whole block with dout zero elsewhere: the same
 * outputs at those rows (the same bits where the chunks' tiles run them),
 * the same gradients to rounding; the rest of dout is NaN, so a read of it
 * shows. A post-LN block runs whole: every row as block_forward's. */
static void rows_same(struct block_cfg cfg, int B, int T, int row0, int n, int same_bits)
{
    struct net w, k;
    net_init(&w, cfg, B, T, 0, "");
    net_init(&k, cfg, B, T, 0, "");
    params_fill_init(&w.par, 8);
    params_fill_init(&k.par, 8);
    struct rng r;
    rng_seed(&r, 9);
    fill_uniform(&r, w.x, w.n, -1, 1);
    fill_uniform(&r, w.r, w.n, -1, 1);
    memcpy(k.x, w.x, sizeof(float) * w.n);
    const size_t C = cfg.C;
    for (size_t i = 0; i < (size_t)B * T; i++) {
        const int t = (int)(i % T), kept = t >= row0 && t < row0 + n;
        for (size_t c = 0; c < C; c++) {
            k.r[i * C + c] = kept ? w.r[i * C + c] : NAN;
            if (!kept) w.r[i * C + c] = 0.0f;
        }
    }
    const uint64_t f0 = tp_flops();
    net_forward(&w);
    net_backward(&w);
    const uint64_t f1 = tp_flops();
    block_forward_rows(k.out, &k.a, k.x, &k.p, &cfg, B, T, 0, 0, row0, n);
    block_backward_rows(k.dx, &k.dp, &k.s, k.r, k.x, &k.p, &k.a, &cfg, B, T, 0, 0, row0, n);
    const int whole = cfg.kind == BLOCK_POST_LN || n == T;
    /* the rows' products skipped (out_proj and the MLP: 9 of the 12 C x C a row) */
    if (whole)
        assert_true(tp_flops() - f1 == f1 - f0);
    else
        assert_true(tp_flops() - f1 < f1 - f0 - (f1 - f0) / 2 * (T - n) / T);
    for (int b = 0; b < B; b++) {
        const size_t at = ((size_t)b * T + (whole ? 0 : row0)) * C, len = (size_t)(whole ? T : n) * C;
        check_close("rows out", k.out + at, w.out + at, len, 1e-5, 1e-5);
        if (same_bits) assert_memory_equal(k.out + at, w.out + at, sizeof(float) * len);
    }
    check_close("rows dx", k.dx, w.dx, w.n, 1e-5, 1e-5);
    check_close("rows dw", k.dm, w.dm, w.np, 1e-4, 1e-4);
    net_free(&w), net_free(&k);
}

/* TiTok's encoder (its 32 latent tokens after 65 rows) and decoder (its
 * 64 grid rows after the class token): one chunk, and two (11 sequences of
 * 97 rows), at each vector width the CPU has and at 0; every row kept; a
 * post-LN block (whole). */
static void test_rows(void **state)
{
    (void)state;
    const int widths[] = {16, 8, 0};
    tp_threads_set(2);
    for (int i = 0; i < 3; i++) {
        if (widths[i] > simd_cpu_vl()) continue;
        simd_set_vl(widths[i]);
        const int tiles = widths[i] > 0 && linear_tile_packed_floats(64, 256) > 0;
        rows_same(cfg_vit(64, 4, 256), 3, 97, 65, 32, 0);
        rows_same(cfg_vit(64, 4, 256), 11, 97, 65, 32, tiles);
        rows_same(cfg_vit(64, 4, 256), 11, 97, 1, 64, tiles);
        rows_same(cfg_vit(64, 4, 256), 2, 9, 0, 9, 1);
        rows_same(cfg_bert(32, 2, 64, 0, 0), 3, 9, 2, 3, 1);
    }
    simd_set_vl(-1);
}

/* ---- block_stack_infer ---- */

/* A tail that copies each chunk's output to its place, through the
 * scratch, and counts the visits of every sequence. */
struct copy_tail {
    float *out;
    int *visits, unit, C, T;
    size_t row;
    const uint8_t *keep;
};

static void copy_chunk(void *ctx, const float *y, int s0, int ns, const int *rows, int nr, float *scratch)
{
    struct copy_tail *t = ctx;
    if (rows) { /* the kept rows, in order, each to its place */
        const uint8_t *k = t->keep + (size_t)s0 * t->T;
        int n = 0;
        for (int i = 0; i < ns * t->T; i++)
            if (k[i]) assert_int_equal(rows[n++], i);
        assert_int_equal(nr, n);
        assert_true(nr < ns * t->T);
        for (int i = 0; i < nr; i++)
            memcpy(t->out + ((size_t)s0 * t->T + rows[i]) * t->C, y + (size_t)i * t->C, sizeof(float) * t->C);
        for (int s = s0; s < s0 + ns; s++) t->visits[s]++;
        return;
    }
    assert_int_equal(nr, ns * t->T);
    assert_int_equal(s0 % t->unit, 0);
    assert_int_equal(ns % t->unit, 0);
    memcpy(scratch, y, sizeof(float) * ns * t->row);
    memcpy(t->out + (size_t)s0 * t->row, scratch, sizeof(float) * ns * t->row);
    for (int s = s0; s < s0 + ns; s++) t->visits[s]++;
}

/* x through block_stack_infer with tail (a copy_tail's) into out: each
 * sequence once through the tail, and the bits of want */
static void tail_same(float *out, const float *want, const struct block_tail *tail, const float *x,
                      const struct block_params *bp, int L, const struct block_cfg *cfg, int B, int T)
{
    struct copy_tail *ct = tail->ctx;
    const size_t n = (size_t)B * ct->row;
    memset(out, 0, sizeof(float) * n);
    memset(ct->visits, 0, sizeof(int) * B);
    ct->out = out;
    block_stack_infer(NULL, x, bp, NULL, L, cfg, B, T, NULL, tail);
    for (int b = 0; b < B; b++) assert_int_equal(ct->visits[b], 1);
    assert_memory_equal(out, want, sizeof(float) * n);
}

/* L blocks through block_stack_infer against block_forward block by block
 * over the whole batch, within 1e-6 (OpenBLAS's rounding depends on the
 * row count with its Haswell and small-matrix kernels), and the same bits
 * at 1 and 2 threads (but for a single sequence: see block.h). */
static void stack_same(struct block_cfg cfg, int L, int B, int T)
{
    struct net t;
    net_init(&t, cfg, B, T, 0, "");
    float *w = tp_malloc(sizeof(float) * t.np * L);
    struct block_params *bp = tp_calloc((size_t)L, sizeof *bp);
    struct rng r;
    rng_seed(&r, 17);
    for (int l = 0; l < L; l++) {
        /* every value drawn, no zero bias to hide a lost one; weights and
         * biases in +-0.05, about init's scale */
        fill_params(&t.par, &r);
        for (int i = 0; i < t.par.n; i++) {
            const struct param_spec *e = &t.par.spec[i];
            if (e->init != INIT_ONES)
                for (size_t j = 0; j < e->numel; j++) t.pm[e->offset + j] *= 0.1f;
        }
        memcpy(w + (size_t)l * t.np, t.pm, sizeof(float) * t.np);
        block_params_point(&bp[l], w + (size_t)l * t.np, &cfg);
    }
    fill_uniform(&r, t.x, t.n, -1, 1);
    float *want = tp_malloc(sizeof(float) * t.n), *got[2];
    memcpy(want, t.x, sizeof(float) * t.n);
    for (int l = 0; l < L; l++) {
        block_forward(t.out, &t.a, want, &bp[l], &cfg, B, T, 0, 0);
        memcpy(want, t.out, sizeof(float) * t.n);
    }
    for (int k = 0; k < 2; k++) {
        tp_threads_set(k + 1);
        got[k] = tp_calloc(t.n, sizeof(float));
        block_stack_infer(got[k], t.x, bp, NULL, L, &cfg, B, T, NULL, NULL);
        /* the tiles sum in another order than sgemm: outputs of unit scale
         * (LayerNorm's) agree to 1e-5 */
        check_close("stack", got[k], want, t.n, 1e-5, 1e-5);
    }
    if (B > 1) assert_memory_equal(got[0], got[1], sizeof(float) * t.n);
    /* with a tail: one unit the same chunks, the same bits; pairs of
     * sequences kept together where B allows */
    for (int unit = 1; unit <= 2 && B % unit == 0; unit++) {
        float *tailed = tp_calloc(t.n, sizeof(float));
        struct copy_tail ct = {tailed, tp_calloc((size_t)B, sizeof(int)), unit, cfg.C, T, (size_t)T * cfg.C, NULL};
        struct block_tail tail = {copy_chunk, &ct, unit, ct.row, NULL};
        block_stack_infer(NULL, t.x, bp, NULL, L, &cfg, B, T, NULL, &tail);
        for (int b = 0; b < B; b++) assert_int_equal(ct.visits[b], 1);
        if (unit == 1) assert_memory_equal(tailed, got[1], sizeof(float) * t.n);
        check_close("stack tail", tailed, want, t.n, 1e-5, 1e-5);
        free(tailed), free(ct.visits);
    }
    /* keeping some rows: those rows and no others reach the tail, with the
     * bits they have without keep where the tiles run (else sgemm's
     * rounding of another row count). Every other sequence keeps none, a
     * third of the rest, or all (whole chunks of each where B allows). */
    uint8_t *keep = tp_malloc((size_t)B * T);
    for (int i = 0; i < B * T; i++) {
        const int b = i / T, q = i % T;
        keep[i] = b % 2 == 1 ? 0 : b % 4 == 2 ? 1 : q % 3 == 1;
    }
    float *kept = tp_calloc(t.n, sizeof(float));
    struct copy_tail ck = {kept, tp_calloc((size_t)B, sizeof(int)), 1, cfg.C, T, (size_t)T * cfg.C, keep};
    struct block_tail tk = {copy_chunk, &ck, 1, ck.row, keep};
    block_stack_infer(NULL, t.x, bp, NULL, L, &cfg, B, T, NULL, &tk);
    const int tiles = block_stack_packed_floats(&cfg, L) > 0;
    for (int i = 0; i < B * T; i++) {
        const float *g = kept + (size_t)i * cfg.C, *e = got[1] + (size_t)i * cfg.C;
        if (!keep[i])
            for (int c = 0; c < cfg.C; c++) assert_true(g[c] == 0.0f);
        else if (tiles)
            assert_memory_equal(g, e, sizeof(float) * cfg.C);
        else
            check_close("stack keep", g, e, (size_t)cfg.C, 1e-5, 1e-5);
    }
    /* pieces handed over at every block boundary (block_stack_split_always,
     * a single thread taking its own back): the same bits at 1 to 3
     * threads as whole chunks, each sequence once through the tail, in
     * whole units (where the tiles run; sgemm's chunks stay whole) */
    const int unit = B % 2 == 0 ? 2 : 1;
    float *paired = tp_calloc(t.n, sizeof(float));
    struct copy_tail cs = {paired, tp_calloc((size_t)B, sizeof(int)), unit, cfg.C, T, (size_t)T * cfg.C, NULL};
    struct block_tail ts = {copy_chunk, &cs, unit, cs.row, NULL};
    block_stack_infer(NULL, t.x, bp, NULL, L, &cfg, B, T, NULL, &ts);
    block_stack_split_always(1);
    for (int th = 1; th <= 3 && B > 1; th++) {
        tp_threads_set(th);
        float *g = tp_calloc(t.n, sizeof(float));
        block_stack_infer(g, t.x, bp, NULL, L, &cfg, B, T, NULL, NULL);
        assert_memory_equal(g, got[1], sizeof(float) * t.n);
        tail_same(g, paired, &ts, t.x, bp, L, &cfg, B, T);
        tail_same(g, kept, &tk, t.x, bp, L, &cfg, B, T);
        free(g);
    }
    block_stack_split_always(0);
    free(paired), free(cs.visits), free(kept), free(ck.visits), free(keep);
    /* rows alike (block_alike): odd positions copy sequence 0's, position 2
     * copies position 0. Where the tiles run the first block's qkv is made
     * once per distinct row, the same bits at fewer products; else alike is
     * ignored. */
    float *xs = tp_malloc(sizeof(float) * t.n), *plain = tp_calloc(t.n, sizeof(float));
    float *shared = tp_calloc(t.n, sizeof(float));
    memcpy(xs, t.x, sizeof(float) * t.n);
    const size_t C = (size_t)cfg.C;
    for (int b = 0; b < B; b++)
        for (int q = 0; q < T; q++) {
            float *row = xs + ((size_t)b * T + q) * C;
            if (q % 2 == 1 && b > 0) memcpy(row, xs + (size_t)q * C, sizeof(float) * C);
            if (q == 2) memcpy(row, xs + (size_t)b * T * C, sizeof(float) * C);
        }
    int *of = tp_malloc(sizeof(int) * B * T), *first = tp_malloc(sizeof(int) * B * T), nd = 0;
    for (int i = 0; i < B * T; i++) {
        int d = 0;
        while (d < nd && memcmp(xs + (size_t)first[d] * C, xs + (size_t)i * C, sizeof(float) * C) != 0) d++;
        if (d == nd) first[nd++] = i;
        of[i] = d;
    }
    const struct block_alike al = {of, first, nd};
    uint64_t f0 = tp_flops();
    block_stack_infer(plain, xs, bp, NULL, L, &cfg, B, T, NULL, NULL);
    const uint64_t f_plain = tp_flops() - f0;
    f0 = tp_flops();
    block_stack_infer(shared, xs, bp, NULL, L, &cfg, B, T, &al, NULL);
    const uint64_t f_shared = tp_flops() - f0;
    assert_memory_equal(shared, plain, sizeof(float) * t.n);
    const uint64_t saved = (uint64_t)(B * T - nd) * 2 * C * 3 * C;
    assert_true(f_plain - f_shared == (tiles ? saved : 0));
    if (T > 2) assert_true(nd < B * T);
    free(xs), free(plain), free(shared), free(of), free(first);
    tp_threads_set(2);
    free(want), free(got[0]), free(got[1]), free(bp), free(w);
    net_free(&t);
}

/* maskgit-tiny's rows (4 chunks of 10 sequences); TiTok's encoder (97
 * rows a sequence, 2 chunks of 5 and 6); one sequence; a small block
 * (OpenBLAS's small-matrix kernels; C = 32 is no multiple of AVX-512's
 * panels, so at width 16 it takes sgemm). At each vector width the CPU
 * has (linear_tile.h's kernels), and at 0 (sgemm throughout): against
 * block_forward's sgemm in every case. */
static void test_stack_infer(void **state)
{
    (void)state;
    const int widths[] = {16, 8, 0};
    for (int i = 0; i < 3; i++) {
        if (widths[i] > simd_cpu_vl()) continue;
        simd_set_vl(widths[i]);
        assert_true((linear_tile_packed_floats(256, 1024) > 0) == (widths[i] > 0));
        stack_same(cfg_bert(256, 4, 1024, 0.1f, 0.1f), 3, 40, 33);
        stack_same(cfg_vit(64, 4, 256), 2, 11, 97);
        stack_same(cfg_vit(64, 4, 256), 2, 1, 97);
        stack_same(cfg_bert(32, 2, 64, 0, 0), 1, 7, 5);
        struct block_cfg jax = cfg_bert(64, 2, 128, 0, 0);
        jax.gelu_tanh = 1; /* the tiles' tanh GELU */
        stack_same(jax, 2, 6, 9);
    }
    simd_set_vl(-1);
}

/* ---- parameter table and init ---- */

static void check_table(struct block_cfg cfg, int want_n, const char *first, const char *last)
{
    struct param_spec tab[BLOCK_MAX_PARAMS];
    int n = block_param_specs(tab, &cfg);
    assert_int_equal(n, want_n);
    assert_string_equal(tab[0].name, first);
    assert_string_equal(tab[n - 1].name, last);
    size_t total = block_param_floats(&cfg), C = cfg.C, F = cfg.F;
    assert_int_equal(total, 4 * C * C + 2 * F * C + 9 * C + F);
    /* consecutive in table order, tiling [0,total) */
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)tab[i].shape[0] * (tab[i].ndim == 2 ? (size_t)tab[i].shape[1] : 1);
        assert_int_equal(numel, tab[i].numel);
        assert_int_equal(tab[i].offset, off);
        off += numel;
    }
    assert_int_equal(off, total);
}

static void test_table(void **state)
{
    (void)state;
    check_table(cfg_vit(16, 2, 64), 12, "ln_1.weight", "mlp.c_proj.bias");
    check_table(cfg_bert(16, 2, 48, 0, 0), 16, "attention.self.query.weight",
                "output.LayerNorm.bias");
    /* in a model's table, behind other parameters, the pointers land on the
     * named tensors; BERT's query, key, value are the packed in_proj rows */
    struct block_cfg cfg = cfg_bert(16, 2, 48, 0, 0);
    struct params p;
    params_init_table(&p);
    int64_t shape[1] = {5};
    params_add(&p, "", "before", 1, shape, INIT_ZEROS, 0);
    size_t base = block_params_add(&p, "layer.1.", &cfg);
    assert_int_equal(base, 5);
    params_alloc(&p);
    struct block_params w;
    block_params_point(&w, p.data + base, &cfg);
    static const struct {
        const char *name;
        size_t skip; /* floats into the field */
    } at[] = {{"attention.self.query.weight", 0}, {"attention.self.key.weight", 256},
              {"attention.self.value.weight", 512}, {"attention.self.query.bias", 0},
              {"attention.self.value.bias", 32}, {"attention.output.LayerNorm.weight", 0},
              {"output.dense.weight", 0}, {"output.LayerNorm.bias", 0}};
    float *field[] = {w.attn.in_proj_weight, w.attn.in_proj_weight, w.attn.in_proj_weight,
                      w.attn.in_proj_bias, w.attn.in_proj_bias, w.ln1_w, w.proj_w, w.ln2_b};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "layer.1.%s", at[i].name);
        const struct param_spec *e = params_find(&p, name);
        assert_non_null(e);
        assert_ptr_equal(p.data + e->offset, field[i] + at[i].skip);
    }
    params_free(&p);
}

static void test_init(void **state)
{
    (void)state;
    struct block_cfg cfg = cfg_vit(64, 4, 256);
    struct params p;
    params_init_table(&p);
    block_params_add(&p, "", &cfg);
    params_alloc(&p);
    params_fill_init(&p, 1);
    for (int i = 0; i < p.n; i++) {
        const struct param_spec *e = &p.spec[i];
        const float *x = p.data + e->offset;
        double s = 0, s2 = 0, amax = 0;
        for (size_t j = 0; j < e->numel; j++) {
            s += x[j], s2 += (double)x[j] * x[j];
            amax = fmax(amax, fabs(x[j]));
        }
        double mean = s / e->numel, sd = sqrt(s2 / e->numel - mean * mean);
        switch (e->init) {
        case INIT_ONES: assert_true(mean == 1.0 && sd == 0.0); break;
        case INIT_ZEROS: assert_true(amax == 0.0); break;
        case INIT_NORMAL:
            if (fabs(sd - 0.02) > 0.002 || fabs(mean) > 0.002)
                fail_msg("%s: mean %g sd %g, want 0, 0.02", e->name, mean, sd);
            break;
        case INIT_XAVIER: {
            double bound = sqrt(6.0 / (64 + 3 * 64));
            if (amax > bound || fabs(sd - bound / sqrt(3)) > 0.05 * bound)
                fail_msg("%s: max %g sd %g, bound %g", e->name, amax, sd, bound);
            break;
        }
        default: fail_msg("%s: unexpected init %d", e->name, (int)e->init);
        }
    }
    assert_int_equal(params_find(&p, "attn.in_proj_weight")->init, INIT_XAVIER);
    assert_int_equal(params_find(&p, "attn.out_proj.weight")->init, INIT_NORMAL);
    params_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_vit),
        cmocka_unit_test(test_ref_bert),
        cmocka_unit_test(test_ref_bert_dropout),
        cmocka_unit_test(test_gradcheck_pre),
        cmocka_unit_test(test_gradcheck_pre_dropout),
        cmocka_unit_test(test_gradcheck_post),
        cmocka_unit_test(test_gradcheck_post_dropout),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_train_flag),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_stack_infer),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
