/* The functional normalisations: batch_norm, group_norm and layer_norm, as
 * torch.nn.functional's.
 *
 * batch_norm and group_norm are composed of differentiable public ops (mean,
 * biased var, rsqrt, mul, add, reshape), so their gradients, and the
 * gradients of those, come from those ops' own backward rules: no node of
 * their own. layer_norm, in every transformer block, is one fused op (see
 * its section). Where the
 * statistics are per channel (batch_norm, group_norm) the output is
 * x * scale + shift with scale = w / sqrt(var + eps) and shift = b - mean *
 * scale, as PyTorch's CPU kernels compute it: two passes over x instead of
 * four. With ctx NULL the work runs in a temporary context and the result is
 * copied out (caller-owned), so nothing leaks. */
#include "internal.h"

#include "../tensor/norm_kernels.h"

#include <math.h>

/* Everything a functional was given; unused fields are zero. */
typedef struct norm_args {
    const char *fn; /* the public function, for messages */
    const cg_tensor *x, *w, *b;
    cg_tensor *rm, *rv; /* batch_norm's running statistics, updated in place */
    bool training;
    double momentum, eps;
    int64_t groups;
    int ndim; /* layer_norm: how many trailing dims are normalised */
} norm_args;

typedef cg_tensor *(*norm_body)(cg_ctx *ctx, const norm_args *a);

/* ---- checks ---------------------------------------------------------------------- */
/* x is float with at least min_ndim dims (what = "[N, C, ...]"). */
static bool input_ok(cg_ctx *ctx, const norm_args *a, int min_ndim, const char *what) {
    char xs[128];
    if (!cgi_is_float(a->x->dtype)) {
        cgi_error(ctx, CG_ERR_DTYPE, "%s: input %s: needs f32 or f64, got %s", a->fn,
                  cg_shape_str(a->x, xs, sizeof xs), cg_dtype_name(a->x->dtype));
        return false;
    }
    if (a->x->ndim < min_ndim) {
        cgi_error(ctx, CG_ERR_SHAPE, "%s: input %s: expected %s", a->fn,
                  cg_shape_str(a->x, xs, sizeof xs), what);
        return false;
    }
    return true;
}

/* t (called name; NULL is fine) is live, of x's dtype and of shape
 * [shape[0], ..., shape[n-1]]. */
static bool operand_ok(cg_ctx *ctx, const norm_args *a, const char *name, const cg_tensor *t,
                       int n, const int64_t *shape) {
    char ts[128], want[128], xs[128];
    if (!t) return true;
    if (cgi_stale(t)) return cgi_stale_error_as(ctx, a->fn, name, -1, t), false;
    if (t->dtype != a->x->dtype) {
        cgi_error(ctx, CG_ERR_DTYPE, "%s: %s is %s, input %s is %s", a->fn, name,
                  cg_dtype_name(t->dtype), cg_shape_str(a->x, xs, sizeof xs),
                  cg_dtype_name(a->x->dtype));
        return false;
    }
    bool same = t->ndim == n;
    for (int i = 0; same && i < n; i++) same = t->shape[i] == shape[i];
    if (!same) {
        cgi_error(ctx, CG_ERR_SHAPE, "%s: %s %s does not match input %s: expected %s", a->fn,
                  name, cg_shape_str(t, ts, sizeof ts), cg_shape_str(a->x, xs, sizeof xs),
                  cgi_fmt_shape(want, sizeof want, n, shape));
        return false;
    }
    return true;
}

/* weight and bias of shape [n dims of shape]. */
static bool affine_ok(cg_ctx *ctx, const norm_args *a, int n, const int64_t *shape) {
    return operand_ok(ctx, a, "weight", a->w, n, shape) &&
           operand_ok(ctx, a, "bias", a->b, n, shape);
}

static bool eps_ok(cg_ctx *ctx, const norm_args *a) {
    if (a->eps >= 0 && isfinite(a->eps)) return true;
    cgi_error(ctx, CG_ERR_ARG, "%s: eps %g: need a finite eps >= 0", a->fn, a->eps);
    return false;
}

/* ---- running it -------------------------------------------------------------------- */
static bool needs_grad(const norm_args *a) {
    return a->x->requires_grad || (a->w && a->w->requires_grad) ||
           (a->b && a->b->requires_grad);
}

/* body in ctx, or (ctx NULL) in a temporary context whose result is copied
 * out: a graph needs a context, so an input requiring a gradient is then
 * CG_ERR_STATE. */
