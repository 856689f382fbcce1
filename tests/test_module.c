/* The public module interface: a user's own kinds with parameters, buffers
 * and children, state_dict names, containers, sharing and tied weights,
 * ownership, printing, predict, and every error path. */
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

/* ---- a user's layer: y = alpha * x + shift, alpha a parameter, shift a buffer ---- */
typedef struct scale_data {
    int calls; /* the kind's own state: how often forward ran */
} scale_data;

static int scale_frees; /* free_data calls, to check the hook runs once */

static cg_tensor *scale_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    scale_data *d = cg_module_data(m);
    d->calls++;
    return cg_add(ctx, cg_mul(ctx, x, cg_module_get(m, "alpha")), cg_module_get(m, "shift"));
}

static void scale_free(void *data) {
    scale_frees++;
    free(data);
}

static const cg_module_kind scale_kind = {"Scale", scale_forward, scale_free, NULL};

static cg_module *scale_new(cg_dtype dt, double alpha, double shift) {
    scale_data *d = calloc(1, sizeof *d);
    cg_module *m = cg_module_new(&scale_kind, d);
    cg_module_add_param(m, "alpha", cg_full(NULL, dt, CG_SHAPE(1), alpha));
    cg_module_add_buffer(m, "shift", cg_full(NULL, dt, CG_SHAPE(1), shift));
    assert_non_null(m);
    return m;
}

/* ---- a residual block: x + fc2(relu(fc1(x))), children by name ---------------------- */
static cg_tensor *block_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    cg_tensor *h = cg_module_forward(ctx, cg_module_find_child(m, "fc1"), x);
    h = cg_module_forward(ctx, cg_module_find_child(m, "fc2"), cg_relu(ctx, h));
    return cg_add(ctx, x, h);
}

static const cg_module_kind block_kind = {"Residual", block_forward, NULL, NULL};

static cg_module *block_new(cg_rng *rng, int64_t dim) {
    cg_module *m = cg_module_new(&block_kind, NULL);
    cg_module_add_child(m, "fc1", cg_nn_linear(rng, CG_F64, dim, 2 * dim, true));
    cg_module_add_child(m, "fc2", cg_nn_linear(rng, CG_F64, 2 * dim, dim, true));
    assert_int_equal(cg_module_nchildren(m), 2);
    return m;
}

static cg_tensor *module_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return cg_module_forward(ctx, user, in[0]);
}

static void assert_names(const cg_module *m, int n, const char *const *want) {
    assert_int_equal(cg_module_nstate(m), n);
    for (int i = 0; i < n; i++) {
        const char *name = NULL;
        assert_non_null(cg_module_state(m, i, &name, NULL));
        assert_string_equal(name, want[i]);
    }
}

/* ---- a user kind ---------------------------------------------------------------------- */
static void test_module_user_kind_forward(void **state) {
    cg_ctx *ctx = *state;
    scale_frees = 0;
    cg_module *m = scale_new(CG_F64, 3, 1);
    cg_tensor *y = cg_module_forward(
        ctx, m, cg_from_array(ctx, CG_F64, CG_SHAPE(2), (const double[]){1, 2}));
    assert_values(y, (const double[]){4, 7}, 2, 0);
    assert_int_equal(((scale_data *)cg_module_data(m))->calls, 1);
    assert_string_equal(cg_module_name(m), "Scale");
    assert_ptr_equal(cg_module_kind_of(m), &scale_kind);
    assert_names(m, 2, (const char *[]){"alpha", "shift"});
    assert_int_equal(cg_module_nparams(m), 1); /* the buffer is state, not a parameter */
    assert_true(cg_requires_grad(cg_module_get(m, "alpha")));
    assert_false(cg_requires_grad(cg_module_get(m, "shift")));
    assert_int_equal(cg_backward(cg_sum(ctx, y, NULL, 0, false)), CG_OK);
    assert_values(cg_grad_of(cg_module_get(m, "alpha")), (const double[]){3}, 1, 0);
    assert_int_equal(cg_module_free(m), CG_OK);
    assert_int_equal(scale_frees, 1);
}

