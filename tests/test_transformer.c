/* The transformer layers (nn/transformer.c): MultiheadAttention, the
 * pre-LayerNorm block and the GPT model. Forward values against PyTorch 1.13
 * (nn.MultiheadAttention with batch_first=True, and the twins of
 * bench/torch_gpt.py) with every weight set to the same formula, float64
 * gradchecks, state_dict names and a save / load round trip, the tied head,
 * GPT-2's init, errors, and a short training run on a generated sequence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgrad_cmocka.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------------------- */
/* 0.5 sin(0.7 i + c) for i in C order: the values the PyTorch references
 * were computed with (fill() in the scripts quoted below). */
static cg_tensor *fill(cg_ctx *ctx, int n, const int64_t *shape, double c) {
    cg_tensor *t = cg_empty(ctx, CG_F64, n, shape);
    double *p = cg_data(t);
    for (int64_t i = 0; i < cg_numel(t); i++) p[i] = 0.5 * sin(0.7 * (double)i + c);
    return t;
}

/* Every unique parameter i of m (cg_module_param order, PyTorch's
 * named_parameters order) set to fill(shape, 0.1 i). */
static void fill_params(cg_module *m) {
    for (int i = 0; i < cg_module_nparams(m); i++) {
        cg_tensor *p = cg_module_param(m, i, NULL);
        cg_tensor *v = fill(NULL, cg_ndim(p), cg_shape(p), 0.1 * i);
        assert_int_equal(cg_copy_(p, v), CG_OK);
        cg_tensor_free(v);
    }
}

/* m's state_dict names are exactly want, in order. */
static void assert_names(const cg_module *m, int n, const char *const *want) {
    assert_int_equal(cg_module_nstate(m), n);
    for (int i = 0; i < n; i++) {
        const char *name = NULL;
        assert_non_null(cg_module_state(m, i, &name, NULL));
        assert_string_equal(name, want[i]);
    }
}

static const char *const block_names[] = {
    "ln_1.weight",          "ln_1.bias",          "attn.in_proj_weight", "attn.in_proj_bias",
    "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight",         "ln_2.bias",
    "mlp.0.weight",         "mlp.0.bias",         "mlp.2.weight",        "mlp.2.bias"};

/* ---- MultiheadAttention: names, init ----------------------------------------------- */
static void test_mha_state_dict_names(void **state) {
    (void)state;
    cg_rng rng = seeded(1);
    cg_module *m = cg_nn_multihead_attention(&rng, CG_F32, 8, 2, 0.0, true);
    assert_names(
        m, 4,
        (const char *[]){"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"});
    assert_int_equal(cg_dim(cg_module_find(m, "in_proj_weight"), 0), 24);
    assert_int_equal(cg_dim(cg_module_find(m, "in_proj_weight"), 1), 8);
    assert_int_equal(cg_module_numel(m), 24 * 8 + 24 + 8 * 8 + 8);
    cg_module_free(m);
    m = cg_nn_multihead_attention(&rng, CG_F32, 8, 2, 0.0, false);
    assert_names(m, 2, (const char *[]){"in_proj_weight", "out_proj.weight"});
    cg_module_free(m);
}

/* PyTorch's _reset_parameters: xavier_uniform_ in_proj_weight (bound
 * sqrt(6 / (E + 3E))), zero biases, out_proj.weight as nn.Linear's. */
static void test_mha_init(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(2);
    cg_module *m = cg_nn_multihead_attention(&rng, CG_F64, 64, 4, 0.0, true);
    double bound = sqrt(6.0 / (64 + 192));
    cg_tensor *w = cg_module_find(m, "in_proj_weight");
    assert_true(cg_item(cg_max(ctx, cg_abs(ctx, w), NULL, 0, false)) <= bound);
    assert_true(cg_item(cg_max(ctx, cg_abs(ctx, w), NULL, 0, false)) > 0.95 * bound);
    cg_tensor *ow = cg_module_find(m, "out_proj.weight");
    assert_true(cg_item(cg_max(ctx, cg_abs(ctx, ow), NULL, 0, false)) <= 1.0 / 8);
    const char *zeros[] = {"in_proj_bias", "out_proj.bias"};
    for (int i = 0; i < 2; i++) {
        cg_tensor *b = cg_module_find(m, zeros[i]);
        assert_float_equal(cg_item(cg_sum(ctx, cg_abs(ctx, b), NULL, 0, false)), 0, 0);
    }
    cg_module_free(m);
}

