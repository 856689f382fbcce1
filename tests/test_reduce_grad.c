/* Gradients of the reductions in ops/reduce.c: max/min (first extreme
 * wins), var, std, logsumexp and norm. Values by hand, gradcheck and
 * gradgradcheck over axis sets and keepdim, non-contiguous and broadcast
 * inputs, f32 against f64, numerical edges and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "cgrad_cmocka.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------ */
typedef enum red_op { R_MAX, R_MIN, R_VAR, R_STD, R_LSE, R_NORM } red_op;

/* One reduction call: p is the correction (var, std) or the order (norm). */
typedef struct red_case {
    red_op op;
    int axes[3];
    int naxes;
    bool keepdim;
    double p;
} red_case;

static cg_tensor *apply(cg_ctx *ctx, const red_case *c, const cg_tensor *x) {
    const int *ax = c->axes;
    switch (c->op) {
    case R_MAX: return cg_max(ctx, x, ax, c->naxes, c->keepdim);
    case R_MIN: return cg_min(ctx, x, ax, c->naxes, c->keepdim);
    case R_VAR: return cg_var(ctx, x, ax, c->naxes, c->p, c->keepdim);
    case R_STD: return cg_std(ctx, x, ax, c->naxes, c->p, c->keepdim);
    case R_LSE: return cg_logsumexp(ctx, x, ax, c->naxes, c->keepdim);
    case R_NORM: return cg_norm(ctx, x, c->p, ax, c->naxes, c->keepdim);
    }
    return NULL;
}

static cg_tensor *apply_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return apply(ctx, user, in[0]);
}
/* The reduced input is x + y, y broadcast over x's leading dims. */
static cg_tensor *apply_bcast_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return apply(ctx, user, cg_add(ctx, in[0], in[1]));
}

/* The axis sets every op is checked over, on a [3,4,2] input. */
static const struct {
    int axes[3], naxes;
} AXES[] = {{{0}, 1}, {{1}, 1}, {{-1}, 1}, {{0, 2}, 2}, {{2, 0, 1}, 3}, {{0}, 0}};
#define NAXES (sizeof AXES / sizeof AXES[0])

/* Every check gets fresh leaves: autograd numbers its backward passes per
 * context, from 1 in each new context, and a new context may reuse a freed
 * one's address, so a leaf shared by two gradchecks can match a stale pass
 * and read a dangling gradient (autograd/backward.c; reported). */
/* gradcheck (and gradgradcheck when gg) of c over every axis set and keepdim. */
static void check_all_axes(red_case c, bool gg) {
    for (size_t i = 0; i < NAXES; i++)
        for (int k = 0; k < 2; k++) {
            memcpy(c.axes, AXES[i].axes, sizeof c.axes);
            c.naxes = AXES[i].naxes;
            c.keepdim = k;
            cg_tensor *x = seeded_leaf(7, CG_F64, CG_SHAPE(3, 4, 2), 1);
            cg_assert_gradcheck(apply_fn, &c, 1, &x);
            cg_tensor_free(x);
            if (!gg) continue;
            x = seeded_leaf(7, CG_F64, CG_SHAPE(3, 4, 2), 1);
            cg_assert_gradgradcheck(apply_fn, &c, 1, &x);
            cg_tensor_free(x);
        }
}

/* gradcheck of c on a transposed (non-contiguous) leaf and on x + y with y
 * broadcast, reducing axis 0 and all axes. */
static void check_layouts(red_case c) {
    for (int naxes = 0; naxes < 2; naxes++) {
        c.axes[0] = 0;
        c.naxes = naxes;
        cg_rng rng;
        cg_rng_seed(&rng, 11);
        cg_tensor *base = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(4, 3), 0, 1);
        cg_tensor *xt = cg_transpose(NULL, base, 0, 1); /* [3,4], strides (1,3) */
        assert_false(cg_is_contiguous(xt));
        assert_int_equal(cg_set_requires_grad(xt, true), CG_OK);
        cg_assert_gradcheck(apply_fn, &c, 1, &xt);
        cg_tensor *in[2] = {randn_leaf(&rng, CG_F64, CG_SHAPE(4, 3), 1),
                            randn_leaf(&rng, CG_F64, CG_SHAPE(3), 1)};
        cg_assert_gradcheck(apply_bcast_fn, &c, 2, in);
        cg_tensor_free(xt);
        cg_tensor_free(base);
        cg_tensor_free(in[0]);
        cg_tensor_free(in[1]);
    }
}

