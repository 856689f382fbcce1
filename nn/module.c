/* Modules: the public interface for making one (kind, data, parameters,
 * buffers, children), ownership and sharing, the tables of state_dict names
 * and unique parameters, the flat parameter and gradient buffers of a root,
 * forward and predict. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- making a module ---------------------------------------------------------------- */
cg_module *cgi_module_new(const cg_module_kind *kind, void *data, const char *fn) {
    if (!kind || !kind->name || !kind->forward) {
        cgi_error(NULL, CG_ERR_ARG, "%s: the kind %s", fn,
                  !kind ? "is NULL" : "needs a name and a forward function");
        if (kind && kind->free_data && data) kind->free_data(data);
        return NULL;
    }
    cg_module *m = calloc(1, sizeof *m);
    if (!m) {
        if (kind->free_data && data) kind->free_data(data);
        cgi_error(NULL, CG_ERR_NOMEM, "%s: %s: out of memory", fn, kind->name);
        return NULL;
    }
    *m = (cg_module){.kind = kind, .data = data, .training = true, .dirty = true};
    return m;
}

cg_module *cgi_module_new_copy(const cg_module_kind *kind, const void *data, size_t size,
                               const char *fn) {
    void *copy = malloc(size);
    if (!copy) {
        cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        return NULL;
    }
    memcpy(copy, data, size);
    return cgi_module_new(kind, copy, fn);
}

cg_module *cg_module_new(const cg_module_kind *kind, void *data) {
    return cgi_module_new(kind, data, "cg_module_new");
}

/* The accessors given NULL return their sentinel and record "fn: module is
 * NULL" (unless a failed constructor's error made the NULL: kept). */
static bool have(const cg_module *m, const char *fn) {
    return m || (cgi_null_arg(NULL, fn, "module"), false);
}

void *cg_module_data(const cg_module *m) { return have(m, "cg_module_data") ? m->data : NULL; }
const cg_module_kind *cg_module_kind_of(const cg_module *m) {
    return have(m, "cg_module_kind_of") ? m->kind : NULL;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

/* Names are identifiers or indices: no dots (they separate the path) and
 * short enough for any message. */
static bool valid_name(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_';
        if (!ok) return false;
    }
    return true;
}

static int slot_index(const cg_module *m, const char *name) {
    for (int i = 0; i < m->nslots; i++)
        if (!strcmp(m->slots[i].name, name)) return i;
    return -1;
}

static int child_index(const cg_module *m, const char *name) {
    for (int i = 0; i < m->nchildren; i++)
        if (!strcmp(m->children[i].name, name)) return i;
    return -1;
}

/* A free name for m's next slot or child, or an error naming fn. */
static cg_status check_new_name(const cg_module *m, const char *name, const char *fn) {
    if (!valid_name(name))
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: %s: name \"%s\" must be 1 to 64 letters, "
                         "digits or _",
                         fn, m->kind->name, name ? name : "(NULL)");
    if (slot_index(m, name) >= 0 || child_index(m, name) >= 0)
        return cgi_error(NULL, CG_ERR_ARG, "%s: %s already has a member named \"%s\"", fn,
                         m->kind->name, name);
    return CG_OK;
}

/* Grows a list of `size`-byte items to hold n + 1. */
static bool grow(void **items, int *cap, int n, size_t size) {
    if (n < *cap) return true;
    int next = *cap ? 2 * *cap : 4;
    void *p = realloc(*items, (size_t)next * size);
    if (!p) return false;
    *items = p;
    *cap = next;
    return true;
}

static cg_status check_tensor(const cg_module *m, const char *name, const cg_tensor *t,
                              bool is_param, const char *fn) {
    if (t->ctx || t->node)
        return cgi_error(NULL, CG_ERR_STATE,
                         "%s: %s.%s: the tensor must be a caller-owned "
                         "leaf (made with ctx NULL)",
                         fn, m->kind->name, name);
    if (is_param && !cgi_is_float(t->dtype))
        return cgi_error(NULL, CG_ERR_DTYPE,
                         "%s: %s.%s: a parameter must be f32 or f64, "
                         "not %s",
                         fn, m->kind->name, name, cg_dtype_name(t->dtype));
    return CG_OK;
}

