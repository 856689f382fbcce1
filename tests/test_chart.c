/* Tests for nn/chart.c: the tick choice and labels (cgi_chart_ticks,
 * cgi_chart_label) for known ranges, and the SVG cg_chart_svg writes, read
 * back as text: well-formed (one root, balanced tags, entities only), its
 * parts (grid, ticks, labels, legend, one series group per series with one
 * point per drawn value), curves inside the frame, escaping, constant, tiny
 * and huge ranges, NaN gaps, one epoch, the replacement of an existing file,
 * and every error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "../nn/internal.h"

/* ---- a temporary directory per test --------------------------------------- */
static char dir_[64];

static int tmp_setup(void **state) {
    (void)state;
    snprintf(dir_, sizeof dir_, "/tmp/cgrad_chart_XXXXXX");
    return mkdtemp(dir_) ? 0 : -1;
}

static int files_in_dir(void) {
    DIR *d = opendir(dir_);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static int tmp_teardown(void **state) {
    (void)state;
    DIR *d = opendir(dir_);
    char p[400];
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir_, e->d_name);
        remove(p);
    }
    if (d) closedir(d);
    return rmdir(dir_);
}

static const char *in_dir(const char *name) {
    static char p[200];
    snprintf(p, sizeof p, "%s/%s", dir_, name);
    return p;
}

/* The file's text, malloc'd. */
static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

/* ---- reading the SVG back -------------------------------------------------- */
static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* One <svg> root, every tag closed in order, '&' only in the five entities,
 * numbers in tags with at most one decimal (small files). */
static void assert_well_formed(const char *svg) {
    const char *stack[64];
    int depth = 0, roots = 0;
    assert_memory_equal(svg, "<svg ", 5);
    size_t len = strlen(svg);
    assert_true(len > 7 && !strcmp(svg + len - 7, "</svg>\n"));
    for (const char *p = svg; *p; p++) {
        if (*p == '&') {
            bool entity = !strncmp(p, "&amp;", 5) || !strncmp(p, "&lt;", 4) ||
                          !strncmp(p, "&gt;", 4) || !strncmp(p, "&apos;", 6) ||
                          !strncmp(p, "&quot;", 6);
            if (!entity) fail_msg("a bare '&' at %d", (int)(p - svg));
        }
        if (*p == '>') fail_msg("a bare '>' at %d", (int)(p - svg));
        if (*p != '<') continue;
        const char *end = strchr(p, '>');
        assert_non_null(end);
        for (const char *q = p + 1; q < end; q++) {
            if (*q == '<') fail_msg("'<' inside a tag at %d", (int)(q - svg));
            if (*q == '.' && q[1] >= '0' && q[1] <= '9' && q[2] >= '0' && q[2] <= '9')
                fail_msg("two decimals at %d: %.20s", (int)(q - svg), q - 4);
        }
        if (p[1] == '/') {
            assert_true(depth > 0);
            const char *name = stack[--depth];
            size_t nl = strcspn(name, " >/");
            if (strncmp(p + 2, name, nl) != 0 || p[2 + nl] != '>')
                fail_msg("</%.10s> closes <%.10s>", p + 2, name);
        } else if (end[-1] != '/') {
            assert_true(depth < 64);
            if (depth == 0) roots++;
            stack[depth++] = p + 1;
        }
        p = end;
    }
    assert_int_equal(depth, 0);
    assert_int_equal(roots, 1);
}

/* The k-th group of class cls (its text up to its first "</g>": chart groups
 * hold no groups), malloc'd; NULL when there is none. */
static char *group(const char *svg, const char *cls, int k) {
    char open[64];
    snprintf(open, sizeof open, "<g class=\"%s\"", cls);
    const char *p = svg;
    for (int i = 0; p && i <= k; i++)
        if ((p = strstr(p, open)) != NULL && i < k) p += strlen(open);
    if (!p) return NULL;
    const char *end = strstr(p, "</g>");
    assert_non_null(end);
    char *s = malloc((size_t)(end - p) + 1);
    assert_non_null(s);
    memcpy(s, p, (size_t)(end - p));
    s[end - p] = 0;
    return s;
}

/* The contents of the <text> elements of s, in order, joined by '|'. */
static void texts(const char *s, char *out, size_t size) {
    out[0] = 0;
    for (const char *p = s; (p = strstr(p, "<text")) != NULL;) {
        const char *a = strchr(p, '>') + 1, *b = strstr(a, "</text>");
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%.*s", used ? "|" : "", (int)(b - a), a);
        p = b;
    }
}

