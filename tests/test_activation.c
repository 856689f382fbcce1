/* Activations: values against the formulas in double (large magnitudes
 * included), float64 gradcheck on plain, transposed and broadcast inputs,
 * gradgradcheck, float32 against float64, saved tensors, and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "testutil.h"

/* ---- the activations under test, with their parameters fixed -------------- */
static cg_tensor *relu(cg_ctx *c, const cg_tensor *x) { return cg_relu(c, x); }
static cg_tensor *leaky(cg_ctx *c, const cg_tensor *x) { return cg_leaky_relu(c, x, 0.1); }
static cg_tensor *elu(cg_ctx *c, const cg_tensor *x) { return cg_elu(c, x, 1.3); }
static cg_tensor *gelu(cg_ctx *c, const cg_tensor *x) { return cg_gelu(c, x); }
static cg_tensor *gelu_tanh(cg_ctx *c, const cg_tensor *x) { return cg_gelu_tanh(c, x); }
static cg_tensor *silu(cg_ctx *c, const cg_tensor *x) { return cg_silu(c, x); }
/* beta 2, threshold 3: linear for x > 1.5 */
static cg_tensor *softplus(cg_ctx *c, const cg_tensor *x) { return cg_softplus(c, x, 2, 3); }
static cg_tensor *hardtanh(cg_ctx *c, const cg_tensor *x) { return cg_hardtanh(c, x, -1, 1.5); }

/* The textbook (PyTorch) formulas, in double. */
static double sigmoid_ref(double v) {
    return v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v));
}
static double relu_ref(double v) { return v > 0 ? v : 0; }
static double leaky_ref(double v) { return v > 0 ? v : 0.1 * v; }
static double elu_ref(double v) { return v > 0 ? v : 1.3 * (exp(v) - 1); }
static double gelu_ref(double v) { return 0.5 * v * (1 + erf(v / sqrt(2))); }
static double gelu_tanh_ref(double v) {
    return 0.5 * v * (1 + tanh(0.79788456080286536 * (v + 0.044715 * v * v * v)));
}
static double silu_ref(double v) { return v * sigmoid_ref(v); }
static double softplus_ref(double v) { return 2 * v > 3 ? v : log(1 + exp(2 * v)) / 2; }
static double hardtanh_ref(double v) { return fmin(fmax(v, -1), 1.5); }

typedef cg_tensor *(*act_fn)(cg_ctx *, const cg_tensor *);
typedef struct act_case {
    const char *name;
    act_fn f;
    double (*ref)(double);
    double kinks[2]; /* where the derivative jumps; NAN: none */
} act_case;

static const act_case CASES[] = {
    {"relu", relu, relu_ref, {0, NAN}},
    {"leaky_relu", leaky, leaky_ref, {0, NAN}},
    {"elu", elu, elu_ref, {0, NAN}},
    {"gelu", gelu, gelu_ref, {NAN, NAN}},
    {"gelu_tanh", gelu_tanh, gelu_tanh_ref, {NAN, NAN}},
    {"silu", silu, silu_ref, {NAN, NAN}},
    {"softplus", softplus, softplus_ref, {1.5, NAN}},
    {"hardtanh", hardtanh, hardtanh_ref, {-1, 1.5}},
};
#define NCASES (sizeof CASES / sizeof CASES[0])

static cg_tensor *call(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return ((const act_case *)user)->f(ctx, in[0]);
}

/* |got - want| <= atol + rtol |want|, with the case and point in the message. */
static void assert_close(const char *what, double at, double got, double want, double rtol,
                         double atol) {
    if (!(fabs(got - want) <= atol + rtol * fabs(want)))
        fail_msg("%s(%g): got %.17g, want %.17g", what, at, got, want);
}

/* Moves every value of a contiguous f64 or f32 tensor at least 0.02 away
 * from the case's kinks, so finite differences never straddle one. */
