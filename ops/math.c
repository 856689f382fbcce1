/* Elementwise math: each op is its kernel plus a backward expression in
 * differentiable ops (x is the input, y the output, g the output's gradient). */
#include "internal.h"

#include <math.h>

#define MATH_OP(name, saves, gexpr)                                                            \
    static cg_status name##_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,        \
                                     cg_tensor **gin) {                                        \
        const cg_tensor *x = cg_node_input(n, 0), *y = cg_node_output(n);                      \
        (void)x;                                                                               \
        (void)y;                                                                               \
        gin[0] = (gexpr);                                                                      \
        return cgi_grads_made(n, gin);                                                         \
    }                                                                                          \
    static const cg_op name##_op = {#name, name##_backward, saves};                            \
    cg_tensor *cg_##name(cg_ctx *ctx, const cg_tensor *x) {                                    \
        return CGI_RECORD(ctx, &name##_op,                                                     \
                          cgi_unary_forward(ctx, "cg_" #name, &cgi_unary_##name, x), x);       \
    }

#define X CG_SAVES_INPUT(0)
#define Y CG_SAVES_OUTPUT

/* exp: g y */
MATH_OP(exp, Y, cg_mul(ctx, g, y))
/* log: g / x */
MATH_OP(log, X, cg_div(ctx, g, x))
/* log1p: g / (1 + x) */
MATH_OP(log1p, X, cg_div(ctx, g, cg_add_scalar(ctx, x, 1)))
/* sqrt: g / (2 y) */
MATH_OP(sqrt, Y, cg_div(ctx, g, cg_mul_scalar(ctx, y, 2)))
/* rsqrt: -g y^3 / 2 */
MATH_OP(rsqrt, Y, cg_mul(ctx, g, cg_mul_scalar(ctx, cg_pow_scalar(ctx, y, 3), -0.5)))
/* square: 2 g x */
MATH_OP(square, X, cg_mul(ctx, g, cg_mul_scalar(ctx, x, 2)))
/* sin: g cos x */
MATH_OP(sin, X, cg_mul(ctx, g, cg_cos(ctx, x)))
/* cos: -g sin x */
MATH_OP(cos, X, cg_mul(ctx, g, cg_neg(ctx, cg_sin(ctx, x))))
/* tanh: g (1 - y^2) */
MATH_OP(tanh, Y, cg_mul(ctx, g, cg_rsub_scalar(ctx, cg_square(ctx, y), 1)))
/* sigmoid: g y (1 - y) */
MATH_OP(sigmoid, Y, cg_mul(ctx, g, cg_mul(ctx, y, cg_rsub_scalar(ctx, y, 1))))
/* erf: g 2/sqrt(pi) exp(-x^2) */
MATH_OP(erf, X,
        cg_mul(ctx, g,
               cg_mul_scalar(ctx, cg_exp(ctx, cg_neg(ctx, cg_square(ctx, x))),
                             1.1283791670955126)))