/* The gradient checks of each op: every axis set (gradgradcheck too when
 * gg), and the transposed and broadcast layouts when layouts. */
static const struct {
    red_op op;
    double p;
    bool gg, layouts;
} CHECKS[] = {
    {R_MAX, 0, true, true},          {R_MIN, 0, true, true},      {R_VAR, 1, true, true},
    {R_VAR, 0, false, false},        {R_STD, 1, true, true},      {R_STD, 0, false, false},
    {R_LSE, 0, true, true},          {R_NORM, 2, true, true},     {R_NORM, 3, true, false},
    {R_NORM, 1, false, false},       {R_NORM, 0.5, false, false}, {R_NORM, 1.5, false, true},
    {R_NORM, INFINITY, false, true},
};

static void run_checks(red_op op) {
    for (size_t i = 0; i < sizeof CHECKS / sizeof CHECKS[0]; i++) {
        if (CHECKS[i].op != op) continue;
        red_case c = {.op = op, .p = CHECKS[i].p};
        check_all_axes(c, CHECKS[i].gg);
        if (CHECKS[i].layouts) check_layouts(c);
    }
}

/* Backward of sum(y) into the leaf x. */
static void backward_sum(cg_ctx *ctx, cg_tensor *y) {
    assert_non_null(y);
    assert_int_equal(cg_backward(cg_sum(ctx, y, NULL, 0, false)), CG_OK);
}

/* ---- max, min ------------------------------------------------------------------------ */
static void test_reduce_grad_max_min_by_hand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2, 3), (double[]){1, 3, 3, 2, 0, 2});
    cg_tensor *y = cg_max(ctx, x, (int[]){1}, 1, false);
    assert_values(y, (double[]){3, 2}, 2, 0);
    assert_string_equal(cg_node_op(cg_grad_fn(y))->name, "max");
    backward_sum(ctx, y); /* ties: the first 3 and the first 2 */
    assert_values(cg_grad_of(x), (double[]){0, 1, 0, 1, 0, 0}, 6, 0);
    cg_zero_grad(x);
    y = cg_min(ctx, x, (int[]){-1}, 1, true);
    assert_values(y, (double[]){1, 0}, 2, 0);
    backward_sum(ctx, y);
    assert_values(cg_grad_of(x), (double[]){1, 0, 0, 0, 1, 0}, 6, 0);
    cg_zero_grad(x);
    backward_sum(ctx, cg_max(ctx, x, (int[]){0}, 1, false)); /* column 2 ties: row 0 */
    assert_values(cg_grad_of(x), (double[]){0, 1, 1, 1, 0, 0}, 6, 0);
    cg_tensor_free(x);
}

/* All equal: the single selected element is the first in C order over the
 * reduced axes, also when those axes are not adjacent. */
static void test_reduce_grad_max_min_ties_go_to_first(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2, 2, 2), (double[]){5, 5, 5, 5, 5, 5, 5, 5});
    backward_sum(ctx, cg_max(ctx, x, NULL, 0, false));
    assert_values(cg_grad_of(x), (double[]){1, 0, 0, 0, 0, 0, 0, 0}, 8, 0);
    cg_zero_grad(x);
    backward_sum(ctx, cg_min(ctx, x, (int[]){2, 0}, 2, false)); /* one per axis-1 index */
    assert_values(cg_grad_of(x), (double[]){1, 0, 1, 0, 0, 0, 0, 0}, 8, 0);
    cg_tensor_free(x);
}

static void test_reduce_grad_max_min_gradcheck(void **state) {
    (void)state;
    run_checks(R_MAX);
    run_checks(R_MIN);
}

