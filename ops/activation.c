/* Activations: each op is a fused forward kernel and a backward rule in
 * differentiable ops. */
#include "internal.h"

#include "../tensor/act_kernels.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

/* relu: g where x > 0, else 0 (at 0 too, as PyTorch), one fused op,
 * relu_grad(g, x): one pass where a mask and a product took four. Linear in
 * g, so its own rule is itself, dg = relu_grad(h, x); x gets zeros (the
 * second derivative of relu is 0 almost everywhere). */
static const cg_op relu_grad_op;
static cg_tensor *relu_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x);
cg_tensor *cgi_relu_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x) {
    return relu_grad(ctx, g, x);
}
static cg_tensor *relu_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x) {
    if (!g || !x) return NULL;
    cg_tensor *out = cgi_new(ctx, "cg_backward", x->dtype, x->ndim, x->shape);
    if (out) cgi_map_binary(cgi_binary_relu_grad.fn[x->dtype], g, x, out);
    return CGI_RECORD(ctx, &relu_grad_op, out, g, x);
}
static cg_status relu_grad_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *h,
                                    cg_tensor **gin) {
    if (cg_node_needs_grad(n, 0)) gin[0] = relu_grad(ctx, h, cg_node_input(n, 1));
    if (cg_node_needs_grad(n, 1)) gin[1] = cg_zeros_like(ctx, cg_node_input(n, 1));
    return cgi_grads_made(n, gin);
}
static const cg_op relu_grad_op = {"relu_backward", relu_grad_backward, CG_SAVES_INPUT(1)};

/* Over g itself when the pass allows (cgi_grad_buffer): a ReLU CNN's
 * largest gradients then take no new memory. */
static cg_status relu_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cg_tensor **gin) {
    const cg_tensor *x = cg_node_input(n, 0);
    if (cgi_node_gout_premasked(n)) { /* masked already (max pooling's rule) */
        gin[0] = (cg_tensor *)g;
        return cgi_grads_made(n, gin);
    }
    if (cg_is_grad_enabled(ctx)) { /* CG_CREATE_GRAPH: recorded */
        gin[0] = relu_grad(ctx, g, x);
    } else if ((gin[0] = cgi_grad_buffer(ctx, n, g, x))) {
        cgi_map_binary(cgi_binary_relu_grad.fn[x->dtype], g, x, gin[0]);
    }
    return cgi_grads_made(n, gin);
}
static const cg_op relu_op = {"relu", relu_backward, CG_SAVES_INPUT(0)};

bool cgi_is_relu(const cg_node *node) { return node && cg_node_op(node) == &relu_op; }

cg_tensor *cg_relu(cg_ctx *ctx, const cg_tensor *x) {
    CGI_NULL_CHECK(x, "cg_relu");
    cg_tensor *y = cgi_new(ctx, "cg_relu", x->dtype, x->ndim, x->shape);
    if (y) cgi_map_unary(cgi_unary_relu.fn[x->dtype], x, y);
    return CGI_RECORD(ctx, &relu_op, y, x);
}

/* ---- the parameterised activations ------------------------------------------ */
/* An activation y = f(x; p, q) is its kernel (tensor/act_kernels.c) and a rule
 * giving the input's gradient from the output's gradient g, the saved x and y
 * and the parameters, in differentiable ops so double backward works. One
 * backward serves them all: the node's op is the first member of the
 * activation, so the op pointer leads back to the rule. */
typedef struct act_params {
    double p, q;
} act_params;

typedef cg_tensor *(*act_grad_fn)(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x,
                                  const cg_tensor *y, act_params a);

typedef struct activation {
    cg_op op; /* first */
    const cgi_act_kernel *kernel;
    act_grad_fn grad;
    const char *fn; /* the public function, for messages */
    /* NULL, or g f'(x) as one kernel (g, x), for a backward that is not
     * recorded: one pass where the rule's ops take several (GELU's take
     * ten, each a tensor of x's size). */
    const cgi_binary_kernel *fast_grad;
} activation;

static cg_status act_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    const activation *act = (const activation *)cg_node_op(n);
    const act_params *a = cg_node_saved(n);
    const cg_tensor *x = cg_node_input(n, 0);
    if (act->fast_grad && !cg_is_grad_enabled(ctx)) { /* over g when the pass allows */
        gin[0] = cgi_grad_buffer(ctx, n, g, x);
        if (gin[0]) cgi_map_binary(act->fast_grad->fn[x->dtype], g, x, gin[0]);
    } else {
        gin[0] = act->grad(ctx, g, x, cg_node_output(n), *a);
    }
    return cgi_grads_made(n, gin);
}

