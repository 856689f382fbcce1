/* Data-parallel training on MPI (dist.h): buckets over the model's flat
 * gradient, all-reduces started by leaf hooks during backward, and the
 * deterministic gather-and-sum. Only public cgrad calls: this part builds
 * against an installed libcgrad as any user code would. */
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB     ((size_t)1 << 20)
#define MSG_MAX 512
/* Elements per MPI call (its counts are ints). */
#define CHUNK ((int64_t)1 << 30)

static bool initialised_here; /* cg_dist_init called MPI_Init_thread */

/* One parameter: its hook's argument. */
typedef struct param_rec {
    cg_ddp *ddp;
    cg_tensor *p; /* borrowed from the model */
    int bucket;
    bool ready; /* its gradient is final this step */
} param_rec;

/* A run of the flat gradient, reduced by one call. */
typedef struct bucket {
    int64_t off, len; /* elements */
    int nparams;      /* parameters requiring a gradient in it */
    int pending;      /* of those, not final yet this step */
} bucket;

struct cg_ddp {
    cg_module *model;
    MPI_Comm comm; /* our duplicate */
    int rank, world, shards, local_shards;
    cg_ddp_opts opts;
    cg_dtype dtype;
    MPI_Datatype mtype;
    int nparams;
    int64_t numel;
    param_rec *recs;
    bucket *buckets;
    MPI_Request *reqs;
    int nbuckets, next; /* next: buckets started this step, in order */
    int shard;          /* local shards synced this step */
    int no_sync;        /* depth */
    void *aside;        /* deterministic: shards x numel gradients */
    int64_t steps;      /* syncs that reduced, for check_every */
    cg_ddp_stats stats;
};

/* ---- errors ----------------------------------------------------------------- */
/* An MPI return code as a cgrad error naming fn and the MPI call. */
static cg_status mpi_check(int rc, const char *fn, const char *call) {
    if (rc == MPI_SUCCESS) return CG_OK;
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return cg_set_error(CG_ERR_STATE, "%s: %s failed: %s", fn, call, msg);
}

static cg_status mpi_ready(const char *fn) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) return CG_OK;
    return cg_set_error(CG_ERR_STATE, "%s: MPI is %s: call cg_dist_init first", fn,
                        fin ? "already finalised" : "not initialised");
}

static bool usable(const cg_ddp *d, const char *fn) {
    if (!d) cg_set_error(CG_ERR_ARG, "%s: ddp is NULL", fn);
    return d != NULL;
}

/* ---- start-up ---------------------------------------------------------------- */
cg_status cg_dist_init(int *argc, char ***argv) {
    int init = 0, fin = 0, level = 0;
    MPI_Finalized(&fin);
    if (fin) return cg_set_error(CG_ERR_STATE, "cg_dist_init: MPI was already finalised");
    MPI_Initialized(&init);
    if (!init) {
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &level);
        if (rc != MPI_SUCCESS) return mpi_check(rc, "cg_dist_init", "MPI_Init_thread");
        initialised_here = true;
    } else {
        MPI_Query_thread(&level);
    }
    if (level < MPI_THREAD_FUNNELED)
        return cg_set_error(CG_ERR_STATE,
                            "cg_dist_init: MPI gives thread level %d, cgrad needs "
                            "MPI_THREAD_FUNNELED (its OpenMP threads run beside MPI)",
                            level);
    return CG_OK;
}

cg_status cg_dist_finalize(void) {
    if (!initialised_here) return CG_OK;
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin) return CG_OK;
    initialised_here = false;
    return mpi_check(MPI_Finalize(), "cg_dist_finalize", "MPI_Finalize");
}

cg_ddp_opts cg_ddp_defaults(void) {
    return (cg_ddp_opts){.bucket_bytes = 25 * MIB,
                         .first_bucket_bytes = 1 * MIB,
                         .shards = 0,
                         .deterministic = false,
                         .broadcast_buffers = true,
                         .check_every = 100};
}

