/* Joining and indexing: concat, stack, index_select, gather, embedding.
 *
 * Forwards copy through headers on the stack (no allocation, so nothing to
 * free with ctx NULL) or the raw kernels of tensor/index_kernels.c. The
 * gradient of a join is a view of g per input; the gradient of a gather is a
 * scatter-add into zeros, recorded as its own op whose gradient is the
 * gather again, so double backward works. */
#include "../tensor/index_kernels.h"
#include "internal.h"

#include <string.h>

/* ---- stack headers: views that need no freeing ----------------------------------- */
/* t narrowed to [start, start + len) along d. */
static cg_tensor narrowed(const cg_tensor *t, int d, int64_t start, int64_t len) {
    cg_tensor h = *t;
    h.shape[d] = len;
    h.offset += start * t->strides[d];
    return h;
}

/* t at position i of dim d, the dim dropped (rank - 1). */
static cg_tensor selected(const cg_tensor *t, int d, int64_t i) {
    cg_tensor h = *t;
    h.ndim = t->ndim - 1;
    h.offset += i * t->strides[d];
    for (int k = d; k < h.ndim; k++) {
        h.shape[k] = t->shape[k + 1];
        h.strides[k] = t->strides[k + 1];
    }
    return h;
}

/* ---- joins: n inputs of one dtype ---------------------------------------------------- */
/* n >= 1 inputs, none NULL, all of xs[0]'s dtype. */
static bool check_list(cg_ctx *ctx, const char *op, int n, const cg_tensor *const *xs) {
    if (n < 1 || !xs) {
        cgi_error(ctx, CG_ERR_ARG, "%s: needs at least one tensor (n = %d)", op, n);
        return false;
    }
    for (int i = 0; i < n; i++)
        if (!xs[i]) {
            if (cg_last_status() == CG_OK)
                cgi_error(ctx, CG_ERR_ARG, "%s: input %d is NULL", op, i);
            return false;
        } else if (cgi_stale(xs[i])) {
            cgi_stale_error(ctx, op, i, xs[i]);
            return false;
        }
    for (int i = 1; i < n; i++)
        if (xs[i]->dtype != xs[0]->dtype) {
            cgi_error(ctx, CG_ERR_DTYPE, "%s: input %d is %s, input 0 is %s", op, i,
                      cg_dtype_name(xs[i]->dtype), cg_dtype_name(xs[0]->dtype));
            return false;
        }
    return true;
}

/* Every input has xs[0]'s rank and dims, except dim skip (-1: none skipped). */
static bool check_shapes(cg_ctx *ctx, const char *op, int n, const cg_tensor *const *xs,
                         int skip) {
    for (int i = 1; i < n; i++) {
        bool same = xs[i]->ndim == xs[0]->ndim;
        for (int d = 0; same && d < xs[0]->ndim; d++)
            same = d == skip || xs[i]->shape[d] == xs[0]->shape[d];
        if (!same) {
            char s0[160], si[160], where[32] = "";
            if (skip >= 0) snprintf(where, sizeof where, " outside axis %d", skip);
            cgi_error(ctx, CG_ERR_SHAPE, "%s: input %d %s does not match input 0 %s%s", op, i,
                      cg_shape_str(xs[i], si, sizeof si), cg_shape_str(xs[0], s0, sizeof s0),
                      where);
            return false;
        }
    }
    return true;
}

/* The gradient of input i is its part of g: narrow (concat) or select (stack). */
static cg_status concat_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                 cg_tensor **gin) {
    int axis = *(const int *)cg_node_saved(n);
    int64_t start = 0;
    for (int i = 0; i < cg_node_ninputs(n); i++) {
        int64_t len = cg_node_input(n, i)->shape[axis];
        if (cg_node_needs_grad(n, i)) gin[i] = cg_narrow(ctx, g, axis, start, len);
        start += len;
    }
    return cgi_grads_made(n, gin);
}
static const cg_op concat_op = {"concat", concat_backward, 0};

