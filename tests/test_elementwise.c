/* Elementwise kernels through the ops: strided, broadcast and large inputs,
 * dtype promotion, conversions, NaN, and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "testutil.h"

static cg_tensor *mat(cg_ctx *ctx, cg_dtype dt, int64_t r, int64_t c, double start) {
    return cg_view(ctx, cg_arange(ctx, dt, start, start + (double)(r * c), 1), CG_SHAPE(r, c));
}

static void test_elementwise_add_broadcast_row_and_column(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = mat(ctx, CG_F32, 2, 3, 0);            /* [2,3] */
    cg_tensor *row = cg_arange(ctx, CG_F32, 10, 40, 10); /* [3] */
    cg_tensor *col = cg_view(ctx, cg_arange(ctx, CG_F32, 1, 3, 1), CG_SHAPE(2, 1));
    assert_values(cg_add(ctx, a, row), (double[]){10, 21, 32, 13, 24, 35}, 6, 0);
    assert_values(cg_mul(ctx, a, col), (double[]){0, 1, 2, 6, 8, 10}, 6, 0);
    cg_tensor *outer = cg_sub(ctx, col, row); /* [2,1] - [3] -> [2,3] */
    assert_int_equal(cg_dim(outer, 0), 2);
    assert_values(outer, (double[]){-9, -19, -29, -8, -18, -28}, 6, 0);
}

static void test_elementwise_strided_operands(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = mat(ctx, CG_F64, 3, 4, 0);
    cg_tensor *t = cg_transpose(ctx, a, 0, 1); /* [4,3], strides (1,4) */
    cg_tensor *s = cg_slice(ctx, mat(ctx, CG_F64, 4, 6, 0), 1, 0, 6, 2); /* [4,3] */
    cg_tensor *r = cg_add(ctx, t, s);
    /* t[i][j] = 4j + i, s[i][j] = 6i + 2j */
    double want[12];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) want[i * 3 + j] = 4 * j + i + 6 * i + 2 * j;
    assert_values(r, want, 12, 0);
    assert_true(cg_is_contiguous(r));
}

static void test_elementwise_unary_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(4), (double[]){-2, -0.5, 0, 1.5});
    assert_values(cg_relu(ctx, x), (double[]){0, 0, 0, 1.5}, 4, 0);
    assert_values(cg_abs(ctx, x), (double[]){2, 0.5, 0, 1.5}, 4, 0);
    assert_values(cg_sign(ctx, x), (double[]){-1, -1, 0, 1}, 4, 0);
    assert_values(cg_square(ctx, x), (double[]){4, 0.25, 0, 2.25}, 4, 0);
    assert_values(cg_neg(ctx, x), (double[]){2, 0.5, 0, -1.5}, 4, 0);
    assert_values(cg_exp(ctx, x), (double[]){exp(-2), exp(-0.5), 1, exp(1.5)}, 4, 1e-15);
    assert_values(cg_tanh(ctx, x), (double[]){tanh(-2), tanh(-0.5), 0, tanh(1.5)}, 4, 1e-15);
    assert_values(cg_sigmoid(ctx, x),
                  (double[]){1 / (1 + exp(2)), 1 / (1 + exp(0.5)), 0.5, 1 / (1 + exp(-1.5))}, 4,
                  1e-15);
    assert_values(cg_erf(ctx, x), (double[]){erf(-2), erf(-0.5), 0, erf(1.5)}, 4, 1e-15);
    cg_tensor *p = cg_from_array(ctx, CG_F32, CG_SHAPE(3), (float[]){0.25f, 1, 4});
    assert_values(cg_sqrt(ctx, p), (double[]){0.5, 1, 2}, 3, 1e-7);
    assert_values(cg_rsqrt(ctx, p), (double[]){2, 1, 0.5}, 3, 1e-7);
    assert_values(cg_log(ctx, p), (double[]){log(0.25), 0, log(4)}, 3, 1e-6);
    assert_values(cg_log1p(ctx, p), (double[]){log1p(0.25), log(2), log(5)}, 3, 1e-6);
    assert_values(cg_sin(ctx, p), (double[]){sin(0.25), sin(1), sin(4)}, 3, 1e-6);
    assert_values(cg_cos(ctx, p), (double[]){cos(0.25), cos(1), cos(4)}, 3, 1e-6);
}

