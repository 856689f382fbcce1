/* Parameter initialisation, PyTorch's torch.nn.init, from an explicit rng.
 * Each fills a fresh random tensor and copies it in (cg_copy_ bumps the
 * version, so a graph that saved the old values notices). */
#include "internal.h"

#include <math.h>

static cg_status fill_from(cg_tensor *t, cg_tensor *r) {
    cg_status s = r ? cg_copy_(t, r) : cg_last_status();
    cg_tensor_free(r);
    return s;
}

cg_status cg_init_uniform(cg_tensor *t, cg_rng *rng, double lo, double hi) {
    if (!t) return cgi_error(NULL, CG_ERR_ARG, "cg_init_uniform: tensor is NULL");
    return fill_from(t, cg_rand(NULL, rng, CG_F64, cg_ndim(t), cg_shape(t), lo, hi));
}

cg_status cg_init_normal(cg_tensor *t, cg_rng *rng, double mean, double std) {
    if (!t) return cgi_error(NULL, CG_ERR_ARG, "cg_init_normal: tensor is NULL");
    return fill_from(t, cg_randn(NULL, rng, CG_F64, cg_ndim(t), cg_shape(t), mean, std));
}

cg_status cg_init_constant(cg_tensor *t, double value) {
    if (!t) return cgi_error(NULL, CG_ERR_ARG, "cg_init_constant: tensor is NULL");
    return cg_fill_(t, value);
}

double cg_init_gain(cg_act act, double param) {
    switch (act) {
    case CG_ACT_RELU: return sqrt(2.0);
    case CG_ACT_TANH: return 5.0 / 3.0;
    case CG_ACT_LEAKY_RELU: return sqrt(2.0 / (1.0 + param * param));
    default: return 1.0;
    }
}

/* PyTorch's _calculate_fan_in_and_fan_out: dims 0 and 1 times the
 * receptive field (the product of the rest). */
static cg_status fans(const cg_tensor *t, const char *op, double *fan_in, double *fan_out) {
    *fan_in = *fan_out = 1; /* defined even on error: callers compute before checking */
    if (!t) return cgi_error(NULL, CG_ERR_ARG, "%s: tensor is NULL", op);
    if (cg_ndim(t) < 2) {
        char buf[160];
        return cgi_error(NULL, CG_ERR_SHAPE, "%s: %s: fan in and fan out need 2 or more "
                         "dims", op, cg_shape_str(t, buf, sizeof buf));
    }
    double field = 1;
    for (int i = 2; i < cg_ndim(t); i++) field *= (double)cg_dim(t, i);
    *fan_in = (double)cg_dim(t, 1) * field;
    *fan_out = (double)cg_dim(t, 0) * field;
    return CG_OK;
}

cg_status cg_init_xavier_uniform(cg_tensor *t, cg_rng *rng, double gain) {
    double in, out;
    cg_status s = fans(t, "cg_init_xavier_uniform", &in, &out);
    double a = gain * sqrt(6.0 / (in + out));
    return s != CG_OK ? s : cg_init_uniform(t, rng, -a, a);
}

cg_status cg_init_xavier_normal(cg_tensor *t, cg_rng *rng, double gain) {
    double in, out;
    cg_status s = fans(t, "cg_init_xavier_normal", &in, &out);
    return s != CG_OK ? s : cg_init_normal(t, rng, 0, gain * sqrt(2.0 / (in + out)));
}

static double kaiming_std(double fan, double a, cg_act act) {
    return cg_init_gain(act, a) / sqrt(fan);
}

cg_status cg_init_kaiming_uniform(cg_tensor *t, cg_rng *rng, double a, cg_fan mode,
                                  cg_act act) {
    double in, out;
    cg_status s = fans(t, "cg_init_kaiming_uniform", &in, &out);
    double bound = sqrt(3.0) * kaiming_std(mode == CG_FAN_IN ? in : out, a, act);
    return s != CG_OK ? s : cg_init_uniform(t, rng, -bound, bound);
}

cg_status cg_init_kaiming_normal(cg_tensor *t, cg_rng *rng, double a, cg_fan mode,
                                 cg_act act) {
    double in, out;
    cg_status s = fans(t, "cg_init_kaiming_normal", &in, &out);
    return s != CG_OK ? s : cg_init_normal(t, rng, 0, kaiming_std(mode == CG_FAN_IN ? in : out, a, act));
}
