/* The elementwise kernel bodies: 1-D loops over (n, pointer, stride) with a
 * contiguous fast path the compiler vectorises. <tgmath.h> picks expf for
 * float and exp for double, so each float op is written once. NaN goes
 * through every op as PyTorch does (relu, maximum and sign included). */
#include "fast_exp.h"
#include "internal.h"

#include <math.h>

/* glibc's vector math library (libmvec, reached through -lm) has SIMD
 * versions of these; declaring them `omp declare simd` lets the contiguous
 * loops below call 16 floats at a time instead of one (tanhf: 8.4 -> 0.4 ns
 * per element here) without -ffast-math, so NaN and inf keep their meaning.
 * The vector versions are accurate to a few ulp rather than one. */
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
float logf(float);
#pragma omp declare simd notinbranch
double log(double);
#pragma omp declare simd notinbranch
float log1pf(float);
#pragma omp declare simd notinbranch
double log1p(double);
#pragma omp declare simd notinbranch
float sinf(float);
#pragma omp declare simd notinbranch
double sin(double);
#pragma omp declare simd notinbranch
float cosf(float);
#pragma omp declare simd notinbranch
double cos(double);
#pragma omp declare simd notinbranch
float tanhf(float);
#pragma omp declare simd notinbranch
double tanh(double);
#pragma omp declare simd notinbranch
float erff(float);
#pragma omp declare simd notinbranch
double erf(double);

#include <tgmath.h> /* after the declarations: it makes exp & co. macros */

#define UNARY_FN(name, T, expr)                                                                \
    static void name(int64_t n, const void *x_, int64_t sx, void *o_, int64_t so) {            \
        const T *xs = x_;                                                                      \
        T *o = o_;                                                                             \
        if (sx == 1 && so == 1) {                                                              \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) {                              \
                T x = xs[i];                                                                   \
                o[i] = (T)(expr);                                                              \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                      \
            T x = xs[i * sx];                                                                  \
            o[i * so] = (T)(expr);                                                             \
        }                                                                                      \
    }

/* Fast paths: all contiguous, or one side a broadcast scalar (stride 0). */
#define BINARY_FN(name, T, expr)                                                               \
    static void name(int64_t n, const void *a_, int64_t sa, const void *b_, int64_t sb,        \
                     void *o_, int64_t so) {                                                   \
        const T *as = a_, *bs = b_;                                                            \
        T *o = o_;                                                                             \
        if (so == 1 && sa == 1 && sb == 1) {                                                   \
            for (int64_t i = 0; i < n; i++) {                                                  \
                T x = as[i], y = bs[i];                                                        \
                o[i] = (T)(expr);                                                              \
            }                                                                                  \
        } else if (so == 1 && sa == 1 && sb == 0) {                                            \
            T y = bs[0];                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                  \
                T x = as[i];                                                                   \
                o[i] = (T)(expr);                                                              \
            }                                                                                  \
        } else if (so == 1 && sa == 0 && sb == 1) {                                            \
            T x = as[0];                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                  \
                T y = bs[i];                                                                   \
                o[i] = (T)(expr);                                                              \
            }                                                                                  \
        } else {                                                                               \
            for (int64_t i = 0; i < n; i++) {                                                  \
                T x = as[i * sa], y = bs[i * sb];                                              \
                o[i * so] = (T)(expr);                                                         \
            }                                                                                  \
        }                                                                                      \
    }

