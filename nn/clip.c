/* Gradient clipping: PyTorch's clip_grad_norm_ (L2, over all parameters
 * together) and clip_grad_value_, over a module's parameters or a plain list.
 * A module keeps its gradients in one flat buffer, so consecutive gradients
 * are usually adjacent: each pass runs one loop per maximal run of adjacent
 * gradients of one dtype. */
#include "internal.h"

#include <math.h>

/* The parameters: a plain list, or m's unique parameters. */
typedef struct plist {
    int n;
    cg_tensor *const *list;
    const cg_module *m;
} plist;

static cg_tensor *param_at(const plist *l, int i) {
    return l->m ? cg_module_param(l->m, i, NULL) : l->list[i];
}

/* The gradient clipping acts on: NULL for a frozen parameter or one without. */
static cg_tensor *grad_at(const plist *l, int i) {
    cg_tensor *t = param_at(l, i);
    return cg_requires_grad(t) ? cg_grad_of(t) : NULL;
}

/* The end (exclusive) of the run of gradients from i (which has one): each
 * starts where the previous ends, all of one dtype; *n its elements. */
static int run_end(const plist *l, int i, int64_t *n) {
    cg_tensor *g = grad_at(l, i);
    cg_dtype dt = cg_dtype_of(g);
    size_t es = cg_dtype_size(dt);
    char *end = (char *)cg_data(g) + (size_t)cg_numel(g) * es;
    *n = cg_numel(g);
    int j = i + 1;
    for (; j < l->n; j++) {
        cg_tensor *h = grad_at(l, j);
        if (!h || cg_dtype_of(h) != dt || (char *)cg_data(h) != end) break;
        *n += cg_numel(h);
        end += (size_t)cg_numel(h) * es;
    }
    return j;
}

/* Calls BODY(data, dtype, n) once per run of gradients. */
#define FOR_RUNS(l, BODY)                                                                      \
    for (int i_ = 0; i_ < (l)->n;) {                                                           \
        cg_tensor *g_ = grad_at(l, i_);                                                        \
        if (!g_) {                                                                             \
            i_++;                                                                              \
            continue;                                                                          \
        }                                                                                      \
        int64_t n_;                                                                            \
        int j_ = run_end(l, i_, &n_);                                                          \
        if (n_ > 0) BODY(cg_data(g_), cg_dtype_of(g_), n_);                                    \
        i_ = j_;                                                                               \
    }

/* NULL entries and strided gradients are refused before anything changes. */
static cg_status check_list(const char *fn, const plist *l) {
    if (l->n < 0 || (l->n > 0 && !l->list && !l->m))
        return cgi_error(NULL, CG_ERR_ARG, "%s: %d parameters at %s", fn, l->n,
                         l->list ? "params" : "NULL");
    for (int i = 0; i < l->n; i++) {
        if (!param_at(l, i))
            return cgi_error(NULL, CG_ERR_ARG, "%s: parameter %d is NULL", fn, i);
        cg_tensor *g = grad_at(l, i);
        if (g && !cg_is_contiguous(g))
            return cgi_error(NULL, CG_ERR_STATE,
                             "%s: the gradient of parameter %d is not "
                             "contiguous",
                             fn, i);
    }
    return CG_OK;
}

/* m's parameters; CG_ERR_ARG when m is NULL or inside a container (the
 * root owns the parameters). */
static cg_status module_list(const char *fn, const cg_module *m, plist *l) {
    if (!m) return cgi_error(NULL, CG_ERR_ARG, "%s: module is NULL", fn);
    if (!cg_module_flat_params(m))
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: module %s is inside a container: pass the "
                         "container",
                         fn, cg_module_name(m));
    *l = (plist){cg_module_nparams(m), NULL, m};
    return CG_OK;
}

/* ---- the norm ------------------------------------------------------------------- */
/* The sum of squares of one run is taken over this many fixed blocks, each
 * summed in order, then the blocks in order: the same bits on any thread
 * count. */
#define NBLOCKS 64

