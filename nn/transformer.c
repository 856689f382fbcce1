/* MultiheadAttention, the pre-LayerNorm transformer block and a GPT-2 style
 * language model: module kinds on the public interface of nn/module.c, with
 * PyTorch's state_dict names. Attention itself is one call to
 * cg_scaled_dot_product_attention on [B, H, T, D] views. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- MultiheadAttention ------------------------------------------------------------ */
typedef struct mha_data {
    int64_t heads;
    double dropout; /* on the attention weights, in training */
    cg_rng *rng;    /* borrowed: dropout's generator */
    bool bias;
} mha_data;

static const cg_module_kind mha_kind;

static int64_t embed_of(const cg_module *m) {
    return cg_dim(cg_module_get(m, "in_proj_weight"), 1);
}

/* x [B, T, E] (any strides) -> [B, H, T, D] as a view when x's strides allow,
 * else a copy. */
static cg_tensor *split_heads(cg_ctx *ctx, const cg_tensor *x, int64_t heads) {
    int64_t b = cg_dim(x, 0), t = cg_dim(x, 1), e = cg_dim(x, 2);
    return cg_transpose(ctx, cg_reshape(ctx, x, CG_SHAPE(b, t, heads, e / heads)), 1, 2);
}

/* [B, H, T, D] -> [B, T, H * D] (a copy: the heads are interleaved). */
static cg_tensor *merge_heads(cg_ctx *ctx, const cg_tensor *x) {
    int64_t b = cg_dim(x, 0), h = cg_dim(x, 1), t = cg_dim(x, 2), d = cg_dim(x, 3);
    return cg_reshape(ctx, cg_transpose(ctx, x, 1, 2), CG_SHAPE(b, t, h * d));
}

/* Rows [part E, (part + 1) E) of in_proj_weight (and of in_proj_bias) as
 * the projection of q (part 0), k (1) or v (2): y = x W_part^T + b_part. */
static cg_tensor *project(cg_ctx *ctx, const cg_module *m, const cg_tensor *x, int part) {
    const mha_data *d = cg_module_data(m);
    int64_t e = embed_of(m);
    cg_tensor *w = cg_narrow(ctx, cg_module_get(m, "in_proj_weight"), 0, part * e, e);
    cg_tensor *b =
        d->bias ? cg_narrow(ctx, cg_module_get(m, "in_proj_bias"), 0, part * e, e) : NULL;
    return cg_linear(ctx, x, w, b);
}

/* q, k, v projected: one GEMM for self-attention (q == k == v), whose [B, T,
 * 3E] result is cut into three views; three otherwise. */
static bool project_qkv(cg_ctx *ctx, const cg_module *m, const cg_tensor *const in[3],
                        cg_tensor *out[3]) {
    if (in[0] == in[1] && in[1] == in[2]) {
        const mha_data *d = cg_module_data(m);
        cg_tensor *all = cg_linear(ctx, in[0], cg_module_get(m, "in_proj_weight"),
                                   d->bias ? cg_module_get(m, "in_proj_bias") : NULL);
        return cg_chunk(ctx, all, 3, 2, out, 3) == 3;
    }
    for (int i = 0; i < 3; i++) out[i] = project(ctx, m, in[i], i);
    return out[0] && out[1] && out[2];
}

/* q [B, Tq, E], k and v [B, Tk, E] of the module's dtype. */
static bool mha_inputs_ok(cg_ctx *ctx, const cg_module *m, const cg_tensor *const in[3]) {
    const char *fn = "cg_mha_forward", *names[3] = {"q", "k", "v"};
    int64_t e = embed_of(m);
    cg_dtype dt = cg_dtype_of(cg_module_get(m, "in_proj_weight"));
    for (int i = 0; i < 3; i++) {
        char s[128];
        cg_shape_str(in[i], s, sizeof s);
        if (cg_ndim(in[i]) != 3 || cg_dim(in[i], 2) != e ||
            cg_dim(in[i], 0) != cg_dim(in[0], 0) ||
            (i == 2 && cg_dim(in[2], 1) != cg_dim(in[1], 1))) {
            cgi_error(ctx, CG_ERR_SHAPE,
                      "%s: %s %s: expected [B, T, %lld] (batch_first), one B for q, k "
                      "and v, one T for k and v",
                      fn, names[i], s, (long long)e);
            return false;
        }
        if (cg_dtype_of(in[i]) != dt) {
            cgi_error(ctx, CG_ERR_DTYPE, "%s: %s %s is %s, the module's parameters %s", fn,
                      names[i], s, cg_dtype_name(cg_dtype_of(in[i])), cg_dtype_name(dt));
            return false;
        }
    }
    return true;
}

