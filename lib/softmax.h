/* softmax.h - softmax over the last dimension, numerically stable (the row
 * maximum is subtracted before exp).
 *
 * Dimensions: N rows of V entries, contiguous.
 *   out[n,v] = exp(inp[n,v] - lse[n]),  lse[n] = log sum_v exp(inp[n,v])
 * exp runs in float, the sum of a row in double. A row must hold at least
 * one finite entry; -INFINITY entries (masked out) get probability 0.
 *
 * Row helpers are serial, for callers that run their own parallel loop (the
 * attention heads, the cross-entropy loss, the samplers); the [N,V] layer
 * functions parallelise over rows. Backward accumulates (+=) into dinp and
 * needs the forward's output (the probabilities), not its input.
 */
#ifndef TP_SOFTMAX_H
#define TP_SOFTMAX_H

/* One row: out = softmax(inp) (out may alias inp); returns lse, so that
 * log p[v] = inp[v] - lse (the cross-entropy loss needs both). */
float softmax_row(float *out, const float *inp, int V);
/* The same probabilities without lse (its log, 3% of a row of 33). */
void softmax_probs_row(float *out, const float *inp, int V);
/* One row: dinp += p * (dout - sum(dout * p)), p the forward's output. */
void softmax_row_backward(float *dinp, const float *dout, const float *p, int V);
/* The same gradient written over dout instead of added: d = p * (d - sum(d * p)). */
void softmax_row_backward_inplace(float *d, const float *p, int V);
/* log sum exp of one row, stable. */
float logsumexp_row(const float *inp, int V);
/* One row: out = inp - logsumexp(inp) (out may alias inp). */
void log_softmax_row(float *out, const float *inp, int V);

/* The layer over [N,V]: parallel over rows. */
void softmax_forward(float *out, const float *inp, int N, int V);
void softmax_backward(float *dinp, const float *dout, const float *out, int N, int V);

#endif
