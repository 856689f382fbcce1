/* nn/init.c: uniform, normal and constant fills, xavier and kaiming bounds
 * and standard deviations for both fan modes and the usual gains, fans of a
 * 3-D tensor, errors, and determinism. Moments are checked on a fixed seed
 * with loose tolerances. */
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
typedef struct moments {
    double mean, std, min, max;
} moments;

static moments moments_of(const cg_tensor *t) {
    int64_t n = cg_numel(t);
    double *v = malloc((size_t)n * sizeof *v);
    assert_non_null(v);
    assert_int_equal(cg_copy_to_array(t, CG_F64, v), CG_OK);
    moments m = {0, 0, INFINITY, -INFINITY};
    for (int64_t i = 0; i < n; i++) {
        m.mean += v[i];
        m.min = fmin(m.min, v[i]);
        m.max = fmax(m.max, v[i]);
    }
    m.mean /= (double)n;
    for (int64_t i = 0; i < n; i++) m.std += (v[i] - m.mean) * (v[i] - m.mean);
    m.std = sqrt(m.std / (double)n);
    free(v);
    return m;
}

/* Values of U(-bound, bound): inside it, reaching near both ends, std
 * bound / sqrt(3) and mean 0 (within 5% of the bound). */
static void assert_uniform(const cg_tensor *t, double bound) {
    moments m = moments_of(t);
    assert_true(m.min >= -bound && m.max <= bound);
    assert_true(m.min < -0.98 * bound && m.max > 0.98 * bound);
    assert_float_equal(m.mean, 0.0, 0.05 * bound);
    assert_float_equal(m.std, bound / sqrt(3.0), 0.05 * bound);
}

/* Values of N(0, std): sample mean and std within 5% of std. */
static void assert_normal(const cg_tensor *t, double std) {
    moments m = moments_of(t);
    assert_float_equal(m.mean, 0.0, 0.05 * std);
    assert_float_equal(m.std, std, 0.05 * std);
}

/* ---- plain fills ---------------------------------------------------------------- */
static void test_init_uniform_range_and_moments(void **state) {
    (void)state;
    cg_rng rng = seeded(1);
    cg_tensor *t = cg_zeros(NULL, CG_F64, CG_SHAPE(200, 100));
    assert_int_equal(cg_init_uniform_(t, &rng, -2.0, 3.0), CG_OK);
    moments m = moments_of(t);
    assert_true(m.min >= -2.0 && m.max < 3.0);
    assert_true(m.min < -1.95 && m.max > 2.95);
    assert_float_equal(m.mean, 0.5, 0.05);
    assert_float_equal(m.std, 5.0 / sqrt(12.0), 0.05);
    cg_tensor_free(t);
}

static void test_init_normal_moments(void **state) {
    (void)state;
    cg_rng rng = seeded(2);
    cg_tensor *t = cg_zeros(NULL, CG_F32, CG_SHAPE(100, 200));
    assert_int_equal(cg_init_normal_(t, &rng, 1.0, 2.0), CG_OK);
    moments m = moments_of(t);
    assert_float_equal(m.mean, 1.0, 0.05);
    assert_float_equal(m.std, 2.0, 0.05);
    assert_true(m.min < 1.0 - 3 * 2.0 && m.max > 1.0 + 3 * 2.0); /* tails reached */
    cg_tensor_free(t);
}

static void test_init_constant_fills_every_dtype(void **state) {
    (void)state;
    const cg_dtype dts[] = {CG_F32, CG_F64};
    for (int k = 0; k < 2; k++) {
        cg_tensor *t = cg_zeros(NULL, dts[k], CG_SHAPE(3, 4));
        assert_int_equal(cg_init_constant_(t, 7.0), CG_OK);
        moments m = moments_of(t);
        assert_true(m.min == 7.0 && m.max == 7.0);
        cg_tensor_free(t);
    }
}

