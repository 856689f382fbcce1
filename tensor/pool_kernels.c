/* Pooling and padding kernels: one plane per task, windows walked in C
 * order, sums in double (avg) and in the element type (the transposes,
 * which add at most a few terms per element). */
#include "pool_kernels.h"

#include <math.h>
#include <string.h>

/* ---- geometry ------------------------------------------------------------------------- */
/* The element offset of plane p = (n, c) in a rank-4 tensor. */
static inline int64_t plane_off(const cg_tensor *t, int64_t c, int64_t p) {
    return (p / c) * t->strides[0] + (p % c) * t->strides[1];
}

/* Max pooling's window o along d: [*lo, *hi) stepping by the dilation, the
 * taps in the padding skipped (the first tap is moved to the first inside). */
static inline void max_window(const cgi_pool_dim *d, int64_t o, int64_t *lo, int64_t *hi) {
    int64_t s = o * d->stride - d->pad, e = s + (d->kernel - 1) * d->dilation + 1;
    while (s < 0) s += d->dilation;
    *lo = s;
    *hi = e < d->in ? e : d->in;
}

/* Average pooling's window o along dim k: [*lo, *hi) inside the input, and
 * the factor of the divisor it contributes (PyTorch's: with count_include_pad
 * the window clipped to the padded input, else to the input; adaptive:
 * start floor(o in / out), end ceil((o + 1) in / out)). */
static inline int64_t box(const cgi_pool_geom *geo, int k, int64_t o, int64_t *lo,
                          int64_t *hi) {
    const cgi_pool_dim *d = &geo->dim[k];
    if (geo->kind == CGI_POOL_ADAPTIVE) {
        *lo = o * d->in / d->out;
        *hi = ((o + 1) * d->in + d->out - 1) / d->out;
        return *hi - *lo;
    }
    int64_t s = o * d->stride - d->pad, e = s + d->kernel;
    if (e > d->in + d->pad) e = d->in + d->pad;
    int64_t padded = e - s;
    *lo = s > 0 ? s : 0;
    *hi = e < d->in ? e : d->in;
    return geo->count_include_pad ? padded : *hi - *lo;
}

/* Runs body(p) over the planes, in parallel when the work is large. */
#define PLANES(planes, work, p, ...)                                                           \
    CGI_PAR_FOR((planes) > 1 && (work) > CGI_PAR_MIN, p, (planes), {__VA_ARGS__})

static int64_t out_plane(const cgi_pool_geom *geo) { return geo->dim[0].out * geo->dim[1].out; }
static int64_t in_plane(const cgi_pool_geom *geo) { return geo->dim[0].in * geo->dim[1].in; }

/* ---- max pooling ---------------------------------------------------------------------- */
/* The outputs ow in [*lo, *hi) whose window tap at offset off (= j * dilation
 * - pad) falls inside the row: 0 <= ow * stride + off < in. */
static inline void tap_range(const cgi_pool_dim *d, int64_t off, int64_t *lo, int64_t *hi) {
    int64_t s = d->stride, last = d->in - 1 - off;
    *lo = off >= 0 ? 0 : (-off + s - 1) / s;
    *hi = last < 0 ? 0 : last / s + 1;
    if (*hi > d->out) *hi = d->out;
}

/* One output row: every window starts at -inf with its first tap's index,
 * then the taps are visited row h by row, tap j by tap j, each a pass over the
 * outputs it reaches. Per window that is PyTorch's order (ties go to the
 * first; NaN takes the window), and the pass has no border test and no
 * data-dependent branch (random data mispredicts half the compares; the
 * selects are bit masks because GCC turned ?: back into branches here). */
