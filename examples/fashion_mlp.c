/* Fashion-MNIST with a multilayer perceptron, Keras' model.fit in C:
 * 784-128-10 with relu, softmax cross-entropy, Adam at a peak lr of 2e-3
 * under a one-cycle schedule stepped per batch, batch 32, 10 epochs,
 * validated on the 10,000 test images after each epoch, with Keras'
 * progress bar, a CSV log and an SVG chart (cg_fit and its callbacks).
 * Data: Debian's dataset-fashion-mnist (IDX files).
 *
 *   fashion_mlp [--epochs 10] [--batch 32] [--lr 2e-3] [--hidden 128]
 *               [--optimizer adam|adamw|sgd] [--seed 42] [--threads N]
 *               [--save FILE] [--load FILE] [--data DIR]
 *               [--csv build/fashion_mlp.csv] [--svg build/fashion_mlp.svg]
 *
 * --help lists the flags. The deeper classic: --hidden 512,512 --optimizer
 * sgd --batch 128.
 * Build: cc fashion_mlp.c $(pkg-config --cflags --libs cgrad) */
#include "fashion_common.h"

#define MAX_LAYERS 8

typedef struct args {
    int epochs, nhidden, threads;
    int64_t batch, hidden[MAX_LAYERS];
    double lr;
    const char *optimizer, *save, *load, *data, *csv, *svg;
    uint64_t seed;
} args;

/* ---- command line ---------------------------------------------------------- */
static const char *const usage_lines[] = {
    "  --epochs N         passes over the 60,000 training images, 0 to 100 (10)",
    "  --batch N          images per step (32)",
    "  --lr X             peak learning rate of the one-cycle schedule (2e-3; 0.3 for sgd)",
    "  --hidden N,N,...   hidden layer widths, at most 8 layers (128)",
    "  --optimizer NAME   adam, adamw or sgd (adam)",
    "  --seed N           seed of the rng: init and shuffling (42)",
    "  --threads N        threads for BLIS and cgrad's kernels (default: all)",
    "  --save FILE        checkpoint at the end: model, optimizer, rng (none)",
    "  --load FILE        start from a checkpoint (the schedule anew), or a model's state_dict",
    "  --data DIR         Fashion-MNIST's IDX files (/usr/share/datasets/fashion-mnist)",
    "  --csv FILE         per-epoch log: losses and accuracies (build/fashion_mlp.csv)",
    "  --svg FILE         chart of the losses and accuracies (build/fashion_mlp.svg)",
    "  --help             this list",
    NULL,
};

static int parse_hidden(const char *s, args *a) {
    a->nhidden = 0;
    for (char *end; *s && a->nhidden < MAX_LAYERS; s = *end ? end + 1 : end) {
        a->hidden[a->nhidden++] = strtoll(s, &end, 10);
        if (a->hidden[a->nhidden - 1] < 1 || (*end && *end != ',')) return -1;
    }
    return a->nhidden > 0 ? 0 : -1;
}

/* 0 to run, 1 for --help, -1 for bad flags. */
static int parse_args(int argc, char **argv, args *a) {
    *a = (args){10,
                1,
                0,
                32,
                {128},
                -1,
                "adam",
                NULL,
                NULL,
                "/usr/share/datasets/fashion-mnist",
                OUTPUT_DIR "/fashion_mlp.csv",
                OUTPUT_DIR "/fashion_mlp.svg",
                42};
    const char *hidden = NULL;
    const example_flag flags[] = {flag_int("--epochs", &a->epochs),
                                  flag_i64("--batch", &a->batch),
                                  flag_real("--lr", &a->lr),
                                  flag_str("--hidden", &hidden),
                                  flag_str("--optimizer", &a->optimizer),
                                  flag_u64("--seed", &a->seed),
                                  flag_int("--threads", &a->threads),
                                  flag_str("--save", &a->save),
                                  flag_str("--load", &a->load),
                                  flag_str("--data", &a->data),
                                  flag_str("--csv", &a->csv),
                                  flag_str("--svg", &a->svg)};
    int p = parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]));
    if (p) return p;
    if (hidden && parse_hidden(hidden, a)) return -1;
    if (a->epochs < 0 || a->epochs > 100 || a->batch < 1) return -1;
    if (strcmp(a->optimizer, "adam") && strcmp(a->optimizer, "adamw") &&
        strcmp(a->optimizer, "sgd"))
        return -1;
    if (a->lr < 0) a->lr = strcmp(a->optimizer, "sgd") ? 2e-3 : 0.3;
    return 0;
}

/* ---- model and optimizer ----------------------------------------------------- */
static cg_module *build_model(const args *a, cg_rng *rng) {
    int64_t sizes[MAX_LAYERS + 2] = {784};
    for (int i = 0; i < a->nhidden; i++) sizes[i + 1] = a->hidden[i];
    sizes[a->nhidden + 1] = 10;
    return cg_nn_mlp(rng, CG_F32, a->nhidden + 2, sizes, CG_ACT_RELU);
}

static cg_optim *build_optimizer(const args *a, cg_module *m) {
    if (!strcmp(a->optimizer, "sgd")) {
        cg_sgd_opts o = cg_sgd_defaults(a->lr);
        return cg_sgd_new(m, &o);
    }
    bool w = !strcmp(a->optimizer, "adamw"); /* parse_args allows adam or adamw here */
    cg_adam_opts o = w ? cg_adamw_defaults(a->lr) : cg_adam_defaults(a->lr);
    return w ? cg_adamw_new(m, &o) : cg_adam_new(m, &o);
}

