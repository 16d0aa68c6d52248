/* seqnet.h - a chain of convolutional layers run forward and backward in
 * order: what the MaskGIT-VQGAN encoder and decoder (vqgan.c) are.
 *
 * Each layer reads the previous layer's output (the first reads the
 * network input). In training every layer keeps its own output and saved
 * statistics, so the backward pass walks the chain in reverse with two
 * gradient buffers; inference needs two outputs at a time, and the layers
 * take turns with them (a decoder over 256 images at 32x32 touches a tenth
 * of the memory, and a fresh page costs as much as the work on it). An
 * inference forward runs in chunks of images (about SEQ_CHUNK_FLOATS
 * floats in the largest layer output, an even count of chunks, cut by the
 * batch alone) that the threads take whole through every layer on their
 * own buffers, single-threaded inside: a chunk's layers stay in the core's
 * cache, and the bits are a whole batch's (every layer works image by
 * image). Training runs in two chunks of images too (seqnet.c,
 * SEQ_TRAIN_CHUNKS), each chunk's weight gradients summed apart and added
 * in order: the same bits at any thread count.
 * Parameters are added to a params table as layers are added, in upstream
 * state_dict order, and pointed into its buffer by seqnet_bind.
 *
 * Layer kinds: conv2d (SAME padding, optional bias), resblock (resblock.h),
 * groupnorm (affine), silu, avgpool 2x2, nearest upsample x2.
 * Dimensions: B batch; each layer's input C,H,W and output OC,OH,OW.
 */
#ifndef TP_SEQNET_H
#define TP_SEQNET_H

#include "conv2d.h"
#include "params.h"
#include "resblock.h"

enum seq_kind { SEQ_CONV, SEQ_RES, SEQ_GN, SEQ_SILU, SEQ_POOL, SEQ_UP };

struct seq_layer {
    enum seq_kind kind;
    int C, H, W, OC, OH, OW;     /* per image */
    int k, bias, G;              /* conv kernel, has bias; groupnorm groups */
    float eps;
    size_t poff;                 /* offset of the first parameter */
    /* bound at seqnet_bind / seqnet_reserve */
    float *w, *b, *dw, *db;      /* conv weight/bias or groupnorm weight/bias */
    struct resblock_weights rw, rdw;
    struct resblock_acts racts;
    float *out;                  /* [B,OC,OH,OW] */
    float *mean, *rstd;          /* groupnorm [B,G] */
};

struct seqnet {
    int n, cap;
    struct seq_layer *l;
    int C, H, W;                 /* network input per image */
    int B;                       /* batch the buffers are sized for (0: none) */
    int train;                   /* ... with every layer's activations kept */
    float *acts;                 /* one block for the layers' activations */
    float *g0, *g1;              /* gradient ping-pong buffers */
    size_t gmax;                 /* floats per gradient buffer */
    /* the layers' parameters: their offset and floats in the params
     * buffers, and their first gradient (NULL: no gradients) */
    size_t poff, pfloats;
    float *pgrad;
};

void seqnet_init(struct seqnet *s, int C, int H, int W);
void seqnet_free(struct seqnet *s);
/* Output dims of the last layer (of the input if empty). */
void seqnet_out_dims(const struct seqnet *s, int *C, int *H, int *W);

/* Add layers; name prefixes are upstream's (e.g. "encoder.conv_in."). */
void seqnet_conv(struct seqnet *s, struct params *p, const char *prefix, int OC, int k, int bias);
void seqnet_res(struct seqnet *s, struct params *p, const char *prefix, int OC);
void seqnet_gn(struct seqnet *s, struct params *p, const char *prefix, int G, float eps);
void seqnet_silu(struct seqnet *s);
void seqnet_pool(struct seqnet *s);
void seqnet_up(struct seqnet *s);

/* Point every layer's weights and gradients into p (after params_alloc). */
void seqnet_bind(struct seqnet *s, struct params *p);

/* out points at the last layer's output [B,OC,OH,OW] (valid until the next
 * forward). train: keep what backward needs; inp [B,C,H,W] must then stay
 * alive until backward. */
const float *seqnet_forward(struct seqnet *s, const float *inp, int B, int train);
/* After a training forward. dout [B,OC,OH,OW]; dinp (may be NULL) gets +=
 * the input gradient. */
void seqnet_backward(struct seqnet *s, float *dinp, const float *dout, const float *inp);

#endif
