/* cg_load / cg_load_ex / cg_load_tensors on arbitrary bytes. Beyond "no
 * crash, no leak, no undefined behaviour" (the sanitizers), a failed load
 * must change nothing: the model's state, the optimizer's state and step
 * count, and the rng are compared byte for byte with a snapshot taken before
 * it, and a difference aborts (a finding). A successful load is allowed to
 * change them; the snapshot is then retaken. */
#include "fuzz_common.h"

#include <string.h>

#include "cgrad.h"

typedef struct world {
    cg_module *m;
    cg_optim *o;
    cg_rng rng;
} world;

/* Every byte a load may write: module state, optimizer state, steps, rng. */
static size_t snapshot(const world *w, unsigned char *buf, size_t cap) {
    size_t n = 0;
    for (int i = 0; i < cg_module_nstate(w->m); i++) {
        const cg_tensor *t = cg_module_state(w->m, i, NULL, NULL);
        size_t b = (size_t)cg_numel(t) * cg_dtype_size(cg_dtype_of(t));
        if (n + b > cap) abort();
        memcpy(buf + n, cg_data(t), b), n += b;
    }
    for (int i = 0; i < cg_optim_nstate(w->o); i++) {
        const cg_tensor *t = cg_optim_state(w->o, i, NULL);
        size_t b = (size_t)cg_numel(t) * cg_dtype_size(cg_dtype_of(t));
        if (n + b > cap) abort();
        memcpy(buf + n, cg_data(t), b), n += b;
    }
    int64_t steps = cg_optim_steps(w->o);
    double lr = cg_optim_lr(w->o);
    if (n + sizeof steps + sizeof lr + sizeof w->rng > cap) abort();
    memcpy(buf + n, &steps, sizeof steps), n += sizeof steps;
    memcpy(buf + n, &lr, sizeof lr), n += sizeof lr;
    memcpy(buf + n, &w->rng, sizeof w->rng), n += sizeof w->rng;
    return n;
}

/* A small MLP with Adam (two state tensors per parameter), stepped once so
 * its state is not all zeros. */
static world *world_get(void) {
    static world w;
    if (w.m) return &w;
    cg_rng_seed(&w.rng, 7);
    w.m = cg_nn_mlp(&w.rng, CG_F32, 3, (const int64_t[]){4, 3, 2}, CG_ACT_RELU);
    cg_adam_opts ao = cg_adam_defaults(1e-3);
    w.o = w.m ? cg_adam_new(w.m, &ao) : NULL;
    if (!w.o) abort();
    cg_optim_step(w.o);
    return &w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static unsigned char before[1 << 16], after[1 << 16];
    world *w = world_get();
    const char *path = fuzz_file(data, size, ".safetensors");
    size_t n = snapshot(w, before, sizeof before);
    if (cg_load(path, w->m, w->o, NULL, &w->rng) != CG_OK &&
        (snapshot(w, after, sizeof after) != n || memcmp(before, after, n) != 0))
        abort(); /* a failed load changed the model, optimizer or rng */
    n = snapshot(w, before, sizeof before);
    cg_load_opts lo = cg_load_defaults();
    lo.strict = false;
    cg_load_report r = {0};
    if (cg_load_ex(path, w->m, NULL, NULL, NULL, &lo, &r) != CG_OK &&
        (snapshot(w, after, sizeof after) != n || memcmp(before, after, n) != 0))
        abort();
    cg_load_report_free(&r);
    cg_tensor_dict d = {0};
    if (cg_load_tensors(path, &d) == CG_OK) cg_tensor_dict_free(&d);
    cg_clear_error();
    return 0;
}
