/* mkseeds.c - write seed corpora for the fuzz targets: valid streams with
 * and without seek tables, several dtypes, empty records, and the
 * safetensors blobs inside them. Usage: mkseeds DIR_TZ DIR_ST */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "io.h"
#include "st.h"
#include "tz.h"

static struct st *record(int k)
{
    struct st *s = st_new();
    if (k == 0) return s;
    float *x = st_put_v(s, "image", ST_F32, 4, (int64_t)k, (int64_t)1, (int64_t)2, (int64_t)2)->data;
    for (int i = 0; i < 4 * k; i++) x[i] = i / 7.0f;
    int32_t *l = st_put_v(s, "label", ST_I32, 1, (int64_t)k)->data;
    for (int i = 0; i < k; i++) l[i] = i;
    st_put_v(s, "mask", ST_U8, 2, (int64_t)k, (int64_t)3);
    if (k > 2) st_put_v(s, "scalar", ST_F64, 0);
    st_meta_set(s, "keys", "[\"a\",\"b\"]");
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    char path[4096];
    for (int f = 0; f < 4; f++) {
        snprintf(path, sizeof path, "%s/seed%d.tz", argv[1], f);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        struct tz_writer *w = tz_writer_open(fd, path, f + 1, f % 2);
        for (int k = 0; k <= f; k++) {
            struct st *s = record(k);
            tz_writer_put(w, s);
            st_free(s);
        }
        tz_writer_close(w);
        close(fd);
    }
    for (int k = 0; k < 4; k++) {
        struct st *s = record(k);
        void *buf;
        size_t n;
        st_serialize(s, &buf, &n);
        snprintf(path, sizeof path, "%s/seed%d.safetensors", argv[2], k);
        io_write_file_atomic(path, buf, n);
        free(buf);
        st_free(s);
    }
    return 0;
}
