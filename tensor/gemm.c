/* GEMM on BLIS; the only file that includes blis.h.
 *
 * Every call becomes C[m,n] = alpha * A'[m,k] * B'[k,n] + beta * C, where
 * A' = op(A) and B' = op(B) are described by row/column strides (a transpose
 * is a stride swap, never a copy), and goes to bli_sgemm / bli_dgemm with
 * BLIS_NO_TRANSPOSE. BLIS's stride rule (bli_check_matrix_strides) is, for
 * an m x n matrix with strides rs, cs (m, n > 1): both strides non-zero, and
 * the smaller stride times its dimension at most the larger stride
 * (rs*m <= cs "column tilt" or cs*n <= rs "row tilt"); in particular
 * rs == cs is only allowed for vectors. BLIS aborts the process where it
 * checks the rule (object creation) and 0.9's typed API does not check it at
 * all, so geometry outside the rule is unspecified. Nothing reaches BLIS
 * unchecked:
 *   - the stride of a size-1 dim is meaningless; it is replaced by one BLIS
 *     accepts (1 x n: rs = n*cs; m x 1: cs = m*rs; 1 x 1: rs = cs = 1);
 *   - an input that breaks the rule (a 0 stride from broadcasting, a negative
 *     stride, rows interleaved with columns) is copied to a packed row-major
 *     temporary first;
 *   - an output that breaks it is CG_ERR_ARG, since it would overlap itself
 *     (negative output strides are refused too; tensors never have them).
 * k == 0 and alpha == 0 never reach BLIS: C = beta*C is done here, with
 * beta == 0 writing exact zeros (NaN in C is not propagated, as in BLAS). */
#include "tensor/internal.h"

#include <blis.h>
#include <inttypes.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest |stride| * dim accepted: keeps every offset, also in bytes and
 * summed over dims, far from int64 overflow. */
#define GEMM_SPAN_MAX (INT64_MAX / 64)

/* One matrix: element (i, j) at data + (i*rs + j*cs) elements. */
typedef struct gemm_mat {
    const char *data;
    int64_t rows, cols, rs, cs;
} gemm_mat;

/* What BLIS computes: the whole C (gemm), only C's lower triangle (gemmt,
 * C square), or a product whose A' is triangular (trmm3, A' square: the
 * lower triangle of A, so an upper one when A is transposed). */
typedef enum gemm_kind { GEMM_FULL, GEMM_LOWER_C, GEMM_TRI_A } gemm_kind;

/* Everything decided before the first call into BLIS. */
typedef struct gemm_plan {
    const char *op; /* function named in error messages */
    gemm_kind kind;
    bool a_upper; /* GEMM_TRI_A: A' is upper triangular (A transposed) */
    cg_dtype dt;
    size_t esize;
    int64_t m, n, k;
    double alpha, beta;
    bool empty;          /* m == 0 or n == 0: nothing to do */
    bool scale_only;     /* k == 0 or alpha == 0: C = beta*C, A and B unread */
    gemm_mat a, b, c;    /* A' [m,k], B' [k,n], C [m,n] (c.data unused) */
    bool pack_a, pack_b; /* BLIS cannot take the geometry: use a packed copy */
    void *abuf, *bbuf;   /* the packed copies, row-major; NULL when unused */
} gemm_plan;

static bool fits_blis(int64_t v) { return (int64_t)(dim_t)v == v && (int64_t)(inc_t)v == v; }

/* |s| * dim <= GEMM_SPAN_MAX; the stride of a dim of size <= 1 is ignored. */
static bool span_ok(int64_t dim, int64_t s) {
    if (dim <= 1) return true;
    if (s < -GEMM_SPAN_MAX || s > GEMM_SPAN_MAX) return false;
    return (s < 0 ? -s : s) <= GEMM_SPAN_MAX / dim;
}

/* True when distinct indices reach distinct elements in the simple nested
 * way BLIS requires: dropping size-1 dims and sorting by stride, every
 * stride is positive and at least the previous stride times its dim. For
 * nd == 2 this is exactly BLIS's rule. Needs span_ok on every dim. */
