/* The functional norms (cg_batch_norm, cg_group_norm, cg_layer_norm) and the
 * layers built on them (BatchNorm2d, GroupNorm) and Dropout2d: values worked
 * out by hand or taken from PyTorch 1.13, running statistics against
 * PyTorch's update rule, float64 gradchecks and gradgradchecks (training
 * and eval, non-contiguous input), state_dict names, every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgrad_cmocka.h"
#include "testutil.h"

#define EPS 1e-5 /* PyTorch's default */

/* ---- helpers ------------------------------------------------------------------------ */
static cg_tensor *input(cg_ctx *ctx, int n, const int64_t *shape, const double *v) {
    cg_tensor *t = cg_from_array(ctx, CG_F64, n, shape, v);
    assert_non_null(t);
    return t;
}

/* x = i * i / 10 - i for i = 0..23 in C order: the input of the PyTorch
 * reference values below. */
static cg_tensor *ref_input(cg_ctx *ctx, int n, const int64_t *shape) {
    double v[24];
    for (int i = 0; i < 24; i++) v[i] = i * i * 0.1 - i;
    return input(ctx, n, shape, v);
}

/* m's state is exactly the n names given, in order, with these shapes. */
static void assert_state_names(const cg_module *m, int n, const char *const *names,
                               const char *const *shapes) {
    char buf[64];
    assert_int_equal(cg_module_nstate(m), n);
    for (int i = 0; i < n; i++) {
        const char *name = NULL;
        cg_tensor *t = cg_module_state(m, i, &name, NULL);
        assert_string_equal(name, names[i]);
        assert_string_equal(cg_shape_str(t, buf, sizeof buf), shapes[i]);
    }
}

/* What cg_module_print writes for m contains want. */
static void assert_printed(const cg_module *m, const char *want) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(cg_module_fprint(f, m), CG_OK);
    fclose(f);
    if (!strstr(text, want)) fail_msg("\"%s\" lacks \"%s\"", text, want);
    free(text);
}

/* The functional under test, its options in user. */
typedef struct norm_case {
    int kind; /* 0 batch_norm, 1 group_norm, 2 layer_norm */
    bool training;
    cg_tensor *rm, *rv; /* batch_norm */
    int64_t groups;     /* group_norm */
    int ndim;           /* layer_norm */
    int64_t shape[4];
    bool transpose; /* x is given transposed (dims 0 and last): a non-contiguous view */
} norm_case;

static cg_tensor *norm_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    const norm_case *c = user;
    const cg_tensor *x = c->transpose ? cg_transpose(ctx, in[0], 0, -1) : in[0];
    switch (c->kind) {
    case 0: return cg_batch_norm(ctx, x, c->rm, c->rv, in[1], in[2], c->training, 0.1, EPS);
    case 1: return cg_group_norm(ctx, x, c->groups, in[1], in[2], EPS);
    default: return cg_layer_norm(ctx, x, c->ndim, c->shape, in[1], in[2], EPS);
    }
}

/* Gradcheck and gradgradcheck of c's functional w.r.t. x [xshape] (given
 * transposed when c->transpose), weight and bias [wshape]; frees them. */
static void check_grads(norm_case *c, int xn, const int64_t *xshape, int wn,
                        const int64_t *wshape, uint64_t seed) {
    cg_tensor *in[3] = {seeded_leaf(seed, CG_F64, xn, xshape, 1),
                        seeded_leaf(seed + 1, CG_F64, wn, wshape, 1),
                        seeded_leaf(seed + 2, CG_F64, wn, wshape, 1)};
    cg_assert_gradcheck(norm_fn, c, 3, in);
    cg_assert_gradgradcheck(norm_fn, c, 3, in);
    for (int i = 0; i < 3; i++) cg_tensor_free(in[i]);
}

/* ---- batch_norm ----------------------------------------------------------------------- */
static const double bn_w[] = {2, 0.5, -1}, bn_b[] = {1, -1, 0.25};

/* PyTorch: F.batch_norm(x [2,3,2,2], rm, rv, w, b, True, 0.1, 1e-5), then
 * the same in eval with the updated running statistics. */
static void test_norm_batch_norm_matches_pytorch(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = ref_input(ctx, CG_SHAPE(2, 3, 2, 2));
    cg_tensor *w = input(ctx, CG_SHAPE(3), bn_w), *b = input(ctx, CG_SHAPE(3), bn_b);
    cg_tensor *rm = input(ctx, CG_SHAPE(3), (const double[]){0.5, -1, 2});
    cg_tensor *rv = input(ctx, CG_SHAPE(3), (const double[]){0.5, 2, 1.5});
    const double train[] = {
        -0.10943106321677941, -0.6491542831600774, -1.0689390097826426,  -1.3687852430844747,
        -1.4877281529170194,  -1.4939412504064082, -1.4877281529170194,  -1.4690888604488532,
        1.3247014220842686,   1.2703843827009482,  1.2005481892081076,   1.1151928416057468,
        1.3298308566320154,   2.229369556537513,   3.248846749763742,    4.388262436310703,
        -0.7421564541903654,  -0.5992552119344232, -0.44392777469970385, -0.2761741424862065,
        -0.35136722174390467, -0.5919141104414667, -0.847980153248549,   -1.1195653501651512};
    assert_values(cg_batch_norm(ctx, x, rm, rv, w, b, true, 0.1, EPS), train, 24, 1e-12);
    assert_values(rm, (const double[]){0.635, -0.355, 3.025}, 3, 1e-12);
    assert_values(rv,
                  (const double[]){1.7211428571428573, 9.201428571428574, 20.33085714285715}, 3,
                  1e-12);
    const double eval[] = {
        0.031958446607617964, -1.34006895190127,   -2.4072013729637383, -3.1694388165797873,
        -1.3370819139010013,  -1.3535651370746444, -1.3370819139010013, -1.287632244380072,
        1.275731719838994,    1.1204858379174167,  0.9208839897325313,  0.6769261752843377,
        3.690698175964653,    5.977410506812802,   8.569017815107367,   11.46552010084835,
        0.6409048669361708,   1.0200189999299623,  1.4320995792710391,  1.8771466049594032,
        -3.5147126365982535,  -4.2022301136795255, -4.934103557024106,  -5.710332966631993};
    assert_values(cg_batch_norm(ctx, x, rm, rv, w, b, false, 0.1, EPS), eval, 24, 1e-12);
    assert_values(rm, (const double[]){0.635, -0.355, 3.025}, 3, 1e-12); /* unchanged */
}

