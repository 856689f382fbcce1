/* nn layers and modules: forward values on tiny inputs worked out by hand,
 * state_dict names and order, Linear's init, float64 gradchecks of every
 * layer w.r.t. its input and its parameters, train / eval, BatchNorm's
 * running statistics, the flat parameter and gradient buffers, errors. */
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

#define EPS 1e-5 /* PyTorch's norm eps, used by every norm here */

/* ---- helpers ------------------------------------------------------------------ */
/* One state_dict entry: name, parameter or buffer, shape as "[2,3]". */
typedef struct entry {
    const char *name;
    bool param;
    const char *shape;
} entry;

/* m's state is exactly want (n entries, in order), cg_module_find agrees
 * and cg_module_nparams counts the parameters among them. */
static void assert_state_dict(const cg_module *m, int n, const entry *want) {
    char buf[64];
    int nparams = 0;
    assert_int_equal(cg_module_nstate(m), n);
    for (int i = 0; i < n; i++) {
        const char *name = NULL;
        bool is_param = !want[i].param;
        cg_tensor *t = cg_module_state(m, i, &name, &is_param);
        assert_non_null(t);
        assert_string_equal(name, want[i].name);
        assert_int_equal(is_param, want[i].param);
        assert_string_equal(cg_shape_str(t, buf, sizeof buf), want[i].shape);
        assert_ptr_equal(cg_module_find(m, name), t);
        nparams += want[i].param;
    }
    assert_int_equal(cg_module_nparams(m), nparams);
}

static cg_tensor *module_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return cg_module_forward(ctx, user, in[0]);
}

/* Gradcheck of m's output w.r.t. x (when it requires a gradient) and every
 * parameter of m (f64, perturbed in place through the flat buffer); then
 * frees both (a context x is left to its context). */
static void gradcheck_and_free(cg_module *m, cg_tensor *x) {
    cg_tensor *in[16] = {x};
    int n = cg_module_nparams(m);
    assert_true(n < 16);
    for (int i = 0; i < n; i++) in[1 + i] = cg_module_param(m, i, NULL);
    cg_assert_gradcheck(module_fn, m, 1 + n, in);
    cg_tensor_free(x);
    cg_module_free(m);
}

/* A caller-owned f64 N(0, 1) leaf requiring a gradient. */
/* Gives every parameter of m values drawn from N(0.5, 1), so gradchecks do
 * not run at the constructor's special ones and zeros. */
static void randomise_params(cg_module *m, uint64_t seed) {
    cg_rng rng = seeded(seed);
    for (int i = 0; i < cg_module_nparams(m); i++)
        assert_int_equal(cg_init_normal_(cg_module_param(m, i, NULL), &rng, 0.5, 1), CG_OK);
}

static cg_tensor *input(cg_ctx *ctx, int n, const int64_t *shape, const double *v) {
    cg_tensor *t = cg_from_array(ctx, CG_F64, n, shape, v);
    assert_non_null(t);
    return t;
}

/* ---- Linear ----------------------------------------------------------------------- */
static const double lin_w[] = {1, 2, 3, 4, 5, 6};  /* [2, 3] */
static const double lin_x[] = {1, 0, -1, 2, 1, 0}; /* [2, 3] */

static void test_layers_linear_forward(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(1);
    cg_module *m = cg_nn_linear(&rng, CG_F64, 3, 2, true);
    assert_string_equal(cg_module_name(m), "Linear");
    set_state(m, "weight", lin_w);
    set_state(m, "bias", (const double[]){0.5, -1});
    /* x W^T: [[1-3, 4-6], [2+2, 8+5]] plus the bias per column. */
    cg_tensor *y = cg_module_forward(ctx, m, input(ctx, CG_SHAPE(2, 3), lin_x));
    assert_values(y, (const double[]){-1.5, -3, 4.5, 12}, 4, 1e-12);
    assert_state_dict(m, 2, (const entry[]){{"weight", true, "[2,3]"}, {"bias", true, "[2]"}});
    assert_int_equal(cg_module_numel(m), 8);
    cg_module_free(m);
}

static void test_layers_linear_no_bias(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(2);
    cg_module *m = cg_nn_linear(&rng, CG_F64, 3, 2, false);
    set_state(m, "weight", lin_w);
    cg_tensor *y = cg_module_forward(ctx, m, input(ctx, CG_SHAPE(2, 3), lin_x));
    assert_values(y, (const double[]){-2, -2, 4, 13}, 4, 1e-12);
    assert_state_dict(m, 1, (const entry[]){{"weight", true, "[2,3]"}});
    assert_null(cg_module_find(m, "bias"));
    assert_int_equal(cg_module_numel(m), 6);
    cg_module_free(m);
}

/* t's values have about this mean and standard deviation, and are not all
 * equal; returns their largest magnitude. */
static double assert_spread(const cg_tensor *t, double mean, double std, double tol) {
    int64_t n = cg_numel(t), equal = 0;
    double *v = malloc((size_t)n * sizeof *v), m = 0, sq = 0, big = 0;
    assert_int_equal(cg_copy_to_array(t, CG_F64, v), CG_OK);
    for (int64_t i = 0; i < n; i++) {
        m += v[i] / (double)n;
        big = fmax(big, fabs(v[i]));
        equal += v[i] == v[0];
    }
    for (int64_t i = 0; i < n; i++) sq += (v[i] - m) * (v[i] - m) / (double)n;
    free(v);
    assert_true(equal < n / 10);
    assert_float_equal(m, mean, tol);
    assert_float_equal(sqrt(sq), std, tol);
    return big;
}

