/* Library-internal declarations for tensor/ (not installed).
 * Cross-file internal symbols use the prefix cgi_ and hidden visibility. */
#ifndef CG_TENSOR_INTERNAL_H
#define CG_TENSOR_INTERNAL_H

#include "tensor.h"

#include <stdarg.h>

#if defined(__GNUC__)
#define CGI_HIDDEN       __attribute__((visibility("hidden")))
#define CGI_UNLIKELY(x)  __builtin_expect(!!(x), 0)
#define CGI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CGI_HIDDEN
#define CGI_UNLIKELY(x) (x)
#define CGI_PRINTF(f, a)
#endif

/* ---- storage ------------------------------------------------------------- */
typedef enum cgi_storage_kind {
    CGI_STORAGE_HEAP,     /* data malloc'd by cgrad, freed at refcount 0 */
    CGI_STORAGE_BORROWED, /* data belongs to the caller (cg_wrap) */
    CGI_STORAGE_ARENA     /* storage and data live in a context's arena */
} cgi_storage_kind;

typedef struct cgi_storage {
    void *data;
    size_t nbytes;
    int64_t refcount; /* heap storages: number of heap tensors on it */
    uint64_t version; /* bumped by every in-place write (autograd checks it) */
    cgi_storage_kind kind;
    struct cgi_storage *base; /* a heap slice's owner (cgi_slice_of), referenced */
    /* A context block's (cgi_new in a context: header, storage, data): its
     * number in the context's order of blocks since the last reset, and the
     * data bytes the block holds (>= nbytes once reused); 0 otherwise. */
    uint64_t serial;
    size_t room;
} cgi_storage;

struct cg_node; /* autograd/: the op that produced a tensor */

/* Handles outlive what they name: a context tensor's header dies at the
 * context's reset, and the next step reuses its memory. Every header
 * therefore carries a validity word that depends on its own address, its
 * context and the context's generation (bumped by each reset), checked by
 * every public function before it reads anything else (cgi_stale). The first
 * 64 bytes hold what the check reads. */
struct cg_tensor {
    uint64_t check; /* cgi_stamp(this, ctx, gen) */
    cg_ctx *ctx;    /* owning context, NULL for caller-owned */
    uint32_t gen;   /* ctx's generation when made; 0 for caller-owned */
    /* ndim, dtype and requires_grad share one word, so a header stays three
     * cache lines (192 bytes, asserted in tensor.c) with the hook below. */
    int16_t ndim;
    uint8_t dtype; /* a cg_dtype */
    bool requires_grad;
    cgi_storage *storage;
    int64_t offset; /* in elements */
    int64_t shape[CG_MAX_DIMS];
    int64_t strides[CG_MAX_DIMS]; /* in elements, >= 0 */
    /* Autograd's lasting per-tensor state (PyTorch's AutogradMeta); tensor/
     * only initialises it. Kept here rather than behind a pointer: every op
     * reads requires_grad and node, and a side structure would cost one more
     * allocation per leaf and one more load per input. Per-pass state (the
     * gradient flowing in during a backward) lives in autograd's own
     * structures: on the producing node, or in the pass for leaves. */
    cg_tensor *grad;            /* accumulated gradient of a leaf */
    struct cg_node *node;       /* producer, NULL for leaves */
    struct cgi_grad_hook *hook; /* a leaf's cg_set_grad_hook, owned; NULL when none */
};

/* A leaf's post-accumulate hook: malloc'ed for a caller-owned leaf (freed
 * with it), in the arena for a context's. */
typedef struct cgi_grad_hook {
    cg_status (*fn)(cg_tensor *leaf, void *user);
    void *user;
} cgi_grad_hook;

/* ---- arena and context --------------------------------------------------- */
typedef struct cgi_chunk cgi_chunk;

/* Generations whose tensor headers never share an address (see cgi_stale). */
#define CGI_GEN_PHASES 4
#define CGI_RETIRED    (CGI_GEN_PHASES > 1 ? CGI_GEN_PHASES - 1 : 1)

