/* Elementwise ops and their backward, f32, as GB/s against a STREAM triad.
 *
 * Reference: the triad a[i] = b[i] + s*c[i] over the largest size, OpenMP
 * over cgrad's thread count, counted as 12 bytes per element (STREAM's rule:
 * read b and c, write a; write-allocate traffic is not counted, here or
 * below).
 *
 * Cases, on N = 1K, 64K, 1M, 16M elements (tensors [N/1024, 1024]):
 *   unary      exp, relu, sigmoid, tanh of x
 *   binary     add, mul of two same-shape tensors
 *   add_bcast  [N/1024, 1024] + [1024]
 * each forward, and each backward. Every input requires a gradient, so the
 * forward records its node as in training; a forward sample is forward +
 * cg_ctx_reset per call. The backward is timed on its own: a forward
 * records the graph (untimed), then cg_grad with CG_RETAIN_GRAPH runs on
 * it (timed) as many times as add at most 1 MB of results to the context
 * (at least once: one per graph from 1M elements on, except for the rules
 * that make little, add's and add_bcast's), then the reset (untimed). cg_grad is the op's
 * backward rule against an output gradient of ones, the input gradients
 * returned rather than accumulated into .grad (cg_backward would add one
 * read-read-write pass, grad += g, per leaf). One sample repeats the call
 * until it lasts >= 20 ms; the median of --reps samples is reported.
 *
 * Bytes moved, in elements of 4 bytes, counting each array every pass of
 * the implementation reads or writes (the rules in ops/math.c, arith.c,
 * activation.c are chains of separate elementwise passes):
 *   unary fwd      read x, write y                                  2N
 *   add, mul fwd   read a, b, write y                               3N
 *   add_bcast fwd  read a, b (1024), write y                        2N + 1024
 *   exp bwd        g*y                                              3N
 *   relu bwd       m = (x > 0): 2N; g*m: 3N                         5N
 *   tanh bwd       t = y^2: 2N; u = 1-t: 2N; g*u: 3N                7N
 *   sigmoid bwd    t = 1-y: 2N; u = y*t: 3N; g*u: 3N                8N
 *   add bwd        both gradients are g itself                      0 (time only)
 *   mul bwd        g*b, g*a                                         6N
 *   add_bcast bwd  a's gradient is g; b's: sum of g over rows       N + 1024
 *
 * Usage: bench_elementwise [--json] [--threads N] [--reps N] [--quick] [--help]
 *   --quick: sizes 1K and 1M only (a smoke test; the triad then runs on 1M).
 * Output: the triad line, then one line per case, e.g.
 *   ew  exp        fwd  n=16777216    9876.5 us   13.6 GB/s   85.0%
 * or with --json one JSON object per line. */
#include "bench_common.h"

#include <stdint.h>

#define MIN_SAMPLE  0.020     /* seconds per timed sample */
#define COLS        1024      /* row length of every tensor, and of the broadcast operand */
#define GRAPH_BYTES (1 << 20) /* arena bytes a batch of backward calls may add */
#define BATCH_MAX   4096

typedef enum { EXP, RELU, SIGMOID, TANH, ADD, MUL, ADD_BCAST, NOPS } ew_op;
static const char *NAMES[] = {"exp", "relu", "sigmoid", "tanh", "add", "mul", "add_bcast"};
/* Bytes moved per element / 4, forward and backward (see the table above);
 * add_bcast also moves COLS more elements each way. */
static const int FWD_E[] = {2, 2, 2, 2, 3, 3, 2};
static const int BWD_E[] = {3, 5, 8, 7, 0, 6, 1};

static const int64_t SIZES[] = {1 << 10, 1 << 16, 1 << 20, 1 << 24};
static const int64_t QUICK_SIZES[] = {1 << 10, 1 << 20};

/* One timed thing: a cgrad case or the triad. */
typedef struct job {
    cg_ctx *ctx;
    cg_tensor *in[2]; /* the op's inputs (both require a gradient) */
    cg_tensor *g;     /* output gradient: ones */
    ew_op op;
    int backward;     /* time cg_grad instead of the forward */
    long batch;       /* backward calls per recorded graph */
    float *a, *b, *c; /* the triad's arrays */
    int64_t n;
} job;

static void die(const char *what) {
    fprintf(stderr, "bench_elementwise: %s: %s\n", what, cg_last_error());
    exit(1);
}

static int ninputs(ew_op op) { return op >= ADD ? 2 : 1; }

