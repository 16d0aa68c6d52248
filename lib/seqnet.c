/* seqnet.c - chains of conv layers, forward and backward (see seqnet.h). */
#include "seqnet.h"
#include "act.h"
#include "chunks.h"
#include "err.h"
#include "groupnorm.h"
#include "pool.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void seqnet_init(struct seqnet *s, int C, int H, int W)
{
    memset(s, 0, sizeof *s);
    s->C = C;
    s->H = H;
    s->W = W;
}

void seqnet_free(struct seqnet *s)
{
    free(s->l);
    free(s->acts);
    free(s->g0);
    free(s->g1);
    memset(s, 0, sizeof *s);
}

void seqnet_out_dims(const struct seqnet *s, int *C, int *H, int *W)
{
    if (s->n == 0) {
        *C = s->C, *H = s->H, *W = s->W;
        return;
    }
    const struct seq_layer *l = &s->l[s->n - 1];
    *C = l->OC, *H = l->OH, *W = l->OW;
}

static struct seq_layer *add(struct seqnet *s, enum seq_kind kind)
{
    int C, H, W;
    seqnet_out_dims(s, &C, &H, &W);
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->l = tp_realloc(s->l, s->cap * sizeof *s->l);
    }
    struct seq_layer *l = &s->l[s->n++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->C = l->OC = C;
    l->H = l->OH = H;
    l->W = l->OW = W;
    return l;
}

/* torch's default init: weights kaiming-uniform (bound 1/sqrt(fan_in)),
 * conv biases U(+-1/sqrt(fan_in)), norms (1, 0). */
void seqnet_conv(struct seqnet *s, struct params *p, const char *prefix, int OC, int k, int bias)
{
    struct seq_layer *l = add(s, SEQ_CONV);
    l->OC = OC;
    l->k = k;
    l->bias = bias;
    int64_t ws[4] = {OC, l->C, k, k}, bs[1] = {OC};
    l->poff = params_add(p, prefix, "weight", 4, ws, INIT_KAIMING, 0);
    if (bias) params_add(p, prefix, "bias", 1, bs, INIT_UNIFORM, 1.0f / sqrtf((float)(l->C * k * k)));
}

void seqnet_res(struct seqnet *s, struct params *p, const char *prefix, int OC)
{
    struct seq_layer *l = add(s, SEQ_RES);
    l->OC = OC;
    struct convnet_param tab[RESBLOCK_MAX_PARAMS];
    int n = resblock_params(tab, l->C, OC);
    for (int i = 0; i < n; i++) {
        enum param_init init = tab[i].ndim == 4 ? INIT_KAIMING
                               : strstr(tab[i].name, "bias") ? INIT_ZEROS : INIT_ONES;
        size_t off = params_add(p, prefix, tab[i].name, tab[i].ndim, tab[i].shape, init, 0);
        if (i == 0) l->poff = off;
    }
}

void seqnet_gn(struct seqnet *s, struct params *p, const char *prefix, int G, float eps)
{
    struct seq_layer *l = add(s, SEQ_GN);
    l->G = G;
    l->eps = eps;
    int64_t cs[1] = {l->C};
    l->poff = params_add(p, prefix, "weight", 1, cs, INIT_ONES, 0);
    params_add(p, prefix, "bias", 1, cs, INIT_ZEROS, 0);
}

void seqnet_silu(struct seqnet *s) { add(s, SEQ_SILU); }

void seqnet_pool(struct seqnet *s)
{
    struct seq_layer *l = add(s, SEQ_POOL);
    l->OH = (l->H + 1) / 2;
    l->OW = (l->W + 1) / 2;
}

void seqnet_up(struct seqnet *s)
{
    struct seq_layer *l = add(s, SEQ_UP);
    l->OH = 2 * l->H;
    l->OW = 2 * l->W;
}

/* floats of layer l's parameters */
static size_t layer_param_floats(const struct seq_layer *l)
{
    switch (l->kind) {
    case SEQ_CONV: return (size_t)l->OC * l->C * l->k * l->k + (l->bias ? (size_t)l->OC : 0);
    case SEQ_GN: return 2 * (size_t)l->C;
    case SEQ_RES: return resblock_weights_point(&(struct resblock_weights){0}, NULL, l->C, l->OC);
    default: return 0;
    }
}

