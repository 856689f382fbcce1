/* What the Fashion-MNIST examples (fashion_mlp.c, lenet5.c) share: reading
 * the data, one epoch of training with Keras' progress bar, evaluation,
 * and the per-epoch CSV and SVG chart (the clock, the bar and the chart
 * panel are example_common.h's). Each function is static inline: include this file
 * in one program. Public cgrad headers only. */
#ifndef FASHION_COMMON_H
#define FASHION_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgrad.h"
#include "example_common.h"

typedef struct history { /* per epoch, for the CSV and the chart */
    double loss[100], acc[100], val_loss[100], val_acc[100], seconds[100];
    int n;
} history;

/* ---- data ------------------------------------------------------------------- */
/* images [N, sample...] f32 in [0, 1] (sample: [784] for an MLP, [1, 28, 28]
 * for a CNN) and labels [N] i64, from DIR/PREFIX-*-ubyte.gz; prog names the
 * program in messages. */
static inline int load_split(const char *prog, const char *dir, const char *prefix, int ndim,
                      const int64_t *sample, cg_tensor **x, cg_tensor **y) {
    char ipath[512], lpath[512];
    snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    cg_tensor *img = cg_idx_load(ipath, CG_F32, 1.0 / 255.0);
    *y = img ? cg_idx_load(lpath, CG_I64, 1.0) : NULL;
    if (!img || !*y) {
        fprintf(stderr, "%s: %s\n", prog, cg_last_error());
        fprintf(stderr, "%s: looked for %s and %s\n", prog, ipath, lpath);
        fprintf(stderr,
                "%s: get the data with: apt-get install dataset-fashion-mnist"
                " (or pass --data DIR)\n",
                prog);
        cg_tensor_free(img);
        return -1;
    }
    int64_t shape[CG_MAX_DIMS] = {cg_dim(img, 0)};
    for (int i = 0; i < ndim && i + 1 < CG_MAX_DIMS; i++) shape[i + 1] = sample[i];
    *x = cg_reshape(NULL, img, ndim + 1, shape);
    cg_tensor_free(img);
    return *x && cg_dim(*x, 0) == cg_dim(*y, 0) ? 0 : -1;
}

/* ---- one epoch ----------------------------------------------------------------- */
/* The number of rows of logits [B, 10] whose argmax is the label. */
static inline double correct(cg_ctx *ctx, const cg_tensor *logits, const cg_tensor *y) {
    cg_no_grad_push(ctx);
    cg_tensor *hit = cg_eq(ctx, cg_argmax(ctx, logits, 1, false), y);
    double n = cg_item(cg_sum(ctx, hit, NULL, 0, false));
    cg_no_grad_pop(ctx);
    return n;
}

/* Keras' bar: "1875/1875 [=====...] 0.9s - loss: 0.4967 - acc: 0.8253". */
static inline void progress(int64_t done, int64_t total, double secs, double loss, double acc,
                     bool end) {
    char metrics[64];
    snprintf(metrics, sizeof metrics, " - loss: %.4f - acc: %.4f", loss, acc);
    progress_bar((long long)done, (long long)total, secs, metrics, end);
}

/* One epoch; an optimizer step every `accum` batches, each batch's mean loss
 * divided by accum so the step sees the mean over all of them. */
static inline int train_epoch(cg_ctx *ctx, cg_module *m, cg_optim *opt, cg_batcher *b, int accum,
                       history *h) {
    bool tty = isatty(STDOUT_FILENO);
    int64_t nb = cg_batcher_nbatches(b), i = 0, seen = 0;
    double loss_sum = 0, hits = 0, t0 = now();
    cg_tensor *xb, *yb;
    cg_module_train(m, true);
    while (cg_batcher_next(b, &xb, &yb)) {
        if (i % accum == 0) cg_optim_zero_grad(opt);
        cg_tensor *logits = cg_module_forward(ctx, m, xb);
        cg_tensor *loss = cg_cross_entropy(ctx, logits, yb, CG_MEAN);
        if (!loss || cg_backward(cg_mul_scalar(ctx, loss, 1.0 / accum)) != CG_OK) return -1;
        if ((i + 1) % accum == 0 && cg_optim_step(opt) != CG_OK) return -1;
        loss_sum += cg_item(loss) * (double)cg_dim(xb, 0);
        hits += correct(ctx, logits, yb);
        seen += cg_dim(xb, 0);
        cg_ctx_reset(ctx);
        if (++i % 50 == 0 || i == nb)
            if (tty)
                progress(i, nb, now() - t0, loss_sum / (double)seen, hits / (double)seen,
                         false);
    }
    h->loss[h->n] = loss_sum / (double)seen;
    h->acc[h->n] = hits / (double)seen;
    h->seconds[h->n] = now() - t0;
    if (!tty) progress(nb, nb, h->seconds[h->n], h->loss[h->n], h->acc[h->n], true);
    return 0;
}

