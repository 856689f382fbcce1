/* ops/index.c: concat, stack, index_select, gather and embedding against
 * hand-computed values, gradcheck and gradgradcheck in float64 (contiguous,
 * transposed and broadcast inputs), f32 against f64, thread-count
 * independence of the scatter-adds, and every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "cgrad_cmocka.h"
#include "testutil.h"

static cg_tensor *idx(cg_ctx *ctx, int ndim, const int64_t *shape, const int64_t *v) {
    return cg_from_array(ctx, CG_I64, ndim, shape, v);
}
/* A [rows, cols] f64 tensor holding 0, 1, 2, ... */
static cg_tensor *iota(cg_ctx *ctx, int64_t rows, int64_t cols) {
    return cg_view(ctx, cg_arange(ctx, CG_F64, 0, (double)(rows * cols), 1),
                   CG_SHAPE(rows, cols));
}
/* The same values as a transposed (non-contiguous) leaf [cols, rows]; free base. */
static cg_tensor *transposed_leaf(cg_rng *rng, int64_t rows, int64_t cols, cg_tensor **base) {
    *base = cg_randn(NULL, rng, CG_F64, CG_SHAPE(rows, cols), 0, 1);
    cg_tensor *t = cg_transpose(NULL, *base, 0, 1);
    assert_int_equal(cg_set_requires_grad(t, true), CG_OK);
    return t;
}
/* ---- functions under test: inputs[0..] require a gradient, the index is fixed -------- */
typedef struct icase {
    int axis;
    const cg_tensor *index;
    int n;       /* joins: how many inputs */
    bool square; /* square the result (a non-linear function for gradgradcheck) */
    bool expand; /* joins: input 1 expanded to input 0's shape; else input 0 [1,m] to [3,m] */
    bool stack;  /* joins: cg_stack rather than cg_concat */
} icase;

static cg_tensor *finish(cg_ctx *ctx, cg_tensor *y, const icase *c) {
    return c->square ? cg_square(ctx, y) : y;
}
/* concat or stack of inputs 0..n-1, input 1 first expanded when asked. */
static cg_tensor *f_join(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const icase *c = u;
    const cg_tensor *xs[4];
    for (int i = 0; i < c->n; i++) xs[i] = in[i];
    if (c->expand) xs[1] = cg_expand(ctx, in[1], cg_ndim(in[0]), cg_shape(in[0]));
    cg_tensor *y =
        c->stack ? cg_stack(ctx, c->n, xs, c->axis) : cg_concat(ctx, c->n, xs, c->axis);
    return finish(ctx, y, c);
}
/* The indexed input: in[0], or in[0] [1,m] broadcast to [3,m] (stride 0). */
static const cg_tensor *arg0(cg_ctx *ctx, cg_tensor *const *in, const icase *c) {
    return c->expand ? cg_expand(ctx, in[0], CG_SHAPE(3, cg_dim(in[0], 1))) : in[0];
}
static cg_tensor *f_index_select(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const icase *c = u;
    return finish(ctx, cg_index_select(ctx, arg0(ctx, in, c), c->axis, c->index), c);
}
static cg_tensor *f_gather(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const icase *c = u;
    return finish(ctx, cg_gather(ctx, arg0(ctx, in, c), c->axis, c->index), c);
}
static cg_tensor *f_embedding(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const icase *c = u;
    return finish(ctx, cg_embedding(ctx, arg0(ctx, in, c), c->index), c);
}

/* gradcheck of fn as given, then gradgradcheck of it and of its square. */
static void check_all(cg_fn fn, icase c, int n, cg_tensor *const *inputs) {
    c.square = false;
    cg_assert_gradcheck(fn, &c, n, inputs);
    cg_assert_gradgradcheck(fn, &c, n, inputs);
    c.square = true;
    cg_assert_gradcheck(fn, &c, n, inputs);
    cg_assert_gradgradcheck(fn, &c, n, inputs);
}
static void free_all(int n, cg_tensor **ts) {
    for (int i = 0; i < n; i++) cg_tensor_free(ts[i]);
}

