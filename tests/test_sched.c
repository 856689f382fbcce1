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
        assert_rel(cg_sched_step(s), want[e], 1e-14);
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
    for (int e = 0; e < 15; e++) f[e] = 0.1 * (1.0 / 3 + (1 - 1.0 / 3) * (e < 10 ? e : 10) / 10);
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
    cg_sched *s = cg_onecyclelr_new(o, 1.0, 10, 0.3, 25, 1e4);
    assert_non_null(s);
    assert_rel(cg_optim_lr(o), 0.04, 1e-15);
    assert_rel(cg_sched_step(s), 0.52, 1e-15); /* halfway up: 1 - 0.96 / 2 */
    assert_rel(cg_sched_step(s), 1.0, 1e-15);  /* the peak at step 0.3 * 10 - 1 */
    for (int e = 3; e <= 9; e++) cg_sched_step(s);
    assert_rel(cg_sched_lr(s), 4e-6, 1e-12); /* the end: 0.04 / 1e4 */
    cg_sched_free(s);

    double want[17];
    for (int e = 0; e <= 16; e++) want[e] = onecycle_ref(0.5, 16, 0.25, 10, 100, e);
    s = cg_onecyclelr_new(o, 0.5, 16, 0.25, 10, 100);
    expect_lrs(s, o, 17, want);
    double last = cg_sched_lr(s);
    cg_clear_error();
    assert_true(cg_sched_step(s) == last); /* past total_steps: refused */
    assert_int_equal(cg_last_status(), CG_ERR_STATE);
    assert_true(cg_optim_lr(o) == last);
    cg_sched_free(s);
}

/* ---- ReduceLROnPlateau ----------------------------------------------------------- */
/* factor 0.5, patience 2, threshold 0.1 (better: below 0.9 best), min_lr 0.1. */
static void test_sched_plateau(void **state) {
    cg_optim *o = opt(state, 1.0);
    cg_sched *s = cg_plateau_new(o, 0.5, 2, 0.1, 0.1);
    assert_non_null(s);
    assert_true(cg_sched_lr(s) == 1.0 && cg_optim_lr(o) == 1.0);
    const double metric[] = {10, 9.5, 9.2, 8, 8, 8, 8, 8, 8, 7.1, 7, 7, 7, 7, 7, 7, 7,
                             7, 7, 7, 7};
    const double want[] = {1,   1,   1,   1,    1,    1,     0.5,   0.5,   0.5, 0.5, 0.5,
                           0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.1, 0.1, 0.1};
    /* 10 best; 9.5, 9.2 bad (not below 9); 8 better, which resets patience;
     * the third bad epoch after it halves the lr; 7.1 better (below 7.2);
     * then every third bad epoch halves it, down to min_lr and no lower. */
    for (int e = 0; e < 21; e++) {
        assert_rel(cg_sched_step_metric(s, metric[e]), want[e], 1e-15);
        assert_rel(cg_optim_lr(o), want[e], 1e-15);
    }
    for (int e = 0; e < 9; e++) cg_sched_step_metric(s, 7);
    assert_true(cg_optim_lr(o) == 0.1); /* never below min_lr */
    cg_sched_free(s);
}

/* Plateau needs a metric; the others ignore one. */
static void test_sched_metric_rules(void **state) {
    cg_optim *o = opt(state, 1.0);
    cg_sched *s = cg_plateau_new(o, 0.5, 0, 0, 0);
    cg_clear_error();
    assert_true(cg_sched_step(s) == 1.0);
    assert_int_equal(cg_last_status(), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "cg_sched_step_metric"));
    assert_true(cg_sched_step_metric(s, 1) == 1.0); /* the first metric is the best */
    assert_true(cg_sched_step_metric(s, 1) == 0.5); /* patience 0: one bad epoch */
    cg_sched_free(s);
    s = cg_steplr_new(o, 1, 0.5);
    assert_true(cg_sched_step_metric(s, 123) == 0.25);
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
    expect_refused(cg_onecyclelr_new(o, 1, 0, 0.3, 25, 1e4), "cg_onecyclelr_new");
    expect_refused(cg_onecyclelr_new(o, 1, 10, 1.5, 25, 1e4), "cg_onecyclelr_new");
    expect_refused(cg_onecyclelr_new(o, 1, 10, 0.3, 0, 1e4), "cg_onecyclelr_new");
    expect_refused(cg_onecyclelr_new(o, -1, 10, 0.3, 25, 1e4), "cg_onecyclelr_new");
    expect_refused(cg_plateau_new(o, 1.0, 2, 1e-4, 0), "cg_plateau_new");
    expect_refused(cg_plateau_new(o, 0.1, -1, 1e-4, 0), "cg_plateau_new");
    expect_refused(cg_plateau_new(o, 0.1, 2, -1, 0), "cg_plateau_new");
    expect_refused(cg_plateau_new(o, 0.1, 2, 1e-4, -1), "cg_plateau_new");
    assert_true(cg_optim_lr(o) == 1.0); /* refused schedules leave the lr alone */
    assert_true(isnan(cg_sched_step(NULL)));
    assert_true(isnan(cg_sched_step_metric(NULL, 1)));
    assert_true(isnan(cg_sched_lr(NULL)));
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
        cg_sched_step(s);
    }
    assert_true(p[0] == -(1 + 0.5 + 0.25 + 0.125));
    cg_sched_free(s);
    cg_optim_free(o);
    cg_module_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sched_steplr_known_values, opt_setup, opt_teardown),
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
