/* Optimizers: PyTorch's SGD, Adam, AdamW, RMSprop and Adagrad over parameter
 * groups, following the update rules in torch.optim's documentation step for
 * step.
 *
 * An optimizer holds its parameters in group order, then parameter order,
 * and its state (exp_avg, ...) in flat buffers over all of them in that
 * order. A module keeps all its parameters in one flat buffer and all their
 * gradients in another, so consecutive parameters are usually adjacent in
 * memory: each step updates every maximal run of parameters adjacent in data,
 * gradient and state, of one group and one step count, with one elementwise
 * loop, found anew at each step without allocating. Per-step numbers (bias
 * corrections, decayed learning rates) are computed in double, as PyTorch
 * does in Python, and rounded to the buffer's dtype: the loops run in f32 for
 * f32 parameters, like PyTorch. Every element is updated independently, so
 * the result does not depend on the thread count. */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STATE 3

typedef enum kind { SGD, ADAM, ADAMW, RMSPROP, ADAGRAD } kind;

static const char *const kind_name[] = {"sgd", "adam", "adamw", "rmsprop", "adagrad"};

/* Every options struct starts with its lr, so a group's lr is the first
 * double of its options, whatever the kind. */
typedef union optset {
    cg_sgd_opts sgd;
    cg_adam_opts adam;
    cg_rmsprop_opts rms;
    cg_adagrad_opts ada;
} optset;
_Static_assert(offsetof(cg_sgd_opts, lr) == 0 && offsetof(cg_adam_opts, lr) == 0 &&
                   offsetof(cg_rmsprop_opts, lr) == 0 && offsetof(cg_adagrad_opts, lr) == 0,
               "lr first");
#define LR(g) (*(double *)(void *)&(g)->opt)

typedef struct pgroup {
    int first, n; /* its parameters: params[first .. first + n) */
    optset opt;
} pgroup;

typedef struct param {
    cg_tensor *t;          /* borrowed */
    int64_t off, numel;    /* its elements in the state buffers */
    int64_t step;          /* PyTorch's per-parameter state "step" */
    const void *seen;      /* its gradient's storage at the last step (or construction) */
    uint64_t seen_version; /* ... and that storage's version then */
    int group;
    bool active; /* during a step: it takes this update */
} param;

struct cg_optim {
    kind kind;
    cg_module *m; /* borrowed; NULL when made from groups */
    cg_dtype dt;
    int nparams, ngroups;
    param *params;
    pgroup *groups;
    int64_t n;     /* elements over all parameters */
    int64_t steps; /* cg_optim_step calls */
    int nstate;
    const char *names[MAX_STATE];
    void *state[MAX_STATE];
    cg_tensor *views[MAX_STATE];
};

/* The numbers one step needs, in double; the kernels round them to T. */
typedef struct coefs {
    double lr, wd, decay, mu, damp, b1, b2, eps, bc2_sqrt, alpha;
    bool first, nesterov, amsgrad, centered;
} coefs;
/* ---- the kernels, written once over the element type T ------------------- */
/* for (i = 0; i < n; i++) BODY, shared among the threads in blocks of 4096
 * when n is large: each block is a plain loop the compiler vectorises (GCC
 * did not vectorise an `omp parallel for simd` loop inside its outlined
 * parallel function, which made Adam 10x slower than memory allows). */
#define PAR_BLOCK 4096
#define PAR_FOR(i, n, ...)                                                                     \
    CGI_PAR_FOR((n) > CGI_PAR_MIN, b_, ((n) + PAR_BLOCK - 1) / PAR_BLOCK, {                    \
        const int64_t e_ = (n) < (b_ + 1) * PAR_BLOCK ? (n) : (b_ + 1) * PAR_BLOCK;            \
        for (int64_t i = b_ * PAR_BLOCK; i < e_; i++) __VA_ARGS__                              \
    })

/* SGD: g += wd p; b = g on the first step, else mu b + (1 - dampening) g;
 * g = g + mu b (nesterov) or b; p -= lr g. The options are selects and the
 * momentum store has a loop of its own: a store under a branch would keep
 * the compiler from vectorising. */
#define SGD_KERNEL(T, SFX, SQRT)                                                               \
    static void sgd_##SFX(const coefs *c, int64_t n, T *restrict p, const T *restrict g,       \
                          T *restrict b) {                                                     \
        const T lr = (T)c->lr, wd = (T)c->wd, mu = (T)c->mu, damp = (T)c->damp;                \
        const bool first = c->first, nest = c->nesterov;                                       \
        if (c->mu == 0) {                                                                      \
            PAR_FOR(i, n, {                                                                    \
                T d = wd != 0 ? g[i] + wd * p[i] : g[i];                                       \
                p[i] = p[i] - lr * d;                                                          \
            });                                                                                \
            return;                                                                            \
        }                                                                                      \
        PAR_FOR(i, n, {                                                                        \
            T d = wd != 0 ? g[i] + wd * p[i] : g[i];                                           \
            T bi = first ? d : mu * b[i] + damp * d;                                           \
            b[i] = bi;                                                                         \
            p[i] = p[i] - lr * (nest ? d + mu * bi : bi);                                      \
        });                                                                                    \
    }

/* Adam / AdamW: p *= 1 - lr wd (AdamW: `decay`); g += wd p (Adam);
 * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; amsgrad: vmax = max(vmax, v)
 * replaces v below; p += -(lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), with
 * bc_i = 1 - b_i^t. c->lr holds the step size lr / bc1 here. As in PyTorch's
 * code (its pseudo-code takes the max of the corrected v-hat instead), the
 * max is of the raw v, divided by the current correction. */
/* One Adam update of element i; VMAX is how s becomes the denominator's
 * second moment (amsgrad keeps the running max in vmax). */
#define ADAM_ELEMENT(T, SQRT, VMAX)                                                            \
    {                                                                                          \
        T pi = decay != 1 ? p[i] * decay : p[i];                                               \
        T d = wd != 0 ? g[i] + wd * pi : g[i];                                                 \
        T mi = b1 * m[i] + a1 * d, s = b2 * v[i] + a2 * d * d;                                 \
        m[i] = mi;                                                                             \
        v[i] = s;                                                                              \
        VMAX p[i] = pi + step * mi / (SQRT(s) / bc2 + eps);                                    \
    }

