/* autograd/: the tape, backward, cg_grad, grad mode, the errors that guard
 * against wrong numbers, and gradcheck's own reporting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/internal.h" /* white-box: pass tags on leaves */
#include "cgrad_cmocka.h"
#include "testutil.h"

/* y = sum(3 x^2 + x): dy/dx = 6x + 1 */
static cg_tensor *poly(cg_ctx *ctx, const cg_tensor *x) {
    return cg_sum(ctx, cg_add(ctx, cg_mul_scalar(ctx, cg_square(ctx, x), 3), x), NULL, 0,
                  false);
}

static void test_autograd_backward_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(3), (double[]){1, 2, 3});
    cg_tensor *y = poly(ctx, x);
    assert_float_equal(cg_item(y), 3 * 14 + 6, 1e-12);
    assert_null(cg_grad_of(x));
    assert_int_equal(cg_backward(y), CG_OK);
    assert_values(cg_grad_of(x), (double[]){7, 13, 19}, 3, 1e-12);
    assert_true(cg_is_leaf(x));
    assert_false(cg_is_leaf(y));
    assert_string_equal(cg_node_op(cg_grad_fn(y))->name, "sum");
    cg_tensor_free(x);
}

static void test_autograd_accumulates_until_zero_grad(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F32, CG_SHAPE(2), (double[]){1, -1});
    assert_int_equal(cg_backward(poly(ctx, x)), CG_OK);
    assert_int_equal(cg_backward(poly(ctx, x)), CG_OK);
    assert_values(cg_grad_of(x), (double[]){14, -10}, 2, 1e-6);
    cg_zero_grad(x);
    assert_values(cg_grad_of(x), (double[]){0, 0}, 2, 0);
    cg_ctx_reset(ctx); /* the graph goes; the leaf and its gradient stay */
    assert_int_equal(cg_backward(poly(ctx, x)), CG_OK);
    assert_values(cg_grad_of(x), (double[]){7, -5}, 2, 1e-6);
    cg_tensor_free(x);
}

/* A value used twice: both paths add up (d(x*x)/dx = 2x). */
static void test_autograd_shared_input_sums_paths(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2), (double[]){3, -2});
    cg_tensor *h = cg_exp(ctx, x);
    cg_tensor *y =
        cg_sum(ctx, cg_add(ctx, cg_mul(ctx, x, x), cg_mul(ctx, h, h)), NULL, 0, false);
    assert_int_equal(cg_backward(y), CG_OK);
    assert_values(cg_grad_of(x), (double[]){6 + 2 * exp(6), -4 + 2 * exp(-4)}, 2, 1e-9);
    cg_tensor_free(x);
}

static void test_autograd_no_grad_records_nothing(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2), (double[]){1, 2});
    cg_no_grad_push(ctx);
    assert_false(cg_is_grad_enabled(ctx));
    cg_tensor *y = poly(ctx, x);
    cg_no_grad_pop(ctx);
    assert_true(cg_is_grad_enabled(ctx));
    assert_false(cg_requires_grad(y));
    assert_null(cg_grad_fn(y));
    assert_int_equal(cg_backward(y), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "does not require a gradient"));
    cg_tensor_free(x);
}

static void test_autograd_detach_stops_the_flow(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2), (double[]){1, 2});
    cg_tensor *d = cg_detach(ctx, cg_mul_scalar(ctx, x, 5));
    assert_false(cg_requires_grad(d));
    cg_tensor *y = cg_sum(ctx, cg_mul(ctx, x, d), NULL, 0, false); /* d is a constant */
    assert_int_equal(cg_backward(y), CG_OK);
    assert_values(cg_grad_of(x), (double[]){5, 10}, 2, 1e-12);
    cg_tensor_free(x);
}

static void test_autograd_backward_twice_needs_retain_graph(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(1), (double[]){2});
    cg_tensor *y = poly(ctx, x);
    assert_int_equal(cg_backward_ex(y, NULL, CG_RETAIN_GRAPH), CG_OK);
    assert_int_equal(cg_backward(y), CG_OK);
    assert_values(cg_grad_of(x), (double[]){26}, 1, 1e-12);
    assert_int_equal(cg_backward(y), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "already freed"));
    assert_non_null(strstr(cg_last_error(), "CG_RETAIN_GRAPH"));
    assert_values(cg_grad_of(x), (double[]){26}, 1, 1e-12); /* untouched by the failure */
    cg_tensor_free(x);
}

