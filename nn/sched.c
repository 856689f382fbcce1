/* Learning-rate schedules: PyTorch's StepLR, MultiStepLR, ExponentialLR,
 * CosineAnnealingLR, LinearLR, OneCycleLR, LambdaLR, MultiplicativeLR,
 * ReduceLROnPlateau, SequentialLR and ChainedScheduler.
 *
 * A schedule keeps, per parameter group g of its optimizer, a base lr
 * (PyTorch's base_lrs: group g's lr when the schedule was made) and the lr it
 * last set (get_last_lr), and the epoch count e (last_epoch: 0 when made, +1
 * per step). All but the plateau schedule are closed forms of (e, base_g), so
 * each step writes every group's lr and a hand-set lr is replaced at the next
 * step. A schedule sets the lrs when made too, to their values at e = 0 (base
 * for most; start_factor * base for LinearLR, max_lr / div_factor for
 * OneCycleLR), as PyTorch does.
 *
 * ReduceLROnPlateau is the recursion PyTorch runs (mode min, threshold_mode
 * rel, cooldown 0) on each group's current lr and steps only with a metric;
 * the others ignore a metric. MultiplicativeLR is a recursion too: each
 * step multiplies the groups' current lrs by factor(e).
 *
 * SequentialLR and ChainedScheduler own their children and run torch 1.13's
 * classes. SequentialLR: the children share the first child's bases
 * (PyTorch's initial_lr); child k takes over at milestone k-1, where it
 * restarts at its epoch 0 (PyTorch's step(0)). ChainedScheduler steps every
 * child, each from the lrs the one before left, with PyTorch's recursive
 * get_lr (ratios of consecutive closed forms), so factors multiply; LambdaLR
 * and OneCycleLR have no recursion and overwrite, as in PyTorch.
 *
 * A step that fails (a NULL schedule, a plateau without a metric, OneCycleLR
 * past total_steps, a bad factor, an lr that would overflow, in any child)
 * returns the error and changes nothing: no epoch, no lr. Checkpoint state
 * is at the end of the file. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double PI = 3.14159265358979323846; /* Python's math.pi */

typedef enum kind {
    STEP,
    MULTISTEP,
    EXPONENTIAL,
    COSINE,
    LINEAR,
    ONECYCLE,
    PLATEAU,
    LAMBDA,
    MULTIPLICATIVE,
    SEQUENTIAL,
    CHAINED
} kind;

/* Each kind's name in the checkpoint text: PyTorch's class name, lower case. */
static const char *const KIND_NAME[] = {
    "steplr",           "multisteplr",  "exponentiallr",     "cosineannealinglr",
    "linearlr",         "onecyclelr",   "reducelronplateau", "lambdalr",
    "multiplicativelr", "sequentiallr", "chainedscheduler"};

