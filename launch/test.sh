#!/usr/bin/env bash
# Sets everything up, builds, and runs the whole test suite with ctest.
# FLEXMOE_TEST_LABEL=unit (say) runs only the tests with that label.
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
args=(--test-dir build --output-on-failure --no-tests=error)
[ -n "${FLEXMOE_TEST_LABEL:-}" ] && args+=(-L "$FLEXMOE_TEST_LABEL")
ctest "${args[@]}"