static void test_module_user_kind_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(1);
    cg_module *m = block_new(&rng, 3);
    cg_tensor *x = seeded_leaf(2, CG_F64, CG_SHAPE(4, 3), 1);
    cg_tensor *in[5] = {x};
    for (int i = 0; i < 4; i++) in[1 + i] = cg_module_param(m, i, NULL);
    cg_assert_gradcheck(module_fn, m, 5, in);
    cg_tensor_free(x);
    cg_module_free(m);
}

/* PyTorch's names: own tensors first, then children depth first. */
static void test_module_nested_names(void **state) {
    (void)state;
    cg_rng rng = seeded(3);
    cg_module *blocks[] = {block_new(&rng, 2), block_new(&rng, 2)};
    cg_module *net = cg_module_new(&block_kind, NULL);
    cg_module_add_param(net, "gain", cg_ones(NULL, CG_F64, CG_SHAPE(2)));
    cg_module *list = cg_module_add_child(net, "blocks", cg_nn_module_list(2, blocks));
    assert_non_null(list);
    assert_names(net, 9,
                 (const char *[]){"gain", "blocks.0.fc1.weight", "blocks.0.fc1.bias",
                                  "blocks.0.fc2.weight", "blocks.0.fc2.bias",
                                  "blocks.1.fc1.weight", "blocks.1.fc1.bias",
                                  "blocks.1.fc2.weight", "blocks.1.fc2.bias"});
    assert_ptr_equal(cg_module_find_child(net, "blocks.1"), blocks[1]);
    assert_ptr_equal(cg_module_find_child(net, "blocks.1.fc2"),
                     cg_module_find_child(blocks[1], "fc2"));
    assert_ptr_equal(cg_module_find(net, "blocks.1.fc2.bias"),
                     cg_module_find(blocks[1], "fc2.bias")); /* a child's names are its own */
    const char *name;
    assert_ptr_equal(cg_module_child(list, 1, &name), blocks[1]);
    assert_string_equal(name, "1");
    assert_int_equal(cg_module_nparams(net), 9);
    assert_int_equal(cg_module_numel(net), 2 + 2 * (8 + 4 + 8 + 2));
    cg_module_free(net);
}

/* A pointer to a parameter stays valid when a container gathers it into
 * its flat buffer; the values move with it. */
static void test_module_param_identity_kept(void **state) {
    (void)state;
    cg_module *a = scale_new(CG_F64, 2, 0), *b = scale_new(CG_F64, 5, 0);
    cg_tensor *alpha = cg_module_get(b, "alpha");
    cg_module *seq = cg_nn_sequential(2, (cg_module *[]){a, b});
    assert_ptr_equal(cg_module_find(seq, "1.alpha"), alpha);
    assert_values(alpha, (const double[]){5}, 1, 0);
    const double *flat = cg_data(cg_module_flat_params(seq));
    assert_ptr_equal(cg_data(alpha), flat + 1);
    assert_ptr_equal(cg_data(cg_grad_of(alpha)),
                     (const double *)cg_data(cg_module_flat_grads(seq)) + 1);
    cg_module_free(seq);
}

/* Adding to a model already used re-gathers it, keeping values and grads. */
static void test_module_grow_after_use(void **state) {
    cg_ctx *ctx = *state;
    cg_module *seq = cg_nn_sequential(1, (cg_module *[]){scale_new(CG_F64, 2, 0)});
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(1), (const double[]){3});
    assert_int_equal(cg_backward(cg_sum(ctx, cg_module_forward(ctx, seq, x), NULL, 0, false)),
                     CG_OK);
    assert_non_null(cg_module_add_child(seq, NULL, scale_new(CG_F64, 7, 0)));
    assert_int_equal(cg_module_numel(seq), 2);
    assert_values(cg_module_flat_params(seq), (const double[]){2, 7}, 2, 0);
    assert_values(cg_module_flat_grads(seq), (const double[]){3, 0}, 2, 0);
    assert_values(cg_module_forward(ctx, seq, x), (const double[]){42}, 1, 0);
    cg_module_free(seq);
}

/* ---- sharing -------------------------------------------------------------------------- */
/* Issue 10's reproduction: the same Linear twice is one set of parameters
 * (PyTorch's parameters() deduplicates), named under both places in the
 * state_dict, and freed once. */