static void test_autograd_non_scalar_needs_grad_output(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2, 2), (double[]){1, 2, 3, 4});
    cg_tensor *y = cg_mul_scalar(ctx, x, 2);
    assert_int_equal(cg_backward(y), CG_ERR_SHAPE);
    assert_non_null(strstr(cg_last_error(), "cg_backward: output [2,2] is not a scalar"));
    cg_tensor *bad = cg_ones(ctx, CG_F64, CG_SHAPE(4));
    assert_int_equal(cg_backward_ex(y, bad, 0), CG_ERR_SHAPE);
    cg_tensor *gout = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 2), (double[]){1, 0, 0, -1});
    assert_int_equal(cg_backward_ex(y, gout, 0), CG_OK);
    assert_values(cg_grad_of(x), (double[]){2, 0, 0, -2}, 4, 0);
    cg_tensor_free(x);
}

static void test_autograd_inplace_change_of_saved_tensor(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2), (double[]){1, 2});
    cg_tensor *w = cg_from_array(ctx, CG_F64, CG_SHAPE(2), (double[]){3, 4});
    cg_tensor *y = cg_sum(ctx, cg_mul(ctx, x, w), NULL, 0, false); /* saves w */
    cg_fill_(w, 0);
    assert_int_equal(cg_backward(y), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "saved by cg_mul"));
    assert_non_null(strstr(cg_last_error(), "modified in place"));
    assert_null(cg_grad_of(x));
    /* a change through a view counts too: they share the version */
    cg_tensor *w2 = cg_from_array(ctx, CG_F64, CG_SHAPE(2), (double[]){3, 4});
    cg_tensor *y2 = cg_sum(ctx, cg_mul(ctx, x, w2), NULL, 0, false);
    cg_set(cg_select(ctx, w2, 0, 1), NULL, 9);
    assert_int_equal(cg_backward(y2), CG_ERR_STATE);
    cg_tensor_free(x);
}

static void test_autograd_requires_grad_rules(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *i = cg_arange(NULL, CG_I64, 0, 3, 1);
    assert_int_equal(cg_set_requires_grad(i, true), CG_ERR_DTYPE);
    assert_non_null(strstr(cg_last_error(), "i64"));
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2), (double[]){1, 2});
    cg_tensor *y = cg_exp(ctx, x);
    assert_int_equal(cg_set_requires_grad(y, false), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "made by cg_exp"));
    assert_int_equal(cg_set_requires_grad(NULL, true), CG_ERR_ARG);
    assert_false(cg_requires_grad(NULL));
    /* a graph needs a context */
    assert_null(cg_exp(NULL, x));
    assert_non_null(strstr(cg_last_error(), "cg_exp: an input requires a gradient"));
    cg_tensor_free(i);
    cg_tensor_free(x);
}

static void test_autograd_grad_functional_leaves_dot_grad(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2), (double[]){1, 2});
    cg_tensor *u = leaf(CG_F64, CG_SHAPE(2), (double[]){5, 6});
    cg_tensor *y = poly(ctx, x), *g[2];
    assert_int_equal(cg_grad(ctx, 1, &y, NULL, 2, (cg_tensor *[]){x, u}, g, 0), CG_OK);
    assert_values(g[0], (double[]){7, 13}, 2, 1e-12);
    assert_values(g[1], (double[]){0, 0}, 2, 0); /* unused input: zeros */
    assert_null(cg_grad_of(x));
    cg_tensor *c = cg_ones(ctx, CG_F64, CG_SHAPE(2));
    assert_int_equal(cg_grad(ctx, 1, &y, NULL, 1, &c, g, 0), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "cg_grad: input 0 does not require a gradient"));
    cg_tensor_free(x);
    cg_tensor_free(u);
}

/* Linear adds its weight gradient to an existing .grad inside its GEMM
 * (cg_node_grad_sink). loss = sum(x W^T + b): dW[o,i] = sum over rows of
 * x[:,i] = {5, 7, 9} for both outputs. The first backward has no .grad to
 * add to (plain path), the second adds in place: twice the values, not
 * three times (the engine must not add the sunk gradient again). */
