/* Use after reset: a handle that outlived its context's reset is reported by
 * every function it is passed to, and valid handles never are. The stale
 * handles here always point into memory the arena still holds (its chunk,
 * or a chunk a reset retired), so no test reads freed memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "testutil.h"
#include "tensor/internal.h" /* CGI_GEN_PHASES */

/* The last error is CG_ERR_STATE naming op and who ("input 0", ...): its
 * old header intact, or its bytes since reused. */
static void assert_stale_error(const char *op, const char *who) {
    char intact[160], reused[160];
    snprintf(intact, sizeof intact,
             "%s: %s belongs to a context that was reset since it "
             "was made",
             op, who);
    snprintf(reused, sizeof reused,
             "%s: %s belongs to a context that was reset or freed "
             "since it was made",
             op, who);
    assert_int_equal(cg_last_status(), CG_ERR_STATE);
    if (strcmp(cg_last_error(), intact) != 0) assert_string_equal(cg_last_error(), reused);
    cg_clear_error();
}

/* Tensors of the same shapes as the stale ones, so the arena is refilled
 * with headers and data like those it held. */
static void refill(cg_ctx *ctx) {
    for (int i = 0; i < 4; i++) {
        assert_non_null(cg_full(ctx, CG_F32, CG_SHAPE(2, 3), 100 + i));
        assert_non_null(cg_full(ctx, CG_F32, CG_SHAPE(3, 2), 200 + i));
    }
}

/* The reproduction: made, reset, the same shapes made again. */
static void test_reset_stale_handle_reported_by_ops(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *w = leaf(CG_F32, CG_SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    cg_tensor *a = cg_full(ctx, CG_F32, CG_SHAPE(2, 3), 7);
    cg_tensor *b = cg_full(ctx, CG_F32, CG_SHAPE(3, 2), 8);
    cg_tensor *loss = cg_sum(ctx, cg_mul(ctx, a, w), NULL, 0, false);
    assert_non_null(loss);
    cg_ctx_reset(ctx);
    refill(ctx);
    cg_tensor *fresh = cg_full(ctx, CG_F32, CG_SHAPE(2, 3), 1);
    cg_clear_error();
    assert_null(cg_add(ctx, a, fresh));
    assert_stale_error("cg_add", "input 0");
    assert_null(cg_add(ctx, fresh, a));
    assert_stale_error("cg_add", "input 1");
    assert_null(cg_matmul(ctx, a, b));
    assert_stale_error("cg_matmul", "input 0");
    assert_null(cg_sum(ctx, b, NULL, 0, false));
    assert_stale_error("cg_sum", "input");
    assert_null(cg_transpose(ctx, a, 0, 1));
    assert_stale_error("cg_transpose", "input");
    assert_null(cg_reshape(ctx, b, CG_SHAPE(6)));
    assert_stale_error("cg_reshape", "input");
    assert_true(isnan(cg_item(loss)));
    assert_stale_error("cg_item", "input");
    assert_int_equal(cg_backward(loss), CG_ERR_STATE);
    assert_stale_error("cg_backward", "output");
    assert_null(cg_grad_of(w)); /* the backward added nothing */
    cg_tensor_free(w);
}

/* The other argument positions and entry points, one call each. */
static void test_reset_stale_handle_in_any_position(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *old = cg_full(ctx, CG_F32, CG_SHAPE(2, 2), 1);
    cg_ctx_reset(ctx);
    refill(ctx);
    cg_tensor *x = cg_full(ctx, CG_F32, CG_SHAPE(2, 2), 1);
    cg_tensor *w = cg_full(ctx, CG_F32, CG_SHAPE(2, 2), 1);
    cg_tensor *idx = cg_zeros(ctx, CG_I64, CG_SHAPE(2));
    cg_tensor *pair[2] = {x, old};
    cg_clear_error();
    assert_null(cg_where(ctx, x, x, old));
    assert_stale_error("cg_where", "input 2");
    assert_null(cg_linear(ctx, x, w, old));
    assert_stale_error("cg_linear", "input 2");
    assert_null(cg_concat(ctx, 2, (const cg_tensor *const *)pair, 0));
    assert_stale_error("cg_concat", "input 1");
    assert_null(cg_index_select(ctx, old, 0, idx));
    assert_stale_error("cg_index_select", "input 0");
    assert_null(cg_embedding(ctx, w, old));
    assert_stale_error("cg_embedding", "input 1");
    assert_null(cg_softmax(ctx, old, -1));
    assert_stale_error("cg_softmax", "input");
    assert_null(cg_relu(ctx, old));
    assert_stale_error("cg_relu", "input");
    assert_null(cg_argmax(ctx, old, 0, false));
    assert_stale_error("cg_argmax", "input");
    assert_null(cg_mul_scalar(ctx, old, 2));
    assert_stale_error("cg_mul_scalar", "input");
    assert_null(cg_detach(ctx, old));
    assert_stale_error("cg_detach", "input");
    assert_null(cg_clone(ctx, old));
    assert_stale_error("cg_clone", "input");
    assert_int_equal(cg_copy_(x, old), CG_ERR_STATE);
    assert_stale_error("cg_copy_", "input 1");
    assert_int_equal(cg_set_grad(x, old), CG_ERR_STATE);
    assert_stale_error("cg_set_grad", "input 1");
    cg_tensor_free(old); /* ignored, reported */
    assert_stale_error("cg_tensor_free", "input");
    assert_int_equal(cg_ctx_status(ctx), CG_ERR_STATE); /* the context keeps it too */
}

/* Accessors, copies and printing read nothing through a stale handle. */
static void test_reset_stale_handle_reported_by_accessors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = cg_full(ctx, CG_F64, CG_SHAPE(2, 3), 7);
    cg_ctx_reset(ctx);
    refill(ctx);
    cg_clear_error();
    double out[6] = {-1, -1, -1, -1, -1, -1};
    assert_int_equal(cg_copy_to_array(a, CG_F64, out), CG_ERR_STATE);
    assert_stale_error("cg_copy_to_array", "input");
    assert_float_equal(out[0], -1, 0);
    assert_null(cg_data(a));
    assert_stale_error("cg_data", "input");
    assert_int_equal(cg_ndim(a), -1);
    assert_stale_error("cg_ndim", "input");
    assert_null(cg_shape(a));
    assert_stale_error("cg_shape", "input");
    assert_int_equal(cg_get(a, (int64_t[]){0, 0}, out), CG_ERR_STATE);
    assert_stale_error("cg_get", "input");
    assert_int_equal(cg_fill_(a, 3), CG_ERR_STATE);
    assert_stale_error("cg_fill_", "input");
    assert_int_equal(cg_set_requires_grad(a, true), CG_ERR_STATE);
    assert_stale_error("cg_set_requires_grad", "input");
    char buf[64];
    cg_format(a, buf, sizeof buf);
    assert_string_equal(buf, "tensor(stale handle)");
    assert_stale_error("cg_format", "input");
}

