/* cgrad's GEMMs against a direct BLIS call on the same shapes, f32.
 *
 * Every shape is a linear layer y = x W^T with x [batch, in], W [out, in]
 * (a square N is batch = in = out = N); for it three products are timed, as
 * cgrad's linear layer does them:
 *   fwd  y [batch,out] = x W^T    cg_linear(x, W, no bias)
 *   dX   dx [batch,in] = dy W     cg_matmul(dy, W)                (linear's backward)
 *   dW   dW [out,in]   = dy^T x   cg_matmul(cg_transpose(dy), x)  (a strided view)
 * and each against bli_sgemm with the same transposes, on the same input
 * buffers, into a preallocated output. cgrad's result goes to a context that
 * is reset after every call, so only the allocation cgrad itself does (an
 * arena bump) is timed. One sample repeats the call until it lasts >= 20 ms;
 * the cgrad and BLIS samples alternate; the median of --reps samples gives
 * GFLOP/s = 2 m n k / t, and cgrad is reported as a percent of direct BLIS.
 * Both use the same thread count (--threads, else OpenMP's default).
 * Before timing, the two results are compared (the bench exits if they differ).
 *
 * Shapes: square 64..2048; the MLP shapes batch 32 784->128->10, batch 128
 * 784->512->512->10, batch 32 100->64->10, batch 500 784->500->10.
 *
 * Usage: bench_gemm [--json] [--threads N] [--reps N] [--quick] [--help]
 *   --quick: squares 64 and 256 and batch 32 784->128 only (a smoke test).
 * Output: a "# label" line per shape, then one line per product, e.g.
 *   gemm  m=1024  n=1024  k=1024  op=fwd  cgrad   70.1 GF/s  blis   71.0 GF/s   98.7%
 * or with --json one JSON object per product per line. */
#include "bench_common.h"

#include <blis.h>
#include <math.h>

#define MIN_SAMPLE 0.020 /* seconds per timed sample */

typedef struct shape {
    const char *label;
    int64_t batch, in, out;
} shape;

static const shape SHAPES[] = {
    {"square 64", 64, 64, 64},
    {"square 128", 128, 128, 128},
    {"square 256", 256, 256, 256},
    {"square 512", 512, 512, 512},
    {"square 1024", 1024, 1024, 1024},
    {"square 2048", 2048, 2048, 2048},
    {"mlp b32 784->128", 32, 784, 128},
    {"mlp b32 128->10", 32, 128, 10},
    {"mlp b128 784->512", 128, 784, 512},
    {"mlp b128 512->512", 128, 512, 512},
    {"mlp b128 512->10", 128, 512, 10},
    {"mlp b32 100->64", 32, 100, 64},
    {"mlp b32 64->10", 32, 64, 10},
    {"mlp b500 784->500", 500, 784, 500},
    {"mlp b500 500->10", 500, 500, 10},
};
static const int QUICK[] = {0, 2, 6}; /* indices into SHAPES for --quick */

typedef enum { FWD, DX, DW } gemm_op;
static const char *OP_NAMES[] = {"fwd", "dX", "dW"};

/* One product of one shape, runnable by either side. */
typedef struct job {
    cg_ctx *ctx;
    cg_tensor *x, *w, *dy; /* caller-owned inputs, shared by both sides */
    float *c;              /* BLIS's output */
    rntm_t *rt;            /* BLIS's threads for the direct call: NULL (all) or one */
    int64_t batch, in, out;
    gemm_op op;
} job;

typedef void (*run_fn)(job *j);

static void die(const char *what) {
    fprintf(stderr, "bench_gemm: %s: %s\n", what, cg_last_error());
    exit(1);
}

/* The product as cgrad computes it, result in j->ctx (not reset here). */
static cg_tensor *cgrad_product(job *j) {
    switch (j->op) {
    case FWD: return cg_linear(j->ctx, j->x, j->w, NULL);
    case DX: return cg_matmul(j->ctx, j->dy, j->w);
    default: return cg_matmul(j->ctx, cg_transpose(j->ctx, j->dy, 0, 1), j->x);
    }
}

static void run_cgrad(job *j) {
    if (!cgrad_product(j)) die(OP_NAMES[j->op]);
    cg_ctx_reset(j->ctx);
}

/* The same product as one bli_sgemm on the row-major buffers, on j->rt's
 * threads (NULL: all). */
static void run_blis(job *j) {
    float one = 1.0f, zero = 0.0f;
    float *x = cg_data(j->x), *w = cg_data(j->w), *dy = cg_data(j->dy);
    dim_t b = (dim_t)j->batch, in = (dim_t)j->in, out = (dim_t)j->out;
    if (j->op == FWD)
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, b, out, in, &one, x, in, 1, w, in, 1,
                     &zero, j->c, out, 1, NULL, j->rt);
    else if (j->op == DX)
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, b, in, out, &one, dy, out, 1, w, in,
                     1, &zero, j->c, in, 1, NULL, j->rt);
    else
        bli_sgemm_ex(BLIS_TRANSPOSE, BLIS_NO_TRANSPOSE, out, in, b, &one, dy, out, 1, x, in, 1,
                     &zero, j->c, in, 1, NULL, j->rt);
}

/* m, n, k of the product. */
static void dims(const job *j, int64_t *m, int64_t *n, int64_t *k) {
    int64_t t[3][3] = {
        {j->batch, j->out, j->in}, {j->batch, j->in, j->out}, {j->out, j->in, j->batch}};
    *m = t[j->op][0], *n = t[j->op][1], *k = t[j->op][2];
}

