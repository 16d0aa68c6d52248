/* test_io.c - atomic outputs: a file appears whole or not at all, and a
 * device or FIFO given as the output is written in place, never replaced
 * (renaming over /dev/null would turn it into a regular file). */
#include "test.h"
#include "io.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int entries_in(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* a writer killed before its commit leaves no file at all, not even a
 * temporary (the output is unnamed until then) */
static void test_killed_writer_leaves_nothing(void **state)
{
    (void)state;
    char dir[160], path[192];
    snprintf(dir, sizeof dir, "%s/killed", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/out.bin", dir);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct io_out o;
        if (io_out_open(&o, path) != 0 || io_write_all(o.fd, "abc", 3, path) != 0) _exit(1);
        if (write(ready[1], "x", 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(entries_in(dir), 0);
    close(ready[0]), close(ready[1]);
}

static void touch(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    close(fd);
}

static int exists_in(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* a writer killed inside its commit leaves .NAME.tmp.PID: the next output
 * opened in that directory removes it once PID is gone, and nothing else */
static void test_dead_writers_temporaries_are_swept(void **state)
{
    (void)state;
    char dir[160], path[192], name[64];
    snprintf(dir, sizeof dir, "%s/swept", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    pid_t dead = fork(); /* a pid that no process has any more */
    assert_true(dead >= 0);
    if (dead == 0) _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    snprintf(name, sizeof name, ".ckpt.st.tmp.%ld", (long)dead);
    touch(dir, name);
    snprintf(name, sizeof name, ".other.tz.tmp.%ld", (long)getppid()); /* alive */
    touch(dir, name);
    touch(dir, ".notes.tmp.x1");
    touch(dir, ".huge.tmp.99999999999999"); /* no pid: kept */
    touch(dir, "keep.tmp.1");
    snprintf(path, sizeof path, "%s/ckpt.st", dir);
    struct io_out o;
    assert_int_equal(io_out_open(&o, path), 0);
    snprintf(name, sizeof name, ".ckpt.st.tmp.%ld", (long)dead);
    assert_false(exists_in(dir, name));
    snprintf(name, sizeof name, ".other.tz.tmp.%ld", (long)getppid());
    assert_true(exists_in(dir, name));
    assert_true(exists_in(dir, ".notes.tmp.x1"));
    assert_true(exists_in(dir, ".huge.tmp.99999999999999"));
    assert_true(exists_in(dir, "keep.tmp.1"));
    /* a new file is linked at its name directly; over an old one, through
     * the temporary: neither leaves a temporary of ours */
    assert_int_equal(io_write_all(o.fd, "abc", 3, path), 0);
    assert_int_equal(io_out_commit(&o), 0);
    assert_int_equal(io_write_file_atomic(path, "xy", 2), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 2);
    assert_int_equal(entries_in(dir), 5);
}

static void test_file_appears_on_commit(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/out.bin", tmpdir);
    struct io_out o;
    assert_int_equal(io_out_open(&o, path), 0);
    assert_int_equal(io_write_all(o.fd, "abc", 3, path), 0);
    assert_int_equal(access(path, F_OK), -1); /* not there until committed */
    assert_int_equal(io_out_commit(&o), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 3);
    /* an aborted replacement leaves the old file as it was */
    assert_int_equal(io_out_open(&o, path), 0);
    assert_int_equal(io_write_all(o.fd, "xy", 2, path), 0);
    io_out_abort(&o);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 3);
}

static void test_devices_are_written_in_place(void **state)
{
    (void)state;
    struct io_out o;
    assert_int_equal(io_out_open(&o, "/dev/null"), 0);
    assert_int_equal(io_write_all(o.fd, "abc", 3, "/dev/null"), 0);
    assert_int_equal(io_out_commit(&o), 0);
    assert_int_equal(io_write_file_atomic("/dev/null", "x", 1), 0);
    struct stat sb;
    assert_int_equal(stat("/dev/null", &sb), 0);
    assert_true(S_ISCHR(sb.st_mode));
    /* a FIFO: written through, still a FIFO */
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/f", tmpdir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int rfd = open(fifo, O_RDONLY | O_NONBLOCK);
    assert_true(rfd >= 0);
    assert_int_equal(io_write_file_atomic(fifo, "hello", 5), 0);
    char buf[8];
    assert_int_equal(read(rfd, buf, sizeof buf), 5);
    close(rfd);
    assert_int_equal(stat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_appears_on_commit),
        cmocka_unit_test(test_devices_are_written_in_place),
        cmocka_unit_test(test_killed_writer_leaves_nothing),
        cmocka_unit_test(test_dead_writers_temporaries_are_swept),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
