/* fashion_mlp (784-128-10 relu, Adam 1e-3, global batch 32, 10 epochs) on
 * several processes with data-parallel training (dist/dist.h, Open MPI):
 *
 *   mpirun -np 2 ddp_fashion [--epochs 10] [--batch 32] [--lr 1e-3] [--hidden 128]
 *                            [--seed 42] [--threads 1] [--deterministic] [--shards N]
 *                            [--save FILE] [--data DIR] [--csv FILE] [--svg FILE]
 *
 * The global batch is fixed: each of S shards (--shards, default the number
 * of ranks) takes batch / S samples of it, every rank its own shards of the
 * shuffled epoch (cg_batcher_shard), so one process and N processes see the
 * same batches. With --deterministic the gradients are summed in shard
 * order: `mpirun -np 1 ddp_fashion --deterministic --shards 2` and
 * `mpirun -np 2 ddp_fashion --deterministic --shards 2` end with the same
 * parameter hash (printed last). Rank 0 prints, saves and writes the CSV
 * and chart (under build/ by default). Build: make build/rel/examples/ddp_fashion
 * (needs mpicc); --help lists the flags. */
#include "dist/dist.h"
#include "fashion_common.h"

typedef struct args {
    int epochs, threads, shards;
    int64_t batch, hidden;
    double lr;
    bool deterministic;
    uint64_t seed;
    const char *save, *data, *csv, *svg;
} args;

static const char *const usage_lines[] = {
    "  --epochs N         epochs (10)",
    "  --batch N          the global batch, split over the shards (32)",
    "  --lr X             Adam's learning rate (1e-3)",
    "  --hidden N         hidden width (128)",
    "  --seed N           weights and shuffling (42)",
    "  --threads N        cgrad threads per rank (1)",
    "  --deterministic    sum the gradients in shard order: same bits for any rank count",
    "  --shards N         backward passes per step over all ranks (default: the ranks)",
    "  --save FILE        checkpoint, written by rank 0",
    "  --data DIR         Fashion-MNIST's IDX files (/usr/share/datasets/fashion-mnist)",
    "  --csv FILE         per-epoch log (" OUTPUT_DIR "/ddp_fashion.csv)",
    "  --svg FILE         chart (" OUTPUT_DIR "/ddp_fashion.svg)",
    "  --help             this list",
    NULL};

/* 0, 1 for --help, -1 for a bad command line. */
static int parse_args(int argc, char **argv, args *a) {
    *a = (args){.epochs = 10,
                .threads = 1,
                .batch = 32,
                .hidden = 128,
                .lr = 1e-3,
                .seed = 42,
                .data = "/usr/share/datasets/fashion-mnist",
                .csv = OUTPUT_DIR "/ddp_fashion.csv",
                .svg = OUTPUT_DIR "/ddp_fashion.svg"};
    const example_flag flags[] = {
        flag_int("--epochs", &a->epochs), flag_i64("--batch", &a->batch),
        flag_real("--lr", &a->lr),        flag_i64("--hidden", &a->hidden),
        flag_u64("--seed", &a->seed),     flag_int("--threads", &a->threads),
        flag_int("--shards", &a->shards), flag_str("--save", &a->save),
        flag_str("--data", &a->data),     flag_str("--csv", &a->csv),
        flag_str("--svg", &a->svg),       flag_switch("--deterministic", &a->deterministic)};
    int p = parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]));
    if (p) return p;
    bool ok = a->epochs >= 0 && a->epochs <= 100 && a->batch >= 1 && a->hidden >= 1 &&
              a->shards >= 0 && a->lr > 0;
    return ok ? 0 : -1;
}

/* ---- one rank's part ---------------------------------------------------------------- */
typedef struct rank_state {
    cg_ddp *ddp;
    cg_module *model;
    cg_optim *opt;
    cg_ctx *ctx;
    int nlocal;
    cg_batcher *batches[16]; /* one per local shard */
    cg_rng rngs[16];         /* each the same seed: every shard sees one epoch order */
} rank_state;

/* One step: a forward and backward on each local shard's batch, each ended
 * by cg_ddp_sync (the last one reduces), then the optimizer. Adds the
 * shards' summed loss, hits and sample count to m[0..2]. */
