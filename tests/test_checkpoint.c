/* nn/checkpoint.c: safetensors save and load. Round trips are bitwise, the
 * format is pinned byte for byte, PyTorch-style files load, and every bad
 * file is refused with a clear error and without touching the model,
 * optimizer or rng. Files go to a fresh mkdtemp directory, removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char dir[64]; /* the group's temporary directory */

static int make_dir(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cgrad-test-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

/* Removes dir and everything in it (files and empty subdirectories). */
static int remove_dir(void **state) {
    (void)state;
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[sizeof dir + 256 + 1];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (remove(p) != 0) return -1;
        }
    if (d) closedir(d);
    return rmdir(dir);
}

/* dir/name into buf. */
static char *in_dir(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", dir, name);
    return buf;
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Entries of dir named "<base>.<anything>": what a save of dir/base may leave. */
static int temporaries(const char *base) {
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = strlen(base);
    int count = 0;
    assert_non_null(d);
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, base, n) && e->d_name[n] == '.') count++;
    closedir(d);
    return count;
}

/* ---- files as bytes ------------------------------------------------------------------ */
static void write_raw(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* The whole file, NUL-terminated; *n its size. Caller frees. */
static unsigned char *read_raw(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size >= 0);
    rewind(f);
    unsigned char *b = malloc((size_t)size + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    b[size] = 0;
    *n = (size_t)size;
    return b;
}

/* A safetensors file: the header text, `pad` with spaces to 8 bytes as
 * PyTorch does, after it the data. claim >= 0 overrides the stated length. */
static void write_st(const char *path, const char *header, bool pad, const void *data,
                     size_t dlen, int64_t claim) {
    size_t h = strlen(header), hp = pad ? (h + 7) / 8 * 8 : h;
    uint64_t len = claim >= 0 ? (uint64_t)claim : hp;
    unsigned char *b = malloc(8 + hp + dlen + 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(len >> (8 * i));
    memcpy(b + 8, header, h);
    memset(b + 8 + h, ' ', hp - h);
    if (dlen) memcpy(b + 8 + hp, data, dlen);
    write_raw(path, b, 8 + hp + dlen);
    free(b);
}

/* ---- model state ---------------------------------------------------------------------- */
/* Every state tensor's bytes, in order. Caller frees. */
static unsigned char *snapshot(const cg_module *m, size_t *n) {
    size_t total = 0, off = 0;
    for (int i = 0; i < cg_module_nstate(m); i++) {
        const cg_tensor *t = cg_module_state(m, i, NULL, NULL);
        total += (size_t)cg_numel(t) * cg_dtype_size(cg_dtype_of(t));
    }
    unsigned char *b = malloc(total + 1);
    assert_non_null(b);
    for (int i = 0; i < cg_module_nstate(m); i++) {
        const cg_tensor *t = cg_module_state(m, i, NULL, NULL);
        assert_int_equal(cg_copy_to_array(t, cg_dtype_of(t), b + off), CG_OK);
        off += (size_t)cg_numel(t) * cg_dtype_size(cg_dtype_of(t));
    }
    *n = total;
    return b;
}

static void assert_same_state(const cg_module *a, const cg_module *b) {
    size_t na, nb;
    unsigned char *sa = snapshot(a, &na), *sb = snapshot(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(sa, sb, na);
    free(sa);
    free(sb);
}

static bool state_differs(const cg_module *a, const cg_module *b) {
    size_t na, nb;
    unsigned char *sa = snapshot(a, &na), *sb = snapshot(b, &nb);
    bool differ = na != nb || memcmp(sa, sb, na) != 0;
    free(sa);
    free(sb);
    return differ;
}

/* An embedding and an output head sharing one matrix ("0.weight" is
 * "1.weight"), as a language model ties them. */
static cg_module *tied(uint64_t seed) {
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    cg_module *emb = cg_nn_embedding(&rng, CG_F64, 5, 3);
    cg_module *head = cg_nn_linear(&rng, CG_F64, 3, 5, false);
    assert_int_equal(cg_module_tie(head, "weight", cg_module_find(emb, "weight")), CG_OK);
    cg_module *m = cg_nn_sequential(2, (cg_module *[]){emb, head});
    assert_non_null(m);
    assert_ptr_equal(cg_module_find(m, "0.weight"), cg_module_find(m, "1.weight"));
    return m;
}

static cg_module *mlp(uint64_t seed, cg_dtype dt) {
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    cg_module *m = cg_nn_mlp(&rng, dt, 3, (const int64_t[]){4, 8, 3}, CG_ACT_TANH);
    assert_non_null(m);
    return m;
}

/* Linear(3, 2): "weight" [2,3] and "bias" [2], f32. */
static cg_module *tiny(uint64_t seed) {
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    cg_module *m = cg_nn_linear(&rng, CG_F32, 3, 2, true);
    assert_non_null(m);
    return m;
}

/* ---- round trips ----------------------------------------------------------------------- */
static void roundtrip_mlp(cg_dtype dt) {
    char p[128];
    cg_module *a = mlp(1, dt), *b = mlp(2, dt);
    assert_true(state_differs(a, b));
    assert_int_equal(cg_save(in_dir(p, sizeof p, "mlp.safetensors"), a, NULL, NULL, NULL),
                     CG_OK);
    assert_int_equal(cg_load(p, b, NULL, NULL, NULL), CG_OK);
    assert_same_state(a, b);
    cg_module_free(a);
    cg_module_free(b);
}

static void test_checkpoint_roundtrip_mlp_f32(void **state) {
    (void)state;
    roundtrip_mlp(CG_F32);
}

static void test_checkpoint_roundtrip_mlp_f64(void **state) {
    (void)state;
    roundtrip_mlp(CG_F64);
}

static cg_module *linear_bn(uint64_t seed) {
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    cg_module *kids[] = {cg_nn_linear(&rng, CG_F32, 3, 4, true),
                         cg_nn_batchnorm1d(CG_F32, 4, 1e-5, 0.1)};
    cg_module *m = cg_nn_sequential(2, kids);
    assert_non_null(m);
    return m;
}

/* Running statistics and the i64 rank-0 num_batches_tracked come back too. */
static void test_checkpoint_roundtrip_batchnorm_buffers(void **state) {
    (void)state;
    char p[128];
    cg_rng rng;
    cg_rng_seed(&rng, 5);
    cg_module *a = linear_bn(1), *b = linear_bn(2);
    cg_ctx *ctx = cg_ctx_new();
    for (int i = 0; i < 3; i++) { /* moves the running statistics */
        cg_tensor *x = cg_randn(ctx, &rng, CG_F32, CG_SHAPE(8, 3), 0, 1);
        assert_non_null(cg_module_forward(ctx, a, x));
        cg_ctx_reset(ctx);
    }
    assert_int_equal(cg_item(cg_module_find(a, "1.num_batches_tracked")), 3);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "bn.safetensors"), a, NULL, NULL, NULL),
                     CG_OK);
    assert_int_equal(cg_load(p, b, NULL, NULL, NULL), CG_OK);
    assert_same_state(a, b);
    assert_int_equal(cg_item(cg_module_find(b, "1.num_batches_tracked")), 3);
    cg_ctx_free(ctx);
    cg_module_free(a);
    cg_module_free(b);
}

