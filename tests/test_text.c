/* The byte-level text loader (nn/text.c): vocabulary, encode / decode, the
 * vocabulary as a tensor and a file, a text file as ids, the split by
 * position, the random window sampler, errors. Files are written to /tmp
 * by the tests themselves. */
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

/* A new file under /tmp holding n bytes of data; its path into path. */
static void temp_file(char *path, size_t size, const void *data, size_t n) {
    snprintf(path, size, "/tmp/cgrad-text-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
}

static void test_text_vocab_build(void **state) {
    (void)state;
    cg_vocab v;
    const char *s = "banana band";
    assert_int_equal(cg_vocab_build(&v, s, (int64_t)strlen(s)), CG_OK);
    assert_int_equal(v.size, 5);
    assert_memory_equal(v.bytes, " abdn", 5);
    assert_int_equal(v.ids['a'], 1);
    assert_int_equal(v.ids['n'], 4);
    assert_int_equal(v.ids['z'], -1);
    /* every byte value, including 0 and 255 */
    unsigned char all[256];
    for (int i = 0; i < 256; i++) all[i] = (unsigned char)(255 - i);
    assert_int_equal(cg_vocab_build(&v, all, 256), CG_OK);
    assert_int_equal(v.size, 256);
    assert_int_equal(v.bytes[0], 0);
    assert_int_equal(v.bytes[255], 255);
    assert_int_equal(cg_vocab_build(&v, NULL, 0), CG_OK);
    assert_int_equal(v.size, 0);
}

static void test_text_encode_decode(void **state) {
    cg_ctx *ctx = *state;
    cg_vocab v;
    const char *s = "banana band";
    assert_int_equal(cg_vocab_build(&v, s, 11), CG_OK);
    cg_tensor *ids = cg_vocab_encode(ctx, &v, "band nab", 8);
    assert_values(ids, (const double[]){2, 1, 4, 3, 0, 4, 1, 2}, 8, 0);
    char out[16];
    assert_int_equal(cg_vocab_decode(&v, ids, out, sizeof out), CG_OK);
    assert_string_equal(out, "band nab");
    /* any layout: a reversed view */
    cg_tensor *rev = cg_flip(ctx, ids, (const int[]){0}, 1);
    assert_int_equal(cg_vocab_decode(&v, rev, out, sizeof out), CG_OK);
    assert_string_equal(out, "ban dnab");
    /* and any shape, in C order */
    cg_tensor *two = cg_reshape(ctx, ids, CG_SHAPE(2, 4));
    assert_int_equal(cg_vocab_decode(&v, two, out, 9), CG_OK);
    assert_string_equal(out, "band nab");
}

static void test_text_encode_decode_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_vocab v;
    assert_int_equal(cg_vocab_build(&v, "abc", 3), CG_OK);
    assert_null(cg_vocab_encode(ctx, &v, "abz", 3));
    assert_error(CG_ERR_ARG,
                 "cg_vocab_encode: byte 0x7a at 2 is not in the vocabulary (3 bytes)");
    assert_null(cg_vocab_encode(NULL, &v, "abz", 3)); /* caller-owned: nothing leaks */
    assert_error(CG_ERR_ARG, "byte 0x7a");
    assert_null(cg_vocab_encode(ctx, NULL, "a", 1));
    assert_error(CG_ERR_ARG, "vocab is NULL");
    char out[8];
    cg_tensor *ids = cg_from_array(ctx, CG_I64, CG_SHAPE(3), (const int64_t[]){0, 3, 1});
    assert_int_equal(cg_vocab_decode(&v, ids, out, sizeof out), CG_ERR_INDEX);
    assert_error(CG_ERR_INDEX, "cg_vocab_decode: id 3 at 1 is outside [0, 3)");
    assert_int_equal(cg_vocab_decode(&v, ids, out, 3), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "3 ids need 4 bytes of out, got 3");
    assert_int_equal(cg_vocab_decode(&v, cg_zeros(ctx, CG_F32, CG_SHAPE(2)), out, 8),
                     CG_ERR_DTYPE);
    assert_error(CG_ERR_DTYPE, "ids are f32, need i64");
    assert_int_equal(cg_vocab_decode(&v, ids, NULL, 8), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "out is NULL");
}

