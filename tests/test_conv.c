/* The convolutions of ops/conv.c: conv1d, conv2d and conv_transpose2d.
 * Values by hand, a naive float64 reference over a grid of options (stride,
 * padding including "same", dilation, groups including depthwise, batch 1
 * and 3, a transposed input), gradcheck over that grid, gradgradcheck, the
 * unbatched form, every error, and 1 against 2 threads bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cgrad_cmocka.h"
#include "testutil.h"

/* ---- the naive reference --------------------------------------------------------- */
/* One call: x [n, cin, h, w], weight kh x kw (conv: [cout, cin / groups, kh,
 * kw]; transposed: [cin, cout / groups, kh, kw]), options as cg_conv_opts. */
typedef struct cfg {
    int64_t n, cin, cout, h, w, kh, kw;
    cg_conv_opts o;
    bool transposed, noncontig, bias, one_d, f32;
    bool relu; /* cg_conv2d_relu */
} cfg;

static int64_t lo_pad(const cfg *c, int d) {
    int64_t k = d ? c->kw : c->kh;
    return c->o.same ? c->o.dilation[d] * (k - 1) / 2 : c->o.padding[d];
}
static int64_t total_pad(const cfg *c, int d) {
    int64_t k = d ? c->kw : c->kh;
    return c->o.same ? c->o.dilation[d] * (k - 1) : 2 * c->o.padding[d];
}
static int64_t out_size(const cfg *c, int d) {
    int64_t in = d ? c->w : c->h, k = d ? c->kw : c->kh;
    int64_t s = c->o.stride[d], dil = c->o.dilation[d];
    if (c->transposed)
        return (in - 1) * s - total_pad(c, d) + dil * (k - 1) + 1 + c->o.output_padding[d];
    return (in + total_pad(c, d) - dil * (k - 1) - 1) / s + 1;
}

/* y [n, cout, oh, ow] by the definition, in float64. */
static void ref_conv(const cfg *c, const double *x, const double *w, const double *b,
                     double *y) {
    int64_t oh = out_size(c, 0), ow = out_size(c, 1), g = c->o.groups;
    int64_t cig = c->cin / g, cog = c->cout / g;
    for (int64_t i = 0; i < c->n * c->cout * oh * ow; i++)
        y[i] = b ? b[i / (oh * ow) % c->cout] : 0;
    for (int64_t n = 0; n < c->n; n++)
        for (int64_t ci = 0; ci < c->cin; ci++)
            for (int64_t co = 0; co < cog; co++)
                for (int64_t ky = 0; ky < c->kh; ky++)
                    for (int64_t kx = 0; kx < c->kw; kx++)
                        for (int64_t a = 0; a < (c->transposed ? c->h : oh); a++)
                            for (int64_t e = 0; e < (c->transposed ? c->w : ow); e++) {
                                /* (a, e) is on the grid: conv's output, transpose's input */
                                int64_t py =
                                    a * c->o.stride[0] + ky * c->o.dilation[0] - lo_pad(c, 0);
                                int64_t px =
                                    e * c->o.stride[1] + kx * c->o.dilation[1] - lo_pad(c, 1);
                                int64_t gi = ci / cig, oc = gi * cog + co;
                                if (!c->transposed) {
                                    if (py < 0 || py >= c->h || px < 0 || px >= c->w) continue;
                                    double wv =
                                        w[((oc * cig + ci % cig) * c->kh + ky) * c->kw + kx];
                                    y[((n * c->cout + oc) * oh + a) * ow + e] +=
                                        wv * x[((n * c->cin + ci) * c->h + py) * c->w + px];
                                } else {
                                    if (py < 0 || py >= oh || px < 0 || px >= ow) continue;
                                    double wv = w[((ci * cog + co) * c->kh + ky) * c->kw + kx];
                                    y[((n * c->cout + oc) * oh + py) * ow + px] +=
                                        wv * x[((n * c->cin + ci) * c->h + a) * c->w + e];
                                }
                            }
}

/* ---- calling the op under test ----------------------------------------------------- */
static cg_tensor *apply(cg_ctx *ctx, const cfg *c, const cg_tensor *x, const cg_tensor *w,
                        const cg_tensor *b) {
    if (c->transposed) return cg_conv_transpose2d(ctx, x, w, b, &c->o);
    if (c->relu) return cg_conv2d_relu(ctx, x, w, b, &c->o);
    if (!c->one_d) return cg_conv2d(ctx, x, w, b, &c->o);
    /* conv1d on the W dim: options [0] are L's */
    cg_conv_opts o = c->o;
    o.stride[0] = o.stride[1], o.padding[0] = o.padding[1], o.dilation[0] = o.dilation[1];
    return cg_conv1d(ctx, x, w, b, &o);
}

static cg_tensor *apply_fn(cg_ctx *ctx, cg_tensor *const *in, void *user) {
    const cfg *c = user;
    return apply(ctx, c, in[0], in[1], c->bias ? in[2] : NULL);
}

static void x_shape(const cfg *c, int64_t *s, int *nd) {
    int64_t full[4] = {c->n, c->cin, c->h, c->w};
    *nd = 0;
    for (int d = 0; d < 4; d++)
        if (!(c->one_d && d == 2)) s[(*nd)++] = full[d];
}
static void w_shape(const cfg *c, int64_t *s, int *nd) {
    int64_t g = c->o.groups;
    int64_t full[4] = {c->transposed ? c->cin : c->cout,
                       c->transposed ? c->cout / g : c->cin / g, c->kh, c->kw};
    *nd = 0;
    for (int d = 0; d < 4; d++)
        if (!(c->one_d && d == 2)) s[(*nd)++] = full[d];
}

