/* Pooling and padding: max, average and adaptive average pooling over 1-D
 * and 2-D planes, and F.pad's constant, reflect and replicate modes.
 *
 * Every pooling runs on a rank-4 header [n, c, H, W] of its input (stack
 * copies: the 1-D ops have H = 1, unbatched inputs n = 1), so one kernel
 * serves the five ops. The backward rules are linear maps written as ops of
 * their own, each differentiable by the other: avg pooling <->
 * avg_pool_backward (its transpose), max pooling's scatter to the argmax <->
 * a gather at the indices, pad <-> pad_fold (or, for constant padding, pad
 * with the negated sizes). */
#include "../tensor/pool_kernels.h"
#include "internal.h"

#include <string.h>

cg_pool_opts cg_pool_defaults(int64_t kh, int64_t kw) {
    return (cg_pool_opts){.kernel = {kh, kw},
                          .stride = {0, 0},
                          .padding = {0, 0},
                          .dilation = {1, 1},
                          .ceil_mode = false,
                          .count_include_pad = true};
}

/* What a pooling node saves: the geometry and the shapes on both sides. */
typedef struct pool_saved {
    cgi_pool_geom geo;
    int sd;   /* spatial dims: 1 or 2 */
    int ndim; /* x's and y's rank: sd + 1 (unbatched) or sd + 2 */
    int64_t xshape[4], yshape[4];
    bool codes; /* max pooling's input 1 holds window codes, not indices */
} pool_saved;

/* t of rank sd + 1 or sd + 2 as a header [n, c, H, W]: a missing n or H is
 * a dim of 1 (stride 0). The header is a stack copy for the kernels only. */
static cg_tensor as4(const cg_tensor *t, int sd) {
    cg_tensor h = *t;
    int src[4] = {t->ndim - sd - 2, t->ndim - sd - 1, sd == 2 ? t->ndim - 2 : -1, t->ndim - 1};
    h.ndim = 4;
    for (int k = 0; k < 4; k++) {
        h.shape[k] = src[k] >= 0 ? t->shape[src[k]] : 1;
        h.strides[k] = src[k] >= 0 ? t->strides[src[k]] : 0;
    }
    return h;
}

/* "3x3" (2-D) or "3" (1-D) into buf. */
static const char *pair(char *buf, size_t size, const int64_t *v, int sd) {
    if (sd == 2)
        snprintf(buf, size, "%lldx%lld", (long long)v[0], (long long)v[1]);
    else
        snprintf(buf, size, "%lld", (long long)v[0]);
    return buf;
}

/* ---- checks ----------------------------------------------------------------------------- */
/* x is [N, C, *spatial] or [C, *spatial] with sd spatial dims, every dim but
 * N non-zero (as PyTorch), and float (or i64 when int_ok). */
static bool check_input(cg_ctx *ctx, const char *name, const cg_tensor *x, int sd,
                        bool int_ok) {
    char sx[160];
    bool empty = false;
    for (int d = x->ndim == sd + 2 ? 1 : 0; d < x->ndim; d++) empty = empty || !x->shape[d];
    if (x->ndim != sd + 1 && x->ndim != sd + 2)
        cgi_error(ctx, CG_ERR_SHAPE, "%s: input %s must be %s", name,
                  cg_shape_str(x, sx, sizeof sx),
                  sd == 2 ? "[N, C, H, W] or [C, H, W]" : "[N, C, L] or [C, L]");
    else if (empty)
        cgi_error(ctx, CG_ERR_SHAPE, "%s: input %s has an empty dim (only N may be 0)", name,
                  cg_shape_str(x, sx, sizeof sx));
    else if (!cgi_is_float(x->dtype) && !int_ok)
        cgi_error(ctx, CG_ERR_DTYPE, "%s: input is %s, needs f32 or f64", name,
                  cg_dtype_name(x->dtype));
    else
        return true;
    return false;
}

/* Option values are bounded so that no size computation overflows. */
#define OPT_MAX ((int64_t)1 << 30)

