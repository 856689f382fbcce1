/* Tests for nn/optim.c: every optimizer and option against an independent
 * scalar re-implementation of PyTorch's documented update rules, f32 against
 * f64, state names and values, checkpoint resume, thread-count invariance,
 * bad options and odd modules. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testutil.h"

#include "nn/internal.h" /* white-box: the checkpoint meta hooks */

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A Linear(3, 2) with bias: 6 weights then 2 biases in the flat buffer. */
#define N      8
#define NSTEPS 3

static const double P0[N] = {0.5, -1.25, 0.75, 2.0, -0.3, 0.1, -0.8, 1.5};
/* Mixed signs and sizes, zeros, and a large first gradient that shrinks
 * (element 7), so amsgrad's running maximum matters. */
static const double G[NSTEPS][N] = {
    {0.1, -0.2, 0.3, 0.0, 1.5, -0.7, 0.25, -2.0},
    {-0.4, 0.05, 0.6, 0.2, -1.0, 0.9, 0.0, 1.0},
    {0.3, 0.3, -0.5, -0.1, 0.5, 0.4, -0.6, 0.3},
};

/* ---- the reference: PyTorch's documented rules, one double at a time ------ */
typedef struct ref_state {
    double momentum_buffer, exp_avg, exp_avg_sq, max_exp_avg_sq, square_avg, grad_avg, sum;
} ref_state;

typedef enum kind { K_SGD, K_ADAM, K_ADAMW, K_RMSPROP, K_ADAGRAD } kind;

typedef struct optcase {
    kind k;
    cg_sgd_opts sgd;
    cg_adam_opts adam;
    cg_rmsprop_opts rms;
    cg_adagrad_opts ada;
} optcase;

static void ref_sgd(const cg_sgd_opts *o, int t, double g, double *p, ref_state *s) {
    if (o->weight_decay != 0) g = g + o->weight_decay * *p;
    if (o->momentum != 0) {
        if (t == 1)
            s->momentum_buffer = g;
        else
            s->momentum_buffer = o->momentum * s->momentum_buffer + (1 - o->dampening) * g;
        g = o->nesterov ? g + o->momentum * s->momentum_buffer : s->momentum_buffer;
    }
    *p = *p - o->lr * g;
}

/* Adam's pseudo-code with m-hat and v-hat; for amsgrad, PyTorch's code keeps
 * the maximum of the raw v and divides it by the current correction. */
static void ref_adam(const cg_adam_opts *o, bool decoupled, int t, double g, double *p,
                     ref_state *s) {
    if (decoupled)
        *p = *p * (1 - o->lr * o->weight_decay);
    else if (o->weight_decay != 0)
        g = g + o->weight_decay * *p;
    s->exp_avg = o->beta1 * s->exp_avg + (1 - o->beta1) * g;
    s->exp_avg_sq = o->beta2 * s->exp_avg_sq + (1 - o->beta2) * g * g;
    double m_hat = s->exp_avg / (1 - pow(o->beta1, t));
    double v = s->exp_avg_sq;
    if (o->amsgrad) {
        if (v > s->max_exp_avg_sq) s->max_exp_avg_sq = v;
        v = s->max_exp_avg_sq;
    }
    double v_hat = v / (1 - pow(o->beta2, t));
    *p = *p - o->lr * m_hat / (sqrt(v_hat) + o->eps);
}

static void ref_rmsprop(const cg_rmsprop_opts *o, double g, double *p, ref_state *s) {
    if (o->weight_decay != 0) g = g + o->weight_decay * *p;
    s->square_avg = o->alpha * s->square_avg + (1 - o->alpha) * g * g;
    double v = s->square_avg;
    if (o->centered) {
        s->grad_avg = o->alpha * s->grad_avg + (1 - o->alpha) * g;
        v = v - s->grad_avg * s->grad_avg;
    }
    if (o->momentum > 0) {
        s->momentum_buffer = o->momentum * s->momentum_buffer + g / (sqrt(v) + o->eps);
        *p = *p - o->lr * s->momentum_buffer;
    } else {
        *p = *p - o->lr * g / (sqrt(v) + o->eps);
    }
}

static void ref_adagrad(const cg_adagrad_opts *o, int t, double g, double *p, ref_state *s) {
    double clr = o->lr / (1 + (t - 1) * o->lr_decay);
    if (o->weight_decay != 0) g = g + o->weight_decay * *p;
    s->sum = s->sum + g * g;
    *p = *p - clr * g / (sqrt(s->sum) + o->eps);
}

static void ref_init(const optcase *c, ref_state *st) {
    for (int i = 0; i < N; i++)
        st[i] = (ref_state){.sum = c->k == K_ADAGRAD ? c->ada.initial_accumulator_value : 0};
}

static void ref_step(const optcase *c, int t, const double *g, double *p, ref_state *st) {
    for (int i = 0; i < N; i++) {
        switch (c->k) {
        case K_SGD: ref_sgd(&c->sgd, t, g[i], &p[i], &st[i]); break;
        case K_ADAM: ref_adam(&c->adam, false, t, g[i], &p[i], &st[i]); break;
        case K_ADAMW: ref_adam(&c->adam, true, t, g[i], &p[i], &st[i]); break;
        case K_RMSPROP: ref_rmsprop(&c->rms, g[i], &p[i], &st[i]); break;
        case K_ADAGRAD: ref_adagrad(&c->ada, t, g[i], &p[i], &st[i]); break;
        }
    }
}

