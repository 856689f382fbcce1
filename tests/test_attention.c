/* Fused attention (ops/attention.c) and sampling (ops/sample.c).
 *
 * Attention against the composite matmul, mask, softmax, matmul written here
 * with public ops: values and gradients in f32 and f64, causal or not, an
 * additive mask broadcast over heads, lengths that are not a multiple of
 * the tiles (128 queries, 256 keys), one query, Tq != Tk, non-contiguous q, k, v (transposes of
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
        double u = cg_rng_uniform(&rng), x = cg_rng_normal(&rng);
        v[i] = i % c->tk > 0 && u < 0.2 ? -INFINITY : x;
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
    {.b = 2, .h = 2, .tq = 1, .tk = 1, .d = 3, .dv = 2},
    {.b = 2, .h = 2, .tq = 1, .tk = 1, .d = 3, .dv = 2, .causal = true},
    /* query tiles (128) and key tiles (256) with short last ones */
    {.b = 1, .h = 2, .tq = 300, .tk = 300, .d = 8, .dv = 5, .causal = true},
    {.b = 1, .h = 1, .tq = 300, .tk = 300, .d = 6, .dv = 6},
    {.b = 1, .h = 2, .tq = 129, .tk = 129, .d = 4, .dv = 4, .causal = true},
    {.b = 2, .h = 1, .tq = 3, .tk = 520, .d = 4, .dv = 6},
    {.b = 2, .h = 1, .tq = 260, .tk = 2, .d = 4, .dv = 3},
    {.b = 2, .h = 3, .tq = 270, .tk = 270, .d = 4, .dv = 4, .causal = true, .mask = 1},
    {.b = 2, .h = 2, .tq = 9, .tk = 257, .d = 5, .dv = 4, .mask = 2},
    {.b = 2, .h = 3, .tq = 257, .tk = 257, .d = 4, .dv = 4, .causal = true, .transposed = true},
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

/* ---- gradcheck and gradgradcheck (float64) ---------------------------------------------- */
typedef struct gcase {
    bool causal, transposed, square, mask_input; /* mask_input: in[3] is the mask */
    const cg_tensor *mask;
    double dropout;
    uint64_t seed; /* dropout's rng, reseeded per call: every forward draws one mask */
} gcase;

static cg_tensor *f_attn(cg_ctx *ctx, cg_tensor *const *in, void *u) {
    const gcase *c = u;
    const cg_tensor *x[3];
    for (int i = 0; i < 3; i++) x[i] = c->transposed ? cg_transpose(ctx, in[i], 1, 2) : in[i];
    cg_rng rng = seeded(c->seed);
    cg_attn_opts o = cg_attn_defaults();
    o.causal = c->causal;
    o.mask = c->mask_input ? in[3] : c->mask;
    o.dropout = c->dropout;
    o.rng = &rng;
    cg_tensor *y = SDPA(ctx, x[0], x[1], x[2], &o);
    return c->square ? cg_square(ctx, y) : y;
}

/* gradcheck of fn, and gradgradcheck of its square (second order needs a
 * function whose gradient is not linear in the output's gradient alone). */
static void check_both(gcase c, int n, cg_tensor *const *in) {
    c.square = false;
    cg_assert_gradcheck(f_attn, &c, n, in);
    c.square = true;
    cg_assert_gradcheck(f_attn, &c, n, in);
    cg_assert_gradgradcheck(f_attn, &c, n, in);
}

static void leaves3(uint64_t seed, const int64_t *sq, const int64_t *sk, const int64_t *sv,
                    cg_tensor **in) {
    cg_rng rng = seeded(seed);
    in[0] = randn_leaf(&rng, CG_F64, 4, sq, 1);
    in[1] = randn_leaf(&rng, CG_F64, 4, sk, 1);
    in[2] = randn_leaf(&rng, CG_F64, 4, sv, 1);
}
static void free3(cg_tensor **in) {
    for (int i = 0; i < 3; i++) cg_tensor_free(in[i]);
}

static void test_attention_gradcheck(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *in[4];
    const int64_t s[4] = {1, 2, 3, 2};
    leaves3(11, s, s, s, in);
    check_both((gcase){0}, 3, in);
    check_both((gcase){.causal = true}, 3, in);
    /* [1, 1, 3, 3] over two heads, one -inf */
    cg_tensor *m =
        cg_from_array(ctx, CG_F64, CG_SHAPE(1, 1, 3, 3),
                      (double[]){0.5, -INFINITY, 0.1, -0.3, 0.2, 0.0, 1.0, -1.0, 0.4});
    check_both((gcase){.mask = m}, 3, in);
    check_both((gcase){.mask = m, .causal = true}, 3, in);
    free3(in);
    /* Tq 2, Tk 4, Dv 3 */
    leaves3(12, (const int64_t[]){1, 2, 2, 2}, (const int64_t[]){1, 2, 4, 2},
            (const int64_t[]){1, 2, 4, 3}, in);
    check_both((gcase){0}, 3, in);
    free3(in);
}

