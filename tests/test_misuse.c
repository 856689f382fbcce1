/* The misuse battery of issue 14: every public function of tensor/tensor.h,
 * autograd/autograd.h, ops/ops.h and nn/nn.h (all 369 declared, attention,
 * sampling, transformers and text included) called with what a careless or
 * hostile caller passes:
 *   - NULL for each pointer argument: tensors, contexts where one is needed,
 *     modules, optimizers, schedules, paths, out-pointers, arrays and their
 *     entries;
 *   - mismatched shapes and dtypes (i64 where a float is needed, f32 with f64);
 *   - out-of-range and repeated axes (2 and -3 for rank 2, 8, -9, INT_MIN, a
 *     dim listed twice in reductions, permute, flip);
 *   - negative and overflowing sizes (-1, INT64_MIN, INT64_MAX, products past
 *     int64, zero-size tensors whose strides would overflow);
 *   - zero-size and rank-8 (CG_MAX_DIMS) tensors, and non-contiguous views
 *     (transposes, stepped slices, stride-0 expansions), which are valid.
 * Each bad call must return NULL, a status other than CG_OK or its documented
 * sentinel, and leave a message that begins with the called function's name
 * and ':' ("cg_matmul: ..."). NULL in, NULL out: a NULL tensor passed after
 * an earlier failure keeps that failure's message (KEEPS). Each valid call
 * must succeed and agree with the same call on contiguous copies; backward
 * through zero-size leaves and views must reach the leaf. Every *_free takes
 * NULL; where a second call is meaningful (a context tensor, a zeroed
 * struct, a module held by a container) it is harmless.
 *
 * Checks do not stop a test: each failure prints one "DEFECT line N" and the
 * test fails at its end (done()), so one run lists every defect. make test
 * runs it under ASan/UBSan too: a crash, a leak or a sanitizer report is a
 * defect as well. Runs in well under a second. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* ---- the checks ---------------------------------------------------------- */
static int defects;       /* in the running test */
static const char *label; /* the table row being run, for DEFECT lines */

static void defect(int line, const char *fn, const char *fmt, ...) {
    va_list ap;
    printf("DEFECT line %d%s%s: %s: ", line, label ? " case " : "", label ? label : "", fn);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    defects++;
}

/* The failure's record: a status and a message "fn: ...". Clears it. */
static void check_msg(const char *fn, int line) {
    const char *m = cg_last_error();
    size_t n = strlen(fn);
    if (cg_last_status() == CG_OK) defect(line, fn, "no status recorded (message \"%s\")", m);
    if (strncmp(m, fn, n) != 0 || m[n] != ':')
        defect(line, fn, "message \"%s\" does not begin with \"%s:\"", m, fn);
    cg_clear_error();
}
static void fails_t(const void *r, const char *fn, int line) {
    if (r) {
        defect(line, fn, "bad input accepted");
        cg_clear_error();
        return;
    }
    check_msg(fn, line);
}
static void fails_s(cg_status s, const char *fn, int line) {
    if (s == CG_OK) {
        defect(line, fn, "bad input accepted (CG_OK)");
        cg_clear_error();
        return;
    }
    if (cg_last_status() != s)
        defect(line, fn, "returned %d, recorded %d", s, cg_last_status());
    check_msg(fn, line);
}
/* failed: the function's sentinel came back (NaN, -1, false, ...). */
static void fails_b(bool failed, const char *fn, int line) {
    if (!failed) {
        defect(line, fn, "bad input accepted (no sentinel)");
        cg_clear_error();
        return;
    }
    check_msg(fn, line);
}
/* A tensor result that must fail; a wrongly made caller-owned one is freed. */
static void fails_tf(cg_tensor *r, const char *fn, int line) {
    fails_t(r, fn, line);
    cg_tensor_free(r);
}
static cg_tensor *succeeds_t(cg_tensor *r, const char *fn, int line) {
    if (!r || cg_last_status() != CG_OK)
        defect(line, fn, "valid call failed: \"%s\"", cg_last_error());
    cg_clear_error();
    return r;
}
static void succeeds_s(cg_status s, const char *fn, int line) {
    if (s != CG_OK) defect(line, fn, "valid call failed: \"%s\"", cg_last_error());
    cg_clear_error();
}

/* Each macro clears the error first, so the message checked is the call's. */
#define NUL(fn, ...)       (cg_clear_error(), fails_tf(fn(__VA_ARGS__), #fn, __LINE__))
#define BAD(fn, ...)       (cg_clear_error(), fails_s(fn(__VA_ARGS__), #fn, __LINE__))
#define SENTINEL(fn, cond) (cg_clear_error(), fails_b((cond), fn, __LINE__))
#define OK_T(fn, ...)      (cg_clear_error(), succeeds_t(fn(__VA_ARGS__), #fn, __LINE__))
#define OK_S(fn, ...)      (cg_clear_error(), succeeds_s(fn(__VA_ARGS__), #fn, __LINE__))
/* The same for results that are not tensors (modules, optimizers, ...). */
static void *succeeds_p(void *r, const char *fn, int line) {
    if (!r || cg_last_status() != CG_OK)
        defect(line, fn, "valid call failed: \"%s\"", cg_last_error());
    cg_clear_error();
    return r;
}
#define NULP(fn, ...) (cg_clear_error(), fails_t(fn(__VA_ARGS__), #fn, __LINE__))
#define OK_P(fn, ...) (cg_clear_error(), succeeds_p(fn(__VA_ARGS__), #fn, __LINE__))
/* The call returned its sentinel and recorded no error (documented silence). */
#define QUIET(fn, cond)                                                                        \
    do {                                                                                       \
        cg_clear_error();                                                                      \
        if (!(cond)) defect(__LINE__, fn, "unexpected result");                                \
        if (cg_last_status() != CG_OK)                                                         \
            defect(__LINE__, fn, "recorded \"%s\"", cg_last_error());                          \
    } while (0)

/* An error recorded by an earlier call (a failed op made the NULL). */
static void prior_error(void) {
    cg_clear_error();
    cg_dim(NULL, 0);
}
/* NULL in, NULL out: r is NULL and the earlier error is kept. */
static void keeps_prior(const void *r, const char *fn, int line) {
    if (r) defect(line, fn, "NULL input gave a result");
    if (strncmp(cg_last_error(), "cg_dim:", 7) != 0)
        defect(line, fn, "overwrote the earlier error with \"%s\"", cg_last_error());
    cg_clear_error();
}
#define KEEPS(fn, ...) (prior_error(), keeps_prior(fn(__VA_ARGS__), #fn, __LINE__))
/* A NULL tensor from an earlier failure: status functions keep its error. */
static void keeps_prior_s(cg_status s, const char *fn, int line) {
    if (s == CG_OK) defect(line, fn, "NULL input accepted");
    if (strncmp(cg_last_error(), "cg_dim:", 7) != 0)
        defect(line, fn, "overwrote the earlier error with \"%s\"", cg_last_error());
    cg_clear_error();
}
#define KEEPS_S(fn, ...) (prior_error(), keeps_prior_s(fn(__VA_ARGS__), #fn, __LINE__))

static int setup(void **state) {
    defects = 0;
    label = NULL;
    cg_clear_error();
    return ctx_setup(state);
}
static int teardown(void **state) {
    label = NULL;
    return ctx_teardown(state);
}
/* The end of every test: fails it if any check printed a DEFECT line. */
static void done(void) {
    label = NULL;
    if (defects) fail_msg("%d defect(s), listed above", defects);
}

/* ---- inputs --------------------------------------------------------------- */
static cg_rng rng_;

/* Values in [0.5, 2) (log, sqrt and division stay finite). */
static cg_tensor *pos(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape) {
    return cg_rand(ctx, &rng_, dt, ndim, shape, 0.5, 2);
}
static const int64_t r8_shape[CG_MAX_DIMS] = {1, 2, 1, 1, 1, 1, 1, 3};

/* The views a function must read correctly, each with a contiguous copy. */
typedef struct view_case {
    const char *name;
    cg_tensor *v; /* [4,3] or, expand, [4,3] from [1,3]: non-contiguous */
} view_case;
enum { NVIEWS = 3 };
static void make_views(cg_ctx *ctx, view_case *vc) {
    cg_tensor *base = pos(ctx, CG_F64, CG_SHAPE(3, 4));
    vc[0] = (view_case){"transpose", cg_transpose(ctx, base, 0, 1)};
    cg_tensor *tall = pos(ctx, CG_F64, CG_SHAPE(8, 3));
    vc[1] = (view_case){"slice step 2", cg_slice(ctx, tall, 0, 0, CG_END, 2)};
    vc[2] =
        (view_case){"expand", cg_expand(ctx, pos(ctx, CG_F64, CG_SHAPE(1, 3)), CG_SHAPE(4, 3))};
}

/* a and b hold the same shape, dtype and values (NaN equal to NaN). */
static bool same_tensor(const cg_tensor *a, const cg_tensor *b, double tol) {
    if (!a || !b || !cg_same_shape(a, b) || cg_dtype_of(a) != cg_dtype_of(b)) return false;
    int64_t n = cg_numel(a);
    double *x = malloc(sizeof(double) * (size_t)(n + 1)),
           *y = malloc(sizeof(double) * (size_t)(n + 1));
    bool same = x && y && cg_copy_to_array(a, CG_F64, x) == CG_OK &&
                cg_copy_to_array(b, CG_F64, y) == CG_OK;
    for (int64_t i = 0; same && i < n; i++)
        same = (isnan(x[i]) && isnan(y[i])) || fabs(x[i] - y[i]) <= tol * (1 + fabs(y[i]));
    free(x);
    free(y);
    return same;
}
static bool has_shape(const cg_tensor *t, int ndim, const int64_t *shape) {
    if (!t || cg_ndim(t) != ndim) return false;
    for (int i = 0; i < ndim; i++)
        if (cg_shape(t)[i] != shape[i]) return false;
    return true;
}
#define HAS_SHAPE(t, ...) has_shape(t, CG_SHAPE(__VA_ARGS__))

/* ======================================================================== */
/* tensor/tensor.h                                                          */
/* ======================================================================== */

static void test_misuse_errors_and_contexts(void **state) {
    (void)state;
    cg_clear_error();
    QUIET("cg_last_status", cg_last_status() == CG_OK);
    QUIET("cg_last_error", strcmp(cg_last_error(), "") == 0);
    QUIET("cg_status_str", strcmp(cg_status_str((cg_status)99), "unknown status") == 0);
    QUIET("cg_status_str", strcmp(cg_status_str((cg_status)-1), "unknown status") == 0);
    /* a user's error: recorded as given, a NULL format as an empty message */
    if (cg_set_error(CG_ERR_SHAPE, "my_op: %d", 3) != CG_ERR_SHAPE ||
        cg_last_status() != CG_ERR_SHAPE || strcmp(cg_last_error(), "my_op: 3"))
        defect(__LINE__, "cg_set_error", "not recorded as given");
    if (cg_set_error(CG_ERR_ARG, NULL) != CG_ERR_ARG || strcmp(cg_last_error(), ""))
        defect(__LINE__, "cg_set_error", "a NULL format not recorded as \"\"");
    cg_clear_error();
    SENTINEL("cg_ctx_status", cg_ctx_status(NULL) == CG_ERR_ARG);
    SENTINEL("cg_ctx_error", strcmp(cg_ctx_error(NULL), "") == 0);
    SENTINEL("cg_ctx_get_stats", cg_ctx_get_stats(NULL).capacity == 0);
    QUIET("cg_ctx_reset", (cg_ctx_reset(NULL), true));
    QUIET("cg_ctx_free", (cg_ctx_free(NULL), true));
    cg_ctx *c = cg_ctx_new();
    QUIET("cg_ctx_new", c != NULL);
    cg_ctx_reset(c);
    cg_ctx_reset(c);
    QUIET("cg_ctx_free", (cg_ctx_free(c), true));
    /* threads: n < 0 means 1, 0 the default */
    int n = cg_get_num_threads();
    QUIET("cg_set_num_threads", (cg_set_num_threads(-5), cg_get_num_threads() == 1));
    QUIET("cg_set_num_threads",
          (cg_set_num_threads(0), cg_get_num_threads() >= 1)); /* the default */
    QUIET("cg_get_num_threads", (cg_set_num_threads(n), cg_get_num_threads() == n));
    /* dtypes */
    SENTINEL("cg_dtype_size", cg_dtype_size((cg_dtype)3) == 0);
    SENTINEL("cg_dtype_size", cg_dtype_size((cg_dtype)-1) == 0);
    QUIET("cg_dtype_name", strcmp(cg_dtype_name((cg_dtype)3), "invalid") == 0);
    done();
}

/* The creators of a tensor from (dt, ndim, shape), one signature. */
typedef cg_tensor *(*maker_fn)(cg_ctx *, cg_dtype, int, const int64_t *);
static double buf_[64]; /* data for from_array and wrap: every valid shape below fits */
static cg_tensor *mk_empty(cg_ctx *c, cg_dtype dt, int n, const int64_t *s) {
    return cg_empty(c, dt, n, s);
}
static cg_tensor *mk_full(cg_ctx *c, cg_dtype dt, int n, const int64_t *s) {
    return cg_full(c, dt, n, s, 2);
}
static cg_tensor *mk_from_array(cg_ctx *c, cg_dtype dt, int n, const int64_t *s) {
    return cg_from_array(c, dt, n, s, buf_);
}
static cg_tensor *mk_wrap(cg_ctx *c, cg_dtype dt, int n, const int64_t *s) {
    return cg_wrap(c, dt, n, s, buf_);
}
static cg_tensor *mk_rand(cg_ctx *c, cg_dtype dt, int n, const int64_t *s) {
    return cg_rand(c, &rng_, dt, n, s, 0, 1);
}
static cg_tensor *mk_randn(cg_ctx *c, cg_dtype dt, int n, const int64_t *s) {
    return cg_randn(c, &rng_, dt, n, s, 0, 1);
}
static cg_tensor *mk_bernoulli(cg_ctx *c, cg_dtype dt, int n, const int64_t *s) {
    return cg_bernoulli(c, &rng_, dt, n, s, 0.5);
}
static const struct maker {
    const char *name;
    maker_fn f;
    bool float_only;
} makers[] = {
    {"cg_empty", mk_empty, false},
    {"cg_zeros", cg_zeros, false},
    {"cg_ones", cg_ones, false},
    {"cg_full", mk_full, false},
    {"cg_from_array", mk_from_array, false},
    {"cg_wrap", mk_wrap, false},
    {"cg_rand", mk_rand, true},
    {"cg_randn", mk_randn, true},
    {"cg_bernoulli", mk_bernoulli, false}, /* 0/1 in i64 too, as Tensor.bernoulli_ */
};

#define BIG INT64_MAX
/* Shapes every creator refuses: bad ranks, NULL, negative and overflowing dims. */
static const struct bad_shape {
    const char *name;
    int ndim;
    int64_t shape[CG_MAX_DIMS + 1];
    bool null;
} bad_shapes[] = {
    {"rank -1", -1, {2}, false},
    {"rank 9", 9, {1, 1, 1, 1, 1, 1, 1, 1, 1}, false},
    {"shape NULL", 2, {0}, true},
    {"dim -1", 2, {2, -1}, false},
    {"dim INT64_MIN", 1, {INT64_MIN}, false},
    {"INT64_MAX", 1, {BIG}, false},
    {"product wraps to 6", 3, {BIG, BIG, 6}, false},
    {"2^32 x 2^32", 2, {(int64_t)1 << 32, (int64_t)1 << 32}, false},
    {"zero-size with huge dims", 3, {0, BIG, BIG}, false},
    {"zero-size, strides overflow", 3, {(int64_t)1 << 40, 0, (int64_t)1 << 40}, false},
};

static void test_misuse_creation_bad_shapes(void **state) {
    cg_ctx *ctx = *state;
    for (size_t m = 0; m < sizeof makers / sizeof *makers; m++) {
        for (size_t b = 0; b < sizeof bad_shapes / sizeof *bad_shapes; b++) {
            const struct bad_shape *s = &bad_shapes[b];
            label = s->name;
            for (int owned = 0; owned < 2; owned++) {
                cg_clear_error();
                fails_tf(
                    makers[m].f(owned ? NULL : ctx, CG_F32, s->ndim, s->null ? NULL : s->shape),
                    makers[m].name, __LINE__);
            }
        }
        label = "invalid dtype";
        cg_clear_error();
        fails_tf(makers[m].f(ctx, (cg_dtype)7, CG_SHAPE(2)), makers[m].name, __LINE__);
        cg_clear_error();
        fails_tf(makers[m].f(NULL, (cg_dtype)-1, CG_SHAPE(2)), makers[m].name, __LINE__);
        if (makers[m].float_only) {
            label = "i64";
            cg_clear_error();
            fails_tf(makers[m].f(ctx, CG_I64, CG_SHAPE(2)), makers[m].name, __LINE__);
        }
    }
    done();
}

/* Zero-size and rank-8 shapes are valid for every creator. */
static void test_misuse_creation_edge_shapes(void **state) {
    cg_ctx *ctx = *state;
    static const struct {
        int ndim;
        int64_t shape[CG_MAX_DIMS];
    } good[] = {{0, {0}},
                {2, {0, 3}},
                {3, {4, 0, 5}},
                {CG_MAX_DIMS, {1, 2, 1, 1, 1, 1, 1, 3}},
                {CG_MAX_DIMS, {2, 1, 2, 1, 2, 1, 2, 0}}};
    for (size_t m = 0; m < sizeof makers / sizeof *makers; m++) {
        label = makers[m].name;
        for (size_t g = 0; g < sizeof good / sizeof *good; g++) {
            for (int owned = 0; owned < 2; owned++) {
                cg_clear_error();
                cg_tensor *t = succeeds_t(
                    makers[m].f(owned ? NULL : ctx, CG_F64, good[g].ndim, good[g].shape),
                    makers[m].name, __LINE__);
                if (t && !has_shape(t, good[g].ndim, good[g].shape))
                    defect(__LINE__, makers[m].name, "wrong shape");
                cg_tensor_free(t);
            }
        }
    }
    done();
}

static void test_misuse_creation_other_args(void **state) {
    cg_ctx *ctx = *state;
    /* data NULL; a misaligned borrowed pointer */
    NUL(cg_from_array, ctx, CG_F32, CG_SHAPE(2), NULL);
    NUL(cg_wrap, ctx, CG_F32, CG_SHAPE(2), NULL);
    NUL(cg_wrap, NULL, CG_F64, CG_SHAPE(2), (char *)buf_ + 4);
    NUL(cg_wrap, NULL, CG_I64, CG_SHAPE(2), (char *)buf_ + 1);
    cg_tensor *t = OK_T(cg_from_array, NULL, CG_F32, CG_SHAPE(0, 2), NULL);
    cg_tensor_free(t);
    /* rng NULL; bounds that are not numbers or ordered */
    NUL(cg_rand, ctx, NULL, CG_F32, CG_SHAPE(2), 0, 1);
    NUL(cg_randn, ctx, NULL, CG_F32, CG_SHAPE(2), 0, 1);
    NUL(cg_bernoulli, ctx, NULL, CG_F32, CG_SHAPE(2), 0.5);
    NUL(cg_rand, ctx, &rng_, CG_F32, CG_SHAPE(2), NAN, 1);
    NUL(cg_rand, ctx, &rng_, CG_F32, CG_SHAPE(2), 1, 0);
    NUL(cg_rand, ctx, &rng_, CG_F32, CG_SHAPE(2), 0, INFINITY);
    NUL(cg_randn, ctx, &rng_, CG_F32, CG_SHAPE(2), 0, -1);
    NUL(cg_randn, ctx, &rng_, CG_F32, CG_SHAPE(2), NAN, 1);
    NUL(cg_randn, ctx, &rng_, CG_F32, CG_SHAPE(2), 0, NAN);
    NUL(cg_bernoulli, ctx, &rng_, CG_F32, CG_SHAPE(2), -0.1);
    NUL(cg_bernoulli, ctx, &rng_, CG_F32, CG_SHAPE(2), 1.5);
    NUL(cg_bernoulli, ctx, &rng_, CG_F32, CG_SHAPE(2), NAN);
    /* scalar, like */
    NUL(cg_scalar, ctx, (cg_dtype)5, 1);
    NUL(cg_zeros_like, ctx, NULL);
    NUL(cg_ones_like, ctx, NULL);
    NUL(cg_full_like, ctx, NULL, 1);
    KEEPS(cg_zeros_like, ctx, NULL);
    KEEPS(cg_ones_like, NULL, NULL);
    KEEPS(cg_full_like, ctx, NULL, 1);
    view_case vc[NVIEWS];
    make_views(ctx, vc);
    for (int i = 0; i < NVIEWS; i++) {
        label = vc[i].name;
        cg_tensor *z = OK_T(cg_full_like, NULL, vc[i].v, 3);
        if (!HAS_SHAPE(z, 4, 3) || !cg_is_contiguous(z) ||
            cg_item(cg_sum(ctx, z, NULL, 0, 0)) != 36)
            defect(__LINE__, "cg_full_like", "wrong result");
        cg_tensor_free(z);
    }
    label = NULL;
    cg_tensor *r8 = cg_zeros(ctx, CG_F32, CG_MAX_DIMS, r8_shape);
    if (!has_shape(OK_T(cg_ones_like, ctx, r8), CG_MAX_DIMS, r8_shape))
        defect(__LINE__, "cg_ones_like", "wrong shape");
    /* arange, linspace, eye: steps, counts and sizes */
    NUL(cg_arange, ctx, CG_F32, 0, 10, 0);
    NUL(cg_arange, ctx, CG_F32, 0, 10, -1e-300 * 0);
    NUL(cg_arange, ctx, CG_F32, 0, NAN, 1);
    NUL(cg_arange, ctx, CG_F32, 0, 1e300, 1e-300);
    NUL(cg_arange, ctx, CG_F32, -1e18, 1e18, 1);
    NUL(cg_arange, ctx, (cg_dtype)9, 0, 3, 1);
    if (cg_numel(OK_T(cg_arange, ctx, CG_I64, 5, 0, 1)) != 0)
        defect(__LINE__, "cg_arange", "not empty");
    NUL(cg_linspace, ctx, CG_F32, 0, 1, -1);
    NUL(cg_linspace, ctx, CG_F32, 0, 1, INT64_MAX);
    NUL(cg_linspace, ctx, CG_F32, 0, INFINITY, 3);
    NUL(cg_linspace, ctx, (cg_dtype)9, 0, 1, 3);
    if (cg_numel(OK_T(cg_linspace, ctx, CG_F64, 0, 1, 0)) != 0)
        defect(__LINE__, "cg_linspace", "not empty");
    NUL(cg_eye, ctx, CG_F32, -1, 2);
    NUL(cg_eye, ctx, CG_F32, 2, -1);
    NUL(cg_eye, ctx, CG_F32, BIG, BIG);
    NUL(cg_eye, NULL, CG_F32, (int64_t)1 << 40, (int64_t)1 << 40);
    NUL(cg_eye, ctx, (cg_dtype)9, 2, 2);
    NUL(cg_eye, ctx, CG_F32, 0, BIG); /* the row stride would overflow (issue 14 #7) */
    if (!HAS_SHAPE(OK_T(cg_eye, ctx, CG_F32, 0, 5), 0, 5)) defect(__LINE__, "cg_eye", "shape");
    /* frees: NULL; a context tensor (ignored, any number of times) */
    QUIET("cg_tensor_free", (cg_tensor_free(NULL), true));
    cg_tensor *c = cg_zeros(ctx, CG_F32, CG_SHAPE(2));
    cg_tensor_free(c);
    cg_tensor_free(c);
    QUIET("cg_tensor_free", cg_numel(c) == 2);
    done();
}

static void test_misuse_inspection(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *t = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3));
    SENTINEL("cg_dtype_of", cg_dtype_of(NULL) == CG_F32);
    SENTINEL("cg_ndim", cg_ndim(NULL) == -1);
    SENTINEL("cg_dim", cg_dim(NULL, 0) == -1);
    SENTINEL("cg_dim", cg_dim(t, 2) == -1);
    SENTINEL("cg_dim", cg_dim(t, -3) == -1);
    SENTINEL("cg_dim", cg_dim(t, 8) == -1);
    SENTINEL("cg_dim", cg_dim(t, INT32_MIN) == -1);
    SENTINEL("cg_shape", cg_shape(NULL) == NULL);
    SENTINEL("cg_strides", cg_strides(NULL) == NULL);
    SENTINEL("cg_offset", cg_offset(NULL) == -1);
    SENTINEL("cg_numel", cg_numel(NULL) == -1);
    SENTINEL("cg_is_contiguous", !cg_is_contiguous(NULL));
    SENTINEL("cg_data", cg_data(NULL) == NULL);
    SENTINEL("cg_same_shape", !cg_same_shape(NULL, t));
    SENTINEL("cg_same_shape", !cg_same_shape(t, NULL));
    char buf[32] = "x";
    QUIET("cg_shape_str", cg_shape_str(t, buf, 0) == buf && buf[0] == 'x');
    QUIET("cg_shape_str", strcmp(cg_shape_str(NULL, buf, sizeof buf), "NULL") == 0);
    SENTINEL("cg_shape_str", cg_shape_str(t, NULL, 16) == NULL);
    QUIET("cg_shape_str", strcmp(cg_shape_str(t, buf, 3), "[2") == 0);
    cg_tensor *r8 = cg_zeros(ctx, CG_F32, CG_MAX_DIMS, r8_shape);
    QUIET("cg_shape_str", strcmp(cg_shape_str(r8, buf, sizeof buf), "[1,2,1,1,1,1,1,3]") == 0);
    QUIET("cg_dim", cg_dim(r8, -8) == 1 && cg_dim(r8, 7) == 3);
    SENTINEL("cg_dim", cg_dim(r8, -9) == -1);
    cg_tensor *z = cg_zeros(ctx, CG_F32, CG_SHAPE(0, 3));
    QUIET("cg_is_contiguous", cg_is_contiguous(cg_transpose(ctx, z, 0, 1)));
    QUIET("cg_numel", cg_numel(z) == 0);
    done();
}

static void test_misuse_element_access(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *t = cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3));
    double d;
    int64_t k;
    const int64_t i0[2] = {0, 0}, far[2] = {2, 0}, neg[2] = {0, -4}, huge[2] = {INT64_MIN, 0},
                  big[2] = {0, INT64_MAX};
    BAD(cg_get, NULL, i0, &d);
    BAD(cg_get, t, NULL, &d);
    BAD(cg_get, t, i0, NULL);
    BAD(cg_get, t, far, &d);
    BAD(cg_get, t, neg, &d);
    BAD(cg_get, t, huge, &d);
    BAD(cg_get, t, big, &d);
    BAD(cg_get_i64, NULL, i0, &k);
    BAD(cg_get_i64, t, NULL, &k);
    BAD(cg_get_i64, t, i0, NULL);
    BAD(cg_get_i64, t, huge, &k);
    BAD(cg_set, NULL, i0, 1);
    BAD(cg_set, t, NULL, 1);
    BAD(cg_set, t, far, 1);
    BAD(cg_set, t, huge, 1);
    /* a write through an expanded view would change every row */
    cg_tensor *e = cg_expand(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(1, 3)), CG_SHAPE(4, 3));
    BAD(cg_set, e, i0, 1);
    /* a transposed view is written where it points */
    cg_tensor *tr = cg_transpose(ctx, t, 0, 1);
    OK_S(cg_set, tr, (const int64_t[]){2, 1}, 5);
    OK_S(cg_get, t, (const int64_t[]){1, 2}, &d);
    if (d != 5) defect(__LINE__, "cg_set", "wrote the wrong element");
    cg_tensor *z = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3));
    BAD(cg_get, z, i0, &d);
    cg_tensor *s = cg_scalar(ctx, CG_I64, 7);
    OK_S(cg_get_i64, s, NULL, &k); /* rank 0: no index needed */
    if (k != 7) defect(__LINE__, "cg_get_i64", "wrong value");
    /* item */
    SENTINEL("cg_item", isnan(cg_item(NULL)));
    SENTINEL("cg_item", isnan(cg_item(t)));
    SENTINEL("cg_item", isnan(cg_item(z)));
    if (cg_item(cg_expand(ctx, cg_scalar(ctx, CG_F32, 2), CG_SHAPE(1, 1))) != 2)
        defect(__LINE__, "cg_item", "wrong value");
    /* copy_to_array */
    double out[12];
    BAD(cg_copy_to_array, NULL, CG_F64, out);
    BAD(cg_copy_to_array, t, CG_F64, NULL);
    BAD(cg_copy_to_array, t, (cg_dtype)4, out);
    OK_S(cg_copy_to_array, z, CG_F64, NULL); /* nothing to write */
    view_case vc[NVIEWS];
    make_views(ctx, vc);
    for (int i = 0; i < NVIEWS; i++) {
        label = vc[i].name;
        double want[12];
        cg_tensor *c = cg_contiguous(ctx, vc[i].v);
        OK_S(cg_copy_to_array, vc[i].v, CG_F64, out);
        cg_copy_to_array(c, CG_F64, want);
        if (memcmp(out, want, sizeof want) != 0)
            defect(__LINE__, "cg_copy_to_array", "view read wrongly");
    }
    label = NULL;
    done();
}

static void test_misuse_broadcast_copy_fill(void **state) {
    cg_ctx *ctx = *state;
    int n;
    int64_t out[CG_MAX_DIMS];
    const int64_t a[2] = {2, 3}, b[2] = {4, 3}, negd[2] = {-1, 3}, r9[9] = {1};
    BAD(cg_broadcast_shapes, NULL, 2, a, 2, b, &n, out);
    BAD(cg_broadcast_shapes, NULL, 2, NULL, 2, a, &n, out);
    BAD(cg_broadcast_shapes, NULL, 2, a, 2, NULL, &n, out);
    BAD(cg_broadcast_shapes, NULL, 2, a, 2, a, NULL, out);
    BAD(cg_broadcast_shapes, NULL, 2, a, 2, a, &n, NULL);
    BAD(cg_broadcast_shapes, NULL, -1, a, 2, a, &n, out);
    BAD(cg_broadcast_shapes, NULL, 2, a, 9, r9, &n, out);
    BAD(cg_broadcast_shapes, NULL, 2, negd, 2, a, &n, out);
    BAD(cg_broadcast_shapes, NULL, 2, a, 2, negd, &n, out);
    cg_clear_error();
    if (cg_broadcast_shapes("cg_mine", 2, a, 2, b, &n, out) == CG_OK ||
        strncmp(cg_last_error(), "cg_mine:", 8) != 0)
        defect(__LINE__, "cg_broadcast_shapes", "did not name op: \"%s\"", cg_last_error());
    OK_S(cg_broadcast_shapes, NULL, 0, NULL, 2, (const int64_t[]){0, 3}, &n, out);
    if (n != 2 || out[0] != 0 || out[1] != 3) defect(__LINE__, "cg_broadcast_shapes", "wrong");
    OK_S(cg_broadcast_shapes, NULL, CG_MAX_DIMS, r8_shape, 1, (const int64_t[]){1}, &n, out);
    if (n != CG_MAX_DIMS) defect(__LINE__, "cg_broadcast_shapes", "wrong rank");

    cg_tensor *dst = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3));
    BAD(cg_copy_, NULL, dst);
    BAD(cg_copy_, dst, NULL);
    BAD(cg_copy_, dst, cg_zeros(ctx, CG_F32, CG_SHAPE(3, 2)));
    BAD(cg_copy_, dst, cg_zeros(ctx, CG_F32, CG_SHAPE(1, 2, 3, 1)));
    cg_tensor *e = cg_expand(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(1, 3)), CG_SHAPE(2, 3));
    BAD(cg_copy_, e, dst);
    BAD(cg_fill_, NULL, 1);
    BAD(cg_fill_, e, 1);
    KEEPS_S(cg_fill_, NULL, 1);
    KEEPS_S(cg_copy_, dst, NULL);
    KEEPS_S(cg_copy_, NULL, dst);
    /* values that do not fit the dtype, as PyTorch */
    cg_tensor *i64 = cg_zeros(ctx, CG_I64, CG_SHAPE(2)),
              *f32 = cg_zeros(ctx, CG_F32, CG_SHAPE(2));
    const double unfit[] = {NAN, INFINITY, -INFINITY, 1e19, -1e19};
    for (int i = 0; i < 5; i++) {
        BAD(cg_fill_, i64, unfit[i]);
        BAD(cg_set, i64, (const int64_t[]){0}, unfit[i]);
        NUL(cg_full, ctx, CG_I64, CG_SHAPE(2), unfit[i]);
        NUL(cg_full_like, ctx, i64, unfit[i]);
        NUL(cg_scalar, NULL, CG_I64, unfit[i]);
    }
    BAD(cg_fill_, f32, 1e39);
    BAD(cg_set, f32, (const int64_t[]){1}, -1e300);
    NUL(cg_full, NULL, CG_F32, CG_SHAPE(2), 1e300);
    OK_S(cg_fill_, f32, NAN);
    OK_S(cg_fill_, i64, -9223372036854775808.0);
    OK_S(cg_set, i64, (const int64_t[]){1}, 2.75); /* truncates */
    OK_S(cg_fill_, cg_zeros(ctx, CG_F64, CG_SHAPE(2)), 1e300);
    /* f64 into f32 converts; into a transposed view lands transposed; empty is fine */
    cg_tensor *src = pos(ctx, CG_F64, CG_SHAPE(3, 2));
    OK_S(cg_copy_, cg_transpose(ctx, dst, 0, 1), src);
    if (!same_tensor(cg_cast(ctx, cg_transpose(ctx, dst, 0, 1), CG_F64), src, 1e-6))
        defect(__LINE__, "cg_copy_", "wrong values through a transposed view");
    /* memory shared in part: PyTorch refuses (a copy would read what it overwrote) */
    cg_tensor *sq = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 2), (const double[]){1, 2, 3, 4});
    BAD(cg_copy_, sq, cg_transpose(ctx, sq, 0, 1));
    cg_tensor *line = cg_arange(ctx, CG_F64, 1, 5, 1);
    BAD(cg_copy_, cg_slice(ctx, line, 0, 1, CG_END, 1), cg_slice(ctx, line, 0, 0, 3, 1));
    BAD(cg_copy_, cg_view(ctx, line, CG_SHAPE(1, 4)), line);
    OK_S(cg_copy_, sq, sq); /* the same elements: nothing to read twice */
    OK_S(cg_copy_, cg_slice(ctx, line, 0, 0, 2, 1), cg_slice(ctx, line, 0, 2, 4, 1));
    OK_S(cg_copy_, cg_slice(ctx, line, 0, 0, CG_END, 2), cg_slice(ctx, line, 0, 1, CG_END, 2));
    if (!same_tensor(line,
                     cg_from_array(ctx, CG_F64, CG_SHAPE(4), (const double[]){4, 4, 4, 4}), 0))
        defect(__LINE__, "cg_copy_", "disjoint views: wrong");
    cg_tensor *z = cg_zeros(ctx, CG_F32, CG_SHAPE(0, 3));
    OK_S(cg_copy_, z, cg_ones(ctx, CG_I64, CG_SHAPE(3)));
    OK_S(cg_fill_, z, 1);
    OK_S(cg_fill_, cg_slice(ctx, dst, 1, 0, CG_END, 2), 4);
    double got[6], s[6];
    cg_copy_to_array(dst, CG_F64, got);
    cg_copy_to_array(src, CG_F64, s); /* dst[i][j] = src[j][i] */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            if (got[i * 3 + j] != (j == 1 ? (double)(float)s[j * 2 + i] : 4))
                defect(__LINE__, "cg_fill_", "wrong values through a stepped slice");
    done();
}

static void test_misuse_printing_and_rng(void **state) {
    cg_ctx *ctx = *state;
    char buf[256];
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    BAD(cg_fprint, NULL, cg_zeros(ctx, CG_F32, CG_SHAPE(2)));
    OK_S(cg_fprint, devnull, NULL);
    QUIET("cg_format", cg_format(NULL, buf, sizeof buf) == strlen("tensor(NULL)"));
    SENTINEL("cg_format", cg_format(cg_zeros(ctx, CG_F32, CG_SHAPE(2)), NULL, 4) == 0);
    QUIET("cg_format", cg_format(cg_zeros(ctx, CG_F32, CG_SHAPE(2)), NULL, 0) > 0);
    cg_tensor *r8 = cg_ones(ctx, CG_F32, CG_MAX_DIMS, r8_shape);
    cg_clear_error();
    size_t len = cg_format(r8, buf, sizeof buf);
    if (len == 0 || cg_last_status() != CG_OK || !strstr(buf, "shape=[1,2,1,1,1,1,1,3]"))
        defect(__LINE__, "cg_format", "rank 8: \"%s\"", buf);
    cg_format(cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), buf, sizeof buf);
    if (strcmp(buf, "tensor([], shape=[0,3], dtype=f64)") != 0)
        defect(__LINE__, "cg_format", "empty: \"%s\"", buf);
    cg_format(cg_expand(ctx, cg_scalar(ctx, CG_I64, 7), CG_SHAPE(2, 2)), buf, sizeof buf);
    if (strcmp(buf, "tensor([[7, 7],\n        [7, 7]], shape=[2,2], dtype=i64)") != 0)
        defect(__LINE__, "cg_format", "expanded: \"%s\"", buf);
    /* a failed write */
    FILE *ro = fopen("/dev/null", "r");
    assert_non_null(ro);
    BAD(cg_fprint, ro, cg_zeros(ctx, CG_F32, CG_SHAPE(2)));
    fclose(ro);
    fclose(devnull);
    /* cg_print writes to stdout: one empty tensor, one line of output */
    OK_S(cg_print, cg_zeros(ctx, CG_F32, CG_SHAPE(0)));

    BAD(cg_rng_seed, NULL, 1);
    SENTINEL("cg_rng_u64", cg_rng_u64(NULL) == 0);
    SENTINEL("cg_rng_uniform", cg_rng_uniform(NULL) == 0);
    SENTINEL("cg_rng_normal", isnan(cg_rng_normal(NULL)));
    done();
}

