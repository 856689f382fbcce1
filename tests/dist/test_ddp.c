/* dist/: data-parallel training on MPI. Run under mpirun with 2 and 3
 * ranks (make test does both); every rank runs every test, rank 0 prints.
 * Gradients are checked against cg_grad (which runs no hook and touches no
 * .grad) over every rank's data, computed on each rank. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/dist.h"

static int rank, world;

static cg_rng rng_of(uint64_t seed) {
    cg_rng r;
    cg_rng_seed(&r, seed);
    return r;
}

/* 7 -> 5 -> relu -> 3, f64 or f32, weights from seed. */
static cg_module *small_mlp(cg_dtype dt, uint64_t seed) {
    cg_rng r = rng_of(seed);
    cg_module *layers[3] = {cg_nn_linear(&r, dt, 7, 5, true), cg_nn_activation(CG_ACT_RELU),
                            cg_nn_linear(&r, dt, 5, 3, true)};
    return cg_nn_sequential(3, layers);
}

/* Shard v's batch: x [4, 7] and targets [4, 3], from v alone. */
static void batch_of(cg_ctx *ctx, cg_dtype dt, int v, cg_tensor **x, cg_tensor **y) {
    cg_rng r = rng_of(1000 + (uint64_t)v);
    *x = cg_randn(ctx, &r, dt, CG_SHAPE(4, 7), 0, 1);
    *y = cg_randn(ctx, &r, dt, CG_SHAPE(4, 3), 0, 1);
}

static cg_tensor *loss_of(cg_ctx *ctx, cg_module *m, cg_dtype dt, int v) {
    cg_tensor *x, *y;
    batch_of(ctx, dt, v, &x, &y);
    return cg_mse_loss(ctx, cg_module_forward(ctx, m, x), y, CG_MEAN);
}

/* The mean over shards first..first+n-1 of each shard's gradient, flat, by
 * cg_grad (malloc'ed). */
static double *mean_grad_over(cg_module *m, int first, int n) {
    int np = cg_module_nparams(m);
    int64_t numel = cg_module_numel(m);
    double *want = calloc((size_t)numel, sizeof *want);
    cg_tensor **params = calloc((size_t)np, sizeof *params),
              **grads = calloc((size_t)np, sizeof *grads);
    assert_non_null(want), assert_non_null(params), assert_non_null(grads);
    for (int k = 0; k < np; k++) params[k] = cg_module_param(m, k, NULL);
    cg_ctx *ctx = cg_ctx_new();
    for (int v = first; v < first + n; v++) {
        cg_tensor *loss = loss_of(ctx, m, CG_F64, v);
        assert_int_equal(cg_grad(ctx, 1, &loss, NULL, np, params, grads, 0), CG_OK);
        int64_t at = 0;
        for (int k = 0; k < np; k++) {
            int64_t len = cg_numel(grads[k]);
            double *g = malloc((size_t)len * sizeof *g);
            cg_copy_to_array(grads[k], CG_F64, g);
            for (int64_t i = 0; i < len; i++) want[at + i] += g[i] / n;
            free(g);
            at += len;
        }
        cg_ctx_reset(ctx);
    }
    cg_ctx_free(ctx);
    free(params), free(grads);
    return want;
}

static double *expected_mean_grad(cg_module *m, int n) { return mean_grad_over(m, 0, n); }
static double *expected_mean_grad_of(cg_module *m, int v) { return mean_grad_over(m, v, 1); }

static void assert_flat_grads(cg_module *m, const double *want, double tol) {
    const cg_tensor *g = cg_module_flat_grads(m);
    const double *got = cg_data(g);
    for (int64_t i = 0; i < cg_numel(g); i++) assert_float_equal(got[i], want[i], tol);
}

