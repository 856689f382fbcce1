/* Fashion-MNIST with a multilayer perceptron, the way a first PyTorch or
 * Keras model is written: 784-128-10 with relu, softmax cross-entropy, Adam
 * at 1e-3, batch 32, 10 epochs, evaluated on the 10,000 test images after
 * each epoch. Data: Debian's dataset-fashion-mnist (IDX files).
 *
 *   fashion_mlp [--epochs 10] [--batch 32] [--lr 1e-3] [--hidden 128]
 *               [--optimizer adam|adamw|sgd] [--seed 42] [--threads N]
 *               [--save FILE] [--load FILE] [--data DIR]
 *               [--csv fashion_mlp.csv] [--svg fashion_mlp.svg]
 *
 * The deeper classic: --hidden 512,512 --optimizer sgd --batch 128.
 * Build: cc fashion_mlp.c $(pkg-config --cflags --libs cgrad) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgrad.h"

#define MAX_LAYERS 8

typedef struct args {
    int epochs, nhidden, threads;
    int64_t batch, hidden[MAX_LAYERS];
    double lr;
    const char *optimizer, *save, *load, *data, *csv, *svg;
    uint64_t seed;
} args;

typedef struct history { /* per epoch, for the CSV and the chart */
    double loss[100], acc[100], val_loss[100], val_acc[100], seconds[100];
    int n;
} history;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- command line ---------------------------------------------------------- */
static int parse_hidden(const char *s, args *a) {
    a->nhidden = 0;
    for (char *end; *s && a->nhidden < MAX_LAYERS; s = *end ? end + 1 : end) {
        a->hidden[a->nhidden++] = strtoll(s, &end, 10);
        if (a->hidden[a->nhidden - 1] < 1 || (*end && *end != ',')) return -1;
    }
    return a->nhidden > 0 ? 0 : -1;
}

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
                "fashion_mlp.csv",
                "fashion_mlp.svg",
                42};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--epochs"))
            a->epochs = atoi(v);
        else if (!strcmp(k, "--batch"))
            a->batch = atoll(v);
        else if (!strcmp(k, "--lr"))
            a->lr = atof(v);
        else if (!strcmp(k, "--hidden")) {
            if (parse_hidden(v, a)) return -1;
        } else if (!strcmp(k, "--optimizer"))
            a->optimizer = v;
        else if (!strcmp(k, "--seed"))
            a->seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--threads"))
            a->threads = atoi(v);
        else if (!strcmp(k, "--save"))
            a->save = v;
        else if (!strcmp(k, "--load"))
            a->load = v;
        else if (!strcmp(k, "--data"))
            a->data = v;
        else if (!strcmp(k, "--csv"))
            a->csv = v;
        else if (!strcmp(k, "--svg"))
            a->svg = v;
        else
            return -1;
    }
    if (argc % 2 == 0 || a->epochs < 0 || a->epochs > 100 || a->batch < 1) return -1;
    if (a->lr < 0) a->lr = strcmp(a->optimizer, "sgd") ? 1e-3 : 0.1;
    return 0;
}

/* ---- data ------------------------------------------------------------------- */
/* images [N, 784] f32 in [0, 1] and labels [N] i64 from DIR/PREFIX-*-ubyte.gz */
static int load_split(const char *dir, const char *prefix, cg_tensor **x, cg_tensor **y) {
    char ipath[512], lpath[512];
    snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    cg_tensor *img = cg_idx_load(ipath, CG_F32, 1.0 / 255.0);
    *y = img ? cg_idx_load(lpath, CG_I64, 1.0) : NULL;
    if (!img || !*y) {
        fprintf(stderr, "fashion_mlp: %s\n", cg_last_error());
        fprintf(stderr, "fashion_mlp: looked for %s and %s\n", ipath, lpath);
        fprintf(stderr, "fashion_mlp: get the data with: apt-get install dataset-fashion-mnist"
                        " (or pass --data DIR)\n");
        cg_tensor_free(img);
        return -1;
    }
    *x = cg_reshape(NULL, img, 2, (const int64_t[]){cg_dim(img, 0), 784});
    cg_tensor_free(img);
    return *x && cg_dim(*x, 0) == cg_dim(*y, 0) ? 0 : -1;
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
    cg_adam_opts o =
        strcmp(a->optimizer, "adamw") ? cg_adam_defaults(a->lr) : cg_adamw_defaults(a->lr);
    if (!strcmp(a->optimizer, "adam")) return cg_adam_new(m, &o);
    if (!strcmp(a->optimizer, "adamw")) return cg_adamw_new(m, &o);
    fprintf(stderr, "fashion_mlp: unknown optimizer %s (sgd, adam, adamw)\n", a->optimizer);
    return NULL;
}

