/* nn/loss.c: every loss against its formula for every reduction, label
 * smoothing and ignore_index, gradients (first and second order, also on a
 * non-contiguous input), stability for logits of +-1e4, f32 against f64,
 * the parallel row path, results without a context, and the errors. */
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

/* The losses of an input and a target of one shape, by kind. */
typedef enum kind { MSE, L1, SMOOTH, HUBER, BCE, BCEL, PROBS } kind;
typedef struct pcase {
    kind k;
    double p; /* beta or delta */
    cg_reduction r;
} pcase;
static const pcase kinds[] = {
    {MSE, 0, CG_MEAN},    {L1, 0, CG_MEAN},    {SMOOTH, 1, CG_MEAN}, {SMOOTH, 0.5, CG_MEAN},
    {SMOOTH, 0, CG_MEAN}, {HUBER, 1, CG_MEAN}, {HUBER, 2, CG_MEAN},  {BCE, 0, CG_MEAN},
    {BCEL, 0, CG_MEAN},   {PROBS, 0, CG_MEAN}};
#define NKINDS ((int)(sizeof kinds / sizeof kinds[0]))

static cg_tensor *pair(cg_ctx *ctx, kind k, double p, const cg_tensor *x, const cg_tensor *y,
                       cg_reduction r) {
    switch (k) {
    case MSE: return cg_mse_loss(ctx, x, y, r);
    case L1: return cg_l1_loss(ctx, x, y, r);
    case SMOOTH: return cg_smooth_l1_loss(ctx, x, y, p, r);
    case HUBER: return cg_huber_loss(ctx, x, y, p, r);
    case BCE: return cg_bce_loss(ctx, x, y, r);
    case BCEL: return cg_bce_with_logits(ctx, x, y, r);
    case PROBS: return cg_cross_entropy_probs(ctx, x, y, r);
    }
    return NULL;
}
static cg_tensor *pair_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    const pcase *c = user;
    return pair(ctx, c->k, c->p, in[0], in[1], c->r);
}

/* One element of the unreduced loss, from PyTorch's formulas. */
static double pair_ref(kind k, double p, double x, double y) {
    double d = x - y, a = fabs(d);
    switch (k) {
    case MSE: return d * d;
    case L1: return a;
    case SMOOTH: return p == 0 ? a : a < p ? 0.5 * d * d / p : a - 0.5 * p;
    case HUBER: return a < p ? 0.5 * d * d : p * (a - 0.5 * p);
    case BCE: return -(y * fmax(log(x), -100) + (1 - y) * fmax(log(1 - x), -100));
    case BCEL: return -(y * log(1 / (1 + exp(-x))) + (1 - y) * log(1 - 1 / (1 + exp(-x))));
    case PROBS: break;
    }
    return NAN;
}

/* Seeded heap inputs [rows, cols] for kind k (no gradient): probabilities
 * for bce, a softmax target for PROBS; transposed: x is a transposed view. */
static void make_pair(kind k, uint64_t seed, int64_t rows, int64_t cols, bool transposed,
                      cg_tensor **x, cg_tensor **y) {
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    int64_t shx[2] = {transposed ? cols : rows, transposed ? rows : cols},
            shy[2] = {rows, cols};
    cg_tensor *bx = k == BCE ? cg_rand(NULL, &rng, CG_F64, 2, shx, 0.05, 0.95)
                             : cg_randn(NULL, &rng, CG_F64, 2, shx, 0, 1.5);
    *x = transposed ? cg_transpose(NULL, bx, 0, 1) : bx;
    if (transposed) cg_tensor_free(bx); /* the view keeps the storage */
    if (k == BCE) {
        *y = cg_rand(NULL, &rng, CG_F64, 2, shy, 0, 1);
    } else if (k == PROBS) {
        cg_tensor *z = cg_randn(NULL, &rng, CG_F64, 2, shy, 0, 1);
        *y = cg_softmax(NULL, z, 1);
        cg_tensor_free(z);
    } else {
        *y = cg_randn(NULL, &rng, CG_F64, 2, shy, 0, 1.5);
    }
}

/* none holds want[n]; sum their sum and mean the sum over denom. */
static void assert_reductions(cg_tensor *none, cg_tensor *sum, cg_tensor *mean,
                              const double *want, int n, double denom, double tol) {
    double s = 0;
    for (int i = 0; i < n; i++) s += want[i];
    assert_values(none, want, n, tol);
    assert_int_equal(cg_ndim(sum), 0);
    assert_int_equal(cg_ndim(mean), 0);
    assert_float_equal(cg_item(sum), s, tol);
    assert_float_equal(cg_item(mean), s / denom, tol);
}

/* -log_softmax(x)_c of one row of C, the naive way (small test values). */
static double ref_nlsm(const double *x, int C, int c) {
    double s = 0;
    for (int k = 0; k < C; k++) s += exp(x[k]);
    return log(s) - x[c];
}
/* (1 - eps) (-log_softmax_y) + eps mean_c(-log_softmax_c). */
static double ref_ce(const double *x, int C, int64_t y, double eps) {
    double smooth = 0;
    for (int c = 0; c < C; c++) smooth += ref_nlsm(x, C, c);
    return (1 - eps) * ref_nlsm(x, C, (int)y) + eps * smooth / C;
}