/* ---- before cg_dist_init -------------------------------------------------------- */
static void test_ddp_refused_before_init(void **state) {
    (void)state;
    cg_module *m = small_mlp(CG_F64, 1);
    assert_null(cg_ddp_new(m, MPI_COMM_WORLD, NULL));
    assert_int_equal(cg_last_status(), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "cg_ddp_new: MPI is not initialised"));
    cg_module_free(m);
    /* from here on every test runs with MPI up */
    assert_int_equal(cg_dist_init(NULL, NULL), CG_OK);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (rank != 0) assert_non_null(freopen("/dev/null", "w", stdout));
}

/* ---- start-up --------------------------------------------------------------------------- */
/* Each rank starts from its own weights; after cg_ddp_new every rank holds
 * rank 0's, bit for bit. */
static void test_ddp_broadcasts_rank0_weights(void **state) {
    (void)state;
    cg_module *m = small_mlp(CG_F32, 100 + (uint64_t)rank), *ref = small_mlp(CG_F32, 100);
    cg_ddp *d = cg_ddp_new(m, MPI_COMM_WORLD, NULL);
    assert_non_null(d);
    assert_int_equal(cg_ddp_rank(d), rank);
    assert_int_equal(cg_ddp_world_size(d), world);
    assert_int_equal(cg_ddp_shards(d), world);
    assert_int_equal(cg_ddp_local_shards(d), 1);
    const cg_tensor *a = cg_module_flat_params(m), *b = cg_module_flat_params(ref);
    assert_memory_equal(cg_data(a), cg_data(b), (size_t)cg_numel(a) * sizeof(float));
    assert_int_equal(cg_ddp_check(d), CG_OK);
    cg_ddp_free(d);
    cg_module_free(m), cg_module_free(ref);
}

/* ---- gradient averaging ----------------------------------------------------------------- */
/* Buckets of a few bytes (sizes that divide nothing evenly): every one is
 * started by the hooks during backward, and .grad ends as the mean of every
 * rank's gradient. */
static void test_ddp_bucketed_allreduce_averages(void **state) {
    (void)state;
    cg_module *m = small_mlp(CG_F64, 7);
    cg_ddp_opts o = cg_ddp_defaults();
    o.first_bucket_bytes = 24; /* 3 doubles: the last bias, then more */
    o.bucket_bytes = 100;
    cg_ddp *d = cg_ddp_new(m, MPI_COMM_WORLD, &o);
    assert_non_null(d);
    double *want = expected_mean_grad(m, world);
    cg_ctx *ctx = cg_ctx_new();
    for (int step = 0; step < 2; step++) { /* twice: the per-step state resets */
        cg_module_zero_grad(m);
        cg_ddp_reset_stats(d);
        cg_status s = cg_backward(loss_of(ctx, m, CG_F64, rank));
        assert_int_equal(cg_ddp_sync(d, s), CG_OK);
        assert_flat_grads(m, want, 1e-12);
        cg_ddp_stats st = cg_ddp_get_stats(d);
        assert_int_equal(st.buckets, 3);                      /* [b2] [w2] [b1 w1] */
        assert_int_equal(st.buckets_in_backward, st.buckets); /* all overlapped */
        assert_int_equal(st.bytes, cg_module_numel(m) * 8);
        cg_ctx_reset(ctx);
    }
    free(want);
    cg_ctx_free(ctx);
    cg_ddp_free(d);
    cg_module_free(m);
}

/* A parameter that only even ranks use: odd ranks give it no gradient (its
 * .grad stays zero), the buckets still go out in the same order on every
 * rank, and nothing hangs. The mean counts the zeros, as DDP's does. */
static bool use_b; /* what rank's forward this is */

static cg_tensor *branchy_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    cg_tensor *y = cg_module_forward(ctx, cg_module_child(m, 0, NULL), x);
    if (use_b) y = cg_add(ctx, y, cg_module_forward(ctx, cg_module_child(m, 1, NULL), x));
    return y;
}

static const cg_module_kind branchy_kind = {"Branchy", branchy_forward, NULL, NULL};