static double ref_field(const ref_state *s, const char *name) {
    if (!strcmp(name, "momentum_buffer")) return s->momentum_buffer;
    if (!strcmp(name, "exp_avg")) return s->exp_avg;
    if (!strcmp(name, "exp_avg_sq")) return s->exp_avg_sq;
    if (!strcmp(name, "max_exp_avg_sq")) return s->max_exp_avg_sq;
    if (!strcmp(name, "square_avg")) return s->square_avg;
    if (!strcmp(name, "grad_avg")) return s->grad_avg;
    if (!strcmp(name, "sum")) return s->sum;
    fail_msg("unexpected state name %s", name);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */
static cg_optim *make(const optcase *c, cg_module *m) {
    switch (c->k) {
    case K_SGD: return cg_sgd_new(m, &c->sgd);
    case K_ADAM: return cg_adam_new(m, &c->adam);
    case K_ADAMW: return cg_adamw_new(m, &c->adam);
    case K_RMSPROP: return cg_rmsprop_new(m, &c->rms);
    case K_ADAGRAD: return cg_adagrad_new(m, &c->ada);
    }
    return NULL;
}

static void put(cg_tensor *dst, const double *v, int64_t n) {
    cg_tensor *src = cg_from_array(NULL, CG_F64, 1, &n, v);
    assert_int_equal(cg_copy_(dst, src), CG_OK);
    cg_tensor_free(src);
}

/* Writes v (f64, in parameter order) into the gradients of m's parameters
 * with cg_copy_, which bumps each gradient's version: a new gradient for the
 * next step, as a backward gives. */
static void put_grads(const cg_module *m, const double *v) {
    int64_t at = 0;
    for (int i = 0; i < cg_module_nparams(m); i++) {
        cg_tensor *g = cg_grad_of(cg_module_param(m, i, NULL));
        cg_tensor *src = cg_from_array(NULL, CG_F64, cg_ndim(g), cg_shape(g), v + at);
        assert_int_equal(cg_copy_(g, src), CG_OK);
        cg_tensor_free(src);
        at += cg_numel(g);
    }
}

/* The same from a flat tensor of m's dtype. */
static void put_grads_tensor(const cg_module *m, const cg_tensor *flat) {
    int64_t n = cg_numel(flat);
    double *v = malloc(sizeof *v * (size_t)n);
    assert_non_null(v);
    assert_int_equal(cg_copy_to_array(flat, CG_F64, v), CG_OK);
    put_grads(m, v);
    free(v);
}

/* Linear(3, 2) of dtype dt holding P0. */
static cg_module *model(cg_dtype dt) {
    cg_rng rng;
    cg_rng_seed(&rng, 7);
    cg_module *m = cg_nn_linear(&rng, dt, 3, 2, true);
    assert_non_null(m);
    assert_int_equal(cg_module_numel(m), N);
    put(cg_module_flat_params(m), P0, N);
    return m;
}

static void params_of(const cg_module *m, double *out) {
    assert_int_equal(cg_copy_to_array(cg_module_flat_params(m), CG_F64, out), CG_OK);
}

static void assert_close(double got, double want, double rel) {
    if (fabs(got - want) > rel * fabs(want) + 1e-300)
        fail_msg("got %.17g, want %.17g (rel %g)", got, want, rel);
}

/* Runs NSTEPS steps on a f64 model and checks parameters, state and the
 * untouched gradients after each against the reference. */
static void check_case(optcase cs) {
    const optcase *c = &cs;
    cg_module *m = model(CG_F64);
    cg_optim *o = make(c, m);
    assert_non_null(o);
    double p[N], got[N], gs[N];
    ref_state st[N];
    memcpy(p, P0, sizeof p);
    ref_init(c, st);
    for (int s = 0; s < NSTEPS; s++) {
        put_grads(m, G[s]);
        assert_int_equal(cg_optim_step(o), CG_OK);
        assert_int_equal(cg_optim_steps(o), s + 1);
        ref_step(c, s + 1, G[s], p, st);
        params_of(m, got);
        for (int i = 0; i < N; i++) assert_close(got[i], p[i], 1e-13);
        for (int k = 0; k < cg_optim_nstate(o); k++) {
            const char *name;
            cg_tensor *t = cg_optim_state(o, k, &name);
            assert_int_equal(cg_copy_to_array(t, CG_F64, got), CG_OK);
            for (int i = 0; i < N; i++) assert_close(got[i], ref_field(&st[i], name), 1e-13);
        }
        assert_int_equal(cg_copy_to_array(cg_module_flat_grads(m), CG_F64, gs), CG_OK);
        assert_memory_equal(gs, G[s], sizeof gs);
    }
    cg_optim_free(o);
    cg_module_free(m);
}

static optcase sgd_case(cg_sgd_opts o) { return (optcase){.k = K_SGD, .sgd = o}; }
static optcase adam_case(kind k, cg_adam_opts o) { return (optcase){.k = k, .adam = o}; }
static optcase rms_case(cg_rmsprop_opts o) { return (optcase){.k = K_RMSPROP, .rms = o}; }
static optcase ada_case(cg_adagrad_opts o) { return (optcase){.k = K_ADAGRAD, .ada = o}; }

static cg_adam_opts adam_opts(double lr, double beta2, double wd, bool amsgrad) {
    cg_adam_opts o = cg_adam_defaults(lr);
    o.beta2 = beta2;
    o.weight_decay = wd;
    o.amsgrad = amsgrad;
    return o;
}

static cg_rmsprop_opts rms_opts(double wd, double momentum, bool centered) {
    cg_rmsprop_opts o = cg_rmsprop_defaults(0.01);
    o.weight_decay = wd;
    o.momentum = momentum;
    o.centered = centered;
    return o;
}

static cg_adagrad_opts ada_opts(double lr_decay, double wd, double init) {
    cg_adagrad_opts o = cg_adagrad_defaults(0.1);
    o.lr_decay = lr_decay;
    o.weight_decay = wd;
    o.initial_accumulator_value = init;
    return o;
}

/* One case per option, used by the tests that run over all of them. */
#define NCASES 17
static optcase all_cases(int i) {
    switch (i) {
    case 0: return sgd_case((cg_sgd_opts){.lr = 0.1});
    case 1: return sgd_case((cg_sgd_opts){.lr = 0.1, .momentum = 0.9});
    case 2: return sgd_case((cg_sgd_opts){.lr = 0.1, .momentum = 0.9, .dampening = 0.3});
    case 3: return sgd_case((cg_sgd_opts){.lr = 0.1, .momentum = 0.9, .nesterov = true});
    case 4: return sgd_case((cg_sgd_opts){.lr = 0.1, .momentum = 0.5, .weight_decay = 0.1});
    case 5: return adam_case(K_ADAM, adam_opts(0.1, 0.999, 0, false));
    case 6: return adam_case(K_ADAM, adam_opts(0.1, 0.999, 0.1, false));
    case 7: return adam_case(K_ADAM, adam_opts(0.1, 0.5, 0, true));
    case 8: return adam_case(K_ADAMW, adam_opts(0.1, 0.999, 0.1, false));
    case 9: return adam_case(K_ADAMW, adam_opts(0.1, 0.5, 0.1, true));
    case 10: return rms_case(rms_opts(0, 0, false));
    case 11: return rms_case(rms_opts(0, 0.9, false));
    case 12: return rms_case(rms_opts(0, 0, true));
    case 13: return rms_case(rms_opts(0.1, 0.5, true));
    case 14: return ada_case(ada_opts(0, 0, 0));
    case 15: return ada_case(ada_opts(0.1, 0, 0));
    default: return ada_case(ada_opts(0.05, 0.1, 0.5));
    }
}

/* ---- each optimizer and option against the reference ----------------------- */
static void test_optim_sgd_plain(void **state) {
    (void)state;
    check_case(sgd_case(cg_sgd_defaults(0.1)));
}

static void test_optim_sgd_momentum(void **state) {
    (void)state;
    check_case(all_cases(1));
}

static void test_optim_sgd_dampening(void **state) {
    (void)state;
    check_case(all_cases(2));
}

static void test_optim_sgd_nesterov(void **state) {
    (void)state;
    check_case(all_cases(3));
}

static void test_optim_sgd_weight_decay(void **state) {
    (void)state;
    check_case(sgd_case((cg_sgd_opts){.lr = 0.1, .weight_decay = 0.1}));
    check_case(all_cases(4)); /* with momentum */
}

static void test_optim_adam_plain(void **state) {
    (void)state;
    check_case(adam_case(K_ADAM, cg_adam_defaults(0.1)));
}

static void test_optim_adam_weight_decay(void **state) {
    (void)state;
    check_case(all_cases(6));
}

/* beta2 0.5 makes v of element 7 fall after step 1, so the maximum is used. */
static void test_optim_adam_amsgrad(void **state) {
    (void)state;
    optcase c = all_cases(7);
    check_case(c);
    cg_module *m = model(CG_F64);
    cg_optim *o = make(&c, m);
    for (int s = 0; s < 2; s++) {
        put_grads(m, G[s]);
        assert_int_equal(cg_optim_step(o), CG_OK);
    }
    double v[N], vmax[N];
    assert_int_equal(cg_copy_to_array(cg_optim_state(o, 1, NULL), CG_F64, v), CG_OK);
    assert_int_equal(cg_copy_to_array(cg_optim_state(o, 2, NULL), CG_F64, vmax), CG_OK);
    assert_true(vmax[7] > v[7]);
    cg_optim_free(o);
    cg_module_free(m);
}

static void test_optim_adamw(void **state) {
    (void)state;
    check_case(adam_case(K_ADAMW, cg_adamw_defaults(0.1)));
    check_case(all_cases(8));
    check_case(all_cases(9)); /* amsgrad */
}

static void test_optim_rmsprop_plain(void **state) {
    (void)state;
    check_case(rms_case(cg_rmsprop_defaults(0.01)));
}

static void test_optim_rmsprop_momentum(void **state) {
    (void)state;
    check_case(all_cases(11));
}

static void test_optim_rmsprop_centered(void **state) {
    (void)state;
    check_case(all_cases(12));
    check_case(rms_case(rms_opts(0, 0.9, true))); /* with momentum */
}

static void test_optim_rmsprop_weight_decay(void **state) {
    (void)state;
    check_case(rms_case(rms_opts(0.1, 0, false)));
    check_case(all_cases(13)); /* with momentum and centered */
}

static void test_optim_adagrad_plain(void **state) {
    (void)state;
    check_case(ada_case(cg_adagrad_defaults(0.1)));
}

static void test_optim_adagrad_lr_decay(void **state) {
    (void)state;
    check_case(all_cases(15));
}

/* The sum starts at the initial value. */
static void test_optim_adagrad_initial_accumulator(void **state) {
    (void)state;
    optcase c = ada_case(ada_opts(0, 0, 0.5));
    check_case(c);
    cg_module *m = model(CG_F64);
    cg_optim *o = make(&c, m);
    double sum[N];
    assert_int_equal(cg_copy_to_array(cg_optim_state(o, 0, NULL), CG_F64, sum), CG_OK);
    for (int i = 0; i < N; i++) assert_true(sum[i] == 0.5);
    cg_optim_free(o);
    cg_module_free(m);
}

static void test_optim_adagrad_weight_decay(void **state) {
    (void)state;
    check_case(all_cases(16));
}

/* ---- across all cases ------------------------------------------------------------ */
static void test_optim_f32_matches_f64(void **state) {
    (void)state;
    for (int k = 0; k < NCASES; k++) {
        optcase c = all_cases(k);
        cg_module *m32 = model(CG_F32), *m64 = model(CG_F64);
        cg_optim *o32 = make(&c, m32), *o64 = make(&c, m64);
        assert_non_null(o32);
        assert_non_null(o64);
        for (int s = 0; s < NSTEPS; s++) {
            put_grads(m32, G[s]);
            put_grads(m64, G[s]);
            assert_int_equal(cg_optim_step(o32), CG_OK);
            assert_int_equal(cg_optim_step(o64), CG_OK);
        }
        double p32[N], p64[N];
        params_of(m32, p32);
        params_of(m64, p64);
        for (int i = 0; i < N; i++) assert_close(p32[i], p64[i], 1e-6);
        for (int i = 0; i < cg_optim_nstate(o32); i++)
            assert_int_equal(cg_dtype_of(cg_optim_state(o32, i, NULL)), CG_F32);
        cg_optim_free(o32);
        cg_optim_free(o64);
        cg_module_free(m32);
        cg_module_free(m64);
    }
}

static void expect_names(const optcase *c, int n, const char *const *want) {
    cg_module *m = model(CG_F64);
    cg_optim *o = make(c, m);
    assert_int_equal(cg_optim_nstate(o), n);
    for (int i = 0; i < n; i++) {
        const char *name = NULL;
        cg_tensor *t = cg_optim_state(o, i, &name);
        assert_non_null(t);
        assert_string_equal(name, want[i]);
        assert_int_equal(cg_ndim(t), 1);
        assert_int_equal(cg_numel(t), N);
        assert_int_equal(cg_dtype_of(t), CG_F64);
    }
    assert_null(cg_optim_state(o, n, NULL));
    assert_null(cg_optim_state(o, -1, NULL));
    cg_optim_free(o);
    cg_module_free(m);
}

static void test_optim_state_names(void **state) {
    (void)state;
    optcase c = all_cases(0);
    expect_names(&c, 0, NULL);
    c = all_cases(1);
    expect_names(&c, 1, (const char *[]){"momentum_buffer"});
    c = all_cases(5);
    expect_names(&c, 2, (const char *[]){"exp_avg", "exp_avg_sq"});
    c = all_cases(7);
    expect_names(&c, 3, (const char *[]){"exp_avg", "exp_avg_sq", "max_exp_avg_sq"});
    c = all_cases(8);
    expect_names(&c, 2, (const char *[]){"exp_avg", "exp_avg_sq"});
    c = all_cases(10);
    expect_names(&c, 1, (const char *[]){"square_avg"});
    c = all_cases(11);
    expect_names(&c, 2, (const char *[]){"square_avg", "momentum_buffer"});
    c = all_cases(12);
    expect_names(&c, 2, (const char *[]){"square_avg", "grad_avg"});
    c = all_cases(13);
    expect_names(&c, 3, (const char *[]){"square_avg", "momentum_buffer", "grad_avg"});
    c = all_cases(14);
    expect_names(&c, 1, (const char *[]){"sum"});
}

static void test_optim_names_and_defaults(void **state) {
    (void)state;
    const char *want[] = {"sgd", "adam", "adamw", "rmsprop", "adagrad"};
    const int cases[] = {0, 5, 8, 10, 14};
    for (int k = 0; k < 5; k++) {
        optcase c = all_cases(cases[k]);
        cg_module *m = model(CG_F64);
        cg_optim *o = make(&c, m);
        assert_string_equal(cg_optim_name(o), want[k]);
        cg_optim_free(o);
        cg_module_free(m);
    }
    cg_sgd_opts s = cg_sgd_defaults(0.5);
    assert_true(s.lr == 0.5 && s.momentum == 0 && s.dampening == 0 && s.weight_decay == 0 &&
                !s.nesterov);
    cg_adam_opts a = cg_adam_defaults(1e-3);
    assert_true(a.lr == 1e-3 && a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8 &&
                a.weight_decay == 0 && !a.amsgrad);
    a = cg_adamw_defaults(1e-3);
    assert_true(a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8 && a.weight_decay == 0.01);
    cg_rmsprop_opts r = cg_rmsprop_defaults(0.01);
    assert_true(r.alpha == 0.99 && r.eps == 1e-8 && r.weight_decay == 0 && r.momentum == 0 &&
                !r.centered);
    cg_adagrad_opts g = cg_adagrad_defaults(0.01);
    assert_true(g.lr_decay == 0 && g.weight_decay == 0 && g.initial_accumulator_value == 0 &&
                g.eps == 1e-10);
}

/* Two steps, state and step count copied into a fresh optimizer, one more
 * step: the same bits as three uninterrupted steps. */
static void test_optim_resume_matches_uninterrupted(void **state) {
    (void)state;
    for (int k = 0; k < NCASES; k++) {
        optcase c = all_cases(k);
        cg_module *ma = model(CG_F64), *mb = model(CG_F64);
        cg_optim *oa = make(&c, ma), *ob = make(&c, mb);
        for (int s = 0; s < NSTEPS; s++) {
            put_grads(ma, G[s]);
            assert_int_equal(cg_optim_step(oa), CG_OK);
        }
        for (int s = 0; s < NSTEPS - 1; s++) {
            put_grads(mb, G[s]);
            assert_int_equal(cg_optim_step(ob), CG_OK);
        }
        cg_optim *oc = make(&c, mb);
        for (int i = 0; i < cg_optim_nstate(ob); i++)
            assert_int_equal(cg_copy_(cg_optim_state(oc, i, NULL), cg_optim_state(ob, i, NULL)),
                             CG_OK);
        cg_optim_set_steps(oc, cg_optim_steps(ob));
        cg_optim_free(ob);
        put_grads(mb, G[NSTEPS - 1]);
        assert_int_equal(cg_optim_step(oc), CG_OK);
        assert_int_equal(cg_optim_steps(oc), NSTEPS);
        assert_memory_equal(cg_data(cg_module_flat_params(ma)),
                            cg_data(cg_module_flat_params(mb)), N * sizeof(double));
        for (int i = 0; i < cg_optim_nstate(oa); i++)
            assert_memory_equal(cg_data(cg_optim_state(oa, i, NULL)),
                                cg_data(cg_optim_state(oc, i, NULL)), N * sizeof(double));
        cg_optim_free(oa);
        cg_optim_free(oc);
        cg_module_free(ma);
        cg_module_free(mb);
    }
}

/* A model big enough for the parallel loop: the same bits on 1 and 4 threads. */
static void run_big(const optcase *c, cg_dtype dt, int threads, void *out) {
    cg_set_num_threads(threads);
    cg_rng rng;
    cg_rng_seed(&rng, 11);
    cg_module *m = cg_nn_linear(&rng, dt, 256, 160, true);
    cg_optim *o = make(c, m);
    assert_non_null(o);
    int64_t n = cg_module_numel(m);
    assert_true(n > 32768);
    for (int s = 0; s < NSTEPS; s++) {
        cg_tensor *g = cg_rand(NULL, &rng, dt, 1, &n, -1, 1);
        put_grads_tensor(m, g);
        cg_tensor_free(g);
        assert_int_equal(cg_optim_step(o), CG_OK);
    }
    memcpy(out, cg_data(cg_module_flat_params(m)), (size_t)n * cg_dtype_size(dt));
    cg_optim_free(o);
    cg_module_free(m);
}

static void test_optim_thread_count_invariant(void **state) {
    (void)state;
    int saved = cg_get_num_threads();
    size_t bytes = (256 * 160 + 160) * sizeof(double);
    void *a = malloc(bytes), *b = malloc(bytes);
    assert_non_null(a);
    assert_non_null(b);
    for (int k = 0; k < NCASES; k++) {
        optcase c = all_cases(k);
        for (cg_dtype dt = CG_F32; dt <= CG_F64; dt++) {
            run_big(&c, dt, 1, a);
            run_big(&c, dt, 4, b);
            assert_memory_equal(a, b, (256 * 160 + 160) * cg_dtype_size(dt));
        }
    }
    cg_set_num_threads(saved);
    free(a);
    free(b);
}

static void test_optim_steps_counter(void **state) {
    (void)state;
    optcase c = all_cases(5);
    cg_module *m = model(CG_F64);
    cg_optim *o = make(&c, m);
    assert_int_equal(cg_optim_steps(o), 0);
    for (int s = 1; s <= 5; s++) {
        assert_int_equal(cg_optim_step(o), CG_OK);
        assert_int_equal(cg_optim_steps(o), s);
    }
    cg_optim_set_steps(o, 42);
    assert_int_equal(cg_optim_steps(o), 42);
    cg_optim_set_steps(o, -1);
    assert_int_equal(cg_last_status(), CG_ERR_ARG);
    assert_int_equal(cg_optim_steps(o), 42);
    cg_optim_free(o);
    cg_module_free(m);
}

static void test_optim_zero_grad(void **state) {
    (void)state;
    optcase c = all_cases(1);
    cg_module *m = model(CG_F64);
    cg_optim *o = make(&c, m);
    put_grads(m, G[0]);
    cg_optim_zero_grad(o);
    double g[N];
    assert_int_equal(cg_copy_to_array(cg_module_flat_grads(m), CG_F64, g), CG_OK);
    for (int i = 0; i < N; i++) assert_true(g[i] == 0);
    cg_optim_zero_grad(NULL);
    cg_optim_free(o);
    cg_module_free(m);
}

/* The lr is read at every step: SGD with lr set to 0.5 moves by 0.5 g. */
static void test_optim_set_lr(void **state) {
    (void)state;
    cg_module *m = model(CG_F64);
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    cg_optim *o = cg_sgd_new(m, &so);
    assert_true(cg_optim_lr(o) == 0.1);
    cg_optim_set_lr(o, 0.5);
    assert_true(cg_optim_lr(o) == 0.5);
    cg_optim_set_lr(o, -1);
    assert_int_equal(cg_last_status(), CG_ERR_ARG);
    cg_optim_set_lr(o, NAN);
    assert_true(cg_optim_lr(o) == 0.5);
    put_grads(m, G[0]);
    assert_int_equal(cg_optim_step(o), CG_OK);
    double p[N];
    params_of(m, p);
    for (int i = 0; i < N; i++) assert_true(p[i] == P0[i] - 0.5 * G[0][i]);
    cg_optim_free(o);
    cg_module_free(m);
}

/* ---- bad options and odd modules ------------------------------------------------- */
static void expect_refused(cg_optim *o, const char *fn, const char *what) {
    assert_null(o);
    assert_int_equal(cg_last_status(), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), fn));
    assert_non_null(strstr(cg_last_error(), what));
}