/* Saving mid-run and resuming in a fresh process (model, Adam, rng) gives
 * bit for bit the parameters of the run that never stopped. */
static void test_checkpoint_optimizer_resume_is_bitwise(void **state) {
    (void)state;
    char p[128];
    cg_adam_opts ao = cg_adam_defaults(0.01);
    cg_rng rng, rng2;
    cg_rng_seed(&rng, 11);
    cg_rng_seed(&rng2, 999);
    cg_module *a = mlp(1, CG_F32), *b = mlp(2, CG_F32);
    cg_optim *oa = cg_adam_new(a, &ao), *ob = cg_adam_new(b, &ao);
    assert_non_null(oa);
    assert_non_null(ob);
    cg_ctx *ctx = cg_ctx_new();
    for (int i = 0; i < 5; i++) mse_train_step(ctx, a, oa, &rng, 8);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "resume.safetensors"), a, oa, NULL, &rng),
                     CG_OK);
    for (int i = 0; i < 3; i++) mse_train_step(ctx, a, oa, &rng, 8);
    assert_int_equal(cg_load(p, b, ob, NULL, &rng2), CG_OK);
    assert_int_equal(cg_optim_steps(ob), 5);
    for (int i = 0; i < 3; i++) mse_train_step(ctx, b, ob, &rng2, 8);
    assert_same_state(a, b);
    assert_memory_equal(&rng, &rng2, sizeof rng);
    assert_int_equal(cg_optim_steps(ob), 8);
    cg_ctx_free(ctx);
    cg_optim_free(oa);
    cg_optim_free(ob);
    cg_module_free(a);
    cg_module_free(b);
}

/* ---- resuming exactly (model, Adam, StepLR, dropout's rng) ------------------------------ */
/* One training run; it must not move once made (dropout borrows its rng). */
typedef struct run {
    cg_rng rng; /* data and dropout */
    cg_module *m;
    cg_optim *o;
    cg_sched *s; /* NULL without a schedule */
} run;

/* Linear(4, 8), Tanh, Dropout(0.25), Linear(8, 3) initialised from init_seed,
 * Adam, StepLR(2, 0.5) when sched, the rng seeded with rng_seed. */
static void run_new(run *r, uint64_t init_seed, uint64_t rng_seed, bool sched) {
    cg_rng init = seeded(init_seed);
    cg_adam_opts ao = cg_adam_defaults(0.01);
    r->rng = seeded(rng_seed);
    cg_module *kids[] = {cg_nn_linear(&init, CG_F32, 4, 8, true), cg_nn_activation(CG_ACT_TANH),
                         cg_nn_dropout(0.25, &r->rng), cg_nn_linear(&init, CG_F32, 8, 3, true)};
    r->m = cg_nn_sequential(4, kids);
    assert_non_null(r->m);
    r->o = cg_adam_new(r->m, &ao);
    assert_non_null(r->o);
    r->s = sched ? cg_steplr_new(r->o, 2, 0.5) : NULL;
    if (sched) assert_non_null(r->s);
}

static void run_steps(cg_ctx *ctx, run *r, int k) {
    for (int i = 0; i < k; i++) {
        mse_train_step(ctx, r->m, r->o, &r->rng, 8);
        if (r->s) cg_sched_step(r->s);
    }
}

static void run_free(run *r) {
    cg_sched_free(r->s);
    cg_optim_free(r->o);
    cg_module_free(r->m);
}

/* Tied weights are saved under both names (PyTorch's strict load_state_dict
 * wants both) and load into the one shared tensor. */
static void test_checkpoint_tied_weights(void **state) {
    (void)state;
    char p[128];
    cg_module *a = tied(1), *b = tied(2);
    assert_true(state_differs(a, b));
    assert_int_equal(cg_save(in_dir(p, sizeof p, "tied.safetensors"), a, NULL, NULL, NULL),
                     CG_OK);
    cg_tensor_dict d = {0};
    assert_int_equal(cg_load_tensors(p, &d), CG_OK);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.names[0], "0.weight");
    assert_string_equal(d.names[1], "1.weight");
    cg_tensor_dict_free(&d);
    assert_int_equal(cg_load(p, b, NULL, NULL, NULL), CG_OK);
    assert_same_state(a, b);
    assert_ptr_equal(cg_module_find(b, "0.weight"), cg_module_find(b, "1.weight"));
    assert_int_equal(cg_module_nparams(b), 1);
    cg_module_free(a);
    cg_module_free(b);
}

/* N + M steps in one go equal N steps, cg_save, a fresh run from other
 * seeds, cg_load and M steps: parameters, Adam's step, the lr and the rng
 * bit for bit. */
static void resume(bool sched) {
    char p[128];
    run whole, first, second;
    cg_ctx *ctx = cg_ctx_new();
    run_new(&whole, 1, 11, sched);
    run_new(&first, 1, 11, sched);
    run_new(&second, 2, 99, sched);
    assert_true(state_differs(whole.m, second.m));
    run_steps(ctx, &whole, 7);
    run_steps(ctx, &first, 3);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "resume.safetensors"), first.m, first.o,
                             first.s, &first.rng),
                     CG_OK);
    assert_int_equal(cg_load(p, second.m, second.o, second.s, &second.rng), CG_OK);
    run_steps(ctx, &second, 4);
    assert_same_state(whole.m, second.m);
    assert_memory_equal(&whole.rng, &second.rng, sizeof whole.rng);
    assert_int_equal(cg_optim_steps(second.o), 7);
    assert_true(cg_optim_lr(whole.o) == cg_optim_lr(second.o));
    if (sched) assert_true(cg_sched_lr(whole.s) == cg_sched_lr(second.s));
    run_free(&whole);
    run_free(&first);
    run_free(&second);
    cg_ctx_free(ctx);
}

static void test_checkpoint_resume_with_dropout_is_bitwise(void **state) {
    (void)state;
    resume(false);
}

static void test_checkpoint_resume_with_schedule_is_bitwise(void **state) {
    (void)state;
    resume(true);
}

/* A schedule given but absent from the file is refused, as an optimizer is,
 * and nothing changes. */
static void test_checkpoint_missing_schedule_refused(void **state) {
    (void)state;
    char p[128];
    run r, ref;
    run_new(&r, 1, 11, true);
    run_new(&ref, 1, 11, true);
    assert_int_equal(
        cg_save(in_dir(p, sizeof p, "no-sched.safetensors"), r.m, r.o, NULL, &r.rng), CG_OK);
    r.rng = seeded(5);
    assert_int_equal(cg_load(p, r.m, r.o, r.s, &r.rng), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "no schedule state in the file"));
    assert_non_null(strstr(cg_last_error(), p));
    cg_rng five = seeded(5);
    assert_memory_equal(&r.rng, &five, sizeof five);
    assert_same_state(r.m, ref.m);
    assert_int_equal(cg_optim_steps(r.o), 0);
    /* with the schedule saved, the keys are there */
    assert_int_equal(cg_save(p, r.m, r.o, r.s, &r.rng), CG_OK);
    size_t n;
    unsigned char *b = read_raw(p, &n);
    assert_non_null(strstr((const char *)b + 8, "\"cgrad.scheduler\":\""));
    assert_non_null(strstr((const char *)b + 8, "\"cgrad.optimizer.state\":\""));
    free(b);
    assert_int_equal(cg_load(p, r.m, r.o, r.s, &r.rng), CG_OK);
    run_free(&r);
    run_free(&ref);
}