static void test_ddp_unused_parameters_do_not_hang(void **state) {
    (void)state;
    cg_rng r = rng_of(3);
    cg_module *m = cg_module_new(&branchy_kind, NULL);
    cg_module_add_child(m, "a", cg_nn_linear(&r, CG_F64, 7, 3, true));
    cg_module_add_child(m, "b", cg_nn_linear(&r, CG_F64, 7, 3, true));
    cg_ddp_opts o = cg_ddp_defaults();
    o.first_bucket_bytes = o.bucket_bytes = 8; /* one bucket per parameter */
    cg_ddp *d = cg_ddp_new(m, MPI_COMM_WORLD, &o);
    assert_non_null(d);
    /* what every rank's forward gives, by cg_grad (zeros for b on odd ranks) */
    double want[2 * (21 + 3)] = {0};
    for (int q = 0; q < world; q++) {
        use_b = q % 2 == 0;
        double *one = expected_mean_grad_of(m, q);
        for (int i = 0; i < 48; i++) want[i] += one[i] / world;
        free(one);
    }
    use_b = rank % 2 == 0;
    cg_ctx *ctx = cg_ctx_new();
    cg_module_zero_grad(m);
    assert_int_equal(cg_ddp_sync(d, cg_backward(loss_of(ctx, m, CG_F64, rank))), CG_OK);
    assert_flat_grads(m, want, 1e-12);
    /* b's buckets come first: where b is unused they, and the ones after
     * them, wait for cg_ddp_sync */
    assert_int_equal(cg_ddp_get_stats(d).buckets_in_backward, use_b ? 4 : 0);
    assert_int_equal(cg_ddp_get_stats(d).buckets, 4);
    cg_ctx_free(ctx);
    cg_ddp_free(d);
    cg_module_free(m);
}

/* no_sync: two backward passes add up locally with nothing sent; the third,
 * outside it, reduces all three. */
