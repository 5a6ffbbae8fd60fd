#!/usr/bin/env bash
# System test (ctest label cluster): jobs across the hosts of a virtual cluster
# (tests/cluster/vcluster.sh: network namespaces with their own host names, Open MPI over TCP
# through an rsh agent), launched with `flexmoe train --hostfile` (case 1) and its wrapper
# launch/mpirun/train.sh --hostfile (the others):
#   1. 2 hosts give the losses and test metrics of `flexmoe train --workers 2`, bit for bit,
#      each rank reading from its own host's loader, the loaders named apart in job.json;
#   2. a host of 3 cut off mid-run ends the job within heartbeat timeout + 10 s, exit non-zero,
#      naming the host and the member, with no flexmoe process left on any host;
#   3. the same with --max-restarts 1 finishes on the 2 hosts left;
#   4. a crashed host ends the job the same way;
#   5. a connection from another host without the job token is refused, and the listeners
#      bind their host's address, not 0.0.0.0;
#   6. a second job on a live run directory, from another host, is refused with exit 2
#      naming the holder; a stale lease is taken over, and the message says so;
#   7. a coordinator that cannot start (its HTTP address is not on its host) stops the
#      start: no loader or worker is launched, the last line names it and its reason.
# Usage: multihost_test.sh FLEXMOE_BINARY SOURCE_DIR [CASE...]   (cases: 1-7, default all)
set -euo pipefail
FLEXMOE=$(readlink -f "$1")
export FLEXMOE
SOURCE=$2
shift 2
cases=${*:-1 2 3 4 5 6 7}
source "$SOURCE/tests/cluster/cluster_test_lib.sh"
cluster_test_up multihost_test mh 3
source "$SOURCE/tests/launch/job_test_lib.sh"
prepare_and_train_locally 2
HEARTBEAT=4
BOUND_MS=$(((HEARTBEAT + 10) * 1000))

hostfile() {  # the hosts given, one slot each
  local f=$T/hosts-$(echo "$@" | tr ' ' '-')
  printf '%s slots=1\n' "$@" >"$f"
  echo "$f"
}
losses() {  # the training losses of a run, one a line
  python3 -c 'import json,sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["event"] in ("epoch", "train"): print(json.dumps({k: r[k] for k in sorted(r) if "loss" in k}))' \
    "$1/metrics.jsonl"
}
# Starts a long job from vh1 on the given hosts into $T/$1 (further flags after --); sets job.
start_long_job() {
  local name=$1
  shift
  local hosts=() flags=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do hosts+=("$1"); shift; done
  [ $# -eq 0 ] || { shift; flags=("$@"); }
  # "$VC" exec execs into the script: $job is the script itself (SIGUSR1 reaches it).
  "$VC" exec "$C" vh1 "$SOURCE/launch/mpirun/train.sh" --hostfile "$(hostfile "${hosts[@]}")" \
    "${common[@]}" --set checkpoint.every_epochs=1 --run-dir "$T/$name" "${flags[@]}" \
    >"$T/$name.out" 2>&1 &
  job=$!
  local deadline=$(($(now_ms) + 120000))
  until ls "$T/$name/checkpoints"/step-*/manifest.json >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "$name: no checkpoint after 120 s"
    kill -0 "$job" 2>/dev/null || fail "$name: the job ended before its first checkpoint"
    sleep 0.2
  done
}
# Waits for $job to end and sets status to its exit status; fails past the deadline (ms
# since the epoch).
wait_job() {
  while kill -0 "$job" 2>/dev/null; do
    [ "$(now_ms)" -lt "$1" ] || fail "the job still runs $(($(now_ms) - $1 + BOUND_MS)) ms after the fault"
    sleep 0.1
  done
  status=0
  wait "$job" || status=$?
}
# A fault ($1: cut or crash) on vh3 of a 3-host job: the job ends within the bound naming it.
lost_host_case() {
  local fault=$1 name=$1-ends
  start_long_job "$name" vh1 vh2 vh3 -- --set training.epochs=500
  local t0 deadline
  t0=$(now_ms)
  deadline=$((t0 + BOUND_MS))
  "$VC" "$fault" "$C" vh3
  wait_job "$deadline"
  local took=$(($(now_ms) - t0))
  [ "$status" -ne 0 ] || fail "$name: exit 0 after the host was lost"
  grep -q "the job failed: .*vh3" "$T/$name.out" || fail "$name: the last line does not name vh3"
  tail -1 "$T/$name.out" | grep -q "host vh3 lost (worker 2, loader 2 on it)" ||
    fail "$name: the last line does not name the member on vh3: $(tail -1 "$T/$name.out")"
  for h in vh1 vh2 vh3; do
    wait_clean "$h" "$deadline" || fail "$name: flexmoe processes left on $h: $(flexmoe_on "$h")"
  done
  [ "$fault" = crash ] || "$VC" heal "$C" vh3
  [ "$fault" = cut ] || "$VC" heal "$C" vh3
  say "$fault: the job ended in $took ms (bound $BOUND_MS), exit $status: $(tail -1 "$T/$name.out")"
}

for c in $cases; do
  case $c in
    1)
      on vh1 "$FLEXMOE" train --hostfile "$(hostfile vh1 vh2)" "${common[@]}" \
        --set training.epochs=2 --set "run.dir=$T/two-hosts" >"$T/two-hosts.out" 2>&1 ||
        fail "the 2-host job failed"
      [ "$(test_metrics "$T/two-hosts")" = "$(test_metrics "$T/local")" ] ||
        fail "2-host test metrics $(test_metrics "$T/two-hosts") differ from 1 host's $(test_metrics "$T/local")"
      [ "$(losses "$T/two-hosts")" = "$(losses "$T/local")" ] || fail "2-host losses differ"
      python3 - "$T/two-hosts/job.json" <<'PY' || fail "job.json's loaders: $(cat "$T/two-hosts/job.json")"
