/* cg_fit's callbacks (nn.h, "training loops"): Keras' progress bar
 * (ProgbarLogger), CSVLogger, ModelCheckpoint, EarlyStopping and
 * LambdaCallback. Each is a struct cg_callback (internal.h) with its own data
 * in self; all state a run changes is set again by its on_train_begin, so
 * one callback can serve several fits in turn. Files are opened when
 * training begins and closed by finish, which runs after an error too.
 *
 * The progress bar has keras.utils.Progbar's line, times and value formats
 * (verbose=1), fitted to the terminal's width. On a terminal the line is
 * redrawn in place; elsewhere each epoch prints one finished line, so a log
 * file reads cleanly. The clock, the stream and the terminal test come from
 * the options, so tests see exact bytes. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

cg_callback *cgi_callback_new(const char *fn, const char *name, void *self,
                              void (*free_self)(void *self)) {
    if (!self) return NULL;
    cg_callback *cb = cgi_alloc(NULL, fn, sizeof *cb);
    if (!cb) {
        free_self(self);
        return NULL;
    }
    *cb = (cg_callback){.name = name, .self = self, .free_self = free_self};
    return cb;
}

void cg_callback_free(cg_callback *cb) {
    if (!cb) return;
    if (cb->finish) cb->finish(cb);
    if (cb->free_self) cb->free_self(cb->self);
    free(cb);
}

/* MIN or MAX for mode and monitor: AUTO is MAX for names holding "acc". */
static cg_monitor_mode resolve_mode(cg_monitor_mode mode, const char *monitor) {
    if (mode != CG_MONITOR_AUTO) return mode;
    return strstr(monitor, "acc") ? CG_MONITOR_MAX : CG_MONITOR_MIN;
}

static bool monitor_args_ok(const char *fn, const char *monitor, cg_monitor_mode mode) {
    if (!monitor) {
        cgi_error(NULL, CG_ERR_ARG, "%s: monitor is NULL", fn);
        return false;
    }
    if ((unsigned)mode > CG_MONITOR_MAX) {
        cgi_error(NULL, CG_ERR_ARG, "%s: mode %d is not a cg_monitor_mode", fn, (int)mode);
        return false;
    }
    return true;
}

/* ---- CSVLogger ---------------------------------------------------------------- */
typedef struct csv_logger {
    char *path;
    bool append, header; /* header: still to be written */
    FILE *f;
    int *order; /* history keys in sorted order (Keras sorts them) */
} csv_logger;

static void csv_free(void *self) {
    csv_logger *c = self;
    if (!c) return;
    free(c->path);
    free(c->order);
    free(c);
}

static cg_status csv_io_error(const csv_logger *c, const char *what) {
    return cgi_error(NULL, CG_ERR_IO, "CSVLogger: %s \"%s\": %s", what, c->path,
                     errno ? strerror(errno) : "write error");
}

/* The history's keys in strcmp order (Keras sorts them), by insertion: a few keys. */
static void sort_keys(const cg_history *h, int *order) {
    for (int k = 0; k < h->nkeys; k++) {
        int j = k;
        for (; j > 0 && strcmp(h->keys[order[j - 1]], h->keys[k]) > 0; j--)
            order[j] = order[j - 1];
        order[j] = k;
    }
}

static cg_status csv_begin(cg_callback *cb, cg_fit_state *st) {
    csv_logger *c = cb->self;
    int n = st->history->nkeys;
    free(c->order);
    if (!(c->order = cgi_alloc(NULL, "CSVLogger", sizeof(int) * (size_t)n)))
        return CG_ERR_NOMEM;
    sort_keys(st->history, c->order);
    errno = 0;
    if (!(c->f = fopen(c->path, c->append ? "a" : "w"))) return csv_io_error(c, "cannot open");
    c->header = !c->append || (fseek(c->f, 0, SEEK_END) == 0 && ftell(c->f) == 0);
    return CG_OK;
}

/* v printed exactly: the shortest of %.15g, %.16g, %.17g that reads back. */
static void exact(char *buf, size_t size, double v) {
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, size, "%.*g", p, v);
        if (strtod(buf, NULL) == v || isnan(v)) return;
    }
}