void seqnet_bind(struct seqnet *s, struct params *p)
{
    /* the layers' parameters are one run of p (added in order) */
    size_t lo = SIZE_MAX, hi = 0;
    for (int i = 0; i < s->n; i++) {
        const size_t n = layer_param_floats(&s->l[i]);
        if (!n) continue;
        if (s->l[i].poff < lo) lo = s->l[i].poff;
        if (s->l[i].poff + n > hi) hi = s->l[i].poff + n;
    }
    s->poff = lo < hi ? lo : 0;
    s->pfloats = lo < hi ? hi - lo : 0;
    s->pgrad = p->grad && lo < hi ? p->grad + lo : NULL;
    for (int i = 0; i < s->n; i++) {
        struct seq_layer *l = &s->l[i];
        float *w = p->data + l->poff, *g = p->grad + l->poff;
        switch (l->kind) {
        case SEQ_CONV: {
            size_t nw = (size_t)l->OC * l->C * l->k * l->k;
            l->w = w, l->dw = g;
            l->b = l->bias ? w + nw : NULL;
            l->db = l->bias ? g + nw : NULL;
            break;
        }
        case SEQ_GN:
            l->w = w, l->b = w + l->C, l->dw = g, l->db = g + l->C;
            break;
        case SEQ_RES:
            resblock_weights_point(&l->rw, w, l->C, l->OC);
            resblock_weights_point(&l->rdw, g, l->C, l->OC);
            break;
        default: break;
        }
    }
}

static struct conv2d_shape conv_shape(const struct seq_layer *l, int B)
{
    return conv2d_shape_same(B, l->C, l->H, l->W, l->OC, l->k, l->k, 1, 1);
}

static struct resblock_cfg res_cfg(const struct seq_layer *l, int B)
{
    return resblock_cfg_upstream(B, l->C, l->OC, l->H, l->W);
}

/* Size the activations for batch B, in one block. Training: every layer's
 * output, statistics and resblock activations, each its own. Inference: two
 * outputs the layers take in turn, and one place for statistics and one for
 * resblock activations that every layer reuses. A training layout serves
 * inference too. */
/* For B images: the largest input or output of a layer, the largest
 * statistics of a group norm, the largest resblock activations (floats). */
struct sizes {
    size_t gmax, stats, res;
};

static struct sizes sizes_of(const struct seqnet *s, int B)
{
    struct sizes z = {(size_t)B * s->C * s->H * s->W, 0, 0};
    for (int i = 0; i < s->n; i++) {
        const struct seq_layer *l = &s->l[i];
        size_t out = (size_t)B * l->OC * l->OH * l->OW;
        if (out > z.gmax) z.gmax = out;
        if (l->kind == SEQ_GN && 2 * (size_t)B * l->G > z.stats) z.stats = 2 * (size_t)B * l->G;
        if (l->kind == SEQ_RES) {
            struct resblock_cfg c = res_cfg(l, B);
            if (resblock_acts_size(&c) > z.res) z.res = resblock_acts_size(&c);
        }
    }
    return z;
}

static void reserve(struct seqnet *s, int B, int train)
{
    if (s->B == B && (s->train || !train)) return;
    const struct sizes z = sizes_of(s, B);
    const size_t gmax = z.gmax, stats = z.stats, res = z.res;
    for (int pass = 0; pass < 2; pass++) {
        float *base = pass ? s->acts : NULL;
        size_t total = train ? 0 : 2 * gmax + stats + res;
        for (int i = 0; i < s->n; i++) {
            struct seq_layer *l = &s->l[i];
            size_t out = (size_t)B * l->OC * l->OH * l->OW;
            /* inference: output i%2, statistics at 2 gmax, resblocks after them */
            size_t at_out = train ? total : (size_t)(i % 2) * gmax, at_more = train ? total + out : 2 * gmax;
            if (base) l->out = base + at_out;
            if (train) total += out;
            if (l->kind == SEQ_GN) {
                if (base) l->mean = base + at_more, l->rstd = base + at_more + (size_t)B * l->G;
                if (train) total += 2 * (size_t)B * l->G;
            } else if (l->kind == SEQ_RES) {
                struct resblock_cfg c = res_cfg(l, B);
                if (base) resblock_acts_point(&l->racts, base + (train ? at_more : 2 * gmax + stats), &c);
                if (train) total += resblock_acts_size(&c);
            }
        }
        if (!pass) {
            free(s->acts);
            s->acts = tp_aligned_alloc(total * sizeof(float));
        }
    }
    free(s->g0);
    free(s->g1);
    s->g0 = train ? tp_aligned_alloc(gmax * sizeof(float)) : NULL;
    s->g1 = train ? tp_aligned_alloc(gmax * sizeof(float)) : NULL;
    s->gmax = gmax;
    s->B = B;
    s->train = train;
}

/* Layer l over B images: out from x, with the statistics (group norm) and
 * activations (resblock) given. */