cg_tensor *cgi_module_add(cg_module *m, const char *name, cg_tensor *t, bool is_param,
                          const char *fn) {
    if (!t || !m) { /* a failed constructor made the NULL: keep its error */
        cgi_null_arg(NULL, fn, t ? "module" : "tensor");
        cg_tensor_free(t);
        return NULL;
    }
    cg_status st = check_new_name(m, name, fn);
    if (st == CG_OK) st = check_tensor(m, name, t, is_param, fn);
    for (int i = 0; st == CG_OK && i < m->nslots; i++)
        if (m->slots[i].t == t) /* taking it twice would free it twice */
            return cgi_error(NULL, CG_ERR_ARG,
                             "%s: %s.%s: the tensor is already %s.%s (share "
                             "a parameter with cg_module_tie)",
                             fn, m->kind->name, name, m->kind->name, m->slots[i].name),
                   NULL;
    if (st == CG_OK && is_param) st = cg_set_requires_grad(t, true);
    char *copy = st == CG_OK ? dup_str(name) : NULL;
    if (copy && !grow((void **)&m->slots, &m->slots_cap, m->nslots, sizeof *m->slots)) {
        free(copy);
        copy = NULL;
    }
    if (!copy) {
        if (st == CG_OK) cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        cg_tensor_free(t);
        return NULL;
    }
    m->slots[m->nslots++] = (cgi_slot){copy, t, is_param, true};
    m->dirty = true;
    return t;
}

cg_tensor *cg_module_add_param(cg_module *m, const char *name, cg_tensor *t) {
    return cgi_module_add(m, name, t, true, "cg_module_add_param");
}

cg_tensor *cg_module_add_buffer(cg_module *m, const char *name, cg_tensor *t) {
    return cgi_module_add(m, name, t, false, "cg_module_add_buffer");
}

cg_tensor *cg_module_get(const cg_module *m, const char *name) {
    int i = m && name ? slot_index(m, name) : -1;
    if (i >= 0) return m->slots[i].t;
    cgi_error(NULL, CG_ERR_ARG, "cg_module_get: %s has no parameter or buffer \"%s\"",
              m ? m->kind->name : "NULL module", name ? name : "(NULL)");
    return NULL;
}

/* Whether `m` is `root` or below it. */
static bool contains(const cg_module *root, const cg_module *m) {
    if (root == m) return true;
    for (int i = 0; i < root->nchildren; i++)
        if (contains(root->children[i].m, m)) return true;
    return false;
}

static void module_release(cg_module *m);

/* Gives up the reference a failed adoption would have taken: a module no
 * container held was the caller's and goes, as promised. */
static cg_status adopt_failed(cg_module *child, cg_status st) {
    if (child && child->parents == 0) module_release(child);
    return st;
}

cg_status cgi_module_adopt(cg_module *m, const char *name, cg_module *child, const char *fn) {
    char index[24];
    if (!child) return cgi_null_arg(NULL, fn, "child"); /* keeps its constructor's error */
    if (!m) return adopt_failed(child, cgi_null_arg(NULL, fn, "module"));
    if (!name) {
        snprintf(index, sizeof index, "%d", m->nchildren);
        name = index;
    }
    if (contains(child, m)) /* child is in use above m: it stays the caller's */
        return cgi_error(NULL, CG_ERR_ARG, "%s: %s \"%s\" would contain itself", fn,
                         m->kind->name, name);
    cg_status st = check_new_name(m, name, fn);
    if (st != CG_OK) return adopt_failed(child, st);
    char *copy = dup_str(name);
    if (!copy ||
        !grow((void **)&m->children, &m->children_cap, m->nchildren, sizeof *m->children)) {
        free(copy);
        return adopt_failed(child, cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn));
    }
    m->children[m->nchildren++] = (cgi_child){copy, child};
    child->parents++;
    m->dirty = true;
    return CG_OK;
}

cg_module *cg_module_add_child(cg_module *m, const char *name, cg_module *child) {
    return cgi_module_adopt(m, name, child, "cg_module_add_child") == CG_OK ? child : NULL;
}

