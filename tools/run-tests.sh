#!/bin/sh
# Runs cmocka test binaries (and plain programs, one test each by exit code)
# and sums their results.
# Usage: run-tests.sh BIN... [-- ASAN_BIN...]; binaries after "--" are the
# sanitizer build. VALGRIND=1 runs each under valgrind (leaks are failures).
# "mpiN:BIN" runs BIN under $MPIRUN (default mpirun) with N ranks; rank 0's
# output is counted, any rank's failure fails it (its exit code).
# Prints each binary's own output only when it fails, one summary line per
# binary, and last the line "N passed, N failed". Exits 1 on any failure.
passed=0
failed=0
flavour=opt
log=$(mktemp)
trap 'rm -f "$log"' EXIT
vg=""
if [ "${VALGRIND:-0}" = 1 ]; then
    flavour=valgrind
    vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
fi
for bin in "$@"; do
    if [ "$bin" = "--" ]; then flavour=asan; continue; fi
    run="$vg"
    mpienv=""
    name=$(basename "${bin#mpi*:}")
    case "$bin" in
    mpi[0-9]*:*)
        np=${bin%%:*}
        np=${np#mpi}
        bin=${bin#*:}
        run="${MPIRUN:-mpirun --allow-run-as-root --oversubscribe} -np $np"
        name="$name -np $np"
        # Open MPI's allocations live until exit: with its plugins kept
        # loaded and full stacks, lsan-mpi.supp matches them (not cgrad's).
        # Shared memory without the kernel's single-copy (CMA), which
        # containers often forbid (ptrace rules).
        mpienv="OMPI_MCA_btl_vader_single_copy_mechanism=none"
        mpienv="$mpienv OMPI_MCA_mca_base_component_disable_dlclose=1 ASAN_OPTIONS=fast_unwind_on_malloc=0"
        mpienv="$mpienv LSAN_OPTIONS=suppressions=$(dirname "$0")/lsan-mpi.supp"
        ;;
    esac
    env $mpienv CMOCKA_MESSAGE_OUTPUT=stdout timeout 600 $run "$bin" >"$log" 2>&1
    rc=$?
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    if [ -z "$p$f" ]; then # not a cmocka binary: one test, judged by its exit code
        if [ "$rc" -eq 0 ]; then p=1; else f=1; fi
    fi
    p=${p:-0}
    f=${f:-0}
    # A crash, a sanitizer report or a leak after the tests ran is a failure too.
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    if [ "$f" -ne 0 ]; then
        cat "$log"
        echo "exit code $rc"
    fi
    printf '%-9s %-28s %4d passed, %d failed\n' "$flavour" "$name" "$p" "$f"
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
