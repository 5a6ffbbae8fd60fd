#!/usr/bin/env bash
# A virtual cluster on this machine for the multi-host tests (root): N hosts, each a network
# namespace with a UTS namespace of its own (its own hostname) and its own /etc/hosts (which
# `ip netns exec` mounts from /etc/netns/NS/hosts), joined by a bridge that lives in a
# namespace of its own, so no address of the cluster's network exists in the machine's own
# stack and no test traffic leaves the namespaces made here. Open MPI reaches a host through
# an rsh agent that enters its namespaces (`env` prints the variables: TCP only, on the
# cluster's network). Hosts are PREFIX1..PREFIXN at 10.213.0.1..N.
#
#   vcluster.sh up NAME N [--prefix P] [--owner PID]   make cluster NAME (hosts P1..PN, P=vh)
#   vcluster.sh down NAME                             end its processes, remove all it made
#   vcluster.sh reap                                  down every cluster whose owner is gone
#   vcluster.sh env NAME                              the Open MPI variables (sh exports)
#   vcluster.sh hosts NAME                            its host names, one a line
#   vcluster.sh exec NAME HOST CMD...                 run CMD on HOST
#   vcluster.sh pids NAME HOST                        the processes on HOST
#   vcluster.sh cut|heal NAME HOST                    take HOST's link down / up (partition;
#                                                     the rsh agent then fails as ssh would)
#   vcluster.sh crash NAME HOST                       SIGKILL every process on HOST, cut it
#   vcluster.sh freeze|thaw NAME HOST                 SIGSTOP / SIGCONT every process on HOST
#   vcluster.sh limit NAME HOST RATE | unlimit ...    tc tbf on HOST's link (RATE as tc: 100mbit)
#   vcluster.sh rsh NAME [opts] HOST CMD...           the rsh agent (what Open MPI calls)
#
# `up` first reaps clusters whose owner process (--owner, default the caller's parent) has
# died, so a killed test leaves nothing behind for long. This kernel may lack netem: `up`
# says which tc qdiscs exist.
set -euo pipefail

STATE_ROOT=${VCLUSTER_STATE:-/run/flexmoe-vcluster}
SUBNET=10.213.0
SELF=$(readlink -f "$0")

die() { echo "vcluster: $*" >&2; exit 2; }
state_of() { echo "$STATE_ROOT/$1"; }
need_cluster() { [ -d "$(state_of "$1")" ] || die "no cluster '$1' (vcluster.sh up $1 N)"; }
ns_of() { echo "vc-$1-$2"; }                 # cluster, host -> network namespace
bridge_ns() { echo "vc-$1-bridge"; }
port_of() {                                   # cluster, host -> the bridge's port for it
  local i
  i=$(host_index "$1" "$2")
  echo "p$i"
}
host_index() {
  local n
  n=$(grep -nx -- "$2" "$(state_of "$1")/hosts" | cut -d: -f1 || true)
  [ -n "$n" ] || die "cluster '$1' has no host '$2' (hosts: $(paste -sd' ' "$(state_of "$1")/hosts"))"
  echo "$n"
}

# Runs CMD inside HOST: its network namespace (and /etc/hosts) and its UTS namespace. `ip
# netns exec` mounts a sysfs of the namespace over /sys, which hides the machine's cgroup
# file systems (slurmd needs them): they are mounted again inside, as the machine has them.
enter() {
  local cluster=$1 host=$2
  shift 2
  local s cgroups
  s=$(state_of "$cluster")
  host_index "$cluster" "$host" >/dev/null
  cgroups=$(awk '$2 ~ "^/sys/fs/cgroup" && $3 ~ /^(tmpfs|cgroup|cgroup2)$/ { print $3, $2, $4 }' \
    /proc/self/mounts)
  exec ip netns exec "$(ns_of "$cluster" "$host")" nsenter --uts="$s/uts/$host" -- \
    /bin/sh -c 'echo "$0" | while read -r type dir options; do
        [ -n "$type" ] || continue
        mkdir -p "$dir" 2>/dev/null; mount -t "$type" -o "$options" "$type" "$dir" 2>/dev/null
      done; exec "$@"' "$cgroups" "$@"
}