cg_status cg_module_tie(cg_module *m, const char *name, cg_tensor *param) {
    const char *fn = "cg_module_tie";
    if (!m) return cgi_error(NULL, CG_ERR_ARG, "%s: module is NULL", fn);
    if (!param)
        return cgi_null_arg(NULL, fn, "tensor"), CG_ERR_ARG; /* keeps its maker's error */
    cg_status st = check_tensor(m, name ? name : "?", param, true, fn);
    if (st == CG_OK && !param->requires_grad)
        st = cgi_error(NULL, CG_ERR_STATE,
                       "%s: %s.%s: the tensor is no parameter (it "
                       "requires no gradient)",
                       fn, m->kind->name, name ? name : "?");
    if (st != CG_OK) return st;
    int i = name ? slot_index(m, name) : -1;
    if (i < 0) { /* a new parameter name, borrowed */
        st = check_new_name(m, name, fn);
        char *copy = st == CG_OK ? dup_str(name) : NULL;
        if (copy && !grow((void **)&m->slots, &m->slots_cap, m->nslots, sizeof *m->slots)) {
            free(copy);
            copy = NULL;
        }
        if (!copy)
            return st != CG_OK ? st : cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
        m->slots[m->nslots++] = (cgi_slot){copy, param, true, false};
    } else {
        if (!m->slots[i].is_param)
            return cgi_error(NULL, CG_ERR_ARG, "%s: %s.%s is a buffer, not a parameter", fn,
                             m->kind->name, name);
        if (m->slots[i].owned && m->slots[i].t != param) cg_tensor_free(m->slots[i].t);
        m->slots[i].t = param;
        m->slots[i].owned = false;
    }
    m->dirty = true;
    return CG_OK;
}

/* ---- freeing ------------------------------------------------------------------------- */
static void drop_tables(cg_module *m) {
    for (int i = 0; i < m->nentries; i++) free(m->entries[i].name);
    free(m->entries);
    free(m->params);
    m->entries = NULL;
    m->params = NULL;
    m->nentries = m->nparams = 0;
    m->numel = 0;
    m->built = false;
}

static void drop_flat(cg_module *m) {
    cg_tensor_free(m->flat);
    cg_tensor_free(m->flat_grad);
    m->flat = m->flat_grad = NULL;
}

/* Frees m unconditionally: its children lose one holder each. */
static void module_release(cg_module *m) {
    for (int i = 0; i < m->nchildren; i++) {
        cg_module *c = m->children[i].m;
        if (--c->parents == 0) module_release(c);
        free(m->children[i].name);
    }
    for (int i = 0; i < m->nslots; i++) {
        if (m->slots[i].owned) cg_tensor_free(m->slots[i].t);
        free(m->slots[i].name);
    }
    free(m->children);
    free(m->slots);
    drop_tables(m);
    drop_flat(m);
    if (m->kind->free_data && m->data) m->kind->free_data(m->data);
    free(m);
}

cg_status cg_module_free(cg_module *m) {
    if (!m) return CG_OK;
    if (m->parents > 0)
        return cgi_error(NULL, CG_ERR_STATE,
                         "cg_module_free: this %s is held by a "
                         "container and is freed with it: free the container",
                         m->kind->name);
    module_release(m);
    return CG_OK;
}

/* A failure inside a constructor (cg_zeros refusing an overflowing size, an
 * initialiser, out of memory) is named by the constructor the user called:
 * "cg_nn_linear: cg_zeros: [2,...]: too many elements". */
void cgi_name_failure(const char *fn) {
    size_t n = strlen(fn);
    const char *msg = cg_last_error();
    if (!strncmp(msg, fn, n) && msg[n] == ':') return;
    char inner[512];
    snprintf(inner, sizeof inner, "%s", msg);
    cgi_error(NULL, cg_last_status() != CG_OK ? cg_last_status() : CG_ERR_STATE, "%s: %s", fn,
              inner);
}

cg_module *cgi_module_done(cg_module *m, bool ok, const char *fn) {
    if (m && ok && cgi_module_sync(m, fn) == CG_OK) return m;
    if (m) module_release(m);
    cgi_name_failure(fn);
    return NULL;
}

/* ---- tables: state_dict names and unique parameters ----------------------------------- */
/* Whether m's tables are out of date: never built, or a structural change
 * anywhere below since (a root's sync clears the flags of its tree). */
