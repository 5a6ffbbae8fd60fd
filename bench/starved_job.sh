#!/usr/bin/env bash
# A slow but live job must not be judged dead (issue 37, item 4): `flexmoe train --workers 2`
# (the quickstart, more epochs than it can finish) runs for M minutes with its whole process
# tree (launcher, coordinator, loader, workers) in a cgroup limited to P% of one core and to a
# memory limit 25% above its resident memory, beside a busy neighbour (one `yes` per core at
# normal priority, outside the cgroup), with the page cache dropped every 20 s. No member may
# be judged dead. Then worker 1 is stopped (SIGSTOP): the job must end naming it within the
# heartbeat timeout + 1 s. Needs root and cgroup v1's cpu and memory controllers.
#
#   bench/starved_job.sh [--minutes M] [--cpu-percent P] [--out DIR]
#
# Defaults: 10 minutes, 10%. Prints the figures and, last, one JSON object.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10
percent=10
out=bench-out/starved-job
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --cpu-percent) percent=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "starved_job.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cpu_root=/sys/fs/cgroup/cpu
mem_root=/sys/fs/cgroup/memory
if [ ! -w "$cpu_root" ] || [ ! -w "$mem_root" ]; then
  echo "starved_job.sh: needs root and cgroup v1 cpu and memory controllers at $cpu_root, $mem_root" >&2
  exit 2
fi
source bench/bench_lib.sh
export OMP_NUM_THREADS=1
config=configs/quickstart.textproto
mkdir -p "$out"
out=$(cd "$out" && pwd)
prepare_synthetic "$config" "$out/data"
group=flexmoe-starved-$$
cpu_group=$cpu_root/$group
mem_group=$mem_root/$group
job=""
neighbours=""
cleanup() {
  for p in $neighbours; do kill "$p" 2>/dev/null || true; done
  # Whatever of the job is left (the whole tree is in the group) is killed, then the groups
  # go. (cgroup files report size 0: read them.)
  local deadline=$((SECONDS + 30))
  while [ -d "$cpu_group" ] && [ -n "$(cat "$cpu_group/cgroup.procs")" ] && [ $SECONDS -lt $deadline ]; do
    xargs -r kill -9 <"$cpu_group/cgroup.procs" 2>/dev/null || true
    sleep 0.2
  done
  rmdir "$cpu_group" "$mem_group" 2>/dev/null || true
}
trap cleanup EXIT
mkdir "$cpu_group" "$mem_group"
echo 100000 >"$cpu_group/cpu.cfs_period_us"
echo $((1000 * percent)) >"$cpu_group/cpu.cfs_quota_us"

rm -rf "$out/run"
log=$out/train.log
# The job's process tree joins both groups before flexmoe starts (children inherit them).
train=(build/flexmoe train --config "$config" "${data[@]}" --workers 2 --max-restarts 0
  --set training.epochs=100000 --set training.early_stopping_patience=0 --set "run.dir=$out/run")
setsid bash -c 'echo $$ > "$1/cgroup.procs"; echo $$ > "$2/cgroup.procs"; shift 2; exec "$@"' \
  starved "$cpu_group" "$mem_group" "${train[@]}" >"$log" 2>&1 &
job=$!

# wait_for WHAT SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "starved_job.sh: timed out after ${seconds} s waiting for $what" >&2
      tail -5 "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
}
has_steps() { [ -s "$out/run/metrics.jsonl" ]; }
wait_for "the first step line" 600 has_steps
rss_kb=$(awk '/^total_rss /{print int($2 / 1024)}' "$mem_group/memory.stat")
limit=$((rss_kb * 1024 * 5 / 4))
echo "$limit" >"$mem_group/memory.limit_in_bytes"
echo "job running at ${percent}% of one core; resident ${rss_kb} kB, memory limit $((limit / 1024)) kB (page cache squeezed)"

for _ in $(seq "$(nproc)"); do
  yes >/dev/null &
  neighbours="$neighbours $!"
done
start=$SECONDS
end=$((start + minutes * 60))
drops=0
while [ $SECONDS -lt $end ]; do
  if ! kill -0 "$job" 2>/dev/null; then break; fi
  sync
  echo 3 >/proc/sys/vm/drop_caches
  drops=$((drops + 1))
  sleep 20
done
alive=$((SECONDS - start))
throttled=$(awk '/^nr_throttled /{print $2}' "$cpu_group/cpu.stat")
steps=$(grep -c '"event":"step"' "$out/run/metrics.jsonl" || true)
false_verdict=0
oom_kills=$(awk '/^oom_kill /{print $2}' "$mem_group/memory.oom_control")
if [ "${oom_kills:-0}" != 0 ]; then
  # Our own memory limit killed a member: a real death, not a false verdict; the limit was
  # too tight for this run.
  echo "the memory limit killed $oom_kills process(es) of the job: not a test of the verdict; raise the limit"
  exit 2
fi
if ! kill -0 "$job" 2>/dev/null || grep -q "stopping the job" "$out/run/coordinator.log"; then
  false_verdict=1
  echo "FALSE VERDICT after ${alive} s:"
  grep -m1 "stopping the job" "$out/run/coordinator.log" || tail -5 "$log"
fi
for p in $neighbours; do kill "$p" 2>/dev/null || true; done
neighbours=""

detect=-1
if [ "$false_verdict" = 0 ]; then
  worker=$(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print([m['pid'] for m in j['members'] if m['role']=='worker' and m['rank']==1][0])" "$out/run/job.json")
  t0=$(date +%s.%N)
  kill -STOP "$worker"
  judged() { grep -q "stopping the job" "$out/run/coordinator.log"; }
  wait_for "the coordinator's verdict after worker 1 stopped" 60 judged
  t1=$(date +%s.%N)
  detect=$(python3 -c "print(round($t1 - $t0, 2))")
  kill -CONT "$worker" 2>/dev/null || true
  echo "worker 1 stopped: judged after ${detect} s (polled every 0.2 s): $(grep -m1 '^flexmoe coordinator: stopping the job' "$out/run/coordinator.log")"
fi
echo "{\"minutes\": $minutes, \"cpu_percent\": $percent, \"alive_s\": $alive, \"steps_logged\": $steps, \"cache_drops\": $drops, \"cpu_throttled_periods\": $throttled, \"memory_limit_kb\": $((limit / 1024)), \"false_verdicts\": $false_verdict, \"stop_detect_s\": $detect}"
[ "$false_verdict" = 0 ]
