/* gradcheck: analytic gradients (one backward per output element) against
 * central finite differences (two forwards per input element), all in
 * float64. gradgradcheck runs the same check on a function that returns
 * the gradients of the user's function, computed with CG_CREATE_GRAPH. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OUTS 16
#define MAX_INS  16

/* Builds up to MAX_OUTS outputs in ctx; returns how many, or -1. */
typedef int (*multi_fn)(cg_ctx *ctx, cg_tensor *const *inputs, void *user, cg_tensor **outs);

typedef struct check {
    multi_fn fn;
    void *user;
    int ninputs, nreq, nouts;
    cg_tensor *const *inputs;
    cg_tensor *req[MAX_INS]; /* the inputs that require a gradient */
    cg_gradcheck_opts o;
    cg_gradcheck_report *r;
    const char *name; /* the public function, for the thread's error */
    int64_t total_out, total_in;
    double *analytic, *numeric; /* [total_out][total_in] */
    double *plus, *minus;       /* [total_out] */
} check;

/* The check could not run: the report says why, and so does the thread's
 * error, under the public function's name (status st; CG_OK: the status of
 * the error in detail, which failed inside fn or backward). */
static bool fail_status(check *c, cg_status st, const char *what, const char *detail) {
    c->r->ok = false;
    snprintf(c->r->msg, sizeof c->r->msg, "gradcheck: %s%s", what, detail);
    if (st == CG_OK) st = cg_last_status() != CG_OK ? cg_last_status() : CG_ERR_STATE;
    cgi_error(NULL, st, "%s: %s", c->name, c->r->msg + strlen("gradcheck: "));
    return false;
}
static bool fail(check *c, const char *what, const char *detail) {
    return fail_status(c, CG_ERR_ARG, what, detail);
}

/* Address of the flat (C-order) element k of an f64 tensor. */
static double *element(const cg_tensor *t, int64_t k) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (k % t->shape[d]) * t->strides[d];
        k /= t->shape[d];
    }
    return (double *)cgi_ptr(t) + off;
}

static bool validate(check *c) {
    c->total_in = 0;
    c->nreq = 0;
    for (int i = 0; i < c->ninputs; i++) {
        cg_tensor *x = c->inputs[i];
        if (!x) return fail(c, "an input is NULL", "");
        if (cgi_stale(x)) { /* the thread's error is the stale one, named as usual */
            cgi_stale_error(NULL, c->name, i, x);
            c->r->ok = false;
            snprintf(c->r->msg, sizeof c->r->msg, "gradcheck: %s", cg_last_error());
            return false;
        }
        if (!x->requires_grad) continue;
        if (x->dtype != CG_F64)
            return fail_status(c, CG_ERR_DTYPE, "inputs that require a gradient must be f64",
                               "");
        for (int d = 0; d < x->ndim; d++)
            if (x->strides[d] == 0 && x->shape[d] > 1)
                return fail(c, "an input overlaps itself (stride 0)", "");
        if (c->nreq == MAX_INS) return fail(c, "too many inputs", "");
        c->req[c->nreq++] = x;
        c->total_in += cgi_numel(x->ndim, x->shape);
    }
    if (c->nreq == 0) return fail(c, "no input requires a gradient", "");
    return true;
}

/* Runs fn in ctx; the outputs' values (C order) go to vals when non-NULL. */
static bool evaluate(check *c, cg_ctx *ctx, cg_tensor **outs, double *vals) {
    int n = c->fn(ctx, c->inputs, c->user, outs);
    int64_t total = 0;
    if (n < 1 || n > MAX_OUTS)
        return fail_status(c, CG_OK, "the function failed: ", cg_last_error());
    for (int j = 0; j < n; j++) {
        if (!outs[j]) return fail_status(c, CG_OK, "the function failed: ", cg_last_error());
        if (!cgi_is_float(outs[j]->dtype))
            return fail_status(c, CG_ERR_DTYPE, "outputs must be f32 or f64", "");
        if (vals) cg_copy_to_array(outs[j], CG_F64, vals + total);
        total += cgi_numel(outs[j]->ndim, outs[j]->shape);
    }
    if (vals && total != c->total_out) return fail(c, "the output size changed", "");
    c->nouts = n;
    c->total_out = total;
    return true;
}

/* Row `row` of the analytic Jacobian: element k of output j gets gradient 1
 * (only outputs that require a gradient take part). */
static bool analytic_row(check *c, cg_ctx *ctx, cg_tensor **outs, int j, int64_t k,
                         int64_t row) {
    cg_tensor *live[MAX_OUTS], *gouts[MAX_OUTS], *grads[MAX_INS];
    int n = 0;
    for (int q = 0; q < c->nouts; q++) {
        if (!outs[q]->requires_grad) continue;
        live[n] = outs[q];
        gouts[n] = cg_zeros(ctx, outs[q]->dtype, outs[q]->ndim, outs[q]->shape);
        if (!gouts[n]) return fail_status(c, CG_OK, "", cg_last_error());
        if (q == j && outs[q]->dtype == CG_F64) ((double *)cg_data(gouts[n]))[k] = 1.0;
        if (q == j && outs[q]->dtype == CG_F32) ((float *)cg_data(gouts[n]))[k] = 1.0f;
        n++;
    }
    if (cg_grad(ctx, n, live, (const cg_tensor *const *)gouts, c->nreq, c->req, grads,
                CG_RETAIN_GRAPH) != CG_OK)
        return fail_status(c, CG_OK, "backward failed: ", cg_last_error());
    double *dst = c->analytic + row * c->total_in;
    for (int i = 0; i < c->nreq; i++) {
        cg_copy_to_array(grads[i], CG_F64, dst);
        dst += cgi_numel(c->req[i]->ndim, c->req[i]->shape);
    }
    return true;
}

