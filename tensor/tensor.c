/* Tensors: storage, creation, inspection and element access. */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- dtypes -------------------------------------------------------------- */
bool cgi_valid_dtype(cg_dtype dt) { return dt == CG_F32 || dt == CG_F64 || dt == CG_I64; }
bool cgi_is_float(cg_dtype dt) { return dt == CG_F32 || dt == CG_F64; }

size_t cg_dtype_size(cg_dtype dt) {
    switch (dt) {
    case CG_F32: return 4;
    case CG_F64: return 8;
    case CG_I64: return 8;
    }
    cgi_error(NULL, CG_ERR_DTYPE, "cg_dtype_size: invalid dtype %d", (int)dt);
    return 0;
}

const char *cg_dtype_name(cg_dtype dt) {
    switch (dt) {
    case CG_F32: return "f32";
    case CG_F64: return "f64";
    case CG_I64: return "i64";
    }
    return "invalid";
}

cg_status cgi_check_value(cg_ctx *ctx, const char *op, cg_dtype dt, double v) {
    bool ok = dt == CG_F64   ? true
              : dt == CG_F32 ? isnan(v) || isinf(v) || fabs(v) <= FLT_MAX
                             : v >= -9223372036854775808.0 && v < 9223372036854775808.0;
    if (ok) return CG_OK;
    return cgi_error(ctx, CG_ERR_ARG, "%s: value %g cannot be converted to %s without overflow",
                     op, v, cg_dtype_name(dt));
}

/* ---- shapes -------------------------------------------------------------- */
int64_t cgi_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

void cgi_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i] > 1 ? shape[i] : 1;
    }
}

cg_status cgi_check_shape(cg_ctx *ctx, const char *op, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > CG_MAX_DIMS)
        return cgi_error(ctx, CG_ERR_ARG, "%s: rank %d outside 0..%d", op, ndim, CG_MAX_DIMS);
    if (ndim > 0 && !shape)
        return cgi_error(ctx, CG_ERR_ARG, "%s: shape is NULL for rank %d", op, ndim);
    /* The product of the dims above 0, not the element count: a zero dim
     * makes the count 0, but the strides of the other dims are still their
     * products, which must not overflow (a [0, 2^62, 2^62] tensor). */
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        char buf[160];
        if (shape[i] < 0)
            return cgi_error(ctx, CG_ERR_SHAPE, "%s: %s: dim %d is negative", op,
                             cgi_fmt_shape(buf, sizeof buf, ndim, shape), i);
        if (shape[i] > 0 && n > (INT64_MAX / 16) / shape[i])
            return cgi_error(ctx, CG_ERR_SHAPE, "%s: %s: too many elements", op,
                             cgi_fmt_shape(buf, sizeof buf, ndim, shape));
        if (shape[i] > 0) n *= shape[i];
    }
    return CG_OK;
}

/* ---- construction -------------------------------------------------------- */
/* extra: bytes after the header in the same block (context tensors only). */
static cg_tensor *header_new(cg_ctx *ctx, const char *op, size_t extra) {
    cg_tensor *t = cgi_alloc_header(ctx, op, extra);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    cgi_stamp_header(t, ctx);
    return t;
}

static void set_geometry(cg_tensor *t, int ndim, const int64_t *shape, const int64_t *strides,
                         int64_t offset) {
    t->ndim = ndim;
    t->offset = offset;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->strides[i] = strides[i];
    }
}

#define STORAGE_HEAD ((sizeof(cgi_storage) + 63) & ~(size_t)63)
_Static_assert(sizeof(cg_tensor) % 64 == 0, "a storage right after a header stays aligned");

/* Storage header and data in one block at mem, data 64-byte aligned. */
static cgi_storage *storage_init(void *mem, size_t nbytes, cgi_storage_kind kind) {
    cgi_storage *s = mem;
    s->data = (char *)s + STORAGE_HEAD;
    s->nbytes = nbytes;
    s->refcount = 1;
    s->version = 0;
    s->base = NULL;
    s->kind = kind;
    s->serial = 0;
    s->room = 0;
    return s;
}

/* A caller-owned tensor's storage (a context's comes with its header). */
static cgi_storage *storage_new(const char *op, size_t nbytes) {
    cgi_storage *s = aligned_alloc(64, (STORAGE_HEAD + nbytes + 63) & ~(size_t)63);
    if (!s) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory (%zu bytes)", op, nbytes);
        return NULL;
    }
    return storage_init(s, nbytes, CGI_STORAGE_HEAP);
}

