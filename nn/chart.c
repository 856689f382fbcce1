/* Training curves as an SVG file, written by hand (SVG is text): panels side
 * by side, each with its own y axis, over x = 1..n (epochs). Each panel has
 * a frame, 1-2-5 ticks with compact labels, light grid lines, axis labels, a
 * title and a legend; the y range is the data's padded by 5% so no curve
 * lies on the frame, and x runs from the first epoch to the last, both a few
 * pixels inside the frame.
 *
 * The whole file is built in memory, written to a temporary next to the path
 * and renamed over it: a viewer that reloads the chart every epoch sees the
 * old chart or the new one, never half of one. It is not fsync'd: a chart is
 * remade from the run, unlike a checkpoint. */
#include "internal.h"
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FN         "cg_chart_svg"
#define MAX_PANELS 8
#define MAX_SERIES 8
#define HUGE_VALUE 1e300 /* larger values are gaps: their range would overflow */

/* Layout in SVG user units (pixels). */
#define MARGIN   8.0   /* around the panels */
#define PANEL_W  400.0 /* one panel, its y tick labels and label included */
#define PLOT_H   240.0 /* the plot area's height */
#define RIGHT_M  18.0  /* right of a plot area */
#define BOTTOM_M 50.0  /* under it: x tick labels and the x label */
#define TITLE_H  34.0  /* the chart's title line */
#define HEAD_H   28.0  /* a panel's title line and the space under its legend */
#define ROW_H    17.0  /* one legend row */
#define INSET    8.0   /* the first and last epoch this far inside the frame */
#define CHAR_W   0.62  /* a sans-serif glyph's mean width per unit of font size (an estimate) */
#define TICK_FS  11.0  /* tick label font size */
#define LABEL_FS 12.0  /* axis labels and legend */

/* Colour-blind-safe: blue and orange first (train, validation), then
 * Okabe-Ito's bluish green, reddish purple, black, sky blue, vermillion, grey. */
static const char *const palette[MAX_SERIES] = {"#1f77b4", "#ff7f0e", "#009e73", "#cc79a7",
                                                "#000000", "#56b4e9", "#d55e00", "#7f7f7f"};

/* ---- ticks ----------------------------------------------------------------- */
/* The ticks inside [lo, hi] (a little rounding tolerated) of step i of the
 * sequence ..., 0.1, 0.2, 0.5, 1, 2, 5, 10, ...: 1, 2 or 5 (i mod 3) times
 * 10^floor(i / 3). */
static cgi_ticks ticks_at(double lo, double hi, int i) {
    static const double mant[3] = {1, 2, 5};
    int e = i >= 0 ? i / 3 : -((-i + 2) / 3);
    double s = mant[i - 3 * e] * pow(10, e);
    double a = ceil(lo / s - 1e-9), b = floor(hi / s + 1e-9);
    return (cgi_ticks){.step = s, .exp10 = e, .first = (int64_t)a, .count = (int)(b - a + 1)};
}

/* Widens [*lo, *hi] to the next tick of t on the nearer side until t has 4. */
static void widen(double *lo, double *hi, cgi_ticks *t) {
    while (t->count < 4) {
        double below = *lo - (double)(t->first - 1) * t->step;
        double above = (double)(t->first + t->count) * t->step - *hi;
        if (below <= above)
            *lo = (double)--t->first * t->step;
        else
            *hi = (double)(t->first + t->count) * t->step;
        t->count++;
    }
}

cgi_ticks cgi_chart_ticks(double *lo, double *hi, bool integer) {
    /* from a step under range / 10 (over 8 ticks) up while there are 4 or more */
    int i = 3 * (int)floor(log10(*hi - *lo)) - 3;
    if (integer && i < 0) i = 0;
    cgi_ticks best = {0}, t = ticks_at(*lo, *hi, i);
    for (; t.count >= 4; t = ticks_at(*lo, *hi, ++i))
        if (t.count <= 8 && (!best.count || abs(t.count - 6) <= abs(best.count - 6))) best = t;
    if (best.count) return best;
    if (!integer) widen(lo, hi, &t); /* the counts jumped from 9 or more to 3 */
    return t;
}

/* Drops trailing zeros of a fixed mantissa ("1.50" -> "1.5", "2.0" -> "2"). */
static void trim_zeros(char *s) {
    char *dot = strchr(s, '.');
    if (!dot) return;
    char *end = s + strlen(s);
    while (end > dot + 1 && end[-1] == '0') end--;
    if (end == dot + 1) end = dot;
    *end = 0;
}

