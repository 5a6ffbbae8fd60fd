# The parts of a multi-host job that the hostfile script (launch/mpirun/train.sh) and the
# batch script (launch/slurm/train.sbatch) share; sourced, not run. The caller sets:
#   FLEXMOE    the binary;           NAME      its own name, for messages;
#   run_dir    absolute;             common    the config flags of every member (config, sets,
#                                              run.dir, the token file);
# and defines start_members HOSTS... (coordinator, loaders, workers of one attempt; it sets
# coordinator_pid, loaders_pid, workers_pid; when a member does not start it calls
# start_failed and returns 1 before launching anything else) and host_reachable HOST.
#
# What it gives every launch path:
# - one job per run directory: the lease (`flexmoe lease`) is taken before anything is
#   written there, and held until the script ends;
# - a bounded end: once the coordinator has ended the job (or died, or stopped answering),
#   whatever still runs is ended within a few seconds, mpirun and its daemons included: Open
#   MPI waits for a lost daemon forever, so the script never waits on mpirun alone;
# - restarts (--max-restarts K): the job starts again from the newest checkpoint on the hosts
#   still reachable; the lost host is named and dropped, the experts re-sharded.
#
# Bash 4.2 (older login nodes) treats "${a[@]}" of an empty array as unset under set -u: the
# three scripts expand arrays that can be empty as ${a[@]+"${a[@]}"}.

# Open MPI defaults for a job across hosts: a daemon that loses mpirun (and mpirun a daemon)
# notices within seconds through TCP keepalive, instead of after minutes.
export OMPI_MCA_oob_tcp_keepalive_time=${OMPI_MCA_oob_tcp_keepalive_time:-2}
export OMPI_MCA_oob_tcp_keepalive_intvl=${OMPI_MCA_oob_tcp_keepalive_intvl:-1}
export OMPI_MCA_oob_tcp_keepalive_probes=${OMPI_MCA_oob_tcp_keepalive_probes:-3}

job_die() { echo "$NAME: $*" >&2; exit 2; }

# Takes run.dir's lease for the life of this script (exit 2 naming the holder when a live job
# has it). Sets lease_pid.
take_lease() {
  local log=$run_dir/.lease.$$.log
  "$FLEXMOE" lease "${common[@]}" --what "$NAME" --watch-pid $$ >"$log" 2>&1 &
  lease_pid=$!
  for _ in $(seq 1 300); do
    if grep -q '^lease held on ' "$log" 2>/dev/null; then
      grep -v '^lease held on ' "$log" | sed "s|^|$NAME: |" || true
      rm -f "$log"
      return 0
    fi
    if ! kill -0 "$lease_pid" 2>/dev/null; then
      local status=0
      wait "$lease_pid" || status=$?
      sed "s|^flexmoe lease: error: |$NAME: |" "$log" >&2
      rm -f "$log"
      exit "$status"
    fi
    sleep 0.1
  done
  job_die "no lease on $run_dir after 30 s ($(cat "$log"))"
}

# Releases the lease (the EXIT trap's last step): the lease process removes it and ends.
release_lease() {
  [ -n "${lease_pid:-}" ] || return 0
  kill -TERM "$lease_pid" 2>/dev/null || true
  wait "$lease_pid" 2>/dev/null || true
}

