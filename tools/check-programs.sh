#!/bin/sh
# The command lines of the example and bench programs (make test runs this as
# one plain test: the exit code is the verdict). For every binary built from
# examples/*.c and bench/bench_*.c (the MPI ones where MPI is built):
#   --help exits 0, prints "usage:" first and then each flag the program's
#     source parses (its "--name" literals) at the start of exactly one line;
#   an unknown flag exits 2 with the usage on stderr.
# And the outputs: an unwritable --csv/--svg/--save is refused at startup
# (a non-zero exit, a message naming it, nothing created, no training), the
# default outputs go under build/ (made when missing), and a write that fails
# at the end (/dev/full) is an error. No data set is needed: char_gpt trains
# a tiny model on a generated text, the Fashion-MNIST programs fail before
# they would read theirs. Under 2 s.
# Usage: tools/check-programs.sh (the binaries in $BIN, default build/rel).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/build/rel}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
failed=0
checks=0

fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}

# flags FILE...: the "--name" string literals of the sources, one a line, sorted.
flags() {
    cat "$@" | grep -o '"--[a-z][a-z-]*"' | tr -d '"' | sort -u
}

# check_help NAME BINARY FLAGS [STREAM]: --help exits 0 and lists FLAGS
# (newline-separated), each at the start of exactly one line; STREAM "err"
# reads the list from stderr (bench_ddp prints it there).
check_help() {
    name=$1 prog=$2 want=$3 stream=${4:-out}
    checks=$((checks + 1))
    if [ "$stream" = err ]; then
        "$prog" --help >/dev/null 2>"$tmp/help"
    else
        "$prog" --help >"$tmp/help" 2>/dev/null
    fi
    rc=$?
    [ "$rc" -eq 0 ] || fail "$name --help exited $rc"
    head -n 1 "$tmp/help" | grep -q '^usage: ' || fail "$name --help: no usage line first"
    listed=$(sed -n 's/^ *\(--[a-z][a-z-]*\).*/\1/p' "$tmp/help" | sort)
    [ "$listed" = "$want" ] || fail "$name --help lists [$(echo $listed)], it parses [$(echo $want)]"
}

# check_bad NAME BINARY: an unknown flag exits 2 with the usage on stderr.
check_bad() {
    checks=$((checks + 1))
    "$2" --no-such-flag >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" -eq 2 ] || fail "$1 --no-such-flag exited $rc, not 2"
    grep -q '^usage: ' "$tmp/err" || fail "$1 --no-such-flag: no usage on stderr"
}

# refused NAME WHAT STARTED_PATTERN CMD...: CMD (run in an empty directory)
# exits non-zero with a message naming WHAT, prints nothing matching
# STARTED_PATTERN on stdout or stderr (the work never began) and leaves the
# directory empty but for build/.
refused() {
    name=$1 what=$2 started=$3
    shift 3
    checks=$((checks + 1))
    rm -rf "$tmp/cwd" && mkdir "$tmp/cwd"
    (cd "$tmp/cwd" && "$@") >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" -ne 0 ] || fail "$name: exit 0 with $what"
    grep -qF -- "$what" "$tmp/err" || fail "$name: no message naming $what: $(cat "$tmp/err")"
    ! cat "$tmp/out" "$tmp/err" | grep -q "$started" ||
        fail "$name: started work before refusing $what"
    left=$(cd "$tmp/cwd" && find . -mindepth 1 ! -path ./build)
    [ -z "$left" ] || fail "$name: left $left behind with $what"
}