/* [N 3, C 2] without weight, bias or running statistics: channel 0 is 1, 2,
 * 6 (mean 3, biased var 14/3), channel 1 is 0, 0, 3 (mean 1, var 2). Then
 * momentum 0.5 from running 0 and 1: rm = 0.5 mean, rv = 0.5 + 0.5 * the
 * unbiased variance (7 and 3). */
static void test_norm_batch_norm_hand_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = input(ctx, CG_SHAPE(3, 2), (const double[]){1, 0, 2, 0, 6, 3});
    double s0 = 1 / sqrt(14.0 / 3 + EPS), s1 = 1 / sqrt(2 + EPS);
    const double want[] = {-2 * s0, -s1, -s0, -s1, 3 * s0, 2 * s1};
    assert_values(cg_batch_norm(ctx, x, NULL, NULL, NULL, NULL, true, 0.1, EPS), want, 6,
                  1e-12);
    cg_tensor *rm = cg_zeros(ctx, CG_F64, CG_SHAPE(2)), *rv = cg_ones(ctx, CG_F64, CG_SHAPE(2));
    assert_values(cg_batch_norm(ctx, x, rm, rv, NULL, NULL, true, 0.5, EPS), want, 6, 1e-12);
    assert_values(rm, (const double[]){1.5, 0.5}, 2, 1e-12);
    assert_values(rv, (const double[]){4, 2}, 2, 1e-12);
    /* only one of them given: that one is updated */
    assert_non_null(cg_batch_norm(ctx, x, NULL, rv, NULL, NULL, true, 0.5, EPS));
    assert_values(rv, (const double[]){5.5, 2.5}, 2, 1e-12);
    /* momentum 0 keeps them, 1 replaces them */
    assert_non_null(cg_batch_norm(ctx, x, rm, rv, NULL, NULL, true, 1.0, EPS));
    assert_values(rm, (const double[]){3, 1}, 2, 1e-12);
    assert_values(rv, (const double[]){7, 3}, 2, 1e-12);
    /* eval: (x - rm) / sqrt(rv + eps) */
    double e0 = 1 / sqrt(7 + EPS), e1 = 1 / sqrt(3 + EPS);
    assert_values(cg_batch_norm(ctx, x, rm, rv, NULL, NULL, false, 0.1, EPS),
                  (const double[]){-2 * e0, -e1, -e0, -e1, 3 * e0, 2 * e1}, 6, 1e-12);
}

/* f32 input gives f32 output with the same values. */
static void test_norm_batch_norm_f32(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x =
        cg_cast(ctx, input(ctx, CG_SHAPE(3, 2), (const double[]){1, 0, 2, 0, 6, 3}), CG_F32);
    cg_tensor *y = cg_batch_norm(ctx, x, NULL, NULL, NULL, NULL, true, 0.1, EPS);
    assert_int_equal(cg_dtype_of(y), CG_F32);
    double s1 = 1 / sqrt(2 + EPS);
    double v;
    assert_int_equal(cg_get(y, (const int64_t[]){2, 1}, &v), CG_OK);
    assert_float_equal(v, 2 * s1, 1e-6);
}

static void test_norm_batch_norm_gradcheck(void **state) {
    (void)state;
    cg_tensor *rm = cg_zeros(NULL, CG_F64, CG_SHAPE(3));
    cg_tensor *rv = cg_full(NULL, CG_F64, CG_SHAPE(3), 1.5);
    norm_case c = {.kind = 0, .training = true, .rm = rm, .rv = rv};
    check_grads(&c, CG_SHAPE(4, 3), CG_SHAPE(3), 30);
    check_grads(&c, CG_SHAPE(2, 3, 2, 2), CG_SHAPE(3), 40);
    c.transpose = true; /* x [3, 3, 2] given as its transpose [2, 3, 3] */
    check_grads(&c, CG_SHAPE(2, 3, 3), CG_SHAPE(3), 50);
    c = (norm_case){.kind = 0, .training = false, .rm = rm, .rv = rv};
    check_grads(&c, CG_SHAPE(2, 3, 2, 2), CG_SHAPE(3), 60);
    c.transpose = true;
    check_grads(&c, CG_SHAPE(2, 3, 3), CG_SHAPE(3), 70);
    cg_tensor_free(rm);
    cg_tensor_free(rv);
}

/* Without weight and bias: gradients w.r.t. x alone, both modes. */
static cg_tensor *bn_plain_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    norm_case *c = user;
    return cg_batch_norm(ctx, in[0], c->rm, c->rv, NULL, NULL, c->training, 0.1, EPS);
}