static void test_attention_gradcheck_transposed(void **state) {
    (void)state;
    cg_tensor *in[3];
    const int64_t s[4] = {2, 3, 2, 2}; /* [B, T, H, D], read as [B, H, T, D] */
    leaves3(13, s, s, s, in);
    check_both((gcase){.transposed = true, .causal = true}, 3, in);
    free3(in);
}

/* Heads cut from [B, T, H, D] give an output and gradients stored as [B, T,
 * H, D] too (as the inputs), so merging the heads back is a view; inputs in
 * C order give results in C order. */
static void test_attention_results_keep_the_input_layout(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *in[3], *x[3];
    const int64_t s[4] = {2, 5, 3, 4}; /* [B, T, H, D] */
    leaves3(15, s, s, s, in);
    for (int i = 0; i < 3; i++) x[i] = cg_transpose(ctx, in[i], 1, 2);
    cg_attn_opts o = cg_attn_defaults();
    o.causal = true;
    cg_tensor *y = cg_scaled_dot_product_attention(ctx, x[0], x[1], x[2], &o);
    assert_non_null(y);
    assert_false(cg_is_contiguous(y));
    assert_true(cg_is_contiguous(cg_transpose(ctx, y, 1, 2)));
    cg_tensor *g[3];
    cg_tensor *loss = cg_sum(ctx, cg_square(ctx, y), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &loss, NULL, 3, x, g, 0), CG_OK);
    for (int i = 0; i < 3; i++) assert_true(cg_is_contiguous(cg_transpose(ctx, g[i], 1, 2)));
    cg_tensor *z = cg_scaled_dot_product_attention(ctx, in[0], in[1], in[2], &o);
    assert_true(cg_is_contiguous(z));
    free3(in);
}

/* Lengths past one tile: the online softmax across key tiles (256), more
 * than one query tile (128), causal skipping. */
static void test_attention_gradcheck_tiles(void **state) {
    (void)state;
    cg_tensor *in[3];
    leaves3(14, (const int64_t[]){1, 1, 2, 1}, (const int64_t[]){1, 1, 520, 1},
            (const int64_t[]){1, 1, 520, 1}, in);
    gcase c = {0};
    cg_assert_gradcheck(f_attn, &c, 3, in);
    free3(in);
    const int64_t s[4] = {1, 1, 130, 1};
    leaves3(15, s, s, s, in);
    c.causal = true;
    cg_assert_gradcheck(f_attn, &c, 3, in);
    free3(in);
}

/* The composite paths: a mask that requires a gradient, and dropout. */
static void test_attention_gradcheck_composite(void **state) {
    (void)state;
    cg_tensor *in[4];
    const int64_t s[4] = {1, 2, 3, 2};
    leaves3(15, s, s, s, in);
    cg_rng rng = seeded(16);
    in[3] = randn_leaf(&rng, CG_F64, CG_SHAPE(3, 3), 1);
    check_both((gcase){.mask_input = true, .causal = true}, 4, in);
    check_both((gcase){.dropout = 0.3, .seed = 17}, 3, in);
    free3(in);
    cg_tensor_free(in[3]);
}

/* The gradients a recorded backward writes (the composite) equal the fused
 * backward's, for every input and option; gradgradcheck then checks the
 * composite's own derivatives. */
static void test_attention_create_graph_matches(void **state) {
    cg_ctx *ctx = *state;
    acase c = {.b = 2,
               .h = 2,
               .tq = 70,
               .tk = 70,
               .d = 5,
               .dv = 3,
               .causal = true,
               .mask = 1,
               .transposed = true,
               .scale = 0.3};
    cg_tensor *leaves[3], *qkv[3], *plain[3], *graph[3];
    make_inputs(ctx, &c, CG_F64, 33, leaves, qkv);
    cg_attn_opts o = cg_attn_defaults();
    o.causal = true;
    o.scale = c.scale;
    o.mask = make_mask(ctx, &c, CG_F64, 34);
    cg_tensor *y = SDPA(ctx, qkv[0], qkv[1], qkv[2], &o);
    cg_rng rng = seeded(35);
    cg_tensor *g = cg_randn(ctx, &rng, CG_F64, cg_ndim(y), cg_shape(y), 0, 1);
    const cg_tensor *const *gs = (const cg_tensor *const *)&g;
    assert_int_equal(cg_grad(ctx, 1, &y, gs, 3, leaves, plain, CG_RETAIN_GRAPH), CG_OK);
    assert_int_equal(cg_grad(ctx, 1, &y, gs, 3, leaves, graph, CG_CREATE_GRAPH), CG_OK);
    for (int i = 0; i < 3; i++) {
        assert_true(cg_requires_grad(graph[i]));
        assert_true(max_diff(plain[i], graph[i]) < 1e-12);
        cg_tensor_free(leaves[i]);
    }
}

