/* Tests for nn/sched.c (learning-rate schedules against PyTorch's formulas
 * and a few hand-computed values); clipping is in test_clip.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "testutil.h"

static const double PI = 3.14159265358979323846;

/* Each schedule test gets an SGD optimizer (lr 1) over a module without
 * parameters: schedules only read and write the lr. */
typedef struct fixture {
    cg_module *m;
    cg_optim *o;
} fixture;

static int opt_setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    cg_sgd_opts so = cg_sgd_defaults(1.0);
    if (f) f->m = cg_nn_activation(CG_ACT_NONE);
    if (f && f->m) f->o = cg_sgd_new(f->m, &so);
    *state = f;
    return f && f->o ? 0 : -1;
}

static int opt_teardown(void **state) {
    fixture *f = *state;
    cg_optim_free(f->o);
    cg_module_free(f->m);
    free(f);
    return 0;
}

/* The optimizer of the fixture, its lr set to lr. */
static cg_optim *opt(void **state, double lr) {
    cg_optim *o = ((fixture *)*state)->o;
    cg_optim_set_lr(o, lr);
    return o;
}

static void assert_rel(double got, double want, double rel) {
    if (fabs(got - want) > rel * fabs(want) + 1e-300)
        fail_msg("got %.17g, want %.17g", got, want);
}

/* want[0] is the lr right after construction, want[e] after e steps; the
 * optimizer's lr must follow. */
static void expect_lrs(cg_sched *s, cg_optim *o, int n, const double *want) {
    assert_non_null(s);
    assert_rel(cg_sched_lr(s), want[0], 1e-15);
    assert_rel(cg_optim_lr(o), want[0], 1e-15);
    for (int e = 1; e < n; e++) {
        assert_int_equal(cg_sched_step(s), CG_OK);
        assert_rel(cg_sched_lr(s), want[e], 1e-14);
        assert_rel(cg_optim_lr(o), want[e], 1e-14);
    }
}

static void expect_refused(cg_sched *s, const char *fn) {
    assert_null(s);
    assert_int_equal(cg_last_status(), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), fn));
}

/* ---- closed-form schedules ---------------------------------------------------- */
static void test_sched_steplr_known_values(void **state) {
    cg_optim *o = opt(state, 1.0);
    const double want[] = {1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001};
    cg_sched *s = cg_steplr_new(o, 3, 0.1);
    expect_lrs(s, o, 10, want);
    cg_sched_free(s);
    s = cg_steplr_new(o, 3, 0.1); /* a new schedule starts from the current lr */
    assert_rel(cg_sched_lr(s), 0.001, 1e-15);
    cg_sched_free(s);
}

static void test_sched_steplr_formula(void **state) {
    cg_optim *o = opt(state, 0.5);
    double want[20];
    for (int e = 0; e < 20; e++) want[e] = 0.5 * pow(0.7, e / 4);
    cg_sched *s = cg_steplr_new(o, 4, 0.7);
    expect_lrs(s, o, 20, want);
    cg_sched_free(s);
}

/* lr0 gamma^(number of milestones <= e), in any order, repeats counting
 * twice (PyTorch keeps a Counter). */
static void test_sched_multisteplr(void **state) {
    cg_optim *o = opt(state, 1.0);
    const double want[] = {1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01};
    cg_sched *s = cg_multisteplr_new(o, 2, (const int[]){7, 3}, 0.1);
    expect_lrs(s, o, 10, want);
    cg_sched_free(s);
    opt(state, 2.0);
    s = cg_multisteplr_new(o, 3, (const int[]){2, 4, 4}, 0.5);
    const double rep[] = {2, 2, 1, 1, 0.25, 0.25, 0.25};
    expect_lrs(s, o, 7, rep);
    cg_sched_free(s);
    s = cg_multisteplr_new(o, 0, NULL, 0.5); /* no milestones: constant */
    const double flat[] = {0.25, 0.25, 0.25};
    expect_lrs(s, o, 3, flat);
    cg_sched_free(s);
}

static void test_sched_exponentiallr(void **state) {
    cg_optim *o = opt(state, 0.3);
    double want[15];
    for (int e = 0; e < 15; e++) want[e] = 0.3 * pow(0.9, e);
    cg_sched *s = cg_exponentiallr_new(o, 0.9);
    expect_lrs(s, o, 15, want);
    cg_sched_free(s);
}

/* eta_min + (lr0 - eta_min) (1 + cos(pi e / T_max)) / 2, which rises again
 * after T_max as PyTorch's recursion does. */
static void test_sched_cosine(void **state) {
    cg_optim *o = opt(state, 1.0);
    cg_sched *s = cg_cosinelr_new(o, 10, 0);
    for (int e = 1; e <= 5; e++) cg_sched_step(s);
    assert_rel(cg_sched_lr(s), 0.5, 1e-15); /* halfway: half the lr */
    for (int e = 6; e <= 10; e++) cg_sched_step(s);
    assert_true(fabs(cg_sched_lr(s)) < 1e-16); /* T_max: eta_min */
    cg_sched_free(s);

    opt(state, 0.8);
    double want[20];
    for (int e = 0; e < 20; e++) want[e] = 0.05 + (0.8 - 0.05) * (1 + cos(PI * e / 7)) / 2;
    s = cg_cosinelr_new(o, 7, 0.05);
    expect_lrs(s, o, 20, want);
    assert_rel(want[7], 0.05, 1e-15);
    cg_sched_free(s);
}

/* LinearLR: lr0 (start + (1 - start) min(e, total) / total); the lr is set
 * to start lr0 when the schedule is made. */
static void test_sched_warmup(void **state) {
    cg_optim *o = opt(state, 1.0);
    const double want[] = {0.25, 0.4375, 0.625, 0.8125, 1, 1, 1};
    cg_sched *s = cg_warmuplr_new(o, 0.25, 4);
    expect_lrs(s, o, 7, want);
    cg_sched_free(s);

    opt(state, 0.1);
    double f[15];
    for (int e = 0; e < 15; e++)
        f[e] = 0.1 * (1.0 / 3 + (1 - 1.0 / 3) * (e < 10 ? e : 10) / 10);
    s = cg_warmuplr_new(o, 1.0 / 3, 10);
    expect_lrs(s, o, 15, f);
    cg_sched_free(s);
}