/* Caller-owned f64 leaves x, w, b (b NULL unless c->bias) from seed; x is a
 * transposed view (H and W swapped in memory) when c->noncontig. */
static void make_inputs(const cfg *c, uint64_t seed, cg_tensor **in) {
    cg_rng rng = seeded(seed);
    cg_dtype dt = c->f32 ? CG_F32 : CG_F64;
    int64_t xs[4], ws[4];
    int nx, nw;
    x_shape(c, xs, &nx);
    w_shape(c, ws, &nw);
    if (c->noncontig) {
        int64_t t = xs[nx - 1];
        xs[nx - 1] = xs[nx - 2], xs[nx - 2] = t;
        cg_tensor *base = cg_randn(NULL, &rng, dt, nx, xs, 0, 1);
        in[0] = cg_transpose(NULL, base, -1, -2);
        cg_tensor_free(base);
        assert_false(cg_is_contiguous(in[0]));
        assert_int_equal(cg_set_requires_grad(in[0], true), CG_OK);
    } else {
        in[0] = randn_leaf(&rng, dt, nx, xs, 1);
    }
    in[1] = randn_leaf(&rng, dt, nw, ws, 0.5);
    in[2] = c->bias ? randn_leaf(&rng, dt, 1, (int64_t[]){c->cout}, 1) : NULL;
}

static void free_inputs(cg_tensor **in) {
    for (int i = 0; i < 3; i++) cg_tensor_free(in[i]);
}

/* The op's output equals the reference within tol. */
static void check_against_ref(cg_ctx *ctx, const cfg *c, cg_tensor *const *in, double tol) {
    int64_t nx = cg_numel(in[0]), nw = cg_numel(in[1]);
    int64_t ny = c->n * c->cout * out_size(c, 0) * out_size(c, 1);
    double *x = malloc(sizeof(double) * (size_t)(nx + nw + c->cout + 2 * ny));
    double *w = x + nx, *b = w + nw, *want = b + c->cout, *got = want + ny;
    assert_int_equal(cg_copy_to_array(in[0], CG_F64, x), CG_OK);
    assert_int_equal(cg_copy_to_array(in[1], CG_F64, w), CG_OK);
    if (in[2]) assert_int_equal(cg_copy_to_array(in[2], CG_F64, b), CG_OK);
    ref_conv(c, x, w, in[2] ? b : NULL, want);
    cg_tensor *y = apply(ctx, c, in[0], in[1], in[2]);
    if (!y) fail_msg("%s", cg_last_error());
    assert_int_equal(cg_numel(y), ny);
    assert_int_equal(cg_copy_to_array(y, CG_F64, got), CG_OK);
    for (int64_t i = 0; i < ny; i++)
        if (fabs(got[i] - want[i]) > tol * (1 + fabs(want[i])))
            fail_msg("element %lld: got %.17g, want %.17g", (long long)i, got[i], want[i]);
    free(x);
    cg_ctx_reset(ctx);
}

/* ---- the grid ------------------------------------------------------------------------ */
/* Every combination of stride 1/2, padding 0/1/same (stride 1), dilation
 * 1/2 and groups 1/2/4 (depthwise: 4 input channels), batch 1 or 3 and a
 * transposed input in turn; for each, check(c). */
typedef void (*cfg_check)(cg_ctx *ctx, const cfg *c, int index);

static void over_grid(cg_ctx *ctx, bool transposed, bool one_d, int64_t h, int64_t w,
                      cfg_check check) {
    static const int64_t groups[] = {1, 2, 4};
    int index = 0;
    for (int s = 1; s <= 2; s++)
        for (int p = 0; p < 3; p++)
            for (int d = 1; d <= 2; d++)
                for (int gi = 0; gi < 3; gi++) {
                    if (p == 2 && (s > 1 || transposed)) continue;
                    cfg c = {.n = index % 2 ? 3 : 1,
                             .cin = 4,
                             .cout = gi == 2 ? 8 : 4,
                             .h = one_d ? 1 : h,
                             .w = w,
                             .kh = one_d ? 1 : 3,
                             .kw = 2,
                             .transposed = transposed,
                             .one_d = one_d,
                             .noncontig = index % 3 == 1 && !one_d,
                             .bias = index % 4 != 3};
                    c.o = cg_conv_defaults();
                    c.o.groups = groups[gi];
                    for (int k = 0; k < 2; k++) {
                        c.o.stride[k] = s, c.o.dilation[k] = d;
                        c.o.padding[k] = p == 1, c.o.same = p == 2;
                        /* output_padding where the stride or dilation allows it */
                        c.o.output_padding[k] = transposed && (s > 1 || d > 1) && index % 2;
                    }
                    if (one_d) c.o.stride[0] = c.o.dilation[0] = 1, c.o.padding[0] = 0;
                    check(ctx, &c, index++);
                }
}

static void ref_check(cg_ctx *ctx, const cfg *c, int index) {
    cg_tensor *in[3];
    make_inputs(c, 100 + (uint64_t)index, in);
    check_against_ref(ctx, c, in, 1e-12);
    free_inputs(in);
}

static void grad_check(cg_ctx *ctx, const cfg *c, int index) {
    (void)ctx;
    cg_tensor *in[3];
    make_inputs(c, 200 + (uint64_t)index, in);
    cg_assert_gradcheck(apply_fn, (void *)c, c->bias ? 3 : 2, in);
    free_inputs(in);
}

