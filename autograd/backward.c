/* backward: one reverse sweep over the tape.
 *
 * A producer is always recorded before its consumers, so walking the tape
 * from the newest node to the oldest visits every node after all the nodes
 * that use its output: when a node is reached, its output's gradient is
 * complete. The gradient flowing into a non-leaf during a pass sits on its
 * producing node (tagged with the pass id, so no clearing is needed); that
 * flowing into a leaf sits in the pass's own table (leaves outlive passes
 * and contexts, so nothing is left on them). Several contributions are
 * summed by the accumulate op, so with CG_CREATE_GRAPH the sum is part of
 * the new graph too. Leaves' .grad are updated after the whole sweep
 * succeeded, but for what a rule adds in place during it
 * (cg_node_grad_sink; PyTorch's AccumulateGrad also adds as it goes): a
 * backward that fails half-way may have added some of those. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#include <stdatomic.h>

#define LEAF_SLOTS_MIN 16

/* Process-wide, so a node tagged by a pass of one context is never taken
 * for one of another's (nodes' tags need no clearing). */
static _Atomic uint64_t last_pass_id;

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

/* ---- leaves reached: a small hash table keyed by the tensor's address ------ */
/* Headers are at least 64-byte aligned in contexts, 16 on the heap. */
static cgi_leaf_slot *leaf_slot(const cgi_pass *p, const cg_tensor *t) {
    size_t i = (size_t)((uintptr_t)t >> 4 ^ (uintptr_t)t >> 9) & (p->cap - 1);
    while (p->slots[i].t && p->slots[i].t != t) i = (i + 1) & (p->cap - 1);
    return &p->slots[i];
}

/* Doubles the table (the old one stays in the arena until the reset). */
static cg_status leaf_grow(cgi_pass *p) {
    size_t cap = p->cap ? p->cap * 2 : LEAF_SLOTS_MIN;
    if (cap > SIZE_MAX / sizeof *p->slots)
        return cgi_error(p->ctx, CG_ERR_NOMEM, "cg_backward: out of memory");
    cgi_leaf_slot *old = p->slots;
    cgi_leaf_slot *slots = cgi_alloc(p->ctx, "cg_backward", sizeof *slots * cap);
    if (!slots) return CG_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) slots[i] = (cgi_leaf_slot){.t = NULL};
    size_t oldcap = p->cap;
    p->slots = slots;
    p->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].t) *leaf_slot(p, old[i].t) = old[i];
    return CG_OK;
}

/* ---- the pass's own gradients (see cgi_pass.track) ------------------------ */
static bool made_in_pass(const cgi_pass *p, const cg_tensor *t) {
    return p->track && cgi_block_since(p->ctx, t->storage, p->born);
}

static cgi_hold *hold_slot(const cgi_pass *p, const cgi_storage *s) {
    size_t i = (size_t)((uintptr_t)s >> 6 ^ (uintptr_t)s >> 13) & (p->hcap - 1);
    while (p->holds[i].s && p->holds[i].s != s) i = (i + 1) & (p->hcap - 1);
    return &p->holds[i];
}

/* Doubles the table (the old one stays in the arena until the reset). */
static cg_status hold_grow(cgi_pass *p) {
    size_t cap = p->hcap ? p->hcap * 2 : LEAF_SLOTS_MIN;
    if (cap > SIZE_MAX / sizeof *p->holds)
        return cgi_error(p->ctx, CG_ERR_NOMEM, "cg_backward: out of memory");
    cgi_hold *old = p->holds, *holds = cgi_alloc(p->ctx, "cg_backward", sizeof *holds * cap);
    if (!holds) return CG_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) holds[i] = (cgi_hold){.s = NULL};
    size_t oldcap = p->hcap;
    p->holds = holds;
    p->hcap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].s) *hold_slot(p, old[i].s) = old[i];
    return CG_OK;
}

static uint32_t holders(const cgi_pass *p, const cgi_storage *s) {
    const cgi_hold *h = p->hcap ? hold_slot(p, s) : NULL;
    return h && h->s ? h->n : 0;
}

