/* Learning-rate schedules: PyTorch's StepLR, MultiStepLR, ExponentialLR,
 * CosineAnnealingLR, LinearLR, OneCycleLR and ReduceLROnPlateau.
 *
 * All but the plateau schedule are closed forms of the epoch count e (PyTorch's
 * last_epoch: 0 when made, +1 per cg_sched_step) and base, the optimizer's lr
 * when the schedule was made (PyTorch's initial_lr). Each step writes the
 * optimizer's lr, so a schedule owns it: an lr set by hand is replaced at the
 * next step, and two schedules on one optimizer do not chain. A schedule sets
 * the lr when made too, to its value at e = 0 (base for most; start_factor *
 * base for LinearLR, max_lr / div_factor for OneCycleLR), as PyTorch does.
 *
 * ReduceLROnPlateau is the recursion PyTorch runs (mode min, threshold_mode
 * rel, cooldown 0) and steps only with a metric: cg_sched_step on it records
 * CG_ERR_ARG and returns the lr unchanged. The others ignore a metric. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

static const double PI = 3.14159265358979323846; /* Python's math.pi */

typedef enum kind { STEP, MULTISTEP, EXPONENTIAL, COSINE, LINEAR, ONECYCLE, PLATEAU } kind;

struct cg_sched {
    kind kind;
    cg_optim *o; /* borrowed */
    double base, lr;
    int64_t epoch;
    double gamma;    /* StepLR, MultiStepLR, ExponentialLR */
    int step_size;   /* StepLR */
    int n;           /* MultiStepLR */
    int *milestones; /* MultiStepLR: its own copy */
    int t_max;       /* CosineAnnealingLR; total_iters / total_steps for the next two */
    double eta_min;  /* CosineAnnealingLR */
    double start;    /* LinearLR's start_factor; OneCycleLR's initial lr */
    double max_lr, min_lr, pct_start; /* OneCycleLR; min_lr for plateau too */
    double factor, threshold, best; /* ReduceLROnPlateau */
    int patience, bad;
};

/* ---- closed forms ---------------------------------------------------------------- */
/* PyTorch's _annealing_cos: from a (pct 0) to b (pct 1) along half a cosine. */
static double anneal_cos(double a, double b, double pct) {
    return b + (a - b) / 2 * (cos(PI * pct) + 1);
}

/* OneCycleLR's two phases (three_phase false): the warm-up ends at step
 * pct_start * total - 1 at max_lr, the anneal at total - 1 at min_lr. A phase
 * of zero length (where PyTorch divides by zero) counts as finished. */
static double onecycle_lr(const cg_sched *s, int64_t e) {
    double up_end = s->pct_start * s->t_max - 1, x = (double)e;
    bool warm = x <= up_end;
    double lo = warm ? 0 : up_end, hi = warm ? up_end : s->t_max - 1;
    double pct = hi > lo ? (x - lo) / (hi - lo) : 1;
    return warm ? anneal_cos(s->start, s->max_lr, pct) : anneal_cos(s->max_lr, s->min_lr, pct);
}

static int passed_milestones(const cg_sched *s, int64_t e) {
    int k = 0;
    for (int i = 0; i < s->n; i++) k += s->milestones[i] <= e; /* repeats count twice */
    return k;
}

/* The lr at epoch e. */
static double closed_form(const cg_sched *s, int64_t e) {
    switch (s->kind) {
    case STEP: return s->base * pow(s->gamma, (double)(e / s->step_size));
    case MULTISTEP: return s->base * pow(s->gamma, passed_milestones(s, e));
    case EXPONENTIAL: return s->base * pow(s->gamma, (double)e);
    case COSINE: /* eta_min + (base - eta_min) (1 + cos(pi e / T_max)) / 2 */
        return s->eta_min +
               (s->base - s->eta_min) * (1 + cos(PI * (double)e / s->t_max)) / 2;
    case LINEAR: /* base (start + (1 - start) min(e, total) / total) */
        return s->base * (s->start + (1 - s->start) * (double)(e < s->t_max ? e : s->t_max) /
                                         s->t_max);
    case ONECYCLE: return onecycle_lr(s, e);
    case PLATEAU: break;
    }
    return s->lr;
}

