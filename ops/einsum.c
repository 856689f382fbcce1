/* Products for sequence models: outer, bmm (torch.bmm: strictly 3-D, one
 * batched GEMM) and einsum.
 *
 * einsum is graph code on the public ops: each operand's repeated labels
 * become diagonals (masked_fill and sum), labels seen nowhere else are
 * summed, then operands are contracted left to right, each pair as one
 * permute / reshape / matmul / reshape, and the result is permuted to the
 * output's order. Every step is a differentiable op, so einsum has
 * gradients of any order. With ctx NULL it runs in a temporary context and
 * its result is copied out (inputs then must not require a gradient). */
#include "internal.h"

#include <string.h>

/* ---- composites with ctx NULL ------------------------------------------------------------ */
typedef cg_tensor *(*compose_fn)(cg_ctx *ctx, const cg_tensor *const *xs, const void *arg);

/* f(ctx, xs, arg); with ctx NULL in a temporary context, the result cloned out. */
static cg_tensor *composed(cg_ctx *ctx, const char *name, int n, const cg_tensor *const *xs,
                           compose_fn f, const void *arg) {
    if (ctx) return f(ctx, xs, arg);
    for (int i = 0; i < n; i++)
        if (xs[i]->requires_grad) {
            cgi_error(NULL, CG_ERR_STATE,
                      "%s: an input requires a gradient, so the result must be made in a "
                      "context (got NULL)",
                      name);
            return NULL;
        }
    cg_ctx *tmp = cg_ctx_new();
    if (!tmp) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory for a temporary context", name);
        return NULL;
    }
    cg_tensor *r = f(tmp, xs, arg);
    r = r ? cgi_clone(NULL, r) : NULL;
    cg_ctx_free(tmp);
    return r;
}

/* ---- outer ------------------------------------------------------------------------------- */
static cg_tensor *outer_fn(cg_ctx *ctx, const cg_tensor *const *xs, const void *arg) {
    (void)arg;
    return cg_mul(ctx, cg_unsqueeze(ctx, xs[0], 1), cg_unsqueeze(ctx, xs[1], 0));
}

