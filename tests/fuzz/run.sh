#!/usr/bin/env bash
# Tier: a short libFuzzer run of the ONNX import pipeline (tests/fuzz/fuzz_load.c),
# built with clang, ASan and UBSan, seeded with the zoo models, a sample of the
# ONNX test data and the bad-input cases. `make fuzz` runs it longer:
#   tests/fuzz/run.sh [SECONDS]      (default 45)
# Crashes are saved under build/fuzz/ as crash-*; rerun one with build/fuzz/fuzz_load FILE.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-45}
out=$root/build/fuzz
mkdir -p "$out/corpus" "$out/seeds"
src=$(ls "$root"/frontend/*.c "$root"/ir/*.c)
if ! clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$root/ir" -I"$root/frontend" -I"$root/build/gen" \
    "$root/tests/fuzz/fuzz_load.c" $src "$root/build/gen/onnx.pb-c.c" -lprotobuf-c -lm \
    -o "$out/fuzz_load" 2> "$out/build.log"; then
    echo "FAIL fuzz (does not build)"; cat "$out/build.log"; exit 1
fi
# seeds: small real models of every kind
i=0
for f in "$root"/models/*/model.onnx /usr/share/libonnx-testdata/data/{simple,pytorch-operator}/*/model.onnx \
         $(ls /usr/share/libonnx-testdata/data/node/*/model.onnx | awk 'NR % 8 == 0'); do
    [ -f "$f" ] && [ "$(stat -c %s "$f")" -lt 200000 ] && cp "$f" "$out/seeds/s$((i++)).onnx"
done
[ -d "$root/build/badinput" ] && find "$root/build/badinput" -name '*.onnx' -size -200k -exec cp {} "$out/seeds/" \;
cd "$out" || exit 1
rm -f crash-* leak-* timeout-* oom-*
ASAN_OPTIONS=detect_leaks=1 ./fuzz_load -max_total_time="$secs" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 corpus seeds > fuzz.log 2>&1
rc=$?
tail -3 fuzz.log
if [ $rc -eq 0 ] && ! ls crash-* leak-* timeout-* oom-* > /dev/null 2>&1; then
    echo "PASS fuzz_load ($(grep -o 'stat::number_of_executed_units: *[0-9]*' fuzz.log | grep -o '[0-9]*$') runs in ${secs}s)"
else
    echo "FAIL fuzz_load: libFuzzer exited $rc; see build/fuzz/fuzz.log"
    grep -A25 'ERROR:' fuzz.log | head -60
fi
