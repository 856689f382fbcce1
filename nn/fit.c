/* Keras' fit, evaluate and predict (nn.h, "training loops"): the loop the
 * header documents, the losses and metrics it takes, and the history. The
 * callbacks, the progress bar among them, are in callbacks.c. The model,
 * optimizer, schedule and data are only touched through public calls, in the
 * order the header gives, so a hand-written loop doing the same gets the
 * same bits. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NAME_MAX_LEN = 64 }; /* a metric's name, without "val_" */

char *cgi_strdup(const char *fn, const char *s) {
    if (!s) {
        cgi_error(NULL, CG_ERR_ARG, "%s: string is NULL", fn);
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *d = cgi_alloc(NULL, fn, n);
    return d ? memcpy(d, s, n) : NULL;
}

/* A NULL argument that is not a tensor: "fn: what is NULL". (A NULL tensor
 * keeps the error of the failure that made it: cgi_null_arg.) */
static cg_status null_arg(const char *fn, const char *what) {
    return cgi_error(NULL, CG_ERR_ARG, "%s: %s is NULL", fn, what);
}

/* The error held when a public function began. A failure that leaves it in
 * place is a NULL tensor from that earlier failure (NULL in, NULL out): it is
 * kept as it is; any other gets "fn: " before it. */
typedef struct prior {
    bool held;
    char msg[256];
} prior;
static prior prior_note(void) {
    prior p = {.held = cg_last_status() != CG_OK};
    if (p.held) snprintf(p.msg, sizeof p.msg, "%s", cg_last_error());
    return p;
}
static void name_failure(const char *fn, const prior *p) {
    if (p->held && !strncmp(cg_last_error(), p->msg, sizeof p->msg - 1)) return;
    cgi_name_failure(fn);
}

/* The status of a failure whose message was recorded (CG_ERR_STATE if, against
 * the rules, none was). */
static cg_status failed(void) {
    cg_status s = cg_last_status();
    return s != CG_OK ? s : CG_ERR_STATE;
}

/* A user function (loss, metric, batch, hook) returned status s: keep its
 * message under that status, or say it left none. */
static cg_status user_failed(const char *fn, const char *what, cg_status s) {
    if (cg_last_status() == CG_OK)
        return cgi_error(NULL, s, "%s: %s returned %s without an error message", fn, what,
                         cg_status_str(s));
    if (cg_last_status() != s) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", cg_last_error());
        cgi_error(NULL, s, "%s", msg);
    }
    return s;
}

/* ---- history ---------------------------------------------------------------- */
void cg_history_free(cg_history *h) {
    if (!h) return;
    for (int k = 0; h->keys && k < h->nkeys; k++) free(h->keys[k]);
    free(h->keys);
    if (h->values) free(h->values[0]); /* one block for all rows */
    free(h->values);
    free(h);
}

/* "loss, accuracy, val_loss" into buf. */
static void list_keys(const cg_history *h, char *buf, size_t size) {
    size_t at = 0;
    buf[0] = 0;
    for (int k = 0; k < h->nkeys && at < size; k++)
        at += (size_t)snprintf(buf + at, size - at, "%s%s", k ? ", " : "", h->keys[k]);
}

int cgi_history_key(const cg_history *h, const char *key, const char *who) {
    for (int k = 0; key && k < h->nkeys; k++)
        if (!strcmp(h->keys[k], key)) return k;
    char keys[512];
    list_keys(h, keys, sizeof keys);
    cgi_error(NULL, CG_ERR_ARG, "%s \"%s\" is not in the history (%s)", who,
              key ? key : "(NULL)", keys);
    return -1;
}

const double *cg_history_get(const cg_history *h, const char *key) {
    if (!h || !key) {
        null_arg("cg_history_get", h ? "key" : "history");
        return NULL;
    }
    int k = cgi_history_key(h, key, "cg_history_get: key");
    return k < 0 ? NULL : h->values[k];
}

/* ---- losses and metrics ------------------------------------------------------ */
static const char *const metric_default[] = {"accuracy", NULL, "mse", "mae", NULL};

/* The history key of metric m (without "val_") into buf. */
static void metric_name(const cg_metric *m, char *buf, size_t size) {
    if (m->name)
        snprintf(buf, size, "%s", m->name);
    else if (m->kind == CG_METRIC_TOP_K)
        snprintf(buf, size, "top_%d_accuracy", m->k);
    else
        snprintf(buf, size, "%s", metric_default[m->kind]);
}

/* The batch's mean loss: one value with a graph to out; NULL with the error. */
static cg_tensor *loss_of(const char *fn, cg_ctx *ctx, const cg_loss *L, const cg_tensor *out,
                          const cg_tensor *y) {
    cg_tensor *l;
    switch (L->kind) {
    case CG_LOSS_CROSS_ENTROPY: l = cg_cross_entropy(ctx, out, y, CG_MEAN); break;
    case CG_LOSS_CATEGORICAL: l = cg_cross_entropy_probs(ctx, out, y, CG_MEAN); break;
    case CG_LOSS_MSE: l = cg_mse_loss(ctx, out, y, CG_MEAN); break;
    case CG_LOSS_BCE_WITH_LOGITS: l = cg_bce_with_logits(ctx, out, y, CG_MEAN); break;
    default:
        l = L->fn(ctx, out, y, L->user);
        if (!l) user_failed(fn, "the user loss", failed());
    }
    if (l && cg_numel(l) != 1) {
        char s0[160];
        cgi_error(NULL, CG_ERR_SHAPE, "%s: the loss is %s, not one value", fn,
                  cg_shape_str(l, s0, sizeof s0));
        return NULL;
    }
    return l;
}