/* A slot took t. */
static cg_status hold(cgi_pass *p, const cg_tensor *t) {
    if (!made_in_pass(p, t)) return CG_OK;
    if (2 * (p->nholds + 1) > p->hcap && hold_grow(p) != CG_OK) return CG_ERR_NOMEM;
    cgi_hold *h = hold_slot(p, t->storage);
    if (!h->s) {
        *h = (cgi_hold){.s = t->storage, .n = 0};
        p->nholds++;
    }
    h->n++;
    return CG_OK;
}

/* The pass's own t, which nothing holds or will read: its memory is reused
 * (cg_backward; cg_grad's gradients are handed out). */
static void drop(cgi_pass *p, const cg_tensor *t) {
    if (p->recycle && made_in_pass(p, t) && holders(p, t->storage) == 0)
        cgi_recycle(p->ctx, t->storage);
}

/* A slot let go of t. */
static void unhold(cgi_pass *p, const cg_tensor *t) {
    if (!made_in_pass(p, t) || !p->hcap) return;
    cgi_hold *h = hold_slot(p, t->storage);
    if (h->s && h->n > 0) h->n--;
    drop(p, t);
}

/* Whether t may be added to in place: the pass made it, one slot holds it
 * and it is one dense block (not an expanded view). */
static bool owned(const cgi_pass *p, const cg_tensor *t) {
    return made_in_pass(p, t) && holders(p, t->storage) == 1 && cgi_is_contiguous(t);
}

/* The gradient flowing into t in this pass, NULL if none yet. */
static cg_tensor *grad_in(const cgi_pass *p, const cg_tensor *t) {
    if (t->node) return t->node->bpass == p->id ? t->node->bgrad : NULL;
    return p->cap ? leaf_slot(p, t)->g : NULL;
}

/* Adds g to the gradient flowing into t in this pass (*have): in place
 * when the pass owns *have. */
static cg_status add_to(cgi_pass *p, cg_tensor **have, cg_tensor *g) {
    if (*have && owned(p, *have)) {
        cgi_map_binary(cgi_binary_add.fn[g->dtype], *have, g, *have);
        return CG_OK;
    }
    cg_tensor *old = *have;
    if (old) g = accumulate(p->ctx, old, g);
    if (!g || hold(p, g) != CG_OK) return cg_last_status();
    *have = g;
    if (old) unhold(p, old);
    return CG_OK;
}

cg_tensor *cgi_pass_own_grad(cgi_pass *p, const cg_tensor *x) {
    cg_tensor *g = grad_in(p, x);
    return g && owned(p, g) ? g : NULL;
}

/* The context's pass while n's rule runs in it, when the pass recycles
 * (cg_backward without CG_CREATE_GRAPH), else NULL. */
static cgi_pass *recycling_pass(const cg_node *n) {
    cgi_pass *p = n && n->output->ctx ? n->output->ctx->pass : NULL;
    return p && p->recycle && p->running == n ? p : NULL;
}

cg_tensor *cgi_node_spare_gout(const cg_node *n, const cg_tensor *gout) {
    cgi_pass *p = recycling_pass(n);
    return p && gout && gout == n->bgrad && owned(p, gout) ? (cg_tensor *)gout : NULL;
}

bool cgi_node_premask(const cg_node *n, int i) {
    cgi_pass *p = recycling_pass(n);
    if (!p || i < 0 || i >= n->ninputs || i >= 32 || !n->inputs[i]->node) return false;
    p->premask |= 1u << i;
    return true;
}

bool cgi_node_gout_premasked(const cg_node *n) {
    cgi_pass *p = recycling_pass(n);
    return p && p->masked == n;
}

/* t's slot in the pass's table, added when missing; NULL when out of memory. */
static cgi_leaf_slot *leaf_entry(cgi_pass *p, const cg_tensor *t) {
    if (2 * (p->nleaves + 1) > p->cap && leaf_grow(p) != CG_OK) return NULL;
    cgi_leaf_slot *slot = leaf_slot(p, t);
    if (!slot->t) {
        *slot = (cgi_leaf_slot){.t = t};
        p->nleaves++;
    }
    return slot;
}

/* premasked: g is already masked for t's producer (cgi_node_premask), which
 * may then skip its mask while g is all its slot holds. */
