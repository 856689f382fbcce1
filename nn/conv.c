/* The convolutional layers: Conv1d, Conv2d, ConvTranspose2d, MaxPool2d,
 * AvgPool2d, AdaptiveAvgPool2d and Flatten, each a module kind on the public
 * interface over the ops of ops/conv.c and ops/pool.c, with PyTorch's
 * state_dict names, default initialisation and printed form. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- convolutions ------------------------------------------------------------------ */
typedef struct conv_data {
    cg_conv_opts opts;
    int dims; /* spatial dims: 1 or 2 */
    bool transposed, bias;
} conv_data;

static cg_tensor *conv_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const conv_data *d = cg_module_data(m);
    const cg_tensor *w = cg_module_get(m, "weight");
    const cg_tensor *b = d->bias ? cg_module_get(m, "bias") : NULL;
    if (d->transposed) return cg_conv_transpose2d(ctx, x, w, b, &d->opts);
    return d->dims == 1 ? cg_conv1d(ctx, x, w, b, &d->opts) : cg_conv2d(ctx, x, w, b, &d->opts);
}

/* "(5, 5)" for 2-D, "(5,)" for 1-D, as Python prints tuples. */
static int tuple(char *buf, size_t size, const int64_t *v, int dims) {
    if (dims == 1) return snprintf(buf, size, "(%lld,)", (long long)v[0]);
    return snprintf(buf, size, "(%lld, %lld)", (long long)v[0], (long long)v[1]);
}

/* PyTorch's _ConvNd.extra_repr: non-default options only. */
static void conv_describe(const cg_module *m, char *buf, size_t size) {
    const conv_data *d = cg_module_data(m);
    const cg_conv_opts *o = &d->opts;
    const cg_tensor *w = cg_module_get(m, "weight");
    int64_t in = d->transposed ? cg_dim(w, 0) : cg_dim(w, 1) * o->groups;
    int64_t out = d->transposed ? cg_dim(w, 1) * o->groups : cg_dim(w, 0);
    size_t n =
        (size_t)snprintf(buf, size, "%lld, %lld, kernel_size=", (long long)in, (long long)out);
    n += (size_t)tuple(buf + (n < size ? n : size), n < size ? size - n : 0, cg_shape(w) + 2,
                       d->dims);
    char t[64];
    tuple(t, sizeof t, o->stride, d->dims);
    n += (size_t)snprintf(buf + (n < size ? n : size), n < size ? size - n : 0, ", stride=%s",
                          t);
    bool pad = o->padding[0] || (d->dims == 2 && o->padding[1]);
    if (o->same || pad) {
        tuple(t, sizeof t, o->padding, d->dims);
        n += (size_t)snprintf(buf + (n < size ? n : size), n < size ? size - n : 0,
                              ", padding=%s", o->same ? "same" : t);
    }
    if (o->dilation[0] != 1 || (d->dims == 2 && o->dilation[1] != 1)) {
        tuple(t, sizeof t, o->dilation, d->dims);
        n += (size_t)snprintf(buf + (n < size ? n : size), n < size ? size - n : 0,
                              ", dilation=%s", t);
    }
    if (d->transposed && (o->output_padding[0] || o->output_padding[1])) {
        tuple(t, sizeof t, o->output_padding, d->dims);
        n += (size_t)snprintf(buf + (n < size ? n : size), n < size ? size - n : 0,
                              ", output_padding=%s", t);
    }
    if (o->groups != 1)
        n += (size_t)snprintf(buf + (n < size ? n : size), n < size ? size - n : 0,
                              ", groups=%lld", (long long)o->groups);
    if (!d->bias)
        snprintf(buf + (n < size ? n : size), n < size ? size - n : 0, ", bias=False");
}

static const cg_module_kind conv1d_kind = {"Conv1d", conv_forward, free, conv_describe};
static const cg_module_kind conv2d_kind = {"Conv2d", conv_forward, free, conv_describe};

bool cgi_is_conv2d_module(const cg_module *m) { return m->kind == &conv2d_kind; }