/* ---- values ---------------------------------------------------------------------------- */
static void test_index_concat_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = iota(ctx, 2, 2), *b = cg_full(ctx, CG_F64, CG_SHAPE(2, 1), 9);
    cg_tensor *y = cg_concat(ctx, 2, (const cg_tensor *[]){a, b}, -1);
    assert_int_equal(cg_dim(y, 1), 3);
    assert_values(y, (double[]){0, 1, 9, 2, 3, 9}, 6, 0);
    /* axis 0, a transposed input, an empty part */
    cg_tensor *e = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 2));
    y = cg_concat(ctx, 3, (const cg_tensor *[]){cg_transpose(ctx, a, 0, 1), e, a}, 0);
    assert_int_equal(cg_dim(y, 0), 4);
    assert_values(y, (double[]){0, 2, 1, 3, 0, 1, 2, 3}, 8, 0);
    /* one input: a copy */
    y = cg_concat(ctx, 1, (const cg_tensor *[]){a}, 1);
    assert_ptr_not_equal(cg_data(y), cg_data(a));
    assert_values(y, (double[]){0, 1, 2, 3}, 4, 0);
    /* i64 and a broadcast (stride 0) input */
    cg_tensor *i = idx(ctx, CG_SHAPE(1, 2), (int64_t[]){4, 5});
    y = cg_concat(ctx, 2, (const cg_tensor *[]){i, cg_expand(ctx, i, CG_SHAPE(2, 2))}, 0);
    assert_int_equal(cg_dtype_of(y), CG_I64);
    assert_values(y, (double[]){4, 5, 4, 5, 4, 5}, 6, 0);
}

static void test_index_stack_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = cg_arange(ctx, CG_F64, 0, 3, 1), *b = cg_arange(ctx, CG_F64, 10, 13, 1);
    cg_tensor *y = cg_stack(ctx, 2, (const cg_tensor *[]){a, b}, 0);
    assert_int_equal(cg_dim(y, 0), 2);
    assert_values(y, (double[]){0, 1, 2, 10, 11, 12}, 6, 0);
    y = cg_stack(ctx, 2, (const cg_tensor *[]){a, b}, -1); /* [3, 2] */
    assert_int_equal(cg_dim(y, 0), 3);
    assert_values(y, (double[]){0, 10, 1, 11, 2, 12}, 6, 0);
    /* rank-0 inputs and a transposed input */
    y = cg_stack(
        ctx, 2, (const cg_tensor *[]){cg_scalar(ctx, CG_F32, 1), cg_scalar(ctx, CG_F32, 2)}, 0);
    assert_values(y, (double[]){1, 2}, 2, 0);
    cg_tensor *m = iota(ctx, 2, 2);
    y = cg_stack(ctx, 2, (const cg_tensor *[]){m, cg_transpose(ctx, m, 0, 1)}, 1); /* [2,2,2] */
    assert_values(y, (double[]){0, 1, 0, 2, 2, 3, 1, 3}, 8, 0);
}

static void test_index_index_select_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = iota(ctx, 3, 2);
    cg_tensor *y = cg_index_select(ctx, x, 0, idx(ctx, CG_SHAPE(3), (int64_t[]){2, 0, 2}));
    assert_values(y, (double[]){4, 5, 0, 1, 4, 5}, 6, 0);
    y = cg_index_select(ctx, x, -1, idx(ctx, CG_SHAPE(1), (int64_t[]){1}));
    assert_int_equal(cg_dim(y, 1), 1);
    assert_values(y, (double[]){1, 3, 5}, 3, 0);
    /* a strided index over a transposed x [2,3] */
    cg_tensor *i = cg_slice(ctx, idx(ctx, CG_SHAPE(4), (int64_t[]){2, 9, 0, 9}), 0, 0, 4, 2);
    y = cg_index_select(ctx, cg_transpose(ctx, x, 0, 1), 1, i);
    assert_values(y, (double[]){4, 0, 5, 1}, 4, 0);
    /* a broadcast x [3,2] of equal rows (stride 0) */
    cg_tensor *xb = cg_expand(ctx, cg_narrow(ctx, x, 0, 1, 1), CG_SHAPE(3, 2));
    y = cg_index_select(ctx, xb, 1, idx(ctx, CG_SHAPE(3), (int64_t[]){1, 1, 0}));
    assert_values(y, (double[]){3, 3, 2, 3, 3, 2, 3, 3, 2}, 9, 0);
    y = cg_index_select(ctx, x, 0, idx(ctx, CG_SHAPE(0), NULL));
    assert_int_equal(cg_numel(y), 0);
}

