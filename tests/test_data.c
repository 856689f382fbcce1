/* nn/data.c and nn/batcher.c: IDX files (raw and gzip) read back byte for
 * byte and every bad file refused with CG_ERR_IO naming the path; in-place
 * normalisation and one-hot labels by hand; the batcher's epochs (each
 * sample once, rows and labels paired, seeded shuffles, reused buffers)
 * and their shards (DistributedSampler's positions of the unsharded order,
 * padded or cut, the same batch count on every replica).
 * Files are small and generated in a fresh mkdtemp directory, removed at
 * the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

/* ---- temporary files ------------------------------------------------------------------ */
#define MAX_FILES 64

static char dir[64];
static char made[MAX_FILES][128]; /* every path handed out, removed at the end */
static int nmade;

static int make_dir(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cgrad-data-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    for (int i = 0; i < nmade; i++) remove(made[i]); /* some were never written */
    return rmdir(dir);
}

/* A fresh path in dir, remembered for removal. */
static const char *new_path(const char *name) {
    assert_true(nmade < MAX_FILES);
    snprintf(made[nmade], sizeof made[0], "%s/%s", dir, name);
    return made[nmade++];
}

/* n bytes to a new file `name`, gzip-compressed when gz. */
static const char *write_file(const char *name, const void *bytes, size_t n, bool gz) {
    const char *path = new_path(name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, bytes, (unsigned)n), (int)n);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
    }
    return path;
}

/* The file's bytes into buf (at most cap); returns the count. */
static size_t read_back(const char *path, unsigned char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    assert_true(n < cap);
    fclose(f);
    return n;
}

/* An IDX file in buf: header (type, rank, dims) then ndata bytes of data;
 * returns its length. */
static size_t idx_bytes(unsigned char *buf, int type, int rank, const uint32_t *dims,
                        const uint8_t *data, size_t ndata) {
    size_t n = 0;
    buf[n++] = 0;
    buf[n++] = 0;
    buf[n++] = (unsigned char)type;
    buf[n++] = (unsigned char)rank;
    for (int d = 0; d < rank; d++)
        for (int s = 24; s >= 0; s -= 8) buf[n++] = (unsigned char)(dims[d] >> s);
    if (ndata) memcpy(buf + n, data, ndata);
    return n + ndata;
}

/* ---- IDX: good files ------------------------------------------------------------------ */
static const uint8_t label_bytes[5] = {3, 0, 255, 9, 1};

static void image_data(uint8_t *img) {
    for (int i = 0; i < 24; i++) img[i] = (uint8_t)(i * 37 + 5); /* wraps: 0..255 spread */
}

/* labels [5] and images [2,3,4] written as name + ".labels" / ".images". */
static void write_pair(const char *name, bool gz, const char **labels, const char **images) {
    unsigned char buf[128];
    char nm[64];
    uint8_t img[24];
    image_data(img);
    snprintf(nm, sizeof nm, "%s.labels", name);
    *labels = write_file(nm, buf, idx_bytes(buf, 8, 1, (uint32_t[]){5}, label_bytes, 5), gz);
    snprintf(nm, sizeof nm, "%s.images", name);
    *images = write_file(nm, buf, idx_bytes(buf, 8, 3, (uint32_t[]){2, 3, 4}, img, 24), gz);
}

static void check_pair(const char *labels, const char *images) {
    cg_idx idx;
    uint8_t img[24];
    image_data(img);
    assert_int_equal(cg_idx_read(labels, &idx), CG_OK);
    assert_int_equal(idx.ndim, 1);
    assert_int_equal(idx.shape[0], 5);
    assert_memory_equal(idx.data, label_bytes, 5);
    cg_idx_free(&idx);
    assert_int_equal(cg_idx_read(images, &idx), CG_OK);
    assert_int_equal(idx.ndim, 3);
    assert_int_equal(idx.shape[0], 2);
    assert_int_equal(idx.shape[1], 3);
    assert_int_equal(idx.shape[2], 4);
    assert_memory_equal(idx.data, img, 24);
    cg_idx_free(&idx);
}

static void check_load(const char *labels, const char *images) {
    uint8_t img[24];
    double want[24];
    image_data(img);
    for (int i = 0; i < 24; i++) want[i] = img[i] / 255.0;
    cg_tensor *t = cg_idx_load(images, CG_F32, 1.0 / 255);
    assert_int_equal(cg_dtype_of(t), CG_F32);
    assert_true(cg_ndim(t) == 3 && cg_dim(t, 0) == 2 && cg_dim(t, 1) == 3 && cg_dim(t, 2) == 4);
    assert_values(t, want, 24, 1e-7);
    cg_tensor_free(t);
    t = cg_idx_load(images, CG_F64, 2.0);
    for (int i = 0; i < 24; i++) want[i] = img[i] * 2.0;
    assert_values(t, want, 24, 0);
    cg_tensor_free(t);
    t = cg_idx_load(labels, CG_I64, 1.0 / 255); /* the scale is for floats only */
    int64_t got[5];
    assert_int_equal(cg_dtype_of(t), CG_I64);
    assert_int_equal(cg_copy_to_array(t, CG_I64, got), CG_OK);
    for (int i = 0; i < 5; i++) assert_int_equal(got[i], label_bytes[i]);
    cg_tensor_free(t);
}

static void test_data_idx_raw_read_and_load(void **state) {
    (void)state;
    const char *labels, *images;
    write_pair("raw", false, &labels, &images);
    check_pair(labels, images);
    check_load(labels, images);
}

static void test_data_idx_gzip_read_and_load(void **state) {
    (void)state;
    const char *labels, *images;
    unsigned char head[2];
    write_pair("gz", true, &labels, &images);
    FILE *f = fopen(images, "rb");
    assert_non_null(f);
    assert_int_equal(fread(head, 1, 2, f), 2);
    fclose(f);
    assert_true(head[0] == 0x1f && head[1] == 0x8b); /* really compressed */
    check_pair(labels, images);
    check_load(labels, images);
}