static void test_text_vocab_tensor_roundtrip(void **state) {
    cg_ctx *ctx = *state;
    cg_vocab v, w;
    assert_int_equal(cg_vocab_build(&v, "Hello\n", 6), CG_OK);
    cg_tensor *t = cg_vocab_tensor(ctx, &v);
    assert_values(t, (const double[]){'\n', 'H', 'e', 'l', 'o'}, 5, 0);
    assert_int_equal(cg_vocab_from_tensor(&w, t), CG_OK);
    assert_int_equal(w.size, 5);
    assert_memory_equal(w.bytes, v.bytes, 5);
    assert_memory_equal(w.ids, v.ids, sizeof v.ids);
    /* the same through a file, as saved beside a checkpoint */
    char path[64];
    temp_file(path, sizeof path, "", 0);
    assert_int_equal(cg_vocab_save(path, &v), CG_OK);
    memset(&w, 0, sizeof w);
    assert_int_equal(cg_vocab_load(path, &w), CG_OK);
    assert_memory_equal(&w, &v, sizeof v);
    remove(path);
}

static void test_text_vocab_tensor_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_vocab v;
    assert_int_equal(cg_vocab_build(&v, "ab", 2), CG_OK);
    cg_vocab kept = v;
    const int64_t unsorted[] = {98, 97};
    assert_int_equal(
        cg_vocab_from_tensor(&v, cg_from_array(ctx, CG_I64, CG_SHAPE(2), unsorted)),
        CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "entry 1 is 97: need increasing bytes in [0, 255]");
    assert_int_equal(cg_vocab_from_tensor(&v, cg_full(ctx, CG_I64, CG_SHAPE(1), 256)),
                     CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "entry 0 is 256");
    assert_int_equal(cg_vocab_from_tensor(&v, cg_zeros(ctx, CG_I64, CG_SHAPE(1, 2))),
                     CG_ERR_SHAPE);
    assert_error(CG_ERR_SHAPE, "[1,2]: need a 1-D tensor");
    assert_int_equal(cg_vocab_from_tensor(&v, cg_zeros(ctx, CG_F64, CG_SHAPE(2))),
                     CG_ERR_DTYPE);
    assert_error(CG_ERR_DTYPE, "need i64");
    assert_memory_equal(&v, &kept, sizeof v); /* unchanged by every failure */
    /* a safetensors file without "vocab" */
    char path[64];
    temp_file(path, sizeof path, "", 0);
    cg_tensor *x = cg_zeros(ctx, CG_F32, CG_SHAPE(2));
    assert_int_equal(
        cg_save_tensors(path, 1, (const char *const[]){"other"}, (const cg_tensor *const[]){x}),
        CG_OK);
    assert_int_equal(cg_vocab_load(path, &v), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "has no tensor \"vocab\"");
    remove(path);
    assert_int_equal(cg_vocab_load(path, &v), CG_ERR_IO);
    cg_clear_error();
}

static void test_text_load_and_split(void **state) {
    (void)state;
    char path[64], text[1000];
    for (int i = 0; i < 1000; i++) text[i] = "the quick brown fox\n"[i % 20];
    temp_file(path, sizeof path, text, sizeof text);
    cg_text t;
    assert_int_equal(cg_text_load(path, NULL, &t), CG_OK);
    assert_int_equal(t.vocab.size, 17); /* "\n", " ", "bcefhiknoqrtuwx" */
    assert_int_equal(cg_numel(t.ids), 1000);
    static char back[1001];
    assert_int_equal(cg_vocab_decode(&t.vocab, t.ids, back, sizeof back), CG_OK);
    assert_memory_equal(back, text, 1000);
    cg_tensor *train, *val;
    assert_int_equal(cg_text_split(t.ids, 0.9, &train, &val), CG_OK);
    assert_int_equal(cg_numel(train), 900);
    assert_int_equal(cg_numel(val), 100);
    int64_t first;
    assert_int_equal(cg_get_i64(val, (const int64_t[]){0}, &first), CG_OK);
    assert_int_equal(first, t.vocab.ids[(unsigned char)text[900]]); /* by position */
    int64_t want = t.vocab.ids[(unsigned char)text[899]];
    cg_text_free(&t); /* the views keep the storage */
    assert_int_equal(cg_get_i64(train, (const int64_t[]){899}, &first), CG_OK);
    assert_int_equal(first, want);
    cg_tensor_free(train);
    cg_tensor_free(val);
    remove(path);
}

/* A vocabulary given (say, a checkpoint's) is used as it is. */
static void test_text_load_with_vocab(void **state) {
    (void)state;
    char path[64];
    temp_file(path, sizeof path, "cab", 3);
    cg_vocab v;
    assert_int_equal(cg_vocab_build(&v, "abcdef", 6), CG_OK);
    cg_text t;
    assert_int_equal(cg_text_load(path, &v, &t), CG_OK);
    assert_int_equal(t.vocab.size, 6);
    assert_values(t.ids, (const double[]){2, 0, 1}, 3, 0);
    cg_text_free(&t);
    assert_int_equal(cg_vocab_build(&v, "ab", 2), CG_OK);
    assert_int_equal(cg_text_load(path, &v, &t), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "byte 0x63 at 0");
    assert_null(t.ids);
    remove(path);
}

