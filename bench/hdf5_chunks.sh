#!/usr/bin/env bash
# `flexmoe prepare` of a gzip-chunked dense HDF5 matrix (the layout AnnData and h5py write
# for a compressed X): ROWS x COLS float32 in chunks of CHUNK_ROWS x COLS (4 MB by default,
# four times HDF5's default chunk cache). The reader reads row after row; with a cache that
# cannot hold a chunk, every row decompresses its whole chunk again.
#
#   bench/hdf5_chunks.sh [--binary build/flexmoe] [--rows 4000] [--cols 1000]
#                        [--chunk-rows 1000] [--dir /tmp/flexmoe-hdf5-chunks]
#
# Prints the wall seconds of prepare and its input rate; the last line is one JSON object.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=build/flexmoe rows=4000 cols=1000 chunk_rows=1000 dir=/tmp/flexmoe-hdf5-chunks
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --cols) cols=$2; shift 2 ;;
    --chunk-rows) chunk_rows=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) echo "hdf5_chunks.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$dir/in"
/usr/bin/python3 - "$dir/in" "$rows" "$cols" "$chunk_rows" <<'PY'
import sys
import h5py
import numpy as np
out, rows, cols, chunk_rows = sys.argv[1], *map(int, sys.argv[2:])
rng = np.random.default_rng(0)
x = rng.normal(size=(rows, cols)).astype(np.float32)
with h5py.File(f"{out}/x.h5", "w") as f:
    f.create_dataset("matrix", data=x, chunks=(chunk_rows, cols), compression="gzip")
    f["ids"] = np.array([f"s{i}" for i in range(rows)], dtype="S")
with open(f"{out}/labels.csv", "w") as f:
    f.write("id,label\n" + "".join(f"s{i},{i % 2}\n" for i in range(rows)))
PY
cat >"$dir/config.textproto" <<EOF
data {
  layout: PER_MODALITY_CSV
  input: "$dir/in"
  prepared_dir: "$dir/prepared"
  modalities { name: "x" file: "x.h5" hdf5_matrix: "matrix" hdf5_ids: "ids" }
}
EOF
rm -rf "$dir/prepared"
start=$(date +%s.%N)
"$binary" prepare --config "$dir/config.textproto" >"$dir/prepare.log" 2>&1
end=$(date +%s.%N)
/usr/bin/python3 - "$start" "$end" "$rows" "$cols" "$chunk_rows" "$binary" <<'PY'
import json, sys
start, end = float(sys.argv[1]), float(sys.argv[2])
rows, cols, chunk_rows = map(int, sys.argv[3:6])
seconds = end - start
mb = rows * cols * 4 / 1e6
print("prepare of %d x %d float32 (%.0f MB, gzip chunks of %d rows): %.2f s, %.1f MB/s"
      % (rows, cols, mb, chunk_rows, seconds, mb / seconds))
print(json.dumps({"binary": sys.argv[6], "rows": rows, "cols": cols, "chunk_rows": chunk_rows,
                  "seconds": round(seconds, 3), "mb_per_s": round(mb / seconds, 1)}))
PY
