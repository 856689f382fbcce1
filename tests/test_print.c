/* Tests for tensor/print.c: exact text of cg_format for each layout and
 * number format, plus cg_fprint and snprintf-like truncation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tensor/internal.h"
#include "cgrad.h"

#include <math.h>
#include <string.h>

#define BUF 4096

/* Formats t, checks the return value is the text's length, frees t (caller
 * owned) and compares with want. */
static void check_format(cg_tensor *t, const char *want) {
    char buf[BUF];
    assert_non_null(t);
    size_t n = cg_format(t, buf, sizeof buf);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, want);
    cg_tensor_free(t);
}

static cg_tensor *f64_of(int ndim, const int64_t *shape, const double *data) {
    return cg_from_array(NULL, CG_F64, ndim, shape, data);
}

static void test_print_f32_integral_2x2(void **state) {
    (void)state;
    const float d[] = {1, 2, 3, 4};
    check_format(cg_from_array(NULL, CG_F32, CG_SHAPE(2, 2), d),
                 "tensor([[1., 2.],\n"
                 "        [3., 4.]], shape=[2,2], dtype=f32)");
}

static void test_print_f64_decimals(void **state) {
    (void)state;
    const double d[] = {1.5, -2.25, 3.0};
    check_format(f64_of(CG_SHAPE(3), d),
                 "tensor([ 1.5000, -2.2500,  3.0000], shape=[3], dtype=f64)");
}

static void test_print_negative_alignment(void **state) {
    (void)state;
    const double d[] = {-1.5, 10.25, 3.0, -100.125};
    check_format(f64_of(CG_SHAPE(2, 2), d),
                 "tensor([[  -1.5000,   10.2500],\n"
                 "        [   3.0000, -100.1250]], shape=[2,2], dtype=f64)");
    const float g[] = {-1, 20, 3, -400};
    check_format(cg_from_array(NULL, CG_F32, CG_SHAPE(2, 2), g),
                 "tensor([[  -1.,   20.],\n"
                 "        [   3., -400.]], shape=[2,2], dtype=f32)");
}

static void test_print_rank0(void **state) {
    (void)state;
    check_format(cg_scalar(NULL, CG_F64, 3.5), "tensor(3.5000, shape=[], dtype=f64)");
    check_format(cg_scalar(NULL, CG_F32, -2.0), "tensor(-2., shape=[], dtype=f32)");
    check_format(cg_scalar(NULL, CG_I64, 7.0), "tensor(7, shape=[], dtype=i64)");
}

static void test_print_1d(void **state) {
    (void)state;
    const float d[] = {0.25f, 0.5f, 1.0f};
    check_format(cg_from_array(NULL, CG_F32, CG_SHAPE(3), d),
                 "tensor([0.2500, 0.5000, 1.0000], shape=[3], dtype=f32)");
}

static void test_print_3d(void **state) {
    (void)state;
    cg_ctx *ctx = cg_ctx_new();
    assert_non_null(ctx);
    cg_tensor *t = cg_view(ctx, cg_arange(ctx, CG_F32, 0, 8, 1), CG_SHAPE(2, 2, 2));
    char buf[BUF];
    cg_format(t, buf, sizeof buf);
    assert_string_equal(buf, "tensor([[[0., 1.],\n"
                             "         [2., 3.]],\n"
                             "\n"
                             "        [[4., 5.],\n"
                             "         [6., 7.]]], shape=[2,2,2], dtype=f32)");
    cg_ctx_free(ctx);
}

static void test_print_i64(void **state) {
    (void)state;
    const int64_t d[] = {1, -20, 300, INT64_MIN};
    check_format(cg_from_array(NULL, CG_I64, CG_SHAPE(4), d),
                 "tensor([                   1,                  -20,                  300,\n"
                 "        -9223372036854775808], shape=[4], dtype=i64)");
    check_format(cg_from_array(NULL, CG_I64, CG_SHAPE(3), d),
                 "tensor([  1, -20, 300], shape=[3], dtype=i64)");
}