/* Parameters are leaves requiring gradients: init writes into them in place. */
static void test_init_fills_a_leaf_requiring_grad(void **state) {
    (void)state;
    cg_rng rng = seeded(3);
    cg_tensor *t = cg_zeros(NULL, CG_F32, CG_SHAPE(64, 32));
    assert_int_equal(cg_set_requires_grad(t, true), CG_OK);
    assert_int_equal(cg_init_xavier_uniform_(t, &rng, 1.0), CG_OK);
    assert_true(cg_requires_grad(t) && cg_is_leaf(t));
    assert_uniform(t, sqrt(6.0 / 96.0));
    cg_tensor_free(t);
}

/* ---- gains ------------------------------------------------------------------------ */
static void test_init_gain_values(void **state) {
    (void)state;
    assert_float_equal(cg_init_gain(CG_ACT_NONE, 0), 1.0, 1e-15);
    assert_float_equal(cg_init_gain(CG_ACT_SIGMOID, 0), 1.0, 1e-15);
    assert_float_equal(cg_init_gain(CG_ACT_RELU, 0), sqrt(2.0), 1e-15);
    assert_float_equal(cg_init_gain(CG_ACT_TANH, 0), 5.0 / 3.0, 1e-15);
    assert_float_equal(cg_init_gain(CG_ACT_LEAKY_RELU, 0.2), sqrt(2.0 / 1.04), 1e-15);
    assert_float_equal(cg_init_gain(CG_ACT_LEAKY_RELU, 0.0), sqrt(2.0), 1e-15);
    /* Linear's a = sqrt(5): gain sqrt(1/3), so its bound is 1/sqrt(fan_in). */
    assert_float_equal(cg_init_gain(CG_ACT_LEAKY_RELU, sqrt(5.0)), sqrt(1.0 / 3.0), 1e-15);
}

/* ---- xavier ------------------------------------------------------------------------ */
/* [out 300, in 200]: bound gain * sqrt(6 / (fan_in + fan_out)). */
static void test_init_xavier_uniform_bound(void **state) {
    (void)state;
    cg_rng rng = seeded(4);
    cg_tensor *t = cg_zeros(NULL, CG_F64, CG_SHAPE(300, 200));
    assert_int_equal(cg_init_xavier_uniform_(t, &rng, 2.0), CG_OK);
    assert_uniform(t, 2.0 * sqrt(6.0 / 500.0));
    assert_int_equal(cg_init_xavier_uniform_(t, &rng, 1.0), CG_OK);
    assert_uniform(t, sqrt(6.0 / 500.0));
    cg_tensor_free(t);
}

/* std gain * sqrt(2 / (fan_in + fan_out)). */
static void test_init_xavier_normal_std(void **state) {
    (void)state;
    cg_rng rng = seeded(5);
    cg_tensor *t = cg_zeros(NULL, CG_F64, CG_SHAPE(300, 200));
    assert_int_equal(cg_init_xavier_normal_(t, &rng, 5.0 / 3.0), CG_OK);
    assert_normal(t, 5.0 / 3.0 * sqrt(2.0 / 500.0));
    cg_tensor_free(t);
}

/* ---- kaiming ------------------------------------------------------------------------ */
/* [out 100, in 400]: std gain / sqrt(fan), the uniform bound sqrt(3) std. */
typedef struct kaiming_case {
    double a;
    cg_fan mode;
    cg_act act;
    double std;
} kaiming_case;

static void test_init_kaiming_fan_modes_and_gains(void **state) {
    (void)state;
    const kaiming_case cases[] = {
        {0, CG_FAN_IN, CG_ACT_RELU, sqrt(2.0) / 20},
        {0, CG_FAN_OUT, CG_ACT_RELU, sqrt(2.0) / 10},
        {0.2, CG_FAN_IN, CG_ACT_LEAKY_RELU, sqrt(2.0 / 1.04) / 20},
        {0.5, CG_FAN_OUT, CG_ACT_LEAKY_RELU, sqrt(2.0 / 1.25) / 10},
        {0, CG_FAN_IN, CG_ACT_TANH, 5.0 / 3.0 / 20},
        {0, CG_FAN_OUT, CG_ACT_TANH, 5.0 / 3.0 / 10},
    };
    cg_rng rng = seeded(6);
    cg_tensor *t = cg_zeros(NULL, CG_F64, CG_SHAPE(100, 400));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const kaiming_case *c = &cases[i];
        assert_int_equal(cg_init_kaiming_uniform_(t, &rng, c->a, c->mode, c->act), CG_OK);
        assert_uniform(t, sqrt(3.0) * c->std);
        assert_int_equal(cg_init_kaiming_normal_(t, &rng, c->a, c->mode, c->act), CG_OK);
        assert_normal(t, c->std);
    }
    cg_tensor_free(t);
}

