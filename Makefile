# cgrad: `make` builds build/libcgrad.a and build/libcgrad.so (fast: -O3, this CPU).
# `make test` installs missing Debian packages (as root), then runs every cmocka
# binary twice: optimised, and under AddressSanitizer + UBSan. Last line:
# "N passed, N failed". See README.md for the other targets.

CC      ?= cc
PREFIX  ?= /usr/local
ARCH    ?= -march=native
OPT     ?= -O3
VERSION := 0.1.0

WARN    := -std=c11 -Wall -Wextra -Wpedantic -Werror -Wshadow -Wstrict-prototypes \
           -Wno-unknown-pragmas
# -fno-math-errno: libm calls (sqrt in Adam, RMSprop, ...) may then vectorise;
# cgrad never reads errno from libm, and no result changes.
BASE    := $(WARN) -fPIC -fvisibility=hidden -fopenmp -fno-math-errno -D_POSIX_C_SOURCE=200809L \
           -I. -MMD -MP
LIBS    := -lblis -lz -lm -lpthread
REL_CFLAGS  := $(BASE) $(OPT) $(ARCH) -g
ASAN_CFLAGS := $(BASE) -O1 -g -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=all
ASAN_LDFLAGS := -fsanitize=address,undefined
# valgrind cannot decode AVX-512, so its flavour is built for baseline x86-64.
VG_CFLAGS   := $(BASE) -O2 -g

