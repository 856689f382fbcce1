/* tensor/: creation, inspection, element access, contexts and error paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "testutil.h"

static void test_tensor_zeros_ones_full(void **state) {
    (void)state;
    cg_tensor *z = cg_zeros(NULL, CG_F32, CG_SHAPE(2, 3));
    cg_tensor *o = cg_ones(NULL, CG_I64, CG_SHAPE(4));
    cg_tensor *f = cg_full(NULL, CG_F64, CG_SHAPE(1, 2, 2), -2.5);
    assert_non_null(z);
    assert_int_equal(cg_ndim(z), 2);
    assert_int_equal(cg_dim(z, 0), 2);
    assert_int_equal(cg_dim(z, -1), 3);
    assert_int_equal(cg_strides(z)[0], 3);
    assert_int_equal(cg_strides(z)[1], 1);
    assert_true(cg_is_contiguous(z));
    assert_int_equal(cg_dtype_of(o), CG_I64);
    assert_values(z, (double[]){0, 0, 0, 0, 0, 0}, 6, 0);
    assert_values(o, (double[]){1, 1, 1, 1}, 4, 0);
    assert_values(f, (double[]){-2.5, -2.5, -2.5, -2.5}, 4, 0);
    cg_tensor_free(z);
    cg_tensor_free(o);
    cg_tensor_free(f);
}

static void test_tensor_scalar_is_rank0(void **state) {
    (void)state;
    cg_tensor *s = cg_scalar(NULL, CG_F64, 3.5);
    assert_int_equal(cg_ndim(s), 0);
    assert_int_equal(cg_numel(s), 1);
    assert_float_equal(cg_item(s), 3.5, 0);
    cg_tensor_free(s);
}

static void test_tensor_arange_linspace_eye(void **state) {
    (void)state;
    cg_tensor *a = cg_arange(NULL, CG_F64, 0, 1, 0.25);
    assert_values(a, (double[]){0, 0.25, 0.5, 0.75}, 4, 0);
    cg_tensor *d = cg_arange(NULL, CG_I64, 5, 0, -2);
    assert_values(d, (double[]){5, 3, 1}, 3, 0);
    cg_tensor *e = cg_arange(NULL, CG_F32, 3, 3, 1); /* empty */
    assert_int_equal(cg_numel(e), 0);
    cg_tensor *l = cg_linspace(NULL, CG_F64, -1, 1, 5);
    assert_values(l, (double[]){-1, -0.5, 0, 0.5, 1}, 5, 0);
    cg_tensor *l1 = cg_linspace(NULL, CG_F64, 2, 7, 1);
    assert_values(l1, (double[]){2}, 1, 0);
    cg_tensor *i = cg_eye(NULL, CG_F32, 2, 3);
    assert_values(i, (double[]){1, 0, 0, 0, 1, 0}, 6, 0);
    cg_tensor *ts[] = {a, d, e, l, l1, i};
    for (size_t k = 0; k < 6; k++) cg_tensor_free(ts[k]);
}

static void test_tensor_from_array_copies(void **state) {
    (void)state;
    float data[] = {1, 2, 3, 4, 5, 6};
    cg_tensor *t = cg_from_array(NULL, CG_F32, CG_SHAPE(3, 2), data);
    data[0] = 100;
    double v;
    assert_int_equal(cg_get(t, (int64_t[]){0, 0}, &v), CG_OK);
    assert_float_equal(v, 1, 0);
    assert_int_equal(cg_get(t, (int64_t[]){-1, -1}, &v), CG_OK);
    assert_float_equal(v, 6, 0);
    cg_tensor_free(t);
}

static void test_tensor_wrap_borrows(void **state) {
    (void)state;
    double data[] = {1, 2, 3, 4};
    cg_tensor *t = cg_wrap(NULL, CG_F64, CG_SHAPE(2, 2), data);
    assert_ptr_equal(cg_data(t), data);
    assert_int_equal(cg_set(t, (int64_t[]){1, 0}, 9), CG_OK);
    assert_float_equal(data[2], 9, 0);
    data[3] = -1;
    double v;
    assert_int_equal(cg_get(t, (int64_t[]){1, 1}, &v), CG_OK);
    assert_float_equal(v, -1, 0);
    cg_tensor_free(t);
    assert_float_equal(data[0], 1, 0); /* the caller's buffer survives */
}

static void test_tensor_get_set_i64_exact(void **state) {
    (void)state;
    cg_tensor *t = cg_zeros(NULL, CG_I64, CG_SHAPE(2));
    int64_t big = ((int64_t)1 << 60) + 1, got = 0;
    int64_t *p = cg_data(t);
    p[1] = big;
    assert_int_equal(cg_get_i64(t, (int64_t[]){1}, &got), CG_OK);
    assert_int_equal(got, big);
    cg_tensor_free(t);
}

