/* tensor/: every view against hand-computed strides and values, and the
 * broadcasting rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "testutil.h"

/* A [2,3,4] f64 tensor holding 0..23, in a context the test frees. */
static cg_tensor *iota234(cg_ctx *ctx) {
    cg_tensor *a = cg_arange(ctx, CG_F64, 0, 24, 1);
    return cg_view(ctx, a, CG_SHAPE(2, 3, 4));
}

static void assert_geometry(const cg_tensor *t, int ndim, const int64_t *shape,
                            const int64_t *strides, int64_t offset) {
    assert_non_null(t);
    assert_int_equal(cg_ndim(t), ndim);
    for (int i = 0; i < ndim; i++) {
        assert_int_equal(cg_shape(t)[i], shape[i]);
        assert_int_equal(cg_strides(t)[i], strides[i]);
    }
    assert_int_equal(cg_offset(t), offset);
}

static void test_view_reshape_shares_storage(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = iota234(ctx);
    cg_tensor *v = cg_view(ctx, a, CG_SHAPE(6, -1));
    assert_geometry(v, 2, (int64_t[]){6, 4}, (int64_t[]){4, 1}, 0);
    assert_ptr_equal(cg_data(v), cg_data(a));
    assert_int_equal(cg_set(v, (int64_t[]){5, 3}, -1), CG_OK);
    double x;
    cg_get(a, (int64_t[]){1, 2, 3}, &x);
    assert_float_equal(x, -1, 0);
}

static void test_view_of_transpose_fails_reshape_copies(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = cg_view(ctx, cg_arange(ctx, CG_F64, 0, 6, 1), CG_SHAPE(2, 3));
    cg_tensor *t = cg_transpose(ctx, a, 0, 1);
    assert_geometry(t, 2, (int64_t[]){3, 2}, (int64_t[]){1, 3}, 0);
    assert_null(cg_view(ctx, t, CG_SHAPE(6)));
    assert_int_equal(cg_last_status(), CG_ERR_SHAPE);
    assert_non_null(strstr(cg_last_error(), "cg_view: [3,2] to [6]"));
    cg_tensor *r = cg_reshape(ctx, t, CG_SHAPE(6));
    assert_true(cg_is_contiguous(r));
    assert_ptr_not_equal(cg_data(r), cg_data(a));
    assert_values(r, (double[]){0, 3, 1, 4, 2, 5}, 6, 0);
    /* splitting a dim of a transposed tensor is still a view */
    cg_tensor *s = cg_view(ctx, t, CG_SHAPE(3, 1, 2));
    assert_geometry(s, 3, (int64_t[]){3, 1, 2}, (int64_t[]){1, 6, 3}, 0);
}

static void test_view_reshape_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = iota234(ctx);
    assert_null(cg_reshape(ctx, a, CG_SHAPE(5, -1)));
    assert_non_null(
        strstr(cg_last_error(), "cg_reshape: cannot reshape [2,3,4] (24 elements) to [5,-1]"));
    assert_null(cg_reshape(ctx, a, CG_SHAPE(-1, -1)));
    assert_null(cg_reshape(ctx, a, CG_SHAPE(25)));
    assert_int_equal(cg_last_status(), CG_ERR_SHAPE);
}

static void test_view_permute(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *p = cg_permute(ctx, iota234(ctx), (int[]){2, 0, 1});
    assert_geometry(p, 3, (int64_t[]){4, 2, 3}, (int64_t[]){1, 12, 4}, 0);
    double x;
    cg_get(p, (int64_t[]){3, 1, 2}, &x); /* = a[1,2,3] */
    assert_float_equal(x, 23, 0);
    assert_false(cg_is_contiguous(p));
    assert_null(cg_permute(ctx, iota234(ctx), (int[]){0, 0, 1}));
    assert_non_null(strstr(cg_last_error(), "cg_permute: dim 0 repeated"));
    assert_null(cg_permute(ctx, iota234(ctx), (int[]){0, 1, 3}));
    assert_int_equal(cg_last_status(), CG_ERR_INDEX);
}

static void test_view_transpose_negative_axes(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *t = cg_transpose(ctx, iota234(ctx), -1, 0);
    assert_geometry(t, 3, (int64_t[]){4, 3, 2}, (int64_t[]){1, 4, 12}, 0);
    assert_null(cg_transpose(ctx, t, 0, 3));
    assert_non_null(strstr(cg_last_error(), "cg_transpose: axis 3 out of range for rank 3"));
}