static void away_from_kinks(cg_tensor *t, const act_case *c) {
    int64_t n = cg_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v =
            cg_dtype_of(t) == CG_F64 ? ((double *)cg_data(t))[i] : ((float *)cg_data(t))[i];
        for (int k = 0; k < 2; k++)
            if (!isnan(c->kinks[k]) && fabs(v - c->kinks[k]) < 0.02)
                v = c->kinks[k] + (v < c->kinks[k] ? -0.02 : 0.02);
        if (cg_dtype_of(t) == CG_F64)
            ((double *)cg_data(t))[i] = v;
        else
            ((float *)cg_data(t))[i] = (float)v;
    }
}

/* A caller-owned f64 leaf [rows, cols] of N(0, 1.5) values away from kinks;
 * transposed: a heap view of a [cols, rows] base that requires no gradient
 * (so the view is a leaf). */
static cg_tensor *random_leaf(cg_rng *rng, const act_case *c, int64_t rows, int64_t cols,
                              bool transposed) {
    const int64_t shape[2] = {transposed ? cols : rows, transposed ? rows : cols};
    cg_tensor *x = cg_randn(NULL, rng, CG_F64, 2, shape, 0, 1.5);
    away_from_kinks(x, c);
    if (transposed) {
        cg_tensor *base = x;
        x = cg_transpose(NULL, base, 0, 1);
        cg_tensor_free(base); /* the view keeps the storage */
        assert_false(cg_is_contiguous(x));
    }
    assert_int_equal(cg_set_requires_grad(x, true), CG_OK);
    return x;
}

/* ---- values ------------------------------------------------------------------ */
static const double POINTS[] = {-1e4, -30, -3,  -1,  -0.5, -1e-3, 0,  1e-3,
                                0.5,  1,   1.4, 1.6, 3,    30,    1e4};
#define NPOINTS (sizeof POINTS / sizeof POINTS[0])

static void test_activation_values_match_formulas(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(NPOINTS), POINTS);
    for (size_t c = 0; c < NCASES; c++) {
        double got[NPOINTS];
        assert_int_equal(cg_copy_to_array(CASES[c].f(ctx, x), CG_F64, got), CG_OK);
        for (size_t i = 0; i < NPOINTS; i++)
            assert_close(CASES[c].name, POINTS[i], got[i], CASES[c].ref(POINTS[i]), 1e-13,
                         1e-15);
    }
}

/* The ends of the range stay finite in both dtypes, and the tails are right:
 * where the naive formula overflows or cancels, the kernel must not. */
static void test_activation_large_magnitudes_stay_finite(void **state) {
    cg_ctx *ctx = *state;
    const double v[] = {-1e4, -100, -30, 30, 100, 1e4};
    for (int dt = CG_F32; dt <= CG_F64; dt++) {
        cg_tensor *x = cg_cast(ctx, cg_from_array(ctx, CG_F64, CG_SHAPE(6), v), dt);
        for (size_t c = 0; c < NCASES; c++) {
            double got[6];
            assert_int_equal(cg_copy_to_array(CASES[c].f(ctx, x), CG_F64, got), CG_OK);
            for (int i = 0; i < 6; i++)
                if (!isfinite(got[i])) fail_msg("%s(%g) = %g", CASES[c].name, v[i], got[i]);
        }
    }
    /* softplus with no linear region: log(1 + e^1e4) would be inf */
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(3), (double[]){-1e4, 0, 1e4});
    assert_values(cg_softplus(ctx, x, 1, INFINITY), (double[]){0, log(2), 1e4}, 3, 1e-12);
    assert_values(cg_softplus(ctx, x, 0.5, INFINITY), (double[]){0, 2 * log(2), 1e4}, 3, 1e-12);
    /* gelu's left tail: x Phi(x) = x erfc(-x / sqrt 2) / 2, no 1 + erf cancellation */
    double g;
    assert_int_equal(cg_copy_to_array(cg_gelu(ctx, cg_scalar(ctx, CG_F64, -10)), CG_F64, &g),
                     CG_OK);
    assert_close("gelu", -10, g, -5 * erfc(10 / sqrt(2)), 1e-12, 0);
    assert_true(g < 0);
}

