/* cli.c - shared tool plumbing (see cli.h). */
#include "cli.h"
#include "blas.h"
#include "io.h"
#include "tz.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const char *tp_progname = "tokpipe";
static int threads_n = 1;

static void on_fatal_signal(int sig)
{
    io_tmp_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* TP_FLOPS=FILE: at exit, append "NAME GFLOP ZSTD_S": this process's matrix
 * products (blas.h) and its seconds in zstd (tz.h), in one write, so that
 * the stages of a pipeline can share the file. */
static void report_flops(void)
{
    const char *path = getenv("TP_FLOPS");
    int fd = path && *path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
    if (fd < 0) return;
    char line[128];
    int n = snprintf(line, sizeof line, "%s %.6f %.6f\n", tp_progname, (double)tp_flops() * 1e-9,
                     tz_zstd_seconds());
    if (write(fd, line, (size_t)n) != n) warnmsg("TP_FLOPS: %s: write failed", path);
    close(fd);
}

void cli_init(int argc, char **argv)
{
    (void)argc;
    if (argv && argv[0]) {
        const char *s = strrchr(argv[0], '/');
        tp_progname = s ? s + 1 : argv[0];
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGHUP, on_fatal_signal);
    /* A tool reuses large buffers record after record. By default glibc
     * returns buffers over its mmap threshold to the kernel when freed and
     * trims the heap, so each record paid its page faults again (a VQGAN
     * decoder over 4 records of 256: 13,128 faults, 7,000 with these). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
    tp_threads_set(0);
    if (getenv("TP_FLOPS")) atexit(report_flops);
}

static void vmsg(const char *fmt, va_list ap)
{
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt, ap);
    /* one line, always */
    for (char *p = buf; *p; p++)
        if (*p == '\n') *p = ' ';
    fprintf(stderr, "%s: %s\n", tp_progname, buf);
}

void warnmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    io_tmp_cleanup();
    exit(1);
}

void die_err(void) { die("%s", tp_err()); }

void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s -h' for more information.\n", tp_progname);
    io_tmp_cleanup();
    exit(2);
}

void cli_version(void)
{
    printf("%s (tokpipe) %s\n", tp_progname, TP_VERSION);
    exit(0);
}

long cli_long(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        die_usage("%s: '%s' is not an integer", opt, s);
    if (v < lo || v > hi)
        die_usage("%s: %ld is out of range [%ld, %ld]", opt, v, lo, hi);
    return v;
}

double cli_double(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        die_usage("%s: '%s' is not a number", opt, s);
    if (v < lo || v > hi)
        die_usage("%s: %g is out of range [%g, %g]", opt, v, lo, hi);
    return v;
}

void tp_threads_set(int n)
{
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    threads_n = n;
    openblas_set_num_threads(n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

int tp_threads(void) { return threads_n; }

double tp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_init(struct progress *p, const char *what, long total, int force)
{
    p->enabled = force || isatty(STDERR_FILENO);
    p->total = total;
    p->done = 0;
    p->t0 = p->last = tp_now();
    p->what = what;
    p->note[0] = 0;
}

static void progress_print(struct progress *p, int final)
{
    double el = tp_now() - p->t0;
    double rate = el > 0 ? p->done / el : 0;
    if (p->total > 0 && rate > 0 && !final)
        fprintf(stderr, "\r%s: %ld/%ld %s  %.2f/s  ETA %.0fs  %s   ", tp_progname,
                p->done, p->total, p->what, rate, (p->total - p->done) / rate, p->note);
    else
        fprintf(stderr, "\r%s: %ld %s  %.2f/s  %.1fs  %s   ", tp_progname, p->done,
                p->what, rate, el, p->note);
    if (final) fputc('\n', stderr);
}

void progress_step(struct progress *p, long n)
{
    p->done += n;
    if (!p->enabled) return;
    double t = tp_now();
    if (t - p->last < 0.25) return;
    p->last = t;
    progress_print(p, 0);
}

void progress_end(struct progress *p)
{
    if (p->enabled) progress_print(p, 1);
}