/* A file whose dims multiply to zero has no data and is fine. */
static void test_data_idx_empty_dim(void **state) {
    (void)state;
    unsigned char buf[32];
    const char *p =
        write_file("empty", buf, idx_bytes(buf, 8, 2, (uint32_t[]){0, 7}, NULL, 0), false);
    cg_idx idx;
    assert_int_equal(cg_idx_read(p, &idx), CG_OK);
    assert_true(idx.ndim == 2 && idx.shape[0] == 0 && idx.shape[1] == 7);
    cg_idx_free(&idx);
    cg_tensor *t = cg_idx_load(p, CG_F32, 1);
    assert_int_equal(cg_numel(t), 0);
    cg_tensor_free(t);
}

/* ---- IDX: bad files ------------------------------------------------------------------- */
/* path is refused by both readers with CG_ERR_IO, a message naming the path
 * and containing want, and an empty cg_idx. */
static void expect_bad(const char *path, const char *want) {
    cg_idx idx = {.ndim = 5};
    assert_int_equal(cg_idx_read(path, &idx), CG_ERR_IO);
    assert_true(idx.ndim == 0 && idx.data == NULL);
    if (!strstr(cg_last_error(), path)) fail_msg("\"%s\" lacks the path", cg_last_error());
    assert_error(CG_ERR_IO, want);
    assert_null(cg_idx_load(path, CG_F32, 1));
    if (!strstr(cg_last_error(), "cg_idx_load")) fail_msg("\"%s\"", cg_last_error());
    assert_error(CG_ERR_IO, want);
    cg_idx_free(&idx);
}

/* The same bytes refused raw and gzip-compressed. */
static void expect_bad_both(const char *name, const unsigned char *bytes, size_t n,
                            const char *want) {
    char gzname[64];
    expect_bad(write_file(name, bytes, n, false), want);
    snprintf(gzname, sizeof gzname, "%s.gz", name);
    expect_bad(write_file(gzname, bytes, n, true), want);
}

static void test_data_idx_missing_or_unreadable(void **state) {
    (void)state;
    expect_bad(new_path("does-not-exist"), "No such file");
    expect_bad(dir, "read error"); /* a directory opens but cannot be read */
}

static void test_data_idx_bad_header(void **state) {
    (void)state;
    unsigned char b[64];
    const uint8_t data[4] = {1, 2, 3, 4};
    size_t n = idx_bytes(b, 8, 1, (uint32_t[]){4}, data, 4);
    b[0] = 1;
    expect_bad_both("magic", b, n, "bad magic number 0x01000801");
    n = idx_bytes(b, 0x0D, 1, (uint32_t[]){1}, data, 4);
    expect_bad_both("type", b, n, "unsupported IDX type 0x0D");
    n = idx_bytes(b, 8, 0, NULL, data, 4);
    expect_bad_both("rank0", b, n, "rank 0 outside 1..8");
    n = idx_bytes(b, 8, 9, (uint32_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, data, 1);
    expect_bad_both("rank9", b, n, "rank 9 outside 1..8");
    expect_bad_both("empty", b, 0, "expected 4 bytes of header, got 0");
    expect_bad_both("magic3", b, 3, "expected 4 bytes of header, got 3");
    idx_bytes(b, 8, 3, (uint32_t[]){2, 2, 1}, data, 4);
    expect_bad_both("dims", b, 10, "expected 16 bytes of header, got 10");
}

static void test_data_idx_bad_counts(void **state) {
    (void)state;
    unsigned char b[64];
    const uint8_t data[6] = {1, 2, 3, 4, 5, 6};
    size_t n = idx_bytes(b, 8, 2, (uint32_t[]){2, 5}, data, 6);
    expect_bad_both("short", b, n, "expected 10 bytes of data, got 6");
    n = idx_bytes(b, 8, 1, (uint32_t[]){5}, data, 6);
    expect_bad_both("long", b, n, "inconsistent counts");
    uint32_t big[8] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 1, 1, 1, 1};
    n = idx_bytes(b, 8, 8, big, data, 6);
    expect_bad_both("overflow", b, n, "overflows");
    /* 2^62 bytes claimed, none there: refused without trying to allocate them */
    n = idx_bytes(b, 8, 2, (uint32_t[]){1u << 31, 1u << 31}, data, 6);
    expect_bad_both("huge", b, n, "expected 4611686018427387904 bytes of data, got 6");
}

/* A valid gzip file of 3000 bytes of data, cut or corrupted at the end. */
static void test_data_idx_bad_gzip(void **state) {
    (void)state;
    static unsigned char raw[3100], gz[4000];
    uint8_t data[3000];
    cg_rng rng = seeded(9);
    for (int i = 0; i < 3000; i++) data[i] = (uint8_t)cg_rng_u64(&rng); /* incompressible */
    size_t n = idx_bytes(raw, 8, 1, (uint32_t[]){3000}, data, 3000);
    size_t m = read_back(write_file("whole.gz", raw, n, true), gz, sizeof gz);
    assert_true(m > 1000);
    expect_bad(write_file("cut.gz", gz, m / 2, false), "truncated");
    expect_bad(write_file("notrailer.gz", gz, m - 8, false), "corrupt gzip stream");
    gz[m - 8] ^= 0xFF; /* the CRC no longer matches */
    expect_bad(write_file("crc.gz", gz, m, false), "corrupt gzip stream");
}

static void test_data_idx_arguments(void **state) {
    (void)state;
    cg_idx idx = {0};
    cg_idx_free(NULL);
    cg_idx_free(&idx);
    cg_idx_free(&idx);
    assert_int_equal(cg_idx_read(NULL, &idx), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "path is NULL");
    assert_int_equal(cg_idx_read("x", NULL), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "out is NULL");
    assert_null(cg_idx_load(NULL, CG_F32, 1));
    assert_error(CG_ERR_ARG, "cg_idx_load: path is NULL");
    assert_null(cg_idx_load("x", (cg_dtype)7, 1));
    assert_error(CG_ERR_DTYPE, "invalid dtype 7");
}