/* kernel in [1, 2^30], stride in [0, 2^30], dilation in [1, 2^30] (max
 * pooling; 1 otherwise), padding in [0, kernel / 2]. */
static bool check_opts(cg_ctx *ctx, const char *name, const cg_pool_opts *o, int sd,
                       bool dilated) {
    char a[48], b[48];
    bool k = true, s = true, p = true, d = true;
    for (int i = 0; i < sd; i++) {
        k = k && o->kernel[i] >= 1 && o->kernel[i] <= OPT_MAX;
        s = s && o->stride[i] >= 0 && o->stride[i] <= OPT_MAX;
        d = d && (!dilated || (o->dilation[i] >= 1 && o->dilation[i] <= OPT_MAX));
        p = p && o->padding[i] >= 0 && o->padding[i] <= o->kernel[i] / 2;
    }
    if (!k)
        cgi_error(ctx, CG_ERR_ARG, "%s: kernel %s must be in [1, 2^30]", name,
                  pair(a, sizeof a, o->kernel, sd));
    else if (!s)
        cgi_error(ctx, CG_ERR_ARG, "%s: stride %s must be in [0, 2^30] (0: the kernel)", name,
                  pair(a, sizeof a, o->stride, sd));
    else if (!d)
        cgi_error(ctx, CG_ERR_ARG, "%s: dilation %s must be in [1, 2^30]", name,
                  pair(a, sizeof a, o->dilation, sd));
    else if (!p)
        cgi_error(ctx, CG_ERR_ARG, "%s: padding %s must be between 0 and half the kernel %s",
                  name, pair(a, sizeof a, o->padding, sd), pair(b, sizeof b, o->kernel, sd));
    else
        return true;
    return false;
}

/* PyTorch's pooling_output_shape: floor (or ceil) of the window count, the
 * last window in ceil mode starting inside the input or its left padding. */
static int64_t out_size(const cgi_pool_dim *d, bool ceil_mode) {
    int64_t s = d->stride, num = d->in + 2 * d->pad - d->dilation * (d->kernel - 1) - 1;
    if (ceil_mode) num += s - 1;
    int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1; /* floor division */
    if (ceil_mode && out > 0 && (out - 1) * s >= d->in + d->pad) out--;
    return out;
}

/* The message for an output size below 1. */
static void too_small(cg_ctx *ctx, const char *name, const cg_tensor *x, const cg_pool_opts *o,
                      int sd, bool dilated) {
    char sx[160], k[48], p[48], dl[48], more[128] = "";
    bool padded = false, wide = false;
    for (int i = 0; i < sd; i++) {
        padded = padded || o->padding[i];
        wide = wide || (dilated && o->dilation[i] != 1);
    }
    if (wide)
        snprintf(more, sizeof more, " (padding %s, dilation %s)",
                 pair(p, sizeof p, o->padding, sd), pair(dl, sizeof dl, o->dilation, sd));
    else if (padded)
        snprintf(more, sizeof more, " (padding %s)", pair(p, sizeof p, o->padding, sd));
    cgi_error(ctx, CG_ERR_SHAPE, "%s: input %s is too small for kernel %s%s", name,
              cg_shape_str(x, sx, sizeof sx), pair(k, sizeof k, o->kernel, sd), more);
}