host_pids() { ip netns pids "$(ns_of "$1" "$2")" 2>/dev/null || true; }

signal_host() {
  local pids
  pids=$(host_pids "$1" "$2")
  [ -z "$pids" ] || kill "-$3" $pids 2>/dev/null || true
}

cmd_up() {
  local cluster=$1 count=$2 prefix=vh owner=$PPID
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --prefix) prefix=$2; shift 2 ;;
      --owner) owner=$2; shift 2 ;;
      *) die "up: unknown argument '$1'" ;;
    esac
  done
  [[ "$cluster" =~ ^[a-z0-9]{1,8}$ ]] || die "up: NAME must be 1-8 lower-case letters or digits"
  [[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 1 ] && [ "$count" -le 200 ] ||
    die "up: N must be 1-200 (got '$count')"
  [ "$(id -u)" -eq 0 ] || die "up: needs root (network namespaces)"
  cmd_reap
  local s
  s=$(state_of "$cluster")
  [ ! -d "$s" ] || die "up: cluster '$cluster' exists (vcluster.sh down $cluster)"
  mkdir -p "$s/uts"
  echo "$owner" >"$s/owner"
  : >"$s/hosts"
  local b
  b=$(bridge_ns "$cluster")
  ip netns add "$b"
  ip -n "$b" link add br0 type bridge
  ip -n "$b" link set br0 up
  local hosts_file=$s/etc-hosts i host ns
  printf '127.0.0.1 localhost\n' >"$hosts_file"
  for i in $(seq 1 "$count"); do
    echo "$prefix$i" >>"$s/hosts"
    echo "$SUBNET.$i $prefix$i" >>"$hosts_file"
  done
  for i in $(seq 1 "$count"); do
    host=$prefix$i
    ns=$(ns_of "$cluster" "$host")
    ip netns add "$ns"
    mkdir -p "/etc/netns/$ns"
    cp "$hosts_file" "/etc/netns/$ns/hosts"
    ip -n "$b" link add "p$i" type veth peer name eth0 netns "$ns"
    ip -n "$b" link set "p$i" master br0 up
    ip -n "$ns" addr add "$SUBNET.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    touch "$s/uts/$host"
    unshare --uts="$s/uts/$host" hostname "$host"
  done
  # The rsh agent Open MPI calls (plm_rsh_agent takes a command, not arguments).
  printf '#!/bin/sh\nexec %q rsh %q "$@"\n' "$SELF" "$cluster" >"$s/rsh"
  chmod 755 "$s/rsh"
  local qdiscs="tbf"
  ip netns exec "$(ns_of "$cluster" "${prefix}1")" tc qdisc add dev lo root netem delay 1ms \
    2>/dev/null && qdiscs="$qdiscs netem" &&
    ip netns exec "$(ns_of "$cluster" "${prefix}1")" tc qdisc del dev lo root
  echo "$qdiscs" >"$s/qdiscs"
  echo "vcluster: $cluster up: $(paste -sd' ' "$s/hosts") on $SUBNET.0/24;" \
    "tc qdiscs: $qdiscs$([[ $qdiscs == *netem* ]] || echo ' (no netem in this kernel: delay and loss are skipped)')"
}

cmd_down() {
  local cluster=$1 s host
  s=$(state_of "$cluster")
  [ -d "$s" ] || return 0
  # SIGKILL everything on the hosts until none is left (a process may fork meanwhile).
  for _ in 1 2 3 4 5; do
    local left=""
    while read -r host; do
      [ -n "$host" ] || continue
      signal_host "$cluster" "$host" KILL
      left=$left$(host_pids "$cluster" "$host")
    done <"$s/hosts"
    [ -z "$left" ] && break
    sleep 0.1
  done
  while read -r host; do
    [ -n "$host" ] || continue
    ip netns del "$(ns_of "$cluster" "$host")" 2>/dev/null || true
    rm -rf "/etc/netns/$(ns_of "$cluster" "$host")"
    umount "$s/uts/$host" 2>/dev/null || true
  done <"$s/hosts"
  ip netns del "$(bridge_ns "$cluster")" 2>/dev/null || true
  rm -rf "$s"
}