/* ---- normalize ------------------------------------------------------------------------ */
static void test_data_normalize_values(void **state) {
    (void)state;
    cg_tensor *x =
        cg_from_array(NULL, CG_F32, CG_SHAPE(2, 3), (const float[]){0, 1, 2, 3, 4, 5});
    assert_int_equal(cg_normalize_(x, 2, 2), CG_OK);
    assert_values(x, (const double[]){-1, -0.5, 0, 0.5, 1, 1.5}, 6, 0);
    cg_tensor_free(x);
    /* through a transposed view: every element of the base, once */
    cg_tensor *base =
        cg_from_array(NULL, CG_F64, CG_SHAPE(2, 3), (const double[]){1, 2, 3, 4, 5, 6});
    cg_tensor *t = cg_transpose(NULL, base, 0, 1);
    assert_int_equal(cg_normalize_(t, 1, 0.5), CG_OK);
    assert_values(base, (const double[]){0, 2, 4, 6, 8, 10}, 6, 0);
    cg_tensor_free(t);
    /* through a strided slice: the others untouched */
    cg_tensor *s = cg_slice(NULL, base, 1, 0, CG_END, 2);
    assert_int_equal(cg_normalize_(s, 0, 4), CG_OK);
    assert_values(base, (const double[]){0, 2, 1, 1.5, 8, 2.5}, 6, 0);
    cg_tensor_free(s);
    cg_tensor_free(base);
}

/* A graph that saved x cannot be backpropagated after x was normalised. */
static void test_data_normalize_bumps_version(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_ones(NULL, CG_F64, CG_SHAPE(3));
    cg_tensor *w = leaf(CG_F64, 1, (const int64_t[]){3}, (const double[]){1, 2, 3});
    cg_tensor *loss = cg_sum(ctx, cg_mul(ctx, w, x), NULL, 0, false);
    assert_int_equal(cg_normalize_(x, 0, 2), CG_OK);
    assert_int_equal(cg_backward(loss), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "modified in place");
    cg_tensor_free(w);
    cg_tensor_free(x);
}

static void test_data_normalize_errors(void **state) {
    (void)state;
    cg_tensor *x = cg_ones(NULL, CG_F32, CG_SHAPE(2));
    assert_int_equal(cg_normalize_(x, 0, 0), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "std 0 must be > 0");
    assert_int_equal(cg_normalize_(x, 0, -1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "std -1 must be > 0");
    assert_int_equal(cg_normalize_(x, 0, NAN), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "must be > 0");
    assert_values(x, (const double[]){1, 1}, 2, 0); /* untouched */
    cg_tensor *one = cg_select(NULL, x, 0, 0), *e = cg_expand(NULL, one, CG_SHAPE(4));
    assert_int_equal(cg_normalize_(e, 0, 2), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "expanded view");
    cg_tensor *i = cg_ones(NULL, CG_I64, CG_SHAPE(2));
    assert_int_equal(cg_normalize_(i, 0, 1), CG_ERR_DTYPE);
    assert_error(CG_ERR_DTYPE, "i64 is not a float");
    assert_int_equal(cg_normalize_(NULL, 0, 1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "tensor is NULL");
    cg_tensor_free(i);
    cg_tensor_free(e);
    cg_tensor_free(one);
    cg_tensor_free(x);
}

/* ---- one-hot -------------------------------------------------------------------------- */
static void test_data_one_hot_values(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *l = cg_from_array(ctx, CG_I64, CG_SHAPE(3), (const int64_t[]){2, 0, 1});
    cg_tensor *h = cg_one_hot(ctx, l, 4, CG_F32);
    assert_int_equal(cg_dtype_of(h), CG_F32);
    assert_true(cg_ndim(h) == 2 && cg_dim(h, 0) == 3 && cg_dim(h, 1) == 4);
    assert_values(h, (const double[]){0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0}, 12, 0);
    assert_values(cg_one_hot(ctx, l, 3, CG_F64), (const double[]){0, 0, 1, 1, 0, 0, 0, 1, 0}, 9,
                  0);
    cg_tensor *i = cg_one_hot(NULL, l, 3, CG_I64); /* caller-owned without a context */
    assert_values(i, (const double[]){0, 0, 1, 1, 0, 0, 0, 1, 0}, 9, 0);
    cg_tensor_free(i);
    /* strided labels: every other element of [2, 9, 0, 9, 1] */
    cg_tensor *all = cg_from_array(ctx, CG_I64, CG_SHAPE(5), (const int64_t[]){2, 9, 0, 9, 1});
    assert_values(cg_one_hot(ctx, cg_slice(ctx, all, 0, 0, CG_END, 2), 3, CG_F32),
                  (const double[]){0, 0, 1, 1, 0, 0, 0, 1, 0}, 9, 0);
    cg_tensor *none = cg_zeros(ctx, CG_I64, CG_SHAPE(0));
    assert_int_equal(cg_numel(cg_one_hot(ctx, none, 3, CG_F32)), 0);
    assert_int_equal(cg_ctx_status(ctx), CG_OK);
}

static void test_data_one_hot_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *l = cg_from_array(ctx, CG_I64, CG_SHAPE(3), (const int64_t[]){2, 3, 1});
    assert_null(cg_one_hot(ctx, l, 3, CG_F32));
    assert_error(CG_ERR_INDEX, "label 3 at 1 outside [0, 3)");
    cg_tensor *neg = cg_from_array(ctx, CG_I64, CG_SHAPE(1), (const int64_t[]){-1});
    assert_null(cg_one_hot(ctx, neg, 3, CG_F32));
    assert_error(CG_ERR_INDEX, "label -1 at 0");
    assert_null(cg_one_hot(ctx, cg_zeros(ctx, CG_F32, CG_SHAPE(3)), 3, CG_F32));
    assert_error(CG_ERR_DTYPE, "labels are f32, not i64");
    assert_null(cg_one_hot(ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(2, 2)), 3, CG_F32));
    assert_error(CG_ERR_SHAPE, "labels [2,2] are not 1-D");
    assert_null(cg_one_hot(ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(2)), 0, CG_F32));
    assert_error(CG_ERR_ARG, "classes 0 must be >= 1");
    assert_null(cg_one_hot(ctx, cg_zeros(ctx, CG_I64, CG_SHAPE(2)), 3, (cg_dtype)9));
    assert_error(CG_ERR_DTYPE, "cg_one_hot: invalid dtype 9");
    assert_null(cg_one_hot(ctx, NULL, 3, CG_F32));
    assert_error(CG_ERR_ARG, "cg_one_hot: tensor is NULL");
}

/* ---- batcher -------------------------------------------------------------------------- */
#define N_MAX 64

