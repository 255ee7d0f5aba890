#!/usr/bin/env bash
# Tier: bad input. Each case (written by make_cases.py) must make `loom inspect`
# exit 1 within 10 s with one line on stderr, "loom: error: ..." containing the
# expected words, and no sanitizer report: never a crash, a hang or a silent result.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$root/build/badinput
rm -rf "$dir" && mkdir -p "$dir"
"$root/.venv/bin/python" "$root/tests/badinput/make_cases.py" "$dir" || { echo "FAIL badinput (case generator failed)"; exit 1; }
while IFS='|' read -r name path args expect; do
    # shellcheck disable=SC2086
    timeout 10 "$LOOM" inspect "$path" $args > "$dir/$name.out" 2> "$dir/$name.err"
    rc=$?
    err=$(cat "$dir/$name.err")
    lines=$(wc -l < "$dir/$name.err")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && [[ "$err" == "loom: error: "* ]] && [[ "$err" == *"$expect"* ]]; then
        echo "PASS $name"
    else
        echo "FAIL $name: exit $rc (want 1), stderr (want one line containing '$expect'):"
        head -c 2000 "$dir/$name.err"
    fi
done < "$dir/cases.txt"
