/* softmax and log_softmax along one axis, and dropout.
 *
 * The softmax forwards are fused kernels (one row of the axis at a time:
 * max, sum of exp, write), since they are hot in training; the backward
 * rules are differentiable ops on the saved output. */
#include "internal.h"

#include <math.h>

/* ---- fused row kernels ------------------------------------------------------------------ */
/* One row: n elements of x, xs apart, into o, os apart. The max is
 * subtracted first, so every exp is <= 1 and logits of +-1e4 stay finite;
 * the sum of exps accumulates in double. lg: log_softmax (x - m - log s). */
typedef void (*row_fn)(const char *x, int64_t n, int64_t xs, char *o, int64_t os, bool lg);

/* The body is inlined twice: with unit strides (the usual last axis of a
 * contiguous input) the compiler drops the stride multiplies and vectorises
 * the max and scale loops. */
#define DEFINE_ROW(S, T, EXP)                                                                  \
    static inline void row_##S(const T *x, int64_t n, int64_t xs, T *o, int64_t os, bool lg) { \
        T m = x[0];                                                                            \
        double s = 0;                                                                          \
        for (int64_t i = 1; i < n; i++) m = x[i * xs] > m ? x[i * xs] : m;                     \
        for (int64_t i = 0; i < n; i++) {                                                      \
            T e = EXP(x[i * xs] - m);                                                          \
            s += e;                                                                            \
            if (!lg) o[i * os] = e;                                                            \
        }                                                                                      \
        if (lg) {                                                                              \
            T ls = (T)log(s);                                                                  \
            for (int64_t i = 0; i < n; i++) o[i * os] = (x[i * xs] - m) - ls;                  \
        } else {                                                                               \
            T r = (T)(1.0 / s);                                                                \
            for (int64_t i = 0; i < n; i++) o[i * os] *= r;                                    \
        }                                                                                      \
    }                                                                                          \
    static void softmax_row_##S(const char *px, int64_t n, int64_t xs, char *po, int64_t os,   \
                                bool lg) {                                                     \
        if (xs == 1 && os == 1)                                                                \
            row_##S((const T *)px, n, 1, (T *)po, 1, lg);                                      \
        else                                                                                   \
            row_##S((const T *)px, n, xs, (T *)po, os, lg);                                    \
    }
DEFINE_ROW(f32, float, expf)
DEFINE_ROW(f64, double, exp)
#undef DEFINE_ROW

/* The rows of x along axis: the other dims, with x's and out's strides. */
typedef struct rows {
    int ndim;
    int64_t shape[CG_MAX_DIMS], xs[CG_MAX_DIMS], os[CG_MAX_DIMS];
} rows;

static void rows_init(rows *r, const cg_tensor *x, const cg_tensor *out, int axis) {
    r->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d == axis) continue;
        r->shape[r->ndim] = x->shape[d];
        r->xs[r->ndim] = x->strides[d];
        r->os[r->ndim++] = out->strides[d];
    }
}

/* out (contiguous, x's shape) = softmax or log_softmax of x along axis; x
 * may have any strides. Rows run in parallel on large inputs. */
static void softmax_rows(const cg_tensor *x, int axis, cg_tensor *out, bool lg) {
    int64_t n = x->shape[axis], numel = cgi_numel(x->ndim, x->shape);
    if (numel == 0) return;
    rows r;
    rows_init(&r, x, out, axis);
    row_fn fn = x->dtype == CG_F32 ? softmax_row_f32 : softmax_row_f64;
    size_t es = cg_dtype_size(x->dtype);
    int64_t nrows = numel / n, xstep = x->strides[axis], ostep = out->strides[axis];
    CGI_PAR_FOR(numel > CGI_PAR_MIN && nrows > 1, row, nrows, {
        int64_t rest = row, xo = 0, oo = 0;
        for (int d = r.ndim - 1; d >= 0; d--) {
            xo += rest % r.shape[d] * r.xs[d];
            oo += rest % r.shape[d] * r.os[d];
            rest /= r.shape[d];
        }
        fn(cgi_ptr(x) + (size_t)xo * es, n, xstep, cgi_ptr(out) + (size_t)oo * es, ostep, lg);
    });
}

/* Checks (float dtype, axis) and the forward, no graph; *ax gets the axis. */
static cg_tensor *softmax_forward(cg_ctx *ctx, const char *op, const cg_tensor *x, int axis,
                                  bool lg, int *ax) {
    char sb[128]; /* formatted only for a message */
    if (!cgi_is_float(x->dtype)) {
        cgi_error(ctx, CG_ERR_DTYPE, "%s: %s: needs f32 or f64, got %s", op,
                  cg_shape_str(x, sb, sizeof sb), cg_dtype_name(x->dtype));
        return NULL;
    }
    if (cgi_axis_of(ctx, op, x, axis, ax) != CG_OK) return NULL;
    cg_tensor *y = cgi_new(ctx, op, x->dtype, x->ndim, x->shape);
    if (y) softmax_rows(x, *ax, y, lg);
    return y;
}

