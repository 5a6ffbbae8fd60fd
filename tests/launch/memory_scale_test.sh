#!/usr/bin/env bash
# Memory bounded by the window, not the dataset: `flexmoe train --workers 1` on 2,000 and on
# 16,000 synthetic samples (8x; a 512-feature image modality, about 2.4 KB a sample prepared,
# so 34 MB more data) with data.loader_cache_mb=8. The worker holds no samples, so its peak
# resident memory may grow by at most MARGIN_MB plus WINDOW_MB; the loader by at most its cache
# budget plus MARGIN_MB. Before, each grew by the whole dense dataset.
# WINDOW_MB: a worker's prefetch window holds 8 batches (LoaderClientOptions.prefetch), and an
# evaluation batch is 256 samples (kEvaluationBatchPerWorker) of about 2.4 KB decoded: 4.9 MB,
# filled only when a split has more than 2,048 samples. The large run's validation and test
# splits (2,400) fill it, the small run's (300) do not, so the large run holds up to one window
# more however large the dataset (heaptrack: +4.8 MB of decoded batches, +1.3 MB frame buffer;
# measured growth 8.5-14 MB, and +12.7 MB at 48,000 samples). Also: the prepared data records its
# data section, so a run with another data.scaling prepares again and says so.
# Usage: memory_scale_test.sh FLEXMOE SOURCE_DIR
set -euo pipefail
flexmoe=$1
source_dir=$2
MARGIN_MB=12
WINDOW_MB=5
CACHE_MB=8
work=$(mktemp -d /tmp/flexmoe-memory-XXXXXX)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
config=$source_dir/configs/quickstart.textproto

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# run N [SET...]: trains one epoch on N samples; prints "WORKER_MB LOADER_MB".
run() {
  local n=$1
  shift
  local dir=$work/n$n
  local set=(--set "data.input=$dir/raw" --set "data.prepared_dir=$dir/prepared"
    --set "data.modalities[0].synth_features=512" --set "synth.num_samples=$n"
    --set "data.loader_cache_mb=$CACHE_MB" --set "run.dir=$dir/run-$#"
    --set training.epochs=1 --set training.warmup_epochs=0 "$@")
  [ -e "$dir/raw/labels.csv" ] || "$flexmoe" synth --config "$config" "${set[@]}" >/dev/null
  timeout 600 "$flexmoe" train --config "$config" "${set[@]}" --workers 1 >"$dir/train-$#.log" 2>&1 ||
    fail "train on $n samples: $(tail -5 "$dir/train-$#.log")"
  local worker loader
  worker=$(grep -o "worker 0: peak resident memory [0-9.]*" "$dir/train-$#.log" | awk '{print $NF}')
  loader=$(grep -o "loader 0: peak resident memory [0-9.]*" "$dir/run-$#/loader.log" | awk '{print $NF}')
  [ -n "$worker" ] && [ -n "$loader" ] || fail "no peak memory lines for $n samples"
  echo "$worker $loader"
}

read -r small_worker small_loader < <(run 2000)
read -r large_worker large_loader < <(run 16000)
echo "worker peak: $small_worker MB at 2,000 samples, $large_worker MB at 16,000"
echo "loader peak: $small_loader MB at 2,000 samples, $large_loader MB at 16,000 (cache $CACHE_MB MB)"
/usr/bin/python3 - "$small_worker" "$large_worker" "$small_loader" "$large_loader" \
  "$MARGIN_MB" "$CACHE_MB" "$WINDOW_MB" <<'PY' || fail "memory grew with the dataset"
import sys
sw, lw, sl, ll, margin, cache, window = map(float, sys.argv[1:])
ok = True
if lw > sw + margin + window:
    print(f"worker grew by {lw - sw:.1f} MB (limit {margin + window} MB)"); ok = False
if ll > sl + cache + margin:
    print(f"loader grew by {ll - sl:.1f} MB (limit {cache + margin} MB)"); ok = False
sys.exit(0 if ok else 1)
PY

# Another data section: train prepares again, says why, and trains on it.
dir=$work/n2000
"$flexmoe" train --config "$config" --set "data.input=$dir/raw" \
  --set "data.prepared_dir=$dir/prepared" --set "data.modalities[0].synth_features=512" \
  --set "synth.num_samples=2000" --set data.scaling=NO_SCALING --set "run.dir=$dir/run-noscale" \
  --set training.epochs=1 --set training.warmup_epochs=0 --workers 1 >"$dir/noscale.log" 2>&1 ||
  fail "train with data.scaling=NO_SCALING: $(tail -5 "$dir/noscale.log")"
grep -q "prepared from another data section (field data.scaling: STANDARD when prepared, NO_SCALING in the config): preparing it from" \
  "$dir/noscale.log" || fail "no re-prepare line: $(head -5 "$dir/noscale.log")"
grep -q "scaling: \"NO_SCALING\"\|scaling: NO_SCALING" "$dir/prepared/meta.textproto" ||
  fail "the prepared data does not record NO_SCALING"
echo "PASS"
