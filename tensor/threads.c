/* One thread count for BLIS and cgrad's own OpenMP kernels. */
#include "internal.h"

#include <omp.h>

#include <stdatomic.h>

/* The count set by cg_set_num_threads, for every thread of the process: 0
 * until then. OpenMP's own setting (omp_set_num_threads) belongs to the
 * thread that makes it, so a model trained from a second thread would ignore
 * it; every parallel region of cgrad names this count instead. BLIS's count
 * (bli_thread_set_num_threads) is process-wide already. */
static atomic_int threads_set;

void cg_set_num_threads(int n) {
    if (n < 1) n = 1;
    atomic_store(&threads_set, n);
    omp_set_num_threads(n);
    cgi_gemm_set_threads(n);
}

int cg_get_num_threads(void) {
    int n = atomic_load_explicit(&threads_set, memory_order_relaxed);
    return n > 0 ? n : omp_get_max_threads();
}