static void test_norm_batch_norm_gradcheck_no_affine(void **state) {
    (void)state;
    cg_tensor *rm = cg_full(NULL, CG_F64, CG_SHAPE(2), 0.5);
    cg_tensor *rv = cg_full(NULL, CG_F64, CG_SHAPE(2), 2);
    cg_tensor *x = seeded_leaf(80, CG_F64, CG_SHAPE(3, 2, 2), 1);
    for (int t = 0; t < 2; t++) {
        norm_case c = {.training = t, .rm = t ? NULL : rm, .rv = t ? NULL : rv};
        cg_assert_gradcheck(bn_plain_fn, &c, 1, &x);
        cg_assert_gradgradcheck(bn_plain_fn, &c, 1, &x);
    }
    cg_tensor_free(x);
    cg_tensor_free(rm);
    cg_tensor_free(rv);
}

/* ctx NULL: the result is the caller's (running statistics still updated);
 * an input requiring a gradient is refused. */
static void test_norm_without_context(void **state) {
    (void)state;
    cg_tensor *x = cg_from_array(NULL, CG_F64, CG_SHAPE(2, 2), (const double[]){1, 3, 3, 5});
    cg_tensor *rm = cg_zeros(NULL, CG_F64, CG_SHAPE(2));
    double s = 1 / sqrt(1 + EPS);
    cg_tensor *y = cg_batch_norm(NULL, x, rm, NULL, NULL, NULL, true, 0.1, EPS);
    assert_values(y, (const double[]){-s, -s, s, s}, 4, 1e-12);
    assert_values(rm, (const double[]){0.2, 0.4}, 2, 1e-12);
    cg_tensor_free(y);
    y = cg_group_norm(NULL, x, 1, NULL, NULL, EPS);
    assert_values(y, (const double[]){-s, s, -s, s}, 4, 1e-12);
    cg_tensor_free(y);
    y = cg_layer_norm(NULL, x, 1, (const int64_t[]){2}, NULL, NULL, EPS);
    assert_values(y, (const double[]){-s, s, -s, s}, 4, 1e-12);
    cg_tensor_free(y);
    cg_tensor *w = leaf(CG_F64, CG_SHAPE(2), (const double[]){1, 1});
    assert_null(cg_batch_norm(NULL, x, NULL, NULL, w, NULL, true, 0.1, EPS));
    assert_error(CG_ERR_STATE, "cg_batch_norm: an input requires a gradient");
    assert_null(cg_group_norm(NULL, x, 1, NULL, w, EPS));
    assert_error(CG_ERR_STATE, "cg_group_norm");
    assert_int_equal(cg_set_requires_grad(x, true), CG_OK);
    assert_null(cg_layer_norm(NULL, x, 1, (const int64_t[]){2}, NULL, NULL, EPS));
    assert_error(CG_ERR_STATE, "cg_layer_norm");
    cg_tensor_free(w);
    cg_tensor_free(rm);
    cg_tensor_free(x);
}

static void test_norm_batch_norm_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(2, 3, 2));
    cg_tensor *c3 = cg_ones(ctx, CG_F64, CG_SHAPE(3)), *c2 = cg_ones(ctx, CG_F64, CG_SHAPE(2));
    cg_tensor *f32 = cg_ones(ctx, CG_F32, CG_SHAPE(3));
    assert_null(cg_batch_norm(ctx, NULL, c3, c3, NULL, NULL, true, 0.1, EPS));
    assert_error(CG_ERR_ARG, "cg_batch_norm: tensor is NULL");
    assert_null(cg_batch_norm(ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 3)), NULL, NULL, NULL, NULL,
                              true, 0.1, EPS));
    assert_error(CG_ERR_DTYPE, "cg_batch_norm: input [2,3]: needs f32 or f64, got i64");
    assert_null(cg_batch_norm(ctx, c3, NULL, NULL, NULL, NULL, true, 0.1, EPS));
    assert_error(CG_ERR_SHAPE, "cg_batch_norm: input [3]: expected [N, C, ...]");
    assert_null(cg_batch_norm(ctx, x, NULL, NULL, c2, NULL, true, 0.1, EPS));
    assert_error(CG_ERR_SHAPE, "cg_batch_norm: weight [2] does not match input [2,3,2]: "
                               "expected [3]");
    assert_null(cg_batch_norm(ctx, x, NULL, NULL, NULL, f32, true, 0.1, EPS));
    assert_error(CG_ERR_DTYPE, "cg_batch_norm: bias is f32, input [2,3,2] is f64");
    assert_null(cg_batch_norm(ctx, x, c2, c3, NULL, NULL, true, 0.1, EPS));
    assert_error(CG_ERR_SHAPE, "cg_batch_norm: running_mean [2]");
    assert_null(cg_batch_norm(ctx, x, c3, f32, NULL, NULL, true, 0.1, EPS));
    assert_error(CG_ERR_DTYPE, "cg_batch_norm: running_var is f32");
    assert_null(cg_batch_norm(ctx, x, c3, c3, NULL, NULL, true, 0.1, -1));
    assert_error(CG_ERR_ARG, "cg_batch_norm: eps -1: need a finite eps >= 0");
    assert_null(cg_batch_norm(ctx, x, c3, c3, NULL, NULL, true, NAN, EPS));
    assert_error(CG_ERR_ARG, "cg_batch_norm: momentum nan is not in [0, 1]");
    assert_null(cg_batch_norm(ctx, x, c3, NULL, NULL, NULL, false, 0.1, EPS));
    assert_error(CG_ERR_ARG, "cg_batch_norm: eval (training false) needs running_mean and "
                             "running_var");
    cg_tensor *one = cg_ones(ctx, CG_F64, CG_SHAPE(1, 3, 1, 1));
    assert_null(cg_batch_norm(ctx, one, c3, c3, NULL, NULL, true, 0.1, EPS));
    assert_error(CG_ERR_SHAPE, "cg_batch_norm: input [1,3,1,1]: expected more than 1 value "
                               "per channel when training");
    assert_values(c3, (const double[]){1, 1, 1}, 3, 0); /* no update on failure */
    assert_non_null(cg_batch_norm(ctx, one, c3, c3, NULL, NULL, false, 0.1, EPS));
    /* a weight from a context that was reset since */
    cg_ctx *other = cg_ctx_new();
    cg_tensor *stale = cg_ones(other, CG_F64, CG_SHAPE(3));
    cg_ctx_reset(other);
    assert_null(cg_batch_norm(ctx, x, NULL, NULL, stale, NULL, true, 0.1, EPS));
    assert_error(CG_ERR_STATE, "cg_batch_norm: weight");
    cg_ctx_free(other);
}