/* A file from before the hook keys (the old golden bytes: no
 * "cgrad.optimizer.state") still restores the optimizer's tensors and step. */
static void test_checkpoint_loads_file_without_hook_keys(void **state) {
    (void)state;
    char p[128];
    static const double data[2] = {-1, 0.5}; /* weight, momentum_buffer */
    write_st(in_dir(p, sizeof p, "old-opt.safetensors"),
             "{\"__metadata__\":{\"format\":\"pt\",\"cgrad.optimizer\":\"sgd\","
             "\"cgrad.step\":\"42\"},"
             "\"weight\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[0,8]},"
             "\"optimizer.momentum_buffer\":{\"dtype\":\"F64\",\"shape\":[1],"
             "\"data_offsets\":[8,16]}}",
             true, data, sizeof data, -1);
    cg_rng rng = seeded(1);
    cg_module *m = cg_nn_linear(&rng, CG_F64, 1, 1, false);
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    so.momentum = 0.9;
    cg_optim *o = cg_sgd_new(m, &so);
    assert_non_null(o);
    assert_int_equal(cg_load(p, m, o, NULL, NULL), CG_OK);
    assert_int_equal(cg_optim_steps(o), 42);
    assert_float_equal(cg_item(cg_module_find(m, "weight")), -1, 0);
    assert_float_equal(cg_item(cg_optim_state(o, 0, NULL)), 0.5, 0);
    assert_true(cg_optim_lr(o) == 0.1);
    cg_optim_free(o);
    cg_module_free(m);
}

/* ---- the format, pinned -------------------------------------------------------------------
 */
static void assert_file_is(const char *path, const char *header, const void *data,
                           size_t dlen) {
    size_t n, h = strlen(header), hp = (h + 7) / 8 * 8;
    unsigned char *b = read_raw(path, &n);
    assert_int_equal(n, 8 + hp + dlen);
    for (int i = 0; i < 8; i++) assert_int_equal(b[i], (hp >> (8 * i)) & 0xFF);
    assert_memory_equal(b + 8, header, h);
    for (size_t i = h; i < hp; i++) assert_int_equal(b[8 + i], ' ');
    assert_memory_equal(b + 8 + hp, data, dlen);
    free(b);
}

/* Linear(2, 1) with weight [[1.5, -2]] and bias [0.25], with the rng state. */
static void test_checkpoint_golden_bytes(void **state) {
    (void)state;
    char p[128];
    cg_rng rng;
    cg_rng_seed(&rng, 1);
    cg_module *m = cg_nn_linear(&rng, CG_F32, 2, 1, true);
    set_state(m, "weight", (const double[]){1.5, -2});
    set_state(m, "bias", (const double[]){0.25});
    rng.s[0] = 1;
    rng.s[1] = 2;
    rng.s[2] = UINT64_C(0xfedcba9876543210);
    rng.s[3] = UINT64_C(0x0123456789abcdef);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "golden.safetensors"), m, NULL, NULL, &rng),
                     CG_OK);
    static const unsigned char data[] = {0, 0, 0xC0, 0x3F, 0, 0, 0, 0xC0, 0, 0, 0x80, 0x3E};
    assert_file_is(p,
                   "{\"__metadata__\":{\"format\":\"pt\",\"cgrad.rng\":"
                   "\"00000000000000010000000000000002fedcba98765432100123456789abcdef\"},"
                   "\"weight\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
                   "\"bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                   data, sizeof data);
    cg_module_free(m);
}

/* The optimizer's state follows the model's, its kind and step in metadata. */
static void test_checkpoint_golden_bytes_optimizer(void **state) {
    (void)state;
    char p[128];
    cg_rng rng;
    cg_rng_seed(&rng, 1);
    cg_module *m = cg_nn_linear(&rng, CG_F64, 1, 1, false);
    set_state(m, "weight", (const double[]){-1});
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    so.momentum = 0.9;
    cg_optim *o = cg_sgd_new(m, &so);
    assert_non_null(o);
    assert_int_equal(cg_optim_nstate(o), 1);
    cg_optim_set_steps(o, 42);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "golden-opt.safetensors"), m, o, NULL, NULL),
                     CG_OK);
    static const unsigned char data[16] = {0, 0, 0, 0, 0, 0, 0xF0, 0xBF}; /* -1.0, 0.0 */
    assert_file_is(p,
                   "{\"__metadata__\":{\"format\":\"pt\",\"cgrad.optimizer\":\"sgd\","
                   "\"cgrad.step\":\"42\",\"cgrad.optimizer.state\":\"kind=sgd\\u000asteps=42"
                   "\\u000agroups=1\\u000agroup=0\\u000aparams=1\\u000anumel=1\\u000a"
                   "lr=0.10000000000000001\\u000amomentum=0.90000000000000002\\u000a"
                   "dampening=0\\u000aweight_decay=0\\u000anesterov=0\\u000astep=42\\u000a\"},"
                   "\"weight\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[0,8]},"
                   "\"optimizer.momentum_buffer\":{\"dtype\":\"F64\",\"shape\":[1],"
                   "\"data_offsets\":[8,16]}}",
                   data, sizeof data);
    cg_optim_free(o);
    cg_module_free(m);
}

/* ---- files from elsewhere ------------------------------------------------------------------
 */
static const float tiny_bias[2] = {0.5f, -0.5f};
static const float tiny_weight[6] = {1, 2, 3, 4, 5, 6};

static void assert_tiny_loaded(const cg_module *m) {
    float got[6];
    assert_int_equal(cg_copy_to_array(cg_module_find(m, "bias"), CG_F32, got), CG_OK);
    assert_memory_equal(got, tiny_bias, sizeof tiny_bias);
    assert_int_equal(cg_copy_to_array(cg_module_find(m, "weight"), CG_F32, got), CG_OK);
    assert_memory_equal(got, tiny_weight, sizeof tiny_weight);
}

/* As PyTorch's safetensors writes: sorted keys, data in that order, spaces
 * to 8 bytes; extra tensors (i64, bf16) and metadata are ignored. */
static void test_checkpoint_loads_pytorch_style_file(void **state) {
    (void)state;
    char p[128];
    unsigned char data[8 + 8 + 24 + 4];
    int64_t steps = 7;
    memcpy(data, &steps, 8);
    memcpy(data + 8, tiny_bias, 8);
    memcpy(data + 16, tiny_weight, 24);
    memset(data + 40, 0x3F, 4);
    write_st(in_dir(p, sizeof p, "torch.safetensors"),
             "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"},"
             "\"a.count\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
             "\"bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
             "\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[16,40]},"
             "\"z.half\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[40,44]}}",
             true, data, sizeof data, -1);
    cg_module *m = tiny(3);
    assert_int_equal(cg_load(p, m, NULL, NULL, NULL), CG_OK);
    assert_tiny_loaded(m);
    cg_module_free(m);
}

