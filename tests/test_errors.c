/* Issue 10's error manners, across tensor/, autograd/ and ops/: no function
 * reports an error only by a sentinel (NaN, -1, false, NULL, an unchanged
 * value), and every message names the function the caller called, not one
 * it calls inside. Leaks are caught by the sanitizer build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

/* The thread's last error has status st and its message starts with
 * prefix; clears it. */
static void assert_prefix(cg_status st, const char *prefix) {
    assert_int_equal(cg_last_status(), st);
    if (strncmp(cg_last_error(), prefix, strlen(prefix)) != 0)
        fail_msg("\"%s\" does not start with \"%s\"", cg_last_error(), prefix);
    cg_clear_error();
}

/* ---- tensor/: values that used to be sentinels only ----------------------- */
static void test_errors_item_null_and_non_scalar(void **state) {
    cg_ctx *ctx = *state;
    cg_clear_error();
    assert_true(isnan(cg_item(NULL)));
    assert_prefix(CG_ERR_ARG, "cg_item: tensor is NULL");
    assert_true(isnan(cg_item(cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3)))));
    assert_prefix(CG_ERR_SHAPE, "cg_item: [2,3]: needs exactly one element");
    assert_float_equal(cg_item(cg_scalar(ctx, CG_F64, 2.5)), 2.5, 0);
    assert_int_equal(cg_last_status(), CG_OK);
}

static void test_errors_inspectors_report_null(void **state) {
    cg_tensor *t = cg_zeros(*state, CG_F32, CG_SHAPE(2));
    cg_clear_error();
    assert_int_equal(cg_numel(NULL), -1);
    assert_prefix(CG_ERR_ARG, "cg_numel: tensor is NULL");
    assert_int_equal(cg_ndim(NULL), -1);
    assert_prefix(CG_ERR_ARG, "cg_ndim: tensor is NULL");
    assert_int_equal(cg_dim(NULL, 0), -1);
    assert_prefix(CG_ERR_ARG, "cg_dim: tensor is NULL");
    assert_int_equal(cg_offset(NULL), -1);
    assert_prefix(CG_ERR_ARG, "cg_offset: tensor is NULL");
    assert_int_equal(cg_dtype_of(NULL), CG_F32);
    assert_prefix(CG_ERR_ARG, "cg_dtype_of: tensor is NULL");
    assert_false(cg_is_contiguous(NULL));
    assert_prefix(CG_ERR_ARG, "cg_is_contiguous: tensor is NULL");
    assert_false(cg_same_shape(t, NULL));
    assert_prefix(CG_ERR_ARG, "cg_same_shape: tensor is NULL");
    assert_null(cg_shape(NULL));
    assert_prefix(CG_ERR_ARG, "cg_shape: tensor is NULL");
    assert_null(cg_strides(NULL));
    assert_prefix(CG_ERR_ARG, "cg_strides: tensor is NULL");
    assert_null(cg_data(NULL));
    assert_prefix(CG_ERR_ARG, "cg_data: tensor is NULL");
}

/* A NULL made by a failed op keeps that op's error, as every op does. */
static void test_errors_inspectors_keep_the_first_error(void **state) {
    cg_ctx *ctx = *state;
    cg_clear_error();
    cg_tensor *bad = cg_reshape(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3)), CG_SHAPE(4));
    assert_int_equal(cg_numel(bad), -1);
    assert_true(isnan(cg_item(bad)));
    assert_false(cg_requires_grad(bad));
    assert_prefix(CG_ERR_SHAPE, "cg_reshape: cannot reshape [2,3]");
}

static void test_errors_dim_out_of_range(void **state) {
    cg_tensor *t = cg_zeros(*state, CG_F32, CG_SHAPE(2, 3));
    cg_clear_error();
    assert_int_equal(cg_dim(t, 2), -1);
    assert_prefix(CG_ERR_INDEX, "cg_dim: axis 2 out of range for rank 2");
    assert_int_equal(cg_dim(t, -1), 3);
    assert_int_equal(cg_last_status(), CG_OK);
}

/* cg_dtype_size reports an invalid dtype; a creator given one still names
 * itself (its own error is not overwritten by the size lookup). */
