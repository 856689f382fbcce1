/* Reduction ops: axis lists to a mask, checks, then the raw reduce kernel. */
#include "../tensor/internal.h"
#include "ops.h"

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

#define REDUCE_OP(name, rop)                                                   \
    cg_tensor *cg_##name(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes, \
                         bool keepdim) {                                       \
        unsigned mask;                                                         \
        CGI_NULL_CHECK(x, "cg_" #name);                                        \
        if (axes_mask(ctx, "cg_" #name, x, axes, naxes, &mask) != CG_OK) return NULL; \
        return reduce(ctx, "cg_" #name, rop, x, mask, keepdim);                \
    }
REDUCE_OP(sum, CGI_REDUCE_SUM)
REDUCE_OP(mean, CGI_REDUCE_MEAN)
REDUCE_OP(max, CGI_REDUCE_MAX)
REDUCE_OP(min, CGI_REDUCE_MIN)

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
