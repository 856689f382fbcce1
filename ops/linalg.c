/* matmul (torch.matmul's rules) and linear (x W^T + b). Every product is a
 * GEMM through cgi_gemm with the operands' own strides: transposes in the
 * backward rules are views, never copies. */
#include "internal.h"

#include <string.h>

/* The matrix view of an operand: 1-D a becomes [1,k], 1-D b becomes [k,1]. */
typedef struct mat_view {
    int nbatch;
    int64_t batch[CG_MAX_DIMS], rows, cols, rs, cs;
    int64_t bstrides[CG_MAX_DIMS];
} mat_view;

static void as_matrix(const cg_tensor *t, bool is_b, mat_view *v) {
    if (t->ndim == 1) {
        v->nbatch = 0;
        v->rows = is_b ? t->shape[0] : 1;
        v->cols = is_b ? 1 : t->shape[0];
        v->rs = is_b ? t->strides[0] : t->shape[0] * t->strides[0];
        v->cs = is_b ? 1 : t->strides[0];
        return;
    }
    v->nbatch = t->ndim - 2;
    memcpy(v->batch, t->shape, sizeof(int64_t) * (size_t)v->nbatch);
    memcpy(v->bstrides, t->strides, sizeof(int64_t) * (size_t)v->nbatch);
    v->rows = t->shape[t->ndim - 2];
    v->cols = t->shape[t->ndim - 1];
    v->rs = t->strides[t->ndim - 2];
    v->cs = t->strides[t->ndim - 1];
}

static cg_status check(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b, const mat_view *va,
                       const mat_view *vb) {
    char sa[160], sb[160]; /* formatted only for a message */
#define SHAPES cg_shape_str(a, sa, sizeof sa), cg_shape_str(b, sb, sizeof sb)
    if (a->ndim == 0 || b->ndim == 0)
        return cgi_error(ctx, CG_ERR_SHAPE, "cg_matmul: %s x %s: operands need rank >= 1",
                         SHAPES);
    if (!cgi_is_float(a->dtype) || a->dtype != b->dtype)
        return cgi_error(ctx, CG_ERR_DTYPE,
                         "cg_matmul: %s x %s: dtypes %s and %s (need "
                         "one float dtype)",
                         SHAPES, cg_dtype_name(a->dtype), cg_dtype_name(b->dtype));
    if (va->cols != vb->rows)
        return cgi_error(ctx, CG_ERR_SHAPE, "cg_matmul: %s x %s: inner dims %lld != %lld",
                         SHAPES, (long long)va->cols, (long long)vb->rows);
#undef SHAPES
    return CG_OK;
}

/* Result shape: broadcast batch, then m and n unless the operand was 1-D. */
static int out_shape(const cg_tensor *a, const cg_tensor *b, int nbatch, const int64_t *batch,
                     const mat_view *va, const mat_view *vb, int64_t *shape) {
    int n = nbatch;
    memcpy(shape, batch, sizeof(int64_t) * (size_t)nbatch);
    if (a->ndim > 1) shape[n++] = va->rows;
    if (b->ndim > 1) shape[n++] = vb->cols;
    return n;
}

/* One GEMM per batch index; operand offsets follow broadcast batch strides. */
static cg_status run(cg_tensor *out, const cg_tensor *a, const cg_tensor *b, const mat_view *va,
                     const mat_view *vb, int nbatch, const int64_t *batch) {
    int64_t sa[CG_MAX_DIMS], sb[CG_MAX_DIMS], idx[CG_MAX_DIMS] = {0};
    cg_tensor ba = {.ndim = va->nbatch}, bb = {.ndim = vb->nbatch};
    memcpy(ba.shape, va->batch, sizeof ba.shape);
    memcpy(ba.strides, va->bstrides, sizeof ba.strides);
    memcpy(bb.shape, vb->batch, sizeof bb.shape);
    memcpy(bb.strides, vb->bstrides, sizeof bb.strides);
    cgi_broadcast_strides(&ba, nbatch, batch, sa);
    cgi_broadcast_strides(&bb, nbatch, batch, sb);
    int64_t m = va->rows, n = vb->cols, nb = cgi_numel(nbatch, batch);
    size_t es = cg_dtype_size(a->dtype);
    for (int64_t i = 0; i < nb; i++) {
        int64_t oa = 0, ob = 0;
        for (int d = 0; d < nbatch; d++) {
            oa += idx[d] * sa[d];
            ob += idx[d] * sb[d];
        }
        cgi_mat ma = {cgi_ptr(a) + (size_t)oa * es, va->rs, va->cs};
        cgi_mat mb = {cgi_ptr(b) + (size_t)ob * es, vb->rs, vb->cs};
        char *c = cgi_ptr(out) + (size_t)(i * m * n) * es;
        cg_status s =
            cgi_gemm(a->dtype, false, false, m, n, va->cols, 1.0, ma, mb, 0.0, c, n, 1);
        if (s != CG_OK) return s;
        for (int d = nbatch - 1; d >= 0 && ++idx[d] == batch[d]; d--) idx[d] = 0;
    }
    return CG_OK;
}

