/* cg_fit, cg_evaluate, cg_predict and the callbacks (nn.h, "training
 * loops"): the history and the weights bitwise equal to the hand-written loop
 * the header documents (shuffle, validation data or split, accumulation,
 * clipping, schedules per batch and per epoch), early stopping, the best
 * checkpoint, a user callback stopping, a batch function as the data, each
 * metric by hand, the progress bar's exact bytes on a terminal and off one
 * and within 60 columns, the CSV log, and every error. Files go to a fresh
 * mkdtemp directory. */
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

#include "testutil.h"

enum { N = 50, IN = 4, CLASSES = 3 };

static char dir_[64];
static const char *tmp_path(const char *name) {
    static char p[160];
    snprintf(p, sizeof p, "%s/%s", dir_, name);
    return p;
}

/* ---- data, models, and the hand-written loop -------------------------------- */
/* n samples [n, IN] f32 around one of three centres, labels i64 [n]. */
static void blobs(uint64_t seed, int64_t n, cg_tensor **x, cg_tensor **y) {
    cg_rng rng = seeded(seed);
    float xs[400 * IN];
    int64_t ys[400];
    assert_true(n <= 400);
    for (int64_t i = 0; i < n; i++) {
        ys[i] = i % CLASSES;
        for (int j = 0; j < IN; j++)
            xs[i * IN + j] = (float)((j == ys[i] ? 1.5 : 0) + 0.8 * cg_rng_normal(&rng));
    }
    *x = cg_from_array(NULL, CG_F32, CG_SHAPE(n, IN), xs);
    *y = cg_from_array(NULL, CG_I64, CG_SHAPE(n), ys);
}

static cg_module *mlp(uint64_t seed) {
    cg_rng rng = seeded(seed);
    cg_module *m = cg_nn_mlp(&rng, CG_F32, 3, (const int64_t[]){IN, 8, CLASSES}, CG_ACT_RELU);
    assert_non_null(m);
    return m;
}

static cg_optim *adam(cg_module *m, double lr) {
    cg_adam_opts o = cg_adam_defaults(lr);
    cg_optim *opt = cg_adam_new(m, &o);
    assert_non_null(opt);
    return opt;
}

/* The model's parameters, bitwise equal to the other's. */
static void assert_same_weights(const cg_module *a, const cg_module *b) {
    const cg_tensor *fa = cg_module_flat_params(a), *fb = cg_module_flat_params(b);
    assert_int_equal(cg_numel(fa), cg_numel(fb));
    assert_memory_equal(cg_data(fa), cg_data(fb), (size_t)cg_numel(fa) * sizeof(float));
}

/* Rows of logits [B, C] whose argmax is the label. */
static double hits_of(cg_ctx *ctx, const cg_tensor *out, const cg_tensor *y) {
    cg_no_grad_push(ctx);
    double h =
        cg_item(cg_sum(ctx, cg_eq(ctx, cg_argmax(ctx, out, 1, false), y), NULL, 0, false));
    cg_no_grad_pop(ctx);
    return h;
}

typedef struct hand {
    int epochs;
    int64_t batch;
    bool shuffle;
    cg_rng *rng;
    const cg_tensor *vx, *vy; /* validation, or NULL */
    int64_t vbatch;
    int accum;
    double clip;
    cg_sched *sched;
    bool sched_batch;
} hand;

/* Validation as cg_fit runs it: eval mode, no grad, batches in order. */
static void hand_validate(cg_ctx *ctx, cg_module *m, cg_batcher *vb, double *loss,
                          double *acc) {
    double ls = 0, hits = 0, seen = 0;
    cg_tensor *xb, *yb;
    cg_module_train(m, false);
    cg_no_grad_push(ctx);
    while (cg_batcher_next(vb, &xb, &yb)) {
        cg_tensor *out = cg_module_forward(ctx, m, xb);
        ls += cg_item(cg_cross_entropy(ctx, out, yb, CG_MEAN)) * (double)cg_dim(xb, 0);
        hits += hits_of(ctx, out, yb);
        seen += (double)cg_dim(xb, 0);
        cg_ctx_reset(ctx);
    }
    cg_no_grad_pop(ctx);
    *loss = ls / seen;
    *acc = hits / seen;
}

/* The loop of nn.h, written out: cross-entropy, accuracy; per epoch e,
 * rows[4 e ..] = loss, accuracy, val_loss, val_accuracy. */
static void hand_fit(cg_module *m, cg_optim *o, const cg_tensor *x, const cg_tensor *y,
                     const hand *h, double *rows) {
    cg_ctx *ctx = cg_ctx_new();
    cg_batcher *b = cg_batcher_new(x, y, h->batch, h->shuffle, false, h->rng);
    cg_batcher *vb = h->vx ? cg_batcher_new(h->vx, h->vy, h->vbatch, false, false, NULL) : NULL;
    int64_t nb = cg_batcher_nbatches(b);
    int accum = h->accum ? h->accum : 1;
    for (int e = 0; e < h->epochs; e++) {
        double ls = 0, hits = 0, seen = 0;
        cg_tensor *xb, *yb;
        cg_module_train(m, true);
        for (int64_t i = 0; cg_batcher_next(b, &xb, &yb); i++) {
            if (i % accum == 0) cg_optim_zero_grad(o);
            cg_tensor *out = cg_module_forward(ctx, m, xb);
            cg_tensor *l = cg_cross_entropy(ctx, out, yb, CG_MEAN);
            ls += cg_item(l) * (double)cg_dim(xb, 0);
            hits += hits_of(ctx, out, yb);
            assert_int_equal(cg_backward(accum > 1 ? cg_mul_scalar(ctx, l, 1.0 / accum) : l),
                             CG_OK);
            if ((i + 1) % accum == 0 || i + 1 == nb) {
                if (h->clip > 0) assert_int_equal(cg_clip_grad_norm_(m, h->clip, NULL), CG_OK);
                assert_int_equal(cg_optim_step(o), CG_OK);
                if (h->sched && h->sched_batch)
                    assert_int_equal(cg_sched_step(h->sched), CG_OK);
            }
            seen += (double)cg_dim(xb, 0);
            cg_ctx_reset(ctx);
        }
        rows[4 * e] = ls / seen;
        rows[4 * e + 1] = hits / seen;
        if (vb) hand_validate(ctx, m, vb, &rows[4 * e + 2], &rows[4 * e + 3]);
        if (h->sched && !h->sched_batch) assert_int_equal(cg_sched_step(h->sched), CG_OK);
    }
    cg_module_train(m, true);
    cg_batcher_free(vb);
    cg_batcher_free(b);
    cg_ctx_free(ctx);
}

static const cg_metric accuracy_metric[] = {{.kind = CG_METRIC_ACCURACY}};
static const cg_loss ce = {.kind = CG_LOSS_CROSS_ENTROPY};

/* h's rows bitwise equal to the hand loop's (with validation when val). */
static void assert_history(const cg_history *h, const double *rows, int epochs, bool val) {
    assert_non_null(h);
    assert_int_equal(h->epochs, epochs);
    assert_int_equal(h->nkeys, val ? 4 : 2);
    const char *keys[] = {"loss", "accuracy", "val_loss", "val_accuracy"};
    for (int k = 0; k < h->nkeys; k++) {
        assert_string_equal(h->keys[k], keys[k]);
        for (int e = 0; e < epochs; e++) {
            double want = rows[4 * e + (k % 2) + (k >= 2 ? 2 : 0)];
            assert_memory_equal(&h->values[k][e], &want, sizeof want);
        }
    }
}