static bool tree_dirty(const cg_module *m) {
    if (m->dirty) return true;
    for (int i = 0; i < m->nchildren; i++)
        if (tree_dirty(m->children[i].m)) return true;
    return false;
}

typedef struct builder {
    cg_module *m;
    int cap;
    cg_status st;
    const char *fn;
} builder;

static void add_entry(builder *b, const char *prefix, const cgi_slot *s) {
    cg_module *m = b->m;
    if (b->st != CG_OK) return;
    size_t n = strlen(prefix) + strlen(s->name) + 1;
    char *name = malloc(n);
    if (!name || !grow((void **)&m->entries, &b->cap, m->nentries, sizeof *m->entries)) {
        free(name);
        b->st = cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", b->fn);
        return;
    }
    snprintf(name, n, "%s%s", prefix, s->name);
    m->entries[m->nentries++] = (cgi_entry){name, s->t, s->is_param};
}

/* Depth first, own slots before children: PyTorch's state_dict order. */
static void collect(builder *b, const cg_module *m, const char *prefix) {
    for (int i = 0; i < m->nslots; i++) add_entry(b, prefix, &m->slots[i]);
    for (int c = 0; c < m->nchildren && b->st == CG_OK; c++) {
        size_t n = strlen(prefix) + strlen(m->children[c].name) + 2;
        char *sub = malloc(n);
        if (!sub) {
            b->st = cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", b->fn);
            return;
        }
        snprintf(sub, n, "%s%s.", prefix, m->children[c].name);
        collect(b, m->children[c].m, sub);
        free(sub);
    }
}

/* The parameters, each tensor once (a tied or shared one under its first
 * name). Quadratic, but only when the tree changes. */
static cg_status index_params(cg_module *m, const char *fn) {
    m->params = malloc(sizeof *m->params * (size_t)(m->nentries ? m->nentries : 1));
    if (!m->params) return cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
    for (int i = 0; i < m->nentries; i++) {
        if (!m->entries[i].is_param) continue;
        bool seen = false;
        for (int k = 0; k < m->nparams && !seen; k++)
            seen = m->entries[m->params[k]].t == m->entries[i].t;
        if (seen) continue;
        m->params[m->nparams++] = i;
        m->numel += cg_numel(m->entries[i].t);
    }
    return CG_OK;
}

static cg_status build_tables(cg_module *m, const char *fn) {
    drop_tables(m);
    builder b = {m, 0, CG_OK, fn};
    collect(&b, m, "");
    cg_status st = b.st == CG_OK ? index_params(m, fn) : b.st;
    if (st != CG_OK) {
        drop_tables(m);
        return st;
    }
    m->built = true;
    return CG_OK;
}

/* After a root's sync: the tree is clean, and modules below rebuild their
 * own (relative) tables on demand; their flat buffers are no longer used. */
static void settle_below(cg_module *m, bool root) {
    m->dirty = false;
    if (!root) {
        drop_tables(m);
        drop_flat(m);
    }
    for (int i = 0; i < m->nchildren; i++) settle_below(m->children[i].m, false);
}

/* ---- the flat buffers of a root ------------------------------------------------------- */
static cg_tensor *param_at(const cg_module *m, int k) { return m->entries[m->params[k]].t; }

/* One dtype for all parameters, or none gathered. */
static bool one_dtype(const cg_module *m) {
    for (int k = 1; k < m->nparams; k++)
        if (param_at(m, k)->dtype != param_at(m, 0)->dtype) return false;
    return m->nparams > 0;
}

/* Parameter k's gradient becomes the slice of flat_grad at off, keeping
 * what it held. */
static cg_status rebind_grad(cg_tensor *p, const cg_tensor *flat_grad, int64_t off,
                             const char *fn) {
    cg_tensor *g = cgi_slice_of(flat_grad, off, p->ndim, p->shape, fn);
    if (!g) return cg_last_status();
    cg_status st = p->grad ? cg_copy_(g, p->grad) : CG_OK;
    if (st == CG_OK) st = cg_set_grad(p, g);
    if (st != CG_OK) cg_tensor_free(g);
    return st;
}

