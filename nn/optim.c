/* Optimizers: PyTorch's SGD, Adam, AdamW, RMSprop and Adagrad, following
 * the update rules in torch.optim's documentation step for step.
 *
 * A module tree keeps all its parameters in one flat buffer and all their
 * gradients in another, so an update is one elementwise loop over those two
 * and the optimizer's own flat state buffers (same length). Per-step numbers
 * (bias corrections, decayed learning rates) are computed once in double, as
 * PyTorch does in Python, and rounded to the buffer's dtype: the loops run in
 * f32 for f32 models, like PyTorch. Every element is updated independently,
 * so the result does not depend on the thread count. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STATE 3

typedef enum kind { SGD, ADAM, ADAMW, RMSPROP, ADAGRAD } kind;

static const char *const kind_name[] = {"sgd", "adam", "adamw", "rmsprop", "adagrad"};

struct cg_optim {
    kind kind;
    cg_module *m; /* borrowed */
    cg_dtype dt;
    int64_t n; /* parameter elements when made; the module must keep them */
    double lr;
    int64_t steps; /* PyTorch's state "step": updates done so far */
    union {
        cg_sgd_opts sgd;
        cg_adam_opts adam;
        cg_rmsprop_opts rms;
        cg_adagrad_opts ada;
    } opt;
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
#define PAR_FOR(i, n, ...)                                                          \
    CGI_PAR_FOR((n) > CGI_PAR_MIN, b_, ((n) + PAR_BLOCK - 1) / PAR_BLOCK, {          \
        const int64_t e_ = (n) < (b_ + 1) * PAR_BLOCK ? (n) : (b_ + 1) * PAR_BLOCK; \
        for (int64_t i = b_ * PAR_BLOCK; i < e_; i++) __VA_ARGS__                    \
    })

/* SGD: g += wd p; b = g on the first step, else mu b + (1 - dampening) g;
 * g = g + mu b (nesterov) or b; p -= lr g. The options are selects and the
 * momentum store has a loop of its own: a store under a branch would keep
 * the compiler from vectorising. */
#define SGD_KERNEL(T, SFX, SQRT)                                                    \
    static void sgd_##SFX(const coefs *c, int64_t n, T *restrict p,                  \
                          const T *restrict g, T *restrict b) {                      \
        const T lr = (T)c->lr, wd = (T)c->wd, mu = (T)c->mu, damp = (T)c->damp;      \
        const bool first = c->first, nest = c->nesterov;                             \
        if (c->mu == 0) {                                                            \
            PAR_FOR(i, n, {                                                          \
                T d = wd != 0 ? g[i] + wd * p[i] : g[i];                             \
                p[i] = p[i] - lr * d;                                                \
            });                                                                      \
            return;                                                                  \
        }                                                                            \
        PAR_FOR(i, n, {                                                              \
            T d = wd != 0 ? g[i] + wd * p[i] : g[i];                                 \
            T bi = first ? d : mu * b[i] + damp * d;                                 \
            b[i] = bi;                                                               \
            p[i] = p[i] - lr * (nest ? d + mu * bi : bi);                            \
        });                                                                          \
    }

/* Adam / AdamW: p *= 1 - lr wd (AdamW: `decay`); g += wd p (Adam);
 * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; amsgrad: vmax = max(vmax, v)
 * replaces v below; p += -(lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), with
 * bc_i = 1 - b_i^t. c->lr holds the step size lr / bc1 here. As in PyTorch's
 * code (its pseudo-code takes the max of the corrected v-hat instead), the
 * max is of the raw v, divided by the current correction. */
/* One Adam update of element i; VMAX is how s becomes the denominator's
 * second moment (amsgrad keeps the running max in vmax). */
#define ADAM_ELEMENT(T, SQRT, VMAX)                                                    \
    {                                                                                \
        T pi = decay != 1 ? p[i] * decay : p[i];                                     \
        T d = wd != 0 ? g[i] + wd * pi : g[i];                                       \
        T mi = b1 * m[i] + a1 * d, s = b2 * v[i] + a2 * d * d;                       \
        m[i] = mi;                                                                   \
        v[i] = s;                                                                    \
        VMAX                                                                         \
        p[i] = pi + step * mi / (SQRT(s) / bc2 + eps);                               \
    }