/* ---- construction ------------------------------------------------------------------ */
static bool finite_nonneg(double v) { return v >= 0 && isfinite(v); }

/* A schedule for o from the template t (kind and options), its lr set to
 * the value at e = 0 (the plateau schedule leaves it); records the error and
 * returns NULL when !ok (bad options, `why`). Takes t.milestones. */
static cg_sched *sched_new(const char *fn, cg_optim *o, bool ok, const char *why,
                           cg_sched t) {
    cg_sched *s = o && ok ? malloc(sizeof *s) : NULL;
    if (!s) {
        free(t.milestones);
        cgi_error(NULL, o && ok ? CG_ERR_NOMEM : CG_ERR_ARG, "%s: %s", fn,
                  !o ? "optimizer is NULL" : !ok ? why : "out of memory");
        return NULL;
    }
    *s = t;
    s->o = o;
    s->base = s->lr = cg_optim_lr(o);
    if (s->kind != PLATEAU) {
        s->lr = closed_form(s, 0);
        cg_optim_set_lr(o, s->lr);
    }
    return s;
}

cg_sched *cg_steplr_new(cg_optim *o, int step_size, double gamma) {
    return sched_new("cg_steplr_new", o, step_size >= 1 && finite_nonneg(gamma),
                     "need step_size >= 1 and a finite gamma >= 0",
                     (cg_sched){.kind = STEP, .step_size = step_size, .gamma = gamma});
}

cg_sched *cg_multisteplr_new(cg_optim *o, int n, const int *milestones, double gamma) {
    bool ok = n >= 0 && (n == 0 || milestones) && finite_nonneg(gamma);
    int *copy = ok ? malloc(sizeof(int) * (size_t)(n ? n : 1)) : NULL;
    if (ok && !copy) {
        cgi_error(NULL, CG_ERR_NOMEM, "cg_multisteplr_new: out of memory");
        return NULL;
    }
    for (int i = 0; ok && i < n; i++) copy[i] = milestones[i];
    return sched_new("cg_multisteplr_new", o, ok,
                     "need n >= 0 milestones (not NULL) and a finite gamma >= 0",
                     (cg_sched){.kind = MULTISTEP, .n = n, .milestones = copy, .gamma = gamma});
}

cg_sched *cg_exponentiallr_new(cg_optim *o, double gamma) {
    return sched_new("cg_exponentiallr_new", o, finite_nonneg(gamma),
                     "need a finite gamma >= 0",
                     (cg_sched){.kind = EXPONENTIAL, .gamma = gamma});
}

cg_sched *cg_cosinelr_new(cg_optim *o, int t_max, double eta_min) {
    return sched_new("cg_cosinelr_new", o, t_max >= 1 && finite_nonneg(eta_min),
                     "need t_max >= 1 and a finite eta_min >= 0",
                     (cg_sched){.kind = COSINE, .t_max = t_max, .eta_min = eta_min});
}

cg_sched *cg_warmuplr_new(cg_optim *o, double start_factor, int total_steps) {
    return sched_new("cg_warmuplr_new", o,
                     start_factor > 0 && start_factor <= 1 && total_steps >= 1,
                     "need start_factor in (0, 1] and total_steps >= 1",
                     (cg_sched){.kind = LINEAR, .start = start_factor, .t_max = total_steps});
}