/* The tick labels of panel k's y (or x) axis, joined by '|'. */
static void tick_labels(const char *svg, const char *axis, int k, char *out, size_t size) {
    char *g = group(svg, axis, k);
    assert_non_null(g);
    texts(g, out, size);
    free(g);
}

/* The value of attribute name in the first element of s having one. */
static double attr(const char *s, const char *name) {
    char key[32];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *p = strstr(s, key);
    assert_non_null(p);
    return atof(p + strlen(key));
}

/* The points of the series group g: its path's "x,y" pairs then its dots'
 * centres, into xs, ys; the count. */
static int series_points(const char *g, double *xs, double *ys, int max) {
    int n = 0;
    const char *d = strstr(g, " d=\"");
    for (const char *p = d ? d + 4 : NULL; p && *p != '"';) {
        while (*p == ' ' || *p == 'M' || *p == 'L') p++;
        char *e;
        assert_true(n < max);
        xs[n] = strtod(p, &e);
        assert_int_equal(*e, ',');
        ys[n++] = strtod(e + 1, &e);
        p = e;
    }
    for (const char *p = g; (p = strstr(p, "<circle")) != NULL; p++) {
        assert_true(n < max);
        xs[n] = attr(p, "cx");
        ys[n++] = attr(p, "cy");
    }
    return n;
}

/* Every point of every series strictly inside panel k's frame, 1 px clear. */
static void assert_inside_frame(const char *svg, int k, int nseries) {
    const char *f = strstr(svg, "<rect class=\"frame\"");
    for (int i = 0; i < k; i++) f = strstr(f + 1, "<rect class=\"frame\"");
    assert_non_null(f);
    double x0 = attr(f, "x"), y0 = attr(f, "y"), x1 = x0 + attr(f, "width"),
           y1 = y0 + attr(f, "height");
    const char *panel = f; /* the panel's series follow its frame */
    for (int s = 0; s < nseries; s++) {
        const char *gp = strstr(panel, "<g class=\"series\"");
        assert_non_null(gp);
        char *g = group(gp, "series", 0);
        double xs[64], ys[64];
        int n = series_points(g, xs, ys, 64);
        for (int i = 0; i < n; i++)
            if (xs[i] <= x0 + 1 || xs[i] >= x1 - 1 || ys[i] <= y0 + 1 || ys[i] >= y1 - 1)
                fail_msg("point (%g, %g) on or outside the frame [%g, %g] x [%g, %g]", xs[i],
                         ys[i], x0, x1, y0, y1);
        free(g);
        panel = gp + 1;
    }
}

/* One panel of one series y (n values) written to name; the text. */
static char *chart_of(const char *name, const double *y, int n) {
    cg_chart_series s = {"train", y, false};
    cg_chart_panel p = {"loss", NULL, 1, &s};
    assert_int_equal(cg_chart_svg(in_dir(name), "run", NULL, n, 1, &p), CG_OK);
    char *svg = read_text(in_dir(name));
    assert_well_formed(svg);
    return svg;
}

/* ---- ticks ------------------------------------------------------------------- */
static void assert_ticks(double lo, double hi, bool integer, double step, int64_t first,
                         int cnt) {
    cgi_ticks t = cgi_chart_ticks(&lo, &hi, integer);
    if (fabs(t.step - step) > 1e-12 * step || t.first != first || t.count != cnt)
        fail_msg("[%g, %g]: step %g first %lld count %d, want %g %lld %d", lo, hi, t.step,
                 (long long)t.first, t.count, step, (long long)first, cnt);
}

