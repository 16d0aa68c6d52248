/* layout.h - moving channels between NCHW (convolutions) and NHWC (token
 * sequences: latent [B,h,w,D], one D-vector per position). */
#ifndef TP_LAYOUT_H
#define TP_LAYOUT_H

/* out[b,p,c] = inp[b,c,p] for P = H*W positions. */
void nchw_to_nhwc(float *out, const float *inp, int B, int C, int P);
/* out[b,c,p] = inp[b,p,c]. */
void nhwc_to_nchw(float *out, const float *inp, int B, int C, int P);

#endif
