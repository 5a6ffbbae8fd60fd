#!/usr/bin/env bash
# System test (ctest label slurm): a real single-node SLURM started here (munged, slurmctld
# and slurmd from Debian, on private ports, state in a temporary directory), then
#   1. launch/slurm/train.sbatch with 2 tasks: its test metrics equal those of
#      `flexmoe train --workers 2` with the same seed on this machine;
#   2. a second submission preempted with `scancel --signal=USR1` leaves a checkpoint and
#      exits 0, and its resubmission with --resume continues from it;
#   3. srun of 2 workers without an MPI plugin is refused by name.
# Usage: slurm_test.sh FLEXMOE_BINARY SOURCE_DIR
set -euo pipefail
FLEXMOE=$(readlink -f "$1")
SOURCE=$2
[ "$(id -u)" -eq 0 ] || { echo "slurm_test: needs root (slurmd runs jobs as root here)"; exit 1; }
for tool in munged slurmctld slurmd sbatch; do
  command -v "$tool" >/dev/null || { echo "slurm_test: $tool missing (launch/setup.sh installs it)"; exit 1; }
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export FLEXMOE  # the batch script runs this binary
T=$(mktemp -d /tmp/flexmoe-slurm-XXXXXX)
cleanup() {
  slurm_down
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "slurm_test: FAILED: $*" >&2
  squeue -o "%i %T %r" >&2 || true
  for f in "$T"/*.out "$T"/slurmctld.log "$T"/slurmd-*.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -30 "$f" >&2; }
  done
  exit 1
}

# --- a single-node SLURM -------------------------------------------------------------
source "$(dirname "$0")/slurm_lib.sh"
slurm_up "$(hostname -s)"

# --- data and a local reference run --------------------------------------------------
source "$(dirname "$0")/job_test_lib.sh"
prepare_and_train_locally 3

# --- 1. the batch script equals the local run ----------------------------------------
cd "$T"
timeout 300 sbatch --wait --ntasks=2 --output="$T/batch.out" \
  "$SOURCE/launch/slurm/train.sbatch" "${common[@]}" --set training.epochs=3 \
  --run-dir "$T/batch" --threads 1 >/dev/null || fail "the batch job failed"
grep -q "job finished\|: finished" "$T/batch.out" || fail "the batch job did not finish"
[ "$(test_metrics "$T/batch")" = "$(test_metrics "$T/local")" ] ||
  fail "batch test metrics $(test_metrics "$T/batch") differ from local $(test_metrics "$T/local")"
echo "slurm_test: batch job = local run: $(test_metrics "$T/batch")"

# --- 2. preemption and resubmission --------------------------------------------------
job=$(sbatch --parsable --ntasks=2 --output="$T/preempted.out" \
  "$SOURCE/launch/slurm/train.sbatch" "${common[@]}" --set training.epochs=500 \
  --run-dir "$T/preempt" --threads 1)
for _ in $(seq 1 600); do
  ls "$T/preempt/checkpoints"/step-*/manifest.json >/dev/null 2>&1 && break
  sleep 0.2
done
ls "$T/preempt/checkpoints"/step-*/manifest.json >/dev/null 2>&1 || fail "no checkpoint before the preemption"
scancel --signal=USR1 "$job"
state=$(slurm_wait_job "$job")
[ "$state" = COMPLETED ] || fail "the preempted job ended $state, not COMPLETED (exit 0)"
grep -q '"state": "preempted"' "$T/preempt/job.json" || fail "job.json does not say preempted"
newest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["newest_checkpoint"])' "$T/preempt/job.json")
epoch=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["epoch"])' "$newest/manifest.json")
timeout 300 sbatch --wait --ntasks=2 --output="$T/resumed.out" \
  "$SOURCE/launch/slurm/train.sbatch" "${common[@]}" --set "training.epochs=$((epoch + 1))" \
  --run-dir "$T/preempt" --threads 1 --resume >/dev/null || fail "the resubmitted job failed"
grep -q "resuming from $newest" "$T/resumed.out" || fail "the resubmission did not resume from $newest"
echo "slurm_test: preempted at $newest, resumed and finished"

# --- 3. srun without an MPI plugin ----------------------------------------------------
if timeout 120 srun --ntasks=2 --mpi=none --output="$T/no-mpi.out" "$FLEXMOE" worker "${common[@]}" \
  --set training.epochs=1 --set "run.dir=$T/no-mpi" >/dev/null 2>&1; then
  fail "srun without an MPI plugin was not refused"
fi
grep -q "srun started 2 tasks without an MPI plugin" "$T/no-mpi.out" || fail "the refusal does not say why"
echo "slurm_test: passed"
