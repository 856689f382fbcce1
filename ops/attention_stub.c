/* STUB: replaced by the attn branch at merge.
 *
 * A composite cg_scaled_dot_product_attention (matmul, scale, mask,
 * softmax, dropout, matmul: B·H·T² scores held whole) and a plain
 * cg_sample_logits, so the transformer layers can be built and tested
 * before the fused kernels land. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"
#include "sample_stub.h"

cg_attn_opts cg_attn_defaults(void) {
    return (cg_attn_opts){.mask = NULL, .causal = false, .dropout = 0, .rng = NULL, .scale = 0};
}

/* q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv] of one float dtype. */
static bool attn_args_ok(const cg_tensor *q, const cg_tensor *k, const cg_tensor *v,
                         const cg_attn_opts *o) {
    const char *fn = "cg_scaled_dot_product_attention";
    int nd = cg_ndim(q);
    if (nd < 2 || cg_ndim(k) != nd || cg_ndim(v) != nd || cg_dim(q, -1) != cg_dim(k, -1) ||
        cg_dim(k, -2) != cg_dim(v, -2) || (o->causal && cg_dim(q, -2) != cg_dim(k, -2))) {
        char a[128], b[128], c[128];
        cgi_error(NULL, CG_ERR_SHAPE, "%s: q %s, k %s, v %s do not fit", fn,
                  cg_shape_str(q, a, sizeof a), cg_shape_str(k, b, sizeof b),
                  cg_shape_str(v, c, sizeof c));
        return false;
    }
    cg_dtype dt = cg_dtype_of(q);
    if (!cgi_is_float(dt) || cg_dtype_of(k) != dt || cg_dtype_of(v) != dt) {
        cgi_error(NULL, CG_ERR_DTYPE, "%s: q, k, v need one float dtype", fn);
        return false;
    }
    if (!(o->dropout >= 0 && o->dropout < 1) || (o->dropout > 0 && !o->rng)) {
        cgi_error(NULL, CG_ERR_ARG, "%s: dropout %g needs [0, 1) and an rng", fn, o->dropout);
        return false;
    }
    return true;
}

static cg_tensor *attn_composite(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k,
                                 const cg_tensor *v, const cg_attn_opts *o) {
    double scale = o->scale != 0 ? o->scale : 1.0 / sqrt((double)cg_dim(q, -1));
    cg_tensor *s = cg_mul_scalar(ctx, cg_matmul(ctx, q, cg_transpose(ctx, k, -2, -1)), scale);
    if (o->mask) s = cg_add(ctx, s, o->mask);
    if (o->causal) {
        int64_t t = cg_dim(q, -2);
        cg_tensor *above = cg_triu(ctx, cg_ones(ctx, cg_dtype_of(q), CG_SHAPE(t, t)), 1);
        s = cg_masked_fill(ctx, s, above, -INFINITY);
    }
    cg_tensor *p = cg_softmax(ctx, s, -1);
    if (o->dropout > 0) p = cg_dropout(ctx, p, o->dropout, true, o->rng);
    return cg_matmul(ctx, p, v);
}

cg_tensor *cg_scaled_dot_product_attention(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k,
                                           const cg_tensor *v, const cg_attn_opts *opts) {
    const char *fn = "cg_scaled_dot_product_attention";
    CGI_INPUT_CHECK(q, fn, 0);
    CGI_INPUT_CHECK(k, fn, 1);
    CGI_INPUT_CHECK(v, fn, 2);
    cg_attn_opts o = opts ? *opts : cg_attn_defaults();
    if (!attn_args_ok(q, k, v, &o)) return NULL;
    if (ctx) return attn_composite(ctx, q, k, v, &o);
    cg_ctx *tmp = cg_ctx_new(); /* caller-owned result: intermediates in a scratch context */
    cg_tensor *y = tmp ? cg_clone(NULL, attn_composite(tmp, q, k, v, &o)) : NULL;
    cg_ctx_free(tmp);
    return y;
}

/* ---- sampling ---------------------------------------------------------------------- */
static int by_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* One draw from softmax(row / temperature) over the top_k largest. */
static int64_t sample_row(double *row, double *sorted, int64_t nv, double temperature,
                          int64_t top_k, cg_rng *rng) {
    for (int64_t j = 0; j < nv; j++) sorted[j] = row[j];
    qsort(sorted, (size_t)nv, sizeof *sorted, by_desc);
    double cut = top_k > 0 && top_k < nv ? sorted[top_k - 1] : -INFINITY, sum = 0;
    for (int64_t j = 0; j < nv; j++) {
        row[j] = row[j] >= cut ? exp((row[j] - sorted[0]) / temperature) : 0;
        sum += row[j];
    }
    double u = cg_rng_uniform(rng) * sum;
    int64_t last = 0;
    for (int64_t j = 0; j < nv; j++) {
        if (row[j] > 0) last = j;
        if (row[j] > 0 && (u -= row[j]) < 0) return j;
    }
    return last;
}

cg_tensor *cg_sample_logits(cg_ctx *ctx, const cg_tensor *logits, double temperature,
                            int64_t top_k, cg_rng *rng) {
    CGI_INPUT_CHECK(logits, "cg_sample_logits", 0);
    if (cg_ndim(logits) != 2 || cg_dim(logits, 1) < 1 || !(temperature > 0) || !rng ||
        !cgi_is_float(cg_dtype_of(logits))) {
        cgi_error(ctx, CG_ERR_ARG,
                  "cg_sample_logits: need float logits [B, V >= 1], temperature > 0, an rng");
        return NULL;
    }
    int64_t nb = cg_dim(logits, 0), nv = cg_dim(logits, 1);
    double *all = malloc(sizeof(double) * (size_t)(nb * nv + nv));
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(nb > 0 ? nb : 1));
    cg_tensor *out = NULL;
    if (all && ids && cg_copy_to_array(logits, CG_F64, all) == CG_OK) {
        for (int64_t b = 0; b < nb; b++)
            ids[b] = sample_row(all + b * nv, all + nb * nv, nv, temperature, top_k, rng);
        out = cg_from_array(ctx, CG_I64, 1, &nb, ids);
    } else if (!all || !ids) {
        cgi_error(ctx, CG_ERR_NOMEM, "cg_sample_logits: out of memory");
    }
    free(all);
    free(ids);
    return out;
}
