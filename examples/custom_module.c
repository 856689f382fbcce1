/* Your own layers, written outside the library on its public headers: a
 * pre-norm residual MLP block and a classifier built from it, as module
 * kinds. Trained on Fashion-MNIST with AdamW over two parameter groups (no
 * weight decay on biases and norm weights), a linear warm-up then cosine
 * schedule stepped per batch, and gradient clipping; the checkpoint holds the
 * model, the optimizer, the schedule and the rng, so a run stopped and
 * resumed from it ends bitwise where an uninterrupted one does.
 *
 *   custom_module [--epochs 4] [--stop-after E] [--batch 64] [--lr 2e-3] [--width 128]
 *                 [--blocks 2] [--seed 42] [--threads N] [--save FILE] [--load FILE]
 *                 [--data DIR | --synthetic N] [--check] [--help]
 *
 * --stop-after E ends (and saves) after epoch E of the --epochs plan; a run
 * with --load continues from the epoch the checkpoint ended.
 *
 * --synthetic N trains on N generated 784-pixel images instead (10 noisy
 * class prototypes, no download). --check proves the resume: it trains in
 * three processes (all epochs; half of them, then save; a fresh process with
 * another seed that loads and finishes) and exits 1 unless the first and
 * the last checkpoints are the same bytes. `make test` runs
 * `--check --synthetic 640 --epochs 4`.
 * Build: cc custom_module.c $(pkg-config --cflags --libs cgrad) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgrad.h"
#include "example_common.h" /* --help's list and the check of --save's path */

/* ---- the residual block: x + Dropout(fc2(GELU(fc1(LayerNorm(x))))) ---------- */
static cg_tensor *block_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    cg_tensor *h = cg_module_forward(ctx, cg_module_find_child(m, "norm"), x);   /* [B, D] */
    h = cg_gelu(ctx, cg_module_forward(ctx, cg_module_find_child(m, "fc1"), h)); /* [B, 4D] */
    h = cg_module_forward(ctx, cg_module_find_child(m, "fc2"), h);               /* [B, D] */
    return cg_add(ctx, x, cg_module_forward(ctx, cg_module_find_child(m, "drop"), h));
}

static const cg_module_kind block_kind = {"ResidualBlock", block_forward, NULL, NULL};

static cg_module *block_new(cg_rng *rng, int64_t dim, double dropout) {
    cg_module *m = cg_module_new(&block_kind, NULL);
    cg_module_add_child(m, "norm", cg_nn_layernorm(CG_F32, dim, 1e-5));
    cg_module_add_child(m, "fc1", cg_nn_linear(rng, CG_F32, dim, 4 * dim, true));
    cg_module_add_child(m, "fc2", cg_nn_linear(rng, CG_F32, 4 * dim, dim, true));
    cg_module_add_child(m, "drop", cg_nn_dropout(dropout, rng));
    return cg_module_nchildren(m) == 4 ? m : (cg_module_free(m), NULL);
}

/* ---- the classifier: embed, N blocks, a final norm, the head ----------------- */
static cg_tensor *classifier_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    cg_tensor *h = cg_module_forward(ctx, cg_module_find_child(m, "embed"), x); /* [B, D] */
    cg_module *blocks = cg_module_find_child(m, "blocks");
    for (int i = 0; i < cg_module_nchildren(blocks); i++)
        h = cg_module_forward(ctx, cg_module_child(blocks, i, NULL), h);
    h = cg_module_forward(ctx, cg_module_find_child(m, "norm"), h);
    return cg_module_forward(ctx, cg_module_find_child(m, "head"), h); /* [B, 10] */
}

static const cg_module_kind classifier_kind = {"Classifier", classifier_forward, NULL, NULL};

static cg_module *classifier_new(cg_rng *rng, int64_t width, int nblocks) {
    cg_module *m = cg_module_new(&classifier_kind, NULL);
    cg_module_add_child(m, "embed", cg_nn_linear(rng, CG_F32, 784, width, true));
    cg_module *blocks = cg_module_add_child(m, "blocks", cg_nn_module_list(0, NULL));
    for (int i = 0; blocks && i < nblocks; i++)
        cg_module_add_child(blocks, NULL, block_new(rng, width, 0.1));
    cg_module_add_child(m, "norm", cg_nn_layernorm(CG_F32, width, 1e-5));
    cg_module_add_child(m, "head", cg_nn_linear(rng, CG_F32, width, 10, true));
    bool ok = cg_module_nchildren(m) == 4 && cg_module_nchildren(blocks) == nblocks;
    return ok ? m : (cg_module_free(m), NULL);
}