static bool no_overlap(int nd, const int64_t *dim, const int64_t *stride) {
    int64_t d[3], s[3];
    int cnt = 0;
    for (int i = 0; i < nd; i++) {
        if (dim[i] == 0) return true; /* no elements at all */
        if (dim[i] == 1) continue;
        if (stride[i] <= 0) return false;
        int j = cnt++;
        for (; j > 0 && s[j - 1] > stride[i]; j--) {
            s[j] = s[j - 1];
            d[j] = d[j - 1];
        }
        s[j] = stride[i];
        d[j] = dim[i];
    }
    for (int i = 1; i < cnt; i++)
        if (s[i] < s[i - 1] * d[i - 1]) return false;
    return true;
}

static bool mat_ok(const gemm_mat *x) {
    return no_overlap(2, (const int64_t[]){x->rows, x->cols}, (const int64_t[]){x->rs, x->cs});
}

/* The strides BLIS will see: a packed copy is [rows, cols] row-major, and
 * the stride of a size-1 dim gets a value BLIS's rule accepts. */
static gemm_mat blis_view(const gemm_mat *x, const void *packed) {
    gemm_mat v = *x;
    if (packed) {
        v.data = packed;
        v.rs = v.cols;
        v.cs = 1;
    }
    if (v.rows == 1 && v.cols == 1) {
        v.rs = 1;
        v.cs = 1;
    } else if (v.rows == 1) {
        v.rs = v.cols * v.cs;
    } else if (v.cols == 1) {
        v.cs = v.rows * v.rs;
    }
    return v;
}

/* Copies x (any strides, including 0 and negative) into dst as a
 * row-major [rows, cols] matrix. */
static void pack(cg_dtype dt, const gemm_mat *x, void *dst) {
    for (int64_t i = 0; i < x->rows; i++) {
        for (int64_t j = 0; j < x->cols; j++) {
            int64_t from = i * x->rs + j * x->cs, to = i * x->cols + j;
            if (dt == CG_F32)
                ((float *)dst)[to] = ((const float *)x->data)[from];
            else
                ((double *)dst)[to] = ((const double *)x->data)[from];
        }
    }
}

/* C = beta*C element by element (C is m x n at c with p->c's strides). */
static void scale_c(const gemm_plan *p, char *c) {
    if (p->beta == 1.0) return;
    for (int64_t i = 0; i < p->m; i++) {
        int64_t cols = p->kind == GEMM_LOWER_C ? i + 1 : p->n; /* gemmt: j <= i only */
        for (int64_t j = 0; j < cols; j++) {
            int64_t off = i * p->c.rs + j * p->c.cs;
            if (p->dt == CG_F32) {
                float *e = (float *)c + off;
                *e = p->beta == 0.0 ? 0.0f : (float)p->beta * *e;
            } else {
                double *e = (double *)c + off;
                *e = p->beta == 0.0 ? 0.0 : p->beta * *e;
            }
        }
    }
}

/* Below this many multiply-adds (about 10 us on one core) waking BLIS's
 * second thread costs more than it saves: small products of a training step
 * (a [32,128] x [128,10] layer, a 1x1 one) run on one thread. So do those
 * with a short k (< 64) up to 16 times as many: a rank-k update writes a
 * large C for little arithmetic, and a second thread there cost more than it
 * saved, measured in bench_gemm against the direct call on one thread and in
 * bench_train's steps ((a)'s dW [128,784] = [128,32] x [32,784]: step 0.204
 * -> 0.186 ms; the 500 -> 10 layer's dX [500,500]: 50 -> 130 GFLOP/s). */
#define SMALL_GEMM ((int64_t)1 << 20)

/* An operand stored by columns (rs == 1) goes to BLIS as the transpose of a
 * row-stored matrix, the form a caller of BLIS would write: BLIS's small-m
 * path then picks the same kernels as for a direct call (dW of a 500 -> 10
 * layer went from 88% to the direct call's speed). */
typedef struct blis_op {
    trans_t trans;
    inc_t rs, cs;
} blis_op;

static blis_op canonical(const gemm_mat *x) {
    if (x->rs == 1 && x->cs != 1) return (blis_op){BLIS_TRANSPOSE, (inc_t)x->cs, 1};
    return (blis_op){BLIS_NO_TRANSPOSE, (inc_t)x->rs, (inc_t)x->cs};
}

/* A small product with n == 1 (or m == 1) is a matrix-vector product:
 * BLIS's level-2 gemv does it for 0.06 us of overhead where its gemm costs
 * about 6 us (measured), which dominates the step of a tiny model.
 *   n == 1: C[:,0] = alpha A' B'[:,0] + beta C[:,0]
 *   m == 1: C[0,:] = alpha B'^T A'[0,:] + beta C[0,:] */
