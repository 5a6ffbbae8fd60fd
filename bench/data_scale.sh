#!/usr/bin/env bash
# Data at scale: what `flexmoe` itself reports at growing dataset sizes, on synthetic data of
# the quickstart shape with a 512-feature image modality (about 2.5 KB a sample in CSV):
# prepare's MB/s and peak memory, the first epoch's training samples/s (one epoch of
# `flexmoe train --workers 1` with its validation, test and export; or, with STEPS, its
# first STEPS steps, then Ctrl-C: it checkpoints and stops), each role's
# peak resident memory (the "peak resident memory" lines the worker and the loader log), and
# `flexmoe predict`'s rows/s over the whole input.
# `voxels`: the paper's image case (configs/voxels.textproto, bench/voxel_data.py).
# Usage: bench/data_scale.sh [SAMPLES|voxels ...]   (default 10000 100000 1000000 voxels)
# Environment: OUT (bench-out/data_scale), STEPS (0), CACHE_MB (data.loader_cache_mb, 32),
# PREDICT_MAX (100000: predict holds the rows it scores, so larger inputs are not scored).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/bench_lib.sh
OUT=${OUT:-bench-out/data_scale}
STEPS=${STEPS:-0}  # 0: the whole epoch, its validation, test and export
PREDICT_MAX=${PREDICT_MAX:-100000}  # predict holds its input rows: larger inputs are skipped
CACHE_MB=${CACHE_MB:-32}
[ $# -gt 0 ] || set -- 10000 100000 1000000 voxels

peak() { grep -ho "$1: peak resident memory [0-9.]*" "${@:2}" | tail -1 | awk '{print $NF}'; }

# first_epoch_rate METRICS SKIP: samples/s over the step records after the first SKIP steps.
first_epoch_rate() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
samples = seconds = 0.0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("event") == "step" and r.get("step", 0) >= int(sys.argv[2]) and r.get("samples_per_s"):
        samples += r["samples"]
        seconds += r["samples"] / r["samples_per_s"]
print("%.3g" % (samples / seconds) if seconds > 0 else "nan")
PY
}

# steps_done METRICS: the newest step record's global step (records come every 50 steps).
steps_done() {
  local step=""
  [ -e "$1" ] && step=$(grep -o '"global_step":[0-9]*' "$1" | tail -1 | cut -d: -f2)
  echo "${step:-0}"
}

printf "%-9s %-12s %-13s %-11s %-11s %-10s %-11s\n" samples "prepare MB/s" "prepare MB" \
  "loader MB" "worker MB" samples/s "predict r/s"
for n in "$@"; do
  dir=$OUT/n$n
  mkdir -p "$dir"
  steps=$STEPS skip=100
  if [ "$n" = voxels ]; then
    # The paper's image as ADNI stores it: VOXEL_SUBJECTS scans of 84,090 voxels in a .npy,
    # CNN3D on 91x109x91 volumes; VOXEL_STEPS steps of 2 samples (about 10 s each here).
    config=configs/voxels.textproto steps=${VOXEL_STEPS:-6} skip=1
    set_data=(--set "data.input=$dir/raw" --set "data.prepared_dir=$dir/prepared"
      --set "data.loader_cache_mb=$CACHE_MB")
    [ -e "$dir/raw/labels.csv" ] || /usr/bin/python3 bench/voxel_data.py "$dir/raw" \
      "${VOXEL_SUBJECTS:-2000}"
  else
    config=configs/quickstart.textproto
    set_data=(--set "data.input=$dir/raw" --set "data.prepared_dir=$dir/prepared"
      --set "data.modalities[0].synth_features=512" --set "synth.num_samples=$n"
      --set "data.loader_cache_mb=$CACHE_MB")
    [ -e "$dir/raw/labels.csv" ] || build/flexmoe synth --config $config "${set_data[@]}" >/dev/null
  fi
  rm -rf "$dir/prepared" "$dir/run"
  build/flexmoe prepare --config $config "${set_data[@]}" 2>/dev/null >"$dir/prepare.txt"
  prepare_rate=$(grep -o "([0-9.]* MB/s" "$dir/prepare.txt" | tr -d '(' | awk '{print $1}')
  prepare_mb=$(grep -o "peak resident memory [0-9.]*" "$dir/prepare.txt" | awk '{print $NF}')
  run=(--set "run.dir=$dir/run" --set training.epochs=1 --set training.warmup_epochs=0)
  build/flexmoe train --config $config "${set_data[@]}" "${run[@]}" --workers 1 \
    >"$dir/train.log" 2>&1 &
  job=$!
  deadline=$((SECONDS + 1800))
  while [ "$steps" -gt 0 ] && kill -0 $job 2>/dev/null &&
    [ "$(steps_done "$dir/run/metrics.jsonl")" -lt "$steps" ]; do
    [ $SECONDS -lt $deadline ] || { echo "no $steps steps in 30 min" >&2; break; }
    sleep 1
  done
  [ "$steps" -eq 0 ] || kill -INT $job 2>/dev/null || true
  wait $job || true
  rate=$(first_epoch_rate "$dir/run/metrics.jsonl" $skip)
  # predict: the first size's exported parameters (a whole epoch), on this whole input.
  predict="-"
  if [ -d "$OUT/model/checkpoint" ] && [ "$n" != voxels ] && [ "$n" -le "$PREDICT_MAX" ]; then
    start=$(date +%s.%N)
    build/flexmoe predict --checkpoint "$OUT/model" --input "$dir/raw" \
      --out "$dir/predictions.csv" >/dev/null 2>&1 && predict=$(/usr/bin/python3 -c \
      "import sys; print('%.0f' % ($n / ($(date +%s.%N) - $start)))") || predict="failed"
  fi
  printf "%-9s %-12s %-13s %-11s %-11s %-10s %-11s\n" "$n" "$prepare_rate" "$prepare_mb" \
    "$(peak 'loader 0' "$dir/run/loader.log")" "$(peak 'worker 0' "$dir/train.log")" "$rate" \
    "$predict"
  # The model predict uses: one whole epoch at the first size.
  if [ ! -d "$OUT/model/checkpoint" ] && [ "$n" != voxels ]; then
    build/flexmoe train --config $config "${set_data[@]}" --set "run.dir=$OUT/model" \
      --set training.epochs=1 --set training.warmup_epochs=0 --workers 1 >"$OUT/model.log" 2>&1
  fi
done