/* ---- context blocks: header, storage and data in one arena block ---------- */
/* A recycled block waiting in its context's list, written over its data. */
typedef struct cgi_free_block {
    struct cgi_free_block *next;
    cg_tensor *block;
    size_t room;
} cgi_free_block;

/* The smallest recycled block that holds nbytes without wasting more than
 * as much again, unlinked (*room: its data bytes); NULL when none does. */
static cg_tensor *take_recycled(cg_ctx *ctx, size_t nbytes, size_t *room) {
    cgi_free_block **best = NULL;
    for (cgi_free_block **f = &ctx->recycled; *f; f = &(*f)->next)
        if ((*f)->room >= nbytes && (*f)->room / 2 <= nbytes &&
            (!best || (*f)->room < (*best)->room))
            best = f;
    if (!best) return NULL;
    cgi_free_block *b = *best;
    *best = b->next;
    *room = b->room;
    return b->block;
}

/* A tensor header with its storage and nbytes of data after it, reusing a
 * recycled block when one fits. */
static cg_tensor *block_new(cg_ctx *ctx, const char *op, size_t nbytes) {
    size_t room = nbytes;
    cg_tensor *t =
        nbytes >= CGI_RECYCLE_MIN && ctx->recycled ? take_recycled(ctx, nbytes, &room) : NULL;
    if (t) {
        memset(t, 0, sizeof *t);
        cgi_stamp_header(t, ctx);
    } else if (!(t = header_new(ctx, op, STORAGE_HEAD + nbytes))) {
        return NULL;
    }
    t->storage = storage_init(t + 1, nbytes, CGI_STORAGE_ARENA);
    t->storage->serial = ++ctx->serial;
    t->storage->room = room;
    if (room >= CGI_RECYCLE_MIN) ctx->recent[ctx->nrecent++ % CGI_RECENT] = t->storage;
    return t;
}

int cgi_recent_blocks(const cg_ctx *ctx, uint64_t serial, cgi_storage **out) {
    int n = 0;
    for (unsigned i = 0; i < CGI_RECENT && i < ctx->nrecent; i++) {
        cgi_storage *s = ctx->recent[(ctx->nrecent - 1 - i) % CGI_RECENT];
        if (s->serial <= serial) break; /* older from here on */
        if (s->room) out[n++] = s;      /* not recycled */
    }
    return n;
}

void cgi_recycle(cg_ctx *ctx, cgi_storage *s) {
    if (!ctx || !s || s->kind != CGI_STORAGE_ARENA || s->room < CGI_RECYCLE_MIN ||
        s->data != (char *)s + STORAGE_HEAD)
        return;
    cg_tensor *block = (cg_tensor *)s - 1;
    if (block->storage != s || block->ctx != ctx) return;
    cgi_free_block *f = s->data;
    *f = (cgi_free_block){ctx->recycled, block, s->room};
    ctx->recycled = f;
    s->room = 0;      /* a second call leaves it alone */
    block->check = 0; /* its header is no tensor any more (cgi_stale) */
}

cg_tensor *cgi_new(cg_ctx *ctx, const char *op, cg_dtype dt, int ndim, const int64_t *shape) {
    if (!cgi_valid_dtype(dt)) {
        cgi_error(ctx, CG_ERR_DTYPE, "%s: invalid dtype %d", op, (int)dt);
        return NULL;
    }
    if (cgi_check_shape(ctx, op, ndim, shape) != CG_OK) return NULL;
    int64_t strides[CG_MAX_DIMS];
    cgi_contiguous_strides(ndim, shape, strides);
    size_t nbytes = (size_t)cgi_numel(ndim, shape) * cg_dtype_size(dt);
    if (nbytes > SIZE_MAX / 2) {
        cgi_error(ctx, CG_ERR_NOMEM, "%s: out of memory (%zu bytes)", op, nbytes);
        return NULL;
    }
    cg_tensor *t = ctx ? block_new(ctx, op, nbytes) : header_new(NULL, op, 0);
    if (!t) return NULL;
    if (!ctx && !(t->storage = storage_new(op, nbytes))) {
        free(t);
        return NULL;
    }
    t->dtype = dt;
    set_geometry(t, ndim, shape, strides, 0);
    return t;
}