static bool call_gemv(const gemm_plan *p, const gemm_mat *a, const gemm_mat *b,
                      const gemm_mat *c, char *cd) {
    if (p->n != 1 && p->m != 1) return false;
    bool col = p->n == 1;
    const gemm_mat *mat = col ? a : b, *vec = col ? b : a;
    trans_t t = col ? BLIS_NO_TRANSPOSE : BLIS_TRANSPOSE;
    dim_t rows = (dim_t)(col ? p->m : p->k), cols = (dim_t)(col ? p->k : p->n);
    inc_t incx = (inc_t)(col ? vec->rs : vec->cs), incy = (inc_t)(col ? c->rs : c->cs);
    if (p->dt == CG_F32) {
        float alpha = (float)p->alpha, beta = (float)p->beta;
        bli_sgemv(t, BLIS_NO_CONJUGATE, rows, cols, &alpha, (float *)mat->data, (inc_t)mat->rs,
                  (inc_t)mat->cs, (float *)vec->data, incx, &beta, (float *)cd, incy);
    } else {
        double alpha = p->alpha, beta = p->beta;
        bli_dgemv(t, BLIS_NO_CONJUGATE, rows, cols, &alpha, (double *)mat->data, (inc_t)mat->rs,
                  (inc_t)mat->cs, (double *)vec->data, incx, &beta, (double *)cd, incy);
    }
    return true;
}

/* ---- a packing kernel for BLIS's skx sgemm --------------------------------
 * BLIS copies each operand into panels before its micro-kernel runs. The skx
 * sgemm kernel takes B' in panels of 12 columns, packed by BLIS 0.9's
 * reference 12 x k kernel one element at a time (12 scalar loads and inserts
 * per k). When a panel's 12 rows are contiguous along k (every A of a
 * row-major C = A B^T seen from BLIS's side: activations, attention's
 * queries and probabilities), packing is a transpose; this kernel does it 16
 * x 16 in registers. Measured with BLIS's own kernel and this one on the
 * products of attention's tiles ([128, 64] x [64, 256] and back): 140 -> 168
 * GFLOP/s for P V, 4-20% on the other tile products, 0-5% on the GPT's
 * Linear layers (one core, Zen 5). It is given to BLIS through a copy of
 * its context, which only cgrad's calls use. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define PACK_TARGET __attribute__((target("avx512f")))

/* Transposes the 16 x 16 block r[0..15] (rows) into columns, in place. */
PACK_TARGET static void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
        t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
        t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
        t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
        r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
        r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xdd);
    }
}

/* BLIS's packm_cxk kernel contract (0.9): p[i + j ldp] = kappa a[i inca +
 * j lda] for i < cdim, j < n; zeros in rows cdim..11 and columns n..n_max-1. */
PACK_TARGET static void pack_12xk_f32(conj_t conja, pack_t schema, dim_t cdim, dim_t n,
                                      dim_t n_max, float *restrict kappa, float *restrict a,
                                      inc_t inca, inc_t lda, float *restrict p, inc_t ldp,
                                      cntx_t *restrict cntx) {
    (void)conja, (void)schema, (void)cntx; /* real data; no other state */
    const __mmask16 panel = 0xfff, rows = (__mmask16)((1u << cdim) - 1);
    const __m512 k = _mm512_set1_ps(*kappa);
    dim_t j = 0;
    if (inca == 1) { /* columns contiguous: one masked load per column */
        for (; j < n; j++)
            _mm512_mask_storeu_ps(p + j * ldp, panel,
                                  _mm512_mul_ps(k, _mm512_maskz_loadu_ps(rows, a + j * lda)));
    } else if (lda == 1) { /* rows contiguous: 16 columns at a time, transposed */
        for (; j + 16 <= n; j += 16) {
            __m512 r[16];
            for (dim_t i = 0; i < 16; i++)
                r[i] = i < cdim ? _mm512_mul_ps(k, _mm512_loadu_ps(a + i * inca + j))
                                : _mm512_setzero_ps();
            transpose16(r);
            for (int c = 0; c < 16; c++) _mm512_mask_storeu_ps(p + (j + c) * ldp, panel, r[c]);
        }
    }
    for (; j < n; j++) /* the rest, element by element */
        for (dim_t i = 0; i < 12; i++)
            p[i + j * ldp] = i < cdim ? *kappa * a[i * inca + j * lda] : 0;
    for (; j < n_max; j++) _mm512_mask_storeu_ps(p + j * ldp, panel, _mm512_setzero_ps());
}

