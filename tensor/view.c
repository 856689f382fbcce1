/* Views (never copy), broadcasting, and the few functions that copy on
 * purpose (contiguous, clone, cast, copy_, fill_). */
#include "internal.h"

#include <string.h>

/* ---- broadcasting ---------------------------------------------------------- */
cg_status cg_broadcast_shapes(const char *op, int na, const int64_t *a, int nb,
                              const int64_t *b, int *nout, int64_t *out) {
    if (!nout || !out || (na > 0 && !a) || (nb > 0 && !b))
        return cgi_error(NULL, CG_ERR_ARG, "%s: a shape, nout or out is NULL",
                         op ? op : "cg_broadcast_shapes");
    return cgi_broadcast(NULL, op ? op : "cg_broadcast_shapes", na, a, nb, b, nout, out);
}

cg_status cgi_broadcast(cg_ctx *ctx, const char *op, int na, const int64_t *a, int nb,
                        const int64_t *b, int *nout, int64_t *out) {
    int n = na > nb ? na : nb;
    int64_t res[CG_MAX_DIMS];
    if (na < 0 || nb < 0 || n > CG_MAX_DIMS)
        return cgi_error(ctx, CG_ERR_ARG, "%s: ranks %d and %d", op, na, nb);
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : a[i - (n - na)];
        int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
        if (da != db && da != 1 && db != 1) {
            char sa[160], sb[160];
            return cgi_error(
                ctx, CG_ERR_SHAPE, "%s: %s and %s: dim %d: %lld vs %lld cannot broadcast", op,
                cgi_fmt_shape(sa, sizeof sa, na, a), cgi_fmt_shape(sb, sizeof sb, nb, b), i,
                (long long)da, (long long)db);
        }
        res[i] = da == 1 ? db : da;
    }
    *nout = n;
    memcpy(out, res, sizeof(int64_t) * (size_t)n);
    return CG_OK;
}

bool cgi_broadcasts_to(const cg_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim > ndim) return false;
    for (int i = 0; i < t->ndim; i++) {
        int64_t d = t->shape[i], want = shape[i + ndim - t->ndim];
        if (d != want && d != 1) return false;
    }
    return true;
}

/* ---- view / reshape ---------------------------------------------------------- */
/* Resolves one -1 and checks the element count. */
static cg_status infer_shape(cg_ctx *ctx, const char *op, const cg_tensor *t, int ndim,
                             const int64_t *shape, int64_t *out) {
    char s0[160], s1[160];
    int infer = -1;
    int64_t known = 1, numel = cgi_numel(t->ndim, t->shape);
    if (ndim < 0 || ndim > CG_MAX_DIMS || (ndim > 0 && !shape))
        return cgi_error(ctx, CG_ERR_ARG, "%s: bad rank %d", op, ndim);
    for (int i = 0; i < ndim; i++) {
        out[i] = shape[i];
        if (shape[i] == -1 && infer < 0)
            infer = i, out[i] = 1;
        else if (shape[i] < 0)
            return cgi_error(ctx, CG_ERR_SHAPE, "%s: %s: bad dim %lld", op,
                             cgi_fmt_shape(s1, sizeof s1, ndim, shape), (long long)shape[i]);
    }
    /* dims whose product overflows (and so could wrap to numel) are refused
     * before any product is taken */
    if (cgi_check_shape(ctx, op, ndim, out) != CG_OK) return CG_ERR_SHAPE;
    known = cgi_numel(ndim, out);
    if (infer >= 0 && known != 0 && numel % known == 0) out[infer] = numel / known;
    if ((infer >= 0 && (known == 0 || numel % known)) || cgi_numel(ndim, out) != numel)
        return cgi_error(ctx, CG_ERR_SHAPE, "%s: cannot reshape %s (%lld elements) to %s", op,
                         cg_shape_str(t, s0, sizeof s0), (long long)numel,
                         cgi_fmt_shape(s1, sizeof s1, ndim, shape));
    return CG_OK;
}

