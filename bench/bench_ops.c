/* Forward and forward+backward time of every differentiable op in ops/ops.h
 * and of the nn losses, at one representative size each: f32 [256, 1024] for
 * elementwise ops, reductions, softmax and the elementwise losses;
 * [256,512] x [512,512] for matmul and linear; 256 indices into [10000, 128]
 * for the index ops; 4 x [256,256] for concat and stack; [256, 10] for the
 * class losses. Inputs are caller-owned leaves that require a gradient, so
 * the forward records the graph as in training. The backward is
 * cg_backward_ex with a ones gradient of the output's shape (made once), and
 * includes accumulating into the leaves' .grad. Each sample runs the case
 * enough times to last about a millisecond (one context reset per run);
 * reported: the median over --reps samples, in microseconds per run.
 * Usage: bench_ops [--json] [--threads N] [--reps N] [--quick] [--help]
 * (--quick: a subset of the cases, shorter samples; for smoke tests). */
#include "bench_common.h"

#define ROWS           256
#define COLS           1024
#define MAX_LEAVES     32
#define SAMPLE_S       1e-3 /* target length of one sample */
#define QUICK_SAMPLE_S 2e-4
#define MAX_INNER      100000

/* Every input the cases use, made once. */
typedef struct pool {
    cg_tensor *x, *y, *pos, *tgt, *cond, *row, *x3; /* [256,1024]-sized */
    cg_tensor *mm_a, *mm_b, *lin_x, *lin_w, *lin_b; /* matmul, linear */
    cg_tensor *table, *idx, *gidx, *parts[4];       /* indexing, joining */
    cg_tensor *logits, *labels, *probs, *p01, *t01; /* losses */
    cg_rng rng;                                     /* dropout's */
    cg_tensor *all[MAX_LEAVES];                     /* for zero_grad and free */
    int n;
} pool;

typedef cg_tensor *(*build_fn)(cg_ctx *c, pool *p);

typedef struct bcase {
    const char *name;
    const char *size;
    build_fn fn;
    int quick; /* in the --quick subset */
} bcase;

typedef struct timing {
    double med, min, max;
} timing;

static const int LAST[] = {-1};

/* ---- the cases: OP(name, expression in c (the context) and p (the pool)) --- */
#define OP(nm, expr)                                                                           \
    static cg_tensor *op_##nm(cg_ctx *c, pool *p) { return (expr); }

