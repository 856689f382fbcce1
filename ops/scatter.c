/* Scatter-adds into a copy of a tensor (scatter_add, index_add) and sorting
 * (sort, topk), as PyTorch defines them.
 *
 * scatter_add and index_add add src at i64 indices along a dim: the
 * gradient for x is g itself, for src a gather of g (index_select for
 * index_add). sort and topk return values and i64 indices; the values'
 * gradient is g scattered back to the indices (a scatter_add into zeros).
 * All of these are differentiable again: gradients of any order. */
#include "../tensor/index_kernels.h"
#include "../tensor/seq_kernels.h"
#include "internal.h"

#include <string.h>

#define NEEDS(i) cg_node_needs_grad(n, i)
#define DIM      (*(const int *)cg_node_saved(n))

/* Every value of index in [0, size); else CG_ERR_INDEX naming the first bad one. */
static bool index_in_range(cg_ctx *ctx, const char *name, const cg_tensor *index, int d,
                           int64_t size) {
    int64_t bad, at;
    if (cgi_index_in_range(index, size, &bad, &at)) return true;
    cgi_error(ctx, CG_ERR_INDEX,
              "%s: index %lld (element %lld) out of range for dim %d of size %lld", name,
              (long long)bad, (long long)at, d, (long long)size);
    return false;
}

/* The common checks: index i64, src of x's dtype. */
static bool dtypes_ok(cg_ctx *ctx, const char *name, const cg_tensor *x, const cg_tensor *index,
                      const cg_tensor *src) {
    if (index->dtype != CG_I64)
        cgi_error(ctx, CG_ERR_DTYPE, "%s: index must be i64, got %s", name,
                  cg_dtype_name(index->dtype));
    else if (src->dtype != x->dtype)
        cgi_error(ctx, CG_ERR_DTYPE, "%s: src is %s, x is %s (need one dtype)", name,
                  cg_dtype_name(src->dtype), cg_dtype_name(x->dtype));
    else
        return true;
    return false;
}

/* x copied, then src (seen through sidx, index shaped) added at the index. */
static cg_tensor *add_at(cg_ctx *ctx, const char *name, const cg_tensor *x, int d,
                         const cg_tensor *sidx, const cg_tensor *src) {
    cg_tensor *y = cgi_new(ctx, name, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    cgi_copy_convert(y, x);
    cgi_scatter_add(y, d, sidx, src);
    return y;
}

/* ---- scatter_add ------------------------------------------------------------------------- */
/* t (index's shape) padded with zeros at the end of each dim to like's shape. */
static cg_tensor *pad_to(cg_ctx *ctx, cg_tensor *t, const cg_tensor *like) {
    if (!t || cgi_same_shape(t, like)) return t;
    int64_t pad[2 * CG_MAX_DIMS];
    for (int i = 0; i < like->ndim; i++) { /* F.pad's order: last dim first */
        int d = like->ndim - 1 - i;
        pad[2 * i] = 0;
        pad[2 * i + 1] = like->shape[d] - t->shape[d];
    }
    return cg_pad(ctx, t, 2 * like->ndim, pad, CG_PAD_CONSTANT, 0);
}

/* dx = g; dsrc = g gathered at the index, zero where src is larger than the
 * index (PyTorch 1.13 refuses that case in backward). */
static cg_status scatter_add_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                      cg_tensor **gin) {
    if (NEEDS(0)) gin[0] = (cg_tensor *)g;
    if (NEEDS(2))
        gin[2] = pad_to(ctx, cg_gather(ctx, g, DIM, cg_node_input(n, 1)), cg_node_input(n, 2));
    return cgi_grads_made(n, gin);
}
static const cg_op scatter_add_op = {"scatter_add", scatter_add_backward, CG_SAVES_INPUT(1)};

/* x, index and src of one rank; index no larger than src, nor than x off d. */
static bool scatter_shapes_ok(cg_ctx *ctx, const cg_tensor *x, int d, const cg_tensor *index,
                              const cg_tensor *src) {
    bool fits = index->ndim == x->ndim && src->ndim == x->ndim;
    for (int k = 0; fits && k < x->ndim; k++)
        fits = index->shape[k] <= src->shape[k] && (k == d || index->shape[k] <= x->shape[k]);
    if (fits) return true;
    char sx[160], si[160], ss[160];
    cgi_error(ctx, CG_ERR_SHAPE,
              "cg_scatter_add: x %s, index %s, src %s: need one rank, index no larger than src "
              "and than x off dim %d",
              cg_shape_str(x, sx, sizeof sx), cg_shape_str(index, si, sizeof si),
              cg_shape_str(src, ss, sizeof ss), d);
    return false;
}

