/* Convolutional networks on Fashion-MNIST, as a PyTorch user writes them
 * with nn.Sequential:
 *   lenet5 (default): LeNet-5, conv5x5 1->6 pad 2, relu, maxpool 2, conv5x5 6->16,
 *     relu, maxpool 2, flatten, 400-120-84-10 with relu; Adam 1e-3, batch 64,
 *     the lr annealed to 0 over the epochs by a cosine schedule.
 *   cnn: ggml's MNIST CNN, conv3x3 1->8 pad 1, relu, maxpool 2, conv3x3 8->16
 *     pad 1, relu, maxpool 2, flatten, linear 784->10; AdamW 1e-3, batch 1000
 *     as 2 accumulated halves of 500 (bench_train's configuration (f)).
 * Pixels are standardised with Fashion-MNIST's mean 0.2860 and std 0.3530.
 * Trained by cg_fit, validated on the test set after each epoch, with
 * Keras' progress bar, a CSV log and an SVG chart (its callbacks).
 * State names are PyTorch's ("0.weight", "3.weight", "7.weight", ...), so a
 * checkpoint loads into the same nn.Sequential with strict=True
 * (bench/torch_checkpoint.py CHECKPOINT OUT --normalize 0.2860,0.3530).
 *
 *   lenet5 [--model lenet5|cnn] [--epochs 15] [--batch N] [--lr 1e-3] [--seed 42]
 *          [--threads N] [--save FILE] [--load FILE] [--data DIR]
 *          [--csv build/lenet5.csv] [--svg build/lenet5.svg] [--weight-decay X (AdamW)]
 * --help lists the flags.
 * Build: cc lenet5.c $(pkg-config --cflags --libs cgrad) */
#include "fashion_common.h"

typedef struct args {
    const char *model, *save, *load, *data, *csv, *svg;
    int epochs, threads, accum;
    int64_t batch;
    double lr, weight_decay;
    uint64_t seed;
} args;

/* ---- the two models ---------------------------------------------------------- */
static cg_module *conv(cg_rng *rng, int64_t in, int64_t out, int64_t k, int64_t pad) {
    cg_conv_opts o = cg_conv_defaults();
    o.padding[0] = o.padding[1] = pad;
    return cg_nn_conv2d(rng, CG_F32, in, out, k, k, &o, true);
}

static cg_module *pool2(void) {
    cg_pool_opts o = cg_pool_defaults(2, 2);
    return cg_nn_maxpool2d(&o);
}

static cg_module *relu(void) { return cg_nn_activation(CG_ACT_RELU); }

static cg_module *lenet5(cg_rng *rng) {
    cg_module *layers[] = {conv(rng, 1, 6, 5, 2),
                           relu(),
                           pool2(),
                           conv(rng, 6, 16, 5, 0),
                           relu(),
                           pool2(),
                           cg_nn_flatten(1, -1),
                           cg_nn_linear(rng, CG_F32, 400, 120, true),
                           relu(),
                           cg_nn_linear(rng, CG_F32, 120, 84, true),
                           relu(),
                           cg_nn_linear(rng, CG_F32, 84, 10, true)};
    return cg_nn_sequential(12, layers);
}

static cg_module *mnist_cnn(cg_rng *rng) {
    cg_module *layers[] = {conv(rng, 1, 8, 3, 1),
                           relu(),
                           pool2(),
                           conv(rng, 8, 16, 3, 1),
                           relu(),
                           pool2(),
                           cg_nn_flatten(1, -1),
                           cg_nn_linear(rng, CG_F32, 784, 10, true)};
    return cg_nn_sequential(8, layers);
}

/* ---- command line ------------------------------------------------------------- */
static const char *const usage_lines[] = {
    "  --model NAME       lenet5 (LeNet-5, Adam) or cnn (ggml's MNIST CNN, AdamW) (lenet5)",
    "  --epochs N         passes over the 60,000 training images, 0 to 100 (15)",
    "  --batch N          images per batch (64; cnn: 500, a step every 2 batches)",
    "  --lr X             peak learning rate, annealed to 0 by a cosine schedule (1e-3)",
    "  --weight-decay X   AdamW's weight decay; > 0 makes lenet5 use AdamW (cnn: 1e-2)",
    "  --seed N           seed of the rng: init and shuffling (42)",
    "  --threads N        threads for BLIS and cgrad's kernels (default: all)",
    "  --save FILE        checkpoint at the end: model, optimizer, schedule, rng (none)",
    "  --load FILE        resume from a checkpoint, or a model's state_dict",
    "  --data DIR         Fashion-MNIST's IDX files (/usr/share/datasets/fashion-mnist)",
    "  --csv FILE         per-epoch log: losses and accuracies (build/lenet5.csv)",
    "  --svg FILE         chart of the losses and accuracies (build/lenet5.svg)",
    "  --help             this list",
    NULL,
};