static bool analytic(check *c, cg_ctx *ctx) {
    cg_tensor *outs[MAX_OUTS];
    if (!evaluate(c, ctx, outs, NULL)) return false;
    size_t n = (size_t)(c->total_out * c->total_in);
    c->analytic = calloc(n ? n : 1, sizeof(double));
    c->numeric = calloc(n ? n : 1, sizeof(double));
    c->plus = calloc((size_t)c->total_out + 1, sizeof(double));
    c->minus = calloc((size_t)c->total_out + 1, sizeof(double));
    if (!c->analytic || !c->numeric || !c->plus || !c->minus)
        return fail_status(c, CG_ERR_NOMEM, "out of memory", "");
    int64_t row = 0;
    for (int j = 0; j < c->nouts; j++) {
        cg_tensor *o = outs[j];
        if (!o->requires_grad) { /* constant output: its row stays zero */
            row += cgi_numel(o->ndim, o->shape);
            continue;
        }
        for (int64_t k = 0; k < cgi_numel(o->ndim, o->shape); k++, row++)
            if (!analytic_row(c, ctx, outs, j, k, row)) return false;
    }
    return true;
}

/* Column `col` of the numeric Jacobian from f(x + eps) and f(x - eps). */
static bool numeric_column(check *c, cg_ctx *ctx, double *x, int64_t col) {
    cg_tensor *outs[MAX_OUTS];
    double saved = *x;
    *x = saved + c->o.eps;
    bool ok = evaluate(c, ctx, outs, c->plus);
    cg_ctx_reset(ctx);
    *x = saved - c->o.eps;
    ok = ok && evaluate(c, ctx, outs, c->minus);
    cg_ctx_reset(ctx);
    *x = saved;
    for (int64_t r = 0; ok && r < c->total_out; r++)
        c->numeric[r * c->total_in + col] = (c->plus[r] - c->minus[r]) / (2 * c->o.eps);
    return ok;
}

static bool numeric(check *c, cg_ctx *ctx) {
    int64_t col = 0;
    for (int i = 0; i < c->nreq; i++)
        for (int64_t k = 0; k < cgi_numel(c->req[i]->ndim, c->req[i]->shape); k++, col++)
            if (!numeric_column(c, ctx, element(c->req[i], k), col)) return false;
    return true;
}

/* Column q of the Jacobian is element *k of the user's input *input. */
static void locate(const check *c, int64_t q, int *input, int64_t *k) {
    int i = 0;
    while (q >= cgi_numel(c->req[i]->ndim, c->req[i]->shape)) {
        q -= cgi_numel(c->req[i]->ndim, c->req[i]->shape);
        i++;
    }
    for (int in = 0; in < c->ninputs; in++)
        if (c->inputs[in] == c->req[i]) *input = in;
    *k = q;
}

static bool report_failure(check *c, int64_t r, int64_t q, double a, double n) {
    cg_gradcheck_report *rep = c->r;
    locate(c, q, &rep->input, &rep->element);
    rep->output_element = r;
    rep->analytic = a;
    rep->numeric = n;
    rep->abs_err = fabs(a - n);
    rep->rel_err = rep->abs_err / (fabs(n) > 0 ? fabs(n) : 1);
    rep->ok = false;
    snprintf(rep->msg, sizeof rep->msg,
             "gradcheck: input %d element %lld, output element %lld: analytic %.10g vs "
             "numeric %.10g (abs err %.3g, rel err %.3g; atol %g, rtol %g)",
             rep->input, (long long)rep->element, (long long)r, a, n, rep->abs_err,
             rep->rel_err, c->o.atol, c->o.rtol);
    return false;
}

/* Fails on the first element outside atol + rtol * |numeric|. */
static bool compare(check *c) {
    for (int64_t r = 0; r < c->total_out; r++)
        for (int64_t q = 0; q < c->total_in; q++) {
            double a = c->analytic[r * c->total_in + q], n = c->numeric[r * c->total_in + q];
            if (!(fabs(a - n) <= c->o.atol + c->o.rtol * fabs(n)))
                return report_failure(c, r, q, a, n);
        }
    return true;
}

static bool run_check(check *c) {
    cg_ctx *ctx = cg_ctx_new();
    bool ok = ctx && validate(c) && analytic(c, ctx);
    cg_ctx_reset(ctx);
    ok = ok && numeric(c, ctx) && compare(c);
    if (!ctx) fail_status(c, CG_ERR_NOMEM, "out of memory", "");
    cg_ctx_free(ctx);
    free(c->analytic);
    free(c->numeric);
    free(c->plus);
    free(c->minus);
    if (ok) c->r->ok = true;
    return ok;
}