/* d(out summed)/dx, recorded or not. */
static cg_tensor *grad_of(cg_ctx *ctx, cg_tensor *out, cg_tensor *x, unsigned flags) {
    cg_tensor *o = cg_numel(out) == 1 ? out : cg_sum(ctx, out, NULL, 0, false), *g = NULL;
    assert_int_equal(cg_grad(ctx, 1, &o, NULL, 1, &x, &g, flags), CG_OK);
    return g;
}

static cg_tensor *labels_of(cg_ctx *ctx, int n, const int64_t *v) {
    return cg_from_array(ctx, CG_I64, 1, (int64_t[]){n}, v);
}

/* The class-index losses, for gradcheck. */
typedef struct ccase {
    const cg_tensor *labels;
    double eps;
    int64_t ignore;
    cg_reduction r;
    bool nll;
} ccase;
static cg_tensor *ce_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    const ccase *c = user;
    if (c->nll) return cg_nll_loss(ctx, in[0], c->labels, c->r);
    return cg_cross_entropy_ex(ctx, in[0], c->labels, c->r, c->eps, c->ignore);
}

static const double X6[] = {0.5, -1.2, 3.0, 0.1, -2.5, 1.0};
static const double Y6[] = {0.0, 0.3, 1.0, 0.1, 0.5, -0.4}; /* d: .5 -1.5 2 0 -3 1.4 */
static const double P6[] = {0, 0.25, 0.5, 0.9, 1, 0.999};   /* probabilities, ends included */
static const double T6[] = {1, 0, 0.5, 1, 0, 0.3};
static const double L12[] = {0.2, -1.0, 1.5, 0.3, 2.0, 0.1, -0.5, 0.0, -1.0, 0.4, 0.4, 3.0};

/* ---- values by hand ---------------------------------------------------------- */
static void test_loss_elementwise_values_by_hand(void **state) {
    cg_ctx *ctx = *state;
    for (int i = 0; i < NKINDS; i++) {
        kind k = kinds[i].k;
        if (k == PROBS) continue;
        const double *xv = k == BCE ? P6 : X6, *yv = k == BCE ? T6 : Y6;
        cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 3), xv);
        cg_tensor *y = cg_from_array(ctx, CG_F64, CG_SHAPE(2, 3), yv);
        double want[6];
        for (int e = 0; e < 6; e++) want[e] = pair_ref(k, kinds[i].p, xv[e], yv[e]);
        cg_tensor *none = pair(ctx, k, kinds[i].p, x, y, CG_NONE);
        assert_int_equal(cg_ndim(none), 2);
        assert_reductions(none, pair(ctx, k, kinds[i].p, x, y, CG_SUM),
                          pair(ctx, k, kinds[i].p, x, y, CG_MEAN), want, 6, 6, 1e-12);
    }
    /* a few by hand: huber(3, delta 2) = 2 (3 - 1); smooth_l1(0.5, beta 1) = 0.125;
     * bce(0, 1) = 100 (clamped log); bce(0.5, 0.5) = log 2 */
    cg_tensor *a = cg_from_array(ctx, CG_F64, CG_SHAPE(2), (double[]){3, 0.5});
    cg_tensor *z = cg_zeros(ctx, CG_F64, CG_SHAPE(2));
    assert_values(cg_huber_loss(ctx, a, z, 2, CG_NONE), (double[]){4, 0.125}, 2, 1e-15);
    assert_values(cg_smooth_l1_loss(ctx, a, z, 1, CG_NONE), (double[]){2.5, 0.125}, 2, 1e-15);
    cg_tensor *p = cg_from_array(ctx, CG_F64, CG_SHAPE(2), (double[]){0, 0.5});
    cg_tensor *t = cg_from_array(ctx, CG_F64, CG_SHAPE(2), (double[]){1, 0.5});
    assert_values(cg_bce_loss(ctx, p, t, CG_NONE), (double[]){100, log(2.0)}, 2, 1e-12);
}

static void test_loss_cross_entropy_values_by_hand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(3, 4), L12);
    const int64_t lab[] = {2, 0, 3};
    cg_tensor *y = labels_of(ctx, 3, lab);
    double want[3];
    for (int i = 0; i < 3; i++) want[i] = ref_ce(L12 + 4 * i, 4, lab[i], 0);
    assert_reductions(cg_cross_entropy(ctx, x, y, CG_NONE), cg_cross_entropy(ctx, x, y, CG_SUM),
                      cg_cross_entropy(ctx, x, y, CG_MEAN), want, 3, 3, 1e-12);
    /* one sample: logits [C], a rank-0 label */
    cg_tensor *x1 = cg_from_array(ctx, CG_F64, CG_SHAPE(4), L12 + 4);
    cg_tensor *y1 = cg_from_array(ctx, CG_I64, 0, NULL, (int64_t[]){0});
    for (cg_reduction r = CG_MEAN; r <= CG_NONE; r++) {
        cg_tensor *l = cg_cross_entropy(ctx, x1, y1, r);
        assert_int_equal(cg_ndim(l), 0);
        assert_float_equal(cg_item(l), want[1], 1e-12);
    }
    /* a uniform row: log C */
    cg_tensor *u = cg_zeros(ctx, CG_F64, CG_SHAPE(1, 10));
    assert_float_equal(
        cg_item(cg_cross_entropy(ctx, u, labels_of(ctx, 1, (int64_t[]){7}), CG_MEAN)),
        log(10.0), 1e-15);
}

