/* ckpt.c - checkpoint names, done markers, pruning (see ckpt.h). */
#include "ckpt.h"
#include "io.h"

#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

void ckpt_path(char *buf, size_t n, const char *dir, long step, const char *what)
{
    snprintf(buf, n, "%s/step-%08ld.%s", dir, step, what);
}

int ckpt_finish(const char *dir, long step, long every)
{
    char path[4096], line[32];
    ckpt_path(path, sizeof path, dir, step, "done");
    int k = snprintf(line, sizeof line, "%ld\n", step);
    if (io_write_file_atomic(path, line, (size_t)k) != 0) return -1;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        if (sscanf(e->d_name, "step-%ld.", &s) == 1 && s < step - every) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
    return 0;
}
