/* Reduction ops: axis lists to a mask, checks, then the raw reduce kernel. */
#include "internal.h"

/* axes (naxes of them, negative allowed) to a bit mask; naxes 0: all. */
static cg_status axes_mask(cg_ctx *ctx, const char *op, const cg_tensor *x, const int *axes,
                           int naxes, unsigned *mask) {
    *mask = 0;
    if (naxes == 0) {
        *mask = (1u << x->ndim) - 1u;
        return CG_OK;
    }
    if (naxes < 0 || !axes)
        return cgi_error(ctx, CG_ERR_ARG, "%s: %d axes given as %p", op, naxes,
                         (const void *)axes);
    for (int i = 0; i < naxes; i++) {
        int a;
        if (cgi_axis(ctx, op, x->ndim, axes[i], &a) != CG_OK) return CG_ERR_INDEX;
        if (*mask & (1u << a))
            return cgi_error(ctx, CG_ERR_ARG, "%s: axis %d repeated", op, a);
        *mask |= 1u << a;
    }
    return CG_OK;
}

static bool reduces_empty(const cg_tensor *x, unsigned mask) {
    for (int i = 0; i < x->ndim; i++)
        if ((mask & (1u << i)) && x->shape[i] == 0) return true;
    return false;
}

static cg_tensor *reduce(cg_ctx *ctx, const char *op, cgi_reduce_op rop,
                         const cg_tensor *x, unsigned mask, bool keepdim) {
    char buf[160];
    bool arg = rop == CGI_REDUCE_ARGMAX || rop == CGI_REDUCE_ARGMIN;
    if (rop == CGI_REDUCE_MEAN && !cgi_is_float(x->dtype)) {
        cgi_error(ctx, CG_ERR_DTYPE, "%s: needs f32 or f64, got %s", op,
                  cg_dtype_name(x->dtype));
        return NULL;
    }
    if (rop != CGI_REDUCE_SUM && rop != CGI_REDUCE_MEAN && reduces_empty(x, mask)) {
        cgi_error(ctx, CG_ERR_SHAPE, "%s: %s: reducing an empty dimension", op,
                  cg_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    int n;
    int64_t shape[CG_MAX_DIMS];
    cgi_reduced_shape(x->ndim, x->shape, mask, keepdim, &n, shape);
    cg_tensor *out = cgi_new(ctx, op, arg ? CG_I64 : x->dtype, n, shape);
    if (out) cgi_reduce(rop, x, mask, out);
    return out;
}

typedef struct reduce_args {
    unsigned mask;
    bool keepdim;
} reduce_args;

/* g, reshaped to the kept-dims shape, broadcast back over x's shape. */
static cg_tensor *spread(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x,
                         const reduce_args *a) {
    int n;
    int64_t shape[CG_MAX_DIMS];
    cgi_reduced_shape(x->ndim, x->shape, a->mask, true, &n, shape);
    return cg_expand(ctx, cg_reshape(ctx, g, n, shape), x->ndim, x->shape);
}

static int64_t reduced_count(const cg_tensor *x, unsigned mask) {
    int64_t c = 1;
    for (int i = 0; i < x->ndim; i++)
        if (mask & (1u << i)) c *= x->shape[i];
    return c;
}

static cg_status sum_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    gin[0] = spread(ctx, g, cg_node_input(n, 0), cg_node_saved(n));
    return cgi_grads_made(n, gin);
}
static const cg_op sum_op = {"sum", sum_backward, 0};

static cg_status mean_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cg_tensor **gin) {
    const cg_tensor *x = cg_node_input(n, 0);
    const reduce_args *a = cg_node_saved(n);
    gin[0] = cg_div_scalar(ctx, spread(ctx, g, x, a), (double)reduced_count(x, a->mask));
    return cgi_grads_made(n, gin);
}
static const cg_op mean_op = {"mean", mean_backward, 0};

#define REDUCE_OP(name, rop, op)                                               \
    cg_tensor *cg_##name(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes, \
                         bool keepdim) {                                       \
        reduce_args a = {0, keepdim};                                          \
        CGI_NULL_CHECK(x, "cg_" #name);                                        \
        if (axes_mask(ctx, "cg_" #name, x, axes, naxes, &a.mask) != CG_OK) return NULL; \
        cg_tensor *y = reduce(ctx, "cg_" #name, rop, x, a.mask, keepdim);      \
        const cg_op *op_ = (op);                                               \
        return y && op_ ? cg_record(ctx, op_, y, 1, &x, &a, sizeof a) : y;     \
    }
REDUCE_OP(sum, CGI_REDUCE_SUM, &sum_op)
REDUCE_OP(mean, CGI_REDUCE_MEAN, &mean_op)
REDUCE_OP(max, CGI_REDUCE_MAX, (const cg_op *)NULL)
REDUCE_OP(min, CGI_REDUCE_MIN, (const cg_op *)NULL)

static cg_tensor *arg_reduce(cg_ctx *ctx, const char *op, cgi_reduce_op rop,
                             const cg_tensor *x, int axis, bool keepdim) {
    CGI_NULL_CHECK(x, op);
    unsigned mask;
    if (axis == CG_ALL_DIMS) return reduce(ctx, op, rop, x, (1u << x->ndim) - 1u, keepdim);
    if (axes_mask(ctx, op, x, &axis, 1, &mask) != CG_OK) return NULL;
    return reduce(ctx, op, rop, x, mask, keepdim);
}

cg_tensor *cg_argmax(cg_ctx *ctx, const cg_tensor *x, int axis, bool keepdim) {
    return arg_reduce(ctx, "cg_argmax", CGI_REDUCE_ARGMAX, x, axis, keepdim);
}
cg_tensor *cg_argmin(cg_ctx *ctx, const cg_tensor *x, int axis, bool keepdim) {
    return arg_reduce(ctx, "cg_argmin", CGI_REDUCE_ARGMIN, x, axis, keepdim);
}
