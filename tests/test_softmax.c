/* ops/softmax.c: softmax and log_softmax (values, stability, gradients to
 * second order, layouts, f32 against f64, the parallel path) and dropout
 * (mask statistics, scaling, gradient, determinism, identity modes), with
 * their errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cgrad_cmocka.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------ */
/* Which op a gradcheck applies, along which axis. */
typedef struct sm_case {
    bool lg;
    int axis;
} sm_case;

static cg_tensor *apply(cg_ctx *ctx, const sm_case *c, const cg_tensor *x) {
    return c->lg ? cg_log_softmax(ctx, x, c->axis) : cg_softmax(ctx, x, c->axis);
}
static cg_tensor *apply_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return apply(ctx, user, in[0]);
}
/* softmax(x + y), y broadcast over x's leading dim. */
static cg_tensor *apply_bcast_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return apply(ctx, user, cg_add(ctx, in[0], in[1]));
}

/* The reference: out[..., i, ...] = exp(x_i - m) / sum along axis, or its
 * log, on a contiguous f64 copy of x ([A,B,C], any axis). */
static void reference(const cg_tensor *x, int axis, bool lg, double *out) {
    int64_t n = cg_numel(x), len = cg_dim(x, axis), inner = 1;
    double *v = malloc((size_t)n * sizeof *v);
    assert_int_equal(cg_copy_to_array(x, CG_F64, v), CG_OK);
    for (int d = axis + 1; d < cg_ndim(x); d++) inner *= cg_dim(x, d);
    for (int64_t r = 0; r < n / len; r++) {
        int64_t base = r / inner * inner * len + r % inner;
        double m = -INFINITY, s = 0;
        for (int64_t i = 0; i < len; i++) m = fmax(m, v[base + i * inner]);
        for (int64_t i = 0; i < len; i++) s += exp(v[base + i * inner] - m);
        for (int64_t i = 0; i < len; i++) {
            double z = v[base + i * inner] - m;
            out[base + i * inner] = lg ? z - log(s) : exp(z) / s;
        }
    }
    free(v);
}

/* y holds the reference within tol (relative for large values). */
static void assert_reference(const cg_tensor *y, const cg_tensor *x, int axis, bool lg,
                             double tol) {
    int64_t n = cg_numel(x);
    double *want = malloc((size_t)n * sizeof *want), *got = malloc((size_t)n * sizeof *got);
    reference(x, axis < 0 ? axis + cg_ndim(x) : axis, lg, want);
    assert_int_equal(cg_copy_to_array(y, CG_F64, got), CG_OK);
    for (int64_t i = 0; i < n; i++)
        assert_float_equal(got[i], want[i], tol * (1 + fabs(want[i])));
    free(want);
    free(got);
}

static void backward_sum(cg_ctx *ctx, cg_tensor *y) {
    assert_non_null(y);
    assert_int_equal(cg_backward(cg_sum(ctx, y, NULL, 0, false)), CG_OK);
}

/* ---- softmax, log_softmax: values ------------------------------------------------------ */
static void test_softmax_values_by_hand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 3), (double[]){1, 2, 3, 0, 0, 0});
    double s = exp(1.0) + exp(2.0) + exp(3.0);
    double rows[] = {exp(1.0) / s, exp(2.0) / s, exp(3.0) / s, 1.0 / 3, 1.0 / 3, 1.0 / 3};
    assert_values(cg_softmax(ctx, x, 1), rows, 6, 1e-15);
    assert_values(cg_softmax(ctx, x, -1), rows, 6, 1e-15);
    double cols[6]; /* column j is softmax(j + 1, 0) */
    for (int j = 0; j < 3; j++) {
        cols[j] = 1 / (1 + exp(-(j + 1.0)));
        cols[3 + j] = 1 - cols[j];
    }
    assert_values(cg_softmax(ctx, x, 0), cols, 6, 1e-15);
    double logs[6];
    for (int i = 0; i < 6; i++) logs[i] = log(rows[i]);
    assert_values(cg_log_softmax(ctx, x, 1), logs, 6, 1e-14);
}

