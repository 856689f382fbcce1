/* LayerNorm, BatchNorm1d, BatchNorm2d, GroupNorm, Dropout and Dropout2d: the
 * layers whose forward depends on train / eval mode or on state beyond its
 * parameters. The norms call the functionals of ops/norm.c (composed of
 * differentiable ops, so gradients of any order come from those ops). */
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
    return cgi_module_new_copy(kind, &(norm_data){eps, momentum}, sizeof(norm_data), fn);
}

/* ---- LayerNorm ------------------------------------------------------------------ */
/* x [..., D] with weight and bias [D]: statistics over the last dim only. */
static cg_tensor *layernorm_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const cg_tensor *w = cg_module_get(m, "weight");
    int64_t d = cg_dim(w, 0);
    return cg_layer_norm(ctx, x, 1, &d, w, cg_module_get(m, "bias"), eps_of(m));
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

/* ---- BatchNorm1d, BatchNorm2d ---------------------------------------------------- */
static const cg_module_kind batchnorm1d_kind, batchnorm2d_kind;

/* x's rank is one BatchNorm1d ([N, C] or [N, C, L]) or BatchNorm2d ([N, C,
 * H, W]) takes, with the layer's C channels. */
static bool batchnorm_input_ok(cg_ctx *ctx, const cg_module *m, const cg_tensor *x) {
    int nd = cg_ndim(x);
    int64_t c = cg_dim(cg_module_get(m, "weight"), 0);
    bool two_d = cg_module_kind_of(m) == &batchnorm2d_kind;
    if ((two_d ? nd == 4 : nd == 2 || nd == 3) && cg_dim(x, 1) == c) return true;
    char xs[128];
    if (two_d)
        cgi_error(ctx, CG_ERR_SHAPE, "cg_batchnorm2d: input %s: expected [N, %lld, H, W]",
                  cg_shape_str(x, xs, sizeof xs), (long long)c);
    else
        cgi_error(ctx, CG_ERR_SHAPE,
                  "cg_batchnorm1d: input %s: expected [N, %lld] or "
                  "[N, %lld, L]",
                  cg_shape_str(x, xs, sizeof xs), (long long)c, (long long)c);
    return false;
}

/* cg_batch_norm with the layer's state: batch statistics (and an update of
 * the running ones, counted in num_batches_tracked) in training, the
 * running ones in eval. */
static cg_tensor *batchnorm_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const norm_data *d = cg_module_data(m);
    if (!batchnorm_input_ok(ctx, m, x)) return NULL;
    bool training = cg_module_is_training(m);
    cg_tensor *y = cg_batch_norm(ctx, x, cg_module_get(m, "running_mean"),
                                 cg_module_get(m, "running_var"), cg_module_get(m, "weight"),
                                 cg_module_get(m, "bias"), training, d->momentum, d->eps);
    if (!y || !training) return y;
    cg_tensor *count = cg_module_get(m, "num_batches_tracked");
    return cg_fill_(count, cg_item(count) + 1.0) == CG_OK ? y : NULL;
}

static void batchnorm_describe(const cg_module *m, char *buf, size_t size) {
    const norm_data *d = cg_module_data(m);
    snprintf(buf, size, "%lld, eps=%g, momentum=%g, affine=True, track_running_stats=True",
             (long long)cg_dim(cg_module_get(m, "weight"), 0), d->eps, d->momentum);
}

static const cg_module_kind batchnorm1d_kind = {"BatchNorm1d", batchnorm_forward, free,
                                                batchnorm_describe};
static const cg_module_kind batchnorm2d_kind = {"BatchNorm2d", batchnorm_forward, free,
                                                batchnorm_describe};

/* PyTorch's state: weight ones, bias zeros, running_mean zeros,
 * running_var ones, num_batches_tracked 0 (i64, rank 0). */
static cg_module *batchnorm_new(const cg_module_kind *kind, cg_dtype dt, int64_t features,
                                double eps, double momentum, const char *fn) {
    if (features < 1 || !cgi_is_float(dt) || !(eps >= 0 && isfinite(eps)) ||
        !(momentum >= 0 && momentum <= 1)) {
        cgi_error(NULL, CG_ERR_ARG,
                  "%s: features %lld, eps %g, momentum %g, dtype %s: need "
                  "features >= 1, a finite eps >= 0, momentum in [0, 1] and a float dtype",
                  fn, (long long)features, eps, momentum, cg_dtype_name(dt));
        return NULL;
    }
    cg_module *m = norm_new(kind, eps, momentum, fn);
    const int64_t c[] = {features};
    bool ok = cgi_module_add(m, "weight", cg_ones(NULL, dt, 1, c), true, fn) &&
              cgi_module_add(m, "bias", cg_zeros(NULL, dt, 1, c), true, fn) &&
              cgi_module_add(m, "running_mean", cg_zeros(NULL, dt, 1, c), false, fn) &&
              cgi_module_add(m, "running_var", cg_ones(NULL, dt, 1, c), false, fn) &&
              cgi_module_add(m, "num_batches_tracked", cg_zeros(NULL, CG_I64, 0, c), false, fn);
    return cgi_module_done(m, ok, fn);
}

