/* Elementwise ops: dtype promotion, broadcasting, then one kernel call. */
#include "../tensor/internal.h"
#include "ops.h"

static int dtype_rank(cg_dtype dt) { return dt == CG_I64 ? 0 : dt == CG_F32 ? 1 : 2; }

/* PyTorch's promotion for these dtypes: i64 < f32 < f64. */
static cg_dtype promote(cg_dtype a, cg_dtype b) {
    return dtype_rank(a) >= dtype_rank(b) ? a : b;
}

/* x itself when it already has dtype dt, else a converted copy. */
static const cg_tensor *as_dtype(cg_ctx *ctx, const cg_tensor *x, cg_dtype dt) {
    return x->dtype == dt ? x : cg_cast(ctx, x, dt);
}

static void drop_temp(cg_ctx *ctx, const cg_tensor *tmp, const cg_tensor *orig) {
    if (!ctx && tmp != orig) cg_tensor_free((cg_tensor *)tmp);
}

static cg_tensor *binary(cg_ctx *ctx, const char *op, const cgi_binary_kernel *k,
                         const cg_tensor *a, const cg_tensor *b) {
    CGI_NULL_CHECK(a, op);
    CGI_NULL_CHECK(b, op);
    int n;
    int64_t shape[CG_MAX_DIMS];
    if (cgi_broadcast(ctx, op, a->ndim, a->shape, b->ndim, b->shape, &n, shape) != CG_OK)
        return NULL;
    cg_dtype dt = promote(a->dtype, b->dtype);
    if (!k->fn[dt]) dt = CG_F32; /* float-only op on integers */
    const cg_tensor *a2 = as_dtype(ctx, a, dt), *b2 = as_dtype(ctx, b, dt);
    cg_tensor *out = a2 && b2 ? cgi_new(ctx, op, dt, n, shape) : NULL;
    if (out) cgi_map_binary(k->fn[dt], a2, b2, out);
    if (a2) drop_temp(ctx, a2, a);
    if (b2) drop_temp(ctx, b2, b);
    return out;
}

static cg_tensor *unary(cg_ctx *ctx, const char *op, const cgi_unary_kernel *k,
                        const cg_tensor *x) {
    CGI_NULL_CHECK(x, op);
    cg_dtype dt = k->fn[x->dtype] ? x->dtype : CG_F32;
    const cg_tensor *x2 = as_dtype(ctx, x, dt);
    cg_tensor *out = x2 ? cgi_new(ctx, op, dt, x->ndim, x->shape) : NULL;
    if (out) cgi_map_unary(k->fn[dt], x2, out);
    if (x2) drop_temp(ctx, x2, x);
    return out;
}

#define BINARY_OP(name)                                                        \
    cg_tensor *cg_##name(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) { \
        return binary(ctx, "cg_" #name, &cgi_binary_##name, a, b);             \
    }
#define UNARY_OP(name)                                                         \
    cg_tensor *cg_##name(cg_ctx *ctx, const cg_tensor *x) {                    \
        return unary(ctx, "cg_" #name, &cgi_unary_##name, x);                  \
    }

BINARY_OP(add)
BINARY_OP(sub)
BINARY_OP(mul)
BINARY_OP(div)
BINARY_OP(pow)
BINARY_OP(maximum)
BINARY_OP(minimum)

UNARY_OP(neg)
UNARY_OP(abs)
UNARY_OP(sign)
UNARY_OP(square)
UNARY_OP(relu)
UNARY_OP(exp)
UNARY_OP(log)
UNARY_OP(log1p)
UNARY_OP(sqrt)
UNARY_OP(rsqrt)
UNARY_OP(sin)
UNARY_OP(cos)
UNARY_OP(tanh)
UNARY_OP(sigmoid)
UNARY_OP(erf)