struct cg_sched {
    kind kind;
    cg_optim *o; /* borrowed */
    int ngroups;
    /* [ngroups] each, one allocation (base owns it): the base lrs, the lrs
     * last set, the lrs of a step before it commits, and the groups' lrs
     * before the step (where PyTorch's recursive forms start). */
    double *base, *lr, *tmp, *cur;
    bool recursive; /* a ChainedScheduler's child: PyTorch's get_lr recursion */
    int64_t epoch;
    double gamma;    /* StepLR, MultiStepLR, ExponentialLR */
    int step_size;   /* StepLR */
    int n;           /* MultiStepLR, SequentialLR: the number of milestones */
    int *milestones; /* its own copy */
    int t_max;       /* CosineAnnealingLR; total_iters / total_steps for the next two */
    double eta_min;  /* CosineAnnealingLR */
    double start;    /* LinearLR's start_factor; OneCycleLR's initial lr */
    double max_lr, min_lr, pct_start; /* OneCycleLR; min_lr for plateau too */
    double factor, threshold, best;   /* ReduceLROnPlateau */
    int patience, bad;
    double (*lambda)(int64_t epoch, void *user); /* LambdaLR, MultiplicativeLR */
    void *user;
    int nchild; /* SequentialLR (n + 1), ChainedScheduler: children, owned */
    cg_sched **child;
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

/* PyTorch's bisect_right(milestones, e) for sorted milestones; MultiStepLR's
 * count of milestones <= e, where repeats count twice. */
static int passed_milestones(const cg_sched *s, int64_t e) {
    int k = 0;
    for (int i = 0; i < s->n; i++) k += s->milestones[i] <= e;
    return k;
}

/* The lr at epoch e >= 0 of a group whose base lr is base. */
static double closed_form(const cg_sched *s, int64_t e, double base) {
    switch (s->kind) {
    case STEP: return base * pow(s->gamma, (double)(e / s->step_size));
    case MULTISTEP: return base * pow(s->gamma, passed_milestones(s, e));
    case EXPONENTIAL: return base * pow(s->gamma, (double)e);
    case COSINE: /* eta_min + (base - eta_min) (1 + cos(pi e / T_max)) / 2 */
        return s->eta_min + (base - s->eta_min) * (1 + cos(PI * (double)e / s->t_max)) / 2;
    case LINEAR: /* base (start + (1 - start) min(e, total) / total) */
        return base *
               (s->start + (1 - s->start) * (double)(e < s->t_max ? e : s->t_max) / s->t_max);
    case ONECYCLE: return onecycle_lr(s, e);
    default: break;
    }
    return base;
}

/* torch 1.13's get_lr (the recursive form) at epoch e >= 0 from cur, the
 * group's lr before the step; its closed form for the kinds without one. */
static double recursive_lr(const cg_sched *s, int64_t e, double cur, double base) {
    int64_t t = s->t_max;
    switch (s->kind) {
    case STEP: return e > 0 && e % s->step_size == 0 ? cur * s->gamma : cur;
    case MULTISTEP: { /* gamma to the count of milestones equal to e */
        int k = 0;
        for (int i = 0; i < s->n; i++) k += s->milestones[i] == e;
        return cur * pow(s->gamma, k);
    }
    case EXPONENTIAL: return e > 0 ? cur * s->gamma : cur;
    case LINEAR:
        return e == 0  ? cur * s->start
               : e > t ? cur
                       : cur * (1 + (1 - s->start) /
                                        (t * s->start + (double)(e - 1) * (1 - s->start)));
    case COSINE:
        return e == 0 ? cur
               : (e - 1 - t) % (2 * t) == 0
                   ? cur + (base - s->eta_min) * (1 - cos(PI / t)) / 2
                   : (1 + cos(PI * (double)e / t)) / (1 + cos(PI * (double)(e - 1) / t)) *
                             (cur - s->eta_min) +
                         s->eta_min;
    default: return closed_form(s, e, base);
    }
}

static bool finite_nonneg(double v) { return v >= 0 && isfinite(v); }

/* LambdaLR's and MultiplicativeLR's factor at epoch e into *f (1 where it
 * is not used); CG_ERR_ARG unless it is finite and >= 0. */
static cg_status factor_at(const cg_sched *s, int64_t e, double *f, const char *fn) {
    *f = 1;
    bool used = s->kind == LAMBDA || (s->kind == MULTIPLICATIVE && e > 0);
    if (used && !finite_nonneg(*f = s->lambda(e, s->user)))
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: %s's factor at epoch %" PRId64 " is %g; it "
                         "must be finite and >= 0 (lr kept)",
                         fn, s->kind == LAMBDA ? "LambdaLR" : "MultiplicativeLR", e, *f);
    return CG_OK;
}

/* s's lrs at epoch e into s->tmp, from cur[ngroups] (the groups' lrs now);
 * nothing else changes. CG_ERR_STATE past OneCycleLR's total_steps (PyTorch
 * raises) or when an lr overflows (ExponentialLR, gamma > 1, after many
 * steps); CG_ERR_ARG for a bad factor. */
