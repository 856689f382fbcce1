/* Gradients of arithmetic, math and linear algebra: float64 gradcheck for
 * every op on plain, broadcast and non-contiguous inputs, gradgradcheck
 * where the issue asks, and float32 against float64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "cgrad_cmocka.h"
#include "testutil.h"

typedef cg_tensor *(*binop)(cg_ctx *, const cg_tensor *, const cg_tensor *);
typedef cg_tensor *(*unop)(cg_ctx *, const cg_tensor *);
typedef struct {
    binop f;
} binbox;
typedef struct {
    unop f;
} unbox;

static cg_tensor *call_bin(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return ((binbox *)user)->f(ctx, in[0], in[1]);
}
static cg_tensor *call_un(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return ((unbox *)user)->f(ctx, in[0]);
}

typedef enum { ANY, POSITIVE } domain;

/* Values in +-[0.5, 2] (POSITIVE: [0.5, 2]), away from every kink at 0. */
static void fill(cg_tensor *t, cg_rng *rng, domain d) {
    int64_t n = cg_numel(t);
    double *p = cg_data(t);
    for (int64_t i = 0; i < n; i++) {
        double v = 0.5 + 1.5 * cg_rng_uniform(rng);
        p[i] = (d == ANY && cg_rng_uniform(rng) < 0.5) ? -v : v;
    }
}

/* A caller-owned f64 leaf; transposed: the view of a [cols, rows] base. */
static cg_tensor *input(cg_rng *rng, domain d, int n, const int64_t *shape, bool transposed) {
    cg_tensor *t;
    if (transposed && n == 2) {
        cg_tensor *base = cg_empty(NULL, CG_F64, CG_SHAPE(shape[1], shape[0]));
        fill(base, rng, d);
        t = cg_transpose(NULL, base, 0, 1);
        cg_tensor_free(base); /* the view keeps the storage */
        assert_true(shape[0] == 1 || shape[1] == 1 || !cg_is_contiguous(t));
    } else {
        t = cg_empty(NULL, CG_F64, n, shape);
        fill(t, rng, d);
    }
    cg_set_requires_grad(t, true);
    return t;
}

typedef struct bincase {
    const char *name;
    binop f;
    domain da, db;
} bincase;

static const bincase BINARY[] = {
    {"add", cg_add, ANY, ANY},         {"sub", cg_sub, ANY, ANY},
    {"mul", cg_mul, ANY, ANY},         {"div", cg_div, ANY, ANY},
    {"pow", cg_pow, POSITIVE, ANY},    {"maximum", cg_maximum, ANY, ANY},
    {"minimum", cg_minimum, ANY, ANY},
};

/* b's shape for each variant: same, row broadcast, column broadcast, scalar. */
static void check_binary(const bincase *c, cg_rng *rng) {
    const int64_t shapes[][2] = {{3, 4}, {1, 4}, {3, 1}};
    binbox box = {c->f};
    for (int v = 0; v < 3; v++)
        for (int tr = 0; tr < 2; tr++) {
            cg_tensor *in[2] = {input(rng, c->da, CG_SHAPE(3, 4), tr),
                                input(rng, c->db, 2, shapes[v], tr)};
            cg_assert_gradcheck(call_bin, &box, 2, in);
            cg_tensor_free(in[0]);
            cg_tensor_free(in[1]);
        }
    cg_tensor *in[2] = {input(rng, c->da, CG_SHAPE(2, 3), false),
                        input(rng, c->db, 0, NULL, false)};
    cg_assert_gradcheck(call_bin, &box, 2, in); /* rank-0 b */
    cg_tensor_free(in[0]);
    cg_tensor_free(in[1]);
}

static void test_arith_grad_binary_ops(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 11);
    for (size_t i = 0; i < sizeof BINARY / sizeof BINARY[0]; i++)
        check_binary(&BINARY[i], &rng);
}

typedef struct uncase {
    const char *name;
    unop f;
    domain d;
} uncase;

static const uncase UNARY[] = {
    {"neg", cg_neg, ANY},         {"abs", cg_abs, ANY},          {"sign", cg_sign, ANY},
    {"exp", cg_exp, ANY},         {"log", cg_log, POSITIVE},     {"log1p", cg_log1p, POSITIVE},
    {"sqrt", cg_sqrt, POSITIVE},  {"rsqrt", cg_rsqrt, POSITIVE}, {"square", cg_square, ANY},
    {"sin", cg_sin, ANY},         {"cos", cg_cos, ANY},          {"tanh", cg_tanh, ANY},
    {"sigmoid", cg_sigmoid, ANY}, {"erf", cg_erf, ANY},          {"relu", cg_relu, ANY},
};