/* PyTorch's computeStride: walks the old dims in chunks that are contiguous
 * with each other and splits each chunk into new dims. false: needs a copy. */
static bool view_strides(const cg_tensor *t, int ndim, const int64_t *shape, int64_t *strides) {
    if (t->ndim == 0 || cgi_numel(t->ndim, t->shape) == 0) {
        cgi_contiguous_strides(ndim, shape, strides);
        return true;
    }
    int vd = ndim - 1;
    int64_t base = t->strides[t->ndim - 1], tnumel = 1, vnumel = 1;
    for (int td = t->ndim - 1; td >= 0; td--) {
        tnumel *= t->shape[td];
        if (td == 0 || (t->shape[td - 1] != 1 && t->strides[td - 1] != tnumel * base)) {
            while (vd >= 0 && (vnumel < tnumel || shape[vd] == 1)) {
                strides[vd] = vnumel * base;
                vnumel *= shape[vd--];
            }
            if (vnumel != tnumel) return false;
            if (td > 0) {
                base = t->strides[td - 1];
                tnumel = vnumel = 1;
            }
        }
    }
    return vd == -1;
}

cg_tensor *cgi_view(cg_ctx *ctx, const cg_tensor *t, int ndim, const int64_t *shape) {
    CGI_NULL_CHECK(t, "cg_view");
    int64_t sh[CG_MAX_DIMS], st[CG_MAX_DIMS];
    if (infer_shape(ctx, "cg_view", t, ndim, shape, sh) != CG_OK) return NULL;
    if (!view_strides(t, ndim, sh, st)) {
        char s0[160], s1[160];
        cgi_error(ctx, CG_ERR_SHAPE,
                  "cg_view: %s to %s: strides do not allow a view; "
                  "use cg_reshape",
                  cg_shape_str(t, s0, sizeof s0), cgi_fmt_shape(s1, sizeof s1, ndim, sh));
        return NULL;
    }
    return cgi_view_of(ctx, "cg_view", t, ndim, sh, st, t->offset);
}

/* op: the public function, for messages (cg_reshape, cg_flatten). */
static cg_tensor *reshape_as(cg_ctx *ctx, const char *op, const cg_tensor *t, int ndim,
                             const int64_t *shape) {
    CGI_NULL_CHECK(t, op);
    int64_t sh[CG_MAX_DIMS], st[CG_MAX_DIMS];
    if (infer_shape(ctx, op, t, ndim, shape, sh) != CG_OK) return NULL;
    if (view_strides(t, ndim, sh, st)) return cgi_view_of(ctx, op, t, ndim, sh, st, t->offset);
    cg_tensor *c = cgi_new(ctx, op, t->dtype, t->ndim, t->shape);
    if (!c) return NULL;
    cgi_copy_convert(c, t);
    cgi_contiguous_strides(ndim, sh, st);
    c->ndim = ndim;
    memcpy(c->shape, sh, sizeof(int64_t) * (size_t)ndim);
    memcpy(c->strides, st, sizeof(int64_t) * (size_t)ndim);
    return c;
}

cg_tensor *cgi_reshape(cg_ctx *ctx, const cg_tensor *t, int ndim, const int64_t *shape) {
    return reshape_as(ctx, "cg_reshape", t, ndim, shape);
}

/* ---- axis permutations ------------------------------------------------------- */
/* op: the public function, for messages (cg_permute, cg_transpose). */
static cg_tensor *permute_as(cg_ctx *ctx, const char *op, const cg_tensor *t, const int *dims) {
    CGI_NULL_CHECK(t, op);
    int64_t sh[CG_MAX_DIMS], st[CG_MAX_DIMS];
    bool seen[CG_MAX_DIMS] = {false};
    if (t->ndim > 0 && !dims) {
        cgi_error(ctx, CG_ERR_ARG, "cg_permute: dims is NULL");
        return NULL;
    }
    for (int i = 0; i < t->ndim; i++) {
        int d;
        if (cgi_axis(ctx, "cg_permute", t->ndim, dims[i], &d) != CG_OK) return NULL;
        if (seen[d]) {
            cgi_error(ctx, CG_ERR_ARG, "cg_permute: dim %d repeated", d);
            return NULL;
        }
        seen[d] = true;
        sh[i] = t->shape[d];
        st[i] = t->strides[d];
    }
    return cgi_view_of(ctx, op, t, t->ndim, sh, st, t->offset);
}

