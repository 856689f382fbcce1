/* Training-step benchmark: configurations (a)-(e) of the bench issue.
 *   (a) 784-128-10 relu, Adam 1e-3, batch 32       (b) 784-512-512-10 relu, SGD, batch 128
 *   (c) 100-64-10 relu, SGD, batch 32              (d) two Linear(1,1), MSE, SGD, batch 4
 *   (e) 784-500-10 relu, AdamW 1e-3, batch 1000 as two accumulated batches of 500
 *   (f) ggml's MNIST CNN: conv3x3 1->8 pad 1, relu, maxpool 2, conv3x3 8->16 pad 1, relu,
 *       maxpool 2, flatten, linear 784->10; AdamW 1e-3, batch 1000 as 2 x 500
 *   (g) LeNet-5: conv5x5 1->6 pad 2, relu, maxpool 2, conv5x5 6->16, relu, maxpool 2,
 *       400-120-84-10 relu; Adam 1e-3, batch 128 (inputs [B, 1, 28, 28] for both)
 *   (h) GPT small: 4 layers, 4 heads, width 256, vocab 128, B 8, T 128, AdamW 1e-3
 *   (i) GPT medium: 6 layers, 6 heads, width 384, vocab 128, B 8, T 256, AdamW 1e-3
 *       (cg_nn_gpt, no dropout, random ids and next ids, mean cross-entropy)
 * For each: a full step (zero_grad, forward, loss, backward, optimizer step),
 * its forward / backward / optimizer phases, median/min/max over many steps,
 * the heap allocations per steady-state step (malloc is interposed in this
 * binary and counted), and the GEMM-only lower bound: the same products done
 * by direct BLIS calls in the same run. Then one epoch of Fashion-MNIST with
 * (a) when Debian's dataset is installed.
 * Usage: bench_train [--json] [--threads N] [--reps N (steps per config)]
 *        [--config LIST (e.g. h,i; default all)] [--quick] [--help]
 *   --quick: 10 steps per configuration (3 for the GPTs and the big batches),
 *   no Fashion-MNIST epoch (a smoke test). */
#define _GNU_SOURCE
#include <blis.h>
#include <stdatomic.h>

#include "bench_common.h"

/* ---- counting heap allocations ------------------------------------------------ */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static atomic_long allocs;

void *malloc(size_t n) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_malloc(n);
}
void *calloc(size_t k, size_t n) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_calloc(k, n);
}
void *realloc(void *p, size_t n) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t a, size_t n) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_memalign(a, n);
}
int posix_memalign(void **p, size_t a, size_t n) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12;
}

/* ---- configurations --------------------------------------------------------------- */
typedef enum { ADAM, ADAMW, SGD } optim_kind;

/* A conv layer of a CNN configuration, on a square input of size hw; each
 * is followed by relu and a 2x2 max pool. */
typedef struct conv_spec {
    int64_t in, out, k, pad, hw;
} conv_spec;

/* A GPT configuration (cg_nn_gpt, no dropout), trained on random ids. */
typedef struct gpt_spec {
    int64_t layers, heads, width, vocab, context;
} gpt_spec;

typedef struct config {
    const char *name, *what;
    int nsizes;
    int64_t sizes[4];
    cg_act act;
    optim_kind opt;
    double lr;
    int64_t batch; /* per forward/backward */
    int accum;     /* forward/backward passes per optimizer step */
    bool mse;      /* MSE on [batch, out] targets instead of cross-entropy */
    int nconv;     /* conv layers before the MLP (input [batch, 1, 28, 28]) */
    conv_spec convs[2];
    gpt_spec gpt; /* layers > 0: a GPT on ids [batch, context], not the MLP */
} config;

