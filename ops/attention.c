/* Scaled dot-product attention, PyTorch's F.scaled_dot_product_attention:
 * out = softmax(q k^T scale + mask, causal) v over the last two dims, the
 * leading dims ([B, H] typically) independent problems.
 *
 * Fused (tensor/attn_kernels.c, FlashAttention-2's scheme): the forward
 * walks the keys one tile at a time with an online softmax (running max and
 * sum, the output rescaled as the max grows), so no more than one tile of
 * scores exists per thread; it keeps the logsumexp of each query row
 * ([..., Tq]) for the backward, which recomputes each tile of probabilities
 * from q, k and that logsumexp instead of storing B H Tq Tk of them. All
 * products are BLIS GEMMs on tiles; units of work are (problem, query tile)
 * forward and problem backward, spread over the threads with fixed tiles,
 * so the result bits do not depend on the thread count.
 *
 * The backward is exact but not itself differentiable; when the backward
 * pass is recorded (CG_CREATE_GRAPH) the rule instead writes the gradients
 * with graph ops (matmul, mask, softmax, matmul: the composite), so
 * gradients of gradients work. Two cases run the composite forward too:
 * dropout > 0 (the dropout mask, drawn from opts->rng in C order of the
 * [..., Tq, Tk] weights by cg_dropout, would otherwise have to be redrawn
 * in the backward), and a mask that requires a gradient (its gradient is
 * the whole dS, which the fused backward never holds). */
#include "../tensor/attn_kernels.h"
#include "internal.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME     "cg_scaled_dot_product_attention"
#define NEEDS(i) cg_node_needs_grad(n, i)

/* Work (multiply-adds of the forward) below which one thread does it all:
 * an OpenMP region costs microseconds. */
#define PAR_WORK (1 << 18)

cg_attn_opts cg_attn_defaults(void) {
    return (cg_attn_opts){.mask = NULL, .causal = false, .dropout = 0, .rng = NULL, .scale = 0};
}

/* ---- checks ------------------------------------------------------------------------------ */
/* "q [..], k [..], v [..]" for messages. */
static const char *qkv_str(char *buf, size_t size, const cg_tensor *q, const cg_tensor *k,
                           const cg_tensor *v) {
    char a[128], b[128], c[128];
    snprintf(buf, size, "q %s, k %s, v %s", cg_shape_str(q, a, sizeof a),
             cg_shape_str(k, b, sizeof b), cg_shape_str(v, c, sizeof c));
    return buf;
}

static bool dtypes_ok(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k, const cg_tensor *v,
                      const cg_tensor *mask) {
    cg_dtype dt = q->dtype;
    if (cgi_is_float(dt) && k->dtype == dt && v->dtype == dt && (!mask || mask->dtype == dt))
        return true;
    char s[420];
    cgi_error(ctx, CG_ERR_DTYPE,
              "%s: %s: dtypes q %s, k %s, v %s, mask %s: need one float dtype", NAME,
              qkv_str(s, sizeof s, q, k, v), cg_dtype_name(dt), cg_dtype_name(k->dtype),
              cg_dtype_name(v->dtype), mask ? cg_dtype_name(mask->dtype) : "none");
    return false;
}

/* q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv], one set of leading dims. */
static bool shapes_ok(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k, const cg_tensor *v) {
    char s[420];
    int n = q->ndim;
    const char *why = NULL;
    if (n < 2 || k->ndim < 2 || v->ndim < 2)
        why = "need q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv] of rank >= 2";
    else if (k->ndim != n || v->ndim != n)
        why = "q, k and v need the same leading dims (ranks differ)";
    else if (k->shape[n - 1] != q->shape[n - 1])
        why = "q and k need the same last dim D";
    else if (v->shape[n - 2] != k->shape[n - 2])
        why = "k and v need the same number of keys Tk";
    else if (q->shape[n - 1] == 0)
        why = "D is 0 (q and k need at least one feature)";
    for (int d = 0; !why && d < n - 2; d++)
        if (k->shape[d] != q->shape[d] || v->shape[d] != q->shape[d])
            why = "q, k and v need the same leading dims";
    if (why)
        cgi_error(ctx, CG_ERR_SHAPE, "%s: %s: %s", NAME, qkv_str(s, sizeof s, q, k, v), why);
    return !why;
}