/* ---- group_norm ----------------------------------------------------------------------- */
/* PyTorch: F.group_norm(x [2,6,2], 3, w, b, 1e-5). */
static void test_norm_group_norm_matches_pytorch(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = ref_input(ctx, CG_SHAPE(2, 6, 2));
    cg_tensor *w = input(ctx, CG_SHAPE(6), (const double[]){1, 2, 3, -1, 0.5, 0.25});
    cg_tensor *b = input(ctx, CG_SHAPE(6), (const double[]){0, 1, -1, 0.5, 2, 0});
    const double want[] = {
        1.4575540689917175,  0.3168595802155906,  -0.1406944887761275, -1.4081328096384906,
        -1.9997778518244242, -3.999333555473278,  0.8332592839414734,  -1.1662964197073802,
        1.3819178018567615,  1.7280438328169747,  0.0865315077400533,  0.3584876749230786,
        -1.2872452201224407, -0.4991359016801292, 1.7881093184423111,  3.7846529251628294,
        -4.91508374023157,   -2.448044671044552,  0.08882682180216406, -0.8765362922275398,
        1.3429730630327181,  1.7629284248056198,  0.1049888404432256,  0.34206041563760553};
    assert_values(cg_group_norm(ctx, x, 3, w, b, EPS), want, 24, 1e-12);
}

/* [1, 4] in 2 groups: (1, 3) and (2, 6), each normalised on its own. */
static void test_norm_group_norm_hand_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = input(ctx, CG_SHAPE(1, 4), (const double[]){1, 3, 2, 6});
    double s0 = 1 / sqrt(1 + EPS), s1 = 2 / sqrt(4 + EPS);
    assert_values(cg_group_norm(ctx, x, 2, NULL, NULL, EPS), (const double[]){-s0, s0, -s1, s1},
                  4, 1e-12);
    /* one group per channel of one value: all zero */
    assert_values(cg_group_norm(ctx, x, 4, NULL, NULL, EPS), (const double[]){0, 0, 0, 0}, 4,
                  0);
}

static void test_norm_group_norm_gradcheck(void **state) {
    (void)state;
    norm_case c = {.kind = 1, .groups = 2};
    check_grads(&c, CG_SHAPE(2, 4, 3), CG_SHAPE(4), 90);
    check_grads(&c, CG_SHAPE(1, 4, 2, 2), CG_SHAPE(4), 100);
    c.transpose = true; /* x [3, 4, 2] given as [2, 4, 3] */
    check_grads(&c, CG_SHAPE(2, 4, 3), CG_SHAPE(4), 110);
}

static void test_norm_group_norm_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(2, 6, 3));
    assert_null(cg_group_norm(ctx, NULL, 2, NULL, NULL, EPS));
    assert_error(CG_ERR_ARG, "cg_group_norm: tensor is NULL");
    assert_null(cg_group_norm(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(6)), 2, NULL, NULL, EPS));
    assert_error(CG_ERR_SHAPE, "cg_group_norm: input [6]: expected [N, C, ...]");
    assert_null(cg_group_norm(ctx, x, 4, NULL, NULL, EPS));
    assert_error(CG_ERR_ARG, "cg_group_norm: input [2,6,3] has 6 channels, not divisible into "
                             "4 groups");
    assert_null(cg_group_norm(ctx, x, 0, NULL, NULL, EPS));
    assert_error(CG_ERR_ARG, "into 0 groups");
    assert_null(cg_group_norm(ctx, x, 2, cg_ones(ctx, CG_F64, CG_SHAPE(3)), NULL, EPS));
    assert_error(CG_ERR_SHAPE, "cg_group_norm: weight [3] does not match input [2,6,3]");
    assert_null(cg_group_norm(ctx, x, 2, NULL, cg_ones(ctx, CG_F64, CG_SHAPE(6, 1)), EPS));
    assert_error(CG_ERR_SHAPE, "cg_group_norm: bias [6,1]");
    assert_null(cg_group_norm(ctx, x, 2, NULL, NULL, INFINITY));
    assert_error(CG_ERR_ARG, "cg_group_norm: eps inf");
    assert_null(cg_group_norm(ctx, cg_ones(ctx, CG_I64, CG_SHAPE(2, 6)), 2, NULL, NULL, EPS));
    assert_error(CG_ERR_DTYPE, "cg_group_norm: input [2,6]: needs f32 or f64");
}