/* ---- MultiheadAttention: values against PyTorch ---------------------------------------
 * E 4, 2 heads, B 2, T 3 (and S 4 for k, v), f64; the weights
 * in_proj_weight = fill(0.1), in_proj_bias = fill(0.2), out_proj.weight =
 * fill(0.3), out_proj.bias = fill(0.4); x = fill(0.5), k = fill(0.6), v =
 * fill(0.7), mask [T, S] = fill(0.8):
 *   y, _ = m(x, x, x, need_weights=False)                   (self)
 *   y, _ = m(x, x, x, attn_mask=triu(-inf, 1), need_weights=False)  (causal)
 *   y, _ = m(x, k, v, attn_mask=mask, need_weights=False)    (cross) */
static const double mha_self[] = {
    0.5923151939844024, -0.04627144749147788, 1.016229260550336,  -0.20633563126858023,
    0.5779380696780547, -0.04298610261648078, 1.0244153341806366, -0.22504717905723293,
    0.603725485952486,  -0.05266657122929508, 1.016870225496476,  -0.20114837051444046,
    0.5379785323857182, 0.03445802693978273,  0.9184356934298745, -0.1027785382706829,
    0.5613814387248777, 0.01043403780326102,  0.9403046656435388, -0.11996541750851464,
    0.5453376519866461, 0.027903831499395126, 0.9234275925670303, -0.10563130060908105};
static const double mha_causal[] = {
    0.5936695621736625, -0.097142397415523,    1.1107383833800197, -0.33356189519878776,
    0.5651360963020668, -0.010068494913958725, 0.9751858967992586, -0.16519463532118872,
    0.603725485952486,  -0.05266657122929508,  1.016870225496476,  -0.20114837051444046,
    0.5162497085760231, 0.10307847632968042,   0.8108530763558005, 0.031334502889007354,
    0.5767145161104212, -0.00581519100288852,  0.9555923610575769, -0.132525005015254,
    0.5453376519866461, 0.027903831499395126,  0.9234275925670303, -0.10563130060908105};
static const double mha_cross[] = {
    0.5777336582175469, -0.012431888901813126, 0.9670420201140955, -0.14748455622851148,
    0.5543129099509382, 0.0018166572467811504, 0.9636121713741963, -0.15526974216141132,
    0.586588979073507,  -0.014024588454448317, 0.9611880534590671, -0.134860380348082,
    0.559572933926594,  -0.007632000315266896, 0.9761576198871195, -0.16946228832453253,
    0.5851685959483536, -0.039338134985082485, 1.0103104147096587, -0.20211520621085555,
    0.5645980139136136, -0.010190611954772444, 0.975954101995774,  -0.16652015847712387};

static cg_module *mha_filled(void) {
    cg_rng rng = seeded(3);
    cg_module *m = cg_nn_multihead_attention(&rng, CG_F64, 4, 2, 0.0, true);
    const char *names[] = {"in_proj_weight", "in_proj_bias", "out_proj.weight",
                           "out_proj.bias"};
    for (int i = 0; i < 4; i++) {
        cg_tensor *p = cg_module_find(m, names[i]);
        cg_tensor *v = fill(NULL, cg_ndim(p), cg_shape(p), 0.1 * (i + 1));
        assert_int_equal(cg_copy_(p, v), CG_OK);
        cg_tensor_free(v);
    }
    return m;
}

static void test_mha_forward_matches_pytorch(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = mha_filled();
    cg_tensor *x = fill(ctx, CG_SHAPE(2, 3, 4), 0.5);
    assert_values(cg_module_forward(ctx, m, x), mha_self, 24, 1e-12);
    assert_values(cg_mha_forward(ctx, m, x, x, x, NULL, true), mha_causal, 24, 1e-12);
    /* the causal mask given as an additive mask instead */
    cg_tensor *inf = cg_full(ctx, CG_F64, CG_SHAPE(3, 3), -INFINITY);
    cg_tensor *tri = cg_masked_fill(ctx, cg_zeros(ctx, CG_F64, CG_SHAPE(3, 3)),
                                    cg_triu(ctx, cg_ones_like(ctx, inf), 1), -INFINITY);
    assert_values(cg_mha_forward(ctx, m, x, x, x, tri, false), mha_causal, 24, 1e-12);
    cg_tensor *k = fill(ctx, CG_SHAPE(2, 4, 4), 0.6), *v = fill(ctx, CG_SHAPE(2, 4, 4), 0.7);
    cg_tensor *mask = fill(ctx, CG_SHAPE(3, 4), 0.8);
    assert_values(cg_mha_forward(ctx, m, x, k, v, mask, false), mha_cross, 24, 1e-12);
    /* q == k == v as distinct tensors: three projections, the same values */
    cg_tensor *x2 = cg_clone(ctx, x), *x3 = cg_clone(ctx, x);
    assert_values(cg_mha_forward(ctx, m, x, x2, x3, NULL, false), mha_self, 24, 1e-12);
    /* f32 agrees to f32 precision */
    cg_rng rng = seeded(4);
    cg_module *m32 = cg_nn_multihead_attention(&rng, CG_F32, 4, 2, 0.0, true);
    for (int i = 0; i < cg_module_nstate(m32); i++)
        assert_int_equal(
            cg_copy_(cg_module_state(m32, i, NULL, NULL), cg_module_state(m, i, NULL, NULL)),
            CG_OK);
    assert_values(cg_module_forward(ctx, m32, cg_cast(ctx, x, CG_F32)), mha_self, 24, 1e-5);
    cg_module_free(m32);
    cg_module_free(m);
}