#define MAX_ROW(name, T, U, LOWEST, ISNAN)                                                     \
    static inline void name(const cgi_pool_geom *geo, const T *xp, int64_t sh, int64_t sw,     \
                            int64_t oh, T *yr, int64_t *ir, bool with_idx) {                   \
        const cgi_pool_dim *dh = &geo->dim[0], *dw = &geo->dim[1];                             \
        int64_t h0, h1, w0, w1, W = dw->in;                                                    \
        max_window(dh, oh, &h0, &h1);                                                          \
        for (int64_t ow = 0; ow < dw->out; ow++) {                                             \
            max_window(dw, ow, &w0, &w1);                                                      \
            yr[ow] = LOWEST;                                                                   \
            if (with_idx) ir[ow] = h0 * W + w0;                                                \
        }                                                                                      \
        for (int64_t h = h0; h < h1; h += dh->dilation)                                        \
            for (int64_t j = 0; j < dw->kernel; j++) {                                         \
                int64_t off = j * dw->dilation - dw->pad, lo, hi;                              \
                tap_range(dw, off, &lo, &hi);                                                  \
                const T *xr = xp + h * sh;                                                     \
                for (int64_t ow = lo; ow < hi; ow++) {                                         \
                    int64_t w = ow * dw->stride + off;                                         \
                    T v = xr[w * sw], cur = yr[ow];                                            \
                    U m = (U)0 - (U)((v > cur) | ISNAN(v)), vb, cb;                            \
                    memcpy(&vb, &v, sizeof v);                                                 \
                    memcpy(&cb, &cur, sizeof cur);                                             \
                    vb = (vb & m) | (cb & ~m);                                                 \
                    memcpy(&yr[ow], &vb, sizeof vb);                                           \
                    if (with_idx) {                                                            \
                        uint64_t mi = (uint64_t)0 - (m & 1);                                   \
                        ir[ow] = (int64_t)(((uint64_t)(h * W + w) & mi) |                      \
                                           ((uint64_t)ir[ow] & ~mi));                          \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
    }
/* The common 2x2 window, stride 2, no padding or dilation, on unit-stride
 * rows r0 and r1 (input rows 2 oh and 2 oh + 1) whose windows all fit:
 * the same taps in the same order as MAX_ROW. The selects are bit masks, as
 * there: rows are short (7 or 14 windows in LeNet-sized nets), so most
 * windows run in the scalar tail, where GCC turned ?: into branches that
 * random data mispredicts (5 ms for [500, 8, 28, 28] on one Zen 5 core, 1 ms
 * with masks). base is r0's first index. */
#define MAX_2X2(name, T, U, ISNAN)                                                             \
    static inline void name##_take(T v, int64_t kv, T *m, int64_t *k) {                        \
        int take = (v > *m) | ISNAN(v);                                                        \
        U tm = (U)0 - (U)take, vb, mb;                                                         \
        uint64_t tk = (uint64_t)0 - (uint64_t)take;                                            \
        memcpy(&vb, &v, sizeof v);                                                             \
        memcpy(&mb, m, sizeof mb);                                                             \
        mb = (vb & tm) | (mb & ~tm);                                                           \
        memcpy(m, &mb, sizeof mb);                                                             \
        *k = (int64_t)(((uint64_t)kv & tk) | ((uint64_t)*k & ~tk));                            \
    }                                                                                          \
    static void name(const T *restrict r0, const T *restrict r1, int64_t n, T *restrict y,     \
                     int64_t *restrict ix, uint8_t *restrict code, int64_t base, int64_t W,    \
                     int64_t room_in, int64_t room_out) {                                      \
        (void)room_in, (void)room_out;                                                         \
        for (int64_t i = 0; i < n; i++) {                                                      \
            T m = r0[2 * i];                                                                   \
            int64_t k = 0;                                                                     \
            name##_take(r0[2 * i + 1], 1, &m, &k);                                             \
            name##_take(r1[2 * i], W, &m, &k);                                                 \
            name##_take(r1[2 * i + 1], W + 1, &m, &k);                                         \
            y[i] = m;                                                                          \
            if (ix) ix[i] = base + 2 * i + k;                                                  \
            if (code) code[i] = (uint8_t)(k >= W ? k - W + 2 : k);                             \
        }                                                                                      \
    }

/* Whether the window along d is 2, stride 2, unpadded, undilated, all inside. */
static bool plain_2x2(const cgi_pool_dim *d) {
    return d->kernel == 2 && d->stride == 2 && d->pad == 0 && d->dilation == 1 &&
           2 * d->out <= d->in;
}

/* Plane p; the rows are called with literal flags and unit strides so
 * that each variant compiles to its own loop. */
#define MAX_POOL(name, T, U, LOWEST, ISNAN, ROW_2X2)                                           \
    MAX_ROW(name##_row, T, U, LOWEST, ISNAN)                                                   \
    static void name(const cgi_pool_geom *geo, const cg_tensor *x, cg_tensor *y,               \
                     cg_tensor *idx, uint8_t *codes, int64_t p) {                              \
        const T *xp = (const T *)cgi_ptr(x) + plane_off(x, geo->c, p);                         \
        int64_t sh = x->strides[2], sw = x->strides[3], ow_n = geo->dim[1].out;                \
        T *yp = (T *)cgi_ptr(y) + p * out_plane(geo);                                          \
        int64_t *ip = idx ? (int64_t *)cgi_ptr(idx) + p * out_plane(geo) : NULL;               \
        uint8_t *cp = codes ? codes + p * out_plane(geo) : NULL; /* only where fast */         \
        bool fast = sw == 1 && plain_2x2(&geo->dim[0]) && plain_2x2(&geo->dim[1]);             \
        for (int64_t oh = 0; oh < geo->dim[0].out; oh++) {                                     \
            T *yr = yp + oh * ow_n;                                                            \
            int64_t *ir = ip ? ip + oh * ow_n : NULL;                                          \
            if (fast)                                                                          \
                ROW_2X2(xp + 2 * oh * sh, xp + (2 * oh + 1) * sh, ow_n, yr, ir,                \
                        cp ? cp + oh * ow_n : NULL, 2 * oh * geo->dim[1].in, geo->dim[1].in,   \
                        (geo->dim[0].in - 1 - 2 * oh) * sh + geo->dim[1].in,                   \
                        (geo->dim[0].out - oh) * ow_n);                                        \
            else if (ip && sw == 1)                                                            \
                name##_row(geo, xp, sh, 1, oh, yr, ir, true);                                  \
            else if (ip)                                                                       \
                name##_row(geo, xp, sh, sw, oh, yr, ir, true);                                 \
            else if (sw == 1)                                                                  \
                name##_row(geo, xp, sh, 1, oh, yr, NULL, false);                               \
            else                                                                               \
                name##_row(geo, xp, sh, sw, oh, yr, NULL, false);                              \
        }                                                                                      \
    }
#define NO_NAN(v) ((void)(v), 0)
MAX_2X2(max2x2_f32, float, uint32_t, isnan)
MAX_2X2(max2x2_f64, double, uint64_t, isnan)
MAX_2X2(max2x2_i64, int64_t, uint64_t, NO_NAN)

/* f32 2x2 windows sixteen at a time on GCC's generic vectors: the even and
 * odd elements of two rows' 32 inputs are the four taps, taken in MAX_ROW's
 * order with the same rule (a later tap wins if greater or NaN). A row
 * shorter than 16 windows reads on into the next rows and writes garbage into
 * the next rows' outputs, which their own turn overwrites; so that happens
 * only while the reads and the writes stay in this plane (room_in elements
 * from r0, room_out outputs from y: planes may be on other threads); the
 * short rows at a plane's end go through zero-padded local copies (one
 * vector pass where a scalar walk cost ten times as much per window), and
 * planes too wide for 32-bit offsets through max2x2_f32. */
typedef float vf32 __attribute__((vector_size(64)));
typedef int32_t vi32 __attribute__((vector_size(64)));
/* EVENS, ODDS: the even and odd lanes of a then b; ZIP_LO, ZIP_HI: lanes
 * 0-7, then 8-15, of a and b interleaved (a0 b0 a1 b1 ...). */
#if defined(__clang__)
#define EVENS(a, b)                                                                            \
    __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define ODDS(a, b)                                                                             \
    __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
#define ZIP_LO(a, b)                                                                           \
    __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
#define ZIP_HI(a, b)                                                                           \
    __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
#else
#define EVENS(a, b)                                                                            \
    __builtin_shuffle(a, b, (vi32){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30})
#define ODDS(a, b)                                                                             \
    __builtin_shuffle(a, b, (vi32){1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31})
#define ZIP_LO(a, b)                                                                           \
    __builtin_shuffle(a, b, (vi32){0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23})
#define ZIP_HI(a, b)                                                                           \
    __builtin_shuffle(a, b,                                                                    \
                      (vi32){8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31})
#endif

static inline void take16(vf32 v, int32_t kv, vf32 *m, vi32 *k) {
    vi32 t = (v > *m) | (v != v);
    *m = (vf32)(((vi32)v & t) | ((vi32)*m & ~t));
    *k = (((vi32){0} + kv) & t) | (*k & ~t);
}

typedef uint8_t vu8 __attribute__((vector_size(16)));

/* The window's argmax goes to ix (flat index) or code (2 dy + dx). */
static void max16_f32(const float *r0, const float *r1, float *y, int64_t *ix, uint8_t *code,
                      int64_t base, int64_t W) {
    vf32 a0, a1, c0, c1, m, b, c, d;
    vi32 k = {0};
    memcpy(&a0, r0, sizeof a0), memcpy(&a1, r0 + 16, sizeof a1);
    memcpy(&c0, r1, sizeof c0), memcpy(&c1, r1 + 16, sizeof c1);
    m = EVENS(a0, a1), b = ODDS(a0, a1), c = EVENS(c0, c1), d = ODDS(c0, c1);
    take16(b, 1, &m, &k);
    take16(c, code ? 2 : (int32_t)W, &m, &k);
    take16(d, code ? 3 : (int32_t)W + 1, &m, &k);
    memcpy(y, &m, sizeof m);
    if (ix)
        for (int l = 0; l < 16; l++) ix[l] = base + 2 * l + k[l];
    if (code) {
        vu8 c8 = __builtin_convertvector(k, vu8);
        memcpy(code, &c8, sizeof c8);
    }
}

static void max2x2v_f32(const float *restrict r0, const float *restrict r1, int64_t n,
                        float *restrict y, int64_t *restrict ix, uint8_t *restrict code,
                        int64_t base, int64_t W, int64_t room_in, int64_t room_out) {
    int64_t gap = r1 - r0; /* r1 = r0 + gap: 32 reads from r1 stay in the plane */
    if (W > INT32_MAX / 2) {
        max2x2_f32(r0, r1, n, y, ix, code, base, W, room_in, room_out);
        return;
    }
    if (n < 16 && (room_out < 16 || room_in < gap + 32)) {
        /* a short row at a plane's end: through local copies of its rows */
        float a[32] = {0}, b[32] = {0}, ym[16];
        int64_t im[16];
        uint8_t cm[16];
        memcpy(a, r0, sizeof(float) * (size_t)(2 * n));
        memcpy(b, r1, sizeof(float) * (size_t)(2 * n));
        max16_f32(a, b, ym, ix ? im : NULL, code ? cm : NULL, base, W);
        memcpy(y, ym, sizeof(float) * (size_t)n);
        if (ix) memcpy(ix, im, sizeof(int64_t) * (size_t)n);
        if (code) memcpy(code, cm, (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i += 16) {
        int64_t at = n < 16 || i + 16 <= n ? i : n - 16; /* the last block ends at n */
        max16_f32(r0 + 2 * at, r1 + 2 * at, y + at, ix ? ix + at : NULL,
                  code ? code + at : NULL, base + 2 * at, W);
    }
}

MAX_POOL(max_f32, float, uint32_t, -INFINITY, isnan, max2x2v_f32)
MAX_POOL(max_f64, double, uint64_t, -INFINITY, isnan, max2x2_f64)
MAX_POOL(max_i64, int64_t, uint64_t, INT64_MIN, NO_NAN, max2x2_i64)

bool cgi_max_pool_codes_ok(const cgi_pool_geom *geo, const cg_tensor *x) {
    return x->dtype == CG_F32 && x->strides[3] == 1 && plain_2x2(&geo->dim[0]) &&
           plain_2x2(&geo->dim[1]);
}

void cgi_max_pool(const cgi_pool_geom *geo, const cg_tensor *x, cg_tensor *y, cg_tensor *idx,
                  uint8_t *codes) {
    int64_t planes = geo->n * geo->c, work = planes * out_plane(geo) * geo->dim[0].kernel;
    work *= geo->dim[1].kernel;
    switch (x->dtype) {
    case CG_F32: PLANES(planes, work, p, max_f32(geo, x, y, idx, codes, p);); break;
    case CG_F64: PLANES(planes, work, p, max_f64(geo, x, y, idx, NULL, p);); break;
    case CG_I64: PLANES(planes, work, p, max_i64(geo, x, y, idx, NULL, p);); break;
    }
}

void cgi_max_pool_wide_f32(const float *src, int64_t sy, int64_t h, int64_t w, int64_t room,
                           float *y, uint8_t *codes) {
    int64_t oh_n = h / 2, ow_n = w / 2;
    for (int64_t oh = 0; oh < oh_n; oh++)
        max2x2v_f32(src + 2 * oh * sy, src + (2 * oh + 1) * sy, ow_n, y + oh * ow_n, NULL,
                    codes + oh * ow_n, 0, w, room - 2 * oh * sy, (oh_n - oh) * ow_n);
}

/* The flat index in its plane of the window (oh, ow)'s element code. */
static inline int64_t code_index(uint8_t code, int64_t oh, int64_t ow, int64_t W) {
    return (2 * oh + (code >> 1)) * W + 2 * ow + (code & 1);
}

void cgi_max_pool_decode(const cgi_pool_geom *geo, const uint8_t *codes, int64_t *idx) {
    int64_t planes = geo->n * geo->c, oh_n = geo->dim[0].out, ow_n = geo->dim[1].out;
    int64_t W = geo->dim[1].in;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t oh = 0; oh < oh_n; oh++)
            for (int64_t ow = 0; ow < ow_n; ow++, codes++, idx++)
                *idx = code_index(*codes, oh, ow, W);
}

/* dx's plane p: zeros, then each g added at its index, in output order
 * (row by row: a division per output to find its row cost more than the
 * scatter). */
#define MAX_SCATTER(name, T)                                                                   \
    static void name(const cgi_pool_geom *geo, const cg_tensor *g, const cg_tensor *idx,       \
                     const uint8_t *codes, const cg_tensor *mask, cg_tensor *dx, int64_t p) {  \
        int64_t ni = in_plane(geo), no = out_plane(geo), ow_n = geo->dim[1].out;               \
        int64_t W = geo->dim[1].in;                                                            \
        const T *gp = (const T *)cgi_ptr(g) + plane_off(g, geo->c, p);                         \
        const int64_t *ip = codes ? NULL : (const int64_t *)cgi_ptr(idx) + p * no;             \
        const uint8_t *cp = codes ? codes + p * no : NULL;                                     \
        const T *mp = mask ? (const T *)cgi_ptr(mask) + p * no : NULL;                         \
        T *dp = (T *)cgi_ptr(dx) + p * ni;                                                     \
        memset(dp, 0, sizeof(T) * (size_t)ni);                                                 \
        for (int64_t oh = 0; oh < geo->dim[0].out; oh++) {                                     \
            const T *gr = gp + oh * g->strides[2];                                             \
            int64_t row = oh * ow_n;                                                           \
            for (int64_t ow = 0; ow < ow_n; ow++)                                              \
                dp[cp ? code_index(cp[row + ow], oh, ow, W) : ip[row + ow]] +=                 \
                    mp && !(mp[row + ow] > 0) ? 0 : gr[ow * g->strides[3]];                    \
        }                                                                                      \
    }
MAX_SCATTER(scatter_f32, float)
MAX_SCATTER(scatter_f64, double)

/* The 2x2 stride 2 f32 scatter when the windows tile the rows exactly (W =
 * 2 OW) and g's rows are contiguous: each window's four dx elements are
 * written once, g (+ 0, as the scatter's 0 + g makes -0 +0) where its index
 * points, else 0, so dx needs no memset. Sixteen windows at a time: their
 * index offsets in the window (0, 1, W or W + 1) pick g into four vectors,
 * whose interleavings are the two rows. A block of 16 windows reaches past
 * a short row into the next rows, of g, idx and dx alike, which later
 * blocks rewrite in order; rows whose block would leave the plane go one
 * window at a time. */
typedef int64_t vi64 __attribute__((vector_size(64)));
typedef int32_t vi32h __attribute__((vector_size(32)));

/* Sixteen windows' offsets in their windows (0, 1, W, W + 1), from flat
 * indices (base: the first window's) or from codes. */
static void offsets_of_index(const int64_t *ix, int64_t base, vi32 *k) {
    vi64 k0, k1, l0 = {0, 2, 4, 6, 8, 10, 12, 14}, l1 = l0 + 16;
    memcpy(&k0, ix, sizeof k0), memcpy(&k1, ix + 8, sizeof k1);
    vi32h e0 = __builtin_convertvector(k0 - l0 - base, vi32h);
    vi32h e1 = __builtin_convertvector(k1 - l1 - base, vi32h);
    memcpy(k, &e0, sizeof e0), memcpy((char *)k + sizeof e0, &e1, sizeof e1);
}

static void offsets_of_codes(const uint8_t *code, int64_t W, vi32 *k) {
    vu8 c8;
    memcpy(&c8, code, sizeof c8);
    vi32 c = __builtin_convertvector(c8, vi32);
    *k = (c >> 1) * (int32_t)W + (c & 1);
}

static void scatter16_f32(const float *g, const float *m, const vi32 *kp, int64_t W,
                          float *d0) {
    vi32 k = *kp;
    vf32 gv, mv, zero = {0};
    memcpy(&gv, g, sizeof gv);
    vi32 gb = (vi32)(gv + zero), w = (vi32){0} + (int32_t)W;
    if (m) { /* premasked: g where the pooled value is > 0, else +0 */
        memcpy(&mv, m, sizeof mv);
        gb &= mv > zero;
    }
    vf32 t0 = (vf32)(gb & (k == 0)), t1 = (vf32)(gb & (k == 1));
    vf32 t2 = (vf32)(gb & (k == w)), t3 = (vf32)(gb & (k == w + 1));
    vf32 a0 = ZIP_LO(t0, t1), a1 = ZIP_HI(t0, t1), b0 = ZIP_LO(t2, t3), b1 = ZIP_HI(t2, t3);
    memcpy(d0, &a0, sizeof a0), memcpy(d0 + 16, &a1, sizeof a1);
    memcpy(d0 + W, &b0, sizeof b0), memcpy(d0 + W + 16, &b1, sizeof b1);
}

static bool scatter2x2_ok(const cgi_pool_geom *geo, const cg_tensor *g) {
    const cgi_pool_dim *dh = &geo->dim[0], *dw = &geo->dim[1];
    return plain_2x2(dh) && plain_2x2(dw) && dw->in == 2 * dw->out && g->strides[3] == 1 &&
           g->strides[2] == dw->out && dw->in <= INT32_MAX / 2;
}

static void scatter2x2_f32(const cgi_pool_geom *geo, const cg_tensor *g, const cg_tensor *idx,
                           const uint8_t *codes, const cg_tensor *mask, cg_tensor *dx,
                           int64_t p) {
    int64_t oh_n = geo->dim[0].out, ow_n = geo->dim[1].out, W = geo->dim[1].in;
    int64_t ni = in_plane(geo), no = out_plane(geo);
    const float *gp = (const float *)cgi_ptr(g) + plane_off(g, geo->c, p);
    const int64_t *ip = codes ? NULL : (const int64_t *)cgi_ptr(idx) + p * no;
    const uint8_t *cp = codes ? codes + p * no : NULL;
    const float *mp = mask ? (const float *)cgi_ptr(mask) + p * no : NULL;
    float *dp = (float *)cgi_ptr(dx) + p * ni;
    for (int64_t oh = 0; oh < oh_n; oh++) {
        const float *gr = gp + oh * ow_n;
        float *d0 = dp + 2 * oh * W;
        int64_t base = 2 * oh * W, row = oh * ow_n;
        if (ow_n >= 16 || (oh * ow_n + 16 <= no && (2 * oh + 1) * W + 32 <= ni)) {
            for (int64_t i = 0; i < ow_n; i += 16) {
                int64_t at = ow_n < 16 || i + 16 <= ow_n ? i : ow_n - 16;
                vi32 k;
                if (cp)
                    offsets_of_codes(cp + row + at, W, &k);
                else
                    offsets_of_index(ip + row + at, base + 2 * at, &k);
                scatter16_f32(gr + at, mp ? mp + row + at : NULL, &k, W, d0 + 2 * at);
            }
            continue;
        }
        memset(d0, 0, sizeof(float) * (size_t)(2 * W));
        for (int64_t ow = 0; ow < ow_n; ow++)
            dp[cp ? code_index(cp[row + ow], oh, ow, W) : ip[row + ow]] +=
                mp && !(mp[row + ow] > 0) ? 0 : gr[ow];
    }
    int64_t done = 2 * oh_n * W; /* an odd last row */
    memset(dp + done, 0, sizeof(float) * (size_t)(ni - done));
}

void cgi_max_pool_scatter(const cgi_pool_geom *geo, const cg_tensor *g, const cg_tensor *idx,
                          const uint8_t *codes, const cg_tensor *mask, cg_tensor *dx) {
    int64_t planes = geo->n * geo->c, work = planes * in_plane(geo);
    if (g->dtype == CG_F32 && scatter2x2_ok(geo, g))
        PLANES(planes, work, p, scatter2x2_f32(geo, g, idx, codes, mask, dx, p););
    else if (g->dtype == CG_F32)
        PLANES(planes, work, p, scatter_f32(geo, g, idx, codes, mask, dx, p););
    else
        PLANES(planes, work, p, scatter_f64(geo, g, idx, codes, mask, dx, p););
}

/* ---- average pooling ------------------------------------------------------------------ */
#define AVG_POOL(name, T)                                                                      \
    static void name(const cgi_pool_geom *geo, const cg_tensor *x, cg_tensor *y, int64_t p) {  \
        const T *xp = (const T *)cgi_ptr(x) + plane_off(x, geo->c, p);                         \
        int64_t sh = x->strides[2], sw = x->strides[3], ow_n = geo->dim[1].out;                \
        T *yp = (T *)cgi_ptr(y) + p * out_plane(geo);                                          \
        for (int64_t oh = 0; oh < geo->dim[0].out; oh++) {                                     \
            int64_t h0, h1, w0, w1, fh = box(geo, 0, oh, &h0, &h1);                            \
            for (int64_t ow = 0; ow < ow_n; ow++) {                                            \
                int64_t fw = box(geo, 1, ow, &w0, &w1);                                        \
                double s = 0;                                                                  \
                for (int64_t h = h0; h < h1; h++)                                              \
                    for (int64_t w = w0; w < w1; w++) s += xp[h * sh + w * sw];                \
                yp[oh * ow_n + ow] = (T)(s / (double)(fh * fw));                               \
            }                                                                                  \
        }                                                                                      \
    }
AVG_POOL(avg_f32, float)
AVG_POOL(avg_f64, double)

/* dx's plane p: zeros, then g[o] / divisor(o) added over window o, in output order. */
#define AVG_BACKWARD(name, T)                                                                  \
    static void name(const cgi_pool_geom *geo, const cg_tensor *g, cg_tensor *dx, int64_t p) { \
        const T *gp = (const T *)cgi_ptr(g) + plane_off(g, geo->c, p);                         \
        int64_t w_n = geo->dim[1].in, ni = in_plane(geo);                                      \
        T *dp = (T *)cgi_ptr(dx) + p * ni;                                                     \
        memset(dp, 0, sizeof(T) * (size_t)ni);                                                 \
        for (int64_t oh = 0; oh < geo->dim[0].out; oh++) {                                     \
            int64_t h0, h1, w0, w1, fh = box(geo, 0, oh, &h0, &h1);                            \
            for (int64_t ow = 0; ow < geo->dim[1].out; ow++) {                                 \
                int64_t fw = box(geo, 1, ow, &w0, &w1);                                        \
                T v = (T)(gp[oh * g->strides[2] + ow * g->strides[3]] / (double)(fh * fw));    \
                for (int64_t h = h0; h < h1; h++)                                              \
                    for (int64_t w = w0; w < w1; w++) dp[h * w_n + w] += v;                    \
            }                                                                                  \
        }                                                                                      \
    }
AVG_BACKWARD(avg_backward_f32, float)
AVG_BACKWARD(avg_backward_f64, double)

/* The work of a window pass: each input element is read about
 * (kernel / stride)^2 times; in_plane is a fair lower bound. */
static int64_t avg_work(const cgi_pool_geom *geo) {
    int64_t o = out_plane(geo), i = in_plane(geo);
    return geo->n * geo->c * (o > i ? o : i);
}

void cgi_avg_pool(const cgi_pool_geom *geo, const cg_tensor *x, cg_tensor *y) {
    int64_t planes = geo->n * geo->c, work = avg_work(geo);
    if (x->dtype == CG_F32)
        PLANES(planes, work, p, avg_f32(geo, x, y, p););
    else
        PLANES(planes, work, p, avg_f64(geo, x, y, p););
}

void cgi_avg_pool_backward(const cgi_pool_geom *geo, const cg_tensor *g, cg_tensor *dx) {
    int64_t planes = geo->n * geo->c, work = avg_work(geo);
    if (g->dtype == CG_F32)
        PLANES(planes, work, p, avg_backward_f32(geo, g, dx, p););
    else
        PLANES(planes, work, p, avg_backward_f64(geo, g, dx, p););
}

/* ---- reflect and replicate padding ---------------------------------------------------- */
/* The input position read by padded position i - lo (i in input coordinates). */
static inline int64_t source(bool reflect, int64_t i, int64_t n) {
    if (reflect) return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
    return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/* The element offset of plane p over t's lead dims (C order). */
static int64_t lead_off(const cg_tensor *t, int nlead, int64_t p) {
    int64_t off = 0;
    for (int d = nlead - 1; d >= 0; d--) {
        off += (p % t->shape[d]) * t->strides[d];
        p /= t->shape[d];
    }
    return off;
}

static int64_t numel3(const int64_t *s) { return s[0] * s[1] * s[2]; }

/* Copies of 4- or 8-byte elements: the map only moves bits. */
#define PAD_MAP(name, T)                                                                       \
    static void name(const cgi_pad_geom *geo, const cg_tensor *x, cg_tensor *out, int64_t p) { \
        const int L = geo->nlead;                                                              \
        const T *xp = (const T *)cgi_ptr(x) + lead_off(x, L, p);                               \
        const int64_t *s = x->strides + L, *in = geo->in, *lo = geo->lo;                       \
        T *op = (T *)cgi_ptr(out) + p * numel3(geo->out);                                      \
        for (int64_t a = 0; a < geo->out[0]; a++) {                                            \
            int64_t ia = source(geo->reflect, a - lo[0], in[0]);                               \
            for (int64_t b = 0; b < geo->out[1]; b++) {                                        \
                const T *row = xp + ia * s[0] + source(geo->reflect, b - lo[1], in[1]) * s[1]; \
                for (int64_t c = 0; c < geo->out[2]; c++)                                      \
                    *op++ = row[source(geo->reflect, c - lo[2], in[2]) * s[2]];                \
            }                                                                                  \
        }                                                                                      \
    }
PAD_MAP(map_4, uint32_t)
PAD_MAP(map_8, uint64_t)

static int64_t lead_planes(const cg_tensor *t, int nlead) { return cgi_numel(nlead, t->shape); }

void cgi_pad_map(const cgi_pad_geom *geo, const cg_tensor *x, cg_tensor *out) {
    int64_t planes = lead_planes(x, geo->nlead), work = planes * numel3(geo->out);
    if (cg_dtype_size(x->dtype) == 4)
        PLANES(planes, work, p, map_4(geo, x, out, p););
    else
        PLANES(planes, work, p, map_8(geo, x, out, p););
}

/* dx's plane p: zeros, then every g added where it was read from, in g's order. */
#define PAD_FOLD(name, T)                                                                      \
    static void name(const cgi_pad_geom *geo, const cg_tensor *g, cg_tensor *dx, int64_t p) {  \
        const int L = geo->nlead;                                                              \
        const T *gp = (const T *)cgi_ptr(g) + lead_off(g, L, p);                               \
        const int64_t *s = g->strides + L, *in = geo->in, *lo = geo->lo;                       \
        T *dp = (T *)cgi_ptr(dx) + p * numel3(in);                                             \
        memset(dp, 0, sizeof(T) * (size_t)numel3(in));                                         \
        for (int64_t a = 0; a < geo->out[0]; a++) {                                            \
            int64_t ia = source(geo->reflect, a - lo[0], in[0]);                               \
            for (int64_t b = 0; b < geo->out[1]; b++) {                                        \
                T *row = dp + (ia * in[1] + source(geo->reflect, b - lo[1], in[1])) * in[2];   \
                const T *grow = gp + a * s[0] + b * s[1];                                      \
                for (int64_t c = 0; c < geo->out[2]; c++)                                      \
                    row[source(geo->reflect, c - lo[2], in[2])] += grow[c * s[2]];             \
            }                                                                                  \
        }                                                                                      \
    }
PAD_FOLD(fold_f32, float)
PAD_FOLD(fold_f64, double)

void cgi_pad_fold(const cgi_pad_geom *geo, const cg_tensor *g, cg_tensor *dx) {
    int64_t planes = lead_planes(g, geo->nlead), work = planes * numel3(geo->out);
    if (g->dtype == CG_F32)
        PLANES(planes, work, p, fold_f32(geo, g, dx, p););
    else
        PLANES(planes, work, p, fold_f64(geo, g, dx, p););
}