typedef struct cgi_arena {
    cgi_chunk *head; /* chunk being filled (list of all chunks) */
    /* Chunks merged away by the last resets, [0] newest, freed
     * CGI_GEN_PHASES - 1 resets later: until then stale handles into them
     * read mapped memory (and are reported, not a crash). */
    cgi_chunk *retired[CGI_RETIRED];
    size_t used;
    size_t peak; /* the most any step between resets used */
    size_t capacity;
    size_t chunk_allocs;
    unsigned char *gap; /* free padding before the last tensor header */
    size_t gap_size;
} cgi_arena;

#define CGI_MSG_MAX 512
#define CGI_RECENT  32

struct cg_ctx {
    cgi_arena arena;
    size_t resets;
    uint32_t gen;     /* generation: bumped by every reset (wraps) */
    cg_status status; /* first error since reset */
    char msg[CGI_MSG_MAX];
    /* Autograd's tape and grad mode, which last across passes (a backward
     * pass keeps its state in autograd's structures); tensor/ only clears
     * the tape on reset. */
    struct cg_node *tape_last;
    int no_grad_depth;
    /* The backward pass running in this context, for cg_node_grad_sink;
     * opaque here, owned by autograd (NULL outside a pass). */
    struct cgi_pass *pass;
    uint64_t serial;                 /* the last block's (cgi_storage.serial) */
    struct cgi_free_block *recycled; /* blocks given back (cgi_recycle) */
    /* The last CGI_RECENT blocks of at least CGI_RECYCLE_MIN bytes made,
     * a ring (cgi_recent_blocks). */
    cgi_storage *recent[CGI_RECENT];
    unsigned nrecent; /* made so far (mod CGI_RECENT: the next slot) */
};

CGI_HIDDEN void *cgi_arena_alloc(cgi_arena *a, size_t size); /* 64-byte aligned */
CGI_HIDDEN void cgi_arena_reset(cgi_arena *a);
CGI_HIDDEN void cgi_arena_release(cgi_arena *a);
/* Memory for one tensor-related object: arena when ctx, else malloc (NULL
 * with CG_ERR_NOMEM recorded on failure). */
CGI_HIDDEN void *cgi_alloc(cg_ctx *ctx, const char *op, size_t size);
/* Gives a context block back before the reset, for cgi_new to reuse: the
 * caller guarantees nothing reads its header, storage or data any more
 * (autograd's gradients once a backward pass has consumed them). Blocks of
 * less than CGI_RECYCLE_MIN data bytes, and storages that are not a
 * context block of ctx, are left alone. */
#define CGI_RECYCLE_MIN ((size_t)1 << 16)
CGI_HIDDEN void cgi_recycle(cg_ctx *ctx, cgi_storage *s);
/* The blocks of at least CGI_RECYCLE_MIN bytes ctx made after the block
 * numbered serial, as far as its memory of the last CGI_RECENT such blocks
 * goes, into out [CGI_RECENT]; returns their number. Blocks recycled since
 * are left out. */
CGI_HIDDEN int cgi_recent_blocks(const cg_ctx *ctx, uint64_t serial, cgi_storage **out);
/* Whether s is a block of ctx made after the block numbered serial
 * (ctx->serial then). */
static inline bool cgi_block_since(const cg_ctx *ctx, const cgi_storage *s, uint64_t serial) {
    return s->serial > serial && ((const cg_tensor *)s - 1)->ctx == ctx;
}

/* ---- validity of handles -------------------------------------------------- */
/* A context's tensor headers sit at addresses congruent to (gen mod
 * CGI_GEN_PHASES) * 64 modulo CGI_GEN_PHASES * 64, so no header made in the
 * next CGI_GEN_PHASES - 1 generations can sit at a stale handle's address:
 * what is there now is the inside of some other object, or old bytes, and
 * the address-dependent check word fails (or, for the intact old header,
 * the generation does). The padding before a header (96 bytes on average)
 * takes the next small block that fits, usually the op's node, and a
 * context tensor's storage and data follow its header in the same block
 * (CGI_GEN_PHASES is defined with the arena above). */
/* Memory for a tensor header (see above) and extra bytes after it, in a
 * context; malloc of a header alone when ctx is NULL (extra ignored). */
CGI_HIDDEN cg_tensor *cgi_alloc_header(cg_ctx *ctx, const char *op, size_t extra);

