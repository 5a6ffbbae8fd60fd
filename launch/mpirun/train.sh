#!/usr/bin/env bash
# flexmoe training across the hosts of an Open MPI hostfile: the coordinator on the first
# host, one loader per host (each host's ranks read from their own host's loader), the
# workers through mpirun. The run directory must be on a file system every host sees (the
# job token, the lease and the checkpoints go there).
#
#   launch/mpirun/train.sh --hostfile FILE --config FILE --run-dir DIR [--np N]
#     [--threads T] [--resume] [--max-restarts K] [--set path=value]...
#
# --np defaults to the hostfile's slots. SIGINT, SIGTERM or SIGUSR1 to this script have the
# job checkpoint at the next step and stop; continue with --resume. When a member or a host
# is lost the job ends within cluster.heartbeat_timeout_s + 10 s, naming it; with
# --max-restarts K it starts again from the newest checkpoint on the hosts still reachable.
set -euo pipefail

NAME=mpirun/train.sh
die() { echo "$NAME: $*" >&2; exit 2; }
here=$(cd "$(dirname "$0")/../.." && pwd)
FLEXMOE=${FLEXMOE:-$here/build/flexmoe}
[ -x "$FLEXMOE" ] || die "no flexmoe binary at $FLEXMOE (set FLEXMOE=PATH)"
hostfile="" config="" run_dir="" np="" resume="" threads=1 max_restarts=0
sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --hostfile) hostfile=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --run-dir) run_dir=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --resume) resume=--resume; shift ;;
    --max-restarts) max_restarts=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    --help|-h) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (expected --hostfile, --config, --run-dir, --np, --threads, --resume, --max-restarts, --set)" ;;
  esac
done
[ -f "$hostfile" ] || die "--hostfile FILE is required (${hostfile:-none given})"
[ -n "$config" ] || die "--config FILE is required"
[ -n "$run_dir" ] || die "--run-dir DIR is required"
[[ "$max_restarts" =~ ^[0-9]+$ ]] || die "--max-restarts must be a whole number (got '$max_restarts')"
# Hosts in order (the first field of each line; comments and blank lines skipped).
mapfile -t hosts < <(sed -e 's/#.*//' "$hostfile" | awk 'NF { print $1 }' | awk '!seen[$0]++')
[ ${#hosts[@]} -gt 0 ] || die "$hostfile names no host"
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)
common=(--config "$config" ${sets[@]+"${sets[@]}"} --set "run.dir=$run_dir"
        --set "cluster.job_token_source=file:$run_dir/job.token")
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
resume_hint="$0 --hostfile $hostfile --config $config --run-dir $run_dir"
source "$here/launch/cluster_job.sh"

# The hostfile's lines for the given hosts; their slots.
hostfile_of() {
  local keep
  keep=$(printf '%s\n' "$@")
  sed -e 's/#.*//' "$hostfile" | awk -v keep="$keep" \
    'BEGIN { n = split(keep, k, "\n"); for (i = 1; i <= n; ++i) want[k[i]] = 1 } NF && ($1 in want)'
}
slots_of() {
  awk '{ n = 1; for (i = 2; i <= NF; ++i) if ($i ~ /^slots=/) { split($i, kv, "="); n = kv[2] }
         total += n } END { print total + 0 }'
}

# Whether Open MPI can still start a process on a host (4 s at most: the probes run together, within the bound on ending a job).
host_reachable() {
  timeout -s KILL 4 mpirun ${root[@]+"${root[@]}"} --host "$1" -np 1 true >/dev/null 2>&1
}

pids=() hostfiles=()
cleanup() {
  for p in ${pids[@]+"${pids[@]}"}; do alive "$p" && kill_tree "$p"; done
  release_lease
  rm -f ${hostfiles[@]+"${hostfiles[@]}"}
}
trap cleanup EXIT

# One attempt on the given hosts: coordinator, loaders, workers.
start_members() {
  local first=$1 attempt_hosts
  attempt_hosts=$(mktemp "$run_dir/.hostfile.XXXXXX")
  hostfiles+=("$attempt_hosts")
  hostfile_of "$@" >"$attempt_hosts"
  local slots attempt_np
  slots=$(slots_of <"$attempt_hosts")
  attempt_np=${np:-$slots}
  [ "$attempt_np" -le "$slots" ] || [ "${#restart_args[@]}" -eq 0 ] || attempt_np=$slots
  mpirun ${root[@]+"${root[@]}"} --host "$first" -np 1 "$FLEXMOE" coordinator "${common[@]}" \
    --listen "$first:0" >"$run_dir/coordinator.log" 2>&1 &
  coordinator_pid=$!
  pids+=("$coordinator_pid")
  coordinator=$(addresses_in "$run_dir/coordinator.log" 1 "$coordinator_pid") ||
    { start_failed coordinator "$coordinator_pid" "$run_dir/coordinator.log"; return 1; }
  print_live_page "$run_dir/coordinator.log"
  trap 'kill -USR1 "$coordinator_pid" 2>/dev/null || true' INT TERM USR1

  local hostlist
  hostlist=$(printf '%s,' "$@")
  # One loader per host, rank = its index (OMPI_COMM_WORLD_RANK), listening on its host.
  mpirun ${root[@]+"${root[@]}"} --host "${hostlist%,}" --map-by ppr:1:node \
    bash -c 'exec "$0" loader "${@}" --listen "$(hostname):0"' "$FLEXMOE" "${common[@]}" \
    --set "cluster.coordinator=$coordinator" >"$run_dir/loaders.log" 2>&1 &
  loaders_pid=$!
  pids+=("$loaders_pid")
  loaders=$(addresses_in "$run_dir/loaders.log" "$#" "$loaders_pid") ||
    { start_failed loaders "$loaders_pid" "$run_dir/loaders.log"; return 1; }

  # A restart resumes (restart_args); the first attempt resumes when asked to.
  local extra=(${restart_args[@]+"${restart_args[@]}"})
  [ ${#extra[@]} -gt 0 ] || [ -z "$resume" ] || extra=(--resume)
  echo "$NAME: job on $*: coordinator $coordinator, loaders $loaders, $attempt_np worker(s) x" \
    "$threads threads, run directory $run_dir"
  mpirun ${root[@]+"${root[@]}"} --hostfile "$attempt_hosts" -np "$attempt_np" \
    -x "OMP_NUM_THREADS=$threads" \
    "$FLEXMOE" worker "${common[@]}" --set "cluster.coordinator=$coordinator" \
    --set "cluster.loader_addresses=$loaders" --threads "$threads" \
    ${extra[@]+"${extra[@]}"} &
  workers_pid=$!
  pids+=("$workers_pid")
}

take_lease
set +e
run_with_restarts
status=$?
exit "$status"
