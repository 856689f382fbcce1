/* Library-internal declarations for nn/ (not installed).
 *
 * A module is a kind (a static const descriptor: name and forward), its own
 * state slots (parameters, then buffers, in PyTorch's registration order),
 * its children, and a few per-kind numbers. Layer constructors add slots with
 * cgi_module_add, fill them, then call cgi_module_finish, which moves every
 * parameter of the tree into one flat buffer (and every gradient into
 * another) and builds the table of state_dict names. A container calls it
 * again on itself, which gathers its children's buffers into its own. */
#ifndef CG_NN_INTERNAL_H
#define CG_NN_INTERNAL_H

#include "../ops/internal.h"
#include "nn.h"

#define CGI_MAX_SLOTS 6

typedef struct cgi_module_kind {
    const char *name;
    cg_tensor *(*forward)(cg_ctx *ctx, cg_module *m, const cg_tensor *x);
} cgi_module_kind;

typedef struct cgi_slot {
    const char *name; /* a string literal: "weight", "running_mean" */
    cg_tensor *t;
    bool is_param;
} cgi_slot;

typedef struct cgi_entry {
    char name[96]; /* full state_dict name: "0.weight" */
    cg_tensor *t;
    bool is_param;
} cgi_entry;

struct cg_module {
    const cgi_module_kind *kind;
    bool training;
    cg_dtype dtype;
    int nslots;
    cgi_slot slots[CGI_MAX_SLOTS];
    int nchildren;
    cg_module **children;
    double cfg[4]; /* per kind: eps, momentum, p, slope, ... */
    int act;       /* activation layers: a cg_act */
    cg_rng *rng;   /* dropout: borrowed */
    /* the root of a tree only: */
    void *flat, *flat_grad;
    int64_t flat_numel;
    cg_tensor *flat_view, *flat_grad_view;
    int nentries;
    cgi_entry *entries;
};

CGI_HIDDEN cg_module *cgi_module_new(const cgi_module_kind *kind, cg_dtype dt);
/* A zero-filled caller-owned slot; a parameter requires a gradient. NULL
 * (with the error recorded) on failure; the module still frees cleanly. */
CGI_HIDDEN cg_tensor *cgi_module_add(cg_module *m, const char *name, int ndim,
                                     const int64_t *shape, bool is_param, cg_dtype dt);
/* Makes m the root of its tree: flat buffers and names (see above). */
CGI_HIDDEN cg_status cgi_module_finish(cg_module *m, const char *op);
/* The end of every constructor: m finished as a root when ok, else freed
 * (NULL m is fine) and NULL returned with the error kept. */
CGI_HIDDEN cg_module *cgi_module_done(cg_module *m, bool ok, const char *op);
/* Checkpoint hooks, one pair per part that keeps state beyond tensors: the
 * part's state as text for the file's "__metadata__" (malloc'd, the caller
 * frees it; NULL with the error recorded on failure), and its restore from
 * that text. With apply false the restore only validates, so cg_load can
 * check everything before it changes anything; with apply true it must not
 * fail on text that validated. Errors name `fn` (the public function). */
CGI_HIDDEN char *cgi_optim_meta(const cg_optim *o);
CGI_HIDDEN cg_status cgi_optim_restore_meta(cg_optim *o, const char *text, bool apply,
                                            const char *fn);
CGI_HIDDEN char *cgi_sched_meta(const cg_sched *s);
CGI_HIDDEN cg_status cgi_sched_restore_meta(cg_sched *s, const char *text, bool apply,
                                            const char *fn);

/* The tensor in slot i of m (for forward functions). */
static inline cg_tensor *cgi_slot_t(const cg_module *m, int i) { return m->slots[i].t; }

#endif