/* ---- what every rank must agree on ---------------------------------------- */
/* 64-bit FNV-1a over bytes, word at a time where it can. */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        h = (h ^ w) * 0x100000001b3ull;
    }
    for (size_t i = 8 * words; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

#define HASH_SEED 0xcbf29ce484222325ull

/* The model's layout: every state tensor's name, shape and dtype. */
static uint64_t layout_hash(const cg_module *m) {
    uint64_t h = HASH_SEED;
    for (int i = 0; i < cg_module_nstate(m); i++) {
        const char *name = "";
        bool is_param = false;
        const cg_tensor *t = cg_module_state(m, i, &name, &is_param);
        int64_t meta[3] = {cg_ndim(t), cg_dtype_of(t), is_param};
        h = hash_bytes(h, name, strlen(name) + 1);
        h = hash_bytes(h, meta, sizeof meta);
        for (int d = 0; d < cg_ndim(t); d++) {
            int64_t n = cg_dim(t, d);
            h = hash_bytes(h, &n, sizeof n);
        }
    }
    return h;
}

/* The values: parameters (one flat buffer) and buffers. */
static uint64_t values_hash(const cg_ddp *d) {
    const cg_tensor *flat = cg_module_flat_params(d->model);
    uint64_t h =
        hash_bytes(HASH_SEED, cg_data(flat), (size_t)d->numel * cg_dtype_size(d->dtype));
    for (int i = 0; i < cg_module_nstate(d->model); i++) {
        bool is_param = true;
        const cg_tensor *t = cg_module_state(d->model, i, NULL, &is_param);
        if (!is_param)
            h = hash_bytes(h, cg_data(t), (size_t)cg_numel(t) * cg_dtype_size(cg_dtype_of(t)));
    }
    return h;
}

static MPI_Datatype mpi_type(cg_dtype dt) {
    return dt == CG_F32 ? MPI_FLOAT : dt == CG_F64 ? MPI_DOUBLE : MPI_INT64_T;
}

/* Every rank's status for a phase: CG_OK on every rank when all are CG_OK,
 * else on every rank an error naming the lowest failing rank and its
 * message (broadcast from it). Collective. */
static cg_status agree(MPI_Comm comm, int rank, cg_status local, const char *fn,
                       const char *what) {
    char msg[MSG_MAX] = "";
    if (local != CG_OK) snprintf(msg, sizeof msg, "%s", cg_last_error());
    int mine = local == CG_OK ? INT_MAX : rank, first = INT_MAX;
    cg_status s =
        mpi_check(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm), fn, "MPI_Allreduce");
    if (s != CG_OK || first == INT_MAX) return s;
    s = mpi_check(MPI_Bcast(msg, MSG_MAX, MPI_CHAR, first, comm), fn, "MPI_Bcast");
    if (s != CG_OK) return s;
    msg[MSG_MAX - 1] = '\0';
    return cg_set_error(CG_ERR_STATE, "%s: rank %d failed %s: %s", fn, first, what, msg);
}

/* MPI_Bcast of n elements at data from rank 0, in int-sized pieces. */
static cg_status bcast(const cg_ddp *d, void *data, int64_t n, cg_dtype dt, const char *fn) {
    size_t es = cg_dtype_size(dt);
    cg_status s = CG_OK;
    for (int64_t at = 0; s == CG_OK && at < n; at += CHUNK) {
        int count = (int)(n - at < CHUNK ? n - at : CHUNK);
        s = mpi_check(
            MPI_Bcast((char *)data + (size_t)at * es, count, mpi_type(dt), 0, d->comm), fn,
            "MPI_Bcast");
    }
    return s;
}

/* Rank 0's buffers (running statistics, counters) to every rank. */
static cg_status bcast_buffers(const cg_ddp *d, const char *fn) {
    cg_status s = CG_OK;
    for (int i = 0; s == CG_OK && i < cg_module_nstate(d->model); i++) {
        bool is_param = true;
        cg_tensor *t = cg_module_state(d->model, i, NULL, &is_param);
        if (!is_param) s = bcast(d, cg_data(t), cg_numel(t), cg_dtype_of(t), fn);
    }
    return s;
}

/* What this rank can check alone: a root module whose parameters share one
 * float dtype (so one flat gradient buffer), with contiguous buffers. */