/* a and b hold the same values bit for bit (f64 or f32, any shapes of one size). */
static void assert_same_bits(const cg_tensor *a, const cg_tensor *b) {
    assert_non_null(a);
    assert_non_null(b);
    int64_t n = cg_numel(a);
    assert_int_equal(cg_numel(b), n);
    double *va = malloc(sizeof(double) * (size_t)n * 2);
    assert_int_equal(cg_copy_to_array(a, CG_F64, va), CG_OK);
    assert_int_equal(cg_copy_to_array(b, CG_F64, va + n), CG_OK);
    assert_memory_equal(va, va + n, sizeof(double) * (size_t)n);
    free(va);
}

/* ---- values by hand ---------------------------------------------------------------- */
static void test_conv_by_hand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = leaf(CG_F32, CG_SHAPE(1, 1, 3, 3), (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    cg_tensor *w = leaf(CG_F32, CG_SHAPE(1, 1, 2, 2), (double[]){1, 2, 3, 4});
    cg_tensor *b = leaf(CG_F32, CG_SHAPE(1), (double[]){1});
    cg_tensor *y = cg_conv2d(ctx, x, w, b, NULL);
    assert_values(y, (double[]){38, 48, 68, 78}, 4, 0);
    assert_int_equal(cg_backward(cg_sum(ctx, y, NULL, 0, false)), CG_OK);
    /* each input pixel collects the weights whose taps reach it */
    assert_values(cg_grad_of(x), (double[]){1, 3, 2, 4, 10, 6, 3, 7, 4}, 9, 0);
    /* dw[ky][kx] = sum of the 2x2 window of x at (ky, kx) */
    assert_values(cg_grad_of(w), (double[]){12, 16, 24, 28}, 4, 0);
    assert_values(cg_grad_of(b), (double[]){4}, 1, 0);
    cg_tensor_free(x);
    cg_tensor_free(w);
    cg_tensor_free(b);
}

static void test_conv_transpose_by_hand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(1, 1, 2, 2), (double[]){1, 2, 3, 4});
    cg_tensor *w = cg_from_array(ctx, CG_F64, CG_SHAPE(1, 1, 2, 2), (double[]){1, 1, 1, 1});
    assert_values(cg_conv_transpose2d(ctx, x, w, NULL, NULL),
                  (double[]){1, 3, 2, 4, 10, 6, 3, 7, 4}, 9, 0);
    cg_conv_opts o = cg_conv_defaults();
    o.stride[0] = o.stride[1] = 2;
    o.output_padding[1] = 1; /* [4, 5]: the blocks of x, one zero column on the right */
    assert_values(cg_conv_transpose2d(ctx, x, w, NULL, &o),
                  (double[]){1, 1, 2, 2, 0, 1, 1, 2, 2, 0, 3, 3, 4, 4, 0, 3, 3, 4, 4, 0}, 20,
                  0);
}

static void test_conv_conv1d_by_hand(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(1, 1, 4), (double[]){1, 2, 4, 8});
    cg_tensor *w = cg_from_array(ctx, CG_F64, CG_SHAPE(1, 1, 2), (double[]){1, -1});
    assert_values(cg_conv1d(ctx, x, w, NULL, NULL), (double[]){-1, -2, -4}, 3, 0);
    cg_conv_opts o = cg_conv_defaults();
    o.same = true; /* total 1: none on the left, one on the right */
    cg_tensor *y = cg_conv1d(ctx, x, w, NULL, &o);
    assert_int_equal(cg_shape(y)[2], 4);
    assert_values(y, (double[]){-1, -2, -4, 8}, 4, 0);
    /* unbatched [C, L] */
    y = cg_conv1d(ctx, cg_reshape(ctx, x, 2, (int64_t[]){1, 4}), w, NULL, NULL);
    assert_int_equal(cg_ndim(y), 2);
    assert_values(y, (double[]){-1, -2, -4}, 3, 0);
}

/* "same" with an even kernel pads the odd extra on the end (bottom, right). */
static void test_conv_same_pads_extra_at_end(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_from_array(ctx, CG_F64, CG_SHAPE(1, 1, 2, 2), (double[]){1, 2, 3, 4});
    cg_tensor *w = cg_from_array(ctx, CG_F64, CG_SHAPE(1, 1, 2, 2), (double[]){1, 1, 1, 1});
    cg_conv_opts o = cg_conv_defaults();
    o.same = true;
    assert_values(cg_conv2d(ctx, x, w, NULL, &o), (double[]){10, 6, 7, 4}, 4, 0);
}

/* ---- the reference grid ------------------------------------------------------------ */
static void test_conv_conv2d_matches_reference(void **state) {
    over_grid(*state, false, false, 6, 5, ref_check);
}
static void test_conv_conv1d_matches_reference(void **state) {
    over_grid(*state, false, true, 1, 7, ref_check);
}
static void test_conv_transpose2d_matches_reference(void **state) {
    over_grid(*state, true, false, 4, 3, ref_check);
}

/* f32 agrees with the f64 reference to f32 rounding. */
static void test_conv_f32_matches_reference(void **state) {
    cg_ctx *ctx = *state;
    for (int t = 0; t < 2; t++) {
        cfg c = {.n = 2,
                 .cin = 4,
                 .cout = 6,
                 .h = 7,
                 .w = 6,
                 .kh = 3,
                 .kw = 3,
                 .bias = true,
                 .transposed = t,
                 .f32 = true};
        c.o = cg_conv_defaults();
        c.o.stride[0] = c.o.stride[1] = 2, c.o.padding[0] = 1, c.o.groups = 2;
        cg_tensor *in[3];
        make_inputs(&c, 5, in);
        check_against_ref(ctx, &c, in, 1e-5);
        free_inputs(in);
    }
}