static cg_status lrs_at(cg_sched *s, int64_t e, const double *cur, const char *fn) {
    double f;
    if (s->kind == ONECYCLE && e > s->t_max)
        return cgi_error(NULL, CG_ERR_STATE,
                         "%s: OneCycleLR stepped %" PRId64 " times, past "
                         "its total_steps %d (lr kept)",
                         fn, e, s->t_max);
    cg_status st = factor_at(s, e, &f, fn);
    if (st != CG_OK) return st;
    for (int g = 0; g < s->ngroups; g++) {
        double b = s->base[g];
        s->tmp[g] = s->kind == LAMBDA           ? b * f
                    : s->kind == MULTIPLICATIVE ? cur[g] * f
                    : s->recursive              ? recursive_lr(s, e, cur[g], b)
                                                : closed_form(s, e, b);
        if (!finite_nonneg(s->tmp[g]))
            return cgi_error(NULL, CG_ERR_STATE,
                             "%s: %s's lr of group %d at epoch %" PRId64
                             " would be %g (lr kept)",
                             fn, KIND_NAME[s->kind], g, e, s->tmp[g]);
    }
    return CG_OK;
}

/* Records lr[ngroups] as s's lrs and writes them into the optimizer. They are
 * finite, >= 0 and in range: all that cg_optim_set_group_lr checks. */
static void set_lrs(cg_sched *s, const double *lr) {
    for (int g = 0; g < s->ngroups; g++) {
        s->lr[g] = lr[g];
        (void)cg_optim_set_group_lr(s->o, g, lr[g]);
    }
}

/* The groups' lrs now into s->cur. */
static void read_lrs_now(cg_sched *s) {
    for (int g = 0; g < s->ngroups; g++) s->cur[g] = cg_optim_group_lr(s->o, g);
}

/* Moves a schedule that is neither plateau nor a parent to epoch e; nothing
 * changes on failure. */
static cg_status closed_step(cg_sched *s, int64_t e, const char *fn) {
    read_lrs_now(s);
    cg_status st = lrs_at(s, e, s->cur, fn);
    if (st != CG_OK) return st;
    s->epoch = e;
    set_lrs(s, s->tmp);
    return CG_OK;
}

/* ---- construction ------------------------------------------------------------------ */
/* A copy of t on o with every group's base and lr its lr now; NULL with the
 * error recorded on failure (t's arrays are the caller's then). */
static cg_sched *sched_alloc(const char *fn, cg_optim *o, cg_sched t) {
    int ng = cg_optim_ngroups(o);
    if (ng < 1) {
        cgi_error(NULL, CG_ERR_STATE, "%s: the optimizer has no parameter groups", fn);
        return NULL;
    }
    cg_sched *s = malloc(sizeof *s);
    double *v = s ? malloc(sizeof(double) * 4 * (size_t)ng) : NULL;
    if (!v) {
        free(s);
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        return NULL;
    }
    *s = t;
    s->o = o;
    s->ngroups = ng;
    s->base = v, s->lr = v + ng, s->tmp = v + 2 * ng, s->cur = v + 3 * ng;
    for (int g = 0; g < ng; g++) s->base[g] = s->lr[g] = cg_optim_group_lr(o, g);
    return s;
}

/* A schedule for o from the template t (kind and options), its lrs set to
 * their values at e = 0 (the plateau schedule leaves them); records the error
 * and returns NULL when !ok (bad options, `why`). Takes t.milestones. */