static void test_autograd_grad_sink_adds_in_place(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    cg_tensor *w = leaf(CG_F64, CG_SHAPE(2, 3), (double[]){1, 0, -1, 2, 1, 0});
    cg_tensor *b = leaf(CG_F64, CG_SHAPE(2), (double[]){0.5, -0.5});
    for (int pass = 1; pass <= 2; pass++) {
        cg_tensor *loss = cg_sum(ctx, cg_linear(ctx, x, w, b), NULL, 0, false);
        assert_int_equal(cg_backward(loss), CG_OK);
        double k = pass;
        assert_values(cg_grad_of(w), (double[]){5 * k, 7 * k, 9 * k, 5 * k, 7 * k, 9 * k}, 6,
                      1e-12);
        assert_values(cg_grad_of(b), (double[]){2 * k, 2 * k}, 2, 1e-12);
    }
    /* under CG_CREATE_GRAPH the gradient stays a graph value: no sink */
    cg_zero_grad(w);
    cg_tensor *loss = cg_sum(ctx, cg_linear(ctx, x, w, b), NULL, 0, false);
    assert_int_equal(cg_backward_ex(loss, NULL, CG_CREATE_GRAPH), CG_OK);
    assert_values(cg_grad_of(w), (double[]){5, 7, 9, 5, 7, 9}, 6, 1e-12);
    cg_tensor_free(w);
    cg_tensor_free(b);
}

/* A weight used by two Linear nodes takes both contributions through the
 * sink, as cg_grad (which never adds to .grad) computes them. */
static void test_autograd_grad_sink_shared_weight(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(7);
    cg_tensor *x = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(5, 4), 0, 1);
    cg_tensor *w = randn_leaf(&rng, CG_F64, CG_SHAPE(4, 4), 0.5), *g;
    cg_tensor *y = cg_linear(ctx, cg_tanh(ctx, cg_linear(ctx, x, w, NULL)), w, NULL);
    cg_tensor *loss = cg_sum(ctx, cg_square(ctx, y), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &loss, NULL, 1, &w, &g, CG_RETAIN_GRAPH), CG_OK);
    double want[16], got[16];
    assert_int_equal(cg_copy_to_array(g, CG_F64, want), CG_OK);
    assert_int_equal(cg_backward(loss), CG_OK); /* no .grad yet: plain path */
    cg_zero_grad(w); /* zeros kept: the next backward adds in place */
    y = cg_linear(ctx, cg_tanh(ctx, cg_linear(ctx, x, w, NULL)), w, NULL);
    assert_int_equal(cg_backward(cg_sum(ctx, cg_square(ctx, y), NULL, 0, false)), CG_OK);
    assert_int_equal(cg_copy_to_array(cg_grad_of(w), CG_F64, got), CG_OK);
    for (int i = 0; i < 16; i++) assert_float_equal(got[i], want[i], 1e-12);
    cg_tensor_free(w);
}

/* ---- the pass's own gradients: added to in place, their memory reused ------ */
/* [64, 512] f32: 128 KiB, above CGI_RECYCLE_MIN. */
#define BIG_SHAPE CG_SHAPE(64, 512)
#define BIG_N     (64 * 512)
#define BIG_BYTES ((size_t)BIG_N * 4)

/* loss = sum(tanh^depth(x)) and its arena growth during backward. */
static size_t chain_backward_growth(cg_ctx *ctx, cg_tensor *x, int depth, cg_tensor **grad) {
    cg_tensor *h = x;
    for (int i = 0; i < depth; i++) h = cg_tanh(ctx, h);
    cg_tensor *loss = cg_sum(ctx, h, NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &loss, NULL, 1, &x, grad, CG_RETAIN_GRAPH), CG_OK);
    size_t before = cg_ctx_get_stats(ctx).used;
    assert_int_equal(cg_backward(loss), CG_OK);
    return cg_ctx_get_stats(ctx).used - before;
}

/* A 24-deep chain: cg_grad keeps every gradient it makes (24 x 128 KiB and
 * the rules' temporaries); cg_backward reuses each once its node ran, so it
 * needs a few blocks, and gives the same bits. */
static void test_autograd_backward_reuses_spent_gradients(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = seeded_leaf(3, CG_F32, BIG_SHAPE, 1), *want;
    size_t grown = chain_backward_growth(ctx, x, 24, &want);
    assert_true(grown <= 6 * BIG_BYTES);
    float *a = malloc(BIG_BYTES), *b = malloc(BIG_BYTES);
    assert_int_equal(cg_copy_to_array(want, CG_F32, a), CG_OK);
    assert_int_equal(cg_copy_to_array(cg_grad_of(x), CG_F32, b), CG_OK);
    assert_memory_equal(a, b, BIG_BYTES);
    /* cg_grad's own pass made far more: nothing of it was reused */
    size_t used = cg_ctx_get_stats(ctx).used;
    cg_tensor *again;
    cg_tensor *loss = cg_sum(ctx, cg_tanh(ctx, cg_tanh(ctx, x)), NULL, 0, false);
    size_t fwd = cg_ctx_get_stats(ctx).used;
    assert_int_equal(cg_grad(ctx, 1, &loss, NULL, 1, &x, &again, 0), CG_OK);
    assert_true(cg_ctx_get_stats(ctx).used - fwd >= 2 * BIG_BYTES && fwd > used);
    free(a), free(b);
    cg_tensor_free(x);
}

