/* st.h - safetensors: a set of named tensors plus string metadata.
 *
 * One type serves both uses in tokpipe: a record of a .tz stream (one batch,
 * see tz.h) and a weights/gradients/optimizer-state file (memory-mapped).
 *
 * Byte layout (little-endian, row-major):
 *   1. [0,8)      N: u64, the header length in bytes (padding included)
 *   2. [8,8+N)    UTF-8 JSON object, starts with '{', padded with spaces to a
 *                 multiple of 8: {"__metadata__":{"k":"v",..},
 *                 "name":{"dtype":"F32","shape":[..],"data_offsets":[B,E]},..}
 *   3. [8+N,EOF)  data buffer; offsets are relative to its start, E exclusive.
 *
 * The reader (st_parse) checks everything the reference reader checks:
 *   N <= ST_MAX_HEADER and 8+N <= size; valid JSON object, no duplicate keys;
 *   metadata values are strings; known dtype; ndim <= ST_MAX_DIMS; the shape
 *   product does not overflow; E-B == numel*size; tensors sorted by offset
 *   tile the buffer with no gap and no overlap; the last E ends the blob
 *   exactly. Nothing is used before all checks pass.
 *
 * The writer (st_serialize) follows safetensors' own: tensors sorted by dtype
 * (widest first) then name, packed with no padding, compact JSON with
 * __metadata__ first (always with "format":"pt"), header padded with spaces,
 * so each tensor is aligned to its element size.
 */
#ifndef TP_ST_H
#define TP_ST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000u /* bytes; the reference reader's limit */

/* Order matters: it is safetensors' own dtype order, used by the writer's
 * sort. New types go before ST_DTYPE_COUNT only if they keep that order. */
enum st_dtype {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_F64,
    ST_I64,
    ST_U64,
    ST_DTYPE_COUNT
};

struct st_tensor {
    char *name;
    enum st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    void *data;   /* aligned to the element size at least */
    void *mem;    /* the block data lies in when the tensor owns it (freed on removal), else NULL */
};

struct st {
    int n, cap;
    struct st_tensor *t;     /* in insertion (or file) order */
    int nmeta, metacap;
    char **meta_key, **meta_val;
    void *blob;              /* the parsed buffer tensors may point into */
    size_t blob_size;
    int blob_mapped;         /* 1: munmap, 0: free */
    void *blob_block;        /* the malloc'd block blob lies in, freed in its stead; or NULL */
    /* 1: written in the order the tensors were put in, not by name (a
     * model's weights in their table's order: params_load_file maps them) */
    int put_order;
    /* st_load of a regular file: its device and inode (0 otherwise) */
    uint64_t file_dev, file_ino;
};

const char *st_dtype_name(enum st_dtype dt);
int st_dtype_parse(const char *s);            /* -1 if unknown */
size_t st_dtype_size(enum st_dtype dt);

int64_t st_numel(const struct st_tensor *t);
/* "[2,3,4]" into buf; returns buf. */
char *st_shape_str(const struct st_tensor *t, char *buf, size_t n);

struct st *st_new(void);
void st_free(struct st *s);

/* Parse and validate a blob. On success *out owns blob (freed with free(),
 * or munmap'd if mapped is 1). On failure the blob is NOT taken. */
int st_parse(struct st **out, void *blob, size_t size, int mapped);
/* The same for a blob inside a malloc'd block (placed for its alignment):
 * on success *out owns the block. */
int st_parse_block(struct st **out, void *block, void *blob, size_t size);

/* Load a safetensors file by memory-mapping it (MAP_PRIVATE: tensors may be
 * modified in memory without touching the file). */
int st_load(struct st **out, const char *path);

/* The serialization as pieces in order, the tensors' data not copied: v[0]
 * the length and header (in head), then each tensor's data; total bytes. */
struct st_pieces {
    struct iovec *v;
    int n;
    size_t total;
    void *head;
};
int st_pieces(const struct st *s, struct st_pieces *p);
void st_pieces_free(struct st_pieces *p);
/* The pieces in one buffer (tp_malloc_record; free()). */
void *st_pieces_join(const struct st_pieces *p);

/* Serialize to a malloc'd buffer, as st_save writes a file (its data on a
 * page from ST_PAGE_DATA_MIN on). st_serialized_size: the size in a stream
 * record (st_pieces), 8-byte aligned. */
int st_serialize(const struct st *s, void **buf, size_t *size);
size_t st_serialized_size(const struct st *s);

/* Write atomically: temporary file in the same directory, fsync, rename. */
int st_save(const struct st *s, const char *path);
/* Where st_save begins the data on a page of ST_PAGE bytes (the header
 * padded with spaces, as safetensors allows): from ST_PAGE_DATA_MIN bytes
 * of data on. */
#define ST_PAGE ((size_t)4096)
#define ST_PAGE_DATA_MIN ((size_t)1 << 20)

struct st_tensor *st_find(const struct st *s, const char *name);

/* Find a field and check its dtype and rank (ndim < 0: any rank). Sets a
 * one-line error naming the field on a miss. */
struct st_tensor *st_require(const struct st *s, const char *name,
                             enum st_dtype dt, int ndim);

/* Add a tensor (replacing one of the same name) with zeroed, owned data. */
struct st_tensor *st_put(struct st *s, const char *name, enum st_dtype dt,
                         int ndim, const int64_t *shape);
/* Same, with the shape given as arguments: st_put_v(s, "x", ST_F32, 2, B, N). */
struct st_tensor *st_put_v(struct st *s, const char *name, enum st_dtype dt,
                           int ndim, ...);
/* Add a tensor that refers to memory the caller keeps alive (not freed by
 * st_free): how a model's contiguous parameter buffer is seen as tensors. */
struct st_tensor *st_put_ref(struct st *s, const char *name, enum st_dtype dt,
                             int ndim, const int64_t *shape, void *data);
/* Add a copy of another tensor (name may differ). */
struct st_tensor *st_put_copy(struct st *s, const char *name,
                              const struct st_tensor *src);
int st_remove(struct st *s, const char *name);   /* 0 removed, -1 absent */

const char *st_meta_get(const struct st *s, const char *key);   /* NULL */
void st_meta_set(struct st *s, const char *key, const char *val);
void st_meta_remove(struct st *s, const char *key);

/* Set every KEY=VALUE of kvlist, items separated by sep ("k=v k=v" with
 * sep ' ', the presets' form). An item without '=' is ignored: -1. */
int st_meta_apply_kv(struct st *s, const char *kvlist, char sep);

/* Metadata helpers with parse checks: -1 and a message if absent/malformed. */
int st_meta_get_long(const struct st *s, const char *key, long *out);
int st_meta_get_double(const struct st *s, const char *key, double *out);
void st_meta_set_long(struct st *s, const char *key, long v);
void st_meta_set_double(struct st *s, const char *key, double v);

#endif
