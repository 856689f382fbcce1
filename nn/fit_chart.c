/* cg_fit's chart callback (nn.h, "training loops"): after each epoch the
 * history so far as an SVG chart through cg_chart_svg, a "loss" panel and
 * one panel per metric, each with the training series (solid) and the
 * validation one (dashed) when there is validation. The chart is rewritten
 * at every epoch end, so it can be watched while training runs. The panels
 * point into the history's rows, which cg_fit makes once: nothing is copied
 * or allocated after on_train_begin. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct chart {
    char *path, *title;
    int npanels;
    cg_chart_panel *panels;  /* [npanels] */
    cg_chart_series *series; /* [2 npanels]: train, validation */
} chart;

static void chart_free(void *self) {
    chart *c = self;
    if (!c) return;
    free(c->path);
    free(c->title);
    free(c->panels);
    free(c->series);
    free(c);
}

/* One panel per training key ("loss", then the metrics: the keys before the
 * first "val_"), its validation twin the key ntrain places on. */
static cg_status chart_begin(cg_callback *cb, cg_fit_state *st) {
    chart *c = cb->self;
    const cg_history *h = st->history;
    int ntrain = 0;
    while (ntrain < h->nkeys && strncmp(h->keys[ntrain], "val_", 4) != 0) ntrain++;
    bool val = h->nkeys > ntrain;
    free(c->panels);
    free(c->series);
    c->panels = cgi_alloc(NULL, "ChartLogger", sizeof *c->panels * (size_t)ntrain);
    c->series = cgi_alloc(NULL, "ChartLogger", sizeof *c->series * (size_t)(2 * ntrain));
    if (!c->panels || !c->series) return CG_ERR_NOMEM;
    c->npanels = ntrain;
    for (int j = 0; j < ntrain; j++) {
        c->series[2 * j] = (cg_chart_series){h->keys[j], h->values[j], false};
        if (val)
            c->series[2 * j + 1] =
                (cg_chart_series){h->keys[ntrain + j], h->values[ntrain + j], true};
        c->panels[j] = (cg_chart_panel){h->keys[j], h->keys[j], val ? 2 : 1, &c->series[2 * j]};
    }
    return CG_OK;
}

static cg_status chart_epoch_end(cg_callback *cb, cg_fit_state *st) {
    chart *c = cb->self;
    cg_status s =
        cg_chart_svg(c->path, c->title, "epoch", st->history->epochs, c->npanels, c->panels);
    if (s != CG_OK) cgi_name_failure("ChartLogger");
    return s;
}

cg_callback *cg_chart_logger_new(const char *path, const char *title) {
    const char *fn = "cg_chart_logger_new";
    if (!path) {
        cgi_error(NULL, CG_ERR_ARG, "%s: path is NULL", fn);
        return NULL;
    }
    chart *c = cgi_alloc(NULL, fn, sizeof *c);
    if (c) *c = (chart){0};
    if (c && (!(c->path = cgi_strdup(fn, path)) ||
              !(c->title = cgi_strdup(fn, title ? title : path)))) {
        chart_free(c);
        return NULL;
    }
    cg_callback *cb = cgi_callback_new(fn, "ChartLogger", c, chart_free);
    if (!cb) return NULL;
    cb->train_begin = chart_begin;
    cb->epoch_end = chart_epoch_end;
    return cb;
}
