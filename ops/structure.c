/* Masking and structure ops for sequence models: comparisons with a number,
 * masked_fill and where with a scalar, tril and triu, cumsum and cumprod,
 * flip, roll, repeat, and split / chunk (views).
 *
 * Each backward is written with these same ops (masked_fill's is a
 * masked_fill, flip's a flip, roll's a roll back, repeat's a fold whose
 * gradient is the repeat), so gradients of any order work. cumprod's first
 * gradient is one exact O(n) kernel; with CG_CREATE_GRAPH it is built from
 * differentiable ops instead (PyTorch's O(n^2) formula). */
#include "../tensor/seq_kernels.h"
#include "internal.h"

#include <math.h>
#include <string.h>

#define NEEDS(i) cg_node_needs_grad(n, i)

/* ---- scalars ----------------------------------------------------------------------------- */
/* Whether s is an integer an i64 holds. An i64 tensor's op with such an s
 * stays i64, as with a Python int; any other s makes it f32, as a Python
 * float does in PyTorch (cgrad's scalar arithmetic does the same). */
static cg_dtype scalar_dtype(const cg_tensor *x, double s) {
    return x->dtype == CG_I64 && !cgi_f64_is_i64(s) ? CG_F32 : x->dtype;
}

/* value converts to dt without overflow: PyTorch refuses the rest. */
static bool value_fits(cg_ctx *ctx, const char *name, cg_dtype dt, double v) {
    return cgi_check_value(ctx, name, dt, v) == CG_OK;
}

/* ---- comparisons with a number: masks, no gradient --------------------------------------- */
/* i64 x against a non-integral s is compared in f32, as PyTorch does. */
static cg_tensor *compare_scalar(cg_ctx *ctx, const char *name, const cgi_binary_kernel *k,
                                 const cg_tensor *x, double s) {
    CGI_INPUT_CHECK(x, name, 0);
    cg_dtype dt = scalar_dtype(x, s);
    if (dt == x->dtype) return cgi_compare_scalar(ctx, name, k, x, s);
    cg_tensor *xf = cgi_new(ctx, name, dt, x->ndim, x->shape);
    if (xf) cgi_copy_convert(xf, x);
    cg_tensor *out = xf ? cgi_compare_scalar(ctx, name, k, xf, s) : NULL;
    if (!ctx) cg_tensor_free(xf);
    return out;
}

#define COMPARE_SCALAR(op)                                                                     \
    cg_tensor *cg_##op##_scalar(cg_ctx *ctx, const cg_tensor *x, double s) {                   \
        return compare_scalar(ctx, "cg_" #op "_scalar", &cgi_binary_##op, x, s);               \
    }
COMPARE_SCALAR(gt)
COMPARE_SCALAR(lt)
COMPARE_SCALAR(ge)
COMPARE_SCALAR(le)
COMPARE_SCALAR(eq)
COMPARE_SCALAR(ne)

/* ---- masked_fill and where with a scalar ------------------------------------------------- */
/* cond ? value : x (value_first) or cond ? x : value, over the broadcast
 * shape of cond and x, in dtype dt (x converted when it differs). cond may
 * have any dtype: nonzero (NaN too) is true. No graph. */
static cg_tensor *mask_where(cg_ctx *ctx, const char *name, const cg_tensor *cond,
                             const cg_tensor *x, double value, bool value_first, cg_dtype dt) {
    int nd;
    int64_t shape[CG_MAX_DIMS];
    if (cgi_broadcast(ctx, name, x->ndim, x->shape, cond->ndim, cond->shape, &nd, shape) !=
        CG_OK)
        return NULL;
    cg_tensor *conv = NULL;
    if (x->dtype != dt && (conv = cgi_new(ctx, name, dt, x->ndim, x->shape))) {
        cgi_copy_convert(conv, x);
    }
    const cg_tensor *x2 = x->dtype == dt ? x : conv;
    cg_tensor *out = x2 ? cgi_new(ctx, name, dt, nd, shape) : NULL;
    if (out) {
        cg_tensor st;
        cgi_storage sto;
        cgi_scalar v;
        const cg_tensor *sc = cgi_stack_scalar(&st, &sto, &v, dt, value);
        cgi_map_ternary(cgi_mask_where_fn[dt][cond->dtype], cond, value_first ? sc : x2,
                        value_first ? x2 : sc, out);
    }
    if (!ctx) cg_tensor_free(conv);
    return out;
}

