/* The convolutional layers (nn/conv.c): state_dict names and shapes as
 * PyTorch's, default initialisation bounds, forward equal to the functional
 * ops, PyTorch's printed form, gradchecks through the layers, errors, and a
 * short CNN training run on generated images whose loss must fall. */
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

static cg_tensor *module_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return cg_module_forward(ctx, user, in[0]);
}

/* The printed tree of m, as cg_module_print writes it; free the result. */
static char *printed(const cg_module *m) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(cg_module_fprint(f, m), CG_OK);
    fclose(f);
    return text;
}

/* Every element of t within [-bound, bound], and not all in one half of it. */
static void assert_uniform_within(const cg_tensor *t, double bound) {
    int64_t n = cg_numel(t);
    double *v = malloc(sizeof *v * (size_t)n), lo = INFINITY, hi = -INFINITY;
    assert_int_equal(cg_copy_to_array(t, CG_F64, v), CG_OK);
    for (int64_t i = 0; i < n; i++) lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    free(v);
    assert_true(lo >= -bound && hi <= bound && lo < -bound / 4 && hi > bound / 4);
}

/* ---- Conv2d, Conv1d, ConvTranspose2d ------------------------------------------------ */
static void test_cnn_conv2d_state_and_init(void **state) {
    (void)state;
    cg_rng rng = seeded(1);
    cg_conv_opts o = cg_conv_defaults();
    o.groups = 2;
    cg_module *m = cg_nn_conv2d(&rng, CG_F32, 4, 6, 3, 5, &o, true);
    assert_non_null(m);
    char buf[64];
    assert_string_equal(cg_shape_str(cg_module_find(m, "weight"), buf, sizeof buf),
                        "[6,2,3,5]");
    assert_string_equal(cg_shape_str(cg_module_find(m, "bias"), buf, sizeof buf), "[6]");
    double bound = 1 / sqrt(2.0 * 3 * 5); /* fan_in = in / groups * kh * kw */
    assert_uniform_within(cg_module_find(m, "weight"), bound);
    assert_uniform_within(cg_module_find(m, "bias"), bound);
    cg_module_free(m);
    m = cg_nn_conv_transpose2d(&rng, CG_F32, 4, 6, 3, 3, NULL, false);
    assert_string_equal(cg_shape_str(cg_module_find(m, "weight"), buf, sizeof buf),
                        "[4,6,3,3]");
    assert_int_equal(cg_module_nstate(m), 1);
    cg_module_free(m);
    m = cg_nn_conv1d(&rng, CG_F64, 3, 5, 4, NULL, true);
    assert_string_equal(cg_shape_str(cg_module_find(m, "weight"), buf, sizeof buf), "[5,3,4]");
    cg_module_free(m);
}

/* The layers give what the functional ops give on their parameters. */
static void test_cnn_layers_match_functional(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(2);
    cg_conv_opts o = cg_conv_defaults();
    o.stride[0] = 2, o.padding[1] = 1;
    cg_module *c2 = cg_nn_conv2d(&rng, CG_F64, 2, 3, 3, 3, &o, true);
    cg_tensor *x = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(2, 2, 7, 6), 0, 1);
    cg_tensor *y = cg_module_forward(ctx, c2, x);
    cg_tensor *want =
        cg_conv2d(ctx, x, cg_module_find(c2, "weight"), cg_module_find(c2, "bias"), &o);
    assert_non_null(y);
    assert_true(cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, y, want)), NULL, 0, false)) == 0);
    cg_pool_opts po = cg_pool_defaults(2, 2);
    cg_module *mp = cg_nn_maxpool2d(&po), *ap = cg_nn_avgpool2d(&po);
    cg_module *ad = cg_nn_adaptive_avgpool2d(2, 3), *fl = cg_nn_flatten(1, -1);
    cg_tensor *p = cg_module_forward(ctx, mp, x), *q = cg_max_pool2d(ctx, x, &po, NULL);
    assert_true(cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, p, q)), NULL, 0, false)) == 0);
    p = cg_module_forward(ctx, ap, x), q = cg_avg_pool2d(ctx, x, &po);
    assert_true(cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, p, q)), NULL, 0, false)) == 0);
    p = cg_module_forward(ctx, ad, x), q = cg_adaptive_avg_pool2d(ctx, x, 2, 3);
    assert_true(cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, p, q)), NULL, 0, false)) == 0);
    assert_int_equal(cg_ndim(cg_module_forward(ctx, fl, x)), 2);
    assert_int_equal(cg_dim(cg_module_forward(ctx, fl, x), 1), 2 * 7 * 6);
    cg_module_free(c2), cg_module_free(mp), cg_module_free(ap), cg_module_free(ad);
    cg_module_free(fl);
}

