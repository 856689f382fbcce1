/* Arithmetic: broadcasting binary ops with PyTorch's dtype promotion, their
 * scalar forms, comparisons, where and clamp. */
#include "internal.h"

static int dtype_rank(cg_dtype dt) { return dt == CG_I64 ? 0 : dt == CG_F32 ? 1 : 2; }

cg_dtype cgi_promote(cg_dtype a, cg_dtype b) { return dtype_rank(a) >= dtype_rank(b) ? a : b; }

/* x itself when it already has dtype dt, else a converted copy (no graph:
 * the op records the original inputs and casts gradients back itself). */
static const cg_tensor *as_dtype(cg_ctx *ctx, const char *name, const cg_tensor *x,
                                 cg_dtype dt) {
    if (x->dtype == dt) return x;
    cg_tensor *c = cgi_new(ctx, name, dt, x->ndim, x->shape); /* name: the caller's */
    if (c) cgi_copy_convert(c, x);
    return c;
}
static void drop_temp(cg_ctx *ctx, const cg_tensor *tmp, const cg_tensor *orig) {
    if (!ctx && tmp && tmp != orig) cg_tensor_free((cg_tensor *)tmp);
}

/* out = k(a, b) over the broadcast shape, in the promoted dtype (float for
 * float-only kernels); no graph. */
static cg_tensor *binary_forward(cg_ctx *ctx, const char *name, const cgi_binary_kernel *k,
                                 const cg_tensor *a, const cg_tensor *b) {
    CGI_INPUT_CHECK(a, name, 0);
    CGI_INPUT_CHECK(b, name, 1);
    int n;
    int64_t shape[CG_MAX_DIMS];
    if (cgi_broadcast(ctx, name, a->ndim, a->shape, b->ndim, b->shape, &n, shape) != CG_OK)
        return NULL;
    cg_dtype dt = cgi_promote(a->dtype, b->dtype);
    if (!k->fn[dt]) dt = CG_F32;
    const cg_tensor *a2 = as_dtype(ctx, name, a, dt), *b2 = as_dtype(ctx, name, b, dt);
    cg_tensor *out = a2 && b2 ? cgi_new(ctx, name, dt, n, shape) : NULL;
    if (out) cgi_map_binary(k->fn[dt], a2, b2, out);
    drop_temp(ctx, a2, a);
    drop_temp(ctx, b2, b);
    return out;
}

/* name is the public function's, for messages (a literal: no formatting on
 * the hot path). */
static cg_tensor *binary(cg_ctx *ctx, const char *name, const cg_op *op,
                         const cgi_binary_kernel *k, const cg_tensor *a, const cg_tensor *b) {
    return CGI_RECORD(ctx, op, binary_forward(ctx, name, k, a, b), a, b);
}

#define A        cg_node_input(n, 0)
#define B        cg_node_input(n, 1)
#define NEEDS(i) cg_node_needs_grad(n, i)

/* ---- add, sub, mul, div ------------------------------------------------------ */
static cg_status add_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    if (NEEDS(0)) gin[0] = cgi_grad_like(ctx, g, A);
    if (NEEDS(1)) gin[1] = cgi_grad_like(ctx, g, B);
    return cgi_grads_made(n, gin);
}
static const cg_op add_op = {"add", add_backward, 0};
cg_tensor *cg_add(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    return binary(ctx, "cg_add", &add_op, &cgi_binary_add, a, b);
}

static cg_status sub_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    if (NEEDS(0)) gin[0] = cgi_grad_like(ctx, g, A);
    if (NEEDS(1)) gin[1] = cgi_grad_like(ctx, cg_neg(ctx, g), B);
    return cgi_grads_made(n, gin);
}
static const cg_op sub_op = {"sub", sub_backward, 0};
cg_tensor *cg_sub(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    return binary(ctx, "cg_sub", &sub_op, &cgi_binary_sub, a, b);
}

/* d(ab) = g b da + g a db */
static cg_status mul_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    if (NEEDS(0)) gin[0] = cgi_grad_like(ctx, cg_mul(ctx, g, B), A);
    if (NEEDS(1)) gin[1] = cgi_grad_like(ctx, cg_mul(ctx, g, A), B);
    return cgi_grads_made(n, gin);
}
static const cg_op mul_op = {"mul", mul_backward, CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};
cg_tensor *cg_mul(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    return binary(ctx, "cg_mul", &mul_op, &cgi_binary_mul, a, b);
}