static void test_ddp_no_sync_accumulates(void **state) {
    (void)state;
    cg_module *m = small_mlp(CG_F64, 9);
    cg_ddp *d = cg_ddp_new(m, MPI_COMM_WORLD, NULL);
    assert_non_null(d);
    double *want = expected_mean_grad(m, world);
    cg_ctx *ctx = cg_ctx_new();
    cg_module_zero_grad(m);
    assert_int_equal(cg_ddp_no_sync_push(d), CG_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(cg_ddp_sync(d, cg_backward(loss_of(ctx, m, CG_F64, rank))), CG_OK);
    assert_int_equal(cg_ddp_get_stats(d).buckets, 0);
    assert_int_equal(cg_ddp_no_sync_pop(d), CG_OK);
    assert_int_equal(cg_ddp_sync(d, cg_backward(loss_of(ctx, m, CG_F64, rank))), CG_OK);
    for (int64_t i = 0; i < cg_module_numel(m); i++) want[i] *= 3;
    assert_flat_grads(m, want, 1e-12);
    assert_int_equal(cg_ddp_no_sync_pop(d), CG_ERR_STATE);
    free(want);
    cg_ctx_free(ctx);
    cg_ddp_free(d);
    cg_module_free(m);
}

/* ---- deterministic mode -------------------------------------------------------------------
 */
/* Five SGD steps over world shards: spread one per rank over MPI_COMM_WORLD,
 * and all in turn in one process (MPI_COMM_SELF), give the same bits. */
static void train_shards(cg_module *m, cg_ddp *d, int steps) {
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    so.momentum = 0.9;
    cg_optim *opt = cg_sgd_new(m, &so);
    cg_ctx *ctx = cg_ctx_new();
    for (int step = 0; step < steps; step++) {
        cg_optim_zero_grad(opt);
        cg_status s = CG_OK;
        for (int k = 0; k < cg_ddp_local_shards(d); k++) {
            int v = cg_ddp_rank(d) * cg_ddp_local_shards(d) + k;
            s = cg_ddp_sync(d, cg_backward(loss_of(ctx, m, CG_F32, v + 10 * step)));
            cg_ctx_reset(ctx);
        }
        assert_int_equal(s, CG_OK);
        assert_int_equal(cg_optim_step(opt), CG_OK);
    }
    cg_ctx_free(ctx);
    cg_optim_free(opt);
}

static void test_ddp_deterministic_matches_one_process(void **state) {
    (void)state;
    cg_ddp_opts o = cg_ddp_defaults();
    o.deterministic = true;
    o.check_every = 1;
    cg_module *spread = small_mlp(CG_F32, 11), *alone = small_mlp(CG_F32, 11);
    cg_ddp *d = cg_ddp_new(spread, MPI_COMM_WORLD, &o);
    o.shards = world;
    cg_ddp *d1 = cg_ddp_new(alone, MPI_COMM_SELF, &o);
    assert_non_null(d), assert_non_null(d1);
    assert_int_equal(cg_ddp_local_shards(d1), world);
    train_shards(spread, d, 5);
    train_shards(alone, d1, 5);
    const cg_tensor *a = cg_module_flat_params(spread), *b = cg_module_flat_params(alone);
    assert_memory_equal(cg_data(a), cg_data(b), (size_t)cg_numel(a) * sizeof(float));
    /* and the weights moved */
    cg_module *start = small_mlp(CG_F32, 11);
    assert_memory_not_equal(cg_data(a), cg_data(cg_module_flat_params(start)),
                            4 * sizeof(float));
    cg_module_free(start);
    cg_ddp_free(d), cg_ddp_free(d1);
    cg_module_free(spread), cg_module_free(alone);
}

/* ---- errors
 * ------------------------------------------------------------------------------------ */
static void test_ddp_layout_mismatch_fails_everywhere(void **state) {
    (void)state;
    cg_rng r = rng_of(1);
    cg_module *m =
        rank == world - 1 ? cg_nn_linear(&r, CG_F64, 7, 4, true) : small_mlp(CG_F64, 1);
    assert_null(cg_ddp_new(m, MPI_COMM_WORLD, NULL));
    assert_int_equal(cg_last_status(), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "model differs from rank 0's"));
    cg_module_free(m);
    /* a model only one rank refuses (f32 and f64 parameters mixed) */
    cg_module *layers[2] = {cg_nn_linear(&r, CG_F64, 7, 5, true),
                            cg_nn_linear(&r, rank == 0 ? CG_F64 : CG_F32, 5, 3, true)};
    m = cg_nn_sequential(2, layers);
    assert_null(cg_ddp_new(m, MPI_COMM_WORLD, NULL));
    if (world > 1) assert_non_null(strstr(cg_last_error(), "rank 1 failed to set up"));
    cg_module_free(m);
    /* options every rank refuses alike */
    m = small_mlp(CG_F64, 1);
    cg_ddp_opts o = cg_ddp_defaults();
    o.shards = world + 1;
    assert_null(cg_ddp_new(m, MPI_COMM_WORLD, &o));
    if (world > 1) assert_non_null(strstr(cg_last_error(), "not a multiple"));
    o = cg_ddp_defaults();
    o.bucket_bytes = 0;
    assert_null(cg_ddp_new(m, MPI_COMM_WORLD, &o));
    assert_null(cg_ddp_new(m, MPI_COMM_NULL, NULL));
    assert_null(cg_ddp_new(NULL, MPI_COMM_WORLD, NULL));
    cg_module_free(m);
}