static void test_tensor_item_needs_one_element(void **state) {
    (void)state;
    cg_tensor *t = cg_zeros(NULL, CG_F32, CG_SHAPE(2, 2));
    assert_true(isnan(cg_item(t)));
    assert_int_equal(cg_last_status(), CG_ERR_SHAPE);
    assert_non_null(strstr(cg_last_error(), "cg_item: [2,2]"));
    cg_tensor *one = cg_ones(NULL, CG_F32, CG_SHAPE(1, 1, 1));
    assert_float_equal(cg_item(one), 1, 0);
    cg_tensor_free(t);
    cg_tensor_free(one);
}

static void test_tensor_index_errors(void **state) {
    (void)state;
    cg_tensor *t = cg_zeros(NULL, CG_F32, CG_SHAPE(2, 3));
    double v;
    assert_int_equal(cg_get(t, (int64_t[]){0, 3}, &v), CG_ERR_INDEX);
    assert_non_null(strstr(cg_last_error(), "cg_get: [2,3]: index 3 out of range for dim 1"));
    assert_int_equal(cg_set(t, (int64_t[]){-3, 0}, 1), CG_ERR_INDEX);
    assert_non_null(strstr(cg_last_error(), "cg_set"));
    assert_int_equal(cg_get(NULL, (int64_t[]){0}, &v), CG_ERR_ARG);
    assert_int_equal(cg_dim(t, 2), -1);
    cg_tensor_free(t);
}

static void test_tensor_creation_errors(void **state) {
    (void)state;
    cg_clear_error();
    assert_null(cg_zeros(NULL, CG_F32, CG_SHAPE(2, -1)));
    assert_int_equal(cg_last_status(), CG_ERR_SHAPE);
    assert_non_null(strstr(cg_last_error(), "cg_zeros: [2,-1]: dim 1 is negative"));
    assert_null(cg_empty(NULL, CG_F32, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}));
    assert_int_equal(cg_last_status(), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "cg_empty: rank 9"));
    assert_null(cg_ones(NULL, (cg_dtype)7, CG_SHAPE(2)));
    assert_int_equal(cg_last_status(), CG_ERR_DTYPE);
    assert_null(cg_full(NULL, CG_F32, CG_SHAPE(INT64_MAX / 2, 4), 0));
    assert_int_equal(cg_last_status(), CG_ERR_SHAPE);
    assert_null(cg_arange(NULL, CG_F32, 0, 1, 0));
    assert_non_null(strstr(cg_last_error(), "cg_arange"));
    assert_null(cg_linspace(NULL, CG_F32, 0, 1, -1));
    assert_null(cg_from_array(NULL, CG_F32, CG_SHAPE(2), NULL));
    assert_non_null(strstr(cg_last_error(), "cg_from_array: data is NULL"));
    assert_null(cg_wrap(NULL, CG_F32, CG_SHAPE(2), NULL));
    assert_int_equal(cg_last_status(), CG_ERR_ARG);
}

static void test_tensor_free_null_is_harmless(void **state) {
    (void)state;
    cg_tensor_free(NULL);
    cg_ctx_free(NULL);
    cg_ctx_reset(NULL);
    assert_int_equal(cg_ndim(NULL), -1);
    assert_int_equal(cg_numel(NULL), -1);
    assert_null(cg_data(NULL));
}

static void test_tensor_zero_size(void **state) {
    (void)state;
    cg_tensor *t = cg_zeros(NULL, CG_F32, CG_SHAPE(0, 3));
    assert_non_null(t);
    assert_int_equal(cg_numel(t), 0);
    assert_true(cg_is_contiguous(t));
    cg_tensor *c = cg_clone(NULL, t);
    assert_int_equal(cg_numel(c), 0);
    cg_tensor_free(t);
    cg_tensor_free(c);
}

static void test_tensor_dtype_names(void **state) {
    (void)state;
    assert_string_equal(cg_dtype_name(CG_F32), "f32");
    assert_string_equal(cg_dtype_name(CG_I64), "i64");
    assert_int_equal(cg_dtype_size(CG_F64), 8);
    assert_int_equal(cg_dtype_size((cg_dtype)9), 0);
    assert_string_equal(cg_status_str(CG_ERR_NOMEM), "out of memory");
}

/* ---- contexts ------------------------------------------------------------ */
static void test_ctx_tensors_freed_by_reset(void **state) {
    (void)state;
    cg_ctx *ctx = cg_ctx_new();
    cg_tensor *t = cg_ones(ctx, CG_F32, CG_SHAPE(100, 100));
    assert_non_null(t);
    cg_tensor_free(t); /* a context tensor: ignored, not a double free */
    assert_true(cg_ctx_get_stats(ctx).used >= 40000);
    cg_ctx_reset(ctx);
    assert_int_equal(cg_ctx_get_stats(ctx).used, 0);
    assert_int_equal(cg_ctx_get_stats(ctx).resets, 1);
    cg_ctx_free(ctx);
}