static void test_elementwise_binary_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = cg_from_array(ctx, CG_F64, CG_SHAPE(3), (double[]){1, -2, 9});
    cg_tensor *b = cg_from_array(ctx, CG_F64, CG_SHAPE(3), (double[]){4, 2, 0.5});
    assert_values(cg_div(ctx, a, b), (double[]){0.25, -1, 18}, 3, 0);
    assert_values(cg_pow(ctx, b, a), (double[]){4, 0.25, pow(0.5, 9)}, 3, 1e-15);
    assert_values(cg_maximum(ctx, a, b), (double[]){4, 2, 9}, 3, 0);
    assert_values(cg_minimum(ctx, a, b), (double[]){1, -2, 0.5}, 3, 0);
}

static void test_elementwise_nan_propagates(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F32, CG_SHAPE(2), (float[]){NAN, 1});
    cg_tensor *y = cg_from_array(ctx, CG_F32, CG_SHAPE(2), (float[]){0, NAN});
    double got[2];
    cg_copy_to_array(cg_relu(ctx, x), CG_F64, got);
    assert_true(isnan(got[0]));
    cg_copy_to_array(cg_maximum(ctx, x, y), CG_F64, got);
    assert_true(isnan(got[0]) && isnan(got[1]));
    cg_copy_to_array(cg_minimum(ctx, y, x), CG_F64, got);
    assert_true(isnan(got[0]) && isnan(got[1]));
    cg_copy_to_array(cg_sign(ctx, x), CG_F64, got);
    assert_true(isnan(got[0]));
}

static void test_elementwise_dtype_promotion(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *i = cg_arange(ctx, CG_I64, 0, 3, 1);
    cg_tensor *f = cg_full(ctx, CG_F32, CG_SHAPE(3), 0.5);
    cg_tensor *d = cg_full(ctx, CG_F64, CG_SHAPE(1), 2);
    assert_int_equal(cg_dtype_of(cg_add(ctx, i, i)), CG_I64);
    assert_int_equal(cg_dtype_of(cg_add(ctx, i, f)), CG_F32);
    assert_int_equal(cg_dtype_of(cg_mul(ctx, f, d)), CG_F64);
    cg_tensor *q = cg_div(ctx, i, cg_full(ctx, CG_I64, CG_SHAPE(1), 2));
    assert_int_equal(cg_dtype_of(q), CG_F32); /* true division, as PyTorch */
    assert_values(q, (double[]){0, 0.5, 1}, 3, 0);
    assert_int_equal(cg_dtype_of(cg_exp(ctx, i)), CG_F32);
    assert_int_equal(cg_dtype_of(cg_abs(ctx, i)), CG_I64);
}

static void test_elementwise_cast_and_copy(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x =
        cg_from_array(ctx, CG_F64, CG_SHAPE(5), (double[]){-1.7, 2.9, NAN, 1e300, -1e300});
    assert_values(cg_cast(ctx, x, CG_I64),
                  (double[]){-1, 2, 0, 9223372036854775807.0, -9223372036854775808.0}, 5, 0);
    cg_tensor *dst = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3));
    assert_int_equal(cg_copy_(dst, cg_arange(ctx, CG_I64, 0, 3, 1)), CG_OK);
    assert_values(dst, (double[]){0, 1, 2, 0, 1, 2}, 6, 0);
    cg_tensor *col = cg_select(ctx, dst, 1, 1); /* write through a strided view */
    assert_int_equal(cg_fill_(col, 7), CG_OK);
    assert_values(dst, (double[]){0, 7, 2, 0, 7, 2}, 6, 0);
    assert_int_equal(cg_copy_(dst, cg_zeros(ctx, CG_F32, CG_SHAPE(3, 3))), CG_ERR_SHAPE);
    assert_non_null(strstr(cg_last_error(), "cg_copy_: [3,3] does not broadcast to [2,3]"));
    assert_int_equal(cg_copy_(dst, NULL), CG_ERR_ARG);
}

