/* backward: one reverse sweep over the tape.
 *
 * A producer is always recorded before its consumers, so walking the tape
 * from the newest node to the oldest visits every node after all the nodes
 * that use its output: when a node is reached, its output's gradient is
 * complete. Gradients flowing into a tensor during a pass sit in its bgrad
 * (tagged with the context and pass id, so no clearing is needed); several
 * contributions are summed by the accumulate op, so with CG_CREATE_GRAPH the
 * sum is part of the new graph too. Leaves' .grad are updated after the
 * whole sweep succeeded, but for what a rule adds in place during it
 * (cg_node_grad_sink; PyTorch's AccumulateGrad also adds as it goes): a
 * backward that fails half-way may have added some of those. */
#include "internal.h"

typedef struct leaf_link {
    cg_tensor *t;
    struct leaf_link *next;
} leaf_link;

typedef struct pass {
    cg_ctx *ctx;
    uint64_t id;
    unsigned flags;
    leaf_link *leaves; /* leaves reached, for cg_backward */
} pass;

/* ---- accumulate: a + b, whose backward hands gout to both ------------------ */
static cg_status accumulate_backward(cg_ctx *ctx, const cg_node *node, const cg_tensor *gout,
                                     cg_tensor **gin) {
    (void)ctx;
    for (int i = 0; i < 2; i++)
        if (cg_node_needs_grad(node, i)) gin[i] = (cg_tensor *)gout;
    return CG_OK;
}
static const cg_op accumulate_op = {"accumulate_grad", accumulate_backward, 0};

static cg_tensor *accumulate(cg_ctx *ctx, const cg_tensor *a, const cg_tensor *b) {
    cg_tensor *out = cgi_new(ctx, "cg_backward", a->dtype, a->ndim, a->shape);
    if (!out) return NULL;
    cgi_map_binary(cgi_binary_add.fn[a->dtype], a, b, out);
    return cg_record(ctx, &accumulate_op, out, 2, (const cg_tensor *[]){a, b}, NULL, 0);
}

static bool has_grad(const pass *p, const cg_tensor *t) {
    return t->bctx == p->ctx && t->bpass == p->id;
}

/* Adds g to the gradient flowing into t in this pass. */
static cg_status add_grad(pass *p, cg_tensor *t, cg_tensor *g) {
    if (!has_grad(p, t)) {
        if (!t->node) {
            leaf_link *l = cgi_alloc(p->ctx, "cg_backward", sizeof *l);
            if (!l) return CG_ERR_NOMEM;
            *l = (leaf_link){t, p->leaves};
            p->leaves = l;
        }
        t->bgrad = g;
        t->bctx = p->ctx;
        t->bpass = p->id;
        return CG_OK;
    }
    t->bgrad = accumulate(p->ctx, t->bgrad, g);
    return t->bgrad ? CG_OK : cg_last_status();
}

/* ---- one node ---------------------------------------------------------------- */
static bool saves(const cg_op *op, int i, int ninputs) {
    if (i == ninputs) return (op->saves & CG_SAVES_OUTPUT) != 0;
    if (i < 31) return (op->saves >> i & 1u) != 0;
    return (op->saves & CG_SAVES_ALL_INPUTS) == CG_SAVES_ALL_INPUTS;
}

static cg_status check_saved(const cg_node *n) {
    for (int i = 0; i <= n->ninputs; i++) {
        bool saved = saves(n->op, i, n->ninputs);
        const cg_tensor *t = i < n->ninputs ? n->inputs[i] : n->output;
        if (saved && t->storage->version != n->versions[i])
            return cgi_error(n->output->ctx, CG_ERR_STATE,
                             "cg_backward: a tensor saved by cg_%s (its %s) was modified in "
                             "place after it was used (version %llu, saved at %llu)",
                             n->op->name, i < n->ninputs ? "input" : "output",
                             (unsigned long long)t->storage->version,
                             (unsigned long long)n->versions[i]);
    }
    return CG_OK;
}

/* The op's gradient for input i must match the input exactly. */
static cg_status check_gin(const cg_node *n, int i, const cg_tensor *g) {
    const cg_tensor *x = n->inputs[i];
    if (cg_same_shape(g, x) && g->dtype == x->dtype) return CG_OK;
    char sg[160], sx[160];
    return cgi_error(x->ctx ? x->ctx : n->output->ctx, CG_ERR_STATE,
                     "cg_backward: cg_%s gave a %s %s gradient for its %s %s input %d",
                     n->op->name, cg_dtype_name(g->dtype), cg_shape_str(g, sg, sizeof sg),
                     cg_dtype_name(x->dtype), cg_shape_str(x, sx, sizeof sx), i);
}