static cg_status check_model(cg_module *m, const char *fn) {
    if (!m) return cg_set_error(CG_ERR_ARG, "%s: model is NULL", fn);
    if (cg_module_nparams(m) < 1)
        return cg_set_error(CG_ERR_ARG, "%s: the model has no parameters", fn);
    if (!cg_module_flat_params(m) || !cg_module_flat_grads(m))
        return cg_set_error(CG_ERR_ARG,
                            "%s: the model must be a root module (not held by a container) "
                            "whose parameters share one dtype",
                            fn);
    for (int i = 0; i < cg_module_nstate(m); i++) {
        const char *name = "";
        const cg_tensor *t = cg_module_state(m, i, &name, NULL);
        if (!cg_is_contiguous(t))
            return cg_set_error(CG_ERR_ARG, "%s: state tensor '%s' is not contiguous", fn,
                                name);
    }
    return CG_OK;
}

/* Every rank's layout against rank 0's: {parameters, elements, dtype, layout hash}. */
static cg_status compare_layouts(const cg_ddp *d, const char *fn) {
    int64_t mine[4] = {d->nparams, d->numel, d->dtype, (int64_t)layout_hash(d->model)};
    int64_t *all = malloc(sizeof mine * (size_t)d->world);
    if (!all) return cg_set_error(CG_ERR_NOMEM, "%s: out of memory", fn);
    cg_status s = mpi_check(MPI_Allgather(mine, 4, MPI_INT64_T, all, 4, MPI_INT64_T, d->comm),
                            fn, "MPI_Allgather");
    for (int r = 1; s == CG_OK && r < d->world; r++) {
        const int64_t *a = all, *b = all + 4 * r;
        if (!memcmp(a, b, sizeof mine)) continue;
        s = cg_set_error(CG_ERR_STATE,
                         "%s: rank %d's model differs from rank 0's: %lld parameters of %lld "
                         "elements (%s) against %lld of %lld (%s)%s",
                         fn, r, (long long)b[0], (long long)b[1], cg_dtype_name((cg_dtype)b[2]),
                         (long long)a[0], (long long)a[1], cg_dtype_name((cg_dtype)a[2]),
                         memcmp(a, b, 3 * sizeof *a) ? ""
                                                     : "; the names, shapes or dtypes of "
                                                       "its state differ");
    }
    free(all);
    return s;
}

/* ---- buckets ------------------------------------------------------------------- */
/* Parameters in reverse order, each bucket closed once it holds cap bytes
 * (the first one first_bucket_bytes), as PyTorch's DDP: the last layers'
 * gradients, final first, go out while earlier layers' backward runs. A
 * bucket is a contiguous run of the flat gradient: parameters lie there in
 * registration order. */
static cg_status make_buckets(cg_ddp *d, const char *fn) {
    size_t es = cg_dtype_size(d->dtype);
    d->buckets = calloc((size_t)d->nparams, sizeof *d->buckets);
    d->reqs = calloc((size_t)d->nparams, sizeof *d->reqs);
    if (!d->buckets || !d->reqs) return cg_set_error(CG_ERR_NOMEM, "%s: out of memory", fn);
    int64_t hi = d->numel;
    bucket *b = NULL;
    for (int k = d->nparams - 1; k >= 0; k--) {
        int64_t n = cg_numel(d->recs[k].p);
        if (n > INT_MAX)
            return cg_set_error(CG_ERR_ARG,
                                "%s: parameter %d has %lld elements, more than one "
                                "MPI call takes (%d)",
                                fn, k, (long long)n, INT_MAX);
        size_t cap = d->nbuckets == 1 ? d->opts.first_bucket_bytes : d->opts.bucket_bytes;
        if (!b || (size_t)b->len * es >= cap || b->len + n > INT_MAX) {
            b = &d->buckets[d->nbuckets++];
            b->off = b->len = 0;
        }
        hi -= n;
        b->off = hi;
        b->len += n;
        d->recs[k].bucket = (int)(b - d->buckets);
        if (cg_requires_grad(d->recs[k].p)) b->nparams++;
    }
    return CG_OK;
}

static char *grad_base(const cg_ddp *d) { return cg_data(cg_module_flat_grads(d->model)); }

static cg_status start_bucket(cg_ddp *d, int i, const char *fn) {
    const bucket *b = &d->buckets[i];
    char *at = grad_base(d) + (size_t)b->off * cg_dtype_size(d->dtype);
    d->stats.buckets++;
    d->stats.bytes += b->len * (int64_t)cg_dtype_size(d->dtype);
    return mpi_check(
        MPI_Iallreduce(MPI_IN_PLACE, at, (int)b->len, d->mtype, MPI_SUM, d->comm, &d->reqs[i]),
        fn, "MPI_Iallreduce");
}

