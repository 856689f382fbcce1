/* The tape: recording nodes, reading them, grad mode and leaf flags. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static bool any_requires_grad(int n, const cg_tensor *const *inputs) {
    for (int i = 0; i < n; i++)
        if (inputs[i]->requires_grad) return true;
    return false;
}

/* A graph lives in one context: the backward sweep walks that tape only. */
static cg_status check_inputs(cg_ctx *ctx, const cg_op *op, int n,
                              const cg_tensor *const *inputs) {
    if (!ctx)
        return cgi_error(NULL, CG_ERR_STATE,
                         "cg_%s: an input requires a gradient, so the result must be made "
                         "in a context (got NULL)",
                         op->name);
    for (int i = 0; i < n; i++)
        if (inputs[i]->node && inputs[i]->ctx != ctx)
            return cgi_error(ctx, CG_ERR_STATE,
                             "cg_%s: input %d belongs to another context's graph", op->name, i);
    return CG_OK;
}

/* The node and its arrays in one arena block: [node | inputs | versions |
 * needs | saved], each part 8-byte aligned. One allocation per recorded op. */
static size_t up8(size_t n) { return (n + 7) & ~(size_t)7; }

static cg_node *node_new(cg_ctx *ctx, const cg_op *op, int n, size_t saved_size) {
    size_t nn = (size_t)(n ? n : 1);
    size_t a = up8(sizeof(cg_node)), b = up8(sizeof(cg_tensor *) * nn);
    size_t c = up8(sizeof(uint64_t) * (nn + 1)), d = up8(sizeof(bool) * nn);
    if (saved_size > SIZE_MAX / 2 - (a + b + c + d)) {
        cgi_error(ctx, CG_ERR_NOMEM, "cg_record: out of memory (saved_size %zu)", saved_size);
        return NULL;
    }
    char *mem = cgi_alloc(ctx, "cg_record", a + b + c + d + saved_size);
    if (!mem) return NULL;
    cg_node *node = (cg_node *)mem;
    memset(node, 0, sizeof *node);
    node->inputs = (const cg_tensor **)(mem + a);
    node->versions = (uint64_t *)(mem + a + b);
    node->needs = (bool *)(mem + a + b + c);
    node->saved = saved_size ? mem + a + b + c + d : NULL;
    node->op = op;
    node->ninputs = n;
    return node;
}

/* An op author's arguments: a NULL out or input keeps the error that made
 * it (recording one only when none is), as every op does. */
static bool record_args_ok(cg_ctx *ctx, const cg_op *op, const cg_tensor *out, int ninputs,
                           const cg_tensor *const *inputs, const void *saved,
                           size_t saved_size) {
    const char *bad = !op                      ? "op is NULL"
                      : !op->backward          ? "the op has no backward rule"
                      : ninputs < 0            ? "ninputs is negative"
                      : ninputs > 0 && !inputs ? "inputs is NULL"
                      : saved_size && !saved   ? "saved is NULL with a non-zero saved_size"
                                               : NULL;
    if (bad) {
        cgi_error(ctx, CG_ERR_ARG, "cg_record: %s (op %s, ninputs %d, saved_size %zu)", bad,
                  op && op->name ? op->name : "?", ninputs, saved_size);
        return false;
    }
    bool null_in = !out;
    for (int i = 0; i < ninputs; i++) null_in = null_in || !inputs[i];
    if (null_in && cg_last_status() == CG_OK)
        cgi_error(ctx, CG_ERR_ARG, "cg_%s: cg_record: out or an input is NULL", op->name);
    return !null_in;
}

