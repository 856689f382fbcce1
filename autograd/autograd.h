/* cgrad autograd: a define-by-run tape, backward, grad mode and gradcheck.
 *
 * Every op applied while grad mode is on to a tensor that requires a
 * gradient records a node on its context's tape: the op descriptor, the
 * inputs, the output and what the op saved. Nodes live in the context's
 * arena, so cg_ctx_reset() drops the graph with the tensors. backward walks
 * the tape in reverse from the output and applies each op's backward rule,
 * which is written with differentiable ops: with CG_CREATE_GRAPH the
 * gradients are themselves graph tensors, so double backward works.
 *
 * Gradients of leaves (tensors that require a gradient and were not made by
 * a recorded op) accumulate in the leaf across backward calls until
 * cg_zero_grad; a caller-owned leaf's gradient is caller-owned memory too
 * (freed with the leaf), a context leaf's lives in the context. */
#ifndef CG_AUTOGRAD_H
#define CG_AUTOGRAD_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cg_node cg_node; /* opaque; read it with the accessors below */

/* An op: a static const descriptor whose address is its identity.
 *
 * backward gets the gradient of the node's output (gout, same shape) and sets
 * gin[i] to the gradient of input i for each i with cg_node_needs_grad(node,
 * i) (leave the others NULL). gin[i] must have input i's shape: ops that
 * broadcast sum back with cg_sum_to. Use differentiable ops (cg_mul, ...)
 * so that gradients of gradients work. Results go in ctx. Return CG_OK, or
 * an error status with cg_last_error set.
 *
 * gout and what a rule returns belong to the pass: without CG_CREATE_GRAPH,
 * cg_backward reuses a gradient's memory once no input's gradient so far
 * holds it (as PyTorch frees it), so a rule must not keep them past its
 * return (copy what it wants to keep, or use cg_set_grad_hook on a leaf).
 *
 * saves lists the inputs (bit i) and output (CG_SAVES_OUTPUT) the backward
 * reads: if one of them is modified in place after recording, backward fails
 * with CG_ERR_STATE instead of computing a wrong gradient. */
typedef struct cg_op {
    const char *name;
    cg_status (*backward)(cg_ctx *ctx, const cg_node *node, const cg_tensor *gout,
                          cg_tensor **gin);
    uint32_t saves;
} cg_op;

#define CG_SAVES_INPUT(i)   (1u << (i))
#define CG_SAVES_OUTPUT     (1u << 31)
#define CG_SAVES_ALL_INPUTS 0x7fffffffu

/* Records op as the producer of out (made in ctx by the caller) when grad
 * mode is on in ctx and some input requires a gradient; otherwise does
 * nothing. saved (saved_size bytes, may be NULL) is copied into the node for
 * the backward rule: scalars, axes, flags. Returns out, or NULL on error,
 * having freed a caller-owned out (a NULL out or input returns NULL and keeps
 * the error that made it; a graph needs a context: recording with ctx NULL
 * is CG_ERR_STATE; a NULL op or backward rule is CG_ERR_ARG). */
CG_API cg_tensor *cg_record(cg_ctx *ctx, const cg_op *op, cg_tensor *out, int ninputs,
                            const cg_tensor *const *inputs, const void *saved,
                            size_t saved_size);

/* ---- reading a node (in backward rules) ---------------------------------- */
/* A NULL node, or an input index out of range, gives NULL (0, false) and an
 * error naming the accessor. */
CG_API const cg_op *cg_node_op(const cg_node *node);
CG_API int cg_node_ninputs(const cg_node *node);
CG_API const cg_tensor *cg_node_input(const cg_node *node, int i);
CG_API const cg_tensor *cg_node_output(const cg_node *node);
CG_API const void *cg_node_saved(const cg_node *node); /* the bytes given to cg_record */
CG_API bool cg_node_needs_grad(const cg_node *node, int i);
/* A fused path for a backward rule: a buffer holding input i's gradient so
 * far, when the rule may add its own gradient to it in place, else NULL.
 * Non-NULL only during cg_backward without CG_CREATE_GRAPH, for an input
 * among the first 32 that is either a leaf requiring a gradient and already
 * holding a .grad (its .grad), or a non-leaf whose gradient so far the pass
 * made and holds for it alone (a contiguous tensor of the input's shape and
 * dtype). A rule that adds (+=) its gradient there sets gin[i] to the
 * returned tensor and the engine adds nothing more for it; a rule may also
 * ignore it. Saves a pass over the gradient: Linear's weight gradient is
 * written by its GEMM with beta = 1, as llm.c does; slices of one tensor
 * (cg_chunk's q, k and v) add their gradients into one buffer. */
CG_API cg_tensor *cg_node_grad_sink(const cg_node *node, int i);
/* The node that produced t, NULL for leaves and untracked tensors. */
CG_API const cg_node *cg_grad_fn(const cg_tensor *t);

/* ---- requiring gradients ------------------------------------------------- */
/* Only leaves of a float dtype can be marked (CG_ERR_STATE / CG_ERR_DTYPE). */
CG_API cg_status cg_set_requires_grad(cg_tensor *t, bool requires_grad);
/* Both false (and an error, unless one is already recorded) for NULL. */
CG_API bool cg_requires_grad(const cg_tensor *t);
CG_API bool cg_is_leaf(const cg_tensor *t);
/* The accumulated gradient of a leaf, NULL before any backward reaches it.
 * It belongs to the leaf (do not free it); optimizers read and update it. */
CG_API cg_tensor *cg_grad_of(const cg_tensor *t);
/* Gives the leaf t the tensor its gradient accumulates into: g has t's
 * shape and dtype and is caller-owned (or in t's context when t is); the
 * leaf takes ownership and frees g with itself, replacing any previous
 * gradient. Lets a module keep every gradient in one flat buffer. */
