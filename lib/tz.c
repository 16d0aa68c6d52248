/* tz.c - .tz stream reader and writer (see tz.h for the layout).
 *
 * Reader: frames are delimited by hand (magic, then the zstd frame header
 * for the content size) so that a hostile size is refused before any
 * allocation, skippable frames are skipped, and every error can name the
 * record. Decompression streams through ZSTD_decompressStream into a buffer
 * of exactly the pledged size; the checksum is verified by zstd.
 */
#include "tz.h"
#include "err.h"
#include "io.h"
#include "xxh64.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_d_stableOutBuffer's name */
#include <zstd.h>

#define ZSTD_MAGIC 0xFD2FB528u
#define SKIP_MAGIC_MIN 0x184D2A50u
#define SKIP_MAGIC_MAX 0x184D2A5Fu
#define SEEK_SKIP_MAGIC 0x184D2A5Eu
#define SEEKABLE_MAGIC 0x8F92EAB1u
#define SEEK_FOOTER 9
/* Input read at a time: a pipe's worth (TZ_PIPE_BYTES). With 64 KiB a
 * writer blocked on a full pipe was woken at every read, 130 times for a
 * record of logits (8.4 MB): two context switches each, on both sides. */
#define INBUF TZ_PIPE_BYTES

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t max_record(void)
{
    const char *e = getenv("TZ_MAX_RECORD");
    if (e && *e) {
        char *end;
        unsigned long long v = strtoull(e, &end, 10);
        if (*end == 0 && v > 0) return v;
    }
    return TZ_MAX_RECORD_DEFAULT;
}

/* ---- reader ------------------------------------------------------------------ */

struct tz_reader {
    int fd, own_fd;
    char *name;
    ZSTD_DCtx *dctx;
    unsigned char *in;
    size_t in_pos, in_len; /* unread bytes are in[in_pos, in_len) */
    int eof;
    long index;
    uint64_t bytes_in, bytes_out, max_rec;
    /* seek table (frames only, skippable frames excluded), lazily read */
    int seek_state; /* 0 unknown, 1 loaded, -1 none */
    long nframes;
    uint64_t *frame_off; /* file offset of frame i */
};

static double zstd_seconds;

/* CPU time of the calling thread (zstd runs in it): what compression costs,
 * not what the scheduler adds on a busy machine */
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double tz_zstd_seconds(void) { return zstd_seconds; }

struct tz_reader *tz_reader_open(int fd, const char *name)
{
    struct tz_reader *r = tp_calloc(1, sizeof *r);
    r->fd = fd;
    r->name = tp_strdup(name ? name : "stdin");
    r->dctx = ZSTD_createDCtx();
    r->in = tp_malloc(INBUF);
    r->max_rec = max_record();
    if (!r->dctx) TP_ASSERT(!"ZSTD_createDCtx failed");
    /* read_record hands zstd one output buffer of the record's exact size
     * for the whole frame: zstd decodes straight into it, without a window
     * buffer of its own and the copy out of it (an experimental parameter
     * through the stable setter: the shared library takes it) */
    ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_stableOutBuffer, 1);
    return r;
}

struct tz_reader *tz_reader_open_path(const char *path)
{
    if (!path || strcmp(path, "-") == 0) return tz_reader_open(STDIN_FILENO, "stdin");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tp_err_errno("%s", path);
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        close(fd);
        tp_err_set("%s: is a directory", path);
        return NULL;
    }
    struct tz_reader *r = tz_reader_open(fd, path);
    r->own_fd = 1;
    return r;
}

void tz_reader_close(struct tz_reader *r)
{
    if (!r) return;
    if (r->own_fd) close(r->fd);
    ZSTD_freeDCtx(r->dctx);
    free(r->in);
    free(r->name);
    free(r->frame_off);
    free(r);
}

long tz_reader_index(const struct tz_reader *r) { return r->index; }
uint64_t tz_reader_bytes_in(const struct tz_reader *r) { return r->bytes_in; }
uint64_t tz_reader_bytes_out(const struct tz_reader *r) { return r->bytes_out; }
const char *tz_reader_name(const struct tz_reader *r) { return r->name; }