/* Whether the rule added input i's gradient to the leaf's .grad itself
 * (cg_node_grad_sink): then the engine only marks the .grad as changed. */
static bool sunk(cg_ctx *ctx, const cg_node *n, int i, const cg_tensor *g) {
    if (i >= 32 || !(ctx->sinks_given >> i & 1u) || g != n->inputs[i]->grad) return false;
    cgi_bump_version(n->inputs[i]->grad);
    return true;
}

static cg_status run_node(pass *p, cg_node *n) {
    if (n->released)
        return cgi_error(p->ctx, CG_ERR_STATE, "cg_backward: the graph through cg_%s was "
                         "already freed by a backward; pass CG_RETAIN_GRAPH to the first "
                         "backward to run another", n->op->name);
    cg_status s = check_saved(n);
    cg_tensor *gin_small[4] = {NULL, NULL, NULL, NULL};
    cg_tensor **gin = gin_small;
    if (s == CG_OK && n->ninputs > 4) {
        gin = cgi_alloc(p->ctx, "cg_backward", sizeof(cg_tensor *) * (size_t)n->ninputs);
        if (!gin) return CG_ERR_NOMEM;
        for (int i = 0; i < n->ninputs; i++) gin[i] = NULL;
    }
    p->ctx->sinks_given = 0;
    if (s == CG_OK) s = n->op->backward(p->ctx, n, n->output->bgrad, gin);
    for (int i = 0; s == CG_OK && i < n->ninputs; i++) {
        if (!n->needs[i]) continue;
        if (!gin[i]) return cg_last_status() != CG_OK ? cg_last_status() : CG_ERR_STATE;
        if (sunk(p->ctx, n, i, gin[i])) continue;
        s = check_gin(n, i, gin[i]);
        if (s == CG_OK) s = add_grad(p, (cg_tensor *)n->inputs[i], gin[i]);
    }
    if (s == CG_OK && !(p->flags & CG_RETAIN_GRAPH)) n->released = true;
    return s;
}

/* ---- the sweep ------------------------------------------------------------------ */
static cg_status seed(pass *p, cg_tensor *out, const cg_tensor *gout, const char *op) {
    char so[160], sg[160];
    if (!out->requires_grad)
        return cgi_error(p->ctx, CG_ERR_STATE, "%s: the output does not require a gradient "
                         "(no input requires one, or it was made under no-grad)", op);
    if (!gout) {
        if (cgi_numel(out->ndim, out->shape) != 1)
            return cgi_error(p->ctx, CG_ERR_SHAPE, "%s: output %s is not a scalar: pass a "
                             "gradient for it", op, cg_shape_str(out, so, sizeof so));
        gout = cg_ones(p->ctx, out->dtype, out->ndim, out->shape);
        if (!gout) return cg_last_status();
    } else if (!cg_same_shape(out, gout) || gout->dtype != out->dtype) {
        return cgi_error(p->ctx, CG_ERR_SHAPE, "%s: gradient %s %s for a %s %s output", op,
                         cg_dtype_name(gout->dtype), cg_shape_str(gout, sg, sizeof sg),
                         cg_dtype_name(out->dtype), cg_shape_str(out, so, sizeof so));
    }
    return add_grad(p, out, (cg_tensor *)gout);
}

static cg_status sweep(pass *p, cg_node *start) {
    cg_status s = CG_OK;
    bool record = (p->flags & CG_CREATE_GRAPH) != 0;
    if (!record) cg_no_grad_push(p->ctx);
    for (cg_node *n = start; n && s == CG_OK; n = n->prev)
        if (has_grad(p, n->output)) s = run_node(p, n);
    if (!record) cg_no_grad_pop(p->ctx);
    return s;
}

/* Seeds every output, then sweeps from the newest node that exists now (a
 * create_graph pass appends nodes, which the sweep must not visit). */
