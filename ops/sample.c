/* Sampling for generation: torch.multinomial, and one token per row of
 * logits with a temperature and top-k (nanoGPT's generate step).
 *
 * Rows are drawn in order, one cg_rng_uniform per sample, on the calling
 * thread, so a seed gives the same tokens on every machine and thread
 * count. A draw u in [0, total) picks the first category whose cumulative
 * weight exceeds u: a category of weight 0 is never picked. No gradient
 * (indices are not differentiable). */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A row of t ([V] or [B, V]) as doubles. */
static void load_row(const cg_tensor *t, int64_t row, double *w) {
    int64_t v = t->shape[t->ndim - 1], cs = t->strides[t->ndim - 1];
    const char *p = cgi_ptr(t);
    int64_t off = t->ndim == 2 ? row * t->strides[0] : 0;
    for (int64_t j = 0; j < v; j++) {
        int64_t at = off + j * cs;
        w[j] = t->dtype == CG_F32 ? ((const float *)p)[at] : ((const double *)p)[at];
    }
}

/* The first category whose running sum of w exceeds u (u in [0, total));
 * if rounding leaves none, the last category of non-zero weight. */
static int64_t pick(const double *w, int64_t v, double u) {
    double acc = 0;
    int64_t last = 0;
    for (int64_t j = 0; j < v; j++) {
        if (w[j] <= 0) continue;
        acc += w[j];
        last = j;
        if (acc > u) return j;
    }
    return last;
}

static double total_of(const double *w, int64_t v) {
    double s = 0;
    for (int64_t j = 0; j < v; j++) s += w[j];
    return s;
}

/* The shared checks: [V] or [B, V] of a float dtype with V >= 1, an rng. */
static bool table_ok(cg_ctx *ctx, const char *name, const char *what, const cg_tensor *t,
                     cg_rng *rng) {
    char s[128];
    if (!cgi_is_float(t->dtype))
        cgi_error(ctx, CG_ERR_DTYPE, "%s: %s %s is %s: needs f32 or f64", name, what,
                  cg_shape_str(t, s, sizeof s), cg_dtype_name(t->dtype));
    else if (t->ndim < 1 || t->ndim > 2)
        cgi_error(ctx, CG_ERR_SHAPE, "%s: %s %s: needs [V] or [B, V]", name, what,
                  cg_shape_str(t, s, sizeof s));
    else if (t->shape[t->ndim - 1] < 1)
        cgi_error(ctx, CG_ERR_SHAPE, "%s: %s %s has no categories", name, what,
                  cg_shape_str(t, s, sizeof s));
    else if (!rng)
        cgi_error(ctx, CG_ERR_ARG, "%s: %s %s: rng is NULL", name, what,
                  cg_shape_str(t, s, sizeof s));
    else
        return true;
    return false;
}

/* ---- multinomial ------------------------------------------------------------------------- */
/* Row r of probs: finite, >= 0, a positive sum and (without replacement)
 * at least n categories of non-zero weight, as torch.multinomial asks. */
static bool probs_row_ok(cg_ctx *ctx, const cg_tensor *probs, const double *w, int64_t r,
                         int64_t n, bool replacement) {
    int64_t v = probs->shape[probs->ndim - 1], nonzero = 0;
    char s[128];
    cg_shape_str(probs, s, sizeof s);
    for (int64_t j = 0; j < v; j++) {
        if (!(w[j] >= 0) || isinf(w[j])) {
            cgi_error(ctx, CG_ERR_ARG,
                      "cg_multinomial: probs %s: row %lld holds %g: probabilities must be "
                      "finite and >= 0",
                      s, (long long)r, w[j]);
            return false;
        }
        nonzero += w[j] > 0;
    }
    if (nonzero == 0)
        cgi_error(ctx, CG_ERR_ARG, "cg_multinomial: probs %s: row %lld sums to 0", s,
                  (long long)r);
    else if (!replacement && nonzero < n)
        cgi_error(ctx, CG_ERR_ARG,
                  "cg_multinomial: probs %s: row %lld has %lld non-zero categories, fewer than "
                  "the %lld samples drawn without replacement",
                  s, (long long)r, (long long)nonzero, (long long)n);
    else
        return true;
    return false;
}

/* n draws from row w (scratch: modified without replacement) into out. */
static void draw_row(double *w, int64_t v, int64_t n, bool replacement, cg_rng *rng,
                     int64_t *out) {
    double total = total_of(w, v);
    for (int64_t s = 0; s < n; s++) {
        int64_t j = pick(w, v, cg_rng_uniform(rng) * total);
        out[s] = j;
        if (!replacement) {
            w[j] = 0;
            total = total_of(w, v);
        }
    }
}