/* PyTorch's init: weight and bias in +-1/sqrt(in), spread like a uniform
 * (std bound / sqrt(3)). The bias has only 256 values: looser tolerance. */
static void test_layers_linear_init_bounds(void **state) {
    (void)state;
    cg_rng rng = seeded(3);
    cg_module *m = cg_nn_linear(&rng, CG_F32, 64, 256, true);
    double bound = 1.0 / 8.0;
    assert_true(assert_spread(cg_module_find(m, "weight"), 0, bound / sqrt(3.0),
                              0.03 * bound) <= bound);
    assert_true(assert_spread(cg_module_find(m, "bias"), 0, bound / sqrt(3.0), 0.15 * bound) <=
                bound);
    cg_module_free(m);
}

static void test_layers_linear_gradcheck(void **state) {
    (void)state;
    for (int bias = 0; bias < 2; bias++) {
        cg_rng rng = seeded(4);
        cg_module *m = cg_nn_linear(&rng, CG_F64, 3, 2, bias);
        cg_tensor *x = seeded_leaf(5, CG_F64, CG_SHAPE(4, 3), 1);
        gradcheck_and_free(m, x);
    }
}

/* ---- activations ---------------------------------------------------------------------- */
static const double act_x[] = {-2, -0.5, 0.5, 1.5};

static double act_ref(cg_act act, double x) {
    switch (act) {
    case CG_ACT_RELU: return x > 0 ? x : 0;
    case CG_ACT_TANH: return tanh(x);
    case CG_ACT_SIGMOID: return 1 / (1 + exp(-x));
    case CG_ACT_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case CG_ACT_SILU: return x / (1 + exp(-x));
    case CG_ACT_LEAKY_RELU: return x > 0 ? x : 0.01 * x;
    case CG_ACT_ELU: return x > 0 ? x : exp(x) - 1;
    case CG_ACT_NONE: return x;
    }
    return NAN;
}

static const char *const act_names[] = {"Identity", "ReLU", "Tanh",      "Sigmoid",
                                        "GELU",     "SiLU", "LeakyReLU", "ELU"};

static void test_layers_activation_forward(void **state) {
    cg_ctx *ctx = *state;
    for (int a = CG_ACT_NONE; a <= CG_ACT_ELU; a++) {
        cg_module *m = cg_nn_activation((cg_act)a);
        assert_string_equal(cg_module_name(m), act_names[a]);
        assert_int_equal(cg_module_nstate(m), 0);
        assert_int_equal(cg_module_numel(m), 0);
        double want[4];
        for (int i = 0; i < 4; i++) want[i] = act_ref((cg_act)a, act_x[i]);
        cg_tensor *y = cg_module_forward(ctx, m, input(ctx, CG_SHAPE(2, 2), act_x));
        assert_values(y, want, 4, 1e-12);
        cg_module_free(m);
    }
}

static void test_layers_activation_gradcheck(void **state) {
    (void)state;
    for (int a = CG_ACT_NONE; a <= CG_ACT_ELU; a++) {
        cg_module *m = cg_nn_activation((cg_act)a);
        /* away from the kinks at 0 */
        cg_tensor *x =
            leaf(CG_F64, CG_SHAPE(2, 3), (const double[]){-1.3, -0.4, 0.7, 2.1, -2.5, 0.2});
        gradcheck_and_free(m, x);
    }
}

/* ---- Sequential and MLP ---------------------------------------------------------------- */
/* Linear(2, 2), ReLU, Linear(2, 1) with hand-set parameters. */
static cg_module *small_net(void) {
    cg_rng rng = seeded(6);
    cg_module *kids[] = {cg_nn_linear(&rng, CG_F64, 2, 2, true), cg_nn_activation(CG_ACT_RELU),
                         cg_nn_linear(&rng, CG_F64, 2, 1, true)};
    cg_module *m = cg_nn_sequential(3, kids);
    assert_non_null(m);
    set_state(m, "0.weight", (const double[]){1, -1, 2, 1});
    set_state(m, "0.bias", (const double[]){0, -1});
    set_state(m, "2.weight", (const double[]){3, -2});
    set_state(m, "2.bias", (const double[]){0.5});
    return m;
}

static void test_layers_sequential_forward(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = small_net();
    assert_string_equal(cg_module_name(m), "Sequential");
    /* row 0: h = [-1, 3] -> [0, 3] -> -6 + 0.5; row 1: h = [4, 4] -> 12 - 8 + 0.5 */
    cg_tensor *y =
        cg_module_forward(ctx, m, input(ctx, CG_SHAPE(2, 2), (const double[]){1, 2, 3, -1}));
    assert_values(y, (const double[]){-5.5, 4.5}, 2, 1e-12);
    assert_state_dict(m, 4,
                      (const entry[]){{"0.weight", true, "[2,2]"},
                                      {"0.bias", true, "[2]"},
                                      {"2.weight", true, "[1,2]"},
                                      {"2.bias", true, "[1]"}});
    cg_module_free(m);
}

