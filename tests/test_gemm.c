/* cgi_gemm / cgi_gemm_batched against a naive float64 triple loop, over
 * shapes, transposes, strided / broadcast / overlapping operands, and the
 * error paths (which must return a status, never reach BLIS). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tensor/internal.h"
#include "cgrad.h"

#include <blis.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------- */

/* Small deterministic RNG (64-bit LCG): uniform in [-1, 1). */
typedef struct lcg {
    uint64_t s;
} lcg;

static double lcg_next(lcg *r) {
    r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(r->s >> 11) / 4503599627370496.0 - 1.0; /* 2^52 */
}

static double get(cg_dtype dt, const void *base, int64_t off) {
    return dt == CG_F32 ? (double)((const float *)base)[off] : ((const double *)base)[off];
}

static void put(cg_dtype dt, void *base, int64_t off, double v) {
    if (dt == CG_F32)
        ((float *)base)[off] = (float)v;
    else
        ((double *)base)[off] = v;
}

/* A stored matrix: rows x cols with strides, inside buf at origin (so that
 * negative strides stay inside the buffer). */
typedef struct smat {
    int64_t rows, cols, rs, cs;
    int64_t origin, len; /* elements before (0,0); buffer length */
    char *buf;
} smat;

/* Strides 0,0 mean contiguous row-major unless literal. The buffer gets
 * slack at the end and is filled with random values (or NaN). */
static smat smat_new(cg_dtype dt, int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                     bool literal, lcg *r, bool nan_fill) {
    smat x = {rows, cols, rs, cs, 0, 0, NULL};
    if (rs == 0 && cs == 0 && !literal) {
        x.rs = cols;
        x.cs = 1;
    }
    int64_t lo = 0, hi = 0;
    if (rows > 0 && cols > 0) {
        lo = (x.rs < 0 ? (rows - 1) * x.rs : 0) + (x.cs < 0 ? (cols - 1) * x.cs : 0);
        hi = (x.rs > 0 ? (rows - 1) * x.rs : 0) + (x.cs > 0 ? (cols - 1) * x.cs : 0);
    }
    x.origin = -lo;
    x.len = hi - lo + 1 + 3;
    x.buf = malloc((size_t)x.len * cg_dtype_size(dt));
    assert_non_null(x.buf);
    for (int64_t i = 0; i < x.len; i++) put(dt, x.buf, i, nan_fill ? NAN : lcg_next(r));
    return x;
}

static void *smat_ptr(cg_dtype dt, const smat *x) {
    return x->buf + x->origin * (int64_t)cg_dtype_size(dt);
}

static cgi_mat smat_mat(cg_dtype dt, const smat *x) {
    return (cgi_mat){smat_ptr(dt, x), x->rs, x->cs};
}

/* One test case: C = alpha*op(A)*op(B) + beta*C with explicit strides for
 * the stored A (k x m if ta), B (n x k if tb) and C; 0,0 = contiguous. */
typedef struct gcase {
    cg_dtype dt;
    bool ta, tb;
    int64_t m, n, k;
    double alpha, beta;
    int64_t rsa, csa, rsb, csb, rsc, csc;
    bool literal; /* strides 0,0 mean a broadcast scalar, not contiguous */
    bool c_nan;   /* C starts as NaN garbage */
} gcase;

/* Naive reference in float64: ref[i*n+j] and a magnitude for tolerances. */
static void reference(const gcase *tc, const smat *a, const smat *b, const smat *c,
                      const void *c0, double *ref, double *mag) {
    for (int64_t i = 0; i < tc->m; i++) {
        for (int64_t j = 0; j < tc->n; j++) {
            double s = 0, sabs = 0;
            for (int64_t p = 0; p < tc->k; p++) {
                int64_t ao = tc->ta ? p * a->rs + i * a->cs : i * a->rs + p * a->cs;
                int64_t bo = tc->tb ? j * b->rs + p * b->cs : p * b->rs + j * b->cs;
                double av = get(tc->dt, smat_ptr(tc->dt, a), ao);
                double bv = get(tc->dt, smat_ptr(tc->dt, b), bo);
                s += av * bv;
                sabs += fabs(av * bv);
            }
            double cv = tc->beta == 0 ? 0 : get(tc->dt, c0, i * c->rs + j * c->cs);
            ref[i * tc->n + j] = tc->alpha * s + tc->beta * cv;
            mag[i * tc->n + j] = fabs(tc->alpha) * sabs + fabs(tc->beta * cv) + 1e-30;
        }
    }
}