/* cg_grad hands out a non-leaf's gradient although the sweep goes on past
 * it (y's node runs for x): it must not be reused by what comes after. */
static void test_autograd_grad_keeps_handed_out_gradients(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = seeded_leaf(4, CG_F32, BIG_SHAPE, 1), *gy;
    cg_tensor *y = cg_tanh(ctx, x);
    cg_tensor *loss = cg_sum(ctx, cg_square(ctx, cg_tanh(ctx, y)), NULL, 0, false);
    cg_tensor *in[2] = {y, x}, *g[2];
    assert_int_equal(cg_grad(ctx, 1, &loss, NULL, 2, in, g, CG_RETAIN_GRAPH), CG_OK);
    gy = g[0];
    /* dL/dy = 2 tanh(y) (1 - tanh(y)^2), computed apart */
    cg_tensor *t = cg_tanh(ctx, y);
    cg_tensor *want =
        cg_mul_scalar(ctx, cg_mul(ctx, t, cg_rsub_scalar(ctx, cg_square(ctx, t), 1)), 2);
    float *a = malloc(BIG_BYTES), *b = malloc(BIG_BYTES);
    assert_int_equal(cg_copy_to_array(gy, CG_F32, a), CG_OK);
    assert_int_equal(cg_copy_to_array(want, CG_F32, b), CG_OK);
    for (int i = 0; i < BIG_N; i++) assert_float_equal(a[i], b[i], 1e-6);
    free(a), free(b);
    /* a forward value the caller holds is never reused either */
    float y0 = (float)cg_item(cg_select(ctx, cg_flatten(ctx, y, 0, -1), 0, 5));
    assert_int_equal(cg_backward(loss), CG_OK);
    assert_float_equal(cg_item(cg_select(ctx, cg_flatten(ctx, y, 0, -1), 0, 5)), y0, 0);
    cg_tensor_free(x);
}

/* ReLU's and GELU's rules write x's gradient over their output's gradient
 * when the pass owns it (cgi_node_spare_gout): loss = sum(3 act(x)) then
 * grows the arena by one block in backward (mul_scalar's gradient), not two;
 * the bits are cg_grad's, whose pass writes over nothing. */
static void test_autograd_activation_backward_writes_over_its_gradient(void **state) {
    cg_ctx *ctx = *state;
    for (int k = 0; k < 2; k++) {
        cg_tensor *x = seeded_leaf(6 + k, CG_F32, BIG_SHAPE, 1), *want;
        cg_tensor *a = k == 0 ? cg_relu(ctx, x) : cg_gelu_tanh(ctx, x);
        cg_tensor *loss = cg_sum(ctx, cg_mul_scalar(ctx, a, 3), NULL, 0, false);
        assert_int_equal(cg_grad(ctx, 1, &loss, NULL, 1, &x, &want, CG_RETAIN_GRAPH), CG_OK);
        size_t before = cg_ctx_get_stats(ctx).used;
        assert_int_equal(cg_backward(loss), CG_OK);
        assert_true(cg_ctx_get_stats(ctx).used - before < 2 * BIG_BYTES);
        float *u = malloc(BIG_BYTES), *v = malloc(BIG_BYTES);
        assert_int_equal(cg_copy_to_array(want, CG_F32, u), CG_OK);
        assert_int_equal(cg_copy_to_array(cg_grad_of(x), CG_F32, v), CG_OK);
        assert_memory_equal(u, v, BIG_BYTES);
        free(u), free(v);
        cg_tensor_free(x);
    }
}

/* cg_chunk's three pieces add their gradients into one buffer of the whole
 * (cg_node_grad_sink for a non-leaf), not into three zero-filled copies
 * summed: the values, and the arena's growth, show it. */