/* The multiply (odd, so one-to-one) scatters structured bytes: old shapes,
 * a storage header's pointers, zeros, never match by accident. */
static inline uint64_t cgi_stamp(const cg_tensor *t, const cg_ctx *ctx, uint32_t gen) {
    uint64_t x = (uint64_t)(uintptr_t)t ^ (uint64_t)(uintptr_t)ctx ^ (uint64_t)gen << 40;
    return x * 0x9E3779B97F4A7C15u;
}
/* Makes the header at t valid for ctx's current generation (or caller-owned). */
static inline void cgi_stamp_header(cg_tensor *t, cg_ctx *ctx) {
    t->ctx = ctx;
    t->gen = ctx ? ctx->gen : 0;
    t->check = cgi_stamp(t, ctx, t->gen);
}
/* Whether t is not a live header: its check word is not the one for its
 * address (the bytes there are not a header made there: its context was reset
 * and the memory reused, or it was freed), or its context was reset since.
 * ctx is only read once the check word vouches for it. */
static inline bool cgi_stale(const cg_tensor *t) {
    return t->check != cgi_stamp(t, t->ctx, t->gen) || (t->ctx && t->ctx->gen != t->gen);
}
/* Records CG_ERR_STATE "op: input i belongs to a context that was reset ...";
 * i < 0 leaves the index out. Returns CG_ERR_STATE. */
CGI_HIDDEN cg_status cgi_stale_error(cg_ctx *ctx, const char *op, int i, const cg_tensor *t);
/* The same naming the argument otherwise: "op: what i belongs ...". */
CGI_HIDDEN cg_status cgi_stale_error_as(cg_ctx *ctx, const char *op, const char *what, int i,
                                        const cg_tensor *t);
/* CG_OK for a live tensor; CG_ERR_ARG (message "op: input i is NULL") or
 * CG_ERR_STATE otherwise. For entry points that return a status. A NULL t
 * after an earlier error gives CG_ERR_ARG and keeps that error's record
 * (NULL in, failure out, as CGI_INPUT_CHECK). */
CGI_HIDDEN cg_status cgi_check_input(cg_ctx *ctx, const char *op, int i, const cg_tensor *t);
/* t may be written in place: no dim of size > 1 with stride 0 (an expanded
 * view, whose elements share memory: PyTorch refuses such writes too). */
CGI_HIDDEN cg_status cgi_check_writable(const char *op, const cg_tensor *t);
/* For accessors: false for NULL (no error, as before) and for a stale
 * handle (error recorded). */
static inline bool cgi_usable(const cg_tensor *t, const char *op) {
    return t && (!cgi_stale(t) || (cgi_stale_error(NULL, op, -1, t), false));
}

/* ---- errors -------------------------------------------------------------- */
/* Records status and a printf-style message for this thread and for ctx
 * (when non-NULL and no earlier error is held). Returns status. */
CGI_HIDDEN cg_status cgi_error(cg_ctx *ctx, cg_status status, const char *fmt, ...)
    CGI_PRINTF(3, 4);
/* "[2,3]" into buf; returns buf. */
CGI_HIDDEN char *cgi_fmt_shape(char *buf, size_t size, int ndim, const int64_t *shape);
/* Normalises axis (may be negative) against ndim; CG_ERR_INDEX if out of range. */
CGI_HIDDEN cg_status cgi_axis(cg_ctx *ctx, const char *op, int ndim, int axis, int *out);
/* The same against t's rank; the message names "op: [shape]", formatted
 * only when the axis is out of range. */
CGI_HIDDEN cg_status cgi_axis_of(cg_ctx *ctx, const char *op, const cg_tensor *t, int axis,
                                 int *out);

/* A NULL argument `what` of op: records CG_ERR_ARG "op: what is NULL" unless
 * an error is already held (the one that made the NULL, as after a failed
 * constructor: NULL in, NULL out keeps it). Returns the status held. */
CGI_HIDDEN cg_status cgi_null_arg(cg_ctx *ctx, const char *op, const char *what);

