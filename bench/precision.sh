#!/usr/bin/env bash
# training.precision FP32 against BF16 (issue 36, item 1) on the command users run:
# `flexmoe train` at one config, the two precisions interleaved round by round (this machine
# is shared and noisy: compare only ratios of one round), each run's own samples/s (step
# records after the first epoch), its step split, the token bytes worker 0 sent a step
# (epoch records; 0 with one worker) and its per-epoch training losses.
#
#   bench/precision.sh [--config FILE] [--batch B] [--workers W] [--epochs N] [--rounds R]
#                      [--out DIR]
#
# Defaults: the ADNI-like config at batch 64 on one worker, 3 epochs, 3 rounds. Run from the
# repository root after launch/setup.sh; FLEXMOE=PATH measures another flexmoe binary.
set -euo pipefail
cd "$(dirname "$0")/.."
config=configs/adni_like.textproto
batch=64
workers=1
epochs=3
rounds=3
out=bench-out/precision
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "precision.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
flexmoe=${FLEXMOE:-build/flexmoe}
source bench/bench_lib.sh
export OMP_NUM_THREADS=1
prepare_synthetic "$config" "$out/data"
mkdir -p "$out/runs"

# epoch_facts RUN_DIR: worker 0's token bytes a step (last epoch) and the epochs' losses.
epoch_facts() {
  /usr/bin/python3 - "$1/metrics.jsonl" <<'PY'
import json, sys
losses, sent = [], 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("event") == "epoch":
        losses.append("%.4f" % r["train_loss"])
        sent = r.get("exchange_bytes", 0)
print("%d|%s" % (sent, " ".join(losses)))
PY
}

train() {  # train PRECISION: prints "samples/s|split|bytes|losses"
  local dir="$out/runs/$1-w$workers"
  rm -rf "$dir"
  "$flexmoe" train --config "$config" "${data[@]}" --workers "$workers" --threads 1 \
    --set "run.dir=$dir" --set "training.batch_size=$batch" --set "training.epochs=$epochs" \
    --set training.warmup_epochs=1 --set metrics.log_every_steps=10 \
    --set checkpoint.every_epochs=0 --set "training.precision=$1" >"$dir.log" 2>&1
  echo "$(train_rate "$dir")|$(step_split "$dir" 2)|$(epoch_facts "$dir")"
}

echo "precision.sh: $config, batch $batch, $workers worker(s), one thread each, $epochs epochs;" \
  "flexmoe $flexmoe; $(run_facts);" \
  "bf16 flags: $(grep -m1 -o -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo
echo "| round | FP32 samples/s | BF16 samples/s | BF16 / FP32 | step ms FP32: compute / exchange / reduce / data | step ms BF16 | token bytes a step FP32 / BF16 | epoch losses FP32 | epoch losses BF16 |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
  IFS='|' read -r f_rate f_split f_bytes f_loss <<<"$(train FP32)"
  IFS='|' read -r b_rate b_split b_bytes b_loss <<<"$(train BF16)"
  /usr/bin/python3 -c '
import sys
r, fr, fs, fb, fl, br, bs, bb, bl = sys.argv[1:]
print("| %s | %s | %s | %.2fx | %s | %s | %s / %s | %s | %s |" % (
    r, fr, br, float(br) / float(fr), fs, bs, fb, bb, fl, bl))' \
    "$round" "$f_rate" "$f_split" "$f_bytes" "$f_loss" "$b_rate" "$b_split" "$b_bytes" "$b_loss"
done
