/* Shape ops: views (no copy) and copies, each differentiable. Backward rules
 * move the gradient back through the inverse reshaping. */
#include "internal.h"

#include <string.h>

static const int64_t *shape_of(const cg_node *n) { return cg_node_input(n, 0)->shape; }
static int ndim_of(const cg_node *n) { return cg_node_input(n, 0)->ndim; }

/* ---- reshape family: the gradient is reshaped back -------------------------- */
/* view, reshape, flatten, squeeze, unsqueeze: y has x's elements in C order. */
static cg_status reshape_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                  cg_tensor **gin) {
    gin[0] = cg_reshape(ctx, g, ndim_of(n), shape_of(n));
    return cgi_grads_made(n, gin);
}
/* One descriptor per public function, so that cg_record's messages (a graph
 * without a context, inputs of another context) name the function called. */
static const cg_op view_op = {"view", reshape_backward, 0};
static const cg_op reshape_op = {"reshape", reshape_backward, 0};
static const cg_op flatten_op = {"flatten", reshape_backward, 0};
static const cg_op squeeze_op = {"squeeze", reshape_backward, 0};
static const cg_op unsqueeze_op = {"unsqueeze", reshape_backward, 0};

cg_tensor *cg_view(cg_ctx *ctx, const cg_tensor *t, int ndim, const int64_t *shape) {
    return CGI_RECORD(ctx, &view_op, cgi_view(ctx, t, ndim, shape), t);
}
cg_tensor *cg_reshape(cg_ctx *ctx, const cg_tensor *t, int ndim, const int64_t *shape) {
    return CGI_RECORD(ctx, &reshape_op, cgi_reshape(ctx, t, ndim, shape), t);
}
cg_tensor *cg_flatten(cg_ctx *ctx, const cg_tensor *t, int start, int end) {
    return CGI_RECORD(ctx, &flatten_op, cgi_flatten(ctx, t, start, end), t);
}
cg_tensor *cg_squeeze(cg_ctx *ctx, const cg_tensor *t, int dim) {
    return CGI_RECORD(ctx, &squeeze_op, cgi_squeeze(ctx, t, dim), t);
}
cg_tensor *cg_unsqueeze(cg_ctx *ctx, const cg_tensor *t, int dim) {
    return CGI_RECORD(ctx, &unsqueeze_op, cgi_unsqueeze(ctx, t, dim), t);
}

/* ---- permute / transpose: the inverse permutation -------------------------- */
static cg_status permute_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                  cg_tensor **gin) {
    const int *dims = cg_node_saved(n);
    int inv[CG_MAX_DIMS];
    for (int i = 0; i < g->ndim; i++) inv[dims[i]] = i;
    gin[0] = cg_permute(ctx, g, inv);
    return cgi_grads_made(n, gin);
}
static const cg_op permute_op = {"permute", permute_backward, 0};

cg_tensor *cg_permute(cg_ctx *ctx, const cg_tensor *t, const int *dims) {
    cg_tensor *y = cgi_permute(ctx, t, dims);
    int norm[CG_MAX_DIMS];
    for (int i = 0; y && i < t->ndim; i++) norm[i] = dims[i] < 0 ? dims[i] + t->ndim : dims[i];
    return y ? cg_record(ctx, &permute_op, y, 1, &t, norm, sizeof(int) * CG_MAX_DIMS) : NULL;
}

/* transpose is its own inverse. */
static cg_status transpose_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                    cg_tensor **gin) {
    const int *d = cg_node_saved(n);
    gin[0] = cg_transpose(ctx, g, d[0], d[1]);
    return cgi_grads_made(n, gin);
}
static const cg_op transpose_op = {"transpose", transpose_backward, 0};

cg_tensor *cg_transpose(cg_ctx *ctx, const cg_tensor *t, int d0, int d1) {
    cg_tensor *y = cgi_transpose(ctx, t, d0, d1); /* validates the axes */
    int d[2] = {d0, d1};
    return y ? cg_record(ctx, &transpose_op, y, 1, &t, d, sizeof d) : NULL;
}