/* Every element of C's buffer that is not part of C is unchanged. */
static void check_untouched(const gcase *tc, const smat *c, const char *before) {
    size_t es = cg_dtype_size(tc->dt);
    char *mask = calloc((size_t)c->len, 1);
    assert_non_null(mask);
    for (int64_t i = 0; i < tc->m; i++)
        for (int64_t j = 0; j < tc->n; j++) mask[c->origin + i * c->rs + j * c->cs] = 1;
    for (int64_t e = 0; e < c->len; e++)
        if (!mask[e])
            assert_memory_equal(c->buf + e * (int64_t)es, before + e * (int64_t)es, es);
    free(mask);
}

/* C against ref on j < cols(i): all n, or i + 1 for a lower C (gemmt). */
static void compare(const gcase *tc, const smat *c, const double *ref, const double *mag,
                    bool lower) {
    double tol = (tc->dt == CG_F32 ? 1e-5 : 1e-12) * (double)(tc->k + 1);
    for (int64_t i = 0; i < tc->m; i++) {
        for (int64_t j = 0; j < (lower ? i + 1 : tc->n); j++) {
            double got = get(tc->dt, smat_ptr(tc->dt, c), i * c->rs + j * c->cs);
            double want = ref[i * tc->n + j];
            if (!(fabs(got - want) <= tol * mag[i * tc->n + j]))
                fail_msg("C[%lld,%lld] = %.17g, want %.17g (m=%lld n=%lld k=%lld)",
                         (long long)i, (long long)j, got, want, (long long)tc->m,
                         (long long)tc->n, (long long)tc->k);
        }
    }
}

static void run_case(const gcase *tc, uint64_t seed) {
    lcg r = {seed};
    bool lit = tc->literal;
    smat a = tc->ta ? smat_new(tc->dt, tc->k, tc->m, tc->rsa, tc->csa, lit, &r, false)
                    : smat_new(tc->dt, tc->m, tc->k, tc->rsa, tc->csa, lit, &r, false);
    smat b = tc->tb ? smat_new(tc->dt, tc->n, tc->k, tc->rsb, tc->csb, lit, &r, false)
                    : smat_new(tc->dt, tc->k, tc->n, tc->rsb, tc->csb, lit, &r, false);
    smat c = smat_new(tc->dt, tc->m, tc->n, tc->rsc, tc->csc, lit, &r, tc->c_nan);
    size_t cbytes = (size_t)c.len * cg_dtype_size(tc->dt);
    char *before = malloc(cbytes);
    size_t mn = (size_t)(tc->m * tc->n) + 1;
    double *ref = malloc(mn * sizeof *ref), *mag = malloc(mn * sizeof *mag);
    assert_true(before && ref && mag);
    memcpy(before, c.buf, cbytes);
    reference(tc, &a, &b, &c, before + c.origin * (int64_t)cg_dtype_size(tc->dt), ref, mag);
    assert_int_equal(cgi_gemm(tc->dt, tc->ta, tc->tb, tc->m, tc->n, tc->k, tc->alpha,
                              smat_mat(tc->dt, &a), smat_mat(tc->dt, &b), tc->beta,
                              smat_ptr(tc->dt, &c), c.rs, c.cs),
                     CG_OK);
    compare(tc, &c, ref, mag, false);
    check_untouched(tc, &c, before);
    free(before);
    free(ref);
    free(mag);
    free(a.buf);
    free(b.buf);
    free(c.buf);
}

/* Runs tc for both dtypes and all four transpose combinations. */
static void run_all(gcase tc, uint64_t seed) {
    for (int d = 0; d < 2; d++) {
        for (int t = 0; t < 4; t++) {
            tc.dt = d ? CG_F64 : CG_F32;
            tc.ta = t & 1;
            tc.tb = (t >> 1) & 1;
            run_case(&tc, seed + (uint64_t)(d * 4 + t));
        }
    }
}

static gcase shape(int64_t m, int64_t n, int64_t k) {
    return (gcase){.dt = CG_F64, .m = m, .n = n, .k = k, .alpha = 1, .beta = 0};
}

/* ---- shapes -------------------------------------------------------------- */

/* f32 panels: sizes around BLIS's skx panel widths (12 and 32) and the
 * 16-lane steps of cgrad's packing kernels (tensor/gemm.c), every
 * transpose, rows padded (a long stride between panel rows), kappa = alpha
 * 1 and not 1, m and n from the first `sizes` of mn. */
static void panel_cases(size_t sizes, uint64_t seed) {
    const int64_t mn[] = {13, 1, 11, 12, 24, 29, 40, 70}, ks[] = {17, 1, 15, 16, 47};
    for (size_t i = 0; i < sizes; i++)
        for (size_t j = 0; j < sizes; j++)
            for (size_t l = 0; l < 5; l++)
                for (int t = 0; t < 8; t++) {
                    gcase tc = shape(mn[i], mn[j], ks[l]);
                    tc.dt = CG_F32, tc.ta = t & 1, tc.tb = (t >> 1) & 1;
                    tc.alpha = t & 4 ? 0.5 : 1, tc.beta = t & 4 ? 0.25 : 0;
                    if (t & 4) { /* rows padded by 5 */
                        tc.rsa = (tc.ta ? tc.m : tc.k) + 5, tc.csa = 1;
                        tc.rsb = (tc.tb ? tc.k : tc.n) + 5, tc.csb = 1;
                    }
                    run_case(&tc, seed++);
                }
}