static cg_sched *sched_new(const char *fn, cg_optim *o, bool ok, const char *why, cg_sched t) {
    cg_sched *s = o && ok ? sched_alloc(fn, o, t) : NULL;
    if (!s) {
        free(t.milestones);
        if (!o || !ok)
            cgi_error(NULL, CG_ERR_ARG, "%s: %s", fn, !o ? "optimizer is NULL" : why);
        return NULL;
    }
    if (s->kind != PLATEAU && closed_step(s, 0, fn) != CG_OK) {
        cg_sched_free(s);
        return NULL;
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
cg_onecycle_opts cg_onecycle_defaults(double max_lr, int total_steps) {
    return (cg_onecycle_opts){max_lr, total_steps, 0.3, 25, 1e4};
}

cg_sched *cg_onecyclelr_new(cg_optim *o, const cg_onecycle_opts *opts) {
    cg_onecycle_opts c = opts ? *opts : (cg_onecycle_opts){-1, 0, 0, 0, 0};
    bool ok = finite_nonneg(c.max_lr) && c.total_steps >= 1 && c.pct_start >= 0 &&
              c.pct_start <= 1 && c.div_factor > 0 && isfinite(c.div_factor) &&
              c.final_div_factor > 0 && isfinite(c.final_div_factor);
    double initial = ok ? c.max_lr / c.div_factor : 0;
    return sched_new("cg_onecyclelr_new", o, ok,
                     opts ? "need max_lr >= 0, total_steps >= 1, pct_start in [0, 1] and "
                            "finite div factors > 0"
                          : "options are NULL (cg_onecycle_defaults(max_lr, total_steps))",
                     (cg_sched){.kind = ONECYCLE,
                                .max_lr = c.max_lr,
                                .start = initial,
                                .min_lr = ok ? initial / c.final_div_factor : 0,
                                .t_max = c.total_steps,
                                .pct_start = c.pct_start});
}

cg_sched *cg_lambdalr_new(cg_optim *o, double (*factor)(int64_t epoch, void *user),
                          void *user) {
    return sched_new("cg_lambdalr_new", o, factor != NULL, "factor is NULL",
                     (cg_sched){.kind = LAMBDA, .lambda = factor, .user = user});
}

cg_sched *cg_multiplicativelr_new(cg_optim *o, double (*factor)(int64_t epoch, void *user),
                                  void *user) {
    return sched_new("cg_multiplicativelr_new", o, factor != NULL, "factor is NULL",
                     (cg_sched){.kind = MULTIPLICATIVE, .lambda = factor, .user = user});
}

cg_plateau_opts cg_plateau_defaults(void) { return (cg_plateau_opts){0.1, 10, 1e-4, 0}; }

cg_sched *cg_plateau_new(cg_optim *o, const cg_plateau_opts *opts) {
    cg_plateau_opts c = opts ? *opts : cg_plateau_defaults();
    bool ok = c.factor >= 0 && c.factor < 1 && c.patience >= 0 && c.threshold >= 0 &&
              c.threshold < 1 && finite_nonneg(c.min_lr);
    return sched_new("cg_plateau_new", o, ok,
                     "need factor and threshold in [0, 1), patience >= 0 and a finite "
                     "min_lr >= 0",
                     (cg_sched){.kind = PLATEAU,
                                .factor = c.factor,
                                .patience = c.patience,
                                .threshold = c.threshold,
                                .min_lr = c.min_lr,
                                .best = INFINITY});
}

/* ---- SequentialLR and ChainedScheduler ------------------------------------------- */
/* The children's checks: n >= 1 distinct schedules on o (not NULL), none a
 * plateau or a parent (PyTorch can neither restart those at a milestone nor
 * chain them); false with the error recorded. */
static bool kids_ok(const char *fn, cg_optim *o, int n, cg_sched *const *c) {
    if (n < 1 || !c)
        return cgi_error(NULL, CG_ERR_ARG, "%s: %s", fn,
                         n < 1 ? "need n >= 1 schedules" : "schedules is NULL"),
               false;
    for (int i = 0; i < n; i++) {
        const char *why = !c[i]          ? "is NULL"
                          : c[i]->o != o ? "is on another optimizer"
                          : c[i]->kind == PLATEAU || c[i]->kind >= SEQUENTIAL
                              ? "is a ReduceLROnPlateau, a SequentialLR or a ChainedScheduler, "
                                "which cannot be a child"
                              : NULL;
        for (int j = 0; !why && j < i; j++)
            if (c[j] == c[i]) why = "appears twice";
        if (why) return cgi_error(NULL, CG_ERR_ARG, "%s: schedule %d %s", fn, i, why), false;
    }
    return true;
}

/* cg_sequentiallr_new's checks; false with the error recorded. */
static bool seq_ok(cg_optim *o, int n, cg_sched *const *c, const int *ms) {
    const char *fn = "cg_sequentiallr_new";
    if (!o) return cgi_error(NULL, CG_ERR_ARG, "%s: optimizer is NULL", fn), false;
    if (!kids_ok(fn, o, n, c)) return false;
    if (n > 1 && !ms) return cgi_error(NULL, CG_ERR_ARG, "%s: milestones is NULL", fn), false;
    for (int i = 0; i + 1 < n; i++)
        if (ms[i] < 1 || (i > 0 && ms[i] <= ms[i - 1]))
            return cgi_error(NULL, CG_ERR_ARG,
                             "%s: milestones must be >= 1 and strictly "
                             "increasing; milestones[%d] is %d",
                             fn, i, ms[i]),
                   false;
    return true;
}

/* Frees the n schedules of c, each once. */
static void free_distinct(int n, cg_sched *const *c) {
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++) seen |= c[j] == c[i];
        if (!seen) cg_sched_free(c[i]);
    }
}

