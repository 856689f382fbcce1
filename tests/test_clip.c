/* Tests for nn/clip.c: clip_grad_norm_ and clip_grad_value_ over a module's
 * parameters and over plain lists, frozen parameters and parameters without
 * a gradient skipped, thread-count invariance, every error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void assert_rel(double got, double want, double rel) {
    if (fabs(got - want) > rel * fabs(want) + 1e-300)
        fail_msg("got %.17g, want %.17g", got, want);
}

#define NG 8
static const double GRADS[NG] = {0.1, -0.2, 0.3, 0.0, 1.5, -0.7, 0.25, -2.0};

/* Linear(3, 2) of dtype dt with gradients GRADS (weight, then bias). */
static cg_module *with_grads(cg_dtype dt) {
    cg_rng rng;
    cg_rng_seed(&rng, 5);
    cg_module *m = cg_nn_linear(&rng, dt, 3, 2, true);
    assert_non_null(m);
    int64_t n = NG;
    cg_tensor *g = cg_from_array(NULL, CG_F64, 1, &n, GRADS);
    assert_int_equal(cg_copy_(cg_module_flat_grads(m), g), CG_OK);
    cg_tensor_free(g);
    return m;
}

static double grads_norm(const cg_module *m, double *out) {
    assert_int_equal(cg_copy_to_array(cg_module_flat_grads(m), CG_F64, out), CG_OK);
    double s = 0;
    for (int i = 0; i < NG; i++) s += out[i] * out[i];
    return sqrt(s);
}

static double norm_of(const double *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i] * v[i];
    return sqrt(s);
}

static void test_clip_grad_norm(void **state) {
    (void)state;
    double g[NG], norm = norm_of(GRADS, NG), got = 0;
    for (cg_dtype dt = CG_F32; dt <= CG_F64; dt++) {
        double tol = dt == CG_F32 ? 1e-6 : 1e-14;
        cg_module *m = with_grads(dt);
        assert_int_equal(cg_clip_grad_norm_(m, 1.0, &got), CG_OK);
        assert_rel(got, norm, tol);
        assert_rel(grads_norm(m, g), 1.0, 1e-6); /* max_norm / (norm + 1e-6) */
        double c = 1.0 / (norm + 1e-6);
        for (int i = 0; i < NG; i++) assert_rel(g[i], GRADS[i] * c, tol);
        cg_module_free(m);
    }
}

static void test_clip_grad_norm_below_max(void **state) {
    (void)state;
    cg_module *m = with_grads(CG_F64);
    double g[NG], norm = 0, again = 0;
    assert_int_equal(cg_clip_grad_norm_(m, 10.0, &norm), CG_OK);
    assert_rel(norm, grads_norm(m, g), 1e-15);
    assert_memory_equal(g, GRADS, sizeof g);                   /* untouched */
    assert_int_equal(cg_clip_grad_norm_(m, 0, &again), CG_OK); /* max_norm 0 zeroes them */
    assert_true(again == norm);
    assert_true(grads_norm(m, g) == 0);
    assert_int_equal(cg_clip_grad_norm_(m, 1, NULL), CG_OK); /* total_norm may be NULL */
    cg_module_free(m);
}

/* The norm is summed in fixed blocks: the same bits on any thread count. */
static void test_clip_grad_norm_threads(void **state) {
    (void)state;
    int saved = cg_get_num_threads();
    double norms[2];
    for (int k = 0; k < 2; k++) {
        cg_set_num_threads(k ? 4 : 1);
        cg_rng rng;
        cg_rng_seed(&rng, 9);
        cg_module *m = cg_nn_linear(&rng, CG_F32, 300, 200, true);
        int64_t n = cg_module_numel(m);
        cg_tensor *g = cg_randn(NULL, &rng, CG_F32, 1, &n, 0, 1);
        assert_int_equal(cg_copy_(cg_module_flat_grads(m), g), CG_OK);
        assert_int_equal(cg_clip_grad_norm_(m, 1.0, &norms[k]), CG_OK);
        cg_tensor_free(g);
        cg_module_free(m);
    }
    cg_set_num_threads(saved);
    assert_true(norms[0] == norms[1]);
    assert_rel(norms[0], sqrt(300.0 * 200 + 200), 0.01);
}

static void test_clip_grad_value(void **state) {
    (void)state;
    for (cg_dtype dt = CG_F32; dt <= CG_F64; dt++) {
        cg_module *m = with_grads(dt);
        double *first = NULL, g[NG];
        if (dt == CG_F64) {
            first = cg_data(cg_module_flat_grads(m));
            first[3] = NAN;
        }
        assert_int_equal(cg_clip_grad_value_(m, 0.5), CG_OK);
        assert_int_equal(cg_copy_to_array(cg_module_flat_grads(m), CG_F64, g), CG_OK);
        for (int i = 0; i < NG; i++) {
            if (first && i == 3) {
                assert_true(isnan(g[i])); /* NaN stays NaN, as torch.clamp */
                continue;
            }
            double want = GRADS[i] < -0.5 ? -0.5 : GRADS[i] > 0.5 ? 0.5 : GRADS[i];
            assert_rel(g[i], want, dt == CG_F32 ? 1e-7 : 0);
        }
        cg_module_free(m);
    }
}

