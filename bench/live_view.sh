#!/usr/bin/env bash
# What the live view costs a job (issue 29): `flexmoe train --workers 2` with the HTTP
# endpoint off (cluster.http_listen "") and on while a scraper polls /api/job and /metrics
# every 100 ms (ten times a browser's rate), for R rounds, the order of the two alternating; each run's own training
# samples/s (step records after the first epoch, bench_lib.sh's train_rate) and the
# scraper's request latency (median and max, ms). Compare the on/off ratio of one round,
# never figures of different runs or machines.
#
#   bench/live_view.sh [--config FILE] [--epochs N] [--rounds R] [--out DIR]
#
# Defaults: the quickstart config, 6 epochs, 3 rounds. Run from the repository root after
# launch/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
config=configs/quickstart.textproto
epochs=6
rounds=3
out=bench-out/live-view
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "live_view.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
source bench/bench_lib.sh
prepare_synthetic "$config" "$out/data"
common=(--config "$config" "${data[@]}" --workers 2 --set "training.epochs=$epochs")

# scrape LOG URL_FILE: polls the live page's JSON and metrics every 100 ms while the job's
# URL is in LOG; prints "requests median_ms max_ms".
scrape() {
  /usr/bin/python3 - "$1" <<'PY'
import re, statistics, sys, time, urllib.request
log = sys.argv[1]
deadline = time.monotonic() + 120
url = None
while url is None and time.monotonic() < deadline:
    m = re.search(r"live page: (http://\S+)", open(log).read())
    url = m and m.group(1)
    time.sleep(0.05)
base, token = url.split("?token=")
times = []
while True:
    for path in ("api/job", "metrics"):
        request = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
        start = time.monotonic()
        try:
            urllib.request.urlopen(request, timeout=5).read()
        except Exception:
            print("%d %.2f %.2f" % (len(times), statistics.median(times) if times else 0,
                                    max(times) if times else 0))
            sys.exit(0)
        times.append((time.monotonic() - start) * 1e3)
    time.sleep(0.1)
PY
}

echo "| round | http off samples/s | on + scraper samples/s | on/off | requests | median ms | max ms |"
echo "|---|---|---|---|---|---|---|"
run_off() {
  build/flexmoe train "${common[@]}" --set cluster.http_listen= --set "run.dir=$out/off" \
    >"$out/off.log" 2>&1
}
run_on() {
  build/flexmoe train "${common[@]}" --set "run.dir=$out/on" >"$out/on.log" 2>&1 &
  local job=$!
  scrape "$out/on.log" >"$out/scraped.txt"
  wait "$job"
}
# The order alternates (odd rounds off first, even rounds on first), so that a machine
# that warms up or slows down during a round favours neither.
for r in $(seq 1 "$rounds"); do
  rm -rf "$out/off" "$out/on"
  if [ $((r % 2)) -eq 1 ]; then
    run_off
    run_on
  else
    run_on
    run_off
  fi
  scraped=$(cat "$out/scraped.txt")
  off=$(train_rate "$out/off")
  on=$(train_rate "$out/on")
  read -r requests median max <<<"$scraped"
  ratio=$(/usr/bin/python3 -c "print('%.3f' % ($on / $off))")
  echo "| $r | $off | $on | $ratio | $requests | $median | $max |"
done