/* [out 40, in 20, k 5]: the receptive field 5 multiplies both fans, so
 * fan_in 100 and fan_out 200. */
static void test_init_fans_of_3d_tensor(void **state) {
    (void)state;
    cg_rng rng = seeded(8);
    cg_tensor *t = cg_zeros(NULL, CG_F64, CG_SHAPE(40, 20, 5));
    assert_int_equal(cg_init_xavier_uniform_(t, &rng, 1.0), CG_OK);
    assert_uniform(t, sqrt(6.0 / 300.0));
    assert_int_equal(cg_init_kaiming_uniform_(t, &rng, 0, CG_FAN_IN, CG_ACT_RELU), CG_OK);
    assert_uniform(t, sqrt(3.0) * sqrt(2.0 / 100.0));
    assert_int_equal(cg_init_kaiming_normal_(t, &rng, 0, CG_FAN_OUT, CG_ACT_RELU), CG_OK);
    assert_normal(t, sqrt(2.0 / 200.0));
    cg_tensor_free(t);
}

/* ---- errors and determinism ------------------------------------------------------- */
/* Fans need 2 dims: a 1-D or 0-D tensor is refused and left unchanged. */
static void test_init_fans_need_two_dims(void **state) {
    (void)state;
    cg_rng rng = seeded(9);
    cg_tensor *v = cg_full(NULL, CG_F64, CG_SHAPE(5), 7.0);
    cg_tensor *s = cg_scalar(NULL, CG_F64, 7.0);
    assert_int_equal(cg_init_xavier_uniform_(v, &rng, 1.0), CG_ERR_SHAPE);
    assert_error(CG_ERR_SHAPE, "cg_init_xavier_uniform_: [5]");
    assert_int_equal(cg_init_xavier_normal_(v, &rng, 1.0), CG_ERR_SHAPE);
    assert_error(CG_ERR_SHAPE, "cg_init_xavier_normal_: [5]");
    assert_int_equal(cg_init_kaiming_uniform_(v, &rng, 0, CG_FAN_IN, CG_ACT_RELU),
                     CG_ERR_SHAPE);
    assert_error(CG_ERR_SHAPE, "cg_init_kaiming_uniform_: [5]");
    assert_int_equal(cg_init_kaiming_normal_(s, &rng, 0, CG_FAN_OUT, CG_ACT_RELU),
                     CG_ERR_SHAPE);
    assert_error(CG_ERR_SHAPE, "cg_init_kaiming_normal_: []");
    moments m = moments_of(v);
    assert_true(m.min == 7.0 && m.max == 7.0);
    assert_float_equal(cg_item(s), 7.0, 0);
    cg_tensor_free(v);
    cg_tensor_free(s);
}

