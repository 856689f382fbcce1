/* cgrad dist: data-parallel training across processes and machines on MPI,
 * as PyTorch's DistributedDataParallel (DDP). An optional part: built as
 * build/libcgrad_dist.a only where MPI is installed (Debian's Open MPI:
 * openmpi-bin, libopenmpi-dev); compile and link with mpicc, libcgrad_dist
 * before libcgrad. The core library never needs MPI.
 *
 * Every rank runs the same program on its own share of each batch:
 *
 *     cg_dist_init(&argc, &argv);
 *     cg_ddp *ddp = cg_ddp_new(model, MPI_COMM_WORLD, NULL); // rank 0's weights to all
 *     cg_batcher_shard(batcher, cg_ddp_rank(ddp), cg_ddp_world_size(ddp));
 *     per step:
 *         cg_optim_zero_grad(opt);
 *         loss = ...forward on this rank's batch...;
 *         cg_status s = cg_backward(loss);    // buckets start their all-reduce
 *         s = cg_ddp_sync(ddp, s);            // wait: .grad holds the mean
 *         if (s == CG_OK) s = cg_optim_step(opt);
 *     cg_ddp_free(ddp);
 *     cg_dist_finalize();
 *
 * Gradients are averaged the way DDP does it: the parameters, in reverse
 * order of registration (about the order backward finishes them), are cut
 * into buckets (a small first one, then about 25 MiB each), slices of the
 * model's flat gradient buffer. A leaf hook (cg_set_grad_hook) marks each
 * parameter's gradient final during backward; when a bucket is complete its
 * all-reduce starts at once (MPI_Iallreduce, in place), so communication
 * overlaps the rest of backward. Buckets start in a fixed order on every
 * rank; cg_ddp_sync starts any not yet started (a parameter that got no
 * gradient this step, on one rank or all, keeps its .grad, zero after
 * zero_grad) and waits for all, so unused parameters never hang the job.
 * Open MPI progresses a non-blocking collective only inside MPI calls: each
 * hook also tests the started ones.
 *
 * Shards and gradient accumulation: a step may be several backward passes
 * per rank. opts.shards is the number of backward passes in one step over
 * all ranks (a multiple of the world size; default: the world size, one per
 * rank); each rank runs cg_ddp_local_shards of them, calling cg_ddp_sync
 * after each, and the step's gradient is the mean over all shards (each
 * shard's loss a mean over its batch). Only the last shard's backward
 * communicates. The no_sync scope (PyTorch's model.no_sync()) instead makes
 * cg_ddp_sync do nothing: gradients add up locally until a sync outside it.
 *
 * Deterministic mode (opts.deterministic): the reduction order is cgrad's,
 * not MPI's. After each shard's backward its gradient is set aside; after
 * the last, every rank gathers all shards' gradients (MPI_Allgather) and
 * sums them in shard order, from zero, then divides by the shard count. So
 * the parameters depend on the data of each shard, not on how shards are
 * spread over ranks: N ranks with batch B/N each give bitwise the same
 * parameters as one process running the same N shards of B/N in turn
 * (opts.shards = N at world size 1), given the same kernels and thread
 * count (cgrad's kernels give the same bits for 1 and N threads). It costs
 * shards x the gradient's memory and an all-gather instead of an
 * all-reduce, and does not overlap. In either mode every rank ends each
 * step with bitwise identical parameters when every rank computes the same
 * update from the same reduced gradient; cg_ddp_check verifies it with a
 * 64-bit hash of the parameters and buffers (every opts.check_every steps
 * inside cg_ddp_sync) and fails loudly when ranks disagree.
 *
 * Errors are values, on every rank, where MPI allows: the communicator is
 * duplicated with MPI_ERRORS_RETURN, so an MPI failure is a CG_ERR_STATE
 * naming the call and MPI's message. cg_ddp_new compares the model's
 * parameters and buffers (names, shapes, dtypes) across ranks and fails on
 * every rank if any rank's differ. A rank whose step failed passes its
 * status to cg_ddp_sync, which it must still call: then every rank returns
 * CG_ERR_STATE naming the failing rank and its message. What cannot be
 * detected: a rank that never calls cg_ddp_sync (it loops, or leaves the
 * training loop early) leaves the others waiting inside MPI; a rank that
 * dies ends the job through mpirun (Open MPI aborts the other ranks), not
 * through an error here; and a collective of this library interleaved with
 * one the program makes itself on the same communicator in a different
 * order on different ranks can deadlock (cgrad uses its own duplicate, so
 * only its own calls must be in the same order on every rank: every rank
 * calls the same cg_ddp_* functions in the same order).
 *
 * Threads: MPI is initialised with MPI_THREAD_FUNNELED; cgrad calls MPI only
 * from the thread running backward and cg_ddp_*. */
#ifndef CG_DIST_H
#define CG_DIST_H

#include <mpi.h>

#include "../cgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MPI_Init_thread (MPI_THREAD_FUNNELED) unless MPI is already initialised
 * (then it only checks the thread level). argc and argv may be NULL. */
CG_API cg_status cg_dist_init(int *argc, char ***argv);
/* MPI_Finalize if cg_dist_init initialised MPI; otherwise nothing (the
 * program that initialised MPI finalises it). Free every cg_ddp first. */
CG_API cg_status cg_dist_finalize(void);

