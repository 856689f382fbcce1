/* Tests for tensor/reduce.c: cgi_reduced_shape and the cgi_reduce kernels,
 * by hand on small tensors and against a naive reference that walks every
 * index with cg_get. Test data are quarter-integers, so float sums are exact
 * in any order and the reference can be compared bit for bit, and small
 * ranges give many ties (argmax must pick the first). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tensor/internal.h"
#include "cgrad.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define SUM    CGI_REDUCE_SUM
#define MEAN   CGI_REDUCE_MEAN
#define MAX    CGI_REDUCE_MAX
#define MIN    CGI_REDUCE_MIN
#define ARGMAX CGI_REDUCE_ARGMAX
#define ARGMIN CGI_REDUCE_ARGMIN

static const cgi_reduce_op OPS[] = {SUM, MEAN, MAX, MIN, ARGMAX, ARGMIN};
static const cg_dtype DTYPES[] = {CG_F32, CG_F64, CG_I64};
#define NOPS    6
#define NDTYPES 3

/* ---- helpers ------------------------------------------------------------- */

static bool is_arg(cgi_reduce_op op) { return op == ARGMAX || op == ARGMIN; }

static uint64_t lcg(uint64_t *s) {
    *s = *s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return *s >> 33;
}

/* A tensor of values in -range..range: quarters for floats, ints for i64. */
static cg_tensor *make_in(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape,
                          uint64_t seed, int range) {
    int64_t n = cgi_numel(ndim, shape);
    void *buf = malloc((size_t)(n > 0 ? n : 1) * 8);
    assert_non_null(buf);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = (int64_t)(lcg(&seed) % (uint64_t)(2 * range + 1)) - range;
        if (dt == CG_F32) ((float *)buf)[i] = (float)k / 4;
        if (dt == CG_F64) ((double *)buf)[i] = (double)k / 4;
        if (dt == CG_I64) ((int64_t *)buf)[i] = k;
    }
    cg_tensor *t = cg_from_array(ctx, dt, ndim, shape, buf);
    free(buf);
    assert_non_null(t);
    return t;
}

static cg_tensor *make(cg_dtype dt, int ndim, const int64_t *shape, uint64_t seed) {
    return make_in(NULL, dt, ndim, shape, seed, 8);
}

/* out = op(x) over mask, in a fresh caller-owned (or ctx) tensor. */
static cg_tensor *reduce_in(cg_ctx *ctx, cgi_reduce_op op, const cg_tensor *x, unsigned mask,
                            bool keepdim) {
    int n;
    int64_t shape[CG_MAX_DIMS];
    cgi_reduced_shape(x->ndim, x->shape, mask, keepdim, &n, shape);
    cg_tensor *out = cg_empty(ctx, is_arg(op) ? CG_I64 : x->dtype, n, shape);
    assert_non_null(out);
    cgi_reduce(op, x, mask, out);
    return out;
}

static cg_tensor *reduce(cgi_reduce_op op, const cg_tensor *x, unsigned mask) {
    return reduce_in(NULL, op, x, mask, false);
}

/* Element i of a contiguous tensor, as double. */
static double at(const cg_tensor *t, int64_t i) {
    const char *p = cgi_ptr(t);
    switch (t->dtype) {
    case CG_F32: return ((const float *)p)[i];
    case CG_F64: return ((const double *)p)[i];
    case CG_I64: return (double)((const int64_t *)p)[i];
    }
    return NAN;
}

static int64_t at_i64(const cg_tensor *t, int64_t i) {
    assert_int_equal(t->dtype, CG_I64);
    return ((const int64_t *)cgi_ptr(t))[i];
}

/* ---- the reference ------------------------------------------------------- */

static bool ref_better(double v, double b, bool mx) {
    return (mx ? v > b : v < b) || (isnan(v) && !isnan(b));
}