static void test_errors_invalid_dtype(void **state) {
    cg_ctx *ctx = *state;
    cg_clear_error();
    assert_int_equal(cg_dtype_size((cg_dtype)7), 0);
    assert_prefix(CG_ERR_DTYPE, "cg_dtype_size: invalid dtype 7");
    assert_null(cg_arange(ctx, (cg_dtype)7, 0, 4, 1));
    assert_prefix(CG_ERR_DTYPE, "cg_arange: invalid dtype 7");
    assert_null(cg_linspace(ctx, (cg_dtype)7, 0, 1, 3));
    assert_prefix(CG_ERR_DTYPE, "cg_linspace: invalid dtype 7");
    assert_null(cg_eye(ctx, (cg_dtype)7, 2, 2));
    assert_prefix(CG_ERR_DTYPE, "cg_eye: invalid dtype 7");
}

static void test_errors_rng_seed_returns_status(void **state) {
    (void)state;
    cg_rng rng;
    assert_int_equal(cg_rng_seed(&rng, 1), CG_OK);
    assert_int_equal(cg_rng_seed(NULL, 1), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_rng_seed: rng is NULL");
}

static void test_errors_print_returns_status(void **state) {
    cg_tensor *t = cg_ones(*state, CG_F32, CG_SHAPE(2));
    char buf[64];
    cg_clear_error();
    assert_int_equal(cg_fprint(NULL, t), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_fprint: file is NULL");
    FILE *ro = fopen("/dev/null", "r"); /* writes fail: the stream is read-only */
    assert_non_null(ro);
    assert_int_equal(cg_fprint(ro, t), CG_ERR_IO);
    assert_prefix(CG_ERR_IO, "cg_fprint: write failed");
    fclose(ro);
    assert_int_equal(cg_format(t, NULL, 10), 0);
    assert_prefix(CG_ERR_ARG, "cg_format: buf is NULL for size 10");
    size_t need = cg_format(t, NULL, 0); /* snprintf's measuring call */
    assert_int_equal(cg_last_status(), CG_OK);
    assert_int_equal(cg_format(t, buf, sizeof buf), need);
}

/* ---- autograd/ --------------------------------------------------------------- */
static void test_errors_node_accessors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = seeded_leaf(1, CG_F64, CG_SHAPE(2), 1);
    cg_tensor *y = cg_add(ctx, x, x);
    const cg_node *n = cg_grad_fn(y);
    assert_non_null(n);
    cg_clear_error();
    assert_null(cg_node_input(n, 2));
    assert_prefix(CG_ERR_INDEX, "cg_node_input: input 2 out of range for a cg_add node of 2");
    assert_false(cg_node_needs_grad(n, -1));
    assert_prefix(CG_ERR_INDEX, "cg_node_needs_grad: input -1 out of range");
    assert_null(cg_node_grad_sink(n, 5));
    assert_prefix(CG_ERR_INDEX, "cg_node_grad_sink: input 5 out of range");
    assert_true(cg_node_needs_grad(n, 1));
    assert_int_equal(cg_node_ninputs(NULL), 0);
    assert_prefix(CG_ERR_ARG, "cg_node_ninputs: node is NULL");
    assert_null(cg_node_op(NULL));
    assert_prefix(CG_ERR_ARG, "cg_node_op: node is NULL");
    assert_null(cg_node_saved(NULL));
    assert_prefix(CG_ERR_ARG, "cg_node_saved: node is NULL");
    assert_null(cg_node_output(NULL));
    assert_prefix(CG_ERR_ARG, "cg_node_output: node is NULL");
    cg_tensor_free(x);
}

static void test_errors_leaf_queries_report_null(void **state) {
    (void)state;
    cg_clear_error();
    assert_false(cg_requires_grad(NULL));
    assert_prefix(CG_ERR_ARG, "cg_requires_grad: tensor is NULL");
    assert_false(cg_is_leaf(NULL));
    assert_prefix(CG_ERR_ARG, "cg_is_leaf: tensor is NULL");
    assert_null(cg_grad_of(NULL));
    assert_prefix(CG_ERR_ARG, "cg_grad_of: tensor is NULL");
    assert_null(cg_grad_fn(NULL));
    assert_prefix(CG_ERR_ARG, "cg_grad_fn: tensor is NULL");
}

static cg_status id_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                             cg_tensor **gin) {
    (void)ctx;
    (void)n;
    gin[0] = (cg_tensor *)g;
    return CG_OK;
}
static const cg_op id_op = {"my_id", id_backward, 0};

