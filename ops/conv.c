/* Convolutions (PyTorch's F.conv1d, F.conv2d, F.conv_transpose2d), NCHW, f32
 * and f64, by one of two methods chosen by shape alone (never by thread
 * count): with unit stride and at most DIRECT_MAX_KG taps per output, the
 * direct kernels of tensor/conv_kernels.c (see "direct convolution" below);
 * otherwise im2col plus one BLIS GEMM per tile of images and group, the
 * images of a tile side by side so the GEMM is wide. Scratch comes from the
 * context's arena, and a tile holds at most TILE_ELEMS elements of it
 * whatever the batch.
 *
 * Three recorded ops, each one's backward written with the others, so every
 * order of derivative works (g: the output's gradient, h: a weight-shaped
 * gradient flowing into conv2d_weight):
 *   conv2d(x, w)            dx = conv_transpose2d(g, w)   dw = conv2d_weight(x, g)
 *   conv_transpose2d(x, w)  dx = conv2d(g, w)             dw = conv2d_weight(g, x)
 *   conv2d_weight(x, g)     dx = conv_transpose2d(g, h)   dg = conv2d(x, h)
 * conv2d_weight(x, g) is conv2d's weight gradient, sum over the batch of g's
 * planes times x's patches, as one GEMM per tile (a fused op: the same value
 * as a convolution of x and g with stride and dilation swapped, which would
 * need permuted copies and a GEMM per group and image). db = sum of g over
 * N, H, W. conv1d is conv2d with H = 1, and an unbatched input is a batch of
 * one: the kernels read such tensors through 4-D stack headers (lift), and
 * the backward rules through reshaped views. Padding is kept per side (lo,
 * hi), which "same" needs and which conv_transpose2d, the adjoint, inherits.
 *
 * Threads and determinism: with enough tiles (images, for the direct
 * kernels), each thread takes whole ones (run_units); otherwise the tiles run in turn with
 * im2col, col2im and the copies threaded over whole planes and BLIS threaded. Tile sizes never
 * depend on the thread count, a GEMM's result does not depend on BLIS's
 * (BLIS splits m and n, never k), and the weight gradient sums a fixed set
 * of lanes of tiles, then the lanes in order. So 1 and N threads give the
 * same bits (test_conv_threads_bitwise). */
#include "internal.h"

#include "../tensor/conv_kernels.h"
#include "../tensor/pool_kernels.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Scratch per tile (im2col columns and the GEMM's other operand), elements:
 * 1 MB in f32, about a core's L2, so the GEMM reads the columns im2col has
 * just written from cache. Measured with bench_conv on one thread, ggml's
 * MNIST 8->16 layer (batch 500) forward: 33 ms with 2^22 elements (the whole
 * batch in one tile), 8.4 ms with 2^18, 16.8 ms with 2^16. */
#define TILE_ELEMS ((int64_t)1 << 18)

/* The geometry saved with each node. Index 0 is H, 1 is W; a 1-D op has H
 * trivial (kernel 1, stride 1, no padding). */
typedef struct geom2 {
    int64_t stride[2], lo[2], hi[2], dil[2];
    int64_t outpad[2]; /* conv_transpose2d only */
    int64_t kernel[2]; /* conv2d_weight only: the weight's KH, KW */
    int64_t groups;
    bool unbatched; /* x [C, ...]: the batch dim is implied */
    bool one_d;     /* conv1d: the H dim is implied */
    bool relu;      /* cg_conv2d_relu: relu(y) written in place of y */
} geom2;

static int64_t conv_out(int64_t in, int64_t k, const geom2 *gm, int d) {
    int64_t span = in + gm->lo[d] + gm->hi[d] - gm->dil[d] * (k - 1) - 1;
    return span < 0 ? 0 : span / gm->stride[d] + 1;
}
static int64_t convt_out(int64_t in, int64_t k, const geom2 *gm, int d) {
    return (in - 1) * gm->stride[d] - gm->lo[d] - gm->hi[d] + gm->dil[d] * (k - 1) + 1 +
           gm->outpad[d];
}

static cgi_conv_geom kgeom(const geom2 *gm, const cg_tensor *img, const cg_tensor *grid,
                           int64_t kh, int64_t kw) {
    return (cgi_conv_geom){
        img->shape[2], img->shape[3], grid->shape[2], grid->shape[3], kh,         kw,
        gm->stride[0], gm->stride[1], gm->lo[0],      gm->lo[1],      gm->dil[0], gm->dil[1]};
}

/* t as the 4-D tensor the kernels read: a stack header over the same data
 * with the implied batch dim (unbatched) and H dim (1-D) put back, size 1. */
static cg_tensor lift(const cg_tensor *t, bool unbatched, bool one_d) {
    cg_tensor v = *t;
    int src = 0;
    for (int d = 0; d < 4; d++) {
        bool implied = (d == 0 && unbatched) || (d == 2 && one_d);
        v.shape[d] = implied ? 1 : t->shape[src];
        v.strides[d] = implied ? 0 : t->strides[src];
        src += !implied;
    }
    v.ndim = 4;
    return v;
}

/* The same as a (recorded) view, for the backward rules. */
static cg_tensor *lift_view(cg_ctx *ctx, const cg_tensor *t, bool unbatched, bool one_d) {
    if (!t || (!unbatched && !one_d)) return (cg_tensor *)t;
    cg_tensor l = lift(t, unbatched, one_d);
    return cg_reshape(ctx, t, 4, l.shape);
}

/* Tiles of at most TILE_ELEMS scratch elements, per_image each (>= 1 image). */
static int64_t tile_of(int64_t n, int64_t per_image) {
    int64_t t = TILE_ELEMS / (per_image > 0 ? per_image : 1);
    if (t > n) t = n;
    return t < 1 ? 1 : t;
}

static double bias_at(const cg_tensor *b, int64_t i) {
    const char *p = cgi_ptr(b) + (size_t)(i * b->strides[0]) * cg_dtype_size(b->dtype);
    return b->dtype == CG_F32 ? *(const float *)p : *(const double *)p;
}

/* Planes (n0 + i, c0 + c) of t, i < nt, c < nc, each [H*W], into the rows c
 * of dst [nc, nt * H * W] at column i * H * W; threaded when par. */
static void gather(const cg_tensor *t, int64_t n0, int64_t nt, int64_t c0, int64_t nc,
                   char *dst, bool par) {
    int64_t es = (int64_t)cg_dtype_size(t->dtype), p = t->shape[2] * t->shape[3];
    const int64_t *s = t->strides;
    CGI_PAR_FOR(par && nt * nc * p >= CGI_PAR_MIN, i, nt * nc, {
        int64_t ti = i / nc, c = i % nc;
        const char *src = cgi_ptr(t) + ((n0 + ti) * s[0] + (c0 + c) * s[1]) * es;
        cgi_plane_copy(t->dtype, t->shape[2], t->shape[3], src, s[2], s[3],
                       dst + (c * nt * p + ti * p) * es, 0);
    });
}

/* im2col of the planes (n0 + i, c0 + c) of x into cols [nc * KK, nt * P]. */
static void im2col_tile(const cgi_conv_geom *k, const cg_tensor *x, int64_t n0, int64_t nt,
                        int64_t c0, int64_t nc, char *cols, bool par) {
    int64_t es = (int64_t)cg_dtype_size(x->dtype), p = k->oh * k->ow, kk = k->kh * k->kw;
    int64_t ld = nt * p;
    const int64_t *s = x->strides;
    CGI_PAR_FOR(par && nt * nc * kk * p >= CGI_PAR_MIN, i, nt * nc, {
        int64_t ti = i / nc, c = i % nc;
        const char *src = cgi_ptr(x) + ((n0 + ti) * s[0] + (c0 + c) * s[1]) * es;
        cgi_im2col_plane(x->dtype, k, src, s[2], s[3], cols + (c * kk * ld + ti * p) * es, ld);
    });
}