/* d(a/b) = g/b da - g a/b^2 db */
static cg_status div_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    cg_tensor *gb = cg_div(ctx, g, B);
    if (NEEDS(0)) gin[0] = cgi_grad_like(ctx, gb, A);
    if (NEEDS(1))
        gin[1] = cgi_grad_like(ctx, cg_neg(ctx, cg_mul(ctx, gb, cg_div(ctx, A, B))), B);
    return cgi_grads_made(n, gin);
}
static const cg_op div_op = {"div", div_backward, CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};
cg_tensor *cg_div(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    return binary(ctx, "cg_div", &div_op, &cgi_binary_div, a, b);
}

/* ---- pow ------------------------------------------------------------------------ */
/* d(a^b) = g b a^(b-1) da + g a^b log(a) db; the db term is 0 where a == 0
 * (PyTorch's convention, which keeps 0^b finite for b > 0). */
static cg_status pow_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    if (NEEDS(0))
        gin[0] = cgi_grad_like(
            ctx, cg_mul(ctx, cg_mul(ctx, g, B), cg_pow(ctx, A, cg_sub_scalar(ctx, B, 1))), A);
    if (NEEDS(1)) {
        cg_tensor *zero = cgi_compare_scalar(ctx, "cg_backward", &cgi_binary_eq, A, 0);
        cg_tensor *safe = cg_where(ctx, zero, cg_ones_like(ctx, A), A);
        cg_tensor *t = cg_mul(ctx, cg_mul(ctx, g, cg_pow(ctx, A, B)), cg_log(ctx, safe));
        gin[1] = cgi_grad_like(ctx, cg_where(ctx, zero, cg_zeros_like(ctx, t), t), B);
    }
    return cgi_grads_made(n, gin);
}
static const cg_op pow_op = {"pow", pow_backward, CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};
cg_tensor *cg_pow(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    return binary(ctx, "cg_pow", &pow_op, &cgi_binary_pow, a, b);
}

/* ---- maximum, minimum: ties split the gradient in half, as PyTorch -------------- */
static cg_tensor *extreme_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x,
                               const cg_tensor *other, const cgi_binary_kernel *wins) {
    cg_tensor *w = binary_forward(ctx, "cg_backward", wins, x, other);
    cg_tensor *tie = binary_forward(ctx, "cg_backward", &cgi_binary_eq, x, other);
    cg_tensor *share = w && tie ? cg_add(ctx, w, cg_mul_scalar(ctx, tie, 0.5)) : NULL;
    return cgi_grad_like(ctx, cg_mul(ctx, g, share), x);
}

static cg_status maximum_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                  cg_tensor **gin) {
    if (NEEDS(0)) gin[0] = extreme_grad(ctx, g, A, B, &cgi_binary_gt);
    if (NEEDS(1)) gin[1] = extreme_grad(ctx, g, B, A, &cgi_binary_gt);
    return cgi_grads_made(n, gin);
}
static const cg_op maximum_op = {"maximum", maximum_backward,
                                 CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};
cg_tensor *cg_maximum(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    return binary(ctx, "cg_maximum", &maximum_op, &cgi_binary_maximum, a, b);
}

static cg_status minimum_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                  cg_tensor **gin) {
    if (NEEDS(0)) gin[0] = extreme_grad(ctx, g, A, B, &cgi_binary_lt);
    if (NEEDS(1)) gin[1] = extreme_grad(ctx, g, B, A, &cgi_binary_lt);
    return cgi_grads_made(n, gin);
}
static const cg_op minimum_op = {"minimum", minimum_backward,
                                 CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};
cg_tensor *cg_minimum(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    return binary(ctx, "cg_minimum", &minimum_op, &cgi_binary_minimum, a, b);
}

/* ---- comparisons: masks, never differentiable ------------------------------------ */
#define COMPARE_OP(name)                                                                       \
    cg_tensor *cg_##name(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {                \
        return binary_forward(ctx, "cg_" #name, &cgi_binary_##name, a, b);                     \
    }
COMPARE_OP(gt)
COMPARE_OP(lt)
COMPARE_OP(ge)
COMPARE_OP(le)
COMPARE_OP(eq)
COMPARE_OP(ne)

cg_tensor *cgi_compare_scalar(cg_ctx *ctx, const char *name, const cgi_binary_kernel *k,
                              const cg_tensor *x, double s) {
    cg_tensor st;
    cgi_storage sto;
    cgi_scalar v;
    if (!x) return NULL;
    return binary_forward(ctx, name, k, x, cgi_stack_scalar(&st, &sto, &v, x->dtype, s));
}