/* A batch larger than one tile of scratch (ops/conv.c: 2^18 elements, one
 * 8-channel 48x48 image per tile here): the forward, d x (against the
 * reference transpose) and d w (against its definition, the tiles adding in
 * turn) are still exact. */
static void test_conv_many_tiles(void **state) {
    cg_ctx *ctx = *state;
    cfg c = {.n = 3, .cin = 8, .cout = 4, .h = 48, .w = 40, .kh = 3, .kw = 3};
    c.o = cg_conv_defaults();
    c.o.padding[0] = c.o.padding[1] = 1;
    cg_tensor *in[3];
    make_inputs(&c, 17, in);
    check_against_ref(ctx, &c, in, 1e-12);
    int64_t nx = cg_numel(in[0]), nw = cg_numel(in[1]), ny = c.n * c.cout * c.h * c.w;
    double *x = malloc(sizeof(double) * (size_t)(2 * nx + 2 * nw + ny));
    double *w = x + nx, *g = w + nw, *dx = g + ny, *dw = dx + nx;
    cg_rng rng = seeded(18);
    cg_tensor *gy = cg_randn(ctx, &rng, CG_F64, CG_SHAPE(c.n, c.cout, c.h, c.w), 0, 1);
    assert_int_equal(cg_copy_to_array(in[0], CG_F64, x), CG_OK);
    assert_int_equal(cg_copy_to_array(in[1], CG_F64, w), CG_OK);
    assert_int_equal(cg_copy_to_array(gy, CG_F64, g), CG_OK);
    cg_tensor *y = cg_conv2d(ctx, in[0], in[1], NULL, &c.o);
    assert_int_equal(cg_backward_ex(y, gy, 0), CG_OK);
    /* d x: the transpose of g with w, by the reference */
    cfg t = {.n = c.n,
             .cin = c.cout,
             .cout = c.cin,
             .h = c.h,
             .w = c.w,
             .kh = 3,
             .kw = 3,
             .transposed = true,
             .o = c.o};
    ref_conv(&t, g, w, NULL, dx);
    cg_tensor *want = cg_from_array(ctx, CG_F64, 4, cg_shape(in[0]), dx);
    assert_true(cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, want, cg_grad_of(in[0]))), NULL, 0,
                               false)) < 1e-10);
    /* d w[co][ci][ky][kx] = sum over n, oy, ox of g[n][co][oy][ox] x[n][ci][oy+ky-1][ox+kx-1]
     */
    memset(dw, 0, sizeof(double) * (size_t)nw);
    for (int64_t i = 0; i < nw; i++) {
        int64_t kx = i % 3, ky = i / 3 % 3, ci = i / 9 % c.cin, co = i / 9 / c.cin;
        for (int64_t n = 0; n < c.n; n++)
            for (int64_t oy = 0; oy < c.h; oy++)
                for (int64_t ox = 0; ox < c.w; ox++) {
                    int64_t py = oy + ky - 1, px = ox + kx - 1;
                    if (py < 0 || py >= c.h || px < 0 || px >= c.w) continue;
                    dw[i] += g[((n * c.cout + co) * c.h + oy) * c.w + ox] *
                             x[((n * c.cin + ci) * c.h + py) * c.w + px];
                }
    }
    want = cg_from_array(ctx, CG_F64, 4, cg_shape(in[1]), dw);
    assert_true(cg_item(cg_max(ctx, cg_abs(ctx, cg_sub(ctx, want, cg_grad_of(in[1]))), NULL, 0,
                               false)) < 1e-10);
    free(x);
    free_inputs(in);
}

/* Unit stride with up to DIRECT_MAX_KG taps per output goes to the direct
 * kernels (here 32 x 3 x 3 = 288, six output channels: a block of four and
 * a pair), with more (128 x 3 x 3 = 1152) to im2col and BLIS (ops/conv.c):
 * the wide layers against the reference and gradchecked, both directions. */
static void test_conv_wide_layer_by_gemm(void **state) {
    for (int t = 0; t < 4; t++) {
        bool wide = t < 2; /* small otherwise, so that gradcheck stays quick under valgrind */
        cfg c = {.n = wide ? 1 : 2,
                 .cin = wide ? 128 : 32,
                 .cout = wide ? 2 : 6,
                 .h = wide ? 3 : 4,
                 .w = wide ? 3 : 5,
                 .kh = 3,
                 .kw = 3};
        c.transposed = t % 2, c.bias = true;
        c.o = cg_conv_defaults();
        c.o.padding[0] = c.o.padding[1] = 1;
        cg_tensor *in[3];
        make_inputs(&c, 31, in);
        check_against_ref(*state, &c, in, 1e-12);
        cg_assert_gradcheck(apply_fn, (void *)&c, 3, in);
        free_inputs(in);
    }
}

/* ---- gradients ------------------------------------------------------------------------ */
static void test_conv_conv2d_gradcheck(void **state) {
    over_grid(*state, false, false, 5, 4, grad_check);
}
static void test_conv_conv1d_gradcheck(void **state) {
    over_grid(*state, false, true, 1, 6, grad_check);
}
static void test_conv_transpose2d_gradcheck(void **state) {
    over_grid(*state, true, false, 3, 3, grad_check);
}