/* num_batches_tracked, an i64 rank-0 buffer, from a hand-made file. */
static void test_checkpoint_loads_i64_buffer(void **state) {
    (void)state;
    char p[128];
    cg_module *bn = cg_nn_batchnorm1d(CG_F32, 1, 1e-5, 0.1);
    assert_non_null(bn);
    unsigned char data[24];
    const float stats[4] = {2, 3, 4, 5};
    const int64_t tracked = 12345678901;
    memcpy(data, &tracked, 8);
    memcpy(data + 8, stats, 16);
    write_st(in_dir(p, sizeof p, "bn-i64.safetensors"),
             "{\"bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
             "\"num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
             "\"running_mean\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
             "\"running_var\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]},"
             "\"weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[20,24]}}",
             true, data, sizeof data, -1);
    assert_int_equal(cg_load(p, bn, NULL, NULL, NULL), CG_OK);
    int64_t got;
    assert_int_equal(cg_copy_to_array(cg_module_find(bn, "num_batches_tracked"), CG_I64, &got),
                     CG_OK);
    assert_true(got == tracked);
    assert_float_equal(cg_item(cg_module_find(bn, "running_var")), 4, 0);
    assert_float_equal(cg_item(cg_module_find(bn, "weight")), 5, 0);
    cg_module_free(bn);
}

/* A writer that neither pads nor orders by alignment leaves tensors at
 * offsets misaligned for their dtype: they still load (UBSan would see a
 * misaligned read). Escapes in keys decode. */
static void test_checkpoint_misaligned_data_and_escapes(void **state) {
    (void)state;
    char p[128];
    unsigned char data[33] = {0xAB};
    memcpy(data + 1, tiny_bias, 8);
    memcpy(data + 9, tiny_weight, 24);
    const char *h = "{\"b\\u0069as\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]},"
                    "\"\\ud83d\\ude00\\n\\\"\":{\"dtype\":\"U8\",\"shape\":[1],"
                    "\"data_offsets\":[0,1]},"
                    "\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[9,33]}}";
    assert_true(strlen(h) % 8 != 0);
    write_st(in_dir(p, sizeof p, "unpadded.safetensors"), h, false, data, sizeof data, -1);
    cg_module *m = tiny(3);
    assert_int_equal(cg_load(p, m, NULL, NULL, NULL), CG_OK);
    assert_tiny_loaded(m);
    cg_module_free(m);
}

/* ---- bad files ------------------------------------------------------------------------------
 */
/* Loading path into a tiny model fails with want and a message holding
 * `says`, and leaves the model as it was. */
static void expect_bad(const char *path, cg_status want, const char *says) {
    cg_module *m = tiny(3), *ref = tiny(3);
    cg_status got = cg_load(path, m, NULL, NULL, NULL);
    if (got != want || !strstr(cg_last_error(), says) || !strstr(cg_last_error(), path))
        fail_msg("%s: got %s \"%s\", want %s with \"%s\"", path, cg_status_str(got),
                 cg_last_error(), cg_status_str(want), says);
    assert_same_state(m, ref);
    cg_module_free(m);
    cg_module_free(ref);
}

/* A tiny-model file with the given header, 32 data bytes (dlen of them). */
static void expect_bad_header(const char *header, size_t dlen, cg_status want,
                              const char *says) {
    char p[128];
    unsigned char data[64] = {0};
    assert_true(dlen <= sizeof data);
    write_st(in_dir(p, sizeof p, "bad.safetensors"), header, true, data, dlen, -1);
    expect_bad(p, want, says);
}

#define BIAS_OK     "\"bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define WEIGHT_OK   "\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]}"
#define GOOD_HEADER "{" BIAS_OK "," WEIGHT_OK "}"

static void test_checkpoint_bad_length_fields(void **state) {
    (void)state;
    char p[128];
    unsigned char five[5] = {1, 2, 3, 4, 5}, data[32] = {0};
    expect_bad(in_dir(p, sizeof p, "no-such-file.safetensors"), CG_ERR_IO,
               "No such file or directory");
    write_raw(in_dir(p, sizeof p, "empty.safetensors"), five, 0);
    expect_bad(p, CG_ERR_IO, "truncated");
    write_raw(in_dir(p, sizeof p, "five.safetensors"), five, sizeof five);
    expect_bad(p, CG_ERR_IO, "truncated");
    write_st(in_dir(p, sizeof p, "long.safetensors"), GOOD_HEADER, true, data, 32, 1000);
    expect_bad(p, CG_ERR_IO, "truncated");
    write_st(in_dir(p, sizeof p, "huge.safetensors"), GOOD_HEADER, true, data, 32,
             (int64_t)200 << 20);
    expect_bad(p, CG_ERR_IO, "oversized header");
    write_st(in_dir(p, sizeof p, "cut.safetensors"), GOOD_HEADER, true, data, 20, -1);
    expect_bad(p, CG_ERR_IO, "truncated");
    expect_bad(dir, CG_ERR_IO, "not a regular file");
}

static void test_checkpoint_bad_json(void **state) {
    (void)state;
    static const char *const bad[] = {
        "",
        "{",
        "{\"bias\":",
        "[1]",
        "{\"bias\":tru}",
        "{" BIAS_OK ",}",
        "{\"bias\" " BIAS_OK "}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"unterminated}",
        "{\"a\":[-1]}",
        "{\"a\":[1.5]}",
        "{\"a\":[01]}",
        "{\"a\":[99999999999999999999]}",
        "{\"a\":\"\\u0000\"}",
        "{\"a\":\"tab\there\"}",
        "{} {}", /* then 40 deep, past the parser's limit of 32: */
        ("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1"
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bad_header(bad[i], 32, CG_ERR_IO, "corrupt header");
}

static void test_checkpoint_bad_entries(void **state) {
    (void)state;
    expect_bad_header("{" BIAS_OK "}", 32, CG_ERR_ARG, "missing key \"weight\"");
    expect_bad_header("{" BIAS_OK ",\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],"
                      "\"data_offsets\":[8,32]}}",
                      32, CG_ERR_SHAPE, "weight: file [3,2] but model [2,3]");
    expect_bad_header("{" BIAS_OK ",\"weight\":{\"dtype\":\"F64\",\"shape\":[2,3],"
                      "\"data_offsets\":[8,56]}}",
                      56, CG_ERR_DTYPE, "weight: file F64 but model F32");
    expect_bad_header("{" BIAS_OK ",\"weight\":{\"dtype\":\"Q7\",\"shape\":[2,3],"
                      "\"data_offsets\":[8,32]}}",
                      32, CG_ERR_DTYPE, "unknown dtype \"Q7\"");
    expect_bad_header("{" BIAS_OK ",\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                      "\"data_offsets\":[100,124]}}",
                      32, CG_ERR_IO, "data_offsets [100,124]");
    expect_bad_header("{" BIAS_OK ",\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                      "\"data_offsets\":[8,30]}}",
                      32, CG_ERR_IO, "do not fit");
    expect_bad_header("{" BIAS_OK ",\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                      "\"data_offsets\":[4,28]}}",
                      32, CG_ERR_IO, "overlap");
    expect_bad_header("{" BIAS_OK ",\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3]}}", 32,
                      CG_ERR_IO, "needs dtype, shape and data_offsets");
    expect_bad_header("{" BIAS_OK "," WEIGHT_OK ",\"bias\":{\"dtype\":\"F32\",\"shape\":[2],"
                      "\"data_offsets\":[32,40]}}",
                      40, CG_ERR_IO, "twice");
    expect_bad_header("{\"__metadata__\":{\"n\":[1]}," BIAS_OK "," WEIGHT_OK "}", 32, CG_ERR_IO,
                      "__metadata__");
    expect_bad_header("{" BIAS_OK ",\"weight\":[1]}", 32, CG_ERR_IO, "not an object");
    expect_bad_header("{" BIAS_OK ",\"weight\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,"
                      "1],\"data_offsets\":[8,12]}}",
                      32, CG_ERR_SHAPE, "rank 9");
    expect_bad_header("{" BIAS_OK ",\"weight\":{\"dtype\":\"F32\",\"shape\":[4294967296,"
                      "4294967296,4294967296],\"data_offsets\":[8,32]}}",
                      32, CG_ERR_IO, "do not fit");
}

/* Every proper prefix of a real checkpoint is refused. */
static void test_checkpoint_every_truncation_refused(void **state) {
    (void)state;
    char p[128], q[128];
    cg_module *m = tiny(1);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "whole.safetensors"), m, NULL, NULL, NULL),
                     CG_OK);
    size_t n;
    unsigned char *b = read_raw(p, &n);
    for (size_t k = 0; k < n; k++) {
        write_raw(in_dir(q, sizeof q, "prefix.safetensors"), b, k);
        expect_bad(q, CG_ERR_IO, "truncated");
    }
    free(b);
    cg_module_free(m);
}

