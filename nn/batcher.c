/* Mini-batches over a borrowed dataset. Everything a batch needs is made by
 * cg_batcher_new: the permutation, one buffer per tensor of [min(batch, N),
 * ...] rows, and, when the last batch of an epoch is short, a view of the
 * buffer's first rows for it. cg_batcher_next only permutes and copies rows
 * into those, so a training loop's epochs allocate nothing. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct cg_batcher {
    const cg_tensor *x, *y; /* borrowed; y may be NULL */
    cg_rng *rng;            /* borrowed; NULL without shuffle */
    int64_t n, batch, nbatches;
    int64_t pos; /* batches handed out this epoch; -1 before it starts */
    bool shuffle;
    int64_t *perm;            /* this epoch's order of the samples */
    cg_tensor *xbuf, *ybuf;   /* [min(batch, n), ...] */
    cg_tensor *xtail, *ytail; /* views of their first rows for a short last batch */
};

/* ---- shuffling ----------------------------------------------------------- */
/* Uniform in [0, range) without modulo bias: draws below 2^64 mod range are
 * redrawn, so every residue is hit by the same number of u64 values. */
static uint64_t below(cg_rng *rng, uint64_t range) {
    uint64_t skip = (0 - range) % range, r;
    do r = cg_rng_u64(rng);
    while (r < skip);
    return r % range;
}

/* The epoch's order: a Fisher-Yates shuffle of the identity rather than of
 * the last order, so it depends only on the rng's state (a run resumed from a
 * checkpoint with the rng sees the same batches). */
static void new_epoch(cg_batcher *b) {
    for (int64_t i = 0; i < b->n; i++) b->perm[i] = i;
    for (int64_t i = b->n - 1; b->shuffle && i > 0; i--) {
        int64_t j = (int64_t)below(b->rng, (uint64_t)i + 1), t = b->perm[i];
        b->perm[i] = b->perm[j];
        b->perm[j] = t;
    }
}

/* ---- gathering ----------------------------------------------------------- */
/* Whether one sample (dims 1..) of t lies in memory as one C-order block. */
static bool rows_contiguous(const cg_tensor *t) {
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 1; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expect) return false;
        expect *= t->shape[d];
    }
    return true;
}

/* Copies the nd dims at src, walking their strides, to dst in C order;
 * returns the end of what it wrote. */
static char *copy_strided(char *dst, const char *src, int nd, const int64_t *shape,
                          const int64_t *strides, size_t es) {
    if (nd == 0) {
        memcpy(dst, src, es);
        return dst + es;
    }
    for (int64_t i = 0; i < shape[0]; i++)
        dst = copy_strided(dst, src + (size_t)(i * strides[0]) * es, nd - 1, shape + 1,
                           strides + 1, es);
    return dst;
}

/* Rows rows[0..count) of src into the first count rows of buf. The version
 * bump makes autograd refuse a backward through a graph that saved the
 * previous batch, which this overwrote. */
static void gather(cg_tensor *buf, const cg_tensor *src, const int64_t *rows, int64_t count) {
    size_t es = cg_dtype_size(src->dtype);
    size_t row_bytes = (size_t)cgi_numel(src->ndim - 1, src->shape + 1) * es;
    bool flat = rows_contiguous(src);
    const char *base = cgi_ptr(src);
    char *dst = cgi_ptr(buf);
    for (int64_t i = 0; i < count; i++, dst += row_bytes) {
        const char *row = base + (size_t)(rows[i] * src->strides[0]) * es;
        if (flat)
            memcpy(dst, row, row_bytes);
        else
            copy_strided(dst, row, src->ndim - 1, src->shape + 1, src->strides + 1, es);
    }
    cgi_bump_version(buf);
}

/* ---- construction -------------------------------------------------------- */
static bool check_args(const cg_tensor *x, const cg_tensor *y, int64_t batch, bool shuffle,
                       const cg_rng *rng) {
    const char *op = "cg_batcher_new";
    char s0[160], s1[160];
    if (x->ndim < 1 || (y && y->ndim < 1))
        cgi_error(NULL, CG_ERR_SHAPE, "%s: x %s and y %s need a sample dim (rank >= 1)", op,
                  cg_shape_str(x, s0, sizeof s0), y ? cg_shape_str(y, s1, sizeof s1) : "NULL");
    else if (y && y->shape[0] != x->shape[0])
        cgi_error(NULL, CG_ERR_SHAPE, "%s: x %s and y %s differ in their sample count", op,
                  cg_shape_str(x, s0, sizeof s0), cg_shape_str(y, s1, sizeof s1));
    else if (batch < 1)
        cgi_error(NULL, CG_ERR_ARG, "%s: batch %lld must be >= 1", op, (long long)batch);
    else if (shuffle && !rng)
        cgi_error(NULL, CG_ERR_ARG, "%s: shuffle needs an rng", op);
    else
        return true;
    return false;
}