static void test_loss_cross_entropy_label_smoothing(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(3, 4), L12);
    const int64_t lab[] = {2, 0, 3};
    cg_tensor *y = labels_of(ctx, 3, lab);
    const double epss[] = {0, 0.1, 0.5, 1};
    for (int e = 0; e < 4; e++) {
        double want[3];
        for (int i = 0; i < 3; i++) want[i] = ref_ce(L12 + 4 * i, 4, lab[i], epss[e]);
        assert_reductions(cg_cross_entropy_ex(ctx, x, y, CG_NONE, epss[e], CG_IGNORE_NONE),
                          cg_cross_entropy_ex(ctx, x, y, CG_SUM, epss[e], CG_IGNORE_NONE),
                          cg_cross_entropy_ex(ctx, x, y, CG_MEAN, epss[e], CG_IGNORE_NONE),
                          want, 3, 3, 1e-12);
    }
    /* eps = 0.1 row 0 written out: 0.9 nll + 0.1 / 4 sum_c (-log_softmax_c) */
    double nl[4], s = 0;
    for (int c = 0; c < 4; c++) s += nl[c] = ref_nlsm(L12, 4, c);
    cg_tensor *l = cg_cross_entropy_ex(ctx, x, y, CG_NONE, 0.1, -100);
    double got[3];
    cg_copy_to_array(l, CG_F64, got);
    assert_float_equal(got[0], 0.9 * nl[2] + 0.025 * s, 1e-12);
}

static void test_loss_cross_entropy_ignore_index(void **state) {
    cg_ctx *ctx = *state;
    double xv[16];
    for (int i = 0; i < 16; i++) xv[i] = L12[i % 12] + 0.1 * i;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(4, 4), xv);
    cg_tensor *y = labels_of(ctx, 4, (int64_t[]){2, -100, 3, 1});
    /* cg_cross_entropy ignores -100 (PyTorch's default): the mean is over 3 rows */
    double want[4] = {ref_ce(xv, 4, 2, 0), 0, ref_ce(xv + 8, 4, 3, 0),
                      ref_ce(xv + 12, 4, 1, 0)};
    assert_reductions(cg_cross_entropy(ctx, x, y, CG_NONE), cg_cross_entropy(ctx, x, y, CG_SUM),
                      cg_cross_entropy(ctx, x, y, CG_MEAN), want, 4, 3, 1e-12);
    /* another ignore_index (1), with smoothing: rows 0, 1, 2 count */
    double ws[4] = {ref_ce(xv, 4, 2, 0.2), ref_ce(xv + 4, 4, 0, 0.2), ref_ce(xv + 8, 4, 3, 0.2),
                    0};
    cg_tensor *y2 = labels_of(ctx, 4, (int64_t[]){2, 0, 3, 1});
    assert_reductions(cg_cross_entropy_ex(ctx, x, y2, CG_NONE, 0.2, 1),
                      cg_cross_entropy_ex(ctx, x, y2, CG_SUM, 0.2, 1),
                      cg_cross_entropy_ex(ctx, x, y2, CG_MEAN, 0.2, 1), ws, 4, 3, 1e-12);
    /* every row ignored: mean 0 / 0 = NaN and a zero gradient, as PyTorch; sum 0 */
    cg_tensor *xl = leaf(CG_F64, CG_SHAPE(4, 4), xv);
    cg_tensor *all = labels_of(ctx, 4, (int64_t[]){-100, -100, -100, -100});
    cg_tensor *m = cg_cross_entropy(ctx, xl, all, CG_MEAN);
    assert_true(isnan(cg_item(m)));
    assert_float_equal(cg_item(cg_cross_entropy(ctx, xl, all, CG_SUM)), 0, 0);
    double zeros[16] = {0};
    assert_values(grad_of(ctx, m, xl, 0), zeros, 16, 0);
    cg_tensor_free(xl);
}

static void test_loss_cross_entropy_probs_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(3, 4), L12);
    /* one-hot targets: Keras' categorical cross-entropy = cross_entropy */
    double oh[12] = {0};
    oh[2] = oh[4] = oh[11] = 1;
    cg_tensor *p = cg_from_array(ctx, CG_F64, CG_SHAPE(3, 4), oh);
    cg_tensor *y = labels_of(ctx, 3, (int64_t[]){2, 0, 3});
    for (cg_reduction r = CG_MEAN; r <= CG_NONE; r++) {
        double want[3];
        cg_copy_to_array(cg_cross_entropy(ctx, x, y, r), CG_F64, want);
        assert_values(cg_cross_entropy_probs(ctx, x, p, r), want, r == CG_NONE ? 3 : 1, 1e-12);
    }
    /* soft targets: -sum_c p_c log_softmax_c, mean over the 3 rows */
    const double sp[12] = {0.1, 0.2, 0.3, 0.4, 0.25, 0.25, 0.25, 0.25, 1, 0, 0, 0};
    cg_tensor *q = cg_from_array(ctx, CG_F64, CG_SHAPE(3, 4), sp);
    double want[3] = {0};
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 4; c++) want[i] += sp[4 * i + c] * ref_nlsm(L12 + 4 * i, 4, c);
    assert_reductions(cg_cross_entropy_probs(ctx, x, q, CG_NONE),
                      cg_cross_entropy_probs(ctx, x, q, CG_SUM),
                      cg_cross_entropy_probs(ctx, x, q, CG_MEAN), want, 3, 3, 1e-12);
    cg_tensor *x1 = cg_from_array(ctx, CG_F64, CG_SHAPE(4), L12);
    cg_tensor *q1 = cg_from_array(ctx, CG_F64, CG_SHAPE(4), sp);
    assert_float_equal(cg_item(cg_cross_entropy_probs(ctx, x1, q1, CG_MEAN)), want[0], 1e-12);
}