static void layer_forward(const struct seq_layer *l, float *out, const float *x, int B, float *mean,
                          float *rstd, struct resblock_acts *racts)
{
    size_t nin = (size_t)B * l->C * l->H * l->W;
    switch (l->kind) {
    case SEQ_CONV: {
        struct conv2d_shape cs = conv_shape(l, B);
        conv2d_forward(out, x, l->w, l->b, &cs);
        break;
    }
    case SEQ_RES: {
        struct resblock_cfg c = res_cfg(l, B);
        resblock_forward(out, racts, x, &l->rw, &c);
        break;
    }
    case SEQ_GN:
        groupnorm_forward(out, mean, rstd, x, l->w, l->b, B, l->C, l->H * l->W, l->G, l->eps);
        break;
    case SEQ_SILU: silu_forward(out, x, nin); break;
    case SEQ_POOL: avgpool2_forward(out, x, B, l->C, l->H, l->W); break;
    case SEQ_UP: upsample2_forward(out, x, B, l->C, l->H, l->W); break;
    }
}

/* Chunks of about SEQ_CHUNK_FLOATS floats in the largest layer output
 * (chunks.h) */
#define SEQ_CHUNK_FLOATS 262144
static int chunks_of(const struct seqnet *s, int B) { return chunk_count(B, sizes_of(s, 1).gmax, SEQ_CHUNK_FLOATS); }

/* Inference in chunks of images (seqnet.h): each thread takes whole chunks
 * through every layer on its own buffers, the last layer writing into the
 * batch's output. */
static void forward_chunks(struct seqnet *s, const float *inp, int B, int chunks)
{
    const int seqs = (B + chunks - 1) / chunks, threads = chunk_threads(chunks);
    const struct sizes z = sizes_of(s, seqs);
    const struct seq_layer *last = &s->l[s->n - 1];
    const size_t in1 = (size_t)s->C * s->H * s->W, out1 = (size_t)last->OC * last->OH * last->OW;
#pragma omp parallel num_threads(threads)
    {
        float *mem = tp_aligned_alloc((2 * z.gmax + z.stats + z.res) * sizeof(float));
#pragma omp for schedule(static)
        for (int c = 0; c < chunks; c++) {
            int b0, nb;
            chunk_range(B, chunks, c, &b0, &nb);
            const float *x = inp + b0 * in1;
            for (int i = 0; i < s->n; i++) {
                const struct seq_layer *l = &s->l[i];
                float *out = i == s->n - 1 ? last->out + b0 * out1 : mem + (size_t)(i % 2) * z.gmax;
                struct resblock_acts ra;
                if (l->kind == SEQ_RES) {
                    struct resblock_cfg rc = res_cfg(l, nb);
                    resblock_acts_point(&ra, mem + 2 * z.gmax + z.stats, &rc);
                }
                float *mean = mem + 2 * z.gmax, *rstd = mean + (size_t)nb * l->G;
                layer_forward(l, out, x, nb, mean, rstd, &ra);
                x = out;
            }
        }
        free(mem);
    }
}

/* Training in SEQ_TRAIN_CHUNKS chunks of images, one thread each (chunk
 * count fixed, not the threads': the same bits at any thread count). A
 * chunk goes through every layer forward, and back, on its own slice of the
 * batch's activations and gradient buffers, single-threaded inside, its
 * weight gradients into its own buffer, added chunk by chunk in order at
 * the end. The threads meet once a pass: layer by layer they met at every
 * layer's loops, and with passive waiting each meeting woke a sleeping
 * thread, 20-40 us on this machine's virtual CPUs (a vqgan-tiny step in one
 * process switched context about 490 times, in two chunks 100). */
#define SEQ_TRAIN_CHUNKS 2
static int train_chunks(int B) { return B < SEQ_TRAIN_CHUNKS ? B : SEQ_TRAIN_CHUNKS; }

/* Layer l's outputs and saved statistics from image b0 on (every buffer is
 * batch-major), as the layer over those images takes them. */
static struct seq_layer layer_slice(const struct seq_layer *l, int b0)
{
    struct seq_layer v = *l;
    v.out += (size_t)b0 * l->OC * l->OH * l->OW;
    if (l->kind == SEQ_GN) v.mean += (size_t)b0 * l->G, v.rstd += (size_t)b0 * l->G;
    if (l->kind == SEQ_RES) {
        struct resblock_cfg c = res_cfg(l, 1);
        v.racts = resblock_acts_slice(&l->racts, b0, &c);
    }
    return v;
}

/* Images b0..b0+nb forward through every layer (inp: image b0's input). */
static void train_forward_range(struct seqnet *s, const float *inp, int b0, int nb)
{
    const float *x = inp;
    for (int i = 0; i < s->n; i++) {
        struct seq_layer v = layer_slice(&s->l[i], b0);
        layer_forward(&v, v.out, x, nb, v.mean, v.rstd, &v.racts);
        x = v.out;
    }
}