static cg_status run_pass(pass *p, int n, cg_tensor *const *outs,
                          const cg_tensor *const *gouts, const char *op) {
    if (p->flags & CG_CREATE_GRAPH) p->flags |= CG_RETAIN_GRAPH;
    p->id = ++p->ctx->grad_pass;
    p->leaves = NULL;
    cg_node *start = p->ctx->tape_last;
    for (int i = 0; i < n; i++) {
        cg_status s = seed(p, outs[i], gouts ? gouts[i] : NULL, op);
        if (s != CG_OK) return s;
    }
    return sweep(p, start);
}

/* Leaves outlive the pass (a caller-owned one outlives the context, whose
 * address a later context may reuse): untag them so no later pass can take
 * their stale bgrad for its own. Tensors made in the context die with it. */
static void end_pass(pass *p) {
    for (leaf_link *l = p->leaves; l; l = l->next) {
        l->t->bgrad = NULL;
        l->t->bctx = NULL;
        l->t->bpass = 0;
    }
}

/* ---- public entry points ------------------------------------------------------------ */
static cg_status leaf_accumulate(cg_tensor *leaf) {
    if (!leaf->requires_grad) return CG_OK;
    if (!leaf->grad) {
        leaf->grad = cg_zeros(leaf->ctx, leaf->dtype, leaf->ndim, leaf->shape);
        if (!leaf->grad) return cg_last_status();
    }
    cgi_map_binary(cgi_binary_add.fn[leaf->dtype], leaf->grad, leaf->bgrad, leaf->grad);
    cgi_bump_version(leaf->grad);
    return CG_OK;
}

cg_status cg_backward_ex(cg_tensor *output, const cg_tensor *grad_output, unsigned flags) {
    if (!output) return cgi_error(NULL, CG_ERR_ARG, "cg_backward: output is NULL");
    cg_ctx *ctx = output->ctx;
    if (!ctx)
        return cgi_error(NULL, CG_ERR_STATE, "cg_backward: the output was not made in a "
                         "context, so there is no graph to walk");
    pass p = {.ctx = ctx, .flags = flags};
    ctx->grad_sinks = !(flags & CG_CREATE_GRAPH);
    cg_status s = run_pass(&p, 1, &output, &grad_output, "cg_backward");
    ctx->grad_sinks = false;
    for (leaf_link *l = p.leaves; s == CG_OK && l; l = l->next) s = leaf_accumulate(l->t);
    end_pass(&p);
    return s;
}

cg_status cg_backward(cg_tensor *output) { return cg_backward_ex(output, NULL, 0); }

static cg_status check_grad_args(cg_ctx *ctx, int nout, cg_tensor *const *outs, int nin,
                                 cg_tensor *const *ins, cg_tensor **grads) {
    if (!ctx || nout < 1 || nin < 1 || !outs || !ins || !grads)
        return cgi_error(ctx, CG_ERR_ARG, "cg_grad: needs a context, outputs, inputs and "
                         "room for the gradients");
    for (int i = 0; i < nout; i++)
        if (!outs[i]) return cgi_error(ctx, CG_ERR_ARG, "cg_grad: output %d is NULL", i);
    for (int i = 0; i < nin; i++) {
        if (!ins[i]) return cgi_error(ctx, CG_ERR_ARG, "cg_grad: input %d is NULL", i);
        if (!ins[i]->requires_grad)
            return cgi_error(ctx, CG_ERR_STATE, "cg_grad: input %d does not require a "
                             "gradient", i);
    }
    return CG_OK;
}

cg_status cg_grad(cg_ctx *ctx, int noutputs, cg_tensor *const *outputs,
                  const cg_tensor *const *grad_outputs, int ninputs, cg_tensor *const *inputs,
                  cg_tensor **grads, unsigned flags) {
    cg_status s = check_grad_args(ctx, noutputs, outputs, ninputs, inputs, grads);
    for (int i = 0; grads && i < ninputs; i++) grads[i] = NULL;
    if (s != CG_OK) return s;
    pass p = {.ctx = ctx, .flags = flags};
    s = run_pass(&p, noutputs, outputs, grad_outputs, "cg_grad");
    for (int i = 0; s == CG_OK && i < ninputs; i++) {
        const cg_tensor *x = inputs[i];
        grads[i] = has_grad(&p, x) ? x->bgrad : cg_zeros(ctx, x->dtype, x->ndim, x->shape);
        if (!grads[i]) s = cg_last_status();
    }
    end_pass(&p);
    return s;
}