static const config CONFIGS[] = {
    {"a",
     "784-128-10 relu, Adam, batch 32",
     3,
     {784, 128, 10},
     CG_ACT_RELU,
     ADAM,
     1e-3,
     32,
     1,
     false,
     0,
     {{0}},
     {0}},
    {"b",
     "784-512-512-10 relu, SGD, batch 128",
     4,
     {784, 512, 512, 10},
     CG_ACT_RELU,
     SGD,
     0.1,
     128,
     1,
     false,
     0,
     {{0}},
     {0}},
    {"c",
     "100-64-10 relu, SGD, batch 32",
     3,
     {100, 64, 10},
     CG_ACT_RELU,
     SGD,
     0.1,
     32,
     1,
     false,
     0,
     {{0}},
     {0}},
    {"d",
     "two Linear(1,1), MSE, SGD, batch 4",
     3,
     {1, 1, 1},
     CG_ACT_NONE,
     SGD,
     0.01,
     4,
     1,
     true,
     0,
     {{0}},
     {0}},
    {"e",
     "784-500-10 relu, AdamW, batch 1000 = 2 x 500",
     3,
     {784, 500, 10},
     CG_ACT_RELU,
     ADAMW,
     1e-3,
     500,
     2,
     false,
     0,
     {{0}},
     {0}},
    {"f",
     "MNIST CNN 8-16 conv3x3, AdamW, batch 2 x 500",
     2,
     {784, 10},
     CG_ACT_NONE,
     ADAMW,
     1e-3,
     500,
     2,
     false,
     2,
     {{1, 8, 3, 1, 28}, {8, 16, 3, 1, 14}},
     {0}},
    {"g",
     "LeNet-5, Adam, batch 128",
     4,
     {400, 120, 84, 10},
     CG_ACT_RELU,
     ADAM,
     1e-3,
     128,
     1,
     false,
     2,
     {{1, 6, 5, 2, 28}, {6, 16, 5, 0, 14}},
     {0}},
    {"h",
     "GPT small 4x4x256, T 128, AdamW, batch 8",
     2,
     {256, 128},
     CG_ACT_GELU,
     ADAMW,
     1e-3,
     8,
     1,
     false,
     0,
     {{0}},
     {4, 4, 256, 128, 128}},
    {"i",
     "GPT medium 6x6x384, T 256, AdamW, batch 8",
     2,
     {384, 128},
     CG_ACT_GELU,
     ADAMW,
     1e-3,
     8,
     1,
     false,
     0,
     {{0}},
     {6, 6, 384, 128, 256}},
};

typedef struct result {
    double step[2000], fwd[2000], bwd[2000], opt[2000];
    int n;
    double gemm_bound_ms, allocs_per_step;
    long peak_rss_kb; /* this configuration's own peak (the mark reset before it) */
    size_t arena;     /* bytes the step's context holds (its largest step's, and an eighth) */
    /* GPTs: the step's split, from the same run: the Linear layers' products
     * alone (direct BLIS), the fused attention alone (forward + backward of
     * every layer's), the optimizer phase; the rest is elementwise work,
     * norms, embedding, loss and graph overhead */
    double linear_ms, attn_ms;
} result;

static cg_optim *make_optim(const config *c, cg_module *m) {
    if (c->opt == SGD) {
        cg_sgd_opts o = cg_sgd_defaults(c->lr);
        return cg_sgd_new(m, &o);
    }
    cg_adam_opts o = c->opt == ADAM ? cg_adam_defaults(c->lr) : cg_adamw_defaults(c->lr);
    return c->opt == ADAM ? cg_adam_new(m, &o) : cg_adamw_new(m, &o);
}

/* The model: the conv layers (each conv, relu, 2x2 max pool), a flatten,
 * then the MLP; or the MLP alone. */
static cg_module *make_model(const config *c, cg_rng *rng) {
    const gpt_spec *g = &c->gpt;
    if (g->layers)
        return cg_nn_gpt(rng, CG_F32, g->vocab, g->context, g->width, g->layers, g->heads, 0);
    if (c->nconv == 0) return cg_nn_mlp(rng, CG_F32, c->nsizes, c->sizes, c->act);
    cg_module *m = cg_nn_sequential(0, NULL);
    cg_pool_opts po = cg_pool_defaults(2, 2);
    for (int i = 0; i < c->nconv; i++) {
        const conv_spec *v = &c->convs[i];
        cg_conv_opts co = cg_conv_defaults();
        co.padding[0] = co.padding[1] = v->pad;
        cg_module_add_child(m, NULL,
                            cg_nn_conv2d(rng, CG_F32, v->in, v->out, v->k, v->k, &co, true));
        cg_module_add_child(m, NULL, cg_nn_activation(CG_ACT_RELU));
        cg_module_add_child(m, NULL, cg_nn_maxpool2d(&po));
    }
    cg_module_add_child(m, NULL, cg_nn_flatten(1, -1));
    cg_module_add_child(m, NULL, cg_nn_mlp(rng, CG_F32, c->nsizes, c->sizes, c->act));
    return cg_module_nchildren(m) == 3 * c->nconv + 2 ? m : (cg_module_free(m), NULL);
}