/* Bad arguments to cg_record are errors, and a caller-owned out is freed
 * (the sanitizer build checks that nothing leaks). */
static void test_errors_record_bad_arguments(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = seeded_leaf(5, CG_F64, CG_SHAPE(2), 1);
    cg_clear_error();
    assert_null(cg_record(ctx, NULL, cg_clone(NULL, x), 1, (const cg_tensor *[]){x}, NULL, 0));
    assert_prefix(CG_ERR_ARG, "cg_record: op is NULL");
    assert_null(cg_record(ctx, &id_op, cg_zeros(NULL, CG_F64, CG_SHAPE(2)), 1,
                          (const cg_tensor *[]){NULL}, NULL, 0));
    assert_prefix(CG_ERR_ARG, "cg_my_id: cg_record: out or an input is NULL");
    assert_null(cg_record(ctx, &id_op, cg_zeros(NULL, CG_F64, CG_SHAPE(2)), 1,
                          (const cg_tensor *[]){x}, NULL, 8));
    assert_prefix(CG_ERR_ARG, "cg_record: saved is NULL with a non-zero saved_size (op my_id");
    static const cg_op no_rule = {"no_rule", NULL, 0};
    assert_null(cg_record(ctx, &no_rule, cg_zeros(NULL, CG_F64, CG_SHAPE(2)), 1,
                          (const cg_tensor *[]){x}, NULL, 0));
    assert_prefix(CG_ERR_ARG, "cg_record: the op has no backward rule (op no_rule");
    assert_null(cg_record(ctx, &id_op, cg_zeros(NULL, CG_F64, CG_SHAPE(2)), -1,
                          (const cg_tensor *[]){x}, NULL, 0));
    assert_prefix(CG_ERR_ARG, "cg_record: ninputs is negative");
    cg_tensor *y = cg_record(ctx, &id_op, cg_zeros(ctx, CG_F64, CG_SHAPE(2)), 1,
                             (const cg_tensor *[]){x}, NULL, 0);
    assert_non_null(y);
    assert_string_equal(cg_node_op(cg_grad_fn(y))->name, "my_id");
    cg_tensor_free(x);
}

/* The outside campaign's findings (issue "hardening"), each refused with a
 * message: dims whose product overflows int64 (it wrapped to the element
 * count, and a select then wrote outside the buffer), a zero-element tensor
 * whose other dims overflow the strides, a step past the end of int64, a
 * misaligned wrap, writes into an expanded view, a NULL out, unknown flag
 * bits, a NaN correction, an optimizer state index out of range. */
