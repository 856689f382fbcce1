/* Parameter initialisation, PyTorch's torch.nn.init (its in-place names end
 * in _, as here), from an explicit rng. Each fills a fresh random tensor and
 * copies it in (cg_copy_ bumps the version, so a graph that saved the old
 * values notices). Errors name the function the user called. */
#include "internal.h"

#include <math.h>

/* t a float tensor, rng given: what every random init needs. */
static cg_status check(const cg_tensor *t, const cg_rng *rng, bool random, const char *op) {
    cg_status s = cgi_check_input(NULL, op, -1, t); /* NULL after a failure keeps it */
    if (s != CG_OK) return s;
    if (!cgi_is_float(cg_dtype_of(t)))
        return cgi_error(NULL, CG_ERR_DTYPE, "%s: a %s tensor: initialisers fill f32 or f64",
                         op, cg_dtype_name(cg_dtype_of(t)));
    if (random && !rng) return cgi_error(NULL, CG_ERR_ARG, "%s: rng is NULL", op);
    return cgi_check_writable(op, t);
}

static cg_status fill_from(cg_tensor *t, cg_tensor *r) {
    cg_status s = r ? cg_copy_(t, r) : cg_last_status();
    cg_tensor_free(r);
    return s;
}

static cg_status uniform(cg_tensor *t, cg_rng *rng, double lo, double hi, const char *op) {
    cg_status s = check(t, rng, true, op);
    if (s == CG_OK && !(lo <= hi && isfinite(lo) && isfinite(hi)))
        s = cgi_error(NULL, CG_ERR_ARG, "%s: bounds [%g, %g]: need finite lo <= hi", op, lo,
                      hi);
    return s != CG_OK
               ? s
               : fill_from(t, cg_rand(NULL, rng, CG_F64, cg_ndim(t), cg_shape(t), lo, hi));
}

static cg_status normal(cg_tensor *t, cg_rng *rng, double mean, double std, const char *op) {
    cg_status s = check(t, rng, true, op);
    if (s == CG_OK && !(std >= 0 && isfinite(std) && isfinite(mean)))
        s = cgi_error(NULL, CG_ERR_ARG, "%s: mean %g, std %g: need finite values, std >= 0", op,
                      mean, std);
    return s != CG_OK
               ? s
               : fill_from(t, cg_randn(NULL, rng, CG_F64, cg_ndim(t), cg_shape(t), mean, std));
}

cg_status cg_init_uniform_(cg_tensor *t, cg_rng *rng, double lo, double hi) {
    return uniform(t, rng, lo, hi, "cg_init_uniform_");
}

cg_status cg_init_normal_(cg_tensor *t, cg_rng *rng, double mean, double std) {
    return normal(t, rng, mean, std, "cg_init_normal_");
}

cg_status cg_init_constant_(cg_tensor *t, double value) {
    cg_status s = check(t, NULL, false, "cg_init_constant_");
    if (s == CG_OK) s = cgi_check_value(t->ctx, "cg_init_constant_", t->dtype, value);
    return s != CG_OK ? s : cg_fill_(t, value);
}

double cg_init_gain(cg_act act, double param) {
    switch (act) {
    case CG_ACT_RELU: return sqrt(2.0);
    case CG_ACT_TANH: return 5.0 / 3.0;
    case CG_ACT_LEAKY_RELU: return sqrt(2.0 / (1.0 + param * param));
    case CG_ACT_NONE:
    case CG_ACT_SIGMOID:
    case CG_ACT_GELU:
    case CG_ACT_SILU:
    case CG_ACT_ELU: return 1.0;
    }
    cgi_error(NULL, CG_ERR_ARG, "cg_init_gain: unknown activation %d", (int)act);
    return NAN;
}

/* PyTorch's _calculate_fan_in_and_fan_out: dims 0 and 1 times the
 * receptive field (the product of the rest). */
static cg_status fans(const cg_tensor *t, const cg_rng *rng, const char *op, double *fan_in,
                      double *fan_out) {
    cg_status s = check(t, rng, true, op);
    if (s != CG_OK) return s;
    if (cg_ndim(t) < 2) {
        char buf[160];
        return cgi_error(NULL, CG_ERR_SHAPE,
                         "%s: %s: fan in and fan out need 2 or more "
                         "dims",
                         op, cg_shape_str(t, buf, sizeof buf));
    }
    double field = 1;
    for (int i = 2; i < cg_ndim(t); i++) field *= (double)cg_dim(t, i);
    *fan_in = (double)cg_dim(t, 1) * field;
    *fan_out = (double)cg_dim(t, 0) * field;
    return CG_OK;
}

cg_status cg_init_xavier_uniform_(cg_tensor *t, cg_rng *rng, double gain) {
    const char *op = "cg_init_xavier_uniform_";
    double in, out;
    cg_status s = fans(t, rng, op, &in, &out);
    double a = s == CG_OK && cg_numel(t) > 0 ? gain * sqrt(6.0 / (in + out)) : 0;
    return s != CG_OK ? s : uniform(t, rng, -a, a, op);
}

cg_status cg_init_xavier_normal_(cg_tensor *t, cg_rng *rng, double gain) {
    const char *op = "cg_init_xavier_normal_";
    double in, out;
    cg_status s = fans(t, rng, op, &in, &out);
    double std = s == CG_OK && cg_numel(t) > 0 ? gain * sqrt(2.0 / (in + out)) : 0;
    return s != CG_OK ? s : normal(t, rng, 0, std, op);
}

/* gain(act, a) / sqrt(fan in or out), after checking mode and act. */
static cg_status kaiming_std(const cg_tensor *t, const cg_rng *rng, double a, cg_fan mode,
                             cg_act act, const char *op, double *std) {
    double in, out;
    cg_status s = fans(t, rng, op, &in, &out);
    if (s == CG_OK && mode != CG_FAN_IN && mode != CG_FAN_OUT)
        s = cgi_error(NULL, CG_ERR_ARG, "%s: mode %d is neither CG_FAN_IN nor CG_FAN_OUT", op,
                      (int)mode);
    double gain = s == CG_OK ? cg_init_gain(act, a) : 0;
    if (s == CG_OK && isnan(gain))
        s = cgi_error(NULL, CG_ERR_ARG, "%s: unknown activation %d", op, (int)act);
    /* no elements: nothing to fill (a fan of 0 would make the bound infinite) */
    *std = s == CG_OK && cg_numel(t) > 0 ? gain / sqrt(mode == CG_FAN_IN ? in : out) : 0;
    return s;
}

cg_status cg_init_kaiming_uniform_(cg_tensor *t, cg_rng *rng, double a, cg_fan mode,
                                   cg_act act) {
    const char *op = "cg_init_kaiming_uniform_";
    double std;
    cg_status s = kaiming_std(t, rng, a, mode, act, op, &std);
    return s != CG_OK ? s : uniform(t, rng, -sqrt(3.0) * std, sqrt(3.0) * std, op);
}

cg_status cg_init_kaiming_normal_(cg_tensor *t, cg_rng *rng, double a, cg_fan mode,
                                  cg_act act) {
    const char *op = "cg_init_kaiming_normal_";
    double std;
    cg_status s = kaiming_std(t, rng, a, mode, act, op, &std);
    return s != CG_OK ? s : normal(t, rng, 0, std, op);
}
