/* examples/custom_module.c as a test: user-defined module kinds trained
 * with AdamW parameter groups, warm-up then cosine and clipping, on
 * generated data; its --check mode stops after half the epochs, resumes in
 * a new process from the checkpoint and fails unless the result is bitwise
 * the uninterrupted run's. A plain program: its exit code is the verdict. */
#define main custom_module_main
#include "../examples/custom_module.c"
#undef main

int main(void) {
    char *argv[] = {"custom_module", "--check", "--synthetic", "640", "--epochs", "4",
                    "--width",       "32",      NULL};
    return custom_module_main(8, argv);
}