static void test_optim_bad_options(void **state) {
    (void)state;
    cg_module *m = model(CG_F64);
    cg_sgd_opts s = cg_sgd_defaults(-1);
    expect_refused(cg_sgd_new(m, &s), "cg_sgd_new", "lr");
    s = (cg_sgd_opts){.lr = NAN};
    expect_refused(cg_sgd_new(m, &s), "cg_sgd_new", "lr");
    s = (cg_sgd_opts){.lr = 0.1, .momentum = -0.5};
    expect_refused(cg_sgd_new(m, &s), "cg_sgd_new", "momentum");
    s = (cg_sgd_opts){.lr = 0.1, .weight_decay = -0.5};
    expect_refused(cg_sgd_new(m, &s), "cg_sgd_new", "weight_decay");
    s = (cg_sgd_opts){.lr = 0.1, .nesterov = true};
    expect_refused(cg_sgd_new(m, &s), "cg_sgd_new", "nesterov");
    s = (cg_sgd_opts){.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true};
    expect_refused(cg_sgd_new(m, &s), "cg_sgd_new", "nesterov");

    cg_adam_opts a = cg_adam_defaults(0.1);
    a.beta1 = 1.5;
    expect_refused(cg_adam_new(m, &a), "cg_adam_new", "beta1");
    assert_string_equal(cg_last_error(), "cg_adam_new: beta1 1.5 not in [0, 1)");
    a = cg_adam_defaults(0.1);
    a.beta2 = 1;
    expect_refused(cg_adam_new(m, &a), "cg_adam_new", "beta2");
    a = cg_adam_defaults(0.1);
    a.beta1 = -0.1;
    expect_refused(cg_adam_new(m, &a), "cg_adam_new", "beta1");
    a = cg_adam_defaults(0.1);
    a.eps = -1e-8;
    expect_refused(cg_adam_new(m, &a), "cg_adam_new", "eps");
    a = cg_adam_defaults(-0.1);
    expect_refused(cg_adam_new(m, &a), "cg_adam_new", "lr");
    a = cg_adamw_defaults(0.1);
    a.weight_decay = -0.01;
    expect_refused(cg_adamw_new(m, &a), "cg_adamw_new", "weight_decay");

    cg_rmsprop_opts r = cg_rmsprop_defaults(0.01);
    r.alpha = -0.1;
    expect_refused(cg_rmsprop_new(m, &r), "cg_rmsprop_new", "alpha");
    r.alpha = 1.5;
    expect_refused(cg_rmsprop_new(m, &r), "cg_rmsprop_new", "alpha");
    r = cg_rmsprop_defaults(0.01);
    r.momentum = -1;
    expect_refused(cg_rmsprop_new(m, &r), "cg_rmsprop_new", "momentum");
    r = cg_rmsprop_defaults(0.01);
    r.eps = -1;
    expect_refused(cg_rmsprop_new(m, &r), "cg_rmsprop_new", "eps");

    cg_adagrad_opts g = cg_adagrad_defaults(0.01);
    g.lr_decay = -1;
    expect_refused(cg_adagrad_new(m, &g), "cg_adagrad_new", "lr_decay");
    g = cg_adagrad_defaults(0.01);
    g.initial_accumulator_value = -1;
    expect_refused(cg_adagrad_new(m, &g), "cg_adagrad_new", "initial_accumulator_value");
    g = cg_adagrad_defaults(0.01);
    g.weight_decay = -1;
    expect_refused(cg_adagrad_new(m, &g), "cg_adagrad_new", "weight_decay");

    /* the edges PyTorch accepts */
    a = cg_adam_defaults(0);
    a.beta1 = 0;
    a.beta2 = 0;
    cg_optim *o = cg_adam_new(m, &a);
    assert_non_null(o);
    cg_optim_free(o);
    cg_module_free(m);
}