static cg_status csv_epoch_end(cg_callback *cb, cg_fit_state *st) {
    csv_logger *c = cb->self;
    const cg_history *h = st->history;
    if (c->header) {
        fprintf(c->f, "epoch");
        for (int k = 0; k < h->nkeys; k++) fprintf(c->f, ",%s", h->keys[c->order[k]]);
        fprintf(c->f, "\n");
        c->header = false;
    }
    fprintf(c->f, "%d", st->epoch);
    for (int k = 0; k < h->nkeys; k++) {
        char num[40];
        exact(num, sizeof num, st->logs[c->order[k]]);
        fprintf(c->f, ",%s", num);
    }
    fprintf(c->f, "\n");
    errno = 0;
    return fflush(c->f) == 0 && !ferror(c->f) ? CG_OK : csv_io_error(c, "cannot write");
}

static cg_status csv_end(cg_callback *cb, cg_fit_state *st) {
    csv_logger *c = cb->self;
    (void)st;
    errno = 0;
    int bad = ferror(c->f) | fclose(c->f);
    c->f = NULL;
    return bad ? csv_io_error(c, "cannot write") : CG_OK;
}

static void csv_finish(cg_callback *cb) {
    csv_logger *c = cb->self;
    if (c->f) fclose(c->f);
    c->f = NULL;
}

cg_callback *cg_csv_logger_new(const char *path, bool append) {
    const char *fn = "cg_csv_logger_new";
    if (!path) {
        cgi_error(NULL, CG_ERR_ARG, "%s: path is NULL", fn);
        return NULL;
    }
    csv_logger *c = cgi_alloc(NULL, fn, sizeof *c);
    if (c) *c = (csv_logger){.append = append};
    if (c && !(c->path = cgi_strdup(fn, path))) {
        csv_free(c);
        return NULL;
    }
    cg_callback *cb = cgi_callback_new(fn, "CSVLogger", c, csv_free);
    if (!cb) return NULL;
    cb->train_begin = csv_begin;
    cb->epoch_end = csv_epoch_end;
    cb->train_end = csv_end;
    cb->finish = csv_finish;
    return cb;
}

/* ---- a monitored key (ModelCheckpoint, EarlyStopping) ------------------------------ */
typedef struct watch {
    char *key;
    cg_monitor_mode mode; /* MIN or MAX once resolved */
    int index;            /* in the history's keys */
    double best;
} watch;

static bool monitor_init(const char *fn, watch *m, const char *key, cg_monitor_mode mode) {
    m->key = cgi_strdup(fn, key);
    m->mode = resolve_mode(mode, key);
    return m->key != NULL;
}

/* At train begin: the key's index, and the best so far set to the worst. */
static cg_status monitor_begin(watch *m, const cg_history *h, const char *who) {
    char what[64];
    snprintf(what, sizeof what, "%s: monitor", who);
    m->index = cgi_history_key(h, m->key, what);
    m->best = m->mode == CG_MONITOR_MIN ? INFINITY : -INFINITY;
    return m->index < 0 ? CG_ERR_ARG : CG_OK;
}

/* v beats the best by more than delta (NaN never does). */
static bool monitor_better(const watch *m, double v, double delta) {
    return m->mode == CG_MONITOR_MIN ? v + delta < m->best : v - delta > m->best;
}

/* ---- ModelCheckpoint ------------------------------------------------------------------- */
typedef struct checkpoint {
    char *path;
    watch mon;
    bool best_only;
} checkpoint;

static void checkpoint_free(void *self) {
    checkpoint *c = self;
    if (!c) return;
    free(c->path);
    free(c->mon.key);
    free(c);
}

static cg_status checkpoint_begin(cg_callback *cb, cg_fit_state *st) {
    checkpoint *c = cb->self;
    return monitor_begin(&c->mon, st->history, "ModelCheckpoint");
}

static cg_status checkpoint_epoch_end(cg_callback *cb, cg_fit_state *st) {
    checkpoint *c = cb->self;
    double v = st->logs[c->mon.index];
    bool better = monitor_better(&c->mon, v, 0);
    if (better) c->mon.best = v;
    if (!better && c->best_only) return CG_OK;
    cg_status s = cg_save(c->path, st->model, st->optim, st->sched, st->rng);
    if (s != CG_OK) cgi_name_failure("ModelCheckpoint");
    return s;
}