static void test_init_null_tensor(void **state) {
    (void)state;
    cg_rng rng = seeded(10);
    assert_int_equal(cg_init_uniform_(NULL, &rng, 0, 1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_init_uniform_");
    assert_int_equal(cg_init_normal_(NULL, &rng, 0, 1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_init_normal_");
    assert_int_equal(cg_init_constant_(NULL, 1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_init_constant_");
    assert_int_equal(cg_init_xavier_uniform_(NULL, &rng, 1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_init_xavier_uniform_");
    assert_int_equal(cg_init_kaiming_normal_(NULL, &rng, 0, CG_FAN_IN, CG_ACT_RELU),
                     CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_init_kaiming_normal_");
}

/* Bad arguments are refused and change nothing: integer tensors, no rng,
 * a mode or activation outside its enum, bounds that are no interval. */
static void test_init_bad_arguments(void **state) {
    (void)state;
    cg_rng rng = seeded(11);
    cg_tensor *ids = cg_zeros(NULL, CG_I64, CG_SHAPE(3, 4));
    cg_tensor *w = cg_full(NULL, CG_F64, CG_SHAPE(3, 4), 7.0);
    assert_int_equal(cg_init_constant_(ids, 1), CG_ERR_DTYPE);
    assert_error(CG_ERR_DTYPE, "cg_init_constant_: a i64 tensor");
    assert_int_equal(cg_init_normal_(ids, &rng, 0, 1), CG_ERR_DTYPE);
    assert_error(CG_ERR_DTYPE, "cg_init_normal_");
    assert_int_equal(cg_init_xavier_uniform_(ids, &rng, 1), CG_ERR_DTYPE);
    assert_error(CG_ERR_DTYPE, "cg_init_xavier_uniform_");
    assert_int_equal(cg_init_uniform_(w, NULL, 0, 1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_init_uniform_: rng is NULL");
    assert_int_equal(cg_init_uniform_(w, &rng, 1, 0), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_init_uniform_: bounds [1, 0]");
    assert_int_equal(cg_init_normal_(w, &rng, 0, -1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_init_normal_: mean 0, std -1");
    assert_int_equal(cg_init_kaiming_uniform_(w, &rng, 0, (cg_fan)7, CG_ACT_RELU), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_init_kaiming_uniform_: mode 7");
    assert_int_equal(cg_init_kaiming_normal_(w, &rng, 0, CG_FAN_IN, (cg_act)99), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_init_kaiming_normal_: unknown activation 99");
    assert_true(isnan(cg_init_gain((cg_act)99, 0)));
    assert_error(CG_ERR_ARG, "cg_init_gain: unknown activation 99");
    moments m = moments_of(w);
    assert_true(m.min == 7.0 && m.max == 7.0);
    cg_tensor_free(ids);
    cg_tensor_free(w);
}

/* Same seed, same values (every init); another seed, other values. */
static void test_init_same_seed_same_values(void **state) {
    (void)state;
    double a[60], b[60], c[60];
    double *outs[] = {a, b, c};
    const uint64_t seeds[] = {42, 42, 43};
    for (int k = 0; k < 3; k++) {
        cg_rng rng = seeded(seeds[k]);
        cg_tensor *t = cg_zeros(NULL, CG_F64, CG_SHAPE(6, 10));
        assert_int_equal(
            cg_init_kaiming_uniform_(t, &rng, sqrt(5.0), CG_FAN_IN, CG_ACT_LEAKY_RELU), CG_OK);
        assert_int_equal(cg_copy_to_array(t, CG_F64, outs[k]), CG_OK);
        cg_tensor_free(t);
    }
    assert_memory_equal(a, b, sizeof a);
    int same = 0;
    for (int i = 0; i < 60; i++) same += a[i] == c[i];
    assert_true(same < 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_uniform_range_and_moments),
        cmocka_unit_test(test_init_normal_moments),
        cmocka_unit_test(test_init_constant_fills_every_dtype),
        cmocka_unit_test(test_init_fills_a_leaf_requiring_grad),
        cmocka_unit_test(test_init_gain_values),
        cmocka_unit_test(test_init_xavier_uniform_bound),
        cmocka_unit_test(test_init_xavier_normal_std),
        cmocka_unit_test(test_init_kaiming_fan_modes_and_gains),
        cmocka_unit_test(test_init_fans_of_3d_tensor),
        cmocka_unit_test(test_init_fans_need_two_dims),
        cmocka_unit_test(test_init_null_tensor),
        cmocka_unit_test(test_init_bad_arguments),
        cmocka_unit_test(test_init_same_seed_same_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
