/* The sequence ops (ops/structure.c, ops/scatter.c, ops/einsum.c): values
 * against PyTorch 1.13 (computed there and pasted as constants), gradcheck
 * and gradgradcheck in float64 (contiguous, transposed and broadcast
 * inputs), cumprod's gradient with zeros on both of its paths, results
 * independent of the thread count, ownership with ctx NULL, and every error
 * path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "cgrad_cmocka.h"
#include "testutil.h"

static cg_tensor *from(cg_ctx *ctx, int ndim, const int64_t *shape, const double *v) {
    return cg_from_array(ctx, CG_F64, ndim, shape, v);
}
static cg_tensor *ids(cg_ctx *ctx, int ndim, const int64_t *shape, const int64_t *v) {
    return cg_from_array(ctx, CG_I64, ndim, shape, v);
}
/* [rows, cols] f64 holding 0, 1, 2, ... */
static cg_tensor *iota(cg_ctx *ctx, int64_t rows, int64_t cols) {
    return cg_view(ctx, cg_arange(ctx, CG_F64, 0, (double)(rows * cols), 1),
                   CG_SHAPE(rows, cols));
}
static cg_tensor *iota3(cg_ctx *ctx, int64_t a, int64_t b, int64_t c) {
    return cg_view(ctx, cg_arange(ctx, CG_F64, 0, (double)(a * b * c), 1), CG_SHAPE(a, b, c));
}
static void assert_i64(const cg_tensor *t, const int64_t *want, int64_t n) {
    int64_t got[64];
    assert_non_null(t);
    assert_int_equal(cg_dtype_of(t), CG_I64);
    assert_int_equal(cg_numel(t), n);
    assert_int_equal(cg_copy_to_array(t, CG_I64, got), CG_OK);
    assert_memory_equal(got, want, sizeof(int64_t) * (size_t)n);
}
/* assert_values where NaN in want must be NaN in t. */
static void assert_values_nan(const cg_tensor *t, const double *want, int64_t n) {
    double got[64];
    assert_non_null(t);
    assert_int_equal(cg_numel(t), n);
    cg_copy_to_array(t, CG_F64, got);
    for (int64_t i = 0; i < n; i++)
        if (isnan(want[i]))
            assert_true(isnan(got[i]));
        else
            assert_float_equal(got[i], want[i], 0);
}
static void assert_shape(const cg_tensor *t, int ndim, const int64_t *shape) {
    assert_non_null(t);
    assert_int_equal(cg_ndim(t), ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(cg_dim(t, i), shape[i]);
}
/* A caller-owned random leaf [cols, rows] that is the transpose of its base. */
static cg_tensor *transposed_leaf(cg_rng *rng, int64_t rows, int64_t cols, cg_tensor **base) {
    *base = cg_randn(NULL, rng, CG_F64, CG_SHAPE(rows, cols), 0, 1);
    cg_tensor *t = cg_transpose(NULL, *base, 0, 1);
    assert_int_equal(cg_set_requires_grad(t, true), CG_OK);
    return t;
}
static void free_all(int n, cg_tensor **ts) {
    for (int i = 0; i < n; i++) cg_tensor_free(ts[i]);
}

/* ---- values ------------------------------------------------------------------------------ */
static void test_seq_compare_scalar_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_cast(ctx, from(ctx, CG_SHAPE(4), (double[]){0.1, 0.2, -1, NAN}), CG_F32);
    cg_tensor *y = cg_gt_scalar(ctx, x, 0.1); /* 0.1 rounded to f32, as torch */
    assert_int_equal(cg_dtype_of(y), CG_F32);
    assert_values(y, (double[]){0, 1, 0, 0}, 4, 0);
    assert_values(cg_eq_scalar(ctx, x, 0.1), (double[]){1, 0, 0, 0}, 4, 0);
    assert_values(cg_ne_scalar(ctx, x, NAN), (double[]){1, 1, 1, 1}, 4, 0);
    assert_values(cg_le_scalar(ctx, x, 0), (double[]){0, 0, 1, 0}, 4, 0);
    assert_values(cg_lt_scalar(ctx, x, 0.15), (double[]){1, 0, 1, 0}, 4, 0);
    assert_values(cg_ge_scalar(ctx, x, 0.2), (double[]){0, 1, 0, 0}, 4, 0);
    /* i64: an integer stays i64; a fraction compares in f32, as torch */
    cg_tensor *xi = ids(ctx, CG_SHAPE(3), (int64_t[]){16777217, 3, -4});
    y = cg_gt_scalar(ctx, xi, 16777216.5);
    assert_int_equal(cg_dtype_of(y), CG_F32);
    assert_values(y, (double[]){0, 0, 0}, 3, 0); /* 16777217 rounds to 16777216 in f32 */
    assert_values(cg_gt_scalar(ctx, xi, 2.5), (double[]){1, 1, 0}, 3, 0);
    assert_values(cg_lt_scalar(ctx, xi, -3.5), (double[]){0, 0, 1}, 3, 0);
    y = cg_ge_scalar(ctx, xi, 3);
    assert_i64(y, (int64_t[]){1, 1, 0}, 3);
    assert_i64(cg_gt_scalar(ctx, xi, 16777216), (int64_t[]){1, 0, 0}, 3); /* exact in i64 */
    assert_values(cg_lt_scalar(ctx, xi, 1e300), (double[]){1, 1, 1}, 3, 0);
    /* masks carry no gradient */
    cg_tensor *w = cg_ones(ctx, CG_F64, CG_SHAPE(2));
    cg_set_requires_grad(w, true);
    assert_false(cg_requires_grad(cg_gt_scalar(ctx, w, 0)));
}

static void test_seq_masked_fill_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = iota(ctx, 2, 3);
    cg_tensor *y = cg_masked_fill(ctx, x, cg_gt_scalar(ctx, x, 2), -INFINITY);
    assert_values(y, (double[]){0, 1, 2, -INFINITY, -INFINITY, -INFINITY}, 6, 0);
    /* x [3] and mask [2,1] broadcast together, as torch's masked_fill */
    cg_tensor *x3 = from(ctx, CG_SHAPE(3), (double[]){1, 2, 3});
    y = cg_masked_fill(ctx, x3, ids(ctx, CG_SHAPE(2, 1), (int64_t[]){1, 0}), 5);
    assert_shape(y, 2, (int64_t[]){2, 3});
    assert_values(y, (double[]){5, 5, 5, 1, 2, 3}, 6, 0);
    /* an i64 x truncates the value (torch: -2.5 -> -2); a NaN mask entry is true */
    cg_tensor *xi = ids(ctx, CG_SHAPE(3), (int64_t[]){1, 2, 3});
    y = cg_masked_fill(ctx, xi, from(ctx, CG_SHAPE(3), (double[]){1, 0, NAN}), -2.5);
    assert_i64(y, (int64_t[]){-2, 2, -2}, 3);
    /* a transposed x and an f32 mask */
    cg_tensor *mt =
        cg_cast(ctx, from(ctx, CG_SHAPE(3, 2), (double[]){0, 1, 0, 0, 1, 0}), CG_F32);
    y = cg_masked_fill(ctx, cg_transpose(ctx, x, 0, 1), mt, 9);
    assert_values(y, (double[]){0, 9, 1, 4, 9, 5}, 6, 0);
}

static void test_seq_where_scalar_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *c = ids(ctx, CG_SHAPE(2), (int64_t[]){1, 0});
    cg_tensor *xi = ids(ctx, CG_SHAPE(2), (int64_t[]){1, 2});
    cg_tensor *y = cg_where_scalar(ctx, c, xi, 0.5); /* torch: f32 [1, 0.5] */
    assert_int_equal(cg_dtype_of(y), CG_F32);
    assert_values(y, (double[]){1, 0.5}, 2, 0);
    assert_i64(cg_where_scalar(ctx, c, xi, 7), (int64_t[]){1, 7}, 2);
    /* cond [2,1] against x [3] */
    y = cg_where_scalar(ctx, cg_reshape(ctx, c, CG_SHAPE(2, 1)),
                        from(ctx, CG_SHAPE(3), (double[]){4, 5, 6}), -1);
    assert_values(y, (double[]){4, 5, 6, -1, -1, -1}, 6, 0);
}

static void test_seq_tril_triu_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = iota3(ctx, 2, 3, 4);
    assert_values(cg_tril(ctx, x, -1), (double[]){0, 0, 0, 0, 4,  0, 0, 0, 8,  9,  0, 0,
                                                  0, 0, 0, 0, 16, 0, 0, 0, 20, 21, 0, 0},
                  24, 0);
    assert_values(cg_triu(ctx, x, 1), (double[]){0, 1,  2,  3,  0, 0, 6,  7,  0, 0, 0, 11,
                                                 0, 13, 14, 15, 0, 0, 18, 19, 0, 0, 0, 23},
                  24, 0);
    assert_values(cg_tril(ctx, x, 2), (double[]){0,  1,  2,  0, 4,  5,  6,  7,  8,  9,  10, 11,
                                                 12, 13, 14, 0, 16, 17, 18, 19, 20, 21, 22, 23},
                  24, 0);
    assert_values(cg_triu(ctx, cg_transpose(ctx, x, 1, 2), 0),
                  (double[]){0,  4,  8,  0, 5,  9,  0, 0, 10, 0, 0, 0,
                             12, 16, 20, 0, 17, 21, 0, 0, 22, 0, 0, 0},
                  24, 0);
    /* diagonals past either corner, and i64 */
    cg_tensor *m = iota(ctx, 2, 2);
    assert_values(cg_tril(ctx, m, INT64_MAX), (double[]){0, 1, 2, 3}, 4, 0);
    assert_values(cg_tril(ctx, m, INT64_MIN), (double[]){0, 0, 0, 0}, 4, 0);
    assert_values(cg_triu(ctx, m, INT64_MIN), (double[]){0, 1, 2, 3}, 4, 0);
    assert_values(cg_triu(ctx, m, INT64_MAX), (double[]){0, 0, 0, 0}, 4, 0);
    assert_i64(cg_triu(ctx, ids(ctx, CG_SHAPE(2, 2), (int64_t[]){5, 6, 7, 8}), 0),
               (int64_t[]){5, 6, 0, 8}, 4);
    assert_int_equal(cg_numel(cg_tril(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(0, 3)), 0)), 0);
}

/* A causal attention mask the way a GPT builds it: scores above the
 * diagonal to -inf, then softmax: row i spreads over 0..i only. */
static void test_seq_causal_mask(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *scores = cg_zeros(ctx, CG_F64, CG_SHAPE(3, 3));
    cg_tensor *above = cg_triu(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(3, 3)), 1);
    cg_tensor *p = cg_softmax(ctx, cg_masked_fill(ctx, scores, above, -INFINITY), -1);
    assert_values(p, (double[]){1, 0, 0, 0.5, 0.5, 0, 1. / 3, 1. / 3, 1. / 3}, 9, 1e-15);
}