/* Non-contiguous inputs (a transposed view) give the same values. */
static void test_mha_forward_strided_input(void **state) {
    cg_ctx *ctx = *state;
    cg_module *m = mha_filled();
    cg_tensor *x = fill(ctx, CG_SHAPE(2, 3, 4), 0.5);
    cg_tensor *xt = cg_transpose(ctx, cg_contiguous(ctx, cg_transpose(ctx, x, 0, 1)), 0, 1);
    assert_false(cg_is_contiguous(xt));
    assert_values(cg_module_forward(ctx, m, xt), mha_self, 24, 1e-12);
    cg_module_free(m);
}

/* ---- MultiheadAttention: gradients ---------------------------------------------------- */
typedef struct mha_case {
    cg_module *m;
    bool causal, cross;
} mha_case;

/* in[0] x (q), in[1] k, in[2] v, in[3] the mask, then the parameters. */
static cg_tensor *mha_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    const mha_case *c = user;
    if (!c->cross) return cg_mha_forward(ctx, c->m, in[0], in[0], in[0], NULL, c->causal);
    return cg_mha_forward(ctx, c->m, in[0], in[1], in[2], in[3], c->causal);
}

static void mha_gradcheck(bool causal, bool cross) {
    cg_rng rng = seeded(5);
    mha_case c = {cg_nn_multihead_attention(&rng, CG_F64, 4, 2, 0.0, true), causal, cross};
    for (int i = 0; i < cg_module_nparams(c.m); i++)
        assert_int_equal(cg_init_normal_(cg_module_param(c.m, i, NULL), &rng, 0, 0.7), CG_OK);
    cg_tensor *in[8] = {randn_leaf(&rng, CG_F64, CG_SHAPE(2, 3, 4), 1),
                        randn_leaf(&rng, CG_F64, CG_SHAPE(2, 3, 4), 1),
                        randn_leaf(&rng, CG_F64, CG_SHAPE(2, 3, 4), 1),
                        randn_leaf(&rng, CG_F64, CG_SHAPE(3, 3), 1)};
    for (int i = 0; i < 4; i++) in[4 + i] = cg_module_param(c.m, i, NULL);
    cg_assert_gradcheck(mha_fn, &c, 8, in);
    for (int i = 0; i < 4; i++) cg_tensor_free(in[i]);
    cg_module_free(c.m);
}

static void test_mha_gradcheck_self(void **state) {
    (void)state;
    mha_gradcheck(false, false);
}
static void test_mha_gradcheck_causal(void **state) {
    (void)state;
    mha_gradcheck(true, false);
}
static void test_mha_gradcheck_cross_masked(void **state) {
    (void)state;
    mha_gradcheck(false, true);
}

/* ---- MultiheadAttention: dropout and errors ------------------------------------------- */
static void test_mha_dropout_train_only(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(6);
    cg_module *m = cg_nn_multihead_attention(&rng, CG_F64, 8, 2, 0.5, true);
    cg_tensor *x = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(2, 5, 8), 0, 1);
    cg_tensor *a = cg_module_predict(ctx, m, x), *b = cg_module_predict(ctx, m, x);
    double d = cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, a, b)), NULL, 0, false));
    assert_float_equal(d, 0, 0); /* eval: no dropout */
    cg_tensor *t = cg_module_forward(ctx, m, x);
    d = cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, a, t)), NULL, 0, false));
    assert_true(d > 1e-3); /* training: weights dropped */
    cg_module_free(m);
}