static cg_status gather(cg_module *m, const char *fn) {
    int64_t n = m->numel;
    cg_dtype dt = param_at(m, 0)->dtype;
    cg_tensor *flat = cg_zeros(NULL, dt, 1, &n), *grad = cg_zeros(NULL, dt, 1, &n);
    cg_status st = flat && grad ? CG_OK : cg_last_status();
    int64_t off = 0;
    for (int k = 0; st == CG_OK && k < m->nparams; k++) {
        cg_tensor *p = param_at(m, k);
        st = cgi_rebind(p, flat, off, fn);
        if (st == CG_OK) st = rebind_grad(p, grad, off, fn);
        off += cg_numel(p);
    }
    drop_flat(m);
    if (st != CG_OK) {
        cg_tensor_free(flat);
        cg_tensor_free(grad);
        return st;
    }
    m->flat = flat;
    m->flat_grad = grad;
    return CG_OK;
}

cg_status cgi_module_sync(const cg_module *cm, const char *fn) {
    cg_module *m = (cg_module *)cm; /* logically const: values never change */
    if (m->built && !tree_dirty(m)) return CG_OK;
    cg_status st = build_tables(m, fn);
    if (st != CG_OK || m->parents > 0) return st;
    if (one_dtype(m))
        st = gather(m, fn);
    else
        drop_flat(m);
    if (st == CG_OK) settle_below(m, true);
    return st;
}

/* ---- reading the tables ---------------------------------------------------------------- */
/* m synced for an accessor, or NULL (error recorded) when m is NULL or the
 * tables cannot be built. */
static const cg_module *synced(const cg_module *m, const char *fn) {
    if (!m) {
        cgi_error(NULL, CG_ERR_ARG, "%s: module is NULL", fn);
        return NULL;
    }
    return cgi_module_sync(m, fn) == CG_OK ? m : NULL;
}

int cg_module_nstate(const cg_module *m) {
    return synced(m, "cg_module_nstate") ? m->nentries : 0;
}

cg_tensor *cg_module_state(const cg_module *m, int i, const char **name, bool *is_param) {
    if (!synced(m, "cg_module_state")) return NULL;
    if (i < 0 || i >= m->nentries) {
        cgi_error(NULL, CG_ERR_INDEX, "cg_module_state: index %d out of range [0, %d)", i,
                  m->nentries);
        return NULL;
    }
    if (name) *name = m->entries[i].name;
    if (is_param) *is_param = m->entries[i].is_param;
    return m->entries[i].t;
}

cg_tensor *cg_module_find(const cg_module *m, const char *name) {
    if (!synced(m, "cg_module_find")) return NULL;
    if (!name) {
        cgi_error(NULL, CG_ERR_ARG, "cg_module_find: name is NULL");
        return NULL;
    }
    for (int i = 0; i < m->nentries; i++)
        if (!strcmp(m->entries[i].name, name)) return m->entries[i].t;
    cgi_error(NULL, CG_ERR_ARG, "cg_module_find: %s has no state named \"%s\"", m->kind->name,
              name);
    return NULL;
}

int cg_module_nparams(const cg_module *m) {
    return synced(m, "cg_module_nparams") ? m->nparams : 0;
}

cg_tensor *cg_module_param(const cg_module *m, int i, const char **name) {
    if (!synced(m, "cg_module_param")) return NULL;
    if (i < 0 || i >= m->nparams) {
        cgi_error(NULL, CG_ERR_INDEX, "cg_module_param: index %d out of range [0, %d)", i,
                  m->nparams);
        return NULL;
    }
    if (name) *name = m->entries[m->params[i]].name;
    return param_at(m, i);
}

int64_t cg_module_numel(const cg_module *m) {
    return synced(m, "cg_module_numel") ? m->numel : 0;
}

static cg_tensor *flat_of(const cg_module *m, bool grads, const char *fn) {
    if (!synced(m, fn)) return NULL;
    cg_tensor *t = grads ? m->flat_grad : m->flat;
    if (!t)
        cgi_error(NULL, CG_ERR_STATE, "%s: this %s has no flat buffers (%s)", fn, m->kind->name,
                  m->parents   ? "it is held by a container: ask the root"
                  : m->nparams ? "its parameters differ in dtype"
                               : "it has no parameters");
    return t;
}

cg_tensor *cg_module_flat_params(const cg_module *m) {
    return flat_of(m, false, "cg_module_flat_params");
}

cg_tensor *cg_module_flat_grads(const cg_module *m) {
    return flat_of(m, true, "cg_module_flat_grads");
}

