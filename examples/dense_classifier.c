/* A dense classifier, Keras' first example in C: Dense(64, relu) on 100
 * inputs, then Dense(10) with softmax cross-entropy on one-hot labels, SGD
 * (lr 0.1), batch 32, 5 epochs, on generated separable data (10 Gaussian
 * clusters in R^100), trained by cg_fit with Keras' progress bar, then
 * evaluated on held-out data by cg_evaluate; exits 1 if the test accuracy is
 * below 0.9. The Keras program it mirrors is in the README ("Keras-length
 * programs"). Public headers only.
 * Build: cc dense_classifier.c $(pkg-config --cflags --libs cgrad)
 * In the tree: make build/rel/examples/dense_classifier */
#include <stdio.h>
#include <string.h>

#include "cgrad.h"

/* n samples in ctx: each of a uniformly random class (the argmax of 10
 * uniform draws) and its class centre plus N(0, 0.3^2) noise per feature;
 * the labels one-hot f32 [n, 10] (Keras' to_categorical). */
static cg_fit_data make_data(cg_ctx *ctx, cg_rng *rng, const cg_tensor *centres, int64_t n) {
    cg_tensor *labels =
        cg_argmax(ctx, cg_rand(ctx, rng, CG_F32, CG_SHAPE(n, 10), 0, 1), 1, false);
    cg_tensor *x = cg_add(ctx, cg_index_select(ctx, centres, 0, labels),
                          cg_randn(ctx, rng, CG_F32, CG_SHAPE(n, 100), 0, 0.3));
    return (cg_fit_data){.x = x, .y = cg_one_hot(ctx, labels, 10, CG_F32)};
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
    cg_module *model = cg_nn_mlp(&rng, CG_F32, 3, (const int64_t[]){100, 64, 10}, CG_ACT_RELU);
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    cg_optim *opt = model ? cg_sgd_new(model, &so) : NULL;
    /* 2000 training and 500 test samples around the same 10 centres */
    cg_ctx *data = cg_ctx_new(); /* owns the data sets (NULL would make them ours) */
    cg_tensor *centres = cg_randn(data, &rng, CG_F32, CG_SHAPE(10, 100), 0, 1);
    cg_fit_data train = make_data(data, &rng, centres, 2000);
    cg_fit_data test = make_data(data, &rng, centres, 500);

    cg_loss loss = {.kind = CG_LOSS_CATEGORICAL}; /* Keras' categorical_crossentropy */
    cg_metric acc = {.kind = CG_METRIC_ACCURACY};
    cg_callback *bar = cg_progbar_new(NULL);
    cg_history *h = !opt || !bar ? NULL
                                 : cg_fit(model, opt, &loss, &train,
                                          &(cg_fit_opts){.epochs = 5,
                                                         .batch_size = 32,
                                                         .shuffle = true,
                                                         .rng = &rng,
                                                         .accum_steps = 1,
                                                         .nmetrics = 1,
                                                         .metrics = &acc,
                                                         .ncallbacks = 1,
                                                         .callbacks = &bar});
    double res[2] = {0, 0}; /* test loss, accuracy (Keras' model.evaluate) */
    if (!h || cg_evaluate(model, &loss, &test, 32, 1, &acc, res) != CG_OK)
        fprintf(stderr, "dense_classifier: %s\n", cg_last_error());
    else
        printf("test loss: %.4f - test accuracy: %.4f%s\n", res[0], res[1],
               res[1] < 0.9 ? " (FAILED: below 0.9)" : "");
    int rc = res[1] >= 0.9 ? 0 : 1;

    cg_history_free(h);
    cg_callback_free(bar);
    cg_optim_free(opt);
    cg_module_free(model);
    cg_ctx_free(data);
    return rc;
}