/* Random inputs [batch, in] ([batch, 1, 28, 28] for a CNN) and labels
 * [batch] (or targets [batch, out]). */
static cg_tensor *random_ids(cg_rng *rng, int64_t n, int64_t classes) {
    cg_tensor *u = cg_rand(NULL, rng, CG_F64, 1, &n, 0, (double)classes);
    cg_tensor *ids = cg_cast(NULL, u, CG_I64);
    cg_tensor_free(u);
    return ids;
}

static void make_data(const config *c, cg_rng *rng, cg_tensor **x, cg_tensor **y) {
    int64_t in = c->sizes[0], out = c->sizes[c->nsizes - 1];
    if (c->gpt.layers) { /* ids [batch, context], next ids [batch x context] */
        cg_tensor *flat = random_ids(rng, c->batch * c->gpt.context, c->gpt.vocab);
        *x = cg_reshape(NULL, flat, 2, (const int64_t[]){c->batch, c->gpt.context});
        cg_tensor_free(flat);
        *y = random_ids(rng, c->batch * c->gpt.context, c->gpt.vocab);
        return;
    }
    *x = c->nconv ? cg_randn(NULL, rng, CG_F32, CG_SHAPE(c->batch, 1, 28, 28), 0, 1)
                  : cg_randn(NULL, rng, CG_F32, CG_SHAPE(c->batch, in), 0, 1);
    if (c->mse) {
        *y = cg_randn(NULL, rng, CG_F32, CG_SHAPE(c->batch, out), 0, 1);
        return;
    }
    cg_tensor *u = cg_rand(NULL, rng, CG_F64, CG_SHAPE(c->batch), 0, (double)out);
    *y = cg_cast(NULL, u, CG_I64);
    cg_tensor_free(u);
}

/* ---- one step, timed by phase -------------------------------------------------------- */
typedef struct phases {
    double step, fwd, bwd, opt; /* ms */
} phases;

static int step(const config *c, cg_ctx *ctx, cg_module *m, cg_optim *o, cg_tensor *x,
                cg_tensor *y, phases *ph) {
    double t0 = bench_now();
    *ph = (phases){0, 0, 0, 0};
    cg_optim_zero_grad(o);
    for (int k = 0; k < c->accum; k++) {
        double a = bench_now();
        cg_tensor *out = cg_module_forward(ctx, m, x);
        if (c->gpt.layers) out = cg_reshape(ctx, out, 2, (const int64_t[]){-1, c->gpt.vocab});
        cg_tensor *loss =
            c->mse ? cg_mse_loss(ctx, out, y, CG_MEAN) : cg_cross_entropy(ctx, out, y, CG_MEAN);
        double b = bench_now();
        if (!loss || cg_backward(loss) != CG_OK) return -1;
        cg_ctx_reset(ctx);
        ph->fwd += (b - a) * 1e3;
        ph->bwd += (bench_now() - b) * 1e3;
    }
    double a = bench_now();
    if (cg_optim_step(o) != CG_OK) return -1;
    double end = bench_now();
    ph->opt = (end - a) * 1e3;
    ph->step = (end - t0) * 1e3;
    return 0;
}

/* ---- the GEMM-only lower bound --------------------------------------------------------- */
/* n floats of operand data, written: calloc's untouched pages all map the
 * kernel's one zero page, which a product would read from cache however big
 * its operands, where the step's activations come from memory. */
static float *operand(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; p && i < n; i++) p[i] = (float)(i % 61) * 1e-3f;
    return p;
}

#define ONE_THREAD(m, n, k)                                                                    \
    ((m) * (n) * (k) < (1 << 20) || ((k) < 64 && (m) * (n) * (k) < (16 << 20)))

/* The products of the conv layers as im2col GEMMs: with M = out channels,
 * N = B x out pixels and K = in channels x kernel, the forward (M x N x K),
 * the weight gradient (M x K x N) and, but for the first layer, the input
 * gradient (K x N x M); a, b, d hold the largest operands. */
