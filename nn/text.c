/* Text for character-level models: a byte vocabulary (the distinct bytes of
 * a text, sorted), encoding to and decoding from i64 ids, the vocabulary as
 * a tensor for checkpoints, a text file as ids, a split by position and a
 * sampler of random windows. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- vocabulary ----------------------------------------------------------------------- */
/* Fills ids[] (byte -> id, -1 when absent) from bytes[0..size), and zeroes
 * bytes[size..256) so that equal vocabularies are equal structs. */
static void index_vocab(cg_vocab *v) {
    memset(v->bytes + v->size, 0, (size_t)(256 - v->size));
    for (int b = 0; b < 256; b++) v->ids[b] = -1;
    for (int i = 0; i < v->size; i++) v->ids[v->bytes[i]] = (int16_t)i;
}

cg_status cg_vocab_build(cg_vocab *v, const void *data, int64_t n) {
    if (!v || n < 0 || (n > 0 && !data))
        return cgi_error(NULL, CG_ERR_ARG, "cg_vocab_build: %s",
                         !v ? "vocab is NULL" : "no data");
    bool seen[256] = {false};
    const unsigned char *p = data;
    for (int64_t i = 0; i < n; i++) seen[p[i]] = true;
    v->size = 0;
    for (int b = 0; b < 256; b++)
        if (seen[b]) v->bytes[v->size++] = (uint8_t)b;
    index_vocab(v);
    return CG_OK;
}

cg_tensor *cg_vocab_encode(cg_ctx *ctx, const cg_vocab *v, const void *data, int64_t n) {
    if (!v || n < 0 || (n > 0 && !data)) {
        cgi_error(ctx, CG_ERR_ARG, "cg_vocab_encode: %s", !v ? "vocab is NULL" : "no data");
        return NULL;
    }
    cg_tensor *t = cg_empty(ctx, CG_I64, 1, &n);
    if (!t) cgi_name_failure("cg_vocab_encode"); /* too many bytes, out of memory */
    int64_t *out = t ? cg_data(t) : NULL;
    const unsigned char *p = data;
    for (int64_t i = 0; out && i < n; i++) {
        if (v->ids[p[i]] < 0) {
            cgi_error(
                ctx, CG_ERR_ARG,
                "cg_vocab_encode: byte 0x%02x at %lld is not in the vocabulary (%d bytes)",
                p[i], (long long)i, v->size);
            if (!ctx) cg_tensor_free(t);
            return NULL;
        }
        out[i] = v->ids[p[i]];
    }
    return t;
}

/* The ids as int64 values in C order (malloc'd), any layout. */
static int64_t *ids_values(const cg_tensor *ids, const char *fn) {
    int64_t n = cg_numel(ids);
    if (n < 0) return NULL; /* NULL tensor: error recorded */
    if (cg_dtype_of(ids) != CG_I64) {
        cgi_error(NULL, CG_ERR_DTYPE, "%s: ids are %s, need i64", fn,
                  cg_dtype_name(cg_dtype_of(ids)));
        return NULL;
    }
    int64_t *vals = malloc(sizeof *vals * (size_t)(n > 0 ? n : 1));
    if (!vals) cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
    if (vals && cg_copy_to_array(ids, CG_I64, vals) != CG_OK) {
        free(vals);
        return NULL;
    }
    return vals;
}

cg_status cg_vocab_decode(const cg_vocab *v, const cg_tensor *ids, char *out, size_t size) {
    const char *fn = "cg_vocab_decode";
    if (!v || !out) return cgi_error(NULL, CG_ERR_ARG, "%s: vocab or out is NULL", fn);
    if (!ids) return cgi_null_arg(NULL, fn, "ids");
    int64_t n = cg_numel(ids);
    if (n >= 0 && (uint64_t)n >= size)
        return cgi_error(NULL, CG_ERR_ARG, "%s: %lld ids need %lld bytes of out, got %zu", fn,
                         (long long)n, (long long)n + 1, size);
    int64_t *vals = ids_values(ids, fn);
    if (!vals) return cg_last_status();
    cg_status st = CG_OK;
    for (int64_t i = 0; st == CG_OK && i < n; i++)
        if (vals[i] < 0 || vals[i] >= v->size)
            st = cgi_error(NULL, CG_ERR_INDEX, "%s: id %lld at %lld is outside [0, %d)", fn,
                           (long long)vals[i], (long long)i, v->size);
        else
            out[i] = (char)v->bytes[vals[i]];
    out[st == CG_OK ? n : 0] = '\0';
    free(vals);
    return st;
}