/* The class ids y stands for: y itself (i64, out's shape without its last
 * dim) or the argmax of targets of out's shape. NULL (error) otherwise. */
static const cg_tensor *class_ids(const char *fn, const char *name, cg_ctx *ctx,
                                  const cg_tensor *out, const cg_tensor *y) {
    int r = cg_ndim(out);
    bool ids = r >= 2 && cg_dtype_of(y) == CG_I64 && cg_ndim(y) == r - 1;
    for (int d = 0; ids && d < r - 1; d++) ids = cg_dim(y, d) == cg_dim(out, d);
    if (ids) return y;
    if (r >= 2 && cg_dtype_of(y) != CG_I64 && cg_same_shape(out, y))
        return cg_argmax(ctx, y, -1, false);
    char s0[160], s1[160];
    cgi_error(NULL, CG_ERR_SHAPE,
              "%s: metric %s: output %s and target %s: needs output [N, ..., C] with class ids "
              "(i64 [N, ...]) or targets of the output's shape",
              fn, name, cg_shape_str(out, s0, sizeof s0), cg_shape_str(y, s1, sizeof s1));
    return NULL;
}

/* Accuracy and top-k: the hits, each sample's as a share of its positions. */
static cg_status class_hits(const char *fn, const char *name, cg_ctx *ctx, const cg_metric *m,
                            const cg_tensor *out, const cg_tensor *y, double *sum) {
    const cg_tensor *ids = class_ids(fn, name, ctx, out, y);
    cg_tensor *hit = NULL, *top = NULL;
    if (!ids) return failed();
    if (m->kind == CG_METRIC_ACCURACY)
        hit = cg_eq(ctx, cg_argmax(ctx, out, -1, false), ids);
    else if (cg_topk(ctx, out, m->k, -1, true, NULL, &top) == CG_OK)
        hit = cg_eq(ctx, top, cg_unsqueeze(ctx, ids, -1));
    double hits = cg_item(cg_sum(ctx, hit, NULL, 0, false));
    if (!hit || isnan(hits)) return failed();
    int64_t per = cg_numel(ids) / cg_dim(out, 0); /* positions per sample */
    *sum = per > 0 ? hits / (double)per : 0;
    return CG_OK;
}

/* MSE and MAE: per sample the mean over its elements, in f64. */
static cg_status error_sum(const char *fn, const char *name, cg_ctx *ctx, const cg_metric *m,
                           const cg_tensor *out, const cg_tensor *y, double *sum) {
    if (cg_ndim(out) < 1 || !cg_same_shape(out, y)) {
        char s0[160], s1[160];
        return cgi_error(NULL, CG_ERR_SHAPE,
                         "%s: metric %s: output %s and target %s differ in shape", fn, name,
                         cg_shape_str(out, s0, sizeof s0), cg_shape_str(y, s1, sizeof s1));
    }
    cg_tensor *d = cg_sub(ctx, cg_cast(ctx, out, CG_F64), cg_cast(ctx, y, CG_F64));
    d = m->kind == CG_METRIC_MSE ? cg_square(ctx, d) : cg_abs(ctx, d);
    double total = cg_item(cg_sum(ctx, d, NULL, 0, false));
    if (!d) return failed();
    int64_t per = cg_numel(out) / cg_dim(out, 0);
    *sum = per > 0 ? total / (double)per : 0;
    return CG_OK;
}

static cg_status metric_sum(const char *fn, cg_ctx *ctx, const cg_metric *m,
                            const cg_tensor *out, const cg_tensor *y, double *sum) {
    char name[NAME_MAX_LEN + 16];
    metric_name(m, name, sizeof name);
    switch (m->kind) {
    case CG_METRIC_ACCURACY:
    case CG_METRIC_TOP_K: return class_hits(fn, name, ctx, m, out, y, sum);
    case CG_METRIC_MSE:
    case CG_METRIC_MAE: return error_sum(fn, name, ctx, m, out, y, sum);
    default: {
        double v = 0;
        cg_status s = m->fn(ctx, out, y, m->user, &v);
        if (s != CG_OK) return user_failed(fn, "a user metric", s);
        *sum = v;
        return CG_OK;
    }
    }
}

/* The batch's loss (*l, a graph when grad mode is on) and metric sums
 * (under no grad), added to sums[0] (loss times the batch's rows) and
 * sums[1 + j]. */
static cg_status batch_sums(const char *fn, cg_ctx *ctx, const cg_loss *L, int nm,
                            const cg_metric *ms, const cg_tensor *out, const cg_tensor *y,
                            double *sums, cg_tensor **l) {
    *l = loss_of(fn, ctx, L, out, y);
    if (!*l) return failed();
    sums[0] += cg_item(*l) * (double)cg_dim(out, 0);
    cg_status s = cg_no_grad_push(ctx);
    for (int j = 0; s == CG_OK && j < nm; j++) {
        double v = 0;
        s = metric_sum(fn, ctx, &ms[j], out, y, &v);
        sums[1 + j] += v;
    }
    cg_no_grad_pop(ctx);
    return s;
}