/* ---- layer_norm ----------------------------------------------------------------------- */
/* PyTorch: F.layer_norm(x [2,6,2], (6, 2)) without affine, first sample. */
static void test_norm_layer_norm_matches_pytorch(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = ref_input(ctx, CG_SHAPE(2, 6, 2));
    const double want[] = {1.1564852447184268,  0.3454436445262833,  -0.2853664889564951,
                           -0.7359451557299082, -1.0062923557939558, -1.0964080891486385,
                           -1.0062923557939558, -0.7359451557299077, -0.2853664889564947,
                           0.345443644526283,   1.1564852447184268,  2.147758311619937};
    cg_tensor *y = cg_layer_norm(ctx, x, 2, (const int64_t[]){6, 2}, NULL, NULL, EPS);
    assert_values(cg_select(ctx, y, 0, 0), want, 12, 1e-12);
}

/* Rows (1, 2, 3) and (2, 4, 6): mean 2 and 4, biased var 2/3 and 8/3. */
static void test_norm_layer_norm_hand_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = input(ctx, CG_SHAPE(2, 3), (const double[]){1, 2, 3, 2, 4, 6});
    cg_tensor *w = input(ctx, CG_SHAPE(3), (const double[]){1, 2, -1});
    cg_tensor *b = input(ctx, CG_SHAPE(3), (const double[]){0, 0.5, 1});
    double s0 = 1 / sqrt(2.0 / 3 + EPS), s1 = 1 / sqrt(8.0 / 3 + EPS);
    assert_values(cg_layer_norm(ctx, x, 1, (const int64_t[]){3}, w, b, EPS),
                  (const double[]){-s0, 0.5, 1 - s0, -2 * s1, 0.5, 1 - 2 * s1}, 6, 1e-12);
    /* over both dims: mean 3, biased var 16/6 */
    double s = 1 / sqrt(16.0 / 6 + EPS);
    assert_values(cg_layer_norm(ctx, x, 2, (const int64_t[]){2, 3}, NULL, NULL, EPS),
                  (const double[]){-2 * s, -s, 0, -s, s, 3 * s}, 6, 1e-12);
}

static void test_norm_layer_norm_gradcheck(void **state) {
    (void)state;
    norm_case c = {.kind = 2, .ndim = 1, .shape = {4}};
    check_grads(&c, CG_SHAPE(3, 4), CG_SHAPE(4), 120);
    c = (norm_case){.kind = 2, .ndim = 2, .shape = {3, 2}};
    check_grads(&c, CG_SHAPE(2, 3, 2), CG_SHAPE(3, 2), 130);
    c.transpose = true; /* x [2, 3, 2] given as its transpose */
    check_grads(&c, CG_SHAPE(2, 3, 2), CG_SHAPE(3, 2), 140);
}

/* layer_norm's backward has two forms, the fused kernel (a plain backward)
 * and the same formula in ops (a recorded one, for gradients of gradients):
 * both give the same first gradients, for x, w and b, on a transposed x and
 * without affine parameters. gradgradcheck alone would not notice a wrong
 * recorded form whose own derivative happened to be consistent. */
static void test_norm_layer_norm_fused_and_recorded_agree(void **state) {
    cg_ctx *ctx = *state;
    for (int affine = 0; affine < 2; affine++) {
        cg_tensor *x0 = seeded_leaf(7, CG_F64, CG_SHAPE(3, 5, 4), 1);
        cg_tensor *w = seeded_leaf(8, CG_F64, CG_SHAPE(4, 5), 1);
        cg_tensor *b = seeded_leaf(9, CG_F64, CG_SHAPE(4, 5), 1);
        cg_tensor *x = cg_transpose(ctx, x0, 1, 2), *ins[3] = {x0, w, b}, *g1[3], *g2[3];
        cg_tensor *y = cg_layer_norm(ctx, x, 2, (const int64_t[]){4, 5}, affine ? w : NULL,
                                     affine ? b : NULL, EPS);
        cg_tensor *l = cg_sum(ctx, cg_mul(ctx, y, cg_sin(ctx, y)), NULL, 0, false);
        int n = affine ? 3 : 1;
        assert_int_equal(cg_grad(ctx, 1, &l, NULL, n, ins, g1, CG_RETAIN_GRAPH), CG_OK);
        assert_int_equal(cg_grad(ctx, 1, &l, NULL, n, ins, g2, CG_CREATE_GRAPH), CG_OK);
        for (int i = 0; i < n; i++) {
            double d =
                cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, g1[i], g2[i])), NULL, 0, false));
            if (!(d < 1e-12)) fail_msg("input %d: fused and recorded differ by %g", i, d);
        }
        for (int i = 0; i < 3; i++) cg_tensor_free(ins[i]);
        cg_ctx_reset(ctx);
    }
}

