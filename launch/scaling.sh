#!/usr/bin/env bash
# Scaling experiments (docs/scaling.md): `flexmoe train` on synthetic data, sweeping the
# workers (1, 2, 4 at the same global batch), the experts, the modalities and the width,
# one factor at a time around a base point. Every figure is flexmoe train's own
# (metrics.jsonl step records, epochs after the first): samples/s and the share of the step
# the token exchange takes.
#
#   launch/scaling.sh [--quick] --out DIR
#
# Writes DIR/scaling.csv (workers, experts, modalities, width, tokens_per_step, samples_per_s,
# exchange_share, step_ms, compute_ms, exchange_ms, reduce_ms, oversubscribed) and
# DIR/scaling.png (gnuplot). More workers than cores run oversubscribed (mpirun
# --oversubscribe); the CSV's last column says so, and their figures measure the design's
# overheads rather than its speed. --quick: fewer points and epochs (a few minutes on 2
# cores). Run from the repository root after launch/setup.sh (FLEXMOE: another binary).
set -euo pipefail
cd "$(dirname "$0")/.."
out=""
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "scaling.sh: unknown argument $1 (usage: launch/scaling.sh [--quick] --out DIR)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "scaling.sh: --out DIR is required" >&2; exit 2; }
flexmoe=${FLEXMOE:-build/flexmoe}
[ -x "$flexmoe" ] || { echo "scaling.sh: $flexmoe is missing: run launch/setup.sh (or set FLEXMOE)" >&2; exit 2; }
source launch/blas_env.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$out/configs" "$out/runs"
cores=$(getconf _NPROCESSORS_ONLN)

# Base point and sweeps.
base_workers=2 base_experts=16 base_modalities=4 base_width=64
if [ "$quick" = 1 ]; then
  epochs=2 samples=800
  sweep_workers="1 2 4" sweep_experts="16 32" sweep_modalities="2 4" sweep_width="32 64"
else
  epochs=3 samples=1600
  sweep_workers="1 2 4" sweep_experts="16 32 64" sweep_modalities="2 3 4" sweep_width="32 64 128"
fi
batch=64 patches=4

# A config with M modalities of 32 features each (num_experts is set per run).
write_config() {
  local m=$1 file="$out/configs/m$1.textproto"
  {
    echo "data {"
    echo "  layout: PER_MODALITY_CSV"
    echo "  input: \"$out/data-m$m/raw\""
    echo "  prepared_dir: \"$out/data-m$m/prepared\""
    echo "  num_classes: 3"
    for i in $(seq 1 "$m"); do echo "  modalities { name: \"m$i\" synth_features: 32 }"; done
    echo "  split { training: 0.8 validation: 0.1 testing: 0.1 seed: 1 }"
    echo "}"
    echo "synth { num_samples: $samples seed: 5 min_per_combination: 10 }"
    echo "model { patches: $patches hidden_dim: 64 num_heads: 4 num_layers_fus: 1 num_experts: 16 top_k: 4 dropout: 0.1 }"
    echo "training { epochs: $epochs warmup_epochs: 1 batch_size: $batch lr: 1e-3 ensemble_size: 1 early_stopping_patience: 0 }"
    echo "checkpoint { every_epochs: 0 }"
    echo "metrics { log_every_steps: 5 }"
  } >"$file"
  if [ ! -e "$out/data-m$m/prepared/meta.textproto" ]; then
    "$flexmoe" synth --config "$file" >/dev/null
    "$flexmoe" prepare --config "$file" >/dev/null
  fi
}