cg_callback *cg_model_checkpoint_new(const char *path, const char *monitor,
                                     cg_monitor_mode mode, bool save_best_only) {
    const char *fn = "cg_model_checkpoint_new";
    if (!path) {
        cgi_error(NULL, CG_ERR_ARG, "%s: path is NULL", fn);
        return NULL;
    }
    if (!monitor_args_ok(fn, monitor, mode)) return NULL;
    checkpoint *c = cgi_alloc(NULL, fn, sizeof *c);
    if (c) *c = (checkpoint){.best_only = save_best_only};
    if (c && (!(c->path = cgi_strdup(fn, path)) || !monitor_init(fn, &c->mon, monitor, mode))) {
        checkpoint_free(c);
        return NULL;
    }
    cg_callback *cb = cgi_callback_new(fn, "ModelCheckpoint", c, checkpoint_free);
    if (!cb) return NULL;
    cb->train_begin = checkpoint_begin;
    cb->epoch_end = checkpoint_epoch_end;
    return cb;
}

/* ---- EarlyStopping ----------------------------------------------------------------------- */
typedef struct early_stop {
    watch mon;
    int patience, wait;
    double min_delta;
    bool restore;
    int nstate;       /* copies of the model's state tensors at the best epoch */
    cg_tensor **best; /* [nstate], caller-owned clones; NULL until an improvement */
    bool have_best;
} early_stop;

static void drop_best(early_stop *e) {
    for (int i = 0; e->best && i < e->nstate; i++) cg_tensor_free(e->best[i]);
    free(e->best);
    e->best = NULL;
    e->nstate = 0;
    e->have_best = false;
}

static void early_free(void *self) {
    early_stop *e = self;
    if (!e) return;
    drop_best(e);
    free(e->mon.key);
    free(e);
}

/* Clones of every state tensor of m (parameters and buffers), made once. */
static cg_status early_alloc(early_stop *e, const cg_module *m) {
    const char *who = "EarlyStopping";
    int n = cg_module_nstate(m);
    if (!(e->best = cgi_alloc(NULL, who, sizeof(cg_tensor *) * (size_t)(n ? n : 1))))
        return CG_ERR_NOMEM;
    for (int i = 0; i < n; i++) e->best[i] = NULL;
    e->nstate = n;
    for (int i = 0; i < n; i++) {
        /* cg_clone would refuse a parameter (a graph needs a context): an
         * empty tensor of its shape, filled by copy_state */
        const cg_tensor *t = cg_module_state(m, i, NULL, NULL);
        if (!(e->best[i] = cg_empty(NULL, cg_dtype_of(t), cg_ndim(t), cg_shape(t)))) {
            cgi_name_failure(who);
            return cg_last_status();
        }
    }
    return CG_OK;
}

static cg_status early_begin(cg_callback *cb, cg_fit_state *st) {
    early_stop *e = cb->self;
    drop_best(e);
    e->wait = 0;
    cg_status s = monitor_begin(&e->mon, st->history, "EarlyStopping");
    return s == CG_OK && e->restore ? early_alloc(e, st->model) : s;
}

/* Copies the model's state into the clones (save) or back (restore). */
static cg_status copy_state(early_stop *e, cg_module *m, bool save) {
    for (int i = 0; i < e->nstate; i++) {
        cg_tensor *t = cg_module_state(m, i, NULL, NULL);
        cg_status s = save ? cg_copy_(e->best[i], t) : cg_copy_(t, e->best[i]);
        if (s != CG_OK) {
            cgi_name_failure("EarlyStopping");
            return s;
        }
    }
    return CG_OK;
}

static cg_status early_epoch_end(cg_callback *cb, cg_fit_state *st) {
    early_stop *e = cb->self;
    double v = st->logs[e->mon.index];
    e->wait++;
    if (monitor_better(&e->mon, v, e->min_delta)) {
        e->mon.best = v;
        e->wait = 0;
        if (e->restore) {
            cg_status s = copy_state(e, st->model, true);
            if (s != CG_OK) return s;
            e->have_best = true;
        }
    }
    if (e->wait > 0 && e->wait >= e->patience) st->stop_training = true;
    return CG_OK;
}

static cg_status early_end(cg_callback *cb, cg_fit_state *st) {
    early_stop *e = cb->self;
    return e->restore && e->have_best ? copy_state(e, st->model, false) : CG_OK;
}

