/* The fused losses: cross_entropy and nll_loss (class-index labels), bce_loss
 * and bce_with_logits. The losses that are compositions of public ops (mse,
 * l1, smooth_l1, huber, cross_entropy_probs) are graph code in nn/loss.c.
 *
 * cross_entropy is the hot path of classifier training, so it and nll_loss
 * are one op each: the forward makes one pass over the rows (max subtracted,
 * sums in double) and yields the reduced loss; the backward is one pass over
 * the rows as well (class_grad_fused), except when the backward itself is
 * recorded (CG_CREATE_GRAPH): then it is written with differentiable ops
 * (class_grad_graph, on cg_softmax of the logits), so double backward works.
 * bce and bce_with_logits are fused elementwise ops (stable forms, PyTorch's
 * gradient formulas), reduced afterwards by cg_mean or cg_sum.
 *
 * Raw kernels, by name: bce_elem / bce_logits_elem (one element),
 * ce_row_loss_f32/_f64 and ce_row_grad_f32/_f64 (one row of logits). */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PyTorch's default ignore_index, which cg_cross_entropy and cg_nll_loss use. */
#define TORCH_IGNORE_INDEX (-100)
/* PyTorch's floor for x (1 - x) in the bce gradient. */
#define BCE_EPSILON 1e-12

/* ---- checks shared with nn/loss.c ----------------------------------------------- */
static bool reduction_ok(cg_ctx *ctx, const char *name, cg_reduction r) {
    if (r == CG_MEAN || r == CG_SUM || r == CG_NONE) return true;
    cgi_error(ctx, CG_ERR_ARG, "%s: reduction %d is not CG_MEAN, CG_SUM or CG_NONE", name,
              (int)r);
    return false;
}

/* what is "input", "logits", ...: named in the message with its shape. */
static bool float_ok(cg_ctx *ctx, const char *name, const char *what, const cg_tensor *t) {
    char sb[128];
    if (cgi_is_float(t->dtype)) return true;
    cgi_error(ctx, CG_ERR_DTYPE, "%s: %s %s: needs f32 or f64, got %s", name, what,
              cg_shape_str(t, sb, sizeof sb), cg_dtype_name(t->dtype));
    return false;
}

bool cgi_loss_ctx_ok(cg_ctx *ctx, const char *name, const cg_tensor *x, const cg_tensor *y) {
    if (ctx || !(x->requires_grad || y->requires_grad)) return true;
    cgi_error(NULL, CG_ERR_STATE,
              "%s: an input requires a gradient, so the result must "
              "be made in a context (got NULL)",
              name);
    return false;
}

bool cgi_loss_pair_ok(cg_ctx *ctx, const char *name, const char *xn, const cg_tensor *x,
                      const char *yn, const cg_tensor *y, cg_reduction r) {
    char xs[128], ys[128]; /* formatted only for a message */
    if (!reduction_ok(ctx, name, r) || !float_ok(ctx, name, xn, x) ||
        !float_ok(ctx, name, yn, y))
        return false;
    if (x->dtype != y->dtype)
        cgi_error(ctx, CG_ERR_DTYPE, "%s: %s %s and %s %s: dtypes differ", name,
                  cg_dtype_name(x->dtype), xn, cg_dtype_name(y->dtype), yn);
    else if (!cg_same_shape(x, y))
        cgi_error(ctx, CG_ERR_SHAPE, "%s: %s %s and %s %s: shapes differ", name, xn,
                  cg_shape_str(x, xs, sizeof xs), yn, cg_shape_str(y, ys, sizeof ys));
    else
        return true;
    return false;
}

cg_tensor *cgi_loss_reduce(cg_ctx *ctx, cg_tensor *loss, cg_reduction r) {
    if (r == CG_MEAN) return cg_mean(ctx, loss, NULL, 0, false);
    return r == CG_SUM ? cg_sum(ctx, loss, NULL, 0, false) : loss;
}

