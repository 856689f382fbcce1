/* ops/pool.c: max, average and adaptive average pooling and F.pad against
 * hand-computed values (checked with PyTorch 1.13), a naive float64
 * reference over an option grid, gradcheck of every op over the grid,
 * gradgradcheck, the indices, thread-count independence and every error
 * path. */
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

/* A [1, 1, 4, 4] f64 plane (the values of the hand-computed cases). */
static const double plane4[16] = {1, 5, 2, 0, 3, 4, 8, 6, 7, 0, 9, 1, 2, 6, 3, 5};

static cg_tensor *from(cg_ctx *ctx, int ndim, const int64_t *shape, const double *v) {
    return cg_from_array(ctx, CG_F64, ndim, shape, v);
}
static cg_pool_opts opts(int64_t k, int64_t s, int64_t p) {
    cg_pool_opts o = cg_pool_defaults(k, k);
    o.stride[0] = o.stride[1] = s;
    o.padding[0] = o.padding[1] = p;
    return o;
}
static void assert_indices(const cg_tensor *t, const int64_t *want, int64_t n) {
    assert_non_null(t);
    assert_int_equal(cg_dtype_of(t), CG_I64);
    assert_int_equal(cg_numel(t), n);
    assert_memory_equal(cg_data(t), want, sizeof(int64_t) * (size_t)n);
}

/* ---- values ------------------------------------------------------------------------------ */
static void test_pool_max2d_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = from(ctx, CG_SHAPE(1, 1, 4, 4), plane4), *idx;
    cg_pool_opts o = cg_pool_defaults(2, 2);
    cg_tensor *y = cg_max_pool2d(ctx, x, &o, &idx);
    assert_int_equal(cg_dim(y, 2), 2);
    assert_values(y, (double[]){5, 8, 7, 9}, 4, 0);
    assert_indices(idx, (int64_t[]){1, 6, 8, 10}, 4);
    /* kernel 3, stride 1, padding 1: same size, windows clipped at the borders */
    o = opts(3, 1, 1);
    y = cg_max_pool2d(ctx, x, &o, &idx);
    assert_values(y, (double[]){5, 8, 8, 8, 7, 9, 9, 9, 7, 9, 9, 9, 7, 9, 9, 9}, 16, 0);
    assert_indices(idx, (int64_t[]){1, 6, 6, 6, 8, 10, 10, 10, 8, 10, 10, 10, 8, 10, 10, 10},
                   16);
    /* dilation 2: taps two apart */
    o = opts(2, 1, 0);
    o.dilation[0] = o.dilation[1] = 2;
    y = cg_max_pool2d(ctx, x, &o, &idx);
    assert_values(y, (double[]){9, 5, 8, 6}, 4, 0);
    assert_indices(idx, (int64_t[]){10, 1, 6, 7}, 4);
    /* no indices asked for, nothing requires a gradient */
    assert_values(cg_max_pool2d(ctx, x, &o, NULL), (double[]){9, 5, 8, 6}, 4, 0);
}

static void test_pool_avg2d_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = from(ctx, CG_SHAPE(1, 1, 4, 4), plane4);
    cg_pool_opts o = cg_pool_defaults(2, 2);
    assert_values(cg_avg_pool2d(ctx, x, &o), (double[]){3.25, 4, 3.75, 4.5}, 4, 1e-15);
    /* padding 1: the padded zeros count, or not */
    o = opts(3, 2, 1);
    assert_values(cg_avg_pool2d(ctx, x, &o), (double[]){13. / 9, 25. / 9, 22. / 9, 42. / 9}, 4,
                  1e-15);
    o.count_include_pad = false;
    assert_values(cg_avg_pool2d(ctx, x, &o), (double[]){3.25, 25. / 6, 22. / 6, 42. / 9}, 4,
                  1e-15);
}

/* Ceil mode adds a last window that runs past the input; its divisor is the
 * window clipped to the padded input (count_include_pad) or to the input. */
static void test_pool_ceil_mode_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = from(ctx, CG_SHAPE(1, 1, 4, 4), plane4);
    cg_pool_opts o = opts(3, 2, 1);
    o.ceil_mode = true;
    assert_values(cg_avg_pool2d(ctx, x, &o),
                  (double[]){13. / 9, 25. / 9, 1, 22. / 9, 42. / 9, 2, 4. / 3, 7. / 3, 1.25}, 9,
                  1e-15);
    o.count_include_pad = false;
    assert_values(cg_avg_pool2d(ctx, x, &o),
                  (double[]){3.25, 25. / 6, 3, 22. / 6, 42. / 9, 4, 4, 14. / 3, 5}, 9, 1e-15);
    /* 5x5, kernel 2: 3x3 outputs, the last row and column of windows of 1 */
    cg_tensor *y = cg_view(ctx, cg_arange(ctx, CG_F64, 0, 25, 1), CG_SHAPE(1, 1, 5, 5)), *idx;
    o = cg_pool_defaults(2, 2);
    o.ceil_mode = true;
    assert_values(cg_avg_pool2d(ctx, y, &o),
                  (double[]){3, 5, 6.5, 13, 15, 16.5, 20.5, 22.5, 24}, 9, 1e-15);
    assert_values(cg_max_pool2d(ctx, y, &o, &idx), (double[]){6, 8, 9, 16, 18, 19, 21, 23, 24},
                  9, 0);
    assert_indices(idx, (int64_t[]){6, 8, 9, 16, 18, 19, 21, 23, 24}, 9);
    /* a last window that would start in the right padding is dropped:
     * L 5, kernel 2, stride 2, padding 1 gives 3 windows, not 4 */
    cg_tensor *r = from(ctx, CG_SHAPE(1, 5), (double[]){1, 2, 3, 4, 5});
    o = opts(2, 2, 1);
    o.ceil_mode = true;
    assert_values(cg_max_pool1d(ctx, r, &o, NULL), (double[]){1, 3, 5}, 3, 0);
}

static void test_pool_1d_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = from(ctx, CG_SHAPE(1, 8), (double[]){3, 1, 4, 1, 5, 9, 2, 6}), *idx;
    cg_pool_opts o = opts(3, 2, 1);
    cg_tensor *y = cg_max_pool1d(ctx, x, &o, &idx);
    assert_int_equal(cg_ndim(y), 2); /* unbatched [C, L] stays unbatched */
    assert_values(y, (double[]){3, 4, 9, 9}, 4, 0);
    assert_indices(idx, (int64_t[]){0, 2, 5, 5}, 4);
    o.ceil_mode = true;
    o.count_include_pad = false;
    assert_values(cg_avg_pool1d(ctx, x, &o), (double[]){2, 2, 5, 17. / 3, 6}, 5, 1e-15);
    /* batched [N, C, L] with kw ignored */
    o = cg_pool_defaults(2, 99);
    y = cg_avg_pool1d(ctx, cg_view(ctx, x, CG_SHAPE(2, 1, 4)), &o);
    assert_int_equal(cg_dim(y, 2), 2);
    assert_values(y, (double[]){2, 2.5, 7, 4}, 4, 1e-15);
}