cmd_reap() {
  [ -d "$STATE_ROOT" ] || return 0
  local s owner
  for s in "$STATE_ROOT"/*/; do
    [ -d "$s" ] || continue
    owner=$(cat "$s/owner" 2>/dev/null || echo 0)
    if [ "$owner" -le 1 ] || ! kill -0 "$owner" 2>/dev/null; then
      echo "vcluster: removing cluster $(basename "$s") (its owner $owner is gone)" >&2
      cmd_down "$(basename "$s")"
    fi
  done
}

cmd_env() {
  local s
  s=$(state_of "$1")
  # TCP only, on the cluster's network. No binding: the hosts share this machine's cores, and
  # each host's mpirun or daemon would bind its first rank to core 0, the same core for all.
  cat <<ENV
export OMPI_MCA_plm_rsh_agent=$s/rsh
export OMPI_MCA_pml=ob1
export OMPI_MCA_btl=tcp,self
export OMPI_MCA_btl_tcp_if_include=$SUBNET.0/24
export OMPI_MCA_oob_tcp_if_include=$SUBNET.0/24
export OMPI_MCA_hwloc_base_binding_policy=none
ENV
}

# Open MPI calls `AGENT [options] HOST COMMAND...`; the command is one shell line.
cmd_rsh() {
  local cluster=$1
  shift
  while [ $# -gt 0 ] && [[ "$1" == -* ]]; do shift; done
  [ $# -ge 1 ] || die "rsh: no host"
  local host=$1
  shift
  if [[ "$host" == "$SUBNET".* ]]; then
    host=$(sed -n "${host##*.}p" "$(state_of "$cluster")/hosts")
  fi
  # A host that is cut off or crashed cannot be reached, as ssh would find.
  if [ -e "$(state_of "$cluster")/down/$host" ]; then
    echo "vcluster rsh: connect to host $host: No route to host" >&2
    exit 255
  fi
  enter "$cluster" "$host" /bin/sh -c "$*"
}

cmd_cut() {
  mkdir -p "$(state_of "$1")/down"
  touch "$(state_of "$1")/down/$2"
  ip -n "$(bridge_ns "$1")" link set "$(port_of "$1" "$2")" down
}

cmd_heal() {
  rm -f "$(state_of "$1")/down/$2"
  ip -n "$(bridge_ns "$1")" link set "$(port_of "$1" "$2")" up
}

[ $# -ge 1 ] || die "usage: see the header of $0"
command=$1
shift
case "$command" in
  up) [ $# -ge 2 ] || die "usage: up NAME N"; cmd_up "$@" ;;
  down) [ $# -eq 1 ] || die "usage: down NAME"; cmd_down "$1" ;;
  reap) cmd_reap ;;
  env) need_cluster "$1"; cmd_env "$1" ;;
  hosts) need_cluster "$1"; cat "$(state_of "$1")/hosts" ;;
  exec) [ $# -ge 3 ] || die "usage: exec NAME HOST CMD..."; need_cluster "$1"; enter "$@" ;;
  rsh) need_cluster "$1"; cmd_rsh "$@" ;;
  pids) need_cluster "$1"; host_index "$1" "$2" >/dev/null; host_pids "$1" "$2" ;;
  cut) need_cluster "$1"; cmd_cut "$1" "$2" ;;
  heal) need_cluster "$1"; cmd_heal "$1" "$2" ;;
  # A crash: the host's processes die at once and it drops off the network.
  crash) need_cluster "$1"; cmd_cut "$1" "$2"; signal_host "$1" "$2" KILL ;;
  freeze) need_cluster "$1"; host_index "$1" "$2" >/dev/null; signal_host "$1" "$2" STOP ;;
  thaw) need_cluster "$1"; host_index "$1" "$2" >/dev/null; signal_host "$1" "$2" CONT ;;
  limit)
    need_cluster "$1"
    ip netns exec "$(ns_of "$1" "$2")" tc qdisc replace dev eth0 root tbf rate "$3" \
      burst 64kb latency 100ms
    ;;
  unlimit) need_cluster "$1"; ip netns exec "$(ns_of "$1" "$2")" tc qdisc del dev eth0 root ;;
  *) die "unknown command '$command' (see the header of $0)" ;;
esac
