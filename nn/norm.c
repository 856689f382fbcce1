/* LayerNorm, BatchNorm1d and Dropout: the layers whose forward is more than
 * one op or depends on train / eval mode. The norms are composed of
 * differentiable ops (mean, biased variance, rsqrt), so their gradients come
 * from the ops' own backward rules. */
#include "internal.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>

/* The data of a norm layer. */
typedef struct norm_data {
    double eps, momentum; /* momentum: BatchNorm only */
} norm_data;

static double eps_of(const cg_module *m) { return ((const norm_data *)cg_module_data(m))->eps; }

/* A module of kind with norm_data {eps, momentum}. */
static cg_module *norm_new(const cg_module_kind *kind, double eps, double momentum,
                           const char *fn) {
    norm_data *d = malloc(sizeof *d);
    if (!d) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        return NULL;
    }
    *d = (norm_data){eps, momentum};
    return cgi_module_new(kind, d, fn);
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
static cg_tensor *layernorm_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const cg_tensor *w = cg_module_get(m, "weight");
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
    return normalise(ctx, x, mean, var, eps_of(m), w, cg_module_get(m, "bias"));
}

static void layernorm_describe(const cg_module *m, char *buf, size_t size) {
    snprintf(buf, size, "(%lld,), eps=%g, elementwise_affine=True",
             (long long)cg_dim(cg_module_get(m, "weight"), 0), eps_of(m));
}

static const cg_module_kind layernorm_kind = {"LayerNorm", layernorm_forward, free,
                                              layernorm_describe};

cg_module *cg_nn_layernorm(cg_dtype dt, int64_t dim, double eps) {
    const char *fn = "cg_nn_layernorm";
    if (dim < 1 || !cgi_is_float(dt) || !(eps >= 0 && isfinite(eps))) {
        cgi_error(NULL, CG_ERR_ARG,
                  "%s: dim %lld, eps %g, dtype %s: need dim "
                  ">= 1, a finite eps >= 0 and a float dtype",
                  fn, (long long)dim, eps, cg_dtype_name(dt));
        return NULL;
    }
    cg_module *m = norm_new(&layernorm_kind, eps, 0, fn);
    cg_tensor *w = cgi_module_add(m, "weight", cg_ones(NULL, dt, CG_SHAPE(dim)), true, fn);
    cg_tensor *b =
        w ? cgi_module_add(m, "bias", cg_zeros(NULL, dt, CG_SHAPE(dim)), true, fn) : NULL;
    return cgi_module_done(m, b != NULL, fn);
}

/* ---- BatchNorm1d ------------------------------------------------------------------ */
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
    const norm_data *d = cg_module_data(m);
    cg_tensor *mean = cg_mean(ctx, x, axes, naxes, true);
    cg_tensor *var = cg_var(ctx, x, axes, naxes, 0.0, true);
    int nd = cg_ndim(x);
    cg_tensor *y =
        normalise(ctx, x, mean, var, d->eps, per_channel(ctx, cg_module_get(m, "weight"), nd),
                  per_channel(ctx, cg_module_get(m, "bias"), nd));
    if (!y) return NULL;
    cg_tensor *count = cg_module_get(m, "num_batches_tracked");
    double unbias = (double)n / (double)(n - 1);
    bool ok = blend(ctx, cg_module_get(m, "running_mean"), mean, 1.0, d->momentum) == CG_OK &&
              blend(ctx, cg_module_get(m, "running_var"), var, unbias, d->momentum) == CG_OK &&
              cg_fill_(count, cg_item(count) + 1.0) == CG_OK;
    return ok ? y : NULL;
}

