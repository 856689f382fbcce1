/* ops/shape.c: gradcheck and gradgradcheck in float64 of every view and copy
 * op, each on a contiguous input and on a permuted (non-contiguous) one
 * (some also on a broadcast, stride-0, one), plus a few gradients by value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "cgrad_cmocka.h"
#include "testutil.h"

typedef enum op_kind {
    VIEW,
    RESHAPE,
    TRANSPOSE,
    PERMUTE,
    SLICE,
    NARROW,
    SELECT,
    EXPAND,
    SQUEEZE,
    UNSQUEEZE,
    FLATTEN,
    CONTIGUOUS,
    CLONE,
    CAST_ROUND_TRIP
} op_kind;

/* One application of a shape op to an input of shape [2,3,4]. */
typedef struct scase {
    op_kind op;
    int ndim; /* VIEW, RESHAPE, EXPAND: the target shape */
    int64_t shape[CG_MAX_DIMS];
    int dims[CG_MAX_DIMS];    /* PERMUTE; dims[0], dims[1]: the dims of the others */
    int64_t start, end, step; /* SLICE; NARROW: start, length in end; SELECT: start */
    bool one;    /* narrow dim 1 to length 1 first (a size-1 dim to squeeze or expand) */
    bool bcast;  /* ... and expand it back to 3: a stride-0 input */
    bool square; /* square the result: a non-linear function for gradgradcheck */
} scase;

static cg_tensor *apply(cg_ctx *ctx, const cg_tensor *x, const scase *c) {
    const int d0 = c->dims[0], d1 = c->dims[1];
    if (c->one || c->bcast) x = cg_narrow(ctx, x, 1, 1, 1);
    if (c->bcast) x = cg_expand(ctx, x, CG_SHAPE(2, 3, 4));
    switch (c->op) {
    case VIEW: return cg_view(ctx, x, c->ndim, c->shape);
    case RESHAPE: return cg_reshape(ctx, x, c->ndim, c->shape);
    case TRANSPOSE: return cg_transpose(ctx, x, d0, d1);
    case PERMUTE: return cg_permute(ctx, x, c->dims);
    case SLICE: return cg_slice(ctx, x, d0, c->start, c->end, c->step);
    case NARROW: return cg_narrow(ctx, x, d0, c->start, c->end);
    case SELECT: return cg_select(ctx, x, d0, c->start);
    case EXPAND: return cg_expand(ctx, x, c->ndim, c->shape);
    case SQUEEZE: return cg_squeeze(ctx, x, d0);
    case UNSQUEEZE: return cg_unsqueeze(ctx, x, d0);
    case FLATTEN: return cg_flatten(ctx, x, d0, d1);
    case CONTIGUOUS: return cg_contiguous(ctx, x);
    case CLONE: return cg_clone(ctx, x);
    case CAST_ROUND_TRIP: return cg_cast(ctx, cg_cast(ctx, x, CG_F32), CG_F64);
    }
    return NULL;
}

static cg_tensor *f_shape(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    cg_tensor *y = apply(ctx, in[0], c);
    return c->square ? cg_square(ctx, y) : y;
}

/* gradcheck and gradgradcheck of the op and of its square, on a contiguous
 * [2,3,4] leaf and on the same shape permuted from a [4,3,2] base. */
static void check_opts(scase c, const cg_gradcheck_opts *o) {
    cg_rng rng;
    cg_rng_seed(&rng, 42 + (uint64_t)c.op);
    cg_tensor *x = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(2, 3, 4), 0, 1);
    cg_tensor *base = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(4, 3, 2), 0, 1);
    cg_tensor *xp = cg_permute(NULL, base, (const int[]){2, 1, 0});
    assert_false(cg_is_contiguous(xp));
    cg_set_requires_grad(x, true);
    cg_set_requires_grad(xp, true);
    cg_tensor *inputs[2] = {x, xp};
    for (int i = 0; i < 2; i++)
        for (int sq = 0; sq < 2; sq++) {
            c.square = sq;
            cg_assert_gradcheck_opts(f_shape, &c, 1, &inputs[i], o);
            cg_assert_gradgradcheck_opts(f_shape, &c, 1, &inputs[i], o);
        }
    cg_tensor_free(x);
    cg_tensor_free(xp);
    cg_tensor_free(base);
}
static void check(scase c) { check_opts(c, NULL); }

/* ---- reshapes -------------------------------------------------------------------------- */
static void test_shape_grad_view(void **state) {
    (void)state;
    check((scase){.op = VIEW, .ndim = 4, .shape = {2, 3, 2, 2}}); /* a view for any strides */
    check((scase){.op = VIEW, .ndim = 3, .shape = {2, -1, 2}, .one = true}); /* [2,1,4] */
}

