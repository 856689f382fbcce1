/* Shared by the bench binaries: a monotonic clock, medians, and the command
 * line every bench takes (--json, --threads N, --reps N, --quick: a small
 * subset for smoke tests). */
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

static inline bench_opts bench_parse(int argc, char **argv, int default_reps) {
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
        else {
            fprintf(stderr, "usage: %s [--json] [--threads N] [--reps N] [--quick]\n", argv[0]);
            exit(2);
        }
    }
    if (o.threads > 0) cg_set_num_threads(o.threads);
    if (o.reps < 3) o.reps = 3;
    return o;
}

#endif