/* The scores' shape [..., Tq, Tk] into shape. */
static void scores_shape(const cg_tensor *q, const cg_tensor *k, int64_t *shape) {
    int n = q->ndim;
    memcpy(shape, q->shape, sizeof(int64_t) * (size_t)n);
    shape[n - 1] = k->shape[n - 2];
}

static bool mask_ok(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k,
                    const cg_tensor *mask) {
    int64_t shape[CG_MAX_DIMS];
    scores_shape(q, k, shape);
    if (!mask || cgi_broadcasts_to(mask, q->ndim, shape)) return true;
    char sm[128], ss[128];
    cgi_error(ctx, CG_ERR_SHAPE, "%s: mask %s does not broadcast to the scores %s", NAME,
              cg_shape_str(mask, sm, sizeof sm), cgi_fmt_shape(ss, sizeof ss, q->ndim, shape));
    return false;
}

static bool opts_ok(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k, const cg_tensor *v,
                    const cg_attn_opts *o) {
    int n = q->ndim;
    char s[420];
    qkv_str(s, sizeof s, q, k, v);
    if (o->causal && q->shape[n - 2] != k->shape[n - 2])
        cgi_error(ctx, CG_ERR_SHAPE, "%s: %s: causal needs as many queries as keys", NAME, s);
    else if (!(o->dropout >= 0 && o->dropout < 1)) /* also NaN */
        cgi_error(ctx, CG_ERR_ARG, "%s: %s: dropout %g is not in [0, 1)", NAME, s, o->dropout);
    else if (o->dropout > 0 && !o->rng)
        cgi_error(ctx, CG_ERR_ARG, "%s: %s: dropout %g needs an rng (got NULL)", NAME, s,
                  o->dropout);
    else if (!(o->scale >= 0 && o->scale < INFINITY))
        cgi_error(ctx, CG_ERR_ARG, "%s: %s: scale %g must be finite and >= 0 (0: 1 / sqrt(D))",
                  NAME, s, o->scale);
    else
        return true;
    return false;
}

/* A graph needs a context: checked first, so nothing is computed in vain. */
static bool ctx_ok(cg_ctx *ctx, const cg_tensor *const *in, int n) {
    for (int i = 0; !ctx && i < n; i++)
        if (in[i] && in[i]->requires_grad) {
            cgi_error(NULL, CG_ERR_STATE,
                      "%s: an input requires a gradient, so the result must be made in a "
                      "context (got NULL)",
                      NAME);
            return false;
        }
    return true;
}

/* ---- the composite: matmul, mask, softmax (dropout), matmul ------------------------------ */
/* softmax(q k^T scale + mask, causal) [..., Tq, Tk] in graph ops. */
static cg_tensor *composite_probs(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k,
                                  const cg_tensor *mask, double scale, bool causal) {
    int n = q->ndim;
    cg_tensor *s = cg_mul_scalar(ctx, cg_matmul(ctx, q, cg_transpose(ctx, k, -2, -1)), scale);
    if (mask) s = cg_add(ctx, s, mask);
    if (causal) {
        int64_t tq = q->shape[n - 2], tk = k->shape[n - 2];
        cg_tensor *above = cg_triu(ctx, cg_ones(ctx, q->dtype, CG_SHAPE(tq, tk)), 1);
        s = cg_masked_fill(ctx, s, above, -INFINITY);
    }
    return cg_softmax(ctx, s, -1);
}

/* The composite forward in ctx (never NULL: the temporaries live there). */
static cg_tensor *composite(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k,
                            const cg_tensor *v, const cg_attn_opts *o, double scale) {
    cg_tensor *p = composite_probs(ctx, q, k, o->mask, scale, o->causal);
    if (o->dropout > 0) p = cg_dropout(ctx, p, o->dropout, true, o->rng);
    return cg_matmul(ctx, p, v);
}

