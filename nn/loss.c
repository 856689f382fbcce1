/* The composed losses, as PyTorch defines them, reduced by mean, sum or not
 * at all: mse, l1, smooth_l1, huber and cross_entropy_probs are graph code on
 * the public ops. The fused losses (cross_entropy, nll_loss, bce_loss,
 * bce_with_logits) are ops, in ops/loss.c.
 *
 * ctx NULL: a composition's intermediates would have no owner, so it runs
 * in a temporary context and its result is copied out caller-owned. As for
 * every op, an input that requires a gradient then is CG_ERR_STATE (a graph
 * needs a context). */
#include "../ops/internal.h"
#include "nn.h"

/* ---- losses of an input and a target of one shape ----------------------- */
typedef enum pair_kind { MSE, L1, SMOOTH_L1, HUBER, CE_PROBS } pair_kind;
static const char *const pair_names[] = {"cg_mse_loss", "cg_l1_loss", "cg_smooth_l1_loss",
                                         "cg_huber_loss", "cg_cross_entropy_probs"};

/* Same float dtype, same shape (PyTorch would broadcast with a warning);
 * CE_PROBS: logits and probs [N, C] or [C]; p: beta >= 0 or delta > 0. */
static bool pair_ok(cg_ctx *ctx, pair_kind k, const cg_tensor *x, const cg_tensor *y, double p,
                    cg_reduction r) {
    const char *name = pair_names[k];
    char xs[128]; /* formatted only for a message */
    if (!cgi_loss_pair_ok(ctx, name, k == CE_PROBS ? "logits" : "input", x,
                          k == CE_PROBS ? "probs" : "target", y, r))
        return false;
    if (k == CE_PROBS && x->ndim != 1 && x->ndim != 2)
        cgi_error(ctx, CG_ERR_SHAPE, "%s: logits %s: needs [N, C] or [C]", name,
                  cg_shape_str(x, xs, sizeof xs));
    else if (k == SMOOTH_L1 && !(p >= 0))
        cgi_error(ctx, CG_ERR_ARG, "%s: beta %g: must be >= 0", name, p);
    else if (k == HUBER && !(p > 0))
        cgi_error(ctx, CG_ERR_ARG, "%s: delta %g: must be > 0", name, p);
    else
        return true;
    return false;
}

/* where(|d| < k, a d^2, b (|d| - k / 2)): huber (k = delta, a = 1/2,
 * b = delta) and smooth_l1 (k = beta, a = 1 / (2 beta), b = 1); name for
 * messages. */
static cg_tensor *piecewise(cg_ctx *ctx, const char *name, const cg_tensor *d, double k,
                            double a, double b) {
    cg_tensor *ad = cg_abs(ctx, d);
    cg_tensor *quad = cg_mul_scalar(ctx, cg_square(ctx, d), a);
    cg_tensor *lin = cg_mul_scalar(ctx, cg_sub_scalar(ctx, ad, 0.5 * k), b);
    return cg_where(ctx, cgi_compare_scalar(ctx, name, &cgi_binary_lt, ad, k), quad, lin);
}

/* The unreduced loss: x's shape, or [N] / [] (one per row) for CE_PROBS. */
static cg_tensor *pointwise(cg_ctx *ctx, pair_kind k, const cg_tensor *x, const cg_tensor *y,
                            double p) {
    switch (k) {
    case MSE: return cg_square(ctx, cg_sub(ctx, x, y));
    case L1: return cg_abs(ctx, cg_sub(ctx, x, y));
    case SMOOTH_L1: /* beta 0 is l1 (PyTorch's special case: no 0 / 0) */
        if (p == 0) return cg_abs(ctx, cg_sub(ctx, x, y));
        return piecewise(ctx, pair_names[k], cg_sub(ctx, x, y), p, 0.5 / p, 1);
    case HUBER: return piecewise(ctx, pair_names[k], cg_sub(ctx, x, y), p, 0.5, p);
    case CE_PROBS: /* -sum_c p_c log_softmax(x)_c along the class axis */
        return cg_neg(ctx, cg_sum(ctx, cg_mul(ctx, y, cg_log_softmax(ctx, x, -1)),
                                  (const int[]){-1}, 1, false));
    }
    return NULL;
}

/* ctx NULL: the loss is made in a temporary context and copied out. */
static cg_tensor *in_temp_ctx(pair_kind k, const cg_tensor *x, const cg_tensor *y, double p,
                              cg_reduction r) {
    if (!cgi_loss_ctx_ok(NULL, pair_names[k], x, y)) return NULL;
    cg_ctx *tmp = cg_ctx_new();
    if (!tmp) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory for a temporary context",
                  pair_names[k]);
        return NULL;
    }
    cg_tensor *out = cgi_loss_reduce(tmp, pointwise(tmp, k, x, y, p), r);
    out = out ? cg_clone(NULL, out) : NULL;
    cg_ctx_free(tmp);
    return out;
}

static cg_tensor *pair_loss(cg_ctx *ctx, pair_kind k, const cg_tensor *x, const cg_tensor *y,
                            double p, cg_reduction r) {
    CGI_NULL_CHECK(x, pair_names[k]);
    CGI_NULL_CHECK(y, pair_names[k]);
    if (!pair_ok(ctx, k, x, y, p, r)) return NULL;
    if (!ctx) return in_temp_ctx(k, x, y, p, r);
    return cgi_loss_reduce(ctx, pointwise(ctx, k, x, y, p), r);
}

/* The losses with no parameter (cg_cross_entropy_probs: the mean is over the
 * N rows, PyTorch's mean for probability targets). */
#define PAIR_LOSS(fn, kind)                                                                    \
    cg_tensor *fn(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *y, cg_reduction r) {       \
        return pair_loss(ctx, kind, x, y, 0, r);                                               \
    }
PAIR_LOSS(cg_mse_loss, MSE)
PAIR_LOSS(cg_l1_loss, L1)
PAIR_LOSS(cg_cross_entropy_probs, CE_PROBS)
#undef PAIR_LOSS

cg_tensor *cg_smooth_l1_loss(cg_ctx *ctx, const cg_tensor *input, const cg_tensor *target,
                             double beta, cg_reduction r) {
    return pair_loss(ctx, SMOOTH_L1, input, target, beta, r);
}
cg_tensor *cg_huber_loss(cg_ctx *ctx, const cg_tensor *input, const cg_tensor *target,
                         double delta, cg_reduction r) {
    return pair_loss(ctx, HUBER, input, target, delta, r);
}