static void test_mha_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(7);
    assert_null(cg_nn_multihead_attention(&rng, CG_F32, 10, 3, 0.0, true));
    assert_error(CG_ERR_ARG, "embed_dim 10, num_heads 3");
    assert_null(cg_nn_multihead_attention(&rng, CG_I64, 8, 2, 0.0, true));
    assert_error(CG_ERR_ARG, "dtype i64");
    assert_null(cg_nn_multihead_attention(&rng, CG_F32, 8, 2, 1.0, true));
    assert_error(CG_ERR_ARG, "dropout 1");
    assert_null(cg_nn_multihead_attention(NULL, CG_F32, 8, 2, 0.0, true));
    assert_error(CG_ERR_ARG, "rng");
    cg_module *m = cg_nn_multihead_attention(&rng, CG_F32, 8, 2, 0.0, true);
    cg_tensor *x = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3, 8));
    assert_null(cg_module_forward(ctx, m, cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3, 6))));
    assert_error(CG_ERR_SHAPE, "cg_mha_forward: q [2,3,6]: expected [B, T, 8]");
    assert_null(cg_module_forward(ctx, m, cg_zeros(ctx, CG_F32, CG_SHAPE(3, 8))));
    assert_error(CG_ERR_SHAPE, "q [3,8]");
    assert_null(cg_module_forward(ctx, m, cg_zeros(ctx, CG_F64, CG_SHAPE(2, 3, 8))));
    assert_error(CG_ERR_DTYPE, "q [2,3,8] is f64, the module's parameters f32");
    cg_tensor *k = cg_zeros(ctx, CG_F32, CG_SHAPE(2, 4, 8));
    assert_null(cg_mha_forward(ctx, m, x, k, x, NULL, false));
    assert_error(CG_ERR_SHAPE, "v [2,3,8]");
    assert_null(
        cg_mha_forward(ctx, m, x, cg_zeros(ctx, CG_F32, CG_SHAPE(1, 3, 8)), x, NULL, false));
    assert_error(CG_ERR_SHAPE, "k [1,3,8]");
    assert_null(cg_mha_forward(ctx, m, x, x, NULL, NULL, false));
    assert_error(CG_ERR_ARG, "cg_mha_forward");
    assert_null(cg_mha_forward(NULL, m, x, x, x, NULL, false));
    assert_error(CG_ERR_ARG, "ctx is NULL");
    cg_module *lin = cg_nn_linear(&rng, CG_F32, 8, 8, true);
    assert_null(cg_mha_forward(ctx, lin, x, x, x, NULL, false));
    assert_error(CG_ERR_ARG, "MultiheadAttention module (Linear)");
    cg_module_free(lin);
    cg_module_free(m);
}

/* ---- the block ------------------------------------------------------------------------------
 * Block(4, 2) of bench/torch_gpt.py in f64 and eval, its named_parameters
 * i set to fill(0.1 i); x = fill([2, 3, 4], 0.5); causal and not. */
static const double block_causal[] = {
    2.85176483037241,   1.1829921575219808, 0.5569823192031025,   -1.1522816370048927,
    2.4371583680318833, 0.2887887582510198, -0.42749027747352486, -1.5845593214862115,
    2.504517689267076,  1.0515857263004924, 0.6106304013968691,   -0.9547283957841532,
    2.7517787596211325, 0.5742359087483604, -0.42496650572153793, -1.5493005536516413,
    2.161933819194599,  0.7601494794038266, 0.4604731474593218,   -0.9490036432373758,
    3.024157045555577,  0.8581681994224667, -0.08894944713971464, -1.5526584251807372};
static const double block_full[] = {
    2.866211369844614,  1.183026537916809,  0.5380967353114392,   -1.1065883889720438,
    2.4536571783100887, 0.2612476224037634, -0.38355680671851433, -1.646097477997253,
    2.504517689267076,  1.0515857263004924, 0.6106304013968691,   -0.9547283957841532,
    2.7798013520502542, 0.5320862208595595, -0.35044511671781353, -1.6547511665512395,
    2.14582532107363,   0.7901260821571148, 0.43373642474641616,  -0.9143613406276747,
    3.024157045555577,  0.8581681994224667, -0.08894944713971464, -1.5526584251807372};

static void test_block_names_and_values(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(8);
    for (int causal = 0; causal < 2; causal++) {
        cg_module *m = cg_nn_transformer_block(&rng, CG_F64, 4, 2, 4, 0.1, causal);
        assert_names(m, 12, block_names);
        assert_int_equal(cg_dim(cg_module_find(m, "mlp.0.weight"), 0), 16);
        fill_params(m);
        cg_tensor *x = fill(ctx, CG_SHAPE(2, 3, 4), 0.5);
        assert_values(cg_module_predict(ctx, m, x), causal ? block_causal : block_full, 24,
                      1e-12);
        cg_module_free(m);
    }
}

