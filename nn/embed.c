/* Embedding: a table of num vectors of size dim, looked up by i64 index. */
#include "internal.h"

#include <stdio.h>

/* indices i64 [...] -> [..., dim]; the gradient scatter-adds into the rows
 * used (cg_embedding's backward). */
static cg_tensor *embedding_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    return cg_embedding(ctx, cg_module_get(m, "weight"), x);
}

static void embedding_describe(const cg_module *m, char *buf, size_t size) {
    const cg_tensor *w = cg_module_get(m, "weight");
    snprintf(buf, size, "%lld, %lld", (long long)cg_dim(w, 0), (long long)cg_dim(w, 1));
}

static const cg_module_kind embedding_kind = {"Embedding", embedding_forward, NULL,
                                              embedding_describe};

/* PyTorch's reset_parameters: weight [num, dim] drawn from N(0, 1). */
cg_module *cg_nn_embedding(cg_rng *rng, cg_dtype dt, int64_t num, int64_t dim) {
    if (!rng || num < 1 || dim < 1 || !cgi_is_float(dt)) {
        cgi_error(NULL, CG_ERR_ARG,
                  "cg_nn_embedding: num %lld, dim %lld, dtype %s: need "
                  "sizes >= 1, a float dtype and an rng",
                  (long long)num, (long long)dim, cg_dtype_name(dt));
        return NULL;
    }
    const char *fn = "cg_nn_embedding";
    cg_module *m = cgi_module_new(&embedding_kind, NULL, fn);
    cg_tensor *w =
        cgi_module_add(m, "weight", cg_zeros(NULL, dt, CG_SHAPE(num, dim)), true, fn);
    return cgi_module_done(m, w && cg_init_normal_(w, rng, 0.0, 1.0) == CG_OK, fn);
}