static void test_module_sequential_same_module_twice(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(4);
    cg_module *lin = cg_nn_linear(&rng, CG_F64, 2, 2, true);
    cg_module *seq = cg_nn_sequential(2, (cg_module *[]){lin, lin});
    assert_non_null(seq);
    assert_int_equal(cg_module_nparams(seq), 2);
    assert_int_equal(cg_module_numel(seq), 6);
    assert_names(seq, 4, (const char *[]){"0.weight", "0.bias", "1.weight", "1.bias"});
    assert_ptr_equal(cg_module_find(seq, "0.weight"), cg_module_find(seq, "1.weight"));
    /* used twice, its gradient is the sum over both uses: y = W (W x + b) + b */
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(1, 2), (const double[]){1, -1});
    cg_tensor *y = cg_module_forward(ctx, seq, x);
    cg_tensor *b = cg_module_find(seq, "0.bias");
    assert_int_equal(cg_backward(cg_sum(ctx, y, NULL, 0, false)), CG_OK);
    /* d sum(y) / db = 1 + W^T 1 */
    cg_tensor *w = cg_module_find(seq, "0.weight");
    cg_tensor *want = cg_add_scalar(ctx, cg_sum(ctx, w, (const int[]){0}, 1, false), 1);
    double wv[2];
    assert_int_equal(cg_copy_to_array(want, CG_F64, wv), CG_OK);
    assert_values(cg_grad_of(b), wv, 2, 1e-12);
    assert_int_equal(cg_module_free(seq), CG_OK); /* ASan: no double free */
}

static void test_module_shared_across_containers(void **state) {
    (void)state;
    cg_module *shared = scale_new(CG_F64, 1, 0);
    cg_module *a = cg_nn_sequential(1, (cg_module *[]){shared});
    cg_module *b = cg_nn_sequential(1, (cg_module *[]){shared});
    scale_frees = 0;
    cg_module_free(a);
    assert_int_equal(scale_frees, 0); /* b still holds it */
    assert_int_equal(cg_module_nparams(b), 1);
    cg_module_free(b);
    assert_int_equal(scale_frees, 1);
}

/* Tied weights: an output head using the embedding's matrix. */
static cg_tensor *tied_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *ids) {
    cg_tensor *h = cg_module_forward(ctx, cg_module_find_child(m, "emb"), ids); /* [N, D] */
    return cg_module_forward(ctx, cg_module_find_child(m, "head"), h);          /* [N, V] */
}
static const cg_module_kind tied_kind = {"TiedLM", tied_forward, NULL, NULL};

static void test_module_tied_weights(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(5);
    cg_module *m = cg_module_new(&tied_kind, NULL);
    cg_module *emb = cg_module_add_child(m, "emb", cg_nn_embedding(&rng, CG_F64, 5, 3));
    cg_module *head = cg_module_add_child(m, "head", cg_nn_linear(&rng, CG_F64, 3, 5, false));
    cg_tensor *w = cg_module_get(emb, "weight");
    assert_int_equal(cg_module_tie(head, "weight", w), CG_OK);
    assert_int_equal(cg_module_nparams(m), 1);
    assert_int_equal(cg_module_numel(m), 15);
    assert_names(m, 2, (const char *[]){"emb.weight", "head.weight"});
    assert_ptr_equal(cg_module_find(m, "head.weight"), w);
    /* one gradient, the sum over both uses; checked by gradcheck on w */
    cg_tensor *ids = cg_from_array(ctx, CG_I64, CG_SHAPE(3), (const int64_t[]){0, 4, 0});
    cg_tensor *y = cg_module_forward(ctx, m, ids);
    assert_int_equal(cg_ndim(y), 2);
    assert_int_equal(cg_backward(cg_sum(ctx, cg_square(ctx, y), NULL, 0, false)), CG_OK);
    /* by hand: y = E[ids] E^T; d/dE of sum(y^2) = 2 (Y^T E[ids] + scatter(ids, Y E)) */
    cg_tensor *e = cg_detach(ctx, w);
    cg_tensor *h = cg_index_select(ctx, e, 0, ids);
    cg_tensor *yy = cg_matmul(ctx, h, cg_transpose(ctx, e, 0, 1));
    cg_tensor *g1 = cg_matmul(ctx, cg_transpose(ctx, yy, 0, 1), h);
    cg_tensor *rows = cg_matmul(ctx, yy, e);
    double want[15], r[9];
    assert_int_equal(cg_copy_to_array(g1, CG_F64, want), CG_OK);
    assert_int_equal(cg_copy_to_array(rows, CG_F64, r), CG_OK);
    const int ix[] = {0, 4, 0};
    for (int i = 0; i < 3; i++)
        for (int d = 0; d < 3; d++) want[ix[i] * 3 + d] += r[i * 3 + d];
    for (int i = 0; i < 15; i++) want[i] *= 2;
    assert_values(cg_grad_of(w), want, 15, 1e-9);
    cg_module_free(m);
}