static void test_shape_grad_reshape(void **state) {
    (void)state;
    check((scase){.op = RESHAPE, .ndim = 2, .shape = {4, 6}}); /* copies when permuted */
    check((scase){.op = RESHAPE, .ndim = 1, .shape = {-1}});
    check((scase){.op = RESHAPE, .ndim = 3, .shape = {3, 2, 4}});
    check((scase){.op = RESHAPE, .ndim = 2, .shape = {4, 2}, .one = true}); /* [2,1,4] */
    check((scase){.op = RESHAPE, .ndim = 2, .shape = {6, 4}, .bcast = true});
}

/* The permuted input takes reshape's copying path; the contiguous one a view. */
static void test_shape_grad_reshape_paths(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = cg_view(ctx, cg_arange(ctx, CG_F64, 0, 6, 1), CG_SHAPE(2, 3));
    cg_set_requires_grad(a, true);
    cg_tensor *t = cg_transpose(ctx, a, 0, 1);
    cg_tensor *v = cg_reshape(ctx, a, CG_SHAPE(3, 2)), *c = cg_reshape(ctx, t, CG_SHAPE(6));
    assert_ptr_equal(cg_data(v), cg_data(a));
    assert_ptr_not_equal(cg_data(c), cg_data(a));
    assert_values(c, (double[]){0, 3, 1, 4, 2, 5}, 6, 0);
    /* weights 1..6 on c's elements come back to a's positions */
    cg_tensor *w = cg_arange(ctx, CG_F64, 1, 7, 1);
    assert_int_equal(cg_backward(cg_sum(ctx, cg_mul(ctx, c, w), NULL, 0, false)), CG_OK);
    assert_values(cg_grad_of(a), (double[]){1, 3, 5, 2, 4, 6}, 6, 0);
}

static void test_shape_grad_flatten(void **state) {
    (void)state;
    check((scase){.op = FLATTEN, .dims = {0, 1}});
    check((scase){.op = FLATTEN, .dims = {1, -1}});
    check((scase){.op = FLATTEN, .dims = {0, -1}});
    check((scase){.op = FLATTEN, .dims = {2, 2}});
    check((scase){.op = FLATTEN, .dims = {1, 2}, .bcast = true});
}

static void test_shape_grad_squeeze_unsqueeze(void **state) {
    (void)state;
    check((scase){.op = SQUEEZE, .dims = {1}, .one = true});
    check((scase){.op = SQUEEZE, .dims = {CG_ALL_DIMS}, .one = true});
    check((scase){.op = SQUEEZE, .dims = {0}}); /* size 2: a no-op, still recorded */
    check((scase){.op = UNSQUEEZE, .dims = {0}});
    check((scase){.op = UNSQUEEZE, .dims = {-1}});
    check((scase){.op = UNSQUEEZE, .dims = {2}, .one = true});
}

/* ---- permutations ---------------------------------------------------------------------- */
static void test_shape_grad_transpose(void **state) {
    (void)state;
    check((scase){.op = TRANSPOSE, .dims = {0, 2}});
    check((scase){.op = TRANSPOSE, .dims = {-1, 1}});
    check((scase){.op = TRANSPOSE, .dims = {1, 1}});
    check((scase){.op = TRANSPOSE, .dims = {1, 2}, .bcast = true});
}

static void test_shape_grad_permute(void **state) {
    (void)state;
    check((scase){.op = PERMUTE, .dims = {1, 2, 0}});
    check((scase){.op = PERMUTE, .dims = {-1, 0, -2}});
    check((scase){.op = PERMUTE, .dims = {2, 0, 1}, .one = true});
}

/* ---- slices ------------------------------------------------------------------------------ */
static void test_shape_grad_slice(void **state) {
    (void)state;
    check((scase){.op = SLICE, .dims = {2}, .start = -3, .end = CG_END, .step = 2});
    check((scase){.op = SLICE, .dims = {1}, .start = 0, .end = 3, .step = 2});
    check((scase){.op = SLICE, .dims = {-1}, .start = -10, .end = -1, .step = 1});
    check((scase){.op = SLICE, .dims = {0}, .start = 1, .end = 1, .step = 1}); /* empty */
    check((scase){
        .op = SLICE, .dims = {1}, .start = -2, .end = CG_END, .step = 1, .bcast = true});
    check((scase){.op = SLICE, .dims = {1}, .start = 0, .end = 3, .step = 2, .bcast = true});
    /* a start before the beginning of an expanded dim clamps to 0 */
    check((scase){
        .op = SLICE, .dims = {1}, .start = -10, .end = CG_END, .step = 1, .bcast = true});
}

static void test_shape_grad_narrow(void **state) {
    (void)state;
    check((scase){.op = NARROW, .dims = {1}, .start = 1, .end = 2});
    check((scase){.op = NARROW, .dims = {-1}, .start = -2, .end = 2});
    check((scase){.op = NARROW, .dims = {0}, .start = 0, .end = 2});
    check((scase){.op = NARROW, .dims = {1}, .start = -2, .end = 1, .bcast = true});
}