cg_tensor *cg_scatter_add(cg_ctx *ctx, const cg_tensor *x, int dim, const cg_tensor *index,
                          const cg_tensor *src) {
    const char *name = "cg_scatter_add";
    CGI_INPUT_CHECK(x, name, 0);
    CGI_INPUT_CHECK(index, name, 1);
    CGI_INPUT_CHECK(src, name, 2);
    int d;
    if (cgi_axis_of(ctx, name, x, dim, &d) != CG_OK || !dtypes_ok(ctx, name, x, index, src) ||
        !scatter_shapes_ok(ctx, x, d, index, src) ||
        !index_in_range(ctx, name, index, d, x->shape[d]))
        return NULL;
    cg_tensor s = *src; /* src's leading part, index shaped */
    memcpy(s.shape, index->shape, sizeof s.shape);
    cg_tensor *y = add_at(ctx, name, x, d, index, &s);
    return y ? cg_record(ctx, &scatter_add_op, y, 3, (const cg_tensor *[]){x, index, src}, &d,
                         sizeof d)
             : NULL;
}

/* ---- index_add --------------------------------------------------------------------------- */
/* index (0-d or 1-D) as a 1-D tensor, for index_select in the backward. */
static const cg_tensor *as_vector(cg_ctx *ctx, const cg_tensor *index) {
    return index->ndim == 1 ? index : cg_reshape(ctx, index, 1, (const int64_t[]){1});
}

static cg_status index_add_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                    cg_tensor **gin) {
    if (NEEDS(0)) gin[0] = (cg_tensor *)g;
    if (NEEDS(2)) gin[2] = cg_index_select(ctx, g, DIM, as_vector(ctx, cg_node_input(n, 1)));
    return cgi_grads_made(n, gin);
}
static const cg_op index_add_op = {"index_add", index_add_backward, CG_SAVES_INPUT(1)};

/* index 0-d or 1-D; src x's shape but for the index's length along d. */
static bool index_add_shapes_ok(cg_ctx *ctx, const cg_tensor *x, int d, const cg_tensor *index,
                                const cg_tensor *src) {
    int64_t len = index->ndim ? index->shape[0] : 1;
    bool fits = index->ndim <= 1 && src->ndim == x->ndim;
    for (int k = 0; fits && k < x->ndim; k++)
        fits = src->shape[k] == (k == d ? len : x->shape[k]);
    if (fits) return true;
    char sx[160], si[160], ss[160];
    cgi_error(ctx, CG_ERR_SHAPE,
              "cg_index_add: x %s, index %s, src %s: need a 0-d or 1-D index and src of x's "
              "shape with the index's length along dim %d",
              cg_shape_str(x, sx, sizeof sx), cg_shape_str(index, si, sizeof si),
              cg_shape_str(src, ss, sizeof ss), d);
    return false;
}

cg_tensor *cg_index_add(cg_ctx *ctx, const cg_tensor *x, int dim, const cg_tensor *index,
                        const cg_tensor *src) {
    const char *name = "cg_index_add";
    CGI_INPUT_CHECK(x, name, 0);
    CGI_INPUT_CHECK(index, name, 1);
    CGI_INPUT_CHECK(src, name, 2);
    int d;
    if (cgi_axis_of(ctx, name, x, dim, &d) != CG_OK || !dtypes_ok(ctx, name, x, index, src) ||
        !index_add_shapes_ok(ctx, x, d, index, src) ||
        !index_in_range(ctx, name, index, d, x->shape[d]))
        return NULL;
    cg_tensor spread = *index; /* the index along d, repeated (stride 0) elsewhere */
    spread.ndim = src->ndim;
    for (int k = 0; k < src->ndim; k++) {
        spread.shape[k] = src->shape[k];
        spread.strides[k] = k == d && index->ndim ? index->strides[0] : 0;
    }
    cg_tensor *y = add_at(ctx, name, x, d, &spread, src);
    return y ? cg_record(ctx, &index_add_op, y, 3, (const cg_tensor *[]){x, index, src}, &d,
                         sizeof d)
             : NULL;
}

