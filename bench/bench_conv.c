/* cgrad's convolutions against a direct BLIS GEMM of the same size, f32.
 *
 * For each layer shape three products are timed, as a training step does
 * them:
 *   fwd  y = conv2d(x, w, b)                   (x, w plain: no graph)
 *   dX   d x of sum(y * dy): conv_transpose2d(dy, w), timed as the backward pass
 *        of a graph where only x requires a gradient
 *   dW   d w (and d b): conv2d's weight gradient (im2col and one GEMM per tile),
 *        timed as the backward pass of a graph where only w and b do
 * Each against one bli_sgemm of the product's M, N, K on preallocated buffers
 * (the faster of BLIS on all threads and on one, as bench_gemm):
 *   fwd  [Cout, Cin KK] x [Cin KK, N OH OW]   dX  [Cin KK, Cout] x [Cout, N OH OW]
 *   dW   [Cout, N OH OW] x [N OH OW, Cin KK]
 * All three have 2 N Cout Cin KK OH OW flops. One sample repeats the call
 * until it lasts >= 20 ms (for dX and dW only the backward passes are
 * summed; the forward that builds each graph is not timed); the median of
 * --reps samples gives ms per call and GFLOP/s, cgrad as a percent of BLIS.
 *
 * Shapes: LeNet-5's conv5x5 1->6 pad 2 on 28x28 and conv5x5 6->16 on 14x14
 * (batch 128), ggml's MNIST CNN conv3x3 1->8 pad 1 on 28x28 and conv3x3
 * 8->16 pad 1 on 14x14 (batch 500), and conv3x3 64->64 pad 1 on 32x32
 * (batch 32).
 *
 * Usage: bench_conv [--json] [--threads N] [--reps N] [--quick] [--help]
 *   --quick: the two 14x14 layers only, 3 samples (a smoke test); --help: the list.
 * Output: a "# label" line per shape, then one line per product, e.g.
 *   conv  lenet2  op=fwd  m=16    n=12800 k=150    0.251 ms   24.5 GF/s  blis  40.1 GF/s  61.1%
 * or with --json one JSON object per product per line. */
#include "bench_common.h"

#include <blis.h>

#define MIN_SAMPLE 0.020 /* seconds per timed sample */

typedef struct layer {
    const char *name, *label;
    int64_t batch, cin, cout, hw, k, pad;
} layer;

static const layer LAYERS[] = {
    {"lenet1", "LeNet-5 conv5x5 1->6 pad 2, 28x28, batch 128", 128, 1, 6, 28, 5, 2},
    {"lenet2", "LeNet-5 conv5x5 6->16, 14x14, batch 128", 128, 6, 16, 14, 5, 0},
    {"ggml1", "ggml MNIST conv3x3 1->8 pad 1, 28x28, batch 500", 500, 1, 8, 28, 3, 1},
    {"ggml2", "ggml MNIST conv3x3 8->16 pad 1, 14x14, batch 500", 500, 8, 16, 14, 3, 1},
    {"c64", "conv3x3 64->64 pad 1, 32x32, batch 32", 32, 64, 64, 32, 3, 1},
};
static const int QUICK[] = {1, 3};

typedef enum { FWD, DX, DW } conv_op;
static const char *OP_NAMES[] = {"fwd", "dX", "dW"};

typedef struct job {
    cg_ctx *ctx;
    cg_tensor *x, *w, *b, *dy; /* caller-owned */
    cg_conv_opts o;
    float *a, *bb, *c; /* BLIS's operands */
    rntm_t *rt;
    int64_t m, n, k; /* the product's GEMM */
    conv_op op;
} job;

static void die(const char *what) {
    fprintf(stderr, "bench_conv: %s: %s\n", what, cg_last_error());
    exit(1);
}