static void conv_gemms(const config *c, float *a, float *b, float *d, rntm_t *single) {
    float one = 1, zero = 0;
    for (int l = 0; l < c->nconv; l++) {
        const conv_spec *v = &c->convs[l];
        int64_t ho = v->hw + 2 * v->pad - v->k + 1;
        dim_t M = v->out, N = c->batch * ho * ho, K = v->in * v->k * v->k;
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &one, a, K, 1, b, N, 1,
                     &zero, d, N, 1, NULL, ONE_THREAD(M, N, K) ? single : NULL);
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, M, K, N, &one, d, N, 1, b, N, 1, &zero,
                     a, K, 1, NULL, ONE_THREAD(M, K, N) ? single : NULL);
        if (l > 0)
            bli_sgemm_ex(BLIS_TRANSPOSE, BLIS_NO_TRANSPOSE, K, N, M, &one, a, K, 1, d, N, 1,
                         &zero, b, N, 1, NULL, ONE_THREAD(K, N, M) ? single : NULL);
    }
}

/* Elements of the largest conv operand (M x K, K x N or M x N). */
static int64_t conv_max_operand(const config *c) {
    int64_t most = 1;
    for (int l = 0; l < c->nconv; l++) {
        const conv_spec *v = &c->convs[l];
        int64_t ho = v->hw + 2 * v->pad - v->k + 1, N = c->batch * ho * ho;
        int64_t K = v->in * v->k * v->k, dims[] = {v->out * K, K * N, v->out * N};
        for (int i = 0; i < 3; i++) most = dims[i] > most ? dims[i] : most;
    }
    return most;
}

/* Each Linear(in, out) on a batch B does Y = X W^T (B x out x in), dW = dY^T X
 * (out x in x B) and, but for the first layer, dX = dY W (B x in x out). */
static double gemm_bound_ms(const config *c, int reps) {
    int64_t B = c->batch, maxd = 1, cmax = conv_max_operand(c);
    for (int i = 0; i < c->nsizes; i++) maxd = c->sizes[i] > maxd ? c->sizes[i] : maxd;
    float *ca = operand((size_t)cmax), *cb = operand((size_t)cmax), *cd = operand((size_t)cmax);
    float *x = operand((size_t)(B * maxd)), *w = operand((size_t)(maxd * maxd));
    float *g = operand((size_t)(B * maxd)), *out = operand((size_t)((B + maxd) * maxd));
    float one = 1, zero = 0;
    double *v = malloc(sizeof(double) * (size_t)reps);
    rntm_t single = BLIS_RNTM_INITIALIZER; /* small products on one thread, as cgrad does */
    bli_rntm_set_num_threads(1, &single);
    for (int r = 0; r < reps; r++) {
        double t = bench_now();
        for (int k = 0; k < c->accum; k++) conv_gemms(c, ca, cb, cd, &single);
        for (int k = 0; k < c->accum; k++)
            for (int l = 0; l + 1 < c->nsizes; l++) {
                dim_t in = c->sizes[l], o = c->sizes[l + 1];
                rntm_t *fw = ONE_THREAD(B, o, in) ? &single : NULL;
                rntm_t *dw = ONE_THREAD(o, in, B) ? &single : NULL;
                rntm_t *dx = ONE_THREAD(B, in, o) ? &single : NULL;
                bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, B, o, in, &one, x, in, 1, w, in,
                             1, &zero, out, o, 1, NULL, fw);
                bli_sgemm_ex(BLIS_TRANSPOSE, BLIS_NO_TRANSPOSE, o, in, B, &one, g, o, 1, x, in,
                             1, &zero, out, in, 1, NULL, dw);
                if (l > 0 || c->nconv > 0)
                    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, B, in, o, &one, g, o, 1,
                                 w, in, 1, &zero, out, in, 1, NULL, dx);
            }
        v[r] = (bench_now() - t) * 1e3;
    }
    double med = bench_median(v, reps);
    free(v), free(x), free(w), free(g), free(out), free(ca), free(cb), free(cd);
    return med;
}

/* One product of M x N x K (A [M, K], B [K, N]) on buffers big enough. */
static void gemm_once(dim_t M, dim_t N, dim_t K, float *a, float *b, float *d, rntm_t *single) {
    float one = 1, zero = 0;
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &one, a, K, 1, b, N, 1, &zero,
                 d, N, 1, NULL, ONE_THREAD(M, N, K) ? single : NULL);
}