/* ---- var, std ------------------------------------------------------------------------ */
static void test_reduce_grad_var_std_by_hand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2, 2), (double[]){1, 2, 3, 4});
    assert_values(cg_var(ctx, x, NULL, 0, 1, false), (double[]){5.0 / 3}, 1, 1e-15);
    assert_values(cg_var(ctx, x, NULL, 0, 0, false), (double[]){1.25}, 1, 1e-15);
    cg_tensor *s = cg_std(ctx, x, (int[]){0}, 1, 1, true); /* [1,2]: sqrt 2 twice */
    assert_int_equal(cg_ndim(s), 2);
    assert_values(s, (double[]){sqrt(2.0), sqrt(2.0)}, 2, 1e-15);
    /* d var / dx = 2 (x - mean) / (N - 1) = (x - 2.5) * 2/3 */
    backward_sum(ctx, cg_var(ctx, x, NULL, 0, 1, false));
    assert_values(cg_grad_of(x), (double[]){-1, -1.0 / 3, 1.0 / 3, 1}, 4, 1e-15);
    cg_zero_grad(x);
    /* d std / dx = (x - mean) / ((N - 1) std): columns (1,3) and (2,4) */
    backward_sum(ctx, s);
    double h = 1 / sqrt(2.0);
    assert_values(cg_grad_of(x), (double[]){-h, -h, h, h}, 4, 1e-15);
    cg_tensor_free(x);
}

static void test_reduce_grad_var_std_gradcheck(void **state) {
    (void)state;
    run_checks(R_VAR);
    run_checks(R_STD);
}

/* N - correction <= 0 gives inf or NaN as PyTorch, and backward still runs;
 * a zero std has gradient 0, not NaN. */
static void test_reduce_grad_var_std_edges(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2), (double[]){1, 3});
    assert_true(isinf(cg_item(cg_var(ctx, x, NULL, 0, 2, false)))); /* 2 / 0 */
    cg_tensor *one = cg_narrow(ctx, x, 0, 0, 1);
    assert_true(isnan(cg_item(cg_std(ctx, one, NULL, 0, 1, false)))); /* 0 / 0 */
    backward_sum(ctx, cg_var(ctx, x, NULL, 0, 5, false));
    assert_true(isinf(((double *)cg_data(cg_grad_of(x)))[0]));
    cg_tensor *c = leaf(CG_F64, CG_SHAPE(3), (double[]){2, 2, 2});
    cg_tensor *s = cg_std(ctx, c, NULL, 0, 1, false);
    assert_float_equal(cg_item(s), 0, 0);
    backward_sum(ctx, s);
    assert_values(cg_grad_of(c), (double[]){0, 0, 0}, 3, 0);
    cg_tensor_free(x);
    cg_tensor_free(c);
}

/* ---- logsumexp ------------------------------------------------------------------------- */
static void test_reduce_grad_logsumexp_by_hand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2, 2), (double[]){0, 0, 1, 2});
    cg_tensor *y = cg_logsumexp(ctx, x, (int[]){1}, 1, false);
    assert_values(y, (double[]){log(2.0), log(exp(1.0) + exp(2.0))}, 2, 1e-14);
    backward_sum(ctx, y); /* the softmax of each row */
    double e = exp(1.0) / (exp(1.0) + exp(2.0));
    assert_values(cg_grad_of(x), (double[]){0.5, 0.5, e, 1 - e}, 4, 1e-14);
    cg_tensor_free(x);
}

static void test_reduce_grad_logsumexp_stable(void **state) {
    cg_ctx *ctx = *state;
    for (int dt = CG_F32; dt <= CG_F64; dt++) {
        cg_tensor *x = leaf(dt, CG_SHAPE(3), (double[]){1e4, -1e4, 0});
        cg_tensor *y = cg_logsumexp(ctx, x, NULL, 0, false);
        assert_float_equal(cg_item(y), 1e4, 1e-3);
        backward_sum(ctx, y);
        assert_values(cg_grad_of(x), (double[]){1, 0, 0}, 3, 1e-6);
        cg_tensor_free(x);
    }
    double inf = INFINITY;
    cg_tensor *t = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 2), (double[]){-inf, -inf, inf, 1});
    assert_values(cg_logsumexp(ctx, t, (int[]){1}, 1, false), (double[]){-inf, inf}, 2, 0);
    cg_tensor *empty = cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0));
    assert_values(cg_logsumexp(ctx, empty, (int[]){1}, 1, false), (double[]){-inf, -inf}, 2, 0);
}

static void test_reduce_grad_logsumexp_gradcheck(void **state) {
    (void)state;
    run_checks(R_LSE);
}

/* ---- norm ---------------------------------------------------------------------------------
 */