/* A parent of kind k owning the n checked children (a SequentialLR: and a
 * copy of the n-1 milestones ms); on failure NULL, the error recorded and
 * the children freed. */
static cg_sched *parent_new(const char *fn, cg_optim *o, kind k, int n, cg_sched *const *c,
                            const int *ms) {
    cg_sched **kids = malloc(sizeof *kids * (size_t)n);
    int *copy = malloc(sizeof *copy * (size_t)n); /* n - 1 used */
    cg_sched *s = kids && copy ? sched_alloc(fn, o, (cg_sched){.kind = k}) : NULL;
    if (!s) {
        if (!kids || !copy) cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        free(kids);
        free(copy);
        free_distinct(n, c);
        return NULL;
    }
    memcpy(kids, c, sizeof *kids * (size_t)n);
    if (ms && n > 1) memcpy(copy, ms, sizeof *copy * (size_t)(n - 1));
    s->child = kids, s->nchild = n, s->milestones = copy, s->n = k == SEQUENTIAL ? n - 1 : 0;
    return s;
}

/* torch 1.13's SequentialLR.__init__: the groups' lrs back to initial_lr
 * (here the first child's bases, which every child takes), the children's
 * steps at construction undone (epoch -1), and the first child's done again. */
static cg_status seq_start(cg_sched *s, const char *fn) {
    cg_sched *first = s->child[0];
    size_t size = sizeof(double) * (size_t)s->ngroups;
    for (int i = 1; i < s->nchild; i++) {
        memcpy(s->child[i]->base, first->base, size);
        s->child[i]->epoch = -1;
    }
    memcpy(s->base, first->base, size);
    for (int g = 0; g < s->ngroups; g++) (void)cg_optim_set_group_lr(s->o, g, first->base[g]);
    cg_status st = closed_step(first, 0, fn);
    if (st != CG_OK) return st;
    memcpy(s->lr, first->lr, size);
    s->epoch = 0;
    return CG_OK;
}

cg_sched *cg_sequentiallr_new(cg_optim *o, int n, cg_sched *const *scheds,
                              const int *milestones) {
    const char *fn = "cg_sequentiallr_new";
    if (!seq_ok(o, n, scheds, milestones)) {
        if (scheds) free_distinct(n, scheds);
        return NULL;
    }
    cg_sched *s = parent_new(fn, o, SEQUENTIAL, n, scheds, milestones);
    if (s && seq_start(s, fn) != CG_OK) {
        cg_sched_free(s);
        return NULL;
    }
    return s;
}

/* torch 1.13's ChainedScheduler: nothing happens when it is made (its
 * children have set the lrs); each child steps from the lrs the one before
 * it left, with PyTorch's recursive forms. */
cg_sched *cg_chainedscheduler_new(int n, cg_sched *const *scheds) {
    const char *fn = "cg_chainedscheduler_new";
    cg_optim *o = n >= 1 && scheds && scheds[0] ? scheds[0]->o : NULL;
    if (!kids_ok(fn, o, n, scheds)) {
        if (scheds) free_distinct(n, scheds);
        return NULL;
    }
    cg_sched *s = parent_new(fn, o, CHAINED, n, scheds, NULL);
    for (int i = 0; s && i < n; i++) s->child[i]->recursive = true;
    return s;
}

/* torch 1.13's SequentialLR.step: the child for epoch e is the one after the
 * last milestone <= e; at its milestone it restarts at its epoch 0. */
static cg_status seq_step(cg_sched *s, const char *fn) {
    int64_t e = s->epoch + 1;
    int k = passed_milestones(s, e);
    cg_sched *c = s->child[k];
    bool restart = k > 0 && s->milestones[k - 1] == e;
    cg_status st = closed_step(c, restart ? 0 : c->epoch + 1, fn);
    if (st != CG_OK) return st;
    s->epoch = e;
    memcpy(s->lr, c->lr, sizeof(double) * (size_t)s->ngroups);
    return CG_OK;
}