cg_tensor *cgi_conv2d_relu_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x, bool pool) {
    const conv_data *d = cg_module_data(m);
    const cg_tensor *w = cg_module_get(m, "weight");
    const cg_tensor *b = d->bias ? cg_module_get(m, "bias") : NULL;
    return cgi_conv2d_relu_layer(ctx, x, w, b, &d->opts, pool);
}

static const cg_module_kind convt2d_kind = {"ConvTranspose2d", conv_forward, free,
                                            conv_describe};

/* The options as a layer keeps them: NULL gives the defaults, a zero stride
 * or dilation of an unused second dim becomes 1. */
static cg_conv_opts conv_opts(const cg_conv_opts *opts, int dims) {
    cg_conv_opts o = opts ? *opts : cg_conv_defaults();
    if (dims == 1) {
        o.stride[1] = o.dilation[1] = 1;
        o.padding[1] = o.output_padding[1] = 0;
    }
    return o;
}

/* A conv layer of kind: weight of the given shape and bias [nbias], both
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = dim 1 of the weight times
 * the kernel (PyTorch's kaiming_uniform(a = sqrt(5)) and its bias rule). */
static cg_module *conv_new(const cg_module_kind *kind, cg_rng *rng, cg_dtype dt, int wdim,
                           const int64_t *wshape, int64_t nbias, conv_data d, bool bias,
                           const char *fn) {
    d.bias = bias;
    cg_module *m = cgi_module_new_copy(kind, &d, sizeof d, fn);
    cg_tensor *w = cgi_module_add(m, "weight", cg_zeros(NULL, dt, wdim, wshape), true, fn);
    cg_tensor *b =
        w && bias ? cgi_module_add(m, "bias", cg_zeros(NULL, dt, 1, &nbias), true, fn) : NULL;
    double fan_in = (double)wshape[1];
    for (int i = 2; i < wdim; i++) fan_in *= (double)wshape[i];
    double bound = 1.0 / sqrt(fan_in);
    bool ok =
        w && (!bias || b) &&
        cg_init_kaiming_uniform_(w, rng, sqrt(5.0), CG_FAN_IN, CG_ACT_LEAKY_RELU) == CG_OK &&
        (!bias || cg_init_uniform_(b, rng, -bound, bound) == CG_OK);
    return cgi_module_done(m, ok, fn);
}

/* Sizes >= 1, groups dividing both channel counts, a float dtype, an rng. */
static bool conv_args_ok(const char *fn, cg_rng *rng, cg_dtype dt, int64_t in, int64_t out,
                         const int64_t *k, int dims, const cg_conv_opts *o) {
    bool ok = rng && cgi_is_float(dt) && in >= 1 && out >= 1 && o->groups >= 1 &&
              in % o->groups == 0 && out % o->groups == 0;
    for (int i = 0; i < dims; i++) ok = ok && k[i] >= 1;
    if (!ok)
        cgi_error(NULL, CG_ERR_ARG,
                  "%s: in %lld, out %lld, kernel %lld x %lld, groups %lld, "
                  "dtype %s: need sizes >= 1, groups dividing in and out, a float dtype and an "
                  "rng",
                  fn, (long long)in, (long long)out, (long long)k[0],
                  (long long)(dims == 2 ? k[1] : 1), (long long)o->groups, cg_dtype_name(dt));
    return ok;
}

cg_module *cg_nn_conv1d(cg_rng *rng, cg_dtype dt, int64_t in, int64_t out, int64_t k,
                        const cg_conv_opts *opts, bool bias) {
    const char *fn = "cg_nn_conv1d";
    cg_conv_opts o = conv_opts(opts, 1);
    if (!conv_args_ok(fn, rng, dt, in, out, &k, 1, &o) || !cgi_conv_opts_ok(fn, 1, false, &o))
        return NULL;
    return conv_new(&conv1d_kind, rng, dt, 3, (const int64_t[]){out, in / o.groups, k}, out,
                    (conv_data){o, 1, false, bias}, bias, fn);
}