/* PyTorch's adaptive bins: start floor(i In / Out), end ceil((i + 1) In / Out). */
static void test_pool_adaptive_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = from(ctx, CG_SHAPE(1, 1, 1, 5), (double[]){1, 2, 3, 4, 5});
    assert_values(cg_adaptive_avg_pool2d(ctx, x, 1, 3), (double[]){1.5, 3, 4.5}, 3, 1e-15);
    cg_tensor *y = cg_view(ctx, cg_arange(ctx, CG_F64, 0, 25, 1), CG_SHAPE(1, 5, 5));
    cg_tensor *a = cg_adaptive_avg_pool2d(ctx, y, 3, 2); /* unbatched [C, H, W] */
    assert_int_equal(cg_ndim(a), 3);
    assert_values(a, (double[]){3.5, 5.5, 11, 13, 18.5, 20.5}, 6, 1e-15);
    /* output 1x1 is the global mean; output = input is the identity */
    assert_values(cg_adaptive_avg_pool2d(ctx, y, 1, 1), (double[]){12}, 1, 1e-15);
    cg_tensor *same = cg_adaptive_avg_pool2d(ctx, x, 1, 5);
    assert_values(same, (double[]){1, 2, 3, 4, 5}, 5, 0);
    /* an output size of 0 is empty, as PyTorch */
    assert_int_equal(cg_numel(cg_adaptive_avg_pool2d(ctx, x, 0, 3)), 0);
}

static void test_pool_pad_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *z = from(ctx, CG_SHAPE(1, 2, 3), (double[]){1, 2, 3, 4, 5, 6});
    cg_tensor *y = cg_pad(ctx, z, 2, (int64_t[]){2, 1}, CG_PAD_CONSTANT, 9);
    assert_int_equal(cg_dim(y, 2), 6);
    assert_values(y, (double[]){9, 9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9}, 12, 0);
    /* negative sizes crop: (-1, 1) on W, (1, 0) on H */
    y = cg_pad(ctx, z, 4, (int64_t[]){-1, 1, 1, 0}, CG_PAD_CONSTANT, 0);
    assert_values(y, (double[]){0, 0, 0, 2, 3, 0, 5, 6, 0}, 9, 0);
    assert_int_equal(cg_dim(cg_pad(ctx, z, 2, (int64_t[]){-3, 0}, CG_PAD_CONSTANT, 0), 2), 0);
    y = cg_pad(ctx, z, 2, (int64_t[]){2, 1}, CG_PAD_REFLECT, 0);
    assert_values(y, (double[]){3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5}, 12, 0);
    y = cg_pad(ctx, z, 2, (int64_t[]){2, 1}, CG_PAD_REPLICATE, 0);
    assert_values(y, (double[]){1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 6, 6}, 12, 0);
    y = cg_pad(ctx, z, 2, (int64_t[]){-1, 1}, CG_PAD_REFLECT, 0);
    assert_values(y, (double[]){2, 3, 2, 5, 6, 5}, 6, 0);
    cg_tensor *z4 = cg_view(ctx, z, CG_SHAPE(1, 1, 2, 3));
    y = cg_pad(ctx, z4, 4, (int64_t[]){1, 2, 1, 1}, CG_PAD_REFLECT, 0);
    assert_values(
        y, (double[]){5, 4, 5, 6, 5, 4, 2, 1, 2, 3, 2, 1, 5, 4, 5, 6, 5, 4, 2, 1, 2, 3, 2, 1},
        24, 0);
    y = cg_pad(ctx, z4, 4, (int64_t[]){1, 0, 0, 2}, CG_PAD_REPLICATE, 0);
    assert_values(y, (double[]){1, 1, 2, 3, 4, 4, 5, 6, 4, 4, 5, 6, 4, 4, 5, 6}, 16, 0);
    /* i64 and no padding at all (a copy) */
    cg_tensor *i = cg_from_array(ctx, CG_I64, CG_SHAPE(2), (int64_t[]){7, 8});
    assert_values(cg_pad(ctx, i, 2, (int64_t[]){1, 0}, CG_PAD_CONSTANT, -1),
                  (double[]){-1, 7, 8}, 3, 0);
    y = cg_pad(ctx, z, 0, NULL, CG_PAD_CONSTANT, 0);
    assert_ptr_not_equal(cg_data(y), cg_data(z));
    assert_values(y, (double[]){1, 2, 3, 4, 5, 6}, 6, 0);
}

/* Max pooling of i64 and f32, NaN winning its window as in PyTorch. */
static void test_pool_dtypes(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *i = cg_from_array(ctx, CG_I64, CG_SHAPE(1, 4), (int64_t[]){-5, -9, 3, 2}), *idx;
    cg_pool_opts o = cg_pool_defaults(2, 2);
    cg_tensor *y = cg_max_pool1d(ctx, i, &o, &idx);
    assert_int_equal(cg_dtype_of(y), CG_I64);
    assert_values(y, (double[]){-5, 3}, 2, 0);
    assert_indices(idx, (int64_t[]){0, 2}, 2);
    cg_tensor *f = cg_from_array(ctx, CG_F32, CG_SHAPE(1, 4), (float[]){1, NAN, 3, 2});
    y = cg_max_pool1d(ctx, f, &o, &idx);
    assert_int_equal(cg_dtype_of(y), CG_F32);
    assert_true(isnan(((float *)cg_data(y))[0]));
    assert_indices(idx, (int64_t[]){1, 2}, 2);
    cg_tensor *f2 =
        cg_from_array(ctx, CG_F32, CG_SHAPE(1, 2, 4), (float[]){1, NAN, 3, 2, 0, 5, 4, NAN});
    y = cg_max_pool2d(ctx, f2, &o, &idx); /* the 2x2 fast path */
    assert_true(isnan(((float *)cg_data(y))[0]) && isnan(((float *)cg_data(y))[1]));
    assert_indices(idx, (int64_t[]){1, 7}, 2);
    y = cg_avg_pool1d(ctx, f, &o);
    assert_true(isnan(((float *)cg_data(y))[0]));
    assert_float_equal(((float *)cg_data(y))[1], 2.5, 0);
}

/* The f32 2x2 windows go sixteen at a time (tensor/pool_kernels.c), reading
 * and writing past a short row's end within its plane: rows of 18 windows
 * (16 and an overlapping last block), of 7 (into the next rows), odd sizes
 * (the last row and column dropped), values drawn from {0, 1, 2, NaN} so that
 * ties and NaNs are everywhere: values and indices as a naive walk of each
 * window in PyTorch's order (a later tap wins if greater or NaN). */
static void test_pool_max2x2_vector_path(void **state) {
    static const int64_t shapes[][4] = {{2, 3, 10, 36}, {3, 2, 14, 14}, {1, 5, 9, 15}};
    cg_rng rng = seeded(41);
    for (int si = 0; si < 3; si++) {
        const int64_t *s = shapes[si];
        int64_t n = s[0] * s[1] * s[2] * s[3], oh = s[2] / 2, ow = s[3] / 2;
        float *x = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            uint64_t r = cg_rng_u64(&rng) % 7;
            x[i] = r == 6 ? NAN : (float)(r % 3);
        }
        cg_tensor *t = cg_from_array(*state, CG_F32, 4, s, x), *idx;
        cg_pool_opts o = cg_pool_defaults(2, 2);
        cg_tensor *y = cg_max_pool2d(*state, t, &o, &idx);
        assert_non_null(y);
        const float *yv = cg_data(y);
        const int64_t *iv = cg_data(idx);
        for (int64_t p = 0; p < s[0] * s[1]; p++)
            for (int64_t i = 0; i < oh * ow; i++) {
                const float *xp = x + p * s[2] * s[3];
                int64_t h = 2 * (i / ow), w = 2 * (i % ow), best = h * s[3] + w;
                for (int64_t k = 1; k < 4; k++) {
                    int64_t at = (h + k / 2) * s[3] + w + k % 2;
                    if (xp[at] > xp[best] || isnan(xp[at])) best = at;
                }
                int64_t o_at = p * oh * ow + i;
                assert_int_equal(iv[o_at], best);
                assert_true(isnan(xp[best]) ? isnan(yv[o_at]) : yv[o_at] == xp[best]);
            }
        free(x);
        cg_ctx_reset(*state);
    }
}

