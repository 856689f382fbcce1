/* Shared by the fuzz harnesses (libFuzzer's entry point, one per file): the
 * loaders read paths, so each input is written to a file of this process's
 * own first (in /dev/shm when there is one: no disk traffic per input). */
#ifndef CG_FUZZ_COMMON_H
#define CG_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a file; the path is static (one per process, suffix given). */
static inline const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix) {
    static char path[128];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/cgrad_fuzz_%ld%s", dir, (long)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) abort(); /* the harness's own failure, not the library's */
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return path;
}

#endif