/* ---- scheduling tiles over threads ------------------------------------------------ */
/* One op's work, cut in tiles of `tile` images (a fixed size, whatever the
 * thread count). x, w, b, g and y are 4-D (lifted) and w is contiguous:
 *   conv2d:           x the image, w, b, y the grid
 *   conv_transpose2d: x the grid, w, b, y the image
 *   conv2d_weight:    x the image, g the grid, y the weight gradient */
typedef struct conv_job {
    const cg_tensor *x, *w, *b, *g;
    cg_tensor *y;
    cgi_conv_geom k;
    cg_dtype dt;
    int64_t n, groups, cin_g, cout_g, kg, p, es; /* kg: rows of the columns */
    int64_t tile, ntiles, scratch;               /* scratch elements per worker */
    int64_t lanes;  /* conv2d_weight: partial sums, each over tiles i = lane mod lanes */
    char *partials; /* lanes - 1 weight-sized partial sums (lane 0 sums into y) */
    bool flip;      /* direct conv_transpose2d: w is [Cin, Cout/G, KH, KW], taps reversed */
    int64_t *off;   /* direct: the shift of each tap (c, ky, kx) of the padded planes */
    char *wflip;    /* direct conv_transpose2d: w as [G, Cout/G, Cin/G, KH, KW], reversed */
    cg_tensor *db;  /* direct conv2d_weight: also the bias gradient [Cout] here, or NULL */
    bool relu;      /* forward: relu of each image's output once written (in cache) */
    uint8_t *codes; /* conv2d_relu_pool: y is the 2x2 max pool, its argmax bytes here */
} conv_job;

/* One unit of work (a tile, or a lane of tiles) with its scratch; par: its
 * kernels may thread (units run one after the other). */
typedef cg_status (*unit_fn)(const conv_job *j, int64_t unit, char *scratch, bool par);

static int64_t images_in(const conv_job *j, int64_t tile, int64_t *n0) {
    *n0 = tile * j->tile;
    return j->n - *n0 < j->tile ? j->n - *n0 : j->tile;
}

/* Runs units 0..nunits: with enough of them for every thread, each thread
 * takes whole units (one OpenMP region, scratch per thread, single-threaded
 * kernels and GEMMs: BLIS nested in the region runs on one thread); else one
 * after the other with threaded kernels and BLIS. A unit's arithmetic is the
 * same either way, so the thread count never changes a bit. */
static cg_status run_units(cg_ctx *ctx, const char *name, const conv_job *j, unit_fn fn,
                           int64_t nunits) {
    int threads = cg_get_num_threads();
    bool across = threads > 1 && nunits >= 2 * (int64_t)threads;
    int slots = across ? threads : 1;
    char *scr = cgi_alloc(ctx, name, (size_t)(j->scratch * slots * j->es));
    if (!scr) return CG_ERR_NOMEM;
    int bad = 0;
    if (across) {
#pragma omp parallel for schedule(static) num_threads(slots) reduction(| : bad)
        for (int64_t u = 0; u < nunits; u++)
            bad |= fn(j, u, scr + omp_get_thread_num() * j->scratch * j->es, false) != CG_OK;
    } else {
        for (int64_t u = 0; u < nunits && !bad; u++) bad = fn(j, u, scr, true) != CG_OK;
    }
    if (!ctx) free(scr);
    return bad ? cgi_error(ctx, CG_ERR_ARG, "%s: a GEMM failed", name) : CG_OK;
}

/* The job's common sizes: images n, channels per group of the image side
 * (cin_g) and of the grid side (cout_g), KK, and tiles of at most
 * TILE_ELEMS scratch elements (per_col: scratch rows per grid column). */
static conv_job job_of(const cg_tensor *img, const cg_tensor *grid, const geom2 *gm, int64_t kh,
                       int64_t kw, int64_t grid_ch) {
    conv_job j = {.dt = img->dtype, .n = img->shape[0], .groups = gm->groups};
    j.k = kgeom(gm, img, grid, kh, kw);
    j.cin_g = img->shape[1] / gm->groups, j.cout_g = grid_ch / gm->groups;
    j.p = j.k.oh * j.k.ow, j.es = (int64_t)cg_dtype_size(j.dt);
    return j;
}
static void tiles_of(conv_job *j, int64_t rows) {
    j->tile = tile_of(j->n, rows * j->p);
    j->ntiles = (j->n + j->tile - 1) / j->tile;
    j->scratch = j->tile * j->p * rows;
}

/* ---- direct convolution ------------------------------------------------------------ */
/* With unit stride and few taps per output (DIRECT_MAX_KG = input channels
 * per group x KH x KW), the im2col GEMMs are narrow (M = output channels,
 * K = taps) or, for the weight gradient, tiny M and N with a huge K, and BLIS
 * runs them at 5-30 GF/s; the direct kernels of conv_kernels.h read each
 * padded plane from L1 instead. Measured with bench_conv on one thread (Zen 5
 * VM), im2col + BLIS -> direct: ggml's MNIST 8->16 layer (batch 500) forward
 * 8.2 -> 3.9 ms, input gradient 7.0 -> 4.3, weight gradient 13.6 -> 5.6;
 * its 1->8 layer forward 4.6 -> 1.4, weight gradient 9.4 -> 4.2; LeNet-5's
 * first layer weight gradient 4.7 -> 0.6. With the forward's four-channel
 * blocks (conv_kernels.c) it beats im2col + BLIS on wide layers too: the
 * 3x3 64->64 layer (576 taps) forward 15.8 -> 10.8 ms (154 -> 222 GF/s),
 * input gradient 14.0 -> 11.4; LeNet-5's second layer input gradient (400
 * taps) 1.2 -> 1.0. So up to DIRECT_MAX_KG taps go direct while one image's
 * padded planes fit in DIRECT_MAX_PADDED elements (1 MB of f32, a core's L2);
 * the weight gradient of such layers stays on BLIS (DIRECT_MAX_WEIGHT). One
 * unit is one image (lane, for the weight gradient), whatever the thread
 * count, so the bits do not depend on it either. */
#define DIRECT_MAX_KG     1024
#define DIRECT_MAX_PADDED ((int64_t)1 << 18)
/* The direct weight gradient keeps a vector of lanes per weight element and
 * lane of images (LANES): 8 MB of f32 at this many elements; larger weights
 * go to BLIS. */
#define DIRECT_MAX_WEIGHT ((int64_t)1 << 14)

/* planes: the padded planes one image needs (the channels per group read). */
static bool direct_ok(const cgi_conv_geom *k, int64_t taps_per_out, int64_t planes) {
    return k->sh == 1 && k->sw == 1 && taps_per_out <= DIRECT_MAX_KG &&
           planes * cgi_direct_src_len(k) <= DIRECT_MAX_PADDED;
}

/* conv_transpose2d's w [Cin, Cout/G, KH, KW] as conv2d's taps: per group,
 * [Cout/G, Cin/G, KH, KW] with each kernel reversed. */
static void flip_weight(const conv_job *j) {
    int64_t kk = j->k.kh * j->k.kw, es = j->es;
    for (int64_t gi = 0; gi < j->groups; gi++)
        for (int64_t o = 0; o < j->cout_g; o++)
            for (int64_t c = 0; c < j->cin_g; c++) {
                const char *src =
                    cgi_ptr(j->w) + ((gi * j->cin_g + c) * j->cout_g + o) * kk * es;
                char *dst = j->wflip + ((gi * j->cout_g + o) * j->cin_g + c) * kk * es;
                for (int64_t t = 0; t < kk; t++)
                    memcpy(dst + t * es, src + (kk - 1 - t) * es, (size_t)es);
            }
}

/* Elements of scratch for the forward's cout_g biases (doubles), rounded to
 * 64 bytes. */
static int64_t direct_bias_elems(const conv_job *j) {
    return (j->cout_g * (int64_t)sizeof(double) + 63) / 64 * 64 / j->es;
}

/* Scratch per unit: the forward's biases, cin_g padded planes, cout_g grid
 * or output planes; shared by the units: the tap shifts and a flipped
 * weight. */
