/* Gradient clipping over a module's flat gradient buffer: PyTorch's
 * clip_grad_norm_ (L2, over all parameters together) and clip_grad_value_. */
#include "internal.h"

#include <math.h>

/* The sum of squares is taken over this many fixed blocks, each summed in
 * order, then the blocks in order: the same bits on any thread count. */
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

/* Whether m has a gradient buffer: false (error recorded) when m is NULL or
 * inside a container (the root owns the buffer). */
static bool grads_of(const char *fn, const cg_module *m) {
    if (m && cg_module_flat_grads(m)) return true;
    cgi_error(NULL, CG_ERR_ARG, "%s: %s", fn,
              m ? "module is inside a container: pass the container" : "module is NULL");
    return false;
}

/* norm = sqrt(sum g^2) (accumulated in double); when
 * c = max_norm / (norm + 1e-6) is below 1, every gradient is multiplied by c.
 * A NaN norm leaves the gradients as they are. NaN on error. */
double cg_clip_grad_norm(cg_module *m, double max_norm) {
    if (!grads_of("cg_clip_grad_norm", m)) return NAN;
    if (!(max_norm >= 0)) {
        cgi_error(NULL, CG_ERR_ARG, "cg_clip_grad_norm: max_norm %g must be >= 0", max_norm);
        return NAN;
    }
    double norm = sqrt(sum_squares(cg_data(cg_module_flat_grads(m)), cg_dtype_of(cg_module_flat_grads(m)), cg_module_numel(m)));
    double c = max_norm / (norm + 1e-6);
    if (c < 1) scale(cg_data(cg_module_flat_grads(m)), cg_dtype_of(cg_module_flat_grads(m)), cg_module_numel(m), c);
    return norm;
}

/* g = min(max(g, -clip), clip); NaN stays NaN, as torch.clamp. */
void cg_clip_grad_value(cg_module *m, double clip) {
    if (!grads_of("cg_clip_grad_value", m)) return;
    if (!(clip >= 0)) {
        cgi_error(NULL, CG_ERR_ARG, "cg_clip_grad_value: clip %g must be >= 0", clip);
        return;
    }
    int64_t n = cg_module_numel(m);
    if (cg_dtype_of(cg_module_flat_grads(m)) == CG_F32) {
        float *f = cg_data(cg_module_flat_grads(m)), hi = (float)clip, lo = -hi;
        CGI_PAR_FOR(n > CGI_PAR_MIN, i, n, { f[i] = f[i] < lo ? lo : f[i] > hi ? hi : f[i]; });
    } else {
        double *d = cg_data(cg_module_flat_grads(m)), hi = clip, lo = -clip;
        CGI_PAR_FOR(n > CGI_PAR_MIN, i, n, { d[i] = d[i] < lo ? lo : d[i] > hi ? hi : d[i]; });
    }
}