static void test_optim_null_args(void **state) {
    (void)state;
    cg_sgd_opts s = cg_sgd_defaults(0.1);
    expect_refused(cg_sgd_new(NULL, &s), "cg_sgd_new", "module is NULL");
    cg_module *m = model(CG_F64);
    expect_refused(cg_adam_new(m, NULL), "cg_adam_new", "options are NULL");
    expect_refused(cg_rmsprop_new(NULL, NULL), "cg_rmsprop_new", "NULL");
    assert_int_equal(cg_optim_step(NULL), CG_ERR_ARG);
    assert_true(isnan(cg_optim_lr(NULL)));
    assert_int_equal(cg_optim_steps(NULL), 0);
    assert_int_equal(cg_optim_nstate(NULL), 0);
    assert_null(cg_optim_state(NULL, 0, NULL));
    assert_string_equal(cg_optim_name(NULL), "NULL");
    cg_optim_set_lr(NULL, 1);
    cg_optim_set_steps(NULL, 1);
    cg_optim_free(NULL);
    cg_module_free(m);
}

/* A module without parameters: every optimizer steps, doing nothing. */
static void test_optim_no_parameters(void **state) {
    (void)state;
    cg_module *m = cg_nn_activation(CG_ACT_RELU);
    assert_non_null(m);
    for (int k = 0; k < NCASES; k++) {
        optcase c = all_cases(k);
        cg_optim *o = make(&c, m);
        assert_non_null(o);
        assert_int_equal(cg_optim_step(o), CG_OK);
        assert_int_equal(cg_optim_steps(o), 1);
        for (int i = 0; i < cg_optim_nstate(o); i++)
            assert_int_equal(cg_numel(cg_optim_state(o, i, NULL)), 0);
        cg_optim_free(o);
    }
    cg_module_free(m);
}

/* Parameters keep their identity when their module goes into a container:
 * an optimizer made for it, or for the child, keeps stepping them. One whose
 * module gained a parameter refuses to step. */
static void test_optim_container_moves(void **state) {
    (void)state;
    cg_module *lin = model(CG_F64);
    cg_sgd_opts s = cg_sgd_defaults(0.1);
    cg_optim *o = cg_sgd_new(lin, &s);
    assert_non_null(o);
    cg_tensor *w = cg_module_param(lin, 0, NULL);
    cg_module *seq = cg_nn_sequential(1, &lin);
    assert_non_null(seq);
    assert_ptr_equal(cg_module_param(seq, 0, NULL), w);
    assert_int_equal(cg_fill_(cg_grad_of(w), 1.0), CG_OK);
    double before, after;
    assert_int_equal(cg_get(w, (const int64_t[]){0, 0}, &before), CG_OK);
    assert_int_equal(cg_optim_step(o), CG_OK);
    assert_int_equal(cg_get(w, (const int64_t[]){0, 0}, &after), CG_OK);
    assert_float_equal(after, before - 0.1, 1e-15);
    cg_optim_free(o);
    o = cg_sgd_new(seq, &s);
    assert_non_null(o);
    assert_non_null(cg_module_add_child(seq, NULL, model(CG_F64)));
    assert_int_equal(cg_optim_step(o), CG_ERR_STATE);
    assert_non_null(
        strstr(cg_last_error(), "cg_optim_step: the sgd optimizer's module changed"));
    cg_clear_error();
    cg_optim_free(o);
    cg_module_free(seq);
}

/* A graph recorded before a step cannot be differentiated after it, as in
 * PyTorch (the step is an in-place write of the parameters). */
static void test_optim_stale_graph_refused(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = model(CG_F64);
    cg_sgd_opts s = cg_sgd_defaults(0.1);
    cg_optim *o = cg_sgd_new(m, &s);
    cg_tensor *x = cg_ones(ctx, CG_F64, CG_SHAPE(4, 3));
    cg_tensor *y = cg_sum(ctx, cg_module_forward(ctx, m, x), NULL, 0, false);
    assert_non_null(y);
    put_grads(m, G[0]); /* a step without gradients updates nothing */
    assert_int_equal(cg_optim_step(o), CG_OK);
    assert_int_equal(cg_backward(y), CG_ERR_STATE);
    cg_optim_free(o);
    cg_module_free(m);
}

/* End to end: Adam fits y = 2 x0 - x1 + 0.5 with a Linear(2, 1). */
static void test_optim_trains_linear_regression(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng;
    cg_rng_seed(&rng, 3);
    cg_module *m = cg_nn_linear(&rng, CG_F64, 2, 1, true);
    cg_optim *o =
        cg_adam_new(m, &(cg_adam_opts){.lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8});
    double xs[16][2], ys[16];
    for (int i = 0; i < 16; i++) {
        xs[i][0] = cg_rng_uniform(&rng) * 2 - 1;
        xs[i][1] = cg_rng_uniform(&rng) * 2 - 1;
        ys[i] = 2 * xs[i][0] - xs[i][1] + 0.5;
    }
    double loss = INFINITY;
    for (int it = 0; it < 400; it++) {
        cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(16, 2), xs);
        cg_tensor *y = cg_from_array(ctx, CG_F64, CG_SHAPE(16, 1), ys);
        cg_tensor *d = cg_sub(ctx, cg_module_forward(ctx, m, x), y);
        cg_tensor *l = cg_mean(ctx, cg_square(ctx, d), NULL, 0, false);
        assert_non_null(l);
        loss = cg_item(l);
        cg_optim_zero_grad(o);
        assert_int_equal(cg_backward(l), CG_OK);
        assert_int_equal(cg_optim_step(o), CG_OK);
        cg_ctx_reset(ctx);
    }
    assert_true(loss < 1e-6);
    double p[3];
    params_of(m, p);
    assert_float_equal(p[0], 2, 1e-3);
    assert_float_equal(p[1], -1, 1e-3);
    assert_float_equal(p[2], 0.5, 1e-3);
    cg_optim_free(o);
    cg_module_free(m);
}

