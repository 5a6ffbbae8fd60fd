#!/usr/bin/env bash
# Two workers against one at the same global batch (issue 15, item 3), beside what this
# machine allows: `flexmoe train --workers 1` and `--workers 2` (their own samples/s, step
# records after the first epoch, and the 2-worker step split), then the ceiling: one
# train_bench at batch B alone, and two train_bench at B/2 side by side (no communication
# at all). The ceiling speed-up is the pair's summed samples/s over the single one; what the
# 2-worker job reaches of it is the cost of the distributed path itself.
#
#   bench/two_workers.sh [--config FILE] [--batch B] [--epochs N] [--bench-steps S]
#                        [--rounds R] [--out DIR]
#
# Defaults: the ADNI-like config at batch 64. FLEXMOE=PATH measures another flexmoe binary
# (the ceiling always uses build/bench/train_bench). Run from the repository root after
# launch/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
config=configs/adni_like.textproto
batch=64
epochs=3
bench_steps=30
rounds=1
out=bench-out/two-workers
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --bench-steps) bench_steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "two_workers.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ $((batch % 2)) -ne 0 ] || [ "$batch" -lt 2 ]; then
  echo "two_workers.sh: --batch must be even and >= 2 (got $batch)" >&2
  exit 2
fi
flexmoe=${FLEXMOE:-build/flexmoe}
source bench/bench_lib.sh
export OMP_NUM_THREADS=1
prepare_synthetic "$config" "$out/data"
mkdir -p "$out/runs"

# bench_rate LOG: train_bench's samples/s from its JSON line.
bench_rate() {
  /usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        print("%.1f" % json.loads(line)["samples_per_s"])
        break' "$1"
}

train() {  # train WORKERS: prints the run's samples/s
  local dir="$out/runs/w$1"
  rm -rf "$dir"
  "$flexmoe" train --config "$config" "${data[@]}" --workers "$1" --threads 1 \
    --set "run.dir=$dir" --set "training.batch_size=$batch" --set "training.epochs=$epochs" \
    --set training.warmup_epochs=1 --set metrics.log_every_steps=10 \
    --set checkpoint.every_epochs=0 >"$dir.log" 2>&1
  train_rate "$dir"
}

bench() {  # bench BATCH LOG
  build/bench/train_bench --config "$config" --set "data.prepared_dir=$out/data/prepared" \
    --batch "$1" --threads 1 --steps "$bench_steps" >"$2" 2>&1
}

echo "two_workers.sh: $config, global batch $batch, one thread per process; flexmoe $flexmoe;" \
  "$(run_facts)"
echo
echo "| round | 1 worker | 2 workers | speed-up | 2-worker step: compute / exchange / reduce / data ms | train_bench B | 2 x train_bench B/2 | ceiling | share of ceiling |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
  one=$(train 1)
  two=$(train 2)
  split=$(step_split "$out/runs/w2")
  bench "$batch" "$out/bench-single.log"
  bench $((batch / 2)) "$out/bench-a.log" &
  pid=$!
  bench $((batch / 2)) "$out/bench-b.log"
  wait "$pid"
  single=$(bench_rate "$out/bench-single.log")
  a=$(bench_rate "$out/bench-a.log")
  b=$(bench_rate "$out/bench-b.log")
  /usr/bin/python3 -c '
import sys
r, one, two, split, single, a, b = sys.argv[1:]
one, two, single, a, b = map(float, (one, two, single, a, b))
speed, ceiling = two / one, (a + b) / single
print("| %s | %.1f | %.1f | %.2fx | %s | %.1f | %.1f + %.1f | %.2fx | %.0f%% |" % (
    r, one, two, speed, split, single, a, b, ceiling, 100 * speed / ceiling))' \
    "$round" "$one" "$two" "$split" "$single" "$a" "$b"
done