static bool direct_plan(cg_ctx *ctx, const char *name, conv_job *j) {
    int64_t sl = cgi_direct_src_len(&j->k), ntap = j->cin_g * j->k.kh * j->k.kw;
    j->scratch = direct_bias_elems(j) + j->cin_g * sl + j->cout_g * cgi_direct_len(&j->k);
    j->scratch = (j->scratch + 15) / 16 * 16; /* each worker's part 64-byte aligned */
    j->off = cgi_alloc(ctx, name, (size_t)ntap * sizeof *j->off);
    if (j->off) cgi_direct_offsets(&j->k, j->cin_g, sl, j->off);
    if (j->off && j->flip) {
        j->wflip = cgi_alloc(ctx, name, (size_t)(j->groups * j->cout_g * ntap * j->es));
        if (j->wflip) flip_weight(j);
    }
    return j->off && (!j->flip || j->wflip);
}

/* The taps [Cin/G, KH, KW] of output channel o of group gi. */
static const char *taps_of(const conv_job *j, int64_t gi, int64_t o) {
    int64_t ntap = j->cin_g * j->k.kh * j->k.kw;
    return (j->flip ? j->wflip : cgi_ptr(j->w)) + (gi * j->cout_g + o) * ntap * j->es;
}

/* Hints the caches to fetch image n of t (4-D) when its planes are one
 * block, to be written when write. */
static void prefetch_image(const cg_tensor *t, int64_t n, bool write) {
    const int64_t *s = t->strides, *d = t->shape;
    if (n >= d[0] || s[3] != 1 || s[2] != d[3] || s[1] != d[2] * d[3]) return;
    cgi_prefetch(cgi_ptr(t) + n * s[0] * (int64_t)cg_dtype_size(t->dtype),
                 d[1] * s[1] * (int64_t)cg_dtype_size(t->dtype), write);
}

/* x = relu(x) over n contiguous elements (cg_relu's kernel, in place): the
 * epilogue of the fused ops, on planes still in cache. */
static void relu_block(cg_dtype dt, int64_t n, void *x) {
    cgi_unary_relu.fn[dt](n, x, 1, x, 1);
}

/* conv2d_relu_pool: the ReLU, then each output plane's 2x2 max pooling
 * straight from the scratch planes acc (group gi of image n) into y's planes
 * and their codes. */
static void pool_group(const conv_job *j, int64_t n, int64_t gi, char *acc) {
    int64_t len = cgi_direct_len(&j->k), wp = cgi_direct_wp(&j->k);
    int64_t pp = (j->k.oh / 2) * (j->k.ow / 2), c0 = n * j->y->shape[1] + gi * j->cout_g;
    for (int64_t o = 0; o < j->cout_g; o++) {
        float *a = (float *)acc + o * len;
        relu_block(CG_F32, len, a);
        cgi_max_pool_wide_f32(a, wp, j->k.oh, j->k.ow, (j->cout_g - o) * len,
                              (float *)cgi_ptr(j->y) + (c0 + o) * pp, j->codes + (c0 + o) * pp);
    }
}

/* Image n, every group: pad the input planes, then the output planes acc
 * [Cout/G, len] = bias + taps * padded planes, their rows into y's planes. */
static cg_status direct_conv_image(const conv_job *j, int64_t n, char *scr, bool par) {
    (void)par;
    int64_t es = j->es, sl = cgi_direct_src_len(&j->k), len = cgi_direct_len(&j->k);
    int64_t wp = cgi_direct_wp(&j->k), plane = j->k.oh * j->k.ow;
    double *bias = (double *)scr; /* first: scr is 64-byte aligned */
    char *pads = scr + direct_bias_elems(j) * es, *acc = pads + j->cin_g * sl * es;
    const int64_t *s = j->x->strides;
    prefetch_image(j->x, n + 1, false);
    prefetch_image(j->y, n + 1, true);
    for (int64_t gi = 0; gi < j->groups; gi++) {
        for (int64_t c = 0; c < j->cin_g; c++)
            cgi_direct_pad_plane(j->dt, &j->k,
                                 cgi_ptr(j->x) + (n * s[0] + (gi * j->cin_g + c) * s[1]) * es,
                                 s[2], s[3], pads + c * sl * es);
        for (int64_t o = 0; o < j->cout_g; o++)
            bias[o] = j->b ? bias_at(j->b, gi * j->cout_g + o) : 0.0;
        cgi_direct_conv(j->dt, &j->k, j->cout_g, j->cin_g * j->k.kh * j->k.kw,
                        taps_of(j, gi, 0), j->off, pads, bias, acc);
        if (j->codes) {
            pool_group(j, n, gi, acc);
            continue;
        }
        char *yg = cgi_ptr(j->y) + (n * j->y->shape[1] + gi * j->cout_g) * plane * es;
        for (int64_t o = 0; o < j->cout_g; o++)
            cgi_plane_copy(j->dt, j->k.oh, j->k.ow, acc + o * len * es, wp, 1,
                           yg + o * plane * es, 0);
        if (j->relu) relu_block(j->dt, j->cout_g * plane, yg);
    }
    return CG_OK;
}

/* conv2d (flip false) or conv_transpose2d (flip true, unit stride) of x into
 * y (contiguous), directly. conv_transpose2d is conv2d of x with the weight
 * transposed and reversed and the padding dil (k - 1) - lo. */
static cg_status direct_conv(cg_ctx *ctx, const char *name, const cg_tensor *x,
                             const cg_tensor *w, const cg_tensor *b, const geom2 *gm,
                             cg_tensor *y, bool flip) {
    conv_job j = job_of(x, y, gm, w->shape[2], w->shape[3], y->shape[1]);
    j.x = x, j.w = w, j.b = b, j.y = y, j.flip = flip, j.relu = gm->relu;
    if (flip) {
        j.k.ph = gm->dil[0] * (w->shape[2] - 1) - gm->lo[0];
        j.k.pw = gm->dil[1] * (w->shape[3] - 1) - gm->lo[1];
    }
    cg_status s = CG_ERR_NOMEM;
    if (direct_plan(ctx, name, &j)) s = run_units(ctx, name, &j, direct_conv_image, j.n);
    if (!ctx) free(j.off), free(j.wflip);
    return s;
}

/* Lane l of the weight gradient: images l, l + lanes, ...; per image and
 * group the padded planes of x and the flat planes of g, then every (o, c)
 * pair's taps, in the lane's partial sums (each tap a vector of lanes). */
static cg_status direct_wgrad_lane(const conv_job *j, int64_t lane, char *scr, bool par) {
    (void)par;
    int64_t es = j->es, sl = cgi_direct_src_len(&j->k), len = cgi_direct_len(&j->k);
    int64_t kk = j->k.kh * j->k.kw, vl = CGI_DIRECT_VEC_BYTES / es;
    int64_t nw = j->groups * j->cout_g * j->cin_g * kk, nb = j->db ? j->groups * j->cout_g : 0;
    char *gp = scr + j->cin_g * sl * es, *dst = j->partials + lane * (nw + nb) * vl * es;
    char *bl = dst + nw * vl * es; /* the bias lanes [nb, VEC] */
    const int64_t *sx = j->x->strides, *sg = j->g->strides;
    cgi_fill(j->dt, (nw + nb) * vl, dst, 0.0);
    for (int64_t n = lane; n < j->n; n += j->lanes) {
        prefetch_image(j->x, n + j->lanes, false);
        prefetch_image(j->g, n + j->lanes, false);
        for (int64_t gi = 0; gi < j->groups; gi++) {
            for (int64_t c = 0; c < j->cin_g; c++)
                cgi_direct_pad_plane(j->dt, &j->k,
                                     cgi_ptr(j->x) +
                                         (n * sx[0] + (gi * j->cin_g + c) * sx[1]) * es,
                                     sx[2], sx[3], scr + c * sl * es);
            for (int64_t o = 0; o < j->cout_g; o++) {
                char *go = gp + o * len * es;
                cgi_direct_grid_plane(j->dt, &j->k,
                                      cgi_ptr(j->g) +
                                          (n * sg[0] + (gi * j->cout_g + o) * sg[1]) * es,
                                      sg[2], sg[3], go);
                if (nb)
                    cgi_direct_lanes_add(j->dt, &j->k, go, bl + (gi * j->cout_g + o) * vl * es);
            }
            int64_t o = 0, pw = kk * vl * es;                /* bytes of one pair's lanes */
            char *lw = dst + gi * j->cout_g * j->cin_g * pw; /* this group's lanes */
            for (; o + 2 <= j->cout_g && kk >= 5; o += 2)
                for (int64_t c = 0; c < j->cin_g; c++)
                    cgi_direct_wgrad_pair(j->dt, &j->k, j->off, gp + o * len * es,
                                          gp + (o + 1) * len * es, scr + c * sl * es,
                                          lw + (o * j->cin_g + c) * pw,
                                          lw + ((o + 1) * j->cin_g + c) * pw);
            for (; o < j->cout_g; o++)
                for (int64_t c = 0; c < j->cin_g; c++)
                    cgi_direct_wgrad_plane(j->dt, &j->k, j->off, gp + o * len * es,
                                           scr + c * sl * es, lw + (o * j->cin_g + c) * pw);
        }
    }
    return CG_OK;
}