static void test_shape_grad_select(void **state) {
    (void)state;
    check((scase){.op = SELECT, .dims = {-1}, .start = -1});
    check((scase){.op = SELECT, .dims = {0}, .start = 1});
    check((scase){.op = SELECT, .dims = {1}, .start = -3});
    check((scase){.op = SELECT, .dims = {1}, .start = -1, .bcast = true});
}

/* Only the selected, sliced positions get gradient; the rest stays 0. */
static void test_shape_grad_slice_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F64, CG_SHAPE(2, 5));
    cg_set_requires_grad(x, true);
    cg_tensor *s = cg_slice(ctx, cg_select(ctx, x, 0, -1), 0, -4, CG_END, 2); /* x[1, 1::2] */
    assert_int_equal(cg_numel(s), 2);
    assert_int_equal(cg_backward_ex(s, cg_arange(ctx, CG_F64, 1, 3, 1), 0), CG_OK);
    assert_values(cg_grad_of(x), (double[]){0, 0, 0, 0, 0, 0, 1, 0, 2, 0}, 10, 0);
}

/* ---- expand ------------------------------------------------------------------------------ */
static void test_shape_grad_expand(void **state) {
    (void)state;
    check((scase){.op = EXPAND, .ndim = 4, .shape = {3, 2, 3, 4}});
    check((scase){.op = EXPAND, .ndim = 3, .shape = {2, 5, 4}, .one = true});
    check((scase){.op = EXPAND, .ndim = 4, .shape = {2, -1, 3, -1}, .one = true});
    check((scase){.op = EXPAND, .ndim = 4, .shape = {2, 2, 3, 4}, .bcast = true});
}

static void test_shape_grad_expand_sums(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(1, 3));
    cg_set_requires_grad(x, true);
    cg_tensor *e = cg_expand(ctx, x, CG_SHAPE(2, 4, 3));
    cg_tensor *w = cg_view(ctx, cg_arange(ctx, CG_F64, 0, 24, 1), CG_SHAPE(2, 4, 3));
    assert_int_equal(cg_backward_ex(e, w, 0), CG_OK);
    /* column j sums w[..., j] = j + (j+3) + ... + (j+21) = 8 j + 84 */
    assert_values(cg_grad_of(x), (double[]){84, 92, 100}, 3, 0);
}

/* ---- copies --------------------------------------------------------------------------------
 */
static void test_shape_grad_contiguous_clone(void **state) {
    (void)state;
    check((scase){.op = CONTIGUOUS});
    check((scase){.op = CONTIGUOUS, .one = true});
    check((scase){.op = CLONE});
    check((scase){.op = CLONE, .one = true});
    check((scase){.op = CONTIGUOUS, .bcast = true});
}

/* f64 -> f32 -> f64 rounds the values, so the finite differences need a
 * larger step and tolerances that allow f32's rounding. */
static void test_shape_grad_cast(void **state) {
    (void)state;
    cg_gradcheck_opts o = {.eps = 1e-3, .atol = 1e-3, .rtol = 1e-2};
    check_opts((scase){.op = CAST_ROUND_TRIP}, &o);
    check_opts((scase){.op = CAST_ROUND_TRIP, .one = true}, &o);
}

static void test_shape_grad_cast_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_full(ctx, CG_F64, CG_SHAPE(2), 1 + 1e-10);
    cg_set_requires_grad(x, true);
    cg_tensor *y = cg_cast(ctx, cg_cast(ctx, x, CG_F32), CG_F64);
    assert_values(y, (double[]){1, 1}, 2, 0); /* the 1e-10 is lost in f32 */
    assert_int_equal(cg_dtype_of(y), CG_F64);
    assert_int_equal(cg_backward_ex(y, cg_full(ctx, CG_F64, CG_SHAPE(2), 3), 0), CG_OK);
    assert_int_equal(cg_dtype_of(cg_grad_of(x)), CG_F64);
    assert_values(cg_grad_of(x), (double[]){3, 3}, 2, 0);
    /* to i64 the result is cut from the graph */
    assert_false(cg_requires_grad(cg_cast(ctx, x, CG_I64)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_grad_view),
        cmocka_unit_test(test_shape_grad_reshape),
        cmocka_unit_test(test_shape_grad_reshape_paths),
        cmocka_unit_test(test_shape_grad_flatten),
        cmocka_unit_test(test_shape_grad_squeeze_unsqueeze),
        cmocka_unit_test(test_shape_grad_transpose),
        cmocka_unit_test(test_shape_grad_permute),
        cmocka_unit_test(test_shape_grad_slice),
        cmocka_unit_test(test_shape_grad_narrow),
        cmocka_unit_test(test_shape_grad_select),
        cmocka_unit_test(test_shape_grad_slice_values),
        cmocka_unit_test(test_shape_grad_expand),
        cmocka_unit_test(test_shape_grad_expand_sums),
        cmocka_unit_test(test_shape_grad_contiguous_clone),
        cmocka_unit_test(test_shape_grad_cast),
        cmocka_unit_test(test_shape_grad_cast_values),
    };
    return cmocka_run_group_tests_name("shape_grad", tests, ctx_setup, ctx_teardown);
}
