/* io.c - checked I/O and atomic outputs (see io.h). */
#include "io.h"
#include "err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int io_write_all(int fd, const void *buf, size_t n, const char *name)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return tp_err_errno("%s: write error", name);
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int io_writev_all(int fd, const struct iovec *iov, int n, const char *name)
{
    struct iovec v[64];
    while (n > 0) {
        int k = n < 64 ? n : 64; /* a copy to advance in, within IOV_MAX */
        memcpy(v, iov, sizeof(struct iovec) * (size_t)k);
        int i = 0;
        while (i < k) {
            ssize_t w = writev(fd, v + i, k - i);
            if (w < 0) {
                if (errno == EINTR) continue;
                return tp_err_errno("%s: write error", name);
            }
            size_t left = (size_t)w; /* past the pieces written whole */
            while (i < k && left >= v[i].iov_len) left -= v[i++].iov_len;
            if (i < k) v[i].iov_base = (char *)v[i].iov_base + left, v[i].iov_len -= left;
        }
        iov += k, n -= k;
    }
    return 0;
}

long io_read_full(int fd, void *buf, size_t n, const char *name)
{
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, p + got, n - got);
        if (k < 0) {
            if (errno == EINTR) continue;
            return tp_err_errno("%s: read error", name);
        }
        if (k == 0) break;
        got += (size_t)k;
    }
    return (long)got;
}

int io_slurp_fd(int fd, const char *name, size_t cap, void **buf, size_t *n)
{
    size_t size = 0, alloc = 1 << 16;
    char *b = tp_malloc(alloc);
    for (;;) {
        if (size == alloc) {
            if (alloc >= cap) {
                free(b);
                return tp_err_set("%s: larger than the limit of %zu bytes", name, cap);
            }
            alloc = alloc * 2 > cap ? cap : alloc * 2;
            b = tp_realloc(b, alloc);
        }
        ssize_t k = read(fd, b + size, alloc - size);
        if (k < 0) {
            if (errno == EINTR) continue;
            free(b);
            return tp_err_errno("%s: read error", name);
        }
        if (k == 0) break;
        size += (size_t)k;
    }
    *buf = b;
    *n = size;
    return 0;
}

int io_slurp(const char *path, size_t cap, void **buf, size_t *n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tp_err_errno("%s", path);
    int rc = io_slurp_fd(fd, path, cap, buf, n);
    close(fd);
    return rc;
}

/* ---- temporary-file registry ------------------------------------------ */

#define IO_TMP_MAX 64
static char *tmp_paths[IO_TMP_MAX];

void io_tmp_register(const char *path)
{
    for (int i = 0; i < IO_TMP_MAX; i++)
        if (!tmp_paths[i]) {
            tmp_paths[i] = tp_strdup(path);
            return;
        }
    TP_ASSERT(!"too many temporary files open at once");
}

void io_tmp_unregister(const char *path)
{
    for (int i = 0; i < IO_TMP_MAX; i++)
        if (tmp_paths[i] && strcmp(tmp_paths[i], path) == 0) {
            char *p = tmp_paths[i];
            tmp_paths[i] = NULL;
            free(p);
            return;
        }
}

void io_tmp_cleanup(void)
{
    for (int i = 0; i < IO_TMP_MAX; i++)
        if (tmp_paths[i]) unlink(tmp_paths[i]);
}

/* ---- atomic outputs ------------------------------------------------------ */

/* The length of path's directory part, its final '/' included (0: none). */
static size_t dir_len(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? (size_t)(slash - path + 1) : 0;
}

static char *tmp_name_for(const char *path)
{
    size_t dirlen = dir_len(path);
    const char *base = path + dirlen;
    size_t n = strlen(path) + 48;
    char *t = tp_malloc(n);
    snprintf(t, n, "%.*s.%s.tmp.%ld", (int)dirlen, path, base, (long)getpid());
    return t;
}

/* Writes the directory part of path into dir ("." when there is none). */
static int dir_of(const char *path, char *dir, size_t size)
{
    size_t dirlen = dir_len(path);
    if (dirlen >= size) return -1;
    /* without its final '/' ("/" stays itself) */
    if (dirlen == 0) snprintf(dir, size, ".");
    else snprintf(dir, size, "%.*s", (int)(dirlen > 1 ? dirlen - 1 : dirlen), path);
    return 0;
}

/* The pid of a temporary's name (.NAME.tmp.PID), or 0 if it is not one. */
static long tmp_name_pid(const char *name)
{
    const char *t = strstr(name, ".tmp."), *later;
    if (name[0] != '.' || !t || t == name) return 0;
    while ((later = strstr(t + 1, ".tmp."))) t = later; /* the last one */
    char *end;
    long pid = strtol(t + 5, &end, 10);
    /* beyond INT_MAX it is no pid (and would wrap in kill's pid_t) */
    return (*end == '\0' && end != t + 5 && pid > 0 && pid <= INT_MAX) ? pid : 0;
}

/* A writer killed inside its commit (between naming its file .NAME.tmp.PID
 * and the rename) leaves that file behind. The first output a process opens
 * in a directory removes such files whose writer is gone (kill(PID, 0) finds
 * no process), so a re-run cleans up after the run it resumes. Directories
 * are remembered (the last few) so that a tool writing thousands of images
 * into one scans it once. */