/* A GPT step's products: per layer the four Linear layers (qkv E->3E, out
 * E->E, mlp E->4E->E) and the head (E->V, tied), each forward, weight and
 * input gradient, on B T rows; per batch and head the attention's two
 * forward products (Q K^T, P V) and four backward ones, all T x T x D in
 * full (the causal half not skipped: a conservative bound). */
static double gpt_gemm_bound_ms(const config *c, int reps, bool attention) {
    const gpt_spec *g = &c->gpt;
    dim_t R = c->batch * g->context, E = g->width, T = g->context, D = E / g->heads;
    dim_t lin[5][2] = {{E, 3 * E}, {E, E}, {E, 4 * E}, {4 * E, E}, {E, g->vocab}};
    size_t big = (size_t)(R * 4 * E > T * T ? R * 4 * E : T * T);
    float *a = operand(big), *b = operand(big), *d = operand(big);
    double *v = malloc(sizeof(double) * (size_t)reps);
    rntm_t single = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(1, &single);
    for (int r = 0; r < reps; r++) {
        double t = bench_now();
        for (int l = 0; l <= g->layers; l++)
            for (int k = l < g->layers ? 0 : 4; k < (l < g->layers ? 4 : 5); k++) {
                dim_t in = lin[k][0], out = lin[k][1];
                gemm_once(R, out, in, a, b, d, &single); /* y = x W^T */
                gemm_once(out, in, R, a, b, d, &single); /* dW = dy^T x */
                gemm_once(R, in, out, a, b, d, &single); /* dx = dy W */
            }
        for (int64_t bh = 0; attention && bh < c->batch * g->heads * g->layers; bh++) {
            gemm_once(T, T, D, a, b, d, &single);                             /* S = Q K^T */
            gemm_once(T, D, T, a, b, d, &single);                             /* O = P V */
            for (int k = 0; k < 2; k++) gemm_once(T, T, D, a, b, d, &single); /* dP, dS K^T */
            for (int k = 0; k < 2; k++) gemm_once(T, D, T, a, b, d, &single); /* dV, dQ */
        }
        v[r] = (bench_now() - t) * 1e3;
    }
    double med = bench_median(v, reps);
    free(v), free(a), free(b), free(d);
    return med;
}

/* The fused causal attention of every layer, forward and backward, on
 * [B, H, T, D] f32 leaves (the step's shapes), median ms over reps. */
static double gpt_attention_ms(const config *c, int reps) {
    const gpt_spec *g = &c->gpt;
    int64_t D = g->width / g->heads;
    cg_rng rng;
    cg_rng_seed(&rng, 3);
    cg_tensor *qkv[3],
        *gout = cg_full(NULL, CG_F32, CG_SHAPE(c->batch, g->heads, g->context, D), 1e-3);
    for (int i = 0; i < 3; i++) {
        qkv[i] =
            cg_randn(NULL, &rng, CG_F32, CG_SHAPE(c->batch, g->heads, g->context, D), 0, 1);
        cg_set_requires_grad(qkv[i], true);
    }
    cg_attn_opts o = cg_attn_defaults();
    o.causal = true;
    cg_ctx *ctx = cg_ctx_new();
    double *v = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        double t = bench_now();
        for (int64_t l = 0; l < g->layers; l++) {
            cg_tensor *out = cg_scaled_dot_product_attention(ctx, qkv[0], qkv[1], qkv[2], &o);
            cg_tensor *grads[3];
            cg_grad(ctx, 1, &out, (const cg_tensor *const[]){gout}, 3, qkv, grads, 0);
            cg_ctx_reset(ctx);
        }
        v[r] = (bench_now() - t) * 1e3;
    }
    double med = bench_median(v, reps);
    free(v);
    cg_ctx_free(ctx);
    for (int i = 0; i < 3; i++) cg_tensor_free(qkv[i]);
    cg_tensor_free(gout);
    return med;
}

/* ---- peak memory of one configuration -----------------------------------------------------
 */
/* Linux: writing 5 to clear_refs resets the peak RSS mark (VmHWM), so each
 * configuration's peak is its own (plus the process's base), not an
 * earlier one's. -1 where /proc does not say. */
static void reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) fputs("5", f), fclose(f);
}

static long peak_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

