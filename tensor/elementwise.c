/* Elementwise kernels on strided arrays, below any graph.
 *
 * One iterator serves every elementwise kernel: the operands (output first)
 * are laid over the output's shape with broadcast strides (0 on broadcast
 * dims), dims of size 1 are dropped, dims that are contiguous for every
 * operand are merged, and the flat index range is split evenly over the
 * threads. Each thread then calls a row function on runs of the innermost
 * dim, so the kernels are plain 1-D loops with a contiguous fast path. */
#include "internal.h"

#include <omp.h>
#include <string.h>

#define MAX_OPS 4

typedef struct iter {
    int ndim, nops;
    int64_t shape[CG_MAX_DIMS];
    int64_t strides[MAX_OPS][CG_MAX_DIMS]; /* elements */
    char *base[MAX_OPS];
    size_t esize[MAX_OPS];
} iter;

typedef void (*row_fn)(const void *fn, int64_t n, char **p, const int64_t *s);

void cgi_broadcast_strides(const cg_tensor *t, int ndim, const int64_t *shape,
                           int64_t *strides) {
    for (int i = 0; i < ndim; i++) {
        int k = i - (ndim - t->ndim);
        strides[i] = (k < 0 || t->shape[k] != shape[i]) ? 0 : t->strides[k];
    }
}

/* Drops size-1 dims and merges dim i into i+1 when every operand allows. */
static void coalesce(iter *it) {
    int n = 0;
    for (int d = 0; d < it->ndim; d++) {
        if (it->shape[d] == 1) continue;
        bool merge = n > 0;
        for (int o = 0; o < it->nops && merge; o++)
            merge = it->strides[o][n - 1] == it->strides[o][d] * it->shape[d];
        if (merge) {
            it->shape[n - 1] *= it->shape[d];
            for (int o = 0; o < it->nops; o++) it->strides[o][n - 1] = it->strides[o][d];
            continue;
        }
        it->shape[n] = it->shape[d];
        for (int o = 0; o < it->nops; o++) it->strides[o][n] = it->strides[o][d];
        n++;
    }
    if (n == 0) { /* a single element */
        it->shape[0] = 1;
        for (int o = 0; o < it->nops; o++) it->strides[o][0] = 0;
        n = 1;
    }
    it->ndim = n;
}

/* The common case, checked first because it is cheap: out contiguous and
 * every input either contiguous with out's shape or a single element. The
 * iteration is then one flat dim with strides 1 or 0. */
static bool iter_flat(iter *it, cg_tensor *out, const cg_tensor **in, int nin) {
    if (!cgi_is_contiguous(out)) return false;
    for (int i = 0; i < nin; i++) {
        bool one = cgi_numel(in[i]->ndim, in[i]->shape) == 1;
        if (!one && !(cgi_same_shape(in[i], out) && cgi_is_contiguous(in[i]))) return false;
        it->strides[i + 1][0] = one ? 0 : 1;
        it->base[i + 1] = cgi_ptr(in[i]);
        it->esize[i + 1] = cg_dtype_size(in[i]->dtype);
    }
    it->ndim = 1;
    it->nops = nin + 1;
    it->shape[0] = cgi_numel(out->ndim, out->shape);
    it->strides[0][0] = 1;
    it->base[0] = cgi_ptr(out);
    it->esize[0] = cg_dtype_size(out->dtype);
    return true;
}

static void iter_init(iter *it, cg_tensor *out, const cg_tensor **in, int nin) {
    if (iter_flat(it, out, in, nin)) return;
    it->ndim = out->ndim;
    it->nops = nin + 1;
    memcpy(it->shape, out->shape, sizeof it->shape);
    memcpy(it->strides[0], out->strides, sizeof it->strides[0]);
    it->base[0] = cgi_ptr(out);
    it->esize[0] = cg_dtype_size(out->dtype);
    for (int i = 0; i < nin; i++) {
        cgi_broadcast_strides(in[i], out->ndim, out->shape, it->strides[i + 1]);
        it->base[i + 1] = cgi_ptr(in[i]);
        it->esize[i + 1] = cg_dtype_size(in[i]->dtype);
    }
    coalesce(it);
}