/* PyTorch's two-phase cosine OneCycleLR written out: warm-up to step
 * pct total - 1, anneal to total - 1; step total is the last one allowed. */
static double onecycle_ref(double max_lr, int total, double pct, double div, double fdiv,
                           int e) {
    double initial = max_lr / div, min_lr = initial / fdiv, up = pct * total - 1;
    if (e <= up) return max_lr + (initial - max_lr) / 2 * (cos(PI * e / up) + 1);
    double t = (e - up) / (total - 1 - up);
    return min_lr + (max_lr - min_lr) / 2 * (cos(PI * t) + 1);
}

static void test_sched_onecycle(void **state) {
    cg_optim *o = opt(state, 123.0); /* ignored: the cycle starts at max_lr / div */
    cg_sched *s = cg_onecyclelr_new(o, &(cg_onecycle_opts){1.0, 10, 0.3, 25, 1e4});
    assert_non_null(s);
    assert_rel(cg_optim_lr(o), 0.04, 1e-15);
    assert_int_equal(cg_sched_step(s), CG_OK);
    assert_rel(cg_sched_lr(s), 0.52, 1e-15); /* halfway up: 1 - 0.96 / 2 */
    assert_int_equal(cg_sched_step(s), CG_OK);
    assert_rel(cg_sched_lr(s), 1.0, 1e-15); /* the peak at step 0.3 * 10 - 1 */
    for (int e = 3; e <= 9; e++) cg_sched_step(s);
    assert_rel(cg_sched_lr(s), 4e-6, 1e-12); /* the end: 0.04 / 1e4 */
    cg_sched_free(s);

    double want[17];
    for (int e = 0; e <= 16; e++) want[e] = onecycle_ref(0.5, 16, 0.25, 10, 100, e);
    s = cg_onecyclelr_new(o, &(cg_onecycle_opts){0.5, 16, 0.25, 10, 100});
    expect_lrs(s, o, 17, want);
    double last = cg_sched_lr(s);
    cg_clear_error();
    assert_int_equal(cg_sched_step(s), CG_ERR_STATE); /* past total_steps: refused */
    assert_non_null(strstr(cg_last_error(), "cg_sched_step: OneCycleLR"));
    assert_true(cg_sched_lr(s) == last && cg_optim_lr(o) == last);
    cg_sched_free(s);
}

/* ---- ReduceLROnPlateau ----------------------------------------------------------- */
/* factor 0.5, patience 2, threshold 0.1 (better: below 0.9 best), min_lr 0.1. */
static void test_sched_plateau(void **state) {
    cg_optim *o = opt(state, 1.0);
    cg_sched *s = cg_plateau_new(o, &(cg_plateau_opts){0.5, 2, 0.1, 0.1});
    assert_non_null(s);
    assert_true(cg_sched_lr(s) == 1.0 && cg_optim_lr(o) == 1.0);
    const double metric[] = {10, 9.5, 9.2, 8, 8, 8, 8, 8, 8, 7.1, 7,
                             7,  7,   7,   7, 7, 7, 7, 7, 7, 7};
    const double want[] = {1,   1,    1,    1,    1,     1,     0.5,   0.5, 0.5, 0.5, 0.5,
                           0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.1, 0.1, 0.1};
    /* 10 best; 9.5, 9.2 bad (not below 9); 8 better, which resets patience;
     * the third bad epoch after it halves the lr; 7.1 better (below 7.2);
     * then every third bad epoch halves it, down to min_lr and no lower. */
    for (int e = 0; e < 21; e++) {
        assert_int_equal(cg_sched_step_metric(s, metric[e]), CG_OK);
        assert_rel(cg_sched_lr(s), want[e], 1e-15);
        assert_rel(cg_optim_lr(o), want[e], 1e-15);
    }
    for (int e = 0; e < 9; e++) cg_sched_step_metric(s, 7);
    assert_true(cg_optim_lr(o) == 0.1); /* never below min_lr */
    cg_sched_free(s);
}

/* Plateau needs a metric; the others ignore one. */
static void test_sched_metric_rules(void **state) {
    cg_optim *o = opt(state, 1.0);
    cg_sched *s = cg_plateau_new(o, &(cg_plateau_opts){0.5, 0, 0, 0});
    cg_clear_error();
    assert_int_equal(cg_sched_step(s), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "cg_sched_step_metric"));
    assert_true(cg_sched_lr(s) == 1.0 && cg_optim_lr(o) == 1.0);
    assert_int_equal(cg_sched_step_metric(s, 1), CG_OK); /* the first metric is the best */
    assert_true(cg_sched_lr(s) == 1.0);
    assert_int_equal(cg_sched_step_metric(s, 1), CG_OK); /* patience 0: one bad epoch */
    assert_true(cg_sched_lr(s) == 0.5);
    cg_sched_free(s);
    s = cg_steplr_new(o, 1, 0.5);
    assert_int_equal(cg_sched_step_metric(s, 123), CG_OK);
    assert_true(cg_sched_lr(s) == 0.25);
    cg_sched_free(s);
}

