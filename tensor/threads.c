/* One thread count for BLIS and cgrad's own OpenMP kernels, and the
 * default's answer to a busy machine.
 *
 * A parallel region ends in a barrier: when another process holds the core
 * one of its threads needs, the region waits for the scheduler to give that
 * thread its core back, a slice of milliseconds, and a training step is
 * hundreds of regions. Measured (bench_load, 2 cores, two spinning
 * neighbours): an epoch of 200 MLP steps took 1.4-2.3 s at 2 threads and 0.1
 * s at 1. Spinning less (OMP_WAIT_POLICY=passive) frees the neighbours' CPU
 * but not the barrier. So the default count watches for it: the process's
 * involuntary context switches (getrusage's ru_nivcsw, counted by the kernel
 * each time another task takes a core from one of our threads) are read at
 * most every 150 ms. Measured on the 2-core VM at 2 threads: 34-57 per
 * second idle (a GPT step, MLPs at batch 32 to 1000), about 250 with one
 * spinning neighbour per core. A scheduler with longer slices switches less:
 * on a 2-core Intel VM (Linux 6.18) the same neighbours gave 0-240 per
 * second, some seconds never past 120. So the time the calling thread
 * waited for a core (Linux's /proc/thread-self/schedstat, read without
 * stdio: no allocation) counts too: 0-3% of a window idle, 39-50% with one
 * or two spinning neighbours on that VM. Past 120 switches per second or
 * 15% of the time waiting, in two windows running, the default drops to
 * one thread for 2 s, then tries all the cores again for one window; still
 * busy, it waits twice as long (up to 16 s) before the next try.
 * cgrad's kernels give the same bits for any count, so the switch changes
 * none of their numbers (BLIS's products do not change with its skx
 * kernels; its AVX2 ones can differ in the last bits). A count set with
 * cg_set_num_threads is used as it is. */
#include "internal.h"

#include <omp.h>

#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* The count set by cg_set_num_threads, for every thread of the process: 0
 * for the default. OpenMP's own setting (omp_set_num_threads) belongs to the
 * thread that makes it, so a model trained from a second thread would ignore
 * it; every parallel region of cgrad names this count instead. */
static atomic_int threads_set;

#define CHECK_NS      (150 * 1000000LL)   /* how often the load is read */
#define HOLD_NS       (2000 * 1000000LL)  /* how long one thread is kept at first */
#define HOLD_MAX_NS   (16000 * 1000000LL) /* doubling while the machine stays busy */
#define BUSY_PER_SEC  120                 /* involuntary switches that mean "busy" */
#define BUSY_WAIT_PCT 15                  /* or percent of the time waiting for a core */
#define BUSY_WINDOWS  2                   /* in that many windows running */

/* The default's state, shared by all threads; one of them at a time reads
 * the counters (the others keep the last answer). */
static atomic_int auto_reduced;       /* 1: the default is one thread now */
static atomic_llong next_check_ns;    /* when to read the counters next */
static atomic_llong hold_until_ns;    /* the reduction lasts until then */
static atomic_llong last_nivcsw = -1; /* at the last reading */
static atomic_llong last_check_ns;
static atomic_int busy_windows; /* consecutive windows past BUSY_PER_SEC */
static atomic_int probing;      /* all the cores again after a hold: one window decides */
static atomic_llong hold_ns = HOLD_NS;
static atomic_flag checking = ATOMIC_FLAG_INIT;

static long long now_ns(void) {
    struct timespec t;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t); /* a few ns: no syscall */
#else
    clock_gettime(CLOCK_MONOTONIC, &t);
#endif
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Nanoseconds the calling thread has spent runnable but waiting for a core
 * (the second of schedstat's three numbers), or -1 where that is not known. */
static long long run_delay_ns(void) {
    char buf[128];
    int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0) return -1;
    buf[got] = '\0';
    char *cpu_end, *end;
    strtoll(buf, &cpu_end, 10);
    long long wait = strtoll(cpu_end, &end, 10);
    return end == cpu_end || wait < 0 ? -1 : wait;
}

/* True when the calling thread waited for a core more than BUSY_WAIT_PCT of
 * the time since its own last reading (the numbers are per thread, and the
 * reading rotates among the threads that ask for the count). */
static bool waited_long(long long now) {
    static _Thread_local long long last_wait = -1, last_ns;
    long long wait = run_delay_ns(), dt = now - last_ns, before = last_wait;
    last_wait = wait, last_ns = now;
    return before >= 0 && wait >= before && dt > 0 &&
           (wait - before) * 100 > BUSY_WAIT_PCT * dt;
}

/* Reads the switch counter and the wait, and decides the next 150 ms. */
static void check_load(long long now) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return;
    long long n = ru.ru_nivcsw, last = atomic_load(&last_nivcsw);
    long long dt = now - atomic_load(&last_check_ns);
    bool waited = waited_long(now);
    atomic_store(&last_nivcsw, n);
    atomic_store(&last_check_ns, now);
    if (last < 0 || dt <= 0) return;
    bool busy = (n - last) * 1000000000LL > (long long)BUSY_PER_SEC * dt || waited;
    int run = busy ? atomic_load(&busy_windows) + 1 : 0;
    atomic_store(&busy_windows, run);
    if (atomic_load(&auto_reduced)) {
        if (now >= atomic_load(&hold_until_ns)) { /* try all the cores again */
            atomic_store(&auto_reduced, 0);
            atomic_store(&busy_windows, 0);
            atomic_store(&probing, 1);
        }
        return;
    }
    bool probe = atomic_exchange(&probing, 0);
    if (probe && !busy) atomic_store(&hold_ns, HOLD_NS); /* the neighbours left */
    if (!(probe ? busy : run >= BUSY_WINDOWS)) return;
    long long hold = atomic_load(&hold_ns);
    if (probe) { /* still busy: wait longer before the next try */
        hold = hold * 2 > HOLD_MAX_NS ? HOLD_MAX_NS : hold * 2;
        atomic_store(&hold_ns, hold);
    }
    atomic_store(&hold_until_ns, now + hold);
    atomic_store(&auto_reduced, 1);
}

/* The default count: OpenMP's (the cores, or OMP_NUM_THREADS), or one while
 * other processes keep taking our cores. */
static int default_threads(void) {
    int full = omp_get_max_threads();
    if (full <= 1) return full;
    long long now = now_ns();
    if (now >= atomic_load_explicit(&next_check_ns, memory_order_relaxed) &&
        !atomic_flag_test_and_set(&checking)) {
        atomic_store(&next_check_ns, now + CHECK_NS);
        check_load(now);
        atomic_flag_clear(&checking);
    }
    return atomic_load_explicit(&auto_reduced, memory_order_relaxed) ? 1 : full;
}

/* OpenMP's own count is left alone (every region names cgrad's), so 0 can
 * go back to OpenMP's default. */
void cg_set_num_threads(int n) { atomic_store(&threads_set, n < 0 ? 1 : n); }

int cg_get_num_threads(void) {
    int n = atomic_load_explicit(&threads_set, memory_order_relaxed);
    return n > 0 ? n : default_threads();
}
