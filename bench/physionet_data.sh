#!/usr/bin/env bash
# Puts PhysioNet 2012 set A where configs/physionet2012.textproto reads it
# (data/physionet2012/set-a.csv.gz, ignored by git): a link to PATH, by default the shared
# copy beside the checkout. Does nothing when the file is there already.
#
#   bench/physionet_data.sh [PATH]      (run from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
source=${1:-../shared/data/physionet2012/set-a.csv.gz}
target=data/physionet2012/set-a.csv.gz
[ -e "$target" ] && exit 0
if [ ! -e "$source" ]; then
  echo "physionet_data.sh: no PhysioNet 2012 set A at $source (give its path)" >&2
  exit 2
fi
mkdir -p "$(dirname "$target")"
ln -s "$(readlink -f "$source")" "$target"
echo "linked $target -> $(readlink -f "$source")"