static void test_seq_cumsum_cumprod_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *y = from(ctx, CG_SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    assert_values(cg_cumsum(ctx, y, 0), (double[]){1, 2, 3, 5, 7, 9}, 6, 0);
    assert_values(cg_cumprod(ctx, y, -1), (double[]){1, 2, 6, 4, 20, 120}, 6, 0);
    assert_values(cg_cumsum(ctx, cg_transpose(ctx, y, 0, 1), 1), (double[]){1, 5, 2, 7, 3, 9},
                  6, 0);
    assert_i64(cg_cumsum(ctx, ids(ctx, CG_SHAPE(2, 2), (int64_t[]){5, -2, 7, 1}), -1),
               (int64_t[]){5, 3, 7, 8}, 4);
    assert_i64(cg_cumprod(ctx, ids(ctx, CG_SHAPE(3), (int64_t[]){-2, 3, 4}), 0),
               (int64_t[]){-2, -6, -24}, 3);
    assert_values(cg_cumprod(ctx, from(ctx, CG_SHAPE(5), (double[]){2, 0, 3, 0, 2}), 0),
                  (double[]){2, 0, 0, 0, 0}, 5, 0);
    /* a scalar is one line (dim 0 or -1), as torch */
    cg_tensor *s = cg_scalar(ctx, CG_F64, 3);
    y = cg_cumsum(ctx, s, -1);
    assert_int_equal(cg_ndim(y), 0);
    assert_values(y, (double[]){3}, 1, 0);
    assert_values(cg_cumprod(ctx, s, 0), (double[]){3}, 1, 0);
    /* f32 accumulates in double: 1 + 2^-24 ... stays exact until rounded once */
    cg_tensor *f = cg_full(ctx, CG_F32, CG_SHAPE(4), 0x1p-24);
    cg_tensor *one = cg_cumsum(
        ctx, cg_concat(ctx, 2, (const cg_tensor *[]){cg_ones(ctx, CG_F32, CG_SHAPE(1)), f}, 0),
        0);
    assert_values(one, (double[]){1, 1, 1 + 0x1p-23, 1 + 0x1p-23, 1 + 0x1p-22}, 5, 0);
}

/* cumprod's gradient at zeros, against torch, on the O(n) path (a plain
 * backward) and the differentiable path (CG_CREATE_GRAPH). */
static void test_seq_cumprod_grad_zeros(void **state) {
    cg_ctx *ctx = *state;
    static const double xs[4][5] = {
        {2, 0, 3, 0, 2}, {2, 0, 3, 1.5, 2}, {0, 2, 3, 4, 5}, {1, 2, 3, 4, 0}};
    static const double want[4][5] = {
        {1, 22, 0, 0, 0}, {1, 148, 0, 0, 0}, {719, 0, 0, 0, 0}, {119, 59, 38, 24, 120}};
    cg_tensor *g = from(ctx, CG_SHAPE(5), (double[]){1, 2, 3, 4, 5});
    for (int c = 0; c < 4; c++) {
        for (int graph = 0; graph < 2; graph++) {
            cg_tensor *x = from(ctx, CG_SHAPE(5), xs[c]), *dx;
            cg_set_requires_grad(x, true);
            cg_tensor *y = cg_cumprod(ctx, x, 0);
            assert_int_equal(cg_grad(ctx, 1, &y, (const cg_tensor *[]){g}, 1, &x, &dx,
                                     graph ? CG_CREATE_GRAPH : 0),
                             CG_OK);
            assert_values(dx, want[c], 5, 1e-12);
            assert_int_equal(cg_requires_grad(dx), graph == 1);
        }
    }
}

/* Both paths of cumprod's gradient agree on batched, transposed input with
 * zeros, along either dim (the differentiable one reshapes and transposes). */
static void test_seq_cumprod_grad_paths_agree(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(30);
    cg_tensor *r = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(2, 5, 3), 0, 1);
    cg_tensor *base = cg_masked_fill(ctx, r, cg_lt_scalar(ctx, r, -0.8), 0); /* some zeros */
    cg_set_requires_grad(base, true);
    cg_tensor *xz = cg_transpose(ctx, base, 0, 2); /* [3,5,2], non-contiguous */
    for (int d = 0; d < 3; d++) {
        cg_tensor *y = cg_cumprod(ctx, xz, d), *g0, *g1;
        cg_tensor *go = cg_randn(ctx, &rng, CG_F64, 3, cg_shape(y), 0, 1);
        assert_int_equal(
            cg_grad(ctx, 1, &y, (const cg_tensor *[]){go}, 1, &base, &g0, CG_RETAIN_GRAPH),
            CG_OK);
        assert_int_equal(
            cg_grad(ctx, 1, &y, (const cg_tensor *[]){go}, 1, &base, &g1, CG_CREATE_GRAPH),
            CG_OK);
        double a[30], b[30];
        cg_copy_to_array(g0, CG_F64, a);
        cg_copy_to_array(g1, CG_F64, b);
        for (int k = 0; k < 30; k++) assert_float_equal(a[k], b[k], 1e-12 * (1 + fabs(a[k])));
    }
}

static void test_seq_flip_roll_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *z = iota(ctx, 2, 3);
    assert_values(cg_flip(ctx, z, (int[]){0}, 1), (double[]){3, 4, 5, 0, 1, 2}, 6, 0);
    assert_values(cg_flip(ctx, z, (int[]){-1, 0}, 2), (double[]){5, 4, 3, 2, 1, 0}, 6, 0);
    assert_values(cg_flip(ctx, cg_transpose(ctx, z, 0, 1), (int[]){1}, 1),
                  (double[]){3, 0, 4, 1, 5, 2}, 6, 0);
    assert_values(cg_flip(ctx, z, NULL, 0), (double[]){0, 1, 2, 3, 4, 5}, 6, 0);
    assert_i64(cg_flip(ctx, ids(ctx, CG_SHAPE(3), (int64_t[]){1, 2, 3}), (int[]){0}, 1),
               (int64_t[]){3, 2, 1}, 3);
    cg_tensor *e = cg_flip(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 2)), (int[]){0, 1}, 2);
    assert_int_equal(cg_numel(e), 0);
    /* roll */
    int64_t one = 1;
    assert_values(cg_roll(ctx, z, &one, (int[]){1}, 1), (double[]){2, 0, 1, 5, 3, 4}, 6, 0);
    assert_values(cg_roll(ctx, z, (int64_t[]){-1, 2}, (int[]){0, 1}, 2),
                  (double[]){4, 5, 3, 1, 2, 0}, 6, 0);
    assert_values(cg_roll(ctx, z, (int64_t[]){-2}, NULL, 1), (double[]){2, 3, 4, 5, 0, 1}, 6,
                  0);
    assert_values(cg_roll(ctx, cg_transpose(ctx, z, 0, 1), &one, NULL, 1),
                  (double[]){5, 0, 3, 1, 4, 2}, 6, 0);
    assert_values(cg_roll(ctx, z, (int64_t[]){1, 1}, (int[]){1, 1}, 2),
                  (double[]){1, 2, 0, 4, 5, 3}, 6, 0);
    assert_values(cg_roll(ctx, z, (int64_t[]){INT64_MIN}, (int[]){1}, 1), /* -2^63 mod 3 = 1 */
                  (double[]){2, 0, 1, 5, 3, 4}, 6, 0);
    assert_int_equal(cg_numel(cg_roll(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0)), &one, NULL, 1)),
                     0);
}

static void test_seq_repeat_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *v = from(ctx, CG_SHAPE(2), (double[]){1, 2});
    cg_tensor *y = cg_repeat(ctx, v, 2, (int64_t[]){2, 3});
    assert_shape(y, 2, (int64_t[]){2, 6});
    assert_values(y, (double[]){1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2}, 12, 0);
    y = cg_repeat(ctx, cg_transpose(ctx, iota(ctx, 2, 3), 0, 1), 2, (int64_t[]){1, 2});
    assert_values(y, (double[]){0, 3, 0, 3, 1, 4, 1, 4, 2, 5, 2, 5}, 12, 0);
    y = cg_repeat(ctx, cg_scalar(ctx, CG_F64, 3), 1, (int64_t[]){2});
    assert_values(y, (double[]){3, 3}, 2, 0);
    y = cg_repeat(ctx, cg_scalar(ctx, CG_F64, 3), 0, NULL);
    assert_int_equal(cg_ndim(y), 0);
    y = cg_repeat(ctx, v, 2, (int64_t[]){0, 2});
    assert_shape(y, 2, (int64_t[]){0, 4});
    assert_i64(
        cg_repeat(ctx, ids(ctx, CG_SHAPE(1, 2), (int64_t[]){7, 8}), 2, (int64_t[]){2, 1}),
        (int64_t[]){7, 8, 7, 8}, 4);
    assert_values(cg_repeat(ctx, cg_expand(ctx, v, CG_SHAPE(2, 2)), 3, (int64_t[]){1, 1, 2}),
                  (double[]){1, 2, 1, 2, 1, 2, 1, 2}, 8, 0);
}

static void test_seq_split_chunk_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = iota(ctx, 2, 5), *out[6];
    assert_int_equal(cg_split(ctx, x, 2, 1, out, 6), 3);
    assert_values(out[0], (double[]){0, 1, 5, 6}, 4, 0);
    assert_values(out[2], (double[]){4, 9}, 2, 0);
    assert_ptr_equal(cg_data(out[1]), (double *)cg_data(x) + 2); /* views */
    assert_int_equal(cg_split(ctx, x, 5, -1, out, 1), 1);
    assert_ptr_equal(cg_data(out[0]), cg_data(x));
    assert_int_equal(cg_split(ctx, x, 9, 0, out, 1), 1); /* one piece of the whole */
    assert_int_equal(cg_dim(out[0], 0), 2);
    cg_tensor *e = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 2));
    assert_int_equal(cg_split(ctx, e, 0, 0, out, 1), 1); /* torch: (tensor([]),) */
    assert_int_equal(cg_numel(out[0]), 0);
    /* chunk: ceil(5 / 3) = 2: pieces of 2, 2, 1; 6 in 4 chunks: 3 of 2, as torch */
    assert_int_equal(cg_chunk(ctx, x, 3, 1, out, 6), 3);
    assert_values(out[2], (double[]){4, 9}, 2, 0);
    assert_int_equal(cg_chunk(ctx, cg_arange(ctx, CG_F64, 0, 6, 1), 4, 0, out, 6), 3);
    assert_values(out[2], (double[]){4, 5}, 2, 0);
    assert_int_equal(cg_chunk(ctx, e, 3, 0, out, 6), 3); /* empty: chunks empty pieces */
    assert_int_equal(cg_chunk(ctx, x, 1, 0, out, 1), 1);
    /* split_sizes */
    assert_int_equal(cg_split_sizes(ctx, x, (int64_t[]){1, 0, 4}, 3, 1, out), 3);
    assert_int_equal(cg_dim(out[1], 1), 0);
    assert_values(out[2], (double[]){1, 2, 3, 4, 6, 7, 8, 9}, 8, 0);
    /* a transposed x: views keep its strides */
    assert_int_equal(cg_chunk(ctx, cg_transpose(ctx, x, 0, 1), 2, 1, out, 2), 2);
    assert_values(out[1], (double[]){5, 6, 7, 8, 9}, 5, 0);
}