/* Non-contiguous and broadcast inputs go through the strided kernel paths. */
static void test_activation_strided_and_broadcast_values(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 5);
    cg_tensor *base = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(4, 3), 0, 2);
    cg_tensor *xt = cg_transpose(ctx, base, 0, 1); /* [3,4], strides (1,3) */
    cg_tensor *row = cg_from_array(ctx, CG_F64, CG_SHAPE(4), (double[]){-2, -0.25, 0.75, 3});
    cg_tensor *xb = cg_expand(ctx, row, CG_SHAPE(3, 4)); /* stride 0 on dim 0 */
    assert_false(cg_is_contiguous(xt));
    for (size_t c = 0; c < NCASES; c++) {
        cg_tensor *yt = CASES[c].f(ctx, xt), *yb = CASES[c].f(ctx, xb);
        for (int64_t i = 0; i < 3; i++)
            for (int64_t j = 0; j < 4; j++) {
                double v, got;
                cg_get(xt, (int64_t[]){i, j}, &v);
                cg_get(yt, (int64_t[]){i, j}, &got);
                assert_close(CASES[c].name, v, got, CASES[c].ref(v), 1e-13, 1e-15);
                cg_get(xb, (int64_t[]){i, j}, &v);
                cg_get(yb, (int64_t[]){i, j}, &got);
                assert_close(CASES[c].name, v, got, CASES[c].ref(v), 1e-13, 1e-15);
            }
    }
}

/* ---- gradients ------------------------------------------------------------------ */
typedef enum { PLAIN, TRANSPOSED, BROADCAST } layout;

/* act(expand(v)) + w: the activation reads a stride-0 input, and its
 * gradient is summed back over the broadcast rows. */
static cg_tensor *call_broadcast(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    cg_tensor *xb = cg_expand(ctx, in[0], CG_SHAPE(3, 4));
    return cg_add(ctx, ((const act_case *)user)->f(ctx, xb), in[1]);
}

/* gradcheck (second: gradgradcheck) of every activation on [3,4] inputs in
 * each layout: plain, a transposed view, and a broadcast (expanded) input.
 * Away from the kinks the second derivatives are smooth for gelu,
 * gelu_tanh, silu, softplus and elu, and 0 for the piecewise linear ones. */
static void check_all_layouts(uint64_t seed, bool second) {
    static const char *const NAMES[] = {"plain", "transposed", "broadcast"};
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    for (layout l = PLAIN; l <= BROADCAST; l++)
        for (size_t c = 0; c < NCASES; c++) {
            cg_tensor *in[2] = {NULL, NULL};
            if (l == BROADCAST) {
                in[0] = random_leaf(&rng, &CASES[c], 1, 4, false);
                in[1] = random_leaf(&rng, &CASES[c], 3, 1, false);
            } else {
                in[0] = random_leaf(&rng, &CASES[c], 3, 4, l == TRANSPOSED);
            }
            cg_fn fn = l == BROADCAST ? call_broadcast : call;
            int n = l == BROADCAST ? 2 : 1;
            cg_gradcheck_report r;
            bool ok = second ? cg_gradgradcheck(fn, (void *)&CASES[c], n, in, NULL, &r)
                             : cg_gradcheck(fn, (void *)&CASES[c], n, in, NULL, &r);
            cg_tensor_free(in[0]);
            cg_tensor_free(in[1]);
            if (!ok) fail_msg("%s, %s input: %s", CASES[c].name, NAMES[l], r.msg);
        }
}

static void test_activation_gradcheck_all_layouts(void **state) {
    (void)state;
    check_all_layouts(21, false);
}

static void test_activation_gradgradcheck_all_layouts(void **state) {
    (void)state;
    check_all_layouts(22, true);
}