/* y = act(x; p, q) in x's dtype, recorded with p and q. */
static cg_tensor *activate(cg_ctx *ctx, const activation *act, const cg_tensor *x, double p,
                           double q) {
    const char *name = act->fn;
    CGI_NULL_CHECK(x, name);
    if (!cgi_is_float(x->dtype)) {
        cgi_error(ctx, CG_ERR_DTYPE, "%s: %s input: needs f32 or f64", name,
                  cg_dtype_name(x->dtype));
        return NULL;
    }
    cg_tensor *y = cgi_new(ctx, name, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    cgi_map_act(act->kernel, x, p, q, y);
    act_params a = {p, q};
    return cg_record(ctx, &act->op, y, 1, &x, &a, sizeof a);
}

/* false after reporting a bad parameter (CG_ERR_ARG) when !ok; a NULL x
 * passes, for activate to return NULL with the error that made it. */
static bool params_ok(cg_ctx *ctx, const cg_tensor *x, bool ok, const char *fmt, ...)
    CGI_PRINTF(4, 5);
static bool params_ok(cg_ctx *ctx, const cg_tensor *x, bool ok, const char *fmt, ...) {
    if (ok || !x) return true;
    char msg[CGI_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cgi_error(ctx, CG_ERR_ARG, "%s", msg);
    return false;
}

/* An activation whose one parameter (slope, alpha) must be finite. */
static cg_tensor *activate_finite(cg_ctx *ctx, const activation *act, const cg_tensor *x,
                                  const char *pname, double p) {
    if (!params_ok(ctx, x, isfinite(p), "cg_%s: needs a finite %s, got %g", act->op.name, pname,
                   p))
        return NULL;
    return activate(ctx, act, x, p, 0);
}

#define X CG_SAVES_INPUT(0)
#define Y CG_SAVES_OUTPUT
/* A mask (no graph) of x > s, or of x < s. */
#define GT(x, s) cgi_compare_scalar(ctx, "cg_backward", &cgi_binary_gt, (x), (s))
#define LT(x, s) cgi_compare_scalar(ctx, "cg_backward", &cgi_binary_lt, (x), (s))

/* leaky_relu: g where x > 0, slope g elsewhere (at 0 too, as PyTorch). */
static cg_tensor *leaky_relu_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x,
                                  const cg_tensor *y, act_params a) {
    (void)y;
    return cg_where(ctx, GT(x, 0), g, cg_mul_scalar(ctx, g, a.p));
}
static const activation leaky_relu_act = {{"leaky_relu", act_backward, X},
                                          &cgi_act_leaky_relu,
                                          leaky_relu_grad,
                                          "cg_leaky_relu",
                                          NULL};
cg_tensor *cg_leaky_relu(cg_ctx *ctx, const cg_tensor *x, double slope) {
    return activate_finite(ctx, &leaky_relu_act, x, "slope", slope);
}

/* elu: g where x > 0, else g alpha e^x = g (y + alpha); y + alpha is finite
 * everywhere, so a double backward through the unused branch of where never
 * meets 0 * inf as alpha exp(x) would for large x. */
static cg_tensor *elu_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x,
                           const cg_tensor *y, act_params a) {
    return cg_where(ctx, GT(x, 0), g, cg_mul(ctx, g, cg_add_scalar(ctx, y, a.p)));
}
static const activation elu_act = {
    {"elu", act_backward, X | Y}, &cgi_act_elu, elu_grad, "cg_elu", NULL};
cg_tensor *cg_elu(cg_ctx *ctx, const cg_tensor *x, double alpha) {
    return activate_finite(ctx, &elu_act, x, "alpha", alpha);
}

/* gelu: d/dx x Phi(x) = Phi(x) + x phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2
 * and phi(x) = e^(-x^2 / 2) / sqrt(2 pi). */
static cg_tensor *gelu_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x,
                            const cg_tensor *y, act_params a) {
    (void)y;
    (void)a;
    cg_tensor *cdf = cg_erf(ctx, cg_mul_scalar(ctx, x, 0.70710678118654752));
    cdf = cg_add_scalar(ctx, cg_mul_scalar(ctx, cdf, 0.5), 0.5);
    cg_tensor *pdf = cg_exp(ctx, cg_mul_scalar(ctx, cg_square(ctx, x), -0.5));
    pdf = cg_mul_scalar(ctx, pdf, 0.39894228040143268);
    return cg_mul(ctx, g, cg_add(ctx, cdf, cg_mul(ctx, x, pdf)));
}
static const activation gelu_act = {
    {"gelu", act_backward, X}, &cgi_act_gelu, gelu_grad, "cg_gelu", &cgi_binary_gelu_grad};