static void test_seq_scatter_index_add_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *y = cg_scatter_add(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(3, 5)), 0,
                                  ids(ctx, CG_SHAPE(1, 5), (int64_t[]){0, 1, 2, 0, 0}),
                                  cg_ones(ctx, CG_F64, CG_SHAPE(2, 5))); /* torch's example */
    assert_values(y, (double[]){1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0}, 15, 0);
    /* repeated indices add up; a transposed x; i64 */
    cg_tensor *x = cg_transpose(ctx, iota(ctx, 3, 2), 0, 1); /* [[0,2,4],[1,3,5]] */
    y = cg_scatter_add(ctx, x, 1, ids(ctx, CG_SHAPE(2, 2), (int64_t[]){2, 2, 0, 1}),
                       from(ctx, CG_SHAPE(2, 2), (double[]){10, 20, 30, 40}));
    assert_values(y, (double[]){0, 2, 34, 31, 43, 5}, 6, 0);
    assert_i64(cg_scatter_add(ctx, ids(ctx, CG_SHAPE(2), (int64_t[]){1, 1}), 0,
                              ids(ctx, CG_SHAPE(3), (int64_t[]){1, 1, 0}),
                              ids(ctx, CG_SHAPE(3), (int64_t[]){5, 6, 7})),
               (int64_t[]){8, 12}, 2);
    /* index_add: torch's example, then repeats along dim 1 */
    y = cg_index_add(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(5, 3)), 0,
                     ids(ctx, CG_SHAPE(3), (int64_t[]){0, 4, 2}),
                     from(ctx, CG_SHAPE(3, 3), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9}));
    assert_values(y, (double[]){2, 3, 4, 1, 1, 1, 8, 9, 10, 1, 1, 1, 5, 6, 7}, 15, 0);
    y = cg_index_add(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3)), 1,
                     ids(ctx, CG_SHAPE(2), (int64_t[]){2, 2}),
                     from(ctx, CG_SHAPE(2, 2), (double[]){1, 2, 3, 4}));
    assert_values(y, (double[]){0, 0, 3, 0, 0, 7}, 6, 0);
    y = cg_index_add(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 2)), 0,
                     ids(ctx, 0, NULL, (int64_t[]){1}), /* a 0-d index */
                     from(ctx, CG_SHAPE(1, 2), (double[]){5, 6}));
    assert_values(y, (double[]){0, 0, 5, 6}, 4, 0);
}

static void test_seq_sort_topk_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *s = from(ctx, CG_SHAPE(2, 4), (double[]){3, 1, 2, 1, NAN, 0, -1, 5}), *v, *i;
    assert_int_equal(cg_sort(ctx, s, 1, false, &v, &i), CG_OK); /* torch, stable=True */
    assert_values_nan(v, (double[]){1, 1, 2, 3, -1, 0, 5, NAN}, 8);
    assert_i64(i, (int64_t[]){1, 3, 2, 0, 2, 1, 3, 0}, 8);
    assert_int_equal(cg_sort(ctx, s, -1, true, &v, &i), CG_OK);
    assert_values_nan(v, (double[]){3, 2, 1, 1, NAN, 5, 0, -1}, 8);
    assert_i64(i, (int64_t[]){0, 2, 1, 3, 0, 3, 1, 2}, 8);
    assert_int_equal(cg_sort(ctx, s, 0, false, &v, &i), CG_OK);
    assert_values_nan(v, (double[]){3, 0, -1, 1, NAN, 1, 2, 5}, 8);
    assert_i64(i, (int64_t[]){0, 1, 1, 0, 1, 0, 0, 1}, 8);
    assert_int_equal(cg_topk(ctx, s, 2, 1, true, &v, &i), CG_OK);
    assert_values_nan(v, (double[]){3, 2, NAN, 5}, 4);
    assert_i64(i, (int64_t[]){0, 2, 0, 3}, 4);
    assert_int_equal(cg_topk(ctx, s, 3, 1, false, &v, &i), CG_OK);
    assert_values(v, (double[]){1, 1, 2, -1, 0, 5}, 6, 0);
    assert_i64(i, (int64_t[]){1, 3, 2, 2, 1, 3}, 6);
    /* i64, a transposed x, only indices wanted, k = 0, a scalar */
    cg_tensor *xi = ids(ctx, CG_SHAPE(3, 2), (int64_t[]){4, 9, 1, 2, 7, 0});
    assert_int_equal(cg_topk(ctx, xi, 1, 0, true, &v, &i), CG_OK);
    assert_i64(v, (int64_t[]){7, 9}, 2);
    assert_i64(i, (int64_t[]){2, 0}, 2);
    assert_int_equal(cg_sort(ctx, cg_transpose(ctx, xi, 0, 1), 1, false, NULL, &i), CG_OK);
    assert_i64(i, (int64_t[]){1, 0, 2, 2, 1, 0}, 6);
    assert_int_equal(cg_topk(ctx, s, 0, 1, true, &v, NULL), CG_OK);
    assert_shape(v, 2, (int64_t[]){2, 0});
    assert_int_equal(cg_sort(ctx, cg_scalar(ctx, CG_F64, 4), 0, false, &v, &i), CG_OK);
    assert_values(v, (double[]){4}, 1, 0);
    assert_i64(i, (int64_t[]){0}, 1);
    assert_int_equal(cg_topk(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(0, 3)), 2, 1, true, &v, &i),
                     CG_OK);
    assert_shape(v, 2, (int64_t[]){0, 2});
}

static void test_seq_outer_bmm_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *y = cg_outer(ctx, from(ctx, CG_SHAPE(2), (double[]){1, 2}),
                            from(ctx, CG_SHAPE(3), (double[]){3, 4, 5}));
    assert_values(y, (double[]){3, 4, 5, 6, 8, 10}, 6, 0);
    y = cg_outer(ctx, ids(ctx, CG_SHAPE(2), (int64_t[]){1, 2}),
                 cg_cast(ctx, from(ctx, CG_SHAPE(1), (double[]){0.5}), CG_F32));
    assert_int_equal(cg_dtype_of(y), CG_F32); /* promoted as cg_mul */
    assert_values(y, (double[]){0.5, 1}, 2, 0);
    cg_tensor *a = iota3(ctx, 2, 2, 3), *b = iota3(ctx, 2, 3, 2);
    assert_values(cg_bmm(ctx, a, b), (double[]){10, 13, 28, 40, 172, 193, 244, 274}, 8, 0);
    cg_tensor *at = cg_transpose(ctx, b, 1, 2); /* [2,2,3] non-contiguous */
    assert_values(cg_bmm(ctx, at, b), (double[]){20, 26, 26, 35, 200, 224, 224, 251}, 8, 0);
    y = cg_bmm(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(0, 2, 3)),
               cg_zeros(ctx, CG_F32, CG_SHAPE(0, 3, 4)));
    assert_shape(y, 3, (int64_t[]){0, 2, 4});
    y = cg_bmm(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(2, 2, 0)),
               cg_zeros(ctx, CG_F32, CG_SHAPE(2, 0, 4)));
    assert_values(y, (double[]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 16, 0);
}

static void test_seq_einsum_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = iota(ctx, 2, 3), *b = cg_sub_scalar(ctx, iota(ctx, 3, 4), 5);
    double ab[8] = {5, 8, 11, 14, -4, 8, 20, 32};
    assert_values(cg_einsum(ctx, "ij,jk->ik", a, b), ab, 8, 0);
    assert_values(cg_einsum(ctx, "ij,jk", a, b), ab, 8, 0);
    assert_values(cg_einsum(ctx, " i j , j k -> i k ", a, b), ab, 8, 0);
    assert_values(cg_einsum(ctx, "ij,jk->ki", a, b), (double[]){5, -4, 8, 8, 11, 20, 14, 32}, 8,
                  0);
    assert_values(cg_einsum(ctx, "i,j->ij", from(ctx, CG_SHAPE(2), (double[]){1, 2}),
                            from(ctx, CG_SHAPE(3), (double[]){3, 4, 5})),
                  (double[]){3, 4, 5, 6, 8, 10}, 6, 0);
    /* implicit output: A-Z before a-z */
    cg_tensor *y = cg_einsum(ctx, "Ba,bA", iota(ctx, 2, 3), iota(ctx, 4, 2));
    assert_shape(y, 4, (int64_t[]){2, 2, 3, 4});
    double got[48];
    cg_copy_to_array(y, CG_F64, got);
    assert_float_equal(got[5], 2, 0);
    assert_float_equal(got[47], 35, 0);
    assert_float_equal(got[28], 1, 0);
    /* diagonals, traces, sums, broadcasting, ellipses */
    cg_tensor *m = iota(ctx, 3, 3);
    assert_values(cg_einsum(ctx, "ii->i", m, NULL), (double[]){0, 4, 8}, 3, 0);
    assert_values(cg_einsum(ctx, "ii", m, NULL), (double[]){12}, 1, 0);
    cg_tensor *inf = from(ctx, CG_SHAPE(2, 2), (double[]){1, INFINITY, 0, 1});
    assert_values(cg_einsum(ctx, "ii", inf, NULL), (double[]){2}, 1, 0); /* inf stays out */
    assert_values(cg_einsum(ctx, "ij->", a, NULL), (double[]){15}, 1, 0);
    assert_values(cg_einsum(ctx, "ij->ji", a, NULL), (double[]){0, 3, 1, 4, 2, 5}, 6, 0);
    assert_values(cg_einsum(ctx, "bi,bi->b", from(ctx, CG_SHAPE(1, 3), (double[]){1, 2, 3}),
                            iota(ctx, 4, 3)),
                  (double[]){8, 26, 44, 62}, 4, 0);
    assert_values(cg_einsum(ctx, "i,i->", from(ctx, CG_SHAPE(1), (double[]){2}),
                            from(ctx, CG_SHAPE(3), (double[]){1, 2, 3})),
                  (double[]){12}, 1, 0);
    assert_values(cg_einsum(ctx, "...ij,...jk", iota3(ctx, 2, 2, 3), iota(ctx, 3, 2)),
                  (double[]){10, 13, 28, 40, 46, 67, 64, 94}, 8, 0);
    assert_values(cg_einsum(ctx, "...ij->ij", iota3(ctx, 2, 2, 3), NULL),
                  (double[]){6, 8, 10, 12, 14, 16}, 6, 0);
    assert_values(cg_einsum(ctx, "bij,bjk->bik", iota3(ctx, 2, 2, 3), iota3(ctx, 2, 3, 2)),
                  (double[]){10, 13, 28, 40, 172, 193, 244, 274}, 8, 0);
    assert_values(cg_einsum(ctx, "iij->ji", iota3(ctx, 3, 3, 2), NULL),
                  (double[]){0, 8, 16, 1, 9, 17}, 6, 0);
    assert_values(cg_einsum(ctx, "iji,j->", iota3(ctx, 3, 2, 3),
                            from(ctx, CG_SHAPE(2), (double[]){1, -1})),
                  (double[]){-9}, 1, 0);
    assert_values(cg_einsum(ctx, "", cg_scalar(ctx, CG_F64, 3), NULL), (double[]){3}, 1, 0);
    assert_values(cg_einsum(ctx, "ij->...ij", a, NULL), (double[]){0, 1, 2, 3, 4, 5}, 6, 0);
    /* three operands; i64 permutes and sums */
    const cg_tensor *three[3] = {a, b, iota(ctx, 4, 2)};
    assert_values(cg_einsum_n(ctx, "ij,jk,kl->il", 3, three), (double[]){144, 182, 288, 344}, 4,
                  0);
    cg_tensor *xi = ids(ctx, CG_SHAPE(2, 2), (int64_t[]){1, 2, 3, 4});
    assert_i64(cg_einsum(ctx, "ij->j", xi, NULL), (int64_t[]){4, 6}, 2);
    assert_i64(cg_einsum(ctx, "ij->ji", xi, NULL), (int64_t[]){1, 3, 2, 4}, 4);
}