static void test_norm_layer_norm_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(2, 3));
    const int64_t three[] = {3};
    assert_null(cg_layer_norm(ctx, NULL, 1, three, NULL, NULL, EPS));
    assert_error(CG_ERR_ARG, "cg_layer_norm: tensor is NULL");
    assert_null(cg_layer_norm(ctx, x, 0, three, NULL, NULL, EPS));
    assert_error(CG_ERR_ARG, "cg_layer_norm: normalized_shape of 0 dims: need 1 to 8 dims");
    assert_null(cg_layer_norm(ctx, x, 1, NULL, NULL, NULL, EPS));
    assert_error(CG_ERR_ARG, "normalized_shape of 1 dims (NULL)");
    assert_null(cg_layer_norm(ctx, x, 1, (const int64_t[]){2}, NULL, NULL, EPS));
    assert_error(CG_ERR_SHAPE, "cg_layer_norm: input [2,3]: its last 1 dims must match the "
                               "normalized shape [2]");
    assert_null(cg_layer_norm(ctx, x, 3, (const int64_t[]){1, 2, 3}, NULL, NULL, EPS));
    assert_error(CG_ERR_SHAPE, "normalized shape [1,2,3]");
    assert_null(
        cg_layer_norm(ctx, x, 1, three, cg_ones(ctx, CG_F64, CG_SHAPE(1, 3)), NULL, EPS));
    assert_error(CG_ERR_SHAPE, "cg_layer_norm: weight [1,3] does not match input [2,3]");
    assert_null(cg_layer_norm(ctx, x, 1, three, NULL, cg_ones(ctx, CG_F32, CG_SHAPE(3)), EPS));
    assert_error(CG_ERR_DTYPE, "cg_layer_norm: bias is f32");
    assert_null(cg_layer_norm(ctx, x, 1, three, NULL, NULL, NAN));
    assert_error(CG_ERR_ARG, "cg_layer_norm: eps nan");
    assert_null(
        cg_layer_norm(ctx, cg_ones(ctx, CG_I64, CG_SHAPE(3)), 1, three, NULL, NULL, EPS));
    assert_error(CG_ERR_DTYPE, "cg_layer_norm: input [3]: needs f32 or f64");
}

/* ---- layers --------------------------------------------------------------------------- */
static cg_tensor *module_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return cg_module_forward(ctx, user, in[0]);
}

/* Gradcheck of m w.r.t. x and its parameters (drawn from N(0.5, 1) first, so
 * not at the constructor's ones and zeros); frees x and m. */
static void layer_gradcheck(cg_module *m, cg_tensor *x, uint64_t seed) {
    cg_rng rng = seeded(seed);
    cg_tensor *in[4] = {x};
    int n = cg_module_nparams(m);
    assert_true(n <= 3);
    for (int i = 0; i < n; i++) {
        in[1 + i] = cg_module_param(m, i, NULL);
        assert_int_equal(cg_init_normal_(in[1 + i], &rng, 0.5, 1), CG_OK);
    }
    cg_assert_gradcheck(module_fn, m, 1 + n, in);
    cg_tensor_free(x);
    cg_module_free(m);
}

static const char *const bn_names[] = {"weight", "bias", "running_mean", "running_var",
                                       "num_batches_tracked"};
static const char *const bn_shapes[] = {"[3]", "[3]", "[3]", "[3]", "[]"};

/* PyTorch's state and init, the same values as F.batch_norm, the running
 * statistics and the count in training, the running statistics in eval. */
static void test_norm_batchnorm2d_layer(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = cg_nn_batchnorm2d(CG_F64, 3, EPS, 0.1);
    assert_string_equal(cg_module_name(m), "BatchNorm2d");
    assert_state_names(m, 5, bn_names, bn_shapes);
    assert_int_equal(cg_module_nparams(m), 2);
    assert_values(cg_module_find(m, "weight"), (const double[]){1, 1, 1}, 3, 0);
    assert_values(cg_module_find(m, "bias"), (const double[]){0, 0, 0}, 3, 0);
    assert_values(cg_module_find(m, "running_var"), (const double[]){1, 1, 1}, 3, 0);
    assert_printed(m, "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, "
                      "track_running_stats=True)");
    set_state(m, "weight", bn_w);
    set_state(m, "bias", bn_b);
    cg_tensor *x = ref_input(ctx, CG_SHAPE(2, 3, 2, 2));
    cg_tensor *rm = cg_zeros(ctx, CG_F64, CG_SHAPE(3)), *rv = cg_ones(ctx, CG_F64, CG_SHAPE(3));
    cg_tensor *w = input(ctx, CG_SHAPE(3), bn_w), *b = input(ctx, CG_SHAPE(3), bn_b);
    double want[24];
    for (int step = 1; step <= 2; step++) {
        cg_tensor *ref = cg_batch_norm(ctx, x, rm, rv, w, b, true, 0.1, EPS);
        assert_int_equal(cg_copy_to_array(ref, CG_F64, want), CG_OK);
        assert_values(cg_module_forward(ctx, m, x), want, 24, 1e-12);
        assert_float_equal(cg_item(cg_module_find(m, "num_batches_tracked")), step, 0);
    }
    double r[3];
    assert_int_equal(cg_copy_to_array(rm, CG_F64, r), CG_OK);
    assert_values(cg_module_find(m, "running_mean"), r, 3, 1e-12);
    assert_int_equal(cg_copy_to_array(rv, CG_F64, r), CG_OK);
    assert_values(cg_module_find(m, "running_var"), r, 3, 1e-12);
    cg_module_train(m, false);
    cg_tensor *ref = cg_batch_norm(ctx, x, rm, rv, w, b, false, 0.1, EPS);
    assert_int_equal(cg_copy_to_array(ref, CG_F64, want), CG_OK);
    assert_values(cg_module_forward(ctx, m, x), want, 24, 1e-12);
    assert_float_equal(cg_item(cg_module_find(m, "num_batches_tracked")), 2, 0);
    cg_module_free(m);
}