# ---- --help and bad flags ---------------------------------------------------
for src in "$root"/examples/*.c; do
    name=$(basename "$src" .c)
    [ "$name" = ddp_fashion ] && [ ! -x "$bin/examples/$name" ] && continue # only with MPI
    if [ ! -x "$bin/examples/$name" ]; then
        fail "$bin/examples/$name is not built (make examples)"
        continue
    fi
    # --help is parsed in example_common.h's parse_flags for those that use it
    check_help "$name" "$bin/examples/$name" "$(flags "$src" "$root/examples/example_common.h")"
    check_bad "$name" "$bin/examples/$name"
done
for src in "$root"/bench/bench_*.c; do
    name=$(basename "$src" .c)
    prog=$bin/bench/$name
    if [ "$name" = bench_ddp ]; then
        # its own parser (mpirun's ranks share it; --help needs no MPI)
        [ -x "$prog" ] || continue # built only where MPI is
        check_help "$name" "$prog" "$(flags "$src")"
        check_bad "$name" "$prog"
        continue
    fi
    if [ ! -x "$prog" ]; then
        fail "$prog is not built (make bench)"
        continue
    fi
    check_help "$name" "$prog" "$(flags "$src" "$root/bench/bench_common.h")"
    check_bad "$name" "$prog"
done

# ---- outputs -----------------------------------------------------------------------
ex=$bin/examples
: >"$tmp/afile"
for p in fashion_mlp lenet5; do
    # Refused before the data is read (--data points nowhere: reading it
    # would print "looked for ...").
    refused "$p" "/nonexistent-dir/x.csv" "looked for" \
        "$ex/$p" --data "$tmp/no" --csv /nonexistent-dir/x.csv
    refused "$p" "$tmp/afile/x.svg" "looked for" "$ex/$p" --data "$tmp/no" --svg "$tmp/afile/x.svg"
    refused "$p" "is a directory" "looked for" "$ex/$p" --data "$tmp/no" --save "$tmp"
    # The defaults: build/ is made, nothing else is written (the data is missing).
    checks=$((checks + 1))
    rm -rf "$tmp/cwd" && mkdir "$tmp/cwd"
    (cd "$tmp/cwd" && "$ex/$p" --data "$tmp/no") >/dev/null 2>&1 && fail "$p: exit 0 without data"
    [ -d "$tmp/cwd/build" ] || fail "$p: did not make build/ for its default outputs"
    [ -z "$(ls -A "$tmp/cwd/build" 2>/dev/null)" ] || fail "$p: wrote into build/ without data"
done
refused custom_module "/nonexistent-dir/m.safetensors" "^epoch" \
    "$ex/custom_module" --synthetic 64 --epochs 1 --width 8 --blocks 1 \
    --save /nonexistent-dir/m.safetensors

# char_gpt on a generated text with a tiny model.
i=0
while [ $i -lt 40 ]; do
    echo "In the beginning God created the heaven and the earth. And the earth was void."
    i=$((i + 1))
done >"$tmp/text.txt"
tiny="--data $tmp/text.txt --layers 1 --heads 1 --width 8 --context 8 --batch 2 --steps 2"
tiny="$tiny --eval-every 1 --eval-windows 2 --sample 4 --threads 1"
started="characters, vocabulary"
# shellcheck disable=SC2086 # $tiny is a list of flags
{
    refused char_gpt "/nonexistent-dir/x.csv" "$started" "$ex/char_gpt" $tiny --csv /nonexistent-dir/x.csv
    refused char_gpt "/nonexistent-dir/x.svg" "$started" "$ex/char_gpt" $tiny --svg /nonexistent-dir/x.svg
    refused char_gpt "/nonexistent-dir/g.safetensors" "$started" \
        "$ex/char_gpt" $tiny --save /nonexistent-dir/g.safetensors
    # The defaults land in build/, made when missing; nothing else in the directory.
    checks=$((checks + 1))
    rm -rf "$tmp/cwd" && mkdir "$tmp/cwd"
    (cd "$tmp/cwd" && "$ex/char_gpt" $tiny --save build/g.safetensors) >"$tmp/out" 2>&1 ||
        fail "char_gpt tiny run: $(cat "$tmp/out")"
    for f in char_gpt.csv char_gpt.svg g.safetensors g.vocab.safetensors; do
        [ -s "$tmp/cwd/build/$f" ] || fail "char_gpt: no build/$f"
    done
    [ "$(ls -A "$tmp/cwd")" = build ] || fail "char_gpt: wrote $(ls -A "$tmp/cwd" | tr "\n" " ")in the directory"
    # A write that fails at the end (a full disk) is an error too.
    if [ -w /dev/full ]; then
        checks=$((checks + 1))
        (cd "$tmp/cwd" && "$ex/char_gpt" $tiny --csv /dev/full) >"$tmp/out" 2>"$tmp/err" &&
            fail "char_gpt: exit 0 with --csv /dev/full"
        grep -q /dev/full "$tmp/err" || fail "char_gpt: no message naming /dev/full"
    fi
}

echo "check-programs: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