/* ---- checking the arguments ----------------------------------------------------- */
static cg_status loss_ok(const char *fn, const cg_loss *L) {
    if (!L) return null_arg(fn, "loss");
    if ((unsigned)L->kind > CG_LOSS_USER)
        return cgi_error(NULL, CG_ERR_ARG, "%s: loss kind %d is not a cg_loss_kind", fn,
                         (int)L->kind);
    if (L->kind == CG_LOSS_USER && !L->fn)
        return cgi_error(NULL, CG_ERR_ARG, "%s: CG_LOSS_USER needs fn", fn);
    return CG_OK;
}

/* A key: [A-Za-z0-9_]+, at most NAME_MAX_LEN, neither "loss" nor "val_...". */
static bool name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN || !strcmp(s, "loss") || !strncmp(s, "val_", 4))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static cg_status metric_ok(const char *fn, const cg_metric *m, int i) {
    if ((unsigned)m->kind > CG_METRIC_USER)
        return cgi_error(NULL, CG_ERR_ARG, "%s: metric %d: kind %d is not a cg_metric_kind", fn,
                         i, (int)m->kind);
    if (m->kind == CG_METRIC_TOP_K && m->k < 1)
        return cgi_error(NULL, CG_ERR_ARG, "%s: metric %d: top-k needs k >= 1 (got %d)", fn, i,
                         m->k);
    if (m->kind == CG_METRIC_USER && (!m->fn || !m->name))
        return cgi_error(NULL, CG_ERR_ARG, "%s: metric %d: CG_METRIC_USER needs fn and a name",
                         fn, i);
    char name[NAME_MAX_LEN + 16];
    metric_name(m, name, sizeof name);
    if (m->name && !name_ok(m->name))
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: metric %d: name \"%s\" is not 1 to %d of [A-Za-z0-9_], nor "
                         "\"loss\" or \"val_...\"",
                         fn, i, m->name, NAME_MAX_LEN);
    return CG_OK;
}

static cg_status metrics_ok(const char *fn, int n, const cg_metric *ms) {
    if (n < 0) return cgi_error(NULL, CG_ERR_ARG, "%s: nmetrics %d must be >= 0", fn, n);
    if (n > 0 && !ms) return null_arg(fn, "metrics");
    for (int i = 0; i < n; i++) {
        cg_status s = metric_ok(fn, &ms[i], i);
        if (s != CG_OK) return s;
        char a[NAME_MAX_LEN + 16], b[NAME_MAX_LEN + 16];
        metric_name(&ms[i], a, sizeof a);
        for (int j = 0; j < i; j++) {
            metric_name(&ms[j], b, sizeof b);
            if (!strcmp(a, b))
                return cgi_error(NULL, CG_ERR_ARG, "%s: metrics %d and %d are both \"%s\"", fn,
                                 j, i, a);
        }
    }
    return CG_OK;
}

/* A tensor argument `what` (may be a NULL pointer: NULL in, error kept). */
static cg_status tensor_ok(const char *fn, const char *what, const cg_tensor *t) {
    if (!t) return cgi_null_arg(NULL, fn, what);
    if (cgi_stale(t)) return cgi_stale_error_as(NULL, fn, what, -1, t);
    if (t->ndim < 1) {
        char s0[160];
        return cgi_error(NULL, CG_ERR_SHAPE, "%s: %s %s needs a sample dim (rank >= 1)", fn,
                         what, cg_shape_str(t, s0, sizeof s0));
    }
    return CG_OK;
}

/* Data `what` ("train", "validation", "data"); need_y: y is read. */
static cg_status data_ok(const char *fn, const char *what, const cg_fit_data *d, bool need_y) {
    char nx[32], ny[32];
    snprintf(nx, sizeof nx, "%s.x", what);
    snprintf(ny, sizeof ny, "%s.y", what);
    if (!d) return null_arg(fn, what);
    if (d->fn && (d->x || d->y))
        return cgi_error(NULL, CG_ERR_ARG, "%s: %s has both tensors and a batch function", fn,
                         what);
    if (d->fn)
        return d->steps >= 1 ? CG_OK
                             : cgi_error(NULL, CG_ERR_ARG,
                                         "%s: %s.steps %lld must be >= 1 with a batch function",
                                         fn, what, (long long)d->steps);
    if (d->steps != 0)
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: %s.steps %lld is for a batch function (tensors are batched by "
                         "batch_size; leave it 0)",
                         fn, what, (long long)d->steps);
    cg_status s = tensor_ok(fn, nx, d->x);
    if (s == CG_OK && need_y) s = tensor_ok(fn, ny, d->y);
    if (s != CG_OK) return s;
    char s0[160], s1[160];
    if (need_y && d->y->shape[0] != d->x->shape[0])
        return cgi_error(NULL, CG_ERR_SHAPE, "%s: %s %s and %s %s differ in their sample count",
                         fn, nx, cg_shape_str(d->x, s0, sizeof s0), ny,
                         cg_shape_str(d->y, s1, sizeof s1));
    if (d->x->shape[0] == 0)
        return cgi_error(NULL, CG_ERR_SHAPE, "%s: %s %s has no samples", fn, nx,
                         cg_shape_str(d->x, s0, sizeof s0));
    return CG_OK;
}

/* Validation tensors hold samples of the training ones' shape and dtype. */
static cg_status same_samples(const char *fn, const char *what, const cg_tensor *t,
                              const cg_tensor *v) {
    bool same = t->dtype == v->dtype && t->ndim == v->ndim;
    for (int d = 1; same && d < t->ndim; d++) same = t->shape[d] == v->shape[d];
    if (same) return CG_OK;
    char s0[160], s1[160];
    return cgi_error(NULL, CG_ERR_SHAPE,
                     "%s: validation.%s %s %s does not hold train.%s's samples (%s %s)", fn,
                     what, cg_dtype_name(v->dtype), cg_shape_str(v, s0, sizeof s0), what,
                     cg_dtype_name(t->dtype), cg_shape_str(t, s1, sizeof s1));
}