/* cg_conv2d_relu over the conv2d grid, first and second order. */
static void relu_grad_check(cg_ctx *ctx, const cfg *c, int index) {
    cfg r = *c;
    r.relu = true;
    grad_check(ctx, &r, index);
}
static void test_conv_relu_gradcheck(void **state) {
    over_grid(*state, false, false, 5, 4, relu_grad_check);
    for (int i = 0; i < 2; i++) {
        cfg c = {.n = 2, .cin = 2, .cout = 4, .h = 4, .w = 4, .kh = 2, .kw = 3};
        c.bias = true, c.relu = true, c.noncontig = i == 1, c.o = cg_conv_defaults();
        if (i == 1) c.o.stride[0] = c.o.stride[1] = 2, c.o.padding[1] = 1, c.o.groups = 2;
        cg_tensor *in[3];
        make_inputs(&c, 320 + (uint64_t)i, in);
        cg_assert_gradgradcheck(apply_fn, &c, 3, in);
        free_inputs(in);
    }
}

/* cg_conv2d_relu and cg_relu(cg_conv2d) give the same bits: the output and
 * the gradients of x, w and b (the mask is the same, r > 0 where y > 0), in
 * f64 over the grid and in f32 (the direct kernels at stride 1, im2col and
 * BLIS at stride 2). */
static void relu_bits_check(cg_ctx *ctx, const cfg *c, int index) {
    cg_tensor *in[3], *g1[3], *g2[3];
    make_inputs(c, 340 + (uint64_t)index, in);
    int n = c->bias ? 3 : 2;
    cg_tensor *y1 = cg_conv2d_relu(ctx, in[0], in[1], in[2], &c->o);
    cg_tensor *y2 = cg_relu(ctx, cg_conv2d(ctx, in[0], in[1], in[2], &c->o));
    assert_string_equal(cg_node_op(cg_grad_fn(y1))->name, "conv2d_relu");
    assert_same_bits(y1, y2);
    cg_rng rng = seeded(360 + (uint64_t)index);
    cg_tensor *seed = cg_randn(ctx, &rng, cg_dtype_of(y1), cg_ndim(y1), cg_shape(y1), 0, 1);
    assert_int_equal(cg_grad(ctx, 1, &y1, (const cg_tensor *const[]){seed}, n, in, g1, 0),
                     CG_OK);
    assert_int_equal(cg_grad(ctx, 1, &y2, (const cg_tensor *const[]){seed}, n, in, g2, 0),
                     CG_OK);
    for (int i = 0; i < n; i++) assert_same_bits(g1[i], g2[i]);
    free_inputs(in);
    cg_ctx_reset(ctx);
}
static void relu_bits_check_f32(cg_ctx *ctx, const cfg *c, int index) {
    cfg r = *c;
    r.f32 = true;
    relu_bits_check(ctx, &r, index);
}
static void test_conv_relu_same_bits_as_relu_of_conv(void **state) {
    over_grid(*state, false, false, 5, 4, relu_bits_check);
    over_grid(*state, false, false, 9, 8, relu_bits_check_f32);
    cfg c = {.n = 40, .cin = 8, .cout = 16, .h = 14, .w = 14, .kh = 3, .kw = 3, .f32 = true};
    c.bias = true, c.o = cg_conv_defaults();
    c.o.padding[0] = c.o.padding[1] = 1; /* the (f) layer, direct, over several tiles */
    relu_bits_check(*state, &c, 99);
}

/* Second order: the backward rules are convolutions themselves. */
static void test_conv_gradgradcheck(void **state) {
    (void)state;
    for (int i = 0; i < 5; i++) {
        cfg c = {.n = 2,
                 .cin = 2,
                 .cout = 4,
                 .h = 4,
                 .w = 4,
                 .kh = 2,
                 .kw = 3,
                 .bias = true,
                 .noncontig = i == 1};
        c.o = cg_conv_defaults();
        if (i == 1) c.o.stride[0] = c.o.stride[1] = 2, c.o.padding[1] = 1, c.o.groups = 2;
        if (i == 2) c.o.same = true, c.o.dilation[1] = 2;
        if (i == 3) /* conv1d */
            c.one_d = true, c.h = 1, c.kh = 1, c.o.stride[1] = 2, c.o.padding[1] = 1;
        if (i == 4) { /* conv_transpose2d with output_padding */
            c.transposed = true, c.h = c.w = 3;
            c.o.stride[0] = c.o.stride[1] = 2, c.o.output_padding[0] = 1, c.o.padding[1] = 1;
        }
        cg_tensor *in[3];
        make_inputs(&c, 300 + (uint64_t)i, in);
        cg_assert_gradgradcheck(apply_fn, &c, 3, in);
        free_inputs(in);
    }
}

/* An unbatched [C, H, W] input is a batch of one, gradients included. */
static void test_conv_unbatched(void **state) {
    cg_ctx *ctx = *state;
    for (int t = 0; t < 2; t++) {
        cfg c = {.n = 1,
                 .cin = 2,
                 .cout = 2,
                 .h = 3,
                 .w = 4,
                 .kh = 2,
                 .kw = 2,
                 .bias = true,
                 .transposed = t};
        c.o = cg_conv_defaults();
        cg_tensor *in[3];
        make_inputs(&c, 9, in);
        cg_tensor *x3 = cg_reshape(ctx, in[0], 3, cg_shape(in[0]) + 1);
        cg_tensor *y3 = apply(ctx, &c, x3, in[1], in[2]);
        cg_tensor *y4 = apply(ctx, &c, in[0], in[1], in[2]);
        assert_int_equal(cg_ndim(y3), 3);
        assert_same_bits(y3, y4);
        cg_tensor *x = seeded_leaf(4, CG_F64, CG_SHAPE(2, 3, 4), 1);
        cg_tensor *gin[3] = {x, in[1], in[2]};
        cg_assert_gradcheck(apply_fn, &c, 3, gin);
        cg_tensor_free(x);
        free_inputs(in);
        cg_ctx_reset(ctx);
    }
}

