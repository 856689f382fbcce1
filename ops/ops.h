/* cgrad ops: the functions models are written with.
 *
 * Every op takes the context its result is made in first (NULL: the result
 * is caller-owned, free it with cg_tensor_free), returns NULL on error with
 * the message in cg_last_error(), and returns NULL at once when given a NULL
 * input, so a whole expression is checked once at the end.
 *
 * Binary ops broadcast with NumPy's rules and promote dtypes as PyTorch does
 * (i64 < f32 < f64); float-only ops (exp, div, ...) on i64 give f32. */
#ifndef CG_OPS_H
#define CG_OPS_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- elementwise, broadcasting ------------------------------------------- */
CG_API cg_tensor *cg_add(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_sub(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_mul(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_div(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_pow(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_maximum(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_minimum(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);

CG_API cg_tensor *cg_neg(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_abs(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_sign(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_square(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_relu(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_exp(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_log(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_log1p(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_sqrt(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_rsqrt(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_sin(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_cos(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_tanh(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_sigmoid(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_erf(cg_ctx *ctx, const cg_tensor *x);

/* ---- reductions ------------------------------------------------------------ */
/* Over the naxes axes listed (negative allowed, no repeats); naxes == 0 means
 * every axis. keepdim keeps reduced axes as size 1. mean needs a float dtype;
 * max/min need a non-empty reduced set. */
CG_API cg_tensor *cg_sum(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes,
                         bool keepdim);
CG_API cg_tensor *cg_mean(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes,
                          bool keepdim);
CG_API cg_tensor *cg_max(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes,
                         bool keepdim);
CG_API cg_tensor *cg_min(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes,
                         bool keepdim);
/* i64 index of the first maximum along axis; CG_ALL_DIMS: flat index. */
CG_API cg_tensor *cg_argmax(cg_ctx *ctx, const cg_tensor *x, int axis, bool keepdim);
CG_API cg_tensor *cg_argmin(cg_ctx *ctx, const cg_tensor *x, int axis, bool keepdim);

/* ---- linear algebra ------------------------------------------------------------ */
/* torch.matmul's rules: 1-D x 1-D is a dot product; a 1-D operand gains a
 * dim of 1 (removed again from the result); N-D operands are batches of
 * matrices whose batch dims broadcast. Float dtypes, both the same. */
CG_API cg_tensor *cg_matmul(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);

#ifdef __cplusplus
}
#endif
#endif