/* ---- paths, edges, ownership ------------------------------------------------------------- */
/* The rank-2 and rank-5 forms against the composite. */
static void test_attention_ranks(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(20);
    const int64_t shapes[2][5] = {{5, 3}, {2, 1, 2, 5, 3}};
    for (int i = 0; i < 2; i++) {
        int n = i ? 5 : 2;
        cg_tensor *q = cg_randn(ctx, &rng, CG_F64, n, shapes[i], 0, 1);
        cg_tensor *k = cg_randn(ctx, &rng, CG_F64, n, shapes[i], 0, 1);
        cg_tensor *v = cg_randn(ctx, &rng, CG_F64, n, shapes[i], 0, 1);
        cg_attn_opts o = cg_attn_defaults();
        o.causal = true;
        cg_tensor *y = SDPA(ctx, q, k, v, &o);
        assert_int_equal(cg_ndim(y), n);
        assert_true(max_diff(y, reference(ctx, q, k, v, &o)) < 1e-12);
        assert_true(max_diff(SDPA(ctx, q, k, v, NULL),
                             reference(ctx, q, k, v, &(cg_attn_opts){0})) < 1e-12);
    }
}

/* Hand-checked: one query, two keys with scores 0 and log 3 (scale 1):
 * weights 1/4, 3/4. */
static void test_attention_by_hand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *q = cg_from_array(ctx, CG_F64, CG_SHAPE(1, 1), (double[]){1});
    cg_tensor *k = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 1), (double[]){0, log(3.0)});
    cg_tensor *v = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 2), (double[]){4, 0, 0, 8});
    cg_attn_opts o = cg_attn_defaults();
    o.scale = 1;
    assert_values(SDPA(ctx, q, k, v, &o), (double[]){1, 6}, 2, 1e-14);
    /* the default scale is 1 / sqrt(D) = 1/2 for D = 4 */
    cg_tensor *q4 = cg_full(ctx, CG_F64, CG_SHAPE(1, 4), 1);
    cg_tensor *k4 = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 4),
                                  (double[]){0, 0, 0, 0, log(3.0), log(3.0), 0, 0});
    assert_values(SDPA(ctx, q4, k4, v, NULL), (double[]){1, 6}, 2, 1e-14);
}

/* Every key masked: NaN, as the composite's softmax of -inf; the keys of
 * a whole tile masked (the running max stays -inf over it): as the
 * composite; no keys: zeros. */