static void test_sched_bad_args(void **state) {
    cg_optim *o = opt(state, 1.0);
    expect_refused(cg_steplr_new(NULL, 3, 0.1), "cg_steplr_new");
    expect_refused(cg_steplr_new(o, 0, 0.1), "cg_steplr_new");
    expect_refused(cg_steplr_new(o, 3, -0.1), "cg_steplr_new");
    expect_refused(cg_multisteplr_new(o, 2, NULL, 0.1), "cg_multisteplr_new");
    expect_refused(cg_multisteplr_new(o, -1, NULL, 0.1), "cg_multisteplr_new");
    expect_refused(cg_exponentiallr_new(o, NAN), "cg_exponentiallr_new");
    expect_refused(cg_cosinelr_new(o, 0, 0), "cg_cosinelr_new");
    expect_refused(cg_cosinelr_new(o, 10, -1), "cg_cosinelr_new");
    expect_refused(cg_warmuplr_new(o, 0, 5), "cg_warmuplr_new");
    expect_refused(cg_warmuplr_new(o, 1.5, 5), "cg_warmuplr_new");
    expect_refused(cg_warmuplr_new(o, 0.5, 0), "cg_warmuplr_new");
    expect_refused(cg_onecyclelr_new(o, NULL), "cg_onecycle_defaults");
    cg_onecycle_opts oc = cg_onecycle_defaults(2.0, 100); /* PyTorch's defaults */
    assert_true(oc.max_lr == 2.0 && oc.total_steps == 100 && oc.pct_start == 0.3 &&
                oc.div_factor == 25 && oc.final_div_factor == 1e4);
    cg_plateau_opts pd = cg_plateau_defaults();
    assert_true(pd.factor == 0.1 && pd.patience == 10 && pd.threshold == 1e-4 &&
                pd.min_lr == 0);
    cg_sched *dflt = cg_plateau_new(o, NULL);
    assert_non_null(dflt);
    cg_sched_free(dflt);
    expect_refused(cg_onecyclelr_new(o, &(cg_onecycle_opts){1, 0, 0.3, 25, 1e4}),
                   "cg_onecyclelr_new");
    expect_refused(cg_onecyclelr_new(o, &(cg_onecycle_opts){1, 10, 1.5, 25, 1e4}),
                   "cg_onecyclelr_new");
    expect_refused(cg_onecyclelr_new(o, &(cg_onecycle_opts){1, 10, 0.3, 0, 1e4}),
                   "cg_onecyclelr_new");
    expect_refused(cg_onecyclelr_new(o, &(cg_onecycle_opts){-1, 10, 0.3, 25, 1e4}),
                   "cg_onecyclelr_new");
    expect_refused(cg_plateau_new(o, &(cg_plateau_opts){1.0, 2, 1e-4, 0}), "cg_plateau_new");
    expect_refused(cg_plateau_new(o, &(cg_plateau_opts){0.1, -1, 1e-4, 0}), "cg_plateau_new");
    expect_refused(cg_plateau_new(o, &(cg_plateau_opts){0.1, 2, -1, 0}), "cg_plateau_new");
    expect_refused(cg_plateau_new(o, &(cg_plateau_opts){0.1, 2, 1e-4, -1}), "cg_plateau_new");
    assert_true(cg_optim_lr(o) == 1.0); /* refused schedules leave the lr alone */
    assert_int_equal(cg_sched_step(NULL), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "cg_sched_step: schedule is NULL"));
    assert_int_equal(cg_sched_step_metric(NULL, 1), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "cg_sched_step_metric"));
    assert_true(isnan(cg_sched_lr(NULL)));
    assert_non_null(strstr(cg_last_error(), "cg_sched_lr"));
    cg_sched_free(NULL);
}

/* A schedule drives the lr an optimizer steps with. */
static void test_sched_drives_optimizer(void **state) {
    (void)state;
    cg_rng rng;
    cg_rng_seed(&rng, 1);
    cg_module *m = cg_nn_linear(&rng, CG_F64, 1, 1, false);
    cg_sgd_opts so = cg_sgd_defaults(1.0);
    cg_optim *o = cg_sgd_new(m, &so);
    cg_sched *s = cg_steplr_new(o, 1, 0.5);
    double *p = cg_data(cg_module_flat_params(m));
    p[0] = 0;
    for (int e = 0; e < 4; e++) {
        /* a new gradient each step: a step skips a parameter without one */
        assert_int_equal(cg_fill_(cg_grad_of(cg_module_param(m, 0, NULL)), 1), CG_OK);
        assert_int_equal(cg_optim_step(o), CG_OK);
        assert_int_equal(cg_sched_step(s), CG_OK);
    }
    assert_true(p[0] == -(1 + 0.5 + 0.25 + 0.125));
    cg_sched_free(s);
    cg_optim_free(o);
    cg_module_free(m);
}

/* An lr that overflows is refused, not written. */
static void test_sched_overflow_refused(void **state) {
    cg_optim *o = opt(state, 1.0);
    cg_sched *s = cg_exponentiallr_new(o, 1e300);
    assert_int_equal(cg_sched_step(s), CG_OK);
    assert_int_equal(cg_sched_step(s), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "cg_sched_step: exponentiallr's lr of group 0"));
    assert_true(cg_sched_lr(s) == 1e300 && cg_optim_lr(o) == 1e300);
    cg_sched_free(s);
}

/* Two parameter groups (lr 1 and 0.1): every schedule keeps one base per
 * group; plateau scales each group and floors each at min_lr. */
static void test_sched_two_groups(void **state) {
    (void)state;
    cg_tensor *a = cg_zeros(NULL, CG_F64, CG_SHAPE(2)),
              *b = cg_zeros(NULL, CG_F64, CG_SHAPE(3));
    assert_int_equal(cg_set_requires_grad(a, true), CG_OK);
    assert_int_equal(cg_set_requires_grad(b, true), CG_OK);
    cg_sgd_opts slow = cg_sgd_defaults(0.1);
    cg_param_group groups[] = {{1, &a, NULL}, {1, &b, &slow}};
    cg_sgd_opts fast = cg_sgd_defaults(1.0);
    cg_optim *o = cg_sgd_new_groups(2, groups, &fast);
    assert_non_null(o);
    cg_sched *warm = cg_warmuplr_new(o, 0.5, 2);
    cg_sched *cos = cg_cosinelr_new(o, 4, 0);
    cg_sched *s = cg_sequentiallr_new(o, 2, (cg_sched *[]){warm, cos}, (const int[]){2});
    assert_non_null(s);
    for (int e = 0; e < 6; e++) {
        double g0 = cg_optim_group_lr(o, 0), g1 = cg_optim_group_lr(o, 1);
        assert_rel(g1, 0.1 * g0, 1e-12); /* one schedule, two bases */
        assert_rel(cg_sched_group_lr(s, 1), g1, 0);
        assert_int_equal(cg_sched_step(s), CG_OK);
    }
    cg_sched_free(s);
    cg_sched *p = cg_plateau_new(o, &(cg_plateau_opts){0.5, 0, 0, 0.04});
    assert_int_equal(cg_optim_set_group_lr(o, 0, 1.0), CG_OK);
    assert_int_equal(cg_optim_set_group_lr(o, 1, 0.1), CG_OK);
    for (int e = 0; e < 3; e++) assert_int_equal(cg_sched_step_metric(p, 1.0), CG_OK);
    assert_rel(cg_optim_group_lr(o, 0), 0.25, 0); /* the first sets best, two cuts */
    assert_rel(cg_optim_group_lr(o, 1), 0.04, 0); /* 0.05, then floored at min_lr */
    cg_sched_free(p);
    cg_optim_free(o);
    cg_tensor_free(a);
    cg_tensor_free(b);
}