/* Seconds of one cgrad call (the backward pass only, for dX and dW). */
static double run_cgrad(job *j) {
    double t0 = bench_now();
    cg_tensor *y = cg_conv2d(j->ctx, j->x, j->w, j->b, &j->o);
    if (!y) die("conv2d");
    if (j->op != FWD) {
        t0 = bench_now();
        if (cg_backward_ex(y, j->dy, 0) != CG_OK) die(OP_NAMES[j->op]);
    }
    double t = bench_now() - t0;
    cg_ctx_reset(j->ctx);
    return t;
}

static double run_blis(job *j) {
    float one = 1.0f, zero = 0.0f;
    dim_t m = (dim_t)j->m, n = (dim_t)j->n, k = (dim_t)j->k;
    double t0 = bench_now();
    if (j->op == FWD)
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, j->a, k, 1, j->bb, n,
                     1, &zero, j->c, n, 1, NULL, j->rt);
    else if (j->op == DX) /* A stored [k, m] as the weight [Cout, Cin KK] */
        bli_sgemm_ex(BLIS_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, j->a, m, 1, j->bb, n, 1,
                     &zero, j->c, n, 1, NULL, j->rt);
    else /* B stored [n, k] as the columns [Cin KK, N OH OW] */
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, m, n, k, &one, j->a, k, 1, j->bb, k, 1,
                     &zero, j->c, n, 1, NULL, j->rt);
    return bench_now() - t0;
}

typedef double (*run_fn)(job *j);

static double sample(run_fn f, job *j, long inner) {
    double t = 0;
    for (long i = 0; i < inner; i++) t += f(j);
    return t;
}

/* Calls per sample so a sample lasts >= MIN_SAMPLE; doubles as the warm-up. */
static long calibrate(run_fn f, job *j) {
    long inner = 1;
    for (;;) {
        double t = sample(f, j, inner);
        if (t >= MIN_SAMPLE) return inner;
        double want = t > 0 ? inner * MIN_SAMPLE * 1.2 / t : inner * 100.0;
        inner = want > inner * 100.0 ? inner * 100 : (long)want + 1;
    }
}

static void report(const bench_opts *o, const job *j, const char *name, double ms, double gc,
                   double gb) {
    if (o->json)
        printf("{\"bench\":\"conv\",\"case\":\"%s\",\"op\":\"%s\",\"m\":%lld,\"n\":%lld,"
               "\"k\":%lld,\"ms\":%.4f,\"cgrad_gflops\":%.2f,\"blis_gflops\":%.2f,"
               "\"pct\":%.1f,\"threads\":%d}\n",
               name, OP_NAMES[j->op], (long long)j->m, (long long)j->n, (long long)j->k, ms, gc,
               gb, 100.0 * gc / gb, cg_get_num_threads());
    else
        printf("conv  %-6s op=%-3s m=%-5lld n=%-6lld k=%-6lld %8.3f ms  %6.1f GF/s  blis %6.1f "
               "GF/s  %5.1f%%\n",
               name, OP_NAMES[j->op], (long long)j->m, (long long)j->n, (long long)j->k, ms, gc,
               gb, 100.0 * gc / gb);
    fflush(stdout);
}

/* Times one product on both sides; v holds 2 * reps doubles. */
static void bench_op(const bench_opts *o, job *j, const char *name, double *v) {
    double flop = 2.0 * (double)j->m * (double)j->n * (double)j->k, *vb = v + o->reps;
    rntm_t one = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(1, &one);
    rntm_t *choice[2] = {NULL, &one};
    long ic = calibrate(run_cgrad, j);
    for (int r = 0; r < o->reps; r++) v[r] = sample(run_cgrad, j, ic) / (double)ic;
    double tc = bench_median(v, o->reps), best = 0;
    for (int c = 0; c < 2; c++) { /* direct BLIS on all threads, then on one */
        j->rt = choice[c];
        long ib = calibrate(run_blis, j);
        for (int r = 0; r < o->reps; r++) vb[r] = flop * ib / sample(run_blis, j, ib) * 1e-9;
        double b = bench_median(vb, o->reps);
        if (b > best) best = b;
    }
    report(o, j, name, tc * 1e3, flop / tc * 1e-9, best);
}

