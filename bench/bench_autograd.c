/* Per-node autograd overhead on one-element tensors: a chain of 100 ops
 * (alternating mul and add), forward only with grad on, forward plus
 * backward, and forward under no-grad. Reports the median ns per op.
 * Usage: bench_autograd [--json] [--threads N] [--reps N] [--quick] [--help]
 *   --quick: 3 samples per case (a smoke test). */
#include "bench_common.h"

#define CHAIN 100
#define INNER 200 /* chains per timed sample */

typedef enum { FORWARD, FORWARD_BACKWARD, NO_GRAD } mode;
static const char *NAMES[] = {"forward", "forward+backward", "no_grad forward"};

/* One chain: y = ((x * w) + b) * w + b ... (CHAIN ops), then maybe backward. */
static int chain(cg_ctx *ctx, cg_tensor *x, cg_tensor *w, cg_tensor *b, mode m) {
    if (m == NO_GRAD) cg_no_grad_push(ctx);
    cg_tensor *y = x;
    for (int i = 0; i < CHAIN; i += 2) y = cg_add(ctx, cg_mul(ctx, y, w), b);
    if (m == NO_GRAD) cg_no_grad_pop(ctx);
    int ok = y != NULL;
    if (ok && m == FORWARD_BACKWARD) ok = cg_backward(y) == CG_OK;
    cg_ctx_reset(ctx);
    return ok;
}

static double sample(cg_ctx *ctx, cg_tensor **p, mode m) {
    double t = bench_now();
    for (int i = 0; i < INNER; i++)
        if (!chain(ctx, p[0], p[1], p[2], m)) {
            fprintf(stderr, "bench_autograd: %s\n", cg_last_error());
            exit(1);
        }
    return (bench_now() - t) / (INNER * CHAIN) * 1e9;
}

static const bench_help HELP = {
    "per-node autograd overhead: chains of 100 one-element ops, forward, forward + backward\n"
    "and no-grad forward, in ns per op",
    "timed samples of 200 chains per case",
    "3 samples per case (a smoke test)",
    NULL,
};

int main(int argc, char **argv) {
    bench_opts o = bench_parse(argc, argv, 31, &HELP);
    if (o.quick) o.reps = 3;
    cg_ctx *ctx = cg_ctx_new();
    cg_tensor *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = cg_full(NULL, CG_F32, CG_SHAPE(1), 0.5 + 0.25 * i);
        cg_set_requires_grad(p[i], true);
    }
    double *v = malloc(sizeof(double) * (size_t)o.reps);
    if (!o.json)
        printf("%-18s %10s %10s %10s   (chains of %d ops, 1 element)\n", "case", "median",
               "min", "max", CHAIN);
    for (int m = FORWARD; m <= NO_GRAD; m++) {
        sample(ctx, p, (mode)m); /* warm-up: grows the arena once */
        for (int r = 0; r < o.reps; r++) v[r] = sample(ctx, p, (mode)m);
        double med = bench_median(v, o.reps);
        if (o.json)
            printf("{\"bench\":\"autograd\",\"case\":\"%s\",\"ns_per_op\":%.1f,\"min\":%.1f,"
                   "\"max\":%.1f,\"threads\":%d}\n",
                   NAMES[m], med, v[0], v[o.reps - 1], cg_get_num_threads());
        else
            printf("%-18s %7.1f ns %7.1f ns %7.1f ns\n", NAMES[m], med, v[0], v[o.reps - 1]);
    }
    free(v);
    for (int i = 0; i < 3; i++) cg_tensor_free(p[i]);
    cg_ctx_free(ctx);
    return 0;
}
