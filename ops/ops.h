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

#include "../autograd/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- views (never copy; differentiable) ------------------------------------ */
/* View with a new shape; one dim may be -1. Fails (CG_ERR_SHAPE) when the
 * strides cannot express it; cg_reshape copies in that case instead. */
CG_API cg_tensor *cg_view(cg_ctx *ctx, const cg_tensor *t, int ndim, const int64_t *shape);
CG_API cg_tensor *cg_reshape(cg_ctx *ctx, const cg_tensor *t, int ndim, const int64_t *shape);
CG_API cg_tensor *cg_transpose(cg_ctx *ctx, const cg_tensor *t, int d0, int d1);
/* dims is a permutation of 0..ndim-1 (negative entries allowed). */
CG_API cg_tensor *cg_permute(cg_ctx *ctx, const cg_tensor *t, const int *dims);
/* Python's t[start:end:step] along dim; step > 0; start and end clamp like
 * Python's and may be negative. Use CG_END for "to the end". */
CG_API cg_tensor *cg_slice(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t start, int64_t end,
                           int64_t step);
/* length elements from start along dim; out of range is an error. */
CG_API cg_tensor *cg_narrow(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t start,
                            int64_t length);
/* Index one position of dim away: rank drops by one. */
CG_API cg_tensor *cg_select(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t index);
/* Broadcast to shape (stride 0 on expanded dims); -1 keeps a dim. */
CG_API cg_tensor *cg_expand(cg_ctx *ctx, const cg_tensor *t, int ndim, const int64_t *shape);
/* Drops dim if it has size 1 (no-op otherwise, as PyTorch); CG_ALL_DIMS drops all. */
CG_API cg_tensor *cg_squeeze(cg_ctx *ctx, const cg_tensor *t, int dim);
CG_API cg_tensor *cg_unsqueeze(cg_ctx *ctx, const cg_tensor *t, int dim);
/* Merges dims start..end (inclusive, negative allowed); copies if needed. */
CG_API cg_tensor *cg_flatten(cg_ctx *ctx, const cg_tensor *t, int start, int end);

