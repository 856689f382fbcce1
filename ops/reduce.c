/* Reduction ops: axis lists to a mask, checks, then the raw reduce kernel.
 *
 * sum, mean, max and min are one cgi_reduce each. var, std, logsumexp and
 * norm are fused: a forward over heap temporaries (freed before returning,
 * so ctx == NULL leaks nothing) and one node with an explicit backward rule
 * in differentiable ops, so gradients of gradients work. */
#include "internal.h"

#include <math.h>

/* What a reduction node saves: the reduced axes as a bit mask, keepdim, and
 * the op's scalar (var/std: the correction; norm: p; others: unused). */
typedef struct reduce_args {
    unsigned mask;
    bool keepdim;
    double p;
} reduce_args;

/* "cg_var: [2,3]" into buf, the prefix of every message about x. */
static const char *label(char *buf, size_t size, const char *op, const cg_tensor *x) {
    char sb[128];
    snprintf(buf, size, "%s: %s", op, cg_shape_str(x, sb, sizeof sb));
    return buf;
}

/* axes (naxes of them, negative allowed) to a bit mask; naxes 0: all. */
static cg_status axes_mask(cg_ctx *ctx, const char *op, const cg_tensor *x, const int *axes,
                           int naxes, unsigned *mask) {
    char lb[192]; /* the label is formatted only for a message */
    *mask = 0;
    if (naxes == 0) {
        *mask = (1u << x->ndim) - 1u;
        return CG_OK;
    }
    if (naxes < 0 || !axes)
        return cgi_error(ctx, CG_ERR_ARG, "%s: %d axes given as %p",
                         label(lb, sizeof lb, op, x), naxes, (const void *)axes);
    for (int i = 0; i < naxes; i++) {
        int a;
        if (cgi_axis_of(ctx, op, x, axes[i], &a) != CG_OK) return CG_ERR_INDEX;
        if (*mask & (1u << a))
            return cgi_error(ctx, CG_ERR_ARG, "%s: axis %d repeated",
                             label(lb, sizeof lb, op, x), a);
        *mask |= 1u << a;
    }
    return CG_OK;
}

/* The axes of mask in ascending order; returns how many. */
static int mask_axes(unsigned mask, int ndim, int *axes) {
    int n = 0;
    for (int i = 0; i < ndim; i++)
        if (mask & (1u << i)) axes[n++] = i;
    return n;
}

static bool reduces_empty(const cg_tensor *x, unsigned mask) {
    for (int i = 0; i < x->ndim; i++)
        if ((mask & (1u << i)) && x->shape[i] == 0) return true;
    return false;
}

static cg_status need_float(cg_ctx *ctx, const char *op, const cg_tensor *x) {
    char lb[192];
    if (cgi_is_float(x->dtype)) return CG_OK;
    return cgi_error(ctx, CG_ERR_DTYPE, "%s: needs f32 or f64, got %s",
                     label(lb, sizeof lb, op, x), cg_dtype_name(x->dtype));
}

static cg_tensor *reduce(cg_ctx *ctx, const char *op, cgi_reduce_op rop, const cg_tensor *x,
                         unsigned mask, bool keepdim) {
    char lb[192];
    bool arg = rop == CGI_REDUCE_ARGMAX || rop == CGI_REDUCE_ARGMIN;
    if (rop == CGI_REDUCE_MEAN && need_float(ctx, op, x) != CG_OK) return NULL;
    if (rop != CGI_REDUCE_SUM && rop != CGI_REDUCE_MEAN && reduces_empty(x, mask)) {
        cgi_error(ctx, CG_ERR_SHAPE, "%s: reducing an empty dimension",
                  label(lb, sizeof lb, op, x));
        return NULL;
    }
    int n;
    int64_t shape[CG_MAX_DIMS];
    cgi_reduced_shape(x->ndim, x->shape, mask, keepdim, &n, shape);
    cg_tensor *out = cgi_new(ctx, op, arg ? CG_I64 : x->dtype, n, shape);
    if (out) cgi_reduce(rop, x, mask, out);
    return out;
}

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

/* ---- sum, mean, max, min --------------------------------------------------------- */
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

/* Sets oh (contiguous, src's shape) to 1 at the element each output o
 * selects: kept dims from o's C-order index, reduced dims from idx[o] (a
 * flat C-order index over the reduced axes, as cgi_reduce's ARG* give). */