static void test_errors_campaign_findings(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *a = cg_zeros(ctx, CG_F32, CG_SHAPE(6));
    const int64_t wrap[3] = {INT64_MAX, INT64_MAX, 6};
    assert_null(cg_reshape(ctx, a, 3, wrap));
    assert_prefix(CG_ERR_SHAPE, "cg_reshape: [9223372036854775807,9223372036854775807,6]: too");
    assert_null(cg_view(ctx, a, 3, wrap));
    assert_prefix(CG_ERR_SHAPE, "cg_view: ");
    assert_null(cg_reshape(ctx, a, 3, (const int64_t[]){-1, INT64_MAX, INT64_MAX}));
    assert_prefix(CG_ERR_SHAPE, "cg_reshape: ");
    assert_null(cg_zeros(ctx, CG_F32, CG_SHAPE(0, INT64_MAX, INT64_MAX)));
    assert_prefix(CG_ERR_SHAPE, "cg_zeros: [0,9223372036854775807,9223372036854775807]: too");
    cg_tensor *b = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3));
    cg_tensor *s = cg_slice(ctx, b, 1, 0, CG_END, INT64_MAX);
    assert_non_null(s);
    assert_int_equal(cg_shape(s)[1], 1); /* PyTorch: b[:, ::2**63-1] is [2, 1] */
    _Alignas(8) char buf[64] = {0};
    assert_null(cg_wrap(ctx, CG_F32, CG_SHAPE(2), buf + 1));
    assert_prefix(CG_ERR_ARG, "cg_wrap: data ");
    assert_non_null(cg_wrap(ctx, CG_F32, CG_SHAPE(2), buf + 4));
    cg_tensor *e = cg_expand(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(1)), 1, (const int64_t[]){4});
    assert_int_equal(cg_copy_(e, cg_ones(ctx, CG_F32, CG_SHAPE(4))), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_copy_: [4] is an expanded view");
    assert_int_equal(cg_fill_(e, 1), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_fill_: [4] is an expanded view");
    assert_int_equal(cg_set(e, (const int64_t[]){0}, 1), CG_ERR_ARG);
    assert_int_equal(cg_init_constant_(e, 1), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_init_constant_: [4] is an expanded view");
    assert_int_equal(cg_get(b, (const int64_t[]){0, 0}, NULL), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_get: out is NULL");
    assert_int_equal(cg_get_i64(b, (const int64_t[]){0, 0}, NULL), CG_ERR_ARG);
    cg_tensor *x = seeded_leaf(3, CG_F64, CG_SHAPE(2), 1);
    cg_tensor *l = cg_sum(ctx, cg_square(ctx, x), NULL, 0, false), *g;
    assert_int_equal(cg_backward_ex(l, NULL, 4), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_backward_ex: unknown flag bits 0x4");
    assert_int_equal(cg_grad(ctx, 1, &l, NULL, 1, &x, &g, 8), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_grad: unknown flag bits 0x8");
    assert_null(cg_var(ctx, b, NULL, 0, NAN, false));
    assert_prefix(CG_ERR_ARG, "cg_var: correction");
    assert_null(cg_std(ctx, b, NULL, 0, INFINITY, false));
    assert_prefix(CG_ERR_ARG, "cg_std: correction");
    cg_tensor *ps[1] = {x};
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    so.momentum = 0.9; /* one state tensor per parameter */
    cg_optim *o = cg_sgd_new_groups(1, &(cg_param_group){1, ps, NULL}, &so);
    assert_non_null(o);
    assert_null(cg_optim_state(o, 99, NULL));
    assert_prefix(CG_ERR_INDEX, "cg_optim_state: index 99 out of range");
    cg_optim_free(o);
    cg_tensor_free(x);
    /* a number beyond i64 against an i64 tensor: f32, as PyTorch (the old
     * test cast it to i64 first, undefined behaviour) */
    cg_tensor *iv = cg_from_array(ctx, CG_I64, CG_SHAPE(2), (const int64_t[]){1, 2});
    cg_tensor *big = cg_add_scalar(ctx, iv, 1e30);
    assert_non_null(big);
    assert_int_equal(cg_dtype_of(big), CG_F32);
    assert_float_equal(((float *)cg_data(big))[1], 1e30f, 1e23);
    assert_int_equal(cg_dtype_of(cg_mul_scalar(ctx, iv, NAN)), CG_F32);
}

static void test_errors_no_grad_pop_without_push(void **state) {
    cg_ctx *ctx = cg_ctx_new();
    (void)state;
    assert_int_equal(cg_no_grad_pop(ctx), CG_ERR_STATE);
    assert_prefix(CG_ERR_STATE, "cg_no_grad_pop: no cg_no_grad_push to undo");
    assert_int_equal(cg_ctx_status(ctx), CG_ERR_STATE);
    assert_true(cg_is_grad_enabled(ctx));
    assert_int_equal(cg_no_grad_push(ctx), CG_OK);
    assert_false(cg_is_grad_enabled(ctx));
    assert_int_equal(cg_no_grad_pop(ctx), CG_OK);
    assert_true(cg_is_grad_enabled(ctx));
    assert_int_equal(cg_no_grad_push(NULL), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_no_grad_push: ctx is NULL");
    assert_int_equal(cg_no_grad_pop(NULL), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_no_grad_pop: ctx is NULL");
    cg_ctx_free(ctx);
}

static void test_errors_ctx_queries_report_null(void **state) {
    (void)state;
    cg_clear_error();
    assert_int_equal(cg_ctx_status(NULL), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_ctx_status: ctx is NULL");
    assert_string_equal(cg_ctx_error(NULL), "");
    assert_prefix(CG_ERR_ARG, "cg_ctx_error: ctx is NULL");
}

static void test_errors_broadcast_shapes_null_arrays(void **state) {
    (void)state;
    int n;
    int64_t out[CG_MAX_DIMS];
    assert_int_equal(cg_broadcast_shapes("my_op", 2, NULL, 1, (int64_t[]){3}, &n, out),
                     CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "my_op: a shape, nout or out is NULL");
    assert_int_equal(cg_broadcast_shapes(NULL, 1, (int64_t[]){2}, 1, (int64_t[]){3}, &n, out),
                     CG_ERR_SHAPE);
    assert_prefix(CG_ERR_SHAPE, "cg_broadcast_shapes: [2] and [3]");
    assert_int_equal(cg_broadcast_shapes(NULL, 0, NULL, 0, NULL, NULL, out), CG_ERR_ARG);
    assert_prefix(CG_ERR_ARG, "cg_broadcast_shapes: a shape, nout or out is NULL");
}

/* ---- gradcheck: a check that cannot run is an error, a disagreement is not -------- */
static cg_tensor *square_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    (void)user;
    return cg_square(ctx, in[0]);
}
static cg_tensor *failing_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    (void)user;
    return cg_matmul(ctx, in[0], in[1]); /* [3] x [2,3]: no product */
}
static cg_tensor *wrong_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    (void)user;
    cg_tensor *c = cg_detach(ctx, in[0]); /* the gradient through c is lost */
    return cg_mul(ctx, in[0], c);
}

static void test_errors_gradcheck_cannot_run(void **state) {
    (void)state;
    cg_tensor *x = seeded_leaf(4, CG_F64, CG_SHAPE(3), 1);
    cg_tensor *f = seeded_leaf(4, CG_F32, CG_SHAPE(3), 1);
    cg_tensor *m = seeded_leaf(4, CG_F64, CG_SHAPE(2, 3), 1);
    cg_gradcheck_report r;
    cg_clear_error();
    assert_false(cg_gradcheck(NULL, NULL, 1, &x, NULL, NULL));
    assert_prefix(CG_ERR_ARG, "cg_gradcheck: needs a function and inputs");
    assert_false(cg_gradcheck(square_fn, NULL, 1, &f, NULL, &r));
    assert_prefix(CG_ERR_DTYPE, "cg_gradcheck: inputs that require a gradient must be f64");
    assert_string_equal(r.msg, "gradcheck: inputs that require a gradient must be f64");
    cg_tensor *in2[2] = {x, m};
    assert_false(cg_gradcheck(failing_fn, NULL, 2, in2, NULL, NULL));
    assert_prefix(CG_ERR_SHAPE, "cg_gradcheck: the function failed: cg_matmul: ");
    assert_false(cg_gradgradcheck(square_fn, NULL, 0, &x, NULL, NULL));
    assert_prefix(CG_ERR_ARG, "cg_gradgradcheck: needs a function and 1 to 16 inputs");
    assert_false(cg_gradcheck(wrong_fn, NULL, 1, &x, NULL, &r));
    assert_int_equal(cg_last_status(), CG_OK); /* a result, told in the report */
    assert_int_equal(r.input, 0);
    cg_tensor_free(x);
    cg_tensor_free(f);
    cg_tensor_free(m);
}

/* ---- names: the function called, not the one it calls ---------------------------- */
/* A heap view of a context tensor is refused under the view's own name. */
static void test_errors_views_name_themselves(void **state) {
    cg_tensor *t = cg_ones(*state, CG_F32, CG_SHAPE(2, 3));
    cg_clear_error();
    assert_null(cg_transpose(NULL, t, 0, 1));
    assert_prefix(CG_ERR_STATE, "cg_transpose: a view of a context tensor");
    assert_null(cg_narrow(NULL, t, 1, 0, 2));
    assert_prefix(CG_ERR_STATE, "cg_narrow: a view of a context tensor");
    assert_null(cg_flatten(NULL, t, 0, -1));
    assert_prefix(CG_ERR_STATE, "cg_flatten: a view of a context tensor");
    assert_null(cg_contiguous(NULL, t)); /* contiguous already: a view */
    assert_prefix(CG_ERR_STATE, "cg_contiguous: a view of a context tensor");
}

/* A graph needs a context: cg_record's message names the function called. */
static void test_errors_graph_without_context_names_function(void **state) {
    (void)state;
    cg_tensor *x = seeded_leaf(2, CG_F64, CG_SHAPE(2, 3), 1);
    cg_clear_error();
    assert_null(cg_view(NULL, x, CG_SHAPE(6)));
    assert_prefix(CG_ERR_STATE, "cg_view: an input requires a gradient");
    assert_null(cg_flatten(NULL, x, 0, -1));
    assert_prefix(CG_ERR_STATE, "cg_flatten: an input requires a gradient");
    assert_null(cg_squeeze(NULL, x, 0));
    assert_prefix(CG_ERR_STATE, "cg_squeeze: an input requires a gradient");
    assert_null(cg_unsqueeze(NULL, x, 0));
    assert_prefix(CG_ERR_STATE, "cg_unsqueeze: an input requires a gradient");
    assert_null(cg_narrow(NULL, x, 1, 0, 2));
    assert_prefix(CG_ERR_STATE, "cg_narrow: an input requires a gradient");
    assert_null(cg_contiguous(NULL, x));
    assert_prefix(CG_ERR_STATE, "cg_contiguous: an input requires a gradient");
    cg_tensor_free(x);
}

static void test_errors_like_creators_name_themselves(void **state) {
    cg_ctx *ctx = *state;
    cg_clear_error();
    assert_null(cg_zeros_like(ctx, NULL));
    assert_prefix(CG_ERR_ARG, "cg_zeros_like: tensor is NULL");
    assert_null(cg_ones_like(ctx, NULL));
    assert_prefix(CG_ERR_ARG, "cg_ones_like: tensor is NULL");
}

/* ctx NULL on a context input: the result is the caller's, as for any op
 * (it used to fail with cg_reshape's message about heap views). */
static void test_errors_linear_without_context(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(1, 2, 2), (double[]){1, 2, 3, 4});
    cg_tensor *w = cg_from_array(NULL, CG_F64, CG_SHAPE(1, 2), (double[]){1, 10});
    cg_tensor *y = cg_linear(NULL, x, w, NULL);
    assert_values(y, (double[]){21, 43}, 2, 0);
    assert_int_equal(cg_dim(y, 2), 1);
    cg_tensor_free(y);
    cg_tensor_free(w);
}

static void test_errors_losses_name_themselves(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = seeded_leaf(3, CG_F64, CG_SHAPE(2, 3), 1);
    cg_tensor *labels = cg_from_array(ctx, CG_I64, CG_SHAPE(2), (int64_t[]){0, 2});
    cg_clear_error();
    assert_null(cg_cross_entropy_ex(NULL, x, labels, CG_MEAN, 0.1, CG_IGNORE_NONE));
    assert_prefix(CG_ERR_STATE, "cg_cross_entropy_ex: an input requires a gradient");
    assert_null(cg_nll_loss(NULL, x, labels, CG_SUM));
    assert_prefix(CG_ERR_STATE, "cg_nll_loss: an input requires a gradient");
    /* without a context, a bad probability frees what the check made */
    cg_tensor *p = cg_from_array(NULL, CG_F64, CG_SHAPE(2), (double[]){0.5, 1.5});
    assert_null(cg_bce_loss(NULL, p, p, CG_MEAN));
    assert_prefix(CG_ERR_ARG, "cg_bce_loss: input [2]: probabilities must be in [0, 1]");
    cg_tensor_free(p);
    cg_tensor_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_item_null_and_non_scalar),
        cmocka_unit_test(test_errors_inspectors_report_null),
        cmocka_unit_test(test_errors_inspectors_keep_the_first_error),
        cmocka_unit_test(test_errors_dim_out_of_range),
        cmocka_unit_test(test_errors_invalid_dtype),
        cmocka_unit_test(test_errors_rng_seed_returns_status),
        cmocka_unit_test(test_errors_print_returns_status),
        cmocka_unit_test(test_errors_node_accessors),
        cmocka_unit_test(test_errors_leaf_queries_report_null),
        cmocka_unit_test(test_errors_record_bad_arguments),
        cmocka_unit_test(test_errors_no_grad_pop_without_push),
        cmocka_unit_test(test_errors_ctx_queries_report_null),
        cmocka_unit_test(test_errors_broadcast_shapes_null_arrays),
        cmocka_unit_test(test_errors_gradcheck_cannot_run),
        cmocka_unit_test(test_errors_views_name_themselves),
        cmocka_unit_test(test_errors_graph_without_context_names_function),
        cmocka_unit_test(test_errors_like_creators_name_themselves),
        cmocka_unit_test(test_errors_linear_without_context),
        cmocka_unit_test(test_errors_losses_name_themselves),
        cmocka_unit_test(test_errors_campaign_findings),
    };
    return cmocka_run_group_tests_name("errors", tests, ctx_setup, ctx_teardown);
}