static cg_tensor *run(cg_ctx *ctx, norm_body body, const norm_args *a) {
    if (ctx) return body(ctx, a);
    if (needs_grad(a)) {
        cgi_error(NULL, CG_ERR_STATE,
                  "%s: an input requires a gradient, so the result must be made in a "
                  "context (got NULL)",
                  a->fn);
        return NULL;
    }
    cg_ctx *tmp = cg_ctx_new();
    if (!tmp) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory for a temporary context", a->fn);
        return NULL;
    }
    cg_tensor *y = body(tmp, a);
    cg_tensor *out = y ? cg_clone(NULL, y) : NULL;
    cg_ctx_free(tmp);
    return out;
}

/* y = x * scale + shift, scale = rsqrt(var + eps) * w, shift = b - mean *
 * scale; mean and var broadcast against x, w and b (NULL: 1 and 0) against
 * them. */
static cg_tensor *scale_shift(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *mean,
                              const cg_tensor *var, const cg_tensor *w, const cg_tensor *b,
                              double eps) {
    cg_tensor *scale = cg_rsqrt(ctx, cg_add_scalar(ctx, var, eps));
    if (w) scale = cg_mul(ctx, scale, w);
    cg_tensor *ms = cg_mul(ctx, mean, scale);
    cg_tensor *shift = b ? cg_sub(ctx, b, ms) : cg_neg(ctx, ms);
    return cg_add(ctx, cg_mul(ctx, x, scale), shift);
}

/* ---- batch_norm ------------------------------------------------------------------- */
/* t [C] (may be NULL) as [C, 1, ..., 1], broadcasting over x [N, C, ...]. */
static cg_tensor *per_channel(cg_ctx *ctx, const cg_tensor *t, int xndim) {
    if (!t || xndim == 2) return (cg_tensor *)t;
    int64_t shape[CG_MAX_DIMS];
    shape[0] = t->shape[0];
    for (int i = 1; i < xndim - 1; i++) shape[i] = 1;
    return cg_reshape(ctx, t, xndim - 1, shape);
}

/* running = (1 - momentum) running + momentum * factor * batch, outside
 * the graph (batch: the kept-dims statistic [1, C, 1, ...]). */
static cg_status blend(cg_ctx *ctx, cg_tensor *running, const cg_tensor *batch, double factor,
                       double momentum) {
    if (!running) return CG_OK;
    cg_tensor *flat = cg_reshape(ctx, cg_detach(ctx, batch), 1, running->shape);
    cg_tensor *next = cg_add(ctx, cg_mul_scalar(ctx, running, 1.0 - momentum),
                             cg_mul_scalar(ctx, flat, momentum * factor));
    return next ? cg_copy_(running, next) : cg_last_status();
}

/* Training: statistics over every dim but C, the biased variance for the
 * output and the unbiased one (times n / (n - 1)) for running_var. */
static cg_tensor *batch_norm_train(cg_ctx *ctx, const norm_args *a) {
    int nd = a->x->ndim, axes[CG_MAX_DIMS], naxes = 0;
    for (int i = 0; i < nd; i++)
        if (i != 1) axes[naxes++] = i;
    cg_tensor *mean = cg_mean(ctx, a->x, axes, naxes, true); /* [1, C, 1, ...] */
    cg_tensor *var = cg_var(ctx, a->x, axes, naxes, 0.0, true);
    cg_tensor *y = scale_shift(ctx, a->x, mean, var, per_channel(ctx, a->w, nd),
                               per_channel(ctx, a->b, nd), a->eps);
    if (!y) return NULL;
    double n = (double)(cg_numel(a->x) / a->x->shape[1]);
    cg_no_grad_push(ctx);
    bool ok = blend(ctx, a->rm, mean, 1.0, a->momentum) == CG_OK &&
              blend(ctx, a->rv, var, n / (n - 1), a->momentum) == CG_OK;
    cg_no_grad_pop(ctx);
    return ok ? y : NULL;
}

/* Eval: the running statistics, as constants (no gradient flows to them). */
static cg_tensor *batch_norm_eval(cg_ctx *ctx, const norm_args *a) {
    int nd = a->x->ndim;
    return scale_shift(ctx, a->x, per_channel(ctx, cg_detach(ctx, a->rm), nd),
                       per_channel(ctx, cg_detach(ctx, a->rv), nd), per_channel(ctx, a->w, nd),
                       per_channel(ctx, a->b, nd), a->eps);
}

