/* Kernels of the sequence ops: masked where, triangles, cumulative sums and
 * products, tiling, and sorting lines. Work is split over lines (or rows),
 * each done by one thread start to end, so results do not depend on the
 * thread count. */
#include "seq_kernels.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- lines ------------------------------------------------------------------------------- */
/* Positions of t off dim: how many lines t has along dim. */
static int64_t line_count(const cg_tensor *t, int dim) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        if (d != dim) n *= t->shape[d];
    return n;
}

/* Element offset of line k of t along dim (k counts the positions of the
 * other dims in C order). */
static int64_t line_offset(const cg_tensor *t, int dim, int64_t k) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (d == dim) continue;
        off += (k % t->shape[d]) * t->strides[d];
        k /= t->shape[d];
    }
    return off;
}

/* One line of n elements: p[i] steps by s[i] elements. */
typedef void (*line_fn)(int64_t n, char *const *p, const int64_t *s, bool flag);

/* fn over every line along dim of nops tensors of one shape (ts[0]'s). */
static void run_lines(int nops, const cg_tensor *const *ts, int dim, line_fn fn, bool flag) {
    int64_t n = ts[0]->shape[dim], count = line_count(ts[0], dim);
    CGI_PAR_FOR(count > 1 && n * count > CGI_PAR_MIN, k, count, {
        char *p[3];
        int64_t s[3];
        for (int i = 0; i < nops; i++) {
            int64_t es = (int64_t)cg_dtype_size(ts[i]->dtype);
            p[i] = cgi_ptr(ts[i]) + line_offset(ts[i], dim, k) * es;
            s[i] = ts[i]->strides[dim];
        }
        fn(n, p, s, flag);
    });
}

/* ---- masked where ------------------------------------------------------------------------ */
#define MASK_WHERE(name, T, C)                                                                 \
    static void name(int64_t n, const void *c_, int64_t sc, const void *a_, int64_t sa,        \
                     const void *b_, int64_t sb, void *o_, int64_t so) {                       \
        const C *c = c_;                                                                       \
        const T *a = a_, *b = b_;                                                              \
        T *o = o_;                                                                             \
        for (int64_t i = 0; i < n; i++) o[i * so] = c[i * sc] != 0 ? a[i * sa] : b[i * sb];    \
    }