cg_tensor *cg_mha_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *q, const cg_tensor *k,
                          const cg_tensor *v, const cg_tensor *mask, bool causal) {
    const char *fn = "cg_mha_forward";
    if (!ctx || !m || cg_module_kind_of(m) != &mha_kind) {
        cgi_error(ctx, CG_ERR_ARG, "%s: needs a context and a MultiheadAttention module (%s)",
                  fn, ctx ? cg_module_name(m) : "ctx is NULL");
        return NULL;
    }
    CGI_INPUT_CHECK(q, fn, 0);
    CGI_INPUT_CHECK(k, fn, 1);
    CGI_INPUT_CHECK(v, fn, 2);
    const cg_tensor *in[3] = {q, k, v};
    cg_tensor *p[3];
    if (!mha_inputs_ok(ctx, m, in) || !project_qkv(ctx, m, in, p)) return NULL;
    const mha_data *d = cg_module_data(m);
    cg_attn_opts o = cg_attn_defaults();
    o.mask = mask;
    o.causal = causal;
    o.dropout = cg_module_is_training(m) ? d->dropout : 0;
    o.rng = d->rng;
    cg_tensor *y = cg_scaled_dot_product_attention(ctx, split_heads(ctx, p[0], d->heads),
                                                   split_heads(ctx, p[1], d->heads),
                                                   split_heads(ctx, p[2], d->heads), &o);
    y = cg_module_forward(ctx, cg_module_find_child(m, "out_proj"), merge_heads(ctx, y));
    if (!y) cgi_name_failure(fn); /* a bad mask or causal: named by attention */
    return y;
}

/* The module's forward: self-attention of x [B, T, E], no mask. */
static cg_tensor *mha_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    return cg_mha_forward(ctx, m, x, x, x, NULL, false);
}

static void mha_describe(const cg_module *m, char *buf, size_t size) {
    const mha_data *d = cg_module_data(m);
    snprintf(buf, size, "embed_dim=%lld, num_heads=%lld, dropout=%g, bias=%s, batch_first=True",
             (long long)embed_of(m), (long long)d->heads, d->dropout,
             d->bias ? "True" : "False");
}

static const cg_module_kind mha_kind = {"MultiheadAttention", mha_forward, free, mha_describe};

/* PyTorch's _reset_parameters: xavier_uniform_ on in_proj_weight, biases 0;
 * out_proj keeps nn.Linear's init for its weight. */
cg_module *cg_nn_multihead_attention(cg_rng *rng, cg_dtype dt, int64_t embed_dim,
                                     int64_t num_heads, double dropout, bool bias) {
    const char *fn = "cg_nn_multihead_attention";
    /* in_proj_weight is [3E, E]: 3E must not overflow */
    if (!rng || embed_dim < 1 || embed_dim > INT64_MAX / 3 || num_heads < 1 ||
        embed_dim % num_heads != 0 || !cgi_is_float(dt) || !(dropout >= 0 && dropout < 1)) {
        cgi_error(NULL, CG_ERR_ARG,
                  "%s: embed_dim %lld, num_heads %lld, dropout %g, dtype %s: need "
                  "embed_dim divisible by num_heads (both >= 1, 3 embed_dim in int64), "
                  "dropout in [0, 1), a float dtype and an rng",
                  fn, (long long)embed_dim, (long long)num_heads, dropout, cg_dtype_name(dt));
        return NULL;
    }
    mha_data d = {num_heads, dropout, rng, bias};
    cg_module *m = cgi_module_new_copy(&mha_kind, &d, sizeof d, fn);
    cg_tensor *w = cgi_module_add(
        m, "in_proj_weight", cg_zeros(NULL, dt, CG_SHAPE(3 * embed_dim, embed_dim)), true, fn);
    bool ok = w && cg_init_xavier_uniform_(w, rng, 1.0) == CG_OK &&
              (!bias || cgi_module_add(m, "in_proj_bias",
                                       cg_zeros(NULL, dt, CG_SHAPE(3 * embed_dim)), true, fn));
    cg_module *out = ok ? cg_nn_linear(rng, dt, embed_dim, embed_dim, bias) : NULL;
    ok = out && cgi_module_adopt(m, "out_proj", out, fn) == CG_OK &&
         (!bias || cg_init_constant_(cg_module_get(out, "bias"), 0) == CG_OK);
    return cgi_module_done(m, ok, fn);
}

/* ---- GELU with the tanh approximation (GPT-2's) ---------------------------------------- */
static cg_tensor *gelu_tanh_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    (void)m;
    return cg_gelu_tanh(ctx, x);
}

static void gelu_tanh_describe(const cg_module *m, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "approximate='tanh'");
}

static const cg_module_kind gelu_tanh_kind = {"GELU", gelu_tanh_forward, NULL,
                                              gelu_tanh_describe};

/* ---- the pre-LayerNorm transformer block ----------------------------------------------- */
typedef struct block_data {
    bool causal;
} block_data;