static void test_block_print(void **state) {
    (void)state;
    cg_rng rng = seeded(9);
    cg_module *m = cg_nn_transformer_block(&rng, CG_F32, 8, 2, 4, 0.1, true);
    char buf[4096] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    assert_int_equal(cg_module_fprint(f, m), CG_OK);
    fclose(f);
    assert_non_null(strstr(buf, "TransformerBlock(\n  causal=True\n  (ln_1): LayerNorm"));
    assert_non_null(strstr(buf, "(attn): MultiheadAttention(\n    embed_dim=8, num_heads=2"));
    assert_non_null(strstr(buf, "(1): GELU(approximate='tanh')"));
    cg_module_free(m);
}

static cg_tensor *module_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    return cg_module_forward(ctx, user, in[0]);
}

static void test_block_gradcheck(void **state) {
    (void)state;
    cg_rng rng = seeded(10);
    cg_module *m = cg_nn_transformer_block(&rng, CG_F64, 4, 2, 2, 0.0, true);
    cg_tensor *in[16] = {randn_leaf(&rng, CG_F64, CG_SHAPE(2, 3, 4), 1)};
    int n = cg_module_nparams(m);
    assert_int_equal(n, 12);
    for (int i = 0; i < n; i++) {
        in[1 + i] = cg_module_param(m, i, NULL);
        assert_int_equal(cg_init_normal_(in[1 + i], &rng, 0.2, 0.5), CG_OK);
    }
    cg_assert_gradcheck(module_fn, m, 1 + n, in);
    cg_tensor_free(in[0]);
    cg_module_free(m);
}

static void test_block_errors(void **state) {
    (void)state;
    cg_rng rng = seeded(11);
    assert_null(cg_nn_transformer_block(&rng, CG_F32, 6, 4, 4, 0.0, true));
    assert_error(CG_ERR_ARG, "cg_nn_multihead_attention: embed_dim 6, num_heads 4");
    assert_null(cg_nn_transformer_block(&rng, CG_F32, 8, 2, 0, 0.0, true));
    assert_error(CG_ERR_ARG, "cg_nn_transformer_block: mlp_ratio 0");
}

/* ---- GPT ---------------------------------------------------------------------------------
 * GPT(5, 4, 4, 1, 2) of bench/torch_gpt.py in f64 and eval, named_parameters
 * i = fill(0.1 i) (the tied head is tok_emb's), ids [[0, 3, 1], [4, 2, 2]]. */
static const double gpt_logits[] = {
    0.2711733856317615,   -0.005169618140378151, -0.261431526222581,    0.4978228672644184,
    -0.6766881282419447,  0.18533349935388355,   0.0960956598727866,    -0.36642045450075605,
    0.5944034167443655,   -0.7536999027518914,   0.2036795659706413,    0.07352028721653826,
    -0.3422244801862388,  0.5713828142938474,    -0.7345148252173491,   0.25056680423331695,
    0.013701348454305186, -0.2763862374551817,   0.5071332267129447,    -0.679278274353458,
    0.20173448781547565,  0.07428774909421666,   -0.3417256414845933,   0.569675318478008,
    -0.7317959825104302,  0.26528075685493074,   -0.008791330351156472, -0.24871398113281462,
    0.47747906927111894,  -0.651068911405037};

static void test_gpt_names_and_tied_head(void **state) {
    (void)state;
    cg_rng rng = seeded(12);
    cg_module *m = cg_nn_gpt(&rng, CG_F32, 7, 6, 8, 2, 2, 0.1);
    const char *want[2 + 24 + 3];
    char names[24][64];
    want[0] = "tok_emb.weight";
    want[1] = "pos_emb.weight";
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 12; i++) {
            snprintf(names[l * 12 + i], sizeof names[0], "blocks.%d.%s", l, block_names[i]);
            want[2 + l * 12 + i] = names[l * 12 + i];
        }
    want[26] = "ln_f.weight";
    want[27] = "ln_f.bias";
    want[28] = "head.weight";
    assert_names(m, 29, want);
    /* the head is tok_emb's matrix: one parameter, counted and saved once */
    assert_ptr_equal(cg_module_find(m, "head.weight"), cg_module_find(m, "tok_emb.weight"));
    assert_int_equal(cg_module_nparams(m), 28);
    int64_t block = 3 * 8 * 8 + 3 * 8 + 8 * 8 + 8 + 4 * 8 + 2 * (4 * 8 * 8) + 4 * 8 + 8;
    assert_int_equal(cg_module_numel(m), 7 * 8 + 6 * 8 + 2 * block + 2 * 8);
    cg_module_free(m);
}

