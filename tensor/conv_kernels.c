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

/* Direct convolution kernels (conv_kernels.h), on GCC's generic vectors of
 * 64 bytes (one AVX-512 register; two or four narrower ones elsewhere), so
 * the running sums stay in registers, which GCC does not do for plain arrays.
 * The forward keeps a block of 4-6 vectors of outputs of four output
 * channels through every input channel and tap (dfwd4): one (unaligned)
 * load serves four multiply-adds, and up to 24 independent sums are in
 * flight; two leftover channels go in blocks of eight vectors (dfwd2), one
 * in blocks of 32 elements (dfwd32). The last block ends at the grid's end,
 * overlapping the one before, which it rewrites with the same bits. The
 * weight gradient takes up to DWG_MAX taps at once (and two output
 * channels when there are 5 taps or more), each tap in one vector of lanes,
 * so one load of the grid serves them all; the lanes live with the caller
 * until every plane is in (summing a vector's lanes per plane would cost
 * more than a small plane).
 * Unaligned loads go through memcpy. */
typedef float vec_f32 __attribute__((vector_size(CGI_DIRECT_VEC_BYTES)));
/* A loaded vector stays in its register: GCC would otherwise fold the load
 * into each multiply-add that uses it, loading an unaligned source twice. */
#if defined(__GNUC__) && defined(__AVX512F__)
#define KEEP_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define KEEP_IN_REGISTER(v) ((void)0)
#endif
/* The weight gradient's taps per pass over a plane pair: 12 sums, the grid
 * and a source vector fit in AVX-512's 32 registers. */
#define DWG_MAX 12
/* dwg with the tap count a constant, so that its sums live in registers. */
#define DWG_FIXED(T, SUF)                                                                      \
    static void dwg_fixed_##SUF(int nt, int64_t len, const T *grid, const T *src,              \
                                const int64_t *off, T *lanes) {                                \
        switch (nt) {                                                                          \
        case 1: dwg_##SUF(1, len, grid, src, off, lanes); break;                               \
        case 2: dwg_##SUF(2, len, grid, src, off, lanes); break;                               \
        case 3: dwg_##SUF(3, len, grid, src, off, lanes); break;                               \
        case 4: dwg_##SUF(4, len, grid, src, off, lanes); break;                               \
        case 5: dwg_##SUF(5, len, grid, src, off, lanes); break;                               \
        case 6: dwg_##SUF(6, len, grid, src, off, lanes); break;                               \
        case 7: dwg_##SUF(7, len, grid, src, off, lanes); break;                               \
        case 8: dwg_##SUF(8, len, grid, src, off, lanes); break;                               \
        case 9: dwg_##SUF(9, len, grid, src, off, lanes); break;                               \
        case 10: dwg_##SUF(10, len, grid, src, off, lanes); break;                             \
        case 11: dwg_##SUF(11, len, grid, src, off, lanes); break;                             \
        default: dwg_##SUF(DWG_MAX, len, grid, src, off, lanes);                               \
        }                                                                                      \
    }
typedef double vec_f64 __attribute__((vector_size(CGI_DIRECT_VEC_BYTES)));
/* The same vectors at any element address, for the lanes' loads and stores:
 * with KEEP_IN_REGISTER beside them, as GCC otherwise turns a loop of them
 * into a libc memcpy through the stack. */
typedef float uvec_f32
    __attribute__((vector_size(CGI_DIRECT_VEC_BYTES), aligned(sizeof(float)), may_alias));
typedef double uvec_f64
    __attribute__((vector_size(CGI_DIRECT_VEC_BYTES), aligned(sizeof(double)), may_alias));

