/* nn end to end: short training runs on generated data whose loss must fall
 * below a stated threshold, and the flat buffers seen from outside. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "testutil.h"

#define N 240 /* points, 3 classes of 80 */

/* Three Gaussian blobs in 2-D, centred on a triangle of radius 2, sd 0.5. */
static void blobs(cg_rng *rng, float *x, int64_t *y) {
    for (int i = 0; i < N; i++) {
        int c = i % 3;
        double a = 2.0944 * c;
        x[2 * i] = (float)(2 * cos(a) + 0.5 * cg_rng_normal(rng));
        x[2 * i + 1] = (float)(2 * sin(a) + 0.5 * cg_rng_normal(rng));
        y[i] = c;
    }
}

static double accuracy(cg_ctx *ctx, cg_module *m, cg_tensor *x, cg_tensor *y) {
    cg_no_grad_push(ctx);
    cg_tensor *pred = cg_argmax(ctx, cg_module_forward(ctx, m, x), 1, false);
    cg_tensor *hit = cg_eq(ctx, pred, y);
    double acc = cg_item(cg_mean(ctx, cg_cast(ctx, hit, CG_F64), NULL, 0, false));
    cg_no_grad_pop(ctx);
    return acc;
}

/* 2-16-3 relu MLP, cross-entropy, Adam 0.05, full batch: the loss must fall
 * from about log(3) = 1.10 to below 0.15 in 150 steps. */
static void test_train_mlp_blobs_loss_falls(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 7);
    float xs[2 * N];
    int64_t ys[N];
    blobs(&rng, xs, ys);
    cg_tensor *x = cg_from_array(NULL, CG_F32, CG_SHAPE(N, 2), xs);
    cg_tensor *y = cg_from_array(NULL, CG_I64, CG_SHAPE(N), ys);
    cg_module *m = cg_nn_mlp(&rng, CG_F32, 3, (const int64_t[]){2, 16, 3}, CG_ACT_RELU);
    cg_adam_opts o = cg_adam_defaults(0.05);
    cg_optim *opt = cg_adam_new(m, &o);
    assert_non_null(opt);
    cg_ctx *ctx = cg_ctx_new();
    double first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        cg_optim_zero_grad(opt);
        cg_tensor *loss = cg_cross_entropy(ctx, cg_module_forward(ctx, m, x), y, CG_MEAN);
        assert_non_null(loss);
        last = cg_item(loss);
        if (step == 0) first = last;
        assert_int_equal(cg_backward(loss), CG_OK);
        assert_int_equal(cg_optim_step(opt), CG_OK);
        cg_ctx_reset(ctx);
    }
    assert_true(first > 0.9);
    assert_true(last < 0.15);
    assert_true(accuracy(ctx, m, x, y) > 0.95);
    cg_ctx_free(ctx);
    cg_optim_free(opt);
    cg_module_free(m);
    cg_tensor_free(x);
    cg_tensor_free(y);
}

/* Linear regression y = 3x - 1 with SGD on MSE: loss below 1e-4 in 300 steps. */
static void test_train_linear_regression_sgd(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 3);
    cg_tensor *line = cg_linspace(NULL, CG_F64, -1, 1, 16);
    cg_tensor *x = cg_view(NULL, line, CG_SHAPE(16, 1));
    cg_tensor_free(line); /* the view keeps the storage */
    cg_ctx *ctx = cg_ctx_new();
    cg_tensor *y =
        cg_add_scalar(NULL, cg_mul_scalar(ctx, x, 3), -1); /* no graph: x needs none */
    cg_module *m = cg_nn_linear(&rng, CG_F64, 1, 1, true);
    cg_sgd_opts o = cg_sgd_defaults(0.1);
    cg_optim *opt = cg_sgd_new(m, &o);
    double loss = 1;
    for (int step = 0; step < 300; step++) {
        cg_optim_zero_grad(opt);
        cg_tensor *l = cg_mse_loss(ctx, cg_module_forward(ctx, m, x), y, CG_MEAN);
        loss = cg_item(l);
        assert_int_equal(cg_backward(l), CG_OK);
        cg_optim_step(opt);
        cg_ctx_reset(ctx);
    }
    assert_true(loss < 1e-4);
    assert_float_equal(cg_item(cg_module_find(m, "weight")), 3, 1e-2);
    assert_float_equal(cg_item(cg_module_find(m, "bias")), -1, 1e-2);
    cg_ctx_free(ctx);
    cg_optim_free(opt);
    cg_module_free(m);
    cg_tensor_free(y);
    cg_tensor_free(x);
}

/* Gradients land in the flat buffer at each parameter's offset, in state order. */
static void test_train_flat_grads_match_params(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 5);
    cg_module *m = cg_nn_mlp(&rng, CG_F64, 3, (const int64_t[]){4, 5, 3}, CG_ACT_TANH);
    cg_ctx *ctx = cg_ctx_new();
    cg_tensor *x = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(2, 4), 0, 1);
    cg_tensor *loss = cg_sum(ctx, cg_square(ctx, cg_module_forward(ctx, m, x)), NULL, 0, false);
    assert_int_equal(cg_backward(loss), CG_OK);
    const double *flat = cg_data(cg_module_flat_grads(m));
    int64_t off = 0;
    for (int i = 0; i < cg_module_nparams(m); i++) {
        cg_tensor *p = cg_module_param(m, i, NULL);
        double g[20];
        cg_copy_to_array(cg_grad_of(p), CG_F64, g);
        for (int64_t k = 0; k < cg_numel(p); k++) assert_float_equal(flat[off + k], g[k], 0);
        assert_ptr_equal(cg_data(p), (const double *)cg_data(cg_module_flat_params(m)) + off);
        off += cg_numel(p);
    }
    assert_int_equal(off, cg_module_numel(m));
    cg_module_zero_grad(m);
    assert_float_equal(
        cg_item(cg_sum(ctx, cg_abs(ctx, cg_module_flat_grads(m)), NULL, 0, false)), 0, 0);
    cg_ctx_free(ctx);
    cg_module_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_mlp_blobs_loss_falls),
        cmocka_unit_test(test_train_linear_regression_sgd),
        cmocka_unit_test(test_train_flat_grads_match_params),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