static void set_selected(cg_tensor *oh, unsigned mask, const int64_t *idx, int64_t nout) {
    int64_t strides[CG_MAX_DIMS];
    cgi_contiguous_strides(oh->ndim, oh->shape, strides);
    for (int64_t o = 0; o < nout; o++) {
        int64_t kept = o, red = idx[o], off = 0;
        for (int d = oh->ndim - 1; d >= 0; d--) {
            int64_t *rest = (mask >> d & 1u) ? &red : &kept;
            off += *rest % oh->shape[d] * strides[d];
            *rest /= oh->shape[d];
        }
        if (oh->dtype == CG_F32)
            ((float *)cgi_ptr(oh))[off] = 1.0f;
        else
            ((double *)cgi_ptr(oh))[off] = 1.0;
    }
}

/* A constant (no graph) of src's shape and dtype in ctx: 1 at the first
 * extreme (rop: ARGMAX or ARGMIN) of each reduced set, 0 elsewhere. */
static cg_tensor *onehot(cg_ctx *ctx, const cg_tensor *src, cgi_reduce_op rop, unsigned mask) {
    int n;
    int64_t shape[CG_MAX_DIMS];
    cgi_reduced_shape(src->ndim, src->shape, mask, false, &n, shape);
    cg_tensor *idx = cgi_new(NULL, "cg_backward", CG_I64, n, shape);
    cg_tensor *oh = idx ? cg_zeros(ctx, src->dtype, src->ndim, src->shape) : NULL;
    if (oh) {
        cgi_reduce(rop, src, mask, idx);
        set_selected(oh, mask, (const int64_t *)cgi_ptr(idx), cgi_numel(n, shape));
    }
    cg_tensor_free(idx);
    return oh;
}

/* max/min: g reaches only the first extreme of each reduced set (C order
 * over the reduced axes), zeros elsewhere. The mask is a constant, so
 * mask * spread(g) is differentiable in g for double backward. */
static cg_tensor *extreme_grad(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cgi_reduce_op rop) {
    const cg_tensor *x = cg_node_input(n, 0);
    const reduce_args *a = cg_node_saved(n);
    return cg_mul(ctx, onehot(ctx, x, rop, a->mask), spread(ctx, g, x, a));
}
static cg_status max_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    gin[0] = extreme_grad(ctx, n, g, CGI_REDUCE_ARGMAX);
    return cgi_grads_made(n, gin);
}
static cg_status min_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    gin[0] = extreme_grad(ctx, n, g, CGI_REDUCE_ARGMIN);
    return cgi_grads_made(n, gin);
}
static const cg_op max_op = {"max", max_backward, CG_SAVES_INPUT(0)};
static const cg_op min_op = {"min", min_backward, CG_SAVES_INPUT(0)};

