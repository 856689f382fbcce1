/* LayerNorm, BatchNorm1d and Dropout: the layers whose forward is more than
 * one op or depends on train / eval mode. The norms are composed of
 * differentiable ops (mean, biased variance, rsqrt), so their gradients come
 * from the ops' own backward rules. */
#include "internal.h"

#include <math.h>

typedef cg_tensor *(*forward_fn)(cg_ctx *ctx, cg_module *m, const cg_tensor *x);

/* A composite forward with ctx NULL would leave every intermediate to the
 * caller, so it runs in a scratch context and only the result is copied out.
 * That is only sound without a graph: when x or a parameter requires a
 * gradient the caller must give a context, as for any single op. */
static cg_tensor *forward_heap(cg_module *m, const cg_tensor *x, const char *op, forward_fn f) {
    bool graph = cg_requires_grad(x);
    for (int i = 0; i < m->nslots; i++)
        graph = graph || (m->slots[i].is_param && cg_requires_grad(m->slots[i].t));
    if (graph) {
        cgi_error(NULL, CG_ERR_STATE,
                  "%s: the input or a parameter requires a gradient, "
                  "so the result must be made in a context (got NULL)",
                  op);
        return NULL;
    }
    cg_ctx *tmp = cg_ctx_new();
    if (!tmp) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", op);
        return NULL;
    }
    cg_tensor *y = f(tmp, m, x);
    cg_tensor *out = y ? cg_clone(NULL, y) : NULL;
    cg_ctx_free(tmp);
    return out;
}

/* (x - mean) / sqrt(var + eps) * w + b, all broadcasting against x. */
static cg_tensor *normalise(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *mean,
                            const cg_tensor *var, double eps, const cg_tensor *w,
                            const cg_tensor *b) {
    cg_tensor *xhat =
        cg_mul(ctx, cg_sub(ctx, x, mean), cg_rsqrt(ctx, cg_add_scalar(ctx, var, eps)));
    return cg_add(ctx, cg_mul(ctx, xhat, w), b);
}

/* ---- LayerNorm ------------------------------------------------------------------ */
/* x [..., D] with weight and bias [D]: statistics over the last dim only. */
static cg_tensor *layernorm_graph(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const cg_tensor *w = cgi_slot_t(m, 0);
    if (cg_ndim(x) < 1 || cg_dim(x, -1) != cg_dim(w, 0)) {
        char xs[128], ws[128];
        cgi_error(ctx, CG_ERR_SHAPE,
                  "cg_layernorm: input %s: its last dim must match the "
                  "normalized shape %s",
                  cg_shape_str(x, xs, sizeof xs), cg_shape_str(w, ws, sizeof ws));
        return NULL;
    }
    int last = -1;
    cg_tensor *mean = cg_mean(ctx, x, &last, 1, true);    /* [..., 1] */
    cg_tensor *var = cg_var(ctx, x, &last, 1, 0.0, true); /* biased, [..., 1] */
    return normalise(ctx, x, mean, var, m->cfg[0], w, cgi_slot_t(m, 1));
}

static cg_tensor *layernorm_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    return ctx ? layernorm_graph(ctx, m, x)
               : forward_heap(m, x, "cg_layernorm", layernorm_graph);
}
static const cgi_module_kind layernorm_kind = {"LayerNorm", layernorm_forward};

cg_module *cg_nn_layernorm(cg_dtype dt, int64_t dim, double eps) {
    if (dim < 1 || !cgi_is_float(dt) || !(eps >= 0 && isfinite(eps))) {
        cgi_error(NULL, CG_ERR_ARG,
                  "cg_nn_layernorm: dim %lld, eps %g, dtype %s: need dim "
                  ">= 1, a finite eps >= 0 and a float dtype",
                  (long long)dim, eps, cg_dtype_name(dt));
        return NULL;
    }
    cg_module *m = cgi_module_new(&layernorm_kind, dt);
    cg_tensor *w = m ? cgi_module_add(m, "weight", CG_SHAPE(dim), true, dt) : NULL;
    cg_tensor *b = w ? cgi_module_add(m, "bias", CG_SHAPE(dim), true, dt) : NULL;
    if (m) m->cfg[0] = eps;
    return cgi_module_done(m, b && cg_fill_(w, 1.0) == CG_OK, "cg_nn_layernorm");
}

/* ---- BatchNorm1d ------------------------------------------------------------------ */
/* Slots, in PyTorch's state_dict order. */
enum { BN_WEIGHT, BN_BIAS, BN_MEAN, BN_VAR, BN_COUNT };

/* A per-channel [C] tensor shaped to broadcast against x: [C] for [N, C],
 * [C, 1] for [N, C, L]. */
static cg_tensor *per_channel(cg_ctx *ctx, const cg_tensor *t, int ndim) {
    return ndim == 2 ? (cg_tensor *)t : cg_reshape(ctx, t, CG_SHAPE(cg_dim(t, 0), 1));
}

/* running = (1 - momentum) running + momentum scale batch, outside the
 * graph: batch (kept dims, [1, C] or [1, C, 1]) is detached first, running
 * is a buffer. */
static cg_status blend(cg_ctx *ctx, cg_tensor *running, const cg_tensor *batch, double scale,
                       double momentum) {
    cg_tensor *flat = cg_reshape(ctx, cg_detach(ctx, batch), 1, cg_shape(running));
    cg_tensor *next = cg_add(ctx, cg_mul_scalar(ctx, running, 1.0 - momentum),
                             cg_mul_scalar(ctx, flat, momentum * scale));
    return next ? cg_copy_(running, next) : cg_last_status();
}