cg_tensor *cg_concat(cg_ctx *ctx, int n, const cg_tensor *const *xs, int axis) {
    int a;
    if (!check_list(ctx, "cg_concat", n, xs) ||
        cgi_axis(ctx, "cg_concat", xs[0]->ndim, axis, &a) != CG_OK ||
        !check_shapes(ctx, "cg_concat", n, xs, a))
        return NULL;
    int64_t shape[CG_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    shape[a] = 0;
    for (int i = 0; i < n; i++) {
        if (xs[i]->shape[a] > INT64_MAX / 16 - shape[a]) { /* cgi_new's element limit */
            cgi_error(ctx, CG_ERR_SHAPE, "cg_concat: axis %d too long", a);
            return NULL;
        }
        shape[a] += xs[i]->shape[a];
    }
    cg_tensor *out = cgi_new(ctx, "cg_concat", xs[0]->dtype, xs[0]->ndim, shape);
    for (int64_t i = 0, start = 0; out && i < n; start += xs[i++]->shape[a]) {
        cg_tensor dst = narrowed(out, a, start, xs[i]->shape[a]);
        cgi_copy_convert(&dst, xs[i]);
    }
    return out ? cg_record(ctx, &concat_op, out, n, xs, &a, sizeof a) : NULL;
}

static cg_status stack_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                cg_tensor **gin) {
    int axis = *(const int *)cg_node_saved(n);
    for (int i = 0; i < cg_node_ninputs(n); i++)
        if (cg_node_needs_grad(n, i)) gin[i] = cg_select(ctx, g, axis, i);
    return cgi_grads_made(n, gin);
}
static const cg_op stack_op = {"stack", stack_backward, 0};

/* Made directly (not unsqueeze + concat) so that ctx NULL leaves no temporaries. */
cg_tensor *cg_stack(cg_ctx *ctx, int n, const cg_tensor *const *xs, int axis) {
    int a;
    if (!check_list(ctx, "cg_stack", n, xs) || !check_shapes(ctx, "cg_stack", n, xs, -1))
        return NULL;
    int nd = xs[0]->ndim;
    if (nd >= CG_MAX_DIMS) {
        cgi_error(ctx, CG_ERR_SHAPE, "cg_stack: rank %d is the maximum", nd);
        return NULL;
    }
    if (cgi_axis(ctx, "cg_stack", nd + 1, axis, &a) != CG_OK) return NULL;
    int64_t shape[CG_MAX_DIMS]; /* xs[0]'s shape with n inserted at a */
    for (int d = 0; d <= nd; d++)
        shape[d] = d < a ? xs[0]->shape[d] : d == a ? n : xs[0]->shape[d - 1];
    cg_tensor *out = cgi_new(ctx, "cg_stack", xs[0]->dtype, nd + 1, shape);
    for (int i = 0; out && i < n; i++) {
        cg_tensor dst = selected(out, a, i);
        cgi_copy_convert(&dst, xs[i]);
    }
    return out ? cg_record(ctx, &stack_op, out, n, xs, &a, sizeof a) : NULL;
}

/* ---- index checks ---------------------------------------------------------------------- */
/* index is i64 of rank ndim (-1: any rank) with every value in [0, x's size on
 * axis); of x's rank (gather) it must be no larger than x off axis too. */
static bool check_index(cg_ctx *ctx, const char *op, const cg_tensor *index, int ndim,
                        const cg_tensor *x, int axis) {
    char si[160], sx[160];
    int64_t bad, at, size = x->shape[axis];
    bool fits = true;
    for (int d = 0; ndim == x->ndim && index->ndim == ndim && d < ndim; d++)
        fits = fits && (d == axis || index->shape[d] <= x->shape[d]);
    if (index->dtype != CG_I64)
        cgi_error(ctx, CG_ERR_DTYPE, "%s: index must be i64, got %s", op,
                  cg_dtype_name(index->dtype));
    else if (ndim >= 0 && index->ndim != ndim)
        cgi_error(ctx, CG_ERR_SHAPE, "%s: index %s must have rank %d", op,
                  cg_shape_str(index, si, sizeof si), ndim);
    else if (!fits)
        cgi_error(ctx, CG_ERR_SHAPE, "%s: index %s is larger than input %s off axis %d", op,
                  cg_shape_str(index, si, sizeof si), cg_shape_str(x, sx, sizeof sx), axis);
    else if (!cgi_index_in_range(index, size, &bad, &at))
        cgi_error(ctx, CG_ERR_INDEX,
                  "%s: index %lld (element %lld) out of range for "
                  "axis %d of size %lld",
                  op, (long long)bad, (long long)at, axis, (long long)size);
    else
        return true;
    return false;
}