static cg_status callbacks_ok(const char *fn, int n, cg_callback *const *cbs) {
    if (n < 0) return cgi_error(NULL, CG_ERR_ARG, "%s: ncallbacks %d must be >= 0", fn, n);
    if (n > 0 && !cbs) return null_arg(fn, "callbacks");
    for (int i = 0; i < n; i++) {
        if (!cbs[i]) return cgi_error(NULL, CG_ERR_ARG, "%s: callbacks[%d] is NULL", fn, i);
        for (int j = 0; j < i; j++)
            if (cbs[j] == cbs[i])
                return cgi_error(NULL, CG_ERR_ARG, "%s: callbacks[%d] is callbacks[%d] again",
                                 fn, i, j);
    }
    return CG_OK;
}

static cg_status opts_ok(const char *fn, const cg_fit_opts *o, const cg_fit_data *train) {
    const char *bad = NULL;
    if (o->epochs < 0)
        bad = "epochs must be >= 0";
    else if (o->initial_epoch < 0 || o->initial_epoch > o->epochs)
        bad = "initial_epoch must be in [0, epochs]";
    else if (o->batch_size < 1)
        bad = "batch_size must be >= 1";
    else if (!(o->validation_split >= 0 && o->validation_split < 1))
        bad = "validation_split must be in [0, 1)";
    else if (o->validation_split > 0 && o->validation)
        bad = "validation data and validation_split are given: choose one";
    else if (o->validation_split > 0 && train->fn)
        bad = "validation_split needs tensor data (a batch function's samples cannot be split)";
    else if (o->validation_batch_size < 0)
        bad = "validation_batch_size must be >= 0";
    else if (o->accum_steps < 1)
        bad = "accum_steps must be >= 1 (0: 1)";
    else if (!(o->clip_grad_norm >= 0))
        bad = "clip_grad_norm must be >= 0 (0: no clipping)";
    else if (o->shuffle && !o->rng && !train->fn)
        bad = "shuffle needs an rng (opts.rng), or set shuffle to false";
    else if ((unsigned)o->sched_interval > CG_SCHED_BATCH)
        bad = "sched_interval is not a cg_sched_interval";
    if (bad)
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: %s (epochs %d, initial_epoch %d, batch_size %lld, "
                         "validation_split %g, validation_batch_size %lld, accum_steps %d, "
                         "clip_grad_norm %g)",
                         fn, bad, o->epochs, o->initial_epoch, (long long)o->batch_size,
                         o->validation_split, (long long)o->validation_batch_size,
                         o->accum_steps, o->clip_grad_norm);
    cg_status s = metrics_ok(fn, o->nmetrics, o->metrics);
    return s == CG_OK ? callbacks_ok(fn, o->ncallbacks, o->callbacks) : s;
}

cg_fit_opts cg_fit_defaults(void) {
    return (cg_fit_opts){
        .epochs = 1, .batch_size = 32, .shuffle = true, .accum_steps = 1, .verbose = 1};
}

/* ---- batches ----------------------------------------------------------------------- */
/* One data set as batches: through a batcher (tensors) or the user's function. */
typedef struct source {
    const cg_fit_data *d; /* with a function; NULL for tensors */
    cg_batcher *b;
    int64_t steps; /* batches per epoch */
} source;

static cg_status source_open(const char *fn, source *s, const cg_fit_data *d,
                             const cg_tensor *x, const cg_tensor *y, int64_t batch,
                             bool shuffle, cg_rng *rng) {
    if (d && d->fn) {
        *s = (source){.d = d, .steps = d->steps};
        return CG_OK;
    }
    *s = (source){.b = cg_batcher_new(x, y, batch, shuffle, false, shuffle ? rng : NULL)};
    if (!s->b) return failed();
    s->steps = cg_batcher_nbatches(s->b);
    (void)fn;
    return CG_OK;
}

/* What a batch function handed back for step i. */
static bool batch_ok(const char *fn, int64_t i, const cg_tensor *x, const cg_tensor *y,
                     bool need_y) {
    char what[64];
    snprintf(what, sizeof what, "the batch function's x at step %lld", (long long)i);
    if (tensor_ok(fn, what, x) != CG_OK) return false;
    snprintf(what, sizeof what, "the batch function's y at step %lld", (long long)i);
    if (need_y && tensor_ok(fn, what, y) != CG_OK) return false;
    char s0[160], s1[160];
    if (need_y && x->shape[0] != y->shape[0])
        cgi_error(NULL, CG_ERR_SHAPE, "%s: batch %lld: x %s and y %s differ in their rows", fn,
                  (long long)i, cg_shape_str(x, s0, sizeof s0), cg_shape_str(y, s1, sizeof s1));
    else if (x->shape[0] == 0)
        cgi_error(NULL, CG_ERR_SHAPE, "%s: batch %lld: x %s is empty", fn, (long long)i,
                  cg_shape_str(x, s0, sizeof s0));
    else
        return true;
    return false;
}

