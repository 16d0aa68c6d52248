/* err.c - per-thread one-line error messages (see err.h). */
#include "err.h"

#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>

#define TP_ERR_MAX 1024

static _Thread_local char err_msg[TP_ERR_MAX];

const char *tp_err(void) { return err_msg; }

int tp_err_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    return -1;
}

int tp_err_prefix(const char *fmt, ...)
{
    char old[TP_ERR_MAX], ctx[TP_ERR_MAX];
    va_list ap;
    memcpy(old, err_msg, sizeof old);
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    snprintf(err_msg, sizeof err_msg, "%s: %s", ctx, old);
    return -1;
}

int tp_err_errno(const char *fmt, ...)
{
    char what[TP_ERR_MAX];
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(err_msg, sizeof err_msg, "%s: %s", what, strerror(e));
    return -1;
}

void tp_out_of_memory(size_t n)
{
    fprintf(stderr, "tokpipe: out of memory (allocating %zu bytes)\n", n);
    abort();
}

void *tp_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) tp_out_of_memory(n);
    return p;
}

void *tp_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) tp_out_of_memory(n * size);
    return p;
}

void *tp_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) tp_out_of_memory(n);
    return q;
}

char *tp_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = tp_malloc(n);
    memcpy(d, s, n);
    return d;
}

void *tp_malloc_record(size_t n)
{
    size_t mib = (size_t)1 << 20;
    /* from 2 MiB on, huge pages: a record's fresh buffer of 8 MB took 2000
     * page faults, 41 ms of the first record's decompression */
    if (n >= TP_HUGE_MIN) {
        const size_t rounded = (n + TP_HUGE_MIN - 1) & ~(TP_HUGE_MIN - 1);
        char *p = tp_malloc(rounded);
        /* the huge pages inside it */
        uintptr_t a = ((uintptr_t)p + TP_HUGE_MIN - 1) & ~(uintptr_t)(TP_HUGE_MIN - 1),
                  e = ((uintptr_t)p + rounded) & ~(uintptr_t)(TP_HUGE_MIN - 1);
        if (e > a) tp_advise_huge((void *)a, e - a);
        return p;
    }
    return tp_malloc(n >= mib ? (n + mib - 1) & ~(mib - 1) : n);
}

void *tp_malloc_record_aligned(size_t n, void **block)
{
    *block = tp_malloc_record(n + 63);
    return (void *)(((uintptr_t)*block + 63) & ~(uintptr_t)63);
}

void *tp_aligned_alloc(size_t n)
{
    void *p = NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded >= TP_HUGE_MIN) {
        /* activations and weights: on 2 MiB pages where the kernel has them
         * (transparent huge pages on request), one page fault instead of 512 */
        rounded = (rounded + TP_HUGE_MIN - 1) & ~(TP_HUGE_MIN - 1);
        if (posix_memalign(&p, TP_HUGE_MIN, rounded) != 0) tp_out_of_memory(n);
        tp_advise_huge(p, rounded);
        return p;
    }
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) tp_out_of_memory(n);
    return p;
}

void tp_advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    madvise(p, n, MADV_HUGEPAGE); /* advice: no harm where it is refused */
#else
    (void)p, (void)n;
#endif
}