/* ---- AdamW with no decay on biases and norm weights (the 1-D parameters) ---- */
static cg_optim *optimizer_new(cg_module *m, double lr) {
    int n = cg_module_nparams(m), nd = 0, nn = 0;
    cg_tensor **decay = malloc(sizeof *decay * (size_t)n);
    cg_tensor **plain = malloc(sizeof *plain * (size_t)n);
    for (int i = 0; decay && plain && i < n; i++) {
        cg_tensor *p = cg_module_param(m, i, NULL);
        if (cg_ndim(p) >= 2)
            decay[nd++] = p;
        else
            plain[nn++] = p;
    }
    cg_adam_opts with = cg_adamw_defaults(lr), without = with;
    with.weight_decay = 0.05;
    without.weight_decay = 0;
    cg_param_group groups[] = {{nd, decay, &with}, {nn, plain, &without}};
    cg_optim *o = decay && plain ? cg_adamw_new_groups(2, groups, &with) : NULL;
    free(decay);
    free(plain);
    return o;
}

/* Linear warm-up over the first tenth of the steps, then cosine to zero. */
static cg_sched *schedule_new(cg_optim *o, int total) {
    int warm = total / 10 > 0 ? total / 10 : 1;
    cg_sched *parts[] = {cg_warmuplr_new(o, 0.1, warm), cg_cosinelr_new(o, total - warm, 0)};
    return cg_sequentiallr_new(o, 2, parts, (const int[]){warm});
}

/* ---- data ---------------------------------------------------------------------- */
typedef struct args {
    int epochs, stop, nblocks, threads; /* stop: save and end after this epoch */
    int64_t batch, width, synthetic;
    double lr;
    uint64_t seed;
    const char *save, *load, *data;
    bool check;
} args;

/* Fashion-MNIST's images [N, 784] f32 in [0, 1] and labels [N] i64. */
static int load_split(const char *dir, const char *prefix, cg_tensor **x, cg_tensor **y) {
    char ipath[512], lpath[512];
    snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    cg_tensor *img = cg_idx_load(ipath, CG_F32, 1.0 / 255.0);
    *y = img ? cg_idx_load(lpath, CG_I64, 1.0) : NULL;
    *x = *y ? cg_reshape(NULL, img, 2, (const int64_t[]){cg_dim(img, 0), 784}) : NULL;
    cg_tensor_free(img);
    if (!*x)
        fprintf(stderr,
                "custom_module: %s (apt-get install dataset-fashion-mnist, "
                "or --synthetic N)\n",
                cg_last_error());
    return *x ? 0 : -1;
}

/* n images around 10 prototypes (the same for every split): pixel =
 * prototype + N(0, 0.3), labels and noise drawn from seed. */
static int synthesize(int64_t n, uint64_t seed, cg_tensor **x, cg_tensor **y) {
    cg_rng protos_rng, rng;
    cg_rng_seed(&protos_rng, 7);
    cg_rng_seed(&rng, seed);
    cg_ctx *ctx = cg_ctx_new();
    cg_tensor *protos = cg_rand(ctx, &protos_rng, CG_F32, CG_SHAPE(10, 784), 0, 1);
    cg_tensor *labels =
        cg_argmax(ctx, cg_rand(ctx, &rng, CG_F32, CG_SHAPE(n, 10), 0, 1), 1, false);
    cg_tensor *img = cg_add(ctx, cg_index_select(ctx, protos, 0, labels),
                            cg_randn(ctx, &rng, CG_F32, CG_SHAPE(n, 784), 0, 0.3));
    *x = cg_clone(NULL, img);
    *y = cg_clone(NULL, labels);
    cg_ctx_free(ctx);
    return *x && *y ? 0 : -1;
}

/* ---- training ---------------------------------------------------------------------- */
typedef struct run {
    cg_module *model;
    cg_optim *opt;
    cg_sched *sched;
    cg_batcher *batches;
    cg_ctx *ctx;
    cg_rng rng;
} run;

static void run_free(run *r) {
    cg_ctx_free(r->ctx);
    cg_batcher_free(r->batches);
    cg_sched_free(r->sched);
    cg_optim_free(r->opt);
    cg_module_free(r->model);
}

static int run_init(run *r, const args *a, const cg_tensor *x, const cg_tensor *y) {
    *r = (run){0};
    cg_rng_seed(&r->rng, a->seed);
    r->model = classifier_new(&r->rng, a->width, a->nblocks);
    r->batches = cg_batcher_new(x, y, a->batch, true, true, &r->rng);
    int total = (int)(a->epochs * cg_batcher_nbatches(r->batches));
    r->opt = r->model && r->batches ? optimizer_new(r->model, a->lr) : NULL;
    r->sched = r->opt ? schedule_new(r->opt, total) : NULL;
    r->ctx = cg_ctx_new();
    return r->sched && r->ctx ? 0 : -1;
}

