#!/usr/bin/env bash
# Tier: ONNX conformance. Every model of the ONNX backend test data that loom
# imports (tests/onnxdata/expected.txt: ok) is compiled with
# `loom compile --mode infer --target cpu`, built against the prebuilt kernels
# and runtime (LOOM_PREBUILT, so ~600 programs build in minutes), run on each
# test_data_set's inputs, and its outputs compared as ONNX's runner does
# (rtol 1e-3, atol 1e-7). tests/conformance/expected.txt holds each case's last
# accepted status: a case that passed before and does not now fails the tier;
# a case recorded as unsupported must be refused with loom's message; a case
# recorded as failing prints XFAIL with its reason until it is fixed.
#   UPDATE=1 tests/conformance/run.sh   rewrite expected.txt and docs/conformance.md
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
data=/usr/share/libonnx-testdata/data
work=$root/build/conformance
tool=$work/onnxdata
mkdir -p "$work"
# shellcheck disable=SC2086
$TEST_CC "$root/tests/onnxdata/onnxdata.c" -o "$tool" $TEST_LIBS || { echo "FAIL conformance (tool does not compile)"; exit 1; }
[ -f "$root/build/rel/libloomk_cpu.a" ] && [ -f "$root/build/rel/libloomrt.a" ] || { echo "FAIL conformance (run make first)"; exit 1; }

one() {  # one test case: prints "NAME STATUS OPS... | DETAIL"
    local name=$1 src=$data/$1 dir=$work/$1
    rm -rf "$dir" && mkdir -p "$dir"
    local io args=() ins=() outs=() ops=""
    say() { echo "$name $1 $ops | $(printf '%s' "$2" | tr '\n' ' ' | head -c 300)"; }
    if ! io=$("$tool" io "$src" 2> "$dir/io.err"); then say error "$(cat "$dir/io.err")"; return; fi
    while read -r kind val; do
        case $kind in ops) ops=$val;; dim) args+=(--dim "$val");; in) ins+=("$val");; out) outs+=("$val");; esac
    done <<< "$io"
    if ! "$LOOM" compile "$src/model.onnx" --mode infer --target cpu -o "$dir/prog" "${args[@]}" > "$dir/compile.log" 2>&1; then
        if grep -qE "not supported|unsupported|must be a constant" "$dir/compile.log"; then
            say unsupported "$(cat "$dir/compile.log")"
        else
            say error "$(cat "$dir/compile.log")"
        fi
        return
    fi
    if ! make -s -C "$dir/prog" LOOM_PREBUILT="$root/build/rel" > "$dir/make.log" 2>&1; then
        say fail "the generated program does not build: $(grep -m1 -i error "$dir/make.log")"; return
    fi
    local set n i
    for set in "$src"/test_data_set_*; do
        local run=()
        i=0
        for n in "${ins[@]}"; do
            [ -f "$set/input_$i.pb" ] || break
            "$tool" npy "$set/input_$i.pb" "$dir/in$i.npy" 2>> "$dir/io.err" || { say error "$(tail -1 "$dir/io.err")"; return; }
            run+=(--input "$n=$dir/in$i.npy"); i=$((i + 1))
        done
        i=0
        for n in "${outs[@]}"; do run+=(--output "$n=$dir/out$i.npy"); i=$((i + 1)); done
        if ! timeout 60 "$dir/prog/infer" "${run[@]}" > "$dir/run.log" 2>&1; then
            say fail "infer failed: $(cat "$dir/run.log")"; return
        fi
        i=0
        for n in "${outs[@]}"; do
            if [ -f "$set/output_$i.pb" ] && ! "$tool" compare "$dir/out$i.npy" "$set/output_$i.pb" 2> "$dir/cmp.log"; then
                say fail "$(basename "$set") output '$n': $(cat "$dir/cmp.log")"; return
            fi
            i=$((i + 1))
        done
    done
    say pass ""
    rm -rf "$dir"   # keep only failing cases' files
}
export -f one
export data work tool root

res=$work/results
awk '$2 == "ok" {print $1}' "$root/tests/onnxdata/expected.txt" \
    | xargs -P "${JOBS:-2}" -I{} bash -c 'one "$@"' _ {} | sort > "$res"

if [ "${UPDATE:-0}" = 1 ]; then
    # keep the recorded reasons of known failures (written by hand), refresh the rest
    awk -v expf="$here/expected.txt" -v root="$root/" '
    BEGIN { while ((getline line < expf) > 0) { split(line, f, " "); if (f[2] == "fail") why[f[1]] = line } }
    { s = $2; r = $0; sub(/^[^|]*\| ?/, "", r); gsub(root, "", r)
      if (s == "fail" && ($1 in why)) print why[$1]; else print $1, s (s == "pass" ? "" : " " r) }' \
        "$res" > "$res.expected" && mv "$res.expected" "$here/expected.txt"
    "$here/mkdocs.sh" "$res" > "$root/docs/conformance.md"
    echo "updated expected.txt and docs/conformance.md"
fi
awk -v expf="$here/expected.txt" '
BEGIN { while ((getline line < expf) > 0) { split(line, f, " "); want[f[1]] = f[2] } }
{
    name = $1; got = $2; msg = $0; sub(/^[^|]*\| ?/, "", msg)
    w = (name in want) ? want[name] : "new"
    if (got == "pass") { print "PASS " name; next }
    if (got == w && got == "unsupported") { print "PASS " name " (unsupported, as recorded)"; next }
    if (got == w) { print "XFAIL " name " (" got ", recorded): " msg; next }
    print "FAIL " name ": " got " (recorded " w "): " msg
}' "$res"