static cg_tensor *batch_norm_body(cg_ctx *ctx, const norm_args *a) {
    return a->training ? batch_norm_train(ctx, a) : batch_norm_eval(ctx, a);
}

/* The checks that need x's channel count c. */
static bool batch_norm_ok(cg_ctx *ctx, const norm_args *a) {
    char xs[128];
    int64_t c = a->x->shape[1];
    if (!affine_ok(ctx, a, 1, &c) || !operand_ok(ctx, a, "running_mean", a->rm, 1, &c) ||
        !operand_ok(ctx, a, "running_var", a->rv, 1, &c) || !eps_ok(ctx, a))
        return false;
    if (!(a->momentum >= 0 && a->momentum <= 1)) {
        cgi_error(ctx, CG_ERR_ARG, "%s: momentum %g is not in [0, 1]", a->fn, a->momentum);
        return false;
    }
    if (!a->training && (!a->rm || !a->rv)) {
        cgi_error(ctx, CG_ERR_ARG,
                  "%s: eval (training false) needs running_mean and running_var", a->fn);
        return false;
    }
    /* the running statistics are written in place: refuse before any is */
    if (a->training && ((a->rm && cgi_check_writable(a->fn, a->rm) != CG_OK) ||
                        (a->rv && cgi_check_writable(a->fn, a->rv) != CG_OK)))
        return false;
    if (a->training && (c == 0 || cg_numel(a->x) / c <= 1)) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "%s: input %s: expected more than 1 value per channel when training", a->fn,
                  cg_shape_str(a->x, xs, sizeof xs));
        return false;
    }
    return true;
}

cg_tensor *cg_batch_norm(cg_ctx *ctx, const cg_tensor *x, cg_tensor *running_mean,
                         cg_tensor *running_var, const cg_tensor *weight, const cg_tensor *bias,
                         bool training, double momentum, double eps) {
    norm_args a = {.fn = "cg_batch_norm",
                   .x = x,
                   .w = weight,
                   .b = bias,
                   .rm = running_mean,
                   .rv = running_var,
                   .training = training,
                   .momentum = momentum,
                   .eps = eps};
    CGI_NULL_CHECK(x, a.fn);
    if (!input_ok(ctx, &a, 2, "[N, C, ...] (at least 2 dims)") || !batch_norm_ok(ctx, &a))
        return NULL;
    return run(ctx, batch_norm_body, &a);
}

/* ---- group_norm ------------------------------------------------------------------- */
/* x [N, C, ...] seen as [N, G, C/G, S] (S: the product of the spatial dims),
 * statistics over the last two, weight and bias as [1, G, C/G, 1]. */
static cg_tensor *group_norm_body(cg_ctx *ctx, const norm_args *a) {
    const cg_tensor *x = a->x;
    int64_t n = x->shape[0], c = x->shape[1], g = a->groups, s = 1;
    for (int i = 2; i < x->ndim; i++) s *= x->shape[i];
    cg_tensor *xg = cg_reshape(ctx, x, CG_SHAPE(n, g, c / g, s));
    static const int axes[] = {2, 3};
    cg_tensor *mean = cg_mean(ctx, xg, axes, 2, true); /* [N, G, 1, 1] */
    cg_tensor *var = cg_var(ctx, xg, axes, 2, 0.0, true);
    cg_tensor *w = a->w ? cg_reshape(ctx, a->w, CG_SHAPE(g, c / g, 1)) : NULL;
    cg_tensor *b = a->b ? cg_reshape(ctx, a->b, CG_SHAPE(g, c / g, 1)) : NULL;
    if ((a->w && !w) || (a->b && !b)) return NULL;
    return cg_reshape(ctx, scale_shift(ctx, xg, mean, var, w, b, a->eps), x->ndim, x->shape);
}

cg_tensor *cg_group_norm(cg_ctx *ctx, const cg_tensor *x, int64_t groups,
                         const cg_tensor *weight, const cg_tensor *bias, double eps) {
    norm_args a = {
        .fn = "cg_group_norm", .x = x, .w = weight, .b = bias, .groups = groups, .eps = eps};
    char xs[128];
    CGI_NULL_CHECK(x, a.fn);
    if (!input_ok(ctx, &a, 2, "[N, C, ...] (at least 2 dims)")) return NULL;
    int64_t c = x->shape[1];
    if (groups < 1 || c % groups != 0) {
        cgi_error(ctx, CG_ERR_ARG,
                  "%s: input %s has %lld channels, not divisible into %lld groups", a.fn,
                  cg_shape_str(x, xs, sizeof xs), (long long)c, (long long)groups);
        return NULL;
    }
    if (!affine_ok(ctx, &a, 1, &c) || !eps_ok(ctx, &a)) return NULL;
    return run(ctx, group_norm_body, &a);
}

