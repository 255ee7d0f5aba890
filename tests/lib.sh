# What the tier scripts share (sourced after they set root, loom and out):
# the PASS/FAIL lines tests/run.sh counts, a model's --data arguments, the
# losses of a training log, and the check of a command's refusal.

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; shift; [ $# -gt 0 ] && printf '  %s\n' "$@"; }

# data MODEL: the --data arguments of a zoo model's committed batch and target,
# one per line (mapfile -t args < <(data MODEL))
data() {
    local f b
    for f in models/$1/*.npy; do
        b=$(basename "$f" .npy)
        case $b in expected_*) continue ;; esac
        printf -- '--data\n%s=%s\n' "$b" "$f"
    done
}

# losses LOG...: the loss fields of train --log files, in order, as written
losses() { sed -n 's/.*"loss": \([^,}]*\).*/\1/p' "$@"; }

# expect NAME CODE PATTERN CMD...: exit CODE and PATTERN in CMD's stderr; when
# CMD is loom, its message is one line
expect() {
    local name=$1 code=$2 pat=$3
    shift 3
    "$@" > "$out/$name.out" 2> "$out/$name.err"
    local rc=$? lines
    lines=$(wc -l < "$out/$name.err")
    if [ $rc -eq "$code" ] && grep -q -- "$pat" "$out/$name.err" && { [ "$1" != "$loom" ] || [ "$lines" -eq 1 ]; }; then
        pass "$name"
    else
        fail "$name" "exit $rc (want $code), stderr: $(head -c 400 "$out/$name.err")"
    fi
}
