/* linear.h - fully connected layer, torch nn.Linear layout.
 *
 * Dimensions: BT rows (batch x sequence, flattened), C input features,
 * OC output features.
 *   out[BT,OC] = inp[BT,C] @ weight[OC,C]^T + bias[OC]
 * bias may be NULL (no bias); out must not alias inp. Backward accumulates
 * (+=) into dinp [BT,C], dweight [OC,C] and dbias [OC]; any of them may be
 * NULL to skip it.
 * Products go through cblas_sgemm; the bias gradient is a column sum
 * split over output features, so each thread owns its sums and results are
 * the same bits on every run at a fixed thread count.
 */
#ifndef TP_LINEAR_H
#define TP_LINEAR_H

void linear_forward(float *out, const float *inp, const float *weight,
                    const float *bias, int BT, int C, int OC);
void linear_backward(float *dinp, float *dweight, float *dbias,
                     const float *dout, const float *inp, const float *weight,
                     int BT, int C, int OC);

#endif