/* Dims in the order of like's strides, largest first (ties keep dim order). */
static void stride_order(const cg_tensor *like, int *order) {
    for (int i = 0; i < like->ndim; i++) {
        order[i] = i;
        for (int j = i; j > 0 && like->strides[order[j]] > like->strides[order[j - 1]]; j--) {
            int o = order[j];
            order[j] = order[j - 1], order[j - 1] = o;
        }
    }
}

cg_tensor *cgi_new_in_layout_of(cg_ctx *ctx, const char *op, const cg_tensor *like,
                                const int64_t *shape) {
    int n = like->ndim, order[CG_MAX_DIMS];
    cg_tensor *t = cgi_new(ctx, op, like->dtype, n, shape);
    bool dense_rows = n > 0;
    for (int i = 0; i < n; i++) dense_rows = dense_rows && like->strides[i] > 0;
    if (!t || !dense_rows) return t;
    stride_order(like, order);
    if (order[n - 1] != n - 1) return t;
    int64_t st = 1;
    for (int i = n - 1; i >= 0; i--) {
        t->strides[order[i]] = st;
        st *= shape[order[i]];
    }
    return t;
}

cg_tensor *cgi_view_of(cg_ctx *ctx, const char *op, const cg_tensor *t, int ndim,
                       const int64_t *shape, const int64_t *strides, int64_t offset) {
    if (!ctx && t->storage->kind == CGI_STORAGE_ARENA) {
        cgi_error(NULL, CG_ERR_STATE,
                  "%s: a view of a context tensor must be made in a context", op);
        return NULL;
    }
    cg_tensor *v = header_new(ctx, op, 0);
    if (!v) return NULL;
    v->storage = t->storage;
    if (!ctx) v->storage->refcount++;
    v->dtype = t->dtype;
    set_geometry(v, ndim, shape, strides, offset);
    return v;
}

/* Drops one reference on a heap or borrowed storage; a slice's last
 * reference drops one on the storage it slices. */
static void storage_release(cgi_storage *s) {
    while (s && s->kind != CGI_STORAGE_ARENA && --s->refcount == 0) {
        cgi_storage *base = s->base;
        free(s);
        s = base;
    }
}

void cg_tensor_free(cg_tensor *t) {
    if (!t || !cgi_usable(t, "cg_tensor_free") || t->ctx) return;
    storage_release(t->storage);
    cg_tensor_free(t->grad);
    free(t->hook);
    t->check = 0; /* best effort: a use after free fails cgi_stale while the bytes last */
    free(t);
}

/* ---- element load/store ---------------------------------------------------- */
static double load(cg_dtype dt, const char *p) {
    switch (dt) {
    case CG_F32: return *(const float *)p;
    case CG_F64: return *(const double *)p;
    case CG_I64: return (double)*(const int64_t *)p;
    }
    return NAN;
}

static void store(cg_dtype dt, char *p, double v) {
    switch (dt) {
    case CG_F32: *(float *)p = (float)v; break;
    case CG_F64: *(double *)p = v; break;
    case CG_I64: *(int64_t *)p = cgi_f64_to_i64(v); break;
    }
}

static void fill_contiguous(cg_tensor *t, double v) {
    int64_t n = cgi_numel(t->ndim, t->shape);
    char *p = cgi_ptr(t);
    size_t es = cg_dtype_size(t->dtype);
    if (v == 0.0 && !signbit(v)) {
        memset(p, 0, (size_t)n * es);
        return;
    }
    for (int64_t i = 0; i < n; i++) store(t->dtype, p + (size_t)i * es, v);
}

/* ---- creation -------------------------------------------------------------- */
cg_tensor *cg_empty(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape) {
    return cgi_new(ctx, "cg_empty", dt, ndim, shape);
}

static cg_tensor *filled(cg_ctx *ctx, const char *op, cg_dtype dt, int ndim,
                         const int64_t *shape, double v) {
    if (cgi_valid_dtype(dt) && cgi_check_value(ctx, op, dt, v) != CG_OK) return NULL;
    cg_tensor *t = cgi_new(ctx, op, dt, ndim, shape);
    if (t) fill_contiguous(t, v);
    return t;
}