#define REDUCE_OP(name, rop, op)                                                               \
    cg_tensor *cg_##name(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes,          \
                         bool keepdim) {                                                       \
        reduce_args a = {0, keepdim, 0};                                                       \
        CGI_NULL_CHECK(x, "cg_" #name);                                                        \
        if (axes_mask(ctx, "cg_" #name, x, axes, naxes, &a.mask) != CG_OK) return NULL;        \
        cg_tensor *y = reduce(ctx, "cg_" #name, rop, x, a.mask, keepdim);                      \
        return y ? cg_record(ctx, (op), y, 1, &x, &a, sizeof a) : NULL;                        \
    }
REDUCE_OP(sum, CGI_REDUCE_SUM, &sum_op)
REDUCE_OP(mean, CGI_REDUCE_MEAN, &mean_op)
REDUCE_OP(max, CGI_REDUCE_MAX, &max_op)
REDUCE_OP(min, CGI_REDUCE_MIN, &min_op)

/* ---- helpers of the fused reductions ------------------------------------------------- */
/* t = k(t, s) in place, s a scalar in t's dtype. */
static void apply_scalar(cg_tensor *t, const cgi_binary_kernel *k, double s) {
    cg_tensor st;
    cgi_storage sto;
    cgi_scalar v;
    cgi_map_binary(k->fn[t->dtype], t, cgi_stack_scalar(&st, &sto, &v, t->dtype, s), t);
}

/* A caller-owned, uninitialised temporary of x's shape and dtype. */
/* A scratch tensor shaped as x: in ctx's arena when there is one (a
 * training step then mallocs nothing; cg_tensor_free leaves it to the
 * reset), else on the heap. */
static cg_tensor *temp_like(cg_ctx *ctx, const char *op, const cg_tensor *x) {
    return cgi_new(ctx, op, x->dtype, x->ndim, x->shape);
}

/* A stack header over the contiguous t with like's (contiguous) geometry,
 * the same number of elements: the keepdim and plain reduced shapes. */
static const cg_tensor *regeom(cg_tensor *hdr, const cg_tensor *t, const cg_tensor *like) {
    *hdr = *t;
    hdr->ndim = like->ndim;
    for (int i = 0; i < like->ndim; i++) {
        hdr->shape[i] = like->shape[i];
        hdr->strides[i] = like->strides[i];
    }
    return hdr;
}

/* t with its zeros replaced by 1 (the mask is a constant): a divisor or a
 * power base that stays finite where the gradient is 0 anyway. */
static cg_tensor *nonzero(cg_ctx *ctx, const cg_tensor *t) {
    return cg_add(ctx, t, cgi_compare_scalar(ctx, "cg_backward", &cgi_binary_eq, t, 0));
}

typedef cg_tensor *(*fused_forward)(cg_ctx *ctx, const char *op, const cg_tensor *x,
                                    const reduce_args *a);

/* Checks, forward (no graph), then one node saving a. */
static cg_tensor *fused(cg_ctx *ctx, const char *op, const cg_op *desc, fused_forward fwd,
                        const cg_tensor *x, const int *axes, int naxes, bool keepdim,
                        double p) {
    reduce_args a = {0, keepdim, p};
    if (need_float(ctx, op, x) != CG_OK || axes_mask(ctx, op, x, axes, naxes, &a.mask) != CG_OK)
        return NULL;
    cg_tensor *y = fwd(ctx, op, x, &a);
    return y ? cg_record(ctx, desc, y, 1, &x, &a, sizeof a) : NULL;
}

/* ---- var, std ------------------------------------------------------------------------ */
/* N - correction, floored at 0 as PyTorch: 0 gives inf or NaN, never a crash. */
static double var_divisor(const cg_tensor *x, const reduce_args *a) {
    return fmax(0.0, (double)reduced_count(x, a->mask) - a->p);
}

/* sum((x - mean)^2) / max(0, N - correction), two passes: the mean first,
 * then the squared deviations (no cancellation as in E[x^2] - E[x]^2). */
static cg_tensor *var_forward(cg_ctx *ctx, const char *op, const cg_tensor *x,
                              const reduce_args *a) {
    cg_tensor *m = reduce(ctx, op, CGI_REDUCE_MEAN, x, a->mask, true); /* kept dims 1 */
    cg_tensor *d = m ? temp_like(ctx, op, x) : NULL, *y = NULL;
    if (d) {
        cgi_map_binary(cgi_binary_sub.fn[x->dtype], x, m, d);
        cgi_map_unary(cgi_unary_square.fn[x->dtype], d, d);
        y = reduce(ctx, op, CGI_REDUCE_SUM, d, a->mask, a->keepdim);
    }
    if (y) apply_scalar(y, &cgi_binary_div, var_divisor(x, a));
    cg_tensor_free(m);
    cg_tensor_free(d);
    return y;
}

static cg_tensor *std_forward(cg_ctx *ctx, const char *op, const cg_tensor *x,
                              const reduce_args *a) {
    cg_tensor *y = var_forward(ctx, op, x, a);
    if (y) cgi_map_unary(cgi_unary_sqrt.fn[y->dtype], y, y);
    return y;
}

/* d var = spread(gv) * 2 (x - mean(x)) / (N - correction), all differentiable. */
static cg_tensor *var_grad(cg_ctx *ctx, const cg_tensor *gv, const cg_node *n) {
    const cg_tensor *x = cg_node_input(n, 0);
    const reduce_args *a = cg_node_saved(n);
    int axes[CG_MAX_DIMS], na = mask_axes(a->mask, x->ndim, axes);
    cg_tensor *dev = cg_sub(ctx, x, cg_mean(ctx, x, axes, na, true));
    return cg_mul(ctx, spread(ctx, gv, x, a), cg_mul_scalar(ctx, dev, 2.0 / var_divisor(x, a)));
}

static cg_status var_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    gin[0] = var_grad(ctx, g, n);
    return cgi_grads_made(n, gin);
}
static const cg_op var_op = {"var", var_backward, CG_SAVES_INPUT(0)};

/* std = sqrt(var): gv = g / (2 std). Where std is 0 every deviation is 0,
 * so dividing by 1 there gives the gradient 0 (PyTorch's choice), not NaN. */
static cg_status std_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    cg_tensor *two_y = cg_mul_scalar(ctx, nonzero(ctx, cg_node_output(n)), 2);
    gin[0] = var_grad(ctx, cg_div(ctx, g, two_y), n);
    return cgi_grads_made(n, gin);
}
static const cg_op std_op = {"std", std_backward, CG_SAVES_INPUT(0) | CG_SAVES_OUTPUT};

cg_tensor *cg_var(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes,
                  double correction, bool keepdim) {
    CGI_NULL_CHECK(x, "cg_var");
    if (!isfinite(correction)) {
        cgi_error(ctx, CG_ERR_ARG, "cg_var: correction %g must be finite", correction);
        return NULL;
    }
    return fused(ctx, "cg_var", &var_op, var_forward, x, axes, naxes, keepdim, correction);
}
cg_tensor *cg_std(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes,
                  double correction, bool keepdim) {
    CGI_NULL_CHECK(x, "cg_std");
    if (!isfinite(correction)) {
        cgi_error(ctx, CG_ERR_ARG, "cg_std: correction %g must be finite", correction);
        return NULL;
    }
    return fused(ctx, "cg_std", &std_op, std_forward, x, axes, naxes, keepdim, correction);
}

/* ---- logsumexp -------------------------------------------------------------------------- */
/* Infinite (or NaN) maxima become 0, as in PyTorch: a set of all -inf then
 * gives log(0) = -inf and one holding +inf gives +inf, instead of inf - inf. */
static void zero_nonfinite(cg_tensor *t) {
    int64_t n = cgi_numel(t->ndim, t->shape);
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == CG_F32) {
            float *p = (float *)cgi_ptr(t) + i;
            if (!isfinite(*p)) *p = 0.0f;
        } else {
            double *p = (double *)cgi_ptr(t) + i;
            if (!isfinite(*p)) *p = 0.0;
        }
    }
}