/* Make at least `want` unread bytes available (fewer only at EOF). */
static int fill(struct tz_reader *r, size_t want)
{
    if (r->in_pos > 0 && r->in_len - r->in_pos < want) {
        memmove(r->in, r->in + r->in_pos, r->in_len - r->in_pos);
        r->in_len -= r->in_pos;
        r->in_pos = 0;
    }
    while (r->in_len - r->in_pos < want && !r->eof) {
        ssize_t k = read(r->fd, r->in + r->in_len, INBUF - r->in_len);
        if (k < 0) {
            if (errno == EINTR) continue;
            return tp_err_errno("read error");
        }
        if (k == 0) r->eof = 1;
        r->in_len += (size_t)k;
    }
    return 0;
}

static size_t avail(const struct tz_reader *r) { return r->in_len - r->in_pos; }

/* Skip n bytes of input. */
static int skip_bytes(struct tz_reader *r, uint64_t n)
{
    while (n > 0) {
        if (avail(r) == 0) {
            if (fill(r, 1) != 0) return -1;
            if (avail(r) == 0) return tp_err_set("truncated skippable frame");
        }
        size_t k = avail(r) < n ? avail(r) : (size_t)n;
        r->in_pos += k;
        r->bytes_in += k;
        n -= k;
    }
    return 0;
}

/* Size of a zstd frame header from its descriptor byte (RFC 8878 3.1.1.1):
 * magic, descriptor, window byte unless single-segment, dictionary id,
 * content size. */
static size_t frame_header_size(unsigned char fhd)
{
    static const size_t did[4] = {0, 1, 2, 4}, fcs[4] = {0, 2, 4, 8};
    int single = (fhd >> 5) & 1, fcs_flag = fhd >> 6;
    size_t fcs_size = fcs_flag == 0 ? (size_t)single : fcs[fcs_flag];
    return 4 + 1 + (single ? 0 : 1) + did[fhd & 3] + fcs_size;
}

static int read_record(struct tz_reader *r, struct st **rec)
{
    for (;;) {
        if (fill(r, 4) != 0) return -1;
        if (avail(r) == 0) return 0; /* clean end of stream */
        if (avail(r) < 4) return tp_err_set("truncated frame (%zu stray bytes at the end)", avail(r));
        uint32_t magic = rd32(r->in + r->in_pos);
        if (magic >= SKIP_MAGIC_MIN && magic <= SKIP_MAGIC_MAX) {
            if (fill(r, 8) != 0) return -1;
            if (avail(r) < 8) return tp_err_set("truncated skippable frame header");
            uint32_t len = rd32(r->in + r->in_pos + 4);
            r->in_pos += 8;
            r->bytes_in += 8;
            if (skip_bytes(r, len) != 0) return -1;
            continue;
        }
        if (magic != ZSTD_MAGIC) return tp_err_set("not a zstd frame (magic 0x%08x)", magic);
        break;
    }
    /* Wait for exactly the frame header, never more: in stream mode the
     * writer may be blocked on us, so reading ahead could deadlock. */
    if (fill(r, 5) != 0) return -1;
    if (avail(r) < 5) return tp_err_set("truncated zstd frame header");
    size_t hsize = frame_header_size(r->in[r->in_pos + 4]);
    if (fill(r, hsize) != 0) return -1;
    if (avail(r) < hsize) return tp_err_set("truncated zstd frame header");
    unsigned long long csize = ZSTD_getFrameContentSize(r->in + r->in_pos, hsize);
    if (csize == ZSTD_CONTENTSIZE_ERROR) return tp_err_set("bad zstd frame header");
    if (csize == ZSTD_CONTENTSIZE_UNKNOWN)
        return tp_err_set("zstd frame without a content size (not written by a .tz writer)");
    if (csize > r->max_rec)
        return tp_err_set("record claims %llu bytes, over the limit of %llu (TZ_MAX_RECORD)",
                          csize, (unsigned long long)r->max_rec);
    size_t size = (size_t)csize;
    /* the record 64-byte aligned in its buffer, as the tensors it holds were */
    void *block;
    unsigned char *out = tp_malloc_record_aligned(size, &block);
    ZSTD_outBuffer ob = {out, size, 0};
    ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
    size_t ret = 1;
    while (ret != 0) {
        if (avail(r) == 0) {
            if (fill(r, 1) != 0) goto fail;
            if (avail(r) == 0) {
                tp_err_set("truncated record (stream ends inside a zstd frame)");
                goto fail;
            }
        }
        ZSTD_inBuffer ib = {r->in + r->in_pos, avail(r), 0};
        size_t before_out = ob.pos;
        double t0 = now_s();
        ret = ZSTD_decompressStream(r->dctx, &ob, &ib);
        zstd_seconds += now_s() - t0;
        r->in_pos += ib.pos;
        r->bytes_in += ib.pos;
        if (ZSTD_isError(ret)) {
            tp_err_set("corrupted record: zstd: %s", ZSTD_getErrorName(ret));
            goto fail;
        }
        if (ret != 0 && ob.pos == ob.size && ib.pos == 0 && ob.pos == before_out) {
            /* output full but the frame goes on: more data than pledged */
            tp_err_set("corrupted record: more data than its declared size %zu", size);
            goto fail;
        }
    }
    if (ob.pos != size) {
        tp_err_set("corrupted record: %zu bytes decompressed, %zu declared", ob.pos, size);
        goto fail;
    }
    r->bytes_out += size;
    if (st_parse_block(rec, block, out, size) != 0) goto fail;
    return 1;
fail:
    free(block);
    return -1;
}