static void test_attention_masked_rows_and_empty(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(21);
    cg_tensor *q = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 3, 3), 1);
    cg_tensor *k = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 300, 3), 1);
    cg_tensor *v = randn_leaf(&rng, CG_F64, CG_SHAPE(1, 300, 2), 1);
    double *mv = calloc(900, sizeof(double));
    for (int j = 0; j < 300; j++) mv[j] = j < 280 ? -INFINITY : 0; /* row 0: 20 keys left */
    for (int j = 0; j < 300; j++) mv[300 + j] = -INFINITY;         /* row 1: none */
    cg_attn_opts o = cg_attn_defaults();
    cg_tensor *mask = cg_from_array(ctx, CG_F64, CG_SHAPE(3, 300), mv);
    o.mask = mask;
    free(mv);
    cg_tensor *y = SDPA(ctx, q, k, v, &o), *ref = reference(ctx, q, k, v, &o);
    double got[6];
    cg_copy_to_array(y, CG_F64, got);
    assert_false(isnan(got[0]) || isnan(got[1]) || isnan(got[4]) || isnan(got[5]));
    assert_true(isnan(got[2]) && isnan(got[3]));
    assert_true(max_diff(y, ref) < 1e-12);
    /* with row 1 unmasked, the gradients agree too (and are finite) */
    for (int j = 0; j < 300; j++) cg_set(mask, (int64_t[]){1, j}, 0.5);
    cg_tensor *in[3] = {q, k, v}, *ga[3], *gb[3];
    cg_tensor *la = cg_sum(ctx, cg_square(ctx, SDPA(ctx, q, k, v, &o)), NULL, 0, false);
    cg_tensor *lb = cg_sum(ctx, cg_square(ctx, reference(ctx, q, k, v, &o)), NULL, 0, false);
    assert_int_equal(cg_grad(ctx, 1, &la, NULL, 3, in, ga, 0), CG_OK);
    assert_int_equal(cg_grad(ctx, 1, &lb, NULL, 3, in, gb, 0), CG_OK);
    for (int i = 0; i < 3; i++) {
        assert_true(isfinite(cg_item(cg_sum(ctx, cg_abs(ctx, ga[i]), NULL, 0, false))));
        assert_true(max_diff(ga[i], gb[i]) < 1e-12);
    }
    free3(in);
    /* Tk = 0 (no tile writes the result: it is zeroed), in the context and
     * as a caller-owned result */
    cg_tensor *qe = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 2, 3), 1);
    cg_tensor *ke = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 0, 3), 1);
    cg_tensor *ve = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 0, 4), 1);
    cg_tensor *plain[3] = {cg_full(NULL, CG_F64, CG_SHAPE(2, 2, 3), 0.5),
                           cg_zeros(NULL, CG_F64, CG_SHAPE(2, 0, 3)),
                           cg_zeros(NULL, CG_F64, CG_SHAPE(2, 0, 4))};
    cg_tensor *yh = SDPA(NULL, plain[0], plain[1], plain[2], NULL);
    assert_values(yh, (double[]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 16, 0);
    cg_tensor_free(yh);
    free3(plain);
    cg_tensor *ye = SDPA(ctx, qe, ke, ve, NULL);
    assert_values(ye, (double[]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 16, 0);
    assert_int_equal(cg_backward(cg_sum(ctx, ye, NULL, 0, false)), CG_OK);
    assert_values(cg_grad_of(qe), (double[]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 12, 0);
    /* Tq = 0 */
    cg_tensor *y0 = SDPA(ctx, ke, qe, qe, NULL);
    assert_int_equal(cg_numel(y0), 0);
    cg_tensor_free(qe);
    cg_tensor_free(ke);
    cg_tensor_free(ve);
}

/* ctx NULL: a caller-owned result equal to the context's; an input that
 * requires a gradient needs a context. */
static void test_attention_heap_result(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(22);
    cg_tensor *base = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(2, 70, 3, 8), 0, 1);
    cg_tensor *q = cg_transpose(NULL, base, 1, 2); /* not contiguous: copied, then freed */
    cg_attn_opts o = cg_attn_defaults();
    o.causal = true;
    cg_tensor *a = SDPA(NULL, q, q, q, &o), *b = SDPA(ctx, q, q, q, &o);
    assert_non_null(a);
    assert_true(max_diff(a, b) == 0);
    cg_rng r1 = seeded(5), r2 = seeded(5);
    o.dropout = 0.25;
    o.rng = &r1;
    cg_tensor *c = SDPA(NULL, q, q, q, &o);
    o.rng = &r2;
    assert_true(max_diff(c, SDPA(ctx, q, q, q, &o)) == 0);
    cg_tensor_free(a);
    cg_tensor_free(c);
    cg_tensor *l = randn_leaf(&rng, CG_F32, CG_SHAPE(2, 3), 1);
    assert_null(SDPA(NULL, l, l, l, NULL));
    assert_error(CG_ERR_STATE, "cg_scaled_dot_product_attention: an input requires a gradient");
    cg_tensor_free(l);
    cg_tensor_free(q);
    cg_tensor_free(base);
}

/* Dropout runs the composite with opts->rng: the same bits as the composite
 * written out with the same seed. */
static void test_attention_dropout(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(23);
    cg_tensor *q = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(2, 2, 9, 4), 0, 1);
    cg_rng r1 = seeded(3), r2 = seeded(3);
    cg_attn_opts o = cg_attn_defaults();
    o.dropout = 0.5;
    o.causal = true;
    o.rng = &r1;
    cg_tensor *y = SDPA(ctx, q, q, q, &o);
    o.rng = &r2;
    assert_true(max_diff(y, reference(ctx, q, q, q, &o)) == 0);
    o.dropout = 0;
    o.rng = NULL;
    assert_true(max_diff(y, SDPA(ctx, q, q, q, &o)) > 0.1);
}

/* A mask that requires a gradient gets the composite's. */
static void test_attention_mask_grad(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(24);
    cg_tensor *q = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(2, 2, 5, 3), 0, 1);
    cg_tensor *m = randn_leaf(&rng, CG_F64, CG_SHAPE(2, 1, 5, 5), 1), *g[2];
    cg_attn_opts o = cg_attn_defaults();
    o.mask = m;
    cg_tensor *y[2] = {
        cg_sum(ctx, cg_square(ctx, SDPA(ctx, q, q, q, &o)), NULL, 0, false),
        cg_sum(ctx, cg_square(ctx, reference(ctx, q, q, q, &o)), NULL, 0, false)};
    for (int i = 0; i < 2; i++)
        assert_int_equal(cg_grad(ctx, 1, &y[i], NULL, 1, &m, &g[i], 0), CG_OK);
    assert_true(max_diff(g[0], g[1]) < 1e-12);
    cg_tensor_free(m);
}

/* Under no-grad (or with no input requiring one) nothing is recorded. */
static void test_attention_no_graph(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(25);
    cg_tensor *q = randn_leaf(&rng, CG_F32, CG_SHAPE(1, 4, 8), 1);
    cg_no_grad_push(ctx);
    cg_tensor *y = SDPA(ctx, q, q, q, NULL);
    cg_no_grad_pop(ctx);
    assert_non_null(y);
    assert_false(cg_requires_grad(y));
    assert_true(cg_requires_grad(SDPA(ctx, q, q, q, NULL)));
    cg_tensor_free(q);
}

/* A training step's attention allocates from the arena alone: after the
 * first step, the context takes no new chunk. */