static cg_tensor *forward(cg_ctx *ctx, ew_op op, cg_tensor *const *x) {
    switch (op) {
    case EXP: return cg_exp(ctx, x[0]);
    case RELU: return cg_relu(ctx, x[0]);
    case SIGMOID: return cg_sigmoid(ctx, x[0]);
    case TANH: return cg_tanh(ctx, x[0]);
    case MUL: return cg_mul(ctx, x[0], x[1]);
    default: return cg_add(ctx, x[0], x[1]);
    }
}

static void run_forward(job *j) {
    if (!forward(j->ctx, j->op, j->in)) die(NAMES[j->op]);
    cg_ctx_reset(j->ctx);
}

static void run_grad(job *j, cg_tensor *y) {
    cg_tensor *grads[2];
    const cg_tensor *gout[1] = {j->g};
    if (cg_grad(j->ctx, 1, &y, gout, ninputs(j->op), j->in, grads, CG_RETAIN_GRAPH) != CG_OK)
        die(NAMES[j->op]);
}

/* Seconds for inner backward calls: a forward records the graph (untimed),
 * then up to j->batch cg_grad calls on it are timed, then the reset. */
static double sample_backward(job *j, long inner) {
    double total = 0;
    for (long done = 0; done < inner;) {
        long k = inner - done < j->batch ? inner - done : j->batch;
        cg_tensor *y = forward(j->ctx, j->op, j->in);
        if (!y) die(NAMES[j->op]);
        double t = bench_now();
        for (long i = 0; i < k; i++) run_grad(j, y);
        total += bench_now() - t;
        cg_ctx_reset(j->ctx);
        done += k;
    }
    return total;
}

static void run_triad(job *j) {
    float *a = j->a;
    const float *b = j->b, *c = j->c;
    int64_t n = j->n;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) a[i] = b[i] + 3.0f * c[i];
}

/* Backward calls per recorded graph: as many as fit GRAPH_BYTES of results
 * (cheap backward rules, add's above all, would otherwise spend their time
 * in untimed forwards), at least 1. Also warms the arena up. */
static long grad_batch(job *j) {
    cg_tensor *y = forward(j->ctx, j->op, j->in);
    if (!y) die(NAMES[j->op]);
    size_t before = cg_ctx_get_stats(j->ctx).used;
    run_grad(j, y);
    size_t per_call = cg_ctx_get_stats(j->ctx).used - before;
    cg_ctx_reset(j->ctx);
    size_t batch = GRAPH_BYTES / (per_call ? per_call : 1);
    return batch < 1 ? 1 : batch > BATCH_MAX ? BATCH_MAX : (long)batch;
}

/* Seconds for inner calls of what j describes. */
static double sample(job *j, long inner) {
    if (j->backward) return sample_backward(j, inner);
    double t = bench_now();
    for (long i = 0; i < inner; i++) j->a ? run_triad(j) : run_forward(j);
    return bench_now() - t;
}

/* Calls per sample so a sample lasts >= MIN_SAMPLE; doubles as the warm-up. */
static long calibrate(job *j) {
    long inner = 1;
    for (;;) {
        double t = sample(j, inner);
        if (t >= MIN_SAMPLE) return inner;
        double want = t > 0 ? inner * MIN_SAMPLE * 1.2 / t : inner * 100.0;
        inner = want > inner * 100.0 ? inner * 100 : (long)want + 1;
    }
}

/* Median seconds per call over reps samples (v holds reps doubles). */
static double median_time(job *j, int reps, double *v) {
    long inner = calibrate(j);
    for (int r = 0; r < reps; r++) v[r] = sample(j, inner) / (double)inner;
    return bench_median(v, reps);
}

/* The triad's GB/s on n elements. */
static double triad(const bench_opts *o, int64_t n, double *v) {
    size_t bytes = (size_t)n * sizeof(float); /* n is a multiple of 1024 */
    job j = {.n = n,
             .a = aligned_alloc(64, bytes),
             .b = aligned_alloc(64, bytes),
             .c = aligned_alloc(64, bytes)};
    if (!j.a || !j.b || !j.c) die("triad arrays");
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) j.a[i] = 0, j.b[i] = 1, j.c[i] = 2;
    double gbs = 12.0 * (double)n / median_time(&j, o->reps, v) * 1e-9;
    if (o->json)
        printf("{\"bench\":\"elementwise\",\"case\":\"triad\",\"n\":%lld,\"gbs\":%.2f,"
               "\"threads\":%d}\n",
               (long long)n, gbs, cg_get_num_threads());
    else
        printf("triad  n=%lld  %d threads  %.1f GB/s (12 bytes/element)\n", (long long)n,
               cg_get_num_threads(), gbs);
    free(j.a);
    free(j.b);
    free(j.c);
    return gbs;
}