cg_tensor *cg_record(cg_ctx *ctx, const cg_op *op, cg_tensor *out, int ninputs,
                     const cg_tensor *const *inputs, const void *saved, size_t saved_size) {
    if (!record_args_ok(ctx, op, out, ninputs, inputs, saved, saved_size)) {
        cg_tensor_free(out); /* caller-owned out: the caller no longer holds it */
        return NULL;
    }
    if ((ctx && ctx->no_grad_depth > 0) || !any_requires_grad(ninputs, inputs)) return out;
    cg_node *node = NULL;
    if (check_inputs(ctx, op, ninputs, inputs) == CG_OK)
        node = node_new(ctx, op, ninputs, saved_size);
    if (!node) {
        cg_tensor_free(out); /* a heap out cannot have reached here with a graph */
        return NULL;
    }
    for (int i = 0; i < ninputs; i++) {
        node->inputs[i] = inputs[i];
        node->versions[i] = inputs[i]->storage->version;
        node->needs[i] = inputs[i]->requires_grad;
    }
    node->versions[ninputs] = out->storage->version;
    if (saved_size) memcpy(node->saved, saved, saved_size);
    node->output = out;
    node->prev = ctx->tape_last;
    ctx->tape_last = node;
    out->node = node;
    out->requires_grad = true;
    return out;
}

/* ---- node accessors -------------------------------------------------------- */
/* An accessor given NULL returns its sentinel (NULL, 0, false) and reports
 * "op: what is NULL", unless an earlier error made the NULL (that one is
 * kept, as by every op). Returns true for NULL. */
static bool null_arg(const void *p, const char *op, const char *what) {
    return !p && (cgi_null_arg(NULL, op, what), true);
}

/* t is a live tensor: NULL reported as null_arg does, a stale handle as
 * cgi_usable does. */
static bool live(const cg_tensor *t, const char *op) {
    return !null_arg(t, op, "tensor") && cgi_usable(t, op);
}

/* n is a node and i one of its inputs; else an error under op's name. */
static bool input_ok(const cg_node *n, int i, const char *op) {
    if (null_arg(n, op, "node")) return false;
    if (i >= 0 && i < n->ninputs) return true;
    cgi_error(n->output->ctx, CG_ERR_INDEX,
              "%s: input %d out of range for a cg_%s node of %d "
              "inputs",
              op, i, n->op->name, n->ninputs);
    return false;
}

const cg_op *cg_node_op(const cg_node *n) {
    return null_arg(n, "cg_node_op", "node") ? NULL : n->op;
}
int cg_node_ninputs(const cg_node *n) {
    return null_arg(n, "cg_node_ninputs", "node") ? 0 : n->ninputs;
}
const cg_tensor *cg_node_output(const cg_node *n) {
    return null_arg(n, "cg_node_output", "node") ? NULL : n->output;
}
const void *cg_node_saved(const cg_node *n) {
    return null_arg(n, "cg_node_saved", "node") ? NULL : n->saved;
}
const cg_node *cg_grad_fn(const cg_tensor *t) { return live(t, "cg_grad_fn") ? t->node : NULL; }

const cg_tensor *cg_node_input(const cg_node *n, int i) {
    return input_ok(n, i, "cg_node_input") ? n->inputs[i] : NULL;
}
bool cg_node_needs_grad(const cg_node *n, int i) {
    return input_ok(n, i, "cg_node_needs_grad") && n->needs[i];
}

cg_tensor *cg_node_grad_sink(const cg_node *n, int i) {
    cgi_pass *p = input_ok(n, i, "cg_node_grad_sink") ? n->output->ctx->pass : NULL;
    if (!p || !n->needs[i] || i >= 32 || p->running != n || !p->sinks) return NULL;
    const cg_tensor *x = n->inputs[i];
    cg_tensor *g = x->node ? cgi_pass_own_grad(p, x) : x->grad;
    if (x->node) {
        if (g) p->sinks_given |= 1u << i;
        if (g && p->masked == x->node) p->masked = NULL; /* the rule adds to it */
        return g;
    }
    if (!x->requires_grad || !g || g->requires_grad || g->dtype != x->dtype ||
        !cgi_same_shape(g, x))
        return NULL;
    p->sinks_given |= 1u << i;
    return g;
}

/* ---- leaves ---------------------------------------------------------------- */
cg_status cg_set_requires_grad(cg_tensor *t, bool requires_grad) {
    cg_status s = cgi_check_input(NULL, "cg_set_requires_grad", -1, t);
    if (s != CG_OK) return s;
    if (t->node)
        return cgi_error(t->ctx, CG_ERR_STATE,
                         "cg_set_requires_grad: only a leaf can be "
                         "marked; this tensor was made by cg_%s (use cg_detach)",
                         t->node->op->name);
    if (requires_grad && !cgi_is_float(t->dtype))
        return cgi_error(t->ctx, CG_ERR_DTYPE,
                         "cg_set_requires_grad: %s tensors have no "
                         "gradient (need f32 or f64)",
                         cg_dtype_name(t->dtype));
    t->requires_grad = requires_grad;
    return CG_OK;
}