static cg_status add_grad(cgi_pass *p, const cg_tensor *t, cg_tensor *g, bool premasked) {
    cg_node *n = t->node;
    if (n) {
        if (n->bpass != p->id) n->bgrad = NULL;
        n->bpass = p->id;
        bool first = !n->bgrad;
        if (p->masked == n) p->masked = NULL; /* a sum is no longer premasked */
        cg_status s = add_to(p, &n->bgrad, g);
        if (s == CG_OK && premasked && first) p->masked = n;
        return s;
    }
    cgi_leaf_slot *slot = leaf_entry(p, t);
    if (!slot) return CG_ERR_NOMEM;
    slot->reached = true;
    return add_to(p, &slot->g, g);
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
    if (cgi_same_shape(g, x) && g->dtype == x->dtype) return CG_OK;
    char sg[160], sx[160];
    return cgi_error(x->ctx ? x->ctx : n->output->ctx, CG_ERR_STATE,
                     "cg_backward: cg_%s gave a %s %s gradient for its %s %s input %d",
                     n->op->name, cg_dtype_name(g->dtype), cg_shape_str(g, sg, sizeof sg),
                     cg_dtype_name(x->dtype), cg_shape_str(x, sx, sizeof sx), i);
}

/* Whether the rule added input i's gradient to the buffer cg_node_grad_sink
 * gave it (a leaf's .grad: the engine only marks it changed; a non-leaf's
 * gradient so far: it is in the input's slot already). */
static bool sunk(const cgi_pass *p, const cg_node *n, int i, const cg_tensor *g) {
    const cg_tensor *x = n->inputs[i];
    if (i >= 32 || !(p->sinks_given >> i & 1u)) return false;
    if (x->node) return g == x->node->bgrad; /* the pass's own, in its slot already */
    if (g != x->grad) return false;
    cgi_bump_version(x->grad);
    if (p->nhooked && n->inputs[i]->hook) leaf_slot(p, n->inputs[i])->reached = true;
    return true;
}

/* After n's backward, whose rule began when the context's last block was
 * numbered serial: n's output's gradient is used up, and so is what the
 * rule made that no slot took (its temporaries, a gradient added in place
 * elsewhere). */
static void let_go(cgi_pass *p, const cg_node *n, uint64_t serial) {
    unhold(p, n->bgrad);
    cgi_storage *made[CGI_RECENT];
    int k = p->recycle ? cgi_recent_blocks(p->ctx, serial, made) : 0;
    for (int i = 0; i < k; i++)
        if (holders(p, made[i]) == 0) cgi_recycle(p->ctx, made[i]);
}

static cg_status run_node(cgi_pass *p, cg_node *n) {
    if (n->released)
        return cgi_error(p->ctx, CG_ERR_STATE,
                         "cg_backward: the graph through cg_%s was "
                         "already freed by a backward; pass CG_RETAIN_GRAPH to the first "
                         "backward to run another",
                         n->op->name);
    cg_status s = check_saved(n);
    cg_tensor *gin_small[4] = {NULL, NULL, NULL, NULL};
    cg_tensor **gin = gin_small;
    if (s == CG_OK && n->ninputs > 4) {
        gin = cgi_alloc(p->ctx, "cg_backward", sizeof(cg_tensor *) * (size_t)n->ninputs);
        if (!gin) return CG_ERR_NOMEM;
        for (int i = 0; i < n->ninputs; i++) gin[i] = NULL;
    }
    p->sinks_given = 0;
    p->premask = 0;
    p->running = n;
    uint64_t serial = p->ctx->serial;
    if (s == CG_OK) s = n->op->backward(p->ctx, n, n->bgrad, gin);
    p->running = NULL;
    for (int i = 0; s == CG_OK && i < n->ninputs; i++) {
        if (!n->needs[i]) continue;
        if (!gin[i]) return cg_last_status() != CG_OK ? cg_last_status() : CG_ERR_STATE;
        if (sunk(p, n, i, gin[i])) continue;
        s = check_gin(n, i, gin[i]);
        if (s == CG_OK) s = add_grad(p, n->inputs[i], gin[i], i < 32 && p->premask >> i & 1u);
    }
    if (s == CG_OK && !(p->flags & CG_RETAIN_GRAPH)) n->released = true;
    if (s == CG_OK) let_go(p, n, serial);
    return s;
}