/* ---- plain lists ----------------------------------------------------------------- */
/* Three separate f64 leaves [3], [2], [3] (not adjacent in memory) with
 * gradients GRADS[0..3), [3..5), [5..8), made by a backward of
 * sum(a*ga) + sum(b*gb) + sum(c*gc). */
typedef struct trio {
    cg_tensor *t[3];
} trio;

static const int SIZES[3] = {3, 2, 3}, STARTS[3] = {0, 3, 5};

static trio make_trio(cg_ctx *ctx, cg_dtype dt) {
    trio r;
    cg_tensor *loss = NULL;
    for (int k = 0; k < 3; k++) {
        int64_t n = SIZES[k];
        r.t[k] = seeded_leaf((uint64_t)k + 1, dt, 1, &n, 1);
        cg_tensor *w = cg_from_array(ctx, CG_F64, 1, &n, GRADS + STARTS[k]);
        cg_tensor *s = cg_sum(ctx, cg_mul(ctx, r.t[k], cg_cast(ctx, w, dt)), NULL, 0, false);
        loss = loss ? cg_add(ctx, loss, s) : s;
    }
    assert_int_equal(cg_backward(loss), CG_OK);
    return r;
}

static void trio_free(trio *r) {
    for (int k = 0; k < 3; k++) cg_tensor_free(r->t[k]);
}

static void grads_of(const trio *r, double *out) {
    for (int k = 0; k < 3; k++) {
        cg_tensor *g = cg_grad_of(r->t[k]);
        if (!g) {
            for (int i = 0; i < SIZES[k]; i++) out[STARTS[k] + i] = NAN;
            continue;
        }
        assert_int_equal(cg_copy_to_array(g, CG_F64, out + STARTS[k]), CG_OK);
    }
}

static void test_clip_params_list(void **state) {
    cg_ctx *ctx = *state;
    trio r = make_trio(ctx, CG_F64);
    double norm = 0, g[NG], want = norm_of(GRADS, NG);
    assert_int_equal(cg_clip_grad_norm_params_(3, r.t, 1.0, &norm), CG_OK);
    assert_rel(norm, want, 1e-15);
    grads_of(&r, g);
    for (int i = 0; i < NG; i++) assert_rel(g[i], GRADS[i] / (want + 1e-6), 1e-15);
    double before[NG];
    memcpy(before, g, sizeof g);
    assert_int_equal(cg_clip_grad_value_params_(3, r.t, 0.1), CG_OK);
    grads_of(&r, g);
    for (int i = 0; i < NG; i++) {
        double x = before[i];
        assert_true(g[i] == (x < -0.1 ? -0.1 : x > 0.1 ? 0.1 : x));
    }
    assert_int_equal(cg_clip_grad_norm_params_(0, NULL, 1.0, &norm), CG_OK); /* empty */
    assert_true(norm == 0);
    trio_free(&r);
}

/* A frozen parameter's gradient is neither counted nor changed. */
static void test_clip_skips_frozen(void **state) {
    cg_ctx *ctx = *state;
    trio r = make_trio(ctx, CG_F64);
    assert_int_equal(cg_set_requires_grad(r.t[1], false), CG_OK);
    double norm = 0, g[NG], rest[NG];
    int nrest = 0;
    for (int i = 0; i < NG; i++)
        if (i < 3 || i >= 5) rest[nrest++] = GRADS[i];
    double want = norm_of(rest, nrest);
    assert_int_equal(cg_clip_grad_norm_params_(3, r.t, 0.5, &norm), CG_OK);
    assert_rel(norm, want, 1e-15);
    grads_of(&r, g);
    for (int i = 0; i < NG; i++)
        assert_rel(g[i], i >= 3 && i < 5 ? GRADS[i] : GRADS[i] * 0.5 / (want + 1e-6), 1e-15);
    assert_int_equal(cg_clip_grad_value_params_(3, r.t, 0.01), CG_OK);
    grads_of(&r, g);
    assert_true(g[3] == GRADS[3] && g[4] == GRADS[4]);
    assert_true(fabs(g[7]) == 0.01);
    trio_free(&r);
}