/* ---- cg_fit against the hand loop ---------------------------------------------------- */
static void test_fit_matches_hand_loop_with_shuffle_and_validation(void **state) {
    (void)state;
    cg_tensor *x, *y, *vx, *vy;
    blobs(1, N, &x, &y);
    blobs(2, 20, &vx, &vy);
    cg_module *m1 = mlp(3), *m2 = mlp(3);
    cg_optim *o1 = adam(m1, 0.01), *o2 = adam(m2, 0.01);
    cg_rng r1 = seeded(9), r2 = seeded(9);
    double rows[4 * 3];
    hand_fit(m1, o1, x, y, &(hand){3, 8, true, &r1, vx, vy, 8, 1, 0, NULL, false}, rows);

    cg_fit_opts fo = cg_fit_defaults();
    fo.epochs = 3;
    fo.batch_size = 8;
    fo.rng = &r2;
    fo.validation = &(cg_fit_data){.x = vx, .y = vy};
    fo.nmetrics = 1;
    fo.metrics = accuracy_metric;
    cg_history *h = cg_fit(m2, o2, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    assert_history(h, rows, 3, true);
    assert_false(h->stopped);
    assert_same_weights(m1, m2);
    assert_true(cg_module_is_training(m2));
    assert_int_equal(cg_optim_steps(o2), 3 * 7); /* 50 rows in 7 batches of 8 */
    assert_memory_equal(&r1, &r2, sizeof r1);    /* the same draws */
    assert_ptr_equal(cg_history_get(h, "val_accuracy"), h->values[3]);
    assert_null(cg_history_get(h, "val_acc"));
    assert_error(CG_ERR_ARG, "cg_history_get: key \"val_acc\" is not in the history (loss, "
                             "accuracy, val_loss, val_accuracy)");
    cg_history_free(h);
    cg_optim_free(o1);
    cg_optim_free(o2);
    cg_module_free(m1);
    cg_module_free(m2);
    cg_tensor_free(x);
    cg_tensor_free(y);
    cg_tensor_free(vx);
    cg_tensor_free(vy);
}

/* Keras' split: 50 samples at 0.2 leave the first floor(50 * 0.8) = 40. */
static void test_fit_validation_split_is_the_last_fraction(void **state) {
    (void)state;
    cg_tensor *x, *y;
    blobs(4, N, &x, &y);
    cg_module *m1 = mlp(5), *m2 = mlp(5);
    cg_optim *o1 = adam(m1, 0.01), *o2 = adam(m2, 0.01);
    cg_rng r1 = seeded(6), r2 = seeded(6);
    cg_tensor *tx = cg_narrow(NULL, x, 0, 0, 40), *ty = cg_narrow(NULL, y, 0, 0, 40);
    cg_tensor *vx = cg_narrow(NULL, x, 0, 40, 10), *vy = cg_narrow(NULL, y, 0, 40, 10);
    double rows[4 * 2];
    hand_fit(m1, o1, tx, ty, &(hand){2, 16, true, &r1, vx, vy, 4, 1, 0, NULL, false}, rows);

    cg_fit_opts fo = cg_fit_defaults();
    fo.epochs = 2;
    fo.batch_size = 16;
    fo.rng = &r2;
    fo.validation_split = 0.2;
    fo.validation_batch_size = 4;
    fo.nmetrics = 1;
    fo.metrics = accuracy_metric;
    cg_history *h = cg_fit(m2, o2, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    assert_history(h, rows, 2, true);
    assert_same_weights(m1, m2);
    assert_int_equal(cg_optim_steps(o2), 2 * 3);
    cg_history_free(h);
    /* 3 samples at 0.2: floor(2.4) = 2 and 1, fine; at 0.7, floor(0.9) = 0 is not */
    cg_tensor *x3 = cg_narrow(NULL, x, 0, 0, 3), *y3 = cg_narrow(NULL, y, 0, 0, 3);
    fo.validation_split = 0.7;
    assert_null(cg_fit(m2, o2, &ce, &(cg_fit_data){.x = x3, .y = y3}, &fo));
    assert_error(CG_ERR_ARG, "cg_fit: validation_split 0.7 of 3 samples leaves 0 for training");
    fo.validation_split = 0.2;
    fo.epochs = 1;
    h = cg_fit(m2, o2, &ce, &(cg_fit_data){.x = x3, .y = y3}, &fo);
    assert_non_null(h);
    cg_history_free(h);
    cg_tensor *list[] = {x3, y3, tx, ty, vx, vy, x, y};
    for (int i = 0; i < 8; i++) cg_tensor_free(list[i]);
    cg_optim_free(o1);
    cg_optim_free(o2);
    cg_module_free(m1);
    cg_module_free(m2);
}

/* 7 batches in groups of 3: steps after batches 3, 6 and 7 (the short group). */
static void test_fit_accumulation_and_clipping_match_hand_loop(void **state) {
    (void)state;
    cg_tensor *x, *y;
    blobs(7, N, &x, &y);
    cg_module *m1 = mlp(8), *m2 = mlp(8);
    cg_optim *o1 = adam(m1, 0.05), *o2 = adam(m2, 0.05);
    cg_rng r1 = seeded(10), r2 = seeded(10);
    double rows[4 * 2];
    hand_fit(m1, o1, x, y, &(hand){2, 8, true, &r1, NULL, NULL, 0, 3, 0.05, NULL, false}, rows);

    cg_fit_opts fo = cg_fit_defaults();
    fo.epochs = 2;
    fo.batch_size = 8;
    fo.rng = &r2;
    fo.accum_steps = 3;
    fo.clip_grad_norm = 0.05;
    fo.nmetrics = 1;
    fo.metrics = accuracy_metric;
    cg_history *h = cg_fit(m2, o2, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    assert_history(h, rows, 2, false);
    assert_same_weights(m1, m2);
    assert_int_equal(cg_optim_steps(o2), 2 * 3);
    cg_history_free(h);
    /* the clip mattered: without it the weights differ */
    cg_module *m3 = mlp(8);
    cg_optim *o3 = adam(m3, 0.05);
    cg_rng r3 = seeded(10);
    fo.rng = &r3;
    fo.clip_grad_norm = 0;
    cg_history_free(cg_fit(m3, o3, &ce, &(cg_fit_data){.x = x, .y = y}, &fo));
    const float *a = cg_data(cg_module_flat_params(m2)),
                *b = cg_data(cg_module_flat_params(m3));
    assert_true(memcmp(a, b, sizeof(float) * (size_t)cg_module_numel(m2)) != 0);
    cg_optim_free(o1);
    cg_optim_free(o2);
    cg_optim_free(o3);
    cg_module_free(m1);
    cg_module_free(m2);
    cg_module_free(m3);
    cg_tensor_free(x);
    cg_tensor_free(y);
}

/* A metric "score" whose epoch value comes from a script: each sample adds
 * script[epoch], the epoch set by a LambdaCallback that runs first. */
typedef struct script {
    const double *values;
    int epoch;
    float snap[8][128]; /* the weights at each epoch's end */
    int nsnap;
} script;

static cg_status score_fn(cg_ctx *ctx, const cg_tensor *out, const cg_tensor *target,
                          void *user, double *sum) {
    (void)ctx;
    (void)target;
    const script *s = user;
    *sum = s->values[s->epoch] * (double)cg_dim(out, 0);
    return CG_OK;
}
static cg_status script_epoch_begin(cg_fit_state *st, void *user) {
    ((script *)user)->epoch = st->epoch;
    return CG_OK;
}
static cg_status script_epoch_end(cg_fit_state *st, void *user) {
    script *s = user;
    const cg_tensor *f = cg_module_flat_params(st->model);
    assert_true(cg_numel(f) <= 128 && st->epoch < 8);
    memcpy(s->snap[st->epoch], cg_data(f), sizeof(float) * (size_t)cg_numel(f));
    s->nsnap = st->epoch + 1;
    return CG_OK;
}

/* StepLR(step_size 2, gamma 0.5) stepped per batch (7 a epoch) or per epoch,
 * each bitwise equal to the hand loop; ReduceLROnPlateau gets the monitored
 * key. */
static void test_fit_schedule_per_batch_and_per_epoch(void **state) {
    (void)state;
    cg_tensor *x, *y;
    blobs(11, N, &x, &y);
    for (int per_batch = 0; per_batch < 2; per_batch++) {
        cg_module *m1 = mlp(12), *m2 = mlp(12);
        cg_optim *o1 = adam(m1, 0.04), *o2 = adam(m2, 0.04);
        cg_sched *s1 = cg_steplr_new(o1, 2, 0.5), *s2 = cg_steplr_new(o2, 2, 0.5);
        double rows[4 * 2];
        hand_fit(m1, o1, x, y, &(hand){2, 8, false, NULL, NULL, NULL, 0, 1, 0, s1, per_batch},
                 rows);
        cg_fit_opts fo = cg_fit_defaults();
        fo.epochs = 2;
        fo.batch_size = 8;
        fo.shuffle = false;
        fo.sched = s2;
        fo.sched_interval = per_batch ? CG_SCHED_BATCH : CG_SCHED_EPOCH;
        fo.nmetrics = 1;
        fo.metrics = accuracy_metric;
        cg_history *h = cg_fit(m2, o2, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
        assert_history(h, rows, 2, false);
        assert_same_weights(m1, m2);
        /* 14 steps: epoch 14 of StepLR is 0.04 / 2^7; 2 epochs: 0.04 / 2 */
        assert_float_equal(cg_optim_lr(o2), per_batch ? 0.04 / 128 : 0.04 / 2, 1e-15);
        cg_history_free(h);
        cg_sched_free(s1);
        cg_sched_free(s2);
        cg_optim_free(o1);
        cg_optim_free(o2);
        cg_module_free(m1);
        cg_module_free(m2);
    }
    /* ReduceLROnPlateau (patience 0, threshold 0) on the monitored key, a
     * metric scripted 3, 2, 2.5, 1: only epoch 2 fails to improve, so the lr
     * drops tenfold once */
    cg_module *m = mlp(12);
    cg_optim *o = adam(m, 0.1);
    cg_plateau_opts po = cg_plateau_defaults();
    po.patience = 0;
    po.threshold = 0;
    cg_sched *s = cg_plateau_new(o, &po);
    assert_non_null(s);
    const double v[] = {3, 2, 2.5, 1};
    script sc = {.values = v};
    cg_callback *cb =
        cg_lambda_callback_new(&(cg_callback_fns){.on_epoch_begin = script_epoch_begin}, &sc);
    cg_metric score = {.kind = CG_METRIC_USER, .name = "score", .fn = score_fn, .user = &sc};
    cg_fit_opts fo = cg_fit_defaults();
    fo.epochs = 4;
    fo.shuffle = false;
    fo.sched = s;
    fo.sched_monitor = "score";
    fo.nmetrics = 1;
    fo.metrics = &score;
    fo.ncallbacks = 1;
    fo.callbacks = &cb;
    cg_history *h = cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    assert_non_null(h);
    assert_float_equal(cg_optim_lr(o), 0.01, 1e-12);
    cg_callback_free(cb);
    fo.ncallbacks = 0;
    fo.nmetrics = 0;
    cg_history_free(h);
    fo.sched_monitor = "val_loss"; /* no validation */
    assert_null(cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo));
    assert_error(CG_ERR_ARG, "cg_fit: sched_monitor \"val_loss\" is not in the history (loss)");
    fo.sched_monitor = NULL;
    fo.sched_interval = CG_SCHED_BATCH; /* plateau needs a metric */
    assert_null(cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo));
    assert_error(CG_ERR_ARG, "cg_fit: cg_sched_step: ReduceLROnPlateau needs a metric");
    cg_sched_free(s);
    cg_optim_free(o);
    cg_module_free(m);
    cg_tensor_free(x);
    cg_tensor_free(y);
}

/* ---- callbacks --------------------------------------------------------------------------- */
/* A fit of up to `epochs` epochs with the score metric and cbs after the
 * script's callback; returns the history. */
static cg_history *scripted_fit(cg_module *m, cg_optim *o, script *s, int epochs, int ncb,
                                cg_callback **cbs) {
    cg_tensor *x, *y;
    blobs(13, 24, &x, &y);
    cg_callback *all[8] = {
        cg_lambda_callback_new(&(cg_callback_fns){.on_epoch_begin = script_epoch_begin,
                                                  .on_epoch_end = script_epoch_end},
                               s)};
    for (int i = 0; i < ncb; i++) all[1 + i] = cbs[i];
    cg_metric score = {.kind = CG_METRIC_USER, .name = "score", .fn = score_fn, .user = s};
    cg_fit_opts fo = cg_fit_defaults();
    fo.epochs = epochs;
    fo.batch_size = 8;
    fo.shuffle = false;
    fo.nmetrics = 1;
    fo.metrics = &score;
    fo.ncallbacks = 1 + ncb;
    fo.callbacks = all;
    cg_history *h = cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    cg_callback_free(all[0]);
    cg_tensor_free(x);
    cg_tensor_free(y);
    return h;
}

static void test_fit_early_stopping_patience_and_restore(void **state) {
    (void)state;
    /* best 3 at epoch 1; epochs 2 and 3 do not improve: patience 2 stops after epoch 3 */
    const double v1[] = {5, 3, 4, 3, 1, 0};
    script s = {.values = v1};
    cg_module *m = mlp(14);
    cg_optim *o = adam(m, 0.01);
    cg_callback *es = cg_early_stopping_new("score", CG_MONITOR_MIN, 2, 0, true);
    cg_history *h = scripted_fit(m, o, &s, 6, 1, &es);
    assert_non_null(h);
    assert_int_equal(h->epochs, 4);
    assert_true(h->stopped);
    assert_float_equal(cg_history_get(h, "score")[3], 3, 1e-12);
    assert_memory_equal(cg_data(cg_module_flat_params(m)), s.snap[1],
                        sizeof(float) * (size_t)cg_module_numel(m));
    cg_history_free(h);
    /* min_delta 0.1: 4.95 and 4.9 are not better than 5 by more than 0.1 */
    const double v2[] = {5, 4.95, 4.9, 4.85, 4.8};
    s = (script){.values = v2};
    cg_callback_free(es);
    es = cg_early_stopping_new("score", CG_MONITOR_AUTO, 2, 0.1, false);
    h = scripted_fit(m, o, &s, 5, 1, &es);
    assert_int_equal(h->epochs, 3);
    assert_memory_equal(cg_data(cg_module_flat_params(m)), s.snap[2],
                        sizeof(float) * (size_t)cg_module_numel(m)); /* no restore */
    cg_history_free(h);
    /* without min_delta every epoch improves: all 5 run */
    s = (script){.values = v2};
    cg_callback_free(es);
    es = cg_early_stopping_new("score", CG_MONITOR_MIN, 2, 0, true);
    h = scripted_fit(m, o, &s, 5, 1, &es);
    assert_int_equal(h->epochs, 5);
    assert_false(h->stopped);
    assert_memory_equal(cg_data(cg_module_flat_params(m)), s.snap[4],
                        sizeof(float) * (size_t)cg_module_numel(m));
    cg_history_free(h);
    /* max mode ("acc" in the name under AUTO), patience 0: the first epoch
     * without improvement stops, and the best weights come back */
    const double v3[] = {0.5, 0.7, 0.6, 0.9};
    s = (script){.values = v3};
    cg_callback_free(es);
    es = cg_early_stopping_new("score", CG_MONITOR_MAX, 0, 0, true);
    h = scripted_fit(m, o, &s, 4, 1, &es);
    assert_int_equal(h->epochs, 3);
    assert_memory_equal(cg_data(cg_module_flat_params(m)), s.snap[1],
                        sizeof(float) * (size_t)cg_module_numel(m));
    cg_history_free(h);
    /* a monitor the history lacks fails when training begins */
    cg_callback_free(es);
    es = cg_early_stopping_new("val_loss", CG_MONITOR_AUTO, 1, 0, false);
    int64_t steps = cg_optim_steps(o);
    assert_null(scripted_fit(m, o, &s, 4, 1, &es));
    assert_error(CG_ERR_ARG, "cg_fit: EarlyStopping: monitor \"val_loss\" is not in the "
                             "history (loss, score)");
    assert_int_equal(cg_optim_steps(o), steps);
    cg_callback_free(es);
    cg_optim_free(o);
    cg_module_free(m);
}

/* The file's bytes (malloc'd, *n of them), NULL when absent. */
static unsigned char *slurp(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)*n + 1);
    assert_int_equal(fread(b, 1, (size_t)*n, f), (size_t)*n);
    fclose(f);
    return b;
}