static void test_view_slice_with_step(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = iota234(ctx);
    cg_tensor *s = cg_slice(ctx, a, 2, 1, CG_END, 2); /* a[:, :, 1::2] */
    assert_geometry(s, 3, (int64_t[]){2, 3, 2}, (int64_t[]){12, 4, 2}, 1);
    assert_values(s, (double[]){1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23}, 12, 0);
    cg_tensor *n = cg_slice(ctx, a, 1, -2, -1, 1); /* a[:, -2:-1] */
    assert_geometry(n, 3, (int64_t[]){2, 1, 4}, (int64_t[]){12, 4, 1}, 4);
    cg_tensor *e = cg_slice(ctx, a, 0, 5, 9, 1); /* clamps to empty */
    assert_int_equal(cg_numel(e), 0);
    cg_tensor *ss = cg_slice(ctx, s, 1, 0, 3, 2); /* slice of a slice */
    assert_geometry(ss, 3, (int64_t[]){2, 2, 2}, (int64_t[]){12, 8, 2}, 1);
    assert_values(ss, (double[]){1, 3, 9, 11, 13, 15, 21, 23}, 8, 0);
    assert_null(cg_slice(ctx, a, 0, 0, 2, 0));
    assert_non_null(strstr(cg_last_error(), "cg_slice: step 0 must be positive"));
}

static void test_view_narrow_select(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = iota234(ctx);
    cg_tensor *n = cg_narrow(ctx, a, 1, 1, 2);
    assert_geometry(n, 3, (int64_t[]){2, 2, 4}, (int64_t[]){12, 4, 1}, 4);
    assert_null(cg_narrow(ctx, a, 1, 2, 2));
    assert_int_equal(cg_last_status(), CG_ERR_INDEX);
    assert_non_null(strstr(cg_last_error(), "cg_narrow: [2,3,4]"));
    cg_tensor *s = cg_select(ctx, a, 1, -1);
    assert_geometry(s, 2, (int64_t[]){2, 4}, (int64_t[]){12, 1}, 8);
    assert_values(s, (double[]){8, 9, 10, 11, 20, 21, 22, 23}, 8, 0);
    cg_tensor *r0 = cg_select(ctx, cg_select(ctx, s, 0, 1), 0, 2);
    assert_int_equal(cg_ndim(r0), 0);
    assert_float_equal(cg_item(r0), 22, 0);
    assert_null(cg_select(ctx, a, 0, 2));
}

static void test_view_expand_stride_zero(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *c = cg_view(ctx, cg_arange(ctx, CG_F64, 0, 3, 1), CG_SHAPE(3, 1));
    cg_tensor *e = cg_expand(ctx, c, CG_SHAPE(2, 3, 4));
    assert_geometry(e, 3, (int64_t[]){2, 3, 4}, (int64_t[]){0, 1, 0}, 0);
    double x;
    cg_get(e, (int64_t[]){1, 2, 3}, &x);
    assert_float_equal(x, 2, 0);
    cg_tensor *k = cg_expand(ctx, c, CG_SHAPE(-1, 5));
    assert_geometry(k, 2, (int64_t[]){3, 5}, (int64_t[]){1, 0}, 0);
    assert_null(cg_expand(ctx, c, CG_SHAPE(4, 4)));
    assert_non_null(strstr(cg_last_error(), "cg_expand: cannot expand [3,1] to [4,4]"));
    assert_null(cg_expand(ctx, c, CG_SHAPE(3)));
}

static void test_view_squeeze_unsqueeze(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = cg_zeros(ctx, CG_F32, CG_SHAPE(1, 3, 1, 2));
    cg_tensor *s = cg_squeeze(ctx, a, CG_ALL_DIMS);
    assert_geometry(s, 2, (int64_t[]){3, 2}, (int64_t[]){2, 1}, 0);
    cg_tensor *s2 = cg_squeeze(ctx, a, 2);
    assert_geometry(s2, 3, (int64_t[]){1, 3, 2}, (int64_t[]){6, 2, 1}, 0);
    cg_tensor *same = cg_squeeze(ctx, a, 1); /* size 3: unchanged, as PyTorch */
    assert_int_equal(cg_ndim(same), 4);
    cg_tensor *u = cg_unsqueeze(ctx, s, 1);
    assert_geometry(u, 3, (int64_t[]){3, 1, 2}, (int64_t[]){2, 2, 1}, 0);
    cg_tensor *u2 = cg_unsqueeze(ctx, s, -1);
    assert_geometry(u2, 3, (int64_t[]){3, 2, 1}, (int64_t[]){2, 1, 1}, 0);
    assert_null(cg_unsqueeze(ctx, s, 4));
    cg_tensor *r8 = cg_zeros(ctx, CG_F32, 8, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1});
    assert_null(cg_unsqueeze(ctx, r8, 0));
    assert_non_null(strstr(cg_last_error(), "cg_unsqueeze: rank 8"));
}

static void test_view_flatten(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = iota234(ctx);
    cg_tensor *f = cg_flatten(ctx, a, 1, -1);
    assert_geometry(f, 2, (int64_t[]){2, 12}, (int64_t[]){12, 1}, 0);
    cg_tensor *t = cg_flatten(ctx, cg_transpose(ctx, a, 0, 2), 0, 1); /* copies */
    assert_int_equal(cg_dim(t, 0), 12);
    assert_true(cg_is_contiguous(t));
    double x;
    cg_get(t, (int64_t[]){1, 0}, &x); /* aT[0,1,0] = a[0,1,0] */
    assert_float_equal(x, 4, 0);
    cg_tensor *s = cg_flatten(ctx, cg_scalar(ctx, CG_F32, 7), 0, -1);
    assert_geometry(s, 1, (int64_t[]){1}, (int64_t[]){1}, 0);
}