/* Flat output index (kept dims, C order) and reduced index of x's idx. */
static void ref_split(const cg_tensor *x, unsigned mask, const int64_t *idx, int64_t *o,
                      int64_t *r) {
    *o = *r = 0;
    for (int d = 0; d < x->ndim; d++) {
        if ((mask >> d) & 1u)
            *r = *r * x->shape[d] + idx[d];
        else
            *o = *o * x->shape[d] + idx[d];
    }
}

static bool ref_next(const cg_tensor *x, int64_t *idx) {
    for (int d = x->ndim - 1; d >= 0; d--) {
        if (++idx[d] < x->shape[d]) return true;
        idx[d] = 0;
    }
    return false;
}

/* val[o] (sums, means, extremes) and pos[o] (arg index) of op over mask,
 * visiting x in C order, so the first extreme of each output is kept. */
static void reference(cgi_reduce_op op, const cg_tensor *x, unsigned mask, double *val,
                      int64_t *pos, int64_t nout, int64_t nred) {
    bool ext = op != SUM && op != MEAN, mx = op == MAX || op == ARGMAX;
    for (int64_t o = 0; o < nout; o++) {
        val[o] = 0;
        pos[o] = -1;
    }
    int64_t idx[CG_MAX_DIMS] = {0};
    bool more = cg_numel(x) > 0;
    for (; more; more = ref_next(x, idx)) {
        int64_t o, r;
        double v;
        ref_split(x, mask, idx, &o, &r);
        assert_int_equal(cg_get(x, idx, &v), CG_OK);
        if (!ext) {
            val[o] += v;
        } else if (pos[o] < 0 || ref_better(v, val[o], mx)) {
            val[o] = v;
            pos[o] = r;
        }
    }
    for (int64_t o = 0; o < nout && op == MEAN; o++)
        val[o] = nred ? val[o] / (double)nred : NAN;
}

static void assert_same(double got, double want) {
    if (isnan(want)) {
        assert_true(isnan(got));
        return;
    }
    assert_true(got == want);
}

/* got for one output against the reference value, rounded like out's dtype. */
static void check_value(const cg_tensor *out, int64_t o, double want) {
    if (out->dtype == CG_F32) want = (float)want;
    if (out->dtype == CG_I64 && !isnan(want)) want = trunc(want);
    assert_same(at(out, o), want);
}

/* op over mask of x (any layout) equals the reference, with or without
 * keepdim. MEAN of i64 is not a supported combination and is skipped. */
static void check_op(cgi_reduce_op op, const cg_tensor *x, unsigned mask) {
    if (op == MEAN && x->dtype == CG_I64) return;
    cg_tensor *out = reduce(op, x, mask);
    cg_tensor *keep = reduce_in(NULL, op, x, mask, true);
    int64_t nout = cg_numel(out), nred = 1;
    for (int d = 0; d < x->ndim; d++)
        if ((mask >> d) & 1u) nred *= x->shape[d];
    double *val = malloc((size_t)(nout ? nout : 1) * sizeof *val);
    int64_t *pos = malloc((size_t)(nout ? nout : 1) * sizeof *pos);
    assert_non_null(val);
    assert_non_null(pos);
    reference(op, x, mask, val, pos, nout, nred);
    assert_int_equal(cg_numel(keep), nout);
    for (int64_t o = 0; o < nout; o++) {
        if (is_arg(op)) {
            assert_int_equal(at_i64(out, o), pos[o]);
        } else {
            check_value(out, o, val[o]);
        }
    }
    if (nout > 0) /* keepdim changes the shape only */
        assert_memory_equal(cgi_ptr(out), cgi_ptr(keep),
                            (size_t)nout * cg_dtype_size(out->dtype));
    free(val);
    free(pos);
    cg_tensor_free(out);
    cg_tensor_free(keep);
}

/* Every op over every mask of x. */
static void check_all_masks(const cg_tensor *x) {
    for (unsigned mask = 0; mask < (1u << x->ndim); mask++)
        for (int k = 0; k < NOPS; k++) check_op(OPS[k], x, mask);
}