OP(view, cg_view(c, p->x, CG_SHAPE(COLS, ROWS)))
OP(reshape, cg_reshape(c, cg_transpose(c, p->x, 0, 1), CG_SHAPE(-1)))
OP(transpose, cg_transpose(c, p->x, 0, 1))
OP(permute, cg_permute(c, p->x3, (const int[]){2, 0, 1}))
OP(slice, cg_slice(c, p->x, 1, 0, CG_END, 2))
OP(narrow, cg_narrow(c, p->x, 1, 256, 512))
OP(select, cg_select(c, p->x, 0, 7))
OP(expand, cg_expand(c, p->row, CG_SHAPE(ROWS, COLS)))
OP(squeeze, cg_squeeze(c, p->row, 0))
OP(unsqueeze, cg_unsqueeze(c, p->x, 1))
OP(flatten, cg_flatten(c, p->x3, 0, -1))
OP(contiguous, cg_contiguous(c, cg_transpose(c, p->x, 0, 1)))
OP(clone, cg_clone(c, p->x))
OP(cast, cg_cast(c, p->x, CG_F64))
OP(add, cg_add(c, p->x, p->y))
OP(add_bcast, cg_add(c, p->x, p->row))
OP(sub, cg_sub(c, p->x, p->y))
OP(mul, cg_mul(c, p->x, p->y))
OP(div, cg_div(c, p->x, p->pos))
OP(pow, cg_pow(c, p->pos, p->y))
OP(maximum, cg_maximum(c, p->x, p->y))
OP(minimum, cg_minimum(c, p->x, p->y))
OP(add_scalar, cg_add_scalar(c, p->x, 0.5))
OP(sub_scalar, cg_sub_scalar(c, p->x, 0.5))
OP(rsub_scalar, cg_rsub_scalar(c, p->x, 0.5))
OP(mul_scalar, cg_mul_scalar(c, p->x, 0.5))
OP(div_scalar, cg_div_scalar(c, p->x, 0.5))
OP(pow_scalar, cg_pow_scalar(c, p->pos, 1.5))
OP(neg, cg_neg(c, p->x))
OP(abs, cg_abs(c, p->x))
OP(sign, cg_sign(c, p->x))
OP(clamp, cg_clamp(c, p->x, -0.5, 0.5))
OP(where, cg_where(c, p->cond, p->x, p->y))
OP(exp, cg_exp(c, p->x))
OP(log, cg_log(c, p->pos))
OP(log1p, cg_log1p(c, p->pos))
OP(sqrt, cg_sqrt(c, p->pos))
OP(rsqrt, cg_rsqrt(c, p->pos))
OP(square, cg_square(c, p->x))
OP(sin, cg_sin(c, p->x))
OP(cos, cg_cos(c, p->x))
OP(tanh, cg_tanh(c, p->x))
OP(sigmoid, cg_sigmoid(c, p->x))
OP(erf, cg_erf(c, p->x))
OP(relu, cg_relu(c, p->x))
OP(leaky_relu, cg_leaky_relu(c, p->x, 0.01))
OP(elu, cg_elu(c, p->x, 1.0))
OP(gelu, cg_gelu(c, p->x))
OP(gelu_tanh, cg_gelu_tanh(c, p->x))
OP(silu, cg_silu(c, p->x))
OP(softplus, cg_softplus(c, p->x, 1.0, 20.0))
OP(hardtanh, cg_hardtanh(c, p->x, -1.0, 1.0))
OP(sum_all, cg_sum(c, p->x, NULL, 0, false))
OP(sum, cg_sum(c, p->x, LAST, 1, false))
OP(mean, cg_mean(c, p->x, LAST, 1, false))
OP(max, cg_max(c, p->x, LAST, 1, false))
OP(min, cg_min(c, p->x, LAST, 1, false))
OP(var, cg_var(c, p->x, LAST, 1, 1.0, false))
OP(std, cg_std(c, p->x, LAST, 1, 1.0, false))
OP(logsumexp, cg_logsumexp(c, p->x, LAST, 1, false))
OP(norm, cg_norm(c, p->x, 2.0, LAST, 1, false))
OP(softmax, cg_softmax(c, p->x, -1))
OP(log_softmax, cg_log_softmax(c, p->x, -1))
OP(dropout, cg_dropout(c, p->x, 0.5, true, &p->rng))
OP(concat, cg_concat(c, 4, (const cg_tensor *const *)p->parts, 1))
OP(stack, cg_stack(c, 4, (const cg_tensor *const *)p->parts, 0))
OP(index_select, cg_index_select(c, p->table, 0, p->idx))
OP(gather, cg_gather(c, p->table, 0, p->gidx))
OP(embedding, cg_embedding(c, p->table, p->idx))
OP(matmul, cg_matmul(c, p->mm_a, p->mm_b))
OP(linear, cg_linear(c, p->lin_x, p->lin_w, p->lin_b))
OP(mse_loss, cg_mse_loss(c, p->x, p->tgt, CG_MEAN))
OP(l1_loss, cg_l1_loss(c, p->x, p->tgt, CG_MEAN))
OP(smooth_l1_loss, cg_smooth_l1_loss(c, p->x, p->tgt, 1.0, CG_MEAN))
OP(huber_loss, cg_huber_loss(c, p->x, p->tgt, 1.0, CG_MEAN))
OP(cross_entropy, cg_cross_entropy(c, p->logits, p->labels, CG_MEAN))
OP(cross_entropy_ls, cg_cross_entropy_ex(c, p->logits, p->labels, CG_MEAN, 0.1, -100))
OP(cross_entropy_probs, cg_cross_entropy_probs(c, p->logits, p->probs, CG_MEAN))
OP(nll_loss, cg_nll_loss(c, p->logits, p->labels, CG_MEAN))
OP(bce_loss, cg_bce_loss(c, p->p01, p->t01, CG_MEAN))
OP(bce_with_logits, cg_bce_with_logits(c, p->x, p->t01, CG_MEAN))

