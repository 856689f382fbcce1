/* Datasets: IDX files (the MNIST format), in-place normalisation and one-hot
 * labels. The batcher lives in batcher.c.
 *
 * An IDX file is a big-endian header (two zero bytes, a type byte, a rank
 * byte, then one u32 per dim) followed by the elements in C order. zlib's
 * gzread reads gzip and plain files alike (it looks for the gzip magic), so
 * one path serves both. Every count comes from the file, so none is trusted:
 * the data buffer grows only as bytes actually arrive, and a file that ends
 * early, goes on too long or fails its gzip check is refused. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_U8      0x08
#define READ_CHUNK  ((size_t)1 << 30) /* gzread counts in unsigned, returns int */
#define FIRST_ALLOC ((size_t)1 << 20) /* the data buffer's size before it grows */

/* An open IDX file and the names its errors carry. */
typedef struct reader {
    gzFile gz;
    const char *op, *path;
} reader;

static cg_status fail(const reader *r, const char *fmt, ...) CGI_PRINTF(2, 3);
static cg_status fail(const reader *r, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return cgi_error(NULL, CG_ERR_IO, "%s: %s: %s", r->op, r->path, what);
}

/* zlib's complaint about the stream, or NULL: a corrupt or cut gzip stream
 * shows only here, as gzread returns whatever it could decompress. zlib
 * prefixes the path, which our message already names. */
static const char *gz_problem(const reader *r, int *err) {
    const char *msg = gzerror(r->gz, err);
    if (*err == Z_OK) return NULL;
    size_t n = strlen(r->path);
    if (!strncmp(msg, r->path, n) && !strncmp(msg + n, ": ", 2)) msg += n + 2;
    return msg;
}

/* The error for a read that failed: the system's (a directory, a bad disk)
 * or zlib's (a bad gzip stream). */
static cg_status read_failed(const reader *r) {
    int err;
    const char *gz = gz_problem(r, &err);
    if (!gz || err == Z_ERRNO) return fail(r, "read error: %s", strerror(errno));
    return fail(r, "corrupt gzip stream: %s", gz);
}

/* Up to n bytes into buf: how many arrived before the end of the file, or
 * -1 on a read error. Loops since one gzread moves at most INT_MAX bytes. */
static int64_t read_some(const reader *r, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < READ_CHUNK ? n - got : READ_CHUNK;
        int k = gzread(r->gz, (char *)buf + got, (unsigned)want);
        if (k < 0) return -1;
        if (k == 0) break;
        got += (size_t)k;
    }
    return (int64_t)got;
}

/* Reads n bytes of `what` into buf + have (the first `have` already there,
 * counted in the message); CG_ERR_IO when they are not all there. A gzip
 * error with all bytes read waits for check_end: zlib decompresses ahead, so
 * it may already know of a problem past the bytes asked for. */
