/* cg_matmul: torch.matmul's shape rules on top of the GEMM wrapper, checked
 * against a naive float64 loop on the operands' own strides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "testutil.h"

static cg_tensor *randn(cg_ctx *ctx, cg_rng *rng, cg_dtype dt, int n, const int64_t *s) {
    return cg_randn(ctx, rng, dt, n, s, 0, 1);
}

/* c[i][j] = sum_k a[i][k] b[k][j], all three [.,.] 2-D tensors. */
static void naive_check(const cg_tensor *a, const cg_tensor *b, const cg_tensor *c,
                        double tol) {
    int64_t m = cg_dim(a, 0), k = cg_dim(a, 1), n = cg_dim(b, 1);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double want = 0, x, y, got;
            for (int64_t p = 0; p < k; p++) {
                cg_get(a, (int64_t[]){i, p}, &x);
                cg_get(b, (int64_t[]){p, j}, &y);
                want += x * y;
            }
            cg_get(c, (int64_t[]){i, j}, &got);
            assert_float_equal(got, want, tol);
        }
}

static void test_matmul_2d_against_naive(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 1);
    const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 2}, {17, 1, 9}, {1, 33, 1}, {64, 31, 70}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        cg_tensor *a = randn(ctx, &rng, CG_F64, CG_SHAPE(shapes[s][0], shapes[s][1]));
        cg_tensor *b = randn(ctx, &rng, CG_F64, CG_SHAPE(shapes[s][1], shapes[s][2]));
        cg_tensor *c = cg_matmul(ctx, a, b);
        assert_non_null(c);
        assert_int_equal(cg_dim(c, 0), shapes[s][0]);
        assert_int_equal(cg_dim(c, 1), shapes[s][2]);
        naive_check(a, b, c, 1e-12);
    }
}

static void test_matmul_transposed_and_sliced_inputs(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 2);
    cg_tensor *at = cg_transpose(ctx, randn(ctx, &rng, CG_F32, CG_SHAPE(7, 5)), 0, 1);
    cg_tensor *bs = cg_slice(ctx, randn(ctx, &rng, CG_F32, CG_SHAPE(7, 12)), 1, 1, 12, 3);
    cg_tensor *c = cg_matmul(ctx, at, bs); /* [5,7] x [7,4] */
    assert_int_equal(cg_dim(c, 1), 4);
    naive_check(at, bs, c, 1e-5);
    cg_tensor *e = cg_expand(ctx, randn(ctx, &rng, CG_F32, CG_SHAPE(1, 4)), CG_SHAPE(7, 4));
    naive_check(at, e, cg_matmul(ctx, at, e), 1e-5); /* stride-0 operand */
}

static void test_matmul_vector_rules(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *v = cg_arange(ctx, CG_F64, 1, 4, 1); /* [3] */
    cg_tensor *m = cg_view(ctx, cg_arange(ctx, CG_F64, 0, 6, 1), CG_SHAPE(3, 2));
    cg_tensor *dot = cg_matmul(ctx, v, v);
    assert_int_equal(cg_ndim(dot), 0);
    assert_float_equal(cg_item(dot), 14, 0);
    cg_tensor *vm = cg_matmul(ctx, v, m); /* [3] x [3,2] -> [2] */
    assert_int_equal(cg_ndim(vm), 1);
    double x;
    cg_get(vm, (int64_t[]){1}, &x);
    assert_float_equal(x, 1 * 1 + 2 * 3 + 3 * 5, 0);
    cg_tensor *mv = cg_matmul(ctx, cg_transpose(ctx, m, 0, 1), v); /* [2,3] x [3] -> [2] */
    assert_int_equal(cg_ndim(mv), 1);
    cg_get(mv, (int64_t[]){0}, &x);
    assert_float_equal(x, 0 * 1 + 2 * 2 + 4 * 3, 0);
}

static void test_matmul_batched_broadcast(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 3);
    cg_tensor *a = randn(ctx, &rng, CG_F64, CG_SHAPE(2, 1, 4, 3));
    cg_tensor *b = randn(ctx, &rng, CG_F64, CG_SHAPE(5, 3, 6));
    cg_tensor *c = cg_matmul(ctx, a, b); /* [2,5,4,6] */
    assert_int_equal(cg_ndim(c), 4);
    assert_int_equal(cg_dim(c, 0), 2);
    assert_int_equal(cg_dim(c, 1), 5);
    for (int64_t i = 0; i < 2; i++)
        for (int64_t j = 0; j < 5; j++) {
            cg_tensor *ai = cg_select(ctx, cg_select(ctx, a, 0, i), 0, 0);
            cg_tensor *bj = cg_select(ctx, b, 0, j);
            cg_tensor *cij = cg_select(ctx, cg_select(ctx, c, 0, i), 0, j);
            naive_check(ai, bj, cij, 1e-12);
        }
    cg_tensor *v = randn(ctx, &rng, CG_F64, CG_SHAPE(3));
    cg_tensor *bv = cg_matmul(ctx, a, v); /* [2,1,4,3] x [3] -> [2,1,4] */
    assert_int_equal(cg_ndim(bv), 3);
    assert_int_equal(cg_dim(bv, 2), 4);
}

static void test_matmul_zero_size(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = cg_ones(ctx, CG_F32, CG_SHAPE(3, 0));
    cg_tensor *b = cg_ones(ctx, CG_F32, CG_SHAPE(0, 2));
    cg_tensor *c = cg_matmul(ctx, a, b); /* k = 0: zeros */
    assert_non_null(c);
    for (int64_t i = 0; i < 6; i++) assert_float_equal(((float *)cg_data(c))[i], 0, 0);
    assert_int_equal(cg_numel(cg_matmul(ctx, b, cg_ones(ctx, CG_F32, CG_SHAPE(2, 5)))), 0);
}

static void test_matmul_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F32, CG_SHAPE(64, 784));
    cg_tensor *w = cg_zeros(ctx, CG_F32, CG_SHAPE(128, 10));
    assert_null(cg_matmul(ctx, x, w));
    assert_string_equal(cg_last_error(),
                        "cg_matmul: [64,784] x [128,10]: inner dims 784 != 128");
    assert_int_equal(cg_last_status(), CG_ERR_SHAPE);
    assert_null(cg_matmul(ctx, x, cg_zeros(ctx, CG_F64, CG_SHAPE(784, 2))));
    assert_int_equal(cg_last_status(), CG_ERR_DTYPE);
    assert_null(cg_matmul(ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(2, 2)),
                          cg_zeros(ctx, CG_I64, CG_SHAPE(2, 2))));
    assert_int_equal(cg_last_status(), CG_ERR_DTYPE);
    assert_null(cg_matmul(ctx, cg_scalar(ctx, CG_F32, 1), w));
    assert_non_null(strstr(cg_last_error(), "rank >= 1"));
    assert_null(cg_matmul(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3, 4)),
                          cg_zeros(ctx, CG_F32, CG_SHAPE(5, 4, 1))));
    assert_non_null(strstr(cg_last_error(), "cannot broadcast"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_2d_against_naive),
        cmocka_unit_test(test_matmul_transposed_and_sliced_inputs),
        cmocka_unit_test(test_matmul_vector_rules),
        cmocka_unit_test(test_matmul_batched_broadcast),
        cmocka_unit_test(test_matmul_zero_size),
        cmocka_unit_test(test_matmul_errors),
    };
    return cmocka_run_group_tests_name("matmul", tests, ctx_setup, ctx_teardown);
}