/* ---- parameter groups, plain lists, freezing ----------------------------------- */
/* Linear(3, 2): weight P0[0..6) and bias P0[6..8) as two tensors. */
static cg_tensor *weight_of(const cg_module *m) { return cg_module_find(m, "weight"); }
static cg_tensor *bias_of(const cg_module *m) { return cg_module_find(m, "bias"); }

/* SGD with weight decay on the weights only (lr 0.1, decay 0.1) and the
 * bias at the defaults (lr 0.5, no decay), by hand: p - lr (g + wd p). */
static void test_optim_groups_sgd_by_hand(void **state) {
    (void)state;
    cg_module *m = model(CG_F64);
    cg_tensor *w = weight_of(m), *b = bias_of(m);
    cg_sgd_opts dflt = cg_sgd_defaults(0.5), wopt = {.lr = 0.1, .weight_decay = 0.1};
    cg_param_group groups[2] = {{1, &w, &wopt}, {1, &b, NULL}};
    cg_optim *o = cg_sgd_new_groups(2, groups, &dflt);
    assert_non_null(o);
    assert_int_equal(cg_optim_ngroups(o), 2);
    assert_true(cg_optim_group_lr(o, 0) == 0.1 && cg_optim_group_lr(o, 1) == 0.5);
    assert_true(cg_optim_lr(o) == 0.1); /* group 0's */
    put_grads(m, G[0]);
    assert_int_equal(cg_optim_step(o), CG_OK);
    double p[N];
    params_of(m, p);
    for (int i = 0; i < 6; i++) assert_true(p[i] == P0[i] - 0.1 * (G[0][i] + 0.1 * P0[i]));
    for (int i = 6; i < N; i++) assert_true(p[i] == P0[i] - 0.5 * G[0][i]);
    cg_optim_free(o);
    cg_module_free(m);
}

/* AdamW with decay on the weights, none on the bias, the bias group first:
 * each group against the reference, the state in group order. */
static void test_optim_groups_adamw_reference(void **state) {
    (void)state;
    cg_module *m = model(CG_F64);
    cg_tensor *w = weight_of(m), *b = bias_of(m);
    cg_adam_opts dflt = cg_adamw_defaults(0.1), nodecay = dflt;
    nodecay.weight_decay = 0;
    nodecay.lr = 0.05;
    cg_param_group groups[2] = {{1, &b, &nodecay}, {1, &w, NULL}};
    cg_optim *o = cg_adamw_new_groups(2, groups, &dflt);
    assert_non_null(o);
    double p[N], got[N], st_m[N];
    ref_state st[N] = {{0}};
    memcpy(p, P0, sizeof p);
    for (int s = 0; s < NSTEPS; s++) {
        put_grads(m, G[s]);
        assert_int_equal(cg_optim_step(o), CG_OK);
        for (int i = 0; i < N; i++)
            ref_adam(i < 6 ? &dflt : &nodecay, true, s + 1, G[s][i], &p[i], &st[i]);
    }
    params_of(m, got);
    for (int i = 0; i < N; i++) assert_close(got[i], p[i], 1e-13);
    /* exp_avg: the bias (group 0) first, then the weight */
    assert_int_equal(cg_copy_to_array(cg_optim_state(o, 0, NULL), CG_F64, st_m), CG_OK);
    for (int i = 0; i < 2; i++) assert_close(st_m[i], st[6 + i].exp_avg, 1e-13);
    for (int i = 0; i < 6; i++) assert_close(st_m[2 + i], st[i].exp_avg, 1e-13);
    cg_optim_free(o);
    cg_module_free(m);
}

/* Every kind takes groups; per-group options decide which state exists and
 * Adagrad's sum starts at each group's initial value. */
static void test_optim_groups_every_kind(void **state) {
    (void)state;
    cg_module *m = model(CG_F64);
    cg_tensor *w = weight_of(m), *b = bias_of(m);
    cg_sgd_opts s0 = cg_sgd_defaults(0.1), s1 = {.lr = 0.1, .momentum = 0.9};
    cg_optim *o = cg_sgd_new_groups(2, (cg_param_group[]){{1, &w, NULL}, {1, &b, &s1}}, &s0);
    assert_int_equal(cg_optim_nstate(o), 1); /* momentum_buffer: group 1 needs it */
    cg_optim_free(o);
    cg_adam_opts a0 = cg_adam_defaults(0.1), a1 = a0;
    a1.amsgrad = true;
    o = cg_adam_new_groups(2, (cg_param_group[]){{1, &w, &a1}, {1, &b, NULL}}, &a0);
    assert_int_equal(cg_optim_nstate(o), 3);
    cg_optim_free(o);
    cg_rmsprop_opts r0 = cg_rmsprop_defaults(0.01), r1 = r0;
    r1.centered = true;
    o = cg_rmsprop_new_groups(2, (cg_param_group[]){{1, &w, NULL}, {1, &b, &r1}}, &r0);
    const char *name;
    assert_int_equal(cg_optim_nstate(o), 2);
    assert_non_null(cg_optim_state(o, 1, &name));
    assert_string_equal(name, "grad_avg");
    cg_optim_free(o);
    cg_adagrad_opts d0 = cg_adagrad_defaults(0.1), d1 = d0;
    d1.initial_accumulator_value = 0.25;
    o = cg_adagrad_new_groups(2, (cg_param_group[]){{1, &w, NULL}, {1, &b, &d1}}, &d0);
    double sum[N];
    assert_int_equal(cg_copy_to_array(cg_optim_state(o, 0, NULL), CG_F64, sum), CG_OK);
    for (int i = 0; i < N; i++) assert_true(sum[i] == (i < 6 ? 0 : 0.25));
    cg_optim_free(o);
    cg_module_free(m);
}

/* Three separate caller-owned leaves (not adjacent) in one group: each
 * parameter against the reference, gradients from a real backward. */
static void test_optim_plain_list(void **state) {
    cg_ctx *ctx = *state;
    for (cg_dtype dt = CG_F32; dt <= CG_F64; dt++) {
        const int sizes[3] = {3, 2, 3}, starts[3] = {0, 3, 5};
        cg_tensor *t[3];
        for (int k = 0; k < 3; k++) {
            int64_t n = sizes[k];
            t[k] = leaf(dt, 1, &n, P0 + starts[k]);
        }
        cg_adam_opts ao = adam_opts(0.1, 0.999, 0.1, false);
        cg_optim *o = cg_adam_new_groups(1, &(cg_param_group){3, t, NULL}, &ao);
        assert_non_null(o);
        double p[N], got[N];
        ref_state st[N] = {{0}};
        memcpy(p, P0, sizeof p);
        for (int s = 0; s < NSTEPS; s++) {
            cg_optim_zero_grad(o);
            cg_tensor *loss = NULL;
            for (int k = 0; k < 3; k++) { /* d loss / d t[k] = G[s] slice */
                int64_t n = sizes[k];
                cg_tensor *c = cg_from_array(ctx, CG_F64, 1, &n, G[s] + starts[k]);
                cg_tensor *term =
                    cg_sum(ctx, cg_mul(ctx, t[k], cg_cast(ctx, c, dt)), NULL, 0, false);
                loss = loss ? cg_add(ctx, loss, term) : term;
            }
            assert_int_equal(cg_backward(loss), CG_OK);
            assert_int_equal(cg_optim_step(o), CG_OK);
            cg_ctx_reset(ctx);
            for (int i = 0; i < N; i++) ref_adam(&ao, false, s + 1, G[s][i], &p[i], &st[i]);
        }
        for (int k = 0; k < 3; k++)
            assert_int_equal(cg_copy_to_array(t[k], CG_F64, got + starts[k]), CG_OK);
        for (int i = 0; i < N; i++) assert_close(got[i], p[i], dt == CG_F32 ? 1e-6 : 1e-13);
        cg_optim_free(o);
        for (int k = 0; k < 3; k++) cg_tensor_free(t[k]);
    }
}

/* One training step of an MLP 4-8-3 on a fixed batch (MSE). */
static void mlp_step(cg_ctx *ctx, cg_module *m, cg_optim *o, uint64_t seed) {
    cg_rng rng = seeded(seed);
    mse_train_step(ctx, m, o, &rng, 5);
}

static cg_module *mlp(void) {
    cg_rng rng = seeded(21);
    cg_module *m = cg_nn_mlp(&rng, CG_F32, 3, (const int64_t[]){4, 8, 3}, CG_ACT_TANH);
    assert_non_null(m);
    return m;
}

static void *copy_of(const cg_tensor *t) {
    size_t bytes = (size_t)cg_numel(t) * cg_dtype_size(cg_dtype_of(t));
    void *c = malloc(bytes);
    assert_non_null(c);
    memcpy(c, cg_data(t), bytes);
    return c;
}

/* The reproduction: a frozen weight stays bitwise unchanged under
 * AdamW (whose weight decay would shrink it), frozen from the start or
 * after a few steps (when its momentum would keep moving it); the others
 * train, and its state stays as it was. */
