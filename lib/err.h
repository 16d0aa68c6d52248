/* err.h - how lib/ reports failure.
 *
 * A lib/ function that can fail on bad input or I/O returns -1 (or NULL) after
 * calling tp_err_set(); the message is one line, kept per thread, and says
 * what was wrong ("record 3: field 'image': dtype I32, expected F32").
 * Callers add context with tp_err_prefix() as the error travels up, and only
 * tools/ turn it into an exit (cli.h: die()).
 *
 * Broken invariants (programmer errors) are not reported this way: they
 * abort through TP_ASSERT, and no test may ever reach one.
 */
#ifndef TP_ERR_H
#define TP_ERR_H

#include <stdio.h>
#include <stdlib.h>

#define TP_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* The last error message of this thread ("" if none). */
const char *tp_err(void);

/* Set the message; returns -1 so that `return tp_err_set(...)` reads well. */
int tp_err_set(const char *fmt, ...) TP_PRINTF(1, 2);

/* Put context in front of the current message: "ctx: old message". Returns -1. */
int tp_err_prefix(const char *fmt, ...) TP_PRINTF(1, 2);

/* Set the message from errno: "what: strerror(errno)". Returns -1. */
int tp_err_errno(const char *fmt, ...) TP_PRINTF(1, 2);

#define TP_ASSERT(x)                                                          \
    do {                                                                      \
        if (!(x)) {                                                           \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__,       \
                    __LINE__, #x);                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* malloc/calloc/realloc that abort on exhaustion: running out of memory is
 * not an input error we can name, and every caller would only die anyway. */
void *tp_malloc(size_t n);
void *tp_calloc(size_t n, size_t size);
void *tp_realloc(void *p, size_t n);
char *tp_strdup(const char *s);
/* tp_malloc for a record's buffer, whose size drifts by a few bytes from
 * record to record (a longer metadata value): from 1 MiB on, rounded up to
 * whole MiB, so the next record fits the place the last one freed. An
 * exact size grows the heap at each new longest record, which a long run
 * sees as a step in resident memory. From TP_HUGE_MIN on, whole huge pages
 * of size, advised onto huge pages where they fall (a fresh 8 MB record
 * buffer took 2000 page faults), and plain malloc: a record's buffers are
 * made and freed at every record, and malloc gives a freed block of the
 * same size back, where posix_memalign asks for the size plus its
 * alignment and so grew the heap into fresh pages at every step (65 huge
 * page faults in 8 steps of loss ce). 16-byte aligned. */
void *tp_malloc_record(size_t n);
/* n bytes 64-byte aligned inside a tp_malloc_record block (*block: what
 * to free): buffers made and freed per record or per call that want
 * tp_aligned_alloc's alignment without its posix_memalign. */
void *tp_malloc_record_aligned(size_t n, void **block);
/* What they call on exhaustion: a message, then abort. */
void tp_out_of_memory(size_t n);
/* 64-byte aligned allocation for tensor data (free with free()); from
 * TP_HUGE_MIN bytes on, 2 MiB aligned and advised onto huge pages. */
#define TP_HUGE_MIN ((size_t)2 << 20)
void *tp_aligned_alloc(size_t n);
/* madvise(MADV_HUGEPAGE) where the system has it. */
void tp_advise_huge(void *p, size_t n);

#endif
