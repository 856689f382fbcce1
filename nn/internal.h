/* Library-internal declarations for nn/ (not installed).
 *
 * A module (struct cg_module) is a kind (the public cg_module_kind: name,
 * forward, optional hooks), the kind's own data, and three growable lists:
 * its own parameters and buffers (slots, in registration order), and its
 * children. Nothing in it belongs to a particular layer: built-in layers
 * use the public interface (cg_module_new, cg_module_add_param, ...) like
 * user code does.
 *
 * Tables derived from the tree (state_dict names, unique parameters) are
 * rebuilt when the tree changed since they were made. A module that no
 * container holds (a root) also gathers its tree's parameters into one flat
 * buffer and their gradients into another: each parameter stays the same
 * tensor object (pointers users keep stay valid) with its data moved into a
 * slice of the buffer, so an optimizer step over adjacent parameters is one
 * loop and zero_grad one memset. */
#ifndef CG_NN_INTERNAL_H
#define CG_NN_INTERNAL_H

#include "../ops/internal.h"
#include "nn.h"

typedef struct cgi_slot {
    char *name; /* local name: "weight" */
    cg_tensor *t;
    bool is_param;
    bool owned; /* false for a tied parameter (cg_module_tie): another owns it */
} cgi_slot;

typedef struct cgi_child {
    char *name; /* "0", "attn" */
    cg_module *m;
} cgi_child;

typedef struct cgi_entry {
    char *name; /* full state_dict name, relative to the table's module: "0.weight" */
    cg_tensor *t;
    bool is_param;
} cgi_entry;

struct cg_module {
    const cg_module_kind *kind;
    void *data; /* the kind's state (cg_module_new), freed by kind->free_data */
    bool training;
    bool dirty;  /* its own slots or children changed since its tables were built */
    int parents; /* containers holding it (counted per place); 0: the caller owns it */
    int nslots, slots_cap;
    cgi_slot *slots;
    int nchildren, children_cap;
    cgi_child *children;
    /* tables over the tree, rebuilt by cgi_module_sync */
    bool built;
    int nentries;
    cgi_entry *entries;
    int nparams;
    int *params; /* indices into entries of the unique parameters, in order */
    int64_t numel;
    /* a root's flat buffers (1-D, caller-owned); NULL when not gathered */
    cg_tensor *flat, *flat_grad;
};

/* Brings m's tables up to date (and, for a root, its flat buffers). m is
 * logically const: values do not change, parameters' data may move. */
CGI_HIDDEN cg_status cgi_module_sync(const cg_module *m, const char *fn);
/* The end of every built-in constructor: m when ok (synced), else m freed
 * (NULL is fine) and NULL returned with the error kept, named fn ("fn: "
 * put before an inner function's message). */
CGI_HIDDEN cg_module *cgi_module_done(cg_module *m, bool ok, const char *fn);
/* Puts "fn: " before the recorded message unless it already begins so (the
 * failure of an inner function, named by the public one the user called). */
CGI_HIDDEN void cgi_name_failure(const char *fn);
/* cg_module_new / cg_module_add_param / cg_module_add_child with the public
 * function's name for messages (built-in constructors pass their own). */
CGI_HIDDEN cg_module *cgi_module_new(const cg_module_kind *kind, void *data, const char *fn);
/* nn/conv.c: whether m is a Conv2d, or a MaxPool2d(2) (2x2, stride 2,
 * nothing else); Conv2d m's forward fused with the ReLU after it (and with
 * such a pool after that when pool: one op where the direct kernels run the
 * convolution), errors naming cg_conv2d as the layer's own. */
CGI_HIDDEN bool cgi_is_conv2d_module(const cg_module *m);
CGI_HIDDEN bool cgi_is_maxpool2x2_module(const cg_module *m);
CGI_HIDDEN cg_tensor *cgi_conv2d_relu_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x,
                                              bool pool);
/* The same with a malloc'd copy of the size bytes at data as the module's
 * data (the kind's free_data must be free). */
CGI_HIDDEN cg_module *cgi_module_new_copy(const cg_module_kind *kind, const void *data,
                                          size_t size, const char *fn);
CGI_HIDDEN cg_tensor *cgi_module_add(cg_module *m, const char *name, cg_tensor *t,
                                     bool is_param, const char *fn);
CGI_HIDDEN cg_status cgi_module_adopt(cg_module *m, const char *name, cg_module *child,
                                      const char *fn);

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

/* Chart axes (nn/chart.c). The ticks k * step for k = first .. first +
 * count - 1, step = 1, 2 or 5 times 10^exp10. */
typedef struct cgi_ticks {
    double step;
    int exp10;
    int64_t first;
    int count;
} cgi_ticks;
/* Ticks for an axis over [*lo, *hi] (finite, lo < hi): of the steps of the
 * 1-2-5 sequence, the one whose count of ticks inside the range is in 4..8
 * and nearest 6 (a tie: the larger step). integer (epochs): steps of at
 * least 1, the range kept, so fewer than 4 ticks when the range is short and
 * 3 when the counts jump from 9 to 3. Otherwise, when they jump so, the range
 * is widened to the next multiple of the larger step on its nearer side, to 4
 * ticks. */
CGI_HIDDEN cgi_ticks cgi_chart_ticks(double *lo, double *hi, bool integer);
/* The label of tick k of t into buf: "0" for zero; fixed ("0.3", "-2", "12000")
 * while the step needs at most 4 decimals and every tick is under 1e5 in
 * magnitude, else exponent style ("1e-6", "2.5e5", "1.02e-6"). */
CGI_HIDDEN void cgi_chart_label(char *buf, size_t size, const cgi_ticks *t, int64_t k);

/* ---- training loops (nn/fit.c, nn/callbacks.c) -----------------
 * A callback is a name (for messages: "CSVLogger") and hooks, each optional,
 * run by cg_fit at its events with the run's state; self is the kind's own
 * data (freed with the callback by free_self). A hook's error is recorded
 * as "<name>: ..." and cg_fit puts "cg_fit: " before it. finish runs after
 * training whatever happened (after on_train_end, or after an error), for
 * every callback whose on_train_begin ran: it closes files. */
typedef cg_status (*cgi_cb_hook)(cg_callback *cb, cg_fit_state *st);
struct cg_callback {
    const char *name;
    cgi_cb_hook train_begin, epoch_begin, batch_end, epoch_end, train_end;
    void (*finish)(cg_callback *cb);
    void (*free_self)(void *self);
    void *self;
};
/* A callback named name with self (owned: freed by free_self with the
 * callback, also when this fails); NULL (error named fn) on out of memory. */
CGI_HIDDEN cg_callback *cgi_callback_new(const char *fn, const char *name, void *self,
                                         void (*free_self)(void *self));
/* The index of key in h's keys, or -1 with CG_ERR_ARG "<who>: monitor
 * \"key\" is not in the history (loss, ...)". */
CGI_HIDDEN int cgi_history_key(const cg_history *h, const char *key, const char *who);
/* A malloc'd copy of s (NULL with CG_ERR_NOMEM, or CG_ERR_ARG for a NULL s,
 * named fn). */
CGI_HIDDEN char *cgi_strdup(const char *fn, const char *s);

#endif