int tz_reader_next(struct tz_reader *r, struct st **rec)
{
    *rec = NULL;
    int rc = read_record(r, rec);
    if (rc < 0) return tp_err_prefix("%s: record %ld", r->name, r->index);
    if (rc > 0) r->index++;
    return rc;
}

/* Read the seek table from the end of a regular file. It is trusted only if
 * the frame sizes it lists add up exactly to the file size (a table of an
 * earlier stream inside `cat a.tz b.tz` does not). */
static void load_seek_table(struct tz_reader *r)
{
    r->seek_state = -1;
    struct stat sb;
    if (fstat(r->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) return;
    uint64_t fsize = (uint64_t)sb.st_size;
    if (fsize < 8 + SEEK_FOOTER) return;
    unsigned char foot[SEEK_FOOTER];
    if (pread(r->fd, foot, SEEK_FOOTER, (off_t)(fsize - SEEK_FOOTER)) != SEEK_FOOTER) return;
    if (rd32(foot + 5) != SEEKABLE_MAGIC) return;
    uint32_t nf = rd32(foot);
    int has_ck = (foot[4] & 0x80) != 0;
    uint64_t esize = has_ck ? 12 : 8;
    uint64_t tsize = 8 + (uint64_t)nf * esize + SEEK_FOOTER;
    if (tsize > fsize) return;
    unsigned char *tab = malloc(tsize);
    if (!tab) return;
    if (pread(r->fd, tab, tsize, (off_t)(fsize - tsize)) != (ssize_t)tsize ||
        rd32(tab) != SEEK_SKIP_MAGIC || rd32(tab + 4) != tsize - 8) {
        free(tab);
        return;
    }
    uint64_t *off = tp_malloc((nf + 1) * sizeof *off);
    uint64_t pos = 0;
    for (uint32_t i = 0; i < nf; i++) {
        off[i] = pos;
        pos += rd32(tab + 8 + i * esize);
    }
    off[nf] = pos;
    free(tab);
    if (pos + tsize != fsize) { /* the table does not describe this file */
        free(off);
        return;
    }
    r->frame_off = off;
    r->nframes = nf;
    r->seek_state = 1;
}

long tz_reader_count(struct tz_reader *r)
{
    if (r->seek_state == 0) load_seek_table(r);
    return r->seek_state > 0 ? r->nframes : -1;
}

int tz_reader_seek(struct tz_reader *r, long i)
{
    if (tz_reader_count(r) < 0) return tp_err_set("%s: not seekable (no seek table)", r->name);
    if (i < 0 || i > r->nframes)
        return tp_err_set("%s: record %ld out of range (%ld records)", r->name, i, r->nframes);
    /* frame_off[nframes] is the seek table itself, which readers skip */
    uint64_t off = r->frame_off[i];
    if (lseek(r->fd, (off_t)off, SEEK_SET) < 0) return tp_err_errno("%s: seek", r->name);
    r->in_pos = r->in_len = 0;
    r->eof = 0;
    r->index = i;
    return 0;
}

/* ---- writer ------------------------------------------------------------------ */

static int adaptive(int level) { return level == TZ_LEVEL_AUTO || level == TZ_LEVEL_AUTO_FLOATS; }

/* How the adaptive levels write the next record (tz.h); LEVEL_STORE, no
 * zstd level, is raw blocks. */
#define LEVEL_STORE 1000
enum tz_mode { MODE_DEFAULT, MODE_FAST, MODE_STORE };

struct tz_writer {
    int fd;
    char *name;
    ZSTD_CCtx *cctx;
    int seek_table;
    long count, cap;
    uint32_t *csize, *dsize;
    int table_ok; /* every frame fit in u32 sizes */
    uint64_t bytes_in, bytes_out;
    void *cbuf; /* CBUF_BYTES, put_compressed's output */
    int level;  /* the level asked for; TZ_LEVEL_AUTO(_FLOATS): adapt (tz.h) */
    int on_pipe; /* adapting between processes: never above TZ_LEVEL_FAST */
    enum tz_mode mode;
    int run; /* records in this mode since it began or since its last probe */
};

struct tz_writer *tz_writer_open(int fd, const char *name, int level, int seek_table)
{
    struct tz_writer *w = tp_calloc(1, sizeof *w);
    w->fd = fd;
    w->name = tp_strdup(name ? name : "stdout");
    w->cctx = ZSTD_createCCtx();
    if (!w->cctx) TP_ASSERT(!"ZSTD_createCCtx failed");
    /* Between processes (a pipe, a FIFO, a socket) compressed bytes save
     * only a copy while zstd's effort costs the step: the adaptive levels
     * keep to the fast one there (tz.h). */
    struct stat sb;
    const int fstat_ok = fstat(fd, &sb) == 0;
    w->on_pipe = adaptive(level) && fstat_ok && (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode));
    /* A record of logits is megabytes: through the default 64 KiB of a pipe
     * both sides took turns at its lock 130 times a record (a tenth of mask's
     * time in a sampling loop, spinning). Refused above
     * /proc/sys/fs/pipe-max-size: the pipe keeps what it has. */
    if (fstat_ok && S_ISFIFO(sb.st_mode) && fcntl(fd, F_GETPIPE_SZ) < TZ_PIPE_BYTES)
        (void)fcntl(fd, F_SETPIPE_SZ, TZ_PIPE_BYTES);
    w->level = level;
    w->mode = level == TZ_LEVEL_AUTO && !w->on_pipe ? MODE_DEFAULT : MODE_FAST;
    if (!adaptive(level)) ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1);
    w->seek_table = seek_table;
    w->table_ok = 1;
    return w;
}