#define X "[256,1024]"
static const bcase CASES[] = {
    {"view", X " -> [1024,256]", op_view, 0},
    {"reshape (copying)", X "^T -> [-1]", op_reshape, 0},
    {"transpose", X, op_transpose, 0},
    {"permute", "[16,128,128] (2,0,1)", op_permute, 0},
    {"slice", X "[:, ::2]", op_slice, 0},
    {"narrow", X " dim 1, 512", op_narrow, 0},
    {"select", X "[7]", op_select, 0},
    {"expand", "[1,1024] -> " X, op_expand, 0},
    {"squeeze", "[1,1024]", op_squeeze, 0},
    {"unsqueeze", X " dim 1", op_unsqueeze, 0},
    {"flatten", "[16,128,128]", op_flatten, 0},
    {"contiguous", X "^T", op_contiguous, 1},
    {"clone", X, op_clone, 0},
    {"cast", X " f32 -> f64", op_cast, 0},
    {"add", X " + " X, op_add, 1},
    {"add (broadcast)", X " + [1,1024]", op_add_bcast, 1},
    {"sub", X " - " X, op_sub, 0},
    {"mul", X " * " X, op_mul, 1},
    {"div", X " / " X, op_div, 0},
    {"pow", X " ^ " X, op_pow, 0},
    {"maximum", X ", " X, op_maximum, 0},
    {"minimum", X ", " X, op_minimum, 0},
    {"add_scalar", X, op_add_scalar, 0},
    {"sub_scalar", X, op_sub_scalar, 0},
    {"rsub_scalar", X, op_rsub_scalar, 0},
    {"mul_scalar", X, op_mul_scalar, 0},
    {"div_scalar", X, op_div_scalar, 0},
    {"pow_scalar", X " ^ 1.5", op_pow_scalar, 0},
    {"neg", X, op_neg, 0},
    {"abs", X, op_abs, 0},
    {"sign", X, op_sign, 0},
    {"clamp", X, op_clamp, 0},
    {"where", X " x3", op_where, 0},
    {"exp", X, op_exp, 1},
    {"log", X, op_log, 0},
    {"log1p", X, op_log1p, 0},
    {"sqrt", X, op_sqrt, 0},
    {"rsqrt", X, op_rsqrt, 0},
    {"square", X, op_square, 0},
    {"sin", X, op_sin, 0},
    {"cos", X, op_cos, 0},
    {"tanh", X, op_tanh, 1},
    {"sigmoid", X, op_sigmoid, 0},
    {"erf", X, op_erf, 0},
    {"relu", X, op_relu, 1},
    {"leaky_relu", X, op_leaky_relu, 0},
    {"elu", X, op_elu, 0},
    {"gelu", X, op_gelu, 1},
    {"gelu_tanh", X, op_gelu_tanh, 0},
    {"silu", X, op_silu, 0},
    {"softplus", X, op_softplus, 0},
    {"hardtanh", X, op_hardtanh, 0},
    {"sum (all)", X " -> []", op_sum_all, 1},
    {"sum", X " dim -1", op_sum, 0},
    {"mean", X " dim -1", op_mean, 0},
    {"max", X " dim -1", op_max, 0},
    {"min", X " dim -1", op_min, 0},
    {"var", X " dim -1", op_var, 0},
    {"std", X " dim -1", op_std, 0},
    {"logsumexp", X " dim -1", op_logsumexp, 0},
    {"norm", X " p=2 dim -1", op_norm, 0},
    {"softmax", X " dim -1", op_softmax, 1},
    {"log_softmax", X " dim -1", op_log_softmax, 0},
    {"dropout", X " p=0.5", op_dropout, 0},
    {"concat", "4 x [256,256] dim 1", op_concat, 1},
    {"stack", "4 x [256,256] dim 0", op_stack, 0},
    {"index_select", "[10000,128], 256 idx", op_index_select, 1},
    {"gather", "[10000,128], [256,128] idx", op_gather, 0},
    {"embedding", "[10000,128], 256 idx", op_embedding, 0},
    {"matmul", "[256,512] x [512,512]", op_matmul, 1},
    {"linear", "[256,512] x [512,512]^T + b", op_linear, 1},
    {"mse_loss", X, op_mse_loss, 1},
    {"l1_loss", X, op_l1_loss, 0},
    {"smooth_l1_loss", X, op_smooth_l1_loss, 0},
    {"huber_loss", X, op_huber_loss, 0},
    {"cross_entropy", "[256,10]", op_cross_entropy, 1},
    {"cross_entropy (ls 0.1)", "[256,10]", op_cross_entropy_ls, 0},
    {"cross_entropy_probs", "[256,10]", op_cross_entropy_probs, 0},
    {"nll_loss", "[256,10]", op_nll_loss, 0},
    {"bce_loss", X, op_bce_loss, 0},
    {"bce_with_logits", X, op_bce_with_logits, 0},
};
#undef X
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