/* ======================================================================== */
/* autograd/autograd.h                                                      */
/* ======================================================================== */

static cg_status twice_back(cg_ctx *ctx, const cg_node *node, const cg_tensor *gout,
                            cg_tensor **gin) {
    if (cg_node_needs_grad(node, 0)) gin[0] = cg_mul_scalar(ctx, gout, 2);
    return CG_OK;
}
static const cg_op twice_op = {"twice", twice_back, 0};
static const cg_op no_backward_op = {"nobackward", NULL, 0};

static void test_misuse_record_and_nodes(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(2));
    cg_set_requires_grad(x, true);
    const cg_tensor *in[1] = {x}, *none[1] = {NULL};
    char saved[8] = {0};
    NUL(cg_record, ctx, NULL, cg_zeros(ctx, CG_F64, CG_SHAPE(2)), 1, in, NULL, 0);
    NUL(cg_record, ctx, &no_backward_op, cg_zeros(ctx, CG_F64, CG_SHAPE(2)), 1, in, NULL, 0);
    NUL(cg_record, ctx, &twice_op, cg_zeros(ctx, CG_F64, CG_SHAPE(2)), -1, in, NULL, 0);
    NUL(cg_record, ctx, &twice_op, cg_zeros(ctx, CG_F64, CG_SHAPE(2)), 1, NULL, NULL, 0);
    NUL(cg_record, ctx, &twice_op, cg_zeros(ctx, CG_F64, CG_SHAPE(2)), 1, in, NULL, 8);
    /* caller-owned out: freed on failure (ASan would see the leak) */
    cg_clear_error(); /* a graph needs a context: named after the op being recorded */
    fails_t(cg_record(NULL, &twice_op, cg_zeros(NULL, CG_F64, CG_SHAPE(2)), 1, in, NULL, 0),
            "cg_twice", __LINE__);
    NUL(cg_record, NULL, NULL, cg_zeros(NULL, CG_F64, CG_SHAPE(2)), 1, in, NULL, 0);
    /* a NULL out or input: an op's own failure, named after the op */
    cg_clear_error();
    fails_t(cg_record(ctx, &twice_op, NULL, 1, in, NULL, 0), "cg_twice", __LINE__);
    cg_clear_error();
    fails_t(cg_record(ctx, &twice_op, cg_zeros(ctx, CG_F64, CG_SHAPE(2)), 1, none, NULL, 0),
            "cg_twice", __LINE__);
    KEEPS(cg_record, ctx, &twice_op, NULL, 1, in, NULL, 0);
    /* a huge saved block is out of memory, not a wrapped size */
    NUL(cg_record, ctx, &twice_op, cg_zeros(ctx, CG_F64, CG_SHAPE(2)), 1, in, saved,
        SIZE_MAX - 16);
    cg_tensor *y = OK_T(cg_record, ctx, &twice_op, cg_zeros(ctx, CG_F64, CG_SHAPE(2)), 1, in,
                        saved, sizeof saved);
    const cg_node *node = cg_grad_fn(y);
    /* accessors */
    SENTINEL("cg_node_op", cg_node_op(NULL) == NULL);
    SENTINEL("cg_node_ninputs", cg_node_ninputs(NULL) == 0);
    SENTINEL("cg_node_input", cg_node_input(NULL, 0) == NULL);
    SENTINEL("cg_node_input", cg_node_input(node, 1) == NULL);
    SENTINEL("cg_node_input", cg_node_input(node, -1) == NULL);
    SENTINEL("cg_node_output", cg_node_output(NULL) == NULL);
    SENTINEL("cg_node_saved", cg_node_saved(NULL) == NULL);
    SENTINEL("cg_node_needs_grad", !cg_node_needs_grad(NULL, 0));
    SENTINEL("cg_node_needs_grad", !cg_node_needs_grad(node, 1));
    SENTINEL("cg_node_needs_grad", !cg_node_needs_grad(node, INT32_MIN));
    SENTINEL("cg_node_grad_sink", cg_node_grad_sink(NULL, 0) == NULL);
    SENTINEL("cg_node_grad_sink", cg_node_grad_sink(node, 5) == NULL);
    QUIET("cg_node_grad_sink", cg_node_grad_sink(node, 0) == NULL); /* outside a backward */
    SENTINEL("cg_grad_fn", cg_grad_fn(NULL) == NULL);
    QUIET("cg_node_op", cg_node_op(node) == &twice_op && cg_node_ninputs(node) == 1);
    QUIET("cg_node_saved", cg_node_saved(node) != NULL && cg_node_output(node) == y);
    done();
}

static void test_misuse_leaves_and_grad_mode(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(2, 3));
    BAD(cg_set_requires_grad, NULL, true);
    KEEPS_S(cg_set_requires_grad, NULL, true);
    BAD(cg_set_requires_grad, cg_zeros(ctx, CG_I64, CG_SHAPE(2)), true);
    OK_S(cg_set_requires_grad, cg_zeros(ctx, CG_I64, CG_SHAPE(2)), false);
    OK_S(cg_set_requires_grad, x, true);
    BAD(cg_set_requires_grad, cg_mul(ctx, x, x), true);
    SENTINEL("cg_requires_grad", !cg_requires_grad(NULL));
    SENTINEL("cg_is_leaf", !cg_is_leaf(NULL));
    SENTINEL("cg_grad_of", cg_grad_of(NULL) == NULL);
    /* set_grad: NULL, shape, dtype, owner, itself, a non-leaf */
    cg_tensor *t = cg_zeros(NULL, CG_F64, CG_SHAPE(2, 3));
    cg_tensor *g = cg_zeros(NULL, CG_F64, CG_SHAPE(2, 3));
    BAD(cg_set_grad, NULL, g); /* g is not taken */
    cg_tensor_free(g);
    BAD(cg_set_grad, t, NULL);
    KEEPS_S(cg_set_grad, t, NULL);
    g = cg_zeros(NULL, CG_F64, CG_SHAPE(3, 2));
    BAD(cg_set_grad, t, g);
    cg_tensor_free(g);
    g = cg_zeros(NULL, CG_F32, CG_SHAPE(2, 3));
    BAD(cg_set_grad, t, g);
    cg_tensor_free(g);
    BAD(cg_set_grad, t, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3))); /* a context g for a heap t */
    BAD(cg_set_grad, t, t);
    BAD(cg_set_grad, cg_mul(ctx, x, x), cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3)));
    /* a transposed (non-contiguous) gradient of the right shape */
    cg_tensor *gbase = cg_zeros(NULL, CG_F64, CG_SHAPE(3, 2));
    cg_tensor *gt = cg_transpose(NULL, gbase, 0, 1);
    cg_tensor_free(gbase); /* the view keeps the storage */
    cg_set_requires_grad(t, true);
    cg_clear_error();
    cg_status st = cg_set_grad(t, gt);
    if (st != CG_OK) {
        check_msg("cg_set_grad", __LINE__);
        cg_tensor_free(gt);
    }
    cg_tensor_free(t);
    /* grad hooks: only on a leaf; removing one that is not there is fine */
    BAD(cg_set_grad_hook, NULL, NULL, NULL);
    BAD(cg_set_grad_hook, cg_mul(ctx, x, x), NULL, NULL);
    cg_tensor *hooked = cg_zeros(NULL, CG_F64, CG_SHAPE(2));
    OK_S(cg_set_grad_hook, hooked, NULL, NULL);
    cg_tensor_free(hooked); /* frees no hook twice */
    QUIET("cg_zero_grad", (cg_zero_grad(NULL), true));
    NUL(cg_detach, ctx, NULL);
    KEEPS(cg_detach, ctx, NULL);
    NUL(cg_detach, NULL, x); /* a heap view of a context tensor would dangle */
    /* grad mode */
    BAD(cg_no_grad_push, NULL);
    BAD(cg_no_grad_pop, NULL);
    BAD(cg_no_grad_pop, ctx);
    QUIET("cg_is_grad_enabled", !cg_is_grad_enabled(NULL));
    OK_S(cg_no_grad_push, ctx);
    QUIET("cg_is_grad_enabled", !cg_is_grad_enabled(ctx));
    OK_S(cg_no_grad_pop, ctx);
    QUIET("cg_is_grad_enabled", cg_is_grad_enabled(ctx));
    done();
}

static void test_misuse_backward_and_grad(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(2, 3));
    cg_set_requires_grad(x, true);
    cg_tensor *y = cg_mul(ctx, x, x), *loss = cg_sum(ctx, y, NULL, 0, false);
    BAD(cg_backward, NULL);
    KEEPS_S(cg_backward, NULL);
    BAD(cg_backward, y);                                  /* not one element, no grad_output */
    BAD(cg_backward, cg_zeros(ctx, CG_F64, CG_SHAPE(1))); /* nothing requires a gradient */
    cg_tensor *heap = cg_zeros(NULL, CG_F64, CG_SHAPE(1));
    BAD(cg_backward, heap); /* no context, no graph */
    cg_tensor_free(heap);
    BAD(cg_backward_ex, NULL, NULL, 0);
    KEEPS_S(cg_backward_ex, NULL, NULL, 0);
    BAD(cg_backward_ex, loss, NULL, 4);
    BAD(cg_backward_ex, loss, NULL, ~0u);
    BAD(cg_backward_ex, y, cg_ones(ctx, CG_F64, CG_SHAPE(3, 2)), 0);
    BAD(cg_backward_ex, y, cg_ones(ctx, CG_F64, CG_SHAPE(6)), 0);
    BAD(cg_backward_ex, y, cg_ones(ctx, CG_F32, CG_SHAPE(2, 3)), 0);
    BAD(cg_backward_ex, y, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)), 0);
    /* a non-contiguous grad_output is read where it points */
    cg_tensor *go = cg_transpose(ctx, cg_full(ctx, CG_F64, CG_SHAPE(3, 2), 3), 0, 1);
    OK_S(cg_backward_ex, y, go, CG_RETAIN_GRAPH);
    if (cg_item(cg_sum(ctx, cg_grad_of(x), NULL, 0, false)) != 36)
        defect(__LINE__, "cg_backward_ex", "wrong gradient");
    OK_S(cg_backward, loss);
    BAD(cg_backward, loss); /* the graph is gone */
    /* cg_grad */
    y = cg_mul(ctx, x, x);
    loss = cg_sum(ctx, y, NULL, 0, false);
    cg_tensor *grads[2], *outs[1] = {loss}, *ins[1] = {x}, *nul[1] = {NULL};
    cg_tensor *plain = cg_ones(ctx, CG_F64, CG_SHAPE(2));
    cg_tensor *ins2[1] = {plain};
    BAD(cg_grad, NULL, 1, outs, NULL, 1, ins, grads, CG_RETAIN_GRAPH);
    BAD(cg_grad, ctx, 0, outs, NULL, 1, ins, grads, CG_RETAIN_GRAPH);
    BAD(cg_grad, ctx, -1, outs, NULL, 1, ins, grads, CG_RETAIN_GRAPH);
    BAD(cg_grad, ctx, 1, NULL, NULL, 1, ins, grads, CG_RETAIN_GRAPH);
    BAD(cg_grad, ctx, 1, nul, NULL, 1, ins, grads, CG_RETAIN_GRAPH);
    BAD(cg_grad, ctx, 1, outs, NULL, 0, ins, grads, CG_RETAIN_GRAPH);
    BAD(cg_grad, ctx, 1, outs, NULL, -3, ins, grads, CG_RETAIN_GRAPH);
    BAD(cg_grad, ctx, 1, outs, NULL, 1, NULL, grads, CG_RETAIN_GRAPH);
    BAD(cg_grad, ctx, 1, outs, NULL, 1, nul, grads, CG_RETAIN_GRAPH);
    BAD(cg_grad, ctx, 1, outs, NULL, 1, ins2, grads, CG_RETAIN_GRAPH);
    BAD(cg_grad, ctx, 1, outs, NULL, 1, ins, NULL, CG_RETAIN_GRAPH);
    BAD(cg_grad, ctx, 1, outs, NULL, 1, ins, grads, 8);
    cg_tensor *yo[1] = {y};
    BAD(cg_grad, ctx, 1, yo, NULL, 1, ins, grads, CG_RETAIN_GRAPH); /* needs grad_outputs */
    const cg_tensor *bad_go[1] = {cg_ones(ctx, CG_F64, CG_SHAPE(3))};
    BAD(cg_grad, ctx, 1, yo, bad_go, 1, ins, grads, CG_RETAIN_GRAPH);
    /* outputs and inputs recorded in another context: its tape is not walked */
    cg_ctx *other = cg_ctx_new();
    cg_tensor *yo2[1] = {cg_sum(other, cg_mul(other, x, x), NULL, 0, false)};
    BAD(cg_grad, ctx, 1, yo2, NULL, 1, ins, grads, 0);
    cg_tensor *mid[1] = {cg_mul(other, x, x)};
    cg_tensor *yo3[1] = {cg_sum(ctx, cg_mul(ctx, x, x), NULL, 0, false)};
    BAD(cg_grad, ctx, 1, yo3, NULL, 1, mid, grads, CG_RETAIN_GRAPH);
    OK_S(cg_grad, other, 1, yo2, NULL, 1, ins, grads, 0);
    cg_ctx_free(other);
    const cg_tensor *no_go[1] = {NULL};
    OK_S(cg_grad, ctx, 1, outs, no_go, 1, ins, grads, 0);
    if (!grads[0] || cg_item(cg_sum(ctx, grads[0], NULL, 0, false)) != 12)
        defect(__LINE__, "cg_grad", "wrong gradient");
    done();
}

static cg_tensor *f_square(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    (void)user;
    return cg_sum(ctx, cg_square(ctx, in[0]), NULL, 0, false);
}
static cg_tensor *f_fails(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    (void)user;
    return cg_matmul(ctx, in[0], in[0]); /* [3] x [3] works, [2,3] x [2,3] does not */
}

static void test_misuse_gradcheck(void **state) {
    (void)state;
    cg_tensor *x = cg_ones(NULL, CG_F64, CG_SHAPE(2, 3));
    cg_tensor *f = cg_ones(NULL, CG_F32, CG_SHAPE(2, 3));
    cg_set_requires_grad(x, true);
    cg_set_requires_grad(f, true);
    cg_tensor *in[1] = {x}, *fin[1] = {f}, *nul[1] = {NULL};
    cg_gradcheck_report r;
    cg_gradcheck_opts bad = {.eps = -1, .atol = 1e-5, .rtol = 1e-3};
    cg_gradcheck_opts nan = {.eps = NAN, .atol = NAN, .rtol = NAN};
    typedef bool (*check_fn)(cg_fn, void *, int, cg_tensor *const *, const cg_gradcheck_opts *,
                             cg_gradcheck_report *);
    const struct {
        const char *name;
        check_fn f;
    } checks[] = {{"cg_gradcheck", cg_gradcheck}, {"cg_gradgradcheck", cg_gradgradcheck}};
    for (int i = 0; i < 2; i++) {
        const char *fn = checks[i].name;
        label = fn;
        SENTINEL(fn, !checks[i].f(NULL, NULL, 1, in, NULL, &r));
        SENTINEL(fn, !checks[i].f(f_square, NULL, -1, in, NULL, &r));
        SENTINEL(fn, !checks[i].f(f_square, NULL, 1, NULL, NULL, &r));
        SENTINEL(fn, !checks[i].f(f_square, NULL, 1, nul, NULL, NULL));
        SENTINEL(fn, !checks[i].f(f_square, NULL, 1, fin, NULL, &r));
        SENTINEL(fn, !checks[i].f(f_fails, NULL, 1, in, NULL, &r));
        SENTINEL(fn, !checks[i].f(f_square, NULL, 1, in, &bad, &r));
        SENTINEL(fn, !checks[i].f(f_square, NULL, 1, in, &nan, &r));
        QUIET(fn, checks[i].f(f_square, NULL, 1, in, NULL, NULL));
    }
    cg_gradcheck_opts d = cg_gradcheck_defaults();
    QUIET("cg_gradcheck_defaults", d.eps == 1e-6 && d.atol == 1e-5 && d.rtol == 1e-3);
    cg_tensor_free(x);
    cg_tensor_free(f);
    done();
}

/* ======================================================================== */
/* ops/ops.h                                                                */
/* ======================================================================== */

/* What a function does with an i64 input. */
typedef enum i64_rule { I64_ANY, I64_REFUSED } i64_rule;

/* ---- one tensor in, one out: tables of adapters ------------------------------ */
typedef cg_tensor *(*unary_fn)(cg_ctx *, const cg_tensor *);
#define ADAPT(name, call)                                                                      \
    static cg_tensor *name(cg_ctx *c, const cg_tensor *x) { return call; }
ADAPT(u_add_scalar, cg_add_scalar(c, x, 2))
ADAPT(u_sub_scalar, cg_sub_scalar(c, x, 2))
ADAPT(u_rsub_scalar, cg_rsub_scalar(c, x, 2))
ADAPT(u_mul_scalar, cg_mul_scalar(c, x, 2))
ADAPT(u_div_scalar, cg_div_scalar(c, x, 2))
ADAPT(u_pow_scalar, cg_pow_scalar(c, x, 1.5))
ADAPT(u_clamp, cg_clamp(c, x, 0.7, 1.5))
ADAPT(u_gt_scalar, cg_gt_scalar(c, x, 1))
ADAPT(u_lt_scalar, cg_lt_scalar(c, x, 1))
ADAPT(u_ge_scalar, cg_ge_scalar(c, x, 1))
ADAPT(u_le_scalar, cg_le_scalar(c, x, 1))
ADAPT(u_eq_scalar, cg_eq_scalar(c, x, 1))
ADAPT(u_ne_scalar, cg_ne_scalar(c, x, 1))
ADAPT(u_leaky_relu, cg_leaky_relu(c, x, 0.1))
ADAPT(u_elu, cg_elu(c, x, 1))
ADAPT(u_softplus, cg_softplus(c, x, 1, 20))
ADAPT(u_hardtanh, cg_hardtanh(c, x, -1, 1))
ADAPT(u_cast, cg_cast(c, x, CG_F32))
ADAPT(u_softmax, cg_softmax(c, x, -1))
ADAPT(u_log_softmax, cg_log_softmax(c, x, 0))
ADAPT(u_cumsum, cg_cumsum(c, x, -1))
ADAPT(u_cumprod, cg_cumprod(c, x, 0))
ADAPT(u_tril, cg_tril(c, x, 0))
ADAPT(u_triu, cg_triu(c, x, 1))
ADAPT(u_flip, cg_flip(c, x, (const int[]){0, 1}, 2))
ADAPT(u_roll, cg_roll(c, x, (const int64_t[]){1, -2}, (const int[]){0, 1}, 2))
ADAPT(u_dropout_eval, cg_dropout(c, x, 0.5, false, NULL))
ADAPT(u_dropout, cg_dropout(c, x, 0.0, true, &rng_))
ADAPT(u_where_scalar, cg_where_scalar(c, x, x, -1))
ADAPT(u_masked_fill, cg_masked_fill(c, x, x, -1))

/* Elementwise (and other shape-keeping) ops: the result has x's shape. */
static const struct unary {
    const char *name;
    unary_fn f;
    i64_rule i64;
    bool rank2; /* needs rank >= 2 (tril, triu) */
} unaries[] = {
    {"cg_neg", cg_neg, I64_ANY, false},
    {"cg_abs", cg_abs, I64_ANY, false},
    {"cg_sign", cg_sign, I64_ANY, false},
    {"cg_exp", cg_exp, I64_ANY, false},
    {"cg_log", cg_log, I64_ANY, false},
    {"cg_log1p", cg_log1p, I64_ANY, false},
    {"cg_sqrt", cg_sqrt, I64_ANY, false},
    {"cg_rsqrt", cg_rsqrt, I64_ANY, false},
    {"cg_square", cg_square, I64_ANY, false},
    {"cg_sin", cg_sin, I64_ANY, false},
    {"cg_cos", cg_cos, I64_ANY, false},
    {"cg_tanh", cg_tanh, I64_ANY, false},
    {"cg_sigmoid", cg_sigmoid, I64_ANY, false},
    {"cg_erf", cg_erf, I64_ANY, false},
    {"cg_relu", cg_relu, I64_ANY, false},
    {"cg_gelu", cg_gelu, I64_REFUSED, false},
    {"cg_gelu_tanh", cg_gelu_tanh, I64_REFUSED, false},
    {"cg_silu", cg_silu, I64_REFUSED, false},
    {"cg_leaky_relu", u_leaky_relu, I64_REFUSED, false},
    {"cg_elu", u_elu, I64_REFUSED, false},
    {"cg_softplus", u_softplus, I64_REFUSED, false},
    {"cg_hardtanh", u_hardtanh, I64_REFUSED, false},
    {"cg_contiguous", cg_contiguous, I64_ANY, false},
    {"cg_clone", cg_clone, I64_ANY, false},
    {"cg_cast", u_cast, I64_ANY, false},
    {"cg_add_scalar", u_add_scalar, I64_ANY, false},
    {"cg_sub_scalar", u_sub_scalar, I64_ANY, false},
    {"cg_rsub_scalar", u_rsub_scalar, I64_ANY, false},
    {"cg_mul_scalar", u_mul_scalar, I64_ANY, false},
    {"cg_div_scalar", u_div_scalar, I64_ANY, false},
    {"cg_pow_scalar", u_pow_scalar, I64_ANY, false},
    {"cg_clamp", u_clamp, I64_ANY, false},
    {"cg_gt_scalar", u_gt_scalar, I64_ANY, false},
    {"cg_lt_scalar", u_lt_scalar, I64_ANY, false},
    {"cg_ge_scalar", u_ge_scalar, I64_ANY, false},
    {"cg_le_scalar", u_le_scalar, I64_ANY, false},
    {"cg_eq_scalar", u_eq_scalar, I64_ANY, false},
    {"cg_ne_scalar", u_ne_scalar, I64_ANY, false},
    {"cg_softmax", u_softmax, I64_REFUSED, false},
    {"cg_log_softmax", u_log_softmax, I64_REFUSED, false},
    {"cg_cumsum", u_cumsum, I64_ANY, false},
    {"cg_cumprod", u_cumprod, I64_ANY, false},
    {"cg_tril", u_tril, I64_ANY, true},
    {"cg_triu", u_triu, I64_ANY, true},
    {"cg_flip", u_flip, I64_ANY, true},
    {"cg_roll", u_roll, I64_ANY, true},
    {"cg_dropout", u_dropout_eval, I64_REFUSED, false},
    {"cg_dropout", u_dropout, I64_REFUSED, false},
    {"cg_where_scalar", u_where_scalar, I64_ANY, false},
    {"cg_masked_fill", u_masked_fill, I64_ANY, false},
};

/* f on a view equals f on its contiguous copy. */
static void view_agrees(cg_ctx *ctx, const char *fn, unary_fn f, const cg_tensor *v, int line) {
    cg_clear_error();
    cg_tensor *got = f(ctx, v), *want = f(ctx, cg_contiguous(ctx, v));
    if (!got)
        defect(line, fn, "a view was refused: \"%s\"", cg_last_error());
    else if (!same_tensor(got, want, 1e-6))
        defect(line, fn, "wrong result on a view");
    cg_clear_error();
}

/* A heap leaf requiring a gradient given with ctx NULL: refused under f's own
 * name (a graph needs a context), or a result that requires no gradient. */
static void heap_grad_input(const char *fn, cg_tensor *r, int line) {
    if (!r) {
        check_msg(fn, line);
        return;
    }
    if (cg_requires_grad(r)) defect(line, fn, "a graph recorded without a context");
    cg_tensor_free(r);
    cg_clear_error();
}

/* Backward through f at leaf (zero-size or a view's base): the gradient
 * reaches the leaf with its shape, or f records nothing. */
static void backward_reaches(cg_ctx *ctx, const char *fn, cg_tensor *y, const cg_tensor *leaf,
                             int line) {
    cg_clear_error();
    if (!y) {
        defect(line, fn, "refused: \"%s\"", cg_last_error());
        return;
    }
    if (!cg_requires_grad(y)) return; /* comparisons, casts to i64: no gradient */
    cg_tensor *loss = cg_sum(ctx, cg_cast(ctx, y, cg_dtype_of(leaf)), NULL, 0, false);
    if (cg_backward(loss) != CG_OK)
        defect(line, fn, "backward failed: \"%s\"", cg_last_error());
    else if (!cg_grad_of(leaf) || !cg_same_shape(cg_grad_of(leaf), leaf))
        defect(line, fn, "backward: no gradient of the leaf's shape");
    cg_clear_error();
}

/* The common battery of a one-input op: NULL, a kept error, zero-size,
 * rank 8, views, i64, a heap input requiring a gradient. */
static void unary_battery(cg_ctx *ctx, const char *fn, unary_fn f, i64_rule i64, bool rank2,
                          cg_tensor *heap_leaf) {
    cg_clear_error();
    fails_t(f(ctx, NULL), fn, __LINE__);
    prior_error();
    keeps_prior(f(ctx, NULL), fn, __LINE__);
    cg_tensor *z = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), *r;
    cg_clear_error();
    if (!(r = succeeds_t(f(ctx, z), fn, __LINE__)) || cg_numel(r) != 0)
        defect(__LINE__, fn, "zero-size: wrong result");
    cg_tensor *r8 = pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape);
    cg_clear_error();
    if (!(r = succeeds_t(f(ctx, r8), fn, __LINE__)) || cg_ndim(r) != CG_MAX_DIMS)
        defect(__LINE__, fn, "rank 8: wrong result");
    if (!rank2) {
        cg_tensor *s = cg_scalar(ctx, CG_F64, 1.25);
        cg_clear_error();
        if (!(r = f(ctx, s)) || cg_ndim(r) != 0) {
            if (r)
                defect(__LINE__, fn, "rank 0: wrong rank");
            else
                check_msg(fn, __LINE__);
        }
    } else {
        cg_clear_error();
        fails_t(f(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(3))), fn, __LINE__);
    }
    view_case vc[NVIEWS];
    make_views(ctx, vc);
    for (int i = 0; i < NVIEWS; i++) view_agrees(ctx, fn, f, vc[i].v, __LINE__);
    cg_tensor *iv = cg_cast(ctx, cg_mul_scalar(ctx, vc[0].v, 3), CG_I64);
    cg_clear_error();
    r = f(ctx, iv);
    if (i64 == I64_REFUSED)
        fails_t(r, fn, __LINE__);
    else if (!r)
        defect(__LINE__, fn, "i64 refused: \"%s\"", cg_last_error());
    else if (cg_ndim(r) != 2)
        defect(__LINE__, fn, "i64: wrong shape");
    cg_clear_error();
    heap_grad_input(fn, f(NULL, heap_leaf), __LINE__);
    /* backward from a zero-size leaf and through a view of one */
    cg_tensor *zl = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)),
              *vl = pos(ctx, CG_F64, CG_SHAPE(3, 4));
    cg_set_requires_grad(zl, true);
    cg_set_requires_grad(vl, true);
    if (!rank2) backward_reaches(ctx, fn, f(ctx, zl), zl, __LINE__);
    backward_reaches(ctx, fn, f(ctx, cg_transpose(ctx, vl, 0, 1)), vl, __LINE__);
}

static void test_misuse_unary_ops(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *hl = cg_ones(NULL, CG_F64, CG_SHAPE(2, 3));
    cg_set_requires_grad(hl, true);
    for (size_t i = 0; i < sizeof unaries / sizeof *unaries; i++) {
        label = unaries[i].name;
        unary_battery(ctx, unaries[i].name, unaries[i].f, unaries[i].i64, unaries[i].rank2, hl);
        cg_ctx_reset(ctx);
    }
    label = NULL;
    cg_tensor_free(hl);
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3));
    /* the scalar arguments of the unary ops */
    NUL(cg_cast, ctx, x, (cg_dtype)3);
    NUL(cg_cast, ctx, x, (cg_dtype)-1);
    NUL(cg_clamp, ctx, x, 2, 1);
    NUL(cg_clamp, ctx, x, NAN, 1);
    NUL(cg_hardtanh, ctx, x, 1, -1);
    NUL(cg_hardtanh, ctx, x, NAN, 1);
    NUL(cg_softplus, ctx, x, 0, 20);
    NUL(cg_softplus, ctx, x, NAN, 20);
    NUL(cg_leaky_relu, ctx, x, NAN);
    NUL(cg_elu, ctx, x, NAN);
    NUL(cg_dropout, ctx, x, -0.1, true, &rng_);
    NUL(cg_dropout, ctx, x, 1.0, true, &rng_);
    NUL(cg_dropout, ctx, x, NAN, true, &rng_);
    NUL(cg_dropout, ctx, x, 0.5, true, NULL);
    NUL(cg_masked_fill, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2)),
        cg_ones(ctx, CG_I64, CG_SHAPE(2)), 1e300);
    NUL(cg_masked_fill, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2)),
        cg_ones(ctx, CG_I64, CG_SHAPE(2)), NAN);
    done();
}

/* ---- two tensors in ------------------------------------------------------- */
typedef cg_tensor *(*binary_fn)(cg_ctx *, const cg_tensor *, const cg_tensor *);
static cg_tensor *b_masked_fill(cg_ctx *c, const cg_tensor *x, const cg_tensor *m) {
    return cg_masked_fill(c, x, m, 7);
}
static cg_tensor *b_where_scalar(cg_ctx *c, const cg_tensor *cond, const cg_tensor *x) {
    return cg_where_scalar(c, cond, x, 7);
}
static cg_tensor *b_where(cg_ctx *c, const cg_tensor *a, const cg_tensor *b) {
    return cg_where(c, a, a, b); /* a is never 0: a */
}

/* Broadcasting elementwise ops. */
static const struct binary {
    const char *name;
    binary_fn f;
} binaries[] = {
    {"cg_add", cg_add},
    {"cg_sub", cg_sub},
    {"cg_mul", cg_mul},
    {"cg_div", cg_div},
    {"cg_pow", cg_pow},
    {"cg_maximum", cg_maximum},
    {"cg_minimum", cg_minimum},
    {"cg_gt", cg_gt},
    {"cg_lt", cg_lt},
    {"cg_ge", cg_ge},
    {"cg_le", cg_le},
    {"cg_eq", cg_eq},
    {"cg_ne", cg_ne},
    {"cg_masked_fill", b_masked_fill},
    {"cg_where_scalar", b_where_scalar},
    {"cg_where", b_where},
};

static void binary_views(cg_ctx *ctx, const char *fn, binary_fn f) {
    view_case va[NVIEWS], vb[NVIEWS];
    make_views(ctx, va);
    make_views(ctx, vb);
    for (int i = 0; i < NVIEWS; i++) {
        const cg_tensor *a = va[i].v, *b = vb[(i + 1) % NVIEWS].v;
        cg_clear_error();
        cg_tensor *got = f(ctx, a, b),
                  *want = f(ctx, cg_contiguous(ctx, a), cg_contiguous(ctx, b));
        if (!got)
            defect(__LINE__, fn, "views refused: \"%s\"", cg_last_error());
        else if (!same_tensor(got, want, 1e-9))
            defect(__LINE__, fn, "wrong result on views");
    }
}

static void binary_battery(cg_ctx *ctx, const char *fn, binary_fn f) {
    cg_tensor *a = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *r;
    cg_clear_error();
    fails_t(f(ctx, NULL, a), fn, __LINE__);
    cg_clear_error();
    fails_t(f(ctx, a, NULL), fn, __LINE__);
    prior_error();
    keeps_prior(f(ctx, a, NULL), fn, __LINE__);
    prior_error();
    keeps_prior(f(ctx, NULL, a), fn, __LINE__);
    cg_clear_error();
    fails_t(f(ctx, a, pos(ctx, CG_F64, CG_SHAPE(4))), fn, __LINE__);
    cg_clear_error();
    fails_t(f(ctx, a, pos(ctx, CG_F64, CG_SHAPE(3, 2))), fn, __LINE__);
    /* rank 9 by broadcasting: refused */
    cg_tensor *r8 = pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape);
    cg_clear_error();
    r = succeeds_t(f(ctx, r8, pos(ctx, CG_F64, CG_SHAPE(2, 1, 1, 1, 1, 1, 1, 1))), fn,
                   __LINE__);
    if (r && cg_ndim(r) != CG_MAX_DIMS) defect(__LINE__, fn, "rank 8: wrong rank");
    /* zero-size broadcasting */
    cg_clear_error();
    r = succeeds_t(f(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), pos(ctx, CG_F64, CG_SHAPE(3))),
                   fn, __LINE__);
    if (r && !HAS_SHAPE(r, 0, 3)) defect(__LINE__, fn, "zero-size: wrong shape");
    cg_clear_error();
    r = succeeds_t(
        f(ctx, pos(ctx, CG_F64, CG_SHAPE(1, 3)), cg_zeros(ctx, CG_F64, CG_SHAPE(0, 1))), fn,
        __LINE__);
    if (r && !HAS_SHAPE(r, 0, 3)) defect(__LINE__, fn, "zero-size: wrong shape");
    cg_clear_error();
    fails_t(f(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), pos(ctx, CG_F64, CG_SHAPE(2, 3))), fn,
            __LINE__);
    /* f32 with f64, i64 with f32: promoted */
    cg_clear_error();
    r = succeeds_t(f(ctx, pos(ctx, CG_F32, CG_SHAPE(2, 3)), a), fn, __LINE__);
    cg_clear_error();
    r = succeeds_t(f(ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)), pos(ctx, CG_F32, CG_SHAPE(3))),
                   fn, __LINE__);
    binary_views(ctx, fn, f);
    cg_tensor *zl = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), *row = pos(ctx, CG_F64, CG_SHAPE(3));
    cg_set_requires_grad(zl, true);
    cg_set_requires_grad(row, true);
    backward_reaches(ctx, fn, f(ctx, zl, row), zl, __LINE__);
    if (cg_requires_grad(f(ctx, zl, row)) &&
        (!cg_grad_of(row) || cg_item(cg_sum(ctx, cg_grad_of(row), NULL, 0, false)) != 0))
        defect(__LINE__, fn,
               "backward: a broadcast operand of an empty result gets no zero gradient");
    cg_clear_error();
    cg_tensor *vl = pos(ctx, CG_F64, CG_SHAPE(3, 4));
    cg_set_requires_grad(vl, true);
    cg_tensor *ex = cg_expand(ctx, row, CG_SHAPE(4, 3));
    backward_reaches(ctx, fn, f(ctx, cg_transpose(ctx, vl, 0, 1), ex), vl, __LINE__);
}

static void test_misuse_binary_ops(void **state) {
    cg_ctx *ctx = *state;
    for (size_t i = 0; i < sizeof binaries / sizeof *binaries; i++) {
        label = binaries[i].name;
        binary_battery(ctx, binaries[i].name, binaries[i].f);
        cg_ctx_reset(ctx);
    }
    label = NULL;
    /* where: the condition's own checks */
    cg_tensor *a = pos(ctx, CG_F64, CG_SHAPE(2, 3));
    NUL(cg_where, ctx, NULL, a, a);
    KEEPS(cg_where, ctx, NULL, a, a);
    NUL(cg_where, ctx, pos(ctx, CG_F64, CG_SHAPE(4)), a, a);
    cg_tensor *r =
        OK_T(cg_where, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(3)), a, cg_scalar(ctx, CG_F32, 0));
    if (!HAS_SHAPE(r, 2, 3) || cg_dtype_of(r) != CG_F64) defect(__LINE__, "cg_where", "wrong");
    done();
}

/* ---- reductions ------------------------------------------------------------ */
typedef cg_tensor *(*reduce_fn)(cg_ctx *, const cg_tensor *, const int *, int, bool);
static cg_tensor *r_var(cg_ctx *c, const cg_tensor *x, const int *a, int n, bool k) {
    return cg_var(c, x, a, n, 1, k);
}
static cg_tensor *r_std(cg_ctx *c, const cg_tensor *x, const int *a, int n, bool k) {
    return cg_std(c, x, a, n, 0, k);
}
static cg_tensor *r_norm(cg_ctx *c, const cg_tensor *x, const int *a, int n, bool k) {
    return cg_norm(c, x, 2, a, n, k);
}
static cg_tensor *r_norm_inf(cg_ctx *c, const cg_tensor *x, const int *a, int n, bool k) {
    return cg_norm(c, x, INFINITY, a, n, k);
}
static const struct reduction {
    const char *name;
    reduce_fn f;
    bool empty_ok; /* defined over no elements (sum: 0, mean: NaN) */
    i64_rule i64;
} reductions[] = {
    {"cg_sum", cg_sum, true, I64_ANY},
    {"cg_mean", cg_mean, true, I64_REFUSED},
    {"cg_max", cg_max, false, I64_ANY},
    {"cg_min", cg_min, false, I64_ANY},
    {"cg_var", r_var, true, I64_REFUSED},
    {"cg_std", r_std, true, I64_REFUSED},
    {"cg_logsumexp", cg_logsumexp, true, I64_REFUSED},
    {"cg_norm", r_norm, true, I64_REFUSED},
    {"cg_norm", r_norm_inf, true, I64_REFUSED},
};

