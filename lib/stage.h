/* stage.h - the driver every trainable tool (encode, vq, decode,
 * transformer) runs: DESIGN.md section 4, both modes.
 *
 *   init:     TOOL --init -w W --arch PRESET [--set k=v]... [--seed S]
 *   forward:  TOOL -w W [--training] < in.tz > out.tz
 *   backward: TOOL -w W --backward in.tz [-g W.grad] < out.grad.tz > in.grad.tz
 *   stream:   TOOL -w W --train [--grad-in FIFO] [--grad-out FIFO] [-s STATE]
 *                  [--ema E --ema-decay D] [--ckpt-dir DIR --ckpt-every N]
 *                  [--start-step S] [optimizer flags] < in.tz > out.tz
 *
 * Step mode: forward with --training (train = 1: dropout, statistics) writes
 * the outputs; --backward recomputes that forward from in.tz, reads the
 * output gradients record by record, writes the input gradients, and sums
 * the parameter gradients over the records into -g. `optim` then updates.
 *
 * Stream mode, per record: read input, zero the gradients, forward, write
 * the output downstream, read the output gradient from --grad-in, backward,
 * write the input gradient to --grad-out (absent for the first stage),
 * update in-process with the optimizer library (the same code and flags as
 * `optim`), EMA, checkpoint every N steps. The FIFOs are opened at start,
 * --grad-in (reading) before --grad-out (writing): every stage opening in
 * that order lets the opens complete from the loss end backwards, so the
 * pipeline cannot deadlock on them.
 *
 * Checkpoints (stream mode): DIR/step-NNNNNNNN.{weights,state,ema}.safetensors
 * then DIR/step-NNNNNNNN.done, each atomic; the last two generations are
 * kept, so after a kill every stage still has the newest step all stages
 * completed. --start-step S resumes from DIR's step S (the make recipe
 * picks the newest S done by every stage and tells the data source too).
 */
#ifndef TP_STAGE_H
#define TP_STAGE_H

#include "module.h"

struct stage_tool {
    const char *name;                          /* tool name */
    const char *summary;                       /* one line for -h */
    const struct module_ops *const *ops;       /* NULL-terminated */
    /* presets: pairs {name, "k=v k=v ..."} ending with {NULL, NULL}; "arch" is one key */
    const char *const (*presets)[2];
    const char *fields;                        /* -h text: fields read/written */
};

/* Parse argv and run; returns the exit status (errors exit directly). */
int stage_main(const struct stage_tool *tool, int argc, char **argv);

#endif