static void test_optim_frozen_weight_unchanged(void **state) {
    cg_ctx *ctx = *state;
    for (int warm = 0; warm <= 3; warm += 3) {
        cg_module *m = mlp();
        cg_adam_opts ao = cg_adamw_defaults(0.01);
        cg_optim *o = cg_adamw_new(m, &ao);
        cg_tensor *w0 = cg_module_find(m, "0.weight"), *w2 = cg_module_find(m, "2.weight");
        for (int s = 0; s < warm; s++) mlp_step(ctx, m, o, (uint64_t)s);
        cg_tensor *b2 = cg_module_find(m, "2.bias"); /* frozen after a trained one */
        assert_int_equal(cg_set_requires_grad(w0, false), CG_OK);
        assert_int_equal(cg_set_requires_grad(b2, false), CG_OK);
        void *before = copy_of(w0), *other = copy_of(w2), *bias = copy_of(b2);
        void *state0 = copy_of(cg_optim_state(o, 0, NULL));
        for (int s = 0; s < 3; s++) mlp_step(ctx, m, o, (uint64_t)(10 + s));
        assert_memory_equal(cg_data(w0), before, sizeof(float) * 32);
        assert_memory_not_equal(cg_data(w2), other, sizeof(float) * 24);
        assert_memory_equal(cg_data(b2), bias, sizeof(float) * 3);
        /* exp_avg of 0.weight (its first 32 elements) is as it was */
        assert_memory_equal(cg_data(cg_optim_state(o, 0, NULL)), state0, sizeof(float) * 32);
        /* unfrozen, it trains again */
        assert_int_equal(cg_set_requires_grad(w0, true), CG_OK);
        mlp_step(ctx, m, o, 20);
        assert_memory_not_equal(cg_data(w0), before, sizeof(float) * 32);
        free(before);
        free(other);
        free(bias);
        free(state0);
        cg_optim_free(o);
        cg_module_free(m);
    }
}

/* A parameter the loss does not use gets no new gradient: it keeps its
 * value and its Adam state stays zero, also with weight decay; when it gets
 * one (step 3), its own step count is 1 (PyTorch's per-parameter step). */
static void test_optim_no_gradient_skipped(void **state) {
    cg_ctx *ctx = *state;
    int64_t n = 4;
    cg_tensor *a = seeded_leaf(1, CG_F64, 1, &n, 1), *b = seeded_leaf(2, CG_F64, 1, &n, 1);
    cg_tensor *list[2] = {a, b};
    /* b has a gradient tensor, which the optimizer's zero_grad zeroes below */
    assert_int_equal(cg_backward(cg_sum(ctx, cg_square(ctx, b), NULL, 0, false)), CG_OK);
    cg_ctx_reset(ctx);
    cg_adam_opts ao = adam_opts(0.1, 0.999, 0.1, false);
    cg_optim *o = cg_adam_new_groups(1, &(cg_param_group){2, list, NULL}, &ao);
    double b0[4], bref[4], got[4], ms[8];
    assert_int_equal(cg_copy_to_array(b, CG_F64, b0), CG_OK);
    for (int s = 0; s < 2; s++) {
        cg_optim_zero_grad(o);
        assert_int_equal(cg_backward(cg_sum(ctx, cg_square(ctx, a), NULL, 0, false)), CG_OK);
        assert_int_equal(cg_optim_step(o), CG_OK);
        cg_ctx_reset(ctx);
    }
    assert_int_equal(cg_copy_to_array(b, CG_F64, got), CG_OK);
    assert_memory_equal(got, b0, sizeof got);
    assert_int_equal(cg_copy_to_array(cg_optim_state(o, 0, NULL), CG_F64, ms), CG_OK);
    for (int i = 4; i < 8; i++) assert_true(ms[i] == 0);
    /* step 3: b's gradient is 2 b; its bias correction uses t = 1 */
    cg_optim_zero_grad(o);
    assert_int_equal(cg_backward(cg_sum(ctx, cg_square(ctx, b), NULL, 0, false)), CG_OK);
    assert_int_equal(cg_optim_step(o), CG_OK);
    ref_state st[4] = {{0}};
    memcpy(bref, b0, sizeof bref);
    for (int i = 0; i < 4; i++) ref_adam(&ao, false, 1, 2 * b0[i], &bref[i], &st[i]);
    assert_int_equal(cg_copy_to_array(b, CG_F64, got), CG_OK);
    for (int i = 0; i < 4; i++) assert_close(got[i], bref[i], 1e-14);
    assert_int_equal(cg_optim_steps(o), 3);
    cg_optim_free(o);
    cg_tensor_free(a);
    cg_tensor_free(b);
}

/* requires_grad false at construction is allowed (frozen until set), and
 * SGD's momentum starts at the parameter's own first step. */
static void test_optim_frozen_at_construction(void **state) {
    (void)state;
    cg_module *m = model(CG_F64);
    cg_tensor *w = weight_of(m);
    assert_int_equal(cg_set_requires_grad(w, false), CG_OK);
    cg_sgd_opts so = {.lr = 0.1, .momentum = 0.9, .dampening = 0.5};
    cg_optim *o = cg_sgd_new(m, &so);
    assert_non_null(o);
    put_grads(m, G[0]);
    assert_int_equal(cg_optim_step(o), CG_OK);
    double p[N];
    params_of(m, p);
    for (int i = 0; i < 6; i++) assert_true(p[i] == P0[i]);
    for (int i = 6; i < N; i++) assert_true(p[i] == P0[i] - 0.1 * G[0][i]);
    assert_int_equal(cg_set_requires_grad(w, true), CG_OK);
    put_grads(m, G[1]);
    assert_int_equal(cg_optim_step(o), CG_OK);
    params_of(m, p);
    /* the weight's first step: buffer = g, no dampening; the bias's second
     * (one run with the weight, but its own step count) */
    for (int i = 0; i < 6; i++) assert_true(p[i] == P0[i] - 0.1 * G[1][i]);
    for (int i = 6; i < N; i++) {
        double buf = 0.9 * G[0][i] + 0.5 * G[1][i];
        assert_close(p[i], P0[i] - 0.1 * G[0][i] - 0.1 * buf, 1e-15);
    }
    cg_optim_free(o);
    cg_module_free(m);
}

/* A step without new gradients changes nothing (zero_grad is no gradient). */
static void test_optim_zeroed_grads_are_no_gradient(void **state) {
    (void)state;
    cg_module *m = model(CG_F64);
    cg_adam_opts ao = cg_adamw_defaults(0.1);
    cg_optim *o = cg_adamw_new(m, &ao);
    put_grads(m, G[0]);
    assert_int_equal(cg_optim_step(o), CG_OK);
    double p1[N], p2[N];
    params_of(m, p1);
    assert_int_equal(cg_optim_step(o), CG_OK); /* the same gradient again: skipped */
    cg_optim_zero_grad(o);
    assert_int_equal(cg_optim_step(o), CG_OK);
    params_of(m, p2);
    assert_memory_equal(p1, p2, sizeof p1);
    assert_int_equal(cg_optim_steps(o), 3);
    cg_optim_free(o);
    cg_module_free(m);
}