static void test_reset_stale_handle_reported_by_grad(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(2), (double[]){1, 2});
    cg_tensor *y = cg_sum(ctx, cg_mul(ctx, x, x), NULL, 0, false), *g = NULL;
    cg_ctx_reset(ctx);
    refill(ctx);
    cg_clear_error();
    assert_int_equal(cg_grad(ctx, 1, &y, NULL, 1, &x, &g, 0), CG_ERR_STATE);
    assert_stale_error("cg_grad", "output 0");
    assert_null(g);
    cg_tensor *y2 = cg_sum(ctx, cg_mul(ctx, x, x), NULL, 0, false);
    cg_tensor *stale_in = y; /* a stale tensor given as the input */
    assert_int_equal(cg_grad(ctx, 1, &y2, NULL, 1, &stale_in, &g, 0), CG_ERR_STATE);
    assert_stale_error("cg_grad", "input 0");
    cg_tensor_free(x);
}

static cg_tensor *square_sum(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    (void)user;
    return cg_sum(ctx, cg_mul(ctx, in[0], in[0]), NULL, 0, false);
}

static void test_reset_stale_handle_reported_by_gradcheck(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *old = cg_ones(ctx, CG_F64, CG_SHAPE(2));
    cg_ctx_reset(ctx);
    refill(ctx);
    cg_clear_error();
    cg_gradcheck_report r;
    assert_false(cg_gradcheck(square_sum, NULL, 1, &old, NULL, &r));
    assert_non_null(strstr(r.msg, "cg_gradcheck: input 0 belongs to a context that was reset"));
    assert_stale_error("cg_gradcheck", "input 0");
}

/* A training-like loop: a handle kept from step k and used at step k + 1
 * (the same tensors, made in the same order, every step) is always caught,
 * and so is one used up to CGI_GEN_PHASES - 1 steps later. */