cg_gradcheck_opts cg_gradcheck_defaults(void) { return (cg_gradcheck_opts){1e-6, 1e-5, 1e-3}; }

/* false for a tolerance or step that is negative or not finite (0: the default). */
static bool init(check *c, const cg_gradcheck_opts *opts, cg_gradcheck_report *r) {
    c->o = opts ? *opts : cg_gradcheck_defaults();
    memset(r, 0, sizeof *r);
    r->input = -1;
    r->element = r->output_element = -1;
    c->r = r;
    const double v[3] = {c->o.eps, c->o.atol, c->o.rtol};
    for (int i = 0; i < 3; i++)
        if (!(v[i] >= 0 && isfinite(v[i]))) return false;
    if (c->o.eps == 0) c->o.eps = 1e-6;
    if (c->o.atol == 0) c->o.atol = 1e-5;
    if (c->o.rtol == 0) c->o.rtol = 1e-3;
    return true;
}
#define BAD_OPTS "eps, atol and rtol must be finite and >= 0 (0: the default)"

/* ---- gradcheck ------------------------------------------------------------------- */
typedef struct single {
    cg_fn fn;
    void *user;
} single;

static int single_fn(cg_ctx *ctx, cg_tensor *const *inputs, void *user, cg_tensor **outs) {
    const single *s = user;
    outs[0] = s->fn(ctx, inputs, s->user);
    return 1;
}

bool cg_gradcheck(cg_fn fn, void *user, int ninputs, cg_tensor *const *inputs,
                  const cg_gradcheck_opts *opts, cg_gradcheck_report *report) {
    cg_gradcheck_report local;
    single s = {fn, user};
    check c = {.fn = single_fn,
               .user = &s,
               .ninputs = ninputs,
               .inputs = inputs,
               .name = "cg_gradcheck"};
    if (!init(&c, opts, report ? report : &local)) return fail(&c, BAD_OPTS, "");
    if (!fn || ninputs < 1 || !inputs) return fail(&c, "needs a function and inputs", "");
    return run_check(&c);
}

/* ---- gradgradcheck ------------------------------------------------------------------ */
/* The checked function: (inputs..., v) -> the gradients of fn at inputs for the
 * output gradient v, built with CG_CREATE_GRAPH so they are differentiable. */
typedef struct second {
    cg_fn fn;
    void *user;
    int ninputs; /* the user's; v comes after them */
} second;

static int second_fn(cg_ctx *ctx, cg_tensor *const *inputs, void *user, cg_tensor **outs) {
    const second *s = user;
    cg_tensor *out = s->fn(ctx, inputs, s->user), *req[MAX_INS];
    int nreq = 0;
    for (int i = 0; i < s->ninputs && nreq < MAX_INS; i++)
        if (inputs[i] && inputs[i]->requires_grad) req[nreq++] = inputs[i];
    const cg_tensor *v = inputs[s->ninputs];
    if (!out || cg_grad(ctx, 1, &out, &v, nreq, req, outs, CG_CREATE_GRAPH) != CG_OK) return -1;
    return nreq;
}

/* v: fixed random output gradients (f64, the output's shape), requiring grad. */
static cg_tensor *random_v(check *c, cg_fn fn, void *user, cg_tensor *const *inputs) {
    cg_ctx *ctx = cg_ctx_new();
    cg_tensor *out = ctx ? fn(ctx, inputs, user) : NULL, *v = NULL;
    cg_rng rng;
    cg_rng_seed(&rng, 20261122);
    if (out) v = cg_randn(NULL, &rng, out->dtype, out->ndim, out->shape, 0, 1);
    if (v) cg_set_requires_grad(v, true);
    if (!v) fail_status(c, CG_OK, "the function failed: ", cg_last_error());
    cg_ctx_free(ctx);
    return v;
}

bool cg_gradgradcheck(cg_fn fn, void *user, int ninputs, cg_tensor *const *inputs,
                      const cg_gradcheck_opts *opts, cg_gradcheck_report *report) {
    cg_gradcheck_report local;
    second s = {fn, user, ninputs};
    cg_tensor *ext[MAX_INS + 1];
    check c = {.fn = second_fn,
               .user = &s,
               .ninputs = ninputs + 1,
               .inputs = ext,
               .name = "cg_gradgradcheck"};
    if (!init(&c, opts, report ? report : &local)) return fail(&c, BAD_OPTS, "");
    if (!fn || ninputs < 1 || ninputs > MAX_INS || !inputs)
        return fail(&c, "needs a function and 1 to 16 inputs", "");
    memcpy(ext, inputs, sizeof(cg_tensor *) * (size_t)ninputs);
    ext[ninputs] = random_v(&c, fn, user, inputs);
    bool ok = ext[ninputs] && run_check(&c);
    cg_tensor_free(ext[ninputs]);
    return ok;
}
