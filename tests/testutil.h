/* Shared by the cmocka test binaries: include after <cmocka.h>. */
#ifndef CG_TESTUTIL_H
#define CG_TESTUTIL_H

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

#endif