/* With ctx NULL the composite runs in a temporary context, its result copied out. */
static cg_tensor *composite_entry(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k,
                                  const cg_tensor *v, const cg_attn_opts *o, double scale) {
    if (ctx) return composite(ctx, q, k, v, o, scale);
    cg_ctx *tmp = cg_ctx_new();
    if (!tmp) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory for a temporary context", NAME);
        return NULL;
    }
    cg_tensor *y = composite(tmp, q, k, v, o, scale);
    y = y ? cgi_clone(NULL, y) : NULL;
    cg_ctx_free(tmp);
    return y;
}

/* ---- running the fused kernels ----------------------------------------------------------- */
/* What the backward needs besides the inputs and the output. */
typedef struct attn_saved {
    double scale;
    bool causal;
    const cg_tensor *lse;      /* [..., Tq], in the node's context */
    const cg_tensor *ready[3]; /* q, k, v as the GEMMs read them (maybe copies, in ctx) */
} attn_saved;

/* t itself when BLIS takes its [rows, cols] matrices as they are (unit
 * stride along one side, the other no smaller than the span), else a
 * contiguous copy (in ctx; with ctx NULL the caller frees it). Rank >= 2. */
static const cg_tensor *gemm_ready(cg_ctx *ctx, const cg_tensor *t) {
    int n = t->ndim;
    int64_t r = t->shape[n - 2], c = t->shape[n - 1], rs = t->strides[n - 2],
            cs = t->strides[n - 1];
    bool by_rows = (c <= 1 || cs == 1) && (r <= 1 || rs >= c);
    bool by_cols = (r <= 1 || rs == 1) && (c <= 1 || cs >= r);
    return by_rows || by_cols ? t : cgi_clone(ctx, t);
}

/* t [lead..., rows, cols] (strides broadcast to the lead shape) as an operand. */
static cgi_attn_mat mat_of(const cg_tensor *t, int nlead, const int64_t *strides) {
    cgi_attn_mat m = {.data = cgi_ptr(t), .rs = strides[nlead], .cs = strides[nlead + 1]};
    memcpy(m.lead, strides, sizeof(int64_t) * (size_t)nlead);
    return m;
}

/* The problem of q, k, v (gemm_ready) and mask (or NULL). */
static cgi_attn problem(const cg_tensor *q, const cg_tensor *k, const cg_tensor *v,
                        const cg_tensor *mask, double scale, bool causal) {
    int n = q->ndim;
    cgi_attn a = {.dt = q->dtype, .nlead = n - 2, .scale = scale, .causal = causal};
    memcpy(a.lead_shape, q->shape, sizeof(int64_t) * (size_t)(n - 2));
    a.bh = cgi_numel(n - 2, q->shape);
    a.tq = q->shape[n - 2], a.tk = k->shape[n - 2];
    a.d = q->shape[n - 1], a.dv = v->shape[n - 1];
    a.q = mat_of(q, n - 2, q->strides);
    a.k = mat_of(k, n - 2, k->strides);
    a.v = mat_of(v, n - 2, v->strides);
    if (mask) {
        int64_t shape[CG_MAX_DIMS], st[CG_MAX_DIMS];
        scores_shape(q, k, shape);
        cgi_broadcast_strides(mask, n, shape, st);
        a.mask = mat_of(mask, n - 2, st);
    }
    return a;
}

typedef cg_status (*unit_fn)(const cgi_attn *a, int64_t unit, char *scratch);

/* Units 0..n with per bytes of scratch each: spread over the threads (one
 * OpenMP region; BLIS, nested in it, runs on one thread) when there is
 * enough work, else in turn. A unit's arithmetic is the same either way. */