/* ---- layer_norm ------------------------------------------------------------------- */
/* One fused op (tensor/norm_kernels.c): one pass for the row statistics and
 * the output, one for the input gradient, rows in order for the weight's;
 * composed of mean, var, rsqrt, mul and add it took some twenty tensors of
 * x's size in a GPT block's forward and backward. Its gradients of
 * gradients come from the same formula written in differentiable ops
 * (ln_composite_grads), used when the backward itself is recorded. */
typedef struct ln_saved {
    int ndim; /* trailing dims normalised */
    bool has_w, has_b;
    double eps;
    const cg_tensor *mean, *rstd; /* [rows] from the forward, in the graph's context */
} ln_saved;

static const cg_op layer_norm_op;

/* x's rows (leading dims) and row length (the last ndim dims). */
static void ln_rows(const cg_tensor *x, int ndim, int64_t *rows, int64_t *n) {
    *rows = cgi_numel(x->ndim - ndim, x->shape);
    *n = cgi_numel(ndim, x->shape + x->ndim - ndim);
}

static cg_tensor *layer_norm_body(cg_ctx *ctx, const norm_args *a) {
    const cg_tensor *x = cgi_dense(ctx, a->x), *w = cgi_dense(ctx, a->w),
                    *b = cgi_dense(ctx, a->b);
    if (!x || (a->w && !w) || (a->b && !b)) return NULL;
    int64_t rows, n;
    ln_rows(x, a->ndim, &rows, &n);
    cg_tensor *y = cgi_new(ctx, a->fn, x->dtype, x->ndim, x->shape);
    cg_tensor *mean = cgi_new(ctx, a->fn, x->dtype, 1, &rows);
    cg_tensor *rstd = cgi_new(ctx, a->fn, x->dtype, 1, &rows);
    if (!y || !mean || !rstd) return NULL;
    cgi_layer_norm_forward(x->dtype, rows, n, cgi_ptr(x), w ? cgi_ptr(w) : NULL,
                           b ? cgi_ptr(b) : NULL, a->eps, cgi_ptr(y), cgi_ptr(mean),
                           cgi_ptr(rstd));
    ln_saved sv = {a->ndim, a->w != NULL, a->b != NULL, a->eps, mean, rstd};
    const cg_tensor *in[3] = {a->x, a->w ? a->w : a->b, a->b};
    return cg_record(ctx, &layer_norm_op, y, 1 + (a->w != NULL) + (a->b != NULL), in, &sv,
                     sizeof sv);
}

/* The same gradients in differentiable ops: xhat = (x - mean) rstd, gw = g w,
 * dx = rstd (gw - mean(gw) - xhat mean(gw xhat)) over the normalised dims;
 * dw = sum of g xhat, db = sum of g over the leading dims. */
static cg_status ln_composite_grads(cg_ctx *ctx, const cg_node *nd, const cg_tensor *g,
                                    cg_tensor **gin) {
    const ln_saved *s = cg_node_saved(nd);
    const cg_tensor *x = cg_node_input(nd, 0), *w = s->has_w ? cg_node_input(nd, 1) : NULL;
    int axes[CG_MAX_DIMS], lead[CG_MAX_DIMS], nlead = x->ndim - s->ndim;
    for (int i = 0; i < s->ndim; i++) axes[i] = nlead + i;
    for (int i = 0; i < nlead; i++) lead[i] = i;
    cg_tensor *rstd =
        cg_rsqrt(ctx, cg_add_scalar(ctx, cg_var(ctx, x, axes, s->ndim, 0.0, true), s->eps));
    cg_tensor *xhat = cg_mul(ctx, cg_sub(ctx, x, cg_mean(ctx, x, axes, s->ndim, true)), rstd);
    if (cg_node_needs_grad(nd, 0)) {
        cg_tensor *gw = w ? cg_mul(ctx, g, w) : (cg_tensor *)g;
        cg_tensor *c = cg_mean(ctx, cg_mul(ctx, gw, xhat), axes, s->ndim, true);
        cg_tensor *d = cg_sub(ctx, gw, cg_mean(ctx, gw, axes, s->ndim, true));
        gin[0] = cg_mul(ctx, rstd, cg_sub(ctx, d, cg_mul(ctx, xhat, c)));
    }
    int iw = 1, ib = 1 + s->has_w;
    if (s->has_w && cg_node_needs_grad(nd, iw)) {
        cg_tensor *p = cg_mul(ctx, g, xhat);
        gin[iw] = nlead ? cg_sum(ctx, p, lead, nlead, false) : p;
    }
    if (s->has_b && cg_node_needs_grad(nd, ib))
        gin[ib] = nlead ? cg_sum(ctx, g, lead, nlead, false) : cg_clone(ctx, g);
    return cgi_grads_made(nd, gin);
}

