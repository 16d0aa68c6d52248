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
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