/* The f32 2x2 scatter writes each window's four gradients at once, sixteen
 * windows at a time, past a short row into the next rows (W = 2 OW only; odd
 * heights get the last row zeroed, odd widths go the generic way): the
 * gradient of sum(y * r) is r at each index, 0 elsewhere, -0 made +0. */
static void test_pool_max2x2_scatter_path(void **state) {
    static const int64_t shapes[][4] = {
        {2, 3, 28, 28}, {3, 2, 14, 14}, {1, 2, 9, 36}, {1, 1, 5, 6}, {2, 2, 6, 7}};
    cg_rng rng = seeded(43);
    for (int si = 0; si < 5; si++) {
        cg_ctx *ctx = *state;
        const int64_t *s = shapes[si];
        cg_tensor *x = cg_randn(ctx, &rng, CG_F32, 4, s, 0, 1), *idx, *g;
        cg_set_requires_grad(x, true);
        cg_pool_opts o = cg_pool_defaults(2, 2);
        cg_tensor *y = cg_max_pool2d(ctx, x, &o, &idx);
        cg_tensor *r = cg_randn(ctx, &rng, CG_F32, 4, cg_shape(y), 0, 1);
        ((float *)cg_data(r))[0] = -0.0f;
        cg_tensor *loss = cg_sum(ctx, cg_mul(ctx, y, r), NULL, 0, false);
        assert_int_equal(cg_grad(ctx, 1, &loss, NULL, 1, &x, &g, 0), CG_OK);
        int64_t planes = s[0] * s[1], ni = s[2] * s[3], no = cg_numel(y) / planes;
        float *want = calloc((size_t)(planes * ni), sizeof(float));
        const int64_t *iv = cg_data(idx);
        const float *rv = cg_data(r);
        for (int64_t p = 0; p < planes; p++)
            for (int64_t i = 0; i < no; i++) want[p * ni + iv[p * no + i]] += rv[p * no + i];
        assert_memory_equal(cg_data(g), want, sizeof(float) * (size_t)(planes * ni));
        free(want);
        cg_ctx_reset(ctx);
    }
}

/* Without indices asked for, f32 2x2 max pooling keeps each window's argmax
 * as a byte (2 dy + dx) instead of an int64 index: the values, x's gradient
 * (the fast scatter, and the generic one for a transposed seed), and the
 * gradient of that gradient in the seed (a gather) all land where the
 * indices cg_max_pool2d returns say, odd sizes and rows of more and fewer
 * than 16 windows included. */
static void codes_case(cg_ctx *ctx, const int64_t *s, bool transposed_seed, uint64_t seed) {
    cg_rng rng = seeded(seed);
    cg_tensor *x = cg_randn(ctx, &rng, CG_F32, 4, s, 0, 1), *idx, *dx, *dg;
    cg_set_requires_grad(x, true);
    cg_pool_opts o = cg_pool_defaults(2, 2);
    cg_tensor *yi = cg_max_pool2d(ctx, x, &o, &idx), *y = cg_max_pool2d(ctx, x, &o, NULL);
    int64_t planes = s[0] * s[1], ni = s[2] * s[3], no = cg_numel(y) / planes;
    assert_memory_equal(cg_data(y), cg_data(yi), sizeof(float) * (size_t)(planes * no));
    int64_t ys[4] = {s[0], s[1], s[3] / 2, s[2] / 2};
    cg_tensor *r = transposed_seed
                       ? cg_transpose(ctx, cg_randn(ctx, &rng, CG_F32, 4, ys, 0, 1), 2, 3)
                       : cg_randn(ctx, &rng, CG_F32, 4, cg_shape(y), 0, 1);
    cg_tensor *q = cg_randn(ctx, &rng, CG_F32, 4, s, 0, 1);
    cg_set_requires_grad(r, true);
    assert_int_equal(
        cg_grad(ctx, 1, &y, (const cg_tensor *const[]){r}, 1, &x, &dx, CG_CREATE_GRAPH), CG_OK);
    cg_tensor *l2 = cg_sum(ctx, cg_mul(ctx, dx, q), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &l2, NULL, 1, &r, &dg, 0), CG_OK);
    float *want = calloc((size_t)(planes * ni), sizeof(float)),
          *rv = malloc(sizeof(float) * (size_t)(planes * no));
    float *dgv = malloc(sizeof(float) * (size_t)(planes * no)),
          *wantg = malloc(sizeof(float) * (size_t)(planes * no));
    assert_int_equal(cg_copy_to_array(r, CG_F32, rv), CG_OK);
    assert_int_equal(cg_copy_to_array(dg, CG_F32, dgv), CG_OK);
    const int64_t *iv = cg_data(idx);
    const float *qv = cg_data(q);
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < no; i++) {
            want[p * ni + iv[p * no + i]] += rv[p * no + i];
            wantg[p * no + i] = qv[p * ni + iv[p * no + i]];
        }
    assert_memory_equal(cg_data(dx), want, sizeof(float) * (size_t)(planes * ni));
    assert_memory_equal(dgv, wantg, sizeof(float) * (size_t)(planes * no));
    free(want), free(rv), free(dgv), free(wantg);
    cg_ctx_reset(ctx);
}

static void test_pool_max2x2_window_codes(void **state) {
    static const int64_t shapes[][4] = {{2, 3, 28, 28}, {3, 2, 14, 14}, {1, 2, 9, 36},
                                        {1, 1, 5, 6},   {2, 2, 6, 7},   {2, 2, 40, 40}};
    for (int si = 0; si < 6; si++)
        for (int t = 0; t < 2; t++)
            codes_case(*state, shapes[si], t, 90 + (uint64_t)(2 * si + t));
}

/* max_pool2d(relu(a)) in cg_backward masks the pooled gradient for ReLU
 * (premasking; ReLU's rule then passes it on) where cg_grad masks the
 * scatter: the same bits, f32 (the 2x2 fast scatter) and f64, for 2x2,
 * overlapping padded 3x3 stride 2 windows, ReLU's output also used
 * elsewhere, and after the pooled output was changed in place (premasking
 * is then off). a has exact zeros, -0 and negatives, so the mask matters. */