/* The last rank's step fails: every rank hears of it, with its message. */
static void test_ddp_failed_rank_fails_everywhere(void **state) {
    (void)state;
    cg_module *m = small_mlp(CG_F64, 5);
    cg_ddp *d = cg_ddp_new(m, MPI_COMM_WORLD, NULL);
    assert_non_null(d);
    cg_ctx *ctx = cg_ctx_new();
    cg_status s = CG_OK;
    if (rank == world - 1)
        s = cg_set_error(CG_ERR_SHAPE, "my_loss: labels [3] for logits [4,3]");
    else
        s = cg_backward(loss_of(ctx, m, CG_F64, rank));
    assert_int_equal(cg_ddp_sync(d, s), CG_ERR_STATE);
    char want[128];
    snprintf(want, sizeof want, "cg_ddp_sync: rank %d failed this step: my_loss", world - 1);
    assert_non_null(strstr(cg_last_error(), want));
    /* the next step works */
    cg_module_zero_grad(m);
    assert_int_equal(cg_ddp_sync(d, cg_backward(loss_of(ctx, m, CG_F64, rank))), CG_OK);
    /* ranks whose weights drift apart are caught */
    if (rank == world - 1) ((double *)cg_data(cg_module_flat_params(m)))[3] += 1e-9;
    assert_int_equal(cg_ddp_check(d), world > 1 ? CG_ERR_STATE : CG_OK);
    if (world > 1) assert_non_null(strstr(cg_last_error(), "no longer identical"));
    cg_ctx_free(ctx);
    cg_ddp_free(d);
    cg_module_free(m);
}

static void test_ddp_null_arguments(void **state) {
    (void)state;
    assert_int_equal(cg_ddp_sync(NULL, CG_OK), CG_ERR_ARG);
    assert_int_equal(cg_ddp_rank(NULL), -1);
    assert_int_equal(cg_ddp_world_size(NULL), -1);
    assert_int_equal(cg_ddp_shards(NULL), -1);
    assert_int_equal(cg_ddp_local_shards(NULL), -1);
    assert_int_equal(cg_ddp_no_sync_push(NULL), CG_ERR_ARG);
    assert_int_equal(cg_ddp_no_sync_pop(NULL), CG_ERR_ARG);
    assert_int_equal(cg_ddp_check(NULL), CG_ERR_ARG);
    assert_int_equal(cg_ddp_all_sum(NULL, NULL, 0), CG_ERR_ARG);
    assert_int_equal(cg_ddp_all_mean(NULL, NULL, 0), CG_ERR_ARG);
    assert_int_equal(cg_ddp_save(NULL, "x", NULL, NULL, NULL), CG_ERR_ARG);
    assert_int_equal(cg_ddp_load(NULL, "x", NULL, NULL, NULL), CG_ERR_ARG);
    assert_int_equal(cg_ddp_barrier(NULL), CG_ERR_ARG);
    assert_int_equal(cg_ddp_get_stats(NULL).steps, 0);
    cg_ddp_reset_stats(NULL);
    cg_ddp_free(NULL);
}

/* ---- metrics and checkpoints --------------------------------------------------------------
 */
static void test_ddp_metrics_and_checkpoint(void **state) {
    (void)state;
    cg_module *m = small_mlp(CG_F64, 21);
    cg_ddp *d = cg_ddp_new(m, MPI_COMM_WORLD, NULL);
    assert_non_null(d);
    double v[2] = {rank + 1.0, 1.0};
    assert_int_equal(cg_ddp_all_mean(d, v, 2), CG_OK);
    assert_float_equal(v[0], (world + 1) / 2.0, 1e-15);
    assert_float_equal(v[1], 1.0, 0);
    assert_int_equal(cg_ddp_all_sum(d, v, 1), CG_OK);
    assert_float_equal(v[0], world * (world + 1) / 2.0, 1e-12);
    assert_int_equal(cg_ddp_all_sum(d, NULL, 1), CG_ERR_ARG);
    /* one path for all ranks: rank 0's pid */
    long pid = (long)getpid();
    MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    char path[64];
    snprintf(path, sizeof path, "/tmp/cgrad_ddp_%ld.safetensors", pid);
    assert_int_equal(cg_ddp_save(d, path, NULL, NULL, NULL), CG_OK);
    double *w = cg_data(cg_module_flat_params(m)), w0 = w[0];
    w[0] += 1.0 + rank; /* every rank changes, differently */
    assert_int_equal(cg_ddp_load(d, path, NULL, NULL, NULL), CG_OK);
    assert_float_equal(w[0], w0, 0);
    assert_int_equal(cg_ddp_barrier(d), CG_OK);
    if (rank == 0) unlink(path);
    assert_int_equal(cg_ddp_barrier(d), CG_OK);
    assert_int_equal(cg_ddp_load(d, path, NULL, NULL, NULL), CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "rank 0 failed to load"));
    assert_int_equal(cg_ddp_save(d, "/nonexistent-dir/x.safetensors", NULL, NULL, NULL),
                     CG_ERR_STATE);
    assert_non_null(strstr(cg_last_error(), "cg_ddp_save: rank 0 failed to save"));
    cg_ddp_free(d);
    cg_module_free(m);
}