static void test_index_gather_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 2), (double[]){1, 2, 3, 4});
    cg_tensor *y = cg_gather(ctx, x, 1, idx(ctx, CG_SHAPE(2, 2), (int64_t[]){0, 0, 1, 0}));
    assert_values(y, (double[]){1, 1, 4, 3}, 4, 0); /* PyTorch's documented example */
    y = cg_gather(ctx, x, 0, idx(ctx, CG_SHAPE(1, 2), (int64_t[]){1, 0}));
    assert_values(y, (double[]){3, 2}, 2, 0);
    /* index smaller than x off axis, x [3,4], axis 0, 3-row index */
    cg_tensor *x34 = iota(ctx, 3, 4);
    y = cg_gather(ctx, x34, 0, idx(ctx, CG_SHAPE(3, 2), (int64_t[]){2, 1, 0, 0, 1, 2}));
    assert_values(y, (double[]){8, 5, 0, 1, 4, 9}, 6, 0);
    /* expanded index and transposed x */
    cg_tensor *ie =
        cg_expand(ctx, idx(ctx, CG_SHAPE(1, 3), (int64_t[]){2, 0, 1}), CG_SHAPE(4, 3));
    y = cg_gather(ctx, cg_transpose(ctx, x34, 0, 1), 1, ie); /* xt [4,3] */
    assert_values(y, (double[]){8, 0, 4, 9, 1, 5, 10, 2, 6, 11, 3, 7}, 12, 0);
}

static void test_index_embedding_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *w = iota(ctx, 3, 2);
    cg_tensor *y = cg_embedding(ctx, w, idx(ctx, CG_SHAPE(2, 2), (int64_t[]){2, 0, 1, 2}));
    assert_int_equal(cg_ndim(y), 3);
    assert_int_equal(cg_dim(y, 2), 2);
    assert_values(y, (double[]){4, 5, 0, 1, 2, 3, 4, 5}, 8, 0);
    y = cg_embedding(ctx, w, idx(ctx, 0, NULL, (int64_t[]){1})); /* 0-d index: [D] */
    assert_int_equal(cg_ndim(y), 1);
    assert_values(y, (double[]){2, 3}, 2, 0);
    /* transposed weight [2,3] rows 1, 1, 0 via a transposed index */
    cg_tensor *i = cg_transpose(ctx, idx(ctx, CG_SHAPE(1, 3), (int64_t[]){1, 1, 0}), 0, 1);
    y = cg_embedding(ctx, cg_transpose(ctx, w, 0, 1), i); /* [3,1,3] */
    assert_values(y, (double[]){1, 3, 5, 1, 3, 5, 0, 2, 4}, 9, 0);
}

static void test_index_zero_size(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *w = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3));
    cg_tensor *y = cg_embedding(ctx, w, idx(ctx, CG_SHAPE(0, 2), NULL));
    assert_int_equal(cg_numel(y), 0);
    assert_int_equal(cg_dim(y, 2), 3);
    y = cg_gather(ctx, iota(ctx, 2, 2), 1, idx(ctx, CG_SHAPE(2, 0), NULL));
    assert_int_equal(cg_numel(y), 0);
    y = cg_stack(ctx, 2, (const cg_tensor *[]){w, w}, 2);
    assert_int_equal(cg_dim(y, 2), 2);
}

/* ---- gradients ------------------------------------------------------------------------- */
static void test_index_concat_gradcheck(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 11);
    cg_tensor *base, *in[4];
    in[0] = transposed_leaf(&rng, 4, 3, &base); /* [3,4] non-contiguous */
    in[1] = randn_leaf(&rng, CG_F64, CG_SHAPE(3, 2), 1);
    in[2] = randn_leaf(&rng, CG_F64, CG_SHAPE(3, 1), 1);
    in[3] = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(3, 2), 0, 1); /* no gradient */
    check_all(f_join, (icase){.axis = 1, .n = 4}, 4, in);
    cg_tensor *y = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 4), 1); /* expanded to [3,4] inside */
    check_all(f_join, (icase){.axis = 0, .n = 2, .expand = true}, 2, (cg_tensor *[]){in[0], y});
    free_all(4, in);
    free_all(2, (cg_tensor *[]){y, base});
}