/* After each epoch: whether the checkpoint's bytes changed (it was written). */
typedef struct watcher {
    const char *path;
    unsigned char *last;
    long n;
    int wrote[8];
} watcher;
static cg_status watch_epoch_end(cg_fit_state *st, void *user) {
    watcher *w = user;
    long n = 0;
    unsigned char *b = slurp(w->path, &n);
    w->wrote[st->epoch] = b && (!w->last || n != w->n || memcmp(b, w->last, (size_t)n) != 0);
    free(w->last);
    w->last = b;
    w->n = n;
    return CG_OK;
}

static void test_fit_checkpoint_saves_the_best_epoch_only(void **state) {
    (void)state;
    const double v[] = {3, 2, 2.5, 1, 1.5};
    script s = {.values = v};
    const char *path = tmp_path("best.safetensors");
    watcher w = {.path = path};
    cg_module *m = mlp(15);
    cg_optim *o = adam(m, 0.01);
    cg_callback *cbs[] = {
        cg_model_checkpoint_new(path, "score", CG_MONITOR_MIN, true),
        cg_lambda_callback_new(&(cg_callback_fns){.on_epoch_end = watch_epoch_end}, &w)};
    cg_history *h = scripted_fit(m, o, &s, 5, 2, cbs);
    assert_non_null(h);
    const int want[] = {1, 1, 0, 1, 0};
    assert_memory_equal(w.wrote, want, sizeof want);
    /* loadable: the weights of epoch 3 (index), with the optimizer */
    cg_module *m2 = mlp(99);
    cg_optim *o2 = adam(m2, 0.01);
    assert_int_equal(cg_load(path, m2, o2, NULL, NULL), CG_OK);
    assert_memory_equal(cg_data(cg_module_flat_params(m2)), s.snap[3],
                        sizeof(float) * (size_t)cg_module_numel(m));
    assert_int_equal(cg_optim_steps(o2), 4 * 3);
    cg_history_free(h);
    /* without save_best_only: every epoch */
    cg_callback_free(cbs[0]);
    cbs[0] = cg_model_checkpoint_new(path, "score", CG_MONITOR_MIN, false);
    s = (script){.values = v};
    h = scripted_fit(m, o, &s, 5, 2, cbs);
    const int all[] = {1, 1, 1, 1, 1};
    assert_memory_equal(w.wrote, all, sizeof all);
    cg_history_free(h);
    /* an unwritable path stops fit with CG_ERR_IO naming it */
    cg_callback_free(cbs[0]);
    cbs[0] = cg_model_checkpoint_new("/nonexistent-dir/x.safetensors", "loss", CG_MONITOR_AUTO,
                                     true);
    s = (script){.values = v};
    assert_null(scripted_fit(m, o, &s, 5, 1, cbs));
    assert_int_equal(cg_last_status(), CG_ERR_IO);
    assert_error(CG_ERR_IO, "cg_fit: ModelCheckpoint: cg_save: /nonexistent-dir/x.safetensors");
    assert_int_equal(s.nsnap, 1); /* the first epoch's save failed */
    remove(path);
    free(w.last);
    cg_callback_free(cbs[0]);
    cg_callback_free(cbs[1]);
    cg_optim_free(o);
    cg_optim_free(o2);
    cg_module_free(m);
    cg_module_free(m2);
}

/* A LambdaCallback that stops after `stop_at` batches in all, or fails. */
typedef struct stopper {
    int64_t batches, stop_at;
    int stop_epoch; /* stop at this epoch's end; -1: never */
    bool fail;
    size_t chunk_allocs[64];
    int ends; /* on_train_end calls */
} stopper;
static cg_status stop_batch(cg_fit_state *st, void *user) {
    stopper *s = user;
    if (s->batches < 64) s->chunk_allocs[s->batches] = cg_ctx_get_stats(st->ctx).chunk_allocs;
    assert_non_null(st->output);
    assert_int_equal(cg_dim(st->output, 0), cg_dim(st->x, 0));
    if (++s->batches == s->stop_at) st->stop_training = true;
    if (s->fail)
        return cg_set_error(CG_ERR_STATE, "stopper: refusing batch %lld", (long long)st->batch);
    return CG_OK;
}
static cg_status stop_epoch(cg_fit_state *st, void *user) {
    stopper *s = user;
    if (st->epoch == s->stop_epoch) st->stop_training = true;
    return CG_OK;
}
static cg_status stop_end(cg_fit_state *st, void *user) {
    (void)st;
    ((stopper *)user)->ends++;
    return CG_OK;
}