/* Large enough to run on every thread: the split must not change a value. */
static void test_elementwise_parallel_matches_serial(void **state) {
    cg_ctx *ctx = *state;
    int64_t n = 300007;
    cg_tensor *a = cg_arange(ctx, CG_F32, 0, (double)n, 1);
    cg_tensor *b = cg_view(ctx, cg_arange(ctx, CG_F32, 0, (double)n * 2, 1), CG_SHAPE(n, 2));
    cg_tensor *bs = cg_select(ctx, b, 1, 1); /* stride 2 */
    int saved = cg_get_num_threads();
    cg_set_num_threads(1);
    cg_tensor *r1 = cg_mul(ctx, cg_sin(ctx, a), bs);
    cg_set_num_threads(2);
    cg_tensor *r2 = cg_mul(ctx, cg_sin(ctx, a), bs);
    cg_set_num_threads(saved);
    assert_memory_equal(cg_data(r1), cg_data(r2), (size_t)n * sizeof(float));
    float *p = cg_data(r2);
    assert_float_equal(p[n - 1], sinf((float)(n - 1)) * (float)(2 * n - 1), 1e-2);
}

/* Broadcast over a big outer dim, mixed with a transposed operand. */
static void test_elementwise_large_broadcast(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(512, 300));
    cg_tensor *bias = cg_arange(ctx, CG_F64, 0, 300, 1);
    cg_tensor *y = cg_add(ctx, cg_transpose(ctx, cg_transpose(ctx, x, 0, 1), 0, 1), bias);
    double v;
    cg_get(y, (int64_t[]){511, 299}, &v);
    assert_float_equal(v, 300, 0);
    cg_get(y, (int64_t[]){200, 17}, &v);
    assert_float_equal(v, 18, 0);
}

static void test_elementwise_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_clear_error();
    cg_tensor *a = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3));
    cg_tensor *b = cg_zeros(ctx, CG_F32, CG_SHAPE(4, 3));
    assert_null(cg_add(ctx, a, b));
    assert_string_equal(cg_last_error(),
                        "cg_add: [2,3] and [4,3]: dim 0: 2 vs 4 cannot broadcast");
    assert_int_equal(cg_ctx_status(ctx), CG_ERR_SHAPE);
    /* a failed inner op: the outer ops return NULL and keep the cause */
    assert_null(cg_exp(ctx, cg_mul(ctx, cg_add(ctx, a, b), a)));
    assert_non_null(strstr(cg_last_error(), "cg_add"));
    cg_clear_error();
    assert_null(cg_exp(ctx, NULL));
    assert_string_equal(cg_last_error(), "cg_exp: tensor is NULL");
}

static void test_elementwise_heap_results_free_cleanly(void **state) {
    (void)state;
    cg_tensor *i = cg_arange(NULL, CG_I64, 0, 4, 1);
    cg_tensor *f = cg_ones(NULL, CG_F64, CG_SHAPE(4));
    cg_tensor *r = cg_add(NULL, i, f); /* casts i on the heap, then frees it */
    assert_values(r, (double[]){1, 2, 3, 4}, 4, 0);
    cg_tensor_free(i);
    cg_tensor_free(f);
    cg_tensor_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elementwise_add_broadcast_row_and_column),
        cmocka_unit_test(test_elementwise_strided_operands),
        cmocka_unit_test(test_elementwise_unary_values),
        cmocka_unit_test(test_elementwise_binary_values),
        cmocka_unit_test(test_elementwise_nan_propagates),
        cmocka_unit_test(test_elementwise_dtype_promotion),
        cmocka_unit_test(test_elementwise_cast_and_copy),
        cmocka_unit_test(test_elementwise_parallel_matches_serial),
        cmocka_unit_test(test_elementwise_large_broadcast),
        cmocka_unit_test(test_elementwise_errors),
        cmocka_unit_test(test_elementwise_heap_results_free_cleanly),
    };
    return cmocka_run_group_tests_name("elementwise", tests, ctx_setup, ctx_teardown);
}