/* x [B, T, E]: x + drop(attn(ln_1(x))), then x + mlp(ln_2(x)). */
static cg_tensor *block_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const block_data *d = cg_module_data(m);
    cg_tensor *h = cg_module_forward(ctx, cg_module_find_child(m, "ln_1"), x);
    h = cg_mha_forward(ctx, cg_module_find_child(m, "attn"), h, h, h, NULL, d->causal);
    h = cg_module_forward(ctx, cg_module_find_child(m, "resid_drop"), h);
    cg_tensor *r = cg_add(ctx, x, h);
    h = cg_module_forward(ctx, cg_module_find_child(m, "ln_2"), r);
    return cg_add(ctx, r, cg_module_forward(ctx, cg_module_find_child(m, "mlp"), h));
}

static void block_describe(const cg_module *m, char *buf, size_t size) {
    snprintf(buf, size, "causal=%s",
             ((const block_data *)cg_module_data(m))->causal ? "True" : "False");
}

static const cg_module_kind block_kind = {"TransformerBlock", block_forward, free,
                                          block_describe};

/* Linear(E, ratio E), GELU (tanh), Linear(ratio E, E), Dropout. */
static cg_module *mlp_new(cg_rng *rng, cg_dtype dt, int64_t e, int64_t ratio, double dropout) {
    cg_module *parts[] = {cg_nn_linear(rng, dt, e, ratio * e, true),
                          cgi_module_new(&gelu_tanh_kind, NULL, "cg_nn_transformer_block"),
                          cg_nn_linear(rng, dt, ratio * e, e, true),
                          cg_nn_dropout(dropout, rng)};
    return cg_nn_sequential(4, parts);
}

cg_module *cg_nn_transformer_block(cg_rng *rng, cg_dtype dt, int64_t embed_dim,
                                   int64_t num_heads, int64_t mlp_ratio, double dropout,
                                   bool causal) {
    const char *fn = "cg_nn_transformer_block";
    if (mlp_ratio < 1 || (embed_dim > 0 && mlp_ratio > INT64_MAX / embed_dim)) {
        cgi_error(NULL, CG_ERR_ARG, "%s: mlp_ratio %lld: need >= 1 (PyTorch's GPT-2: 4)", fn,
                  (long long)mlp_ratio);
        return NULL;
    }
    cg_module *attn = cg_nn_multihead_attention(rng, dt, embed_dim, num_heads, dropout, true);
    if (!attn) return cgi_module_done(NULL, false, fn); /* its error names the sizes */
    cg_module *m =
        cgi_module_new_copy(&block_kind, &(block_data){causal}, sizeof(block_data), fn);
    bool ok = cgi_module_adopt(m, "ln_1", cg_nn_layernorm(dt, embed_dim, 1e-5), fn) == CG_OK;
    ok = cgi_module_adopt(m, "attn", attn, fn) == CG_OK && ok;
    ok = ok && cgi_module_adopt(m, "resid_drop", cg_nn_dropout(dropout, rng), fn) == CG_OK;
    ok = ok && cgi_module_adopt(m, "ln_2", cg_nn_layernorm(dt, embed_dim, 1e-5), fn) == CG_OK;
    ok = ok && cgi_module_adopt(m, "mlp", mlp_new(rng, dt, embed_dim, mlp_ratio, dropout),
                                fn) == CG_OK;
    return cgi_module_done(m, ok, fn);
}

/* ---- GPT --------------------------------------------------------------------------------- */
typedef struct gpt_data {
    int64_t context;
} gpt_data;

/* ids i64 [B, T], T <= context -> logits [B, T, vocab]. */
static cg_tensor *gpt_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *ids) {
    int64_t context = ((const gpt_data *)cg_module_data(m))->context;
    if (cg_ndim(ids) != 2 || cg_dtype_of(ids) != CG_I64 || cg_dim(ids, 1) > context ||
        cg_dim(ids, 1) < 1) {
        char s[128];
        cgi_error(ctx, cg_dtype_of(ids) != CG_I64 ? CG_ERR_DTYPE : CG_ERR_SHAPE,
                  "cg_nn_gpt: ids %s of %s: expected i64 [B, T] with 1 <= T <= context %lld",
                  cg_shape_str(ids, s, sizeof s), cg_dtype_name(cg_dtype_of(ids)),
                  (long long)context);
        return NULL;
    }
    cg_tensor *pos = cg_arange(ctx, CG_I64, 0, (double)cg_dim(ids, 1), 1); /* [T] */
    cg_tensor *h = cg_add(ctx, cg_module_forward(ctx, cg_module_find_child(m, "tok_emb"), ids),
                          cg_module_forward(ctx, cg_module_find_child(m, "pos_emb"), pos));
    h = cg_module_forward(ctx, cg_module_find_child(m, "drop"), h); /* [B, T, E] */
    cg_module *blocks = cg_module_find_child(m, "blocks");
    for (int i = 0; h && i < cg_module_nchildren(blocks); i++)
        h = cg_module_forward(ctx, cg_module_child(blocks, i, NULL), h);
    h = cg_module_forward(ctx, cg_module_find_child(m, "ln_f"), h);
    return cg_module_forward(ctx, cg_module_find_child(m, "head"), h);
}

