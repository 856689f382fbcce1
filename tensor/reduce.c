/* Reduction kernels (sum, mean, max, min, argmax, argmin) on strided arrays,
 * below any graph.
 *
 * Plan: x's dims are split into kept dims (C order, they index the
 * contiguous output) and reduced dims; size-1 dims are dropped and adjacent
 * dims that are contiguous with each other are merged, e.g. summing axis 1
 * of a contiguous [A,B,C] gives kept [A](stride B*C), [C](1) and reduced
 * [B](C). Non-arg ops may also reorder the reduced dims by stride, since
 * their value does not depend on the visiting order (argmax does: its index
 * is the flat C-order index over the reduced axes).
 *
 * Two loop orders:
 *  - runs: each output reduces its own block, the innermost reduced dim as
 *    a 1-D loop over LANES fixed lanes, so it vectorises without
 *    -ffast-math. Used when a reduced dim is innermost in memory and long.
 *  - rows: when the innermost kept dim is the one nearest in memory (sum of
 *    [N,D] over N, the bias gradient), a tile of up to BLK outputs is
 *    accumulated row by row, so x is read in order, never down a column;
 *    also when the reduced runs are short (argmax of [B,10] over 10), as
 *    the loop over the outputs then vectorises.
 *
 * Work is cut into tasks of (block of consecutive outputs, chunk of the
 * reduced flat range). The cut depends on the shapes only, never on the
 * thread count, and chunk partials are combined in chunk order, so results
 * are bitwise identical for any number of threads. Chunks are used only
 * when there are too few output blocks to keep the threads busy (a full
 * sum, a bias gradient).
 *
 * Numerics: float sums accumulate in double (f32 too), i64 sums in uint64_t
 * (wrapping, never undefined). MAX/MIN/ARG*: ties keep the first; NaN counts
 * as the extreme (the first NaN wins, as PyTorch's max propagates NaN).
 * Empty reduced set: SUM 0, MEAN NaN (i64: 0); MAX/MIN NaN (i64: 0) and
 * ARG* -1, though the caller rejects those. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16 /* independent sum lanes of a contiguous run */
#define BLK                                                                                    \
    2048                 /* outputs per task, at most (stack arrays, 16 KB): a bias            \
                          * gradient up to 2048 wide streams whole rows */
#define TASK_WORK  16384 /* elements a runs task aims at */
#define FEW_BLOCKS 16    /* below this many output blocks, chunk the reduction */
#define TARGET_TASKS                                                                           \
    16                   /* tasks wanted when chunking: more only grew the serial              \
                          * combine of partials (sum over rows of [16384,1024]:                \
                          * 1.84 -> 1.15 ms with BLK 2048, 2 threads) */
#define CHUNK_WORK 32768 /* smallest chunk worth a task, in elements */
#define SHORT_RUN  32    /* runs shorter than this are walked as rows */

/* Running state of up to BLK outputs; one member is used per reduction:
 * f for floats (sums and best values, exact for f32 too), u for i64 sums
 * (wrapping), i for i64 best values. Hot loops see plain typed arrays
 * (GCC does not vectorise through union members). */
typedef union accs {
    double f[BLK];
    uint64_t u[BLK];
    int64_t i[BLK];
} accs;

/* Per-dtype kernels on x's elements; acc/best point into an accs member.
 * A "run" is n elements of one output, s apart; "rows" are m rows, rs
 * apart, of n outputs each, the outputs s apart. bi (arg index) may be
 * NULL in ext_run when no index is wanted. */
typedef struct kernels {
    void (*sum_run)(const char *p, int64_t n, int64_t s, void *acc);
    void (*sum_rows)(const char *p, int64_t n, int64_t s, int64_t m, int64_t rs, void *acc);
    void (*ext_run)(const char *p, int64_t n, int64_t s, int64_t i0, bool mx, void *best,
                    int64_t *bi);
    void (*ext_rows)(const char *p, int64_t n, int64_t s, int64_t m, int64_t rs, int64_t r0,
                     bool mx, void *best, int64_t *bi);
    void (*ext_init)(const char *p, int64_t n, int64_t s, void *best);
} kernels;

