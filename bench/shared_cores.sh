#!/usr/bin/env bash
# Training beside a second job on the same cores (issue 15, item 1): `flexmoe train` on the
# quickstart config with --threads 1, --threads 2 and 2 workers x 1 thread, first on a quiet
# machine, then beside a second `flexmoe train` of the same config with one thread per core
# (--threads $(nproc): it trains for the whole measurement). --wait-policy ACTIVE exports
# OMP_WAIT_POLICY=ACTIVE to both jobs: OpenMP's spinning default, as flexmoe ran before it
# set PASSIVE itself (launch/wait_policy.h), for a before/after in one run. Figures are flexmoe train's own: the training
# samples/s of its metrics.jsonl step records (training steps only, epochs after the first),
# so setup, validation and the first epoch's warm-up are left out. Ratios are within one
# round (these machines are noisy).
#
#   bench/shared_cores.sh [--out DIR] [--epochs N] [--rounds R] [--loads quiet,loaded]
#                         [--wait-policy ACTIVE|PASSIVE] [--background-threads N]
# FLEXMOE=PATH measures another binary (both jobs; a build of an earlier commit, say).
# --background-threads N: the second job's threads (default: one per core). 1 is the case
# docs/benchmarks.md names as still short: three busy processes on two cores.
#
# Prints one table per round and writes OUT/shared_cores.csv
# (round, load, run, samples_per_s). Run from the repository root after launch/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-out/shared-cores
epochs=4
rounds=1
loads=quiet,loaded
background_threads=$(getconf _NPROCESSORS_ONLN)
flexmoe=${FLEXMOE:-build/flexmoe}  # the binary measured (both jobs)
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --loads) loads=$2; shift 2 ;;
    --wait-policy) export OMP_WAIT_POLICY=$2; shift 2 ;;
    --background-threads) background_threads=$2; shift 2 ;;
    *) echo "shared_cores.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
source bench/bench_lib.sh
config=configs/quickstart.textproto
prepare_synthetic "$config" "$out/data"

# One measured run: name, then flexmoe train's arguments.
measure() {
  local name=$1 dir="$out/runs/$round-$load-$1"
  shift
  rm -rf "$dir"
  "$flexmoe" train --config "$config" "${data[@]}" --set "run.dir=$dir" \
    --set "training.epochs=$epochs" --set training.warmup_epochs=1 \
    --set metrics.log_every_steps=10 "$@" >"$dir.log" 2>&1 ||
    { echo "shared_cores.sh: $name failed (see $dir.log)" >&2; exit 1; }
  local r
  r=$(train_rate "$dir")
  echo "$round,$load,$name,$r" >>"$out/shared_cores.csv"
  printf '  %-22s %8s samples/s\n' "$name" "$r"
}

mkdir -p "$out/runs"
echo "round,load,run,samples_per_s" >"$out/shared_cores.csv"
background=""
stop_background() {
  if [ -n "$background" ]; then
    kill -TERM "$background" 2>/dev/null || true
    wait "$background" 2>/dev/null || true
    background=""
  fi
}
trap stop_background EXIT
echo "shared_cores.sh: OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset (flexmoe sets PASSIVE)}; second job --threads $background_threads; binary $flexmoe; $(getconf _NPROCESSORS_ONLN) cores, checkout at $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC')"
for round in $(seq 1 "$rounds"); do
  for load in ${loads//,/ }; do
    if [ "$load" = loaded ]; then
      rm -rf "$out/runs/background"
      "$flexmoe" train --config "$config" "${data[@]}" --set "run.dir=$out/runs/background" \
        --set training.epochs=100000 --set checkpoint.every_epochs=0 --threads "$background_threads" \
        >"$out/runs/background.log" 2>&1 &
      background=$!
      # Until it trains (its first step record).
      for _ in $(seq 1 120); do
        grep -q '"event":"step"' "$out/runs/background/metrics.jsonl" 2>/dev/null && break
        sleep 0.5
      done
    fi
    echo "round $round, $load:"
    measure threads-1 --workers 1 --threads 1
    measure threads-2 --workers 1 --threads 2
    measure workers-2 --workers 2 --threads 1
    stop_background
  done
  /usr/bin/python3 - "$out/shared_cores.csv" "$round" <<'PY'
import csv, sys
rows = {(r["load"], r["run"]): float(r["samples_per_s"])
        for r in csv.DictReader(open(sys.argv[1])) if r["round"] == sys.argv[2]}
for load in ("quiet", "loaded"):
    if (load, "threads-1") not in rows:
        continue
    t1, t2, w2 = (rows[(load, n)] for n in ("threads-1", "threads-2", "workers-2"))
    print("round %s, %s: --threads 2 / --threads 1 = %.2fx; 2 workers / 1 worker = %.2fx"
          % (sys.argv[2], load, t2 / t1, w2 / t1))
PY
done
