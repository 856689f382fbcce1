/* cg_idx_read and cg_idx_load on arbitrary bytes, raw or gzip (the reader
 * tells them apart by the magic bytes, so one harness covers both; the seed
 * corpus has both). */
#include "fuzz_common.h"

#include "cgrad.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, ".idx");
    cg_idx idx;
    if (cg_idx_read(path, &idx) == CG_OK) {
        int64_t n = 1;
        for (int i = 0; i < idx.ndim; i++) n *= idx.shape[i];
        volatile uint8_t sum = 0; /* read every byte the reader promised */
        for (int64_t i = 0; i < n; i++) sum = (uint8_t)(sum + idx.data[i]);
        (void)sum;
    }
    cg_idx_free(&idx);
    cg_tensor_free(cg_idx_load(path, CG_F32, 1.0 / 255));
    cg_clear_error();
    return 0;
}