static void test_autograd_chunk_gradients_share_one_buffer(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = seeded_leaf(5, CG_F32, CG_SHAPE(64, 3 * 512), 1), *p[3];
    cg_tensor *h = cg_mul_scalar(ctx, x, 1); /* a non-leaf to cut */
    assert_int_equal(cg_chunk(ctx, h, 3, 1, p, 3), 3);
    cg_tensor *loss = NULL;
    for (int i = 0; i < 3; i++) {
        cg_tensor *term = cg_sum(ctx, cg_mul_scalar(ctx, p[i], i + 1), NULL, 0, false);
        loss = loss ? cg_add(ctx, loss, term) : term;
    }
    size_t before = cg_ctx_get_stats(ctx).used;
    assert_int_equal(cg_backward(loss), CG_OK);
    /* the pieces 3 x 128 KiB, the whole twice (its gradient, and x's from h);
     * a zero-filled whole for each piece, summed, would add 6 blocks more */
    assert_true(cg_ctx_get_stats(ctx).used - before <= 10 * BIG_BYTES);
    float *g = malloc(3 * BIG_BYTES);
    assert_int_equal(cg_copy_to_array(cg_grad_of(x), CG_F32, g), CG_OK);
    for (int64_t r = 0; r < 64; r++)
        for (int64_t c = 0; c < 3 * 512; c++)
            assert_float_equal(g[r * 3 * 512 + c], 1 + c / 512, 0);
    free(g);
    cg_tensor_free(x);
}

/* Hessian-vector product of f(x) = sum(x^3): H = diag(6x), Hv = 6 x v. */
static void test_autograd_create_graph_hessian_vector(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(3), (double[]){1, -2, 0.5});
    cg_tensor *v = cg_from_array(ctx, CG_F64, CG_SHAPE(3), (double[]){1, 1, 2});
    cg_tensor *f = cg_sum(ctx, cg_pow_scalar(ctx, x, 3), NULL, 0, false), *g, *hv;
    assert_int_equal(cg_grad(ctx, 1, &f, NULL, 1, &x, &g, CG_CREATE_GRAPH), CG_OK);
    assert_true(cg_requires_grad(g));
    assert_values(g, (double[]){3, 12, 0.75}, 3, 1e-12);
    cg_tensor *gv = cg_sum(ctx, cg_mul(ctx, g, v), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &gv, NULL, 1, &x, &hv, CG_RETAIN_GRAPH), CG_OK);
    assert_values(hv, (double[]){6, -12, 6}, 3, 1e-12);
    /* gradient penalty style: backward through the gradient's norm */
    cg_tensor *pen = cg_sum(ctx, cg_square(ctx, g), NULL, 0, false); /* sum 9x^4 */
    assert_int_equal(cg_backward(pen), CG_OK);
    assert_values(cg_grad_of(x), (double[]){36, -288, 4.5}, 3, 1e-12);
    cg_tensor_free(x);
}

static void test_autograd_steady_state_no_malloc(void **state) {
    (void)state;
    cg_ctx *ctx = cg_ctx_new();
    cg_tensor *x = leaf(CG_F32, CG_SHAPE(4), (double[]){1, 2, 3, 4});
    size_t allocs = 0;
    for (int step = 0; step < 5; step++) {
        assert_int_equal(cg_backward(poly(ctx, x)), CG_OK);
        if (step == 1) allocs = cg_ctx_get_stats(ctx).chunk_allocs;
        cg_ctx_reset(ctx);
    }
    assert_int_equal(cg_ctx_get_stats(ctx).chunk_allocs, allocs);
    cg_tensor_free(x);
    cg_ctx_free(ctx);
}

/* A caller-owned leaf outlives contexts; a new context may reuse a freed
 * one's address, so no pass may take an earlier pass's gradient for its own
 * (seen as wrong gradients in gradcheck when passes tagged the leaf). */
static void test_autograd_leaf_shared_by_successive_contexts(void **state) {
    (void)state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2), (double[]){1, 2});
    for (int round = 0; round < 40; round++) {
        cg_ctx *ctx = cg_ctx_new();
        cg_tensor *y = poly(ctx, x), *g;
        assert_int_equal(cg_grad(ctx, 1, &y, NULL, 1, &x, &g, 0), CG_OK);
        assert_values(g, (double[]){7, 13}, 2, 1e-12);
        assert_int_equal(cg_backward(poly(ctx, x)), CG_OK);
        cg_ctx_free(ctx);
    }
    assert_values(cg_grad_of(x), (double[]){7 * 40, 13 * 40}, 2, 1e-9);
    cg_tensor_free(x);
}