/* Starts, in bucket order, every bucket whose parameters are all final:
 * the order of collectives is then the same on every rank. */
static cg_status start_ready(cg_ddp *d, const char *fn) {
    cg_status s = CG_OK;
    while (s == CG_OK && d->next < d->nbuckets && d->buckets[d->next].pending == 0) {
        d->stats.buckets_in_backward++;
        s = start_bucket(d, d->next++, fn);
    }
    return s;
}

/* Open MPI moves a non-blocking collective on only inside MPI calls. */
static cg_status progress(cg_ddp *d, const char *fn) {
    int done = 0;
    return d->next ? mpi_check(MPI_Testall(d->next, d->reqs, &done, MPI_STATUSES_IGNORE), fn,
                               "MPI_Testall")
                   : CG_OK;
}

/* The hook on every parameter: its gradient is final for this backward. */
static cg_status on_grad_ready(cg_tensor *leaf, void *user) {
    param_rec *r = user;
    cg_ddp *d = r->ddp;
    (void)leaf;
    if (d->no_sync || d->opts.deterministic || d->shard != d->local_shards - 1) return CG_OK;
    if (r->ready)
        return cg_set_error(CG_ERR_STATE,
                            "cg_backward: a parameter's gradient was already reduced this step "
                            "(one backward per shard between cg_ddp_sync calls, or use "
                            "cg_ddp_no_sync_push)");
    r->ready = true;
    cg_status s = CG_OK;
    if (--d->buckets[r->bucket].pending == 0) s = start_ready(d, "cg_backward");
    return s == CG_OK ? progress(d, "cg_backward") : s;
}

/* Ready for the next step: nothing started, every parameter pending. */
static void new_step(cg_ddp *d) {
    d->next = 0;
    d->shard = 0;
    for (int i = 0; i < d->nbuckets; i++) d->buckets[i].pending = d->buckets[i].nparams;
    for (int k = 0; k < d->nparams; k++) d->recs[k].ready = false;
}

/* ---- construction ------------------------------------------------------------------ */
static cg_status check_opts(const cg_ddp_opts *o, const char *fn) {
    if (o->bucket_bytes < 1 || o->first_bucket_bytes < 1)
        return cg_set_error(CG_ERR_ARG,
                            "%s: bucket sizes must be >= 1 byte (got %zu, first %zu)", fn,
                            o->bucket_bytes, o->first_bucket_bytes);
    if (o->shards < 0 || o->check_every < 0)
        return cg_set_error(CG_ERR_ARG, "%s: shards %d and check_every %d must be >= 0", fn,
                            o->shards, o->check_every);
    return CG_OK;
}

/* The communicator, rank, world size and shards: what ranks need before
 * they can agree on anything else. */
static cg_status open_comm(cg_ddp *d, MPI_Comm comm, const char *fn) {
    if (comm == MPI_COMM_NULL) return cg_set_error(CG_ERR_ARG, "%s: comm is MPI_COMM_NULL", fn);
    cg_status s = mpi_check(MPI_Comm_dup(comm, &d->comm), fn, "MPI_Comm_dup");
    if (s != CG_OK) return s;
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->world);
    d->shards = d->opts.shards ? d->opts.shards : d->world;
    if (d->shards % d->world)
        return cg_set_error(CG_ERR_ARG, "%s: shards %d is not a multiple of the %d ranks", fn,
                            d->shards, d->world);
    d->local_shards = d->shards / d->world;
    return CG_OK;
}