/* x f32 [n, f] with x[i][k] = 100 i + k: a sample's index is in its row. */
static cg_tensor *make_x(int64_t n, int64_t f) {
    double v[N_MAX * 4];
    assert_true(n <= N_MAX && f <= 4);
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < f; k++) v[i * f + k] = 100.0 * i + k;
    cg_tensor *d = cg_from_array(NULL, CG_F64, CG_SHAPE(n, f), v);
    cg_tensor *x = cg_cast(NULL, d, CG_F32);
    cg_tensor_free(d);
    return x;
}

/* y i64 [n] with y[i] = i. */
static cg_tensor *make_y(int64_t n) { return cg_arange(NULL, CG_I64, 0, (double)n, 1); }

/* make_x(n, f), make_y(n) and a batcher over them, freed by close_data. */
typedef struct dataset {
    cg_tensor *x, *y;
    cg_batcher *b;
} dataset;

static dataset open_data(int64_t n, int64_t f, int64_t batch, bool drop_last, cg_rng *rng) {
    dataset d = {make_x(n, f), make_y(n), NULL};
    d.b = cg_batcher_new(d.x, d.y, batch, rng != NULL, drop_last, rng);
    assert_non_null(d.b);
    return d;
}

static void close_data(dataset *d) {
    cg_batcher_free(d->b);
    cg_tensor_free(d->x);
    cg_tensor_free(d->y);
}

/* One batch: its labels into order, each x row checked against its label
 * (rows and labels stay paired). Returns the batch size. */
static int64_t check_batch(const cg_tensor *xb, const cg_tensor *yb, int64_t *order) {
    double xv[N_MAX * 4];
    int64_t bsz = cg_dim(xb, 0), f = cg_numel(xb) / bsz;
    assert_true(bsz > 0 && bsz <= N_MAX && f <= 4);
    assert_int_equal(cg_ndim(yb), 1);
    assert_int_equal(cg_dim(yb, 0), bsz);
    assert_int_equal(cg_copy_to_array(xb, CG_F64, xv), CG_OK);
    assert_int_equal(cg_copy_to_array(yb, CG_I64, order), CG_OK);
    for (int64_t r = 0; r < bsz; r++)
        for (int64_t k = 0; k < f; k++)
            assert_float_equal(xv[r * f + k], 100.0 * order[r] + k, 0);
    return bsz;
}

/* A whole epoch: the samples in visiting order into order, the batch sizes
 * into sizes; returns the number of batches. */
static int run_epoch(cg_batcher *b, int64_t *order, int64_t *sizes) {
    cg_tensor *xb, *yb;
    int nb = 0;
    int64_t seen = 0;
    while (cg_batcher_next(b, &xb, &yb)) {
        assert_true(nb < N_MAX);
        sizes[nb] = check_batch(xb, yb, order + seen);
        seen += sizes[nb++];
    }
    assert_null(xb);
    assert_int_equal(nb, cg_batcher_nbatches(b));
    return nb;
}

/* order[0..n) holds n distinct samples of [0, total). */
static void assert_distinct(const int64_t *order, int64_t n, int64_t total) {
    int seen[N_MAX] = {0};
    for (int64_t i = 0; i < n; i++) {
        assert_true(order[i] >= 0 && order[i] < total);
        assert_int_equal(seen[order[i]]++, 0);
    }
}