/* ---- conv2d ----------------------------------------------------------------------- */
/* Per tile and group: cols [Kg, t P] = im2col(x_g), out [Coutg, t P] =
 * w_g [Coutg, Kg] cols, then out's rows plus the bias into y's planes. */
static cg_status conv_tile(const conv_job *j, int64_t tile, char *cols, bool par) {
    int64_t n0, nt = images_in(j, tile, &n0), ld = nt * j->p, cog = j->cout_g, es = j->es;
    char *out = cols + j->tile * j->p * j->kg * es;
    const cg_tensor *y = j->y;
    for (int64_t gi = 0; gi < j->groups; gi++) {
        im2col_tile(&j->k, j->x, n0, nt, gi * j->cin_g, j->cin_g, cols, par);
        cg_status s = cgi_gemm(j->dt, false, false, cog, ld, j->kg, 1.0,
                               (cgi_mat){cgi_ptr(j->w) + gi * cog * j->kg * es, j->kg, 1},
                               (cgi_mat){cols, ld, 1}, 0.0, out, ld, 1);
        if (s != CG_OK) return s;
        CGI_PAR_FOR(par && ld * cog >= CGI_PAR_MIN, i, nt * cog, {
            int64_t ti = i / cog, co = gi * cog + i % cog;
            char *dst = cgi_ptr(y) + ((n0 + ti) * y->strides[0] + co * y->strides[1]) * es;
            cgi_plane_copy(j->dt, 1, j->p, out + ((i % cog) * ld + ti * j->p) * es, 0, 1, dst,
                           j->b ? bias_at(j->b, co) : 0.0);
        });
    }
    if (j->relu) /* the tile's images, y contiguous (made by conv_apply) */
        relu_block(j->dt, nt * y->shape[1] * j->p, cgi_ptr(y) + n0 * y->strides[0] * es);
    return CG_OK;
}

static cg_status conv_compute(cg_ctx *ctx, const char *name, const cg_tensor *x,
                              const cg_tensor *w, const cg_tensor *b, const geom2 *gm,
                              cg_tensor *y) {
    conv_job j = job_of(x, y, gm, w->shape[2], w->shape[3], w->shape[0]);
    j.x = x, j.w = w, j.b = b, j.y = y, j.relu = gm->relu;
    j.kg = j.cin_g * j.k.kh * j.k.kw;
    if (direct_ok(&j.k, j.kg, j.cin_g)) return direct_conv(ctx, name, x, w, b, gm, y, false);
    tiles_of(&j, j.kg + j.cout_g);
    return run_units(ctx, name, &j, conv_tile, j.ntiles);
}

/* ---- conv_transpose2d -------------------------------------------------------------- */
/* Per tile and group: xs [Cing, t P] gathered from x, cols [Coutg KK, t P] =
 * w_g^T xs with w_g [Cing, Coutg KK], then col2im adds each image's columns
 * into its planes of y, filled with the bias first (while they are in cache). */
static cg_status convt_tile(const conv_job *j, int64_t tile, char *cols, bool par) {
    int64_t n0, nt = images_in(j, tile, &n0), ld = nt * j->p, es = j->es;
    int64_t cig = j->cout_g, cog = j->cin_g, kk = j->k.kh * j->k.kw, plane = j->k.ih * j->k.iw;
    char *xs = cols + j->tile * j->p * j->kg * es, *yd = cgi_ptr(j->y);
    int64_t cout = j->y->shape[1];
    CGI_PAR_FOR(par && nt * cout * plane >= CGI_PAR_MIN, i, nt * cout, {
        cgi_fill(j->dt, plane, yd + (n0 * cout + i) * plane * es,
                 j->b ? bias_at(j->b, i % cout) : 0.0);
    });
    for (int64_t gi = 0; gi < j->groups; gi++) {
        gather(j->x, n0, nt, gi * cig, cig, xs, par);
        cg_status s = cgi_gemm(j->dt, true, false, j->kg, ld, cig, 1.0,
                               (cgi_mat){cgi_ptr(j->w) + gi * cig * j->kg * es, j->kg, 1},
                               (cgi_mat){xs, ld, 1}, 0.0, cols, ld, 1);
        if (s != CG_OK) return s;
        CGI_PAR_FOR(par && nt * j->kg * j->p >= CGI_PAR_MIN, i, nt * cog, {
            int64_t ti = i / cog, co = i % cog;
            char *dst = yd + ((n0 + ti) * j->y->shape[1] + gi * cog + co) * plane * es;
            cgi_col2im_plane(j->dt, &j->k, cols + (co * kk * ld + ti * j->p) * es, ld, dst);
        });
    }
    return CG_OK;
}

/* x [N, Cin, H, W] is the grid, y [N, Cout, OH, OW] (contiguous) the image:
 * in the job, the image side (cin_g) is y's and the grid side (cout_g) x's. */
static cg_status convt_compute(cg_ctx *ctx, const char *name, const cg_tensor *x,
                               const cg_tensor *w, const cg_tensor *b, const geom2 *gm,
                               cg_tensor *y) {
    conv_job j = job_of(y, x, gm, w->shape[2], w->shape[3], x->shape[1]);
    j.x = x, j.w = w, j.b = b, j.y = y;
    j.kg = j.cin_g * j.k.kh * j.k.kw;
    if (direct_ok(&j.k, j.cout_g * j.k.kh * j.k.kw, j.cout_g))
        return direct_conv(ctx, name, x, w, b, gm, y, true);
    tiles_of(&j, j.kg + j.cout_g);
    return run_units(ctx, name, &j, convt_tile, j.ntiles);
}

/* ---- conv2d_weight ------------------------------------------------------------------ */
/* Partial sums of the weight gradient: at most LANES, fixed by the tile
 * count alone, so that threads can share the batch and the sums still add
 * in one order. */
#define LANES 8

/* Lane l sums the tiles l, l + lanes, ... into its partial: per tile and
 * group, gs [Coutg, t P] gathered from g and cols [Kg, t P], one GEMM adding
 * gs cols^T (beta 1 after the lane's first tile). */
static cg_status wgrad_lane(const conv_job *j, int64_t lane, char *cols, bool par) {
    int64_t es = j->es, cog = j->cout_g, nw = j->groups * cog * j->kg;
    char *gs = cols + j->tile * j->p * j->kg * es;
    char *dst = lane ? j->partials + (lane - 1) * nw * es : cgi_ptr(j->y);
    for (int64_t t = lane; t < j->ntiles; t += j->lanes) {
        int64_t n0, nt = images_in(j, t, &n0), ld = nt * j->p;
        for (int64_t gi = 0; gi < j->groups; gi++) {
            im2col_tile(&j->k, j->x, n0, nt, gi * j->cin_g, j->cin_g, cols, par);
            gather(j->g, n0, nt, gi * cog, cog, gs, par);
            cg_status s =
                cgi_gemm(j->dt, false, true, cog, j->kg, ld, 1.0, (cgi_mat){gs, ld, 1},
                         (cgi_mat){cols, ld, 1}, t == lane ? 0.0 : 1.0,
                         dst + gi * cog * j->kg * es, j->kg, 1);
            if (s != CG_OK) return s;
        }
    }
    return CG_OK;
}