static void reduction_battery(cg_ctx *ctx, const struct reduction *rd) {
    const char *fn = rd->name;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *r;
    static const struct {
        const char *what;
        int axes[3];
        int n;
        bool null;
    } bad[] = {{"axes NULL", {0}, 1, true},
               {"naxes -1", {0}, -1, false},
               {"naxes 9", {0, 1}, 9, false},
               {"axis 2", {2}, 1, false},
               {"axis -3", {-3}, 1, false},
               {"axis 8", {8}, 1, false},
               {"axis INT_MIN", {INT32_MIN}, 1, false},
               {"repeated", {0, 0}, 2, false},
               {"repeated after wrapping", {1, -1}, 2, false},
               {"three of rank 2", {0, 1, 0}, 3, false}};
    cg_clear_error();
    fails_t(rd->f(ctx, NULL, NULL, 0, false), fn, __LINE__);
    prior_error();
    keeps_prior(rd->f(ctx, NULL, NULL, 0, false), fn, __LINE__);
    for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
        cg_clear_error();
        r = rd->f(ctx, x, bad[b].null ? NULL : bad[b].axes, bad[b].n, false);
        if (r)
            defect(__LINE__, fn, "%s accepted", bad[b].what);
        else
            check_msg(fn, __LINE__);
    }
    /* zero-size: over the empty axis, over the other, over all */
    cg_tensor *z = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3));
    const int ax0[1] = {0}, ax1[1] = {1};
    cg_clear_error();
    r = rd->f(ctx, z, ax1, 1, false);
    if (!r || !HAS_SHAPE(r, 0))
        defect(__LINE__, fn, "[0,3] over axis 1: \"%s\"", cg_last_error());
    cg_clear_error();
    r = rd->f(ctx, z, ax0, 1, true);
    if (rd->empty_ok && (!r || !HAS_SHAPE(r, 1, 3)))
        defect(__LINE__, fn, "[0,3] over axis 0: \"%s\"", cg_last_error());
    if (!rd->empty_ok) fails_t(r, fn, __LINE__);
    cg_clear_error();
    r = rd->f(ctx, z, NULL, 0, false);
    if (!rd->empty_ok)
        fails_t(r, fn, __LINE__);
    else if (!r || cg_ndim(r) != 0)
        defect(__LINE__, fn, "[0,3] over all: \"%s\"", cg_last_error());
    /* rank 8, every axis listed */
    cg_tensor *r8 = pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape);
    const int all8[8] = {0, 1, 2, 3, 4, 5, 6, -1};
    cg_clear_error();
    r = succeeds_t(rd->f(ctx, r8, all8, 8, true), fn, __LINE__);
    if (r && cg_numel(r) != 1) defect(__LINE__, fn, "rank 8: wrong result");
    /* views, over one axis and all */
    view_case vc[NVIEWS];
    make_views(ctx, vc);
    for (int i = 0; i < NVIEWS; i++) {
        for (int k = 0; k < 3; k++) {
            const int *axes = k == 2 ? NULL : (k ? ax1 : ax0);
            cg_clear_error();
            cg_tensor *got = rd->f(ctx, vc[i].v, axes, k == 2 ? 0 : 1, false);
            cg_tensor *want =
                rd->f(ctx, cg_contiguous(ctx, vc[i].v), axes, k == 2 ? 0 : 1, false);
            if (!got)
                defect(__LINE__, fn, "%s refused", vc[i].name);
            else if (!same_tensor(got, want, 1e-9))
                defect(__LINE__, fn, "%s: wrong", vc[i].name);
        }
    }
    cg_tensor *zl = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)),
              *vl = pos(ctx, CG_F64, CG_SHAPE(3, 4));
    cg_set_requires_grad(zl, true);
    cg_set_requires_grad(vl, true);
    cg_clear_error();
    backward_reaches(ctx, fn, rd->f(ctx, zl, ax1, 1, false), zl, __LINE__);
    backward_reaches(ctx, fn, rd->f(ctx, cg_transpose(ctx, vl, 0, 1), ax0, 1, true), vl,
                     __LINE__);
    cg_clear_error();
    r = rd->f(ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)), NULL, 0, false);
    if (rd->i64 == I64_REFUSED)
        fails_t(r, fn, __LINE__);
    else if (!r)
        defect(__LINE__, fn, "i64 refused: \"%s\"", cg_last_error());
}

static void test_misuse_reductions(void **state) {
    cg_ctx *ctx = *state;
    for (size_t i = 0; i < sizeof reductions / sizeof *reductions; i++) {
        label = reductions[i].name;
        reduction_battery(ctx, &reductions[i]);
        cg_ctx_reset(ctx);
    }
    label = NULL;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3));
    NUL(cg_var, ctx, x, NULL, 0, NAN, false);
    OK_T(cg_var, ctx, x, NULL, 0, -1, false); /* N + 1, as torch's correction=-1 */
    NUL(cg_std, ctx, x, NULL, 0, INFINITY, false);
    NUL(cg_norm, ctx, x, 0, NULL, 0, false);
    NUL(cg_norm, ctx, x, -2, NULL, 0, false);
    NUL(cg_norm, ctx, x, NAN, NULL, 0, false);
    /* the norm of nothing is 0 for every p (torch.norm), and its gradient empty */
    for (int i = 0; i < 3; i++) {
        const double p = i == 0 ? 1 : i == 1 ? 3 : INFINITY;
        cg_tensor *z = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3));
        cg_set_requires_grad(z, true);
        cg_tensor *n = OK_T(cg_norm, ctx, z, p, (const int[]){0}, 1, false);
        if (!n || !same_tensor(n, cg_zeros(ctx, CG_F64, CG_SHAPE(3)), 0))
            defect(__LINE__, "cg_norm", "p %g of [0,3] over axis 0: not 0", p);
        OK_S(cg_backward, cg_sum(ctx, n, NULL, 0, false));
        if (!HAS_SHAPE(cg_grad_of(z), 0, 3)) defect(__LINE__, "cg_norm", "no empty gradient");
    }
    /* argmax / argmin: one axis or CG_ALL_DIMS */
    const struct {
        const char *name;
        cg_tensor *(*f)(cg_ctx *, const cg_tensor *, int, bool);
    } args[] = {{"cg_argmax", cg_argmax}, {"cg_argmin", cg_argmin}};
    for (int i = 0; i < 2; i++) {
        const char *fn = args[i].name;
        label = fn;
        cg_clear_error();
        fails_t(args[i].f(ctx, NULL, 0, false), fn, __LINE__);
        prior_error();
        keeps_prior(args[i].f(ctx, NULL, 0, false), fn, __LINE__);
        const int badax[] = {2, -3, 8, -9, INT32_MAX, INT32_MIN + 1};
        for (size_t b = 0; b < sizeof badax / sizeof *badax; b++) {
            cg_clear_error();
            fails_t(args[i].f(ctx, x, badax[b], false), fn, __LINE__);
        }
        cg_clear_error();
        fails_t(args[i].f(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), 0, false), fn, __LINE__);
        cg_clear_error();
        fails_t(args[i].f(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), CG_ALL_DIMS, false), fn,
                __LINE__);
        cg_clear_error();
        cg_tensor *r = succeeds_t(
            args[i].f(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), 1, false), fn, __LINE__);
        if (r && !HAS_SHAPE(r, 0)) defect(__LINE__, fn, "zero-size: wrong shape");
        view_case vc[NVIEWS];
        make_views(ctx, vc);
        for (int v = 0; v < NVIEWS; v++)
            for (int ax = -1; ax < 2; ax++) {
                int a = ax < 0 ? CG_ALL_DIMS : ax;
                cg_clear_error();
                if (!same_tensor(args[i].f(ctx, vc[v].v, a, true),
                                 args[i].f(ctx, cg_contiguous(ctx, vc[v].v), a, true), 0))
                    defect(__LINE__, fn, "%s: wrong", vc[v].name);
            }
        r = succeeds_t(
            args[i].f(ctx, pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape), CG_ALL_DIMS, true), fn,
            __LINE__);
        if (r && cg_ndim(r) != CG_MAX_DIMS) defect(__LINE__, fn, "rank 8 keepdim: wrong rank");
    }
    label = NULL;
    done();
}

/* ---- views and shape ops ---------------------------------------------------- */
static cg_tensor *x_out_; /* cg_sort's values, for the adapter below */
ADAPT(s_view, cg_view(c, x, 1, (const int64_t[]){-1}))
ADAPT(s_reshape, cg_reshape(c, x, 3, (const int64_t[]){2, -1, 3}))
ADAPT(s_transpose, cg_transpose(c, x, 0, -1))
ADAPT(s_permute, cg_permute(c, x, (const int[]){1, 0}))
ADAPT(s_slice, cg_slice(c, x, 0, -3, CG_END, 2))
ADAPT(s_narrow, cg_narrow(c, x, 1, 1, 2))
ADAPT(s_select, cg_select(c, x, 0, -1))
ADAPT(s_expand, cg_expand(c, x, 3, (const int64_t[]){2, -1, -1}))
ADAPT(s_squeeze, cg_squeeze(c, x, CG_ALL_DIMS))
ADAPT(s_unsqueeze, cg_unsqueeze(c, x, -1))
ADAPT(s_flatten, cg_flatten(c, x, 0, -1))
ADAPT(s_repeat, cg_repeat(c, x, 3, (const int64_t[]){2, 1, 2}))
ADAPT(s_pad, cg_pad(c, x, 4, (const int64_t[]){1, -1, 2, 0}, CG_PAD_CONSTANT, 5))
ADAPT(s_pad_reflect, cg_pad(c, x, 2, (const int64_t[]){2, 1}, CG_PAD_REFLECT, 0))
ADAPT(s_pad_replicate, cg_pad(c, x, 2, (const int64_t[]){3, 1}, CG_PAD_REPLICATE, 0))
ADAPT(s_index_select,
      cg_index_select(c, x, 1,
                      cg_from_array(c, CG_I64, CG_SHAPE(3), (const int64_t[]){2, 0, 2})))
ADAPT(s_gather,
      cg_gather(c, x, 0, cg_from_array(c, CG_I64, CG_SHAPE(1, 2), (const int64_t[]){3, 0})))
ADAPT(s_embedding,
      cg_embedding(c, x, cg_from_array(c, CG_I64, CG_SHAPE(2), (const int64_t[]){3, 1})))
static cg_tensor *w34_; /* [3,4], made by the test */
ADAPT(s_matmul, cg_matmul(c, x, w34_))
ADAPT(s_linear, cg_linear(c, x, cg_transpose(c, w34_, 0, 1), NULL))
ADAPT(s_einsum, cg_einsum(c, "ij->ji", x, NULL))
ADAPT(s_einsum2, cg_einsum(c, "ij,kj->ik", x, x))
ADAPT(s_concat, cg_concat(c, 2, (const cg_tensor *[]){x, x}, 1))
ADAPT(s_stack, cg_stack(c, 2, (const cg_tensor *[]){x, x}, 2))
ADAPT(s_scatter_add,
      cg_scatter_add(c, x, 1, cg_from_array(c, CG_I64, CG_SHAPE(1, 2), (const int64_t[]){2, 2}),
                     x))
ADAPT(s_index_add,
      cg_index_add(c, x, 0,
                   cg_from_array(c, CG_I64, CG_SHAPE(4), (const int64_t[]){1, 1, 0, 3}), x))
ADAPT(s_sort_values, (cg_sort(c, x, 0, true, &x_out_, NULL) == CG_OK ? x_out_ : NULL))

/* Shape-changing ops on a [4,3] input (the views of make_views). */
static const struct shaped {
    const char *name;
    unary_fn f;
} shaped[] = {
    {"cg_view", s_view}, /* refuses these views (strides), checked apart */
    {"cg_reshape", s_reshape},
    {"cg_transpose", s_transpose},
    {"cg_permute", s_permute},
    {"cg_slice", s_slice},
    {"cg_narrow", s_narrow},
    {"cg_select", s_select},
    {"cg_expand", s_expand},
    {"cg_squeeze", s_squeeze},
    {"cg_unsqueeze", s_unsqueeze},
    {"cg_flatten", s_flatten},
    {"cg_repeat", s_repeat},
    {"cg_pad", s_pad},
    {"cg_pad", s_pad_reflect},
    {"cg_pad", s_pad_replicate},
    {"cg_index_select", s_index_select},
    {"cg_gather", s_gather},
    {"cg_embedding", s_embedding},
    {"cg_matmul", s_matmul},
    {"cg_linear", s_linear},
    {"cg_einsum", s_einsum},
    {"cg_einsum", s_einsum2},
    {"cg_concat", s_concat},
    {"cg_stack", s_stack},
    {"cg_scatter_add", s_scatter_add},
    {"cg_index_add", s_index_add},
    {"cg_sort", s_sort_values},
};

static void test_misuse_shape_ops_views(void **state) {
    cg_ctx *ctx = *state;
    for (size_t i = 0; i < sizeof shaped / sizeof *shaped; i++) {
        const char *fn = shaped[i].name;
        w34_ = pos(ctx, CG_F64, CG_SHAPE(3, 4));
        label = fn;
        cg_clear_error();
        fails_t(shaped[i].f(ctx, NULL), fn, __LINE__);
        prior_error();
        keeps_prior(shaped[i].f(ctx, NULL), fn, __LINE__);
        view_case vc[NVIEWS];
        make_views(ctx, vc);
        for (int v = 0; v < NVIEWS && shaped[i].f != s_view; v++)
            view_agrees(ctx, fn, shaped[i].f, vc[v].v, __LINE__);
        cg_tensor *vl = pos(ctx, CG_F64, CG_SHAPE(3, 4));
        cg_set_requires_grad(vl, true);
        if (shaped[i].f != s_view)
            backward_reaches(ctx, fn, shaped[i].f(ctx, cg_transpose(ctx, vl, 0, 1)), vl,
                             __LINE__);
        cg_ctx_reset(ctx);
    }
    label = NULL;
    cg_tensor *t = cg_transpose(ctx, pos(ctx, CG_F64, CG_SHAPE(3, 4)), 0, 1);
    NUL(cg_view, ctx, t, CG_SHAPE(12));
    done();
}

/* Target shapes view, reshape and expand refuse for a [2,3] input. */
static const struct bad_shape bad_targets[] = {
    {"rank -1", -1, {6}, false},
    {"rank 9", 9, {1, 1, 1, 1, 1, 1, 1, 2, 3}, false},
    {"shape NULL", 2, {0}, true},
    {"dim -2", 2, {-2, -3}, false},
    {"two -1", 3, {-1, -1, 6}, false},
    {"wrong count", 2, {4, 2}, false},
    {"product wraps to 6", 3, {BIG, BIG, 6}, false},
    {"product wraps, with -1", 3, {(int64_t)1 << 62, 4, -1}, false},
    {"INT64_MIN", 2, {INT64_MIN, -6}, false},
};

static void test_misuse_view_reshape_expand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3));
    typedef cg_tensor *(*reshape_fn)(cg_ctx *, const cg_tensor *, int, const int64_t *);
    const struct {
        const char *name;
        reshape_fn f;
    } fns[] = {{"cg_view", cg_view}, {"cg_reshape", cg_reshape}, {"cg_expand", cg_expand}};
    for (int i = 0; i < 3; i++) {
        const char *fn = fns[i].name;
        for (size_t b = 0; b < sizeof bad_targets / sizeof *bad_targets; b++) {
            label = bad_targets[b].name;
            cg_clear_error();
            fails_t(fns[i].f(ctx, x, bad_targets[b].ndim,
                             bad_targets[b].null ? NULL : bad_targets[b].shape),
                    fn, __LINE__);
        }
        label = fn;
        cg_clear_error();
        fails_t(fns[i].f(ctx, NULL, CG_SHAPE(6)), fn, __LINE__);
        prior_error();
        keeps_prior(fns[i].f(ctx, NULL, CG_SHAPE(6)), fn, __LINE__);
        /* a view of a context tensor outside it would dangle */
        cg_clear_error();
        fails_tf(fns[i].f(NULL, x, CG_SHAPE(2, 3)), fn, __LINE__);
    }
    label = NULL;
    /* zero elements: [0,-1] is ambiguous, [-1] and [3,0] are not */
    cg_tensor *z = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3));
    NUL(cg_reshape, ctx, z, CG_SHAPE(0, -1));
    NUL(cg_view, ctx, z, CG_SHAPE(-1, 0));
    if (!HAS_SHAPE(OK_T(cg_reshape, ctx, z, CG_SHAPE(-1)), 0))
        defect(__LINE__, "cg_reshape", "[-1]");
    if (!HAS_SHAPE(OK_T(cg_view, ctx, z, CG_SHAPE(3, 0, 5)), 3, 0, 5))
        defect(__LINE__, "cg_view", "[3,0,5]");
    NUL(cg_reshape, ctx, z, CG_SHAPE(BIG, 0, BIG)); /* strides would overflow (issue 14 #7) */
    /* rank 8 in, rank 9 out */
    cg_tensor *r8 = pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape);
    if (!HAS_SHAPE(OK_T(cg_reshape, ctx, r8, CG_SHAPE(6)), 6))
        defect(__LINE__, "cg_reshape", "r8");
    if (cg_ndim(OK_T(cg_reshape, ctx, x, CG_MAX_DIMS, r8_shape)) != 8)
        defect(__LINE__, "cg_reshape", "to r8");
    /* expand: only size-1 dims grow, -1 only over an existing dim, no overflowing counts */
    cg_tensor *row = pos(ctx, CG_F64, CG_SHAPE(1, 3));
    NUL(cg_expand, ctx, x, CG_SHAPE(3));
    NUL(cg_expand, ctx, x, CG_SHAPE(4, 3));
    NUL(cg_expand, ctx, row, CG_SHAPE(-1, 2, 3));
    NUL(cg_expand, ctx, row, CG_SHAPE(BIG, 3));
    NUL(cg_expand, ctx, row, CG_SHAPE((int64_t)1 << 62, 3));
    NUL(cg_expand, ctx, row, CG_SHAPE(1 << 30, 1 << 30, 1 << 30, 3));
    NUL(cg_expand, ctx, row, CG_SHAPE(0, -2));
    cg_tensor *e = OK_T(cg_expand, ctx, row, CG_SHAPE(0, 3));
    if (!HAS_SHAPE(e, 0, 3)) defect(__LINE__, "cg_expand", "to [0,3]");
    NUL(cg_expand, ctx, r8, CG_SHAPE(1, 1, 2, 1, 1, 1, 1, 1, 3));
    done();
}

static void test_misuse_axis_ops(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3)),
              *r8 = pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape);
    const int bad[] = {2, -3, 8, -9, INT32_MAX, INT32_MIN + 1};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int d = bad[i];
        NUL(cg_transpose, ctx, x, d, 0);
        NUL(cg_transpose, ctx, x, 0, d);
        NUL(cg_slice, ctx, x, d, 0, 1, 1);
        NUL(cg_narrow, ctx, x, d, 0, 1);
        NUL(cg_select, ctx, x, d, 0);
        NUL(cg_squeeze, ctx, x, d);
        NUL(cg_flatten, ctx, x, d, -1);
        NUL(cg_flatten, ctx, x, 0, d);
        NUL(cg_softmax, ctx, x, d);
        NUL(cg_log_softmax, ctx, x, d);
        NUL(cg_cumsum, ctx, x, d);
        NUL(cg_cumprod, ctx, x, d);
        if (d != 2 && d != -3) NUL(cg_unsqueeze, ctx, x, d);
    }
    NUL(cg_unsqueeze, ctx, x, 3);
    NUL(cg_unsqueeze, ctx, x, -4);
    NUL(cg_unsqueeze, ctx, r8, 0); /* rank 9 */
    NUL(cg_flatten, ctx, x, 1, 0); /* start after end */
    NUL(cg_squeeze, ctx, NULL, CG_ALL_DIMS);
    KEEPS(cg_transpose, ctx, NULL, 0, 1);
    KEEPS(cg_slice, ctx, NULL, 0, 0, 1, 1);
    KEEPS(cg_narrow, ctx, NULL, 0, 0, 1);
    KEEPS(cg_select, ctx, NULL, 0, 0);
    KEEPS(cg_squeeze, ctx, NULL, 0);
    KEEPS(cg_unsqueeze, ctx, NULL, 0);
    KEEPS(cg_flatten, ctx, NULL, 0, -1);
    KEEPS(cg_permute, ctx, NULL, NULL);
    /* permute: NULL, out of range, repeated */
    NUL(cg_permute, ctx, x, NULL);
    NUL(cg_permute, ctx, x, (const int[]){0, 2});
    NUL(cg_permute, ctx, x, (const int[]){0, -3});
    NUL(cg_permute, ctx, x, (const int[]){1, 1});
    NUL(cg_permute, ctx, x, (const int[]){0, -2});
    NUL(cg_permute, ctx, x, (const int[]){INT32_MIN, 0});
    /* slice: steps and bounds */
    NUL(cg_slice, ctx, x, 1, 0, CG_END, 0);
    NUL(cg_slice, ctx, x, 1, 0, CG_END, -1);
    NUL(cg_slice, ctx, x, 1, 0, CG_END, INT64_MIN);
    cg_tensor *r = OK_T(cg_slice, ctx, x, 1, 0, CG_END, INT64_MAX); /* issue 14 #6 */
    if (!HAS_SHAPE(r, 2, 1)) defect(__LINE__, "cg_slice", "step INT64_MAX: wrong shape");
    r = OK_T(cg_slice, ctx, x, 1, INT64_MIN, INT64_MAX, BIG - 1);
    if (!HAS_SHAPE(r, 2, 1)) defect(__LINE__, "cg_slice", "extreme bounds: wrong shape");
    r = OK_T(cg_slice, ctx, x, 1, INT64_MAX, INT64_MIN, 1);
    if (!HAS_SHAPE(r, 2, 0)) defect(__LINE__, "cg_slice", "empty: wrong shape");
    r = OK_T(cg_slice, ctx, x, 1, 2, 1, 3);
    if (!HAS_SHAPE(r, 2, 0)) defect(__LINE__, "cg_slice", "start > end: wrong shape");
    r = OK_T(cg_slice, ctx, x, -1, -2, -1, 1);
    if (!HAS_SHAPE(r, 2, 1)) defect(__LINE__, "cg_slice", "negative bounds: wrong shape");
    NUL(cg_slice, ctx, cg_scalar(ctx, CG_F64, 1), 0, 0, 1, 1);
    /* narrow: length and start */
    NUL(cg_narrow, ctx, x, 1, 0, -1);
    NUL(cg_narrow, ctx, x, 1, 2, 2);
    NUL(cg_narrow, ctx, x, 1, 4, 0);
    NUL(cg_narrow, ctx, x, 1, INT64_MAX, INT64_MAX);
    NUL(cg_narrow, ctx, x, 1, INT64_MIN, 1);
    NUL(cg_narrow, ctx, x, 1, 1, INT64_MAX);
    r = OK_T(cg_narrow, ctx, x, 1, -1, 1);
    if (!HAS_SHAPE(r, 2, 1)) defect(__LINE__, "cg_narrow", "negative start");
    r = OK_T(cg_narrow, ctx, x, 1, 3, 0);
    if (!HAS_SHAPE(r, 2, 0)) defect(__LINE__, "cg_narrow", "empty at the end");
    /* select: index */
    NUL(cg_select, ctx, x, 1, 3);
    NUL(cg_select, ctx, x, 1, -4);
    NUL(cg_select, ctx, x, 1, INT64_MIN);
    NUL(cg_select, ctx, x, 1, INT64_MAX);
    NUL(cg_select, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), 0, 0);
    NUL(cg_select, ctx, cg_scalar(ctx, CG_F64, 1), 0, 0);
    /* scalars: squeeze, unsqueeze, flatten of rank 0 */
    cg_tensor *s = cg_scalar(ctx, CG_F64, 2);
    if (!HAS_SHAPE(OK_T(cg_unsqueeze, ctx, s, 0), 1))
        defect(__LINE__, "cg_unsqueeze", "rank 0");
    if (cg_ndim(OK_T(cg_squeeze, ctx, s, CG_ALL_DIMS)) != 0)
        defect(__LINE__, "cg_squeeze", "rank 0");
    if (!HAS_SHAPE(OK_T(cg_flatten, ctx, s, 0, -1), 1))
        defect(__LINE__, "cg_flatten", "rank 0");
    NUL(cg_transpose, ctx, s, 0, 1);
    /* zero-size through the axis ops */
    cg_tensor *z = cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0));
    if (!HAS_SHAPE(OK_T(cg_softmax, ctx, z, 1), 2, 0)) defect(__LINE__, "cg_softmax", "[2,0]");
    if (!HAS_SHAPE(OK_T(cg_log_softmax, ctx, z, 0), 2, 0))
        defect(__LINE__, "cg_log_softmax", "[2,0]");
    if (!HAS_SHAPE(OK_T(cg_cumsum, ctx, z, 1), 2, 0)) defect(__LINE__, "cg_cumsum", "[2,0]");
    if (!HAS_SHAPE(OK_T(cg_cumprod, ctx, z, 0), 2, 0)) defect(__LINE__, "cg_cumprod", "[2,0]");
    if (!HAS_SHAPE(OK_T(cg_flatten, ctx, z, 0, 1), 0)) defect(__LINE__, "cg_flatten", "[2,0]");
    if (!HAS_SHAPE(OK_T(cg_squeeze, ctx, z, CG_ALL_DIMS), 2, 0))
        defect(__LINE__, "cg_squeeze", "[2,0]");
    done();
}

/* ---- joining, indexing, linear algebra --------------------------------------- */
static cg_tensor *idx1(cg_ctx *ctx, int64_t a, int64_t b) {
    return cg_from_array(ctx, CG_I64, CG_SHAPE(2), (const int64_t[]){a, b});
}

static void test_misuse_join_and_index(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *r;
    const cg_tensor *two[2] = {x, x}, *withnull[2] = {x, NULL};
    const cg_tensor *mixed[2] = {x, pos(ctx, CG_F32, CG_SHAPE(2, 3))};
    const cg_tensor *ragged[2] = {x, pos(ctx, CG_F64, CG_SHAPE(3, 3))};
    const cg_tensor *ranks[2] = {x, pos(ctx, CG_F64, CG_SHAPE(6))};
    typedef cg_tensor *(*join_fn)(cg_ctx *, int, const cg_tensor *const *, int);
    const struct {
        const char *name;
        join_fn f;
        int max_axis; /* the last valid axis for rank-2 inputs */
    } joins[] = {{"cg_concat", cg_concat, 1}, {"cg_stack", cg_stack, 2}};
    for (int j = 0; j < 2; j++) {
        const char *fn = joins[j].name;
        join_fn f = joins[j].f;
        label = fn;
        cg_clear_error();
        fails_t(f(ctx, 0, two, 0), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, -1, two, 0), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, 2, NULL, 0), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, 2, withnull, 0), fn, __LINE__);
        prior_error();
        keeps_prior(f(ctx, 2, withnull, 0), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, 2, mixed, 0), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, 2, ranks, 0), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, 2, ragged, 1), fn, __LINE__);
        const int badax[] = {joins[j].max_axis + 1, -joins[j].max_axis - 2, 8, INT32_MIN};
        for (int b = 0; b < 4; b++) {
            cg_clear_error();
            fails_t(f(ctx, 2, two, badax[b]), fn, __LINE__);
        }
        /* rank 8: stacking makes 9 */
        cg_tensor *r8 = pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape);
        const cg_tensor *r8s[2] = {r8, r8};
        cg_clear_error();
        r = f(ctx, 2, r8s, 0);
        if (j == 1)
            fails_t(r, fn, __LINE__);
        else if (!HAS_SHAPE(r, 2, 2, 1, 1, 1, 1, 1, 3))
            defect(__LINE__, fn, "rank 8: wrong");
        cg_clear_error();
        /* zero-size pieces, one piece, a context view with ctx NULL */
        const cg_tensor *zs[2] = {cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)),
                                  cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3))};
        r = OK_T(f, ctx, 2, zs, 0);
        if (!r || cg_numel(r) != 0) defect(__LINE__, fn, "zero-size: wrong");
        r = OK_T(f, NULL, 1, two, 0);
        cg_tensor_free(r);
        /* many pieces */
        const cg_tensor *many[300];
        for (int i = 0; i < 300; i++) many[i] = x;
        r = OK_T(f, ctx, 300, many, 0);
        if (cg_numel(r) != 1800) defect(__LINE__, fn, "300 pieces: wrong");
    }
    label = NULL;
    const cg_tensor *mixz[2] = {cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), x};
    if (!HAS_SHAPE(OK_T(cg_concat, ctx, 2, mixz, 0), 2, 3))
        defect(__LINE__, "cg_concat", "[0,3]+[2,3]");

    /* index_select, gather, embedding: the index's dtype, rank and values */
    cg_tensor *i2 = idx1(ctx, 0, 2), *f2 = pos(ctx, CG_F64, CG_SHAPE(2));
    NUL(cg_index_select, ctx, NULL, 0, i2);
    NUL(cg_index_select, ctx, x, 0, NULL);
    KEEPS(cg_index_select, ctx, x, 0, NULL);
    NUL(cg_index_select, ctx, x, 2, i2);
    NUL(cg_index_select, ctx, x, -3, i2);
    NUL(cg_index_select, ctx, x, 1, f2);
    NUL(cg_index_select, ctx, x, 1, cg_zeros(ctx, CG_I64, CG_SHAPE(1, 2)));
    NUL(cg_index_select, ctx, x, 1, idx1(ctx, 0, 3));
    NUL(cg_index_select, ctx, x, 1, idx1(ctx, -1, 0));
    NUL(cg_index_select, ctx, x, 1, idx1(ctx, INT64_MIN, 0));
    NUL(cg_index_select, ctx, x, 1, idx1(ctx, INT64_MAX, 0));
    r = OK_T(cg_index_select, ctx, x, 1, cg_zeros(ctx, CG_I64, CG_SHAPE(0)));
    if (!HAS_SHAPE(r, 2, 0)) defect(__LINE__, "cg_index_select", "empty index");
    NUL(cg_index_select, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0)), 1, i2);
    cg_tensor *stepped =
        cg_slice(ctx, cg_from_array(ctx, CG_I64, CG_SHAPE(4), (const int64_t[]){2, 9, 0, 9}), 0,
                 0, CG_END, 2);
    if (!same_tensor(OK_T(cg_index_select, ctx, x, 1, stepped),
                     cg_index_select(ctx, x, 1, cg_contiguous(ctx, stepped)), 0))
        defect(__LINE__, "cg_index_select", "stepped index: wrong");
    cg_tensor *g = cg_from_array(ctx, CG_I64, CG_SHAPE(2, 2), (const int64_t[]){0, 1, 1, 0});
    NUL(cg_gather, ctx, NULL, 0, g);
    NUL(cg_gather, ctx, x, 0, NULL);
    KEEPS(cg_gather, ctx, NULL, 0, g);
    NUL(cg_gather, ctx, x, 2, g);
    NUL(cg_gather, ctx, x, 0, cg_cast(ctx, g, CG_F32));
    NUL(cg_gather, ctx, x, 0, idx1(ctx, 0, 1));                         /* rank 1 */
    NUL(cg_gather, ctx, x, 0, cg_zeros(ctx, CG_I64, CG_SHAPE(2, 4)));   /* wider */
    NUL(cg_gather, ctx, x, 0, cg_full(ctx, CG_I64, CG_SHAPE(2, 2), 2)); /* value 2 */
    NUL(cg_gather, ctx, x, 0, cg_full(ctx, CG_I64, CG_SHAPE(2, 2), -1));
    NUL(cg_gather, ctx, x, 1, cg_full(ctx, CG_I64, CG_SHAPE(2, 2), (double)INT64_MIN));
    r = OK_T(cg_gather, ctx, x, 0, cg_zeros(ctx, CG_I64, CG_SHAPE(0, 3)));
    if (!HAS_SHAPE(r, 0, 3)) defect(__LINE__, "cg_gather", "empty index");
    cg_tensor *w = pos(ctx, CG_F64, CG_SHAPE(5, 3));
    NUL(cg_embedding, ctx, NULL, i2);
    NUL(cg_embedding, ctx, w, NULL);
    KEEPS(cg_embedding, ctx, w, NULL);
    NUL(cg_embedding, ctx, pos(ctx, CG_F64, CG_SHAPE(5)), i2);
    NUL(cg_embedding, ctx, pos(ctx, CG_F64, CG_SHAPE(5, 3, 1)), i2);
    NUL(cg_embedding, ctx, w, f2);
    NUL(cg_embedding, ctx, w, idx1(ctx, 5, 0));
    NUL(cg_embedding, ctx, w, idx1(ctx, -1, 0));
    NUL(cg_embedding, ctx, w, idx1(ctx, INT64_MIN, 0));
    r = OK_T(cg_embedding, ctx, w, cg_zeros(ctx, CG_I64, CG_SHAPE(2, 0)));
    if (!HAS_SHAPE(r, 2, 0, 3)) defect(__LINE__, "cg_embedding", "empty indices");
    r = OK_T(cg_embedding, ctx, w, cg_zeros(ctx, CG_I64, CG_MAX_DIMS - 1, r8_shape));
    if (cg_ndim(r) != CG_MAX_DIMS) defect(__LINE__, "cg_embedding", "rank 7 indices");
    NUL(cg_embedding, ctx, w, cg_zeros(ctx, CG_I64, CG_MAX_DIMS, r8_shape)); /* rank 9 out */
    done();
}

static void test_misuse_linear_algebra(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *b = pos(ctx, CG_F64, CG_SHAPE(3, 4)), *r;
    const struct {
        const char *name;
        binary_fn f;
    } mm[] = {{"cg_matmul", cg_matmul}, {"cg_bmm", cg_bmm}, {"cg_outer", cg_outer}};
    for (int i = 0; i < 3; i++) {
        label = mm[i].name;
        cg_clear_error();
        fails_t(mm[i].f(ctx, NULL, b), mm[i].name, __LINE__);
        cg_clear_error();
        fails_t(mm[i].f(ctx, a, NULL), mm[i].name, __LINE__);
        prior_error();
        keeps_prior(mm[i].f(ctx, a, NULL), mm[i].name, __LINE__);
        cg_clear_error();
        fails_t(mm[i].f(ctx, cg_scalar(ctx, CG_F64, 1), b), mm[i].name, __LINE__);
    }
    label = NULL;
    NUL(cg_matmul, ctx, a, a);
    NUL(cg_matmul, ctx, a, cg_cast(ctx, b, CG_F32));
    NUL(cg_matmul, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)),
        cg_ones(ctx, CG_I64, CG_SHAPE(3, 4)));
    NUL(cg_matmul, ctx, pos(ctx, CG_F64, CG_SHAPE(2, 2, 3)),
        pos(ctx, CG_F64, CG_SHAPE(3, 3, 4)));
    NUL(cg_matmul, ctx, pos(ctx, CG_F64, CG_SHAPE(4)), pos(ctx, CG_F64, CG_SHAPE(3)));
    if (!HAS_SHAPE(OK_T(cg_matmul, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), b), 0, 4))
        defect(__LINE__, "cg_matmul", "[0,3] x [3,4]");
    r = OK_T(cg_matmul, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0)),
             cg_zeros(ctx, CG_F64, CG_SHAPE(0, 4)));
    if (!same_tensor(r, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 4)), 0))
        defect(__LINE__, "cg_matmul", "[2,0] x [0,4]");
    r = OK_T(cg_matmul, ctx, pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape),
             pos(ctx, CG_F64, CG_SHAPE(3, 2)));
    if (cg_ndim(r) != CG_MAX_DIMS) defect(__LINE__, "cg_matmul", "rank 8 batch");
    /* views: transposed and expanded operands */
    cg_tensor *bt = cg_transpose(ctx, pos(ctx, CG_F64, CG_SHAPE(4, 3)), 0, 1);
    cg_tensor *be = cg_expand(ctx, pos(ctx, CG_F64, CG_SHAPE(1, 4)), CG_SHAPE(3, 4));
    cg_tensor *ab = cg_expand(ctx, a, CG_SHAPE(5, 2, 3));
    if (!same_tensor(OK_T(cg_matmul, ctx, a, bt), cg_matmul(ctx, a, cg_contiguous(ctx, bt)),
                     1e-12))
        defect(__LINE__, "cg_matmul", "transposed b: wrong");
    if (!same_tensor(OK_T(cg_matmul, ctx, a, be), cg_matmul(ctx, a, cg_contiguous(ctx, be)),
                     1e-12))
        defect(__LINE__, "cg_matmul", "expanded b: wrong");
    if (!same_tensor(OK_T(cg_bmm, ctx, ab, cg_expand(ctx, b, CG_SHAPE(5, 3, 4))),
                     cg_bmm(ctx, cg_contiguous(ctx, ab),
                            cg_contiguous(ctx, cg_expand(ctx, b, CG_SHAPE(5, 3, 4)))),
                     1e-12))
        defect(__LINE__, "cg_bmm", "expanded batch: wrong");
    /* bmm: 3-D, one batch size, one dtype */
    NUL(cg_bmm, ctx, a, b);
    NUL(cg_bmm, ctx, pos(ctx, CG_F64, CG_SHAPE(2, 2, 3)), pos(ctx, CG_F64, CG_SHAPE(3, 3, 4)));
    NUL(cg_bmm, ctx, pos(ctx, CG_F64, CG_SHAPE(2, 2, 3)), pos(ctx, CG_F64, CG_SHAPE(2, 4, 4)));
    NUL(cg_bmm, ctx, pos(ctx, CG_F64, CG_SHAPE(2, 2, 3)), pos(ctx, CG_F32, CG_SHAPE(2, 3, 4)));
    if (!HAS_SHAPE(OK_T(cg_bmm, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 2, 3)),
                        cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3, 4))),
                   0, 2, 4))
        defect(__LINE__, "cg_bmm", "empty batch");
    /* outer: 1-D */
    cg_tensor *v = pos(ctx, CG_F64, CG_SHAPE(3));
    NUL(cg_outer, ctx, a, v);
    NUL(cg_outer, ctx, v, a);
    cg_tensor *vs = cg_slice(ctx, pos(ctx, CG_F64, CG_SHAPE(6)), 0, 0, CG_END, 2);
    if (!same_tensor(OK_T(cg_outer, ctx, vs, v), cg_outer(ctx, cg_contiguous(ctx, vs), v), 0))
        defect(__LINE__, "cg_outer", "stepped: wrong");
    if (!HAS_SHAPE(OK_T(cg_outer, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0)), v), 0, 3))
        defect(__LINE__, "cg_outer", "empty");
    /* linear */
    cg_tensor *wt = pos(ctx, CG_F64, CG_SHAPE(4, 3)), *bias = pos(ctx, CG_F64, CG_SHAPE(4));
    NUL(cg_linear, ctx, NULL, wt, bias);
    NUL(cg_linear, ctx, a, NULL, bias);
    KEEPS(cg_linear, ctx, a, NULL, bias);
    NUL(cg_linear, ctx, a, b, NULL);
    NUL(cg_linear, ctx, a, wt, pos(ctx, CG_F64, CG_SHAPE(3)));
    NUL(cg_linear, ctx, a, wt, pos(ctx, CG_F64, CG_SHAPE(1, 4)));
    NUL(cg_linear, ctx, a, wt, pos(ctx, CG_F32, CG_SHAPE(4)));
    NUL(cg_linear, ctx, a, cg_cast(ctx, wt, CG_F32), bias);
    NUL(cg_linear, ctx, a, pos(ctx, CG_F64, CG_SHAPE(3)), NULL);
    NUL(cg_linear, ctx, cg_scalar(ctx, CG_F64, 1), wt, bias);
    NUL(cg_linear, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)),
        cg_ones(ctx, CG_I64, CG_SHAPE(4, 3)), NULL);
    if (!HAS_SHAPE(OK_T(cg_linear, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), wt, bias), 0, 4))
        defect(__LINE__, "cg_linear", "empty batch");
    r = OK_T(cg_linear, ctx, pos(ctx, CG_F64, CG_SHAPE(2, 0)), pos(ctx, CG_F64, CG_SHAPE(4, 0)),
             bias);
    if (!r || !same_tensor(r, cg_expand(ctx, bias, CG_SHAPE(2, 4)), 0))
        defect(__LINE__, "cg_linear", "in 0");
    cg_tensor *xe = cg_expand(ctx, pos(ctx, CG_F64, CG_SHAPE(1, 3)), CG_SHAPE(5, 3));
    if (!same_tensor(OK_T(cg_linear, ctx, xe, wt, bias),
                     cg_linear(ctx, cg_contiguous(ctx, xe), wt, bias), 1e-12))
        defect(__LINE__, "cg_linear", "expanded x: wrong");
    done();
}