/* The parameters' records, their hooks, and what deterministic mode sets aside. */
static cg_status take_params(cg_ddp *d, const char *fn) {
    d->nparams = cg_module_nparams(d->model);
    d->numel = cg_module_numel(d->model);
    d->dtype = cg_dtype_of(cg_module_param(d->model, 0, NULL));
    d->mtype = mpi_type(d->dtype);
    d->recs = calloc((size_t)d->nparams, sizeof *d->recs);
    if (!d->recs) return cg_set_error(CG_ERR_NOMEM, "%s: out of memory", fn);
    for (int k = 0; k < d->nparams; k++)
        d->recs[k] = (param_rec){d, cg_module_param(d->model, k, NULL), 0, false};
    if (!d->opts.deterministic) return CG_OK;
    if (d->numel > INT_MAX / d->local_shards)
        return cg_set_error(CG_ERR_ARG,
                            "%s: deterministic mode gathers %d x %lld elements per "
                            "rank, more than one MPI call takes",
                            fn, d->local_shards, (long long)d->numel);
    d->aside = calloc((size_t)d->shards * (size_t)d->numel, cg_dtype_size(d->dtype));
    return d->aside ? CG_OK
                    : cg_set_error(CG_ERR_NOMEM,
                                   "%s: out of memory for %d x %lld "
                                   "gradients",
                                   fn, d->shards, (long long)d->numel);
}

static cg_status set_hooks(cg_ddp *d, bool on) {
    cg_status s = CG_OK;
    for (int k = 0; k < d->nparams && s == CG_OK; k++)
        s = cg_set_grad_hook(d->recs[k].p, on ? on_grad_ready : NULL, on ? &d->recs[k] : NULL);
    return s;
}

/* Every rank learns every rank's local checks, then the layouts are
 * compared and rank 0's values sent to all. */
static cg_status start_up(cg_ddp *d, MPI_Comm comm, const char *fn) {
    cg_status s = open_comm(d, comm, fn);
    if (!d->comm || d->comm == MPI_COMM_NULL) return s;
    if (s == CG_OK) s = check_model(d->model, fn);
    if (s == CG_OK) s = take_params(d, fn);
    s = agree(d->comm, d->rank, s, fn, "to set up");
    if (s == CG_OK) s = compare_layouts(d, fn);
    if (s == CG_OK)
        s = bcast(d, cg_data(cg_module_flat_params(d->model)), d->numel, d->dtype, fn);
    if (s == CG_OK) s = bcast_buffers(d, fn);
    if (s == CG_OK) s = make_buckets(d, fn);
    if (s == CG_OK) s = set_hooks(d, true);
    return agree(d->comm, d->rank, s, fn, "to set up");
}

cg_ddp *cg_ddp_new(cg_module *model, MPI_Comm comm, const cg_ddp_opts *opts) {
    const char *fn = "cg_ddp_new";
    cg_ddp_opts o = opts ? *opts : cg_ddp_defaults();
    if (mpi_ready(fn) != CG_OK || check_opts(&o, fn) != CG_OK) return NULL;
    if (!model) return cg_set_error(CG_ERR_ARG, "%s: model is NULL", fn), NULL;
    cg_ddp *d = calloc(1, sizeof *d);
    if (!d) return cg_set_error(CG_ERR_NOMEM, "%s: out of memory", fn), NULL;
    d->model = model;
    d->opts = o;
    d->comm = MPI_COMM_NULL;
    if (start_up(d, comm, fn) != CG_OK) {
        char msg[MSG_MAX];
        cg_status s = cg_last_status();
        snprintf(msg, sizeof msg, "%s", cg_last_error());
        cg_ddp_free(d);
        cg_set_error(s, "%s", msg);
        return NULL;
    }
    new_step(d);
    return d;
}

void cg_ddp_free(cg_ddp *d) {
    if (!d) return;
    if (d->next) MPI_Waitall(d->next, d->reqs, MPI_STATUSES_IGNORE); /* freed mid-step */
    if (d->recs) set_hooks(d, false);
    if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
    free(d->recs);
    free(d->buckets);
    free(d->reqs);
    free(d->aside);
    free(d);
}

int cg_ddp_rank(const cg_ddp *d) { return usable(d, "cg_ddp_rank") ? d->rank : -1; }
int cg_ddp_world_size(const cg_ddp *d) {
    return usable(d, "cg_ddp_world_size") ? d->world : -1;
}
int cg_ddp_shards(const cg_ddp *d) { return usable(d, "cg_ddp_shards") ? d->shards : -1; }
int cg_ddp_local_shards(const cg_ddp *d) {
    return usable(d, "cg_ddp_local_shards") ? d->local_shards : -1;
}

/* ---- the end of a backward pass -------------------------------------------------------- */
/* Deterministic mode: local shard k's gradient goes to its place among all
 * shards' (rank-major, so the gather needs no reordering) and the .grad
 * starts again from zero. */