static bool count_ok(cg_ctx *ctx, const cg_tensor *probs, int64_t n, bool replacement) {
    char s[128];
    int64_t v = probs->shape[probs->ndim - 1];
    if (n < 1)
        cgi_error(ctx, CG_ERR_ARG, "cg_multinomial: n = %lld samples: needs n >= 1",
                  (long long)n);
    else if (!replacement && n > v)
        cgi_error(ctx, CG_ERR_ARG,
                  "cg_multinomial: probs %s: cannot draw %lld > %lld samples without "
                  "replacement",
                  cg_shape_str(probs, s, sizeof s), (long long)n, (long long)v);
    else
        return true;
    return false;
}

cg_tensor *cg_multinomial(cg_ctx *ctx, const cg_tensor *probs, int64_t n, bool replacement,
                          cg_rng *rng) {
    CGI_INPUT_CHECK(probs, "cg_multinomial", 0);
    if (!table_ok(ctx, "cg_multinomial", "probs", probs, rng) ||
        !count_ok(ctx, probs, n, replacement))
        return NULL;
    int64_t v = probs->shape[probs->ndim - 1], rows = probs->ndim == 2 ? probs->shape[0] : 1;
    int64_t shape[2] = {rows, n};
    cg_tensor *out = cgi_new(ctx, "cg_multinomial", CG_I64, probs->ndim,
                             probs->ndim == 2 ? shape : shape + 1);
    double *w = out ? cgi_alloc(ctx, "cg_multinomial", sizeof(double) * (size_t)v) : NULL;
    bool ok = w != NULL;
    for (int64_t r = 0; ok && r < rows; r++) {
        load_row(probs, r, w);
        ok = probs_row_ok(ctx, probs, w, r, n, replacement);
        if (ok) draw_row(w, v, n, replacement, rng, (int64_t *)cgi_ptr(out) + r * n);
    }
    if (!ctx) free(w);
    if (!ok && !ctx) cg_tensor_free(out);
    return ok ? out : NULL;
}

/* ---- sampling from logits ---------------------------------------------------------------- */
static int desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Row r of logits (in x) as weights exp((x - max) / temperature) in w,
 * zero below the top_k-th largest (ties with it kept); tmp: V scratch. */
static bool logits_weights(cg_ctx *ctx, const cg_tensor *logits, const double *x, int64_t r,
                           double temp, int64_t top_k, double *w, double *tmp) {
    int64_t v = logits->shape[logits->ndim - 1];
    double mx = -INFINITY, thr = -INFINITY;
    char s[128];
    for (int64_t j = 0; j < v; j++) {
        if (isnan(x[j]) || x[j] == INFINITY) {
            cgi_error(ctx, CG_ERR_ARG, "cg_sample_logits: logits %s: row %lld holds %g",
                      cg_shape_str(logits, s, sizeof s), (long long)r, x[j]);
            return false;
        }
        mx = x[j] > mx ? x[j] : mx;
    }
    if (mx == -INFINITY) {
        cgi_error(ctx, CG_ERR_ARG, "cg_sample_logits: logits %s: row %lld is all -inf",
                  cg_shape_str(logits, s, sizeof s), (long long)r);
        return false;
    }
    if (top_k > 0 && top_k < v) {
        memcpy(tmp, x, sizeof(double) * (size_t)v);
        qsort(tmp, (size_t)v, sizeof(double), desc);
        thr = tmp[top_k - 1];
    }
    for (int64_t j = 0; j < v; j++) w[j] = x[j] >= thr ? exp((x[j] - mx) / temp) : 0;
    return true;
}

cg_tensor *cg_sample_logits(cg_ctx *ctx, const cg_tensor *logits, double temperature,
                            int64_t top_k, cg_rng *rng) {
    CGI_INPUT_CHECK(logits, "cg_sample_logits", 0);
    if (!table_ok(ctx, "cg_sample_logits", "logits", logits, rng)) return NULL;
    char sb[128];
    if (!(temperature > 0 && temperature < INFINITY) || top_k < 0) {
        cgi_error(ctx, CG_ERR_ARG,
                  "cg_sample_logits: logits %s: temperature %g, top_k %lld: need a finite "
                  "temperature > 0 and top_k >= 0 (0: all)",
                  cg_shape_str(logits, sb, sizeof sb), temperature, (long long)top_k);
        return NULL;
    }
    int64_t v = logits->shape[logits->ndim - 1],
            rows = logits->ndim == 2 ? logits->shape[0] : 1;
    cg_tensor *out = cgi_new(ctx, "cg_sample_logits", CG_I64, logits->ndim - 1, logits->shape);
    double *x = out ? cgi_alloc(ctx, "cg_sample_logits", sizeof(double) * 3 * (size_t)v) : NULL;
    bool ok = x != NULL;
    for (int64_t r = 0; ok && r < rows; r++) {
        load_row(logits, r, x);
        ok = logits_weights(ctx, logits, x, r, temperature, top_k, x + v, x + 2 * v);
        if (ok)
            ((int64_t *)cgi_ptr(out))[r] =
                pick(x + v, v, cg_rng_uniform(rng) * total_of(x + v, v));
    }
    if (!ctx) free(x);
    if (!ok && !ctx) cg_tensor_free(out);
    return ok ? out : NULL;
}