static double sum_squares(const void *g, cg_dtype dt, int64_t n) {
    const float *f = g;
    const double *d = g;
    double part[NBLOCKS];
    CGI_PAR_FOR(n > CGI_PAR_MIN, b, NBLOCKS, {
        int64_t lo = n * b / NBLOCKS, hi = n * (b + 1) / NBLOCKS;
        double s = 0;
        for (int64_t i = lo; i < hi; i++) {
            double x = dt == CG_F32 ? (double)f[i] : d[i];
            s += x * x;
        }
        part[b] = s;
    });
    double s = 0;
    for (int b = 0; b < NBLOCKS; b++) s += part[b];
    return s;
}

static void scale(void *g, cg_dtype dt, int64_t n, double c) {
    if (dt == CG_F32) {
        float *f = g, cf = (float)c;
        CGI_PAR_FOR(n > CGI_PAR_MIN, i, n, { f[i] *= cf; });
    } else {
        double *d = g;
        CGI_PAR_FOR(n > CGI_PAR_MIN, i, n, { d[i] *= c; });
    }
}

/* norm = sqrt(sum g^2) over the runs in order; when
 * c = max_norm / (norm + 1e-6) is below 1, every gradient is multiplied by c. */
static cg_status clip_norm(const char *fn, const plist *l, double max_norm, double *total) {
    cg_status st = check_list(fn, l);
    if (st != CG_OK) return st;
    if (!(max_norm >= 0))
        return cgi_error(NULL, CG_ERR_ARG, "%s: max_norm %g must be >= 0", fn, max_norm);
    double ss = 0;
#define ADD_SQUARES(p, dt, n) ss += sum_squares(p, dt, n)
    FOR_RUNS(l, ADD_SQUARES)
    double norm = sqrt(ss), c = max_norm / (norm + 1e-6);
#define SCALE(p, dt, n) scale(p, dt, n, c)
    if (c < 1) FOR_RUNS(l, SCALE)
    if (total) *total = norm;
    return CG_OK;
}

cg_status cg_clip_grad_norm_(cg_module *m, double max_norm, double *total_norm) {
    plist l;
    cg_status st = module_list("cg_clip_grad_norm_", m, &l);
    return st != CG_OK ? st : clip_norm("cg_clip_grad_norm_", &l, max_norm, total_norm);
}

cg_status cg_clip_grad_norm_params_(int n, cg_tensor *const *params, double max_norm,
                                    double *total_norm) {
    plist l = {n, params, NULL};
    return clip_norm("cg_clip_grad_norm_params_", &l, max_norm, total_norm);
}

/* ---- by value ---------------------------------------------------------------------- */
static void clamp(void *g, cg_dtype dt, int64_t n, double clip) {
    if (dt == CG_F32) {
        float *f = g, hi = (float)clip, lo = -hi;
        CGI_PAR_FOR(n > CGI_PAR_MIN, i, n, { f[i] = f[i] < lo ? lo : f[i] > hi ? hi : f[i]; });
    } else {
        double *d = g, hi = clip, lo = -clip;
        CGI_PAR_FOR(n > CGI_PAR_MIN, i, n, { d[i] = d[i] < lo ? lo : d[i] > hi ? hi : d[i]; });
    }
}

static cg_status clip_value(const char *fn, const plist *l, double clip) {
    cg_status st = check_list(fn, l);
    if (st != CG_OK) return st;
    if (!(clip >= 0)) return cgi_error(NULL, CG_ERR_ARG, "%s: clip %g must be >= 0", fn, clip);
#define CLAMP(p, dt, n) clamp(p, dt, n, clip)
    FOR_RUNS(l, CLAMP)
    return CG_OK;
}

cg_status cg_clip_grad_value_(cg_module *m, double clip) {
    plist l;
    cg_status st = module_list("cg_clip_grad_value_", m, &l);
    return st != CG_OK ? st : clip_value("cg_clip_grad_value_", &l, clip);
}

cg_status cg_clip_grad_value_params_(int n, cg_tensor *const *params, double clip) {
    plist l = {n, params, NULL};
    return clip_value("cg_clip_grad_value_params_", &l, clip);
}