static cg_status read_exact(const reader *r, void *buf, size_t have, size_t n,
                            const char *what) {
    int64_t got = read_some(r, (char *)buf + have, n - have);
    int err;
    const char *gz = gz_problem(r, &err);
    if (got < 0) return read_failed(r);
    if ((size_t)got < n - have)
        return fail(r, "truncated: expected %zu bytes of %s, got %zu%s%s", n, what,
                    have + (size_t)got, gz ? "; gzip: " : "", gz ? gz : "");
    return CG_OK;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The magic number and dims into out; *numel the element count. */
static cg_status read_header(const reader *r, cg_idx *out, size_t *numel) {
    unsigned char h[4 + 4 * CG_MAX_DIMS];
    if (read_exact(r, h, 0, 4, "header") != CG_OK) return CG_ERR_IO;
    if (h[0] || h[1])
        return fail(r, "bad magic number 0x%02X%02X%02X%02X (not an IDX file)", h[0], h[1],
                    h[2], h[3]);
    if (h[2] != IDX_U8)
        return fail(r, "unsupported IDX type 0x%02X (only unsigned byte, 0x08)", h[2]);
    int nd = h[3];
    if (nd < 1 || nd > CG_MAX_DIMS) return fail(r, "rank %d outside 1..%d", nd, CG_MAX_DIMS);
    if (read_exact(r, h, 4, 4 + 4 * (size_t)nd, "header") != CG_OK) return CG_ERR_IO;
    uint64_t n = 1;
    for (int d = 0; d < nd; d++) {
        uint64_t dim = be32(h + 4 + 4 * d);
        if (dim && n > (uint64_t)PTRDIFF_MAX / dim)
            return fail(r, "inconsistent counts: the dims' product overflows");
        n *= dim;
        out->shape[d] = (int64_t)dim;
    }
    out->ndim = nd;
    *numel = (size_t)n;
    return CG_OK;
}

/* The n data bytes (malloc'd), or NULL with the error recorded. The buffer
 * doubles as bytes arrive, so a header claiming terabytes costs memory only
 * for what the file really holds. */
static uint8_t *read_data(const reader *r, size_t n) {
    size_t cap = n < FIRST_ALLOC ? n : FIRST_ALLOC;
    uint8_t *buf = malloc(cap ? cap : 1);
    size_t have = 0;
    while (buf && cap < n) {
        int64_t got = read_some(r, buf + have, cap - have);
        if (got < 0) break; /* read_exact says why */
        have += (size_t)got;
        if (have < cap) break; /* the file ended early: the same */
        cap = cap > n / 2 ? n : cap * 2;
        uint8_t *grown = realloc(buf, cap);
        if (!grown) free(buf);
        buf = grown;
    }
    if (!buf) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: %s: out of memory for %zu bytes", r->op, r->path, n);
        return NULL;
    }
    if (read_exact(r, buf, have, n, "data") != CG_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Nothing may follow the data: extra bytes mean the header's counts are
 * wrong. Reading past the end also makes zlib check the gzip trailer. */
static cg_status check_end(const reader *r, size_t n) {
    unsigned char extra;
    int err;
    int64_t got = read_some(r, &extra, 1);
    if (got < 0 || gz_problem(r, &err)) return read_failed(r);
    if (got > 0)
        return fail(r, "inconsistent counts: bytes follow the %zu the header gives", n);
    return CG_OK;
}

static cg_status read_idx(const char *op, const char *path, cg_idx *out) {
    if (!out) return cgi_error(NULL, CG_ERR_ARG, "%s: out is NULL", op);
    memset(out, 0, sizeof *out);
    if (!path) return cgi_error(NULL, CG_ERR_ARG, "%s: path is NULL", op);
    reader r = {NULL, op, path};
    errno = 0;
    if (!(r.gz = gzopen(path, "rb")))
        return fail(&r, "cannot open: %s", errno ? strerror(errno) : "out of memory");
    gzbuffer(r.gz, 1 << 18); /* fewer, larger reads than zlib's default 8 KiB */
    size_t n = 0;
    cg_idx idx = {0};
    cg_status st = read_header(&r, &idx, &n);
    if (st == CG_OK) st = (idx.data = read_data(&r, n)) ? CG_OK : cg_last_status();
    if (st == CG_OK) st = check_end(&r, n);
    gzclose(r.gz);
    if (st == CG_OK)
        *out = idx;
    else
        free(idx.data);
    return st;
}

cg_status cg_idx_read(const char *path, cg_idx *out) {
    return read_idx("cg_idx_read", path, out);
}

void cg_idx_free(cg_idx *idx) {
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx); /* a second free is then harmless */
}

/* bytes[i] * scale into t (contiguous, float), through a table of the 256
 * possible values so each element costs one lookup. */
static void bytes_to_float(cg_tensor *t, const uint8_t *bytes, int64_t n, double scale) {
    double tab[256];
    for (int b = 0; b < 256; b++) tab[b] = b * scale;
    if (t->dtype == CG_F32) {
        float *o = (float *)cgi_ptr(t);
        CGI_PAR_FOR(n > CGI_PAR_MIN, i, n, { o[i] = (float)tab[bytes[i]]; });
    } else {
        double *o = (double *)cgi_ptr(t);
        CGI_PAR_FOR(n > CGI_PAR_MIN, i, n, { o[i] = tab[bytes[i]]; });
    }
}

cg_tensor *cg_idx_load(const char *path, cg_dtype dt, double scale) {
    if (!cgi_valid_dtype(dt)) {
        cgi_error(NULL, CG_ERR_DTYPE, "cg_idx_load: invalid dtype %d", (int)dt);
        return NULL;
    }
    cg_idx idx;
    if (read_idx("cg_idx_load", path, &idx) != CG_OK) return NULL;
    cg_tensor *t = cgi_new(NULL, "cg_idx_load", dt, idx.ndim, idx.shape);
    int64_t n = cgi_numel(idx.ndim, idx.shape);
    if (t && dt == CG_I64) {
        int64_t *o = (int64_t *)cgi_ptr(t);
        for (int64_t i = 0; i < n; i++) o[i] = idx.data[i];
    } else if (t) {
        bytes_to_float(t, idx.data, n, scale);
    }
    cg_idx_free(&idx);
    return t;
}

/* Writing through a stride-0 dim would normalise one element many times. */
static bool overlaps(const cg_tensor *x) {
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] > 1 && x->strides[d] == 0) return true;
    return false;
}

