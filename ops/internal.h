/* Library-internal helpers shared by the op families in ops/ (not installed).
 *
 * An op is a `static const cg_op` beside its builder. The builder checks its
 * arguments, computes the forward with the raw kernels of tensor/, and hands
 * the result to cg_record with the inputs (and any scalars the backward
 * needs). The backward rule beside it is written with differentiable ops. */
#ifndef CG_OPS_INTERNAL_H
#define CG_OPS_INTERNAL_H

#include "../autograd/internal.h"
#include "ops.h"

/* Records op over inputs (an array literal) without saved bytes. */
#define CGI_RECORD(ctx, op, out, ...)                                                          \
    cg_record((ctx), (op), (out),                                                              \
              (int)(sizeof((const cg_tensor *[]){__VA_ARGS__}) / sizeof(cg_tensor *)),         \
              (const cg_tensor *[]){__VA_ARGS__}, NULL, 0)

/* PyTorch's promotion for cgrad's dtypes: i64 < f32 < f64. */
CGI_HIDDEN cg_dtype cgi_promote(cg_dtype a, cg_dtype b);
/* The gradient for input x from g of a broadcast shape and maybe another
 * dtype: g summed over the broadcast dims and cast to x's dtype. */
CGI_HIDDEN cg_tensor *cgi_grad_like(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x);
/* A float mask (1 where true) of x's comparison with a scalar, no graph;
 * name: the public function, for messages ("cg_backward" in backward rules). */
CGI_HIDDEN cg_tensor *cgi_compare_scalar(cg_ctx *ctx, const char *name,
                                         const cgi_binary_kernel *k, const cg_tensor *x,
                                         double s);
/* y = k(x), no graph: x's dtype, or f32 for an integer x the kernel lacks. */
CGI_HIDDEN cg_tensor *cgi_unary_forward(cg_ctx *ctx, const char *name,
                                        const cgi_unary_kernel *k, const cg_tensor *x);
/* The losses' common checks (ops/loss.c, nn/loss.c), each failure reported
 * under name: r is CG_MEAN, CG_SUM or CG_NONE, x (called xn) and y (yn) are
 * float, of one dtype and one shape. */
CGI_HIDDEN bool cgi_loss_pair_ok(cg_ctx *ctx, const char *name, const char *xn,
                                 const cg_tensor *x, const char *yn, const cg_tensor *y,
                                 cg_reduction r);
/* ctx NULL with an input that requires a gradient is CG_ERR_STATE (a graph
 * needs a context), checked before cg_record so that the message names the
 * function called (cg_cross_entropy_ex shares cross_entropy's descriptor;
 * the composed losses run in a temporary context). */
CGI_HIDDEN bool cgi_loss_ctx_ok(cg_ctx *ctx, const char *name, const cg_tensor *x,
                                const cg_tensor *y);
/* loss reduced by r: cg_mean or cg_sum over every axis, or loss itself (CG_NONE). */
CGI_HIDDEN cg_tensor *cgi_loss_reduce(cg_ctx *ctx, cg_tensor *loss, cg_reduction r);
/* The options of a convolution with nsp spatial dims, as cg_conv1d,
 * cg_conv2d and cg_conv_transpose2d check them, refused under fn (the
 * layers check theirs when made). */
CGI_HIDDEN bool cgi_conv_opts_ok(const char *fn, int nsp, bool transposed,
                                 const cg_conv_opts *o);
/* Whether node was made by cg_relu (whose rule is a mask: see
 * cgi_node_premask). */
CGI_HIDDEN bool cgi_is_relu(const cg_node *node);
/* Whether node is cg_conv2d_relu's (its rule takes premasking as ReLU's). */
CGI_HIDDEN bool cgi_is_conv2d_relu(const cg_node *node);
/* relu's backward g where x > 0, else 0, recorded (differentiable in g). */
CGI_HIDDEN cg_tensor *cgi_relu_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x);
/* max pooling's backward for 2x2 stride-2 windows of an input [N, C, H, W]
 * (xshape) from codes (cgi_max_pool_codes_ok's bytes): dx = g scattered,
 * recorded (differentiable in g); with mask (the pooled output), g only
 * where mask > 0, not recorded (a backward pass without a graph). */
CGI_HIDDEN cg_tensor *cgi_max_unpool2x2(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *codes,
                                        const int64_t *xshape, const cg_tensor *mask);
/* nn's Conv2d + ReLU: cg_conv2d_relu with errors naming cg_conv2d. With
 * pool, then 2x2 max pooling (stride 2, no padding): one op when the direct
 * kernels run the convolution (f32, 4-D input, in a context), the pool
 * taken from each image's planes in scratch so the convolution's output is
 * never written; otherwise the two ops (errors then name cg_max_pool2d). */
CGI_HIDDEN cg_tensor *cgi_conv2d_relu_layer(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w,
                                            const cg_tensor *b, const cg_conv_opts *opts,
                                            bool pool);
/* Where an elementwise rule of node n, not recorded, writes an input's
 * gradient: over n's output gradient g when the pass allows
 * (cgi_node_spare_gout), else a new tensor of like's dtype and shape. */
CGI_HIDDEN cg_tensor *cgi_grad_buffer(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                      const cg_tensor *like);
/* CG_OK when every input that needs a gradient got one. */
CGI_HIDDEN cg_status cgi_grads_made(const cg_node *node, cg_tensor *const *gin);

#endif