/* One epoch; the mean loss and accuracy over it in *loss, *acc. */
static int train_epoch(run *r, double *loss, double *acc) {
    cg_tensor *xb, *yb;
    double sum = 0, hits = 0, seen = 0, norm;
    cg_module_train(r->model, true);
    while (cg_batcher_next(r->batches, &xb, &yb)) {
        cg_optim_zero_grad(r->opt);
        cg_tensor *logits = cg_module_forward(r->ctx, r->model, xb);
        cg_tensor *l = cg_cross_entropy(r->ctx, logits, yb, CG_MEAN);
        if (!l || cg_backward(l) || cg_clip_grad_norm_(r->model, 1.0, &norm) ||
            cg_optim_step(r->opt) || cg_sched_step(r->sched))
            return -1;
        cg_tensor *hit = cg_eq(r->ctx, cg_argmax(r->ctx, logits, 1, false), yb);
        hits += cg_item(cg_sum(r->ctx, hit, NULL, 0, false));
        sum += cg_item(l) * (double)cg_dim(xb, 0);
        seen += (double)cg_dim(xb, 0);
        cg_ctx_reset(r->ctx);
    }
    *loss = sum / seen;
    *acc = hits / seen;
    return 0;
}

/* Accuracy on x, y by cg_module_predict (eval mode, no graph), 1000 at a time. */
static double evaluate(run *r, const cg_tensor *x, const cg_tensor *y) {
    double hits = 0;
    for (int64_t s = 0; s < cg_dim(x, 0); s += 1000) {
        int64_t len = cg_dim(x, 0) - s < 1000 ? cg_dim(x, 0) - s : 1000;
        cg_tensor *logits =
            cg_module_predict(r->ctx, r->model, cg_narrow(r->ctx, x, 0, s, len));
        cg_tensor *hit =
            cg_eq(r->ctx, cg_argmax(r->ctx, logits, 1, false), cg_narrow(r->ctx, y, 0, s, len));
        hits += cg_item(cg_sum(r->ctx, hit, NULL, 0, false));
        cg_ctx_reset(r->ctx);
    }
    return hits / (double)cg_dim(x, 0);
}

/* train x, y and test x, y into data: Fashion-MNIST, or generated. */
static int load_data(const args *a, cg_tensor *data[4]) {
    int rc = a->synthetic ? synthesize(a->synthetic, 7, &data[0], &data[1])
                          : load_split(a->data, "train", &data[0], &data[1]);
    if (rc == 0)
        rc = a->synthetic ? synthesize(a->synthetic / 4 + 1, 8, &data[2], &data[3])
                          : load_split(a->data, "t10k", &data[2], &data[3]);
    return rc;
}

/* Trains up to a->epochs (from a loaded checkpoint's step, if any). */
static int train_on(const args *a, cg_tensor *const data[4]) {
    run r;
    int rc = run_init(&r, a, data[0], data[1]);
    if (rc == 0 && a->load) rc = cg_load(a->load, r.model, r.opt, r.sched, &r.rng) ? -1 : 0;
    int64_t per_epoch = cg_batcher_nbatches(r.batches);
    int end = a->stop > 0 && a->stop < a->epochs ? a->stop : a->epochs;
    for (int e = rc ? end : (int)(cg_optim_steps(r.opt) / per_epoch); e < end; e++) {
        double loss, acc;
        if ((rc = train_epoch(&r, &loss, &acc)) != 0) break;
        printf("epoch %d/%d: loss %.4f, acc %.4f, lr %.2e, val_acc %.4f\n", e + 1, a->epochs,
               loss, acc, cg_sched_lr(r.sched), evaluate(&r, data[2], data[3]));
    }
    if (rc == 0 && a->save) rc = cg_save(a->save, r.model, r.opt, r.sched, &r.rng) ? -1 : 0;
    if (rc != 0) fprintf(stderr, "custom_module: %s\n", cg_last_error());
    run_free(&r);
    return rc;
}

static int train(const args *a) {
    cg_tensor *data[4] = {NULL, NULL, NULL, NULL};
    int rc = load_data(a, data);
    if (rc == 0) rc = train_on(a, data);
    for (int i = 0; i < 4; i++) cg_tensor_free(data[i]);
    return rc;
}

/* ---- --check: stop, resume in another process, compare --------------------------- */
/* Runs train(a) in a child process; 0 when it succeeded. The parent runs
 * no cgrad kernel before it forks: OpenMP's threads do not survive a fork. */
static int in_child(const args *a) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = train(a);
        fflush(stdout);
        _exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
                   WEXITSTATUS(status) == 0
               ? 0
               : -1;
}

