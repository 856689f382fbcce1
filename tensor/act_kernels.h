/* Fused activation kernels below the graph (not installed).
 *
 * Each kernel computes out = f(x; p, q) in one pass, in x's float dtype,
 * with up to two scalar parameters p and q (slope, alpha, beta and
 * threshold, lo and hi; ignored by the kernels that take none). The
 * parameters ride as stride-0 operands of the shared ternary iterator, so
 * strided and broadcast inputs and threading come from cgi_map_ternary. */
#ifndef CG_ACT_KERNELS_H
#define CG_ACT_KERNELS_H

#include "internal.h"

typedef struct cgi_act_kernel {
    const char *name;
    cgi_ternary_fn fn[3]; /* indexed by cg_dtype; NULL for i64 */
} cgi_act_kernel;

/* p, q per kernel: leaky_relu (slope), elu (alpha), softplus (beta,
 * threshold), hardtanh (lo, hi); gelu, gelu_tanh and silu take none. */
#define CGI_ACT_LIST(X)                                                                        \
    X(leaky_relu) X(elu) X(gelu) X(gelu_tanh) X(silu) X(softplus) X(hardtanh)
#define CGI_DECLARE_ACT(name) extern CGI_HIDDEN const cgi_act_kernel cgi_act_##name;
CGI_ACT_LIST(CGI_DECLARE_ACT)
#undef CGI_DECLARE_ACT

/* out = k(x; p, q); x is f32 or f64 (the caller checks), out has x's dtype
 * and shape (x may be strided or broadcast to it). */
CGI_HIDDEN void cgi_map_act(const cgi_act_kernel *k, const cg_tensor *x, double p, double q,
                            cg_tensor *out);

#endif
