/* test_io.c - atomic outputs: a file appears whole or not at all, and a
 * device or FIFO given as the output is written in place, never replaced
 * (renaming over /dev/null would turn it into a regular file). */
#include "test.h"
#include "io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
