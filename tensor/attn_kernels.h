/* Raw kernels of the fused attention (ops/attention.c), below the graph (not
 * installed).
 *
 * A problem is BH independent attentions (BH: the product of the leading
 * dims) of q [Tq, D], k [Tk, D], v [Tk, Dv]: out = softmax(q k^T scale +
 * mask, causal) v. The work is cut in units that share nothing they write:
 *   forward:  (b, query tile): the tile's rows of out and lse;
 *   backward: b: its rows of dq, dk and dv.
 * Tile sizes are fixed (CGI_ATTN_BQ, CGI_ATTN_BK), so a unit's arithmetic,
 * and every result bit, is the same whichever thread runs it and however
 * many there are. Each unit needs its own scratch (the *_scratch sizes); the
 * caller runs the units, on one thread or spread over many. The GEMMs go
 * through cgi_gemm (cgi_gemm_lower, cgi_trmm_lower on causal diagonal
 * tiles); inside an OpenMP region BLIS runs single-threaded.
 *
 * Like the other kernels these validate nothing: ops/attention.c checks
 * shapes and dtypes, and hands over operands whose [rows, cols] matrices
 * BLIS takes without a packed copy (unit stride on one side). */
#ifndef CG_ATTN_KERNELS_H
#define CG_ATTN_KERNELS_H

#include "internal.h"

/* Query rows and key rows per tile. One tile of scores is BQ x BK (128 KB
 * in f32, within a core's L2). Large tiles, because each BLIS call costs
 * several microseconds before any arithmetic: measured (CPU time, one
 * thread, causal, D 64) for [8, 4, 128, 64] and [8, 6, 256, 64], forward
 * and forward + backward, ms: 64 x 64: 2.6, 9.2, 14.3, 43.9; 128 x 128:
 * 2.0, 6.6, 8.6, 29.8; 128 x 256: 2.1, 6.5, 8.4, 28.7; 256 x 256: 1.8, 6.0,
 * 7.7, 31.1. Causal tiles are BK x BK: each is then wholly below the
 * diagonal or on it, and the one on it is computed as a triangle by BLIS's
 * gemmt and trmm3 (cgi_gemm_lower, cgi_trmm_lower) instead of a square half
 * masked: the same two problems, 1.16, 4.6, 3.4, 14.9 ms (bench_attention,
 * one thread, Zen 5). */
#define CGI_ATTN_BQ 128
#define CGI_ATTN_BK 256

/* One operand [lead..., rows, cols]: element (b, i, j) at data + (off(b) +
 * i rs + j cs) elements, off(b) being b unravelled over the lead shape (C
 * order) times lead's strides (0 on broadcast dims). */
typedef struct cgi_attn_mat {
    const char *data; /* NULL: absent (no mask) */
    int64_t lead[CG_MAX_DIMS];
    int64_t rs, cs;
} cgi_attn_mat;

/* A result [lead..., rows, cols], unit stride along a row: row (b, i) at
 * data + (off(b) + i rs) elements, off as for cgi_attn_mat (rows of
 * different (b, i) never overlap). So results may take the layout of the
 * operands, [B, T, H, D] for heads cut from one [B, T, H D] projection. */
typedef struct cgi_attn_out {
    char *data;
    int64_t lead[CG_MAX_DIMS];
    int64_t rs;
} cgi_attn_out;

typedef struct cgi_attn {
    cg_dtype dt; /* CG_F32 or CG_F64 */
    int nlead;
    int64_t lead_shape[CG_MAX_DIMS];
    int64_t bh, tq, tk, d, dv;
    double scale;
    bool causal;                /* key j is seen by query i only when j <= i (Tq == Tk) */
    cgi_attn_mat q, k, v, mask; /* mask [lead..., Tq, Tk], added to the scores */
    /* Forward: writes out [lead..., Tq, Dv] and, when not NULL, lse [BH, Tq]
     * (contiguous); the backward reads both. */
    cgi_attn_out out;
    char *lse;
    /* Backward: g, the gradient of out; writes the gradients gq [lead..., Tq,
     * D], gk [lead..., Tk, D] and gv [lead..., Tk, Dv] (data NULL: not
     * wanted). */
    cgi_attn_mat g;
    cgi_attn_out gq, gk, gv;
} cgi_attn;

/* Forward: per unit, the online softmax over key tiles (running max and
 * sum, out rescaled as the max grows), then out / sum and lse = max +
 * log(sum). A row whose keys are all masked (-inf) gets NaN, as softmax
 * over -inf gives; Tk == 0 gives zeros (the empty sum) and lse -inf. */
CGI_HIDDEN int64_t cgi_attn_fwd_units(const cgi_attn *a);
CGI_HIDDEN size_t cgi_attn_fwd_scratch(const cgi_attn *a); /* bytes, a multiple of 64 */
CGI_HIDDEN cg_status cgi_attn_fwd_unit(const cgi_attn *a, int64_t unit, char *scratch);

/* Backward (FlashAttention-2's): per b, scores recomputed one tile at a time
 * from q, k and lse: P = exp(S - lse), dv += P^T g, dP = g v^T, dS = P (dP -
 * rowsum(g out)), dq += dS k scale, dk += dS^T q scale. Key tiles in order,
 * query tiles in order within each: every sum has one fixed order. */
CGI_HIDDEN int64_t cgi_attn_bwd_units(const cgi_attn *a);
CGI_HIDDEN size_t cgi_attn_bwd_scratch(const cgi_attn *a);
CGI_HIDDEN cg_status cgi_attn_bwd_unit(const cgi_attn *a, int64_t unit, char *scratch);

/* Multiply-adds of the whole forward (the backward does about 2.5 times as
 * many), for the caller's choice to thread. */
CGI_HIDDEN double cgi_attn_work(const cgi_attn *a);

#endif