const float *seqnet_forward(struct seqnet *s, const float *inp, int B, int train)
{
    reserve(s, B, train);
    const int chunks = s->n ? chunks_of(s, B) : 1;
    if (!train && chunks >= 2) {
        forward_chunks(s, inp, B, chunks);
        return s->l[s->n - 1].out;
    }
    const int tchunks = train_chunks(B);
    if (tchunks < 2) {
        train_forward_range(s, inp, 0, B);
        return s->n ? s->l[s->n - 1].out : inp;
    }
    const size_t in1 = (size_t)s->C * s->H * s->W;
#pragma omp parallel for schedule(static) num_threads(chunk_threads(tchunks))
    for (int c = 0; c < tchunks; c++) {
        int b0, nb;
        chunk_range(B, tchunks, c, &b0, &nb);
        train_forward_range(s, inp + b0 * in1, b0, nb);
    }
    return s->n ? s->l[s->n - 1].out : inp;
}

/* Images b0..b0+nb back through every layer: dout, dinp and inp at image
 * b0, g0 and g1 the range's gradient buffers; the weight gradients go
 * where `layers` (s's layers, or copies pointing elsewhere) point. */
static void train_backward_range(const struct seqnet *s, const struct seq_layer *layers, int b0, int nb,
                                 float *dinp, const float *dout, const float *inp, float *g0, float *g1)
{
    const float *g = dout;
    for (int i = s->n - 1; i >= 0; i--) {
        const struct seq_layer l = layer_slice(&layers[i], b0);
        const float *x = i > 0 ? layer_slice(&layers[i - 1], b0).out : inp;
        size_t nin = (size_t)nb * l.C * l.H * l.W;
        /* the first layer writes straight into dinp (which accumulates) */
        float *dx = i > 0 ? (g == g0 ? g1 : g0) : dinp;
        if (i > 0) memset(dx, 0, nin * sizeof(float));
        if (!dx && l.kind != SEQ_CONV && l.kind != SEQ_RES && l.kind != SEQ_GN) break;
        switch (l.kind) {
        case SEQ_CONV: {
            struct conv2d_shape cs = conv_shape(&l, nb);
            conv2d_backward(dx, l.dw, l.db, g, x, l.w, &cs);
            break;
        }
        case SEQ_RES: {
            struct resblock_cfg c = res_cfg(&l, nb);
            struct resblock_acts ra = l.racts;
            resblock_backward(dx, &l.rdw, g, x, &l.rw, &ra, &c);
            break;
        }
        case SEQ_GN:
            groupnorm_backward(dx, l.dw, l.db, g, x, l.w, l.mean, l.rstd, nb, l.C, l.H * l.W, l.G);
            break;
        case SEQ_SILU: silu_backward(dx, g, x, nin); break;
        case SEQ_POOL: avgpool2_backward(dx, g, nb, l.C, l.H, l.W); break;
        case SEQ_UP: upsample2_backward(dx, g, nb, l.C, l.H, l.W); break;
        }
        g = dx;
    }
}

/* Layer l pointing its weight gradients into base (s->pgrad's place) */
static void layer_grads_to(struct seq_layer *l, const struct seqnet *s, float *base)
{
    if (l->kind == SEQ_RES) {
        resblock_weights_point(&l->rdw, base + (l->poff - s->poff), l->C, l->OC);
    } else if (l->dw) {
        l->dw = base + (l->dw - s->pgrad);
        if (l->db) l->db = base + (l->db - s->pgrad);
    }
}

void seqnet_backward(struct seqnet *s, float *dinp, const float *dout, const float *inp)
{
    const int B = s->B;
    TP_ASSERT(B > 0 && s->train);
    const int tchunks = train_chunks(B);
    if (tchunks < 2 || !s->pgrad) {
        train_backward_range(s, s->l, 0, B, dinp, dout, inp, s->g0, s->g1);
        return;
    }
    int OC, OH, OW;
    seqnet_out_dims(s, &OC, &OH, &OW);
    const size_t in1 = (size_t)s->C * s->H * s->W, out1 = (size_t)OC * OH * OW, g1n = s->gmax / B;
    float *partial = tp_calloc((size_t)tchunks * s->pfloats, sizeof(float));
#pragma omp parallel for schedule(static) num_threads(chunk_threads(tchunks))
    for (int c = 0; c < tchunks; c++) {
        int b0, nb;
        chunk_range(B, tchunks, c, &b0, &nb);
        struct seq_layer *layers = tp_malloc((size_t)s->n * sizeof *layers);
        for (int i = 0; i < s->n; i++) {
            layers[i] = s->l[i];
            layer_grads_to(&layers[i], s, partial + (size_t)c * s->pfloats);
        }
        train_backward_range(s, layers, b0, nb, dinp ? dinp + b0 * in1 : NULL, dout + b0 * out1,
                             inp + b0 * in1, s->g0 + b0 * g1n, s->g1 + b0 * g1n);
        free(layers);
    }
    chunk_parts_add(s->pgrad, partial, tchunks, s->pfloats, s->pfloats);
    free(partial);
}