static void test_index_stack_gradcheck(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 12);
    cg_tensor *base, *in[3];
    in[0] = transposed_leaf(&rng, 3, 2, &base);          /* [2,3] */
    in[1] = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 3), 1); /* expanded to [2,3] */
    in[2] = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 3), 1);
    for (int axis = -3; axis < 3; axis++)
        check_all(f_join, (icase){.axis = axis, .n = 3, .expand = true, .stack = true}, 3, in);
    free_all(3, in);
    free_all(1, &base);
}

static void test_index_index_select_gradcheck(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 13);
    cg_tensor *base, *x = transposed_leaf(&rng, 4, 3, &base);           /* [3,4] */
    cg_tensor *rep = idx(ctx, CG_SHAPE(5), (int64_t[]){2, 0, 2, 2, 1}); /* repeats add up */
    check_all(f_index_select, (icase){.axis = 0, .index = rep}, 1, &x);
    cg_tensor *strided =
        cg_slice(ctx, idx(ctx, CG_SHAPE(6), (int64_t[]){3, 7, 3, 7, 0, 7}), 0, 0, 6, 2);
    check_all(f_index_select, (icase){.axis = 1, .index = strided}, 1, &x);
    cg_tensor *x3 = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 3, 2), 1);
    check_all(f_index_select, (icase){.axis = -2, .index = rep}, 1, &x3);
    cg_tensor *row = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 4), 1); /* broadcast to [3,4] */
    check_all(f_index_select, (icase){.axis = 0, .index = rep, .expand = true}, 1, &row);
    check_all(f_index_select, (icase){.axis = 1, .index = strided, .expand = true}, 1, &row);
    free_all(4, (cg_tensor *[]){x, x3, row, base});
}

static void test_index_gather_gradcheck(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 14);
    cg_tensor *base, *x = transposed_leaf(&rng, 4, 3, &base); /* [3,4] */
    cg_tensor *i0 = idx(ctx, CG_SHAPE(4, 3), (int64_t[]){0, 1, 2, 2, 2, 1, 0, 0, 0, 1, 1, 1});
    check_all(f_gather, (icase){.axis = 0, .index = i0}, 1, &x);
    cg_tensor *i1 = idx(ctx, CG_SHAPE(2, 5), (int64_t[]){3, 3, 0, 1, 3, 2, 2, 2, 0, 0});
    check_all(f_gather, (icase){.axis = 1, .index = i1}, 1, &x);
    cg_tensor *it = cg_transpose(ctx, i1, 0, 1); /* [5,2] non-contiguous index, axis 0 */
    cg_tensor *x52 = randn_leaf(&rng, CG_F64, CG_SHAPE(4, 2), 1);
    check_all(f_gather, (icase){.axis = 0, .index = it}, 1, &x52);
    cg_tensor *row = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 4), 1); /* broadcast to [3,4] */
    check_all(f_gather, (icase){.axis = 1, .index = i1, .expand = true}, 1, &row);
    free_all(4, (cg_tensor *[]){x, x52, row, base});
}

static void test_index_embedding_gradcheck(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 15);
    cg_tensor *w = randn_leaf(&rng, CG_F64, CG_SHAPE(4, 3), 1);
    cg_tensor *rep = idx(ctx, CG_SHAPE(2, 3), (int64_t[]){1, 3, 1, 1, 0, 3}); /* rows add up */
    check_all(f_embedding, (icase){.index = rep}, 1, &w);
    cg_tensor *base, *wt = transposed_leaf(&rng, 2, 5, &base); /* [5,2] */
    check_all(f_embedding, (icase){.index = cg_transpose(ctx, rep, 0, 1)}, 1, &wt);
    check_all(f_embedding, (icase){.index = idx(ctx, 0, NULL, (int64_t[]){4})}, 1, &wt);
    cg_tensor *row =
        randn_leaf(&rng, CG_F64, CG_SHAPE(1, 2), 1); /* a [3,2] weight of equal rows */
    cg_tensor *rep3 = idx(ctx, CG_SHAPE(4), (int64_t[]){2, 0, 2, 1});
    check_all(f_embedding, (icase){.index = rep3, .expand = true}, 1, &row);
    free_all(4, (cg_tensor *[]){w, wt, row, base});
}