/* x [N, C] or [N, C, L]. */
static cg_tensor *batchnorm_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    int nd = cg_ndim(x);
    int64_t c = cg_dim(cg_module_get(m, "weight"), 0);
    char xs[128];
    if ((nd != 2 && nd != 3) || cg_dim(x, 1) != c) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "cg_batchnorm1d: input %s: expected [N, %lld] or "
                  "[N, %lld, L]",
                  cg_shape_str(x, xs, sizeof xs), (long long)c, (long long)c);
        return NULL;
    }
    int64_t n = cg_numel(x) / c; /* values per channel */
    bool training = cg_module_is_training(m);
    if (training && n <= 1) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "cg_batchnorm1d: input %s: expected more than 1 value "
                  "per channel when training",
                  cg_shape_str(x, xs, sizeof xs));
        return NULL;
    }
    static const int axes[] = {0, 2};
    if (training) return batchnorm_train(ctx, m, x, axes, nd - 1, n);
    return normalise(ctx, x, per_channel(ctx, cg_module_get(m, "running_mean"), nd),
                     per_channel(ctx, cg_module_get(m, "running_var"), nd), eps_of(m),
                     per_channel(ctx, cg_module_get(m, "weight"), nd),
                     per_channel(ctx, cg_module_get(m, "bias"), nd));
}

static void batchnorm_describe(const cg_module *m, char *buf, size_t size) {
    const norm_data *d = cg_module_data(m);
    snprintf(buf, size, "%lld, eps=%g, momentum=%g, affine=True, track_running_stats=True",
             (long long)cg_dim(cg_module_get(m, "weight"), 0), d->eps, d->momentum);
}

static const cg_module_kind batchnorm_kind = {"BatchNorm1d", batchnorm_forward, free,
                                              batchnorm_describe};

cg_module *cg_nn_batchnorm1d(cg_dtype dt, int64_t features, double eps, double momentum) {
    const char *fn = "cg_nn_batchnorm1d";
    if (features < 1 || !cgi_is_float(dt) || !(eps >= 0 && isfinite(eps)) ||
        !(momentum >= 0 && momentum <= 1)) {
        cgi_error(NULL, CG_ERR_ARG,
                  "%s: features %lld, eps %g, momentum %g, dtype %s: need "
                  "features >= 1, a finite eps >= 0, momentum in [0, 1] and a float dtype",
                  fn, (long long)features, eps, momentum, cg_dtype_name(dt));
        return NULL;
    }
    cg_module *m = norm_new(&batchnorm_kind, eps, momentum, fn);
    const int64_t c[] = {features};
    bool ok = cgi_module_add(m, "weight", cg_ones(NULL, dt, 1, c), true, fn) &&
              cgi_module_add(m, "bias", cg_zeros(NULL, dt, 1, c), true, fn) &&
              cgi_module_add(m, "running_mean", cg_zeros(NULL, dt, 1, c), false, fn) &&
              cgi_module_add(m, "running_var", cg_ones(NULL, dt, 1, c), false, fn) &&
              cgi_module_add(m, "num_batches_tracked", cg_zeros(NULL, CG_I64, 0, c), false, fn);
    return cgi_module_done(m, ok, fn);
}

/* ---- Dropout ------------------------------------------------------------------------ */
typedef struct dropout_data {
    double p;
    cg_rng *rng; /* borrowed */
} dropout_data;

/* p == 0 never draws, so it runs as eval and needs no rng. */
static cg_tensor *dropout_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const dropout_data *d = cg_module_data(m);
    return cg_dropout(ctx, x, d->p, cg_module_is_training(m) && d->p > 0, d->rng);
}

static void dropout_describe(const cg_module *m, char *buf, size_t size) {
    snprintf(buf, size, "p=%g, inplace=False", ((const dropout_data *)cg_module_data(m))->p);
}

static const cg_module_kind dropout_kind = {"Dropout", dropout_forward, free, dropout_describe};

cg_module *cg_nn_dropout(double p, cg_rng *rng) {
    const char *fn = "cg_nn_dropout";
    if (!(p >= 0 && p < 1) || (p > 0 && !rng)) { /* also NaN */
        cgi_error(NULL, CG_ERR_ARG,
                  "%s: p = %g with %s rng: need p in [0, 1) and an rng "
                  "when p > 0",
                  fn, p, rng ? "an" : "a NULL");
        return NULL;
    }
    dropout_data *d = malloc(sizeof *d);
    if (!d) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        return NULL;
    }
    *d = (dropout_data){p, rng};
    cg_module *m = cgi_module_new(&dropout_kind, d, fn);
    return cgi_module_done(m, m != NULL, fn);
}