static cg_status seed(cgi_pass *p, cg_tensor *out, const cg_tensor *gout, const char *op) {
    char so[160], sg[160];
    if (!out->requires_grad)
        return cgi_error(p->ctx, CG_ERR_STATE,
                         "%s: the output does not require a gradient "
                         "(no input requires one, or it was made under no-grad)",
                         op);
    if (!gout) {
        if (cgi_numel(out->ndim, out->shape) != 1)
            return cgi_error(p->ctx, CG_ERR_SHAPE,
                             "%s: output %s is not a scalar: pass a "
                             "gradient for it",
                             op, cg_shape_str(out, so, sizeof so));
        gout = cg_ones(p->ctx, out->dtype, out->ndim, out->shape);
        if (!gout) return cg_last_status();
    } else if (!cgi_same_shape(out, gout) || gout->dtype != out->dtype) {
        return cgi_error(p->ctx, CG_ERR_SHAPE, "%s: gradient %s %s for a %s %s output", op,
                         cg_dtype_name(gout->dtype), cg_shape_str(gout, sg, sizeof sg),
                         cg_dtype_name(out->dtype), cg_shape_str(out, so, sizeof so));
    }
    return add_grad(p, out, (cg_tensor *)gout, false);
}

/* ---- grad hooks (cg_set_grad_hook) ----------------------------------------------- */
static cg_status leaf_accumulate(cg_tensor *leaf, const cg_tensor *g);

/* Notes, for each hooked leaf the pass reaches, the oldest reached node
 * taking it: once the sweep is past that node, no gradient can flow into
 * the leaf. Reach is found as the sweep will (a node is reached when a
 * reached node needs its output's gradient); only reached nodes' inputs are
 * read, as the tape may hold older graphs whose leaves were freed. A reached
 * node is tagged with the pass as add_grad would tag it. */
static cg_status find_last_uses(cgi_pass *p, cg_node *start) {
    for (cg_node *n = start; n; n = n->prev) {
        if (n->bpass != p->id) continue;
        for (int i = 0; i < n->ninputs; i++) {
            const cg_tensor *t = n->inputs[i];
            if (!n->needs[i]) continue;
            if (t->node && t->node->bpass != p->id) {
                t->node->bpass = p->id;
                t->node->bgrad = NULL;
            }
            if (t->node || !t->hook) continue;
            cgi_leaf_slot *slot = leaf_entry(p, t);
            if (!slot) return CG_ERR_NOMEM;
            if (!slot->last) p->nhooked++;
            slot->last = n;
        }
    }
    return CG_OK;
}

/* Completes a hooked leaf: its .grad gets what the pass gave it, then its
 * hook runs (for a leaf the pass reached). */
static cg_status finish_leaf(cgi_pass *p, cgi_leaf_slot *slot) {
    cg_tensor *t = (cg_tensor *)slot->t;
    if (slot->last) p->nhooked--;
    slot->done = true;
    if (!slot->reached) return CG_OK;
    cg_status s = slot->g ? leaf_accumulate(t, slot->g) : CG_OK;
    if (s == CG_OK) s = t->hook->fn(t, t->hook->user);
    return s;
}

/* After the sweep passed n: the hooked leaves whose last use n was. */
static cg_status finish_leaves_at(cgi_pass *p, const cg_node *n) {
    cg_status s = CG_OK;
    for (int i = 0; s == CG_OK && i < n->ninputs; i++) {
        const cg_tensor *t = n->inputs[i];
        if (t->node || !t->hook || !n->needs[i]) continue;
        cgi_leaf_slot *slot = leaf_slot(p, t);
        if (slot->last == n && !slot->done) s = finish_leaf(p, slot);
    }
    return s;
}

