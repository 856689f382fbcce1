/* A tour of cgrad's tensors: creation, views, broadcasting, a matmul,
 * reductions, printing, and what an error looks like. Public headers only.
 * Build: cc tensor_tour.c $(pkg-config --cflags --libs cgrad) */
#include <stdio.h>
#include <string.h>

#include "cgrad.h"

int main(int argc, char **argv) {
    if (argc > 1) { /* no flags but --help */
        bool help = argc == 2 && !strcmp(argv[1], "--help");
        fprintf(help ? stdout : stderr,
                "usage: %s\n  --help    this list (tensor_tour takes no other flags)\n",
                argv[0]);
        return help ? 0 : 2;
    }
    cg_ctx *ctx = cg_ctx_new(); /* owns everything made below */
    cg_rng rng;
    cg_rng_seed(&rng, 42);

    puts("== creation");
    cg_tensor *x = cg_view(ctx, cg_arange(ctx, CG_F32, 0, 6, 1), CG_SHAPE(2, 3));
    cg_print(x);
    cg_print(cg_eye(ctx, CG_F64, 2, 3));
    cg_print(cg_randn(ctx, &rng, CG_F32, CG_SHAPE(2, 4), 0.0, 1.0));

    puts("\n== views share storage (no copies)");
    cg_tensor *xt = cg_transpose(ctx, x, 0, 1);
    printf("x.T is [%lld,%lld] with strides (%lld,%lld)\n", (long long)cg_dim(xt, 0),
           (long long)cg_dim(xt, 1), (long long)cg_strides(xt)[0],
           (long long)cg_strides(xt)[1]);
    cg_print(xt);
    cg_print(cg_slice(ctx, x, 1, 0, CG_END, 2)); /* x[:, ::2] */

    puts("\n== broadcasting: [2,3] + [3] and [2,1] * [3]");
    cg_tensor *row = cg_from_array(ctx, CG_F32, CG_SHAPE(3), (float[]){10, 20, 30});
    cg_tensor *col = cg_from_array(ctx, CG_F32, CG_SHAPE(2, 1), (float[]){1, -1});
    cg_print(cg_add(ctx, x, row));
    cg_print(cg_mul(ctx, col, row));

    puts("\n== matmul (BLIS): [2,3] x [3,2]");
    cg_tensor *y = cg_matmul(ctx, x, xt);
    cg_print(y);

    puts("\n== reductions");
    cg_print(cg_sum(ctx, x, (int[]){0}, 1, false));
    cg_print(cg_mean(ctx, x, NULL, 0, false));
    cg_print(cg_argmax(ctx, cg_mul(ctx, col, row), 1, false));

    puts("\n== a large tensor prints summarised");
    cg_print(cg_view(ctx, cg_arange(ctx, CG_I64, 0, 2000, 1), CG_SHAPE(40, 50)));

    puts("\n== errors are values");
    cg_tensor *bad = cg_matmul(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(64, 784)),
                               cg_zeros(ctx, CG_F32, CG_SHAPE(128, 10)));
    printf("result %s; error: %s\n", bad ? "non-NULL" : "NULL", cg_last_error());

    int ok = y != NULL;
    cg_ctx_free(ctx);
    return ok ? 0 : 1;
}