static void test_loss_nll_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *lp = cg_from_array(ctx, CG_F64, CG_SHAPE(3, 4), L12);
    cg_tensor *y = labels_of(ctx, 3, (int64_t[]){1, -100, 3});
    double want[3] = {1.0, 0, -3.0}; /* -lp[0,1], ignored, -lp[2,3] */
    assert_reductions(cg_nll_loss(ctx, lp, y, CG_NONE), cg_nll_loss(ctx, lp, y, CG_SUM),
                      cg_nll_loss(ctx, lp, y, CG_MEAN), want, 3, 2, 1e-15);
    /* nll of log_softmax is cross_entropy */
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(3, 4), L12);
    cg_tensor *y2 = labels_of(ctx, 3, (int64_t[]){2, 0, 3});
    assert_float_equal(cg_item(cg_nll_loss(ctx, cg_log_softmax(ctx, x, 1), y2, CG_MEAN)),
                       cg_item(cg_cross_entropy(ctx, x, y2, CG_MEAN)), 1e-14);
}

/* Batches of no rows: mean NaN, sum 0, none empty (PyTorch's results). */
static void test_loss_empty_batch(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F32, CG_SHAPE(0, 10));
    cg_tensor *y = cg_zeros(ctx, CG_I64, CG_SHAPE(0));
    assert_true(isnan(cg_item(cg_cross_entropy(ctx, x, y, CG_MEAN))));
    assert_float_equal(cg_item(cg_cross_entropy(ctx, x, y, CG_SUM)), 0, 0);
    assert_int_equal(cg_numel(cg_cross_entropy(ctx, x, y, CG_NONE)), 0);
    cg_tensor *e = cg_zeros(ctx, CG_F32, CG_SHAPE(0));
    assert_true(isnan(cg_item(cg_mse_loss(ctx, e, e, CG_MEAN))));
    assert_float_equal(cg_item(cg_bce_loss(ctx, e, e, CG_SUM)), 0, 0);
}

/* ---- gradients ---------------------------------------------------------------- */
static void test_loss_backward_by_hand(void **state) {
    cg_ctx *ctx = *state;
    /* cross_entropy mean: (softmax - target) / N_kept, ignored rows 0 */
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(3, 4), L12);
    cg_tensor *y = labels_of(ctx, 3, (int64_t[]){2, -100, 3});
    double eps = 0.2, want[12];
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 4; c++) {
            double sm = exp(-ref_nlsm(L12 + 4 * i, 4, c));
            double t = eps / 4 + (c == (i == 0 ? 2 : 3) ? 1 - eps : 0);
            want[4 * i + c] = i == 1 ? 0 : (sm - t) / 2;
        }
    cg_tensor *l = cg_cross_entropy_ex(ctx, x, y, CG_MEAN, eps, -100);
    assert_string_equal(cg_node_op(cg_grad_fn(l))->name, "cross_entropy");
    assert_int_equal(cg_backward(l), CG_OK);
    assert_values(cg_grad_of(x), want, 12, 1e-15);
    cg_tensor_free(x);
    /* mse mean: 2 (x - y) / n for x, its negative for y */
    cg_tensor *a = leaf(CG_F64, CG_SHAPE(6), X6), *b = leaf(CG_F64, CG_SHAPE(6), Y6);
    assert_int_equal(cg_backward(cg_mse_loss(ctx, a, b, CG_MEAN)), CG_OK);
    double ga[6], gb[6];
    for (int i = 0; i < 6; i++) gb[i] = -(ga[i] = 2 * (X6[i] - Y6[i]) / 6);
    assert_values(cg_grad_of(a), ga, 6, 1e-15);
    assert_values(cg_grad_of(b), gb, 6, 1e-15);
    /* bce_with_logits sum: sigmoid(x) - y for x, -x for y */
    cg_zero_grad(a);
    cg_zero_grad(b);
    assert_int_equal(cg_backward(cg_bce_with_logits(ctx, a, b, CG_SUM)), CG_OK);
    for (int i = 0; i < 6; i++) {
        ga[i] = 1 / (1 + exp(-X6[i])) - Y6[i];
        gb[i] = -X6[i];
    }
    assert_values(cg_grad_of(a), ga, 6, 1e-15);
    assert_values(cg_grad_of(b), gb, 6, 1e-15);
    cg_tensor_free(a);
    cg_tensor_free(b);
}

/* Every elementwise loss and reduction, w.r.t. input and target. */
static void test_loss_gradcheck_elementwise(void **state) {
    (void)state;
    for (int i = 0; i < NKINDS; i++)
        for (cg_reduction r = CG_MEAN; r <= CG_NONE; r++) {
            pcase c = kinds[i];
            c.r = r;
            cg_tensor *in[2];
            make_pair(c.k, 10 + (uint64_t)i, 3, 4, false, &in[0], &in[1]);
            assert_int_equal(cg_set_requires_grad(in[0], true), CG_OK);
            assert_int_equal(cg_set_requires_grad(in[1], true), CG_OK);
            cg_assert_gradcheck(pair_fn, &c, 2, in);
            cg_tensor_free(in[0]);
            cg_tensor_free(in[1]);
        }
}