/* The saved geometry of pooling x: shapes, windows, output sizes. */
static void fill_saved(pool_saved *s, const cg_tensor *x, int sd, cgi_pool_kind kind) {
    memset(s, 0, sizeof *s);
    cg_tensor x4 = as4(x, sd);
    s->geo.kind = kind;
    s->geo.n = x4.shape[0];
    s->geo.c = x4.shape[1];
    s->sd = sd;
    s->ndim = x->ndim;
    memcpy(s->xshape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    for (int k = 0; k < 2; k++) s->geo.dim[k] = (cgi_pool_dim){x4.shape[2 + k], 1, 1, 1, 0, 1};
}

/* The output sizes into geo and yshape. */
static void set_out(pool_saved *s, int64_t oh, int64_t ow) {
    s->geo.dim[0].out = oh;
    s->geo.dim[1].out = ow;
    memcpy(s->yshape, s->xshape, sizeof s->yshape);
    s->yshape[s->ndim - 1] = ow;
    if (s->sd == 2) s->yshape[s->ndim - 2] = oh;
}

/* Checks x and o, and fills s for a windowed pooling (max or avg). */
static bool pool_setup(cg_ctx *ctx, const char *name, const cg_tensor *x, const cg_pool_opts *o,
                       int sd, cgi_pool_kind kind, pool_saved *s) {
    bool dilated = kind == CGI_POOL_MAX;
    if (!o) {
        cgi_error(ctx, CG_ERR_ARG, "%s: opts is NULL", name);
        return false;
    }
    if (!check_input(ctx, name, x, sd, dilated) || !check_opts(ctx, name, o, sd, dilated))
        return false;
    fill_saved(s, x, sd, kind);
    s->geo.count_include_pad = o->count_include_pad;
    int64_t out[2] = {1, 1};
    for (int i = 0; i < sd; i++) {
        cgi_pool_dim *d = &s->geo.dim[2 - sd + i];
        d->kernel = o->kernel[i];
        d->stride = o->stride[i] ? o->stride[i] : o->kernel[i];
        d->pad = o->padding[i];
        d->dilation = dilated ? o->dilation[i] : 1;
        out[2 - sd + i] = out_size(d, o->ceil_mode);
        if (out[2 - sd + i] < 1) {
            too_small(ctx, name, x, o, sd, dilated);
            return false;
        }
    }
    set_out(s, out[0], out[1]);
    return true;
}

/* ---- max pooling ------------------------------------------------------------------------ */
static const cg_op max_pool1d_op, max_pool2d_op, max_pool_backward_op;

/* dx of x's shape = zeros with g added at the indices: recorded over (g, idx).
 * mask (premasking, never recorded): g only where the pooled output > 0. */
static cg_tensor *max_unpool(cg_ctx *ctx, const pool_saved *s, const cg_tensor *g,
                             const cg_tensor *idx, const cg_tensor *mask) {
    cg_tensor *dx = g ? cgi_new(ctx, "cg_backward", g->dtype, s->ndim, s->xshape) : NULL;
    if (!dx) return NULL;
    cg_tensor g4 = as4(g, s->sd), i4 = s->codes ? g4 : as4(idx, s->sd), d4 = as4(dx, s->sd);
    cgi_max_pool_scatter(&s->geo, &g4, s->codes ? NULL : &i4,
                         s->codes ? (const uint8_t *)cgi_ptr(idx) : NULL, mask, &d4);
    if (mask) return dx;
    return cg_record(ctx, &max_pool_backward_op, dx, 2, (const cg_tensor *[]){g, idx}, s,
                     sizeof *s);
}

cg_tensor *cgi_max_unpool2x2(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *codes,
                             const int64_t *xshape, const cg_tensor *mask) {
    pool_saved s;
    memset(&s, 0, sizeof s);
    s.geo = (cgi_pool_geom){.kind = CGI_POOL_MAX, .n = xshape[0], .c = xshape[1]};
    for (int k = 0; k < 2; k++) s.geo.dim[k] = (cgi_pool_dim){xshape[2 + k], 1, 2, 2, 0, 1};
    s.sd = 2, s.ndim = 4, s.codes = true;
    memcpy(s.xshape, xshape, sizeof s.xshape);
    set_out(&s, xshape[2] / 2, xshape[3] / 2);
    return max_unpool(ctx, &s, g, codes, mask);
}

/* Pooling cg_relu's output r = relu(a) (or cg_conv2d_relu's), unchanged
 * since both ran (storage versions): ReLU's rule would keep the scatter
 * where a > 0; at a window's argmax that is y > 0, so in cg_backward
 * (cgi_node_premask) the scatter takes g only where y > 0, reading y beside
 * g (a quarter of the elements for 2x2 windows), and ReLU's rule passes the
 * scatter on unread. */
static bool premask_ok(const cg_node *n) {
    const cg_tensor *r = cg_node_input(n, 0), *y = cg_node_output(n);
    const cg_node *rn = r->node;
    return (cgi_is_relu(rn) || cgi_is_conv2d_relu(rn)) &&
           r->storage->version == rn->versions[rn->ninputs] &&
           y->storage->version == n->versions[n->ninputs] && cgi_node_premask(n, 0);
}

/* y = max over windows of x: dx = g scattered to the argmax of each window
 * (second order in x: zero almost everywhere; indices are constants). */
static cg_status max_pool_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                   cg_tensor **gin) {
    const cg_tensor *mask = premask_ok(n) ? cg_node_output(n) : NULL;
    gin[0] = max_unpool(ctx, cg_node_saved(n), g, cg_node_input(n, 1), mask);
    return cgi_grads_made(n, gin);
}

