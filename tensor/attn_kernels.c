/* Fused attention kernels: tiles of scores through cgi_gemm, the rest row by
 * row (see attn_kernels.h). Scores live in one tile per unit (at most BK x
 * BK), never as a whole Tq x Tk matrix. */
#include "attn_kernels.h"
#include "fast_exp.h"

#include <math.h>
#include <string.h>

#define BQ CGI_ATTN_BQ
#define BK CGI_ATTN_BK

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static size_t round64(size_t n) { return (n + 63) / 64 * 64; }

/* Element offset of problem b for lead strides lead. */
static int64_t off_of(const cgi_attn *a, const int64_t *lead, int64_t b) {
    int64_t off = 0;
    for (int d = a->nlead - 1; d >= 0; d--) {
        off += b % a->lead_shape[d] * lead[d];
        b /= a->lead_shape[d];
    }
    return off;
}

/* Element offset of problem b in operand m. */
static int64_t lead_off(const cgi_attn *a, const cgi_attn_mat *m, int64_t b) {
    return off_of(a, m->lead, b);
}

/* Row i of problem b of result o. */
static char *out_row(const cgi_attn *a, const cgi_attn_out *o, int64_t b, int64_t i) {
    return o->data + (size_t)(off_of(a, o->lead, b) + i * o->rs) * cg_dtype_size(a->dt);
}

/* Rows from i0 of operand m in problem b, as a GEMM operand. */
static cgi_mat rows_of(const cgi_attn *a, const cgi_attn_mat *m, int64_t b, int64_t i0) {
    size_t es = cg_dtype_size(a->dt);
    return (cgi_mat){m->data + (size_t)(lead_off(a, m, b) + i0 * m->rs) * es, m->rs, m->cs};
}

/* ---- row kernels, one set per dtype ------------------------------------------------------ */
/* A tile of scores is rows [i0, i0 + mq) x keys [j0, j0 + nk) of problem b,
 * row r at s + r BK. Causal tiles are square (BK x BK) and so either wholly
 * below the diagonal or on it (diag: i0 == j0, mq == nk), where only the
 * lower triangle, keys j0..i0 + r of row r, is computed, read and used. */
typedef struct tile {
    int64_t b, i0, mq, j0, nk;
    bool diag;
} tile;

/* Keys row r of the tile holds. */
static int64_t row_keys(const tile *t, int64_t r) { return t->diag ? r + 1 : t->nk; }

/* The first tile to reach a result row overwrites it (beta 0), so no
 * result is zeroed first: the query rows' (out, dq) at key 0, the key rows'
 * (dk, dv) at the first query tile the keys are seen from. */
static double beta_queries(const tile *t) { return t->j0 == 0 ? 0.0 : 1.0; }
static double beta_keys(const cgi_attn *a, const tile *t) {
    return t->i0 == (a->causal ? t->j0 : 0) ? 0.0 : 1.0;
}

typedef struct row_ops {
    /* Adds the mask to the keys each row holds (none is after its query). */
    void (*mask)(const cgi_attn *a, const tile *t, char *s);
    /* One row of n scores against the running max m and sum l: the exps
     * (against the new max) replace the scores; returns the factor the old
     * sums take (1 when the max stays, 0 when it was -inf). */
    double (*online)(char *s, int64_t n, double *m, double *l);
    void (*scale)(char *o, int64_t n, double f); /* o *= f */
    /* A finished row: o / l and lse = m + log l (NaN both when l is 0 or
     * NaN: every key masked); lse may be NULL. */
    void (*finish)(char *o, int64_t n, double m, double l, char *lse);
    void (*probs)(char *s, int64_t n, const char *lse); /* s = exp(s - lse) */
    /* dp = p (dp - delta[0]) */
    void (*dscores)(const char *p, char *dp, int64_t n, const char *delta);
    /* delta[0] = sum over j < n of g[j gs] o[j] */
    void (*delta)(const char *g, int64_t gs, const char *o, int64_t n, char *delta);
} row_ops;