static bool same_order(const int64_t *a, const int64_t *b, int64_t n) {
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

static void test_data_batcher_every_sample_once(void **state) {
    (void)state;
    cg_rng rng = seeded(1);
    dataset d = open_data(10, 3, 4, false, &rng);
    int64_t order[3][N_MAX], sizes[N_MAX];
    assert_int_equal(cg_batcher_nbatches(d.b), 3);
    for (int e = 0; e < 3; e++) {
        assert_int_equal(run_epoch(d.b, order[e], sizes), 3);
        assert_true(sizes[0] == 4 && sizes[1] == 4 && sizes[2] == 2);
        assert_distinct(order[e], 10, 10);
    }
    /* reshuffled at every epoch */
    assert_false(same_order(order[0], order[1], 10));
    assert_false(same_order(order[1], order[2], 10));
    close_data(&d);
}

static void test_data_batcher_drop_last(void **state) {
    (void)state;
    cg_rng rng = seeded(2);
    dataset d = open_data(10, 2, 4, true, &rng);
    int64_t order[N_MAX], sizes[N_MAX];
    assert_int_equal(cg_batcher_nbatches(d.b), 2);
    for (int e = 0; e < 2; e++) {
        assert_int_equal(run_epoch(d.b, order, sizes), 2);
        assert_true(sizes[0] == 4 && sizes[1] == 4);
        assert_distinct(order, 8, 10);
    }
    close_data(&d);
    /* fewer samples than a batch: no batch at all, epoch after epoch */
    d = open_data(3, 2, 4, true, NULL);
    cg_tensor *xb = d.x, *yb = d.y;
    assert_int_equal(cg_batcher_nbatches(d.b), 0);
    assert_false(cg_batcher_next(d.b, &xb, &yb));
    assert_false(cg_batcher_next(d.b, &xb, &yb));
    assert_true(xb == NULL && yb == NULL);
    close_data(&d);
}

static void test_data_batcher_seeded_order(void **state) {
    (void)state;
    cg_rng rng[3] = {seeded(7), seeded(7), seeded(8)};
    dataset d[3];
    int64_t order[3][N_MAX], sizes[N_MAX];
    for (int i = 0; i < 3; i++) d[i] = open_data(20, 1, 6, false, &rng[i]);
    for (int e = 0; e < 2; e++) {
        for (int i = 0; i < 3; i++) run_epoch(d[i].b, order[i], sizes);
        assert_true(same_order(order[0], order[1], 20));
        assert_false(same_order(order[0], order[2], 20));
    }
    for (int i = 0; i < 3; i++) close_data(&d[i]);
}

/* Without shuffle, n samples in batches of `batch` come in order, epoch after
 * epoch, the last batch holding `last` of them. */
static void expect_in_order(int64_t n, int64_t batch, int nbatches, int64_t last) {
    dataset d = open_data(n, 2, batch, false, NULL);
    int64_t order[N_MAX], sizes[N_MAX];
    for (int e = 0; e < 2; e++) {
        assert_int_equal(run_epoch(d.b, order, sizes), nbatches);
        for (int i = 0; i < nbatches; i++)
            assert_int_equal(sizes[i], i < nbatches - 1 ? batch : last);
        for (int64_t i = 0; i < n; i++) assert_int_equal(order[i], i);
    }
    close_data(&d);
}

static void test_data_batcher_no_shuffle_keeps_order(void **state) {
    (void)state;
    expect_in_order(7, 3, 3, 1);
    expect_in_order(6, 3, 2, 3);
    expect_in_order(3, 8, 1, 3); /* fewer samples than a batch: one short batch */
    expect_in_order(1, 1, 1, 1);
    expect_in_order(0, 3, 0, 0); /* an empty dataset: empty epochs */
}

/* Every batch of every epoch comes in the same tensors over the same memory:
 * nothing is allocated after construction. */
static void test_data_batcher_reuses_buffers(void **state) {
    (void)state;
    cg_rng rng = seeded(3);
    dataset d = open_data(10, 3, 4, false, &rng);
    cg_tensor *xb, *yb;
    assert_true(cg_batcher_next(d.b, &xb, &yb));
    const cg_tensor *full_x = xb, *full_y = yb;
    void *data_x = cg_data(xb), *data_y = cg_data(yb);
    assert_true(data_x != cg_data(d.x) && data_y != cg_data(d.y)); /* copies, not views */
    const cg_tensor *tail_x = NULL, *tail_y = NULL;
    for (int i = 0; i < 3 * 3; i++) {
        if (i) assert_true(cg_batcher_next(d.b, &xb, &yb));
        bool last = i % 3 == 2;
        assert_int_equal(cg_dim(xb, 0), last ? 2 : 4);
        assert_true(cg_data(xb) == data_x && cg_data(yb) == data_y);
        if (!last) assert_true(xb == full_x && yb == full_y);
        if (last && !tail_x) {
            tail_x = xb;
            tail_y = yb;
        }
        if (last) assert_true(xb == tail_x && yb == tail_y);
        if (last) assert_false(cg_batcher_next(d.b, &xb, &yb));
    }
    close_data(&d);
}

/* x and y as transposed, permuted and strided views of other tensors. */
static void test_data_batcher_non_contiguous(void **state) {
    (void)state;
    enum { N = 9 };
    double v2[3 * N], v3[2 * N * 2];
    int64_t yv[N * 2];
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 3; k++) v2[k * N + i] = 100.0 * i + k; /* [3, N] */
        for (int a = 0; a < 2; a++)
            for (int c = 0; c < 2; c++) v3[(a * N + i) * 2 + c] = 100.0 * i + a * 2 + c;
        yv[2 * i] = i;
        yv[2 * i + 1] = -1;
    }
    cg_tensor *b2 = cg_from_array(NULL, CG_F64, CG_SHAPE(3, N), v2);
    cg_tensor *b3 = cg_from_array(NULL, CG_F64, CG_SHAPE(2, N, 2), v3);
    cg_tensor *y2 = cg_from_array(NULL, CG_I64, CG_SHAPE(N, 2), yv);
    cg_tensor *xt = cg_transpose(NULL, b2, 0, 1), *y = cg_select(NULL, y2, 1, 0);
    cg_tensor *xp = cg_permute(NULL, b3, (const int[]){1, 0, 2});
    assert_false(cg_is_contiguous(xt) || cg_is_contiguous(xp) || cg_is_contiguous(y));
    cg_rng rng = seeded(4);
    int64_t order[N_MAX], sizes[N_MAX];
    const cg_tensor *xs[2] = {xt, xp};
    for (int t = 0; t < 2; t++) {
        cg_batcher *b = cg_batcher_new(xs[t], y, 4, true, false, &rng);
        assert_int_equal(run_epoch(b, order, sizes), 3);
        assert_distinct(order, N, N);
        cg_batcher_free(b);
    }
    cg_tensor_free(xt);
    cg_tensor_free(xp);
    cg_tensor_free(y);
    cg_tensor_free(b2);
    cg_tensor_free(b3);
    cg_tensor_free(y2);
}

/* y of any shape [N, ...] and dtype: f64 [N, 2] rows (i, -i). */
static void test_data_batcher_multi_dim_y(void **state) {
    (void)state;
    double yv[2 * 6], got[2 * 4];
    for (int i = 0; i < 6; i++) {
        yv[2 * i] = i;
        yv[2 * i + 1] = -i;
    }
    cg_tensor *x = make_x(6, 2), *y = cg_from_array(NULL, CG_F64, CG_SHAPE(6, 2), yv), *xb, *yb;
    cg_rng rng = seeded(5);
    cg_batcher *b = cg_batcher_new(x, y, 4, true, false, &rng);
    int64_t seen = 0;
    while (cg_batcher_next(b, &xb, &yb)) {
        int64_t bsz = cg_dim(yb, 0);
        assert_true(cg_ndim(yb) == 2 && cg_dim(yb, 1) == 2 && cg_dtype_of(yb) == CG_F64);
        assert_int_equal(cg_copy_to_array(yb, CG_F64, got), CG_OK);
        for (int64_t r = 0; r < bsz; r++) {
            int64_t idx[2] = {r, 0};
            double xv;
            assert_int_equal(cg_get(xb, idx, &xv), CG_OK);
            assert_float_equal(xv, 100 * got[2 * r], 0);
            assert_float_equal(got[2 * r + 1], -got[2 * r], 0);
        }
        seen += bsz;
    }
    assert_int_equal(seen, 6);
    cg_batcher_free(b);
    cg_tensor_free(x);
    cg_tensor_free(y);
}

static void test_data_batcher_y_null(void **state) {
    (void)state;
    cg_tensor *x = make_x(5, 2), *xb, *yb = x;
    cg_batcher *b = cg_batcher_new(x, NULL, 2, false, false, NULL);
    int64_t sizes[3] = {0}, n = 0;
    while (cg_batcher_next(b, &xb, &yb)) {
        assert_null(yb);
        assert_true(n < 3);
        sizes[n++] = cg_dim(xb, 0);
    }
    assert_true(n == 3 && sizes[0] == 2 && sizes[1] == 2 && sizes[2] == 1);
    assert_true(cg_batcher_next(b, &xb, NULL)); /* labels not wanted */
    cg_batcher_free(b);
    cg_tensor_free(x);
}

/* A graph that saved a batch cannot be backpropagated after the next batch
 * overwrote it. */