/* The embedding's weight gradient: each row gets the sum of its rows of g. */
static void test_index_embedding_grad_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *w = cg_zeros(ctx, CG_F64, CG_SHAPE(3, 2));
    cg_set_requires_grad(w, true);
    cg_tensor *i = idx(ctx, CG_SHAPE(4), (int64_t[]){2, 0, 2, 2});
    cg_tensor *g = iota(ctx, 4, 2); /* rows (0,1) (2,3) (4,5) (6,7) */
    assert_int_equal(cg_backward_ex(cg_embedding(ctx, w, i), g, 0), CG_OK);
    assert_values(cg_grad_of(w), (double[]){2, 3, 0, 0, 10, 13}, 6, 0);
}

/* Each op and its gradient in f32 agree with f64 on the same values. */
static cg_tensor *all_ops(cg_ctx *ctx, cg_tensor *x, const cg_tensor *const *i) {
    const cg_tensor *parts[2] = {x, cg_mul_scalar(ctx, x, 2)};
    cg_tensor *y = cg_concat(ctx, 2, parts, 1);                        /* [3,8] */
    y = cg_stack(ctx, 2, (const cg_tensor *[]){y, cg_sin(ctx, y)}, 0); /* [2,3,8] */
    y = cg_index_select(ctx, y, 2, i[0]);                              /* [2,3,5] */
    y = cg_gather(ctx, cg_reshape(ctx, y, CG_SHAPE(6, 5)), 0, i[1]);   /* [2,5] */
    return cg_embedding(ctx, cg_square(ctx, y), i[2]);                 /* [4,5] */
}

static void test_index_f32_matches_f64(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 16);
    cg_tensor *x64 = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(3, 4), 0, 1);
    cg_tensor *x32 = cg_cast(ctx, x64, CG_F32);
    cg_set_requires_grad(x64, true);
    cg_set_requires_grad(x32, true);
    const cg_tensor *i[3] = {
        idx(ctx, CG_SHAPE(5), (int64_t[]){1, 7, 1, 0, 1}),
        idx(ctx, CG_SHAPE(2, 5), (int64_t[]){5, 0, 3, 3, 1, 2, 2, 4, 0, 1}),
        idx(ctx, CG_SHAPE(4), (int64_t[]){1, 0, 1, 1}),
    };
    cg_tensor *y64 = all_ops(ctx, x64, i), *y32 = all_ops(ctx, x32, i);
    assert_int_equal(cg_dtype_of(y32), CG_F32);
    double v64[20], v32[20];
    cg_copy_to_array(y64, CG_F64, v64);
    cg_copy_to_array(y32, CG_F64, v32);
    for (int k = 0; k < 20; k++) assert_float_equal(v32[k], v64[k], 1e-5 * (1 + fabs(v64[k])));
    assert_int_equal(cg_backward(cg_sum(ctx, y64, NULL, 0, false)), CG_OK);
    assert_int_equal(cg_backward(cg_sum(ctx, y32, NULL, 0, false)), CG_OK);
    double g64[12], g32[12];
    cg_copy_to_array(cg_grad_of(x64), CG_F64, g64);
    cg_copy_to_array(cg_grad_of(x32), CG_F64, g32);
    for (int k = 0; k < 12; k++) assert_float_equal(g32[k], g64[k], 1e-5 * (1 + fabs(g64[k])));
}

/* Scatter-adds big enough to run in parallel give the same bits on 1 and 4 threads. */
static void grads_with_threads(cg_ctx *ctx, int threads, const cg_tensor *x, const cg_tensor *w,
                               const cg_tensor *ix, const cg_tensor *iw, double *out) {
    cg_set_num_threads(threads);
    cg_tensor *g[2],
        *y = cg_add(ctx, cg_sum(ctx, cg_gather(ctx, x, 0, ix), NULL, 0, false),
                    cg_sum(ctx, cg_sin(ctx, cg_embedding(ctx, w, iw)), NULL, 0, false));
    assert_int_equal(
        cg_grad(ctx, 1, &y, NULL, 2, (cg_tensor *[]){(cg_tensor *)x, (cg_tensor *)w}, g, 0),
        CG_OK);
    cg_copy_to_array(g[0], CG_F64, out);
    cg_copy_to_array(g[1], CG_F64, out + cg_numel(x));
}