/* A pass keeps the leaves it reaches in its own table, which grows: 40
 * leaves, each reached twice, get exactly their own gradients. */
static void test_autograd_many_leaves_in_one_pass(void **state) {
    cg_ctx *ctx = *state;
    enum { N = 40 };
    cg_tensor *x[N], *sum = NULL;
    for (int i = 0; i < N; i++) {
        x[i] = leaf(CG_F64, CG_SHAPE(1), (double[]){i + 1});
        cg_tensor *term = cg_mul(ctx, x[i], x[i]); /* d/dx = 2x */
        sum = sum ? cg_add(ctx, sum, term) : term;
    }
    assert_int_equal(cg_backward(cg_sum(ctx, sum, NULL, 0, false)), CG_OK);
    for (int i = 0; i < N; i++) {
        assert_values(cg_grad_of(x[i]), (double[]){2.0 * (i + 1)}, 1, 1e-12);
        cg_tensor_free(x[i]);
    }
}

/* The grad-sink permission belongs to the running pass and node: none is
 * given outside a backward. */
static void test_autograd_grad_sink_only_inside_backward(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F32, CG_SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    cg_tensor *w = leaf(CG_F32, CG_SHAPE(4, 3), (double[]){1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1});
    assert_int_equal(cg_set_grad(w, cg_zeros(NULL, CG_F32, CG_SHAPE(4, 3))), CG_OK);
    cg_tensor *y = cg_linear(ctx, x, w, NULL);
    assert_non_null(cg_grad_fn(y));
    assert_null(cg_node_grad_sink(cg_grad_fn(y), 1));
    assert_int_equal(cg_backward(cg_sum(ctx, y, NULL, 0, false)), CG_OK);
    assert_null(cg_node_grad_sink(cg_grad_fn(y), 1));
    assert_values(cg_grad_of(w), (double[]){5, 7, 9, 5, 7, 9, 5, 7, 9, 5, 7, 9}, 12, 1e-6);
    cg_tensor_free(x);
    cg_tensor_free(w);
}

/* ---- gradcheck must be able to fail, and say where ---------------------------- */
static cg_status wrong_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                cg_tensor **gin) {
    /* adds 1 to every gradient for element 1: a planted bug, so the Jacobian
     * gets a 1 in column 1 of every row; the first wrong entry is row 0 */
    cg_tensor *d = cg_mul_scalar(ctx, cg_mul(ctx, g, cg_node_input(n, 0)), 2);
    cg_tensor *bump = cg_zeros_like(ctx, d);
    ((double *)cg_data(bump))[1] = 1;
    gin[0] = cg_add(ctx, d, bump);
    return gin[0] ? CG_OK : cg_last_status();
}
static const cg_op wrong_square_op = {"wrong_square", wrong_backward, CG_SAVES_INPUT(0)};

static cg_tensor *wrong_square(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    (void)user;
    cg_tensor *y = cg_square(ctx, cg_detach(ctx, in[0])); /* forward without a graph */
    return cg_record(ctx, &wrong_square_op, y, 1, (const cg_tensor *[]){in[0]}, NULL, 0);
}

static void test_autograd_gradcheck_reports_the_element(void **state) {
    (void)state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(3), (double[]){0.5, 1.5, -1});
    cg_gradcheck_report r;
    assert_false(cg_gradcheck(wrong_square, NULL, 1, &x, NULL, &r));
    assert_false(r.ok);
    assert_int_equal(r.input, 0);
    assert_int_equal(r.element, 1);
    assert_int_equal(r.output_element, 0);
    assert_float_equal(r.analytic, 1.0, 1e-9);
    assert_float_equal(r.numeric, 0.0, 1e-6);
    assert_non_null(strstr(r.msg, "input 0 element 1, output element 0"));
    cg_tensor_free(x);
}

static cg_tensor *poly_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    (void)user;
    return poly(ctx, in[0]);
}

/* A rule that fails: the error names cg_backward, the function called, and
 * keeps the rule's own words. */
static cg_status failing_backward(cg_ctx *ctx, const cg_node *node, const cg_tensor *gout,
                                  cg_tensor **gin) {
    (void)node, (void)gout, (void)gin;
    return cgi_error(ctx, CG_ERR_NOMEM, "my_op: out of scratch");
}
static const cg_op failing_op = {"my_op", failing_backward, 0};