static int same_bytes(const char *p, const char *q) {
    FILE *f = fopen(p, "rb"), *g = fopen(q, "rb");
    int a = 0, b = 0, same = f && g;
    while (same && (a = getc(f)) != EOF) same = (b = getc(g)) == a;
    same = same && getc(g) == EOF;
    if (f) fclose(f);
    if (g) fclose(g);
    return same;
}

static int check(const args *a) {
    char dir[] = "/tmp/custom_module.XXXXXX", full[64], half[64], resumed[64];
    if (!mkdtemp(dir)) return -1;
    snprintf(full, sizeof full, "%s/full.safetensors", dir);
    snprintf(half, sizeof half, "%s/half.safetensors", dir);
    snprintf(resumed, sizeof resumed, "%s/resumed.safetensors", dir);
    args all = *a, first = *a, second = *a;
    all.save = full;
    first.stop = a->epochs / 2; /* the same plan (schedule), stopped half way */
    first.save = half;
    second.load = half;
    second.save = resumed;
    second.seed = a->seed + 1; /* everything it needs must come from the file */
    printf("-- %d epochs in one process\n", a->epochs);
    int rc = in_child(&all);
    printf("-- %d of %d epochs, save; then a new process loads and finishes\n", first.stop,
           a->epochs);
    if (rc == 0) rc = in_child(&first);
    if (rc == 0) rc = in_child(&second);
    bool same = rc == 0 && same_bytes(full, resumed);
    printf("resumed run %s the uninterrupted one\n",
           same ? "is bitwise identical to" : "DIFFERS from");
    remove(full), remove(half), remove(resumed), rmdir(dir);
    return same ? 0 : -1;
}

/* ---- main ----------------------------------------------------------------------------- */
static const char *const usage_lines[] = {
    "  --epochs N         epochs of the plan (the schedule's length), at least 1 (4)",
    "  --stop-after E     save and end after epoch E of the plan (0: run it all)",
    "  --batch N          images per step (64)",
    "  --lr X             peak learning rate of AdamW (2e-3)",
    "  --width N          width of the residual stream (128)",
    "  --blocks N         residual blocks (2)",
    "  --seed N           seed of the rng: init, shuffling, dropout (42)",
    "  --threads N        threads for BLIS and cgrad's kernels (default: all)",
    "  --save FILE        checkpoint at the end: model, optimizer, schedule, rng (none)",
    "  --load FILE        resume from a checkpoint saved by --save",
    "  --data DIR         Fashion-MNIST's IDX files (/usr/share/datasets/fashion-mnist)",
    "  --synthetic N      train on N generated images instead of --data",
    "  --check            prove the resume in three processes (needs --epochs >= 2)",
    "  --help             this list",
    NULL,
};

/* 0 to run, 1 for --help, -1 for bad flags. */
static int parse_args(int argc, char **argv, args *a) {
    *a = (args){.epochs = 4,
                .nblocks = 2,
                .batch = 64,
                .width = 128,
                .lr = 2e-3,
                .seed = 42,
                .data = "/usr/share/datasets/fashion-mnist"};
    const example_flag flags[] = {flag_int("--epochs", &a->epochs),
                                  flag_i64("--batch", &a->batch),
                                  flag_real("--lr", &a->lr),
                                  flag_i64("--width", &a->width),
                                  flag_int("--blocks", &a->nblocks),
                                  flag_u64("--seed", &a->seed),
                                  flag_int("--threads", &a->threads),
                                  flag_str("--save", &a->save),
                                  flag_str("--load", &a->load),
                                  flag_str("--data", &a->data),
                                  flag_i64("--synthetic", &a->synthetic),
                                  flag_int("--stop-after", &a->stop),
                                  flag_switch("--check", &a->check)};
    int p = parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]));
    if (p) return p;
    return a->epochs >= 1 && a->batch >= 1 && a->width >= 1 && a->nblocks >= 0 &&
                   (!a->check || a->epochs >= 2)
               ? 0
               : -1;
}

int main(int argc, char **argv) {
    args a;
    int p = parse_args(argc, argv, &a);
    if (p != 0) {
        if (p < 0)
            fprintf(stderr,
                    "custom_module: a flag is unknown, lacks its value or is out of range\n");
        print_usage(p > 0 ? stdout : stderr, argv[0], usage_lines);
        return p > 0 ? 0 : 2;
    }
    if (check_output("custom_module", "--save", a.save)) return 1; /* before training */
    if (a.threads > 0) cg_set_num_threads(a.threads);
    if (a.check) return check(&a) == 0 ? 0 : 1;
    cg_rng rng;
    cg_rng_seed(&rng, a.seed);
    cg_module *m = classifier_new(&rng, a.width, a.nblocks);
    cg_module_print(m);
    cg_module_free(m);
    int rc = train(&a);
    return rc == 0 ? 0 : 1;
}