static void test_view_contiguous_copies_only_when_needed(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = iota234(ctx);
    cg_tensor *c = cg_contiguous(ctx, a);
    assert_ptr_equal(cg_data(c), cg_data(a));
    cg_tensor *t = cg_contiguous(ctx, cg_transpose(ctx, a, 1, 2));
    assert_ptr_not_equal(cg_data(t), cg_data(a));
    assert_true(cg_is_contiguous(t));
    double x;
    cg_get(t, (int64_t[]){1, 3, 2}, &x);
    assert_float_equal(x, 23, 0);
}

/* Heap views keep the storage alive: free the base first, then the view. */
static void test_view_heap_refcount(void **state) {
    (void)state;
    cg_tensor *a = cg_arange(NULL, CG_F32, 0, 6, 1);
    cg_tensor *v = cg_view(NULL, a, CG_SHAPE(2, 3));
    cg_tensor *t = cg_transpose(NULL, v, 0, 1);
    cg_tensor_free(a);
    cg_tensor_free(v);
    double x;
    assert_int_equal(cg_get(t, (int64_t[]){2, 1}, &x), CG_OK);
    assert_float_equal(x, 5, 0);
    cg_tensor_free(t);
}

static void test_view_null_propagates(void **state) {
    cg_ctx *ctx = *state;
    cg_clear_error();
    assert_null(cg_transpose(ctx, cg_reshape(ctx, iota234(ctx), CG_SHAPE(7)), 0, 1));
    assert_int_equal(cg_last_status(), CG_ERR_SHAPE); /* the cause, not the NULL */
    assert_non_null(strstr(cg_last_error(), "cg_reshape"));
    cg_clear_error();
    assert_null(cg_squeeze(ctx, NULL, 0));
    assert_non_null(strstr(cg_last_error(), "cg_squeeze: tensor is NULL"));
}

/* ---- broadcasting ---------------------------------------------------------- */
typedef struct bcase {
    int na;
    int64_t a[4];
    int nb;
    int64_t b[4];
    int nout; /* -1: invalid */
    int64_t out[4];
} bcase;

static void test_view_broadcast_table(void **state) {
    (void)state;
    static const bcase cases[] = {
        {2, {2, 3}, 2, {2, 3}, 2, {2, 3}}, {2, {2, 3}, 1, {3}, 2, {2, 3}},
        {2, {2, 1}, 1, {3}, 2, {2, 3}},    {3, {4, 1, 5}, 2, {3, 1}, 3, {4, 3, 5}},
        {0, {0}, 2, {2, 3}, 2, {2, 3}},    {1, {1}, 1, {0}, 1, {0}},
        {2, {0, 3}, 2, {1, 3}, 2, {0, 3}}, {4, {8, 1, 6, 1}, 3, {7, 1, 5}, 4, {8, 7, 6, 5}},
        {2, {2, 3}, 1, {2}, -1, {0}},      {2, {2, 3}, 2, {3, 3}, -1, {0}},
        {1, {0}, 1, {2}, -1, {0}},         {3, {4, 1, 5}, 2, {3, 4}, -1, {0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bcase *c = &cases[i];
        int n = -7;
        int64_t out[CG_MAX_DIMS];
        cg_status s = cg_broadcast_shapes("t", c->na, c->a, c->nb, c->b, &n, out);
        if (c->nout < 0) {
            assert_int_equal(s, CG_ERR_SHAPE);
            assert_non_null(strstr(cg_last_error(), "cannot broadcast"));
            continue;
        }
        assert_int_equal(s, CG_OK);
        assert_int_equal(n, c->nout);
        for (int k = 0; k < n; k++) assert_int_equal(out[k], c->out[k]);
    }
    int n;
    int64_t out[CG_MAX_DIMS];
    cg_broadcast_shapes("cg_add", 2, (int64_t[]){2, 3}, 2, (int64_t[]){4, 3}, &n, out);
    assert_string_equal(cg_last_error(),
                        "cg_add: [2,3] and [4,3]: dim 0: 2 vs 4 cannot broadcast");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_reshape_shares_storage),
        cmocka_unit_test(test_view_of_transpose_fails_reshape_copies),
        cmocka_unit_test(test_view_reshape_errors),
        cmocka_unit_test(test_view_permute),
        cmocka_unit_test(test_view_transpose_negative_axes),
        cmocka_unit_test(test_view_slice_with_step),
        cmocka_unit_test(test_view_narrow_select),
        cmocka_unit_test(test_view_expand_stride_zero),
        cmocka_unit_test(test_view_squeeze_unsqueeze),
        cmocka_unit_test(test_view_flatten),
        cmocka_unit_test(test_view_contiguous_copies_only_when_needed),
        cmocka_unit_test(test_view_heap_refcount),
        cmocka_unit_test(test_view_null_propagates),
        cmocka_unit_test(test_view_broadcast_table),
    };
    return cmocka_run_group_tests_name("view", tests, ctx_setup, ctx_teardown);
}
