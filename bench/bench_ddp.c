/* Data-parallel scaling on this machine (dist/): config (b) of bench_train,
 * 784-512-512-10 relu, SGD, f32, with the global batch fixed at 128.
 * Run under mpirun with 2 ranks; everything is measured in the one run, in
 * interleaved rounds (the VM drifts):
 *   single  rank 0 alone, 1 thread, batch 128, no MPI in the step (rank 1
 *           sleeps, polling a barrier every millisecond)
 *   share   rank 0 alone with one rank's share (batch 128 / ranks): the step
 *           each rank would take if communication were free, so
 *           single / share bounds the speedup
 *   pair    every rank runs its share at once, with no communication: what
 *           running side by side costs (shared caches and memory)
 *   ddp     2 ranks x 1 thread, batch 64 each, buckets all-reduced from the
 *           grad hooks during backward (the default 25 MiB / 1 MiB buckets)
 *   nooverlap  the same with one bucket, started when the last gradient is
 *           final: no overlap with backward
 *   allreduce  MPI_Allreduce of the whole gradient (669,706 floats) alone
 * and reports the median step times, the speedup single / ddp (throughput
 * at a fixed global batch; 2.0 is perfect, the target 1.8), the
 * bounds single / share and single / pair (communication free), and the
 * time cg_ddp_sync waited per step with and without the overlap (waiting
 * for the slower rank included).
 *
 *   mpirun -np 2 bench_ddp [--json] [--reps N (steps per round)] [--rounds N] [--quick]
 *
 * As root add --allow-run-as-root; on 2 cores nothing else may run. */
#include <time.h>

#include "bench_common.h"
#include "dist/dist.h"

#define GLOBAL_BATCH 128

typedef struct run_opts {
    int json, reps, rounds;
} run_opts;

static int rank, world;

static void usage(FILE *f, const char *prog) {
    fprintf(f,
            "usage: mpirun -np 2 %s [--json] [--reps N] [--rounds N] [--quick]\n"
            "  --json      one JSON object per case instead of text lines\n"
            "  --reps N    timed steps per case and round (default 100)\n"
            "  --rounds N  interleaved rounds of all cases (default 3)\n"
            "  --quick     10 steps, 1 round (a smoke test)\n"
            "  --help      this list\n",
            prog);
}

static int parse(int argc, char **argv, run_opts *o) {
    *o = (run_opts){0, 100, 3};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            o->json = 1;
        else if (!strcmp(argv[i], "--quick"))
            o->reps = 10, o->rounds = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            o->reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            o->rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--help")) {
            usage(stdout, argv[0]);
            return 1;
        } else {
            fprintf(stderr, "%s: unknown flag or missing value: %s\n", argv[0], argv[i]);
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (o->reps < 3) o->reps = 3;
    if (o->rounds < 1) o->rounds = 1;
    return 0;
}

/* ---- one training setup ------------------------------------------------------------ */
typedef struct trainer {
    cg_module *m;
    cg_optim *o;
    cg_ddp *d; /* NULL: the single-process baseline */
    cg_ctx *ctx;
    cg_tensor *x, *y; /* this rank's part of the global batch */
} trainer;

/* Model (b) from seed 1 and this rank's rows of one global batch. */
static int trainer_new(trainer *t, bool ddp, size_t bucket, int64_t rows, int64_t first) {
    cg_rng rng;
    cg_rng_seed(&rng, 1);
    int64_t sizes[4] = {784, 512, 512, 10};
    t->m = cg_nn_mlp(&rng, CG_F32, 4, sizes, CG_ACT_RELU);
    cg_tensor *gx = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(GLOBAL_BATCH, 784), 0, 1);
    int64_t labels[GLOBAL_BATCH];
    for (int i = 0; i < GLOBAL_BATCH; i++) labels[i] = (int64_t)(cg_rng_u64(&rng) % 10);
    cg_tensor *vx = cg_narrow(NULL, gx, 0, first, rows);
    t->x = cg_contiguous(NULL, vx);
    t->y = cg_empty(NULL, CG_I64, CG_SHAPE(rows));
    if (t->y) memcpy(cg_data(t->y), labels + first, (size_t)rows * sizeof *labels);
    cg_tensor_free(vx), cg_tensor_free(gx);
    cg_sgd_opts so = cg_sgd_defaults(0.01);
    t->o = cg_sgd_new(t->m, &so);
    t->ctx = cg_ctx_new();
    t->d = NULL;
    if (ddp) {
        cg_ddp_opts o = cg_ddp_defaults();
        if (bucket) o.bucket_bytes = o.first_bucket_bytes = bucket;
        o.check_every = 0;
        t->d = cg_ddp_new(t->m, MPI_COMM_WORLD, &o);
        if (!t->d) return -1;
    }
    return t->m && t->x && t->y && t->o && t->ctx ? 0 : -1;
}