typedef struct plan {
    cgi_reduce_op op;
    const kernels *k;
    bool ext;   /* MAX/MIN/ARG*: keep the best value, not a sum */
    bool mx;    /* MAX/ARGMAX */
    bool arg;   /* ARG*: write the index */
    bool isint; /* x is i64 */
    const char *base;
    size_t esize;
    int nk, nr; /* kept / reduced dims after coalescing; nr >= 1 */
    int64_t kshape[CG_MAX_DIMS], kstride[CG_MAX_DIMS];
    int64_t rshape[CG_MAX_DIMS], rstride[CG_MAX_DIMS];
    int64_t nout, nred; /* output numel, reduced-set size */
    bool rows;          /* loop order: rows (else runs) */
    int64_t blk;        /* outputs per block (runs) or columns per tile (rows) */
    int64_t nblk, nchunk;
} plan;

/* ---- per-dtype kernels --------------------------------------------------- */

/* v beats the best b so far: strictly greater (max) or smaller (min), so
 * ties keep the first; a NaN beats any number and nothing beats a NaN. */
static inline bool better_f64(double v, double b, bool mx) {
    return (mx ? v > b : v < b) || (isnan(v) && !isnan(b));
}
static inline bool better_f32(float v, float b, bool mx) {
    return (mx ? v > b : v < b) || (isnan(v) && !isnan(b));
}
static inline bool better_i64(int64_t v, int64_t b, bool mx) { return mx ? v > b : v < b; }
static inline bool same_f64(double v, double b) { return v == b || (isnan(v) && isnan(b)); }
static inline bool same_i64(int64_t v, int64_t b) { return v == b; }

/* Sums: S suffix, T element type, SA accumulator type. A run is summed in
 * LANES fixed lanes (the same order for any stride), so it vectorises
 * without -ffast-math. Rows are added eight at a time when contiguous (four
 * otherwise), the accumulators staying in registers, still in row order, so
 * the bits do not change: summing [16384,1024] over rows on 2 threads, 1.25
 * -> 0.91 ms with eight against four (16 was no faster). */
#define DEFINE_SUM_KERNELS(S, T, SA)                                                           \
    static void sum_run_##S(const char *px, int64_t n, int64_t s, void *acc) {                 \
        const T *p = (const T *)px;                                                            \
        SA lane[LANES] = {0};                                                                  \
        int64_t i = 0;                                                                         \
        if (s == 1) {                                                                          \
            for (; i + LANES <= n; i += LANES)                                                 \
                for (int k = 0; k < LANES; k++) lane[k] += (SA)p[i + k];                       \
        } else {                                                                               \
            for (; i + LANES <= n; i += LANES)                                                 \
                for (int k = 0; k < LANES; k++) lane[k] += (SA)p[(i + k) * s];                 \
        }                                                                                      \
        for (; i < n; i++) lane[i % LANES] += (SA)p[i * s];                                    \
        for (int w = LANES / 2; w > 0; w /= 2)                                                 \
            for (int k = 0; k < w; k++) lane[k] += lane[k + w];                                \
        *(SA *)acc += lane[0];                                                                 \
    }                                                                                          \
    static void sum_rows_##S(const char *px, int64_t n, int64_t s, int64_t m, int64_t rs,      \
                             void *acc) {                                                      \
        const T *p = (const T *)px;                                                            \
        SA *a = acc;                                                                           \
        int64_t r = 0;                                                                         \
        if (s == 1)                                                                            \
            for (; r + 8 <= m; r += 8) {                                                       \
                const T *q = p + r * rs;                                                       \
                for (int64_t j = 0; j < n; j++) {                                              \
                    SA v = a[j];                                                               \
                    for (int k = 0; k < 8; k++) v += (SA)q[k * rs + j];                        \
                    a[j] = v;                                                                  \
                }                                                                              \
            }                                                                                  \
        for (; r + 4 <= m; r += 4) {                                                           \
            const T *q0 = p + r * rs, *q1 = q0 + rs, *q2 = q1 + rs, *q3 = q2 + rs;             \
            if (s == 1) {                                                                      \
                for (int64_t j = 0; j < n; j++)                                                \
                    a[j] = (((a[j] + (SA)q0[j]) + (SA)q1[j]) + (SA)q2[j]) + (SA)q3[j];         \
            } else {                                                                           \
                for (int64_t j = 0; j < n; j++)                                                \
                    a[j] = (((a[j] + (SA)q0[j * s]) + (SA)q1[j * s]) + (SA)q2[j * s]) +        \
                           (SA)q3[j * s];                                                      \
            }                                                                                  \
        }                                                                                      \
        for (; r < m; r++)                                                                     \
            for (int64_t j = 0; j < n; j++) a[j] += (SA)p[r * rs + j * s];                     \
    }