static void test_layers_sequential_gradcheck(void **state) {
    (void)state;
    cg_module *m = small_net();
    cg_tensor *x = seeded_leaf(7, CG_F64, CG_SHAPE(3, 2), 1);
    gradcheck_and_free(m, x);
}

static void test_layers_mlp_state_dict(void **state) {
    (void)state;
    cg_rng rng = seeded(8);
    cg_module *m = cg_nn_mlp(&rng, CG_F32, 3, (const int64_t[]){784, 128, 10}, CG_ACT_RELU);
    assert_non_null(m);
    assert_state_dict(m, 4,
                      (const entry[]){{"0.weight", true, "[128,784]"},
                                      {"0.bias", true, "[128]"},
                                      {"2.weight", true, "[10,128]"},
                                      {"2.bias", true, "[10]"}});
    assert_int_equal(cg_module_numel(m), 784 * 128 + 128 + 128 * 10 + 10);
    const char *name = NULL;
    assert_ptr_equal(cg_module_param(m, 2, &name), cg_module_find(m, "2.weight"));
    assert_string_equal(name, "2.weight");
    cg_module_free(m);
    /* no activation: the Linears are adjacent */
    m = cg_nn_mlp(&rng, CG_F32, 3, (const int64_t[]){4, 3, 2}, CG_ACT_NONE);
    assert_state_dict(m, 4,
                      (const entry[]){{"0.weight", true, "[3,4]"},
                                      {"0.bias", true, "[3]"},
                                      {"1.weight", true, "[2,3]"},
                                      {"1.bias", true, "[2]"}});
    cg_module_free(m);
}

static void test_layers_mlp_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(9);
    cg_module *m = cg_nn_mlp(&rng, CG_F64, 4, (const int64_t[]){3, 4, 3, 2}, CG_ACT_TANH);
    assert_int_equal(cg_module_nparams(m), 6);
    cg_tensor *x = seeded_leaf(10, CG_F64, CG_SHAPE(2, 3), 1);
    gradcheck_and_free(m, x);
}

/* ---- Dropout --------------------------------------------------------------------------------
 */
static void test_layers_dropout_train_and_eval(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(11);
    cg_module *m = cg_nn_dropout(0.25, &rng);
    assert_string_equal(cg_module_name(m), "Dropout");
    assert_int_equal(cg_module_nstate(m), 0);
    cg_tensor *x = cg_full(ctx, CG_F64, CG_SHAPE(2000), 3.0);
    double *v = malloc(2000 * sizeof *v);
    assert_true(cg_module_is_training(m));
    assert_int_equal(cg_copy_to_array(cg_module_forward(ctx, m, x), CG_F64, v), CG_OK);
    int zeros = 0;
    for (int i = 0; i < 2000; i++) {
        if (v[i] == 0)
            zeros++;
        else
            assert_float_equal(v[i], 3.0 / 0.75, 1e-12); /* kept ones scaled by 1/(1-p) */
    }
    assert_in_range(zeros, 400, 600); /* 500 expected, std ~19 */
    cg_module_train(m, false);
    assert_false(cg_module_is_training(m));
    assert_int_equal(cg_copy_to_array(cg_module_forward(ctx, m, x), CG_F64, v), CG_OK);
    for (int i = 0; i < 2000; i++) assert_true(v[i] == 3.0);
    free(v);
    cg_module_free(m);
    /* p 0 never draws: no rng needed, identity also in training */
    m = cg_nn_dropout(0.0, NULL);
    assert_non_null(m);
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
    cg_rng_seed(r->rng, 12);
    return cg_module_forward(ctx, r->m, in[0]);
}

static void test_layers_dropout_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(12);
    reseeded r = {cg_nn_dropout(0.5, &rng), &rng};
    cg_tensor *x = seeded_leaf(13, CG_F64, CG_SHAPE(3, 4), 1);
    cg_assert_gradcheck(reseeded_fn, &r, 1, &x);
    cg_module_train(r.m, false);
    gradcheck_and_free(r.m, x);
}

static void test_layers_dropout_errors(void **state) {
    (void)state;
    cg_rng rng = seeded(14);
    const double bad[] = {1.0, -0.1, 1.5, NAN};
    for (int i = 0; i < 4; i++) {
        assert_null(cg_nn_dropout(bad[i], &rng));
        assert_error(CG_ERR_ARG, "cg_nn_dropout");
    }
    assert_null(cg_nn_dropout(0.3, NULL));
    assert_error(CG_ERR_ARG, "NULL rng");
}

/* ---- LayerNorm ----------------------------------------------------------------------------
 */
static void test_layers_layernorm_forward(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = cg_nn_layernorm(CG_F64, 3, EPS);
    assert_string_equal(cg_module_name(m), "LayerNorm");
    assert_state_dict(m, 2, (const entry[]){{"weight", true, "[3]"}, {"bias", true, "[3]"}});
    /* rows: mean 2, biased var 2/3; mean 4, var 8/3 */
    cg_tensor *x = input(ctx, CG_SHAPE(2, 3), (const double[]){1, 2, 3, 2, 4, 6});
    double s0 = 1 / sqrt(2.0 / 3 + EPS), s1 = 1 / sqrt(8.0 / 3 + EPS);
    assert_values(cg_module_forward(ctx, m, x),
                  (const double[]){-s0, 0, s0, -2 * s1, 0, 2 * s1}, 6, 1e-12);
    set_state(m, "weight", (const double[]){1, 2, -1});
    set_state(m, "bias", (const double[]){0, 0.5, 1});
    assert_values(cg_module_forward(ctx, m, x),
                  (const double[]){-s0, 0.5, 1 - s0, -2 * s1, 0.5, 1 - 2 * s1}, 6, 1e-12);
    cg_module_free(m);
}

