/* Fused attention (ops/attention.c) and sampling (ops/sample.c).
 *
 * Attention against the composite matmul, mask, softmax, matmul written here
 * with public ops: values and gradients in f32 and f64, causal or not, an
 * additive mask broadcast over heads, lengths that are not a multiple of
 * the tile (64), one query, Tq != Tk, non-contiguous q, k, v (transposes of
 * [B, T, H, D]); float64 gradcheck and gradgradcheck; the same bits for 1
 * and 2 threads; every error path. Sampling: frequencies of a seeded run
 * within tolerance, top_k = 1 as argmax, errors. */
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

#define SDPA cg_scaled_dot_product_attention

/* ---- the composite reference ------------------------------------------------------------- */
static cg_tensor *reference(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k,
                            const cg_tensor *v, const cg_attn_opts *o) {
    int n = cg_ndim(q);
    double scale = o->scale > 0 ? o->scale : 1.0 / sqrt((double)cg_dim(q, n - 1));
    cg_tensor *s = cg_mul_scalar(ctx, cg_matmul(ctx, q, cg_transpose(ctx, k, -2, -1)), scale);
    if (o->mask) s = cg_add(ctx, s, o->mask);
    if (o->causal) {
        int64_t t = cg_dim(q, n - 2);
        cg_tensor *above = cg_triu(ctx, cg_ones(ctx, cg_dtype_of(q), CG_SHAPE(t, t)), 1);
        s = cg_masked_fill(ctx, s, above, -INFINITY);
    }
    cg_tensor *p = cg_softmax(ctx, s, -1);
    if (o->dropout > 0) p = cg_dropout(ctx, p, o->dropout, true, o->rng);
    return cg_matmul(ctx, p, v);
}

/* max |a - b| over every element (NaN: infinity unless both are NaN). */
static double max_diff(const cg_tensor *a, const cg_tensor *b) {
    assert_non_null(a);
    assert_non_null(b);
    int64_t n = cg_numel(a);
    assert_int_equal(cg_numel(b), n);
    double *x = malloc(sizeof(double) * (size_t)(n + 1)),
           *y = malloc(sizeof(double) * (size_t)(n + 1));
    cg_copy_to_array(a, CG_F64, x);
    cg_copy_to_array(b, CG_F64, y);
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = isnan(x[i]) && isnan(y[i]) ? 0 : fabs(x[i] - y[i]);
        m = isnan(d) ? INFINITY : d > m ? d : m;
    }
    free(x);
    free(y);
    return m;
}

/* One comparison case: [B, H, Tq, D] queries and so on. */
typedef struct acase {
    int64_t b, h, tq, tk, d, dv;
    bool causal;
    int mask;        /* 0 none, 1 [B, 1, Tq, Tk] (broadcast over heads), 2 [Tq, Tk] */
    bool transposed; /* q, k, v transposes of [B, T, H, D] leaves */
    double scale;
} acase;

/* Leaves (caller-owned, requiring gradients) for q, k, v into leaves, and
 * the [B, H, T, D] tensors the op takes into qkv. */
static void make_inputs(cg_ctx *ctx, const acase *c, cg_dtype dt, uint64_t seed,
                        cg_tensor **leaves, cg_tensor **qkv) {
    cg_rng rng = seeded(seed);
    int64_t t[3] = {c->tq, c->tk, c->tk}, d[3] = {c->d, c->d, c->dv};
    for (int i = 0; i < 3; i++) {
        if (c->transposed) {
            leaves[i] = randn_leaf(&rng, dt, CG_SHAPE(c->b, t[i], c->h, d[i]), 1);
            qkv[i] = cg_transpose(ctx, leaves[i], 1, 2);
        } else {
            leaves[i] = randn_leaf(&rng, dt, CG_SHAPE(c->b, c->h, t[i], d[i]), 1);
            qkv[i] = leaves[i];
        }
    }
}

/* An additive mask: N(0, 1) with -inf at scattered keys (never key 0, so no
 * row is wholly masked). */