static void test_data_batcher_bumps_version(void **state) {
    cg_ctx *ctx = *state;
    dataset d = open_data(8, 3, 4, false, NULL);
    cg_tensor *xb, *yb;
    cg_tensor *w = leaf(CG_F32, 1, (const int64_t[]){3}, (const double[]){1, 2, 3});
    assert_true(cg_batcher_next(d.b, &xb, &yb));
    cg_tensor *loss = cg_sum(ctx, cg_mul(ctx, xb, w), NULL, 0, false);
    assert_true(cg_batcher_next(d.b, &xb, &yb));
    assert_int_equal(cg_backward(loss), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "modified in place");
    cg_tensor_free(w);
    close_data(&d);
}

static void test_data_batcher_errors(void **state) {
    (void)state;
    cg_rng rng = seeded(6);
    cg_tensor *x = make_x(5, 3), *y = make_y(4), *xb, *yb;
    assert_null(cg_batcher_new(x, y, 2, false, false, NULL));
    assert_error(CG_ERR_SHAPE, "x [5,3] and y [4] differ");
    cg_tensor_free(y);
    y = make_y(5);
    assert_null(cg_batcher_new(x, y, 0, false, false, NULL));
    assert_error(CG_ERR_ARG, "batch 0 must be >= 1");
    assert_null(cg_batcher_new(x, y, -3, false, false, NULL));
    assert_error(CG_ERR_ARG, "batch -3 must be >= 1");
    assert_null(cg_batcher_new(x, y, 2, true, false, NULL));
    assert_error(CG_ERR_ARG, "shuffle needs an rng");
    assert_null(cg_batcher_new(NULL, y, 2, true, false, &rng));
    assert_error(CG_ERR_ARG, "cg_batcher_new: tensor is NULL");
    cg_tensor *s = cg_scalar(NULL, CG_F32, 1);
    assert_null(cg_batcher_new(s, NULL, 2, false, false, NULL));
    assert_error(CG_ERR_SHAPE, "need a sample dim");
    assert_null(cg_batcher_new(x, s, 2, false, false, NULL));
    assert_error(CG_ERR_SHAPE, "need a sample dim");
    assert_false(cg_batcher_next(NULL, &xb, &yb));
    assert_error(CG_ERR_ARG, "batcher is NULL");
    cg_batcher *b = cg_batcher_new(x, y, 2, false, false, NULL);
    assert_false(cg_batcher_next(b, NULL, &yb));
    assert_error(CG_ERR_ARG, "xb is NULL");
    assert_int_equal(cg_batcher_nbatches(NULL), -1);
    assert_error(CG_ERR_ARG, "batcher is NULL");
    cg_batcher_free(NULL);
    cg_batcher_free(b);
    cg_tensor_free(s);
    cg_tensor_free(x);
    cg_tensor_free(y);
}

/* ---- sharding (DistributedSampler) ------------------------------------------------------ */
enum { EPOCHS = 2, R_MAX = 3 };

/* The orders of the first EPOCHS epochs of an unsharded batcher over n
 * samples with an rng seeded with seed. */
static void unsharded_orders(int64_t n, uint64_t seed, int64_t ref[EPOCHS][N_MAX]) {
    cg_rng rng = seeded(seed);
    dataset d = open_data(n, 2, 5, false, &rng);
    int64_t sizes[N_MAX];
    for (int e = 0; e < EPOCHS; e++) run_epoch(d.b, ref[e], sizes);
    close_data(&d);
}

typedef struct shard_case {
    int64_t n, replicas, batch;
    bool drop_last;
} shard_case;

/* One epoch of every replica of c, all seeded alike, against ref (the same
 * epoch of the unsharded batcher): replica r hands out positions r, r + R,
 * ... of ref, wrapping past its end, in batches of c.batch (a short last one
 * kept unless drop_last). counts[i]: how often sample i came. */
static void shard_epoch(const shard_case *c, dataset *d, const int64_t *ref, int *counts) {
    int64_t nr = c->n / c->replicas + (!c->drop_last && c->n % c->replicas);
    int64_t rem = c->drop_last ? 0 : nr % c->batch, nb = nr / c->batch + (rem != 0);
    int64_t order[N_MAX], sizes[N_MAX], seen = 0;
    for (int64_t r = 0; r < c->replicas; r++) {
        assert_int_equal(cg_batcher_nbatches(d[r].b), nb); /* the same on every replica */
        assert_int_equal(run_epoch(d[r].b, order, sizes), nb);
        for (int64_t i = 0; i < nb; i++) {
            assert_int_equal(sizes[i], i < nb - 1 || !rem ? c->batch : rem);
            seen += sizes[i];
        }
        for (int64_t i = 0; i < nb * c->batch && i < nr; i++) {
            assert_int_equal(order[i], ref[(r + i * c->replicas) % c->n]);
            counts[order[i]]++;
        }
    }
    assert_int_equal(seen, c->replicas * (c->drop_last ? nb * c->batch : nr));
}

/* Every replica's share of two epochs of c; what the union of the shares is. */
static void check_shards(const shard_case *c) {
    int64_t ref[EPOCHS][N_MAX];
    cg_rng rng[R_MAX];
    dataset d[R_MAX];
    assert_true(c->replicas <= R_MAX);
    unsharded_orders(c->n, 11, ref);
    for (int64_t r = 0; r < c->replicas; r++) {
        rng[r] = seeded(11); /* every rank seeds alike */
        d[r] = open_data(c->n, 2, c->batch, c->drop_last, &rng[r]);
        assert_int_equal(cg_batcher_shard(d[r].b, r, c->replicas), CG_OK);
    }
    int64_t pad = c->n % c->replicas ? c->replicas - c->n % c->replicas : 0;
    for (int e = 0; e < EPOCHS; e++) {
        int counts[N_MAX] = {0};
        shard_epoch(c, d, ref[e], counts);
        for (int64_t j = 0; j < c->n; j++) {
            int got = counts[ref[e][j]];
            if (!c->drop_last) /* every sample, the first `pad` of the order twice */
                assert_int_equal(got, 1 + (j < pad));
            else /* disjoint, the order's last n % replicas never */
                assert_true(got <= 1 && (j < c->n - c->n % c->replicas || got == 0));
        }
    }
    for (int64_t r = 0; r < c->replicas; r++) close_data(&d[r]);
}