# A fresh job token, readable by this user only, passed through the shared run directory.
write_token() {
  (umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$run_dir/job.token.new")
  mv "$run_dir/job.token.new" "$run_dir/job.token"
}

# Prints the coordinator's live page (its "live page on URL" line, when cluster.http_listen
# is not empty) and where its token is: the page's own (RUN/web.token, mode 0600), never the
# job token, and not printed into a batch log other users may read.
print_live_page() {
  local url
  url=$(grep -m1 '^live page on ' "$1" 2>/dev/null | sed 's/^live page on //') || true
  [ -z "$url" ] && return 0
  if [ -f "$run_dir/web.token" ]; then
    echo "$NAME: live page: $url (open ${url}?token=TOKEN once, TOKEN from $run_dir/web.token)"
  else
    echo "$NAME: live page: $url"
  fi
}

# The "listening on ADDR" lines of a log once it has `count` of them (60 s at most), joined
# by commas.
addresses_in() {
  local log=$1 count=$2 pid=$3
  for _ in $(seq 1 600); do
    local found
    found=$(grep -c '^listening on ' "$log" 2>/dev/null || true)
    if [ "${found:-0}" -ge "$count" ]; then
      grep '^listening on ' "$log" | sed 's/^listening on //' | paste -sd, -
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "$NAME: $log:" >&2; tail -5 "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "$NAME: $count addresses not in $log after 60 s" >&2
  return 1
}

# Records why an attempt could not start (WHAT, the PID that ended or never listened, its LOG)
# for run_with_restarts' last line: start_error and start_status (the member's own exit
# status when it ended, 1 when it still runs without listening).
start_failed() {
  local what=$1 pid=$2 log=$3 status=1 last
  if ! alive "$pid"; then
    wait "$pid" 2>/dev/null
    status=$?
    [ "$status" -ne 0 ] || status=1
  fi
  # flexmoe's own error line, not what mpirun or srun add after it.
  last=$(grep ': error: ' "$log" 2>/dev/null | tail -1 || true)
  [ -n "$last" ] || last=$(grep -v '^\s*$' "$log" 2>/dev/null | tail -1 || true)
  start_error="the $what did not start (exit $status): ${last:-no output}"
  start_status=$status
}

# A field of job.json ("" when absent); culprit.host and the like for nested ones.
job_field() {
  python3 - "$run_dir/job.json" "$1" <<'PY' 2>/dev/null || true
import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2].split("."):
    value = value.get(key) if isinstance(value, dict) else None
print("" if value is None else value)
PY
}

# The members job.json places on host $1: "worker 2, loader 2".
members_on() {
  python3 - "$run_dir/job.json" "$1" <<'PY' 2>/dev/null || true
import json, sys
members = json.load(open(sys.argv[1])).get("members", [])
on = sorted((m["role"] != "worker", m["rank"], m["role"]) for m in members if m.get("host") == sys.argv[2])
print(", ".join(f"{role} {rank}" for _, rank, role in on))
PY
}

# SIGKILL to a process and its descendants on this host (mpirun's local ranks included).
kill_tree() {
  local pid=$1 child
  for child in $(pgrep -P "$pid" 2>/dev/null || true); do kill_tree "$child"; done
  kill -KILL "$pid" 2>/dev/null || true
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# The process state letter (T: stopped), or "" when it is gone.
state_of() { awk '{ sub(/.*\) /, ""); print substr($0, 1, 1) }' "/proc/$1/stat" 2>/dev/null || true; }

# Asks every host of the attempt, all at once, whether it can still be reached (the
# caller's host_reachable); collected by run_with_restarts. Started as soon as the job has
# failed, so that the probes overlap the members' grace to end.
start_probes() {
  local h
  probes=()
  for h in "${hosts[@]}"; do
    (host_reachable "$h" && touch "$run_dir/.reachable.$$.$h") &
    probes+=($!)
  done
}

# Waits for the attempt started by start_members to end, and ends what is left once the
# job has ended: the coordinator ends it (finished, preempted, or a member lost); the
# workers end it when they lose a coordinator that stopped answering. Sets workers_status,
# coordinator_status and coordinator_hung.
watch_attempt() {
  local timeout_ms=$heartbeat_timeout_ms grace_ms=3000 ended_at="" now limit
  coordinator_hung=""
  while true; do
    now=$(date +%s%3N)
    if [ -z "$ended_at" ] && { ! alive "$coordinator_pid" || ! alive "$workers_pid"; }; then
      ended_at=$now
      case "$(job_field state)" in finished | preempted) ;; *) start_probes ;; esac
    fi
    if ! alive "$coordinator_pid" && ! alive "$workers_pid" && ! alive "$loaders_pid"; then
      break
    fi
    if alive "$coordinator_pid" && [ "$(state_of "$coordinator_pid")" = T ]; then
      coordinator_hung="the coordinator (pid $coordinator_pid) was stopped (SIGSTOP or a debugger) and stopped answering"
    fi
    # The job has ended; whatever still runs `grace` s later (heartbeat timeout + grace when
    # the coordinator is what ended last) waits on something that is gone: end it.
    if [ -n "$ended_at" ]; then
      limit=$grace_ms
      alive "$coordinator_pid" && limit=$((timeout_ms + grace_ms))
      [ -n "$coordinator_hung" ] && limit=$grace_ms
      if [ $((now - ended_at)) -gt "$limit" ]; then
        if alive "$coordinator_pid" && [ -z "$coordinator_hung" ]; then
          coordinator_hung="the coordinator (pid $coordinator_pid) stopped answering"
        fi
        for p in "$workers_pid" "$loaders_pid" "$coordinator_pid"; do
          alive "$p" && kill_tree "$p"
        done
      fi
    fi
    sleep 0.2
  done
  workers_status=0
  wait "$workers_pid" 2>/dev/null || workers_status=$?
  coordinator_status=0
  wait "$coordinator_pid" 2>/dev/null || coordinator_status=$?
  wait "$loaders_pid" 2>/dev/null || true
}