echo "workers,experts,modalities,width,tokens_per_step,samples_per_s,exchange_share,step_ms,compute_ms,exchange_ms,reduce_ms,oversubscribed" >"$out/scaling.csv"
declare -A done_points=()
run_point() {
  local w=$1 e=$2 m=$3 d=$4 key="$1-$2-$3-$4"
  [ -z "${done_points[$key]:-}" ] || return 0
  done_points[$key]=1
  write_config "$m"
  local dir="$out/runs/w$w-e$e-m$m-d$d"
  rm -rf "$dir"
  "$flexmoe" train --config "$out/configs/m$m.textproto" --workers "$w" --threads 1 \
    --set "model.num_experts=$e" --set "model.hidden_dim=$d" --set "run.dir=$dir" \
    >"$dir.log" 2>&1 || { echo "scaling.sh: run $key failed (see $dir.log)" >&2; exit 1; }
  /usr/bin/python3 - "$dir/metrics.jsonl" "$w" "$e" "$m" "$d" "$batch" "$patches" "$cores" \
    >>"$out/scaling.csv" <<'PY'
import json, sys
path, w, e, m, d, batch, patches, cores = sys.argv[1:]
samples = seconds = 0.0
ms = {"compute": 0.0, "exchange": 0.0, "reduce": 0.0, "data": 0.0}
steps = 0
for line in open(path):
    r = json.loads(line)
    if r.get("event") != "step" or r.get("epoch", 0) < 1 or not r.get("samples_per_s"):
        continue
    samples += r["samples"]
    seconds += r["samples"] / r["samples_per_s"]
    for k in ms:
        ms[k] += r["step_ms"][k] * r["steps"]
    steps += r["steps"]
for k in ms:
    ms[k] /= max(steps, 1)
step = sum(ms.values())
rate = samples / seconds if seconds > 0 else float("nan")
tokens = int(batch) * int(m) * int(patches)
print("%s,%s,%s,%s,%d,%.1f,%.4f,%.3f,%.3f,%.3f,%.3f,%s" % (
    w, e, m, d, tokens, rate, ms["exchange"] / step if step else 0, step, ms["compute"],
    ms["exchange"], ms["reduce"], "yes" if int(w) > int(cores) else "no"))
PY
  tail -1 "$out/scaling.csv"
}

echo "scaling.sh: $cores cores, commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "${batch} samples per global batch, ${patches} patches per modality, 1 thread per worker"
for w in $sweep_workers; do run_point "$w" "$base_experts" "$base_modalities" "$base_width"; done
for e in $sweep_experts; do run_point "$base_workers" "$e" "$base_modalities" "$base_width"; done
for m in $sweep_modalities; do run_point "$base_workers" "$base_experts" "$m" "$base_width"; done
for d in $sweep_width; do run_point "$base_workers" "$base_experts" "$base_modalities" "$d"; done

# The figure: samples/s and exchange share along each sweep (one data file per sweep, the
# base point in each, sorted by the swept factor).
/usr/bin/python3 - "$out" "$base_workers" "$base_experts" "$base_modalities" "$base_width" <<'PY'
import csv, sys
out, base = sys.argv[1], [int(v) for v in sys.argv[2:6]]
rows = list(csv.DictReader(open(out + "/scaling.csv")))
keys = ["workers", "experts", "modalities", "width"]
for i, name in enumerate(keys):
    points = []
    for r in rows:
        values = [int(r[k]) for k in keys]
        if all(values[j] == base[j] for j in range(4) if j != i):
            points.append((values[i], r["samples_per_s"], r["exchange_share"]))
    with open("%s/sweep-%s.dat" % (out, name), "w") as f:
        for x, rate, share in sorted(points):
            f.write("%d %s %s\n" % (x, rate, share))
PY
gnuplot <<GP
set terminal pngcairo size 1200,800 font ",10"
set output "$out/scaling.png"
set multiplot layout 2,2 title "flexmoe train scaling ($cores cores; base: $base_workers workers, $base_experts experts, $base_modalities modalities, width $base_width)"
set ylabel "samples/s"
set y2label "exchange share of the step"
set y2tics
set ytics nomirror
set key top left
set xlabel "workers (same global batch; > $cores oversubscribed)"
plot "$out/sweep-workers.dat" using 1:2 with linespoints title "samples/s", "" using 1:3 axes x1y2 with linespoints title "exchange share"
set xlabel "experts"
plot "$out/sweep-experts.dat" using 1:2 with linespoints title "samples/s", "" using 1:3 axes x1y2 with linespoints title "exchange share"
set xlabel "modalities"
plot "$out/sweep-modalities.dat" using 1:2 with linespoints title "samples/s", "" using 1:3 axes x1y2 with linespoints title "exchange share"
set xlabel "width D"
plot "$out/sweep-width.dat" using 1:2 with linespoints title "samples/s", "" using 1:3 axes x1y2 with linespoints title "exchange share"
unset multiplot
GP
echo "scaling.sh: wrote $out/scaling.csv and $out/scaling.png"