/* ---- gradients --------------------------------------------------------------------------- */
typedef struct scase {
    int dim, ndims, nops;
    int dims[4];
    int64_t k, shifts[4], repeats[4];
    const cg_tensor *mask, *index;
    const char *eq;
    bool flag;   /* upper, largest, descending, chunk (rather than split) */
    bool flat;   /* roll without dims */
    bool square; /* the result squared: a non-linear function for gradgradcheck */
    bool expand; /* input 0 [1, m] broadcast to [3, m] first */
} scase;

static cg_tensor *finish(cg_ctx *ctx, cg_tensor *y, const scase *c) {
    return c->square ? cg_square(ctx, y) : y;
}
static const cg_tensor *arg0(cg_ctx *ctx, cg_tensor *const *in, const scase *c) {
    return c->expand ? cg_expand(ctx, in[0], CG_SHAPE(3, cg_dim(in[0], 1))) : in[0];
}

static cg_tensor *f_masked_fill(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    return finish(ctx, cg_masked_fill(ctx, arg0(ctx, in, c), c->mask, -3), c);
}
static cg_tensor *f_where_scalar(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    return finish(ctx, cg_where_scalar(ctx, c->mask, arg0(ctx, in, c), 2.5), c);
}
static cg_tensor *f_tri(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    const cg_tensor *x = arg0(ctx, in, c);
    return finish(ctx, c->flag ? cg_triu(ctx, x, c->k) : cg_tril(ctx, x, c->k), c);
}
static cg_tensor *f_cumsum(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    return finish(ctx, cg_cumsum(ctx, arg0(ctx, in, c), c->dim), c);
}
static cg_tensor *f_cumprod(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    return finish(ctx, cg_cumprod(ctx, arg0(ctx, in, c), c->dim), c);
}
static cg_tensor *f_flip(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    return finish(ctx, cg_flip(ctx, arg0(ctx, in, c), c->dims, c->ndims), c);
}
static cg_tensor *f_roll(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    return finish(
        ctx, cg_roll(ctx, arg0(ctx, in, c), c->shifts, c->flat ? NULL : c->dims, c->ndims), c);
}
static cg_tensor *f_repeat(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    return finish(ctx, cg_repeat(ctx, arg0(ctx, in, c), c->ndims, c->repeats), c);
}
/* The pieces joined again in reverse order, the first one scaled by 2. */
static cg_tensor *f_split(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    cg_tensor *p[8];
    const cg_tensor *r[8];
    int n = c->flag ? cg_chunk(ctx, arg0(ctx, in, c), (int)c->k, c->dim, p, 8)
                    : cg_split(ctx, arg0(ctx, in, c), c->k, c->dim, p, 8);
    if (n < 1) return NULL;
    p[0] = cg_mul_scalar(ctx, p[0], 2);
    for (int i = 0; i < n; i++) r[i] = p[n - 1 - i];
    return finish(ctx, cg_concat(ctx, n, r, c->dim), c);
}
static cg_tensor *f_scatter_add(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    return finish(ctx, cg_scatter_add(ctx, arg0(ctx, in, c), c->dim, c->index, in[1]), c);
}
static cg_tensor *f_index_add(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    return finish(ctx, cg_index_add(ctx, arg0(ctx, in, c), c->dim, c->index, in[1]), c);
}
static cg_tensor *f_sort(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    cg_tensor *v = NULL;
    cg_sort(ctx, arg0(ctx, in, c), c->dim, c->flag, &v, NULL);
    return finish(ctx, v, c);
}
static cg_tensor *f_topk(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    cg_tensor *v = NULL;
    cg_topk(ctx, arg0(ctx, in, c), c->k, c->dim, c->flag, &v, NULL);
    return finish(ctx, v, c);
}
/* expand: a [1] broadcast to [3]; b read every other element. */
static cg_tensor *f_outer(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    if (!c->expand) return finish(ctx, cg_outer(ctx, in[0], in[1]), c);
    const cg_tensor *a = cg_expand(ctx, in[0], CG_SHAPE(3)),
                    *b = cg_slice(ctx, in[1], 0, 0, 4, 2);
    return finish(ctx, cg_outer(ctx, a, b), c);
}
static cg_tensor *f_bmm(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    return finish(ctx, cg_bmm(ctx, in[0], in[1]), u);
}
static cg_tensor *f_einsum(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const scase *c = u;
    const cg_tensor *ops[4] = {arg0(ctx, in, c)};
    for (int i = 1; i < c->nops; i++) ops[i] = in[i];
    return finish(ctx, cg_einsum_n(ctx, c->eq, c->nops, ops), c);
}

/* gradcheck and gradgradcheck of fn as given and of its square. */
static void check_all(cg_fn fn, scase c, int n, cg_tensor *const *inputs) {
    c.square = false;
    cg_assert_gradcheck(fn, &c, n, inputs);
    cg_assert_gradgradcheck(fn, &c, n, inputs);
    c.square = true;
    cg_assert_gradcheck(fn, &c, n, inputs);
    cg_assert_gradgradcheck(fn, &c, n, inputs);
}

static void test_seq_mask_gradcheck(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(21);
    cg_tensor *base, *x = transposed_leaf(&rng, 4, 3, &base); /* [3,4] */
    cg_tensor *m34 = cg_gt_scalar(ctx, cg_randn(ctx, &rng, CG_F64, CG_SHAPE(3, 4), 0, 1), 0);
    cg_tensor *m14 = ids(ctx, CG_SHAPE(1, 4), (int64_t[]){1, 0, 0, 1});
    cg_tensor *m23 =
        ids(ctx, CG_SHAPE(2, 3, 1), (int64_t[]){1, 0, 1, 0, 0, 1}); /* enlarges x */
    check_all(f_masked_fill, (scase){.mask = m34}, 1, &x);
    check_all(f_masked_fill, (scase){.mask = m14}, 1, &x);
    check_all(f_masked_fill, (scase){.mask = m23}, 1, &x);
    check_all(f_where_scalar, (scase){.mask = m34}, 1, &x);
    check_all(f_where_scalar, (scase){.mask = m23}, 1, &x);
    cg_tensor *row = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 4), 1); /* broadcast to [3,4] */
    check_all(f_masked_fill, (scase){.mask = m34, .expand = true}, 1, &row);
    check_all(f_where_scalar, (scase){.mask = m14, .expand = true}, 1, &row);
    /* a mask that requires a gradient gets zeros */
    cg_tensor *fm = cg_cast(NULL, m34, CG_F64), *dm;
    cg_set_requires_grad(fm, true);
    cg_tensor *y = cg_sum(ctx, cg_masked_fill(ctx, x, fm, 1), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &y, NULL, 1, &fm, &dm, 0), CG_OK);
    assert_values(dm, (double[]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 12, 0);
    free_all(4, (cg_tensor *[]){x, base, row, fm});
}

static void test_seq_structure_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(22);
    cg_tensor *base, *x = transposed_leaf(&rng, 4, 3, &base);       /* [3,4] */
    cg_tensor *x3 = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 3, 4), 1); /* batched */
    cg_tensor *row = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 4), 1);   /* broadcast */
    for (int k = -2; k <= 2; k += 2) {
        check_all(f_tri, (scase){.k = k}, 1, &x);
        check_all(f_tri, (scase){.k = k, .flag = true}, 1, &x3);
    }
    check_all(f_tri, (scase){.k = 0, .expand = true}, 1, &row);
    check_all(f_cumsum, (scase){.dim = 1}, 1, &x);
    check_all(f_cumsum, (scase){.dim = 0, .expand = true}, 1, &row);
    check_all(f_cumsum, (scase){.dim = -2}, 1, &x3);
    check_all(f_flip, (scase){.dims = {0, -1}, .ndims = 2}, 1, &x);
    check_all(f_flip, (scase){.dims = {0}, .ndims = 1, .expand = true}, 1, &row);
    check_all(f_roll, (scase){.dims = {1, 0}, .shifts = {-1, 5}, .ndims = 2}, 1, &x);
    check_all(f_roll, (scase){.shifts = {3}, .ndims = 1, .flat = true}, 1,
              &x); /* non-contiguous */
    check_all(f_roll, (scase){.dims = {0}, .shifts = {1}, .ndims = 1, .expand = true}, 1, &row);
    check_all(f_repeat, (scase){.repeats = {2, 1, 3}, .ndims = 3}, 1, &x);
    check_all(f_repeat, (scase){.repeats = {1, 2}, .ndims = 2, .expand = true}, 1, &row);
    check_all(f_split, (scase){.k = 3, .dim = 1}, 1, &x);
    check_all(f_split, (scase){.k = 3, .dim = -1, .flag = true}, 1, &x3);
    check_all(f_split, (scase){.k = 2, .dim = 0, .expand = true}, 1, &row);
    free_all(4, (cg_tensor *[]){x, base, x3, row});
}