static void sweep_dead_temporaries(const char *path)
{
    static char swept[4][PATH_MAX];
    static int next;
    char dir[PATH_MAX];
    if (dir_of(path, dir, sizeof dir) != 0) return;
    for (int i = 0; i < 4; i++)
        if (strcmp(swept[i], dir) == 0) return;
    snprintf(swept[next], sizeof swept[next], "%s", dir);
    next = (next + 1) % 4;
    DIR *d = opendir(dir);
    if (!d) return;
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = tmp_name_pid(e->d_name);
        if (pid == 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        struct stat sb;
        if (fstatat(dfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
            unlinkat(dfd, e->d_name, 0);
    }
    closedir(d);
}

/* An unnamed file in path's directory, or -1 where O_TMPFILE or the
 * /proc/self/fd link that names it at commit is not available. */
static int open_unnamed(const char *path)
{
#ifdef O_TMPFILE
    static int have_proc = -1; /* the same answer for the whole process */
    if (have_proc < 0) have_proc = access("/proc/self/fd", X_OK) == 0;
    if (!have_proc) return -1;
    char dir[PATH_MAX];
    if (dir_of(path, dir, sizeof dir) != 0) return -1;
    return open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
#else
    (void)path;
    return -1;
#endif
}

int io_out_open(struct io_out *o, const char *path)
{
    memset(o, 0, sizeof *o);
    if (!path || strcmp(path, "-") == 0) {
        o->fd = STDOUT_FILENO;
        return 0;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
        o->fd = open(path, O_WRONLY | O_CLOEXEC);
        if (o->fd < 0) return tp_err_errno("%s", path);
        o->path = tp_strdup(path);
        return 0;
    }
    sweep_dead_temporaries(path);
    o->path = tp_strdup(path);
    o->tmp = tmp_name_for(path);
    o->fd = open_unnamed(path);
    if (o->fd >= 0) {
        o->unnamed = 1;
        return 0;
    }
    /* never through a symlink planted at the temporary name: remove what is
     * there (a stale temporary of a killed run with our pid, or a link),
     * then create it exclusively */
    unlink(o->tmp);
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (o->fd < 0) {
        int rc = tp_err_errno("%s", path);
        free(o->path);
        free(o->tmp);
        o->path = o->tmp = NULL;
        return rc;
    }
    io_tmp_register(o->tmp);
    return 0;
}

const char *io_out_name(const struct io_out *o)
{
    return o->path ? o->path : "stdout";
}

int io_out_commit(struct io_out *o)
{
    if (!o->path) return 0;
    int rc = 0;
    if (!o->tmp) { /* written in place */
        if (close(o->fd) != 0) rc = tp_err_errno("%s: close", o->path);
        free(o->path);
        o->path = NULL;
        o->fd = -1;
        return rc;
    }
    if (fsync(o->fd) != 0 && errno != EINVAL) rc = tp_err_errno("%s: fsync", o->path);
    int linked = 0; /* named at the final path already */
    if (rc == 0 && o->unnamed) {
        /* name it: a new file links straight to its path (a kill leaves
         * nothing behind); over an existing one, a link to the temporary
         * name (never through a symlink planted there), then the same
         * rename as a named temporary */
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", o->fd);
        unlink(o->tmp); /* ours by its pid: a stale one, or a planted link */
        if (linkat(AT_FDCWD, self, AT_FDCWD, o->path, AT_SYMLINK_FOLLOW) == 0) {
            linked = 1;
        } else if (errno != EEXIST) {
            rc = tp_err_errno("%s: link", o->path);
        } else {
            io_tmp_register(o->tmp);
            if (linkat(AT_FDCWD, self, AT_FDCWD, o->tmp, AT_SYMLINK_FOLLOW) != 0)
                rc = tp_err_errno("%s: link", o->path);
        }
    }
    if (close(o->fd) != 0 && rc == 0) rc = tp_err_errno("%s: close", o->path);
    o->fd = -1;
    if (rc == 0 && !linked && rename(o->tmp, o->path) != 0) rc = tp_err_errno("%s: rename", o->path);
    if (rc != 0) unlink(linked ? o->path : o->tmp); /* no file was there before a direct link */
    io_tmp_unregister(o->tmp);
    free(o->tmp);
    free(o->path);
    o->tmp = o->path = NULL;
    return rc;
}

void io_out_abort(struct io_out *o)
{
    if (!o->path) return;
    if (o->fd >= 0) close(o->fd);
    if (o->tmp && !o->unnamed) unlink(o->tmp);
    if (o->tmp && !o->unnamed) io_tmp_unregister(o->tmp);
    free(o->tmp);
    free(o->path);
    o->tmp = o->path = NULL;
    o->fd = -1;
}

int io_write_file_atomic(const char *path, const void *buf, size_t n)
{
    struct io_out o;
    if (io_out_open(&o, path) != 0) return -1;
    if (io_write_all(o.fd, buf, n, path) != 0) {
        io_out_abort(&o);
        return -1;
    }
    return io_out_commit(&o);
}

int io_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return tp_err_set("%s: bad directory name", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return tp_err_errno("%s: mkdir", buf);
            buf[i] = c;
        }
    }
    return 0;
}
