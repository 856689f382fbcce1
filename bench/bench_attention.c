/* cgrad's fused attention against the same attention composed of cgrad ops,
 * f32, causal.
 *
 * For each shape [B, H, T, D] (q, k and v alike) four things are timed:
 *   fused fwd      cg_scaled_dot_product_attention (inputs plain: no graph)
 *   fused fwd+bwd  the same with q, k, v requiring gradients, then the
 *                  backward pass of sum(y * dy)
 *   composite fwd  softmax(masked_fill(q k^T / sqrt(D), causal, -inf)) v with
 *                  cg_matmul, cg_mul_scalar, cg_masked_fill, cg_softmax (the
 *                  causal mask made once, as a model's buffer)
 *   composite fwd+bwd
 * One sample repeats the call until it lasts >= 20 ms (the first calibration
 * is the warm-up; the context is reset after every call); the median of
 * --reps samples gives ms per call; GFLOP/s count the useful (unmasked)
 * multiply-adds: 2 B H T^2 D forward (half of the full 4 B H T^2 D), 2.5
 * times that for the backward; "x" is composite time / fused time.
 *
 * Shapes: the GPT configurations of bench_train, (h) [8, 4, 128, 64] and
 * (i) [8, 6, 256, 64].
 *
 * Usage: bench_attention [--json] [--threads N] [--reps N] [--quick] [--help]
 *   --quick: the first shape only, 3 samples (a smoke test); --help: the list.
 * Output: a "# label" line per shape, then one line per measurement, e.g.
 *   attn  h  fused      fwd      0.512 ms   16.4 GF/s
 *   attn  h  composite  fwd      1.230 ms    6.8 GF/s  fused 2.40x
 * or with --json one JSON object per measurement per line. */
#include "bench_common.h"

#include <math.h>

#define MIN_SAMPLE 0.020 /* seconds per timed sample */

typedef struct shape {
    const char *name, *label;
    int64_t b, h, t, d;
} shape;

static const shape SHAPES[] = {
    {"h", "GPT small (h): [8, 4, 128, 64], causal", 8, 4, 128, 64},
    {"i", "GPT medium (i): [8, 6, 256, 64], causal", 8, 6, 256, 64},
};

typedef struct job {
    cg_ctx *ctx;
    cg_tensor *q, *k, *v, *dy, *causal; /* caller-owned; causal [T, T]: 1 above the diagonal */
    bool fused, backward;
} job;

static void die(const char *what) {
    fprintf(stderr, "bench_attention: %s: %s\n", what, cg_last_error());
    exit(1);
}

static cg_tensor *composite(job *j) {
    cg_ctx *c = j->ctx;
    double scale = 1.0 / sqrt((double)cg_dim(j->q, 3));
    cg_tensor *s = cg_mul_scalar(c, cg_matmul(c, j->q, cg_transpose(c, j->k, -2, -1)), scale);
    cg_tensor *p = cg_softmax(c, cg_masked_fill(c, s, j->causal, -INFINITY), -1);
    return cg_matmul(c, p, j->v);
}

/* Seconds of one call (forward, or forward and backward). */
static double run(job *j) {
    double t0 = bench_now();
    cg_attn_opts o = cg_attn_defaults();
    o.causal = true;
    cg_tensor *y =
        j->fused ? cg_scaled_dot_product_attention(j->ctx, j->q, j->k, j->v, &o) : composite(j);
    if (!y) die("forward");
    if (j->backward && cg_backward_ex(y, j->dy, 0) != CG_OK) die("backward");
    double t = bench_now() - t0;
    cg_ctx_reset(j->ctx);
    return t;
}