/* A transposed heap view as the input leaf, for every loss. */
static void test_loss_gradcheck_noncontiguous(void **state) {
    cg_ctx *ctx = *state;
    for (int i = 0; i < NKINDS; i++) {
        pcase c = kinds[i];
        cg_tensor *in[2];
        make_pair(c.k, 30 + (uint64_t)i, 4, 3, true, &in[0], &in[1]);
        assert_false(cg_is_contiguous(in[0]));
        assert_int_equal(cg_set_requires_grad(in[0], true), CG_OK);
        cg_assert_gradcheck(pair_fn, &c, 2, in);
        cg_tensor_free(in[0]);
        cg_tensor_free(in[1]);
    }
    cg_rng rng;
    cg_rng_seed(&rng, 40);
    cg_tensor *b = cg_randn(NULL, &rng, CG_F64, CG_SHAPE(3, 4), 0, 1);
    cg_tensor *xt = cg_transpose(NULL, b, 0, 1);
    assert_int_equal(cg_set_requires_grad(xt, true), CG_OK);
    /* labels as a strided view too: every other element of [8] */
    cg_tensor *lab8 = labels_of(ctx, 8, (int64_t[]){1, 9, 0, 9, 2, 9, 2, 9});
    ccase cc = {cg_slice(ctx, lab8, 0, 0, CG_END, 2), 0.1, -100, CG_MEAN, false};
    cg_assert_gradcheck(ce_fn, &cc, 1, &xt);
    cc.nll = true;
    cg_assert_gradcheck(ce_fn, &cc, 1, &xt);
    cg_tensor_free(xt);
    cg_tensor_free(b);
}

/* cross_entropy plain, smoothed, with ignored rows, both; nll; every
 * reduction; [N, C] and [C]. */
static void test_loss_gradcheck_cross_entropy(void **state) {
    cg_ctx *ctx = *state;
    /* -100 is ignored by default; with ignore_index 3 the label 3 rows are */
    cg_tensor *ys[2] = {labels_of(ctx, 5, (int64_t[]){3, 0, -100, 2, 3}),
                        labels_of(ctx, 5, (int64_t[]){3, 0, 1, 2, 3})};
    const double epss[] = {0, 0.25};
    const int64_t ignores[] = {-100, 3};
    for (int e = 0; e < 2; e++)
        for (int g = 0; g < 2; g++)
            for (cg_reduction r = CG_MEAN; r <= CG_NONE; r++)
                for (int nll = 0; nll < 2; nll++) {
                    ccase c = {ys[g], nll ? 0 : epss[e], ignores[g], r, nll};
                    if (nll && (e || g)) continue; /* nll has neither argument */
                    cg_tensor *x = seeded_leaf(50 + (uint64_t)r, CG_F64, CG_SHAPE(5, 4), 2);
                    cg_assert_gradcheck(ce_fn, &c, 1, &x);
                    cg_tensor_free(x);
                }
    ccase c1 = {cg_from_array(ctx, CG_I64, 0, NULL, (int64_t[]){2}), 0.3, -100, CG_MEAN, false};
    cg_tensor *x1 = seeded_leaf(60, CG_F64, CG_SHAPE(4), 2);
    cg_assert_gradcheck(ce_fn, &c1, 1, &x1);
    cg_tensor_free(x1);
}

static void test_loss_gradgradcheck(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *y = labels_of(ctx, 4, (int64_t[]){1, 0, 2, 1});
    const ccase cases[] = {{y, 0, CG_IGNORE_NONE, CG_MEAN, false},
                           {y, 0.2, CG_IGNORE_NONE, CG_NONE, false},
                           {y, 0, 1, CG_MEAN, false},
                           {y, 0.1, 2, CG_SUM, false},
                           {y, 0, 1, CG_NONE, true}};
    for (int i = 0; i < 5; i++) {
        cg_tensor *x = seeded_leaf(70 + (uint64_t)i, CG_F64, CG_SHAPE(4, 3), 2);
        cg_assert_gradgradcheck(ce_fn, (void *)&cases[i], 1, &x);
        cg_tensor_free(x);
    }
    const pcase pc[] = {
        {MSE, 0, CG_MEAN}, {MSE, 0, CG_NONE}, {BCEL, 0, CG_MEAN}, {BCEL, 0, CG_NONE}};
    for (int i = 0; i < 4; i++) {
        cg_tensor *in[2];
        make_pair(pc[i].k, 80 + (uint64_t)i, 2, 3, false, &in[0], &in[1]);
        assert_int_equal(cg_set_requires_grad(in[0], true), CG_OK);
        assert_int_equal(cg_set_requires_grad(in[1], true), CG_OK);
        cg_assert_gradgradcheck(pair_fn, (void *)&pc[i], 2, in);
        cg_tensor_free(in[0]);
        cg_tensor_free(in[1]);
    }
}

/* The fused backward (not recorded) and the differentiable one agree. */
static void test_loss_fused_and_graph_backward_agree(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *y = labels_of(ctx, 5, (int64_t[]){3, 0, 1, 2, 3});
    for (int dt = CG_F32; dt <= CG_F64; dt++)
        for (int k = 0; k < 3; k++) {
            cg_tensor *x = seeded_leaf(90, dt, CG_SHAPE(5, 4), 3);
            cg_tensor *l =
                k == 2 ? cg_nll_loss(ctx, x, y, CG_NONE)
                       : cg_cross_entropy_ex(ctx, x, y, k ? CG_NONE : CG_MEAN, 0.1 * k, 1);
            double a[20], b[20];
            cg_copy_to_array(grad_of(ctx, l, x, CG_CREATE_GRAPH), CG_F64, a);
            cg_copy_to_array(grad_of(ctx, l, x, 0), CG_F64, b);
            for (int i = 0; i < 20; i++) assert_float_equal(a[i], b[i], dt ? 1e-15 : 1e-7);
            cg_tensor_free(x);
        }
}

