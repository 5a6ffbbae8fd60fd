#!/usr/bin/env bash
# flexmoe training across the hosts of an Open MPI hostfile: the coordinator on the first
# host, one loader per host, the workers through mpirun. The run directory must be on a
# file system every host sees (the job token and the checkpoints go there).
#
#   launch/mpirun/train.sh --hostfile FILE --config FILE --run-dir DIR [--np N]
#     [--threads T] [--resume] [--set path=value]...
#
# --np defaults to the hostfile's slots. SIGINT, SIGTERM or SIGUSR1 to this script have the
# job checkpoint at the next step and stop; continue with --resume.
set -euo pipefail

die() { echo "mpirun/train.sh: $*" >&2; exit 2; }
here=$(cd "$(dirname "$0")/../.." && pwd)
FLEXMOE=${FLEXMOE:-$here/build/flexmoe}
[ -x "$FLEXMOE" ] || die "no flexmoe binary at $FLEXMOE (set FLEXMOE=PATH)"
hostfile="" config="" run_dir="" np="" resume="" threads=1
sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --hostfile) hostfile=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --run-dir) run_dir=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --resume) resume=--resume; shift ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    --help|-h) sed -n '2,11p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (expected --hostfile, --config, --run-dir, --np, --threads, --resume, --set)" ;;
  esac
done
[ -f "$hostfile" ] || die "--hostfile FILE is required (${hostfile:-none given})"
[ -n "$config" ] || die "--config FILE is required"
[ -n "$run_dir" ] || die "--run-dir DIR is required"
# Hosts in order (the first field of each line; comments and blank lines skipped).
mapfile -t hosts < <(sed -e 's/#.*//' "$hostfile" | awk 'NF { print $1 }' | awk '!seen[$0]++')
[ ${#hosts[@]} -gt 0 ] || die "$hostfile names no host"
if [ -z "$np" ]; then
  np=$(sed -e 's/#.*//' "$hostfile" | awk 'NF { n = 1; for (i = 2; i <= NF; ++i)
    if ($i ~ /^slots=/) { split($i, kv, "="); n = kv[2] } total += n } END { print total }')
fi
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)
(umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$run_dir/job.token")
common=(--config "$config" "${sets[@]}" --set "run.dir=$run_dir"
        --set "cluster.job_token_source=file:$run_dir/job.token")
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
first=${hosts[0]}

# The "listening on ADDR" lines of a log, once it has `count` of them (60 s at most).
addresses_in() {
  local log=$1 count=$2 pid=$3
  for _ in $(seq 1 600); do
    if [ "$(grep -c '^listening on ' "$log" 2>/dev/null || true)" -ge "$count" ]; then
      grep '^listening on ' "$log" | sed 's/^listening on //' | paste -sd, -
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "mpirun/train.sh: $log:" >&2; tail -5 "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "mpirun/train.sh: $count addresses not in $log after 60 s" >&2
  return 1
}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

mpirun "${root[@]}" --host "$first" -np 1 "$FLEXMOE" coordinator "${common[@]}" \
  --listen "$first:0" >"$run_dir/coordinator.log" 2>&1 &
coordinator_pid=$!
pids+=("$coordinator_pid")
coordinator=$(addresses_in "$run_dir/coordinator.log" 1 "$coordinator_pid")
trap 'kill -USR1 "$coordinator_pid" 2>/dev/null || true' INT TERM USR1

hostlist=$(printf '%s,' "${hosts[@]}")
mpirun "${root[@]}" --host "${hostlist%,}" --map-by ppr:1:node \
  bash -c 'exec "$0" loader "${@}" --listen "$(hostname):0"' "$FLEXMOE" "${common[@]}" \
  --set "cluster.coordinator=$coordinator" >"$run_dir/loaders.log" 2>&1 &
loaders_pid=$!
pids+=("$loaders_pid")
loaders=$(addresses_in "$run_dir/loaders.log" "${#hosts[@]}" "$loaders_pid")

echo "job on ${hosts[*]}: coordinator $coordinator, loaders $loaders, $np workers x $threads" \
  "threads, run directory $run_dir"
set +e
mpirun "${root[@]}" --hostfile "$hostfile" -np "$np" -x "OMP_NUM_THREADS=$threads" \
  "$FLEXMOE" worker "${common[@]}" --set "cluster.coordinator=$coordinator" \
  --set "cluster.loader_addresses=$loaders" --threads "$threads" $resume &
workers_pid=$!
pids+=("$workers_pid")
while kill -0 "$workers_pid" 2>/dev/null; do wait "$workers_pid"; done
wait "$workers_pid"; status=$?
while kill -0 "$coordinator_pid" 2>/dev/null; do wait "$coordinator_pid"; done
wait "$coordinator_pid"; coordinator_status=$?
wait "$loaders_pid"
set -e
state=$(grep -m1 '^  "state"' "$run_dir/job.json" | tr -d ' ",' | cut -d: -f2 || true)
echo "job $state (workers exit $status, coordinator exit $coordinator_status); run directory $run_dir"
[ "$state" = preempted ] && echo "continue with: $0 --hostfile $hostfile --config $config --run-dir $run_dir --resume"
[ "$status" -ne 0 ] && exit "$status"
exit "$coordinator_status"