cg_tensor *cg_zeros(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape) {
    return filled(ctx, "cg_zeros", dt, ndim, shape, 0.0);
}
cg_tensor *cg_ones(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape) {
    return filled(ctx, "cg_ones", dt, ndim, shape, 1.0);
}
cg_tensor *cg_full(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape, double v) {
    return filled(ctx, "cg_full", dt, ndim, shape, v);
}
cg_tensor *cg_scalar(cg_ctx *ctx, cg_dtype dt, double v) {
    return filled(ctx, "cg_scalar", dt, 0, NULL, v);
}

cg_tensor *cg_full_like(cg_ctx *ctx, const cg_tensor *like, double v) {
    CGI_NULL_CHECK(like, "cg_full_like");
    return filled(ctx, "cg_full_like", like->dtype, like->ndim, like->shape, v);
}
cg_tensor *cg_zeros_like(cg_ctx *ctx, const cg_tensor *like) {
    CGI_NULL_CHECK(like, "cg_zeros_like");
    return filled(ctx, "cg_zeros_like", like->dtype, like->ndim, like->shape, 0.0);
}
cg_tensor *cg_ones_like(cg_ctx *ctx, const cg_tensor *like) {
    CGI_NULL_CHECK(like, "cg_ones_like");
    return filled(ctx, "cg_ones_like", like->dtype, like->ndim, like->shape, 1.0);
}

cg_tensor *cg_arange(cg_ctx *ctx, cg_dtype dt, double start, double end, double step) {
    if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step)) {
        cgi_error(ctx, CG_ERR_ARG,
                  "cg_arange: start %g, end %g, step %g: need finite "
                  "values and a non-zero step",
                  start, end, step);
        return NULL;
    }
    double len = ceil((end - start) / step);
    if (len > 1e15) {
        cgi_error(ctx, CG_ERR_ARG, "cg_arange: %g elements is too many", len);
        return NULL;
    }
    int64_t n = len > 0 ? (int64_t)len : 0;
    cg_tensor *t = cgi_new(ctx, "cg_arange", dt, 1, &n);
    size_t es = t ? cg_dtype_size(dt) : 0;
    for (int64_t i = 0; t && i < n; i++)
        store(dt, cgi_ptr(t) + (size_t)i * es, start + (double)i * step);
    return t;
}

/* Symmetric like PyTorch: the first half counts up from start, the second
 * half down from end, so both ends are exact. */
cg_tensor *cg_linspace(cg_ctx *ctx, cg_dtype dt, double start, double end, int64_t steps) {
    if (steps < 0 || !isfinite(start) || !isfinite(end)) {
        cgi_error(ctx, CG_ERR_ARG,
                  "cg_linspace: start %g, end %g, steps %lld: need "
                  "finite ends and steps >= 0",
                  start, end, (long long)steps);
        return NULL;
    }
    cg_tensor *t = cgi_new(ctx, "cg_linspace", dt, 1, &steps);
    double d = steps > 1 ? (end - start) / (double)(steps - 1) : 0.0;
    size_t es = t ? cg_dtype_size(dt) : 0;
    for (int64_t i = 0; t && i < steps; i++) {
        double v = (steps == 1 || i < steps / 2) ? start + d * (double)i
                                                 : end - d * (double)(steps - 1 - i);
        store(dt, cgi_ptr(t) + (size_t)i * es, v);
    }
    return t;
}

cg_tensor *cg_eye(cg_ctx *ctx, cg_dtype dt, int64_t rows, int64_t cols) {
    cg_tensor *t = filled(ctx, "cg_eye", dt, 2, (const int64_t[]){rows, cols}, 0.0);
    size_t es = t ? cg_dtype_size(dt) : 0;
    for (int64_t i = 0; t && i < rows && i < cols; i++)
        store(dt, cgi_ptr(t) + (size_t)(i * cols + i) * es, 1.0);
    return t;
}

cg_tensor *cg_from_array(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape,
                         const void *data) {
    cg_tensor *t = cgi_new(ctx, "cg_from_array", dt, ndim, shape);
    if (!t) return NULL;
    size_t nbytes = t->storage->nbytes;
    if (nbytes && !data) {
        cgi_error(ctx, CG_ERR_ARG, "cg_from_array: data is NULL");
        cg_tensor_free(t);
        return NULL;
    }
    if (nbytes) memcpy(cgi_ptr(t), data, nbytes);
    return t;
}