/* BLIS's scal2v kernel contract (0.9): y[i incy] = alpha x[i incx] for i <
 * n (real data: conjx changes nothing; alpha 0 writes zeros). BLIS 0.9 has
 * no packing-kernel slot for the skx sgemm's 32-row A' panels (the ids end
 * at 31), so it packs them with scal2m: one scal2v call per column of 32,
 * which the reference kernel runs through its general checks and, for alpha
 * 1, a second call (copyv). Here a column of 32 is two 16-lane loads when
 * contiguous (A' stored by columns: x^T in a weight gradient x^T dy), else
 * 32 loads unrolled (A' stored by rows: W in y = x W^T), each load its own
 * instruction so the CPU's stride prefetcher follows it from column to
 * column. perf of the (h) step, one core, Zen 5: this packing 8.8% of the
 * step with BLIS's kernel, 5.8% with this one. */
PACK_TARGET static void scal2v_f32(conj_t conjx, dim_t n, float *alpha, float *x, inc_t incx,
                                   float *y, inc_t incy, cntx_t *cntx) {
    (void)conjx, (void)cntx;
    const float a = *alpha;
    if (n == 32 && incy == 1 && a != 0) {
#pragma GCC unroll 32
        for (dim_t i = 0; i < 32; i++) y[i] = a * x[i * incx];
        return;
    }
    if (incx == 1 && incy == 1 && a != 0) {
        const __m512 k = _mm512_set1_ps(a);
        dim_t i = 0;
#pragma GCC unroll 2
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(y + i, _mm512_mul_ps(k, _mm512_loadu_ps(x + i)));
        const __mmask16 rest = (__mmask16)((1u << (n - i)) - 1);
        if (i < n)
            _mm512_mask_storeu_ps(y + i, rest,
                                  _mm512_mul_ps(k, _mm512_maskz_loadu_ps(rest, x + i)));
        return;
    }
    for (dim_t i = 0; i < n; i++) y[i * incy] = a == 0 ? 0 : a * x[i * incx];
}

static cntx_t f32_cntx;
static cntx_t *f32_cntx_ready; /* NULL: BLIS's own context */

/* Only where BLIS runs its skx kernels (whose B' panels are 12 wide), which
 * implies AVX-512F (also when the user chose skx with BLIS_ARCH_TYPE). */
static void make_f32_cntx(void) {
    /* The context first: it initialises BLIS, and asking for the arch id
     * before that aborts when BLIS_ARCH_TYPE is set (BLIS 0.9 looks the id
     * up in its still empty kernel structure). */
    const cntx_t *base = bli_gks_query_cntx();
    if (bli_arch_query_id() != BLIS_ARCH_SKX || !__builtin_cpu_supports("avx512f")) return;
    /* BLIS keeps kernels as void * (POSIX: same representation as a
     * function pointer); ISO C has no cast between the two, so copy bytes.
     * Both kernels go into a copy of BLIS's context, used by cgrad's calls
     * only. */
    void (*fn)(conj_t, pack_t, dim_t, dim_t, dim_t, float *, float *, inc_t, inc_t, float *,
               inc_t, cntx_t *) = pack_12xk_f32;
    void_fp fp;
    _Static_assert(sizeof fp == sizeof fn, "function and object pointers differ in size");
    memcpy(&fp, &fn, sizeof fp);
    f32_cntx = *base;
    bli_cntx_set_packm_ker_dt(fp, BLIS_FLOAT, BLIS_PACKM_12XK_KER, &f32_cntx);
    void (*sv)(conj_t, dim_t, float *, float *, inc_t, float *, inc_t, cntx_t *) = scal2v_f32;
    memcpy(&fp, &sv, sizeof fp);
    bli_func_set_dt(fp, BLIS_FLOAT, bli_cntx_l1v_kers_buf(&f32_cntx) + BLIS_SCAL2V_KER);
    f32_cntx_ready = &f32_cntx;
}