static void relu_pool_case(cg_ctx *ctx, cg_dtype dt, int64_t k, int64_t st, int64_t pad,
                           int variant) {
    cg_rng rng = seeded(60 + (uint64_t)(k + variant));
    const int64_t shape[4] = {2, 3, 12, 12};
    cg_tensor *a = randn_leaf(&rng, dt, 4, shape, 1);
    double v[864];
    assert_int_equal(cg_copy_to_array(a, CG_F64, v), CG_OK);
    for (int i = 0; i < 864; i += 7) v[i] = i % 14 ? 0.0 : -0.0;
    cg_tensor *a2 = cg_from_array(NULL, dt, 4, shape, v);
    cg_set_requires_grad(a2, true);
    cg_tensor_free(a);
    cg_tensor *r = cg_relu(ctx, a2);
    cg_pool_opts o = opts(k, st, pad);
    cg_tensor *y = cg_max_pool2d(ctx, r, &o, NULL);
    cg_tensor *c = cg_randn(ctx, &rng, dt, 4, cg_shape(y), 0, 1);
    cg_tensor *loss = variant == 2 ? cg_sum(ctx, y, NULL, 0, false)
                                   : cg_sum(ctx, cg_mul(ctx, y, c), NULL, 0, false);
    if (variant == 1)
        loss = cg_add(ctx, loss, cg_sum(ctx, cg_mul_scalar(ctx, r, 0.5), NULL, 0, false));
    if (variant == 2) /* y changed in place after the loss used it (nothing saved it) */
        assert_int_equal(cg_fill_(y, -1.0), CG_OK);
    cg_tensor *want;
    assert_int_equal(cg_grad(ctx, 1, &loss, NULL, 1, &a2, &want, CG_RETAIN_GRAPH), CG_OK);
    assert_int_equal(cg_backward(loss), CG_OK);
    size_t bytes = cg_dtype_size(dt) * 864;
    assert_memory_equal(cg_data(want), cg_data(cg_grad_of(a2)), bytes);
    cg_tensor_free(a2);
    cg_ctx_reset(ctx);
}

static void test_pool_relu_then_max_pool_backward_bits(void **state) {
    for (int d = 0; d < 2; d++)
        for (int variant = 0; variant < 3; variant++) {
            relu_pool_case(*state, d ? CG_F64 : CG_F32, 2, 2, 0, variant);
            relu_pool_case(*state, d ? CG_F64 : CG_F32, 3, 2, 1, variant);
        }
}

/* [C, H, W] and [1, C, H, W] agree, as do a transposed input and its copy. */
static void test_pool_unbatched_and_strided(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(3);
    cg_tensor *x = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(2, 5, 6), 0, 1);
    cg_tensor *xb = cg_view(ctx, x, CG_SHAPE(1, 2, 5, 6));
    cg_tensor *xt = cg_transpose(ctx, cg_contiguous(ctx, cg_transpose(ctx, xb, 2, 3)), 2, 3);
    assert_false(cg_is_contiguous(xt));
    cg_pool_opts o = opts(3, 2, 1);
    o.ceil_mode = true;
    const cg_tensor *ys[3][3];
    const cg_tensor *ins[3] = {x, xb, xt};
    for (int k = 0; k < 3; k++) {
        ys[k][0] = cg_max_pool2d(ctx, ins[k], &o, NULL);
        ys[k][1] = cg_avg_pool2d(ctx, ins[k], &o);
        ys[k][2] = cg_adaptive_avg_pool2d(ctx, ins[k], 4, 3);
    }
    for (int j = 0; j < 3; j++) {
        double a[64], b[64], c[64];
        assert_int_equal(cg_ndim(ys[0][j]), 3);
        assert_int_equal(cg_numel(ys[0][j]), cg_numel(ys[1][j]));
        cg_copy_to_array(ys[0][j], CG_F64, a);
        cg_copy_to_array(ys[1][j], CG_F64, b);
        cg_copy_to_array(ys[2][j], CG_F64, c);
        assert_memory_equal(a, b, sizeof(double) * (size_t)cg_numel(ys[0][j]));
        assert_memory_equal(a, c, sizeof(double) * (size_t)cg_numel(ys[0][j]));
    }
}

/* A batch of 0 gives empty outputs and gradients, as PyTorch. */
static void test_pool_empty_batch(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 2, 4, 4)), *g;
    cg_set_requires_grad(x, true);
    cg_pool_opts o = cg_pool_defaults(2, 2);
    cg_tensor *ys[] = {cg_max_pool2d(ctx, x, &o, NULL), cg_avg_pool2d(ctx, x, &o),
                       cg_adaptive_avg_pool2d(ctx, x, 3, 3),
                       cg_pad(ctx, x, 4, (int64_t[]){1, 1, 1, 1}, CG_PAD_REFLECT, 0)};
    for (int k = 0; k < 4; k++) {
        assert_non_null(ys[k]);
        assert_int_equal(cg_dim(ys[k], 0), 0);
        cg_tensor *s = cg_sum(ctx, ys[k], NULL, 0, false);
        assert_int_equal(cg_grad(ctx, 1, &s, NULL, 1, &x, &g, 0), CG_OK);
        assert_int_equal(cg_numel(g), 0);
    }
}

/* ---- a naive reference over the option grid -----------------------------------------------
 */
/* The options of one grid point, per dim ([0] H, [1] W; 1-D: H is 1 with kernel 1). */
typedef struct grid_case {
    int sd; /* spatial dims of the op: 1 or 2 */
    bool max, transposed, square;
    cg_pool_opts o;
} grid_case;

/* Output size from the formula in PyTorch's docs, in floating point. */
static int64_t ref_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
    double v = (double)(in + 2 * p - d * (k - 1) - 1) / (double)s + 1;
    int64_t o = (int64_t)(ceil_mode ? ceil(v) : floor(v));
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

/* The window of output (oh, ow) tap by tap: max (first maximum, its index)
 * or mean (divisor: taps inside the padded input, or inside the input). */
static double ref_window(const grid_case *c, const double *x, int64_t H, int64_t W, int64_t oh,
                         int64_t ow, const int64_t *k, const int64_t *s, const int64_t *p,
                         const int64_t *d, int64_t *at) {
    double best = -INFINITY, sum = 0;
    int64_t in = 0, padded = 0;
    *at = -1;
    for (int64_t i = 0; i < k[0]; i++)
        for (int64_t j = 0; j < k[1]; j++) {
            int64_t h = oh * s[0] - p[0] + i * d[0], w = ow * s[1] - p[1] + j * d[1];
            padded += h < H + p[0] && w < W + p[1];
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            in++;
            sum += x[h * W + w];
            if (*at < 0 || x[h * W + w] > best) {
                best = x[h * W + w];
                *at = h * W + w;
            }
        }
    if (c->max) return best;
    return sum / (double)(c->o.count_include_pad ? padded : in);
}

/* The reference of c over planes of H x W; returns the output plane size (0:
 * too small). */
static int64_t ref_pool(const grid_case *c, const double *x, int64_t planes, int64_t H,
                        int64_t W, double *y, int64_t *idx) {
    const cg_pool_opts *o = &c->o;
    int a = c->sd == 2 ? 0 : -1; /* opts index of H */
    int64_t k[2] = {a ? 1 : o->kernel[0], o->kernel[a + 1]};
    int64_t s[2] = {a ? 1 : o->stride[0], o->stride[a + 1]};
    int64_t p[2] = {a ? 0 : o->padding[0], o->padding[a + 1]};
    int64_t d[2] = {a || !c->max ? 1 : o->dilation[0], c->max ? o->dilation[a + 1] : 1};
    for (int i = 0; i < 2; i++) s[i] = s[i] ? s[i] : k[i];
    int64_t OH = ref_out(H, k[0], s[0], p[0], d[0], o->ceil_mode);
    int64_t OW = ref_out(W, k[1], s[1], p[1], d[1], o->ceil_mode);
    if (OH < 1 || OW < 1) return 0;
    for (int64_t q = 0; q < planes; q++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t at, r = (q * OH + oh) * OW + ow;
                y[r] = ref_window(c, x + q * H * W, H, W, oh, ow, k, s, p, d, &at);
                idx[r] = at;
            }
    return OH * OW;
}