static void test_fit_user_callback_stops_training(void **state) {
    (void)state;
    cg_tensor *x, *y;
    blobs(16, N, &x, &y);
    cg_module *m = mlp(17);
    cg_optim *o = adam(m, 0.01);
    stopper s = {.stop_at = 10, .stop_epoch = -1};
    cg_callback *cb = cg_lambda_callback_new(&(cg_callback_fns){.on_batch_end = stop_batch,
                                                                .on_epoch_end = stop_epoch,
                                                                .on_train_end = stop_end},
                                             &s);
    cg_fit_opts fo = cg_fit_defaults();
    fo.epochs = 5;
    fo.batch_size = 8;
    fo.shuffle = false;
    fo.ncallbacks = 1;
    fo.callbacks = &cb;
    /* batch 10 in all is batch 3 of epoch 1: two rows, the second over 24 samples */
    cg_history *h = cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    assert_non_null(h);
    assert_int_equal(h->epochs, 2);
    assert_true(h->stopped);
    assert_int_equal(cg_optim_steps(o), 10);
    assert_int_equal(s.ends, 1);
    cg_history_free(h);
    /* at an epoch's end */
    s = (stopper){.stop_epoch = 2};
    h = cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    assert_int_equal(h->epochs, 3);
    assert_int_equal(s.batches, 21);
    /* steady state: the step context mallocs no chunk after the first epoch */
    for (int i = 7; i < 21; i++) assert_int_equal(s.chunk_allocs[i], s.chunk_allocs[6]);
    cg_history_free(h);
    /* a failing hook stops fit with its status and message */
    s = (stopper){.stop_epoch = -1, .fail = true};
    assert_null(cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo));
    assert_error(CG_ERR_STATE, "cg_fit: stopper: refusing batch 0");
    assert_int_equal(s.ends, 0);
    cg_callback_free(cb);
    cg_optim_free(o);
    cg_module_free(m);
    cg_tensor_free(x);
    cg_tensor_free(y);
}

/* ---- mode switching -------------------------------------------------------------------------
 */
/* A module that logs its mode at each forward and passes x on. */
typedef struct probe_log {
    char modes[256];
    int n;
} probe_log;
static cg_tensor *probe_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    probe_log *log = *(probe_log **)cg_module_data(m);
    if (log->n < 255) log->modes[log->n++] = cg_module_is_training(m) ? 'T' : 'E';
    return cg_add_scalar(ctx, x, 0.0);
}
static const cg_module_kind probe_kind = {
    .name = "Probe", .forward = probe_forward, .free_data = free};

static void test_fit_trains_then_evaluates_and_restores_the_mode(void **state) {
    (void)state;
    cg_tensor *x, *y, *vx, *vy;
    blobs(18, 16, &x, &y);
    blobs(19, 8, &vx, &vy);
    probe_log log = {0};
    probe_log **data = malloc(sizeof *data);
    *data = &log;
    cg_module *children[] = {mlp(20), cg_module_new(&probe_kind, data)};
    cg_module *m = cg_nn_sequential(2, children);
    cg_optim *o = adam(m, 0.01);
    cg_module_train(m, false);
    cg_fit_opts fo = cg_fit_defaults();
    fo.epochs = 2;
    fo.batch_size = 8;
    fo.shuffle = false;
    fo.validation = &(cg_fit_data){.x = vx, .y = vy};
    fo.validation_batch_size = 4;
    cg_history *h = cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    assert_non_null(h);
    log.modes[log.n] = 0;
    assert_string_equal(log.modes, "TTEETTEE");
    assert_false(cg_module_is_training(m));
    cg_history_free(h);
    cg_optim_free(o);
    cg_module_free(m);
    cg_tensor *list[] = {x, y, vx, vy};
    for (int i = 0; i < 4; i++) cg_tensor_free(list[i]);
}

/* ---- evaluate, predict, batch functions ---------------------------------------------------
 */
static void test_fit_evaluate_and_predict_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x, *y;
    blobs(21, N, &x, &y);
    cg_module *m = mlp(22);
    cg_module_train(m, true);
    double got[2];
    assert_int_equal(
        cg_evaluate(m, &ce, &(cg_fit_data){.x = x, .y = y}, 7, 1, accuracy_metric, got), CG_OK);
    assert_true(cg_module_is_training(m));
    cg_tensor *logits = cg_module_predict(ctx, m, x);
    double want_loss = cg_item(cg_cross_entropy(ctx, logits, y, CG_MEAN));
    double want_acc = hits_of(ctx, logits, y) / N;
    assert_float_equal(got[0], want_loss, 1e-6);
    assert_float_equal(got[1], want_acc, 0);

    cg_tensor *p = cg_predict(m, &(cg_fit_data){.x = x}, 7);
    assert_non_null(p);
    assert_int_equal(cg_ndim(p), 2);
    assert_int_equal(cg_dim(p, 0), N);
    assert_int_equal(cg_dim(p, 1), CLASSES);
    assert_int_equal(cg_dtype_of(p), CG_F32);
    double maxdiff = cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, p, logits)), NULL, 0, false));
    assert_true(maxdiff < 1e-6);
    assert_true(cg_module_is_training(m));
    cg_tensor_free(p);
    cg_module_free(m);
    cg_tensor_free(x);
    cg_tensor_free(y);
}

/* Batches as slices of borrowed tensors: step i is rows [8 i, 8 i + 8). */
typedef struct slicer {
    const cg_tensor *x, *y;
    int64_t calls;
    bool bad; /* hand back y of the wrong length */
} slicer;
static cg_status slice_fn(void *user, int64_t step, cg_ctx *ctx, cg_tensor **x, cg_tensor **y) {
    slicer *s = user;
    s->calls++;
    int64_t n = cg_dim(s->x, 0), at = 8 * step, len = n - at < 8 ? n - at : 8;
    *x = cg_narrow(ctx, s->x, 0, at, len);
    *y = cg_narrow(ctx, s->y, 0, at, s->bad ? len - 1 : len);
    return *x && *y ? CG_OK : cg_last_status();
}
static cg_status failing_fn(void *user, int64_t step, cg_ctx *ctx, cg_tensor **x,
                            cg_tensor **y) {
    (void)user;
    (void)ctx;
    (void)x;
    (void)y;
    return cg_set_error(CG_ERR_IO, "reader: step %lld: disk on fire", (long long)step);
}

static void test_fit_batch_function_as_data(void **state) {
    (void)state;
    cg_tensor *x, *y, *vx, *vy;
    blobs(23, N, &x, &y);
    blobs(24, 20, &vx, &vy);
    cg_module *m1 = mlp(25), *m2 = mlp(25);
    cg_optim *o1 = adam(m1, 0.01), *o2 = adam(m2, 0.01);
    double rows[4 * 2];
    hand_fit(m1, o1, x, y, &(hand){2, 8, false, NULL, vx, vy, 8, 1, 0, NULL, false}, rows);
    slicer tr = {x, y, 0, false}, va = {vx, vy, 0, false};
    cg_fit_opts fo = cg_fit_defaults();
    fo.epochs = 2;
    fo.shuffle = true; /* ignored for a batch function: no rng needed */
    fo.validation = &(cg_fit_data){.fn = slice_fn, .user = &va, .steps = 3};
    fo.nmetrics = 1;
    fo.metrics = accuracy_metric;
    cg_fit_data train = {.fn = slice_fn, .user = &tr, .steps = 7};
    cg_history *h = cg_fit(m2, o2, &ce, &train, &fo);
    assert_history(h, rows, 2, true);
    assert_same_weights(m1, m2);
    assert_int_equal(tr.calls, 14);
    assert_int_equal(va.calls, 6);
    /* evaluate and predict take one too: the last epoch's validation again */
    double r[2];
    assert_int_equal(cg_evaluate(m2, &ce, fo.validation, 1, 1, accuracy_metric, r), CG_OK);
    assert_memory_equal(&r[0], &h->values[2][1], sizeof r[0]);
    assert_memory_equal(&r[1], &h->values[3][1], sizeof r[1]);
    cg_history_free(h);
    cg_tensor *p = cg_predict(m2, fo.validation, 1);
    assert_non_null(p);
    assert_int_equal(cg_dim(p, 0), 20);
    cg_tensor_free(p);
    /* errors: the function's own, rows that disagree, no steps */
    train.fn = failing_fn;
    assert_null(cg_fit(m2, o2, &ce, &train, &fo));
    assert_error(CG_ERR_IO, "cg_fit: reader: step 0: disk on fire");
    train.fn = slice_fn;
    tr.bad = true;
    assert_null(cg_fit(m2, o2, &ce, &train, &fo));
    assert_error(CG_ERR_SHAPE, "cg_fit: batch 0: x [8,4] and y [7] differ in their rows");
    tr.bad = false;
    train.steps = 0;
    assert_null(cg_fit(m2, o2, &ce, &train, &fo));
    assert_error(CG_ERR_ARG, "cg_fit: train.steps 0 must be >= 1 with a batch function");
    train.steps = 7;
    fo.validation = NULL;
    fo.validation_split = 0.5;
    assert_null(cg_fit(m2, o2, &ce, &train, &fo));
    assert_error(CG_ERR_ARG, "cg_fit: validation_split needs tensor data");
    cg_optim_free(o1);
    cg_optim_free(o2);
    cg_module_free(m1);
    cg_module_free(m2);
    cg_tensor *list[] = {x, y, vx, vy};
    for (int i = 0; i < 4; i++) cg_tensor_free(list[i]);
}

/* ---- metrics and losses by hand (an identity model: outputs are the inputs) ----------- */
static cg_status first_col_fn(cg_ctx *ctx, const cg_tensor *out, const cg_tensor *target,
                              void *user, double *sum) {
    (void)target;
    (void)user;
    *sum = cg_item(cg_sum(ctx, cg_select(ctx, out, 1, 0), NULL, 0, false));
    return CG_OK;
}

static cg_tensor *mean_loss(cg_ctx *ctx, const cg_tensor *out, const cg_tensor *target,
                            void *user) {
    (void)target;
    (void)user;
    return cg_mean(ctx, out, NULL, 0, false);
}