/* A zstd frame of raw blocks (RFC 8878): the pieces as they are, no copy,
 * with the content size and checksum a compressed frame has, so that every
 * zstd reader takes it. The window (128 KiB, a block) is what a decoder
 * would allocate; the .tz reader decodes into the record's buffer. */
#define STORE_BLOCK ((size_t)128 << 10)
static int put_stored(struct tz_writer *w, const struct st_pieces *p, size_t *csize)
{
    size_t n = p->total, nblocks = n ? (n + STORE_BLOCK - 1) / STORE_BLOCK : 1;
    unsigned char head[14], sum[4], *bh = tp_malloc(3 * nblocks);
    int wide = n > UINT32_MAX; /* content size in 8 bytes, else 4 */
    wr32(head, ZSTD_MAGIC);
    head[4] = (unsigned char)((wide ? 3 : 2) << 6 | 1 << 2); /* size field, checksum; not single-segment */
    head[5] = (17 - 10) << 3;                                  /* window 2^17 */
    for (int i = 0; i < (wide ? 8 : 4); i++) head[6 + i] = (unsigned char)((uint64_t)n >> (8 * i));
    size_t hn = wide ? 14 : 10;
    /* iovecs: the header, per block its header and the pieces' parts in it, the checksum */
    struct iovec *v = tp_malloc((2 + 2 * nblocks + (size_t)p->n) * sizeof *v);
    int nv = 0;
    v[nv++] = (struct iovec){head, hn};
    double t0 = now_s(); /* the checksum: what storing costs of zstd's work */
    struct xxh64 h;
    xxh64_init(&h, 0);
    int pi = 0;
    size_t off = 0; /* into piece pi */
    for (size_t b = 0; b < nblocks; b++) {
        size_t bs = n - b * STORE_BLOCK < STORE_BLOCK ? n - b * STORE_BLOCK : STORE_BLOCK;
        uint32_t bhv = (uint32_t)(bs << 3) | (b == nblocks - 1); /* raw block, last flag */
        for (int i = 0; i < 3; i++) bh[3 * b + i] = (unsigned char)(bhv >> (8 * i));
        v[nv++] = (struct iovec){bh + 3 * b, 3};
        for (size_t left = bs; left > 0;) {
            size_t k = p->v[pi].iov_len - off < left ? p->v[pi].iov_len - off : left;
            v[nv++] = (struct iovec){(char *)p->v[pi].iov_base + off, k};
            xxh64_update(&h, (char *)p->v[pi].iov_base + off, k);
            left -= k, off += k;
            if (off == p->v[pi].iov_len) pi++, off = 0;
        }
    }
    wr32(sum, (uint32_t)xxh64_digest(&h));
    zstd_seconds += now_s() - t0;
    v[nv++] = (struct iovec){sum, 4};
    int rc = io_writev_all(w->fd, v, nv, w->name);
    free(v);
    free(bh);
    *csize = hn + 3 * nblocks + n + 4;
    return rc;
}