static void trainer_free(trainer *t) {
    cg_ddp_free(t->d);
    cg_optim_free(t->o);
    cg_ctx_free(t->ctx);
    cg_tensor_free(t->x), cg_tensor_free(t->y);
    cg_module_free(t->m);
}

static int step(trainer *t) {
    cg_optim_zero_grad(t->o);
    cg_tensor *logits = cg_module_forward(t->ctx, t->m, t->x);
    cg_status s = cg_backward(cg_cross_entropy(t->ctx, logits, t->y, CG_MEAN));
    if (t->d) s = cg_ddp_sync(t->d, s);
    if (s == CG_OK) s = cg_optim_step(t->o);
    cg_ctx_reset(t->ctx);
    return s == CG_OK ? 0 : -1;
}

/* reps timed steps after 5 of warm-up, each time appended to times. */
static int time_steps(trainer *t, int reps, double *times) {
    for (int i = 0; i < 5; i++)
        if (step(t)) return -1;
    for (int i = 0; i < reps; i++) {
        double t0 = bench_now();
        if (step(t)) return -1;
        times[i] = bench_now() - t0;
    }
    return 0;
}

/* Rank 1 while rank 0 runs alone: sleeping, not spinning in MPI. */
static void idle_until_barrier(void) {
    MPI_Request r;
    int done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    while (!done) {
        MPI_Test(&r, &done, MPI_STATUS_IGNORE);
        if (!done) nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

/* ---- the cases -------------------------------------------------------------------------- */
typedef struct results {
    double *single, *share, *pair, *ddp, *nooverlap, *allreduce; /* rounds x reps seconds */
    double wait_ddp, wait_nooverlap;                             /* mean per step */
    int64_t in_backward, buckets;
} results;

static int run_single(const run_opts *o, int64_t rows, double *times) {
    int rc = 0;
    if (rank == 0) {
        trainer t;
        rc = trainer_new(&t, false, 0, rows, 0) || time_steps(&t, o->reps, times);
        trainer_free(&t);
        MPI_Request req; /* a non-blocking barrier matches only its kind */
        MPI_Ibarrier(MPI_COMM_WORLD, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
    } else {
        idle_until_barrier();
    }
    return rc;
}

/* Every rank its share, at the same time, each on its own. */
static int run_pair(const run_opts *o, double *times) {
    trainer t;
    int64_t rows = GLOBAL_BATCH / world;
    int rc = trainer_new(&t, false, 0, rows, rank * rows);
    MPI_Barrier(MPI_COMM_WORLD);
    rc = rc || time_steps(&t, o->reps, times);
    trainer_free(&t);
    MPI_Barrier(MPI_COMM_WORLD);
    return rc;
}

static int run_ddp(const run_opts *o, size_t bucket, double *times, double *wait, results *r) {
    trainer t;
    int64_t rows = GLOBAL_BATCH / world;
    int rc = trainer_new(&t, true, bucket, rows, rank * rows);
    if (rc == 0) {
        for (int i = 0; i < 5 && rc == 0; i++) rc = step(&t);
        cg_ddp_reset_stats(t.d);
        rc = rc || time_steps(&t, o->reps, times);
        cg_ddp_stats st = cg_ddp_get_stats(t.d);
        *wait += st.wait_seconds / (double)st.steps / o->rounds;
        if (!bucket) r->in_backward = st.buckets_in_backward, r->buckets = st.buckets;
    }
    trainer_free(&t);
    return rc;
}

/* MPI_Allreduce of a buffer the size of the gradient, alone. */
static void run_allreduce(const run_opts *o, double *times) {
    int64_t n = 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10;
    float *buf = calloc((size_t)n, sizeof *buf);
    for (int i = 0; i < o->reps + 5; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = bench_now();
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (i >= 5) times[i - 5] = bench_now() - t0;
    }
    free(buf);
}

/* ---- report ------------------------------------------------------------------------------ */
static void line(const run_opts *o, const char *name, const char *what, double *v, int n) {
    double med = bench_median(v, n) * 1e3, lo = v[0] * 1e3, hi = v[n - 1] * 1e3;
    if (o->json)
        printf("{\"bench\":\"ddp\",\"case\":\"%s\",\"ranks\":%d,\"median_ms\":%.4f,"
               "\"min_ms\":%.4f,\"max_ms\":%.4f,\"n\":%d}\n",
               name, world, med, lo, hi, n);
    else
        printf("ddp %-10s %-44s median %8.3f ms  (min %.3f, max %.3f, n %d)\n", name, what, med,
               lo, hi, n);
}

static void report(const run_opts *o, results *r) {
    int n = o->reps * o->rounds;
    double single = bench_median(r->single, n), ddp = bench_median(r->ddp, n);
    double noov = bench_median(r->nooverlap, n), ar = bench_median(r->allreduce, n);
    double share = bench_median(r->share, n), pair = bench_median(r->pair, n);
    char what[96];
    line(o, "single", "1 rank x 1 thread, batch 128, step", r->single, n);
    snprintf(what, sizeof what, "1 rank x 1 thread, batch %d (one share), step",
             GLOBAL_BATCH / world);
    line(o, "share", what, r->share, n);
    line(o, "pair", "every rank its share at once, no communication", r->pair, n);
    snprintf(what, sizeof what, "%d ranks x 1 thread, batch %d each, step", world,
             GLOBAL_BATCH / world);
    line(o, "ddp", what, r->ddp, n);
    line(o, "nooverlap", "the same, one bucket (no overlap), step", r->nooverlap, n);
    line(o, "allreduce", "MPI_Allreduce of the gradient alone", r->allreduce, n);
    double speedup = single / ddp, cut = 1 - r->wait_ddp / r->wait_nooverlap;
    if (o->json)
        printf("{\"bench\":\"ddp\",\"case\":\"summary\",\"ranks\":%d,\"speedup\":%.4f,"
               "\"efficiency\":%.4f,\"speedup_bound\":%.4f,\"speedup_nooverlap\":%.4f,"
               "\"speedup_pair\":%.4f,\"wait_ms\":%.4f,"
               "\"wait_nooverlap_ms\":%.4f,\"allreduce_ms\":%.4f,\"buckets\":%lld,"
               "\"buckets_in_backward\":%lld}\n",
               world, speedup, speedup / world, single / share, single / noov, single / pair,
               r->wait_ddp * 1e3, r->wait_nooverlap * 1e3, ar * 1e3, (long long)r->buckets,
               (long long)r->in_backward);
    else
        printf(
            "ddp speedup %.2fx at %d ranks (efficiency %.0f%%; one bucket %.2fx; with free "
            "communication %.2fx alone, %.2fx side by side); cg_ddp_sync waited %.3f ms per "
            "step (one bucket %.3f: the overlap cut the wait by %.0f%%), the all-reduce alone "
            "takes %.3f ms; %lld of %lld buckets started during backward\n",
            speedup, world, 100 * speedup / world, single / noov, single / share, single / pair,
            r->wait_ddp * 1e3, r->wait_nooverlap * 1e3, 100 * cut, ar * 1e3,
            (long long)r->in_backward, (long long)r->buckets);
}

int main(int argc, char **argv) {
    run_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    if (cg_dist_init(&argc, &argv) != CG_OK) {
        fprintf(stderr, "bench_ddp: %s\n", cg_last_error());
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    cg_set_num_threads(1);
    size_t n = (size_t)o.reps * (size_t)o.rounds;
    results r = {.single = calloc(n, 8),
                 .share = calloc(n, 8),
                 .pair = calloc(n, 8),
                 .ddp = calloc(n, 8),
                 .nooverlap = calloc(n, 8),
                 .allreduce = calloc(n, 8)};
    for (int k = 0; k < o.rounds && rc == 0; k++) {
        size_t at = (size_t)k * (size_t)o.reps;
        rc = run_single(&o, GLOBAL_BATCH, r.single + at);
        rc = rc || run_single(&o, GLOBAL_BATCH / world, r.share + at);
        rc = rc || run_pair(&o, r.pair + at);
        rc = rc || run_ddp(&o, 0, r.ddp + at, &r.wait_ddp, &r);
        rc = rc || run_ddp(&o, (size_t)1 << 30, r.nooverlap + at, &r.wait_nooverlap, &r);
        run_allreduce(&o, r.allreduce + at);
    }
    if (rc) fprintf(stderr, "bench_ddp: rank %d: %s\n", rank, cg_last_error());
    if (rc == 0 && rank == 0) report(&o, &r);
    free(r.single), free(r.share), free(r.pair), free(r.ddp), free(r.nooverlap),
        free(r.allreduce);
    cg_dist_finalize();
    return rc ? 1 : 0;
}