/* First and second derivatives at +-30 and +-1e4 are finite: no 0 * inf
 * through an unused branch of where, no inf - inf. */
static void test_activation_large_magnitudes_finite_gradients(void **state) {
    cg_ctx *ctx = *state;
    const double v[] = {-1e4, -30, 30, 1e4};
    for (int dt = CG_F32; dt <= CG_F64; dt++)
        for (size_t c = 0; c < NCASES; c++) {
            cg_tensor *x = cg_cast(ctx, cg_from_array(ctx, CG_F64, CG_SHAPE(4), v), dt);
            cg_set_requires_grad(x, true);
            cg_tensor *y = cg_sum(ctx, CASES[c].f(ctx, x), NULL, 0, false), *g1, *g2;
            assert_int_equal(cg_grad(ctx, 1, &y, NULL, 1, &x, &g1, CG_CREATE_GRAPH), CG_OK);
            cg_tensor *s = cg_sum(ctx, g1, NULL, 0, false);
            double d1[4], d2[4] = {0};
            cg_copy_to_array(g1, CG_F64, d1);
            if (cg_requires_grad(s)) { /* not so for relu: its slope is a mask */
                assert_int_equal(cg_grad(ctx, 1, &s, NULL, 1, &x, &g2, 0), CG_OK);
                cg_copy_to_array(g2, CG_F64, d2);
            }
            for (int i = 0; i < 4; i++)
                if (!isfinite(d1[i]) || !isfinite(d2[i]))
                    fail_msg("%s %s at %g: dy/dx %g, d2y/dx2 %g", CASES[c].name,
                             cg_dtype_name(dt), v[i], d1[i], d2[i]);
            cg_ctx_reset(ctx);
        }
}

/* relu's backward is PyTorch's threshold_backward: the output's gradient
 * where x > 0, else exactly 0, even for an infinite or NaN gradient (a mask
 * times the gradient would give NaN there). It is an op of its own, linear in
 * the gradient: differentiating through it gives the same mask. */
static void test_activation_relu_backward_masks(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(4), (double[]){-1, 0, 2, 3});
    cg_tensor *gy = cg_from_array(ctx, CG_F64, CG_SHAPE(4), (double[]){INFINITY, NAN, 5, -1});
    cg_set_requires_grad(x, true);
    cg_set_requires_grad(gy, true);
    cg_tensor *y = cg_relu(ctx, x), *gx, *gg;
    const cg_tensor *gys[1] = {gy};
    assert_int_equal(cg_grad(ctx, 1, &y, gys, 1, &x, &gx, CG_CREATE_GRAPH), CG_OK);
    assert_values(gx, (double[]){0, 0, 5, -1}, 4, 0);
    cg_tensor *s = cg_sum(ctx, gx, NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &s, NULL, 1, &gy, &gg, 0), CG_OK);
    assert_values(gg, (double[]){0, 0, 1, 1}, 4, 0);
}

/* GELU's plain backward is one kernel (g f'(x)), its recorded one the rule
 * in ops: both give the same gradient, in f64 and f32, on a transposed x. */
static void test_activation_gelu_fused_and_recorded_agree(void **state) {
    cg_ctx *ctx = *state;
    for (int tanh_form = 0; tanh_form < 2; tanh_form++)
        for (int dt = CG_F32; dt <= CG_F64; dt++) {
            cg_rng rng = seeded(11);
            cg_tensor *x0 = cg_randn(NULL, &rng, (cg_dtype)dt, CG_SHAPE(5, 7), 0, 3);
            cg_set_requires_grad(x0, true);
            cg_tensor *x = cg_transpose(ctx, x0, 0, 1), *g1, *g2;
            cg_tensor *y = tanh_form ? cg_gelu_tanh(ctx, x) : cg_gelu(ctx, x);
            cg_tensor *l = cg_sum(ctx, cg_mul(ctx, y, cg_cos(ctx, x)), NULL, 0, false);
            assert_int_equal(cg_grad(ctx, 1, &l, NULL, 1, &x0, &g1, CG_RETAIN_GRAPH), CG_OK);
            assert_int_equal(cg_grad(ctx, 1, &l, NULL, 1, &x0, &g2, CG_CREATE_GRAPH), CG_OK);
            double d = cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, g1, g2)), NULL, 0, false));
            if (!(d < (dt == CG_F32 ? 1e-5 : 1e-12)))
                fail_msg("%s %s: fused and recorded differ by %g",
                         tanh_form ? "gelu_tanh" : "gelu", cg_dtype_name(dt), d);
            cg_ctx_reset(ctx);
            cg_tensor_free(x0);
        }
}