/* Every axis of a [3,4,5] input, contiguous and transposed, f32 and f64. */
static void test_softmax_every_axis_and_layout(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 1);
    for (int dt = CG_F32; dt <= CG_F64; dt++) {
        cg_tensor *x = cg_randn(ctx, &rng, dt, CG_SHAPE(3, 4, 5), 0, 3);
        cg_tensor *xt =
            cg_transpose(ctx, cg_randn(ctx, &rng, dt, CG_SHAPE(5, 4, 3), 0, 3), 0, 2);
        double tol = dt == CG_F32 ? 1e-5 : 1e-13;
        for (int axis = -3; axis < 3; axis++)
            for (int lg = 0; lg < 2; lg++) {
                cg_tensor *y = lg ? cg_log_softmax(ctx, x, axis) : cg_softmax(ctx, x, axis);
                assert_int_equal(cg_dtype_of(y), dt);
                assert_reference(y, x, axis, lg, tol);
                y = lg ? cg_log_softmax(ctx, xt, axis) : cg_softmax(ctx, xt, axis);
                assert_reference(y, xt, axis, lg, tol);
            }
    }
}

/* Large enough for the parallel row loop, along the last and first axis. */
static void test_softmax_parallel_rows(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 2);
    cg_tensor *x = cg_randn(ctx, &rng, CG_F32, CG_SHAPE(300, 257), 0, 4);
    assert_reference(cg_softmax(ctx, x, -1), x, -1, false, 1e-5);
    assert_reference(cg_log_softmax(ctx, x, 0), x, 0, true, 1e-5);
}

static void test_softmax_stable_for_huge_logits(void **state) {
    cg_ctx *ctx = *state;
    for (int dt = CG_F32; dt <= CG_F64; dt++) {
        cg_tensor *x = leaf(dt, CG_SHAPE(3), (double[]){1e4, -1e4, 0});
        cg_tensor *y = cg_softmax(ctx, x, 0);
        assert_values(y, (double[]){1, 0, 0}, 3, 0);
        assert_values(cg_log_softmax(ctx, x, 0), (double[]){0, -2e4, -1e4}, 3, 0);
        backward_sum(
            ctx, cg_mul(ctx, y,
                        cg_from_array(ctx, dt, CG_SHAPE(3), (double[]){1, 2, 3}))); /* finite */
        assert_values(cg_grad_of(x), (double[]){0, 0, 0}, 3, 0);
        cg_tensor_free(x);
    }
}

static void test_softmax_empty_and_single(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *e = cg_softmax(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(0, 4)), 1);
    assert_int_equal(cg_numel(e), 0);
    cg_tensor *one = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 1), (double[]){-7, 1e300});
    assert_values(cg_softmax(ctx, one, 1), (double[]){1, 1}, 2, 0);
    assert_values(cg_log_softmax(ctx, one, 1), (double[]){0, 0}, 2, 0);
}

/* ---- softmax, log_softmax: gradients ------------------------------------------------------
 */
/* d sum(w * softmax(x)) / dx = y (w - sum(w y)). */
static void test_softmax_backward_by_hand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(3), (double[]){0.5, -1, 2});
    const double w[] = {1, -2, 3};
    cg_tensor *y = cg_softmax(ctx, x, 0);
    assert_string_equal(cg_node_op(cg_grad_fn(y))->name, "softmax");
    backward_sum(ctx, cg_mul(ctx, y, cg_from_array(ctx, CG_F64, CG_SHAPE(3), w)));
    double yv[3], want[3], wy = 0;
    cg_copy_to_array(y, CG_F64, yv);
    for (int i = 0; i < 3; i++) wy += w[i] * yv[i];
    for (int i = 0; i < 3; i++) want[i] = yv[i] * (w[i] - wy);
    assert_values(cg_grad_of(x), want, 3, 1e-15);
    cg_zero_grad(x); /* log_softmax: w - softmax * sum(w) */
    backward_sum(ctx, cg_mul(ctx, cg_log_softmax(ctx, x, 0),
                             cg_from_array(ctx, CG_F64, CG_SHAPE(3), w)));
    for (int i = 0; i < 3; i++) want[i] = w[i] - yv[i] * 2;
    assert_values(cg_grad_of(x), want, 3, 1e-15);
    cg_tensor_free(x);
}

