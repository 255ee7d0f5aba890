#!/usr/bin/env bash
# Rotor (loom's default remat solver) against the exact whole-graph program
# (Checkmate's, solved by lp_solve: loom plan --solver ilp) on the zoo
# models, at three budgets: the least feasible one (rotor's), halfway from
# it to store-all, and 80% of store-all's device bytes. Prints a markdown
# table of predicted step times (cpu roofline) and solve times; a model whose
# program is too large says so once. The program looks only for plans faster
# than rotor's by over 1% of its step (loom plan --solver ilp): "optimal within
# 1% ... proven" is a proof that rotor's plan is that close to the optimum.
#   bench/remat_ilp.sh [ILP_SECONDS (default 300)] > bench/results/remat_ilp.md
#   MODELS="resnet_small unet_small" bench/remat_ilp.sh 60   (some of the models)
set -u
cd "$(dirname "$0")/.."
loom=${LOOM:-bin/loom}
secs=${1:-300}
py=python3
field() { "$py" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d.get(sys.argv[2], ''))" "$@"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "# Rotor against the exact program (Checkmate's ILP, lp_solve)"
echo
echo "\`bench/remat_ilp.sh $secs\` on $(nproc) cores, $(date -u +%Y-%m-%d); predicted step times from"
echo "the cpu roofline, solve times in CPU seconds (lp_solve stopped after $secs s per solve)."
echo
echo "| model | budget | rotor step ms | rotor solve s | ILP step ms | ILP vs rotor | ILP solve s | ILP status |"
echo "|---|---|---|---|---|---|---|---|"
declare -A loss_of=([mlp]=ce [gpt2_tiny]=ce [llama_tiny]=ce [resnet_small]=ce [vit_tiny]=ce [unet_small]=mse [fno_small]=mse)
for model in ${MODELS:-mlp resnet_small vit_tiny gpt2_tiny unet_small fno_small llama_tiny}; do
    flags=(models/$model/model.onnx --mode train --loss "${loss_of[$model]}" --loss-target target_y)
    "$loom" plan "${flags[@]}" --json > "$tmp/all.json" || continue
    least=$(field "$tmp/all.json" min_feasible_bytes)
    top=$(field "$tmp/all.json" budget_bytes)
    for which in least middle 80%; do
        case $which in
            least) b=$least ;;
            middle) b=$(((least + top) / 2)) ;;
            80%) b=$((top * 8 / 10)) ;;
        esac
        label="$which ($((b / 1024)) KiB)"
        # rotor may find nothing where the program does: 0 stands for infeasible
        rstep=0 rsolve=0
        if "$loom" plan "${flags[@]}" --budget "$b" --json > "$tmp/rotor.json" 2> "$tmp/rotor.err"; then
            rstep=$(field "$tmp/rotor.json" predicted_step_s)
            rsolve=$(field "$tmp/rotor.json" solve_s)
        fi
        if "$loom" plan "${flags[@]}" --budget "$b" --solver ilp --ilp-seconds "$secs" --json \
            > "$tmp/ilp.json" 2> "$tmp/ilp.err"; then
            istep=$(field "$tmp/ilp.json" predicted_step_s)
            # "none ruled out": lp_solve found nothing better in the time and the plan is rotor's, no ILP figure
            "$py" -c "import sys; r,rs,i,isv=map(float, sys.argv[1:5]); st,lab=sys.argv[5:]; own='none ruled out' not in st; print('| %s | %s | %s | %s | %s | %.3g | %s |' % (lab, '%.4f' % (1e3*r) if r else 'infeasible', '%.3g' % rs if r else '', '%.4f' % (1e3*i) if own else '-', '%+.1f%%' % (100*(i/r-1)) if r and own else '', isv, st))" \
                "$rstep" "$rsolve" "$istep" "$(field "$tmp/ilp.json" solve_s)" "$(field "$tmp/ilp.json" ilp_status)" "$model | $label"
        else
            msg=$(sed 's/^loom: error: [^:]*: //' "$tmp/ilp.err" | tr '|' '/')
            "$py" -c "import sys; r=float(sys.argv[1]); print('| %s | %s | %s | | | | %s |' % (sys.argv[4], '%.4f' % (1e3*r) if r else 'infeasible', '%.3g' % float(sys.argv[2]) if r else '', sys.argv[3]))" \
                "$rstep" "$rsolve" "$msg" "$model | $label"
            case $msg in *"above the limit"*) break ;; esac
        fi
    done
done