/* ---- expand: the gradient is summed over the broadcast dims ----------------- */
static cg_status expand_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                 cg_tensor **gin) {
    gin[0] = cgi_grad_like(ctx, g, cg_node_input(n, 0));
    return cgi_grads_made(n, gin);
}
static const cg_op expand_op = {"expand", expand_backward, 0};

cg_tensor *cg_expand(cg_ctx *ctx, const cg_tensor *t, int ndim, const int64_t *shape) {
    return CGI_RECORD(ctx, &expand_op, cgi_expand(ctx, t, ndim, shape), t);
}

/* ---- slices: the gradient is placed into zeros of the input's shape ---------- */
typedef struct slice_args {
    int dim;
    int64_t start, len, step;
} slice_args;

static cg_tensor *slice_scatter(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *like,
                                const slice_args *a);

/* g added into its slice of sink (the input's gradient so far: see
 * cg_node_grad_sink), so that cg_chunk's pieces fill one buffer. */
static cg_tensor *slice_add(cg_ctx *ctx, cg_tensor *sink, const cg_tensor *g,
                            const slice_args *a) {
    if (a->len == 0) return sink;
    cg_tensor *dst =
        cgi_slice(ctx, sink, a->dim, a->start, a->start + (a->len - 1) * a->step + 1, a->step);
    if (!dst) return NULL;
    cgi_map_binary(cgi_binary_add.fn[g->dtype], dst, g, dst);
    return sink;
}

static cg_status slice_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                cg_tensor **gin) {
    cg_tensor *sink = cg_node_grad_sink(n, 0);
    gin[0] = sink ? slice_add(ctx, sink, g, cg_node_saved(n))
                  : slice_scatter(ctx, g, cg_node_input(n, 0), cg_node_saved(n));
    return cgi_grads_made(n, gin);
}
static const cg_op slice_op = {"slice", slice_backward, 0};
static const cg_op narrow_op = {"narrow", slice_backward, 0}; /* cg_record's messages */

/* Backward of slice_scatter: take the same slice of its gradient. */
static cg_status scatter_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                  cg_tensor **gin) {
    const slice_args *a = cg_node_saved(n);
    gin[0] = cg_slice(ctx, g, a->dim, a->start, a->start + (a->len - 1) * a->step + 1, a->step);
    return cgi_grads_made(n, gin);
}
static const cg_op slice_scatter_op = {"slice_scatter", scatter_backward, 0};

/* zeros shaped like `like` with g written into like[..., start::step, ...]. */
static cg_tensor *slice_scatter(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *like,
                                const slice_args *a) {
    cg_tensor *out = cg_zeros(ctx, g->dtype, like->ndim, like->shape);
    cg_tensor *dst = out ? cgi_slice(ctx, out, a->dim, a->start,
                                     a->start + (a->len - 1) * a->step + 1, a->step)
                         : NULL;
    if (!dst) return NULL;
    if (a->len > 0) cgi_copy_convert(dst, g);
    return cg_record(ctx, &slice_scatter_op, out, 1, &g, a, sizeof *a);
}

cg_tensor *cg_slice(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t start, int64_t end,
                    int64_t step) {
    cg_tensor *y = cgi_slice(ctx, t, dim, start, end, step); /* validates */
    if (!y) return NULL;
    int d = dim < 0 ? dim + t->ndim : dim;
    int64_t n = t->shape[d], first = start < 0 ? start + n : start; /* Python's clamp */
    slice_args a = {d, first < 0 ? 0 : first > n ? n : first, y->shape[d], step};
    return cg_record(ctx, &slice_op, y, 1, &t, &a, sizeof a);
}