/* v in exponent style: "1e-6", "2.5e5", "-1.25e-3". */
static void exp_label(char *buf, size_t size, double v, int exp10) {
    char m[64];
    int digits = (int)floor(log10(fabs(v))) - exp10;
    snprintf(m, sizeof m, "%.*e", digits > 0 ? digits : 0, v);
    char *ep = strchr(m, 'e');
    int ex = atoi(ep + 1);
    *ep = 0;
    trim_zeros(m);
    snprintf(buf, size, "%se%d", m, ex);
}

void cgi_chart_label(char *buf, size_t size, const cgi_ticks *t, int64_t k) {
    double v = (double)k * t->step;
    int64_t last = t->first + t->count - 1;
    double maxabs =
        (double)(llabs(t->first) > llabs(last) ? llabs(t->first) : llabs(last)) * t->step;
    if (k == 0)
        snprintf(buf, size, "0");
    else if (t->exp10 >= -4 && maxabs < 1e5)
        snprintf(buf, size, "%.*f", t->exp10 < 0 ? -t->exp10 : 0, v);
    else
        exp_label(buf, size, v, t->exp10);
}

/* ---- text output ------------------------------------------------------------- */
/* A coordinate with at most one decimal: "12", "12.5". */
static void put_num(cgi_jbuf *b, double v) {
    char s[40];
    snprintf(s, sizeof s, "%.1f", v);
    size_t n = strlen(s);
    if (n >= 2 && s[n - 2] == '.' && s[n - 1] == '0') s[n - 2] = 0;
    cgi_jbuf_printf(b, "%s", strcmp(s, "-0") ? s : "0");
}

/* The length of the valid UTF-8 sequence at s (1 to 4), 0 if it is not one
 * (a stray continuation byte, a truncated, overlong or surrogate sequence),
 * which an XML reader would refuse. */
static int utf8_len(const unsigned char *s) {
    int n = s[0] < 0x80   ? 1
            : s[0] < 0xC2 ? 0
            : s[0] < 0xE0 ? 2
            : s[0] < 0xF0 ? 3
            : s[0] < 0xF5 ? 4
                          : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
        return 0;
    return n;
}

/* s as XML character data or attribute text: & < > ' " escaped, control
 * characters (not allowed in XML 1.0) as spaces, bytes that are not UTF-8
 * as '?'. */
static void put_text(cgi_jbuf *b, const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        unsigned char c = *u;
        const char *esc = c == '&'    ? "&amp;"
                          : c == '<'  ? "&lt;"
                          : c == '>'  ? "&gt;"
                          : c == '\'' ? "&apos;"
                          : c == '"'  ? "&quot;"
                                      : NULL;
        int n = utf8_len(u);
        if (esc)
            cgi_jbuf_printf(b, "%s", esc);
        else if (n == 0)
            cgi_jbuf_printf(b, "?");
        else
            cgi_jbuf_printf(b, "%.*s", n, c < 0x20 && c != '\t' ? " " : (const char *)u);
        u += n ? n : 1;
    }
}

/* <text x y ...extra>s</text>, the position rounded. */
static void put_label(cgi_jbuf *b, double x, double y, const char *extra, const char *s) {
    cgi_jbuf_printf(b, "<text x=\"");
    put_num(b, x);
    cgi_jbuf_printf(b, "\" y=\"");
    put_num(b, y);
    cgi_jbuf_printf(b, "\"%s>", extra);
    put_text(b, s);
    cgi_jbuf_printf(b, "</text>\n");
}

/* <line x1 y1 x2 y2 style/> */
static void put_line(cgi_jbuf *b, double x1, double y1, double x2, double y2,
                     const char *style) {
    cgi_jbuf_printf(b, "<line x1=\"");
    put_num(b, x1);
    cgi_jbuf_printf(b, "\" y1=\"");
    put_num(b, y1);
    cgi_jbuf_printf(b, "\" x2=\"");
    put_num(b, x2);
    cgi_jbuf_printf(b, "\" y2=\"");
    put_num(b, y2);
    cgi_jbuf_printf(b, "\"%s%s/>\n", *style ? " " : "", style);
}