/* After the first step, a loop of equal steps mallocs no chunk. */
static void test_ctx_steady_state_no_malloc(void **state) {
    (void)state;
    cg_ctx *ctx = cg_ctx_new();
    size_t allocs_after_warmup = 0;
    for (int step = 0; step < 5; step++) {
        for (int i = 0; i < 50; i++) /* 50 x 400 KB: several chunks */
            assert_non_null(cg_zeros(ctx, CG_F64, CG_SHAPE(50, 1000)));
        if (step == 1) allocs_after_warmup = cg_ctx_get_stats(ctx).chunk_allocs;
        cg_ctx_reset(ctx);
    }
    assert_int_equal(cg_ctx_get_stats(ctx).chunk_allocs, allocs_after_warmup);
    cg_ctx_free(ctx);
}

static void test_ctx_keeps_first_error(void **state) {
    (void)state;
    cg_ctx *ctx = cg_ctx_new();
    assert_int_equal(cg_ctx_status(ctx), CG_OK);
    assert_null(cg_zeros(ctx, CG_F32, CG_SHAPE(-1)));
    assert_null(cg_ones(ctx, (cg_dtype)5, CG_SHAPE(1)));
    assert_int_equal(cg_ctx_status(ctx), CG_ERR_SHAPE);
    assert_non_null(strstr(cg_ctx_error(ctx), "cg_zeros"));
    assert_int_equal(cg_last_status(), CG_ERR_DTYPE); /* the thread sees the last */
    cg_ctx_reset(ctx);
    assert_int_equal(cg_ctx_status(ctx), CG_OK);
    assert_string_equal(cg_ctx_error(ctx), "");
    cg_ctx_free(ctx);
}

static void test_ctx_large_tensor_beyond_chunk(void **state) {
    (void)state;
    cg_ctx *ctx = cg_ctx_new();
    cg_tensor *big = cg_full(ctx, CG_F64, CG_SHAPE(1 << 19), 2.0); /* 4 MiB */
    assert_non_null(big);
    assert_float_equal(((double *)cg_data(big))[(1 << 19) - 1], 2.0, 0);
    assert_int_equal((uintptr_t)cg_data(big) % 64, 0);
    cg_ctx_free(ctx);
}

static void test_ctx_heap_view_of_ctx_tensor_refused(void **state) {
    (void)state;
    cg_ctx *ctx = cg_ctx_new();
    cg_tensor *t = cg_ones(ctx, CG_F32, CG_SHAPE(2, 2));
    assert_null(cg_transpose(NULL, t, 0, 1));
    assert_int_equal(cg_last_status(), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "cg_transpose"));
    assert_non_null(cg_transpose(ctx, t, 0, 1));
    cg_ctx_free(ctx);
}

/* cg_set_num_threads is process-wide: another thread sees the count (an
 * OpenMP setting alone would stay with the thread that made it), and that
 * thread's parallel kernels use it. */
static void *other_thread(void *arg) {
    int *seen = arg;
    seen[0] = cg_get_num_threads();
    cg_tensor *a = cg_ones(NULL, CG_F32, CG_SHAPE(1 << 16)); /* above CGI_PAR_MIN */
    cg_tensor *b = cg_add(NULL, a, a);
    seen[1] = b && ((float *)cg_data(b))[(1 << 16) - 1] == 2.0f;
    cg_tensor_free(a);
    cg_tensor_free(b);
    return NULL;
}

static void test_threads_count_is_process_wide(void **state) {
    (void)state;
    int before = cg_get_num_threads(), seen[2] = {0, 0};
    cg_set_num_threads(3);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_thread, seen), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(seen[0], 3);
    assert_true(seen[1]);
    cg_set_num_threads(-4);
    assert_int_equal(cg_get_num_threads(), 1); /* < 0 means 1; 0 is the default */
    cg_set_num_threads(before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_zeros_ones_full),
        cmocka_unit_test(test_tensor_scalar_is_rank0),
        cmocka_unit_test(test_tensor_arange_linspace_eye),
        cmocka_unit_test(test_tensor_from_array_copies),
        cmocka_unit_test(test_tensor_wrap_borrows),
        cmocka_unit_test(test_tensor_get_set_i64_exact),
        cmocka_unit_test(test_tensor_item_needs_one_element),
        cmocka_unit_test(test_tensor_index_errors),
        cmocka_unit_test(test_tensor_creation_errors),
        cmocka_unit_test(test_tensor_free_null_is_harmless),
        cmocka_unit_test(test_tensor_zero_size),
        cmocka_unit_test(test_tensor_dtype_names),
        cmocka_unit_test(test_ctx_tensors_freed_by_reset),
        cmocka_unit_test(test_ctx_steady_state_no_malloc),
        cmocka_unit_test(test_ctx_keeps_first_error),
        cmocka_unit_test(test_ctx_large_tensor_beyond_chunk),
        cmocka_unit_test(test_ctx_heap_view_of_ctx_tensor_refused),
        cmocka_unit_test(test_threads_count_is_process_wide),
    };
    return cmocka_run_group_tests_name("tensor", tests, NULL, NULL);
}