static void test_misuse_einsum(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *b = pos(ctx, CG_F64, CG_SHAPE(3, 4));
    char longeq[1200];
    memset(longeq, 'i', sizeof longeq - 1);
    longeq[sizeof longeq - 1] = '\0';
    static const char *const bad2[] = {
        "",           "ij,jk->ik,",      "ij,jk->ik->",
        "ij,jk->iz",  "ij,jk->ii",       "ij,kj->ik",
        "i1,jk->ik",  "i.j,jk->ik",      "ijk,jk->ik",
        "ij,j->ik",   "...i...j,jk->ik", "ij,jk->..",
        "ij,,jk->ik", "ij,jk,kl->il",    "->",
        ",",
    };
    for (size_t i = 0; i < sizeof bad2 / sizeof *bad2; i++) {
        label = bad2[i];
        NUL(cg_einsum, ctx, bad2[i], a, b);
        NUL(cg_einsum_n, ctx, bad2[i], 2, (const cg_tensor *[]){a, b});
    }
    label = NULL;
    NUL(cg_einsum, ctx, longeq, a, NULL);
    NUL(cg_einsum, ctx, NULL, a, b);
    NUL(cg_einsum, ctx, "ij,jk->ik", NULL, b);
    NUL(cg_einsum, ctx, "ij,jk->ik", a, NULL);
    KEEPS(cg_einsum, ctx, "ij,jk->ik", a, NULL);
    NUL(cg_einsum, ctx, "ij->ji", a, b); /* b must be NULL */
    NUL(cg_einsum, ctx, "ij,jk->ik", a, cg_cast(ctx, b, CG_F32));
    NUL(cg_einsum, ctx, "ii->i", a, NULL); /* diagonal of a [2,3] */
    NUL(cg_einsum, ctx, "abcdefghi->a", pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape), NULL);
    cg_tensor *r = OK_T(cg_einsum, ctx, "abcdefgh->hgfedcba",
                        pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape), NULL);
    if (cg_ndim(r) != 8) defect(__LINE__, "cg_einsum", "rank 8");
    r = OK_T(cg_einsum, ctx, "ij,jk->ik", cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0)),
             cg_zeros(ctx, CG_F64, CG_SHAPE(0, 4)));
    if (!same_tensor(r, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 4)), 0))
        defect(__LINE__, "cg_einsum", "empty sum");
    r = OK_T(cg_einsum, ctx, "ij,jk", cg_transpose(ctx, pos(ctx, CG_F64, CG_SHAPE(3, 2)), 0, 1),
             b);
    if (!HAS_SHAPE(r, 2, 4)) defect(__LINE__, "cg_einsum", "implicit output, transposed a");
    /* einsum_n: the operand count */
    NUL(cg_einsum_n, ctx, "ij->ij", 0, (const cg_tensor *[]){a});
    NUL(cg_einsum_n, ctx, "ij->ij", -1, (const cg_tensor *[]){a});
    NUL(cg_einsum_n, ctx, "ij->ij", 1, NULL);
    NUL(cg_einsum_n, ctx, "ij,jk->ik", 2, (const cg_tensor *[]){a, NULL});
    KEEPS(cg_einsum_n, ctx, "ij,jk->ik", 2, (const cg_tensor *[]){a, NULL});
    NUL(cg_einsum_n, ctx, NULL, 1, (const cg_tensor *[]){a});
    const cg_tensor *ops17[17];
    char eq17[64] = "";
    for (int i = 0; i < 17; i++) {
        ops17[i] = a;
        strcat(eq17, i ? ",ij" : "ij");
    }
    strcat(eq17, "->ij");
    NUL(cg_einsum_n, ctx, eq17, 17, ops17);
    eq17[strlen(eq17) - 7] = '\0'; /* 16 operands */
    strcat(eq17, "->ij");
    r = OK_T(cg_einsum_n, ctx, eq17, 16, ops17);
    if (!HAS_SHAPE(r, 2, 3)) defect(__LINE__, "cg_einsum_n", "16 operands: \"%s\"", eq17);
    done();
}

/* ---- sequence ops ------------------------------------------------------------ */
/* A count-returning call failed: -1 and a message naming fn. */
#define BAD_N(fn, ...) (cg_clear_error(), fails_b(fn(__VA_ARGS__) == -1, #fn, __LINE__))

static void test_misuse_split_chunk(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(4, 3)), *out[8];
    BAD_N(cg_split, ctx, NULL, 2, 0, out, 8);
    BAD_N(cg_split, ctx, x, 0, 0, out, 8);
    BAD_N(cg_split, ctx, x, -1, 0, out, 8);
    BAD_N(cg_split, ctx, x, INT64_MIN, 0, out, 8);
    BAD_N(cg_split, ctx, x, 2, 2, out, 8);
    BAD_N(cg_split, ctx, x, 2, -3, out, 8);
    BAD_N(cg_split, ctx, x, 2, 0, NULL, 8);
    BAD_N(cg_split, ctx, x, 1, 0, out, 3);
    BAD_N(cg_split, ctx, x, 1, 0, out, 0);
    BAD_N(cg_split, ctx, x, 1, 0, out, -1);
    BAD_N(cg_split, NULL, x, 2, 0, out, 8); /* context views into caller-owned ones */
    prior_error();
    keeps_prior(cg_split(ctx, NULL, 2, 0, out, 8) == -1 ? NULL : x, "cg_split", __LINE__);
    QUIET("cg_split", cg_split(ctx, x, INT64_MAX, 0, out, 1) == 1 && HAS_SHAPE(out[0], 4, 3));
    QUIET("cg_split", cg_split(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), 2, 0, out, 1) == 1 &&
                          HAS_SHAPE(out[0], 0, 3));
    BAD_N(cg_split_sizes, ctx, NULL, (const int64_t[]){2, 2}, 2, 0, out);
    BAD_N(cg_split_sizes, ctx, x, NULL, 2, 0, out);
    BAD_N(cg_split_sizes, ctx, x, (const int64_t[]){2, 2}, 2, 0, NULL);
    BAD_N(cg_split_sizes, ctx, x, (const int64_t[]){2, 1}, 2, 0, out);
    BAD_N(cg_split_sizes, ctx, x, (const int64_t[]){5, -1}, 2, 0, out);
    BAD_N(cg_split_sizes, ctx, x, (const int64_t[]){INT64_MAX, INT64_MAX, 6}, 3, 0, out);
    BAD_N(cg_split_sizes, ctx, x, (const int64_t[]){2, 2}, 2, 5, out);
    BAD_N(cg_split_sizes, ctx, x, (const int64_t[]){2, 2}, -1, 0, out);
    BAD_N(cg_split_sizes, ctx, x, (const int64_t[]){4}, 0, 0, out);
    QUIET("cg_split_sizes",
          cg_split_sizes(ctx, x, (const int64_t[]){0, 4, 0}, 3, 0, out) == 3 &&
              HAS_SHAPE(out[2], 0, 3));
    BAD_N(cg_chunk, ctx, NULL, 2, 0, out, 8);
    BAD_N(cg_chunk, ctx, x, 0, 0, out, 8);
    BAD_N(cg_chunk, ctx, x, -2, 0, out, 8);
    BAD_N(cg_chunk, ctx, x, 2, 9, out, 8);
    BAD_N(cg_chunk, ctx, x, 2, 0, NULL, 8);
    BAD_N(cg_chunk, ctx, x, 4, 0, out, 3);
    QUIET("cg_chunk", cg_chunk(ctx, x, INT32_MAX, 0, out, 8) == 4);
    QUIET("cg_chunk", cg_chunk(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), 3, 0, out, 8) == 3 &&
                          HAS_SHAPE(out[1], 0, 3));
    /* a view splits into views of it */
    cg_tensor *t = cg_transpose(ctx, x, 0, 1);
    if (cg_split(ctx, t, 2, 1, out, 8) != 2 ||
        !same_tensor(out[1], cg_slice(ctx, t, 1, 2, 4, 1), 0))
        defect(__LINE__, "cg_split", "transposed: wrong");
    /* caller-owned pieces */
    cg_tensor *h = cg_zeros(NULL, CG_F64, CG_SHAPE(4));
    int n = cg_chunk(NULL, h, 2, 0, out, 8);
    cg_tensor_free(h);
    for (int i = 0; i < n; i++) cg_tensor_free(out[i]);
    if (n != 2) defect(__LINE__, "cg_chunk", "caller-owned: %d pieces", n);
    done();
}

static void test_misuse_scatter_sort(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *src = pos(ctx, CG_F64, CG_SHAPE(2, 3));
    cg_tensor *ix =
        cg_from_array(ctx, CG_I64, CG_SHAPE(2, 3), (const int64_t[]){0, 1, 2, 2, 1, 0});
    NUL(cg_scatter_add, ctx, NULL, 1, ix, src);
    NUL(cg_scatter_add, ctx, x, 1, NULL, src);
    NUL(cg_scatter_add, ctx, x, 1, ix, NULL);
    KEEPS(cg_scatter_add, ctx, x, 1, ix, NULL);
    NUL(cg_scatter_add, ctx, x, 2, ix, src);
    NUL(cg_scatter_add, ctx, x, 1, cg_cast(ctx, ix, CG_F64), src);
    NUL(cg_scatter_add, ctx, x, 1, ix, cg_cast(ctx, src, CG_F32));
    NUL(cg_scatter_add, ctx, x, 1, cg_zeros(ctx, CG_I64, CG_SHAPE(6)), src);
    NUL(cg_scatter_add, ctx, x, 1, cg_zeros(ctx, CG_I64, CG_SHAPE(3, 3)), src);
    NUL(cg_scatter_add, ctx, x, 1, cg_full(ctx, CG_I64, CG_SHAPE(2, 3), 3), src);
    NUL(cg_scatter_add, ctx, x, 1, cg_full(ctx, CG_I64, CG_SHAPE(2, 3), -1), src);
    NUL(cg_scatter_add, ctx, x, 1, cg_full(ctx, CG_I64, CG_SHAPE(2, 3), (double)INT64_MIN),
        src);
    if (!same_tensor(
            OK_T(cg_scatter_add, ctx, x, 1, cg_zeros(ctx, CG_I64, CG_SHAPE(0, 3)), src), x, 0))
        defect(__LINE__, "cg_scatter_add", "empty index");
    cg_tensor *i1 = cg_from_array(ctx, CG_I64, CG_SHAPE(3), (const int64_t[]){1, 1, 0});
    NUL(cg_index_add, ctx, NULL, 1, i1, src);
    NUL(cg_index_add, ctx, x, 1, NULL, src);
    NUL(cg_index_add, ctx, x, 1, i1, NULL);
    KEEPS(cg_index_add, ctx, x, 1, NULL, src);
    NUL(cg_index_add, ctx, x, -3, i1, src);
    NUL(cg_index_add, ctx, x, 1, ix, src);
    NUL(cg_index_add, ctx, x, 1, cg_cast(ctx, i1, CG_F32), src);
    NUL(cg_index_add, ctx, x, 1, cg_zeros(ctx, CG_I64, CG_SHAPE(2)), src);
    NUL(cg_index_add, ctx, x, 0, i1, src);
    NUL(cg_index_add, ctx, x, 1, cg_full(ctx, CG_I64, CG_SHAPE(3), 3), src);
    NUL(cg_index_add, ctx, x, 1, cg_full(ctx, CG_I64, CG_SHAPE(3), (double)INT64_MIN), src);
    NUL(cg_index_add, ctx, x, 1, i1, cg_cast(ctx, src, CG_F32));
    if (!same_tensor(OK_T(cg_index_add, ctx, x, 0, cg_zeros(ctx, CG_I64, CG_SHAPE(0)),
                          cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3))),
                     x, 0))
        defect(__LINE__, "cg_index_add", "empty index");
    /* sort, topk */
    cg_tensor *v, *i;
    BAD(cg_sort, ctx, NULL, 0, false, &v, &i);
    KEEPS_S(cg_sort, ctx, NULL, 0, false, &v, &i);
    BAD(cg_sort, ctx, x, 2, false, &v, &i);
    BAD(cg_sort, ctx, x, INT32_MIN, false, &v, &i);
    BAD(cg_topk, ctx, NULL, 1, 0, true, &v, &i);
    KEEPS_S(cg_topk, ctx, NULL, 1, 0, true, &v, &i);
    BAD(cg_topk, ctx, x, -1, 0, true, &v, &i);
    BAD(cg_topk, ctx, x, 3, 0, true, &v, &i);
    BAD(cg_topk, ctx, x, INT64_MAX, 1, true, &v, &i);
    BAD(cg_topk, ctx, x, INT64_MIN, 1, true, &v, &i);
    BAD(cg_topk, ctx, x, 1, -3, true, &v, &i);
    v = i = x;
    cg_clear_error();
    cg_status st = cg_sort(ctx, x, 5, true, &v, &i);
    if (st == CG_OK || v || i) defect(__LINE__, "cg_sort", "results not NULL on error");
    OK_S(cg_sort, ctx, x, 1, false, NULL, NULL);
    OK_S(cg_topk, ctx, x, 0, 1, true, &v, &i);
    if (!HAS_SHAPE(v, 2, 0) || !HAS_SHAPE(i, 2, 0)) defect(__LINE__, "cg_topk", "k 0");
    OK_S(cg_sort, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), 0, false, &v, &i);
    if (!HAS_SHAPE(v, 0, 3)) defect(__LINE__, "cg_sort", "empty");
    OK_S(cg_sort, ctx, cg_scalar(ctx, CG_F64, 3), -1, false, &v, &i);
    if (cg_ndim(v) != 0) defect(__LINE__, "cg_sort", "rank 0");
    view_case vc[NVIEWS];
    make_views(ctx, vc);
    for (int k = 0; k < NVIEWS; k++) {
        cg_tensor *v2, *i2;
        OK_S(cg_topk, ctx, vc[k].v, 2, 0, false, &v, &i);
        OK_S(cg_topk, ctx, cg_contiguous(ctx, vc[k].v), 2, 0, false, &v2, &i2);
        if (!same_tensor(v, v2, 0) || !same_tensor(i, i2, 0))
            defect(__LINE__, "cg_topk", "%s: wrong", vc[k].name);
    }
    /* caller-owned results on error: nothing leaks (ASan) */
    cg_tensor *h = cg_ones(NULL, CG_F64, CG_SHAPE(3));
    BAD(cg_topk, NULL, h, 4, 0, true, &v, &i);
    OK_S(cg_topk, NULL, h, 2, 0, true, &v, NULL);
    cg_tensor_free(v);
    cg_tensor_free(h);
    done();
}

static void test_misuse_structure_ops(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *r;
    /* tril, triu: extreme diagonals keep all or nothing */
    const int64_t diags[] = {INT64_MIN, INT64_MIN + 1, -4, 4, INT64_MAX - 1, INT64_MAX};
    for (int k = 0; k < 6; k++) {
        bool all_lower = diags[k] > 0;
        r = OK_T(cg_tril, ctx, x, diags[k]);
        if (!same_tensor(r, all_lower ? x : cg_zeros_like(ctx, x), 0))
            defect(__LINE__, "cg_tril", "diagonal %lld: wrong", (long long)diags[k]);
        r = OK_T(cg_triu, ctx, x, diags[k]);
        if (!same_tensor(r, all_lower ? cg_zeros_like(ctx, x) : x, 0))
            defect(__LINE__, "cg_triu", "diagonal %lld: wrong", (long long)diags[k]);
    }
    NUL(cg_tril, ctx, cg_scalar(ctx, CG_F64, 1), 0);
    NUL(cg_triu, ctx, pos(ctx, CG_F64, CG_SHAPE(3)), 0);
    /* flip: dims */
    NUL(cg_flip, ctx, NULL, (const int[]){0}, 1);
    KEEPS(cg_flip, ctx, NULL, (const int[]){0}, 1);
    NUL(cg_flip, ctx, x, NULL, 1);
    NUL(cg_flip, ctx, x, (const int[]){2}, 1);
    NUL(cg_flip, ctx, x, (const int[]){INT32_MIN}, 1);
    NUL(cg_flip, ctx, x, (const int[]){0, 0}, 2);
    NUL(cg_flip, ctx, x, (const int[]){1, -1}, 2);
    NUL(cg_flip, ctx, x, (const int[]){0}, -1);
    NUL(cg_flip, ctx, x, (const int[]){0, 1, 0, 1, 0, 1, 0, 1, 0}, 9);
    if (!same_tensor(OK_T(cg_flip, ctx, x, NULL, 0), x, 0))
        defect(__LINE__, "cg_flip", "no dims");
    /* roll: shifts and dims */
    NUL(cg_roll, ctx, NULL, (const int64_t[]){1}, NULL, 1);
    KEEPS(cg_roll, ctx, NULL, (const int64_t[]){1}, NULL, 1);
    NUL(cg_roll, ctx, x, NULL, NULL, 1);
    NUL(cg_roll, ctx, x, (const int64_t[]){1, 2}, NULL, 2);
    NUL(cg_roll, ctx, x, (const int64_t[]){1}, (const int[]){2}, 1);
    NUL(cg_roll, ctx, x, (const int64_t[]){1}, (const int[]){0}, -1);
    NUL(cg_roll, ctx, x, (const int64_t[]){1}, NULL, 0);
    const int64_t shifts[] = {INT64_MIN, INT64_MAX, -7, 7};
    for (int k = 0; k < 4; k++) {
        int64_t m = ((shifts[k] % 3) + 3) % 3;
        r = OK_T(cg_roll, ctx, x, &shifts[k], (const int[]){1}, 1);
        if (!same_tensor(r, cg_roll(ctx, x, &m, (const int[]){1}, 1), 0))
            defect(__LINE__, "cg_roll", "shift %lld: wrong", (long long)shifts[k]);
        r = OK_T(cg_roll, ctx, x, &shifts[k], NULL, 1);
        if (!HAS_SHAPE(r, 2, 3))
            defect(__LINE__, "cg_roll", "flat shift %lld", (long long)shifts[k]);
    }
    cg_tensor *z = cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0));
    if (!HAS_SHAPE(OK_T(cg_roll, ctx, z, (const int64_t[]){3}, (const int[]){1}, 1), 2, 0))
        defect(__LINE__, "cg_roll", "empty dim");
    if (!HAS_SHAPE(OK_T(cg_roll, ctx, z, (const int64_t[]){3}, NULL, 1), 2, 0))
        defect(__LINE__, "cg_roll", "empty, flat");
    /* repeat: counts */
    NUL(cg_repeat, ctx, NULL, 2, (const int64_t[]){1, 1});
    KEEPS(cg_repeat, ctx, NULL, 2, (const int64_t[]){1, 1});
    NUL(cg_repeat, ctx, x, 2, NULL);
    NUL(cg_repeat, ctx, x, 1, (const int64_t[]){2});
    NUL(cg_repeat, ctx, x, -1, (const int64_t[]){2});
    NUL(cg_repeat, ctx, x, 9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1});
    NUL(cg_repeat, ctx, x, 2, (const int64_t[]){-1, 1});
    NUL(cg_repeat, ctx, x, 2, (const int64_t[]){INT64_MAX, 1});
    NUL(cg_repeat, ctx, x, 3, (const int64_t[]){(int64_t)1 << 31, (int64_t)1 << 31, 2});
    NUL(cg_repeat, ctx, x, 2, (const int64_t[]){INT64_MIN, 1});
    if (!HAS_SHAPE(OK_T(cg_repeat, ctx, x, 2, (const int64_t[]){0, 2}), 0, 6))
        defect(__LINE__, "cg_repeat", "0");
    if (!HAS_SHAPE(OK_T(cg_repeat, ctx, z, 2, (const int64_t[]){3, BIG}), 6, 0))
        defect(__LINE__, "cg_repeat", "empty");
    NUL(cg_repeat, ctx, z, 3, (const int64_t[]){BIG, BIG, 2}); /* zero-size, strides overflow */
    done();
}

static void test_misuse_pad(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *r;
    NUL(cg_pad, ctx, NULL, 2, (const int64_t[]){1, 1}, CG_PAD_CONSTANT, 0);
    KEEPS(cg_pad, ctx, NULL, 2, (const int64_t[]){1, 1}, CG_PAD_CONSTANT, 0);
    NUL(cg_pad, ctx, x, 2, NULL, CG_PAD_CONSTANT, 0);
    NUL(cg_pad, ctx, x, 1, (const int64_t[]){1}, CG_PAD_CONSTANT, 0);
    NUL(cg_pad, ctx, x, -2, (const int64_t[]){1, 1}, CG_PAD_CONSTANT, 0);
    NUL(cg_pad, ctx, x, 6, (const int64_t[]){1, 1, 1, 1, 1, 1}, CG_PAD_CONSTANT, 0);
    NUL(cg_pad, ctx, x, 2, (const int64_t[]){1, 1}, (cg_pad_mode)7, 0);
    NUL(cg_pad, ctx, x, 2, (const int64_t[]){-2, -2}, CG_PAD_CONSTANT, 0);
    NUL(cg_pad, ctx, x, 2, (const int64_t[]){INT64_MAX, 1}, CG_PAD_CONSTANT, 0);
    NUL(cg_pad, ctx, x, 2, (const int64_t[]){INT64_MAX, INT64_MAX}, CG_PAD_CONSTANT, 0);
    NUL(cg_pad, ctx, x, 2, (const int64_t[]){INT64_MIN, 1}, CG_PAD_CONSTANT, 0);
    NUL(cg_pad, ctx, x, 4, (const int64_t[]){0, 0, (int64_t)1 << 40, (int64_t)1 << 40},
        CG_PAD_CONSTANT, 0);
    NUL(cg_pad, ctx, x, 2, (const int64_t[]){3, 0}, CG_PAD_REFLECT, 0);
    OK_T(cg_pad, ctx, x, 2, (const int64_t[]){1, 1}, CG_PAD_CONSTANT, 1e300); /* f64 holds it */
    if (!HAS_SHAPE(OK_T(cg_pad, ctx, x, 2, (const int64_t[]){-1, 0}, CG_PAD_REFLECT, 0), 2, 2))
        defect(__LINE__, "cg_pad", "reflect crop");
    NUL(cg_pad, ctx, cg_cast(ctx, x, CG_F32), 2, (const int64_t[]){1, 1}, CG_PAD_CONSTANT,
        1e300);
    OK_T(cg_pad, ctx, cg_cast(ctx, x, CG_F32), 2, (const int64_t[]){1, 1}, CG_PAD_CONSTANT,
         -INFINITY);
    NUL(cg_pad, ctx, x, 2, (const int64_t[]){INT64_MAX, 0}, CG_PAD_REPLICATE, 0);
    NUL(cg_pad, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0)), 2, (const int64_t[]){1, 1},
        CG_PAD_REPLICATE, 0);
    NUL(cg_pad, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0)), 2, (const int64_t[]){1, 1},
        CG_PAD_REFLECT, 0);
    NUL(cg_pad, ctx, pos(ctx, CG_F64, CG_SHAPE(3)), 2, (const int64_t[]){1, 1}, CG_PAD_REFLECT,
        0);
    NUL(cg_pad, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)), 2, (const int64_t[]){1, 1},
        CG_PAD_CONSTANT, 1e300);
    NUL(cg_pad, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)), 2, (const int64_t[]){1, 1},
        CG_PAD_CONSTANT, NAN);
    r = OK_T(cg_pad, ctx, x, 0, NULL, CG_PAD_CONSTANT, 0);
    if (!same_tensor(r, x, 0)) defect(__LINE__, "cg_pad", "npad 0");
    r = OK_T(cg_pad, ctx, x, 2, (const int64_t[]){-3, 0}, CG_PAD_CONSTANT, 0);
    if (!HAS_SHAPE(r, 2, 0)) defect(__LINE__, "cg_pad", "crop to nothing");
    r = OK_T(cg_pad, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), 2, (const int64_t[]){1, 1},
             CG_PAD_CONSTANT, 7);
    if (!HAS_SHAPE(r, 0, 5)) defect(__LINE__, "cg_pad", "empty batch");
    r = OK_T(cg_pad, ctx, pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape), 4,
             (const int64_t[]){1, 1, 0, 1}, CG_PAD_CONSTANT, 7);
    if (!HAS_SHAPE(r, 1, 2, 1, 1, 1, 1, 2, 5)) defect(__LINE__, "cg_pad", "rank 8");
    done();
}

/* ---- fused losses ---------------------------------------------------------- */
static void test_misuse_fused_losses(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *logits = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *labels = idx1(ctx, 0, 2), *r;
    typedef cg_tensor *(*class_loss)(cg_ctx *, const cg_tensor *, const cg_tensor *,
                                     cg_reduction);
    const struct {
        const char *name;
        class_loss f;
    } cls[] = {{"cg_cross_entropy", cg_cross_entropy}, {"cg_nll_loss", cg_nll_loss}};
    for (int i = 0; i < 2; i++) {
        const char *fn = cls[i].name;
        class_loss f = cls[i].f;
        label = fn;
        cg_clear_error();
        fails_t(f(ctx, NULL, labels, CG_MEAN), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, logits, NULL, CG_MEAN), fn, __LINE__);
        prior_error();
        keeps_prior(f(ctx, logits, NULL, CG_MEAN), fn, __LINE__);
        const cg_tensor *bad_labels[] = {
            cg_cast(ctx, labels, CG_F64),
            idx1(ctx, 0, 3),
            idx1(ctx, -1, 0),
            idx1(ctx, INT64_MIN, 0),
            idx1(ctx, INT64_MAX, 0),
            cg_zeros(ctx, CG_I64, CG_SHAPE(3)),
            cg_zeros(ctx, CG_I64, CG_SHAPE(2, 1)),
        };
        for (size_t b = 0; b < sizeof bad_labels / sizeof *bad_labels; b++) {
            cg_clear_error();
            fails_t(f(ctx, logits, bad_labels[b], CG_MEAN), fn, __LINE__);
        }
        cg_clear_error();
        fails_t(f(ctx, logits, labels, (cg_reduction)3), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, logits, labels, (cg_reduction)-1), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)), labels, CG_MEAN), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, pos(ctx, CG_F64, CG_SHAPE(2, 3, 4)), labels, CG_MEAN), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, cg_scalar(ctx, CG_F64, 1), cg_scalar(ctx, CG_I64, 0), CG_MEAN), fn,
                __LINE__);
        cg_clear_error();
        fails_t(f(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0)), labels, CG_MEAN), fn, __LINE__);
        /* no rows: the mean of nothing is NaN, the sum 0 */
        cg_tensor *z = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)),
                  *zl = cg_zeros(ctx, CG_I64, CG_SHAPE(0));
        cg_clear_error();
        r = succeeds_t(f(ctx, z, zl, CG_SUM), fn, __LINE__);
        if (r && cg_item(r) != 0) defect(__LINE__, fn, "sum over no rows");
        cg_clear_error();
        r = succeeds_t(f(ctx, z, zl, CG_NONE), fn, __LINE__);
        if (r && !HAS_SHAPE(r, 0)) defect(__LINE__, fn, "no rows, CG_NONE");
        cg_clear_error();
        r = succeeds_t(f(ctx, z, zl, CG_MEAN), fn, __LINE__);
        if (r && !isnan(cg_item(r))) defect(__LINE__, fn, "mean over no rows");
        /* views: transposed logits, stepped labels */
        cg_tensor *lt = cg_transpose(ctx, pos(ctx, CG_F64, CG_SHAPE(3, 2)), 0, 1);
        cg_tensor *ls = cg_slice(
            ctx, cg_from_array(ctx, CG_I64, CG_SHAPE(4), (const int64_t[]){1, 9, 2, 9}), 0, 0,
            4, 2);
        cg_clear_error();
        if (!same_tensor(succeeds_t(f(ctx, lt, ls, CG_NONE), fn, __LINE__),
                         f(ctx, cg_contiguous(ctx, lt), cg_contiguous(ctx, ls), CG_NONE),
                         1e-12))
            defect(__LINE__, fn, "views: wrong");
        /* 1-D logits with a rank-0 label */
        cg_clear_error();
        r = succeeds_t(
            f(ctx, pos(ctx, CG_F64, CG_SHAPE(3)), cg_scalar(ctx, CG_I64, 2), CG_NONE), fn,
            __LINE__);
        if (r && cg_ndim(r) != 0) defect(__LINE__, fn, "[C] logits");
    }
    label = NULL;
    NUL(cg_cross_entropy_ex, ctx, logits, labels, CG_MEAN, -0.1, -100);
    NUL(cg_cross_entropy_ex, ctx, logits, labels, CG_MEAN, 1.5, -100);
    NUL(cg_cross_entropy_ex, ctx, logits, labels, CG_MEAN, NAN, -100);
    NUL(cg_cross_entropy_ex, ctx, NULL, labels, CG_MEAN, 0, -100);
    KEEPS(cg_cross_entropy_ex, ctx, NULL, labels, CG_MEAN, 0, -100);
    NUL(cg_cross_entropy_ex, ctx, logits, idx1(ctx, 0, 3), CG_MEAN, 0, CG_IGNORE_NONE);
    NUL(cg_cross_entropy_ex, ctx, logits, labels, (cg_reduction)5, 0.1, -100);
    r = OK_T(cg_cross_entropy_ex, ctx, logits, idx1(ctx, INT64_MIN, 1), CG_SUM, 0.1, INT64_MIN);
    r = OK_T(cg_cross_entropy_ex, ctx, logits, idx1(ctx, 7, 7), CG_MEAN, 0, 7);
    if (r && !isnan(cg_item(r)))
        defect(__LINE__, "cg_cross_entropy_ex", "all ignored: not NaN");
    /* bce */
    typedef cg_tensor *(*pair_loss)(cg_ctx *, const cg_tensor *, const cg_tensor *,
                                    cg_reduction);
    const struct {
        const char *name;
        pair_loss f;
    } bce[] = {{"cg_bce_loss", cg_bce_loss}, {"cg_bce_with_logits", cg_bce_with_logits}};
    cg_tensor *p = cg_full(ctx, CG_F64, CG_SHAPE(2, 3), 0.25),
              *t = cg_full(ctx, CG_F64, CG_SHAPE(2, 3), 1);
    for (int i = 0; i < 2; i++) {
        const char *fn = bce[i].name;
        pair_loss f = bce[i].f;
        label = fn;
        cg_clear_error();
        fails_t(f(ctx, NULL, t, CG_MEAN), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, p, NULL, CG_MEAN), fn, __LINE__);
        prior_error();
        keeps_prior(f(ctx, NULL, t, CG_MEAN), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, p, cg_full(ctx, CG_F64, CG_SHAPE(3), 1), CG_MEAN), fn,
                __LINE__); /* no broadcasting */
        cg_clear_error();
        fails_t(f(ctx, p, cg_cast(ctx, t, CG_F32), CG_MEAN), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)),
                  cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)), CG_MEAN),
                fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, p, t, (cg_reduction)9), fn, __LINE__);
        cg_clear_error();
        r = succeeds_t(f(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)),
                         cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), CG_MEAN),
                       fn, __LINE__);
        if (r && !isnan(cg_item(r))) defect(__LINE__, fn, "mean of nothing");
        cg_tensor *pe =
            cg_expand(ctx, cg_full(ctx, CG_F64, CG_SHAPE(1, 3), 0.5), CG_SHAPE(2, 3));
        cg_tensor *tt = cg_transpose(ctx, cg_full(ctx, CG_F64, CG_SHAPE(3, 2), 1), 0, 1);
        cg_clear_error();
        if (!same_tensor(succeeds_t(f(ctx, pe, tt, CG_NONE), fn, __LINE__),
                         f(ctx, cg_contiguous(ctx, pe), cg_contiguous(ctx, tt), CG_NONE),
                         1e-12))
            defect(__LINE__, fn, "views: wrong");
    }
    label = NULL;
    NUL(cg_bce_loss, ctx, cg_full(ctx, CG_F64, CG_SHAPE(2, 3), 1.5), t, CG_MEAN);
    NUL(cg_bce_loss, ctx, cg_full(ctx, CG_F64, CG_SHAPE(2, 3), -0.5), t, CG_MEAN);
    NUL(cg_bce_loss, ctx, cg_full(ctx, CG_F64, CG_SHAPE(2, 3), NAN), t, CG_MEAN);
    done();
}

/* ---- convolution, pooling, normalisation ------------------------------------- */
static cg_conv_opts conv_with(int which, int64_t v) {
    cg_conv_opts o = cg_conv_defaults();
    switch (which) {
    case 0: o.stride[0] = v; break;
    case 1: o.padding[0] = v; break;
    case 2: o.dilation[0] = v; break;
    case 3: o.groups = v; break;
    case 4: o.output_padding[0] = v; break;
    }
    return o;
}

static void test_misuse_conv(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(1, 2, 5, 5)),
              *w = pos(ctx, CG_F64, CG_SHAPE(4, 2, 3, 3));
    cg_tensor *b = pos(ctx, CG_F64, CG_SHAPE(4)), *r;
    cg_tensor *x1 = pos(ctx, CG_F64, CG_SHAPE(1, 2, 5)),
              *w1 = pos(ctx, CG_F64, CG_SHAPE(4, 2, 3));
    cg_tensor *wt = pos(ctx, CG_F64, CG_SHAPE(2, 4, 3, 3));
    typedef cg_tensor *(*conv_fn)(cg_ctx *, const cg_tensor *, const cg_tensor *,
                                  const cg_tensor *, const cg_conv_opts *);
    const struct {
        const char *name;
        conv_fn f;
        cg_tensor *x, *w;
    } convs[] = {{"cg_conv2d", cg_conv2d, x, w},
                 {"cg_conv1d", cg_conv1d, x1, w1},
                 {"cg_conv_transpose2d", cg_conv_transpose2d, x, wt}};
    const struct {
        int which;
        int64_t v;
    } bad_opts[] = {{0, 0},         {0, -1},        {0, INT64_MIN}, {1, -1},
                    {1, INT64_MAX}, {1, INT64_MIN}, {2, 0},         {2, INT64_MAX},
                    {3, 0},         {3, -2},        {3, 3},         {3, INT64_MAX},
                    {4, -1},        {4, INT64_MAX}};
    for (int c = 0; c < 3; c++) {
        const char *fn = convs[c].name;
        conv_fn f = convs[c].f;
        label = fn;
        cg_clear_error();
        fails_t(f(ctx, NULL, convs[c].w, b, NULL), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, convs[c].x, NULL, b, NULL), fn, __LINE__);
        prior_error();
        keeps_prior(f(ctx, convs[c].x, NULL, b, NULL), fn, __LINE__);
        prior_error();
        keeps_prior(f(ctx, NULL, convs[c].w, b, NULL), fn, __LINE__);
        for (size_t o = 0; o < sizeof bad_opts / sizeof *bad_opts; o++) {
            cg_conv_opts opts = conv_with(bad_opts[o].which, bad_opts[o].v);
            if (bad_opts[o].which == 4 && c != 2) continue; /* only the transpose reads it */
            cg_clear_error();
            fails_t(f(ctx, convs[c].x, convs[c].w, b, &opts), fn, __LINE__);
        }
        cg_conv_opts same = cg_conv_defaults();
        same.same = true;
        same.stride[0] = 2;
        cg_clear_error();
        fails_t(f(ctx, convs[c].x, convs[c].w, b, &same), fn, __LINE__);
        /* shapes and dtypes */
        cg_clear_error();
        fails_t(f(ctx, convs[c].w, convs[c].x, NULL, NULL), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, cg_select(ctx, convs[c].x, 0, 0), convs[c].w,
                  pos(ctx, CG_F64, CG_SHAPE(5)), NULL),
                fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, convs[c].x, convs[c].w, pos(ctx, CG_F64, CG_SHAPE(3)), NULL), fn,
                __LINE__);
        cg_clear_error();
        fails_t(f(ctx, convs[c].x, convs[c].w, cg_cast(ctx, b, CG_F32), NULL), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, cg_cast(ctx, convs[c].x, CG_F32), convs[c].w, NULL, NULL), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, cg_cast(ctx, convs[c].x, CG_I64), cg_cast(ctx, convs[c].w, CG_I64), NULL,
                  NULL),
                fn, __LINE__);
        cg_clear_error();
        fails_t(
            f(ctx, convs[c].x, cg_narrow(ctx, convs[c].w, c == 2 ? 0 : 1, 0, 1), NULL, NULL),
            fn, __LINE__); /* input channels */
        /* an empty batch is valid */
        cg_tensor *xz = cg_narrow(ctx, convs[c].x, 0, 0, 0);
        cg_clear_error();
        r = succeeds_t(f(ctx, xz, convs[c].w, b, NULL), fn, __LINE__);
        if (r && cg_dim(r, 0) != 0) defect(__LINE__, fn, "empty batch: wrong");
        /* views: a transposed input and a stepped weight */
        cg_tensor *xv = cg_transpose(
            ctx, cg_contiguous(ctx, cg_transpose(ctx, convs[c].x, -1, -2)), -1, -2);
        cg_clear_error();
        if (!same_tensor(succeeds_t(f(ctx, xv, convs[c].w, b, NULL), fn, __LINE__),
                         f(ctx, convs[c].x, convs[c].w, b, NULL), 1e-12))
            defect(__LINE__, fn, "transposed input: wrong");
    }
    label = NULL;
    /* a kernel larger than the padded input */
    NUL(cg_conv2d, ctx, pos(ctx, CG_F64, CG_SHAPE(1, 2, 2, 2)), w, b, NULL);
    /* output_padding must be below stride or dilation */
    cg_conv_opts op = cg_conv_defaults();
    op.output_padding[0] = 1;
    NUL(cg_conv_transpose2d, ctx, x, wt, b, &op);
    /* sizes whose output would overflow */
    cg_conv_opts big = cg_conv_defaults();
    big.padding[0] = big.padding[1] = (int64_t)1 << 40;
    NUL(cg_conv2d, ctx, x, w, b, &big);
    cg_conv_opts d = cg_conv_defaults();
    d.dilation[0] = d.dilation[1] = (int64_t)1 << 40;
    NUL(cg_conv_transpose2d, ctx, x, wt, b, &d);
    cg_conv_opts def = cg_conv_defaults();
    QUIET("cg_conv_defaults", def.stride[0] == 1 && def.groups == 1 && def.padding[1] == 0);
    done();
}