static cg_status train_step(rank_state *r, double m[3]) {
    cg_optim_zero_grad(r->opt);
    cg_status s = CG_OK;
    for (int k = 0; k < r->nlocal; k++) {
        cg_tensor *xb = NULL, *yb = NULL;
        cg_batcher_next(r->batches[k], &xb, &yb);
        cg_tensor *logits = cg_module_forward(r->ctx, r->model, xb);
        cg_tensor *loss = cg_cross_entropy(r->ctx, logits, yb, CG_MEAN);
        cg_status b = s == CG_OK ? cg_backward(loss) : s;
        s = cg_ddp_sync(r->ddp, b);
        if (b == CG_OK) {
            m[0] += cg_item(loss) * (double)cg_dim(xb, 0);
            m[1] += correct(r->ctx, logits, yb);
            m[2] += (double)cg_dim(xb, 0);
        }
        cg_ctx_reset(r->ctx);
    }
    return s == CG_OK ? cg_optim_step(r->opt) : s;
}

/* An epoch; loss and accuracy over every rank's samples into h. */
static int train_epoch_ddp(rank_state *r, history *h) {
    int64_t steps = cg_batcher_nbatches(r->batches[0]);
    double m[3] = {0, 0, 0}, t0 = now();
    cg_module_train(r->model, true);
    for (int64_t i = 0; i < steps; i++)
        if (train_step(r, m) != CG_OK) return -1;
    for (int k = 0; k < r->nlocal; k++) { /* let each batcher see its epoch end */
        cg_tensor *xb;
        if (cg_batcher_next(r->batches[k], &xb, NULL)) return -1;
    }
    if (cg_ddp_all_sum(r->ddp, m, 3) != CG_OK) return -1;
    h->loss[h->n] = m[0] / m[2];
    h->acc[h->n] = m[1] / m[2];
    h->seconds[h->n] = now() - t0;
    return 0;
}

/* The test set split over ranks, the sums shared. */
static int evaluate_ddp(rank_state *r, cg_tensor *const data[4], history *h) {
    int64_t n = cg_dim(data[2], 0), w = cg_ddp_world_size(r->ddp), q = cg_ddp_rank(r->ddp);
    int64_t lo = n * q / w, hi = n * (q + 1) / w;
    cg_tensor *x = cg_narrow(NULL, data[2], 0, lo, hi - lo);
    cg_tensor *y = cg_narrow(NULL, data[3], 0, lo, hi - lo);
    double m[2] = {0, 0};
    int rc = x && y ? evaluate(r->ctx, r->model, x, y, &m[0], &m[1]) : -1;
    m[0] *= (double)(hi - lo), m[1] *= (double)(hi - lo); /* means to sums */
    cg_tensor_free(x), cg_tensor_free(y);
    if (rc || cg_ddp_all_sum(r->ddp, m, 2) != CG_OK) return -1;
    h->val_loss[h->n] = m[0] / (double)n;
    h->val_acc[h->n] = m[1] / (double)n;
    return 0;
}