/* The gradient passes where the mask is 0; the mask gets none (zeros). */
static cg_status masked_fill_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                      cg_tensor **gin) {
    const cg_tensor *mask = cg_node_input(n, 1);
    if (NEEDS(0))
        gin[0] = cgi_grad_like(ctx, cg_masked_fill(ctx, g, mask, 0), cg_node_input(n, 0));
    if (NEEDS(1)) gin[1] = cg_zeros_like(ctx, mask);
    return cgi_grads_made(n, gin);
}
static const cg_op masked_fill_op = {"masked_fill", masked_fill_backward, CG_SAVES_INPUT(1)};

cg_tensor *cg_masked_fill(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *mask,
                          double value) {
    CGI_INPUT_CHECK(x, "cg_masked_fill", 0);
    CGI_INPUT_CHECK(mask, "cg_masked_fill", 1);
    if (!value_fits(ctx, "cg_masked_fill", x->dtype, value)) return NULL;
    cg_tensor *y = mask_where(ctx, "cg_masked_fill", mask, x, value, true, x->dtype);
    return CGI_RECORD(ctx, &masked_fill_op, y, x, mask);
}

static cg_status where_scalar_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                       cg_tensor **gin) {
    const cg_tensor *cond = cg_node_input(n, 0);
    if (NEEDS(0)) gin[0] = cg_zeros_like(ctx, cond);
    if (NEEDS(1))
        gin[1] = cgi_grad_like(ctx, cg_where_scalar(ctx, cond, g, 0), cg_node_input(n, 1));
    return cgi_grads_made(n, gin);
}
static const cg_op where_scalar_op = {"where_scalar", where_scalar_backward, CG_SAVES_INPUT(0)};

cg_tensor *cg_where_scalar(cg_ctx *ctx, const cg_tensor *cond, const cg_tensor *x,
                           double value) {
    CGI_INPUT_CHECK(cond, "cg_where_scalar", 0);
    CGI_INPUT_CHECK(x, "cg_where_scalar", 1);
    cg_dtype dt = scalar_dtype(x, value);
    if (!value_fits(ctx, "cg_where_scalar", dt, value)) return NULL;
    cg_tensor *y = mask_where(ctx, "cg_where_scalar", cond, x, value, false, dt);
    return CGI_RECORD(ctx, &where_scalar_op, y, cond, x);
}

/* ---- tril, triu -------------------------------------------------------------------------- */
typedef struct tri_args {
    int64_t diagonal;
    bool upper;
} tri_args;

static cg_tensor *triangle(cg_ctx *ctx, const cg_tensor *x, int64_t diagonal, bool upper);

/* The same triangle of the gradient. */
static cg_status triangle_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                   cg_tensor **gin) {
    const tri_args *a = cg_node_saved(n);
    gin[0] = triangle(ctx, g, a->diagonal, a->upper);
    return cgi_grads_made(n, gin);
}
static const cg_op tril_op = {"tril", triangle_backward, 0};
static const cg_op triu_op = {"triu", triangle_backward, 0};

