/* cgrad tensor core: dtypes, status codes, contexts, tensors, views, RNG.
 *
 * Ownership, in one paragraph: every function that makes a tensor takes a
 * `cg_ctx *ctx` first. With a context, the tensor (header and data) lives in
 * the context's arena and is released, with everything else made there, by
 * cg_ctx_reset() or cg_ctx_free(); never free it yourself (cg_tensor_free on
 * it does nothing). With ctx == NULL the tensor is yours: release it with
 * cg_tensor_free(). Views share their base's storage; a heap view keeps a
 * heap storage alive by reference count, so bases and views may be freed in
 * any order. A view made outside a context of a tensor inside one is refused
 * (it would dangle after the reset).
 *
 * Errors, in one paragraph: a function returning a tensor returns NULL on
 * error; one returning cg_status returns the code. Either way the calling
 * thread's last error (cg_last_error) names the function and the shapes, and
 * the context, if any, keeps its first error since the last reset. Any
 * function given a NULL tensor returns NULL (or CG_ERR_ARG) without
 * overwriting the error already recorded, so a whole expression can be
 * checked once, at the end.
 *
 * Stale handles, in one paragraph: a context tensor used after its
 * context's reset is an error that every public function taking a tensor
 * reports (CG_ERR_STATE, "cg_add: input 0 belongs to a context that was reset
 * since it was made"; "reset or freed" when the bytes no longer hold its
 * header) instead of reading what now lives at that address. Guaranteed: a
 * handle used 1 to 3 resets after the one that ended it is always reported,
 * whatever the context made since (a context places the tensors of
 * successive generations at different addresses modulo 256). Best effort: a
 * handle used 4 or more resets later is reported unless a tensor made since
 * sits at exactly its address (or, if the arena grew then, may read freed
 * memory: a reset that merges the arena's chunks keeps the old ones mapped
 * for 3 more resets, their pages returned, so they read as zeros, which no
 * header matches). Not covered: after cg_ctx_free (or
 * cg_tensor_free of a caller-owned tensor) the memory is returned to the
 * system; using the handle then is undefined (often reported while the
 * bytes last, a crash once they are unmapped).
 */
#ifndef CG_TENSOR_H
#define CG_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CG_API __attribute__((visibility("default")))
#else
#define CG_API
#endif

#define CG_MAX_DIMS 8
#define CG_END      INT64_MAX /* cg_slice: to the end of the dim */
#define CG_ALL_DIMS INT32_MIN /* cg_squeeze, cg_argmax: every dim */

typedef enum cg_dtype { CG_F32 = 0, CG_F64 = 1, CG_I64 = 2 } cg_dtype;

typedef enum cg_status {
    CG_OK = 0,
    CG_ERR_SHAPE, /* shapes do not fit the operation, negative dims */
    CG_ERR_DTYPE, /* dtype not supported or operands disagree */
    CG_ERR_ARG,   /* a bad argument: NULL, bad rank, bad option */
    CG_ERR_INDEX, /* an axis or element index out of range */
    CG_ERR_NOMEM, /* out of memory */
    CG_ERR_IO,    /* a file could not be read or written */
    CG_ERR_STATE  /* the call is not valid in the current state */
} cg_status;

typedef struct cg_tensor cg_tensor; /* opaque */
typedef struct cg_ctx cg_ctx;       /* opaque */

/* Seeded random number generator (xoshiro256**). Contents are private; it
 * is a plain struct so it can live on the stack. No global RNG exists. */
typedef struct cg_rng {
    uint64_t s[4];
} cg_rng;

/* Shape literal: cg_zeros(ctx, CG_F32, CG_SHAPE(2, 3)) passes ndim, shape. */
#define CG_SHAPE(...)                                                                          \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]) { __VA_ARGS__ }

/* ---- errors -------------------------------------------------------------- */
CG_API cg_status cg_last_status(void);  /* this thread's last error code */
CG_API const char *cg_last_error(void); /* its message, "" when none */
CG_API void cg_clear_error(void);
CG_API const char *cg_status_str(cg_status s);
/* Records status and a printf-style message as this thread's last error,
 * as cgrad's own functions do, and returns status: for user layers, backward
 * rules and hooks ("return cg_set_error(CG_ERR_SHAPE, \"my_layer: ...\")").
 * A NULL fmt records an empty message. */