cg_module *cg_nn_batchnorm1d(cg_dtype dt, int64_t features, double eps, double momentum) {
    return batchnorm_new(&batchnorm1d_kind, dt, features, eps, momentum, "cg_nn_batchnorm1d");
}

cg_module *cg_nn_batchnorm2d(cg_dtype dt, int64_t features, double eps, double momentum) {
    return batchnorm_new(&batchnorm2d_kind, dt, features, eps, momentum, "cg_nn_batchnorm2d");
}

/* ---- GroupNorm ---------------------------------------------------------------------- */
typedef struct groupnorm_data {
    double eps;
    int64_t groups;
} groupnorm_data;

static cg_tensor *groupnorm_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const groupnorm_data *d = cg_module_data(m);
    return cg_group_norm(ctx, x, d->groups, cg_module_get(m, "weight"),
                         cg_module_get(m, "bias"), d->eps);
}

static void groupnorm_describe(const cg_module *m, char *buf, size_t size) {
    const groupnorm_data *d = cg_module_data(m);
    snprintf(buf, size, "%lld, %lld, eps=%g, affine=True", (long long)d->groups,
             (long long)cg_dim(cg_module_get(m, "weight"), 0), d->eps);
}

static const cg_module_kind groupnorm_kind = {"GroupNorm", groupnorm_forward, free,
                                              groupnorm_describe};

cg_module *cg_nn_groupnorm(cg_dtype dt, int64_t groups, int64_t channels, double eps) {
    const char *fn = "cg_nn_groupnorm";
    if (groups < 1 || channels < 1 || channels % groups != 0 || !cgi_is_float(dt) ||
        !(eps >= 0 && isfinite(eps))) {
        cgi_error(NULL, CG_ERR_ARG,
                  "%s: groups %lld, channels %lld, eps %g, dtype %s: need groups >= 1 "
                  "dividing channels >= 1, a finite eps >= 0 and a float dtype",
                  fn, (long long)groups, (long long)channels, eps, cg_dtype_name(dt));
        return NULL;
    }
    cg_module *m = cgi_module_new_copy(&groupnorm_kind, &(groupnorm_data){eps, groups},
                                       sizeof(groupnorm_data), fn);
    const int64_t c[] = {channels};
    bool ok = cgi_module_add(m, "weight", cg_ones(NULL, dt, 1, c), true, fn) &&
              cgi_module_add(m, "bias", cg_zeros(NULL, dt, 1, c), true, fn);
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

/* A dropout module of kind; fn names the constructor in errors. */
static cg_module *dropout_new(const cg_module_kind *kind, double p, cg_rng *rng,
                              const char *fn) {
    if (!(p >= 0 && p < 1) || (p > 0 && !rng)) { /* also NaN */
        cgi_error(NULL, CG_ERR_ARG,
                  "%s: p = %g with %s rng: need p in [0, 1) and an rng "
                  "when p > 0",
                  fn, p, rng ? "an" : "a NULL");
        return NULL;
    }
    cg_module *m = cgi_module_new_copy(kind, &(dropout_data){p, rng}, sizeof(dropout_data), fn);
    return cgi_module_done(m, m != NULL, fn);
}

cg_module *cg_nn_dropout(double p, cg_rng *rng) {
    return dropout_new(&dropout_kind, p, rng, "cg_nn_dropout");
}

/* ---- Dropout2d ---------------------------------------------------------------------- */
/* Training: x [N, C, H, W] (or [C, H, W]) times a mask [N, C, 1, 1] (or
 * [C, 1, 1]) of 1/(1-p) with probability 1-p, else 0, drawn from rng in C
 * order: whole channels are zeroed. Eval or p == 0: a view of x. The
 * gradient is g times the same mask, from cg_mul. */
static cg_tensor *dropout2d_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const dropout_data *d = cg_module_data(m);
    if (!cg_module_is_training(m) || d->p == 0) return cg_dropout(ctx, x, 0, false, NULL);
    int nd = cg_ndim(x);
    bool rank_ok = nd == 3 || nd == 4;
    if (!rank_ok || !cgi_is_float(cg_dtype_of(x))) {
        char xs[128];
        cgi_error(ctx, rank_ok ? CG_ERR_DTYPE : CG_ERR_SHAPE,
                  "cg_dropout2d: input %s of %s: expected f32 or f64 [N, C, H, W] or [C, H, W]",
                  cg_shape_str(x, xs, sizeof xs), cg_dtype_name(cg_dtype_of(x)));
        return NULL;
    }
    int64_t shape[4] = {cg_dim(x, 0), cg_dim(x, 1), 1, 1};
    if (nd == 3) shape[1] = 1; /* [C, 1, 1] */
    cg_tensor *keep = cg_bernoulli(ctx, d->rng, cg_dtype_of(x), nd, shape, 1.0 - d->p);
    return cg_mul(ctx, x, cg_mul_scalar(ctx, keep, 1.0 / (1.0 - d->p)));
}

static const cg_module_kind dropout2d_kind = {"Dropout2d", dropout2d_forward, free,
                                              dropout_describe};

cg_module *cg_nn_dropout2d(double p, cg_rng *rng) {
    return dropout_new(&dropout2d_kind, p, rng, "cg_nn_dropout2d");
}