#define ADAM_KERNEL(T, SFX, SQRT)                                                   \
    static void adam_##SFX(const coefs *c, int64_t n, T *restrict p,                 \
                           const T *restrict g, T *restrict m, T *restrict v,        \
                           T *restrict vmax) {                                       \
        const T step = (T)-c->lr, wd = (T)c->wd, decay = (T)c->decay;                \
        const T b1 = (T)c->b1, a1 = (T)(1 - c->b1), b2 = (T)c->b2,                   \
                a2 = (T)(1 - c->b2), bc2 = (T)c->bc2_sqrt, eps = (T)c->eps;          \
        if (!c->amsgrad) {                                                           \
            PAR_FOR(i, n, ADAM_ELEMENT(T, SQRT, ));                                  \
            return;                                                                  \
        }                                                                            \
        PAR_FOR(i, n, ADAM_ELEMENT(T, SQRT, s = vmax[i] > s ? vmax[i] : s; vmax[i] = s;)); \
    }

/* RMSprop: g += wd p; sq = alpha sq + (1 - alpha) g^2; centered:
 * ga = alpha ga + (1 - alpha) g and sq - ga^2 replaces sq below;
 * avg = sqrt(sq) + eps; momentum: b = mu b + g / avg, p -= lr b;
 * else p += -lr g / avg. */
#define RMSPROP_KERNEL(T, SFX, SQRT)                                                \
    static void rmsprop_##SFX(const coefs *c, int64_t n, T *restrict p,              \
                              const T *restrict g, T *restrict sq, T *restrict b,    \
                              T *restrict ga) {                                      \
        const T lr = (T)c->lr, wd = (T)c->wd, mu = (T)c->mu, eps = (T)c->eps;        \
        const T alpha = (T)c->alpha, a = (T)(1 - c->alpha);                          \
        const bool centered = c->centered, has_mu = c->mu > 0;                       \
        PAR_FOR(i, n, {                                                              \
            T d = wd != 0 ? g[i] + wd * p[i] : g[i];                                 \
            sq[i] = alpha * sq[i] + a * d * d;                                       \
            T var = sq[i];                                                           \
            if (centered) {                                                          \
                ga[i] = alpha * ga[i] + a * d;                                       \
                var = var - ga[i] * ga[i];                                           \
            }                                                                        \
            T avg = SQRT(var) + eps;                                                 \
            if (has_mu) {                                                            \
                b[i] = mu * b[i] + d / avg;                                          \
                p[i] = p[i] - lr * b[i];                                             \
            } else {                                                                 \
                p[i] = p[i] + -lr * d / avg;                                         \
            }                                                                        \
        });                                                                          \
    }

/* Adagrad: g += wd p; sum += g^2; p += -clr g / (sqrt(sum) + eps), with
 * c->lr holding clr = lr / (1 + (t - 1) lr_decay). */
#define ADAGRAD_KERNEL(T, SFX, SQRT)                                                \
    static void adagrad_##SFX(const coefs *c, int64_t n, T *restrict p,              \
                              const T *restrict g, T *restrict sum) {                \
        const T clr = (T)c->lr, wd = (T)c->wd, eps = (T)c->eps;                      \
        PAR_FOR(i, n, {                                                              \
            T d = wd != 0 ? g[i] + wd * p[i] : g[i];                                 \
            sum[i] = sum[i] + d * d;                                                 \
            p[i] = p[i] + -clr * d / (SQRT(sum[i]) + eps);                           \
        });                                                                          \
    }

#define INSTANTIATE(KERNEL) KERNEL(float, f32, sqrtf) KERNEL(double, f64, sqrt)
INSTANTIATE(SGD_KERNEL)
INSTANTIATE(ADAM_KERNEL)
INSTANTIATE(RMSPROP_KERNEL)
INSTANTIATE(ADAGRAD_KERNEL)

/* Calls kernel_f32 or kernel_f64; the void * buffers convert implicitly. */
#define DISPATCH(kernel, dt, ...)                                                   \
    do {                                                                             \
        if ((dt) == CG_F32)                                                          \
            kernel##_f32(__VA_ARGS__);                                               \
        else                                                                         \
            kernel##_f64(__VA_ARGS__);                                               \
    } while (0)

/* ---- one step per kind: the per-step numbers, then the loop --------------- */
/* The state buffer of that PyTorch name, NULL when the options leave it out. */
static void *state_of(const cg_optim *o, const char *name) {
    for (int i = 0; i < o->nstate; i++)
        if (!strcmp(o->names[i], name)) return o->state[i];
    return NULL;
}

