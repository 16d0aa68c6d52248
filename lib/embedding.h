/* embedding.h - token embedding lookup and learned position embeddings.
 *
 * Dimensions: B batch, T sequence, N = B*T tokens, V table rows
 * (vocabulary), C channels.
 *   embedding:  out[n,:] = table[ids[n],:]         table [V,C], ids I32 [N]
 *   position:   out[b,t,:] = inp[b,t,:] + pos[t,:]  pos [T,C]
 * ids come from data: check them with embedding_check_ids before the
 * forward, which treats an id out of [0,V) as a broken invariant.
 *
 * Backward accumulates (+=). The table gradient sums the rows of dout that
 * share an id; to keep those sums deterministic the work is split over
 * channels (each thread owns a column slice of dtable and walks the tokens
 * in order), never over tokens. The position gradient sums over the batch
 * with each thread owning elements of dpos.
 */
#ifndef TP_EMBEDDING_H
#define TP_EMBEDDING_H

#include <stdint.h>

/* 0 if every id is in [0,V); else -1 and "id X at position n outside [0,V)". */
int embedding_check_ids(const int32_t *ids, long N, int V);

void embedding_forward(float *out, const int32_t *ids, const float *table,
                       int N, int V, int C);
void embedding_backward(float *dtable, const float *dout, const int32_t *ids,
                        int N, int V, int C);

/* out may alias inp. Backward: dinp += dout (NULL to skip) and
 * dpos[t,:] += sum_b dout[b,t,:] (NULL to skip). */
void embedding_pos_forward(float *out, const float *inp, const float *pos,
                           int B, int T, int C);
void embedding_pos_backward(float *dinp, float *dpos, const float *dout,
                            int B, int T, int C);

#endif