static void test_autograd_backward_error_names_backward(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(1));
    assert_int_equal(cg_set_requires_grad(x, true), CG_OK);
    cg_tensor *y =
        cg_record(ctx, &failing_op, cg_clone(ctx, x), 1, (const cg_tensor *[]){x}, NULL, 0);
    assert_non_null(y);
    assert_int_equal(cg_backward(y), CG_ERR_NOMEM);
    assert_string_equal(cg_last_error(), "cg_backward: my_op: out of scratch");
    cg_clear_error();
    cg_gradcheck_opts d = cg_gradcheck_defaults();
    assert_true(d.eps == 1e-6 && d.atol == 1e-5 && d.rtol == 1e-3);
}

static void test_autograd_gradcheck_argument_errors(void **state) {
    (void)state;
    cg_gradcheck_report r;
    cg_tensor *f32 = leaf(CG_F32, CG_SHAPE(2), (double[]){1, 2});
    assert_false(cg_gradcheck(poly_fn, NULL, 1, &f32, NULL, &r));
    assert_non_null(strstr(r.msg, "must be f64"));
    cg_tensor *c = cg_ones(NULL, CG_F64, CG_SHAPE(2));
    assert_false(cg_gradcheck(poly_fn, NULL, 1, &c, NULL, &r));
    assert_non_null(strstr(r.msg, "no input requires a gradient"));
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2), (double[]){1, 2});
    cg_assert_gradcheck(poly_fn, NULL, 1, &x);
    cg_assert_gradgradcheck(poly_fn, NULL, 1, &x);
    cg_tensor_free(f32);
    cg_tensor_free(c);
    cg_tensor_free(x);
}

/* ---- grad hooks ------------------------------------------------------------ */
/* What a hook saw: the order hooks ran in, and the other leaf's .grad then. */
typedef struct hook_log {
    int n;
    const cg_tensor *order[4];
    double grad0[4];        /* the hooked leaf's .grad[0] when its hook ran */
    bool other_had_grad[4]; /* whether `other` had a .grad yet */
    const cg_tensor *other;
    int fail_at; /* the call that returns an error (-1: none) */
} hook_log;

static cg_status log_hook(cg_tensor *leaf, void *user) {
    hook_log *log = user;
    int k = log->n++;
    if (k == log->fail_at) return CG_ERR_STATE;
    if (k < 4) {
        log->order[k] = leaf;
        log->grad0[k] = *(const double *)cg_data(cg_grad_of(leaf));
        log->other_had_grad[k] = log->other && cg_grad_of(log->other);
    }
    return CG_OK;
}

/* loss = sum(linear(relu(linear(x, w1, b1)), w2)): w2's gradient is final
 * before the first layer's backward runs, so its hook runs while w1 has no
 * .grad yet; each hook sees its leaf's whole gradient. */
static void test_autograd_grad_hook_runs_when_final(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(3);
    cg_tensor *x = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(4, 3), 0, 1);
    cg_tensor *w1 = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(5, 3), 0, 1);
    cg_tensor *w2 = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(2, 5), 0, 1);
    cg_set_requires_grad(w1, true), cg_set_requires_grad(w2, true);
    hook_log log = {.other = w1, .fail_at = -1};
    assert_int_equal(cg_set_grad_hook(w1, log_hook, &log), CG_OK);
    assert_int_equal(cg_set_grad_hook(w2, log_hook, &log), CG_OK);
    cg_tensor *h = cg_relu(ctx, cg_linear(ctx, x, w1, NULL));
    assert_int_equal(cg_backward(cg_sum(ctx, cg_linear(ctx, h, w2, NULL), NULL, 0, false)),
                     CG_OK);
    assert_int_equal(log.n, 2);
    assert_ptr_equal(log.order[0], w2);
    assert_false(log.other_had_grad[0]); /* w1's backward had not run */
    assert_ptr_equal(log.order[1], w1);
    assert_float_equal(log.grad0[0], *(const double *)cg_data(cg_grad_of(w2)), 0);
    assert_float_equal(log.grad0[1], *(const double *)cg_data(cg_grad_of(w1)), 0);
    cg_tensor *g1 = NULL;
    cg_set_grad_hook(w1, NULL, NULL), cg_set_grad_hook(w2, NULL, NULL);
    /* the same values as without hooks (cg_grad runs no hook) */
    cg_tensor *loss =
        cg_sum(ctx, cg_linear(ctx, cg_relu(ctx, cg_linear(ctx, x, w1, NULL)), w2, NULL), NULL,
               0, false);
    assert_int_equal(cg_grad(ctx, 1, &loss, NULL, 1, &w1, &g1, 0), CG_OK);
    assert_values(g1, cg_data(cg_grad_of(w1)), 15, 0);
    assert_int_equal(log.n, 2);
    cg_tensor_free(w1), cg_tensor_free(w2);
}