#define ADAM_KERNEL(T, SFX, SQRT)                                                              \
    static void adam_##SFX(const coefs *c, int64_t n, T *restrict p, const T *restrict g,      \
                           T *restrict m, T *restrict v, T *restrict vmax) {                   \
        const T step = (T)-c->lr, wd = (T)c->wd, decay = (T)c->decay;                          \
        const T b1 = (T)c->b1, a1 = (T)(1 - c->b1), b2 = (T)c->b2, a2 = (T)(1 - c->b2),        \
                bc2 = (T)c->bc2_sqrt, eps = (T)c->eps;                                         \
        if (!c->amsgrad) {                                                                     \
            PAR_FOR(i, n, ADAM_ELEMENT(T, SQRT, ));                                            \
            return;                                                                            \
        }                                                                                      \
        PAR_FOR(i, n, ADAM_ELEMENT(T, SQRT, s = vmax[i] > s ? vmax[i] : s; vmax[i] = s;));     \
    }

/* RMSprop: g += wd p; sq = alpha sq + (1 - alpha) g^2; centered:
 * ga = alpha ga + (1 - alpha) g and sq - ga^2 replaces sq below;
 * avg = sqrt(sq) + eps; momentum: b = mu b + g / avg, p -= lr b;
 * else p += -lr g / avg. */
#define RMSPROP_KERNEL(T, SFX, SQRT)                                                           \
    static void rmsprop_##SFX(const coefs *c, int64_t n, T *restrict p, const T *restrict g,   \
                              T *restrict sq, T *restrict b, T *restrict ga) {                 \
        const T lr = (T)c->lr, wd = (T)c->wd, mu = (T)c->mu, eps = (T)c->eps;                  \
        const T alpha = (T)c->alpha, a = (T)(1 - c->alpha);                                    \
        const bool centered = c->centered, has_mu = c->mu > 0;                                 \
        PAR_FOR(i, n, {                                                                        \
            T d = wd != 0 ? g[i] + wd * p[i] : g[i];                                           \
            sq[i] = alpha * sq[i] + a * d * d;                                                 \
            T var = sq[i];                                                                     \
            if (centered) {                                                                    \
                ga[i] = alpha * ga[i] + a * d;                                                 \
                var = var - ga[i] * ga[i];                                                     \
            }                                                                                  \
            T avg = SQRT(var) + eps;                                                           \
            if (has_mu) {                                                                      \
                b[i] = mu * b[i] + d / avg;                                                    \
                p[i] = p[i] - lr * b[i];                                                       \
            } else {                                                                           \
                p[i] = p[i] + -lr * d / avg;                                                   \
            }                                                                                  \
        });                                                                                    \
    }

/* Adagrad: g += wd p; sum += g^2; p += -clr g / (sqrt(sum) + eps), with
 * c->lr holding clr = lr / (1 + (t - 1) lr_decay). */
#define ADAGRAD_KERNEL(T, SFX, SQRT)                                                           \
    static void adagrad_##SFX(const coefs *c, int64_t n, T *restrict p, const T *restrict g,   \
                              T *restrict sum) {                                               \
        const T clr = (T)c->lr, wd = (T)c->wd, eps = (T)c->eps;                                \
        PAR_FOR(i, n, {                                                                        \
            T d = wd != 0 ? g[i] + wd * p[i] : g[i];                                           \
            sum[i] = sum[i] + d * d;                                                           \
            p[i] = p[i] + -clr * d / (SQRT(sum[i]) + eps);                                     \
        });                                                                                    \
    }

#define INSTANTIATE(KERNEL) KERNEL(float, f32, sqrtf) KERNEL(double, f64, sqrt)
INSTANTIATE(SGD_KERNEL)
INSTANTIATE(ADAM_KERNEL)
INSTANTIATE(RMSPROP_KERNEL)
INSTANTIATE(ADAGRAD_KERNEL)

/* Calls kernel_f32 or kernel_f64; the void * buffers convert implicitly. */
#define DISPATCH(kernel, dt, ...)                                                              \
    do {                                                                                       \
        if ((dt) == CG_F32)                                                                    \
            kernel##_f32(__VA_ARGS__);                                                         \
        else                                                                                   \
            kernel##_f64(__VA_ARGS__);                                                         \
    } while (0)

/* ---- one run per kind: the per-step numbers, then the loop ---------------- */
/* The state buffer of that PyTorch name from element off, NULL when the
 * options leave it out. */
static void *state_at(const cg_optim *o, const char *name, int64_t off) {
    for (int i = 0; i < o->nstate; i++)
        if (!strcmp(o->names[i], name))
            return (char *)o->state[i] + (size_t)off * cg_dtype_size(o->dt);
    return NULL;
}

/* t is the parameter's 1-based step being taken (its state step after += 1). */
static coefs sgd_coefs(const cg_optim *o, const pgroup *g, int64_t t) {
    const cg_sgd_opts *s = &g->opt.sgd;
    (void)o;
    return (coefs){.lr = s->lr,
                   .wd = s->weight_decay,
                   .mu = s->momentum,
                   .damp = 1 - s->dampening,
                   .first = t == 1,
                   .nesterov = s->nesterov};
}

static coefs adam_coefs(const cg_optim *o, const pgroup *g, int64_t t) {
    const cg_adam_opts *s = &g->opt.adam;
    bool decoupled = o->kind == ADAMW;
    double bc1 = 1 - pow(s->beta1, (double)t), bc2 = 1 - pow(s->beta2, (double)t);
    return (coefs){.lr = s->lr / bc1,
                   .wd = decoupled ? 0 : s->weight_decay,
                   .decay = decoupled ? 1 - s->lr * s->weight_decay : 1,
                   .b1 = s->beta1,
                   .b2 = s->beta2,
                   .eps = s->eps,
                   .bc2_sqrt = sqrt(bc2),
                   .amsgrad = s->amsgrad};
}

