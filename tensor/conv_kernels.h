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
/* ---- direct convolution (unit stride, any dilation) ----------------------
 * For layers with few input channels per group, where im2col's GEMMs are
 * narrow and BLIS runs them at a fraction of its rate. An image channel is
 * copied into a zero-padded "flat" plane whose rows are wp = ow + (kw - 1) dw
 * long, so that each tap is one shift of the whole plane: grid element
 * i = oy * wp + ox meets padded element i + ky dh wp + kx dw. Columns ox >= ow
 * are computed and dropped. Grid lengths are rounded up to CGI_DIRECT_ROUND
 * elements (a whole number of vectors, and of the 32-element blocks small
 * grids run in) so that the loops have no tail. */
#define CGI_DIRECT_ROUND 32
/* Padded row length, grid length (rounded), padded-plane length. */
CGI_HIDDEN int64_t cgi_direct_wp(const cgi_conv_geom *g);
CGI_HIDDEN int64_t cgi_direct_len(const cgi_conv_geom *g);
CGI_HIDDEN int64_t cgi_direct_src_len(const cgi_conv_geom *g);
/* Image channel x (element (y, x) at x[y * sy + x * sx]) into the padded
 * flat plane dst [cgi_direct_src_len]: zero outside the image. */
CGI_HIDDEN void cgi_direct_pad_plane(cg_dtype dt, const cgi_conv_geom *g, const void *x,
                                     int64_t sy, int64_t sx, void *dst);
/* Grid channel src [oh, ow] (strides sy, sx) into the flat grid plane
 * dst [cgi_direct_len]: zero in the dropped columns and the rounding. */
CGI_HIDDEN void cgi_direct_grid_plane(cg_dtype dt, const cgi_conv_geom *g, const void *src,
                                      int64_t sy, int64_t sx, void *dst);
/* The shift of each tap (c, ky, kx), c < nc, in order, into off [nc kh kw]:
 * c * sl + ky dh wp + kx dw, for padded planes sl apart. */
CGI_HIDDEN void cgi_direct_offsets(const cgi_conv_geom *g, int64_t nc, int64_t sl,
                                   int64_t *off);
/* nout output planes: acc [nout, len] = bias[o] + the sum over the ntap taps
 * t of taps [nout, ntap][o][t] times the padded planes at src shifted by
 * off[t]. */
CGI_HIDDEN void cgi_direct_conv(cg_dtype dt, const cgi_conv_geom *g, int64_t nout, int64_t ntap,
                                const void *taps, const int64_t *off, const void *src,
                                const double *bias, void *acc);
/* The weight gradient of one (output, input) channel pair, kept in lanes:
 * lanes [kh kw, VEC] (VEC = CGI_DIRECT_VEC_BYTES of elements) += for each
 * tap t, grid times src shifted by off[t] (offsets of one channel), lane by
 * lane over len (summed in a fixed order that depends on kh kw alone).
 * cgi_direct_lanes_sum ends it. */
#define CGI_DIRECT_VEC_BYTES 64
CGI_HIDDEN void cgi_direct_wgrad_plane(cg_dtype dt, const cgi_conv_geom *g, const int64_t *off,
                                       const void *grid, const void *src, void *lanes);
/* Two output channels' planes against one source plane at once (taps
 * kh kw >= 5), into their lanes; each lane may sum in another order than
 * cgi_direct_wgrad_plane's (the choice depends on the shape alone). */
CGI_HIDDEN void cgi_direct_wgrad_pair(cg_dtype dt, const cgi_conv_geom *g, const int64_t *off,
                                      const void *grid0, const void *grid1, const void *src,
                                      void *lanes0, void *lanes1);
/* The bias gradient beside it: lanes [VEC] += the vectors of grid [len]. */
CGI_HIDDEN void cgi_direct_lanes_add(cg_dtype dt, const cgi_conv_geom *g, const void *grid,
                                     void *lanes);
/* dst[i] = the sum of lanes [n, VEC]'s row i, in lane order. */
CGI_HIDDEN void cgi_direct_lanes_sum(cg_dtype dt, int64_t n, const void *lanes, void *dst);

/* A hint, no effect on values: the caches fetch the nb bytes at p (to be
 * written when write), for an image processed next while this one computes
 * (a burst of misses at each image's start costs more than its arithmetic
 * on MNIST-sized planes). */
CGI_HIDDEN void cgi_prefetch(const void *p, int64_t nb, bool write);

/* dst[y * w + x] = src[y * sy + x * sx] + add, for a plane [h, w]. */
CGI_HIDDEN void cgi_plane_copy(cg_dtype dt, int64_t h, int64_t w, const void *src, int64_t sy,
                               int64_t sx, void *dst, double add);
/* dst[i] += src[i] for n contiguous elements. */
CGI_HIDDEN void cgi_plane_add(cg_dtype dt, int64_t n, const void *src, void *dst);
/* dst[i] = v for n contiguous elements. */
CGI_HIDDEN void cgi_fill(cg_dtype dt, int64_t n, void *dst, double v);

#endif