static cg_status run_units(cg_ctx *ctx, const char *name, const cgi_attn *a, int64_t n,
                           size_t per, unit_fn fn) {
    int threads = cg_get_num_threads();
    bool across = threads > 1 && n > 1 && cgi_attn_work(a) >= PAR_WORK;
    int slots = !across ? 1 : n < threads ? (int)n : threads;
    char *scr = cgi_alloc(ctx, name, per * (size_t)slots);
    if (!scr) return CG_ERR_NOMEM;
    int bad = 0;
    if (across) {
#pragma omp parallel for schedule(dynamic) num_threads(slots) reduction(| : bad)
        for (int64_t u = 0; u < n; u++)
            bad |= fn(a, u, scr + (size_t)omp_get_thread_num() * per) != CG_OK;
    } else {
        for (int64_t u = 0; u < n && !bad; u++) bad = fn(a, u, scr) != CG_OK;
    }
    if (!ctx) free(scr);
    return bad ? cgi_error(ctx, CG_ERR_ARG, "%s: a GEMM failed", name) : CG_OK;
}

/* ---- the op ------------------------------------------------------------------------------ */
/* The gradients as graph ops, for a recorded backward (CG_CREATE_GRAPH):
 * P = softmax(scores), dv = P^T g, dP = g v^T, dS = P (dP - rowsum(dP P)),
 * dq = dS k scale, dk = dS^T q scale. */
static cg_status composite_grads(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                 cg_tensor **gin) {
    const attn_saved *s = cg_node_saved(n);
    const cg_tensor *q = cg_node_input(n, 0), *k = cg_node_input(n, 1),
                    *v = cg_node_input(n, 2);
    const cg_tensor *mask = cg_node_ninputs(n) > 3 ? cg_node_input(n, 3) : NULL;
    cg_tensor *p = composite_probs(ctx, q, k, mask, s->scale, s->causal);
    if (NEEDS(2)) gin[2] = cg_matmul(ctx, cg_transpose(ctx, p, -2, -1), g);
    if (NEEDS(0) || NEEDS(1)) {
        cg_tensor *dp = cg_matmul(ctx, g, cg_transpose(ctx, v, -2, -1));
        cg_tensor *rows = cg_sum(ctx, cg_mul(ctx, dp, p), (const int[]){-1}, 1, true);
        cg_tensor *ds = cg_mul(ctx, p, cg_sub(ctx, dp, rows));
        if (NEEDS(0)) gin[0] = cg_mul_scalar(ctx, cg_matmul(ctx, ds, k), s->scale);
        if (NEEDS(1))
            gin[1] =
                cg_mul_scalar(ctx, cg_matmul(ctx, cg_transpose(ctx, ds, -2, -1), q), s->scale);
    }
    return cgi_grads_made(n, gin);
}

/* t [lead..., rows, cols] (unit stride along cols) as a kernel result. */
static cgi_attn_out result_of(cg_tensor *t) {
    cgi_attn_out o = {.data = NULL};
    if (!t) return o;
    o.data = cgi_ptr(t);
    memcpy(o.lead, t->strides, sizeof(int64_t) * (size_t)(t->ndim - 2));
    o.rs = t->strides[t->ndim - 2];
    return o;
}

/* A gradient buffer for input t, or NULL when input i needs none. */
static cg_tensor *grad_buf(cg_ctx *ctx, const cg_node *n, int i, const cg_tensor *t) {
    return NEEDS(i) ? cgi_new_in_layout_of(ctx, "cg_backward", t, t->shape) : NULL;
}

/* The fused backward (tensor/attn_kernels.c); the graph form when recorded. */
static cg_status attn_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cg_tensor **gin) {
    if (cg_is_grad_enabled(ctx)) return composite_grads(ctx, n, g, gin);
    const attn_saved *s = cg_node_saved(n);
    const cg_tensor *mask = cg_node_ninputs(n) > 3 ? cg_node_input(n, 3) : NULL;
    const cg_tensor *gr = gemm_ready(ctx, g);
    if (!gr) return cg_last_status();
    cgi_attn a = problem(s->ready[0], s->ready[1], s->ready[2], mask, s->scale, s->causal);
    a.out = result_of((cg_tensor *)cg_node_output(n));
    a.lse = cgi_ptr(s->lse);
    a.g = mat_of(gr, gr->ndim - 2, gr->strides);
    for (int i = 0; i < 3; i++)
        if (NEEDS(i) && !(gin[i] = grad_buf(ctx, n, i, cg_node_input(n, i))))
            return cg_last_status();
    a.gq = result_of(gin[0]);
    a.gk = result_of(gin[1]);
    a.gv = result_of(gin[2]);
    cg_status st = run_units(ctx, "cg_backward", &a, cgi_attn_bwd_units(&a),
                             cgi_attn_bwd_scratch(&a), cgi_attn_bwd_unit);
    return st != CG_OK ? st : cgi_grads_made(n, gin);
}
static const cg_op attn_op = {"scaled_dot_product_attention", attn_backward,
                              CG_SAVES_ALL_INPUTS | CG_SAVES_OUTPUT};