/* A compressed frame of the pieces as they are: zstd streams them through
 * a buffer of CBUF_BYTES, written out as it fills. A record of megabytes
 * used to be joined into one copy and compressed into a buffer of its
 * bound, two record-sized buffers of fresh memory (costly first touches
 * on this kind of VM: bench/levers.md), and the reader downstream waited
 * for the whole frame before it could start. */
#define CBUF_BYTES ((size_t)1 << 20)
static int put_compressed(struct tz_writer *w, const struct st_pieces *p, size_t *csize)
{
    if (!w->cbuf) w->cbuf = tp_malloc(CBUF_BYTES);
    ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only);
    ZSTD_CCtx_setPledgedSrcSize(w->cctx, p->total); /* the content size in the frame header */
    size_t c = 0;
    for (int i = 0; i < p->n; i++) {
        const int last = i == p->n - 1;
        ZSTD_inBuffer in = {p->v[i].iov_base, p->v[i].iov_len, 0};
        size_t left;
        do {
            ZSTD_outBuffer out = {w->cbuf, CBUF_BYTES, 0};
            double t0 = now_s();
            left = ZSTD_compressStream2(w->cctx, &out, &in, last ? ZSTD_e_end : ZSTD_e_continue);
            zstd_seconds += now_s() - t0;
            if (ZSTD_isError(left))
                return tp_err_set("%s: record %ld: zstd: %s", w->name, w->count, ZSTD_getErrorName(left));
            if (out.pos && io_write_all(w->fd, w->cbuf, out.pos, w->name) != 0) return -1;
            c += out.pos;
        } while (last ? left != 0 : in.pos < in.size);
    }
    *csize = c;
    return 0;
}

/* The next record's level: the mode's, but for every TZ_PROBE_EVERY-th
 * record of the fast and stored modes, which measures again at the level
 * above (tz.h). */
static int next_level(const struct tz_writer *w)
{
    if (!adaptive(w->level)) return w->level;
    const int probe = w->run == TZ_PROBE_EVERY - 1;
    switch (w->mode) {
    case MODE_DEFAULT: return TZ_LEVEL_DEFAULT;
    case MODE_FAST: return probe && !w->on_pipe ? TZ_LEVEL_DEFAULT : TZ_LEVEL_FAST;
    case MODE_STORE: return probe ? TZ_LEVEL_FAST : LEVEL_STORE;
    }
    return TZ_LEVEL_DEFAULT;
}

