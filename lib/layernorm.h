/* layernorm.h - layer normalisation over the last dimension, torch
 * nn.LayerNorm semantics (biased variance, eps inside the square root).
 *
 * Dimensions: BT rows, C features per row.
 *   out[r,c] = (inp[r,c] - mean[r]) * rstd[r] * weight[c] + bias[c]
 *   rstd[r]  = 1 / sqrt(var[r] + eps)
 * eps: 1e-5 for TiTok's ViT (torch default), 1e-12 for BERT and MaskGIT.
 * Forward saves mean [BT] and rstd [BT] for backward. Backward accumulates
 * (+=) into dinp [BT,C], dweight [C] and dbias [C]; any may be NULL.
 * Row statistics are accumulated in double; parameter gradients are summed
 * over rows with each thread owning a slice of features (deterministic).
 */
#ifndef TP_LAYERNORM_H
#define TP_LAYERNORM_H

#define LN_EPS_VIT 1e-5f
#define LN_EPS_BERT 1e-12f

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int BT, int C,
                       float eps);
void layernorm_backward(float *dinp, float *dweight, float *dbias,
                        const float *dout, const float *inp,
                        const float *weight, const float *mean,
                        const float *rstd, int BT, int C);

#endif