/* The estimated width of s at font size fs (UTF-8: one glyph per code point). */
static double text_width(const char *s, double fs) {
    int n = 0;
    for (; s && *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n * CHAR_W * fs;
}

/* ---- layout ---------------------------------------------------------------------- */
typedef struct panel_box {
    double lo, hi;   /* the y axis range */
    cgi_ticks t;     /* its ticks */
    double left;     /* the panel's left edge */
    double x0, x1;   /* the plot area's left and right */
    int legend_rows; /* rows its legend needs */
} panel_box;

typedef struct chart {
    cgi_jbuf b;
    int n;
    const char *xlabel;
    double top, bottom; /* the plot areas' top and bottom */
    cgi_ticks xt;
    double xlo, xhi; /* the x range: 1..n (0..2 for one epoch) */
} chart;

static bool drawn(double v) { return isfinite(v) && fabs(v) <= HUGE_VALUE; }

/* The y range of panel p: its values padded by 5% (a constant, or a range
 * under a millionth of its values, by 5% of itself; 0 by 1); [0, 1] when
 * nothing is drawn. */
static void y_range(const cg_chart_panel *p, int n, double *lo, double *hi) {
    bool any = false;
    for (int s = 0; s < p->nseries; s++)
        for (int i = 0; i < n; i++) {
            double v = p->series[s].y[i];
            if (!drawn(v)) continue;
            if (!any || v < *lo) *lo = v;
            if (!any || v > *hi) *hi = v;
            any = true;
        }
    if (!any) {
        *lo = 0, *hi = 1;
        return;
    }
    double range = *hi - *lo, mid = *lo / 2 + *hi / 2, big = fmax(fabs(*lo), fabs(*hi));
    double pad = range > 1e-6 * big ? 0.05 * range : mid != 0 ? 0.05 * fabs(mid) : 1;
    pad = fmax(pad, 1e-290); /* subnormal values: a range the ticks can measure */
    *lo -= pad, *hi += pad;
}

/* Rows the legend of p needs within width w. */
static int legend_rows(const cg_chart_panel *p, double w) {
    int rows = 0;
    double x = w;
    for (int s = 0; s < p->nseries; s++) {
        if (!p->series[s].name) continue;
        double item = 30 + text_width(p->series[s].name, LABEL_FS) + 16;
        if (rows == 0 || x + item > w) rows++, x = 0;
        x += item;
    }
    return rows;
}

/* Panel p's axis, its plot area's sides (room left for the widest tick
 * label) and legend rows. */
static panel_box layout_panel(const cg_chart_panel *p, int n, int index) {
    panel_box pb = {0};
    char lab[48];
    y_range(p, n, &pb.lo, &pb.hi);
    pb.t = cgi_chart_ticks(&pb.lo, &pb.hi, false);
    double widest = 0;
    for (int k = 0; k < pb.t.count; k++) {
        cgi_chart_label(lab, sizeof lab, &pb.t, pb.t.first + k);
        widest = fmax(widest, text_width(lab, TICK_FS));
    }
    pb.left = MARGIN + PANEL_W * index;
    pb.x0 = pb.left + 32 + widest;
    pb.x1 = pb.left + PANEL_W - RIGHT_M;
    pb.legend_rows = legend_rows(p, pb.x1 - pb.x0);
    return pb;
}

static double px_x(const chart *c, const panel_box *pb, double x) {
    return pb->x0 + INSET + (x - c->xlo) / (c->xhi - c->xlo) * (pb->x1 - pb->x0 - 2 * INSET);
}
static double px_y(const chart *c, const panel_box *pb, double y) {
    return c->bottom - (y - pb->lo) / (pb->hi - pb->lo) * (c->bottom - c->top);
}

/* ---- drawing ----------------------------------------------------------------------- */
/* Each part of a panel is a group whose class names it (grid, ticks, yticks,
 * xticks, legend, series) and which carries the style its elements share. */
static double ytick_px(const chart *c, const panel_box *pb, int k) {
    return px_y(c, pb, (double)(pb->t.first + k) * pb->t.step);
}
static double xtick_px(const chart *c, const panel_box *pb, int k) {
    return px_x(c, pb, (double)(c->xt.first + k) * c->xt.step);
}

/* Light grid lines at every tick of both axes, then the tick marks. */
static void draw_grid(chart *c, const panel_box *pb) {
    cgi_jbuf *b = &c->b;
    cgi_jbuf_printf(b, "<g class=\"grid\" stroke=\"#e6e6e6\">\n");
    for (int k = 0; k < pb->t.count; k++)
        put_line(b, pb->x0, ytick_px(c, pb, k), pb->x1, ytick_px(c, pb, k), "");
    for (int k = 0; k < c->xt.count; k++)
        put_line(b, xtick_px(c, pb, k), c->top, xtick_px(c, pb, k), c->bottom, "");
    cgi_jbuf_printf(b, "</g>\n<g class=\"ticks\" stroke=\"#888\">\n");
    for (int k = 0; k < pb->t.count; k++)
        put_line(b, pb->x0 - 4, ytick_px(c, pb, k), pb->x0, ytick_px(c, pb, k), "");
    for (int k = 0; k < c->xt.count; k++)
        put_line(b, xtick_px(c, pb, k), c->bottom, xtick_px(c, pb, k), c->bottom + 4, "");
    cgi_jbuf_printf(b, "</g>\n");
}

/* Tick labels: y right-aligned left of the frame, x centred under it. */
static void draw_tick_labels(chart *c, const panel_box *pb) {
    cgi_jbuf *b = &c->b;
    char lab[48];
    cgi_jbuf_printf(b, "<g class=\"yticks\" font-size=\"11\" fill=\"#444\" "
                       "text-anchor=\"end\">\n");
    for (int k = 0; k < pb->t.count; k++) {
        cgi_chart_label(lab, sizeof lab, &pb->t, pb->t.first + k);
        put_label(b, pb->x0 - 7, ytick_px(c, pb, k) + 4, "", lab);
    }
    cgi_jbuf_printf(b, "</g>\n<g class=\"xticks\" font-size=\"11\" fill=\"#444\" "
                       "text-anchor=\"middle\">\n");
    for (int k = 0; k < c->xt.count; k++) {
        cgi_chart_label(lab, sizeof lab, &c->xt, c->xt.first + k);
        put_label(b, xtick_px(c, pb, k), c->bottom + 17, "", lab);
    }
    cgi_jbuf_printf(b, "</g>\n");
}

/* The frame, the axis labels and the panel's title. */
static void draw_frame(chart *c, const panel_box *pb, const cg_chart_panel *p, double head) {
    cgi_jbuf *b = &c->b;
    cgi_jbuf_printf(b, "<rect class=\"frame\" x=\"");
    put_num(b, pb->x0);
    cgi_jbuf_printf(b, "\" y=\"");
    put_num(b, c->top);
    cgi_jbuf_printf(b, "\" width=\"");
    put_num(b, pb->x1 - pb->x0);
    cgi_jbuf_printf(b, "\" height=\"");
    put_num(b, c->bottom - c->top);
    cgi_jbuf_printf(b, "\" fill=\"none\" stroke=\"#888\"/>\n");
    put_label(b, (pb->x0 + pb->x1) / 2, c->bottom + 38,
              " class=\"xlabel\" text-anchor=\"middle\" font-size=\"12\"", c->xlabel);
    const char *ylabel = p->ylabel ? p->ylabel : p->title;
    if (ylabel) { /* turned to read upwards, its baseline 14 px into the panel */
        double x = pb->left + 14, y = (c->top + c->bottom) / 2;
        cgi_jbuf_printf(b, "<g transform=\"rotate(-90 ");
        put_num(b, x);
        cgi_jbuf_printf(b, " ");
        put_num(b, y);
        cgi_jbuf_printf(b, ")\">");
        put_label(b, x, y, " class=\"ylabel\" text-anchor=\"middle\" font-size=\"12\"", ylabel);
        cgi_jbuf_printf(b, "</g>\n");
    }
    if (p->title)
        put_label(b, pb->x0, head + 16,
                  " class=\"panel-title\" font-size=\"13\" font-weight=\"bold\"", p->title);
}

/* Series s's stroke: its colour, 2 px, dashed or not. */
static void stroke_of(char *buf, size_t size, const cg_chart_series *se, int s) {
    snprintf(buf, size, "stroke=\"%s\" stroke-width=\"2\"%s", palette[s],
             se->dashed ? " stroke-dasharray=\"6 4\"" : "");
}

/* The legend: a line sample in each named series' style and its name,
 * flowing into rows under the panel's title. */
static void draw_legend(chart *c, const panel_box *pb, const cg_chart_panel *p, double head) {
    double x = pb->x0, y = head + 16 + ROW_H;
    bool first = true;
    char style[96];
    cgi_jbuf_printf(&c->b, "<g class=\"legend\" font-size=\"12\" fill=\"#222\">\n");
    for (int s = 0; s < p->nseries; s++) {
        const cg_chart_series *se = &p->series[s];
        if (!se->name) continue;
        double item = 30 + text_width(se->name, LABEL_FS) + 16;
        if (!first && x + item > pb->x1) x = pb->x0, y += ROW_H;
        stroke_of(style, sizeof style, se, s);
        put_line(&c->b, x, y - 4, x + 24, y - 4, style);
        put_label(&c->b, x + 30, y, "", se->name);
        x += item, first = false;
    }
    cgi_jbuf_printf(&c->b, "</g>\n");
}

/* A dot for each value with no drawn neighbour (a line cannot show it). */
static void draw_dots(chart *c, const panel_box *pb, const double *y, int s) {
    for (int i = 0; i < c->n; i++) {
        if (!drawn(y[i]) || (i > 0 && drawn(y[i - 1])) || (i + 1 < c->n && drawn(y[i + 1])))
            continue;
        cgi_jbuf_printf(&c->b, "<circle cx=\"");
        put_num(&c->b, px_x(c, pb, i + 1.0));
        cgi_jbuf_printf(&c->b, "\" cy=\"");
        put_num(&c->b, px_y(c, pb, y[i]));
        cgi_jbuf_printf(&c->b, "\" r=\"3.5\" fill=\"%s\"/>\n", palette[s]);
    }
}

/* Series s of p, a group: one path whose runs of drawn values are lines
 * ("M x,y L x,y x,y ... M ...", a gap at each value not drawn), and dots. */
static void draw_series(chart *c, const panel_box *pb, const cg_chart_panel *p, int s) {
    const double *y = p->series[s].y;
    bool any_run = false;
    cgi_jbuf_printf(&c->b, "<g class=\"series\">\n");
    for (int i = 0; i < c->n; i++) {
        bool prev = i > 0 && drawn(y[i - 1]), next = i + 1 < c->n && drawn(y[i + 1]);
        if (!drawn(y[i]) || (!prev && !next)) continue;
        bool second = prev && (i == 1 || !drawn(y[i - 2])); /* of its run */
        cgi_jbuf_printf(&c->b, "%s",
                        !any_run ? "<path d=\"M"
                        : !prev  ? " M"
                        : second ? "L"
                                 : " ");
        put_num(&c->b, px_x(c, pb, i + 1.0));
        cgi_jbuf_printf(&c->b, ",");
        put_num(&c->b, px_y(c, pb, y[i]));
        any_run = true;
    }
    char style[96];
    stroke_of(style, sizeof style, &p->series[s], s);
    if (any_run) cgi_jbuf_printf(&c->b, "\" fill=\"none\" %s/>\n", style);
    draw_dots(c, pb, y, s);
    cgi_jbuf_printf(&c->b, "</g>\n");
}

/* ---- the file ------------------------------------------------------------------------ */
static cg_status check_args(const char *path, int n, int npanels,
                            const cg_chart_panel *panels) {
    if (!path || !panels)
        return cgi_error(NULL, CG_ERR_ARG, FN ": %s is NULL", !path ? "path" : "panels");
    if (n < 1) return cgi_error(NULL, CG_ERR_ARG, FN ": n is %d, not at least 1", n);
    if (npanels < 1 || npanels > MAX_PANELS)
        return cgi_error(NULL, CG_ERR_ARG, FN ": npanels is %d, not 1 to %d", npanels,
                         MAX_PANELS);
    for (int p = 0; p < npanels; p++) {
        const cg_chart_panel *pa = &panels[p];
        if (pa->nseries < 0 || pa->nseries > MAX_SERIES)
            return cgi_error(NULL, CG_ERR_ARG, FN ": panel %d has %d series, not 0 to %d", p,
                             pa->nseries, MAX_SERIES);
        if (pa->nseries > 0 && !pa->series)
            return cgi_error(NULL, CG_ERR_ARG, FN ": panel %d: series is NULL", p);
        for (int s = 0; s < pa->nseries; s++)
            if (!pa->series[s].y)
                return cgi_error(NULL, CG_ERR_ARG, FN ": panel %d, series %d: y is NULL", p, s);
    }
    return CG_OK;
}

/* The svg element (as wide as the panels, or the title if wider: its bold
 * glyphs estimated 10% wider), its tooltip title, a white background and the
 * title line. */
static void draw_head(chart *c, const char *title, int npanels, double height) {
    cgi_jbuf *b = &c->b;
    double width = 2 * MARGIN + PANEL_W * npanels;
    if (title) width = fmax(width, ceil(2 * MARGIN + 8 + 1.1 * text_width(title, 15)));
    cgi_jbuf_printf(b,
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                    "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n",
                    width, height, width, height);
    if (title) {
        cgi_jbuf_printf(b, "<title>");
        put_text(b, title);
        cgi_jbuf_printf(b, "</title>\n");
    }
    cgi_jbuf_printf(b, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n");
    if (title)
        put_label(b, MARGIN + 4, 23, " class=\"title\" font-size=\"15\" font-weight=\"bold\"",
                  title);
}

/* The whole SVG into c->b: the panels share the height of the tallest
 * legend, so their plot areas line up. */
static void draw_chart(chart *c, const char *title, int npanels, const cg_chart_panel *panels) {
    panel_box pb[MAX_PANELS];
    int rows = 0;
    for (int p = 0; p < npanels; p++) {
        pb[p] = layout_panel(&panels[p], c->n, p);
        if (pb[p].legend_rows > rows) rows = pb[p].legend_rows;
    }
    double head = title ? TITLE_H : MARGIN;
    c->top = head + HEAD_H + ROW_H * rows;
    c->bottom = c->top + PLOT_H;
    draw_head(c, title, npanels, c->bottom + BOTTOM_M);
    for (int p = 0; p < npanels; p++) {
        cgi_jbuf_printf(&c->b, "<g class=\"panel\">\n");
        draw_grid(c, &pb[p]);
        draw_tick_labels(c, &pb[p]);
        draw_frame(c, &pb[p], &panels[p], head);
        draw_legend(c, &pb[p], &panels[p], head);
        for (int s = 0; s < panels[p].nseries; s++) draw_series(c, &pb[p], &panels[p], s);
        cgi_jbuf_printf(&c->b, "</g>\n");
    }
    cgi_jbuf_printf(&c->b, "</svg>\n");
}

/* All of data to fd; false with errno set on failure. */
static bool write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return false;
        }
        data += w, len -= (size_t)w;
    }
    return true;
}