/* The chart's title: "784-128-10 relu, adam 0.002 one-cycle, batch 32, seed 42;
 * validation: the test set". */
static void describe(const args *a, char *s, size_t size) {
    int n = snprintf(s, size, "784");
    for (int i = 0; i < a->nhidden && n > 0 && (size_t)n < size; i++)
        n += snprintf(s + n, size - (size_t)n, "-%lld", (long long)a->hidden[i]);
    if (n > 0 && (size_t)n < size)
        snprintf(s + n, size - (size_t)n,
                 "-10 relu, %s %g one-cycle, batch %lld, seed %llu; validation: the test set",
                 a->optimizer, a->lr, (long long)a->batch, (unsigned long long)a->seed);
}

/* ---- main ------------------------------------------------------------------------ */
static int run(const args *a, cg_tensor *const data[4]) {
    cg_rng rng;
    cg_rng_seed(&rng, a->seed);
    cg_module *model = build_model(a, &rng);
    cg_optim *opt = model ? build_optimizer(a, model) : NULL;
    int rc = opt ? 0 : -1;
    if (rc == 0 && a->load) rc = load(a->load, model, opt, NULL, &rng);
    /* OneCycle, stepped at every batch: the lr up from lr/10 to lr over the
     * first tenth of the steps, then down to lr/1e5 along half a cosine */
    int steps = a->epochs * (int)((cg_dim(data[0], 0) + a->batch - 1) / a->batch);
    cg_onecycle_opts oc = {.max_lr = a->lr,
                           .total_steps = steps,
                           .pct_start = 0.1,
                           .div_factor = 10,
                           .final_div_factor = 1e4};
    cg_sched *sched = rc == 0 && steps > 0 ? cg_onecyclelr_new(opt, &oc) : NULL;
    char title[160];
    describe(a, title, sizeof title);
    cg_callback *cbs[3] = {cg_progbar_new(NULL), cg_csv_logger_new(a->csv, false),
                           cg_chart_logger_new(a->svg, title)};
    cg_loss ce = {.kind = CG_LOSS_CROSS_ENTROPY};
    cg_metric acc = {.kind = CG_METRIC_ACCURACY};
    cg_fit_data test = {.x = data[2], .y = data[3]};
    double results[2]; /* test loss, accuracy */
    if (!(sched || steps == 0) || !cbs[0] || !cbs[1] || !cbs[2]) rc = -1;
    cg_history *h = rc ? NULL
                       : cg_fit(model, opt, &ce, &(cg_fit_data){.x = data[0], .y = data[1]},
                                &(cg_fit_opts){.epochs = a->epochs,
                                               .batch_size = a->batch,
                                               .shuffle = true,
                                               .rng = &rng,
                                               .validation = &test,
                                               .validation_batch_size = 1000,
                                               .accum_steps = 1,
                                               .sched = sched,
                                               .sched_interval = CG_SCHED_BATCH,
                                               .nmetrics = 1,
                                               .metrics = &acc,
                                               .ncallbacks = 3,
                                               .callbacks = cbs});
    if (!h || cg_evaluate(model, &ce, &test, 1000, 1, &acc, results) != CG_OK) rc = -1;
    if (rc == 0)
        printf("test accuracy: %.4f (%d epochs, %lld parameters)\n", results[1], h->epochs,
               (long long)cg_module_numel(model));
    if (rc == 0 && a->save && cg_save(a->save, model, opt, NULL, &rng) != CG_OK) rc = -1;
    if (rc != 0) fprintf(stderr, "fashion_mlp: %s\n", cg_last_error());
    cg_history_free(h);
    for (int i = 0; i < 3; i++) cg_callback_free(cbs[i]);
    cg_sched_free(sched);
    cg_optim_free(opt);
    cg_module_free(model);
    return rc;
}

int main(int argc, char **argv) {
    args a;
    int p = parse_args(argc, argv, &a);
    if (p != 0) {
        if (p < 0)
            fprintf(stderr,
                    "fashion_mlp: a flag is unknown, lacks its value or is out of range\n");
        print_usage(p > 0 ? stdout : stderr, argv[0], usage_lines);
        return p > 0 ? 0 : 2;
    }
    /* before the data and the training, so that a long run cannot fail at its end */
    if (check_output("fashion_mlp", "--csv", a.csv) ||
        check_output("fashion_mlp", "--svg", a.svg) ||
        check_output("fashion_mlp", "--save", a.save))
        return 1;
    if (a.threads > 0) cg_set_num_threads(a.threads);
    cg_tensor *data[4] = {NULL, NULL, NULL, NULL}; /* train x, y; test x, y */
    const int64_t sample[] = {784};
    int rc = load_split("fashion_mlp", a.data, "train", 1, sample, &data[0], &data[1]);
    if (rc == 0) rc = load_split("fashion_mlp", a.data, "t10k", 1, sample, &data[2], &data[3]);
    if (rc == 0) rc = run(&a, data);
    for (int i = 0; i < 4; i++) cg_tensor_free(data[i]);
    return rc == 0 ? 0 : 1;
}