/* The lanes' partial sums [nw] of the tiled GEMMs, added to lane 0's (dw)
 * in lane order. */
static cg_status wgrad_gemm(cg_ctx *ctx, conv_job *j, int64_t nw) {
    j->lanes = j->ntiles < LANES ? j->ntiles : LANES;
    j->partials = cgi_alloc(ctx, "cg_backward", (size_t)((j->lanes - 1) * nw * j->es + 1));
    if (!j->partials) return CG_ERR_NOMEM;
    cg_status s = run_units(ctx, "cg_backward", j, wgrad_lane, j->lanes);
    for (int64_t l = 1; l < j->lanes && s == CG_OK; l++)
        cgi_plane_add(j->dt, nw, j->partials + (l - 1) * nw * j->es, cgi_ptr(j->y));
    if (!ctx) free(j->partials);
    return s;
}

/* The direct kernels' lanes [nw (+ Cout), VEC] per lane of images, added in
 * lane order, then each tap's vector summed into dw (and each bias lane into
 * j->db). */
static cg_status wgrad_direct(cg_ctx *ctx, conv_job *j, int64_t nw) {
    int64_t vl = CGI_DIRECT_VEC_BYTES / j->es, nl = nw + (j->db ? j->db->shape[0] : 0);
    j->lanes = j->n < LANES ? j->n : LANES;
    j->partials = cgi_alloc(ctx, "cg_backward", (size_t)(j->lanes * nl * vl * j->es));
    cg_status s = CG_ERR_NOMEM;
    if (j->partials && direct_plan(ctx, "cg_backward", j))
        s = run_units(ctx, "cg_backward", j, direct_wgrad_lane, j->lanes);
    for (int64_t l = 1; l < j->lanes && s == CG_OK; l++)
        cgi_plane_add(j->dt, nl * vl, j->partials + l * nl * vl * j->es, j->partials);
    if (s == CG_OK) cgi_direct_lanes_sum(j->dt, nw, j->partials, cgi_ptr(j->y));
    if (s == CG_OK && j->db)
        cgi_direct_lanes_sum(j->dt, nl - nw, j->partials + nw * vl * j->es, cgi_ptr(j->db));
    if (!ctx) free(j->partials), free(j->off);
    return s;
}

/* dw [Cout, Cin/G, KH, KW] = sum over images of g_g [Coutg, P] im2col(x_g)^T,
 * directly when the stride is 1, the taps few and the lanes small. *db, if
 * db is not NULL: the bias gradient [Cout] (the sum of g over N, H, W) made
 * beside it by the direct kernels, which read every plane of g anyway; else
 * NULL (the caller sums g itself). */
static cg_status wgrad_compute(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *g,
                               const geom2 *gm, cg_tensor *dw, cg_tensor **db) {
    conv_job j = job_of(x, g, gm, gm->kernel[0], gm->kernel[1], g->shape[1]);
    j.x = x, j.g = g, j.y = dw;
    j.kg = j.cin_g * j.k.kh * j.k.kw;
    tiles_of(&j, j.kg + j.cout_g);
    int64_t nw = cgi_numel(4, dw->shape);
    bool direct = j.n > 0 && direct_ok(&j.k, j.kg, j.cin_g) && nw <= DIRECT_MAX_WEIGHT;
    if (db) {
        *db = direct ? cgi_new(ctx, "cg_backward", g->dtype, 1, &g->shape[1]) : NULL;
        if (direct && !*db) return CG_ERR_NOMEM;
        j.db = *db;
    }
    if (j.n == 0) {
        cgi_fill(j.dt, nw, cgi_ptr(dw), 0.0);
        return CG_OK;
    }
    return direct ? wgrad_direct(ctx, &j, nw) : wgrad_gemm(ctx, &j, nw);
}

/* ---- the recorded ops ------------------------------------------------------------ */
static const cg_op conv2d_op, conv1d_op, conv_transpose2d_op, conv2d_weight_op, conv2d_relu_op;

/* The output's shape: 4-D [N, Cout, OH, OW] less the implied dims. */
static int out_shape(const geom2 *gm, const int64_t *s4, int64_t *shape) {
    int nd = 0;
    for (int d = 0; d < 4; d++)
        if (!((d == 0 && gm->unbatched) || (d == 2 && gm->one_d))) shape[nd++] = s4[d];
    return nd;
}

/* conv2d (op: conv2d_op or conv1d_op) or conv_transpose2d of x, w, b (b may
 * be NULL) under gm (checked), recorded over the tensors as given. */
static cg_tensor *conv_apply(cg_ctx *ctx, const char *name, const cg_op *op, const cg_tensor *x,
                             const cg_tensor *w, const cg_tensor *b, const geom2 *gm) {
    const cg_tensor *wc = cgi_dense(ctx, w); /* a heap copy (ctx NULL) is freed below */
    if (!wc) return NULL;
    cg_tensor xl = lift(x, gm->unbatched, gm->one_d), wl = lift(wc, false, gm->one_d);
    bool fwd = op != &conv_transpose2d_op;
    int64_t s4[4] = {xl.shape[0], fwd ? wl.shape[0] : wl.shape[1] * gm->groups}, shape[4];
    for (int d = 0; d < 2; d++)
        s4[2 + d] = fwd ? conv_out(xl.shape[2 + d], wl.shape[2 + d], gm, d)
                        : convt_out(xl.shape[2 + d], wl.shape[2 + d], gm, d);
    cg_tensor *y = cgi_new(ctx, name, x->dtype, out_shape(gm, s4, shape), shape);
    cg_status s = CG_ERR_NOMEM;
    if (y) {
        cg_tensor yl = lift(y, gm->unbatched, gm->one_d);
        s = fwd ? conv_compute(ctx, name, &xl, &wl, b, gm, &yl)
                : convt_compute(ctx, name, &xl, &wl, b, gm, &yl);
    }
    if (!ctx && wc != w) cg_tensor_free((cg_tensor *)wc);
    if (s != CG_OK) {
        cg_tensor_free(y);
        return NULL;
    }
    const cg_tensor *in[3] = {x, w, b};
    return cg_record(ctx, op, y, b ? 3 : 2, in, gm, sizeof *gm);
}

/* The plain 4-D geometry of the backward rules' views. */
static geom2 plain(const geom2 *gm) {
    geom2 p = *gm;
    p.unbatched = p.one_d = p.relu = false;
    p.outpad[0] = p.outpad[1] = 0;
    return p;
}

static const cg_op conv2d_bias_grad_op;

/* conv2d_weight(x, g): the weight [Cout, Cin/G, kh, kw] of gm->kernel; with
 * db, also conv2d's bias gradient, the sum of g over N, H, W, when the
 * kernels make it on the way (*db NULL otherwise). */
static cg_tensor *conv2d_weight(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *g,
                                const geom2 *gm, cg_tensor **db) {
    if (db) *db = NULL;
    if (!x || !g) return NULL;
    int64_t shape[4] = {g->shape[1], x->shape[1] / gm->groups, gm->kernel[0], gm->kernel[1]};
    cg_tensor *dw = cgi_new(ctx, "cg_backward", x->dtype, 4, shape);
    if (dw && wgrad_compute(ctx, x, g, gm, dw, db) != CG_OK) return NULL; /* dw is in ctx */
    if (db && *db) *db = CGI_RECORD(ctx, &conv2d_bias_grad_op, *db, g);
    const cg_tensor *in[2] = {x, g};
    return cg_record(ctx, &conv2d_weight_op, dw, 2, in, gm, sizeof *gm);
}