/* ---- containers ----------------------------------------------------------------------- */
static void test_module_list_and_dict(void **state) {
    cg_ctx *ctx = *state;
    cg_module *list = cg_nn_module_list(1, (cg_module *[]){scale_new(CG_F64, 1, 0)});
    assert_non_null(cg_module_add_child(list, NULL, scale_new(CG_F64, 2, 0)));
    assert_names(list, 4, (const char *[]){"0.alpha", "0.shift", "1.alpha", "1.shift"});
    assert_null(cg_module_forward(ctx, list, cg_zeros(ctx, CG_F64, CG_SHAPE(1))));
    assert_error(CG_ERR_STATE, "cg_module_forward: ModuleList: ModuleList has no forward");
    cg_module *dict = cg_nn_module_dict(
        2, (const char *[]){"encoder", "decoder"},
        (cg_module *[]){scale_new(CG_F64, 1, 0), cg_nn_activation(CG_ACT_RELU)});
    assert_non_null(dict);
    assert_string_equal(cg_module_name(cg_module_find_child(dict, "decoder")), "ReLU");
    assert_names(dict, 2, (const char *[]){"encoder.alpha", "encoder.shift"});
    assert_null(
        cg_nn_module_dict(1, (const char *[]){NULL}, (cg_module *[]){cg_nn_identity()}));
    assert_error(CG_ERR_ARG, "cg_nn_module_dict: name 0 is NULL"); /* and nothing leaked */
    assert_null(cg_module_find_child(dict, "middle"));
    assert_error(CG_ERR_ARG, "cg_module_find_child: ModuleDict has no module \"middle\"");
    cg_module_free(list);
    cg_module_free(dict);
}

static void test_module_print(void **state) {
    (void)state;
    cg_rng rng = seeded(6);
    cg_module *m =
        cg_nn_sequential(3, (cg_module *[]){cg_nn_linear(&rng, CG_F32, 4, 3, true),
                                            cg_nn_dropout(0.5, &rng), scale_new(CG_F32, 1, 0)});
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(cg_module_fprint(f, m), CG_OK);
    fclose(f);
    assert_string_equal(text, "Sequential(\n"
                              "  (0): Linear(in_features=4, out_features=3, bias=True)\n"
                              "  (1): Dropout(p=0.5, inplace=False)\n"
                              "  (2): Scale(alpha: [1], shift: [1])\n"
                              ")\n"
                              "Total params: 16\n"
                              "Trainable params: 16\n");
    free(text);
    assert_int_equal(cg_module_fprint(NULL, m), CG_ERR_ARG);
    cg_clear_error();
    cg_module_free(m);
}

/* ---- running ---------------------------------------------------------------------------- */
/* predict: eval mode and no graph in one call, then the mode as it was. */
static void test_module_predict(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(7);
    cg_module *m = cg_nn_sequential(
        2, (cg_module *[]){cg_nn_linear(&rng, CG_F64, 3, 2, true), cg_nn_dropout(0.9, &rng)});
    cg_tensor *x = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(4, 3), 0, 1);
    cg_tensor *y = cg_module_predict(ctx, m, x);
    assert_false(cg_requires_grad(y));
    assert_true(cg_module_is_training(m));
    assert_true(cg_module_is_training(cg_module_child(m, 1, NULL)));
    cg_module_train(m, false);
    cg_tensor *want = cg_module_forward(ctx, m, x); /* eval: dropout is the identity */
    cg_tensor *heap = cg_module_predict(NULL, m, x);
    double a[8], b[8];
    assert_int_equal(cg_copy_to_array(want, CG_F64, a), CG_OK);
    assert_values(y, a, 8, 0);
    assert_values(heap, a, 8, 0);
    assert_false(cg_module_is_training(m));
    assert_int_equal(cg_copy_to_array(heap, CG_F64, b), CG_OK);
    cg_tensor_free(heap);
    cg_module_free(m);
}