/* 0 to run, 1 for --help, -1 for bad flags. */
static int parse_args(int argc, char **argv, args *a) {
    *a = (args){.model = "lenet5",
                .data = "/usr/share/datasets/fashion-mnist",
                .csv = OUTPUT_DIR "/lenet5.csv",
                .svg = OUTPUT_DIR "/lenet5.svg",
                .epochs = 15,
                .lr = 1e-3,
                .seed = 42};
    const example_flag flags[] = {
        flag_str("--model", &a->model), flag_int("--epochs", &a->epochs),
        flag_i64("--batch", &a->batch), flag_real("--lr", &a->lr),
        flag_u64("--seed", &a->seed),   flag_int("--threads", &a->threads),
        flag_str("--save", &a->save),   flag_str("--load", &a->load),
        flag_str("--data", &a->data),   flag_str("--csv", &a->csv),
        flag_str("--svg", &a->svg),     flag_real("--weight-decay", &a->weight_decay)};
    int p = parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]));
    if (p) return p;
    bool cnn = !strcmp(a->model, "cnn");
    if (!cnn && strcmp(a->model, "lenet5")) return -1;
    if (a->batch == 0) a->batch = cnn ? 500 : 64; /* the cnn steps every 2 batches */
    a->accum = cnn ? 2 : 1;
    return a->epochs >= 0 && a->epochs <= 100 && a->batch >= 1 ? 0 : -1;
}

/* ---- main ---------------------------------------------------------------------- */
static int run(const args *a, cg_tensor *const data[4]) {
    cg_rng rng;
    cg_rng_seed(&rng, a->seed);
    bool cnn = !strcmp(a->model, "cnn");
    cg_module *model = cnn ? mnist_cnn(&rng) : lenet5(&rng);
    bool decay = cnn || a->weight_decay > 0; /* AdamW, else Adam */
    cg_adam_opts ao = decay ? cg_adamw_defaults(a->lr) : cg_adam_defaults(a->lr);
    if (a->weight_decay > 0) ao.weight_decay = a->weight_decay;
    cg_optim *opt = !model ? NULL : decay ? cg_adamw_new(model, &ao) : cg_adam_new(model, &ao);
    cg_sched *sched = opt && a->epochs > 0 ? cg_cosinelr_new(opt, a->epochs, 0) : NULL;
    char title[160];
    snprintf(title, sizeof title,
             "%s, %s %g cosine, batch %lld%s, seed %llu; validation: the test set",
             cnn ? "ggml's MNIST CNN" : "LeNet-5", decay ? "adamw" : "adam", a->lr,
             (long long)a->batch, a->accum > 1 ? " x 2" : "", (unsigned long long)a->seed);
    cg_callback *cbs[3] = {cg_progbar_new(NULL), cg_csv_logger_new(a->csv, false),
                           cg_chart_logger_new(a->svg, title)};
    cg_loss ce = {.kind = CG_LOSS_CROSS_ENTROPY};
    cg_metric acc = {.kind = CG_METRIC_ACCURACY};
    cg_fit_data test = {.x = data[2], .y = data[3]};
    double results[2]; /* test loss, accuracy */
    int rc = opt && (sched || a->epochs == 0) && cbs[0] && cbs[1] && cbs[2] ? 0 : -1;
    if (rc == 0) cg_module_print(model);
    if (rc == 0 && a->load) rc = load(a->load, model, opt, sched, &rng);
    cg_history *h = rc ? NULL
                       : cg_fit(model, opt, &ce, &(cg_fit_data){.x = data[0], .y = data[1]},
                                &(cg_fit_opts){.epochs = a->epochs,
                                               .batch_size = a->batch,
                                               .shuffle = true,
                                               .rng = &rng,
                                               .validation = &test,
                                               .validation_batch_size = 1000,
                                               .accum_steps = a->accum,
                                               .sched = sched,
                                               .nmetrics = 1,
                                               .metrics = &acc,
                                               .ncallbacks = 3,
                                               .callbacks = cbs});
    if (!h || cg_evaluate(model, &ce, &test, 1000, 1, &acc, results) != CG_OK) rc = -1;
    if (rc == 0)
        printf("test accuracy: %.4f (%d epochs, %lld parameters)\n", results[1], h->epochs,
               (long long)cg_module_numel(model));
    if (rc == 0 && a->save && cg_save(a->save, model, opt, sched, &rng) != CG_OK) rc = -1;
    if (rc != 0) fprintf(stderr, "lenet5: %s\n", cg_last_error());
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
            fprintf(stderr, "lenet5: a flag is unknown, lacks its value or is out of range\n");
        print_usage(p > 0 ? stdout : stderr, argv[0], usage_lines);
        return p > 0 ? 0 : 2;
    }
    /* before the data and the training, so that a long run cannot fail at its end */
    if (check_output("lenet5", "--csv", a.csv) || check_output("lenet5", "--svg", a.svg) ||
        check_output("lenet5", "--save", a.save))
        return 1;
    if (a.threads > 0) cg_set_num_threads(a.threads);
    cg_tensor *data[4] = {NULL, NULL, NULL, NULL}; /* train x, y; test x, y */
    const int64_t sample[] = {1, 28, 28};
    int rc = load_split("lenet5", a.data, "train", 3, sample, &data[0], &data[1]);
    if (rc == 0) rc = load_split("lenet5", a.data, "t10k", 3, sample, &data[2], &data[3]);
    for (int i = 0; rc == 0 && i < 4; i += 2) rc = cg_normalize_(data[i], 0.2860, 0.3530);
    if (rc == 0) rc = run(&a, data);
    for (int i = 0; i < 4; i++) cg_tensor_free(data[i]);
    return rc == 0 ? 0 : 1;
}