#define DEFINE_ROWS(S, T, EXP)                                                                 \
    static void mask_##S(const cgi_attn *a, const tile *t, char *sc) {                         \
        const cgi_attn_mat *m = &a->mask;                                                      \
        T *s = (T *)sc;                                                                        \
        if (!m->data) return;                                                                  \
        const T *mk = (const T *)m->data + lead_off(a, m, t->b) + t->j0 * m->cs;               \
        for (int64_t r = 0; r < t->mq; r++) {                                                  \
            const T *mr = mk + (t->i0 + r) * m->rs;                                            \
            for (int64_t c = 0; c < row_keys(t, r); c++) s[r * BK + c] += mr[c * m->cs];       \
        }                                                                                      \
    }                                                                                          \
    static double online_##S(char *sc, int64_t n, double *m, double *l) {                      \
        T *s = (T *)sc, mx = (T)-INFINITY, sum = 0;                                            \
        _Pragma("omp simd reduction(max : mx)") for (int64_t j = 0; j < n; j++) mx =           \
            s[j] > mx ? s[j] : mx;                                                             \
        double mnew = *m > (double)mx ? *m : (double)mx;                                       \
        T ref = mnew == -INFINITY ? 0 : (T)mnew; /* all -inf so far: exps of 0 */              \
        double alpha = exp(*m - (double)ref);                                                  \
        _Pragma("omp simd reduction(+ : sum)") for (int64_t j = 0; j < n; j++) {               \
            T e = EXP(s[j] - ref);                                                             \
            s[j] = e;                                                                          \
            sum += e;                                                                          \
        }                                                                                      \
        *l = *l * alpha + (double)sum;                                                         \
        *m = mnew;                                                                             \
        return alpha;                                                                          \
    }                                                                                          \
    static void scale_##S(char *o, int64_t n, double f) {                                      \
        T *x = (T *)o, ft = (T)f;                                                              \
        for (int64_t j = 0; j < n; j++) x[j] *= ft;                                            \
    }                                                                                          \
    static void finish_##S(char *o, int64_t n, double m, double l, char *lse) {                \
        bool ok = l > 0;                                                                       \
        scale_##S(o, n, ok ? 1.0 / l : NAN);                                                   \
        if (lse) *(T *)lse = ok ? (T)(m + log(l)) : (T)NAN;                                    \
    }                                                                                          \
    static void probs_##S(char *sc, int64_t n, const char *lse) {                              \
        T *s = (T *)sc, ls = *(const T *)lse;                                                  \
        for (int64_t j = 0; j < n; j++) s[j] = EXP(s[j] - ls);                                 \
    }                                                                                          \
    static void dscores_##S(const char *pc, char *dpc, int64_t n, const char *delta) {         \
        const T *p = (const T *)pc, dl = *(const T *)delta;                                    \
        T *dp = (T *)dpc;                                                                      \
        for (int64_t j = 0; j < n; j++) dp[j] = p[j] * (dp[j] - dl);                           \
    }                                                                                          \
    static void delta_##S(const char *gc, int64_t gs, const char *oc, int64_t n, char *out) {  \
        const T *g = (const T *)gc, *o = (const T *)oc;                                        \
        double sum = 0;                                                                        \
        if (gs == 1) { /* rows of heads: vectorised, not a chain of n dependent adds */        \
            _Pragma("omp simd reduction(+ : sum)") for (int64_t j = 0; j < n; j++) sum +=      \
                (double)g[j] * (double)o[j];                                                   \
        } else {                                                                               \
            for (int64_t j = 0; j < n; j++) sum += (double)g[j * gs] * (double)o[j];           \
        }                                                                                      \
        *(T *)out = (T)sum;                                                                    \
    }
DEFINE_ROWS(f32, float, cgi_expf)
DEFINE_ROWS(f64, double, exp)
#undef DEFINE_ROWS

static const row_ops OPS[2] = {
    {mask_f32, online_f32, scale_f32, finish_f32, probs_f32, dscores_f32, delta_f32},
    {mask_f64, online_f64, scale_f64, finish_f64, probs_f64, dscores_f64, delta_f64},
};

/* Zeroes rows [i0, i0 + n) (of cols elements) of problem b of result o
 * (nothing when o is not wanted). */
static void zero_rows(const cgi_attn *a, const cgi_attn_out *o, int64_t b, int64_t i0,
                      int64_t n, int64_t cols) {
    size_t es = cg_dtype_size(a->dt);
    for (int64_t i = 0; o->data && i < n; i++)
        memset(out_row(a, o, b, i0 + i), 0, (size_t)cols * es);
}

/* ---- the tile products ------------------------------------------------------------------- */
/* s = alpha x y^T, x the tile's rows and y its keys (k columns each); on
 * the diagonal its lower triangle only (BLIS's gemmt). */
static cg_status tile_scores(const cgi_attn *a, const tile *t, double alpha, cgi_mat x,
                             cgi_mat y, int64_t k, char *s) {
    if (t->diag)
        return cgi_gemm_lower(a->dt, false, true, t->mq, k, alpha, x, y, 0.0, s, BK, 1);
    return cgi_gemm(a->dt, false, true, t->mq, t->nk, k, alpha, x, y, 0.0, s, BK, 1);
}