/* ---- one epoch ----------------------------------------------------------------- */
/* The number of rows of logits [B, 10] whose argmax is the label. */
static double correct(cg_ctx *ctx, const cg_tensor *logits, const cg_tensor *y) {
    cg_no_grad_push(ctx);
    cg_tensor *hit = cg_eq(ctx, cg_argmax(ctx, logits, 1, false), y);
    double n = cg_item(cg_sum(ctx, hit, NULL, 0, false));
    cg_no_grad_pop(ctx);
    return n;
}

/* Keras' bar: "1875/1875 [=====...] 0.9s - loss: 0.4967 - acc: 0.8253". */
static void progress(int64_t done, int64_t total, double secs, double loss, double acc,
                     bool end) {
    char bar[31];
    int fill = (int)(30 * done / total);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : '.');
    bar[30] = '\0';
    printf("\r%lld/%lld [%s] %.1fs - loss: %.4f - acc: %.4f", (long long)done, (long long)total,
           bar, secs, loss, acc);
    if (!end) fflush(stdout);
}

static int train_epoch(cg_ctx *ctx, cg_module *m, cg_optim *opt, cg_batcher *b, history *h) {
    bool tty = isatty(STDOUT_FILENO);
    int64_t nb = cg_batcher_nbatches(b), i = 0, seen = 0;
    double loss_sum = 0, hits = 0, t0 = now();
    cg_tensor *xb, *yb;
    cg_module_train(m, true);
    while (cg_batcher_next(b, &xb, &yb)) {
        cg_optim_zero_grad(opt);
        cg_tensor *logits = cg_module_forward(ctx, m, xb);
        cg_tensor *loss = cg_cross_entropy(ctx, logits, yb, CG_MEAN);
        if (!loss || cg_backward(loss) != CG_OK || cg_optim_step(opt) != CG_OK) return -1;
        loss_sum += cg_item(loss) * (double)cg_dim(xb, 0);
        hits += correct(ctx, logits, yb);
        seen += cg_dim(xb, 0);
        cg_ctx_reset(ctx);
        if (tty && (++i % 50 == 0 || i == nb))
            progress(i, nb, now() - t0, loss_sum / (double)seen, hits / (double)seen, false);
    }
    h->loss[h->n] = loss_sum / (double)seen;
    h->acc[h->n] = hits / (double)seen;
    h->seconds[h->n] = now() - t0;
    if (!tty) progress(nb, nb, h->seconds[h->n], h->loss[h->n], h->acc[h->n], true);
    return 0;
}

/* Mean loss and accuracy over x, y in chunks of 1000, without a graph. */
static int evaluate(cg_ctx *ctx, cg_module *m, const cg_tensor *x, const cg_tensor *y,
                    double *loss, double *acc) {
    int64_t n = cg_dim(x, 0);
    double l = 0, hits = 0;
    cg_module_train(m, false);
    cg_no_grad_push(ctx);
    for (int64_t s = 0; s < n; s += 1000) {
        int64_t len = n - s < 1000 ? n - s : 1000;
        cg_tensor *yb = cg_narrow(ctx, y, 0, s, len);
        cg_tensor *logits = cg_module_forward(ctx, m, cg_narrow(ctx, x, 0, s, len));
        cg_tensor *lb = cg_cross_entropy(ctx, logits, yb, CG_SUM);
        if (!lb) return -1;
        l += cg_item(lb);
        hits += correct(ctx, logits, yb);
        cg_ctx_reset(ctx); /* frees the chunk's tensors; grad mode stays off */
    }
    cg_no_grad_pop(ctx);
    *loss = l / (double)n;
    *acc = hits / (double)n;
    return 0;
}

/* ---- outputs: CSV and an SVG chart (SVG is text: no plotting library) -------- */
static void write_csv(const char *path, const history *h) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "epoch,loss,acc,val_loss,val_acc,seconds\n");
    for (int e = 0; e < h->n; e++)
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.3f\n", e + 1, h->loss[e], h->acc[e],
                h->val_loss[e], h->val_acc[e], h->seconds[e]);
    fclose(f);
}

/* One panel at (x0, 20), 360 x 240: train (blue) and val (orange) curves. */
static void svg_panel(FILE *f, int x0, const char *title, const double *tr, const double *va,
                      int n) {
    double lo = tr[0], hi = tr[0];
    for (int e = 0; e < n; e++) {
        lo = tr[e] < lo ? tr[e] : lo, hi = tr[e] > hi ? tr[e] : hi;
        lo = va[e] < lo ? va[e] : lo, hi = va[e] > hi ? va[e] : hi;
    }
    if (hi - lo < 1e-9) hi = lo + 1;
    fprintf(f,
            "<rect x='%d' y='20' width='360' height='240' fill='none' stroke='#888'/>\n"
            "<text x='%d' y='14' font-size='13'>%s (%.3f to %.3f)</text>\n",
            x0, x0, title, lo, hi);
    const double *curves[2] = {tr, va};
    const char *colours[2] = {"#1f77b4", "#ff7f0e"};
    for (int c = 0; c < 2; c++) {
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='", colours[c]);
        for (int e = 0; e < n; e++)
            fprintf(f, "%.1f,%.1f ", x0 + 360.0 * (n > 1 ? (double)e / (n - 1) : 0.5),
                    20 + 240 * (1 - (curves[c][e] - lo) / (hi - lo)));
        fprintf(f, "'/>\n");
    }
}