bool cg_requires_grad(const cg_tensor *t) {
    return live(t, "cg_requires_grad") && t->requires_grad;
}
bool cg_is_leaf(const cg_tensor *t) { return live(t, "cg_is_leaf") && !t->node; }
cg_tensor *cg_grad_of(const cg_tensor *t) { return live(t, "cg_grad_of") ? t->grad : NULL; }

cg_status cg_set_grad(cg_tensor *t, cg_tensor *g) {
    char st[160], sg[160];
    cg_status s = cgi_check_input(NULL, "cg_set_grad", 0, t);
    if (s == CG_OK) s = cgi_check_input(NULL, "cg_set_grad", 1, g);
    if (s != CG_OK) return s;
    if (t->node) return cgi_error(t->ctx, CG_ERR_STATE, "cg_set_grad: only a leaf has a .grad");
    if (!cgi_same_shape(t, g) || t->dtype != g->dtype || g->ctx != t->ctx || g == t)
        return cgi_error(t->ctx, CG_ERR_SHAPE,
                         "cg_set_grad: %s %s gradient for a %s %s "
                         "leaf (need the same shape, dtype and owner)",
                         cg_dtype_name(g->dtype), cg_shape_str(g, sg, sizeof sg),
                         cg_dtype_name(t->dtype), cg_shape_str(t, st, sizeof st));
    if (t->grad != g) cg_tensor_free(t->grad);
    t->grad = g;
    return CG_OK;
}

cg_status cg_set_grad_hook(cg_tensor *leaf, cg_grad_hook fn, void *user) {
    cg_status s = cgi_check_input(NULL, "cg_set_grad_hook", 0, leaf);
    if (s != CG_OK) return s;
    if (leaf->node)
        return cgi_error(leaf->ctx, CG_ERR_STATE,
                         "cg_set_grad_hook: only a leaf has a .grad to hook (this tensor was "
                         "made by cg_%s)",
                         leaf->node->op->name);
    if (!fn) {
        if (!leaf->ctx) free(leaf->hook);
        leaf->hook = NULL;
        return CG_OK;
    }
    if (!leaf->hook) leaf->hook = cgi_alloc(leaf->ctx, "cg_set_grad_hook", sizeof *leaf->hook);
    if (!leaf->hook) return CG_ERR_NOMEM;
    *leaf->hook = (cgi_grad_hook){fn, user};
    return CG_OK;
}

void cg_zero_grad(cg_tensor *t) {
    if (cgi_usable(t, "cg_zero_grad") && t->grad) cg_fill_(t->grad, 0.0);
}

cg_tensor *cg_detach(cg_ctx *ctx, const cg_tensor *t) {
    CGI_NULL_CHECK(t, "cg_detach");
    return cgi_view_of(ctx, "cg_detach", t, t->ndim, t->shape, t->strides, t->offset);
}

/* ---- grad mode --------------------------------------------------------------- */
cg_status cg_no_grad_push(cg_ctx *ctx) {
    if (!ctx) return cgi_error(NULL, CG_ERR_ARG, "cg_no_grad_push: ctx is NULL");
    ctx->no_grad_depth++;
    return CG_OK;
}
cg_status cg_no_grad_pop(cg_ctx *ctx) {
    if (!ctx) return cgi_error(NULL, CG_ERR_ARG, "cg_no_grad_pop: ctx is NULL");
    if (ctx->no_grad_depth == 0)
        return cgi_error(ctx, CG_ERR_STATE, "cg_no_grad_pop: no cg_no_grad_push to undo");
    ctx->no_grad_depth--;
    return CG_OK;
}
bool cg_is_grad_enabled(const cg_ctx *ctx) { return ctx && ctx->no_grad_depth == 0; }