/* Extremes: EA is the type of best values and B the suffix of better_ on
 * EA (f32 compares in double, exactly; that vectorises, a float/double mix
 * does not). rows: branch-free selects, so the loop over the n outputs
 * vectorises. A run finds its best value with ext_rows over LANES lanes
 * (max/min do not depend on order, except which of +0 and -0 comes out),
 * then, only when that beats the best so far, the first equal element.
 * Short runs (argmax over a few classes) take one plain pass instead. */
#define DEFINE_EXT_KERNELS(S, T, EA, B)                                                        \
    static void ext_rows_##S(const char *px, int64_t n, int64_t s, int64_t m, int64_t rs,      \
                             int64_t r0, bool mx, void *best, int64_t *bi) {                   \
        const T *p = (const T *)px;                                                            \
        EA *b = best;                                                                          \
        for (int64_t r = 0; r < m; r++) {                                                      \
            for (int64_t j = 0; j < n; j++) {                                                  \
                EA v = (EA)p[r * rs + j * s];                                                  \
                bool t = better_##B(v, b[j], mx);                                              \
                b[j] = t ? v : b[j];                                                           \
                bi[j] = t ? r0 + r : bi[j];                                                    \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void ext_init_##S(const char *px, int64_t n, int64_t s, void *best) {               \
        const T *p = (const T *)px;                                                            \
        EA *b = best;                                                                          \
        for (int64_t j = 0; j < n; j++) b[j] = (EA)p[j * s];                                   \
    }                                                                                          \
    static EA ext_value_##S(const char *px, int64_t n, int64_t s, bool mx) {                   \
        const T *p = (const T *)px;                                                            \
        EA lane[LANES], v = (EA)p[0];                                                          \
        int64_t at[LANES], m = n / LANES;                                                      \
        if (m > 0) {                                                                           \
            ext_init_##S(px, LANES, s, lane);                                                  \
            ext_rows_##S(px, LANES, s, m, LANES *s, 0, mx, lane, at);                          \
            for (int k = 0; k < LANES; k++) v = better_##B(lane[k], v, mx) ? lane[k] : v;      \
        }                                                                                      \
        for (int64_t i = m * LANES; i < n; i++)                                                \
            v = better_##B((EA)p[i * s], v, mx) ? (EA)p[i * s] : v;                            \
        return v;                                                                              \
    }                                                                                          \
    static void ext_short_##S(const T *p, int64_t n, int64_t s, int64_t i0, bool mx, EA *b,    \
                              int64_t *bi) {                                                   \
        T v = (T)*b;                                                                           \
        int64_t at = -1;                                                                       \
        for (int64_t i = 0; i < n; i++) {                                                      \
            bool t = better_##S(p[i * s], v, mx);                                              \
            v = t ? p[i * s] : v;                                                              \
            at = t ? i : at;                                                                   \
        }                                                                                      \
        *b = (EA)v;                                                                            \
        if (bi && at >= 0) *bi = i0 + at;                                                      \
    }                                                                                          \
    static void ext_run_##S(const char *px, int64_t n, int64_t s, int64_t i0, bool mx,         \
                            void *best, int64_t *bi) {                                         \
        const T *p = (const T *)px;                                                            \
        if (n < SHORT_RUN) {                                                                   \
            ext_short_##S(p, n, s, i0, mx, best, bi);                                          \
            return;                                                                            \
        }                                                                                      \
        EA *b = best, v = ext_value_##S(px, n, s, mx);                                         \
        if (!better_##B(v, *b, mx)) return;                                                    \
        *b = v;                                                                                \
        for (int64_t i = 0; bi && i < n; i++) {                                                \
            if (same_##B((EA)p[i * s], v)) {                                                   \
                *bi = i0 + i;                                                                  \
                return;                                                                        \
            }                                                                                  \
        }                                                                                      \
    }

DEFINE_SUM_KERNELS(f32, float, double)
DEFINE_SUM_KERNELS(f64, double, double)
DEFINE_SUM_KERNELS(i64, int64_t, uint64_t)
DEFINE_EXT_KERNELS(f32, float, double, f64)
DEFINE_EXT_KERNELS(f64, double, double, f64)
DEFINE_EXT_KERNELS(i64, int64_t, int64_t, i64)
#undef DEFINE_SUM_KERNELS
#undef DEFINE_EXT_KERNELS

#define KERNELS(S)                                                                             \
    { sum_run_##S, sum_rows_##S, ext_run_##S, ext_rows_##S, ext_init_##S }
static const kernels KERNELS_BY_DTYPE[3] = {KERNELS(f32), KERNELS(f64), KERNELS(i64)};
#undef KERNELS

/* ---- odometer over a few dims -------------------------------------------- */

typedef struct odo {
    int n;
    const int64_t *shape, *stride;
    int64_t idx[CG_MAX_DIMS];
    int64_t off; /* element offset of idx */
} odo;

/* Positions o at C-order flat index flat of (n, shape); shapes are > 0. */
static void odo_init(odo *o, int n, const int64_t *shape, const int64_t *stride, int64_t flat) {
    o->n = n;
    o->shape = shape;
    o->stride = stride;
    o->off = 0;
    for (int d = n - 1; d >= 0; d--) {
        o->idx[d] = flat % shape[d];
        flat /= shape[d];
        o->off += o->idx[d] * stride[d];
    }
}

/* Next index in C order (wraps to 0 after the last). */
static inline void odo_next(odo *o) {
    for (int d = o->n - 1; d >= 0; d--) {
        o->off += o->stride[d];
        if (++o->idx[d] < o->shape[d]) return;
        o->off -= o->stride[d] * o->shape[d];
        o->idx[d] = 0;
    }
}

/* ---- planning ------------------------------------------------------------ */

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Merges dim d into the one before when that one steps over it exactly. */
static int coalesce(int n, int64_t *shape, int64_t *stride) {
    int m = 0;
    for (int d = 1; d < n; d++) {
        if (stride[m] == shape[d] * stride[d]) {
            shape[m] *= shape[d];
            stride[m] = stride[d];
        } else {
            m++;
            shape[m] = shape[d];
            stride[m] = stride[d];
        }
    }
    return n ? m + 1 : 0;
}

/* Stable sort by decreasing stride: the smallest reduced stride goes last,
 * where the runs loop walks it, and contiguous dims become adjacent. */
static void sort_by_stride(int n, int64_t *shape, int64_t *stride) {
    for (int i = 1; i < n; i++) {
        for (int j = i; j > 0 && stride[j - 1] < stride[j]; j--) {
            int64_t t = shape[j];
            shape[j] = shape[j - 1];
            shape[j - 1] = t;
            t = stride[j];
            stride[j] = stride[j - 1];
            stride[j - 1] = t;
        }
    }
}

static int64_t product(int n, const int64_t *shape) {
    int64_t p = 1;
    for (int d = 0; d < n; d++) p *= shape[d];
    return p;
}

/* Splits x's dims into kept and reduced ones, dropping size-1 dims (they
 * change no index), then merges. No reduced dim left: a dummy [1] (stride
 * 0), so every output reduces one run. */
static void plan_dims(plan *p, const cg_tensor *x, unsigned mask) {
    p->nk = p->nr = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (x->shape[d] == 1) continue;
        bool red = (mask >> d) & 1u;
        int *n = red ? &p->nr : &p->nk;
        (red ? p->rshape : p->kshape)[*n] = x->shape[d];
        (red ? p->rstride : p->kstride)[*n] = x->strides[d];
        (*n)++;
    }
    if (!p->arg) sort_by_stride(p->nr, p->rshape, p->rstride);
    p->nk = coalesce(p->nk, p->kshape, p->kstride);
    p->nr = coalesce(p->nr, p->rshape, p->rstride);
    if (p->nr == 0) {
        p->rshape[0] = 1;
        p->rstride[0] = 0;
        p->nr = 1;
    }
    p->nout = product(p->nk, p->kshape);
    p->nred = product(p->nr, p->rshape);
}

static void plan_init(plan *p, cgi_reduce_op op, const cg_tensor *x, unsigned mask) {
    p->op = op;
    p->k = &KERNELS_BY_DTYPE[x->dtype];
    p->arg = op == CGI_REDUCE_ARGMAX || op == CGI_REDUCE_ARGMIN;
    p->ext = p->arg || op == CGI_REDUCE_MAX || op == CGI_REDUCE_MIN;
    p->mx = op == CGI_REDUCE_MAX || op == CGI_REDUCE_ARGMAX;
    p->isint = x->dtype == CG_I64;
    p->base = cgi_ptr(x);
    p->esize = cg_dtype_size(x->dtype);
    plan_dims(p, x, mask);
}

/* Loop order and task cut (needs nout, nred > 0). rows when the innermost
 * kept dim (no broadcast) steps less than the innermost reduced one: then
 * rows of the kept dim are what x holds contiguously. Also when the runs
 * would be short (argmax of [B,10] over 10): the loop over outputs
 * vectorises, one run per output would not. */
static void plan_schedule(plan *p) {
    int64_t ks = p->nk ? p->kstride[p->nk - 1] : 0;
    int64_t rs = p->rstride[p->nr - 1], len = p->rshape[p->nr - 1];
    p->rows = ks > 0 && (rs > ks || len < SHORT_RUN);
    if (p->rows) {
        int64_t d = p->kshape[p->nk - 1];
        p->blk = BLK;
        p->nblk = (p->nout / d) * ceil_div(d, BLK);
    } else {
        p->blk = TASK_WORK / p->nred;
        p->blk = p->blk < 1 ? 1 : min64(p->blk, BLK);
        p->nblk = ceil_div(p->nout, p->blk);
    }
    p->nchunk = 1;
    if (p->nblk < FEW_BLOCKS) {
        int64_t n = min64(ceil_div(TARGET_TASKS, p->nblk), p->nout * p->nred / CHUNK_WORK);
        p->nchunk = n < 2 ? 1 : min64(n, p->nred);
    }
}

/* ---- one task ------------------------------------------------------------ */

/* Outputs [*o0, *o0 + *no) of block b. rows: blocks are tiles of the
 * innermost kept dim, so a tile never straddles two of its rows. */
static void block_range(const plan *p, int64_t b, int64_t *o0, int64_t *no) {
    if (p->rows) {
        int64_t d = p->kshape[p->nk - 1], tiles = ceil_div(d, p->blk);
        int64_t col = (b % tiles) * p->blk;
        *o0 = (b / tiles) * d + col;
        *no = min64(p->blk, d - col);
    } else {
        *o0 = b * p->blk;
        *no = min64(p->blk, p->nout - *o0);
    }
}

/* Reduced flat range [*r0, *r1) of chunk c: nred split as evenly as possible. */
static void chunk_range(const plan *p, int64_t c, int64_t *r0, int64_t *r1) {
    int64_t q = p->nred / p->nchunk, rem = p->nred % p->nchunk;
    *r0 = c * q + min64(c, rem);
    *r1 = *r0 + q + (c < rem);
}

/* The accumulator of output j of a block, in the member this op uses. */
static void *slot(const plan *p, accs *a, int64_t j) {
    if (!p->isint) return &a->f[j];
    return p->ext ? (void *)&a->i[j] : (void *)&a->u[j];
}

/* Folds one run of n elements (stride s, reduced index r of the first). */
static inline void fold_run(const plan *p, const char *q, int64_t n, int64_t s, int64_t r,
                            void *acc, int64_t *ai) {
    if (p->ext)
        p->k->ext_run(q, n, s, r, p->mx, acc, p->arg ? ai : NULL);
    else
        p->k->sum_run(q, n, s, acc);
}

/* runs: one output, whose block starts at x, over reduced [r0, r1) walked
 * as runs of the innermost reduced dim (len elements at stride s); start is
 * the odometer of the outer reduced dims at r0, and c0 the column of r0. */
static void reduce_run(const plan *p, const char *x, const odo *start, int64_t c0, int64_t r0,
                       int64_t r1, void *acc, int64_t *ai) {
    int last = p->nr - 1;
    int64_t len = p->rshape[last], s = p->rstride[last];
    if (p->ext) {
        p->k->ext_init(x + (size_t)(start->off + c0 * s) * p->esize, 1, 0, acc);
        *ai = r0;
    } else {
        memset(acc, 0, sizeof(double)); /* 0.0 and 0 are all-zero bits */
    }
    if (last == 0) { /* one reduced dim: a single run (and no odometer copy) */
        fold_run(p, x + (size_t)(c0 * s) * p->esize, r1 - r0, s, r0, acc, ai);
        return;
    }
    odo ro = *start;
    for (int64_t r = r0, c = c0; r < r1; c = 0, odo_next(&ro)) {
        int64_t n = min64(len - c, r1 - r);
        fold_run(p, x + (size_t)(ro.off + c * s) * p->esize, n, s, r, acc, ai);
        r += n;
    }
}

static void block_runs(const plan *p, int64_t o0, int64_t no, int64_t r0, int64_t r1, accs *a,
                       int64_t *ai) {
    int last = p->nr - 1;
    odo ko, start;
    odo_init(&ko, p->nk, p->kshape, p->kstride, o0);
    odo_init(&start, last, p->rshape, p->rstride, r0 / p->rshape[last]);
    int64_t c0 = r0 % p->rshape[last];
    for (int64_t j = 0; j < no; j++, odo_next(&ko)) {
        const char *x = p->base + (size_t)ko.off * p->esize;
        reduce_run(p, x, &start, c0, r0, r1, slot(p, a, j), &ai[j]);
    }
}

/* rows: no consecutive outputs along the innermost kept dim (s apart in x);
 * the reduced range [r0, r1) is walked as runs of rows (the innermost
 * reduced dim, rs apart), each row adding one segment to all no outputs. */
static void block_rows(const plan *p, int64_t o0, int64_t no, int64_t r0, int64_t r1, accs *a,
                       int64_t *ai) {
    int kl = p->nk - 1, rl = p->nr - 1;
    int64_t d = p->kshape[kl], s = p->kstride[kl];
    int64_t len = p->rshape[rl], rs = p->rstride[rl];
    odo ko, ro;
    odo_init(&ko, kl, p->kshape, p->kstride, o0 / d);
    odo_init(&ro, rl, p->rshape, p->rstride, r0 / len);
    const char *x = p->base + (size_t)(ko.off + (o0 % d) * s) * p->esize;
    int64_t c = r0 % len;
    void *acc = slot(p, a, 0);
    if (p->ext) {
        p->k->ext_init(x + (size_t)(ro.off + c * rs) * p->esize, no, s, acc);
        for (int64_t j = 0; j < no; j++) ai[j] = r0;
    } else {
        memset(acc, 0, (size_t)no * sizeof(double));
    }
    for (int64_t r = r0; r < r1; c = 0, odo_next(&ro)) {
        int64_t m = min64(len - c, r1 - r);
        const char *q = x + (size_t)(ro.off + c * rs) * p->esize;
        if (p->ext)
            p->k->ext_rows(q, no, s, m, rs, r, p->mx, acc, ai);
        else
            p->k->sum_rows(q, no, s, m, rs, acc);
        r += m;
    }
}

/* ---- output -------------------------------------------------------------- */

static double float_value(const plan *p, double v) {
    if (p->op != CGI_REDUCE_MEAN) return v;
    return p->nred ? v / (double)p->nred : NAN;
}

static int64_t int_value(const plan *p, const accs *a, int64_t j) {
    if (p->ext) return a->i[j];
    int64_t v = (int64_t)a->u[j]; /* modular, as the sum wrapped */
    if (p->op != CGI_REDUCE_MEAN) return v;
    return p->nred ? v / p->nred : 0;
}

/* Writes outputs [o0, o0 + n) of the contiguous out. */
static void store(const plan *p, const accs *a, const int64_t *ai, int64_t o0, int64_t n,
                  cg_tensor *out) {
    char *dst = cgi_ptr(out);
    if (p->arg) {
        memcpy((int64_t *)dst + o0, ai, (size_t)n * sizeof *ai);
        return;
    }
    for (int64_t j = 0; j < n; j++) {
        switch (out->dtype) {
        case CG_F32: ((float *)dst)[o0 + j] = (float)float_value(p, a->f[j]); break;
        case CG_F64: ((double *)dst)[o0 + j] = float_value(p, a->f[j]); break;
        case CG_I64: ((int64_t *)dst)[o0 + j] = int_value(p, a, j); break;
        }
    }
}

/* Empty reduced set: every output is the value of "no element". */
static void fill_empty(const plan *p, cg_tensor *out) {
    accs a;
    int64_t ai[BLK];
    for (int j = 0; j < BLK; j++) {
        if (p->isint)
            a.i[j] = 0;
        else
            a.f[j] = p->ext ? NAN : 0.0;
        ai[j] = -1;
    }
    for (int64_t o0 = 0; o0 < p->nout; o0 += BLK)
        store(p, &a, ai, o0, min64(BLK, p->nout - o0), out);
}

/* ---- driver -------------------------------------------------------------- */

/* Task t: block t / nchunk over chunk t % nchunk, into out directly or into
 * the chunk's row of the partials pv, pi ([nchunk][nout] each). */
static void run_task(const plan *p, int64_t t, void *pv, int64_t *pi, cg_tensor *out) {
    accs a;
    int64_t ai[BLK];
    int64_t o0, no, r0, r1, c = t % p->nchunk;
    block_range(p, t / p->nchunk, &o0, &no);
    chunk_range(p, c, &r0, &r1);
    if (p->rows)
        block_rows(p, o0, no, r0, r1, &a, ai);
    else
        block_runs(p, o0, no, r0, r1, &a, ai);
    if (!pv) {
        store(p, &a, ai, o0, no, out);
        return;
    }
    size_t at = (size_t)(c * p->nout + o0);
    memcpy((char *)pv + at * sizeof(double), slot(p, &a, 0), (size_t)no * sizeof(double));
    if (pi) memcpy(pi + at, ai, (size_t)no * sizeof *ai);
}

/* Output o (slot j of a) from its chunk partials, in chunk order: sums add
 * up, extremes keep the first strictly better (ties: earlier chunk). */
static void fold_chunks(const plan *p, const void *pv, const int64_t *pi, int64_t o, accs *a,
                        int64_t *ai, int64_t j) {
    int64_t step = p->nout, end = p->nout * p->nchunk, win = o;
    const double *f = pv;
    const int64_t *iv = pv;
    const uint64_t *u = pv;
    if (!p->isint && !p->ext) {
        a->f[j] = f[o];
        for (int64_t k = o + step; k < end; k += step) a->f[j] += f[k];
    } else if (!p->ext) {
        a->u[j] = u[o];
        for (int64_t k = o + step; k < end; k += step) a->u[j] += u[k];
    } else {
        for (int64_t k = o + step; k < end; k += step) {
            bool t =
                p->isint ? better_i64(iv[k], iv[win], p->mx) : better_f64(f[k], f[win], p->mx);
            win = t ? k : win;
        }
        if (p->isint)
            a->i[j] = iv[win];
        else
            a->f[j] = f[win];
    }
    ai[j] = pi ? pi[win] : 0;
}

static void combine(const plan *p, const void *pv, const int64_t *pi, cg_tensor *out) {
    int64_t nb = ceil_div(p->nout, BLK);
    bool par = nb > 1 && p->nout * p->nchunk > CGI_PAR_MIN;
    CGI_PAR_FOR(par, b, nb, {
        accs a;
        int64_t ai[BLK], o0 = b * BLK, no = min64(BLK, p->nout - o0);
        for (int64_t j = 0; j < no; j++) fold_chunks(p, pv, pi, o0 + j, &a, ai, j);
        store(p, &a, ai, o0, no, out);
    });
}

static void run_tasks(const plan *p, void *pv, int64_t *pi, cg_tensor *out) {
    int64_t ntask = p->nblk * p->nchunk;
    bool par = ntask > 1 && p->nout * p->nred > CGI_PAR_MIN;
    CGI_PAR_FOR(par, t, ntask, { run_task(p, t, pv, pi, out); });
}

/* Partials of a chunked plan: [nchunk][nout] accumulators (8 bytes each)
 * and, for ARG*, indices; from the output's context arena when it has one
 * (a training step then mallocs nothing). Out of memory: one chunk instead
 * (same values, though a sum may round differently). */
static void *scratch(cg_ctx *ctx, size_t bytes) {
    return ctx ? cgi_arena_alloc(&ctx->arena, bytes) : malloc(bytes);
}

static void alloc_partials(plan *p, cg_ctx *ctx, void **pv, int64_t **pi) {
    size_t n = (size_t)(p->nchunk * p->nout);
    *pv = scratch(ctx, n * sizeof(double));
    *pi = p->arg ? scratch(ctx, n * sizeof **pi) : NULL;
    if (*pv && (*pi || !p->arg)) return;
    if (!ctx) {
        free(*pv);
        free(*pi);
    }
    *pv = NULL;
    *pi = NULL;
    p->nchunk = 1;
}

void cgi_reduced_shape(int ndim, const int64_t *shape, unsigned mask, bool keepdim,
                       int *out_ndim, int64_t *out_shape) {
    int n = 0;
    for (int d = 0; d < ndim; d++) {
        if (!((mask >> d) & 1u))
            out_shape[n++] = shape[d];
        else if (keepdim)
            out_shape[n++] = 1;
    }
    *out_ndim = n;
}

void cgi_reduce(cgi_reduce_op op, const cg_tensor *x, unsigned mask, cg_tensor *out) {
    plan p;
    plan_init(&p, op, x, mask);
    if (p.nout == 0) return;
    if (p.nred == 0) {
        fill_empty(&p, out);
        return;
    }
    plan_schedule(&p);
    void *pv = NULL;
    int64_t *pi = NULL;
    if (p.nchunk > 1) alloc_partials(&p, out->ctx, &pv, &pi);
    run_tasks(&p, pv, pi, out);
    if (pv) combine(&p, pv, pi, out);
    if (!out->ctx) {
        free(pv);
        free(pi);
    }
}
