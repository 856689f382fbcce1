/* Library-internal declarations for autograd/ (not installed). */
#ifndef CG_AUTOGRAD_INTERNAL_H
#define CG_AUTOGRAD_INTERNAL_H

#include "../tensor/internal.h"
#include "autograd.h"

/* One recorded op application. Lives in its context's arena. */
struct cg_node {
    const cg_op *op;
    cg_node *prev;             /* the node recorded before this one (tape order) */
    int ninputs;
    const cg_tensor **inputs;  /* ninputs */
    uint64_t *versions;        /* storage versions at record time: inputs, output */
    bool *needs;               /* ninputs: input requires a gradient */
    cg_tensor *output;
    void *saved;
    bool released;             /* its backward ran without CG_RETAIN_GRAPH */
};

#endif