static void check_op(bool lg) {
    for (int axis = -1; axis < 3; axis++) {
        sm_case c = {lg, axis};
        cg_tensor *x = seeded_leaf(5, CG_F64, CG_SHAPE(3, 4, 2), 2);
        cg_assert_gradcheck(apply_fn, &c, 1, &x);
        cg_tensor_free(x);
        x = seeded_leaf(5, CG_F64, CG_SHAPE(3, 4, 2), 2);
        cg_assert_gradgradcheck(apply_fn, &c, 1, &x);
        cg_tensor_free(x);
    }
    for (int axis = 0; axis < 2; axis++) {
        sm_case c = {lg, axis};
        cg_rng rng;
        cg_rng_seed(&rng, 6);
        cg_tensor *base = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(4, 3), 0, 1);
        cg_tensor *xt = cg_transpose(NULL, base, 0, 1);
        assert_int_equal(cg_set_requires_grad(xt, true), CG_OK);
        cg_assert_gradcheck(apply_fn, &c, 1, &xt);
        cg_tensor *in[2] = {seeded_leaf(7, CG_F64, CG_SHAPE(4, 3), 2),
                            seeded_leaf(8, CG_F64, CG_SHAPE(3), 2)};
        cg_assert_gradcheck(apply_bcast_fn, &c, 2, in);
        cg_tensor_free(xt);
        cg_tensor_free(base);
        cg_tensor_free(in[0]);
        cg_tensor_free(in[1]);
    }
}

static void test_softmax_gradcheck(void **state) {
    (void)state;
    check_op(false);
}
static void test_softmax_log_softmax_gradcheck(void **state) {
    (void)state;
    check_op(true);
}

/* f32 and f64 agree on values and on the gradient of sum(w * y). */
static void test_softmax_f32_matches_f64(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 9);
    cg_tensor *x64 = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(4, 6), 0, 2);
    cg_tensor *x32 = cg_cast(NULL, x64, CG_F32);
    cg_tensor *w = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(4, 6), 0, 1);
    assert_int_equal(cg_set_requires_grad(x64, true), CG_OK);
    assert_int_equal(cg_set_requires_grad(x32, true), CG_OK);
    for (int lg = 0; lg < 2; lg++) {
        sm_case c = {lg, lg ? 0 : 1};
        double v64[24], v32[24], g64[24], g32[24];
        cg_tensor *y64 = apply(ctx, &c, x64), *y32 = apply(ctx, &c, x32);
        cg_copy_to_array(y64, CG_F64, v64);
        cg_copy_to_array(y32, CG_F64, v32);
        cg_zero_grad(x64);
        cg_zero_grad(x32);
        backward_sum(ctx, cg_mul(ctx, y64, w));
        backward_sum(ctx, cg_mul(ctx, y32, cg_cast(ctx, w, CG_F32)));
        cg_copy_to_array(cg_grad_of(x64), CG_F64, g64);
        cg_copy_to_array(cg_grad_of(x32), CG_F64, g32);
        for (int k = 0; k < 24; k++) {
            assert_float_equal(v32[k], v64[k], 1e-5);
            assert_float_equal(g32[k], g64[k], 1e-5);
        }
    }
    cg_tensor_free(x64);
    cg_tensor_free(x32);
}

/* ---- dropout ------------------------------------------------------------------------------
 */
/* Counts the zeros of y (n elements); every other value must equal keep. */
static int64_t count_dropped(const cg_tensor *y, int64_t n, double keep) {
    double *v = malloc((size_t)n * sizeof *v);
    int64_t zeros = 0;
    assert_int_equal(cg_copy_to_array(y, CG_F64, v), CG_OK);
    for (int64_t i = 0; i < n; i++) {
        if (v[i] == 0)
            zeros++;
        else if (v[i] != keep)
            fail_msg("element %lld is %g, not 0 or %g", (long long)i, v[i], keep);
    }
    free(v);
    return zeros;
}

