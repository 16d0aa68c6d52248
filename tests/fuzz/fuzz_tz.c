/* fuzz_tz.c - libFuzzer target: the .tz record reader on arbitrary bytes,
 * read sequentially and through the seek table. Any crash, sanitizer
 * report or hang is a bug; errors are the expected outcome. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    lseek(fd, 0, SEEK_SET);
    setenv("TZ_MAX_RECORD", "16777216", 1);
    struct tz_reader *r = tz_reader_open(fd, "fuzz");
    struct st *rec;
    int n = 0;
    while (n < 1000 && tz_reader_next(r, &rec) == 1) {
        for (int i = 0; i < rec->n; i++) (void)st_numel(&rec->t[i]);
        st_free(rec);
        n++;
    }
    long count = tz_reader_count(r);
    if (count > 0 && tz_reader_seek(r, count - 1) == 0 && tz_reader_next(r, &rec) == 1) st_free(rec);
    tz_reader_close(r);
    close(fd);
    return 0;
}
