/* Mini-batches over a borrowed dataset. Everything a batch needs is made by
 * cg_batcher_new (and remade by cg_batcher_shard): the permutation, a
 * replica's share of it when sharded, one buffer per tensor of
 * [min(batch, n_r), ...] rows (n_r the samples an epoch hands out: N, or the
 * shard's size) and, when the last batch of an epoch is short, a view of the
 * buffer's first rows for it. cg_batcher_next only permutes and copies rows
 * into those, so a training loop's epochs allocate nothing. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* The batch buffers: [min(batch, n_r), ...] each, and views of their first
 * rows for a short last batch (NULL when there is none; y's all NULL without
 * y). */
typedef struct buffers {
    cg_tensor *x, *y, *xtail, *ytail;
} buffers;

struct cg_batcher {
    const cg_tensor *x, *y; /* borrowed; y may be NULL */
    cg_rng *rng;            /* borrowed; NULL without shuffle */
    int64_t n, batch, nbatches;
    int64_t rank, replicas; /* the shard handed out: 0 of 1 when not sharded */
    int64_t nshard;         /* n_r: samples per epoch, n when not sharded */
    int64_t pos;            /* batches handed out this epoch; -1 before it starts */
    bool shuffle, drop_last;
    int64_t *perm;  /* this epoch's order of all n samples */
    int64_t *shard; /* [nshard]: this replica's part of perm; NULL with 1 replica */
    buffers buf;
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
    /* DistributedSampler's indices[rank:total:replicas] of perm padded by
     * wrapping to its start; a position p < nshard * replicas <= 2n (or p =
     * rank when nshard is 1), so it cannot overflow. */
    for (int64_t i = 0; b->shard && i < b->nshard; i++)
        b->shard[i] = b->perm[(b->rank + i * b->replicas) % b->n];
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
 * rows when tail > 0. false (error recorded for op) when either cannot be
 * made. */
static bool make_buffer(const char *op, const cg_tensor *t, int64_t rows, int64_t tail,
                        cg_tensor **buf, cg_tensor **tailv) {
    int64_t shape[CG_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[0] = rows;
    *buf = cgi_new(NULL, op, t->dtype, t->ndim, shape);
    if (*buf && tail > 0) *tailv = cgi_narrow(NULL, *buf, 0, 0, tail);
    return *buf && (tail == 0 || *tailv);
}

static void free_buffers(buffers *f) {
    cg_tensor_free(f->xtail);
    cg_tensor_free(f->ytail);
    cg_tensor_free(f->x);
    cg_tensor_free(f->y);
    *f = (buffers){0};
}

/* The buffers for epochs of n samples in batches of `batch`: only a short
 * batch after full ones needs a view, a lone short batch (n < batch) fills
 * the whole buffer. Unchanged (true) when *f already has those sizes, else
 * replaced; false (error recorded for op, *f untouched) when out of memory. */
static bool fit_buffers(const char *op, const cg_batcher *b, int64_t n, buffers *f) {
    int64_t rows = n < b->batch ? n : b->batch;
    int64_t tail = b->drop_last || n < b->batch ? 0 : n % b->batch;
    if (f->x && cg_dim(f->x, 0) == rows && (f->xtail ? cg_dim(f->xtail, 0) : 0) == tail)
        return true;
    buffers g = {0};
    bool ok = make_buffer(op, b->x, rows, tail, &g.x, &g.xtail) &&
              (!b->y || make_buffer(op, b->y, rows, tail, &g.y, &g.ytail));
    if (!ok) {
        free_buffers(&g);
        return false;
    }
    free_buffers(f);
    *f = g;
    return true;
}

static int64_t count_batches(int64_t n, int64_t batch, bool drop_last) {
    return n / batch + (n % batch && !drop_last);
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
    int64_t n = x->shape[0];
    *b = (cg_batcher){.x = x,
                      .y = y,
                      .rng = shuffle ? rng : NULL,
                      .n = n,
                      .batch = batch,
                      .nbatches = count_batches(n, batch, drop_last),
                      .replicas = 1,
                      .nshard = n,
                      .pos = -1,
                      .shuffle = shuffle,
                      .drop_last = drop_last};
    b->perm = cgi_alloc(NULL, "cg_batcher_new", (size_t)(n ? n : 1) * sizeof *b->perm);
    if (b->perm && fit_buffers("cg_batcher_new", b, n, &b->buf)) return b;
    cg_batcher_free(b);
    return NULL;
}

/* The dataset is borrowed: a context's tensors die at its reset. CG_OK, or
 * CG_ERR_STATE (recorded for op) when x or y has. */
static cg_status data_alive(const char *op, const cg_batcher *b) {
    const cg_tensor *dead = cgi_stale(b->x) ? b->x : b->y && cgi_stale(b->y) ? b->y : NULL;
    return dead ? cgi_stale_error_as(NULL, op, dead == b->x ? "x" : "y", -1, dead) : CG_OK;
}

/* ---- sharding ------------------------------------------------------------ */
static cg_status check_shard(const cg_batcher *b, int64_t rank, int64_t replicas) {
    const char *op = "cg_batcher_shard";
    if (replicas < 1)
        return cgi_error(NULL, CG_ERR_ARG, "%s: replicas %lld must be >= 1", op,
                         (long long)replicas);
    if (rank < 0 || rank >= replicas)
        return cgi_error(NULL, CG_ERR_ARG, "%s: rank %lld is outside [0, %lld)", op,
                         (long long)rank, (long long)replicas);
    if (b->drop_last && b->n > 0 && b->n < replicas)
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: %lld replicas with drop_last leave none of the %lld samples", op,
                         (long long)replicas, (long long)b->n);
    if (b->pos >= 0)
        return cgi_error(NULL, CG_ERR_STATE,
                         "%s: called in the middle of an epoch (%lld of %lld batches handed "
                         "out); finish it (cg_batcher_next returns false) first",
                         op, (long long)b->pos, (long long)b->nbatches);
    return CG_OK;
}

cg_status cg_batcher_shard(cg_batcher *b, int64_t rank, int64_t replicas) {
    const char *op = "cg_batcher_shard";
    if (!b) return cgi_null_arg(NULL, op, "batcher");
    cg_status st = check_shard(b, rank, replicas);
    if (st == CG_OK) st = data_alive(op, b); /* the buffers copy x's and y's shapes */
    if (st != CG_OK) return st;
    /* DistributedSampler's num_samples, without its ceil's overflow */
    int64_t n = b->n / replicas + (!b->drop_last && b->n % replicas != 0);
    int64_t *shard = NULL;
    if (replicas > 1 && !(shard = cgi_alloc(NULL, op, (size_t)(n ? n : 1) * sizeof *shard)))
        return cg_last_status();
    if (!fit_buffers(op, b, n, &b->buf)) {
        free(shard);
        return cg_last_status();
    }
    free(b->shard);
    b->shard = shard;
    b->rank = rank;
    b->replicas = replicas;
    b->nshard = n;
    b->nbatches = count_batches(n, b->batch, b->drop_last);
    return CG_OK;
}

/* ---- iteration ----------------------------------------------------------- */
bool cg_batcher_next(cg_batcher *b, cg_tensor **xb, cg_tensor **yb) {
    if (yb) *yb = NULL;
    if (!b || !xb) {
        cgi_error(NULL, CG_ERR_ARG, "cg_batcher_next: %s is NULL", b ? "xb" : "batcher");
        return false;
    }
    *xb = NULL;
    if (data_alive("cg_batcher_next", b) != CG_OK) return false;
    if (b->pos < 0) {
        new_epoch(b);
        b->pos = 0;
    }
    if (b->pos == b->nbatches) {
        b->pos = -1; /* the next call starts a new epoch */
        return false;
    }
    int64_t start = b->pos++ * b->batch, count = b->nshard - start;
    if (count > b->batch) count = b->batch;
    const int64_t *rows = (b->shard ? b->shard : b->perm) + start;
    bool short_batch = count < cg_dim(b->buf.x, 0);
    gather(b->buf.x, b->x, rows, count);
    *xb = short_batch ? b->buf.xtail : b->buf.x;
    if (b->y) {
        gather(b->buf.y, b->y, rows, count);
        if (yb) *yb = short_batch ? b->buf.ytail : b->buf.y;
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
    free_buffers(&b->buf);
    free(b->perm);
    free(b->shard);
    free(b);
}