/* ---- SequentialLR ------------------------------------------------------------------ */
/* torch 1.13, lr 0.1: SequentialLR(LinearLR(start_factor 0.1, total_iters 5),
 * CosineAnnealingLR(T_max 20), milestones [5]); SEQ_WANT[e] is the lr after e
 * steps. torch is not installed here, so this Python transcribes torch
 * 1.13's recursive get_lr (one group, lr0 is initial_lr) and SequentialLR's
 * flow (reset to initial_lr, the children's steps undone, the first child's
 * redone; at a milestone the next child's step(0), its closed form at 0):
 * import math
 * from bisect import bisect_right
 * class O: lr = 0.1
 * o = O(); lr0 = o.lr
 * class Linear:
 *     def __init__(s, f, T): s.f, s.T, s.last_epoch = f, T, 0; o.lr *= f
 *     def get_lr(s):
 *         if s.last_epoch == 0: return o.lr * s.f
 *         if s.last_epoch > s.T: return o.lr
 *         return o.lr * (1 + (1 - s.f) / (s.T * s.f + (s.last_epoch - 1) * (1 - s.f)))
 *     def closed(s): return lr0 * (s.f + (1 - s.f) * min(s.T, s.last_epoch) / s.T)
 * class Cos:  # eta_min 0; its construction leaves the lr (epoch 0)
 *     def __init__(s, T): s.T, s.last_epoch, s.step_count = T, 0, 1
 *     def get_lr(s):
 *         e, T = s.last_epoch, s.T
 *         if e == 0: return o.lr
 *         if s.step_count == 1 and e > 0: return lr0 * (1 + math.cos(e * math.pi / T)) / 2
 *         if (e - 1 - T) % (2 * T) == 0: return o.lr + lr0 * (1 - math.cos(math.pi / T)) / 2
 *         return (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * o.lr
 *     def closed(s): return lr0 * (1 + math.cos(math.pi * s.last_epoch / s.T)) / 2
 * def step(s, epoch=None):
 *     s.step_count = getattr(s, 'step_count', 0) + 1
 *     if epoch is None: s.last_epoch += 1; o.lr = s.get_lr()
 *     else: s.last_epoch = epoch; o.lr = s.closed()
 * a = Linear(0.1, 5); b = Cos(20)
 * o.lr = lr0; a.last_epoch -= 1; b.last_epoch -= 1; step(a)  # SequentialLR.__init__
 * out, ms = [o.lr], [5]
 * for e in range(1, 31):
 *     i = bisect_right(ms, e); c = [a, b][i]
 *     step(c, 0) if i > 0 and ms[i - 1] == e else step(c)
 *     out.append(o.lr)
 * print(",\n".join(", ".join(repr(v) for v in out[k:k + 4]) for k in range(0, len(out), 4)))
 */
static const double SEQ_WANT[31] = {0.010000000000000002,
                                    0.028000000000000004,
                                    0.046000000000000006,
                                    0.064,
                                    0.082,
                                    0.1,
                                    0.0993844170297569,
                                    0.09755282581475769,
                                    0.0945503262094184,
                                    0.0904508497187474,
                                    0.08535533905932739,
                                    0.07938926261462367,
                                    0.07269952498697735,
                                    0.06545084971874739,
                                    0.05782172325201156,
                                    0.05000000000000001,
                                    0.04217827674798848,
                                    0.03454915028125264,
                                    0.027300475013022667,
                                    0.020610737385376353,
                                    0.014644660940672629,
                                    0.009549150281252633,
                                    0.005449673790581611,
                                    0.0024471741852423235,
                                    0.0006155829702431171,
                                    0.0,
                                    0.0006155829702431115,
                                    0.0024471741852423123,
                                    0.005449673790581605,
                                    0.009549150281252621,
                                    0.014644660940672615};

static cg_sched *warmup_cosine(cg_optim *o) {
    cg_sched *kids[2] = {cg_warmuplr_new(o, 0.1, 5), cg_cosinelr_new(o, 20, 0)};
    return cg_sequentiallr_new(o, 2, kids, (const int[]){5});
}

static void test_sched_sequential_warmup_cosine(void **state) {
    cg_optim *o = opt(state, 0.1);
    cg_sched *s = warmup_cosine(o);
    assert_non_null(s);
    for (int e = 0; e <= 30; e++) {
        if (e) assert_int_equal(cg_sched_step(s), CG_OK);
        assert_rel(cg_sched_lr(s), SEQ_WANT[e], 1e-12);
        assert_true(cg_optim_lr(o) == cg_sched_lr(s));
    }
    cg_sched_free(s);
}

/* Three children; the third restarts at its own epoch 0 from the shared base
 * (PyTorch's step(0)), and a failing child leaves everything as it was. */
static void test_sched_sequential_three(void **state) {
    cg_optim *o = opt(state, 1.0);
    cg_sched *kids[3] = {cg_steplr_new(o, 1, 0.5), cg_exponentiallr_new(o, 0.9),
                         cg_onecyclelr_new(o, &(cg_onecycle_opts){2.0, 4, 0.5, 4, 10})};
    cg_sched *s = cg_sequentiallr_new(o, 3, kids, (const int[]){2, 4});
    assert_non_null(s);
    /* StepLR 1, 0.5; ExponentialLR from 1 at e = 2: 1, 0.9; OneCycle from
     * e = 4: 0.5 (2 / 4), its peak 2, halfway down 1.025, its end 0.05
     * (0.5 / 10), and its last allowed step (total_steps) past the end. */
    const double want[] = {1, 0.5, 1, 0.9, 0.5, 2, 1.025, 0.05, 1.025};
    expect_lrs(s, o, 9, want);
    double last = cg_sched_lr(s);
    assert_int_equal(cg_sched_step(s), CG_ERR_STATE); /* OneCycle past its end */
    assert_non_null(strstr(cg_last_error(), "cg_sched_step: OneCycleLR"));
    assert_true(cg_sched_lr(s) == last && cg_optim_lr(o) == last);
    cg_sched_free(s);
    /* One child: the schedule itself, from its start again. */
    kids[0] = cg_steplr_new(opt(state, 0.05), 2, 0.1);
    s = cg_sequentiallr_new(o, 1, kids, NULL);
    const double one[] = {0.05, 0.05, 0.005};
    expect_lrs(s, o, 3, one);
    cg_sched_free(s);
}

