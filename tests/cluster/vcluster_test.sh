#!/usr/bin/env bash
# System test (ctest label cluster): the virtual cluster itself (tests/cluster/vcluster.sh):
# each host has its own name and /etc/hosts, hosts reach each other over TCP and the machine's
# own network stack holds none of their addresses; cut, heal, freeze, crash and limit act on
# one host; down removes every namespace, file and process it made.
# Usage: vcluster_test.sh SOURCE_DIR
set -euo pipefail
VC=$1/tests/cluster/vcluster.sh
C=vt$$
C=${C:0:8}
trap '"$VC" down "$C"' EXIT
fail() { echo "vcluster_test: FAILED: $*" >&2; exit 1; }
on() { local h=$1; shift; "$VC" exec "$C" "$h" "$@"; }
# Whether host $1 reaches a TCP listener on host $2 (a python3 echo of one line), 3 s at most.
reaches() {
  local port=$((30000 + RANDOM % 20000))
  "$VC" exec "$C" "$2" python3 -c 'import socket, sys
s = socket.create_server(("0.0.0.0", int(sys.argv[1]))); s.settimeout(4)
try:
    c, _ = s.accept(); c.sendall(c.recv(16))
except OSError:
    pass' "$port" &
  local server=$!
  # Until the server listens (5 s at most).
  for _ in $(seq 1 50); do
    on "$2" ss -ltnH "sport = :$port" | grep -q LISTEN && break
    sleep 0.1
  done
  local got
  got=$(on "$1" timeout 3 python3 -c 'import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); c.sendall(b"ping"); print(c.recv(16).decode())' "$2" "$port" 2>/dev/null || true)
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  [ "$got" = ping ]
}

"$VC" up "$C" 2 --owner $$ | tee /dev/stderr | grep -q "tc qdiscs: tbf" || fail "no tbf"
[ "$(on vh1 hostname)" = vh1 ] && [ "$(on vh2 hostname)" = vh2 ] || fail "host names"
[ "$(hostname)" != vh1 ] || fail "the machine's own host name changed"
on vh1 getent hosts vh2 | grep -q '^10.213.0.2 ' || fail "vh1 does not resolve vh2"
ip -o addr | grep -q '10\.213\.' && fail "a cluster address in the machine's own stack"
reaches vh1 vh2 || fail "vh1 does not reach vh2"
"$VC" cut "$C" vh2
reaches vh1 vh2 && fail "vh1 reaches vh2 through a cut link"
"$VC" rsh "$C" vh2 true 2>/dev/null && fail "the rsh agent reached a cut host"
"$VC" heal "$C" vh2
reaches vh1 vh2 || fail "vh1 does not reach vh2 after heal"
"$VC" limit "$C" vh2 50mbit
on vh2 tc qdisc show dev eth0 | grep -q "tbf.*rate 50Mbit" || fail "no tbf on vh2"
"$VC" unlimit "$C" vh2
"$VC" exec "$C" vh2 sleep 600 &
sleeper=$!
for _ in $(seq 1 50); do "$VC" pids "$C" vh2 | grep -qx "$sleeper" && break; sleep 0.1; done
"$VC" pids "$C" vh2 | grep -qx "$sleeper" || fail "vh2's processes: $("$VC" pids "$C" vh2 | paste -sd' '), not $sleeper"
"$VC" freeze "$C" vh2
grep -q '^State:.*T' "/proc/$sleeper/status" || fail "freeze did not stop vh2's process"
"$VC" thaw "$C" vh2
"$VC" crash "$C" vh2
wait "$sleeper" 2>/dev/null && fail "the process on vh2 survived the crash"
[ -z "$("$VC" pids "$C" vh2)" ] || fail "processes left on crashed vh2"
"$VC" down "$C"
ip netns list | grep -q "vc-$C-" && fail "namespaces left after down"
ls /etc/netns 2>/dev/null | grep -q "vc-$C-" && fail "/etc/netns entries left after down"
echo "vcluster_test: passed"
