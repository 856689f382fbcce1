/* Linear, activations, Identity, the containers (Sequential, ModuleList,
 * ModuleDict) and the MLP builder: each an ordinary module kind on the
 * public interface of nn/module.c, as a user's layer would be. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- Linear ------------------------------------------------------------------ */
/* x [..., in] -> [..., out] = x W^T + b, W [out, in]. With and without a
 * bias are two kinds, so the forward needs no data to tell them apart. */
static cg_tensor *linear_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    return cg_linear(ctx, x, cg_module_get(m, "weight"), cg_module_get(m, "bias"));
}
static cg_tensor *linear_nobias_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    return cg_linear(ctx, x, cg_module_get(m, "weight"), NULL);
}

static void linear_describe(const cg_module *m, char *buf, size_t size) {
    const cg_tensor *w = cg_module_get(m, "weight");
    snprintf(buf, size, "in_features=%lld, out_features=%lld, bias=%s", (long long)cg_dim(w, 1),
             (long long)cg_dim(w, 0),
             cg_module_kind_of(m)->forward == linear_forward ? "True" : "False");
}

static const cg_module_kind linear_kind = {"Linear", linear_forward, NULL, linear_describe};
static const cg_module_kind linear_nobias_kind = {"Linear", linear_nobias_forward, NULL,
                                                  linear_describe};

/* PyTorch's reset_parameters: kaiming_uniform(a = sqrt(5)) for the weight,
 * which is U(-1/sqrt(in), 1/sqrt(in)), and the same bound for the bias.
 * fn names the public function the user called. */
static cg_module *linear_new(cg_rng *rng, cg_dtype dt, int64_t in, int64_t out, bool bias,
                             const char *fn) {
    if (!rng || in < 1 || out < 1 || !cgi_is_float(dt)) {
        cgi_error(NULL, CG_ERR_ARG,
                  "%s: in %lld, out %lld, dtype %s: need sizes >= 1, a "
                  "float dtype and an rng",
                  fn, (long long)in, (long long)out, cg_dtype_name(dt));
        return NULL;
    }
    cg_module *m = cgi_module_new(bias ? &linear_kind : &linear_nobias_kind, NULL, fn);
    cg_tensor *w = cgi_module_add(m, "weight", cg_zeros(NULL, dt, CG_SHAPE(out, in)), true, fn);
    cg_tensor *b = w && bias
                       ? cgi_module_add(m, "bias", cg_zeros(NULL, dt, CG_SHAPE(out)), true, fn)
                       : NULL;
    double bound = 1.0 / sqrt((double)in);
    bool ok =
        w && (!bias || b) &&
        cg_init_kaiming_uniform_(w, rng, sqrt(5.0), CG_FAN_IN, CG_ACT_LEAKY_RELU) == CG_OK &&
        (!bias || cg_init_uniform_(b, rng, -bound, bound) == CG_OK);
    return cgi_module_done(m, ok, fn);
}

cg_module *cg_nn_linear(cg_rng *rng, cg_dtype dt, int64_t in, int64_t out, bool bias) {
    return linear_new(rng, dt, in, out, bias, "cg_nn_linear");
}

/* ---- activations and Identity as layers ----------------------------------------- */
static cg_tensor *identity_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)m;
    return cg_view(ctx, x, cg_ndim(x), cg_shape(x));
}
static cg_tensor *relu_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)m;
    return cg_relu(ctx, x);
}
static cg_tensor *tanh_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)m;
    return cg_tanh(ctx, x);
}
static cg_tensor *sigmoid_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)m;
    return cg_sigmoid(ctx, x);
}
static cg_tensor *gelu_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)m;
    return cg_gelu(ctx, x);
}
static cg_tensor *silu_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)m;
    return cg_silu(ctx, x);
}
static cg_tensor *leaky_relu_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)m;
    return cg_leaky_relu(ctx, x, 0.01);
}
static cg_tensor *elu_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)m;
    return cg_elu(ctx, x, 1.0);
}

static void leaky_describe(const cg_module *m, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "negative_slope=0.01");
}
static void elu_describe(const cg_module *m, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "alpha=1.0");
}

/* Indexed by cg_act. */
static const cg_module_kind act_kinds[] = {
    {"Identity", identity_forward, NULL, NULL},
    {"ReLU", relu_forward, NULL, NULL},
    {"Tanh", tanh_forward, NULL, NULL},
    {"Sigmoid", sigmoid_forward, NULL, NULL},
    {"GELU", gelu_forward, NULL, NULL},
    {"SiLU", silu_forward, NULL, NULL},
    {"LeakyReLU", leaky_relu_forward, NULL, leaky_describe},
    {"ELU", elu_forward, NULL, elu_describe},
};

static cg_module *activation_new(cg_act act, const char *fn) {
    if ((int)act < 0 || (int)act >= (int)(sizeof act_kinds / sizeof act_kinds[0])) {
        cgi_error(NULL, CG_ERR_ARG, "%s: unknown activation %d", fn, (int)act);
        return NULL;
    }
    cg_module *m = cgi_module_new(&act_kinds[act], NULL, fn);
    return cgi_module_done(m, m != NULL, fn);
}