/* x [..., R, C]: a copy with the left-out triangle of every matrix zeroed. */
static cg_tensor *triangle(cg_ctx *ctx, const cg_tensor *x, int64_t diagonal, bool upper) {
    const char *name = upper ? "cg_triu" : "cg_tril";
    CGI_INPUT_CHECK(x, name, 0);
    if (x->ndim < 2) {
        char sx[160];
        cgi_error(ctx, CG_ERR_SHAPE, "%s: input %s must have at least 2 dims", name,
                  cg_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    cg_tensor *y = cgi_new(ctx, name, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    cgi_copy_convert(y, x);
    cgi_zero_triangle(y, diagonal, upper);
    tri_args a = {diagonal, upper};
    return cg_record(ctx, upper ? &triu_op : &tril_op, y, 1, &x, &a, sizeof a);
}

cg_tensor *cg_tril(cg_ctx *ctx, const cg_tensor *x, int64_t diagonal) {
    return triangle(ctx, x, diagonal, false);
}
cg_tensor *cg_triu(cg_ctx *ctx, const cg_tensor *x, int64_t diagonal) {
    return triangle(ctx, x, diagonal, true);
}

/* ---- cumsum ------------------------------------------------------------------------------ */
typedef struct cum_args {
    int dim;
    bool reverse;
} cum_args;

/* dim of x for a line op: a rank-0 x takes 0 or -1 (seen as [1]). */
static bool line_dim(cg_ctx *ctx, const char *name, const cg_tensor *x, int dim, int *d) {
    return cgi_axis(ctx, name, x->ndim ? x->ndim : 1, dim, d) == CG_OK;
}

static cg_tensor *cumsum_dir(cg_ctx *ctx, const char *name, const cg_tensor *x, int dim,
                             bool reverse);

/* The gradient of a cumsum is the cumsum of g from the other end. */
static cg_status cumsum_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                 cg_tensor **gin) {
    const cum_args *a = cg_node_saved(n);
    gin[0] = cumsum_dir(ctx, "cg_backward", g, a->dim, !a->reverse);
    return cgi_grads_made(n, gin);
}
static const cg_op cumsum_op = {"cumsum", cumsum_backward, 0};

static cg_tensor *cumsum_dir(cg_ctx *ctx, const char *name, const cg_tensor *x, int dim,
                             bool reverse) {
    CGI_INPUT_CHECK(x, name, 0);
    int d;
    if (!line_dim(ctx, name, x, dim, &d)) return NULL;
    cg_tensor *y = cgi_new(ctx, name, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    cg_tensor hx = cgi_as_line(x), hy = cgi_as_line(y);
    cgi_cumsum(&hx, d, reverse, &hy);
    cum_args a = {d, reverse};
    return cg_record(ctx, &cumsum_op, y, 1, &x, &a, sizeof a);
}

cg_tensor *cg_cumsum(cg_ctx *ctx, const cg_tensor *x, int dim) {
    return cumsum_dir(ctx, "cg_cumsum", x, dim, false);
}

/* ---- cumprod ----------------------------------------------------------------------------- */
/* The exact O(n) gradient (no graph): for a plain backward. */
static cg_tensor *cumprod_grad_direct(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *g,
                                      int d) {
    cg_tensor *dx = cgi_new(ctx, "cg_backward", x->dtype, x->ndim, x->shape);
    if (!dx) return NULL;
    cg_tensor hx = cgi_as_line(x), hg = cgi_as_line(g), hd = cgi_as_line(dx);
    cgi_cumprod_grad(&hx, &hg, d, &hd);
    return dx;
}

/* The same in differentiable ops, for CG_CREATE_GRAPH. With x's dim d moved
 * last and the rest flattened, x2 [B, n]: M[b, k, j] = prod over i <= j,
 * i != k of x2[b, i] for j >= k, else 0 (x2 with x_k set to 1, cumprod,
 * upper triangle); dx2[b, k] = sum_j M[b, k, j] g2[b, j]. Exact with zeros;
 * n^2 memory per line, as PyTorch's double-backward path. */
static cg_tensor *cumprod_grad_graph(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *g,
                                     int d) {
    int64_t n = x->shape[d], tshape[CG_MAX_DIMS];
    memcpy(tshape, x->shape, sizeof tshape);
    tshape[d] = x->shape[x->ndim - 1];
    tshape[x->ndim - 1] = n;
    const int64_t rows[2] = {-1, n};
    cg_tensor *x2 = cg_reshape(ctx, cg_transpose(ctx, x, d, -1), 2, rows);
    cg_tensor *g2 = cg_reshape(ctx, cg_transpose(ctx, g, d, -1), 2, rows);
    cg_tensor *xs = cg_expand(ctx, cg_unsqueeze(ctx, x2, 1), CG_SHAPE(-1, n, n));
    cg_tensor *ones_at_k = cg_masked_fill(ctx, xs, cg_eye(ctx, CG_F32, n, n), 1);
    cg_tensor *m = cg_triu(ctx, cg_cumprod(ctx, ones_at_k, 2), 0);
    cg_tensor *dx2 = cg_squeeze(ctx, cg_matmul(ctx, m, cg_unsqueeze(ctx, g2, 2)), 2);
    return cg_transpose(ctx, cg_reshape(ctx, dx2, x->ndim, tshape), d, -1);
}

static cg_status cumprod_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                  cg_tensor **gin) {
    const cg_tensor *x = cg_node_input(n, 0);
    int d = *(const int *)cg_node_saved(n);
    if (x->ndim == 0 || x->shape[d] <= 1)
        gin[0] = (cg_tensor *)g; /* one factor: dy/dx = 1 */
    else if (cg_is_grad_enabled(ctx))
        gin[0] = cumprod_grad_graph(ctx, x, g, d);
    else
        gin[0] = cumprod_grad_direct(ctx, x, g, d);
    return cgi_grads_made(n, gin);
}
static const cg_op cumprod_op = {"cumprod", cumprod_backward, CG_SAVES_INPUT(0)};

cg_tensor *cg_cumprod(cg_ctx *ctx, const cg_tensor *x, int dim) {
    CGI_INPUT_CHECK(x, "cg_cumprod", 0);
    int d;
    if (!line_dim(ctx, "cg_cumprod", x, dim, &d)) return NULL;
    cg_tensor *y = cgi_new(ctx, "cg_cumprod", x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    cg_tensor hx = cgi_as_line(x), hy = cgi_as_line(y);
    cgi_cumprod(&hx, d, &hy);
    return cg_record(ctx, &cumprod_op, y, 1, &x, &d, sizeof d);
}

/* ---- flip -------------------------------------------------------------------------------- */
/* dims (ndims of them, negative allowed, no repeats) as a bit mask of x's dims. */
static bool dims_mask(cg_ctx *ctx, const char *name, const cg_tensor *x, const int *dims,
                      int ndims, unsigned *mask) {
    *mask = 0;
    if (ndims < 0 || (ndims > 0 && !dims)) {
        cgi_error(ctx, CG_ERR_ARG, "%s: %d dims given as %p", name, ndims, (const void *)dims);
        return false;
    }
    for (int i = 0; i < ndims; i++) {
        int d;
        if (cgi_axis_of(ctx, name, x, dims[i], &d) != CG_OK) return false;
        if (*mask & (1u << d)) {
            cgi_error(ctx, CG_ERR_ARG, "%s: dim %d appears multiple times in the list of dims",
                      name, d);
            return false;
        }
        *mask |= 1u << d;
    }
    return true;
}

static cg_tensor *flip_mask(cg_ctx *ctx, const cg_tensor *x, unsigned mask);

static cg_status flip_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cg_tensor **gin) {
    gin[0] = flip_mask(ctx, g, *(const unsigned *)cg_node_saved(n));
    return cgi_grads_made(n, gin);
}
static const cg_op flip_op = {"flip", flip_backward, 0};

/* A copy of x read backwards along the dims of mask: through a header with
 * those strides negated, which never leaves this function (the elementwise
 * iterator takes strides of either sign). */
static cg_tensor *flip_mask(cg_ctx *ctx, const cg_tensor *x, unsigned mask) {
    cg_tensor *y = cgi_new(ctx, "cg_flip", x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    if (cgi_numel(x->ndim, x->shape) > 0) {
        cg_tensor h = *x;
        for (int d = 0; d < x->ndim; d++)
            if (mask & (1u << d)) {
                h.offset += (x->shape[d] - 1) * x->strides[d];
                h.strides[d] = -x->strides[d];
            }
        cgi_copy_convert(y, &h);
    }
    return cg_record(ctx, &flip_op, y, 1, &x, &mask, sizeof mask);
}

cg_tensor *cg_flip(cg_ctx *ctx, const cg_tensor *x, const int *dims, int ndims) {
    CGI_INPUT_CHECK(x, "cg_flip", 0);
    unsigned mask;
    if (!dims_mask(ctx, "cg_flip", x, dims, ndims, &mask)) return NULL;
    return flip_mask(ctx, x, mask);
}

/* ---- roll -------------------------------------------------------------------------------- */
/* Per dim, the shift in [0, size); flat: x rolled as one line in C order
 * (shift[0] then applies to it), as torch.roll without dims. */
typedef struct roll_args {
    int64_t shift[CG_MAX_DIMS];
    bool flat;
} roll_args;

static int64_t wrap(int64_t s, int64_t size) {
    if (size == 0) return 0;
    int64_t r = s % size;
    return r < 0 ? r + size : r;
}

static void narrow_header(cg_tensor *h, int d, int64_t start, int64_t len) {
    h->shape[d] = len;
    h->offset += start * h->strides[d];
}

/* out[.., (i + s) mod n, ..] = x[.., i, ..] along each dim with a shift s:
 * every such dim splits in two blocks, so 2^k block copies for k dims. */
static void roll_copy(cg_tensor *out, const cg_tensor *x, const int64_t *shift) {
    int dims[CG_MAX_DIMS], k = 0;
    for (int d = 0; d < x->ndim; d++)
        if (shift[d]) dims[k++] = d;
    for (unsigned b = 0; b < (1u << k); b++) {
        cg_tensor src = *x, dst = *out;
        for (int j = 0; j < k; j++) {
            int d = dims[j];
            int64_t n = x->shape[d], s = shift[d];
            bool head = b & (1u << j); /* out's [0, s) comes from x's [n - s, n) */
            narrow_header(&src, d, head ? n - s : 0, head ? s : n - s);
            narrow_header(&dst, d, head ? 0 : s, head ? s : n - s);
        }
        cgi_copy_convert(&dst, &src);
    }
}

/* t's elements in C order as a 1-D header; t contiguous. */
static cg_tensor as_flat(const cg_tensor *t) {
    cg_tensor h = *t;
    h.ndim = 1;
    h.shape[0] = cgi_numel(t->ndim, t->shape);
    h.strides[0] = 1;
    return h;
}

static cg_tensor *roll_apply(cg_ctx *ctx, const cg_tensor *x, const roll_args *a);

/* Rolled back: each shift s becomes size - s. */
static cg_status roll_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cg_tensor **gin) {
    roll_args b = *(const roll_args *)cg_node_saved(n);
    for (int d = 0; d < (b.flat ? 1 : g->ndim); d++) {
        int64_t size = b.flat ? cgi_numel(g->ndim, g->shape) : g->shape[d];
        b.shift[d] = wrap(-b.shift[d], size);
    }
    gin[0] = roll_apply(ctx, g, &b);
    return cgi_grads_made(n, gin);
}
static const cg_op roll_op = {"roll", roll_backward, 0};

static cg_tensor *roll_apply(cg_ctx *ctx, const cg_tensor *x, const roll_args *a) {
    cg_tensor *y = cgi_new(ctx, "cg_roll", x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    if (!a->flat) {
        roll_copy(y, x, a->shift);
    } else { /* the flat line needs x in C order: a contiguous copy if it is not */
        cg_tensor *c = NULL;
        if (!cgi_is_contiguous(x)) {
            if (!(c = cgi_new(ctx, "cg_roll", x->dtype, x->ndim, x->shape))) {
                cg_tensor_free(y);
                return NULL;
            }
            cgi_copy_convert(c, x);
        }
        cg_tensor fx = as_flat(c ? c : x), fy = as_flat(y);
        roll_copy(&fy, &fx, a->shift);
        if (!ctx) cg_tensor_free(c);
    }
    return cg_record(ctx, &roll_op, y, 1, &x, a, sizeof *a);
}

cg_tensor *cg_roll(cg_ctx *ctx, const cg_tensor *x, const int64_t *shifts, const int *dims,
                   int n) {
    CGI_INPUT_CHECK(x, "cg_roll", 0);
    roll_args a;
    memset(&a, 0, sizeof a);
    if (n < 1 || !shifts || (!dims && n != 1)) {
        cgi_error(ctx, CG_ERR_ARG,
                  "cg_roll: %d shifts%s: need one per dim, or one shift and no dims (flat)", n,
                  shifts ? "" : " (NULL)");
        return NULL;
    }
    a.flat = !dims;
    if (a.flat) a.shift[0] = wrap(shifts[0], cgi_numel(x->ndim, x->shape));
    for (int i = 0; dims && i < n; i++) { /* a dim listed twice rolls by the sum */
        int d;
        if (cgi_axis_of(ctx, "cg_roll", x, dims[i], &d) != CG_OK) return NULL;
        a.shift[d] = wrap(a.shift[d] + wrap(shifts[i], x->shape[d]), x->shape[d]);
    }
    return roll_apply(ctx, x, &a);
}

/* ---- repeat ------------------------------------------------------------------------------ */
typedef struct repeat_args {
    int ndim;
    int64_t repeats[CG_MAX_DIMS];
} repeat_args;

/* x as a header of rank n, with leading dims of 1 (stride 0). */
static cg_tensor padded(const cg_tensor *x, int n) {
    cg_tensor h = *x;
    int lead = n - x->ndim;
    h.ndim = n;
    for (int d = n - 1; d >= 0; d--) {
        h.shape[d] = d >= lead ? x->shape[d - lead] : 1;
        h.strides[d] = d >= lead ? x->strides[d - lead] : 0;
    }
    return h;
}

static const cg_op repeat_op, repeat_fold_op;

static cg_tensor *repeat_apply(cg_ctx *ctx, const cg_tensor *x, const repeat_args *a) {
    cg_tensor h = padded(x, a->ndim);
    int64_t shape[CG_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) shape[d] = h.shape[d] * a->repeats[d];
    cg_tensor *y = cgi_new(ctx, "cg_repeat", x->dtype, a->ndim, shape);
    if (!y) return NULL;
    cgi_repeat(&h, y);
    return cg_record(ctx, &repeat_op, y, 1, &x, a, sizeof *a);
}

/* g (the repeated shape) summed over its tiles into x's shape; recorded
 * as a fold over g, whose gradient is the repeat again. */
static cg_tensor *fold(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *x,
                       const repeat_args *a) {
    cg_tensor h = padded(x, a->ndim);
    cg_tensor *out = cg_zeros(ctx, g->dtype, a->ndim, h.shape);
    if (!out) return NULL;
    cgi_repeat_fold(g, out);
    out = cg_record(ctx, &repeat_fold_op, out, 1, &g, a, sizeof *a);
    return cg_reshape(ctx, out, x->ndim, x->shape);
}

static cg_status repeat_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                 cg_tensor **gin) {
    gin[0] = fold(ctx, g, cg_node_input(n, 0), cg_node_saved(n));
    return cgi_grads_made(n, gin);
}
static cg_status fold_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cg_tensor **gin) {
    gin[0] = repeat_apply(ctx, g, cg_node_saved(n));
    return cgi_grads_made(n, gin);
}
static const cg_op repeat_op = {"repeat", repeat_backward, 0};
static const cg_op repeat_fold_op = {"repeat_backward", fold_backward, 0};

cg_tensor *cg_repeat(cg_ctx *ctx, const cg_tensor *x, int ndim, const int64_t *repeats) {
    CGI_INPUT_CHECK(x, "cg_repeat", 0);
    char sx[160];
    if (ndim < x->ndim || ndim > CG_MAX_DIMS || (ndim > 0 && !repeats)) {
        cgi_error(ctx, CG_ERR_ARG, "cg_repeat: %d repeats for input %s: need %d to %d", ndim,
                  cg_shape_str(x, sx, sizeof sx), x->ndim, CG_MAX_DIMS);
        return NULL;
    }
    repeat_args a = {.ndim = ndim};
    cg_tensor h = padded(x, ndim);
    for (int d = 0; d < ndim; d++) {
        int64_t r = repeats[d], s = h.shape[d];
        if (r < 0 || (s > 0 && r > (INT64_MAX / 16) / s)) {
            cgi_error(ctx, CG_ERR_SHAPE, "cg_repeat: input %s, repeats[%d] = %lld: %s",
                      cg_shape_str(x, sx, sizeof sx), d, (long long)r,
                      r < 0 ? "negative" : "too many elements");
            return NULL;
        }
        a.repeats[d] = r;
    }
    return repeat_apply(ctx, x, &a); /* cgi_new checks the product of the dims */
}

/* ---- split, chunk: views ----------------------------------------------------------------- */
/* NULL in: -1, keeping the error that made the NULL; a stale handle too. */
#define SPLIT_INPUT_CHECK(x, name)                                                             \
    do {                                                                                       \
        if (!(x)) {                                                                            \
            cgi_null_arg(ctx, name, "tensor");                                                 \
            return -1;                                                                         \
        }                                                                                      \
        if (cgi_stale(x)) {                                                                    \
            cgi_stale_error(ctx, name, 0, x);                                                  \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)

/* count pieces fit in out (max_out entries), and views can be made. */
static bool pieces_ok(cg_ctx *ctx, const char *name, const cg_tensor *x, int64_t count,
                      cg_tensor **out, int64_t max_out) {
    if (!out || count > max_out)
        cgi_error(ctx, CG_ERR_ARG, "%s: %lld pieces, out %s room for %lld", name,
                  (long long)count, out ? "has" : "is NULL, with", (long long)max_out);
    else if (!ctx && x->requires_grad)
        cgi_error(NULL, CG_ERR_STATE,
                  "%s: an input requires a gradient, so the result must be made in a "
                  "context (got NULL)",
                  name);
    else if (!ctx && x->storage->kind == CGI_STORAGE_ARENA)
        cgi_error(NULL, CG_ERR_STATE, "%s: views of a context tensor must be made in a context",
                  name);
    else
        return true;
    return false;
}

/* count views of x along d into out: lengths sizes[i], or split (the last
 * one what is left). cg_narrow makes each, so each is differentiable. On
 * failure the views made are released and out's entries set NULL. */
static int make_views(cg_ctx *ctx, const cg_tensor *x, int d, int count, int64_t split,
                      const int64_t *sizes, cg_tensor **out) {
    int64_t start = 0, size = x->shape[d];
    for (int i = 0; i < count; i++) {
        int64_t len = sizes ? sizes[i] : split < size - start ? split : size - start;
        out[i] = cg_narrow(ctx, x, d, start, len);
        if (!out[i]) {
            for (int j = 0; j < i; j++) {
                cg_tensor_free(out[j]); /* a no-op in a context */
                out[j] = NULL;
            }
            return -1;
        }
        start += len;
    }
    return count;
}

int cg_split(cg_ctx *ctx, const cg_tensor *x, int64_t split_size, int dim, cg_tensor **out,
             int max_out) {
    SPLIT_INPUT_CHECK(x, "cg_split");
    int d;
    if (cgi_axis_of(ctx, "cg_split", x, dim, &d) != CG_OK) return -1;
    int64_t size = x->shape[d];
    if (split_size < 0 || (split_size == 0 && size > 0)) {
        cgi_error(ctx, CG_ERR_ARG,
                  "cg_split: split_size %lld for dim %d of size %lld (0 only for an empty dim)",
                  (long long)split_size, d, (long long)size);
        return -1;
    }
    int64_t count = size == 0 ? 1 : size / split_size + (size % split_size != 0);
    if (!pieces_ok(ctx, "cg_split", x, count, out, max_out)) return -1;
    return make_views(ctx, x, d, (int)count, split_size, NULL, out);
}

int cg_split_sizes(cg_ctx *ctx, const cg_tensor *x, const int64_t *sizes, int n, int dim,
                   cg_tensor **out) {
    SPLIT_INPUT_CHECK(x, "cg_split_sizes");
    int d;
    if (cgi_axis_of(ctx, "cg_split_sizes", x, dim, &d) != CG_OK) return -1;
    if (n < 0 || (n > 0 && !sizes)) {
        cgi_error(ctx, CG_ERR_ARG, "cg_split_sizes: %d sizes given as %p", n,
                  (const void *)sizes);
        return -1;
    }
    int64_t left = x->shape[d];
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        ok = sizes[i] >= 0 && sizes[i] <= left;
        left -= ok ? sizes[i] : 0;
    }
    if (!ok || left != 0) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "cg_split_sizes: %d sizes must be >= 0 and sum to %lld, the size of dim %d",
                  n, (long long)x->shape[d], d);
        return -1;
    }
    if (!pieces_ok(ctx, "cg_split_sizes", x, n, out, n)) return -1;
    return make_views(ctx, x, d, n, 0, sizes, out);
}

/* PyTorch's chunk: pieces of ceil(size / chunks), so maybe fewer than
 * chunks; an empty dim gives chunks empty pieces. */
int cg_chunk(cg_ctx *ctx, const cg_tensor *x, int chunks, int dim, cg_tensor **out,
             int max_out) {
    SPLIT_INPUT_CHECK(x, "cg_chunk");
    int d;
    if (cgi_axis_of(ctx, "cg_chunk", x, dim, &d) != CG_OK) return -1;
    if (chunks <= 0) {
        cgi_error(ctx, CG_ERR_ARG, "cg_chunk: chunks must be greater than 0, got %d", chunks);
        return -1;
    }
    int64_t size = x->shape[d], split = size / chunks + (size % chunks != 0);
    int64_t count = split == 0 ? chunks : size / split + (size % split != 0);
    if (!pieces_ok(ctx, "cg_chunk", x, count, out, max_out)) return -1;
    return make_views(ctx, x, d, (int)count, split, NULL, out);
}