static void test_layers_layernorm_gradcheck(void **state) {
    (void)state;
    cg_module *m = cg_nn_layernorm(CG_F64, 4, EPS);
    randomise_params(m, 15);
    cg_tensor *x = seeded_leaf(16, CG_F64, CG_SHAPE(2, 3, 4), 1);
    gradcheck_and_free(m, x);
}

static void test_layers_layernorm_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = cg_nn_layernorm(CG_F64, 4, EPS);
    assert_null(cg_module_forward(ctx, m, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 5))));
    assert_error(CG_ERR_SHAPE, "cg_layer_norm: input [2,5]");
    assert_null(cg_module_forward(ctx, m, cg_scalar(ctx, CG_F64, 1)));
    assert_error(CG_ERR_SHAPE, "normalized shape [4]");
    cg_module_free(m);
    assert_null(cg_nn_layernorm(CG_F64, 0, EPS));
    assert_error(CG_ERR_ARG, "cg_nn_layernorm");
    assert_null(cg_nn_layernorm(CG_I64, 3, EPS));
    assert_error(CG_ERR_ARG, "dtype i64");
    assert_null(cg_nn_layernorm(CG_F32, 3, -1));
    assert_error(CG_ERR_ARG, "eps -1");
}

/* Without a context no graph can be made: m's forward on x [1, 2] is
 * refused while its parameters require gradients; once they do not, the
 * result is the caller's and holds want. Frees m. */
static void check_without_context(cg_module *m, const char *op, const double *xv,
                                  const double *want) {
    cg_tensor *x = cg_from_array(NULL, CG_F64, CG_SHAPE(1, 2), xv);
    assert_null(cg_module_forward(NULL, m, x));
    assert_error(CG_ERR_STATE, op);
    for (int i = 0; i < cg_module_nparams(m); i++)
        assert_int_equal(cg_set_requires_grad(cg_module_param(m, i, NULL), false), CG_OK);
    cg_tensor *y = cg_module_forward(NULL, m, x);
    assert_values(y, want, 2, 1e-12);
    cg_tensor_free(y);
    cg_tensor_free(x);
    cg_module_free(m);
}

static void test_layers_layernorm_without_context(void **state) {
    (void)state;
    double s = 1 / sqrt(1 + EPS); /* mean 2, var 1 */
    check_without_context(cg_nn_layernorm(CG_F64, 2, EPS), "cg_module_forward: LayerNorm",
                          (const double[]){1, 3}, (const double[]){-s, s});
}

/* ---- BatchNorm1d ------------------------------------------------------------------------- */
/* want[n][c][l] = (x - mean[c]) / sqrt(var[c] + eps) * w[c] + b[c]. */
static void bn_expect(const double *x, int n, int c, int l, const double *mean,
                      const double *var, const double *w, const double *b, double *want) {
    for (int i = 0; i < n * c * l; i++) {
        int ch = i / l % c;
        want[i] = (x[i] - mean[ch]) / sqrt(var[ch] + EPS) * w[ch] + b[ch];
    }
}

static const double bn_w[] = {2, 0.5}, bn_b[] = {1, -1};

static cg_module *bn_module(void) {
    cg_module *m = cg_nn_batchnorm1d(CG_F64, 2, EPS, 0.1);
    assert_non_null(m);
    set_state(m, "weight", bn_w);
    set_state(m, "bias", bn_b);
    return m;
}

/* [N 4, C 2]: channel 0 is 1, 2, 3, 6 (mean 3, biased var 3.5, unbiased
 * 14/3), channel 1 ten times that. */
static const double bn_x1[] = {1, 10, 2, 20, 3, 30, 6, 60};

static void test_layers_batchnorm_train_forward(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = bn_module();
    assert_string_equal(cg_module_name(m), "BatchNorm1d");
    double want[8];
    bn_expect(bn_x1, 4, 2, 1, (const double[]){3, 30}, (const double[]){3.5, 350}, bn_w, bn_b,
              want);
    assert_values(cg_module_forward(ctx, m, input(ctx, CG_SHAPE(4, 2), bn_x1)), want, 8, 1e-9);
    cg_module_free(m);
}

/* Two training steps with momentum 0.1 (running_var from the unbiased batch
 * variance), then eval normalises with the running statistics. */