/* With ctx NULL the result is a caller-owned tensor; a non-contiguous
 * weight is copied on the heap and freed. */
static void test_conv_heap_result(void **state) {
    (void)state;
    cg_tensor *x = cg_ones(NULL, CG_F32, CG_SHAPE(1, 3, 2, 2));
    cg_tensor *w = cg_ones(NULL, CG_F32, CG_SHAPE(2, 3, 1, 1));
    cg_tensor *wt = cg_transpose(NULL, w, 0, 1); /* [3, 2, 1, 1], not contiguous */
    cg_tensor *y = cg_conv_transpose2d(NULL, x, wt, NULL, NULL);
    assert_values(y, (double[]){3, 3, 3, 3, 3, 3, 3, 3}, 8, 0);
    cg_tensor_free(y);
    y = cg_conv2d(NULL, x, w, NULL, NULL); /* [1, 2, 2, 2] */
    assert_values(y, (double[]){3, 3, 3, 3, 3, 3, 3, 3}, 8, 0);
    cg_tensor_free(y);
    cg_tensor *b = cg_from_array(NULL, CG_F32, CG_SHAPE(2), (float[]){-4, -2});
    y = cg_conv2d_relu(NULL, x, w, b, NULL); /* relu(3 - 4), relu(3 - 2) */
    assert_values(y, (double[]){0, 0, 0, 0, 1, 1, 1, 1}, 8, 0);
    cg_tensor_free(y);
    cg_tensor_free(b);
    cg_tensor_free(wt);
    cg_tensor_free(w);
    cg_tensor_free(x);
}

/* A batch of none gives an empty output and a zero weight gradient, as
 * PyTorch; each op's node carries its own name. */
static void test_conv_empty_batch_and_names(void **state) {
    cg_ctx *ctx = *state;
    cg_tensor *x = cg_zeros(ctx, CG_F64, CG_SHAPE(0, 2, 5, 5));
    cg_tensor *w = seeded_leaf(3, CG_F64, CG_SHAPE(4, 2, 3, 3), 1);
    cg_tensor *y = cg_conv2d(ctx, x, w, NULL, NULL);
    assert_int_equal(cg_numel(y), 0);
    assert_int_equal(cg_shape(y)[1], 4);
    assert_string_equal(cg_node_op(cg_grad_fn(y))->name, "conv2d");
    assert_int_equal(cg_backward(cg_sum(ctx, y, NULL, 0, false)), CG_OK);
    assert_int_equal(cg_numel(cg_grad_of(w)), 72);
    assert_true(cg_item(cg_max(ctx, cg_abs(ctx, cg_grad_of(w)), NULL, 0, false)) == 0);
    cg_tensor *w1 = cg_reshape(ctx, w, 3, (int64_t[]){4, 2, 9});
    y = cg_conv1d(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(1, 2, 9)), w1, NULL, NULL);
    assert_string_equal(cg_node_op(cg_grad_fn(y))->name, "conv1d");
    y = cg_conv_transpose2d(ctx, cg_ones(ctx, CG_F64, CG_SHAPE(1, 4, 2, 2)), w, NULL, NULL);
    assert_string_equal(cg_node_op(cg_grad_fn(y))->name, "conv_transpose2d");
    /* a graph needs a context: the message names the function called */
    assert_null(cg_conv1d(NULL, cg_ones(ctx, CG_F64, CG_SHAPE(1, 2, 9)), w1, NULL, NULL));
    assert_error(CG_ERR_STATE, "cg_conv1d: an input requires a gradient");
    cg_tensor_free(w);
}

/* ---- errors ------------------------------------------------------------------------ */
/* op(x, w, b, o) fails with st and a message containing want, in ctx and on
 * the heap (ctx NULL: nothing leaks). */
static void expect_error(cg_ctx *ctx, int op, const int64_t *xs, int nx, const int64_t *ws,
                         int nw, cg_dtype wdt, int64_t nb, const cg_conv_opts *o, cg_status st,
                         const char *want) {
    for (int heap = 0; heap < 2; heap++) {
        cg_ctx *c = heap ? NULL : ctx;
        cg_tensor *x = cg_zeros(c, CG_F32, nx, xs), *w = cg_zeros(c, wdt, nw, ws);
        cg_tensor *b = nb ? cg_zeros(c, CG_F32, 1, &nb) : NULL;
        cg_tensor *y = op == 1   ? cg_conv1d(c, x, w, b, o)
                       : op == 2 ? cg_conv2d(c, x, w, b, o)
                       : op == 4 ? cg_conv2d_relu(c, x, w, b, o)
                                 : cg_conv_transpose2d(c, x, w, b, o);
        assert_null(y);
        assert_error(st, want);
        if (heap) cg_tensor_free(x), cg_tensor_free(w), cg_tensor_free(b);
    }
}