/* A buffer of `rows` samples of t, and in *tail a view of its first `tail`
 * rows when tail > 0. false (error recorded) when either cannot be made. */
static bool make_buffer(const cg_tensor *t, int64_t rows, int64_t tail, cg_tensor **buf,
                        cg_tensor **tailv) {
    int64_t shape[CG_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[0] = rows;
    *buf = cgi_new(NULL, "cg_batcher_new", t->dtype, t->ndim, shape);
    if (*buf && tail > 0) *tailv = cgi_narrow(NULL, *buf, 0, 0, tail);
    return *buf && (tail == 0 || *tailv);
}

cg_batcher *cg_batcher_new(const cg_tensor *x, const cg_tensor *y, int64_t batch, bool shuffle,
                           bool drop_last, cg_rng *rng) {
    cg_ctx *ctx = NULL;
    CGI_NULL_CHECK(x, "cg_batcher_new");
    if (y && cgi_stale(y)) {
        cgi_stale_error_as(NULL, "cg_batcher_new", "y", -1, y);
        return NULL;
    }
    if (!check_args(x, y, batch, shuffle, rng)) return NULL;
    cg_batcher *b = cgi_alloc(NULL, "cg_batcher_new", sizeof *b);
    if (!b) return NULL;
    int64_t n = x->shape[0], rem = n % batch;
    *b = (cg_batcher){.x = x,
                      .y = y,
                      .rng = shuffle ? rng : NULL,
                      .n = n,
                      .batch = batch,
                      .nbatches = n / batch + (rem && !drop_last),
                      .pos = -1,
                      .shuffle = shuffle};
    /* Only a short batch after full ones needs a view: a lone short batch
     * (n < batch) fills the whole buffer. */
    int64_t rows = n < batch ? n : batch, tail = drop_last || n < batch ? 0 : rem;
    b->perm = cgi_alloc(NULL, "cg_batcher_new", (size_t)(n ? n : 1) * sizeof *b->perm);
    bool ok = b->perm && make_buffer(x, rows, tail, &b->xbuf, &b->xtail) &&
              (!y || make_buffer(y, rows, tail, &b->ybuf, &b->ytail));
    if (ok) return b;
    cg_batcher_free(b);
    return NULL;
}

/* ---- iteration ----------------------------------------------------------- */
bool cg_batcher_next(cg_batcher *b, cg_tensor **xb, cg_tensor **yb) {
    if (yb) *yb = NULL;
    if (!b || !xb) {
        cgi_error(NULL, CG_ERR_ARG, "cg_batcher_next: %s is NULL", b ? "xb" : "batcher");
        return false;
    }
    *xb = NULL;
    /* the dataset is borrowed: a context's tensors die at its reset */
    const cg_tensor *dead = cgi_stale(b->x) ? b->x : b->y && cgi_stale(b->y) ? b->y : NULL;
    if (dead) {
        cgi_stale_error_as(NULL, "cg_batcher_next", dead == b->x ? "x" : "y", -1, dead);
        return false;
    }
    if (b->pos < 0) {
        new_epoch(b);
        b->pos = 0;
    }
    if (b->pos == b->nbatches) {
        b->pos = -1; /* the next call starts a new epoch */
        return false;
    }
    int64_t start = b->pos++ * b->batch, count = b->n - start;
    if (count > b->batch) count = b->batch;
    bool short_batch = count < cg_dim(b->xbuf, 0);
    gather(b->xbuf, b->x, b->perm + start, count);
    *xb = short_batch ? b->xtail : b->xbuf;
    if (b->y) {
        gather(b->ybuf, b->y, b->perm + start, count);
        if (yb) *yb = short_batch ? b->ytail : b->ybuf;
    }
    return true;
}

int64_t cg_batcher_nbatches(const cg_batcher *b) {
    if (!b) {
        cgi_error(NULL, CG_ERR_ARG, "cg_batcher_nbatches: batcher is NULL");
        return -1;
    }
    return b->nbatches;
}

void cg_batcher_free(cg_batcher *b) {
    if (!b) return;
    cg_tensor_free(b->xtail);
    cg_tensor_free(b->ytail);
    cg_tensor_free(b->xbuf);
    cg_tensor_free(b->ybuf);
    free(b->perm);
    free(b);
}