/* index_select's 1-D index as a gather index of shape (ndim, shape): its
 * values along axis, repeated with stride 0 on the other dims. */
static cg_tensor spread(const cg_tensor *index, int ndim, const int64_t *shape, int axis) {
    cg_tensor h = *index;
    h.ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        h.shape[d] = shape[d];
        h.strides[d] = d == axis ? index->strides[0] : 0;
    }
    return h;
}

/* ---- scatter-adds: the gradients of the gathers ---------------------------------------- */
static const cg_op index_add_op, scatter_add_op;

/* Zeros of like's shape with g added at index along axis: index_add (index
 * 1-D, one value per slice of g) or scatter_add (index shaped like g).
 * Recorded as op over (g, index). */
static cg_tensor *scatter(cg_ctx *ctx, const cg_op *op, const cg_tensor *g,
                          const cg_tensor *like, int axis, const cg_tensor *index) {
    cg_tensor *out = g && index ? cg_zeros(ctx, g->dtype, like->ndim, like->shape) : NULL;
    if (!out) return NULL;
    cg_tensor ie = op == &index_add_op ? spread(index, g->ndim, g->shape, axis) : *index;
    cgi_scatter_add(out, axis, &ie, g);
    return cg_record(ctx, op, out, 2, (const cg_tensor *[]){g, index}, &axis, sizeof axis);
}

/* Each gather's gradient is a scatter-add, each scatter-add's a gather. */
#define AXIS (*(const int *)cg_node_saved(n))
static cg_status index_add_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                    cg_tensor **gin) {
    gin[0] = cg_index_select(ctx, g, AXIS, cg_node_input(n, 1));
    return cgi_grads_made(n, gin);
}
static cg_status scatter_add_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                      cg_tensor **gin) {
    gin[0] = cg_gather(ctx, g, AXIS, cg_node_input(n, 1));
    return cgi_grads_made(n, gin);
}
static cg_status index_select_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                       cg_tensor **gin) {
    gin[0] = scatter(ctx, &index_add_op, g, cg_node_input(n, 0), AXIS, cg_node_input(n, 1));
    return cgi_grads_made(n, gin);
}
static cg_status gather_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                 cg_tensor **gin) {
    gin[0] = scatter(ctx, &scatter_add_op, g, cg_node_input(n, 0), AXIS, cg_node_input(n, 1));
    return cgi_grads_made(n, gin);
}
#undef AXIS

/* weight [V, D], indices [...] (N values): g [..., D] seen as [N, D] rows
 * index_added into zeros [V, D]; the index_add's gradient is the lookup again. */
static cg_status embedding_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                    cg_tensor **gin) {
    const cg_tensor *w = cg_node_input(n, 0), *idx = cg_node_input(n, 1);
    int64_t rows[2] = {cgi_numel(idx->ndim, idx->shape), w->shape[1]};
    const cg_tensor *flat = cgi_reshape(ctx, idx, 1, rows); /* [N], a view when it can */
    gin[0] = scatter(ctx, &index_add_op, cg_reshape(ctx, g, 2, rows), w, 0, flat);
    return cgi_grads_made(n, gin);
}

/* The backward reads the index (input 1): changing it in place afterwards
 * makes backward fail instead of scattering to the wrong places. */
static const cg_op index_add_op = {"index_add", index_add_backward, CG_SAVES_INPUT(1)};
static const cg_op scatter_add_op = {"scatter_add", scatter_add_backward, CG_SAVES_INPUT(1)};
static const cg_op index_select_op = {"index_select", index_select_backward, CG_SAVES_INPUT(1)};
static const cg_op gather_op = {"gather", gather_backward, CG_SAVES_INPUT(1)};
static const cg_op embedding_op = {"embedding", embedding_backward, CG_SAVES_INPUT(1)};