/* A parameter without a gradient (cg_grad_of NULL) is skipped. */
static void test_clip_skips_no_grad(void **state) {
    cg_ctx *ctx = *state;
    trio r = make_trio(ctx, CG_F32);
    int64_t n = 4;
    cg_tensor *list[4] = {r.t[0], seeded_leaf(9, CG_F32, 1, &n, 1), r.t[1], r.t[2]};
    assert_null(cg_grad_of(list[1]));
    double norm = 0;
    assert_int_equal(cg_clip_grad_norm_params_(4, list, 1.0, &norm), CG_OK);
    assert_rel(norm, norm_of(GRADS, NG), 1e-6);
    assert_null(cg_grad_of(list[1]));
    assert_int_equal(cg_clip_grad_value_params_(4, list, 1.0), CG_OK);
    cg_tensor_free(list[1]);
    trio_free(&r);
}

/* Lists may mix dtypes: each run has one. */
static void test_clip_mixed_dtypes(void **state) {
    cg_ctx *ctx = *state;
    trio a = make_trio(ctx, CG_F32), b = make_trio(ctx, CG_F64);
    cg_tensor *list[6] = {a.t[0], b.t[0], a.t[1], b.t[1], a.t[2], b.t[2]};
    double norm = 0;
    assert_int_equal(cg_clip_grad_norm_params_(6, list, 100, &norm), CG_OK);
    assert_rel(norm, sqrt(2) * norm_of(GRADS, NG), 1e-7);
    trio_free(&a);
    trio_free(&b);
}

/* ---- errors: status, message, nothing changed --------------------------------------- */
static void test_clip_bad_args(void **state) {
    (void)state;
    double norm = 42, g[NG];
    assert_int_equal(cg_clip_grad_norm_(NULL, 1, &norm), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_clip_grad_norm_: module is NULL");
    cg_module *m = with_grads(CG_F64);
    assert_int_equal(cg_clip_grad_norm_(m, -1, &norm), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_clip_grad_norm_: max_norm -1 must be >= 0");
    assert_int_equal(cg_clip_grad_norm_(m, NAN, &norm), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "max_norm nan");
    assert_true(norm == 42); /* not written on error */
    assert_int_equal(cg_clip_grad_value_(m, -1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_clip_grad_value_: clip -1 must be >= 0");
    assert_int_equal(cg_clip_grad_value_(NULL, 1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_clip_grad_value_: module is NULL");
    grads_norm(m, g);
    assert_memory_equal(g, GRADS, sizeof g);
    cg_module *child = m, *seq = cg_nn_sequential(1, &m);
    assert_int_equal(cg_clip_grad_norm_(child, 1, NULL), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "container");
    assert_int_equal(cg_clip_grad_value_(child, 1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "container");
    cg_module_free(seq);
}

static void test_clip_params_bad_args(void **state) {
    cg_ctx *ctx = *state;
    trio r = make_trio(ctx, CG_F64);
    double g[NG];
    assert_int_equal(cg_clip_grad_norm_params_(-1, r.t, 1, NULL), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_clip_grad_norm_params_: -1 parameters");
    assert_int_equal(cg_clip_grad_value_params_(2, NULL, 1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_clip_grad_value_params_: 2 parameters at NULL");
    cg_tensor *holes[3] = {r.t[0], NULL, r.t[2]};
    assert_int_equal(cg_clip_grad_norm_params_(3, holes, 0, NULL), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_clip_grad_norm_params_: parameter 1 is NULL");
    assert_int_equal(cg_clip_grad_value_params_(3, r.t, -0.5), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "clip -0.5");
    /* a strided gradient (cg_set_grad of a transposed view) */
    cg_tensor *w = seeded_leaf(4, CG_F64, CG_SHAPE(2, 3), 1);
    cg_tensor *base = cg_zeros(NULL, CG_F64, CG_SHAPE(3, 2));
    cg_tensor *gt = cg_transpose(NULL, base, 0, 1);
    cg_tensor_free(base);
    assert_int_equal(cg_set_grad(w, gt), CG_OK);
    cg_tensor *list[2] = {r.t[0], w};
    assert_int_equal(cg_clip_grad_norm_params_(2, list, 0, NULL), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "cg_clip_grad_norm_params_: the gradient of parameter 1 is "
                               "not contiguous");
    grads_of(&r, g);
    assert_memory_equal(g, GRADS, sizeof g); /* refused before anything changed */
    cg_tensor_free(w);
    trio_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_clip_grad_norm_below_max),
        cmocka_unit_test(test_clip_grad_norm_threads),
        cmocka_unit_test(test_clip_grad_value),
        cmocka_unit_test_setup_teardown(test_clip_params_list, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_clip_skips_frozen, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_clip_skips_no_grad, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_clip_mixed_dtypes, ctx_setup, ctx_teardown),
        cmocka_unit_test(test_clip_bad_args),
        cmocka_unit_test_setup_teardown(test_clip_params_bad_args, ctx_setup, ctx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
