/* Shared by the cmocka test binaries: include after <cmocka.h>. */
#ifndef CG_TESTUTIL_H
#define CG_TESTUTIL_H

#include <string.h>

#include "cgrad.h"

/* A fresh context in *state for every test of a group. */
static inline int ctx_setup(void **state) {
    *state = cg_ctx_new();
    return *state ? 0 : -1;
}
static inline int ctx_teardown(void **state) {
    cg_ctx_free(*state);
    return 0;
}

/* t holds exactly the n values want (C order), each within tol. */
static inline void assert_values(const cg_tensor *t, const double *want, int64_t n,
                                 double tol) {
    double got[64];
    assert_non_null(t);
    assert_true(n <= 64);
    assert_int_equal(cg_numel(t), n);
    assert_int_equal(cg_copy_to_array(t, CG_F64, got), CG_OK);
    for (int64_t i = 0; i < n; i++) assert_float_equal(got[i], want[i], tol);
}

/* A caller-owned leaf of dtype dt holding values v (C order), requiring a
 * gradient. Free it with cg_tensor_free. */
static inline cg_tensor *leaf(cg_dtype dt, int n, const int64_t *shape, const double *v) {
    cg_tensor *d = cg_from_array(NULL, CG_F64, n, shape, v);
    cg_tensor *t = dt == CG_F64 ? d : cg_cast(NULL, d, dt);
    if (t != d) cg_tensor_free(d);
    assert_int_equal(cg_set_requires_grad(t, true), CG_OK);
    return t;
}

/* A caller-owned N(0, std) leaf of dtype dt requiring a gradient. */
static inline cg_tensor *randn_leaf(cg_rng *rng, cg_dtype dt, int n, const int64_t *shape,
                                    double std) {
    cg_tensor *t = cg_randn(NULL, rng, dt, n, shape, 0, std);
    assert_int_equal(cg_set_requires_grad(t, true), CG_OK);
    return t;
}

/* The same from a fresh rng seeded with seed. */
static inline cg_tensor *seeded_leaf(uint64_t seed, cg_dtype dt, int n, const int64_t *shape,
                                     double std) {
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    return randn_leaf(&rng, dt, n, shape, std);
}

static inline cg_rng seeded(uint64_t seed) {
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    return rng;
}

/* The thread's last error has status st and its message contains want;
 * clears it. */
static inline void assert_error(cg_status st, const char *want) {
    assert_int_equal(cg_last_status(), st);
    if (!strstr(cg_last_error(), want)) fail_msg("\"%s\" lacks \"%s\"", cg_last_error(), want);
    cg_clear_error();
}

/* Copies v (C order, f64) into m's state tensor called name. */
static inline void set_state(cg_module *m, const char *name, const double *v) {
    cg_tensor *t = cg_module_find(m, name);
    assert_non_null(t);
    cg_tensor *src = cg_from_array(NULL, CG_F64, cg_ndim(t), cg_shape(t), v);
    assert_int_equal(cg_copy_(t, src), CG_OK);
    cg_tensor_free(src);
}

/* One optimizer step of m (inputs [*, 4], outputs [*, 3]) on an MSE loss
 * over a batch of n rows drawn from rng. */
static inline void mse_train_step(cg_ctx *ctx, cg_module *m, cg_optim *o, cg_rng *rng,
                                  int64_t n) {
    cg_tensor *x = cg_randn(ctx, rng, CG_F32, CG_SHAPE(n, 4), 0, 1);
    cg_tensor *y = cg_randn(ctx, rng, CG_F32, CG_SHAPE(n, 3), 0, 1);
    cg_optim_zero_grad(o);
    cg_tensor *loss = cg_mse_loss(ctx, cg_module_forward(ctx, m, x), y, CG_MEAN);
    assert_non_null(loss);
    assert_int_equal(cg_backward(loss), CG_OK);
    assert_int_equal(cg_optim_step(o), CG_OK);
    cg_ctx_reset(ctx);
}

#endif
