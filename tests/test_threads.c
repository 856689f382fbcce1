/* tensor/threads.c: the thread count, and the default's answer to a busy
 * machine (one thread while other processes keep taking our cores, all of
 * them again once they stop). The busy machine is made here: one spinning
 * child process per core. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgrad.h"

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Parallel work (an elementwise op over 1M elements: all the threads the
 * count allows) for `secs`, asking the count as kernels do; the smallest
 * count seen. */
static int least_count_while_working(double secs) {
    int least = cg_get_num_threads();
    cg_tensor *x = cg_ones(NULL, CG_F32, CG_SHAPE(1 << 20));
    for (double t0 = seconds(); seconds() - t0 < secs;) {
        cg_tensor_free(cg_add(NULL, x, x));
        int n = cg_get_num_threads();
        if (n < least) least = n;
    }
    cg_tensor_free(x);
    return least;
}

static void test_threads_set_and_default(void **state) {
    (void)state;
    cg_set_num_threads(3);
    assert_int_equal(cg_get_num_threads(), 3);
    cg_set_num_threads(-2);
    assert_int_equal(cg_get_num_threads(), 1);
    cg_set_num_threads(0); /* back to the default */
    assert_int_equal(cg_get_num_threads(), omp_get_max_threads());
}

/* With every core busy the default drops to one thread within a second, a
 * set count stays as set, and the default comes back to all the cores
 * after the neighbours stop (the reduction holds 2 s). */
static void test_threads_default_yields_to_busy_neighbours(void **state) {
    (void)state;
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    cg_set_num_threads(0);
    if (omp_get_max_threads() < 2) skip(); /* nothing to give back on one core */
    /* a machine still busy after 2 s (other jobs beside the tests) has nothing
     * to show; the default comes back within its 2 s hold once it is idle */
    bool idle = false;
    for (int i = 0; i < 7 && !idle; i++)
        idle = least_count_while_working(0.3) == omp_get_max_threads();
    if (!idle) skip();
    pid_t kids[64];
    int nk = cores < 64 ? cores : 64;
    for (int i = 0; i < nk; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0)
            for (volatile unsigned long s = 0;; s++) {
            }
    }
    int least = least_count_while_working(1.0);
    cg_set_num_threads(2);
    int set = least_count_while_working(0.3);
    cg_set_num_threads(0);
    for (int i = 0; i < nk; i++) kill(kids[i], SIGKILL);
    for (int i = 0; i < nk; i++) waitpid(kids[i], NULL, 0);
    assert_int_equal(least, 1);
    assert_int_equal(set, 2);
    double t0 = seconds();
    while (cg_get_num_threads() == 1 && seconds() - t0 < 4) least_count_while_working(0.05);
    assert_int_equal(cg_get_num_threads(), omp_get_max_threads());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_set_and_default),
        cmocka_unit_test(test_threads_default_yields_to_busy_neighbours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