static void test_data_batcher_shard_covers_every_sample(void **state) {
    (void)state;
    static const shard_case cases[] = {
        {11, 2, 4, false},                   /* 6 each: batches 4, 2; sample order[0] twice */
        {11, 3, 2, false},                   /* 4 each: batches 2, 2; order[0] twice */
        {11, 2, 5, true},                    /* 5 each: one batch; order[10] never */
        {11, 3, 3, true},                    /* 3 each: one batch; order[9], order[10] never */
        {12, 3, 3, false},                   /* divisible: disjoint, 4 each, batches 3, 1 */
        {12, 3, 3, true},  {5, 3, 4, false}, /* 2 each, fewer than a batch: one short batch */
        {2, 3, 1, false}, /* fewer samples than replicas: 1 each by wrapping */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_shards(&cases[i]);
}

/* The batch sampler's drop_last applies to each shard: 11 over 3 replicas is
 * 3 samples each, in batches of 2 one batch, its third sample dropped. */
static void test_data_batcher_shard_drops_short_batches(void **state) {
    (void)state;
    check_shards(&(shard_case){11, 3, 2, true});
    check_shards(&(shard_case){11, 2, 4, true});
}

/* Without shuffle, DistributedSampler(shuffle=False) over range(7): padded to
 * [0..6, 0, 1] and dealt out, or cut to [0..5] with drop_last. */
static void test_data_batcher_shard_in_order(void **state) {
    (void)state;
    static const int64_t padded[3][3] = {{0, 3, 6}, {1, 4, 0}, {2, 5, 1}};
    static const int64_t cut[3][2] = {{0, 3}, {1, 4}, {2, 5}};
    int64_t order[N_MAX], sizes[N_MAX];
    for (int64_t r = 0; r < 3; r++) {
        dataset d = open_data(7, 1, 2, false, NULL);
        assert_int_equal(cg_batcher_shard(d.b, r, 3), CG_OK);
        assert_int_equal(run_epoch(d.b, order, sizes), 2);
        assert_true(sizes[0] == 2 && sizes[1] == 1 && same_order(order, padded[r], 3));
        close_data(&d);
        d = open_data(7, 1, 2, true, NULL);
        assert_int_equal(cg_batcher_shard(d.b, r, 3), CG_OK);
        assert_int_equal(run_epoch(d.b, order, sizes), 1);
        assert_true(sizes[0] == 2 && same_order(order, cut[r], 2));
        close_data(&d);
    }
}

/* Replicas seeded alike share each epoch's order, which changes every epoch;
 * another seed gives another order. */
static void test_data_batcher_shard_reshuffles_per_epoch(void **state) {
    (void)state;
    cg_rng rng[3] = {seeded(21), seeded(21), seeded(22)};
    int64_t ref[EPOCHS][N_MAX], order[3][EPOCHS][N_MAX], sizes[N_MAX];
    unsharded_orders(20, 21, ref);
    dataset d[3];
    for (int i = 0; i < 3; i++) {
        d[i] = open_data(20, 1, 4, false, &rng[i]);
        assert_int_equal(cg_batcher_shard(d[i].b, i == 1, 2), CG_OK);
        for (int e = 0; e < EPOCHS; e++)
            assert_int_equal(run_epoch(d[i].b, order[i][e], sizes), 3);
    }
    for (int e = 0; e < EPOCHS; e++)
        for (int64_t k = 0; k < 10; k++) {
            assert_int_equal(order[0][e][k], ref[e][2 * k]);
            assert_int_equal(order[1][e][k], ref[e][2 * k + 1]);
        }
    assert_false(same_order(order[0][0], order[0][1], 10));
    assert_false(same_order(order[0][0], order[2][0], 10)); /* rank 0 too, other seed */
    for (int i = 0; i < 3; i++) close_data(&d[i]);
}

/* One replica is the unsharded batcher, batch for batch, bit for bit; so is
 * a batcher sharded and then returned to (0, 1). */
static void test_data_batcher_shard_one_replica_is_unsharded(void **state) {
    (void)state;
    for (int drop = 0; drop < 2; drop++) {
        cg_rng rng[3] = {seeded(31), seeded(31), seeded(31)};
        dataset d[3];
        for (int i = 0; i < 3; i++) d[i] = open_data(10, 3, 4, drop, &rng[i]);
        assert_int_equal(cg_batcher_shard(d[1].b, 0, 1), CG_OK);
        assert_int_equal(cg_batcher_shard(d[2].b, 1, 3), CG_OK);
        assert_int_equal(cg_batcher_shard(d[2].b, 0, 1), CG_OK);
        for (int i = 1; i < 3; i++)
            assert_int_equal(cg_batcher_nbatches(d[i].b), cg_batcher_nbatches(d[0].b));
        for (int e = 0; e < 2; e++) {
            cg_tensor *xb[3], *yb[3];
            bool more;
            do {
                more = cg_batcher_next(d[0].b, &xb[0], &yb[0]);
                for (int i = 1; i < 3; i++) {
                    assert_int_equal(cg_batcher_next(d[i].b, &xb[i], &yb[i]), more);
                    if (!more) continue;
                    assert_int_equal(cg_numel(xb[i]), cg_numel(xb[0]));
                    assert_memory_equal(cg_data(xb[i]), cg_data(xb[0]), cg_numel(xb[0]) * 4);
                    assert_memory_equal(cg_data(yb[i]), cg_data(yb[0]), cg_numel(yb[0]) * 8);
                }
            } while (more);
        }
        for (int i = 0; i < 3; i++) close_data(&d[i]);
    }
}

/* A shard smaller than a batch gets buffers of its size, a short last batch
 * of a shard its view; the epochs after the shard reuse them. */
static void test_data_batcher_shard_resizes_buffers(void **state) {
    (void)state;
    cg_rng rng = seeded(41);
    dataset d = open_data(5, 3, 4, false, &rng); /* buffers [4, 3], tail [1, 3] */
    cg_tensor *xb, *yb;
    assert_int_equal(cg_batcher_shard(d.b, 2, 3), CG_OK); /* 2 samples */
    assert_int_equal(cg_batcher_nbatches(d.b), 1);
    const cg_tensor *first = NULL;
    for (int e = 0; e < 3; e++) {
        assert_true(cg_batcher_next(d.b, &xb, &yb));
        assert_true(cg_dim(xb, 0) == 2 && cg_dim(xb, 1) == 3 && cg_dim(yb, 0) == 2);
        if (!first) first = xb;
        assert_true(xb == first);
        assert_false(cg_batcher_next(d.b, &xb, &yb));
    }
    assert_int_equal(cg_batcher_shard(d.b, 0, 2), CG_OK); /* 3 samples: batch 3 */
    assert_true(cg_batcher_next(d.b, &xb, &yb));
    assert_true(cg_dim(xb, 0) == 3 && cg_dim(yb, 0) == 3);
    assert_false(cg_batcher_next(d.b, &xb, &yb));
    assert_int_equal(cg_batcher_shard(d.b, 0, 1), CG_OK); /* 5 again: 4 and 1 */
    int64_t order[N_MAX], sizes[N_MAX];
    assert_int_equal(run_epoch(d.b, order, sizes), 2);
    assert_true(sizes[0] == 4 && sizes[1] == 1);
    assert_distinct(order, 5, 5);
    close_data(&d);
    /* 11 over 2 is 6 each: a full batch of 4, then a view of 2 */
    d = open_data(11, 2, 4, false, &rng);
    assert_int_equal(cg_batcher_shard(d.b, 1, 2), CG_OK);
    assert_true(cg_batcher_next(d.b, &xb, &yb));
    void *data = cg_data(xb);
    assert_true(cg_batcher_next(d.b, &xb, &yb));
    assert_true(cg_dim(xb, 0) == 2 && cg_dim(yb, 0) == 2 && cg_data(xb) == data);
    close_data(&d);
}

static void test_data_batcher_shard_errors(void **state) {
    (void)state;
    cg_tensor *xb, *yb;
    assert_int_equal(cg_batcher_shard(NULL, 0, 1), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_batcher_shard: batcher is NULL");
    dataset d = open_data(5, 2, 2, true, NULL);
    assert_int_equal(cg_batcher_shard(d.b, 0, 0), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_batcher_shard: replicas 0 must be >= 1");
    assert_int_equal(cg_batcher_shard(d.b, -1, 2), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_batcher_shard: rank -1 is outside [0, 2)");
    assert_int_equal(cg_batcher_shard(d.b, 2, 2), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_batcher_shard: rank 2 is outside [0, 2)");
    assert_int_equal(cg_batcher_shard(d.b, 0, 6), CG_ERR_ARG);
    assert_error(CG_ERR_ARG, "cg_batcher_shard: 6 replicas with drop_last leave none of the 5");
    assert_int_equal(cg_batcher_nbatches(d.b), 2);        /* unchanged by the failures */
    assert_int_equal(cg_batcher_shard(d.b, 4, 5), CG_OK); /* one sample: no full batch */
    assert_int_equal(cg_batcher_nbatches(d.b), 0);
    assert_int_equal(cg_batcher_shard(d.b, 0, 1), CG_OK);
    /* between a batch and the false that ends its epoch, the last batch too */
    for (int i = 0; i < 2; i++) {
        assert_true(cg_batcher_next(d.b, &xb, &yb));
        assert_int_equal(cg_batcher_shard(d.b, 0, 2), CG_ERR_STATE);
        assert_error(CG_ERR_STATE, "cg_batcher_shard: called in the middle of an epoch");
    }
    assert_false(cg_batcher_next(d.b, &xb, &yb));
    assert_int_equal(cg_batcher_shard(d.b, 0, 2), CG_OK);
    close_data(&d);
    /* no samples at all: nothing to divide, empty epochs */
    d = open_data(0, 2, 2, true, NULL);
    assert_int_equal(cg_batcher_shard(d.b, 1, 2), CG_OK);
    assert_int_equal(cg_batcher_nbatches(d.b), 0);
    assert_false(cg_batcher_next(d.b, &xb, &yb));
    close_data(&d);
    /* a dataset whose context was reset */
    cg_ctx *ctx = cg_ctx_new();
    cg_tensor *x = cg_arange(ctx, CG_F32, 0, 4, 1);
    cg_batcher *b = cg_batcher_new(x, NULL, 2, false, false, NULL);
    cg_ctx_reset(ctx);
    assert_int_equal(cg_batcher_shard(b, 0, 2), CG_ERR_STATE);
    assert_error(CG_ERR_STATE, "cg_batcher_shard: x belongs to a context that was reset");
    cg_batcher_free(b);
    cg_ctx_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_idx_raw_read_and_load),
        cmocka_unit_test(test_data_idx_gzip_read_and_load),
        cmocka_unit_test(test_data_idx_empty_dim),
        cmocka_unit_test(test_data_idx_missing_or_unreadable),
        cmocka_unit_test(test_data_idx_bad_header),
        cmocka_unit_test(test_data_idx_bad_counts),
        cmocka_unit_test(test_data_idx_bad_gzip),
        cmocka_unit_test(test_data_idx_arguments),
        cmocka_unit_test(test_data_normalize_values),
        cmocka_unit_test_setup_teardown(test_data_normalize_bumps_version, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test(test_data_normalize_errors),
        cmocka_unit_test_setup_teardown(test_data_one_hot_values, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_data_one_hot_errors, ctx_setup, ctx_teardown),
        cmocka_unit_test(test_data_batcher_every_sample_once),
        cmocka_unit_test(test_data_batcher_drop_last),
        cmocka_unit_test(test_data_batcher_seeded_order),
        cmocka_unit_test(test_data_batcher_no_shuffle_keeps_order),
        cmocka_unit_test(test_data_batcher_reuses_buffers),
        cmocka_unit_test(test_data_batcher_non_contiguous),
        cmocka_unit_test(test_data_batcher_multi_dim_y),
        cmocka_unit_test(test_data_batcher_y_null),
        cmocka_unit_test_setup_teardown(test_data_batcher_bumps_version, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test(test_data_batcher_errors),
        cmocka_unit_test(test_data_batcher_shard_covers_every_sample),
        cmocka_unit_test(test_data_batcher_shard_drops_short_batches),
        cmocka_unit_test(test_data_batcher_shard_in_order),
        cmocka_unit_test(test_data_batcher_shard_reshuffles_per_epoch),
        cmocka_unit_test(test_data_batcher_shard_one_replica_is_unsharded),
        cmocka_unit_test(test_data_batcher_shard_resizes_buffers),
        cmocka_unit_test(test_data_batcher_shard_errors),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