/* The op on a broadcast (stride-0) view of x [1,4]: gradients sum over rows. */
static cg_tensor *call_un_expanded(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return ((unbox *)user)->f(ctx, cg_expand(ctx, in[0], CG_SHAPE(3, 4)));
}

static void test_arith_grad_unary_ops(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 12);
    for (size_t i = 0; i < sizeof UNARY / sizeof UNARY[0]; i++) {
        unbox box = {UNARY[i].f};
        for (int tr = 0; tr < 2; tr++) {
            cg_tensor *x = input(&rng, UNARY[i].d, CG_SHAPE(3, 4), tr);
            cg_assert_gradcheck(call_un, &box, 1, &x);
            cg_tensor_free(x);
        }
        cg_tensor *row = input(&rng, UNARY[i].d, CG_SHAPE(1, 4), false);
        cg_assert_gradcheck(call_un_expanded, &box, 1, &row);
        cg_tensor_free(row);
    }
}

/* Scalar forms, where and clamp, through one function with a selector. */
static cg_tensor *scalar_forms(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    const cg_tensor *x = in[0];
    switch (*(int *)user) {
    case 0: return cg_add_scalar(ctx, x, 1.5);
    case 1: return cg_sub_scalar(ctx, x, -2);
    case 2: return cg_rsub_scalar(ctx, x, 3);
    case 3: return cg_mul_scalar(ctx, x, -0.25);
    case 4: return cg_div_scalar(ctx, x, 4);
    case 5: return cg_pow_scalar(ctx, cg_abs(ctx, x), 2.5);
    case 6: return cg_pow_scalar(ctx, x, 3);
    case 7: return cg_clamp(ctx, x, -1, 1);
    case 8: return cg_clamp(ctx, x, 0.0, INFINITY);
    default: return cg_where(ctx, cg_gt(ctx, x, in[1]), x, cg_mul(ctx, in[1], in[1]));
    }
}

static void test_arith_grad_scalar_where_clamp(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 13);
    for (int k = 0; k <= 9; k++)
        for (int tr = 0; tr < 2; tr++) {
            cg_tensor *in[2] = {input(&rng, ANY, CG_SHAPE(3, 4), tr),
                                input(&rng, ANY, CG_SHAPE(4), tr)};
            cg_assert_gradcheck(scalar_forms, &k, k == 9 ? 2 : 1, in);
            cg_tensor_free(in[0]);
            cg_tensor_free(in[1]);
        }
}

static void test_arith_grad_matmul_shapes(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 14);
    binbox box = {cg_matmul};
    /* {rank, dims...} for a and b */
    const int64_t cases[][2][5] = {
        {{2, 3, 4}, {2, 4, 5}},          /* 2-D x 2-D */
        {{1, 4}, {2, 4, 3}},             /* 1-D x 2-D */
        {{2, 3, 4}, {1, 4}},             /* 2-D x 1-D */
        {{1, 4}, {1, 4}},                /* dot */
        {{3, 2, 3, 4}, {2, 4, 2}},       /* batched x 2-D (broadcast) */
        {{4, 2, 1, 3, 2}, {3, 3, 2, 2}}, /* batch dims broadcast both ways */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int tr = 0; tr < 2; tr++) {
            cg_tensor *in[2] = {input(&rng, ANY, (int)cases[c][0][0], &cases[c][0][1], tr),
                                input(&rng, ANY, (int)cases[c][1][0], &cases[c][1][1], tr)};
            cg_assert_gradcheck(call_bin, &box, 2, in);
            if (c < 2) cg_assert_gradgradcheck(call_bin, &box, 2, in);
            cg_tensor_free(in[0]);
            cg_tensor_free(in[1]);
        }
}

static cg_tensor *linear_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return cg_linear(ctx, in[0], in[1], *(bool *)user ? in[2] : NULL);
}