static cntx_t *cntx_f32(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_f32_cntx);
    return f32_cntx_ready;
}
#else
static cntx_t *cntx_f32(void) { return NULL; }
#endif

/* BLIS is told the triangle of the A it is given: A' itself, or its
 * transpose when canonical hands A' over transposed. */
static uplo_t tri_uplo(const gemm_plan *p, const blis_op *oa) {
    return p->a_upper != (oa->trans == BLIS_TRANSPOSE) ? BLIS_UPPER : BLIS_LOWER;
}

/* gemmt (C's lower triangle) or trmm3 (A' triangular, from the left). */
static void call_blis_tri(const gemm_plan *p, const gemm_mat *a, const gemm_mat *b,
                          const gemm_mat *c, char *cdata, rntm_t *rntm) {
    blis_op oa = canonical(a), ob = canonical(b);
    dim_t m = (dim_t)p->m, n = (dim_t)p->n, k = (dim_t)p->k;
    inc_t rsc = (inc_t)c->rs, csc = (inc_t)c->cs;
    bool lower_c = p->kind == GEMM_LOWER_C;
    if (p->dt == CG_F32) {
        float alpha = (float)p->alpha, beta = (float)p->beta, *ad = (float *)a->data,
              *bd = (float *)b->data, *cd = (float *)cdata;
        if (lower_c)
            bli_sgemmt_ex(BLIS_LOWER, oa.trans, ob.trans, m, k, &alpha, ad, oa.rs, oa.cs, bd,
                          ob.rs, ob.cs, &beta, cd, rsc, csc, cntx_f32(), rntm);
        else
            bli_strmm3_ex(BLIS_LEFT, tri_uplo(p, &oa), oa.trans, BLIS_NONUNIT_DIAG, ob.trans, m,
                          n, &alpha, ad, oa.rs, oa.cs, bd, ob.rs, ob.cs, &beta, cd, rsc, csc,
                          cntx_f32(), rntm);
    } else {
        double alpha = p->alpha, beta = p->beta, *ad = (double *)a->data,
               *bd = (double *)b->data, *cd = (double *)cdata;
        if (lower_c)
            bli_dgemmt_ex(BLIS_LOWER, oa.trans, ob.trans, m, k, &alpha, ad, oa.rs, oa.cs, bd,
                          ob.rs, ob.cs, &beta, cd, rsc, csc, NULL, rntm);
        else
            bli_dtrmm3_ex(BLIS_LEFT, tri_uplo(p, &oa), oa.trans, BLIS_NONUNIT_DIAG, ob.trans, m,
                          n, &alpha, ad, oa.rs, oa.cs, bd, ob.rs, ob.cs, &beta, cd, rsc, csc,
                          NULL, rntm);
    }
}

static void call_blis(const gemm_plan *p, const gemm_mat *a, const gemm_mat *b,
                      const gemm_mat *c, char *cdata) {
    dim_t m = (dim_t)p->m, n = (dim_t)p->n, k = (dim_t)p->k;
    int64_t macs = p->m * p->n * p->k;
    bool single = macs < SMALL_GEMM || (p->k < 64 && macs < 16 * SMALL_GEMM);
    rntm_t rn = BLIS_RNTM_INITIALIZER, *rntm = &rn; /* this call's count, never the global */
    /* inside one of cgrad's parallel regions BLIS's own would be nested,
     * and so get one thread anyway: ask for one */
    bli_rntm_set_num_threads(single || omp_in_parallel() ? 1 : cg_get_num_threads(), &rn);
    if (p->kind != GEMM_FULL) {
        call_blis_tri(p, a, b, c, cdata, rntm);
        return;
    }
    if (single && call_gemv(p, a, b, c, cdata)) return;
    blis_op oa = canonical(a), ob = canonical(b);
    if (p->dt == CG_F32) {
        float alpha = (float)p->alpha, beta = (float)p->beta;
        bli_sgemm_ex(oa.trans, ob.trans, m, n, k, &alpha, (float *)a->data, oa.rs, oa.cs,
                     (float *)b->data, ob.rs, ob.cs, &beta, (float *)cdata, (inc_t)c->rs,
                     (inc_t)c->cs, cntx_f32(), rntm);
    } else {
        double alpha = p->alpha, beta = p->beta;
        bli_dgemm_ex(oa.trans, ob.trans, m, n, k, &alpha, (double *)a->data, oa.rs, oa.cs,
                     (double *)b->data, ob.rs, ob.cs, &beta, (double *)cdata, (inc_t)c->rs,
                     (inc_t)c->cs, NULL, rntm);
    }
}