static void test_cnn_layer_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(3);
    cg_conv_opts o = cg_conv_defaults();
    o.padding[0] = o.padding[1] = 1;
    cg_pool_opts po = cg_pool_defaults(2, 2);
    cg_module *m = cg_nn_sequential(
        4, (cg_module *[]){cg_nn_conv2d(&rng, CG_F64, 2, 3, 3, 3, &o, true),
                           cg_nn_activation(CG_ACT_TANH), cg_nn_avgpool2d(&po),
                           cg_nn_conv_transpose2d(&rng, CG_F64, 3, 2, 2, 2, NULL, true)});
    assert_non_null(m);
    cg_tensor *x = seeded_leaf(4, CG_F64, CG_SHAPE(2, 2, 4, 4), 1);
    cg_tensor *in[6] = {x};
    for (int i = 0; i < 4; i++) in[1 + i] = cg_module_param(m, i, NULL);
    cg_assert_gradcheck(module_fn, m, 5, in);
    cg_tensor_free(x);
    cg_module_free(m);
}

/* PyTorch's print(model) for the same layers. */
static void test_cnn_print_as_pytorch(void **state) {
    (void)state;
    cg_rng rng = seeded(5);
    cg_conv_opts o = cg_conv_defaults();
    o.padding[0] = o.padding[1] = 2;
    cg_conv_opts t = cg_conv_defaults();
    t.stride[0] = t.stride[1] = 2, t.output_padding[0] = t.output_padding[1] = 1;
    cg_pool_opts po = cg_pool_defaults(2, 2);
    cg_module *m = cg_nn_sequential(
        6,
        (cg_module *[]){cg_nn_conv2d(&rng, CG_F32, 1, 6, 5, 5, &o, true), cg_nn_maxpool2d(&po),
                        cg_nn_avgpool2d(&po), cg_nn_adaptive_avgpool2d(1, 1),
                        cg_nn_conv_transpose2d(&rng, CG_F32, 6, 3, 3, 3, &t, false),
                        cg_nn_flatten(1, -1)});
    char *text = printed(m);
    assert_string_equal(
        text, "Sequential(\n"
              "  (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))\n"
              "  (1): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, "
              "ceil_mode=False)\n"
              "  (2): AvgPool2d(kernel_size=2, stride=2, padding=0)\n"
              "  (3): AdaptiveAvgPool2d(output_size=1)\n"
              "  (4): ConvTranspose2d(6, 3, kernel_size=(3, 3), stride=(2, 2), "
              "output_padding=(1, 1), bias=False)\n"
              "  (5): Flatten(start_dim=1, end_dim=-1)\n"
              ")\n"
              "Total params: 318\n"
              "Trainable params: 318\n");
    free(text);
    cg_module_free(m);
}

static void test_cnn_constructor_errors(void **state) {
    (void)state;
    cg_rng rng = seeded(6);
    cg_conv_opts o = cg_conv_defaults();
    o.groups = 3;
    assert_null(cg_nn_conv2d(&rng, CG_F32, 4, 6, 3, 3, &o, true));
    assert_error(CG_ERR_ARG, "cg_nn_conv2d: in 4, out 6, kernel 3 x 3, groups 3");
    assert_null(cg_nn_conv2d(NULL, CG_F32, 4, 6, 3, 3, NULL, true));
    assert_error(CG_ERR_ARG, "rng");
    assert_null(cg_nn_conv1d(&rng, CG_I64, 4, 6, 3, NULL, true));
    assert_error(CG_ERR_ARG, "cg_nn_conv1d");
    assert_null(cg_nn_conv_transpose2d(&rng, CG_F32, 4, 6, 0, 3, NULL, true));
    assert_error(CG_ERR_ARG, "cg_nn_conv_transpose2d");
    assert_null(cg_nn_maxpool2d(NULL));
    assert_error(CG_ERR_ARG, "cg_nn_maxpool2d: options are NULL");
    cg_pool_opts po = cg_pool_defaults(2, 2);
    po.padding[0] = 2;
    assert_null(cg_nn_avgpool2d(&po));
    assert_error(CG_ERR_ARG, "cg_nn_avgpool2d: kernel 2, stride 2, padding 2");
    assert_null(cg_nn_adaptive_avgpool2d(0, 1));
    assert_error(CG_ERR_ARG, "cg_nn_adaptive_avgpool2d");
}