/* NULL in, NULL out, keeping the error that made the NULL; a NULL passed
 * first-hand (no error recorded yet) records one. A stale handle (cgi_stale)
 * records CG_ERR_STATE and returns NULL. i is the input's position in the
 * message; CGI_NULL_CHECK leaves it out. Needs `ctx` in scope. */
#define CGI_INPUT_CHECK(t, op, i)                                                              \
    do {                                                                                       \
        if (!(t)) {                                                                            \
            cgi_null_arg(ctx, op, "tensor");                                                   \
            return NULL;                                                                       \
        }                                                                                      \
        if (CGI_UNLIKELY(cgi_stale(t))) {                                                      \
            cgi_stale_error(ctx, op, i, t);                                                    \
            return NULL;                                                                       \
        }                                                                                      \
    } while (0)
#define CGI_NULL_CHECK(t, op) CGI_INPUT_CHECK(t, op, -1)

/* ---- tensor construction helpers ----------------------------------------- */
CGI_HIDDEN int64_t cgi_numel(int ndim, const int64_t *shape);
CGI_HIDDEN void cgi_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
/* Validates rank and dims (>= 0, product fits) for op's messages. */
CGI_HIDDEN cg_status cgi_check_shape(cg_ctx *ctx, const char *op, int ndim,
                                     const int64_t *shape);
/* New contiguous tensor with fresh, uninitialised storage. */
CGI_HIDDEN cg_tensor *cgi_new(cg_ctx *ctx, const char *op, cg_dtype dt, int ndim,
                              const int64_t *shape);
/* The same of like's dtype and rank, dense, with its dims laid out in the
 * order of like's strides, as PyTorch's empty_like keeps a layout (heads cut
 * from one [B, T, H D] projection give [B, H, T, D] results stored as [B, T,
 * H, D], so that merging the heads back is a view). C order unless like's
 * last dim is its fastest and no stride is 0, so rows stay unit-stride. */
CGI_HIDDEN cg_tensor *cgi_new_in_layout_of(cg_ctx *ctx, const char *op, const cg_tensor *like,
                                           const int64_t *shape);
/* New header sharing t's storage, with the given geometry (a view). */
CGI_HIDDEN cg_tensor *cgi_view_of(cg_ctx *ctx, const char *op, const cg_tensor *t, int ndim,
                                  const int64_t *shape, const int64_t *strides, int64_t offset);
CGI_HIDDEN bool cgi_valid_dtype(cg_dtype dt);
/* cg_is_contiguous and cg_same_shape without the handle checks, for
 * library code whose tensors were checked on entry (or are stack headers). */
CGI_HIDDEN bool cgi_is_contiguous(const cg_tensor *t);
static inline bool cgi_same_shape(const cg_tensor *a, const cg_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}
CGI_HIDDEN bool cgi_is_float(cg_dtype dt);
/* Marks an in-place write to t's storage (autograd compares versions). */
static inline void cgi_bump_version(cg_tensor *t) { t->storage->version++; }
static inline char *cgi_ptr(const cg_tensor *t) {
    return (char *)t->storage->data + (size_t)t->offset * cg_dtype_size(t->dtype);
}

/* ---- views and copies (tensor/view.c) -------------------------------------- */
/* The graph-free implementations behind the public view ops in ops/shape.c;
 * same arguments and errors (messages name the public function). */
CGI_HIDDEN cg_tensor *cgi_view(cg_ctx *ctx, const cg_tensor *t, int ndim, const int64_t *shape);
CGI_HIDDEN cg_tensor *cgi_reshape(cg_ctx *ctx, const cg_tensor *t, int ndim,
                                  const int64_t *shape);
CGI_HIDDEN cg_tensor *cgi_transpose(cg_ctx *ctx, const cg_tensor *t, int d0, int d1);
CGI_HIDDEN cg_tensor *cgi_permute(cg_ctx *ctx, const cg_tensor *t, const int *dims);
CGI_HIDDEN cg_tensor *cgi_slice(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t start,
                                int64_t end, int64_t step);
CGI_HIDDEN cg_tensor *cgi_narrow(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t start,
                                 int64_t length);