/* c = alpha op(P) y + beta c for the tile's P [mq, nk] at p (trans: P^T,
 * the keys' rows), y with n columns; on the diagonal P is lower triangular
 * (BLIS's trmm3: the half above it is neither read nor multiplied). */
static cg_status tile_times(const cgi_attn *a, const tile *t, bool trans, double alpha,
                            const char *p, cgi_mat y, int64_t n, double beta, char *c,
                            int64_t rsc) {
    cgi_mat pm = {p, BK, 1};
    if (t->diag) return cgi_trmm_lower(a->dt, trans, t->mq, n, alpha, pm, y, beta, c, rsc, 1);
    return cgi_gemm(a->dt, trans, false, trans ? t->nk : t->mq, n, trans ? t->mq : t->nk, alpha,
                    pm, y, beta, c, rsc, 1);
}

/* ---- forward ----------------------------------------------------------------------------- */
/* Query rows per tile: causal tiles are square, so each is wholly below the
 * diagonal or on it. */
static int64_t tile_rows(const cgi_attn *a) { return a->causal ? BK : BQ; }

static int64_t query_tiles(const cgi_attn *a) {
    return (a->tq + tile_rows(a) - 1) / tile_rows(a);
}

int64_t cgi_attn_fwd_units(const cgi_attn *a) { return a->bh * query_tiles(a); }

/* The score tile, then the running max, sum and rescale factor per row. */
size_t cgi_attn_fwd_scratch(const cgi_attn *a) {
    size_t rows = (size_t)tile_rows(a);
    return round64(rows * BK * cg_dtype_size(a->dt)) + round64(3 * rows * sizeof(double));
}

/* One key tile of a unit: scores, mask, online softmax, out += P v. */
static cg_status fwd_tile(const cgi_attn *a, const tile *t, cgi_mat q, char *s, double *m,
                          double *l, char *o) {
    int64_t ors = a->out.rs;
    const row_ops *ro = &OPS[a->dt];
    size_t es = cg_dtype_size(a->dt);
    cg_status st = tile_scores(a, t, a->scale, q, rows_of(a, &a->k, t->b, t->j0), a->d, s);
    if (st != CG_OK) return st;
    ro->mask(a, t, s);
    for (int64_t r = 0; r < t->mq; r++) {
        double f = ro->online(s + (size_t)(r * BK) * es, row_keys(t, r), &m[r], &l[r]);
        if (f != 1.0 && t->j0 > 0) ro->scale(o + (size_t)(r * ors) * es, a->dv, f);
    }
    return tile_times(a, t, false, 1.0, s, rows_of(a, &a->v, t->b, t->j0), a->dv,
                      beta_queries(t), o, ors);
}

/* Unit (b, query tile): causal units stop at their last query's key, so
 * no tile is wholly masked and the last one is cut short. */
cg_status cgi_attn_fwd_unit(const cgi_attn *a, int64_t unit, char *scr) {
    size_t es = cg_dtype_size(a->dt);
    int64_t nqt = query_tiles(a), rows = tile_rows(a);
    tile t = {.b = unit / nqt, .i0 = unit % nqt * rows};
    t.mq = min64(rows, a->tq - t.i0);
    int64_t kend = a->causal ? t.i0 + t.mq : a->tk;
    double *m = (double *)(scr + round64((size_t)rows * BK * es)), *l = m + rows;
    char *o = out_row(a, &a->out, t.b, t.i0);
    if (kend == 0) zero_rows(a, &a->out, t.b, t.i0, t.mq, a->dv); /* no tile writes them */
    for (int64_t r = 0; r < t.mq; r++) m[r] = -INFINITY, l[r] = 0;
    cgi_mat q = rows_of(a, &a->q, t.b, t.i0);
    for (t.j0 = 0; t.j0 < kend; t.j0 += BK) {
        t.nk = min64(BK, kend - t.j0);
        t.diag = a->causal && t.j0 == t.i0;
        cg_status st = fwd_tile(a, &t, q, scr, m, l, o);
        if (st != CG_OK) return st;
    }
    char *lse = a->lse ? a->lse + (size_t)(t.b * a->tq + t.i0) * es : NULL;
    for (int64_t r = 0; r < t.mq; r++) {
        char *lr = lse ? lse + (size_t)r * es : NULL;
        if (a->tk > 0)
            OPS[a->dt].finish(o + (size_t)(r * a->out.rs) * es, a->dv, m[r], l[r], lr);
        else if (lr) /* no keys: out stays 0, the empty sum */
            OPS[a->dt].finish(o, 0, -INFINITY, 1.0, lr);
    }
    return CG_OK;
}

double cgi_attn_work(const cgi_attn *a) {
    double w = (double)a->bh * (double)a->tq * (double)a->tk * (double)(a->d + a->dv);
    return a->causal ? w / 2 : w;
}