import json, sys
job = json.load(open(sys.argv[1]))
loaders = sorted((m["rank"], m["host"], m["state"]) for m in job["members"] if m["role"] == "loader")
assert loaders == [(0, "vh1", "stopped"), (1, "vh2", "stopped")], loaders
assert all(m["state"] == "left" for m in job["members"] if m["role"] == "worker"), job["members"]
PY
      # Each worker read from its own host's loader (rank r runs on vh(r+1), loader r there).
      for r in 0 1; do
        grep -q "loader $r: .*(worker $r) connected" "$T/two-hosts/loaders.log" ||
          fail "worker $r did not read from its host's loader: $(grep connected "$T/two-hosts/loaders.log")"
        grep -q "loader $r: .*(worker $((1 - r))) connected" "$T/two-hosts/loaders.log" &&
          fail "worker $((1 - r)) read from the other host's loader"
      done
      say "2 hosts = 1 host: $(test_metrics "$T/two-hosts")"
      ;;
    2) lost_host_case cut ;;
    3)
      start_long_job restarted vh1 vh2 vh3 -- --set training.epochs=4 --max-restarts 1
      "$VC" cut "$C" vh3
      wait_job $(($(now_ms) + 300000))
      "$VC" heal "$C" vh3
      [ "$status" -eq 0 ] || fail "the restarted job exited $status"
      grep -q "restart 1 of 1 after: .*host vh3 lost" "$T/restarted.out" ||
        fail "no restart line naming vh3"
      grep -q "job finished on vh1 vh2;" "$T/restarted.out" || fail "not finished on vh1 vh2"
      grep -q '"event":"restart".*vh3' "$T/restarted/metrics.jsonl" ||
        fail "the restart record does not name vh3"
      say "--max-restarts 1: $(grep 'restart 1 of 1' "$T/restarted.out")"
      ;;
    4) lost_host_case crash ;;
    5)
      # Listeners bind their host's address; a member on another host without the token is
      # refused.
      echo "not-the-token" >"$T/wrong.token"
      # "$VC" exec execs into flexmoe: $coord is the coordinator itself (`on` would put a
      # subshell between, and the kill below would miss it).
      "$VC" exec "$C" vh1 "$FLEXMOE" coordinator "${common[@]}" --set "run.dir=$T/token" \
        --set "cluster.job_token_source=file:$T/job.token" --listen vh1:0 >"$T/coord.out" 2>&1 &
      coord=$!
      echo "the-token" >"$T/job.token"
      for _ in $(seq 1 100); do grep -q '^listening on' "$T/coord.out" && break; sleep 0.1; done
      address=$(sed -n 's/^listening on //p' "$T/coord.out")
      [[ "$address" == 10.213.0.1:* || "$address" == vh1:* ]] || fail "the coordinator listens on '$address'"
      on vh1 ss -ltnH | grep -q "0.0.0.0:${address##*:}" && fail "the coordinator binds 0.0.0.0"
      if on vh2 timeout 30 "$FLEXMOE" loader "${common[@]}" --set "run.dir=$T/token" \
        --set "cluster.job_token_source=file:$T/wrong.token" --set "cluster.coordinator=$address" \
        --listen vh2:0 >"$T/intruder.out" 2>&1; then
        fail "a loader with the wrong token was accepted"
      fi
      grep -qi "token" "$T/intruder.out" || fail "the refusal does not say why: $(cat "$T/intruder.out")"
      kill "$coord" 2>/dev/null || true
      wait_clean vh1 $(($(now_ms) + 10000)) || fail "the coordinator still runs: $(flexmoe_on vh1)"
      say "token: $(tail -1 "$T/intruder.out")"
      ;;
    6)
      start_long_job leased vh1 -- --set training.epochs=500
      status=0
      on vh2 "$SOURCE/launch/mpirun/train.sh" --hostfile "$(hostfile vh2)" "${common[@]}" \
        --run-dir "$T/leased" --resume >"$T/second.out" 2>&1 || status=$?
      [ "$status" -eq 2 ] || fail "a second job on a live run directory exited $status, not 2"
      grep -q "in use by a running job (host vh1" "$T/second.out" ||
        fail "the refusal does not name the holder: $(cat "$T/second.out")"
      kill -USR1 "$job"
      wait_job $(($(now_ms) + 60000))
      [ "$status" -eq 0 ] || fail "the first job, stopped with SIGUSR1, exited $status"
      [ ! -e "$T/leased/job.lease" ] || fail "the stopped job left its lease"
      # A stale lease (a holder on vh1 that stopped renewing) is taken over from vh2.
      printf 'host vh1\npid 999999\nrenewed_unix_s %s\nwhat a lost job\n' \
        "$(($(date +%s) - 60))" >"$T/leased/job.lease"
      newest=$(ls -d "$T/leased/checkpoints"/step-* | tail -1)
      epoch=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["epoch"])' "$newest/manifest.json")
      on vh2 "$SOURCE/launch/mpirun/train.sh" --hostfile "$(hostfile vh2)" "${common[@]}" \
        --set "training.epochs=$((epoch + 1))" --run-dir "$T/leased" --resume >"$T/takeover.out" 2>&1 ||
        fail "the job did not take over a stale lease"
      grep -q "took over the lease of run directory .* from host vh1, pid 999999" "$T/takeover.out" ||
        fail "the takeover is not said: $(head -5 "$T/takeover.out")"
      say "lease: $(cat "$T/second.out" | tail -1)"
      ;;
    7)
      status=0
      "$VC" exec "$C" vh1 "$SOURCE/launch/mpirun/train.sh" --hostfile "$(hostfile vh1 vh2)" \
        "${common[@]}" --set cluster.http_listen=10.99.99.99:0 --run-dir "$T/nostart" \
        >"$T/nostart.out" 2>&1 || status=$?
      [ "$status" -ne 0 ] || fail "a job whose coordinator cannot start exited 0"
      last=$(tail -1 "$T/nostart.out")
      [[ "$last" == *"the job failed to start: the coordinator did not start (exit $status)"* ]] ||
        fail "the last line does not name the coordinator's start: $last"
      [[ "$last" == *"10.99.99.99"* ]] || fail "the last line does not say why: $last"
      [ ! -e "$T/nostart/loaders.log" ] || fail "loaders were started after the coordinator failed"
      for h in vh1 vh2; do  # the host's own processes (tests beside this one run flexmoe too)
        wait_clean "$h" $(($(now_ms) + 10000)) || fail "flexmoe processes left on $h: $(flexmoe_on "$h")"
      done
      say "start failure: $last"
      ;;
    *) fail "unknown case $c" ;;
  esac
done
say "passed"