/* Any byte of a checkpoint changed to anything: a clean success or a clean
 * error that changes nothing, never a crash (the ASan build checks reads). */
static void test_checkpoint_corrupted_bytes_never_crash(void **state) {
    (void)state;
    static const unsigned char subst[] = {0x00, 0xFF, '"', '\\', '{', ']', '9', ',', 0x80};
    char p[128], q[128];
    cg_module *m = tiny(1), *ref = tiny(1);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "whole.safetensors"), m, NULL, NULL, NULL),
                     CG_OK);
    size_t n;
    unsigned char *b = read_raw(p, &n);
    for (size_t k = 0; k < n; k++)
        for (size_t s = 0; s < sizeof subst; s++) {
            unsigned char keep = b[k];
            b[k] = subst[s];
            write_raw(in_dir(q, sizeof q, "flipped.safetensors"), b, n);
            if (cg_load(q, m, NULL, NULL, NULL) != CG_OK) assert_same_state(m, ref);
            assert_int_equal(cg_copy_(cg_module_flat_params(m), cg_module_flat_params(ref)),
                             CG_OK);
            b[k] = keep;
        }
    free(b);
    cg_module_free(m);
    cg_module_free(ref);
}

/* A model-only file cannot restore an optimizer or rng; a file of another
 * optimizer kind is refused. Nothing changes, also not the model. */
static void test_checkpoint_missing_optimizer_or_rng_refused(void **state) {
    (void)state;
    char p[128], q[128];
    cg_module *src = tiny(1), *m = tiny(2), *ref = tiny(2);
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    so.momentum = 0.9;
    cg_adam_opts ao = cg_adam_defaults(0.1);
    cg_optim *sgd = cg_sgd_new(src, &so), *adam = cg_adam_new(m, &ao);
    cg_rng rng, before;
    cg_rng_seed(&rng, 4);
    before = rng;
    assert_int_equal(cg_save(in_dir(p, sizeof p, "plain.safetensors"), src, NULL, NULL, NULL),
                     CG_OK);
    assert_int_equal(cg_load(p, m, adam, NULL, NULL), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "no optimizer state"));
    assert_int_equal(cg_load(p, m, NULL, NULL, &rng), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "no rng state"));
    assert_int_equal(cg_save(in_dir(q, sizeof q, "sgd.safetensors"), src, sgd, NULL, &rng),
                     CG_OK);
    assert_int_equal(cg_load(q, m, adam, NULL, &rng), CG_ERR_ARG);
    assert_non_null(
        strstr(cg_last_error(), "the file holds sgd state but the optimizer is adam"));
    assert_same_state(m, ref);
    assert_memory_equal(&rng, &before, sizeof rng);
    assert_int_equal(cg_optim_steps(adam), 0);
    cg_optim_free(sgd);
    cg_optim_free(adam);
    cg_module_free(src);
    cg_module_free(m);
    cg_module_free(ref);
}

/* ---- writing safely
 * --------------------------------------------------------------------------- */
/* A save that fails (missing directory; the final rename refused) reports
 * the path and the system's reason, and leaves no temporary file. */
static void test_checkpoint_failed_save_keeps_old_file(void **state) {
    (void)state;
    char good[128], bad[128], sub[128];
    cg_module *a = tiny(1), *b = tiny(2);
    assert_int_equal(
        cg_save(in_dir(good, sizeof good, "good.safetensors"), a, NULL, NULL, NULL), CG_OK);
    size_t n0, n1;
    unsigned char *before = read_raw(good, &n0);
    assert_int_equal(
        cg_save(in_dir(bad, sizeof bad, "missing/m.safetensors"), b, NULL, NULL, NULL),
        CG_ERR_IO);
    assert_non_null(strstr(cg_last_error(), "cg_save"));
    assert_non_null(strstr(cg_last_error(), bad));
    assert_non_null(strstr(cg_last_error(), "No such file or directory"));
    assert_int_equal(mkdir(in_dir(sub, sizeof sub, "adir"), 0700), 0);
    assert_int_equal(cg_save(sub, b, NULL, NULL, NULL), CG_ERR_IO);
    assert_non_null(strstr(cg_last_error(), sub));
    assert_int_equal(temporaries("adir"), 0);
    assert_int_equal(rmdir(sub), 0);
    unsigned char *after = read_raw(good, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);
    cg_module_free(a);
    cg_module_free(b);
}

/* Saving over a checkpoint replaces it whole, with the usual permissions,
 * and leaves no temporary behind. */
static void test_checkpoint_save_replaces_file(void **state) {
    (void)state;
    char p[128];
    cg_module *a = tiny(1), *b = tiny(2), *c = tiny(3);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "over.safetensors"), a, NULL, NULL, NULL),
                     CG_OK);
    assert_int_equal(cg_save(p, b, NULL, NULL, NULL), CG_OK);
    assert_int_equal(temporaries("over.safetensors"), 0);
    mode_t mask = umask(0); /* the file's mode is fopen's 0666 less the umask, not 0600 */
    umask(mask);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0666 & ~mask);
    assert_int_equal(cg_load(p, c, NULL, NULL, NULL), CG_OK);
    assert_same_state(b, c);
    cg_module_free(a);
    cg_module_free(b);
    cg_module_free(c);
}

/* Same dtype, shape and bytes. */
static void assert_same_tensor(const cg_tensor *a, const cg_tensor *b) {
    assert_int_equal(cg_dtype_of(a), cg_dtype_of(b));
    assert_int_equal(cg_ndim(a), cg_ndim(b));
    assert_true(cg_same_shape(a, b));
    size_t n = (size_t)cg_numel(a) * cg_dtype_size(cg_dtype_of(a));
    unsigned char *x = malloc(n + 1), *y = malloc(n + 1);
    assert_int_equal(cg_copy_to_array(a, cg_dtype_of(a), x), CG_OK);
    assert_int_equal(cg_copy_to_array(b, cg_dtype_of(b), y), CG_OK);
    assert_memory_equal(x, y, n);
    free(x);
    free(y);
}