/* ---- copies -------------------------------------------------------------- */
/* Returns t itself when already contiguous (no copy), else a C-order copy. */
CG_API cg_tensor *cg_contiguous(cg_ctx *ctx, const cg_tensor *t);
CG_API cg_tensor *cg_clone(cg_ctx *ctx, const cg_tensor *t);             /* always copies */
CG_API cg_tensor *cg_cast(cg_ctx *ctx, const cg_tensor *t, cg_dtype dt); /* copies */
/* ---- arithmetic (broadcasting, PyTorch dtype promotion) ------------------ */
CG_API cg_tensor *cg_add(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_sub(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_mul(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_div(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
/* a^b; the gradient for b is taken as 0 where a == 0. */
CG_API cg_tensor *cg_pow(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
/* Ties send half the gradient to each side, as PyTorch. */
CG_API cg_tensor *cg_maximum(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_minimum(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
/* x + s, x - s, s - x, x * s, x / s, x^p */
CG_API cg_tensor *cg_add_scalar(cg_ctx *ctx, const cg_tensor *x, double s);
CG_API cg_tensor *cg_sub_scalar(cg_ctx *ctx, const cg_tensor *x, double s);
CG_API cg_tensor *cg_rsub_scalar(cg_ctx *ctx, const cg_tensor *x, double s);
CG_API cg_tensor *cg_mul_scalar(cg_ctx *ctx, const cg_tensor *x, double s);
CG_API cg_tensor *cg_div_scalar(cg_ctx *ctx, const cg_tensor *x, double s);
CG_API cg_tensor *cg_pow_scalar(cg_ctx *ctx, const cg_tensor *x, double p);
CG_API cg_tensor *cg_neg(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_abs(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_sign(cg_ctx *ctx, const cg_tensor *x); /* gradient 0 */
/* Limits x to [lo, hi] (-INFINITY / INFINITY leave a side open); the
 * gradient passes where lo <= x <= hi. */
CG_API cg_tensor *cg_clamp(cg_ctx *ctx, const cg_tensor *x, double lo, double hi);
/* a where cond != 0, else b (all three broadcast); cond gets no gradient. */
CG_API cg_tensor *cg_where(cg_ctx *ctx, const cg_tensor *cond, const cg_tensor *a,
                           const cg_tensor *b);
/* Comparisons: 1 where true, 0 elsewhere, in the promoted dtype; no gradient. */
CG_API cg_tensor *cg_gt(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_lt(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_ge(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_le(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_eq(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
CG_API cg_tensor *cg_ne(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);

/* ---- math (float results; i64 input gives f32) ------------------------------ */
CG_API cg_tensor *cg_exp(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_log(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_log1p(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_sqrt(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_rsqrt(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_square(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_sin(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_cos(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_tanh(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_sigmoid(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_erf(cg_ctx *ctx, const cg_tensor *x);

/* ---- activations (float dtypes; relu also takes i64) ---------------------- */
CG_API cg_tensor *cg_relu(cg_ctx *ctx, const cg_tensor *x);
/* x for x > 0, slope * x otherwise (PyTorch default slope 0.01). */
CG_API cg_tensor *cg_leaky_relu(cg_ctx *ctx, const cg_tensor *x, double slope);
/* x for x > 0, alpha * (exp(x) - 1) otherwise (default alpha 1). */
CG_API cg_tensor *cg_elu(cg_ctx *ctx, const cg_tensor *x, double alpha);
/* x * Phi(x), the exact (erf) form. */
CG_API cg_tensor *cg_gelu(cg_ctx *ctx, const cg_tensor *x);
/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's approximate='tanh'. */
CG_API cg_tensor *cg_gelu_tanh(cg_ctx *ctx, const cg_tensor *x);
CG_API cg_tensor *cg_silu(cg_ctx *ctx, const cg_tensor *x); /* x * sigmoid(x) */
/* log(1 + exp(beta x)) / beta, and x itself where beta x > threshold
 * (defaults 1 and 20). */
CG_API cg_tensor *cg_softplus(cg_ctx *ctx, const cg_tensor *x, double beta, double threshold);
/* clamp to [lo, hi]; the gradient passes strictly inside (defaults -1, 1). */
CG_API cg_tensor *cg_hardtanh(cg_ctx *ctx, const cg_tensor *x, double lo, double hi);

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
/* Variance and standard deviation over axes, dividing by N - correction
 * (1: unbiased, PyTorch's default; 0: population). */
CG_API cg_tensor *cg_var(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes,
                         double correction, bool keepdim);
CG_API cg_tensor *cg_std(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes,
                         double correction, bool keepdim);
/* log(sum(exp(x))) over axes, computed stably (max subtracted first). */
CG_API cg_tensor *cg_logsumexp(cg_ctx *ctx, const cg_tensor *x, const int *axes, int naxes,
                               bool keepdim);
/* p-norm over axes: (sum |x|^p)^(1/p), p > 0 (2: Euclidean; INFINITY: max |x|).
 * The gradient at a zero norm is 0; the norm over no elements is 0 (INFINITY too). */
CG_API cg_tensor *cg_norm(cg_ctx *ctx, const cg_tensor *x, double p, const int *axes, int naxes,
                          bool keepdim);
/* i64 index of the first maximum along axis; CG_ALL_DIMS: flat index. */
CG_API cg_tensor *cg_argmax(cg_ctx *ctx, const cg_tensor *x, int axis, bool keepdim);
CG_API cg_tensor *cg_argmin(cg_ctx *ctx, const cg_tensor *x, int axis, bool keepdim);

/* ---- softmax and dropout ---------------------------------------------------------- */
/* Along axis; stable for logits of +-1e4 (the max is subtracted first). */
CG_API cg_tensor *cg_softmax(cg_ctx *ctx, const cg_tensor *x, int axis);
CG_API cg_tensor *cg_log_softmax(cg_ctx *ctx, const cg_tensor *x, int axis);
/* Training: zeroes each element with probability p (drawn from rng in C
 * order) and scales the rest by 1/(1-p); not training (or p == 0): returns a
 * view of x. p in [0, 1). */
CG_API cg_tensor *cg_dropout(cg_ctx *ctx, const cg_tensor *x, double p, bool training,
                             cg_rng *rng);

/* ---- joining and indexing ---------------------------------------------------------- */
/* n tensors of one dtype joined along an existing axis (shapes equal elsewhere). */
CG_API cg_tensor *cg_concat(cg_ctx *ctx, int n, const cg_tensor *const *xs, int axis);
/* n tensors of one shape and dtype stacked along a new axis. */
CG_API cg_tensor *cg_stack(cg_ctx *ctx, int n, const cg_tensor *const *xs, int axis);
/* x's slices at the positions in index (i64, 1-D) along axis. */
CG_API cg_tensor *cg_index_select(cg_ctx *ctx, const cg_tensor *x, int axis,
                                  const cg_tensor *index);
/* out[i][j][k] = x[index[i][j][k]][j][k] for axis 0 (torch.gather): index is
 * i64 of x's rank, no larger than x on the other axes. */
CG_API cg_tensor *cg_gather(cg_ctx *ctx, const cg_tensor *x, int axis, const cg_tensor *index);
/* Rows of weight [V, D] picked by indices (i64, any shape): [..., D]. The
 * gradient is scatter-added into weight's rows. */
CG_API cg_tensor *cg_embedding(cg_ctx *ctx, const cg_tensor *weight, const cg_tensor *indices);

/* ---- linear algebra ------------------------------------------------------------ */
/* torch.matmul's rules: 1-D x 1-D is a dot product; a 1-D operand gains a
 * dim of 1 (removed again from the result); N-D operands are batches of
 * matrices whose batch dims broadcast. Float dtypes, both the same. */
CG_API cg_tensor *cg_matmul(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
/* x W^T + b, PyTorch's F.linear: x [..., in], weight [out, in], bias [out] or
 * NULL; one GEMM with the bias as its initial C. */
CG_API cg_tensor *cg_linear(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *weight,
                            const cg_tensor *bias);

/* ---- fused losses ----------------------------------------------------------------- */
/* How a loss is reduced: the mean or sum over every element (or row, for
 * the class losses), or none (CG_NONE: per-element losses, [N] per sample
 * for the class losses). The composed losses (mse, l1, smooth_l1, huber,
 * cross_entropy_probs) are in nn/nn.h. With ctx NULL the loss is
 * caller-owned (an input that requires a gradient needs a context, as for
 * every op). */
typedef enum cg_reduction { CG_MEAN = 0, CG_SUM, CG_NONE } cg_reduction;

/* logits [N, C] (or [C]), labels i64 [N] (or []): fused log-softmax and NLL,
 * finite for logits of +-1e4. Labels of -100 are ignored (PyTorch's default
 * ignore_index); the mean is over the other rows (NaN when none is left). */
CG_API cg_tensor *cg_cross_entropy(cg_ctx *ctx, const cg_tensor *logits,
                                   const cg_tensor *labels, cg_reduction r);
#define CG_IGNORE_NONE INT64_MIN
/* With label smoothing in [0, 1] and an ignore_index (CG_IGNORE_NONE for
 * none; PyTorch's default is -100): ignored rows add nothing and the mean is
 * over the others. */
CG_API cg_tensor *cg_cross_entropy_ex(cg_ctx *ctx, const cg_tensor *logits,
                                      const cg_tensor *labels, cg_reduction r,
                                      double label_smoothing, int64_t ignore_index);
/* log_probs [N, C], labels i64 [N]; -100 is ignored, as above. */
CG_API cg_tensor *cg_nll_loss(cg_ctx *ctx, const cg_tensor *log_probs, const cg_tensor *labels,
                              cg_reduction r);
/* probs and target of one float dtype and shape (no broadcasting);
 * probabilities in [0, 1] (else CG_ERR_ARG); logs clamped at -100 as PyTorch. */
CG_API cg_tensor *cg_bce_loss(cg_ctx *ctx, const cg_tensor *probs, const cg_tensor *target,
                              cg_reduction r);
/* The stable form max(x, 0) - x y + log(1 + exp(-|x|)); same shape rules. */
CG_API cg_tensor *cg_bce_with_logits(cg_ctx *ctx, const cg_tensor *logits,
                                     const cg_tensor *target, cg_reduction r);

/* ---- convolution, pooling, padding, normalisation (NCHW) ---------------------
 * Layouts and argument meanings are PyTorch's torch.nn.functional ones.
 * Spatial options are per dim: [0] is H (or L for the 1-D ops), [1] W. */
typedef struct cg_conv_opts {
    int64_t stride[2];         /* >= 1 */
    int64_t padding[2];        /* zeros on both sides of each dim, >= 0 */
    int64_t dilation[2];       /* >= 1 */
    int64_t output_padding[2]; /* conv_transpose only: extra size on one side */
    int64_t groups;            /* divides in and out channels; in == groups: depthwise */
    bool same; /* padding "same" (stride 1 only): out size = in size, as PyTorch pads
                  (the odd extra on the end) */
} cg_conv_opts;
/* stride 1, padding 0, dilation 1, output_padding 0, groups 1. */
CG_API cg_conv_opts cg_conv_defaults(void);
/* x [N, C_in, L], w [C_out, C_in / groups, K], b [C_out] or NULL -> [N, C_out, L_out];
 * opts NULL: the defaults. */
CG_API cg_tensor *cg_conv1d(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w,
                            const cg_tensor *b, const cg_conv_opts *opts);
/* x [N, C_in, H, W], w [C_out, C_in / groups, KH, KW], b [C_out] or NULL. */
CG_API cg_tensor *cg_conv2d(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w,
                            const cg_tensor *b, const cg_conv_opts *opts);
/* relu(conv2d(x, w, b)) as one op, the ReLU applied while each image's
 * output is in cache (oneDNN's post-op; PyTorch's ConvReLU2d): the same
 * values and gradients (double backward too) without the separate pass
 * over the output. nn's Sequential uses it for a Conv2d followed by a ReLU. */
CG_API cg_tensor *cg_conv2d_relu(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w,
                                 const cg_tensor *b, const cg_conv_opts *opts);
/* The gradient of conv2d w.r.t. its input, as an op: x [N, C_in, H, W],
 * w [C_in, C_out / groups, KH, KW] (PyTorch's ConvTranspose2d layout), b [C_out]. */
CG_API cg_tensor *cg_conv_transpose2d(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w,
                                      const cg_tensor *b, const cg_conv_opts *opts);

typedef struct cg_pool_opts {
    int64_t kernel[2];   /* >= 1 */
    int64_t stride[2];   /* 0: the kernel size (PyTorch's stride=None) */
    int64_t padding[2];  /* at most half the kernel */
    int64_t dilation[2]; /* max pooling only; >= 1 */
    bool ceil_mode;
    bool count_include_pad; /* avg pooling: padded zeros count in the mean */
} cg_pool_opts;
/* kernel kh x kw (kw ignored by the 1-D ops), PyTorch's defaults otherwise:
 * stride = kernel, padding 0, dilation 1, ceil_mode false, count_include_pad
 * true. */
CG_API cg_pool_opts cg_pool_defaults(int64_t kh, int64_t kw);
/* x [N, C, H, W] (or [C, H, W]); f32, f64 or i64. indices (may be NULL)
 * receives an i64 tensor in ctx (ctx NULL: yours to free) of the output's
 * shape: each maximum's flat index in its input plane (h * W + w), as
 * PyTorch's return_indices (ties: the first; NaN wins its window). Second
 * order: zero almost everywhere in x (the indices are constants); the
 * backward, a scatter to the indices, is differentiable in the output
 * gradient (a gather), so gradient penalties through max pooling work. */
CG_API cg_tensor *cg_max_pool2d(cg_ctx *ctx, const cg_tensor *x, const cg_pool_opts *opts,
                                cg_tensor **indices);
CG_API cg_tensor *cg_max_pool1d(cg_ctx *ctx, const cg_tensor *x, const cg_pool_opts *opts,
                                cg_tensor **indices); /* x [N, C, L] */
/* f32, f64; the divisor at the borders and in ceil mode is PyTorch's. The
 * backward is an op (its transpose), itself differentiable: double backward. */
CG_API cg_tensor *cg_avg_pool2d(cg_ctx *ctx, const cg_tensor *x, const cg_pool_opts *opts);
CG_API cg_tensor *cg_avg_pool1d(cg_ctx *ctx, const cg_tensor *x, const cg_pool_opts *opts);
/* x [N, C, H, W] (or [C, H, W]) -> [N, C, out_h, out_w] (sizes >= 0),
 * PyTorch's adaptive bins [floor(i In / Out), ceil((i + 1) In / Out)). */
CG_API cg_tensor *cg_adaptive_avg_pool2d(cg_ctx *ctx, const cg_tensor *x, int64_t out_h,
                                         int64_t out_w);

typedef enum cg_pad_mode { CG_PAD_CONSTANT = 0, CG_PAD_REFLECT, CG_PAD_REPLICATE } cg_pad_mode;
/* PyTorch's F.pad: pad holds npad (even) sizes, last dim first: (left,
 * right) of the last dim, then (top, bottom) of the one before, ...;
 * sizes may be negative (crop); value is the constant (other modes: 0), which
 * must convert to x's dtype without overflow (as cg_masked_fill's).
 * Reflect and replicate pad 1, 2 or 3 trailing dims of an input of rank
 * npad / 2 + 1 or + 2, as PyTorch; reflect sizes are below the dim. Any
 * dtype; double backward (the backward is a crop or fold op). */
CG_API cg_tensor *cg_pad(cg_ctx *ctx, const cg_tensor *x, int npad, const int64_t *pad,
                         cg_pad_mode mode, double value);

/* F.batch_norm over x [N, C, ...]: per channel C. Training: batch statistics
 * (biased variance for the output) and, when given, running_mean and
 * running_var [C] updated in place with momentum (unbiased variance), as
 * PyTorch; eval: the running statistics (both required; no gradient flows
 * to them). weight, bias [C] or NULL. Every tensor has x's float dtype;
 * momentum in [0, 1], eps >= 0; training needs more than one value per
 * channel. The norms are composed of differentiable ops: gradients of any
 * order. */
CG_API cg_tensor *cg_batch_norm(cg_ctx *ctx, const cg_tensor *x, cg_tensor *running_mean,
                                cg_tensor *running_var, const cg_tensor *weight,
                                const cg_tensor *bias, bool training, double momentum,
                                double eps);
/* F.group_norm: x [N, C, ...], C split into groups; weight, bias [C] or NULL. */
CG_API cg_tensor *cg_group_norm(cg_ctx *ctx, const cg_tensor *x, int64_t groups,
                                const cg_tensor *weight, const cg_tensor *bias, double eps);
/* F.layer_norm over the last ndim dims, which must equal normalized_shape;
 * weight, bias of that shape or NULL. */
CG_API cg_tensor *cg_layer_norm(cg_ctx *ctx, const cg_tensor *x, int ndim,
                                const int64_t *normalized_shape, const cg_tensor *weight,
                                const cg_tensor *bias, double eps);

/* ---- sequence ops ---- */
/* Masks, structure, cumulative ops, scatter-adds, sorting and products for
 * sequence models, as PyTorch 1.13 defines them. Every op that returns a
 * float tensor is differentiable, and its backward is made of
 * differentiable ops, so gradients of any order work (cg_gradgradcheck)
 * for all of them: masked_fill, where_scalar, tril, triu, cumsum, cumprod,
 * flip, roll, repeat, split / chunk, scatter_add, index_add, the values of
 * sort and topk, outer, bmm and einsum. */

/* x compared with a number: 1 where true, 0 elsewhere, in x's dtype (an i64
 * x against a number that is not an integer is compared in f32 and gives
 * f32, as PyTorch promotes a Python float); no gradient. */
CG_API cg_tensor *cg_gt_scalar(cg_ctx *ctx, const cg_tensor *x, double s);
CG_API cg_tensor *cg_lt_scalar(cg_ctx *ctx, const cg_tensor *x, double s);
CG_API cg_tensor *cg_ge_scalar(cg_ctx *ctx, const cg_tensor *x, double s);
CG_API cg_tensor *cg_le_scalar(cg_ctx *ctx, const cg_tensor *x, double s);
CG_API cg_tensor *cg_eq_scalar(cg_ctx *ctx, const cg_tensor *x, double s);
CG_API cg_tensor *cg_ne_scalar(cg_ctx *ctx, const cg_tensor *x, double s);
/* value where mask is nonzero (NaN counts as true), x elsewhere; mask of
 * any dtype (a comparison's result) and x broadcast together (torch's
 * out-of-place masked_fill). x's dtype; a value that overflows it is
 * CG_ERR_ARG (an i64 x truncates fractions). The mask gets no gradient. */
CG_API cg_tensor *cg_masked_fill(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *mask,
                                 double value);
/* torch.where(cond, x, value): x where cond is nonzero, value elsewhere
 * (broadcast; the scalar on the other side is cg_masked_fill). x's dtype,
 * or f32 for an i64 x and a value that is not an integer. */
CG_API cg_tensor *cg_where_scalar(cg_ctx *ctx, const cg_tensor *cond, const cg_tensor *x,
                                  double value);
/* x [..., R, C] with the elements above diagonal (tril: col - row >
 * diagonal) or below it (triu: col - row < diagonal) of every matrix set to 0. */
CG_API cg_tensor *cg_tril(cg_ctx *ctx, const cg_tensor *x, int64_t diagonal);
CG_API cg_tensor *cg_triu(cg_ctx *ctx, const cg_tensor *x, int64_t diagonal);
/* Running sum and product along dim (a rank-0 x takes dim 0 or -1); f32
 * accumulates in double, i64 wraps. cumprod's gradient is exact with zeros
 * in x: one O(n) pass, or with CG_CREATE_GRAPH PyTorch's differentiable
 * O(n^2) form. */
CG_API cg_tensor *cg_cumsum(cg_ctx *ctx, const cg_tensor *x, int dim);
CG_API cg_tensor *cg_cumprod(cg_ctx *ctx, const cg_tensor *x, int dim);
/* A copy with the ndims dims listed (no repeats; none: a plain copy) reversed. */
CG_API cg_tensor *cg_flip(cg_ctx *ctx, const cg_tensor *x, const int *dims, int ndims);
/* Elements shifted by shifts[i] (either sign, wrapping) along dims[i],
 * i < n; a dim listed twice shifts by the sum. dims NULL: x rolled as one
 * flat line with the one shift (n == 1), as torch.roll without dims. */
CG_API cg_tensor *cg_roll(cg_ctx *ctx, const cg_tensor *x, const int64_t *shifts,
                          const int *dims, int n);
/* torch's Tensor.repeat: x tiled repeats[d] times along each dim d < ndim
 * (ndim >= x's rank; x gains leading dims of 1). Repeats >= 0. */
CG_API cg_tensor *cg_repeat(cg_ctx *ctx, const cg_tensor *x, int ndim, const int64_t *repeats);
/* Views of x along dim (differentiable, no copy). out receives them and the
 * count is returned; on error -1, out's entries untouched or NULL. In a
 * context the views belong to it; with ctx NULL each is yours to
 * cg_tensor_free (x may be freed first: a view keeps the storage), and x
 * must then be caller-owned and not require a gradient.
 * cg_split: pieces of split_size (the last one may be shorter; an empty dim
 * gives one empty piece); more than max_out pieces is CG_ERR_ARG.
 * cg_split_sizes: n pieces of the sizes given (summing to the dim's size);
 * out holds n. cg_chunk: pieces of ceil(size / chunks), so maybe fewer than
 * chunks, as torch.chunk (an empty dim: chunks empty pieces). */
CG_API int cg_split(cg_ctx *ctx, const cg_tensor *x, int64_t split_size, int dim,
                    cg_tensor **out, int max_out);
CG_API int cg_split_sizes(cg_ctx *ctx, const cg_tensor *x, const int64_t *sizes, int n, int dim,
                          cg_tensor **out);
CG_API int cg_chunk(cg_ctx *ctx, const cg_tensor *x, int chunks, int dim, cg_tensor **out,
                    int max_out);
/* A copy of x with src added at i64 index along dim; repeated indices add
 * up (in a fixed order: results do not depend on the thread count). Indices
 * out of range are CG_ERR_INDEX; src has x's dtype.
 * scatter_add: out[i][index[i][j]] += src[i][j] (dim 1): index, src and x
 * of one rank, index no larger than src, nor than x off dim (src may be
 * larger: its extra elements get zero gradient).
 * index_add: out[..., index[i], ...] += src[..., i, ...]: index 1-D (or
 * 0-d), src of x's shape with index's length along dim. */
CG_API cg_tensor *cg_scatter_add(cg_ctx *ctx, const cg_tensor *x, int dim,
                                 const cg_tensor *index, const cg_tensor *src);
CG_API cg_tensor *cg_index_add(cg_ctx *ctx, const cg_tensor *x, int dim, const cg_tensor *index,
                               const cg_tensor *src);
/* Sorted along dim (a rank-0 x takes dim 0 or -1): values (x's dtype,
 * differentiable: the gradient goes back to the source positions) and
 * indices (i64, their positions in x). Either pointer may be NULL when not
 * wanted. The sort is stable: equal values keep their order (as torch.sort
 * with stable=True); NaN sorts above every number, as PyTorch. In a context
 * both results belong to it, with ctx NULL to you. On error both are NULL. */
CG_API cg_status cg_sort(cg_ctx *ctx, const cg_tensor *x, int dim, bool descending,
                         cg_tensor **values, cg_tensor **indices);
/* The k largest (largest) or smallest along dim, sorted, 0 <= k <= size
 * (else CG_ERR_ARG). Ties go to the lower index (PyTorch leaves their order
 * unspecified); otherwise as cg_sort. */
CG_API cg_status cg_topk(cg_ctx *ctx, const cg_tensor *x, int64_t k, int dim, bool largest,
                         cg_tensor **values, cg_tensor **indices);
/* a [n], b [m] -> [n, m] = a_i b_j (dtypes promote as cg_mul). */
CG_API cg_tensor *cg_outer(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
/* torch.bmm: a [B, n, k] x b [B, k, m] -> [B, n, m], both 3-D with one
 * batch size (no broadcasting; cg_matmul broadcasts batch dims), one float
 * dtype; one batched GEMM. */
CG_API cg_tensor *cg_bmm(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b);
/* torch.einsum: "bij,bjk->bik" (labels a-z and A-Z, spaces ignored, "..."
 * for broadcast dims, a repeated label takes a diagonal, labels left out of
 * the output are summed; without "->" the output is the ellipsis then the
 * labels used once, in order A-Z, a-z). Dims of one label must agree or be
 * 1 (broadcast). Two or more operands need one float dtype. cg_einsum
 * takes one operand (b is then not read and must be NULL) or two;
 * cg_einsum_n any number up to 16, contracted left to right. Bad equations
 * are CG_ERR_ARG, size mismatches CG_ERR_SHAPE. */
CG_API cg_tensor *cg_einsum(cg_ctx *ctx, const char *equation, const cg_tensor *a,
                            const cg_tensor *b);
CG_API cg_tensor *cg_einsum_n(cg_ctx *ctx, const char *equation, int n,
                              const cg_tensor *const *operands);

/* ---- attention --------------------------------------------------------------- */
/* Options of cg_scaled_dot_product_attention; cg_attn_defaults() gives
 * PyTorch's: no mask, not causal, no dropout, scale 1 / sqrt(D). */
typedef struct cg_attn_opts {
    const cg_tensor *mask; /* NULL, or added to the scores (-inf blocks), dtype of q,
                              broadcastable to [..., Tq, Tk] */
    bool causal;           /* query i sees keys j <= i (Tq == Tk, else CG_ERR_SHAPE);
                              may be combined with a mask */
    double dropout;        /* on the attention weights, in [0, 1); needs rng when > 0 */
    cg_rng *rng;           /* dropout's generator (not read when dropout is 0) */
    double scale;          /* 0: 1 / sqrt(D); else finite and > 0 */
} cg_attn_opts;
CG_API cg_attn_opts cg_attn_defaults(void);
/* PyTorch's F.scaled_dot_product_attention: softmax(q k^T scale + mask) v.
 * q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv] with the same leading dims
 * (typically [B, H]), D >= 1; f32 or f64; any strides (a transpose of
 * [B, T, H, D] is read in place); opts NULL for the defaults. Result
 * [..., Tq, Dv]. A query whose keys are all masked gives NaN (softmax of
 * -inf), no keys at all (Tk = 0) zeros.
 * Fused (see ops/attention.c): scores are never held whole, the backward
 * recomputes them tile by tile, and 1 or N threads give the same bits.
 * Gradients of gradients work (a recorded backward uses the composite
 * matmul, softmax, matmul). With dropout > 0, or a mask that requires a
 * gradient, the composite runs instead: dropout's mask is drawn from rng
 * by cg_dropout over the [..., Tq, Tk] weights. */
CG_API cg_tensor *cg_scaled_dot_product_attention(cg_ctx *ctx, const cg_tensor *q,
                                                  const cg_tensor *k, const cg_tensor *v,
                                                  const cg_attn_opts *opts);

/* Sampling (no gradient; one cg_rng_uniform per sample, rows in order, so a
 * seed gives the same indices on every machine and thread count). */
/* torch.multinomial: n category indices per row of probs [V] or [B, V]
 * (f32, f64) -> i64 [n] or [B, n]. Rows are weights: finite, >= 0, not all
 * 0 (they need not sum to 1); else CG_ERR_ARG. Without replacement n <= V
 * and every row needs n categories of non-zero weight; n >= 1. */
CG_API cg_tensor *cg_multinomial(cg_ctx *ctx, const cg_tensor *probs, int64_t n,
                                 bool replacement, cg_rng *rng);
/* One index per row of logits [B, V] (or [V]) -> i64 [B] (or []): drawn
 * from softmax(logits / temperature) over the top_k largest logits (0: all;
 * more than V: all; values tied with the k-th are kept, as nanoGPT's
 * generate). temperature finite and > 0; top_k 1 gives the argmax. Logits
 * may be -inf (never drawn) but not NaN or +inf, and not all -inf. */
CG_API cg_tensor *cg_sample_logits(cg_ctx *ctx, const cg_tensor *logits, double temperature,
                                   int64_t top_k, cg_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
