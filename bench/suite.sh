#!/usr/bin/env bash
# The missing-modality suite (../shared/data/suite: six real tables, split seeds 0-4) as a
# benchmark of the default recipe, or of the recipe with --set overrides: for every dataset
# a config written by `flexmoe init` from its modalities.json, `flexmoe train` per split seed,
# `flexmoe predict --calibrated` of the run (the ensemble of its seeds), and the table of
# test AUC and log-loss beside the suite's logistic-regression and gradient-boosting
# baselines on the same splits (bench/suite.py). Leaves OUT/<dataset>/seed-<s>/
# test_predictions.csv (id,p: the probability of class 1 of every test row) and
# OUT/suite.json. Training chooses by validation only; the test split is only scored.
#
#   bench/suite.sh [--out DIR] [--datasets a,b] [--split-seeds 0,1,2,3,4] [--parallel 2]
#                  [--set PATH=VALUE]... [--suite DIR] [--reuse]
#
# Run from the repository root after launch/setup.sh (about 40 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/bench_lib.sh
exec /usr/bin/python3 bench/suite.py "$@"