/* ---- non-strict loading ----------------------------------------------------------------- */
/* Linear(3, 4), Tanh, Linear(4, 2): "0.weight", "0.bias", "2.weight", "2.bias". */
static cg_module *linear_act_linear(uint64_t seed) {
    cg_rng rng = seeded(seed);
    cg_module *kids[] = {cg_nn_linear(&rng, CG_F32, 3, 4, true), cg_nn_activation(CG_ACT_TANH),
                         cg_nn_linear(&rng, CG_F32, 4, 2, true)};
    cg_module *m = cg_nn_sequential(3, kids);
    assert_non_null(m);
    return m;
}

static void assert_list(char *const *got, int n, const char *const *want, int nwant) {
    assert_int_equal(n, nwant);
    for (int i = 0; i < n; i++) assert_string_equal(got[i], want[i]);
}

/* linear_bn's file (with SGD momentum state) into linear_act_linear: "0.*"
 * load, "2.*" are missing, batch norm's five tensors are unexpected and
 * the optimizer's are not. */
static void test_checkpoint_non_strict_reports_missing_and_unexpected(void **state) {
    (void)state;
    char p[128];
    cg_module *src = linear_bn(1), *m = linear_act_linear(2), *ref = linear_act_linear(2);
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    so.momentum = 0.9;
    cg_optim *o = cg_sgd_new(src, &so);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "bn-opt.safetensors"), src, o, NULL, NULL),
                     CG_OK);
    cg_load_opts opts = cg_load_defaults();
    assert_true(opts.strict);
    opts.strict = false;
    cg_load_report r;
    assert_int_equal(cg_load_ex(p, m, NULL, NULL, NULL, &opts, &r), CG_OK);
    static const char *const missing[] = {"2.weight", "2.bias"};
    static const char *const unexpected[] = {"1.bias", "1.num_batches_tracked",
                                             "1.running_mean", "1.running_var", "1.weight"};
    assert_list(r.missing, r.nmissing, missing, 2);
    assert_list(r.unexpected, r.nunexpected, unexpected, 5);
    for (int i = 0; i < 2; i++) {
        const char *name;
        cg_tensor *t = cg_module_state(m, i, &name, NULL);
        assert_same_tensor(t, cg_module_find(src, name));
        t = cg_module_state(m, i + 2, &name, NULL);
        assert_same_tensor(t, cg_module_find(ref, name));
    }
    cg_load_report_free(&r);
    assert_int_equal(r.nmissing, 0);
    assert_null(r.missing);
    assert_int_equal(cg_load_ex(p, m, NULL, NULL, NULL, &opts, NULL), CG_OK); /* no report */
    cg_optim_free(o);
    cg_module_free(src);
    cg_module_free(m);
    cg_module_free(ref);
}

/* Strict (the default, also with opts NULL): the first missing key is an
 * error, the report stays zeroed and nothing changes. Shape mismatches are
 * errors in both modes. */
static void test_checkpoint_strict_refuses_missing_and_mismatch(void **state) {
    (void)state;
    char p[128];
    cg_rng rng = seeded(3);
    cg_module *src = linear_bn(1), *m = linear_act_linear(2), *ref = linear_act_linear(2);
    cg_module *kids[] = {cg_nn_linear(&rng, CG_F32, 3, 4, true),
                         cg_nn_linear(&rng, CG_F32, 4, 4, true)};
    cg_module *wide = cg_nn_sequential(2, kids), *wide_ref = NULL;
    assert_non_null(wide);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "bn.safetensors"), src, NULL, NULL, NULL),
                     CG_OK);
    cg_load_report r = {.nmissing = 7}; /* garbage in: zeroed on return */
    cg_load_opts lax = {.strict = false};
    const cg_load_opts *both[] = {NULL, &lax};
    assert_int_equal(cg_load_ex(p, m, NULL, NULL, NULL, NULL, &r), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "cg_load_ex"));
    assert_non_null(strstr(cg_last_error(), "missing key \"2.weight\""));
    assert_int_equal(r.nmissing, 0);
    assert_null(r.missing);
    assert_same_state(m, ref);
    wide_ref = cg_nn_sequential(2, (cg_module *[]){cg_nn_linear(&rng, CG_F32, 3, 4, true),
                                                   cg_nn_linear(&rng, CG_F32, 4, 4, true)});
    assert_int_equal(cg_copy_(cg_module_flat_params(wide_ref), cg_module_flat_params(wide)),
                     CG_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cg_load_ex(p, wide, NULL, NULL, NULL, both[i], &r), CG_ERR_SHAPE);
        assert_non_null(strstr(cg_last_error(), "1.weight: file [4] but model [4,4]"));
        assert_int_equal(r.nunexpected, 0);
        assert_same_state(wide, wide_ref);
    }
    cg_module_free(src);
    cg_module_free(m);
    cg_module_free(ref);
    cg_module_free(wide);
    cg_module_free(wide_ref);
}

/* A strict load still takes a file's extra tensors, and reports them. */
static void test_checkpoint_strict_reports_unexpected(void **state) {
    (void)state;
    char p[128];
    unsigned char data[44] = {0};
    memcpy(data + 8, tiny_bias, 8);
    memcpy(data + 16, tiny_weight, 24);
    write_st(in_dir(p, sizeof p, "extra.safetensors"),
             "{\"a.count\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
             "\"bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
             "\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[16,40]},"
             "\"z.half\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[40,44]}}",
             true, data, sizeof data, -1);
    cg_module *m = tiny(3);
    cg_load_report r;
    assert_int_equal(cg_load_ex(p, m, NULL, NULL, NULL, NULL, &r), CG_OK);
    assert_tiny_loaded(m);
    assert_int_equal(r.nmissing, 0);
    assert_list(r.unexpected, r.nunexpected, (const char *const[]){"a.count", "z.half"}, 2);
    cg_load_report_free(&r);
    cg_load_report_free(&r); /* zeroed: fine */
    cg_load_report_free(NULL);
    cg_module_free(m);
}

/* ---- named tensors ------------------------------------------------------------------------
 */
/* f32, a rank-0 f64, an empty i64 and a transposed (non-contiguous) view
 * come back as values, in name order. */