static void test_norm_batchnorm2d_gradcheck(void **state) {
    (void)state;
    for (int training = 0; training < 2; training++) {
        cg_module *m = cg_nn_batchnorm2d(CG_F64, 3, EPS, 0.1);
        cg_module_train(m, training);
        set_state(m, "running_mean", (const double[]){0.5, -1, 2});
        set_state(m, "running_var", (const double[]){0.5, 2, 1.5});
        layer_gradcheck(m, seeded_leaf(150 + training, CG_F64, CG_SHAPE(2, 3, 2, 2), 1), 160);
    }
}

static void test_norm_batchnorm2d_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = cg_nn_batchnorm2d(CG_F64, 3, EPS, 0.1);
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_F64, CG_SHAPE(2, 3, 4))));
    assert_error(CG_ERR_SHAPE, "cg_module_forward: BatchNorm2d: cg_batchnorm2d: input [2,3,4]: "
                               "expected [N, 3, H, W]");
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_F64, CG_SHAPE(2, 4, 2, 2))));
    assert_error(CG_ERR_SHAPE, "input [2,4,2,2]");
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_F64, CG_SHAPE(1, 3, 1, 1))));
    assert_error(CG_ERR_SHAPE, "cg_batch_norm: input [1,3,1,1]: expected more than 1 value");
    assert_float_equal(cg_item(cg_module_find(m, "num_batches_tracked")), 0, 0);
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_F32, CG_SHAPE(2, 3, 2, 2))));
    assert_error(CG_ERR_DTYPE, "cg_batch_norm: weight is f64, input [2,3,2,2] is f32");
    cg_module_free(m);
    assert_null(cg_nn_batchnorm2d(CG_F64, 0, EPS, 0.1));
    assert_error(CG_ERR_ARG, "cg_nn_batchnorm2d: features 0");
    assert_null(cg_nn_batchnorm2d(CG_F64, 3, EPS, -0.1));
    assert_error(CG_ERR_ARG, "momentum -0.1");
    assert_null(cg_nn_batchnorm2d(CG_F64, 3, NAN, 0.1));
    assert_error(CG_ERR_ARG, "eps nan");
    assert_null(cg_nn_batchnorm2d(CG_I64, 3, EPS, 0.1));
    assert_error(CG_ERR_ARG, "dtype i64");
}

static void test_norm_groupnorm_layer(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = cg_nn_groupnorm(CG_F64, 3, 6, EPS);
    assert_string_equal(cg_module_name(m), "GroupNorm");
    assert_state_names(m, 2, (const char *const[]){"weight", "bias"},
                       (const char *const[]){"[6]", "[6]"});
    assert_values(cg_module_find(m, "weight"), (const double[]){1, 1, 1, 1, 1, 1}, 6, 0);
    assert_values(cg_module_find(m, "bias"), (const double[]){0, 0, 0, 0, 0, 0}, 6, 0);
    assert_printed(m, "GroupNorm(3, 6, eps=1e-05, affine=True)");
    const double w[] = {1, 2, 3, -1, 0.5, 0.25}, b[] = {0, 1, -1, 0.5, 2, 0};
    set_state(m, "weight", w);
    set_state(m, "bias", b);
    cg_tensor *x = ref_input(ctx, CG_SHAPE(2, 6, 2));
    double want[24];
    cg_tensor *ref =
        cg_group_norm(ctx, x, 3, input(ctx, CG_SHAPE(6), w), input(ctx, CG_SHAPE(6), b), EPS);
    assert_int_equal(cg_copy_to_array(ref, CG_F64, want), CG_OK);
    assert_values(cg_module_forward(ctx, m, x), want, 24, 1e-12);
    cg_module_train(m, false); /* no running statistics: the same in eval */
    assert_values(cg_module_forward(ctx, m, x), want, 24, 1e-12);
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_F64, CG_SHAPE(2, 4, 2))));
    assert_error(CG_ERR_ARG, "cg_module_forward: GroupNorm: cg_group_norm: input [2,4,2] has 4 "
                             "channels, not divisible into 3 groups");
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_F64, CG_SHAPE(2, 3, 2))));
    assert_error(CG_ERR_SHAPE, "cg_group_norm: weight [6] does not match input [2,3,2]");
    cg_module_free(m);
}

static void test_norm_groupnorm_gradcheck(void **state) {
    (void)state;
    layer_gradcheck(cg_nn_groupnorm(CG_F64, 2, 4, EPS),
                    seeded_leaf(170, CG_F64, CG_SHAPE(2, 4, 2, 2), 1), 171);
}

static void test_norm_groupnorm_constructor_errors(void **state) {
    (void)state;
    assert_null(cg_nn_groupnorm(CG_F64, 4, 6, EPS));
    assert_error(CG_ERR_ARG, "cg_nn_groupnorm: groups 4, channels 6");
    assert_null(cg_nn_groupnorm(CG_F64, 0, 6, EPS));
    assert_error(CG_ERR_ARG, "groups 0");
    assert_null(cg_nn_groupnorm(CG_F64, 1, 0, EPS));
    assert_error(CG_ERR_ARG, "channels 0");
    assert_null(cg_nn_groupnorm(CG_F64, 2, 6, -1));
    assert_error(CG_ERR_ARG, "eps -1");
    assert_null(cg_nn_groupnorm(CG_I64, 2, 6, EPS));
    assert_error(CG_ERR_ARG, "dtype i64");
}

