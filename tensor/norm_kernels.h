/* Layer normalisation kernels below the graph (not installed): rows of n
 * contiguous elements, statistics in double whatever the element type.
 * Rows are shared among threads; the column sums of the weight and bias
 * gradients add the rows in order on one thread, so the results do not
 * depend on the thread count. dt is CG_F32 or CG_F64; w and b may be NULL. */
#ifndef CG_NORM_KERNELS_H
#define CG_NORM_KERNELS_H

#include "internal.h"

/* y [rows, n] = (x - mean) * rstd * w + b per row; mean and rstd [rows]
 * (same dtype) are kept for the backward. */
CGI_HIDDEN void cgi_layer_norm_forward(cg_dtype dt, int64_t rows, int64_t n, const void *x,
                                       const void *w, const void *b, double eps, void *y,
                                       void *mean, void *rstd);
/* With xhat = (x - mean) rstd and gw = g w: dx = rstd (gw - mean(gw) - xhat
 * mean(gw xhat)) per row; dw [n] = sum over rows of g xhat, db [n] = sum of
 * g (each may be NULL: not wanted). */
CGI_HIDDEN void cgi_layer_norm_backward(cg_dtype dt, int64_t rows, int64_t n, const void *g,
                                        const void *x, const void *w, const void *mean,
                                        const void *rstd, void *dx, void *dw, void *db);

#endif