/* ---- a short training run -------------------------------------------------------------- */
/* 4x4 images of two classes (a bright left or right half, plus noise):
 * a small CNN learns them; the loss must fall below 0.2 within 60 steps. */
static void test_cnn_short_training_run(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(7);
    cg_conv_opts o = cg_conv_defaults();
    o.padding[0] = o.padding[1] = 1;
    cg_pool_opts po = cg_pool_defaults(2, 2);
    cg_module *m = cg_nn_sequential(
        5, (cg_module *[]){cg_nn_conv2d(&rng, CG_F32, 1, 4, 3, 3, &o, true),
                           cg_nn_activation(CG_ACT_RELU), cg_nn_maxpool2d(&po),
                           cg_nn_flatten(1, -1), cg_nn_linear(&rng, CG_F32, 16, 2, true)});
    cg_adam_opts ao = cg_adam_defaults(0.05);
    cg_optim *opt = cg_adam_new(m, &ao);
    assert_non_null(opt);
    float img[32 * 16];
    int64_t lab[32];
    for (int i = 0; i < 32; i++) {
        lab[i] = i % 2;
        for (int p = 0; p < 16; p++) img[i * 16 + p] = (float)((p % 4 < 2) == (i % 2));
    }
    cg_tensor *x0 = cg_from_array(NULL, CG_F32, CG_SHAPE(32, 1, 4, 4), img);
    cg_tensor *noise = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(32, 1, 4, 4), 0, 0.2);
    cg_tensor *x = cg_add(NULL, x0, noise), *y = cg_from_array(NULL, CG_I64, CG_SHAPE(32), lab);
    double first = 0, last = 0;
    for (int step = 0; step < 60; step++) {
        cg_optim_zero_grad(opt);
        cg_tensor *loss = cg_cross_entropy(ctx, cg_module_forward(ctx, m, x), y, CG_MEAN);
        assert_non_null(loss);
        assert_int_equal(cg_backward(loss), CG_OK);
        assert_int_equal(cg_optim_step(opt), CG_OK);
        last = cg_item(loss);
        if (step == 0) first = last;
        cg_ctx_reset(ctx);
    }
    assert_true(first > 0.5 && last < 0.2);
    cg_tensor_free(x0), cg_tensor_free(noise), cg_tensor_free(x), cg_tensor_free(y);
    cg_optim_free(opt);
    cg_module_free(m);
}

/* Sequential m's children run one by one on x (no fusion). */
static cg_tensor *one_by_one(cg_ctx *ctx, cg_module *m, cg_tensor *x) {
    cg_tensor *h = x;
    for (int i = 0; i < cg_module_nchildren(m); i++)
        h = cg_module_forward(ctx, cg_module_child(m, i, NULL), h);
    return h;
}

/* Sequential runs a Conv2d followed by a ReLU as one op (cg_conv2d_relu):
 * the output and every parameter's gradient have the bits of the children
 * run one by one, in cg_backward (max pooling premasking through the fused
 * op, and through ReLU one by one) and in cg_grad; an error still names
 * cg_conv2d. */
static void grads_of(cg_module *m, cg_tensor *loss, double *out) {
    cg_module_zero_grad(m);
    assert_int_equal(cg_backward(loss), CG_OK);
    for (int i = 0, at = 0; i < cg_module_nparams(m); i++) {
        const cg_tensor *g = cg_grad_of(cg_module_param(m, i, NULL));
        assert_int_equal(cg_copy_to_array(g, CG_F64, out + at), CG_OK);
        at += (int)cg_numel(g);
    }
}