/* ---- inputs ------------------------------------------------------------------- */
static void die(const char *what) {
    fprintf(stderr, "bench_ops: %s: %s\n", what, cg_last_error());
    exit(1);
}

/* Keeps t for freeing; marks it as requiring a gradient when grad is set. */
static cg_tensor *keep(pool *p, cg_tensor *t, int grad) {
    if (!t || p->n == MAX_LEAVES) die("making the inputs");
    if (grad && cg_set_requires_grad(t, true) != CG_OK) die("requires_grad");
    return p->all[p->n++] = t;
}

static cg_tensor *randn(pool *p, int grad, int ndim, const int64_t *shape) {
    return keep(p, cg_randn(NULL, &p->rng, CG_F32, ndim, shape, 0.0, 1.0), grad);
}

/* i64 indices in [0, hi). */
static cg_tensor *randint(pool *p, int64_t hi, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    int64_t *v = malloc(sizeof *v * (size_t)n);
    if (!v) die("malloc");
    for (int64_t i = 0; i < n; i++) v[i] = (int64_t)(cg_rng_u64(&p->rng) % (uint64_t)hi);
    cg_tensor *t = cg_from_array(NULL, CG_I64, ndim, shape, v);
    free(v);
    return keep(p, t, 0);
}

static void pool_elementwise(pool *p) {
    p->x = randn(p, 1, CG_SHAPE(ROWS, COLS));
    p->y = randn(p, 1, CG_SHAPE(ROWS, COLS));
    p->pos = keep(p, cg_rand(NULL, &p->rng, CG_F32, CG_SHAPE(ROWS, COLS), 0.5, 2.0), 1);
    p->tgt = randn(p, 0, CG_SHAPE(ROWS, COLS));
    p->cond = keep(p, cg_bernoulli(NULL, &p->rng, CG_F32, CG_SHAPE(ROWS, COLS), 0.5), 0);
    p->row = randn(p, 1, CG_SHAPE(1, COLS));
    p->x3 = randn(p, 1, CG_SHAPE(16, 128, 128));
}

static void pool_matrix(pool *p) {
    p->mm_a = randn(p, 1, CG_SHAPE(256, 512));
    p->mm_b = randn(p, 1, CG_SHAPE(512, 512));
    p->lin_x = randn(p, 1, CG_SHAPE(256, 512));
    p->lin_w = randn(p, 1, CG_SHAPE(512, 512));
    p->lin_b = randn(p, 1, CG_SHAPE(512));
    p->table = randn(p, 1, CG_SHAPE(10000, 128));
    p->idx = randint(p, 10000, CG_SHAPE(256));
    p->gidx = randint(p, 10000, CG_SHAPE(256, 128));
    for (int i = 0; i < 4; i++) p->parts[i] = randn(p, 1, CG_SHAPE(256, 256));
}

static void pool_losses(pool *p) {
    p->logits = randn(p, 1, CG_SHAPE(ROWS, 10));
    p->labels = randint(p, 10, CG_SHAPE(ROWS));
    cg_tensor *r = cg_randn(NULL, &p->rng, CG_F32, CG_SHAPE(ROWS, 10), 0.0, 1.0);
    p->probs = keep(p, cg_softmax(NULL, r, -1), 0);
    cg_tensor_free(r);
    p->p01 = keep(p, cg_rand(NULL, &p->rng, CG_F32, CG_SHAPE(ROWS, COLS), 0.01, 0.99), 1);
    p->t01 = keep(p, cg_bernoulli(NULL, &p->rng, CG_F32, CG_SHAPE(ROWS, COLS), 0.5), 0);
}

static void pool_init(pool *p) {
    memset(p, 0, sizeof *p);
    cg_rng_seed(&p->rng, 1234);
    pool_elementwise(p);
    pool_matrix(p);
    pool_losses(p);
}

static void pool_zero_grad(pool *p) {
    for (int i = 0; i < p->n; i++) cg_zero_grad(p->all[i]);
}

static void pool_free(pool *p) {
    for (int i = 0; i < p->n; i++) cg_tensor_free(p->all[i]);
}

/* ---- timing ---------------------------------------------------------------------- */
/* One run: the forward, then (gout given) the backward; the graph is dropped. */
static void run(cg_ctx *ctx, pool *p, const bcase *bc, const cg_tensor *gout) {
    cg_tensor *out = bc->fn(ctx, p);
    if (!out) die(bc->name);
    if (gout && cg_backward_ex(out, gout, 0) != CG_OK) die(bc->name);
    cg_ctx_reset(ctx);
}

