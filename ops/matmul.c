/* matmul with torch.matmul's rules, every product a GEMM through cgi_gemm
 * with the operands' own strides (no transposed or contiguous copies). */
#include "../tensor/internal.h"
#include "ops.h"

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

static cg_status check(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b,
                       const mat_view *va, const mat_view *vb) {
    char sa[160], sb[160];
    cg_shape_str(a, sa, sizeof sa);
    cg_shape_str(b, sb, sizeof sb);
    if (a->ndim == 0 || b->ndim == 0)
        return cgi_error(ctx, CG_ERR_SHAPE, "cg_matmul: %s x %s: operands need rank >= 1",
                         sa, sb);
    if (!cgi_is_float(a->dtype) || a->dtype != b->dtype)
        return cgi_error(ctx, CG_ERR_DTYPE, "cg_matmul: %s x %s: dtypes %s and %s (need "
                         "one float dtype)", sa, sb, cg_dtype_name(a->dtype),
                         cg_dtype_name(b->dtype));
    if (va->cols != vb->rows)
        return cgi_error(ctx, CG_ERR_SHAPE, "cg_matmul: %s x %s: inner dims %lld != %lld",
                         sa, sb, (long long)va->cols, (long long)vb->rows);
    return CG_OK;
}

/* Result shape: broadcast batch, then m and n unless the operand was 1-D. */
static int out_shape(const cg_tensor *a, const cg_tensor *b, int nbatch,
                     const int64_t *batch, const mat_view *va, const mat_view *vb,
                     int64_t *shape) {
    int n = nbatch;
    memcpy(shape, batch, sizeof(int64_t) * (size_t)nbatch);
    if (a->ndim > 1) shape[n++] = va->rows;
    if (b->ndim > 1) shape[n++] = vb->cols;
    return n;
}

/* One GEMM per batch index; operand offsets follow broadcast batch strides. */
static cg_status run(cg_tensor *out, const cg_tensor *a, const cg_tensor *b,
                     const mat_view *va, const mat_view *vb, int nbatch,
                     const int64_t *batch) {
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
        cg_status s = cgi_gemm(a->dtype, false, false, m, n, va->cols, 1.0, ma, mb, 0.0, c,
                               n, 1);
        if (s != CG_OK) return s;
        for (int d = nbatch - 1; d >= 0 && ++idx[d] == batch[d]; d--) idx[d] = 0;
    }
    return CG_OK;
}

cg_tensor *cg_matmul(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    CGI_NULL_CHECK(a, "cg_matmul");
    CGI_NULL_CHECK(b, "cg_matmul");
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
