/* io.h - checked I/O and atomic outputs.
 *
 * Every file tokpipe writes is first an unnamed file in the same directory
 * (O_TMPFILE), is flushed and fsync'd, then linked as ".NAME.tmp.PID" and
 * renamed over NAME: a killed run never leaves a half-written file, and a
 * SIGKILL before the commit leaves nothing at all. Where the file system
 * (or a missing /proc) cannot do that, the file is written under the
 * temporary name from the start. Temporary names are registered so that
 * die() and the signal handlers (cli.h) remove them.
 */
#ifndef TP_IO_H
#define TP_IO_H

#include <stddef.h>
#include <sys/uio.h>
#include <stdint.h>

/* Write all n bytes, retrying on EINTR/short writes. -1 on error. */
int io_write_all(int fd, const void *buf, size_t n, const char *name);
/* The same for n pieces in order (writev), partial writes resumed. */
int io_writev_all(int fd, const struct iovec *iov, int n, const char *name);
/* Read up to n bytes, retrying until n or EOF. Returns bytes read, -1 on error. */
long io_read_full(int fd, void *buf, size_t n, const char *name);
/* Read a whole file (or fd) into a malloc'd buffer with a size cap. */
int io_slurp_fd(int fd, const char *name, size_t cap, void **buf, size_t *n);
int io_slurp(const char *path, size_t cap, void **buf, size_t *n);

/* An output that is either stdout or an atomically written file. */
struct io_out {
    int fd;
    char *path;  /* final name, NULL for stdout */
    char *tmp;   /* temporary name; NULL when writing in place */
    int unnamed; /* an O_TMPFILE file, named tmp only at commit */
};

/* path NULL or "-": stdout. An existing device, FIFO or socket (/dev/null, a
 * pipe): written in place, since renaming over it would replace it with a
 * regular file. Else a temporary file renamed over path on commit. */
int io_out_open(struct io_out *o, const char *path);
/* fsync, close and rename into place (files); for stdout only checks. */
int io_out_commit(struct io_out *o);
/* Remove the temporary file, if any. */
void io_out_abort(struct io_out *o);
/* The name to use in messages ("stdout" or the path). */
const char *io_out_name(const struct io_out *o);

/* Write a buffer to path atomically. */
int io_write_file_atomic(const char *path, const void *buf, size_t n);

/* Temporary-file registry used by die() and signal handlers. */
void io_tmp_register(const char *path);
void io_tmp_unregister(const char *path);
/* Unlink every registered temporary file (async-signal-safe). */
void io_tmp_cleanup(void);

/* mkdir -p; -1 on error. */
int io_mkdirs(const char *path);

#endif