void cg_module_zero_grad(cg_module *m) {
    if (!m || cgi_module_sync(m, "cg_module_zero_grad") != CG_OK) return;
    if (m->flat_grad) {
        memset(cg_data(m->flat_grad), 0, (size_t)m->numel * cg_dtype_size(m->flat_grad->dtype));
        return;
    }
    for (int k = 0; k < m->nparams; k++) cg_zero_grad(param_at(m, k));
}

/* ---- children --------------------------------------------------------------------------- */
int cg_module_nchildren(const cg_module *m) {
    return have(m, "cg_module_nchildren") ? m->nchildren : 0;
}

cg_module *cg_module_child(const cg_module *m, int i, const char **name) {
    if (!m || i < 0 || i >= m->nchildren) {
        cgi_error(NULL, m ? CG_ERR_INDEX : CG_ERR_ARG, "cg_module_child: %s",
                  !m ? "module is NULL" : "index out of range");
        return NULL;
    }
    if (name) *name = m->children[i].name;
    return m->children[i].m;
}

cg_module *cg_module_find_child(const cg_module *m, const char *path) {
    const char *fn = "cg_module_find_child";
    if (!m || !path) {
        cgi_error(NULL, CG_ERR_ARG, "%s: %s is NULL", fn, m ? "path" : "module");
        return NULL;
    }
    const cg_module *at = m;
    for (const char *p = path; at;) {
        size_t len = strcspn(p, ".");
        const cg_module *next = NULL;
        for (int i = 0; i < at->nchildren && !next; i++)
            if (strlen(at->children[i].name) == len && !strncmp(at->children[i].name, p, len))
                next = at->children[i].m;
        at = next;
        if (!p[len]) break;
        p += len + 1;
    }
    if (!at)
        cgi_error(NULL, CG_ERR_ARG, "%s: %s has no module \"%s\"", fn, m->kind->name, path);
    return (cg_module *)at;
}

/* ---- running --------------------------------------------------------------------------- */
/* Nesting of cg_module_forward on this thread: the outermost call names
 * itself and the module in a failing forward's message. */
static _Thread_local int forward_depth;

static bool needs_graph(const cg_module *m, const cg_tensor *x) {
    if (cg_requires_grad(x)) return true;
    for (int i = 0; i < m->nslots; i++)
        if (m->slots[i].is_param && cg_requires_grad(m->slots[i].t)) return true;
    for (int i = 0; i < m->nchildren; i++)
        if (needs_graph(m->children[i].m, NULL)) return true;
    return false;
}

/* Runs m in a scratch context without a graph; the result is copied out. */
static cg_tensor *forward_heap(cg_module *m, const cg_tensor *x) {
    cg_ctx *tmp = cg_ctx_new();
    if (!tmp) return NULL;
    cg_no_grad_push(tmp);
    cg_tensor *y = m->kind->forward(tmp, m, x);
    cg_tensor *out = y ? cg_clone(NULL, y) : NULL;
    cg_ctx_free(tmp);
    return out;
}

/* The outermost failing forward names the function called and the module. */
static cg_tensor *forward_failed(cg_ctx *ctx, const cg_module *m, const char *fn) {
    char inner[CGI_MSG_MAX];
    cg_status st = cg_last_status();
    if (st == CG_OK) /* a user forward that returned NULL and said nothing */
        return cgi_error(ctx, CG_ERR_STATE,
                         "%s: %s: its forward returned NULL without an "
                         "error",
                         fn, m->kind->name),
               NULL;
    snprintf(inner, sizeof inner, "%s", cg_last_error());
    cgi_error(ctx, st, "%s: %s: %s", fn, m->kind->name, inner);
    return NULL;
}

/* m's forward on x: in ctx, or in a scratch context copied out when ctx is
 * NULL. fn names the public function in errors. */
static cg_tensor *run_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x, const char *fn) {
    forward_depth++;
    cg_tensor *y = ctx ? m->kind->forward(ctx, m, x) : forward_heap(m, x);
    forward_depth--;
    return !y && forward_depth == 0 ? forward_failed(ctx, m, fn) : y;
}