/* cumprod with zeros in x: first order on the O(n) kernel, second order
 * through the differentiable form (whose own backward is the kernel). */
static void test_seq_cumprod_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(23);
    cg_tensor *base, *x = transposed_leaf(&rng, 4, 3, &base); /* [3,4] */
    check_all(f_cumprod, (scase){.dim = 1}, 1, &x);
    check_all(f_cumprod, (scase){.dim = 0}, 1, &x);
    cg_tensor *z1 = leaf(CG_F64, CG_SHAPE(2, 4), (double[]){0.5, 0, 1.5, -2, 1.2, 0.7, 0, 0});
    cg_tensor *z0 = leaf(CG_F64, CG_SHAPE(5), (double[]){0, 2, -1, 0.5, 3});
    check_all(f_cumprod, (scase){.dim = 1}, 1, &z1);
    check_all(f_cumprod, (scase){.dim = 0}, 1, &z1);
    check_all(f_cumprod, (scase){.dim = 0}, 1, &z0);
    cg_tensor *row = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 4), 1);
    check_all(f_cumprod, (scase){.dim = 0, .expand = true}, 1, &row);
    check_all(f_cumprod, (scase){.dim = 1, .expand = true}, 1, &row);
    free_all(5, (cg_tensor *[]){x, base, z1, z0, row});
}

static void test_seq_scatter_gradcheck(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(24);
    cg_tensor *base, *x = transposed_leaf(&rng, 4, 3, &base);     /* [3,4] */
    cg_tensor *src = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 5), 1); /* larger than index */
    cg_tensor *i0 = ids(ctx, CG_SHAPE(2, 4), (int64_t[]){2, 0, 2, 2, 1, 0, 2, 0});
    check_all(f_scatter_add, (scase){.dim = 0, .index = i0}, 2, (cg_tensor *[]){x, src});
    cg_tensor *i1 = ids(ctx, CG_SHAPE(2, 3), (int64_t[]){3, 3, 0, 1, 1, 1});
    check_all(f_scatter_add, (scase){.dim = 1, .index = i1}, 2, (cg_tensor *[]){x, src});
    cg_tensor *row = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 4), 1);
    check_all(f_scatter_add, (scase){.dim = 1, .index = i1, .expand = true}, 2,
              (cg_tensor *[]){row, src});
    /* index_add: src [3, 2] along dim 1 of x [3,4] (transposed src), repeats */
    cg_tensor *sbase, *st = transposed_leaf(&rng, 2, 3, &sbase);
    cg_tensor *ia = ids(ctx, CG_SHAPE(2), (int64_t[]){3, 3});
    check_all(f_index_add, (scase){.dim = 1, .index = ia}, 2, (cg_tensor *[]){x, st});
    cg_tensor *s43 = randn_leaf(&rng, CG_F64, CG_SHAPE(4, 4), 1);
    cg_tensor *ib = ids(ctx, CG_SHAPE(4), (int64_t[]){0, 2, 0, 1});
    check_all(f_index_add, (scase){.dim = 0, .index = ib, .expand = true}, 2,
              (cg_tensor *[]){row, s43});
    free_all(7, (cg_tensor *[]){x, base, src, row, st, sbase, s43});
}

static void test_seq_sort_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(25);
    cg_tensor *base, *x = transposed_leaf(&rng, 5, 3, &base); /* [3,5] */
    cg_tensor *x3 = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 3, 4), 1);
    check_all(f_sort, (scase){.dim = 1}, 1, &x);
    check_all(f_sort, (scase){.dim = 0, .flag = true}, 1, &x);
    check_all(f_sort, (scase){.dim = 1, .flag = true}, 1, &x3);
    check_all(f_topk, (scase){.dim = 1, .k = 2, .flag = true}, 1, &x);
    check_all(f_topk, (scase){.dim = -1, .k = 3, .flag = false}, 1, &x3);
    cg_tensor *row = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 4), 1); /* [3,4] of equal rows */
    check_all(f_topk, (scase){.dim = 1, .k = 2, .flag = true, .expand = true}, 1, &row);
    free_all(4, (cg_tensor *[]){x, base, x3, row});
}

static void test_seq_products_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(26);
    cg_tensor *a = randn_leaf(&rng, CG_F64, CG_SHAPE(3), 1);
    cg_tensor *b = randn_leaf(&rng, CG_F64, CG_SHAPE(4), 1);
    check_all(f_outer, (scase){0}, 2, (cg_tensor *[]){a, b});
    cg_tensor *one = randn_leaf(&rng, CG_F64, CG_SHAPE(1), 1);
    check_all(f_outer, (scase){.expand = true}, 2, (cg_tensor *[]){one, b});
    cg_tensor *p = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 3, 4), 1);
    cg_tensor *qb = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(2, 2, 4), 0, 1);
    cg_tensor *q = cg_transpose(NULL, qb, 1, 2); /* [2,4,2] non-contiguous */
    cg_set_requires_grad(q, true);
    check_all(f_bmm, (scase){0}, 2, (cg_tensor *[]){p, q});
    free_all(6, (cg_tensor *[]){a, b, p, q, qb, one});
}

/* bmm of an operand broadcast over the batch (stride 0): its gradient sums. */
static cg_tensor *f_bmm_expanded(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    cg_tensor *b = cg_expand(ctx, in[1], CG_SHAPE(2, 4, 2));
    return finish(ctx, cg_bmm(ctx, in[0], b), u);
}

static void test_seq_bmm_broadcast_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(27);
    cg_tensor *p = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 3, 4), 1);
    cg_tensor *one = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 4, 2), 1);
    check_all(f_bmm_expanded, (scase){0}, 2, (cg_tensor *[]){p, one});
    free_all(2, (cg_tensor *[]){p, one});
}

static void test_seq_einsum_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(28);
    cg_tensor *base, *t = transposed_leaf(&rng, 4, 3, &base); /* [3,4] */
    cg_tensor *u = randn_leaf(&rng, CG_F64, CG_SHAPE(4, 2), 1);
    cg_tensor *v = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 3, 4), 1);
    cg_tensor *w = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 4, 2), 1);
    cg_tensor *sq = randn_leaf(&rng, CG_F64, CG_SHAPE(3, 3), 1);
    cg_tensor *r = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 4), 1);
    check_all(f_einsum, (scase){.eq = "ij,jk->ik", .nops = 2}, 2, (cg_tensor *[]){t, u});
    check_all(f_einsum, (scase){.eq = "bij,bjk->bik", .nops = 2}, 2, (cg_tensor *[]){v, w});
    check_all(f_einsum, (scase){.eq = "bij,bjk->kib", .nops = 2}, 2, (cg_tensor *[]){v, w});
    check_all(f_einsum, (scase){.eq = "ii->i", .nops = 1}, 1, &sq);
    check_all(f_einsum, (scase){.eq = "ii", .nops = 1}, 1, &sq);
    check_all(f_einsum, (scase){.eq = "ij->j", .nops = 1}, 1, &t);
    check_all(f_einsum, (scase){.eq = "...j,...jk", .nops = 2}, 2, (cg_tensor *[]){t, u});
    check_all(f_einsum, (scase){.eq = "ij,ij->i", .nops = 2}, 2, (cg_tensor *[]){r, t});
    check_all(f_einsum, (scase){.eq = "ij,ij->i", .nops = 2, .expand = true}, 2,
              (cg_tensor *[]){r, t});
    cg_tensor *z = randn_leaf(&rng, CG_F64, CG_SHAPE(3, 2), 1);
    check_all(f_einsum, (scase){.eq = "ij,jk,ik->", .nops = 3}, 3, (cg_tensor *[]){t, u, z});
    free_all(8, (cg_tensor *[]){base, t, u, v, w, sq, r, z});
}

/* ---- threads, versions, ownership -------------------------------------------------------- */
/* Results of the parallel kernels (over lines or rows) on 1 and 4 threads. */
static void run_big(cg_ctx *ctx, int threads, const cg_tensor *x, double *out, int64_t *idx) {
    cg_set_num_threads(threads);
    int64_t n = cg_numel(x);
    cg_tensor *v, *i, *dx, *in = (cg_tensor *)x;
    assert_int_equal(cg_sort(ctx, x, 1, true, &v, &i), CG_OK);
    cg_tensor *y = cg_add(ctx, cg_cumsum(ctx, x, 0), cg_tril(ctx, cg_cumprod(ctx, x, 1), 3));
    y = cg_add(ctx, cg_mul(ctx, y, v),
               cg_narrow(ctx, cg_repeat(ctx, x, 2, (int64_t[]){2, 1}), 0, 3, 64));
    assert_int_equal(
        cg_grad(ctx, 1, (cg_tensor *[]){cg_sum(ctx, y, NULL, 0, false)}, NULL, 1, &in, &dx, 0),
        CG_OK);
    cg_copy_to_array(y, CG_F64, out);
    cg_copy_to_array(dx, CG_F64, out + n);
    cg_copy_to_array(i, CG_I64, idx);
}

static void test_seq_independent_of_threads(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(29);
    int saved = cg_get_num_threads();
    enum { R = 64, C = 700 };
    cg_tensor *x = cg_rand(ctx, &rng, CG_F64, CG_SHAPE(R, C), 0.9, 1.1);
    cg_set_requires_grad(x, true);
    static double one[2 * R * C], four[2 * R * C];
    static int64_t i1[R * C], i4[R * C];
    run_big(ctx, 1, x, one, i1);
    run_big(ctx, 4, x, four, i4);
    cg_set_num_threads(saved);
    assert_memory_equal(one, four, sizeof one);
    assert_memory_equal(i1, i4, sizeof i1);
    const double *xv = cg_data(x); /* row 5 sorted descending by its indices */
    for (int j = 1; j < C; j++)
        assert_true(xv[5 * C + i1[5 * C + j - 1]] >= xv[5 * C + i1[5 * C + j]]);
}

/* Changing indices after recording makes backward fail instead of misrouting. */
static void test_seq_modified_index_fails_backward(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(3)), *i;
    cg_set_requires_grad(x, true);
    cg_tensor *idx = ids(ctx, CG_SHAPE(2), (int64_t[]){0, 2});
    cg_tensor *s = cg_sum(
        ctx, cg_scatter_add(ctx, cg_zeros_like(ctx, x), 0, idx, cg_narrow(ctx, x, 0, 0, 2)),
        NULL, 0, false);
    cg_fill_(idx, 1);
    assert_int_equal(cg_backward(s), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "cg_scatter_add");
    cg_tensor *v;
    assert_int_equal(cg_topk(ctx, x, 2, 0, true, &v, &i), CG_OK);
    s = cg_sum(ctx, v, NULL, 0, false);
    cg_fill_(i, 0);
    assert_int_equal(cg_backward(s), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "cg_topk");
}