static void expect_seq_refused(int n, cg_sched **kids, const int *ms, cg_optim *o,
                               const char *why) {
    cg_clear_error();
    assert_null(cg_sequentiallr_new(o, n, kids, ms)); /* frees kids: ASan checks */
    assert_int_equal(cg_last_status(), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "cg_sequentiallr_new"));
    if (!strstr(cg_last_error(), why)) fail_msg("'%s' lacks '%s'", cg_last_error(), why);
}

static void test_sched_sequential_bad_args(void **state) {
    cg_optim *o = opt(state, 1.0);
    cg_sgd_opts so = cg_sgd_defaults(1.0);
    cg_module *m = cg_nn_activation(CG_ACT_NONE);
    cg_optim *other = cg_sgd_new(m, &so);
    cg_sched *k[2];
    k[0] = cg_steplr_new(o, 1, 0.5), k[1] = cg_steplr_new(o, 1, 0.5);
    expect_seq_refused(2, k, (const int[]){0}, o, "milestones must be >= 1");
    k[0] = cg_steplr_new(o, 1, 0.5), k[1] = cg_steplr_new(o, 1, 0.5);
    expect_seq_refused(3, (cg_sched *[]){k[0], k[1], cg_steplr_new(o, 1, 0.5)},
                       (const int[]){3, 3}, o, "milestones[1] is 3");
    k[0] = cg_steplr_new(o, 1, 0.5), k[1] = cg_steplr_new(o, 1, 0.5);
    expect_seq_refused(2, k, NULL, o, "milestones is NULL");
    k[0] = cg_steplr_new(o, 1, 0.5), k[1] = NULL;
    expect_seq_refused(2, k, (const int[]){2}, o, "schedule 1 is NULL");
    k[0] = cg_steplr_new(o, 1, 0.5), k[1] = cg_steplr_new(other, 1, 0.5);
    expect_seq_refused(2, k, (const int[]){2}, o, "schedule 1 is on another optimizer");
    k[0] = cg_plateau_new(o, &(cg_plateau_opts){0.5, 1, 0, 0}), k[1] = cg_steplr_new(o, 1, 0.5);
    expect_seq_refused(2, k, (const int[]){2}, o, "ReduceLROnPlateau");
    k[0] = cg_steplr_new(o, 1, 0.5), k[1] = k[0];
    expect_seq_refused(2, k, (const int[]){2}, o, "schedule 1 appears twice");
    k[0] = cg_steplr_new(o, 1, 0.5);
    expect_seq_refused(1, k, NULL, NULL, "optimizer is NULL");
    k[0] = cg_steplr_new(o, 1, 0.5);
    expect_seq_refused(0, k, NULL, o, "need n >= 1");
    cg_sched_free(k[0]); /* n 0: nothing taken */
    expect_seq_refused(1, NULL, NULL, o, "schedules is NULL");
    k[0] = warmup_cosine(o);
    expect_seq_refused(1, k, NULL, o, "SequentialLR");
    cg_optim_free(other);
    cg_module_free(m);
}

/* ---- ChainedScheduler and MultiplicativeLR ------------------------------------------ */
/* torch 1.13's ChainedScheduler: CHAIN1_WANT for LinearLR(0.5, 4) and
 * ExponentialLR(0.9) on lr 1, CHAIN2_WANT for CosineAnnealingLR(3, 0.1),
 * StepLR(2, 0.5) and MultiStepLR([3, 3, 5], 0.7) on lr 0.8; [e] after e
 * steps. torch's get_lr of each class (one group), transcribed:
 * import math
 * from collections import Counter
 * class O: lr = 1.0
 * o = O()
 * class S:  # torch 1.13's get_lr for one group; the constructor's step at epoch 0
 *     def __init__(s, **kw):
 *         s.__dict__.update(kw); s.e = 0; s.base = o.lr; o.lr = s.get_lr()
 *     def step(s): s.e += 1; o.lr = s.get_lr()
 * class Step(S):
 *     def get_lr(s): return o.lr if s.e == 0 or s.e % s.size else o.lr * s.gamma
 * class Exp(S):
 *     def get_lr(s): return o.lr if s.e == 0 else o.lr * s.gamma
 * class MultiStep(S):
 *     def get_lr(s): return o.lr * s.gamma ** Counter(s.ms)[s.e]
 * class Linear(S):
 *     def get_lr(s):
 *         f, T, e = s.f, s.T, s.e
 *         if e == 0: return o.lr * f
 *         if e > T: return o.lr
 *         return o.lr * (1 + (1 - f) / (T * f + (e - 1) * (1 - f)))
 * class Cos(S):
 *     def get_lr(s):
 *         e, T, m = s.e, s.T, s.eta
 *         if e == 0: return o.lr
 *         c = math.cos
 *         if (e - 1 - T) % (2 * T) == 0: return o.lr + (s.base - m) * (1 - c(math.pi / T)) / 2
 *         return (1 + c(math.pi * e / T)) / (1 + c(math.pi * (e - 1) / T)) * (o.lr - m) + m
 * def run(kids, n):
 *     out = [o.lr]
 *     for _ in range(n):
 *         for k in kids: k.step()   # ChainedScheduler.step
 *         out.append(o.lr)
 *     print(",\n".join(", ".join(map(repr, out[k:k + 4])) for k in range(0, len(out), 4)))
 * o.lr = 1.0; run([Linear(f=0.5, T=4), Exp(gamma=0.9)], 8)
 * o.lr = 0.8
 * run([Cos(T=3, eta=0.1), Step(size=2, gamma=0.5), MultiStep(ms=[3, 3, 5], gamma=0.7)], 12)
 */