/* db = the sum of g [N, C, H, W] over N, H, W: dg = h [C] broadcast back. */
static cg_status bias_grad_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *h,
                                    cg_tensor **gin) {
    const cg_tensor *g = cg_node_input(n, 0);
    cg_tensor *h4 = cg_reshape(ctx, h, 4, (const int64_t[]){1, h->shape[0], 1, 1});
    gin[0] = cg_expand(ctx, h4, 4, g->shape);
    return cgi_grads_made(n, gin);
}
static const cg_op conv2d_bias_grad_op = {"conv2d_bias_grad", bias_grad_backward, 0};

/* conv_transpose2d(g, w) sized to the image [ih, iw] it is the gradient of. */
static cg_tensor *transpose_to(cg_ctx *ctx, const cg_tensor *g, const cg_tensor *w,
                               const geom2 *gm, int64_t ih, int64_t iw) {
    if (!g || !w) return NULL;
    geom2 t = plain(gm);
    int64_t size[2] = {ih, iw};
    for (int d = 0; d < 2; d++)
        t.outpad[d] = size[d] - convt_out(g->shape[2 + d], w->shape[2 + d], &t, d);
    return conv_apply(ctx, "cg_backward", &conv_transpose2d_op, g, w, NULL, &t);
}

/* conv2d(x, w) cut to the grid [oh, ow] it is the gradient of (a longer
 * output comes from output_padding >= stride, allowed below the dilation). */
static cg_tensor *conv_to(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w, const geom2 *gm,
                          int64_t oh, int64_t ow) {
    if (!x || !w) return NULL;
    geom2 p = plain(gm);
    cg_tensor *y = conv_apply(ctx, "cg_backward", &conv2d_op, x, w, NULL, &p);
    if (y && y->shape[2] > oh) y = cg_narrow(ctx, y, 2, 0, oh);
    if (y && y->shape[3] > ow) y = cg_narrow(ctx, y, 3, 0, ow);
    return y;
}

/* Gradients of a 4-D result back to the input's own shape. */
static cg_tensor *unlift(cg_ctx *ctx, cg_tensor *g4, const cg_tensor *like) {
    return g4 && g4->ndim != like->ndim ? cg_reshape(ctx, g4, like->ndim, like->shape) : g4;
}

static const cg_op conv_transpose2d_op; /* defined below, with its rule */

/* conv2d and conv_transpose2d, each the other's input gradient:
 *   conv2d:           dx = conv_transpose2d(g, w) to x's size, dw = conv2d_weight(x, g);
 *   conv_transpose2d: dx = conv2d(g, w) to x's size, dw = conv2d_weight(g, x)
 *                     (g the image, x the grid);
 * db = sum of g over N, H, W for both. */
static cg_status conv_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                               cg_tensor **gin) {
    const geom2 *gm = cg_node_saved(n);
    bool t = cg_node_op(n) == &conv_transpose2d_op;
    const cg_tensor *x = cg_node_input(n, 0), *w = cg_node_input(n, 1);
    cg_tensor *x4 = lift_view(ctx, x, gm->unbatched, gm->one_d);
    cg_tensor *w4 = lift_view(ctx, w, false, gm->one_d);
    cg_tensor *g4 = lift_view(ctx, g, gm->unbatched, gm->one_d);
    if (!x4 || !w4 || !g4) return cg_last_status();
    geom2 p = plain(gm);
    p.kernel[0] = w4->shape[2], p.kernel[1] = w4->shape[3];
    int64_t h = x4->shape[2], wd = x4->shape[3];
    if (cg_node_needs_grad(n, 0))
        gin[0] = unlift(
            ctx, t ? conv_to(ctx, g4, w4, &p, h, wd) : transpose_to(ctx, g4, w4, &p, h, wd), x);
    cg_tensor *db = NULL; /* conv2d's bias gradient, made beside dw when the kernels can */
    bool fuse = !t && cg_node_needs_grad(n, 2);
    if (cg_node_needs_grad(n, 1))
        gin[1] = unlift(ctx,
                        t ? conv2d_weight(ctx, g4, x4, &p, NULL)
                          : conv2d_weight(ctx, x4, g4, &p, fuse ? &db : NULL),
                        w);
    if (cg_node_needs_grad(n, 2))
        gin[2] = db ? db : cg_sum(ctx, g4, (const int[]){0, 2, 3}, 3, false);
    return cgi_grads_made(n, gin);
}
static const cg_op conv2d_op = {"conv2d", conv_backward, CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};

/* conv1d: conv2d's rule (the geometry says H is implied), under its own name. */
static const cg_op conv1d_op = {"conv1d", conv_backward, CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};
static const cg_op conv_transpose2d_op = {"conv_transpose2d", conv_backward,
                                          CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};

/* conv2d_weight(x, g) with h the gradient of the weight it made:
 * dx = conv_transpose2d(g, h) to x's size, dg = conv2d(x, h) to g's size. */
static cg_status wgrad_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *h,
                                cg_tensor **gin) {
    const geom2 *gm = cg_node_saved(n);
    const cg_tensor *x = cg_node_input(n, 0), *g = cg_node_input(n, 1);
    if (cg_node_needs_grad(n, 0))
        gin[0] = transpose_to(ctx, g, h, gm, x->shape[2], x->shape[3]);
    if (cg_node_needs_grad(n, 1)) gin[1] = conv_to(ctx, x, h, gm, g->shape[2], g->shape[3]);
    return cgi_grads_made(n, gin);
}
static const cg_op conv2d_weight_op = {"conv2d_weight", wgrad_backward,
                                       CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1)};

/* ---- conv2d and ReLU as one op ------------------------------------------------------ */
/* relu(conv2d(x, w, b)) as one node r: conv2d's rule on g masked where r > 0
 * (relu's mask: r > 0 exactly where conv2d's output is), unless max pooling
 * masked it already (cgi_node_premask, as for cg_relu); recorded under
 * CG_CREATE_GRAPH (relu's mask op, then conv2d's differentiable rule). */
static cg_status conv2d_relu_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                      cg_tensor **gin) {
    if (cgi_node_gout_premasked(n)) return conv_backward(ctx, n, g, gin); /* masked already */
    const cg_tensor *r = cg_node_output(n);
    cg_tensor *gy;
    if (cg_is_grad_enabled(ctx)) /* CG_CREATE_GRAPH: recorded */
        gy = cgi_relu_grad(ctx, g, r);
    else if ((gy = cgi_grad_buffer(ctx, n, g, r)))
        cgi_map_binary(cgi_binary_relu_grad.fn[r->dtype], g, r, gy);
    return gy ? conv_backward(ctx, n, gy, gin) : cg_last_status();
}
static const cg_op conv2d_relu_op = {"conv2d_relu", conv2d_relu_backward,
                                     CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1) | CG_SAVES_OUTPUT};

bool cgi_is_conv2d_relu(const cg_node *node) {
    return node && cg_node_op(node) == &conv2d_relu_op;
}

/* ---- conv2d, ReLU and 2x2 max pooling as one op ----------------------------------- */
/* The node's saved data: the convolution's (conv_backward reads it as its
 * geom2), its output's shape (never made) and the pool's codes. */
typedef struct pool_fused {
    geom2 gm;
    int64_t rshape[4];
    const cg_tensor *codes; /* the context's, as the node */
} pool_fused;

/* y = pool(relu(c)), c = conv2d(x, w, b): dc = g scattered to the windows'
 * argmax where y > 0 (relu's mask there: y is c at the argmax), then
 * conv2d's rule; recorded under CG_CREATE_GRAPH (relu's mask op, the
 * scatter op, conv2d's differentiable rule). */