#define MASK_WHERE_ALL(T, t)                                                                   \
    MASK_WHERE(where_##t##_f32, T, float)                                                      \
    MASK_WHERE(where_##t##_f64, T, double)                                                     \
    MASK_WHERE(where_##t##_i64, T, int64_t)
MASK_WHERE_ALL(float, f32)
MASK_WHERE_ALL(double, f64)
MASK_WHERE_ALL(int64_t, i64)

const cgi_ternary_fn cgi_mask_where_fn[3][3] = {
    {where_f32_f32, where_f32_f64, where_f32_i64},
    {where_f64_f32, where_f64_f64, where_f64_i64},
    {where_i64_f32, where_i64_f64, where_i64_i64},
};

/* ---- triangles --------------------------------------------------------------------------- */
void cgi_zero_triangle(cg_tensor *out, int64_t diagonal, bool upper) {
    int64_t r = out->shape[out->ndim - 2], c = out->shape[out->ndim - 1];
    int64_t rows = cgi_numel(out->ndim - 1, out->shape);
    /* clamped so that row + dg cannot overflow; the result is the same */
    int64_t dg = diagonal < -r ? -r : diagonal > c ? c : diagonal;
    size_t es = cg_dtype_size(out->dtype);
    char *base = cgi_ptr(out);
    CGI_PAR_FOR(rows > 1 && rows * c > CGI_PAR_MIN, q, rows, {
        int64_t i = q % r, lo = upper ? 0 : i + dg + 1, hi = upper ? i + dg : c;
        lo = lo < 0 ? 0 : lo;
        hi = hi > c ? c : hi;
        if (hi > lo) memset(base + (size_t)(q * c + lo) * es, 0, (size_t)(hi - lo) * es);
    });
}

/* ---- cumulative sums and products -------------------------------------------------------- */
/* p[0] out, p[1] x; flag: from the end (cumsum). ACC: the accumulator type
 * (double for floats, uint64_t for i64: wraps instead of overflowing). */
#define CUM_LINE(name, T, ACC, init, OPEQ)                                                     \
    static void name(int64_t n, char *const *p, const int64_t *s, bool rev) {                  \
        T *o = (T *)p[0];                                                                      \
        const T *x = (const T *)p[1];                                                          \
        ACC acc = init;                                                                        \
        for (int64_t j = 0; j < n; j++) {                                                      \
            int64_t i = rev ? n - 1 - j : j;                                                   \
            acc OPEQ(ACC) x[i * s[1]];                                                         \
            o[i * s[0]] = (T)acc;                                                              \
        }                                                                                      \
    }
CUM_LINE(cumsum_f32, float, double, 0, +=)
CUM_LINE(cumsum_f64, double, double, 0, +=)
CUM_LINE(cumsum_i64, int64_t, uint64_t, 0, +=)
CUM_LINE(cumprod_f32, float, double, 1, *=)
CUM_LINE(cumprod_f64, double, double, 1, *=)
CUM_LINE(cumprod_i64, int64_t, uint64_t, 1, *=)

static const line_fn cumsum_fns[3] = {cumsum_f32, cumsum_f64, cumsum_i64};
static const line_fn cumprod_fns[3] = {cumprod_f32, cumprod_f64, cumprod_i64};

void cgi_cumsum(const cg_tensor *x, int dim, bool reverse, cg_tensor *out) {
    run_lines(2, (const cg_tensor *[]){out, x}, dim, cumsum_fns[x->dtype], reverse);
}
void cgi_cumprod(const cg_tensor *x, int dim, cg_tensor *out) {
    run_lines(2, (const cg_tensor *[]){out, x}, dim, cumprod_fns[x->dtype], false);
}

/* p[0] out, p[1] x, p[2] g. First out_k = x_0 ... x_{k-1} (exclusive prefix
 * products), then from the end s_k = g_k + x_{k+1} s_{k+1} and out_k *= s_k. */
#define CUMPROD_GRAD_LINE(name, T)                                                             \
    static void name(int64_t n, char *const *p, const int64_t *s, bool unused) {               \
        (void)unused;                                                                          \
        T *o = (T *)p[0];                                                                      \
        const T *x = (const T *)p[1], *g = (const T *)p[2];                                    \
        double prod = 1, sk = 0;                                                               \
        for (int64_t k = 0; k < n; k++) {                                                      \
            o[k * s[0]] = (T)prod;                                                             \
            prod *= x[k * s[1]];                                                               \
        }                                                                                      \
        for (int64_t k = n - 1; k >= 0; k--) {                                                 \
            sk = k == n - 1 ? g[k * s[2]] : g[k * s[2]] + x[(k + 1) * s[1]] * sk;              \
            o[k * s[0]] = (T)(o[k * s[0]] * sk);                                               \
        }                                                                                      \
    }
CUMPROD_GRAD_LINE(cumprod_grad_f32, float)
CUMPROD_GRAD_LINE(cumprod_grad_f64, double)

void cgi_cumprod_grad(const cg_tensor *x, const cg_tensor *g, int dim, cg_tensor *out) {
    line_fn fn = x->dtype == CG_F32 ? cumprod_grad_f32 : cumprod_grad_f64;
    run_lines(3, (const cg_tensor *[]){out, x, g}, dim, fn, false);
}

/* ---- tiling ------------------------------------------------------------------------------ */
/* Offset in t (rank n) of row q of the shape rows (dims 0..n-2 of rows, C
 * order), each coordinate taken modulo t's dim. */
static int64_t tile_row_offset(const cg_tensor *t, const int64_t *rows, int n, int64_t q) {
    int64_t off = 0;
    for (int d = n - 2; d >= 0; d--) {
        off += (q % rows[d]) % t->shape[d] * t->strides[d];
        q /= rows[d];
    }
    return off;
}

#define REPEAT_ROW(name, T)                                                                    \
    static void name(int64_t c, const char *x_, int64_t xc, int64_t sx, char *o_) {            \
        const T *x = (const T *)x_;                                                            \
        T *o = (T *)o_;                                                                        \
        for (int64_t j0 = 0; j0 < c; j0 += xc)                                                 \
            for (int64_t j = 0; j < xc; j++) o[j0 + j] = x[j * sx];                            \
    }
REPEAT_ROW(repeat_row4, uint32_t)
REPEAT_ROW(repeat_row8, uint64_t)

void cgi_repeat(const cg_tensor *x, cg_tensor *out) {
    int n = out->ndim;
    size_t es = cg_dtype_size(x->dtype);
    if (n == 0) {
        memcpy(cgi_ptr(out), cgi_ptr(x), es);
        return;
    }
    int64_t c = out->shape[n - 1], xc = x->shape[n - 1], rows = cgi_numel(n - 1, out->shape);
    if (c == 0) return;
    CGI_PAR_FOR(rows > 1 && rows * c > CGI_PAR_MIN, q, rows, {
        const char *xr = cgi_ptr(x) + tile_row_offset(x, out->shape, n, q) * (int64_t)es;
        char *o = cgi_ptr(out) + (size_t)(q * c) * es;
        if (es == 4)
            repeat_row4(c, xr, xc, x->strides[n - 1], o);
        else
            repeat_row8(c, xr, xc, x->strides[n - 1], o);
    });
}

/* out row (xc elements, contiguous) += each tile of the g row (c elements). */
#define FOLD_ROW(name, T, U)                                                                   \
    static void name(int64_t c, const char *g_, int64_t sg, int64_t xc, char *o_) {            \
        const T *g = (const T *)g_;                                                            \
        T *o = (T *)o_;                                                                        \
        for (int64_t j0 = 0; j0 < c; j0 += xc)                                                 \
            for (int64_t j = 0; j < xc; j++) o[j] = (T)((U)o[j] + (U)g[(j0 + j) * sg]);        \
    }
FOLD_ROW(fold_f32, float, float)
FOLD_ROW(fold_f64, double, double)
FOLD_ROW(fold_i64, int64_t, uint64_t)

/* Serial: rows of g fold onto shared rows of out. */
void cgi_repeat_fold(const cg_tensor *g, cg_tensor *out) {
    static void (*const fns[3])(int64_t, const char *, int64_t, int64_t,
                                char *) = {fold_f32, fold_f64, fold_i64};
    int n = g->ndim;
    int64_t es = (int64_t)cg_dtype_size(g->dtype);
    if (n == 0) {
        fns[g->dtype](1, cgi_ptr(g), 0, 1, cgi_ptr(out));
        return;
    }
    int64_t c = g->shape[n - 1], xc = out->shape[n - 1], rows = cgi_numel(n - 1, g->shape);
    if (c == 0) return;
    for (int64_t q = 0; q < rows; q++) {
        int64_t goff = 0, r = q;
        for (int d = n - 2; d >= 0; d--) {
            goff += (r % g->shape[d]) * g->strides[d];
            r /= g->shape[d];
        }
        fns[g->dtype](c, cgi_ptr(g) + goff * es, g->strides[n - 1], xc,
                      cgi_ptr(out) + tile_row_offset(out, g->shape, n, q) * es);
    }
}

/* ---- sorting ----------------------------------------------------------------------------- */
/* Whether element i of the line (stride s) sorts strictly before element j. */
typedef bool (*before_fn)(const char *line, int64_t s, int64_t i, int64_t j);

/* NaN after every number ascending, before every number descending. */
#define BEFORE_FLOAT(name, T, op, nan_first)                                                   \
    static bool name(const char *l, int64_t s, int64_t i, int64_t j) {                         \
        T a = ((const T *)l)[i * s], b = ((const T *)l)[j * s];                                \
        return a op b || (nan_first ? (a != a && b == b) : (b != b && a == a));                \
    }
BEFORE_FLOAT(asc_f32, float, <, false)
BEFORE_FLOAT(desc_f32, float, >, true)
BEFORE_FLOAT(asc_f64, double, <, false)
BEFORE_FLOAT(desc_f64, double, >, true)
static bool asc_i64(const char *l, int64_t s, int64_t i, int64_t j) {
    return ((const int64_t *)l)[i * s] < ((const int64_t *)l)[j * s];
}
static bool desc_i64(const char *l, int64_t s, int64_t i, int64_t j) {
    return ((const int64_t *)l)[i * s] > ((const int64_t *)l)[j * s];
}

typedef struct sort_line {
    const char *line;
    int64_t s;
    before_fn before;
} sort_line;

/* Stable merge sort of the positions a[0..n) (tmp: n more). A right-hand
 * element moves ahead only when strictly before. */
static void merge_sort(int64_t *a, int64_t *tmp, int64_t n, const sort_line *l) {
    if (n <= 16) {
        for (int64_t i = 1; i < n; i++) {
            int64_t v = a[i], j = i;
            for (; j > 0 && l->before(l->line, l->s, v, a[j - 1]); j--) a[j] = a[j - 1];
            a[j] = v;
        }
        return;
    }
    int64_t h = n / 2, i = 0, j = h, k = 0;
    merge_sort(a, tmp, h, l);
    merge_sort(a + h, tmp, n - h, l);
    while (i < h && j < n) tmp[k++] = l->before(l->line, l->s, a[j], a[i]) ? a[j++] : a[i++];
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, sizeof(int64_t) * (size_t)n);
}

typedef struct sort_job {
    const cg_tensor *x, *values, *indices;
    int dim;
    int64_t k;
    before_fn before;
    size_t es;
} sort_job;

/* Line q: sorted with buf (2n positions), its first k written out. */
static void sort_one(const sort_job *j, int64_t q, int64_t *buf) {
    int64_t n = j->x->shape[j->dim];
    sort_line l = {cgi_ptr(j->x) + line_offset(j->x, j->dim, q) * (int64_t)j->es,
                   j->x->strides[j->dim], j->before};
    for (int64_t i = 0; i < n; i++) buf[i] = i;
    merge_sort(buf, buf + n, n, &l);
    char *v = cgi_ptr(j->values) + line_offset(j->values, j->dim, q) * (int64_t)j->es;
    int64_t *ix = (int64_t *)cgi_ptr(j->indices) + line_offset(j->indices, j->dim, q);
    int64_t sv = j->values->strides[j->dim], si = j->indices->strides[j->dim];
    for (int64_t t = 0; t < j->k; t++) {
        memcpy(v + t * sv * (int64_t)j->es, l.line + buf[t] * l.s * (int64_t)j->es, j->es);
        ix[t * si] = buf[t];
    }
}

cg_status cgi_sort_lines(const char *op, const cg_tensor *x, int dim, bool descending,
                         int64_t k, cg_tensor *values, cg_tensor *indices) {
    static const before_fn fns[2][3] = {{asc_f32, asc_f64, asc_i64},
                                        {desc_f32, desc_f64, desc_i64}};
    int64_t n = x->shape[dim], count = line_count(x, dim);
    if (n == 0 || count == 0 || k == 0) return CG_OK;
    bool par = count > 1 && n * count > CGI_PAR_MIN / 4 && cg_get_num_threads() > 1;
    size_t nt = par ? (size_t)cg_get_num_threads() : 1;
    if ((size_t)n > SIZE_MAX / 2 / sizeof(int64_t) / nt)
        return cgi_error(NULL, CG_ERR_NOMEM, "%s: lines of %lld too long", op, (long long)n);
    int64_t *buf = malloc(nt * 2 * (size_t)n * sizeof(int64_t));
    if (!buf)
        return cgi_error(NULL, CG_ERR_NOMEM, "%s: no memory to sort lines of %lld", op,
                         (long long)n);
    sort_job j = {
        x, values, indices, dim, k, fns[descending][x->dtype], cg_dtype_size(x->dtype)};
    CGI_PAR_FOR(par, q, count,
                { sort_one(&j, q, buf + (size_t)omp_get_thread_num() * 2 * (size_t)n); });
    free(buf);
    return CG_OK;
}