/* A leaf used twice gets its hook once, after both uses; a hooked leaf the
 * loss does not reach gets none; an error from a hook stops the backward. */
static void test_autograd_grad_hook_once_after_last_use(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = leaf(CG_F64, CG_SHAPE(2), (double[]){1, 2});
    cg_tensor *unused = leaf(CG_F64, CG_SHAPE(2), (double[]){1, 2});
    hook_log log = {.fail_at = -1};
    cg_set_grad_hook(a, log_hook, &log), cg_set_grad_hook(unused, log_hook, &log);
    cg_tensor *side = cg_mul(ctx, unused, unused); /* on the tape, not in the loss */
    assert_non_null(side);
    cg_tensor *y = cg_sum(ctx, cg_mul(ctx, cg_exp(ctx, a), a), NULL, 0, false); /* e^a a */
    assert_int_equal(cg_backward(y), CG_OK);
    assert_int_equal(log.n, 1);
    assert_ptr_equal(log.order[0], a);
    assert_float_equal(log.grad0[0], 2 * exp(1.0), 1e-12); /* e^a (a + 1) */
    assert_null(cg_grad_of(unused));
    /* a hooked leaf that is itself the output */
    cg_tensor *s = cg_from_array(ctx, CG_F64, CG_SHAPE(1), (double[]){4});
    cg_set_requires_grad(s, true);
    assert_int_equal(cg_set_grad_hook(s, log_hook, &log), CG_OK); /* in ctx's arena */
    assert_int_equal(cg_backward(s), CG_OK);
    assert_int_equal(log.n, 2);
    /* an error from the hook is the backward's */
    log.fail_at = 2;
    assert_int_equal(cg_backward(cg_sum(ctx, cg_square(ctx, a), NULL, 0, false)), CG_ERR_STATE);
    /* only a leaf can be hooked */
    assert_int_equal(cg_set_grad_hook(side, log_hook, &log), CG_ERR_STATE);
    assert_int_equal(cg_set_grad_hook(NULL, log_hook, &log), CG_ERR_ARG);
    cg_tensor_free(a), cg_tensor_free(unused);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_autograd_backward_values),
        cmocka_unit_test(test_autograd_accumulates_until_zero_grad),
        cmocka_unit_test(test_autograd_shared_input_sums_paths),
        cmocka_unit_test(test_autograd_no_grad_records_nothing),
        cmocka_unit_test(test_autograd_detach_stops_the_flow),
        cmocka_unit_test(test_autograd_backward_twice_needs_retain_graph),
        cmocka_unit_test(test_autograd_non_scalar_needs_grad_output),
        cmocka_unit_test(test_autograd_inplace_change_of_saved_tensor),
        cmocka_unit_test(test_autograd_requires_grad_rules),
        cmocka_unit_test(test_autograd_grad_functional_leaves_dot_grad),
        cmocka_unit_test(test_autograd_grad_sink_adds_in_place),
        cmocka_unit_test(test_autograd_grad_sink_shared_weight),
        cmocka_unit_test(test_autograd_backward_reuses_spent_gradients),
        cmocka_unit_test(test_autograd_grad_keeps_handed_out_gradients),
        cmocka_unit_test(test_autograd_activation_backward_writes_over_its_gradient),
        cmocka_unit_test(test_autograd_chunk_gradients_share_one_buffer),
        cmocka_unit_test(test_autograd_create_graph_hessian_vector),
        cmocka_unit_test(test_autograd_steady_state_no_malloc),
        cmocka_unit_test(test_autograd_leaf_shared_by_successive_contexts),
        cmocka_unit_test_setup_teardown(test_autograd_many_leaves_in_one_pass, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_autograd_grad_sink_only_inside_backward, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test(test_autograd_grad_hook_runs_when_final),
        cmocka_unit_test(test_autograd_grad_hook_once_after_last_use),
        cmocka_unit_test(test_autograd_gradcheck_reports_the_element),
        cmocka_unit_test(test_autograd_gradcheck_argument_errors),
        cmocka_unit_test_setup_teardown(test_autograd_backward_error_names_backward, ctx_setup,
                                        ctx_teardown),
    };
    return cmocka_run_group_tests_name("autograd", tests, ctx_setup, ctx_teardown);
}