static void test_cnn_sequential_fuses_conv_relu(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(11);
    cg_conv_opts o = cg_conv_defaults();
    o.padding[0] = o.padding[1] = 1;
    cg_pool_opts po = cg_pool_defaults(2, 2);
    cg_module *m =
        cg_nn_sequential(5, (cg_module *[]){cg_nn_conv2d(&rng, CG_F32, 1, 4, 3, 3, &o, true),
                                            cg_nn_activation(CG_ACT_RELU), cg_nn_maxpool2d(&po),
                                            cg_nn_conv2d(&rng, CG_F32, 4, 6, 3, 3, &o, true),
                                            cg_nn_activation(CG_ACT_RELU)});
    cg_tensor *x = cg_randn(ctx, &rng, CG_F32, CG_SHAPE(3, 1, 12, 12), 0, 1);
    cg_tensor *y = cg_module_forward(ctx, m, x), *h = one_by_one(ctx, m, x);
    assert_string_equal(cg_node_op(cg_grad_fn(y))->name, "conv2d_relu");
    assert_string_equal(cg_node_op(cg_grad_fn(h))->name, "relu");
    int64_t ny = cg_numel(y);
    assert_int_equal(cg_numel(h), ny);
    assert_memory_equal(cg_data(y), cg_data(h), sizeof(float) * (size_t)ny);
    cg_tensor *r = cg_randn(ctx, &rng, CG_F32, 4, cg_shape(y), 0, 1);
    int np = 0;
    for (int i = 0; i < cg_module_nparams(m); i++)
        np += (int)cg_numel(cg_module_param(m, i, NULL));
    double *ga = malloc(sizeof(double) * (size_t)(3 * np)), *gb = ga + np, *gc = gb + np;
    cg_tensor *ly = cg_sum(ctx, cg_mul(ctx, y, r), NULL, 0, false);
    grads_of(m, cg_sum(ctx, cg_mul(ctx, h, r), NULL, 0, false), ga);
    cg_tensor *params[4], *gs[4];
    for (int i = 0; i < 4; i++) params[i] = cg_module_param(m, i, NULL);
    assert_int_equal(cg_module_nparams(m), 4);
    assert_int_equal(cg_grad(ctx, 1, &ly, NULL, 4, params, gs, CG_RETAIN_GRAPH), CG_OK);
    for (int i = 0, at = 0; i < 4; i++) {
        assert_int_equal(cg_copy_to_array(gs[i], CG_F64, gc + at), CG_OK);
        at += (int)cg_numel(gs[i]);
    }
    grads_of(m, ly, gb);
    assert_memory_equal(ga, gb, sizeof(double) * (size_t)np);
    assert_memory_equal(ga, gc, sizeof(double) * (size_t)np);
    free(ga);
    cg_ctx_reset(ctx);
    cg_tensor *bad = cg_randn(ctx, &rng, CG_F32, CG_SHAPE(1, 2, 8, 8), 0, 1);
    assert_null(cg_module_forward(ctx, m, bad));
    assert_non_null(strstr(cg_last_error(), "cg_conv2d: input [1,2,8,8]"));
    cg_clear_error();
    cg_module_free(m);
}

/* Sequential runs Conv2d, ReLU, MaxPool2d(2) as one op where the direct
 * kernels run the convolution (f32): the pooled output, x's and every
 * parameter's gradient (cg_backward and cg_grad), and a gradient penalty's
 * gradients (second order) have the bits of the children run one by one;
 * odd sizes, rows of fewer and more than 16 windows, groups, no bias; f64
 * takes the two ops; a conv output too small to pool fails as MaxPool2d;
 * 1 and 2 threads give the same bits. */
typedef struct triple_case {
    cg_dtype dt;
    int64_t n, cin, cout, h, w, groups;
    bool bias;
    const char *op; /* the output's op */
} triple_case;

/* Gradients of x and every parameter of m at loss, then of a penalty
 * sum(dx^2) built with CG_CREATE_GRAPH, flattened into out (f64). */