static void test_layers_batchnorm_running_stats(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = bn_module();
    assert_values(cg_module_find(m, "running_mean"), (const double[]){0, 0}, 2, 0);
    assert_values(cg_module_find(m, "running_var"), (const double[]){1, 1}, 2, 0);
    assert_non_null(cg_module_forward(ctx, m, input(ctx, CG_SHAPE(4, 2), bn_x1)));
    double rv1[] = {0.9 + 0.1 * 14 / 3, 0.9 + 0.1 * 1400 / 3};
    assert_values(cg_module_find(m, "running_mean"), (const double[]){0.3, 3}, 2, 1e-12);
    assert_values(cg_module_find(m, "running_var"), rv1, 2, 1e-9);
    /* channel 0: 0, 2, 4, -2 (mean 1, unbiased 20/3); channel 1: 0, -4, 4, 0
     * (mean 0, unbiased 32/3) */
    const double x2[] = {0, 0, 2, -4, 4, 4, -2, 0};
    assert_non_null(cg_module_forward(ctx, m, input(ctx, CG_SHAPE(4, 2), x2)));
    double rm[] = {0.9 * 0.3 + 0.1 * 1, 0.9 * 3};
    double rv[] = {0.9 * rv1[0] + 0.1 * 20 / 3, 0.9 * rv1[1] + 0.1 * 32 / 3};
    assert_values(cg_module_find(m, "running_mean"), rm, 2, 1e-12);
    assert_values(cg_module_find(m, "running_var"), rv, 2, 1e-9);
    cg_tensor *count = cg_module_find(m, "num_batches_tracked");
    assert_int_equal(cg_dtype_of(count), CG_I64);
    assert_int_equal(cg_ndim(count), 0);
    assert_float_equal(cg_item(count), 2, 0);
    /* eval: running statistics, which stay as they are; one row is enough */
    cg_module_train(m, false);
    double want[8];
    bn_expect(x2, 4, 2, 1, rm, rv, bn_w, bn_b, want);
    assert_values(cg_module_forward(ctx, m, input(ctx, CG_SHAPE(4, 2), x2)), want, 8, 1e-9);
    assert_values(cg_module_forward(ctx, m, input(ctx, CG_SHAPE(1, 2), x2)), want, 2, 1e-9);
    assert_values(cg_module_find(m, "running_mean"), rm, 2, 1e-12);
    assert_float_equal(cg_item(count), 2, 0);
    cg_module_free(m);
}

/* [N 2, C 2, L 3]: statistics over N and L. Channel 0 holds 1..6 (mean
 * 3.5, biased var 17.5/6, unbiased 3.5), channel 1 0,0,0,2,2,2 (mean 1,
 * biased 1, unbiased 1.2). */
static void test_layers_batchnorm_3d(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = bn_module();
    const double x[] = {1, 2, 3, 0, 0, 0, 4, 5, 6, 2, 2, 2};
    double want[12];
    bn_expect(x, 2, 2, 3, (const double[]){3.5, 1}, (const double[]){17.5 / 6, 1}, bn_w, bn_b,
              want);
    assert_values(cg_module_forward(ctx, m, input(ctx, CG_SHAPE(2, 2, 3), x)), want, 12, 1e-9);
    double rm[] = {0.35, 0.1}, rv[] = {0.9 + 0.35, 0.9 + 0.12};
    assert_values(cg_module_find(m, "running_mean"), rm, 2, 1e-12);
    assert_values(cg_module_find(m, "running_var"), rv, 2, 1e-12);
    cg_module_train(m, false);
    bn_expect(x, 2, 2, 3, rm, rv, bn_w, bn_b, want);
    assert_values(cg_module_forward(ctx, m, input(ctx, CG_SHAPE(2, 2, 3), x)), want, 12, 1e-9);
    cg_module_free(m);
}

/* Training mode (batch statistics) and eval mode (running ones), 2-D and
 * 3-D input. The running statistics change on every training forward but
 * do not enter the training output. */
static void test_layers_batchnorm_gradcheck(void **state) {
    (void)state;
    for (int mode = 0; mode < 4; mode++) {
        cg_module *m = cg_nn_batchnorm1d(CG_F64, 3, EPS, 0.1);
        randomise_params(m, 17);
        cg_module_train(m, mode < 2);
        if (mode >= 2) {
            set_state(m, "running_mean", (const double[]){0.5, -1, 2});
            set_state(m, "running_var", (const double[]){0.5, 2, 1.5});
        }
        cg_tensor *x = mode % 2 ? seeded_leaf(18, CG_F64, CG_SHAPE(2, 3, 4), 1)
                                : seeded_leaf(19, CG_F64, CG_SHAPE(5, 3), 1);
        gradcheck_and_free(m, x);
    }
}

/* PyTorch's order: weight, bias, running_mean, running_var,
 * num_batches_tracked, here as child 1 of a Sequential. */
static void test_layers_batchnorm_state_dict(void **state) {
    (void)state;
    cg_rng rng = seeded(20);
    cg_module *kids[] = {cg_nn_linear(&rng, CG_F32, 3, 4, true),
                         cg_nn_batchnorm1d(CG_F32, 4, EPS, 0.1)};
    cg_module *m = cg_nn_sequential(2, kids);
    assert_state_dict(m, 7,
                      (const entry[]){{"0.weight", true, "[4,3]"},
                                      {"0.bias", true, "[4]"},
                                      {"1.weight", true, "[4]"},
                                      {"1.bias", true, "[4]"},
                                      {"1.running_mean", false, "[4]"},
                                      {"1.running_var", false, "[4]"},
                                      {"1.num_batches_tracked", false, "[]"}});
    assert_int_equal(cg_module_numel(m), 12 + 4 + 4 + 4);
    assert_values(cg_module_find(m, "1.weight"), (const double[]){1, 1, 1, 1}, 4, 0);
    assert_values(cg_module_find(m, "1.bias"), (const double[]){0, 0, 0, 0}, 4, 0);
    assert_false(cg_requires_grad(cg_module_find(m, "1.running_mean")));
    cg_module_free(m);
}

