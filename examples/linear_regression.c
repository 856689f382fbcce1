/* Linear regression, cg_fit at its smallest: two stacked Linear(1, 1)
 * layers learn y = x from four points (X = [0, 1, 2, 3]) with MSE and plain
 * SGD (lr 0.01, 1000 full-batch epochs), print the loss every 100 epochs
 * from the history and the mapping they learned, and predict x = 4. Exits 1
 * unless the prediction is within 0.05 of 4. The Keras program it mirrors
 * is in the README ("Keras-length programs"). Public headers only.
 * Build: cc linear_regression.c $(pkg-config --cflags --libs cgrad)
 * In the tree: make build/rel/examples/linear_regression */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cgrad.h"

int main(int argc, char **argv) {
    if (argc > 1) { /* no flags but --help */
        bool help = argc == 2 && !strcmp(argv[1], "--help");
        fprintf(help ? stdout : stderr,
                "usage: %s\n  --help    this list (linear_regression takes no other flags)\n",
                argv[0]);
        return help ? 0 : 2;
    }
    cg_rng rng;
    cg_rng_seed(&rng, 42); /* the initial weights (seeds 1 to 20 converge too) */

    /* The model, torch.nn.Sequential(nn.Linear(1, 1), nn.Linear(1, 1)). */
    cg_module *layers[2] = {cg_nn_linear(&rng, CG_F32, 1, 1, true),
                            cg_nn_linear(&rng, CG_F32, 1, 1, true)};
    cg_module *model = cg_nn_sequential(2, layers); /* owns the layers */
    cg_sgd_opts so = cg_sgd_defaults(0.01);
    cg_optim *opt = model ? cg_sgd_new(model, &so) : NULL;

    /* The data, caller-owned ([N, 1]: N samples of one feature); y = x. */
    cg_tensor *x = cg_from_array(NULL, CG_F32, CG_SHAPE(4, 1), (float[]){0, 1, 2, 3});
    cg_tensor *x4 = cg_from_array(NULL, CG_F32, CG_SHAPE(1, 1), (float[]){4});
    cg_loss mse = {.kind = CG_LOSS_MSE};
    cg_history *h =
        !opt ? NULL
             : cg_fit(model, opt, &mse, &(cg_fit_data){.x = x, .y = x},
                      &(cg_fit_opts){.epochs = 1000, .batch_size = 4, .accum_steps = 1});
    const double *loss = h ? cg_history_get(h, "loss") : NULL;
    for (int e = 99; loss && e < 1000; e += 100)
        printf("epoch %4d  loss %.3e\n", e + 1, loss[e]);

    /* Two linear layers compose to one line: y = w2 (w1 x + b1) + b2. */
    double w1 = cg_item(cg_module_find(model, "0.weight"));
    double b1 = cg_item(cg_module_find(model, "0.bias"));
    double w2 = cg_item(cg_module_find(model, "1.weight"));
    double b2 = cg_item(cg_module_find(model, "1.bias"));
    printf("learned: y = %.4f x %+.4f  (layer 0: %.4f x %+.4f, layer 1: %.4f h %+.4f)\n",
           w2 * w1, w2 * b1 + b2, w1, b1, w2, b2);

    /* Inference (Keras' model.predict): eval mode, no graph, a new tensor. */
    cg_tensor *pred = h ? cg_predict(model, &(cg_fit_data){.x = x4}, 1) : NULL;
    double p = pred ? cg_item(pred) : NAN;
    if (!pred) fprintf(stderr, "linear_regression: %s\n", cg_last_error());
    printf("prediction for x = 4: %.4f (%s)\n", p,
           fabs(p - 4) < 0.05 ? "within 0.05 of 4" : "FAILED");

    cg_tensor_free(pred);
    cg_history_free(h);
    cg_tensor_free(x);
    cg_tensor_free(x4);
    cg_optim_free(opt);
    cg_module_free(model);
    return fabs(p - 4) < 0.05 ? 0 : 1;
}