/* Mean loss and accuracy over x, y in chunks of 1000, without a graph. */
static inline int evaluate(cg_ctx *ctx, cg_module *m, const cg_tensor *x, const cg_tensor *y,
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
/* Each writer returns 0, or -1 with cgrad's error set (CG_ERR_IO, naming path). */
static inline int write_csv(const char *path, const history *h) {
    FILE *f = open_output(path);
    if (!f) return -1;
    fprintf(f, "epoch,loss,acc,val_loss,val_acc,seconds\n");
    for (int e = 0; e < h->n; e++)
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.3f\n", e + 1, h->loss[e], h->acc[e],
                h->val_loss[e], h->val_acc[e], h->seconds[e]);
    return close_output(f, path);
}

/* One panel at (x0, 20), 360 x 240: train (blue) and val (orange) curves. */
static inline void svg_panel(FILE *f, int x0, const char *title, const double *tr, const double *va,
                      int n) {
    const double *curves[2] = {tr, va};
    const char *colours[2] = {"#1f77b4", "#ff7f0e"};
    svg_panel_xy(f, x0, title, n, NULL, 2, curves, colours);
}

/* Nothing (and 0) without an epoch to draw. */
static inline int write_svg(const char *path, const history *h) {
    if (h->n == 0) return 0;
    FILE *f = open_output(path);
    if (!f) return -1;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='780' height='300' "
               "font-family='sans-serif'>\n<rect width='780' height='300' fill='white'/>\n");
    svg_panel(f, 10, "loss", h->loss, h->val_loss, h->n);
    svg_panel(f, 410, "accuracy", h->acc, h->val_acc, h->n);
    fprintf(f,
            "<text x='10' y='290' font-size='12' fill='#1f77b4'>train</text>"
            "<text x='60' y='290' font-size='12' fill='#ff7f0e'>validation (test set)</text>"
            "<text x='400' y='290' font-size='12'>epochs 1..%d</text>\n</svg>\n",
            h->n);
    return close_output(f, path);
}

/* A file saved by --save resumes model, optimizer, schedule (may be NULL)
 * and rng; a plain state_dict (from PyTorch, say) has only the model. */
static inline int load(const char *path, cg_module *m, cg_optim *opt, cg_sched *sched, cg_rng *rng) {
    if (cg_load(path, m, opt, sched, rng) == CG_OK) return 0;
    if (cg_last_status() != CG_ERR_ARG || cg_load(path, m, NULL, NULL, NULL) != CG_OK)
        return -1;
    printf("loaded the model from %s (it holds no optimizer state)\n", path);
    return 0;
}

/* ---- the whole run ------------------------------------------------------------------- */
/* epochs epochs on the training split (data[0], data[1] through b; an
 * optimizer step every accum batches, sched stepped after each epoch when
 * given), evaluated on the test split (data[2], data[3]) after each; then
 * the test accuracy printed and the CSV and chart written (-1 with cgrad's
 * error set when one cannot be). */
static inline int fit(cg_ctx *ctx, cg_module *m, cg_optim *opt, cg_sched *sched, cg_batcher *b,
               int accum, cg_tensor *const data[4], int epochs, const char *csv,
               const char *svg, history *h) {
    int rc = 0;
    for (int e = 0; rc == 0 && e < epochs; e++, h->n++) {
        printf("Epoch %d/%d\n", e + 1, epochs);
        rc = train_epoch(ctx, m, opt, b, accum, h);
        if (rc == 0)
            rc = evaluate(ctx, m, data[2], data[3], &h->val_loss[h->n], &h->val_acc[h->n]);
        if (rc == 0 && sched) rc = cg_sched_step(sched);
        if (rc == 0)
            printf(" - val_loss: %.4f - val_acc: %.4f - %.1fs per epoch\n", h->val_loss[h->n],
                   h->val_acc[h->n], h->seconds[h->n]);
    }
    double vl = 0, va = 0;
    if (rc == 0 && h->n == 0) rc = evaluate(ctx, m, data[2], data[3], &vl, &va);
    if (rc != 0) return rc;
    printf("test accuracy: %.4f (%d epochs, %lld parameters)\n",
           h->n ? h->val_acc[h->n - 1] : va, h->n, (long long)cg_module_numel(m));
    return write_csv(csv, h) == 0 && write_svg(svg, h) == 0 ? 0 : -1;
}

#endif
