#!/usr/bin/env bash
# The test runner behind `make test`. It builds each C unit test (tests/unit/test_*.c)
# against the ASan+UBSan library, runs them and every tier script
# (tests/*/run.sh: golden, badinput, zoo, onnxdata, fuzz, ...) two at a time, and
# counts the "PASS name" / "FAIL name" lines they print. Ends with
# "N passed, N failed" and exits non-zero on any failure.
# Env: LOOM (the binary under test, default build/asan/loom), TIERS (space-separated
# subset of tier names to run, default all), JOBS (parallel jobs, default 2),
# TEST_LOGS (where the logs go, default build/test-logs: give another to run two at once).
set -u
cd "$(dirname "$0")/.."
export LOOM=${LOOM:-$PWD/build/asan/loom}
export LOOM_ROOT=$PWD
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
JOBS=${JOBS:-2}
out=${TEST_LOGS:-build/test-logs}
rm -rf "$out" && mkdir -p "$out" build/unit

jobs_list=()
# How a test program is compiled and linked against the ASan+UBSan libraries;
# tiers that build their own C programs use it too: $TEST_CC file.c -o prog $TEST_LIBS
CC=${CC:-cc}
export TEST_CC="$CC -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer
 -pthread -Wall -Wextra -Wno-unused-parameter -I$PWD/ir -I$PWD/frontend -I$PWD/optimizer
 -I$PWD/codegen -I$PWD/codegen/kernels/cpu -I$PWD/runtime -I$PWD/build/gen -I$PWD/tests/unit"
export TEST_LIBS="$PWD/build/asan/libloom.a $PWD/build/asan/libloomrt.a $PWD/build/asan/libloomk_cpu.a
 -lopenblas -lprotobuf-c -llpsolve55 -lcolamd -lm"
for src in tests/unit/test_*.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    # shellcheck disable=SC2086
    if ! $TEST_CC "$src" -o "build/unit/$name" $TEST_LIBS 2> "$out/$name.build"; then
        echo "FAIL $name (does not compile)" > "$out/$name.log"
        cat "$out/$name.build" >> "$out/$name.log"
        continue
    fi
    jobs_list+=("unit:build/unit/$name")
done
for t in tests/*/run.sh; do
    tier=$(basename "$(dirname "$t")")
    [ "$tier" = unit ] && continue
    if [ -n "${TIERS:-}" ] && ! [[ " $TIERS " == *" $tier "* ]]; then continue; fi
    jobs_list+=("tier:$t")
done

run_one() {
    local kind=${1%%:*} path=${1#*:} name
    name=$(basename "$path" .sh)
    [ "$kind" = tier ] && name=$(basename "$(dirname "$path")")
    local start=$SECONDS
    if [ "$kind" = unit ]; then "$path" > "$out/$name.log" 2>&1; else bash "$path" > "$out/$name.log" 2>&1; fi
    local rc=$?
    # a program that crashed or exited non-zero without reporting a FAIL still fails
    if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$out/$name.log"; then
        echo "FAIL $name (exit code $rc)" >> "$out/$name.log"
    fi
    printf '%-24s %4d passed %4d failed  %4ds\n' "$name" "$(grep -c '^PASS ' "$out/$name.log")" \
        "$(grep -c '^FAIL ' "$out/$name.log")" $((SECONDS - start))
}
export -f run_one
export out

printf '%s\n' "${jobs_list[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one "$@"' _ {}

pass=0 fail=0
for log in "$out"/*.log; do
    p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log")
    pass=$((pass + p)); fail=$((fail + f))
    if [ "$f" -gt 0 ]; then
        echo "---- $(basename "$log" .log): failures"
        grep -A12 '^FAIL ' "$log" | head -60
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