/* ---- scalar forms: x op s, with s saved for the backward ---------------------------- */
/* i64 stays i64 for integral s with an integer kernel, else the result is f32. */
static cg_tensor *scalar_forward(cg_ctx *ctx, const char *name, const cgi_binary_kernel *k,
                                 const cg_tensor *x, double s, bool reversed) {
    CGI_NULL_CHECK(x, name);
    cg_dtype dt = x->dtype;
    if (dt == CG_I64 && (!k->fn[CG_I64] || !cgi_f64_is_i64(s))) dt = CG_F32;
    cg_tensor st;
    cgi_storage sto;
    cgi_scalar v;
    const cg_tensor *sc = cgi_stack_scalar(&st, &sto, &v, dt, s);
    const cg_tensor *x2 = as_dtype(ctx, name, x, dt);
    cg_tensor *out = x2 ? cgi_new(ctx, name, dt, x->ndim, x->shape) : NULL;
    if (out) cgi_map_binary(k->fn[dt], reversed ? sc : x2, reversed ? x2 : sc, out);
    drop_temp(ctx, x2, x);
    return out;
}

static double saved_scalar(const cg_node *n) { return *(const double *)cg_node_saved(n); }

#define SCALAR_OP(name, kernel, reversed, gexpr)                                               \
    static cg_status name##_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,        \
                                     cg_tensor **gin) {                                        \
        double s = saved_scalar(n);                                                            \
        (void)s;                                                                               \
        gin[0] = cgi_grad_like(ctx, (gexpr), A);                                               \
        return cgi_grads_made(n, gin);                                                         \
    }                                                                                          \
    static const cg_op name##_op = {#name, name##_backward, CG_SAVES_INPUT(0)};                \
    cg_tensor *cg_##name(cg_ctx *ctx, const cg_tensor *x, double s) {                          \
        cg_tensor *y = scalar_forward(ctx, "cg_" #name, &cgi_binary_##kernel, x, s, reversed); \
        return y ? cg_record(ctx, &name##_op, y, 1, &x, &s, sizeof s) : NULL;                  \
    }

SCALAR_OP(add_scalar, add, false, g)
SCALAR_OP(sub_scalar, sub, false, g)
SCALAR_OP(rsub_scalar, sub, true, cg_neg(ctx, g))
SCALAR_OP(mul_scalar, mul, false, cg_mul_scalar(ctx, g, s))
SCALAR_OP(div_scalar, div, false, cg_div_scalar(ctx, g, s))
/* d(x^p) = g p x^(p-1) */
SCALAR_OP(pow_scalar, pow, false,
          cg_mul(ctx, g, cg_mul_scalar(ctx, cg_pow_scalar(ctx, A, s - 1), s)))

/* ---- neg, abs, sign ------------------------------------------------------------------ */
cg_tensor *cgi_unary_forward(cg_ctx *ctx, const char *name, const cgi_unary_kernel *k,
                             const cg_tensor *x) {
    CGI_NULL_CHECK(x, name);
    cg_dtype dt = k->fn[x->dtype] ? x->dtype : CG_F32;
    const cg_tensor *x2 = as_dtype(ctx, name, x, dt);
    cg_tensor *out = x2 ? cgi_new(ctx, name, dt, x->ndim, x->shape) : NULL;
    if (out) cgi_map_unary(k->fn[dt], x2, out);
    drop_temp(ctx, x2, x);
    return out;
}

static cg_status neg_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    gin[0] = cg_neg(ctx, g);
    return cgi_grads_made(n, gin);
}
static const cg_op neg_op = {"neg", neg_backward, 0};
cg_tensor *cg_neg(cg_ctx *ctx, const cg_tensor *x) {
    return CGI_RECORD(ctx, &neg_op, cgi_unary_forward(ctx, "cg_neg", &cgi_unary_neg, x), x);
}

static cg_status abs_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    gin[0] = cg_mul(ctx, g, cg_sign(ctx, A));
    return cgi_grads_made(n, gin);
}
static const cg_op abs_op = {"abs", abs_backward, CG_SAVES_INPUT(0)};
cg_tensor *cg_abs(cg_ctx *ctx, const cg_tensor *x) {
    return CGI_RECORD(ctx, &abs_op, cgi_unary_forward(ctx, "cg_abs", &cgi_unary_abs, x), x);
}

static cg_status zero_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cg_tensor **gin) {
    (void)g;
    for (int i = 0; i < cg_node_ninputs(n); i++)
        if (NEEDS(i)) gin[i] = cg_zeros_like(ctx, cg_node_input(n, i));
    return cgi_grads_made(n, gin);
}
static const cg_op sign_op = {"sign", zero_backward, 0};
cg_tensor *cg_sign(cg_ctx *ctx, const cg_tensor *x) {
    return CGI_RECORD(ctx, &sign_op, cgi_unary_forward(ctx, "cg_sign", &cgi_unary_sign, x), x);
}