static int64_t triple_grads(cg_ctx *ctx, cg_module *m, cg_tensor *x, cg_tensor *loss,
                            double *out) {
    int np = cg_module_nparams(m);
    cg_tensor *in[5] = {x}, *g[5], *g2[5];
    for (int i = 0; i < np; i++) in[1 + i] = cg_module_param(m, i, NULL);
    assert_int_equal(cg_grad(ctx, 1, &loss, NULL, 1 + np, in, g, CG_CREATE_GRAPH), CG_OK);
    cg_tensor *pen = cg_sum(ctx, cg_square(ctx, g[0]), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &pen, NULL, 1 + np, in, g2, 0), CG_OK);
    int64_t at = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 1 + np; i++) {
            const cg_tensor *t = k ? g2[i] : g[i];
            assert_int_equal(cg_copy_to_array(t, CG_F64, out + at), CG_OK);
            at += cg_numel(t);
        }
    return at;
}

static void triple_check(cg_ctx *ctx, const triple_case *tc, uint64_t seed) {
    cg_rng rng = seeded(seed);
    cg_conv_opts o = cg_conv_defaults();
    o.padding[0] = o.padding[1] = 1, o.groups = tc->groups;
    cg_pool_opts po = cg_pool_defaults(2, 2);
    cg_module *m = cg_nn_sequential(
        3, (cg_module *[]){cg_nn_conv2d(&rng, tc->dt, tc->cin, tc->cout, 3, 3, &o, tc->bias),
                           cg_nn_activation(CG_ACT_RELU), cg_nn_maxpool2d(&po)});
    cg_tensor *x = cg_randn(ctx, &rng, tc->dt, CG_SHAPE(tc->n, tc->cin, tc->h, tc->w), 0, 1);
    cg_set_requires_grad(x, true);
    cg_tensor *y = cg_module_forward(ctx, m, x), *h = one_by_one(ctx, m, x);
    assert_non_null(y);
    assert_string_equal(cg_node_op(cg_grad_fn(y))->name, tc->op);
    assert_string_equal(cg_node_op(cg_grad_fn(h))->name, "max_pool2d");
    int64_t ny = cg_numel(y);
    assert_int_equal(cg_numel(h), ny);
    assert_memory_equal(cg_data(y), cg_data(h), cg_dtype_size(tc->dt) * (size_t)ny);
    cg_tensor *r = cg_randn(ctx, &rng, tc->dt, 4, cg_shape(y), 0, 1);
    int64_t nx = cg_numel(x), cap = 2 * (nx + 2000);
    double *a = malloc(sizeof(double) * (size_t)(2 * cap));
    /* cg_backward (premasking on the unfused side) */
    assert_int_equal(cg_backward(cg_sum(ctx, cg_mul(ctx, y, r), NULL, 0, false)), CG_OK);
    assert_int_equal(cg_copy_to_array(cg_grad_of(x), CG_F64, a), CG_OK);
    cg_zero_grad(x);
    assert_int_equal(cg_backward(cg_sum(ctx, cg_mul(ctx, h, r), NULL, 0, false)), CG_OK);
    assert_int_equal(cg_copy_to_array(cg_grad_of(x), CG_F64, a + nx), CG_OK);
    assert_memory_equal(a, a + nx, sizeof(double) * (size_t)nx);
    cg_zero_grad(x);
    /* cg_grad, first and second order, on new graphs */
    y = cg_module_forward(ctx, m, x), h = one_by_one(ctx, m, x);
    cg_tensor *ly = cg_sum(ctx, cg_mul(ctx, y, r), NULL, 0, false);
    cg_tensor *lh = cg_sum(ctx, cg_mul(ctx, h, r), NULL, 0, false);
    int64_t na = triple_grads(ctx, m, x, ly, a), nb = triple_grads(ctx, m, x, lh, a + cap);
    assert_int_equal(na, nb);
    assert_memory_equal(a, a + cap, sizeof(double) * (size_t)na);
    free(a);
    cg_ctx_reset(ctx);
    cg_module_free(m);
}