/* ctx NULL, nothing requires a gradient: every result is the caller's and
 * is all there is to free (LeakSanitizer checks). */
static void test_seq_ctx_null_no_leaks(void **state) {
    (void)state;
    cg_tensor *x = cg_arange(NULL, CG_F64, 0, 6, 1);
    cg_tensor *m = cg_reshape(NULL, x, CG_SHAPE(2, 3));
    cg_tensor *mt = cg_transpose(NULL, m, 0, 1);
    cg_tensor *m3 = cg_reshape(NULL, x, CG_SHAPE(1, 2, 3));
    cg_tensor *mt3 = cg_reshape(NULL, mt, CG_SHAPE(1, 3, 2)); /* a copy */
    cg_tensor *i = ids(NULL, CG_SHAPE(2), (int64_t[]){1, 0});
    cg_tensor *i11 = ids(NULL, CG_SHAPE(1, 1), (int64_t[]){2});
    cg_tensor *xi = cg_cast(NULL, m, CG_I64);
    cg_tensor *mask = cg_gt_scalar(NULL, m, 2);
    cg_tensor *r4 = cg_arange(NULL, CG_F64, 0, 4, 1), *sq = cg_view(NULL, r4, CG_SHAPE(2, 2));
    cg_tensor *made[] = {
        x,
        m,
        mt,
        m3,
        mt3,
        i,
        i11,
        xi,
        mask,
        r4,
        sq,
        cg_masked_fill(NULL, m, mask, 0),
        cg_where_scalar(NULL, mask, m, 1),
        cg_gt_scalar(NULL, xi, 2.5), /* through a temporary f32 copy */
        cg_where_scalar(NULL, mask, xi, 0.5),
        cg_tril(NULL, mt, 0),
        cg_cumsum(NULL, mt, 0),
        cg_cumprod(NULL, m, 1),
        cg_flip(NULL, mt, (int[]){0}, 1),
        cg_roll(NULL, mt, (int64_t[]){1}, NULL, 1), /* through a contiguous copy */
        cg_roll(NULL, mt, (int64_t[]){1}, (int[]){1}, 1),
        cg_repeat(NULL, mt, 3, (int64_t[]){2, 1, 1}),
        cg_scatter_add(NULL, m, 1, i11, m),
        cg_index_add(NULL, mt, 1, i, mt),
        cg_outer(NULL, x, x), /* composite: a temporary context */
        cg_bmm(NULL, m3, mt3),
        cg_einsum(NULL, "ij,kj->ik", m, m),
        cg_einsum(NULL, "ii", sq, NULL),
        cg_einsum(NULL, "ij->ji", m, NULL),
    };
    enum { N = sizeof made / sizeof made[0] };
    for (int k = 0; k < N; k++)
        if (!made[k]) fail_msg("result %d: %s", k, cg_last_error());
    cg_tensor *v, *ix, *pieces[3];
    assert_int_equal(cg_sort(NULL, mt, 0, false, &v, &ix), CG_OK);
    cg_tensor_free(v);
    cg_tensor_free(ix);
    assert_int_equal(cg_topk(NULL, m, 1, 1, true, NULL, &ix), CG_OK); /* values dropped */
    cg_tensor_free(ix);
    assert_int_equal(cg_topk(NULL, m, 1, 1, true, &v, NULL), CG_OK); /* indices dropped */
    cg_tensor_free(v);
    assert_int_equal(cg_split(NULL, mt, 2, 0, pieces, 3), 2);
    cg_tensor_free(mt); /* the views keep the storage */
    made[2] = NULL;
    assert_values(pieces[1], (double[]){2, 5}, 2, 0);
    free_all(2, pieces);
    /* errors with ctx NULL leave nothing behind either */
    assert_null(cg_einsum(NULL, "ij,jk", m, x));
    assert_null(cg_scatter_add(NULL, m, 0, i, m));
    assert_int_equal(cg_sort(NULL, m, 2, false, &v, &ix), CG_ERR_INDEX);
    assert_null(v);
    assert_null(ix);
    cg_clear_error();
    free_all(N, made);
}

/* ctx NULL with an input that requires a gradient: refused, nothing leaks. */
static void test_seq_ctx_null_needs_context(void **state) {
    (void)state;
    cg_tensor *w = cg_ones(NULL, CG_F64, CG_SHAPE(2, 2)), *v = NULL, *ix = NULL, *out[2];
    cg_set_requires_grad(w, true);
    assert_null(cg_einsum(NULL, "ij,jk", w, w));
    assert_error(CG_ERR_STATE, "cg_einsum: an input requires a gradient");
    cg_tensor *r = cg_ones(NULL, CG_F64, CG_SHAPE(2));
    cg_set_requires_grad(r, true);
    assert_null(cg_outer(NULL, r, r));
    assert_error(CG_ERR_STATE, "cg_outer: an input requires a gradient");
    cg_tensor_free(r);
    assert_null(cg_masked_fill(NULL, w, w, 0));
    assert_error(CG_ERR_STATE, "cg_masked_fill");
    assert_null(cg_cumprod(NULL, w, 0));
    assert_error(CG_ERR_STATE, "cg_cumprod");
    assert_null(cg_repeat(NULL, w, 2, (int64_t[]){1, 1}));
    assert_error(CG_ERR_STATE, "cg_repeat");
    assert_int_equal(cg_sort(NULL, w, 0, false, &v, &ix), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "cg_sort");
    assert_null(v);
    assert_int_equal(cg_split(NULL, w, 1, 0, out, 2), -1);
    assert_error(CG_ERR_STATE, "cg_split: an input requires a gradient");
    cg_tensor_free(w);
}

/* ---- errors
 * ---------------------------------------------------------------------------------- */
static void test_seq_mask_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3));
    cg_tensor *xi = cg_zeros(ctx, CG_I64, CG_SHAPE(2, 3));
    cg_tensor *xf = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3));
    cg_tensor *m = cg_ones(ctx, CG_F64, CG_SHAPE(2, 3));
    assert_null(cg_masked_fill(ctx, x, cg_ones(ctx, CG_F64, CG_SHAPE(2, 4)), 0));
    assert_error(CG_ERR_SHAPE,
                 "cg_masked_fill: [2,3] and [2,4]: dim 1: 3 vs 4 cannot broadcast");
    assert_null(cg_masked_fill(ctx, xi, m, NAN));
    assert_error(CG_ERR_ARG,
                 "cg_masked_fill: value nan cannot be converted to i64 without overflow");
    assert_null(cg_masked_fill(ctx, xi, m, 9.3e18));
    assert_error(CG_ERR_ARG, "cannot be converted to i64");
    assert_null(cg_masked_fill(ctx, xf, m, 1e300));
    assert_error(CG_ERR_ARG, "cg_masked_fill: value 1e+300 cannot be converted to f32");
    assert_non_null(cg_masked_fill(ctx, xf, m, INFINITY)); /* as torch */
    assert_null(cg_where_scalar(ctx, m, xi, 1e300));       /* computed in f32 */
    assert_error(CG_ERR_ARG, "cg_where_scalar: value 1e+300 cannot be converted to f32");
    assert_null(cg_where_scalar(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(3, 2)), x, 1));
    assert_error(CG_ERR_SHAPE, "cg_where_scalar: [2,3] and [3,2]");
    assert_null(cg_tril(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(3)), 0));
    assert_error(CG_ERR_SHAPE, "cg_tril: input [3] must have at least 2 dims");
    assert_null(cg_triu(ctx, cg_scalar(ctx, CG_F64, 1), 0));
    assert_error(CG_ERR_SHAPE, "cg_triu: input [] must have at least 2 dims");
    /* NULL in, NULL out: the first error is kept */
    assert_null(cg_gt_scalar(ctx, NULL, 0));
    assert_error(CG_ERR_ARG, "cg_gt_scalar: tensor is NULL");
    assert_null(cg_masked_fill(ctx, x, NULL, 0));
    assert_error(CG_ERR_ARG, "cg_masked_fill: tensor is NULL");
    assert_null(cg_where_scalar(ctx, NULL, x, 0));
    assert_error(CG_ERR_ARG, "cg_where_scalar: tensor is NULL");
    assert_null(cg_where_scalar(ctx, m, NULL, 0));
    assert_error(CG_ERR_ARG, "cg_where_scalar: tensor is NULL");
    assert_null(cg_masked_fill(ctx, cg_tril(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(3)), 0), m, 0));
    assert_error(CG_ERR_SHAPE, "cg_tril");
    assert_null(cg_ne_scalar(ctx, cg_triu(ctx, NULL, 0), 1));
    assert_error(CG_ERR_ARG, "cg_triu: tensor is NULL");
}

static void test_seq_line_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3));
    assert_null(cg_cumsum(ctx, x, 2));
    assert_error(CG_ERR_INDEX, "cg_cumsum: axis 2 out of range for rank 2");
    assert_null(cg_cumprod(ctx, cg_scalar(ctx, CG_F64, 1), 1));
    assert_error(CG_ERR_INDEX, "cg_cumprod: axis 1 out of range for rank 1");
    assert_null(cg_cumprod(ctx, x, -3));
    assert_error(CG_ERR_INDEX, "cg_cumprod: axis -3 out of range for rank 2");
    /* flip */
    assert_null(cg_flip(ctx, x, (int[]){2}, 1));
    assert_error(CG_ERR_INDEX, "cg_flip: [2,3]: axis 2 out of range for rank 2");
    assert_null(cg_flip(ctx, x, (int[]){0, -2}, 2));
    assert_error(CG_ERR_ARG, "cg_flip: dim 0 appears multiple times in the list of dims");
    assert_null(cg_flip(ctx, x, NULL, 1));
    assert_error(CG_ERR_ARG, "cg_flip: 1 dims given");
    assert_null(cg_flip(ctx, x, (int[]){0}, -1));
    assert_error(CG_ERR_ARG, "cg_flip: -1 dims given");
    /* roll */
    int64_t sh[2] = {1, 1};
    assert_null(cg_roll(ctx, x, sh, (int[]){0}, 0));
    assert_error(CG_ERR_ARG, "cg_roll: 0 shifts: need one per dim, or one shift and no dims");
    assert_null(cg_roll(ctx, x, sh, NULL, 2));
    assert_error(CG_ERR_ARG, "cg_roll: 2 shifts");
    assert_null(cg_roll(ctx, x, NULL, (int[]){0}, 1));
    assert_error(CG_ERR_ARG, "cg_roll: 1 shifts (NULL)");
    assert_null(cg_roll(ctx, x, sh, (int[]){0, -3}, 2));
    assert_error(CG_ERR_INDEX, "cg_roll: [2,3]: axis -3 out of range for rank 2");
    /* repeat */
    assert_null(cg_repeat(ctx, x, 1, (int64_t[]){2}));
    assert_error(CG_ERR_ARG, "cg_repeat: 1 repeats for input [2,3]: need 2 to 8");
    assert_null(cg_repeat(ctx, x, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}));
    assert_error(CG_ERR_ARG, "cg_repeat: 9 repeats");
    assert_null(cg_repeat(ctx, x, 2, NULL));
    assert_error(CG_ERR_ARG, "cg_repeat: 2 repeats");
    assert_null(cg_repeat(ctx, x, 2, (int64_t[]){1, -1}));
    assert_error(CG_ERR_SHAPE, "cg_repeat: input [2,3], repeats[1] = -1: negative");
    assert_null(cg_repeat(ctx, x, 2, (int64_t[]){INT64_MAX, 1}));
    assert_error(CG_ERR_SHAPE, "repeats[0] = 9223372036854775807: too many elements");
    assert_null(cg_repeat(ctx, x, 2, (int64_t[]){1LL << 30, 1LL << 30})); /* the product */
    assert_error(CG_ERR_SHAPE, "cg_repeat: [2147483648,3221225472]: too many elements");
    assert_non_null(
        cg_repeat(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0)), 1, (int64_t[]){INT64_MAX}));
    /* NULL in */
    assert_null(cg_roll(ctx, cg_cumsum(ctx, x, 5), sh, NULL, 1));
    assert_error(CG_ERR_INDEX, "cg_cumsum");
    assert_null(cg_repeat(ctx, cg_flip(ctx, NULL, NULL, 0), 0, NULL));
    assert_error(CG_ERR_ARG, "cg_flip: tensor is NULL");
    assert_null(cg_cumprod(ctx, NULL, 0));
    assert_error(CG_ERR_ARG, "cg_cumprod: tensor is NULL");
    assert_null(cg_cumsum(ctx, NULL, 0));
    assert_error(CG_ERR_ARG, "cg_cumsum: tensor is NULL");
}