static void test_arith_grad_linear(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 15);
    for (int bias = 0; bias < 2; bias++)
        for (int tr = 0; tr < 2; tr++) {
            bool b = bias;
            cg_tensor *in[3] = {input(&rng, ANY, CG_SHAPE(5, 4), tr),
                                input(&rng, ANY, CG_SHAPE(3, 4), tr),
                                input(&rng, ANY, CG_SHAPE(3), false)};
            cg_assert_gradcheck(linear_fn, &b, 3, in);
            cg_assert_gradgradcheck(linear_fn, &b, 3, in);
            cg_tensor_free(in[0]);
            cg_tensor_free(in[1]);
            cg_tensor_free(in[2]);
        }
    bool b = true; /* x with two batch dims */
    cg_tensor *in[3] = {input(&rng, ANY, CG_SHAPE(2, 2, 4), false),
                        input(&rng, ANY, CG_SHAPE(3, 4), false),
                        input(&rng, ANY, CG_SHAPE(3), false)};
    cg_assert_gradcheck(linear_fn, &b, 3, in);
    for (int i = 0; i < 3; i++) cg_tensor_free(in[i]);
}

static void test_arith_grad_second_order(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 16);
    const bincase *bins[] = {&BINARY[2], &BINARY[3], &BINARY[4]}; /* mul, div, pow */
    for (int i = 0; i < 3; i++) {
        binbox box = {bins[i]->f};
        cg_tensor *in[2] = {input(&rng, bins[i]->da, CG_SHAPE(2, 3), true),
                            input(&rng, bins[i]->db, CG_SHAPE(3), false)};
        cg_assert_gradgradcheck(call_bin, &box, 2, in);
        cg_tensor_free(in[0]);
        cg_tensor_free(in[1]);
    }
    const unop uns[] = {cg_exp, cg_log, cg_tanh, cg_sigmoid, cg_sqrt, cg_sin, cg_erf};
    for (size_t i = 0; i < sizeof uns / sizeof uns[0]; i++) {
        unbox box = {uns[i]};
        cg_tensor *x = input(&rng, POSITIVE, CG_SHAPE(2, 3), true);
        cg_assert_gradgradcheck(call_un, &box, 1, &x);
        cg_tensor_free(x);
    }
}

/* The same values in f32 and f64 give the same gradients up to f32 rounding. */
static void test_arith_grad_f32_matches_f64(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 17);
    cg_tensor *a64 = input(&rng, POSITIVE, CG_SHAPE(4, 5), false);
    cg_tensor *b64 = input(&rng, ANY, CG_SHAPE(5, 3), false);
    cg_tensor *a32 = cg_cast(NULL, cg_detach(ctx, a64), CG_F32);
    cg_tensor *b32 = cg_cast(NULL, cg_detach(ctx, b64), CG_F32);
    cg_set_requires_grad(a32, true);
    cg_set_requires_grad(b32, true);
    cg_tensor *a[2] = {a64, a32}, *b[2] = {b64, b32};
    for (int k = 0; k < 2; k++) {
        cg_tensor *h = cg_tanh(ctx, cg_matmul(ctx, cg_log(ctx, a[k]), b[k]));
        cg_tensor *y =
            cg_sum(ctx, cg_div(ctx, cg_sigmoid(ctx, h), cg_add_scalar(ctx, cg_exp(ctx, h), 1)),
                   NULL, 0, false);
        assert_int_equal(cg_backward(y), CG_OK);
    }
    double g64[20], g32[20];
    cg_copy_to_array(cg_grad_of(a64), CG_F64, g64);
    cg_copy_to_array(cg_grad_of(a32), CG_F64, g32);
    for (int i = 0; i < 20; i++) assert_float_equal(g32[i], g64[i], 1e-5 * (1 + fabs(g64[i])));
    cg_tensor *all[] = {a64, b64, a32, b32};
    for (int i = 0; i < 4; i++) cg_tensor_free(all[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arith_grad_binary_ops),
        cmocka_unit_test(test_arith_grad_unary_ops),
        cmocka_unit_test(test_arith_grad_scalar_where_clamp),
        cmocka_unit_test(test_arith_grad_matmul_shapes),
        cmocka_unit_test(test_arith_grad_linear),
        cmocka_unit_test(test_arith_grad_second_order),
        cmocka_unit_test(test_arith_grad_f32_matches_f64),
    };
    return cmocka_run_group_tests_name("arith_grad", tests, ctx_setup, ctx_teardown);
}