/* Element i of a contiguous float tensor; element offset off of any one. */
static void put(cg_tensor *t, int64_t i, double v) {
    if (t->dtype == CG_F32)
        ((float *)cgi_ptr(t))[i] = (float)v;
    else
        ((double *)cgi_ptr(t))[i] = v;
}
static double get(const cg_tensor *t, int64_t off) {
    return t->dtype == CG_F32 ? ((const float *)cgi_ptr(t))[off]
                              : ((const double *)cgi_ptr(t))[off];
}

/* ---- bce_loss, bce_with_logits: fused elementwise ops ------------------------ */
/* -(y log x + (1 - y) log(1 - x)), each log clamped at -100 as PyTorch, so
 * x = 0 or 1 gives a finite loss. */
static double bce_elem(double x, double y) {
    return -(y * fmax(log(x), -100) + (1 - y) * fmax(log1p(-x), -100));
}
/* max(x, 0) - x y + log(1 + exp(-|x|)): exp never overflows, so logits of
 * +-1e4 give finite losses. */
static double bce_logits_elem(double x, double y) {
    return fmax(x, 0) - x * y + log1p(exp(-fabs(x)));
}

/* cgi_binary_fn kernels of the two, computing in double. */
#define DEFINE_MAP(f, S, T)                                                                    \
    static void f##_##S(int64_t n, const void *a, int64_t sa, const void *b, int64_t sb,       \
                        void *out, int64_t so) {                                               \
        const T *x = a, *y = b;                                                                \
        T *o = out;                                                                            \
        for (int64_t i = 0; i < n; i++) o[i * so] = (T)f(x[i * sa], y[i * sb]);                \
    }
DEFINE_MAP(bce_elem, f32, float)
DEFINE_MAP(bce_elem, f64, double)
DEFINE_MAP(bce_logits_elem, f32, float)
DEFINE_MAP(bce_logits_elem, f64, double)
#undef DEFINE_MAP
static const cgi_binary_fn bce_fns[2] = {bce_elem_f32, bce_elem_f64};
static const cgi_binary_fn bce_logits_fns[2] = {bce_logits_elem_f32, bce_logits_elem_f64};

/* bce: PyTorch's rules, d/dx = g (x - y) / max(x (1 - x), 1e-12) and
 * d/dy = g (log(1 - x) - log x), the logs clamped as in the forward. */
static cg_status bce_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    const cg_tensor *x = cg_node_input(n, 0), *y = cg_node_input(n, 1);
    if (cg_node_needs_grad(n, 0)) {
        cg_tensor *den = cg_mul(ctx, x, cg_rsub_scalar(ctx, x, 1));
        gin[0] = cg_div(ctx, cg_mul(ctx, g, cg_sub(ctx, x, y)),
                        cg_clamp(ctx, den, BCE_EPSILON, INFINITY));
    }
    if (cg_node_needs_grad(n, 1)) {
        cg_tensor *l1 = cg_clamp(ctx, cg_log(ctx, x), -100, INFINITY);
        cg_tensor *l0 = cg_clamp(ctx, cg_log1p(ctx, cg_neg(ctx, x)), -100, INFINITY);
        gin[1] = cg_mul(ctx, g, cg_sub(ctx, l0, l1));
    }
    return cgi_grads_made(n, gin);
}
static const cg_op bce_op = {"bce_loss", bce_backward, CG_SAVES_ALL_INPUTS};

/* bce_with_logits: d/dx = g (sigmoid(x) - y), d/dy = -g x. */
static cg_status bce_logits_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                     cg_tensor **gin) {
    const cg_tensor *x = cg_node_input(n, 0), *y = cg_node_input(n, 1);
    if (cg_node_needs_grad(n, 0)) gin[0] = cg_mul(ctx, g, cg_sub(ctx, cg_sigmoid(ctx, x), y));
    if (cg_node_needs_grad(n, 1)) gin[1] = cg_neg(ctx, cg_mul(ctx, g, x));
    return cgi_grads_made(n, gin);
}
static const cg_op bce_logits_op = {"bce_with_logits", bce_logits_backward,
                                    CG_SAVES_ALL_INPUTS};