/* ---- gathers --------------------------------------------------------------------------- */
/* x [.., n, ..] and index [k] along axis: out [.., k, ..]. */
cg_tensor *cg_index_select(cg_ctx *ctx, const cg_tensor *x, int axis, const cg_tensor *index) {
    CGI_INPUT_CHECK(x, "cg_index_select", 0);
    CGI_INPUT_CHECK(index, "cg_index_select", 1);
    int a;
    if (cgi_axis(ctx, "cg_index_select", x->ndim, axis, &a) != CG_OK ||
        !check_index(ctx, "cg_index_select", index, 1, x, a))
        return NULL;
    int64_t shape[CG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[a] = index->shape[0];
    cg_tensor *out = cgi_new(ctx, "cg_index_select", x->dtype, x->ndim, shape);
    if (!out) return NULL;
    cg_tensor ie = spread(index, x->ndim, shape, a);
    cgi_gather(out, x, a, &ie);
    return cg_record(ctx, &index_select_op, out, 2, (const cg_tensor *[]){x, index}, &a,
                     sizeof a);
}

/* x and index of one rank, index no larger off axis: out shaped like index. */
cg_tensor *cg_gather(cg_ctx *ctx, const cg_tensor *x, int axis, const cg_tensor *index) {
    CGI_INPUT_CHECK(x, "cg_gather", 0);
    CGI_INPUT_CHECK(index, "cg_gather", 1);
    int a;
    if (cgi_axis(ctx, "cg_gather", x->ndim, axis, &a) != CG_OK ||
        !check_index(ctx, "cg_gather", index, x->ndim, x, a))
        return NULL;
    cg_tensor *out = cgi_new(ctx, "cg_gather", x->dtype, index->ndim, index->shape);
    if (!out) return NULL;
    cgi_gather(out, x, a, index);
    return cg_record(ctx, &gather_op, out, 2, (const cg_tensor *[]){x, index}, &a, sizeof a);
}

/* The lookup as one gather over out [..., D] (a 0-d index counts as [1]):
 * the index repeats over D (stride 0) and picks weight's row; weight's
 * column stride runs along D. Headers only, so ctx NULL allocates nothing. */
static void lookup(cg_tensor *out, const cg_tensor *weight, const cg_tensor *indices) {
    int r = indices->ndim ? indices->ndim : 1;
    cg_tensor ix = *indices, wx = *weight, ox = *out;
    if (indices->ndim == 0) { /* one index: a [1] of stride 0 */
        ix.shape[0] = 1;
        ix.strides[0] = 0;
    }
    ix.ndim = wx.ndim = ox.ndim = r + 1;
    ix.shape[r] = weight->shape[1];
    ix.strides[r] = 0;
    for (int d = 0; d < r; d++) wx.strides[d] = d == 0 ? weight->strides[0] : 0;
    wx.strides[r] = weight->strides[1];
    memcpy(ox.shape, ix.shape, sizeof ox.shape);
    cgi_contiguous_strides(r + 1, ox.shape, ox.strides);
    cgi_gather(&ox, &wx, 0, &ix);
}

/* weight [V, D], indices [...] -> [..., D]. */
cg_tensor *cg_embedding(cg_ctx *ctx, const cg_tensor *weight, const cg_tensor *indices) {
    CGI_INPUT_CHECK(weight, "cg_embedding", 0);
    CGI_INPUT_CHECK(indices, "cg_embedding", 1);
    char buf[160];
    if (weight->ndim != 2 || indices->ndim >= CG_MAX_DIMS) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "cg_embedding: weight %s must be [V, D] and indices "
                  "of rank below %d (got %d)",
                  cg_shape_str(weight, buf, sizeof buf), CG_MAX_DIMS, indices->ndim);
        return NULL;
    }
    if (!check_index(ctx, "cg_embedding", indices, -1, weight, 0)) return NULL;
    int64_t shape[CG_MAX_DIMS];
    memcpy(shape, indices->shape, sizeof(int64_t) * (size_t)indices->ndim);
    shape[indices->ndim] = weight->shape[1];
    cg_tensor *out = cgi_new(ctx, "cg_embedding", weight->dtype, indices->ndim + 1, shape);
    if (!out) return NULL;
    lookup(out, weight, indices);
    return cg_record(ctx, &embedding_op, out, 2, (const cg_tensor *[]){weight, indices}, NULL,
                     0);
}
