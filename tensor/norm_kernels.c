/* Layer normalisation forward and backward (see norm_kernels.h), written
 * once over the element type T. */
#include "norm_kernels.h"

#include <math.h>
#include <string.h>

#define NORM_KERNELS(T, SUF)                                                                   \
    static void ln_row_##SUF(int64_t n, const T *x, const T *w, const T *b, double eps, T *y,  \
                             T *mean, T *rstd) {                                               \
        double s = 0, v = 0; /* sums in vector lanes: not a chain of n dependent adds */       \
        _Pragma("omp simd reduction(+ : s)") for (int64_t i = 0; i < n; i++) s += x[i];        \
        double m = n ? s / (double)n : 0;                                                      \
        _Pragma("omp simd reduction(+ : v)") for (int64_t i = 0; i < n; i++) v +=              \
            (x[i] - m) * (x[i] - m);                                                           \
        double r = 1 / sqrt((n ? v / (double)n : 0) + eps);                                    \
        for (int64_t i = 0; i < n; i++) {                                                      \
            double h = (x[i] - m) * r;                                                         \
            y[i] = (T)(h * (w ? w[i] : 1) + (b ? b[i] : 0));                                   \
        }                                                                                      \
        *mean = (T)m, *rstd = (T)r;                                                            \
    }                                                                                          \
    static void ln_back_row_##SUF(int64_t n, const T *g, const T *x, const T *w, T mean,       \
                                  T rstd, T *dx) {                                             \
        double sg = 0, sgh = 0;                                                                \
        _Pragma("omp simd reduction(+ : sg, sgh)") for (int64_t i = 0; i < n; i++) {           \
            double gw = g[i] * (w ? w[i] : 1), h = (x[i] - mean) * rstd;                       \
            sg += gw, sgh += gw * h;                                                           \
        }                                                                                      \
        double a = n ? sg / (double)n : 0, c = n ? sgh / (double)n : 0;                        \
        for (int64_t i = 0; i < n; i++) {                                                      \
            double gw = g[i] * (w ? w[i] : 1), h = (x[i] - mean) * rstd;                       \
            dx[i] = (T)(rstd * (gw - a - h * c));                                              \
        }                                                                                      \
    }                                                                                          \
    static void ln_forward_##SUF(int64_t rows, int64_t n, const T *x, const T *w, const T *b,  \
                                 double eps, T *y, T *mean, T *rstd) {                         \
        CGI_PAR_FOR(rows *n >= CGI_PAR_MIN, r, rows, {                                         \
            ln_row_##SUF(n, x + r * n, w, b, eps, y + r * n, mean + r, rstd + r);              \
        });                                                                                    \
    }                                                                                          \
    static void ln_backward_##SUF(int64_t rows, int64_t n, const T *g, const T *x, const T *w, \
                                  const T *mean, const T *rstd, T *dx, T *dw, T *db) {         \
        if (dx)                                                                                \
            CGI_PAR_FOR(rows *n >= CGI_PAR_MIN, r, rows, {                                     \
                ln_back_row_##SUF(n, g + r * n, x + r * n, w, mean[r], rstd[r], dx + r * n);   \
            });                                                                                \
        /* dw, db: column blocks over the threads, each column summed over the rows in         \
         * order (the same bits for any thread count) */                                       \
        int64_t nblk = dw || db ? (n + 63) / 64 : 0;                                           \
        CGI_PAR_FOR(rows *n >= CGI_PAR_MIN, k, nblk, {                                         \
            int64_t i0 = k * 64, i1 = i0 + 64 < n ? i0 + 64 : n;                               \
            if (dw) memset(dw + i0, 0, sizeof(T) * (size_t)(i1 - i0));                         \
            if (db) memset(db + i0, 0, sizeof(T) * (size_t)(i1 - i0));                         \
            for (int64_t r = 0; r < rows; r++) {                                               \
                const T *gr = g + r * n, *xr = x + r * n;                                      \
                if (dw)                                                                        \
                    for (int64_t i = i0; i < i1; i++)                                          \
                        dw[i] += gr[i] * ((xr[i] - mean[r]) * rstd[r]);                        \
                if (db)                                                                        \
                    for (int64_t i = i0; i < i1; i++) db[i] += gr[i];                          \
            }                                                                                  \
        });                                                                                    \
    }

NORM_KERNELS(float, f32)
NORM_KERNELS(double, f64)

void cgi_layer_norm_forward(cg_dtype dt, int64_t rows, int64_t n, const void *x, const void *w,
                            const void *b, double eps, void *y, void *mean, void *rstd) {
    if (dt == CG_F32)
        ln_forward_f32(rows, n, x, w, b, eps, y, mean, rstd);
    else
        ln_forward_f64(rows, n, x, w, b, eps, y, mean, rstd);
}

void cgi_layer_norm_backward(cg_dtype dt, int64_t rows, int64_t n, const void *g, const void *x,
                             const void *w, const void *mean, const void *rstd, void *dx,
                             void *dw, void *db) {
    if (dt == CG_F32)
        ln_backward_f32(rows, n, g, x, w, mean, rstd, dx, dw, db);
    else
        ln_backward_f64(rows, n, g, x, w, mean, rstd, dx, dw, db);
}