static cg_tensor *null_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)ctx, (void)m, (void)x;
    return NULL;
}
static const cg_module_kind null_kind = {"Silent", null_forward, NULL, NULL};

/* Errors name the function the user called, then the module, then the op. */
static void test_module_forward_errors_name_the_caller(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(8);
    cg_module *m = cg_nn_sequential(1, (cg_module *[]){cg_nn_linear(&rng, CG_F64, 3, 2, true)});
    assert_null(cg_module_forward(ctx, m, cg_zeros(ctx, CG_F64, CG_SHAPE(4, 5))));
    assert_error(CG_ERR_SHAPE, "cg_module_forward: Sequential: cg_linear: ");
    assert_null(cg_module_predict(ctx, m, cg_zeros(ctx, CG_F64, CG_SHAPE(4, 5))));
    assert_error(CG_ERR_SHAPE, "cg_module_predict: Sequential: cg_linear: ");
    cg_module_free(m);
    cg_module *silent = cg_module_new(&null_kind, NULL);
    assert_null(cg_module_forward(ctx, silent, cg_zeros(ctx, CG_F64, CG_SHAPE(1))));
    assert_error(CG_ERR_STATE, "cg_module_forward: Silent: its forward returned NULL");
    cg_module_free(silent);
}

/* ---- ownership and misuse ------------------------------------------------------------------
 */
static void test_module_free_child_refused(void **state) {
    (void)state;
    cg_module *child = scale_new(CG_F64, 1, 0);
    cg_module *seq = cg_nn_sequential(1, (cg_module *[]){child});
    assert_int_equal(cg_module_free(child), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "cg_module_free: this Scale is held by a container");
    assert_int_equal(cg_module_nparams(seq), 1); /* nothing was freed */
    assert_int_equal(cg_module_free(seq), CG_OK);
    assert_int_equal(cg_module_free(NULL), CG_OK);
}

static void test_module_cycle_refused(void **state) {
    (void)state;
    cg_module *inner = scale_new(CG_F64, 1, 0);
    cg_module *outer = cg_nn_sequential(1, (cg_module *[]){inner});
    assert_null(cg_module_add_child(inner, "up", outer));
    assert_error(CG_ERR_ARG, "would contain itself");
    assert_null(cg_module_add_child(outer, "me", outer));
    assert_error(CG_ERR_ARG, "would contain itself");
    assert_int_equal(cg_module_nchildren(outer), 1); /* both still usable */
    cg_module_free(outer);
}