static void test_attention_steady_state(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(26);
    cg_tensor *q = randn_leaf(&rng, CG_F32, CG_SHAPE(2, 2, 100, 16), 1);
    cg_attn_opts o = cg_attn_defaults();
    o.causal = true;
    size_t chunks = 0;
    for (int step = 0; step < 3; step++) {
        cg_tensor *y = SDPA(ctx, q, q, q, &o);
        assert_int_equal(cg_backward(cg_sum(ctx, y, NULL, 0, false)), CG_OK);
        cg_ctx_reset(ctx);
        cg_ctx_stats st = cg_ctx_get_stats(ctx);
        if (step == 1) chunks = st.chunk_allocs;
        if (step == 2) assert_int_equal(st.chunk_allocs, chunks);
    }
    cg_tensor_free(q);
}

/* ---- threads ----------------------------------------------------------------------------- */
/* Output and the three gradients, f32, on n threads, into one buffer. */
static float *run_threads(cg_ctx *ctx, int n, int64_t *count) {
    cg_set_num_threads(n);
    cg_rng rng = seeded(30);
    cg_tensor *leaves[3], *qkv[3], *g[3];
    acase c = {.b = 2,
               .h = 3,
               .tq = 150,
               .tk = 150,
               .d = 32,
               .dv = 16,
               .causal = true,
               .mask = 1,
               .transposed = true};
    make_inputs(ctx, &c, CG_F32, 31, leaves, qkv);
    cg_attn_opts o = cg_attn_defaults();
    o.causal = true;
    o.mask = make_mask(ctx, &c, CG_F32, 32);
    cg_tensor *y = SDPA(ctx, qkv[0], qkv[1], qkv[2], &o);
    cg_tensor *gy = cg_randn(ctx, &rng, CG_F32, cg_ndim(y), cg_shape(y), 0, 1);
    assert_int_equal(cg_grad(ctx, 1, &y, (const cg_tensor *const *)&gy, 3, leaves, g, 0),
                     CG_OK);
    cg_tensor *parts[4] = {y, g[0], g[1], g[2]};
    *count = 0;
    for (int i = 0; i < 4; i++) *count += cg_numel(parts[i]);
    float *out = malloc(sizeof(float) * (size_t)*count), *p = out;
    for (int i = 0; i < 4; i++) {
        cg_copy_to_array(parts[i], CG_F32, p);
        p += cg_numel(parts[i]);
    }
    for (int i = 0; i < 3; i++) cg_tensor_free(leaves[i]);
    cg_ctx_reset(ctx);
    return out;
}

static void test_attention_threads_bitwise(void **state) {
    int before = cg_get_num_threads();
    int64_t n1, n2;
    float *one = run_threads(*state, 1, &n1), *two = run_threads(*state, 2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(one, two, sizeof(float) * (size_t)n1);
    free(one);
    free(two);
    cg_set_num_threads(before);
}

/* ---- errors ------------------------------------------------------------------------------ */
static void test_attention_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *q = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3, 4)),
              *k = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 5, 4));
    cg_tensor *v = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 5, 6));
    cg_attn_opts o = cg_attn_defaults();
    cg_rng rng = seeded(1);