/* The op of c on x, made transposed from a [..., W, H] base when c says. */
static cg_tensor *run_case(cg_ctx *ctx, const grid_case *c, const cg_tensor *x,
                           cg_tensor **idx) {
    if (c->transposed) x = cg_transpose(ctx, x, -1, -2);
    cg_tensor *y;
    if (c->max)
        y = c->sd == 2 ? cg_max_pool2d(ctx, x, &c->o, idx) : cg_max_pool1d(ctx, x, &c->o, idx);
    else
        y = c->sd == 2 ? cg_avg_pool2d(ctx, x, &c->o) : cg_avg_pool1d(ctx, x, &c->o);
    return c->square ? cg_square(ctx, y) : y;
}
static cg_tensor *f_pool(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    return run_case(ctx, u, in[0], NULL);
}

/* Calls visit for every point of the grid: kernel, stride, padding,
 * dilation (max), ceil mode, count_include_pad (avg), max and avg, 1-D and 2-D. */
typedef void (*grid_visit)(cg_ctx *ctx, grid_case *c, void *u);
static void for_grid(cg_ctx *ctx, grid_visit visit, void *u) {
    static const int64_t ks[][2] = {{1, 1}, {2, 2}, {3, 2}};
    for (int sd = 1; sd <= 2; sd++)
        for (int mx = 0; mx < 2; mx++)
            for (int ki = 0; ki < 3; ki++)
                for (int64_t s = 0; s <= 2; s++)
                    for (int pi = 0; pi < 2; pi++)
                        for (int64_t d = 1; d <= (mx ? 2 : 1); d++)
                            for (int b = 0; b < (mx ? 2 : 4); b++) {
                                grid_case c = {.sd = sd, .max = mx, .transposed = s == 1};
                                c.o = cg_pool_defaults(ks[ki][0], ks[ki][1]);
                                c.o.stride[0] = c.o.stride[1] = s;
                                c.o.padding[0] = pi ? ks[ki][0] / 2 : 0;
                                c.o.padding[1] = pi ? ks[ki][1] / 2 : 0;
                                c.o.dilation[0] = c.o.dilation[1] = d;
                                c.o.ceil_mode = b & 1;
                                c.o.count_include_pad = !(b & 2);
                                visit(ctx, &c, u);
                            }
}

/* Distinct values 0.1 apart in a shuffled order (no ties for max pooling,
 * none within a finite-difference step either). */
static cg_tensor *distinct(cg_ctx *ctx, uint64_t seed, int ndim, const int64_t *shape) {
    cg_rng rng = seeded(seed);
    double v[256];
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    assert_true(n <= 256);
    for (int64_t i = 0; i < n; i++) v[i] = 0.1 * (double)i - 0.05 * (double)n;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(cg_rng_u64(&rng) % (uint64_t)(i + 1));
        double t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    return cg_from_array(ctx, CG_F64, ndim, shape, v);
}

/* The input of a grid case: [2, 3, 5, 6] (1-D: [2, 3, 6]), stored
 * transposed (H and W swapped) when the case reads it transposed. */
static cg_tensor *grid_input(cg_ctx *ctx, const grid_case *c, int64_t n, int64_t ch, int64_t h,
                             int64_t w, uint64_t seed) {
    if (c->sd == 1)
        return distinct(ctx, seed, 3,
                        c->transposed ? (int64_t[]){n, w, ch} : (int64_t[]){n, ch, w});
    return distinct(ctx, seed, 4,
                    c->transposed ? (int64_t[]){n, ch, w, h} : (int64_t[]){n, ch, h, w});
}

static void visit_reference(cg_ctx *ctx, grid_case *c, void *u) {
    int *checked = u;
    cg_tensor *x = grid_input(ctx, c, 2, 3, 5, 6, 11), *idx = NULL;
    double xv[180], want[512], got[512];
    int64_t wi[512];
    const cg_tensor *xl = c->transposed ? cg_transpose(ctx, x, -1, -2) : x;
    cg_copy_to_array(xl, CG_F64, xv);
    int64_t H = c->sd == 2 ? 5 : 1, W = 6, planes = 2 * 3;
    int64_t no = ref_pool(c, xv, planes, H, W, want, wi);
    cg_tensor *y = run_case(ctx, c, x, &idx);
    if (!no) {
        assert_null(y);
        assert_error(CG_ERR_SHAPE, "is too small for kernel");
        return;
    }
    assert_non_null(y);
    assert_int_equal(cg_numel(y), planes * no);
    cg_copy_to_array(y, CG_F64, got);
    for (int64_t i = 0; i < planes * no; i++) assert_float_equal(got[i], want[i], 1e-13);
    if (c->max) assert_memory_equal(cg_data(idx), wi, sizeof(int64_t) * (size_t)(planes * no));
    ++*checked;
    cg_ctx_reset(ctx);
}

static void test_pool_matches_reference(void **state) {
    int checked = 0;
    for_grid(*state, visit_reference, &checked);
    assert_int_equal(checked, 288); /* the whole grid has outputs */
}

/* ---- gradients ------------------------------------------------------------------------------
 */
static void visit_gradcheck(cg_ctx *ctx, grid_case *c, void *u) {
    (void)u;
    cg_tensor *x = grid_input(ctx, c, 1, 2, 3, 4, 12);
    cg_set_requires_grad(x, true);
    cg_tensor *y = run_case(ctx, c, x, NULL);
    if (!y) { /* too small: the reference test covers it */
        cg_clear_error();
        return;
    }
    cg_assert_gradcheck(f_pool, c, 1, &x);
    cg_ctx_reset(ctx);
}

static void test_pool_gradcheck_grid(void **state) { for_grid(*state, visit_gradcheck, NULL); }

/* Batch > 1, and gradients of gradients: avg pooling's backward is its
 * transpose op, max pooling's a scatter whose gradient is a gather. */
static void test_pool_gradgradcheck(void **state) {
    cg_ctx *ctx = *state;
    for (int mx = 0; mx < 2; mx++)
        for (int sd = 1; sd <= 2; sd++)
            for (int b = 0; b < 2; b++) {
                grid_case c = {.sd = sd, .max = mx, .transposed = b, .square = true};
                c.o = opts(3, 2, 1);
                c.o.ceil_mode = b;
                c.o.count_include_pad = !b;
                cg_tensor *x = grid_input(ctx, &c, 2, 2, 3, 4, 13);
                cg_set_requires_grad(x, true);
                cg_assert_gradcheck(f_pool, &c, 1, &x);
                cg_assert_gradgradcheck(f_pool, &c, 1, &x);
                c.square = false;
                cg_assert_gradgradcheck(f_pool, &c, 1, &x);
                cg_ctx_reset(ctx);
            }
}