/* The forward, graph-free. */
static cg_tensor *matmul_forward(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    mat_view va, vb;
    if (a->ndim > 0) as_matrix(a, false, &va);
    if (b->ndim > 0) as_matrix(b, true, &vb);
    if (check(ctx, a, b, &va, &vb) != CG_OK) return NULL;
    int nbatch;
    int64_t batch[CG_MAX_DIMS], shape[CG_MAX_DIMS];
    if (cgi_broadcast(ctx, "cg_matmul", va.nbatch, va.batch, vb.nbatch, vb.batch, &nbatch,
                      batch) != CG_OK)
        return NULL;
    int n = out_shape(a, b, nbatch, batch, &va, &vb, shape);
    cg_tensor *out = cgi_new(ctx, "cg_matmul", a->dtype, n, shape);
    if (out && run(out, a, b, &va, &vb, nbatch, batch) != CG_OK) {
        cg_tensor_free(out);
        return NULL;
    }
    return out;
}

/* x as a matrix operand: 1-D a is [1,k], 1-D b is [k,1] (views, in ctx). */
static cg_tensor *as_2d(cg_ctx *ctx, const cg_tensor *x, bool is_b) {
    if (x->ndim >= 2) return (cg_tensor *)x;
    return cg_unsqueeze(ctx, x, is_b ? -1 : 0);
}

/* For C = A B: dA = g B^T, dB = A^T g, summed over broadcast batch dims; 1-D
 * operands are lifted to matrices and g is given the matching shape. */
static cg_status matmul_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                 cg_tensor **gin) {
    const cg_tensor *a = cg_node_input(n, 0), *b = cg_node_input(n, 1);
    cg_tensor *a2 = as_2d(ctx, a, false), *b2 = as_2d(ctx, b, true);
    if (!a2 || !b2) return cg_last_status();
    int nbatch = g->ndim - (a->ndim > 1) - (b->ndim > 1);
    int64_t shape[CG_MAX_DIMS];
    for (int i = 0; i < nbatch; i++) shape[i] = g->shape[i];
    shape[nbatch] = a2->shape[a2->ndim - 2];
    shape[nbatch + 1] = b2->shape[b2->ndim - 1];
    cg_tensor *g2 = cg_reshape(ctx, g, nbatch + 2, shape);
    if (cg_node_needs_grad(n, 0))
        gin[0] = cg_reshape(
            ctx, cgi_grad_like(ctx, cg_matmul(ctx, g2, cg_transpose(ctx, b2, -1, -2)), a2),
            a->ndim, a->shape);
    if (cg_node_needs_grad(n, 1))
        gin[1] = cg_reshape(
            ctx, cgi_grad_like(ctx, cg_matmul(ctx, cg_transpose(ctx, a2, -1, -2), g2), b2),
            b->ndim, b->shape);
    return cgi_grads_made(n, gin);
}
static const cg_op matmul_op = {"matmul", matmul_backward,
                                CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};

cg_tensor *cg_matmul(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    CGI_INPUT_CHECK(a, "cg_matmul", 0);
    CGI_INPUT_CHECK(b, "cg_matmul", 1);
    return CGI_RECORD(ctx, &matmul_op, matmul_forward(ctx, a, b), a, b);
}

/* ---- linear ------------------------------------------------------------------------ */
static cg_status linear_check(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w,
                              const cg_tensor *b) {
    char sx[160], sw[160], sb[160]; /* formatted only for a message */
    if (!cgi_is_float(x->dtype) || w->dtype != x->dtype || (b && b->dtype != x->dtype))
        return cgi_error(ctx, CG_ERR_DTYPE,
                         "cg_linear: x %s %s, weight %s: need one float "
                         "dtype",
                         cg_shape_str(x, sx, sizeof sx), cg_dtype_name(x->dtype),
                         cg_dtype_name(w->dtype));
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1])
        return cgi_error(ctx, CG_ERR_SHAPE,
                         "cg_linear: x %s, weight %s: need x [..., in] "
                         "and weight [out, in]",
                         cg_shape_str(x, sx, sizeof sx), cg_shape_str(w, sw, sizeof sw));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return cgi_error(ctx, CG_ERR_SHAPE, "cg_linear: bias %s for weight %s: need [%lld]",
                         cg_shape_str(b, sb, sizeof sb), cg_shape_str(w, sw, sizeof sw),
                         (long long)w->shape[0]);
    return CG_OK;
}

