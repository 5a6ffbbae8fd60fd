# Shared by the virtual-cluster system tests (multihost_test.sh, slurm_cluster_test.sh);
# sourced. cluster_test_up NAME PREFIX HOSTS sets VC, C (the cluster), T (a temporary
# directory), brings up HOSTS hosts vh1..vhN with Open MPI's variables, and arranges for both
# to go at exit (KEEP=1 keeps T). The caller sets FLEXMOE and SOURCE, and may define
# cluster_test_cleanup (run first at exit) and cluster_test_logs (more files for fail).

cluster_test_up() {
  NAME=$1
  [ "$(id -u)" -eq 0 ] || { echo "$NAME: needs root (network namespaces)"; exit 1; }
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
  VC=$SOURCE/tests/cluster/vcluster.sh
  C=$2$$
  C=${C:0:8}
  T=$(mktemp -d "/tmp/flexmoe-$NAME-XXXXXX")
  trap cluster_test_exit EXIT
  trap 'exit 1' INT TERM
  "$VC" up "$C" "$3" --owner $$
  eval "$("$VC" env "$C")"
}

cluster_test_exit() {
  declare -F cluster_test_cleanup >/dev/null && cluster_test_cleanup
  "$VC" down "$C" || true
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}

fail() {
  echo "$NAME: FAILED: $*" >&2
  declare -F cluster_test_logs >/dev/null && cluster_test_logs
  for f in "$T"/*.out "$T"/*/coordinator.log "$T"/*/loaders.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -25 "$f" >&2; }
  done
  exit 1
}
say() { echo "$NAME: $*"; }
now_ms() { date +%s%3N; }
on() { local h=$1; shift; "$VC" exec "$C" "$h" "$@"; }

# The job's processes left on a host (flexmoe and Open MPI's: pid and name), none when it is
# clean.
flexmoe_on() {
  local p comm
  for p in $("$VC" pids "$C" "$1"); do
    comm=$(cat "/proc/$p/comm" 2>/dev/null || true)
    case "$comm" in flexmoe | orted | mpirun) echo "$p $comm" ;; esac
  done
  return 0
}
# Waits (until $2, ms since the epoch) for a host to have none of the job's processes.
wait_clean() {
  while [ "$(now_ms)" -lt "$2" ]; do
    [ -z "$(flexmoe_on "$1")" ] && return 0
    sleep 0.2
  done
  [ -z "$(flexmoe_on "$1")" ]
}
