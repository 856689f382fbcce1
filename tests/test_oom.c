/* Out of memory at every allocation: a short training program (model,
 * optimizer, schedule, three steps, save, load, an IDX file) is run with its
 * Nth allocation failing, for N = 0, 1, ... until a run needs no more than
 * N. Every run must end with an error status and a message naming a cgrad
 * function, or recover and succeed; never crash. The sanitizer build's
 * LeakSanitizer then checks that no run leaked. cgrad's own allocations are
 * counted, through the linker's --wrap (see the Makefile): libc's, BLIS's
 * and zlib's inside their libraries are not. One thread, so the count is
 * the same every run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* ---- the failing allocator -------------------------------------------------------- */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);

static long countdown = -1; /* allocations before the failing one; -1: none fails */
static bool fired;

static bool fail_now(void) {
    if (countdown < 0) return false;
    if (countdown-- > 0) return false;
    fired = true;
    return true;
}
void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) {
    return fail_now() ? NULL : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t align, size_t n) {
    return fail_now() ? NULL : __real_aligned_alloc(align, n);
}

/* ---- the program -------------------------------------------------------------------- */
static char ckpt[64], idxfile[64];

typedef struct run_state {
    cg_ctx *ctx;
    cg_module *m, *m2, *cnn;
    cg_optim *o, *o2;
    cg_sched *s;
    cg_tensor *x, *y, *img, *xi;
} run_state;

/* A small CNN (conv, relu, max pool, flatten, linear): forward and backward
 * once, and its state as plain tensors to a file and back. */
static cg_status cnn_step(run_state *r, cg_rng *rng) {
    cg_conv_opts co = cg_conv_defaults();
    co.padding[0] = co.padding[1] = 1;
    cg_pool_opts po = cg_pool_defaults(2, 2);
    cg_module *layers[5] = {cg_nn_conv2d(rng, CG_F32, 1, 2, 3, 3, &co, true),
                            cg_nn_activation(CG_ACT_RELU), cg_nn_maxpool2d(&po),
                            cg_nn_flatten(1, -1), cg_nn_linear(rng, CG_F32, 8, 3, true)};
    r->cnn = cg_nn_sequential(5, layers);
    r->xi = cg_randn(NULL, rng, CG_F32, CG_SHAPE(2, 1, 4, 4), 0, 1);
    if (!r->cnn || !r->xi) return cg_last_status();
    cg_tensor *logits = cg_module_forward(r->ctx, r->cnn, r->xi);
    cg_tensor *loss =
        cg_cross_entropy(r->ctx, logits, cg_narrow(r->ctx, r->y, 0, 0, 2), CG_MEAN);
    cg_status s = loss ? cg_backward(loss) : cg_last_status();
    cg_ctx_reset(r->ctx);
    if (s != CG_OK) return s;
    const char *names[2];
    const cg_tensor *ts[2] = {cg_module_state(r->cnn, 0, &names[0], NULL),
                              cg_module_state(r->cnn, 1, &names[1], NULL)};
    s = cg_save_tensors(ckpt, 2, names, ts);
    cg_tensor_dict d = {0};
    if (s == CG_OK) s = cg_load_tensors(ckpt, &d);
    cg_tensor_dict_free(&d);
    return s;
}

static cg_status train(run_state *r, cg_rng *rng) {
    for (int step = 0; step < 3; step++) {
        cg_tensor *loss =
            cg_cross_entropy(r->ctx, cg_module_forward(r->ctx, r->m, r->x), r->y, CG_MEAN);
        cg_status s = loss ? cg_backward(loss) : cg_last_status();
        if (s == CG_OK) s = cg_optim_step(r->o);
        if (s == CG_OK) s = cg_sched_step(r->s);
        cg_optim_zero_grad(r->o);
        cg_ctx_reset(r->ctx);
        if (s != CG_OK) return s;
    }
    (void)rng;
    return CG_OK;
}

static cg_status program(run_state *r) {
    cg_rng rng;
    cg_rng_seed(&rng, 3);
    cg_adam_opts ao = cg_adam_defaults(1e-2);
    r->ctx = cg_ctx_new();
    r->m = cg_nn_mlp(&rng, CG_F32, 3, (const int64_t[]){6, 8, 3}, CG_ACT_RELU);
    r->o = r->m ? cg_adam_new(r->m, &ao) : NULL;
    r->s = r->o ? cg_cosinelr_new(r->o, 10, 0) : NULL;
    r->x = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(5, 6), 0, 1);
    r->y = cg_from_array(NULL, CG_I64, CG_SHAPE(5), (const int64_t[]){0, 1, 2, 1, 0});
    if (!r->ctx || !r->s || !r->x || !r->y) return cg_last_status();
    cg_status s = train(r, &rng);
    if (s == CG_OK) s = cg_save(ckpt, r->m, r->o, r->s, &rng);
    r->m2 =
        s == CG_OK ? cg_nn_mlp(&rng, CG_F32, 3, (const int64_t[]){6, 8, 3}, CG_ACT_RELU) : NULL;
    r->o2 = r->m2 ? cg_adam_new(r->m2, &ao) : NULL;
    if (s == CG_OK && !r->o2) s = cg_last_status();
    if (s == CG_OK) s = cg_load(ckpt, r->m2, r->o2, NULL, NULL);
    if (s == CG_OK) r->img = cg_idx_load(idxfile, CG_F32, 1.0 / 255);
    if (s == CG_OK && !r->img) s = cg_last_status();
    if (s == CG_OK) s = cnn_step(r, &rng);
    return s;
}

static void cleanup(run_state *r) {
    cg_sched_free(r->s);
    cg_optim_free(r->o);
    cg_optim_free(r->o2);
    cg_module_free(r->m);
    cg_module_free(r->m2);
    cg_module_free(r->cnn);
    cg_tensor_free(r->xi);
    cg_tensor_free(r->x);
    cg_tensor_free(r->y);
    cg_tensor_free(r->img);
    cg_ctx_free(r->ctx);
}

static void write_idx(void) {
    static const unsigned char b[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
    FILE *f = fopen(idxfile, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, sizeof b, f), sizeof b);
    fclose(f);
}

static void test_oom_every_allocation_fails_cleanly(void **state) {
    (void)state;
    cg_set_num_threads(1);
    snprintf(ckpt, sizeof ckpt, "/tmp/cgrad_oom_%ld.safetensors", (long)getpid());
    snprintf(idxfile, sizeof idxfile, "/tmp/cgrad_oom_%ld.idx", (long)getpid());
    write_idx();
    long n = 0, recovered = 0;
    for (;; n++) {
        run_state r = {0};
        cg_clear_error();
        fired = false;
        countdown = n;
        cg_status s = program(&r);
        countdown = -1;
        if (!fired) {
            if (s != CG_OK) fail_msg("run %ld, nothing failed: %s", n, cg_last_error());
            cleanup(&r);
            break;
        }
        if (s == CG_OK)
            recovered++;
        else if (strncmp(cg_last_error(), "cg_", 3) != 0)
            fail_msg("allocation %ld failed: status %s, message '%s' names no function", n,
                     cg_status_str(s), cg_last_error());
        cleanup(&r);
    }
    printf("[ INFO     ] %ld allocations, each failed once: %ld recovered, the rest errors\n",
           n, recovered);
    assert_true(n > 50); /* the wrap is in place */
    remove(ckpt);
    remove(idxfile);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oom_every_allocation_fails_cleanly),
    };
    return cmocka_run_group_tests_name("oom", tests, NULL, NULL);
}
