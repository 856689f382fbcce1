/* Activations: each op is a fused forward kernel and a backward rule in
 * differentiable ops. */
#include "internal.h"

/* relu: g where x > 0 (the gradient at 0 is 0, as PyTorch). */
static cg_status relu_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cg_tensor **gin) {
    const cg_tensor *x = cg_node_input(n, 0);
    gin[0] = cg_mul(ctx, g, cgi_compare_scalar(ctx, &cgi_binary_gt, x, 0));
    return cgi_grads_made(n, gin);
}
static const cg_op relu_op = {"relu", relu_backward, CG_SAVES_INPUT(0)};

cg_tensor *cg_relu(cg_ctx *ctx, const cg_tensor *x) {
    CGI_NULL_CHECK(x, "cg_relu");
    cg_tensor *y = cgi_new(ctx, "cg_relu", x->dtype, x->ndim, x->shape);
    if (y) cgi_map_unary(cgi_unary_relu.fn[x->dtype], x, y);
    return CGI_RECORD(ctx, &relu_op, y, x);
}
