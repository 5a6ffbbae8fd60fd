#!/usr/bin/env bash
# Training throughput of the command users run beside bench/train_bench (issue 15, item 4):
# for each (batch, threads), `flexmoe train --workers 1` on the ADNI-like config, whose
# figure is its own (metrics.jsonl step records of the epochs after the first: training
# steps only), then train_bench on the same shapes in the same minute (its samples/s,
# achieved GFLOP/s and the large SGEMM it measures in the same process).
#
#   bench/throughput.sh [--out DIR] [--configs "8:1 64:1 64:2"] [--epochs N]
#
# Prints a markdown table (commit, date and machine above it). Run from the repository root
# after launch/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-out/throughput
configs="8:1 64:1"
epochs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    *) echo "throughput.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
source bench/bench_lib.sh
config=configs/adni_like.textproto
prepare_synthetic "$config" "$out/data"
run_facts
echo
echo "| batch | threads | flexmoe train samples/s | train_bench samples/s | train_bench GFLOP/s | large SGEMM GFLOP/s | share |"
echo "|---|---|---|---|---|---|---|"
for c in $configs; do
  batch=${c%%:*} threads=${c##*:}
  dir="$out/train-b$batch-t$threads"
  rm -rf "$dir"
  build/flexmoe train --config "$config" "${data[@]}" --workers 1 --threads "$threads" \
    --set "run.dir=$dir" --set "training.batch_size=$batch" --set "training.epochs=$epochs" \
    --set training.warmup_epochs=1 --set metrics.log_every_steps=20 \
    --set checkpoint.every_epochs=0 >"$dir.log" 2>&1
  train=$(train_rate "$dir")
  steps=$((batch == 8 ? 200 : 30))
  bench=$(build/bench/train_bench --config "$config" --set "data.prepared_dir=$out/data/prepared" \
    --batch "$batch" --threads "$threads" \
    --steps "$steps" 2>&1)
  echo "$bench" >"$out/train_bench-b$batch-t$threads.log"
  row=$(echo "$bench" | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        print("%.1f | %.1f | %.1f | %.0f%%" % (r["samples_per_s"], r["gflops"],
              r["gemm_gflops"], 100 * r["gflops"] / r["gemm_gflops"]))
        break')
  echo "| $batch | $threads | $train | $row |"
done
