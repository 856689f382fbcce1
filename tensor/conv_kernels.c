/* im2col, col2im and plane copies for the convolutions (see conv_kernels.h).
 * Each kernel is written once over the element type T and instantiated for
 * f32 and f64. The valid grid range of a tap is computed up front, so the
 * inner loops carry no bounds test and, for unit strides, are plain copies
 * or adds that vectorise. */
#include "conv_kernels.h"

#include <string.h>

/* First grid index o >= 0 whose pixel o * s + off lies at or after 0, and
 * the end (exclusive) of those before n, clamped to [0, len]. */
static void valid_range(int64_t off, int64_t s, int64_t n, int64_t len, int64_t *lo,
                        int64_t *hi) {
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t b = n - off <= 0 ? 0 : (n - off + s - 1) / s;
    *lo = a < len ? a : len;
    *hi = b < len ? b : len;
    if (*hi < *lo) *hi = *lo;
}

#define CONV_KERNELS(T, SUF)                                                                   \
    static void im2col_##SUF(const cgi_conv_geom *g, const T *x, int64_t sy, int64_t sx,       \
                             T *cols, int64_t ld) {                                            \
        for (int64_t ky = 0; ky < g->kh; ky++) {                                               \
            int64_t yoff = ky * g->dh - g->ph, ylo, yhi;                                       \
            valid_range(yoff, g->sh, g->ih, g->oh, &ylo, &yhi);                                \
            for (int64_t kx = 0; kx < g->kw; kx++) {                                           \
                int64_t xoff = kx * g->dw - g->pw, xlo, xhi;                                   \
                valid_range(xoff, g->sw, g->iw, g->ow, &xlo, &xhi);                            \
                T *row = cols + (ky * g->kw + kx) * ld;                                        \
                for (int64_t oy = 0; oy < g->oh; oy++) {                                       \
                    T *r = row + oy * g->ow;                                                   \
                    if (oy < ylo || oy >= yhi) {                                               \
                        memset(r, 0, sizeof(T) * (size_t)g->ow);                               \
                        continue;                                                              \
                    }                                                                          \
                    const T *src = x + (oy * g->sh + yoff) * sy + xoff * sx;                   \
                    for (int64_t ox = 0; ox < xlo; ox++) r[ox] = 0;                            \
                    if (g->sw * sx == 1)                                                       \
                        memcpy(r + xlo, src + xlo, sizeof(T) * (size_t)(xhi - xlo));           \
                    else                                                                       \
                        for (int64_t ox = xlo; ox < xhi; ox++) r[ox] = src[ox * g->sw * sx];   \
                    for (int64_t ox = xhi; ox < g->ow; ox++) r[ox] = 0;                        \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void col2im_##SUF(const cgi_conv_geom *g, const T *cols, int64_t ld, T *y) {        \
        for (int64_t ky = 0; ky < g->kh; ky++) {                                               \
            int64_t yoff = ky * g->dh - g->ph, ylo, yhi;                                       \
            valid_range(yoff, g->sh, g->ih, g->oh, &ylo, &yhi);                                \
            for (int64_t kx = 0; kx < g->kw; kx++) {                                           \
                int64_t xoff = kx * g->dw - g->pw, xlo, xhi;                                   \
                valid_range(xoff, g->sw, g->iw, g->ow, &xlo, &xhi);                            \
                const T *row = cols + (ky * g->kw + kx) * ld;                                  \
                for (int64_t oy = ylo; oy < yhi; oy++) {                                       \
                    const T *r = row + oy * g->ow;                                             \
                    T *dst = y + (oy * g->sh + yoff) * g->iw + xoff;                           \
                    if (g->sw == 1)                                                            \
                        for (int64_t ox = xlo; ox < xhi; ox++) dst[ox] += r[ox];               \
                    else                                                                       \
                        for (int64_t ox = xlo; ox < xhi; ox++) dst[ox * g->sw] += r[ox];       \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void copy_##SUF(int64_t h, int64_t w, const T *src, int64_t sy, int64_t sx, T *dst, \
                           T add) {                                                            \
        for (int64_t y = 0; y < h; y++) {                                                      \
            const T *s = src + y * sy;                                                         \
            T *d = dst + y * w;                                                                \
            if (sx == 1)                                                                       \
                for (int64_t x = 0; x < w; x++) d[x] = s[x] + add;                             \
            else                                                                               \
                for (int64_t x = 0; x < w; x++) d[x] = s[x * sx] + add;                        \
        }                                                                                      \
    }

CONV_KERNELS(float, f32)
CONV_KERNELS(double, f64)

void cgi_im2col_plane(cg_dtype dt, const cgi_conv_geom *g, const void *x, int64_t sy,
                      int64_t sx, void *cols, int64_t ld) {
    if (dt == CG_F32)
        im2col_f32(g, x, sy, sx, cols, ld);
    else
        im2col_f64(g, x, sy, sx, cols, ld);
}

void cgi_col2im_plane(cg_dtype dt, const cgi_conv_geom *g, const void *cols, int64_t ld,
                      void *y) {
    if (dt == CG_F32)
        col2im_f32(g, cols, ld, y);
    else
        col2im_f64(g, cols, ld, y);
}

void cgi_plane_copy(cg_dtype dt, int64_t h, int64_t w, const void *src, int64_t sy, int64_t sx,
                    void *dst, double add) {
    if (dt == CG_F32)
        copy_f32(h, w, src, sy, sx, dst, (float)add);
    else
        copy_f64(h, w, src, sy, sx, dst, add);
}

void cgi_plane_add(cg_dtype dt, int64_t n, const void *src, void *dst) {
    for (int64_t i = 0; i < n; i++) {
        if (dt == CG_F32)
            ((float *)dst)[i] += ((const float *)src)[i];
        else
            ((double *)dst)[i] += ((const double *)src)[i];
    }
}

void cgi_fill(cg_dtype dt, int64_t n, void *dst, double v) {
    for (int64_t i = 0; i < n; i++) {
        if (dt == CG_F32)
            ((float *)dst)[i] = (float)v;
        else
            ((double *)dst)[i] = v;
    }
}