static void set_aside(cg_ddp *d, int k) {
    size_t bytes = (size_t)d->numel * cg_dtype_size(d->dtype);
    char *slot = (char *)d->aside + (size_t)(d->rank * d->local_shards + k) * bytes;
    char *g = grad_base(d);
    memcpy(slot, g, bytes);
    memset(g, 0, bytes);
}

/* Every shard's gradient to every rank, then the sum in shard order from
 * zero (the .grad, zeroed by set_aside): the same bits on every rank and
 * for every way of spreading the shards over ranks. */
static cg_status gather_sum(cg_ddp *d, const char *fn) {
    int count = (int)(d->numel * d->local_shards);
    cg_status s = mpi_check(
        MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, d->aside, count, d->mtype, d->comm),
        fn, "MPI_Allgather");
    d->stats.buckets++;
    d->stats.bytes += (int64_t)count * (int64_t)cg_dtype_size(d->dtype);
    if (s != CG_OK) return s;
    int64_t n = d->numel;
    char *g = grad_base(d);
    for (int v = 0; v < d->shards; v++) {
        if (d->dtype == CG_F32) {
            float *gf = (float *)g;
            const float *a = (const float *)d->aside + (size_t)v * (size_t)n;
            for (int64_t i = 0; i < n; i++) gf[i] += a[i];
        } else {
            double *gd = (double *)g;
            const double *a = (const double *)d->aside + (size_t)v * (size_t)n;
            for (int64_t i = 0; i < n; i++) gd[i] += a[i];
        }
    }
    return CG_OK;
}

/* The buckets no hook started (parameters without a gradient this step, or
 * a bucket after one of those), in order, then the wait for all. */
static cg_status finish_buckets(cg_ddp *d, const char *fn) {
    cg_status s = CG_OK;
    while (s == CG_OK && d->next < d->nbuckets) s = start_bucket(d, d->next++, fn);
    cg_status w =
        mpi_check(MPI_Waitall(d->next, d->reqs, MPI_STATUSES_IGNORE), fn, "MPI_Waitall");
    return s != CG_OK ? s : w;
}

/* The sum over shards becomes their mean. For a power-of-two count the
 * product with its exact reciprocal is the same correctly rounded quotient,
 * and much cheaper than a division. */
static void divide_grads(cg_ddp *d) {
    int k = d->shards;
    if (k == 1) return;
    int64_t n = d->numel;
    bool pow2 = (k & (k - 1)) == 0;
    if (d->dtype == CG_F32) {
        float *g = (float *)grad_base(d), kf = (float)k, inv = 1.0f / kf;
        if (pow2)
            for (int64_t i = 0; i < n; i++) g[i] *= inv;
        else
            for (int64_t i = 0; i < n; i++) g[i] /= kf;
    } else {
        double *g = (double *)grad_base(d), kd = k, inv = 1.0 / kd;
        if (pow2)
            for (int64_t i = 0; i < n; i++) g[i] *= inv;
        else
            for (int64_t i = 0; i < n; i++) g[i] /= kd;
    }
}

/* After the step's last shard: reduce, agree on every rank's status, then
 * average, share buffers and now and then compare hashes. */
static cg_status reduce_step(cg_ddp *d, cg_status local, const char *fn) {
    double t0 = MPI_Wtime();
    cg_status s = d->opts.deterministic ? gather_sum(d, fn) : finish_buckets(d, fn);
    s = agree(d->comm, d->rank, local != CG_OK ? local : s, fn, "this step");
    d->stats.wait_seconds += MPI_Wtime() - t0;
    d->stats.steps++;
    d->steps++;
    new_step(d);
    if (s != CG_OK) return s;
    divide_grads(d);
    if (d->opts.broadcast_buffers) s = bcast_buffers(d, fn);
    if (s == CG_OK && d->opts.check_every && d->steps % d->opts.check_every == 0)
        s = cg_ddp_check(d);
    return s;
}

cg_status cg_ddp_sync(cg_ddp *d, cg_status local) {
    const char *fn = "cg_ddp_sync";
    if (!usable(d, fn)) return CG_ERR_ARG;
    if (d->no_sync) return local;
    if (d->opts.deterministic) set_aside(d, d->shard);
    if (++d->shard < d->local_shards) return local;
    return reduce_step(d, local, fn);
}

