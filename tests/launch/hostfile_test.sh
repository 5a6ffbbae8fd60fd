#!/usr/bin/env bash
# System test: launch/mpirun/train.sh with a hostfile (this machine, 2 slots) runs the job
# (coordinator on the first host, a loader per host, 2 workers) with the test metrics of
# `flexmoe train --workers 2` and the same seed; SIGUSR1 to the script stops a long job at a
# checkpoint with exit 0.
# Usage: hostfile_test.sh FLEXMOE_BINARY SOURCE_DIR
set -euo pipefail
export FLEXMOE=$1
SOURCE=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d /tmp/flexmoe-hostfile-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "hostfile_test: FAILED: $*" >&2; tail -20 "$T"/*.out >&2 || true; exit 1; }
echo "localhost slots=2" >"$T/hosts"
source "$(dirname "$0")/job_test_lib.sh"
prepare_and_train_locally 2
timeout 300 "$SOURCE/launch/mpirun/train.sh" --hostfile "$T/hosts" "${common[@]}" \
  --set training.epochs=2 --run-dir "$T/hostfile" >"$T/hostfile.out" 2>&1 ||
  fail "the hostfile run failed"
grep -q "job finished" "$T/hostfile.out" || fail "the hostfile run did not finish"
[ "$(test_metrics "$T/hostfile")" = "$(test_metrics "$T/local")" ] ||
  fail "test metrics $(test_metrics "$T/hostfile") differ from $(test_metrics "$T/local")"
echo "hostfile_test: hostfile run = local run: $(test_metrics "$T/hostfile")"

"$SOURCE/launch/mpirun/train.sh" --hostfile "$T/hosts" "${common[@]}" \
  --set training.epochs=500 --run-dir "$T/stopped" >"$T/stopped.out" 2>&1 &
script=$!
for _ in $(seq 1 600); do
  ls "$T/stopped/checkpoints"/step-*/manifest.json >/dev/null 2>&1 && break
  sleep 0.2
done
kill -USR1 "$script"
status=0
timeout 60 tail --pid="$script" -f /dev/null || fail "the script still runs 60 s after SIGUSR1"
wait "$script" || status=$?
[ "$status" -eq 0 ] || fail "the stopped job exited $status"
grep -q "job stopped at a checkpoint" "$T/stopped.out" || fail "the job did not stop at a checkpoint"
echo "hostfile_test: passed"
