/* Pooling and padding kernels below the graph (not installed).
 *
 * They validate nothing: ops/pool.c checks ranks, sizes and options first.
 * Every kernel works plane by plane (one plane: one (n, c) pair, or one
 * position of the dims in front of the padded ones), each plane on one
 * thread in a fixed order, so results do not depend on the thread count.
 * Strided operands (x, or the incoming gradient) may have any strides,
 * 0 included; the operand written is contiguous. Nothing is allocated. */
#ifndef CG_POOL_KERNELS_H
#define CG_POOL_KERNELS_H

#include "internal.h"

/* One spatial dim of a pooling: in -> out windows. */
typedef struct cgi_pool_dim {
    int64_t in, out;
    int64_t kernel, stride, pad, dilation; /* unused by adaptive pooling */
} cgi_pool_dim;

typedef enum cgi_pool_kind { CGI_POOL_MAX, CGI_POOL_AVG, CGI_POOL_ADAPTIVE } cgi_pool_kind;

/* A pooling over n * c planes of dim[0] x dim[1] (H x W; the 1-D ops use
 * H = 1 with kernel 1). The tensors the kernels take are rank 4: [n, c, H, W]
 * for x and dx, [n, c, out H, out W] for y, g and indices. */
typedef struct cgi_pool_geom {
    cgi_pool_kind kind;
    bool count_include_pad; /* CGI_POOL_AVG */
    int64_t n, c;
    cgi_pool_dim dim[2];
} cgi_pool_geom;

/* y = the window maxima of x (f32, f64 or i64), NaN winning as in PyTorch,
 * ties to the first; where each maximum is, in one of two forms (or
 * neither, both NULL):
 *   idx (i64 [n, c, out H, out W]): its flat index h * W + w in its plane;
 *   codes (one byte per output, in idx's order): 2 dy + dx in its window,
 *     only where cgi_max_pool_codes_ok (f32, unit-stride rows, 2x2 windows
 *     of stride 2 without padding or dilation): an eighth of idx's memory
 *     traffic, in the forward and again in the backward. */
CGI_HIDDEN void cgi_max_pool(const cgi_pool_geom *geo, const cg_tensor *x, cg_tensor *y,
                             cg_tensor *idx, uint8_t *codes);
CGI_HIDDEN bool cgi_max_pool_codes_ok(const cgi_pool_geom *geo, const cg_tensor *x);
/* One plane's 2x2 stride-2 max pooling into y [h / 2, w / 2] and its codes,
 * from src [h, w] with row stride sy (the direct convolution's wide
 * planes); room: the elements readable from src on (reads past a row's end
 * stay inside it; what they make is overwritten or never kept). */
CGI_HIDDEN void cgi_max_pool_wide_f32(const float *src, int64_t sy, int64_t h, int64_t w,
                                      int64_t room, float *y, uint8_t *codes);
/* idx (contiguous, n c out H out W) = the flat indices the codes name. */
CGI_HIDDEN void cgi_max_pool_decode(const cgi_pool_geom *geo, const uint8_t *codes,
                                    int64_t *idx);
/* dx = zeros with g scattered (added) to the positions idx or codes name.
 * f32, f64 (codes: f32). mask (NULL, or the pooled output, contiguous):
 * g taken only where mask > 0, +0 elsewhere (premasking, ops/pool.c). */
CGI_HIDDEN void cgi_max_pool_scatter(const cgi_pool_geom *geo, const cg_tensor *g,
                                     const cg_tensor *idx, const uint8_t *codes,
                                     const cg_tensor *mask, cg_tensor *dx);
/* Average and adaptive average pooling: y = the windows' means (f32, f64). */
CGI_HIDDEN void cgi_avg_pool(const cgi_pool_geom *geo, const cg_tensor *x, cg_tensor *y);
/* Its transpose: dx = zeros plus g[o] / divisor(o) over every window o. */
CGI_HIDDEN void cgi_avg_pool_backward(const cgi_pool_geom *geo, const cg_tensor *g,
                                      cg_tensor *dx);

/* Reflect or replicate padding of the last 3 dims of a tensor [lead..., A,
 * B, C] (callers padding fewer dims add dims of 1 with zero padding in
 * front): out dim k has size in[k] + lo[k] + hi[k]; lo and hi may be
 * negative (crop). The lead dims keep their sizes. */
typedef struct cgi_pad_geom {
    bool reflect; /* else replicate */
    int nlead;
    int64_t in[3], out[3], lo[3];
} cgi_pad_geom;

/* out (contiguous, x's dtype, any of the three) = x padded. */
CGI_HIDDEN void cgi_pad_map(const cgi_pad_geom *geo, const cg_tensor *x, cg_tensor *out);
/* Its transpose: dx (contiguous, zeroed here) = the sum of g over the
 * positions of the padded tensor that read each input element. f32, f64. */
CGI_HIDDEN void cgi_pad_fold(const cgi_pad_geom *geo, const cg_tensor *g, cg_tensor *dx);

#endif