/* y [M, out] = x [M, in] W^T, with y first holding the broadcast bias (beta 1). */
static cg_tensor *linear_forward(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w,
                                 const cg_tensor *b) {
    int64_t in = w->shape[1], out = w->shape[0], m = cgi_numel(x->ndim - 1, x->shape);
    int64_t shape[CG_MAX_DIMS];
    for (int i = 0; i < x->ndim - 1; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = out;
    /* x2 [M, in]: with ctx NULL it goes where x lives (the heap, or x's
     * context), since a heap view of a context tensor is refused */
    cg_ctx *xctx = ctx ? ctx : x->ctx;
    const cg_tensor *x2 = cgi_reshape(xctx, x, 2, (const int64_t[]){m, in});
    cg_tensor *y = x2 ? cgi_new(ctx, "cg_linear", x->dtype, x->ndim, shape) : NULL;
    if (y && b) cgi_copy_convert(y, b);
    cg_status s = y ? cgi_gemm(x->dtype, false, true, m, out, in, 1.0,
                               (cgi_mat){cgi_ptr(x2), x2->strides[0], x2->strides[1]},
                               (cgi_mat){cgi_ptr(w), w->strides[0], w->strides[1]},
                               b ? 1.0 : 0.0, cgi_ptr(y), out, 1)
                    : CG_ERR_NOMEM;
    if (!xctx) cg_tensor_free((cg_tensor *)x2);
    if (s == CG_OK) return y;
    cg_tensor_free(y);
    return NULL;
}

/* sink [out, in] += g2^T x2, g2 [M, out] and x2 [M, in]: the weight gradient
 * added to the weight's .grad by the GEMM itself (beta 1), with no [out, in]
 * temporary and no separate pass to add it. Returns sink, NULL on error. */
static cg_tensor *add_weight_grad(cg_tensor *sink, const cg_tensor *g2, const cg_tensor *x2) {
    if (!g2 || !x2) return NULL;
    cg_status s =
        cgi_gemm(sink->dtype, true, false, sink->shape[0], sink->shape[1], g2->shape[0], 1.0,
                 (cgi_mat){cgi_ptr(g2), g2->strides[0], g2->strides[1]},
                 (cgi_mat){cgi_ptr(x2), x2->strides[0], x2->strides[1]}, 1.0, cgi_ptr(sink),
                 sink->strides[0], sink->strides[1]);
    return s == CG_OK ? sink : NULL;
}

/* g [..., out]: dx = g W, dW = g2^T x2, db = sum of g2's rows, where g2 and
 * x2 are g and x viewed as matrices [M, out] and [M, in]. */
static cg_status linear_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                 cg_tensor **gin) {
    const cg_tensor *x = cg_node_input(n, 0), *w = cg_node_input(n, 1);
    int64_t out = w->shape[0], in = w->shape[1];
    cg_tensor *g2 = cg_reshape(ctx, g, 2, (const int64_t[]){-1, out});
    if (cg_node_needs_grad(n, 0))
        gin[0] = cg_reshape(ctx, cg_matmul(ctx, g2, w), x->ndim, x->shape);
    cg_tensor *sink = cg_node_grad_sink(n, 1);
    if (sink)
        gin[1] = add_weight_grad(sink, g2, cg_reshape(ctx, x, 2, (const int64_t[]){-1, in}));
    else if (cg_node_needs_grad(n, 1))
        gin[1] = cg_matmul(ctx, cg_transpose(ctx, g2, 0, 1),
                           cg_reshape(ctx, x, 2, (const int64_t[]){-1, in}));
    if (cg_node_needs_grad(n, 2)) gin[2] = cg_sum(ctx, g2, (const int[]){0}, 1, false);
    return cgi_grads_made(n, gin);
}
static const cg_op linear_op = {"linear", linear_backward,
                                CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};

cg_tensor *cg_linear(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *weight,
                     const cg_tensor *bias) {
    CGI_INPUT_CHECK(x, "cg_linear", 0);
    CGI_INPUT_CHECK(weight, "cg_linear", 1);
    if (bias) CGI_INPUT_CHECK(bias, "cg_linear", 2);
    if (linear_check(ctx, x, weight, bias) != CG_OK) return NULL;
    cg_tensor *y = linear_forward(ctx, x, weight, bias);
    const cg_tensor *inputs[3] = {x, weight, bias};
    return y ? cg_record(ctx, &linear_op, y, bias ? 3 : 2, inputs, NULL, 0) : NULL;
}