/* ---- one configuration --------------------------------------------------------------------
 */
static int run_config(const config *c, int steps, result *res) {
    reset_peak_rss();
    cg_rng rng;
    cg_rng_seed(&rng, 1);
    cg_module *m = make_model(c, &rng);
    cg_optim *o = m ? make_optim(c, m) : NULL;
    cg_tensor *x, *y;
    make_data(c, &rng, &x, &y);
    cg_ctx *ctx = cg_ctx_new();
    phases ph;
    int rc = o && x && y && ctx ? 0 : -1;
    int warm = c->gpt.layers ? 3 : 20; /* a GPT step takes a second */
    for (int i = 0; rc == 0 && i < warm; i++) rc = step(c, ctx, m, o, x, y, &ph);
    long a0 = atomic_load(&allocs);
    res->n = 0;
    for (int i = 0; rc == 0 && i < steps; i++, res->n++) {
        rc = step(c, ctx, m, o, x, y, &ph);
        res->step[i] = ph.step, res->fwd[i] = ph.fwd, res->bwd[i] = ph.bwd,
        res->opt[i] = ph.opt;
    }
    res->allocs_per_step = (double)(atomic_load(&allocs) - a0) / (steps ? steps : 1);
    res->peak_rss_kb = peak_rss_kb();
    res->arena = cg_ctx_get_stats(ctx).capacity;
    if (c->gpt.layers) {
        res->linear_ms = gpt_gemm_bound_ms(c, steps < 10 ? steps : 10, false);
        res->attn_ms = gpt_attention_ms(c, steps < 10 ? steps : 10);
    }
    res->gemm_bound_ms = c->gpt.layers ? gpt_gemm_bound_ms(c, steps < 10 ? steps : 10, true)
                                       : gemm_bound_ms(c, steps < 50 ? steps : 50);
    if (rc != 0) fprintf(stderr, "bench_train: %s: %s\n", c->name, cg_last_error());
    cg_ctx_free(ctx), cg_optim_free(o), cg_module_free(m), cg_tensor_free(x), cg_tensor_free(y);
    return rc;
}

static void report(const config *c, result *r, bool json) {
    double lo, hi, med = bench_median(r->step, r->n);
    lo = r->step[0], hi = r->step[r->n - 1];
    double f = bench_median(r->fwd, r->n), b = bench_median(r->bwd, r->n);
    double o = bench_median(r->opt, r->n);
    if (json) {
        printf("{\"bench\":\"train\",\"config\":\"%s\",\"threads\":%d,\"step_ms\":%.4f,"
               "\"min_ms\":%.4f,\"max_ms\":%.4f,\"forward_ms\":%.4f,\"backward_ms\":%.4f,"
               "\"optim_ms\":%.4f,\"gemm_bound_ms\":%.4f,\"allocs_per_step\":%.2f,"
               "\"peak_rss_kb\":%ld,\"arena_kb\":%zu,\"steps\":%d,\"linear_gemm_ms\":%.4f,"
               "\"attention_ms\":%.4f,"
               "\"other_ms\":%.4f}\n",
               c->name, cg_get_num_threads(), med, lo, hi, f, b, o, r->gemm_bound_ms,
               r->allocs_per_step, r->peak_rss_kb, r->arena / 1024, r->n, r->linear_ms,
               r->attn_ms, c->gpt.layers ? med - r->linear_ms - r->attn_ms - o : 0.0);
        return;
    }
    printf("(%s) %-44s step %7.3f ms (min %7.3f, max %7.3f)  fwd %6.3f  bwd %6.3f  opt %6.3f"
           "  gemm-bound %6.3f (x%.2f)  allocs/step %.1f  peak %.0f MiB (context %.0f MiB)\n",
           c->name, c->what, med, lo, hi, f, b, o, r->gemm_bound_ms, med / r->gemm_bound_ms,
           r->allocs_per_step, (double)r->peak_rss_kb / 1024, (double)r->arena / 1048576);
    if (c->gpt.layers) /* the split: each part measured alone in this run */
        printf(
            "(%s) split: Linear GEMMs %.1f ms (direct BLIS), attention %.1f ms (fused, fwd + "
            "bwd), optimizer %.1f ms, the rest (elementwise, norms, embedding, loss, graph) "
            "%.1f ms\n",
            c->name, r->linear_ms, r->attn_ms, o, med - r->linear_ms - r->attn_ms - o);
}