/* Listed first in main: its first product is then the process's first call
 * into BLIS (making the packing context there once aborted the process when
 * BLIS_ARCH_TYPE was set). Panels crossing 32 rows (cgrad's scal2v kernel)
 * only where BLIS runs skx: with its AVX2 kernels (as under valgrind, whose
 * CPU has no AVX-512) BLIS 0.9's small-matrix (sup) kernels read a few
 * bytes outside B for some of those shapes (flame/blis#635, fixed after
 * 0.9.0). */
static void test_gemm_f32_panel_packing(void **state) {
    (void)state;
    panel_cases(6, 1000);
    if (bli_arch_query_id() == BLIS_ARCH_SKX) panel_cases(8, 3000);
}

static void test_gemm_square(void **state) {
    (void)state;
    const int64_t sizes[] = {1, 2, 3, 7, 16, 33, 64, 129};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        run_all(shape(sizes[i], sizes[i], sizes[i]), 100 + i);
}

static void test_gemm_rectangular(void **state) {
    (void)state;
    run_all(shape(3, 5, 7), 1);
    run_all(shape(17, 4, 9), 2);
    run_all(shape(64, 31, 128), 3);
    run_all(shape(200, 150, 70), 4);
}

static void test_gemm_vector_shapes(void **state) {
    (void)state;
    run_all(shape(1, 9, 5), 10);  /* 1 x N */
    run_all(shape(9, 1, 5), 11);  /* N x 1 */
    run_all(shape(1, 1, 1), 12);  /* 1 x 1 */
    run_all(shape(1, 1, 40), 13); /* dot product */
    run_all(shape(8, 6, 1), 14);  /* k = 1: outer product */
    run_all(shape(1, 6, 1), 15);
    run_all(shape(6, 1, 1), 16);
}

/* m or n == 0: nothing is written; k == 0: C = beta*C. */
static void test_gemm_zero_sizes(void **state) {
    (void)state;
    run_all(shape(0, 5, 3), 20);
    run_all(shape(5, 0, 3), 21);
    run_all(shape(0, 0, 0), 22);
    gcase tc = shape(4, 3, 0);
    tc.beta = 0.5;
    run_all(tc, 23);
    tc.beta = 1.0;
    run_all(tc, 24);
    tc.beta = 0.0;
    tc.c_nan = true;
    run_all(tc, 25); /* exact zeros, NaN not propagated */
}

/* ---- scalars ------------------------------------------------------------- */

static void test_gemm_alpha_beta(void **state) {
    (void)state;
    const double ab[][2] = {{2.5, 0}, {-1, 1}, {0.5, -2}, {1, 0.25}, {3, 1}};
    for (size_t i = 0; i < sizeof ab / sizeof *ab; i++) {
        gcase tc = shape(13, 11, 9);
        tc.alpha = ab[i][0];
        tc.beta = ab[i][1];
        run_all(tc, 30 + i);
    }
}

/* beta == 0 overwrites C: NaN garbage must not leak into the result. */
static void test_gemm_beta_zero_ignores_nan(void **state) {
    (void)state;
    gcase tc = shape(10, 12, 7);
    tc.c_nan = true;
    run_all(tc, 40);
    tc = shape(70, 90, 50);
    tc.c_nan = true;
    tc.alpha = -2;
    run_all(tc, 41);
}

/* alpha == 0: C = beta*C without multiplying (BLAS semantics). */
static void test_gemm_alpha_zero(void **state) {
    (void)state;
    gcase tc = shape(5, 6, 7);
    tc.alpha = 0;
    tc.beta = -3;
    run_all(tc, 50);
    tc.beta = 0;
    tc.c_nan = true;
    run_all(tc, 51);
}

/* ---- strided operands ---------------------------------------------------- */

/* Every other column / row of a bigger buffer, row pitch larger than cols,
 * column-major storage: all plain strided views BLIS takes directly. */
static void test_gemm_strided_operands(void **state) {
    (void)state;
    gcase tc = shape(6, 5, 4);
    tc.rsa = 20, tc.csa = 2; /* every other column of a wider buffer */
    tc.rsb = 1, tc.csb = 9;  /* column-major with padding */
    run_all(tc, 60);
    tc = shape(7, 9, 8);
    tc.rsa = 2, tc.csa = 30; /* every other row, column-major */
    tc.rsb = 40, tc.csb = 3;
    tc.rsc = 1, tc.csc = 10; /* column-major C with padding */
    run_all(tc, 61);
    tc = shape(40, 33, 50);
    tc.rsa = 100, tc.csa = 1;
    tc.rsb = 2, tc.csb = 200;
    tc.rsc = 70, tc.csc = 2; /* C: every other column of a wider buffer */
    run_all(tc, 62);
}