static void test_gpt_matches_pytorch(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(13);
    cg_module *m = cg_nn_gpt(&rng, CG_F64, 5, 4, 4, 1, 2, 0.0);
    assert_int_equal(cg_module_nparams(m), 16);
    fill_params(m);
    const int64_t ids[] = {0, 3, 1, 4, 2, 2};
    cg_tensor *y = cg_module_predict(ctx, m, cg_from_array(ctx, CG_I64, CG_SHAPE(2, 3), ids));
    assert_int_equal(cg_ndim(y), 3);
    assert_int_equal(cg_dim(y, 2), 5);
    assert_values(y, gpt_logits, 30, 1e-12);
    cg_module_free(m);
}

/* GPT-2's init: N(0, 0.02), the residual projections N(0, 0.02 / sqrt(2L)),
 * biases 0, LayerNorms ones and zeros. */
static double std_of(cg_ctx *ctx, const cg_tensor *t) {
    return cg_item(cg_std(ctx, t, NULL, 0, 0, false));
}

static void test_gpt_init(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(14);
    cg_module *m = cg_nn_gpt(&rng, CG_F64, 64, 32, 64, 2, 4, 0.0);
    const char *plain[] = {"tok_emb.weight", "pos_emb.weight", "blocks.1.attn.in_proj_weight",
                           "blocks.0.mlp.0.weight"};
    for (int i = 0; i < 4; i++)
        assert_float_equal(std_of(ctx, cg_module_find(m, plain[i])), 0.02, 0.002);
    const char *resid[] = {"blocks.0.attn.out_proj.weight", "blocks.1.mlp.2.weight"};
    for (int i = 0; i < 2; i++)
        assert_float_equal(std_of(ctx, cg_module_find(m, resid[i])), 0.01, 0.001);
    const char *zero[] = {"blocks.0.attn.in_proj_bias", "blocks.1.attn.out_proj.bias",
                          "blocks.0.mlp.0.bias", "blocks.1.mlp.2.bias", "ln_f.bias"};
    for (int i = 0; i < 5; i++)
        assert_float_equal(
            cg_item(cg_sum(ctx, cg_abs(ctx, cg_module_find(m, zero[i])), NULL, 0, false)), 0,
            0);
    assert_float_equal(
        cg_item(cg_mean(ctx, cg_module_find(m, "blocks.1.ln_2.weight"), NULL, 0, false)), 1, 0);
    cg_module_free(m);
}

/* tok_emb, pos_emb and every parameter through a tiny GPT, f64; the tied
 * matrix gets the sum of both uses. */
static void test_gpt_gradcheck(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(15);
    cg_module *m = cg_nn_gpt(&rng, CG_F64, 5, 4, 4, 1, 2, 0.0);
    for (int i = 0; i < cg_module_nparams(m); i++)
        assert_int_equal(cg_init_normal_(cg_module_param(m, i, NULL), &rng, 0.1, 0.5), CG_OK);
    const int64_t ids[] = {0, 3, 1, 3, 4, 2, 2, 0};
    cg_tensor *in[20] = {cg_from_array(ctx, CG_I64, CG_SHAPE(2, 4), ids)};
    int n = cg_module_nparams(m);
    for (int i = 0; i < n; i++) in[1 + i] = cg_module_param(m, i, NULL);
    cg_assert_gradcheck(module_fn, m, 1 + n, in);
    cg_module_free(m);
}

static void test_gpt_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(16);
    cg_module *m = cg_nn_gpt(&rng, CG_F32, 5, 4, 8, 1, 2, 0.0);
    assert_null(cg_module_forward(ctx, m, cg_zeros(ctx, CG_I64, CG_SHAPE(2, 5))));
    assert_error(CG_ERR_SHAPE, "cg_nn_gpt: ids [2,5] of i64: expected i64 [B, T] with 1 <= T "
                               "<= context 4");
    assert_null(cg_module_forward(ctx, m, cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3))));
    assert_error(CG_ERR_DTYPE, "ids [2,3] of f32");
    assert_null(cg_module_forward(ctx, m, cg_zeros(ctx, CG_I64, CG_SHAPE(3))));
    assert_error(CG_ERR_SHAPE, "ids [3]");
    assert_null(cg_module_forward(ctx, m, cg_full(ctx, CG_I64, CG_SHAPE(1, 2), 5)));
    assert_error(CG_ERR_INDEX, "5");
    cg_module_free(m);
    assert_null(cg_nn_gpt(&rng, CG_F32, 5, 4, 6, 1, 4, 0.0));
    assert_error(CG_ERR_ARG, "embed_dim 6, layers 1, heads 4");
    assert_null(cg_nn_gpt(&rng, CG_F32, 0, 4, 8, 1, 2, 0.0));
    assert_error(CG_ERR_ARG, "cg_nn_gpt: vocab 0");
    assert_null(cg_nn_gpt(&rng, CG_I64, 5, 4, 8, 1, 2, 0.0));
    assert_error(CG_ERR_ARG, "dtype i64");
    assert_null(cg_nn_gpt(NULL, CG_F32, 5, 4, 8, 1, 2, 0.0));
    assert_error(CG_ERR_ARG, "rng");
}