/* The fused op's output and x's gradient on threads threads, as f64. */
#define FUSED_VALUES (6 * 4 * 10 * 10 + 6 * 2 * 20 * 20)
static double *fused_run(cg_ctx *ctx, int threads) {
    int before = cg_get_num_threads();
    cg_set_num_threads(threads);
    cg_rng rng = seeded(77);
    cg_conv_opts o = cg_conv_defaults();
    o.padding[0] = o.padding[1] = 1;
    cg_pool_opts po = cg_pool_defaults(2, 2);
    cg_module *m = cg_nn_sequential(
        3, (cg_module *[]){cg_nn_conv2d(&rng, CG_F32, 2, 4, 3, 3, &o, true),
                           cg_nn_activation(CG_ACT_RELU), cg_nn_maxpool2d(&po)});
    cg_tensor *x = cg_randn(ctx, &rng, CG_F32, CG_SHAPE(6, 2, 20, 20), 0, 1);
    cg_set_requires_grad(x, true);
    cg_tensor *y = cg_module_forward(ctx, m, x);
    assert_string_equal(cg_node_op(cg_grad_fn(y))->name, "conv2d_relu_maxpool2d");
    double *v = malloc(sizeof(double) * FUSED_VALUES);
    assert_int_equal(cg_copy_to_array(y, CG_F64, v), CG_OK);
    assert_int_equal(cg_backward(cg_sum(ctx, cg_square(ctx, y), NULL, 0, false)), CG_OK);
    assert_int_equal(cg_copy_to_array(cg_grad_of(x), CG_F64, v + cg_numel(y)), CG_OK);
    cg_ctx_reset(ctx);
    cg_module_free(m);
    cg_set_num_threads(before);
    return v;
}

static void test_cnn_sequential_fuses_conv_relu_pool(void **state) {
    const triple_case cases[] = {
        {CG_F32, 3, 1, 4, 12, 12, 1, true, "conv2d_relu_maxpool2d"},
        {CG_F32, 2, 2, 6, 11, 13, 1, false, "conv2d_relu_maxpool2d"}, /* odd: floor */
        {CG_F32, 5, 4, 4, 40, 34, 2, true, "conv2d_relu_maxpool2d"},  /* >= 16 windows */
        {CG_F64, 2, 1, 3, 8, 8, 1, true, "max_pool2d"},               /* the two ops */
    };
    for (int i = 0; i < 4; i++) triple_check(*state, &cases[i], 40 + (uint64_t)i);
    double *one = fused_run(*state, 1), *two = fused_run(*state, 2);
    assert_memory_equal(one, two, sizeof(double) * FUSED_VALUES);
    free(one), free(two);
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(9);
    cg_pool_opts po = cg_pool_defaults(2, 2);
    cg_module *m = cg_nn_sequential(
        3, (cg_module *[]){cg_nn_conv2d(&rng, CG_F32, 1, 2, 3, 3, NULL, true),
                           cg_nn_activation(CG_ACT_RELU), cg_nn_maxpool2d(&po)});
    cg_tensor *tiny = cg_randn(ctx, &rng, CG_F32, CG_SHAPE(1, 1, 3, 3), 0, 1);
    assert_null(cg_module_forward(ctx, m, tiny));
    assert_non_null(strstr(cg_last_error(), "cg_max_pool2d: input [1,2,1,1] is too small"));
    cg_tensor *bad = cg_randn(ctx, &rng, CG_F32, CG_SHAPE(1, 3, 8, 8), 0, 1);
    assert_null(cg_module_forward(ctx, m, bad));
    assert_non_null(strstr(cg_last_error(), "cg_conv2d: input [1,3,8,8]"));
    cg_clear_error();
    cg_ctx_reset(ctx);
    cg_module_free(m);
}

#define CTX_TEST(f) cmocka_unit_test_setup_teardown(f, ctx_setup, ctx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cnn_conv2d_state_and_init),
        CTX_TEST(test_cnn_layers_match_functional),
        cmocka_unit_test(test_cnn_layer_gradcheck),
        CTX_TEST(test_cnn_sequential_fuses_conv_relu),
        CTX_TEST(test_cnn_sequential_fuses_conv_relu_pool),
        cmocka_unit_test(test_cnn_print_as_pytorch),
        cmocka_unit_test(test_cnn_constructor_errors),
        CTX_TEST(test_cnn_short_training_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