typedef struct adaptive_case {
    int64_t oh, ow;
    bool square;
} adaptive_case;
/* A caller-owned leaf [d1, d0, ...] that is the transpose of a [d0, d1, ...]
 * N(0, 1) base (free both). */
static cg_tensor *strided_leaf(uint64_t seed, int ndim, const int64_t *shape,
                               cg_tensor **base) {
    cg_rng rng = seeded(seed);
    *base = cg_randn(NULL, &rng, CG_F64, ndim, shape, 0, 1);
    cg_tensor *t = cg_transpose(NULL, *base, 0, 1);
    assert_int_equal(cg_set_requires_grad(t, true), CG_OK);
    return t;
}

static cg_tensor *f_adaptive(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const adaptive_case *a = u;
    cg_tensor *y = cg_adaptive_avg_pool2d(ctx, in[0], a->oh, a->ow);
    return a->square ? cg_square(ctx, y) : y;
}

static void test_pool_adaptive_gradcheck(void **state) {
    cg_ctx *ctx = *state;
    static const int64_t outs[][2] = {{3, 2}, {1, 1}, {5, 4}, {2, 5}};
    for (int k = 0; k < 4; k++) {
        adaptive_case a = {outs[k][0], outs[k][1], false};
        cg_tensor *x = seeded_leaf(20 + (uint64_t)k, CG_F64, CG_SHAPE(2, 1, 5, 4), 1), *base;
        cg_tensor *xt = strided_leaf(20, CG_SHAPE(1, 2, 5, 4), &base); /* [2, 1, 5, 4] */
        cg_assert_gradcheck(f_adaptive, &a, 1, &x);
        cg_assert_gradcheck(f_adaptive, &a, 1, &xt);
        a.square = true;
        cg_assert_gradgradcheck(f_adaptive, &a, 1, &x);
        cg_tensor *all[] = {x, xt, base};
        for (int j = 0; j < 3; j++) cg_tensor_free(all[j]);
        cg_ctx_reset(ctx);
    }
}

typedef struct pad_case {
    int npad;
    int64_t pad[6];
    cg_pad_mode mode;
    bool square;
} pad_case;
static cg_tensor *f_pad(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const pad_case *p = u;
    cg_tensor *y = cg_pad(ctx, in[0], p->npad, p->pad, p->mode, 0);
    return p->square ? cg_square(ctx, y) : y;
}

static void test_pool_pad_gradcheck(void **state) {
    cg_ctx *ctx = *state;
    static const pad_case cases[] = {
        {2, {1, 2}, CG_PAD_CONSTANT, 0},
        {4, {-1, 1, 0, 2}, CG_PAD_CONSTANT, 0},
        {6, {2, 0, -1, -1, 1, 0}, CG_PAD_CONSTANT, 0},
        {2, {2, 3}, CG_PAD_REFLECT, 0},
        {4, {2, 1, 1, 0}, CG_PAD_REFLECT, 0},
        {2, {-1, 2}, CG_PAD_REFLECT, 0},
        {2, {3, 1}, CG_PAD_REPLICATE, 0},
        {4, {1, 0, 2, 3}, CG_PAD_REPLICATE, 0},
        {4, {-1, 2, 1, -1}, CG_PAD_REPLICATE, 0},
        {6, {1, 1, 0, 1, 1, 0}, CG_PAD_REPLICATE, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        pad_case p = cases[k];
        bool four = p.npad == 6;
        cg_tensor *base, *in = four ? seeded_leaf(40 + k, CG_F64, CG_SHAPE(1, 2, 3, 4), 1)
                                    : seeded_leaf(30 + k, CG_F64, CG_SHAPE(2, 3, 4), 1);
        cg_tensor *xt = four ? strided_leaf(k, CG_SHAPE(2, 1, 3, 4), &base)
                             : strided_leaf(k, CG_SHAPE(3, 2, 4), &base);
        cg_assert_gradcheck(f_pad, &p, 1, &in);
        cg_assert_gradcheck(f_pad, &p, 1, &xt);
        cg_assert_gradgradcheck(f_pad, &p, 1, &in);
        p.square = true;
        cg_assert_gradgradcheck(f_pad, &p, 1, &in);
        cg_tensor *all[] = {in, xt, base};
        for (int j = 0; j < 3; j++) cg_tensor_free(all[j]);
        cg_ctx_reset(ctx);
    }
}

/* Max pooling's gradient lands on each window's argmax (and adds up where
 * windows share it); avg pooling's spreads g / divisor. */
static void test_pool_grad_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(1, 1, 4, 4), plane4), *g;
    cg_pool_opts o = opts(3, 1, 1);
    cg_tensor *y = cg_sum(ctx, cg_max_pool2d(ctx, x, &o, NULL), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &y, NULL, 1, &x, &g, 0), CG_OK);
    assert_values(g, (double[]){0, 1, 0, 0, 0, 0, 3, 0, 3, 0, 9, 0, 0, 0, 0, 0}, 16, 0);
    o = opts(2, 2, 0);
    o.ceil_mode = true;
    cg_tensor *x3 = leaf(CG_F64, CG_SHAPE(1, 3, 3), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    y = cg_sum(ctx, cg_avg_pool2d(ctx, x3, &o), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &y, NULL, 1, &x3, &g, 0), CG_OK);
    assert_values(g, (double[]){.25, .25, .5, .25, .25, .5, .5, .5, 1}, 9, 0);
    cg_tensor_free(x);
    cg_tensor_free(x3);
}

/* ---- threads -------------------------------------------------------------------------------
 */
typedef struct big_case {
    int op;
    const cg_tensor *r;
} big_case;

/* Op k of the thread test on x [4, 8, 40, 40]. */
static cg_tensor *big_op(cg_ctx *ctx, int k, const cg_tensor *x) {
    cg_pool_opts o = opts(3, 2, 1);
    o.ceil_mode = true;
    o.count_include_pad = false;
    switch (k) {
    case 0: return cg_max_pool2d(ctx, x, &o, NULL);
    case 1: return cg_avg_pool2d(ctx, x, &o);
    case 2: return cg_adaptive_avg_pool2d(ctx, x, 7, 5);
    case 3: return cg_pad(ctx, x, 4, (int64_t[]){3, 2, 1, 4}, CG_PAD_REFLECT, 0);
    case 4: return cg_pad(ctx, x, 4, (int64_t[]){3, 2, 1, 4}, CG_PAD_REPLICATE, 0);
    default: return cg_pad(ctx, x, 4, (int64_t[]){3, -2, 1, 4}, CG_PAD_CONSTANT, 0);
    }
}

/* y and d sum(y r) / dx of op k into out (f32 bits). */
static void big_run(cg_ctx *ctx, int threads, int k, cg_tensor *x, float *out, int64_t *n) {
    cg_set_num_threads(threads);
    cg_rng rng = seeded(50);
    cg_tensor *y = big_op(ctx, k, x), *g;
    cg_tensor *r = cg_randn(ctx, &rng, CG_F32, cg_ndim(y), cg_shape(y), 0, 1);
    cg_tensor *s = cg_sum(ctx, cg_mul(ctx, y, r), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &s, NULL, 1, &x, &g, 0), CG_OK);
    cg_copy_to_array(y, CG_F32, out);
    cg_copy_to_array(g, CG_F32, out + cg_numel(y));
    *n = cg_numel(y) + cg_numel(g);
}

