/* tz.h - .tz tensor streams: one zstd frame per record, each record one
 * safetensors blob (st.h). This is what flows through pipes and what
 * datasets on disk are.
 *
 * Stream layout:
 *   1. zero or more zstd frames, each written with the content size and the
 *      content checksum set, decompressing to exactly one safetensors blob;
 *   2. skippable frames (magic 0x184D2A50..5F) anywhere, which readers skip;
 *   3. optionally, last, a seek table in zstd's seekable format: a skippable
 *      frame (magic 0x184D2A5E) holding per frame {compressed u32,
 *      decompressed u32}, then the footer {frames u32, descriptor u8 (0),
 *      magic 0x8F92EAB1 u32}. With it, record i is reached directly.
 * So `zstd -t` checks a stream and `zstd -dc` decompresses it. An empty
 * stream is valid. A truncated, corrupted or non-zstd stream is an error
 * naming the stream and the record index.
 */
#ifndef TP_TZ_H
#define TP_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "st.h"

#define TZ_LEVEL_DEFAULT 3
#define TZ_LEVEL_FAST (-1)
/* The tools' default (-l not given) adapts each record's level to how the
 * last ones compressed, in three modes:
 *   default  TZ_LEVEL_DEFAULT, while records compress TZ_COMPRESSES times
 *            or more;
 *   fast     TZ_LEVEL_FAST, after a record that did not (floats:
 *            activations, logits, gradients); back to default after a fast
 *            record that compresses TZ_COMPRESSES times (token ids);
 *   stored   no compression (zstd's raw blocks: a valid frame any zstd
 *            reads, with its content size and checksum), after a fast
 *            record below TZ_STORE_BELOW: compression that saves less than
 *            a tenth costs more CPU than the bytes it saves.
 * Every TZ_PROBE_EVERY-th record of the fast and stored modes is a probe at
 * the mode above, to notice a change. MaskGIT's logits (8.4 MB a record)
 * compress 1.15x at level 3 and 1.002x at -1; in a MaskGIT training step
 * the transformer's and the loss's zstd CPU time went from 77 to 39 ms
 * with the fast mode; in MaskGIT's sampling loop the transformer's and
 * mask's from 34-103 to 32-33 ms with the stored one (bench/levers.md). */
#define TZ_LEVEL_AUTO 100
/* TZ_LEVEL_AUTO from the fast mode on: the trainable stages and the loss,
 * whose records are floats. In a sampling run the first two logits
 * records took 45 ms to compress and 50 to decompress at level 3 (logits
 * of the all-masked first step compress 7x, slowly). */
#define TZ_LEVEL_AUTO_FLOATS 101
/* On a pipe, FIFO or socket both adaptive levels keep below the default
 * mode: there the bytes only cross to the next process, and level 3's
 * ratio (1.93 against 1.75 at -1 for a VQGAN decoder's output with its
 * passed-through fields) costs three times the CPU, on the training step's
 * path. */
#define TZ_COMPRESSES 1.25
#define TZ_STORE_BELOW 1.1
#define TZ_PROBE_EVERY 16
/* A record may not decompress to more than this (bytes); the limit keeps a
 * hostile frame header from asking for 2^60 bytes. TZ_MAX_RECORD env var
 * overrides it. */
#define TZ_MAX_RECORD_DEFAULT ((uint64_t)4 << 30)

struct tz_reader;
struct tz_writer;

/* Open a stream on a file descriptor; name is used in error messages.
 * The reader does not close fd. */
struct tz_reader *tz_reader_open(int fd, const char *name);
/* Open a path ("-" or NULL: stdin); the reader closes it. */
struct tz_reader *tz_reader_open_path(const char *path);

/* Next record: 1 and *rec set (caller frees with st_free), 0 at the end of
 * the stream, -1 on error (message: "name: record i: what"). */
int tz_reader_next(struct tz_reader *r, struct st **rec);

/* Index of the record the next call returns. */
long tz_reader_index(const struct tz_reader *r);
/* Records in the stream according to its seek table, or -1 if it has none
 * (pipes, streams written without one). */
long tz_reader_count(struct tz_reader *r);
/* Jump to record i using the seek table; -1 if not seekable. */
int tz_reader_seek(struct tz_reader *r, long i);
/* Compressed bytes consumed and decompressed bytes produced so far. */
uint64_t tz_reader_bytes_in(const struct tz_reader *r);
uint64_t tz_reader_bytes_out(const struct tz_reader *r);
const char *tz_reader_name(const struct tz_reader *r);
void tz_reader_close(struct tz_reader *r);

/* Writer on fd (not closed by the writer). level: zstd level (1..19,
 * negative for fast modes), TZ_LEVEL_AUTO or TZ_LEVEL_AUTO_FLOATS. seek_table: append a seek
 * table on close (only meaningful for files). A pipe or FIFO is made to
 * hold TZ_PIPE_BYTES where the system allows. */
#define TZ_PIPE_BYTES (1 << 20)
struct tz_writer *tz_writer_open(int fd, const char *name, int level,
                                 int seek_table);
int tz_writer_put(struct tz_writer *w, const struct st *rec);
/* Write the seek table (if asked) and free the writer; -1 on error. */
int tz_writer_close(struct tz_writer *w);
/* Free without writing anything more (after an error). */
void tz_writer_abort(struct tz_writer *w);
uint64_t tz_writer_bytes_in(const struct tz_writer *w);
uint64_t tz_writer_bytes_out(const struct tz_writer *w);
long tz_writer_count(const struct tz_writer *w);

/* CPU seconds this process has spent in zstd, compressing and decompressing
 * records (every reader and writer; TP_FLOPS reports it, cli.c). */
double tz_zstd_seconds(void);

/* An output stream as tools write it: stdout, or a file written atomically
 * (io.h: a temporary renamed into place on close) with a seek table. */
#include "io.h"
struct tz_out {
    struct io_out io;
    struct tz_writer *w;
};
/* path NULL or "-": stdout. The caller refuses a terminal first. */
int tz_out_open(struct tz_out *o, const char *path, int level);
int tz_out_put(struct tz_out *o, const struct st *rec);
/* Seek table, then the file appears under its name. */
int tz_out_close(struct tz_out *o);
/* Nothing appears. */
void tz_out_abort(struct tz_out *o);

#endif