cg_tensor *cgi_permute(cg_ctx *ctx, const cg_tensor *t, const int *dims) {
    return permute_as(ctx, "cg_permute", t, dims);
}

cg_tensor *cgi_transpose(cg_ctx *ctx, const cg_tensor *t, int d0, int d1) {
    CGI_NULL_CHECK(t, "cg_transpose");
    int a, b, dims[CG_MAX_DIMS];
    if (cgi_axis(ctx, "cg_transpose", t->ndim, d0, &a) != CG_OK ||
        cgi_axis(ctx, "cg_transpose", t->ndim, d1, &b) != CG_OK)
        return NULL;
    for (int i = 0; i < t->ndim; i++) dims[i] = i;
    dims[a] = b;
    dims[b] = a;
    return permute_as(ctx, "cg_transpose", t, dims);
}

/* ---- slicing ----------------------------------------------------------------- */
static int64_t clamp_index(int64_t i, int64_t n) {
    if (i < 0) i += n;
    if (i < 0) return 0;
    return i > n ? n : i;
}

/* op: the public function, for messages (cg_slice, cg_narrow). */
static cg_tensor *slice_as(cg_ctx *ctx, const char *op, const cg_tensor *t, int dim,
                           int64_t start, int64_t end, int64_t step) {
    CGI_NULL_CHECK(t, op);
    int d;
    if (cgi_axis(ctx, op, t->ndim, dim, &d) != CG_OK) return NULL;
    if (step <= 0) {
        cgi_error(ctx, CG_ERR_ARG, "%s: step %lld must be positive", op, (long long)step);
        return NULL;
    }
    int64_t n = t->shape[d], s = clamp_index(start, n), e = clamp_index(end, n);
    /* neither e - s + step nor the stride times a step past the end may
     * overflow (step INT64_MAX): one element keeps the stride it has */
    int64_t len = e > s ? (e - s - 1) / step + 1 : 0;
    int64_t sh[CG_MAX_DIMS], st[CG_MAX_DIMS];
    memcpy(sh, t->shape, sizeof sh);
    memcpy(st, t->strides, sizeof st);
    sh[d] = len;
    st[d] = len > 1 ? t->strides[d] * step : t->strides[d];
    int64_t off = t->offset + (len ? s * t->strides[d] : 0);
    return cgi_view_of(ctx, op, t, t->ndim, sh, st, off);
}

cg_tensor *cgi_slice(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t start, int64_t end,
                     int64_t step) {
    return slice_as(ctx, "cg_slice", t, dim, start, end, step);
}

cg_tensor *cgi_narrow(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t start, int64_t length) {
    CGI_NULL_CHECK(t, "cg_narrow");
    int d;
    if (cgi_axis(ctx, "cg_narrow", t->ndim, dim, &d) != CG_OK) return NULL;
    int64_t n = t->shape[d], s = start < 0 ? start + n : start;
    if (s < 0 || length < 0 || s > n || length > n - s) {
        char buf[160];
        cgi_error(ctx, CG_ERR_INDEX,
                  "cg_narrow: %s: start %lld length %lld out of range "
                  "for dim %d",
                  cg_shape_str(t, buf, sizeof buf), (long long)start, (long long)length, d);
        return NULL;
    }
    return slice_as(ctx, "cg_narrow", t, d, s, s + length, 1);
}