/* a [n], b [m] -> [n, m], a_i b_j (PyTorch's dtype promotion). */
cg_tensor *cg_outer(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    CGI_INPUT_CHECK(a, "cg_outer", 0);
    CGI_INPUT_CHECK(b, "cg_outer", 1);
    if (a->ndim != 1 || b->ndim != 1) {
        char sa[160], sb[160];
        cgi_error(ctx, CG_ERR_SHAPE, "cg_outer: %s and %s: both must be 1-D",
                  cg_shape_str(a, sa, sizeof sa), cg_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    return composed(ctx, "cg_outer", 2, (const cg_tensor *[]){a, b}, outer_fn, NULL);
}

/* ---- bmm --------------------------------------------------------------------------------- */
static cg_status bmm_check(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    char sa[160], sb[160]; /* formatted only for a message */
#define SHAPES cg_shape_str(a, sa, sizeof sa), cg_shape_str(b, sb, sizeof sb)
    if (a->ndim != 3 || b->ndim != 3)
        return cgi_error(ctx, CG_ERR_SHAPE, "cg_bmm: %s x %s: both operands must be 3-D",
                         SHAPES);
    if (!cgi_is_float(a->dtype) || a->dtype != b->dtype)
        return cgi_error(ctx, CG_ERR_DTYPE,
                         "cg_bmm: %s x %s: dtypes %s and %s (need one float dtype)", SHAPES,
                         cg_dtype_name(a->dtype), cg_dtype_name(b->dtype));
    if (a->shape[0] != b->shape[0])
        return cgi_error(ctx, CG_ERR_SHAPE, "cg_bmm: %s x %s: batch sizes %lld and %lld differ",
                         SHAPES, (long long)a->shape[0], (long long)b->shape[0]);
    if (a->shape[2] != b->shape[1])
        return cgi_error(ctx, CG_ERR_SHAPE, "cg_bmm: %s x %s: inner dims %lld != %lld", SHAPES,
                         (long long)a->shape[2], (long long)b->shape[1]);
#undef SHAPES
    return CG_OK;
}

/* c [B, m, n] = a [B, m, k] b [B, k, n]: one batched GEMM on the operands' strides. */
static cg_tensor *bmm_forward(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    int64_t nb = a->shape[0], m = a->shape[1], k = a->shape[2], n = b->shape[2];
    cg_tensor *c = cgi_new(ctx, "cg_bmm", a->dtype, 3, (const int64_t[]){nb, m, n});
    if (!c) return NULL;
    cg_status s =
        cgi_gemm_batched(a->dtype, false, false, nb, m, n, k, 1.0,
                         (cgi_mat){cgi_ptr(a), a->strides[1], a->strides[2]}, a->strides[0],
                         (cgi_mat){cgi_ptr(b), b->strides[1], b->strides[2]}, b->strides[0],
                         0.0, cgi_ptr(c), n, 1, m * n);
    if (s == CG_OK) return c;
    cg_tensor_free(c);
    return NULL;
}

/* dA = g B^T, dB = A^T g (transposes as views). */
static cg_status bmm_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                              cg_tensor **gin) {
    const cg_tensor *a = cg_node_input(n, 0), *b = cg_node_input(n, 1);
    if (cg_node_needs_grad(n, 0)) gin[0] = cg_bmm(ctx, g, cg_transpose(ctx, b, 1, 2));
    if (cg_node_needs_grad(n, 1)) gin[1] = cg_bmm(ctx, cg_transpose(ctx, a, 1, 2), g);
    return cgi_grads_made(n, gin);
}
static const cg_op bmm_op = {"bmm", bmm_backward, CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};

cg_tensor *cg_bmm(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    CGI_INPUT_CHECK(a, "cg_bmm", 0);
    CGI_INPUT_CHECK(b, "cg_bmm", 1);
    if (bmm_check(ctx, a, b) != CG_OK) return NULL;
    return CGI_RECORD(ctx, &bmm_op, bmm_forward(ctx, a, b), a, b);
}

/* ---- einsum: parsing --------------------------------------------------------------------- */
/* Labels: 'A'-'Z' are 0-25, 'a'-'z' 26-51 (PyTorch's order for the implicit
 * output), the dims an ellipsis stands for 52-59, right-aligned over the
 * operands (the broadcast rule). */
#define LETTERS  52
#define NLABELS  (LETTERS + CG_MAX_DIMS)
#define MAX_OPS  16
#define MAX_TERM 64

typedef struct term {
    int n;   /* labels written (the ellipsis not counted) */
    int ell; /* the ellipsis' position among them, -1 for none */
    int8_t lab[MAX_TERM];
} term;

/* A labelled operand: dim i has label lab[i]. */
typedef struct lt {
    cg_tensor *t;
    int n;
    int8_t lab[CG_MAX_DIMS];
} lt;

typedef struct plan {
    int nops, nell; /* operands, dims under the widest ellipsis */
    lt in[MAX_OPS];
    int nout;
    int8_t out[NLABELS];
    int64_t size[NLABELS]; /* each label's size, broadcast over operands; -1 unseen */
    int uses[NLABELS];     /* how many operand dims carry it */
    const char *eq;
    const char *fn; /* the function called, for messages: cg_einsum or cg_einsum_n */
} plan;

static bool syntax_error(cg_ctx *ctx, const plan *p, int at, const char *what) {
    cgi_error(ctx, CG_ERR_ARG, "%s: '%s': %s at index %d", p->fn, p->eq, what, at);
    return false;
}

/* One character at eq[*i] of term t; false on a syntax error. */
static bool parse_char(cg_ctx *ctx, const plan *p, int *i, term *t) {
    const char *eq = p->eq;
    char c = eq[*i];
    if (c == '.') {
        if (eq[*i + 1] != '.' || eq[*i + 2] != '.')
            return syntax_error(ctx, p, *i, "'.' that is not part of an ellipsis");
        if (t->ell >= 0) return syntax_error(ctx, p, *i, "a second ellipsis in one term");
        t->ell = t->n;
        *i += 2;
        return true;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
        return syntax_error(ctx, p, *i, "invalid subscript (subscripts are a-z, A-Z)");
    if (t->n == MAX_TERM) return syntax_error(ctx, p, *i, "too many subscripts in one term");
    t->lab[t->n++] = (int8_t)(c <= 'Z' ? c - 'A' : 26 + c - 'a');
    return true;
}

/* The equation into input terms (*nin of them) and an output term
 * (*explicit_out: whether "->" was given). Spaces are ignored. */
static bool parse(cg_ctx *ctx, const plan *p, term *in, int *nin, term *out,
                  bool *explicit_out) {
    const char *eq = p->eq;
    term *t = &in[0];
    *nin = 1;
    *explicit_out = false;
    memset(t, 0, sizeof *t);
    t->ell = -1;
    for (int i = 0; eq[i]; i++) {
        if (eq[i] == ' ') continue;
        if (eq[i] == ',' && !*explicit_out) {
            if (*nin == MAX_OPS) return syntax_error(ctx, p, i, "more than 16 operands");
            t = &in[(*nin)++];
        } else if (eq[i] == '-' && eq[i + 1] == '>' && !*explicit_out) {
            *explicit_out = true;
            t = out;
            i++;
        } else {
            if (!parse_char(ctx, p, &i, t)) return false;
            continue;
        }
        memset(t, 0, sizeof *t);
        t->ell = -1;
    }
    return true;
}

/* ---- einsum: labels and sizes ------------------------------------------------------------ */
/* Operand i's term over its rank: ellipsis dims get their labels. */
static bool label_operand(cg_ctx *ctx, plan *p, int i, const term *t, const cg_tensor *x) {
    int e = x->ndim - t->n; /* dims under the ellipsis */
    if (t->ell < 0 ? e != 0 : e < 0) {
        char sx[160];
        cgi_error(ctx, CG_ERR_SHAPE,
                  "%s: '%s': operand %d has %d subscripts for a tensor %s of rank %d%s", p->fn,
                  p->eq, i, t->n, cg_shape_str(x, sx, sizeof sx), x->ndim,
                  t->ell < 0 ? " and no ellipsis" : "");
        return false;
    }
    lt *o = &p->in[i];
    o->t = (cg_tensor *)x;
    o->n = x->ndim;
    for (int k = 0, w = 0; k < x->ndim; k++) {
        bool under = t->ell >= 0 && k >= t->ell && k < t->ell + e;
        o->lab[k] = under ? (int8_t)(LETTERS + p->nell - e + (k - t->ell)) : t->lab[w++];
    }
    return true;
}

/* Sizes agree: a label repeated in one operand exactly, across operands up
 * to broadcasting (1 against n). */
static bool size_label(cg_ctx *ctx, plan *p, int i, int k) {
    const lt *o = &p->in[i];
    int l = o->lab[k];
    int64_t s = o->t->shape[k];
    for (int j = 0; j < k; j++)
        if (o->lab[j] == l && o->t->shape[j] != s) {
            cgi_error(ctx, CG_ERR_SHAPE,
                      "%s: '%s': subscript %c is repeated for operand %d but the sizes "
                      "don't match, %lld != %lld",
                      p->fn, p->eq, l < 26 ? 'A' + l : 'a' + l - 26, i,
                      (long long)o->t->shape[j], (long long)s);
            return false;
        }
    if (p->size[l] >= 0 && p->size[l] != s && p->size[l] != 1 && s != 1) {
        char name[8];
        snprintf(name, sizeof name, "%c", l < 26 ? 'A' + l : l < LETTERS ? 'a' + l - 26 : '.');
        cgi_error(ctx, CG_ERR_SHAPE,
                  "%s: '%s': subscript %s has size %lld for operand %d, which does not "
                  "broadcast with size %lld",
                  p->fn, p->eq, l < LETTERS ? name : "of the ellipsis", (long long)s, i,
                  (long long)p->size[l]);
        return false;
    }
    if (p->size[l] < 0 || p->size[l] == 1) p->size[l] = s;
    p->uses[l]++;
    return true;
}

/* The output: as written (each label once, all from the inputs), or
 * implicit: the ellipsis, then the labels used once, in label order. */
static bool output_labels(cg_ctx *ctx, plan *p, const term *out, bool explicit_out) {
    p->nout = 0;
    if (!explicit_out) {
        for (int l = LETTERS; l < LETTERS + p->nell; l++) p->out[p->nout++] = (int8_t)l;
        for (int l = 0; l < LETTERS; l++)
            if (p->uses[l] == 1) p->out[p->nout++] = (int8_t)l;
        return true;
    }
    bool seen[NLABELS] = {false};
    for (int k = 0, w = 0; k < out->n || (out->ell == k && w < p->nell);) {
        if (out->ell == k && w < p->nell) { /* the ellipsis' dims, in place */
            p->out[p->nout++] = (int8_t)(LETTERS + w++);
            continue;
        }
        int l = out->lab[k++];
        char c = (char)(l < 26 ? 'A' + l : 'a' + l - 26);
        if (p->uses[l] == 0 || seen[l]) {
            cgi_error(ctx, CG_ERR_ARG, "%s: '%s': output subscript %c %s", p->fn, p->eq, c,
                      seen[l] ? "appears more than once in the output"
                              : "does not appear in the equation for any input operand");
            return false;
        }
        seen[l] = true;
        p->out[p->nout++] = (int8_t)l;
    }
    return true;
}

/* The whole plan: terms over the operands, sizes, output; dtypes. */
static bool make_plan(cg_ctx *ctx, plan *p, const char *fn, const char *eq, int n,
                      const cg_tensor *const *xs) {
    term in[MAX_OPS], out;
    int nin;
    bool explicit_out;
    memset(p, 0, sizeof *p);
    p->eq = eq;
    p->fn = fn;
    if (!parse(ctx, p, in, &nin, &out, &explicit_out)) return false;
    if (nin != n) {
        cgi_error(ctx, CG_ERR_ARG, "%s: '%s' has %d operands, %d given", fn, eq, nin, n);
        return false;
    }
    p->nops = n;
    for (int i = 0; i < n; i++)
        if (xs[i]->ndim - in[i].n > p->nell && in[i].ell >= 0) p->nell = xs[i]->ndim - in[i].n;
    for (int l = 0; l < NLABELS; l++) p->size[l] = -1;
    for (int i = 0; i < n; i++) {
        if (!label_operand(ctx, p, i, &in[i], xs[i])) return false;
        for (int k = 0; k < p->in[i].n; k++)
            if (!size_label(ctx, p, i, k)) return false;
    }
    if (!output_labels(ctx, p, &out, explicit_out)) return false;
    for (int i = 1; i < n; i++)
        if (!cgi_is_float(xs[i]->dtype) || xs[i]->dtype != xs[0]->dtype ||
            !cgi_is_float(xs[0]->dtype)) {
            cgi_error(ctx, CG_ERR_DTYPE,
                      "%s: '%s': operands 0 and %d are %s and %s (contractions need "
                      "one float dtype)",
                      fn, eq, i, cg_dtype_name(xs[0]->dtype), cg_dtype_name(xs[i]->dtype));
            return false;
        }
    int64_t shape[NLABELS];
    for (int k = 0; k < p->nout; k++) shape[k] = p->size[p->out[k]];
    if (p->nout > CG_MAX_DIMS)
        cgi_error(ctx, CG_ERR_SHAPE, "%s: '%s': output of rank %d (at most %d)", fn, eq,
                  p->nout, CG_MAX_DIMS);
    return p->nout <= CG_MAX_DIMS && cgi_check_shape(ctx, fn, p->nout, shape) == CG_OK;
}

/* ---- einsum: running the plan ------------------------------------------------------------ */
static int find(const int8_t *lab, int n, int l) {
    for (int k = 0; k < n; k++)
        if (lab[k] == l) return k;
    return -1;
}

/* o's dims k and j (k < j, one label) replaced by their diagonal at k:
 * off-diagonal entries set to 0 (not multiplied: inf and NaN stay put),
 * then dim j summed away. */
static void take_diagonal(cg_ctx *ctx, lt *o, int k, int j) {
    int64_t n = o->t->shape[k], shape[CG_MAX_DIMS];
    for (int d = 0; d < o->n; d++) shape[d] = d == k || d == j ? n : 1;
    cg_tensor *off = cg_eq_scalar(ctx, cg_eye(ctx, CG_F32, n, n), 0);
    off = cg_reshape(ctx, off, o->n, shape);
    o->t = cg_sum(ctx, cg_masked_fill(ctx, o->t, off, 0), (const int[]){j}, 1, false);
    memmove(o->lab + j, o->lab + j + 1, (size_t)(o->n - j - 1));
    o->n--;
}

/* Whether label l is needed after operand i: by the output or operands > i. */
static bool needed_after(const plan *p, int i, int l) {
    if (find(p->out, p->nout, l) >= 0) return true;
    for (int j = i + 1; j < p->nops; j++)
        if (find(p->in[j].lab, p->in[j].n, l) >= 0) return true;
    return false;
}

/* Operand i alone: diagonals, then labels no other operand nor the output
 * has are summed. */
static void reduce_operand(cg_ctx *ctx, plan *p, int i) {
    lt *o = &p->in[i];
    for (int k = 0; k < o->n && o->t; k++)
        for (int j = k + 1; j < o->n && o->t; j++)
            if (o->lab[j] == o->lab[k]) take_diagonal(ctx, o, k, j--);
    int axes[CG_MAX_DIMS], na = 0, w = 0;
    for (int k = 0; k < o->n; k++) {
        bool elsewhere = find(p->out, p->nout, o->lab[k]) >= 0;
        for (int j = 0; j < p->nops && !elsewhere; j++)
            elsewhere = j != i && find(p->in[j].lab, p->in[j].n, o->lab[k]) >= 0;
        if (elsewhere)
            o->lab[w++] = o->lab[k];
        else
            axes[na++] = k;
    }
    if (na > 0 && o->t) o->t = cg_sum(ctx, o->t, axes, na, false);
    o->n = w;
}

/* The roles of the labels of a pair: batch (both, kept), contracted (both,
 * not kept), left (a only), right (b only); each list in a's or b's order. */
typedef struct roles {
    int nb, nc, nl, nr;
    int8_t b[CG_MAX_DIMS], c[CG_MAX_DIMS], l[CG_MAX_DIMS], r[CG_MAX_DIMS];
} roles;

static void split_roles(const plan *p, int i, const lt *a, const lt *b, roles *r) {
    memset(r, 0, sizeof *r);
    for (int k = 0; k < a->n; k++) {
        int l = a->lab[k];
        if (find(b->lab, b->n, l) < 0)
            r->l[r->nl++] = (int8_t)l;
        else if (needed_after(p, i, l))
            r->b[r->nb++] = (int8_t)l;
        else
            r->c[r->nc++] = (int8_t)l;
    }
    for (int k = 0; k < b->n; k++)
        if (find(a->lab, a->n, b->lab[k]) < 0) r->r[r->nr++] = b->lab[k];
}

/* o permuted to the label lists given (concatenated), broadcast dims of the
 * first nexp labels expanded to the labels' sizes, reshaped to groups of
 * dims: one dim per group, its size the product. */
static cg_tensor *arrange(cg_ctx *ctx, const plan *p, const lt *o, const int8_t *const *lists,
                          const int *lens, int ngroups, int nexp) {
    int perm[CG_MAX_DIMS], nd = 0;
    int64_t full[CG_MAX_DIMS], grouped[3];
    for (int g = 0; g < ngroups; g++) {
        grouped[g] = 1;
        for (int k = 0; k < lens[g]; k++, nd++) {
            perm[nd] = find(o->lab, o->n, lists[g][k]);
            full[nd] = nd < nexp ? p->size[lists[g][k]] : o->t->shape[perm[nd]];
            grouped[g] *= full[nd];
        }
    }
    cg_tensor *t = cg_expand(ctx, cg_permute(ctx, o->t, perm), nd, full);
    return cg_reshape(ctx, t, ngroups, grouped);
}

/* A contracted label of size 1 on one side and n on the other: the n side
 * summed over it first (keepdim), as a_1 sum_k b_k = sum_k a_1 b_k. */
static void fold_broadcast(cg_ctx *ctx, lt *a, lt *b, const roles *r) {
    for (int k = 0; k < r->nc; k++) {
        int ia = find(a->lab, a->n, r->c[k]), ib = find(b->lab, b->n, r->c[k]);
        if (!a->t || !b->t || a->t->shape[ia] == b->t->shape[ib]) continue;
        lt *big = a->t->shape[ia] == 1 ? b : a;
        int d = big == a ? ia : ib;
        big->t = cg_sum(ctx, big->t, (const int[]){d}, 1, true);
    }
}

/* Whether a product of sizes stays within cgi_new's element limit. */
static bool product_ok(const plan *p, const int8_t *lab, int n, int64_t *prod) {
    for (int k = 0; k < n; k++) {
        int64_t s = p->size[lab[k]];
        if (s > 0 && *prod > (INT64_MAX / 16) / s) return false;
        *prod *= s;
    }
    return true;
}

/* a and b (operand i) contracted: [batch, left, contracted] x [batch,
 * contracted, right] as one batched matmul; the result's labels are batch,
 * left, right. */
static bool contract(cg_ctx *ctx, const plan *p, int i, lt *a, lt *b) {
    roles r;
    split_roles(p, i, a, b, &r);
    int64_t prod = 1;
    if (r.nb + r.nl + r.nr > CG_MAX_DIMS || !product_ok(p, r.b, r.nb, &prod) ||
        !product_ok(p, r.l, r.nl, &prod) || !product_ok(p, r.r, r.nr, &prod)) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "%s: '%s': contracting operand %d makes an intermediate of %d dims "
                  "(at most %d) or too many elements",
                  p->fn, p->eq, i, r.nb + r.nl + r.nr, CG_MAX_DIMS);
        return false;
    }
    fold_broadcast(ctx, a, b, &r);
    if (!a->t || !b->t) return false;
    cg_tensor *a3 = arrange(ctx, p, a, (const int8_t *const[]){r.b, r.l, r.c},
                            (const int[]){r.nb, r.nl, r.nc}, 3, r.nb);
    cg_tensor *b3 = arrange(ctx, p, b, (const int8_t *const[]){r.b, r.c, r.r},
                            (const int[]){r.nb, r.nc, r.nr}, 3, r.nb);
    int64_t shape[CG_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < r.nb; k++) shape[nd++] = p->size[r.b[k]];
    for (int k = 0; k < r.nl; k++) shape[nd++] = a->t->shape[find(a->lab, a->n, r.l[k])];
    for (int k = 0; k < r.nr; k++) shape[nd++] = b->t->shape[find(b->lab, b->n, r.r[k])];
    a->t = cg_reshape(ctx, cg_matmul(ctx, a3, b3), nd, shape);
    a->n = 0;
    for (int k = 0; k < r.nb; k++) a->lab[a->n++] = r.b[k];
    for (int k = 0; k < r.nl; k++) a->lab[a->n++] = r.l[k];
    for (int k = 0; k < r.nr; k++) a->lab[a->n++] = r.r[k];
    return a->t != NULL;
}