cg_tensor *cg_vocab_tensor(cg_ctx *ctx, const cg_vocab *v) {
    if (!v) {
        cgi_error(ctx, CG_ERR_ARG, "cg_vocab_tensor: vocab is NULL");
        return NULL;
    }
    int64_t bytes[256], n = v->size;
    for (int i = 0; i < v->size; i++) bytes[i] = v->bytes[i];
    return cg_from_array(ctx, CG_I64, 1, &n, bytes);
}

cg_status cg_vocab_from_tensor(cg_vocab *v, const cg_tensor *t) {
    const char *fn = "cg_vocab_from_tensor";
    if (!v) return cgi_error(NULL, CG_ERR_ARG, "%s: vocab is NULL", fn);
    if (!t) return cgi_null_arg(NULL, fn, "tensor");
    int64_t n = cg_numel(t);
    if (n >= 0 && (cg_ndim(t) != 1 || n > 256)) {
        char s[64];
        return cgi_error(NULL, CG_ERR_SHAPE, "%s: %s: need a 1-D tensor of at most 256 bytes",
                         fn, cg_shape_str(t, s, sizeof s));
    }
    int64_t *vals = ids_values(t, fn);
    if (!vals) return cg_last_status();
    cg_status st = CG_OK;
    for (int64_t i = 0; st == CG_OK && i < n; i++)
        if (vals[i] < 0 || vals[i] > 255 || (i > 0 && vals[i] <= vals[i - 1]))
            st = cgi_error(NULL, CG_ERR_ARG,
                           "%s: entry %lld is %lld: need increasing bytes in [0, 255]", fn,
                           (long long)i, (long long)vals[i]);
    if (st == CG_OK) {
        v->size = (int)n;
        for (int64_t i = 0; i < n; i++) v->bytes[i] = (uint8_t)vals[i];
        index_vocab(v);
    }
    free(vals);
    return st;
}

cg_status cg_vocab_save(const char *path, const cg_vocab *v) {
    cg_tensor *t = cg_vocab_tensor(NULL, v);
    const char *names[] = {"vocab"};
    cg_status st =
        t ? cg_save_tensors(path, 1, names, (const cg_tensor *const[]){t}) : cg_last_status();
    cg_tensor_free(t);
    if (st != CG_OK) cgi_name_failure("cg_vocab_save");
    return st;
}

cg_status cg_vocab_load(const char *path, cg_vocab *v) {
    cg_tensor_dict d = {0};
    cg_status st = cg_load_tensors(path, &d);
    const cg_tensor *t = NULL;
    for (int i = 0; st == CG_OK && i < d.n; i++)
        if (!strcmp(d.names[i], "vocab")) t = d.tensors[i];
    if (st == CG_OK)
        st = t ? cg_vocab_from_tensor(v, t)
               : cgi_error(NULL, CG_ERR_ARG, "cg_vocab_load: %s has no tensor \"vocab\"", path);
    cg_tensor_dict_free(&d);
    if (st != CG_OK) cgi_name_failure("cg_vocab_load");
    return st;
}

/* ---- a text file ------------------------------------------------------------------------ */
/* The whole file, malloc'd, its length in *n. */
static unsigned char *read_file(const char *path, int64_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cgi_error(NULL, CG_ERR_IO, "cg_text_load: %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) break;
        unsigned char *bigger = cap < SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!bigger) free(buf);
        buf = bigger;
        cap *= 2;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        cgi_error(NULL, buf ? CG_ERR_IO : CG_ERR_NOMEM, "cg_text_load: %s: %s", path,
                  buf ? "read error" : "out of memory");
        return NULL;
    }
    *n = (int64_t)len;
    return buf;
}