typedef struct cg_ddp_opts {
    size_t bucket_bytes;       /* bucket size cap, 25 MiB (PyTorch's bucket_cap_mb) */
    size_t first_bucket_bytes; /* the first (last layers') bucket, 1 MiB */
    int shards;                /* backward passes per step over all ranks; 0: world size */
    bool deterministic;        /* fixed reduction order (above); false */
    bool broadcast_buffers;    /* rank 0's buffers to every rank at each step; true */
    int check_every;           /* steps between parameter hash checks; 0 never; 100 */
} cg_ddp_opts;
/* The defaults above. */
CG_API cg_ddp_opts cg_ddp_defaults(void);

typedef struct cg_ddp cg_ddp; /* opaque */
/* Data-parallel training of model (borrowed: a root module, which must
 * outlive the ddp, all parameters of one float dtype) over comm (borrowed;
 * duplicated, so it may be MPI_COMM_WORLD or the user's own; MPI must be
 * initialised). Collective: every rank of comm calls it. Checks that all
 * ranks hold the same model, broadcasts every parameter and buffer from
 * rank 0, and hooks every parameter (cg_set_grad_hook: the model's
 * parameters must carry no other hook). opts NULL means the defaults.
 * NULL on error (the same error on every rank once they could talk). Free
 * with cg_ddp_free. */
CG_API cg_ddp *cg_ddp_new(cg_module *model, MPI_Comm comm, const cg_ddp_opts *opts);
/* Removes the hooks and frees ddp (NULL is fine). Not collective, but
 * every rank should free its own before cg_dist_finalize. */
CG_API void cg_ddp_free(cg_ddp *ddp);

/* This rank in [0, world), the number of ranks, the shards per step in all
 * and on this rank; -1 (and an error) for NULL. Local shard k in
 * [0, local_shards) is shard rank * local_shards + k of the step: give it
 * that part of the global batch (cg_batcher_shard(b, shard, shards)). */
CG_API int cg_ddp_rank(const cg_ddp *ddp);
CG_API int cg_ddp_world_size(const cg_ddp *ddp);
CG_API int cg_ddp_shards(const cg_ddp *ddp);
CG_API int cg_ddp_local_shards(const cg_ddp *ddp);

/* Ends one backward pass of the step. local is this rank's status for the
 * pass so far (the status of its forward and backward; CG_OK normally):
 * every rank must call it after every backward, also after an error, so
 * the others learn of it. After the last local shard it starts the buckets
 * not yet started, waits for every all-reduce (or, deterministic, gathers
 * and sums), divides the gradients by the shard count, broadcasts buffers,
 * and every check_every steps compares parameter hashes; then it returns
 * CG_OK on every rank, or on every rank CG_ERR_STATE naming a rank that
 * failed ("cg_ddp_sync: rank 1 failed this step: cg_linear: ..."). After
 * an earlier shard, or inside no_sync, it returns local and communicates
 * nothing. Collective (after the last shard). */
CG_API cg_status cg_ddp_sync(cg_ddp *ddp, cg_status local);

/* PyTorch's `with model.no_sync():` backward passes inside accumulate
 * gradients locally and cg_ddp_sync does nothing; the first sync after the
 * pop reduces everything accumulated. Pushes nest; a pop without a push is
 * CG_ERR_STATE. */
CG_API cg_status cg_ddp_no_sync_push(cg_ddp *ddp);
CG_API cg_status cg_ddp_no_sync_pop(cg_ddp *ddp);

/* Collective: CG_OK when every rank's parameters and buffers hash alike,
 * else CG_ERR_STATE on every rank listing the ranks' hashes. */
CG_API cg_status cg_ddp_check(cg_ddp *ddp);
/* Collective: values[0..n) summed over ranks, or averaged (the sum divided
 * by the world size), in place, the same on every rank: for metrics (loss,
 * correct counts) to print. */
CG_API cg_status cg_ddp_all_sum(cg_ddp *ddp, double *values, int n);
CG_API cg_status cg_ddp_all_mean(cg_ddp *ddp, double *values, int n);

/* Checkpoints (cg_save / cg_load with the same arguments, the model the
 * ddp's). Collective. Save: rank 0 writes, the others wait; every rank
 * returns rank 0's status. Load: every rank reads path (so it must be
 * visible to every rank: a shared file system, or a copy on each machine);
 * if any rank fails, every rank returns CG_ERR_STATE naming it (ranks that
 * loaded keep what they loaded); then the parameters are hash-checked. */
CG_API cg_status cg_ddp_save(cg_ddp *ddp, const char *path, const cg_optim *o,
                             const cg_sched *s, const cg_rng *rng);
CG_API cg_status cg_ddp_load(cg_ddp *ddp, const char *path, cg_optim *o, cg_sched *s,
                             cg_rng *rng);

/* Collective: waits until every rank calls it. */
CG_API cg_status cg_ddp_barrier(cg_ddp *ddp);

/* What the last steps' communication cost this rank, for benchmarks:
 * seconds inside cg_ddp_sync waiting for reductions (what the overlap did
 * not hide), and the bytes this rank reduced. Reset with cg_ddp_reset_stats. */
typedef struct cg_ddp_stats {
    int64_t steps;       /* syncs that reduced */
    double wait_seconds; /* in cg_ddp_sync, from its start to the last reduction's end */
    int64_t bytes;       /* gradient bytes reduced */
    int64_t buckets_in_backward; /* buckets started by hooks, before cg_ddp_sync */
    int64_t buckets;             /* all buckets started */
} cg_ddp_stats;
CG_API cg_ddp_stats cg_ddp_get_stats(const cg_ddp *ddp);
CG_API void cg_ddp_reset_stats(cg_ddp *ddp);

#ifdef __cplusplus
}
#endif

#endif