/* Known slopes: PyTorch's conventions at the kinks. */
static void test_activation_gradient_at_kinks(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(5), (double[]){-1, 0, 1.5, 2, -2});
    cg_set_requires_grad(x, true);
    cg_tensor *g;
    cg_tensor *y = cg_sum(ctx, cg_hardtanh(ctx, x, -1, 1.5), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &y, NULL, 1, &x, &g, 0), CG_OK);
    assert_values(g, (double[]){0, 1, 0, 0, 0}, 5, 0); /* strictly inside only */
    y = cg_sum(ctx, cg_leaky_relu(ctx, x, 0.2), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &y, NULL, 1, &x, &g, 0), CG_OK);
    assert_values(g, (double[]){0.2, 0.2, 1, 1, 0.2}, 5, 0);    /* slope at 0 */
    y = cg_sum(ctx, cg_softplus(ctx, x, 2, 3), NULL, 0, false); /* linear above 1.5 */
    assert_int_equal(cg_grad(ctx, 1, &y, NULL, 1, &x, &g, 0), CG_OK);
    assert_values(g, (double[]){sigmoid_ref(-2), 0.5, sigmoid_ref(3), 1, sigmoid_ref(-4)}, 5,
                  1e-15);
    y = cg_sum(ctx, cg_elu(ctx, x, 1.3), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &y, NULL, 1, &x, &g, 0), CG_OK);
    assert_values(g, (double[]){1.3 * exp(-1), 1.3, 1, 1, 1.3 * exp(-2)}, 5, 1e-15);
}

/* f32 forward and backward agree with f64 on the same values. */
static void test_activation_f32_matches_f64(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 25);
    for (size_t c = 0; c < NCASES; c++) {
        cg_tensor *x32 = cg_randn(ctx, &rng, CG_F32, CG_SHAPE(3, 4), 0, 2);
        away_from_kinks(x32, &CASES[c]);
        cg_tensor *x64 = cg_cast(ctx, x32, CG_F64);
        cg_set_requires_grad(x32, true);
        cg_set_requires_grad(x64, true);
        cg_tensor *y32 = CASES[c].f(ctx, x32), *y64 = CASES[c].f(ctx, x64);
        assert_int_equal(cg_dtype_of(y32), CG_F32);
        assert_int_equal(cg_backward(cg_sum(ctx, y32, NULL, 0, false)), CG_OK);
        assert_int_equal(cg_backward(cg_sum(ctx, y64, NULL, 0, false)), CG_OK);
        double a[12], b[12], ga[12], gb[12], x[12];
        cg_copy_to_array(x64, CG_F64, x);
        cg_copy_to_array(y32, CG_F64, a);
        cg_copy_to_array(y64, CG_F64, b);
        cg_copy_to_array(cg_grad_of(x32), CG_F64, ga);
        cg_copy_to_array(cg_grad_of(x64), CG_F64, gb);
        for (int i = 0; i < 12; i++) {
            assert_close(CASES[c].name, x[i], a[i], b[i], 1e-5, 1e-6);
            assert_close(CASES[c].name, x[i], ga[i], gb[i], 1e-5, 1e-6);
        }
    }
}

/* GELU (tanh form) and SiLU in f32 run on a polynomial exp (cgi_expf, not
 * libm's): on a dense grid over [-12, 12], value and slope stay within a
 * few f32 ulp of the f64 results. */