/* y = m + log(sum(exp(x - m))), m the max of each set (kept dims 1): every
 * exp is <= 1, so logits of +-1e4 stay finite. An empty set gives -inf. */
static cg_tensor *lse_forward(cg_ctx *ctx, const char *op, const cg_tensor *x,
                              const reduce_args *a) {
    int n;
    int64_t shape[CG_MAX_DIMS];
    cgi_reduced_shape(x->ndim, x->shape, a->mask, true, &n, shape);
    cg_tensor *m = cgi_new(ctx, op, x->dtype, n, shape), hdr;
    cg_tensor *e = m ? temp_like(ctx, op, x) : NULL, *y = NULL;
    if (e) {
        cgi_reduce(CGI_REDUCE_MAX, x, a->mask, m); /* NaN for an empty set */
        zero_nonfinite(m);
        cgi_map_binary(cgi_binary_sub.fn[x->dtype], x, m, e);
        cgi_map_unary(cgi_unary_exp.fn[x->dtype], e, e);
        y = reduce(ctx, op, CGI_REDUCE_SUM, e, a->mask, a->keepdim);
    }
    if (y) {
        cgi_map_unary(cgi_unary_log.fn[y->dtype], y, y);
        cgi_map_binary(cgi_binary_add.fn[y->dtype], y, regeom(&hdr, m, y), y);
    }
    cg_tensor_free(m);
    cg_tensor_free(e);
    return y;
}

/* d lse = spread(g) * exp(x - spread(y)), the softmax over each set. */
static cg_status lse_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    const cg_tensor *x = cg_node_input(n, 0), *y = cg_node_output(n);
    const reduce_args *a = cg_node_saved(n);
    cg_tensor *soft = cg_exp(ctx, cg_sub(ctx, x, spread(ctx, y, x, a)));
    gin[0] = cg_mul(ctx, spread(ctx, g, x, a), soft);
    return cgi_grads_made(n, gin);
}
static const cg_op lse_op = {"logsumexp", lse_backward, CG_SAVES_INPUT(0) | CG_SAVES_OUTPUT};

cg_tensor *cg_logsumexp(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes,
                        bool keepdim) {
    CGI_NULL_CHECK(x, "cg_logsumexp");
    return fused(ctx, "cg_logsumexp", &lse_op, lse_forward, x, axes, naxes, keepdim, 0);
}

