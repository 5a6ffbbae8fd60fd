#!/usr/bin/env bash
# Two hosts against one (issue 26, item 8), on a virtual cluster of this machine
# (tests/cluster/vcluster.sh: network namespaces joined by a bridge; root), with nothing
# else running:
#   1. the link: a plain TCP socket's round trip (1-byte ping-pong) and bulk bandwidth;
#   2. a raw MPI_Alltoallv and flexmoe's Communicator::AllToAll over Open MPI's TCP
#      transport between the 2 hosts (build/bench/alltoall_bench, 2 ranks, 64 KB to 2 MB a
#      rank);
#   3. `flexmoe train` on 2 hosts (launch/mpirun/train.sh, one worker a host) against
#      `flexmoe train --workers 2` on one host: the job's own samples/s and step split.
#
#   bench/cross_host.sh [--config FILE] [--batch B] [--epochs N] [--out DIR] [--parts 1,2,3]
#
# Defaults: the ADNI-like config at batch 64, 3 epochs. Extra Open MPI settings for an
# experiment go in the environment (OMPI_MCA_...); the scripts' own are printed. Run from
# the repository root after launch/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
config=configs/adni_like.textproto
batch=64
epochs=3
out=bench-out/cross-host
parts=1,2,3
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --parts) parts=$2; shift 2 ;;
    *) echo "cross_host.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "cross_host.sh: needs root (network namespaces)" >&2; exit 2; }
source bench/bench_lib.sh
export OMP_NUM_THREADS=1
VC=$PWD/tests/cluster/vcluster.sh
C=xh$$
C=${C:0:8}
trap '"$VC" down "$C"' EXIT
"$VC" up "$C" 2 --owner $$ >/dev/null
eval "$("$VC" env "$C")"
on() { local h=$1; shift; "$VC" exec "$C" "$h" "$@"; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

echo "cross_host.sh: $(run_facts)"
env | grep '^OMPI_MCA_' | grep -v plm_rsh_agent | sort | sed 's/^/  /'

if [[ ",$parts," == *,1,* ]]; then
  # A TCP echo server on vh2; vh1 measures the round trip and the bulk rate.
  on vh2 /usr/bin/python3 -c '
import socket
s = socket.create_server(("0.0.0.0", 7788))
for _ in range(2):
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        b = c.recv(1 << 20)
        if not b: break
        if len(b) == 1: c.sendall(b)' &
  server=$!
  sleep 0.5
  on vh1 /usr/bin/python3 -c '
import socket, time
c = socket.create_connection(("vh2", 7788)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
n = 5000
t = time.perf_counter()
for _ in range(n):
    c.sendall(b"x"); c.recv(1)
rtt = (time.perf_counter() - t) / n
c.close()
c = socket.create_connection(("vh2", 7788))
block = b"\0" * (1 << 20)
t = time.perf_counter()
for _ in range(2048): c.sendall(block)
c.shutdown(socket.SHUT_WR); c.recv(1)
rate = 2048 * len(block) / (time.perf_counter() - t)
print("link: TCP round trip %.1f us (python, 1 byte), bulk %.2f GB/s" % (rtt * 1e6, rate / 1e9))'
  wait "$server" 2>/dev/null || true
fi

if [[ ",$parts," == *,2,* ]]; then
  echo
  # Open MPI's default progress loop spins; flexmoe workers set mpi_yield_when_idle=1
  # (launch/wait_policy.h) unless the user set it. Both, unless the environment chose one.
  yields=${OMPI_MCA_mpi_yield_when_idle:-0 1}
  for yield in $yields; do
    echo "all-to-all between 2 hosts (alltoall_bench, D=256: 64 KB to 2 MB a rank)," \
      "mpi_yield_when_idle=$yield:"
    on vh1 env OMPI_MCA_mpi_yield_when_idle="$yield" mpirun --allow-run-as-root \
      --host vh1,vh2 -np 2 build/bench/alltoall_bench --tokens=64,256,1024,2048 --dims=256 \
      --modes=even --warmup=3 --iters=20 >"$out/alltoall-$yield.txt" 2>&1
    grep -v '^{' "$out/alltoall-$yield.txt" | grep -v '^$'
    # The link's alpha and beta: least squares of time = alpha + bytes / beta over the sizes
    # (the medians), for raw MPI and for ours.
    /usr/bin/python3 - "$out/alltoall-$yield.txt" <<'PY'
import json, sys
import numpy as np
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
b = np.array([r["bytes"] for r in rows], float)
for key in ("raw_us", "ours_us"):
    t = np.array([r[key] for r in rows]) * 1e-6
    slope, alpha = np.polyfit(b, t, 1)
    print("fit %-7s alpha %.1f us, beta %.2f GB/s" % (key[:-3], alpha * 1e6, 1e-9 / slope))
PY
  done
fi

if [[ ",$parts," == *,3,* ]]; then
  prepare_synthetic "$config" "$out/data"
  echo
  echo "| run | samples/s | step: compute / exchange / reduce / data ms |"
  echo "|---|---|---|"
  sets=(--set "training.batch_size=$batch" --set "training.epochs=$epochs"
        --set training.warmup_epochs=1 --set metrics.log_every_steps=10
        --set checkpoint.every_epochs=0)
  rm -rf "$out/one-host" "$out/two-hosts"
  on vh1 build/flexmoe train --config "$config" "${data[@]}" "${sets[@]}" --workers 2 \
    --threads 1 --set "run.dir=$out/one-host" >"$out/one-host.log" 2>&1
  echo "| 2 workers, 1 host | $(train_rate "$out/one-host") | $(step_split "$out/one-host" 2) |"
  printf 'vh1 slots=1\nvh2 slots=1\n' >"$out/hosts"
  on vh1 launch/mpirun/train.sh --hostfile "$out/hosts" --config "$config" "${data[@]}" \
    "${sets[@]}" --run-dir "$out/two-hosts" >"$out/two-hosts.log" 2>&1
  echo "| 1 worker a host, 2 hosts | $(train_rate "$out/two-hosts") | $(step_split "$out/two-hosts" 2) |"
fi
