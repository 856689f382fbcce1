/* Library-internal declarations for autograd/ (not installed). */
#ifndef CG_AUTOGRAD_INTERNAL_H
#define CG_AUTOGRAD_INTERNAL_H

#include "../tensor/internal.h"
#include "autograd.h"

typedef struct cgi_pass cgi_pass;

/* One recorded op application. Lives in its context's arena. */
struct cg_node {
    const cg_op *op;
    cg_node *prev; /* the node recorded before this one (tape order) */
    int ninputs;
    bool released;            /* its backward ran without CG_RETAIN_GRAPH */
    const cg_tensor **inputs; /* ninputs */
    uint64_t *versions;       /* storage versions at record time: inputs, output */
    bool *needs;              /* ninputs: input requires a gradient */
    cg_tensor *output;
    void *saved;
    /* Backward bookkeeping of the output, a non-leaf (tensor/ holds none):
     * the gradient flowing into it during the pass whose id is bpass. Pass
     * ids are unique process-wide, so a stale tag never matches. (80 bytes:
     * with a binary op's arrays the block stays at two cache lines.) */
    cg_tensor *bgrad;
    uint64_t bpass;
};

/* A leaf reached by a pass and the gradient flowing into it: leaves outlive
 * passes (and contexts), so their per-pass gradients live in the pass. */
typedef struct cgi_leaf_slot {
    const cg_tensor *t; /* NULL: empty slot */
    cg_tensor *g;
    /* Hooked leaves only: the oldest node taking t (its gradient is final
     * once the sweep is past it), whether the pass gave t a gradient, and
     * whether its hook ran. */
    const cg_node *last;
    bool reached, done;
} cgi_leaf_slot;

/* How many of a pass's gradient slots (nodes' bgrad, leaf slots) hold a
 * storage the pass made; open addressing keyed by the storage's address. */
typedef struct cgi_hold {
    const cgi_storage *s; /* NULL: empty */
    uint32_t n;
} cgi_hold;

/* One backward pass (cg_backward or cg_grad). On the caller's stack; its
 * table in the context's arena, so a pass mallocs nothing. */
struct cgi_pass {
    cg_ctx *ctx;
    uint64_t id;
    unsigned flags;
    bool sinks;             /* rules may add to leaves' .grad (cg_node_grad_sink) */
    const cg_node *running; /* the node whose backward is running */
    uint32_t sinks_given;   /* inputs of the running node handed their .grad */
    cgi_pass *outer;        /* the ctx's pass this one interrupted (a rule's cg_grad) */
    cgi_leaf_slot *slots;   /* open addressing, cap a power of two */
    size_t cap, nleaves;
    bool hooks;     /* run leaves' grad hooks (cg_backward, not cg_grad) */
    size_t nhooked; /* hooked leaves whose hook has yet to run */
    /* Without CG_CREATE_GRAPH the gradients the pass makes are its own:
     * one that a single slot holds is added to in place, and (cg_backward
     * only: cg_grad hands its gradients out) one that no slot holds any
     * more goes back to the context for reuse, as PyTorch frees a
     * gradient once its node's backward ran. */
    bool track, recycle;
    /* Premasking (cgi_node_premask): the running node's inputs whose returned
     * gradient is already masked by their producer's rule, and the node
     * whose gradient so far is exactly such a gradient (NULL: none). */
    uint32_t premask;
    const cg_node *masked;
    uint64_t born; /* the context's block serial when the pass began */
    cgi_hold *holds;
    size_t hcap, nholds;
};

/* x's gradient so far in the running pass when the pass made it and only
 * x's slot holds it (so a rule may add into it in place), else NULL. */
CGI_HIDDEN cg_tensor *cgi_pass_own_grad(cgi_pass *p, const cg_tensor *x);

/* gout, the running node n's output gradient, when n's rule may write its
 * result over it (an elementwise rule: one pass, no new block), else NULL:
 * in cg_backward without CG_CREATE_GRAPH, when the pass made gout, only
 * n's slot holds it (it would go back to the context after the rule) and it
 * is one dense block. */
CGI_HIDDEN cg_tensor *cgi_node_spare_gout(const cg_node *n, const cg_tensor *gout);

/* Premasking, for a rule whose input i is made by an op whose own rule is a
 * mask over the gradient (ReLU's; max pooling uses it): true when the
 * running pass of cg_backward without CG_CREATE_GRAPH lets n's rule return
 * input i's gradient already masked (non-leaf gradients are never seen
 * there, and the mask is linear and idempotent, so the leaves' gradients
 * are the same bits); the rule then must mask it. The producer's rule asks
 * cgi_node_gout_premasked: true when its whole output gradient is such a
 * gradient (nothing else was added to it), and it may pass it on as is. */
CGI_HIDDEN bool cgi_node_premask(const cg_node *n, int i);
CGI_HIDDEN bool cgi_node_gout_premasked(const cg_node *n);

#endif