static void test_print_transposed_view(void **state) {
    (void)state;
    const float d[] = {1, 2, 3, 4, 5, 6};
    cg_tensor *t = cg_from_array(NULL, CG_F32, CG_SHAPE(2, 3), d);
    cg_tensor *tt = cg_transpose(NULL, t, 0, 1);
    assert_non_null(tt);
    assert_false(cg_is_contiguous(tt));
    cg_tensor_free(t); /* the view keeps the storage alive */
    check_format(tt, "tensor([[1., 4.],\n"
                     "        [2., 5.],\n"
                     "        [3., 6.]], shape=[3,2], dtype=f32)");
}

static void test_print_broadcast_view(void **state) {
    (void)state;
    const double d[] = {0.5, 1.0, 2.0};
    cg_tensor *t = f64_of(CG_SHAPE(1, 3), d);
    cg_tensor *e = cg_expand(NULL, t, CG_SHAPE(2, 3));
    assert_non_null(e);
    check_format(e, "tensor([[0.5000, 1.0000, 2.0000],\n"
                    "        [0.5000, 1.0000, 2.0000]], shape=[2,3], dtype=f64)");
    cg_tensor_free(t);
}

static void test_print_summarised(void **state) {
    (void)state;
    cg_ctx *ctx = cg_ctx_new();
    assert_non_null(ctx);
    cg_tensor *t = cg_view(ctx, cg_arange(ctx, CG_I64, 0, 2000, 1), CG_SHAPE(2, 1000));
    char buf[BUF];
    size_t n = cg_format(t, buf, sizeof buf);
    assert_true(n < 200);
    assert_non_null(strstr(buf, "..."));
    assert_non_null(strstr(buf, "[[   0,    1,    2, ...,  997,  998,  999]"));
    assert_non_null(strstr(buf, "1999]]"));
    assert_string_equal(buf, "tensor([[   0,    1,    2, ...,  997,  998,  999],\n"
                             "        [1000, 1001, 1002, ..., 1997, 1998, 1999]],"
                             " shape=[2,1000], dtype=i64)");
    cg_ctx_free(ctx);
}

/* A summarised outer dim prints "...," on its own line, as NumPy does. */
static void test_print_summarised_rows(void **state) {
    (void)state;
    cg_ctx *ctx = cg_ctx_new();
    assert_non_null(ctx);
    cg_tensor *t = cg_view(ctx, cg_arange(ctx, CG_I64, 0, 2000, 1), CG_SHAPE(1000, 2));
    char buf[BUF];
    cg_format(t, buf, sizeof buf);
    assert_string_equal(buf, "tensor([[   0,    1],\n"
                             "        [   2,    3],\n"
                             "        [   4,    5],\n"
                             "        ...,\n"
                             "        [1994, 1995],\n"
                             "        [1996, 1997],\n"
                             "        [1998, 1999]], shape=[1000,2], dtype=i64)");
    cg_ctx_free(ctx);
}

static void test_print_zero_size(void **state) {
    (void)state;
    check_format(cg_zeros(NULL, CG_F32, CG_SHAPE(0, 3)), "tensor([], shape=[0,3], dtype=f32)");
    check_format(cg_zeros(NULL, CG_I64, CG_SHAPE(0)), "tensor([], shape=[0], dtype=i64)");
}

static void test_print_nan_inf(void **state) {
    (void)state;
    const double d[] = {NAN, INFINITY, -INFINITY, 1.5};
    check_format(f64_of(CG_SHAPE(4), d),
                 "tensor([   nan,    inf,   -inf, 1.5000], shape=[4], dtype=f64)");
    const double e[] = {NAN, 2.0};
    check_format(f64_of(CG_SHAPE(2), e), "tensor([nan,  2.], shape=[2], dtype=f64)");
}

