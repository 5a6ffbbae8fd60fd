#!/usr/bin/env bash
# The loader on the path `flexmoe loader` runs (shards read on demand through its cache, batches
# built on its build threads), against the disk's own read rate and against what one training
# worker consumes:
#   1. synthesises and prepares an ADNI-like dataset of SAMPLES samples (once);
#   2. the disk: drops the page cache and reads every shard file with dd (MB/s);
#   3. one ADNI-like worker at batch 64: `flexmoe train --workers 1`, its own samples/s after
#      the first epoch (what a consumer takes);
#   4. build/bench/loader_bench with 1, 4 and 8 consumers, cache budgets of 32 MB and the
#      config's default, the page cache dropped before each cold run.
# Usage: bench/loader.sh [SAMPLES]   (default 160000; root, for dropping the page cache)
# Environment: OUT (bench-out/loader), SECONDS_EACH (5), BUILD_THREADS (2), TRAIN_EPOCHS (2),
# TRAIN_SAMPLES (6000: the dataset of step 3)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/bench_lib.sh
samples=${1:-160000}
OUT=${OUT:-bench-out/loader}
config=configs/adni_like.textproto
mkdir -p "$OUT/n$samples"
data=(--set "data.input=$OUT/n$samples/raw" --set "data.prepared_dir=$OUT/n$samples/prepared"
  --set "synth.num_samples=$samples")
if [ ! -e "$OUT/n$samples/prepared/meta.textproto" ]; then
  build/flexmoe synth --config "$config" "${data[@]}" >/dev/null
  build/flexmoe prepare --config "$config" "${data[@]}" >/dev/null
fi
prepared=$OUT/n$samples/prepared
echo "commit $(git rev-parse --short HEAD), $(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

sync
echo 3 >/proc/sys/vm/drop_caches
bytes=$(cat "$prepared"/shard-*.rec | wc -c)
start=$(date +%s.%N)
for f in "$prepared"/shard-*.rec; do dd if="$f" of=/dev/null bs=1M status=none; done
disk=$(echo "$bytes $start $(date +%s.%N)" | awk '{ printf "%.1f", $1 / 1e6 / ($3 - $2) }')
echo "disk: $(echo "$bytes" | awk '{ printf "%.1f", $1 / 1e6 }') MB of shards read by dd at $disk MB/s (page cache dropped)"

# What one worker consumes does not depend on the dataset's size: measured on TRAIN_SAMPLES.
small=$OUT/n${TRAIN_SAMPLES:-6000}
small_data=(--set "data.input=$small/raw" --set "data.prepared_dir=$small/prepared"
  --set "synth.num_samples=${TRAIN_SAMPLES:-6000}")
if [ ! -e "$small/prepared/meta.textproto" ]; then
  build/flexmoe synth --config "$config" "${small_data[@]}" >/dev/null
  build/flexmoe prepare --config "$config" "${small_data[@]}" >/dev/null
fi
run=$OUT/train-b64
rm -rf "$run"
build/flexmoe train --workers 1 --threads 1 --config "$config" "${small_data[@]}" \
  --set training.batch_size=64 --set "training.epochs=${TRAIN_EPOCHS:-2}" \
  --set training.warmup_epochs=0 --set "run.dir=$run" --set cluster.http_listen= >"$OUT/train.log" 2>&1
echo "one worker, batch 64: $(train_rate "$run") samples/s (flexmoe train's own step records after the first epoch)"

for cache in 32 default; do
  flags=()
  [ "$cache" = default ] || flags=(--cache-mb "$cache")
  build/bench/loader_bench --config "$config" "${data[@]}" --set training.batch_size=64 \
    --seconds "${SECONDS_EACH:-5}" --consumers 1,4,8 --build-threads "${BUILD_THREADS:-2}" \
    --drop-caches ${flags[@]+"${flags[@]}"} 2>>"$OUT/loader_bench.err"
done