/* A transposed view expressed only by strides (ta false), versus the same
 * storage with ta true: both must match the reference. */
static void test_gemm_transposed_view_strides(void **state) {
    (void)state;
    for (int t = 0; t < 2; t++) {
        gcase tc = shape(5, 7, 6);
        tc.dt = t ? CG_F64 : CG_F32;
        tc.rsa = 1, tc.csa = 5; /* A^T of a contiguous [6,5] buffer */
        tc.rsb = 1, tc.csb = 6; /* B^T of a contiguous [7,6] buffer */
        run_case(&tc, 70 + (uint64_t)t);
    }
}

/* Strides of size-1 dims are meaningless: any value (0, huge, equal to the
 * other) must work. */
static void test_gemm_size1_dims_any_stride(void **state) {
    (void)state;
    gcase tc = shape(1, 8, 5);
    tc.rsa = 0, tc.csa = 1;
    tc.rsb = 8, tc.csb = 1;
    tc.rsc = 1, tc.csc = 1; /* 1 x 8 C with rs == cs == 1 */
    run_all(tc, 80);
    tc = shape(8, 1, 5);
    tc.rsc = 1, tc.csc = 0; /* 8 x 1 C with a 0 column stride */
    tc.rsb = 1, tc.csb = 1000000;
    run_all(tc, 81);
    tc = shape(1, 1, 5);
    tc.rsc = 7, tc.csc = 7;
    run_all(tc, 82);
}

/* A 0 stride (a broadcast operand) is packed before BLIS sees it. */
static void test_gemm_broadcast_zero_stride(void **state) {
    (void)state;
    gcase tc = shape(6, 5, 4);
    tc.rsa = 0, tc.csa = 1; /* every row of A the same */
    run_all(tc, 90);
    tc.literal = true;
    tc.rsa = 0, tc.csa = 0; /* A a broadcast scalar */
    tc.rsb = 1, tc.csb = 0; /* every column of B the same */
    tc.rsc = 5, tc.csc = 1;
    run_all(tc, 91);
    tc = shape(80, 70, 60);
    tc.rsb = 0, tc.csb = 1;
    tc.beta = 0.5;
    run_all(tc, 92);
}

/* Overlapping or negative input strides (legal to read) are packed. */
static void test_gemm_overlapping_input_strides(void **state) {
    (void)state;
    gcase tc = shape(5, 6, 4);
    tc.rsa = 2, tc.csa = 3; /* rows and columns interleave */
    tc.rsb = 1, tc.csb = 1; /* sliding window: B[p][j] = buf[p + j] */
    run_all(tc, 100);
    tc.rsa = -4, tc.csa = 1; /* rows in reverse */
    tc.rsb = 6, tc.csb = -1;
    run_all(tc, 101);
}

/* ---- batched ------------------------------------------------------------- */

typedef struct bcase {
    cg_dtype dt;
    bool ta, tb;
    int64_t batch, m, n, k;
    int64_t bsa, bsb;  /* 0 reuses the operand, else one contiguous matrix each */
    bool interleave_c; /* C as [m, batch, n] memory viewed as [batch, m, n] */
} bcase;

static void check_batch_result(const bcase *bc, const double *a, const double *b, const void *c,
                               int64_t rsc, int64_t csc, int64_t bsc, const double *c0) {
    double tol = (bc->dt == CG_F32 ? 1e-5 : 1e-12) * (double)(bc->k + 1);
    for (int64_t q = 0; q < bc->batch; q++)
        for (int64_t i = 0; i < bc->m; i++)
            for (int64_t j = 0; j < bc->n; j++) {
                double s = 0, sabs = 0;
                const double *aq = a + q * bc->bsa, *bq = b + q * bc->bsb;
                for (int64_t p = 0; p < bc->k; p++) {
                    double av = bc->ta ? aq[p * bc->m + i] : aq[i * bc->k + p];
                    double bv = bc->tb ? bq[j * bc->k + p] : bq[p * bc->n + j];
                    s += av * bv;
                    sabs += fabs(av * bv);
                }
                int64_t off = q * bsc + i * rsc + j * csc;
                double want = 2.0 * s - c0[off], got = get(bc->dt, c, off);
                assert_true(fabs(got - want) <= tol * (2 * sabs + fabs(c0[off]) + 1e-30));
            }
}