static void test_text_load_errors(void **state) {
    (void)state;
    cg_text t;
    assert_int_equal(cg_text_load("/nonexistent/cgrad.txt", NULL, &t), CG_ERR_IO);
    assert_error(CG_ERR_IO, "cg_text_load: /nonexistent/cgrad.txt: No such file");
    char path[64];
    temp_file(path, sizeof path, "", 0);
    assert_int_equal(cg_text_load(path, NULL, &t), CG_ERR_IO);
    assert_error(CG_ERR_IO, "is empty");
    remove(path);
    assert_int_equal(cg_text_load(NULL, NULL, &t), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "path is NULL");
    cg_text_free(NULL);
}

static void test_text_split_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *ids = cg_zeros(NULL, CG_I64, CG_SHAPE(10)), *a = NULL, *b = NULL;
    assert_int_equal(cg_text_split(ids, 1.5, &a, &b), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "train_frac in [0, 1] (got 1.5)");
    assert_int_equal(cg_text_split(cg_zeros(ctx, CG_I64, CG_SHAPE(2, 5)), 0.5, &a, &b),
                     CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "need 1-D ids");
    assert_int_equal(cg_text_split(ids, 1.0, &a, &b), CG_OK); /* an empty validation part */
    assert_int_equal(cg_numel(b), 0);
    cg_tensor_free(a);
    cg_tensor_free(b);
    cg_tensor_free(ids);
}

/* Windows are consecutive runs of the ids, their starts spread over [0, N - len]. */
static void test_text_batch_windows(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *ids = cg_arange(ctx, CG_I64, 0, 50, 1);
    cg_rng rng = seeded(1), again = seeded(1);
    cg_tensor *w = cg_text_batch(ctx, ids, 200, 11, &rng);
    assert_int_equal(cg_dim(w, 0), 200);
    assert_int_equal(cg_dim(w, 1), 11);
    const int64_t *p = cg_data(w);
    bool seen_first = false, seen_last = false;
    for (int b = 0; b < 200; b++) {
        for (int t = 1; t < 11; t++) assert_int_equal(p[b * 11 + t], p[b * 11] + t);
        assert_true(p[b * 11] >= 0 && p[b * 11] <= 39);
        seen_first |= p[b * 11] == 0;
        seen_last |= p[b * 11] == 39;
    }
    assert_true(seen_first && seen_last);
    /* the same rng state, the same windows; a strided view works too */
    cg_tensor *w2 = cg_text_batch(ctx, ids, 200, 11, &again);
    assert_memory_equal(cg_data(w2), p, sizeof(int64_t) * 200 * 11);
    cg_tensor *evens = cg_slice(ctx, ids, 0, 0, CG_END, 2);
    cg_tensor *e = cg_text_batch(ctx, evens, 3, 4, &rng);
    const int64_t *q = cg_data(e);
    for (int t = 1; t < 4; t++) assert_int_equal(q[t], q[0] + 2 * t);
    /* len == N: the only window */
    assert_values(cg_text_batch(ctx, cg_arange(ctx, CG_I64, 0, 3, 1), 1, 3, &rng),
                  (const double[]){0, 1, 2}, 3, 0);
}

static void test_text_batch_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_rng rng = seeded(2);
    cg_tensor *ids = cg_arange(ctx, CG_I64, 0, 5, 1);
    assert_null(cg_text_batch(ctx, ids, 2, 6, &rng));
    assert_error(CG_ERR_ARG, "cg_text_batch: ids [5] of i64, batch 2, len 6");
    assert_null(cg_text_batch(ctx, ids, 0, 2, &rng));
    assert_error(CG_ERR_ARG, "batch 0");
    assert_null(cg_text_batch(ctx, ids, 2, 2, NULL));
    assert_error(CG_ERR_ARG, "an rng");
    assert_null(cg_text_batch(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(5)), 2, 2, &rng));
    assert_error(CG_ERR_ARG, "of f32");
    assert_null(cg_text_batch(ctx, NULL, 2, 2, &rng));
    assert_error(CG_ERR_ARG, "cg_text_batch");
}

#define CTX_TEST(f) cmocka_unit_test_setup_teardown(f, ctx_setup, ctx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_vocab_build),
        CTX_TEST(test_text_encode_decode),
        CTX_TEST(test_text_encode_decode_errors),
        CTX_TEST(test_text_vocab_tensor_roundtrip),
        CTX_TEST(test_text_vocab_tensor_errors),
        cmocka_unit_test(test_text_load_and_split),
        cmocka_unit_test(test_text_load_with_vocab),
        cmocka_unit_test(test_text_load_errors),
        CTX_TEST(test_text_split_errors),
        CTX_TEST(test_text_batch_windows),
        CTX_TEST(test_text_batch_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
