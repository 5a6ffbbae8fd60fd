#!/usr/bin/env bash
# flexmoe training across the hosts of an Open MPI hostfile: a thin wrapper over
# `flexmoe train --hostfile FILE` (launch/supervisor/: the coordinator on the first host, one
# loader per host, the workers through mpirun; the same supervisor, messages and exit codes
# as the local job). The run directory must be on a file system every host sees.
#
#   launch/mpirun/train.sh --hostfile FILE --config FILE --run-dir DIR [--np N]
#     [--threads T] [--resume] [--max-restarts K] [--nodes MIN[:MAX]] [--set path=value]...
#
# --np defaults to the hostfile's slots. SIGINT, SIGTERM or SIGUSR1 have the job checkpoint
# at the next step and stop; continue with --resume. When a member or a host is lost the job
# ends within cluster.heartbeat_timeout_s + 10 s, naming it; with --max-restarts K it starts
# again from the newest checkpoint on the hosts still reachable.
set -euo pipefail

NAME=mpirun/train.sh
die() { echo "$NAME: $*" >&2; exit 2; }
here=$(cd "$(dirname "$0")/../.." && pwd)
FLEXMOE=${FLEXMOE:-$here/build/flexmoe}
[ -x "$FLEXMOE" ] || die "no flexmoe binary at $FLEXMOE (set FLEXMOE=PATH)"
args=()
run_dir="" hostfile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --hostfile) hostfile=$2; args+=("$1" "$2"); shift 2 ;;
    --config | --threads | --max-restarts | --nodes) args+=("$1" "$2"); shift 2 ;;
    --run-dir) run_dir=$2; shift 2 ;;
    --np) args+=(--workers "$2"); shift 2 ;;
    --resume) args+=(--resume); shift ;;
    --set) args+=(--set "$2"); shift 2 ;;
    --help | -h) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (expected --hostfile, --config, --run-dir, --np, --threads, --resume, --max-restarts, --nodes, --set)" ;;
  esac
done
[ -f "$hostfile" ] || die "--hostfile FILE is required (${hostfile:-none given})"
[ -n "$run_dir" ] || die "--run-dir DIR is required"
exec "$FLEXMOE" train ${args[@]+"${args[@]}"} --set "run.dir=$run_dir"