/* C = 2*op(A_q)*op(B_q) - C_q for every q. */
static void run_batch(const bcase *bc, uint64_t seed) {
    lcg r = {seed};
    size_t es = cg_dtype_size(bc->dt);
    int64_t mk = bc->m * bc->k, kn = bc->k * bc->n, mn = bc->m * bc->n;
    int64_t na = (bc->batch - 1) * bc->bsa + mk, nb = (bc->batch - 1) * bc->bsb + kn;
    int64_t nc = bc->batch * mn;
    double *ad = malloc((size_t)na * sizeof *ad), *bd = malloc((size_t)nb * sizeof *bd);
    double *c0 = malloc((size_t)nc * sizeof *c0);
    char *a = malloc((size_t)na * es), *b = malloc((size_t)nb * es),
         *c = malloc((size_t)nc * es);
    assert_true(ad && bd && c0 && a && b && c);
    /* Values representable in f32, so the f64 copies are exact for both. */
    for (int64_t i = 0; i < na; i++) put(bc->dt, a, i, ad[i] = (double)(float)lcg_next(&r));
    for (int64_t i = 0; i < nb; i++) put(bc->dt, b, i, bd[i] = (double)(float)lcg_next(&r));
    for (int64_t i = 0; i < nc; i++) put(bc->dt, c, i, c0[i] = (double)(float)lcg_next(&r));
    int64_t rsc = bc->interleave_c ? bc->batch * bc->n : bc->n;
    int64_t bsc = bc->interleave_c ? bc->n : mn;
    cgi_mat am = {a, bc->ta ? bc->m : bc->k, 1}, bm = {b, bc->tb ? bc->k : bc->n, 1};
    assert_int_equal(cgi_gemm_batched(bc->dt, bc->ta, bc->tb, bc->batch, bc->m, bc->n, bc->k,
                                      2.0, am, bc->bsa, bm, bc->bsb, -1.0, c, rsc, 1, bsc),
                     CG_OK);
    check_batch_result(bc, ad, bd, c, rsc, 1, bsc, c0);
    free(ad);
    free(bd);
    free(c0);
    free(a);
    free(b);
    free(c);
}

static void test_gemm_batched(void **state) {
    (void)state;
    for (int d = 0; d < 2; d++)
        for (int t = 0; t < 4; t++) {
            cg_dtype dt = d ? CG_F64 : CG_F32;
            bool ta = t & 1, tb = t >> 1;
            bcase plain = {dt, ta, tb, 4, 5, 6, 7, 35, 42, false};
            run_batch(&plain, 200 + (uint64_t)t);
            bcase reuse_a = {dt, ta, tb, 3, 5, 6, 7, 0, 42, false};
            run_batch(&reuse_a, 210 + (uint64_t)t);
            bcase reuse_b = {dt, ta, tb, 3, 5, 6, 7, 35, 0, true};
            run_batch(&reuse_b, 220 + (uint64_t)t);
            bcase one = {dt, ta, tb, 1, 1, 1, 3, 0, 0, false};
            run_batch(&one, 230 + (uint64_t)t);
        }
}

/* A broadcast (0-stride) operand shared by all batches is packed once and
 * reused; a per-batch one is repacked each time. */
static void test_gemm_batched_packed_operands(void **state) {
    (void)state;
    double a[2 * 3] = {1, 2, 3, 4, 5, 6}; /* two [1,3] rows, broadcast to [2,3] */
    double b[3 * 2] = {1, 0, 0, 1, 1, 1}; /* [3,2], shared */
    double c[2 * 2 * 2];
    memset(c, 0, sizeof c);
    cgi_mat am = {a, 0, 1}, bm = {b, 2, 1};
    assert_int_equal(
        cgi_gemm_batched(CG_F64, false, false, 2, 2, 2, 3, 1.0, am, 3, bm, 0, 0.0, c, 2, 1, 4),
        CG_OK);
    const double want[8] = {4, 5, 4, 5, 10, 11, 10, 11};
    for (int i = 0; i < 8; i++) assert_true(c[i] == want[i]);
    am.rs = 0, am.cs = 0; /* a[0] broadcast everywhere, batch stride 0 */
    assert_int_equal(
        cgi_gemm_batched(CG_F64, false, false, 2, 2, 2, 3, 1.0, am, 0, bm, 0, 1.0, c, 2, 1, 4),
        CG_OK);
    for (int i = 0; i < 8; i++) assert_true(c[i] == want[i] + 2.0);
}

static void test_gemm_batched_empty(void **state) {
    (void)state;
    double c[4] = {1, 2, 3, 4};
    cgi_mat none = {NULL, 1, 1};
    assert_int_equal(cgi_gemm_batched(CG_F64, false, false, 0, 2, 2, 2, 1.0, none, 4, none, 4,
                                      0.0, c, 2, 1, 4),
                     CG_OK);
    /* k == 0: C = beta*C, A and B never read (NULL is fine). */
    assert_int_equal(cgi_gemm_batched(CG_F64, false, false, 2, 1, 2, 0, 1.0, none, 0, none, 0,
                                      2.0, c, 1, 1, 2),
                     CG_OK);
    for (int i = 0; i < 4; i++) assert_true(c[i] == 2.0 * (i + 1));
}