/* Whether the op will be recorded (then the logsumexp is kept). */
static bool recording(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k, const cg_tensor *v) {
    return ctx && cg_is_grad_enabled(ctx) &&
           (q->requires_grad || k->requires_grad || v->requires_grad);
}

/* The fused forward of checked arguments; the copies gemm_ready makes with
 * ctx NULL are freed here. */
static cg_tensor *fused(cg_ctx *ctx, const cg_tensor *const *in, const cg_tensor *mask,
                        double scale, bool causal) {
    const cg_tensor *q = in[0], *k = in[1], *v = in[2];
    int n = q->ndim;
    attn_saved s = {.scale = scale, .causal = causal};
    int64_t shape[CG_MAX_DIMS];
    memcpy(shape, q->shape, sizeof shape);
    shape[n - 1] = v->shape[n - 1];
    cg_tensor *out = cgi_new_in_layout_of(ctx, NAME, q, shape);
    bool rec = recording(ctx, q, k, v), ok = out != NULL;
    if (ok && rec) ok = (s.lse = cgi_new(ctx, NAME, q->dtype, n - 1, q->shape)) != NULL;
    for (int i = 0; i < 3; i++) ok = ok && (s.ready[i] = gemm_ready(ctx, in[i])) != NULL;
    if (ok) {
        cgi_attn a = problem(s.ready[0], s.ready[1], s.ready[2], mask, scale, causal);
        a.out = result_of(out);
        a.lse = s.lse ? cgi_ptr(s.lse) : NULL;
        ok = run_units(ctx, NAME, &a, cgi_attn_fwd_units(&a), cgi_attn_fwd_scratch(&a),
                       cgi_attn_fwd_unit) == CG_OK;
    }
    for (int i = 0; !ctx && i < 3; i++)
        if (s.ready[i] && s.ready[i] != in[i]) cg_tensor_free((cg_tensor *)s.ready[i]);
    if (!ok) {
        if (!ctx) cg_tensor_free(out);
        return NULL;
    }
    const cg_tensor *inputs[4] = {q, k, v, mask};
    return cg_record(ctx, &attn_op, out, mask ? 4 : 3, inputs, &s, sizeof s);
}

cg_tensor *cg_scaled_dot_product_attention(cg_ctx *ctx, const cg_tensor *q, const cg_tensor *k,
                                           const cg_tensor *v, const cg_attn_opts *opts) {
    CGI_INPUT_CHECK(q, NAME, 0);
    CGI_INPUT_CHECK(k, NAME, 1);
    CGI_INPUT_CHECK(v, NAME, 2);
    cg_attn_opts o = opts ? *opts : cg_attn_defaults();
    if (o.mask) CGI_INPUT_CHECK(o.mask, NAME, 3);
    const cg_tensor *in[4] = {q, k, v, o.mask};
    if (!dtypes_ok(ctx, q, k, v, o.mask) || !shapes_ok(ctx, q, k, v) ||
        !mask_ok(ctx, q, k, o.mask) || !opts_ok(ctx, q, k, v, &o) || !ctx_ok(ctx, in, 4))
        return NULL;
    double scale = o.scale > 0 ? o.scale : 1.0 / sqrt((double)q->shape[q->ndim - 1]);
    if (o.dropout > 0 || (o.mask && o.mask->requires_grad && cg_is_grad_enabled(ctx)))
        return composite_entry(ctx, q, k, v, &o, scale);
    return fused(ctx, in, o.mask, scale, o.causal);
}