/* PyTorch rejects probabilities outside [0, 1] (their logs are NaN). lo and
 * hi are freed at once when caller-owned (ctx NULL). */
static bool unit_interval(cg_ctx *ctx, const cg_tensor *x) {
    const char *name = "cg_bce_loss";
    if (cgi_numel(x->ndim, x->shape) == 0) return true;
    cg_tensor *lo = cgi_new(ctx, name, x->dtype, 0, NULL);
    cg_tensor *hi = lo ? cgi_new(ctx, name, x->dtype, 0, NULL) : NULL;
    if (!hi) {
        cg_tensor_free(lo);
        return false;
    }
    unsigned all = (1u << x->ndim) - 1;
    cgi_reduce(CGI_REDUCE_MIN, x, all, lo);
    cgi_reduce(CGI_REDUCE_MAX, x, all, hi);
    double vlo = get(lo, 0), vhi = get(hi, 0);
    cg_tensor_free(lo);
    cg_tensor_free(hi);
    if (vlo >= 0 && vhi <= 1) return true;
    char sb[128];
    cgi_error(ctx, CG_ERR_ARG, "%s: input %s: probabilities must be in [0, 1], got [%g, %g]",
              name, cg_shape_str(x, sb, sizeof sb), vlo, vhi);
    return false;
}

/* The loss of x and y, reduced; with ctx NULL the unreduced loss is freed
 * once reduced, and an input that requires a gradient is CG_ERR_STATE. */
static cg_tensor *pointwise_loss(cg_ctx *ctx, const char *name, const cg_op *op,
                                 const cgi_binary_fn *fns, const cg_tensor *x,
                                 const cg_tensor *y, cg_reduction r) {
    CGI_NULL_CHECK(x, name);
    CGI_NULL_CHECK(y, name);
    if (!cgi_loss_pair_ok(ctx, name, "input", x, "target", y, r)) return NULL;
    if (!cgi_loss_ctx_ok(ctx, name, x, y)) return NULL;
    if (op == &bce_op && !unit_interval(ctx, x)) return NULL;
    cg_tensor *l = cgi_new(ctx, name, x->dtype, x->ndim, x->shape);
    if (l) cgi_map_binary(fns[x->dtype], x, y, l);
    l = CGI_RECORD(ctx, op, l, x, y);
    if (!l || r == CG_NONE) return l;
    cg_tensor *out = cgi_loss_reduce(ctx, l, r);
    if (!ctx) cg_tensor_free(l);
    return out;
}

cg_tensor *cg_bce_loss(cg_ctx *ctx, const cg_tensor *probs, const cg_tensor *target,
                       cg_reduction r) {
    return pointwise_loss(ctx, "cg_bce_loss", &bce_op, bce_fns, probs, target, r);
}
cg_tensor *cg_bce_with_logits(cg_ctx *ctx, const cg_tensor *logits, const cg_tensor *target,
                              cg_reduction r) {
    return pointwise_loss(ctx, "cg_bce_with_logits", &bce_logits_op, bce_logits_fns, logits,
                          target, r);
}

/* ---- cross_entropy, nll_loss: one fused op over the rows --------------------- */
/* What the backward needs, copied into the node. */
typedef struct class_saved {
    double eps;        /* label smoothing; 0 for nll */
    double denom;      /* the mean's divisor (rows not ignored); 1 for sum and none */
    int64_t ignore;    /* ignore_index, CG_IGNORE_NONE for none */
    const double *lse; /* [N] log-sum-exp of each row (arena); NULL when not kept */
    bool logits;       /* cross_entropy on logits, else nll on log-probabilities */
} class_saved;