/* Every child's lrs first, each from the one before's (s->cur), so a child
 * that fails leaves all of them as they were; then all commit. */
static cg_status chain_step(cg_sched *s, const char *fn) {
    size_t size = sizeof(double) * (size_t)s->ngroups;
    read_lrs_now(s);
    for (int i = 0; i < s->nchild; i++) {
        cg_sched *c = s->child[i];
        cg_status st = lrs_at(c, c->epoch + 1, s->cur, fn);
        if (st != CG_OK) return st;
        memcpy(s->cur, c->tmp, size);
    }
    for (int i = 0; i < s->nchild; i++) {
        s->child[i]->epoch++;
        memcpy(s->child[i]->lr, s->child[i]->tmp, size);
    }
    s->epoch++;
    set_lrs(s, s->cur);
    return CG_OK;
}

/* ---- stepping ------------------------------------------------------------------------- */
/* PyTorch's ReduceLROnPlateau.step: better means below best (1 - threshold);
 * after more than `patience` epochs that are not, each group's lr becomes
 * max(lr factor, min_lr), applied only when that moves it by more than 1e-8. */
static cg_status plateau_step(cg_sched *s, double metric) {
    s->epoch++;
    if (metric < s->best * (1 - s->threshold)) {
        s->best = metric;
        s->bad = 0;
    } else {
        s->bad++;
    }
    bool reduce = s->bad > s->patience;
    for (int g = 0; g < s->ngroups; g++) {
        double old = cg_optim_group_lr(s->o, g), lr = fmax(old * s->factor, s->min_lr);
        s->tmp[g] = reduce && old - lr > 1e-8 ? lr : old;
    }
    if (reduce) s->bad = 0;
    set_lrs(s, s->tmp);
    return CG_OK;
}

/* The optimizer still has the groups s was made for. */
static cg_status groups_match(const cg_sched *s, const char *fn) {
    int ng = cg_optim_ngroups(s->o);
    if (ng == s->ngroups) return CG_OK;
    return cgi_error(NULL, CG_ERR_STATE,
                     "%s: the optimizer has %d parameter groups, the "
                     "schedule was made for %d",
                     fn, ng, s->ngroups);
}

static cg_status sched_step(cg_sched *s, bool has_metric, double metric, const char *fn) {
    if (!s) return cgi_error(NULL, CG_ERR_ARG, "%s: schedule is NULL", fn);
    cg_status gs = groups_match(s, fn);
    if (gs != CG_OK) return gs;
    switch (s->kind) {
    case PLATEAU:
        if (!has_metric)
            return cgi_error(NULL, CG_ERR_ARG,
                             "%s: ReduceLROnPlateau needs a metric "
                             "(cg_sched_step_metric); lr kept",
                             fn);
        return plateau_step(s, metric);
    case SEQUENTIAL: return seq_step(s, fn);
    case CHAINED: return chain_step(s, fn);
    default: return closed_step(s, s->epoch + 1, fn);
    }
}

cg_status cg_sched_step(cg_sched *s) { return sched_step(s, false, 0, "cg_sched_step"); }

cg_status cg_sched_step_metric(cg_sched *s, double metric) {
    return sched_step(s, true, metric, "cg_sched_step_metric");
}

static double group_lr(const cg_sched *s, int g, const char *fn) {
    if (!s) {
        cgi_error(NULL, CG_ERR_ARG, "%s: schedule is NULL", fn);
        return NAN;
    }
    if (g < 0 || g >= s->ngroups) {
        cgi_error(NULL, CG_ERR_INDEX, "%s: group %d out of range [0, %d)", fn, g, s->ngroups);
        return NAN;
    }
    return s->lr[g];
}

double cg_sched_lr(const cg_sched *s) { return group_lr(s, 0, "cg_sched_lr"); }

double cg_sched_group_lr(const cg_sched *s, int group) {
    return group_lr(s, group, "cg_sched_group_lr");
}

void cg_sched_free(cg_sched *s) {
    if (!s) return;
    for (int i = 0; i < s->nchild; i++) cg_sched_free(s->child[i]);
    free(s->child);
    free(s->milestones);
    free(s->base);
    free(s);
}