static void write_svg(const char *path, const history *h) {
    FILE *f = fopen(path, "w");
    if (!f || h->n == 0) {
        if (f) fclose(f);
        return;
    }
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='780' height='300' "
               "font-family='sans-serif'>\n<rect width='780' height='300' fill='white'/>\n");
    svg_panel(f, 10, "loss", h->loss, h->val_loss, h->n);
    svg_panel(f, 410, "accuracy", h->acc, h->val_acc, h->n);
    fprintf(f,
            "<text x='10' y='290' font-size='12' fill='#1f77b4'>train</text>"
            "<text x='60' y='290' font-size='12' fill='#ff7f0e'>validation (test set)</text>"
            "<text x='400' y='290' font-size='12'>epochs 1..%d</text>\n</svg>\n",
            h->n);
    fclose(f);
}

/* A file saved by --save resumes model, optimizer and rng; a plain state_dict
 * (from PyTorch, say) has only the model. */
static int load(const char *path, cg_module *m, cg_optim *opt, cg_rng *rng) {
    if (cg_load(path, m, opt, NULL, rng) == CG_OK) return 0;
    if (cg_last_status() != CG_ERR_ARG || cg_load(path, m, NULL, NULL, NULL) != CG_OK)
        return -1;
    printf("loaded the model from %s (it holds no optimizer state)\n", path);
    return 0;
}

/* ---- main ------------------------------------------------------------------------ */
static int run(const args *a, cg_tensor *const data[4]) {
    cg_rng rng;
    cg_rng_seed(&rng, a->seed);
    cg_module *model = build_model(a, &rng);
    cg_optim *opt = model ? build_optimizer(a, model) : NULL;
    cg_batcher *batches = cg_batcher_new(data[0], data[1], a->batch, true, false, &rng);
    cg_ctx *ctx = cg_ctx_new();
    static history h;
    int rc = model && opt && batches && ctx ? 0 : -1;
    if (rc == 0 && a->load) rc = load(a->load, model, opt, &rng);
    for (int e = 0; rc == 0 && e < a->epochs; e++, h.n++) {
        printf("Epoch %d/%d\n", e + 1, a->epochs);
        rc = train_epoch(ctx, model, opt, batches, &h);
        if (rc == 0)
            rc = evaluate(ctx, model, data[2], data[3], &h.val_loss[h.n], &h.val_acc[h.n]);
        if (rc == 0)
            printf(" - val_loss: %.4f - val_acc: %.4f\n", h.val_loss[h.n], h.val_acc[h.n]);
    }
    double vl = 0, va = 0;
    if (rc == 0 && h.n == 0) rc = evaluate(ctx, model, data[2], data[3], &vl, &va);
    if (rc == 0) {
        printf("test accuracy: %.4f (%d epochs, %lld parameters)\n",
               h.n ? h.val_acc[h.n - 1] : va, h.n, (long long)cg_module_numel(model));
        write_csv(a->csv, &h);
        write_svg(a->svg, &h);
    }
    if (rc == 0 && a->save && cg_save(a->save, model, opt, NULL, &rng) != CG_OK) rc = -1;
    if (rc != 0) fprintf(stderr, "fashion_mlp: %s\n", cg_last_error());
    cg_ctx_free(ctx);
    cg_batcher_free(batches);
    cg_optim_free(opt);
    cg_module_free(model);
    return rc;
}

int main(int argc, char **argv) {
    args a;
    if (parse_args(argc, argv, &a) != 0) {
        fprintf(stderr,
                "usage: %s [--epochs N] [--batch N] [--lr X] [--hidden 512,512] "
                "[--optimizer sgd|adam|adamw] [--seed N] [--threads N] [--save FILE] "
                "[--load FILE] [--data DIR] [--csv FILE] [--svg FILE]\n",
                argv[0]);
        return 2;
    }
    if (a.threads > 0) cg_set_num_threads(a.threads);
    cg_tensor *data[4] = {NULL, NULL, NULL, NULL}; /* train x, y; test x, y */
    int rc = load_split(a.data, "train", &data[0], &data[1]);
    if (rc == 0) rc = load_split(a.data, "t10k", &data[2], &data[3]);
    if (rc == 0) rc = run(&a, data);
    for (int i = 0; i < 4; i++) cg_tensor_free(data[i]);
    return rc == 0 ? 0 : 1;
}