cg_tensor *cg_wrap(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape, void *data) {
    if (!cgi_valid_dtype(dt)) {
        cgi_error(ctx, CG_ERR_DTYPE, "cg_wrap: invalid dtype %d", (int)dt);
        return NULL;
    }
    if (cgi_check_shape(ctx, "cg_wrap", ndim, shape) != CG_OK) return NULL;
    size_t nbytes = (size_t)cgi_numel(ndim, shape) * cg_dtype_size(dt);
    if (nbytes && !data) {
        cgi_error(ctx, CG_ERR_ARG, "cg_wrap: data is NULL");
        return NULL;
    }
    if ((uintptr_t)data % cg_dtype_size(dt)) { /* kernels read whole elements */
        cgi_error(ctx, CG_ERR_ARG, "cg_wrap: data %p is not aligned for %s (%zu bytes)", data,
                  cg_dtype_name(dt), cg_dtype_size(dt));
        return NULL;
    }
    cg_tensor *t = header_new(ctx, "cg_wrap", 0);
    cgi_storage *s = t ? cgi_alloc(ctx, "cg_wrap", sizeof *s) : NULL;
    if (!s) {
        if (!ctx) free(t);
        return NULL;
    }
    *s = (cgi_storage){.data = data,
                       .nbytes = nbytes,
                       .refcount = 1,
                       .kind = ctx ? CGI_STORAGE_ARENA : CGI_STORAGE_BORROWED};
    int64_t strides[CG_MAX_DIMS];
    cgi_contiguous_strides(ndim, shape, strides);
    t->storage = s;
    t->dtype = dt;
    set_geometry(t, ndim, shape, strides, 0);
    return t;
}

/* ---- inspection ------------------------------------------------------------ */
/* An inspector given NULL returns its sentinel (-1, NULL, false, NaN) and
 * reports "op: tensor is NULL", unless an earlier error made the NULL: that
 * one is kept, as by every op (CGI_NULL_CHECK). A stale handle reads as
 * NULL too, with its error recorded (cgi_usable). */
static bool live(const cg_tensor *t, const char *op) {
    if (!t) cgi_null_arg(NULL, op, "tensor");
    return cgi_usable(t, op);
}

cg_dtype cg_dtype_of(const cg_tensor *t) { return live(t, "cg_dtype_of") ? t->dtype : CG_F32; }
int cg_ndim(const cg_tensor *t) { return live(t, "cg_ndim") ? t->ndim : -1; }
const int64_t *cg_shape(const cg_tensor *t) { return live(t, "cg_shape") ? t->shape : NULL; }
const int64_t *cg_strides(const cg_tensor *t) {
    return live(t, "cg_strides") ? t->strides : NULL;
}
int64_t cg_offset(const cg_tensor *t) { return live(t, "cg_offset") ? t->offset : -1; }
int64_t cg_numel(const cg_tensor *t) {
    return live(t, "cg_numel") ? cgi_numel(t->ndim, t->shape) : -1;
}
void *cg_data(const cg_tensor *t) { return live(t, "cg_data") ? cgi_ptr(t) : NULL; }

int64_t cg_dim(const cg_tensor *t, int axis) {
    int a;
    if (!live(t, "cg_dim") || cgi_axis(NULL, "cg_dim", t->ndim, axis, &a) != CG_OK) return -1;
    return t->shape[a];
}

bool cg_is_contiguous(const cg_tensor *t) {
    return live(t, "cg_is_contiguous") && cgi_is_contiguous(t);
}

