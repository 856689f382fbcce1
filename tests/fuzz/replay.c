/* Runs a fuzz harness on files, without libFuzzer: the regression side of
 * the campaign, part of make test (built by gcc with the sanitizers like
 * every test, HARNESS naming the harness). Arguments: files or directories
 * (every file in them not starting with '.'); none: the seed corpus
 * build/fuzz-corpus/HARNESS and the reproducers found so far,
 * tests/fuzz/regressions/HARNESS. Prints the count and exits 0; a finding
 * aborts (or is a sanitizer report). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)(n > 0 ? n : 0));
    free(buf);
    return 1;
}

static int run_path(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) return run_file(path);
    DIR *d = opendir(path);
    int count = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        count += run_path(sub);
    }
    if (d) closedir(d);
    return count;
}

int main(int argc, char **argv) {
    int count = 0;
    for (int i = 1; i < argc; i++) count += run_path(argv[i]);
    if (argc == 1) {
        count += run_path("build/fuzz-corpus/" HARNESS);
        count += run_path("tests/fuzz/regressions/" HARNESS);
        if (count == 0) {
            fprintf(stderr, "%s: no inputs (run from the top directory)\n", argv[0]);
            return 1;
        }
    }
    printf("%s: %d inputs, no finding\n", argv[0], count);
    return 0;
}
