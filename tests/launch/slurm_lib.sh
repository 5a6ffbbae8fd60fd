# A real SLURM for the system tests (sourced): munged (one, shared through its socket on the
# file system), slurmctld on the first node and one slurmd per node, each with its own
# spool directory, pid file and log (%n), on private ports, state in $T. Needs T and a fail
# function; `on NODE CMD...` runs a command on a node (the virtual cluster's hosts), or
# runs it here when the caller defines no `on`.
# Usage: slurm_up NODE...   (then SLURM_CONF is exported; slurm_down ends the daemons)

slurm_daemons=()

slurm_up() {
  local nodes=("$@") first=$1 port node
  slurm_first=$first
  declare -F on >/dev/null || on() { shift; "$@"; }
  port=$((20000 + RANDOM % 20000))
  mkdir -p "$T/state" "$T/spool"
  cat >"$T/slurm.conf" <<CONF
ClusterName=flexmoetest
SlurmctldHost=$first
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool/%n
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd-%n.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd-%n.log
JobCompType=jobcomp/none
KillWait=10
SlurmdTimeout=10
# 4 CPUs whatever the machine has (config_overrides): the tasks always fit.
SlurmdParameters=config_overrides
NodeName=$(IFS=,; echo "${nodes[*]}") CPUs=4 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  export SLURM_CONF=$T/slurm.conf
  if ! munge -n >/dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge
    [ -f /etc/munge/munge.key ] || mungekey --create
    runuser -u munge -- /usr/sbin/munged
  fi
  on "$first" slurmctld -D -f "$SLURM_CONF" >"$T/slurmctld.out" 2>&1 &
  slurm_daemons+=($!)
  for node in "${nodes[@]}"; do
    mkdir -p "$T/spool/$node"
    on "$node" slurmd -D -f "$SLURM_CONF" -N "$node" >"$T/slurmd-$node.out" 2>&1 &
    slurm_daemons+=($!)
  done
  for _ in $(seq 1 150); do
    [ "$(on "$first" sinfo -h -o %t 2>/dev/null | grep -c idle)" -ge 1 ] &&
      [ "$(on "$first" sinfo -h -N -o %t 2>/dev/null | grep -c idle)" -ge "${#nodes[@]}" ] && break
    sleep 0.2
  done
  [ "$(on "$first" sinfo -h -N -o %t 2>/dev/null | grep -c idle)" -ge "${#nodes[@]}" ] ||
    fail "the SLURM nodes did not come up: $(on "$first" sinfo -N 2>&1)"
  echo "slurm: up on ${nodes[*]} (controller port $port)"
}

# Ends the daemons: those started here (a runner function's subshell may stand between) and
# those their pid files name.
slurm_down() {
  local p pids=("${slurm_daemons[@]}")
  for p in "$T"/slurmctld.pid "$T"/slurmd-*.pid; do
    [ -f "$p" ] && pids+=("$(cat "$p")")
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 20); do
    local left=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ "$left" -eq 0 ] && return 0
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

# The state of job $1 (PENDING, RUNNING, COMPLETED, FAILED...).
slurm_job_state() {
  on "$slurm_first" scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z]*' | cut -d= -f2
}

# Waits (5 minutes at most) for job $1 to leave the queue; prints its final state.
slurm_wait_job() {
  local state
  for _ in $(seq 1 1500); do
    state=$(slurm_job_state "$1")
    case "$state" in PENDING|RUNNING|CONFIGURING|COMPLETING|"") sleep 0.2 ;; *) echo "$state"; return ;; esac
  done
  echo TIMEOUT
}