static void test_checkpoint_tensors_roundtrip(void **state) {
    (void)state;
    char p[128];
    cg_rng rng = seeded(7);
    cg_tensor *f = cg_randn(NULL, &rng, CG_F32, CG_SHAPE(2, 3), 0, 1);
    cg_tensor *d = cg_scalar(NULL, CG_F64, -2.5);
    cg_tensor *e = cg_zeros(NULL, CG_I64, 2, (const int64_t[]){0, 2});
    cg_tensor *v = cg_transpose(NULL, f, 0, 1);
    assert_false(cg_is_contiguous(v));
    const char *names[] = {"z.f32", "b.f64", "m.empty", "a.view"};
    const cg_tensor *ts[] = {f, d, e, v};
    assert_int_equal(cg_save_tensors(in_dir(p, sizeof p, "dict.safetensors"), 4, names, ts),
                     CG_OK);
    cg_tensor_dict dict;
    assert_int_equal(cg_load_tensors(p, &dict), CG_OK);
    assert_int_equal(dict.n, 4);
    static const int order[] = {3, 1, 2, 0}; /* a.view, b.f64, m.empty, z.f32 */
    for (int i = 0; i < 4; i++) {
        assert_string_equal(dict.names[i], names[order[i]]);
        assert_same_tensor(dict.tensors[i], ts[order[i]]);
        assert_true(cg_is_contiguous(dict.tensors[i]));
    }
    cg_tensor_dict_free(&dict);
    cg_tensor_dict_free(&dict); /* zeroed: fine */
    cg_tensor_dict_free(NULL);
    assert_int_equal(cg_save_tensors(p, 0, NULL, NULL), CG_OK); /* an empty file */
    assert_int_equal(cg_load_tensors(p, &dict), CG_OK);
    assert_int_equal(dict.n, 0);
    cg_tensor_dict_free(&dict);
    cg_tensor_free(v);
    cg_tensor_free(f);
    cg_tensor_free(d);
    cg_tensor_free(e);
}

/* A cg_save file is a dictionary too, the optimizer's tensors included;
 * a module loads from a cg_save_tensors file of its names. */
static void test_checkpoint_tensors_interoperate_with_modules(void **state) {
    (void)state;
    char p[128];
    cg_module *m = tiny(1), *back = tiny(2);
    cg_sgd_opts so = cg_sgd_defaults(0.1);
    so.momentum = 0.9;
    cg_optim *o = cg_sgd_new(m, &so);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "mod.safetensors"), m, o, NULL, NULL), CG_OK);
    cg_tensor_dict dict;
    assert_int_equal(cg_load_tensors(p, &dict), CG_OK);
    assert_int_equal(dict.n, 3);
    assert_string_equal(dict.names[0], "bias");
    assert_string_equal(dict.names[1], "optimizer.momentum_buffer");
    assert_string_equal(dict.names[2], "weight");
    assert_same_tensor(dict.tensors[2], cg_module_find(m, "weight"));
    const char *names[] = {dict.names[2], dict.names[0]};
    const cg_tensor *ts[] = {dict.tensors[2], dict.tensors[0]};
    assert_int_equal(cg_save_tensors(p, 2, names, ts), CG_OK);
    assert_int_equal(cg_load(p, back, NULL, NULL, NULL), CG_OK);
    assert_same_state(m, back);
    cg_tensor_dict_free(&dict);
    cg_optim_free(o);
    cg_module_free(m);
    cg_module_free(back);
}

static void expect_save_tensors_error(int n, const char *const *names,
                                      const cg_tensor *const *ts, const char *says) {
    char p[128];
    in_dir(p, sizeof p, "never.safetensors");
    cg_clear_error(); /* a NULL tensor after an error keeps that error */
    assert_int_equal(cg_save_tensors(p, n, names, ts), CG_ERR_ARG);
    if (!strstr(cg_last_error(), says) || !strstr(cg_last_error(), "cg_save_tensors"))
        fail_msg("got \"%s\", want \"%s\"", cg_last_error(), says);
    assert_false(exists(p));
}

static void test_checkpoint_tensors_bad_arguments(void **state) {
    (void)state;
    cg_tensor *t = cg_scalar(NULL, CG_F32, 1);
    const cg_tensor *two[] = {t, t}, *hole[] = {t, NULL};
    expect_save_tensors_error(2, (const char *[]){"a", "a"}, two, "\"a\" appears twice");
    expect_save_tensors_error(3, (const char *[]){"b", "a", "b"},
                              (const cg_tensor *[]){t, t, t}, "\"b\" appears twice");
    expect_save_tensors_error(2, (const char *[]){"a", NULL}, two, "name 1 is NULL");
    expect_save_tensors_error(2, (const char *[]){"a", "b"}, hole, "tensor 1 is NULL");
    expect_save_tensors_error(1, (const char *[]){"__metadata__"}, two, "format's own key");
    expect_save_tensors_error(-1, NULL, NULL, "n -1 < 0");
    expect_save_tensors_error(1, NULL, two, "NULL");
    assert_int_equal(cg_save_tensors(NULL, 1, (const char *[]){"a"}, two), CG_ERR_ARG);
    assert_int_equal(cg_load_tensors("x", NULL), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "cg_load_tensors"));
    cg_tensor_free(t);
}

/* A dtype cgrad does not hold, a missing or corrupt file: an error naming
 * the function, the path and the problem, and *out zeroed. */
static void test_checkpoint_tensors_load_errors(void **state) {
    (void)state;
    char p[128];
    unsigned char data[12] = {0};
    cg_tensor_dict dict = {.n = 3};
    write_st(in_dir(p, sizeof p, "bf16.safetensors"),
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}",
             true, data, sizeof data, -1);
    assert_int_equal(cg_load_tensors(p, &dict), CG_ERR_DTYPE);
    assert_non_null(strstr(cg_last_error(), "cg_load_tensors"));
    assert_non_null(strstr(cg_last_error(), p));
    assert_non_null(
        strstr(cg_last_error(), "b: dtype BF16, cgrad holds only F32, F64 and I64"));
    assert_int_equal(dict.n, 0);
    assert_null(dict.names);
    assert_int_equal(cg_load_tensors(in_dir(p, sizeof p, "nope.safetensors"), &dict),
                     CG_ERR_IO);
    assert_non_null(strstr(cg_last_error(), "No such file"));
    write_st(in_dir(p, sizeof p, "bad.safetensors"), "{\"a\":", true, data, 8, -1);
    assert_int_equal(cg_load_tensors(p, &dict), CG_ERR_IO);
    assert_non_null(strstr(cg_last_error(), "corrupt header"));
    assert_int_equal(dict.n, 0);
}

/* ---- safe temporaries -----------------------------------------------------------------------
 */
/* A link planted at the old fixed temporary name, pointing at a victim, is
 * left alone: the victim keeps its bytes. */
static void test_checkpoint_save_ignores_planted_symlink(void **state) {
    (void)state;
    char p[128], link[140], victim[128];
    struct stat sb;
    write_raw(in_dir(victim, sizeof victim, "victim"), "precious", 8);
    in_dir(p, sizeof p, "sym.safetensors");
    snprintf(link, sizeof link, "%s.tmp", p);
    assert_int_equal(symlink(victim, link), 0);
    cg_module *m = tiny(1), *back = tiny(2);
    assert_int_equal(cg_save(p, m, NULL, NULL, NULL), CG_OK);
    size_t n;
    unsigned char *b = read_raw(victim, &n);
    assert_int_equal(n, 8);
    assert_memory_equal(b, "precious", 8);
    free(b);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(temporaries("sym.safetensors"), 1); /* the link only */
    assert_int_equal(cg_load(p, back, NULL, NULL, NULL), CG_OK);
    assert_same_state(m, back);
    cg_module_free(m);
    cg_module_free(back);
}

/* A child saving m to path `times` times; exits 0 when every save worked. */
static pid_t saver(const char *path, const cg_module *m, int times) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int bad = 0;
        for (int i = 0; i < times; i++) bad += cg_save(path, m, NULL, NULL, NULL) != CG_OK;
        _exit(bad ? 1 : 0);
    }
    return pid;
}