/* The rows of x ([N, C], or [C] as one row) and the labels beside them. */
typedef struct class_rows {
    int64_t n, c;       /* rows, classes */
    int64_t rs, cs, ls; /* strides: row and class of x, row of labels */
} class_rows;

static class_rows rows_of(const cg_tensor *x, const cg_tensor *labels) {
    bool two = x->ndim == 2;
    return (class_rows){two ? x->shape[0] : 1, x->shape[x->ndim - 1], two ? x->strides[0] : 0,
                        x->strides[x->ndim - 1], two ? labels->strides[0] : 0};
}
static int64_t label_at(const cg_tensor *labels, const class_rows *cr, int64_t i) {
    return ((const int64_t *)cgi_ptr(labels))[i * cr->ls];
}

/* x [N, C] with labels i64 [N], or x [C] with labels [] (one sample). */
static bool class_ok(cg_ctx *ctx, const char *name, const char *xn, const cg_tensor *x,
                     const cg_tensor *labels, cg_reduction r) {
    char xs[128], ls[128], want[48] = "[]"; /* formatted only for a message */
    if (!reduction_ok(ctx, name, r) || !float_ok(ctx, name, xn, x)) return false;
    if (labels->dtype != CG_I64)
        cgi_error(ctx, CG_ERR_DTYPE, "%s: labels %s: needs i64 class indices, got %s", name,
                  cg_shape_str(labels, ls, sizeof ls), cg_dtype_name(labels->dtype));
    else if (x->ndim != 1 && x->ndim != 2)
        cgi_error(ctx, CG_ERR_SHAPE, "%s: %s %s: needs [N, C] or [C]", name, xn,
                  cg_shape_str(x, xs, sizeof xs));
    else if (labels->ndim != x->ndim - 1 || (x->ndim == 2 && labels->shape[0] != x->shape[0])) {
        if (x->ndim == 2) snprintf(want, sizeof want, "[%lld]", (long long)x->shape[0]);
        cgi_error(ctx, CG_ERR_SHAPE, "%s: %s %s and labels %s: labels must have shape %s", name,
                  xn, cg_shape_str(x, xs, sizeof xs), cg_shape_str(labels, ls, sizeof ls),
                  want);
    } else
        return true;
    return false;
}

/* Every label not ignored is a class in [0, C); *kept counts them. */
static bool labels_ok(cg_ctx *ctx, const char *name, const cg_tensor *labels,
                      const class_rows *cr, int64_t ignore, int64_t *kept) {
    *kept = 0;
    for (int64_t i = 0; i < cr->n; i++) {
        int64_t y = label_at(labels, cr, i);
        if (y == ignore) continue;
        if (y < 0 || y >= cr->c) {
            cgi_error(ctx, CG_ERR_INDEX,
                      "%s: label %lld (row %lld) out of range for %lld classes", name,
                      (long long)y, (long long)i, (long long)cr->c);
            return false;
        }
        (*kept)++;
    }
    return true;
}

/* Forward of one row (n classes, cs apart), label y. Cross-entropy with
 * smoothing eps: (1 - eps) (lse - x_y) + eps (lse - mean x), lse = m + log s
 * with m the max and s = sum exp(x - m) in double: no exp exceeds 1, so
 * logits of +-1e4 stay finite; *lse is kept for the backward. nll: -x_y. The
 * body is inlined twice so that unit strides (the usual case) vectorise. */