CG_API cg_status cg_set_error(cg_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- contexts -------------------------------------------------------------- */
typedef struct cg_ctx_stats {
    size_t used;         /* arena bytes handed out since the last reset (memory a
                            backward gave back and reused counts once) */
    size_t capacity;     /* bytes held in chunks */
    size_t chunk_allocs; /* malloc calls made for chunks, ever */
    size_t resets;
} cg_ctx_stats;

CG_API cg_ctx *cg_ctx_new(void);      /* NULL on out of memory */
CG_API void cg_ctx_free(cg_ctx *ctx); /* frees all it holds; NULL is fine */
/* Releases every tensor made in ctx and keeps the memory for reuse: after the
 * first few steps of a loop, a loop that resets once per step mallocs nothing. */
CG_API void cg_ctx_reset(cg_ctx *ctx);
CG_API cg_ctx_stats cg_ctx_get_stats(const cg_ctx *ctx); /* zeros (and an error) for NULL */
/* The first error since the last reset; NULL gives CG_ERR_ARG and "" (and
 * an error, unless one is already recorded). */
CG_API cg_status cg_ctx_status(const cg_ctx *ctx);
CG_API const char *cg_ctx_error(const cg_ctx *ctx);

/* ---- threads (BLIS and cgrad's own kernels) ------------------------------- */
/* One count for the whole process (any thread may call it; a later call
 * wins), used by every parallel region of cgrad and by BLIS (whose
 * BLIS_NUM_THREADS is overridden). n = 0 restores the default: OpenMP's
 * count (OMP_NUM_THREADS, else the cores), dropping to 1 for 2 s at a time
 * while other processes keep taking cgrad's cores (a parallel region would
 * wait for a descheduled thread at its barrier: see tensor/threads.c).
 * cgrad's kernels give the same bits for any count; BLIS's products do with
 * the AVX-512 (skx) kernels cgrad selects, and may differ in the last bits
 * with its AVX2 ones. n < 0 means 1. cg_get_num_threads
 * gives the count in use now. */
CG_API void cg_set_num_threads(int n);
CG_API int cg_get_num_threads(void);

/* ---- dtypes -------------------------------------------------------------- */
CG_API size_t cg_dtype_size(cg_dtype dt);      /* 0 (and an error) for an invalid dtype */
CG_API const char *cg_dtype_name(cg_dtype dt); /* "f32", "f64", "i64" */

/* ---- creation (ctx NULL: caller frees with cg_tensor_free) ---------------- */
/* A fill value (cg_full, cg_full_like, cg_scalar; cg_set and cg_fill_ too)
 * must convert to the dtype without overflow, as PyTorch requires: NaN,
 * infinities and values past the i64 range are CG_ERR_ARG for i64 (fractions
 * truncate), magnitudes past FLT_MAX for f32. */
CG_API cg_tensor *cg_empty(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape);
CG_API cg_tensor *cg_zeros(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape);
CG_API cg_tensor *cg_ones(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape);
CG_API cg_tensor *cg_full(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape,
                          double value);
CG_API cg_tensor *cg_scalar(cg_ctx *ctx, cg_dtype dt, double value); /* rank 0 */
/* Same shape and dtype as like (which is only read), filled. */
CG_API cg_tensor *cg_zeros_like(cg_ctx *ctx, const cg_tensor *like);
CG_API cg_tensor *cg_ones_like(cg_ctx *ctx, const cg_tensor *like);
CG_API cg_tensor *cg_full_like(cg_ctx *ctx, const cg_tensor *like, double value);
/* [start, end) by step, like numpy.arange; length ceil((end - start) / step). */
CG_API cg_tensor *cg_arange(cg_ctx *ctx, cg_dtype dt, double start, double end, double step);
/* steps values from start to end inclusive. */
CG_API cg_tensor *cg_linspace(cg_ctx *ctx, cg_dtype dt, double start, double end,
                              int64_t steps);
CG_API cg_tensor *cg_eye(cg_ctx *ctx, cg_dtype dt, int64_t rows, int64_t cols);
/* Copies numel elements of type dt from data (C order). */
CG_API cg_tensor *cg_from_array(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape,
                                const void *data);
/* Borrows data (C order, no copy): the caller keeps it alive and frees it. */
CG_API cg_tensor *cg_wrap(cg_ctx *ctx, cg_dtype dt, int ndim, const int64_t *shape, void *data);
/* Random tensors (floating dtypes) from an explicit rng; same seed, same
 * numbers on every machine and thread count. */
CG_API cg_tensor *cg_rand(cg_ctx *ctx, cg_rng *rng, cg_dtype dt, int ndim, const int64_t *shape,
                          double lo, double hi);
CG_API cg_tensor *cg_randn(cg_ctx *ctx, cg_rng *rng, cg_dtype dt, int ndim,
                           const int64_t *shape, double mean, double std);
CG_API cg_tensor *cg_bernoulli(cg_ctx *ctx, cg_rng *rng, cg_dtype dt, int ndim,
                               const int64_t *shape, double p);
/* Releases a caller-owned tensor; NULL and context tensors are ignored. */
CG_API void cg_tensor_free(cg_tensor *t);

/* ---- inspection ---------------------------------------------------------- */
/* Given NULL, each inspector returns its sentinel (CG_F32, -1, NULL, false)
 * and records "cg_<name>: tensor is NULL", unless an error is already
 * recorded (which made the NULL, and is kept). */
CG_API cg_dtype cg_dtype_of(const cg_tensor *t);
CG_API int cg_ndim(const cg_tensor *t);               /* -1 for NULL */
CG_API int64_t cg_dim(const cg_tensor *t, int axis);  /* axis may be < 0; -1 on error */
CG_API const int64_t *cg_shape(const cg_tensor *t);   /* ndim entries */
CG_API const int64_t *cg_strides(const cg_tensor *t); /* in elements */
CG_API int64_t cg_offset(const cg_tensor *t);         /* in elements */
CG_API int64_t cg_numel(const cg_tensor *t);          /* -1 for NULL */
CG_API bool cg_is_contiguous(const cg_tensor *t);
/* Pointer to element [0,...,0] (storage plus offset); walk it with strides. */
CG_API void *cg_data(const cg_tensor *t);
CG_API bool cg_same_shape(const cg_tensor *a, const cg_tensor *b);
/* Writes "[2,3]" into buf (always NUL-terminated); returns buf (NULL and an
 * error for buf NULL with size > 0). */
CG_API char *cg_shape_str(const cg_tensor *t, char *buf, size_t size);

/* ---- element access ------------------------------------------------------ */
/* index has ndim entries, each may be negative (counts from the end). */
CG_API cg_status cg_get(const cg_tensor *t, const int64_t *index, double *out);
CG_API cg_status cg_set(cg_tensor *t, const int64_t *index, double value);
CG_API cg_status cg_get_i64(const cg_tensor *t, const int64_t *index, int64_t *out);
/* The value of a one-element tensor; NaN (and an error) otherwise or for NULL. */
CG_API double cg_item(const cg_tensor *t);
/* Copies all elements, in C order, into out (numel values of type dt). */
CG_API cg_status cg_copy_to_array(const cg_tensor *t, cg_dtype dt, void *out);

/* ---- broadcasting -------------------------------------------------------- */
/* NumPy rules: align shapes on the right; each pair of dims must be equal or
 * one of them 1. Writes the result rank and shape (CG_MAX_DIMS entries).
 * op names the caller in the error message (NULL: cg_broadcast_shapes). */
CG_API cg_status cg_broadcast_shapes(const char *op, int na, const int64_t *a, int nb,
                                     const int64_t *b, int *nout, int64_t *out);

/* ---- copies into existing tensors (bump the version autograd checks) ---- */
/* dst[...] = src, src broadcast to dst's shape, converting dtype. dst and src
 * sharing memory in part (x and its transpose, overlapping slices) is
 * CG_ERR_ARG, as PyTorch: the copy would read what it had overwritten. */
CG_API cg_status cg_copy_(cg_tensor *dst, const cg_tensor *src);
CG_API cg_status cg_fill_(cg_tensor *dst, double value);

/* ---- printing ------------------------------------------------------------ */
/* NumPy style, summarised with "..." past 1000 elements:
 *   tensor([[1., 2.],
 *           [3., 4.]], shape=[2,2], dtype=f32) */
/* A NULL f is CG_ERR_ARG, a failed write CG_ERR_IO; a NULL t prints "tensor(NULL)". */
CG_API cg_status cg_print(const cg_tensor *t);
CG_API cg_status cg_fprint(FILE *f, const cg_tensor *t);
/* Formats into buf like snprintf: returns the length the text needs (0 and
 * an error for buf NULL with size > 0). */
CG_API size_t cg_format(const cg_tensor *t, char *buf, size_t size);

/* ---- RNG ----------------------------------------------------------------- */
/* A NULL rng is CG_ERR_ARG; the draws then return 0, 0.0 and NaN with that error. */
CG_API cg_status cg_rng_seed(cg_rng *rng, uint64_t seed);
CG_API uint64_t cg_rng_u64(cg_rng *rng);
CG_API double cg_rng_uniform(cg_rng *rng); /* [0, 1), 53 random bits */
CG_API double cg_rng_normal(cg_rng *rng);  /* standard normal */

#ifdef __cplusplus
}
#endif
#endif