static void test_misuse_pool(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(1, 2, 6, 6)),
              *x1 = pos(ctx, CG_F64, CG_SHAPE(1, 2, 6));
    cg_tensor *ind = NULL, *r;
    cg_pool_opts o = cg_pool_defaults(2, 2);
    QUIET("cg_pool_defaults", o.kernel[1] == 2 && o.stride[0] == 0 && o.count_include_pad);
    typedef cg_tensor *(*pool_fn)(cg_ctx *, const cg_tensor *, const cg_pool_opts *);
    struct pools {
        const char *name;
        pool_fn f;
        bool one;
    };
    const struct pools pools[] = {{"cg_avg_pool2d", cg_avg_pool2d, false},
                                  {"cg_avg_pool1d", cg_avg_pool1d, true}};
    const struct {
        int field; /* 0 kernel, 1 stride, 2 padding, 3 dilation */
        int64_t v;
    } bad[] = {{0, 0},  {0, -1},        {0, INT64_MAX}, {0, (int64_t)1 << 40},
               {1, -1}, {1, INT64_MIN}, {1, INT64_MAX}, {2, -1},
               {2, 2},  {2, INT64_MAX}, {3, 0},         {3, INT64_MAX}};
    for (int p = 0; p < 4; p++) {
        bool maxp = p >= 2, one = p % 2 == 1;
        const char *fn = maxp ? (one ? "cg_max_pool1d" : "cg_max_pool2d") : pools[p].name;
        const cg_tensor *in = one ? x1 : x;
        label = fn;
#define POOL(ctx_, x_, o_)                                                                     \
    (maxp ? (one ? cg_max_pool1d(ctx_, x_, o_, &ind) : cg_max_pool2d(ctx_, x_, o_, &ind))      \
          : pools[p].f(ctx_, x_, o_))
        cg_clear_error();
        fails_t(POOL(ctx, NULL, &o), fn, __LINE__);
        cg_clear_error();
        fails_t(POOL(ctx, in, NULL), fn, __LINE__);
        prior_error();
        keeps_prior(POOL(ctx, NULL, &o), fn, __LINE__);
        for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
            cg_pool_opts q = cg_pool_defaults(2, 2);
            int64_t *f = bad[b].field == 0   ? q.kernel
                         : bad[b].field == 1 ? q.stride
                         : bad[b].field == 2 ? q.padding
                                             : q.dilation;
            f[0] = bad[b].v;
            if (bad[b].field == 3 && !maxp) continue; /* avg pooling has no dilation */
            cg_clear_error();
            ind = NULL;
            fails_t(POOL(ctx, in, &q), fn, __LINE__);
            if (ind) defect(__LINE__, fn, "indices set on error");
        }
        cg_pool_opts wide = cg_pool_defaults(7, 7);
        cg_clear_error();
        fails_t(POOL(ctx, in, &wide), fn, __LINE__);
        cg_clear_error();
        fails_t(POOL(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(6)), &o), fn, __LINE__);
        cg_clear_error();
        r = POOL(ctx, cg_select(ctx, in, 0, 0), &o); /* unbatched */
        if (!r || cg_ndim(r) != cg_ndim(in) - 1) defect(__LINE__, fn, "unbatched: wrong");
        cg_clear_error();
        r = POOL(ctx, cg_narrow(ctx, in, 0, 0, 0), &o);
        if (!r || cg_dim(r, 0) != 0)
            defect(__LINE__, fn, "empty batch: \"%s\"", cg_last_error());
        cg_clear_error();
        cg_tensor *xv =
            cg_transpose(ctx, cg_contiguous(ctx, cg_transpose(ctx, in, 0, 1)), 0, 1);
        if (!same_tensor(POOL(ctx, xv, &o), POOL(ctx, in, &o), 0))
            defect(__LINE__, fn, "view: wrong");
        cg_clear_error();
        r = POOL(ctx, cg_cast(ctx, in, CG_I64), &o);
        if (!maxp)
            fails_t(r, fn, __LINE__);
        else if (!r)
            defect(__LINE__, fn, "i64 refused");
#undef POOL
    }
    label = NULL;
    NUL(cg_adaptive_avg_pool2d, ctx, NULL, 2, 2);
    KEEPS(cg_adaptive_avg_pool2d, ctx, NULL, 2, 2);
    NUL(cg_adaptive_avg_pool2d, ctx, x, -1, 2);
    NUL(cg_adaptive_avg_pool2d, ctx, x, 2, INT64_MIN);
    NUL(cg_adaptive_avg_pool2d, ctx, x, INT64_MAX, 2);
    NUL(cg_adaptive_avg_pool2d, ctx, x, (int64_t)1 << 31, (int64_t)1 << 31);
    NUL(cg_adaptive_avg_pool2d, ctx, cg_ones(ctx, CG_F64, CG_SHAPE(6, 6)), 2, 2);
    NUL(cg_adaptive_avg_pool2d, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(1, 1, 2, 2)), 1, 1);
    r = OK_T(cg_adaptive_avg_pool2d, ctx, x, 0, 3);
    if (!HAS_SHAPE(r, 1, 2, 0, 3)) defect(__LINE__, "cg_adaptive_avg_pool2d", "out 0");
    NUL(cg_adaptive_avg_pool2d, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(1, 2, 0, 4)), 2, 2);
    done();
}

static void test_misuse_norms(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(4, 3, 2)), *c3 = cg_ones(ctx, CG_F64, CG_SHAPE(3));
    cg_tensor *rm = cg_zeros(ctx, CG_F64, CG_SHAPE(3)), *rv = cg_ones(ctx, CG_F64, CG_SHAPE(3)),
              *r;
    NUL(cg_batch_norm, ctx, NULL, rm, rv, c3, c3, true, 0.1, 1e-5);
    KEEPS(cg_batch_norm, ctx, NULL, rm, rv, c3, c3, true, 0.1, 1e-5);
    NUL(cg_batch_norm, ctx, pos(ctx, CG_F64, CG_SHAPE(3)), rm, rv, c3, c3, true, 0.1, 1e-5);
    NUL(cg_batch_norm, ctx, x, NULL, NULL, c3, c3, false, 0.1, 1e-5);
    NUL(cg_batch_norm, ctx, x, rm, NULL, c3, c3, false, 0.1, 1e-5);
    NUL(cg_batch_norm, ctx, x, cg_zeros(ctx, CG_F64, CG_SHAPE(4)), rv, c3, c3, true, 0.1, 1e-5);
    NUL(cg_batch_norm, ctx, x, rm, rv, cg_ones(ctx, CG_F64, CG_SHAPE(2)), c3, true, 0.1, 1e-5);
    NUL(cg_batch_norm, ctx, x, rm, rv, c3, cg_ones(ctx, CG_F32, CG_SHAPE(3)), true, 0.1, 1e-5);
    NUL(cg_batch_norm, ctx, x, cg_zeros(ctx, CG_I64, CG_SHAPE(3)), rv, c3, c3, true, 0.1, 1e-5);
    NUL(cg_batch_norm, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(4, 3)), NULL, NULL, NULL, NULL, true,
        0.1, 1e-5);
    NUL(cg_batch_norm, ctx, x, rm, rv, c3, c3, true, -0.1, 1e-5);
    NUL(cg_batch_norm, ctx, x, rm, rv, c3, c3, true, 1.5, 1e-5);
    NUL(cg_batch_norm, ctx, x, rm, rv, c3, c3, true, NAN, 1e-5);
    NUL(cg_batch_norm, ctx, x, rm, rv, c3, c3, true, 0.1, -1);
    NUL(cg_batch_norm, ctx, x, rm, rv, c3, c3, true, 0.1, NAN);
    NUL(cg_batch_norm, ctx, pos(ctx, CG_F64, CG_SHAPE(1, 3)), rm, rv, c3, c3, true, 0.1, 1e-5);
    NUL(cg_batch_norm, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), rm, rv, c3, c3, true, 0.1,
        1e-5);
    /* running statistics updated in place: an expanded view would be many elements at once */
    cg_tensor *erm = cg_expand(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(1)), CG_SHAPE(3));
    NUL(cg_batch_norm, ctx, x, erm, rv, c3, c3, true, 0.1, 1e-5);
    /* ... a stepped one is written where it points */
    cg_tensor *base = cg_zeros(ctx, CG_F64, CG_SHAPE(6)),
              *srm = cg_slice(ctx, base, 0, 0, CG_END, 2);
    cg_tensor *rm2 = cg_zeros(ctx, CG_F64, CG_SHAPE(3)),
              *rv2 = cg_ones(ctx, CG_F64, CG_SHAPE(3));
    cg_tensor *rv3 = cg_ones(ctx, CG_F64, CG_SHAPE(3));
    r = OK_T(cg_batch_norm, ctx, x, srm, rv2, c3, c3, true, 0.1, 1e-5);
    OK_T(cg_batch_norm, ctx, x, rm2, rv3, c3, c3, true, 0.1, 1e-5);
    if (!same_tensor(cg_contiguous(ctx, srm), rm2, 1e-12) ||
        cg_item(cg_select(ctx, base, 0, 1)) != 0)
        defect(__LINE__, "cg_batch_norm", "stepped running_mean: wrong");
    /* eval on a transposed input */
    cg_tensor *xt = cg_transpose(ctx, pos(ctx, CG_F64, CG_SHAPE(3, 4)), 0, 1);
    if (!same_tensor(
            OK_T(cg_batch_norm, ctx, xt, rm, rv, c3, c3, false, 0.1, 1e-5),
            cg_batch_norm(ctx, cg_contiguous(ctx, xt), rm, rv, c3, c3, false, 0.1, 1e-5),
            1e-12))
        defect(__LINE__, "cg_batch_norm", "transposed: wrong");
    /* group norm */
    NUL(cg_group_norm, ctx, NULL, 1, NULL, NULL, 1e-5);
    KEEPS(cg_group_norm, ctx, NULL, 1, NULL, NULL, 1e-5);
    NUL(cg_group_norm, ctx, x, 0, NULL, NULL, 1e-5);
    NUL(cg_group_norm, ctx, x, -3, NULL, NULL, 1e-5);
    NUL(cg_group_norm, ctx, x, 2, NULL, NULL, 1e-5);
    NUL(cg_group_norm, ctx, x, INT64_MAX, NULL, NULL, 1e-5);
    NUL(cg_group_norm, ctx, x, 3, cg_ones(ctx, CG_F64, CG_SHAPE(2)), NULL, 1e-5);
    NUL(cg_group_norm, ctx, x, 3, NULL, cg_ones(ctx, CG_F32, CG_SHAPE(3)), 1e-5);
    NUL(cg_group_norm, ctx, x, 3, NULL, NULL, -1);
    NUL(cg_group_norm, ctx, pos(ctx, CG_F64, CG_SHAPE(3)), 3, NULL, NULL, 1e-5);
    NUL(cg_group_norm, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)), 3, NULL, NULL, 1e-5);
    r = OK_T(cg_group_norm, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3, 2)), 3, c3, c3, 1e-5);
    if (!HAS_SHAPE(r, 0, 3, 2)) defect(__LINE__, "cg_group_norm", "empty batch");
    /* layer norm */
    NUL(cg_layer_norm, ctx, NULL, CG_SHAPE(2), NULL, NULL, 1e-5);
    KEEPS(cg_layer_norm, ctx, NULL, CG_SHAPE(2), NULL, NULL, 1e-5);
    NUL(cg_layer_norm, ctx, x, 1, NULL, NULL, NULL, 1e-5);
    NUL(cg_layer_norm, ctx, x, -1, (const int64_t[]){2}, NULL, NULL, 1e-5);
    NUL(cg_layer_norm, ctx, x, 4, (const int64_t[]){1, 4, 3, 2}, NULL, NULL, 1e-5);
    NUL(cg_layer_norm, ctx, x, CG_SHAPE(3), NULL, NULL, 1e-5);
    NUL(cg_layer_norm, ctx, x, CG_SHAPE(-2), NULL, NULL, 1e-5);
    NUL(cg_layer_norm, ctx, x, CG_SHAPE(2), cg_ones(ctx, CG_F64, CG_SHAPE(3)), NULL, 1e-5);
    NUL(cg_layer_norm, ctx, x, CG_SHAPE(2), NULL, cg_ones(ctx, CG_F32, CG_SHAPE(2)), 1e-5);
    NUL(cg_layer_norm, ctx, x, CG_SHAPE(2), NULL, NULL, -1e-5);
    NUL(cg_layer_norm, ctx, x, CG_SHAPE(2), NULL, NULL, NAN);
    NUL(cg_layer_norm, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)), CG_SHAPE(3), NULL, NULL,
        1e-5);
    r = OK_T(cg_layer_norm, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), CG_SHAPE(3), NULL, NULL,
             1e-5);
    if (!HAS_SHAPE(r, 0, 3)) defect(__LINE__, "cg_layer_norm", "empty batch");
    view_case vc[NVIEWS];
    make_views(ctx, vc);
    for (int v = 0; v < NVIEWS; v++) {
        const cg_tensor *in = vc[v].v;
        if (!same_tensor(OK_T(cg_layer_norm, ctx, in, CG_SHAPE(3), c3, c3, 1e-5),
                         cg_layer_norm(ctx, cg_contiguous(ctx, in), CG_SHAPE(3), c3, c3, 1e-5),
                         1e-9))
            defect(__LINE__, "cg_layer_norm", "%s: wrong", vc[v].name);
        if (!same_tensor(OK_T(cg_group_norm, ctx, in, 1, NULL, NULL, 1e-5),
                         cg_group_norm(ctx, cg_contiguous(ctx, in), 1, NULL, NULL, 1e-5), 1e-9))
            defect(__LINE__, "cg_group_norm", "%s: wrong", vc[v].name);
    }
    done();
}

/* ======================================================================== */
/* nn/nn.h                                                                  */
/* ======================================================================== */

static cg_tensor *twice_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)m;
    return cg_mul_scalar(ctx, x, 2);
}
static const cg_module_kind twice_kind = {"Twice", twice_forward, NULL, NULL};
static const cg_module_kind nameless_kind = {NULL, twice_forward, free, NULL};
static const cg_module_kind no_forward_kind = {"NoForward", NULL, free, NULL};

/* A heap f64 tensor [n]. */
static cg_tensor *heap(int64_t n) { return cg_zeros(NULL, CG_F64, CG_SHAPE(n)); }

static void test_misuse_module_core(void **state) {
    cg_ctx *ctx = *state;
    /* cg_module_new: the kind; owned data is freed on failure (ASan) */
    NULP(cg_module_new, NULL, NULL);
    NULP(cg_module_new, &nameless_kind, malloc(8));
    NULP(cg_module_new, &no_forward_kind, malloc(8));
    cg_module *m = OK_P(cg_module_new, &twice_kind, NULL);
    SENTINEL("cg_module_data", cg_module_data(NULL) == NULL);
    SENTINEL("cg_module_kind_of", cg_module_kind_of(NULL) == NULL);
    SENTINEL("cg_module_nchildren", cg_module_nchildren(NULL) == 0);
    SENTINEL("cg_module_is_training", !cg_module_is_training(NULL));
    SENTINEL("cg_module_name", strcmp(cg_module_name(NULL), "NULL") == 0);
    /* parameters and buffers: the module takes t, also on failure (ASan sees leaks) */
    NUL(cg_module_add_param, NULL, "w", heap(2));
    NUL(cg_module_add_param, m, "w", NULL);
    KEEPS(cg_module_add_param, m, "w", NULL);
    NUL(cg_module_add_param, m, NULL, heap(2));
    NUL(cg_module_add_param, m, "", heap(2));
    NUL(cg_module_add_param, m, "a.b", heap(2));
    NUL(cg_module_add_param, m, "w eight", heap(2));
    NUL(cg_module_add_param, m,
        "an_identifier_longer_than_sixty_four_characters_is_refused_too_xx", heap(2));
    NUL(cg_module_add_param, m, "i", cg_zeros(NULL, CG_I64, CG_SHAPE(2)));
    NUL(cg_module_add_param, m, "c", cg_zeros(ctx, CG_F64, CG_SHAPE(2))); /* a context tensor */
    cg_tensor *leafy = heap(2);
    cg_set_requires_grad(leafy, true);
    NUL(cg_module_add_param, m, "n", cg_mul(ctx, leafy, leafy)); /* not a leaf */
    cg_tensor_free(leafy);
    cg_tensor *w = OK_T(cg_module_add_param, m, "w", heap(3));
    NUL(cg_module_add_param, m, "w", heap(2)); /* taken */
    NUL(cg_module_add_param, m, "w2", w);      /* the same tensor twice */
    NUL(cg_module_add_buffer, NULL, "b", heap(2));
    NUL(cg_module_add_buffer, m, "w", heap(2));
    NUL(cg_module_add_buffer, m, "b.x", heap(2));
    KEEPS(cg_module_add_buffer, m, "b", NULL);
    OK_T(cg_module_add_buffer, m, "count", cg_zeros(NULL, CG_I64, CG_SHAPE(1)));
    OK_T(cg_module_add_buffer, m, "empty", cg_zeros(NULL, CG_F64, CG_SHAPE(0, 3)));
    OK_T(cg_module_add_param, m, "r8", cg_zeros(NULL, CG_F64, CG_MAX_DIMS, r8_shape));
    NUL(cg_module_get, NULL, "w");
    NUL(cg_module_get, m, NULL);
    NUL(cg_module_get, m, "nope");
    /* tie */
    cg_module *other = cg_module_new(&twice_kind, NULL);
    cg_tensor *p = cg_module_add_param(other, "p", heap(3));
    BAD(cg_module_tie, NULL, "w", p);
    BAD(cg_module_tie, m, "w", NULL);
    KEEPS_S(cg_module_tie, m, "w", NULL);
    BAD(cg_module_tie, m, NULL, p);
    BAD(cg_module_tie, m, "count", p); /* a buffer */
    BAD(cg_module_tie, m, "x.y", p);
    cg_tensor *plain = heap(3);
    BAD(cg_module_tie, m, "w", plain); /* requires no gradient */
    BAD(cg_module_tie, m, "w", cg_zeros(ctx, CG_F64, CG_SHAPE(3)));
    /* children */
    NULP(cg_module_add_child, NULL, "c", cg_module_new(&twice_kind, NULL));
    NULP(cg_module_add_child, m, "c", NULL);
    prior_error();
    keeps_prior(cg_module_add_child(m, "c", NULL), "cg_module_add_child", __LINE__);
    NULP(cg_module_add_child, m, "w",
         cg_module_new(&twice_kind, NULL)); /* a parameter's name */
    NULP(cg_module_add_child, m, "a.b", cg_module_new(&twice_kind, NULL));
    NULP(cg_module_add_child, m, "me", m);
    cg_module *kid = OK_P(cg_module_add_child, m, NULL, cg_module_new(&twice_kind, NULL));
    NULP(cg_module_add_child, kid, "parent", m); /* a cycle */
    OK_P(cg_module_add_child, m, "again", kid);  /* shared, not a cycle */
    BAD(cg_module_free, kid);
    BAD(cg_module_free, kid); /* and again: still held, still refused */
    SENTINEL("cg_module_child", cg_module_child(NULL, 0, NULL) == NULL);
    SENTINEL("cg_module_child", cg_module_child(m, -1, NULL) == NULL);
    SENTINEL("cg_module_child", cg_module_child(m, 2, NULL) == NULL);
    SENTINEL("cg_module_child", cg_module_child(m, INT32_MIN, NULL) == NULL);
    const char *path_bad[] = {NULL, "", ".", "0.", ".0", "0..0", "9", "again.again", "-1"};
    for (size_t i = 0; i < sizeof path_bad / sizeof *path_bad; i++) {
        label = path_bad[i] ? path_bad[i] : "NULL";
        NULP(cg_module_find_child, m, path_bad[i]);
    }
    label = NULL;
    NULP(cg_module_find_child, NULL, "0");
    QUIET("cg_module_find_child", cg_module_find_child(m, "again") == kid);
    QUIET("cg_module_nchildren", cg_module_nchildren(m) == 2);
    /* state tables */
    int n = cg_module_nstate(m);
    SENTINEL("cg_module_nstate", cg_module_nstate(NULL) == 0);
    SENTINEL("cg_module_state", cg_module_state(NULL, 0, NULL, NULL) == NULL);
    SENTINEL("cg_module_state", cg_module_state(m, -1, NULL, NULL) == NULL);
    SENTINEL("cg_module_state", cg_module_state(m, n, NULL, NULL) == NULL);
    QUIET("cg_module_state", cg_module_state(m, n - 1, NULL, NULL) != NULL);
    SENTINEL("cg_module_find", cg_module_find(NULL, "w") == NULL);
    SENTINEL("cg_module_find", cg_module_find(m, NULL) == NULL);
    SENTINEL("cg_module_find", cg_module_find(m, "nope") == NULL);
    SENTINEL("cg_module_find", cg_module_find(m, "") == NULL);
    SENTINEL("cg_module_nparams", cg_module_nparams(NULL) == 0);
    SENTINEL("cg_module_param", cg_module_param(NULL, 0, NULL) == NULL);
    SENTINEL("cg_module_param", cg_module_param(m, -1, NULL) == NULL);
    SENTINEL("cg_module_param", cg_module_param(m, cg_module_nparams(m), NULL) == NULL);
    SENTINEL("cg_module_numel", cg_module_numel(NULL) == 0);
    SENTINEL("cg_module_flat_params", cg_module_flat_params(NULL) == NULL);
    SENTINEL("cg_module_flat_grads", cg_module_flat_grads(NULL) == NULL);
    SENTINEL("cg_module_flat_params", cg_module_flat_params(kid) == NULL); /* held */
    QUIET("cg_module_flat_params", cg_numel(cg_module_flat_params(m)) == cg_module_numel(m));
    QUIET("cg_module_zero_grad", (cg_module_zero_grad(NULL), true));
    QUIET("cg_module_train", (cg_module_train(NULL, false), true));
    /* forward and predict */
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3));
    NUL(cg_module_forward, ctx, NULL, x);
    NUL(cg_module_forward, ctx, m, NULL);
    KEEPS(cg_module_forward, ctx, m, NULL);
    NUL(cg_module_predict, ctx, NULL, x);
    NUL(cg_module_predict, NULL, m, NULL);
    KEEPS(cg_module_predict, ctx, m, NULL);
    cg_tensor *hx = cg_ones(NULL, CG_F64, CG_SHAPE(2));
    cg_set_requires_grad(hx, true);
    NUL(cg_module_forward, NULL, m, hx); /* a graph needs a context */
    cg_tensor *y = OK_T(cg_module_predict, NULL, m, hx);
    cg_tensor_free(y);
    cg_tensor_free(hx);
    cg_module *lin = cg_nn_linear(&rng_, CG_F64, 3, 2, true);
    NUL(cg_module_forward, ctx, lin, pos(ctx, CG_F64, CG_SHAPE(2, 4)));
    NUL(cg_module_forward, ctx, lin, pos(ctx, CG_F32, CG_SHAPE(2, 3)));
    NUL(cg_module_predict, ctx, lin, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)));
    cg_tensor *xt = cg_transpose(ctx, pos(ctx, CG_F64, CG_SHAPE(3, 5)), 0, 1);
    if (!same_tensor(OK_T(cg_module_predict, ctx, lin, xt),
                     cg_module_predict(ctx, lin, cg_contiguous(ctx, xt)), 1e-12))
        defect(__LINE__, "cg_module_predict", "transposed input: wrong");
    if (!HAS_SHAPE(OK_T(cg_module_forward, ctx, lin, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3))), 0,
                   2))
        defect(__LINE__, "cg_module_forward", "empty batch");
    /* printing */
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    BAD(cg_module_fprint, NULL, m);
    BAD(cg_module_fprint, devnull, NULL);
    OK_S(cg_module_fprint, devnull, m);
    fclose(devnull);
    BAD(cg_module_print, NULL);
    /* frees: NULL, the root (its tree, shared child once) */
    OK_S(cg_module_free, NULL);
    OK_S(cg_module_free, m);
    OK_S(cg_module_free, other);
    OK_S(cg_module_free, lin);
    cg_tensor_free(plain);
    done();
}

/* A module made from bad arguments: NULL and a message naming its maker (one
 * wrongly made is freed). */
static void fails_m(cg_module *m, const char *fn, int line) {
    fails_t(m, fn, line);
    cg_module_free(m);
}
#define NUL_M(fn, ...) (cg_clear_error(), fails_m(fn(__VA_ARGS__), #fn, __LINE__))

/* A built layer, an input it takes (shape; i64 indices for Embedding) and
 * one it must refuse (bad: f64 of that shape; bad_ndim 0: none). Forward
 * must refuse NULL and the bad input under cg_module_forward's name, run an
 * empty batch, and read a view as its contiguous copy. */
typedef struct layer_case {
    const char *name;
    cg_module *m;
    int ndim;
    int64_t shape[4];
    bool indices;
    int bad_ndim;
    int64_t bad[4];
} layer_case;

static void layer_battery(cg_ctx *ctx, const layer_case *c) {
    const char *fn = "cg_module_forward";
    label = c->name;
    if (!c->m) {
        defect(__LINE__, c->name, "could not be made: \"%s\"", cg_last_error());
        return;
    }
    cg_module_train(c->m, false); /* dropout: deterministic */
    cg_tensor *x = c->indices ? cg_zeros(ctx, CG_I64, c->ndim, c->shape)
                              : pos(ctx, CG_F64, c->ndim, c->shape);
    cg_clear_error();
    fails_t(cg_module_forward(ctx, c->m, NULL), fn, __LINE__);
    if (c->bad_ndim) {
        cg_clear_error();
        fails_t(cg_module_forward(ctx, c->m, pos(ctx, CG_F64, c->bad_ndim, c->bad)), fn,
                __LINE__);
    }
    int64_t zs[4];
    memcpy(zs, c->shape, sizeof zs);
    zs[0] = 0;
    cg_clear_error();
    cg_tensor *z =
        cg_module_forward(ctx, c->m, cg_zeros(ctx, c->indices ? CG_I64 : CG_F64, c->ndim, zs));
    if (!z || cg_dim(z, 0) != 0) defect(__LINE__, fn, "empty batch: \"%s\"", cg_last_error());
    /* a view: x transposed over its first and last dims, copied, transposed back */
    int e = c->ndim - 1;
    cg_tensor *v = cg_transpose(ctx, cg_contiguous(ctx, cg_transpose(ctx, x, 0, e)), 0, e);
    cg_clear_error();
    if (!same_tensor(cg_module_forward(ctx, c->m, v), cg_module_forward(ctx, c->m, x), 1e-12))
        defect(__LINE__, fn, "view: wrong (\"%s\")", cg_last_error());
    cg_clear_error();
    cg_module_free(c->m);
}

static void test_misuse_layers(void **state) {
    cg_ctx *ctx = *state;
    cg_conv_opts bad_conv = cg_conv_defaults();
    bad_conv.stride[0] = 0;
    cg_pool_opts bad_pool = cg_pool_defaults(0, 2);
    /* constructors: bad arguments */
    NUL_M(cg_nn_linear, NULL, CG_F64, 3, 2, true);
    NUL_M(cg_nn_linear, &rng_, CG_I64, 3, 2, true);
    NUL_M(cg_nn_linear, &rng_, (cg_dtype)9, 3, 2, true);
    NUL_M(cg_nn_linear, &rng_, CG_F64, -1, 2, true);
    NUL_M(cg_nn_linear, &rng_, CG_F64, 3, -2, true);
    NUL_M(cg_nn_linear, &rng_, CG_F64, INT64_MAX, 2, true);
    NUL_M(cg_nn_linear, &rng_, CG_F64, (int64_t)1 << 32, (int64_t)1 << 32, false);
    NUL_M(cg_nn_mlp, &rng_, CG_F64, 1, (const int64_t[]){3}, CG_ACT_RELU);
    NUL_M(cg_nn_mlp, &rng_, CG_F64, -1, (const int64_t[]){3}, CG_ACT_RELU);
    NUL_M(cg_nn_mlp, &rng_, CG_F64, 2, NULL, CG_ACT_RELU);
    NUL_M(cg_nn_mlp, &rng_, CG_F64, 3, (const int64_t[]){3, -4, 2}, CG_ACT_RELU);
    NUL_M(cg_nn_mlp, &rng_, CG_F64, 3, (const int64_t[]){3, 4, 2}, (cg_act)99);
    NUL_M(cg_nn_mlp, NULL, CG_F64, 2, (const int64_t[]){3, 4}, CG_ACT_RELU);
    NUL_M(cg_nn_mlp, &rng_, CG_I64, 2, (const int64_t[]){3, 4}, CG_ACT_RELU);
    NUL_M(cg_nn_activation, (cg_act)99);
    NUL_M(cg_nn_activation, (cg_act)-1);
    const double bad_p[] = {-0.1, 1.5, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        NUL_M(cg_nn_dropout, bad_p[i], &rng_);
        NUL_M(cg_nn_dropout2d, bad_p[i], &rng_);
    }
    NUL_M(cg_nn_dropout, 0.5, NULL);
    NUL_M(cg_nn_dropout2d, 0.5, NULL);
    NUL_M(cg_nn_layernorm, CG_F64, 0, 1e-5);
    NUL_M(cg_nn_layernorm, CG_F64, -1, 1e-5);
    NUL_M(cg_nn_layernorm, CG_F64, 3, -1e-5);
    NUL_M(cg_nn_layernorm, CG_F64, 3, NAN);
    NUL_M(cg_nn_layernorm, CG_I64, 3, 1e-5);
    NUL_M(cg_nn_layernorm, CG_F64, INT64_MAX, 1e-5);
    typedef cg_module *(*bn_fn)(cg_dtype, int64_t, double, double);
    const struct {
        const char *name;
        bn_fn f;
    } bns[] = {{"cg_nn_batchnorm1d", cg_nn_batchnorm1d},
               {"cg_nn_batchnorm2d", cg_nn_batchnorm2d}};
    for (int i = 0; i < 2; i++) {
        label = bns[i].name;
        const struct {
            cg_dtype dt;
            int64_t f;
            double eps, mom;
        } bad[] = {
            {CG_F64, 0, 1e-5, 0.1}, {CG_F64, -3, 1e-5, 0.1}, {CG_F64, 3, -1, 0.1},
            {CG_F64, 3, NAN, 0.1},  {CG_F64, 3, 1e-5, -0.5}, {CG_F64, 3, 1e-5, 1.5},
            {CG_F64, 3, 1e-5, NAN}, {CG_I64, 3, 1e-5, 0.1},  {CG_F64, INT64_MAX, 1e-5, 0.1}};
        for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
            cg_clear_error();
            fails_t(bns[i].f(bad[b].dt, bad[b].f, bad[b].eps, bad[b].mom), bns[i].name,
                    __LINE__);
        }
    }
    label = NULL;
    NUL_M(cg_nn_groupnorm, CG_F64, 0, 4, 1e-5);
    NUL_M(cg_nn_groupnorm, CG_F64, 3, 4, 1e-5);
    NUL_M(cg_nn_groupnorm, CG_F64, -2, 4, 1e-5);
    NUL_M(cg_nn_groupnorm, CG_F64, 2, -4, 1e-5);
    NUL_M(cg_nn_groupnorm, CG_F64, 2, 4, -1);
    NUL_M(cg_nn_groupnorm, CG_I64, 2, 4, 1e-5);
    NUL_M(cg_nn_embedding, NULL, CG_F64, 5, 3);
    NUL_M(cg_nn_embedding, &rng_, CG_F64, -5, 3);
    NUL_M(cg_nn_embedding, &rng_, CG_F64, 5, -3);
    NUL_M(cg_nn_embedding, &rng_, CG_I64, 5, 3);
    NUL_M(cg_nn_embedding, &rng_, CG_F64, (int64_t)1 << 40, (int64_t)1 << 40);
    NUL_M(cg_nn_conv1d, NULL, CG_F64, 2, 4, 3, NULL, true);
    NUL_M(cg_nn_conv1d, &rng_, CG_F64, 2, 4, 0, NULL, true);
    NUL_M(cg_nn_conv1d, &rng_, CG_F64, -2, 4, 3, NULL, true);
    NUL_M(cg_nn_conv1d, &rng_, CG_F64, 2, 4, 3, &bad_conv, true);
    NUL_M(cg_nn_conv1d, &rng_, CG_I64, 2, 4, 3, NULL, true);
    NUL_M(cg_nn_conv2d, NULL, CG_F64, 2, 4, 3, 3, NULL, true);
    NUL_M(cg_nn_conv2d, &rng_, CG_F64, 2, 4, 3, -3, NULL, true);
    NUL_M(cg_nn_conv2d, &rng_, CG_F64, 2, 4, 3, 3, &bad_conv, true);
    NUL_M(cg_nn_conv2d, &rng_, CG_F64, 2, 4, (int64_t)1 << 31, (int64_t)1 << 31, NULL, true);
    cg_conv_opts g3 = cg_conv_defaults();
    g3.groups = 3;
    NUL_M(cg_nn_conv2d, &rng_, CG_F64, 2, 4, 3, 3, &g3, true);
    NUL_M(cg_nn_conv_transpose2d, NULL, CG_F64, 2, 4, 3, 3, NULL, true);
    NUL_M(cg_nn_conv_transpose2d, &rng_, CG_F64, 2, 4, 0, 3, NULL, true);
    NUL_M(cg_nn_conv_transpose2d, &rng_, CG_F64, 2, 4, 3, 3, &g3, true);
    NUL_M(cg_nn_conv_transpose2d, &rng_, CG_F64, 2, 4, 3, 3, &bad_conv, true);
    NUL_M(cg_nn_maxpool2d, NULL);
    NUL_M(cg_nn_avgpool2d, NULL);
    NUL_M(cg_nn_maxpool2d, &bad_pool);
    NUL_M(cg_nn_avgpool2d, &bad_pool);
    NUL_M(cg_nn_adaptive_avgpool2d, -1, 2);
    NUL_M(cg_nn_adaptive_avgpool2d, 2, INT64_MIN);
    /* containers: ownership of the children on failure (ASan sees leaks and double frees) */
    cg_module *kids[3] = {cg_nn_identity(), NULL, cg_nn_identity()};
    NUL_M(cg_nn_sequential, 3, kids);
    cg_module *kids2[2] = {cg_nn_identity(), cg_nn_identity()};
    NUL_M(cg_nn_sequential, -1, kids2);
    cg_module_free(kids2[0]);
    cg_module_free(kids2[1]);
    NUL_M(cg_nn_sequential, 2, NULL);
    NUL_M(cg_nn_module_list, 2, NULL);
    NUL_M(cg_nn_module_dict, 1, NULL, (cg_module *const[]){cg_nn_identity()});
    NUL_M(cg_nn_module_dict, 2, (const char *const[]){"a", "a"},
          (cg_module *const[]){cg_nn_identity(), cg_nn_identity()});
    NUL_M(cg_nn_module_dict, 2, (const char *const[]){"a", "b.c"},
          (cg_module *const[]){cg_nn_identity(), cg_nn_identity()});
    NUL_M(cg_nn_module_dict, 2, (const char *const[]){"a", NULL},
          (cg_module *const[]){cg_nn_identity(), cg_nn_identity()});
    NUL_M(cg_nn_module_dict, 2, (const char *const[]){"a", "b"},
          (cg_module *const[]){cg_nn_identity(), NULL});
    cg_module *twice = cg_nn_identity();
    cg_module *seq = OK_P(cg_nn_sequential, 2, (cg_module *const[]){twice, twice}); /* shared */
    cg_module *outer = OK_P(cg_nn_module_list, 2, (cg_module *const[]){seq, twice});
    OK_S(cg_module_free, outer);
    cg_module *empty = OK_P(cg_nn_sequential, 0, NULL);
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3));
    if (!same_tensor(cg_module_forward(ctx, empty, x), x, 0))
        defect(__LINE__, "cg_nn_sequential", "empty: not identity");
    cg_module_free(empty);
    cg_module *d = OK_P(cg_nn_module_dict, 0, NULL, NULL);
    cg_module_free(d);
    /* forward of each layer kind */
    cg_pool_opts p2 = cg_pool_defaults(2, 2);
    const layer_case layers[] = {
        {"Linear", cg_nn_linear(&rng_, CG_F64, 3, 2, true), 2, {4, 3}, false, 2, {4, 5}},
        {"MLP",
         cg_nn_mlp(&rng_, CG_F64, 3, (const int64_t[]){3, 5, 2}, CG_ACT_GELU),
         2,
         {4, 3},
         false,
         2,
         {4, 5}},
        {"LayerNorm", cg_nn_layernorm(CG_F64, 3, 1e-5), 2, {4, 3}, false, 2, {4, 5}},
        {"BatchNorm1d", cg_nn_batchnorm1d(CG_F64, 3, 1e-5, 0.1), 2, {4, 3}, false, 2, {4, 5}},
        {"BatchNorm2d",
         cg_nn_batchnorm2d(CG_F64, 3, 1e-5, 0.1),
         4,
         {2, 3, 4, 4},
         false,
         3,
         {3, 4, 4}},
        {"GroupNorm", cg_nn_groupnorm(CG_F64, 2, 4, 1e-5), 3, {2, 4, 3}, false, 3, {2, 3, 3}},
        {"Embedding", cg_nn_embedding(&rng_, CG_F64, 5, 3), 2, {4, 2}, true, 2, {4, 2}},
        {"Conv1d",
         cg_nn_conv1d(&rng_, CG_F64, 2, 4, 3, NULL, true),
         3,
         {2, 2, 6},
         false,
         3,
         {2, 3, 6}},
        {"Conv2d",
         cg_nn_conv2d(&rng_, CG_F64, 2, 4, 3, 3, NULL, true),
         4,
         {2, 2, 5, 5},
         false,
         4,
         {2, 3, 5, 5}},
        {"ConvTranspose2d",
         cg_nn_conv_transpose2d(&rng_, CG_F64, 2, 4, 3, 3, NULL, true),
         4,
         {2, 2, 5, 5},
         false,
         4,
         {2, 3, 5, 5}},
        {"MaxPool2d", cg_nn_maxpool2d(&p2), 4, {2, 2, 4, 4}, false, 2, {4, 4}},
        {"AvgPool2d", cg_nn_avgpool2d(&p2), 4, {2, 2, 4, 4}, false, 2, {4, 4}},
        {"AdaptiveAvgPool2d", cg_nn_adaptive_avgpool2d(2, 1), 4, {2, 2, 4, 4}, false, 1, {4}},
        {"Dropout2d", cg_nn_dropout2d(0.5, &rng_), 4, {2, 2, 4, 4}, false, 0, {0}},
    };
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) layer_battery(ctx, &layers[i]);
    label = NULL;
    /* layers that take any input: NULL, and a view read right */
    cg_module *any[] = {cg_nn_identity(), cg_nn_activation(CG_ACT_TANH),
                        cg_nn_dropout(0.5, &rng_), cg_nn_flatten(1, -1)};
    for (int i = 0; i < 4; i++) {
        label = cg_module_name(any[i]);
        cg_module_train(any[i], false);
        NUL(cg_module_forward, ctx, any[i], NULL);
        cg_tensor *t = cg_transpose(ctx, x, 0, 1);
        if (!same_tensor(OK_T(cg_module_forward, ctx, any[i], t),
                         cg_module_forward(ctx, any[i], cg_contiguous(ctx, t)), 1e-12))
            defect(__LINE__, "cg_module_forward", "view: wrong");
        cg_module_free(any[i]);
    }
    label = NULL;
    cg_module *fl = cg_nn_flatten(2, 1);
    if (fl) NUL(cg_module_forward, ctx, fl, pos(ctx, CG_F64, CG_SHAPE(2, 3, 4)));
    cg_module_free(fl);
    done();
}

