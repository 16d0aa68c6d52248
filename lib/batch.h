/* batch.h - records as batches of samples: count, slice, concatenate, gather.
 *
 * A record (st.h) holds one batch of B samples. B is found this way:
 *   1. if __metadata__["keys"] is present it must be a JSON array and B is its
 *      length; at least one field must then have B rows (unless the record
 *      has no field of rank >= 1 at all);
 *   2. otherwise B is the leading dim shared by the most fields of rank >= 1
 *      (ties: the dim of the first such field in record order);
 *   3. a record with no field of rank >= 1 and no keys has B = 0 and no
 *      batch dimension.
 * Fields of rank >= 1 whose leading dim is B are "batched": they carry one
 * row per sample. Every other field (scalars, fields with another leading
 * dim) is "per-record": it passes through slices and concatenations
 * unchanged, taken from the record of the first sample. Keys disambiguate a
 * per-record field that happens to have B rows; without them it would count
 * as batched.
 *
 * Batched fields of records joined together must match: the same names,
 * dtypes, ranks and trailing dims (everything after the batch dim), and
 * either all records have keys or none does. The error names the field.
 * Metadata other than "keys" is taken from the record of the first sample.
 *
 * Sample keys are any JSON values (file names in practice); the keys of a
 * result are the keys of its samples, in order, written as compact JSON.
 */
#ifndef TP_BATCH_H
#define TP_BATCH_H

#include "st.h"

/* Samples in a record (B above), or -1 with a message if "keys" is
 * malformed or matches no field. */
long batch_samples(const struct st *rec);

/* 1 if the record has a batch dimension (a field of rank >= 1 or keys),
 * 0 if not, -1 on malformed keys. */
int batch_has_dim(const struct st *rec);

/* 1 if field t of rec is batched, 0 if per-record, -1 on malformed keys. */
int batch_field_is_batched(const struct st *rec, const struct st_tensor *t);

/* -1 with "field 'x': ..." unless records a and b can be joined. */
int batch_compatible(const struct st *a, const struct st *b);

/* Samples [i0, i0+n) of rec as a new record; NULL with a message if the
 * range is out of bounds or the record is malformed. */
struct st *batch_slice(const struct st *rec, long i0, long n);

/* The samples of recs[0..nrec) in order, as one record (nrec >= 1). */
struct st *batch_concat(struct st *const *recs, int nrec);

/* Sample i of record recs[rec]. */
struct batch_ref {
    int rec;
    long i;
};

/* A record of n samples, sample j being refs[j]. Per-record fields and
 * metadata come from the record of refs[0] (recs[0] when n is 0). Only the
 * records refs point into are examined (and checked against that one), so
 * recs may be a large table. */
struct st *batch_gather(struct st *const *recs, int nrec, const struct batch_ref *refs,
                        long n);

#endif