/* Seconds per run, averaged over inner runs. */
static double sample(cg_ctx *ctx, pool *p, const bcase *bc, const cg_tensor *gout, int inner) {
    double t = bench_now();
    for (int i = 0; i < inner; i++) run(ctx, p, bc, gout);
    return (bench_now() - t) / inner;
}

static timing measure(cg_ctx *ctx, pool *p, const bcase *bc, const cg_tensor *gout,
                      double target_s, double *v, int reps) {
    pool_zero_grad(p);
    sample(ctx, p, bc, gout, 1); /* warm-up: grows the arena, allocates the grads */
    double once = sample(ctx, p, bc, gout, 1);
    double runs = once > 0 ? target_s / once : MAX_INNER;
    int inner = runs < 1 ? 1 : runs > MAX_INNER ? MAX_INNER : (int)runs;
    for (int r = 0; r < reps; r++) {
        pool_zero_grad(p);
        v[r] = sample(ctx, p, bc, gout, inner) * 1e6;
    }
    double med = bench_median(v, reps);
    return (timing){med, v[0], v[reps - 1]};
}

/* A ones gradient of the case's output shape, NULL when the output is not in
 * the graph (then only the forward is timed). */
static cg_tensor *ones_gradient(cg_ctx *ctx, pool *p, const bcase *bc) {
    cg_tensor *out = bc->fn(ctx, p);
    if (!out) die(bc->name);
    cg_tensor *g = cg_requires_grad(out) ? cg_ones_like(NULL, out) : NULL;
    cg_ctx_reset(ctx);
    return g;
}

/* ---- output ------------------------------------------------------------------------ */
static void print_header(int json) {
    if (json) return;
    printf("%-22s %-30s %11s %11s   %s\n", "op", "size (f32)", "forward", "fwd+bwd",
           "fwd+bwd min .. max");
}

static void print_case(const bcase *bc, timing f, timing fb, int has_bwd, int json) {
    if (json) {
        printf("{\"bench\":\"ops\",\"op\":\"%s\",\"size\":\"%s\",\"fwd_us\":%.3f,"
               "\"fwd_min_us\":%.3f,\"fwd_max_us\":%.3f,",
               bc->name, bc->size, f.med, f.min, f.max);
        if (has_bwd)
            printf("\"fwd_bwd_us\":%.3f,\"fwd_bwd_min_us\":%.3f,\"fwd_bwd_max_us\":%.3f,",
                   fb.med, fb.min, fb.max);
        printf("\"threads\":%d}\n", cg_get_num_threads());
    } else if (has_bwd) {
        printf("%-22s %-30s %8.2f us %8.2f us   %.2f .. %.2f\n", bc->name, bc->size, f.med,
               fb.med, fb.min, fb.max);
    } else {
        printf("%-22s %-30s %8.2f us %11s\n", bc->name, bc->size, f.med, "-");
    }
    fflush(stdout);
}

static const bench_help HELP = {
    "forward and forward + backward of every differentiable op and loss at one\n"
    "representative size, in microseconds per run",
    "samples of about 1 ms per case",
    "a subset of the cases, samples of about 0.2 ms (a smoke test)",
    NULL,
};

int main(int argc, char **argv) {
    bench_opts o = bench_parse(argc, argv, 31, &HELP);
    int quick = o.quick;
    double target = quick ? QUICK_SAMPLE_S : SAMPLE_S;
    cg_ctx *ctx = cg_ctx_new();
    double *v = malloc(sizeof(double) * (size_t)o.reps);
    if (!ctx || !v) die("out of memory");
    pool p;
    pool_init(&p);
    print_header(o.json);
    for (int i = 0; i < NCASES; i++) {
        const bcase *bc = &CASES[i];
        if (quick && !bc->quick) continue;
        cg_tensor *gout = ones_gradient(ctx, &p, bc);
        timing f = measure(ctx, &p, bc, NULL, target, v, o.reps);
        timing fb = gout ? measure(ctx, &p, bc, gout, target, v, o.reps) : f;
        print_case(bc, f, fb, gout != NULL, o.json);
        cg_tensor_free(gout);
    }
    pool_free(&p);
    free(v);
    cg_ctx_free(ctx);
    return 0;
}