/* t is the 1-based step being taken (PyTorch's state step after += 1). */
static void sgd_step(const cg_optim *o, void *p, const void *g, int64_t t) {
    const cg_sgd_opts *s = &o->opt.sgd;
    coefs c = {.lr = o->lr, .wd = s->weight_decay, .mu = s->momentum,
               .damp = 1 - s->dampening, .first = t == 1, .nesterov = s->nesterov};
    DISPATCH(sgd, o->dt, &c, o->n, p, g, state_of(o, "momentum_buffer"));
}

static void adam_step(const cg_optim *o, void *p, const void *g, int64_t t) {
    const cg_adam_opts *s = &o->opt.adam;
    bool decoupled = o->kind == ADAMW;
    double bc1 = 1 - pow(s->beta1, (double)t), bc2 = 1 - pow(s->beta2, (double)t);
    coefs c = {.lr = o->lr / bc1, .wd = decoupled ? 0 : s->weight_decay,
               .decay = decoupled ? 1 - o->lr * s->weight_decay : 1, .b1 = s->beta1,
               .b2 = s->beta2, .eps = s->eps, .bc2_sqrt = sqrt(bc2), .amsgrad = s->amsgrad};
    DISPATCH(adam, o->dt, &c, o->n, p, g, state_of(o, "exp_avg"), state_of(o, "exp_avg_sq"),
             state_of(o, "max_exp_avg_sq"));
}

static void rmsprop_step(const cg_optim *o, void *p, const void *g, int64_t t) {
    const cg_rmsprop_opts *s = &o->opt.rms;
    (void)t;
    coefs c = {.lr = o->lr, .wd = s->weight_decay, .mu = s->momentum, .eps = s->eps,
               .alpha = s->alpha, .centered = s->centered};
    DISPATCH(rmsprop, o->dt, &c, o->n, p, g, state_of(o, "square_avg"),
             state_of(o, "momentum_buffer"), state_of(o, "grad_avg"));
}

static void adagrad_step(const cg_optim *o, void *p, const void *g, int64_t t) {
    const cg_adagrad_opts *s = &o->opt.ada;
    coefs c = {.lr = o->lr / (1 + (double)(t - 1) * s->lr_decay), .wd = s->weight_decay,
               .eps = s->eps};
    DISPATCH(adagrad, o->dt, &c, o->n, p, g, state_of(o, "sum"));
}

typedef void (*step_fn)(const cg_optim *o, void *p, const void *g, int64_t t);
static const step_fn step_fns[] = {sgd_step, adam_step, adam_step, rmsprop_step,
                                   adagrad_step};

/* ---- option checks: PyTorch's ValueErrors (NaN fails them all) ----------- */
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

static bool check_sgd(const cg_sgd_opts *o) {
    const char *fn = "cg_sgd_new";
    if (!nonneg(fn, "lr", o->lr) || !nonneg(fn, "momentum", o->momentum) ||
        !nonneg(fn, "weight_decay", o->weight_decay))
        return false;
    if (!isfinite(o->dampening)) {
        cgi_error(NULL, CG_ERR_ARG, "%s: dampening %g must be finite", fn, o->dampening);
        return false;
    }
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0)) {
        cgi_error(NULL, CG_ERR_ARG, "%s: nesterov needs momentum > 0 and dampening 0 "
                  "(momentum %g, dampening %g)", fn, o->momentum, o->dampening);
        return false;
    }
    return true;
}

static bool check_adam(const char *fn, const cg_adam_opts *o) {
    return nonneg(fn, "lr", o->lr) && nonneg(fn, "eps", o->eps) &&
           in_unit(fn, "beta1", o->beta1, false) && in_unit(fn, "beta2", o->beta2, false) &&
           nonneg(fn, "weight_decay", o->weight_decay);
}

static bool check_rmsprop(const cg_rmsprop_opts *o) {
    const char *fn = "cg_rmsprop_new";
    return nonneg(fn, "lr", o->lr) && nonneg(fn, "eps", o->eps) &&
           nonneg(fn, "momentum", o->momentum) &&
           nonneg(fn, "weight_decay", o->weight_decay) && in_unit(fn, "alpha", o->alpha, true);
}

static bool check_adagrad(const cg_adagrad_opts *o) {
    const char *fn = "cg_adagrad_new";
    return nonneg(fn, "lr", o->lr) && nonneg(fn, "lr_decay", o->lr_decay) &&
           nonneg(fn, "weight_decay", o->weight_decay) &&
           nonneg(fn, "initial_accumulator_value", o->initial_accumulator_value) &&
           nonneg(fn, "eps", o->eps);
}