/* The scatter is linear in g: its gradient is gg read at the indices, a
 * gather over planes [planes, H * W] by indices [planes, outH * outW]. */
static cg_status max_unpool_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                     cg_tensor **gin) {
    const pool_saved *s = cg_node_saved(n);
    int64_t planes = s->geo.n * s->geo.c;
    int64_t ni = s->geo.dim[0].in * s->geo.dim[1].in,
            no = s->geo.dim[0].out * s->geo.dim[1].out;
    cg_tensor *g2 = cg_reshape(ctx, g, CG_SHAPE(planes, ni)), *i2;
    if (s->codes) { /* the indices, made from the codes */
        i2 = cgi_new(ctx, "cg_backward", CG_I64, CG_SHAPE(planes, no));
        if (i2)
            cgi_max_pool_decode(&s->geo, (const uint8_t *)cgi_ptr(cg_node_input(n, 1)),
                                (int64_t *)cgi_ptr(i2));
    } else {
        i2 = cg_reshape(ctx, cg_node_input(n, 1), CG_SHAPE(planes, no));
    }
    gin[0] = cg_reshape(ctx, cg_gather(ctx, g2, 1, i2), s->ndim, s->yshape);
    return cgi_grads_made(n, gin);
}

/* The backward reads the indices (input 1): changing them in place afterwards
 * makes backward fail instead of scattering to the wrong places. */
static const cg_op max_pool1d_op = {"max_pool1d", max_pool_backward, CG_SAVES_INPUT(1)};
static const cg_op max_pool2d_op = {"max_pool2d", max_pool_backward, CG_SAVES_INPUT(1)};
static const cg_op max_pool_backward_op = {"max_pool_backward", max_unpool_backward,
                                           CG_SAVES_INPUT(1)};

/* Both max poolings. The argmax is kept when asked for or when x needs a
 * gradient (ctx NULL: for cg_record to refuse); the node holds it as its
 * (constant) input 1: the indices, or (not asked for, and the common 2x2
 * case: cgi_max_pool_codes_ok) one byte per output in an i64 buffer. */
static cg_tensor *max_pool(cg_ctx *ctx, const char *name, const cg_op *op, const cg_tensor *x,
                           const cg_pool_opts *o, int sd, cg_tensor **indices) {
    if (indices) *indices = NULL;
    CGI_INPUT_CHECK(x, name, 0);
    pool_saved s;
    if (!pool_setup(ctx, name, x, o, sd, CGI_POOL_MAX, &s)) return NULL;
    bool want = indices || (x->requires_grad && (!ctx || cg_is_grad_enabled(ctx)));
    cg_tensor x4 = as4(x, sd);
    s.codes = want && !indices && cgi_max_pool_codes_ok(&s.geo, &x4);
    cg_tensor *y = cgi_new(ctx, name, x->dtype, s.ndim, s.yshape), *idx = NULL;
    if (y && s.codes) /* a byte per output of y, rounded up to i64 */
        idx = cgi_new(ctx, name, CG_I64, CG_SHAPE((cg_numel(y) + 7) / 8));
    else if (y && want)
        idx = cgi_new(ctx, name, CG_I64, s.ndim, s.yshape);
    if (!y || (want && !idx)) {
        cg_tensor_free(y);
        return NULL;
    }
    cg_tensor y4 = as4(y, sd), i4 = idx && !s.codes ? as4(idx, sd) : y4;
    cgi_max_pool(&s.geo, &x4, &y4, idx && !s.codes ? &i4 : NULL,
                 s.codes ? (uint8_t *)cgi_ptr(idx) : NULL);
    if (!idx) return y;
    y = cg_record(ctx, op, y, 2, (const cg_tensor *[]){x, idx}, &s, sizeof s);
    if (y && indices)
        *indices = idx;
    else
        cg_tensor_free(idx); /* caller-owned (ctx NULL) and unused; a no-op in a context */
    return y;
}

