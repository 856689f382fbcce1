/* Linear, activations, Sequential and the MLP builder. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

/* ---- Linear ------------------------------------------------------------------ */
static cg_tensor *linear_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    return cg_linear(ctx, x, cgi_slot_t(m, 0), m->nslots > 1 ? cgi_slot_t(m, 1) : NULL);
}
static const cgi_module_kind linear_kind = {"Linear", linear_forward};

/* PyTorch's reset_parameters: kaiming_uniform(a = sqrt(5)) for the weight,
 * which is U(-1/sqrt(in), 1/sqrt(in)), and the same bound for the bias. */
cg_module *cg_nn_linear(cg_rng *rng, cg_dtype dt, int64_t in, int64_t out, bool bias) {
    if (!rng || in < 1 || out < 1 || !cgi_is_float(dt)) {
        cgi_error(NULL, CG_ERR_ARG, "cg_nn_linear: in %lld, out %lld, dtype %s: need "
                  "sizes >= 1, a float dtype and an rng", (long long)in, (long long)out,
                  cg_dtype_name(dt));
        return NULL;
    }
    cg_module *m = cgi_module_new(&linear_kind, dt);
    cg_tensor *w = m ? cgi_module_add(m, "weight", CG_SHAPE(out, in), true, dt) : NULL;
    cg_tensor *b = w && bias ? cgi_module_add(m, "bias", CG_SHAPE(out), true, dt) : NULL;
    double bound = 1.0 / sqrt((double)in);
    bool ok = w && (!bias || b) &&
              cg_init_kaiming_uniform(w, rng, sqrt(5.0), CG_FAN_IN, CG_ACT_LEAKY_RELU) == CG_OK &&
              (!bias || cg_init_uniform(b, rng, -bound, bound) == CG_OK);
    return cgi_module_done(m, ok, "cg_nn_linear");
}

/* ---- activations as layers ------------------------------------------------------ */
static cg_tensor *apply_act(cg_ctx *ctx, cg_act act, const cg_tensor *x) {
    switch (act) {
    case CG_ACT_RELU: return cg_relu(ctx, x);
    case CG_ACT_TANH: return cg_tanh(ctx, x);
    case CG_ACT_SIGMOID: return cg_sigmoid(ctx, x);
    case CG_ACT_GELU: return cg_gelu(ctx, x);
    case CG_ACT_SILU: return cg_silu(ctx, x);
    case CG_ACT_LEAKY_RELU: return cg_leaky_relu(ctx, x, 0.01);
    case CG_ACT_ELU: return cg_elu(ctx, x, 1.0);
    case CG_ACT_NONE: return cg_contiguous(ctx, x);
    }
    return NULL;
}

static cg_tensor *act_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    return apply_act(ctx, (cg_act)m->act, x);
}
static const cgi_module_kind act_kinds[] = {
    {"Identity", act_forward}, {"ReLU", act_forward}, {"Tanh", act_forward},
    {"Sigmoid", act_forward},  {"GELU", act_forward}, {"SiLU", act_forward},
    {"LeakyReLU", act_forward}, {"ELU", act_forward},
};

cg_module *cg_nn_activation(cg_act act) {
    if ((int)act < 0 || (int)act >= (int)(sizeof act_kinds / sizeof act_kinds[0])) {
        cgi_error(NULL, CG_ERR_ARG, "cg_nn_activation: unknown activation %d", (int)act);
        return NULL;
    }
    cg_module *m = cgi_module_new(&act_kinds[act], CG_F32);
    if (m) m->act = (int)act;
    return cgi_module_done(m, m != NULL, "cg_nn_activation");
}

/* ---- Sequential ----------------------------------------------------------------- */
/* Without a context each child's output is caller-owned: free the ones in
 * between (a view of one keeps its storage alive by reference). */
static cg_tensor *sequential_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const cg_tensor *h = x;
    for (int i = 0; i < m->nchildren && h; i++) {
        cg_tensor *next = cg_module_forward(ctx, m->children[i], h);
        if (!ctx && h != x) cg_tensor_free((cg_tensor *)h);
        h = next;
    }
    return (cg_tensor *)h;
}
static const cgi_module_kind sequential_kind = {"Sequential", sequential_forward};

cg_module *cg_nn_sequential(int n, cg_module *const *children) {
    bool ok = n >= 0 && (n == 0 || children);
    for (int i = 0; ok && i < n; i++) ok = children[i] != NULL;
    cg_module *m = ok ? cgi_module_new(&sequential_kind, n ? children[0]->dtype : CG_F32) : NULL;
    cg_module **kids = m ? malloc(sizeof *kids * (size_t)(n ? n : 1)) : NULL;
    if (!kids) {
        if (!ok) cgi_error(NULL, CG_ERR_ARG, "cg_nn_sequential: a child is NULL");
        for (int i = 0; children && i < n; i++) cg_module_free(children[i]);
        free(m);
        return NULL;
    }
    for (int i = 0; i < n; i++) kids[i] = children[i];
    m->children = kids;
    m->nchildren = n;
    return cgi_module_done(m, true, "cg_nn_sequential");
}

/* ---- MLP -------------------------------------------------------------------------- */
cg_module *cg_nn_mlp(cg_rng *rng, cg_dtype dt, int nsizes, const int64_t *sizes, cg_act act) {
    if (nsizes < 2 || !sizes || nsizes > 64) {
        cgi_error(NULL, CG_ERR_ARG, "cg_nn_mlp: needs 2 to 64 layer sizes, got %d", nsizes);
        return NULL;
    }
    cg_module *layers[127];
    int n = 0;
    for (int i = 0; i + 1 < nsizes; i++) {
        layers[n++] = cg_nn_linear(rng, dt, sizes[i], sizes[i + 1], true);
        if (i + 2 < nsizes && act != CG_ACT_NONE) layers[n++] = cg_nn_activation(act);
    }
    for (int i = 0; i < n; i++)
        if (!layers[i]) { /* keep the first error; free the rest */
            for (int k = 0; k < n; k++) cg_module_free(layers[k]);
            return NULL;
        }
    return cg_nn_sequential(n, layers);
}