static void test_chart_ticks_choice(void **state) {
    (void)state;
    assert_ticks(0.27, 0.93, false, 0.1, 3, 7);     /* 0.3 .. 0.9; 0.2 would give 3 */
    assert_ticks(-0.05, 1.05, false, 0.2, 0, 6);    /* 0 .. 1 */
    assert_ticks(0.2125, 1.1875, false, 0.2, 2, 4); /* 0.4 .. 1.0; 0.1 would give 9 */
    assert_ticks(-0.3, 6.3, false, 1, 0, 7);        /* 7 and 4 (step 2): 7 is nearer 6 */
    assert_ticks(0.2375, 0.2625, false, 0.005, 48, 5);
    assert_ticks(-5e4, 1.05e6, false, 2e5, 0, 6);
    assert_ticks(1, 20, true, 5, 1, 4);   /* 5, 10, 15, 20 */
    assert_ticks(1, 8, true, 2, 1, 4);    /* 8 (step 1) and 4: a tie, the larger step */
    assert_ticks(1, 3, true, 1, 1, 3);    /* epochs: no step under 1 */
    assert_ticks(1, 18, true, 5, 1, 3);   /* 9 ticks (step 2) or 3: the range is kept */
    assert_ticks(1, 100, true, 20, 1, 5); /* 20 .. 100 */
    /* 9 ticks at step 2, 3 at step 5: widened on the nearer side, to 4 */
    double lo = 0.1, hi = 18;
    cgi_ticks t = cgi_chart_ticks(&lo, &hi, false);
    assert_true(t.step == 5 && t.first == 0 && t.count == 4); /* 0, 5, 10, 15 */
    assert_true(lo == 0 && hi == 18);
    lo = 2, hi = 19.9;
    t = cgi_chart_ticks(&lo, &hi, false);
    assert_true(t.step == 5 && t.first == 1 && t.count == 4 && lo == 2 && hi == 20);
}

/* A tie in counts: 4 at step 2 and 8 at step 1 are both 2 from 6; the
 * larger step wins. */
static void test_chart_ticks_tie_takes_larger_step(void **state) {
    (void)state;
    assert_ticks(-0.2, 7.2, false, 2, 0, 4); /* 0 .. 7 (8) or 0, 2, 4, 6 (4) */
}

static void assert_labels(const cgi_ticks *t, const char *want) {
    char got[256] = "", lab[48];
    for (int k = 0; k < t->count; k++) {
        cgi_chart_label(lab, sizeof lab, t, t->first + k);
        size_t used = strlen(got);
        snprintf(got + used, sizeof got - used, "%s%s", k ? "|" : "", lab);
    }
    if (strcmp(got, want)) fail_msg("labels %s, want %s", got, want);
}

