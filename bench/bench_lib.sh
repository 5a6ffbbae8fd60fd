# Shared by the bench/*.sh scripts that measure `flexmoe train` (sourced, from the
# repository root): the environment, synthetic data prepared once, and the training
# samples/s of a run directory.

source launch/blas_env.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# prepare_synthetic CONFIG DIR: sets the array `data` to the --set overrides that point
# CONFIG's data at DIR/raw and DIR/prepared, and synthesises and prepares it unless done.
prepare_synthetic() {
  local config=$1 dir=$2
  data=(--set "data.input=$dir/raw" --set "data.prepared_dir=$dir/prepared")
  mkdir -p "$dir"
  if [ ! -e "$dir/prepared/meta.textproto" ]; then
    build/flexmoe synth --config "$config" "${data[@]}" >/dev/null
    build/flexmoe prepare --config "$config" "${data[@]}" >/dev/null
  fi
}

# train_rate RUN_DIR: flexmoe train's own training samples/s, from the step records of
# RUN_DIR/metrics.jsonl after the first epoch (training steps only: no set-up, validation
# or first-epoch warm-up).
train_rate() {
  /usr/bin/python3 - "$1/metrics.jsonl" <<'PY'
import json, sys
samples = seconds = 0.0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("event") == "step" and r.get("epoch", 0) >= 1 and r.get("samples_per_s"):
        samples += r["samples"]
        seconds += r["samples"] / r["samples_per_s"]
print("%.1f" % (samples / seconds) if seconds > 0 else "nan")
PY
}

# step_split RUN_DIR [DIGITS]: the slowest worker's mean step split (ms: compute / exchange /
# reduce / data) over the step records after the first epoch, DIGITS decimals (default 1).
step_split() {
  /usr/bin/python3 - "$1/metrics.jsonl" "${2:-1}" <<'PY'
import json, sys
sums, n = {}, 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("event") == "step" and r.get("epoch", 0) >= 1 and r.get("step_ms"):
        n += 1
        for k, v in r["step_ms"].items():
            sums[k] = sums.get(k, 0) + v
print(" / ".join("%.*f" % (int(sys.argv[2]), sums.get(k, 0) / max(n, 1)) for k in
                 ("compute", "exchange", "reduce", "data")))
PY
}

# run_facts: "commit C, DATE UTC, N cores (CPU model)", for a script's first line.
run_facts() {
  echo "commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC')," \
    "$(getconf _NPROCESSORS_ONLN) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
}