/* ---- validation ---------------------------------------------------------- */

static cg_status check_sizes(const gemm_plan *p) {
    if (p->dt != CG_F32 && p->dt != CG_F64)
        return cgi_error(NULL, CG_ERR_DTYPE, "%s: dtype %s not supported (f32, f64)", p->op,
                         cg_dtype_name(p->dt));
    if (p->m < 0 || p->n < 0 || p->k < 0)
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: negative size m=%" PRId64 " n=%" PRId64 " k=%" PRId64, p->op,
                         p->m, p->n, p->k);
    if (!fits_blis(p->m) || !fits_blis(p->n) || !fits_blis(p->k))
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: size m=%" PRId64 " n=%" PRId64 " k=%" PRId64
                         " too large for BLIS",
                         p->op, p->m, p->n, p->k);
    return CG_OK;
}

static cg_status bad_strides(const gemm_plan *p, const char *name, const gemm_mat *x,
                             const char *why) {
    return cgi_error(NULL, CG_ERR_ARG,
                     "%s: %s strides (%" PRId64 ", %" PRId64 ") %s for shape [%" PRId64
                     ",%" PRId64 "]",
                     p->op, name, x->rs, x->cs, why, x->rows, x->cols);
}

/* C must be writable by BLIS as is: present, in range, not overlapping. */
static cg_status check_output(const gemm_plan *p, const void *c) {
    if (c == NULL) return cgi_error(NULL, CG_ERR_ARG, "%s: C is NULL", p->op);
    if (!span_ok(p->m, p->c.rs) || !span_ok(p->n, p->c.cs))
        return bad_strides(p, "C", &p->c, "out of range");
    if (!mat_ok(&p->c)) return bad_strides(p, "C", &p->c, "overlap or are not positive");
    return CG_OK;
}

/* An input is only range-checked; a geometry BLIS refuses is packed. */
static cg_status check_input(const gemm_plan *p, const char *name, const gemm_mat *x,
                             bool *pack_it) {
    if (!span_ok(x->rows, x->rs) || !span_ok(x->cols, x->cs))
        return bad_strides(p, name, x, "out of range");
    *pack_it = false;
    if (p->scale_only) return CG_OK; /* not read */
    if (x->data == NULL) return cgi_error(NULL, CG_ERR_ARG, "%s: %s is NULL", p->op, name);
    *pack_it = !mat_ok(x);
    return CG_OK;
}

/* Fills p from cgi_gemm's arguments: A' is op(A) with strides swapped when
 * transposed. The caller checks sizes first. */
static void plan_fill(gemm_plan *p, bool transa, bool transb, cgi_mat a, cgi_mat b, int64_t rsc,
                      int64_t csc) {
    p->esize = cg_dtype_size(p->dt);
    p->empty = p->m == 0 || p->n == 0;
    p->scale_only = p->k == 0 || p->alpha == 0.0;
    p->a = (gemm_mat){a.data, p->m, p->k, transa ? a.cs : a.rs, transa ? a.rs : a.cs};
    p->b = (gemm_mat){b.data, p->k, p->n, transb ? b.cs : b.rs, transb ? b.rs : b.cs};
    p->c = (gemm_mat){NULL, p->m, p->n, rsc, csc};
    p->pack_a = p->pack_b = false;
    p->abuf = p->bbuf = NULL;
}

/* Validates everything cgi_gemm and cgi_gemm_batched share. */
static cg_status plan_check(gemm_plan *p, const void *c) {
    cg_status st = check_sizes(p);
    if (st != CG_OK || p->empty) return st;
    if ((st = check_output(p, c)) != CG_OK) return st;
    if ((st = check_input(p, "A", &p->a, &p->pack_a)) != CG_OK) return st;
    return check_input(p, "B", &p->b, &p->pack_b);
}

/* ---- execution ----------------------------------------------------------- */

/* malloc for a packed [rows, cols] copy; NULL on overflow or no memory. */
static void *alloc_packed(size_t esize, int64_t rows, int64_t cols) {
    if ((uint64_t)rows > SIZE_MAX / esize / (uint64_t)cols) return NULL;
    return malloc((size_t)rows * (size_t)cols * esize);
}