cg_status cg_text_load(const char *path, const cg_vocab *vocab, cg_text *out) {
    if (!out || !path)
        return cgi_error(NULL, CG_ERR_ARG, "cg_text_load: %s is NULL", out ? "path" : "out");
    memset(out, 0, sizeof *out);
    int64_t n = 0;
    unsigned char *data = read_file(path, &n);
    if (!data) return cg_last_status();
    cg_status st = CG_OK;
    if (n == 0)
        st = cgi_error(NULL, CG_ERR_IO, "cg_text_load: %s is empty", path);
    else if (vocab)
        out->vocab = *vocab;
    else
        st = cg_vocab_build(&out->vocab, data, n);
    if (st == CG_OK) {
        out->ids = cg_vocab_encode(NULL, &out->vocab, data, n);
        st = out->ids ? CG_OK : cg_last_status();
        if (!out->ids) cgi_name_failure("cg_text_load"); /* a byte outside *vocab */
    }
    free(data);
    if (st != CG_OK) memset(out, 0, sizeof *out);
    return st;
}

void cg_text_free(cg_text *t) {
    if (!t) return;
    cg_tensor_free(t->ids);
    memset(t, 0, sizeof *t);
}

cg_status cg_text_split(const cg_tensor *ids, double train_frac, cg_tensor **train,
                        cg_tensor **val) {
    const char *fn = "cg_text_split";
    if (!ids) return cgi_null_arg(NULL, fn, "ids"); /* keeps the error that made the NULL */
    if (!train || !val || !(train_frac >= 0 && train_frac <= 1) || cg_ndim(ids) != 1)
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: need 1-D ids, train_frac in [0, 1] (got %g) and two outputs", fn,
                         train_frac);
    int64_t n = cg_dim(ids, 0), cut = (int64_t)((double)n * train_frac);
    *train = cg_narrow(NULL, ids, 0, 0, cut);
    *val = *train ? cg_narrow(NULL, ids, 0, cut, n - cut) : NULL;
    if (*val) return CG_OK;
    cg_tensor_free(*train);
    *train = NULL;
    cgi_name_failure(fn); /* ids in a context: the views would outlive it */
    return cg_last_status();
}

/* ---- random windows ---------------------------------------------------------------------- */
cg_tensor *cg_text_batch(cg_ctx *ctx, const cg_tensor *ids, int64_t batch, int64_t len,
                         cg_rng *rng) {
    const char *fn = "cg_text_batch";
    CGI_INPUT_CHECK(ids, fn, 0);
    int64_t n = cg_ndim(ids) == 1 ? cg_dim(ids, 0) : -1;
    if (cg_dtype_of(ids) != CG_I64 || n < 0 || batch < 1 || len < 1 || len > n || !rng) {
        char s[64];
        cgi_error(ctx, CG_ERR_ARG,
                  "%s: ids %s of %s, batch %lld, len %lld: need i64 [N] ids, batch >= 1, "
                  "1 <= len <= N and an rng",
                  fn, cg_shape_str(ids, s, sizeof s), cg_dtype_name(cg_dtype_of(ids)),
                  (long long)batch, (long long)len);
        return NULL;
    }
    cg_tensor *out = cg_empty(ctx, CG_I64, CG_SHAPE(batch, len));
    if (!out) {
        cgi_name_failure(fn); /* batch len overflows or out of memory */
        return NULL;
    }
    const int64_t *src = cg_data(ids), stride = cg_strides(ids)[0];
    int64_t *dst = cg_data(out), starts = n - len + 1;
    for (int64_t b = 0; b < batch; b++) {
        int64_t s = (int64_t)(cg_rng_uniform(rng) * (double)starts);
        for (int64_t t = 0; t < len; t++) dst[b * len + t] = src[(s + t) * stride];
    }
    return out;
}