static void test_misuse_init(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *t = cg_zeros(ctx, CG_F64, CG_SHAPE(4, 3)),
              *i64 = cg_zeros(ctx, CG_I64, CG_SHAPE(4, 3));
    cg_tensor *e = cg_expand(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(1, 3)), CG_SHAPE(4, 3));
    cg_tensor *v1 = cg_zeros(ctx, CG_F64, CG_SHAPE(3));
    /* every initialiser: NULL, i64, expanded */
    BAD(cg_init_uniform_, NULL, &rng_, 0, 1);
    KEEPS_S(cg_init_uniform_, NULL, &rng_, 0, 1);
    BAD(cg_init_uniform_, i64, &rng_, 0, 1);
    BAD(cg_init_uniform_, e, &rng_, 0, 1);
    BAD(cg_init_uniform_, t, NULL, 0, 1);
    BAD(cg_init_uniform_, t, &rng_, 1, 0);
    BAD(cg_init_uniform_, t, &rng_, NAN, 1);
    BAD(cg_init_uniform_, t, &rng_, 0, INFINITY);
    BAD(cg_init_normal_, NULL, &rng_, 0, 1);
    KEEPS_S(cg_init_normal_, NULL, &rng_, 0, 1);
    BAD(cg_init_normal_, i64, &rng_, 0, 1);
    BAD(cg_init_normal_, e, &rng_, 0, 1);
    BAD(cg_init_normal_, t, NULL, 0, 1);
    BAD(cg_init_normal_, t, &rng_, 0, -1);
    BAD(cg_init_normal_, t, &rng_, NAN, 1);
    BAD(cg_init_constant_, NULL, 1);
    KEEPS_S(cg_init_constant_, NULL, 1);
    BAD(cg_init_constant_, i64, 1);
    BAD(cg_init_constant_, e, 1);
    BAD(cg_init_constant_, cg_zeros(ctx, CG_F32, CG_SHAPE(2)), 1e300);
    typedef cg_status (*gain_init)(cg_tensor *, cg_rng *, double);
    const struct {
        const char *name;
        gain_init f;
    } xav[] = {{"cg_init_xavier_uniform_", cg_init_xavier_uniform_},
               {"cg_init_xavier_normal_", cg_init_xavier_normal_}};
    for (int i = 0; i < 2; i++) {
        const char *fn = xav[i].name;
        label = fn;
        cg_clear_error();
        fails_s(xav[i].f(NULL, &rng_, 1), fn, __LINE__);
        prior_error();
        keeps_prior_s(xav[i].f(NULL, &rng_, 1), fn, __LINE__);
        cg_clear_error();
        fails_s(xav[i].f(i64, &rng_, 1), fn, __LINE__);
        cg_clear_error();
        fails_s(xav[i].f(e, &rng_, 1), fn, __LINE__);
        cg_clear_error();
        fails_s(xav[i].f(t, NULL, 1), fn, __LINE__);
        cg_clear_error();
        fails_s(xav[i].f(v1, &rng_, 1), fn, __LINE__); /* fans need 2 dims */
        cg_clear_error();
        fails_s(xav[i].f(t, &rng_, NAN), fn, __LINE__);
        cg_clear_error();
        fails_s(xav[i].f(t, &rng_, -1), fn, __LINE__);
        cg_clear_error(); /* no elements: a no-op, as PyTorch */
        succeeds_s(xav[i].f(cg_zeros(ctx, CG_F64, CG_SHAPE(0, 0)), &rng_, 1), fn, __LINE__);
    }
    typedef cg_status (*kaiming)(cg_tensor *, cg_rng *, double, cg_fan, cg_act);
    const struct {
        const char *name;
        kaiming f;
    } kai[] = {{"cg_init_kaiming_uniform_", cg_init_kaiming_uniform_},
               {"cg_init_kaiming_normal_", cg_init_kaiming_normal_}};
    for (int i = 0; i < 2; i++) {
        const char *fn = kai[i].name;
        label = fn;
        cg_clear_error();
        fails_s(kai[i].f(NULL, &rng_, 0, CG_FAN_IN, CG_ACT_RELU), fn, __LINE__);
        prior_error();
        keeps_prior_s(kai[i].f(NULL, &rng_, 0, CG_FAN_IN, CG_ACT_RELU), fn, __LINE__);
        cg_clear_error();
        fails_s(kai[i].f(i64, &rng_, 0, CG_FAN_IN, CG_ACT_RELU), fn, __LINE__);
        cg_clear_error();
        fails_s(kai[i].f(e, &rng_, 0, CG_FAN_IN, CG_ACT_RELU), fn, __LINE__);
        cg_clear_error();
        fails_s(kai[i].f(t, NULL, 0, CG_FAN_IN, CG_ACT_RELU), fn, __LINE__);
        cg_clear_error();
        fails_s(kai[i].f(v1, &rng_, 0, CG_FAN_IN, CG_ACT_RELU), fn, __LINE__);
        cg_clear_error();
        fails_s(kai[i].f(t, &rng_, 0, (cg_fan)2, CG_ACT_RELU), fn, __LINE__);
        cg_clear_error();
        fails_s(kai[i].f(t, &rng_, 0, (cg_fan)-1, CG_ACT_RELU), fn, __LINE__);
        cg_clear_error();
        fails_s(kai[i].f(t, &rng_, 0, CG_FAN_IN, (cg_act)42), fn, __LINE__);
        cg_clear_error();
        fails_s(kai[i].f(t, &rng_, NAN, CG_FAN_IN, CG_ACT_LEAKY_RELU), fn, __LINE__);
        cg_clear_error(); /* no elements: a no-op, as PyTorch (fan_in 0) */
        succeeds_s(
            kai[i].f(cg_zeros(ctx, CG_F64, CG_SHAPE(3, 0)), &rng_, 0, CG_FAN_IN, CG_ACT_RELU),
            fn, __LINE__);
    }
    label = NULL;
    SENTINEL("cg_init_gain", isnan(cg_init_gain((cg_act)42, 0)));
    QUIET("cg_init_gain",
          isnan(cg_init_gain(CG_ACT_LEAKY_RELU, NAN))); /* as torch's calculate_gain */
    /* zero-size tensors: nothing to fill (PyTorch: a no-op) */
    cg_tensor *z = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3));
    OK_S(cg_init_uniform_, z, &rng_, 0, 1);
    OK_S(cg_init_normal_, z, &rng_, 0, 1);
    OK_S(cg_init_constant_, z, 1);
    /* views: a transposed tensor gets the values a contiguous one of its shape gets */
    cg_tensor *tr = cg_transpose(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(3, 4)), 0, 1);
    cg_rng a = seeded(5), b = seeded(5);
    OK_S(cg_init_kaiming_uniform_, tr, &a, 0, CG_FAN_OUT, CG_ACT_RELU);
    cg_init_kaiming_uniform_(t, &b, 0, CG_FAN_OUT, CG_ACT_RELU);
    if (!same_tensor(cg_contiguous(ctx, tr), t, 0))
        defect(__LINE__, "cg_init_kaiming_uniform_", "view: wrong");
    done();
}

static void test_misuse_composed_losses(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *b = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *r;
    typedef cg_tensor *(*loss_fn)(cg_ctx *, const cg_tensor *, const cg_tensor *, cg_reduction);
    const struct {
        const char *name;
        loss_fn f;
    } losses[] = {{"cg_mse_loss", cg_mse_loss},
                  {"cg_l1_loss", cg_l1_loss},
                  {"cg_cross_entropy_probs", cg_cross_entropy_probs}};
    for (int i = 0; i < 3; i++) {
        const char *fn = losses[i].name;
        loss_fn f = losses[i].f;
        label = fn;
        cg_clear_error();
        fails_t(f(ctx, NULL, b, CG_MEAN), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, a, NULL, CG_MEAN), fn, __LINE__);
        prior_error();
        keeps_prior(f(ctx, a, NULL, CG_MEAN), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, a, pos(ctx, CG_F64, CG_SHAPE(3)), CG_MEAN), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, a, pos(ctx, CG_F64, CG_SHAPE(3, 2)), CG_MEAN), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, a, cg_cast(ctx, b, CG_F32), CG_MEAN), fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)),
                  cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)), CG_MEAN),
                fn, __LINE__);
        cg_clear_error();
        fails_t(f(ctx, a, b, (cg_reduction)7), fn, __LINE__);
        cg_clear_error();
        r = succeeds_t(f(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)),
                         cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), CG_SUM),
                       fn, __LINE__);
        if (r && cg_item(r) != 0) defect(__LINE__, fn, "sum of nothing");
        view_case va[NVIEWS], vb[NVIEWS];
        make_views(ctx, va);
        make_views(ctx, vb);
        for (int v = 0; v < NVIEWS; v++) {
            const cg_tensor *x = va[v].v, *y = vb[(v + 1) % NVIEWS].v;
            cg_clear_error();
            if (!same_tensor(succeeds_t(f(ctx, x, y, CG_NONE), fn, __LINE__),
                             f(ctx, cg_contiguous(ctx, x), cg_contiguous(ctx, y), CG_NONE),
                             1e-12))
                defect(__LINE__, fn, "%s: wrong", va[v].name);
        }
    }
    label = NULL;
    NUL(cg_smooth_l1_loss, ctx, NULL, b, 1, CG_MEAN);
    KEEPS(cg_smooth_l1_loss, ctx, a, NULL, 1, CG_MEAN);
    NUL(cg_smooth_l1_loss, ctx, a, b, -1, CG_MEAN);
    NUL(cg_smooth_l1_loss, ctx, a, b, NAN, CG_MEAN);
    NUL(cg_smooth_l1_loss, ctx, a, pos(ctx, CG_F64, CG_SHAPE(3)), 1, CG_MEAN);
    NUL(cg_smooth_l1_loss, ctx, a, b, 1, (cg_reduction)4);
    OK_T(cg_smooth_l1_loss, ctx, a, b, 0, CG_MEAN);
    NUL(cg_huber_loss, ctx, NULL, b, 1, CG_MEAN);
    KEEPS(cg_huber_loss, ctx, a, NULL, 1, CG_MEAN);
    NUL(cg_huber_loss, ctx, a, b, 0, CG_MEAN);
    NUL(cg_huber_loss, ctx, a, b, -1, CG_MEAN);
    NUL(cg_huber_loss, ctx, a, b, NAN, CG_MEAN);
    NUL(cg_huber_loss, ctx, a, cg_cast(ctx, b, CG_F32), 1, CG_MEAN);
    NUL(cg_huber_loss, ctx, a, b, 1, (cg_reduction)4);
    NUL(cg_cross_entropy_probs, ctx, pos(ctx, CG_F64, CG_SHAPE(2, 3, 4)),
        pos(ctx, CG_F64, CG_SHAPE(2, 3, 4)), CG_MEAN);
    done();
}

/* ---- optimizers, schedules, clipping ----------------------------------------- */
/* A small model with gradients, for the optimizers. */
static cg_module *model_with_grads(cg_ctx *ctx) {
    cg_module *m = cg_nn_linear(&rng_, CG_F64, 3, 2, true);
    cg_tensor *loss = cg_sum(ctx, cg_module_forward(ctx, m, pos(ctx, CG_F64, CG_SHAPE(4, 3))),
                             NULL, 0, false);
    cg_backward(loss);
    return m;
}

static void test_misuse_optim(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = model_with_grads(ctx);
    cg_sgd_opts sgd = cg_sgd_defaults(0.1);
    cg_adam_opts adam = cg_adam_defaults(1e-3), adamw = cg_adamw_defaults(1e-3);
    cg_rmsprop_opts rms = cg_rmsprop_defaults(1e-2);
    cg_adagrad_opts ada = cg_adagrad_defaults(1e-2);
    QUIET("cg_adamw_defaults", adamw.weight_decay == 0.01 && adam.beta2 == 0.999);
    QUIET("cg_rmsprop_defaults", rms.alpha == 0.99 && ada.eps == 1e-10 && sgd.lr == 0.1);
    /* NULL module or options; a child held by a container */
    NULP(cg_sgd_new, NULL, &sgd);
    NULP(cg_sgd_new, m, NULL);
    NULP(cg_adam_new, NULL, &adam);
    NULP(cg_adam_new, m, NULL);
    NULP(cg_adamw_new, NULL, &adamw);
    NULP(cg_adamw_new, m, NULL);
    NULP(cg_rmsprop_new, NULL, &rms);
    NULP(cg_rmsprop_new, m, NULL);
    NULP(cg_adagrad_new, NULL, &ada);
    NULP(cg_adagrad_new, m, NULL);
    cg_module *inner = cg_nn_identity(), *holder = cg_nn_sequential(1, &inner);
    cg_module *lin = cg_nn_linear(&rng_, CG_F64, 2, 2, false);
    cg_module_add_child(holder, "lin", lin);
    cg_optim_free(OK_P(cg_sgd_new, lin, &sgd)); /* a child's parameters, as PyTorch allows */
    cg_module_free(holder);
    /* bad option values, one at a time */
    const double nonfinite[] = {NAN, INFINITY, -1};
    for (int i = 0; i < 3; i++) {
        double v = nonfinite[i];
        cg_sgd_opts so = sgd;
        so.lr = v;
        NULP(cg_sgd_new, m, &so);
        so = sgd;
        so.momentum = v;
        NULP(cg_sgd_new, m, &so);
        so = sgd;
        so.weight_decay = v;
        NULP(cg_sgd_new, m, &so);
        cg_adam_opts ao = adam;
        ao.eps = v;
        NULP(cg_adam_new, m, &ao);
        ao = adam;
        ao.beta1 = v;
        NULP(cg_adam_new, m, &ao);
        ao = adamw;
        ao.weight_decay = v;
        NULP(cg_adamw_new, m, &ao);
        cg_rmsprop_opts ro = rms;
        ro.alpha = v;
        NULP(cg_rmsprop_new, m, &ro);
        cg_adagrad_opts go = ada;
        go.lr_decay = v;
        NULP(cg_adagrad_new, m, &go);
        go = ada;
        go.initial_accumulator_value = v;
        NULP(cg_adagrad_new, m, &go);
    }
    cg_adam_opts b1 = adam;
    b1.beta2 = 1.0;
    NULP(cg_adam_new, m, &b1);
    cg_sgd_opts nest = sgd;
    nest.nesterov = true; /* needs momentum > 0, dampening 0 */
    NULP(cg_sgd_new, m, &nest);
    /* groups: counts, NULLs, repeats, dtypes, layout */
    cg_tensor *p1 = cg_module_param(m, 0, NULL), *p2 = cg_module_param(m, 1, NULL);
    cg_tensor *pf = cg_zeros(NULL, CG_F32, CG_SHAPE(2)),
              *pi = cg_zeros(NULL, CG_I64, CG_SHAPE(2));
    cg_tensor *pt = cg_transpose(NULL, p1, 0, 1);
    cg_set_requires_grad(pf, true);
    cg_param_group ok1 = {1, (cg_tensor *const[]){p1}, NULL};
    const struct {
        const char *what;
        int n;
        cg_param_group g[2];
    } bad_groups[] = {
        {"ngroups 0", 0, {{0}}},
        {"ngroups -1", -1, {{0}}},
        {"params NULL", 1, {{2, NULL, NULL}}},
        {"nparams -1", 1, {{-1, (cg_tensor *const[]){p1}, NULL}}},
        {"a NULL param", 1, {{2, (cg_tensor *const[]){p1, NULL}, NULL}}},
        {"twice in a group", 1, {{2, (cg_tensor *const[]){p1, p1}, NULL}}},
        {"in two groups",
         2,
         {{1, (cg_tensor *const[]){p1}, NULL}, {1, (cg_tensor *const[]){p1}, NULL}}},
        {"mixed dtypes", 1, {{2, (cg_tensor *const[]){p1, pf}, NULL}}},
        {"i64", 1, {{1, (cg_tensor *const[]){pi}, NULL}}},
        {"non-contiguous", 1, {{1, (cg_tensor *const[]){pt}, NULL}}},
        {"a context tensor",
         1,
         {{1, (cg_tensor *const[]){cg_zeros(ctx, CG_F64, CG_SHAPE(2))}, NULL}}},
        {"bad group options",
         2,
         {{1, (cg_tensor *const[]){p1}, NULL},
          {1, (cg_tensor *const[]){p2}, &(cg_sgd_opts){.lr = -1}}}},
    };
    for (size_t i = 0; i < sizeof bad_groups / sizeof *bad_groups; i++) {
        label = bad_groups[i].what;
        NULP(cg_sgd_new_groups, bad_groups[i].n, bad_groups[i].g, &sgd);
        NULP(cg_adam_new_groups, bad_groups[i].n, bad_groups[i].g, &adam);
        NULP(cg_adamw_new_groups, bad_groups[i].n, bad_groups[i].g, &adamw);
        NULP(cg_rmsprop_new_groups, bad_groups[i].n, bad_groups[i].g, &rms);
        NULP(cg_adagrad_new_groups, bad_groups[i].n, bad_groups[i].g, &ada);
    }
    label = NULL;
    NULP(cg_sgd_new_groups, 1, NULL, &sgd);
    NULP(cg_sgd_new_groups, 1, &ok1, NULL);
    NULP(cg_adam_new_groups, 1, &ok1, NULL);
    NULP(cg_adamw_new_groups, 1, &ok1, NULL);
    NULP(cg_rmsprop_new_groups, 1, &ok1, NULL);
    NULP(cg_adagrad_new_groups, 1, &ok1, NULL);
    cg_tensor_free(pt);
    cg_tensor_free(pf);
    cg_tensor_free(pi);
    cg_optim *empty = OK_P(cg_sgd_new_groups, 1, (cg_param_group[]){{0, NULL, NULL}}, &sgd);
    OK_S(cg_optim_step, empty);
    cg_optim_free(empty);
    /* an optimizer's accessors */
    cg_optim *o = cg_adam_new(m, &adam);
    OK_S(cg_optim_step, o);
    BAD(cg_optim_step, NULL);
    QUIET("cg_optim_zero_grad", (cg_optim_zero_grad(NULL), true));
    SENTINEL("cg_optim_lr", isnan(cg_optim_lr(NULL)));
    BAD(cg_optim_set_lr, NULL, 0.1);
    BAD(cg_optim_set_lr, o, -0.1);
    BAD(cg_optim_set_lr, o, NAN);
    BAD(cg_optim_set_lr, o, INFINITY);
    SENTINEL("cg_optim_ngroups", cg_optim_ngroups(NULL) == 0);
    SENTINEL("cg_optim_group_lr", isnan(cg_optim_group_lr(NULL, 0)));
    SENTINEL("cg_optim_group_lr", isnan(cg_optim_group_lr(o, 1)));
    SENTINEL("cg_optim_group_lr", isnan(cg_optim_group_lr(o, -1)));
    BAD(cg_optim_set_group_lr, NULL, 0, 0.1);
    BAD(cg_optim_set_group_lr, o, 1, 0.1);
    BAD(cg_optim_set_group_lr, o, INT32_MIN, 0.1);
    BAD(cg_optim_set_group_lr, o, 0, NAN);
    SENTINEL("cg_optim_steps", cg_optim_steps(NULL) == 0);
    BAD(cg_optim_set_steps, NULL, 1);
    BAD(cg_optim_set_steps, o, -1);
    BAD(cg_optim_set_steps, o, INT64_MIN);
    SENTINEL("cg_optim_name", strcmp(cg_optim_name(NULL), "NULL") == 0);
    QUIET("cg_optim_name", strcmp(cg_optim_name(o), "adam") == 0);
    SENTINEL("cg_optim_nstate", cg_optim_nstate(NULL) == 0);
    SENTINEL("cg_optim_state", cg_optim_state(NULL, 0, NULL) == NULL);
    SENTINEL("cg_optim_state", cg_optim_state(o, -1, NULL) == NULL);
    SENTINEL("cg_optim_state", cg_optim_state(o, cg_optim_nstate(o), NULL) == NULL);
    /* a non-contiguous gradient is refused, nothing updated */
    cg_tensor *w = cg_module_get(m, "weight");
    cg_tensor *gb = cg_zeros(NULL, CG_F64, CG_SHAPE(3, 2)), *gt = cg_transpose(NULL, gb, 0, 1);
    cg_tensor_free(gb);
    cg_set_grad(w, gt);
    cg_tensor *before = cg_clone(ctx, w);
    BAD(cg_optim_step, o);
    if (!same_tensor(before, w, 0)) defect(__LINE__, "cg_optim_step", "updated on error");
    cg_optim_zero_grad(o); /* zeroes the strided gradient in place */
    QUIET("cg_optim_free", (cg_optim_free(NULL), true));
    cg_optim_free(o);
    cg_module_free(m);
    done();
}

static double half(int64_t epoch, void *user) {
    (void)user;
    return epoch >= 0 ? 0.5 : NAN;
}
static double bad_factor(int64_t epoch, void *user) {
    (void)user;
    return epoch > 1 ? NAN : 1;
}

static void test_misuse_sched(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = model_with_grads(ctx);
    cg_optim *o = cg_sgd_new(m, &(cg_sgd_opts){.lr = 0.1});
    NULP(cg_steplr_new, NULL, 2, 0.5);
    NULP(cg_steplr_new, o, 0, 0.5);
    NULP(cg_steplr_new, o, -1, 0.5);
    NULP(cg_steplr_new, o, 2, NAN);
    NULP(cg_steplr_new, o, 2, -0.5);
    NULP(cg_multisteplr_new, NULL, 1, (const int[]){2}, 0.5);
    NULP(cg_multisteplr_new, o, 1, NULL, 0.5);
    NULP(cg_multisteplr_new, o, -1, (const int[]){2}, 0.5);
    /* unsorted, repeated and negative milestones are torch's too (a Counter) */
    cg_sched_free(OK_P(cg_multisteplr_new, o, 3, (const int[]){3, 2, 2}, 0.5));
    NULP(cg_multisteplr_new, o, 1, (const int[]){2}, INFINITY);
    NULP(cg_exponentiallr_new, NULL, 0.9);
    NULP(cg_exponentiallr_new, o, NAN);
    NULP(cg_exponentiallr_new, o, -0.9);
    NULP(cg_cosinelr_new, NULL, 10, 0);
    NULP(cg_cosinelr_new, o, 0, 0);
    NULP(cg_cosinelr_new, o, -5, 0);
    NULP(cg_cosinelr_new, o, 10, NAN);
    NULP(cg_cosinelr_new, o, 10, -1);
    NULP(cg_warmuplr_new, NULL, 0.1, 5);
    NULP(cg_warmuplr_new, o, 0, 5);
    NULP(cg_warmuplr_new, o, 1.5, 5);
    NULP(cg_warmuplr_new, o, NAN, 5);
    NULP(cg_warmuplr_new, o, 0.1, 0);
    NULP(cg_warmuplr_new, o, 0.1, -3);
    cg_onecycle_opts oc = cg_onecycle_defaults(1, 10);
    QUIET("cg_onecycle_defaults",
          oc.pct_start == 0.3 && oc.div_factor == 25 && oc.total_steps == 10);
    NULP(cg_onecyclelr_new, NULL, &oc);
    NULP(cg_onecyclelr_new, o, NULL);
    const struct {
        int field;
        double v;
    } bad_oc[] = {{0, -1},  {0, NAN}, {1, 0},  {1, -2}, {2, -0.1}, {2, 1.5},
                  {2, NAN}, {3, 0},   {3, -1}, {4, 0},  {4, NAN}};
    for (size_t i = 0; i < sizeof bad_oc / sizeof *bad_oc; i++) {
        cg_onecycle_opts q = oc;
        switch (bad_oc[i].field) {
        case 0: q.max_lr = bad_oc[i].v; break;
        case 1: q.total_steps = (int)bad_oc[i].v; break;
        case 2: q.pct_start = bad_oc[i].v; break;
        case 3: q.div_factor = bad_oc[i].v; break;
        case 4: q.final_div_factor = bad_oc[i].v; break;
        }
        char what[48];
        snprintf(what, sizeof what, "field %d = %g", bad_oc[i].field, bad_oc[i].v);
        label = what;
        NULP(cg_onecyclelr_new, o, &q);
    }
    label = NULL;
    NULP(cg_lambdalr_new, NULL, half, NULL);
    NULP(cg_lambdalr_new, o, NULL, NULL);
    NULP(cg_multiplicativelr_new, NULL, half, NULL);
    NULP(cg_multiplicativelr_new, o, NULL, NULL);
    cg_plateau_opts pl = cg_plateau_defaults();
    QUIET("cg_plateau_defaults", pl.factor == 0.1 && pl.patience == 10);
    NULP(cg_plateau_new, NULL, &pl);
    cg_plateau_opts bp = pl;
    bp.factor = 1.0;
    NULP(cg_plateau_new, o, &bp);
    bp = pl;
    bp.factor = NAN;
    NULP(cg_plateau_new, o, &bp);
    bp = pl;
    bp.patience = -1;
    NULP(cg_plateau_new, o, &bp);
    bp = pl;
    bp.min_lr = -1;
    NULP(cg_plateau_new, o, &bp);
    bp = pl;
    bp.threshold = NAN;
    NULP(cg_plateau_new, o, &bp);
    cg_sched *plateau = OK_P(cg_plateau_new, o, NULL);
    BAD(cg_sched_step, plateau);              /* needs a metric */
    OK_S(cg_sched_step_metric, plateau, NAN); /* torch: not an improvement */
    OK_S(cg_sched_step_metric, plateau, 1.0);
    cg_sched_free(plateau);
    /* sequential and chained: ownership of the children, also on failure (ASan) */
    NULP(cg_sequentiallr_new, o, 2, (cg_sched *const[]){cg_steplr_new(o, 2, 0.5), NULL},
         (const int[]){3});
    NULP(cg_sequentiallr_new, o, 0, NULL, NULL);
    NULP(cg_sequentiallr_new, o, 2, NULL, (const int[]){3});
    NULP(cg_sequentiallr_new, o, 2,
         (cg_sched *const[]){cg_steplr_new(o, 2, 0.5), cg_exponentiallr_new(o, 0.9)}, NULL);
    NULP(cg_sequentiallr_new, o, 2,
         (cg_sched *const[]){cg_steplr_new(o, 2, 0.5), cg_exponentiallr_new(o, 0.9)},
         (const int[]){0});
    NULP(cg_sequentiallr_new, NULL, 2,
         (cg_sched *const[]){cg_steplr_new(o, 2, 0.5), cg_exponentiallr_new(o, 0.9)},
         (const int[]){3});
    NULP(cg_sequentiallr_new, o, 3,
         (cg_sched *const[]){cg_steplr_new(o, 2, 0.5), cg_exponentiallr_new(o, 0.9),
                             cg_steplr_new(o, 2, 0.5)},
         (const int[]){4, 4});
    NULP(cg_sequentiallr_new, o, 2,
         (cg_sched *const[]){cg_steplr_new(o, 2, 0.5), cg_plateau_new(o, NULL)},
         (const int[]){3});
    cg_sched *dup = cg_steplr_new(o, 2, 0.5);
    NULP(cg_sequentiallr_new, o, 2, (cg_sched *const[]){dup, dup}, (const int[]){3});
    cg_optim *o2 = cg_sgd_new(m, &(cg_sgd_opts){.lr = 0.1});
    NULP(cg_sequentiallr_new, o, 2,
         (cg_sched *const[]){cg_steplr_new(o, 2, 0.5), cg_steplr_new(o2, 2, 0.5)},
         (const int[]){3});
    NULP(cg_chainedscheduler_new, 0, NULL);
    NULP(cg_chainedscheduler_new, -1, NULL);
    NULP(cg_chainedscheduler_new, 2, (cg_sched *const[]){cg_steplr_new(o, 2, 0.5), NULL});
    NULP(cg_chainedscheduler_new, 2,
         (cg_sched *const[]){cg_steplr_new(o, 2, 0.5), cg_steplr_new(o2, 2, 0.5)});
    cg_sched *dup2 = cg_steplr_new(o, 2, 0.5);
    NULP(cg_chainedscheduler_new, 2, (cg_sched *const[]){dup2, dup2});
    /* stepping */
    BAD(cg_sched_step, NULL);
    BAD(cg_sched_step_metric, NULL, 1);
    SENTINEL("cg_sched_lr", isnan(cg_sched_lr(NULL)));
    SENTINEL("cg_sched_group_lr", isnan(cg_sched_group_lr(NULL, 0)));
    cg_sched *s = cg_steplr_new(o, 1, 0.5);
    SENTINEL("cg_sched_group_lr", isnan(cg_sched_group_lr(s, 1)));
    SENTINEL("cg_sched_group_lr", isnan(cg_sched_group_lr(s, -1)));
    cg_sched_free(s);
    cg_sched *once = cg_onecyclelr_new(o, &(cg_onecycle_opts){1, 2, 0.3, 25, 1e4});
    OK_S(cg_sched_step, once);
    OK_S(cg_sched_step, once);
    BAD(cg_sched_step, once);
    BAD(cg_sched_step, once); /* and again: still past the end */
    cg_sched_free(once);
    cg_sched *lam = OK_P(cg_multiplicativelr_new, o, bad_factor, NULL);
    OK_S(cg_sched_step, lam); /* epoch 1: a factor of 1 */
    double lr = cg_optim_lr(o);
    BAD(cg_sched_step, lam); /* epoch 2: NaN, the lrs kept */
    if (cg_optim_lr(o) != lr) defect(__LINE__, "cg_sched_step", "lr changed on error");
    cg_sched_free(lam);
    QUIET("cg_sched_free", (cg_sched_free(NULL), true));
    cg_optim_free(o2);
    cg_optim_free(o);
    cg_module_free(m);
    done();
}

static void test_misuse_clip(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = model_with_grads(ctx);
    double norm = -1;
    BAD(cg_clip_grad_norm_, NULL, 1, &norm);
    BAD(cg_clip_grad_norm_, m, -1, &norm);
    BAD(cg_clip_grad_norm_, m, NAN, &norm);
    OK_S(cg_clip_grad_norm_, m, INFINITY, NULL);
    BAD(cg_clip_grad_value_, NULL, 1);
    BAD(cg_clip_grad_value_, m, -1);
    BAD(cg_clip_grad_value_, m, NAN);
    cg_tensor *p = cg_module_param(m, 0, NULL);
    cg_tensor *ps[2] = {p, NULL};
    BAD(cg_clip_grad_norm_params_, -1, ps, 1, NULL);
    BAD(cg_clip_grad_norm_params_, 1, NULL, 1, NULL);
    BAD(cg_clip_grad_norm_params_, 2, ps, 1, NULL);
    BAD(cg_clip_grad_norm_params_, 1, ps, NAN, NULL);
    BAD(cg_clip_grad_value_params_, -1, ps, 1);
    BAD(cg_clip_grad_value_params_, 1, NULL, 1);
    BAD(cg_clip_grad_value_params_, 2, ps, 1);
    BAD(cg_clip_grad_value_params_, 1, ps, -0.5);
    OK_S(cg_clip_grad_norm_params_, 0, NULL, 1, &norm);
    if (norm != 0) defect(__LINE__, "cg_clip_grad_norm_params_", "norm of nothing");
    OK_S(cg_clip_grad_value_params_, 0, NULL, 1);
    /* a strided gradient: refused, nothing changed */
    cg_tensor *g0 = cg_clone(ctx, cg_grad_of(p));
    cg_tensor *gb = cg_zeros(NULL, CG_F64, CG_SHAPE(3, 2)), *gt = cg_transpose(NULL, gb, 0, 1);
    cg_tensor_free(gb);
    cg_tensor *q = cg_zeros(NULL, CG_F64, CG_SHAPE(2, 3));
    cg_set_requires_grad(q, true);
    cg_set_grad(q, gt);
    cg_tensor *both[2] = {p, q};
    BAD(cg_clip_grad_value_params_, 2, both, 0.001);
    BAD(cg_clip_grad_norm_params_, 2, both, 0.001, &norm);
    if (!same_tensor(g0, cg_grad_of(p), 0))
        defect(__LINE__, "cg_clip_grad_value_params_", "changed on error");
    cg_tensor_free(q);
    /* a child held by a container */
    cg_module *inner = cg_nn_linear(&rng_, CG_F64, 2, 2, true),
              *outer = cg_nn_sequential(1, &inner);
    BAD(cg_clip_grad_norm_, inner, 1, NULL);
    BAD(cg_clip_grad_value_, inner, 1);
    cg_module_free(outer);
    cg_module_free(m);
    done();
}

/* ---- attention and sampling -------------------------------------------------------- */

/* softmax(q k^T scale) v by the composite ops: the reference for valid calls. */
static cg_tensor *sdpa_ref(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k,
                           const cg_tensor *v, double scale) {
    int n = cg_ndim(q);
    cg_tensor *s =
        cg_mul_scalar(ctx, cg_matmul(ctx, q, cg_transpose(ctx, k, n - 2, n - 1)), scale);
    return cg_matmul(ctx, cg_softmax(ctx, s, -1), v);
}

