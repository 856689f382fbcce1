/* Raw gather and scatter-add kernels below the graph (not installed).
 *
 * They validate nothing: callers check dtypes, ranks, shapes and every index
 * value first (cgi_index_in_range), since a bad value would address memory
 * outside the tensor. */
#ifndef CG_INDEX_KERNELS_H
#define CG_INDEX_KERNELS_H

#include "internal.h"

/* For every position p of index's shape (index is i64, any strides, 0 too):
 *   cgi_gather:      out[p] = x[p with p[axis] = index[p]]   (out shaped like index)
 *   cgi_scatter_add: out[p with p[axis] = index[p]] += src[p] (src shaped like index)
 * x, src and out share one dtype and index's rank; on the dims other than
 * axis they are at least as large as index. Every element of a scatter's out
 * receives its terms on one thread in increasing p[axis], so the sums do not
 * depend on the thread count. */
CGI_HIDDEN void cgi_gather(cg_tensor *out, const cg_tensor *x, int axis,
                           const cg_tensor *index);
CGI_HIDDEN void cgi_scatter_add(cg_tensor *out, int axis, const cg_tensor *index,
                                const cg_tensor *src);

/* true when every value of the i64 tensor index lies in [0, n); otherwise
 * false with the first bad value (C order) in *bad and its flat position in *at. */
CGI_HIDDEN bool cgi_index_in_range(const cg_tensor *index, int64_t n, int64_t *bad,
                                   int64_t *at);

#endif