#define BAD(st, msg, ...)                                                                      \
    do {                                                                                       \
        assert_null(__VA_ARGS__);                                                              \
        assert_error(st, msg);                                                                 \
    } while (0)
    BAD(CG_ERR_SHAPE, "q [4], k [2,5,4], v [2,5,6]: need q [..., Tq, D]",
        SDPA(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(4)), k, v, NULL));
    BAD(CG_ERR_SHAPE, "ranks differ",
        SDPA(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(1, 2, 3, 4)), k, v, NULL));
    BAD(CG_ERR_SHAPE, "same last dim D",
        SDPA(ctx, q, cg_zeros(ctx, CG_F32, CG_SHAPE(2, 5, 3)), v, NULL));
    BAD(CG_ERR_SHAPE, "same number of keys Tk",
        SDPA(ctx, q, k, cg_zeros(ctx, CG_F32, CG_SHAPE(2, 4, 6)), NULL));
    BAD(CG_ERR_SHAPE, "same leading dims",
        SDPA(ctx, q, k, cg_zeros(ctx, CG_F32, CG_SHAPE(3, 5, 6)), NULL));
    BAD(CG_ERR_SHAPE, "D is 0",
        SDPA(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3, 0)),
             cg_zeros(ctx, CG_F32, CG_SHAPE(2, 5, 0)), v, NULL));
    o.mask = cg_zeros(ctx, CG_F32, CG_SHAPE(3, 4));
    BAD(CG_ERR_SHAPE, "mask [3,4] does not broadcast to the scores [2,3,5]",
        SDPA(ctx, q, k, v, &o));
    o.mask = cg_zeros(ctx, CG_F32, CG_SHAPE(1, 2, 3, 5)); /* more dims than the scores */
    BAD(CG_ERR_SHAPE, "does not broadcast", SDPA(ctx, q, k, v, &o));
    o.mask = cg_zeros(ctx, CG_F64, CG_SHAPE(3, 5));
    BAD(CG_ERR_DTYPE, "v [2,5,6]: dtypes q f32, k f32, v f32, mask f64: need one float dtype",
        SDPA(ctx, q, k, v, &o));
    o = cg_attn_defaults();
    BAD(CG_ERR_DTYPE, "need one float dtype", SDPA(ctx, q, cg_cast(ctx, k, CG_F64), v, NULL));
    cg_tensor *qi = cg_zeros(ctx, CG_I64, CG_SHAPE(2, 3, 4));
    BAD(CG_ERR_DTYPE, "dtypes q i64", SDPA(ctx, qi, qi, qi, NULL));
    o.causal = true;
    BAD(CG_ERR_SHAPE, "q [2,3,4], k [2,5,4], v [2,5,6]: causal needs as many queries as keys",
        SDPA(ctx, q, k, v, &o));
    o = cg_attn_defaults();
    o.dropout = 1;
    o.rng = &rng;
    BAD(CG_ERR_ARG, "dropout 1 is not in [0, 1)", SDPA(ctx, q, k, v, &o));
    o.dropout = -0.1;
    BAD(CG_ERR_ARG, "is not in [0, 1)", SDPA(ctx, q, k, v, &o));
    o.dropout = NAN;
    BAD(CG_ERR_ARG, "is not in [0, 1)", SDPA(ctx, q, k, v, &o));
    o.dropout = 0.1;
    o.rng = NULL;
    BAD(CG_ERR_ARG, "v [2,5,6]: dropout 0.1 needs an rng", SDPA(ctx, q, k, v, &o));
    o = cg_attn_defaults();
    o.scale = -1;
    BAD(CG_ERR_ARG, "scale -1 must be finite and >= 0", SDPA(ctx, q, k, v, &o));
    o.scale = NAN;
    BAD(CG_ERR_ARG, "must be finite", SDPA(ctx, q, k, v, &o));
    o.scale = INFINITY;
    BAD(CG_ERR_ARG, "must be finite", SDPA(ctx, q, k, v, &o));
#undef BAD
}

/* NULL in, NULL out: a NULL given first-hand is an error; the NULL of a
 * failed op keeps that op's error. */
static void test_attention_null(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *q = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3, 4));
    assert_null(SDPA(ctx, NULL, q, q, NULL));
    assert_error(CG_ERR_ARG, "cg_scaled_dot_product_attention");
    assert_null(SDPA(ctx, q, NULL, q, NULL));
    assert_error(CG_ERR_ARG, "cg_scaled_dot_product_attention");
    assert_null(SDPA(ctx, q, q, NULL, NULL));
    assert_error(CG_ERR_ARG, "cg_scaled_dot_product_attention");
    assert_null(SDPA(ctx, cg_view(ctx, q, CG_SHAPE(5, 5)), q, q, NULL));
    assert_error(CG_ERR_SHAPE, "cg_view");
    cg_tensor *stale = cg_zeros(ctx, CG_F32, CG_SHAPE(3, 4));
    cg_ctx_reset(ctx);
    q = cg_zeros(ctx, CG_F32, CG_SHAPE(3, 4));
    cg_attn_opts o = cg_attn_defaults();
    o.mask = stale;
    assert_null(SDPA(ctx, q, q, q, &o));
    assert_error(CG_ERR_STATE, "cg_scaled_dot_product_attention: input 3");
}

/* ---- sampling ---------------------------------------------------------------------------- */
/* Counts of each index among the n of t (i64), into c[v]. */
static void counts(const cg_tensor *t, int64_t v, double *c) {
    int64_t n = cg_numel(t);
    int64_t *x = malloc(sizeof(int64_t) * (size_t)n);
    cg_copy_to_array(t, CG_I64, x);
    for (int64_t j = 0; j < v; j++) c[j] = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(x[i] >= 0 && x[i] < v);
        c[x[i]] += 1.0 / (double)n;
    }
    free(x);
}

static void test_sample_multinomial_frequencies(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(40);
    /* weights, not normalised; category 2 has none */
    cg_tensor *p = cg_from_array(ctx, CG_F64, CG_SHAPE(5), (double[]){0.2, 0.4, 0, 0.6, 0.8});
    cg_tensor *s = cg_multinomial(ctx, p, 40000, true, &rng);
    assert_int_equal(cg_dtype_of(s), CG_I64);
    assert_int_equal(cg_ndim(s), 1);
    double c[5], want[5] = {0.1, 0.2, 0, 0.3, 0.4};
    counts(s, 5, c);
    for (int j = 0; j < 5; j++) assert_float_equal(c[j], want[j], 0.01);
    /* the same seed gives the same draws */
    cg_rng a = seeded(41), b = seeded(41);
    assert_true(max_diff(cg_multinomial(ctx, p, 50, true, &a),
                         cg_multinomial(ctx, p, 50, true, &b)) == 0);
    /* rows of a 2-D f32 table, [B, n] */
    cg_tensor *p2 = cg_cast(
        ctx, cg_from_array(ctx, CG_F64, CG_SHAPE(2, 3), (double[]){0, 0, 1, 1, 0, 0}), CG_F32);
    assert_values(cg_multinomial(ctx, p2, 3, true, &rng), (double[]){2, 2, 2, 0, 0, 0}, 6, 0);
}