/* m and x given and x live; else the error recorded. */
static bool args_ok(cg_ctx *ctx, const cg_module *m, const cg_tensor *x, const char *fn) {
    if (!m) return cgi_error(ctx, CG_ERR_ARG, "%s: module is NULL", fn), false;
    if (!x) return cgi_null_arg(ctx, fn, "tensor"), false;
    return cgi_check_input(ctx, fn, -1, x) == CG_OK;
}

cg_tensor *cg_module_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    const char *fn = "cg_module_forward";
    if (!args_ok(ctx, m, x, fn)) return NULL;
    if (!ctx && needs_graph(m, x)) {
        cgi_error(NULL, CG_ERR_STATE,
                  "%s: %s: the input or a parameter requires a gradient, "
                  "so the result must be made in a context (got NULL); cg_module_predict "
                  "runs without a graph",
                  fn, m->kind->name);
        return NULL;
    }
    return run_forward(ctx, m, x, fn);
}

cg_tensor *cg_module_predict(cg_ctx *ctx, cg_module *m, const cg_tensor *x) {
    if (!args_ok(ctx, m, x, "cg_module_predict")) return NULL;
    bool training = m->training;
    cg_module_train(m, false);
    if (ctx) cg_no_grad_push(ctx);
    cg_tensor *y = run_forward(ctx, m, x, "cg_module_predict");
    if (ctx) cg_no_grad_pop(ctx);
    cg_module_train(m, training);
    return y;
}

void cg_module_train(cg_module *m, bool training) {
    if (!m) return;
    m->training = training;
    for (int i = 0; i < m->nchildren; i++) cg_module_train(m->children[i].m, training);
}

bool cg_module_is_training(const cg_module *m) {
    return have(m, "cg_module_is_training") && m->training;
}
const char *cg_module_name(const cg_module *m) {
    return have(m, "cg_module_name") ? m->kind->name : "NULL";
}

/* ---- printing ---------------------------------------------------------------------------- */
/* The kind's description, or its own tensors: "weight: [4,3], bias: [4]". */
static void describe(const cg_module *m, char *buf, size_t size) {
    buf[0] = 0;
    if (m->kind->describe) {
        m->kind->describe(m, buf, size);
        return;
    }
    size_t len = 0;
    char shape[96];
    for (int i = 0; i < m->nslots && len < size; i++)
        len +=
            (size_t)snprintf(buf + len, size - len, "%s%s: %s", i ? ", " : "", m->slots[i].name,
                             cg_shape_str(m->slots[i].t, shape, sizeof shape));
}

static void print_tree(FILE *f, const cg_module *m, const char *label, int indent) {
    char desc[256];
    describe(m, desc, sizeof desc);
    if (m->nchildren == 0) {
        fprintf(f, "%*s%s%s(%s)\n", indent, "", label, m->kind->name, desc);
        return;
    }
    /* with children, as PyTorch: the description on a line of its own */
    fprintf(f, "%*s%s%s(\n", indent, "", label, m->kind->name);
    if (desc[0]) fprintf(f, "%*s%s\n", indent + 2, "", desc);
    for (int i = 0; i < m->nchildren; i++) {
        char sub[96];
        snprintf(sub, sizeof sub, "(%s): ", m->children[i].name);
        print_tree(f, m->children[i].m, sub, indent + 2);
    }
    fprintf(f, "%*s)\n", indent, "");
}

static cg_status module_fprint(FILE *f, const cg_module *m, const char *fn) {
    if (!f || !synced(m, fn))
        return f ? cg_last_status() : cgi_error(NULL, CG_ERR_ARG, "%s: file is NULL", fn);
    print_tree(f, m, "", 0);
    int64_t trainable = 0;
    for (int k = 0; k < m->nparams; k++)
        if (cg_requires_grad(param_at(m, k))) trainable += cg_numel(param_at(m, k));
    fprintf(f, "Total params: %lld\nTrainable params: %lld\n", (long long)m->numel,
            (long long)trainable);
    return ferror(f) ? cgi_error(NULL, CG_ERR_IO, "%s: write failed", fn) : CG_OK;
}

cg_status cg_module_fprint(FILE *f, const cg_module *m) {
    return module_fprint(f, m, "cg_module_fprint");
}
cg_status cg_module_print(const cg_module *m) {
    return module_fprint(stdout, m, "cg_module_print");
}