static void test_reduce_grad_norm_by_hand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2), (double[]){3, -4});
    assert_float_equal(cg_item(cg_norm(ctx, x, 2, NULL, 0, false)), 5, 1e-15);
    assert_float_equal(cg_item(cg_norm(ctx, x, 1, NULL, 0, false)), 7, 0);
    assert_float_equal(cg_item(cg_norm(ctx, x, INFINITY, NULL, 0, false)), 4, 0);
    assert_float_equal(cg_item(cg_norm(ctx, x, 3, NULL, 0, false)), cbrt(91), 1e-14);
    backward_sum(ctx, cg_norm(ctx, x, 2, NULL, 0, false)); /* x / |x| */
    assert_values(cg_grad_of(x), (double[]){0.6, -0.8}, 2, 1e-15);
    cg_zero_grad(x);
    backward_sum(ctx, cg_norm(ctx, x, INFINITY, NULL, 0, false)); /* sign at the max |x| */
    assert_values(cg_grad_of(x), (double[]){0, -1}, 2, 0);
    cg_zero_grad(x);
    backward_sum(ctx, cg_norm(ctx, x, 1, NULL, 0, false));
    assert_values(cg_grad_of(x), (double[]){1, -1}, 2, 0);
    cg_tensor_free(x);
}

/* A zero norm has gradient 0 (not NaN) for every p; ties in |x| for p = inf
 * send it to the first. */
static void test_reduce_grad_norm_zero_and_ties(void **state) {
    cg_ctx *ctx = *state;
    const double ps[] = {0.5, 1, 2, 3, INFINITY};
    cg_tensor *z = leaf(CG_F64, CG_SHAPE(3), (double[]){0, 0, 0});
    for (int i = 0; i < 5; i++) {
        cg_tensor *y = cg_norm(ctx, z, ps[i], NULL, 0, false);
        assert_float_equal(cg_item(y), 0, 0);
        backward_sum(ctx, y);
        assert_values(cg_grad_of(z), (double[]){0, 0, 0}, 3, 0);
    }
    cg_tensor *t = leaf(CG_F64, CG_SHAPE(3), (double[]){1, -2, 2});
    backward_sum(ctx, cg_norm(ctx, t, INFINITY, NULL, 0, false));
    assert_values(cg_grad_of(t), (double[]){0, -1, 0}, 3, 0);
    cg_tensor_free(z);
    cg_tensor_free(t);
}

static void test_reduce_grad_norm_gradcheck(void **state) {
    (void)state;
    run_checks(R_NORM);
}

/* ---- all ops ---------------------------------------------------------------------------- */
/* f32 and f64 agree on values and gradients (of sum(y)). */
static void test_reduce_grad_f32_matches_f64(void **state) {
    cg_ctx *ctx = *state;
    const red_case cases[] = {
        {R_MAX, {1}, 1, false, 0},  {R_MIN, {0}, 1, true, 0},  {R_VAR, {1}, 1, false, 1},
        {R_STD, {0}, 0, true, 0},   {R_LSE, {0}, 1, false, 0}, {R_NORM, {1}, 1, true, 2},
        {R_NORM, {0}, 0, false, 3},
    };
    cg_rng rng;
    cg_rng_seed(&rng, 3);
    cg_tensor *x64 = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(5, 7), 0, 1);
    cg_tensor *x32 = cg_cast(NULL, x64, CG_F32);
    assert_int_equal(cg_set_requires_grad(x64, true), CG_OK);
    assert_int_equal(cg_set_requires_grad(x32, true), CG_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v64[35], v32[35], g64[35], g32[35];
        cg_tensor *y64 = apply(ctx, &cases[i], x64), *y32 = apply(ctx, &cases[i], x32);
        assert_int_equal(cg_dtype_of(y32), CG_F32);
        int64_t n = cg_numel(y64);
        cg_copy_to_array(y64, CG_F64, v64);
        cg_copy_to_array(y32, CG_F64, v32);
        for (int64_t k = 0; k < n; k++) assert_float_equal(v32[k], v64[k], 1e-5);
        cg_zero_grad(x64);
        cg_zero_grad(x32);
        backward_sum(ctx, y64);
        backward_sum(ctx, y32);
        cg_copy_to_array(cg_grad_of(x64), CG_F64, g64);
        cg_copy_to_array(cg_grad_of(x32), CG_F64, g32);
        for (int k = 0; k < 35; k++) assert_float_equal(g32[k], g64[k], 1e-5);
    }
    cg_tensor_free(x64);
    cg_tensor_free(x32);
}