/* ---- the distributed sampler --------------------------------------------------------------
 */
/* Every rank's share of an epoch, gathered: disjoint, and all samples. */
static void test_ddp_sampler_covers_the_epoch(void **state) {
    (void)state;
    enum { N = 30 };
    cg_tensor *x = cg_arange(NULL, CG_F64, 0, N, 1);
    cg_tensor *x2 = cg_reshape(NULL, x, CG_SHAPE(N, 1));
    cg_rng r = rng_of(42); /* the same seed on every rank */
    cg_batcher *b = cg_batcher_new(x2, NULL, 4, true, true, &r);
    assert_int_equal(cg_batcher_shard(b, rank, world), CG_OK);
    int64_t per = N / world, nb = cg_batcher_nbatches(b);
    double mine[N] = {0};
    int got = 0;
    cg_tensor *xb = NULL;
    while (cg_batcher_next(b, &xb, NULL)) {
        const double *p = cg_data(xb);
        for (int64_t i = 0; i < cg_dim(xb, 0); i++) mine[got++] = p[i];
    }
    long nbs[2] = {(long)nb, -(long)nb}; /* every rank the same number of steps */
    MPI_Allreduce(MPI_IN_PLACE, nbs, 2, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
    assert_int_equal(nbs[0], -nbs[1]);
    assert_int_equal(got, (per / 4) * 4);
    /* drop_last: whole shards of `per`, every sample in exactly one; batches
     * of 4 drop each shard's last per % 4 */
    int counts[N] = {0};
    double *all = calloc((size_t)world * N, sizeof *all);
    MPI_Allgather(mine, N, MPI_DOUBLE, all, N, MPI_DOUBLE, MPI_COMM_WORLD);
    for (int q = 0; q < world; q++)
        for (int i = 0; i < got; i++) counts[(int)all[q * N + i]]++;
    for (int i = 0; i < N; i++) assert_true(counts[i] <= 1);
    free(all);
    cg_batcher_free(b);
    cg_tensor_free(x2), cg_tensor_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ddp_refused_before_init),
        cmocka_unit_test(test_ddp_broadcasts_rank0_weights),
        cmocka_unit_test(test_ddp_bucketed_allreduce_averages),
        cmocka_unit_test(test_ddp_unused_parameters_do_not_hang),
        cmocka_unit_test(test_ddp_no_sync_accumulates),
        cmocka_unit_test(test_ddp_deterministic_matches_one_process),
        cmocka_unit_test(test_ddp_layout_mismatch_fails_everywhere),
        cmocka_unit_test(test_ddp_failed_rank_fails_everywhere),
        cmocka_unit_test(test_ddp_null_arguments),
        cmocka_unit_test(test_ddp_metrics_and_checkpoint),
        cmocka_unit_test(test_ddp_sampler_covers_the_epoch),
    };
    cg_set_num_threads(1);
    int failed = cmocka_run_group_tests_name("ddp", tests, NULL, NULL), total = failed;
    MPI_Allreduce(&failed, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (failed) fprintf(stderr, "rank %d: %d test(s) failed\n", rank, failed);
    cg_dist_finalize();
    return total ? 1 : 0;
}