cg_tensor *cgi_select(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t index) {
    CGI_NULL_CHECK(t, "cg_select");
    int d;
    if (cgi_axis(ctx, "cg_select", t->ndim, dim, &d) != CG_OK) return NULL;
    int64_t i = index < 0 ? index + t->shape[d] : index;
    if (i < 0 || i >= t->shape[d]) {
        char buf[160];
        cgi_error(ctx, CG_ERR_INDEX, "cg_select: %s: index %lld out of range for dim %d",
                  cg_shape_str(t, buf, sizeof buf), (long long)index, d);
        return NULL;
    }
    int64_t sh[CG_MAX_DIMS], st[CG_MAX_DIMS];
    for (int k = 0, j = 0; k < t->ndim; k++) {
        if (k == d) continue;
        sh[j] = t->shape[k];
        st[j++] = t->strides[k];
    }
    return cgi_view_of(ctx, "cg_select", t, t->ndim - 1, sh, st, t->offset + i * t->strides[d]);
}

/* ---- expand, squeeze, unsqueeze, flatten --------------------------------------- */
cg_tensor *cgi_expand(cg_ctx *ctx, const cg_tensor *t, int ndim, const int64_t *shape) {
    CGI_NULL_CHECK(t, "cg_expand");
    char s0[160], s1[160];
    int64_t sh[CG_MAX_DIMS], st[CG_MAX_DIMS];
    if (ndim < t->ndim || ndim > CG_MAX_DIMS || !shape) goto bad;
    for (int i = 0; i < ndim; i++) {
        int k = i - (ndim - t->ndim); /* matching dim of t, < 0 for new dims */
        int64_t old = k >= 0 ? t->shape[k] : 1, want = shape[i];
        if (want == -1 && k >= 0) want = old;
        if (want < 0 || (old != want && old != 1)) goto bad;
        sh[i] = want;
        st[i] = (k >= 0 && old == want) ? t->strides[k] : 0;
    }
    /* a count past int64 would wrap in every loop over the view (issue 14 #1) */
    if (cgi_check_shape(ctx, "cg_expand", ndim, sh) != CG_OK) return NULL;
    return cgi_view_of(ctx, "cg_expand", t, ndim, sh, st, t->offset);
bad:
    cgi_error(ctx, CG_ERR_SHAPE, "cg_expand: cannot expand %s to %s",
              cg_shape_str(t, s0, sizeof s0),
              shape ? cgi_fmt_shape(s1, sizeof s1, ndim, shape) : "NULL");
    return NULL;
}

cg_tensor *cgi_squeeze(cg_ctx *ctx, const cg_tensor *t, int dim) {
    CGI_NULL_CHECK(t, "cg_squeeze");
    int d = -1;
    if (dim != CG_ALL_DIMS && cgi_axis(ctx, "cg_squeeze", t->ndim, dim, &d) != CG_OK)
        return NULL;
    int64_t sh[CG_MAX_DIMS], st[CG_MAX_DIMS];
    int n = 0;
    for (int k = 0; k < t->ndim; k++) {
        bool drop = t->shape[k] == 1 && (dim == CG_ALL_DIMS || k == d);
        if (drop) continue;
        sh[n] = t->shape[k];
        st[n++] = t->strides[k];
    }
    return cgi_view_of(ctx, "cg_squeeze", t, n, sh, st, t->offset);
}

cg_tensor *cgi_unsqueeze(cg_ctx *ctx, const cg_tensor *t, int dim) {
    CGI_NULL_CHECK(t, "cg_unsqueeze");
    int d;
    if (t->ndim >= CG_MAX_DIMS) {
        cgi_error(ctx, CG_ERR_SHAPE, "cg_unsqueeze: rank %d is the maximum", t->ndim);
        return NULL;
    }
    if (cgi_axis(ctx, "cg_unsqueeze", t->ndim + 1, dim, &d) != CG_OK) return NULL;
    int64_t sh[CG_MAX_DIMS], st[CG_MAX_DIMS];
    for (int k = 0, j = 0; k <= t->ndim; k++) {
        if (k == d) {
            sh[k] = 1;
            st[k] = d < t->ndim ? t->shape[d] * t->strides[d] : 1;
        } else {
            sh[k] = t->shape[j];
            st[k] = t->strides[j++];
        }
    }
    return cgi_view_of(ctx, "cg_unsqueeze", t, t->ndim + 1, sh, st, t->offset);
}