static coefs rmsprop_coefs(const cg_optim *o, const pgroup *g, int64_t t) {
    const cg_rmsprop_opts *s = &g->opt.rms;
    (void)o, (void)t;
    return (coefs){.lr = s->lr,
                   .wd = s->weight_decay,
                   .mu = s->momentum,
                   .eps = s->eps,
                   .alpha = s->alpha,
                   .centered = s->centered};
}

static coefs adagrad_coefs(const cg_optim *o, const pgroup *g, int64_t t) {
    const cg_adagrad_opts *s = &g->opt.ada;
    (void)o;
    return (coefs){.lr = s->lr / (1 + (double)(t - 1) * s->lr_decay),
                   .wd = s->weight_decay,
                   .eps = s->eps};
}

/* One kernel call over n elements: p and g point at the run's first element,
 * which is element off of the state buffers. */
static void sgd_run(const cg_optim *o, const coefs *c, void *p, const void *g, int64_t off,
                    int64_t n) {
    DISPATCH(sgd, o->dt, c, n, p, g, state_at(o, "momentum_buffer", off));
}

static void adam_run(const cg_optim *o, const coefs *c, void *p, const void *g, int64_t off,
                     int64_t n) {
    DISPATCH(adam, o->dt, c, n, p, g, state_at(o, "exp_avg", off),
             state_at(o, "exp_avg_sq", off), state_at(o, "max_exp_avg_sq", off));
}

static void rmsprop_run(const cg_optim *o, const coefs *c, void *p, const void *g, int64_t off,
                        int64_t n) {
    DISPATCH(rmsprop, o->dt, c, n, p, g, state_at(o, "square_avg", off),
             state_at(o, "momentum_buffer", off), state_at(o, "grad_avg", off));
}

static void adagrad_run(const cg_optim *o, const coefs *c, void *p, const void *g, int64_t off,
                        int64_t n) {
    DISPATCH(adagrad, o->dt, c, n, p, g, state_at(o, "sum", off));
}

/* ---- option checks: PyTorch's ValueErrors (NaN fails them all) ----------- */
/* fn labels the message: "cg_sgd_new" or "cg_sgd_new_groups: group 1". */
static bool nonneg(const char *fn, const char *what, double v) {
    if (v >= 0 && isfinite(v)) return true;
    cgi_error(NULL, CG_ERR_ARG, "%s: %s %g must be finite and >= 0", fn, what, v);
    return false;
}

static bool in_unit(const char *fn, const char *what, double v, bool closed) {
    if (v >= 0 && (v < 1 || (closed && v == 1))) return true;
    cgi_error(NULL, CG_ERR_ARG, "%s: %s %g not in [0, 1%c", fn, what, v, closed ? ']' : ')');
    return false;
}

static bool check_sgd(const char *fn, const void *u) {
    const cg_sgd_opts *o = u;
    if (!nonneg(fn, "lr", o->lr) || !nonneg(fn, "momentum", o->momentum) ||
        !nonneg(fn, "weight_decay", o->weight_decay))
        return false;
    if (!isfinite(o->dampening)) {
        cgi_error(NULL, CG_ERR_ARG, "%s: dampening %g must be finite", fn, o->dampening);
        return false;
    }
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0)) {
        cgi_error(NULL, CG_ERR_ARG,
                  "%s: nesterov needs momentum > 0 and dampening 0 "
                  "(momentum %g, dampening %g)",
                  fn, o->momentum, o->dampening);
        return false;
    }
    return true;
}

static bool check_adam(const char *fn, const void *u) {
    const cg_adam_opts *o = u;
    return nonneg(fn, "lr", o->lr) && nonneg(fn, "eps", o->eps) &&
           in_unit(fn, "beta1", o->beta1, false) && in_unit(fn, "beta2", o->beta2, false) &&
           nonneg(fn, "weight_decay", o->weight_decay);
}

static bool check_rmsprop(const char *fn, const void *u) {
    const cg_rmsprop_opts *o = u;
    return nonneg(fn, "lr", o->lr) && nonneg(fn, "eps", o->eps) &&
           nonneg(fn, "momentum", o->momentum) && nonneg(fn, "weight_decay", o->weight_decay) &&
           in_unit(fn, "alpha", o->alpha, true);
}

static bool check_adagrad(const char *fn, const void *u) {
    const cg_adagrad_opts *o = u;
    return nonneg(fn, "lr", o->lr) && nonneg(fn, "lr_decay", o->lr_decay) &&
           nonneg(fn, "weight_decay", o->weight_decay) &&
           nonneg(fn, "initial_accumulator_value", o->initial_accumulator_value) &&
           nonneg(fn, "eps", o->eps);
}

/* ---- what each kind is made of ------------------------------------------------ */
/* An option as the checkpoint meta names it (the struct member's name). */
typedef struct field {
    const char *name;
    size_t off;
    bool is_bool;
} field;