/* ---- construction ----------------------------------------------------------- */
/* Checks the module (a tree root with f32 or f64 parameters) and makes an
 * optimizer with no state yet; NULL on error. */
static cg_optim *optim_alloc(const char *fn, cg_module *m, const void *opts, kind k) {
    if (!m || !opts) {
        cgi_error(NULL, CG_ERR_ARG, "%s: %s NULL", fn, m ? "options are" : "module is");
        return NULL;
    }
    if (cg_module_numel(m) > 0 && !cg_module_flat_params(m)) {
        cgi_error(NULL, CG_ERR_ARG, "%s: module %s is inside a container: pass the "
                  "container (the root owns the parameters)", fn, cg_module_name(m));
        return NULL;
    }
    cg_dtype mdt = cg_dtype_of(cg_module_flat_params(m));
    if (cg_module_numel(m) > 0 && mdt != CG_F32 && mdt != CG_F64) {
        cgi_error(NULL, CG_ERR_DTYPE, "%s: parameters of dtype %s (need f32 or f64)", fn,
                  cg_dtype_name(mdt));
        return NULL;
    }
    cg_optim *o = calloc(1, sizeof *o);
    if (!o) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        return NULL;
    }
    *o = (cg_optim){.kind = k, .m = m, .dt = mdt, .n = cg_module_numel(m)};
    return o;
}

/* Adds a state buffer named `name` (a literal), every element `value`,
 * 64-byte aligned, with its 1-D tensor view. */
static bool add_state(cg_optim *o, const char *fn, const char *name, double value) {
    size_t bytes = ((size_t)o->n * cg_dtype_size(o->dt) + 63) & ~(size_t)63;
    void *buf = aligned_alloc(64, bytes ? bytes : 64);
    cg_tensor *view = buf ? cg_wrap(NULL, o->dt, 1, &o->n, buf) : NULL;
    if (!view || cg_fill_(view, value) != CG_OK) {
        cg_tensor_free(view);
        free(buf);
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        return false;
    }
    o->names[o->nstate] = name;
    o->state[o->nstate] = buf;
    o->views[o->nstate++] = view;
    return true;
}

/* Keeps o when everything succeeded; frees it (NULL is fine) otherwise. */
static cg_optim *finish(cg_optim *o, bool ok) {
    if (ok) return o;
    cg_optim_free(o);
    return NULL;
}

cg_optim *cg_sgd_new(cg_module *m, const cg_sgd_opts *opts) {
    const char *fn = "cg_sgd_new";
    cg_optim *o = optim_alloc(fn, m, opts, SGD);
    if (!o || !check_sgd(opts)) return finish(o, false);
    o->opt.sgd = *opts;
    o->lr = opts->lr;
    return finish(o, opts->momentum == 0 || add_state(o, fn, "momentum_buffer", 0));
}

/* Adam and AdamW differ only in where weight decay enters the step. */
static cg_optim *adam_new(const char *fn, kind k, cg_module *m, const cg_adam_opts *opts) {
    cg_optim *o = optim_alloc(fn, m, opts, k);
    if (!o || !check_adam(fn, opts)) return finish(o, false);
    o->opt.adam = *opts;
    o->lr = opts->lr;
    bool ok = add_state(o, fn, "exp_avg", 0) && add_state(o, fn, "exp_avg_sq", 0) &&
              (!opts->amsgrad || add_state(o, fn, "max_exp_avg_sq", 0));
    return finish(o, ok);
}

cg_optim *cg_adam_new(cg_module *m, const cg_adam_opts *o) {
    return adam_new("cg_adam_new", ADAM, m, o);
}

cg_optim *cg_adamw_new(cg_module *m, const cg_adam_opts *o) {
    return adam_new("cg_adamw_new", ADAMW, m, o);
}

cg_optim *cg_rmsprop_new(cg_module *m, const cg_rmsprop_opts *opts) {
    const char *fn = "cg_rmsprop_new";
    cg_optim *o = optim_alloc(fn, m, opts, RMSPROP);
    if (!o || !check_rmsprop(opts)) return finish(o, false);
    o->opt.rms = *opts;
    o->lr = opts->lr;
    bool ok = add_state(o, fn, "square_avg", 0) &&
              (opts->momentum <= 0 || add_state(o, fn, "momentum_buffer", 0)) &&
              (!opts->centered || add_state(o, fn, "grad_avg", 0));
    return finish(o, ok);
}