/* Without replacement: distinct indices, zero weights last to never, the
 * first draw distributed as the weights. */
static void test_sample_multinomial_without_replacement(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(42);
    cg_tensor *p = cg_from_array(ctx, CG_F64, CG_SHAPE(4), (double[]){1, 0, 3, 4});
    double first[4] = {0};
    for (int i = 0; i < 4000; i++) {
        int64_t got[3];
        cg_copy_to_array(cg_multinomial(ctx, p, 3, false, &rng), CG_I64, got);
        assert_true(got[0] != got[1] && got[0] != got[2] && got[1] != got[2]);
        for (int j = 0; j < 3; j++) assert_int_not_equal(got[j], 1);
        first[got[0]] += 1.0 / 4000;
        if (i % 100 == 0)
            cg_ctx_reset(ctx),
                p = cg_from_array(ctx, CG_F64, CG_SHAPE(4), (double[]){1, 0, 3, 4});
    }
    assert_float_equal(first[0], 0.125, 0.02);
    assert_float_equal(first[2], 0.375, 0.03);
    assert_float_equal(first[3], 0.5, 0.03);
    /* heap result */
    cg_tensor *h = cg_multinomial(NULL, p, 2, false, &rng);
    assert_int_equal(cg_numel(h), 2);
    cg_tensor_free(h);
}

static void test_sample_multinomial_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(43);
    cg_tensor *p = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 3), (double[]){1, 1, 0, 0, 0, 0});
    assert_null(cg_multinomial(ctx, p, 1, true, &rng));
    assert_error(CG_ERR_ARG, "cg_multinomial: probs [2,3]: row 1 sums to 0");
    double bad[3] = {-1, NAN, INFINITY};
    for (int i = 0; i < 3; i++) {
        cg_tensor *b = cg_from_array(ctx, CG_F64, CG_SHAPE(3), (double[]){1, bad[i], 1});
        assert_null(cg_multinomial(ctx, b, 1, true, &rng));
        assert_error(CG_ERR_ARG, "probabilities must be finite and >= 0");
    }
    cg_tensor *one = cg_from_array(ctx, CG_F64, CG_SHAPE(3), (double[]){1, 2, 0});
    assert_null(cg_multinomial(ctx, one, 4, false, &rng));
    assert_error(CG_ERR_ARG, "cannot draw 4 > 3 samples without replacement");
    assert_null(cg_multinomial(ctx, one, 3, false, &rng));
    assert_error(CG_ERR_ARG, "row 0 has 2 non-zero categories, fewer than the 3");
    assert_non_null(cg_multinomial(ctx, one, 4, true, &rng));
    assert_null(cg_multinomial(ctx, one, 0, true, &rng));
    assert_error(CG_ERR_ARG, "n = 0 samples");
    assert_null(cg_multinomial(ctx, one, 1, true, NULL));
    assert_error(CG_ERR_ARG, "cg_multinomial: probs [3]: rng is NULL");
    assert_null(cg_multinomial(ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(3)), 1, true, &rng));
    assert_error(CG_ERR_DTYPE, "needs f32 or f64");
    assert_null(cg_multinomial(ctx, cg_scalar(ctx, CG_F64, 1), 1, true, &rng));
    assert_error(CG_ERR_SHAPE, "needs [V] or [B, V]");
    assert_null(cg_multinomial(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(1, 1, 2)), 1, true, &rng));
    assert_error(CG_ERR_SHAPE, "needs [V] or [B, V]");
    assert_null(cg_multinomial(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(2, 0)), 1, true, &rng));
    assert_error(CG_ERR_SHAPE, "has no categories");
    assert_null(cg_multinomial(ctx, NULL, 1, true, &rng));
    assert_error(CG_ERR_ARG, "cg_multinomial");
}

static void test_sample_logits_top_k_one_is_argmax(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(44);
    cg_tensor *x = cg_randn(ctx, &rng, CG_F32, CG_SHAPE(6, 50), 0, 3);
    for (int t = 0; t < 3; t++) {
        cg_tensor *s = cg_sample_logits(ctx, x, t ? 5.0 : 0.5, 1, &rng);
        assert_int_equal(cg_ndim(s), 1);
        assert_true(max_diff(s, cg_argmax(ctx, x, 1, false)) == 0);
    }
}