#define DBL(S, x)                                                                              \
    { #x, offsetof(S, x), false }
#define BOOL(S, x)                                                                             \
    { #x, offsetof(S, x), true }
static const field sgd_fields[] = {DBL(cg_sgd_opts, lr), DBL(cg_sgd_opts, momentum),
                                   DBL(cg_sgd_opts, dampening), DBL(cg_sgd_opts, weight_decay),
                                   BOOL(cg_sgd_opts, nesterov)};
static const field adam_fields[] = {
    DBL(cg_adam_opts, lr),  DBL(cg_adam_opts, beta1),        DBL(cg_adam_opts, beta2),
    DBL(cg_adam_opts, eps), DBL(cg_adam_opts, weight_decay), BOOL(cg_adam_opts, amsgrad)};
static const field rms_fields[] = {
    DBL(cg_rmsprop_opts, lr),       DBL(cg_rmsprop_opts, alpha),
    DBL(cg_rmsprop_opts, eps),      DBL(cg_rmsprop_opts, weight_decay),
    DBL(cg_rmsprop_opts, momentum), BOOL(cg_rmsprop_opts, centered)};
static const field ada_fields[] = {DBL(cg_adagrad_opts, lr), DBL(cg_adagrad_opts, lr_decay),
                                   DBL(cg_adagrad_opts, weight_decay),
                                   DBL(cg_adagrad_opts, initial_accumulator_value),
                                   DBL(cg_adagrad_opts, eps)};

typedef struct kind_info {
    size_t size; /* of its options struct */
    bool (*check)(const char *fn, const void *o);
    coefs (*coefs)(const cg_optim *o, const pgroup *g, int64_t t);
    void (*run)(const cg_optim *o, const coefs *c, void *p, const void *g, int64_t off,
                int64_t n);
    const field *fields;
    int nfields;
    const char *state[MAX_STATE]; /* every state buffer it may keep, in PyTorch's order */
} kind_info;

#define FIELDS(f) f, (int)(sizeof f / sizeof f[0])
static const kind_info kinds[] = {
    [SGD] = {sizeof(cg_sgd_opts),
             check_sgd,
             sgd_coefs,
             sgd_run,
             FIELDS(sgd_fields),
             {"momentum_buffer"}},
    [ADAM] = {sizeof(cg_adam_opts),
              check_adam,
              adam_coefs,
              adam_run,
              FIELDS(adam_fields),
              {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
    [ADAMW] = {sizeof(cg_adam_opts),
               check_adam,
               adam_coefs,
               adam_run,
               FIELDS(adam_fields),
               {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
    [RMSPROP] = {sizeof(cg_rmsprop_opts),
                 check_rmsprop,
                 rmsprop_coefs,
                 rmsprop_run,
                 FIELDS(rms_fields),
                 {"square_avg", "momentum_buffer", "grad_avg"}},
    [ADAGRAD] = {sizeof(cg_adagrad_opts),
                 check_adagrad,
                 adagrad_coefs,
                 adagrad_run,
                 FIELDS(ada_fields),
                 {"sum"}},
};

/* Whether a group with options o uses the kind's state buffer j. */
static bool needs_state(kind k, const optset *o, int j) {
    switch (k) {
    case SGD: return o->sgd.momentum != 0;
    case ADAM:
    case ADAMW: return j < 2 || o->adam.amsgrad;
    case RMSPROP: return j == 0 || (j == 1 ? o->rms.momentum > 0 : o->rms.centered);
    default: return true;
    }
}

/* ---- construction ------------------------------------------------------------- */
/* Adds a zero-filled state buffer named `name` (a literal), 64-byte aligned,
 * with its 1-D tensor view. */
static bool add_state(cg_optim *o, const char *fn, const char *name) {
    size_t bytes = ((size_t)o->n * cg_dtype_size(o->dt) + 63) & ~(size_t)63;
    void *buf = aligned_alloc(64, bytes ? bytes : 64);
    cg_tensor *view = buf ? cg_wrap(NULL, o->dt, 1, &o->n, buf) : NULL;
    if (!view) {
        free(buf);
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        return false;
    }
    memset(buf, 0, bytes ? bytes : 64);
    o->names[o->nstate] = name;
    o->state[o->nstate] = buf;
    o->views[o->nstate++] = view;
    return true;
}

/* The state buffers any group needs, in the kind's order; Adagrad's sum
 * starts at each group's initial_accumulator_value. */
static bool add_states(cg_optim *o, const char *fn) {
    const kind_info *ki = &kinds[o->kind];
    for (int j = 0; j < MAX_STATE && ki->state[j]; j++) {
        bool need = false;
        for (int g = 0; g < o->ngroups; g++) need |= needs_state(o->kind, &o->groups[g].opt, j);
        if (need && !add_state(o, fn, ki->state[j])) return false;
    }
    for (int g = 0; o->kind == ADAGRAD && g < o->ngroups; g++) {
        const pgroup *gr = &o->groups[g];
        if (gr->n == 0) continue;
        int64_t lo = o->params[gr->first].off, hi = lo;
        for (int i = gr->first; i < gr->first + gr->n; i++) hi += o->params[i].numel;
        double v = gr->opt.ada.initial_accumulator_value;
        for (int64_t e = lo; e < hi; e++) {
            if (o->dt == CG_F32)
                ((float *)o->state[0])[e] = (float)v;
            else
                ((double *)o->state[0])[e] = v;
        }
    }
    return true;
}

/* Keeps o when everything succeeded; frees it (NULL is fine) otherwise. */
static cg_optim *finish(cg_optim *o, bool ok) {
    if (ok) return o;
    cg_optim_free(o);
    return NULL;
}

/* The gradient's storage and version now: a step updates a parameter only
 * when they differ from those of the last step. */
static void remember_grad(param *p) {
    const cg_tensor *g = p->t->grad;
    p->seen = g ? (const void *)g->storage : NULL;
    p->seen_version = g ? g->storage->version : 0;
}

/* Parameter k of group gi becomes the optimizer's parameter i: a caller-owned
 * float leaf (a context's would dangle after its reset, and every step reads
 * it), contiguous, of the optimizer's dtype, in no other place of the list. */
static bool take_param(cg_optim *o, const char *fn, int gi, int k, int i, cg_tensor *t) {
    char at[64];
    snprintf(at, sizeof at, "group %d parameter %d", gi, k);
    if (!t) return cgi_error(NULL, CG_ERR_ARG, "%s: %s is NULL", fn, at), false;
    if (cgi_stale(t)) return cgi_stale_error_as(NULL, fn, at, -1, t), false;
    if (!cg_is_leaf(t))
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: %s is not a leaf (made by cg_%s): only "
                         "leaves can be optimized",
                         fn, at, t->node->op->name),
               false;
    if (t->ctx)
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: %s is a context tensor: parameters must be caller-owned (made "
                         "with ctx NULL)",
                         fn, at),
               false;
    cg_dtype dt = cg_dtype_of(t);
    if (dt != CG_F32 && dt != CG_F64)
        return cgi_error(NULL, CG_ERR_DTYPE, "%s: %s is %s (need f32 or f64)", fn, at,
                         cg_dtype_name(dt)),
               false;
    if (i > 0 && dt != o->dt)
        return cgi_error(NULL, CG_ERR_DTYPE,
                         "%s: %s is %s but the first parameter is %s "
                         "(one dtype per optimizer)",
                         fn, at, cg_dtype_name(dt), cg_dtype_name(o->dt)),
               false;
    if (!cg_is_contiguous(t))
        return cgi_error(NULL, CG_ERR_ARG, "%s: %s is not contiguous", fn, at), false;
    for (int j = 0; j < i; j++)
        if (o->params[j].t == t)
            return cgi_error(NULL, CG_ERR_ARG,
                             "%s: %s is also parameter %d of group %d "
                             "(a parameter may appear once)",
                             fn, at, j - o->groups[o->params[j].group].first,
                             o->params[j].group),
                   false;
    param *p = &o->params[i];
    *p = (param){.t = t, .off = o->n, .numel = cg_numel(t), .group = gi};
    remember_grad(p);
    o->dt = dt;
    o->n += p->numel;
    return true;
}

/* Group gi's options (the defaults when it has none) and parameters. */
static bool take_group(cg_optim *o, const char *fn, int gi, const cg_param_group *pg,
                       const void *defaults, int *next) {
    const kind_info *ki = &kinds[o->kind];
    pgroup *g = &o->groups[gi];
    char label[96];
    snprintf(label, sizeof label, "%s: group %d", fn, gi);
    if (pg->opts && !ki->check(label, pg->opts)) return false;
    memcpy(&g->opt, pg->opts ? pg->opts : defaults, ki->size);
    g->first = *next;
    g->n = pg->nparams;
    for (int k = 0; k < pg->nparams; k++, (*next)++)
        if (!take_param(o, fn, gi, k, *next, pg->params[k])) return false;
    return true;
}

/* The argument checks before anything is allocated; the total parameter
 * count in *total. */
static bool check_groups(const char *fn, int ngroups, const cg_param_group *groups,
                         const void *defaults, const kind_info *ki, bool from_module,
                         int *total) {
    if (!groups || !defaults || ngroups < 1)
        return cgi_error(NULL, CG_ERR_ARG, "%s: %s", fn,
                         !groups     ? "groups are NULL"
                         : !defaults ? "defaults are NULL"
                                     : "ngroups < 1"),
               false;
    char label[96]; /* a module's optimizer has only the defaults: no label */
    snprintf(label, sizeof label, "%s%s", fn, from_module ? "" : ": defaults");
    if (!ki->check(label, defaults)) return false;
    *total = 0;
    for (int g = 0; g < ngroups; g++) {
        if (groups[g].nparams < 0 || (groups[g].nparams > 0 && !groups[g].params) ||
            groups[g].nparams > INT32_MAX - *total)
            return cgi_error(NULL, CG_ERR_ARG, "%s: group %d has %d parameters at %s", fn, g,
                             groups[g].nparams, groups[g].params ? "params" : "NULL"),
                   false;
        *total += groups[g].nparams;
    }
    return true;
}

static cg_optim *optim_new(const char *fn, kind k, cg_module *m, int ngroups,
                           const cg_param_group *groups, const void *defaults) {
    int total;
    if (!check_groups(fn, ngroups, groups, defaults, &kinds[k], m != NULL, &total)) return NULL;
    cg_optim *o = calloc(1, sizeof *o);
    if (o) *o = (cg_optim){.kind = k, .m = m, .dt = CG_F32, .ngroups = ngroups};
    if (o) o->params = calloc((size_t)(total ? total : 1), sizeof *o->params);
    if (o) o->groups = calloc((size_t)ngroups, sizeof *o->groups);
    if (!o || !o->params || !o->groups) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        return finish(o, false);
    }
    o->nparams = total;
    int next = 0;
    for (int g = 0; g < ngroups; g++)
        if (!take_group(o, fn, g, &groups[g], defaults, &next)) return finish(o, false);
    return finish(o, add_states(o, fn));
}

/* All unique parameters of m, one group with the options o. */
static cg_optim *module_new(const char *fn, kind k, cg_module *m, const void *opts) {
    if (!m || !opts) {
        cgi_error(NULL, CG_ERR_ARG, "%s: %s NULL", fn, m ? "options are" : "module is");
        return NULL;
    }
    int n = cg_module_nparams(m);
    cg_tensor **ps = malloc(sizeof *ps * (size_t)(n ? n : 1));
    if (!ps) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        return NULL;
    }
    for (int i = 0; i < n; i++) ps[i] = cg_module_param(m, i, NULL);
    cg_param_group g = {n, ps, NULL};
    cg_optim *o = optim_new(fn, k, m, 1, &g, opts);
    free(ps);
    return o;
}

cg_optim *cg_sgd_new(cg_module *m, const cg_sgd_opts *o) {
    return module_new("cg_sgd_new", SGD, m, o);
}
cg_optim *cg_adam_new(cg_module *m, const cg_adam_opts *o) {
    return module_new("cg_adam_new", ADAM, m, o);
}
cg_optim *cg_adamw_new(cg_module *m, const cg_adam_opts *o) {
    return module_new("cg_adamw_new", ADAMW, m, o);
}
cg_optim *cg_rmsprop_new(cg_module *m, const cg_rmsprop_opts *o) {
    return module_new("cg_rmsprop_new", RMSPROP, m, o);
}
cg_optim *cg_adagrad_new(cg_module *m, const cg_adagrad_opts *o) {
    return module_new("cg_adagrad_new", ADAGRAD, m, o);
}

cg_optim *cg_sgd_new_groups(int ngroups, const cg_param_group *groups,
                            const cg_sgd_opts *defaults) {
    return optim_new("cg_sgd_new_groups", SGD, NULL, ngroups, groups, defaults);
}
cg_optim *cg_adam_new_groups(int ngroups, const cg_param_group *groups,
                             const cg_adam_opts *defaults) {
    return optim_new("cg_adam_new_groups", ADAM, NULL, ngroups, groups, defaults);
}
cg_optim *cg_adamw_new_groups(int ngroups, const cg_param_group *groups,
                              const cg_adam_opts *defaults) {
    return optim_new("cg_adamw_new_groups", ADAMW, NULL, ngroups, groups, defaults);
}
cg_optim *cg_rmsprop_new_groups(int ngroups, const cg_param_group *groups,
                                const cg_rmsprop_opts *defaults) {
    return optim_new("cg_rmsprop_new_groups", RMSPROP, NULL, ngroups, groups, defaults);
}
cg_optim *cg_adagrad_new_groups(int ngroups, const cg_param_group *groups,
                                const cg_adagrad_opts *defaults) {
    return optim_new("cg_adagrad_new_groups", ADAGRAD, NULL, ngroups, groups, defaults);
}

/* ---- defaults (PyTorch's) ------------------------------------------------------ */
cg_sgd_opts cg_sgd_defaults(double lr) { return (cg_sgd_opts){.lr = lr}; }

cg_adam_opts cg_adam_defaults(double lr) {
    return (cg_adam_opts){.lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

cg_adam_opts cg_adamw_defaults(double lr) {
    cg_adam_opts o = cg_adam_defaults(lr);
    o.weight_decay = 0.01;
    return o;
}

cg_rmsprop_opts cg_rmsprop_defaults(double lr) {
    return (cg_rmsprop_opts){.lr = lr, .alpha = 0.99, .eps = 1e-8};
}

cg_adagrad_opts cg_adagrad_defaults(double lr) {
    return (cg_adagrad_opts){.lr = lr, .eps = 1e-10};
}

/* ---- stepping --------------------------------------------------------------------- */
/* An optimizer made for a module refuses to step once the module's parameter
 * list changed (parameters added or removed: make a new optimizer). Putting
 * the module into a container changes nothing: its parameters stay the same
 * tensors. */
static bool module_changed(const cg_optim *o) {
    int n = o->nparams;
    const cg_module *m = o->m;
    if (!m) return false;
    if (cgi_module_sync(m, "cg_optim_step") != CG_OK) return true;
    return m->nparams != n || (n > 0 && (m->entries[m->params[0]].t != o->params[0].t ||
                                         m->entries[m->params[n - 1]].t != o->params[n - 1].t));
}

/* Marks the parameters this step updates: those that require a gradient and
 * whose gradient changed since the last step (see nn.h). */
static cg_status mark_active(cg_optim *o) {
    for (int i = 0; i < o->nparams; i++) {
        param *p = &o->params[i];
        const cg_tensor *g = p->t->grad; /* the step's loops read fields: parameters are
                                            caller-owned leaves, checked when taken */
        p->active =
            p->t->requires_grad && g &&
            ((const void *)g->storage != p->seen || g->storage->version != p->seen_version);
        if (p->active && !cgi_is_contiguous(g))
            return cgi_error(NULL, CG_ERR_STATE,
                             "cg_optim_step: the gradient of parameter "
                             "%d (group %d) is not contiguous",
                             i - o->groups[p->group].first, p->group);
    }
    return CG_OK;
}

/* Whether b continues a's run: both updated, one group and step count, and
 * adjacent in data and gradient (the state buffers follow the list order). */
static bool continues(const cg_optim *o, const param *a, const param *b) {
    size_t bytes = (size_t)a->numel * cg_dtype_size(o->dt);
    return b->active && b->group == a->group && b->step == a->step &&
           cgi_ptr(a->t) + bytes == cgi_ptr(b->t) &&
           cgi_ptr(a->t->grad) + bytes == cgi_ptr(b->t->grad);
}

/* One kernel call per run; the per-step numbers only when the group or the
 * step count changes from the previous run. */
static void update(const cg_optim *o) {
    const kind_info *ki = &kinds[o->kind];
    coefs c = {0};
    int cg = -1;
    int64_t ct = -1;
    for (int i = 0; i < o->nparams;) {
        const param *p = &o->params[i];
        if (!p->active) {
            i++;
            continue;
        }
        int64_t n = p->numel;
        int j = i + 1;
        while (j < o->nparams && continues(o, &o->params[j - 1], &o->params[j]))
            n += o->params[j++].numel;
        if (p->group != cg || p->step + 1 != ct) {
            cg = p->group;
            ct = p->step + 1;
            c = ki->coefs(o, &o->groups[cg], ct);
        }
        if (n > 0) ki->run(o, &c, cgi_ptr(p->t), cgi_ptr(p->t->grad), p->off, n);
        i = j;
    }
}

/* The step writes the parameters in place; bumping their versions makes a
 * graph recorded before the step refuse a backward after it, as PyTorch's
 * in-place update does. */
cg_status cg_optim_step(cg_optim *o) {
    if (!o) return cgi_error(NULL, CG_ERR_ARG, "cg_optim_step: optimizer is NULL");
    if (module_changed(o))
        return cgi_error(NULL, CG_ERR_STATE,
                         "cg_optim_step: the %s optimizer's module "
                         "changed: its parameters are not those it was made with",
                         kind_name[o->kind]);
    cg_status st = mark_active(o);
    if (st != CG_OK) return st;
    update(o);
    for (int i = 0; i < o->nparams; i++) {
        param *p = &o->params[i];
        if (p->active) {
            p->step++;
            cgi_bump_version(p->t);
        }
        remember_grad(p);
    }
    o->steps++;
    return CG_OK;
}

/* memset per run of adjacent gradients; the versions stay, so zeroed
 * gradients do not count as new ones. */
void cg_optim_zero_grad(cg_optim *o) {
    size_t es = o ? cg_dtype_size(o->dt) : 0;
    for (int i = 0; o && i < o->nparams;) {
        cg_tensor *g = o->params[i].t->grad;
        if (!g || !cgi_is_contiguous(g)) {
            cg_zero_grad(o->params[i].t); /* a strided gradient of cg_set_grad */
            i++;
            continue;
        }
        char *start = cgi_ptr(g);
        size_t bytes = (size_t)o->params[i].numel * es;
        int j = i + 1;
        for (; j < o->nparams; j++) {
            cg_tensor *h = o->params[j].t->grad;
            if (!h || !cgi_is_contiguous(h) || cgi_ptr(h) != start + bytes) break;
            bytes += (size_t)o->params[j].numel * es;
        }
        if (bytes) memset(start, 0, bytes);
        i = j;
    }
}

/* ---- learning rates and steps ------------------------------------------------------- */
static bool lr_ok(const char *fn, double lr, double kept) {
    if (lr >= 0 && isfinite(lr)) return true;
    cgi_error(NULL, CG_ERR_ARG, "%s: lr %g must be finite and >= 0 (kept %g)", fn, lr, kept);
    return false;
}

double cg_optim_lr(const cg_optim *o) {
    if (o) return LR(&o->groups[0]);
    cgi_error(NULL, CG_ERR_ARG, "cg_optim_lr: optimizer is NULL");
    return NAN;
}

cg_status cg_optim_set_lr(cg_optim *o, double lr) {
    if (!o) return cgi_error(NULL, CG_ERR_ARG, "cg_optim_set_lr: optimizer is NULL");
    if (!lr_ok("cg_optim_set_lr", lr, LR(&o->groups[0]))) return CG_ERR_ARG;
    for (int g = 0; g < o->ngroups; g++) LR(&o->groups[g]) = lr;
    return CG_OK;
}

/* The counters given NULL return 0 ("NULL") and record "fn: optimizer is
 * NULL" (kept if a failed constructor's error made the NULL). */
static bool have(const cg_optim *o, const char *fn) {
    return o || (cgi_null_arg(NULL, fn, "optimizer"), false);
}

int cg_optim_ngroups(const cg_optim *o) { return have(o, "cg_optim_ngroups") ? o->ngroups : 0; }

double cg_optim_group_lr(const cg_optim *o, int group) {
    if (o && group >= 0 && group < o->ngroups) return LR(&o->groups[group]);
    cgi_error(NULL, o ? CG_ERR_INDEX : CG_ERR_ARG, "cg_optim_group_lr: %s",
              o ? "group out "
                  "of range"
                : "optimizer is NULL");
    return NAN;
}

cg_status cg_optim_set_group_lr(cg_optim *o, int group, double lr) {
    if (!o) return cgi_error(NULL, CG_ERR_ARG, "cg_optim_set_group_lr: optimizer is NULL");
    if (group < 0 || group >= o->ngroups)
        return cgi_error(NULL, CG_ERR_INDEX, "cg_optim_set_group_lr: group %d not in [0, %d)",
                         group, o->ngroups);
    if (!lr_ok("cg_optim_set_group_lr", lr, LR(&o->groups[group]))) return CG_ERR_ARG;
    LR(&o->groups[group]) = lr;
    return CG_OK;
}

int64_t cg_optim_steps(const cg_optim *o) { return have(o, "cg_optim_steps") ? o->steps : 0; }

cg_status cg_optim_set_steps(cg_optim *o, int64_t steps) {
    if (!o) return cgi_error(NULL, CG_ERR_ARG, "cg_optim_set_steps: optimizer is NULL");
    if (steps < 0)
        return cgi_error(NULL, CG_ERR_ARG, "cg_optim_set_steps: steps %" PRId64 " < 0", steps);
    o->steps = steps;
    for (int i = 0; i < o->nparams; i++) o->params[i].step = steps;
    return CG_OK;
}

const char *cg_optim_name(const cg_optim *o) {
    return have(o, "cg_optim_name") ? kind_name[o->kind] : "NULL";
}
int cg_optim_nstate(const cg_optim *o) { return have(o, "cg_optim_nstate") ? o->nstate : 0; }

cg_tensor *cg_optim_state(const cg_optim *o, int i, const char **name) {
    if (!o) {
        cgi_error(NULL, CG_ERR_ARG, "cg_optim_state: optimizer is NULL");
        return NULL;
    }
    if (i < 0 || i >= o->nstate) {
        cgi_error(NULL, CG_ERR_INDEX, "cg_optim_state: index %d out of range [0, %d)", i,
                  o->nstate);
        return NULL;
    }
    if (name) *name = o->names[i];
    return o->views[i];
}

void cg_optim_free(cg_optim *o) {
    if (!o) return;
    for (int i = 0; i < MAX_STATE; i++) {
        cg_tensor_free(o->views[i]);
        free(o->state[i]);
    }
    free(o->params);
    free(o->groups);
    free(o);
}

/* ---- checkpoint meta ------------------------------------------------------------------
 * One key=value per line, in this order:
 *   kind=adam
 *   steps=<cg_optim_step calls>
 *   groups=<count>
 * per group: group=<index>, params=<count>, numel=<elements>, then every
 * option of the kind in its struct's order (lr is the current one), doubles
 * as %.17g (exact for every double), bools 0 or 1;
 * per parameter, in order: step=<its step count>. */
#define META_LINE 96 /* bytes any one line needs at most */

char *cgi_optim_meta(const cg_optim *o) {
    if (!o) return cgi_error(NULL, CG_ERR_ARG, "cg_save: optimizer is NULL"), NULL;
    const kind_info *ki = &kinds[o->kind];
    size_t lines = 3 + (size_t)o->ngroups * (3 + (size_t)ki->nfields) + (size_t)o->nparams;
    size_t cap = lines * META_LINE + 1, len = 0;
    char *s = malloc(cap);
    if (!s) return cgi_error(NULL, CG_ERR_NOMEM, "cg_save: out of memory"), NULL;
#define PUT(...) len += (size_t)snprintf(s + len, cap - len, __VA_ARGS__)
    PUT("kind=%s\nsteps=%" PRId64 "\ngroups=%d\n", kind_name[o->kind], o->steps, o->ngroups);
    for (int g = 0; g < o->ngroups; g++) {
        const pgroup *gr = &o->groups[g];
        int64_t numel = 0;
        for (int i = gr->first; i < gr->first + gr->n; i++) numel += o->params[i].numel;
        PUT("group=%d\nparams=%d\nnumel=%" PRId64 "\n", g, gr->n, numel);
        for (int f = 0; f < ki->nfields; f++) {
            const char *at = (const char *)&gr->opt + ki->fields[f].off;
            if (ki->fields[f].is_bool)
                PUT("%s=%d\n", ki->fields[f].name, *(const bool *)(const void *)at ? 1 : 0);
            else
                PUT("%s=%.17g\n", ki->fields[f].name, *(const double *)(const void *)at);
        }
    }
    for (int i = 0; i < o->nparams; i++) PUT("step=%" PRId64 "\n", o->params[i].step);
#undef PUT
    return s;
}

/* Reads the meta text line by line; errors name fn and the line. */
typedef struct reader {
    const char *s; /* the next line */
    int line;
    const char *fn;
    char val[META_LINE];
} reader;

static bool malformed(const reader *r, const char *what) {
    cgi_error(NULL, CG_ERR_IO, "%s: optimizer metadata line %d: %s", r->fn, r->line, what);
    return false;
}

/* The next line, which must be key=<value>: the value into r->val. */
static bool next_value(reader *r, const char *key) {
    char what[160];
    r->line++;
    const char *end = strchr(r->s, '\n');
    size_t n = end ? (size_t)(end - r->s) : strlen(r->s), k = strlen(key);
    if (n <= k + 1 || strncmp(r->s, key, k) != 0 || r->s[k] != '=' || n - k - 1 >= META_LINE) {
        snprintf(what, sizeof what, "want %s=<value>, found \"%.*s\"", key,
                 (int)(n < 40 ? n : 40), r->s);
        return malformed(r, what);
    }
    memcpy(r->val, r->s + k + 1, n - k - 1);
    r->val[n - k - 1] = 0;
    r->s += end ? n + 1 : n;
    return true;
}

/* A decimal count in [0, max]. */
static bool read_count(reader *r, const char *key, int64_t max, int64_t *out) {
    if (!next_value(r, key)) return false;
    int64_t v = 0;
    for (const char *c = r->val; *c; c++) {
        if (*c < '0' || *c > '9' || v > (max - (*c - '0')) / 10)
            return malformed(r, "not a count in range");
        v = v * 10 + (*c - '0');
    }
    *out = v;
    return true;
}

/* One option into the struct at dst (the option checks come after). */
static bool read_field(reader *r, const field *f, char *dst) {
    if (!next_value(r, f->name)) return false;
    if (f->is_bool) {
        if (strcmp(r->val, "0") != 0 && strcmp(r->val, "1") != 0)
            return malformed(r, "want 0 or 1");
        *(bool *)(void *)(dst + f->off) = r->val[0] == '1';
        return true;
    }
    char *end;
    double v = strtod(r->val, &end);
    if (end == r->val || *end || r->val[0] == ' ') return malformed(r, "not a number");
    *(double *)(void *)(dst + f->off) = v;
    return true;
}

/* The value read must equal the optimizer's. */
static bool same(const reader *r, const char *what, int64_t got, int64_t want) {
    if (got == want) return true;
    cgi_error(NULL, CG_ERR_ARG,
              "%s: optimizer metadata line %d: %s %" PRId64 " but the "
              "optimizer has %" PRId64,
              r->fn, r->line, what, got, want);
    return false;
}

/* Group g's lines: its size must match, its options pass the checks and need
 * no state buffer the optimizer lacks. Stored when apply. */
static bool read_group(cg_optim *o, reader *r, int g, bool apply) {
    const kind_info *ki = &kinds[o->kind];
    pgroup *gr = &o->groups[g];
    int64_t v, numel = 0;
    for (int i = gr->first; i < gr->first + gr->n; i++) numel += o->params[i].numel;
    if (!read_count(r, "group", INT32_MAX, &v) || !same(r, "group", v, g) ||
        !read_count(r, "params", INT32_MAX, &v) || !same(r, "params", v, gr->n) ||
        !read_count(r, "numel", INT64_MAX, &v) || !same(r, "numel", v, numel))
        return false;
    optset u = gr->opt;
    for (int f = 0; f < ki->nfields; f++)
        if (!read_field(r, &ki->fields[f], (char *)&u)) return false;
    char label[160];
    snprintf(label, sizeof label, "%s: optimizer metadata group %d", r->fn, g);
    if (!ki->check(label, &u)) return false;
    for (int j = 0; j < MAX_STATE && ki->state[j]; j++)
        if (needs_state(o->kind, &u, j) && !state_at(o, ki->state[j], 0))
            return cgi_error(NULL, CG_ERR_ARG,
                             "%s: its options need state %s, which this "
                             "optimizer does not keep",
                             label, ki->state[j]),
                   false;
    if (apply) gr->opt = u;
    return true;
}

static cg_status read_meta(cg_optim *o, const char *text, bool apply, const char *fn) {
    reader r = {.s = text, .fn = fn};
    int64_t steps, ngroups, v;
    if (!next_value(&r, "kind")) return cg_last_status();
    if (strcmp(r.val, kind_name[o->kind]) != 0)
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: the file holds %.20s state but the optimizer "
                         "is %s",
                         fn, r.val, kind_name[o->kind]);
    if (!read_count(&r, "steps", INT64_MAX, &steps) ||
        !read_count(&r, "groups", INT32_MAX, &ngroups) ||
        !same(&r, "groups", ngroups, o->ngroups))
        return cg_last_status();
    for (int g = 0; g < o->ngroups; g++)
        if (!read_group(o, &r, g, apply)) return cg_last_status();
    for (int i = 0; i < o->nparams; i++) {
        if (!read_count(&r, "step", INT64_MAX, &v)) return cg_last_status();
        if (apply) o->params[i].step = v;
    }
    r.line++;
    if (*r.s) return malformed(&r, "text after the last parameter's step"), CG_ERR_IO;
    if (apply) o->steps = steps;
    return CG_OK;
}

cg_status cgi_optim_restore_meta(cg_optim *o, const char *text, bool apply, const char *fn) {
    if (!o || !text)
        return cgi_error(NULL, CG_ERR_ARG, "%s: optimizer or its metadata is NULL", fn);
    cg_status st = read_meta(o, text, false, fn);
    return st == CG_OK && apply ? read_meta(o, text, true, fn) : st;
}