/* ---- the sweep ------------------------------------------------------------------ */
static cg_status sweep(cgi_pass *p, cg_node *start) {
    cg_status s = p->hooks ? find_last_uses(p, start) : CG_OK;
    bool record = (p->flags & CG_CREATE_GRAPH) != 0;
    if (!record) cg_no_grad_push(p->ctx);
    for (cg_node *n = start; n && s == CG_OK; n = n->prev) {
        if (n->bpass != p->id || !n->bgrad) continue; /* not reached */
        s = run_node(p, n);
        if (s == CG_OK && p->nhooked) s = finish_leaves_at(p, n);
    }
    if (!record) cg_no_grad_pop(p->ctx);
    return s;
}

/* Seeds every output, then sweeps from the newest node that exists now (a
 * create_graph pass appends nodes, which the sweep must not visit). */
static cg_status run_pass(cgi_pass *p, int n, cg_tensor *const *outs,
                          const cg_tensor *const *gouts, const char *op) {
    if (p->flags & CG_CREATE_GRAPH) p->flags |= CG_RETAIN_GRAPH;
    p->id = atomic_fetch_add(&last_pass_id, 1) + 1;
    p->track = !(p->flags & CG_CREATE_GRAPH);
    p->born = p->ctx->serial;
    cg_node *start = p->ctx->tape_last;
    cg_status s = CG_OK;
    for (int i = 0; s == CG_OK && i < n; i++) {
        const cg_tensor *g = gouts ? gouts[i] : NULL;
        if (g && cgi_stale(g)) return cgi_stale_error_as(p->ctx, op, "grad_output", i, g);
        s = seed(p, outs[i], g, op);
    }
    if (s != CG_OK) return s;
    p->outer = p->ctx->pass;
    p->ctx->pass = p;
    s = sweep(p, start);
    p->ctx->pass = p->outer;
    return s;
}

/* ---- public entry points ------------------------------------------------------------ */
static cg_status leaf_accumulate(cg_tensor *leaf, const cg_tensor *g) {
    if (!leaf->requires_grad) return CG_OK;
    if (!leaf->grad) {
        leaf->grad = cg_zeros(leaf->ctx, leaf->dtype, leaf->ndim, leaf->shape);
        if (!leaf->grad) return cg_last_status();
    }
    cgi_map_binary(cgi_binary_add.fn[leaf->dtype], leaf->grad, g, leaf->grad);
    cgi_bump_version(leaf->grad);
    return CG_OK;
}

/* An error from inside the pass (a backward rule's op running out of
 * memory, a custom rule's own message) named by the function the user
 * called: "cg_backward: cg_mul: out of memory". */
static cg_status named(cg_status s, cg_ctx *ctx, const char *fn) {
    size_t n = strlen(fn);
    const char *msg = cg_last_error();
    if (s == CG_OK || (!strncmp(msg, fn, n) && msg[n] == ':')) return s;
    char inner[CGI_MSG_MAX];
    snprintf(inner, sizeof inner, "%s", msg);
    return cgi_error(ctx, s, "%s: %s", fn, inner);
}

/* cg_backward and cg_backward_ex, errors named fn. A NULL output made by a
 * failed op keeps that op's error. */
static cg_status backward(cg_tensor *output, const cg_tensor *grad_output, unsigned flags,
                          const char *fn) {
    if (!output) return cgi_null_arg(NULL, fn, "output"), CG_ERR_ARG;
    cg_status s = CG_OK;
    if (cgi_stale(output)) s = cgi_stale_error_as(NULL, fn, "output", -1, output);
    if (s == CG_OK && grad_output && cgi_stale(grad_output))
        s = cgi_stale_error_as(NULL, fn, "grad_output", -1, grad_output);
    if (s == CG_OK && (flags & ~(unsigned)(CG_RETAIN_GRAPH | CG_CREATE_GRAPH)))
        s = cgi_error(NULL, CG_ERR_ARG,
                      "%s: unknown flag bits 0x%x (CG_RETAIN_GRAPH, CG_CREATE_GRAPH)", fn,
                      flags & ~(unsigned)(CG_RETAIN_GRAPH | CG_CREATE_GRAPH));
    if (s != CG_OK) return s;
    cg_ctx *ctx = output->ctx;
    if (!ctx)
        return cgi_error(NULL, CG_ERR_STATE,
                         "%s: the output was not made in a "
                         "context, so there is no graph to walk",
                         fn);
    cgi_pass p = {.ctx = ctx,
                  .flags = flags,
                  .sinks = !(flags & CG_CREATE_GRAPH),
                  .hooks = true,
                  .recycle = !(flags & CG_CREATE_GRAPH)};
    s = run_pass(&p, 1, &output, &grad_output, fn);
    for (size_t i = 0; s == CG_OK && i < p.cap; i++) {
        cgi_leaf_slot *slot = &p.slots[i];
        if (!slot->t || slot->done) continue;
        if (slot->t->hook) /* a leaf output, or one whose last use is not on the tape */
            s = finish_leaf(&p, slot);
        else if (slot->g)
            s = leaf_accumulate((cg_tensor *)slot->t, slot->g);
    }
    return named(s, ctx, fn);
}

