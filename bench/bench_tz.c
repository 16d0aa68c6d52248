/* bench_tz.c - .tz write and read throughput against the zstd command on
 * the same bytes at the same level.
 *
 * Usage: bench_tz IN.tz LEVEL WORKDIR
 * Reads every record of IN.tz into memory, then times (best of 3):
 *   write: serialize + compress + write to WORKDIR/w.tz
 *   read:  read + decompress + validate every record of WORKDIR/w.tz
 * and the zstd CLI compressing / decompressing the concatenated raw records
 * (the same bytes) at the same level, single-threaded like us.
 * Prints a markdown table row set. MB = 10^6 bytes of decompressed data. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io.h"
#include "tz.h"

static double run(const char *cmd)
{
    double t0 = tp_now();
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_tz: command failed: %s\n", cmd);
        exit(1);
    }
    return tp_now() - t0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_tz IN.tz LEVEL WORKDIR\n");
        return 2;
    }
    int level = atoi(argv[2]);
    const char *dir = argv[3];
    struct tz_reader *r = tz_reader_open_path(argv[1]);
    if (!r) {
        fprintf(stderr, "bench_tz: %s\n", tp_err());
        return 1;
    }
    int n = 0, cap = 0;
    struct st **recs = NULL, *rec;
    int rc;
    while ((rc = tz_reader_next(r, &rec)) == 1) {
        if (n == cap) recs = realloc(recs, (cap = cap ? 2 * cap : 64) * sizeof *recs);
        recs[n++] = rec;
    }
    if (rc < 0) {
        fprintf(stderr, "bench_tz: %s\n", tp_err());
        return 1;
    }
    tz_reader_close(r);
    char raw[4096], tzp[4096], zp[4096], cmd[16384];
    snprintf(raw, sizeof raw, "%s/raw.bin", dir);
    snprintf(tzp, sizeof tzp, "%s/w.tz", dir);
    snprintf(zp, sizeof zp, "%s/raw.bin.zst", dir);
    /* the same bytes for the zstd command */
    int fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        void *b;
        size_t k;
        st_serialize(recs[i], &b, &k);
        io_write_all(fd, b, k, raw);
        total += k;
        free(b);
    }
    close(fd);
    double best_w = 1e30, best_r = 1e30, best_zw = 1e30, best_zr = 1e30;
    uint64_t comp = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = tp_now();
        fd = open(tzp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        struct tz_writer *w = tz_writer_open(fd, tzp, level, 1);
        for (int i = 0; i < n; i++) tz_writer_put(w, recs[i]);
        comp = tz_writer_bytes_out(w);
        tz_writer_close(w);
        close(fd);
        double tw = tp_now() - t0;
        t0 = tp_now();
        r = tz_reader_open_path(tzp);
        int got = 0;
        while (tz_reader_next(r, &rec) == 1) {
            st_free(rec);
            got++;
        }
        tz_reader_close(r);
        double tr = tp_now() - t0;
        if (got != n) {
            fprintf(stderr, "bench_tz: read %d of %d records\n", got, n);
            return 1;
        }
        /* the zstd command spells negative levels --fast=N */
        if (level < 0) snprintf(cmd, sizeof cmd, "zstd -q -f -T1 --fast=%d %s -o %s", -level, raw, zp);
        else snprintf(cmd, sizeof cmd, "zstd -q -f -T1 -%d %s -o %s", level, raw, zp);
        double zw = run(cmd);
        snprintf(cmd, sizeof cmd, "zstd -q -dc %s > /dev/null", zp);
        double zr = run(cmd);
        if (tw < best_w) best_w = tw;
        if (tr < best_r) best_r = tr;
        if (zw < best_zw) best_zw = zw;
        if (zr < best_zr) best_zr = zr;
    }
    double mb = total / 1e6;
    printf("| %s | %d | %d | %.1f | %.2f | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |\n", argv[1],
           level, n, mb, (double)total / comp, mb / best_w, mb / best_zw, best_zw / best_w,
           mb / best_r, mb / best_zr, best_zr / best_r);
    for (int i = 0; i < n; i++) st_free(recs[i]);
    free(recs);
    unlink(raw);
    unlink(zp);
    unlink(tzp);
    return 0;
}