static void test_print_scientific(void **state) {
    (void)state;
    const double d[] = {1e-5, 1.0, 12345.678};
    check_format(f64_of(CG_SHAPE(3), d),
                 "tensor([1.0000e-05, 1.0000e+00, 1.2346e+04], shape=[3], dtype=f64)");
    const double big[] = {1e9, -2.0};
    check_format(f64_of(CG_SHAPE(2), big),
                 "tensor([ 1.0000e+09, -2.0000e+00], shape=[2], dtype=f64)");
    const double ratio[] = {0.001, 1.0}; /* ratio exactly 1e3: still fixed */
    check_format(f64_of(CG_SHAPE(2), ratio), "tensor([0.0010, 1.0000], shape=[2], dtype=f64)");
}

/* Long rows wrap at 75 columns, continuing under the opening bracket. */
static void test_print_wraps_long_rows(void **state) {
    (void)state;
    double d[30];
    for (int i = 0; i < 30; i++) d[i] = i + 0.5;
    cg_tensor *t = f64_of(CG_SHAPE(30), d);
    char buf[BUF];
    cg_format(t, buf, sizeof buf);
    int lines = 1;
    for (char *line = buf, *nl; (nl = strchr(line, '\n')); line = nl + 1, lines++) {
        assert_true(nl - line <= 75);
        assert_memory_equal(nl + 1, "        ", 8);
    }
    assert_true(lines >= 4);
    assert_non_null(strstr(buf, "29.5000], shape=[30], dtype=f64)"));
    cg_tensor_free(t);
}

static void test_print_null(void **state) {
    (void)state;
    char buf[32];
    assert_int_equal(cg_format(NULL, buf, sizeof buf), strlen("tensor(NULL)"));
    assert_string_equal(buf, "tensor(NULL)");
}

static void test_print_format_truncates(void **state) {
    (void)state;
    const float d[] = {1, 2, 3, 4};
    cg_tensor *t = cg_from_array(NULL, CG_F32, CG_SHAPE(2, 2), d);
    const char *full = "tensor([[1., 2.],\n        [3., 4.]], shape=[2,2], dtype=f32)";
    char buf[10];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(cg_format(t, buf, sizeof buf), strlen(full));
    assert_string_equal(buf, "tensor([[");
    char one[1] = {'x'};
    assert_int_equal(cg_format(t, one, 1), strlen(full));
    assert_int_equal(one[0], '\0');
    assert_int_equal(cg_format(t, NULL, 0), strlen(full)); /* size query */
    cg_tensor_free(t);
}

static void test_print_fprint_adds_newline(void **state) {
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    cg_tensor *t = cg_scalar(NULL, CG_F64, 0.125);
    cg_fprint(f, t);
    cg_fprint(f, NULL);
    rewind(f);
    char buf[128] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "tensor(0.1250, shape=[], dtype=f64)\ntensor(NULL)\n");
    cg_tensor_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_print_f32_integral_2x2),
        cmocka_unit_test(test_print_f64_decimals),
        cmocka_unit_test(test_print_negative_alignment),
        cmocka_unit_test(test_print_rank0),
        cmocka_unit_test(test_print_1d),
        cmocka_unit_test(test_print_3d),
        cmocka_unit_test(test_print_i64),
        cmocka_unit_test(test_print_transposed_view),
        cmocka_unit_test(test_print_broadcast_view),
        cmocka_unit_test(test_print_summarised),
        cmocka_unit_test(test_print_summarised_rows),
        cmocka_unit_test(test_print_zero_size),
        cmocka_unit_test(test_print_nan_inf),
        cmocka_unit_test(test_print_scientific),
        cmocka_unit_test(test_print_wraps_long_rows),
        cmocka_unit_test(test_print_null),
        cmocka_unit_test(test_print_format_truncates),
        cmocka_unit_test(test_print_fprint_adds_newline),
    };
    return cmocka_run_group_tests_name("print", tests, NULL, NULL);
}
