/* Shared by the bench binaries: a monotonic clock, medians, and the command
 * line every bench takes (--json, --threads N, --reps N, --quick: a small
 * subset for smoke tests, --help: the list, one flag a line). */
#ifndef CG_BENCH_COMMON_H
#define CG_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cgrad.h"

typedef struct bench_opts {
    int json;
    int threads;
    int reps;
    int quick;
} bench_opts;

static inline double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place; returns the median. */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* What a bench's --help says beyond the flags every bench takes. */
typedef struct bench_help {
    const char *about;        /* what the bench measures, lines of at most 90 characters */
    const char *reps;         /* what --reps N counts, e.g. "timed samples per case" */
    const char *quick;        /* what --quick runs */
    const char *const *extra; /* the bench's own flags' lines, NULL-terminated; NULL: none */
} bench_help;

/* The list on f: stdout for --help, stderr for a bad flag. */
static inline void bench_usage(FILE *f, const char *prog, int default_reps,
                               const bench_help *h) {
    fprintf(f,
            "usage: %s [flags]\n%s\n"
            "  --json         one JSON object per case and line instead of the table\n"
            "  --threads N    threads for BLIS and cgrad (default: OpenMP's, all cores)\n"
            "  --reps N       %s, at least 3 (%d)\n"
            "  --quick        %s\n",
            prog, h->about, h->reps, default_reps, h->quick);
    for (const char *const *e = h->extra; e && *e; e++) fprintf(f, "%s\n", *e);
    fprintf(f, "  --help         this list\n");
}

/* The common flags; --help (or -h) prints the list and exits 0, a bad flag
 * prints it to stderr and exits 2. A bench's own flags are taken out of argv
 * before. */
static inline bench_opts bench_parse(int argc, char **argv, int default_reps,
                                     const bench_help *help) {
    bench_opts o = {0, 0, default_reps, 0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            o.json = 1;
        else if (!strcmp(argv[i], "--quick"))
            o.quick = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            o.threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            o.reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            bench_usage(stdout, argv[0], default_reps, help);
            exit(0);
        } else {
            fprintf(stderr, "%s: unknown flag or missing value: %s\n", argv[0], argv[i]);
            bench_usage(stderr, argv[0], default_reps, help);
            exit(2);
        }
    }
    if (o.threads > 0) cg_set_num_threads(o.threads);
    if (o.reps < 3) o.reps = 3;
    return o;
}

#endif