cg_status cg_backward_ex(cg_tensor *output, const cg_tensor *grad_output, unsigned flags) {
    return backward(output, grad_output, flags, "cg_backward_ex");
}
cg_status cg_backward(cg_tensor *output) { return backward(output, NULL, 0, "cg_backward"); }

static cg_status check_grad_args(cg_ctx *ctx, int nout, cg_tensor *const *outs, int nin,
                                 cg_tensor *const *ins, cg_tensor **grads) {
    if (!ctx || nout < 1 || nin < 1 || !outs || !ins || !grads)
        return cgi_error(ctx, CG_ERR_ARG,
                         "cg_grad: needs a context, outputs, inputs and "
                         "room for the gradients");
    for (int i = 0; i < nout; i++) {
        if (!outs[i]) return cgi_error(ctx, CG_ERR_ARG, "cg_grad: output %d is NULL", i);
        if (cgi_stale(outs[i])) return cgi_stale_error_as(ctx, "cg_grad", "output", i, outs[i]);
        /* the pass walks ctx's tape: another's graph would give zeros, silently */
        if (outs[i]->node && outs[i]->ctx != ctx)
            return cgi_error(
                ctx, CG_ERR_STATE,
                "cg_grad: output %d was recorded in another context (pass that one)", i);
    }
    for (int i = 0; i < nin; i++) {
        if (!ins[i]) return cgi_error(ctx, CG_ERR_ARG, "cg_grad: input %d is NULL", i);
        if (cgi_stale(ins[i])) return cgi_stale_error(ctx, "cg_grad", i, ins[i]);
        if (ins[i]->node && ins[i]->ctx != ctx)
            return cgi_error(
                ctx, CG_ERR_STATE,
                "cg_grad: input %d was recorded in another context (pass that one)", i);
        if (!ins[i]->requires_grad)
            return cgi_error(ctx, CG_ERR_STATE,
                             "cg_grad: input %d does not require a "
                             "gradient",
                             i);
    }
    return CG_OK;
}

cg_status cg_grad(cg_ctx *ctx, int noutputs, cg_tensor *const *outputs,
                  const cg_tensor *const *grad_outputs, int ninputs, cg_tensor *const *inputs,
                  cg_tensor **grads, unsigned flags) {
    cg_status s = check_grad_args(ctx, noutputs, outputs, ninputs, inputs, grads);
    for (int i = 0; grads && i < ninputs; i++) grads[i] = NULL;
    if (s == CG_OK && (flags & ~(unsigned)(CG_RETAIN_GRAPH | CG_CREATE_GRAPH)))
        s = cgi_error(ctx, CG_ERR_ARG,
                      "cg_grad: unknown flag bits 0x%x (CG_RETAIN_GRAPH, CG_CREATE_GRAPH)",
                      flags & ~(unsigned)(CG_RETAIN_GRAPH | CG_CREATE_GRAPH));
    if (s != CG_OK) return s;
    cgi_pass p = {.ctx = ctx, .flags = flags};
    s = run_pass(&p, noutputs, outputs, grad_outputs, "cg_grad");
    for (int i = 0; s == CG_OK && i < ninputs; i++) {
        const cg_tensor *x = inputs[i];
        grads[i] = grad_in(&p, x);
        if (!grads[i]) grads[i] = cg_zeros(ctx, x->dtype, x->ndim, x->shape);
        if (!grads[i]) s = cg_last_status();
    }
    return named(s, ctx, "cg_grad");
}