/* A float op: f32 and f64 from one expression, no i64 version. */
#define FLOAT_UNARY(op, expr)                                                                  \
    UNARY_FN(op##_f32, float, expr)                                                            \
    UNARY_FN(op##_f64, double, expr)                                                           \
    const cgi_unary_kernel cgi_unary_##op = {#op, {op##_f32, op##_f64, NULL}};
/* An op defined for every dtype, with an integer expression for i64. */
#define ALL_UNARY(op, expr, iexpr)                                                             \
    UNARY_FN(op##_f32, float, expr)                                                            \
    UNARY_FN(op##_f64, double, expr)                                                           \
    UNARY_FN(op##_i64, int64_t, iexpr)                                                         \
    const cgi_unary_kernel cgi_unary_##op = {#op, {op##_f32, op##_f64, op##_i64}};
#define FLOAT_BINARY(op, expr)                                                                 \
    BINARY_FN(op##_f32, float, expr)                                                           \
    BINARY_FN(op##_f64, double, expr)                                                          \
    const cgi_binary_kernel cgi_binary_##op = {#op, {op##_f32, op##_f64, NULL}};
#define ALL_BINARY(op, expr)                                                                   \
    BINARY_FN(op##_f32, float, expr)                                                           \
    BINARY_FN(op##_f64, double, expr)                                                          \
    BINARY_FN(op##_i64, int64_t, expr)                                                         \
    const cgi_binary_kernel cgi_binary_##op = {#op, {op##_f32, op##_f64, op##_i64}};

ALL_UNARY(neg, -x, -(uint64_t)x) /* i64: wraps at INT64_MIN instead of UB */
ALL_UNARY(abs, fabs(x), x < 0 ? -(uint64_t)x : (uint64_t)x)
ALL_UNARY(sign, x > 0 ? 1 : (x < 0 ? -1 : x), (x > 0) - (x < 0))
ALL_UNARY(square, x *x, (uint64_t)x *(uint64_t)x)
ALL_UNARY(relu, x < 0 ? 0 : x, x < 0 ? 0 : x)
FLOAT_UNARY(exp, exp(x))
FLOAT_UNARY(log, log(x))
FLOAT_UNARY(log1p, log1p(x))
FLOAT_UNARY(sqrt, sqrt(x))
FLOAT_UNARY(rsqrt, 1 / sqrt(x))
FLOAT_UNARY(sin, sin(x))
FLOAT_UNARY(cos, cos(x))
FLOAT_UNARY(tanh, tanh(x))
FLOAT_UNARY(sigmoid, 1 / (1 + exp(-x)))
FLOAT_UNARY(erf, erf(x))
FLOAT_UNARY(recip, 1 / x)

/* i64 add/sub/mul wrap (two's complement) rather than overflow into UB. */
BINARY_FN(add_f32, float, x + y)
BINARY_FN(add_f64, double, x + y)
BINARY_FN(add_i64, int64_t, (uint64_t)x + (uint64_t)y)
BINARY_FN(sub_f32, float, x - y)
BINARY_FN(sub_f64, double, x - y)
BINARY_FN(sub_i64, int64_t, (uint64_t)x - (uint64_t)y)
BINARY_FN(mul_f32, float, x *y)
BINARY_FN(mul_f64, double, x *y)
BINARY_FN(mul_i64, int64_t, (uint64_t)x *(uint64_t)y)
const cgi_binary_kernel cgi_binary_add = {"add", {add_f32, add_f64, add_i64}};
const cgi_binary_kernel cgi_binary_sub = {"sub", {sub_f32, sub_f64, sub_i64}};
const cgi_binary_kernel cgi_binary_mul = {"mul", {mul_f32, mul_f64, mul_i64}};
FLOAT_BINARY(div, x / y)
FLOAT_BINARY(pow, pow(x, y))
ALL_BINARY(maximum, (x > y || x != x) ? x : y)
ALL_BINARY(minimum, (x < y || x != x) ? x : y)

/* Comparisons give 1 or 0 in the operands' dtype (masks for backward rules). */
ALL_BINARY(gt, x > y)
ALL_BINARY(lt, x < y)
ALL_BINARY(ge, x >= y)
ALL_BINARY(le, x <= y)
ALL_BINARY(eq, x == y)
ALL_BINARY(ne, x != y)

/* relu's backward: the gradient x where the input y > 0, else 0 (PyTorch's
 * threshold_backward: an infinite or NaN gradient does not leak through). */
ALL_BINARY(relu_grad, y > 0 ? x : 0)

/* GELU's derivative times the gradient x, at the input y: exact, Phi(y) + y
 * phi(y); tanh form, with t = tanh(k (y + c y^3)), (1 + t) / 2 + y (1 - t^2) k
 * (1 + 3 c y^2) / 2. The same functions as ops/activation.c's rules. */
static inline double gelu_d(double v) {
    return 0.5 * (1 + erf(v * 0.70710678118654752)) +
           v * exp(-0.5 * v * v) * 0.3989422804014327;
}
static inline double gelu_tanh_d(double v) {
    const double k = 0.7978845608028654, c = 0.044715;
    double t = tanh(k * (v + c * v * v * v));
    return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * c * v * v);
}
FLOAT_BINARY(gelu_grad, x *gelu_d(y))
/* The same in f32 with the vectorisable cgi_expf (libm's tanh is a call per
 * element): with s = sigmoid(2u), (1 + t) / 2 = s and 1 - t^2 = 4 s (1 - s). */
static inline float gelu_tanh_d_f32(float v) {
    const float k = 0.7978845608028654f, c = 0.044715f;
    float s = 1 / (1 + cgi_expf(-2 * k * (v + c * v * v * v)));
    return s + 2 * v * s * (1 - s) * k * (1 + 3 * c * v * v);
}
#define GELU_TANH_D(v) _Generic((v), float : gelu_tanh_d_f32, default : gelu_tanh_d)(v)
FLOAT_BINARY(gelu_tanh_grad, x *GELU_TANH_D(y))

#define WHERE_FN(name, T)                                                                      \
    static void name(int64_t n, const void *c_, int64_t sc, const void *a_, int64_t sa,        \
                     const void *b_, int64_t sb, void *o_, int64_t so) {                       \
        const T *c = c_, *a = a_, *b = b_;                                                     \
        T *o = o_;                                                                             \
        for (int64_t i = 0; i < n; i++) o[i * so] = c[i * sc] != 0 ? a[i * sa] : b[i * sb];    \
    }
WHERE_FN(where_f32, float)
WHERE_FN(where_f64, double)
WHERE_FN(where_i64, int64_t)
const cgi_ternary_fn cgi_where_fn[3] = {where_f32, where_f64, where_i64};

/* ---- converting copy ------------------------------------------------------------ */
/* Float to i64: cgi_f64_to_i64 (truncated, clamped, NaN to 0). */

UNARY_FN(copy_f32, float, x)
UNARY_FN(copy_f64, double, x)
UNARY_FN(copy_i64, int64_t, x)

#define CONVERT_FN(name, S, D, expr)                                                           \
    static void name(int64_t n, const void *x_, int64_t sx, void *o_, int64_t so) {            \
        const S *xs = x_;                                                                      \
        D *o = o_;                                                                             \
        for (int64_t i = 0; i < n; i++) {                                                      \
            S x = xs[i * sx];                                                                  \
            o[i * so] = (D)(expr);                                                             \
        }                                                                                      \
    }
CONVERT_FN(f32_to_f64, float, double, x)
CONVERT_FN(f32_to_i64, float, int64_t, cgi_f64_to_i64(x))
CONVERT_FN(f64_to_f32, double, float, x)
CONVERT_FN(f64_to_i64, double, int64_t, cgi_f64_to_i64(x))
CONVERT_FN(i64_to_f32, int64_t, float, x)
CONVERT_FN(i64_to_f64, int64_t, double, x)

/* [dst dtype][src dtype] */
static const cgi_unary_fn convert[3][3] = {
    {copy_f32, f64_to_f32, i64_to_f32},
    {f32_to_f64, copy_f64, i64_to_f64},
    {f32_to_i64, f64_to_i64, copy_i64},
};

void cgi_copy_convert(cg_tensor *dst, const cg_tensor *src) {
    cgi_map_unary(convert[dst->dtype][src->dtype], src, dst);
}