static const double CHAIN1_WANT[9] = {0.5,
                                      0.5625,
                                      0.6074999999999999,
                                      0.637875,
                                      0.6560999999999999,
                                      0.59049,
                                      0.5314409999999999,
                                      0.47829689999999997,
                                      0.43046721};
static const double CHAIN2_WANT[13] = {0.8,
                                       0.625,
                                       0.13750000000000004,
                                       0.048999999999999995,
                                       0.11199999999999999,
                                       0.09519999999999998,
                                       0.04679999999999999,
                                       0.06009999999999998,
                                       0.04334999999999999,
                                       0.1,
                                       0.1375,
                                       0.2124999999999999,
                                       0.12499999999999999};

static void test_sched_chained(void **state) {
    cg_optim *o = opt(state, 1.0);
    cg_sched *k[3] = {cg_warmuplr_new(o, 0.5, 4), cg_exponentiallr_new(o, 0.9)};
    cg_sched *s = cg_chainedscheduler_new(2, k);
    assert_non_null(s);
    for (int e = 0; e <= 8; e++) {
        if (e) assert_int_equal(cg_sched_step(s), CG_OK);
        assert_rel(cg_sched_lr(s), CHAIN1_WANT[e], 1e-12);
        assert_true(cg_optim_lr(o) == cg_sched_lr(s));
    }
    cg_sched_free(s);
    opt(state, 0.8);
    k[0] = cg_cosinelr_new(o, 3, 0.1), k[1] = cg_steplr_new(o, 2, 0.5);
    k[2] = cg_multisteplr_new(o, 3, (const int[]){3, 3, 5}, 0.7);
    s = cg_chainedscheduler_new(3, k);
    for (int e = 0; e <= 12; e++) {
        if (e) assert_int_equal(cg_sched_step(s), CG_OK);
        assert_rel(cg_sched_lr(s), CHAIN2_WANT[e], 1e-12);
    }
    cg_sched_free(s);
}

/* A child that fails leaves every child and the lr as they were. */
static void test_sched_chained_failure(void **state) {
    cg_optim *o = opt(state, 1.0);
    cg_sched *k[2] = {cg_steplr_new(o, 1, 0.5),
                      cg_onecyclelr_new(o, &(cg_onecycle_opts){1, 2, 0.5, 4, 10})};
    cg_sched *s = cg_chainedscheduler_new(2, k);
    assert_int_equal(cg_sched_step(s), CG_OK);
    assert_int_equal(cg_sched_step(s), CG_OK);
    char *before = cgi_sched_meta(s);
    double lr = cg_optim_lr(o);
    assert_int_equal(cg_sched_step(s), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "cg_sched_step: OneCycleLR stepped 3 times"));
    char *after = cgi_sched_meta(s);
    assert_string_equal(after, before); /* StepLR did not step either */
    assert_true(cg_optim_lr(o) == lr && cg_sched_lr(s) == lr);
    free(before), free(after);
    cg_sched_free(s);
}

static void test_sched_chained_bad_args(void **state) {
    cg_optim *o = opt(state, 1.0);
    const char *fn = "cg_chainedscheduler_new";
    cg_sched *k[2] = {cg_steplr_new(o, 1, 0.5), NULL};
    expect_refused(cg_chainedscheduler_new(2, k), fn); /* frees k[0] */
    assert_non_null(strstr(cg_last_error(), "schedule 1 is NULL"));
    k[0] = cg_steplr_new(o, 1, 0.5), k[1] = cg_plateau_new(o, &(cg_plateau_opts){0.5, 1, 0, 0});
    expect_refused(cg_chainedscheduler_new(2, k), fn);
    assert_non_null(strstr(cg_last_error(), "schedule 1 is a ReduceLROnPlateau"));
    k[0] = cg_steplr_new(o, 1, 0.5), k[1] = k[0];
    expect_refused(cg_chainedscheduler_new(2, k), fn);
    assert_non_null(strstr(cg_last_error(), "appears twice"));
    expect_refused(cg_chainedscheduler_new(0, k), fn);
    expect_refused(cg_chainedscheduler_new(1, NULL), fn);
    k[0] = cg_chainedscheduler_new(1, (cg_sched *[]){cg_steplr_new(o, 1, 0.5)});
    assert_non_null(k[0]);
    k[1] = cg_exponentiallr_new(o, 0.5);
    expect_refused(cg_sequentiallr_new(o, 2, k, (const int[]){2}), "cg_sequentiallr_new");
    assert_non_null(strstr(cg_last_error(), "schedule 0 is a"));
}

/* lr * factor(e) from the lr it finds, so a hand-set lr carries on. */
static double ninety_pct(int64_t e, void *user) {
    (void)user;
    return e == 7 ? -1 : 0.9;
}

static void test_sched_multiplicativelr(void **state) {
    cg_optim *o = opt(state, 2.0);
    cg_sched *s = cg_multiplicativelr_new(o, ninety_pct, NULL);
    const double want[] = {2, 1.8, 1.62, 1.458};
    expect_lrs(s, o, 4, want);
    cg_optim_set_lr(o, 1.0);
    assert_int_equal(cg_sched_step(s), CG_OK);
    assert_rel(cg_optim_lr(o), 0.9, 1e-15);
    assert_int_equal(cg_sched_step(s), CG_OK);
    assert_int_equal(cg_sched_step(s), CG_OK);
    assert_int_equal(cg_sched_step(s), CG_ERR_ARG); /* epoch 7: factor -1 */
    assert_non_null(strstr(cg_last_error(), "cg_sched_step: MultiplicativeLR's factor at "
                                            "epoch 7"));
    assert_rel(cg_optim_lr(o), 0.729, 1e-15);
    cg_sched_free(s);
    expect_refused(cg_multiplicativelr_new(o, NULL, NULL), "cg_multiplicativelr_new");
}

/* ---- LambdaLR ---------------------------------------------------------------------- */
/* 1 / (e + 1), NaN from epoch *user on. */
static double inverse(int64_t e, void *user) {
    return e >= *(int64_t *)user ? NAN : 1.0 / (double)(e + 1);
}

