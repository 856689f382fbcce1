/* What the Fashion-MNIST examples share: reading the data (all three),
 * resuming from a checkpoint (fashion_mlp.c and lenet5.c, which train with
 * cg_fit), and for ddp_fashion.c's own loop the count of hits, evaluation
 * and the per-epoch CSV and SVG chart (the chart panel is
 * example_common.h's). Each function is static inline: include this file in
 * one program. Public cgrad headers only. */
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

/* ---- ddp_fashion.c's loop ----------------------------------------------------- */
/* The number of rows of logits [B, 10] whose argmax is the label. */
static inline double correct(cg_ctx *ctx, const cg_tensor *logits, const cg_tensor *y) {
    cg_no_grad_push(ctx);
    cg_tensor *hit = cg_eq(ctx, cg_argmax(ctx, logits, 1, false), y);
    double n = cg_item(cg_sum(ctx, hit, NULL, 0, false));
    cg_no_grad_pop(ctx);
    return n;
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
static inline void svg_panel(FILE *f, int x0, const char *title, const double *tr,
                             const double *va, int n) {
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
static inline int load(const char *path, cg_module *m, cg_optim *opt, cg_sched *sched,
                       cg_rng *rng) {
    if (cg_load(path, m, opt, sched, rng) == CG_OK) return 0;
    if (cg_last_status() != CG_ERR_ARG || cg_load(path, m, NULL, NULL, NULL) != CG_OK)
        return -1;
    printf("loaded the model from %s (it holds no optimizer state)\n", path);
    return 0;
}

#endif