/* Saved under its state_dict names (head.weight too) and loaded into a
 * model of another seed: the same logits. */
static void test_gpt_save_load_roundtrip(void **state) {
    cg_ctx *ctx = *state;
    char path[] = "/tmp/cgrad-gpt-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    cg_rng r1 = seeded(17), r2 = seeded(18);
    cg_module *a = cg_nn_gpt(&r1, CG_F32, 9, 8, 16, 2, 4, 0.1);
    cg_module *b = cg_nn_gpt(&r2, CG_F32, 9, 8, 16, 2, 4, 0.1);
    assert_int_equal(cg_save(path, a, NULL, NULL, NULL), CG_OK);
    cg_tensor_dict d = {0};
    assert_int_equal(cg_load_tensors(path, &d), CG_OK);
    assert_int_equal(d.n, cg_module_nstate(a)); /* head.weight written too */
    cg_tensor_dict_free(&d);
    assert_int_equal(cg_load(path, b, NULL, NULL, NULL), CG_OK);
    assert_ptr_equal(cg_module_find(b, "head.weight"), cg_module_find(b, "tok_emb.weight"));
    cg_tensor *ids =
        cg_from_array(ctx, CG_I64, CG_SHAPE(1, 5), (const int64_t[]){1, 8, 0, 3, 3});
    cg_tensor *ya = cg_module_predict(ctx, a, ids), *yb = cg_module_predict(ctx, b, ids);
    assert_float_equal(cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, ya, yb)), NULL, 0, false)),
                       0, 0);
    remove(path);
    cg_module_free(a);
    cg_module_free(b);
}

/* A tiny GPT learns a periodic sequence (period 7 over 6 symbols, one
 * repeated so the previous symbol alone does not tell the next: the model
 * needs attention): from ln(6) = 1.79 the loss falls below 0.1 nats within
 * 150 AdamW steps. */
static void test_gpt_learns_pattern(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(19);
    cg_module *m = cg_nn_gpt(&rng, CG_F32, 6, 16, 32, 2, 2, 0.0);
    cg_adam_opts ao = cg_adamw_defaults(1e-2);
    cg_optim *o = cg_adamw_new(m, &ao);
    const int64_t pattern[] = {0, 1, 2, 1, 3, 4, 5};
    int64_t seq[400];
    for (int i = 0; i < 400; i++) seq[i] = pattern[i % 7];
    cg_tensor *data = cg_from_array(NULL, CG_I64, CG_SHAPE(400), seq);
    double first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        cg_tensor *w = cg_text_batch(ctx, data, 8, 17, &rng);
        cg_tensor *x = cg_narrow(ctx, w, 1, 0, 16), *y = cg_narrow(ctx, w, 1, 1, 16);
        cg_tensor *logits = cg_module_forward(ctx, m, x);
        cg_tensor *loss = cg_cross_entropy(ctx, cg_reshape(ctx, logits, CG_SHAPE(8 * 16, 6)),
                                           cg_reshape(ctx, y, CG_SHAPE(8 * 16)), CG_MEAN);
        cg_optim_zero_grad(o);
        assert_int_equal(cg_backward(loss), CG_OK);
        assert_int_equal(cg_optim_step(o), CG_OK);
        last = cg_item(loss);
        if (step == 0) first = last;
        cg_ctx_reset(ctx);
    }
    assert_true(first > 1.5);
    if (!(last < 0.1)) fail_msg("loss %g after 150 steps (first %g)", last, first);
    cg_tensor_free(data);
    cg_optim_free(o);
    cg_module_free(m);
}

/* Three AdamW steps of a GPT big enough for every threaded path (GEMMs,
 * attention tiles, layer norm, GELU, cross-entropy, the optimizer), from the
 * same start with 1 and with 2 threads: the same loss and weights, bit for
 * bit (the library's promise that the thread count changes no result). */
