/* Your own differentiable op, written outside the library with the public API
 * only: softsign(x) = x / (1 + |x|). An op has three parts, like every op in
 * the library's ops directory:
 *   1. a backward rule, written with differentiable ops so that gradients of
 *      gradients (double backward) work too;
 *   2. a static const cg_op descriptor: its address is the op's identity;
 *   3. a builder that computes the forward and records one node with cg_record.
 * Then it is proved with the public gradcheck and gradgradcheck (float64, on
 * a plain and a non-contiguous input), and used inside a small model whose
 * loss must fall. Exits 1 if anything fails; it runs inside make test.
 * Build: cc custom_op.c $(pkg-config --cflags --libs cgrad)
 * In the tree: make build/rel/examples/custom_op */
#include <stdio.h>
#include <string.h>

#include "cgrad.h"

/* 1. d/dx softsign(x) = 1 / (1 + |x|)^2, so the input's gradient is
 * g / (1 + |x|)^2. gin[0] must have the input's shape (here: g's shape). */
static cg_status softsign_backward(cg_ctx *ctx, const cg_node *node, const cg_tensor *g,
                                   cg_tensor **gin) {
    const cg_tensor *x = cg_node_input(node, 0);
    if (cg_node_needs_grad(node, 0)) {
        gin[0] = cg_div(ctx, g, cg_square(ctx, cg_add_scalar(ctx, cg_abs(ctx, x), 1)));
        if (!gin[0]) return cg_last_status();
    }
    return CG_OK;
}

/* 2. The rule reads input 0: if x is modified in place after the forward,
 * backward fails (CG_ERR_STATE) instead of computing a wrong gradient. */
static const cg_op softsign_op = {"softsign", softsign_backward, CG_SAVES_INPUT(0)};

/* 3. The forward on a detached view of x records nothing (the ops below
 * are not the graph); cg_record then adds the single node x -> y. Needs a
 * context (its intermediates live there), as every graph op does. */
static cg_tensor *softsign(cg_ctx *ctx, const cg_tensor *x) {
    const cg_tensor *xd = cg_detach(ctx, x);
    cg_tensor *y = cg_div(ctx, xd, cg_add_scalar(ctx, cg_abs(ctx, xd), 1));
    return cg_record(ctx, &softsign_op, y, 1, &x, NULL, 0);
}

/* ---- proof: gradcheck and gradgradcheck ----------------------------------- */
static cg_tensor *softsign_fn(cg_ctx *ctx, cg_tensor *const *inputs, void *user) {
    (void)user;
    return softsign(ctx, inputs[0]);
}

static bool check(const char *what, cg_tensor *x) {
    cg_gradcheck_report r;
    bool ok1 = cg_gradcheck(softsign_fn, NULL, 1, &x, NULL, &r);
    printf("gradcheck     %-22s %s\n", what, ok1 ? "ok" : r.msg);
    bool ok2 = cg_gradgradcheck(softsign_fn, NULL, 1, &x, NULL, &r);
    printf("gradgradcheck %-22s %s\n", what, ok2 ? "ok" : r.msg);
    return ok1 && ok2;
}

/* On f64 leaves: a plain [3, 4] and a transposed (non-contiguous) view. Their
 * values are N(0, 2): away from the kink of |x| at 0 (the second derivative
 * jumps there) for this seed. */
static bool prove(cg_rng *rng) {
    cg_tensor *plain = cg_randn(NULL, rng, CG_F64, CG_SHAPE(3, 4), 0, 2);
    cg_tensor *base = cg_randn(NULL, rng, CG_F64, CG_SHAPE(4, 3), 0, 2);
    cg_tensor *strided = cg_transpose(NULL, base, 0, 1); /* a heap view: a leaf */
    cg_tensor_free(base);                                /* the view keeps the storage */
    bool ok = cg_set_requires_grad(plain, true) == CG_OK &&
              cg_set_requires_grad(strided, true) == CG_OK;
    if (!ok) fprintf(stderr, "error: %s\n", cg_last_error());
    ok = ok && check("[3,4]", plain);
    ok = ok && check("[3,4] non-contiguous", strided);
    cg_tensor_free(plain);
    cg_tensor_free(strided);
    return ok;
}

/* ---- use: Linear(2, 16) -> softsign -> Linear(16, 1) ------------------------
 * cgrad has no user-defined module kinds, so a Sequential of the two Linear
 * layers holds the parameters (one flat buffer for the optimizer) and the
 * forward is written by hand around the new op. */
static cg_tensor *forward(cg_ctx *ctx, const cg_module *m, const cg_tensor *x) {
    cg_tensor *h =
        cg_linear(ctx, x, cg_module_find(m, "0.weight"), cg_module_find(m, "0.bias"));
    return cg_linear(ctx, softsign(ctx, h), cg_module_find(m, "1.weight"),
                     cg_module_find(m, "1.bias"));
}

int main(int argc, char **argv) {
    if (argc > 1) { /* no flags but --help */
        bool help = argc == 2 && !strcmp(argv[1], "--help");
        fprintf(help ? stdout : stderr,
                "usage: %s\n  --help    this list (custom_op takes no other flags)\n", argv[0]);
        return help ? 0 : 2;
    }
    cg_rng rng;
    cg_rng_seed(&rng, 42);
    cg_ctx *ctx = cg_ctx_new();
    int rc = 1;

    cg_print(softsign(ctx, cg_linspace(ctx, CG_F64, -3, 3, 7))); /* -0.75 ... 0.75 */
    bool proved = prove(&rng);

    /* Regression of y = sin(x0) + cos(x1) from 256 points, SGD with momentum. */
    cg_module *layers[2] = {cg_nn_linear(&rng, CG_F32, 2, 16, true),
                            cg_nn_linear(&rng, CG_F32, 16, 1, true)};
    cg_module *model = cg_nn_sequential(2, layers);
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    so.momentum = 0.9;
    cg_optim *opt = model ? cg_sgd_new(model, &so) : NULL;
    cg_ctx *data = cg_ctx_new(); /* the dataset: never reset */
    cg_tensor *x = cg_randn(data, &rng, CG_F32, CG_SHAPE(256, 2), 0, 1);
    cg_tensor *y = cg_add(data, cg_sin(data, cg_narrow(data, x, 1, 0, 1)),
                          cg_cos(data, cg_narrow(data, x, 1, 1, 1)));
    if (!opt || !y) goto error;

    double first = 0, last = 0;
    for (int step = 0; step <= 200; step++) {
        cg_optim_zero_grad(opt);
        cg_tensor *loss = cg_mse_loss(ctx, forward(ctx, model, x), y, CG_MEAN);
        if (!loss || cg_backward(loss) != CG_OK || cg_optim_step(opt) != CG_OK) goto error;
        last = cg_item(loss);
        if (step == 0) first = last;
        if (step % 50 == 0) printf("step %3d  loss %.4f\n", step, last);
        cg_ctx_reset(ctx);
    }
    bool fell = last < first / 4;
    printf("the loss fell from %.4f to %.4f: %s\n", first, last, fell ? "ok" : "FAILED");
    rc = proved && fell ? 0 : 1;
    goto done;

error:
    fprintf(stderr, "error: %s\n", cg_last_error());
done:
    cg_ctx_free(data);
    cg_optim_free(opt);
    cg_module_free(model);
    cg_ctx_free(ctx);
    return rc;
}