static void test_activation_f32_fast_exp_accuracy(void **state) {
    cg_ctx *ctx = *state;
    enum { N = 4801 };
    cg_tensor *(*fs[2])(cg_ctx *, const cg_tensor *) = {cg_gelu_tanh, cg_silu};
    const char *names[2] = {"gelu_tanh", "silu"};
    static double x[N], a[N], b[N], ga[N], gb[N];
    for (int f = 0; f < 2; f++) {
        cg_tensor *x32 = cg_linspace(ctx, CG_F32, -12, 12, N);
        cg_tensor *x64 = cg_cast(ctx, x32, CG_F64);
        cg_set_requires_grad(x32, true);
        cg_set_requires_grad(x64, true);
        cg_tensor *y32 = fs[f](ctx, x32), *y64 = fs[f](ctx, x64);
        assert_int_equal(cg_backward(cg_sum(ctx, y32, NULL, 0, false)), CG_OK);
        assert_int_equal(cg_backward(cg_sum(ctx, y64, NULL, 0, false)), CG_OK);
        cg_copy_to_array(x64, CG_F64, x);
        cg_copy_to_array(y32, CG_F64, a);
        cg_copy_to_array(y64, CG_F64, b);
        cg_copy_to_array(cg_grad_of(x32), CG_F64, ga);
        cg_copy_to_array(cg_grad_of(x64), CG_F64, gb);
        for (int i = 0; i < N; i++) {
            assert_close(names[f], x[i], a[i], b[i], 1e-6, 1e-9);
            assert_close(names[f], x[i], ga[i], gb[i], 2e-6, 1e-7);
        }
    }
}

/* The backward reads the saved input (and output for elu and silu): a change
 * in place after the forward is caught instead of giving a wrong gradient. */
static void test_activation_saved_tensors_guarded(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(2), (double[]){-1, 2});
    cg_set_requires_grad(x, true);
    cg_tensor *h = cg_mul_scalar(ctx, x, 1);
    cg_tensor *y = cg_sum(ctx, cg_gelu(ctx, h), NULL, 0, false);
    cg_fill_(h, 0);
    assert_int_equal(cg_backward(y), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "cg_gelu"));
    cg_tensor *s = cg_silu(ctx, x);
    y = cg_sum(ctx, s, NULL, 0, false);
    cg_fill_(s, 0);
    assert_int_equal(cg_backward(y), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "cg_silu"));
}

/* ---- errors -------------------------------------------------------------------- */
static void expect_error(cg_tensor *y, cg_status status, const char *fn, const char *text) {
    assert_null(y);
    assert_int_equal(cg_last_status(), status);
    if (!strstr(cg_last_error(), fn) || !strstr(cg_last_error(), text))
        fail_msg("want \"%s\" and \"%s\" in \"%s\"", fn, text, cg_last_error());
    cg_clear_error();
}

static void test_activation_rejects_i64(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *i = cg_arange(ctx, CG_I64, -2, 2, 1);
    expect_error(cg_gelu(ctx, i), CG_ERR_DTYPE, "cg_gelu", "i64 input: needs f32 or f64");
    expect_error(cg_gelu_tanh(ctx, i), CG_ERR_DTYPE, "cg_gelu_tanh", "i64");
    expect_error(cg_silu(ctx, i), CG_ERR_DTYPE, "cg_silu", "i64");
    expect_error(cg_leaky_relu(ctx, i, 0.01), CG_ERR_DTYPE, "cg_leaky_relu", "i64");
    expect_error(cg_elu(ctx, i, 1), CG_ERR_DTYPE, "cg_elu", "i64");
    expect_error(cg_softplus(ctx, i, 1, 20), CG_ERR_DTYPE, "cg_softplus", "i64");
    expect_error(cg_hardtanh(ctx, i, -1, 1), CG_ERR_DTYPE, "cg_hardtanh", "i64");
}