/* Batch i of the epoch: 1, 0 after its last one, -1 on error (recorded). */
static int source_next(const char *fn, source *s, int64_t i, cg_ctx *ctx, bool need_y,
                       cg_tensor **x, cg_tensor **y) {
    if (s->b) {
        if (cg_batcher_next(s->b, x, y)) return 1;
        return i == s->steps ? 0 : -1;
    }
    if (i == s->steps) return 0;
    *x = *y = NULL;
    cg_status st = s->d->fn(s->d->user, i, ctx, x, y);
    if (st != CG_OK) {
        user_failed(fn, "the batch function", st);
        return -1;
    }
    return batch_ok(fn, i, *x, *y, need_y) ? 1 : -1;
}

/* One pass over src in eval mode and no grad (the caller's): the mean loss
 * and metrics into vals[0 .. nm]. */
static cg_status eval_epoch(const char *fn, cg_ctx *ctx, cg_module *m, const cg_loss *L, int nm,
                            const cg_metric *ms, source *src, double *vals) {
    double seen = 0;
    cg_status s = CG_OK;
    for (int j = 0; j <= nm; j++) vals[j] = 0;
    for (int64_t i = 0; s == CG_OK; i++) {
        cg_tensor *xb, *yb, *l;
        int got = source_next(fn, src, i, ctx, true, &xb, &yb);
        if (got <= 0) {
            s = got ? failed() : CG_OK;
            break;
        }
        cg_tensor *out = cg_module_forward(ctx, m, xb);
        s = out ? batch_sums(fn, ctx, L, nm, ms, out, yb, vals, &l) : failed();
        seen += (double)cg_dim(xb, 0);
        cg_ctx_reset(ctx);
    }
    for (int j = 0; j <= nm; j++) vals[j] /= seen;
    return s;
}

/* ---- the run ------------------------------------------------------------------------- */
typedef struct run {
    const char *fn;
    cg_module *model;
    cg_optim *optim;
    const cg_loss *loss;
    cg_fit_opts o;
    cg_ctx *ctx, *hold; /* the step's; the split's views */
    source train, val;
    bool has_val;
    cg_history *h;
    int ntrain;      /* 1 + nmetrics: the training keys */
    double *logs;    /* [nkeys]: this epoch's values */
    double *sums;    /* [ntrain]: this epoch's sums */
    int sched_key;   /* the key stepped on per epoch; -1: none */
    int began;       /* callbacks whose on_train_begin ran */
    cg_fit_state st; /* what callbacks see */
} run;

enum { H_TRAIN_BEGIN, H_EPOCH_BEGIN, H_BATCH_END, H_EPOCH_END, H_TRAIN_END };

static cg_status run_hooks(run *r, int which) {
    for (int i = 0; i < r->o.ncallbacks; i++) {
        cg_callback *cb = r->o.callbacks[i];
        cgi_cb_hook hooks[] = {cb->train_begin, cb->epoch_begin, cb->batch_end, cb->epoch_end,
                               cb->train_end};
        if (which == H_TRAIN_BEGIN) r->began = i + 1;
        if (!hooks[which]) continue;
        cg_status s = hooks[which](cb, &r->st);
        if (s != CG_OK) {
            char what[64];
            snprintf(what, sizeof what, "callback %d (%s)", i, cb->name);
            return user_failed(r->fn, what, s);
        }
    }
    return CG_OK;
}

static cg_status optimizer_step(run *r) {
    cg_status s = CG_OK;
    if (r->o.clip_grad_norm > 0) s = cg_clip_grad_norm_(r->model, r->o.clip_grad_norm, NULL);
    if (s == CG_OK) s = cg_optim_step(r->optim);
    if (s == CG_OK && r->o.sched && r->o.sched_interval == CG_SCHED_BATCH)
        s = cg_sched_step(r->o.sched);
    return s;
}

static cg_status train_step(run *r, int64_t i, cg_tensor *xb, cg_tensor *yb) {
    cg_ctx *ctx = r->ctx;
    int accum = r->o.accum_steps;
    if (i % accum == 0) cg_optim_zero_grad(r->optim);
    cg_tensor *out = cg_module_forward(ctx, r->model, xb), *l = NULL;
    if (!out) return failed();
    cg_status s =
        batch_sums(r->fn, ctx, r->loss, r->o.nmetrics, r->o.metrics, out, yb, r->sums, &l);
    if (s == CG_OK) s = cg_backward(accum > 1 ? cg_mul_scalar(ctx, l, 1.0 / accum) : l);
    if (s == CG_OK && ((i + 1) % accum == 0 || i + 1 == r->train.steps)) s = optimizer_step(r);
    r->st.seen += cg_dim(xb, 0);
    r->st.x = xb;
    r->st.y = yb;
    r->st.output = out;
    return s;
}

static cg_status train_epoch(run *r) {
    memset(r->sums, 0, sizeof *r->sums * (size_t)r->ntrain);
    r->st.seen = 0;
    r->st.nlogs = r->ntrain;
    cg_module_train(r->model, true);
    for (int64_t i = 0;; i++) {
        cg_tensor *xb, *yb;
        int got = source_next(r->fn, &r->train, i, r->ctx, true, &xb, &yb);
        if (got <= 0) return got ? failed() : CG_OK;
        cg_status s = train_step(r, i, xb, yb);
        for (int k = 0; k < r->ntrain; k++) r->logs[k] = r->sums[k] / (double)r->st.seen;
        r->st.batch = i;
        if (s == CG_OK) s = run_hooks(r, H_BATCH_END);
        cg_ctx_reset(r->ctx);
        r->st.x = r->st.y = r->st.output = NULL;
        if (s != CG_OK || r->st.stop_training) return s;
    }
}

