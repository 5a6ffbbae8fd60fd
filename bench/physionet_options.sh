#!/usr/bin/env bash
# PhysioNet 2012 set-a: recipe options measured one by one, each as one `flexmoe train`
# over the same seeds on the same split, beside the scikit-learn baselines
# (bench/baselines.py). Per option: the mean best validation AUC (what chooses), the test
# figures flexmoe prints over the seeds (mean +- std), and the test AUC of the seeds'
# ensemble (RUN/ensemble.json: their mean probabilities, the run directory as one predictor).
# Writes OUT/options.md (a markdown table) and OUT/<option>/ (each option's run directory).
#
#   bench/physionet_options.sh [--out DIR] [--seeds 1,2,3,4,5] [--workers N] [--only A,B] [--ensembles N]
#                              [--physionet PATH]   (set-a.csv.gz; default: bench/physionet_data.sh's)
#
# Options (name: the --set overrides on top of configs/physionet2012.textproto):
#   paper        the paper's features: no missing-value indicators, the recipe before tune
#   indicators   the recipe before tune, with missing-value indicators
#   adamw        indicators + training.weight_decay=0.01
#   early        indicators + training.epochs=60 training.early_stopping_patience=8
#   shipped      the shipped config: indicators + the FEATURE_TOKENS encoder on every
#                modality (chosen by flexmoe tune, docs/benchmarks.md)
#   ensembles    the shipped config as --ensembles N ensembles of 5 seeds (seeds 1-5 from
#                the shipped run, then 6-10, ...): the ensemble test AUC's mean +- std
# Run from the repository root after launch/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-out/physionet-options
seeds=1,2,3,4,5
workers=2
only=""
ensembles=5
physionet=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --ensembles) ensembles=$2; shift 2 ;;
    --physionet) physionet=$2; shift 2 ;;
    *) echo "physionet_options: unknown argument $1" >&2; exit 2 ;;
  esac
done
config=configs/physionet2012.textproto
bench/physionet_data.sh ${physionet:+"$physionet"}
source launch/blas_env.sh
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
mkdir -p "$out"

# The recipe before tune: the shipped config with the patch embedding.
before="data.modalities[*].encoder=PATCH"
declare -A sets=(
  [paper]="$before data.missing_indicators=false data.prepared_dir=data/physionet2012/prepared-paper"
  [indicators]="$before"
  [adamw]="$before training.weight_decay=0.01"
  [early]="$before training.epochs=60 training.early_stopping_patience=8"
  [shipped]=""
)
order=(paper indicators adamw early shipped ensembles)

# "mean +- std" (population) of the numbers on stdin, in %.
mean_std() {
  /usr/bin/python3 -c 'import sys, numpy as np; v = 100 * np.array([float(x) for x in sys.stdin.read().split()]); print(f"{v.mean():.2f} +- {v.std():.2f}")'
}
# The mean best validation AUC of a run directory's seeds.
validation_auc() {
  cat "$1"/seed-*/metrics.jsonl | grep '"event":"test"' |
    /usr/bin/python3 -c 'import sys, json; print(" ".join(str(json.loads(l)["validation"]["auc"]) for l in sys.stdin))' | mean_std
}
ensemble_auc() {
  /usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["test"]["auc"])' "$1/ensemble.json"
}

table="$out/options.md"
{
  echo "| option | overrides | mean best validation AUC | test AUC (mean +- std over seeds $seeds, %) | ACC | F1 | ensemble test AUC | seconds |"
  echo "|---|---|---|---|---|---|---|---|"
} > "$table.new"
train() {  # NAME RUN_DIR SEEDS OVERRIDES...
  local name=$1 run=$2 s=$3
  shift 3
  build/flexmoe prepare --config "$config" "$@" > /dev/null
  rm -rf "$run"  # a fresh run: an old one's records would mix into the figures
  build/flexmoe train --config "$config" --workers "$workers" --set "run.dir=$run" \
    --set "training.seeds=$s" "$@" > "$run.log" 2>&1
}
for name in "${order[@]}"; do
  if [ -n "$only" ] && ! grep -qw -- "$name" <<< "${only//,/ }"; then continue; fi
  start=$(date +%s)
  if [ "$name" = ensembles ]; then
    aucs=""
    for i in $(seq 0 $((ensembles - 1))); do
      first=$((5 * i + 1))
      run="$out/ensemble-$first"
      if [ "$first" = 1 ] && [ -f "$out/shipped/ensemble.json" ] && [ "$seeds" = 1,2,3,4,5 ]; then
        run="$out/shipped"  # seeds 1-5: the shipped option's run
      else
        train "$name" "$run" "$(seq -s, "$first" $((first + 4)))"
      fi
      aucs="$aucs $(ensemble_auc "$run")"
    done
    seconds=$(( $(date +%s) - start ))
    echo "| $ensembles ensembles of 5 seeds (1-5, 6-10, ...) | shipped, training.seeds | | | | | $(mean_std <<< "$aucs") ($aucs) | $seconds |" | tee -a "$table.new"
    continue
  fi
  args=()
  for s in ${sets[$name]}; do args+=(--set "$s"); done
  train "$name" "$out/$name" "$seeds" "${args[@]}"
  seconds=$(( $(date +%s) - start ))
  line=$(grep "^test over" "$out/$name.log" | tail -1)
  acc=$(sed -E 's/.*ACC ([^,]*),.*/\1/' <<< "$line")
  f1=$(sed -E 's/.*F1 ([^,]*),.*/\1/' <<< "$line")
  auc=$(sed -E 's/.*AUC (.*)$/\1/' <<< "$line")
  ens=$(/usr/bin/python3 -c 'import sys; print(f"{100 * float(sys.argv[1]):.2f}")' "$(ensemble_auc "$out/$name")")
  echo "| $name | ${sets[$name]:-none} | $(validation_auc "$out/$name") | $auc | $acc | $f1 | $ens | $seconds |" | tee -a "$table.new"
done
/usr/bin/python3 bench/baselines.py --prepared data/physionet2012/prepared \
  --json "$out/baselines.json" | tee "$out/baselines.txt"
mv "$table.new" "$table"
echo "wrote $table"