static void test_sched_lambdalr(void **state) {
    cg_optim *o = opt(state, 0.6);
    int64_t bad_from = 4;
    cg_sched *s = cg_lambdalr_new(o, inverse, &bad_from);
    const double want[] = {0.6, 0.3, 0.2, 0.15};
    expect_lrs(s, o, 4, want);
    assert_int_equal(cg_sched_step(s), CG_ERR_ARG); /* factor NaN at epoch 4 */
    assert_non_null(strstr(cg_last_error(), "cg_sched_step: LambdaLR's factor at epoch 4"));
    assert_true(cg_sched_lr(s) == 0.15 && cg_optim_lr(o) == 0.15);
    bad_from = 100; /* the epoch did not move: the next step is epoch 4 again */
    assert_int_equal(cg_sched_step(s), CG_OK);
    assert_rel(cg_sched_lr(s), 0.12, 1e-15);
    cg_sched_free(s);
    bad_from = 0;
    expect_refused(cg_lambdalr_new(o, inverse, &bad_from), "cg_lambdalr_new: LambdaLR");
    expect_refused(cg_lambdalr_new(o, NULL, NULL), "cg_lambdalr_new: factor is NULL");
    expect_refused(cg_lambdalr_new(NULL, inverse, &bad_from), "cg_lambdalr_new");
    assert_true(cg_optim_lr(o) == 0.12);
}

static void test_sched_group_lr(void **state) {
    cg_optim *o = opt(state, 0.25);
    cg_sched *s = cg_steplr_new(o, 1, 0.5);
    assert_true(cg_sched_group_lr(s, 0) == 0.25);
    const int bad[] = {-1, cg_optim_ngroups(o)};
    for (int i = 0; i < 2; i++) {
        cg_clear_error();
        assert_true(isnan(cg_sched_group_lr(s, bad[i])));
        assert_int_equal(cg_last_status(), CG_ERR_INDEX);
        assert_non_null(strstr(cg_last_error(), "cg_sched_group_lr: group"));
    }
    assert_true(isnan(cg_sched_group_lr(NULL, 0)));
    assert_int_equal(cg_last_status(), CG_ERR_ARG);
    cg_sched_free(s);
}

/* ---- state for checkpoints ------------------------------------------------------------ */
typedef cg_sched *(*maker)(cg_optim *o);
static int64_t never = INT64_MAX;
static cg_sched *mk_step(cg_optim *o) { return cg_steplr_new(o, 3, 0.5); }
static cg_sched *mk_multistep(cg_optim *o) {
    return cg_multisteplr_new(o, 2, (const int[]){2, 5}, 0.3);
}
static cg_sched *mk_exp(cg_optim *o) { return cg_exponentiallr_new(o, 0.9); }
static cg_sched *mk_cosine(cg_optim *o) { return cg_cosinelr_new(o, 7, 0.01); }
static cg_sched *mk_warmup(cg_optim *o) { return cg_warmuplr_new(o, 0.2, 4); }
static cg_sched *mk_onecycle(cg_optim *o) {
    return cg_onecyclelr_new(o, &(cg_onecycle_opts){1, 20, 0.3, 25, 1e4});
}
static cg_sched *mk_lambda(cg_optim *o) { return cg_lambdalr_new(o, inverse, &never); }
static cg_sched *mk_plateau(cg_optim *o) {
    return cg_plateau_new(o, &(cg_plateau_opts){0.5, 1, 0.01, 1e-3});
}
static double shrink(int64_t e, void *user) { return 1 - (double)e / *(double *)user; }
static double hundred = 100;
static cg_sched *mk_mult(cg_optim *o) { return cg_multiplicativelr_new(o, shrink, &hundred); }
static cg_sched *mk_chain(cg_optim *o) {
    cg_sched *k[3] = {cg_warmuplr_new(o, 0.3, 5), cg_cosinelr_new(o, 4, 0.01),
                      cg_multiplicativelr_new(o, shrink, &hundred)};
    return cg_chainedscheduler_new(3, k);
}
static const maker MAKERS[] = {mk_step,   mk_multistep, mk_exp,       mk_cosine,
                               mk_warmup, mk_onecycle,  mk_lambda,    mk_plateau,
                               mk_mult,   mk_chain,     warmup_cosine};
#define NMAKERS (int)(sizeof MAKERS / sizeof MAKERS[0])

/* Steps s (with a metric that improves, then stalls) and checks CG_OK. */
static void step_ok(cg_sched *s, int i) {
    assert_int_equal(cg_sched_step_metric(s, i < 3 ? 10.0 - i : 7.5), CG_OK);
}

/* mk's schedule stepped k times, saved, restored into a fresh one: the two
 * then step bit for bit alike. A validating restore changes nothing. */
static void roundtrip(maker mk, int k) {
    cg_module *m1 = cg_nn_activation(CG_ACT_NONE), *m2 = cg_nn_activation(CG_ACT_NONE);
    cg_sgd_opts so = cg_sgd_defaults(0.5);
    cg_optim *o1 = cg_sgd_new(m1, &so);
    so.lr = 7;
    cg_optim *o2 = cg_sgd_new(m2, &so);
    cg_sched *s1 = mk(o1), *s2 = mk(o2);
    assert_non_null(s1);
    assert_non_null(s2);
    for (int i = 0; i < k; i++) step_ok(s1, i);
    char *text = cgi_sched_meta(s1), *fresh_text = cgi_sched_meta(s2);
    double lr2 = cg_optim_lr(o2);
    assert_int_equal(cgi_sched_restore_meta(s2, text, false, "cg_load"), CG_OK);
    char *after = cgi_sched_meta(s2);
    assert_string_equal(after, fresh_text); /* validation only */
    assert_true(cg_optim_lr(o2) == lr2);
    assert_int_equal(cgi_sched_restore_meta(s2, text, true, "cg_load"), CG_OK);
    assert_true(cg_optim_lr(o2) == cg_optim_lr(o1));
    free(after);
    after = cgi_sched_meta(s2);
    assert_string_equal(after, text);
    for (int i = k; i < k + 10; i++) {
        step_ok(s1, i);
        step_ok(s2, i);
        double a = cg_optim_lr(o1), b = cg_optim_lr(o2);
        assert_memory_equal(&a, &b, sizeof a);
        assert_true(cg_sched_lr(s1) == cg_sched_lr(s2));
    }
    free(text), free(fresh_text), free(after);
    cg_sched_free(s1), cg_sched_free(s2);
    cg_optim_free(o1), cg_optim_free(o2);
    cg_module_free(m1), cg_module_free(m2);
}