static void test_pool_threads_bitwise(void **state) {
    cg_ctx *ctx = *state;
    int saved = cg_get_num_threads();
    enum { N = 4 * 8 * 48 * 48 };
    static float one[3 * N], two[3 * N];
    for (int k = 0; k < 6; k++) {
        cg_tensor *x = seeded_leaf(60, CG_F32, CG_SHAPE(4, 8, 40, 40), 1);
        int64_t n1, n2;
        big_run(ctx, 1, k, x, one, &n1);
        big_run(ctx, 2, k, x, two, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(one, two, sizeof(float) * (size_t)n1);
        cg_tensor_free(x);
        cg_ctx_reset(ctx);
    }
    cg_set_num_threads(saved);
}

/* ---- ownership and saved indices ------------------------------------------------------------
 */
static void test_pool_modified_indices_fail_backward(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(1, 1, 4, 4), plane4), *idx;
    cg_pool_opts o = cg_pool_defaults(2, 2);
    cg_tensor *s = cg_sum(ctx, cg_max_pool2d(ctx, x, &o, &idx), NULL, 0, false);
    cg_fill_(idx, 0);
    assert_int_equal(cg_backward(s), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "cg_max_pool2d");
    cg_tensor_free(x);
}

/* ctx NULL: results (indices too) are the caller's and all there is to free
 * (LeakSanitizer checks); a leaf requiring a gradient is refused. */
static void test_pool_ctx_null_no_leaks(void **state) {
    (void)state;
    cg_tensor *x = cg_ones(NULL, CG_F32, CG_SHAPE(1, 2, 4, 4)), *idx;
    cg_pool_opts o = cg_pool_defaults(2, 2);
    cg_tensor *y = cg_max_pool2d(NULL, x, &o, &idx);
    cg_tensor *out[] = {
        y,
        idx,
        cg_max_pool2d(NULL, x, &o, NULL),
        cg_avg_pool2d(NULL, x, &o),
        cg_adaptive_avg_pool2d(NULL, x, 3, 3),
        cg_pad(NULL, x, 2, (int64_t[]){1, -1}, CG_PAD_CONSTANT, 2),
        cg_pad(NULL, x, 4, (int64_t[]){1, 1, 2, 2}, CG_PAD_REFLECT, 0),
    };
    for (size_t k = 0; k < sizeof out / sizeof out[0]; k++) {
        assert_non_null(out[k]);
        cg_tensor_free(out[k]);
    }
    cg_tensor *w = cg_ones(NULL, CG_F64, CG_SHAPE(1, 2, 4, 4));
    cg_set_requires_grad(w, true);
    idx = w;
    assert_null(cg_max_pool2d(NULL, w, &o, &idx));
    assert_null(idx);
    assert_error(CG_ERR_STATE, "cg_max_pool2d");
    cg_tensor *w3 = cg_ones(NULL, CG_F64, CG_SHAPE(2, 4, 4));
    cg_set_requires_grad(w3, true);
    assert_null(cg_max_pool1d(NULL, w3, &o, NULL));
    assert_error(CG_ERR_STATE, "cg_max_pool1d");
    cg_tensor_free(w3);
    assert_null(cg_avg_pool2d(NULL, w, &o));
    assert_error(CG_ERR_STATE, "cg_avg_pool2d");
    assert_null(cg_pad(NULL, w, 4, (int64_t[]){1, 1, 0, 1}, CG_PAD_REPLICATE, 0));
    assert_error(CG_ERR_STATE, "cg_pad");
    cg_tensor_free(x);
    cg_tensor_free(w);
}

/* ---- errors
 * ---------------------------------------------------------------------------------- */
/* Every error with ctx NULL and heap inputs: nothing may be left behind. */
static void test_pool_errors(void **state) {
    (void)state;
    cg_tensor *x = cg_zeros(NULL, CG_F32, CG_SHAPE(1, 1, 2, 2)), *idx = x;
    cg_tensor *v = cg_zeros(NULL, CG_F32, CG_SHAPE(2, 3));
    cg_tensor *e = cg_zeros(NULL, CG_F32, CG_SHAPE(1, 0, 5, 5));
    cg_tensor *i = cg_zeros(NULL, CG_I64, CG_SHAPE(1, 1, 4, 4));
    cg_pool_opts o = cg_pool_defaults(3, 3);
    assert_null(cg_max_pool2d(NULL, x, &o, &idx));
    assert_null(idx);
    assert_error(CG_ERR_SHAPE, "cg_max_pool2d: input [1,1,2,2] is too small for kernel 3x3");
    o = opts(2, 1, 1);
    o.dilation[0] = 4;
    assert_null(cg_max_pool2d(NULL, x, &o, NULL));
    assert_error(CG_ERR_SHAPE, "too small for kernel 2x2 (padding 1x1, dilation 4x1)");
    cg_pool_opts o5 = opts(5, 1, 1);
    assert_null(cg_avg_pool2d(NULL, x, &o5));
    assert_error(CG_ERR_SHAPE, "cg_avg_pool2d: input [1,1,2,2] is too small for kernel 5x5 "
                               "(padding 1x1)");
    assert_null(cg_max_pool2d(NULL, v, &o, NULL));
    assert_error(CG_ERR_SHAPE, "cg_max_pool2d: input [2,3] must be [N, C, H, W] or [C, H, W]");
    assert_null(cg_max_pool1d(NULL, x, &o, NULL));
    assert_error(CG_ERR_SHAPE, "cg_max_pool1d: input [1,1,2,2] must be [N, C, L] or [C, L]");
    assert_null(cg_avg_pool2d(NULL, e, &o));
    assert_error(CG_ERR_SHAPE, "cg_avg_pool2d: input [1,0,5,5] has an empty dim (only N");
    assert_null(cg_avg_pool2d(NULL, i, &o));
    assert_error(CG_ERR_DTYPE, "cg_avg_pool2d: input is i64, needs f32 or f64");
    o = cg_pool_defaults(0, 2);
    assert_null(cg_avg_pool2d(NULL, x, &o));
    assert_error(CG_ERR_ARG, "cg_avg_pool2d: kernel 0x2 must be in [1, 2^30]");
    o = cg_pool_defaults(2, 2);
    o.stride[1] = -1;
    assert_null(cg_max_pool2d(NULL, x, &o, NULL));
    assert_error(CG_ERR_ARG, "cg_max_pool2d: stride 0x-1 must be in [0, 2^30]");
    o = cg_pool_defaults(3, 2);
    o.padding[0] = 2;
    assert_null(cg_max_pool2d(NULL, i, &o, NULL));
    assert_error(CG_ERR_ARG, "cg_max_pool2d: padding 2x0 must be between 0 and half the kernel "
                             "3x2");
    o.padding[0] = -1;
    assert_null(cg_avg_pool1d(NULL, v, &o));
    assert_error(CG_ERR_ARG,
                 "cg_avg_pool1d: padding -1 must be between 0 and half the kernel 3");
    o = cg_pool_defaults(2, 2);
    o.dilation[1] = 0;
    assert_null(cg_max_pool2d(NULL, x, &o, NULL));
    assert_error(CG_ERR_ARG, "cg_max_pool2d: dilation 1x0 must be in [1, 2^30]");
    cg_tensor *a = cg_avg_pool2d(NULL, x, &o); /* avg pooling has no dilation */
    assert_non_null(a);
    cg_tensor_free(a);
    assert_null(cg_avg_pool1d(NULL, v, NULL));
    assert_error(CG_ERR_ARG, "cg_avg_pool1d: opts is NULL");
    assert_null(cg_max_pool2d(NULL, NULL, &o, &idx));
    assert_null(idx);
    assert_error(CG_ERR_ARG, "cg_max_pool2d: tensor is NULL");
    /* adaptive */
    assert_null(cg_adaptive_avg_pool2d(NULL, x, -1, 2));
    assert_error(CG_ERR_ARG, "cg_adaptive_avg_pool2d: output size -1x2 must be >= 0");
    assert_null(cg_adaptive_avg_pool2d(NULL, v, 1, 1));
    assert_error(CG_ERR_SHAPE, "cg_adaptive_avg_pool2d: input [2,3] must be [N, C, H, W]");
    assert_null(cg_adaptive_avg_pool2d(NULL, i, 1, 1));
    assert_error(CG_ERR_DTYPE, "cg_adaptive_avg_pool2d: input is i64");
    assert_null(cg_adaptive_avg_pool2d(NULL, NULL, 1, 1));
    assert_error(CG_ERR_ARG, "cg_adaptive_avg_pool2d: tensor is NULL");
    cg_tensor_free(x);
    cg_tensor_free(v);
    cg_tensor_free(e);
    cg_tensor_free(i);
}