static void gpt_describe(const cg_module *m, char *buf, size_t size) {
    snprintf(buf, size, "context=%lld",
             (long long)((const gpt_data *)cg_module_data(m))->context);
}

static const cg_module_kind gpt_kind = {"GPT", gpt_forward, free, gpt_describe};

/* GPT-2's init: every Linear and Embedding weight N(0, 0.02), biases 0, the
 * projections into the residual stream (attn.out_proj, mlp.2) N(0, 0.02 /
 * sqrt(2 layers)); LayerNorms as made (ones, zeros). */
static bool gpt2_init(cg_module *m, cg_rng *rng, int64_t layers) {
    double resid = 0.02 / sqrt(2.0 * (double)layers);
    bool ok = true;
    for (int i = 0; ok && i < cg_module_nparams(m); i++) {
        const char *name;
        cg_tensor *p = cg_module_param(m, i, &name);
        size_t n = strlen(name);
        bool is_bias = n >= 4 && !strcmp(name + n - 4, "bias");
        if (strstr(name, "ln_")) continue;
        if (is_bias)
            ok = cg_init_constant_(p, 0) == CG_OK;
        else if (strstr(name, "attn.out_proj.weight") || strstr(name, "mlp.2.weight"))
            ok = cg_init_normal_(p, rng, 0, resid) == CG_OK;
        else
            ok = cg_init_normal_(p, rng, 0, 0.02) == CG_OK;
    }
    return ok;
}

static bool gpt_args_ok(cg_rng *rng, cg_dtype dt, int64_t vocab, int64_t context,
                        int64_t embed_dim, int64_t layers, int64_t heads, double dropout) {
    if (rng && vocab >= 1 && context >= 1 && embed_dim >= 1 && layers >= 0 && layers <= 10000 &&
        heads >= 1 && embed_dim % heads == 0 && cgi_is_float(dt) && dropout >= 0 && dropout < 1)
        return true;
    cgi_error(NULL, CG_ERR_ARG,
              "cg_nn_gpt: vocab %lld, context %lld, embed_dim %lld, layers %lld, heads %lld, "
              "dropout %g, dtype %s: need sizes >= 1 (layers >= 0), embed_dim divisible by "
              "heads, dropout in [0, 1), a float dtype and an rng",
              (long long)vocab, (long long)context, (long long)embed_dim, (long long)layers,
              (long long)heads, dropout, cg_dtype_name(dt));
    return false;
}

cg_module *cg_nn_gpt(cg_rng *rng, cg_dtype dt, int64_t vocab, int64_t context,
                     int64_t embed_dim, int64_t layers, int64_t heads, double dropout) {
    const char *fn = "cg_nn_gpt";
    if (!gpt_args_ok(rng, dt, vocab, context, embed_dim, layers, heads, dropout)) return NULL;
    cg_module *m = cgi_module_new_copy(&gpt_kind, &(gpt_data){context}, sizeof(gpt_data), fn);
    cg_module *tok = cg_nn_embedding(rng, dt, vocab, embed_dim);
    bool ok = cgi_module_adopt(m, "tok_emb", tok, fn) == CG_OK &&
              cgi_module_adopt(m, "pos_emb", cg_nn_embedding(rng, dt, context, embed_dim),
                               fn) == CG_OK &&
              cgi_module_adopt(m, "drop", cg_nn_dropout(dropout, rng), fn) == CG_OK;
    cg_module *blocks = ok ? cg_nn_module_list(0, NULL) : NULL;
    ok = ok && cgi_module_adopt(m, "blocks", blocks, fn) == CG_OK;
    for (int64_t i = 0; ok && i < layers; i++)
        ok = cgi_module_adopt(
                 blocks, NULL,
                 cg_nn_transformer_block(rng, dt, embed_dim, heads, 4, dropout, true),
                 fn) == CG_OK;
    ok = ok && cgi_module_adopt(m, "ln_f", cg_nn_layernorm(dt, embed_dim, 1e-5), fn) == CG_OK;
    cg_module *head = ok ? cg_nn_linear(rng, dt, embed_dim, vocab, false) : NULL;
    ok = ok && cgi_module_adopt(m, "head", head, fn) == CG_OK &&
         cg_module_tie(head, "weight", cg_module_get(tok, "weight")) == CG_OK &&
         gpt2_init(m, rng, layers > 0 ? layers : 1);
    return cgi_module_done(m, ok, fn);
}