static void test_softmax_dropout_keeps_half_scaled_by_two(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 42);
    for (int dt = CG_F32; dt <= CG_F64; dt++) {
        cg_tensor *y = cg_dropout(ctx, cg_ones(ctx, dt, CG_SHAPE(100, 100)), 0.5, true, &rng);
        assert_non_null(y);
        assert_int_equal(cg_dtype_of(y), dt);
        int64_t zeros = count_dropped(y, 10000, 2.0); /* kept values exactly 2 */
        assert_in_range(zeros, 4800, 5200);           /* ~ 5000 +- 4 sigma */
    }
    cg_tensor *y = cg_dropout(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(10000)), 0.2, true, &rng);
    assert_in_range(count_dropped(y, 10000, 1 / 0.8), 1840, 2160);
}

/* The gradient is the mask scaled: with x all ones it equals the output. */
static void test_softmax_dropout_gradient_is_scaled_mask(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 3);
    cg_tensor *x = cg_ones(NULL, CG_F64, CG_SHAPE(40, 25));
    assert_int_equal(cg_set_requires_grad(x, true), CG_OK);
    cg_tensor *y = cg_dropout(ctx, x, 0.5, true, &rng);
    assert_string_equal(cg_node_op(cg_grad_fn(y))->name, "dropout");
    backward_sum(ctx, cg_mul_scalar(ctx, y, 3));
    double g[1000], v[1000];
    cg_copy_to_array(cg_grad_of(x), CG_F64, g);
    cg_copy_to_array(y, CG_F64, v);
    for (int i = 0; i < 1000; i++) assert_float_equal(g[i], 3 * v[i], 0);
    cg_tensor_free(x);
}

/* The mask comes from the rng in C order: same seed, same mask, also on a
 * transposed input (the mask follows the logical order, not memory). */
static void test_softmax_dropout_same_seed_same_mask(void **state) {
    cg_ctx *ctx = *state;
    cg_rng r1, r2, r3;
    cg_rng_seed(&r1, 77);
    cg_rng_seed(&r2, 77);
    cg_rng_seed(&r3, 78);
    cg_tensor *ones = cg_ones(ctx, CG_F32, CG_SHAPE(30, 20));
    cg_tensor *a = cg_dropout(ctx, ones, 0.3, true, &r1);
    cg_tensor *b = cg_dropout(
        ctx, cg_transpose(ctx, cg_ones(ctx, CG_F32, CG_SHAPE(20, 30)), 0, 1), 0.3, true, &r2);
    cg_tensor *c = cg_dropout(ctx, ones, 0.3, true, &r3);
    float va[600], vb[600], vc[600];
    cg_copy_to_array(a, CG_F32, va);
    cg_copy_to_array(b, CG_F32, vb);
    cg_copy_to_array(c, CG_F32, vc);
    assert_memory_equal(va, vb, sizeof va);
    assert_memory_not_equal(va, vc, sizeof va);
}

/* Eval mode, and p == 0 in training, give a differentiable view of x. */
static void test_softmax_dropout_identity_modes(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 1);
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2, 2), (double[]){1, -2, 3, 4});
    cg_tensor *e = cg_dropout(ctx, x, 0.5, false, NULL), *z = cg_dropout(ctx, x, 0, true, &rng);
    assert_ptr_equal(cg_data(e), cg_data(x)); /* a view: no copy */
    assert_ptr_equal(cg_data(z), cg_data(x));
    assert_values(e, (double[]){1, -2, 3, 4}, 4, 0);
    backward_sum(ctx, cg_add(ctx, e, z));
    assert_values(cg_grad_of(x), (double[]){2, 2, 2, 2}, 4, 0);
    cg_tensor_free(x);
}

/* Outside a context the mask is freed and the result is the caller's
 * (LeakSanitizer checks); a leaf needing a graph is refused. */