/* Training: batch statistics over N (and L), biased for the output,
 * unbiased (times n / (n - 1)) for running_var, as PyTorch. */
static cg_tensor *batchnorm_train(cg_ctx *ctx, cg_module *m, const cg_tensor *x,
                                  const int *axes, int naxes, int64_t n) {
    cg_tensor *mean = cg_mean(ctx, x, axes, naxes, true);
    cg_tensor *var = cg_var(ctx, x, axes, naxes, 0.0, true);
    int nd = cg_ndim(x);
    cg_tensor *y =
        normalise(ctx, x, mean, var, m->cfg[0], per_channel(ctx, cgi_slot_t(m, BN_WEIGHT), nd),
                  per_channel(ctx, cgi_slot_t(m, BN_BIAS), nd));
    if (!y) return NULL;
    cg_tensor *count = cgi_slot_t(m, BN_COUNT);
    double momentum = m->cfg[1];
    double unbias = (double)n / (double)(n - 1);
    bool ok = blend(ctx, cgi_slot_t(m, BN_MEAN), mean, 1.0, momentum) == CG_OK &&
              blend(ctx, cgi_slot_t(m, BN_VAR), var, unbias, momentum) == CG_OK &&
              cg_fill_(count, cg_item(count) + 1.0) == CG_OK;
    return ok ? y : NULL;
}

/* x [N, C] or [N, C, L]. */
static cg_tensor *batchnorm_graph(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    int nd = cg_ndim(x);
    int64_t c = cg_dim(cgi_slot_t(m, BN_WEIGHT), 0);
    char xs[128];
    if ((nd != 2 && nd != 3) || cg_dim(x, 1) != c) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "cg_batchnorm1d: input %s: expected [N, %lld] or "
                  "[N, %lld, L]",
                  cg_shape_str(x, xs, sizeof xs), (long long)c, (long long)c);
        return NULL;
    }
    int64_t n = cg_numel(x) / c; /* values per channel */
    if (m->training && n <= 1) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "cg_batchnorm1d: input %s: expected more than 1 value "
                  "per channel when training",
                  cg_shape_str(x, xs, sizeof xs));
        return NULL;
    }
    static const int axes[] = {0, 2};
    if (m->training) return batchnorm_train(ctx, m, x, axes, nd - 1, n);
    return normalise(ctx, x, per_channel(ctx, cgi_slot_t(m, BN_MEAN), nd),
                     per_channel(ctx, cgi_slot_t(m, BN_VAR), nd), m->cfg[0],
                     per_channel(ctx, cgi_slot_t(m, BN_WEIGHT), nd),
                     per_channel(ctx, cgi_slot_t(m, BN_BIAS), nd));
}

static cg_tensor *batchnorm_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    return ctx ? batchnorm_graph(ctx, m, x)
               : forward_heap(m, x, "cg_batchnorm1d", batchnorm_graph);
}
static const cgi_module_kind batchnorm_kind = {"BatchNorm1d", batchnorm_forward};

cg_module *cg_nn_batchnorm1d(cg_dtype dt, int64_t features, double eps, double momentum) {
    if (features < 1 || !cgi_is_float(dt) || !(eps >= 0 && isfinite(eps)) ||
        !(momentum >= 0 && momentum <= 1)) {
        cgi_error(NULL, CG_ERR_ARG,
                  "cg_nn_batchnorm1d: features %lld, eps %g, momentum %g, "
                  "dtype %s: need features >= 1, a finite eps >= 0, momentum in [0, 1] and "
                  "a float dtype",
                  (long long)features, eps, momentum, cg_dtype_name(dt));
        return NULL;
    }
    cg_module *m = cgi_module_new(&batchnorm_kind, dt);
    const int64_t c[] = {features};
    cg_tensor *w = m ? cgi_module_add(m, "weight", 1, c, true, dt) : NULL;
    bool ok = w && cgi_module_add(m, "bias", 1, c, true, dt) &&
              cgi_module_add(m, "running_mean", 1, c, false, dt);
    cg_tensor *var = ok ? cgi_module_add(m, "running_var", 1, c, false, dt) : NULL;
    ok = var && cgi_module_add(m, "num_batches_tracked", 0, c, false, CG_I64) &&
         cg_fill_(w, 1.0) == CG_OK && cg_fill_(var, 1.0) == CG_OK;
    if (m) {
        m->cfg[0] = eps;
        m->cfg[1] = momentum;
    }
    return cgi_module_done(m, ok, "cg_nn_batchnorm1d");
}

/* ---- Dropout ------------------------------------------------------------------------ */
/* p == 0 never draws, so it runs as eval and needs no rng. */
static cg_tensor *dropout_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    return cg_dropout(ctx, x, m->cfg[0], m->training && m->cfg[0] > 0, m->rng);
}
static const cgi_module_kind dropout_kind = {"Dropout", dropout_forward};

cg_module *cg_nn_dropout(double p, cg_rng *rng) {
    if (!(p >= 0 && p < 1) || (p > 0 && !rng)) { /* also NaN */
        cgi_error(NULL, CG_ERR_ARG,
                  "cg_nn_dropout: p = %g with %s rng: need p in [0, 1) "
                  "and an rng when p > 0",
                  p, rng ? "an" : "a NULL");
        return NULL;
    }
    cg_module *m = cgi_module_new(&dropout_kind, CG_F32);
    if (m) {
        m->cfg[0] = p;
        m->rng = rng;
    }
    return cgi_module_done(m, m != NULL, "cg_nn_dropout");
}