/* ---- threads ------------------------------------------------------------- */

static void test_gemm_threads(void **state) {
    (void)state;
    cg_set_num_threads(2); /* each BLIS call gets cgrad's count */
    run_case(&(gcase){.dt = CG_F64, .m = 300, .n = 260, .k = 280, .alpha = 1}, 300);
    run_case(&(gcase){.dt = CG_F32, .m = 257, .n = 300, .k = 199, .alpha = 1, .beta = 1}, 301);
    cg_set_num_threads(-1); /* < 0 means 1 */
    run_case(&(gcase){.dt = CG_F64, .m = 130, .n = 120, .k = 110, .alpha = 1}, 302);
    cg_set_num_threads(0); /* the default again */
}

/* ---- errors -------------------------------------------------------------- */

static void expect_error(cg_status got, cg_status want, const char *fn) {
    assert_int_equal(got, want);
    assert_int_equal(cg_last_status(), want);
    assert_non_null(strstr(cg_last_error(), fn));
}

static void test_gemm_negative_size_is_arg(void **state) {
    (void)state;
    double a[4] = {0}, b[4] = {0}, c[4] = {0};
    cgi_mat am = {a, 2, 1}, bm = {b, 2, 1};
    expect_error(cgi_gemm(CG_F64, false, false, -1, 2, 2, 1, am, bm, 0, c, 2, 1), CG_ERR_ARG,
                 "cgi_gemm");
    expect_error(cgi_gemm(CG_F64, false, false, 2, -2, 2, 1, am, bm, 0, c, 2, 1), CG_ERR_ARG,
                 "cgi_gemm");
    expect_error(cgi_gemm(CG_F64, false, false, 2, 2, -3, 1, am, bm, 0, c, 2, 1), CG_ERR_ARG,
                 "cgi_gemm");
    expect_error(
        cgi_gemm_batched(CG_F64, false, false, -1, 2, 2, 2, 1, am, 4, bm, 4, 0, c, 2, 1, 4),
        CG_ERR_ARG, "cgi_gemm_batched");
    expect_error(
        cgi_gemm_batched(CG_F64, false, false, 1, 2, 2, -2, 1, am, 4, bm, 4, 0, c, 2, 1, 4),
        CG_ERR_ARG, "cgi_gemm_batched");
}

static void test_gemm_bad_dtype(void **state) {
    (void)state;
    int64_t a[4] = {0}, b[4] = {0}, c[4] = {0};
    cgi_mat am = {a, 2, 1}, bm = {b, 2, 1};
    expect_error(cgi_gemm(CG_I64, false, false, 2, 2, 2, 1, am, bm, 0, c, 2, 1), CG_ERR_DTYPE,
                 "cgi_gemm");
    expect_error(cgi_gemm((cg_dtype)7, false, false, 2, 2, 2, 1, am, bm, 0, c, 2, 1),
                 CG_ERR_DTYPE, "cgi_gemm");
    expect_error(
        cgi_gemm_batched(CG_I64, false, false, 2, 2, 2, 2, 1, am, 0, bm, 0, 0, c, 2, 1, 4),
        CG_ERR_DTYPE, "cgi_gemm_batched");
}

/* An output BLIS cannot write (it would overlap itself) is refused, and C
 * is left untouched. */