#define DEFINE_ROW_LOSS(S, T, EXP)                                                             \
    static inline double ce_row_loss_body_##S(const T *x, int64_t n, int64_t cs, int64_t y,    \
                                              double eps, double *lse) {                       \
        T m = x[0];                                                                            \
        double s = 0, sx = 0;                                                                  \
        for (int64_t c = 1; c < n; c++) m = x[c * cs] > m ? x[c * cs] : m;                     \
        for (int64_t c = 0; c < n; c++) {                                                      \
            s += EXP(x[c * cs] - m);                                                           \
            sx += x[c * cs];                                                                   \
        }                                                                                      \
        *lse = m + log(s);                                                                     \
        return log(s) + (1 - eps) * ((double)m - x[y * cs]) + eps * ((double)m - sx / n);      \
    }                                                                                          \
    static double ce_row_loss_##S(const char *px, int64_t n, int64_t cs, int64_t y,            \
                                  double eps, bool logits, double *lse) {                      \
        const T *x = (const T *)px;                                                            \
        if (!logits) return -(double)x[y * cs];                                                \
        if (cs == 1) return ce_row_loss_body_##S(x, n, 1, y, eps, lse);                        \
        return ce_row_loss_body_##S(x, n, cs, y, eps, lse);                                    \
    }

/* Backward of one row into contiguous o: d loss / d x = (softmax - target)
 * coef with softmax = exp(x - lse) (x - lse taken in double: in f32 both may
 * be near 1e4) and target 1 - eps at the label plus eps / C everywhere; nll:
 * -target coef (eps is 0 there). */
#define DEFINE_ROW_GRAD(S, T, EXP)                                                             \
    static void ce_row_grad_##S(const char *px, int64_t n, int64_t cs, int64_t y,              \
                                const class_saved *sv, double lse, double coef, char *po) {    \
        const T *x = (const T *)px;                                                            \
        T *o = (T *)po, k = (T)coef, off = (T)(sv->eps / (double)n * coef);                    \
        if (sv->logits)                                                                        \
            for (int64_t c = 0; c < n; c++)                                                    \
                o[c] = EXP((T)((double)x[c * cs] - lse)) * k - off;                            \
        else                                                                                   \
            for (int64_t c = 0; c < n; c++) o[c] = -off;                                       \
        o[y] -= (T)((1 - sv->eps) * coef);                                                     \
    }
DEFINE_ROW_LOSS(f32, float, expf)
DEFINE_ROW_LOSS(f64, double, exp)
DEFINE_ROW_GRAD(f32, float, expf)
DEFINE_ROW_GRAD(f64, double, exp)
#undef DEFINE_ROW_LOSS
#undef DEFINE_ROW_GRAD

typedef double (*row_loss_fn)(const char *, int64_t, int64_t, int64_t, double, bool, double *);
typedef void (*row_grad_fn)(const char *, int64_t, int64_t, int64_t, const class_saved *,
                            double, double, char *);

/* loss[i] for every row (0 when ignored) and, when lse is given, each row's
 * log-sum-exp. Large inputs run their rows in parallel. */
static void rows_forward(const cg_tensor *x, const cg_tensor *labels, const class_rows *cr,
                         const class_saved *sv, double *loss, double *lse) {
    row_loss_fn fn = x->dtype == CG_F32 ? ce_row_loss_f32 : ce_row_loss_f64;
    size_t es = cg_dtype_size(x->dtype);
    const char *base = cgi_ptr(x);
    CGI_PAR_FOR(cr->n * cr->c > CGI_PAR_MIN && cr->n > 1, i, cr->n, {
        int64_t y = label_at(labels, cr, i);
        double l = 0, z = 0;
        if (y != sv->ignore)
            l = fn(base + (size_t)(i * cr->rs) * es, cr->c, cr->cs, y, sv->eps, sv->logits, &z);
        loss[i] = l;
        if (lse) lse[i] = z;
    });
}

/* labels' shape for CG_NONE, else the sum (in double) over denom: 0 / 0 =
 * NaN for a mean over no rows, as PyTorch. */