/* Runs row over flat indices [begin, end) in C order of the coalesced dims. */
static void iter_range(const iter *it, row_fn row, const void *fn, int64_t begin, int64_t end) {
    int64_t idx[CG_MAX_DIMS], rem = begin;
    int last = it->ndim - 1;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % it->shape[d];
        rem /= it->shape[d];
    }
    while (begin < end) {
        char *p[MAX_OPS];
        int64_t s[MAX_OPS];
        for (int o = 0; o < it->nops; o++) {
            int64_t off = 0;
            for (int d = 0; d < it->ndim; d++) off += idx[d] * it->strides[o][d];
            p[o] = it->base[o] + off * (int64_t)it->esize[o];
            s[o] = it->strides[o][last];
        }
        int64_t n = it->shape[last] - idx[last];
        if (n > end - begin) n = end - begin;
        row(fn, n, p, s);
        begin += n;
        idx[last] += n;
        for (int d = last; d > 0 && idx[d] == it->shape[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
        }
    }
}

static void iter_run(const iter *it, row_fn row, const void *fn) {
    int64_t total = cgi_numel(it->ndim, it->shape);
    if (total == 0) return;
    int threads = cg_get_num_threads();
    if (total < CGI_PAR_MIN || threads == 1) {
        iter_range(it, row, fn, 0, total);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        iter_range(it, row, fn, total * t / nt, total * (t + 1) / nt);
    }
}

/* ---- unary and binary maps ------------------------------------------------------ */
typedef struct {
    cgi_unary_fn f;
} unary_box;
typedef struct {
    cgi_binary_fn f;
} binary_box;
typedef struct {
    cgi_ternary_fn f;
} ternary_box;

static void unary_row(const void *fn, int64_t n, char **p, const int64_t *s) {
    ((const unary_box *)fn)->f(n, p[1], s[1], p[0], s[0]);
}
static void binary_row(const void *fn, int64_t n, char **p, const int64_t *s) {
    ((const binary_box *)fn)->f(n, p[1], s[1], p[2], s[2], p[0], s[0]);
}
static void ternary_row(const void *fn, int64_t n, char **p, const int64_t *s) {
    ((const ternary_box *)fn)->f(n, p[1], s[1], p[2], s[2], p[3], s[3], p[0], s[0]);
}

void cgi_map_unary(cgi_unary_fn fn, const cg_tensor *x, cg_tensor *out) {
    iter it;
    unary_box box = {fn};
    iter_init(&it, out, &x, 1);
    iter_run(&it, unary_row, &box);
}

void cgi_map_binary(cgi_binary_fn fn, const cg_tensor *a, const cg_tensor *b, cg_tensor *out) {
    iter it;
    binary_box box = {fn};
    const cg_tensor *in[2] = {a, b};
    iter_init(&it, out, in, 2);
    iter_run(&it, binary_row, &box);
}

void cgi_map_ternary(cgi_ternary_fn fn, const cg_tensor *a, const cg_tensor *b,
                     const cg_tensor *c, cg_tensor *out) {
    iter it;
    ternary_box box = {fn};
    const cg_tensor *in[3] = {a, b, c};
    iter_init(&it, out, in, 3);
    iter_run(&it, ternary_row, &box);
}

cg_tensor *cgi_stack_scalar(cg_tensor *t, cgi_storage *st, cgi_scalar *v, cg_dtype dt,
                            double value) {
    memset(t, 0, sizeof *t);
    if (dt == CG_F32)
        v->f32 = (float)value;
    else if (dt == CG_F64)
        v->f64 = value;
    else
        v->i64 = cgi_f64_to_i64(value);
    *st = (cgi_storage){
        .data = v, .nbytes = sizeof *v, .refcount = 1, .kind = CGI_STORAGE_BORROWED};
    t->storage = st;
    t->dtype = dt;
    cgi_stamp_header(t, NULL);
    return t;
}
