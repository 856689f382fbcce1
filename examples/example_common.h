/* What every training example shares whatever it trains on: a monotonic
 * clock, Keras' progress bar and an SVG line chart (SVG is text: no
 * plotting library). Each function is static: include this file in one
 * program (fashion_common.h does). Standard C and POSIX only. */
#ifndef EXAMPLE_COMMON_H
#define EXAMPLE_COMMON_H

#include <math.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Keras' bar: "1875/1875 [=====...] 0.9s - loss: 0.4967 - acc: 0.8253",
 * metrics being the text after the seconds; redrawn in place (\r) until end. */
static void progress_bar(long long done, long long total, double secs, const char *metrics,
                         int end) {
    char bar[31];
    int fill = (int)(30 * done / (total > 0 ? total : 1));
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : '.');
    bar[30] = '\0';
    printf("\r%lld/%lld [%s] %.1fs%s", done, total, bar, secs, metrics);
    if (!end) fflush(stdout);
}

/* One panel at (x0, 20), 360 x 240: ncurves curves of n points (NaN points
 * are skipped), at xs[i] (NULL: evenly spaced), coloured colours[c]; the
 * title shows the value range. */
static void svg_panel_xy(FILE *f, int x0, const char *title, int n, const double *xs,
                         int ncurves, const double *const *curves, const char *const *colours) {
    double lo = 0, hi = 0, xlo = xs ? xs[0] : 0, xhi = xs ? xs[n - 1] : n - 1;
    int seen = 0;
    for (int c = 0; c < ncurves; c++)
        for (int i = 0; i < n; i++) {
            double v = curves[c][i];
            if (isnan(v)) continue; /* no point */
            if (!seen || v < lo) lo = v;
            if (!seen || v > hi) hi = v;
            seen = 1;
        }
    if (hi - lo < 1e-9) hi = lo + 1;
    if (xhi - xlo <= 0) xhi = xlo + 1;
    fprintf(f,
            "<rect x='%d' y='20' width='360' height='240' fill='none' stroke='#888'/>\n"
            "<text x='%d' y='14' font-size='13'>%s (%.3f to %.3f)</text>\n",
            x0, x0, title, lo, hi);
    for (int c = 0; c < ncurves; c++) {
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='", colours[c]);
        for (int i = 0; i < n; i++) {
            double x = xs ? xs[i] : i, v = curves[c][i];
            if (isnan(v)) continue;
            fprintf(f, "%.1f,%.1f ", x0 + 360.0 * (n > 1 ? (x - xlo) / (xhi - xlo) : 0.5),
                    20 + 240 * (1 - (v - lo) / (hi - lo)));
        }
        fprintf(f, "'/>\n");
    }
}

#endif