static cg_tensor *class_result(cg_ctx *ctx, const char *name, const cg_tensor *x,
                               const cg_tensor *labels, const double *loss, int64_t n,
                               cg_reduction r, double denom) {
    bool none = r == CG_NONE;
    cg_tensor *out = cgi_new(ctx, name, x->dtype, none ? labels->ndim : 0, labels->shape);
    if (!out) return NULL;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        if (none) put(out, i, loss[i]);
        sum += loss[i];
    }
    if (!none) put(out, 0, sum / denom);
    return out;
}

/* The loss, no graph; fills sv's denom and lse (kept in the arena only when
 * the result will be recorded). */
static cg_tensor *class_forward(cg_ctx *ctx, const char *name, const cg_tensor *x,
                                const cg_tensor *labels, cg_reduction r, class_saved *sv) {
    class_rows cr = rows_of(x, labels);
    int64_t kept;
    if (!labels_ok(ctx, name, labels, &cr, sv->ignore, &kept)) return NULL;
    sv->denom = r == CG_MEAN ? (double)kept : 1;
    bool keep = sv->logits && cr.n > 0 && cg_is_grad_enabled(ctx) && x->requires_grad;
    double *lse = keep ? cgi_alloc(ctx, name, (size_t)cr.n * sizeof *lse) : NULL;
    /* per-row losses: scratch in the arena, so a training step mallocs nothing */
    size_t bytes = (size_t)(cr.n ? cr.n : 1) * sizeof(double);
    double *loss = ctx ? cgi_alloc(ctx, name, bytes) : malloc(bytes);
    if (!loss || (keep && !lse)) {
        if (!ctx) free(loss);
        cgi_error(ctx, CG_ERR_NOMEM, "%s: out of memory", name);
        return NULL;
    }
    rows_forward(x, labels, &cr, sv, loss, lse);
    sv->lse = lse;
    cg_tensor *out = class_result(ctx, name, x, labels, loss, cr.n, r, sv->denom);
    if (!ctx) free(loss);
    return out;
}

/* gin (x's shape, contiguous) in one pass, for a backward that is not
 * recorded: row i gets the row gradient with coef = g_i / denom, or zeros
 * when ignored. */
static cg_tensor *class_grad_fused(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *labels,
                                   const cg_tensor *g, const class_saved *sv) {
    class_rows cr = rows_of(x, labels);
    cg_tensor *gin = cgi_new(ctx, "cg_backward", x->dtype, x->ndim, x->shape);
    if (!gin) return NULL;
    row_grad_fn fn = x->dtype == CG_F32 ? ce_row_grad_f32 : ce_row_grad_f64;
    size_t es = cg_dtype_size(x->dtype);
    int64_t gs = g->ndim ? g->strides[0] : 0; /* g is [] or labels' [N] */
    CGI_PAR_FOR(cr.n * cr.c > CGI_PAR_MIN && cr.n > 1, i, cr.n, {
        int64_t y = label_at(labels, &cr, i);
        char *o = cgi_ptr(gin) + (size_t)(i * cr.c) * es;
        if (y == sv->ignore)
            memset(o, 0, (size_t)cr.c * es);
        else
            fn(cgi_ptr(x) + (size_t)(i * cr.rs) * es, cr.c, cr.cs, y, sv,
               sv->lse ? sv->lse[i] : 0, get(g, i * gs) / sv->denom, o);
    });
    return gin;
}

/* The same gradient in differentiable ops, for a recorded backward (double
 * backward): (softmax(x) - t) coef, or -t coef for nll, with t [N, C] the
 * target distribution and coef = g w, w [N] = 1 / denom (0 for ignored
 * rows), t and w constants. */