static void test_conv_errors(void **state) {
    cg_ctx *ctx = *state;
    cg_conv_opts o = cg_conv_defaults();
    const int64_t x8[] = {8, 3, 28, 28}, w16[] = {16, 3, 3, 3};
    expect_error(ctx, 2, x8, 4, (int64_t[]){16, 4, 3, 3}, 4, CG_F32, 0, NULL, CG_ERR_SHAPE,
                 "cg_conv2d: input [8,3,28,28] has 3 channels, weight [16,4,3,3] expects 4 x "
                 "groups 1");
    expect_error(ctx, 2, (int64_t[]){28, 28}, 2, w16, 4, CG_F32, 0, NULL, CG_ERR_SHAPE,
                 "cg_conv2d: input [28,28], weight [16,3,3,3]: need input [N, C, H, W]");
    expect_error(ctx, 4, x8, 4, (int64_t[]){16, 4, 3, 3}, 4, CG_F32, 0, NULL, CG_ERR_SHAPE,
                 "cg_conv2d_relu: input [8,3,28,28] has 3 channels, weight [16,4,3,3] expects "
                 "4 x groups 1");
    assert_null(cg_conv2d_relu(ctx, NULL, NULL, NULL, NULL));
    assert_error(CG_ERR_ARG, "cg_conv2d_relu");
    expect_error(ctx, 2, x8, 4, (int64_t[]){16, 3, 3}, 3, CG_F32, 0, NULL, CG_ERR_SHAPE,
                 "weight [C_out, C_in / groups, KH, KW]");
    expect_error(ctx, 1, x8, 4, (int64_t[]){16, 3, 3}, 3, CG_F32, 0, NULL, CG_ERR_SHAPE,
                 "cg_conv1d: input [8,3,28,28], weight [16,3,3]: need input [N, C, L]");
    o.groups = 2;
    expect_error(ctx, 2, (int64_t[]){1, 4, 5, 5}, 4, (int64_t[]){3, 2, 3, 3}, 4, CG_F32, 0, &o,
                 CG_ERR_SHAPE, "cg_conv2d: groups 2 does not divide the 3 output channels");
    expect_error(ctx, 3, (int64_t[]){1, 3, 5, 5}, 4, (int64_t[]){3, 2, 3, 3}, 4, CG_F32, 0, &o,
                 CG_ERR_SHAPE,
                 "cg_conv_transpose2d: groups 2 does not divide the 3 input channels");
    expect_error(ctx, 3, (int64_t[]){1, 4, 5, 5}, 4, (int64_t[]){3, 2, 3, 3}, 4, CG_F32, 0, &o,
                 CG_ERR_SHAPE,
                 "cg_conv_transpose2d: input [1,4,5,5] has 4 channels, weight [3,2,3,3] "
                 "expects 3");
    o = cg_conv_defaults();
    expect_error(ctx, 2, (int64_t[]){1, 1, 3, 3}, 4, (int64_t[]){1, 1, 5, 5}, 4, CG_F32, 0, &o,
                 CG_ERR_SHAPE,
                 "cg_conv2d: kernel 5x5 (dilated) is larger than the padded "
                 "input 3x3 (input [1,1,3,3], weight [1,1,5,5])");
    o.dilation[1] = 3; /* 3x3 kernel dilated to 3x7 */
    expect_error(ctx, 2, (int64_t[]){1, 1, 6, 6}, 4, (int64_t[]){1, 1, 3, 3}, 4, CG_F32, 0, &o,
                 CG_ERR_SHAPE, "kernel 3x7 (dilated) is larger than the padded input 6x6");
    o = cg_conv_defaults();
    o.padding[0] = 1;
    expect_error(ctx, 3, (int64_t[]){1, 1, 1, 1}, 4, (int64_t[]){1, 1, 1, 1}, 4, CG_F32, 0, &o,
                 CG_ERR_SHAPE, "cg_conv_transpose2d: output size -1x1 is not positive");
    o = cg_conv_defaults();
    o.stride[0] = 0;
    expect_error(ctx, 2, x8, 4, w16, 4, CG_F32, 0, &o, CG_ERR_ARG,
                 "cg_conv2d: stride 0x1 must be >= 1");
    expect_error(ctx, 1, (int64_t[]){1, 3, 9}, 3, (int64_t[]){2, 3, 3}, 3, CG_F32, 0, &o,
                 CG_ERR_ARG, "cg_conv1d: stride 0 must be >= 1");
    o = cg_conv_defaults();
    o.stride[0] = INT64_MAX; /* would overflow the output size arithmetic */
    expect_error(ctx, 2, x8, 4, w16, 4, CG_F32, 0, &o, CG_ERR_ARG,
                 "cg_conv2d: stride 9223372036854775807x1 must be >= 1 and at most 2^30");
    o = cg_conv_defaults();
    o.padding[1] = INT64_MAX / 2;
    expect_error(ctx, 2, x8, 4, w16, 4, CG_F32, 0, &o, CG_ERR_ARG, "and at most 2^30");
    o = cg_conv_defaults();
    o.dilation[1] = -1;
    expect_error(ctx, 2, x8, 4, w16, 4, CG_F32, 0, &o, CG_ERR_ARG,
                 "cg_conv2d: dilation 1x-1 must be >= 1");
    o = cg_conv_defaults();
    o.padding[0] = -1;
    expect_error(ctx, 2, x8, 4, w16, 4, CG_F32, 0, &o, CG_ERR_ARG,
                 "cg_conv2d: padding -1x0 must be >= 0");
    o = cg_conv_defaults();
    o.groups = 0;
    expect_error(ctx, 2, x8, 4, w16, 4, CG_F32, 0, &o, CG_ERR_ARG,
                 "cg_conv2d: groups 0 must be >= 1");
    o = cg_conv_defaults();
    o.same = true, o.stride[0] = o.stride[1] = 2;
    expect_error(ctx, 2, x8, 4, w16, 4, CG_F32, 0, &o, CG_ERR_ARG,
                 "cg_conv2d: padding \"same\" needs stride 1, got 2x2");
    o.stride[0] = o.stride[1] = 1;
    expect_error(ctx, 3, x8, 4, (int64_t[]){3, 1, 3, 3}, 4, CG_F32, 0, &o, CG_ERR_ARG,
                 "cg_conv_transpose2d: padding \"same\" is for conv1d and conv2d only");
    o = cg_conv_defaults();
    o.stride[0] = 2, o.output_padding[0] = 2;
    expect_error(ctx, 3, x8, 4, (int64_t[]){3, 1, 3, 3}, 4, CG_F32, 0, &o, CG_ERR_ARG,
                 "cg_conv_transpose2d: output_padding 2x0 must be smaller than the stride 2x1 "
                 "or the dilation 1x1");
    o.output_padding[0] = -1;
    expect_error(ctx, 3, x8, 4, (int64_t[]){3, 1, 3, 3}, 4, CG_F32, 0, &o, CG_ERR_ARG,
                 "cg_conv_transpose2d: output_padding -1x0 must be >= 0");
    expect_error(ctx, 2, x8, 4, w16, 4, CG_F32, 5, NULL, CG_ERR_SHAPE,
                 "cg_conv2d: bias [5] for weight [16,3,3,3]: need [16]");
    expect_error(ctx, 3, x8, 4, (int64_t[]){3, 2, 3, 3}, 4, CG_F32, 5, NULL, CG_ERR_SHAPE,
                 "cg_conv_transpose2d: bias [5] for weight [3,2,3,3]: need [2]");
    expect_error(ctx, 2, x8, 4, w16, 4, CG_F64, 0, NULL, CG_ERR_DTYPE,
                 "cg_conv2d: input f32, weight f64, bias none: need one float dtype");
    expect_error(ctx, 2, x8, 4, w16, 4, CG_I64, 16, NULL, CG_ERR_DTYPE,
                 "cg_conv2d: input f32, weight i64, bias f32");
    cg_clear_error();
    assert_null(cg_conv2d(ctx, NULL, cg_zeros(ctx, CG_F32, 4, w16), NULL, NULL));
    assert_error(CG_ERR_ARG, "cg_conv2d: tensor is NULL");
}

