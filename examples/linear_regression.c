/* Linear regression, the training loop at its smallest: two stacked
 * Linear(1, 1) layers learn y = x from four points (X = [0, 1, 2, 3]) with
 * MSE and plain SGD (lr 0.01, 1000 full-batch epochs), print the mapping they
 * learned, and predict x = 4. Exits 1 unless the prediction is within 0.05
 * of 4. Public headers only.
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

    /* The data, caller-owned ([N, 1]: N samples of one feature). */
    cg_tensor *x = cg_from_array(NULL, CG_F32, CG_SHAPE(4, 1), (float[]){0, 1, 2, 3});
    cg_tensor *y = cg_clone(NULL, x); /* the targets: y = x */
    cg_ctx *ctx = cg_ctx_new();       /* holds one step's tensors and graph */
    int rc = 1;
    if (!opt || !x || !y || !ctx) goto error;

    for (int epoch = 1; epoch <= 1000; epoch++) {
        cg_optim_zero_grad(opt);
        cg_tensor *loss = cg_mse_loss(ctx, cg_module_forward(ctx, model, x), y, CG_MEAN);
        if (!loss || cg_backward(loss) != CG_OK || cg_optim_step(opt) != CG_OK) goto error;
        if (epoch % 100 == 0) printf("epoch %4d  loss %.3e\n", epoch, cg_item(loss));
        cg_ctx_reset(ctx); /* the step's tensors and graph go; the weights stay */
    }

    /* Two linear layers compose to one line: y = w2 (w1 x + b1) + b2. */
    double w1 = cg_item(cg_module_find(model, "0.weight"));
    double b1 = cg_item(cg_module_find(model, "0.bias"));
    double w2 = cg_item(cg_module_find(model, "1.weight"));
    double b2 = cg_item(cg_module_find(model, "1.bias"));
    printf("learned: y = %.4f x %+.4f  (layer 0: %.4f x %+.4f, layer 1: %.4f h %+.4f)\n",
           w2 * w1, w2 * b1 + b2, w1, b1, w2, b2);

    /* Inference: no graph is recorded under no_grad. */
    cg_no_grad_push(ctx);
    cg_tensor *x4 = cg_from_array(ctx, CG_F32, CG_SHAPE(1, 1), (float[]){4});
    cg_tensor *pred = cg_module_forward(ctx, model, x4);
    cg_no_grad_pop(ctx);
    if (!pred) goto error;
    double p = cg_item(pred);
    bool close = fabs(p - 4) < 0.05;
    printf("prediction for x = 4: %.4f (%s)\n", p, close ? "within 0.05 of 4" : "FAILED");
    rc = close ? 0 : 1;
    goto done;

error:
    fprintf(stderr, "error: %s\n", cg_last_error());
done:
    cg_ctx_free(ctx);
    cg_tensor_free(x);
    cg_tensor_free(y);
    cg_optim_free(opt);
    cg_module_free(model);
    return rc;
}
