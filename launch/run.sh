#!/usr/bin/env bash
# Sets everything up, builds, and runs the main job on the embedded default: the
# quickstart synthetic dataset (configs/quickstart.textproto) generated, prepared and
# trained by a whole job on this machine (coordinator, loader and 2 workers). Extra
# arguments go to every flexmoe command (e.g. --set training.epochs=3).
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh --runtime
source launch/blas_env.sh
config=configs/quickstart.textproto
build/flexmoe synth --config "$config" "$@"
build/flexmoe prepare --config "$config" "$@"
# Threads per worker: the cores over the workers, less one for the services (the default).
build/flexmoe train --config "$config" --workers 2 "$@"