cg_tensor *cg_max_pool2d(cg_ctx *ctx, const cg_tensor *x, const cg_pool_opts *opts,
                         cg_tensor **indices) {
    return max_pool(ctx, "cg_max_pool2d", &max_pool2d_op, x, opts, 2, indices);
}
cg_tensor *cg_max_pool1d(cg_ctx *ctx, const cg_tensor *x, const cg_pool_opts *opts,
                         cg_tensor **indices) {
    return max_pool(ctx, "cg_max_pool1d", &max_pool1d_op, x, opts, 1, indices);
}

/* ---- average pooling -------------------------------------------------------------------- */
static const cg_op avg_pool1d_op, avg_pool2d_op, adaptive_avg_pool2d_op, avg_pool_backward_op;

static const cg_op *avg_op(const pool_saved *s) {
    if (s->geo.kind == CGI_POOL_ADAPTIVE) return &adaptive_avg_pool2d_op;
    return s->sd == 2 ? &avg_pool2d_op : &avg_pool1d_op;
}

/* y = the window means of x (avg or adaptive, as s says), recorded. */
static cg_tensor *avg_forward(cg_ctx *ctx, const char *name, const pool_saved *s,
                              const cg_tensor *x) {
    cg_tensor *y = x ? cgi_new(ctx, name, x->dtype, s->ndim, s->yshape) : NULL;
    if (!y) return NULL;
    cg_tensor x4 = as4(x, s->sd), y4 = as4(y, s->sd);
    cgi_avg_pool(&s->geo, &x4, &y4);
    return cg_record(ctx, avg_op(s), y, 1, &x, s, sizeof *s);
}

/* dx = the transpose of the pooling applied to g, recorded. */
static cg_tensor *avg_transpose(cg_ctx *ctx, const pool_saved *s, const cg_tensor *g) {
    cg_tensor *dx = g ? cgi_new(ctx, "cg_backward", g->dtype, s->ndim, s->xshape) : NULL;
    if (!dx) return NULL;
    cg_tensor g4 = as4(g, s->sd), d4 = as4(dx, s->sd);
    cgi_avg_pool_backward(&s->geo, &g4, &d4);
    return cg_record(ctx, &avg_pool_backward_op, dx, 1, &g, s, sizeof *s);
}

/* y = A x with A the (constant) window means: dx = A^T g. */
static cg_status avg_pool_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                   cg_tensor **gin) {
    gin[0] = avg_transpose(ctx, cg_node_saved(n), g);
    return cgi_grads_made(n, gin);
}
/* dx = A^T g: d/dg = A, the pooling again. */
static cg_status avg_transpose_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                        cg_tensor **gin) {
    gin[0] = avg_forward(ctx, "cg_backward", cg_node_saved(n), g);
    return cgi_grads_made(n, gin);
}

static const cg_op avg_pool1d_op = {"avg_pool1d", avg_pool_backward, 0};
static const cg_op avg_pool2d_op = {"avg_pool2d", avg_pool_backward, 0};
static const cg_op adaptive_avg_pool2d_op = {"adaptive_avg_pool2d", avg_pool_backward, 0};
static const cg_op avg_pool_backward_op = {"avg_pool_backward", avg_transpose_backward, 0};

static cg_tensor *avg_pool(cg_ctx *ctx, const char *name, const cg_tensor *x,
                           const cg_pool_opts *o, int sd) {
    CGI_INPUT_CHECK(x, name, 0);
    pool_saved s;
    if (!pool_setup(ctx, name, x, o, sd, CGI_POOL_AVG, &s)) return NULL;
    return avg_forward(ctx, name, &s, x);
}

