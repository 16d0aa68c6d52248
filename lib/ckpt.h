/* ckpt.h - the checkpoint layout every training stage shares (the trainable
 * tools and the loss stage's critic), so one rule finds a resumable step:
 *   DIR/step-NNNNNNNN.WHAT   the files of step N (weights.safetensors, ...)
 *   DIR/step-NNNNNNNN.done   written last, atomically: step N is complete
 * Two generations are kept: after a kill, stages may stand one apart, and
 * each still has the newest step all of them finished.
 */
#ifndef TP_CKPT_H
#define TP_CKPT_H

#include <stddef.h>

/* DIR/step-NNNNNNNN.WHAT into buf. */
void ckpt_path(char *buf, size_t n, const char *dir, long step, const char *what);
/* Write the done marker of step (atomically), then remove the files of
 * steps older than step - every. -1 and tp_err() if the marker fails. */
int ckpt_finish(const char *dir, long step, long every);

#endif