static void test_sched_state_roundtrip(void **state) {
    (void)state;
    for (int i = 0; i < NMAKERS; i++)
        for (int k = 0; k <= 8; k += 4) roundtrip(MAKERS[i], k);
}

/* text with its first `from` replaced by `to` (malloc'd). */
static char *replaced(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    assert_non_null(at);
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1, k = (size_t)(at - text);
    char *r = malloc(n);
    assert_non_null(r);
    memcpy(r, text, k);
    strcpy(r + k, to);
    strcat(r, at + strlen(from));
    return r;
}

/* Each restore of bad fails with want, applying or not, and changes nothing. */
static void expect_bad_state(cg_sched *s, cg_optim *o, const char *bad, cg_status want) {
    char *before = cgi_sched_meta(s);
    double lr = cg_optim_lr(o);
    for (int apply = 0; apply < 2; apply++) {
        cg_clear_error();
        if (cgi_sched_restore_meta(s, bad, apply, "cg_load") != want)
            fail_msg("'%s': %s", bad ? bad : "(NULL)", cg_last_error());
        assert_non_null(strstr(cg_last_error(), "cg_load: "));
        char *now = cgi_sched_meta(s);
        assert_string_equal(now, before);
        free(now);
        assert_true(cg_optim_lr(o) == lr);
    }
    free(before);
}

static void test_sched_state_malformed(void **state) {
    cg_optim *o = opt(state, 0.1);
    cg_sched *s = warmup_cosine(o), *p = cg_plateau_new(o, &(cg_plateau_opts){0.5, 2, 0, 0});
    for (int i = 0; i < 7; i++) step_ok(s, i);
    cg_sched_step_metric(p, 10);
    cg_sched_step_metric(p, 10); /* one bad epoch */
    char *good = cgi_sched_meta(s), *pgood = cgi_sched_meta(p);
    assert_non_null(strstr(good, "sequentiallr epoch 7 groups 1 base "));
    assert_non_null(strstr(good, " children 2\nlinearlr epoch 4 "));
    assert_non_null(strstr(good, "\ncosineannealinglr epoch 2 "));
    const char *edits[][3] = {
        /* from, to, status */
        {"sequentiallr", "steplr", "a"},
        {"epoch 7", "epoch -1", "i"},
        {"epoch 7", "epoch 7x", "i"},
        {"epoch 7", "epoch 99999999999999999999", "i"},
        {"epoch 7", "epochs 7", "i"},
        {"groups 1", "groups 2", "a"},
        {"groups 1", "groups 0", "i"},
        {"base 0x", "base -0x", "i"},
        {"base 0x", "base nan 0x", "i"},
        {"lr 0x", "lr inf 0x", "i"},
        {"children 2", "children 3", "a"},
        {"children 2", "children", "i"},
        {"\ncosineannealinglr", "\nlinearlr", "a"},
        {"linearlr epoch 4", "linearlr epoch -1", "i"},
        {"\ncosineannealinglr", " 0x1p+0\ncosineannealinglr", "i"},
        {"\ncosineannealinglr", "\nsteplr", "a"},
        {"\ncosineannealinglr", "", "i"},
        {"children 2\n", "children 2\nx ", "i"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *bad = replaced(good, edits[i][0], edits[i][1]);
        expect_bad_state(s, o, bad, edits[i][2][0] == 'a' ? CG_ERR_ARG : CG_ERR_IO);
        free(bad);
    }
    char *cut = strdup(good); /* the last line gone */
    cut[strstr(cut, "\ncosineannealinglr") - cut + 1] = 0;
    expect_bad_state(s, o, cut, CG_ERR_IO);
    free(cut);
    char *more = malloc(strlen(good) + 8);
    strcpy(more, good), strcat(more, "extra");
    expect_bad_state(s, o, more, CG_ERR_IO);
    free(more);
    char longtok[100] = "epoch ";
    memset(longtok + 6, '7', 90), longtok[96] = 0; /* a 90-digit token */
    char *big = replaced(good, "epoch 7", longtok);
    expect_bad_state(s, o, big, CG_ERR_IO);
    free(big);
    expect_bad_state(s, o, "", CG_ERR_IO);
    expect_bad_state(s, o, NULL, CG_ERR_ARG);
    expect_bad_state(s, o, pgood, CG_ERR_ARG); /* a plateau's state */
    const char *pedits[][2] = {{"bad 1", "bad 3"},
                               {"bad 1", "bad -1"},
                               {"bad 1", "bad"},
                               {"best ", "best nan "},
                               {"best ", "worst "}};
    for (size_t i = 0; i < sizeof pedits / sizeof pedits[0]; i++) {
        char *bad = replaced(pgood, pedits[i][0], pedits[i][1]);
        expect_bad_state(p, o, bad, CG_ERR_IO);
        free(bad);
    }
    free(good), free(pgood);
    cg_sched_free(s), cg_sched_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sched_steplr_known_values, opt_setup,
                                        opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_steplr_formula, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_multisteplr, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_exponentiallr, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_cosine, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_warmup, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_onecycle, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_plateau, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_metric_rules, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_bad_args, opt_setup, opt_teardown),
        cmocka_unit_test(test_sched_drives_optimizer),
        cmocka_unit_test(test_sched_two_groups),
        cmocka_unit_test_setup_teardown(test_sched_overflow_refused, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_sequential_warmup_cosine, opt_setup,
                                        opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_sequential_three, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_sequential_bad_args, opt_setup,
                                        opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_chained, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_chained_failure, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_chained_bad_args, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_multiplicativelr, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_lambdalr, opt_setup, opt_teardown),
        cmocka_unit_test_setup_teardown(test_sched_group_lr, opt_setup, opt_teardown),
        cmocka_unit_test(test_sched_state_roundtrip),
        cmocka_unit_test_setup_teardown(test_sched_state_malformed, opt_setup, opt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