cg_tensor *cg_avg_pool2d(cg_ctx *ctx, const cg_tensor *x, const cg_pool_opts *opts) {
    return avg_pool(ctx, "cg_avg_pool2d", x, opts, 2);
}
cg_tensor *cg_avg_pool1d(cg_ctx *ctx, const cg_tensor *x, const cg_pool_opts *opts) {
    return avg_pool(ctx, "cg_avg_pool1d", x, opts, 1);
}

cg_tensor *cg_adaptive_avg_pool2d(cg_ctx *ctx, const cg_tensor *x, int64_t out_h,
                                  int64_t out_w) {
    const char *name = "cg_adaptive_avg_pool2d";
    CGI_INPUT_CHECK(x, name, 0);
    if (!check_input(ctx, name, x, 2, false)) return NULL;
    if (out_h < 0 || out_w < 0) {
        cgi_error(ctx, CG_ERR_ARG, "%s: output size %lldx%lld must be >= 0", name,
                  (long long)out_h, (long long)out_w);
        return NULL;
    }
    pool_saved s;
    fill_saved(&s, x, 2, CGI_POOL_ADAPTIVE);
    set_out(&s, out_h, out_w);
    return avg_forward(ctx, name, &s, x);
}

/* ---- padding ---------------------------------------------------------------------------- */
/* What a pad node saves: the arguments and x's shape. */
typedef struct pad_saved {
    cg_pad_mode mode;
    int npad, ndim;
    int64_t pad[2 * CG_MAX_DIMS];
    int64_t xshape[CG_MAX_DIMS];
} pad_saved;

/* Pair k of the padding applies to dim ndim - 1 - k. */
static int64_t pad_lo(const pad_saved *s, int d) { return s->pad[2 * (s->ndim - 1 - d)]; }
static int64_t pad_hi(const pad_saved *s, int d) { return s->pad[2 * (s->ndim - 1 - d) + 1]; }
static bool padded(const pad_saved *s, int d) { return d >= s->ndim - s->npad / 2; }

/* The arguments' count, pointer and mode (shapes are checked per mode). */
static bool check_pad_args(cg_ctx *ctx, const cg_tensor *x, int npad, const int64_t *pad,
                           cg_pad_mode mode, double value) {
    char sx[160];
    const char *names[] = {"constant", "reflect", "replicate"};
    if (npad < 0 || npad % 2)
        cgi_error(ctx, CG_ERR_ARG, "cg_pad: npad %d must be even and >= 0", npad);
    else if (npad && !pad)
        cgi_error(ctx, CG_ERR_ARG, "cg_pad: pad is NULL (npad %d)", npad);
    else if (npad / 2 > x->ndim)
        cgi_error(ctx, CG_ERR_SHAPE, "cg_pad: %d padding pairs for input %s of rank %d",
                  npad / 2, cg_shape_str(x, sx, sizeof sx), x->ndim);
    else if (mode != CG_PAD_CONSTANT && mode != CG_PAD_REFLECT && mode != CG_PAD_REPLICATE)
        cgi_error(ctx, CG_ERR_ARG, "cg_pad: unknown mode %d", (int)mode);
    else if (mode == CG_PAD_CONSTANT &&
             cgi_check_value(ctx, "cg_pad", x->dtype, value) != CG_OK)
        return false;
    else if (mode != CG_PAD_CONSTANT && value != 0)
        cgi_error(ctx, CG_ERR_ARG, "cg_pad: %s padding takes no value (got %g)", names[mode],
                  value);
    else if (mode != CG_PAD_CONSTANT &&
             (npad < 2 || npad > 6 || x->ndim < npad / 2 + 1 || x->ndim > npad / 2 + 2))
        cgi_error(ctx, CG_ERR_SHAPE,
                  "cg_pad: %s padding takes 2, 4 or 6 sizes for an input of rank "
                  "npad / 2 + 1 or + 2, got %d for %s",
                  names[mode], npad, cg_shape_str(x, sx, sizeof sx));
    else
        return true;
    return false;
}