/* t: median seconds per call. */
static void report(const bench_opts *o, const job *j, double t, double ref) {
    int e = j->backward ? BWD_E[j->op] : FWD_E[j->op];
    double bytes = 4.0 * ((double)e * (double)j->n + (j->op == ADD_BCAST ? COLS : 0));
    double gbs = bytes / t * 1e-9;
    const char *pass = j->backward ? "bwd" : "fwd";
    int rate = e > 0;
    if (o->json && !rate)
        printf("{\"bench\":\"elementwise\",\"case\":\"%s\",\"pass\":\"%s\",\"n\":%lld,"
               "\"us\":%.3f,\"bytes\":%.0f,\"gbs\":null,\"pct_triad\":null,\"threads\":%d}\n",
               NAMES[j->op], pass, (long long)j->n, t * 1e6, bytes, cg_get_num_threads());
    else if (o->json)
        printf("{\"bench\":\"elementwise\",\"case\":\"%s\",\"pass\":\"%s\",\"n\":%lld,"
               "\"us\":%.3f,\"bytes\":%.0f,\"gbs\":%.2f,\"pct_triad\":%.1f,\"threads\":%d}\n",
               NAMES[j->op], pass, (long long)j->n, t * 1e6, bytes, gbs, 100 * gbs / ref,
               cg_get_num_threads());
    else if (!rate)
        printf("ew  %-10s %s  n=%-9lld %10.2f us   (moves no data)\n", NAMES[j->op], pass,
               (long long)j->n, t * 1e6);
    else
        printf("ew  %-10s %s  n=%-9lld %10.2f us %7.1f GB/s %6.1f%%\n", NAMES[j->op], pass,
               (long long)j->n, t * 1e6, gbs, 100 * gbs / ref);
    fflush(stdout);
}

/* The forward, then the backward on its own. */
static void bench_case(const bench_opts *o, job *j, double ref, double *v) {
    j->backward = 0;
    report(o, j, median_time(j, o->reps, v), ref);
    j->backward = 1;
    j->batch = grad_batch(j);
    report(o, j, median_time(j, o->reps, v), ref);
}

static cg_tensor *leaf(cg_tensor *t) {
    if (!t || cg_set_requires_grad(t, true) != CG_OK) die("inputs");
    return t;
}

/* Every case on n elements. */
static void bench_size(const bench_opts *o, cg_ctx *ctx, int64_t n, double ref, double *v) {
    cg_rng rng;
    cg_rng_seed(&rng, 7);
    int64_t rows = n / COLS;
    cg_tensor *a = leaf(cg_randn(NULL, &rng, CG_F32, CG_SHAPE(rows, COLS), 0, 1));
    cg_tensor *b = leaf(cg_randn(NULL, &rng, CG_F32, CG_SHAPE(rows, COLS), 0, 1));
    cg_tensor *bias = leaf(cg_randn(NULL, &rng, CG_F32, CG_SHAPE(COLS), 0, 1));
    job j = {.ctx = ctx, .n = n, .g = cg_ones(NULL, CG_F32, CG_SHAPE(rows, COLS))};
    if (!j.g) die("inputs");
    for (int op = 0; op < NOPS; op++) {
        j.op = (ew_op)op;
        j.in[0] = a;
        j.in[1] = op == ADD_BCAST ? bias : b;
        bench_case(o, &j, ref, v);
    }
    cg_tensor_free(a);
    cg_tensor_free(b);
    cg_tensor_free(bias);
    cg_tensor_free(j.g);
}

static const bench_help HELP = {
    "exp, relu, sigmoid, tanh, add, mul and broadcast add, forward and backward, in GB/s\n"
    "against a STREAM triad measured in the same run (1K-16M f32 elements)",
    "timed samples of >= 20 ms per case",
    "sizes 1K and 1M only; the triad then runs on 1M (a smoke test)",
    NULL,
};

int main(int argc, char **argv) {
    bench_opts o = bench_parse(argc, argv, 11, &HELP);
    int quick = o.quick;
    const int64_t *sizes = quick ? QUICK_SIZES : SIZES;
    int nsizes = quick ? 2 : 4;
    cg_ctx *ctx = cg_ctx_new();
    double *v = malloc(sizeof(double) * (size_t)o.reps);
    if (!ctx || !v) die("setup");
    double ref = triad(&o, sizes[nsizes - 1], v);
    for (int i = 0; i < nsizes; i++) bench_size(&o, ctx, sizes[i], ref, v);
    free(v);
    cg_ctx_free(ctx);
    return 0;
}