cg_module *cg_nn_conv2d(cg_rng *rng, cg_dtype dt, int64_t in, int64_t out, int64_t kh,
                        int64_t kw, const cg_conv_opts *opts, bool bias) {
    const char *fn = "cg_nn_conv2d";
    cg_conv_opts o = conv_opts(opts, 2);
    if (!conv_args_ok(fn, rng, dt, in, out, (const int64_t[]){kh, kw}, 2, &o) ||
        !cgi_conv_opts_ok(fn, 2, false, &o))
        return NULL;
    return conv_new(&conv2d_kind, rng, dt, 4, (const int64_t[]){out, in / o.groups, kh, kw},
                    out, (conv_data){o, 2, false, bias}, bias, fn);
}

cg_module *cg_nn_conv_transpose2d(cg_rng *rng, cg_dtype dt, int64_t in, int64_t out, int64_t kh,
                                  int64_t kw, const cg_conv_opts *opts, bool bias) {
    const char *fn = "cg_nn_conv_transpose2d";
    cg_conv_opts o = conv_opts(opts, 2);
    if (!conv_args_ok(fn, rng, dt, in, out, (const int64_t[]){kh, kw}, 2, &o) ||
        !cgi_conv_opts_ok(fn, 2, true, &o))
        return NULL;
    return conv_new(&convt2d_kind, rng, dt, 4, (const int64_t[]){in, out / o.groups, kh, kw},
                    out, (conv_data){o, 2, true, bias}, bias, fn);
}

/* ---- pooling --------------------------------------------------------------------------- */
typedef struct pool_data {
    cg_pool_opts opts;
    int64_t out[2]; /* AdaptiveAvgPool2d's output size */
} pool_data;

static cg_tensor *maxpool_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    return cg_max_pool2d(ctx, x, &((const pool_data *)cg_module_data(m))->opts, NULL);
}
static cg_tensor *avgpool_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    return cg_avg_pool2d(ctx, x, &((const pool_data *)cg_module_data(m))->opts);
}
static cg_tensor *adaptive_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const pool_data *d = cg_module_data(m);
    return cg_adaptive_avg_pool2d(ctx, x, d->out[0], d->out[1]);
}

/* PyTorch prints a square pool's sizes as one number. */
static int size2(char *buf, size_t size, const int64_t *v) {
    if (v[0] == v[1]) return snprintf(buf, size, "%lld", (long long)v[0]);
    return snprintf(buf, size, "(%lld, %lld)", (long long)v[0], (long long)v[1]);
}

static void pool_describe(const cg_module *m, char *buf, size_t size) {
    const pool_data *d = cg_module_data(m);
    const cg_pool_opts *o = &d->opts;
    char k[48], s[48], p[48], dl[48];
    size2(k, sizeof k, o->kernel);
    size2(s, sizeof s, o->stride);
    size2(p, sizeof p, o->padding);
    size2(dl, sizeof dl, o->dilation);
    if (cg_module_kind_of(m)->forward == maxpool_forward)
        snprintf(buf, size, "kernel_size=%s, stride=%s, padding=%s, dilation=%s, ceil_mode=%s",
                 k, s, p, dl, o->ceil_mode ? "True" : "False");
    else
        snprintf(buf, size, "kernel_size=%s, stride=%s, padding=%s", k, s, p);
}

static void adaptive_describe(const cg_module *m, char *buf, size_t size) {
    char o[48];
    size2(o, sizeof o, ((const pool_data *)cg_module_data(m))->out);
    snprintf(buf, size, "output_size=%s", o);
}

static const cg_module_kind maxpool_kind = {"MaxPool2d", maxpool_forward, free, pool_describe};
static const cg_module_kind avgpool_kind = {"AvgPool2d", avgpool_forward, free, pool_describe};
static const cg_module_kind adaptive_kind = {"AdaptiveAvgPool2d", adaptive_forward, free,
                                             adaptive_describe};