/* ---- backward ---------------------------------------------------------------------------- */
int64_t cgi_attn_bwd_units(const cgi_attn *a) { return a->bh; }

/* P and dP tiles, and delta [Tq]. */
size_t cgi_attn_bwd_scratch(const cgi_attn *a) {
    size_t es = cg_dtype_size(a->dt);
    return 2 * round64((size_t)tile_rows(a) * BK * es) + round64((size_t)a->tq * es);
}

/* The gradient tile's GEMMs; p holds P, dp receives dP and then dS. */
static cg_status bwd_tile(const cgi_attn *a, const tile *t, char *p, char *dp,
                          const char *delta) {
    const row_ops *ro = &OPS[a->dt];
    size_t es = cg_dtype_size(a->dt);
    cgi_mat q = rows_of(a, &a->q, t->b, t->i0), k = rows_of(a, &a->k, t->b, t->j0);
    cgi_mat g = rows_of(a, &a->g, t->b, t->i0), v = rows_of(a, &a->v, t->b, t->j0);
    cg_status st = tile_scores(a, t, a->scale, q, k, a->d, p);
    if (st != CG_OK) return st;
    ro->mask(a, t, p);
    for (int64_t r = 0; r < t->mq; r++)
        ro->probs(p + (size_t)(r * BK) * es, row_keys(t, r),
                  a->lse + (size_t)(t->b * a->tq + t->i0 + r) * es);
    double beta_k = beta_keys(a, t); /* gk, gv */
    if (a->gv.data && (st = tile_times(a, t, true, 1.0, p, g, a->dv, beta_k,
                                       out_row(a, &a->gv, t->b, t->j0), a->gv.rs)) != CG_OK)
        return st;
    if (!a->gq.data && !a->gk.data) return CG_OK;
    if ((st = tile_scores(a, t, 1.0, g, v, a->dv, dp)) != CG_OK) return st;
    for (int64_t r = 0; r < t->mq; r++)
        ro->dscores(p + (size_t)(r * BK) * es, dp + (size_t)(r * BK) * es, row_keys(t, r),
                    delta + (size_t)(t->i0 + r) * es);
    if (a->gk.data && (st = tile_times(a, t, true, a->scale, dp, q, a->d, beta_k,
                                       out_row(a, &a->gk, t->b, t->j0), a->gk.rs)) != CG_OK)
        return st;
    if (a->gq.data)
        st = tile_times(a, t, false, a->scale, dp, k, a->d, beta_queries(t),
                        out_row(a, &a->gq, t->b, t->i0), a->gq.rs);
    return st;
}

/* Unit b: delta = rowsum(g out), then every (key tile, query tile) pair
 * that is not wholly masked: for causal, the queries from the tile's first
 * key on, and the keys up to the query tile's last. */
cg_status cgi_attn_bwd_unit(const cgi_attn *a, int64_t b, char *scr) {
    int64_t rows = tile_rows(a);
    size_t es = cg_dtype_size(a->dt), tb = round64((size_t)rows * BK * es);
    char *p = scr, *dp = scr + tb, *delta = scr + 2 * tb;
    if (a->tk == 0) zero_rows(a, &a->gq, b, 0, a->tq, a->d); /* else the tiles write */
    if (a->tq == 0) {                                        /* every row, the first */
        zero_rows(a, &a->gk, b, 0, a->tk, a->d);             /* with beta 0 */
        zero_rows(a, &a->gv, b, 0, a->tk, a->dv);
    }
    cgi_mat g = rows_of(a, &a->g, b, 0);
    const char *o = out_row(a, &a->out, b, 0);
    for (int64_t i = 0; i < a->tq; i++)
        OPS[a->dt].delta((const char *)g.data + (size_t)(i * g.rs) * es, g.cs,
                         o + (size_t)(i * a->out.rs) * es, a->dv, delta + (size_t)i * es);
    tile t = {.b = b};
    for (t.j0 = 0; t.j0 < a->tk; t.j0 += BK) {
        for (t.i0 = a->causal ? t.j0 : 0; t.i0 < a->tq; t.i0 += rows) {
            t.mq = min64(rows, a->tq - t.i0);
            t.nk = min64(BK, a->tk - t.j0);
            /* causal: the tile on the diagonal is square (its keys end at its
             * last query), the others wholly below it */
            if (a->causal) t.nk = min64(t.nk, t.i0 + t.mq - t.j0);
            t.diag = a->causal && t.i0 == t.j0;
            cg_status st = bwd_tile(a, &t, p, dp, delta);
            if (st != CG_OK) return st;
        }
    }
    return CG_OK;
}