cg_tensor *cg_gelu(cg_ctx *ctx, const cg_tensor *x) {
    return activate(ctx, &gelu_act, x, 0, 0);
}

/* gelu_tanh: y = x s with s = sigmoid(2u), u = k (x + c x^3), k = sqrt(2/pi),
 * c = 0.044715 (as the kernel computes it), so
 * dy/dx = s + x s (1 - s) 2k (1 + 3c x^2). */
#define GELU_2K 1.5957691216057308
#define GELU_C  0.044715
static cg_tensor *gelu_tanh_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x,
                                 const cg_tensor *y, act_params a) {
    (void)y;
    (void)a;
    cg_tensor *x2 = cg_square(ctx, x);
    cg_tensor *two_u = cg_mul(ctx, cg_mul_scalar(ctx, x, GELU_2K),
                              cg_add_scalar(ctx, cg_mul_scalar(ctx, x2, GELU_C), 1));
    cg_tensor *s = cg_sigmoid(ctx, two_u);
    cg_tensor *du = cg_add_scalar(ctx, cg_mul_scalar(ctx, x2, 3 * GELU_C * GELU_2K), GELU_2K);
    cg_tensor *ds = cg_mul(ctx, s, cg_rsub_scalar(ctx, s, 1));
    return cg_mul(ctx, g, cg_add(ctx, s, cg_mul(ctx, cg_mul(ctx, x, du), ds)));
}
static const activation gelu_tanh_act = {{"gelu_tanh", act_backward, X},
                                         &cgi_act_gelu_tanh,
                                         gelu_tanh_grad,
                                         "cg_gelu_tanh",
                                         &cgi_binary_gelu_tanh_grad};
cg_tensor *cg_gelu_tanh(cg_ctx *ctx, const cg_tensor *x) {
    return activate(ctx, &gelu_tanh_act, x, 0, 0);
}

/* silu: d/dx x s = s + x s (1 - s) = s + y (1 - s), s = sigmoid(x). */
static cg_tensor *silu_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x,
                            const cg_tensor *y, act_params a) {
    (void)a;
    cg_tensor *s = cg_sigmoid(ctx, x);
    return cg_mul(ctx, g, cg_add(ctx, s, cg_mul(ctx, y, cg_rsub_scalar(ctx, s, 1))));
}
static const activation silu_act = {
    {"silu", act_backward, X | Y}, &cgi_act_silu, silu_grad, "cg_silu", NULL};
cg_tensor *cg_silu(cg_ctx *ctx, const cg_tensor *x) {
    return activate(ctx, &silu_act, x, 0, 0);
}

/* softplus: g sigmoid(beta x), and g where the forward was linear. beta x is
 * computed as the kernel does, so the mask picks the same elements. */
static cg_tensor *softplus_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x,
                                const cg_tensor *y, act_params a) {
    (void)y;
    cg_tensor *z = cg_mul_scalar(ctx, x, a.p);
    return cg_where(ctx, GT(z, a.q), g, cg_mul(ctx, g, cg_sigmoid(ctx, z)));
}
static const activation softplus_act = {
    {"softplus", act_backward, X}, &cgi_act_softplus, softplus_grad, "cg_softplus", NULL};
cg_tensor *cg_softplus(cg_ctx *ctx, const cg_tensor *x, double beta, double threshold) {
    if (!params_ok(ctx, x, beta > 0 && isfinite(beta) && !isnan(threshold),
                   "cg_softplus: needs a finite beta > 0 and a threshold that is not NaN, "
                   "got beta %g, threshold %g",
                   beta, threshold))
        return NULL;
    return activate(ctx, &softplus_act, x, beta, threshold);
}

/* hardtanh: g strictly inside (lo, hi), 0 at the edges and beyond, as PyTorch. */
static cg_tensor *hardtanh_grad(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x,
                                const cg_tensor *y, act_params a) {
    (void)y;
    return cg_mul(ctx, g, cg_mul(ctx, GT(x, a.p), LT(x, a.q)));
}
static const activation hardtanh_act = {
    {"hardtanh", act_backward, X}, &cgi_act_hardtanh, hardtanh_grad, "cg_hardtanh", NULL};
cg_tensor *cg_hardtanh(cg_ctx *ctx, const cg_tensor *x, double lo, double hi) {
    if (!params_ok(ctx, x, lo <= hi, "cg_hardtanh: needs lo <= hi, got lo %g, hi %g", lo, hi))
        return NULL;
    return activate(ctx, &hardtanh_act, x, lo, hi);
}