static cg_tensor *einsum_fn(cg_ctx *ctx, const cg_tensor *const *xs, const void *arg) {
    (void)xs;
    plan *p = (plan *)arg;
    for (int i = 0; i < p->nops; i++) {
        reduce_operand(ctx, p, i);
        if (!p->in[i].t) return NULL;
    }
    lt acc = p->in[0];
    for (int i = 1; i < p->nops; i++)
        if (!contract(ctx, p, i, &acc, &p->in[i])) return NULL;
    int perm[CG_MAX_DIMS];
    for (int k = 0; k < p->nout; k++) perm[k] = find(acc.lab, acc.n, p->out[k]);
    return cg_permute(ctx, acc.t, perm);
}

/* ---- einsum: entry points ---------------------------------------------------------------- */
/* Both entry points, errors named fn. */
static cg_tensor *einsum(cg_ctx *ctx, const char *fn, const char *equation, int n,
                         const cg_tensor *const *operands) {
    if (!equation || n < 1 || n > MAX_OPS || !operands) {
        cgi_error(ctx, CG_ERR_ARG, "%s: needs an equation and 1 to %d operands (got %d)", fn,
                  MAX_OPS, n);
        return NULL;
    }
    for (int i = 0; i < n; i++) CGI_INPUT_CHECK(operands[i], fn, i);
    plan p;
    if (!make_plan(ctx, &p, fn, equation, n, operands)) return NULL;
    return composed(ctx, fn, n, operands, einsum_fn, &p);
}

cg_tensor *cg_einsum_n(cg_ctx *ctx, const char *equation, int n,
                       const cg_tensor *const *operands) {
    return einsum(ctx, "cg_einsum_n", equation, n, operands);
}

/* One or two operands, as the equation says: b is not read for one. */
cg_tensor *cg_einsum(cg_ctx *ctx, const char *equation, const cg_tensor *a,
                     const cg_tensor *b) {
    int n = 1;
    for (const char *c = equation; c && *c && !(c[0] == '-' && c[1] == '>'); c++)
        n += *c == ',';
    if (n > 2 || (n == 1 && b)) {
        cgi_error(ctx, CG_ERR_ARG,
                  "cg_einsum: '%s' has %d operand%s, %d given (cg_einsum_n takes any number)",
                  equation ? equation : "(null)", n, n == 1 ? "" : "s", b ? 2 : 1);
        return NULL;
    }
    return einsum(ctx, "cg_einsum", equation, n, (const cg_tensor *const[]){a, b});
}
