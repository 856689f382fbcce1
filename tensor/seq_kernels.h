/* Raw kernels for the sequence ops (ops/structure.c, ops/scatter.c), below
 * the graph (not installed).
 *
 * Like the other kernels they validate nothing: callers check ranks, dims
 * and dtypes first. Every kernel reads its input through its strides (any,
 * 0 included) and writes its output through the output's strides; a "line"
 * is the run of elements along one dim at a fixed position of the others. */
#ifndef CG_SEQ_KERNELS_H
#define CG_SEQ_KERNELS_H

#include "internal.h"

/* where(cond, a, b) with a cond of any dtype (cond != 0 picks a; NaN is
 * true) and a, b, out of one dtype: [value dtype][cond dtype]. */
extern CGI_HIDDEN const cgi_ternary_fn cgi_mask_where_fn[3][3];

/* Zeroes the part of each matrix (last two dims) of the contiguous out that
 * tril (upper false: where col - row > diagonal) or triu (upper true: where
 * col - row < diagonal) leaves out. out has rank >= 2. */
CGI_HIDDEN void cgi_zero_triangle(cg_tensor *out, int64_t diagonal, bool upper);

/* Along dim, x and out of one shape and dtype: out = cumsum(x) (from the
 * end when reverse) or cumprod(x). f32 accumulates in double, as PyTorch's
 * CPU kernels; i64 wraps. */
CGI_HIDDEN void cgi_cumsum(const cg_tensor *x, int dim, bool reverse, cg_tensor *out);
CGI_HIDDEN void cgi_cumprod(const cg_tensor *x, int dim, cg_tensor *out);
/* The gradient of cumprod along dim, exact with zeros in x and without
 * division: dx_k = (x_0 ... x_{k-1}) s_k with s_k = g_k + x_{k+1} s_{k+1}.
 * x, g and out float of one dtype and shape. */
CGI_HIDDEN void cgi_cumprod_grad(const cg_tensor *x, const cg_tensor *g, int dim,
                                 cg_tensor *out);

/* out (rank n) = x (padded to rank n with leading 1s by the caller) tiled:
 * out[i] = x[i mod x.shape]. */
CGI_HIDDEN void cgi_repeat(const cg_tensor *x, cg_tensor *out);
/* The transpose: out (zeroed by the caller, x's padded shape) += every tile
 * of g (the repeated shape), in C order of g, so sums do not depend on the
 * thread count. Float or i64 (wraps). */
CGI_HIDDEN void cgi_repeat_fold(const cg_tensor *g, cg_tensor *out);

/* Sorts every line of x along dim (stable: equal values keep their order;
 * NaN counts as larger than every number, as PyTorch) ascending, or
 * descending, and writes the first k of each line to values (x's dtype) and
 * their positions to indices (i64), both x's shape with k along dim.
 * CG_ERR_NOMEM (naming op) when the work buffers cannot be had. */
CGI_HIDDEN cg_status cgi_sort_lines(const char *op, const cg_tensor *x, int dim,
                                    bool descending, int64_t k, cg_tensor *values,
                                    cg_tensor *indices);

/* t as a header of rank >= 1: a rank-0 t is seen as [1] (PyTorch lets the
 * line ops take dim 0 or -1 of a scalar). Only for kernels: the copy's check
 * word does not vouch for it. */
static inline cg_tensor cgi_as_line(const cg_tensor *t) {
    cg_tensor h = *t;
    if (h.ndim == 0) {
        h.ndim = 1;
        h.shape[0] = 1;
        h.strides[0] = 1;
    }
    return h;
}

#endif