static cg_tensor *abs_loss(cg_ctx *ctx, const cg_tensor *out, const cg_tensor *target,
                           void *user) {
    (void)user;
    return cg_mean(ctx, cg_abs(ctx, cg_sub(ctx, out, target)), NULL, 0, false);
}

static void test_fit_metrics_by_hand(void **state) {
    (void)state;
    /* logits of 4 samples over 3 classes; argmax 0, 2, 1, 2; second largest 1, 1, 2, 0 */
    const double lg[] = {3, 2, 1, /**/ 0, 1, 2, /**/ 0, 5, 4, /**/ 2, 0, 9};
    const int64_t ids[] = {0, 1, 1, 0};
    cg_tensor *out = cg_from_array(NULL, CG_F64, CG_SHAPE(4, 3), lg);
    cg_tensor *y = cg_from_array(NULL, CG_I64, CG_SHAPE(4), ids);
    cg_tensor *oh = cg_one_hot(NULL, y, 3, CG_F64);
    cg_module *id = cg_nn_identity();
    cg_metric ms[] = {{.kind = CG_METRIC_ACCURACY},
                      {.kind = CG_METRIC_TOP_K, .k = 2},
                      {.kind = CG_METRIC_USER, .name = "first", .fn = first_col_fn}};
    double r[4];
    /* accuracy 2/4 (rows 0, 2); top-2: rows 0, 1 (1 is second), 2, 3 (0 second): 4/4 */
    assert_int_equal(cg_evaluate(id, &ce, &(cg_fit_data){.x = out, .y = y}, 3, 3, ms, r),
                     CG_OK);
    assert_float_equal(r[1], 0.5, 0);
    assert_float_equal(r[2], 1.0, 0);
    assert_float_equal(r[3], (3.0 + 0 + 0 + 2) / 4, 0);
    double ce_by_hand = 0;
    for (int i = 0; i < 4; i++) {
        double mx = fmax(fmax(lg[3 * i], lg[3 * i + 1]), lg[3 * i + 2]), s = 0;
        for (int c = 0; c < 3; c++) s += exp(lg[3 * i + c] - mx);
        ce_by_hand += mx + log(s) - lg[3 * i + ids[i]];
    }
    assert_float_equal(r[0], ce_by_hand / 4, 1e-12);
    /* one-hot targets: argmax of both; the categorical loss is the same */
    cg_loss cat = {.kind = CG_LOSS_CATEGORICAL};
    assert_int_equal(cg_evaluate(id, &cat, &(cg_fit_data){.x = out, .y = oh}, 4, 2, ms, r),
                     CG_OK);
    assert_float_equal(r[0], ce_by_hand / 4, 1e-12);
    assert_float_equal(r[1], 0.5, 0);
    assert_float_equal(r[2], 1.0, 0);
    /* mse and mae against the one-hot targets, per sample over 3 values */
    cg_metric em[] = {{.kind = CG_METRIC_MSE}, {.kind = CG_METRIC_MAE}};
    cg_loss mse = {.kind = CG_LOSS_MSE}, user = {.kind = CG_LOSS_USER, .fn = abs_loss};
    double se = 0, ae = 0;
    for (int i = 0; i < 12; i++) {
        double d = lg[i] - (ids[i / 3] == i % 3);
        se += d * d;
        ae += fabs(d);
    }
    assert_int_equal(cg_evaluate(id, &mse, &(cg_fit_data){.x = out, .y = oh}, 3, 2, em, r),
                     CG_OK);
    assert_float_equal(r[0], se / 12, 1e-12);
    assert_float_equal(r[1], se / 12, 1e-12);
    assert_float_equal(r[2], ae / 12, 1e-12);
    assert_int_equal(cg_evaluate(id, &user, &(cg_fit_data){.x = out, .y = oh}, 4, 0, NULL, r),
                     CG_OK);
    assert_float_equal(r[0], ae / 12, 1e-12);
    /* BCE with logits against the one-hot targets */
    cg_loss bce = {.kind = CG_LOSS_BCE_WITH_LOGITS};
    double b = 0;
    for (int i = 0; i < 12; i++) {
        double t = ids[i / 3] == i % 3;
        b += fmax(lg[i], 0) - lg[i] * t + log1p(exp(-fabs(lg[i])));
    }
    assert_int_equal(cg_evaluate(id, &bce, &(cg_fit_data){.x = out, .y = oh}, 4, 0, NULL, r),
                     CG_OK);
    assert_float_equal(r[0], b / 12, 1e-12);
    /* sequences: [2, 2, 3] against ids [2, 2], each sample's share of its 2 positions */
    cg_tensor *seq = cg_reshape(NULL, out, CG_SHAPE(2, 2, 3));
    cg_tensor *sy = cg_reshape(NULL, y, CG_SHAPE(2, 2));
    cg_loss any = {.kind = CG_LOSS_USER, .fn = mean_loss};
    assert_int_equal(cg_evaluate(id, &any, &(cg_fit_data){.x = seq, .y = sy}, 1, 1, ms, r),
                     CG_OK);
    assert_float_equal(r[1], 0.5, 0);
    /* shapes a metric cannot read */
    cg_tensor *bad = cg_zeros(NULL, CG_I64, CG_SHAPE(4, 2));
    assert_int_not_equal(
        cg_evaluate(id, &mse, &(cg_fit_data){.x = out, .y = bad}, 4, 0, NULL, r), CG_OK);
    assert_int_equal(strncmp(cg_last_error(), "cg_evaluate: cg_mse_loss: ", 26), 0);
    cg_clear_error();
    assert_int_equal(cg_evaluate(id, &any, &(cg_fit_data){.x = out, .y = bad}, 4, 1, ms, r),
                     CG_ERR_SHAPE);
    assert_error(CG_ERR_SHAPE, "cg_evaluate: metric accuracy: output [4,3] and target [4,2]");
    assert_int_equal(cg_evaluate(id, &any, &(cg_fit_data){.x = out, .y = y}, 4, 1, em, r),
                     CG_ERR_SHAPE);
    assert_error(CG_ERR_SHAPE, "cg_evaluate: metric mse: output [4,3] and target [4] differ");
    cg_tensor *list[] = {out, y, oh, seq, sy, bad};
    for (int i = 0; i < 6; i++) cg_tensor_free(list[i]);
    cg_module_free(id);
}

/* ---- the progress bar
 * ------------------------------------------------------------------------ */
/* A clock that moves step seconds at each reading. */
typedef struct fake_clock {
    double t, step;
} fake_clock;
static double tick(void *user) {
    fake_clock *c = user;
    double t = c->t;
    c->t += c->step;
    return t;
}

/* Keeps the logs the bar saw at each batch end (the callback runs first). */
typedef struct seen_logs {
    double v[64][4];
    int n;
} seen_logs;
static cg_status keep_logs(cg_fit_state *st, void *user) {
    seen_logs *s = user;
    for (int k = 0; k < st->nlogs && k < 4; k++) s->v[s->n][k] = st->logs[k];
    s->n++;
    return CG_OK;
}

/* Keras' value: %.4f, or %.4e at |v| <= 1e-3. */
static const char *kv(char *buf, const char *key, double v) {
    sprintf(buf, fabs(v) > 1e-3 ? " - %s: %.4f" : " - %s: %.4e", key, v);
    return buf;
}

/* 12 samples in 3 batches of 4, 2 epochs, accuracy; output captured. */
static char *bar_run(const cg_progbar_opts *po, bool val, int nm, const cg_metric *ms,
                     cg_history **hist, seen_logs *logs, size_t *len) {
    cg_tensor *x, *y;
    blobs(26, 12, &x, &y);
    cg_module *m = mlp(27);
    cg_optim *o = adam(m, 0.01);
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    cg_progbar_opts p = *po;
    p.out = f;
    cg_callback *cbs[] = {
        cg_lambda_callback_new(&(cg_callback_fns){.on_batch_end = keep_logs}, logs),
        cg_progbar_new(&p)};
    cg_fit_opts fo = cg_fit_defaults();
    fo.epochs = 2;
    fo.batch_size = 4;
    fo.shuffle = false;
    fo.validation = val ? &(cg_fit_data){.x = x, .y = y} : NULL;
    fo.nmetrics = nm;
    fo.metrics = ms;
    fo.ncallbacks = 2;
    fo.callbacks = cbs;
    *hist = cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    assert_non_null(*hist);
    fclose(f);
    cg_callback_free(cbs[0]);
    cg_callback_free(cbs[1]);
    cg_optim_free(o);
    cg_module_free(m);
    cg_tensor_free(x);
    cg_tensor_free(y);
    return buf;
}

static cg_status tiny_fn(cg_ctx *ctx, const cg_tensor *out, const cg_tensor *target, void *user,
                         double *sum) {
    (void)ctx;
    (void)target;
    (void)user;
    *sum = 0.0005 * (double)cg_dim(out, 0);
    return CG_OK;
}

static void test_fit_progbar_non_terminal_one_line_per_epoch(void **state) {
    (void)state;
    fake_clock clk = {0, 0.75};
    cg_metric ms[] = {{.kind = CG_METRIC_ACCURACY},
                      {.kind = CG_METRIC_USER, .name = "tiny", .fn = tiny_fn}};
    cg_history *h;
    seen_logs logs = {0};
    size_t len;
    char *out = bar_run(&(cg_progbar_opts){.tty = CG_TTY_NO, .clock = tick, .clock_user = &clk},
                        true, 2, ms, &h, &logs, &len);
    char want[2048] = "", b[6][64];
    for (int e = 0; e < 2; e++) {
        double *v[6];
        for (int k = 0; k < 6; k++) v[k] = &h->values[k][e];
        sprintf(
            want + strlen(want),
            "Epoch %d/2\n3/3 [==============================] - 1s 250ms/step%s%s%s%s%s%s\n",
            e + 1, kv(b[0], "loss", *v[0]), kv(b[1], "accuracy", *v[1]),
            kv(b[2], "tiny", *v[2]), kv(b[3], "val_loss", *v[3]),
            kv(b[4], "val_accuracy", *v[4]), kv(b[5], "val_tiny", *v[5]));
    }
    assert_string_equal(out, want);
    assert_null(strchr(out, '\r'));
    assert_non_null(strstr(out, " - tiny: 5.0000e-04 - "));
    free(out);
    cg_history_free(h);
}