/* ---- threads ------------------------------------------------------------------------ */
/* y, dx and dw of a conv2d and of a conv_transpose2d, f32, with n threads,
 * copied to out (caller frees). */
/* variant 0: conv2d, 1: conv_transpose2d (both by the direct kernels), 2:
 * conv2d with 32 x 3 x 3 taps per output (im2col and BLIS). */
static float *run_threads(cg_ctx *ctx, int n, int variant, int64_t *count) {
    bool transposed = variant == 1;
    int64_t cin = variant == 2 ? 32 : 8;
    cg_set_num_threads(n);
    cg_tensor *x = seeded_leaf(1, CG_F32, CG_SHAPE(16, cin, 24, 24), 1);
    cg_tensor *w = seeded_leaf(2, CG_F32, CG_SHAPE(8, cin, 3, 3), 1);
    cg_conv_opts o = cg_conv_defaults();
    o.padding[0] = o.padding[1] = 1;
    cg_tensor *y =
        transposed ? cg_conv_transpose2d(ctx, x, w, NULL, &o) : cg_conv2d(ctx, x, w, NULL, &o);
    if (cg_backward(cg_sum(ctx, cg_square(ctx, y), NULL, 0, false)))
        fail_msg("%s", cg_last_error());
    int64_t ny = cg_numel(y), nx = cg_numel(x), nw = cg_numel(w);
    *count = ny + nx + nw;
    float *out = malloc(sizeof(float) * (size_t)*count);
    assert_int_equal(cg_copy_to_array(y, CG_F32, out), CG_OK);
    assert_int_equal(cg_copy_to_array(cg_grad_of(x), CG_F32, out + ny), CG_OK);
    assert_int_equal(cg_copy_to_array(cg_grad_of(w), CG_F32, out + ny + nx), CG_OK);
    cg_tensor_free(x);
    cg_tensor_free(w);
    cg_ctx_reset(ctx);
    return out;
}

static void test_conv_threads_bitwise(void **state) {
    int before = cg_get_num_threads();
    for (int t = 0; t < 3; t++) {
        int64_t n1, n2;
        float *one = run_threads(*state, 1, t, &n1), *two = run_threads(*state, 2, t, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(one, two, sizeof(float) * (size_t)n1);
        free(one);
        free(two);
    }
    cg_set_num_threads(before);
}

#define T(name) cmocka_unit_test_setup_teardown(name, ctx_setup, ctx_teardown)
int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_conv_by_hand),
        T(test_conv_transpose_by_hand),
        T(test_conv_conv1d_by_hand),
        T(test_conv_same_pads_extra_at_end),
        T(test_conv_conv2d_matches_reference),
        T(test_conv_conv1d_matches_reference),
        T(test_conv_transpose2d_matches_reference),
        T(test_conv_f32_matches_reference),
        T(test_conv_many_tiles),
        T(test_conv_conv2d_gradcheck),
        T(test_conv_conv1d_gradcheck),
        T(test_conv_transpose2d_gradcheck),
        T(test_conv_gradgradcheck),
        T(test_conv_relu_gradcheck),
        T(test_conv_relu_same_bits_as_relu_of_conv),
        T(test_conv_unbatched),
        T(test_conv_heap_result),
        T(test_conv_empty_batch_and_names),
        T(test_conv_errors),
        T(test_conv_threads_bitwise),
        T(test_conv_wide_layer_by_gemm),
    };
    return cmocka_run_group_tests_name("conv", tests, NULL, NULL);
}
