/* What every training example shares whatever it trains on: a monotonic
 * clock, Keras' progress bar, an SVG line chart (SVG is text: no plotting
 * library), the --help list and the check of output paths at startup. Each
 * function is static inline: include this file in one program
 * (fashion_common.h does). Standard C, POSIX and cgrad's public header. */
#ifndef EXAMPLE_COMMON_H
#define EXAMPLE_COMMON_H

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgrad.h"

static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Keras' bar: "1875/1875 [=====...] 0.9s - loss: 0.4967 - acc: 0.8253",
 * metrics being the text after the seconds; redrawn in place (\r) until end. */
static inline void progress_bar(long long done, long long total, double secs,
                                const char *metrics, int end) {
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
static inline void svg_panel_xy(FILE *f, int x0, const char *title, int n, const double *xs,
                                int ncurves, const double *const *curves,
                                const char *const *colours) {
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

/* ---- the command line ------------------------------------------------------- */
/* "usage: PROG [flags]", then lines (NULL-terminated), one flag a line, on f:
 * stdout for --help, stderr for a bad flag. */
static inline void print_usage(FILE *f, const char *prog, const char *const *lines) {
    fprintf(f, "usage: %s [flags]\n", prog);
    for (; *lines; lines++) fprintf(f, "%s\n", *lines);
}

/* One flag of a command line: its name, and where its value goes. Made by
 * the flag_* functions below, which check the destination's type. */
typedef struct example_flag {
    const char *name;
    char kind; /* 'i' int, 'l' int64_t, 'u' uint64_t, 'f' double, 's' string, 'b' switch */
    void *dst;
} example_flag;

static inline example_flag flag_int(const char *name, int *dst) {
    return (example_flag){name, 'i', dst};
}
static inline example_flag flag_i64(const char *name, int64_t *dst) {
    return (example_flag){name, 'l', dst};
}
static inline example_flag flag_u64(const char *name, uint64_t *dst) {
    return (example_flag){name, 'u', dst};
}
static inline example_flag flag_real(const char *name, double *dst) {
    return (example_flag){name, 'f', dst};
}
static inline example_flag flag_str(const char *name, const char **dst) {
    return (example_flag){name, 's', dst};
}
/* A switch: takes no value, sets *dst to true. */
static inline example_flag flag_switch(const char *name, bool *dst) {
    return (example_flag){name, 'b', dst};
}

/* v into f's destination; -1 when it is not a whole number (or real) of
 * the flag's type. */
static inline int flag_value(const example_flag *f, const char *v) {
    char *end = NULL;
    errno = 0;
    if (f->kind == 's') {
        *(const char **)f->dst = v;
        return 0;
    } else if (f->kind == 'i') {
        long x = strtol(v, &end, 10);
        if (x < INT_MIN || x > INT_MAX) return -1;
        *(int *)f->dst = (int)x;
    } else if (f->kind == 'l') {
        *(int64_t *)f->dst = strtoll(v, &end, 10);
    } else if (f->kind == 'u') {
        *(uint64_t *)f->dst = strtoull(v, &end, 10);
    } else {
        *(double *)f->dst = strtod(v, &end);
    }
    return end == v || *end || errno ? -1 : 0;
}

/* argv against the table flags [n]: 1 for --help, -1 for an unknown flag,
 * a missing value or one that does not parse, else 0 (the caller checks
 * ranges). */
static inline int parse_flags(int argc, char **argv, const example_flag *flags, int n) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return 1;
        const example_flag *f = NULL;
        for (int j = 0; j < n && !f; j++)
            if (!strcmp(argv[i], flags[j].name)) f = &flags[j];
        if (!f) return -1;
        if (f->kind == 'b')
            *(bool *)f->dst = true;
        else if (++i >= argc || flag_value(f, argv[i]))
            return -1;
    }
    return 0;
}

/* ---- output files ------------------------------------------------------------ */
/* Outputs go under build/ by default; that one directory is made when it is
 * missing (in the current directory, like make's). */
#define OUTPUT_DIR "build"

/* The directory of path ("." for a bare name) into dir; -1 if it is too long. */
static inline int parent_dir(const char *path, char *dir, size_t size) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n + 2 > size) return -1;
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else
        memcpy(dir, path, n), dir[n] = '\0';
    return 0;
}

/* Whether path (given by flag; NULL: none asked for) can be written: its
 * directory exists and is writable and path is not a directory or a file
 * that cannot be written. Checked at startup so that a long run does not
 * fail at its end, and without creating path (a failed run leaves no empty
 * file). 0, or -1 with a message naming prog, flag and the reason. */
static inline int check_output(const char *prog, const char *flag, const char *path) {
    char dir[1024];
    if (!path) return 0;
    if (parent_dir(path, dir, sizeof dir) != 0) {
        fprintf(stderr, "%s: %s %s: the path is too long\n", prog, flag, path);
        return -1;
    }
    if (!strcmp(dir, OUTPUT_DIR) && mkdir(OUTPUT_DIR, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot make %s/: %s\n", prog, OUTPUT_DIR, strerror(errno));
        return -1;
    }
    struct stat st;
    const char *why = NULL;
    if (stat(dir, &st) != 0)
        why = strerror(errno); /* no such directory */
    else if (!S_ISDIR(st.st_mode))
        why = strerror(ENOTDIR);
    else if (access(dir, W_OK | X_OK) != 0)
        why = strerror(errno); /* read-only */
    else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        why = "it is a directory";
    else if (access(path, F_OK) == 0 && access(path, W_OK) != 0)
        why = strerror(errno);
    if (why) fprintf(stderr, "%s: %s %s: cannot write there: %s\n", prog, flag, path, why);
    return why ? -1 : 0;
}

/* fopen(path, "w"); NULL with cgrad's error set (CG_ERR_IO, naming path). */
static inline FILE *open_output(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) cg_set_error(CG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return f;
}

/* Closes f from open_output(path); 0, or -1 with cgrad's error set
 * (CG_ERR_IO, naming path) when a write failed (a full disk, say). */
static inline int close_output(FILE *f, const char *path) {
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        cg_set_error(CG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

#endif