/* ---- norm ------------------------------------------------------------------------------ */
/* p = 2: sqrt(sum x^2); 1: sum |x|; inf: max |x|; else (sum |x|^p)^(1/p). */
static cg_tensor *norm_forward(cg_ctx *ctx, const char *op, const cg_tensor *x,
                               const reduce_args *a) {
    double p = a->p;
    bool general = p != 1 && p != 2 && !isinf(p);
    cg_tensor *t = temp_like(ctx, op, x), *y = NULL;
    if (t) {
        cgi_map_unary((p == 2 ? &cgi_unary_square : &cgi_unary_abs)->fn[x->dtype], x, t);
        if (general) apply_scalar(t, &cgi_binary_pow, p);
        /* the norm of nothing is 0 for every p: max |x| over an empty set too
         * (torch.norm), where a max reduction would refuse it */
        bool max = isinf(p) && !reduces_empty(x, a->mask);
        y = reduce(ctx, op, max ? CGI_REDUCE_MAX : CGI_REDUCE_SUM, t, a->mask, a->keepdim);
    }
    if (y && p == 2) cgi_map_unary(cgi_unary_sqrt.fn[y->dtype], y, y);
    if (y && general) apply_scalar(y, &cgi_binary_pow, 1.0 / p);
    cg_tensor_free(t);
    return y;
}

/* inf: g sign(x) at the first largest |x| of each set (as cg_max), else 0.
 * 2: g x / y. Else: g sign(x) |x|^(p-1) / y^(p-1). Zero bases are replaced
 * by 1 (see nonzero), so a zero norm, whose x are all 0, gets gradient 0. */
static cg_tensor *norm_grad(cg_ctx *ctx, const cg_tensor *g, const cg_node *n) {
    const cg_tensor *x = cg_node_input(n, 0), *y = cg_node_output(n);
    const reduce_args *a = cg_node_saved(n);
    if (isinf(a->p) && reduces_empty(x, a->mask)) /* x is empty: so is its gradient */
        return cg_mul(ctx, cg_sign(ctx, x), spread(ctx, g, x, a));
    if (isinf(a->p)) {
        cg_tensor *ax = temp_like(ctx, "cg_backward", x), *oh = NULL;
        if (ax) cgi_map_unary(cgi_unary_abs.fn[x->dtype], x, ax);
        if (ax) oh = onehot(ctx, ax, CGI_REDUCE_ARGMAX, a->mask);
        cg_tensor_free(ax);
        return cg_mul(ctx, cg_mul(ctx, oh, cg_sign(ctx, x)), spread(ctx, g, x, a));
    }
    if (a->p == 2) return cg_mul(ctx, x, spread(ctx, cg_div(ctx, g, nonzero(ctx, y)), x, a));
    cg_tensor *s = cg_div(ctx, g, cg_pow_scalar(ctx, nonzero(ctx, y), a->p - 1));
    cg_tensor *dx = cg_pow_scalar(ctx, nonzero(ctx, cg_abs(ctx, x)), a->p - 1);
    return cg_mul(ctx, cg_mul(ctx, cg_sign(ctx, x), dx), spread(ctx, s, x, a));
}

static cg_status norm_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cg_tensor **gin) {
    gin[0] = norm_grad(ctx, g, n);
    return cgi_grads_made(n, gin);
}
static const cg_op norm_op = {"norm", norm_backward, CG_SAVES_INPUT(0) | CG_SAVES_OUTPUT};

cg_tensor *cg_norm(cg_ctx *ctx, const cg_tensor *x, double p, const int *axes, int naxes,
                   bool keepdim) {
    char lb[192];
    CGI_NULL_CHECK(x, "cg_norm");
    if (!(p > 0)) { /* also NaN */
        cgi_error(ctx, CG_ERR_ARG, "%s: p = %g, need p > 0 or INFINITY",
                  label(lb, sizeof lb, "cg_norm", x), p);
        return NULL;
    }
    return fused(ctx, "cg_norm", &norm_op, norm_forward, x, axes, naxes, keepdim, p);
}

/* ---- argmax, argmin ------------------------------------------------------------------------
 */
static cg_tensor *arg_reduce(cg_ctx *ctx, const char *op, cgi_reduce_op rop, const cg_tensor *x,
                             int axis, bool keepdim) {
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
