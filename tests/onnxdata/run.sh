#!/usr/bin/env bash
# Tier: every model of the ONNX backend test data (Debian's libonnx-testdata)
# is imported with inferred output shapes equal to the expected outputs', or
# refused with an "unsupported" message. tests/onnxdata/expected.txt holds the
# last accepted status of each model; a model that did better before fails.
#   UPDATE=1 tests/onnxdata/run.sh   rewrite expected.txt and docs/ops.md
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
data=/usr/share/libonnx-testdata/data
bin=$root/build/unit/onnxdata
res=$root/build/test-logs/onnxdata.results
mkdir -p "$root/build/unit" "$root/build/test-logs"
# shellcheck disable=SC2086
$TEST_CC "$here/onnxdata.c" -o "$bin" $TEST_LIBS || { echo "FAIL onnxdata (does not compile)"; exit 1; }
(cd "$data" && ASAN_OPTIONS=detect_leaks=1 "$bin" scan node pytorch-converted pytorch-operator simple) > "$res" 2> "$res.stderr"
rc=$?
[ $rc -eq 0 ] || { echo "FAIL onnxdata (runner exited $rc)"; tail -30 "$res.stderr"; exit 1; }

if [ "${UPDATE:-0}" = 1 ]; then
    awk '{print $1, $2}' "$res" > "$here/expected.txt"
    "$here/mkdocs.sh" "$res" > "$root/docs/ops.md"
    echo "updated expected.txt and docs/ops.md"
fi

awk -v expf="$here/expected.txt" '
BEGIN { while ((getline line < expf) > 0) { split(line, f, " "); want[f[1]] = f[2] } }
{
    dir = $1; got = $2; msg = $0; sub(/^[^|]*\| ?/, "", msg)
    w = (dir in want) ? want[dir] : "new"
    if (got == "ok") { print "PASS " dir (w != "ok" ? " (newly ok: run UPDATE=1 to record it)" : ""); next }
    if (got == w) { print "PASS " dir " (" got ", as expected)"; next }
    print "FAIL " dir ": " got " (expected " w "): " msg
}' "$res"