/* A MaxPool2d of 2x2 windows, stride 2, no padding, dilation or ceil mode. */
bool cgi_is_maxpool2x2_module(const cg_module *m) {
    if (m->kind != &maxpool_kind) return false;
    const cg_pool_opts *o = &((const pool_data *)cg_module_data(m))->opts;
    for (int d = 0; d < 2; d++)
        if (o->kernel[d] != 2 || (o->stride[d] != 2 && o->stride[d] != 0) || o->padding[d] ||
            o->dilation[d] != 1)
            return false;
    return !o->ceil_mode;
}

static cg_module *pool_new(const cg_module_kind *kind, pool_data d, const char *fn) {
    cg_module *m = cgi_module_new_copy(kind, &d, sizeof d, fn);
    return cgi_module_done(m, m != NULL, fn);
}

/* opts with the stride filled in (0 means the kernel) and checked. */
static bool pool_opts(const char *fn, const cg_pool_opts *opts, cg_pool_opts *o) {
    if (!opts)
        return cgi_error(NULL, CG_ERR_ARG, "%s: options are NULL (cg_pool_defaults)", fn),
               false;
    *o = *opts;
    for (int i = 0; i < 2; i++) {
        if (o->stride[i] == 0) o->stride[i] = o->kernel[i];
        if (o->dilation[i] == 0) o->dilation[i] = 1;
        if (o->kernel[i] < 1 || o->stride[i] < 1 || o->padding[i] < 0 || o->dilation[i] < 1 ||
            2 * o->padding[i] > o->kernel[i])
            return cgi_error(NULL, CG_ERR_ARG,
                             "%s: kernel %lld, stride %lld, padding %lld, "
                             "dilation %lld: need sizes >= 1 and padding at most half the "
                             "kernel",
                             fn, (long long)o->kernel[i], (long long)o->stride[i],
                             (long long)o->padding[i], (long long)o->dilation[i]),
                   false;
    }
    return true;
}

cg_module *cg_nn_maxpool2d(const cg_pool_opts *opts) {
    pool_data d = {0};
    if (!pool_opts("cg_nn_maxpool2d", opts, &d.opts)) return NULL;
    return pool_new(&maxpool_kind, d, "cg_nn_maxpool2d");
}

cg_module *cg_nn_avgpool2d(const cg_pool_opts *opts) {
    pool_data d = {0};
    if (!pool_opts("cg_nn_avgpool2d", opts, &d.opts)) return NULL;
    return pool_new(&avgpool_kind, d, "cg_nn_avgpool2d");
}

cg_module *cg_nn_adaptive_avgpool2d(int64_t out_h, int64_t out_w) {
    if (out_h < 1 || out_w < 1) {
        cgi_error(NULL, CG_ERR_ARG,
                  "cg_nn_adaptive_avgpool2d: output size %lld x %lld: need "
                  "sizes >= 1",
                  (long long)out_h, (long long)out_w);
        return NULL;
    }
    return pool_new(&adaptive_kind, (pool_data){.out = {out_h, out_w}},
                    "cg_nn_adaptive_avgpool2d");
}

/* ---- Flatten ------------------------------------------------------------------------------
 */
typedef struct flatten_data {
    int start, end;
} flatten_data;

static cg_tensor *flatten_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const flatten_data *d = cg_module_data(m);
    return cg_flatten(ctx, x, d->start, d->end);
}

static void flatten_describe(const cg_module *m, char *buf, size_t size) {
    const flatten_data *d = cg_module_data(m);
    snprintf(buf, size, "start_dim=%d, end_dim=%d", d->start, d->end);
}

static const cg_module_kind flatten_kind = {"Flatten", flatten_forward, free, flatten_describe};

cg_module *cg_nn_flatten(int start_dim, int end_dim) {
    const char *fn = "cg_nn_flatten";
    flatten_data d = {start_dim, end_dim};
    cg_module *m = cgi_module_new_copy(&flatten_kind, &d, sizeof d, fn);
    return cgi_module_done(m, m != NULL, fn);
}