static void test_misuse_attention(void **state) {
    cg_ctx *ctx = *state;
    cg_attn_opts o = cg_attn_defaults();
    QUIET("cg_attn_defaults", !o.mask && !o.causal && o.dropout == 0 && !o.rng && o.scale == 0);
    cg_tensor *q = pos(ctx, CG_F64, CG_SHAPE(2, 3, 4)),
              *k = pos(ctx, CG_F64, CG_SHAPE(2, 5, 4)),
              *v = pos(ctx, CG_F64, CG_SHAPE(2, 5, 6));
    NUL(cg_scaled_dot_product_attention, ctx, NULL, k, v, NULL);
    NUL(cg_scaled_dot_product_attention, ctx, q, NULL, v, NULL);
    NUL(cg_scaled_dot_product_attention, ctx, q, k, NULL, NULL);
    KEEPS(cg_scaled_dot_product_attention, ctx, NULL, k, v, NULL);
    KEEPS(cg_scaled_dot_product_attention, ctx, q, NULL, v, &o);
    KEEPS(cg_scaled_dot_product_attention, ctx, q, k, NULL, NULL);
    /* shapes: rank < 2, D, Tk, leading dims and ranks that differ, D = 0 */
    NUL(cg_scaled_dot_product_attention, ctx, pos(ctx, CG_F64, CG_SHAPE(4)), k, v, NULL);
    NUL(cg_scaled_dot_product_attention, ctx, q, pos(ctx, CG_F64, CG_SHAPE(2, 5, 3)), v, NULL);
    NUL(cg_scaled_dot_product_attention, ctx, q, k, pos(ctx, CG_F64, CG_SHAPE(2, 4, 6)), NULL);
    NUL(cg_scaled_dot_product_attention, ctx, q, pos(ctx, CG_F64, CG_SHAPE(3, 5, 4)),
        pos(ctx, CG_F64, CG_SHAPE(3, 5, 6)), NULL);
    NUL(cg_scaled_dot_product_attention, ctx, q, pos(ctx, CG_F64, CG_SHAPE(1, 2, 5, 4)), v,
        NULL);
    NUL(cg_scaled_dot_product_attention, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3, 0)),
        cg_zeros(ctx, CG_F64, CG_SHAPE(2, 5, 0)), v, NULL);
    /* dtypes: integers, mixed floats, a mask of another dtype */
    NUL(cg_scaled_dot_product_attention, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3, 4)),
        cg_ones(ctx, CG_I64, CG_SHAPE(2, 5, 4)), cg_ones(ctx, CG_I64, CG_SHAPE(2, 5, 6)), NULL);
    NUL(cg_scaled_dot_product_attention, ctx, cg_cast(ctx, q, CG_F32), k, v, NULL);
    NUL(cg_scaled_dot_product_attention, ctx, q, k, cg_cast(ctx, v, CG_F32), NULL);
    cg_attn_opts bad = cg_attn_defaults();
    bad.mask = cg_zeros(ctx, CG_F32, CG_SHAPE(3, 5));
    NUL(cg_scaled_dot_product_attention, ctx, q, k, v, &bad);
    bad.mask = cg_zeros(ctx, CG_I64, CG_SHAPE(3, 5));
    NUL(cg_scaled_dot_product_attention, ctx, q, k, v, &bad);
    bad.mask = cg_zeros(ctx, CG_F64, CG_SHAPE(5, 3)); /* not broadcastable to [2, 3, 5] */
    NUL(cg_scaled_dot_product_attention, ctx, q, k, v, &bad);
    bad.mask = cg_zeros(ctx, CG_F64, CG_SHAPE(3, 2, 3, 5)); /* more dims than the scores */
    NUL(cg_scaled_dot_product_attention, ctx, q, k, v, &bad);
    /* options: causal with Tq != Tk, dropout outside [0, 1) or without rng, scale */
    bad = cg_attn_defaults();
    bad.causal = true;
    NUL(cg_scaled_dot_product_attention, ctx, q, k, v, &bad);
    const double drops[] = {-0.1, 1, 1.5, NAN, INFINITY};
    for (int i = 0; i < 5; i++) {
        bad = cg_attn_defaults();
        bad.dropout = drops[i];
        bad.rng = &rng_;
        NUL(cg_scaled_dot_product_attention, ctx, q, k, v, &bad);
    }
    bad = cg_attn_defaults();
    bad.dropout = 0.5;
    NUL(cg_scaled_dot_product_attention, ctx, q, k, v, &bad);
    const double scales[] = {-1, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 4; i++) {
        bad = cg_attn_defaults();
        bad.scale = scales[i];
        NUL(cg_scaled_dot_product_attention, ctx, q, k, v, &bad);
    }
    /* a graph needs a context */
    cg_tensor *leaf = pos(ctx, CG_F64, CG_SHAPE(2, 3, 4));
    cg_set_requires_grad(leaf, true);
    NUL(cg_scaled_dot_product_attention, NULL, leaf, k, v, NULL);
    /* valid: the defaults agree with the composite, NULL ctx too */
    double sc = 1 / sqrt(4.0);
    cg_tensor *ref = sdpa_ref(ctx, q, k, v, sc);
    if (!same_tensor(OK_T(cg_scaled_dot_product_attention, ctx, q, k, v, NULL), ref, 1e-12))
        defect(__LINE__, "cg_scaled_dot_product_attention", "defaults: wrong");
    cg_tensor *heap = OK_T(cg_scaled_dot_product_attention, NULL, q, k, v, &o);
    if (!same_tensor(heap, ref, 1e-12))
        defect(__LINE__, "cg_scaled_dot_product_attention", "no context: wrong");
    cg_tensor_free(heap);
    o.scale = 0.3;
    if (!same_tensor(OK_T(cg_scaled_dot_product_attention, ctx, q, k, v, &o),
                     sdpa_ref(ctx, q, k, v, 0.3), 1e-12))
        defect(__LINE__, "cg_scaled_dot_product_attention", "scale: wrong");
    /* views: q from a transpose, k stepped, v expanded over the batch */
    cg_tensor *qv = cg_transpose(ctx, pos(ctx, CG_F64, CG_SHAPE(2, 4, 3)), 1, 2);
    cg_tensor *kv = cg_slice(ctx, pos(ctx, CG_F64, CG_SHAPE(2, 10, 4)), 1, 0, CG_END, 2);
    cg_tensor *vv = cg_expand(ctx, pos(ctx, CG_F64, CG_SHAPE(1, 5, 6)), CG_SHAPE(2, 5, 6));
    if (!same_tensor(OK_T(cg_scaled_dot_product_attention, ctx, qv, kv, vv, NULL),
                     cg_scaled_dot_product_attention(ctx, cg_contiguous(ctx, qv),
                                                     cg_contiguous(ctx, kv),
                                                     cg_contiguous(ctx, vv), NULL),
                     1e-12))
        defect(__LINE__, "cg_scaled_dot_product_attention", "views: wrong");
    /* zero-size: no batch, no queries, no keys (zeros), rank 8 */
    if (!HAS_SHAPE(OK_T(cg_scaled_dot_product_attention, ctx,
                        cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3, 4)),
                        cg_zeros(ctx, CG_F64, CG_SHAPE(0, 5, 4)),
                        cg_zeros(ctx, CG_F64, CG_SHAPE(0, 5, 6)), NULL),
                   0, 3, 6))
        defect(__LINE__, "cg_scaled_dot_product_attention", "no batch");
    if (!HAS_SHAPE(OK_T(cg_scaled_dot_product_attention, ctx,
                        cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0, 4)), k, v, NULL),
                   2, 0, 6))
        defect(__LINE__, "cg_scaled_dot_product_attention", "no queries");
    cg_tensor *nokeys =
        OK_T(cg_scaled_dot_product_attention, ctx, q, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0, 4)),
             cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0, 6)), NULL);
    if (!same_tensor(nokeys, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3, 6)), 0))
        defect(__LINE__, "cg_scaled_dot_product_attention", "no keys: not zeros");
    const int64_t q8[CG_MAX_DIMS] = {1, 2, 1, 1, 1, 1, 3, 4},
                  v8[CG_MAX_DIMS] = {1, 2, 1, 1, 1, 1, 3, 2};
    cg_tensor *a8 = pos(ctx, CG_F64, CG_MAX_DIMS, q8), *b8 = pos(ctx, CG_F64, CG_MAX_DIMS, v8);
    if (!same_tensor(OK_T(cg_scaled_dot_product_attention, ctx, a8, a8, b8, NULL),
                     sdpa_ref(ctx, a8, a8, b8, 0.5), 1e-12))
        defect(__LINE__, "cg_scaled_dot_product_attention", "rank 8: wrong");
    /* a broadcast mask, causal, dropout with an rng, f32 */
    cg_attn_opts c = cg_attn_defaults();
    c.mask = cg_zeros(ctx, CG_F64, CG_SHAPE(5));
    if (!same_tensor(OK_T(cg_scaled_dot_product_attention, ctx, q, k, v, &c), ref, 1e-12))
        defect(__LINE__, "cg_scaled_dot_product_attention", "zero mask: wrong");
    c.causal = true;
    OK_T(cg_scaled_dot_product_attention, ctx, k, k, v, &c);
    c.dropout = 0.5;
    c.rng = &rng_;
    OK_T(cg_scaled_dot_product_attention, ctx, k, k, v, &c);
    /* a mask that requires a gradient (the composite path) gets one */
    cg_tensor *lm = cg_zeros(ctx, CG_F64, CG_SHAPE(3, 5));
    cg_set_requires_grad(lm, true);
    cg_attn_opts gm = cg_attn_defaults();
    gm.mask = lm;
    cg_tensor *ym = OK_T(cg_scaled_dot_product_attention, ctx, q, k, v, &gm);
    if (!same_tensor(ym, ref, 1e-12))
        defect(__LINE__, "cg_scaled_dot_product_attention", "mask with grad: wrong");
    OK_S(cg_backward, cg_sum(ctx, ym, NULL, 0, false));
    if (!cg_grad_of(lm) || !cg_same_shape(cg_grad_of(lm), lm))
        defect(__LINE__, "cg_scaled_dot_product_attention", "mask: no gradient");
    OK_T(cg_scaled_dot_product_attention, ctx, cg_cast(ctx, q, CG_F32), cg_cast(ctx, k, CG_F32),
         cg_cast(ctx, v, CG_F32), NULL);
    /* backward through a view and a zero-size batch reaches the leaves */
    cg_tensor *lq = pos(ctx, CG_F64, CG_SHAPE(2, 4, 3)),
              *lz = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3, 4));
    cg_set_requires_grad(lq, true);
    cg_set_requires_grad(lz, true);
    cg_tensor *y =
        cg_scaled_dot_product_attention(ctx, cg_transpose(ctx, lq, 1, 2), k, v, NULL);
    OK_S(cg_backward, cg_sum(ctx, y, NULL, 0, false));
    if (!cg_grad_of(lq) || !cg_same_shape(cg_grad_of(lq), lq))
        defect(__LINE__, "cg_scaled_dot_product_attention", "view: no gradient at the leaf");
    y = cg_scaled_dot_product_attention(ctx, lz, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 5, 4)),
                                        cg_zeros(ctx, CG_F64, CG_SHAPE(0, 5, 6)), NULL);
    OK_S(cg_backward, cg_sum(ctx, y, NULL, 0, false));
    if (!cg_grad_of(lz) || !cg_same_shape(cg_grad_of(lz), lz))
        defect(__LINE__, "cg_scaled_dot_product_attention",
               "zero-size: no gradient at the leaf");
    done();
}

static void test_misuse_sampling(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *p = pos(ctx, CG_F64, CG_SHAPE(2, 4)), *l = pos(ctx, CG_F64, CG_SHAPE(2, 4));
    /* multinomial: NULLs, dtype, rank, no categories, n, weights */
    NUL(cg_multinomial, ctx, NULL, 1, true, &rng_);
    KEEPS(cg_multinomial, ctx, NULL, 1, true, &rng_);
    NUL(cg_multinomial, ctx, p, 1, true, NULL);
    NUL(cg_multinomial, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 4)), 1, true, &rng_);
    NUL(cg_multinomial, ctx, cg_scalar(ctx, CG_F64, 1), 1, true, &rng_);
    NUL(cg_multinomial, ctx, pos(ctx, CG_F64, CG_SHAPE(2, 2, 4)), 1, true, &rng_);
    NUL(cg_multinomial, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0)), 1, true, &rng_);
    const int64_t bad_n[] = {0, -1, INT64_MIN};
    for (int i = 0; i < 3; i++) NUL(cg_multinomial, ctx, p, bad_n[i], true, &rng_);
    NUL(cg_multinomial, ctx, p, 5, false, &rng_);
    NUL(cg_multinomial, ctx, p, INT64_MAX, false, &rng_);
    NUL(cg_multinomial, ctx, p, INT64_MAX, true, &rng_); /* [2, INT64_MAX] */
    NUL(cg_multinomial, ctx, pos(ctx, CG_F64, CG_SHAPE(4)), INT64_MAX / 8 + 1, true, &rng_);
    const double rows[][3] = {{1, -1, 1}, {1, NAN, 1}, {1, INFINITY, 1}, {0, 0, 0}};
    for (int i = 0; i < 4; i++)
        NUL(cg_multinomial, ctx, cg_from_array(ctx, CG_F64, CG_SHAPE(3), rows[i]), 1, true,
            &rng_);
    NUL(cg_multinomial, ctx, cg_from_array(ctx, CG_F64, CG_SHAPE(3), (const double[]){1, 0, 1}),
        3, false, &rng_);
    /* valid: no rows, views, f32, weights that do not sum to 1 */
    if (!HAS_SHAPE(
            OK_T(cg_multinomial, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 4)), 2, false, &rng_),
            0, 2))
        defect(__LINE__, "cg_multinomial", "no rows");
    cg_tensor *one =
        cg_from_array(ctx, CG_F64, CG_SHAPE(2, 3), (const double[]){0, 0, 7, 0, 3, 0});
    cg_tensor *idx =
        OK_T(cg_multinomial, ctx,
             cg_transpose(ctx, cg_contiguous(ctx, cg_transpose(ctx, one, 0, 1)), 0, 1), 2, true,
             &rng_);
    if (!same_tensor(
            idx, cg_from_array(ctx, CG_I64, CG_SHAPE(2, 2), (const int64_t[]){2, 2, 1, 1}), 0))
        defect(__LINE__, "cg_multinomial", "view: wrong");
    OK_T(cg_multinomial, ctx, cg_transpose(ctx, cg_cast(ctx, p, CG_F32), 0, 1), 2, false,
         &rng_);
    cg_tensor *h = OK_T(cg_multinomial, NULL, p, 3, false, &rng_);
    cg_tensor_free(h);
    /* sample_logits: NULLs, dtype, rank, temperature, top_k, bad rows */
    NUL(cg_sample_logits, ctx, NULL, 1, 0, &rng_);
    KEEPS(cg_sample_logits, ctx, NULL, 1, 0, &rng_);
    NUL(cg_sample_logits, ctx, l, 1, 0, NULL);
    NUL(cg_sample_logits, ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 4)), 1, 0, &rng_);
    NUL(cg_sample_logits, ctx, cg_scalar(ctx, CG_F64, 1), 1, 0, &rng_);
    NUL(cg_sample_logits, ctx, pos(ctx, CG_F64, CG_SHAPE(1, 2, 4)), 1, 0, &rng_);
    NUL(cg_sample_logits, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0)), 1, 0, &rng_);
    const double temps[] = {0, -1, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 5; i++) NUL(cg_sample_logits, ctx, l, temps[i], 0, &rng_);
    NUL(cg_sample_logits, ctx, l, 1, -1, &rng_);
    NUL(cg_sample_logits, ctx, l, 1, INT64_MIN, &rng_);
    const double lrows[][3] = {
        {0, NAN, 1}, {0, INFINITY, 1}, {-INFINITY, -INFINITY, -INFINITY}};
    for (int i = 0; i < 3; i++)
        NUL(cg_sample_logits, ctx, cg_from_array(ctx, CG_F64, CG_SHAPE(3), lrows[i]), 1, 0,
            &rng_);
    /* valid: no rows, top_k 1 (argmax) of a view, top_k past V, -inf kept out, NULL ctx */
    if (!HAS_SHAPE(
            OK_T(cg_sample_logits, ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 4)), 1, 0, &rng_), 0))
        defect(__LINE__, "cg_sample_logits", "no rows");
    cg_tensor *lt = cg_transpose(
        ctx, cg_from_array(ctx, CG_F64, CG_SHAPE(3, 2), (const double[]){0, 9, 5, 1, 2, 3}), 0,
        1);
    if (!same_tensor(OK_T(cg_sample_logits, ctx, lt, 1, 1, &rng_),
                     cg_from_array(ctx, CG_I64, CG_SHAPE(2), (const int64_t[]){1, 0}), 0))
        defect(__LINE__, "cg_sample_logits", "top_k 1 of a view: not the argmax");
    OK_T(cg_sample_logits, ctx, lt, 1e-3, INT64_MAX, &rng_);
    cg_tensor *ninf =
        cg_from_array(ctx, CG_F64, CG_SHAPE(3), (const double[]){-INFINITY, 0, -INFINITY});
    if (cg_item(OK_T(cg_sample_logits, ctx, cg_cast(ctx, ninf, CG_F32), 100, 0, &rng_)) != 1)
        defect(__LINE__, "cg_sample_logits", "-inf drawn");
    h = OK_T(cg_sample_logits, NULL, l, 1, 2, &rng_);
    cg_tensor_free(h);
    done();
}

/* ---- transformers ------------------------------------------------------------------- */
static void test_misuse_transformer_constructors(void **state) {
    (void)state;
    const double bad_p[] = {-0.1, 1, NAN, INFINITY};
    NUL_M(cg_nn_multihead_attention, NULL, CG_F64, 4, 2, 0, true);
    NUL_M(cg_nn_multihead_attention, &rng_, CG_I64, 4, 2, 0, true);
    NUL_M(cg_nn_multihead_attention, &rng_, (cg_dtype)9, 4, 2, 0, true);
    NUL_M(cg_nn_multihead_attention, &rng_, CG_F64, 0, 1, 0, true);
    NUL_M(cg_nn_multihead_attention, &rng_, CG_F64, -4, 2, 0, true);
    NUL_M(cg_nn_multihead_attention, &rng_, CG_F64, INT64_MIN, -1, 0, true);
    NUL_M(cg_nn_multihead_attention, &rng_, CG_F64, 4, 0, 0, true);
    NUL_M(cg_nn_multihead_attention, &rng_, CG_F64, 4, -2, 0, true);
    NUL_M(cg_nn_multihead_attention, &rng_, CG_F64, 4, 3, 0, false); /* not divisible */
    NUL_M(cg_nn_multihead_attention, &rng_, CG_F64, 4, 8, 0, false);
    for (int i = 0; i < 4; i++)
        NUL_M(cg_nn_multihead_attention, &rng_, CG_F64, 4, 2, bad_p[i], true);
    NUL_M(cg_nn_multihead_attention, &rng_, CG_F64, INT64_MAX, 1, 0, true); /* 3 E overflows */
    NUL_M(cg_nn_multihead_attention, &rng_, CG_F64, (int64_t)1 << 32, 1, 0, true);
    NUL_M(cg_nn_transformer_block, NULL, CG_F64, 4, 2, 4, 0, true);
    NUL_M(cg_nn_transformer_block, &rng_, CG_I64, 4, 2, 4, 0, true);
    NUL_M(cg_nn_transformer_block, &rng_, CG_F64, 4, 3, 4, 0, true);
    NUL_M(cg_nn_transformer_block, &rng_, CG_F64, -4, 2, 4, 0, true);
    NUL_M(cg_nn_transformer_block, &rng_, CG_F64, 4, 2, 0, 0, true);
    NUL_M(cg_nn_transformer_block, &rng_, CG_F64, 4, 2, -1, 0, true);
    NUL_M(cg_nn_transformer_block, &rng_, CG_F64, 4, 2, INT64_MIN, 0, true);
    NUL_M(cg_nn_transformer_block, &rng_, CG_F64, 4, 2, INT64_MAX, 0, true);
    NUL_M(cg_nn_transformer_block, &rng_, CG_F64, INT64_MAX, 1, 1, 0, true);
    NUL_M(cg_nn_transformer_block, &rng_, CG_F64, (int64_t)1 << 31, 1, 4, 0, true);
    for (int i = 0; i < 4; i++)
        NUL_M(cg_nn_transformer_block, &rng_, CG_F64, 4, 2, 4, bad_p[i], true);
    NUL_M(cg_nn_gpt, NULL, CG_F64, 5, 4, 4, 1, 2, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_I64, 5, 4, 4, 1, 2, 0);
    NUL_M(cg_nn_gpt, &rng_, (cg_dtype)9, 5, 4, 4, 1, 2, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, 0, 4, 4, 1, 2, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, -5, 4, 4, 1, 2, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, 5, 0, 4, 1, 2, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, 5, INT64_MIN, 4, 1, 2, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, 5, 4, 0, 1, 2, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, 5, 4, 4, -1, 2, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, 5, 4, 4, INT64_MAX, 2, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, 5, 4, 4, 1, 0, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, 5, 4, 4, 1, 3, 0);
    for (int i = 0; i < 4; i++) NUL_M(cg_nn_gpt, &rng_, CG_F64, 5, 4, 4, 1, 2, bad_p[i]);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, (int64_t)1 << 40, 4, (int64_t)1 << 40, 1, 1, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, 5, INT64_MAX, 4, 1, 2, 0);
    NUL_M(cg_nn_gpt, &rng_, CG_F64, 5, 4, INT64_MAX, 0, 1, 0);
    /* valid: no layers, one head per feature, f32 */
    cg_module_free(OK_P(cg_nn_gpt, &rng_, CG_F32, 1, 1, 2, 0, 2, 0));
    cg_module_free(OK_P(cg_nn_multihead_attention, &rng_, CG_F32, 3, 3, 0.5, false));
    cg_module_free(OK_P(cg_nn_transformer_block, &rng_, CG_F32, 2, 1, 1, 0, false));
    done();
}

static void test_misuse_mha_forward(void **state) {
    cg_ctx *ctx = *state;
    const char *fn = "cg_mha_forward";
    cg_module *m = cg_nn_multihead_attention(&rng_, CG_F64, 4, 2, 0, true),
              *lin = cg_nn_linear(&rng_, CG_F64, 4, 4, true);
    cg_tensor *q = pos(ctx, CG_F64, CG_SHAPE(2, 3, 4)),
              *k = pos(ctx, CG_F64, CG_SHAPE(2, 5, 4)),
              *v = pos(ctx, CG_F64, CG_SHAPE(2, 5, 4));
    NUL(cg_mha_forward, NULL, m, q, k, v, NULL, false);
    NUL(cg_mha_forward, ctx, NULL, q, k, v, NULL, false);
    NUL(cg_mha_forward, ctx, lin, q, k, v, NULL, false); /* not a MultiheadAttention */
    NUL(cg_mha_forward, ctx, m, NULL, k, v, NULL, false);
    NUL(cg_mha_forward, ctx, m, q, NULL, v, NULL, false);
    NUL(cg_mha_forward, ctx, m, q, k, NULL, NULL, false);
    KEEPS(cg_mha_forward, ctx, m, NULL, k, v, NULL, false);
    KEEPS(cg_mha_forward, ctx, m, q, NULL, v, NULL, false);
    KEEPS(cg_mha_forward, ctx, m, q, k, NULL, NULL, false);
    /* shapes: rank, E, B, Tk of v; dtypes; the mask; causal with Tq != Tk */
    NUL(cg_mha_forward, ctx, m, pos(ctx, CG_F64, CG_SHAPE(3, 4)), k, v, NULL, false);
    NUL(cg_mha_forward, ctx, m, pos(ctx, CG_F64, CG_SHAPE(2, 3, 5)), k, v, NULL, false);
    NUL(cg_mha_forward, ctx, m, q, pos(ctx, CG_F64, CG_SHAPE(1, 5, 4)), v, NULL, false);
    NUL(cg_mha_forward, ctx, m, q, k, pos(ctx, CG_F64, CG_SHAPE(2, 4, 4)), NULL, false);
    NUL(cg_mha_forward, ctx, m, q, k, pos(ctx, CG_F64, CG_SHAPE(2, 5, 3)), NULL, false);
    NUL(cg_mha_forward, ctx, m, cg_cast(ctx, q, CG_F32), k, v, NULL, false);
    NUL(cg_mha_forward, ctx, m, q, k, cg_ones(ctx, CG_I64, CG_SHAPE(2, 5, 4)), NULL, false);
    NUL(cg_mha_forward, ctx, m, q, k, v, cg_zeros(ctx, CG_F64, CG_SHAPE(5, 3)), false);
    NUL(cg_mha_forward, ctx, m, q, k, v, cg_zeros(ctx, CG_F32, CG_SHAPE(3, 5)), false);
    NUL(cg_mha_forward, ctx, m, q, k, v, NULL, true);
    /* valid: self-attention (one GEMM) agrees with separate equal inputs, a zero mask,
     * views, no batch, no keys */
    cg_tensor *self = OK_T(cg_mha_forward, ctx, m, k, k, k, NULL, true);
    cg_tensor *k2 = cg_clone(ctx, k), *k3 = cg_clone(ctx, k);
    if (!same_tensor(OK_T(cg_mha_forward, ctx, m, k, k2, k3, NULL, true), self, 1e-12))
        defect(__LINE__, fn, "self-attention: not the separate projections");
    cg_tensor *ref = OK_T(cg_mha_forward, ctx, m, q, k, v, NULL, false);
    if (!same_tensor(
            OK_T(cg_mha_forward, ctx, m, q, k, v, cg_zeros(ctx, CG_F64, CG_SHAPE(3, 5)), false),
            ref, 1e-12))
        defect(__LINE__, fn, "zero mask: wrong");
    cg_tensor *qv = cg_transpose(ctx, cg_contiguous(ctx, cg_transpose(ctx, q, 0, 2)), 0, 2);
    cg_tensor *kv =
        cg_slice(ctx, cg_concat(ctx, 2, (const cg_tensor *const[]){k, k}, 1), 1, 0, CG_END, 2);
    if (!same_tensor(OK_T(cg_mha_forward, ctx, m, qv, kv, v, NULL, false),
                     cg_mha_forward(ctx, m, q, cg_contiguous(ctx, kv), v, NULL, false), 1e-12))
        defect(__LINE__, fn, "views: wrong");
    if (!HAS_SHAPE(OK_T(cg_mha_forward, ctx, m, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3, 4)),
                        cg_zeros(ctx, CG_F64, CG_SHAPE(0, 5, 4)),
                        cg_zeros(ctx, CG_F64, CG_SHAPE(0, 5, 4)), NULL, false),
                   0, 3, 4))
        defect(__LINE__, fn, "no batch");
    cg_tensor *none = cg_zeros(ctx, CG_F64, CG_SHAPE(2, 0, 4));
    if (!HAS_SHAPE(OK_T(cg_mha_forward, ctx, m, q, none, none, NULL, false), 2, 3, 4))
        defect(__LINE__, fn, "no keys");
    /* the module kinds through cg_module_forward; GPT's T past its context, ids outside vocab
     */
    const layer_case layers[] = {
        {"MultiheadAttention",
         cg_nn_multihead_attention(&rng_, CG_F64, 4, 2, 0.5, true),
         3,
         {2, 3, 4},
         false,
         3,
         {2, 3, 5}},
        {"TransformerBlock",
         cg_nn_transformer_block(&rng_, CG_F64, 4, 2, 2, 0.5, true),
         3,
         {2, 3, 4},
         false,
         2,
         {3, 4}},
        {"GPT", cg_nn_gpt(&rng_, CG_F64, 5, 4, 4, 1, 2, 0.5), 2, {2, 3}, true, 2, {2, 3}},
    };
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) layer_battery(ctx, &layers[i]);
    label = NULL;
    cg_module *gpt = cg_nn_gpt(&rng_, CG_F64, 5, 4, 4, 1, 2, 0);
    NUL(cg_module_forward, ctx, gpt, cg_zeros(ctx, CG_I64, CG_SHAPE(1, 5)));
    NUL(cg_module_forward, ctx, gpt, cg_zeros(ctx, CG_I64, CG_SHAPE(1, 0)));
    NUL(cg_module_forward, ctx, gpt, cg_zeros(ctx, CG_I64, CG_SHAPE(4)));
    NUL(cg_module_forward, ctx, gpt, cg_full(ctx, CG_I64, CG_SHAPE(1, 2), 5));
    NUL(cg_module_forward, ctx, gpt, cg_full(ctx, CG_I64, CG_SHAPE(1, 2), -1));
    if (!HAS_SHAPE(OK_T(cg_module_forward, ctx, gpt, cg_full(ctx, CG_I64, CG_SHAPE(1, 4), 4)),
                   1, 4, 5))
        defect(__LINE__, "cg_module_forward", "GPT at its context");
    cg_module *blk = cg_nn_transformer_block(&rng_, CG_F64, 4, 2, 2, 0, false);
    NUL(cg_module_forward, ctx, blk, cg_cast(ctx, q, CG_F32));
    cg_module_free(blk);
    cg_module_free(gpt);
    cg_module_free(lin);
    cg_module_free(m);
    done();
}

/* ---- checkpoints and data ------------------------------------------------------ */
static char tmpdir_[64];

/* path of name inside this test's temporary directory (static buffer, one at a time). */
static const char *tmp_path(const char *name) {
    static char p[160];
    snprintf(p, sizeof p, "%s/%s", tmpdir_, name);
    return p;
}
static void write_file(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static void test_misuse_checkpoints(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = model_with_grads(ctx), *other = cg_nn_linear(&rng_, CG_F64, 4, 2, true);
    cg_optim *o = cg_sgd_new(m, &(cg_sgd_opts){.lr = 0.1, .momentum = 0.9});
    cg_optim_step(o);
    cg_sched *s = cg_steplr_new(o, 1, 0.5);
    char good[160];
    snprintf(good, sizeof good, "%s", tmp_path("good.safetensors"));
    OK_S(cg_save, good, m, o, s, &rng_);
    BAD(cg_save, NULL, m, NULL, NULL, NULL);
    BAD(cg_save, good, NULL, NULL, NULL, NULL);
    BAD(cg_save, "", m, NULL, NULL, NULL);
    BAD(cg_save, tmp_path("no/such/dir/x.safetensors"), m, NULL, NULL, NULL);
    BAD(cg_save, tmpdir_, m, NULL, NULL, NULL); /* a directory */
    cg_optim *o2 = cg_sgd_new(other, &(cg_sgd_opts){.lr = 0.1});
    cg_sched *s2 = cg_steplr_new(o2, 1, 0.5);
    /* load: paths, modules, files that are not checkpoints of m */
    BAD(cg_load, NULL, m, NULL, NULL, NULL);
    BAD(cg_load, good, NULL, NULL, NULL, NULL);
    BAD(cg_load, tmp_path("missing.safetensors"), m, NULL, NULL, NULL);
    BAD(cg_load, tmpdir_, m, NULL, NULL, NULL);
    BAD(cg_load, good, other, NULL, NULL, NULL);
    BAD(cg_load, good, m, o2, NULL, NULL);
    write_file(tmp_path("empty"), "", 0);
    BAD(cg_load, tmp_path("empty"), m, NULL, NULL, NULL);
    const unsigned char huge_header[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    write_file(tmp_path("huge"), huge_header, sizeof huge_header);
    BAD(cg_load, tmp_path("huge"), m, NULL, NULL, NULL);
    BAD(cg_load_tensors, tmp_path("huge"), &(cg_tensor_dict){0});
    /* load_ex: the report is zeroed on error; NULL options and report are fine */
    cg_load_report rep = {.nmissing = 7};
    BAD(cg_load_ex, tmp_path("missing.safetensors"), m, NULL, NULL, NULL, NULL, &rep);
    if (rep.nmissing != 0 || rep.missing) defect(__LINE__, "cg_load_ex", "report not zeroed");
    BAD(cg_load_ex, NULL, m, NULL, NULL, NULL, NULL, NULL);
    BAD(cg_load_ex, good, NULL, NULL, NULL, NULL, NULL, &rep);
    cg_load_opts lax = cg_load_defaults();
    QUIET("cg_load_defaults", lax.strict);
    lax.strict = false;
    BAD(cg_load_ex, good, other, NULL, NULL, NULL, &lax,
        &rep); /* shapes differ: strict or not */
    OK_S(cg_load_ex, good, m, NULL, NULL, NULL, &lax, &rep);
    if (rep.nunexpected != 0) defect(__LINE__, "cg_load_ex", "unexpected keys reported");
    OK_S(cg_load_ex, good, m, o, s, &rng_, NULL, NULL);
    OK_S(cg_load, good, m, o, s, &rng_);
    QUIET("cg_load_report_free", (cg_load_report_free(NULL), true));
    cg_load_report_free(&rep);
    cg_load_report_free(&rep); /* zeroed: a second free is harmless */
    /* named tensors */
    cg_tensor *a = pos(ctx, CG_F64, CG_SHAPE(2, 3)), *tr = cg_transpose(ctx, a, 0, 1);
    cg_tensor *z = cg_zeros(ctx, CG_F32, CG_SHAPE(0, 3)),
              *r8 = pos(ctx, CG_F64, CG_MAX_DIMS, r8_shape);
    cg_tensor *ex = cg_expand(ctx, cg_ones(ctx, CG_I64, CG_SHAPE(1, 3)), CG_SHAPE(4, 3));
    const char *names[4] = {"tr", "z", "r8", "ex"};
    const cg_tensor *ts[4] = {tr, z, r8, ex};
    const char *path = tmp_path("named.safetensors");
    char named[160];
    snprintf(named, sizeof named, "%s", path);
    BAD(cg_save_tensors, NULL, 1, names, ts);
    BAD(cg_save_tensors, named, -1, names, ts);
    BAD(cg_save_tensors, named, 1, NULL, ts);
    BAD(cg_save_tensors, named, 1, names, NULL);
    BAD(cg_save_tensors, named, 2, (const char *const[]){"a", NULL}, ts);
    BAD(cg_save_tensors, named, 2, names, (const cg_tensor *const[]){tr, NULL});
    KEEPS_S(cg_save_tensors, named, 2, names, (const cg_tensor *const[]){tr, NULL});
    BAD(cg_save_tensors, named, 2, (const char *const[]){"a", "a"}, ts);
    BAD(cg_save_tensors, named, 1, (const char *const[]){"__metadata__"}, ts);
    OK_S(cg_save_tensors, tmp_path("none.safetensors"), 0, NULL, NULL);
    OK_S(cg_save_tensors, named, 4, names, ts);
    cg_tensor_dict d = {.n = 3};
    BAD(cg_load_tensors, NULL, &d);
    if (d.n != 0) defect(__LINE__, "cg_load_tensors", "out not zeroed");
    BAD(cg_load_tensors, named, NULL);
    BAD(cg_load_tensors, tmp_path("missing.safetensors"), &d);
    OK_S(cg_load_tensors, named, &d);
    /* name order: ex, r8, tr, z */
    if (d.n != 4 || !same_tensor(d.tensors[2], tr, 0) || !same_tensor(d.tensors[3], z, 0) ||
        !same_tensor(d.tensors[0], ex, 0) || !same_tensor(d.tensors[1], r8, 0))
        defect(__LINE__, "cg_load_tensors", "views, empty or rank 8: read back wrong");
    QUIET("cg_tensor_dict_free", (cg_tensor_dict_free(NULL), true));
    cg_tensor_dict_free(&d);
    cg_tensor_dict_free(&d); /* zeroed: harmless */
    cg_sched_free(s2);
    cg_sched_free(s);
    cg_optim_free(o2);
    cg_optim_free(o);
    cg_module_free(other);
    cg_module_free(m);
    done();
}

/* cg_chart_svg: NULL path, panels, series and y; counts out of range; a path
 * that cannot be written. Values that are not drawn (NaN, inf, 1e308) and
 * empty panels are valid. */
static void test_misuse_chart(void **state) {
    (void)state;
    double y[3] = {1, NAN, 3}, odd[3] = {INFINITY, -1e308, NAN};
    cg_chart_series s = {"train", y, true}, nully = {"v", NULL, false};
    cg_chart_series edge[2] = {{NULL, odd, false}, {"", y, false}};
    cg_chart_panel ok = {"loss", NULL, 1, &s}, two[2] = {{"loss", NULL, 2, edge}, {NULL}};
    cg_chart_panel nine[9], bad;
    for (int i = 0; i < 9; i++) nine[i] = ok;
    char path[160];
    snprintf(path, sizeof path, "%s", tmp_path("chart.svg"));
    OK_S(cg_chart_svg, path, "run & <co>", "step", 3, 1, &ok);
    OK_S(cg_chart_svg, path, NULL, NULL, 3, 2, two);
    OK_S(cg_chart_svg, path, NULL, NULL, 1, 8, nine);
    BAD(cg_chart_svg, NULL, "t", NULL, 3, 1, &ok);
    BAD(cg_chart_svg, "", "t", NULL, 3, 1, &ok);
    BAD(cg_chart_svg, path, "t", NULL, 3, 1, NULL);
    BAD(cg_chart_svg, path, "t", NULL, 0, 1, &ok);
    BAD(cg_chart_svg, path, "t", NULL, INT32_MIN, 1, &ok);
    BAD(cg_chart_svg, path, "t", NULL, 3, 0, &ok);
    BAD(cg_chart_svg, path, "t", NULL, 3, -1, &ok);
    BAD(cg_chart_svg, path, "t", NULL, 3, 9, nine);
    bad = (cg_chart_panel){"loss", NULL, -1, &s};
    BAD(cg_chart_svg, path, "t", NULL, 3, 1, &bad);
    bad = (cg_chart_panel){"loss", NULL, 9, &s};
    BAD(cg_chart_svg, path, "t", NULL, 3, 1, &bad);
    bad = (cg_chart_panel){"loss", NULL, 1, NULL};
    BAD(cg_chart_svg, path, "t", NULL, 3, 1, &bad);
    bad = (cg_chart_panel){"loss", NULL, 1, &nully};
    BAD(cg_chart_svg, path, "t", NULL, 3, 1, &bad);
    BAD(cg_chart_svg, tmp_path("no/such/dir/c.svg"), "t", NULL, 3, 1, &ok);
    BAD(cg_chart_svg, tmpdir_, "t", NULL, 3, 1, &ok); /* a directory */
    done();
}

static void test_misuse_data(void **state) {
    cg_ctx *ctx = *state;
    cg_idx idx = {.ndim = 5};
    BAD(cg_idx_read, NULL, &idx);
    if (idx.ndim != 0) defect(__LINE__, "cg_idx_read", "out not emptied");
    BAD(cg_idx_read, tmp_path("x.idx"), NULL);
    BAD(cg_idx_read, tmp_path("missing.idx"), &idx);
    BAD(cg_idx_read, tmpdir_, &idx);
    write_file(tmp_path("short.idx"), "\0\0\x08", 3);
    BAD(cg_idx_read, tmp_path("short.idx"), &idx);
    /* rank 9, and dims whose product overflows */
    const unsigned char rank9[4] = {0, 0, 0x08, 9};
    write_file(tmp_path("rank9.idx"), rank9, sizeof rank9);
    BAD(cg_idx_read, tmp_path("rank9.idx"), &idx);
    unsigned char big[4 + 4 * 3] = {0, 0, 0x08, 3};
    for (int i = 4; i < 16; i++) big[i] = 0xff;
    write_file(tmp_path("big.idx"), big, sizeof big);
    BAD(cg_idx_read, tmp_path("big.idx"), &idx);
    NUL(cg_idx_load, tmp_path("big.idx"), CG_F32, 1);
    /* a valid file with no items */
    const unsigned char empty[12] = {0, 0, 0x08, 2, 0, 0, 0, 0, 0, 0, 0, 5};
    write_file(tmp_path("empty.idx"), empty, sizeof empty);
    OK_S(cg_idx_read, tmp_path("empty.idx"), &idx);
    if (idx.ndim != 2 || idx.shape[0] != 0 || idx.shape[1] != 5)
        defect(__LINE__, "cg_idx_read", "empty");
    cg_idx_free(&idx);
    cg_idx_free(&idx); /* emptied: harmless */
    QUIET("cg_idx_free", (cg_idx_free(NULL), true));
    cg_tensor *t = OK_T(cg_idx_load, tmp_path("empty.idx"), CG_F64, 1.0 / 255);
    if (!HAS_SHAPE(t, 0, 5)) defect(__LINE__, "cg_idx_load", "empty");
    cg_tensor_free(t);
    NUL(cg_idx_load, NULL, CG_F32, 1);
    NUL(cg_idx_load, tmp_path("empty.idx"), (cg_dtype)4, 1);
    NUL(cg_idx_load, tmp_path("missing.idx"), CG_F32, 1);
    /* normalize_ */
    cg_tensor *x = pos(ctx, CG_F64, CG_SHAPE(2, 3));
    BAD(cg_normalize_, NULL, 0, 1);
    KEEPS_S(cg_normalize_, NULL, 0, 1);
    BAD(cg_normalize_, x, 0, 0);
    BAD(cg_normalize_, x, 0, -1);
    BAD(cg_normalize_, x, 0, NAN);
    BAD(cg_normalize_, cg_ones(ctx, CG_I64, CG_SHAPE(2)), 0, 1);
    BAD(cg_normalize_, cg_expand(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(1)), CG_SHAPE(3)), 0, 2);
    OK_S(cg_normalize_, cg_zeros(ctx, CG_F64, CG_SHAPE(0, 3)), 0, 1);
    cg_tensor *c = cg_clone(ctx, x), *tr = cg_transpose(ctx, x, 0, 1);
    OK_S(cg_normalize_, tr, 1, 2);
    OK_S(cg_normalize_, c, 1, 2);
    if (!same_tensor(x, c, 0)) defect(__LINE__, "cg_normalize_", "transposed: wrong");
    /* one_hot */
    cg_tensor *l = idx1(ctx, 0, 2);
    NUL(cg_one_hot, ctx, NULL, 3, CG_F32);
    KEEPS(cg_one_hot, ctx, NULL, 3, CG_F32);
    NUL(cg_one_hot, ctx, cg_cast(ctx, l, CG_F32), 3, CG_F32);
    NUL(cg_one_hot, ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(2, 1)), 3, CG_F32);
    NUL(cg_one_hot, ctx, l, 2, CG_F32);
    NUL(cg_one_hot, ctx, l, 0, CG_F32);
    NUL(cg_one_hot, ctx, l, -1, CG_F32);
    NUL(cg_one_hot, ctx, idx1(ctx, -1, 0), 3, CG_F32);
    NUL(cg_one_hot, ctx, idx1(ctx, INT64_MIN, 0), 3, CG_F32);
    NUL(cg_one_hot, ctx, l, 3, (cg_dtype)5);
    NUL(cg_one_hot, ctx, l, INT64_MAX, CG_F32);
    if (!HAS_SHAPE(OK_T(cg_one_hot, ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(0)), 3, CG_I64), 0, 3))
        defect(__LINE__, "cg_one_hot", "no labels");
    NUL(cg_one_hot, ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(0)), INT64_MAX, CG_F32);
    cg_tensor *ls =
        cg_slice(ctx, cg_from_array(ctx, CG_I64, CG_SHAPE(4), (const int64_t[]){2, 9, 0, 9}), 0,
                 0, 4, 2);
    if (!same_tensor(OK_T(cg_one_hot, ctx, ls, 3, CG_F64),
                     cg_one_hot(ctx, idx1(ctx, 2, 0), 3, CG_F64), 0))
        defect(__LINE__, "cg_one_hot", "stepped labels: wrong");
    done();
}