cg_tensor *cg_narrow(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t start, int64_t length) {
    cg_tensor *y = cgi_narrow(ctx, t, dim, start, length); /* validates */
    if (!y) return NULL;
    int d = dim < 0 ? dim + t->ndim : dim;
    slice_args a = {d, start < 0 ? start + t->shape[d] : start, length, 1};
    return cg_record(ctx, &narrow_op, y, 1, &t, &a, sizeof a);
}

/* select drops the dim: its gradient gets it back before the scatter. */
static cg_status select_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                 cg_tensor **gin) {
    const slice_args *a = cg_node_saved(n);
    gin[0] = slice_scatter(ctx, cg_unsqueeze(ctx, g, a->dim), cg_node_input(n, 0), a);
    return cgi_grads_made(n, gin);
}
static const cg_op select_op = {"select", select_backward, 0};

cg_tensor *cg_select(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t index) {
    cg_tensor *y = cgi_select(ctx, t, dim, index); /* validates */
    if (!y) return NULL;
    int d = dim < 0 ? dim + t->ndim : dim;
    slice_args a = {d, index < 0 ? index + t->shape[d] : index, 1, 1};
    return cg_record(ctx, &select_op, y, 1, &t, &a, sizeof a);
}

/* ---- copies ------------------------------------------------------------------- */
static cg_status identity_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                   cg_tensor **gin) {
    (void)ctx;
    gin[0] = (cg_tensor *)g;
    return cgi_grads_made(n, gin);
}
static const cg_op clone_op = {"clone", identity_backward, 0};
static const cg_op contiguous_op = {"contiguous", identity_backward, 0}; /* messages */

cg_tensor *cg_contiguous(cg_ctx *ctx, const cg_tensor *t) {
    return CGI_RECORD(ctx, &contiguous_op, cgi_contiguous(ctx, t), t);
}
cg_tensor *cg_clone(cg_ctx *ctx, const cg_tensor *t) {
    return CGI_RECORD(ctx, &clone_op, cgi_clone(ctx, t), t);
}

static cg_status cast_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cg_tensor **gin) {
    gin[0] = cg_cast(ctx, g, cg_node_input(n, 0)->dtype);
    return cgi_grads_made(n, gin);
}
static const cg_op cast_op = {"cast", cast_backward, 0};

/* To i64 the result cannot carry a gradient: it is cut from the graph. */
cg_tensor *cg_cast(cg_ctx *ctx, const cg_tensor *t, cg_dtype dt) {
    cg_tensor *y = cgi_cast(ctx, t, dt);
    if (!y || !cgi_is_float(dt)) return y;
    return cg_record(ctx, &cast_op, y, 1, &t, NULL, 0);
}

/* ---- gradient helpers ----------------------------------------------------------- */
cg_tensor *cgi_grad_like(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x) {
    if (!g) return NULL;
    int axes[CG_MAX_DIMS], n = 0, lead = g->ndim - x->ndim;
    for (int i = 0; i < g->ndim; i++)
        if (i < lead || (x->shape[i - lead] == 1 && g->shape[i] != 1)) axes[n++] = i;
    const cg_tensor *r = g;
    if (n > 0)
        r = cg_reshape(ctx, cg_sum(ctx, g, axes, n, true), x->ndim, x->shape);
    else if (g->ndim != x->ndim)
        r = cg_reshape(ctx, g, x->ndim, x->shape);
    if (r && r->dtype != x->dtype) r = cg_cast(ctx, r, x->dtype);
    return (cg_tensor *)r;
}

cg_tensor *cgi_grad_buffer(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                           const cg_tensor *like) {
    cg_tensor *spare = cgi_node_spare_gout(n, g);
    return spare ? spare : cgi_new(ctx, "cg_backward", like->dtype, like->ndim, like->shape);
}

cg_status cgi_grads_made(const cg_node *node, cg_tensor *const *gin) {
    for (int i = 0; i < cg_node_ninputs(node); i++)
        if (cg_node_needs_grad(node, i) && !gin[i])
            return cg_last_status() != CG_OK ? cg_last_status() : CG_ERR_NOMEM;
    return CG_OK;
}