/* Dims of size 1 may have any stride, as in PyTorch. */
bool cgi_is_contiguous(const cg_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 0) return true;
        if (t->shape[i] != 1 && t->strides[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool cg_same_shape(const cg_tensor *a, const cg_tensor *b) {
    return live(a, "cg_same_shape") && live(b, "cg_same_shape") && cgi_same_shape(a, b);
}

char *cg_shape_str(const cg_tensor *t, char *buf, size_t size) {
    if (!buf && size > 0) {
        cgi_error(NULL, CG_ERR_ARG, "cg_shape_str: buf is NULL for size %zu", size);
        return NULL;
    }
    if (!t || cgi_stale(t)) {
        if (size) snprintf(buf, size, t ? "(stale)" : "NULL");
        return buf;
    }
    return cgi_fmt_shape(buf, size, t->ndim, t->shape);
}

/* ---- element access -------------------------------------------------------- */
static cg_status element_ptr(const cg_tensor *t, const char *op, const int64_t *index,
                             char **out) {
    cg_status s = cgi_check_input(NULL, op, -1, t);
    if (s != CG_OK) return s;
    if (t->ndim > 0 && !index) return cgi_error(NULL, CG_ERR_ARG, "%s: index is NULL", op);
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) {
        int64_t k = index[i] < 0 ? index[i] + t->shape[i] : index[i];
        if (k < 0 || k >= t->shape[i]) {
            char buf[160];
            return cgi_error(NULL, CG_ERR_INDEX, "%s: %s: index %lld out of range for dim %d",
                             op, cg_shape_str(t, buf, sizeof buf), (long long)index[i], i);
        }
        off += k * t->strides[i];
    }
    *out = cgi_ptr(t) + (size_t)off * cg_dtype_size(t->dtype);
    return CG_OK;
}

cg_status cg_get(const cg_tensor *t, const int64_t *index, double *out) {
    char *p;
    cg_status s = element_ptr(t, "cg_get", index, &p);
    if (s == CG_OK && !out) return cgi_error(NULL, CG_ERR_ARG, "cg_get: out is NULL");
    if (s == CG_OK) *out = load(t->dtype, p);
    return s;
}

cg_status cg_get_i64(const cg_tensor *t, const int64_t *index, int64_t *out) {
    char *p;
    cg_status s = element_ptr(t, "cg_get_i64", index, &p);
    if (s == CG_OK && !out) return cgi_error(NULL, CG_ERR_ARG, "cg_get_i64: out is NULL");
    if (s == CG_OK)
        *out = t->dtype == CG_I64 ? *(const int64_t *)p : cgi_f64_to_i64(load(t->dtype, p));
    return s;
}

cg_status cg_set(cg_tensor *t, const int64_t *index, double value) {
    char *p;
    cg_status s = element_ptr(t, "cg_set", index, &p);
    if (s == CG_OK) s = cgi_check_writable("cg_set", t);
    if (s == CG_OK) s = cgi_check_value(t->ctx, "cg_set", t->dtype, value);
    if (s == CG_OK) {
        store(t->dtype, p, value);
        cgi_bump_version(t);
    }
    return s;
}

double cg_item(const cg_tensor *t) {
    if (!live(t, "cg_item")) return NAN;
    if (cgi_numel(t->ndim, t->shape) != 1) {
        char buf[160];
        cgi_error(t->ctx, CG_ERR_SHAPE, "cg_item: %s: needs exactly one element",
                  cg_shape_str(t, buf, sizeof buf));
        return NAN;
    }
    return load(t->dtype, cgi_ptr(t)); /* all strides are irrelevant at numel 1 */
}

/* ---- slices of one buffer ------------------------------------------------------------ */
cg_tensor *cgi_slice_of(const cg_tensor *base, int64_t off, int ndim, const int64_t *shape,
                        const char *op) {
    size_t esize = cg_dtype_size(base->dtype);
    cg_tensor *t = header_new(NULL, op, 0);
    cgi_storage *s = t ? malloc(sizeof *s) : NULL;
    if (!s) {
        free(t);
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", op);
        return NULL;
    }
    int64_t numel = cgi_numel(ndim, shape), strides[CG_MAX_DIMS];
    *s = (cgi_storage){.data = cgi_ptr(base) + (size_t)off * esize,
                       .nbytes = (size_t)numel * esize,
                       .refcount = 1,
                       .kind = CGI_STORAGE_HEAP,
                       .base = base->storage};
    base->storage->refcount++;
    cgi_contiguous_strides(ndim, shape, strides);
    t->storage = s;
    t->dtype = base->dtype;
    set_geometry(t, ndim, shape, strides, 0);
    return t;
}

cg_status cgi_rebind(cg_tensor *t, const cg_tensor *base, int64_t off, const char *op) {
    cg_tensor *slice = cgi_slice_of(base, off, t->ndim, t->shape, op);
    if (!slice) return cg_last_status();
    cg_status st = cg_copy_(slice, t);
    if (st != CG_OK) {
        cg_tensor_free(slice);
        return st;
    }
    cgi_storage *old = t->storage;
    slice->storage->version = old->version;
    t->storage = slice->storage;
    t->offset = 0;
    for (int i = 0; i < t->ndim; i++) t->strides[i] = slice->strides[i];
    slice->storage = old; /* freeing the spare header drops t's old storage */
    cg_tensor_free(slice);
    return CG_OK;
}