static void test_misuse_batcher(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_arange(NULL, CG_F64, 0, 10, 1), *y = cg_zeros(NULL, CG_I64, CG_SHAPE(10));
    cg_tensor *xb, *yb;
    NULP(cg_batcher_new, NULL, y, 2, false, false, NULL);
    prior_error();
    keeps_prior(cg_batcher_new(NULL, y, 2, false, false, NULL), "cg_batcher_new", __LINE__);
    NULP(cg_batcher_new, x, cg_zeros(ctx, CG_I64, CG_SHAPE(9)), 2, false, false, NULL);
    NULP(cg_batcher_new, x, y, 0, false, false, NULL);
    NULP(cg_batcher_new, x, y, -1, false, false, NULL);
    NULP(cg_batcher_new, x, y, INT64_MIN, false, false, NULL);
    NULP(cg_batcher_new, x, y, 2, true, false, NULL);
    NULP(cg_batcher_new, cg_scalar(ctx, CG_F64, 1), NULL, 2, false, false, NULL);
    NULP(cg_batcher_new, x, cg_scalar(ctx, CG_I64, 1), 2, false, false, NULL);
    SENTINEL("cg_batcher_next", !cg_batcher_next(NULL, &xb, &yb));
    SENTINEL("cg_batcher_nbatches", cg_batcher_nbatches(NULL) <= 0);
    QUIET("cg_batcher_free", (cg_batcher_free(NULL), true));
    /* huge batches, an empty dataset, a strided one */
    cg_batcher *b = OK_P(cg_batcher_new, x, y, INT64_MAX, true, false, &rng_);
    QUIET("cg_batcher_nbatches", cg_batcher_nbatches(b) == 1);
    SENTINEL("cg_batcher_next", !cg_batcher_next(b, NULL, &yb));
    QUIET("cg_batcher_next", cg_batcher_next(b, &xb, NULL) && cg_numel(xb) == 10);
    cg_batcher_free(b);
    cg_tensor *none = cg_zeros(NULL, CG_F64, CG_SHAPE(0, 3));
    b = OK_P(cg_batcher_new, none, NULL, 4, true, true, &rng_);
    QUIET("cg_batcher_next", cg_batcher_nbatches(b) == 0 && !cg_batcher_next(b, &xb, &yb));
    cg_batcher_free(b);
    cg_tensor_free(none);
    /* sharding: bad replica counts and ranks, too many replicas for drop_last
     * (none changes the batcher), mid-epoch; padding gives even INT64_MAX
     * replicas a sample each */
    BAD(cg_batcher_shard, NULL, 0, 1);
    KEEPS_S(cg_batcher_shard, NULL, 0, 1);
    b = OK_P(cg_batcher_new, x, y, 3, true, true, &rng_);
    BAD(cg_batcher_shard, b, 0, 0);
    BAD(cg_batcher_shard, b, 0, -1);
    BAD(cg_batcher_shard, b, 0, INT64_MIN);
    BAD(cg_batcher_shard, b, -1, 2);
    BAD(cg_batcher_shard, b, 2, 2);
    BAD(cg_batcher_shard, b, INT64_MIN, 2);
    BAD(cg_batcher_shard, b, 0, 11);
    BAD(cg_batcher_shard, b, INT64_MAX - 1, INT64_MAX);
    QUIET("cg_batcher_shard", cg_batcher_nbatches(b) == 3);
    OK_S(cg_batcher_shard, b, 1, 3);
    QUIET("cg_batcher_next", cg_batcher_nbatches(b) == 1 && cg_batcher_next(b, &xb, &yb) &&
                                 cg_numel(xb) == 3 && cg_numel(yb) == 3);
    BAD(cg_batcher_shard, b, 0, 1);
    QUIET("cg_batcher_next", !cg_batcher_next(b, &xb, &yb));
    OK_S(cg_batcher_shard, b, 0, 1);
    QUIET("cg_batcher_shard", cg_batcher_nbatches(b) == 3);
    cg_batcher_free(b);
    b = OK_P(cg_batcher_new, x, NULL, 4, false, false, NULL);
    OK_S(cg_batcher_shard, b, INT64_MAX - 1, INT64_MAX);
    double got = -1;
    QUIET("cg_batcher_next", cg_batcher_nbatches(b) == 1 && cg_batcher_next(b, &xb, NULL) &&
                                 cg_numel(xb) == 1 &&
                                 cg_get(xb, (const int64_t[]){0}, &got) == CG_OK &&
                                 got == (double)((INT64_MAX - 1) % 10));
    cg_batcher_free(b);
    /* a dataset in a context that is reset while the batcher lives */
    cg_ctx *data = cg_ctx_new();
    cg_tensor *cx = cg_arange(data, CG_F64, 0, 6, 1);
    b = cg_batcher_new(cx, NULL, 2, false, false, NULL);
    QUIET("cg_batcher_next", cg_batcher_next(b, &xb, NULL));
    cg_ctx_reset(data);
    cg_arange(data, CG_F64, 100, 106, 1); /* what now lives where cx was */
    SENTINEL("cg_batcher_next", !cg_batcher_next(b, &xb, NULL));
    cg_batcher_free(b);
    cg_ctx_free(data);
    cg_tensor_free(x);
    cg_tensor_free(y);
    done();
}

/* ---- text ------------------------------------------------------------------------------ */
static void test_misuse_vocab(void **state) {
    cg_ctx *ctx = *state;
    cg_vocab v, w;
    const char *abc = "abcab";
    BAD(cg_vocab_build, NULL, abc, 5);
    BAD(cg_vocab_build, &v, NULL, 5);
    BAD(cg_vocab_build, &v, abc, -1);
    BAD(cg_vocab_build, &v, abc, INT64_MIN);
    OK_S(cg_vocab_build, &v, NULL, 0);
    QUIET("cg_vocab_build", v.size == 0 && v.ids['a'] == -1);
    OK_S(cg_vocab_build, &v, abc, 5);
    QUIET("cg_vocab_build", v.size == 3 && v.ids['c'] == 2);
    /* encode */
    NUL(cg_vocab_encode, ctx, NULL, abc, 5);
    NUL(cg_vocab_encode, ctx, &v, NULL, 5);
    NUL(cg_vocab_encode, ctx, &v, abc, -1);
    NUL(cg_vocab_encode, ctx, &v, "abd", 3);
    NUL(cg_vocab_encode, NULL, &v, "abd", 3);
    NUL(cg_vocab_encode, ctx, &v, abc, INT64_MAX); /* refused before it is read */
    if (!HAS_SHAPE(OK_T(cg_vocab_encode, ctx, &v, NULL, 0), 0))
        defect(__LINE__, "cg_vocab_encode", "no bytes");
    cg_tensor *ids = OK_T(cg_vocab_encode, NULL, &v, abc, 5);
    /* decode */
    char out[16];
    BAD(cg_vocab_decode, NULL, ids, out, sizeof out);
    BAD(cg_vocab_decode, &v, NULL, out, sizeof out);
    KEEPS_S(cg_vocab_decode, &v, NULL, out, sizeof out);
    BAD(cg_vocab_decode, &v, ids, NULL, sizeof out);
    BAD(cg_vocab_decode, &v, ids, out, 0);
    BAD(cg_vocab_decode, &v, ids, out, 5); /* no room for the NUL */
    BAD(cg_vocab_decode, &v, cg_cast(ctx, ids, CG_F64), out, sizeof out);
    const int64_t bad_ids[] = {-1, 3, INT64_MIN, INT64_MAX};
    for (int i = 0; i < 4; i++)
        BAD(cg_vocab_decode, &v, cg_from_array(ctx, CG_I64, CG_SHAPE(1), &bad_ids[i]), out,
            sizeof out);
    cg_vocab empty = {0};
    BAD(cg_vocab_decode, &empty, ids, out, sizeof out);
    OK_S(cg_vocab_decode, &v, cg_zeros(ctx, CG_I64, CG_SHAPE(0, 3)), out, 1);
    QUIET("cg_vocab_decode", out[0] == '\0');
    cg_tensor *grid =
        cg_from_array(ctx, CG_I64, CG_SHAPE(2, 3), (const int64_t[]){0, 1, 2, 2, 1, 0});
    OK_S(cg_vocab_decode, &v, cg_transpose(ctx, grid, 0, 1), out, 7);
    QUIET("cg_vocab_decode", !strcmp(out, "acbbca"));
    OK_S(cg_vocab_decode, &v, cg_expand(ctx, cg_full(ctx, CG_I64, CG_SHAPE(1), 1), CG_SHAPE(3)),
         out, 4);
    QUIET("cg_vocab_decode", !strcmp(out, "bbb"));
    OK_S(cg_vocab_decode, &v, ids, out, sizeof out);
    QUIET("cg_vocab_decode", !strcmp(out, abc));
    cg_tensor_free(ids);
    /* the vocabulary as a tensor and back; v unchanged on error */
    NUL(cg_vocab_tensor, ctx, NULL);
    cg_tensor *vt = OK_T(cg_vocab_tensor, ctx, &v);
    w = v;
    BAD(cg_vocab_from_tensor, NULL, vt);
    BAD(cg_vocab_from_tensor, &w, NULL);
    KEEPS_S(cg_vocab_from_tensor, &w, NULL);
    BAD(cg_vocab_from_tensor, &w, cg_cast(ctx, vt, CG_F64));
    BAD(cg_vocab_from_tensor, &w, cg_reshape(ctx, vt, CG_SHAPE(1, 3)));
    BAD(cg_vocab_from_tensor, &w, cg_scalar(ctx, CG_I64, 97));
    BAD(cg_vocab_from_tensor, &w, cg_arange(ctx, CG_I64, 0, 257, 1));
    const int64_t bad_v[][3] = {{97, 97, 98}, {98, 97, 99}, {-1, 0, 1}, {0, 1, 256}};
    for (int i = 0; i < 4; i++)
        BAD(cg_vocab_from_tensor, &w, cg_from_array(ctx, CG_I64, CG_SHAPE(3), bad_v[i]));
    QUIET("cg_vocab_from_tensor", !memcmp(&w, &v, sizeof v));
    OK_S(cg_vocab_from_tensor, &w, cg_arange(ctx, CG_I64, 0, 256, 1));
    QUIET("cg_vocab_from_tensor", w.size == 256 && w.ids[255] == 255);
    OK_S(cg_vocab_from_tensor, &w, cg_zeros(ctx, CG_I64, CG_SHAPE(0)));
    QUIET("cg_vocab_from_tensor", w.size == 0 && w.ids['a'] == -1);
    cg_tensor *spaced =
        cg_from_array(ctx, CG_I64, CG_SHAPE(6), (const int64_t[]){97, 0, 98, 0, 99, 0});
    OK_S(cg_vocab_from_tensor, &w, cg_slice(ctx, spaced, 0, 0, CG_END, 2));
    QUIET("cg_vocab_from_tensor", !memcmp(&w, &v, sizeof v));
    /* files */
    char path[160];
    snprintf(path, sizeof path, "%s", tmp_path("vocab.safetensors"));
    BAD(cg_vocab_save, NULL, &v);
    BAD(cg_vocab_save, path, NULL);
    BAD(cg_vocab_save, tmpdir_, &v);
    BAD(cg_vocab_save, tmp_path("no/such/dir/v.safetensors"), &v);
    OK_S(cg_vocab_save, path, &v);
    memset(&w, 0, sizeof w);
    BAD(cg_vocab_load, NULL, &w);
    BAD(cg_vocab_load, path, NULL);
    BAD(cg_vocab_load, tmp_path("missing.safetensors"), &w);
    BAD(cg_vocab_load, tmpdir_, &w);
    const char *xn[] = {"x"};
    cg_save_tensors(tmp_path("novocab.safetensors"), 1, xn, (const cg_tensor *const[]){vt});
    BAD(cg_vocab_load, tmp_path("novocab.safetensors"), &w);
    const char *vn[] = {"vocab"};
    cg_save_tensors(tmp_path("badvocab.safetensors"), 1, vn,
                    (const cg_tensor *const[]){cg_cast(ctx, vt, CG_F32)});
    BAD(cg_vocab_load, tmp_path("badvocab.safetensors"), &w);
    OK_S(cg_vocab_load, path, &w);
    QUIET("cg_vocab_load", !memcmp(&w, &v, sizeof v));
    done();
}

static void test_misuse_text(void **state) {
    cg_ctx *ctx = *state;
    cg_text t = {.vocab.size = 3}, u;
    char path[160];
    snprintf(path, sizeof path, "%s", tmp_path("text.txt"));
    write_file(path, "hello\n", 6);
    write_file(tmp_path("empty.txt"), "", 0);
    BAD(cg_text_load, NULL, NULL, &t);
    BAD(cg_text_load, path, NULL, NULL);
    BAD(cg_text_load, tmp_path("missing.txt"), NULL, &t);
    QUIET("cg_text_load", t.vocab.size == 0 && !t.ids); /* zeroed on error */
    BAD(cg_text_load, tmpdir_, NULL, &t);
    BAD(cg_text_load, tmp_path("empty.txt"), NULL, &t);
    cg_vocab small;
    cg_vocab_build(&small, "hel", 3);
    BAD(cg_text_load, path, &small, &t);
    QUIET("cg_text_load", t.vocab.size == 0 && !t.ids);
    OK_S(cg_text_load, path, NULL, &t);
    QUIET("cg_text_load", t.vocab.size == 5 && cg_numel(t.ids) == 6);
    OK_S(cg_text_load, path, &t.vocab, &u);
    QUIET("cg_text_load", same_tensor(t.ids, u.ids, 0));
    QUIET("cg_text_free", (cg_text_free(NULL), true));
    cg_text_free(&u);
    cg_text_free(&u); /* zeroed: harmless */
    /* split */
    cg_tensor *tr = NULL, *va = NULL;
    BAD(cg_text_split, NULL, 0.5, &tr, &va);
    KEEPS_S(cg_text_split, NULL, 0.5, &tr, &va);
    BAD(cg_text_split, t.ids, 0.5, NULL, &va);
    BAD(cg_text_split, t.ids, 0.5, &tr, NULL);
    const double fracs[] = {-0.1, 1.5, NAN, INFINITY};
    for (int i = 0; i < 4; i++) BAD(cg_text_split, t.ids, fracs[i], &tr, &va);
    BAD(cg_text_split, cg_reshape(ctx, t.ids, CG_SHAPE(2, 3)), 0.5, &tr, &va);
    BAD(cg_text_split, cg_scalar(ctx, CG_I64, 1), 0.5, &tr, &va);
    const double ok_fracs[] = {0, 1, 0.5};
    const int64_t ntrain[] = {0, 6, 3};
    for (int i = 0; i < 3; i++) {
        OK_S(cg_text_split, t.ids, ok_fracs[i], &tr, &va);
        if (cg_numel(tr) != ntrain[i] || cg_numel(va) != 6 - ntrain[i])
            defect(__LINE__, "cg_text_split", "sizes");
        cg_tensor_free(tr);
        cg_tensor_free(va);
    }
    OK_S(cg_text_split, cg_slice(ctx, t.ids, 0, 0, CG_END, 2), 0.5, &tr, &va);
    if (cg_numel(tr) != 1 || cg_numel(va) != 2 || cg_item(tr) != 2) /* "hlo": h | l, o */
        defect(__LINE__, "cg_text_split", "stepped ids");
    cg_tensor_free(tr);
    cg_tensor_free(va);
    BAD(cg_text_split, cg_zeros(ctx, CG_I64, CG_SHAPE(4)), 0.5, &tr, &va); /* in a context */
    cg_tensor *none = cg_zeros(NULL, CG_I64, CG_SHAPE(0));
    OK_S(cg_text_split, none, 0.5, &tr, &va);
    if (cg_numel(tr) != 0 || cg_numel(va) != 0) defect(__LINE__, "cg_text_split", "no ids");
    cg_tensor_free(tr);
    cg_tensor_free(va);
    cg_tensor_free(none);
    /* batch */
    NUL(cg_text_batch, ctx, NULL, 2, 3, &rng_);
    KEEPS(cg_text_batch, ctx, NULL, 2, 3, &rng_);
    NUL(cg_text_batch, ctx, t.ids, 2, 3, NULL);
    NUL(cg_text_batch, ctx, cg_cast(ctx, t.ids, CG_F64), 2, 3, &rng_);
    NUL(cg_text_batch, ctx, cg_reshape(ctx, t.ids, CG_SHAPE(2, 3)), 2, 3, &rng_);
    NUL(cg_text_batch, ctx, cg_scalar(ctx, CG_I64, 1), 1, 1, &rng_);
    NUL(cg_text_batch, ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(0)), 1, 1, &rng_);
    const int64_t bad_bl[][2] = {{0, 3}, {-1, 3},        {INT64_MIN, 3}, {2, 0},        {2, -1},
                                 {2, 7}, {2, INT64_MAX}, {INT64_MAX, 2}, {INT64_MAX, 6}};
    for (size_t i = 0; i < sizeof bad_bl / sizeof *bad_bl; i++)
        NUL(cg_text_batch, ctx, t.ids, bad_bl[i][0], bad_bl[i][1], &rng_);
    cg_tensor *whole = OK_T(cg_text_batch, ctx, t.ids, 2, 6, &rng_);
    if (!same_tensor(whole,
                     cg_expand(ctx, cg_reshape(ctx, t.ids, CG_SHAPE(1, 6)), CG_SHAPE(2, 6)), 0))
        defect(__LINE__, "cg_text_batch", "len N: not the whole text");
    cg_tensor *rev = cg_flip(ctx, t.ids, (const int[]){0}, 1);
    cg_tensor *win =
        OK_T(cg_text_batch, ctx, cg_slice(ctx, t.ids, 0, 1, CG_END, 2), 3, 3, &rng_);
    if (!same_tensor(
            win,
            cg_expand(ctx,
                      cg_reshape(ctx, cg_slice(ctx, t.ids, 0, 1, CG_END, 2), CG_SHAPE(1, 3)),
                      CG_SHAPE(3, 3)),
            0))
        defect(__LINE__, "cg_text_batch", "stepped ids");
    OK_T(cg_text_batch, ctx, rev, 2, 2, &rng_);
    cg_tensor *same =
        OK_T(cg_text_batch, ctx,
             cg_expand(ctx, cg_full(ctx, CG_I64, CG_SHAPE(1), 4), CG_SHAPE(5)), 2, 4, &rng_);
    if (!same_tensor(same, cg_full(ctx, CG_I64, CG_SHAPE(2, 4), 4), 0))
        defect(__LINE__, "cg_text_batch", "expanded ids");
    cg_tensor *h = OK_T(cg_text_batch, NULL, t.ids, 1, 1, &rng_);
    cg_tensor_free(h);
    cg_text_free(&t);
    done();
}

/* ---- training loops ---------------------------------------------------------------- */
static cg_tensor *misuse_loss(cg_ctx *ctx, const cg_tensor *out, const cg_tensor *target,
                              void *user) {
    (void)target;
    (void)user;
    return cg_mean(ctx, out, NULL, 0, false);
}
static cg_status misuse_batch(void *user, int64_t step, cg_ctx *ctx, cg_tensor **x,
                              cg_tensor **y) {
    (void)user;
    (void)step;
    *x = cg_zeros(ctx, CG_F64, CG_SHAPE(2, 4));
    *y = cg_zeros(ctx, CG_I64, CG_SHAPE(2));
    return CG_OK;
}

static void test_misuse_fit(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = cg_nn_linear(&rng_, CG_F64, 4, 3, true);
    cg_optim *o = cg_sgd_new(m, &(cg_sgd_opts){.lr = 0.1});
    cg_tensor *x = cg_zeros(ctx, CG_F64, CG_SHAPE(6, 4)),
              *y = cg_zeros(ctx, CG_I64, CG_SHAPE(6));
    cg_fit_data d = {.x = x, .y = y}, fn = {.fn = misuse_batch, .steps = 2};
    cg_loss ce = {.kind = CG_LOSS_CROSS_ENTROPY};
    cg_fit_opts fo = cg_fit_defaults();
    fo.shuffle = false;
    QUIET("cg_fit_defaults",
          cg_fit_defaults().epochs == 1 && cg_fit_defaults().batch_size == 32);
    /* cg_fit: each argument NULL or bad; a NULL tensor keeps its error */
    NULP(cg_fit, NULL, o, &ce, &d, &fo);
    NULP(cg_fit, m, NULL, &ce, &d, &fo);
    NULP(cg_fit, m, o, NULL, &d, &fo);
    NULP(cg_fit, m, o, &ce, NULL, &fo);
    NULP(cg_fit, m, o, &ce, &d, NULL); /* the defaults shuffle without an rng */
    NULP(cg_fit, m, o, &(cg_loss){.kind = CG_LOSS_USER}, &d, &fo);
    NULP(cg_fit, m, o, &(cg_loss){.kind = (cg_loss_kind)-1}, &d, &fo);
    NULP(cg_fit, m, o, &ce, &(cg_fit_data){.x = x}, &fo);
    NULP(cg_fit, m, o, &ce, &(cg_fit_data){.x = x, .y = cg_zeros(ctx, CG_I64, CG_SHAPE(5))},
         &fo);
    NULP(cg_fit, m, o, &ce, &(cg_fit_data){.x = cg_scalar(ctx, CG_F64, 1), .y = y}, &fo);
    NULP(cg_fit, m, o, &ce, &(cg_fit_data){.fn = misuse_batch}, &fo);
    NULP(cg_fit, m, o, &ce, &(cg_fit_data){.fn = misuse_batch, .x = x, .steps = 1}, &fo);
    NULP(cg_fit, m, o, &ce, &(cg_fit_data){.x = x, .y = y, .steps = INT64_MIN}, &fo);
    prior_error();
    keeps_prior(cg_fit(m, o, &ce, &(cg_fit_data){.x = NULL, .y = y}, &fo), "cg_fit", __LINE__);
    const struct {
        int epochs, initial, accum;
        int64_t batch, vbatch;
        double split, clip;
    } bad[] = {{-1, 0, 1, 2, 0, 0, 0},       {INT32_MIN, 0, 1, 2, 0, 0, 0},
               {1, 2, 1, 2, 0, 0, 0},        {1, -1, 1, 2, 0, 0, 0},
               {1, 0, -1, 2, 0, 0, 0},       {1, 0, INT32_MIN, 2, 0, 0, 0},
               {1, 0, 1, 0, 0, 0, 0},        {1, 0, 1, INT64_MIN, 0, 0, 0},
               {1, 0, 1, 2, -1, 0, 0},       {1, 0, 1, 2, 0, 1, 0},
               {1, 0, 1, 2, 0, -0.5, 0},     {1, 0, 1, 2, 0, NAN, 0},
               {1, 0, 1, 2, 0, INFINITY, 0}, {1, 0, 1, 2, 0, 0, -1},
               {1, 0, 1, 2, 0, 0, NAN},      {1, 0, 1, 2, 0, 0.9, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cg_fit_opts b = fo;
        b.epochs = bad[i].epochs;
        b.initial_epoch = bad[i].initial;
        b.accum_steps = bad[i].accum;
        b.batch_size = bad[i].batch;
        b.validation_batch_size = bad[i].vbatch;
        b.validation_split = bad[i].split;
        b.clip_grad_norm = bad[i].clip;
        NULP(cg_fit, m, o, &ce, &d, &b);
    }
    cg_fit_opts b = fo;
    b.sched_interval = (cg_sched_interval)-1;
    NULP(cg_fit, m, o, &ce, &d, &b);
    b = fo;
    b.nmetrics = 1;
    NULP(cg_fit, m, o, &ce, &d, &b);
    b.metrics = &(cg_metric){.kind = CG_METRIC_TOP_K, .k = -1};
    NULP(cg_fit, m, o, &ce, &d, &b);
    b.metrics = &(cg_metric){.kind = CG_METRIC_TOP_K, .k = 4}; /* k > C: fails in the run */
    NULP(cg_fit, m, o, &ce, &d, &b);
    b = fo;
    b.ncallbacks = 1;
    NULP(cg_fit, m, o, &ce, &d, &b);
    b.callbacks = (cg_callback *const[]){NULL};
    NULP(cg_fit, m, o, &ce, &d, &b);
    b = fo;
    b.validation = &(cg_fit_data){.x = cg_zeros(ctx, CG_F32, CG_SHAPE(6, 4)), .y = y};
    NULP(cg_fit, m, o, &ce, &d, &b);
    b.validation = &d;
    b.validation_split = 0.5;
    NULP(cg_fit, m, o, &ce, &d, &b);
    b.validation = NULL;
    NULP(cg_fit, m, o, &ce, &fn, &b);
    /* valid: zero epochs, a batch function, an empty history row set */
    b = fo;
    b.epochs = 0;
    cg_history *h = OK_P(cg_fit, m, o, &ce, &d, &b);
    QUIET("cg_fit", h && h->epochs == 0 && h->nkeys == 1 && !strcmp(h->keys[0], "loss"));
    QUIET("cg_history_get", cg_history_get(h, "loss") == h->values[0]);
    SENTINEL("cg_history_get", !cg_history_get(h, "accuracy"));
    SENTINEL("cg_history_get", !cg_history_get(h, NULL));
    SENTINEL("cg_history_get", !cg_history_get(NULL, "loss"));
    QUIET("cg_history_free", (cg_history_free(h), cg_history_free(NULL), true));
    h = OK_P(cg_fit, m, o, &(cg_loss){.kind = CG_LOSS_USER, .fn = misuse_loss}, &fn, &fo);
    QUIET("cg_fit", h && h->epochs == 1 && cg_optim_steps(o) == 2);
    cg_history_free(h);
    /* cg_evaluate and cg_predict */
    double r[2] = {0};
    BAD(cg_evaluate, NULL, &ce, &d, 2, 0, NULL, r);
    BAD(cg_evaluate, m, NULL, &d, 2, 0, NULL, r);
    BAD(cg_evaluate, m, &ce, NULL, 2, 0, NULL, r);
    BAD(cg_evaluate, m, &ce, &d, 0, 0, NULL, r);
    BAD(cg_evaluate, m, &ce, &d, INT64_MIN, 0, NULL, r);
    BAD(cg_evaluate, m, &ce, &d, 2, -1, NULL, r);
    BAD(cg_evaluate, m, &ce, &d, 2, 1, NULL, r);
    BAD(cg_evaluate, m, &ce, &d, 2, 0, NULL, NULL);
    BAD(cg_evaluate, m, &ce, &(cg_fit_data){.x = x}, 2, 0, NULL, r);
    BAD(cg_evaluate, m, &(cg_loss){.kind = CG_LOSS_MSE}, &d, 2, 0, NULL, r);
    KEEPS_S(cg_evaluate, m, &ce, &(cg_fit_data){.y = y}, 2, 0, NULL, r);
    OK_S(cg_evaluate, m, &ce, &d, INT64_MAX, 1, &(cg_metric){.kind = CG_METRIC_ACCURACY}, r);
    OK_S(cg_evaluate, m, &ce, &fn, 1, 0, NULL, r);
    NUL(cg_predict, NULL, &d, 2);
    NUL(cg_predict, m, NULL, 2);
    NUL(cg_predict, m, &d, 0);
    NUL(cg_predict, m, &d, -5);
    NUL(cg_predict, m, &(cg_fit_data){.x = cg_zeros(ctx, CG_F64, CG_SHAPE(6, 5))}, 2);
    NUL(cg_predict, m, &(cg_fit_data){.x = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 4))}, 2);
    KEEPS(cg_predict, m, &(cg_fit_data){.x = NULL}, 2);
    cg_tensor *p = OK_T(cg_predict, m, &(cg_fit_data){.x = x}, 4); /* y is not read */
    QUIET("cg_predict", cg_dim(p, 0) == 6 && cg_dim(p, 1) == 3);
    cg_tensor_free(p);
    p = OK_T(cg_predict, m, &fn, INT64_MAX);
    QUIET("cg_predict", cg_dim(p, 0) == 4);
    cg_tensor_free(p);
    /* callbacks */
    NULP(cg_progbar_new, &(cg_progbar_opts){.width = INT32_MIN});
    NULP(cg_progbar_new, &(cg_progbar_opts){.interval = -1});
    NULP(cg_progbar_new, &(cg_progbar_opts){.tty = (cg_tty)-1});
    NULP(cg_csv_logger_new, NULL, false);
    NULP(cg_model_checkpoint_new, NULL, "loss", CG_MONITOR_MIN, true);
    NULP(cg_model_checkpoint_new, "x", NULL, CG_MONITOR_MIN, true);
    NULP(cg_model_checkpoint_new, "x", "loss", (cg_monitor_mode)-1, true);
    NULP(cg_early_stopping_new, NULL, CG_MONITOR_MIN, 1, 0, false);
    NULP(cg_early_stopping_new, "loss", (cg_monitor_mode)9, 1, 0, false);
    NULP(cg_early_stopping_new, "loss", CG_MONITOR_MIN, INT32_MIN, 0, false);
    NULP(cg_early_stopping_new, "loss", CG_MONITOR_MIN, 1, -INFINITY, false);
    NULP(cg_lambda_callback_new, NULL, NULL);
    NULP(cg_chart_logger_new, NULL, "run");
    QUIET("cg_callback_free", (cg_callback_free(NULL), true));
    /* each valid, failing in a run on a key the history lacks or a bad path */
    cg_callback *cbs[] = {
        OK_P(cg_progbar_new, &(cg_progbar_opts){.out = stderr, .tty = CG_TTY_NO}),
        OK_P(cg_csv_logger_new, tmp_path("no/such/dir/log.csv"), true),
        OK_P(cg_model_checkpoint_new, tmp_path("no/such/dir/x.safetensors"), "loss",
             CG_MONITOR_AUTO, true),
        OK_P(cg_early_stopping_new, "val_loss", CG_MONITOR_AUTO, 0, INFINITY, true),
        OK_P(cg_chart_logger_new, tmp_path("no/such/dir/c.svg"), NULL),
        OK_P(cg_lambda_callback_new, &(cg_callback_fns){0}, NULL)};
    b = fo;
    b.epochs = 0;
    b.ncallbacks = 1;
    for (int i = 1; i < 5; i++) {
        b.callbacks = &cbs[i];
        NULP(cg_fit, m, o, &ce, &d, &b); /* at train begin, the first save or chart */
        b.epochs = 1;
    }
    b.callbacks = &cbs[5];
    h = OK_P(cg_fit, m, o, &ce, &d, &b);
    cg_history_free(h);
    for (int i = 0; i < 6; i++) cg_callback_free(cbs[i]);
    cg_optim_free(o);
    cg_module_free(m);
    done();
}

static int tmp_setup(void **state) {
    snprintf(tmpdir_, sizeof tmpdir_, "/tmp/cg_misuse.XXXXXX");
    if (!mkdtemp(tmpdir_)) return -1;
    return setup(state);
}
/* Removes what the tests wrote (a failed save leaves nothing to remove). */
static int tmp_teardown(void **state) {
    const char *files[] = {"good.safetensors",
                           "empty",
                           "huge",
                           "named.safetensors",
                           "none.safetensors",
                           "short.idx",
                           "rank9.idx",
                           "big.idx",
                           "empty.idx",
                           "vocab.safetensors",
                           "novocab.safetensors",
                           "badvocab.safetensors",
                           "text.txt",
                           "empty.txt",
                           "chart.svg"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) remove(tmp_path(files[i]));
    rmdir(tmpdir_);
    return teardown(state);
}

int main(void) {
    cg_rng_seed(&rng_, 14);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_misuse_errors_and_contexts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_creation_bad_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_creation_edge_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_creation_other_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_inspection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_element_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_broadcast_copy_fill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_printing_and_rng, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_record_and_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_leaves_and_grad_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_backward_and_grad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_gradcheck, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_unary_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_binary_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_reductions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_shape_ops_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_view_reshape_expand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_axis_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_join_and_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_linear_algebra, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_einsum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_split_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_scatter_sort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_structure_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_pad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_fused_losses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_conv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_norms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_module_core, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_init, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_composed_losses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_optim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_sched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_clip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_checkpoints, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_misuse_chart, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_misuse_data, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_misuse_batcher, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_attention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_sampling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_transformer_constructors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_mha_forward, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_vocab, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_misuse_text, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_misuse_fit, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests_name("misuse", tests, NULL, NULL);
}