static cg_status validate(run *r) {
    cg_module_train(r->model, false);
    cg_status s = cg_no_grad_push(r->ctx);
    if (s == CG_OK)
        s = eval_epoch(r->fn, r->ctx, r->model, r->loss, r->o.nmetrics, r->o.metrics, &r->val,
                       r->logs + r->ntrain);
    cg_no_grad_pop(r->ctx);
    return s;
}

static cg_status fit_epoch(run *r, int epoch) {
    r->st.epoch = epoch;
    r->st.nlogs = 0;
    cg_status s = run_hooks(r, H_EPOCH_BEGIN);
    if (s == CG_OK) s = train_epoch(r);
    if (s == CG_OK && r->has_val) s = validate(r);
    if (s != CG_OK) return s;
    cg_history *h = r->h;
    for (int k = 0; k < h->nkeys; k++) h->values[k][h->epochs] = r->logs[k];
    h->epochs++;
    if (r->sched_key >= 0) s = cg_sched_step_metric(r->o.sched, r->logs[r->sched_key]);
    r->st.nlogs = h->nkeys;
    return s == CG_OK ? run_hooks(r, H_EPOCH_END) : s;
}

static cg_status fit_loop(run *r) {
    cg_status s = run_hooks(r, H_TRAIN_BEGIN);
    for (int e = r->o.initial_epoch; s == CG_OK && e < r->o.epochs && !r->st.stop_training; e++)
        s = fit_epoch(r, e);
    r->h->stopped = r->st.stop_training;
    return s == CG_OK ? run_hooks(r, H_TRAIN_END) : s;
}

/* ---- setting up ------------------------------------------------------------------------ */
/* The history's keys: "loss", the metrics, then the same with "val_". */
static cg_status make_history(run *r) {
    int nm = r->o.nmetrics, nk = r->ntrain * (r->has_val ? 2 : 1);
    size_t rows = (size_t)(r->o.epochs - r->o.initial_epoch);
    cg_history *h = r->h = cgi_alloc(NULL, r->fn, sizeof *h);
    if (!h) return failed();
    *h = (cg_history){0};
    h->keys = calloc((size_t)nk, sizeof *h->keys);
    h->values = calloc((size_t)nk, sizeof *h->values);
    if (!h->keys || !h->values)
        return cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", r->fn);
    h->nkeys = nk;
    h->values[0] = cgi_alloc(NULL, r->fn, sizeof(double) * (rows * (size_t)nk + 1));
    if (!h->values[0]) return failed();
    for (int k = 0; k < nk; k++) {
        char name[NAME_MAX_LEN + 16], key[NAME_MAX_LEN + 32];
        int j = k % r->ntrain;
        if (j == 0)
            snprintf(name, sizeof name, "loss");
        else
            metric_name(&r->o.metrics[j - 1], name, sizeof name);
        snprintf(key, sizeof key, "%s%s", k >= r->ntrain ? "val_" : "", name);
        h->values[k] = h->values[0] + rows * (size_t)k;
        if (!(h->keys[k] = cgi_strdup(r->fn, key))) return failed();
    }
    (void)nm;
    return CG_OK;
}

/* Keras' validation_split: the last (N - floor(N (1 - split))) samples. */
static cg_status split_views(run *r, const cg_tensor **x, const cg_tensor **y,
                             const cg_tensor **vx, const cg_tensor **vy) {
    int64_t n = cg_dim(*x, 0), at = (int64_t)floor((double)n * (1.0 - r->o.validation_split));
    if (at <= 0 || at >= n)
        return cgi_error(NULL, CG_ERR_ARG,
                         "%s: validation_split %g of %lld samples leaves %lld for training and "
                         "%lld for validation; each needs one",
                         r->fn, r->o.validation_split, (long long)n, (long long)at,
                         (long long)(n - at));
    if (!(r->hold = cg_ctx_new()) || cg_no_grad_push(r->hold) != CG_OK)
        return cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", r->fn);
    *vx = cg_narrow(r->hold, *x, 0, at, n - at);
    *vy = cg_narrow(r->hold, *y, 0, at, n - at);
    *x = cg_narrow(r->hold, *x, 0, 0, at);
    *y = cg_narrow(r->hold, *y, 0, 0, at);
    return *x && *y && *vx && *vy ? CG_OK : failed();
}

static cg_status open_data(run *r, const cg_fit_data *train) {
    const cg_fit_data *v = r->o.validation;
    const cg_tensor *x = train->x, *y = train->y, *vx = v ? v->x : NULL, *vy = v ? v->y : NULL;
    cg_status s = CG_OK;
    if (r->o.validation_split > 0) s = split_views(r, &x, &y, &vx, &vy);
    r->has_val = v || r->o.validation_split > 0;
    int64_t vb = r->o.validation_batch_size ? r->o.validation_batch_size : r->o.batch_size;
    if (s == CG_OK)
        s = source_open(r->fn, &r->train, train, x, y, r->o.batch_size, r->o.shuffle, r->o.rng);
    if (s == CG_OK && r->has_val) s = source_open(r->fn, &r->val, v, vx, vy, vb, false, NULL);
    return s;
}