static cg_tensor *class_grad_graph(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *labels,
                                   const cg_tensor *g, const class_saved *sv) {
    class_rows cr = rows_of(x, labels);
    cg_tensor *t = cgi_new(ctx, "cg_backward", x->dtype, x->ndim, x->shape);
    cg_tensor *w = cgi_new(ctx, "cg_backward", x->dtype, labels->ndim, labels->shape);
    if (!t || !w) return NULL;
    for (int64_t i = 0; i < cr.n; i++) {
        int64_t y = label_at(labels, &cr, i);
        bool kept = y != sv->ignore;
        put(w, i, kept ? 1 / sv->denom : 0);
        for (int64_t c = 0; c < cr.c; c++)
            put(t, i * cr.c + c,
                kept ? sv->eps / (double)cr.c + (c == y ? 1 - sv->eps : 0) : 0);
    }
    cg_tensor *coef = cg_mul(ctx, g, w);
    if (x->ndim == 2) coef = cg_unsqueeze(ctx, coef, 1);
    cg_tensor *d = sv->logits ? cg_sub(ctx, cg_softmax(ctx, x, -1), t) : cg_neg(ctx, t);
    return cg_mul(ctx, d, coef);
}

/* cross_entropy and nll_loss: d/dx as above (fused, or in ops when the
 * backward is recorded); the labels get none. */
static cg_status class_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                cg_tensor **gin) {
    const class_saved *sv = cg_node_saved(n);
    const cg_tensor *x = cg_node_input(n, 0), *labels = cg_node_input(n, 1);
    bool fused = !cg_is_grad_enabled(ctx) && (sv->lse || !sv->logits);
    gin[0] = fused ? class_grad_fused(ctx, x, labels, g, sv)
                   : class_grad_graph(ctx, x, labels, g, sv);
    return cgi_grads_made(n, gin);
}
static const cg_op cross_entropy_op = {"cross_entropy", class_backward, CG_SAVES_ALL_INPUTS};
static const cg_op nll_op = {"nll_loss", class_backward, CG_SAVES_ALL_INPUTS};

static cg_tensor *class_loss(cg_ctx *ctx, const char *name, const cg_op *op, const cg_tensor *x,
                             const cg_tensor *labels, cg_reduction r, double eps,
                             int64_t ignore) {
    bool logits = op != &nll_op;
    CGI_NULL_CHECK(x, name);
    CGI_NULL_CHECK(labels, name);
    if (!class_ok(ctx, name, logits ? "logits" : "log_probs", x, labels, r) ||
        !cgi_loss_ctx_ok(ctx, name, x, labels))
        return NULL;
    if (!(eps >= 0 && eps <= 1)) {
        cgi_error(ctx, CG_ERR_ARG, "%s: label_smoothing %g is not in [0, 1]", name, eps);
        return NULL;
    }
    class_saved sv = {.eps = eps, .ignore = ignore, .logits = logits};
    cg_tensor *out = class_forward(ctx, name, x, labels, r, &sv);
    const cg_tensor *in[] = {x, labels};
    return cg_record(ctx, op, out, 2, in, &sv, sizeof sv);
}

/* PyTorch's defaults: no smoothing, label -100 ignored. */
cg_tensor *cg_cross_entropy(cg_ctx *ctx, const cg_tensor *logits, const cg_tensor *labels,
                            cg_reduction r) {
    return class_loss(ctx, "cg_cross_entropy", &cross_entropy_op, logits, labels, r, 0,
                      TORCH_IGNORE_INDEX);
}
cg_tensor *cg_cross_entropy_ex(cg_ctx *ctx, const cg_tensor *logits, const cg_tensor *labels,
                               cg_reduction r, double label_smoothing, int64_t ignore_index) {
    return class_loss(ctx, "cg_cross_entropy_ex", &cross_entropy_op, logits, labels, r,
                      label_smoothing, ignore_index);
}
/* -log_probs[i, label_i]; label -100 is ignored (PyTorch's default). */
cg_tensor *cg_nll_loss(cg_ctx *ctx, const cg_tensor *log_probs, const cg_tensor *labels,
                       cg_reduction r) {
    return class_loss(ctx, "cg_nll_loss", &nll_op, log_probs, labels, r, 0, TORCH_IGNORE_INDEX);
}
