#!/usr/bin/env bash
# System test (ctest label cluster): a real SLURM on the 3 hosts of a virtual cluster
# (tests/cluster/vcluster.sh): slurmctld on the first host, one slurmd per host with its own
# host name, spool directory and pid file, and munge; then launch/slurm/train.sbatch
#   1. across 3 nodes, one loader per node (ranks 0-2, one per host), finishes;
#   2. a node that fails mid-run (its processes and slurmd killed, its link cut) ends the job
#      within heartbeat timeout + 10 s, naming it, without --max-restarts, with none of the
#      job's processes left on any node;
#   3. with --max-restarts 1 and --no-kill, the job restarts on the 2 nodes left and
#      finishes;
#   4. a coordinator that cannot start (its live page's address is not on its node) stops
#      the start: no loader is launched, the job fails, the last line names it and why.
# Usage: slurm_cluster_test.sh FLEXMOE_BINARY SOURCE_DIR [CASE...]   (default: 1 2 3 4)
set -euo pipefail
FLEXMOE=$(readlink -f "$1")
export FLEXMOE
SOURCE=$2
shift 2
cases=${*:-1 2 3 4}
for tool in munged slurmctld slurmd sbatch; do
  command -v "$tool" >/dev/null || { echo "slurm_cluster_test: $tool missing (launch/setup.sh installs it)"; exit 1; }
done
source "$SOURCE/tests/cluster/cluster_test_lib.sh"
cluster_test_cleanup() { ! declare -F slurm_down >/dev/null || slurm_down; }
cluster_test_logs() {
  on vh1 squeue -o "%i %T %r %N" >&2 || true
  on vh1 sinfo -N >&2 || true
  [ -f "$T/slurmctld.log" ] && { echo "--- $T/slurmctld.log" >&2; tail -25 "$T/slurmctld.log" >&2; }
}
cluster_test_up slurm_cluster_test sc 3
unset OMPI_MCA_plm_rsh_agent  # inside SLURM, mpirun starts its daemons with srun
source "$SOURCE/tests/launch/slurm_lib.sh"
slurm_up vh1 vh2 vh3
source "$SOURCE/tests/launch/job_test_lib.sh"
"$FLEXMOE" synth "${common[@]}" >/dev/null
"$FLEXMOE" prepare "${common[@]}" >/dev/null 2>&1
BOUND_MS=$(((4 + 10) * 1000))

submit() {  # NAME SBATCH-FLAGS... -- SCRIPT-FLAGS...: submits from vh1; prints the job id
  local name=$1
  shift
  local flags=()
  while [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  (cd "$T" && on vh1 sbatch --parsable --output="$T/$name.out" "${flags[@]}" \
    "$SOURCE/launch/slurm/train.sbatch" "${common[@]}" --run-dir "$T/$name" --threads 1 "$@")
}
wait_checkpoint() {
  local deadline=$(($(now_ms) + 180000))
  until ls "$T/$1/checkpoints"/step-*/manifest.json >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "$1: no checkpoint after 180 s"
    sleep 0.2
  done
}
# Fails a node: its processes (slurmd and the job's) killed, its link cut.
fail_node() { "$VC" crash "$C" "$1"; }
# Brings a failed node back: its link, a new slurmd, and SLURM's node state.
revive_node() {
  "$VC" heal "$C" "$1"
  on "$1" slurmd -D -f "$SLURM_CONF" -N "$1" >>"$T/slurmd-$1.out" 2>&1 &
  slurm_daemons+=($!)
  on vh1 scontrol update nodename="$1" state=resume >/dev/null 2>&1 || true
  for _ in $(seq 1 150); do
    on vh1 sinfo -h -N -n "$1" -o %t | grep -q idle && return 0
    sleep 0.2
  done
  fail "$1 did not come back: $(on vh1 sinfo -N 2>&1)"
}

for c in $cases; do
  case $c in
    1)
      job=$(submit three --nodes=3 --ntasks=3 -- --set training.epochs=2)
      state=$(slurm_wait_job "$job")
      [ "$state" = COMPLETED ] || fail "the 3-node job ended $state"
      grep -q "job finished on vh1 vh2 vh3" "$T/three.out" || fail "the 3-node job did not finish"
      python3 - "$T/three/job.json" <<'PY' || fail "job.json's loaders: $(cat "$T/three/job.json")"
import json, sys
job = json.load(open(sys.argv[1]))
loaders = sorted((m["rank"], m["host"]) for m in job["members"] if m["role"] == "loader")
assert loaders == [(0, "vh1"), (1, "vh2"), (2, "vh3")], loaders
assert sorted(m["host"] for m in job["members"] if m["role"] == "worker") == ["vh1", "vh2", "vh3"]
PY
      say "3 nodes: one loader per node, finished"
      ;;
    2)
      job=$(submit lost --nodes=3 --ntasks=3 -- --set training.epochs=500 --set checkpoint.every_epochs=1)
      wait_checkpoint lost
      t0=$(now_ms)
      fail_node vh3
      until grep -q "the job failed" "$T/lost.out" 2>/dev/null; do
        [ "$(now_ms)" -lt $((t0 + BOUND_MS)) ] || fail "no end of the job $BOUND_MS ms after the node failed"
        sleep 0.2
      done
      took=$(($(now_ms) - t0))
      grep "the job failed" "$T/lost.out" | grep -q "host vh3 lost (worker 2, loader 2 on it)" ||
        fail "the failure does not name vh3 and its members"
      for h in vh1 vh2 vh3; do
        wait_clean "$h" $((t0 + BOUND_MS)) || fail "processes left on $h: $(flexmoe_on "$h")"
      done
      state=$(slurm_wait_job "$job")
      [ "$state" = FAILED ] || [ "$state" = NODE_FAIL ] || fail "the job ended $state, not FAILED"
      say "a failed node ended the job in $took ms ($state): $(grep 'the job failed' "$T/lost.out")"
      revive_node vh3
      ;;
    3)
      job=$(submit restarted --nodes=3 --ntasks=3 --no-kill -- --set training.epochs=4 \
        --set checkpoint.every_epochs=1 --max-restarts 1)
      wait_checkpoint restarted
      fail_node vh3
      state=$(slurm_wait_job "$job")
      [ "$state" = COMPLETED ] || fail "the restarted job ended $state"
      grep -q "restart 1 of 1 after: .*vh3" "$T/restarted.out" || fail "no restart line naming vh3"
      grep -q "job finished on vh1 vh2;" "$T/restarted.out" || fail "not finished on vh1 vh2"
      say "--max-restarts 1: $(grep 'restart 1 of 1' "$T/restarted.out")"
      revive_node vh3
      ;;
    4)
      job=$(submit nostart --nodes=2 --ntasks=2 -- --set cluster.http_listen=10.99.99.99:0)
      state=$(slurm_wait_job "$job")
      [ "$state" = FAILED ] || fail "a job whose coordinator cannot start ended $state"
      last=$(tail -1 "$T/nostart.out")
      [[ "$last" == *"the job failed to start: the coordinator did not start (exit 1)"* ]] ||
        fail "the last line does not name the coordinator's start: $last"
      [[ "$last" == *"10.99.99.99"* ]] || fail "the last line does not say why: $last"
      ! ls "$T/nostart"/loader-*.log >/dev/null 2>&1 || fail "loaders were started"
      say "start failure: $last"
      ;;
    *) fail "unknown case $c" ;;
  esac
done
say "passed"