# What ended the attempt, for the last line and the restart record: job.json's reason, or
# the launcher's own finding when the coordinator could not say.
attempt_reason() {
  local state reason
  state=$(job_field state)
  reason=$(job_field reason)
  if [ -n "$coordinator_hung" ] && { [ "$state" = running ] || [ -z "$state" ]; }; then
    echo "$coordinator_hung; the members lost it"
  elif [ "$state" = running ] || [ -z "$state" ]; then
    echo "the coordinator ended (exit $coordinator_status) without ending the job"
  elif [ -n "$reason" ]; then
    echo "$reason"
  else
    echo "workers exit $workers_status, coordinator exit $coordinator_status"
  fi
}

# Runs the job on `hosts` (an array set by the caller), restarting up to max_restarts times
# on the hosts still reachable; exits with the job's status.
run_with_restarts() {
  local attempt=0 why="" status state lost h kept probes
  # The config's heartbeat timeout as flexmoe resolves it (validate-config prints every
  # default): the scripts keep no copy of a default.
  heartbeat_timeout_ms=$("$FLEXMOE" validate-config "${common[@]}" |
    awk '/heartbeat_timeout_s:/ { printf "%d", $2 * 1000 }')
  [ -n "$heartbeat_timeout_ms" ] || job_die "validate-config printed no cluster.heartbeat_timeout_s"
  while true; do
    restart_args=()
    [ "$attempt" -gt 0 ] && restart_args=(--resume --restart "$attempt" --restart-reason "$why")
    write_token
    probes=()
    # A member that fails to start stops the start: nothing after it is launched, what was
    # started is ended, and the last line names it and its reason.
    if ! start_members "${hosts[@]}"; then
      local p
      for p in ${pids[@]+"${pids[@]}"}; do kill_tree "$p"; done
      echo "$NAME: the job failed to start: $start_error; run directory $run_dir" >&2
      return "$start_status"
    fi
    watch_attempt
    state=$(job_field state)
    status=$workers_status
    [ "$status" -eq 0 ] && status=$coordinator_status
    if [ "$state" = finished ] || [ "$state" = preempted ]; then
      [ "$status" -eq 0 ] || state=failed
    fi
    if [ "$state" = finished ] && [ "$status" -eq 0 ]; then
      echo "$NAME: job finished on ${hosts[*]}; run directory $run_dir"
      return 0
    fi
    if [ "$state" = preempted ] && [ "$status" -eq 0 ]; then
      echo "$NAME: job preempted; newest checkpoint $(job_field newest_checkpoint);" \
        "run directory $run_dir"
      echo "continue with: $resume_hint --resume"
      return 0
    fi
    [ "$status" -ne 0 ] || status=1
    why=$(attempt_reason)
    # The hosts still reachable; a lost one is named.
    [ ${#probes[@]} -gt 0 ] || start_probes
    wait ${probes[@]+"${probes[@]}"}
    lost=() kept=()
    for h in "${hosts[@]}"; do
      if [ -e "$run_dir/.reachable.$$.$h" ]; then kept+=("$h"); else lost+=("$h"); fi
      rm -f "$run_dir/.reachable.$$.$h"
    done
    # A lost host is the first cause, whatever member the coordinator missed first.
    for h in ${lost[@]+"${lost[@]}"}; do
      why="host $h lost ($(members_on "$h") on it); the coordinator: $why"
    done
    # The script ended mpirun itself: its status says so, not what failed.
    [ ${#lost[@]} -eq 0 ] || status=1
    if [ "$attempt" -ge "$max_restarts" ] || [ ${#kept[@]} -eq 0 ]; then
      echo "$NAME: the job failed: $why; newest checkpoint $(job_field newest_checkpoint);" \
        "run directory $run_dir" >&2
      return "$status"
    fi
    attempt=$((attempt + 1))
    echo "$NAME: restart $attempt of $max_restarts after: $why; from" \
      "$(job_field newest_checkpoint | sed 's/^$/the start/') on ${kept[*]}" >&2
    hosts=(${kept[@]+"${kept[@]}"})
  done
}