static cg_status plan_alloc(gemm_plan *p) {
    if (p->pack_a && !(p->abuf = alloc_packed(p->esize, p->m, p->k)))
        return cgi_error(NULL, CG_ERR_NOMEM,
                         "%s: no memory to pack A [%" PRId64 ",%" PRId64 "]", p->op, p->m,
                         p->k);
    if (p->pack_b && !(p->bbuf = alloc_packed(p->esize, p->k, p->n)))
        return cgi_error(NULL, CG_ERR_NOMEM,
                         "%s: no memory to pack B [%" PRId64 ",%" PRId64 "]", p->op, p->k,
                         p->n);
    return CG_OK;
}

static void plan_free(gemm_plan *p) {
    free(p->abuf);
    free(p->bbuf);
    p->abuf = p->bbuf = NULL;
}

/* One GEMM with operands offset by aoff, boff, coff elements from the plan's
 * bases. A packed copy is refreshed only when repack says its source moved. */
static void run_one(gemm_plan *p, int64_t aoff, int64_t boff, char *c, bool repack) {
    if (p->scale_only) {
        scale_c(p, c);
        return;
    }
    gemm_mat a = p->a, b = p->b;
    a.data += aoff * (int64_t)p->esize;
    b.data += boff * (int64_t)p->esize;
    if (p->pack_a && (repack || aoff != 0)) pack(p->dt, &a, p->abuf);
    if (p->pack_b && (repack || boff != 0)) pack(p->dt, &b, p->bbuf);
    gemm_mat va = blis_view(&a, p->abuf), vb = blis_view(&b, p->bbuf);
    gemm_mat vc = blis_view(&p->c, NULL);
    /* Every argument was checked before this (BLIS aborts where it checks),
     * so BLIS's own checks are skipped for the call: about 0.6 us of the 4
     * a small product costs (attention's tiles; measured on one core). BLIS
     * 0.9 keeps the level per thread; it is put back. */
    errlev_t level = bli_error_checking_level();
    bli_error_checking_level_set(BLIS_NO_ERROR_CHECKING);
    call_blis(p, &va, &vb, &vc, c);
    bli_error_checking_level_set(level);
}

/* Each BLIS call is given cgrad's thread count (cg_get_num_threads, which
 * may change from call to call: see tensor/threads.c) in its own rntm_t;
 * BLIS alone would run on one thread unless BLIS_NUM_THREADS is set
 * (measured: 1024^3 f32 on 2 cores, 36 -> 72 GFLOP/s with both). */

/* BLIS picks its kernels once, at its first call, from the CPU it recognises;
 * BLIS 0.9 does not know AMD Zen 5 (family 26) and falls back to its generic
 * kernels: 37 GFLOP/s per core for 1024^3 f32, against 203 with its AVX-512
 * (skx) kernels and 108 with its AVX2 ones, measured on this machine. So on a
 * CPU with the AVX-512 subsets skx needs, and unless the user already chose
 * with BLIS_ARCH_TYPE, select skx before BLIS starts (an unknown id would
 * make BLIS abort, so only this one is ever set). CPUs without AVX-512 keep
 * BLIS's own choice. */
static void choose_kernels(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static atomic_int done;
    if (atomic_exchange(&done, 1) || getenv("BLIS_ARCH_TYPE")) return;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
        char id[16];
        snprintf(id, sizeof id, "%d", (int)BLIS_ARCH_SKX);
        setenv("BLIS_ARCH_TYPE", id, 0);
    }
#endif
}

/* Made at program start, before a program's own first BLIS call (BLIS reads
 * BLIS_ARCH_TYPE once, when it initialises); every path into BLIS checks it
 * again (a constructor of another library could call BLIS first). */
__attribute__((constructor)) static void choose_kernels_at_start(void) { choose_kernels(); }

/* One product of a filled plan: checked, then run. */
static cg_status run_plan(gemm_plan *p, void *c) {
    cg_status st = plan_check(p, c);
    if (st != CG_OK || p->empty) return st;
    choose_kernels();
    if ((st = plan_alloc(p)) == CG_OK) run_one(p, 0, 0, c, true);
    plan_free(p);
    return st;
}