static cg_status conv2d_relu_pool_backward(cg_ctx *ctx, const cg_node *n, const cg_tensor *g,
                                           cg_tensor **gin) {
    const pool_fused *pf = cg_node_saved(n);
    const cg_tensor *y = cg_node_output(n);
    bool rec = cg_is_grad_enabled(ctx);
    cg_tensor *gm = rec ? cgi_relu_grad(ctx, g, y) : (cg_tensor *)g;
    cg_tensor *dc =
        gm ? cgi_max_unpool2x2(ctx, gm, pf->codes, pf->rshape, rec ? NULL : y) : NULL;
    if (!dc) return cg_last_status();
    return conv_backward(ctx, n, dc, gin);
}
static const cg_op conv2d_relu_pool_op = {"conv2d_relu_maxpool2d", conv2d_relu_pool_backward,
                                          CG_SAVES_INPUT(0) | CG_SAVES_INPUT(1) |
                                              CG_SAVES_OUTPUT};

/* The fused op where the direct kernels apply (f32, 4-D x, a context, an
 * output of at least 2 x 2); *done false (and NULL) elsewhere. */
static cg_tensor *conv_relu_pool(cg_ctx *ctx, const char *name, const cg_tensor *x,
                                 const cg_tensor *w, const cg_tensor *b, const geom2 *gm,
                                 bool *done) {
    *done = false;
    if (!ctx || x->dtype != CG_F32 || gm->unbatched || gm->one_d) return NULL;
    cg_tensor c = *x; /* a header of the convolution's output shape, no data */
    c.shape[1] = w->shape[0];
    for (int d = 0; d < 2; d++)
        c.shape[2 + d] = conv_out(x->shape[2 + d], w->shape[2 + d], gm, d);
    conv_job j = job_of(x, &c, gm, w->shape[2], w->shape[3], w->shape[0]);
    j.kg = j.cin_g * j.k.kh * j.k.kw;
    if (c.shape[2] < 2 || c.shape[3] < 2 || !direct_ok(&j.k, j.kg, j.cin_g)) return NULL;
    *done = true;
    const cg_tensor *wc = cgi_dense(ctx, w);
    cg_tensor *y =
        wc ? cgi_new(ctx, name, CG_F32,
                     CG_SHAPE(c.shape[0], c.shape[1], c.shape[2] / 2, c.shape[3] / 2))
           : NULL;
    cg_tensor *codes = y ? cgi_new(ctx, name, CG_I64, CG_SHAPE((cg_numel(y) + 7) / 8)) : NULL;
    if (!codes) return NULL;
    j.x = x, j.w = wc, j.b = b, j.y = y, j.codes = (uint8_t *)cgi_ptr(codes);
    if (!direct_plan(ctx, name, &j) ||
        run_units(ctx, name, &j, direct_conv_image, j.n) != CG_OK)
        return NULL;
    pool_fused pf = {.gm = *gm, .codes = codes};
    memcpy(pf.rshape, c.shape, sizeof pf.rshape);
    const cg_tensor *in[3] = {x, w, b};
    return cg_record(ctx, &conv2d_relu_pool_op, y, b ? 3 : 2, in, &pf, sizeof pf);
}

/* ---- the public functions: checks, then conv_apply ------------------------------- */
cg_conv_opts cg_conv_defaults(void) {
    return (cg_conv_opts){.stride = {1, 1}, .dilation = {1, 1}, .groups = 1};
}

/* One public function: its name, spatial rank (1 or 2) and direction. */
typedef struct conv_fn {
    const char *name;
    int nsp;
    bool transposed;
    bool relu; /* cg_conv2d_relu */
    bool pool; /* then 2x2 max pooling (cgi_conv2d_relu_layer) */
} conv_fn;

/* "3" (1-D) or "3x3" into buf, from v[0..nsp). */
static const char *dims_str(char *buf, size_t size, int nsp, const int64_t *v) {
    if (nsp == 1)
        snprintf(buf, size, "%lld", (long long)v[0]);
    else
        snprintf(buf, size, "%lldx%lld", (long long)v[0], (long long)v[1]);
    return buf;
}

static bool dtypes_ok(cg_ctx *ctx, const conv_fn *f, const cg_tensor *x, const cg_tensor *w,
                      const cg_tensor *b) {
    if (cgi_is_float(x->dtype) && w->dtype == x->dtype && (!b || b->dtype == x->dtype))
        return true;
    cgi_error(ctx, CG_ERR_DTYPE, "%s: input %s, weight %s, bias %s: need one float dtype",
              f->name, cg_dtype_name(x->dtype), cg_dtype_name(w->dtype),
              b ? cg_dtype_name(b->dtype) : "none");
    return false;
}

static bool ranks_ok(cg_ctx *ctx, const conv_fn *f, const cg_tensor *x, const cg_tensor *w) {
    if ((x->ndim == f->nsp + 2 || x->ndim == f->nsp + 1) && w->ndim == f->nsp + 2) return true;
    char sx[160], sw[160];
    cgi_error(ctx, CG_ERR_SHAPE,
              "%s: input %s, weight %s: need input %s (or unbatched %s), "
              "weight %s",
              f->name, cg_shape_str(x, sx, sizeof sx), cg_shape_str(w, sw, sizeof sw),
              f->nsp == 1 ? "[N, C, L]" : "[N, C, H, W]", f->nsp == 1 ? "[C, L]" : "[C, H, W]",
              f->nsp == 1 ? "[C_out, C_in / groups, K]" : "[C_out, C_in / groups, KH, KW]");
    return false;
}

/* The option values (CG_ERR_ARG). */
static bool opts_ok(cg_ctx *ctx, const conv_fn *f, const cg_conv_opts *o);

bool cgi_conv_opts_ok(const char *fn, int nsp, bool transposed, const cg_conv_opts *o) {
    const conv_fn f = {fn, nsp, transposed, false, false};
    return opts_ok(NULL, &f, o);
}

static bool opts_ok(cg_ctx *ctx, const conv_fn *f, const cg_conv_opts *o) {
    char a[48], b[48], c[48];
    const char *bad = NULL;
    const int64_t cap = (int64_t)1 << 30; /* larger values overflow the size arithmetic */
    for (int d = 0; d < f->nsp; d++) {
        if (o->stride[d] < 1 || o->stride[d] > cap) bad = "stride";
        if (o->dilation[d] < 1 || o->dilation[d] > cap) bad = "dilation";
        if (o->padding[d] < 0 || o->padding[d] > cap) bad = "padding";
        if (o->output_padding[d] < 0 || o->output_padding[d] > cap) bad = "output_padding";
    }
    if (bad) {
        const int64_t *v = !strcmp(bad, "stride")     ? o->stride
                           : !strcmp(bad, "dilation") ? o->dilation
                           : !strcmp(bad, "padding")  ? o->padding
                                                      : o->output_padding;
        cgi_error(ctx, CG_ERR_ARG, "%s: %s %s must be %s and at most 2^30", f->name, bad,
                  dims_str(a, sizeof a, f->nsp, v),
                  bad[0] == 's' || bad[0] == 'd' ? ">= 1" : ">= 0");
        return false;
    }
    if (o->groups < 1) {
        cgi_error(ctx, CG_ERR_ARG, "%s: groups %lld must be >= 1", f->name,
                  (long long)o->groups);
        return false;
    }
    if (o->same && f->transposed) {
        cgi_error(ctx, CG_ERR_ARG, "%s: padding \"same\" is for conv1d and conv2d only",
                  f->name);
        return false;
    }
    bool stride1 = o->stride[0] == 1 && (f->nsp == 1 || o->stride[1] == 1);
    if (o->same && !stride1) {
        cgi_error(ctx, CG_ERR_ARG, "%s: padding \"same\" needs stride 1, got %s", f->name,
                  dims_str(a, sizeof a, f->nsp, o->stride));
        return false;
    }
    for (int d = 0; d < f->nsp && f->transposed; d++)
        if (o->output_padding[d] >= o->stride[d] && o->output_padding[d] >= o->dilation[d]) {
            cgi_error(ctx, CG_ERR_ARG,
                      "%s: output_padding %s must be smaller than the stride %s or the "
                      "dilation %s",
                      f->name, dims_str(a, sizeof a, f->nsp, o->output_padding),
                      dims_str(b, sizeof b, f->nsp, o->stride),
                      dims_str(c, sizeof c, f->nsp, o->dilation));
            return false;
        }
    return true;
}