static void test_optim_set_group_lr(void **state) {
    (void)state;
    cg_module *m = model(CG_F64);
    cg_tensor *w = weight_of(m), *b = bias_of(m);
    cg_sgd_opts dflt = cg_sgd_defaults(0.1), bo = cg_sgd_defaults(0.2);
    cg_optim *o = cg_sgd_new_groups(2, (cg_param_group[]){{1, &w, NULL}, {1, &b, &bo}}, &dflt);
    assert_int_equal(cg_optim_set_group_lr(o, 1, 0.5), CG_OK);
    assert_true(cg_optim_group_lr(o, 0) == 0.1 && cg_optim_group_lr(o, 1) == 0.5);
    put_grads(m, G[0]);
    assert_int_equal(cg_optim_step(o), CG_OK);
    double p[N];
    params_of(m, p);
    for (int i = 0; i < N; i++) assert_true(p[i] == P0[i] - (i < 6 ? 0.1 : 0.5) * G[0][i]);
    assert_int_equal(cg_optim_set_lr(o, 0.25), CG_OK); /* every group */
    assert_true(cg_optim_group_lr(o, 0) == 0.25 && cg_optim_group_lr(o, 1) == 0.25);
    /* errors leave the lrs alone */
    assert_int_equal(cg_optim_set_group_lr(o, 2, 0.1), CG_ERR_INDEX);
    assert_error(CG_ERR_INDEX, "cg_optim_set_group_lr: group 2 not in [0, 2)");
    assert_int_equal(cg_optim_set_group_lr(o, -1, 0.1), CG_ERR_INDEX);
    assert_error(CG_ERR_INDEX, "group -1");
    assert_int_equal(cg_optim_set_group_lr(o, 0, NAN), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_optim_set_group_lr: lr nan must be finite and >= 0 (kept "
                             "0.25)");
    assert_int_equal(cg_optim_set_lr(o, -1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_optim_set_lr: lr -1");
    assert_true(cg_optim_group_lr(o, 0) == 0.25 && cg_optim_group_lr(o, 1) == 0.25);
    assert_true(isnan(cg_optim_group_lr(o, 2)));
    assert_error(CG_ERR_INDEX, "cg_optim_group_lr");
    assert_int_equal(cg_optim_set_group_lr(NULL, 0, 0.1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_optim_set_group_lr: optimizer is NULL");
    assert_int_equal(cg_optim_set_lr(NULL, 0.1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_optim_set_lr: optimizer is NULL");
    assert_true(isnan(cg_optim_group_lr(NULL, 0)));
    assert_error(CG_ERR_ARG, "cg_optim_group_lr: optimizer is NULL");
    assert_int_equal(cg_optim_ngroups(NULL), 0);
    cg_optim_free(o);
    cg_module_free(m);
}

/* ---- every construction error: status, message, nothing leaked ------------------ */
static void expect_null(cg_optim *o, cg_status st, const char *msg) {
    assert_null(o);
    assert_error(st, msg);
}

static void test_optim_group_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = model(CG_F64);
    cg_tensor *w = weight_of(m), *b = bias_of(m);
    cg_sgd_opts d = cg_sgd_defaults(0.1), bad = cg_sgd_defaults(-1);
    cg_tensor *wb[2] = {w, b}, *ww[2] = {w, w}, *wnull[2] = {w, NULL};
    expect_null(cg_sgd_new_groups(1, NULL, &d), CG_ERR_ARG,
                "cg_sgd_new_groups: groups are NULL");
    expect_null(cg_sgd_new_groups(0, &(cg_param_group){2, wb, NULL}, &d), CG_ERR_ARG,
                "cg_sgd_new_groups: ngroups < 1");
    expect_null(cg_adam_new_groups(1, &(cg_param_group){2, wb, NULL}, NULL), CG_ERR_ARG,
                "cg_adam_new_groups: defaults are NULL");
    expect_null(cg_sgd_new_groups(1, &(cg_param_group){-1, wb, NULL}, &d), CG_ERR_ARG,
                "cg_sgd_new_groups: group 0 has -1 parameters");
    expect_null(cg_sgd_new_groups(1, &(cg_param_group){2, NULL, NULL}, &d), CG_ERR_ARG,
                "group 0 has 2 parameters at NULL");
    expect_null(cg_sgd_new_groups(1, &(cg_param_group){2, wnull, NULL}, &d), CG_ERR_ARG,
                "cg_sgd_new_groups: group 0 parameter 1 is NULL");
    /* a parameter twice: within a group and across groups (PyTorch's ValueError) */
    expect_null(cg_sgd_new_groups(1, &(cg_param_group){2, ww, NULL}, &d), CG_ERR_ARG,
                "group 0 parameter 1 is also parameter 0 of group 0");
    expect_null(cg_rmsprop_new_groups(2, (cg_param_group[]){{2, wb, NULL}, {1, &b, NULL}},
                                      &(cg_rmsprop_opts){.lr = 0.1, .alpha = 0.9}),
                CG_ERR_ARG,
                "cg_rmsprop_new_groups: group 1 parameter 0 is also parameter 1 "
                "of group 0");
    /* bad options name their group, or the defaults */
    expect_null(cg_sgd_new_groups(2, (cg_param_group[]){{1, &w, NULL}, {1, &b, &bad}}, &d),
                CG_ERR_ARG, "cg_sgd_new_groups: group 1: lr -1 must be finite and >= 0");
    expect_null(cg_sgd_new_groups(1, &(cg_param_group){2, wb, &d}, &bad), CG_ERR_ARG,
                "cg_sgd_new_groups: defaults: lr -1");
    cg_adagrad_opts ad = cg_adagrad_defaults(0.1), adbad = ad;
    adbad.eps = -1;
    expect_null(
        cg_adagrad_new_groups(2, (cg_param_group[]){{1, &w, NULL}, {1, &b, &adbad}}, &ad),
        CG_ERR_ARG, "cg_adagrad_new_groups: group 1: eps");
    /* not a float leaf, mixed dtypes, strided */
    cg_tensor *sq = cg_square(ctx, w);
    expect_null(
        cg_adamw_new_groups(1, &(cg_param_group){1, &sq, NULL}, &(cg_adam_opts){.lr = 0.1}),
        CG_ERR_ARG,
        "cg_adamw_new_groups: group 0 parameter 0 is not a leaf (made by "
        "cg_square)");
    cg_tensor *idx = cg_zeros(NULL, CG_I64, CG_SHAPE(2));
    expect_null(cg_sgd_new_groups(1, &(cg_param_group){1, &idx, NULL}, &d), CG_ERR_DTYPE,
                "group 0 parameter 0 is i64 (need f32 or f64)");
    cg_tensor *f32 = cg_zeros(NULL, CG_F32, CG_SHAPE(2));
    expect_null(cg_sgd_new_groups(2, (cg_param_group[]){{1, &w, NULL}, {1, &f32, NULL}}, &d),
                CG_ERR_DTYPE,
                "group 1 parameter 0 is f32 but the first parameter is f64 (one "
                "dtype per optimizer)");
    cg_tensor *base = cg_zeros(NULL, CG_F64, CG_SHAPE(3, 2));
    cg_tensor *tr = cg_transpose(NULL, base, 0, 1);
    expect_null(cg_sgd_new_groups(1, &(cg_param_group){1, &tr, NULL}, &d), CG_ERR_ARG,
                "group 0 parameter 0 is not contiguous");
    /* an empty group is fine */
    cg_optim *o = cg_sgd_new_groups(2, (cg_param_group[]){{0, NULL, NULL}, {2, wb, NULL}}, &d);
    assert_non_null(o);
    assert_int_equal(cg_optim_ngroups(o), 2);
    cg_optim_free(o);
    cg_tensor_free(idx);
    cg_tensor_free(f32);
    cg_tensor_free(base);
    cg_tensor_free(tr);
    cg_module_free(m);
}

/* A strided gradient (cg_set_grad) is refused at the step, before any update. */
static void test_optim_strided_grad_refused(void **state) {
    (void)state;
    int64_t n = 6;
    cg_tensor *a = seeded_leaf(1, CG_F64, 1, &n, 1);
    cg_tensor *w = seeded_leaf(2, CG_F64, CG_SHAPE(2, 3), 1);
    cg_tensor *base = cg_ones(NULL, CG_F64, CG_SHAPE(3, 2));
    assert_int_equal(cg_set_grad(w, cg_transpose(NULL, base, 0, 1)), CG_OK);
    cg_tensor_free(base);
    assert_int_equal(cg_set_grad(a, cg_ones(NULL, CG_F64, 1, &n)), CG_OK);
    cg_tensor *list[2] = {a, w};
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    cg_optim *o = cg_sgd_new_groups(1, &(cg_param_group){2, list, NULL}, &so);
    assert_int_equal(cg_fill_(cg_grad_of(a), 1), CG_OK);
    assert_int_equal(cg_fill_(cg_grad_of(w), 1), CG_OK);
    void *a0 = copy_of(a);
    assert_int_equal(cg_optim_step(o), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "cg_optim_step: the gradient of parameter 1 (group 0) is not "
                               "contiguous");
    assert_memory_equal(cg_data(a), a0, sizeof(double) * 6);
    cg_optim_zero_grad(o); /* zeroes the strided one too */
    double g[6];
    assert_int_equal(cg_copy_to_array(cg_grad_of(w), CG_F64, g), CG_OK);
    for (int i = 0; i < 6; i++) assert_true(g[i] == 0);
    free(a0);
    cg_optim_free(o);
    cg_tensor_free(a);
    cg_tensor_free(w);
}

/* ---- checkpoint meta ----------------------------------------------------------------- */
/* Adam over Linear(3, 2) in two groups (weight: defaults; bias: lr 0.2,
 * amsgrad, no decay), after two steps with the bias frozen for the first. */
static cg_optim *meta_optim(cg_module *m, double lr, bool step) {
    cg_tensor *w = weight_of(m), *b = bias_of(m);
    cg_adam_opts dflt = adam_opts(lr, 0.99, 0.1, true), bo = adam_opts(0.2, 0.9, 0, true);
    cg_optim *o = cg_adam_new_groups(2, (cg_param_group[]){{1, &w, NULL}, {1, &b, &bo}}, &dflt);
    assert_non_null(o);
    if (!step) return o;
    assert_int_equal(cg_set_requires_grad(b, false), CG_OK);
    put_grads(m, G[0]);
    assert_int_equal(cg_optim_step(o), CG_OK);
    assert_int_equal(cg_set_requires_grad(b, true), CG_OK);
    put_grads(m, G[1]);
    assert_int_equal(cg_optim_step(o), CG_OK);
    assert_int_equal(cg_optim_set_group_lr(o, 0, 1.0 / 3), CG_OK); /* not a short decimal */
    return o;
}

static const char *const META_WANT =
    "kind=adam\nsteps=2\ngroups=2\n"
    "group=0\nparams=1\nnumel=6\nlr=0.33333333333333331\nbeta1=0.90000000000000002\n"
    "beta2=0.98999999999999999\neps=1e-08\nweight_decay=0.10000000000000001\namsgrad=1\n"
    "group=1\nparams=1\nnumel=2\nlr=0.20000000000000001\nbeta1=0.90000000000000002\n"
    "beta2=0.90000000000000002\neps=1e-08\nweight_decay=0\namsgrad=1\n"
    "step=2\nstep=1\n";

/* The text holds every option, the current lrs and each parameter's step;
 * restoring it into a fresh optimizer (validate, then apply) gives the same
 * text and, with the state copied, the same next step. */
static void test_optim_meta_round_trip(void **state) {
    (void)state;
    cg_module *ma = model(CG_F64), *mb = model(CG_F64);
    cg_optim *a = meta_optim(ma, 0.1, true), *b = meta_optim(mb, 0.05, false);
    char *text = cgi_optim_meta(a), *fresh = cgi_optim_meta(b);
    assert_non_null(text);
    assert_string_equal(text, META_WANT);
    assert_int_equal(cgi_optim_restore_meta(b, text, false, "cg_load"), CG_OK);
    char *unchanged = cgi_optim_meta(b);
    assert_string_equal(unchanged, fresh); /* validation changes nothing */
    assert_int_equal(cgi_optim_restore_meta(b, text, true, "cg_load"), CG_OK);
    char *again = cgi_optim_meta(b);
    assert_string_equal(again, text);
    assert_true(cg_optim_group_lr(b, 0) == 1.0 / 3);
    assert_int_equal(cg_optim_steps(b), 2);
    for (int i = 0; i < cg_optim_nstate(a); i++)
        assert_int_equal(cg_copy_(cg_optim_state(b, i, NULL), cg_optim_state(a, i, NULL)),
                         CG_OK);
    assert_int_equal(cg_copy_(cg_module_flat_params(mb), cg_module_flat_params(ma)), CG_OK);
    put_grads(ma, G[2]);
    put_grads(mb, G[2]);
    assert_int_equal(cg_optim_step(a), CG_OK);
    assert_int_equal(cg_optim_step(b), CG_OK);
    assert_memory_equal(cg_data(cg_module_flat_params(ma)), cg_data(cg_module_flat_params(mb)),
                        N * sizeof(double));
    free(text);
    free(fresh);
    free(unchanged);
    free(again);
    cg_optim_free(a);
    cg_optim_free(b);
    cg_module_free(ma);
    cg_module_free(mb);
}

/* META_WANT with its first `from` occurrence replaced by `to`. */
static char *edited(const char *from, const char *to) {
    const char *at = strstr(META_WANT, from);
    assert_non_null(at);
    size_t n = strlen(META_WANT) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%.*s%s%s", (int)(at - META_WANT), META_WANT, to, at + strlen(from));
    return s;
}

static void expect_meta_error(cg_optim *o, const char *from, const char *to, cg_status st,
                              const char *msg) {
    char *before = cgi_optim_meta(o), *text = edited(from, to);
    assert_int_equal(cgi_optim_restore_meta(o, text, true, "cg_load"), st);
    assert_error(st, msg);
    char *after = cgi_optim_meta(o);
    assert_string_equal(after, before); /* nothing applied */
    free(before);
    free(text);
    free(after);
}

static void test_optim_meta_errors(void **state) {
    (void)state;
    cg_module *m = model(CG_F64);
    cg_optim *o = meta_optim(m, 0.05, false);
    expect_meta_error(o, "kind=adam", "kind=sgd", CG_ERR_ARG,
                      "cg_load: the file holds sgd state but the optimizer is adam");
    expect_meta_error(o, "kind=adam", "kinds=adam", CG_ERR_IO,
                      "cg_load: optimizer metadata line 1: want kind=<value>, found "
                      "\"kinds=adam\"");
    expect_meta_error(o, "steps=2", "steps=-2", CG_ERR_IO, "line 2: not a count in range");
    expect_meta_error(o, "steps=2", "steps=99999999999999999999", CG_ERR_IO, "line 2");
    expect_meta_error(o, "steps=2", "steps=", CG_ERR_IO, "want steps=<value>");
    expect_meta_error(o, "groups=2", "groups=3", CG_ERR_ARG,
                      "cg_load: optimizer metadata line 3: groups 3 but the optimizer has 2");
    expect_meta_error(o, "group=1", "group=0", CG_ERR_ARG, "line 13: group 0 but");
    expect_meta_error(o, "params=1\nnumel=2", "params=2\nnumel=2", CG_ERR_ARG,
                      "line 14: params 2 but the optimizer has 1");
    expect_meta_error(o, "numel=6", "numel=7", CG_ERR_ARG, "line 6: numel 7 but");
    expect_meta_error(o, "lr=0.33333333333333331", "lr=0.3x", CG_ERR_IO,
                      "line 7: not a number");
    expect_meta_error(o, "lr=0.33333333333333331", "lr= 0.3", CG_ERR_IO, "not a number");
    expect_meta_error(o, "amsgrad=1", "amsgrad=yes", CG_ERR_IO, "line 12: want 0 or 1");
    expect_meta_error(o, "beta1=0.90000000000000002", "beta2=0.9", CG_ERR_IO,
                      "want beta1=<value>");
    expect_meta_error(o, "weight_decay=0\n", "weight_decay=-1\n", CG_ERR_ARG,
                      "cg_load: optimizer metadata group 1: weight_decay -1 must be finite");
    expect_meta_error(o, "lr=0.33333333333333331", "lr=nan", CG_ERR_ARG, "group 0: lr nan");
    expect_meta_error(o, "step=2\nstep=1\n", "step=2\n", CG_ERR_IO,
                      "line 23: want step=<value>, found \"\"");
    expect_meta_error(o, "step=1\n", "step=1\nstep=1\n", CG_ERR_IO,
                      "line 24: text after the last parameter's step");
    expect_meta_error(o, "step=1\n", "step=one\n", CG_ERR_IO, "line 23: not a count");
    assert_int_equal(cgi_optim_restore_meta(o, NULL, false, "cg_load"), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_load: optimizer or its metadata is NULL");
    assert_int_equal(cgi_optim_restore_meta(o, "", false, "cg_load"), CG_ERR_IO);
    assert_error(CG_ERR_IO, "line 1: want kind=<value>");
    cg_optim_free(o);
    /* options that need a state buffer this optimizer lacks */
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    o = cg_sgd_new(m, &so);
    char *text = cgi_optim_meta(o), *more = malloc(strlen(text) + 8);
    const char *at = strstr(text, "momentum=0");
    snprintf(more, strlen(text) + 8, "%.*smomentum=0.9%s", (int)(at - text), text,
             at + strlen("momentum=0"));
    assert_int_equal(cgi_optim_restore_meta(o, more, false, "cg_load"), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_load: optimizer metadata group 0: its options need state "
                             "momentum_buffer, which this optimizer does not keep");
    free(text);
    free(more);
    cg_optim_free(o);
    cg_module_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optim_sgd_plain),
        cmocka_unit_test(test_optim_sgd_momentum),
        cmocka_unit_test(test_optim_sgd_dampening),
        cmocka_unit_test(test_optim_sgd_nesterov),
        cmocka_unit_test(test_optim_sgd_weight_decay),
        cmocka_unit_test(test_optim_adam_plain),
        cmocka_unit_test(test_optim_adam_weight_decay),
        cmocka_unit_test(test_optim_adam_amsgrad),
        cmocka_unit_test(test_optim_adamw),
        cmocka_unit_test(test_optim_rmsprop_plain),
        cmocka_unit_test(test_optim_rmsprop_momentum),
        cmocka_unit_test(test_optim_rmsprop_centered),
        cmocka_unit_test(test_optim_rmsprop_weight_decay),
        cmocka_unit_test(test_optim_adagrad_plain),
        cmocka_unit_test(test_optim_adagrad_lr_decay),
        cmocka_unit_test(test_optim_adagrad_initial_accumulator),
        cmocka_unit_test(test_optim_adagrad_weight_decay),
        cmocka_unit_test(test_optim_f32_matches_f64),
        cmocka_unit_test(test_optim_state_names),
        cmocka_unit_test(test_optim_names_and_defaults),
        cmocka_unit_test(test_optim_resume_matches_uninterrupted),
        cmocka_unit_test(test_optim_thread_count_invariant),
        cmocka_unit_test(test_optim_steps_counter),
        cmocka_unit_test(test_optim_zero_grad),
        cmocka_unit_test(test_optim_set_lr),
        cmocka_unit_test(test_optim_bad_options),
        cmocka_unit_test(test_optim_null_args),
        cmocka_unit_test(test_optim_no_parameters),
        cmocka_unit_test(test_optim_container_moves),
        cmocka_unit_test_setup_teardown(test_optim_stale_graph_refused, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_optim_trains_linear_regression, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test(test_optim_groups_sgd_by_hand),
        cmocka_unit_test(test_optim_groups_adamw_reference),
        cmocka_unit_test(test_optim_groups_every_kind),
        cmocka_unit_test_setup_teardown(test_optim_plain_list, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_optim_frozen_weight_unchanged, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_optim_no_gradient_skipped, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test(test_optim_frozen_at_construction),
        cmocka_unit_test(test_optim_zeroed_grads_are_no_gradient),
        cmocka_unit_test(test_optim_set_group_lr),
        cmocka_unit_test_setup_teardown(test_optim_group_errors, ctx_setup, ctx_teardown),
        cmocka_unit_test(test_optim_strided_grad_refused),
        cmocka_unit_test(test_optim_meta_round_trip),
        cmocka_unit_test(test_optim_meta_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