/* data[0, len) to a new temporary next to path ("<path>.XXXXXX", mode 0644
 * where mkstemp gives 0600), renamed over path; removed on failure. */
static cg_status write_atomic(const char *path, const char *data, size_t len) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    if (!tmp) return cgi_error(NULL, CG_ERR_NOMEM, FN ": out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", 8);
    int fd = mkstemp(tmp), err = errno;
    bool ok = fd >= 0 && fchmod(fd, 0644) == 0 && write_all(fd, data, len);
    if (fd >= 0) {
        err = ok ? 0 : errno;
        if (close(fd) != 0 && ok) ok = false, err = errno;
        if (ok && rename(tmp, path) != 0) ok = false, err = errno;
        if (!ok) remove(tmp);
    }
    free(tmp);
    if (!ok) return cgi_error(NULL, CG_ERR_IO, FN ": %s: %s", path, strerror(err));
    return CG_OK;
}

cg_status cg_chart_svg(const char *path, const char *title, const char *xlabel, int n,
                       int npanels, const cg_chart_panel *panels) {
    cg_status st = check_args(path, n, npanels, panels);
    if (st != CG_OK) return st;
    chart c = {.n = n,
               .xlabel = xlabel ? xlabel : "epoch",
               .xlo = n > 1 ? 1 : 0,
               .xhi = n > 1 ? n : 2};
    double xlo = 1, xhi = n;
    c.xt = n > 1 ? cgi_chart_ticks(&xlo, &xhi, true)
                 : (cgi_ticks){.step = 1, .exp10 = 0, .first = 1, .count = 1};
    draw_chart(&c, title, npanels, panels);
    st = c.b.failed ? cgi_error(NULL, CG_ERR_NOMEM, FN ": out of memory")
                    : write_atomic(path, c.b.data, c.b.len);
    cgi_jbuf_free(&c.b);
    return st;
}