/* Outside a context nothing leaks (LeakSanitizer checks): caller-owned
 * results, and the refusal to build a graph without a context. */
static void test_reduce_grad_heap_results(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 5);
    cg_tensor *x = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(3, 4), 0, 1);
    cg_tensor *xg = randn_leaf(&rng, CG_F64, CG_SHAPE(3, 4), 1);
    for (int op = R_MAX; op <= R_NORM; op++) {
        red_case c = {(red_op)op, {1}, 1, false, op == R_NORM ? 3 : 1};
        cg_tensor *y = apply(NULL, &c, x);
        assert_non_null(y);
        assert_int_equal(cg_numel(y), 3);
        cg_tensor_free(y);
        assert_null(apply(NULL, &c, xg));
        assert_error(CG_ERR_STATE, "must be made in a context");
    }
    cg_tensor_free(x);
    cg_tensor_free(xg);
}

static void test_reduce_grad_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *i = cg_zeros(ctx, CG_I64, CG_SHAPE(2, 3)),
              *f = cg_ones(ctx, CG_F32, CG_SHAPE(2, 3));
    assert_null(cg_var(ctx, i, NULL, 0, 1, false));
    assert_error(CG_ERR_DTYPE, "cg_var: [2,3]: needs f32 or f64, got i64");
    assert_null(cg_std(ctx, i, NULL, 0, 1, false));
    assert_error(CG_ERR_DTYPE, "cg_std: [2,3]");
    assert_null(cg_logsumexp(ctx, i, NULL, 0, false));
    assert_error(CG_ERR_DTYPE, "cg_logsumexp: [2,3]");
    assert_null(cg_norm(ctx, i, 2, NULL, 0, false));
    assert_error(CG_ERR_DTYPE, "cg_norm: [2,3]");
    assert_null(cg_std(ctx, f, (int[]){2}, 1, 1, false));
    assert_error(CG_ERR_INDEX, "cg_std: [2,3]: axis 2 out of range for rank 2");
    assert_null(cg_logsumexp(ctx, f, (int[]){-3}, 1, false));
    assert_error(CG_ERR_INDEX, "cg_logsumexp: [2,3]: axis -3");
    assert_null(cg_max(ctx, f, (int[]){0, 0}, 2, false));
    assert_error(CG_ERR_ARG, "cg_max: [2,3]: axis 0 repeated");
    assert_null(cg_norm(ctx, f, 0, NULL, 0, false));
    assert_error(CG_ERR_ARG, "cg_norm: [2,3]: p = 0");
    assert_null(cg_norm(ctx, f, NAN, NULL, 0, false));
    assert_error(CG_ERR_ARG, "cg_norm");
    assert_null(cg_norm(ctx, f, -INFINITY, NULL, 0, false));
    assert_error(CG_ERR_ARG, "cg_norm");
    assert_null(cg_min(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(2, 0)), (int[]){1}, 1, false));
    assert_error(CG_ERR_SHAPE, "cg_min: [2,0]: reducing an empty dimension");
    assert_null(cg_var(ctx, NULL, NULL, 0, 1, false));
    assert_error(CG_ERR_ARG, "cg_var: tensor is NULL");
    assert_null(cg_norm(ctx, NULL, -1, NULL, 0, false));
    assert_error(CG_ERR_ARG, "cg_norm: tensor is NULL");
}

#define T(name) cmocka_unit_test_setup_teardown(name, ctx_setup, ctx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_reduce_grad_max_min_by_hand),
        T(test_reduce_grad_max_min_ties_go_to_first),
        T(test_reduce_grad_max_min_gradcheck),
        T(test_reduce_grad_var_std_by_hand),
        T(test_reduce_grad_var_std_gradcheck),
        T(test_reduce_grad_var_std_edges),
        T(test_reduce_grad_logsumexp_by_hand),
        T(test_reduce_grad_logsumexp_stable),
        T(test_reduce_grad_logsumexp_gradcheck),
        T(test_reduce_grad_norm_by_hand),
        T(test_reduce_grad_norm_zero_and_ties),
        T(test_reduce_grad_norm_gradcheck),
        T(test_reduce_grad_f32_matches_f64),
        T(test_reduce_grad_heap_results),
        T(test_reduce_grad_errors),
    };
    return cmocka_run_group_tests_name("reduce_grad", tests, NULL, NULL);
}
