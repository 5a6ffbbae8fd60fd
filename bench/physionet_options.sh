#!/usr/bin/env bash
# PhysioNet 2012 set-a: the recipe options of configs/physionet2012.textproto measured one
# by one, each as `flexmoe train` over the same seeds on the same split (the test AUC line
# flexmoe prints), beside the scikit-learn baselines (bench/baselines.py). Writes
# OUT/options.md (a markdown table) and OUT/<option>/ (each option's run directory).
#
#   bench/physionet_options.sh [--out DIR] [--seeds 1,2,3,4,5] [--workers N] [--only NAME]
#
# Options (name: the --set overrides on top of the shipped config):
#   shipped     nothing
#   indicators  data.missing_indicators=true (prepared into its own directory)
#   adamw       training.weight_decay=0.01
#   early       training.epochs=60 training.early_stopping_patience=8
# Run from the repository root after launch/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-out/physionet-options
seeds=1,2,3,4,5
workers=2
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "physionet_options: unknown argument $1" >&2; exit 2 ;;
  esac
done
config=configs/physionet2012.textproto
source launch/blas_env.sh
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
mkdir -p "$out"

declare -A sets=(
  [shipped]=""
  [indicators]="data.missing_indicators=true data.prepared_dir=data/physionet2012/prepared-indicators"
  [adamw]="training.weight_decay=0.01"
  [early]="training.epochs=60 training.early_stopping_patience=8"
)
order=(shipped indicators adamw early)

table="$out/options.md"
{
  echo "| option | overrides | test AUC (mean +- std over seeds $seeds, %) | ACC | F1 | seconds |"
  echo "|---|---|---|---|---|---|"
} > "$table.new"
for name in "${order[@]}"; do
  [ -n "$only" ] && [ "$only" != "$name" ] && continue
  args=()
  for s in ${sets[$name]}; do args+=(--set "$s"); done
  build/flexmoe prepare --config "$config" "${args[@]}" > /dev/null
  start=$(date +%s)
  build/flexmoe train --config "$config" --workers "$workers" --set "run.dir=$out/$name" \
    --set "training.seeds=$seeds" "${args[@]}" > "$out/$name.log" 2>&1
  seconds=$(( $(date +%s) - start ))
  line=$(grep "^test over" "$out/$name.log" | tail -1)
  acc=$(sed -E 's/.*ACC ([^,]*),.*/\1/' <<< "$line")
  f1=$(sed -E 's/.*F1 ([^,]*),.*/\1/' <<< "$line")
  auc=$(sed -E 's/.*AUC (.*)$/\1/' <<< "$line")
  echo "| $name | ${sets[$name]:-none} | $auc | $acc | $f1 | $seconds |" | tee -a "$table.new"
done
/usr/bin/python3 bench/baselines.py --prepared data/physionet2012/prepared \
  --json "$out/baselines.json" | tee "$out/baselines.txt"
mv "$table.new" "$table"
echo "wrote $table"