static float *gpt_steps_with_threads(cg_ctx *ctx, int threads, double *loss_out) {
    int before = cg_get_num_threads();
    cg_set_num_threads(threads);
    cg_rng rng = seeded(23);
    cg_module *m = cg_nn_gpt(&rng, CG_F32, 37, 128, 128, 2, 4, 0.0);
    cg_adam_opts ao = cg_adamw_defaults(1e-3);
    cg_optim *o = cg_adamw_new(m, &ao);
    int64_t seq[2048];
    for (int i = 0; i < 2048; i++) seq[i] = (int64_t)(cg_rng_u64(&rng) % 37);
    cg_tensor *data = cg_from_array(NULL, CG_I64, CG_SHAPE(2048), seq);
    for (int step = 0; step < 3; step++) {
        cg_tensor *w = cg_text_batch(ctx, data, 4, 129, &rng);
        cg_tensor *x = cg_narrow(ctx, w, 1, 0, 128), *y = cg_narrow(ctx, w, 1, 1, 128);
        cg_tensor *logits = cg_module_forward(ctx, m, x);
        cg_tensor *loss = cg_cross_entropy(ctx, cg_reshape(ctx, logits, CG_SHAPE(4 * 128, 37)),
                                           cg_reshape(ctx, y, CG_SHAPE(4 * 128)), CG_MEAN);
        cg_optim_zero_grad(o);
        assert_int_equal(cg_backward(loss), CG_OK);
        assert_int_equal(cg_optim_step(o), CG_OK);
        *loss_out = cg_item(loss);
        cg_ctx_reset(ctx);
    }
    const cg_tensor *flat = cg_module_flat_params(m);
    size_t bytes = (size_t)cg_numel(flat) * sizeof(float);
    float *out = malloc(bytes);
    memcpy(out, cg_data(flat), bytes);
    cg_tensor_free(data);
    cg_optim_free(o);
    cg_module_free(m);
    cg_set_num_threads(before);
    return out;
}

/* cgrad's own kernels give the same bits for any thread count; BLIS's
 * products do with the skx kernels cgrad selects on AVX-512 CPUs
 * (BLIS_ARCH_TYPE=0), while its AVX2 ones (haswell, zen3: BLIS_ARCH_TYPE=6
 * on the same VM, as on a Zen 3 machine) were seen to differ in the last
 * bits between 1 and 2 threads: there the two runs must agree to 1e-5. */
static void test_gpt_step_same_bits_for_any_thread_count(void **state) {
    cg_ctx *ctx = *state;
    double l1 = 0, l2 = 0;
    float *a = gpt_steps_with_threads(ctx, 1, &l1), *b = gpt_steps_with_threads(ctx, 2, &l2);
    cg_rng rng = seeded(23);
    cg_module *m = cg_nn_gpt(&rng, CG_F32, 37, 128, 128, 2, 4, 0.0);
    size_t n = (size_t)cg_module_numel(m);
    cg_module_free(m);
    const char *arch = getenv("BLIS_ARCH_TYPE");
    bool skx = arch && !strcmp(arch, "0");
    bool same = !memcmp(&l1, &l2, sizeof l1) && !memcmp(a, b, n * sizeof(float));
    double worst = fabs(l1 - l2);
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
    free(a), free(b);
    if (skx && !same)
        fail_msg("1 and 2 threads differ (by up to %g) with BLIS's skx kernels", worst);
    if (!(worst <= 1e-5)) fail_msg("1 and 2 threads differ by %g", worst);
}

#define CTX_TEST(f) cmocka_unit_test_setup_teardown(f, ctx_setup, ctx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mha_state_dict_names),
        CTX_TEST(test_mha_init),
        CTX_TEST(test_mha_forward_matches_pytorch),
        CTX_TEST(test_mha_forward_strided_input),
        cmocka_unit_test(test_mha_gradcheck_self),
        cmocka_unit_test(test_mha_gradcheck_causal),
        cmocka_unit_test(test_mha_gradcheck_cross_masked),
        CTX_TEST(test_mha_dropout_train_only),
        CTX_TEST(test_mha_errors),
        CTX_TEST(test_block_names_and_values),
        cmocka_unit_test(test_block_print),
        cmocka_unit_test(test_block_gradcheck),
        cmocka_unit_test(test_block_errors),
        cmocka_unit_test(test_gpt_names_and_tied_head),
        CTX_TEST(test_gpt_matches_pytorch),
        CTX_TEST(test_gpt_init),
        CTX_TEST(test_gpt_gradcheck),
        CTX_TEST(test_gpt_errors),
        CTX_TEST(test_gpt_save_load_roundtrip),
        CTX_TEST(test_gpt_learns_pattern),
        CTX_TEST(test_gpt_step_same_bits_for_any_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
