/* cli.h - what every tool shares: program name, errors and exit codes,
 * signals, thread count, progress.
 *
 * Exit codes (DESIGN.md section 5): 0 success, 1 runtime error, 2 usage error.
 * Errors are one line on stderr: "tool: file: what was wrong".
 */
#ifndef TP_CLI_H
#define TP_CLI_H

#include <stdint.h>

#include "err.h"

#define TP_VERSION "0.1.0"

extern const char *tp_progname;

/* Set the program name, ignore SIGPIPE (writes then fail with EPIPE and the
 * tool exits 1), and remove registered temporary files on SIGINT/SIGTERM. */
void cli_init(int argc, char **argv);

/* "prog: message" and exit 1, removing temporary files. */
_Noreturn void die(const char *fmt, ...) TP_PRINTF(1, 2);
/* die() with the current lib/ error message (tp_err()). */
_Noreturn void die_err(void);
/* "prog: message" + "Try 'prog -h'." and exit 2. */
_Noreturn void die_usage(const char *fmt, ...) TP_PRINTF(1, 2);
/* "prog: message" without exiting. */
void warnmsg(const char *fmt, ...) TP_PRINTF(1, 2);

/* Print version and exit 0. */
_Noreturn void cli_version(void);

/* Parse numbers strictly (whole string, range); die_usage on failure. */
long cli_long(const char *opt, const char *s, long lo, long hi);
double cli_double(const char *opt, const char *s, double lo, double hi);

/* Threads for OpenBLAS and the library's own OpenMP loops: one pool.
 * n <= 0: all cores. */
void tp_threads_set(int n);
int tp_threads(void);

/* Progress on stderr (records, rate, ETA) when stderr is a terminal or
 * forced. total < 0: unknown. */
struct progress {
    int enabled;
    long total, done;
    double t0, last;
    const char *what;
    char note[96]; /* shown after the rate, e.g. "loss 0.0312" */
};
void progress_init(struct progress *p, const char *what, long total, int force);
void progress_step(struct progress *p, long n);
void progress_end(struct progress *p);

/* Seconds on a monotonic clock. */
double tp_now(void);

#endif