cg_status cg_ddp_no_sync_push(cg_ddp *d) {
    if (!usable(d, "cg_ddp_no_sync_push")) return CG_ERR_ARG;
    d->no_sync++;
    return CG_OK;
}

cg_status cg_ddp_no_sync_pop(cg_ddp *d) {
    if (!usable(d, "cg_ddp_no_sync_pop")) return CG_ERR_ARG;
    if (!d->no_sync)
        return cg_set_error(CG_ERR_STATE, "cg_ddp_no_sync_pop: no cg_ddp_no_sync_push to undo");
    d->no_sync--;
    return CG_OK;
}

/* ---- checks, metrics, checkpoints ----------------------------------------------------------
 */
cg_status cg_ddp_check(cg_ddp *d) {
    const char *fn = "cg_ddp_check";
    if (!usable(d, fn)) return CG_ERR_ARG;
    uint64_t mine = values_hash(d), *all = malloc(sizeof mine * (size_t)d->world);
    cg_status s = all ? CG_OK : cg_set_error(CG_ERR_NOMEM, "%s: out of memory", fn);
    s = agree(d->comm, d->rank, s, fn, "to check");
    if (s == CG_OK)
        s = mpi_check(MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, d->comm), fn,
                      "MPI_Allgather");
    for (int r = 1; s == CG_OK && r < d->world; r++)
        if (all[r] != all[0]) {
            char list[MSG_MAX] = "";
            for (int q = 0, at = 0; q < d->world && at < MSG_MAX - 40; q++)
                at += snprintf(list + at, MSG_MAX - (size_t)at, "%srank %d %016llx",
                               q ? ", " : "", q, (unsigned long long)all[q]);
            s = cg_set_error(CG_ERR_STATE,
                             "%s: the ranks' parameters are no longer identical (hashes: %s)",
                             fn, list);
        }
    free(all);
    return s;
}

static cg_status all_reduce(cg_ddp *d, double *values, int n, bool mean, const char *fn) {
    if (!usable(d, fn)) return CG_ERR_ARG;
    if (n < 0 || (n > 0 && !values))
        return cg_set_error(CG_ERR_ARG, "%s: %d values at %p", fn, n, (void *)values);
    cg_status s =
        mpi_check(MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, d->comm), fn,
                  "MPI_Allreduce");
    for (int i = 0; s == CG_OK && mean && i < n; i++) values[i] /= d->world;
    return s;
}

cg_status cg_ddp_all_sum(cg_ddp *d, double *values, int n) {
    return all_reduce(d, values, n, false, "cg_ddp_all_sum");
}
cg_status cg_ddp_all_mean(cg_ddp *d, double *values, int n) {
    return all_reduce(d, values, n, true, "cg_ddp_all_mean");
}

cg_status cg_ddp_save(cg_ddp *d, const char *path, const cg_optim *o, const cg_sched *s,
                      const cg_rng *rng) {
    if (!usable(d, "cg_ddp_save")) return CG_ERR_ARG;
    cg_status st = d->rank == 0 ? cg_save(path, d->model, o, s, rng) : CG_OK;
    return agree(d->comm, d->rank, st, "cg_ddp_save", "to save");
}

cg_status cg_ddp_load(cg_ddp *d, const char *path, cg_optim *o, cg_sched *s, cg_rng *rng) {
    if (!usable(d, "cg_ddp_load")) return CG_ERR_ARG;
    cg_status st =
        agree(d->comm, d->rank, cg_load(path, d->model, o, s, rng), "cg_ddp_load", "to load");
    return st == CG_OK ? cg_ddp_check(d) : st;
}

cg_status cg_ddp_barrier(cg_ddp *d) {
    if (!usable(d, "cg_ddp_barrier")) return CG_ERR_ARG;
    return mpi_check(MPI_Barrier(d->comm), "cg_ddp_barrier", "MPI_Barrier");
}

cg_ddp_stats cg_ddp_get_stats(const cg_ddp *d) {
    return usable(d, "cg_ddp_get_stats") ? d->stats : (cg_ddp_stats){0};
}
void cg_ddp_reset_stats(cg_ddp *d) {
    if (usable(d, "cg_ddp_reset_stats")) d->stats = (cg_ddp_stats){0};
}