SRC     := $(sort $(wildcard tensor/*.c autograd/*.c ops/*.c nn/*.c))
HEADERS := cgrad.h $(wildcard tensor/*.h autograd/*.h ops/*.h nn/*.h)
PUBLIC_HEADERS := cgrad.h cgrad_cmocka.h tensor/tensor.h autograd/autograd.h ops/ops.h nn/nn.h
TESTS   := $(sort $(basename $(notdir $(wildcard tests/test_*.c))))
EXAMPLES := $(sort $(basename $(notdir $(wildcard examples/*.c))))
BENCHES := $(sort $(basename $(notdir $(wildcard bench/bench_*.c))))

REL  := build/rel
ASAN := build/asan
# fuzzing (tests/fuzz/, below)
FUZZERS      := safetensors idx json
FUZZ_CORPUS  := build/fuzz-corpus
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_CFLAGS  := -std=c11 -g -O1 -fno-omit-frame-pointer -fopenmp -fno-math-errno \
                -D_POSIX_C_SOURCE=200809L -I. -Wno-unknown-pragmas \
                -fsanitize=fuzzer-no-link,address,undefined
FUZZ         := build/fuzz
REPLAYS      := $(addprefix $(ASAN)/tests/fuzz/replay_,$(FUZZERS))
VG   := build/vg

.PHONY: all deps test test-run test-build valgrind demo tour char_gpt examples bench bench-compare \
        ddp-demo bench-ddp \
        install uninstall clean format format-check fuzz
.DEFAULT_GOAL := all

all: build/libcgrad.a build/libcgrad.so $(DIST_LIB)

# bible-kjv: the text examples/char_gpt.c trains on (no test needs it);
# Open MPI: the optional data-parallel part (dist/) and its tests.
deps:
	@sh tools/deps.sh bible-kjv openmpi-bin libopenmpi-dev

# ---- library -------------------------------------------------------------
# The direct convolution kernels are written as multiply-adds; let them be FMAs
# (ISO C mode otherwise keeps the multiply and the add apart).
$(REL)/tensor/conv_kernels.o: REL_CFLAGS += -ffp-contract=fast

$(REL)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(REL_CFLAGS) -c $< -o $@
$(ASAN)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -c $< -o $@

build/libcgrad.a: $(SRC:%.c=$(REL)/%.o)
	@rm -f $@
	ar rcs $@ $^
build/libcgrad.so: $(SRC:%.c=$(REL)/%.o)
	$(CC) -shared -fopenmp -Wl,-soname,libcgrad.so.0 -o $@ $^ $(LIBS)
$(ASAN)/libcgrad.a: $(SRC:%.c=$(ASAN)/%.o)
	@rm -f $@
	ar rcs $@ $^
$(VG)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(VG_CFLAGS) -c $< -o $@
$(VG)/libcgrad.a: $(SRC:%.c=$(VG)/%.o)
	@rm -f $@
	ar rcs $@ $^

# ---- the MPI part (dist/): built only where mpicc is ------------------------
# build/libcgrad_dist.a holds data-parallel training (dist/dist.h); link it
# before libcgrad.a, with mpicc. Its tests run under mpirun with 2 and 3
# ranks (as root in CI; --oversubscribe: more ranks than cores).
MPICC    ?= mpicc
HAVE_MPI := $(shell command -v $(MPICC) >/dev/null 2>&1 && echo 1)
DIST_SRC := $(sort $(wildcard dist/*.c))
DIST_TESTS := $(sort $(basename $(notdir $(wildcard tests/dist/test_*.c))))
MPIRUN   ?= mpirun --allow-run-as-root --oversubscribe
export MPIRUN
HEADERS  += $(wildcard dist/*.h)

$(REL)/dist/%.o: dist/%.c
	@mkdir -p $(@D)
	$(MPICC) $(REL_CFLAGS) -c $< -o $@
$(ASAN)/dist/%.o: dist/%.c
	@mkdir -p $(@D)
	$(MPICC) $(ASAN_CFLAGS) -c $< -o $@
$(REL)/tests/dist/%.o: tests/dist/%.c
	@mkdir -p $(@D)
	$(MPICC) $(REL_CFLAGS) -c $< -o $@
$(ASAN)/tests/dist/%.o: tests/dist/%.c
	@mkdir -p $(@D)
	$(MPICC) $(ASAN_CFLAGS) -c $< -o $@
build/libcgrad_dist.a: $(DIST_SRC:%.c=$(REL)/%.o)
	@rm -f $@
	ar rcs $@ $^
$(ASAN)/libcgrad_dist.a: $(DIST_SRC:%.c=$(ASAN)/%.o)
	@rm -f $@
	ar rcs $@ $^
$(REL)/tests/dist/%: $(REL)/tests/dist/%.o build/libcgrad_dist.a build/libcgrad.a
	$(MPICC) -fopenmp -o $@ $< build/libcgrad_dist.a build/libcgrad.a -lcmocka $(LIBS)
$(ASAN)/tests/dist/%: $(ASAN)/tests/dist/%.o $(ASAN)/libcgrad_dist.a $(ASAN)/libcgrad.a
	$(MPICC) -fopenmp $(ASAN_LDFLAGS) -o $@ $< $(ASAN)/libcgrad_dist.a $(ASAN)/libcgrad.a \
	    -lcmocka $(LIBS)
$(REL)/examples/ddp_%: $(REL)/examples/ddp_%.o build/libcgrad_dist.a build/libcgrad.a
	$(MPICC) -fopenmp -o $@ $< build/libcgrad_dist.a build/libcgrad.a $(LIBS)
$(REL)/examples/ddp_%.o: examples/ddp_%.c
	@mkdir -p $(@D)
	$(MPICC) $(REL_CFLAGS) -c $< -o $@
$(REL)/bench/bench_ddp: $(REL)/bench/bench_ddp.o build/libcgrad_dist.a build/libcgrad.a
	$(MPICC) -fopenmp -o $@ $< build/libcgrad_dist.a build/libcgrad.a $(LIBS)
$(REL)/bench/bench_ddp.o: bench/bench_ddp.c
	@mkdir -p $(@D)
	$(MPICC) $(REL_CFLAGS) -c $< -o $@

# Each MPI test binary twice, as "mpiN:binary" (tools/run-tests.sh runs it
# under $(MPIRUN) -np N).
ifeq ($(HAVE_MPI),1)
DIST_LIB        := build/libcgrad_dist.a
DIST_TEST_BINS  := $(addprefix $(REL)/tests/dist/,$(DIST_TESTS)) \
                   $(addprefix $(ASAN)/tests/dist/,$(DIST_TESTS))
DIST_RUNS       := $(foreach t,$(DIST_TESTS),mpi2:$(REL)/tests/dist/$(t) mpi3:$(REL)/tests/dist/$(t))
DIST_ASAN_RUNS  := $(foreach t,$(DIST_TESTS),mpi2:$(ASAN)/tests/dist/$(t) mpi3:$(ASAN)/tests/dist/$(t))
endif

# ---- tests ---------------------------------------------------------------
# test_oom fails cgrad's allocations one by one: the linker sends the
# library's calls through the test's own wrappers.
OOM_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc
$(REL)/tests/test_oom $(ASAN)/tests/test_oom $(VG)/tests/test_oom: TEST_LDFLAGS := $(OOM_WRAP)
$(REL)/tests/%: $(REL)/tests/%.o build/libcgrad.a
	$(CC) -fopenmp $(TEST_LDFLAGS) -o $@ $< build/libcgrad.a -lcmocka $(LIBS)
$(ASAN)/tests/%: $(ASAN)/tests/%.o $(ASAN)/libcgrad.a
	$(CC) -fopenmp $(ASAN_LDFLAGS) $(TEST_LDFLAGS) -o $@ $< $(ASAN)/libcgrad.a -lcmocka $(LIBS)
$(ASAN)/examples/%: $(ASAN)/examples/%.o $(ASAN)/libcgrad.a
	$(CC) -fopenmp $(ASAN_LDFLAGS) -o $@ $< $(ASAN)/libcgrad.a $(LIBS)

$(VG)/tests/%: $(VG)/tests/%.o $(VG)/libcgrad.a
	$(CC) -fopenmp $(TEST_LDFLAGS) -o $@ $< $(VG)/libcgrad.a -lcmocka $(LIBS)

# examples/custom_op.c documents how users add an op, so it runs as a test too.
TEST_EXAMPLES := custom_op

# tools/check-programs.sh: every example's and bench's --help, bad flags and
# unwritable outputs (one test, by its exit code). The tests run in a second
# make, which sees what deps installed (Open MPI on a fresh machine: the
# tests/dist/ runs).
test: deps
	@$(MAKE) --no-print-directory test-run
test-run: test-build
	@sh tools/run-tests.sh $(addprefix $(REL)/tests/,$(TESTS)) \
	    $(addprefix $(REL)/examples/,$(TEST_EXAMPLES)) tools/check-programs.sh $(DIST_RUNS) -- \
	    $(addprefix $(ASAN)/tests/,$(TESTS)) $(addprefix $(ASAN)/examples/,$(TEST_EXAMPLES)) \
	    $(REPLAYS) $(DIST_ASAN_RUNS)
test-build: $(addprefix $(REL)/tests/,$(TESTS)) $(addprefix $(ASAN)/tests/,$(TESTS)) \
            $(addprefix $(REL)/examples/,$(TEST_EXAMPLES)) \
            $(addprefix $(ASAN)/examples/,$(TEST_EXAMPLES)) $(REPLAYS) $(FUZZ_CORPUS)/.stamp \
            $(DIST_TEST_BINS) examples bench

# ---- fuzzing (tests/fuzz/) ------------------------------------------------
# make test replays each harness on the seed corpus the build generates and on
# every reproducer found so far (tests/fuzz/regressions/<harness>/), built by
# gcc with the sanitizers. `make fuzz` runs libFuzzer campaigns: clang, its
# fuzzer runtime and libomp, installed only for this target.

$(ASAN)/tests/fuzz/replay_%: tests/fuzz/replay.c tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h \
                             $(ASAN)/libcgrad.a
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -DHARNESS='"$*"' $(ASAN_LDFLAGS) -o $@ tests/fuzz/replay.c \
	    tests/fuzz/fuzz_$*.c $(ASAN)/libcgrad.a $(LIBS)
$(ASAN)/tests/fuzz/gen_corpus: tests/fuzz/gen_corpus.c $(ASAN)/libcgrad.a
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) $(ASAN_LDFLAGS) -o $@ $< $(ASAN)/libcgrad.a $(LIBS)
$(FUZZ_CORPUS)/.stamp: $(ASAN)/tests/fuzz/gen_corpus
	@mkdir -p $(addprefix $(FUZZ_CORPUS)/,$(FUZZERS))
	$< $(FUZZ_CORPUS)
	@touch $@

$(FUZZ)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ)/fuzz_%: $(FUZZ)/tests/fuzz/fuzz_%.o $(SRC:%.c=$(FUZZ)/%.o)
	$(FUZZ_CC) -fopenmp -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

# One campaign per harness, FUZZ_SECONDS each, one after the other on one
# core; new inputs go to the corpus, findings to tests/fuzz/regressions/.
fuzz:
	@sh tools/deps.sh clang libclang-rt-14-dev libomp-14-dev
	@$(MAKE) --no-print-directory $(FUZZ_CORPUS)/.stamp $(addprefix $(FUZZ)/fuzz_,$(FUZZERS))
	@for h in $(FUZZERS); do \
	    mkdir -p tests/fuzz/regressions/$$h; \
	    echo "fuzz: $$h for $(FUZZ_SECONDS) s"; \
	    $(FUZZ)/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	        -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=tests/fuzz/regressions/$$h/ $(FUZZ_CORPUS)/$$h || exit 1; \
	done

# The test binaries under valgrind (slow; not part of `make test`).
valgrind: deps $(addprefix $(VG)/tests/,$(TESTS))
	@VALGRIND=1 sh tools/run-tests.sh $(addprefix $(VG)/tests/,$(TESTS))

# ---- examples and benches --------------------------------------------------
$(REL)/examples/%: $(REL)/examples/%.o build/libcgrad.a
	$(CC) -fopenmp -o $@ $< build/libcgrad.a $(LIBS)
$(REL)/bench/%: $(REL)/bench/%.o build/libcgrad.a
	$(CC) -fopenmp -o $@ $< build/libcgrad.a $(LIBS)

# (the MPI example and bench only where MPI is)
examples: $(addprefix $(REL)/examples/,$(filter-out $(if $(HAVE_MPI),,ddp_%),$(EXAMPLES)))
bench: $(addprefix $(REL)/bench/,$(filter-out $(if $(HAVE_MPI),,bench_ddp),$(BENCHES)))

# cgrad's benches beside the same cases in PyTorch (Debian's python3-torch,
# optional: the script says so and exits 0 when it is missing).
THREADS ?= 2
bench-compare: bench
	/usr/bin/python3 bench/torch_compare.py --threads $(THREADS)

# Trains examples/fashion_mlp.c with its defaults on Debian's Fashion-MNIST
# (installed if missing, as root) and keeps its checkpoint, CSV and chart.
DEMO := build/demo
demo:
	@sh tools/deps.sh dataset-fashion-mnist
	@$(MAKE) --no-print-directory $(REL)/examples/fashion_mlp
	@mkdir -p $(DEMO)
	$(REL)/examples/fashion_mlp --save $(DEMO)/fashion_mlp.safetensors \
	    --csv $(DEMO)/fashion_mlp.csv --svg $(DEMO)/fashion_mlp.svg
	@echo "checkpoint $(DEMO)/fashion_mlp.safetensors, chart $(DEMO)/fashion_mlp.svg," \
	    "per-epoch log $(DEMO)/fashion_mlp.csv"

# The King James Bible as plain text (4.3 MB), from Debian's bible-kjv
# (installed if missing, as root), for examples/char_gpt.c.
KJV := build/data/kjv.txt
$(KJV):
	@sh tools/deps.sh bible-kjv
	@mkdir -p $(@D)
	bible "gen1:1-rev22:21" </dev/null >$@.tmp && mv $@.tmp $@

# Trains examples/char_gpt.c with its defaults (extra flags in ARGS, e.g.
# ARGS="--steps 200") and keeps its checkpoint, vocabulary, CSV and chart.
char_gpt: $(KJV)
	@$(MAKE) --no-print-directory $(REL)/examples/char_gpt
	@mkdir -p $(DEMO)
	$(REL)/examples/char_gpt --data $(KJV) --save $(DEMO)/char_gpt.safetensors \
	    --csv $(DEMO)/char_gpt.csv --svg $(DEMO)/char_gpt.svg $(ARGS)

# examples/ddp_fashion.c on NP local processes (default 2) with Open MPI (both
# installed if missing, as root); extra flags in ARGS (e.g. ARGS=--deterministic).
NP ?= 2
ddp-demo:
	@sh tools/deps.sh dataset-fashion-mnist openmpi-bin libopenmpi-dev
	@$(MAKE) --no-print-directory $(REL)/examples/ddp_fashion
	@mkdir -p $(DEMO)
	$(MPIRUN) -np $(NP) $(REL)/examples/ddp_fashion --csv $(DEMO)/ddp_fashion.csv \
	    --svg $(DEMO)/ddp_fashion.svg $(ARGS)

# Data-parallel scaling (bench/bench_ddp.c) with 2 ranks; nothing else may run.
bench-ddp:
	@sh tools/deps.sh openmpi-bin libopenmpi-dev
	@$(MAKE) --no-print-directory $(REL)/bench/bench_ddp
	$(MPIRUN) -np 2 $(REL)/bench/bench_ddp $(ARGS)

# The tensor tour of the foundation issue.
tour: deps
	@$(MAKE) --no-print-directory $(REL)/examples/tensor_tour
	$(REL)/examples/tensor_tour

# ---- install ---------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/cgrad
	install -m 644 build/libcgrad.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 build/libcgrad.so $(DESTDIR)$(PREFIX)/lib/libcgrad.so.$(VERSION)
	ln -sf libcgrad.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libcgrad.so.0
	ln -sf libcgrad.so.0 $(DESTDIR)$(PREFIX)/lib/libcgrad.so
	for h in $(PUBLIC_HEADERS); do \
	    install -D -m 644 $$h $(DESTDIR)$(PREFIX)/include/cgrad/$$h; done
	if [ -f build/libcgrad_dist.a ]; then \
	    install -m 644 build/libcgrad_dist.a $(DESTDIR)$(PREFIX)/lib/; \
	    install -D -m 644 dist/dist.h $(DESTDIR)$(PREFIX)/include/cgrad/dist/dist.h; fi
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' tools/cgrad.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/cgrad.pc
uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/cgrad $(DESTDIR)$(PREFIX)/lib/pkgconfig/cgrad.pc
	rm -f $(DESTDIR)$(PREFIX)/lib/libcgrad.* $(DESTDIR)$(PREFIX)/lib/libcgrad_dist.a

# Every C file laid out as .clang-format says: `make format` rewrites them,
# `make format-check` (run by .ci/run) fails on any that differ.
FORMATTED := $(SRC) $(DIST_SRC) $(HEADERS) cgrad_cmocka.h \
             $(wildcard tests/*.c tests/*.h tests/fuzz/*.c tests/fuzz/*.h tests/dist/*.c examples/*.h \
                        examples/*.c bench/*.c bench/*.h)
format:
	@sh tools/deps.sh clang-format
	clang-format -i $(FORMATTED)
format-check:
	@sh tools/deps.sh clang-format
	@clang-format --dry-run --Werror $(FORMATTED) && echo "format-check: $(words $(FORMATTED)) files as .clang-format lays them out"

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
.SECONDARY:
