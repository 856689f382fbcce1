/* Random numbers: xoshiro256** (Blackman & Vigna, https://prng.di.unimi.it/)
 * seeded through splitmix64, and the random tensor creators.
 *
 * Reproducibility: every tensor is filled sequentially in C order on the
 * calling thread, each value computed in double and then rounded to the
 * dtype, so a seed gives the same numbers whatever the thread count. The
 * build uses -std=c11, under which GCC does not contract a*b+c into an FMA,
 * so the arithmetic is the same on every machine; only cg_rng_normal goes
 * through libm (log, cos), whose last bit may differ between C libraries.
 */
#include "tensor/internal.h"

#include <float.h>
#include <math.h>

#define SHAPE_BUF 256

/* ---- the generator ------------------------------------------------------- */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* splitmix64 is a bijection applied to four distinct counters, so the four
 * words differ and the state is never all zero (xoshiro's one bad state). */
cg_status cg_rng_seed(cg_rng *rng, uint64_t seed) {
    if (!rng) return cgi_error(NULL, CG_ERR_ARG, "cg_rng_seed: rng is NULL");
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
    return CG_OK;
}

uint64_t cg_rng_u64(cg_rng *rng) {
    if (!rng) {
        cgi_error(NULL, CG_ERR_ARG, "cg_rng_u64: rng is NULL");
        return 0;
    }
    uint64_t *s = rng->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* The top 53 bits (the best ones of xoshiro256**) scaled by 2^-53: every
 * value is an exact multiple of 2^-53 in [0, 1). */
double cg_rng_uniform(cg_rng *rng) {
    if (!rng) {
        cgi_error(NULL, CG_ERR_ARG, "cg_rng_uniform: rng is NULL");
        return 0.0;
    }
    return (double)(cg_rng_u64(rng) >> 11) * 0x1.0p-53;
}

/* Box-Muller, keeping only the cosine output: exactly two u64 draws per
 * value and no hidden spare (cg_rng has nowhere to keep one), so the stream
 * position after n normals is always 2n draws. 1 - u lies in (0, 1], which
 * keeps log away from 0. */
double cg_rng_normal(cg_rng *rng) {
    if (!rng) {
        cgi_error(NULL, CG_ERR_ARG, "cg_rng_normal: rng is NULL");
        return NAN;
    }
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = 1.0 - cg_rng_uniform(rng);
    double u2 = cg_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(two_pi * u2);
}

/* ---- random tensors ------------------------------------------------------ */

typedef struct rand_param {
    double a, b; /* lo and hi, mean and std, or p */
    cg_dtype dt;
} rand_param;

typedef double (*draw_fn)(cg_rng *rng, const rand_param *p);

/* lo + (hi - lo) * u can round up to hi even though u < 1, and so can the
 * rounding to f32: such values step down to the dtype's largest value below
 * hi so the range stays half-open. */
static double below_hi(double v, const rand_param *p) {
    if (p->dt == CG_F32) v = (float)v;
    if (v < p->b || p->a == p->b) return v;
    if (p->dt != CG_F32) return nextafter(p->b, -INFINITY);
    float f = (float)p->b;
    return (double)f < p->b ? f : nextafterf(f, -INFINITY);
}

static double draw_uniform(cg_rng *rng, const rand_param *p) {
    return below_hi(p->a + (p->b - p->a) * cg_rng_uniform(rng), p);
}

static double draw_normal(cg_rng *rng, const rand_param *p) {
    return p->a + p->b * cg_rng_normal(rng);
}

/* u < p: never for p = 0, always for p = 1 (u < 1). */
static double draw_bernoulli(cg_rng *rng, const rand_param *p) {
    return cg_rng_uniform(rng) < p->a ? 1.0 : 0.0;
}

static void fill(cg_tensor *t, cg_rng *rng, draw_fn draw, const rand_param *p) {
    int64_t n = cgi_numel(t->ndim, t->shape);
    void *data = cgi_ptr(t);
    for (int64_t i = 0; i < n; i++) {
        double v = draw(rng, p);
        switch (t->dtype) {
        case CG_F32: ((float *)data)[i] = (float)v; break;
        case CG_F64: ((double *)data)[i] = v; break;
        case CG_I64: ((int64_t *)data)[i] = (int64_t)v; break;
        }
    }
}

/* Shape, rng and dtype checks shared by the creators; on success sbuf holds
 * the shape for the caller's own messages. */
static cg_status check_common(cg_ctx *ctx, const char *op, const cg_rng *rng, cg_dtype dt,
                              int ndim, const int64_t *shape, bool allow_int, char *sbuf,
                              size_t size) {
    cg_status st = cgi_check_shape(ctx, op, ndim, shape);
    if (st != CG_OK) return st;
    cgi_fmt_shape(sbuf, size, ndim, shape);
    if (!rng) return cgi_error(ctx, CG_ERR_ARG, "%s: %s: rng is NULL", op, sbuf);
    if (!cgi_valid_dtype(dt))
        return cgi_error(ctx, CG_ERR_DTYPE, "%s: %s: invalid dtype %d", op, sbuf, (int)dt);
    if (!allow_int && !cgi_is_float(dt))
        return cgi_error(ctx, CG_ERR_DTYPE, "%s: %s: needs a floating dtype, got %s", op, sbuf,
                         cg_dtype_name(dt));
    return CG_OK;
}

static cg_tensor *make(cg_ctx *ctx, const char *op, cg_rng *rng, int ndim, const int64_t *shape,
                       draw_fn draw, const rand_param *p) {
    cg_tensor *t = cgi_new(ctx, op, p->dt, ndim, shape);
    if (t) fill(t, rng, draw, p);
    return t;
}

cg_tensor *cg_rand(cg_ctx *ctx, cg_rng *rng, cg_dtype dt, int ndim, const int64_t *shape,
                   double lo, double hi) {
    const char *op = "cg_rand";
    char sb[SHAPE_BUF];
    if (check_common(ctx, op, rng, dt, ndim, shape, false, sb, sizeof sb) != CG_OK) return NULL;
    /* hi - lo must not overflow, and f32 bounds must be representable. */
    double lim = dt == CG_F32 ? FLT_MAX : DBL_MAX;
    if (!(lo <= hi) || !isfinite(hi - lo) || fabs(lo) > lim || fabs(hi) > lim) {
        cgi_error(ctx, CG_ERR_ARG, "%s: %s: bad range [%g, %g) for %s", op, sb, lo, hi,
                  cg_dtype_name(dt));
        return NULL;
    }
    rand_param p = {lo, hi, dt};
    return make(ctx, op, rng, ndim, shape, draw_uniform, &p);
}

cg_tensor *cg_randn(cg_ctx *ctx, cg_rng *rng, cg_dtype dt, int ndim, const int64_t *shape,
                    double mean, double std) {
    const char *op = "cg_randn";
    char sb[SHAPE_BUF];
    if (check_common(ctx, op, rng, dt, ndim, shape, false, sb, sizeof sb) != CG_OK) return NULL;
    if (!isfinite(mean) || !isfinite(std) || std < 0) {
        cgi_error(ctx, CG_ERR_ARG, "%s: %s: need finite mean and std >= 0, got %g, %g", op, sb,
                  mean, std);
        return NULL;
    }
    rand_param p = {mean, std, dt};
    return make(ctx, op, rng, ndim, shape, draw_normal, &p);
}

cg_tensor *cg_bernoulli(cg_ctx *ctx, cg_rng *rng, cg_dtype dt, int ndim, const int64_t *shape,
                        double p) {
    const char *op = "cg_bernoulli";
    char sb[SHAPE_BUF];
    if (check_common(ctx, op, rng, dt, ndim, shape, true, sb, sizeof sb) != CG_OK) return NULL;
    if (!(p >= 0.0 && p <= 1.0)) { /* also rejects NaN */
        cgi_error(ctx, CG_ERR_ARG, "%s: %s: p = %g is not in [0, 1]", op, sb, p);
        return NULL;
    }
    rand_param par = {p, 0.0, dt};
    return make(ctx, op, rng, ndim, shape, draw_bernoulli, &par);
}