static void test_activation_rejects_bad_parameters(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F32, CG_SHAPE(2));
    expect_error(cg_hardtanh(ctx, x, 1, -1), CG_ERR_ARG, "cg_hardtanh", "lo 1, hi -1");
    expect_error(cg_hardtanh(ctx, x, NAN, 1), CG_ERR_ARG, "cg_hardtanh", "lo <= hi");
    expect_error(cg_softplus(ctx, x, 0, 20), CG_ERR_ARG, "cg_softplus", "beta 0");
    expect_error(cg_softplus(ctx, x, -1, 20), CG_ERR_ARG, "cg_softplus", "beta > 0");
    expect_error(cg_softplus(ctx, x, INFINITY, 20), CG_ERR_ARG, "cg_softplus", "finite beta");
    expect_error(cg_softplus(ctx, x, 1, NAN), CG_ERR_ARG, "cg_softplus", "threshold nan");
    expect_error(cg_leaky_relu(ctx, x, NAN), CG_ERR_ARG, "cg_leaky_relu", "finite slope");
    expect_error(cg_elu(ctx, x, INFINITY), CG_ERR_ARG, "cg_elu", "finite alpha");
    /* the edges that are allowed: lo == hi, open sides, no linear region */
    assert_values(cg_hardtanh(ctx, x, 0.5, 0.5), (double[]){0.5, 0.5}, 2, 0);
    assert_values(cg_hardtanh(ctx, x, -INFINITY, INFINITY), (double[]){0, 0}, 2, 0);
    assert_values(cg_softplus(ctx, x, 1, INFINITY), (double[]){log(2), log(2)}, 2, 1e-7);
    assert_values(cg_leaky_relu(ctx, x, -0.5), (double[]){0, 0}, 2, 0);
}

/* NULL in, NULL out: a first-hand NULL is named; an earlier error is kept
 * and wins over a bad parameter. */
static void test_activation_null_input(void **state) {
    cg_ctx *ctx = *state;
    cg_clear_error();
    expect_error(cg_relu(ctx, NULL), CG_ERR_ARG, "cg_relu", "NULL");
    expect_error(cg_leaky_relu(ctx, NULL, 0.01), CG_ERR_ARG, "cg_leaky_relu", "NULL");
    expect_error(cg_elu(ctx, NULL, 1), CG_ERR_ARG, "cg_elu", "NULL");
    expect_error(cg_gelu(ctx, NULL), CG_ERR_ARG, "cg_gelu", "NULL");
    expect_error(cg_gelu_tanh(ctx, NULL), CG_ERR_ARG, "cg_gelu_tanh", "NULL");
    expect_error(cg_silu(ctx, NULL), CG_ERR_ARG, "cg_silu", "NULL");
    expect_error(cg_softplus(ctx, NULL, 1, 20), CG_ERR_ARG, "cg_softplus", "NULL");
    expect_error(cg_hardtanh(ctx, NULL, -1, 1), CG_ERR_ARG, "cg_hardtanh", "NULL");
    cg_tensor *bad = cg_reshape(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(2)), CG_SHAPE(3));
    expect_error(cg_hardtanh(ctx, cg_gelu(ctx, bad), 1, -1), CG_ERR_SHAPE, "cg_reshape", "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_activation_values_match_formulas, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_activation_large_magnitudes_stay_finite, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_activation_strided_and_broadcast_values, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test(test_activation_gradcheck_all_layouts),
        cmocka_unit_test(test_activation_gradgradcheck_all_layouts),
        cmocka_unit_test_setup_teardown(test_activation_relu_backward_masks, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_activation_gelu_fused_and_recorded_agree,
                                        ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_activation_large_magnitudes_finite_gradients,
                                        ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_activation_gradient_at_kinks, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_activation_f32_fast_exp_accuracy, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_activation_f32_matches_f64, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_activation_saved_tensors_guarded, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_activation_rejects_i64, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_activation_rejects_bad_parameters, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_activation_null_input, ctx_setup, ctx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
