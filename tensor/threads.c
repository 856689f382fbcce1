/* One thread count for BLIS and cgrad's own OpenMP kernels. */
#include "internal.h"

#include <omp.h>

void cg_set_num_threads(int n) {
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    cgi_gemm_set_threads(n);
}

int cg_get_num_threads(void) { return omp_get_max_threads(); }
