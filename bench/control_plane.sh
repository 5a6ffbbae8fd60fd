#!/usr/bin/env bash
# The control plane under N simulated members (issue 37): a real `flexmoe coordinator` and N
# workers simulated by real CoordinatorClients in a few processes (bench/control_plane_bench.cc),
# each heartbeating every cluster.heartbeat_interval_s and reporting a step record of the
# real shape every second. One member is paused 2 s of every 3 (slow but live); after the
# steady phase another is stopped (SIGSTOP), and in a second job one is killed (kill -9).
# Prints the coordinator's figures and, last, one JSON object (members, false_verdicts,
# kill_detect_s, all_told_s, heartbeat_p99_ms, coordinator_cpu_cores, coordinator_rss_mb,
# ...). Exits 1 on a false verdict, a fault not caught, a member not told, or a page that
# did not show the members.
#
#   bench/control_plane.sh --members N [--seconds S] [--out DIR] [--set PATH=VALUE ...]
#
# Defaults: 64 members, a 30 s steady phase, the quickstart config. Run from the repository
# root after launch/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/bench/control_plane_bench ] || { echo "control_plane.sh: build first (launch/setup.sh)" >&2; exit 2; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ)"
exec build/bench/control_plane_bench --flexmoe build/flexmoe "$@"