static cg_status layer_norm_backward(cg_ctx *ctx, const cg_node *nd, const cg_tensor *g,
                                     cg_tensor **gin) {
    if (cg_is_grad_enabled(ctx)) return ln_composite_grads(ctx, nd, g, gin);
    const ln_saved *s = cg_node_saved(nd);
    int iw = 1, ib = 1 + s->has_w;
    const cg_tensor *x = cgi_dense(ctx, cg_node_input(nd, 0)), *gd = cgi_dense(ctx, g);
    const cg_tensor *w = s->has_w ? cgi_dense(ctx, cg_node_input(nd, iw)) : NULL;
    const cg_tensor *like = s->has_w   ? cg_node_input(nd, iw)
                            : s->has_b ? cg_node_input(nd, ib)
                                       : NULL;
    if (!x || !gd || (s->has_w && !w)) return cg_last_status();
    int64_t rows, n;
    ln_rows(x, s->ndim, &rows, &n);
    cg_tensor *dx = cg_node_needs_grad(nd, 0)
                        ? cgi_new(ctx, "cg_backward", x->dtype, x->ndim, x->shape)
                        : NULL;
    cg_tensor *dw = s->has_w && cg_node_needs_grad(nd, iw)
                        ? cgi_new(ctx, "cg_backward", x->dtype, like->ndim, like->shape)
                        : NULL;
    cg_tensor *db = s->has_b && cg_node_needs_grad(nd, ib)
                        ? cgi_new(ctx, "cg_backward", x->dtype, like->ndim, like->shape)
                        : NULL;
    cgi_layer_norm_backward(x->dtype, rows, n, cgi_ptr(gd), cgi_ptr(x), w ? cgi_ptr(w) : NULL,
                            cgi_ptr(s->mean), cgi_ptr(s->rstd), dx ? cgi_ptr(dx) : NULL,
                            dw ? cgi_ptr(dw) : NULL, db ? cgi_ptr(db) : NULL);
    gin[0] = dx;
    if (s->has_w) gin[iw] = dw;
    if (s->has_b) gin[ib] = db;
    return cgi_grads_made(nd, gin);
}
static const cg_op layer_norm_op = {"layer_norm", layer_norm_backward,
                                    CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};

/* x's last ndim dims are normalized_shape (ndim >= 1). */
static bool normalized_shape_ok(cg_ctx *ctx, const norm_args *a, const int64_t *shape) {
    char xs[128], ns[128];
    const cg_tensor *x = a->x;
    if (a->ndim < 1 || a->ndim > CG_MAX_DIMS || !shape) {
        cgi_error(ctx, CG_ERR_ARG, "%s: normalized_shape of %d dims%s: need 1 to %d dims",
                  a->fn, a->ndim, shape ? "" : " (NULL)", CG_MAX_DIMS);
        return false;
    }
    bool same = x->ndim >= a->ndim;
    for (int i = 0; same && i < a->ndim; i++)
        same = x->shape[x->ndim - a->ndim + i] == shape[i];
    if (!same) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "%s: input %s: its last %d dims must match the normalized shape %s", a->fn,
                  cg_shape_str(x, xs, sizeof xs), a->ndim,
                  cgi_fmt_shape(ns, sizeof ns, a->ndim, shape));
        return false;
    }
    return true;
}

cg_tensor *cg_layer_norm(cg_ctx *ctx, const cg_tensor *x, int ndim,
                         const int64_t *normalized_shape, const cg_tensor *weight,
                         const cg_tensor *bias, double eps) {
    norm_args a = {
        .fn = "cg_layer_norm", .x = x, .w = weight, .b = bias, .ndim = ndim, .eps = eps};
    CGI_NULL_CHECK(x, a.fn);
    if (!input_ok(ctx, &a, 0, "") || !normalized_shape_ok(ctx, &a, normalized_shape) ||
        !affine_ok(ctx, &a, ndim, normalized_shape) || !eps_ok(ctx, &a))
        return NULL;
    return run(ctx, layer_norm_body, &a);
}