static void test_index_scatter_independent_of_threads(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 17);
    int saved = cg_get_num_threads();
    enum { R = 64, C = 1500, V = 8, N = 600, D = 2100 };
    cg_tensor *x = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(R, C), 0, 1);
    cg_tensor *w = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(V, D), 0, 1);
    cg_set_requires_grad(x, true);
    cg_set_requires_grad(w, true);
    cg_tensor *ix = cg_empty(ctx, CG_I64, CG_SHAPE(R, C)),
              *iw = cg_empty(ctx, CG_I64, CG_SHAPE(N));
    for (int64_t k = 0; k < R * C; k++)
        ((int64_t *)cg_data(ix))[k] = (int64_t)(cg_rng_u64(&rng) % 3);
    for (int64_t k = 0; k < N; k++)
        ((int64_t *)cg_data(iw))[k] = (int64_t)(cg_rng_u64(&rng) % V);
    static double one[R * C + V * D], four[R * C + V * D];
    grads_with_threads(ctx, 1, x, w, ix, iw, one);
    grads_with_threads(ctx, 4, x, w, ix, iw, four);
    cg_set_num_threads(saved);
    assert_memory_equal(one, four, sizeof one);
    double row0 = 0; /* x's row 0 got one count per index 0 */
    for (int64_t k = 0; k < C; k++) row0 += one[k];
    int64_t zeros = 0;
    for (int64_t k = 0; k < R * C; k++) zeros += ((int64_t *)cg_data(ix))[k] == 0;
    assert_float_equal(row0, (double)zeros, 0);
}

/* Changing the index after recording makes backward fail instead of misrouting. */
static void test_index_modified_index_fails_backward(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(3));
    cg_set_requires_grad(x, true);
    cg_tensor *i = idx(ctx, CG_SHAPE(2), (int64_t[]){0, 2});
    cg_tensor *s = cg_sum(ctx, cg_index_select(ctx, x, 0, i), NULL, 0, false);
    cg_fill_(i, 1);
    assert_int_equal(cg_backward(s), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "cg_index_select");
}

/* ---- errors ---------------------------------------------------------------------------- */
static void test_index_join_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3)),
              *b = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 4));
    assert_null(cg_concat(ctx, 2, (const cg_tensor *[]){a, b}, 0));
    assert_error(CG_ERR_SHAPE,
                 "cg_concat: input 1 [2,4] does not match input 0 [2,3] outside axis 0");
    assert_non_null(cg_concat(ctx, 2, (const cg_tensor *[]){a, b}, 1));
    assert_null(
        cg_concat(ctx, 2, (const cg_tensor *[]){a, cg_zeros(ctx, CG_F32, CG_SHAPE(6))}, 0));
    assert_error(CG_ERR_SHAPE, "input 1 [6] does not match input 0 [2,3]");
    assert_null(
        cg_concat(ctx, 2, (const cg_tensor *[]){a, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3))}, 0));
    assert_error(CG_ERR_DTYPE, "cg_concat: input 1 is f64, input 0 is f32");
    assert_null(cg_concat(ctx, 2, (const cg_tensor *[]){a, b}, 2));
    assert_error(CG_ERR_INDEX, "cg_concat: axis 2 out of range for rank 2");
    assert_null(cg_concat(ctx, 0, (const cg_tensor *[]){a}, 0));
    assert_error(CG_ERR_ARG, "cg_concat: needs at least one tensor (n = 0)");
    assert_null(cg_concat(ctx, 1, NULL, 0));
    assert_error(CG_ERR_ARG, "cg_concat");
    assert_null(cg_concat(ctx, 1, (const cg_tensor *[]){cg_scalar(ctx, CG_F32, 1)}, 0));
    assert_error(CG_ERR_INDEX, "cg_concat: axis 0 out of range for rank 0");
    cg_clear_error();
    assert_null(cg_concat(ctx, 2, (const cg_tensor *[]){a, NULL}, 0));
    assert_error(CG_ERR_ARG, "cg_concat: input 1 is NULL");
    /* stack: shapes must match everywhere, the new axis may be rank */
    assert_null(cg_stack(ctx, 2, (const cg_tensor *[]){a, b}, 0));
    assert_error(CG_ERR_SHAPE, "cg_stack: input 1 [2,4] does not match input 0 [2,3]");
    assert_null(cg_stack(ctx, 2, (const cg_tensor *[]){a, a}, 3));
    assert_error(CG_ERR_INDEX, "cg_stack: axis 3 out of range for rank 3");
    assert_null(cg_stack(ctx, 0, NULL, 0));
    assert_error(CG_ERR_ARG, "cg_stack: needs at least one tensor");
    assert_null(
        cg_stack(ctx, 2, (const cg_tensor *[]){a, cg_zeros(ctx, CG_I64, CG_SHAPE(2, 3))}, 0));
    assert_error(CG_ERR_DTYPE, "cg_stack: input 1 is i64, input 0 is f32");
    cg_tensor *r8 = cg_zeros(ctx, CG_F32, CG_SHAPE(1, 1, 1, 1, 1, 1, 1, 1));
    assert_null(cg_stack(ctx, 1, (const cg_tensor *[]){r8}, 0));
    assert_error(CG_ERR_SHAPE, "cg_stack: rank 8 is the maximum");
}