CGI_HIDDEN cg_tensor *cgi_select(cg_ctx *ctx, const cg_tensor *t, int dim, int64_t index);
CGI_HIDDEN cg_tensor *cgi_expand(cg_ctx *ctx, const cg_tensor *t, int ndim,
                                 const int64_t *shape);
CGI_HIDDEN cg_tensor *cgi_squeeze(cg_ctx *ctx, const cg_tensor *t, int dim);
CGI_HIDDEN cg_tensor *cgi_unsqueeze(cg_ctx *ctx, const cg_tensor *t, int dim);
CGI_HIDDEN cg_tensor *cgi_flatten(cg_ctx *ctx, const cg_tensor *t, int start, int end);
CGI_HIDDEN cg_tensor *cgi_contiguous(cg_ctx *ctx, const cg_tensor *t);
/* t itself when contiguous (or NULL), else a contiguous copy in ctx (ctx
 * NULL: the caller's to free): for kernels that read raw rows, where even a
 * view header would be one allocation too many. */
CGI_HIDDEN const cg_tensor *cgi_dense(cg_ctx *ctx, const cg_tensor *t);
CGI_HIDDEN cg_tensor *cgi_clone(cg_ctx *ctx, const cg_tensor *t);
CGI_HIDDEN cg_tensor *cgi_cast(cg_ctx *ctx, const cg_tensor *t, cg_dtype dt);

/* ---- slices of one buffer (nn/'s flat parameter buffers) ------------------ */
/* A caller-owned contiguous tensor of this shape over base's data from
 * element off, with its own storage header (so its own version counter)
 * that holds a reference on base's storage. base is caller-owned and
 * contiguous, and [off, off + numel) lies inside it (the caller checks). */
CGI_HIDDEN cg_tensor *cgi_slice_of(const cg_tensor *base, int64_t off, int ndim,
                                   const int64_t *shape, const char *op);
/* Copies t's elements into base from element off and makes t that slice:
 * the same tensor object (its grad, requires_grad and the pointers users
 * keep stay valid) and its version counter, on base's memory. Views of t
 * made before keep the old storage. t and base caller-owned, same dtype. */
CGI_HIDDEN cg_status cgi_rebind(cg_tensor *t, const cg_tensor *base, int64_t off,
                                const char *op);

/* ---- float to integer ------------------------------------------------------ */
/* Float to i64 truncates toward zero like C and PyTorch, clamped to the i64
 * range with NaN to 0: a plain cast out of range is undefined behaviour. */
static inline int64_t cgi_f64_to_i64(double v) {
    if (v != v) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}
/* A value given to be stored as it is (cg_full, cg_fill_, cg_set, a pad or
 * fill value) must convert to dt without overflow, as PyTorch requires:
 * NaN and infinities only into floats, magnitudes to FLT_MAX into f32 (i64
 * truncates fractions). CG_ERR_ARG "op: value ... cannot be converted" else. */
CGI_HIDDEN cg_status cgi_check_value(cg_ctx *ctx, const char *op, cg_dtype dt, double v);
/* v is a whole number that i64 holds exactly. */
static inline bool cgi_f64_is_i64(double v) {
    return v >= -9223372036854775808.0 && v < 9223372036854775807.0 && v == (double)(int64_t)v;
}

/* ---- threading ----------------------------------------------------------- */
/* Work below this many elements runs on one thread. */
#define CGI_PAR_MIN 32768

/* for (int64_t V = 0; V < N; V++) BODY, shared among the threads (static
 * schedule) when PAR holds and more than one thread is allowed. The serial
 * case never enters an OpenMP region: libgomp ends every region, even one
 * under if(0) or num_threads(1), with a futex wake-up syscall: 1.2 us on the
 * 2-core VM, more than a small op's whole forward. */
#define CGI_PAR_FOR(PAR, V, N, ...)                                                            \
    do {                                                                                       \
        const int64_t cgi_n_ = (N);                                                            \
        const int cgi_t_ = cg_get_num_threads();                                               \
        if ((PAR) && cgi_t_ > 1) {                                                             \
            _Pragma(                                                                           \
                "omp parallel for schedule(static) num_threads(cgi_t_)") for (int64_t V = 0;   \
                                                                              V < cgi_n_; V++) \
                __VA_ARGS__                                                                    \
        } else {                                                                               \
            for (int64_t V = 0; V < cgi_n_; V++) __VA_ARGS__                                   \
        }                                                                                      \
    } while (0)