/* The mode after a record of n bytes written in c at level. */
static void adapt(struct tz_writer *w, int level, size_t n, size_t c)
{
    enum tz_mode m = w->mode;
    if (level == TZ_LEVEL_DEFAULT)
        m = (double)n >= TZ_COMPRESSES * (double)c ? MODE_DEFAULT : MODE_FAST;
    else if (level == TZ_LEVEL_FAST)
        m = (double)n >= TZ_COMPRESSES * (double)c ? (w->on_pipe ? MODE_FAST : MODE_DEFAULT)
            : (double)n < TZ_STORE_BELOW * (double)c ? MODE_STORE
                                                     : MODE_FAST;
    const int probed = w->run == TZ_PROBE_EVERY - 1 && w->mode != MODE_DEFAULT;
    w->run = m != w->mode || probed ? 0 : w->run + 1;
    w->mode = m;
}

int tz_writer_put(struct tz_writer *w, const struct st *rec)
{
    struct st_pieces p;
    st_pieces(rec, &p);
    size_t n = p.total, c = 0;
    const int level = next_level(w);
    if (level == LEVEL_STORE) {
        int rc = put_stored(w, &p, &c);
        st_pieces_free(&p);
        if (rc != 0) return -1;
    } else {
        if (adaptive(w->level)) /* a parameter of the next frame: setting it costs nothing */
            ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
        int rc = put_compressed(w, &p, &c);
        st_pieces_free(&p);
        if (rc != 0) return -1;
    }
    if (adaptive(w->level)) adapt(w, level, n, c);
    if (w->count == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->csize = tp_realloc(w->csize, w->cap * sizeof(uint32_t));
        w->dsize = tp_realloc(w->dsize, w->cap * sizeof(uint32_t));
    }
    if (c > UINT32_MAX || n > UINT32_MAX) w->table_ok = 0;
    w->csize[w->count] = (uint32_t)c;
    w->dsize[w->count] = (uint32_t)n;
    w->count++;
    w->bytes_in += n;
    w->bytes_out += c;
    return 0;
}

static void writer_free(struct tz_writer *w)
{
    ZSTD_freeCCtx(w->cctx);
    free(w->csize);
    free(w->dsize);
    free(w->cbuf);
    free(w->name);
    free(w);
}

int tz_writer_close(struct tz_writer *w)
{
    int rc = 0;
    if (w->seek_table && w->table_ok && w->count > 0 && w->count <= (long)UINT32_MAX) {
        size_t tsize = 8 + (size_t)w->count * 8 + SEEK_FOOTER;
        unsigned char *t = tp_malloc(tsize);
        wr32(t, SEEK_SKIP_MAGIC);
        wr32(t + 4, (uint32_t)(tsize - 8));
        for (long i = 0; i < w->count; i++) {
            wr32(t + 8 + i * 8, w->csize[i]);
            wr32(t + 12 + i * 8, w->dsize[i]);
        }
        unsigned char *f = t + tsize - SEEK_FOOTER;
        wr32(f, (uint32_t)w->count);
        f[4] = 0; /* descriptor: no checksums */
        wr32(f + 5, SEEKABLE_MAGIC);
        rc = io_write_all(w->fd, t, tsize, w->name);
        if (rc == 0) w->bytes_out += tsize;
        free(t);
    }
    writer_free(w);
    return rc;
}

void tz_writer_abort(struct tz_writer *w)
{
    if (w) writer_free(w);
}

uint64_t tz_writer_bytes_in(const struct tz_writer *w) { return w->bytes_in; }
uint64_t tz_writer_bytes_out(const struct tz_writer *w) { return w->bytes_out; }
long tz_writer_count(const struct tz_writer *w) { return w->count; }

/* ---- output streams --------------------------------------------------------- */

int tz_out_open(struct tz_out *o, const char *path, int level)
{
    if (io_out_open(&o->io, path) != 0) return -1;
    struct stat sb;
    int seekable = fstat(o->io.fd, &sb) == 0 && S_ISREG(sb.st_mode);
    o->w = tz_writer_open(o->io.fd, io_out_name(&o->io), level, seekable);
    return 0;
}

int tz_out_put(struct tz_out *o, const struct st *rec) { return tz_writer_put(o->w, rec); }

int tz_out_close(struct tz_out *o)
{
    if (tz_writer_close(o->w) != 0) {
        io_out_abort(&o->io);
        return -1;
    }
    return io_out_commit(&o->io);
}

void tz_out_abort(struct tz_out *o)
{
    tz_writer_abort(o->w);
    io_out_abort(&o->io);
}