static void test_pool_pad_errors(void **state) {
    (void)state;
    cg_tensor *x = cg_zeros(NULL, CG_F64, CG_SHAPE(1, 2, 3)),
              *r = cg_zeros(NULL, CG_F64, CG_SHAPE(6));
    cg_tensor *e = cg_zeros(NULL, CG_F64, CG_SHAPE(2, 0));
    const int64_t p[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert_null(cg_pad(NULL, x, 3, p, CG_PAD_CONSTANT, 0));
    assert_error(CG_ERR_ARG, "cg_pad: npad 3 must be even and >= 0");
    assert_null(cg_pad(NULL, x, -2, p, CG_PAD_CONSTANT, 0));
    assert_error(CG_ERR_ARG, "cg_pad: npad -2 must be even");
    assert_null(cg_pad(NULL, x, 2, NULL, CG_PAD_CONSTANT, 0));
    assert_error(CG_ERR_ARG, "cg_pad: pad is NULL (npad 2)");
    /* sizes that would overflow the output's arithmetic (a fuzzer's INT64_MAX) */
    assert_null(cg_pad(NULL, x, 2, (const int64_t[]){INT64_MAX, 1}, CG_PAD_CONSTANT, 0));
    assert_error(CG_ERR_SHAPE, "cg_pad: padding (9223372036854775807, 1) of dim 2: each size");
    assert_null(cg_pad(NULL, x, 2, (const int64_t[]){1, INT64_MIN}, CG_PAD_REPLICATE, 0));
    assert_error(CG_ERR_SHAPE, "must be within +-2^31");
    assert_null(cg_pad(NULL, x, 8, p, CG_PAD_CONSTANT, 0));
    assert_error(CG_ERR_SHAPE, "cg_pad: 4 padding pairs for input [1,2,3] of rank 3");
    assert_null(cg_pad(NULL, x, 2, p, (cg_pad_mode)7, 0));
    assert_error(CG_ERR_ARG, "cg_pad: unknown mode 7");
    assert_null(cg_pad(NULL, x, 2, p, CG_PAD_REFLECT, 1));
    assert_error(CG_ERR_ARG, "cg_pad: reflect padding takes no value (got 1)");
    assert_null(cg_pad(NULL, r, 2, p, CG_PAD_REPLICATE, 0));
    assert_error(CG_ERR_SHAPE, "cg_pad: replicate padding takes 2, 4 or 6 sizes for an input "
                               "of rank npad / 2 + 1 or + 2, got 2 for [6]");
    assert_null(cg_pad(NULL, x, 6, p, CG_PAD_REFLECT, 0));
    assert_error(CG_ERR_SHAPE, "got 6 for [1,2,3]");
    assert_null(cg_pad(NULL, x, 2, (int64_t[]){3, 0}, CG_PAD_REFLECT, 0));
    assert_error(CG_ERR_SHAPE, "cg_pad: padding (3, 0) of dim 2 of input [1,2,3] must be "
                               "smaller than the dim");
    assert_null(cg_pad(NULL, x, 2, (int64_t[]){0, -3}, CG_PAD_REFLECT, 0));
    assert_error(CG_ERR_SHAPE, "cg_pad: padding (0, -3) of dim 2");
    assert_null(cg_pad(NULL, x, 2, (int64_t[]){-4, 1}, CG_PAD_CONSTANT, 0));
    assert_error(CG_ERR_SHAPE, "cg_pad: padding (-4, 1) of dim 2 of input [1,2,3] crops more "
                               "than the dim holds");
    assert_null(cg_pad(NULL, x, 2, (int64_t[]){-2, -1}, CG_PAD_REPLICATE, 0));
    assert_error(CG_ERR_SHAPE, "cg_pad: padding (-2, -1) of dim 2 of input [1,2,3] leaves "
                               "the dim empty");
    assert_null(cg_pad(NULL, e, 2, p, CG_PAD_REPLICATE, 0));
    assert_error(CG_ERR_SHAPE,
                 "cg_pad: padding (1, 1) of dim 1 of input [2,0] pads an empty dim");
    assert_null(cg_pad(NULL, NULL, 2, p, CG_PAD_CONSTANT, 0));
    assert_error(CG_ERR_ARG, "cg_pad: tensor is NULL");
    cg_tensor_free(x);
    cg_tensor_free(r);
    cg_tensor_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_max2d_values),
        cmocka_unit_test(test_pool_max2x2_vector_path),
        cmocka_unit_test(test_pool_max2x2_scatter_path),
        cmocka_unit_test(test_pool_max2x2_window_codes),
        cmocka_unit_test(test_pool_relu_then_max_pool_backward_bits),
        cmocka_unit_test(test_pool_avg2d_values),
        cmocka_unit_test(test_pool_ceil_mode_values),
        cmocka_unit_test(test_pool_1d_values),
        cmocka_unit_test(test_pool_adaptive_values),
        cmocka_unit_test(test_pool_pad_values),
        cmocka_unit_test(test_pool_dtypes),
        cmocka_unit_test(test_pool_unbatched_and_strided),
        cmocka_unit_test(test_pool_empty_batch),
        cmocka_unit_test(test_pool_matches_reference),
        cmocka_unit_test(test_pool_gradcheck_grid),
        cmocka_unit_test(test_pool_gradgradcheck),
        cmocka_unit_test(test_pool_adaptive_gradcheck),
        cmocka_unit_test(test_pool_pad_gradcheck),
        cmocka_unit_test(test_pool_grad_values),
        cmocka_unit_test(test_pool_threads_bitwise),
        cmocka_unit_test(test_pool_modified_indices_fail_backward),
        cmocka_unit_test(test_pool_ctx_null_no_leaks),
        cmocka_unit_test(test_pool_errors),
        cmocka_unit_test(test_pool_pad_errors),
    };
    return cmocka_run_group_tests_name("pool", tests, ctx_setup, ctx_teardown);
}