cg_status cgi_gemm(cg_dtype dt, bool transa, bool transb, int64_t m, int64_t n, int64_t k,
                   double alpha, cgi_mat a, cgi_mat b, double beta, void *c, int64_t rsc,
                   int64_t csc) {
    gemm_plan p = {
        .op = "cgi_gemm", .dt = dt, .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta};
    plan_fill(&p, transa, transb, a, b, rsc, csc);
    return run_plan(&p, c);
}

cg_status cgi_gemm_lower(cg_dtype dt, bool transa, bool transb, int64_t m, int64_t k,
                         double alpha, cgi_mat a, cgi_mat b, double beta, void *c, int64_t rsc,
                         int64_t csc) {
    gemm_plan p = {.op = "cgi_gemm_lower",
                   .kind = GEMM_LOWER_C,
                   .dt = dt,
                   .m = m,
                   .n = m,
                   .k = k,
                   .alpha = alpha,
                   .beta = beta};
    plan_fill(&p, transa, transb, a, b, rsc, csc);
    return run_plan(&p, c);
}

cg_status cgi_trmm_lower(cg_dtype dt, bool transa, int64_t m, int64_t n, double alpha,
                         cgi_mat a, cgi_mat b, double beta, void *c, int64_t rsc, int64_t csc) {
    gemm_plan p = {.op = "cgi_trmm_lower",
                   .kind = GEMM_TRI_A,
                   .a_upper = transa,
                   .dt = dt,
                   .m = m,
                   .n = n,
                   .k = m,
                   .alpha = alpha,
                   .beta = beta};
    plan_fill(&p, transa, false, a, b, rsc, csc);
    return run_plan(&p, c);
}

/* Batch strides: in range for batch steps, and C's batches must not overlap
 * each other or themselves (the 3-d [batch, m, n] geometry is checked). */
static cg_status check_batch(const gemm_plan *p, int64_t batch, int64_t bsa, int64_t bsb,
                             int64_t bsc) {
    if (!span_ok(batch, bsa) || !span_ok(batch, bsb) || !span_ok(batch, bsc))
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: batch strides (%" PRId64 ", %" PRId64 ", %" PRId64
                         ") out of range for batch %" PRId64,
                         p->op, bsa, bsb, bsc, batch);
    int64_t dims[3] = {batch, p->m, p->n};
    int64_t strides[3] = {bsc < 0 ? -bsc : bsc, p->c.rs, p->c.cs};
    if (!no_overlap(3, dims, strides))
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: C batch stride %" PRId64 " makes batches of [%" PRId64 ",%" PRId64
                         "] (strides %" PRId64 ", %" PRId64 ") overlap",
                         p->op, bsc, p->m, p->n, p->c.rs, p->c.cs);
    return CG_OK;
}

cg_status cgi_gemm_batched(cg_dtype dt, bool transa, bool transb, int64_t batch, int64_t m,
                           int64_t n, int64_t k, double alpha, cgi_mat a, int64_t bsa,
                           cgi_mat b, int64_t bsb, double beta, void *c, int64_t rsc,
                           int64_t csc, int64_t bsc) {
    gemm_plan p = {.op = "cgi_gemm_batched",
                   .dt = dt,
                   .m = m,
                   .n = n,
                   .k = k,
                   .alpha = alpha,
                   .beta = beta};
    if (batch < 0)
        return cgi_error(NULL, CG_ERR_ARG, "cgi_gemm_batched: negative batch %" PRId64, batch);
    plan_fill(&p, transa, transb, a, b, rsc, csc);
    p.empty = p.empty || batch == 0; /* nothing is touched: only sizes checked */
    cg_status st = plan_check(&p, c);
    if (st != CG_OK || p.empty) return st;
    if ((st = check_batch(&p, batch, bsa, bsb, bsc)) != CG_OK) return st;
    choose_kernels();
    if ((st = plan_alloc(&p)) == CG_OK) {
        for (int64_t i = 0; i < batch; i++)
            run_one(&p, i * bsa, i * bsb, (char *)c + i * bsc * (int64_t)p.esize, i == 0);
    }
    plan_free(&p);
    return st;
}

#if defined(__GNUC__)
/* BLIS keeps its packing pools until bli_finalize, which nothing calls on
 * exit; valgrind then reports them as lost. Release them at exit (or
 * dlclose). BLIS re-initialises itself if it is called again afterwards. */
__attribute__((destructor)) static void gemm_release_blis(void) { bli_finalize(); }
#endif