static void test_index_index_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F32, CG_SHAPE(3, 4));
    cg_tensor *bad = idx(ctx, CG_SHAPE(3), (int64_t[]){0, -1, 2});
    assert_null(cg_index_select(ctx, x, 0, bad));
    assert_error(CG_ERR_INDEX,
                 "cg_index_select: index -1 (element 1) out of range for axis 0 of size 3");
    assert_null(cg_index_select(ctx, x, 1, idx(ctx, CG_SHAPE(2), (int64_t[]){1, 4})));
    assert_error(CG_ERR_INDEX, "cg_index_select: index 4 (element 1)");
    assert_null(cg_index_select(ctx, x, 0, cg_zeros(ctx, CG_F32, CG_SHAPE(2))));
    assert_error(CG_ERR_DTYPE, "cg_index_select: index must be i64, got f32");
    assert_null(cg_index_select(ctx, x, 0, idx(ctx, CG_SHAPE(1, 1), (int64_t[]){0})));
    assert_error(CG_ERR_SHAPE, "cg_index_select: index [1,1] must have rank 1");
    assert_null(cg_index_select(ctx, x, -3, idx(ctx, CG_SHAPE(1), (int64_t[]){0})));
    assert_error(CG_ERR_INDEX, "cg_index_select: axis -3 out of range for rank 2");
    /* gather */
    assert_null(cg_gather(ctx, x, 1, idx(ctx, CG_SHAPE(1, 2), (int64_t[]){0, 4})));
    assert_error(CG_ERR_INDEX,
                 "cg_gather: index 4 (element 1) out of range for axis 1 of size 4");
    assert_null(cg_gather(ctx, x, 1, idx(ctx, CG_SHAPE(4, 1), (int64_t[]){0, 0, 0, 0})));
    assert_error(CG_ERR_SHAPE, "cg_gather: index [4,1] is larger than input [3,4] off axis 1");
    assert_null(cg_gather(ctx, x, 0, idx(ctx, CG_SHAPE(2), (int64_t[]){0, 0})));
    assert_error(CG_ERR_SHAPE, "cg_gather: index [2] must have rank 2");
    assert_null(cg_gather(ctx, x, 0, cg_zeros(ctx, CG_F64, CG_SHAPE(1, 1))));
    assert_error(CG_ERR_DTYPE, "cg_gather: index must be i64");
    /* embedding */
    assert_null(cg_embedding(ctx, x, idx(ctx, CG_SHAPE(2, 1), (int64_t[]){1, 3})));
    assert_error(CG_ERR_INDEX,
                 "cg_embedding: index 3 (element 1) out of range for axis 0 of size 3");
    assert_null(cg_embedding(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(3)),
                             idx(ctx, CG_SHAPE(1), (int64_t[]){0})));
    assert_error(CG_ERR_SHAPE, "cg_embedding: weight [3] must be [V, D]");
    assert_null(cg_embedding(ctx, x, cg_zeros(ctx, CG_F32, CG_SHAPE(1))));
    assert_error(CG_ERR_DTYPE, "cg_embedding: index must be i64, got f32");
    cg_tensor *i8 = cg_zeros(ctx, CG_I64, CG_SHAPE(1, 1, 1, 1, 1, 1, 1, 1));
    assert_null(cg_embedding(ctx, x, i8));
    assert_error(CG_ERR_SHAPE, "indices of rank below 8 (got 8)");
    /* NULL in, NULL out, keeping the first error */
    assert_null(cg_gather(ctx, cg_embedding(ctx, x, i8), 0, bad));
    assert_error(CG_ERR_SHAPE, "cg_embedding");
    cg_clear_error();
    assert_null(cg_index_select(ctx, NULL, 0, bad));
    assert_error(CG_ERR_ARG, "cg_index_select: tensor is NULL");
}