/* Which inputs require a gradient: none (fwd), x (dX), w and b (dW). */
static void set_grads(job *j) {
    cg_set_requires_grad(j->x, j->op == DX);
    cg_set_requires_grad(j->w, j->op == DW);
    cg_set_requires_grad(j->b, j->op == DW);
}

static float *buffer(int64_t n) {
    float *p = aligned_alloc(64, ((size_t)n * sizeof(float) + 63) / 64 * 64);
    if (!p) die("buffers");
    for (int64_t i = 0; i < n; i++) p[i] = (float)((i * 7919) % 1000) * 1e-3f;
    return p;
}

static void bench_layer(const bench_opts *o, cg_ctx *ctx, const layer *l, double *v) {
    cg_rng rng;
    cg_rng_seed(&rng, 42);
    int64_t oh = l->hw + 2 * l->pad - l->k + 1, kk = l->k * l->k;
    job j = {.ctx = ctx, .o = cg_conv_defaults()};
    j.o.padding[0] = j.o.padding[1] = l->pad;
    j.x = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(l->batch, l->cin, l->hw, l->hw), 0, 1);
    j.w = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(l->cout, l->cin, l->k, l->k), 0, 0.1);
    j.b = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(l->cout), 0, 0.1);
    j.dy = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(l->batch, l->cout, oh, oh), 0, 1);
    if (!j.x || !j.w || !j.b || !j.dy) die("inputs");
    int64_t cols = l->cin * kk, pix = l->batch * oh * oh;
    j.a = buffer(l->cout * (cols > pix ? cols : pix));
    j.bb = buffer(pix * (cols > l->cout ? cols : l->cout));
    j.c = buffer(pix * (cols > l->cout ? cols : l->cout));
    if (!o->json) printf("# %s\n", l->label);
    for (int op = FWD; op <= DW; op++) {
        j.op = (conv_op)op;
        int64_t mnk[3][3] = {{l->cout, pix, cols}, {cols, pix, l->cout}, {l->cout, cols, pix}};
        j.m = mnk[op][0], j.n = mnk[op][1], j.k = mnk[op][2];
        set_grads(&j);
        bench_op(o, &j, l->name, v);
    }
    free(j.a);
    free(j.bb);
    free(j.c);
    cg_tensor_free(j.x);
    cg_tensor_free(j.w);
    cg_tensor_free(j.b);
    cg_tensor_free(j.dy);
}

static const bench_help HELP = {
    "conv2d forward, input and weight gradients of the LeNet-5 (lenet1, lenet2), ggml MNIST\n"
    "(ggml1, ggml2) and 3x3 64->64 (c64) layers against a direct BLIS sgemm of the same size",
    "timed samples of >= 20 ms per product",
    "the two 14x14 layers (lenet2, ggml2) only, 3 samples (a smoke test)",
    NULL,
};

int main(int argc, char **argv) {
    bench_opts o = bench_parse(argc, argv, 11, &HELP);
    /* the direct BLIS calls (rntm NULL) on cgrad's count, as cgrad gives BLIS per call */
    bli_thread_set_num_threads(cg_get_num_threads());
    if (o.quick) o.reps = 3;
    /* BLIS called directly must run on cgrad's thread count too. */
    cg_set_num_threads(o.threads > 0 ? o.threads : cg_get_num_threads());
    cg_ctx *ctx = cg_ctx_new();
    double *v = malloc(sizeof(double) * 2 * (size_t)o.reps);
    if (!ctx || !v) die("setup");
    if (!o.json)
        printf("# f32, %d threads, median of %d samples of >= %.0f ms\n", cg_get_num_threads(),
               o.reps, MIN_SAMPLE * 1e3);
    int n =
        o.quick ? (int)(sizeof QUICK / sizeof *QUICK) : (int)(sizeof LAYERS / sizeof *LAYERS);
    for (int i = 0; i < n; i++) bench_layer(&o, ctx, &LAYERS[o.quick ? QUICK[i] : i], v);
    free(v);
    cg_ctx_free(ctx);
    return 0;
}