/* ---- softmax, log_softmax ---------------------------------------------------------------- */
/* softmax: gin = y (g - sum(g y, axis)), y the saved output. */
static cg_status softmax_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                  cg_tensor **gin) {
    const cg_tensor *y = cg_node_output(n);
    const int *axis = cg_node_saved(n);
    cg_tensor *gy = cg_sum(ctx, cg_mul(ctx, g, y), axis, 1, true);
    gin[0] = cg_mul(ctx, y, cg_sub(ctx, g, gy));
    return cgi_grads_made(n, gin);
}
static const cg_op softmax_op = {"softmax", softmax_backward, CG_SAVES_OUTPUT};

/* log_softmax: gin = g - exp(y) sum(g, axis), exp(y) being the softmax. */
static cg_status log_softmax_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                      cg_tensor **gin) {
    const cg_tensor *y = cg_node_output(n);
    const int *axis = cg_node_saved(n);
    cg_tensor *sg = cg_sum(ctx, g, axis, 1, true);
    gin[0] = cg_sub(ctx, g, cg_mul(ctx, cg_exp(ctx, y), sg));
    return cgi_grads_made(n, gin);
}
static const cg_op log_softmax_op = {"log_softmax", log_softmax_backward, CG_SAVES_OUTPUT};

static cg_tensor *softmax_op_apply(cg_ctx *ctx, const char *op, const cg_op *desc,
                                   const cg_tensor *x, int axis, bool lg) {
    int ax;
    CGI_NULL_CHECK(x, op);
    cg_tensor *y = softmax_forward(ctx, op, x, axis, lg, &ax);
    return y ? cg_record(ctx, desc, y, 1, &x, &ax, sizeof ax) : NULL;
}

cg_tensor *cg_softmax(cg_ctx *ctx, const cg_tensor *x, int axis) {
    return softmax_op_apply(ctx, "cg_softmax", &softmax_op, x, axis, false);
}
cg_tensor *cg_log_softmax(cg_ctx *ctx, const cg_tensor *x, int axis) {
    return softmax_op_apply(ctx, "cg_log_softmax", &log_softmax_op, x, axis, true);
}

/* ---- dropout -------------------------------------------------------------------------------
 */
/* Training: inputs (x, mask) with mask = keep / (1 - p), a constant in ctx,
 * so gin = g * mask. Identity (eval, p == 0): input x only, gin = g. */
static cg_status dropout_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                  cg_tensor **gin) {
    gin[0] = cg_node_ninputs(n) == 2 ? cg_mul(ctx, g, cg_node_input(n, 1)) : (cg_tensor *)g;
    return cgi_grads_made(n, gin);
}
static const cg_op dropout_op = {"dropout", dropout_backward, CG_SAVES_INPUT(1)};

/* y = x * mask, the mask drawn from rng in C order of x's shape: 1/(1-p)
 * with probability 1-p, else 0. A heap mask (ctx NULL) is freed here: no
 * node can hold it, as a graph needs a context. */
static cg_tensor *dropout_train(cg_ctx *ctx, const cg_tensor *x, double p, cg_rng *rng) {
    cg_tensor *mask = cg_bernoulli(ctx, rng, x->dtype, x->ndim, x->shape, 1.0 - p);
    cg_tensor *y = mask ? cgi_new(ctx, "cg_dropout", x->dtype, x->ndim, x->shape) : NULL;
    if (y) {
        cg_tensor st;
        cgi_storage sto;
        cgi_scalar v;
        cgi_map_binary(cgi_binary_mul.fn[x->dtype], mask,
                       cgi_stack_scalar(&st, &sto, &v, x->dtype, 1.0 / (1.0 - p)), mask);
        cgi_map_binary(cgi_binary_mul.fn[x->dtype], x, mask, y);
        y = CGI_RECORD(ctx, &dropout_op, y, x, mask);
    }
    if (!ctx) cg_tensor_free(mask);
    return y;
}

cg_tensor *cg_dropout(cg_ctx *ctx, const cg_tensor *x, double p, bool training, cg_rng *rng) {
    char sb[128]; /* formatted only for a message */
    CGI_NULL_CHECK(x, "cg_dropout");
    if (!cgi_is_float(x->dtype)) {
        cgi_error(ctx, CG_ERR_DTYPE, "cg_dropout: %s: needs f32 or f64, got %s",
                  cg_shape_str(x, sb, sizeof sb), cg_dtype_name(x->dtype));
        return NULL;
    }
    if (!(p >= 0 && p < 1)) { /* also NaN */
        cgi_error(ctx, CG_ERR_ARG, "cg_dropout: %s: p = %g is not in [0, 1)",
                  cg_shape_str(x, sb, sizeof sb), p);
        return NULL;
    }
    if (training && !rng) {
        cgi_error(ctx, CG_ERR_ARG, "cg_dropout: %s: training needs an rng (got NULL)",
                  cg_shape_str(x, sb, sizeof sb));
        return NULL;
    }
    if (training && p > 0) return dropout_train(ctx, x, p, rng);
    cg_tensor *v = cgi_view_of(ctx, "cg_dropout", x, x->ndim, x->shape, x->strides, x->offset);
    return CGI_RECORD(ctx, &dropout_op, v, x);
}
