/* A dense classifier, Keras' first example in C: Dense(64, relu) on 100
 * inputs, then Dense(10) with softmax cross-entropy on one-hot labels, SGD,
 * batch 32, 5 epochs, on generated separable data (10 Gaussian clusters in
 * R^100). Prints the training loss and accuracy per epoch, then evaluates on
 * held-out data; exits 1 if the test accuracy is below 0.9. Public headers only.
 * Build: cc dense_classifier.c $(pkg-config --cflags --libs cgrad)
 * In the tree: make build/rel/examples/dense_classifier */
#include <stdio.h>
#include <string.h>

#include "cgrad.h"

#define FEATURES 100
#define CLASSES  10
#define BATCH    32
#define EPOCHS   5

/* n samples in ctx: each of a uniformly random class (the argmax of CLASSES
 * uniform draws) and its class centre plus N(0, 0.3^2) noise per feature. */
static cg_tensor *make_data(cg_ctx *ctx, cg_rng *rng, const cg_tensor *centres, int64_t n,
                            cg_tensor **labels) {
    *labels = cg_argmax(ctx, cg_rand(ctx, rng, CG_F32, CG_SHAPE(n, CLASSES), 0, 1), 1, false);
    return cg_add(ctx, cg_index_select(ctx, centres, 0, *labels),
                  cg_randn(ctx, rng, CG_F32, CG_SHAPE(n, FEATURES), 0, 0.3));
}

/* How many rows of logits have their largest value at the label. */
static double hits(cg_ctx *ctx, const cg_tensor *logits, const cg_tensor *labels) {
    return cg_item(
        cg_sum(ctx, cg_eq(ctx, cg_argmax(ctx, logits, 1, false), labels), NULL, 0, false));
}

int main(int argc, char **argv) {
    if (argc > 1) { /* no flags but --help */
        bool help = argc == 2 && !strcmp(argv[1], "--help");
        fprintf(help ? stdout : stderr,
                "usage: %s\n  --help    this list (dense_classifier takes no other flags)\n",
                argv[0]);
        return help ? 0 : 2;
    }
    cg_rng rng;
    cg_rng_seed(&rng, 42);
    cg_ctx *data = cg_ctx_new(); /* the datasets: never reset */
    cg_ctx *ctx = cg_ctx_new();  /* one step's tensors and graph */
    cg_module *model =
        cg_nn_mlp(&rng, CG_F32, 3, (const int64_t[]){FEATURES, 64, CLASSES}, CG_ACT_RELU);
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    cg_optim *opt = model ? cg_sgd_new(model, &so) : NULL;
    int rc = 1;
    if (!data || !ctx || !opt) goto error;

    /* 2000 training and 500 test samples around the same 10 centres; the
     * labels, i64 class indices, become one-hot rows (Keras' to_categorical). */
    cg_tensor *centres = cg_randn(data, &rng, CG_F32, CG_SHAPE(CLASSES, FEATURES), 0, 1);
    cg_tensor *train_labels, *test_labels;
    cg_tensor *x_train = make_data(data, &rng, centres, 2000, &train_labels);
    cg_tensor *x_test = make_data(data, &rng, centres, 500, &test_labels);
    cg_tensor *y_train = cg_one_hot(data, train_labels, CLASSES, CG_F32);
    cg_tensor *y_test = cg_one_hot(data, test_labels, CLASSES, CG_F32);
    if (!x_train || !x_test || !y_train || !y_test) goto error;

    const int64_t n = cg_dim(x_train, 0);
    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        double loss_sum = 0, right = 0;
        for (int64_t start = 0; start < n; start += BATCH) {
            int64_t b = n - start < BATCH ? n - start : BATCH;    /* the last batch is short */
            cg_tensor *xb = cg_narrow(ctx, x_train, 0, start, b); /* views: no copies */
            cg_tensor *yb = cg_narrow(ctx, y_train, 0, start, b);
            cg_tensor *lb = cg_narrow(ctx, train_labels, 0, start, b);

            cg_optim_zero_grad(opt);
            cg_tensor *logits = cg_module_forward(ctx, model, xb);
            cg_tensor *loss = cg_cross_entropy_probs(ctx, logits, yb, CG_MEAN);
            if (!loss) goto error;
            loss_sum += cg_item(loss) * (double)b;
            right += hits(ctx, logits, lb);
            if (cg_backward(loss) != CG_OK || cg_optim_step(opt) != CG_OK) goto error;
            cg_ctx_reset(ctx);
        }
        printf("epoch %d/%d - loss: %.4f - acc: %.4f\n", epoch, EPOCHS, loss_sum / (double)n,
               right / (double)n);
    }

    /* Evaluation: the whole test set at once, without a graph. */
    cg_no_grad_push(ctx);
    cg_tensor *logits = cg_module_forward(ctx, model, x_test);
    cg_tensor *test_loss = cg_cross_entropy_probs(ctx, logits, y_test, CG_MEAN);
    double test_acc = hits(ctx, logits, test_labels) / (double)cg_dim(x_test, 0);
    cg_no_grad_pop(ctx);
    if (!test_loss) goto error;
    printf("test loss: %.4f - test acc: %.4f\n", cg_item(test_loss), test_acc);
    rc = test_acc >= 0.9 ? 0 : 1;
    if (rc) printf("FAILED: test accuracy below 0.9\n");
    goto done;

error:
    fprintf(stderr, "error: %s\n", cg_last_error());
done:
    cg_optim_free(opt);
    cg_module_free(model);
    cg_ctx_free(ctx);
    cg_ctx_free(data);
    return rc;
}