/* ---- ownership -------------------------------------------------------------------------- */
/* ctx NULL, nothing requires a gradient: every result is the caller's and is
 * all there is to free (LeakSanitizer checks). */
static void test_index_ctx_null_no_leaks(void **state) {
    (void)state;
    cg_tensor *x = cg_ones(NULL, CG_F32, CG_SHAPE(3, 2));
    cg_tensor *xt = cg_transpose(NULL, x, 0, 1);
    cg_tensor *i = cg_from_array(NULL, CG_I64, CG_SHAPE(2), (int64_t[]){2, 0});
    cg_tensor *i2 = cg_from_array(NULL, CG_I64, CG_SHAPE(2, 2), (int64_t[]){1, 0, 0, 1});
    cg_tensor *out[] = {
        cg_concat(NULL, 2, (const cg_tensor *[]){x, x}, 1),
        cg_stack(NULL, 2, (const cg_tensor *[]){xt, xt}, 2),
        cg_index_select(NULL, xt, 1, i),
        cg_gather(NULL, x, 0, i2),
        cg_embedding(NULL, x, i2),
    };
    for (size_t k = 0; k < sizeof out / sizeof out[0]; k++) assert_non_null(out[k]);
    free_all(5, out);
    /* errors with ctx NULL leave nothing behind either */
    assert_null(cg_index_select(NULL, x, 1, i));
    assert_null(cg_concat(NULL, 2, (const cg_tensor *[]){x, i}, 0));
    /* a heap leaf that requires a gradient needs a context: refused, nothing leaks */
    cg_tensor *w = cg_ones(NULL, CG_F64, CG_SHAPE(3, 2));
    cg_set_requires_grad(w, true);
    assert_null(cg_embedding(NULL, w, i2));
    assert_error(CG_ERR_STATE, "cg_embedding");
    assert_null(cg_concat(NULL, 2, (const cg_tensor *[]){w, w}, 0));
    assert_error(CG_ERR_STATE, "cg_concat");
    free_all(5, (cg_tensor *[]){x, xt, i, i2, w});
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_concat_values),
        cmocka_unit_test(test_index_stack_values),
        cmocka_unit_test(test_index_index_select_values),
        cmocka_unit_test(test_index_gather_values),
        cmocka_unit_test(test_index_embedding_values),
        cmocka_unit_test(test_index_zero_size),
        cmocka_unit_test(test_index_concat_gradcheck),
        cmocka_unit_test(test_index_stack_gradcheck),
        cmocka_unit_test(test_index_index_select_gradcheck),
        cmocka_unit_test(test_index_gather_gradcheck),
        cmocka_unit_test(test_index_embedding_gradcheck),
        cmocka_unit_test(test_index_embedding_grad_values),
        cmocka_unit_test(test_index_f32_matches_f64),
        cmocka_unit_test(test_index_scatter_independent_of_threads),
        cmocka_unit_test(test_index_modified_index_fails_backward),
        cmocka_unit_test(test_index_join_errors),
        cmocka_unit_test(test_index_index_errors),
        cmocka_unit_test(test_index_ctx_null_no_leaks),
    };
    return cmocka_run_group_tests_name("index", tests, ctx_setup, ctx_teardown);
}
