/* Modules: the tree, its state_dict names, train/eval, and the flat
 * parameter and gradient buffers that make an optimizer step one loop. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cg_module *cgi_module_new(const cgi_module_kind *kind, cg_dtype dt) {
    cg_module *m = calloc(1, sizeof *m);
    if (!m) {
        cgi_error(NULL, CG_ERR_NOMEM, "cg_nn_%s: out of memory", kind->name);
        return NULL;
    }
    m->kind = kind;
    m->dtype = dt;
    m->training = true;
    return m;
}

cg_tensor *cgi_module_add(cg_module *m, const char *name, int ndim, const int64_t *shape,
                          bool is_param, cg_dtype dt) {
    if (m->nslots == CGI_MAX_SLOTS) {
        cgi_error(NULL, CG_ERR_STATE, "cg_module: too many state tensors");
        return NULL;
    }
    cg_tensor *t = cg_zeros(NULL, dt, ndim, shape);
    if (t && is_param && cg_set_requires_grad(t, true) != CG_OK) {
        cg_tensor_free(t);
        t = NULL;
    }
    if (t) m->slots[m->nslots++] = (cgi_slot){name, t, is_param};
    return t;
}

/* Drops the root-only parts: flat buffers, their views and the name table. */
static void release_root(cg_module *m) {
    cg_tensor_free(m->flat_view);
    cg_tensor_free(m->flat_grad_view);
    free(m->flat);
    free(m->flat_grad);
    free(m->entries);
    m->flat = m->flat_grad = NULL;
    m->flat_view = m->flat_grad_view = NULL;
    m->entries = NULL;
    m->nentries = 0;
    m->flat_numel = 0;
}

void cg_module_free(cg_module *m) {
    if (!m) return;
    for (int i = 0; i < m->nchildren; i++) cg_module_free(m->children[i]);
    free(m->children);
    for (int i = 0; i < m->nslots; i++) cg_tensor_free(m->slots[i].t);
    release_root(m);
    free(m);
}

/* ---- walking the tree in state_dict order ------------------------------------ */
typedef void (*visit_fn)(void *arg, const char *name, cgi_slot *slot);

static void walk(cg_module *m, const char *prefix, visit_fn fn, void *arg) {
    char name[96];
    for (int i = 0; i < m->nslots; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, m->slots[i].name);
        fn(arg, name, &m->slots[i]);
    }
    for (int c = 0; c < m->nchildren; c++) {
        snprintf(name, sizeof name, "%s%d.", prefix, c);
        walk(m->children[c], name, fn, arg);
    }
}

typedef struct census {
    int64_t numel;
    int nentries;
    bool mixed;
    cg_dtype dt;
} census;

static void count(void *arg, const char *name, cgi_slot *slot) {
    census *c = arg;
    (void)name;
    c->nentries++;
    if (!slot->is_param) return;
    if (c->numel > 0 && slot->t->dtype != c->dt) c->mixed = true;
    c->dt = slot->t->dtype;
    c->numel += cg_numel(slot->t);
}

/* Moving parameters into the new flat buffers, one slot at a time. */
typedef struct mover {
    cg_module *root;
    int64_t off;
    cg_status status;
} mover;

static cg_tensor *flat_view(void *base, cg_dtype dt, int64_t off, const cg_tensor *like) {
    char *p = (char *)base + (size_t)off * cg_dtype_size(dt);
    return cg_wrap(NULL, dt, cg_ndim(like), cg_shape(like), p);
}

static void move(void *arg, const char *name, cgi_slot *slot) {
    mover *mv = arg;
    cg_module *r = mv->root;
    r->entries[r->nentries++] = (cgi_entry){"", slot->t, slot->is_param};
    snprintf(r->entries[r->nentries - 1].name, sizeof r->entries[0].name, "%s", name);
    if (!slot->is_param || mv->status != CG_OK) return;
    cg_tensor *p = flat_view(r->flat, r->dtype, mv->off, slot->t);
    cg_tensor *g = flat_view(r->flat_grad, r->dtype, mv->off, slot->t);
    if (!p || !g || cg_copy_(p, slot->t) != CG_OK || cg_set_requires_grad(p, true) != CG_OK ||
        cg_set_grad(p, g) != CG_OK) {
        cg_tensor_free(p);
        mv->status = CG_ERR_NOMEM;
        return;
    }
    mv->off += cg_numel(p);
    cg_tensor_free(slot->t); /* its old buffer is released below */
    slot->t = p;
    r->entries[r->nentries - 1].t = p;
}