static void test_fit_progbar_terminal_redraws_in_place(void **state) {
    (void)state;
    /* batch ends at 5, 10, 15 s: ETA 10s, 5s (one column shorter: a space
     * covers it), 0s; the epoch ends at 20 s: 7s a step */
    fake_clock clk = {0, 5};
    cg_history *h;
    seen_logs logs = {0};
    size_t len;
    char *out = bar_run(
        &(cg_progbar_opts){.tty = CG_TTY_YES, .width = 200, .clock = tick, .clock_user = &clk},
        true, 1, accuracy_metric, &h, &logs, &len);
    char want[4096] = "", b[4][64], line[512];
    const char *bars[] = {"1/3 [=========>....................] - ETA: 10s",
                          "2/3 [===================>..........] - ETA: 5s",
                          "3/3 [==============================] - ETA: 0s"};
    for (int e = 0; e < 2; e++) {
        sprintf(want + strlen(want), "Epoch %d/2\n", e + 1);
        int prev = 0; /* spaces cover what a shorter line leaves of the last */
        for (int i = 0; i < 4; i++) {
            const double *v = logs.v[3 * e + i];
            if (i < 3)
                sprintf(line, "%s%s%s", bars[i], kv(b[0], "loss", v[0]),
                        kv(b[1], "accuracy", v[1]));
            else
                sprintf(line, "3/3 [==============================] - 20s 7s/step%s%s%s%s",
                        kv(b[0], "loss", h->values[0][e]),
                        kv(b[1], "accuracy", h->values[1][e]),
                        kv(b[2], "val_loss", h->values[2][e]),
                        kv(b[3], "val_accuracy", h->values[3][e]));
            int n = (int)strlen(line);
            sprintf(want + strlen(want), "\r%s%*s%s", line, prev > n ? prev - n : 0, "",
                    i == 3 ? "\n" : "");
            prev = n;
        }
    }
    assert_non_null(strstr(want, "ETA: 5s - loss")); /* the case meant */
    assert_string_equal(out, want);
    free(out);
    cg_history_free(h);
}

/* Every piece between '\r' and '\n' fits in width - 1 columns. */
static void assert_within(const char *out, int width) {
    int col = 0;
    for (const char *p = out; *p; p++) {
        if (*p == '\r' || *p == '\n')
            col = 0;
        else if (++col > width - 1)
            fail_msg("a line passes %d columns: \"%s\"", width - 1, out);
    }
}

static void test_fit_progbar_fits_60_columns(void **state) {
    (void)state;
    fake_clock clk = {0, 5};
    cg_history *h;
    seen_logs logs = {0};
    size_t len;
    char *out = bar_run(
        &(cg_progbar_opts){.tty = CG_TTY_YES, .width = 60, .clock = tick, .clock_user = &clk},
        true, 1, accuracy_metric, &h, &logs, &len);
    assert_within(out, 60);
    assert_true(h->values[1][1] > 0.01); /* "0.xxxx", not "0.0000e+00" */
    /* the end: "3/3 [" 5 "] - 20s 7s/step - loss - accuracy" is 59 columns:
     * the bar shrank from 30 to 5, the validation values went to a line of
     * their own */
    char want[512], b[4][64];
    sprintf(want, "\r3/3 [=====] - 20s 7s/step%s%s\n%s%s\n", kv(b[0], "loss", h->values[0][1]),
            kv(b[1], "accuracy", h->values[1][1]), kv(b[2], "val_loss", h->values[2][1]),
            kv(b[3], "val_accuracy", h->values[3][1]));
    assert_int_equal(strchr(want, '\n') - want, 1 + 59);
    assert_int_equal(strlen(out) - strlen(want), strstr(out, want) - out); /* at the end */
    for (const char *v = strstr(out, " - val_loss"); v; v = strstr(v + 1, " - val_loss"))
        assert_int_equal(v[-1], '\n'); /* always on a line of its own */
    free(out);
    cg_history_free(h);
    /* 20 columns: the bar and then the times go, the rest is cut */
    clk = (fake_clock){0, 5};
    logs.n = 0;
    out = bar_run(
        &(cg_progbar_opts){.tty = CG_TTY_YES, .width = 20, .clock = tick, .clock_user = &clk},
        false, 1, accuracy_metric, &h, &logs, &len);
    assert_within(out, 20);
    sprintf(want, "\r3/3 - 20s 7s/step\n%s\n%s\n", kv(b[0], "loss", h->values[0][1]),
            kv(b[1], "accuracy", h->values[1][1]));
    assert_int_equal(strlen(out) - strlen(want), strstr(out, want) - out);
    assert_non_null(strstr(out, "\r1/3 - ETA: 10s"));
    free(out);
    cg_history_free(h);
    /* a width given off a terminal applies too */
    clk = (fake_clock){0, 5};
    logs.n = 0;
    out = bar_run(
        &(cg_progbar_opts){.tty = CG_TTY_NO, .width = 60, .clock = tick, .clock_user = &clk},
        true, 1, accuracy_metric, &h, &logs, &len);
    assert_within(out, 60);
    free(out);
    cg_history_free(h);
}

/* Keras' time formats: ETA as s, m:ss, h:mm:ss; per step as us, ms, s. */
static void test_fit_progbar_time_formats(void **state) {
    (void)state;
    struct {
        double step;
        const char *eta, *end;
    } cases[] = {{1000, "ETA: 33:20 ", "- 4000s 1333s/step -"},
                 {3000, "ETA: 1:40:00 ", "- 12000s 4000s/step -"},
                 {0.003, "ETA: 0s ", "- 0s 4ms/step -"},
                 {0.0006, "ETA: 0s ", "- 0s 800us/step -"}};
    for (int i = 0; i < 4; i++) {
        fake_clock clk = {0, cases[i].step};
        cg_history *h;
        seen_logs logs = {0};
        size_t len;
        char *out = bar_run(&(cg_progbar_opts){.tty = CG_TTY_YES,
                                               .width = 300,
                                               .interval = 1e-9,
                                               .clock = tick,
                                               .clock_user = &clk},
                            false, 0, NULL, &h, &logs, &len);
        if (!strstr(out, cases[i].eta) || !strstr(out, cases[i].end))
            fail_msg("case %d: \"%s\" lacks \"%s\" or \"%s\"", i, out, cases[i].eta,
                     cases[i].end);
        free(out);
        cg_history_free(h);
    }
}

/* ---- the CSV log ---------------------------------------------------------------------------
 */
static void test_fit_csv_logger_rows_and_append(void **state) {
    (void)state;
    cg_tensor *x, *y;
    blobs(28, 16, &x, &y);
    cg_module *m = mlp(29);
    cg_optim *o = adam(m, 0.01);
    const char *path = tmp_path("log.csv");
    cg_callback *csv = cg_csv_logger_new(path, false);
    cg_fit_opts fo = cg_fit_defaults();
    fo.epochs = 2;
    fo.batch_size = 8;
    fo.shuffle = false;
    fo.validation = &(cg_fit_data){.x = x, .y = y};
    fo.nmetrics = 1;
    fo.metrics = accuracy_metric;
    fo.ncallbacks = 1;
    fo.callbacks = &csv;
    cg_history *h = cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    assert_non_null(h);
    FILE *f = fopen(path, "r");
    char line[512];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "epoch,accuracy,loss,val_accuracy,val_loss\n");
    const int col[] = {1, 0, 3, 2}; /* sorted column -> history key */
    for (int e = 0; e < 2; e++) {
        assert_non_null(fgets(line, sizeof line, f));
        char *p = line;
        assert_int_equal(strtol(p, &p, 10), e);
        for (int c = 0; c < 4; c++) {
            assert_int_equal(*p++, ',');
            double v = strtod(p, &p);
            assert_memory_equal(&v, &h->values[col[c]][e], sizeof v); /* exact */
        }
        assert_int_equal(*p, '\n');
    }
    assert_null(fgets(line, sizeof line, f));
    fclose(f);
    cg_history_free(h);
    /* append: two more rows, no second header */
    cg_callback_free(csv);
    csv = cg_csv_logger_new(path, true);
    h = cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    f = fopen(path, "r");
    int lines = 0, headers = 0;
    while (fgets(line, sizeof line, f)) lines++, headers += line[0] == 'e';
    fclose(f);
    assert_int_equal(lines, 5);
    assert_int_equal(headers, 1);
    cg_history_free(h);
    /* an unwritable path stops fit before any step, CG_ERR_IO naming it */
    cg_callback_free(csv);
    csv = cg_csv_logger_new("/nonexistent-dir/log.csv", false);
    int64_t steps = cg_optim_steps(o);
    assert_null(cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo));
    assert_error(CG_ERR_IO, "cg_fit: CSVLogger: cannot open \"/nonexistent-dir/log.csv\": No "
                            "such file or directory");
    assert_int_equal(cg_optim_steps(o), steps);
    remove(path);
    cg_callback_free(csv);
    cg_optim_free(o);
    cg_module_free(m);
    cg_tensor_free(x);
    cg_tensor_free(y);
}

/* ---- errors
 * ---------------------------------------------------------------------------------------- */
/* cg_fit fails with st and a message starting "cg_fit: " holding want, and
 * takes no optimizer step. */