/* ---- state for checkpoints ------------------------------------------------------------
 * One line per schedule, its children's lines after it (depth first):
 *   <kind> epoch <e> groups <g> base <g doubles> lr <g doubles>
 *          [best <double> bad <int>]   (reducelronplateau)
 *          [children <n>]              (sequentiallr, chainedscheduler)
 * Doubles are written with %a, so they read back bit for bit. The options
 * (gamma, T_max, ...) are not stored: they come from the code that makes the
 * schedule, as LambdaLR's function does. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool ok;
} sbuf;

static void CGI_PRINTF(2, 3) put(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = b->ok ? vsnprintf(NULL, 0, fmt, ap) : -1;
    va_end(ap);
    size_t need = b->len + (size_t)k + 1;
    if (k >= 0 && need > b->cap) {
        size_t cap = need > 2 * b->cap ? need + 256 : 2 * b->cap;
        char *p = realloc(b->p, cap);
        if (p)
            b->p = p, b->cap = cap;
        else
            k = -1;
    }
    if (k < 0) {
        b->ok = false;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)k;
}

static void put_sched(sbuf *b, const cg_sched *s) {
    put(b, "%s epoch %" PRId64 " groups %d base", KIND_NAME[s->kind], s->epoch, s->ngroups);
    for (int g = 0; g < s->ngroups; g++) put(b, " %a", s->base[g]);
    put(b, " lr");
    for (int g = 0; g < s->ngroups; g++) put(b, " %a", s->lr[g]);
    if (s->kind == PLATEAU) put(b, " best %a bad %d", s->best, s->bad);
    if (s->kind >= SEQUENTIAL) put(b, " children %d", s->nchild);
    put(b, "\n");
    for (int i = 0; i < s->nchild; i++) put_sched(b, s->child[i]);
}

char *cgi_sched_meta(const cg_sched *s) {
    if (!s) {
        cgi_error(NULL, CG_ERR_ARG, "cg_save: schedule is NULL");
        return NULL;
    }
    sbuf b = {.ok = true};
    put_sched(&b, s);
    if (!b.ok) {
        free(b.p);
        cgi_error(NULL, CG_ERR_NOMEM, "cg_save: out of memory writing the schedule's state");
        return NULL;
    }
    return b.p;
}

/* A reader over the text; with apply false it writes only scratch (tmp). */
typedef struct rd {
    const char *p, *fn;
    bool apply;
    char tok[64];
} rd;

/* Records "fn: schedule state: ..." with status st; returns false. */
static bool CGI_PRINTF(3, 4) fail(const rd *r, cg_status st, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cgi_error(NULL, st, "%s: schedule state: %s", r->fn, msg);
    return false;
}

/* The next whitespace-separated token into r->tok; false at the end of the
 * text or for a token too long to be one of ours. */
static bool token(rd *r) {
    while (isspace((unsigned char)*r->p)) r->p++;
    size_t k = 0;
    while (r->p[k] && !isspace((unsigned char)r->p[k])) k++;
    if (k == 0 || k >= sizeof r->tok) return false;
    memcpy(r->tok, r->p, k);
    r->tok[k] = 0;
    r->p += k;
    return true;
}

static bool word(rd *r, const char *w) { return token(r) && strcmp(r->tok, w) == 0; }