static void test_seq_split_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F64, CG_SHAPE(2, 5)), *out[3] = {NULL, NULL, NULL};
    assert_int_equal(cg_split(ctx, x, 0, 1, out, 3), -1);
    assert_error(CG_ERR_ARG,
                 "cg_split: split_size 0 for dim 1 of size 5 (0 only for an empty dim)");
    assert_int_equal(cg_split(ctx, x, -2, 1, out, 3), -1);
    assert_error(CG_ERR_ARG, "cg_split: split_size -2");
    assert_int_equal(cg_split(ctx, x, 2, 1, out, 2), -1);
    assert_error(CG_ERR_ARG, "cg_split: 3 pieces, out has room for 2");
    assert_int_equal(cg_split(ctx, x, 2, 1, NULL, 3), -1);
    assert_error(CG_ERR_ARG, "cg_split: 3 pieces, out is NULL");
    assert_int_equal(cg_split(ctx, x, 2, 2, out, 3), -1);
    assert_error(CG_ERR_INDEX, "cg_split: [2,5]: axis 2 out of range for rank 2");
    assert_null(out[0]); /* untouched */
    assert_int_equal(cg_split(NULL, x, 2, 1, out, 3), -1);
    assert_error(CG_ERR_STATE, "cg_split: views of a context tensor must be made in a context");
    assert_int_equal(cg_split_sizes(ctx, x, (int64_t[]){2, 2}, 2, 1, out), -1);
    assert_error(CG_ERR_SHAPE,
                 "cg_split_sizes: 2 sizes must be >= 0 and sum to 5, the size of dim 1");
    assert_int_equal(cg_split_sizes(ctx, x, (int64_t[]){6, -1}, 2, 1, out), -1);
    assert_error(CG_ERR_SHAPE, "cg_split_sizes: 2 sizes");
    assert_int_equal(cg_split_sizes(ctx, x, NULL, 2, 1, out), -1);
    assert_error(CG_ERR_ARG, "cg_split_sizes: 2 sizes given");
    assert_int_equal(cg_split_sizes(ctx, x, (int64_t[]){5}, 1, 1, NULL), -1);
    assert_error(CG_ERR_ARG, "cg_split_sizes: 1 pieces, out is NULL");
    assert_int_equal(cg_chunk(ctx, x, 0, 1, out, 3), -1);
    assert_error(CG_ERR_ARG, "cg_chunk: chunks must be greater than 0, got 0");
    assert_int_equal(cg_chunk(ctx, x, 5, 1, out, 3), -1);
    assert_error(CG_ERR_ARG, "cg_chunk: 5 pieces, out has room for 3");
    assert_int_equal(cg_chunk(ctx, x, 2, -3, out, 3), -1);
    assert_error(CG_ERR_INDEX, "cg_chunk: [2,5]: axis -3 out of range");
    assert_int_equal(cg_chunk(ctx, NULL, 2, 0, out, 3), -1);
    assert_error(CG_ERR_ARG, "cg_chunk: tensor is NULL");
    assert_int_equal(cg_split_sizes(ctx, NULL, (int64_t[]){1}, 1, 0, out), -1);
    assert_error(CG_ERR_ARG, "cg_split_sizes: tensor is NULL");
    assert_int_equal(cg_split_sizes(ctx, x, (int64_t[]){1}, -1, 0, out), -1);
    assert_error(CG_ERR_ARG, "cg_split_sizes: -1 sizes given");
    assert_null(cg_cumsum(ctx, x, 7));
    assert_int_equal(cg_split(ctx, NULL, 2, 0, out, 3), -1); /* keeps the first error */
    assert_error(CG_ERR_INDEX, "cg_cumsum");
}

static void test_seq_scatter_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F64, CG_SHAPE(3, 4)),
              *src = cg_ones(ctx, CG_F64, CG_SHAPE(2, 5));
    cg_tensor *i24 = ids(ctx, CG_SHAPE(2, 4), (int64_t[]){0, 1, 2, 0, 1, 3, 0, 0});
    assert_null(cg_scatter_add(ctx, x, 0, cg_zeros(ctx, CG_F32, CG_SHAPE(2, 4)), src));
    assert_error(CG_ERR_DTYPE, "cg_scatter_add: index must be i64, got f32");
    assert_null(cg_scatter_add(ctx, x, 0, i24, cg_ones(ctx, CG_F32, CG_SHAPE(2, 5))));
    assert_error(CG_ERR_DTYPE, "cg_scatter_add: src is f32, x is f64 (need one dtype)");
    assert_null(cg_scatter_add(ctx, x, 0, ids(ctx, CG_SHAPE(2), (int64_t[]){0, 0}), src));
    assert_error(CG_ERR_SHAPE, "cg_scatter_add: x [3,4], index [2], src [2,5]: need one rank");
    assert_null(cg_scatter_add(ctx, x, 0, i24, cg_ones(ctx, CG_F64, CG_SHAPE(2, 3))));
    assert_error(CG_ERR_SHAPE, "index [2,4], src [2,3]");
    assert_null(cg_scatter_add(ctx, x, 0, cg_zeros(ctx, CG_I64, CG_SHAPE(2, 5)), src));
    assert_error(CG_ERR_SHAPE, "than x off dim 0");
    assert_null(cg_scatter_add(ctx, x, 0, i24, src));
    assert_error(CG_ERR_INDEX,
                 "cg_scatter_add: index 3 (element 5) out of range for dim 0 of size 3");
    assert_null(cg_scatter_add(ctx, x, 1, ids(ctx, CG_SHAPE(1, 1), (int64_t[]){-1}), src));
    assert_error(CG_ERR_INDEX,
                 "cg_scatter_add: index -1 (element 0) out of range for dim 1 of size 4");
    assert_null(cg_scatter_add(ctx, x, 2, i24, src));
    assert_error(CG_ERR_INDEX, "cg_scatter_add: [3,4]: axis 2 out of range for rank 2");
    /* index_add */
    cg_tensor *i2 = ids(ctx, CG_SHAPE(2), (int64_t[]){0, 2});
    cg_tensor *s24 = cg_ones(ctx, CG_F64, CG_SHAPE(2, 4));
    assert_null(cg_index_add(ctx, x, 0, ids(ctx, CG_SHAPE(1, 2), (int64_t[]){0, 2}), s24));
    assert_error(CG_ERR_SHAPE,
                 "cg_index_add: x [3,4], index [1,2], src [2,4]: need a 0-d or 1-D index");
    assert_null(cg_index_add(ctx, x, 0, i2, cg_ones(ctx, CG_F64, CG_SHAPE(2, 3))));
    assert_error(CG_ERR_SHAPE, "src [2,3]: need a 0-d or 1-D index and src of x's shape");
    assert_null(cg_index_add(ctx, x, 1, i2, s24));
    assert_error(CG_ERR_SHAPE, "with the index's length along dim 1");
    assert_null(cg_index_add(ctx, x, 0, ids(ctx, CG_SHAPE(2), (int64_t[]){3, 0}), s24));
    assert_error(CG_ERR_INDEX,
                 "cg_index_add: index 3 (element 0) out of range for dim 0 of size 3");
    assert_null(cg_index_add(ctx, x, 0, i2, cg_ones(ctx, CG_I64, CG_SHAPE(2, 4))));
    assert_error(CG_ERR_DTYPE, "cg_index_add: src is i64, x is f64");
    assert_null(cg_index_add(ctx, x, 0, cg_cast(ctx, i2, CG_F64), s24));
    assert_error(CG_ERR_DTYPE, "cg_index_add: index must be i64, got f64");
    assert_null(cg_index_add(ctx, x, -3, i2, s24));
    assert_error(CG_ERR_INDEX, "cg_index_add: [3,4]: axis -3 out of range");
    assert_null(cg_index_add(ctx, x, 0, NULL, s24));
    assert_error(CG_ERR_ARG, "cg_index_add: tensor is NULL");
    assert_null(cg_scatter_add(ctx, x, 0, i24, cg_index_add(ctx, x, 9, i2, s24)));
    assert_error(CG_ERR_INDEX, "cg_index_add");
}