static double sample(job *j, long inner) {
    double t = 0;
    for (long i = 0; i < inner; i++) t += run(j);
    return t;
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

static void report(const bench_opts *o, const shape *s, const job *j, double ms, double gf,
                   double ratio) {
    const char *impl = j->fused ? "fused" : "composite",
               *what = j->backward ? "fwd+bwd" : "fwd";
    if (o->json) {
        printf("{\"bench\":\"attention\",\"case\":\"%s\",\"impl\":\"%s\",\"op\":\"%s\","
               "\"b\":%lld,\"h\":%lld,\"t\":%lld,\"d\":%lld,\"ms\":%.4f,\"gflops\":%.2f,",
               s->name, impl, what, (long long)s->b, (long long)s->h, (long long)s->t,
               (long long)s->d, ms, gf);
        if (ratio > 0) printf("\"fused_speedup\":%.3f,", ratio);
        printf("\"threads\":%d}\n", cg_get_num_threads());
    } else {
        printf("attn  %-2s %-10s %-8s %9.3f ms  %6.1f GF/s", s->name, impl, what, ms, gf);
        if (ratio > 0) printf("  fused %.2fx", ratio);
        printf("\n");
    }
    fflush(stdout);
}

/* Times one measurement; returns ms per call. */
static double measure(const bench_opts *o, const shape *s, job *j, double *v, double fused_ms) {
    long inner = calibrate(j);
    for (int r = 0; r < o->reps; r++) v[r] = sample(j, inner) / (double)inner;
    double ms = bench_median(v, o->reps) * 1e3;
    double flop = 2.0 * (double)(s->b * s->h * s->t * s->t * s->d) * (j->backward ? 3.5 : 1.0);
    report(o, s, j, ms, flop / ms * 1e-6, fused_ms > 0 ? ms / fused_ms : 0);
    return ms;
}

static void bench_shape(const bench_opts *o, cg_ctx *ctx, const shape *s, double *v) {
    cg_rng rng;
    cg_rng_seed(&rng, 42);
    job j = {.ctx = ctx};
    cg_tensor **in[4] = {&j.q, &j.k, &j.v, &j.dy};
    for (int i = 0; i < 4; i++)
        if (!(*in[i] = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(s->b, s->h, s->t, s->d), 0, 1)))
            die("inputs");
    cg_tensor *ones = cg_ones(NULL, CG_F32, CG_SHAPE(s->t, s->t));
    if (!(j.causal = cg_triu(NULL, ones, 1))) die("mask");
    cg_tensor_free(ones);
    if (!o->json) printf("# %s\n", s->label);
    for (int bwd = 0; bwd < 2; bwd++) {
        j.backward = bwd;
        for (int i = 0; i < 3; i++) cg_set_requires_grad(*in[i], bwd);
        j.fused = true;
        double fused_ms = measure(o, s, &j, v, 0);
        j.fused = false;
        measure(o, s, &j, v, fused_ms);
    }
    for (int i = 0; i < 4; i++) cg_tensor_free(*in[i]);
    cg_tensor_free(j.causal);
}

static const bench_help HELP = {
    "fused causal attention (forward, forward + backward) against the same attention\n"
    "composed of cgrad ops, f32, for the GPT shapes (h) [8, 4, 128, 64], (i) [8, 6, 256, 64]",
    "timed samples of >= 20 ms per measurement",
    "shape (h) only, 3 samples (a smoke test)",
    NULL,
};

int main(int argc, char **argv) {
    bench_opts o = bench_parse(argc, argv, 11, &HELP);
    if (o.quick) o.reps = 3;
    cg_ctx *ctx = cg_ctx_new();
    double *v = malloc(sizeof(double) * (size_t)o.reps);
    if (!ctx || !v) die("setup");
    if (!o.json)
        printf("# f32, %d threads, median of %d samples of >= %.0f ms\n", cg_get_num_threads(),
               o.reps, MIN_SAMPLE * 1e3);
    int n = o.quick ? 1 : (int)(sizeof SHAPES / sizeof *SHAPES);
    for (int i = 0; i < n; i++) bench_shape(&o, ctx, &SHAPES[i], v);
    free(v);
    cg_ctx_free(ctx);
    return 0;
}