static void test_layers_batchnorm_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = cg_nn_batchnorm1d(CG_F64, 3, EPS, 0.1);
    cg_tensor *one = cg_ones(ctx, CG_F64, CG_SHAPE(1, 3));
    assert_null(cg_module_forward(ctx, m, one));
    assert_error(CG_ERR_SHAPE, "expected more than 1 value per channel when training");
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_F64, CG_SHAPE(1, 3, 1))));
    assert_error(CG_ERR_SHAPE, "[1,3,1]");
    assert_float_equal(cg_item(cg_module_find(m, "num_batches_tracked")), 0, 0);
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_F64, CG_SHAPE(4, 2))));
    assert_error(CG_ERR_SHAPE, "cg_batchnorm1d: input [4,2]: expected [N, 3]");
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_F64, CG_SHAPE(3))));
    assert_error(CG_ERR_SHAPE, "[3]");
    assert_null(cg_module_forward(ctx, m, cg_ones(ctx, CG_F64, CG_SHAPE(2, 3, 2, 2))));
    assert_error(CG_ERR_SHAPE, "[2,3,2,2]");
    cg_module_train(m, false); /* one value per channel is fine in eval */
    assert_values(cg_module_forward(ctx, m, one),
                  (const double[]){1 / sqrt(1 + EPS), 1 / sqrt(1 + EPS), 1 / sqrt(1 + EPS)}, 3,
                  1e-12);
    cg_module_free(m);
    assert_null(cg_nn_batchnorm1d(CG_F64, 0, EPS, 0.1));
    assert_error(CG_ERR_ARG, "cg_nn_batchnorm1d: features 0");
    assert_null(cg_nn_batchnorm1d(CG_F64, 3, EPS, 1.5));
    assert_error(CG_ERR_ARG, "momentum 1.5");
    assert_null(cg_nn_batchnorm1d(CG_I64, 3, EPS, 0.1));
    assert_error(CG_ERR_ARG, "dtype i64");
}

/* Eval needs no graph once the parameters do not require gradients: the
 * running statistics (mean 0, var 1 when fresh) are plain buffers. */
static void test_layers_batchnorm_without_context(void **state) {
    (void)state;
    cg_module *m = bn_module();
    cg_module_train(m, false);
    double s = 1 / sqrt(1 + EPS);
    check_without_context(m, "cg_module_forward: BatchNorm1d", (const double[]){3, 4},
                          (const double[]){3 * s * 2 + 1, 4 * s * 0.5 - 1});
}

/* ---- Embedding ----------------------------------------------------------------------------
 */
static void test_layers_embedding_forward(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(21);
    cg_module *m = cg_nn_embedding(&rng, CG_F64, 4, 2);
    assert_string_equal(cg_module_name(m), "Embedding");
    assert_state_dict(m, 1, (const entry[]){{"weight", true, "[4,2]"}});
    set_state(m, "weight", (const double[]){0, 1, 2, 3, 4, 5, 6, 7});
    cg_tensor *idx = cg_from_array(ctx, CG_I64, CG_SHAPE(2, 2), (const int64_t[]){2, 0, 3, 3});
    cg_tensor *y = cg_module_forward(ctx, m, idx);
    assert_int_equal(cg_ndim(y), 3);
    assert_values(y, (const double[]){4, 5, 0, 1, 6, 7, 6, 7}, 8, 0);
    /* the gradient counts how often each row was used */
    assert_int_equal(cg_backward(cg_sum(ctx, y, NULL, 0, false)), CG_OK);
    assert_values(cg_grad_of(cg_module_param(m, 0, NULL)),
                  (const double[]){1, 1, 0, 0, 1, 1, 2, 2}, 8, 0);
    cg_module_free(m);
}

static void test_layers_embedding_init_normal(void **state) {
    (void)state;
    cg_rng rng = seeded(22);
    cg_module *m = cg_nn_embedding(&rng, CG_F32, 200, 50);
    assert_true(assert_spread(cg_module_find(m, "weight"), 0, 1, 0.05) > 3); /* tails reached */
    cg_module_free(m);
}

static void test_layers_embedding_gradcheck(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(23);
    cg_module *m = cg_nn_embedding(&rng, CG_F64, 5, 3);
    const int64_t idx[] = {4, 0, 4, 1, 2, 4}; /* row 4 three times, row 3 never */
    gradcheck_and_free(m, cg_from_array(ctx, CG_I64, CG_SHAPE(2, 3), idx));
}

static void test_layers_embedding_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(24);
    cg_module *m = cg_nn_embedding(&rng, CG_F64, 4, 2);
    assert_null(cg_module_forward(
        ctx, m, cg_from_array(ctx, CG_I64, CG_SHAPE(2), (const int64_t[]){1, 4})));
    assert_error(CG_ERR_INDEX, "index 4");
    assert_null(cg_module_forward(ctx, m, cg_zeros(ctx, CG_F64, CG_SHAPE(2))));
    assert_error(CG_ERR_DTYPE, "i64");
    cg_module_free(m);
    assert_null(cg_nn_embedding(&rng, CG_F64, 0, 2));
    assert_error(CG_ERR_ARG, "cg_nn_embedding: num 0");
    assert_null(cg_nn_embedding(NULL, CG_F64, 4, 2));
    assert_error(CG_ERR_ARG, "rng");
    assert_null(cg_nn_embedding(&rng, CG_I64, 4, 2));
    assert_error(CG_ERR_ARG, "dtype i64");
}