/* Dim d's sizes for the mode: constant crops at most the whole dim; reflect
 * pads less than the dim on each side; reflect and replicate need a
 * non-empty dim and leave a non-empty one. */
static bool check_pad_dim(cg_ctx *ctx, const pad_saved *s, int d, const cg_tensor *x) {
    char sx[160];
    int64_t in = x->shape[d], lo = pad_lo(s, d), hi = pad_hi(s, d);
    const int64_t cap = (int64_t)1 << 31; /* sizes past it overflow the arithmetic below */
    if (lo > cap || lo < -cap || hi > cap || hi < -cap) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "cg_pad: padding (%lld, %lld) of dim %d: each size must "
                  "be within +-2^31",
                  (long long)lo, (long long)hi, d);
        return false;
    }
    int64_t kept = in + (lo < 0 ? lo : 0) + (hi < 0 ? hi : 0);
    const char *why = NULL;
    if (s->mode == CG_PAD_CONSTANT && kept < 0)
        why = "crops more than the dim holds";
    else if (s->mode != CG_PAD_CONSTANT && in == 0)
        why = "pads an empty dim";
    else if (s->mode == CG_PAD_REFLECT && (lo >= in || hi >= in || -lo >= in || -hi >= in))
        why = "must be smaller than the dim in absolute value (reflect)";
    else if (s->mode != CG_PAD_CONSTANT && in + lo + hi < 1)
        why = "leaves the dim empty";
    if (why)
        cgi_error(ctx, CG_ERR_SHAPE, "cg_pad: padding (%lld, %lld) of dim %d of input %s %s",
                  (long long)lo, (long long)hi, d, cg_shape_str(x, sx, sizeof sx), why);
    return !why;
}