/* ---- elementwise kernels (tensor/elementwise.c) -------------------------- */
/* Unary: out = f(x) over n elements with element strides. */
typedef void (*cgi_unary_fn)(int64_t n, const void *x, int64_t sx, void *out, int64_t so);
/* Binary: out = f(a, b); a stride of 0 broadcasts. */
typedef void (*cgi_binary_fn)(int64_t n, const void *a, int64_t sa, const void *b, int64_t sb,
                              void *out, int64_t so);

/* Ternary: out = f(a, b, c), e.g. where(cond, x, y). */
typedef void (*cgi_ternary_fn)(int64_t n, const void *a, int64_t sa, const void *b, int64_t sb,
                               const void *c, int64_t sc, void *out, int64_t so);

/* Applies fn over out's shape; x is already broadcast to out's shape
 * (strides may be 0). dtypes: fn decides, by the pointers it is given. */
CGI_HIDDEN void cgi_map_unary(cgi_unary_fn fn, const cg_tensor *x, cg_tensor *out);
CGI_HIDDEN void cgi_map_binary(cgi_binary_fn fn, const cg_tensor *a, const cg_tensor *b,
                               cg_tensor *out);
/* cg_broadcast_shapes recording the error in ctx too. */
CGI_HIDDEN cg_status cgi_broadcast(cg_ctx *ctx, const char *op, int na, const int64_t *a,
                                   int nb, const int64_t *b, int *nout, int64_t *out);
/* Whether t broadcasts to exactly this shape. */
CGI_HIDDEN bool cgi_broadcasts_to(const cg_tensor *t, int ndim, const int64_t *shape);
CGI_HIDDEN void cgi_map_ternary(cgi_ternary_fn fn, const cg_tensor *a, const cg_tensor *b,
                                const cg_tensor *c, cg_tensor *out);
/* A rank-0 tensor over one value on the stack (no allocation), for scalar
 * operands that broadcast with stride 0. */
typedef union cgi_scalar {
    float f32;
    double f64;
    int64_t i64;
} cgi_scalar;
CGI_HIDDEN cg_tensor *cgi_stack_scalar(cg_tensor *t, cgi_storage *st, cgi_scalar *v,
                                       cg_dtype dt, double value);
/* where(cond, a, b) with all three of one dtype: cond != 0 picks a. */
extern CGI_HIDDEN const cgi_ternary_fn cgi_where_fn[3];
/* Strides of t broadcast to the shape (ndim, shape): 0 on broadcast dims. */
CGI_HIDDEN void cgi_broadcast_strides(const cg_tensor *t, int ndim, const int64_t *shape,
                                      int64_t *strides);

/* Kernel tables: one entry per dtype, NULL where unsupported. */
typedef struct cgi_unary_kernel {
    const char *name;
    cgi_unary_fn fn[3]; /* indexed by cg_dtype */
} cgi_unary_kernel;
typedef struct cgi_binary_kernel {
    const char *name;
    cgi_binary_fn fn[3];
} cgi_binary_kernel;

/* The kernel lists: clang-format does not settle on one layout for them. */
/* clang-format off */
#define CGI_UNARY_LIST(X) \
    X(neg) X(abs) X(sign) X(exp) X(log) X(log1p) X(sqrt) X(rsqrt) X(square) X(sin) X(cos) \
    X(tanh) X(sigmoid) X(erf) X(relu) X(recip)
#define CGI_BINARY_LIST(X) \
    X(add) X(sub) X(mul) X(div) X(pow) X(maximum) X(minimum) X(gt) X(lt) X(ge) X(le) X(eq) X(ne) \
    X(relu_grad) X(gelu_grad) X(gelu_tanh_grad)
/* clang-format on */

#define CGI_DECLARE_KERNEL(name) extern CGI_HIDDEN const cgi_unary_kernel cgi_unary_##name;
CGI_UNARY_LIST(CGI_DECLARE_KERNEL)
#undef CGI_DECLARE_KERNEL
#define CGI_DECLARE_KERNEL(name) extern CGI_HIDDEN const cgi_binary_kernel cgi_binary_##name;
CGI_BINARY_LIST(CGI_DECLARE_KERNEL)
#undef CGI_DECLARE_KERNEL