static void test_chart_tick_labels(void **state) {
    (void)state;
    struct {
        double lo, hi;
        const char *want;
    } cases[] = {
        {0.27, 0.93, "0.3|0.4|0.5|0.6|0.7|0.8|0.9"},
        {-0.05, 1.05, "0|0.2|0.4|0.6|0.8|1.0"},
        {0.2375, 0.2625, "0.240|0.245|0.250|0.255|0.260"},
        {-1, 1, "-1.0|-0.5|0|0.5|1.0"},
        {-5e-8, 1.05e-6, "0|2e-7|4e-7|6e-7|8e-7|1e-6"},
        {9.5e-7, 1.05e-6, "9.6e-7|9.8e-7|1e-6|1.02e-6|1.04e-6"},
        {-5e4, 1.05e6, "0|2e5|4e5|6e5|8e5|1e6"},
        {0.0012, 0.0031, "0.0015|0.0020|0.0025|0.0030"}, /* 4 decimals: fixed */
        {0.00012, 0.00031, "1.5e-4|2e-4|2.5e-4|3e-4"},   /* 5: exponents */
        {1.2e-5, 3.1e-5, "1.5e-5|2e-5|2.5e-5|3e-5"},
        {1e4, 9e4, "20000|40000|60000|80000"},
        {-3.2e5, -1.1e5, "-3e5|-2.5e5|-2e5|-1.5e5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double lo = cases[i].lo, hi = cases[i].hi;
        cgi_ticks t = cgi_chart_ticks(&lo, &hi, false);
        assert_labels(&t, cases[i].want);
    }
}

/* ---- the file ------------------------------------------------------------------ */
#define N 10

/* Two panels, loss and accuracy, train and validation (dashed) in each; the
 * text of the file written. */
static char *two_panel_chart(void) {
    static double tl[N], vl[N], ta[N], va[N];
    for (int i = 0; i < N; i++) {
        tl[i] = 1.0 / (i + 1), vl[i] = 1.2 / (i + 1) + 0.1;
        ta[i] = 0.5 + 0.04 * i, va[i] = 0.45 + 0.04 * i;
    }
    cg_chart_series loss[2] = {{"train", tl, false}, {"validation", vl, true}};
    cg_chart_series acc[2] = {{"train", ta, false}, {"validation", va, true}};
    cg_chart_panel panels[2] = {{"loss", NULL, 2, loss}, {"accuracy", "val. accuracy", 2, acc}};
    assert_int_equal(cg_chart_svg(in_dir("c.svg"), "MLP, Adam 1e-3", "epoch", N, 2, panels),
                     CG_OK);
    char *svg = read_text(in_dir("c.svg"));
    assert_well_formed(svg);
    return svg;
}

/* The title, each panel's frame, title, axis labels and legend. */
static void test_chart_labels_and_legend(void **state) {
    (void)state;
    char *svg = two_panel_chart(), buf[512];
    assert_int_equal(count(svg, "<g class=\"panel\""), 2);
    assert_int_equal(count(svg, "<rect class=\"frame\""), 2);
    assert_non_null(strstr(svg, "class=\"title\" font-size=\"15\" font-weight=\"bold\">MLP, "
                                "Adam 1e-3</text>"));
    assert_non_null(strstr(svg, "<title>MLP, Adam 1e-3</title>"));
    assert_int_equal(count(svg, "class=\"xlabel\" text-anchor=\"middle\" font-size=\"12\">"
                                "epoch</text>"),
                     2);
    assert_non_null(strstr(svg, "class=\"ylabel\" text-anchor=\"middle\" font-size=\"12\">"
                                "loss</text>"));
    assert_non_null(strstr(svg, ">val. accuracy</text>"));
    assert_int_equal(count(svg, "class=\"panel-title\""), 2);
    for (int k = 0; k < 2; k++) {
        char *g = group(svg, "legend", k);
        texts(g, buf, sizeof buf);
        assert_string_equal(buf, "train|validation");
        assert_int_equal(count(g, "<line"), 2);
        assert_int_equal(count(g, "stroke-dasharray"), 1);
        free(g);
    }
    free(svg);
}

/* Tick labels on both axes and a grid line per tick. */
static void test_chart_ticks_and_grid(void **state) {
    (void)state;
    char *svg = two_panel_chart(), buf[512];
    tick_labels(svg, "xticks", 0, buf, sizeof buf); /* 1 .. 10 at step 2 */
    assert_string_equal(buf, "2|4|6|8|10");
    tick_labels(svg, "yticks", 1, buf, sizeof buf); /* 0.45 .. 0.86 padded: 9 at 0.05 */
    assert_string_equal(buf, "0.5|0.6|0.7|0.8");
    for (int k = 0; k < 2; k++) {
        char *g = group(svg, "grid", k), *t = group(svg, "yticks", k),
             *x = group(svg, "ticks", k);
        assert_int_equal(count(g, "<line"), count(t, "<text") + 5);
        assert_int_equal(count(x, "<line"), count(t, "<text") + 5);
        free(g);
        free(t);
        free(x);
    }
    free(svg);
}

/* A series group per series, N points each, in the palette's colours, dashed
 * where asked, inside the frame. */
static void test_chart_series(void **state) {
    (void)state;
    char *svg = two_panel_chart();
    assert_int_equal(count(svg, "<g class=\"series\""), 4);
    for (int s = 0; s < 4; s++) {
        char *g = group(svg, "series", s);
        double xs[N], ys[N];
        assert_int_equal(series_points(g, xs, ys, N), N);
        assert_int_equal(count(g, "<path"), 1);
        assert_non_null(strstr(g, s % 2 ? "#ff7f0e" : "#1f77b4"));
        assert_int_equal(count(g, "stroke-dasharray"), s % 2);
        for (int i = 1; i < N; i++) assert_true(xs[i] > xs[i - 1]);
        free(g);
    }
    assert_inside_frame(svg, 0, 2);
    assert_inside_frame(svg, 1, 2);
    free(svg);
}

/* The task's example range: y from 0.3 to 0.9 gets 0.3 .. 0.9 by 0.1; the
 * lowest and highest values sit inside the frame, not on it. */
static void test_chart_known_range(void **state) {
    (void)state;
    double y[7] = {0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
    char *svg = chart_of("r.svg", y, 7), buf[256];
    tick_labels(svg, "yticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "0.3|0.4|0.5|0.6|0.7|0.8|0.9");
    tick_labels(svg, "xticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "1|2|3|4|5|6|7");
    char *grid = group(svg, "grid", 0);
    assert_int_equal(count(grid, "<line"), 14);
    assert_non_null(strstr(grid, "stroke=\"#e6e6e6\""));
    free(grid);
    assert_inside_frame(svg, 0, 1);
    /* 0.3 and 0.9 are 5% of the range inside: 12 px of the 240 */
    const char *f = strstr(svg, "<rect class=\"frame\"");
    char *g = group(svg, "series", 0);
    double xs[7], ys[7];
    assert_int_equal(series_points(g, xs, ys, 7), 7);
    assert_float_equal(ys[0], attr(f, "y") + attr(f, "height") - 240 * 0.05 / 1.1, 0.06);
    assert_float_equal(ys[6], attr(f, "y") + 240 * 0.05 / 1.1, 0.06);
    free(g);
    free(svg);
}

static void test_chart_escapes_text(void **state) {
    (void)state;
    double y[2] = {1, 2};
    cg_chart_series s = {"a<b & \"c\"", y, false};
    cg_chart_panel p = {"l'oss > 0", NULL, 1, &s};
    assert_int_equal(cg_chart_svg(in_dir("e.svg"), "R&D <run>\t1\x01",
                                  "x & y \xc3\xa9\xff\xed\xa0\x80\xe2\x82", 2, 1, &p),
                     CG_OK);
    char *svg = read_text(in_dir("e.svg"));
    assert_well_formed(svg);
    assert_non_null(strstr(svg, ">R&amp;D &lt;run&gt;\t1 </text>"));
    assert_non_null(strstr(svg, "<title>R&amp;D &lt;run&gt;\t1 </title>"));
    assert_non_null(strstr(svg, ">a&lt;b &amp; &quot;c&quot;</text>"));
    assert_int_equal(count(svg, ">l&apos;oss &gt; 0</text>"), 2); /* title and y label */
    /* UTF-8 kept (é), what is not UTF-8 (0xff, a surrogate, a cut sequence) as '?' */
    assert_non_null(strstr(svg, ">x &amp; y \xc3\xa9\?\?\?\?\?\?</text>"));
    free(svg);
}

/* A constant series still gets an axis: 5% of itself either way (0: +-1). */
static void test_chart_constant_series(void **state) {
    (void)state;
    double c[5] = {0.25, 0.25, 0.25, 0.25, 0.25}, z[5] = {0}, buf_d[5] = {-7, -7, -7, -7, -7};
    char buf[256];
    char *svg = chart_of("c.svg", c, 5);
    tick_labels(svg, "yticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "0.240|0.245|0.250|0.255|0.260");
    assert_inside_frame(svg, 0, 1);
    free(svg);
    svg = chart_of("z.svg", z, 5);
    tick_labels(svg, "yticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "-1.0|-0.5|0|0.5|1.0");
    free(svg);
    svg = chart_of("n.svg", buf_d, 5);
    tick_labels(svg, "yticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "-7.3|-7.2|-7.1|-7.0|-6.9|-6.8|-6.7");
    free(svg);
}

static void test_chart_tiny_and_huge_ranges(void **state) {
    (void)state;
    double tiny[6], huge[6];
    for (int i = 0; i < 6; i++) tiny[i] = 2e-7 * i, huge[i] = 2e5 * i;
    char buf[256];
    char *svg = chart_of("t.svg", tiny, 6);
    tick_labels(svg, "yticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "0|2e-7|4e-7|6e-7|8e-7|1e-6");
    assert_inside_frame(svg, 0, 1);
    free(svg);
    svg = chart_of("h.svg", huge, 6);
    tick_labels(svg, "yticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "0|2e5|4e5|6e5|8e5|1e6");
    assert_inside_frame(svg, 0, 1);
    free(svg);
    /* a range a millionth of its values' size is drawn as a constant */
    double flat[3] = {1000, 1000.0000001, 1000};
    svg = chart_of("f.svg", flat, 3);
    tick_labels(svg, "yticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "960|980|1000|1020|1040");
    free(svg);
}

/* NaN and infinite values are gaps: a new "M" after each, a dot for a value
 * with no drawn neighbour; the points drawn are the values that are not. */
static void test_chart_nan_gaps(void **state) {
    (void)state;
    double y[9] = {1, NAN, 3, 4, NAN, INFINITY, 7, -INFINITY, 9};
    char *svg = chart_of("g.svg", y, 9), *g = group(svg, "series", 0);
    double xs[9], ys[9];
    assert_int_equal(series_points(g, xs, ys, 9), 5);
    assert_int_equal(count(g, "<circle"), 3); /* 1, 7 and 9 */
    assert_int_equal(count(g, "M"), 1);
    assert_int_equal(count(g, "L"), 1);
    free(g);
    free(svg);
    double two_runs[5] = {1, 2, NAN, 4, 5};
    svg = chart_of("g2.svg", two_runs, 5);
    g = group(svg, "series", 0);
    assert_int_equal(series_points(g, xs, ys, 9), 4);
    assert_int_equal(count(g, "<circle"), 0);
    assert_int_equal(count(g, "M"), 2);
    assert_true(xs[2] > xs[1]); /* the second run starts at epoch 4 */
    free(g);
    free(svg);
    /* nothing drawn: no path, the axis of [0, 1] */
    double none[3] = {NAN, NAN, NAN};
    char buf[256];
    svg = chart_of("g3.svg", none, 3);
    g = group(svg, "series", 0);
    assert_int_equal(series_points(g, xs, ys, 9), 0);
    tick_labels(svg, "yticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "0|0.2|0.4|0.6|0.8|1.0");
    free(g);
    free(svg);
}

/* One epoch: a dot in the middle of the frame, the x axis one tick "1". */
static void test_chart_one_epoch(void **state) {
    (void)state;
    double y[1] = {0.5};
    char *svg = chart_of("o.svg", y, 1), buf[256];
    char *g = group(svg, "series", 0);
    assert_int_equal(count(g, "<circle"), 1);
    assert_int_equal(count(g, "<path"), 0);
    const char *f = strstr(svg, "<rect class=\"frame\"");
    assert_float_equal(attr(g, "cx"), attr(f, "x") + attr(f, "width") / 2, 0.06);
    assert_float_equal(attr(g, "cy"), attr(f, "y") + attr(f, "height") / 2, 0.06);
    tick_labels(svg, "xticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "1");
    tick_labels(svg, "yticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "0.48|0.49|0.50|0.51|0.52");
    free(g);
    free(svg);
}

/* Series without a name stay out of the legend; a panel may have none; long
 * legends wrap and every panel's plot area keeps the same top. */
static void test_chart_legend_rows_and_empty_panels(void **state) {
    (void)state;
    double y[8][4];
    cg_chart_series many[8];
    static const char *names[8] = {
        "first series", "second series", "third series", "fourth series",
        "fifth series", "sixth series",  NULL,           "eighth series"};
    for (int s = 0; s < 8; s++) {
        for (int i = 0; i < 4; i++) y[s][i] = s + i;
        many[s] = (cg_chart_series){names[s], y[s], s % 2 == 1};
    }
    cg_chart_panel p[3] = {
        {"many", NULL, 8, many}, {"empty", NULL, 0, NULL}, {NULL, NULL, 1, many}};
    assert_int_equal(cg_chart_svg(in_dir("m.svg"), NULL, NULL, 4, 3, p), CG_OK);
    char *svg = read_text(in_dir("m.svg")), buf[512];
    assert_well_formed(svg);
    assert_null(strstr(svg, "<title>"));
    assert_null(strstr(svg, "class=\"title\""));
    char *g = group(svg, "legend", 0);
    texts(g, buf, sizeof buf);
    assert_string_equal(buf, "first series|second series|third series|fourth series|"
                             "fifth series|sixth series|eighth series");
    const char *last = g;
    for (const char *q = g; (q = strstr(q + 1, "<line")) != NULL;) last = q;
    double first_row = attr(g, "y1"), last_row = attr(last, "y1");
    assert_true(last_row > first_row); /* wrapped */
    free(g);
    const char *f1 = strstr(svg, "<rect class=\"frame\"");
    const char *f2 = strstr(f1 + 1, "<rect class=\"frame\""),
               *f3 = strstr(f2 + 1, "<rect class");
    assert_true(attr(f1, "y") == attr(f2, "y") && attr(f2, "y") == attr(f3, "y"));
    assert_true(attr(f1, "y") > first_row);
    assert_int_equal(count(svg, "<g class=\"series\""), 9);
    assert_int_equal(count(svg, "class=\"panel-title\""), 2);
    assert_int_equal(count(svg, "class=\"ylabel\""), 2);
    assert_int_equal(count(svg, ">epoch</text>"), 3);
    free(svg);
}

/* An existing chart is replaced whole; no temporary stays; readable by all. */
static void test_chart_replaces_file(void **state) {
    (void)state;
    double a[3] = {1, 2, 3}, b[3] = {30, 20, 10};
    free(chart_of("x.svg", a, 3));
    char *svg = chart_of("x.svg", b, 3), buf[256];
    tick_labels(svg, "yticks", 0, buf, sizeof buf);
    assert_string_equal(buf, "10|15|20|25|30");
    free(svg);
    assert_int_equal(files_in_dir(), 1);
    struct stat st;
    assert_int_equal(stat(in_dir("x.svg"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
}

static void assert_refused(cg_status want, cg_status got, const char *has) {
    assert_int_equal(got, want);
    const char *m = cg_last_error();
    if (strncmp(m, "cg_chart_svg: ", 14) != 0 || !strstr(m, has))
        fail_msg("message \"%s\" lacks \"%s\"", m, has);
    cg_clear_error();
}

static void test_chart_errors(void **state) {
    (void)state;
    double y[3] = {1, 2, 3};
    cg_chart_series s = {"train", y, false}, nully = {"v", NULL, false}, nine[9];
    for (int i = 0; i < 9; i++) nine[i] = s;
    cg_chart_panel ok = {"loss", NULL, 1, &s}, p9[9];
    for (int i = 0; i < 9; i++) p9[i] = ok;
    const char *path = in_dir("e.svg");
    assert_refused(CG_ERR_ARG, cg_chart_svg(NULL, "t", NULL, 3, 1, &ok), "path is NULL");
    assert_refused(CG_ERR_ARG, cg_chart_svg(path, "t", NULL, 3, 1, NULL), "panels is NULL");
    assert_refused(CG_ERR_ARG, cg_chart_svg(path, "t", NULL, 0, 1, &ok), "n is 0");
    assert_refused(CG_ERR_ARG, cg_chart_svg(path, "t", NULL, -5, 1, &ok), "n is -5");
    assert_refused(CG_ERR_ARG, cg_chart_svg(path, "t", NULL, 3, 0, &ok), "npanels is 0");
    assert_refused(CG_ERR_ARG, cg_chart_svg(path, "t", NULL, 3, 9, p9), "npanels is 9");
    cg_chart_panel bad = {"loss", NULL, -1, &s};
    assert_refused(CG_ERR_ARG, cg_chart_svg(path, "t", NULL, 3, 1, &bad), "panel 0 has -1");
    bad = (cg_chart_panel){"loss", NULL, 9, nine};
    p9[1] = bad;
    assert_refused(CG_ERR_ARG, cg_chart_svg(path, "t", NULL, 3, 2, p9), "panel 1 has 9");
    bad = (cg_chart_panel){"loss", NULL, 1, NULL};
    assert_refused(CG_ERR_ARG, cg_chart_svg(path, "t", NULL, 3, 1, &bad), "series is NULL");
    cg_chart_series two[2] = {s, nully};
    bad = (cg_chart_panel){"loss", NULL, 2, two};
    assert_refused(CG_ERR_ARG, cg_chart_svg(path, "t", NULL, 3, 1, &bad),
                   "panel 0, series 1: y is NULL");
    assert_int_equal(files_in_dir(), 0); /* nothing written */
    assert_refused(CG_ERR_IO, cg_chart_svg("/nonexistent-dir/x.svg", "t", NULL, 3, 1, &ok),
                   "/nonexistent-dir/x.svg: No such file or directory");
    assert_refused(CG_ERR_IO, cg_chart_svg(dir_, "t", NULL, 3, 1, &ok), dir_); /* a directory */
    assert_int_equal(files_in_dir(), 0); /* its temporary removed */
    assert_int_equal(cg_chart_svg(path, "t", NULL, 3, 1, &ok), CG_OK);
    assert_int_equal(cg_last_status(), CG_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chart_ticks_choice),
        cmocka_unit_test(test_chart_ticks_tie_takes_larger_step),
        cmocka_unit_test(test_chart_tick_labels),
        cmocka_unit_test_setup_teardown(test_chart_labels_and_legend, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_chart_ticks_and_grid, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_chart_series, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_chart_known_range, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_chart_escapes_text, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_chart_constant_series, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_chart_tiny_and_huge_ranges, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_chart_nan_gaps, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_chart_one_epoch, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_chart_legend_rows_and_empty_panels, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_chart_replaces_file, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_chart_errors, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