CG_API cg_status cg_set_grad(cg_tensor *t, cg_tensor *g);
/* Zeroes the leaf's gradient in place (keeps the memory). NULL is fine. */
CG_API void cg_zero_grad(cg_tensor *t);
/* A view of t's data that is cut from the graph (requires no gradient). */
CG_API cg_tensor *cg_detach(cg_ctx *ctx, const cg_tensor *t);

/* A leaf's post-accumulate hook (PyTorch's
 * Tensor.register_post_accumulate_grad_hook): during cg_backward and
 * cg_backward_ex it runs as soon as the leaf's .grad holds everything this
 * pass adds to it, while the sweep goes on to the nodes recorded before the
 * leaf's first use (data-parallel training starts sending a layer's
 * gradient while the earlier layers' backward runs). It may read and write
 * the .grad. Not run by cg_grad (which leaves .grad alone), nor for a leaf
 * the pass gives no gradient. A status other than CG_OK stops the backward
 * with that status (the hook sets the message). */
typedef cg_status (*cg_grad_hook)(cg_tensor *leaf, void *user);
/* Sets leaf's hook (one per leaf: this replaces any before; fn NULL removes
 * it). user (borrowed) is passed to fn. A non-leaf is CG_ERR_STATE. */
CG_API cg_status cg_set_grad_hook(cg_tensor *leaf, cg_grad_hook fn, void *user);

/* ---- grad mode (per context, scoped) ------------------------------------- */
/* Pushes nest; a pop without its push is CG_ERR_STATE, a NULL ctx CG_ERR_ARG. */
CG_API cg_status cg_no_grad_push(cg_ctx *ctx); /* ops in ctx stop recording */
CG_API cg_status cg_no_grad_pop(cg_ctx *ctx);
/* false for NULL: nothing made outside a context is recorded. */
CG_API bool cg_is_grad_enabled(const cg_ctx *ctx);

/* ---- backward ------------------------------------------------------------ */
enum {
    CG_RETAIN_GRAPH = 1, /* keep the graph for another backward */
    CG_CREATE_GRAPH = 2  /* record the backward pass: gradients are differentiable */
};

/* Gradient of a scalar (one-element) output, accumulated into the leaves
 * that require one. Works in the output's context. */
CG_API cg_status cg_backward(cg_tensor *output);
/* grad_output: the gradient of output (same shape; NULL means ones and needs
 * a one-element output). flags: CG_RETAIN_GRAPH, CG_CREATE_GRAPH (the
 * backward pass is recorded; leaves' .grad still receives plain values, use
 * cg_grad for differentiable gradients). */
CG_API cg_status cg_backward_ex(cg_tensor *output, const cg_tensor *grad_output,
                                unsigned flags);
/* The functional form: grads[i] = d(sum_j <outputs[j], grad_outputs[j]>) /
 * d inputs[i], made in ctx, without touching any .grad. grad_outputs may be
 * NULL (all ones, one-element outputs only) or hold NULLs. An input the
 * outputs do not depend on gets zeros. Every input must require a gradient;
 * outputs and non-leaf inputs must have been recorded in ctx (CG_ERR_STATE).
 * With CG_CREATE_GRAPH the results are differentiable (and the graph is
 * retained); CG_RETAIN_GRAPH keeps the graph otherwise. */
CG_API cg_status cg_grad(cg_ctx *ctx, int noutputs, cg_tensor *const *outputs,
                         const cg_tensor *const *grad_outputs, int ninputs,
                         cg_tensor *const *inputs, cg_tensor **grads, unsigned flags);

/* ---- gradcheck ----------------------------------------------------------- */
/* A function under test: builds its output from inputs in ctx. */
typedef cg_tensor *(*cg_fn)(cg_ctx *ctx, cg_tensor *const *inputs, void *user);

typedef struct cg_gradcheck_opts {
    double eps;  /* finite-difference step, default 1e-6 */
    double atol; /* default 1e-5 */
    double rtol; /* default 1e-3; pass when |a - n| <= atol + rtol * |n| */
} cg_gradcheck_opts;
/* The defaults above; a NULL opts (or a zero field) means them too. A
 * negative or non-finite field is a bad argument (an error, not a result). */
CG_API cg_gradcheck_opts cg_gradcheck_defaults(void);

typedef struct cg_gradcheck_report {
    bool ok;
    int input;              /* failing input, -1 when none */
    int64_t element;        /* its flat (C-order) element index */
    int64_t output_element; /* flat index of the output element */
    double analytic, numeric, abs_err, rel_err;
    char msg[512]; /* all of the above in words, or the error */
} cg_gradcheck_report;

/* Compares the analytic gradient with central finite differences in float64
 * for every element of every input that requires a gradient (those inputs
 * must be f64). Returns true when all agree; report (may be NULL) says
 * which input and element differ and by how much, or what failed. A check
 * that cannot run (bad arguments, fn or backward failing) also records an
 * error naming cg_gradcheck (cg_gradgradcheck); a disagreement is a result,
 * not an error. */
CG_API bool cg_gradcheck(cg_fn fn, void *user, int ninputs, cg_tensor *const *inputs,
                         const cg_gradcheck_opts *opts, cg_gradcheck_report *report);
/* The same for second derivatives: checks the gradients of fn (computed with
 * CG_CREATE_GRAPH against fixed random output gradients) with gradcheck. */
CG_API bool cg_gradgradcheck(cg_fn fn, void *user, int ninputs, cg_tensor *const *inputs,
                             const cg_gradcheck_opts *opts, cg_gradcheck_report *report);

#ifdef __cplusplus
}
#endif
#endif