/* Converting copy: dst = src (src broadcast to dst's shape, any dtypes). */
CGI_HIDDEN void cgi_copy_convert(cg_tensor *dst, const cg_tensor *src);

/* ---- reductions (tensor/reduce.c) ---------------------------------------- */
typedef enum cgi_reduce_op {
    CGI_REDUCE_SUM,
    CGI_REDUCE_MEAN,
    CGI_REDUCE_MAX,
    CGI_REDUCE_MIN,
    CGI_REDUCE_ARGMAX,
    CGI_REDUCE_ARGMIN
} cgi_reduce_op;

/* Output shape of reducing axes (mask bit i set = reduce axis i). */
CGI_HIDDEN void cgi_reduced_shape(int ndim, const int64_t *shape, unsigned mask, bool keepdim,
                                  int *out_ndim, int64_t *out_shape);
/* out has the reduced shape (keepdim or not, same numel) and is contiguous.
 * SUM/MEAN/MAX/MIN: out has x's dtype; ARGMAX/ARGMIN: out is CG_I64 and the
 * index is the flat index over the reduced axes (C order) of the first
 * extreme (ties go to the first). Reducing an empty set: SUM 0, MEAN NaN;
 * MAX/MIN/ARG* on an empty set are rejected by the caller. Float sums
 * accumulate in double. */
CGI_HIDDEN void cgi_reduce(cgi_reduce_op op, const cg_tensor *x, unsigned mask, cg_tensor *out);

/* ---- GEMM (tensor/gemm.c, the only file that includes blis.h) ------------ */
/* A matrix operand: element (i, j) is at data[i*rs + j*cs] (element strides). */
typedef struct cgi_mat {
    const void *data;
    int64_t rs, cs;
} cgi_mat;

/* C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, where op(X) is X or
 * X^T (trans) taken by swapping strides, never by copying. dt is CG_F32 or
 * CG_F64. Validates (non-negative sizes, strides consistent with sizes)
 * before BLIS is called, since BLIS aborts on bad arguments; any geometry
 * BLIS cannot take (a 0 stride, overlap) is copied to a packed temporary.
 * Sizes of 0 are fine (C = beta*C, or nothing). */
CGI_HIDDEN cg_status cgi_gemm(cg_dtype dt, bool transa, bool transb, int64_t m, int64_t n,
                              int64_t k, double alpha, cgi_mat a, cgi_mat b, double beta,
                              void *c, int64_t rsc, int64_t csc);
/* C[m,m] = alpha * op(A)[m,k] * op(B)[k,m] + beta * C on C's lower
 * triangle (j <= i) only; the strictly upper part is neither read nor
 * written (BLIS's gemmt). */
CGI_HIDDEN cg_status cgi_gemm_lower(cg_dtype dt, bool transa, bool transb, int64_t m, int64_t k,
                                    double alpha, cgi_mat a, cgi_mat b, double beta, void *c,
                                    int64_t rsc, int64_t csc);
/* C[m,n] = alpha * op(L) * B[m,n] + beta * C, L the lower triangle of A
 * [m,m] with its diagonal (A's strictly upper part is not read), op(L) = L^T
 * when transa (BLIS's trmm3). */
CGI_HIDDEN cg_status cgi_trmm_lower(cg_dtype dt, bool transa, int64_t m, int64_t n,
                                    double alpha, cgi_mat a, cgi_mat b, double beta, void *c,
                                    int64_t rsc, int64_t csc);
/* batch independent GEMMs; operand p of batch i starts at data + i*bstride
 * (elements; a batch stride of 0 reuses the operand). */
CGI_HIDDEN cg_status cgi_gemm_batched(cg_dtype dt, bool transa, bool transb, int64_t batch,
                                      int64_t m, int64_t n, int64_t k, double alpha, cgi_mat a,
                                      int64_t bsa, cgi_mat b, int64_t bsb, double beta, void *c,
                                      int64_t rsc, int64_t csc, int64_t bsc);

#endif