cg_tensor *cgi_flatten(cg_ctx *ctx, const cg_tensor *t, int start, int end) {
    CGI_NULL_CHECK(t, "cg_flatten");
    if (t->ndim == 0) return reshape_as(ctx, "cg_flatten", t, 1, (const int64_t[]){1});
    int s, e;
    if (cgi_axis(ctx, "cg_flatten", t->ndim, start, &s) != CG_OK ||
        cgi_axis(ctx, "cg_flatten", t->ndim, end, &e) != CG_OK)
        return NULL;
    if (s > e) {
        cgi_error(ctx, CG_ERR_ARG, "cg_flatten: start dim %d after end dim %d", s, e);
        return NULL;
    }
    int64_t sh[CG_MAX_DIMS];
    int n = 0;
    for (int k = 0; k < t->ndim; k++) {
        if (k > s && k <= e)
            sh[n - 1] *= t->shape[k];
        else
            sh[n++] = t->shape[k];
    }
    return reshape_as(ctx, "cg_flatten", t, n, sh);
}

/* ---- copies ------------------------------------------------------------------ */
/* op: the public function, for messages (cg_cast, cg_clone, cg_contiguous). */
static cg_tensor *cast_as(cg_ctx *ctx, const char *op, const cg_tensor *t, cg_dtype dt) {
    cg_tensor *c = cgi_new(ctx, op, dt, t->ndim, t->shape);
    if (c) cgi_copy_convert(c, t);
    return c;
}

cg_tensor *cgi_contiguous(cg_ctx *ctx, const cg_tensor *t) {
    CGI_NULL_CHECK(t, "cg_contiguous");
    if (cgi_is_contiguous(t))
        return cgi_view_of(ctx, "cg_contiguous", t, t->ndim, t->shape, t->strides, t->offset);
    return cast_as(ctx, "cg_contiguous", t, t->dtype);
}

const cg_tensor *cgi_dense(cg_ctx *ctx, const cg_tensor *t) {
    return !t || cgi_is_contiguous(t) ? t : cgi_contiguous(ctx, t);
}

cg_tensor *cgi_clone(cg_ctx *ctx, const cg_tensor *t) {
    CGI_NULL_CHECK(t, "cg_clone");
    return cast_as(ctx, "cg_clone", t, t->dtype);
}

cg_tensor *cgi_cast(cg_ctx *ctx, const cg_tensor *t, cg_dtype dt) {
    CGI_NULL_CHECK(t, "cg_cast");
    return cast_as(ctx, "cg_cast", t, dt);
}

/* PyTorch's is_non_overlapping_and_dense: some order of t's dims (size-1
 * dims aside) lays it out contiguously. */
static bool dense(const cg_tensor *t) {
    int idx[CG_MAX_DIMS], n = 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != 1) idx[n++] = d;
    for (int i = 1; i < n; i++) /* by stride, fastest first */
        for (int j = i; j > 0 && t->strides[idx[j]] < t->strides[idx[j - 1]]; j--) {
            int k = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = k;
        }
    int64_t expect = 1;
    for (int i = 0; i < n; i++) {
        if (t->strides[idx[i]] != expect) return false;
        expect *= t->shape[idx[i]];
    }
    return true;
}

/* PyTorch's partial overlap (at::get_overlap_status): two dense tensors whose
 * bytes intersect without being the same elements in the same layout. A
 * copy between them would read what it already overwrote. Strided ones with
 * gaps are too hard to tell and pass, as in PyTorch. */