/* ---- stability, precision, size --------------------------------------------------------- */
static void test_loss_stable_for_huge_logits(void **state) {
    cg_ctx *ctx = *state;
    const double big[6] = {1e4, -1e4, 0, -1e4, 1e4, 1e4};
    cg_tensor *y = labels_of(ctx, 2, (int64_t[]){1, 2});
    for (int dt = CG_F32; dt <= CG_F64; dt++) {
        /* row 0: lse 1e4, loss 2e4; row 1: lse 1e4 + log 2, loss log 2 */
        cg_tensor *x = leaf(dt, CG_SHAPE(2, 3), big);
        cg_tensor *l = cg_cross_entropy(ctx, x, y, CG_MEAN);
        assert_float_equal(cg_item(l), (2e4 + log(2.0)) / 2, 1e-3);
        assert_values(grad_of(ctx, l, x, 0), (double[]){0.5, -0.5, 0, 0, 0.25, -0.25}, 6, 1e-6);
        cg_tensor *ls = cg_cross_entropy_ex(ctx, x, y, CG_SUM, 0.3, CG_IGNORE_NONE);
        double want = 0.7 * 2e4 + 0.1 * (0 + 2e4 + 1e4) + log(2.0) + 0.7 * 0 + 0.1 * 2e4;
        assert_float_equal(cg_item(ls), want, 1e-2);
        double g[6];
        cg_copy_to_array(grad_of(ctx, ls, x, CG_CREATE_GRAPH), CG_F64, g);
        for (int i = 0; i < 6; i++) assert_true(isfinite(g[i]));
        cg_tensor *p = cg_cast(
            ctx, cg_from_array(ctx, CG_F64, CG_SHAPE(2, 3), (double[]){0, 1, 0, 0, 0, 1}), dt);
        assert_float_equal(cg_item(cg_cross_entropy_probs(ctx, x, p, CG_MEAN)),
                           (2e4 + log(2.0)) / 2, 1e-3);
        /* bce_with_logits: losses 1e4, 1e4, 0, 0; gradients sigmoid(x) - y and -x */
        cg_tensor *z = leaf(dt, CG_SHAPE(4), (double[]){1e4, -1e4, 1e4, -1e4});
        cg_tensor *t = leaf(dt, CG_SHAPE(4), (double[]){0, 1, 1, 0});
        cg_tensor *lb = cg_bce_with_logits(ctx, z, t, CG_NONE);
        assert_values(lb, (double[]){1e4, 1e4, 0, 0}, 4, 0);
        assert_int_equal(cg_backward_ex(cg_sum(ctx, lb, NULL, 0, false), NULL, 0), CG_OK);
        assert_values(cg_grad_of(z), (double[]){1, -1, 0, 0}, 4, 0);
        assert_values(cg_grad_of(t), (double[]){-1e4, 1e4, -1e4, 1e4}, 4, 0);
        cg_tensor_free(x);
        cg_tensor_free(z);
        cg_tensor_free(t);
    }
}

/* f32 and f64 give the same losses and gradients (to f32 precision). */
static void test_loss_f32_matches_f64(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *y = labels_of(ctx, 3, (int64_t[]){1, 0, 3});
    for (int i = 0; i <= NKINDS; i++) {
        cg_tensor *x64, *t64;
        make_pair(i < NKINDS ? kinds[i].k : MSE, 100 + (uint64_t)i, 3, 4, false, &x64, &t64);
        double v[2], g[2][12];
        for (int dt = CG_F32; dt <= CG_F64; dt++) {
            cg_tensor *x = cg_cast(NULL, x64, dt), *t = cg_cast(NULL, t64, dt);
            assert_int_equal(cg_set_requires_grad(x, true), CG_OK);
            cg_tensor *l = i < NKINDS ? pair(ctx, kinds[i].k, kinds[i].p, x, t, CG_MEAN)
                                      : cg_cross_entropy_ex(ctx, x, y, CG_MEAN, 0.1, 0);
            assert_int_equal(cg_dtype_of(l), dt);
            v[dt] = cg_item(l);
            cg_copy_to_array(grad_of(ctx, l, x, 0), CG_F64, g[dt]);
            cg_tensor_free(x);
            cg_tensor_free(t);
        }
        assert_float_equal(v[0], v[1], 1e-5 * (1 + fabs(v[1])));
        for (int e = 0; e < 12; e++) assert_float_equal(g[0][e], g[1][e], 1e-5);
        cg_tensor_free(x64);
        cg_tensor_free(t64);
    }
}

