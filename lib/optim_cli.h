/* optim_cli.h - the optimizer's command-line flags, shared by `optim` and
 * every training tool in stream mode, so both read the same flags into the
 * same struct optim_cfg (and so give the same bits).
 *
 *   --lr X --betas B1,B2 --eps X --wd X --sgd --momentum X
 *   --schedule constant|cosine --warmup N --total N --end-lr X
 *   --clip X --freeze REGEX
 */
#ifndef TP_OPTIM_CLI_H
#define TP_OPTIM_CLI_H

#include <getopt.h>

#include "optim.h"

#define OPTIM_CLI_BASE 0x4000 /* option codes OPTIM_CLI_BASE.. are ours */

/* The long options, terminated by a zero entry. */
extern const struct option optim_cli_options[];
/* Usage lines for the options, for -h. */
extern const char optim_cli_usage[];

/* Handle one option code: 1 if it was ours, 0 if not. A bad value is a
 * usage error (die_usage, exit 2). */
int optim_cli_parse(struct optim_cfg *c, int code, const char *arg);

/* Append src's entries (up to its zero entry) to the table at dst, which
 * has room; returns the new count. */
int options_append(struct option *dst, int n, const struct option *src);

#endif
