#!/usr/bin/env bash
# System test: launch/scaling.sh --quick writes its CSV (6 points, every figure measured)
# and its PNG; a bad argument exits 2 and writes nothing.
# Usage: scaling_test.sh FLEXMOE_BINARY SOURCE_DIR
set -euo pipefail
export FLEXMOE=$1
SOURCE=$2
T=$(mktemp -d /tmp/flexmoe-scaling-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "scaling_test: FAILED: $*" >&2; tail -30 "$T/out.log" >&2 || true; exit 1; }
rc=0
bash "$SOURCE/launch/scaling.sh" --quick --bogus >"$T/bad.log" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "an unknown argument exited $rc, not 2"
bash "$SOURCE/launch/scaling.sh" --quick >"$T/bad.log" 2>&1 && fail "no --out was accepted"
timeout 500 bash "$SOURCE/launch/scaling.sh" --quick --out "$T/out" >"$T/out.log" 2>&1 ||
  fail "scaling.sh --quick failed"
head -1 "$T/out/scaling.csv" | grep -q '^workers,experts,modalities,width,tokens_per_step,samples_per_s,exchange_share,' ||
  fail "the CSV header is wrong"
[ "$(tail -n +2 "$T/out/scaling.csv" | wc -l)" = 6 ] || fail "the CSV does not hold 6 points"
python3 - "$T/out/scaling.csv" <<'PY' || fail "a point was not measured"
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for r in rows:
    rate = float(r["samples_per_s"])
    assert rate > 0 and math.isfinite(rate), r
    assert 0 <= float(r["exchange_share"]) < 1, r
assert {r["workers"] for r in rows} == {"1", "2", "4"}, rows
assert [r["oversubscribed"] for r in rows if r["workers"] == "1"] == ["no"], rows
assert float([r for r in rows if r["workers"] == "1"][0]["exchange_share"]) == 0, rows
PY
[ "$(head -c 8 "$T/out/scaling.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
  fail "scaling.png is not a PNG"
echo "scaling_test: passed"