/* (x - mean) / std as two in-place passes, the same arithmetic (and so the
 * same bits) as torchvision's Normalize: sub_ then div_. */
cg_status cg_normalize_(cg_tensor *x, double mean, double std) {
    cg_status s = cgi_check_input(NULL, "cg_normalize_", -1, x); /* keeps a maker's error */
    if (s != CG_OK) return s;
    if (!cgi_is_float(x->dtype))
        return cgi_error(x->ctx, CG_ERR_DTYPE, "cg_normalize_: dtype %s is not a float",
                         cg_dtype_name(x->dtype));
    if (!(std > 0))
        return cgi_error(x->ctx, CG_ERR_ARG, "cg_normalize_: std %g must be > 0", std);
    if (overlaps(x))
        return cgi_error(x->ctx, CG_ERR_ARG,
                         "cg_normalize_: x is an expanded view "
                         "(elements share memory)");
    cg_tensor st;
    cgi_storage sto;
    cgi_scalar v;
    cgi_map_binary(cgi_binary_sub.fn[x->dtype], x,
                   cgi_stack_scalar(&st, &sto, &v, x->dtype, mean), x);
    cgi_map_binary(cgi_binary_div.fn[x->dtype], x,
                   cgi_stack_scalar(&st, &sto, &v, x->dtype, std), x);
    cgi_bump_version(x);
    return CG_OK;
}

/* The labels checked before anything is made: i64 [N], each in [0, classes). */
static cg_status check_labels(cg_ctx *ctx, const cg_tensor *labels, int64_t classes) {
    const char *op = "cg_one_hot";
    if (labels->dtype != CG_I64)
        return cgi_error(ctx, CG_ERR_DTYPE, "%s: labels are %s, not i64", op,
                         cg_dtype_name(labels->dtype));
    if (labels->ndim != 1) {
        char s[160];
        return cgi_error(ctx, CG_ERR_SHAPE, "%s: labels %s are not 1-D [N]", op,
                         cg_shape_str(labels, s, sizeof s));
    }
    if (classes < 1)
        return cgi_error(ctx, CG_ERR_ARG, "%s: classes %lld must be >= 1", op,
                         (long long)classes);
    const int64_t *l = (const int64_t *)cgi_ptr(labels);
    for (int64_t i = 0; i < labels->shape[0]; i++) {
        int64_t c = l[i * labels->strides[0]];
        if (c < 0 || c >= classes)
            return cgi_error(ctx, CG_ERR_INDEX, "%s: label %lld at %lld outside [0, %lld)", op,
                             (long long)c, (long long)i, (long long)classes);
    }
    return CG_OK;
}

cg_tensor *cg_one_hot(cg_ctx *ctx, const cg_tensor *labels, int64_t classes, cg_dtype dt) {
    CGI_NULL_CHECK(labels, "cg_one_hot");
    if (check_labels(ctx, labels, classes) != CG_OK) return NULL;
    int64_t n = labels->shape[0];
    cg_tensor *out = cgi_new(ctx, "cg_one_hot", dt, 2, (const int64_t[]){n, classes});
    if (!out) return NULL;
    const int64_t *l = (const int64_t *)cgi_ptr(labels);
    char *o = cgi_ptr(out);
    size_t es = cg_dtype_size(dt);
    memset(o, 0, (size_t)(n * classes) * es); /* all-zero bits are 0 in every dtype */
    for (int64_t i = 0; i < n; i++) {
        char *p = o + (size_t)(i * classes + l[i * labels->strides[0]]) * es;
        if (dt == CG_F32)
            *(float *)p = 1.0f;
        else if (dt == CG_F64)
            *(double *)p = 1.0;
        else
            *(int64_t *)p = 1;
    }
    return out;
}