/* 64-bit FNV-1a of the parameters: equal hashes, equal bits. */
static unsigned long long params_hash(const cg_module *m) {
    const cg_tensor *flat = cg_module_flat_params(m);
    const unsigned char *p = cg_data(flat);
    unsigned long long h = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < cg_numel(flat) * 4; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* ---- setup and the run
 * ------------------------------------------------------------------------ */
static int setup(const args *a, cg_tensor *const data[4], rank_state *r) {
    cg_rng rng;
    cg_rng_seed(&rng, a->seed);
    int64_t sizes[3] = {784, a->hidden, 10};
    r->model = cg_nn_mlp(&rng, CG_F32, 3, sizes, CG_ACT_RELU);
    cg_ddp_opts o = cg_ddp_defaults();
    o.deterministic = a->deterministic;
    o.shards = a->shards;
    r->ddp = r->model ? cg_ddp_new(r->model, MPI_COMM_WORLD, &o) : NULL;
    if (!r->ddp) return -1;
    int shards = cg_ddp_shards(r->ddp);
    r->nlocal = cg_ddp_local_shards(r->ddp);
    if (r->nlocal > 16 || a->batch % shards) {
        fprintf(stderr,
                "ddp_fashion: batch %lld must split into %d shards (at most 16 a rank)\n",
                (long long)a->batch, shards);
        return -1;
    }
    cg_adam_opts ao = cg_adam_defaults(a->lr);
    r->opt = cg_adam_new(r->model, &ao);
    r->ctx = cg_ctx_new();
    for (int k = 0; k < r->nlocal; k++) {
        cg_rng_seed(&r->rngs[k], a->seed + 1);
        r->batches[k] =
            cg_batcher_new(data[0], data[1], a->batch / shards, true, false, &r->rngs[k]);
        int v = cg_ddp_rank(r->ddp) * r->nlocal + k;
        if (!r->batches[k] || cg_batcher_shard(r->batches[k], v, shards) != CG_OK) return -1;
    }
    return r->opt && r->ctx ? 0 : -1;
}

static int run(const args *a, cg_tensor *const data[4], rank_state *r) {
    static history h;
    bool lead = cg_ddp_rank(r->ddp) == 0;
    if (lead)
        printf("%d ranks, %d shards of %lld (global batch %lld)%s\n", cg_ddp_world_size(r->ddp),
               cg_ddp_shards(r->ddp), (long long)(a->batch / cg_ddp_shards(r->ddp)),
               (long long)a->batch, a->deterministic ? ", deterministic" : "");
    for (int e = 0; e < a->epochs; e++, h.n++) {
        if (train_epoch_ddp(r, &h) || evaluate_ddp(r, data, &h)) return -1;
        if (lead)
            printf("Epoch %d/%d - %.1fs - loss: %.4f - acc: %.4f - val_loss: %.4f - val_acc: "
                   "%.4f\n",
                   e + 1, a->epochs, h.seconds[h.n], h.loss[h.n], h.acc[h.n], h.val_loss[h.n],
                   h.val_acc[h.n]);
    }
    if (cg_ddp_check(r->ddp) != CG_OK) return -1;
    if (a->save && cg_ddp_save(r->ddp, a->save, r->opt, NULL, NULL) != CG_OK) return -1;
    if (lead && h.n) {
        printf("test accuracy: %.4f\nparameters hash: %016llx\n", h.val_acc[h.n - 1],
               params_hash(r->model));
        if (write_csv(a->csv, &h) || write_svg(a->svg, &h)) return -1;
    }
    return 0;
}

static void rank_free(rank_state *r) {
    for (int k = 0; k < r->nlocal && k < 16; k++) cg_batcher_free(r->batches[k]);
    cg_ddp_free(r->ddp);
    cg_ctx_free(r->ctx);
    cg_optim_free(r->opt);
    cg_module_free(r->model);
}

/* Rank 0 checks the paths it will write, before the data and the training;
 * every rank learns its verdict. */
static int check_outputs(const args *a) {
    int rank = 0, bad = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0)
        bad = check_output("ddp_fashion", "--csv", a->csv) ||
              check_output("ddp_fashion", "--svg", a->svg) ||
              check_output("ddp_fashion", "--save", a->save);
    MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return bad ? -1 : 0;
}

int main(int argc, char **argv) {
    args a;
    int p = parse_args(argc, argv, &a); /* before MPI: --help needs no mpirun */
    if (p != 0) {
        if (p < 0)
            fprintf(stderr,
                    "ddp_fashion: a flag is unknown, lacks its value or is out of range\n");
        print_usage(p > 0 ? stdout : stderr, argv[0], usage_lines);
        return p > 0 ? 0 : 2;
    }
    if (cg_dist_init(&argc, &argv) != CG_OK) {
        fprintf(stderr, "ddp_fashion: %s\n", cg_last_error());
        return 1;
    }
    cg_set_num_threads(a.threads);
    cg_tensor *data[4] = {NULL, NULL, NULL, NULL};
    const int64_t sample[] = {784};
    int rc = check_outputs(&a), reported = rc; /* check_output printed why */
    if (rc == 0) rc = load_split("ddp_fashion", a.data, "train", 1, sample, &data[0], &data[1]);
    if (rc == 0) rc = load_split("ddp_fashion", a.data, "t10k", 1, sample, &data[2], &data[3]);
    rank_state r = {0};
    if (rc == 0) rc = setup(&a, data, &r);
    if (rc == 0) rc = run(&a, data, &r);
    if (rc && !reported && *cg_last_error())
        fprintf(stderr, "ddp_fashion: %s\n", cg_last_error());
    rank_free(&r);
    for (int i = 0; i < 4; i++) cg_tensor_free(data[i]);
    cg_dist_finalize();
    return rc ? 1 : 0;
}