/* 4000 x 10 runs the rows in parallel: the same as log_softmax + gather. */
static void test_loss_parallel_rows_match_composition(void **state) {
    cg_ctx *ctx = *state;
    enum { N = 4000, C = 10 };
    int64_t *lab = malloc(N * sizeof *lab);
    for (int i = 0; i < N; i++) lab[i] = (i * 7) % C;
    cg_tensor *y = labels_of(ctx, N, lab);
    cg_tensor *idx = cg_view(ctx, y, 2, (int64_t[]){N, 1});
    double *a = malloc(N * C * sizeof *a), *b = malloc(N * C * sizeof *b);
    for (int dt = CG_F32; dt <= CG_F64; dt++) {
        cg_tensor *x = seeded_leaf(110, dt, CG_SHAPE(N, C), 3);
        cg_tensor *fused = cg_cross_entropy_ex(ctx, x, y, CG_MEAN, 0.1, CG_IGNORE_NONE);
        cg_tensor *lsm = cg_log_softmax(ctx, x, 1);
        cg_tensor *nll = cg_neg(ctx, cg_mean(ctx, cg_gather(ctx, lsm, 1, idx), NULL, 0, false));
        cg_tensor *comp =
            cg_add(ctx, cg_mul_scalar(ctx, nll, 0.9),
                   cg_mul_scalar(ctx, cg_neg(ctx, cg_mean(ctx, lsm, NULL, 0, false)), 0.1));
        double tol = dt ? 1e-12 : 1e-5;
        assert_float_equal(cg_item(fused), cg_item(comp), tol);
        cg_copy_to_array(grad_of(ctx, fused, x, 0), CG_F64, a);
        cg_copy_to_array(grad_of(ctx, comp, x, 0), CG_F64, b);
        for (int i = 0; i < N * C; i++) assert_float_equal(a[i], b[i], tol * 1e-3);
        cg_tensor_free(x);
    }
    free(a);
    free(b);
    free(lab);
}

/* ---- ownership and errors ---------------------------------------------------------------- */
/* ctx NULL: caller-owned results equal to the context ones; with an input
 * that requires a gradient, CG_ERR_STATE. */
static void test_loss_without_context(void **state) {
    cg_ctx *ctx = *state;
    for (int i = 0; i < NKINDS; i++)
        for (cg_reduction r = CG_MEAN; r <= CG_NONE; r++) {
            cg_tensor *x, *t;
            make_pair(kinds[i].k, 120 + (uint64_t)i, 3, 4, i % 2 == 1, &x, &t);
            cg_tensor *h = pair(NULL, kinds[i].k, kinds[i].p, x, t, r);
            double want[12];
            cg_copy_to_array(pair(ctx, kinds[i].k, kinds[i].p, x, t, r), CG_F64, want);
            assert_values(h, want, cg_numel(h), 0);
            cg_tensor_free(h);
            cg_tensor_free(x);
            cg_tensor_free(t);
        }
    cg_tensor *x = leaf(CG_F64, CG_SHAPE(3, 4), L12);
    cg_tensor *y = labels_of(ctx, 3, (int64_t[]){2, 0, 3});
    cg_tensor *d = cg_detach(ctx, x);
    cg_tensor *h = cg_cross_entropy(NULL, d, y, CG_NONE);
    double want[3];
    cg_copy_to_array(cg_cross_entropy(ctx, d, y, CG_NONE), CG_F64, want);
    assert_values(h, want, 3, 0);
    cg_tensor_free(h);
    assert_null(cg_cross_entropy(NULL, x, y, CG_MEAN));
    assert_error(CG_ERR_STATE, "cg_cross_entropy: an input requires a gradient");
    assert_null(cg_mse_loss(NULL, x, d, CG_MEAN));
    assert_error(CG_ERR_STATE, "cg_mse_loss: an input requires a gradient");
    cg_tensor_free(x);
}

/* Class-index losses: labels, shapes, dtypes, options, NULL. */
static void test_loss_errors_class_labels(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F32, CG_SHAPE(4, 10));
    cg_tensor *y = labels_of(ctx, 4, (int64_t[]){1, 10, 2, 3});
    assert_null(cg_cross_entropy(ctx, x, y, CG_MEAN));
    assert_error(CG_ERR_INDEX,
                 "cg_cross_entropy: label 10 (row 1) out of range for 10 classes");
    cg_tensor *neg = labels_of(ctx, 4, (int64_t[]){1, 2, -1, 3});
    assert_null(cg_cross_entropy_ex(ctx, x, neg, CG_SUM, 0, -100));
    assert_error(CG_ERR_INDEX, "cg_cross_entropy_ex: label -1 (row 2) out of range");
    cg_tensor *m100 = labels_of(ctx, 4, (int64_t[]){-100, 2, 1, 3});
    assert_null(cg_cross_entropy_ex(ctx, x, m100, CG_SUM, 0, CG_IGNORE_NONE));
    assert_error(CG_ERR_INDEX, "cg_cross_entropy_ex: label -100 (row 0) out of range");
    assert_null(cg_nll_loss(ctx, x, y, CG_MEAN));
    assert_error(CG_ERR_INDEX, "cg_nll_loss: label 10 (row 1) out of range for 10 classes");
    assert_null(
        cg_cross_entropy(ctx, x, labels_of(ctx, 5, (int64_t[]){0, 0, 0, 0, 0}), CG_MEAN));
    assert_error(CG_ERR_SHAPE, "cg_cross_entropy: logits [4,10] and labels [5]: labels must "
                               "have shape [4]");
    assert_null(cg_cross_entropy(ctx, x, cg_zeros(ctx, CG_I64, CG_SHAPE(4, 1)), CG_MEAN));
    assert_error(CG_ERR_SHAPE, "logits [4,10] and labels [4,1]");
    assert_null(cg_cross_entropy(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(10)), y, CG_MEAN));
    assert_error(CG_ERR_SHAPE, "cg_cross_entropy: logits [10] and labels [4]: labels must have "
                               "shape []");
    assert_null(cg_nll_loss(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3, 4)), y, CG_MEAN));
    assert_error(CG_ERR_SHAPE, "cg_nll_loss: log_probs [2,3,4]: needs [N, C] or [C]");
    assert_null(cg_cross_entropy(ctx, x, cg_zeros(ctx, CG_F32, CG_SHAPE(4)), CG_MEAN));
    assert_error(CG_ERR_DTYPE,
                 "cg_cross_entropy: labels [4]: needs i64 class indices, got f32");
    assert_null(cg_cross_entropy(ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(4, 10)), y, CG_MEAN));
    assert_error(CG_ERR_DTYPE, "cg_cross_entropy: logits [4,10]: needs f32 or f64, got i64");
    const double bad[] = {-0.1, 1.5, NAN};
    for (int i = 0; i < 3; i++) {
        assert_null(cg_cross_entropy_ex(ctx, x, neg, CG_MEAN, bad[i], 2));
        assert_error(CG_ERR_ARG, "cg_cross_entropy_ex: label_smoothing ");
    }
    assert_null(cg_cross_entropy(ctx, x, y, (cg_reduction)7));
    assert_error(CG_ERR_ARG, "cg_cross_entropy: reduction 7 is not CG_MEAN, CG_SUM or CG_NONE");
    assert_null(cg_cross_entropy(ctx, NULL, y, CG_MEAN));
    assert_error(CG_ERR_ARG, "cg_cross_entropy: tensor is NULL");
    assert_null(cg_nll_loss(ctx, x, NULL, CG_MEAN));
    assert_error(CG_ERR_ARG, "cg_nll_loss: tensor is NULL");
}