/* ---- train / eval through a tree --------------------------------------------------------- */
static void test_layers_train_eval_recursion(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(25);
    cg_module *kids[] = {cg_nn_linear(&rng, CG_F64, 3, 4, true),
                         cg_nn_batchnorm1d(CG_F64, 4, EPS, 0.1), cg_nn_dropout(0.5, &rng)};
    cg_module *m = cg_nn_sequential(3, kids);
    cg_tensor *count = cg_module_find(m, "1.num_batches_tracked");
    cg_tensor *x = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(5, 3), 0, 1);
    cg_module_train(m, false);
    assert_false(cg_module_is_training(m));
    /* eval: Linear, then x / sqrt(1 + eps) (fresh running stats), no dropout */
    cg_tensor *y = cg_module_forward(ctx, m, x);
    cg_tensor *want = cg_div_scalar(
        ctx, cg_linear(ctx, x, cg_module_find(m, "0.weight"), cg_module_find(m, "0.bias")),
        sqrt(1 + EPS));
    double got[20], w[20];
    assert_int_equal(cg_copy_to_array(y, CG_F64, got), CG_OK);
    assert_int_equal(cg_copy_to_array(want, CG_F64, w), CG_OK);
    for (int i = 0; i < 20; i++) assert_float_equal(got[i], w[i], 1e-12);
    assert_float_equal(cg_item(count), 0, 0);
    /* back to training: batch norm counts, dropout zeroes about half */
    cg_module_train(m, true);
    assert_true(cg_module_is_training(m));
    assert_int_equal(cg_copy_to_array(cg_module_forward(ctx, m, x), CG_F64, got), CG_OK);
    assert_float_equal(cg_item(count), 1, 0);
    int zeros = 0;
    for (int i = 0; i < 20; i++) zeros += got[i] == 0;
    assert_in_range(zeros, 2, 18);
    cg_module_free(m);
}

/* ---- flat buffers ------------------------------------------------------------------------ */
static cg_module *flat_net(void) {
    cg_rng rng = seeded(26);
    return cg_nn_mlp(&rng, CG_F64, 3, (const int64_t[]){3, 4, 2}, CG_ACT_TANH);
}

/* The parameters are consecutive slices of the flat buffer, in state order. */
static void test_layers_flat_params(void **state) {
    (void)state;
    cg_module *m = flat_net();
    cg_tensor *flat = cg_module_flat_params(m);
    assert_int_equal(cg_module_numel(m), 12 + 4 + 8 + 2);
    assert_int_equal(cg_ndim(flat), 1);
    assert_int_equal(cg_numel(flat), cg_module_numel(m));
    double *base = cg_data(flat);
    for (int64_t i = 0; i < cg_numel(flat); i++) base[i] = 0.5 * (double)i;
    int64_t off = 0;
    for (int p = 0; p < cg_module_nparams(m); p++) {
        cg_tensor *t = cg_module_param(m, p, NULL);
        assert_ptr_equal(cg_data(t), base + off);
        double want[12];
        for (int64_t i = 0; i < cg_numel(t); i++) want[i] = 0.5 * (double)(off + i);
        assert_values(t, want, cg_numel(t), 0);
        off += cg_numel(t);
    }
    assert_int_equal(off, cg_module_numel(m));
    cg_module_free(m);
}

/* backward accumulates into the flat gradient buffer at each parameter's
 * offset; zero_grad clears it. */
static void test_layers_flat_grads(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = flat_net();
    cg_rng rng = seeded(27);
    cg_tensor *x = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(5, 3), 0, 1);
    assert_int_equal(cg_backward(cg_sum(ctx, cg_module_forward(ctx, m, x), NULL, 0, false)),
                     CG_OK);
    cg_tensor *flat = cg_module_flat_grads(m);
    assert_int_equal(cg_numel(flat), cg_module_numel(m));
    const double *g = cg_data(flat);
    int64_t off = 0, nonzero = 0;
    for (int p = 0; p < cg_module_nparams(m); p++) {
        cg_tensor *grad = cg_grad_of(cg_module_param(m, p, NULL));
        assert_ptr_equal(cg_data(grad), g + off);
        assert_values(grad, g + off, cg_numel(grad), 0);
        off += cg_numel(grad);
    }
    for (int64_t i = 0; i < off; i++) nonzero += g[i] != 0;
    assert_true(nonzero > off / 2);
    cg_module_zero_grad(m);
    for (int64_t i = 0; i < off; i++) assert_true(g[i] == 0);
    assert_values(cg_grad_of(cg_module_find(m, "2.bias")), (const double[]){0, 0}, 2, 0);
    cg_module_free(m);
}

/* ---- errors --------------------------------------------------------------------------------
 */