/* ---- one epoch of Fashion-MNIST with (a) ----------------------------------------------- */
static void fashion_epoch(bool json) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char ip[256], lp[256];
    snprintf(ip, sizeof ip, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(lp, sizeof lp, "%s/train-labels-idx1-ubyte.gz", dir);
    cg_tensor *img = cg_idx_load(ip, CG_F32, 1.0 / 255), *y = cg_idx_load(lp, CG_I64, 1);
    cg_tensor *x = img ? cg_reshape(NULL, img, 2, (const int64_t[]){-1, 784}) : NULL;
    if (!x || !y) {
        printf("fashion-mnist epoch: skipped (%s)\n", cg_last_error());
    } else {
        const config *c = &CONFIGS[0];
        cg_rng rng;
        cg_rng_seed(&rng, 42);
        cg_module *m = cg_nn_mlp(&rng, CG_F32, c->nsizes, c->sizes, c->act);
        cg_optim *o = make_optim(c, m);
        cg_batcher *b = cg_batcher_new(x, y, 32, true, false, &rng);
        cg_ctx *ctx = cg_ctx_new();
        cg_tensor *xb, *yb;
        phases ph;
        double t = bench_now();
        while (cg_batcher_next(b, &xb, &yb)) step(c, ctx, m, o, xb, yb, &ph);
        t = bench_now() - t;
        if (json)
            printf("{\"bench\":\"train\",\"config\":\"fashion_epoch_a\",\"threads\":%d,"
                   "\"epoch_s\":%.3f}\n",
                   cg_get_num_threads(), t);
        else
            printf("fashion-mnist epoch with (a): %.3f s for 1875 steps (%.3f ms/step)\n", t,
                   t / 1875 * 1e3);
        cg_ctx_free(ctx), cg_batcher_free(b), cg_optim_free(o), cg_module_free(m);
    }
    cg_tensor_free(img), cg_tensor_free(x), cg_tensor_free(y);
}

/* --config LIST (letters a-i, comma-separated) taken out of argv before
 * bench_parse reads the common options; NULL: every configuration. */
static const char *take_config(int *argc, char **argv) {
    for (int i = 1; i + 1 < *argc; i++)
        if (!strcmp(argv[i], "--config")) {
            const char *list = argv[i + 1];
            for (int j = i; j + 2 <= *argc; j++) argv[j] = argv[j + 2];
            *argc -= 2;
            return list;
        }
    return NULL;
}

static const char *const CONFIG_HELP[] = {
    "  --config LIST  configurations to run, e.g. h,i (all of a-i; a subset skips the epoch)",
    NULL,
};

static const bench_help HELP = {
    "training steps (a)-(i) by phase, allocations per step, peak RSS, the GEMM-only bound;\n"
    "then one Fashion-MNIST epoch with (a) when the data is installed",
    "steps per configuration, at most 2000 (GPTs a 40th, big batches a quarter)",
    "10 steps per configuration (GPTs, big batches: 3), no epoch (a smoke test)",
    CONFIG_HELP,
};

int main(int argc, char **argv) {
    const char *only = take_config(&argc, argv);
    bench_opts o = bench_parse(argc, argv, 400, &HELP);
    /* the direct BLIS calls (rntm NULL) on cgrad's count, as cgrad gives BLIS per call */
    bli_thread_set_num_threads(cg_get_num_threads());
    if (o.quick) o.reps = 10;
    static result r;
    int steps = o.reps > 2000 ? 2000 : o.reps;
    if (!o.json)
        printf("bench_train: %d threads, %d steps per configuration (medians)\n",
               cg_get_num_threads(), steps);
    for (size_t i = 0; i < sizeof CONFIGS / sizeof CONFIGS[0]; i++) {
        const config *c = &CONFIGS[i];
        if (only && !strstr(only, c->name)) continue;
        int n = c->gpt.layers                     ? (steps / 40 > 3 ? steps / 40 : 3)
                : c->accum > 1 || c->batch >= 128 ? (steps / 4 > 3 ? steps / 4 : 3)
                                                  : steps;
        if (run_config(c, n, &r) != 0) return 1;
        report(c, &r, o.json);
    }
    if (!only && !o.quick) fashion_epoch(o.json);
    return 0;
}