#define LAGS (CGI_GEN_PHASES > 2 ? CGI_GEN_PHASES : 2) /* lag 1 at least */
static void test_reset_stale_handle_every_step(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *w = leaf(CG_F32, CG_SHAPE(4), (double[]){1, 2, 3, 4});
    cg_tensor *kept[LAGS] = {NULL};
    for (int step = 0; step < 100; step++) {
        cg_tensor *x = cg_full(ctx, CG_F32, CG_SHAPE(4), step);
        cg_tensor *y = cg_mul(ctx, x, w), *loss = cg_sum(ctx, y, NULL, 0, false);
        assert_int_equal(cg_backward(loss), CG_OK);
        for (int lag = 1; lag < LAGS; lag++) {
            if (!kept[lag]) continue;
            cg_clear_error();
            assert_null(cg_add(ctx, kept[lag], x));
            assert_stale_error("cg_add", "input 0");
        }
        for (int lag = LAGS - 1; lag > 1; lag--) kept[lag] = kept[lag - 1];
        kept[1] = step % 3 == 0 ? x : step % 3 == 1 ? y : loss;
        cg_ctx_reset(ctx);
    }
    assert_float_equal(cg_numel(cg_grad_of(w)), 4, 0);
    cg_tensor_free(w);
}

/* A reset that merges the arena's chunks keeps the old ones for
 * CGI_GEN_PHASES - 1 more resets: handles into them still read mapped
 * memory (ASan would report a read of freed memory here), and are caught. */
static void test_reset_stale_handle_after_arena_grew(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = cg_full(ctx, CG_F32, CG_SHAPE(4), 1);
    assert_non_null(cg_zeros(ctx, CG_F32, CG_SHAPE(600000))); /* > 1 MiB: a new chunk */
    cg_tensor *late = cg_full(ctx, CG_F32, CG_SHAPE(4), 2);
    assert_true(cg_ctx_get_stats(ctx).chunk_allocs >= 2);
    for (int lag = 1; lag < CGI_GEN_PHASES; lag++) {
        cg_ctx_reset(ctx);
        refill(ctx);
        cg_clear_error();
        assert_null(cg_neg(ctx, a));
        assert_stale_error("cg_neg", "input");
        assert_null(cg_neg(ctx, late));
        assert_stale_error("cg_neg", "input");
    }
}

/* Views, caller-owned and borrowed tensors, leaves' gradients and tensors
 * made after a reset are never taken for stale, over many resets. */
static void test_reset_valid_tensors_not_flagged(void **state) {
    cg_ctx *ctx = *state;
    float buf[6] = {1, 2, 3, 4, 5, 6};
    cg_tensor *heap = cg_from_array(NULL, CG_F32, CG_SHAPE(2, 3), buf);
    cg_tensor *wrapped = cg_wrap(NULL, CG_F32, CG_SHAPE(2, 3), buf);
    cg_tensor *w = leaf(CG_F32, CG_SHAPE(2, 3), (double[]){1, 1, 1, 1, 1, 1});
    cg_tensor *hview = cg_transpose(NULL, heap, 0, 1);
    for (int step = 0; step < 2 * CGI_GEN_PHASES + 1; step++) {
        cg_clear_error();
        cg_tensor *a = cg_add(ctx, heap, cg_wrap(ctx, CG_F32, CG_SHAPE(2, 3), buf));
        cg_tensor *v[] = {cg_transpose(ctx, a, 0, 1),
                          cg_slice(ctx, a, 1, 0, 2, 1),
                          cg_select(ctx, a, 0, 1),
                          cg_expand(ctx, cg_unsqueeze(ctx, a, 0), CG_SHAPE(2, 2, 3)),
                          cg_detach(ctx, a),
                          hview,
                          wrapped};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            assert_non_null(v[i]);
            assert_non_null(cg_sum(ctx, v[i], NULL, 0, false));
            assert_true(cg_ndim(v[i]) >= 1);
        }
        cg_tensor *loss = cg_sum(ctx, cg_mul(ctx, a, w), NULL, 0, false);
        assert_int_equal(cg_backward(loss), CG_OK);
        assert_non_null(cg_add(ctx, cg_grad_of(w), a));
        assert_float_equal(cg_item(cg_sum(ctx, cg_grad_of(w), NULL, 0, false)),
                           42.0 * (step + 1), 1e-3);
        assert_int_equal(cg_last_status(), CG_OK);
        assert_int_equal(cg_ctx_status(ctx), CG_OK);
        cg_ctx_reset(ctx);
    }
    cg_tensor_free(hview);
    cg_tensor_free(wrapped);
    cg_tensor_free(heap);
    cg_tensor_free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reset_stale_handle_reported_by_ops, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_reset_stale_handle_in_any_position, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_reset_stale_handle_reported_by_accessors,
                                        ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_reset_stale_handle_reported_by_grad, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_reset_stale_handle_reported_by_gradcheck,
                                        ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_reset_stale_handle_every_step, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_reset_stale_handle_after_arena_grew, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_reset_valid_tensors_not_flagged, ctx_setup,
                                        ctx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