static void test_layers_module_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(28);
    cg_module *m = cg_nn_linear(&rng, CG_F64, 3, 2, true);
    assert_null(cg_module_forward(ctx, NULL, cg_zeros(ctx, CG_F64, CG_SHAPE(1, 3))));
    assert_error(CG_ERR_ARG, "module is NULL");
    assert_null(cg_module_forward(ctx, m, NULL));
    assert_error(CG_ERR_ARG, "cg_module_forward");
    assert_null(cg_module_forward(ctx, m, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 5))));
    assert_error(CG_ERR_SHAPE, "[2,5]");
    assert_null(cg_module_forward(NULL, m, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3))));
    assert_error(CG_ERR_STATE, "cg_module_forward: Linear: the input or a parameter requires");
    assert_null(cg_module_find(m, "nope"));
    assert_null(cg_module_state(m, 2, NULL, NULL));
    assert_null(cg_module_param(m, -1, NULL));
    cg_module_free(m);
    cg_module_free(NULL);
    cg_module_train(NULL, false);
    cg_module_zero_grad(NULL);
    assert_false(cg_module_is_training(NULL));
    assert_string_equal(cg_module_name(NULL), "NULL");
    assert_int_equal(cg_module_nstate(NULL), 0);
    assert_int_equal(cg_module_nparams(NULL), 0);
    assert_int_equal(cg_module_numel(NULL), 0);
    assert_null(cg_module_flat_params(NULL));
    assert_null(cg_module_flat_grads(NULL));
}

static void test_layers_constructor_errors(void **state) {
    (void)state;
    cg_rng rng = seeded(29);
    assert_null(cg_nn_linear(&rng, CG_F32, 0, 2, true));
    assert_error(CG_ERR_ARG, "cg_nn_linear: in 0");
    assert_null(cg_nn_linear(NULL, CG_F32, 3, 2, true));
    assert_error(CG_ERR_ARG, "rng");
    assert_null(cg_nn_linear(&rng, CG_I64, 3, 2, true));
    assert_error(CG_ERR_ARG, "dtype i64");
    assert_null(cg_nn_activation((cg_act)99));
    assert_error(CG_ERR_ARG, "cg_nn_activation");
    assert_null(cg_nn_mlp(&rng, CG_F32, 1, (const int64_t[]){3}, CG_ACT_RELU));
    assert_error(CG_ERR_ARG, "cg_nn_mlp");
    assert_null(cg_nn_mlp(&rng, CG_F32, 3, (const int64_t[]){3, 0, 2}, CG_ACT_RELU));
    assert_error(CG_ERR_ARG,
                 "cg_nn_mlp: in 3, out 0"); /* the function called, not an inner one */
    /* a container owns its children also when it fails: nothing leaks */
    cg_module *kids[] = {cg_nn_linear(&rng, CG_F32, 3, 2, true), NULL};
    assert_null(cg_nn_sequential(2, kids));
    assert_error(CG_ERR_ARG, "cg_nn_sequential");
    /* mixed dtypes are a model (as in PyTorch) without flat buffers */
    cg_module *mixed[] = {cg_nn_linear(&rng, CG_F32, 3, 2, true),
                          cg_nn_linear(&rng, CG_F64, 2, 2, true)};
    cg_module *m = cg_nn_sequential(2, mixed);
    assert_non_null(m);
    assert_null(cg_module_flat_params(m));
    assert_error(CG_ERR_STATE, "differ in dtype");
    cg_module_free(m);
}

/* A test that gets a fresh context in *state. */
#define CTX_TEST(f) cmocka_unit_test_setup_teardown(f, ctx_setup, ctx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        CTX_TEST(test_layers_linear_forward),
        CTX_TEST(test_layers_linear_no_bias),
        cmocka_unit_test(test_layers_linear_init_bounds),
        cmocka_unit_test(test_layers_linear_gradcheck),
        CTX_TEST(test_layers_activation_forward),
        cmocka_unit_test(test_layers_activation_gradcheck),
        CTX_TEST(test_layers_sequential_forward),
        cmocka_unit_test(test_layers_sequential_gradcheck),
        cmocka_unit_test(test_layers_mlp_state_dict),
        cmocka_unit_test(test_layers_mlp_gradcheck),
        CTX_TEST(test_layers_dropout_train_and_eval),
        cmocka_unit_test(test_layers_dropout_gradcheck),
        cmocka_unit_test(test_layers_dropout_errors),
        CTX_TEST(test_layers_layernorm_forward),
        cmocka_unit_test(test_layers_layernorm_gradcheck),
        CTX_TEST(test_layers_layernorm_errors),
        cmocka_unit_test(test_layers_layernorm_without_context),
        CTX_TEST(test_layers_batchnorm_train_forward),
        CTX_TEST(test_layers_batchnorm_running_stats),
        CTX_TEST(test_layers_batchnorm_3d),
        cmocka_unit_test(test_layers_batchnorm_gradcheck),
        cmocka_unit_test(test_layers_batchnorm_state_dict),
        CTX_TEST(test_layers_batchnorm_errors),
        cmocka_unit_test(test_layers_batchnorm_without_context),
        CTX_TEST(test_layers_embedding_forward),
        cmocka_unit_test(test_layers_embedding_init_normal),
        CTX_TEST(test_layers_embedding_gradcheck),
        CTX_TEST(test_layers_embedding_errors),
        CTX_TEST(test_layers_train_eval_recursion),
        cmocka_unit_test(test_layers_flat_params),
        CTX_TEST(test_layers_flat_grads),
        CTX_TEST(test_layers_module_errors),
        cmocka_unit_test(test_layers_constructor_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