static void fit_fails(cg_module *m, cg_optim *o, const cg_loss *l, const cg_fit_data *d,
                      const cg_fit_opts *fo, cg_status st, const char *want) {
    int64_t steps = o ? cg_optim_steps(o) : 0;
    cg_clear_error();
    assert_null(cg_fit(m, o, l, d, fo));
    if (strncmp(cg_last_error(), "cg_fit: ", 8) != 0)
        fail_msg("\"%s\" does not begin with \"cg_fit: \"", cg_last_error());
    assert_error(st, want);
    if (o) assert_int_equal(cg_optim_steps(o), steps);
}

static void test_fit_every_error(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x, *y;
    blobs(30, 12, &x, &y);
    cg_module *m = mlp(31);
    cg_optim *o = adam(m, 0.01);
    cg_rng rng = seeded(1);
    cg_fit_data d = {.x = x, .y = y};
    cg_fit_opts ok = cg_fit_defaults();
    ok.rng = &rng;
    ok.batch_size = 4;
    cg_fit_opts fo = ok;
    fit_fails(NULL, o, &ce, &d, &fo, CG_ERR_ARG, "model is NULL");
    fit_fails(m, NULL, &ce, &d, &fo, CG_ERR_ARG, "optimizer is NULL");
    fit_fails(m, o, NULL, &d, &fo, CG_ERR_ARG, "loss is NULL");
    fit_fails(m, o, &ce, NULL, &fo, CG_ERR_ARG, "train is NULL");
    fit_fails(m, o, &(cg_loss){.kind = CG_LOSS_USER}, &d, &fo, CG_ERR_ARG, "needs fn");
    fit_fails(m, o, &(cg_loss){.kind = (cg_loss_kind)9}, &d, &fo, CG_ERR_ARG,
              "loss kind 9 is not");
    fit_fails(m, o, &ce, &d, &(cg_fit_opts){0}, CG_ERR_ARG, "batch_size must be >= 1");
    fit_fails(m, o, &ce, &d, NULL, CG_ERR_ARG, "shuffle needs an rng");
    fo.epochs = -1;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "epochs must be >= 0 (epochs -1,");
    fo = ok;
    fo.initial_epoch = 2;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "initial_epoch must be in [0, epochs]");
    fo = ok;
    fo.batch_size = 0;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "batch_size must be >= 1");
    const double splits[] = {-0.1, 1.0, NAN, 2};
    for (int i = 0; i < 4; i++) {
        fo = ok;
        fo.validation_split = splits[i];
        fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "validation_split must be in [0, 1)");
    }
    fo = ok;
    fo.validation_split = 0.5;
    fo.validation = &d;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "validation data and validation_split");
    fo = ok;
    fo.validation_batch_size = -1;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "validation_batch_size must be >= 0");
    fo = ok;
    fo.accum_steps = -1; /* 0 is a zeroed struct's: 1 */
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "accum_steps must be >= 1");
    fo = ok;
    fo.clip_grad_norm = -1;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "clip_grad_norm must be >= 0");
    fo.clip_grad_norm = NAN;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "clip_grad_norm must be >= 0");
    fo = ok;
    fo.sched_interval = (cg_sched_interval)5;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "sched_interval is not");
    /* data */
    cg_tensor *y9 = cg_zeros(ctx, CG_I64, CG_SHAPE(9)),
              *none = cg_zeros(ctx, CG_F32, CG_SHAPE(0, IN));
    fit_fails(m, o, &ce, &(cg_fit_data){.x = x, .y = y9}, &ok, CG_ERR_SHAPE,
              "train.x [12,4] and train.y [9] differ in their sample count");
    fit_fails(m, o, &ce, &(cg_fit_data){.x = x}, &ok, CG_ERR_ARG, "train.y is NULL");
    fit_fails(m, o, &ce, &(cg_fit_data){.y = y}, &ok, CG_ERR_ARG, "train.x is NULL");
    fit_fails(m, o, &ce, &(cg_fit_data){.x = none, .y = cg_zeros(ctx, CG_I64, CG_SHAPE(0))},
              &ok, CG_ERR_SHAPE, "train.x [0,4] has no samples");
    fit_fails(m, o, &ce, &(cg_fit_data){.x = cg_scalar(ctx, CG_F32, 1), .y = y}, &ok,
              CG_ERR_SHAPE, "needs a sample dim");
    fit_fails(m, o, &ce, &(cg_fit_data){.x = x, .y = y, .steps = 3}, &ok, CG_ERR_ARG,
              "train.steps 3 is for a batch function");
    fit_fails(m, o, &ce, &(cg_fit_data){.x = x, .y = y, .fn = slice_fn, .steps = 1}, &ok,
              CG_ERR_ARG, "train has both tensors and a batch function");
    fo = ok;
    cg_tensor *x5 = cg_zeros(ctx, CG_F32, CG_SHAPE(12, 5)), *y64 = cg_cast(ctx, y, CG_F64);
    fo.validation = &(cg_fit_data){.x = x5, .y = y};
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_SHAPE,
              "validation.x f32 [12,5] does not hold train.x's samples (f32 [12,4])");
    fo.validation = &(cg_fit_data){.x = x, .y = y64};
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_SHAPE,
              "validation.y f64 [12] does not hold train.y's samples (i64 [12])");
    fo.validation = &(cg_fit_data){.x = x, .y = y9};
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_SHAPE, "validation.x [12,4] and validation.y [9]");
    /* a stale tensor */
    cg_ctx *dead = cg_ctx_new();
    cg_tensor *gone = cg_zeros(dead, CG_F32, CG_SHAPE(12, IN));
    cg_ctx_reset(dead);
    fit_fails(m, o, &ce, &(cg_fit_data){.x = gone, .y = y}, &ok, CG_ERR_STATE, "train.x");
    cg_ctx_free(dead);
    /* metrics */
    const struct {
        cg_metric m;
        const char *want;
    } bad[] = {
        {{.kind = (cg_metric_kind)7}, "metric 0: kind 7 is not a cg_metric_kind"},
        {{.kind = CG_METRIC_TOP_K}, "metric 0: top-k needs k >= 1 (got 0)"},
        {{.kind = CG_METRIC_USER, .name = "u"}, "CG_METRIC_USER needs fn and a name"},
        {{.kind = CG_METRIC_USER, .fn = first_col_fn}, "CG_METRIC_USER needs fn and a name"},
        {{.kind = CG_METRIC_MSE, .name = "loss"}, "name \"loss\" is not"},
        {{.kind = CG_METRIC_MSE, .name = "val_mse"}, "name \"val_mse\" is not"},
        {{.kind = CG_METRIC_MSE, .name = "a,b"}, "name \"a,b\" is not"},
        {{.kind = CG_METRIC_MSE, .name = ""}, "name \"\" is not"},
        {{.kind = CG_METRIC_ACCURACY, .name = "mse"}, "metrics 0 and 1 are both \"mse\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cg_metric two[] = {bad[i].m, {.kind = CG_METRIC_MSE}};
        fo = ok;
        fo.nmetrics = 2;
        fo.metrics = two;
        fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, bad[i].want);
    }
    fo = ok;
    fo.nmetrics = -1;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "nmetrics -1 must be >= 0");
    fo.nmetrics = 1;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "metrics is NULL");
    /* callbacks */
    cg_callback *cb = cg_lambda_callback_new(&(cg_callback_fns){0}, NULL);
    cg_callback *twice[] = {cb, cb}, *hole[] = {cb, NULL};
    fo = ok;
    fo.ncallbacks = 2;
    fo.callbacks = twice;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "callbacks[1] is callbacks[0] again");
    fo.callbacks = hole;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "callbacks[1] is NULL");
    fo.callbacks = NULL;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "callbacks is NULL");
    fo.ncallbacks = -2;
    fit_fails(m, o, &ce, &d, &fo, CG_ERR_ARG, "ncallbacks -2 must be >= 0");
    cg_callback_free(cb);
    /* failures while training: a loss that cannot read the targets, a user loss */
    cg_tensor *yf = cg_cast(ctx, y, CG_F32);
    fit_fails(m, o, &ce, &(cg_fit_data){.x = x, .y = yf}, &ok, CG_ERR_DTYPE,
              "cg_fit: cg_cross_entropy");
    fit_fails(m, o, &(cg_loss){.kind = CG_LOSS_USER, .fn = abs_loss}, &d, &ok, CG_ERR_SHAPE,
              "cg_fit: cg_sub");
    cg_tensor_free(x);
    cg_tensor_free(y);
    cg_optim_free(o);
    cg_module_free(m);
}