/* ---- where ---------------------------------------------------------------------------- */
static cg_tensor *where_forward(cg_ctx *ctx, const cg_tensor *c, const cg_tensor *a,
                                const cg_tensor *b) {
    int n1, n;
    int64_t s1[CG_MAX_DIMS], shape[CG_MAX_DIMS];
    if (cgi_broadcast(ctx, "cg_where", c->ndim, c->shape, a->ndim, a->shape, &n1, s1) !=
            CG_OK ||
        cgi_broadcast(ctx, "cg_where", n1, s1, b->ndim, b->shape, &n, shape) != CG_OK)
        return NULL;
    cg_dtype dt = cgi_promote(a->dtype, b->dtype);
    const cg_tensor *c2 = as_dtype(ctx, "cg_where", c, dt);
    const cg_tensor *a2 = as_dtype(ctx, "cg_where", a, dt);
    const cg_tensor *b2 = as_dtype(ctx, "cg_where", b, dt);
    cg_tensor *out = c2 && a2 && b2 ? cgi_new(ctx, "cg_where", dt, n, shape) : NULL;
    if (out) cgi_map_ternary(cgi_where_fn[dt], c2, a2, b2, out);
    drop_temp(ctx, c2, c);
    drop_temp(ctx, a2, a);
    drop_temp(ctx, b2, b);
    return out;
}

/* The gradient goes to a where cond holds, to b elsewhere; cond gets none. */
static cg_status where_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                cg_tensor **gin) {
    const cg_tensor *c = cg_node_input(n, 0);
    cg_tensor *z = cg_zeros_like(ctx, g);
    if (NEEDS(0)) gin[0] = cg_zeros_like(ctx, c);
    if (NEEDS(1)) gin[1] = cgi_grad_like(ctx, cg_where(ctx, c, g, z), B);
    if (NEEDS(2)) gin[2] = cgi_grad_like(ctx, cg_where(ctx, c, z, g), cg_node_input(n, 2));
    return cgi_grads_made(n, gin);
}
static const cg_op where_op = {"where", where_backward, CG_SAVES_INPUT(0)};

cg_tensor *cg_where(cg_ctx *ctx, const cg_tensor *cond, const cg_tensor *a,
                    const cg_tensor *b) {
    CGI_INPUT_CHECK(cond, "cg_where", 0);
    CGI_INPUT_CHECK(a, "cg_where", 1);
    CGI_INPUT_CHECK(b, "cg_where", 2);
    return CGI_RECORD(ctx, &where_op, where_forward(ctx, cond, a, b), cond, a, b);
}

/* ---- clamp: the gradient passes where lo <= x <= hi ------------------------------------ */
typedef struct clamp_args {
    double lo, hi;
} clamp_args;

static cg_status clamp_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                cg_tensor **gin) {
    const clamp_args *a = cg_node_saved(n);
    const char *bw = "cg_backward";
    cg_tensor *in = cg_mul(ctx, cgi_compare_scalar(ctx, bw, &cgi_binary_ge, A, a->lo),
                           cgi_compare_scalar(ctx, bw, &cgi_binary_le, A, a->hi));
    gin[0] = cgi_grad_like(ctx, cg_mul(ctx, g, in), A);
    return cgi_grads_made(n, gin);
}
static const cg_op clamp_op = {"clamp", clamp_backward, CG_SAVES_INPUT(0)};

/* lo = -INFINITY or hi = INFINITY leave that side open. */
cg_tensor *cg_clamp(cg_ctx *ctx, const cg_tensor *x, double lo, double hi) {
    CGI_NULL_CHECK(x, "cg_clamp");
    if (!(lo <= hi)) {
        cgi_error(ctx, CG_ERR_ARG, "cg_clamp: lo %g > hi %g", lo, hi);
        return NULL;
    }
    cg_tensor *y = scalar_forward(ctx, "cg_clamp", &cgi_binary_maximum, x, lo, false);
    if (y) {
        cg_tensor st;
        cgi_storage sto;
        cgi_scalar v;
        cgi_map_binary(cgi_binary_minimum.fn[y->dtype], y,
                       cgi_stack_scalar(&st, &sto, &v, y->dtype, hi), y);
    }
    clamp_args a = {lo, hi};
    return y ? cg_record(ctx, &clamp_op, y, 1, &x, &a, sizeof a) : NULL;
}