static bool partial_overlap(const cg_tensor *a, const cg_tensor *b) {
    int64_t na = cgi_numel(a->ndim, a->shape), nb = cgi_numel(b->ndim, b->shape);
    if (na == 0 || nb == 0 || !dense(a) || !dense(b)) return false;
    uintptr_t a0 = (uintptr_t)cgi_ptr(a), b0 = (uintptr_t)cgi_ptr(b);
    uintptr_t a1 = a0 + (uintptr_t)na * cg_dtype_size(a->dtype);
    uintptr_t b1 = b0 + (uintptr_t)nb * cg_dtype_size(b->dtype);
    if (a0 == b0 && a1 == b1) { /* the same elements only in the same layout */
        if (a->ndim != b->ndim) return true;
        for (int d = 0; d < a->ndim; d++)
            if (a->shape[d] != 1 && a->strides[d] != b->strides[d]) return true;
        return false;
    }
    return a0 < b1 && b0 < a1;
}

cg_status cg_copy_(cg_tensor *dst, const cg_tensor *src) {
    cg_status s = cgi_check_input(NULL, "cg_copy_", 0, dst);
    if (s == CG_OK) s = cgi_check_input(NULL, "cg_copy_", 1, src);
    if (s == CG_OK) s = cgi_check_writable("cg_copy_", dst);
    if (s != CG_OK) return s;
    if (!cgi_broadcasts_to(src, dst->ndim, dst->shape)) {
        char s0[160], s1[160];
        return cgi_error(dst->ctx, CG_ERR_SHAPE, "cg_copy_: %s does not broadcast to %s",
                         cg_shape_str(src, s0, sizeof s0), cg_shape_str(dst, s1, sizeof s1));
    }
    if (partial_overlap(dst, src)) {
        char s0[160], s1[160];
        return cgi_error(
            dst->ctx, CG_ERR_ARG,
            "cg_copy_: %s from %s: the two share memory in part (a copy would read "
            "what it overwrote); copy src first (cg_clone)",
            cg_shape_str(dst, s0, sizeof s0), cg_shape_str(src, s1, sizeof s1));
    }
    cgi_copy_convert(dst, src);
    cgi_bump_version(dst);
    return CG_OK;
}

cg_status cg_fill_(cg_tensor *dst, double value) {
    cg_status s = cgi_check_input(NULL, "cg_fill_", -1, dst);
    if (s == CG_OK) s = cgi_check_writable("cg_fill_", dst);
    if (s == CG_OK) s = cgi_check_value(dst->ctx, "cg_fill_", dst->dtype, value);
    if (s != CG_OK) return s;
    cgi_storage st;
    cgi_scalar v;
    cg_tensor src;
    cgi_copy_convert(dst, cgi_stack_scalar(&src, &st, &v, CG_F64, value));
    cgi_bump_version(dst);
    return CG_OK;
}

cg_status cg_copy_to_array(const cg_tensor *t, cg_dtype dt, void *out) {
    if (t && cgi_stale(t)) return cgi_stale_error(NULL, "cg_copy_to_array", -1, t);
    if (!t || (!out && cgi_numel(t->ndim, t->shape) > 0))
        return cgi_error(NULL, CG_ERR_ARG, "cg_copy_to_array: tensor or out is NULL");
    if (!cgi_valid_dtype(dt))
        return cgi_error(NULL, CG_ERR_DTYPE, "cg_copy_to_array: invalid dtype %d", (int)dt);
    cgi_storage st = {.data = out, .kind = CGI_STORAGE_BORROWED, .refcount = 1};
    cg_tensor dst;
    memset(&dst, 0, sizeof dst);
    dst.storage = &st;
    dst.dtype = dt;
    dst.ndim = t->ndim;
    memcpy(dst.shape, t->shape, sizeof dst.shape);
    cgi_contiguous_strides(t->ndim, t->shape, dst.strides);
    cgi_copy_convert(&dst, t);
    return CG_OK;
}