/* Frequencies: softmax(x / T) over the top k, renormalised. */
static void test_sample_logits_frequencies(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(45);
    double w[4] = {0.1, 0.2, 0.3, 0.4}, lg[4];
    for (int j = 0; j < 4; j++) lg[j] = log(w[j]) + 2;
    cg_tensor *x =
        cg_expand(ctx, cg_from_array(ctx, CG_F64, CG_SHAPE(1, 4), lg), CG_SHAPE(20000, 4));
    double c[4];
    counts(cg_sample_logits(ctx, x, 1.0, 0, &rng), 4, c);
    for (int j = 0; j < 4; j++) assert_float_equal(c[j], w[j], 0.012);
    counts(cg_sample_logits(ctx, x, 0.5, 0, &rng), 4, c); /* weights squared: /0.3 */
    for (int j = 0; j < 4; j++) assert_float_equal(c[j], w[j] * w[j] / 0.3, 0.012);
    counts(cg_sample_logits(ctx, x, 1.0, 2, &rng), 4, c); /* the top two: 3/7, 4/7 */
    assert_float_equal(c[0] + c[1], 0, 0);
    assert_float_equal(c[2], 3.0 / 7, 0.012);
    counts(cg_sample_logits(ctx, x, 1.0, 9, &rng), 4, c); /* k > V: all */
    assert_float_equal(c[0], 0.1, 0.012);
    /* 1-D logits give one index, rank 0; -inf is never drawn */
    cg_tensor *one =
        cg_from_array(ctx, CG_F64, CG_SHAPE(3), (double[]){-INFINITY, 0, -INFINITY});
    cg_tensor *s = cg_sample_logits(ctx, one, 1.0, 0, &rng);
    assert_int_equal(cg_ndim(s), 0);
    int64_t got = -1;
    assert_int_equal(cg_get_i64(s, NULL, &got), CG_OK);
    assert_int_equal(got, 1);
}

static void test_sample_logits_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(46);
    cg_tensor *x = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3));
    double temps[3] = {0, -1, NAN};
    for (int i = 0; i < 3; i++) {
        assert_null(cg_sample_logits(ctx, x, temps[i], 0, &rng));
        assert_error(CG_ERR_ARG, "need a finite temperature > 0");
    }
    assert_null(cg_sample_logits(ctx, x, INFINITY, 0, &rng));
    assert_error(CG_ERR_ARG, "need a finite temperature > 0");
    assert_null(cg_sample_logits(ctx, x, 1, -1, &rng));
    assert_error(CG_ERR_ARG, "top_k >= 0");
    assert_null(cg_sample_logits(ctx, x, 1, 0, NULL));
    assert_error(CG_ERR_ARG, "cg_sample_logits: logits [2,3]: rng is NULL");
    assert_null(cg_sample_logits(ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(2, 3)), 1, 0, &rng));
    assert_error(CG_ERR_DTYPE, "cg_sample_logits: logits [2,3] is i64");
    assert_null(cg_sample_logits(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(1, 2, 3)), 1, 0, &rng));
    assert_error(CG_ERR_SHAPE, "needs [V] or [B, V]");
    cg_tensor *bad = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 2), (double[]){0, 1, NAN, 0});
    assert_null(cg_sample_logits(ctx, bad, 1, 0, &rng));
    assert_error(CG_ERR_ARG, "cg_sample_logits: logits [2,2]: row 1 holds nan");
    cg_tensor *inf = cg_from_array(ctx, CG_F64, CG_SHAPE(2), (double[]){-INFINITY, -INFINITY});
    assert_null(cg_sample_logits(ctx, inf, 1, 0, &rng));
    assert_error(CG_ERR_ARG, "row 0 is all -inf");
    cg_tensor *h = cg_sample_logits(NULL, x, 1, 0, &rng);
    assert_int_equal(cg_numel(h), 2);
    cg_tensor_free(h);
    assert_null(cg_sample_logits(ctx, NULL, 1, 0, &rng));
    assert_error(CG_ERR_ARG, "cg_sample_logits");
}

#define T(name) cmocka_unit_test_setup_teardown(name, ctx_setup, ctx_teardown)
int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_attention_matches_composite_f64),
        T(test_attention_matches_composite_f32),
        T(test_attention_by_hand),
        T(test_attention_ranks),
        T(test_attention_gradcheck),
        T(test_attention_gradcheck_transposed),
        T(test_attention_results_keep_the_input_layout),
        T(test_attention_gradcheck_tiles),
        T(test_attention_gradcheck_composite),
        T(test_attention_create_graph_matches),
        T(test_attention_masked_rows_and_empty),
        T(test_attention_heap_result),
        T(test_attention_dropout),
        T(test_attention_mask_grad),
        T(test_attention_no_graph),
        T(test_attention_steady_state),
        T(test_attention_threads_bitwise),
        T(test_attention_errors),
        T(test_attention_null),
        T(test_sample_multinomial_frequencies),
        T(test_sample_multinomial_without_replacement),
        T(test_sample_multinomial_errors),
        T(test_sample_logits_top_k_one_is_argmax),
        T(test_sample_logits_frequencies),
        T(test_sample_logits_errors),
    };
    return cmocka_run_group_tests_name("attention", tests, NULL, NULL);
}