cg_module *cg_nn_activation(cg_act act) { return activation_new(act, "cg_nn_activation"); }
cg_module *cg_nn_identity(void) { return activation_new(CG_ACT_NONE, "cg_nn_identity"); }

/* ---- containers ----------------------------------------------------------------- */
/* Sequential: each child's output feeds the next. A Conv2d followed by a
 * ReLU runs as one op, cg_conv2d_relu (the ReLU in the convolution's
 * epilogue, one pass over the largest activations less in each direction),
 * and with a MaxPool2d(2) after them, as one op with the pool in the
 * epilogue too (the convolution's output never written): the intermediates
 * are the container's own, so nothing else can see them. */
static cg_tensor *sequential_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const cg_tensor *h = x;
    int n = cg_module_nchildren(m);
    for (int i = 0; i < n && h; i++) {
        cg_module *c = cg_module_child(m, i, NULL);
        bool relu = i + 1 < n && cgi_is_conv2d_module(c) &&
                    cg_module_child(m, i + 1, NULL)->kind == &act_kinds[CG_ACT_RELU];
        bool pool =
            relu && i + 2 < n && cgi_is_maxpool2x2_module(cg_module_child(m, i + 2, NULL));
        if (relu) {
            h = cgi_conv2d_relu_forward(ctx, c, h, pool);
            i += pool ? 2 : 1;
        } else {
            h = cg_module_forward(ctx, c, h);
        }
    }
    return (cg_tensor *)h;
}

static cg_tensor *no_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)x;
    cgi_error(ctx, CG_ERR_STATE,
              "%s has no forward: the module holding it calls its "
              "children",
              cg_module_name(m));
    return NULL;
}

static const cg_module_kind sequential_kind = {"Sequential", sequential_forward, NULL, NULL};
static const cg_module_kind list_kind = {"ModuleList", no_forward, NULL, NULL};
static const cg_module_kind dict_kind = {"ModuleDict", no_forward, NULL, NULL};

/* Releases children[from..n) that no container holds, each once (one may
 * be listed twice), for a constructor that failed: it took them all. */
static void release_rest(cg_module *const *children, int from, int n) {
    for (int i = from; i < n; i++) {
        bool seen = children[i] == NULL;
        for (int k = 0; k < i && !seen; k++) seen = children[k] == children[i];
        if (!seen && cg_module_free(children[i]) != CG_OK) cg_clear_error(); /* held */
    }
}

/* A container of kind holding children (under names, or indices when NULL);
 * it takes every child, also on failure. */
static cg_module *container_new(const cg_module_kind *kind, int n, const char *const *names,
                                cg_module *const *children, const char *fn) {
    if (n < 0 || (n > 0 && !children)) {
        cgi_error(NULL, CG_ERR_ARG, "%s: %d children%s", fn, n, n > 0 ? " from NULL" : "");
        return NULL;
    }
    cg_module *m = cgi_module_new(kind, NULL, fn);
    int i = 0;
    bool ok = m != NULL;
    for (; ok && i < n; i++) {
        if (!children[i]) { /* keep the error of a constructor that failed */
            if (cg_last_status() == CG_OK)
                cgi_error(NULL, CG_ERR_ARG, "%s: child %d is NULL", fn, i);
            ok = false;
        } else {
            ok = cgi_module_adopt(m, names ? names[i] : NULL, children[i], fn) == CG_OK;
        }
    }
    if (!ok) release_rest(children, i, n);
    return cgi_module_done(m, ok, fn);
}

cg_module *cg_nn_sequential(int n, cg_module *const *children) {
    return container_new(&sequential_kind, n, NULL, children, "cg_nn_sequential");
}

cg_module *cg_nn_module_list(int n, cg_module *const *children) {
    return container_new(&list_kind, n, NULL, children, "cg_nn_module_list");
}

cg_module *cg_nn_module_dict(int n, const char *const *names, cg_module *const *children) {
    for (int i = 0; i < n; i++)
        if (!names || !names[i]) { /* a dict's members are named: no index names here */
            cgi_error(NULL, CG_ERR_ARG, "cg_nn_module_dict: name %d is NULL", names ? i : 0);
            if (children) release_rest(children, 0, n);
            return NULL;
        }
    return container_new(&dict_kind, n, names, children, "cg_nn_module_dict");
}

/* ---- MLP -------------------------------------------------------------------------- */
cg_module *cg_nn_mlp(cg_rng *rng, cg_dtype dt, int nsizes, const int64_t *sizes, cg_act act) {
    const char *fn = "cg_nn_mlp";
    if (nsizes < 2 || !sizes) {
        cgi_error(NULL, CG_ERR_ARG, "%s: needs at least 2 layer sizes, got %d", fn, nsizes);
        return NULL;
    }
    cg_module *m = cgi_module_new(&sequential_kind, NULL, fn);
    bool ok = m != NULL;
    for (int i = 0; ok && i + 1 < nsizes; i++) {
        ok = cgi_module_adopt(m, NULL, linear_new(rng, dt, sizes[i], sizes[i + 1], true, fn),
                              fn) == CG_OK;
        if (ok && i + 2 < nsizes && act != CG_ACT_NONE)
            ok = cgi_module_adopt(m, NULL, activation_new(act, fn), fn) == CG_OK;
    }
    return cgi_module_done(m, ok, fn);
}