/* ---- shapes -------------------------------------------------------------- */

static void test_reduce_shape_keepdim_and_drop(void **state) {
    (void)state;
    const int64_t shape[3] = {2, 3, 4};
    int64_t out[CG_MAX_DIMS];
    int n;
    cgi_reduced_shape(3, shape, 0x5, false, &n, out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 3);
    cgi_reduced_shape(3, shape, 0x5, true, &n, out);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 3);
    assert_int_equal(out[2], 1);
    cgi_reduced_shape(3, shape, 0x7, false, &n, out);
    assert_int_equal(n, 0);
    cgi_reduced_shape(3, shape, 0x7, true, &n, out);
    assert_int_equal(n, 3);
    assert_int_equal(out[0] * out[1] * out[2], 1);
    cgi_reduced_shape(3, shape, 0, false, &n, out);
    assert_int_equal(n, 3);
    assert_memory_equal(out, shape, sizeof shape);
    cgi_reduced_shape(0, shape, 0, true, &n, out);
    assert_int_equal(n, 0);
}

/* ---- by hand ------------------------------------------------------------- */

static void test_reduce_hand_values(void **state) {
    (void)state;
    /* [[1, 5, 2],
     *  [7, 3, 7]] */
    const float data[6] = {1, 5, 2, 7, 3, 7};
    cg_tensor *x = cg_from_array(NULL, CG_F32, CG_SHAPE(2, 3), data);
    assert_non_null(x);
    struct {
        cgi_reduce_op op;
        unsigned mask;
        double want[3];
    } cases[] = {
        {SUM, 1, {8, 8, 9}},
        {SUM, 2, {8, 17}},
        {SUM, 3, {25}},
        {MEAN, 1, {4, 4, 4.5}},
        {MEAN, 2, {8.0 / 3, 17.0 / 3}},
        {MEAN, 3, {25.0 / 6}},
        {MAX, 1, {7, 5, 7}},
        {MAX, 2, {5, 7}},
        {MAX, 3, {7}},
        {MIN, 1, {1, 3, 2}},
        {MIN, 2, {1, 3}},
        {MIN, 3, {1}},
        {ARGMAX, 1, {1, 0, 1}},
        {ARGMAX, 2, {1, 0}},
        {ARGMAX, 3, {3}},
        {ARGMIN, 1, {0, 1, 0}},
        {ARGMIN, 2, {0, 1}},
        {ARGMIN, 3, {0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cg_tensor *out = reduce(cases[c].op, x, cases[c].mask);
        for (int64_t o = 0; o < cg_numel(out); o++)
            assert_same(at(out, o),
                        is_arg(cases[c].op) ? cases[c].want[o] : (float)cases[c].want[o]);
        cg_tensor_free(out);
    }
    cg_tensor_free(x);
}

static void test_reduce_ties_first(void **state) {
    (void)state;
    /* rows: [3, 1, 3, 1], columns: [[3, 3], [3, 3]] -> index 0 */
    const double data[8] = {3, 1, 3, 1, 2, 2, 2, 2};
    cg_tensor *x = cg_from_array(NULL, CG_F64, CG_SHAPE(2, 4), data);
    cg_tensor *amax = reduce(ARGMAX, x, 2), *amin = reduce(ARGMIN, x, 2);
    assert_int_equal(at_i64(amax, 0), 0);
    assert_int_equal(at_i64(amax, 1), 0);
    assert_int_equal(at_i64(amin, 0), 1);
    assert_int_equal(at_i64(amin, 1), 0);
    cg_tensor_free(amax);
    cg_tensor_free(amin);
    amax = reduce(ARGMAX, x, 1); /* over rows: 3 > 2 wins at 0, ties of 2 */
    amin = reduce(ARGMIN, x, 1);
    const int64_t want_max[4] = {0, 1, 0, 1}, want_min[4] = {1, 0, 1, 0};
    for (int j = 0; j < 4; j++) {
        assert_int_equal(at_i64(amax, j), want_max[j]);
        assert_int_equal(at_i64(amin, j), want_min[j]);
    }
    cg_tensor_free(amax);
    cg_tensor_free(amin);
    cg_tensor_free(x);
}

static void test_reduce_nan_is_the_extreme(void **state) {
    (void)state;
    /* [[1, NaN, 3, NaN],
     *  [2, 5,   4, 1  ]] */
    const float data[8] = {1, NAN, 3, NAN, 2, 5, 4, 1};
    cg_tensor *x = cg_from_array(NULL, CG_F32, CG_SHAPE(2, 4), data);
    cg_tensor *mx = reduce(MAX, x, 2), *mn = reduce(MIN, x, 2);
    cg_tensor *amx = reduce(ARGMAX, x, 2), *amn = reduce(ARGMIN, x, 2);
    cg_tensor *sum = reduce(SUM, x, 2), *cmx = reduce(ARGMAX, x, 1);
    assert_true(isnan(at(mx, 0)));
    assert_true(at(mx, 1) == 5);
    assert_true(isnan(at(mn, 0)));
    assert_true(at(mn, 1) == 1);
    assert_int_equal(at_i64(amx, 0), 1);
    assert_int_equal(at_i64(amn, 0), 1);
    assert_int_equal(at_i64(amx, 1), 1);
    assert_int_equal(at_i64(amn, 1), 3);
    assert_true(isnan(at(sum, 0)));
    assert_true(at(sum, 1) == 12);
    const int64_t want_cols[4] = {1, 0, 1, 0};
    for (int j = 0; j < 4; j++) assert_int_equal(at_i64(cmx, j), want_cols[j]);
    cg_tensor *all[6] = {mx, mn, amx, amn, sum, cmx};
    for (int k = 0; k < 6; k++) cg_tensor_free(all[k]);
    cg_tensor_free(x);
}

/* Long runs (>= 32 elements) take the lanes-then-scan path for extremes. */
static void test_reduce_nan_in_long_runs(void **state) {
    (void)state;
    double data[2 * 100];
    for (int i = 0; i < 200; i++) data[i] = (double)(i % 7);
    data[40] = NAN;
    data[70] = NAN;
    data[100 + 90] = 9; /* row 1: the single maximum */
    cg_tensor *x = cg_from_array(NULL, CG_F64, CG_SHAPE(2, 100), data);
    cg_tensor *mx = reduce(MAX, x, 2), *am = reduce(ARGMAX, x, 2);
    cg_tensor *an = reduce(ARGMIN, x, 2);
    cg_tensor *all = reduce(ARGMAX, x, 3);
    assert_true(isnan(at(mx, 0)));
    assert_true(at(mx, 1) == 9);
    assert_int_equal(at_i64(am, 0), 40);
    assert_int_equal(at_i64(an, 0), 40);
    assert_int_equal(at_i64(am, 1), 90);
    assert_int_equal(at_i64(an, 1), 5); /* (100 + 5) % 7 == 0 */
    assert_int_equal(at_i64(all, 0), 40);
    cg_tensor *ts[5] = {x, mx, am, an, all};
    for (int k = 0; k < 5; k++) cg_tensor_free(ts[k]);
}

/* ---- against the reference ----------------------------------------------- */

static void test_reduce_each_single_axis(void **state) {
    (void)state;
    for (int k = 0; k < NDTYPES; k++) {
        cg_tensor *x = make(DTYPES[k], CG_SHAPE(3, 5, 4, 6), 11 + (uint64_t)k);
        for (int axis = 0; axis < 4; axis++)
            for (int op = 0; op < NOPS; op++) check_op(OPS[op], x, 1u << axis);
        cg_tensor_free(x);
    }
}

static void test_reduce_every_axis_set(void **state) {
    (void)state;
    for (int k = 0; k < NDTYPES; k++) {
        cg_tensor *x = make(DTYPES[k], CG_SHAPE(4, 3, 1, 5), 21 + (uint64_t)k);
        check_all_masks(x);
        cg_tensor_free(x);
    }
}

static void test_reduce_rank8_permuted(void **state) {
    (void)state;
    cg_tensor *x = make(CG_F64, CG_SHAPE(2, 3, 1, 2, 2, 3, 2, 2), 5);
    const int rev[8] = {7, 6, 5, 4, 3, 2, 1, 0}, mix[8] = {3, 0, 7, 1, 5, 2, 6, 4};
    cg_tensor *r = cg_permute(NULL, x, rev), *m = cg_permute(NULL, x, mix);
    assert_non_null(r);
    assert_non_null(m);
    check_all_masks(x);
    check_all_masks(r);
    check_all_masks(m);
    cg_tensor_free(r);
    cg_tensor_free(m);
    cg_tensor_free(x);
}

static void test_reduce_transposed(void **state) {
    (void)state;
    for (int k = 0; k < NDTYPES; k++) {
        cg_tensor *x = make(DTYPES[k], CG_SHAPE(6, 7, 5), 31 + (uint64_t)k);
        cg_tensor *t02 = cg_transpose(NULL, x, 0, 2), *t12 = cg_transpose(NULL, x, 1, 2);
        assert_non_null(t02);
        assert_non_null(t12);
        check_all_masks(t02);
        check_all_masks(t12);
        cg_tensor_free(t02);
        cg_tensor_free(t12);
        cg_tensor_free(x);
    }
}

/* Runs of >= 32 elements over dims that do not merge (a narrowed view). */
static void test_reduce_long_runs(void **state) {
    (void)state;
    for (int k = 0; k < NDTYPES; k++) {
        cg_tensor *x = make(DTYPES[k], CG_SHAPE(3, 37, 45), 101 + (uint64_t)k);
        cg_tensor *v = cg_narrow(NULL, x, 2, 2, 40);
        assert_non_null(v);
        check_all_masks(x);
        check_all_masks(v);
        cg_tensor_free(v);
        cg_tensor_free(x);
    }
}

static void test_reduce_sliced_with_step_and_offset(void **state) {
    (void)state;
    for (int k = 0; k < NDTYPES; k++) {
        cg_tensor *x = make(DTYPES[k], CG_SHAPE(7, 9, 6), 41 + (uint64_t)k);
        cg_tensor *a = cg_slice(NULL, x, 1, 1, CG_END, 2); /* [7,4,6], offset 6 */
        cg_tensor *b = cg_slice(NULL, a, 2, 1, 5, 3);      /* [7,4,2], step 3 */
        cg_tensor *c = cg_narrow(NULL, x, 0, 2, 4);        /* [4,9,6], offset 108 */
        cg_tensor *d = cg_select(NULL, x, 2, 5);           /* [7,9], offset 5 */
        assert_non_null(b);
        assert_non_null(c);
        assert_non_null(d);
        assert_true(cg_offset(a) > 0 && cg_offset(c) > 0 && cg_offset(d) > 0);
        check_all_masks(a);
        check_all_masks(b);
        check_all_masks(c);
        check_all_masks(d);
        cg_tensor *views[4] = {a, b, c, d};
        for (int v = 0; v < 4; v++) cg_tensor_free(views[v]);
        cg_tensor_free(x);
    }
}

static void test_reduce_broadcast_stride0(void **state) {
    (void)state;
    for (int k = 0; k < NDTYPES; k++) {
        cg_tensor *x = make(DTYPES[k], CG_SHAPE(3, 1, 4), 51 + (uint64_t)k);
        cg_tensor *row = make(DTYPES[k], CG_SHAPE(1, 5), 61 + (uint64_t)k);
        cg_tensor *e = cg_expand(NULL, x, CG_SHAPE(2, 3, 5, 4));
        cg_tensor *f = cg_expand(NULL, row, CG_SHAPE(6, 5));
        assert_non_null(e);
        assert_non_null(f);
        assert_int_equal(cg_strides(e)[2], 0);
        check_all_masks(e);
        check_all_masks(f);
        cg_tensor *s = reduce(SUM, f, 1); /* 6 equal rows */
        for (int j = 0; j < 5; j++) {
            double v;
            assert_int_equal(cg_get(row, (const int64_t[]){0, j}, &v), CG_OK);
            assert_same(at(s, j), 6 * v);
        }
        cg_tensor_free(s);
        cg_tensor_free(e);
        cg_tensor_free(f);
        cg_tensor_free(x);
        cg_tensor_free(row);
    }
}

static void test_reduce_rank0(void **state) {
    (void)state;
    for (int k = 0; k < NDTYPES; k++) {
        cg_tensor *x = cg_scalar(NULL, DTYPES[k], -3);
        for (int op = 0; op < NOPS; op++) {
            for (unsigned mask = 0; mask < 2; mask++) {
                if (OPS[op] == MEAN && DTYPES[k] == CG_I64) continue;
                cg_tensor *out = reduce(OPS[op], x, mask);
                assert_int_equal(cg_ndim(out), 0);
                assert_same(at(out, 0), is_arg(OPS[op]) ? 0 : -3);
                cg_tensor_free(out);
            }
        }
        cg_tensor_free(x);
    }
}

static void test_reduce_mask_zero_copies(void **state) {
    (void)state;
    cg_tensor *x = make(CG_F32, CG_SHAPE(4, 6), 71);
    cg_tensor *t = cg_transpose(NULL, x, 0, 1);
    cg_tensor *out = reduce(SUM, t, 0), *ref = cg_clone(NULL, t);
    assert_non_null(ref);
    assert_int_equal(cg_numel(out), 24);
    assert_memory_equal(cgi_ptr(out), cgi_ptr(ref), 24 * sizeof(float));
    cg_tensor_free(out);
    out = reduce(ARGMAX, t, 0);
    for (int64_t i = 0; i < 24; i++) assert_int_equal(at_i64(out, i), 0);
    cg_tensor_free(out);
    cg_tensor_free(ref);
    cg_tensor_free(t);
    cg_tensor_free(x);
}

static void test_reduce_zero_size_dims(void **state) {
    (void)state;
    cg_tensor *x = cg_zeros(NULL, CG_F32, CG_SHAPE(3, 0, 2));
    cg_tensor *s = reduce(SUM, x, 2), *m = reduce(MEAN, x, 2), *all = reduce(SUM, x, 7);
    assert_int_equal(cg_numel(s), 6);
    for (int64_t i = 0; i < 6; i++) {
        assert_true(at(s, i) == 0);
        assert_true(isnan(at(m, i)));
    }
    assert_true(at(all, 0) == 0);
    cg_tensor *kept_empty = reduce(MAX, x, 1); /* output [0,2]: nothing to do */
    assert_int_equal(cg_numel(kept_empty), 0);
    /* rejected by the caller, but must not crash: documented fill values */
    cg_tensor *amax = reduce(ARGMAX, x, 2), *mx = reduce(MAX, x, 2);
    assert_int_equal(at_i64(amax, 0), -1);
    assert_true(isnan(at(mx, 0)));
    cg_tensor *xi = cg_zeros(NULL, CG_I64, CG_SHAPE(0, 4));
    cg_tensor *si = reduce(SUM, xi, 1);
    for (int64_t i = 0; i < 4; i++) assert_int_equal(at_i64(si, i), 0);
    cg_tensor *all_t[8] = {x, s, m, all, kept_empty, amax, mx, xi};
    for (int k = 0; k < 8; k++) cg_tensor_free(all_t[k]);
    cg_tensor_free(si);
}

static void test_reduce_i64_exact(void **state) {
    (void)state;
    const int64_t big = INT64_C(1) << 58; /* sums need more than 53 bits */
    const int64_t data[6] = {big, big, -2 * big + 5, 4 * big + 1, 4 * big + 3, 4 * big + 2};
    cg_tensor *x = cg_from_array(NULL, CG_I64, CG_SHAPE(2, 3), data);
    cg_tensor *s = reduce(SUM, x, 2), *mx = reduce(MAX, x, 2), *am = reduce(ARGMAX, x, 2);
    cg_tensor *mn = reduce(MIN, x, 3);
    assert_int_equal(at_i64(s, 0), 5);
    assert_int_equal(at_i64(s, 1), 12 * big + 6);
    assert_int_equal(at_i64(mx, 0), big);
    assert_int_equal(at_i64(mx, 1), 4 * big + 3);
    assert_int_equal(at_i64(am, 0), 0);
    assert_int_equal(at_i64(am, 1), 1);
    assert_int_equal(at_i64(mn, 0), -2 * big + 5);
    cg_tensor *all[5] = {x, s, mx, am, mn};
    for (int k = 0; k < 5; k++) cg_tensor_free(all[k]);
}

static void test_reduce_in_context(void **state) {
    (void)state;
    cg_ctx *ctx = cg_ctx_new();
    assert_non_null(ctx);
    cg_tensor *x = make_in(ctx, CG_F32, CG_SHAPE(5, 8), 81, 8);
    cg_tensor *t = cg_transpose(ctx, x, 0, 1);
    cg_tensor *s = reduce_in(ctx, SUM, t, 1, true); /* [1,5] */
    assert_int_equal(cg_ndim(s), 2);
    for (int64_t i = 0; i < 5; i++) {
        double want = 0, v;
        for (int64_t j = 0; j < 8; j++) {
            assert_int_equal(cg_get(x, (const int64_t[]){i, j}, &v), CG_OK);
            want += v;
        }
        assert_same(at(s, i), (float)want);
    }
    check_all_masks(t);
    cg_ctx_free(ctx);
}

/* ---- large inputs: the vector, rows and chunked paths -------------------- */

static void test_reduce_large_sum_is_exact(void **state) {
    (void)state;
    cg_tensor *ones = cg_ones(NULL, CG_F32, CG_SHAPE(1000000));
    cg_tensor *tenth = cg_full(NULL, CG_F32, CG_SHAPE(1000, 1000), 0.1);
    cg_tensor *s = reduce(SUM, ones, 1), *m = reduce(MEAN, ones, 1);
    cg_tensor *st = reduce(SUM, tenth, 3), *mt = reduce(MEAN, tenth, 3);
    cg_tensor *rows = reduce(SUM, tenth, 1), *cols = reduce(SUM, tenth, 2);
    assert_true(at(s, 0) == 1e6);
    assert_true(at(m, 0) == 1.0);
    /* a float accumulator drifts by ~1e3 here; the double one is exact */
    assert_true(at(st, 0) == (float)(1e6 * (double)0.1f));
    assert_true(at(mt, 0) == 0.1f);
    for (int64_t j = 0; j < 1000; j++) {
        assert_true(at(rows, j) == (float)(1e3 * (double)0.1f));
        assert_true(at(cols, j) == (float)(1e3 * (double)0.1f));
    }
    cg_tensor *all[8] = {ones, tenth, s, m, st, mt, rows, cols};
    for (int k = 0; k < 8; k++) cg_tensor_free(all[k]);
}

/* [N, D] over N (the bias gradient): rows path, tiles of the D axis and
 * chunks of the N axis; [R, C] over awkward views: chunked runs. */
static void test_reduce_large_against_reference(void **state) {
    (void)state;
    cg_tensor *bias = make_in(NULL, CG_F32, CG_SHAPE(3000, 70), 91, 3);
    cg_tensor *wide = make_in(NULL, CG_F64, CG_SHAPE(60, 1100), 92, 3);
    cg_tensor *base = make_in(NULL, CG_I64, CG_SHAPE(7, 20001), 93, 3);
    cg_tensor *odd = cg_narrow(NULL, base, 1, 1, 20000); /* rows do not merge */
    assert_non_null(odd);
    for (int op = 0; op < NOPS; op++) {
        check_op(OPS[op], bias, 1);
        check_op(OPS[op], bias, 3);
        check_op(OPS[op], wide, 1);
        check_op(OPS[op], odd, 3);
        check_op(OPS[op], odd, 2);
    }
    cg_tensor *all[4] = {bias, wide, base, odd};
    for (int k = 0; k < 4; k++) cg_tensor_free(all[k]);
}

/* Runs every op over mask with 1, 2 and 3 threads; results must match
 * bit for bit. */
static void check_thread_counts(const cg_tensor *x, unsigned mask) {
    for (int op = 0; op < NOPS; op++) {
        omp_set_num_threads(1);
        cg_tensor *one = reduce(OPS[op], x, mask);
        size_t bytes = (size_t)cg_numel(one) * cg_dtype_size(one->dtype);
        for (int n = 2; n <= 3; n++) {
            omp_set_num_threads(n);
            cg_tensor *many = reduce(OPS[op], x, mask);
            assert_memory_equal(cgi_ptr(one), cgi_ptr(many), bytes);
            cg_tensor_free(many);
        }
        cg_tensor_free(one);
    }
}

static void test_reduce_threads_bitwise_identical(void **state) {
    (void)state;
    int saved = omp_get_max_threads();
    cg_rng rng;
    cg_rng_seed(&rng, 7);
    cg_tensor *x = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(600, 900), 0, 1);
    cg_tensor *t = cg_transpose(NULL, x, 0, 1);
    assert_non_null(t);
    for (unsigned mask = 1; mask < 4; mask++) {
        check_thread_counts(x, mask);
        check_thread_counts(t, mask);
    }
    cg_tensor *s = reduce(SUM, x, 3);
    double want = 0, v;
    for (int64_t i = 0; i < 600; i++)
        for (int64_t j = 0; j < 900; j++) {
            assert_int_equal(cg_get(x, (const int64_t[]){i, j}, &v), CG_OK);
            want += v;
        }
    assert_true(fabs(at(s, 0) - want) <= 1e-6 * 540000);
    omp_set_num_threads(saved);
    cg_tensor_free(s);
    cg_tensor_free(t);
    cg_tensor_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce_shape_keepdim_and_drop),
        cmocka_unit_test(test_reduce_hand_values),
        cmocka_unit_test(test_reduce_ties_first),
        cmocka_unit_test(test_reduce_nan_is_the_extreme),
        cmocka_unit_test(test_reduce_nan_in_long_runs),
        cmocka_unit_test(test_reduce_each_single_axis),
        cmocka_unit_test(test_reduce_every_axis_set),
        cmocka_unit_test(test_reduce_rank8_permuted),
        cmocka_unit_test(test_reduce_transposed),
        cmocka_unit_test(test_reduce_long_runs),
        cmocka_unit_test(test_reduce_sliced_with_step_and_offset),
        cmocka_unit_test(test_reduce_broadcast_stride0),
        cmocka_unit_test(test_reduce_rank0),
        cmocka_unit_test(test_reduce_mask_zero_copies),
        cmocka_unit_test(test_reduce_zero_size_dims),
        cmocka_unit_test(test_reduce_i64_exact),
        cmocka_unit_test(test_reduce_in_context),
        cmocka_unit_test(test_reduce_large_sum_is_exact),
        cmocka_unit_test(test_reduce_large_against_reference),
        cmocka_unit_test(test_reduce_threads_bitwise_identical),
    };
    return cmocka_run_group_tests_name("reduce", tests, NULL, NULL);
}