/* Learning rate only: PyTorch's cycle_momentum has no counterpart here. */
cg_sched *cg_onecyclelr_new(cg_optim *o, double max_lr, int total_steps, double pct_start,
                            double div_factor, double final_div_factor) {
    bool ok = finite_nonneg(max_lr) && total_steps >= 1 && pct_start >= 0 && pct_start <= 1 &&
              div_factor > 0 && isfinite(div_factor) && final_div_factor > 0 &&
              isfinite(final_div_factor);
    double initial = ok ? max_lr / div_factor : 0;
    return sched_new("cg_onecyclelr_new", o, ok,
                     "need max_lr >= 0, total_steps >= 1, pct_start in [0, 1] and finite "
                     "div factors > 0",
                     (cg_sched){.kind = ONECYCLE, .max_lr = max_lr, .start = initial,
                                .min_lr = ok ? initial / final_div_factor : 0,
                                .t_max = total_steps, .pct_start = pct_start});
}

cg_sched *cg_plateau_new(cg_optim *o, double factor, int patience, double threshold,
                         double min_lr) {
    bool ok = factor >= 0 && factor < 1 && patience >= 0 && threshold >= 0 && threshold < 1 &&
              finite_nonneg(min_lr);
    return sched_new("cg_plateau_new", o, ok,
                     "need factor and threshold in [0, 1), patience >= 0 and a finite "
                     "min_lr >= 0",
                     (cg_sched){.kind = PLATEAU, .factor = factor, .patience = patience,
                                .threshold = threshold, .min_lr = min_lr, .best = INFINITY});
}

/* ---- stepping ------------------------------------------------------------------------- */
/* PyTorch's ReduceLROnPlateau.step: better means below best (1 - threshold);
 * after more than `patience` epochs that are not, lr = max(lr factor, min_lr),
 * applied only when it moves the lr by more than 1e-8. */
static double plateau_step(cg_sched *s, double metric) {
    s->epoch++;
    if (metric < s->best * (1 - s->threshold)) {
        s->best = metric;
        s->bad = 0;
    } else {
        s->bad++;
    }
    if (s->bad > s->patience) {
        double old = cg_optim_lr(s->o), lr = fmax(old * s->factor, s->min_lr);
        if (old - lr > 1e-8) cg_optim_set_lr(s->o, lr);
        s->bad = 0;
    }
    return s->lr = cg_optim_lr(s->o);
}

/* OneCycleLR refuses to go past total_steps (PyTorch raises ValueError). */
static double closed_step(cg_sched *s) {
    if (s->kind == ONECYCLE && s->epoch + 1 > s->t_max) {
        cgi_error(NULL, CG_ERR_STATE, "cg_sched_step: OneCycleLR stepped %lld times, past "
                  "its total_steps %d", (long long)s->epoch + 1, s->t_max);
        return s->lr;
    }
    s->lr = closed_form(s, ++s->epoch);
    cg_optim_set_lr(s->o, s->lr);
    return s->lr;
}

double cg_sched_step(cg_sched *s) {
    if (!s) {
        cgi_error(NULL, CG_ERR_ARG, "cg_sched_step: schedule is NULL");
        return NAN;
    }
    if (s->kind == PLATEAU) {
        cgi_error(NULL, CG_ERR_ARG, "cg_sched_step: ReduceLROnPlateau needs a metric "
                  "(cg_sched_step_metric)");
        return s->lr;
    }
    return closed_step(s);
}

double cg_sched_step_metric(cg_sched *s, double metric) {
    if (!s) {
        cgi_error(NULL, CG_ERR_ARG, "cg_sched_step_metric: schedule is NULL");
        return NAN;
    }
    return s->kind == PLATEAU ? plateau_step(s, metric) : closed_step(s);
}

double cg_sched_lr(const cg_sched *s) { return s ? s->lr : NAN; }

void cg_sched_free(cg_sched *s) {
    if (!s) return;
    free(s->milestones);
    free(s);
}

/* Stubs until schedule state is saved in checkpoints. */
char *cgi_sched_meta(const cg_sched *s) {
    (void)s;
    char *t = malloc(1);
    if (t) *t = 0;
    return t;
}
cg_status cgi_sched_restore_meta(cg_sched *s, const char *text, bool apply, const char *fn) {
    (void)s, (void)text, (void)apply, (void)fn;
    return CG_OK;
}
