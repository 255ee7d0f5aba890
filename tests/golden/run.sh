#!/usr/bin/env bash
# Golden tests of the `loom` command: each case runs loom with fixed arguments
# and compares its stdout, stderr and exit code with the expected ones beside it.
#
#   cases/NAME.args     loom's arguments, one per line (paths relative to the repo root)
#   cases/NAME.filter   optional: a shell filter applied to stdout before comparing
#                       (e.g. "head -n 12"); loom's own exit code is what is checked
#   cases/NAME.out      expected stdout    cases/NAME.err  expected stderr
#   cases/NAME.code     expected exit code
#
# Prints "PASS NAME" or "FAIL NAME" and the diff per case (tests/run.sh counts
# them), then "N passed, N failed". A case whose model file is not there yet
# (a zoo model) fails: its expected output was committed with the model.
# Env: LOOM (binary, default build/asan/loom), LOOM_ROOT (repo root),
#      CASES (space-separated subset of case names), UPDATE=1 (rewrite the
#      expected files from this run instead of comparing: review the diff).
set -u
root=${LOOM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
loom=${LOOM:-build/asan/loom}
dir=tests/golden/cases
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$loom" ]; then
    echo "FAIL golden (no loom binary at $loom; run make)"
    exit 1
fi

pass=0 fail=0 updated=0
for argsfile in "$dir"/*.args; do
    name=$(basename "$argsfile" .args)
    if [ -n "${CASES:-}" ] && ! [[ " $CASES " == *" $name "* ]]; then continue; fi
    mapfile -t args < "$argsfile"
    "$loom" "${args[@]}" > "$tmp/out" 2> "$tmp/err"
    echo $? > "$tmp/code"
    if [ -f "$dir/$name.filter" ]; then
        bash -c "$(cat "$dir/$name.filter")" < "$tmp/out" > "$tmp/filtered"
        mv "$tmp/filtered" "$tmp/out"
    fi
    if [ "${UPDATE:-0}" = 1 ]; then
        cp "$tmp/out" "$dir/$name.out"
        cp "$tmp/err" "$dir/$name.err"
        cp "$tmp/code" "$dir/$name.code"
        echo "UPDATED $name"
        updated=$((updated + 1))
        continue
    fi
    ok=1
    for part in out err code; do
        if ! diff -u --label "expected $name.$part" --label "actual $name.$part" \
            "$dir/$name.$part" "$tmp/$part" > "$tmp/diff.$part" 2>&1; then
            ok=0
        fi
    done
    if [ $ok = 1 ]; then
        echo "PASS $name"
        pass=$((pass + 1))
    else
        echo "FAIL $name: loom ${args[*]}"
        cat "$tmp/diff.out" "$tmp/diff.err" "$tmp/diff.code"
        fail=$((fail + 1))
    fi
done
if [ "${UPDATE:-0}" = 1 ]; then
    echo "$updated updated; review them with git diff $dir"
    exit 0
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