static cg_status fit_open(run *r, const cg_fit_data *train) {
    if (!(r->ctx = cg_ctx_new()))
        return cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", r->fn);
    cg_status s = open_data(r, train);
    r->ntrain = 1 + r->o.nmetrics;
    if (s == CG_OK) s = make_history(r);
    if (s != CG_OK) return s;
    r->logs = cgi_alloc(NULL, r->fn, sizeof(double) * (size_t)r->h->nkeys);
    r->sums = cgi_alloc(NULL, r->fn, sizeof(double) * (size_t)r->ntrain);
    if (!r->logs || !r->sums) return failed();
    r->sched_key = -1;
    if (r->o.sched && r->o.sched_interval == CG_SCHED_EPOCH) {
        const char *key = r->o.sched_monitor ? r->o.sched_monitor
                          : r->has_val       ? "val_loss"
                                             : "loss";
        char who[64];
        snprintf(who, sizeof who, "%s: sched_monitor", r->fn);
        if ((r->sched_key = cgi_history_key(r->h, key, who)) < 0) return failed();
    }
    r->st = (cg_fit_state){.model = r->model,
                           .optim = r->optim,
                           .sched = r->o.sched,
                           .rng = r->o.rng,
                           .ctx = r->ctx,
                           .history = r->h,
                           .epochs = r->o.epochs,
                           .steps = r->train.steps,
                           .logs = r->logs};
    return CG_OK;
}

/* Keras' verbose=1: a progress bar on stdout when no callback is one; the
 * run's list of callbacks then gets it at its end (*list and *bar freed by
 * the caller). */
static cg_status add_default_bar(run *r, cg_callback **bar, cg_callback ***list) {
    int n = r->o.ncallbacks;
    for (int i = 0; i < n; i++)
        if (!strcmp(r->o.callbacks[i]->name, "ProgbarLogger")) return CG_OK;
    *bar = cg_progbar_new(NULL);
    *list = *bar ? cgi_alloc(NULL, r->fn, sizeof **list * (size_t)(n + 1)) : NULL;
    if (!*list) return cg_last_status();
    for (int i = 0; i < n; i++) (*list)[i] = r->o.callbacks[i];
    (*list)[n] = *bar;
    r->o.callbacks = *list;
    r->o.ncallbacks = n + 1;
    return CG_OK;
}

/* A NULL module or optimizer made by a failed constructor keeps that
 * failure's message (NULL in, NULL out). */
static cg_status null_or_kept(const char *fn, const char *what) {
    return cg_last_status() != CG_OK ? cg_last_status() : null_arg(fn, what);
}

static cg_status fit_args(run *r, const cg_fit_data *train) {
    if (!r->model) return null_or_kept(r->fn, "model");
    if (!r->optim) return null_or_kept(r->fn, "optimizer");
    cg_status s = loss_ok(r->fn, r->loss);
    if (s == CG_OK) s = data_ok(r->fn, "train", train, true);
    if (s == CG_OK) s = opts_ok(r->fn, &r->o, train);
    const cg_fit_data *v = r->o.validation;
    if (s == CG_OK && v) s = data_ok(r->fn, "validation", v, true);
    if (s == CG_OK && v && !v->fn && !train->fn) s = same_samples(r->fn, "x", train->x, v->x);
    if (s == CG_OK && v && !v->fn && !train->fn) s = same_samples(r->fn, "y", train->y, v->y);
    return s;
}

static void fit_close(run *r) {
    for (int i = 0; i < r->began; i++)
        if (r->o.callbacks[i]->finish) r->o.callbacks[i]->finish(r->o.callbacks[i]);
    cg_batcher_free(r->train.b);
    cg_batcher_free(r->val.b);
    cg_ctx_free(r->ctx);
    cg_ctx_free(r->hold);
    free(r->logs);
    free(r->sums);
}

cg_history *cg_fit(cg_module *model, cg_optim *optim, const cg_loss *loss,
                   const cg_fit_data *train, const cg_fit_opts *opts) {
    run r = {.fn = "cg_fit", .model = model, .optim = optim, .loss = loss};
    prior p = prior_note();
    r.o = opts ? *opts : cg_fit_defaults();
    if (r.o.accum_steps == 0) r.o.accum_steps = 1; /* a zeroed struct's */
    cg_status s = fit_args(&r, train);
    bool checked = s == CG_OK, training = checked && cg_module_is_training(model);
    cg_callback *bar = NULL, **list = NULL;
    if (s == CG_OK && r.o.verbose) s = add_default_bar(&r, &bar, &list);
    if (s == CG_OK) s = fit_open(&r, train);
    if (s == CG_OK) s = fit_loop(&r);
    if (s != CG_OK) name_failure(r.fn, &p);
    fit_close(&r);
    cg_callback_free(bar);
    free(list);
    if (checked) cg_module_train(model, training);
    if (s == CG_OK) return r.h;
    cg_history_free(r.h);
    return NULL;
}

/* ---- evaluate and predict ---------------------------------------------------------------- */
static cg_status evaluate(const char *fn, cg_module *m, const cg_loss *L, const cg_fit_data *d,
                          int64_t batch, int nm, const cg_metric *ms, double *results) {
    source src = {0};
    cg_ctx *ctx = cg_ctx_new();
    double *vals = cgi_alloc(NULL, fn, sizeof(double) * (size_t)(nm + 1));
    cg_status s = ctx && vals ? CG_OK : cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
    if (s == CG_OK) s = source_open(fn, &src, d, d->x, d->y, batch, false, NULL);
    bool training = cg_module_is_training(m);
    cg_module_train(m, false);
    if (s == CG_OK) s = cg_no_grad_push(ctx);
    if (s == CG_OK) s = eval_epoch(fn, ctx, m, L, nm, ms, &src, vals);
    cg_module_train(m, training);
    if (s == CG_OK) memcpy(results, vals, sizeof(double) * (size_t)(nm + 1));
    cg_batcher_free(src.b);
    cg_ctx_free(ctx);
    free(vals);
    return s;
}