static void test_gemm_output_overlap_is_arg(void **state) {
    (void)state;
    double a[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, b[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    double c[16];
    for (int i = 0; i < 16; i++) c[i] = i;
    cgi_mat am = {a, 3, 1}, bm = {b, 3, 1};
    const int64_t bad[][2] = {{1, 1}, {0, 1},  {3, 0},  {0, 0},        {2, 2},
                              {2, 3}, {-3, 1}, {3, -1}, {INT64_MAX, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        expect_error(
            cgi_gemm(CG_F64, false, false, 3, 3, 3, 1, am, bm, 0, c + 8, bad[i][0], bad[i][1]),
            CG_ERR_ARG, "cgi_gemm");
        assert_non_null(strstr(cg_last_error(), "C"));
    }
    for (int i = 0; i < 16; i++) assert_true(c[i] == i);
    /* Batches of C that overlap each other. */
    expect_error(
        cgi_gemm_batched(CG_F64, false, false, 2, 3, 3, 3, 1, am, 0, bm, 0, 0, c, 3, 1, 0),
        CG_ERR_ARG, "cgi_gemm_batched");
    expect_error(
        cgi_gemm_batched(CG_F64, false, false, 2, 2, 2, 3, 1, am, 0, bm, 0, 0, c, 2, 1, 2),
        CG_ERR_ARG, "cgi_gemm_batched");
    for (int i = 0; i < 16; i++) assert_true(c[i] == i);
}

static void test_gemm_null_and_huge_args(void **state) {
    (void)state;
    double a[4] = {0}, b[4] = {0}, c[4] = {0};
    cgi_mat am = {a, 2, 1}, bm = {b, 2, 1}, none = {NULL, 2, 1};
    expect_error(cgi_gemm(CG_F64, false, false, 2, 2, 2, 1, none, bm, 0, c, 2, 1), CG_ERR_ARG,
                 "cgi_gemm");
    expect_error(cgi_gemm(CG_F64, false, false, 2, 2, 2, 1, am, none, 0, c, 2, 1), CG_ERR_ARG,
                 "cgi_gemm");
    expect_error(cgi_gemm(CG_F64, false, false, 2, 2, 2, 1, am, bm, 0, NULL, 2, 1), CG_ERR_ARG,
                 "cgi_gemm");
    cgi_mat huge = {a, INT64_MAX / 2, 1};
    expect_error(cgi_gemm(CG_F64, false, false, 2, 2, 2, 1, huge, bm, 0, c, 2, 1), CG_ERR_ARG,
                 "cgi_gemm");
    expect_error(cgi_gemm_batched(CG_F64, false, false, 3, 2, 2, 2, 1, am, INT64_MAX, bm, 0, 0,
                                  c, 2, 1, 4),
                 CG_ERR_ARG, "cgi_gemm_batched");
}

/* ---- triangular forms (attention's diagonal tiles) ----------------------- */

/* Sets the strictly upper part of x (j > i) to v. */
static void fill_upper(cg_dtype dt, const smat *x, double v) {
    for (int64_t i = 0; i < x->rows; i++)
        for (int64_t j = i + 1; j < x->cols; j++)
            put(dt, smat_ptr(dt, x), i * x->rs + j * x->cs, v);
}

/* cgi_gemm_lower: C's lower triangle as the full product's; its strictly
 * upper part, NaN before, is neither read nor written. C row- or
 * column-major (BLIS then sees the transposed problem). */
static void lower_case(gcase tc, bool c_cols, uint64_t seed) {
    lcg r = {seed};
    tc.n = tc.m;
    smat a = smat_new(tc.dt, tc.ta ? tc.k : tc.m, tc.ta ? tc.m : tc.k, 0, 0, false, &r, false);
    smat b = smat_new(tc.dt, tc.tb ? tc.m : tc.k, tc.tb ? tc.k : tc.m, 0, 0, false, &r, false);
    smat c = smat_new(tc.dt, tc.m, tc.m, c_cols ? 1 : tc.m, c_cols ? tc.m : 1, false, &r,
                      tc.beta == 0); /* beta 0: NaN everywhere, overwritten below */
    fill_upper(tc.dt, &c, NAN);
    double *ref = malloc(sizeof(double) * (size_t)(tc.m * tc.m)),
           *mag = malloc(sizeof(double) * (size_t)(tc.m * tc.m));
    assert_true(ref && mag);
    reference(&tc, &a, &b, &c, smat_ptr(tc.dt, &c), ref, mag);
    assert_int_equal(cgi_gemm_lower(tc.dt, tc.ta, tc.tb, tc.m, tc.k, tc.alpha,
                                    smat_mat(tc.dt, &a), smat_mat(tc.dt, &b), tc.beta,
                                    smat_ptr(tc.dt, &c), c.rs, c.cs),
                     CG_OK);
    compare(&tc, &c, ref, mag, true);
    for (int64_t i = 0; i < tc.m; i++)
        for (int64_t j = i + 1; j < tc.m; j++)
            assert_true(isnan(get(tc.dt, smat_ptr(tc.dt, &c), i * c.rs + j * c.cs)));
    free(ref), free(mag), free(a.buf), free(b.buf), free(c.buf);
}

/* cgi_trmm_lower: C = alpha op(tril(A)) B + beta C with NaN above A's
 * diagonal (never read), A row- or column-major; with beta 0, C starts as
 * NaN (overwritten, not read: attention's first tiles write so). */
static void trmm_case(gcase tc, bool a_cols, uint64_t seed) {
    lcg r = {seed};
    tc.k = tc.m, tc.tb = false;
    smat a =
        smat_new(tc.dt, tc.m, tc.m, a_cols ? 1 : tc.m, a_cols ? tc.m : 1, false, &r, false);
    smat b = smat_new(tc.dt, tc.m, tc.n, 0, 0, false, &r, false);
    smat c = smat_new(tc.dt, tc.m, tc.n, 0, 0, false, &r, tc.beta == 0); /* NaN: not read */
    size_t mn = (size_t)(tc.m * tc.n);
    double *ref = malloc(sizeof(double) * mn), *mag = malloc(sizeof(double) * mn);
    assert_true(ref && mag);
    fill_upper(tc.dt, &a, 0); /* the reference multiplies tril(A) */
    reference(&tc, &a, &b, &c, smat_ptr(tc.dt, &c), ref, mag);
    fill_upper(tc.dt, &a, NAN);
    assert_int_equal(cgi_trmm_lower(tc.dt, tc.ta, tc.m, tc.n, tc.alpha, smat_mat(tc.dt, &a),
                                    smat_mat(tc.dt, &b), tc.beta, smat_ptr(tc.dt, &c), c.rs,
                                    c.cs),
                     CG_OK);
    compare(&tc, &c, ref, mag, false);
    free(ref), free(mag), free(a.buf), free(b.buf), free(c.buf);
}

/* Both dtypes, every transpose, sizes around the skx kernel's 32 x 12
 * micro-tiles, alpha and beta not 1 (beta 0 on the lower C: its upper NaN
 * must not leak in). */
static void test_gemm_triangular_forms(void **state) {
    (void)state;
    const int64_t ms[] = {1, 5, 33, 70}, ks[] = {0, 1, 7, 40}; /* k 0: C = beta C */
    uint64_t seed = 5000;
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < 4; i++)
            for (size_t j = 0; j < 4; j++)
                for (int t = 0; t < 8; t++) {
                    gcase tc = {.dt = d ? CG_F64 : CG_F32,
                                .ta = t & 1,
                                .tb = t & 2,
                                .m = ms[i],
                                .n = ks[j],
                                .k = ks[j],
                                .alpha = 0.5,
                                .beta = t & 4 ? 0.25 : 0};
                    lower_case(tc, t & 4, seed++);
                    trmm_case(tc, t & 2, seed++);
                }
    double a[4] = {0}, b[4] = {0}, c[4] = {0};
    cgi_mat am = {a, 2, 1}, bm = {b, 2, 1};
    expect_error(cgi_gemm_lower(CG_F64, false, false, -1, 2, 1, am, bm, 0, c, 2, 1), CG_ERR_ARG,
                 "cgi_gemm_lower");
    expect_error(cgi_trmm_lower(CG_I64, false, 2, 2, 1, am, bm, 0, c, 2, 1), CG_ERR_DTYPE,
                 "cgi_trmm_lower");
    expect_error(cgi_trmm_lower(CG_F64, false, 2, 2, 1, am, bm, 0, c, 1, 1), CG_ERR_ARG,
                 "cgi_trmm_lower");
}

/* cgi_gemm skips BLIS's argument checks for its own (checked) calls and
 * puts the calling thread's level back: a program's BLIS calls keep theirs. */
static void test_gemm_keeps_blis_error_level(void **state) {
    (void)state;
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4];
    const errlev_t levels[] = {BLIS_FULL_ERROR_CHECKING, BLIS_NO_ERROR_CHECKING};
    for (int i = 0; i < 2; i++) {
        bli_error_checking_level_set(levels[i]);
        assert_int_equal(cgi_gemm(CG_F32, false, false, 2, 2, 2, 1, (cgi_mat){a, 2, 1},
                                  (cgi_mat){b, 2, 1}, 0, c, 2, 1),
                         CG_OK);
        assert_int_equal(bli_error_checking_level(), levels[i]);
        assert_true(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);
    }
    bli_error_checking_level_set(BLIS_FULL_ERROR_CHECKING);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_f32_panel_packing), /* first: see its comment */
        cmocka_unit_test(test_gemm_square),
        cmocka_unit_test(test_gemm_rectangular),
        cmocka_unit_test(test_gemm_vector_shapes),
        cmocka_unit_test(test_gemm_zero_sizes),
        cmocka_unit_test(test_gemm_alpha_beta),
        cmocka_unit_test(test_gemm_beta_zero_ignores_nan),
        cmocka_unit_test(test_gemm_alpha_zero),
        cmocka_unit_test(test_gemm_strided_operands),
        cmocka_unit_test(test_gemm_transposed_view_strides),
        cmocka_unit_test(test_gemm_size1_dims_any_stride),
        cmocka_unit_test(test_gemm_broadcast_zero_stride),
        cmocka_unit_test(test_gemm_overlapping_input_strides),
        cmocka_unit_test(test_gemm_batched),
        cmocka_unit_test(test_gemm_batched_packed_operands),
        cmocka_unit_test(test_gemm_batched_empty),
        cmocka_unit_test(test_gemm_triangular_forms),
        cmocka_unit_test(test_gemm_keeps_blis_error_level),
        cmocka_unit_test(test_gemm_threads),
        cmocka_unit_test(test_gemm_negative_size_is_arg),
        cmocka_unit_test(test_gemm_bad_dtype),
        cmocka_unit_test(test_gemm_output_overlap_is_arg),
        cmocka_unit_test(test_gemm_null_and_huge_args),
    };
    return cmocka_run_group_tests_name("gemm", tests, NULL, NULL);
}