cg_callback *cg_early_stopping_new(const char *monitor, cg_monitor_mode mode, int patience,
                                   double min_delta, bool restore_best_weights) {
    const char *fn = "cg_early_stopping_new";
    if (!monitor_args_ok(fn, monitor, mode)) return NULL;
    if (patience < 0 || !(min_delta >= 0)) {
        cgi_error(NULL, CG_ERR_ARG, "%s: patience %d and min_delta %g must be >= 0", fn,
                  patience, min_delta);
        return NULL;
    }
    early_stop *e = cgi_alloc(NULL, fn, sizeof *e);
    if (e)
        *e = (early_stop){
            .patience = patience, .min_delta = min_delta, .restore = restore_best_weights};
    if (e && !monitor_init(fn, &e->mon, monitor, mode)) {
        early_free(e);
        return NULL;
    }
    cg_callback *cb = cgi_callback_new(fn, "EarlyStopping", e, early_free);
    if (!cb) return NULL;
    cb->train_begin = early_begin;
    cb->epoch_end = early_epoch_end;
    cb->train_end = early_end;
    return cb;
}

/* ---- LambdaCallback ---------------------------------------------------------------------- */
typedef struct lambda {
    cg_callback_fns fns;
    void *user;
} lambda;

#define LAMBDA_HOOK(event)                                                                     \
    static cg_status lambda_##event(cg_callback *cb, cg_fit_state *st) {                       \
        lambda *l = cb->self;                                                                  \
        return l->fns.on_##event ? l->fns.on_##event(st, l->user) : CG_OK;                     \
    }
LAMBDA_HOOK(train_begin)
LAMBDA_HOOK(epoch_begin)
LAMBDA_HOOK(batch_end)
LAMBDA_HOOK(epoch_end)
LAMBDA_HOOK(train_end)

cg_callback *cg_lambda_callback_new(const cg_callback_fns *fns, void *user) {
    const char *fn = "cg_lambda_callback_new";
    if (!fns) {
        cgi_error(NULL, CG_ERR_ARG, "%s: fns is NULL", fn);
        return NULL;
    }
    lambda *l = cgi_alloc(NULL, fn, sizeof *l);
    if (l) *l = (lambda){.fns = *fns, .user = user};
    cg_callback *cb = cgi_callback_new(fn, "LambdaCallback", l, free);
    if (!cb) return NULL;
    cb->train_begin = lambda_train_begin;
    cb->epoch_begin = lambda_epoch_begin;
    cb->batch_end = lambda_batch_end;
    cb->epoch_end = lambda_epoch_end;
    cb->train_end = lambda_train_end;
    return cb;
}

/* ---- the progress bar (ProgbarLogger) ------------------------------------------------ */
enum {
    BAR = 30,    /* Keras' bar width */
    MIN_BAR = 5, /* the narrowest bar drawn before values are dropped */
    LINE = 4096  /* the longest line composed */
};

typedef struct progbar {
    cg_progbar_opts o; /* as given; out resolved when training begins */
    FILE *out;
    bool tty;
    int limit;          /* the longest line in columns; 0: none */
    double start, last; /* the epoch's start, the last redraw */
    int64_t done;       /* batches done this epoch */
    int prev;           /* the length of the line on screen (terminal) */
    bool drawn, bad;    /* drawn this epoch; a write failed */
} progbar;