/* Two processes saving different models to one path while a third loads
 * it: every load finds one whole model, and so does the last. */
/* A save killed mid-write leaves its temporary "<path>.tmp.<pid>.XXXXXX";
 * the next save to that path removes those whose process is gone, and
 * keeps a live process's (it may be saving right now) and other names. */
static void test_checkpoint_save_sweeps_stale_temporaries(void **state) {
    (void)state;
    char p[128], dead[200], live[200], other[200];
    in_dir(p, sizeof p, "stale.safetensors");
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) _exit(0);
    assert_int_equal(waitpid(child, NULL, 0), child); /* reaped: the pid is gone */
    snprintf(dead, sizeof dead, "%s.tmp.%ld.abcDE9", p, (long)child);
    snprintf(live, sizeof live, "%s.tmp.%ld.abcDE9", p, (long)getppid());
    snprintf(other, sizeof other, "%s.tmp.%ld.abc", p, (long)child); /* not one of ours */
    write_raw(dead, "half", 4);
    write_raw(live, "half", 4);
    write_raw(other, "half", 4);
    cg_module *m = tiny(1);
    assert_int_equal(cg_save(p, m, NULL, NULL, NULL), CG_OK);
    struct stat sb;
    assert_int_equal(stat(dead, &sb), -1);
    assert_int_equal(stat(live, &sb), 0);
    assert_int_equal(stat(other, &sb), 0);
    assert_int_equal(temporaries("stale.safetensors"), 2);
    remove(live);
    remove(other);
    cg_module_free(m);
}

static void test_checkpoint_concurrent_saves_leave_one_model(void **state) {
    (void)state;
    char p[128];
    cg_module *a = mlp(1, CG_F64), *b = mlp(2, CG_F64), *c = mlp(3, CG_F64);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "race.safetensors"), a, NULL, NULL, NULL),
                     CG_OK);
    pid_t pids[2] = {saver(p, a, 60), saver(p, b, 60)};
    int running = 2, loads = 0, bad = 0, status;
    /* no assertion until both children are reaped: none may outlive the test */
    while (running) {
        bool whole = cg_load(p, c, NULL, NULL, NULL) == CG_OK &&
                     (!state_differs(c, a) || !state_differs(c, b));
        bad += !whole;
        loads++;
        for (int i = 0; i < 2; i++)
            if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
                bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
                pids[i] = 0;
                running--;
            }
    }
    assert_int_equal(bad, 0);
    assert_true(loads > 0);
    assert_int_equal(cg_load(p, c, NULL, NULL, NULL), CG_OK);
    assert_true(!state_differs(c, a) || !state_differs(c, b));
    assert_int_equal(temporaries("race.safetensors"), 0);
    cg_module_free(a);
    cg_module_free(b);
    cg_module_free(c);
}

/* A write that fails midway (a file-size limit, in a child) reports the
 * system's reason, keeps the old file and removes its temporary. */
static void test_checkpoint_failed_write_keeps_old_file(void **state) {
    (void)state;
    char p[128];
    cg_module *small = tiny(1), *big = mlp(2, CG_F64);
    assert_int_equal(cg_save(in_dir(p, sizeof p, "limit.safetensors"), small, NULL, NULL, NULL),
                     CG_OK);
    size_t n0, n1;
    unsigned char *before = read_raw(p, &n0);
    assert_true(n0 < 400);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit lim = {400, 400};
        signal(SIGXFSZ, SIG_IGN);
        bool ok = setrlimit(RLIMIT_FSIZE, &lim) == 0 &&
                  cg_save(p, big, NULL, NULL, NULL) == CG_ERR_IO &&
                  strstr(cg_last_error(), "File too large") && strstr(cg_last_error(), p);
        free(before); /* the child's copies too: valgrind checks it for leaks */
        cg_module_free(small);
        cg_module_free(big);
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unsigned char *after = read_raw(p, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    assert_int_equal(temporaries("limit.safetensors"), 0);
    free(before);
    free(after);
    cg_module_free(small);
    cg_module_free(big);
}

static void test_checkpoint_null_arguments(void **state) {
    (void)state;
    cg_module *m = tiny(1);
    assert_int_equal(cg_save(NULL, m, NULL, NULL, NULL), CG_ERR_ARG);
    assert_int_equal(cg_save("x", NULL, NULL, NULL, NULL), CG_ERR_ARG);
    assert_int_equal(cg_load(NULL, m, NULL, NULL, NULL), CG_ERR_ARG);
    assert_int_equal(cg_load("x", NULL, NULL, NULL, NULL), CG_ERR_ARG);
    assert_non_null(strstr(cg_last_error(), "cg_load"));
    cg_module_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_roundtrip_mlp_f32),
        cmocka_unit_test(test_checkpoint_roundtrip_mlp_f64),
        cmocka_unit_test(test_checkpoint_roundtrip_batchnorm_buffers),
        cmocka_unit_test(test_checkpoint_optimizer_resume_is_bitwise),
        cmocka_unit_test(test_checkpoint_golden_bytes),
        cmocka_unit_test(test_checkpoint_golden_bytes_optimizer),
        cmocka_unit_test(test_checkpoint_loads_pytorch_style_file),
        cmocka_unit_test(test_checkpoint_loads_i64_buffer),
        cmocka_unit_test(test_checkpoint_misaligned_data_and_escapes),
        cmocka_unit_test(test_checkpoint_bad_length_fields),
        cmocka_unit_test(test_checkpoint_bad_json),
        cmocka_unit_test(test_checkpoint_bad_entries),
        cmocka_unit_test(test_checkpoint_every_truncation_refused),
        cmocka_unit_test(test_checkpoint_corrupted_bytes_never_crash),
        cmocka_unit_test(test_checkpoint_missing_optimizer_or_rng_refused),
        cmocka_unit_test(test_checkpoint_failed_save_keeps_old_file),
        cmocka_unit_test(test_checkpoint_save_replaces_file),
        cmocka_unit_test(test_checkpoint_null_arguments),
        cmocka_unit_test(test_checkpoint_tied_weights),
        cmocka_unit_test(test_checkpoint_resume_with_dropout_is_bitwise),
        cmocka_unit_test(test_checkpoint_resume_with_schedule_is_bitwise),
        cmocka_unit_test(test_checkpoint_missing_schedule_refused),
        cmocka_unit_test(test_checkpoint_loads_file_without_hook_keys),
        cmocka_unit_test(test_checkpoint_non_strict_reports_missing_and_unexpected),
        cmocka_unit_test(test_checkpoint_strict_refuses_missing_and_mismatch),
        cmocka_unit_test(test_checkpoint_strict_reports_unexpected),
        cmocka_unit_test(test_checkpoint_tensors_roundtrip),
        cmocka_unit_test(test_checkpoint_tensors_interoperate_with_modules),
        cmocka_unit_test(test_checkpoint_tensors_bad_arguments),
        cmocka_unit_test(test_checkpoint_tensors_load_errors),
        cmocka_unit_test(test_checkpoint_save_ignores_planted_symlink),
        cmocka_unit_test(test_checkpoint_concurrent_saves_leave_one_model),
        cmocka_unit_test(test_checkpoint_save_sweeps_stale_temporaries),
        cmocka_unit_test(test_checkpoint_failed_write_keeps_old_file),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