static void release_children(cg_module *m) {
    for (int c = 0; c < m->nchildren; c++) {
        release_children(m->children[c]);
        release_root(m->children[c]);
    }
}

static void *alloc_flat(int64_t numel, cg_dtype dt) {
    size_t n = ((size_t)numel * cg_dtype_size(dt) + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n ? n : 64);
    if (p) memset(p, 0, n ? n : 64);
    return p;
}

cg_status cgi_module_finish(cg_module *m, const char *op) {
    census c = {0, 0, false, m->dtype};
    walk(m, "", count, &c);
    if (c.mixed)
        return cgi_error(NULL, CG_ERR_DTYPE, "%s: parameters of different dtypes in one "
                         "model", op);
    if (c.numel > 0) m->dtype = c.dt;
    release_root(m);
    m->flat = alloc_flat(c.numel, m->dtype);
    m->flat_grad = alloc_flat(c.numel, m->dtype);
    m->entries = calloc((size_t)(c.nentries ? c.nentries : 1), sizeof *m->entries);
    if (!m->flat || !m->flat_grad || !m->entries)
        return cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", op);
    m->flat_numel = c.numel;
    mover mv = {m, 0, CG_OK};
    walk(m, "", move, &mv);
    release_children(m);
    m->flat_view = cg_wrap(NULL, m->dtype, 1, &m->flat_numel, m->flat);
    m->flat_grad_view = cg_wrap(NULL, m->dtype, 1, &m->flat_numel, m->flat_grad);
    if (mv.status != CG_OK || !m->flat_view || !m->flat_grad_view)
        return cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", op);
    return CG_OK;
}

cg_module *cgi_module_done(cg_module *m, bool ok, const char *op) {
    if (m && ok && cgi_module_finish(m, op) == CG_OK) return m;
    cg_module_free(m);
    return NULL;
}

/* ---- the public face ---------------------------------------------------------------- */
cg_tensor *cg_module_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    if (!m) {
        cgi_error(ctx, CG_ERR_ARG, "cg_module_forward: module is NULL");
        return NULL;
    }
    CGI_NULL_CHECK(x, "cg_module_forward");
    return m->kind->forward(ctx, m, x);
}

void cg_module_train(cg_module *m, bool training) {
    if (!m) return;
    m->training = training;
    for (int i = 0; i < m->nchildren; i++) cg_module_train(m->children[i], training);
}

bool cg_module_is_training(const cg_module *m) { return m && m->training; }
const char *cg_module_name(const cg_module *m) { return m ? m->kind->name : "NULL"; }
int cg_module_nstate(const cg_module *m) { return m ? m->nentries : 0; }
int64_t cg_module_numel(const cg_module *m) { return m ? m->flat_numel : 0; }
cg_tensor *cg_module_flat_params(const cg_module *m) { return m ? m->flat_view : NULL; }
cg_tensor *cg_module_flat_grads(const cg_module *m) { return m ? m->flat_grad_view : NULL; }

cg_tensor *cg_module_state(const cg_module *m, int i, const char **name, bool *is_param) {
    if (!m || i < 0 || i >= m->nentries) return NULL;
    if (name) *name = m->entries[i].name;
    if (is_param) *is_param = m->entries[i].is_param;
    return m->entries[i].t;
}

cg_tensor *cg_module_find(const cg_module *m, const char *name) {
    for (int i = 0; m && name && i < m->nentries; i++)
        if (!strcmp(m->entries[i].name, name)) return m->entries[i].t;
    return NULL;
}

int cg_module_nparams(const cg_module *m) {
    int n = 0;
    for (int i = 0; m && i < m->nentries; i++) n += m->entries[i].is_param;
    return n;
}

cg_tensor *cg_module_param(const cg_module *m, int i, const char **name) {
    for (int k = 0; m && k < m->nentries; k++)
        if (m->entries[k].is_param && i-- == 0) {
            if (name) *name = m->entries[k].name;
            return m->entries[k].t;
        }
    return NULL;
}

void cg_module_zero_grad(cg_module *m) {
    if (m && m->flat_grad)
        memset(m->flat_grad, 0, (size_t)m->flat_numel * cg_dtype_size(m->dtype));
}