/* A decimal integer in [lo, hi]. */
static bool integer(rd *r, int64_t lo, int64_t hi, int64_t *out) {
    if (!token(r)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(r->tok, &end, 10);
    if (*end || end == r->tok || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool real(rd *r, double *out) {
    if (!token(r)) return false;
    char *end;
    *out = strtod(r->tok, &end);
    return !*end && end != r->tok;
}

/* "<name> <g doubles>", each finite and >= 0, into dst when applying. */
static bool read_lrs(rd *r, cg_sched *s, const char *name, double *dst) {
    if (!word(r, name)) return fail(r, CG_ERR_IO, "missing '%s'", name);
    for (int g = 0; g < s->ngroups; g++)
        if (!real(r, &s->tmp[g]) || !finite_nonneg(s->tmp[g]))
            return fail(r, CG_ERR_IO, "%s of group %d is not a finite value >= 0", name, g);
    if (r->apply) memcpy(dst, s->tmp, sizeof(double) * (size_t)s->ngroups);
    return true;
}

static bool read_plateau(rd *r, cg_sched *s) {
    double best;
    int64_t bad;
    if (!word(r, "best") || !real(r, &best) || isnan(best))
        return fail(r, CG_ERR_IO, "bad or missing 'best'");
    if (!word(r, "bad") || !integer(r, 0, s->patience, &bad))
        return fail(r, CG_ERR_IO, "bad or missing 'bad' (need 0 .. patience %d)", s->patience);
    if (r->apply) s->best = best, s->bad = (int)bad;
    return true;
}

static bool read_sched(rd *r, cg_sched *s, int64_t min_epoch);

static bool read_children(rd *r, cg_sched *s) {
    int64_t n;
    if (!word(r, "children") || !integer(r, 0, INT_MAX, &n))
        return fail(r, CG_ERR_IO, "bad or missing 'children'");
    if (n != s->nchild)
        return fail(r, CG_ERR_ARG, "%" PRId64 " children, the schedule has %d", n, s->nchild);
    for (int i = 0; i < s->nchild; i++)
        if (!read_sched(r, s->child[i], i && s->kind == SEQUENTIAL ? -1 : 0)) return false;
    return true;
}

static bool known_kind(const char *name) {
    for (size_t i = 0; i < sizeof KIND_NAME / sizeof KIND_NAME[0]; i++)
        if (strcmp(name, KIND_NAME[i]) == 0) return true;
    return false;
}

/* One schedule's line and its children's; the epoch at least min_epoch (a
 * SequentialLR child that has not started is at -1). */
static bool read_sched(rd *r, cg_sched *s, int64_t min_epoch) {
    const char *name = KIND_NAME[s->kind];
    int64_t e, ng;
    if (!token(r)) return fail(r, CG_ERR_IO, "missing the %s's line", name);
    if (strcmp(r->tok, name) != 0)
        return fail(r, known_kind(r->tok) ? CG_ERR_ARG : CG_ERR_IO,
                    "'%s' where the %s's line should start", r->tok, name);
    int64_t max_epoch = s->kind == ONECYCLE ? s->t_max : INT64_MAX - 1;
    if (!word(r, "epoch") || !integer(r, min_epoch, max_epoch, &e))
        return fail(r, CG_ERR_IO, "%s: bad or missing epoch (need %" PRId64 " .. %" PRId64 ")",
                    name, min_epoch, max_epoch);
    if (!word(r, "groups") || !integer(r, 1, INT_MAX, &ng))
        return fail(r, CG_ERR_IO, "%s: bad or missing group count", name);
    if (ng != s->ngroups)
        return fail(r, CG_ERR_ARG, "%s: %" PRId64 " parameter groups, the schedule has %d",
                    name, ng, s->ngroups);
    if (!read_lrs(r, s, "base", s->base) || !read_lrs(r, s, "lr", s->lr)) return false;
    if (s->kind == PLATEAU && !read_plateau(r, s)) return false;
    if (s->kind >= SEQUENTIAL && !read_children(r, s)) return false;
    if (r->apply) s->epoch = e;
    return true;
}

static bool read_all(rd *r, cg_sched *s) {
    if (!read_sched(r, s, 0)) return false;
    while (isspace((unsigned char)*r->p)) r->p++;
    return !*r->p || fail(r, CG_ERR_IO, "trailing text after the schedules");
}

/* Validates the whole text first, so applying it cannot fail half way. */
cg_status cgi_sched_restore_meta(cg_sched *s, const char *text, bool apply, const char *fn) {
    if (!s || !text)
        return cgi_error(NULL, CG_ERR_ARG, "%s: %s is NULL", fn,
                         s ? "schedule state" : "schedule");
    cg_status gs = groups_match(s, fn);
    if (gs != CG_OK) return gs;
    rd r = {.p = text, .fn = fn};
    if (!read_all(&r, s)) return cg_last_status();
    if (!apply) return CG_OK;
    r = (rd){.p = text, .fn = fn, .apply = true};
    read_all(&r, s);
    set_lrs(s, s->lr);
    return CG_OK;
}