/* Channels, groups and bias against the weight (CG_ERR_SHAPE). */
static bool channels_ok(cg_ctx *ctx, const conv_fn *f, const cg_tensor *x, const cg_tensor *w,
                        const cg_tensor *b, int64_t groups) {
    char sx[160], sw[160], sb[160];
    int64_t c = x->shape[x->ndim - f->nsp - 1];
    cg_shape_str(x, sx, sizeof sx), cg_shape_str(w, sw, sizeof sw);
    if (w->shape[1] > (INT64_MAX / 16) / groups) { /* the products below would overflow */
        cgi_error(ctx, CG_ERR_SHAPE, "%s: groups %lld for weight %s: too many channels",
                  f->name, (long long)groups, sw);
        return false;
    }
    int64_t wout = f->transposed ? w->shape[1] * groups : w->shape[0];
    int64_t gdiv = f->transposed ? c : w->shape[0];
    if (gdiv % groups) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "%s: groups %lld does not divide the %lld %s channels of "
                  "%s",
                  f->name, (long long)groups, (long long)gdiv,
                  f->transposed ? "input" : "output", f->transposed ? sx : sw);
        return false;
    }
    if (!f->transposed && c != w->shape[1] * groups) {
        cgi_error(ctx, CG_ERR_SHAPE,
                  "%s: input %s has %lld channels, weight %s expects %lld x "
                  "groups %lld",
                  f->name, sx, (long long)c, sw, (long long)w->shape[1], (long long)groups);
        return false;
    }
    if (f->transposed && c != w->shape[0]) {
        cgi_error(ctx, CG_ERR_SHAPE, "%s: input %s has %lld channels, weight %s expects %lld",
                  f->name, sx, (long long)c, sw, (long long)w->shape[0]);
        return false;
    }
    if (b && (b->ndim != 1 || b->shape[0] != wout)) {
        cgi_error(ctx, CG_ERR_SHAPE, "%s: bias %s for weight %s: need [%lld]", f->name,
                  cg_shape_str(b, sb, sizeof sb), sw, (long long)wout);
        return false;
    }
    return true;
}

/* The geometry, 2-D (a 1-D op's options go to W), and the sizes it gives. */
static bool geometry_ok(cg_ctx *ctx, const conv_fn *f, const cg_tensor *x, const cg_tensor *w,
                        const cg_conv_opts *o, geom2 *gm) {
    *gm = (geom2){.stride = {1, 1}, .dil = {1, 1}, .groups = o->groups};
    gm->unbatched = x->ndim == f->nsp + 1;
    gm->one_d = f->nsp == 1;
    int64_t kern[2], in[2], span[2], size[2];
    bool small = false, empty = false;
    for (int d = 0; d < f->nsp; d++) {
        int g = d + 2 - f->nsp; /* index into gm */
        int64_t k = w->shape[w->ndim - f->nsp + d], dil = o->dilation[d];
        in[d] = x->shape[x->ndim - f->nsp + d];
        gm->stride[g] = o->stride[d], gm->dil[g] = dil, gm->outpad[g] = o->output_padding[d];
        gm->lo[g] = o->same ? dil * (k - 1) / 2 : o->padding[d];
        gm->hi[g] = o->same ? dil * (k - 1) - gm->lo[g] : o->padding[d];
        kern[d] = (k - 1) * dil + 1, span[d] = in[d] + gm->lo[g] + gm->hi[g];
        size[d] = convt_out(in[d], k, gm, g);
        small = small || k < 1 || (!f->transposed && kern[d] > span[d]);
        empty = empty || (f->transposed && size[d] < 1);
    }
    char sx[160], sw[160], a[48], b[48], c[48];
    cg_shape_str(x, sx, sizeof sx), cg_shape_str(w, sw, sizeof sw);
    if (small)
        cgi_error(ctx, CG_ERR_SHAPE,
                  "%s: kernel %s (dilated) is larger than the padded input "
                  "%s (input %s, weight %s)",
                  f->name, dims_str(a, sizeof a, f->nsp, kern),
                  dims_str(b, sizeof b, f->nsp, span), sx, sw);
    else if (empty)
        cgi_error(ctx, CG_ERR_SHAPE,
                  "%s: output size %s is not positive (input %s, weight %s, "
                  "padding %s)",
                  f->name, dims_str(c, sizeof c, f->nsp, size), sx, sw,
                  dims_str(a, sizeof a, f->nsp, o->padding));
    return !small && !empty;
}

static cg_tensor *conv_entry(cg_ctx *ctx, const conv_fn *f, const cg_tensor *x,
                             const cg_tensor *w, const cg_tensor *b, const cg_conv_opts *opts) {
    CGI_INPUT_CHECK(x, f->name, 0);
    CGI_INPUT_CHECK(w, f->name, 1);
    if (b) CGI_INPUT_CHECK(b, f->name, 2);
    cg_conv_opts o = opts ? *opts : cg_conv_defaults();
    geom2 gm;
    if (!dtypes_ok(ctx, f, x, w, b) || !ranks_ok(ctx, f, x, w) || !opts_ok(ctx, f, &o) ||
        !channels_ok(ctx, f, x, w, b, o.groups) || !geometry_ok(ctx, f, x, w, &o, &gm))
        return NULL;
    const cg_op *op = f->transposed ? &conv_transpose2d_op
                      : f->relu     ? &conv2d_relu_op
                      : f->nsp == 1 ? &conv1d_op
                                    : &conv2d_op;
    gm.relu = f->relu;
    if (f->pool) {
        bool done;
        cg_tensor *y = conv_relu_pool(ctx, f->name, x, w, b, &gm, &done);
        if (done) return y;
        cg_pool_opts po = cg_pool_defaults(2, 2);
        cg_tensor *r = conv_apply(ctx, f->name, op, x, w, b, &gm);
        y = r ? cg_max_pool2d(ctx, r, &po, NULL) : NULL;
        if (!ctx) cg_tensor_free(r); /* a caller-owned intermediate */
        return y;
    }
    return conv_apply(ctx, f->name, op, x, w, b, &gm);
}

cg_tensor *cg_conv1d(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w, const cg_tensor *b,
                     const cg_conv_opts *opts) {
    static const conv_fn f = {"cg_conv1d", 1, false, false, false};
    return conv_entry(ctx, &f, x, w, b, opts);
}

cg_tensor *cg_conv2d(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w, const cg_tensor *b,
                     const cg_conv_opts *opts) {
    static const conv_fn f = {"cg_conv2d", 2, false, false, false};
    return conv_entry(ctx, &f, x, w, b, opts);
}

cg_tensor *cg_conv2d_relu(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w,
                          const cg_tensor *b, const cg_conv_opts *opts) {
    static const conv_fn f = {"cg_conv2d_relu", 2, false, true, false};
    return conv_entry(ctx, &f, x, w, b, opts);
}

/* nn's Conv2d + ReLU (+ MaxPool2d(2) when pool): errors name cg_conv2d, the
 * function the Conv2d layer calls. */
cg_tensor *cgi_conv2d_relu_layer(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w,
                                 const cg_tensor *b, const cg_conv_opts *opts, bool pool) {
    static const conv_fn relu = {"cg_conv2d", 2, false, true, false};
    static const conv_fn relu_pool = {"cg_conv2d", 2, false, true, true};
    return conv_entry(ctx, pool ? &relu_pool : &relu, x, w, b, opts);
}

cg_tensor *cg_conv_transpose2d(cg_ctx *ctx, const cg_tensor *x, const cg_tensor *w,
                               const cg_tensor *b, const cg_conv_opts *opts) {
    static const conv_fn f = {"cg_conv_transpose2d", 2, true, false, false};
    return conv_entry(ctx, &f, x, w, b, opts);
}