static void test_module_registration_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = scale_new(CG_F64, 1, 0);
    assert_null(cg_module_add_param(m, "alpha", cg_zeros(NULL, CG_F64, CG_SHAPE(1))));
    assert_error(CG_ERR_ARG, "cg_module_add_param: Scale already has a member named \"alpha\"");
    assert_null(cg_module_add_param(m, "a.b", cg_zeros(NULL, CG_F64, CG_SHAPE(1))));
    assert_error(CG_ERR_ARG, "name \"a.b\" must be");
    assert_null(cg_module_add_param(m, "", cg_zeros(NULL, CG_F64, CG_SHAPE(1))));
    assert_error(CG_ERR_ARG, "name \"\" must be");
    assert_null(cg_module_add_buffer(m, NULL, cg_zeros(NULL, CG_F64, CG_SHAPE(1))));
    assert_error(CG_ERR_ARG, "cg_module_add_buffer");
    assert_null(cg_module_add_param(m, "ids", cg_zeros(NULL, CG_I64, CG_SHAPE(1))));
    assert_error(CG_ERR_DTYPE,
                 "cg_module_add_param: Scale.ids: a parameter must be f32 or f64");
    assert_null(cg_module_add_param(m, "tmp", cg_zeros(ctx, CG_F64, CG_SHAPE(1))));
    assert_error(CG_ERR_STATE, "caller-owned leaf");
    assert_non_null(cg_module_add_buffer(m, "count", cg_zeros(NULL, CG_I64, CG_SHAPE(1))));
    assert_null(cg_module_add_param(m, "again", cg_module_get(m, "alpha"))); /* not freed */
    assert_error(CG_ERR_ARG, "Scale.again: the tensor is already Scale.alpha");
    assert_non_null(cg_module_get(m, "alpha"));
    /* a NULL tensor keeps the error that made it */
    assert_null(cg_module_add_param(m, "big", cg_zeros(NULL, CG_F64, CG_SHAPE(-1))));
    assert_error(cg_last_status(), "cg_zeros");
    assert_null(cg_module_add_param(NULL, "w", cg_zeros(NULL, CG_F64, CG_SHAPE(1))));
    assert_error(CG_ERR_ARG, "cg_module_add_param: module is NULL");
    /* after a failed cg_module_new, every add keeps that first error */
    assert_null(cg_module_add_param(cg_module_new(NULL, NULL), "w",
                                    cg_zeros(NULL, CG_F64, CG_SHAPE(1))));
    assert_null(cg_module_add_child(NULL, "c", scale_new(CG_F64, 1, 0)));
    assert_error(CG_ERR_ARG, "cg_module_new: the kind is NULL");
    assert_null(cg_module_add_child(m, "alpha", scale_new(CG_F64, 1, 0)));
    assert_error(CG_ERR_ARG, "already has a member named \"alpha\"");
    assert_null(cg_module_get(m, "nope"));
    assert_error(CG_ERR_ARG, "cg_module_get: Scale has no parameter or buffer \"nope\"");
    assert_int_equal(cg_module_tie(m, "shift", cg_module_get(m, "alpha")), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_module_tie: Scale.shift is a buffer");
    assert_int_equal(cg_module_tie(m, "x", cg_module_get(m, "shift")), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "requires no gradient");
    cg_module_free(m);
    assert_null(cg_module_new(NULL, NULL));
    assert_error(CG_ERR_ARG, "cg_module_new: the kind is NULL");
    static const cg_module_kind no_forward = {"Broken", NULL, NULL, NULL};
    assert_null(cg_module_new(&no_forward, NULL));
    assert_error(CG_ERR_ARG, "needs a name and a forward");
}

static void test_module_accessor_errors(void **state) {
    (void)state;
    cg_module *m = scale_new(CG_F64, 1, 0);
    assert_null(cg_module_state(m, 2, NULL, NULL));
    assert_error(CG_ERR_INDEX, "cg_module_state: index 2 out of range [0, 2)");
    assert_null(cg_module_param(m, 1, NULL));
    assert_error(CG_ERR_INDEX, "cg_module_param: index 1 out of range [0, 1)");
    assert_null(cg_module_find(m, NULL));
    assert_error(CG_ERR_ARG, "cg_module_find: name is NULL");
    assert_null(cg_module_find(m, "beta"));
    assert_error(CG_ERR_ARG, "cg_module_find: Scale has no state named \"beta\"");
    assert_null(cg_module_child(m, 0, NULL));
    assert_error(CG_ERR_INDEX, "cg_module_child");
    assert_null(cg_module_find_child(m, NULL));
    assert_error(CG_ERR_ARG, "cg_module_find_child: path is NULL");
    assert_int_equal(cg_module_nstate(NULL), 0);
    assert_error(CG_ERR_ARG, "cg_module_nstate: module is NULL");
    cg_module_free(m);
}

#define CTX_TEST(f) cmocka_unit_test_setup_teardown(f, ctx_setup, ctx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        CTX_TEST(test_module_user_kind_forward),
        cmocka_unit_test(test_module_user_kind_gradcheck),
        cmocka_unit_test(test_module_nested_names),
        cmocka_unit_test(test_module_param_identity_kept),
        CTX_TEST(test_module_grow_after_use),
        CTX_TEST(test_module_sequential_same_module_twice),
        cmocka_unit_test(test_module_shared_across_containers),
        CTX_TEST(test_module_tied_weights),
        CTX_TEST(test_module_list_and_dict),
        cmocka_unit_test(test_module_print),
        CTX_TEST(test_module_predict),
        CTX_TEST(test_module_forward_errors_name_the_caller),
        cmocka_unit_test(test_module_free_child_refused),
        cmocka_unit_test(test_module_cycle_refused),
        CTX_TEST(test_module_registration_errors),
        cmocka_unit_test(test_module_accessor_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