static bool pad_setup(cg_ctx *ctx, const cg_tensor *x, int npad, const int64_t *pad,
                      cg_pad_mode mode, double value, pad_saved *s, int64_t *yshape) {
    if (!check_pad_args(ctx, x, npad, pad, mode, value)) return false;
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->npad = npad;
    s->ndim = x->ndim;
    if (npad) memcpy(s->pad, pad, sizeof(int64_t) * (size_t)npad);
    memcpy(s->xshape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    for (int d = 0; d < x->ndim; d++) {
        yshape[d] = x->shape[d];
        if (!padded(s, d)) continue;
        if (!check_pad_dim(ctx, s, d, x)) return false;
        yshape[d] += pad_lo(s, d) + pad_hi(s, d);
    }
    return true;
}

/* y = value everywhere, then the part of x that survives the crops copied
 * to where it lands (stack headers: nothing to free). */
static cg_tensor *pad_constant(cg_ctx *ctx, const pad_saved *s, const cg_tensor *x,
                               const int64_t *yshape, double value) {
    cg_tensor *y = cg_full(ctx, x->dtype, x->ndim, yshape, value);
    if (!y) return NULL;
    cg_tensor dst = *y, src = *x;
    for (int d = 0; d < x->ndim; d++) {
        if (!padded(s, d)) continue;
        int64_t lo = pad_lo(s, d), hi = pad_hi(s, d);
        int64_t len = x->shape[d] - (lo < 0 ? -lo : 0) - (hi < 0 ? -hi : 0);
        dst.offset += (lo > 0 ? lo : 0) * dst.strides[d];
        src.offset += (lo < 0 ? -lo : 0) * src.strides[d];
        dst.shape[d] = src.shape[d] = len;
    }
    if (cgi_numel(src.ndim, src.shape) > 0) cgi_copy_convert(&dst, &src);
    return y;
}

/* The kernels' geometry: the padded dims are the last 3 of a header of rank
 * nlead + 3 (fewer padded dims: dims of 1 with zero padding in front). */
static cgi_pad_geom pad_geom(const pad_saved *s, const int64_t *yshape) {
    cgi_pad_geom g = {.reflect = s->mode == CG_PAD_REFLECT, .nlead = s->ndim - s->npad / 2};
    for (int j = 0; j < 3; j++) {
        int d = s->ndim - 3 + j;
        bool p = d >= g.nlead;
        g.in[j] = p ? s->xshape[d] : 1;
        g.out[j] = p ? yshape[d] : 1;
        g.lo[j] = p ? pad_lo(s, d) : 0;
    }
    return g;
}
/* t's header of rank nlead + 3 to go with pad_geom (a stack copy). */
static cg_tensor as_padded(const cg_tensor *t, int nlead) {
    cg_tensor h = *t;
    h.ndim = nlead + 3;
    for (int j = 0; j < 3; j++) {
        int d = t->ndim - 3 + j;
        h.shape[nlead + j] = d >= nlead ? t->shape[d] : 1;
        h.strides[nlead + j] = d >= nlead ? t->strides[d] : 0;
    }
    return h;
}

/* y = x padded by reflection or replication. */
static cg_tensor *pad_edges(cg_ctx *ctx, const pad_saved *s, const cg_tensor *x,
                            const int64_t *yshape) {
    cg_tensor *y = cgi_new(ctx, "cg_pad", x->dtype, x->ndim, yshape);
    if (!y) return NULL;
    cgi_pad_geom geo = pad_geom(s, yshape);
    cg_tensor x6 = as_padded(x, geo.nlead), y6 = as_padded(y, geo.nlead);
    cgi_pad_map(&geo, &x6, &y6);
    return y;
}

static const cg_op pad_op, pad_fold_op;

/* dx of x's shape = the sum of g over the positions that read each element
 * (reflect, replicate), recorded. */
static cg_tensor *pad_fold(cg_ctx *ctx, const pad_saved *s, const cg_tensor *g) {
    cg_tensor *dx = g ? cgi_new(ctx, "cg_backward", g->dtype, s->ndim, s->xshape) : NULL;
    if (!dx) return NULL;
    cgi_pad_geom geo = pad_geom(s, g->shape);
    cg_tensor g6 = as_padded(g, geo.nlead), d6 = as_padded(dx, geo.nlead);
    cgi_pad_fold(&geo, &g6, &d6);
    return cg_record(ctx, &pad_fold_op, dx, 1, &g, s, sizeof *s);
}

/* y = P x with P a selection (constant: x's kept part placed among
 * constants): dx = P^T g, for constant padding g cropped to x (pad with
 * the negated sizes, which re-pads with zeros what a negative size cropped). */
static cg_status pad_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    const pad_saved *s = cg_node_saved(n);
    if (s->mode == CG_PAD_CONSTANT) {
        int64_t neg[2 * CG_MAX_DIMS];
        for (int i = 0; i < s->npad; i++) neg[i] = -s->pad[i];
        gin[0] = cg_pad(ctx, g, s->npad, neg, CG_PAD_CONSTANT, 0);
    } else {
        gin[0] = pad_fold(ctx, s, g);
    }
    return cgi_grads_made(n, gin);
}
/* dx = P^T g: d/dg = P, the padding again. */
static cg_status pad_fold_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                   cg_tensor **gin) {
    const pad_saved *s = cg_node_saved(n);
    gin[0] = cg_pad(ctx, g, s->npad, s->pad, s->mode, 0);
    return cgi_grads_made(n, gin);
}

static const cg_op pad_op = {"pad", pad_backward, 0};
static const cg_op pad_fold_op = {"pad_fold", pad_fold_backward, 0};

cg_tensor *cg_pad(cg_ctx *ctx, const cg_tensor *x, int npad, const int64_t *pad,
                  cg_pad_mode mode, double value) {
    CGI_INPUT_CHECK(x, "cg_pad", 0);
    pad_saved s;
    int64_t yshape[CG_MAX_DIMS];
    if (!pad_setup(ctx, x, npad, pad, mode, value, &s, yshape)) return NULL;
    cg_tensor *y = mode == CG_PAD_CONSTANT ? pad_constant(ctx, &s, x, yshape, value)
                                           : pad_edges(ctx, &s, x, yshape);
    return y ? cg_record(ctx, &pad_op, y, 1, &x, &s, sizeof s) : NULL;
}