static void test_seq_sort_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F64, CG_SHAPE(2, 4)), *v = x, *i = x;
    assert_int_equal(cg_sort(ctx, x, 2, false, &v, &i), CG_ERR_INDEX);
    assert_error(CG_ERR_INDEX, "cg_sort: axis 2 out of range for rank 2");
    assert_null(v);
    assert_null(i);
    assert_int_equal(cg_topk(ctx, x, 5, 1, true, &v, &i), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_topk: k 5 out of range for dim 1 of [2,4]");
    assert_int_equal(cg_topk(ctx, x, -1, 0, true, &v, &i), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_topk: k -1 out of range for dim 0 of [2,4]");
    assert_int_equal(cg_topk(ctx, cg_scalar(ctx, CG_F64, 1), 0, 0, true, &v, &i), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_topk: k 0 out of range for dim 0 of []");
    assert_int_equal(cg_topk(ctx, x, 1, -3, true, &v, &i), CG_ERR_INDEX);
    assert_error(CG_ERR_INDEX, "cg_topk: axis -3 out of range for rank 2");
    assert_int_equal(cg_sort(ctx, NULL, 0, false, &v, &i), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_sort: tensor is NULL");
    assert_null(cg_cumsum(ctx, x, 9));
    assert_int_equal(cg_topk(ctx, NULL, 1, 0, true, &v, &i),
                     CG_ERR_INDEX); /* the first error */
    assert_error(CG_ERR_INDEX, "cg_cumsum");
}

static void test_seq_product_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *v3 = cg_ones(ctx, CG_F64, CG_SHAPE(3)),
              *m = cg_ones(ctx, CG_F64, CG_SHAPE(2, 3));
    assert_null(cg_outer(ctx, m, v3));
    assert_error(CG_ERR_SHAPE, "cg_outer: [2,3] and [3]: both must be 1-D");
    assert_null(cg_outer(ctx, v3, cg_scalar(ctx, CG_F64, 1)));
    assert_error(CG_ERR_SHAPE, "cg_outer: [3] and []");
    cg_tensor *a = cg_ones(ctx, CG_F64, CG_SHAPE(2, 2, 3)),
              *b = cg_ones(ctx, CG_F64, CG_SHAPE(2, 3, 4));
    assert_null(cg_bmm(ctx, m, b));
    assert_error(CG_ERR_SHAPE, "cg_bmm: [2,3] x [2,3,4]: both operands must be 3-D");
    assert_null(cg_bmm(ctx, a, cg_ones(ctx, CG_F64, CG_SHAPE(3, 3, 4))));
    assert_error(CG_ERR_SHAPE, "cg_bmm: [2,2,3] x [3,3,4]: batch sizes 2 and 3 differ");
    assert_null(cg_bmm(ctx, a, cg_ones(ctx, CG_F64, CG_SHAPE(2, 4, 4))));
    assert_error(CG_ERR_SHAPE, "cg_bmm: [2,2,3] x [2,4,4]: inner dims 3 != 4");
    assert_null(cg_bmm(ctx, a, cg_ones(ctx, CG_F32, CG_SHAPE(2, 3, 4))));
    assert_error(CG_ERR_DTYPE,
                 "cg_bmm: [2,2,3] x [2,3,4]: dtypes f64 and f32 (need one float dtype)");
    assert_null(cg_bmm(ctx, cg_cast(ctx, a, CG_I64), cg_cast(ctx, b, CG_I64)));
    assert_error(CG_ERR_DTYPE, "dtypes i64 and i64");
    assert_null(cg_bmm(ctx, a, cg_bmm(ctx, b, a)));
    assert_error(CG_ERR_SHAPE, "cg_bmm: [2,3,4] x [2,2,3]: inner dims 4 != 2");
    assert_null(cg_outer(ctx, NULL, v3));
    assert_error(CG_ERR_ARG, "cg_outer: tensor is NULL");
}

static void test_seq_einsum_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = cg_ones(ctx, CG_F64, CG_SHAPE(2, 3)),
              *b = cg_ones(ctx, CG_F64, CG_SHAPE(3, 4));
    struct {
        const char *eq;
        cg_status st;
        const char *msg;
    } bad[] = {
        {"ij,j1->i", CG_ERR_ARG,
         "cg_einsum: 'ij,j1->i': invalid subscript (subscripts are a-z, A-Z) at index 4"},
        {"i.j,jk", CG_ERR_ARG, "'.' that is not part of an ellipsis at index 1"},
        {"...i...,jk", CG_ERR_ARG, "a second ellipsis in one term at index 4"},
        {"ij-,jk", CG_ERR_ARG, "invalid subscript (subscripts are a-z, A-Z) at index 2"},
        {"ij,jk->i->k", CG_ERR_ARG, "invalid subscript (subscripts are a-z, A-Z) at index 8"},
        {"ij,jk->i,k", CG_ERR_ARG, "invalid subscript (subscripts are a-z, A-Z) at index 8"},
        {"ijk,jk", CG_ERR_SHAPE,
         "operand 0 has 3 subscripts for a tensor [2,3] of rank 2 and no ellipsis"},
        {"i...jk,jk", CG_ERR_SHAPE, "operand 0 has 3 subscripts for a tensor [2,3] of rank 2"},
        {"ij,jk->ikl", CG_ERR_ARG,
         "output subscript l does not appear in the equation for any input operand"},
        {"ij,jk->ii", CG_ERR_ARG, "output subscript i appears more than once in the output"},
        {"ij,ik", CG_ERR_SHAPE,
         "subscript i has size 3 for operand 1, which does not broadcast with size 2"},
        {"ii,jk", CG_ERR_SHAPE,
         "subscript i is repeated for operand 0 but the sizes don't match, 2 != 3"},
        {"ij,jk,kl", CG_ERR_ARG,
         "'ij,jk,kl' has 3 operands, 2 given (cg_einsum_n takes any number)"},
        {"ij->ji", CG_ERR_ARG, "'ij->ji' has 1 operand, 2 given"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_null(cg_einsum(ctx, bad[k].eq, a, b));
        assert_error(bad[k].st, bad[k].msg);
    }
    assert_null(cg_einsum(ctx, "...i,...i", cg_ones(ctx, CG_F64, CG_SHAPE(2, 3)),
                          cg_ones(ctx, CG_F64, CG_SHAPE(4, 3))));
    assert_error(CG_ERR_SHAPE, "subscript of the ellipsis has size 4 for operand 1, which does "
                               "not broadcast with size 2");
    assert_null(cg_einsum(ctx, "ij,jk", cg_cast(ctx, a, CG_F32), b));
    assert_error(
        CG_ERR_DTYPE,
        "'ij,jk': operands 0 and 1 are f32 and f64 (contractions need one float dtype)");
    assert_null(cg_einsum(ctx, "ij,jk", cg_cast(ctx, a, CG_I64), cg_cast(ctx, b, CG_I64)));
    assert_error(CG_ERR_DTYPE, "operands 0 and 1 are i64 and i64");
    /* output rank, output size, an intermediate's rank */
    cg_tensor *o5 = cg_ones(ctx, CG_F64, CG_SHAPE(1, 1, 1, 1, 1));
    assert_null(cg_einsum(ctx, "abcde,fghij->abcdefghij", o5, o5));
    assert_error(CG_ERR_SHAPE, "'abcde,fghij->abcdefghij': output of rank 10 (at most 8)");
    cg_tensor *huge = cg_expand(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(1)), CG_SHAPE(1LL << 40));
    assert_null(cg_einsum(ctx, "i,j->ij", huge, huge));
    assert_error(CG_ERR_SHAPE, "cg_einsum: [1099511627776,1099511627776]: too many elements");
    const cg_tensor *four[4] = {o5, o5, o5, o5};
    assert_null(cg_einsum_n(ctx, "abcde,fghij,abcde,fghij->", 4, four));
    assert_error(CG_ERR_SHAPE,
                 "contracting operand 1 makes an intermediate of 10 dims (at most 8)");
    /* arguments */
    assert_null(cg_einsum_n(ctx, "ij,jk", 1, (const cg_tensor *[]){a}));
    assert_error(CG_ERR_ARG, "cg_einsum_n: 'ij,jk' has 2 operands, 1 given");
    assert_null(cg_einsum(ctx, NULL, a, NULL));
    assert_error(CG_ERR_ARG, "cg_einsum: needs an equation and 1 to 16 operands");
    assert_null(cg_einsum_n(ctx, "i", 0, NULL));
    assert_error(CG_ERR_ARG, "(got 0)");
    assert_null(cg_einsum_n(ctx, "i", 17, four));
    assert_error(CG_ERR_ARG, "(got 17)");
    cg_tensor *many[17];
    for (int k = 0; k < 17; k++) many[k] = a;
    char eq17[64] = "";
    for (int k = 0; k < 17; k++) strcat(eq17, k ? ",ij" : "ij");
    assert_null(cg_einsum_n(ctx, eq17, 16, (const cg_tensor *const *)many));
    assert_error(CG_ERR_ARG, "more than 16 operands");
    /* NULL in, NULL out */
    assert_null(cg_einsum(ctx, "ij,jk", a, NULL));
    assert_error(CG_ERR_ARG, "cg_einsum: tensor is NULL");
    assert_null(cg_einsum(ctx, "ij,jk", cg_einsum(ctx, "i", a, NULL), b));
    assert_error(CG_ERR_SHAPE, "operand 0 has 1 subscripts");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_compare_scalar_values),
        cmocka_unit_test(test_seq_masked_fill_values),
        cmocka_unit_test(test_seq_where_scalar_values),
        cmocka_unit_test(test_seq_tril_triu_values),
        cmocka_unit_test(test_seq_causal_mask),
        cmocka_unit_test(test_seq_cumsum_cumprod_values),
        cmocka_unit_test(test_seq_cumprod_grad_zeros),
        cmocka_unit_test(test_seq_cumprod_grad_paths_agree),
        cmocka_unit_test(test_seq_flip_roll_values),
        cmocka_unit_test(test_seq_repeat_values),
        cmocka_unit_test(test_seq_split_chunk_values),
        cmocka_unit_test(test_seq_scatter_index_add_values),
        cmocka_unit_test(test_seq_sort_topk_values),
        cmocka_unit_test(test_seq_outer_bmm_values),
        cmocka_unit_test(test_seq_einsum_values),
        cmocka_unit_test(test_seq_mask_gradcheck),
        cmocka_unit_test(test_seq_structure_gradcheck),
        cmocka_unit_test(test_seq_cumprod_gradcheck),
        cmocka_unit_test(test_seq_scatter_gradcheck),
        cmocka_unit_test(test_seq_sort_gradcheck),
        cmocka_unit_test(test_seq_products_gradcheck),
        cmocka_unit_test(test_seq_bmm_broadcast_gradcheck),
        cmocka_unit_test(test_seq_einsum_gradcheck),
        cmocka_unit_test(test_seq_independent_of_threads),
        cmocka_unit_test(test_seq_modified_index_fails_backward),
        cmocka_unit_test(test_seq_ctx_null_no_leaks),
        cmocka_unit_test(test_seq_ctx_null_needs_context),
        cmocka_unit_test(test_seq_mask_errors),
        cmocka_unit_test(test_seq_line_errors),
        cmocka_unit_test(test_seq_split_errors),
        cmocka_unit_test(test_seq_scatter_errors),
        cmocka_unit_test(test_seq_sort_errors),
        cmocka_unit_test(test_seq_product_errors),
        cmocka_unit_test(test_seq_einsum_errors),
    };
    return cmocka_run_group_tests_name("seqops", tests, ctx_setup, ctx_teardown);
}