cg_status cg_evaluate(cg_module *model, const cg_loss *loss, const cg_fit_data *data,
                      int64_t batch_size, int nmetrics, const cg_metric *metrics,
                      double *results) {
    const char *fn = "cg_evaluate";
    prior p = prior_note();
    cg_status s = model ? loss_ok(fn, loss) : null_arg(fn, "model");
    if (s == CG_OK) s = data_ok(fn, "data", data, true);
    if (s == CG_OK && batch_size < 1)
        s = cgi_error(NULL, CG_ERR_ARG, "%s: batch_size %lld must be >= 1", fn,
                      (long long)batch_size);
    if (s == CG_OK) s = metrics_ok(fn, nmetrics, metrics);
    if (s == CG_OK && !results) s = null_arg(fn, "results");
    if (s == CG_OK) s = evaluate(fn, model, loss, data, batch_size, nmetrics, metrics, results);
    if (s != CG_OK) name_failure(fn, &p);
    return s;
}

/* The outputs gathered so far: rows of one dtype and trailing shape. */
typedef struct outputs {
    char *p;
    size_t len, cap;
    cg_dtype dt;
    int ndim;
    int64_t shape[CG_MAX_DIMS]; /* shape[0]: the rows so far */
} outputs;

static cg_status append_output(const char *fn, cg_ctx *ctx, outputs *o, const cg_tensor *y,
                               int64_t i, int64_t steps) {
    char s0[160], s1[160];
    bool first = o->ndim == 0, same = y->ndim == o->ndim && y->dtype == o->dt;
    for (int d = 1; same && d < y->ndim; d++) same = y->shape[d] == o->shape[d];
    if (first && y->ndim < 1)
        return cgi_error(NULL, CG_ERR_SHAPE, "%s: the model's output %s has no rows", fn,
                         cg_shape_str(y, s0, sizeof s0));
    if (!first && !same)
        return cgi_error(NULL, CG_ERR_SHAPE,
                         "%s: batch %lld's output %s %s does not match the first's %s %s", fn,
                         (long long)i, cg_dtype_name(y->dtype), cg_shape_str(y, s0, sizeof s0),
                         cg_dtype_name(o->dt), cgi_fmt_shape(s1, sizeof s1, o->ndim, o->shape));
    if (first) {
        o->dt = y->dtype;
        o->ndim = y->ndim;
        memcpy(o->shape, y->shape, sizeof o->shape);
        o->shape[0] = 0;
    }
    size_t bytes = (size_t)cgi_numel(y->ndim, y->shape) * cg_dtype_size(y->dtype);
    if (o->len + bytes > o->cap) {
        size_t cap = o->cap ? 2 * o->cap : bytes * (size_t)steps; /* a guess: equal batches */
        if (cap < o->len + bytes) cap = o->len + bytes;
        char *p = realloc(o->p, cap ? cap : 1);
        if (!p) return cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory (%zu bytes)", fn, cap);
        o->p = p;
        o->cap = cap;
    }
    const cg_tensor *c = cg_contiguous(ctx, y);
    if (!c) return failed();
    if (bytes) memcpy(o->p + o->len, cg_data(c), bytes);
    o->len += bytes;
    o->shape[0] += y->shape[0];
    return CG_OK;
}

static cg_tensor *predict(const char *fn, cg_module *m, const cg_fit_data *d, int64_t batch) {
    source src = {0};
    outputs o = {0};
    cg_ctx *ctx = cg_ctx_new();
    cg_status s = ctx ? CG_OK : cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", fn);
    if (s == CG_OK) s = source_open(fn, &src, d, d->x, NULL, batch, false, NULL);
    bool training = cg_module_is_training(m);
    cg_module_train(m, false);
    if (s == CG_OK) s = cg_no_grad_push(ctx);
    for (int64_t i = 0; s == CG_OK; i++) {
        cg_tensor *xb, *yb;
        int got = source_next(fn, &src, i, ctx, false, &xb, &yb);
        if (got <= 0) {
            s = got ? failed() : CG_OK;
            break;
        }
        cg_tensor *out = cg_module_forward(ctx, m, xb);
        s = out ? append_output(fn, ctx, &o, out, i, src.steps) : failed();
        cg_ctx_reset(ctx);
    }
    cg_module_train(m, training);
    cg_tensor *r = s == CG_OK ? cg_from_array(NULL, o.dt, o.ndim, o.shape, o.p) : NULL;
    cg_batcher_free(src.b);
    cg_ctx_free(ctx);
    free(o.p);
    return r;
}

cg_tensor *cg_predict(cg_module *model, const cg_fit_data *data, int64_t batch_size) {
    const char *fn = "cg_predict";
    prior p = prior_note();
    cg_status s = model ? data_ok(fn, "data", data, false) : null_arg(fn, "model");
    if (s == CG_OK && batch_size < 1)
        s = cgi_error(NULL, CG_ERR_ARG, "%s: batch_size %lld must be >= 1", fn,
                      (long long)batch_size);
    cg_tensor *r = s == CG_OK ? predict(fn, model, data, batch_size) : NULL;
    if (!r) name_failure(fn, &p);
    return r;
}