/* Input and target losses: shapes, dtypes, parameters, ranges, NULL. */
static void test_loss_errors_elementwise(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F32, CG_SHAPE(4, 10));
    cg_tensor *a = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3)),
              *b = cg_zeros(ctx, CG_F32, CG_SHAPE(3, 2));
    assert_null(cg_mse_loss(ctx, a, b, CG_MEAN));
    assert_error(CG_ERR_SHAPE, "cg_mse_loss: input [2,3] and target [3,2]: shapes differ");
    assert_null(cg_l1_loss(ctx, a, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3)), CG_MEAN));
    assert_error(CG_ERR_DTYPE, "cg_l1_loss: f32 input and f64 target: dtypes differ");
    assert_null(cg_huber_loss(ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(2, 3)), a, 1, CG_MEAN));
    assert_error(CG_ERR_DTYPE, "cg_huber_loss: input [2,3]: needs f32 or f64, got i64");
    assert_null(cg_smooth_l1_loss(ctx, a, a, -1, CG_MEAN));
    assert_error(CG_ERR_ARG, "cg_smooth_l1_loss: beta -1: must be >= 0");
    assert_null(cg_huber_loss(ctx, a, a, 0, CG_MEAN));
    assert_error(CG_ERR_ARG, "cg_huber_loss: delta 0: must be > 0");
    cg_tensor *p = cg_full(ctx, CG_F32, CG_SHAPE(2, 3), 1.5);
    assert_null(cg_bce_loss(ctx, p, a, CG_MEAN));
    assert_error(CG_ERR_ARG, "cg_bce_loss: input [2,3]: probabilities must be in [0, 1]");
    assert_null(cg_bce_loss(NULL, p, a, CG_MEAN));
    assert_error(CG_ERR_ARG, "cg_bce_loss: input [2,3]: probabilities must be in [0, 1]");
    assert_null(cg_bce_with_logits(ctx, a, a, (cg_reduction)-1));
    assert_error(CG_ERR_ARG, "cg_bce_with_logits: reduction -1");
    assert_null(cg_cross_entropy_probs(ctx, x, b, CG_MEAN));
    assert_error(CG_ERR_SHAPE, "cg_cross_entropy_probs: logits [4,10] and probs [3,2]");
    cg_tensor *r3 = cg_zeros(ctx, CG_F32, CG_SHAPE(1, 2, 3));
    assert_null(cg_cross_entropy_probs(ctx, r3, r3, CG_MEAN));
    assert_error(CG_ERR_SHAPE, "cg_cross_entropy_probs: logits [1,2,3]: needs [N, C] or [C]");
    for (int i = 0; i < NKINDS; i++) {
        assert_null(pair(ctx, kinds[i].k, 1, NULL, a, CG_MEAN));
        assert_error(CG_ERR_ARG, "tensor is NULL");
        assert_null(pair(NULL, kinds[i].k, 1, a, NULL, CG_MEAN));
        assert_error(CG_ERR_ARG, "tensor is NULL");
    }
}

#define T(name) cmocka_unit_test_setup_teardown(name, ctx_setup, ctx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_loss_elementwise_values_by_hand),
        T(test_loss_cross_entropy_values_by_hand),
        T(test_loss_cross_entropy_label_smoothing),
        T(test_loss_cross_entropy_ignore_index),
        T(test_loss_cross_entropy_probs_values),
        T(test_loss_nll_values),
        T(test_loss_empty_batch),
        T(test_loss_backward_by_hand),
        T(test_loss_gradcheck_elementwise),
        T(test_loss_gradcheck_noncontiguous),
        T(test_loss_gradcheck_cross_entropy),
        T(test_loss_gradgradcheck),
        T(test_loss_fused_and_graph_backward_agree),
        T(test_loss_stable_for_huge_logits),
        T(test_loss_f32_matches_f64),
        T(test_loss_parallel_rows_match_composition),
        T(test_loss_without_context),
        T(test_loss_errors_class_labels),
        T(test_loss_errors_elementwise),
    };
    return cmocka_run_group_tests_name("loss", tests, NULL, NULL);
}
