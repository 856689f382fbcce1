/* Fused activation kernels: one pass, computed in the tensor's dtype
 * (<tgmath.h> picks erfcf or erfc from the argument), written so that no
 * intermediate overflows into inf - inf or 0 * inf for large |x|. */
#include "act_kernels.h"
#include "fast_exp.h"

#include <tgmath.h>

/* exp in the element's type: the vectorisable cgi_expf for f32 (within 2
 * ulp; glibc's expf is a call per element), libm's exp for f64. */
#define EXP_OF(x) _Generic((x), float : cgi_expf, default : exp)(x)

/* The loop over one row. Called with literal unit strides for contiguous
 * rows, so that inlined copy vectorises where the expression allows. expr
 * reads x, p and q, and names the element type `real` (constants are cast
 * to it so that f32 stays f32). */
#define ACT_ROW(name, T, expr)                                                                 \
    static inline void name##_row(int64_t n, const T *xs, int64_t sx, T p, T q, T *o,          \
                                  int64_t so) {                                                \
        (void)p;                                                                               \
        (void)q;                                                                               \
        typedef T real;                                                                        \
        for (int64_t i = 0; i < n; i++) {                                                      \
            real x = xs[i * sx];                                                               \
            o[i * so] = (real)(expr);                                                          \
        }                                                                                      \
    }                                                                                          \
    static void name(int64_t n, const void *x, int64_t sx, const void *p, int64_t sp,          \
                     const void *q, int64_t sq, void *o, int64_t so) {                         \
        (void)sp; /* p and q are stride-0 scalars */                                           \
        (void)sq;                                                                              \
        T pv = *(const T *)p, qv = *(const T *)q;                                              \
        if (sx == 1 && so == 1)                                                                \
            name##_row(n, x, 1, pv, qv, o, 1);                                                 \
        else                                                                                   \
            name##_row(n, x, sx, pv, qv, o, so);                                               \
    }

#define ACT(op, expr)                                                                          \
    ACT_ROW(op##_f32, float, expr)                                                             \
    ACT_ROW(op##_f64, double, expr)                                                            \
    const cgi_act_kernel cgi_act_##op = {#op, {op##_f32, op##_f64, NULL}};

/* NaN goes through every kernel (every comparison with it is false). */
ACT(leaky_relu, x > 0 ? x : x * p)
/* expm1 keeps alpha (e^x - 1) accurate for x near 0. */
ACT(elu, x > 0 ? x : p * expm1(x))
/* x Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2: no 1 + erf cancellation in
 * the left tail, and erfc saturates at 0 and 2. */
ACT(gelu, (real)0.5 * x * erfc((real)-0.70710678118654752 * x))
/* 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3):
 * the same value without 1 + tanh cancelling; for x -> -inf, x / inf = -0. */
ACT(gelu_tanh, x / (1 + EXP_OF((real)-1.5957691216057308 * x * (1 + (real)0.044715 * x * x))))
/* x sigmoid(x); where exp(-x) overflows (x < -88 in f32, -709 in f64) the
 * result is -0, within 1e-36 of the true value. */
ACT(silu, x / (1 + EXP_OF(-x)))
/* log(1 + e^z) / beta with z = beta x, as max(z, 0) + log1p(e^-|z|) so e^z
 * never overflows; x itself where z > threshold, as PyTorch. */
ACT(softplus, (x * p) > q ? x : ((x * p > 0 ? x * p : 0) + log1p(exp(-fabs(x * p)))) / p)
ACT(hardtanh, x < p ? p : (x > q ? q : x))

void cgi_map_act(const cgi_act_kernel *k, const cg_tensor *x, double p, double q,
                 cg_tensor *out) {
    cg_tensor pt, qt;
    cgi_storage ps, qs;
    cgi_scalar pv, qv;
    cgi_map_ternary(k->fn[x->dtype], x, cgi_stack_scalar(&pt, &ps, &pv, x->dtype, p),
                    cgi_stack_scalar(&qt, &qs, &qv, x->dtype, q), out);
}