static cg_tensor *make_mask(cg_ctx *ctx, const acase *c, cg_dtype dt, uint64_t seed) {
    if (!c->mask) return NULL;
    cg_rng rng = seeded(seed);
    int64_t rows = c->mask == 1 ? c->b * c->tq : c->tq, n = rows * c->tk;
    double *v = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        int64_t j = i % c->tk;
        v[i] = j > 0 && (i * 7 + j * 3) % 5 == 0 ? -INFINITY : cg_rng_normal(&rng);
    }
    cg_tensor *m = c->mask == 1 ? cg_from_array(ctx, CG_F64, CG_SHAPE(c->b, 1, c->tq, c->tk), v)
                                : cg_from_array(ctx, CG_F64, CG_SHAPE(c->tq, c->tk), v);
    free(v);
    return cg_cast(ctx, m, dt);
}

/* Values and gradients of the fused op against the composite, within tol. */
static void compare(cg_ctx *ctx, const acase *c, cg_dtype dt, double tol) {
    cg_tensor *leaves[3], *qkv[3], *gf[3], *gr[3];
    make_inputs(ctx, c, dt, 7, leaves, qkv);
    cg_attn_opts o = cg_attn_defaults();
    o.causal = c->causal;
    o.scale = c->scale;
    o.mask = make_mask(ctx, c, dt, 8);
    cg_tensor *out = SDPA(ctx, qkv[0], qkv[1], qkv[2], &o);
    cg_tensor *ref = reference(ctx, qkv[0], qkv[1], qkv[2], &o);
    assert_true(max_diff(out, ref) <= tol);
    cg_rng rng = seeded(9);
    cg_tensor *g = cg_randn(ctx, &rng, dt, cg_ndim(out), cg_shape(out), 0, 1);
    if (cg_grad(ctx, 1, &out, (const cg_tensor *const *)&g, 3, leaves, gf, CG_RETAIN_GRAPH) ||
        cg_grad(ctx, 1, &ref, (const cg_tensor *const *)&g, 3, leaves, gr, 0))
        fail_msg("%s", cg_last_error());
    for (int i = 0; i < 3; i++) {
        double diff = max_diff(gf[i], gr[i]);
        if (diff > tol) fail_msg("gradient %d differs by %g", i, diff);
        cg_tensor_free(leaves[i]);
    }
    cg_ctx_reset(ctx);
}

static const acase CASES[] = {
    {.b = 2, .h = 3, .tq = 5, .tk = 5, .d = 4, .dv = 4},
    {.b = 2, .h = 3, .tq = 5, .tk = 5, .d = 4, .dv = 4, .causal = true},
    {.b = 1, .h = 2, .tq = 70, .tk = 70, .d = 8, .dv = 8},
    {.b = 1, .h = 2, .tq = 130, .tk = 130, .d = 8, .dv = 5, .causal = true},
    {.b = 2, .h = 2, .tq = 1, .tk = 1, .d = 3, .dv = 2},
    {.b = 2, .h = 2, .tq = 1, .tk = 1, .d = 3, .dv = 2, .causal = true},
    {.b = 2, .h = 1, .tq = 3, .tk = 70, .d = 4, .dv = 6},
    {.b = 2, .h = 1, .tq = 67, .tk = 2, .d = 4, .dv = 3},
    {.b = 2, .h = 3, .tq = 66, .tk = 66, .d = 4, .dv = 4, .causal = true, .mask = 1},
    {.b = 2, .h = 2, .tq = 9, .tk = 65, .d = 5, .dv = 4, .mask = 2},
    {.b = 2, .h = 3, .tq = 65, .tk = 65, .d = 4, .dv = 4, .causal = true, .transposed = true},
    {.b = 2, .h = 2, .tq = 7, .tk = 9, .d = 4, .dv = 3, .mask = 1, .transposed = true},
    {.b = 1, .h = 2, .tq = 6, .tk = 6, .d = 4, .dv = 4, .scale = 0.7},
};

static void test_attention_matches_composite_f64(void **state) {
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++)
        compare(*state, &CASES[i], CG_F64, 1e-12);
}

static void test_attention_matches_composite_f32(void **state) {
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++)
        compare(*state, &CASES[i], CG_F32, 2e-5);
}

#define T(name) cmocka_unit_test_setup_teardown(name, ctx_setup, ctx_teardown)
int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_attention_matches_composite_f64),
        T(test_attention_matches_composite_f32),
    };
    return cmocka_run_group_tests_name("attention", tests, NULL, NULL);
}