/* Seconds for inner calls. */
static double sample(run_fn f, job *j, long inner) {
    double t = bench_now();
    for (long i = 0; i < inner; i++) f(j);
    return bench_now() - t;
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

/* cgrad's result must equal BLIS's up to rounding (max |diff| vs max |ref|). */
static void check(job *j) {
    cg_tensor *r = cgrad_product(j);
    if (!r) die(OP_NAMES[j->op]);
    run_blis(j);
    const float *got = cg_data(r);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < cg_numel(r); i++) {
        err = fmax(err, fabs((double)got[i] - j->c[i]));
        ref = fmax(ref, fabs((double)j->c[i]));
    }
    cg_ctx_reset(j->ctx);
    if (err > 1e-4 * (ref + 1)) {
        fprintf(stderr, "bench_gemm: %s: cgrad and BLIS differ by %g\n", OP_NAMES[j->op], err);
        exit(1);
    }
}

static void report(const bench_opts *o, const job *j, const char *label, double gc, double gb) {
    int64_t m, n, k;
    dims(j, &m, &n, &k);
    if (o->json)
        printf("{\"bench\":\"gemm\",\"case\":\"%s\",\"m\":%lld,\"n\":%lld,\"k\":%lld,"
               "\"op\":\"%s\",\"cgrad_gflops\":%.2f,\"blis_gflops\":%.2f,\"pct\":%.1f,"
               "\"threads\":%d}\n",
               label, (long long)m, (long long)n, (long long)k, OP_NAMES[j->op], gc, gb,
               100.0 * gc / gb, cg_get_num_threads());
    else
        printf("gemm  m=%-5lld n=%-5lld k=%-5lld op=%-3s  cgrad %6.1f GF/s  blis %6.1f "
               "GF/s  %5.1f%%\n",
               (long long)m, (long long)n, (long long)k, OP_NAMES[j->op], gc, gb,
               100.0 * gc / gb);
    fflush(stdout);
}

/* Times one product on both sides; median GFLOP/s of each. */
static void bench_op(const bench_opts *o, job *j, const char *label, double *v) {
    int64_t m, n, k;
    dims(j, &m, &n, &k);
    double flop = 2.0 * (double)m * (double)n * (double)k, *vb = v + o->reps;
    rntm_t one = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(1, &one);
    rntm_t *choice[2] = {NULL, &one};
    double best = 0, cg_at_best = 0;
    j->rt = NULL;
    check(j);
    for (int c = 0; c < 2;
         c++) { /* direct BLIS on all threads, then on one: the faster counts */
        j->rt = choice[c];
        long ic = calibrate(run_cgrad, j), ib = calibrate(run_blis, j);
        for (int r = 0; r < o->reps; r++) {
            v[r] = flop * ic / sample(run_cgrad, j, ic) * 1e-9;
            vb[r] = flop * ib / sample(run_blis, j, ib) * 1e-9;
        }
        double b = bench_median(vb, o->reps);
        if (b > best) best = b, cg_at_best = bench_median(v, o->reps);
    }
    report(o, j, label, cg_at_best, best);
}

/* Inputs for one shape, the three products, then everything freed. */
static void bench_shape(const bench_opts *o, cg_ctx *ctx, const shape *s, double *v) {
    cg_rng rng;
    cg_rng_seed(&rng, 42);
    job j = {.ctx = ctx, .batch = s->batch, .in = s->in, .out = s->out};
    j.x = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(s->batch, s->in), 0, 1);
    j.w = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(s->out, s->in), 0, 1);
    j.dy = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(s->batch, s->out), 0, 1);
    int64_t most = s->out * s->in;
    if (s->batch * s->in > most) most = s->batch * s->in;
    if (s->batch * s->out > most) most = s->batch * s->out;
    size_t bytes = ((size_t)most * sizeof(float) + 63) / 64 * 64;
    j.c = aligned_alloc(64, bytes);
    if (!j.x || !j.w || !j.dy || !j.c) die("inputs");
    if (!o->json) printf("# %s\n", s->label);
    for (int op = FWD; op <= DW; op++) {
        j.op = (gemm_op)op;
        bench_op(o, &j, s->label, v);
    }
    free(j.c);
    cg_tensor_free(j.x);
    cg_tensor_free(j.w);
    cg_tensor_free(j.dy);
}

static const bench_help HELP = {
    "cgrad's forward, dX and dW products of a linear layer against a direct bli_sgemm,\n"
    "on squares 64-2048 and the MLP shapes",
    "timed samples of >= 20 ms per product and side",
    "squares 64 and 256 and batch 32 784->128 only (a smoke test)",
    NULL,
};

int main(int argc, char **argv) {
    bench_opts o = bench_parse(argc, argv, 11, &HELP);
    /* the direct BLIS calls (rntm NULL) on cgrad's count, as cgrad gives BLIS per call */
    bli_thread_set_num_threads(cg_get_num_threads());
    int quick = o.quick;
    /* BLIS called directly must run on cgrad's thread count too. */
    cg_set_num_threads(o.threads > 0 ? o.threads : cg_get_num_threads());
    cg_ctx *ctx = cg_ctx_new();
    double *v = malloc(sizeof(double) * 2 * (size_t)o.reps);
    if (!ctx || !v) die("setup");
    if (!o.json)
        printf("# f32, %d threads, median of %d samples of >= %.0f ms\n", cg_get_num_threads(),
               o.reps, MIN_SAMPLE * 1e3);
    int nshapes =
        quick ? (int)(sizeof QUICK / sizeof *QUICK) : (int)(sizeof SHAPES / sizeof *SHAPES);
    for (int i = 0; i < nshapes; i++) bench_shape(&o, ctx, &SHAPES[quick ? QUICK[i] : i], v);
    free(v);
    cg_ctx_free(ctx);
    return 0;
}