#define DIRECT_KERNELS(T, SUF)                                                                 \
    enum { VL_##SUF = sizeof(vec_##SUF) / sizeof(T), BLOCK_##SUF = 8 * VL_##SUF };             \
    /* Two output channels, one block: acc0/acc1 = bias + taps0/taps1 . src. */                \
    static void dfwd2_##SUF(int64_t ntap, const T *taps0, const T *taps1, const int64_t *off,  \
                            const T *src, T bias0, T bias1, T *acc0, T *acc1) {                \
        vec_##SUF a[8], b[8], x;                                                               \
        for (int v = 0; v < 8; v++)                                                            \
            a[v] = (vec_##SUF){0} + bias0, b[v] = (vec_##SUF){0} + bias1;                      \
        for (int64_t t = 0; t < ntap; t++) {                                                   \
            vec_##SUF w0 = (vec_##SUF){0} + taps0[t], w1 = (vec_##SUF){0} + taps1[t];          \
            for (int v = 0; v < 8; v++) {                                                      \
                memcpy(&x, src + off[t] + v * VL_##SUF, sizeof x);                             \
                KEEP_IN_REGISTER(x);                                                           \
                a[v] += w0 * x;                                                                \
                b[v] += w1 * x;                                                                \
            }                                                                                  \
        }                                                                                      \
        memcpy(acc0, a, sizeof a);                                                             \
        memcpy(acc1, b, sizeof b);                                                             \
    }                                                                                          \
    /* One output channel, 32 elements. */                                                     \
    static void dfwd32_##SUF(int64_t ntap, const T *taps, const int64_t *off, const T *src,    \
                             T bias, T *acc) {                                                 \
        enum { NV = 32 / VL_##SUF };                                                           \
        vec_##SUF a[NV], x;                                                                    \
        for (int v = 0; v < NV; v++) a[v] = (vec_##SUF){0} + bias;                             \
        for (int64_t t = 0; t < ntap; t++) {                                                   \
            vec_##SUF w = (vec_##SUF){0} + taps[t];                                            \
            for (int v = 0; v < NV; v++) {                                                     \
                memcpy(&x, src + off[t] + v * VL_##SUF, sizeof x);                             \
                a[v] += w * x;                                                                 \
            }                                                                                  \
        }                                                                                      \
        memcpy(acc, a, sizeof a);                                                              \
    }                                                                                          \
    /* Four output channels, nv vectors (nv <= 6: 24 sums, four weights and a                  \
     * source vector in AVX-512's 32 registers): one load serves four                          \
     * multiply-adds, so the loads (most of them crossing a cache line) keep                   \
     * up with the multiply-adds. Each sum is bias + taps in order, as in                      \
     * dfwd2 and dfwd32, so every kernel gives an element the same bits. */                    \
    static inline __attribute__((always_inline)) void dfwd4_##SUF(                             \
        int nv, int64_t ntap, const T *taps, const int64_t *off, const T *src, const T *bias,  \
        T *acc, int64_t len) {                                                                 \
        vec_##SUF a[4][6], x, w[4];                                                            \
        for (int o = 0; o < 4; o++)                                                            \
            for (int v = 0; v < nv; v++) a[o][v] = (vec_##SUF){0} + bias[o];                   \
        for (int64_t t = 0; t < ntap; t++) {                                                   \
            for (int o = 0; o < 4; o++) w[o] = (vec_##SUF){0} + taps[o * ntap + t];            \
            for (int v = 0; v < nv; v++) {                                                     \
                memcpy(&x, src + off[t] + v * VL_##SUF, sizeof x);                             \
                for (int o = 0; o < 4; o++) a[o][v] += w[o] * x;                               \
            }                                                                                  \
        }                                                                                      \
        for (int o = 0; o < 4; o++)                                                            \
            for (int v = 0; v < nv; v++)                                                       \
                memcpy(acc + o * len + v * VL_##SUF, &a[o][v], sizeof x);                      \
    }                                                                                          \
    /* Four output channels over the grid in blocks of nv vectors, the last                    \
     * ending at the grid's end. */                                                            \
    static void dfwd4_run_##SUF(int nv, int64_t len, int64_t ntap, const T *taps,              \
                                const int64_t *off, const T *src, const T *bias, T *acc) {     \
        int64_t blk = nv * VL_##SUF;                                                           \
        for (int64_t i = 0; i < len; i += blk) {                                               \
            int64_t at = i + blk <= len ? i : len - blk;                                       \
            if (nv == 4)                                                                       \
                dfwd4_##SUF(4, ntap, taps, off, src + at, bias, acc + at, len);                \
            else if (nv == 5)                                                                  \
                dfwd4_##SUF(5, ntap, taps, off, src + at, bias, acc + at, len);                \
            else                                                                               \
                dfwd4_##SUF(6, ntap, taps, off, src + at, bias, acc + at, len);                \
        }                                                                                      \
    }                                                                                          \
    static void dconv_##SUF(const cgi_conv_geom *g, int64_t nout, int64_t ntap, const T *taps, \
                            const int64_t *off, const T *src, const double *bias, T *acc) {    \
        int64_t len = cgi_direct_len(g), o = 0, nvec = len / VL_##SUF;                         \
        int nv = 0; /* the block (4 to 6 vectors) that computes the fewest elements */         \
        for (int c = 6; c >= 4 && nvec >= 4; c--)                                              \
            if (!nv || (nvec + c - 1) / c * c < (nvec + nv - 1) / nv * nv) nv = c;             \
        for (; nv && o + 4 <= nout; o += 4) {                                                  \
            T b4[4] = {(T)bias[o], (T)bias[o + 1], (T)bias[o + 2], (T)bias[o + 3]};            \
            dfwd4_run_##SUF(nv, len, ntap, taps + o * ntap, off, src, b4, acc + o * len);      \
        }                                                                                      \
        for (; o + 2 <= nout && len >= BLOCK_##SUF; o += 2)                                    \
            for (int64_t i = 0; i < len; i += BLOCK_##SUF) {                                   \
                int64_t at = i + BLOCK_##SUF <= len ? i : len - BLOCK_##SUF;                   \
                dfwd2_##SUF(ntap, taps + o * ntap, taps + (o + 1) * ntap, off, src + at,       \
                            (T)bias[o], (T)bias[o + 1], acc + o * len + at,                    \
                            acc + (o + 1) * len + at);                                         \
            }                                                                                  \
        for (; o < nout; o++)                                                                  \
            for (int64_t i = 0; i < len; i += 32)                                              \
                dfwd32_##SUF(ntap, taps + o * ntap, off, src + i, (T)bias[o],                  \
                             acc + o * len + i);                                               \
    }                                                                                          \
    /* Taps [0, nt), nt <= DWG_MAX: lane vectors part[t] += grid * (src + off[t])              \
     * over len, one load of the grid serving every tap; with few taps, two                    \
     * vectors of lanes each, so enough sums are in flight (len is a multiple of               \
     * 32 elements: an even number of vectors). */                                             \
    static inline __attribute__((always_inline)) void dwg_##SUF(                               \
        int nt, int64_t len, const T *grid, const T *src, const int64_t *off, T *lanes) {      \
        enum { VL = sizeof(vec_##SUF) / sizeof(T) };                                           \
        vec_##SUF part[DWG_MAX][2], gv, x;                                                     \
        const T *s[DWG_MAX];                                                                   \
        for (int t = 0; t < nt; t++) {                                                         \
            part[t][0] = *(const uvec_##SUF *)(lanes + t * VL);                                \
            part[t][1] = (vec_##SUF){0}, s[t] = src + off[t];                                  \
        }                                                                                      \
        if (nt <= 4) {                                                                         \
            for (int64_t i = 0; i < len; i += 2 * VL)                                          \
                for (int u = 0; u < 2; u++) {                                                  \
                    memcpy(&gv, grid + i + u * VL, sizeof gv);                                 \
                    for (int t = 0; t < nt; t++) {                                             \
                        memcpy(&x, s[t] + i + u * VL, sizeof x);                               \
                        part[t][u] += gv * x;                                                  \
                    }                                                                          \
                }                                                                              \
            for (int t = 0; t < nt; t++) part[t][0] += part[t][1];                             \
        } else {                                                                               \
            for (int64_t i = 0; i < len; i += VL) {                                            \
                memcpy(&gv, grid + i, sizeof gv);                                              \
                for (int t = 0; t < nt; t++) {                                                 \
                    memcpy(&x, s[t] + i, sizeof x);                                            \
                    part[t][0] += gv * x;                                                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        for (int t = 0; t < nt; t++) *(uvec_##SUF *)(lanes + t * VL) = part[t][0];             \
    }                                                                                          \
    /* Two grids (output channels) against one source: one load of the source                  \
     * serves two multiply-adds; each lane's sum runs in the order of dwg's for                \
     * nt > 4. */                                                                              \
    static inline __attribute__((always_inline)) void dwg2_##SUF(                              \
        int nt, int64_t len, const T *g0, const T *g1, const T *src, const int64_t *off,       \
        T *l0, T *l1) {                                                                        \
        enum { VL = sizeof(vec_##SUF) / sizeof(T) };                                           \
        vec_##SUF p0[DWG_MAX], p1[DWG_MAX], a, b, x;                                           \
        const T *s[DWG_MAX];                                                                   \
        for (int t = 0; t < nt; t++) {                                                         \
            p0[t] = *(const uvec_##SUF *)(l0 + t * VL);                                        \
            p1[t] = *(const uvec_##SUF *)(l1 + t * VL);                                        \
            KEEP_IN_REGISTER(p0[t]);                                                           \
            KEEP_IN_REGISTER(p1[t]);                                                           \
            s[t] = src + off[t];                                                               \
        }                                                                                      \
        for (int64_t i = 0; i < len; i += VL) {                                                \
            memcpy(&a, g0 + i, sizeof a), memcpy(&b, g1 + i, sizeof b);                        \
            for (int t = 0; t < nt; t++) {                                                     \
                memcpy(&x, s[t] + i, sizeof x);                                                \
                KEEP_IN_REGISTER(x);                                                           \
                p0[t] += a * x;                                                                \
                p1[t] += b * x;                                                                \
            }                                                                                  \
        }                                                                                      \
        for (int t = 0; t < nt; t++) {                                                         \
            KEEP_IN_REGISTER(p0[t]);                                                           \
            KEEP_IN_REGISTER(p1[t]);                                                           \
            *(uvec_##SUF *)(l0 + t * VL) = p0[t];                                              \
            *(uvec_##SUF *)(l1 + t * VL) = p1[t];                                              \
        }                                                                                      \
    }                                                                                          \
    static void dwg2_fixed_##SUF(int nt, int64_t len, const T *g0, const T *g1, const T *src,  \
                                 const int64_t *off, T *l0, T *l1) {                           \
        switch (nt) {                                                                          \
        case 5: dwg2_##SUF(5, len, g0, g1, src, off, l0, l1); break;                           \
        case 6: dwg2_##SUF(6, len, g0, g1, src, off, l0, l1); break;                           \
        case 7: dwg2_##SUF(7, len, g0, g1, src, off, l0, l1); break;                           \
        case 8: dwg2_##SUF(8, len, g0, g1, src, off, l0, l1); break;                           \
        case 9: dwg2_##SUF(9, len, g0, g1, src, off, l0, l1); break;                           \
        case 10: dwg2_##SUF(10, len, g0, g1, src, off, l0, l1); break;                         \
        case 11: dwg2_##SUF(11, len, g0, g1, src, off, l0, l1); break;                         \
        default: dwg2_##SUF(DWG_MAX, len, g0, g1, src, off, l0, l1);                           \
        }                                                                                      \
    }                                                                                          \
    /* The pair's taps in dwgrad's chunks (kh kw >= 5: every chunk over 4). */                 \
    static void dwgrad2_##SUF(const cgi_conv_geom *g, const int64_t *off, const T *g0,         \
                              const T *g1, const T *src, T *l0, T *l1) {                       \
        enum { VL = sizeof(vec_##SUF) / sizeof(T) };                                           \
        int64_t len = cgi_direct_len(g), kk = g->kh * g->kw;                                   \
        int64_t chunks = (kk + DWG_MAX - 1) / DWG_MAX;                                         \
        for (int64_t c = 0, t = 0; c < chunks; c++) {                                          \
            int nt = (int)((kk - t) / (chunks - c));                                           \
            dwg2_fixed_##SUF(nt, len, g0, g1, src, off + t, l0 + t * VL, l1 + t * VL);         \
            t += nt;                                                                           \
        }                                                                                      \
    }                                                                                          \
    DWG_FIXED(T, SUF)                                                                          \
    /* The taps in near-equal chunks of at most DWG_MAX (9 as 9, 25 as 9 8 8). */              \
    static void dwgrad_##SUF(const cgi_conv_geom *g, const int64_t *off, const T *grid,        \
                             const T *src, T *lanes) {                                         \
        enum { VL = sizeof(vec_##SUF) / sizeof(T) };                                           \
        int64_t len = cgi_direct_len(g), kk = g->kh * g->kw;                                   \
        int64_t chunks = (kk + DWG_MAX - 1) / DWG_MAX;                                         \
        for (int64_t c = 0, t = 0; c < chunks; c++) {                                          \
            int nt = (int)((kk - t) / (chunks - c));                                           \
            dwg_fixed_##SUF(nt, len, grid, src, off + t, lanes + t * VL);                      \
            t += nt;                                                                           \
        }                                                                                      \
    }                                                                                          \
    /* lanes (one vector) += the sum of the vectors of grid [len], in order. */                \
    static void lanes_add_##SUF(int64_t len, const T *grid, T *lanes) {                        \
        enum { VL = sizeof(vec_##SUF) / sizeof(T) };                                           \
        vec_##SUF a = {0}, b = {0}, x, y, acc;                                                 \
        for (int64_t i = 0; i < len; i += 2 * VL) {                                            \
            memcpy(&x, grid + i, sizeof x), memcpy(&y, grid + i + VL, sizeof y);               \
            a += x, b += y;                                                                    \
        }                                                                                      \
        memcpy(&acc, lanes, sizeof acc);                                                       \
        acc += a + b;                                                                          \
        memcpy(lanes, &acc, sizeof acc);                                                       \
    }                                                                                          \
    static void lanes_sum_##SUF(int64_t n, const T *lanes, T *dst) {                           \
        enum { VL = sizeof(vec_##SUF) / sizeof(T) };                                           \
        for (int64_t i = 0; i < n; i++) {                                                      \
            T sum = 0;                                                                         \
            for (int l = 0; l < VL; l++) sum += lanes[i * VL + l];                             \
            dst[i] = sum;                                                                      \
        }                                                                                      \
    }

DIRECT_KERNELS(float, f32)
DIRECT_KERNELS(double, f64)

int64_t cgi_direct_wp(const cgi_conv_geom *g) { return g->ow + (g->kw - 1) * g->dw; }

int64_t cgi_direct_len(const cgi_conv_geom *g) {
    int64_t n = g->oh * cgi_direct_wp(g);
    return (n + CGI_DIRECT_ROUND - 1) / CGI_DIRECT_ROUND * CGI_DIRECT_ROUND;
}

int64_t cgi_direct_src_len(const cgi_conv_geom *g) {
    return cgi_direct_len(g) + (g->kh - 1) * g->dh * cgi_direct_wp(g) + (g->kw - 1) * g->dw;
}

/* nb bytes, as fixed-size copies the compiler inlines (64 at a time, the
 * last overlapping the one before; under 64, two overlapping halves): the
 * padded planes are copied row by row, and rows are short (56 or 112 bytes
 * in LeNet-sized nets), where a call to memcpy costs more than the copy. */
static void copy_bytes(char *dst, const char *src, int64_t nb) {
    if (nb >= 64) {
        for (int64_t i = 0; i < nb; i += 64) {
            int64_t at = i + 64 <= nb ? i : nb - 64;
            memcpy(dst + at, src + at, 64);
        }
    } else if (nb >= 32) {
        memcpy(dst, src, 32), memcpy(dst + nb - 32, src + nb - 32, 32);
    } else if (nb >= 16) {
        memcpy(dst, src, 16), memcpy(dst + nb - 16, src + nb - 16, 16);
    } else {
        for (int64_t i = 0; i < nb; i++) dst[i] = src[i];
    }
}

/* n elements of size es, src element stride sx. */
static void copy_row(char *dst, const char *src, int64_t n, int64_t sx, int64_t es) {
    if (sx == 1) {
        copy_bytes(dst, src, n * es);
    } else if (es == 4) {
        for (int64_t i = 0; i < n; i++) memcpy(dst + 4 * i, src + 4 * i * sx, 4);
    } else {
        for (int64_t i = 0; i < n; i++) memcpy(dst + 8 * i, src + 8 * i * sx, 8);
    }
}

/* nb bytes of zeros, as copy_bytes writes (gaps between padded rows are a
 * few elements: a call to memset costs more). */
static void zero_bytes(char *dst, int64_t nb) {
    static const char zeros[64];
    if (nb >= 64) {
        for (int64_t i = 0; i < nb; i += 64) {
            int64_t at = i + 64 <= nb ? i : nb - 64;
            memcpy(dst + at, zeros, 64);
        }
    } else if (nb >= 16) {
        copy_bytes(dst, zeros, nb);
    } else if (nb >= 8) {
        memcpy(dst, zeros, 8), memcpy(dst + nb - 8, zeros, 8);
    } else {
        for (int64_t i = 0; i < nb; i++) dst[i] = 0;
    }
}

/* Pixel (iy, ix) goes to padded (iy + ph, ix + pw); pixels no grid element
 * reaches (beyond row oh + (kh - 1) dh or column wp) are left out, so none
 * wraps into the next row. Each byte is written once: the rows, and the
 * zeros between and around them. */
void cgi_direct_pad_plane(cg_dtype dt, const cgi_conv_geom *g, const void *x, int64_t sy,
                          int64_t sx, void *dst) {
    int64_t wp = cgi_direct_wp(g), rows = g->oh + (g->kh - 1) * g->dh;
    int64_t es = (int64_t)cg_dtype_size(dt), at = 0; /* bytes written so far */
    int64_t x0 = g->pw < 0 ? -g->pw : 0, x1 = g->iw < wp - g->pw ? g->iw : wp - g->pw;
    char *d = dst;
    for (int64_t iy = 0; iy < g->ih && x1 > x0; iy++) {
        int64_t r = iy + g->ph;
        if (r < 0 || r >= rows) continue;
        int64_t start = (r * wp + x0 + g->pw) * es;
        zero_bytes(d + at, start - at);
        copy_row(d + start, (const char *)x + (iy * sy + x0 * sx) * es, x1 - x0, sx, es);
        at = start + (x1 - x0) * es;
    }
    zero_bytes(d + at, cgi_direct_src_len(g) * es - at);
}

void cgi_direct_grid_plane(cg_dtype dt, const cgi_conv_geom *g, const void *src, int64_t sy,
                           int64_t sx, void *dst) {
    int64_t wp = cgi_direct_wp(g), es = (int64_t)cg_dtype_size(dt);
    char *d = dst;
    for (int64_t oy = 0; oy < g->oh; oy++) {
        copy_row(d + oy * wp * es, (const char *)src + oy * sy * es, g->ow, sx, es);
        if (oy + 1 < g->oh) zero_bytes(d + (oy * wp + g->ow) * es, (wp - g->ow) * es);
    }
    int64_t end = ((g->oh - 1) * wp + g->ow) * es;
    zero_bytes(d + end, cgi_direct_len(g) * es - end);
}

void cgi_direct_offsets(const cgi_conv_geom *g, int64_t nc, int64_t sl, int64_t *off) {
    int64_t wp = cgi_direct_wp(g);
    for (int64_t c = 0; c < nc; c++)
        for (int64_t ky = 0; ky < g->kh; ky++)
            for (int64_t kx = 0; kx < g->kw; kx++)
                *off++ = c * sl + ky * g->dh * wp + kx * g->dw;
}

void cgi_direct_conv(cg_dtype dt, const cgi_conv_geom *g, int64_t nout, int64_t ntap,
                     const void *taps, const int64_t *off, const void *src, const double *bias,
                     void *acc) {
    if (dt == CG_F32)
        dconv_f32(g, nout, ntap, taps, off, src, bias, acc);
    else
        dconv_f64(g, nout, ntap, taps, off, src, bias, acc);
}

void cgi_direct_wgrad_plane(cg_dtype dt, const cgi_conv_geom *g, const int64_t *off,
                            const void *grid, const void *src, void *lanes) {
    if (dt == CG_F32)
        dwgrad_f32(g, off, grid, src, lanes);
    else
        dwgrad_f64(g, off, grid, src, lanes);
}

void cgi_direct_wgrad_pair(cg_dtype dt, const cgi_conv_geom *g, const int64_t *off,
                           const void *grid0, const void *grid1, const void *src, void *lanes0,
                           void *lanes1) {
    if (dt == CG_F32)
        dwgrad2_f32(g, off, grid0, grid1, src, lanes0, lanes1);
    else
        dwgrad2_f64(g, off, grid0, grid1, src, lanes0, lanes1);
}

void cgi_direct_lanes_add(cg_dtype dt, const cgi_conv_geom *g, const void *grid, void *lanes) {
    if (dt == CG_F32)
        lanes_add_f32(cgi_direct_len(g), grid, lanes);
    else
        lanes_add_f64(cgi_direct_len(g), grid, lanes);
}

void cgi_direct_lanes_sum(cg_dtype dt, int64_t n, const void *lanes, void *dst) {
    if (dt == CG_F32)
        lanes_sum_f32(n, lanes, dst);
    else
        lanes_sum_f64(n, lanes, dst);
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
    if (add == 0 && sx == 1) { /* short rows (the direct kernels' outputs): fixed-size copies */
        int64_t es = (int64_t)cg_dtype_size(dt);
        for (int64_t y = 0; y < h; y++)
            copy_bytes((char *)dst + y * w * es, (const char *)src + y * sy * es, w * es);
        return;
    }
    if (dt == CG_F32)
        copy_f32(h, w, src, sy, sx, dst, (float)add);
    else
        copy_f64(h, w, src, sy, sx, dst, add);
}

void cgi_prefetch(const void *p, int64_t nb, bool write) {
    const char *c = p;
    if (write)
        for (int64_t i = 0; i < nb; i += 64) __builtin_prefetch(c + i, 1, 3);
    else
        for (int64_t i = 0; i < nb; i += 64) __builtin_prefetch(c + i, 0, 3);
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