/* Every channel of every sample is all zero or all 2 / (1 - 0.25). */
static int count_dropped(const cg_tensor *y, int64_t planes, int64_t plane) {
    double *v = malloc((size_t)(planes * plane) * sizeof *v);
    assert_int_equal(cg_copy_to_array(y, CG_F64, v), CG_OK);
    int dropped = 0;
    for (int64_t p = 0; p < planes; p++) {
        double first = v[p * plane];
        assert_true(first == 0 || fabs(first - 2 / 0.75) < 1e-12);
        for (int64_t i = 1; i < plane; i++) assert_true(v[p * plane + i] == first);
        dropped += first == 0;
    }
    free(v);
    return dropped;
}

static void test_norm_dropout2d_layer(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(180);
    cg_module *m = cg_nn_dropout2d(0.25, &rng);
    assert_string_equal(cg_module_name(m), "Dropout2d");
    assert_int_equal(cg_module_nstate(m), 0);
    assert_printed(m, "Dropout2d(p=0.25, inplace=False)");
    cg_tensor *x = cg_full(ctx, CG_F64, CG_SHAPE(20, 40, 3, 2), 2.0);
    int dropped = count_dropped(cg_module_forward(ctx, m, x), 800, 6);
    assert_in_range(dropped, 150, 250);                 /* 200 expected, std ~12 */
    x = cg_full(ctx, CG_F64, CG_SHAPE(400, 2, 3), 2.0); /* [C, H, W] */
    assert_in_range(count_dropped(cg_module_forward(ctx, m, x), 400, 6), 60, 140);
    cg_module_train(m, false);
    cg_tensor *y = cg_module_forward(ctx, m, x);
    assert_int_equal(cg_numel(y), 2400);
    assert_float_equal(cg_item(cg_sum(ctx, y, NULL, 0, false)), 4800, 0);
    cg_module_free(m);
    m = cg_nn_dropout2d(0.0, NULL); /* p 0 never draws */
    assert_values(cg_module_forward(ctx, m, input(ctx, CG_SHAPE(2), (const double[]){1, -2})),
                  (const double[]){1, -2}, 2, 0);
    cg_module_free(m);
}

/* The same mask on every evaluation: the rng is reseeded before each. */
typedef struct reseeded {
    cg_module *m;
    cg_rng *rng;
} reseeded;

static cg_tensor *reseeded_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    reseeded *r = user;
    cg_rng_seed(r->rng, 181);
    return cg_module_forward(ctx, r->m, in[0]);
}

static void test_norm_dropout2d_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(181);
    reseeded r = {cg_nn_dropout2d(0.5, &rng), &rng};
    cg_tensor *x = seeded_leaf(182, CG_F64, CG_SHAPE(2, 3, 2, 2), 1);
    cg_assert_gradcheck(reseeded_fn, &r, 1, &x);
    cg_assert_gradgradcheck(reseeded_fn, &r, 1, &x);
    cg_tensor_free(x);
    cg_module_free(r.m);
}

static void test_norm_dropout2d_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(183);
    cg_module *m = cg_nn_dropout2d(0.5, &rng);
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_F64, CG_SHAPE(4, 3))));
    assert_error(CG_ERR_SHAPE,
                 "cg_module_forward: Dropout2d: cg_dropout2d: input [4,3] of f64: "
                 "expected f32 or f64 [N, C, H, W] or [C, H, W]");
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_I64, CG_SHAPE(1, 2, 2, 2))));
    assert_error(CG_ERR_DTYPE, "input [1,2,2,2] of i64");
    cg_module_free(m);
    const double bad[] = {1.0, -0.1, NAN};
    for (int i = 0; i < 3; i++) {
        assert_null(cg_nn_dropout2d(bad[i], &rng));
        assert_error(CG_ERR_ARG, "cg_nn_dropout2d: p = ");
    }
    assert_null(cg_nn_dropout2d(0.3, NULL));
    assert_error(CG_ERR_ARG, "cg_nn_dropout2d: p = 0.3 with a NULL rng");
}

/* A test that gets a fresh context in *state. */
#define CTX_TEST(f) cmocka_unit_test_setup_teardown(f, ctx_setup, ctx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        CTX_TEST(test_norm_batch_norm_matches_pytorch),
        CTX_TEST(test_norm_batch_norm_hand_values),
        CTX_TEST(test_norm_batch_norm_f32),
        cmocka_unit_test(test_norm_batch_norm_gradcheck),
        cmocka_unit_test(test_norm_batch_norm_gradcheck_no_affine),
        cmocka_unit_test(test_norm_without_context),
        CTX_TEST(test_norm_batch_norm_errors),
        CTX_TEST(test_norm_group_norm_matches_pytorch),
        CTX_TEST(test_norm_group_norm_hand_values),
        cmocka_unit_test(test_norm_group_norm_gradcheck),
        CTX_TEST(test_norm_group_norm_errors),
        CTX_TEST(test_norm_layer_norm_matches_pytorch),
        CTX_TEST(test_norm_layer_norm_hand_values),
        cmocka_unit_test(test_norm_layer_norm_gradcheck),
        CTX_TEST(test_norm_layer_norm_fused_and_recorded_agree),
        CTX_TEST(test_norm_layer_norm_errors),
        CTX_TEST(test_norm_batchnorm2d_layer),
        cmocka_unit_test(test_norm_batchnorm2d_gradcheck),
        CTX_TEST(test_norm_batchnorm2d_errors),
        CTX_TEST(test_norm_groupnorm_layer),
        cmocka_unit_test(test_norm_groupnorm_gradcheck),
        cmocka_unit_test(test_norm_groupnorm_constructor_errors),
        CTX_TEST(test_norm_dropout2d_layer),
        cmocka_unit_test(test_norm_dropout2d_gradcheck),
        CTX_TEST(test_norm_dropout2d_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