static double monotonic(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double now(const progbar *p) {
    return p->o.clock ? p->o.clock(p->o.clock_user) : monotonic();
}

/* The terminal's columns: TIOCGWINSZ on out, else $COLUMNS, else 80. */
static int term_width(FILE *out) {
    struct winsize ws;
    int fd = fileno(out);
    if (fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *env = getenv("COLUMNS");
    long c = env ? strtol(env, NULL, 10) : 0;
    return c > 0 && c < 100000 ? (int)c : 80;
}

/* ---- the line ------------------------------------------------------------------- */
typedef struct line {
    char buf[LINE];
    size_t at;
} line;

static void put(line *l, const char *fmt, ...) {
    if (l->at >= sizeof l->buf - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->at, sizeof l->buf - l->at, fmt, ap);
    va_end(ap);
    l->at += n < 0 ? 0 : (size_t)n;
    if (l->at > sizeof l->buf - 1) l->at = sizeof l->buf - 1;
}

/* What a line shows: done of total batches, the time text, the values. */
typedef struct view {
    int64_t done, total;
    const char *time; /* " - ETA: 3s" or " - 2s 1ms/step" */
    int nvals;
    char *const *keys;
    const double *vals;
} view;

/* "  3/10 [======>.......] - ETA: 1s - loss: 0.4967": a bar of bw columns
 * (0: none), the time text or not, the first nv values. Its length. */
static size_t compose(line *l, const view *v, int bw, bool time, int nv) {
    int digits = snprintf(NULL, 0, "%lld", (long long)v->total);
    l->at = 0;
    put(l, "%*lld/%lld", digits, (long long)v->done, (long long)v->total);
    if (bw > 0) {
        int fill = v->total > 0 ? (int)((double)bw * (double)v->done / (double)v->total) : 0;
        char bar[BAR + 1];
        for (int i = 0; i < bw; i++)
            bar[i] = i < fill - 1    ? '='
                     : i == fill - 1 ? (v->done < v->total ? '>' : '=')
                                     : '.';
        bar[bw] = 0;
        put(l, " [%s]", bar);
    }
    if (time) put(l, "%s", v->time);
    for (int k = 0; k < nv; k++)
        put(l, fabs(v->vals[k]) > 1e-3 ? " - %s: %.4f" : " - %s: %.4e", v->keys[k], v->vals[k]);
    return l->at;
}

/* The line within limit columns (0: any): the bar shrinks to MIN_BAR, then
 * values go from the end (the bar as wide as fits with those left), then the
 * bar and the time, then the line is cut. *kept: the values shown. */
static size_t fit(line *l, const view *v, int limit, int *kept) {
    *kept = v->nvals;
    if (limit <= 0) return compose(l, v, BAR, true, v->nvals);
    size_t lim = (size_t)limit;
    for (*kept = v->nvals; *kept >= 0; --*kept) {
        size_t len = compose(l, v, BAR, true, *kept);
        if (len <= lim) return len;
        if (len - lim <= BAR - MIN_BAR)
            return compose(l, v, BAR - (int)(len - lim), true, *kept);
    }
    *kept = 0;
    if (compose(l, v, 0, true, 0) <= lim) return l->at;
    if (compose(l, v, 0, false, 0) > lim) l->at = lim;
    l->buf[l->at] = 0;
    return l->at;
}

/* Keras' ETA: h:mm:ss past an hour, m:ss past a minute, else whole seconds. */
static void eta_text(char *buf, size_t size, double eta) {
    long long e = (long long)eta;
    if (eta > 3600)
        snprintf(buf, size, " - ETA: %lld:%02lld:%02lld", e / 3600, e % 3600 / 60, e % 60);
    else if (eta > 60)
        snprintf(buf, size, " - ETA: %lld:%02lld", e / 60, e % 60);
    else
        snprintf(buf, size, " - ETA: %llds", e);
}

/* Keras' end of epoch: " - 2s 1ms/step" (the epoch's time, the time per step). */
static void done_text(char *buf, size_t size, double elapsed, double per) {
    if (per >= 1 || per == 0)
        snprintf(buf, size, " - %.0fs %.0fs/step", elapsed, per);
    else if (per >= 1e-3)
        snprintf(buf, size, " - %.0fs %.0fms/step", elapsed, per * 1e3);
    else
        snprintf(buf, size, " - %.0fs %.0fus/step", elapsed, per * 1e6);
}

/* The values from `from` on, as many " - key: value" a line as fit in the
 * limit (one cut to it when alone too long): what an epoch's last line on a
 * terminal had no room for, so no value is lost and no line wraps. */
static void draw_rest(progbar *p, const view *v, int from) {
    line l = {.at = 0};
    size_t lim = (size_t)p->limit;
    for (int k = from; k < v->nvals; k++) {
        char item[160];
        size_t n = (size_t)snprintf(item, sizeof item,
                                    fabs(v->vals[k]) > 1e-3 ? " - %s: %.4f" : " - %s: %.4e",
                                    v->keys[k], v->vals[k]);
        if (n >= sizeof item) n = sizeof item - 1;
        if (l.at > 0 && l.at + n > lim) {
            if (fprintf(p->out, "%s\n", l.buf) < 0) p->bad = true;
            l.at = 0;
        }
        put(&l, "%.*s", (int)(n < lim ? n : lim), item);
    }
    if (l.at > 0 && fprintf(p->out, "%s\n", l.buf) < 0) p->bad = true;
}

/* Writes the line: over the last one on a terminal ('\r', spaces over what
 * it leaves), a newline when final (then, on a terminal, the values it had
 * no room for). */
static void draw(progbar *p, const view *v, bool final) {
    line l;
    int kept;
    size_t len = fit(&l, v, p->limit, &kept);
    int pad = p->tty && p->prev > (int)len ? p->prev - (int)len : 0;
    if (fprintf(p->out, "%s%s%*s%s", p->tty ? "\r" : "", l.buf, pad, "", final ? "\n" : "") < 0)
        p->bad = true;
    if (final && p->tty) draw_rest(p, v, kept);
    p->prev = final ? 0 : (int)len;
    if (fflush(p->out) != 0) p->bad = true;
}

/* ---- the hooks ------------------------------------------------------------------------ */
static cg_status bar_begin(cg_callback *cb, cg_fit_state *st) {
    progbar *p = cb->self;
    (void)st;
    p->out = p->o.out ? p->o.out : stdout;
    p->tty = p->o.tty == CG_TTY_YES || (p->o.tty == CG_TTY_AUTO && isatty(fileno(p->out)));
    int width = p->o.width > 0 ? p->o.width : p->tty ? term_width(p->out) : 0;
    p->limit = width > 1 ? width - 1 : width; /* the last column would wrap on some terminals */
    p->bad = false;
    return CG_OK;
}

static cg_status bar_epoch_begin(cg_callback *cb, cg_fit_state *st) {
    progbar *p = cb->self;
    if (fprintf(p->out, "Epoch %d/%d\n", st->epoch + 1, st->epochs) < 0) p->bad = true;
    if (p->tty && fflush(p->out) != 0) p->bad = true;
    p->start = now(p);
    p->done = 0;
    p->prev = 0;
    p->drawn = false;
    return CG_OK;
}

static cg_status bar_batch_end(cg_callback *cb, cg_fit_state *st) {
    progbar *p = cb->self;
    p->done = st->batch + 1;
    if (!p->tty) return CG_OK;
    double t = now(p), interval = p->o.interval > 0 ? p->o.interval : 0.05;
    if (p->drawn && t - p->last < interval && p->done < st->steps) return CG_OK;
    char time[64];
    eta_text(time, sizeof time,
             (t - p->start) / (double)p->done * (double)(st->steps - p->done));
    view v = {p->done, st->steps, time, st->nlogs, st->history->keys, st->logs};
    draw(p, &v, false);
    p->last = t;
    p->drawn = true;
    return CG_OK;
}

static cg_status bar_epoch_end(cg_callback *cb, cg_fit_state *st) {
    progbar *p = cb->self;
    double elapsed = now(p) - p->start;
    char time[64];
    done_text(time, sizeof time, elapsed, p->done > 0 ? elapsed / (double)p->done : 0);
    view v = {p->done, st->steps, time, st->nlogs, st->history->keys, st->logs};
    draw(p, &v, true);
    if (!p->bad) return CG_OK;
    return cgi_error(NULL, CG_ERR_IO, "ProgbarLogger: writing the progress bar failed");
}

cg_callback *cg_progbar_new(const cg_progbar_opts *opts) {
    const char *fn = "cg_progbar_new";
    cg_progbar_opts o = opts ? *opts : (cg_progbar_opts){0};
    if (o.width < 0 || !(o.interval >= 0) || (unsigned)o.tty > CG_TTY_NO) {
        cgi_error(NULL, CG_ERR_ARG,
                  "%s: width %d and interval %g must be >= 0, tty a cg_tty (got %d)", fn,
                  o.width, o.interval, (int)o.tty);
        return NULL;
    }
    progbar *p = cgi_alloc(NULL, fn, sizeof *p);
    if (p) *p = (progbar){.o = o};
    cg_callback *cb = cgi_callback_new(fn, "ProgbarLogger", p, free);
    if (!cb) return NULL;
    cb->train_begin = bar_begin;
    cb->epoch_begin = bar_epoch_begin;
    cb->batch_end = bar_batch_end;
    cb->epoch_end = bar_epoch_end;
    return cb;
}