cg_optim *cg_adagrad_new(cg_module *m, const cg_adagrad_opts *opts) {
    const char *fn = "cg_adagrad_new";
    cg_optim *o = optim_alloc(fn, m, opts, ADAGRAD);
    if (!o || !check_adagrad(opts)) return finish(o, false);
    o->opt.ada = *opts;
    o->lr = opts->lr;
    return finish(o, add_state(o, fn, "sum", opts->initial_accumulator_value));
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

/* ---- stepping and the rest ---------------------------------------------------- */
/* The step writes the flat buffer directly; bumping each parameter's version
 * makes a graph recorded before the step refuse a backward after it, as
 * PyTorch's in-place update does. */
static void bump_versions(cg_module *m) {
    for (int i = 0; i < cg_module_nparams(m); i++) cgi_bump_version(cg_module_param(m, i, NULL));
    if (cg_module_numel(m) > 0) cgi_bump_version(cg_module_flat_params(m));
}

cg_status cg_optim_step(cg_optim *o) {
    if (!o) return cgi_error(NULL, CG_ERR_ARG, "cg_optim_step: optimizer is NULL");
    cg_module *m = o->m;
    cg_tensor *fp = cg_module_numel(m) > 0 ? cg_module_flat_params(m) : NULL;
    if ((o->n > 0 && !fp) || cg_module_numel(m) != o->n || (o->n > 0 && cg_dtype_of(fp) != o->dt))
        return cgi_error(NULL, CG_ERR_STATE, "cg_optim_step: the %s optimizer's module "
                         "changed (was it put in a container?)", kind_name[o->kind]);
    o->steps++;
    if (o->n == 0) return CG_OK;
    step_fns[o->kind](o, cg_data(fp), cg_data(cg_module_flat_grads(m)), o->steps);
    bump_versions(m);
    return CG_OK;
}

void cg_optim_zero_grad(cg_optim *o) {
    if (o) cg_module_zero_grad(o->m);
}

double cg_optim_lr(const cg_optim *o) { return o ? o->lr : NAN; }

void cg_optim_set_lr(cg_optim *o, double lr) {
    if (!o) return;
    if (!(lr >= 0 && isfinite(lr))) {
        cgi_error(NULL, CG_ERR_ARG, "cg_optim_set_lr: lr %g must be finite and >= 0 "
                  "(kept %g)", lr, o->lr);
        return;
    }
    o->lr = lr;
}

/* Stubs until parameter groups land: one group. */
int cg_optim_ngroups(const cg_optim *o) { return o ? 1 : 0; }
double cg_optim_group_lr(const cg_optim *o, int group) {
    return o && group == 0 ? o->lr : NAN;
}
cg_status cg_optim_set_group_lr(cg_optim *o, int group, double lr) {
    if (!o || group != 0) return cgi_error(NULL, CG_ERR_ARG, "cg_optim_set_group_lr: bad group");
    cg_optim_set_lr(o, lr);
    return cg_last_status();
}
char *cgi_optim_meta(const cg_optim *o) {
    (void)o;
    char *s = malloc(1);
    if (s) *s = 0;
    return s;
}
cg_status cgi_optim_restore_meta(cg_optim *o, const char *text, bool apply, const char *fn) {
    (void)o, (void)text, (void)apply, (void)fn;
    return CG_OK;
}

int64_t cg_optim_steps(const cg_optim *o) { return o ? o->steps : 0; }

/* For checkpoint resume, with the state buffers copied in: the next step
 * uses t = steps + 1 (bias corrections, SGD's first-step rule). */
void cg_optim_set_steps(cg_optim *o, int64_t steps) {
    if (!o) return;
    if (steps < 0) {
        cgi_error(NULL, CG_ERR_ARG, "cg_optim_set_steps: steps %lld < 0", (long long)steps);
        return;
    }
    o->steps = steps;
}

const char *cg_optim_name(const cg_optim *o) { return o ? kind_name[o->kind] : "NULL"; }
int cg_optim_nstate(const cg_optim *o) { return o ? o->nstate : 0; }

cg_tensor *cg_optim_state(const cg_optim *o, int i, const char **name) {
    if (!o || i < 0 || i >= o->nstate) return NULL;
    if (name) *name = o->names[i];
    return o->views[i];
}

void cg_optim_free(cg_optim *o) {
    if (!o) return;
    for (int i = 0; i < MAX_STATE; i++) {
        cg_tensor_free(o->views[i]);
        free(o->state[i]);
    }
    free(o);
}
