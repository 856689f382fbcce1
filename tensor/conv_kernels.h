/* Convolution kernels below the graph (not installed): im2col, its adjoint
 * col2im, and the plane copies around the GEMMs of ops/conv.c.
 *
 * A convolution reads an "image" (conv2d's input, conv_transpose2d's output)
 * through a "grid" of kernel positions (conv2d's output, conv_transpose2d's
 * input). Grid position (oy, ox) and kernel tap (ky, kx) meet image pixel
 * (oy * sh + ky * dh - ph, ox * sw + kx * dw - pw); pixels outside the image
 * are the zero padding. Every kernel works on one channel plane of one image,
 * so callers thread over planes: each plane is written by one thread, and the
 * results do not depend on the thread count. dt is CG_F32 or CG_F64. */
#ifndef CG_CONV_KERNELS_H
#define CG_CONV_KERNELS_H

#include "internal.h"

typedef struct cgi_conv_geom {
    int64_t ih, iw; /* image */
    int64_t oh, ow; /* grid */
    int64_t kh, kw; /* kernel */
    int64_t sh, sw; /* stride */
    int64_t ph, pw; /* padding before the first pixel (top, left) */
    int64_t dh, dw; /* dilation */
} cgi_conv_geom;

/* One image channel x (element (y, x) at x[y * sy + x * sx]) into the kh * kw
 * rows of cols (row stride ld) that hold its taps: cols[ky * kw + kx][oy * ow
 * + ox] = the pixel that tap meets at that grid position, 0 in the padding. */
CGI_HIDDEN void cgi_im2col_plane(cg_dtype dt, const cgi_conv_geom *g, const void *x, int64_t sy,
                                 int64_t sx, void *cols, int64_t ld);
/* The adjoint: adds each of the kh * kw rows of cols (row stride ld) into the
 * contiguous image channel y [ih, iw] at the pixels their taps meet (taps in
 * the padding are dropped). */
CGI_HIDDEN void cgi_col2im_plane(cg_dtype dt, const cgi_conv_geom *g, const void *cols,
                                 int64_t ld, void *y);
/* dst[y * w + x] = src[y * sy + x * sx] + add, for a plane [h, w]. */
CGI_HIDDEN void cgi_plane_copy(cg_dtype dt, int64_t h, int64_t w, const void *src, int64_t sy,
                               int64_t sx, void *dst, double add);
/* dst[i] += src[i] for n contiguous elements. */
CGI_HIDDEN void cgi_plane_add(cg_dtype dt, int64_t n, const void *src, void *dst);
/* dst[i] = v for n contiguous elements. */
CGI_HIDDEN void cgi_fill(cg_dtype dt, int64_t n, void *dst, double v);

#endif