static void test_softmax_heap_results(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 4);
    cg_tensor *x = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(3, 5), 0, 1);
    double xv[15];
    cg_copy_to_array(x, CG_F64, xv);
    cg_tensor *outs[4] = {cg_softmax(NULL, x, 1), cg_log_softmax(NULL, x, 0),
                          cg_dropout(NULL, x, 0.5, true, &rng),
                          cg_dropout(NULL, x, 0.5, false, NULL)};
    for (int i = 0; i < 4; i++) assert_non_null(outs[i]);
    assert_reference(outs[0], x, 1, false, 1e-13);
    cg_tensor_free(x);
    assert_values(outs[3], xv, 15, 0); /* the eval view keeps the storage alive */
    for (int i = 0; i < 4; i++) cg_tensor_free(outs[i]);
    cg_tensor *g = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(3), 0, 1);
    assert_int_equal(cg_set_requires_grad(g, true), CG_OK);
    assert_null(cg_dropout(NULL, g, 0.5, true, &rng));
    assert_error(CG_ERR_STATE, "cg_dropout: an input requires a gradient");
    assert_null(cg_softmax(NULL, g, 0));
    assert_error(CG_ERR_STATE, "cg_softmax");
    cg_tensor_free(g);
}

static void test_softmax_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 1);
    cg_tensor *i = cg_zeros(ctx, CG_I64, CG_SHAPE(2, 3)),
              *f = cg_ones(ctx, CG_F32, CG_SHAPE(2, 3));
    assert_null(cg_softmax(ctx, i, 0));
    assert_error(CG_ERR_DTYPE, "cg_softmax: [2,3]: needs f32 or f64, got i64");
    assert_null(cg_log_softmax(ctx, i, 0));
    assert_error(CG_ERR_DTYPE, "cg_log_softmax: [2,3]: needs f32 or f64, got i64");
    assert_null(cg_softmax(ctx, f, 2));
    assert_error(CG_ERR_INDEX, "cg_softmax: [2,3]: axis 2 out of range for rank 2");
    assert_null(cg_log_softmax(ctx, f, -3));
    assert_error(CG_ERR_INDEX, "cg_log_softmax: [2,3]: axis -3 out of range for rank 2");
    assert_null(cg_dropout(ctx, i, 0.5, true, &rng));
    assert_error(CG_ERR_DTYPE, "cg_dropout: [2,3]: needs f32 or f64, got i64");
    const double bad[] = {1, -0.1, 1.5, NAN};
    for (int k = 0; k < 4; k++) {
        assert_null(cg_dropout(ctx, f, bad[k], true, &rng));
        assert_error(CG_ERR_ARG, "cg_dropout: [2,3]: p = ");
    }
    assert_null(cg_dropout(ctx, f, 0.5, true, NULL));
    assert_error(CG_ERR_ARG, "cg_dropout: [2,3]: training needs an rng");
    assert_null(cg_softmax(ctx, NULL, 0));
    assert_error(CG_ERR_ARG, "cg_softmax: tensor is NULL");
    assert_null(cg_dropout(ctx, NULL, 0.5, true, &rng));
    assert_error(CG_ERR_ARG, "cg_dropout: tensor is NULL");
}

#define T(name) cmocka_unit_test_setup_teardown(name, ctx_setup, ctx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_softmax_values_by_hand),
        T(test_softmax_every_axis_and_layout),
        T(test_softmax_parallel_rows),
        T(test_softmax_stable_for_huge_logits),
        T(test_softmax_empty_and_single),
        T(test_softmax_backward_by_hand),
        T(test_softmax_gradcheck),
        T(test_softmax_log_softmax_gradcheck),
        T(test_softmax_f32_matches_f64),
        T(test_softmax_dropout_keeps_half_scaled_by_two),
        T(test_softmax_dropout_gradient_is_scaled_mask),
        T(test_softmax_dropout_same_seed_same_mask),
        T(test_softmax_dropout_identity_modes),
        T(test_softmax_heap_results),
        T(test_softmax_errors),
    };
    return cmocka_run_group_tests_name("softmax", tests, NULL, NULL);
}