static void test_fit_callback_constructors_refuse_bad_arguments(void **state) {
    (void)state;
    assert_null(cg_csv_logger_new(NULL, false));
    assert_error(CG_ERR_ARG, "cg_csv_logger_new: path is NULL");
    assert_null(cg_model_checkpoint_new(NULL, "loss", CG_MONITOR_AUTO, true));
    assert_error(CG_ERR_ARG, "cg_model_checkpoint_new: path is NULL");
    assert_null(cg_model_checkpoint_new("x", NULL, CG_MONITOR_AUTO, true));
    assert_error(CG_ERR_ARG, "cg_model_checkpoint_new: monitor is NULL");
    assert_null(cg_model_checkpoint_new("x", "loss", (cg_monitor_mode)3, true));
    assert_error(CG_ERR_ARG, "cg_model_checkpoint_new: mode 3 is not a cg_monitor_mode");
    assert_null(cg_early_stopping_new("loss", CG_MONITOR_MIN, -1, 0, false));
    assert_error(CG_ERR_ARG, "cg_early_stopping_new: patience -1 and min_delta 0");
    assert_null(cg_early_stopping_new("loss", CG_MONITOR_MIN, 1, NAN, false));
    assert_error(CG_ERR_ARG, "cg_early_stopping_new: patience 1 and min_delta nan");
    assert_null(cg_early_stopping_new(NULL, CG_MONITOR_MIN, 1, 0, false));
    assert_error(CG_ERR_ARG, "cg_early_stopping_new: monitor is NULL");
    assert_null(cg_lambda_callback_new(NULL, NULL));
    assert_error(CG_ERR_ARG, "cg_lambda_callback_new: fns is NULL");
    assert_null(cg_progbar_new(&(cg_progbar_opts){.width = -1}));
    assert_error(CG_ERR_ARG, "cg_progbar_new: width -1");
    assert_null(cg_progbar_new(&(cg_progbar_opts){.interval = NAN}));
    assert_error(CG_ERR_ARG, "cg_progbar_new: width 0 and interval nan");
    assert_null(cg_progbar_new(&(cg_progbar_opts){.tty = (cg_tty)3}));
    assert_error(CG_ERR_ARG, "tty a cg_tty (got 3)");
    cg_callback *p = cg_progbar_new(NULL);
    assert_non_null(p);
    cg_callback_free(p);
    cg_callback_free(NULL);
    cg_history_free(NULL);
    assert_null(cg_history_get(NULL, "loss"));
    assert_error(CG_ERR_ARG, "cg_history_get: history is NULL");
}

static void test_fit_evaluate_and_predict_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x, *y;
    blobs(32, 12, &x, &y);
    cg_module *m = mlp(33);
    cg_fit_data d = {.x = x, .y = y};
    double r[2];
    assert_int_equal(cg_evaluate(NULL, &ce, &d, 4, 0, NULL, r), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_evaluate: model is NULL");
    assert_int_equal(cg_evaluate(m, NULL, &d, 4, 0, NULL, r), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_evaluate: loss is NULL");
    assert_int_equal(cg_evaluate(m, &ce, NULL, 4, 0, NULL, r), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_evaluate: data is NULL");
    assert_int_equal(cg_evaluate(m, &ce, &d, 0, 0, NULL, r), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_evaluate: batch_size 0 must be >= 1");
    assert_int_equal(cg_evaluate(m, &ce, &d, 4, 1, NULL, r), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_evaluate: metrics is NULL");
    assert_int_equal(cg_evaluate(m, &ce, &d, 4, 0, NULL, NULL), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_evaluate: results is NULL");
    r[0] = 42;
    assert_int_equal(cg_evaluate(m, &ce, &(cg_fit_data){.x = x, .y = cg_cast(ctx, y, CG_F32)},
                                 4, 0, NULL, r),
                     CG_ERR_DTYPE);
    assert_error(CG_ERR_DTYPE, "cg_evaluate: cg_cross_entropy");
    assert_float_equal(r[0], 42, 0); /* untouched */
    assert_null(cg_predict(NULL, &d, 4));
    assert_error(CG_ERR_ARG, "cg_predict: model is NULL");
    assert_null(cg_predict(m, NULL, 4));
    assert_error(CG_ERR_ARG, "cg_predict: data is NULL");
    assert_null(cg_predict(m, &d, 0));
    assert_error(CG_ERR_ARG, "cg_predict: batch_size 0 must be >= 1");
    assert_null(cg_predict(m, &(cg_fit_data){.x = cg_zeros(ctx, CG_F32, CG_SHAPE(3, 5))}, 2));
    assert_error(CG_ERR_SHAPE, "cg_predict: cg_module_forward: ");
    cg_tensor_free(x);
    cg_tensor_free(y);
    cg_module_free(m);
}

static int dir_setup(void **state) {
    snprintf(dir_, sizeof dir_, "/tmp/cg_fit.XXXXXX");
    if (!mkdtemp(dir_)) return -1;
    return ctx_setup(state);
}
static int dir_teardown(void **state) {
    rmdir(dir_);
    return ctx_teardown(state);
}

/* The chart callback rewrites its SVG after every epoch: a loss and an
 * accuracy panel, train and validation; an unwritable path stops cg_fit. */
static void test_fit_chart_logger_writes_each_epoch(void **state) {
    (void)state;
    cg_tensor *x, *y;
    blobs(40, 16, &x, &y);
    cg_module *m = mlp(41);
    cg_optim *o = adam(m, 0.01);
    const char *path = tmp_path("run.svg");
    cg_callback *chart = cg_chart_logger_new(path, "mlp on blobs");
    cg_fit_opts fo = cg_fit_defaults();
    fo.epochs = 2;
    fo.batch_size = 8;
    fo.shuffle = false;
    fo.validation_split = 0.25;
    fo.nmetrics = 1;
    fo.metrics = accuracy_metric;
    fo.ncallbacks = 1;
    fo.callbacks = &chart;
    cg_history *h = cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo);
    assert_non_null(h);
    long n = 0;
    unsigned char *svg = slurp(path, &n);
    assert_non_null(svg);
    char *text = calloc((size_t)n + 1, 1);
    memcpy(text, svg, (size_t)n);
    assert_non_null(strstr(text, "<svg"));
    assert_non_null(strstr(text, "mlp on blobs"));
    assert_non_null(strstr(text, ">loss<"));
    assert_non_null(strstr(text, ">accuracy<"));
    assert_non_null(strstr(text, ">val_accuracy<"));
    free(text), free(svg);
    remove(path);
    cg_history_free(h);
    cg_callback_free(chart);
    chart = cg_chart_logger_new("/nonexistent-dir/run.svg", NULL);
    assert_null(cg_fit(m, o, &ce, &(cg_fit_data){.x = x, .y = y}, &fo));
    assert_int_equal(cg_last_status(), CG_ERR_IO);
    assert_non_null(strstr(cg_last_error(), "cg_fit: ChartLogger: cg_chart_svg"));
    cg_callback_free(chart);
    cg_optim_free(o);
    cg_module_free(m);
    cg_tensor_free(x);
    cg_tensor_free(y);
}

/* What cg_fit prints on stdout with opts's verbose, captured. */
static void fit_stdout(cg_module *m, cg_optim *o, const cg_fit_data *d, const cg_fit_opts *fo,
                       char *out, size_t size) {
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    dup2(fileno(tmp), STDOUT_FILENO);
    cg_history *h = cg_fit(m, o, &ce, d, fo);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_non_null(h);
    cg_history_free(h);
    rewind(tmp);
    size_t n = fread(out, 1, size - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
}

/* Keras' verbose=1 by default: a bar on stdout when no callback is one;
 * verbose 0, or a bar of the caller's, and cg_fit itself prints nothing. */
static void test_fit_verbose_prints_a_bar_by_default(void **state) {
    (void)state;
    cg_tensor *x, *y;
    blobs(43, 16, &x, &y);
    cg_module *m = mlp(44);
    cg_optim *o = adam(m, 0.01);
    cg_fit_data d = {.x = x, .y = y};
    cg_fit_opts fo = cg_fit_defaults();
    fo.shuffle = false;
    char out[4096];
    fit_stdout(m, o, &d, &fo, out, sizeof out);
    assert_non_null(strstr(out, "Epoch 1/1"));
    assert_non_null(strstr(out, "loss: "));
    fo.verbose = 0;
    fit_stdout(m, o, &d, &fo, out, sizeof out);
    assert_string_equal(out, "");
    char theirs[4096] = "";
    FILE *f = fmemopen(theirs, sizeof theirs, "w");
    cg_callback *bar = cg_progbar_new(&(cg_progbar_opts){.out = f, .tty = CG_TTY_NO});
    fo.verbose = 1;
    fo.ncallbacks = 1;
    fo.callbacks = &bar;
    fit_stdout(m, o, &d, &fo, out, sizeof out);
    fclose(f);
    assert_string_equal(out, ""); /* the caller's bar, not a second one */
    assert_non_null(strstr(theirs, "Epoch 1/1"));
    cg_callback_free(bar);
    cg_optim_free(o);
    cg_module_free(m);
    cg_tensor_free(x);
    cg_tensor_free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_matches_hand_loop_with_shuffle_and_validation),
        cmocka_unit_test(test_fit_validation_split_is_the_last_fraction),
        cmocka_unit_test(test_fit_accumulation_and_clipping_match_hand_loop),
        cmocka_unit_test(test_fit_schedule_per_batch_and_per_epoch),
        cmocka_unit_test(test_fit_early_stopping_patience_and_restore),
        cmocka_unit_test(test_fit_checkpoint_saves_the_best_epoch_only),
        cmocka_unit_test(test_fit_user_callback_stops_training),
        cmocka_unit_test(test_fit_trains_then_evaluates_and_restores_the_mode),
        cmocka_unit_test_setup_teardown(test_fit_evaluate_and_predict_values, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test(test_fit_batch_function_as_data),
        cmocka_unit_test(test_fit_metrics_by_hand),
        cmocka_unit_test(test_fit_progbar_non_terminal_one_line_per_epoch),
        cmocka_unit_test(test_fit_progbar_terminal_redraws_in_place),
        cmocka_unit_test(test_fit_progbar_fits_60_columns),
        cmocka_unit_test(test_fit_progbar_time_formats),
        cmocka_unit_test(test_fit_csv_logger_rows_and_append),
        cmocka_unit_test(test_fit_chart_logger_writes_each_epoch),
        cmocka_unit_test(test_fit_verbose_prints_a_bar_by_default),
        cmocka_unit_test_setup_teardown(test_fit_every_error, ctx_setup, ctx_teardown),
        cmocka_unit_test(test_fit_callback_constructors_refuse_bad_arguments),
        cmocka_unit_test_setup_teardown(test_fit_evaluate_and_predict_errors, ctx_setup,
                                        ctx_teardown),
    };
    return cmocka_run_group_tests_name("fit", tests, dir_setup, dir_teardown);
}