/* ---- sort, topk -------------------------------------------------------------------------- */
/* The values' gradient: g put back at the indices (a permutation's inverse
 * for sort, zeros elsewhere for topk); differentiable in g (a gather). */
static cg_status sorted_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                 cg_tensor **gin) {
    const cg_tensor *x = cg_node_input(n, 0);
    if (x->ndim == 0)
        gin[0] = (cg_tensor *)g;
    else
        gin[0] = cg_scatter_add(ctx, cg_zeros_like(ctx, x), DIM, cg_node_input(n, 1), g);
    return cgi_grads_made(n, gin);
}
static const cg_op sort_op = {"sort", sorted_backward, CG_SAVES_INPUT(1)};
static const cg_op topk_op = {"topk", sorted_backward, CG_SAVES_INPUT(1)};

/* Hands v and ix to the caller's pointers (each may be NULL: then dropped). */
static void hand_out(cg_ctx *ctx, cg_tensor *v, cg_tensor *ix, cg_tensor **values,
                     cg_tensor **indices) {
    if (values)
        *values = v;
    else if (!ctx)
        cg_tensor_free(v);
    if (indices)
        *indices = ix;
    else if (!ctx)
        cg_tensor_free(ix);
}

/* The first k of each line of x along dim, sorted; values recorded over
 * (x, indices). A rank-0 x is one line of one value. */
static cg_status sort_k(cg_ctx *ctx, const char *name, const cg_op *op, const cg_tensor *x,
                        int d, int64_t k, bool descending, cg_tensor **values,
                        cg_tensor **indices) {
    int64_t shape[CG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    if (x->ndim) shape[d] = k;
    cg_tensor *v = cgi_new(ctx, name, x->dtype, x->ndim, shape);
    cg_tensor *ix = v ? cgi_new(ctx, name, CG_I64, x->ndim, shape) : NULL;
    cg_status st = ix ? CG_OK : cg_last_status();
    if (st == CG_OK) {
        cg_tensor hx = cgi_as_line(x), hv = cgi_as_line(v), hi = cgi_as_line(ix);
        st = cgi_sort_lines(name, &hx, d, descending, k, &hv, &hi);
    }
    if (st == CG_OK) {
        v = cg_record(ctx, op, v, 2, (const cg_tensor *[]){x, ix}, &d, sizeof d);
        st = v ? CG_OK : cg_last_status();
    }
    if (st != CG_OK) {
        if (!ctx) cg_tensor_free(ix);
        if (!ctx && v) cg_tensor_free(v);
        return st;
    }
    hand_out(ctx, v, ix, values, indices);
    return CG_OK;
}

/* Clears the outputs, checks x and dim; d receives the dim. */
static cg_status sort_args_ok(cg_ctx *ctx, const char *name, const cg_tensor *x, int dim,
                              int *d, cg_tensor **values, cg_tensor **indices) {
    if (values) *values = NULL;
    if (indices) *indices = NULL;
    if (!x) return cgi_null_arg(ctx, name, "tensor");
    if (cgi_stale(x)) return cgi_stale_error(ctx, name, 0, x);
    return cgi_axis(ctx, name, x->ndim ? x->ndim : 1, dim, d);
}

cg_status cg_sort(cg_ctx *ctx, const cg_tensor *x, int dim, bool descending, cg_tensor **values,
                  cg_tensor **indices) {
    int d;
    cg_status st = sort_args_ok(ctx, "cg_sort", x, dim, &d, values, indices);
    if (st != CG_OK) return st;
    int64_t n = x->ndim ? x->shape[d] : 1;
    return sort_k(ctx, "cg_sort", &sort_op, x, d, n, descending, values, indices);
}

cg_status cg_topk(cg_ctx *ctx, const cg_tensor *x, int64_t k, int dim, bool largest,
                  cg_tensor **values, cg_tensor **indices) {
    int d;
    cg_status st = sort_args_ok(ctx, "cg_topk", x, dim, &d, values, indices);
    if (st != CG_OK) return st;
    int64_t n = x->ndim ? x->shape[d] : 1;
    if (k < (x->ndim ? 0 : 1) || k > n) {
        char sx[160];
        return cgi_error(ctx, CG_ERR_ARG, "cg_topk: k %lld out of range for dim %d of %s",
                         (long long)k, d, cg_shape_str(x, sx, sizeof sx));
    }
    return sort_k(ctx, "cg_topk", &topk_op, x, d, k, largest, values, indices);
}
